//! Lookup and translate: the read-only descent (unrolled per level for fixed-geometry
//! formats, so its shifts fold to constants) over the [`Cursor`].

use core::ptr::NonNull;

use super::cursor::Cursor;
use super::*;

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
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
        let idx_mask = if L == TOP {
            self.geo.top_mask[TOP as usize & 7]
        } else {
            (1usize << entries_lg2) - 1
        };
        let idx = (iova >> item_lg2) as usize & idx_mask;
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
