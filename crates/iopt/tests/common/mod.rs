//! Shared test machinery: the format configurations every suite iterates (the library's
//! catalogue, [`configs`]), an interval model of what should be mapped, and helpers that
//! drive a table and the model side by side.
#![allow(dead_code, unused_macros, unused_imports)]

mod configs;
pub use configs::*;

use std::collections::BTreeMap;

use iopt::mem::{ArenaMemory, TableMemory};
use iopt::{Error, Format, Gather, Info, NoFlush, PageTable, Prot};

/// Base of the simulated physical memory used for table pages (below 4 GiB, so that
/// 32-bit formats can point to it).
pub const ARENA_BASE: u64 = 0x4000_0000;
/// Size of the arena for one test table.
pub const ARENA_BYTES: usize = 32 << 20;

pub type Table<'a, F> = PageTable<F, &'a ArenaMemory, NoFlush>;

/// A fresh arena.
pub fn arena() -> ArenaMemory {
    ArenaMemory::new(ARENA_BASE, ARENA_BYTES)
}

/// One mapping as the model sees it: a single page (entry or run) of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub size: u64,
    pub pa: u64,
}

/// The interval model: page base IOVA -> page.
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub pages: BTreeMap<u64, Mapping>,
}

impl Model {
    /// The page containing `iova`.
    pub fn find(&self, iova: u64) -> Option<(u64, Mapping)> {
        let (&base, &m) = self.pages.range(..=iova).next_back()?;
        (iova - base < m.size).then_some((base, m))
    }

    /// True if any page intersects `first ..= last`.
    pub fn overlaps(&self, first: u64, last: u64) -> bool {
        if self.find(first).is_some() {
            return true;
        }
        self.pages.range(first..=last).next().is_some()
    }

    /// Expected outcome of `map_pages`, applied to the model.
    pub fn map(&mut self, iova: u64, pa: u64, size: u64, count: u64) -> (u64, Option<(u64, u64)>) {
        for k in 0..count {
            let s = iova + k * size;
            if self.overlaps(s, s + (size - 1)) {
                return (k * size, Some((s, s + (size - 1))));
            }
            self.pages.insert(
                s,
                Mapping {
                    size,
                    pa: pa + k * size,
                },
            );
        }
        (count * size, None)
    }

    /// Expected outcome of `unmap_pages` (stops at the first hole), applied to the model.
    pub fn unmap(&mut self, iova: u64, last: u64) -> (u64, Result<(), Error>) {
        let mut cur = iova;
        let mut unmapped = 0;
        loop {
            let Some((base, m)) = self.find(cur) else {
                return (unmapped, Err(Error::NotMapped(cur)));
            };
            if base < iova {
                return (0, Err(Error::WouldSplit { base, size: m.size }));
            }
            self.pages.remove(&base);
            unmapped += m.size;
            match (base + (m.size - 1)).checked_add(1) {
                Some(next) if next <= last => cur = next,
                _ => return (unmapped, Ok(())),
            }
        }
    }
}

/// The page sizes a table offers, smallest first.
pub fn page_sizes(info: &Info) -> Vec<u64> {
    (0..64)
        .map(|b| 1u64 << b)
        .filter(|s| info.pgsize_bitmap & s != 0)
        .collect()
}

/// The inclusive IOVA ranges of a table's aperture.
pub fn ranges(info: &Info) -> Vec<(u64, u64)> {
    let mut v = vec![(info.aperture.start, info.aperture.last)];
    v.extend(info.aperture.upper);
    v
}

/// An abstract operation, turned into a concrete one against a table's geometry.
#[derive(Debug, Clone)]
pub enum AOp {
    Map {
        size: u8,
        slot: u16,
        count: u8,
        region: u8,
        pa: u32,
        prot: u8,
    },
    Unmap {
        size: u8,
        slot: u16,
        count: u8,
        region: u8,
    },
    Lookup {
        size: u8,
        slot: u16,
        off: u32,
        region: u8,
    },
}

/// Where an abstract op lands: (iova, size, count) within the aperture.
pub fn place(
    info: &Info,
    size_sel: u8,
    slot: u16,
    count: u8,
    region: u8,
    small_bias: bool,
) -> (u64, u64, u64) {
    let sizes = page_sizes(info);
    let rs = ranges(info);
    let (start, last) = rs[region as usize % rs.len()];
    let span_m1 = last - start; // span - 1
    // Sizes small enough for a few hundred slots in half the range.
    let usable: Vec<u64> = sizes
        .iter()
        .copied()
        .filter(|&s| s <= (span_m1 >> 3) + 1)
        .collect();
    let usable = if usable.is_empty() {
        vec![sizes[0]]
    } else {
        usable
    };
    let idx = if small_bias && size_sel.is_multiple_of(2) {
        0
    } else {
        size_sel as usize % usable.len()
    };
    let size = usable[idx];
    let nslots = ((span_m1 / size) / 4).clamp(1, 600);
    let slot = slot as u64 % nslots;
    let iova = match region / 8 % 3 {
        0 => start + slot * size,
        1 => start + ((span_m1 >> 1) + 1) + slot * size,
        _ => last - (slot + 1) * size + 1,
    };
    let room = (last - iova) / size + 1;
    let count = (count as u64 % 20 + 1).min(room);
    (iova, size, count)
}

pub fn prot_of(sel: u8) -> Prot {
    let mut p = match sel % 3 {
        0 => Prot::READ | Prot::WRITE,
        1 => Prot::READ,
        _ => Prot::WRITE,
    };
    if sel & 4 != 0 {
        p |= Prot::CACHE;
    }
    if sel & 8 != 0 {
        p |= Prot::NOEXEC;
    }
    p
}

/// Drives `ops` against a fresh table of format `fmt` and the model, checking after
/// every step; at the end unmaps everything and checks that only the top table remains.
pub fn run_model<F: Format>(fmt: F, ops: &[AOp]) {
    let mem = arena();
    let pt: Table<'_, F> = PageTable::new(fmt, &mem, NoFlush).expect("create table");
    let info = pt.info();
    let oa_mask = if info.oa_bits >= 64 {
        u64::MAX
    } else {
        (1u64 << info.oa_bits) - 1
    };
    let mut model = Model::default();
    let mut g = Gather::new();
    for op in ops {
        match *op {
            AOp::Map {
                size,
                slot,
                count,
                region,
                pa,
                prot,
            } => {
                let (iova, size, count) = place(&info, size, slot, count, region, true);
                // Keep the physical range inside the output-address space.
                let count = count.min((oa_mask / size).max(1));
                let pa = (pa as u64).wrapping_mul(size) & oa_mask & !(size - 1);
                let pa = if pa.checked_add(count * size - 1).is_none_or(|l| l > oa_mask) {
                    0
                } else {
                    pa
                };
                let before = mem.image();
                // SAFETY: single-threaded; no hardware.
                let (mapped, r) =
                    unsafe { pt.map_pages(iova, pa, size, count as usize, prot_of(prot)) };
                let (want, conflict) = model.map(iova, pa, size, count);
                assert_eq!(mapped, want, "map {iova:#x} {size:#x}x{count} mapped");
                match (r, conflict) {
                    (Ok(()), None) => {}
                    (Err(Error::AddressInUse(a)), Some((s, l))) => {
                        assert!(
                            s <= a && a <= l,
                            "conflict address {a:#x} not in {s:#x}..={l:#x}"
                        )
                    }
                    other => panic!("map {iova:#x} {size:#x}x{count}: {other:?}"),
                }
                if mapped == 0 {
                    assert!(
                        ArenaMemory::same_image(&before, &mem.image()),
                        "failed map changed the table image"
                    );
                }
            }
            AOp::Unmap {
                size,
                slot,
                count,
                region,
            } => {
                let (iova, size, count) = place(&info, size, slot, count, region, false);
                let before = mem.image();
                // SAFETY: single-threaded; no hardware.
                let got = unsafe { pt.unmap_pages(iova, size, count as usize, &mut g) };
                let want = model.unmap(iova, iova + (count * size - 1));
                assert_eq!(got, want, "unmap {iova:#x} {size:#x}x{count}");
                if got.0 == 0 {
                    assert!(
                        ArenaMemory::same_image(&before, &mem.image()),
                        "failed unmap changed the table image"
                    );
                }
                pt.sync(&mut g);
            }
            AOp::Lookup {
                size,
                slot,
                off,
                region,
            } => {
                let (iova, size, _) = place(&info, size, slot, 0, region, false);
                let iova = iova + (off as u64 % size);
                check_lookup(&pt, &model, iova);
            }
        }
        // Every page's first and last byte.
        for (&base, m) in model.pages.iter().take(64) {
            check_lookup(&pt, &model, base);
            check_lookup(&pt, &model, base + (m.size - 1));
        }
    }
    // Unmap everything, in one call per aperture range.
    for (s, l) in ranges(&info) {
        let len = (l - s).wrapping_add(1);
        // A full 2^64 range cannot be named in one length: do it in halves.
        let parts: Vec<(u64, u64)> = if len == 0 {
            vec![(s, 1 << 63), (1 << 63, 1 << 63)]
        } else {
            vec![(s, len)]
        };
        for (s, len) in parts {
            // SAFETY: single-threaded; no hardware.
            let (n, r) = unsafe { pt.unmap_range(s, len, &mut g) };
            r.expect("unmap everything");
            let _ = n;
        }
    }
    pt.sync(&mut g);
    for (&base, _) in model.pages.iter() {
        // SAFETY: single-threaded.
        assert_eq!(unsafe { pt.translate(base) }, None);
    }
    assert_eq!(
        mem.stats().pages,
        1,
        "only the top table remains after unmapping everything"
    );
}

/// Checks one lookup against the model.
pub fn check_lookup<F: Format, M: TableMemory>(
    pt: &PageTable<F, M, NoFlush>,
    model: &Model,
    iova: u64,
) {
    // SAFETY: single-threaded; no hardware.
    let t = unsafe { pt.translate(iova) };
    match (t, model.find(iova)) {
        (None, None) => {}
        (Some(t), Some((base, m))) => {
            assert_eq!(t.pa, m.pa + (iova - base), "pa of {iova:#x}");
            assert_eq!((t.iova_base, t.size), (base, m.size), "extent of {iova:#x}");
        }
        (t, m) => panic!("lookup {iova:#x}: table {t:?}, model {m:?}"),
    }
}

pub fn aop() -> impl proptest::strategy::Strategy<Value = AOp> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (any::<u8>(), any::<u16>(), any::<u8>(), any::<u8>(), any::<u32>(), any::<u8>())
            .prop_map(|(size, slot, count, region, pa, prot)| AOp::Map { size, slot, count, region, pa, prot }),
        3 => (any::<u8>(), any::<u16>(), any::<u8>(), any::<u8>())
            .prop_map(|(size, slot, count, region)| AOp::Unmap { size, slot, count, region }),
        2 => (any::<u8>(), any::<u16>(), any::<u32>(), any::<u8>())
            .prop_map(|(size, slot, off, region)| AOp::Lookup { size, slot, off, region }),
    ]
}
