//! Cut: replace a large page or a run of entries that crosses an IOVA by an equivalent
//! set of smaller mappings, built privately and installed atomically, so that a later
//! unmap or protect can stop at that IOVA.
//!
//! The replacement of a leaf item (a large page, or a run of `2^c` entries at one level)
//! that the IOVA `x` falls inside:
//! - the entries of the item on either side of `x` keep their level and are regrouped
//!   into the largest runs the level allows that do not cross `x`;
//! - the entry `x` falls strictly inside becomes a link to a private table, filled by the
//!   map walk ([`PageTable::map_level`]) with the largest pages on each side of `x`
//!   (deeper private tables where `x` is still inside an entry).
//!
//! Permissions come from the old leaf ([`Format::leaf_prot`], which every format makes
//! round-trip through [`Format::make_leaf`]); with dirty tracking, a dirty item gives
//! dirty smaller entries and a clean one clean entries.

use core::ptr::NonNull;

use super::auto::Pieces;
use super::cursor::{CleanSpan, Cursor};
use super::map::MapState;
use super::*;

/// Whether an edit that the hardware only allows with break-before-make may be made that
/// way: the entry is invalidated, the IOTLB flushed through [`FlushOps::flush_walk`], and
/// the new entry installed. Between the invalidation and the install (one flush long) a
/// device access to the entry's range faults as a translation fault; use it only where
/// the device is quiesced or the driver handles (and retries) those faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Bbm {
    /// Refuse with [`Error::NeedsBreakBeforeMake`], changing nothing (the default).
    #[default]
    Refuse,
    /// Do it with break-before-make where the hardware requires it (hitless elsewhere).
    Allow,
}

/// What a cut did: the mapping it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Base IOVA of the large page or run that was replaced.
    pub base: u64,
    /// Its size.
    pub size: u64,
    /// True if it was done with break-before-make (see [`Bbm`]).
    pub bbm: bool,
}

/// The leaf item a cut at some IOVA replaces.
struct Item {
    level: u32,
    table: NonNull<u8>,
    /// Index of the item's first entry, and its entry count.
    first: usize,
    count: usize,
    /// IOVA and output address of the item's start, its size, its entries' size (log2).
    base: u64,
    pa: u64,
    size: u64,
    entry_lg2: u32,
    prot: Prot,
}

/// The most private tables one cut builds at the replaced leaf's level: the one `iova`
/// is inside, and full tables where no leaf of that level fits beside it (AMD v1's level
/// with 1 TiB runs but no 512 GiB page: at most one per side). Checked by the catalogue
/// tests.
const MAX_TABLES: usize = 8;

/// One part of a cut's replacement at the replaced leaf's level.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A leaf (a run of the level's entries) of `size` bytes at `va`.
    Leaf { va: u64, size: u64 },
    /// The entry at `va`, which the cut point is inside: a private table cut again.
    Split { va: u64 },
    /// The entry at `va`, beside the cut, where no leaf of the level fits: a private
    /// table of smaller leaves.
    Full { va: u64 },
}

/// The steps of a cut's replacement, in IOVA order: the largest runs of the level that
/// do not cross the cut point, entry by entry otherwise.
struct Steps {
    /// The leaf sizes the level may use (runs smaller than the item).
    sizes: u64,
    entry: u64,
    at: u64,
    end: u64,
    cut: u64,
}

impl Iterator for Steps {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        if self.at == self.end {
            return None;
        }
        let va = self.at;
        let e = self.entry;
        if va < self.cut && self.cut - va < e {
            self.at = va.wrapping_add(e);
            return Some(Step::Split { va });
        }
        // Up to the cut point, or to the end of the item.
        let limit = if va < self.cut { self.cut } else { self.end };
        let room = limit.wrapping_sub(va);
        let aligned = mask_lg2(va.trailing_zeros().min(63) + 1);
        let fits = self.sizes & aligned & mask_lg2(64 - room.leading_zeros());
        // The entry the cut is inside is a split, so room is at least one entry.
        if fits == 0 {
            self.at = va.wrapping_add(e);
            return Some(Step::Full { va });
        }
        let size = 1u64 << (63 - fits.leading_zeros());
        self.at = va.wrapping_add(size);
        Some(Step::Leaf { va, size })
    }
}

/// Progress of a cut's install.
struct InstallState<'a> {
    /// The next entry of the item to install.
    next: usize,
    /// The private tables of the cut.
    tables: &'a [Option<NonNull<u8>>],
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Cuts the table at `iova`: afterwards no large page, contiguous run or size-encoded
    /// entry crosses `iova`, and every IOVA translates exactly as before (address,
    /// permissions, dirty state). Returns the mapping that was replaced, or `None` when
    /// nothing crossed `iova` (a hole, or a mapping boundary already).
    ///
    /// The replacement uses the largest page sizes on each side of `iova` (runs
    /// included), is built in private tables and installed with one compare-and-swap per
    /// entry of the old item; while it happens a walk finds the old or the new entries,
    /// which translate alike. Whether the hardware accepts that without
    /// break-before-make is the format's [`Format::cut_hitless`]; where it does not,
    /// the cut is refused with [`Error::NeedsBreakBeforeMake`] unless `bbm` is
    /// [`Bbm::Allow`]. A cut allocates at most one table per level below the replaced
    /// leaf ([`Self::cut_tables`] counts them exactly).
    ///
    /// Errors, with nothing changed: [`Error::UnalignedIova`] (to the smallest page
    /// size), [`Error::OutOfAperture`], [`Error::NeedsBreakBeforeMake`],
    /// [`Error::OutOfMemory`] (or [`Error::TableOutOfReach`]).
    ///
    /// # Safety
    /// The caller holds the whole span of the mapping that contains `iova` (no map,
    /// unmap, lookup or other edit of it runs at the same time); if the table is live,
    /// as for [`Self::map_pages`].
    ///
    /// ```
    /// use iopt::{Bbm, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0x4000_0000, 0x8000_0000, 0x20_0000, 1, Prot::READ);
    ///     let cut = pt.cut(0x4000_5000, Bbm::Refuse)?.expect("a 2M page crossed it");
    ///     assert_eq!((cut.base, cut.size), (0x4000_0000, 0x20_0000));
    ///     // Same translation, now from 4K pages.
    ///     let t = pt.translate(0x4000_5000).unwrap();
    ///     assert_eq!((t.pa, t.size), (0x8000_5000, 0x1000));
    ///     assert_eq!(pt.cut(0x4000_5000, Bbm::Refuse)?, None); // nothing crosses it now
    /// }
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub unsafe fn cut(&self, iova: u64, bbm: Bbm) -> Result<Option<Cut>> {
        // SAFETY: passed on.
        unsafe { self.cut_inner(iova, bbm, None, None) }
    }

    /// [`Self::cut`] taking its tables from `reservation` (made with
    /// [`Self::reserve_cuts`], or any reservation holding pages of the sizes needed):
    /// it then never allocates. [`Error::ReservationExhausted`] if the reservation holds
    /// too few; [`Error::ForeignReservation`] if it is another table's.
    ///
    /// # Safety
    /// As for [`Self::cut`].
    ///
    /// ```
    /// use iopt::{Bbm, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0x4000_0000, 0x8000_0000, 0x4000_0000, 1, Prot::READ);
    ///     let mut r = pt.reserve_cuts(&[0x4000_1000])?; // a 2M table and a 4K table
    ///     assert_eq!(r.pages(), 2);
    ///     pt.cut_reserved(0x4000_1000, Bbm::Refuse, &mut r)?;
    ///     assert_eq!(r.pages(), 0);
    ///     pt.release(r);
    /// }
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub unsafe fn cut_reserved(
        &self,
        iova: u64,
        bbm: Bbm,
        reservation: &mut Reservation,
    ) -> Result<Option<Cut>> {
        self.check_reservation(reservation)?;
        // SAFETY: passed on.
        unsafe { self.cut_inner(iova, bbm, Some(reservation), None) }
    }

    /// The table pages cuts at `cuts` would allocate, for the table as it is now. A table
    /// that two neighbouring cuts (in the order given) would share is counted once; cuts
    /// given out of order may be counted more than once (never fewer).
    ///
    /// Errors: those of [`Self::cut`]'s argument check, for the first bad IOVA.
    ///
    /// # Safety
    /// No map, unmap or edit of the mappings containing `cuts` runs meanwhile.
    ///
    /// ```
    /// use iopt::{NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0, 0x8000_0000, 0x20_0000, 2, Prot::READ);
    ///     // One 4K table for each 2M page; the boundary between them needs nothing.
    ///     assert_eq!(pt.cut_tables(&[0x1000, 0x20_0000, 0x20_3000])?.total(), 2);
    ///     assert_eq!(pt.cut_tables(&[0x1000, 0x2000])?.total(), 1); // one table shared
    /// }
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub unsafe fn cut_tables(&self, cuts: &[u64]) -> Result<TableCounts> {
        let mut counts = TableCounts::default();
        // Per level, the (leaf base, index of the entry at the level above) of the last
        // path table counted: a neighbour cut inside the same entry shares it.
        let mut last: [Option<(u64, u64)>; 8] = [None; 8];
        for &iova in cuts {
            self.check_cut(iova)?;
            // SAFETY: the caller's guarantee.
            let Some(item) = (unsafe { self.cut_item(iova) }) else {
                continue;
            };
            // Full tables beside the cut at the item's own level (see `Step::Full`).
            for step in self.cut_steps(&item, iova) {
                if let Step::Full { .. } = step {
                    self.count_full(item.level - 1, 1, &mut counts);
                }
            }
            // The tables on `iova`'s path: one at each level whose entry above is split.
            // Beside the path entry, a table's entries are leaves where the level has
            // leaves of its entries' size, else full tables down to a level that has.
            for level in 0..item.level {
                let above = self.item_lg2(level + 1);
                if iova & mask_lg2(above) == 0 {
                    continue;
                }
                let key = Some((item.base, iova >> above));
                if last[level as usize & 7] == key {
                    continue;
                }
                last[level as usize & 7] = key;
                counts.add(self.inner_bytes_lg2(level), 1);
                if level > 0 {
                    let span_lg2 = self.item_lg2(level) + self.inner_lg2(level);
                    let tb = iova & !mask_lg2(span_lg2);
                    let full = self
                        .level_steps(level, tb, tb.wrapping_add(1 << span_lg2), iova)
                        .filter(|s| matches!(s, Step::Full { .. }))
                        .count();
                    self.count_full(level - 1, full as u64, &mut counts);
                }
            }
        }
        Ok(counts)
    }

    /// The steps of a private table at `level` over `[at, end)` cut at `cut` (`end` for
    /// none): the runs of the level where they fit, split and full entries elsewhere.
    fn level_steps(&self, level: u32, at: u64, end: u64, cut: u64) -> Steps {
        let e = 1u64 << self.item_lg2(level);
        let sizes = (0..self.inner_lg2(level))
            .filter(|c| self.fmt.leaf_runs(level) & (1 << c) != 0)
            .fold(0u64, |b, c| b | (e << c));
        Steps {
            sizes,
            entry: e,
            at,
            end,
            cut,
        }
    }

    /// Adds `n` full private tables at `level` (mapped by the largest leaves the levels
    /// allow) to `counts`.
    fn count_full(&self, level: u32, n: u64, counts: &mut TableCounts) {
        if n == 0 {
            return;
        }
        counts.add(self.inner_bytes_lg2(level), n);
        if level > 0 {
            let span = 1u64 << (self.item_lg2(level) + self.inner_lg2(level));
            let full = self
                .level_steps(level, 0, span, span)
                .filter(|s| matches!(s, Step::Full { .. }))
                .count();
            self.count_full(level - 1, n * full as u64, counts);
        }
    }

    /// A reservation holding exactly the tables of [`Self::cut_tables`] for `cuts`:
    /// the cuts made with [`Self::cut_reserved`] then cannot fail for memory.
    ///
    /// # Safety
    /// As for [`Self::cut_tables`], until the cuts are made.
    ///
    /// ```
    /// use iopt::{Bbm, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0, 0x8000_0000, 0x20_0000, 1, Prot::READ);
    ///     let r = pt.reserve_cuts(&[0x1000])?;
    ///     assert_eq!(r.pages(), 1);
    ///     pt.release(r);
    /// }
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub unsafe fn reserve_cuts(&self, cuts: &[u64]) -> Result<Reservation> {
        // SAFETY: passed on.
        let counts = unsafe { self.cut_tables(cuts)? };
        self.reserve_counts(&counts)
    }

    /// The mapping a cut at `iova` would replace, `(base, size)`, and whether the cut
    /// would be refused for want of break-before-make (`Err`), without changing anything.
    ///
    /// # Safety
    /// As for [`Self::cut_tables`].
    pub(crate) unsafe fn cut_would(&self, iova: u64, bbm: Bbm) -> Result<Option<(u64, u64)>> {
        // SAFETY: passed on.
        match unsafe { self.cut_item(iova) } {
            None => Ok(None),
            Some(item) if self.fmt.cut_hitless() || bbm == Bbm::Allow => {
                Ok(Some((item.base, item.size)))
            }
            Some(item) => Err(Error::NeedsBreakBeforeMake {
                base: item.base,
                size: item.size,
            }),
        }
    }

    /// The leaf item crossing `iova` (its base below `iova`), if any.
    ///
    /// # Safety
    /// As for [`Self::cut_tables`].
    unsafe fn cut_item(&self, iova: u64) -> Option<Item> {
        let (root, top) = self.top();
        if !self.in_aperture(top, iova) {
            return None;
        }
        // SAFETY: `root` is the live top; the caller keeps unmaps of `iova` away.
        let cur = unsafe { self.descend(root, top, iova, 0) };
        let Pte::Leaf { pa, .. } = cur.pte else {
            return None;
        };
        let base = cur.item_base();
        (base != iova).then(|| Item {
            level: cur.level,
            table: cur.table,
            first: cur.item_first(),
            count: cur.item_entries(),
            base,
            pa,
            size: cur.item_size(),
            entry_lg2: cur.entry_lg2(),
            prot: self.fmt.leaf_prot(cur.level, cur.raw),
        })
    }

    /// [`Self::cut`] with its tables from `pool` when given; with `bound`, a mapping
    /// reaching outside `first ..= last` is refused with [`Error::OutsideGuard`] (a
    /// guard may only replace what it holds).
    ///
    /// # Safety
    /// As for [`Self::cut`].
    pub(crate) unsafe fn cut_inner(
        &self,
        iova: u64,
        bbm: Bbm,
        mut pool: Option<&mut Reservation>,
        bound: Option<(u64, u64)>,
    ) -> Result<Option<Cut>> {
        self.check_cut(iova)?;
        // SAFETY: the caller holds the mapping.
        let Some(item) = (unsafe { self.cut_item(iova) }) else {
            return Ok(None);
        };
        let item_last = item.base.wrapping_add(item.size - 1);
        if let Some((first, last)) = bound
            && (item.base < first || item_last > last)
        {
            return Err(Error::OutsideGuard {
                iova: item.base,
                last: item_last,
            });
        }
        let hitless = self.fmt.cut_hitless();
        if !hitless && bbm == Bbm::Refuse {
            return Err(Error::NeedsBreakBeforeMake {
                base: item.base,
                size: item.size,
            });
        }
        let fmt = &self.fmt;
        let track = fmt.tracks_dirty();
        let entries = item.first..item.first + item.count;
        let mut dirty = track
            && entries.clone().any(|i| {
                // SAFETY: a run never crosses its table.
                fmt.leaf_dirty(item.level, unsafe { Self::load(item.table, i) })
            });
        let e = 1u64 << item.entry_lg2;
        let steps = self.cut_steps(&item, iova);
        // Build every private table first, so that a failure changes nothing: the one
        // for the entry `iova` is inside, and full ones where no leaf of the item's
        // level fits.
        let mut built: [Option<NonNull<u8>>; MAX_TABLES] = [None; MAX_TABLES];
        let mut n_built = 0;
        for step in steps {
            let (v, cut) = match step {
                Step::Leaf { .. } => continue,
                Step::Split { va } => (va, Some(iova)),
                Step::Full { va } => (va, None),
            };
            let pa = item.pa + (v - item.base);
            // SAFETY: builds private tables only.
            let t =
                unsafe { self.cut_build(item.level - 1, v, pa, cut, item.prot, dirty, &mut pool) };
            match t {
                Ok(t) if n_built < MAX_TABLES => {
                    built[n_built] = Some(t);
                    n_built += 1;
                }
                r => {
                    let lg2 = self.inner_lg2(item.level - 1);
                    for t in built.iter().flatten().copied().chain(r.ok()) {
                        // SAFETY: never linked.
                        unsafe { self.free_tree(item.level - 1, t, lg2, pool.as_deref_mut()) };
                    }
                    return Err(r.err().unwrap_or(Error::OutOfMemory));
                }
            }
        }
        let built = &built[..n_built];
        let child_lg2 = self.inner_lg2(item.level.saturating_sub(1));
        let mut span = CleanSpan::default();
        span.add(item.first, item.count);
        if !hitless {
            // Break: clear every entry of the item, collecting dirty marks the hardware
            // sets until the moment each is cleared; make the clear visible to the
            // walker; invalidate; only then install.
            let was = dirty;
            for i in entries.clone() {
                // SAFETY: inside the table; the caller holds the mapping.
                let old = unsafe { self.swap_entry(item.table, i, |_| 0) };
                dirty |= track && fmt.leaf_dirty(item.level, old);
            }
            self.clean_span(item.table, &span);
            self.ops.flush_walk(item.base, item.size, e);
            if dirty && !was {
                for &t in built.iter().flatten() {
                    // SAFETY: still private.
                    unsafe { self.restamp_tree(item.level - 1, t, child_lg2, true) };
                }
            }
        }
        for &t in built.iter().flatten() {
            self.clean_new_table(t, self.inner_bytes_lg2(item.level - 1));
        }
        // Install, in IOVA order: runs of the item's level beside `iova`, links to the
        // private tables.
        let mut installed = InstallState {
            next: item.first,
            tables: built,
        };
        let mut k = 0;
        for step in self.cut_steps(&item, iova) {
            let (v, size, link) = match step {
                Step::Leaf { va, size } => (va, size, None),
                Step::Split { va } | Step::Full { va } => {
                    let t = built[k].expect("built above");
                    k += 1;
                    (
                        va,
                        e,
                        Some(fmt.make_table(item.level, self.mem.virt_to_phys(t))),
                    )
                }
            };
            let at = item.first + ((v - item.base) >> item.entry_lg2) as usize;
            if let Some(link) = link {
                // SAFETY: inside the table; the caller holds the mapping.
                unsafe { self.install(&item, at, link, hitless, &mut dirty, &mut installed) };
                continue;
            }
            let run_lg2 = size.trailing_zeros() - item.entry_lg2;
            let step = fmt.run_step(item.level, run_lg2);
            let first = fmt.make_leaf(item.level, item.pa + (v - item.base), run_lg2, item.prot);
            for r in 0..1usize << run_lg2 {
                let new = first.wrapping_add(step.wrapping_mul(r as u64));
                let new = self.stamp(item.level, new, dirty);
                // SAFETY: inside the table; the caller holds the mapping.
                unsafe { self.install(&item, at + r, new, hitless, &mut dirty, &mut installed) };
            }
        }
        self.clean_span(item.table, &span);
        Ok(Some(Cut {
            base: item.base,
            size: item.size,
            bbm: !hitless,
        }))
    }

    /// The replacement of `item` for a cut at `iova`, in IOVA order (see [`Step`]).
    fn cut_steps(&self, item: &Item, iova: u64) -> Steps {
        let e = 1u64 << item.entry_lg2;
        let sizes = (0..item.count.trailing_zeros())
            .filter(|c| self.fmt.leaf_runs(item.level) & (1 << c) != 0)
            .fold(0u64, |b, c| b | (e << c));
        Steps {
            sizes,
            entry: e,
            at: item.base,
            end: item.base.wrapping_add(item.size),
            cut: iova,
        }
    }

    /// Builds the private table (at `level`) that replaces the entry at `ebase` (output
    /// address `epa`), with the largest pages on each side of `iova` (or over all of it
    /// without one); permissions `prot`, every leaf dirty or clean as `dirty` says.
    ///
    /// # Safety
    /// Only writes private tables.
    #[allow(clippy::too_many_arguments)]
    unsafe fn cut_build(
        &self,
        level: u32,
        ebase: u64,
        epa: u64,
        iova: Option<u64>,
        prot: Prot,
        dirty: bool,
        pool: &mut Option<&mut Reservation>,
    ) -> Result<NonNull<u8>> {
        let lg2 = self.inner_lg2(level);
        let table = self.new_table(self.inner_bytes_lg2(level), pool)?;
        let span = 1u64 << (self.item_lg2(level) + lg2);
        let bitmap = self.pgsize_bitmap & (span - 1);
        let (_, top) = self.top();
        let end = ebase.wrapping_add(span);
        let at = iova.unwrap_or(end);
        for (lo, hi) in [(ebase, at), (at, end)] {
            let pieces = Pieces {
                bitmap,
                iova: lo,
                paddr: epa + (lo - ebase),
                remaining: hi.wrapping_sub(lo),
            };
            for (v, p, size, n) in pieces {
                let (leaf_level, run_lg2) = self.leaf_of(size);
                let len = size * n;
                let mut st = MapState {
                    iova: v,
                    pa: p,
                    remaining: len,
                    leaf_level,
                    run_lg2,
                    prot,
                    pool: pool.as_deref_mut(),
                };
                let cur = Cursor::new(self, level, table, lg2, v, v + (len - 1));
                // SAFETY: `table` is private, built by this call alone.
                if let Err(e) = unsafe { self.map_level(cur, top, &mut st, true) } {
                    // SAFETY: never linked.
                    unsafe { self.free_tree(level, table, lg2, pool.as_deref_mut()) };
                    return Err(e);
                }
            }
        }
        if self.fmt.tracks_dirty() {
            // SAFETY: private.
            unsafe { self.restamp_tree(level, table, lg2, dirty) };
        }
        Ok(table)
    }

    /// Gives every leaf of `table` (at `level`) and below the dirty state `dirty`, with a
    /// compare-and-swap per entry (the tables may be live: a mark the hardware sets
    /// meanwhile is kept, since marking is what a dirty `true` does and a clean table is
    /// only restamped while private).
    ///
    /// # Safety
    /// `table` is a table of this page table at `level` with `2^lg2` entries; no map,
    /// unmap or edit of its span runs meanwhile.
    unsafe fn restamp_tree(&self, level: u32, table: NonNull<u8>, lg2: u32, dirty: bool) {
        let mut cur = Cursor::whole(self, level, table, lg2, 0);
        while !cur.done() {
            // SAFETY: the caller's guarantee.
            match unsafe { cur.load() } {
                Pte::Leaf { .. } => {
                    for i in cur.item_first()..cur.item_first() + cur.item_entries() {
                        // SAFETY: a run never crosses its table.
                        unsafe { self.swap_entry(table, i, |old| self.stamp(level, old, dirty)) };
                    }
                }
                Pte::Table { .. } => {
                    if let Some((l, child, clg2)) = cur.child_table() {
                        // SAFETY: the caller's guarantee covers the subtree.
                        unsafe { self.restamp_tree(l, child, clg2, dirty) };
                    }
                }
                Pte::Empty => {}
            }
            cur.next();
        }
    }

    /// Replaces entry `i` of `table` by `f(old)` with a compare-and-swap, retried with
    /// the new value when the hardware changed the entry meanwhile (an accessed or dirty
    /// mark). Returns the value replaced.
    ///
    /// # Safety
    /// `table` has more than `i` entries; no software writes entry `i` meanwhile.
    #[inline]
    pub(super) unsafe fn swap_entry(
        &self,
        table: NonNull<u8>,
        i: usize,
        f: impl Fn(u64) -> u64,
    ) -> u64 {
        loop {
            // SAFETY: the caller's guarantee.
            let old = unsafe { Self::load(table, i) };
            let new = f(old);
            // SAFETY: the caller's guarantee.
            if new == old || unsafe { Self::cas(table, i, old, new) } {
                return old;
            }
        }
    }

    /// Installs `new` at entry `i` of the item being cut. After a break (not `hitless`)
    /// the entry is empty and nothing else writes it: a plain store. Hitless: a
    /// compare-and-swap against the old leaf; if the hardware marked it dirty meanwhile
    /// while the cut thought the item clean, the item is dirty after all: the entries
    /// installed before (with the tables linked among them) and the new one are marked
    /// dirty too.
    ///
    /// # Safety
    /// `i` is an entry of the item; the caller holds the mapping.
    unsafe fn install(
        &self,
        item: &Item,
        i: usize,
        new: u64,
        hitless: bool,
        dirty: &mut bool,
        st: &mut InstallState<'_>,
    ) {
        let (level, table) = (item.level, item.table);
        let before = st.next;
        st.next = i + 1;
        if !hitless {
            // SAFETY: the caller's guarantee.
            unsafe { Self::store(table, i, new) };
            return;
        }
        let fmt = &self.fmt;
        let was = *dirty;
        // SAFETY: the caller's guarantee.
        let old = unsafe {
            self.swap_entry(table, i, |old| {
                if fmt.tracks_dirty() && !was && fmt.leaf_dirty(level, old) {
                    self.mark_if_leaf(level, new)
                } else {
                    new
                }
            })
        };
        if !(fmt.tracks_dirty() && !was && fmt.leaf_dirty(level, old)) {
            return;
        }
        *dirty = true;
        for k in item.first..before {
            // SAFETY: entries of the item, installed by this cut.
            unsafe { self.swap_entry(table, k, |v| self.mark_if_leaf(level, v)) };
        }
        // Every private table, linked or not yet: the ones still to come are then
        // linked dirty.
        for &t in st.tables.iter().flatten() {
            // SAFETY: the caller holds their span.
            unsafe { self.restamp_tree(level - 1, t, self.inner_lg2(level - 1), true) };
        }
    }

    /// `pte` marked dirty if it is a leaf.
    #[inline]
    fn mark_if_leaf(&self, level: u32, pte: u64) -> u64 {
        match self.fmt.decode(level, pte) {
            Pte::Leaf { .. } => self.fmt.leaf_carry_dirty(level, pte),
            _ => pte,
        }
    }
}
