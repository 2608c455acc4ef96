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
        let (root, top) = self.top();
        if !self.in_aperture(top, iova) {
            return None;
        }
        // SAFETY: `root` is the live top table at `top`; the caller's guarantee holds.
        let (level, _, _, e, pte) = unsafe { self.descend(root, top, iova, 0) };
        match pte {
            Pte::Leaf { pa, run_lg2 } => {
                Some((level, e, pa, 1u64 << (self.fmt.item_lg2(level) + run_lg2)))
            }
            _ => None,
        }
    }

    /// Walks from the top table toward `stop` along `iova`, and returns where it ended:
    /// `(level, table, index, entry, decoded entry)` of the first entry that does not
    /// point to a table, or of the entry at level `stop`.
    ///
    /// The walk is unrolled per top level at compile time ([`Self::descend_from`]), so
    /// each step's shifts and masks are constants for formats with a fixed geometry.
    ///
    /// # Safety
    /// `root` is the live top table at level `top`; no unmap of `iova` runs meanwhile.
    #[inline(always)]
    pub(super) unsafe fn descend(
        &self,
        root: NonNull<u8>,
        top: u32,
        iova: u64,
        stop: u32,
    ) -> (u32, NonNull<u8>, usize, u64, Pte) {
        // SAFETY: passed on.
        unsafe {
            match top {
                0 => self.descend_from::<0>(root, iova, stop),
                1 => self.descend_from::<1>(root, iova, stop),
                2 => self.descend_from::<2>(root, iova, stop),
                3 => self.descend_from::<3>(root, iova, stop),
                4 => self.descend_from::<4>(root, iova, stop),
                5 => self.descend_from::<5>(root, iova, stop),
                6 => self.descend_from::<6>(root, iova, stop),
                _ => self.descend_from::<7>(root, iova, stop),
            }
        }
    }

    /// [`Self::descend`] for a top at `TOP`: one [`Self::descend_step`] per level, each
    /// with its level as a constant.
    ///
    /// # Safety
    /// As for [`Self::descend`].
    #[inline(always)]
    unsafe fn descend_from<const TOP: u32>(
        &self,
        root: NonNull<u8>,
        iova: u64,
        stop: u32,
    ) -> (u32, NonNull<u8>, usize, u64, Pte) {
        let mut table = root;
        macro_rules! step {
            ($l:literal) => {
                #[allow(unused_comparisons)]
                if $l <= TOP {
                    // SAFETY: passed on; `table` is the table at this level.
                    let end = unsafe { self.descend_step::<$l, TOP>(&mut table, iova, stop) };
                    if let Some(end) = end {
                        return end;
                    }
                }
            };
        }
        step!(7);
        step!(6);
        step!(5);
        step!(4);
        step!(3);
        step!(2);
        step!(1);
        step!(0);
        unreachable!("the walk ends at level 0")
    }

    /// One level of [`Self::descend_from`]: reads the entry of `*table` for `iova`; moves
    /// `*table` down if it points to a table, else (or at `stop`) ends the walk.
    ///
    /// # Safety
    /// `*table` is a live table at level `L` of a table whose top is at `TOP`.
    #[inline(always)]
    unsafe fn descend_step<const L: u32, const TOP: u32>(
        &self,
        table: &mut NonNull<u8>,
        iova: u64,
        stop: u32,
    ) -> Option<(u32, NonNull<u8>, usize, u64, Pte)> {
        // Constants for formats with a fixed geometry; loads from the precomputed
        // geometry otherwise (cheaper than re-deriving them from the configuration).
        let entries_lg2 = if L == TOP {
            self.geo.top_lg2[TOP as usize & 7]
        } else if F::FIXED_GEOMETRY {
            self.fmt.table_lg2(L)
        } else {
            self.geo.inner_lg2[L as usize & 7]
        };
        let item_lg2 = if F::FIXED_GEOMETRY {
            self.fmt.item_lg2(L)
        } else {
            self.geo.item_lg2[L as usize & 7]
        };
        let idx = (iova >> item_lg2) as usize & ((1usize << entries_lg2) - 1);
        // SAFETY: idx is inside `*table` (the caller's guarantee).
        let e = unsafe { Self::load(*table, idx) };
        let pte = self.fmt.decode(L, e);
        match pte {
            Pte::Table { pa } if L > 0 && L != stop => {
                *table = self.mem.phys_to_virt(pa);
                None
            }
            _ => Some((L, *table, idx, e, pte)),
        }
    }
}
