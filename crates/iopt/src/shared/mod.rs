//! The concurrent handle: one table shared by many threads, which take guards over IOVA
//! ranges and map, unmap and translate through them.
//!
//! The raw API's rule is that operations on overlapping IOVA ranges must not run at the
//! same time. [`SharedTable`] enforces it with an interval lock: an operation is only
//! reachable through a guard, and only inside the guard's range. What the engine does for
//! concurrent callers (tables installed by compare-and-swap from private builds, the loser
//! of a race freeing its own table, the dynamic top grown under a lock with the old root
//! linked below the new one) is then always used as the raw API's `# Safety` sections
//! require.

use core::ops::RangeInclusive;

use crate::flush::FlushOps;
use crate::format::Format;
use crate::gather::Gather;
use crate::mem::{MemStats, TableMemory};
use crate::table::{
    Aperture, Bbm, Cut, DirtyFlags, Info, Options, PageTable, Protected, Translation, UnmapMode,
};
use crate::{Error, Prot, Reservation, Result, Table};

mod range_lock;

use range_lock::{Mode, RangeLock};

/// A page table that threads share (`Send + Sync`), used through range guards.
///
/// - [`SharedTable::lock`] takes an IOVA range exclusively and returns a [`RangeGuard`]
///   that maps, unmaps and translates inside that range; [`SharedTable::lock_shared`]
///   takes it for lookups only ([`SharedGuard`]): shared guards may overlap each other
///   but not exclusive ones. A request that overlaps a guard it cannot coexist with
///   sleeps until that guard is dropped; [`SharedTable::try_lock`] and
///   [`SharedTable::try_lock_shared`] return `None` at once instead.
/// - Guards on disjoint ranges work at the same time, even when their ranges share table
///   pages: new tables are linked with compare-and-swap, and a dynamic top (AMD v1) grows
///   while other guards work below it.
/// - An operation outside its guard's range fails with [`Error::OutsideGuard`] (the
///   guard's range is the aperture it may use) and changes nothing.
/// - [`RangeGuard::unmap`] detaches the tables whose whole span lies inside the range
///   it unmaps; [`SharedTable::sync`] invalidates and frees them. Tables it only empties
///   stay linked (another guard may be working in the rest of their span) and are used
///   again by later maps, or freed by a later unmap that covers their span, or when the
///   table is dropped.
///
/// The lock is not reentrant: a thread that asks for a range overlapping a guard it
/// holds itself (an exclusive one, or any guard when it asks exclusively) waits for
/// ever. It is not fair either (see [`SharedTable::lock`]).
///
/// ```
/// use iopt::{Gather, NoFlush, Prot, SharedTable};
/// use iopt::fmt::x86_64::{X86_64, X86_64Config};
/// use iopt::mem::HeapMemory;
///
/// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
/// const MB2: u64 = 0x20_0000;
/// // Two threads map disjoint 2 MiB windows of the same 1 GiB table at the same time.
/// std::thread::scope(|s| {
///     let workers: Vec<_> = (0..2u64)
///         .map(|i| {
///             let t = &t;
///             s.spawn(move || -> iopt::Result<()> {
///                 let base = 0x4000_0000 + i * MB2;
///                 let mut g = t.lock(base, MB2)?;
///                 g.map(base, 0x1_0000_0000 + i * MB2, 0x1_0000, Prot::READ | Prot::WRITE)?;
///                 // Outside the guard: refused.
///                 assert!(g.map(base + MB2, 0, 0x1000, Prot::READ).is_err());
///                 Ok(())
///             })
///         })
///         .collect();
///     for w in workers {
///         w.join().unwrap()?;
///     }
///     Ok::<(), iopt::Error>(())
/// })?;
///
/// // Lookups need only a shared guard.
/// let r = t.lock_shared(0x4000_0000, 2 * MB2)?;
/// assert_eq!(r.translate(0x4020_1234)?.map(|tr| tr.pa), Some(0x1_0020_1234));
/// drop(r);
///
/// let mut g = t.lock(0x4000_0000, 2 * MB2)?;
/// let mut gather = Gather::new();
/// assert_eq!(g.unmap(0x4000_0000, 2 * MB2, &mut gather)?, 0x2_0000);
/// t.sync(&mut gather);
/// # Ok::<(), iopt::Error>(())
/// ```
pub struct SharedTable<F: Format, M: TableMemory, X: FlushOps> {
    raw: PageTable<F, M, X>,
    locks: RangeLock,
    /// The aperture at the largest top, the page sizes and the output width: fixed for
    /// the table's life.
    aperture: Aperture,
}

impl<F: Format, M: TableMemory, X: FlushOps> core::fmt::Debug for SharedTable<F, M, X> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedTable")
            .field("raw", &self.raw)
            .field("guards", &self.locks.held())
            .finish()
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> From<Table<F, M, X>> for SharedTable<F, M, X> {
    fn from(t: Table<F, M, X>) -> Self {
        Self::from_raw(t.into_raw())
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> SharedTable<F, M, X> {
    /// An empty table.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// assert_eq!((t.mem_stats().pages, t.guards()), (1, 0)); // the top table, no guard
    /// assert_eq!(t.lock_shared(0, 0x1000)?.translate(0)?, None);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn new(fmt: F, mem: M, ops: X) -> Result<Self> {
        Ok(Self::from_raw(PageTable::new(fmt, mem, ops)?))
    }

    /// An empty table with explicit [`Options`].
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, NoFlush, Options, OverlapPolicy, Prot, SharedTable};
    /// let opts = Options { overlap: OverlapPolicy::Silent, ..Options::default() };
    /// let t = SharedTable::with_options(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush, opts)?;
    /// let mut g = t.lock(0, 0x2000)?;
    /// g.map(0, 0x8000_0000, 0x2000, Prot::READ)?;
    /// assert_eq!(g.map(0x1000, 0, 0x1000, Prot::READ), Err(Error::AddressInUse(0x1000)));
    /// assert_eq!(t.raw().overlap_warnings(), 0); // refused, and not counted
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn with_options(fmt: F, mem: M, ops: X, opts: Options) -> Result<Self> {
        Ok(Self::from_raw(PageTable::with_options(
            fmt, mem, ops, opts,
        )?))
    }

    /// Shares an existing raw table (owning it means nothing else uses it).
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Prot, SharedTable, Table};
    /// let mut owned = Table::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// owned.map(0x4000_0000, 0x8000_0000, 0x1000, Prot::READ)?;
    /// let t = SharedTable::from_raw(owned.into_raw()); // or `SharedTable::from(owned)`
    /// let r = t.lock_shared(0x4000_0000, 0x1000)?;
    /// assert_eq!(r.translate(0x4000_0123)?.map(|tr| tr.pa), Some(0x8000_0123));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn from_raw(raw: PageTable<F, M, X>) -> Self {
        let info = raw.info();
        SharedTable {
            raw,
            locks: RangeLock::default(),
            aperture: info.aperture,
        }
    }

    /// Unwraps the raw table (no guard can be alive: they borrow the table).
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// t.lock(0, 0x1000)?.map(0, 0x8000_0000, 0x1000, Prot::READ)?;
    /// let pt = t.into_raw(); // the mappings stay
    /// // SAFETY: this thread is the only user of `pt` and no hardware walks it.
    /// assert_eq!(unsafe { pt.iova_to_phys(0x123) }, Some(0x8000_0123));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn into_raw(self) -> PageTable<F, M, X> {
        self.raw
    }

    /// The raw, kernel-style table underneath (its operations are `unsafe`).
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// assert_eq!(t.raw().info().root_pa, t.info().root_pa);
    /// assert_eq!(t.raw().mem_stats(), t.mem_stats());
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn raw(&self) -> &PageTable<F, M, X> {
        &self.raw
    }

    /// Levels, page sizes, aperture, root and hardware words (the levels and root of a
    /// dynamic top as they are at this moment).
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let info = t.info();
    /// assert_eq!(info.levels, 4);
    /// assert_eq!(info.pgsize_bitmap, (1 << 12) | (1 << 21) | (1 << 30)); // 4K, 2M, 1G
    /// assert_eq!(info.hw.get("CR3"), Some(info.root_pa)); // what the driver programs
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn info(&self) -> Info {
        self.raw.info()
    }

    /// Table-memory counters.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// t.lock(0, 0x1000)?.map(0, 0x8000_0000, 0x1000, Prot::READ)?;
    /// let st = t.mem_stats();
    /// assert_eq!((st.pages, st.bytes), (4, 4 * 4096)); // the top and one table per level below
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn mem_stats(&self) -> MemStats {
        self.raw.mem_stats()
    }

    /// The table memory.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::with_budget(16), NoFlush)?;
    /// assert_eq!(t.memory().budget(), Some(16));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn memory(&self) -> &M {
        self.raw.memory()
    }

    /// Threads waiting in [`Self::lock`] or [`Self::lock_shared`] at this moment (a
    /// snapshot, for diagnostics and tests).
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let g = t.lock(0, 0x1000)?;
    /// std::thread::scope(|s| {
    ///     let waiter = s.spawn(|| t.lock(0, 0x1000).map(drop));
    ///     while t.waiters() == 0 {
    ///         std::thread::yield_now();
    ///     }
    ///     drop(g); // lets the waiter go
    ///     waiter.join().unwrap()
    /// })?;
    /// assert_eq!(t.waiters(), 0);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn waiters(&self) -> usize {
        self.locks.waiting()
    }

    /// Guards alive at this moment (a snapshot).
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let a = t.lock_shared(0, 0x2000)?;
    /// let b = t.lock_shared(0x1000, 0x2000)?; // shared guards may overlap
    /// assert_eq!(t.guards(), 2);
    /// drop((a, b));
    /// assert_eq!(t.guards(), 0);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn guards(&self) -> usize {
        self.locks.held()
    }

    /// The inclusive range `[iova, iova + len)` if it can be locked.
    fn lock_range(&self, iova: u64, len: u64) -> Result<(u64, u64)> {
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        let last = iova.checked_add(len - 1).ok_or(Error::Overflow)?;
        if !self.aperture.contains(iova, last) {
            return Err(Error::OutOfAperture { iova, last });
        }
        Ok((iova, last))
    }

    /// Takes `[iova, iova + len)` exclusively, sleeping until no guard overlapping it is
    /// alive. The guard releases the range when dropped.
    ///
    /// Errors: [`Error::ZeroLength`], [`Error::Overflow`], [`Error::OutOfAperture`] (the
    /// range must lie inside the table's aperture at its largest top, in one piece).
    ///
    /// Waiters are not queued: when a guard is dropped every waiter checks again and
    /// those whose range is free go ahead, so a request can be overtaken by later ones
    /// (and an exclusive request can wait as long as overlapping shared guards keep
    /// coming). No wakeup is lost: a waiter sleeps only while a conflicting guard is
    /// alive.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut g = t.lock(0x20_0000, 0x20_0000)?;
    /// assert_eq!(g.range(), 0x20_0000..=0x3f_ffff);
    /// g.map(0x20_0000, 0x8000_0000, 0x20_0000, Prot::READ)?;
    /// assert_eq!(t.lock(0, 0).err(), Some(Error::ZeroLength));
    /// assert!(matches!(t.lock(1 << 47, 0x1000), Err(Error::OutOfAperture { .. })));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn lock(&self, iova: u64, len: u64) -> Result<RangeGuard<'_, F, M, X>> {
        let (first, last) = self.lock_range(iova, len)?;
        let id = self.locks.acquire(first, last, Mode::Exclusive);
        Ok(RangeGuard {
            hold: Hold {
                table: self,
                first,
                last,
                id,
            },
        })
    }

    /// [`Self::lock`] without waiting: `Ok(None)` if a guard overlapping the range is
    /// alive.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let g = t.lock_shared(0, 0x2000)?;
    /// assert!(t.try_lock(0x1000, 0x1000)?.is_none()); // overlaps a (shared) guard
    /// assert!(t.try_lock(0x2000, 0x1000)?.is_some()); // disjoint
    /// drop(g);
    /// assert!(t.try_lock(0, 0x2000)?.is_some());
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn try_lock(&self, iova: u64, len: u64) -> Result<Option<RangeGuard<'_, F, M, X>>> {
        let (first, last) = self.lock_range(iova, len)?;
        Ok(self
            .locks
            .try_acquire(first, last, Mode::Exclusive)
            .map(|id| RangeGuard {
                hold: Hold {
                    table: self,
                    first,
                    last,
                    id,
                },
            }))
    }

    /// Takes `[iova, iova + len)` for lookups, sleeping until no exclusive guard
    /// overlapping it is alive; shared guards may overlap. Errors and waiting as for
    /// [`Self::lock`].
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// t.lock(0, 0x1000)?.map(0, 0x8000_0000, 0x1000, Prot::READ)?;
    /// let (a, b) = (t.lock_shared(0, 0x1000)?, t.lock_shared(0, 0x2000)?); // they overlap
    /// assert_eq!(a.translate(0x10)?.map(|tr| tr.pa), Some(0x8000_0010));
    /// assert_eq!(b.translate(0x1000)?, None);
    /// assert!(a.translate(0x1000).is_err()); // outside `a`
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn lock_shared(&self, iova: u64, len: u64) -> Result<SharedGuard<'_, F, M, X>> {
        let (first, last) = self.lock_range(iova, len)?;
        let id = self.locks.acquire(first, last, Mode::Shared);
        Ok(SharedGuard {
            hold: Hold {
                table: self,
                first,
                last,
                id,
            },
        })
    }

    /// [`Self::lock_shared`] without waiting: `Ok(None)` if an exclusive guard
    /// overlapping the range is alive.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let g = t.lock(0, 0x1000)?;
    /// assert!(t.try_lock_shared(0, 0x2000)?.is_none()); // overlaps the exclusive guard
    /// let r = t.try_lock_shared(0x1000, 0x1000)?.unwrap();
    /// assert!(t.try_lock_shared(0x1000, 0x1000)?.is_some()); // shared guards overlap
    /// drop((g, r));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn try_lock_shared(&self, iova: u64, len: u64) -> Result<Option<SharedGuard<'_, F, M, X>>> {
        let (first, last) = self.lock_range(iova, len)?;
        Ok(self
            .locks
            .try_acquire(first, last, Mode::Shared)
            .map(|id| SharedGuard {
                hold: Hold {
                    table: self,
                    first,
                    last,
                    id,
                },
            }))
    }

    /// Invalidates what `gather` collected through the flush operations, then frees the
    /// table pages it holds.
    ///
    /// Safe at any time: the pages in a gather were detached by an unmap whose guard
    /// covered their whole span, so no other guard's walk can reach them. Sync before
    /// the range is mapped again (that is, before dropping the guard, or under a new
    /// guard over it) if the hardware must not use stale translations meanwhile.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Gather, NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut g = t.lock(0, 1 << 30)?;
    /// g.map(0, 0x8000_0000, 0x20_0000, Prot::READ)?; // one 2 MiB page
    /// let mut gather = Gather::new();
    /// assert_eq!(g.unmap(0, 0x20_0000, &mut gather)?, 0x20_0000);
    /// assert!(!gather.is_empty()); // the range still to invalidate
    /// t.sync(&mut gather);
    /// assert!(gather.is_empty());
    /// # Ok::<(), iopt::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `gather` was filled by another table.
    pub fn sync(&self, gather: &mut Gather) {
        self.raw.sync(gather)
    }

    /// Switches hardware dirty tracking on or off, taking the whole aperture
    /// exclusively first (it waits until no guard is alive, and no guard can be taken
    /// meanwhile); see [`PageTable::set_dirty_tracking`] for what changes per format.
    /// Errors: [`Error::NoDirtyTracking`] when the format has no dirty tracking (nothing
    /// changes, nothing is locked).
    ///
    /// # Panics
    /// If `gather` was filled by another table.
    ///
    /// ```
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig, Stage};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Gather, NoFlush, Prot, SharedTable};
    /// let cfg = ArmLpaeConfig { stage: Stage::S2, dirty_tracking: true, ..ArmLpaeConfig::default() };
    /// let t = SharedTable::new(ArmLpae::new(cfg)?, HeapMemory::new(), NoFlush)?;
    /// t.lock(0, 0x1000)?.map(0, 0x8000_0000, 0x1000, Prot::READ | Prot::WRITE)?;
    /// let mut g = Gather::new();
    /// t.set_dirty_tracking(false, &mut g)?; // the page becomes writable-dirty
    /// assert_eq!(g.range(), Some((0, 0xfff)));
    /// assert_eq!(t.info().hw.get("VTCR").unwrap() & (3 << 21), 0); // VTCR.HA, HD off
    /// t.sync(&mut g);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn set_dirty_tracking(&self, enable: bool, gather: &mut Gather) -> Result<()> {
        if !self.raw.format().tracks_dirty() {
            return Err(Error::NoDirtyTracking);
        }
        let ap = self.aperture;
        let windows = [Some((ap.start, ap.last)), ap.upper];
        let mut held = [None, None];
        for (slot, (first, last)) in held.iter_mut().zip(windows.into_iter().flatten()) {
            *slot = Some((
                self.locks.acquire(first, last, Mode::Exclusive),
                first,
                last,
            ));
        }
        // SAFETY: every IOVA of the table is held exclusively: no guard, so no map or
        // unmap, runs until the locks are released.
        let r = unsafe { self.raw.set_dirty_tracking(enable, gather) };
        for (id, first, last) in held.into_iter().flatten() {
            self.locks.release(id, first, last);
        }
        r
    }

    /// True while dirty tracking is switched on ([`PageTable::dirty_tracking`]).
    ///
    /// ```
    /// use iopt::fmt::vtdss::{VtdSs, VtdSsConfig};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let fmt = VtdSs::new(VtdSsConfig { dirty_tracking: true, ..VtdSsConfig::default() })?;
    /// let t = SharedTable::new(fmt, HeapMemory::new(), NoFlush)?;
    /// assert!(t.dirty_tracking());
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn dirty_tracking(&self) -> bool {
        self.raw.dirty_tracking()
    }

    /// Reserves the worst-case table pages for the maps in `plan` (`(iova, len)`
    /// pairs), for [`RangeGuard::map_reserved`]; see [`PageTable::worst_case_tables`].
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let r = t.reserve(&[(0, 0x20_0000), (1 << 40, 0x1000)])?;
    /// assert!(r.pages() > 0);
    /// assert_eq!(t.mem_stats().pages, 1 + r.pages() as u64); // taken now
    /// t.release(r);
    /// assert_eq!(t.mem_stats().pages, 1);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn reserve(&self, plan: &[(u64, u64)]) -> Result<Reservation> {
        self.raw.reserve(plan)
    }

    /// Gives the unused pages of a reservation back.
    ///
    /// # Panics
    /// If the reservation belongs to another table.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut r = t.reserve(&[(0, 0x1000), (1 << 40, 0x1000)])?;
    /// let before = r.pages() as u64;
    /// t.lock(0, 0x1000)?.map_reserved(0, 0x8000_0000, 0x1000, Prot::READ, &mut r)?;
    /// t.release(r); // the second map did not happen: its pages go back
    /// assert!(before > 3);
    /// assert_eq!(t.mem_stats().pages, 4); // the top and the 3 tables the map used
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn release(&self, reservation: Reservation) {
        self.raw.release(reservation)
    }

    /// `Ok` if `iova ..= last` lies inside the guard range `first ..= last_g`.
    fn inside(first: u64, last_g: u64, iova: u64, last: u64) -> Result<()> {
        if first <= iova && iova <= last && last <= last_g {
            Ok(())
        } else {
            Err(Error::OutsideGuard { iova, last })
        }
    }

    /// Translates `iova` for a guard over `first ..= last`.
    fn translate_in(&self, first: u64, last: u64, iova: u64) -> Result<Option<Translation>> {
        Self::inside(first, last, iova, iova)?;
        // SAFETY: a guard over `iova` is alive, so no map or unmap of a range containing
        // it runs (an exclusive guard's own map and unmap need `&mut` to it).
        Ok(unsafe { self.raw.translate(iova) })
    }
}

/// A range held in a [`SharedTable`]'s interval lock: what both kinds of guard are made
/// of. Dropping it releases the range.
struct Hold<'t, F: Format, M: TableMemory, X: FlushOps> {
    table: &'t SharedTable<F, M, X>,
    first: u64,
    last: u64,
    id: u64,
}

impl<F: Format, M: TableMemory, X: FlushOps> Hold<'_, F, M, X> {
    /// `Ok` if `iova ..= last` lies inside the held range.
    fn inside(&self, iova: u64, last: u64) -> Result<()> {
        SharedTable::<F, M, X>::inside(self.first, self.last, iova, last)
    }

    /// Translates `iova`, which must lie inside the held range.
    fn translate(&self, iova: u64) -> Result<Option<Translation>> {
        self.table.translate_in(self.first, self.last, iova)
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> Drop for Hold<'_, F, M, X> {
    fn drop(&mut self) {
        self.table.locks.release(self.id, self.first, self.last);
    }
}

/// An exclusive hold on an IOVA range of a [`SharedTable`]: maps, unmaps and translates
/// inside it. Dropping it releases the range.
///
/// Every operation's range must lie inside the guard's ([`RangeGuard::range`]);
/// otherwise it fails with [`Error::OutsideGuard`] naming the operation's range, and
/// nothing changes.
#[must_use = "the range is released as soon as the guard is dropped"]
pub struct RangeGuard<'t, F: Format, M: TableMemory, X: FlushOps> {
    hold: Hold<'t, F, M, X>,
}

impl<F: Format, M: TableMemory, X: FlushOps> core::fmt::Debug for RangeGuard<'_, F, M, X> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RangeGuard")
            .field("first", &self.hold.first)
            .field("last", &self.hold.last)
            .finish()
    }
}

impl<'t, F: Format, M: TableMemory, X: FlushOps> RangeGuard<'t, F, M, X> {
    /// The IOVA range held, inclusive.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let g = t.lock(0x1000, 0x3000)?;
    /// assert_eq!(g.range(), 0x1000..=0x3fff);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn range(&self) -> RangeInclusive<u64> {
        self.hold.first..=self.hold.last
    }

    /// The table the guard belongs to.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let g = t.lock(0, 0x1000)?;
    /// assert!(std::ptr::eq(g.table(), &t));
    /// assert_eq!(g.table().guards(), 1);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn table(&self) -> &'t SharedTable<F, M, X> {
        self.hold.table
    }

    /// Translates `iova` (inside the guard): its physical address and the mapping
    /// around it.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut g = t.lock(0, 0x20_0000)?;
    /// g.map(0, 0x4000_0000, 0x20_0000, Prot::READ | Prot::WRITE)?; // one 2 MiB page
    /// let tr = g.translate(0x1234)?.unwrap();
    /// assert_eq!((tr.pa, tr.iova_base, tr.size), (0x4000_1234, 0, 0x20_0000));
    /// assert!(g.translate(0x20_0000).is_err()); // outside the guard
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn translate(&self, iova: u64) -> Result<Option<Translation>> {
        self.hold.translate(iova)
    }

    /// Maps `[iova, iova + len)` to `[paddr, paddr + len)` with `prot`, choosing page
    /// sizes itself (as [`Table::map`] does: the largest the alignment of both addresses,
    /// the remaining length and the table's page sizes allow); all or nothing.
    ///
    /// It checks that the range is free and takes every table page it needs before it
    /// writes anything, so on an error the translations are as before.
    ///
    /// Errors (nothing changed): [`Error::NoAccess`], [`Error::ZeroLength`],
    /// [`Error::BadPageSize`] (`len` not a multiple of the smallest page size),
    /// [`Error::UnalignedIova`], [`Error::UnalignedPaddr`], [`Error::Overflow`],
    /// [`Error::OutsideGuard`] (the range is not inside the guard's),
    /// [`Error::PaddrTooLarge`], [`Error::AddressInUse`] naming an IOVA in use,
    /// [`Error::OutOfMemory`].
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut g = t.lock(0, 0x10_0000)?;
    /// g.map(0, 0x8000_0000, 0x2000, Prot::READ)?;
    /// assert_eq!(g.map(0x1000, 0, 0x2000, Prot::READ), Err(Error::AddressInUse(0x1000)));
    /// assert_eq!(g.translate(0x2000)?, None); // all or nothing
    /// let out = g.map(0xf_f000, 0, 0x2000, Prot::READ); // reaches past the guard
    /// assert_eq!(out, Err(Error::OutsideGuard { iova: 0xf_f000, last: 0x10_0fff }));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn map(&mut self, iova: u64, paddr: u64, len: u64, prot: Prot) -> Result<()> {
        self.map_inner(iova, paddr, len, prot, None)
    }

    /// [`Self::map`] taking new tables only from `reservation`
    /// ([`SharedTable::reserve`]): it never allocates. Fails with
    /// [`Error::ReservationExhausted`] (nothing changed) if the reservation is short, and
    /// with [`Error::ForeignReservation`] if another table made it.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut r = t.reserve(&[(0, 0x1000)])?;
    /// let mut g = t.lock(0, 1 << 41)?;
    /// g.map_reserved(0, 0x8000_0000, 0x1000, Prot::READ, &mut r)?;
    /// // New tables for a far IOVA: none left in the reservation.
    /// let far = g.map_reserved(1 << 40, 0, 0x1000, Prot::READ, &mut r);
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

    fn map_inner(
        &mut self,
        iova: u64,
        paddr: u64,
        len: u64,
        prot: Prot,
        reservation: Option<&mut Reservation>,
    ) -> Result<()> {
        let last = iova.checked_add(len.max(1) - 1).ok_or(Error::Overflow)?;
        self.hold.inside(iova, last)?;
        // SAFETY: `&mut self` on the exclusive guard holds the range, which lies inside
        // the guard.
        unsafe {
            self.hold
                .table
                .raw
                .map_auto(iova, paddr, len, prot, reservation)
        }
    }

    /// Frees the empty tables wholly inside the guard's range (as aarch64-paging's
    /// `compact_subtables`): every table whose whole span lies in the range and that maps
    /// nothing is detached into `gather`, with the tables below it, and freed by
    /// [`SharedTable::sync`] after the flush. Returns how many table pages it detached.
    ///
    /// Guards leave the tables they empty in place (another guard may use the rest of
    /// their span); a guard over the span of such tables reclaims them with `compact`.
    /// Tables that reach outside the guard stay.
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, Prot, SharedTable};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut g = t.lock(0, 1 << 30)?;
    /// g.map(0x1000, 0x8000_0000, 0x1000, Prot::READ)?;
    /// let mut gather = Gather::new();
    /// g.unmap(0x1000, 0x1000, &mut gather)?;
    /// assert_eq!(t.mem_stats().pages, 4); // the emptied tables stay
    /// assert_eq!(g.compact(&mut gather), 2); // the 1 GiB span's level-1 and leaf tables
    /// t.sync(&mut gather);
    /// assert_eq!(t.mem_stats().pages, 2); // the top and the 512 GiB table it shares
    /// # Ok::<(), iopt::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `gather` holds work of another table.
    pub fn compact(&mut self, gather: &mut Gather) -> usize {
        // SAFETY: `&mut self` on the exclusive guard holds its whole range.
        unsafe {
            self.hold
                .table
                .raw
                .compact_range(self.hold.first, self.hold.last, gather)
        }
    }

    /// Unmaps exactly `[iova, iova + len)` (inside the guard): every mapping in it,
    /// skipping holes. Returns the bytes removed.
    ///
    /// A range that would cut a large or contiguous mapping at either end is refused
    /// with [`Error::WouldSplit`] naming that mapping, before anything changes (so no
    /// mapping reaching outside the guard is ever touched). Tables whose whole span lies
    /// in the range wait in `gather` until [`SharedTable::sync`].
    ///
    /// Errors (nothing changed): [`Error::ZeroLength`], [`Error::BadPageSize`],
    /// [`Error::UnalignedIova`], [`Error::Overflow`], [`Error::OutsideGuard`] (not
    /// inside the guard), [`Error::WouldSplit`].
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, Gather, NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut g = t.lock(0, 0x40_0000)?;
    /// g.map(0, 0x8000_0000, 0x20_0000, Prot::READ)?; // one 2 MiB page
    /// let mut gather = Gather::new();
    /// let cut = g.unmap(0, 0x1000, &mut gather);
    /// assert_eq!(cut, Err(Error::WouldSplit { base: 0, size: 0x20_0000 }));
    /// assert_eq!(g.unmap(0, 0x40_0000, &mut gather)?, 0x20_0000); // the hole counts nothing
    /// t.sync(&mut gather);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `gather` holds work of another table.
    pub fn unmap(&mut self, iova: u64, len: u64, gather: &mut Gather) -> Result<u64> {
        let last = iova.checked_add(len.max(1) - 1).ok_or(Error::Overflow)?;
        self.hold.inside(iova, last)?;
        // SAFETY: `&mut self` on the exclusive guard holds the range. No reclaiming of
        // partly covered tables: other guards may be working in the rest of them.
        unsafe { self.hold.table.raw.unmap_exact(iova, len, false, gather) }
    }

    /// [`Self::unmap`], handing each removed mapping to `report` as an
    /// [`Extent`](crate::Extent) (IOVA, physical address of its first byte, size,
    /// permissions), in IOVA order, in the same walk. Returns the bytes removed, which
    /// the extents' sizes add up to.
    ///
    /// Same checks and all-or-nothing semantics as [`Self::unmap`]: a refused range
    /// reports nothing and changes nothing. See [`PageTable::unmap_pages_report`] for
    /// what is reported.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, Gather, MergedExtents, NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut g = t.lock(0, 0x40_0000)?;
    /// g.map(0, 0x8000_0000, 0x4000, Prot::READ)?;
    /// let (mut gather, mut ext) = (Gather::new(), MergedExtents::new());
    /// let outside = g.unmap_report(0, 0x80_0000, &mut gather, |e| ext.push(e));
    /// assert!(matches!(outside, Err(Error::OutsideGuard { .. })));
    /// assert_eq!(g.unmap_report(0, 0x40_0000, &mut gather, |e| ext.push(e))?, 0x4000);
    /// t.sync(&mut gather);
    /// assert_eq!((ext.len(), ext.as_slice()[0].paddr, ext.bytes()), (1, 0x8000_0000, 0x4000));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `gather` holds work of another table.
    pub fn unmap_report(
        &mut self,
        iova: u64,
        len: u64,
        gather: &mut Gather,
        mut report: impl FnMut(crate::Extent),
    ) -> Result<u64> {
        let last = iova.checked_add(len.max(1) - 1).ok_or(Error::Overflow)?;
        self.hold.inside(iova, last)?;
        let sink = crate::extent::Report(&mut report);
        // SAFETY: as in `unmap`: the exclusive guard holds the range; no reclaiming.
        unsafe {
            self.hold
                .table
                .raw
                .unmap_exact_with(iova, len, false, gather, sink)
        }
    }

    /// [`Self::unmap`] with a choice for ranges whose ends fall inside a large page or
    /// run ([`UnmapMode`]); with [`UnmapMode::Cut`] the table is cut at both ends first.
    /// A cut may only replace a mapping that lies wholly inside the guard:
    /// [`Error::OutsideGuard`] otherwise. All or nothing, as [`Table::unmap_with`].
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Bbm, Gather, NoFlush, Prot, SharedTable, UnmapMode};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut g = t.lock(0, 0x40_0000)?;
    /// g.map(0, 0x8000_0000, 0x20_0000, Prot::READ)?; // one 2 MiB page
    /// let mut gather = Gather::new();
    /// assert_eq!(g.unmap_with(0x1000, 0x1000, UnmapMode::Cut(Bbm::Refuse), &mut gather)?, 0x1000);
    /// t.sync(&mut gather);
    /// assert_eq!(g.translate(0x2000)?.map(|t| t.pa), Some(0x8000_2000));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `gather` holds work of another table.
    pub fn unmap_with(
        &mut self,
        iova: u64,
        len: u64,
        mode: UnmapMode,
        gather: &mut Gather,
    ) -> Result<u64> {
        match mode {
            UnmapMode::Exact => self.unmap(iova, len, gather),
            UnmapMode::Cut(bbm) => {
                let last = iova.checked_add(len.max(1) - 1).ok_or(Error::Overflow)?;
                self.hold.inside(iova, last)?;
                let bound = Some((self.hold.first, self.hold.last));
                // SAFETY: `&mut self` on the exclusive guard holds the range, and the
                // cuts only replace mappings inside it (checked through `bound`).
                unsafe {
                    self.hold
                        .table
                        .raw
                        .unmap_cutting(iova, len, bbm, false, bound, gather)
                }
            }
        }
    }

    /// Cuts the table at `iova` (inside the guard), as [`PageTable::cut`]; the mapping
    /// it replaces must lie wholly inside the guard ([`Error::OutsideGuard`] otherwise,
    /// nothing changed).
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Bbm, Error, NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut g = t.lock(0, 0x40_0000)?;
    /// g.map(0, 0x8000_0000, 0x20_0000, Prot::READ)?;
    /// g.map(0x20_0000, 0x8020_0000, 0x20_0000, Prot::READ)?;
    /// assert!(g.cut(0x1000, Bbm::Refuse)?.is_some());
    /// drop(g);
    /// // A guard over part of the second 2 MiB page may not replace it.
    /// let mut small = t.lock(0x20_0000, 0x10_0000)?;
    /// let r = small.cut(0x20_1000, Bbm::Refuse);
    /// assert_eq!(r, Err(Error::OutsideGuard { iova: 0x20_0000, last: 0x3f_ffff }));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn cut(&mut self, iova: u64, bbm: Bbm) -> Result<Option<Cut>> {
        self.hold.inside(iova, iova)?;
        let bound = Some((self.hold.first, self.hold.last));
        // SAFETY: `&mut self` on the exclusive guard; the cut only replaces a mapping
        // inside the guard (checked through `bound`).
        unsafe { self.hold.table.raw.cut_inner(iova, bbm, None, bound) }
    }

    /// Gives every mapping in `[iova, iova + len)` (inside the guard) the permissions
    /// `prot`, as [`PageTable::protect`]: large pages stay whole, so none reaching
    /// outside the range (and so the guard) is touched.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Bbm, Gather, NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut g = t.lock(0, 0x4000)?;
    /// g.map(0, 0x8000_0000, 0x4000, Prot::READ | Prot::WRITE)?;
    /// let mut gather = Gather::new();
    /// assert_eq!(g.protect(0, 0x4000, Prot::READ, Bbm::Refuse, &mut gather)?.changed, 0x4000);
    /// t.sync(&mut gather);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `gather` holds work of another table.
    pub fn protect(
        &mut self,
        iova: u64,
        len: u64,
        prot: Prot,
        bbm: Bbm,
        gather: &mut Gather,
    ) -> Result<Protected> {
        let last = iova.checked_add(len.max(1) - 1).ok_or(Error::Overflow)?;
        self.hold.inside(iova, last)?;
        // SAFETY: `&mut self` on the exclusive guard holds the range; protect refuses
        // mappings crossing its ends.
        unsafe { self.hold.table.raw.protect(iova, len, prot, bbm, gather) }
    }

    /// Reports every mapping in `[iova, iova + len)` (inside the guard) that the
    /// hardware wrote through since it was made or last cleaned, as `record(base, size)`
    /// with the mapping's extent clipped to the range, and cleans it unless `flags` has
    /// [`DirtyFlags::NO_CLEAR`]; cleaned extents go to `gather` for
    /// [`SharedTable::sync`]. See [`PageTable::read_and_clear_dirty`].
    ///
    /// A large mapping that crosses an end of the guard is reported for the part inside
    /// the range, and cleaned whole (it is one entry): only its dirty record changes (atomically), and no other guard can unmap it,
    /// since that would need a range covering it whole (overlapping this guard) or
    /// cutting it (refused).
    ///
    /// Errors (nothing read): [`Error::NoDirtyTracking`], [`Error::OutsideGuard`], and
    /// the range errors of [`Self::unmap`].
    ///
    /// ```
    /// use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{DirtyFlags, Gather, NoFlush, Prot, SharedTable};
    /// let fmt = AmdV1::new(AmdV1Config { dirty_tracking: true, ..AmdV1Config::default() })?;
    /// let t = SharedTable::new(fmt, HeapMemory::new(), NoFlush)?;
    /// let mut g = t.lock(0, 0x4000)?;
    /// g.map(0, 0x8000_0000, 0x4000, Prot::READ | Prot::WRITE)?;
    /// let (mut gather, mut dirty) = (Gather::new(), Vec::new());
    /// g.read_and_clear_dirty(0, 0x4000, DirtyFlags::empty(), &mut gather, |b, s| dirty.push((b, s)))?;
    /// assert!(dirty.is_empty()); // no device wrote
    /// assert!(g.read_and_clear_dirty(0, 0x8000, DirtyFlags::empty(), &mut gather, |_, _| ()).is_err());
    /// t.sync(&mut gather);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `gather` holds work of another table.
    pub fn read_and_clear_dirty(
        &mut self,
        iova: u64,
        len: u64,
        flags: DirtyFlags,
        gather: &mut Gather,
        mut record: impl FnMut(u64, u64),
    ) -> Result<()> {
        let last = iova.checked_add(len.max(1) - 1).ok_or(Error::Overflow)?;
        self.hold.inside(iova, last)?;
        // SAFETY: `&mut self` on the exclusive guard holds the range, so no map or
        // unmap runs inside it; a leaf reaching out of it cannot be unmapped by another
        // guard (see above).
        unsafe {
            self.hold
                .table
                .raw
                .read_and_clear_dirty(iova, len, flags, gather, &mut record)
        }
    }
}

/// A shared hold on an IOVA range of a [`SharedTable`], for lookups: other shared guards
/// may overlap it, exclusive ones may not. Dropping it releases the range.
#[must_use = "the range is released as soon as the guard is dropped"]
pub struct SharedGuard<'t, F: Format, M: TableMemory, X: FlushOps> {
    hold: Hold<'t, F, M, X>,
}

impl<F: Format, M: TableMemory, X: FlushOps> core::fmt::Debug for SharedGuard<'_, F, M, X> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedGuard")
            .field("first", &self.hold.first)
            .field("last", &self.hold.last)
            .finish()
    }
}

impl<'t, F: Format, M: TableMemory, X: FlushOps> SharedGuard<'t, F, M, X> {
    /// The IOVA range held, inclusive.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let r = t.lock_shared(0x1000, 0x3000)?;
    /// assert_eq!(r.range(), 0x1000..=0x3fff);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn range(&self) -> RangeInclusive<u64> {
        self.hold.first..=self.hold.last
    }

    /// The table the guard belongs to.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{NoFlush, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let r = t.lock_shared(0, 0x1000)?;
    /// assert!(std::ptr::eq(r.table(), &t));
    /// assert!(r.table().try_lock(0, 0x1000)?.is_none()); // the range is held shared
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn table(&self) -> &'t SharedTable<F, M, X> {
        self.hold.table
    }

    /// Translates `iova` (inside the guard, else [`Error::OutsideGuard`]).
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, NoFlush, Prot, SharedTable};
    /// let t = SharedTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// t.lock(0, 0x1000)?.map(0, 0x8000_0000, 0x1000, Prot::READ)?;
    /// let r = t.lock_shared(0, 0x2000)?;
    /// assert_eq!(r.translate(0x123)?.map(|tr| (tr.pa, tr.prot)), Some((0x8000_0123, Prot::READ)));
    /// assert_eq!(r.translate(0x1000)?, None); // inside the guard, not mapped
    /// assert_eq!(r.translate(0x2000), Err(Error::OutsideGuard { iova: 0x2000, last: 0x2000 }));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn translate(&self, iova: u64) -> Result<Option<Translation>> {
        self.hold.translate(iova)
    }
}
