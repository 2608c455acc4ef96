//! Read-only walks (lookup, translate) and whole-subtree walks (teardown, emptiness and
//! leaf checks, byte counts): loop bodies over the [`Cursor`].

use core::ptr::NonNull;

use super::cursor::Cursor;
use super::*;

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

    /// The physical address `iova` translates to, or `None` (Linux's `iova_to_phys`).
    ///
    /// # Safety
    /// No map or unmap of a range containing `iova` runs at the same time.
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0x4000_0000, 0x8000_0000, 0x20_0000, 1, Prot::READ);
    ///     assert_eq!(pt.iova_to_phys(0x4012_3456), Some(0x8012_3456));
    ///     assert_eq!(pt.iova_to_phys(0x1000), None);
    /// }
    /// # Ok::<(), iopt::Error>(())
    /// ```
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
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0x4000_0000, 0x8000_0000, 0x20_0000, 1, Prot::READ);
    ///     let t = pt.translate(0x4012_3456).unwrap();
    ///     assert_eq!((t.pa, t.iova_base, t.size), (0x8012_3456, 0x4000_0000, 0x20_0000));
    ///     assert!(t.prot.contains(Prot::READ));
    /// }
    /// # Ok::<(), iopt::Error>(())
    /// ```
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
        let cur = unsafe { self.descend(root, top, iova, 0) };
        match cur.pte {
            Pte::Leaf { pa, run_lg2 } => {
                Some((cur.level, cur.raw, pa, 1u64 << (cur.entry_lg2() + run_lg2)))
            }
            _ => None,
        }
    }

    /// Walks from the top table toward `stop` along `iova`, and returns the cursor of
    /// where it ended: the first entry that does not point to a table, or the entry at
    /// level `stop` (loaded: `raw` and `pte` hold it).
    ///
    /// The walk is unrolled per top level at compile time ([`Self::descend_from`]), so
    /// each step's cursor has its level as a constant and, for formats with a fixed
    /// geometry, constant shifts and masks.
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
    ) -> Cursor<'_, F, M, X> {
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
    ) -> Cursor<'_, F, M, X> {
        let mut table = root;
        macro_rules! step {
            ($l:literal) => {
                #[allow(unused_comparisons, unused_assignments)]
                if $l <= TOP {
                    // SAFETY: passed on; `table` is the table at this level.
                    match unsafe { self.descend_step::<$l, TOP>(table, iova, stop) } {
                        Ok(cur) => return cur,
                        Err(child) => table = child,
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

    /// One level of [`Self::descend_from`]: a one-entry cursor on `table` at `iova`.
    /// `Err(child)`: the entry points to `child`, go on; `Ok(cursor)`: the walk ends at
    /// this entry (it is not a table, or the level is `stop`).
    ///
    /// # Safety
    /// `table` is a live table at level `L` of a table whose top is at `TOP`.
    #[inline(always)]
    unsafe fn descend_step<const L: u32, const TOP: u32>(
        &self,
        table: NonNull<u8>,
        iova: u64,
        stop: u32,
    ) -> core::result::Result<Cursor<'_, F, M, X>, NonNull<u8>> {
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
        // SAFETY: idx is inside `table` (the caller's guarantee).
        let raw = unsafe { Self::load(table, idx) };
        let pte = self.fmt.decode(L, raw);
        match pte {
            Pte::Table { pa } if L > 0 && L != stop => Err(self.mem.phys_to_virt(pa)),
            // The cursor of the entry where the walk ends (its index is `idx` again).
            _ => Ok(Cursor::at_entry(
                self,
                L,
                table,
                entries_lg2,
                item_lg2,
                iova,
                raw,
                pte,
            )),
        }
    }
}
