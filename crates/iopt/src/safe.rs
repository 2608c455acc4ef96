//! The safe single-owner table: `&mut self` methods, no `unsafe` for the caller.
//!
//! `&mut self` gives the table one owner, which is exactly the range-exclusivity rule of
//! the raw API, so every operation can be safe. Handing the table's root to hardware is
//! the one step a driver does with `unsafe`: from then on it must keep mapped memory
//! valid while it is mapped, which no table API can check.

use crate::flush::FlushOps;
use crate::format::Format;
use crate::gather::Gather;
use crate::mem::{MemStats, TableMemory};
use crate::table::{
    Bbm, Cut, DirtyFlags, Info, Options, PageTable, Protected, Translation, UnmapMode,
};
use crate::{Prot, Reservation, Result, SimWrite};

/// What an unmap removed. The hardware may still use the old translations until the
/// gather is synced: pass the gather to [`Table::sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the unmapped range stays in the hardware's TLB until the gather is synced (Table::sync)"]
pub struct Unmapped {
    bytes: u64,
}

impl Unmapped {
    /// Bytes removed: the mapped bytes of the range asked for (holes in it count
    /// nothing).
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Gather, NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0x1000, 0x8000_1000, 0x1000, Prot::READ)?;
    /// let mut g = Gather::new();
    /// // Holes on both sides of the one mapped page: skipped, not counted.
    /// let removed = t.unmap(0, 0x3000, &mut g)?;
    /// t.sync(&mut g);
    /// assert_eq!(removed.bytes(), 0x1000);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// A page table with one owner.
///
/// - [`Table::map`] chooses page sizes itself (the largest that the alignment of the IOVA
///   and the physical address, the remaining length and the table's page sizes allow,
///   contiguous runs included) and is all-or-nothing: it checks the range and takes the
///   table pages it needs before it writes anything, so on any error the table's bytes
///   are exactly what they were.
/// - [`Table::unmap`] removes exactly the range asked for, skipping holes, and refuses a
///   range that would cut a large or contiguous mapping before changing anything. Tables
///   it empties are detached and freed by [`Table::sync`]: a single owner never leaves
///   empty tables behind (a dynamic top grown by earlier maps goes down again, through
///   the flush operations' `top_changed`, once the levels it added hold nothing).
/// - [`Table::translate`] returns the physical address with the mapping's extent and
///   permissions, so a caller can unmap by extents.
///
/// ```
/// use iopt::{Gather, NoFlush, Prot, Table};
/// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
/// use iopt::mem::HeapMemory;
///
/// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
/// // 2 MiB + 64 KiB, both addresses 2 MiB aligned: one block and one contiguous run.
/// t.map(0x4000_0000, 0x8000_0000, 0x21_0000, Prot::READ | Prot::WRITE)?;
/// let tr = t.translate(0x4020_1234).unwrap();
/// assert_eq!((tr.pa, tr.iova_base, tr.size), (0x8020_1234, 0x4020_0000, 0x1_0000));
/// assert!(t.map(0x4010_0000, 0, 4096, Prot::READ).is_err()); // in use
///
/// let mut g = Gather::new();
/// let removed = t.unmap(0x4000_0000, 0x21_0000, &mut g)?;
/// assert_eq!(removed.bytes(), 0x21_0000);
/// t.sync(&mut g);
/// assert_eq!(t.mem_stats().pages, 1); // only the top table is left
/// # Ok::<(), iopt::Error>(())
/// ```
#[derive(Debug)]
pub struct Table<F: Format, M: TableMemory, X: FlushOps> {
    raw: PageTable<F, M, X>,
}

impl<F: Format, M: TableMemory, X: FlushOps> Table<F, M, X> {
    /// An empty table.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Table};
    /// let t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// assert_eq!(t.mem_stats().pages, 1); // just the top table
    /// assert_eq!(t.translate(0x4000_0000), None);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn new(fmt: F, mem: M, ops: X) -> Result<Self> {
        Ok(Table {
            raw: PageTable::new(fmt, mem, ops)?,
        })
    }

    /// An empty table with explicit [`Options`].
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, NoFlush, Options, OverlapPolicy, Prot, Table};
    /// let opts = Options { overlap: OverlapPolicy::Silent, ..Options::default() };
    /// let mut t = Table::with_options(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush, opts)?;
    /// t.map(0, 0x8000_0000, 0x1000, Prot::READ)?;
    /// // The safe layer refuses an overlap whatever the policy; none is counted.
    /// assert_eq!(t.map(0, 0x9000_0000, 0x1000, Prot::READ), Err(Error::AddressInUse(0)));
    /// assert_eq!(t.raw().overlap_warnings(), 0);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn with_options(fmt: F, mem: M, ops: X, opts: Options) -> Result<Self> {
        Ok(Table {
            raw: PageTable::with_options(fmt, mem, ops, opts)?,
        })
    }

    /// The raw, kernel-style table underneath (its operations are `unsafe`).
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0x4000_0000, 0x8000_0000, 0x1000, Prot::READ)?;
    /// // SAFETY: `t` is borrowed, so no map or unmap runs meanwhile.
    /// assert_eq!(unsafe { t.raw().iova_to_phys(0x4000_0123) }, Some(0x8000_0123));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn raw(&self) -> &PageTable<F, M, X> {
        &self.raw
    }

    /// Unwraps the raw table.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0x4000_0000, 0x8000_0000, 0x1000, Prot::READ)?;
    /// let pt = t.into_raw(); // the mappings stay
    /// // SAFETY: this thread is the only user of `pt` and no hardware walks it.
    /// assert_eq!(unsafe { pt.iova_to_phys(0x4000_0123) }, Some(0x8000_0123));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn into_raw(self) -> PageTable<F, M, X> {
        self.raw
    }

    /// Levels, page sizes, aperture, root and hardware words.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Table};
    /// let t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// let info = t.info();
    /// assert_eq!(info.levels, 4); // 48-bit input, 4 KiB granule
    /// // 4K, 2M and 1G, and their contiguous runs of 16: 64K, 32M, 16G.
    /// let sizes = (1 << 12) | (1 << 21) | (1 << 30);
    /// assert_eq!(info.pgsize_bitmap, sizes | sizes << 4);
    /// assert_eq!(info.aperture.last, (1 << 48) - 1);
    /// assert!(info.hw.get("TCR").is_some()); // among the words the driver programs
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn info(&self) -> Info {
        self.raw.info()
    }

    /// Table-memory counters.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Gather, NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0, 0x8000_0000, 0x1000, Prot::READ)?; // needs a table at each level below the top
    /// assert_eq!(t.mem_stats().pages, 4);
    /// let mut g = Gather::new();
    /// let _ = t.unmap(0, 0x1000, &mut g)?;
    /// t.sync(&mut g);
    /// assert_eq!((t.mem_stats().pages, t.mem_stats().peak_pages), (1, 4));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn mem_stats(&self) -> MemStats {
        self.raw.mem_stats()
    }

    /// The table memory.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Table};
    /// let t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::with_budget(8), NoFlush)?;
    /// assert_eq!(t.memory().budget(), Some(8));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn memory(&self) -> &M {
        self.raw.memory()
    }

    /// Translates `iova`.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0x20_0000, 0x8020_0000, 0x20_0000, Prot::READ)?; // one 2 MiB block
    /// let tr = t.translate(0x20_1234).unwrap();
    /// assert_eq!((tr.pa, tr.iova_base, tr.size, tr.prot), (0x8020_1234, 0x20_0000, 0x20_0000, Prot::READ));
    /// assert_eq!(t.translate(0x40_0000), None); // not mapped
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn translate(&self, iova: u64) -> Option<Translation> {
        // SAFETY: `&self` excludes every `&mut self` operation, so nothing changes the
        // table meanwhile.
        unsafe { self.raw.translate(iova) }
    }

    /// Maps `[iova, iova + len)` to `[paddr, paddr + len)` with `prot`, choosing page
    /// sizes itself; all or nothing.
    ///
    /// Errors (the table unchanged): the argument errors of
    /// [`PageTable::map_pages`] (with `len` a multiple of the smallest page size and
    /// the addresses aligned to it), [`Error::AddressInUse`](crate::Error::AddressInUse) naming the first IOVA in use,
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory).
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0x1_0000, 0x8000_0000, 0x1_0000, Prot::READ | Prot::WRITE)?;
    /// assert_eq!(t.translate(0x1_0000).map(|tr| tr.size), Some(0x1_0000)); // a contiguous run
    /// // Overlapping the end of the first: refused, and nothing of it is mapped.
    /// assert_eq!(t.map(0x1000, 0, 0x1_0000, Prot::READ), Err(Error::AddressInUse(0x1_0000)));
    /// assert_eq!(t.translate(0x1000), None);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn map(&mut self, iova: u64, paddr: u64, len: u64, prot: Prot) -> Result<()> {
        self.map_inner(iova, paddr, len, prot, None)
    }

    /// [`Table::map`] taking new tables only from `reservation`
    /// ([`Table::reserve`]): it never allocates. Fails with
    /// [`Error::ReservationExhausted`](crate::Error::ReservationExhausted) (nothing changed) if the reservation is short,
    /// and with [`Error::ForeignReservation`](crate::Error::ForeignReservation) if another table made it.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut r = t.reserve(&[(0, 0x1000)])?;
    /// let pages = t.mem_stats().pages; // the reservation's pages are already counted
    /// t.map_reserved(0, 0x8000_0000, 0x1000, Prot::READ, &mut r)?;
    /// assert_eq!(t.mem_stats().pages, pages);
    /// // Far from the first map: needs new tables, but the reservation is used up.
    /// let far = t.map_reserved(1 << 40, 0, 0x1000, Prot::READ, &mut r);
    /// assert_eq!(far, Err(Error::ReservationExhausted));
    /// t.release(r);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn map_reserved(
        &mut self,
        iova: u64,
        paddr: u64,
        len: u64,
        prot: Prot,
        reservation: &mut Reservation,
    ) -> Result<()> {
        self.map_inner(iova, paddr, len, prot, Some(reservation))
    }

    /// Reserves the worst-case table pages for the maps in `plan` (`(iova, len)` pairs);
    /// see [`PageTable::worst_case_tables`] for the formula.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Table};
    /// let t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// let r = t.reserve(&[(0, 0x20_0000), (1 << 40, 0x1000)])?;
    /// assert!(r.pages() > 0);
    /// assert_eq!(t.mem_stats().pages, 1 + r.pages() as u64); // taken now
    /// t.release(r);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn reserve(&self, plan: &[(u64, u64)]) -> Result<Reservation> {
        self.raw.reserve(plan)
    }

    /// Gives the unused pages of a reservation back.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut r = t.reserve(&[(0, 0x1000)])?;
    /// t.map_reserved(0, 0x8000_0000, 0x1000, Prot::READ, &mut r)?;
    /// let pages = t.mem_stats().pages;
    /// t.release(r); // the map took all the reserved pages: nothing goes back
    /// assert_eq!(t.mem_stats().pages, pages);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn release(&self, reservation: Reservation) {
        self.raw.release(reservation)
    }

    fn map_inner(
        &mut self,
        iova: u64,
        paddr: u64,
        len: u64,
        prot: Prot,
        reservation: Option<&mut Reservation>,
    ) -> Result<()> {
        // SAFETY: `&mut self` owns every range of the table.
        unsafe { self.raw.map_auto(iova, paddr, len, prot, reservation) }
    }

    /// Unmaps exactly `[iova, iova + len)`: every mapping inside it, skipping holes.
    ///
    /// A range that would cut a large or contiguous mapping at either end is refused with
    /// [`Error::WouldSplit`](crate::Error::WouldSplit) naming that mapping, before anything changes. Removed tables
    /// (including partly covered ones this unmap empties) wait in `gather` until
    /// [`Table::sync`].
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, Gather, NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0x20_0000, 0x8020_0000, 0x20_0000, Prot::READ)?; // one 2 MiB block
    /// let mut g = Gather::new();
    /// let cut = t.unmap(0x20_0000, 0x1000, &mut g);
    /// assert_eq!(cut, Err(Error::WouldSplit { base: 0x20_0000, size: 0x20_0000 }));
    /// assert_eq!(t.unmap(0x20_0000, 0x20_0000, &mut g)?.bytes(), 0x20_0000);
    /// t.sync(&mut g);
    /// assert_eq!(t.translate(0x20_0000), None);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn unmap(&mut self, iova: u64, len: u64, gather: &mut Gather) -> Result<Unmapped> {
        // SAFETY: `&mut self` owns the whole table, so emptied tables may be reclaimed
        // and a grown top lowered again.
        let bytes = unsafe { self.raw.unmap_exact(iova, len, true, gather) }?;
        // SAFETY: as above.
        unsafe { self.raw.shrink_top(gather) };
        Ok(Unmapped { bytes })
    }

    /// [`Table::unmap`] with a choice for ranges whose ends fall inside a large page or
    /// run: [`UnmapMode::Exact`] refuses them (as `unmap`), [`UnmapMode::Cut`] cuts the
    /// table at both ends first ([`PageTable::cut`]), so any range aligned to the
    /// smallest page can be unmapped. All or nothing: the cuts are checked and their
    /// tables taken before anything changes; errors add
    /// [`Error::NeedsBreakBeforeMake`](crate::Error::NeedsBreakBeforeMake) and
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) to those of `unmap`.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Bbm, Gather, NoFlush, Prot, Table, UnmapMode};
    /// let mut t = Table::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0x20_0000, 0x8020_0000, 0x20_0000, Prot::READ)?; // one 2 MiB page
    /// let mut g = Gather::new();
    /// // A 4K hole in the middle of it.
    /// let gone = t.unmap_with(0x20_3000, 0x1000, UnmapMode::Cut(Bbm::Refuse), &mut g)?;
    /// t.sync(&mut g);
    /// assert_eq!(gone.bytes(), 0x1000);
    /// assert_eq!(t.translate(0x20_3000), None);
    /// assert_eq!(t.translate(0x20_4000).unwrap().pa, 0x8020_4000);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn unmap_with(
        &mut self,
        iova: u64,
        len: u64,
        mode: UnmapMode,
        gather: &mut Gather,
    ) -> Result<Unmapped> {
        let bytes = match mode {
            UnmapMode::Exact => return self.unmap(iova, len, gather),
            UnmapMode::Cut(bbm) => {
                // SAFETY: `&mut self` owns the whole table.
                unsafe { self.raw.unmap_cutting(iova, len, bbm, true, None, gather) }?
            }
        };
        // SAFETY: as above.
        unsafe { self.raw.shrink_top(gather) };
        Ok(Unmapped { bytes })
    }

    /// [`Table::unmap`], handing each removed mapping to `report` as an
    /// [`Extent`](crate::Extent) (IOVA, physical address of its first byte, size,
    /// permissions), in IOVA order, in the same walk: a caller unpins or frees the pages
    /// without translating first.
    ///
    /// Same checks and all-or-nothing semantics as [`Table::unmap`]: a refused range
    /// (argument errors, [`Error::WouldSplit`](crate::Error::WouldSplit)) reports nothing
    /// and changes nothing. One extent per leaf item (a page, a large page, a whole
    /// contiguous run); their sizes add up to [`Unmapped::bytes`]. Neighbours are not
    /// merged: collect into a [`MergedExtents`](crate::MergedExtents) for that. See
    /// [`PageTable::unmap_pages_report`] for the details.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, Gather, NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// // 2 MiB + 64 KiB: one block and one contiguous run.
    /// t.map(0x4000_0000, 0x8000_0000, 0x21_0000, Prot::READ | Prot::WRITE)?;
    /// let (mut g, mut removed) = (Gather::new(), Vec::new());
    /// // A cut of the block is refused: nothing reported.
    /// let cut = t.unmap_report(0x4000_0000, 0x1000, &mut g, |e| removed.push(e));
    /// assert_eq!(cut, Err(Error::WouldSplit { base: 0x4000_0000, size: 0x20_0000 }));
    /// assert!(removed.is_empty());
    /// let done = t.unmap_report(0x4000_0000, 0x21_0000, &mut g, |e| removed.push(e))?;
    /// t.sync(&mut g);
    /// let got: Vec<(u64, u64, u64)> = removed.iter().map(|e| (e.iova, e.paddr, e.size)).collect();
    /// assert_eq!(got, [(0x4000_0000, 0x8000_0000, 0x20_0000), (0x4020_0000, 0x8020_0000, 0x1_0000)]);
    /// assert_eq!(done.bytes(), 0x21_0000);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn unmap_report(
        &mut self,
        iova: u64,
        len: u64,
        gather: &mut Gather,
        mut report: impl FnMut(crate::Extent),
    ) -> Result<Unmapped> {
        let sink = crate::extent::Report(&mut report);
        // SAFETY: `&mut self` owns the whole table (as in `unmap`).
        let bytes = unsafe { self.raw.unmap_exact_with(iova, len, true, gather, sink) }?;
        // SAFETY: as above.
        unsafe { self.raw.shrink_top(gather) };
        Ok(Unmapped { bytes })
    }

    /// Cuts the table at `iova` so that no large page or run crosses it, every
    /// translation unchanged: see [`PageTable::cut`] (the replaced mapping, or `None`
    /// when nothing crossed `iova`; errors; break-before-make).
    ///
    /// ```
    /// use iopt::fmt::riscv::{Riscv, RiscvConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Bbm, NoFlush, Prot, Table};
    /// let mut t = Table::new(Riscv::new(RiscvConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0x4000_0000, 0x8000_0000, 0x4000_0000, Prot::READ)?; // one 1 GiB page
    /// let cut = t.cut(0x4010_0000, Bbm::Refuse)?.unwrap();
    /// assert_eq!((cut.base, cut.size, cut.bbm), (0x4000_0000, 0x4000_0000, false));
    /// // 2 MiB pages where they fit, 64K (Svnapot) runs next to the cut.
    /// assert_eq!(t.translate(0x4020_0000).unwrap().size, 0x20_0000);
    /// assert_eq!(t.translate(0x400f_f000).unwrap().size, 0x1_0000);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn cut(&mut self, iova: u64, bbm: Bbm) -> Result<Option<Cut>> {
        // SAFETY: `&mut self` owns the whole table.
        unsafe { self.raw.cut(iova, bbm) }
    }

    /// [`Table::cut`] with its tables from `reservation` (see
    /// [`PageTable::cut_reserved`] and [`Table::reserve_cuts`]).
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Bbm, NoFlush, Prot, Table};
    /// let mut t = Table::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0, 0x8000_0000, 0x20_0000, Prot::READ)?;
    /// let mut r = t.reserve_cuts(&[0x1000])?;
    /// t.cut_reserved(0x1000, Bbm::Refuse, &mut r)?;
    /// t.release(r);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn cut_reserved(
        &mut self,
        iova: u64,
        bbm: Bbm,
        reservation: &mut Reservation,
    ) -> Result<Option<Cut>> {
        // SAFETY: `&mut self` owns the whole table.
        unsafe { self.raw.cut_reserved(iova, bbm, reservation) }
    }

    /// A reservation of exactly the table pages cuts at `cuts` need in the table as it
    /// is ([`PageTable::cut_tables`]).
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Prot, Table};
    /// let mut t = Table::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0, 0x8000_0000, 0x4000_0000, Prot::READ)?; // 1 GiB
    /// assert_eq!(t.reserve_cuts(&[0x1000]).map(|r| { let n = r.pages(); t.release(r); n })?, 2);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn reserve_cuts(&self, cuts: &[u64]) -> Result<Reservation> {
        // SAFETY: `&self` of the single owner: no edit runs meanwhile.
        unsafe { self.raw.reserve_cuts(cuts) }
    }

    /// Gives every mapping in `[iova, iova + len)` the permissions `prot` in place:
    /// see [`PageTable::protect`] (holes skipped and counted, large pages kept whole,
    /// break-before-make only by opt-in). The rewritten ranges go into `gather` for
    /// [`Table::sync`].
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Bbm, Error, Gather, NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0, 0x8000_0000, 0x20_0000, Prot::READ | Prot::WRITE | Prot::CACHE)?;
    /// let mut g = Gather::new();
    /// let done = t.protect(0, 0x20_0000, Prot::READ | Prot::CACHE, Bbm::Refuse, &mut g)?;
    /// assert_eq!(done.changed, 0x20_0000);
    /// // A change of memory type needs break-before-make on ARM.
    /// let r = t.protect(0, 0x20_0000, Prot::READ, Bbm::Refuse, &mut g);
    /// assert_eq!(r, Err(Error::NeedsBreakBeforeMake { base: 0, size: 0x20_0000 }));
    /// t.sync(&mut g);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn protect(
        &mut self,
        iova: u64,
        len: u64,
        prot: Prot,
        bbm: Bbm,
        gather: &mut Gather,
    ) -> Result<Protected> {
        // SAFETY: `&mut self` owns the whole table.
        unsafe { self.raw.protect(iova, len, prot, bbm, gather) }
    }

    /// Reports every mapping in `[iova, iova + len)` that the hardware wrote through
    /// since it was made or last cleaned, as `record(base, size)` with the mapping's
    /// extent clipped to the range (a large page crossing an end is cleaned whole), and
    /// cleans it unless `flags` has
    /// [`DirtyFlags::NO_CLEAR`]; cleaned extents go to `gather` for [`Table::sync`].
    /// See [`PageTable::read_and_clear_dirty`] for the details and the errors
    /// ([`Error::NoDirtyTracking`](crate::Error::NoDirtyTracking) when the format has no
    /// dirty tracking).
    ///
    /// ```
    /// use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{DirtyFlags, Error, Gather, NoFlush, Prot, Table};
    /// let fmt = AmdV1::new(AmdV1Config { dirty_tracking: true, ..AmdV1Config::default() })?;
    /// let mut t = Table::new(fmt, HeapMemory::new(), NoFlush)?;
    /// t.map(0, 0x8000_0000, 0x4000, Prot::READ | Prot::WRITE)?;
    /// let (mut g, mut dirty) = (Gather::new(), Vec::new());
    /// t.read_and_clear_dirty(0, 0x4000, DirtyFlags::empty(), &mut g, |b, s| dirty.push((b, s)))?;
    /// assert!(dirty.is_empty()); // no device wrote
    /// t.sync(&mut g);
    ///
    /// let mut plain = Table::new(AmdV1::new(AmdV1Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let r = plain.read_and_clear_dirty(0, 0x4000, DirtyFlags::empty(), &mut g, |_, _| ());
    /// assert_eq!(r, Err(Error::NoDirtyTracking));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn read_and_clear_dirty(
        &mut self,
        iova: u64,
        len: u64,
        flags: DirtyFlags,
        gather: &mut Gather,
        mut record: impl FnMut(u64, u64),
    ) -> Result<()> {
        // SAFETY: `&mut self` owns every range of the table, so no map or unmap runs.
        unsafe {
            self.raw
                .read_and_clear_dirty(iova, len, flags, gather, &mut record)
        }
    }

    /// Switches hardware dirty tracking on or off; see
    /// [`PageTable::set_dirty_tracking`] for what changes per format (ARM rewrites every
    /// writable leaf and gathers it; the others change only their hardware words, read
    /// them again with [`Table::info`]). Errors:
    /// [`Error::NoDirtyTracking`](crate::Error::NoDirtyTracking) when the format has no
    /// dirty tracking (nothing changes).
    ///
    /// ```
    /// use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Gather, NoFlush, Table};
    /// let fmt = AmdV1::new(AmdV1Config { dirty_tracking: true, ..AmdV1Config::default() })?;
    /// let mut t = Table::new(fmt, HeapMemory::new(), NoFlush)?;
    /// let mut g = Gather::new();
    /// t.set_dirty_tracking(false, &mut g)?;
    /// assert!(!t.dirty_tracking());
    /// assert_eq!(t.info().hw.get("DTE.HAD"), Some(0)); // the IOMMU stops setting D
    /// t.set_dirty_tracking(true, &mut g)?;
    /// assert_eq!(t.info().hw.get("DTE.HAD"), Some(3));
    /// assert!(g.is_empty()); // AMD v1 entries do not change
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn set_dirty_tracking(&mut self, enable: bool, gather: &mut Gather) -> Result<()> {
        // SAFETY: `&mut self` owns every range of the table, so no map or unmap runs.
        unsafe { self.raw.set_dirty_tracking(enable, gather) }
    }

    /// True while dirty tracking is switched on ([`PageTable::dirty_tracking`]).
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Table};
    /// let t = Table::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// assert!(!t.dirty_tracking()); // not configured
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn dirty_tracking(&self) -> bool {
        self.raw.dirty_tracking()
    }

    /// Plays the IOMMU for tests: a device write through `iova`, recorded in the table as
    /// the hardware records it ([`PageTable::simulate_write`]).
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{DirtyFlags, Gather, NoFlush, Prot, SimWrite, Table};
    /// let fmt = ArmLpae::new(ArmLpaeConfig { dirty_tracking: true, ..ArmLpaeConfig::default() })?;
    /// let mut t = Table::new(fmt, HeapMemory::new(), NoFlush)?;
    /// t.map(0, 0x8000_0000, 0x20_0000, Prot::READ | Prot::WRITE)?; // one writable-clean block
    /// assert_eq!(t.simulate_write(0x1_2345), SimWrite::Marked); // AP[2] cleared
    /// let (mut g, mut dirty) = (Gather::new(), Vec::new());
    /// t.read_and_clear_dirty(0, 0x20_0000, DirtyFlags::empty(), &mut g, |b, s| dirty.push((b, s)))?;
    /// assert_eq!(dirty, [(0, 0x20_0000)]);
    /// t.sync(&mut g);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn simulate_write(&self, iova: u64) -> SimWrite {
        // SAFETY: maps and unmaps need `&mut self`, so none runs meanwhile.
        unsafe { self.raw.simulate_write(iova) }
    }

    /// Invalidates what `gather` collected through the flush operations, then frees the
    /// detached table pages.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Gather, NoFlush, Prot, Table};
    /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0, 0x8000_0000, 0x1000, Prot::READ)?;
    /// let mut g = Gather::new();
    /// let _ = t.unmap(0, 0x1000, &mut g)?;
    /// // To invalidate: the span of the biggest emptied table; to free: the 3 below the top.
    /// assert_eq!((g.range(), g.pending_tables()), (Some((0, (1 << 39) - 1)), 3));
    /// t.sync(&mut g);
    /// assert!(g.is_empty());
    /// assert_eq!(t.mem_stats().pages, 1);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn sync(&mut self, gather: &mut Gather) {
        self.raw.sync(gather)
    }
}
