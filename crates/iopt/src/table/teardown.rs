//! Whole-subtree walks: teardown, the emptiness and leaf checks, and the byte counts
//! of detached tables (loop bodies over the [`Cursor`]).

use core::ptr::NonNull;

use super::cursor::Cursor;
use super::*;
use crate::extent::ExtentSink;

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// The first IOVA of `cur`'s walk that some leaf at or below its table maps, if any.
    ///
    /// # Safety
    /// `cur`'s table is a live or private table at its level.
    pub(super) unsafe fn first_leaf(&self, mut cur: Cursor<'_, F, M, X>) -> Option<u64> {
        while !cur.done() {
            // SAFETY: the caller's guarantee.
            match unsafe { cur.load() } {
                Pte::Empty => {}
                Pte::Leaf { .. } => return Some(cur.va()),
                Pte::Table { .. } => {
                    if cur.level > 0 {
                        // SAFETY: linked tables below a live one are live.
                        if let Some(v) = unsafe { self.first_leaf(cur.child()) } {
                            return Some(v);
                        }
                    }
                }
            }
            cur.next();
        }
        None
    }

    /// The first IOVA a leaf maps in the subtree of `table` (at `level`, `2^entries_lg2`
    /// entries, its entry 0 translating `base`).
    ///
    /// # Safety
    /// `table` is a live or private table at `level`.
    #[inline]
    pub(super) unsafe fn subtree_first_leaf(
        &self,
        level: u32,
        table: NonNull<u8>,
        entries_lg2: u32,
        base: u64,
    ) -> Option<u64> {
        // SAFETY: the caller's guarantee.
        unsafe { self.first_leaf(Cursor::whole(self, level, table, entries_lg2, base)) }
    }

    /// The lowest level of a table in the subtree of `table` (at `level`, `2^entries_lg2`
    /// entries): `level` itself when it links no table. A walk flush for a detached
    /// subtree names the item size of that level as its granule, since the walk caches
    /// may hold entries of every table in it.
    ///
    /// # Safety
    /// `table` is a live or private table at `level`.
    pub(super) unsafe fn lowest_table_level(
        &self,
        level: u32,
        table: NonNull<u8>,
        entries_lg2: u32,
    ) -> u32 {
        let mut lowest = level;
        if level > 0 {
            let mut cur = Cursor::whole(self, level, table, entries_lg2, 0);
            while !cur.done() && lowest > 0 {
                // SAFETY: the caller's guarantee covers the table.
                unsafe { cur.load() };
                if let Some((l, child, lg2)) = cur.child_table() {
                    // SAFETY: linked tables below a live one are live.
                    lowest = lowest.min(unsafe { self.lowest_table_level(l, child, lg2) });
                }
                cur.next();
            }
        }
        lowest
    }

    /// True if no entry of `table` (at `level`, `2^entries_lg2` entries) is valid.
    ///
    /// # Safety
    /// `table` is live or private.
    pub(super) unsafe fn table_is_empty(
        &self,
        level: u32,
        table: NonNull<u8>,
        entries_lg2: u32,
    ) -> bool {
        let mut cur = Cursor::whole(self, level, table, entries_lg2, 0);
        while !cur.done() {
            // SAFETY: the caller's guarantee.
            if unsafe { cur.load() } != Pte::Empty {
                return false;
            }
            cur.next();
        }
        true
    }

    /// Frees `table` (at `level`, with `2^entries_lg2` entries) and every table below it,
    /// into `pool` (zeroed again) when given, else to the table memory.
    ///
    /// # Safety
    /// Nothing (software or hardware) will access these tables again; with a pool, they
    /// are private (never published).
    pub(super) unsafe fn free_tree(
        &self,
        level: u32,
        table: NonNull<u8>,
        entries_lg2: u32,
        mut pool: Option<&mut Reservation>,
    ) {
        if level > 0 {
            let mut cur = Cursor::whole(self, level, table, entries_lg2, 0);
            while !cur.done() {
                // SAFETY: the caller's guarantee covers the table.
                unsafe { cur.load() };
                if let Some((l, child, lg2)) = cur.child_table() {
                    // SAFETY: the caller's guarantee covers the whole subtree.
                    unsafe { self.free_tree(l, child, lg2, pool.as_deref_mut()) };
                }
                cur.next();
            }
        }
        let bytes_lg2 = (entries_lg2 + F::ENTRY_LG2).max(self.fmt.min_table_bytes_lg2());
        match pool {
            Some(pool) => {
                // SAFETY: private and unreferenced (caller), so zeroing and pooling it
                // are both fine; it came from this table's memory with this size.
                unsafe {
                    core::ptr::write_bytes(table.as_ptr(), 0, 1 << bytes_lg2);
                    pool.put(table, bytes_lg2);
                }
            }
            // SAFETY: allocated with this size (sizes depend only on level and top-ness).
            None => unsafe { self.mem.free(table, bytes_lg2) },
        }
    }

    /// Hands `sink` every leaf item in the subtree of `table` (at `level`, `2^entries_lg2`
    /// entries, its entry 0 translating `base`), in IOVA order, one extent per item (a
    /// run in one): the leaves of a table an unmap detaches whole, reported before the
    /// table goes into the gather. Reads only.
    ///
    /// # Safety
    /// `table` is a live table at `level` whose whole span the caller holds, or one it
    /// has just detached and not yet gathered.
    pub(super) unsafe fn report_leaves(
        &self,
        level: u32,
        table: NonNull<u8>,
        entries_lg2: u32,
        base: u64,
        sink: &mut impl ExtentSink,
    ) {
        let mut cur = Cursor::whole(self, level, table, entries_lg2, base);
        while !cur.done() {
            // SAFETY: the caller's guarantee.
            if let Pte::Leaf { .. } = unsafe { cur.load() } {
                sink.extent(cur.extent());
            } else if let Some((l, child, lg2)) = cur.child_table() {
                // SAFETY: a table linked below one the caller holds whole is covered too.
                unsafe { self.report_leaves(l, child, lg2, cur.item_base(), sink) };
            }
            cur.next();
        }
    }

    /// The bytes the leaves of `table` (at `level`, `2^entries_lg2` entries) map, if it
    /// holds nothing but leaves (and, with `holes`, empty entries); `None` if it links a
    /// table, or has a hole while `holes` is false (the caller then takes the entry-by-
    /// entry path, which stops at the hole). Reads only.
    ///
    /// # Safety
    /// `table` is live at `level`.
    pub(super) unsafe fn leaf_table_bytes(
        &self,
        level: u32,
        table: NonNull<u8>,
        entries_lg2: u32,
        holes: bool,
    ) -> Option<u64> {
        let cur = Cursor::whole(self, level, table, entries_lg2, 0);
        let (mut leaves, mut tables) = (0usize, 0usize);
        // Entry by entry (a run's entries are each counted): a counted pass without
        // exits, which the compiler unrolls.
        for i in cur.remaining() {
            // SAFETY: the caller's guarantee.
            match unsafe { cur.peek(i) } {
                Pte::Leaf { .. } => leaves += 1,
                Pte::Table { .. } => tables += 1,
                Pte::Empty => {}
            }
        }
        let n = cur.remaining().len();
        (tables == 0 && (holes || leaves == n)).then(|| (leaves as u64) << self.item_lg2(level))
    }
}
