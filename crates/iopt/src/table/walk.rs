//! Read-only walks (translate) and whole-subtree walks (freeing, leaf checks).

use core::ptr::NonNull;

use super::*;

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// True if any leaf is reachable from `table` (at `level`, with `2^entries_lg2` entries).
    ///
    /// # Safety
    /// `table` is a live or private table at `level`.
    pub(super) unsafe fn subtree_has_leaf(
        &self,
        level: u32,
        table: NonNull<u8>,
        entries_lg2: u32,
    ) -> bool {
        let n = 1usize << entries_lg2;
        (0..n).any(|i| {
            // SAFETY: i < n.
            let e = unsafe { Self::load(table, i) };
            match self.fmt.decode(level, e) {
                Pte::Empty => false,
                Pte::Leaf { .. } => true,
                Pte::Table { pa } => {
                    level > 0 && {
                        // SAFETY: linked tables are live.
                        unsafe {
                            self.subtree_has_leaf(
                                level - 1,
                                self.mem.phys_to_virt(pa),
                                self.inner_lg2(level - 1),
                            )
                        }
                    }
                }
            }
        })
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
        (0..1usize << entries_lg2).all(|i| {
            // SAFETY: in bounds.
            let e = unsafe { Self::load(table, i) };
            self.fmt.decode(level, e) == Pte::Empty
        })
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
            for i in 0..1usize << entries_lg2 {
                // SAFETY: in bounds.
                let e = unsafe { Self::load(table, i) };
                if let Pte::Table { pa } = self.fmt.decode(level, e) {
                    // SAFETY: the caller's guarantee covers the whole subtree.
                    unsafe {
                        self.free_tree(
                            level - 1,
                            self.mem.phys_to_virt(pa),
                            self.inner_lg2(level - 1),
                            pool.as_deref_mut(),
                        )
                    };
                }
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

    /// The physical address `iova` translates to, or `None` (Linux's `iova_to_phys`).
    ///
    /// # Safety
    /// No map or unmap of a range containing `iova` runs at the same time.
    pub unsafe fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        // SAFETY: as the caller guarantees.
        let (_, _, pa, size) = unsafe { self.lookup(iova) }?;
        Some(pa + (iova & (size - 1)))
    }

    /// Translates `iova`: its physical address, and the base, size and permissions of
    /// the mapping around it.
    ///
    /// # Safety
    /// As for [`Self::iova_to_phys`].
    pub unsafe fn translate(&self, iova: u64) -> Option<Translation> {
        // SAFETY: as the caller guarantees.
        let (level, e, pa, size) = unsafe { self.lookup(iova) }?;
        let off = iova & (size - 1);
        Some(Translation {
            pa: pa + off,
            iova_base: iova - off,
            size,
            prot: self.fmt.leaf_prot(level, e),
            level,
        })
    }

    /// The leaf mapping `iova`: its level, raw entry, output address of its start and
    /// size.
    ///
    /// # Safety
    /// As for [`Self::iova_to_phys`].
    #[inline]
    unsafe fn lookup(&self, iova: u64) -> Option<(u32, u64, u64, u64)> {
        let (mut table, top) = self.top();
        if !self.aperture(top).contains(iova, iova) {
            return None;
        }
        let mut level = top;
        loop {
            let item_lg2 = self.item_lg2(level);
            let idx = (iova >> item_lg2) as usize & ((1usize << self.entries_lg2(level, top)) - 1);
            // SAFETY: idx is inside `table`, which is live (the top, or linked below a
            // live table).
            let e = unsafe { Self::load(table, idx) };
            match self.fmt.decode(level, e) {
                Pte::Table { pa } if level > 0 => {
                    table = self.mem.phys_to_virt(pa);
                    level -= 1;
                }
                Pte::Leaf { pa, run_lg2 } => {
                    return Some((level, e, pa, 1u64 << (item_lg2 + run_lg2)));
                }
                _ => return None,
            }
        }
    }
}
