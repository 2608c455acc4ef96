//! Hardware dirty tracking: reading and clearing the dirty state the IOMMU records in
//! leaf entries (Linux's `iommu_dirty_ops::read_and_clear_dirty`).

use core::ptr::NonNull;

use super::cursor::{CleanSpan, Cursor};
use super::*;

bitflags::bitflags! {
    /// Options of [`PageTable::read_and_clear_dirty`] (the values of Linux's
    /// `IOMMU_DIRTY_*` flags).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct DirtyFlags: u32 {
        /// Only report: leave the dirty state as it is (Linux's `IOMMU_DIRTY_NO_CLEAR`).
        const NO_CLEAR = 1 << 0;
    }
}

/// Progress of a dirty walk.
struct DirtyState<'a, R> {
    clear: bool,
    gather: &'a mut Gather,
    record: &'a mut R,
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Reports the mappings in `[iova, iova + len)` that the hardware wrote through since
    /// they were made or last cleaned, and (unless [`DirtyFlags::NO_CLEAR`]) cleans them
    /// (Linux's `read_and_clear_dirty`).
    ///
    /// For every dirty leaf met, `record(base, size)` is called once with the leaf's whole
    /// extent: a large page or a run of entries (contiguous hint, AMD size-encoded page)
    /// is one leaf, dirty if any of its entries is, and all of its entries are cleaned.
    /// The extent of a leaf that crosses an end of the range reaches outside it. Leaves
    /// are reported in IOVA order. Holes are skipped. Cleaning replaces each entry with
    /// an atomic compare-and-swap, so a dirty mark the hardware sets at the same moment is
    /// never lost; the cleaned extents are added to `gather`, and the caller must
    /// [`sync`](Self::sync) it: until the IOTLB forgets the old translations the device
    /// may write without marking the leaf dirty again.
    ///
    /// Errors, before anything is read: [`Error::NoDirtyTracking`] if the format (as
    /// configured) has no dirty tracking; [`Error::ZeroLength`], [`Error::BadPageSize`]
    /// (`len` not a multiple of the smallest page size), [`Error::UnalignedIova`],
    /// [`Error::Overflow`], [`Error::OutOfAperture`].
    ///
    /// With `coherent_walk: false` the cleaned entries are cleaned from the CPU cache
    /// like any other write, but the CPU may not see the dirty marks such a walker
    /// writes: dirty tracking wants a walker that snoops.
    ///
    /// # Safety
    /// No map or unmap runs at the same time on a range that overlaps `[iova, iova +
    /// len)` or a leaf that reaches into it (lookups and other dirty reads may). The
    /// caller treats cleaned leaves as possibly cached by the IOTLB until the gather is
    /// synced.
    ///
    /// # Panics
    /// If `gather` holds work of another table.
    ///
    /// ```
    /// use iopt::{DirtyFlags, Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
    /// use iopt::mem::HeapMemory;
    /// let fmt = AmdV1::new(AmdV1Config { dirty_tracking: true, ..AmdV1Config::default() })?;
    /// let pt = PageTable::new(fmt, HeapMemory::new(), NoFlush)?;
    /// let mut g = Gather::new();
    /// let mut dirty = Vec::new();
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0, 0x8000_0000, 4096, 4, Prot::READ | Prot::WRITE);
    ///     // No device wrote: nothing is reported.
    ///     pt.read_and_clear_dirty(0, 0x4000, DirtyFlags::empty(), &mut g, &mut |b, s| dirty.push((b, s)))?;
    /// }
    /// assert!(dirty.is_empty());
    /// pt.sync(&mut g);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub unsafe fn read_and_clear_dirty<R: FnMut(u64, u64)>(
        &self,
        iova: u64,
        len: u64,
        flags: DirtyFlags,
        gather: &mut Gather,
        record: &mut R,
    ) -> Result<()> {
        if !self.fmt.tracks_dirty() {
            return Err(Error::NoDirtyTracking);
        }
        self.check_dirty_flags(flags)?;
        let last = self.check_bytes(iova, len)?;
        gather.bind(self.id);
        let (root, top) = self.top();
        let ap = self.aperture(top);
        // With a dynamic top, part of the range may lie above the current top: nothing
        // is mapped there.
        let cur_last = if ap.contains(iova, last) {
            last
        } else if ap.contains(iova, iova) {
            ap.last
        } else {
            return Ok(());
        };
        let mut st = DirtyState {
            clear: !flags.contains(DirtyFlags::NO_CLEAR),
            gather,
            record,
        };
        let cur = Cursor::new(self, top, root, self.entries_lg2(top, top), iova, cur_last);
        // SAFETY: `root` is the live top table at `top`; the caller keeps maps and unmaps
        // away from every leaf the walk reaches.
        unsafe { self.dirty_level(cur, &mut st) };
        Ok(())
    }

    /// Reads (and cleans) the dirty leaves of `cur`'s walk.
    ///
    /// # Safety
    /// `cur`'s table is live; as for [`Self::read_and_clear_dirty`].
    unsafe fn dirty_level<R: FnMut(u64, u64)>(
        &self,
        mut cur: Cursor<'_, F, M, X>,
        st: &mut DirtyState<'_, R>,
    ) {
        let fmt = &self.fmt;
        let (level, table) = (cur.level, cur.table);
        let mut written = CleanSpan::default();
        while !cur.done() {
            // SAFETY: the cursor's entry is inside the table.
            match unsafe { cur.load() } {
                Pte::Empty => {}
                Pte::Leaf { .. } => {
                    let (base, size) = (cur.item_base(), cur.item_size());
                    let (first, count) = (cur.item_first(), cur.item_entries());
                    let dirty = (first..first + count).any(|i| {
                        // SAFETY: runs never cross a table, so `i` is inside it.
                        fmt.leaf_dirty(level, unsafe { Self::load(table, i) })
                    });
                    if dirty {
                        (st.record)(base, size);
                        if st.clear {
                            for i in first..first + count {
                                // SAFETY: inside the table; the leaf is kept from maps
                                // and unmaps by the caller.
                                unsafe { self.clean_entry(level, table, i) };
                            }
                            written.add(first, count);
                            st.gather.add_range(base, size, size);
                        }
                    }
                }
                Pte::Table { .. } => {
                    if level > 0 {
                        // SAFETY: linked tables are live; the caller's guarantee covers
                        // the leaves below.
                        unsafe { self.dirty_level(cur.child(), st) };
                    }
                }
            }
            cur.next();
        }
        self.clean_span(table, &written);
    }

    /// Resets the dirty record of leaf entry `i` of `table` with a compare-and-swap, so
    /// that bits the hardware sets meanwhile (accessed, dirty) are not overwritten.
    ///
    /// # Safety
    /// `table` is live at `level` with more than `i` entries; entry `i` is a leaf that no
    /// map or unmap touches meanwhile.
    #[inline]
    unsafe fn clean_entry(&self, level: u32, table: NonNull<u8>, i: usize) {
        // SAFETY: the caller's guarantee.
        let mut cur = unsafe { Self::load(table, i) };
        loop {
            let clean = self.fmt.leaf_clean(level, cur);
            // SAFETY: the caller's guarantee.
            if clean == cur || unsafe { Self::cas(table, i, cur, clean) } {
                return;
            }
            // SAFETY: the caller's guarantee.
            cur = unsafe { Self::load(table, i) };
        }
    }
}
