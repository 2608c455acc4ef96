//! Unmap and the end of an unmap (sync).

use super::cursor::{CleanSpan, Cursor};
use super::*;
use crate::extent::{Extent, ExtentSink, NoReport, Report};

/// Progress of an unmap walk.
struct UnmapState<'g, S: ExtentSink> {
    unmapped: u64,
    skip_holes: bool,
    /// Also detach partly covered tables that this unmap empties (single owner only).
    reclaim: bool,
    gather: &'g mut Gather,
    /// Where removed extents go ([`NoReport`] for the plain unmaps: nothing to do).
    sink: S,
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Unmaps `pgsize * pgcount` bytes at `iova`: one or more consecutive mappings
    /// (Linux's `unmap_pages`).
    ///
    /// Returns how many bytes were unmapped and whether it stopped early:
    /// - a range that *ends* inside a large or contiguous mapping removes the whole
    ///   mapping, and the count includes all of it (it can exceed the request);
    /// - a range that *starts* inside one is refused: [`Error::WouldSplit`], nothing
    ///   changed;
    /// - unmap stops at the first hole: [`Error::NotMapped`] with the hole's IOVA, after
    ///   the bytes before it were unmapped (as Linux's generic page table does);
    /// - argument errors as for map, before any change.
    ///
    /// Tables whose whole span lies in the range are detached into `gather`; call
    /// [`Self::sync`] to invalidate and free them. Tables emptied by partial unmaps stay
    /// linked (as in Linux) and are reused or replaced by later maps.
    ///
    /// # Safety
    /// The caller holds the IOVA range exclusively (see [`Self::map_pages`]), and treats
    /// the range as still reachable by hardware until the gather is synced.
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0, 0x8000_0000, 4096, 256, Prot::READ);
    ///     let _ = pt.map_pages(0x10_0000, 0x9000_0000, 4096, 256, Prot::READ);
    ///     let mut g = Gather::new();
    ///     // One call over both earlier maps.
    ///     assert_eq!(pt.unmap_pages(0, 0x20_0000, 1, &mut g), (0x20_0000, Ok(())));
    ///     pt.sync(&mut g);
    /// }
    /// # Ok::<(), iopt::Error>(())
    /// ```
    #[must_use = "the unmapped length and the error must both be handled"]
    #[inline(always)]
    pub unsafe fn unmap_pages(
        &self,
        iova: u64,
        pgsize: u64,
        pgcount: usize,
        gather: &mut Gather,
    ) -> (u64, Result<()>) {
        // SAFETY: the caller's guarantees are passed on.
        unsafe { self.unmap_pages_with(iova, pgsize, pgcount, gather, NoReport) }
    }

    /// [`Self::unmap_pages`] with the removed extents handed to `sink` (the plain unmap
    /// passes [`NoReport`], whose calls compile away).
    ///
    /// # Safety
    /// As for [`Self::unmap_pages`].
    #[inline]
    unsafe fn unmap_pages_with<S: ExtentSink>(
        &self,
        iova: u64,
        pgsize: u64,
        pgcount: usize,
        gather: &mut Gather,
        mut sink: S,
    ) -> (u64, Result<()>) {
        // Checked once ([`Self::check_unmap`]); the common case inline (one page, the
        // check with its count a constant), the rest out of line (keeps the caller's
        // fast path free of the general path's register and stack needs).
        if pgcount == 1 {
            let (len, last) = match self.check_unmap(iova, pgsize, 1) {
                Ok(r) => r,
                Err(e) => return (0, Err(e)),
            };
            // SAFETY: the caller's guarantees are passed on.
            if let Some(n) = unsafe { self.unmap_one(iova, len, false, gather, &mut sink) } {
                return (n, Ok(()));
            }
            // SAFETY: the caller's guarantees are passed on.
            return unsafe { self.unmap_pages_general(iova, last, gather, sink) };
        }
        let last = match self.check_unmap(iova, pgsize, pgcount) {
            Ok((_, last)) => last,
            Err(e) => return (0, Err(e)),
        };
        // SAFETY: the caller's guarantees are passed on.
        unsafe { self.unmap_pages_general(iova, last, gather, sink) }
    }

    /// [`Self::unmap_pages`] beyond its inline fast path: the cursor walk.
    ///
    /// # Safety
    /// As for [`Self::unmap_pages`]; `iova ..= last` was checked.
    #[inline(never)]
    unsafe fn unmap_pages_general<S: ExtentSink>(
        &self,
        iova: u64,
        last: u64,
        gather: &mut Gather,
        sink: S,
    ) -> (u64, Result<()>) {
        // SAFETY: the caller's guarantees are passed on.
        unsafe { self.unmap_walk(iova, last, false, false, gather, sink) }
    }

    /// One leaf mapping starting at `iova` and at least `len` long (exactly `len` long
    /// when `exact`): a straight walk down and one clear, the removed extent handed to
    /// `sink`. `None`: nothing done, take the general path.
    ///
    /// # Safety
    /// As for [`Self::unmap_pages`].
    #[inline]
    pub(super) unsafe fn unmap_one<S: ExtentSink>(
        &self,
        iova: u64,
        len: u64,
        exact: bool,
        gather: &mut Gather,
        sink: &mut S,
    ) -> Option<u64> {
        let (root, top) = self.top();
        // The caller checked the range against the largest aperture, which is the
        // current one unless the top can still grow.
        if self.geo.growable && !self.in_aperture(top, iova) {
            return None;
        }
        // SAFETY: `root` is the live top; the caller owns the range.
        let cur = unsafe { self.descend(root, top, iova, 0) };
        let Pte::Leaf { run_lg2, .. } = cur.pte else {
            return None;
        };
        let size = 1u64 << (cur.entry_lg2() + run_lg2);
        // (The cursor's `starts_inside`, computed from the IOVA alone.)
        if iova & (size - 1) != 0 || size < len || (exact && size != len) {
            return None;
        }
        gather.bind(self.id);
        if S::ACTIVE {
            sink.extent(cur.extent());
        }
        let (table, first) = (cur.table, cur.idx & !((1usize << run_lg2) - 1));
        if run_lg2 == 0 {
            // SAFETY: the entry for `iova`; the caller owns the range.
            unsafe { Self::store(table, first, 0) };
        } else {
            for i in 0..cur.item_entries() {
                // SAFETY: runs never cross a table; the caller owns the range.
                unsafe { Self::store(table, first + i, 0) };
            }
        }
        self.ops.add_pages(gather, iova, size, 1);
        let mut span = CleanSpan::default();
        span.add(first, cur.item_entries());
        self.clean_span(table, &span);
        Some(size)
    }

    /// Unmaps everything mapped in `[iova, iova + len)`, skipping holes (the safe layer's
    /// primitive). Refuses to start inside a mapping ([`Error::WouldSplit`]); a mapping
    /// crossing the end is removed whole. `len` need not be a page multiple... but a
    /// range that is not aligned to the smallest page size is refused.
    ///
    /// # Safety
    /// As for [`Self::unmap_pages`].
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0x1000, 0x8000_0000, 4096, 1, Prot::READ);
    ///     let _ = pt.map_pages(0x9000, 0x8000_0000, 4096, 1, Prot::READ);
    ///     let mut g = Gather::new();
    ///     // Holes are skipped.
    ///     assert_eq!(pt.unmap_range(0, 0x10_0000, &mut g), (0x2000, Ok(())));
    ///     pt.sync(&mut g);
    /// }
    /// # Ok::<(), iopt::Error>(())
    /// ```
    #[must_use = "the unmapped length and the error must both be handled"]
    #[inline(always)]
    pub unsafe fn unmap_range(
        &self,
        iova: u64,
        len: u64,
        gather: &mut Gather,
    ) -> (u64, Result<()>) {
        // SAFETY: as the caller guarantees.
        unsafe { self.unmap_range_with(iova, len, gather, NoReport) }
    }

    /// [`Self::unmap_pages`], handing each removed mapping to `report` as an [`Extent`]
    /// (IOVA, physical address of its first byte, size, permissions), in IOVA order, in
    /// the same walk: no translation before, no second pass over the table after.
    ///
    /// What is reported is exactly what was removed, and the extents' sizes add up to the
    /// returned count:
    /// - one extent per leaf item: a page, a large page, or a whole contiguous run (ARM
    ///   contiguous hint, ARMv7 large pages, AMD v1 size-encoded pages) with its whole
    ///   size and its first byte's address, also when the range ends inside it;
    /// - a stretch of single-entry leaves, which the walk clears at once, is still one
    ///   extent per entry (physically contiguous neighbours are *not* merged here; collect
    ///   into a [`MergedExtents`](crate::MergedExtents) for that);
    /// - the leaves of a table detached whole are read from it before it goes into the
    ///   gather;
    /// - on an error before anything changed ([`Error::WouldSplit`], argument errors, a
    ///   hole at the start) nothing is reported; on [`Error::NotMapped`] after a prefix
    ///   was removed, the prefix is.
    ///
    /// `report` runs inside the unmap: it must not use this table.
    ///
    /// # Safety
    /// As for [`Self::unmap_pages`].
    ///
    /// ```
    /// use iopt::{Extent, Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut removed = Vec::new();
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0x20_0000, 0x8000_0000, 0x20_0000, 1, Prot::READ);
    ///     let _ = pt.map_pages(0x40_0000, 0x9000_0000, 0x1000, 2, Prot::READ);
    ///     let mut g = Gather::new();
    ///     let r = pt.unmap_pages_report(0x20_0000, 0x1000, 0x202, &mut g, &mut |e| removed.push(e));
    ///     assert_eq!(r, (0x20_2000, Ok(())));
    ///     pt.sync(&mut g);
    /// }
    /// let got: Vec<(u64, u64, u64)> = removed.iter().map(|e| (e.iova, e.paddr, e.size)).collect();
    /// assert_eq!(got, [(0x20_0000, 0x8000_0000, 0x20_0000), (0x40_0000, 0x9000_0000, 0x1000), (0x40_1000, 0x9000_1000, 0x1000)]);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    #[must_use = "the unmapped length and the error must both be handled"]
    pub unsafe fn unmap_pages_report<R: FnMut(Extent)>(
        &self,
        iova: u64,
        pgsize: u64,
        pgcount: usize,
        gather: &mut Gather,
        report: &mut R,
    ) -> (u64, Result<()>) {
        // SAFETY: the caller's guarantees are passed on.
        unsafe { self.unmap_pages_with(iova, pgsize, pgcount, gather, Report(report)) }
    }

    /// [`Self::unmap_range`] (holes skipped), handing each removed mapping to `report`
    /// as an [`Extent`], in IOVA order, in the same walk: see
    /// [`Self::unmap_pages_report`] for what is reported. A refused range
    /// ([`Error::WouldSplit`], argument errors) reports nothing.
    ///
    /// # Safety
    /// As for [`Self::unmap_pages`].
    ///
    /// ```
    /// use iopt::{Gather, MergedExtents, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut ext = MergedExtents::new();
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0x1000, 0x8000_1000, 0x1000, 3, Prot::READ);
    ///     let _ = pt.map_pages(0x9000, 0x7000_0000, 0x1000, 1, Prot::READ);
    ///     let mut g = Gather::new();
    ///     // Holes skipped; the three contiguous pages merge in the collector.
    ///     assert_eq!(pt.unmap_range_report(0, 0x10_0000, &mut g, &mut |e| ext.push(e)), (0x4000, Ok(())));
    ///     pt.sync(&mut g);
    /// }
    /// let got: Vec<(u64, u64, u64)> = ext.as_slice().iter().map(|e| (e.iova, e.paddr, e.size)).collect();
    /// assert_eq!(got, [(0x1000, 0x8000_1000, 0x3000), (0x9000, 0x7000_0000, 0x1000)]);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    #[must_use = "the unmapped length and the error must both be handled"]
    pub unsafe fn unmap_range_report<R: FnMut(Extent)>(
        &self,
        iova: u64,
        len: u64,
        gather: &mut Gather,
        report: &mut R,
    ) -> (u64, Result<()>) {
        // SAFETY: the caller's guarantees are passed on.
        unsafe { self.unmap_range_with(iova, len, gather, Report(report)) }
    }

    /// [`Self::unmap_range`] with the removed extents handed to `sink`.
    ///
    /// # Safety
    /// As for [`Self::unmap_pages`].
    unsafe fn unmap_range_with<S: ExtentSink>(
        &self,
        iova: u64,
        len: u64,
        gather: &mut Gather,
        sink: S,
    ) -> (u64, Result<()>) {
        let last = match self.check_bytes(iova, len) {
            Ok(last) => last,
            Err(e) => return (0, Err(e)),
        };
        // SAFETY: as the caller guarantees.
        unsafe { self.unmap_walk(iova, last, true, false, gather, sink) }
    }

    /// The cursor walk of every unmap over `iova ..= last`, reporting nothing.
    ///
    /// # Safety
    /// As for [`Self::unmap_pages`]; `iova ..= last` lies in the full aperture.
    #[inline]
    pub(crate) unsafe fn unmap_inner(
        &self,
        iova: u64,
        last: u64,
        skip_holes: bool,
        reclaim: bool,
        gather: &mut Gather,
    ) -> (u64, Result<()>) {
        // SAFETY: as the caller guarantees.
        unsafe { self.unmap_walk(iova, last, skip_holes, reclaim, gather, NoReport) }
    }

    /// The cursor walk of every unmap over `iova ..= last`, each removed extent handed to
    /// `sink` in IOVA order.
    ///
    /// # Safety
    /// As for [`Self::unmap_pages`]; `iova ..= last` lies in the full aperture.
    pub(crate) unsafe fn unmap_walk<S: ExtentSink>(
        &self,
        iova: u64,
        last: u64,
        skip_holes: bool,
        reclaim: bool,
        gather: &mut Gather,
        sink: S,
    ) -> (u64, Result<()>) {
        gather.bind(self.id);
        let (root, top) = self.top();
        let ap = self.aperture(top);
        // With a dynamic top, part of the range may lie above the current top: nothing is
        // mapped there.
        let (cur_last, beyond) = if ap.contains(iova, last) {
            (last, false)
        } else if ap.contains(iova, iova) {
            (ap.last, true)
        } else {
            return if skip_holes {
                (0, Ok(()))
            } else {
                (0, Err(Error::NotMapped(iova)))
            };
        };
        let mut st = UnmapState {
            unmapped: 0,
            skip_holes,
            reclaim,
            gather,
            sink,
        };
        let cur = Cursor::new(self, top, root, self.entries_lg2(top, top), iova, cur_last);
        // SAFETY: the caller owns the range; `root` is live.
        let r = unsafe { self.unmap_level(cur, &mut st) };
        let r = match r {
            Ok(()) if beyond && !skip_holes => Err(Error::NotMapped(cur_last.wrapping_add(1))),
            r => r,
        };
        match r {
            Err(Error::NotMapped(_)) if st.unmapped == 0 && !skip_holes => (0, r),
            r => (st.unmapped, r),
        }
    }

    /// # Safety
    /// `cur`'s table is live; the caller owns the walk's range.
    unsafe fn unmap_level<S: ExtentSink>(
        &self,
        mut cur: Cursor<'_, F, M, X>,
        st: &mut UnmapState<'_, S>,
    ) -> Result<()> {
        let mut span = CleanSpan::default();
        // SAFETY: as the caller guarantees.
        let r = unsafe { self.unmap_entries(&mut cur, st, &mut span) };
        self.clean_span(cur.table, &span);
        r
    }

    /// The body of [`Self::unmap_level`]; records the entries it writes in `span`.
    ///
    /// # Safety
    /// As for [`Self::unmap_level`].
    unsafe fn unmap_entries<S: ExtentSink>(
        &self,
        cur: &mut Cursor<'_, F, M, X>,
        st: &mut UnmapState<'_, S>,
        span: &mut CleanSpan,
    ) -> Result<()> {
        let table = cur.table;
        while !cur.done() {
            // SAFETY: the cursor's entry is inside the table.
            match unsafe { cur.load() } {
                Pte::Empty => {
                    if !st.skip_holes {
                        return Err(Error::NotMapped(cur.va()));
                    }
                }
                Pte::Leaf { run_lg2: 0, .. } if cur.at_entry_start() => {
                    // Single-entry leaves from here on (a driver's buffer of pages): one
                    // stretch, cleared and reported at once.
                    // SAFETY: the cursor's entries are inside the table.
                    let n = unsafe { cur.plain_leaves() };
                    let (base, size) = (cur.item_va(cur.idx), 1u64 << cur.entry_lg2());
                    if S::ACTIVE {
                        // One extent per entry, read before the clear.
                        // SAFETY: `idx .. idx + n` are single-entry leaves in the walk.
                        unsafe { cur.plain_extents(n, &mut st.sink) };
                    }
                    // SAFETY: `idx .. idx + n` is inside the table; the range is the
                    // caller's.
                    unsafe { Self::clear(table, cur.idx, n) };
                    span.add(cur.idx, n);
                    st.unmapped += size * n as u64;
                    self.ops.add_pages(st.gather, base, size, n);
                    cur.advance(n);
                    continue;
                }
                Pte::Leaf { .. } => {
                    let (base, size) = (cur.item_base(), cur.item_size());
                    if cur.starts_inside() {
                        return Err(Error::WouldSplit { base, size });
                    }
                    if S::ACTIVE {
                        st.sink.extent(cur.extent());
                    }
                    let first = cur.item_first();
                    for i in 0..cur.item_entries() {
                        // SAFETY: runs never cross a table; the range is the caller's.
                        unsafe { Self::store(table, first + i, 0) };
                    }
                    span.add(first, cur.item_entries());
                    st.unmapped += size;
                    self.ops.add_pages(st.gather, base, size, 1);
                }
                Pte::Table { pa } => {
                    let level = cur.level;
                    let child = self.mem.phys_to_virt(pa);
                    let covered = cur.covered();
                    let child_lg2 = self.inner_lg2(level - 1);
                    // A covered table that holds only leaves is detached whole: its
                    // entries are counted, not cleared one by one (nothing walks it
                    // once it is unlinked and the gather is synced).
                    let whole = if covered && st.gather.can_hold_table() {
                        // SAFETY: linked tables are live.
                        unsafe { self.leaf_table_bytes(level - 1, child, child_lg2, st.skip_holes) }
                    } else {
                        None
                    };
                    let detach = match whole {
                        Some(bytes) => {
                            if S::ACTIVE {
                                // Its leaves, from the table itself (not yet in the
                                // gather; the range is ours, so nothing changes them).
                                // SAFETY: live, and its whole span is the caller's.
                                unsafe {
                                    self.report_leaves(
                                        level - 1,
                                        child,
                                        child_lg2,
                                        cur.item_base(),
                                        &mut st.sink,
                                    )
                                };
                            }
                            st.unmapped += bytes;
                            true
                        }
                        None => {
                            let before = st.unmapped;
                            // SAFETY: linked tables are live; the range is the caller's.
                            unsafe { self.unmap_level(cur.child(), st)? };
                            // A partly covered table emptied by this unmap is detached too
                            // when the caller owns its whole span (the single owner).
                            (covered
                                || (st.reclaim && st.unmapped != before && {
                                    // SAFETY: live; the caller owns its whole span.
                                    unsafe { self.table_is_empty(level - 1, child, child_lg2) }
                                }))
                                && st.gather.can_hold_table()
                        }
                    };
                    if detach {
                        // SAFETY: the whole span is ours; the detached table is freed
                        // only after the gather's flush.
                        unsafe { Self::store(table, cur.idx, 0) };
                        span.add(cur.idx, 1);
                        st.gather.push_table(DetachedTable {
                            ptr: child,
                            size_lg2: self.inner_bytes_lg2(level - 1),
                        });
                        st.gather.add_range(
                            cur.item_base(),
                            cur.item_size(),
                            1 << self.item_lg2(level - 1),
                        );
                    }
                }
            }
            cur.next();
        }
        Ok(())
    }

    /// Invalidates the gathered range through the flush operations, then frees the
    /// gathered table pages (the end of an unmap in Linux's terms: `iotlb_sync`).
    ///
    /// # Panics
    /// If `gather` was filled by another table.
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// let _ = unsafe { pt.map_pages(0, 0x8000_0000, 4096, 512, Prot::READ) };
    /// let mut g = Gather::new();
    /// // SAFETY: as above.
    /// let _ = unsafe { pt.unmap_pages(0, 4096, 512, &mut g) };
    /// assert_eq!(g.pending_tables(), 1); // the emptied leaf table waits for the flush
    /// pt.sync(&mut g);
    /// assert!(g.is_empty());
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn sync(&self, gather: &mut Gather) {
        if gather.is_empty() {
            return;
        }
        assert_eq!(
            gather.owner(),
            self.id,
            "Gather synced on a different table"
        );
        if let Some((start, last)) = gather.range() {
            self.ops.flush_walk(
                start,
                last.wrapping_sub(start).wrapping_add(1),
                gather.granule(),
            );
        }
        gather.clear_range();
        while let Some(t) = gather.pop_table() {
            // SAFETY: detached by this table's unmap; the flush above ended the
            // hardware's last references; nothing else holds it.
            unsafe { self.mem.free(t.ptr, t.size_lg2) };
        }
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Detaches, into `gather`, every table whose whole span lies in `iova ..= last` and
    /// that maps nothing (with the tables below it); returns how many table pages it
    /// detached. `sync` frees them after the flush. Leaves are untouched.
    ///
    /// # Safety
    /// The caller holds `iova ..= last` exclusively (no map, unmap or lookup in it runs
    /// meanwhile); `iova <= last`.
    pub(crate) unsafe fn compact_range(&self, iova: u64, last: u64, gather: &mut Gather) -> usize {
        gather.bind(self.id);
        let (root, top) = self.top();
        let ap = self.aperture(top);
        let last = if ap.contains(iova, last) {
            last
        } else if ap.contains(iova, iova) {
            ap.last
        } else {
            return 0; // above the current top: no tables there
        };
        let cur = Cursor::new(self, top, root, self.entries_lg2(top, top), iova, last);
        // SAFETY: the caller holds the range; `root` is the live top.
        unsafe { self.compact_level(cur, gather) }
    }

    /// The body of [`Self::compact_range`] over `cur`'s walk.
    ///
    /// # Safety
    /// As for [`Self::compact_range`]; `cur`'s table is live.
    unsafe fn compact_level(&self, mut cur: Cursor<'_, F, M, X>, gather: &mut Gather) -> usize {
        let mut span = CleanSpan::default();
        let mut n = 0;
        while !cur.done() {
            // SAFETY: the cursor's entry is inside its live table.
            if let Pte::Table { pa } = unsafe { cur.load() }
                && cur.level > 0
            {
                let level = cur.level;
                let child = self.mem.phys_to_virt(pa);
                // SAFETY: linked tables are live; the caller holds the range.
                let unused = cur.covered() && unsafe { self.first_leaf(cur.child()) }.is_none();
                if unused && gather.can_hold_table() {
                    // SAFETY: the whole span is the caller's and holds no leaf; the
                    // tables are freed only after the gather's flush.
                    unsafe { Self::store(cur.table, cur.idx, 0) };
                    span.add(cur.idx, 1);
                    // SAFETY: as above: the subtree is unlinked now, and no one else
                    // walks it. The granule is the smallest item of any table in it.
                    let lowest = unsafe {
                        self.lowest_table_level(level - 1, child, self.inner_lg2(level - 1))
                    };
                    // SAFETY: as above.
                    n += unsafe { self.gather_tree(level - 1, child, gather) };
                    gather.add_range(cur.item_base(), cur.item_size(), 1 << self.item_lg2(lowest));
                } else if level > 1 {
                    // SAFETY: as above.
                    n += unsafe { self.compact_level(cur.child(), gather) };
                }
            }
            cur.next();
        }
        self.clean_span(cur.table, &span);
        n
    }

    /// Puts `table` (an inner table at `level`) and every table below it into `gather`;
    /// returns how many.
    ///
    /// # Safety
    /// The subtree is unlinked and holds no leaf; nothing but the hardware's cached walks
    /// (flushed by `sync`) reaches it.
    unsafe fn gather_tree(&self, level: u32, table: NonNull<u8>, gather: &mut Gather) -> usize {
        let mut n = 1;
        if level > 0 {
            let mut cur = Cursor::whole(self, level, table, self.inner_lg2(level), 0);
            while !cur.done() {
                // SAFETY: the caller's guarantee covers the subtree.
                unsafe { cur.load() };
                if let Some((l, child, _)) = cur.child_table() {
                    // SAFETY: as above.
                    n += unsafe { self.gather_tree(l, child, gather) };
                }
                cur.next();
            }
        }
        gather.push_table(DetachedTable {
            ptr: table,
            size_lg2: self.inner_bytes_lg2(level),
        });
        n
    }
}
