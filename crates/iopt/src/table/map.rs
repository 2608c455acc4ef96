//! Map: the one-page path, the general walk, and the private-build descent (growth of
//! the dynamic top is in `grow.rs`).

use core::ptr::NonNull;

use super::check::MapArgs;
use super::cursor::{CleanSpan, Cursor};
use super::*;

/// Progress of a map walk.
pub(super) struct MapState<'p> {
    pub(super) iova: u64,
    pub(super) pa: u64,
    pub(super) remaining: u64,
    pub(super) leaf_level: u32,
    pub(super) run_lg2: u32,
    pub(super) prot: Prot,
    /// Where new tables come from: a reservation, or (`None`) the table memory.
    pub(super) pool: Option<&'p mut Reservation>,
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Maps `pgcount` pages of `pgsize` bytes at `iova` to the physical range starting at
    /// `paddr`, with permissions `prot` (Linux's `map_pages`).
    ///
    /// Returns how many bytes were mapped and whether it failed. The four outcomes:
    /// `(len, Ok)` everything mapped; `(n < len, Ok)` cannot happen here (one call maps
    /// the whole request) but callers written for io-pgtable may loop; `(n > 0, Err)` a
    /// prefix of `n` bytes is mapped and the caller must unmap it; `(0, Err)` nothing
    /// changed. `(0, Ok)` never happens.
    ///
    /// Errors: [`Error::NoAccess`], [`Error::ZeroLength`], [`Error::BadPageSize`],
    /// [`Error::UnalignedIova`], [`Error::UnalignedPaddr`], [`Error::Overflow`],
    /// [`Error::OutOfAperture`], [`Error::PaddrTooLarge`] (all before any change);
    /// [`Error::AddressInUse`] when something is already mapped in the range (nothing is
    /// changed for that part), [`Error::OutOfMemory`].
    ///
    /// # Safety
    /// - The caller holds the IOVA range `[iova, iova + pgsize * pgcount)` exclusively:
    ///   no other map, unmap or lookup on an overlapping range runs at the same time.
    /// - The range is not already mapped (an overlap is detected and reported, but is a
    ///   usage error of this API).
    /// - If the table is live (hardware walks it), the physical range stays valid for
    ///   device access for as long as it is mapped.
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// let (mapped, r) = unsafe { pt.map_pages(0x20_0000, 0x8000_0000, 4096, 4, Prot::READ | Prot::WRITE) };
    /// assert_eq!((mapped, r), (4 * 4096, Ok(())));
    /// // Over it again: nothing changes.
    /// // SAFETY: as above.
    /// let (mapped, r) = unsafe { pt.map_pages(0x20_0000, 0, 4096, 1, Prot::READ) };
    /// assert_eq!((mapped, r), (0, Err(iopt::Error::AddressInUse(0x20_0000))));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    #[must_use = "the mapped length and the error must both be handled"]
    #[inline]
    pub unsafe fn map_pages(
        &self,
        iova: u64,
        paddr: u64,
        pgsize: u64,
        pgcount: usize,
        prot: Prot,
    ) -> (u64, Result<()>) {
        // Checked once ([`Self::check_map`]); the common case inline (one page, its tables
        // in place), the rest out of line, where nothing is checked or walked twice.
        if pgcount == 1 {
            // The check with the count a constant: no multiply, no length overflow.
            let args = match self.check_map(iova, paddr, pgsize, 1, prot) {
                Ok(args) => args,
                Err(e) => return (0, Err(e)),
            };
            // SAFETY: the caller's guarantees are passed on.
            if let Some(Ok(())) = unsafe { self.map_one(iova, paddr, args.level, args.run, prot) } {
                return (args.len, Ok(()));
            }
            // SAFETY: the caller's guarantees are passed on.
            return unsafe { self.map_few(iova, paddr, pgsize, 1, prot, args) };
        }
        let args = match self.check_map(iova, paddr, pgsize, pgcount, prot) {
            Ok(args) => args,
            Err(e) => return (0, Err(e)),
        };
        // SAFETY: the caller's guarantees are passed on.
        unsafe { self.map_few(iova, paddr, pgsize, pgcount, prot, args) }
    }

    /// [`Self::map_pages`] beyond its inline case: a few pages (a driver's buffer) page
    /// by page through [`Self::map_one`] while their tables exist, then the general walk
    /// from the first page that needs more (a new table, a leftover table, a growing
    /// top). Pages map in order either way, so the outcome is the general walk's.
    ///
    /// # Safety
    /// As for [`Self::map_pages`]; `args` are the checked arguments.
    #[inline(never)]
    unsafe fn map_few(
        &self,
        iova: u64,
        paddr: u64,
        pgsize: u64,
        pgcount: usize,
        prot: Prot,
        args: MapArgs,
    ) -> (u64, Result<()>) {
        let mut done = 0usize;
        // (Not for an incoherent walker: it wants one cache clean per table and call. A
        // single page was tried by the caller already.)
        if pgcount > 1 && pgcount <= 64 && self.opts.coherent_walk {
            while done < pgcount {
                let off = done as u64 * pgsize;
                // SAFETY: the caller's guarantees are passed on.
                match unsafe { self.map_one(iova + off, paddr + off, args.level, args.run, prot) } {
                    Some(Ok(())) => done += 1,
                    Some(Err(e)) => {
                        if let Error::AddressInUse(_) = e {
                            self.note_overlap();
                        }
                        return (off, Err(e));
                    }
                    None => break,
                }
            }
            if done == pgcount {
                return (args.len, Ok(()));
            }
        }
        let off = done as u64 * pgsize;
        // SAFETY: the caller's guarantees are passed on; the first `done` pages are mapped
        // and the rest continues where they end.
        let (mapped, r) =
            unsafe { self.map_walk(iova + off, paddr + off, args.len - off, args, prot, None) };
        (off + mapped, r)
    }

    /// [`Self::map_pages`] taking every new table from `reservation` instead of the table
    /// memory: it never allocates. If the reservation runs dry (the map was not part of
    /// the plan it was made for) the map stops with [`Error::ReservationExhausted`]; a
    /// reservation made by another table is refused with
    /// [`Error::ForeignReservation`], nothing changed.
    ///
    /// # Safety
    /// As for [`Self::map_pages`].
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut r = pt.reserve(&[(0x4000_0000, 0x1_0000)])?;
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// let (mapped, res) = unsafe {
    ///     pt.map_pages_reserved(0x4000_0000, 0x8000_0000, 4096, 16, Prot::READ, &mut r)
    /// };
    /// assert_eq!((mapped, res), (0x1_0000, Ok(())));
    /// pt.release(r);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    #[must_use = "the mapped length and the error must both be handled"]
    pub unsafe fn map_pages_reserved(
        &self,
        iova: u64,
        paddr: u64,
        pgsize: u64,
        pgcount: usize,
        prot: Prot,
        reservation: &mut Reservation,
    ) -> (u64, Result<()>) {
        let args = match self
            .check_reservation(reservation)
            .and_then(|()| self.check_map(iova, paddr, pgsize, pgcount, prot))
        {
            Ok(args) => args,
            Err(e) => return (0, Err(e)),
        };
        // SAFETY: the caller's guarantees are passed on.
        unsafe { self.map_walk(iova, paddr, args.len, args, prot, Some(reservation)) }
    }

    /// The general map walk of `len` bytes of checked pages (`args`) at `iova`: one
    /// entry through [`Self::map_one`] when that is all, else through the cursor walk,
    /// growing the top where needed.
    ///
    /// # Safety
    /// As for [`Self::map_pages`]; `args` are the checked arguments of a request that
    /// covers `iova .. iova + len`.
    #[inline(never)]
    pub(super) unsafe fn map_walk(
        &self,
        iova: u64,
        paddr: u64,
        len: u64,
        args: MapArgs,
        prot: Prot,
        pool: Option<&mut Reservation>,
    ) -> (u64, Result<()>) {
        let (leaf_level, run_lg2) = (args.level, args.run);
        if pool.is_some() && len == 1u64 << (self.item_lg2(leaf_level) + run_lg2) {
            // SAFETY: the caller's guarantees are passed on.
            if let Some(r) = unsafe { self.map_one(iova, paddr, leaf_level, run_lg2, prot) } {
                if let Err(Error::AddressInUse(_)) = r {
                    self.note_overlap();
                }
                return (if r.is_ok() { len } else { 0 }, r);
            }
        }
        let mut st = MapState {
            iova,
            pa: paddr,
            remaining: len,
            leaf_level,
            run_lg2,
            prot,
            pool,
        };
        // SAFETY: the caller's guarantees are passed on.
        let r = unsafe { self.map_grow(&mut st, iova.wrapping_add(len - 1)) };
        if let Err(Error::AddressInUse(_)) = r {
            self.note_overlap();
        }
        (len - st.remaining, r)
    }

    /// One page (entry or run) where every table on the way exists: a straight walk down
    /// and one write, without the general descent. `None`: take the general path (a
    /// table is missing, a leftover table is in the way, or the top must grow).
    ///
    /// # Safety
    /// As for [`Self::map_pages`].
    #[inline]
    pub(super) unsafe fn map_one(
        &self,
        iova: u64,
        pa: u64,
        leaf_level: u32,
        run_lg2: u32,
        prot: Prot,
    ) -> Option<Result<()>> {
        let (root, top) = self.top();
        let item_lg2 = self.item_lg2(leaf_level);
        // The caller checked the range against the largest aperture, which is the
        // current one unless the top can still grow.
        if self.geo.growable {
            let last = iova.wrapping_add((1u64 << (item_lg2 + run_lg2)) - 1);
            if leaf_level > top || !self.in_aperture(top, iova) || !self.in_aperture(top, last) {
                return None;
            }
        }
        // SAFETY: `root` is the live top; the caller owns the range. (The smallest pages
        // get a descent whose end level is a constant.)
        let cur = unsafe {
            if leaf_level == 0 {
                self.descend(root, top, iova, 0)
            } else {
                self.descend(root, top, iova, leaf_level)
            }
        };
        let (level, table, idx) = (cur.level, cur.table, cur.idx);
        if level != leaf_level {
            return match cur.pte {
                Pte::Leaf { .. } => Some(Err(Error::AddressInUse(iova))),
                _ => None,
            };
        }
        if run_lg2 == 0 {
            // The common case, without the run loops. (The entry is read again: cheaper
            // than keeping the descent's decoded copy alive.)
            // SAFETY: `idx` is the entry for `iova` in `table`.
            let e = unsafe { Self::load(table, idx) };
            return match self.fmt.decode(level, e) {
                Pte::Empty => {
                    let v = self.leaf_template(level, pa, 0, prot);
                    // SAFETY: `idx` is the entry for `iova` in `table`; the caller owns
                    // the range.
                    unsafe { Self::store(table, idx, v) };
                    let mut span = CleanSpan::default();
                    span.add(idx, 1);
                    self.clean_span(table, &span);
                    Some(Ok(()))
                }
                Pte::Leaf { .. } => Some(Err(Error::AddressInUse(iova))),
                Pte::Table { .. } => None,
            };
        }
        // SAFETY: passed on.
        unsafe { self.map_one_run(table, level, idx, iova, pa, run_lg2, prot) }
    }

    /// The run case of [`Self::map_one`] (out of line: it keeps the one-entry case's
    /// registers free): entries `idx ..` of `table` at `level` get the run of `2^run_lg2`
    /// entries mapping `pa` at `iova`. `None`: a leftover table is in the way.
    ///
    /// # Safety
    /// As for [`Self::map_pages`]; `idx` is the run's first entry in the live `table`.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    unsafe fn map_one_run(
        &self,
        table: NonNull<u8>,
        level: u32,
        idx: usize,
        iova: u64,
        pa: u64,
        run_lg2: u32,
        prot: Prot,
    ) -> Option<Result<()>> {
        let item_lg2 = self.item_lg2(level);
        let run = 1usize << run_lg2;
        for i in 0..run {
            // SAFETY: runs are aligned and never cross a table.
            let e = unsafe { Self::load(table, idx + i) };
            match self.fmt.decode(level, e) {
                Pte::Empty => {}
                Pte::Leaf { .. } => {
                    return Some(Err(Error::AddressInUse(iova + ((i as u64) << item_lg2))));
                }
                Pte::Table { .. } => return None,
            }
        }
        let first = self.leaf_template(level, pa, run_lg2, prot);
        let step = self.fmt.run_step(level, run_lg2);
        for i in 0..run {
            // SAFETY: as above; the caller owns the range.
            unsafe {
                Self::store(
                    table,
                    idx + i,
                    first.wrapping_add(step.wrapping_mul(i as u64)),
                )
            };
        }
        let mut span = CleanSpan::default();
        span.add(idx, run);
        self.clean_span(table, &span);
        Some(Ok(()))
    }

    /// The cursor of a map walk over what `st` describes, in the top table `root` at
    /// `top`.
    #[inline]
    pub(super) fn top_cursor<'t>(
        &'t self,
        root: NonNull<u8>,
        top: u32,
        st: &MapState<'_>,
    ) -> Cursor<'t, F, M, X> {
        Cursor::new(
            self,
            top,
            root,
            self.entries_lg2(top, top),
            st.iova,
            st.iova.wrapping_add(st.remaining - 1),
        )
    }

    /// Maps the part of `st` that falls in `cur`'s table and below. `private`: the table
    /// is not linked yet (built by this call); it is then cleaned whole before it is
    /// linked instead of entry by entry.
    ///
    /// # Safety
    /// `cur`'s table is a live table of this page table (top at `top`), or a private one
    /// about to be linked; its walk is `st.iova ..= st.iova + st.remaining - 1`; the
    /// caller owns the IOVA range.
    pub(super) unsafe fn map_level(
        &self,
        mut cur: Cursor<'_, F, M, X>,
        top: u32,
        st: &mut MapState<'_>,
        private: bool,
    ) -> Result<()> {
        let mut span = CleanSpan::default();
        // SAFETY: as the caller guarantees.
        let r = unsafe { self.map_entries(&mut cur, top, st, private, &mut span) };
        if !private {
            self.clean_span(cur.table, &span);
        }
        r
    }

    /// The body of [`Self::map_level`]; records the entries it writes in `span`.
    ///
    /// # Safety
    /// As for [`Self::map_level`].
    unsafe fn map_entries(
        &self,
        cur: &mut Cursor<'_, F, M, X>,
        top: u32,
        st: &mut MapState<'_>,
        private: bool,
        span: &mut CleanSpan,
    ) -> Result<()> {
        let fmt = &self.fmt;
        let level = cur.level;
        let table = cur.table;
        let item_lg2 = cur.entry_lg2();
        if level == st.leaf_level {
            let run = 1usize << st.run_lg2;
            let size = 1u64 << (item_lg2 + st.run_lg2);
            let step = fmt.run_step(level, st.run_lg2);
            // Single entries into a fresh table, or into entries that all read zero (a
            // driver's buffer into leaf tables already there): one check of the whole
            // stretch, then one fill, instead of a decode and a store per entry.
            // SAFETY: the cursor's entries are inside the table.
            if run == 1 && (private || unsafe { cur.rest_empty() }) {
                let (idx, count) = (cur.idx, cur.end - cur.idx);
                let (pa, prot) = (st.pa, st.prot);
                // SAFETY: `idx .. idx + count` is inside the table; the caller owns the
                // range; a private table is the caller's alone.
                unsafe {
                    if F::OA_IN_PLACE {
                        let first = self.leaf_template(level, pa, 0, prot);
                        Self::fill(table, idx, count, private, |i| {
                            first.wrapping_add((i as u64) << item_lg2)
                        });
                    } else {
                        Self::fill(table, idx, count, private, |i| {
                            self.leaf_template(
                                level,
                                pa.wrapping_add((i as u64) << item_lg2),
                                0,
                                prot,
                            )
                        });
                    }
                }
                if !private {
                    span.add(idx, count);
                }
                cur.advance(count);
                let bytes = (count as u64) << item_lg2;
                st.iova = st.iova.wrapping_add(bytes);
                st.pa = st.pa.wrapping_add(bytes);
                st.remaining -= bytes;
                return Ok(());
            }
            // The body steps by the map's own run (the page size it writes).
            while !cur.done() {
                let idx = cur.idx;
                // Check every slot of the run before writing any. A private table is
                // filled front to back by this call alone, so its slots ahead are empty.
                let mut leftover_tables = false;
                for i in 0..if private { 0 } else { run } {
                    // SAFETY: runs are aligned and never cross a table (the format's
                    // run sizes divide the table), so idx + i is inside it.
                    let e = unsafe { Self::load(table, idx + i) };
                    let slot = cur.item_va(idx + i);
                    match fmt.decode(level, e) {
                        Pte::Empty => {}
                        Pte::Leaf { .. } => return Err(Error::AddressInUse(slot)),
                        Pte::Table { pa } => {
                            let used = if level == 0 {
                                Some(slot)
                            } else {
                                // SAFETY: a linked table below a table we walk is live.
                                unsafe {
                                    self.subtree_first_leaf(
                                        level - 1,
                                        self.mem.phys_to_virt(pa),
                                        self.inner_lg2(level - 1),
                                        slot,
                                    )
                                }
                            };
                            if used.is_some() {
                                // The raw map names the slot it was placing (the safe
                                // layer's plan names the first IOVA in use).
                                return Err(Error::AddressInUse(slot));
                            }
                            leftover_tables = true;
                        }
                    }
                }
                if leftover_tables {
                    // Empty tables left by earlier partial unmaps: detach, invalidate the
                    // walk caches for them, free, then write the leaf (break-before-make).
                    for i in 0..run {
                        // SAFETY: as above.
                        let e = unsafe { Self::load(table, idx + i) };
                        if let Pte::Table { pa } = fmt.decode(level, e) {
                            let slot = cur.item_va(idx + i);
                            span.add(idx + i, 1);
                            // The cleared link must reach an incoherent walker before the
                            // flush, or it could walk the freed table afterwards.
                            let mut cleared = CleanSpan::default();
                            cleared.add(idx + i, 1);
                            let child = self.mem.phys_to_virt(pa);
                            let child_lg2 = self.inner_lg2(level - 1);
                            // SAFETY: the caller owns the slot's range; the subtree holds
                            // no leaf; after the walk flush nothing references it. The
                            // flush's granule is the smallest item of any table in the
                            // subtree (the walk caches may hold entries of each).
                            unsafe {
                                let lowest = self.lowest_table_level(level - 1, child, child_lg2);
                                Self::store(table, idx + i, 0);
                                self.clean_span(table, &cleared);
                                self.ops.flush_walk(
                                    slot,
                                    1 << item_lg2,
                                    1 << self.item_lg2(lowest),
                                );
                                self.free_tree(level - 1, child, child_lg2, None);
                            }
                        }
                    }
                }
                let first = self.leaf_template(level, st.pa, st.run_lg2, st.prot);
                for i in 0..run {
                    // SAFETY: as above.
                    unsafe {
                        Self::store(
                            table,
                            idx + i,
                            first.wrapping_add(step.wrapping_mul(i as u64)),
                        )
                    };
                }
                span.add(idx, run);
                st.iova = st.iova.wrapping_add(size);
                st.pa = st.pa.wrapping_add(size);
                st.remaining -= size;
                cur.advance(run);
            }
            return Ok(());
        }
        while !cur.done() {
            // SAFETY: the cursor's entry is inside the table.
            match unsafe { cur.load() } {
                Pte::Leaf { .. } => return Err(Error::AddressInUse(cur.va())),
                Pte::Table { .. } => {
                    // SAFETY: linked tables are live; the range is the caller's.
                    unsafe { self.map_level(cur.child(), top, st, private)? };
                }
                Pte::Empty => {
                    let child_lg2 = self.inner_bytes_lg2(level - 1);
                    let child = self.new_table(child_lg2, &mut st.pool)?;
                    let saved = (st.iova, st.pa, st.remaining);
                    // SAFETY: `child` is private, zeroed, sized for level - 1.
                    let r = unsafe { self.map_level(cur.child_at(child), top, st, true) };
                    if st.remaining == saved.2 {
                        // SAFETY: never linked.
                        unsafe {
                            self.free_tree(
                                level - 1,
                                child,
                                self.inner_lg2(level - 1),
                                st.pool.as_deref_mut(),
                            )
                        };
                        return r;
                    }
                    self.clean_new_table(child, child_lg2);
                    let link = fmt.make_table(level, self.mem.virt_to_phys(child));
                    // SAFETY: the cursor's entry; `cur.raw` is the value we saw.
                    if unsafe { Self::cas(table, cur.idx, cur.raw, link) } {
                        span.add(cur.idx, 1);
                        r?;
                    } else {
                        // Lost the race: another thread linked a table here. Drop ours
                        // (never visible) and redo this entry through the winner's.
                        // SAFETY: never linked.
                        unsafe {
                            self.free_tree(
                                level - 1,
                                child,
                                self.inner_lg2(level - 1),
                                st.pool.as_deref_mut(),
                            )
                        };
                        (st.iova, st.pa, st.remaining) = saved;
                        continue;
                    }
                }
            }
            cur.next();
        }
        Ok(())
    }
}
