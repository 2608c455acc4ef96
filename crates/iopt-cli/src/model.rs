//! The reference the demonstration checks a table against: what is mapped where, as a
//! plain ordered map of buffers.

use std::collections::BTreeMap;

use iopt::Prot;

/// One successful `map_pages` call: `count` pages of `pgsize` bytes at consecutive
/// physical addresses from `pa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Page size of the call.
    pub pgsize: u64,
    /// Number of pages.
    pub count: usize,
    /// Physical address of the first byte.
    pub pa: u64,
    /// Permissions asked for (or given since by a protect).
    pub prot: Prot,
    /// Cut since it was mapped: its pages may be smaller than `pgsize`.
    pub cut: bool,
}

impl Buffer {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.pgsize * self.count as u64
    }
}

/// What a lookup of one IOVA must return when it is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The physical address of the IOVA.
    pub pa: u64,
    /// First IOVA of the page containing it.
    pub iova_base: u64,
    /// Size of that page.
    pub size: u64,
    /// Whether the page is writable.
    pub writable: bool,
    /// The buffer was cut: `iova_base` and `size` are those of the mapping before.
    pub cut: bool,
}

/// Buffers by first IOVA. Buffers never overlap.
#[derive(Debug, Default)]
pub struct Model {
    buffers: BTreeMap<u64, Buffer>,
}

impl Model {
    /// Number of buffers mapped.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// True if nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    /// The buffer starting exactly at `iova`.
    pub fn get(&self, iova: u64) -> Option<Buffer> {
        self.buffers.get(&iova).copied()
    }

    /// The `n`-th buffer in IOVA order, with its first IOVA.
    pub fn nth(&self, n: usize) -> Option<(u64, Buffer)> {
        self.buffers.iter().nth(n).map(|(&iova, &b)| (iova, b))
    }

    /// Every buffer in IOVA order, with its first IOVA.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Buffer)> + '_ {
        self.buffers.iter().map(|(&iova, &b)| (iova, b))
    }

    /// The buffer containing `iova`, with its first IOVA.
    pub fn find(&self, iova: u64) -> Option<(u64, Buffer)> {
        let (&start, &b) = self.buffers.range(..=iova).next_back()?;
        (iova - start < b.len()).then_some((start, b))
    }

    /// True if any buffer intersects `first ..= last`.
    pub fn overlaps(&self, first: u64, last: u64) -> bool {
        self.find(first).is_some() || self.buffers.range(first..=last).next().is_some()
    }

    /// Records a buffer mapped at `iova`.
    pub fn insert(&mut self, iova: u64, buffer: Buffer) {
        self.buffers.insert(iova, buffer);
    }

    /// The buffer starting at `iova`, to change in place.
    pub fn get_mut(&mut self, iova: u64) -> Option<&mut Buffer> {
        self.buffers.get_mut(&iova)
    }

    /// Forgets the buffer starting at `iova`.
    pub fn remove(&mut self, iova: u64) -> Option<Buffer> {
        self.buffers.remove(&iova)
    }

    /// What translating `iova` must give, or `None` if it is not mapped.
    pub fn expect(&self, iova: u64) -> Option<Expected> {
        let (start, b) = self.find(iova)?;
        let off = iova - start;
        Some(Expected {
            pa: b.pa + off,
            iova_base: iova - off % b.pgsize,
            size: b.pgsize,
            writable: b.prot.contains(Prot::WRITE),
            cut: b.cut,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_follow_the_buffers() {
        let mut m = Model::default();
        let rw = Prot::READ | Prot::WRITE;
        m.insert(
            0x10_0000,
            Buffer {
                pgsize: 0x1000,
                count: 3,
                pa: 0x8000_0000,
                prot: rw,
                cut: false,
            },
        );
        assert_eq!(m.expect(0xf_ffff), None);
        assert_eq!(
            m.expect(0x10_1234),
            Some(Expected {
                pa: 0x8000_1234,
                iova_base: 0x10_1000,
                size: 0x1000,
                writable: true,
                cut: false,
            })
        );
        assert_eq!(m.expect(0x10_3000), None);
        assert!(m.overlaps(0x10_2fff, 0x10_2fff));
        assert!(m.overlaps(0, 0x10_0000));
        assert!(!m.overlaps(0x10_3000, 0x20_0000));
    }
}
