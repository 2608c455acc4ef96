//! The table cursor: the position of a walk in one table, and the one loop skeleton of
//! every walk in the engine.
//!
//! A [`Cursor`] is the state of a walk over the IOVA range `start ..= last` inside one
//! table at one level (in the spirit of Linux generic_pt's `pt_state`): the table, its
//! geometry, the index of the current entry and the index where the walk leaves the
//! table. Every walk is a loop body over it:
//!
//! ```text
//! let mut cur = Cursor::new(pt, level, table, entries_lg2, start, last);
//! while !cur.done() {
//!     match cur.load() {                  // read and decode the current entry
//!         Pte::Empty => ...,
//!         Pte::Leaf { .. } => ...,        // a run is one item: cur.item_base(), item_size()
//!         Pte::Table { .. } => { let child = cur.child(); ... }  // the child's range
//!     }
//!     cur.next();                         // past the whole item (a run in one step)
//! }
//! ```
//!
//! # Contract
//! - The current entry is `idx`; the walk ends at `end` (one past the last entry whose
//!   span meets `last`, or the end of the table). `done()` is `idx >= end`.
//! - Positions are indices; IOVAs are computed from them: entry `i` spans
//!   `item_va(i) ..= item_va(i) + 2^item_lg2 - 1`, and the walk's position inside the
//!   current item is `va()` (the range's `start` for the first item, the item's base for
//!   the others).
//! - After [`Cursor::load`], a leaf that is part of a run (ARM contiguous hint, ARMv7's
//!   repeated entries, AMD v1's size-encoded pages) is one item: [`Cursor::item_first`] is
//!   the run's first index, [`Cursor::item_size`] its whole size, and [`Cursor::next`]
//!   moves past all of it, even when the walk started in its middle.
//! - [`Cursor::covered`]: the current item lies wholly inside `start ..= last`.
//! - [`Cursor::child`]: the cursor of the table the current entry points to, over the
//!   part of the range inside the entry (`va() ..= child_last()`).
//! - Shifts come from the table's geometry; for formats with a fixed geometry
//!   ([`Format::FIXED_GEOMETRY`]) and a level known at compile time (the unrolled lookup,
//!   [`PageTable::descend`]), inlining folds them to constants.
//!
//! Writes are not the cursor's business: a body writes entries with
//! [`PageTable::store`] / [`PageTable::cas`] at the cursor's indices and notes them in a
//! [`CleanSpan`] for incoherent walkers.

use core::ptr::NonNull;

use super::*;
use crate::extent::{Extent, ExtentSink};

/// The position of a walk in one table (see the module documentation).
pub(super) struct Cursor<'t, F: Format, M: TableMemory, X: FlushOps> {
    pt: &'t PageTable<F, M, X>,
    /// Level of the table.
    pub(super) level: u32,
    /// The table.
    pub(super) table: NonNull<u8>,
    /// log2 of the span of one entry.
    item_lg2: u32,
    /// The current entry.
    pub(super) idx: usize,
    /// One past the last entry of the walk in this table.
    pub(super) end: usize,
    /// IOVA of entry 0 of the table.
    table_va: u64,
    /// First IOVA of the walk.
    start: u64,
    /// Last IOVA of the walk (inclusive).
    last: u64,
    /// The raw value of the current entry (after [`Self::load`]).
    pub(super) raw: u64,
    /// The current entry, decoded (after [`Self::load`]).
    pub(super) pte: Pte,
}

impl<'t, F: Format, M: TableMemory, X: FlushOps> Cursor<'t, F, M, X> {
    /// A walk over `start ..= last` (with `start <= last`) in `table`, at `level`, with
    /// `2^entries_lg2` entries of `2^item_lg2` bytes. The walk begins at the entry of
    /// `start` and ends after the entry of `last`, or at the end of the table.
    #[inline(always)]
    pub(super) fn with_geometry(
        pt: &'t PageTable<F, M, X>,
        level: u32,
        table: NonNull<u8>,
        entries_lg2: u32,
        item_lg2: u32,
        start: u64,
        last: u64,
    ) -> Self {
        let span_lg2 = item_lg2 + entries_lg2;
        let mask = (1usize << entries_lg2) - 1;
        let idx = (start >> item_lg2) as usize & mask;
        let table_va = start & !mask_lg2(span_lg2);
        // The entry of `last` if it lies in this table, else the end of the table.
        let end = if span_lg2 >= 64 || (start ^ last) >> span_lg2 == 0 {
            ((last >> item_lg2) as usize & mask) + 1
        } else {
            mask + 1
        };
        Cursor {
            pt,
            level,
            table,
            item_lg2,
            idx,
            end,
            table_va,
            start,
            last,
            raw: 0,
            pte: Pte::Empty,
        }
    }

    /// [`Self::with_geometry`] with the geometry of the table's level (`entries_lg2`
    /// given: it depends on whether the table is the top).
    #[inline(always)]
    pub(super) fn new(
        pt: &'t PageTable<F, M, X>,
        level: u32,
        table: NonNull<u8>,
        entries_lg2: u32,
        start: u64,
        last: u64,
    ) -> Self {
        Self::with_geometry(
            pt,
            level,
            table,
            entries_lg2,
            pt.item_lg2(level),
            start,
            last,
        )
    }

    /// A walk over every entry of `table` (whose entry 0 translates `base`).
    #[inline(always)]
    pub(super) fn whole(
        pt: &'t PageTable<F, M, X>,
        level: u32,
        table: NonNull<u8>,
        entries_lg2: u32,
        base: u64,
    ) -> Self {
        let item_lg2 = pt.item_lg2(level);
        let span_last = mask_lg2(item_lg2 + entries_lg2);
        let mut cur = Self::with_geometry(
            pt,
            level,
            table,
            entries_lg2,
            item_lg2,
            base & !span_last,
            (base & !span_last).wrapping_add(span_last),
        );
        cur.end = 1 << entries_lg2; // even where the span wraps the 64-bit space
        cur
    }

    /// True when the walk has left the table (or the range has ended).
    #[inline(always)]
    pub(super) fn done(&self) -> bool {
        self.idx >= self.end
    }

    /// Reads and decodes the current entry.
    ///
    /// # Safety
    /// The table is live (or private to the caller) and the caller may read the entry
    /// (it holds its IOVA range, or only reads what concurrent maps may install).
    #[inline(always)]
    pub(super) unsafe fn load(&mut self) -> Pte {
        // SAFETY: `idx < end <= 2^entries_lg2`, inside the table (the caller's guarantee).
        self.raw = unsafe { PageTable::<F, M, X>::load(self.table, self.idx) };
        self.pte = self.pt.fmt.decode(self.level, self.raw);
        self.pte
    }

    /// The indices of the entries left in the walk, for bodies that only classify
    /// entries one by one ([`Self::peek`]) and need no item accessors: a counted loop the
    /// compiler can unroll.
    #[inline(always)]
    pub(super) fn remaining(&self) -> core::ops::Range<usize> {
        self.idx..self.end
    }

    /// Reads and decodes entry `i` of [`Self::remaining`] without moving the cursor.
    ///
    /// # Safety
    /// As for [`Self::load`]; `i` is in [`Self::remaining`].
    #[inline(always)]
    pub(super) unsafe fn peek(&self, i: usize) -> Pte {
        // SAFETY: as for `load`; `i < end`.
        let raw = unsafe { PageTable::<F, M, X>::load(self.table, i) };
        self.pt.fmt.decode(self.level, raw)
    }

    /// True if every entry left in the walk reads zero (empty in every format): a map
    /// may then fill them without looking at them one by one. A non-zero empty entry
    /// answers false; the caller then takes its entry-by-entry path.
    ///
    /// # Safety
    /// As for [`Self::load`].
    #[inline(always)]
    pub(super) unsafe fn rest_empty(&self) -> bool {
        // SAFETY: `idx ..= end - 1` is inside the table (the caller's guarantee).
        unsafe { PageTable::<F, M, X>::all_zero(self.table, self.idx, self.end - self.idx) }
    }

    /// How many entries from the current one on are single-entry leaves (no run), up
    /// to the end of the walk: an unmap clears them as one stretch. Each is stepped over
    /// by [`Self::advance`] with this count.
    ///
    /// # Safety
    /// As for [`Self::load`].
    #[inline(always)]
    pub(super) unsafe fn plain_leaves(&self) -> usize {
        let (mask, value) = self.pt.fmt.plain_leaf_pattern(self.level);
        let mut i = self.idx;
        // Four at a time while all four pass the quick test (a branch per four
        // entries), then one by one.
        while i + 4 <= self.end {
            let mut miss = 0;
            for k in 0..4 {
                // SAFETY: `i + k < end`, inside the table (the caller's guarantee).
                let raw = unsafe { PageTable::<F, M, X>::load_relaxed(self.table, i + k) };
                miss |= (raw & mask) ^ value;
            }
            if miss != 0 {
                break;
            }
            i += 4;
        }
        while i < self.end {
            // SAFETY: `i < end`, inside the table (the caller's guarantee).
            let raw = unsafe { PageTable::<F, M, X>::load_relaxed(self.table, i) };
            if raw & mask != value
                && !matches!(
                    self.pt.fmt.decode(self.level, raw),
                    Pte::Leaf { run_lg2: 0, .. }
                )
            {
                break;
            }
            i += 1;
        }
        i - self.idx
    }

    /// The current item as a removed mapping (a leaf, after [`Self::load`]): its first
    /// IOVA, the output address of its first byte, its whole size (a run in one) and its
    /// permissions.
    #[inline(always)]
    pub(super) fn extent(&self) -> Extent {
        let Pte::Leaf { pa, .. } = self.pte else {
            unreachable!("extent() of an entry that is not a leaf")
        };
        Extent {
            iova: self.item_base(),
            paddr: pa,
            size: self.item_size(),
            prot: self.pt.fmt.leaf_prot(self.level, self.raw),
        }
    }

    /// Hands `sink` the extents of the `n` single-entry leaves from the current entry on
    /// (a stretch that [`Self::plain_leaves`] counted), one per entry, in order. The
    /// cursor does not move.
    ///
    /// # Safety
    /// As for [`Self::load`]; `idx + n <= end`, and every entry of the stretch is a
    /// single-entry leaf.
    #[inline(always)]
    pub(super) unsafe fn plain_extents(&self, n: usize, sink: &mut impl ExtentSink) {
        let size = 1u64 << self.item_lg2;
        for i in self.idx..self.idx + n {
            // SAFETY: `i < idx + n <= end`, inside the table (the caller's guarantee).
            let raw = unsafe { PageTable::<F, M, X>::load(self.table, i) };
            if let Pte::Leaf { pa, .. } = self.pt.fmt.decode(self.level, raw) {
                sink.extent(Extent {
                    iova: self.item_va(i),
                    paddr: pa,
                    size,
                    prot: self.pt.fmt.leaf_prot(self.level, raw),
                });
            }
        }
    }

    /// True if the current entry begins where the walk's position is (the walk does not
    /// start inside it).
    #[inline(always)]
    pub(super) fn at_entry_start(&self) -> bool {
        self.item_va(self.idx) >= self.start
    }

    /// A cursor on entry `idx` of `table` whose raw value `raw` was read already (the
    /// end of a one-entry descent), for the walk `start ..= start`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn at_entry(
        pt: &'t PageTable<F, M, X>,
        level: u32,
        table: NonNull<u8>,
        entries_lg2: u32,
        item_lg2: u32,
        start: u64,
        raw: u64,
        pte: Pte,
    ) -> Self {
        let idx = (start >> item_lg2) as usize & ((1usize << entries_lg2) - 1);
        Cursor {
            pt,
            level,
            table,
            item_lg2,
            idx,
            end: idx + 1,
            // Entry 0's IOVA, from the entry's own base (no wide masks).
            table_va: (start & !((1u64 << item_lg2) - 1)).wrapping_sub((idx as u64) << item_lg2),
            start,
            last: start,
            raw,
            pte,
        }
    }

    /// log2 of the number of entries of the current item: the run of a leaf, else 0.
    #[inline(always)]
    pub(super) fn run_lg2(&self) -> u32 {
        match self.pte {
            Pte::Leaf { run_lg2, .. } => run_lg2,
            _ => 0,
        }
    }

    /// Index of the current item's first entry (the run's start).
    #[inline(always)]
    pub(super) fn item_first(&self) -> usize {
        self.idx & !((1usize << self.run_lg2()) - 1)
    }

    /// Number of entries of the current item.
    #[inline(always)]
    pub(super) fn item_entries(&self) -> usize {
        1 << self.run_lg2()
    }

    /// log2 of the span of one entry of this table.
    #[inline(always)]
    pub(super) fn entry_lg2(&self) -> u32 {
        self.item_lg2
    }

    /// First IOVA of entry `i`.
    #[inline(always)]
    pub(super) fn item_va(&self, i: usize) -> u64 {
        self.table_va.wrapping_add((i as u64) << self.item_lg2)
    }

    /// Bytes of the current item (a whole run).
    #[inline(always)]
    pub(super) fn item_size(&self) -> u64 {
        1u64 << (self.item_lg2 + self.run_lg2())
    }

    /// First IOVA of the current item.
    #[inline(always)]
    pub(super) fn item_base(&self) -> u64 {
        self.item_va(self.item_first())
    }

    /// Last IOVA of the current item.
    #[inline(always)]
    pub(super) fn item_last(&self) -> u64 {
        self.item_base().wrapping_add(self.item_size() - 1)
    }

    /// The walk's position in the current entry: the range's start for the first entry,
    /// the entry's base after it.
    #[inline(always)]
    pub(super) fn va(&self) -> u64 {
        let at = self.item_va(self.idx);
        if at < self.start { self.start } else { at }
    }

    /// True if the current item lies wholly inside the walk's range.
    #[inline(always)]
    pub(super) fn covered(&self) -> bool {
        self.item_base() >= self.start && self.item_last() <= self.last
    }

    /// True if the current item begins before the walk does (the walk starts inside it).
    #[inline(always)]
    pub(super) fn starts_inside(&self) -> bool {
        self.item_base() < self.start
    }

    /// Last IOVA of the walk inside the current entry (the end of a child's range).
    #[inline(always)]
    pub(super) fn child_last(&self) -> u64 {
        let entry_last = self
            .item_va(self.idx)
            .wrapping_add((1u64 << self.item_lg2) - 1);
        self.last.min(entry_last)
    }

    /// Moves past the current item: a whole run in one step.
    #[inline(always)]
    pub(super) fn next(&mut self) {
        self.idx = self.item_first() + self.item_entries();
    }

    /// Moves `n` entries on (a body that steps by its own stride, such as a map writing
    /// runs of `n` entries).
    #[inline(always)]
    pub(super) fn advance(&mut self, n: usize) {
        self.idx += n;
    }

    /// A cursor over `table`, the level below, for the part of the walk inside the
    /// current entry.
    #[inline(always)]
    pub(super) fn child_at(&self, table: NonNull<u8>) -> Cursor<'t, F, M, X> {
        let level = self.level - 1;
        Cursor::new(
            self.pt,
            level,
            table,
            self.pt.inner_lg2(level),
            self.va(),
            self.child_last(),
        )
    }

    /// The cursor of the table the current entry points to (a `Pte::Table` at a level
    /// above 0), over the part of the walk inside the entry.
    #[inline(always)]
    pub(super) fn child(&self) -> Cursor<'t, F, M, X> {
        let Pte::Table { pa } = self.pte else {
            unreachable!("child() of an entry that is not a table")
        };
        self.child_at(self.pt.mem.phys_to_virt(pa))
    }

    /// The table the current entry points to, with its level and entry count, for a
    /// walk over all of it (`None` unless the entry is a table above level 0).
    #[inline(always)]
    pub(super) fn child_table(&self) -> Option<(u32, NonNull<u8>, u32)> {
        match self.pte {
            Pte::Table { pa } if self.level > 0 => Some((
                self.level - 1,
                self.pt.mem.phys_to_virt(pa),
                self.pt.inner_lg2(self.level - 1),
            )),
            _ => None,
        }
    }
}

/// Entry indices one operation wrote in one table, for cleaning the CPU cache when the
/// walker does not snoop it (an empty span when `lo >= hi`). Not to be confused with
/// hardware dirty tracking ([`DirtyFlags`]).
#[derive(Debug, Default)]
pub(crate) struct CleanSpan {
    pub(super) lo: usize,
    pub(super) hi: usize,
}

impl CleanSpan {
    /// Notes entries `first .. first + count`.
    #[inline]
    pub(crate) fn add(&mut self, first: usize, count: usize) {
        if self.lo >= self.hi {
            (self.lo, self.hi) = (first, first + count);
        } else {
            self.lo = self.lo.min(first);
            self.hi = self.hi.max(first + count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoFlush;
    use crate::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    use crate::fmt::x86_64::{X86_64, X86_64Config};
    use crate::mem::HeapMemory;
    use std::vec;
    use std::vec::Vec;

    const RW: Prot = Prot::READ.union(Prot::WRITE);
    const K4: u64 = 0x1000;
    const K64: u64 = 0x1_0000;
    const M2: u64 = 0x20_0000;

    fn arm(contiguous: bool, ttbr1: bool) -> PageTable<ArmLpae, HeapMemory, NoFlush> {
        let cfg = ArmLpaeConfig {
            contiguous,
            ttbr1,
            ..ArmLpaeConfig::default()
        };
        PageTable::new(ArmLpae::new(cfg).unwrap(), HeapMemory::new(), NoFlush).unwrap()
    }

    fn x86() -> PageTable<X86_64, HeapMemory, NoFlush> {
        PageTable::new(
            X86_64::new(X86_64Config::default()).unwrap(),
            HeapMemory::new(),
            NoFlush,
        )
        .unwrap()
    }

    /// Maps `len` bytes at `iova` with pages of `pgsize`.
    fn map<F: Format>(pt: &PageTable<F, HeapMemory, NoFlush>, iova: u64, pgsize: u64, n: usize) {
        // SAFETY: a private table, no hardware.
        let (done, r) = unsafe { pt.map_pages(iova, 0x8000_0000, pgsize, n, RW) };
        assert_eq!((done, r), (pgsize * n as u64, Ok(())));
    }

    /// The cursor over `first ..= last` in the table at level `level` on the path of
    /// `first` (which must exist).
    fn cursor_at<F: Format>(
        pt: &PageTable<F, HeapMemory, NoFlush>,
        level: u32,
        first: u64,
        last: u64,
    ) -> Cursor<'_, F, HeapMemory, NoFlush> {
        let (root, top) = pt.top();
        let mut cur = Cursor::new(pt, top, root, pt.entries_lg2(top, top), first, last);
        while cur.level > level {
            // SAFETY: a private table; the path exists.
            match unsafe { cur.load() } {
                Pte::Table { .. } => cur = cur.child(),
                other => panic!("no table on the path at level {}: {other:?}", cur.level),
            }
        }
        cur
    }

    /// The items a walk meets: (first index, entries, base, size, covered).
    fn items<F: Format>(
        mut cur: Cursor<'_, F, HeapMemory, NoFlush>,
    ) -> Vec<(usize, usize, u64, u64, bool)> {
        let mut v = Vec::new();
        while !cur.done() {
            // SAFETY: a private table.
            unsafe { cur.load() };
            v.push((
                cur.item_first(),
                cur.item_entries(),
                cur.item_base(),
                cur.item_size(),
                cur.covered(),
            ));
            cur.next();
        }
        v
    }

    #[test]
    fn a_run_is_one_item_even_from_its_middle() {
        let pt = arm(true, false);
        // Two 64K contiguous runs (16 entries each) at 0x40_0000.
        map(&pt, 0x40_0000, K64, 2);
        // Start in the middle of the first run, end in the middle of the second.
        let cur = cursor_at(&pt, 0, 0x40_3000, 0x41_2fff);
        assert_eq!((cur.idx, cur.end), (3, 19));
        let got = items(cur);
        assert_eq!(
            got,
            vec![
                (0, 16, 0x40_0000, K64, false),  // begins before the walk
                (16, 16, 0x41_0000, K64, false), // ends after it
            ]
        );
        // The same run stepped from its first entry, covered whole.
        let got = items(cursor_at(&pt, 0, 0x40_0000, 0x41_ffff));
        assert_eq!(
            got,
            vec![
                (0, 16, 0x40_0000, K64, true),
                (16, 16, 0x41_0000, K64, true)
            ]
        );
    }

    #[test]
    fn partial_first_and_last_entries() {
        let pt = arm(false, false);
        map(&pt, 0, K4, 4);
        // At level 1 (2 MiB entries) a walk from inside entry 0 to inside entry 2.
        let mut cur = cursor_at(&pt, 1, 0x1234, 2 * M2 + 0x5000);
        assert_eq!((cur.idx, cur.end), (0, 3));
        // SAFETY: a private table.
        unsafe { cur.load() };
        assert!(!cur.covered());
        assert!(cur.starts_inside());
        assert_eq!((cur.va(), cur.child_last()), (0x1234, M2 - 1));
        cur.next();
        // SAFETY: as above.
        unsafe { cur.load() };
        assert!(cur.covered());
        assert_eq!((cur.va(), cur.child_last()), (M2, 2 * M2 - 1));
        cur.next();
        assert!(!cur.covered()); // entry 2 reaches past the end
        assert_eq!((cur.va(), cur.child_last()), (2 * M2, 2 * M2 + 0x5000));
        cur.next();
        assert!(cur.done());
        // The leaf table under entry 0: entries 1..=4 for 0x1234..=0x4fff.
        let cur = cursor_at(&pt, 0, 0x1234, 0x4fff);
        assert_eq!((cur.idx, cur.end), (1, 5));
        let got = items(cur);
        assert_eq!(got.len(), 4);
        assert!(!got[0].4 && got[1].4 && got[2].4 && got[3].4);
    }

    #[test]
    fn full_coverage_and_the_end_of_a_table() {
        let pt = arm(false, false);
        map(&pt, 0, K4, 1);
        // A walk longer than the table stops at its end.
        let cur = cursor_at(&pt, 0, 0, 4 * M2);
        assert_eq!((cur.idx, cur.end), (0, 512));
        let all = items(cur);
        assert_eq!(all.len(), 512);
        assert!(all.iter().all(|i| i.4), "every entry covered");
        // A whole-table cursor.
        let (root, top) = pt.top();
        let cur = Cursor::whole(&pt, top, root, pt.entries_lg2(top, top), 0);
        assert_eq!((cur.idx, cur.end), (0, 512));
    }

    #[test]
    fn descent_ranges_at_the_bottom_and_top_of_the_aperture() {
        let pt = arm(false, false);
        let top_iova = (1u64 << 48) - K4;
        map(&pt, 0, K4, 1);
        map(&pt, top_iova, K4, 1);
        // Bottom: the child of entry 0 at each level is the range clipped to the entry.
        let (root, top) = pt.top();
        let mut cur = Cursor::new(&pt, top, root, pt.entries_lg2(top, top), 0, (1 << 48) - 1);
        assert_eq!((cur.idx, cur.end), (0, 512));
        // SAFETY: a private table.
        unsafe { cur.load() };
        let child = cur.child();
        assert_eq!(
            (child.va(), child.child_last(), child.level),
            (0, (1 << 30) - 1, 2)
        );
        // Top: the last entry of every level; the range ends at the last IOVA.
        let mut cur = cursor_at(&pt, 0, top_iova, u64::MAX >> 16);
        assert_eq!((cur.idx, cur.end), (511, 512));
        // SAFETY: as above.
        assert!(matches!(unsafe { cur.load() }, Pte::Leaf { .. }));
        assert_eq!(
            (cur.item_base(), cur.item_last()),
            (top_iova, (1 << 48) - 1)
        );
        assert!(cur.covered());
    }

    #[test]
    fn the_upper_half_ttbr1() {
        let pt = arm(false, true);
        let first = 0xffff_0000_0000_0000u64;
        map(&pt, first, K4, 1);
        map(&pt, u64::MAX - (K4 - 1), K4, 1);
        let (root, top) = pt.top();
        let mut cur = Cursor::new(&pt, top, root, pt.entries_lg2(top, top), first, u64::MAX);
        assert_eq!((cur.idx, cur.end), (0, 512));
        assert_eq!(cur.item_va(0), first);
        assert_eq!(cur.item_va(511), 0xffff_ff80_0000_0000);
        // SAFETY: a private table.
        unsafe { cur.load() };
        assert_eq!(cur.child().va(), first);
        // The last entry of the last table ends at 2^64 - 1 without wrapping.
        let mut cur = cursor_at(&pt, 0, u64::MAX - (K4 - 1), u64::MAX);
        assert_eq!((cur.idx, cur.end), (511, 512));
        // SAFETY: as above.
        unsafe { cur.load() };
        assert_eq!(
            (cur.item_base(), cur.item_last()),
            (u64::MAX - (K4 - 1), u64::MAX)
        );
        assert!(cur.covered());
        cur.next();
        assert!(cur.done());
    }

    #[test]
    fn sign_extended_x86_64() {
        let pt = x86();
        let upper = 0xffff_8000_0000_0000u64;
        map(&pt, upper, K4, 1);
        map(&pt, 0x7fff_ffff_f000, K4, 1);
        let (root, top) = pt.top();
        // The upper half starts at top entry 256; the lower half ends at 255.
        let cur = Cursor::new(&pt, top, root, pt.entries_lg2(top, top), upper, u64::MAX);
        assert_eq!((cur.idx, cur.end), (256, 512));
        assert_eq!(cur.item_va(256), upper);
        let cur = Cursor::new(
            &pt,
            top,
            root,
            pt.entries_lg2(top, top),
            0,
            0x7fff_ffff_ffff,
        );
        assert_eq!((cur.idx, cur.end), (0, 256));
        // Descending in the upper half keeps the sign bits.
        let mut cur = cursor_at(&pt, 0, upper, upper + 0x1_ffff);
        assert_eq!((cur.idx, cur.end), (0, 32));
        // SAFETY: a private table.
        unsafe { cur.load() };
        assert_eq!(cur.item_base(), upper);
        // The first leaf a whole walk of the top table finds, in each half.
        // SAFETY: as above.
        let first = unsafe { pt.first_leaf(Cursor::new(&pt, top, root, 9, upper, u64::MAX)) };
        assert_eq!(first, Some(upper));
        // SAFETY: as above.
        let first = unsafe { pt.first_leaf(Cursor::new(&pt, top, root, 9, 0, 0x7fff_ffff_ffff)) };
        assert_eq!(first, Some(0x7fff_ffff_f000));
    }

    #[test]
    fn a_one_entry_descent_ends_on_the_leaf() {
        let pt = x86();
        map(&pt, 0x4000_0000, M2, 1);
        let (root, top) = pt.top();
        // SAFETY: a private table.
        let cur = unsafe { pt.descend(root, top, 0x4012_3456, 0) };
        assert_eq!(cur.level, 1);
        assert!(matches!(cur.pte, Pte::Leaf { .. }));
        assert_eq!((cur.item_base(), cur.item_size()), (0x4000_0000, M2));
        assert!(cur.starts_inside());
    }
}
