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
use crate::table::{Aperture, Info, Options, PageTable, TableCounts, Translation};
use crate::{Error, Prot, Reservation, Result, Table};

#[path = "range_lock.rs"]
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
/// - An operation outside its guard's range fails with [`Error::OutOfAperture`] (the
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
    pgsize_bitmap: u64,
    oa_bits: u32,
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
    pub fn new(fmt: F, mem: M, ops: X) -> Result<Self> {
        Ok(Self::from_raw(PageTable::new(fmt, mem, ops)?))
    }

    /// An empty table with explicit [`Options`].
    pub fn with_options(fmt: F, mem: M, ops: X, opts: Options) -> Result<Self> {
        Ok(Self::from_raw(PageTable::with_options(
            fmt, mem, ops, opts,
        )?))
    }

    /// Shares an existing raw table (owning it means nothing else uses it).
    pub fn from_raw(raw: PageTable<F, M, X>) -> Self {
        let info = raw.info();
        SharedTable {
            raw,
            locks: RangeLock::default(),
            aperture: info.aperture,
            pgsize_bitmap: info.pgsize_bitmap,
            oa_bits: info.oa_bits,
        }
    }

    /// Unwraps the raw table (no guard can be alive: they borrow the table).
    pub fn into_raw(self) -> PageTable<F, M, X> {
        self.raw
    }

    /// The raw, kernel-style table underneath (its operations are `unsafe`).
    pub fn raw(&self) -> &PageTable<F, M, X> {
        &self.raw
    }

    /// Levels, page sizes, aperture, root and hardware words (the levels and root of a
    /// dynamic top as they are at this moment).
    pub fn info(&self) -> Info {
        self.raw.info()
    }

    /// Table-memory counters.
    pub fn mem_stats(&self) -> MemStats {
        self.raw.mem_stats()
    }

    /// The table memory.
    pub fn memory(&self) -> &M {
        self.raw.memory()
    }

    /// Threads waiting in [`Self::lock`] or [`Self::lock_shared`] at this moment (a
    /// snapshot, for diagnostics and tests).
    pub fn waiters(&self) -> usize {
        self.locks.waiting()
    }

    /// Guards alive at this moment (a snapshot).
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
    pub fn lock(&self, iova: u64, len: u64) -> Result<RangeGuard<'_, F, M, X>> {
        let (first, last) = self.lock_range(iova, len)?;
        let id = self.locks.acquire(first, last, Mode::Exclusive);
        Ok(RangeGuard {
            table: self,
            first,
            last,
            id,
        })
    }

    /// [`Self::lock`] without waiting: `Ok(None)` if a guard overlapping the range is
    /// alive.
    pub fn try_lock(&self, iova: u64, len: u64) -> Result<Option<RangeGuard<'_, F, M, X>>> {
        let (first, last) = self.lock_range(iova, len)?;
        Ok(self
            .locks
            .try_acquire(first, last, Mode::Exclusive)
            .map(|id| RangeGuard {
                table: self,
                first,
                last,
                id,
            }))
    }

    /// Takes `[iova, iova + len)` for lookups, sleeping until no exclusive guard
    /// overlapping it is alive; shared guards may overlap. Errors and waiting as for
    /// [`Self::lock`].
    pub fn lock_shared(&self, iova: u64, len: u64) -> Result<SharedGuard<'_, F, M, X>> {
        let (first, last) = self.lock_range(iova, len)?;
        let id = self.locks.acquire(first, last, Mode::Shared);
        Ok(SharedGuard {
            table: self,
            first,
            last,
            id,
        })
    }

    /// [`Self::lock_shared`] without waiting: `Ok(None)` if an exclusive guard
    /// overlapping the range is alive.
    pub fn try_lock_shared(&self, iova: u64, len: u64) -> Result<Option<SharedGuard<'_, F, M, X>>> {
        let (first, last) = self.lock_range(iova, len)?;
        Ok(self
            .locks
            .try_acquire(first, last, Mode::Shared)
            .map(|id| SharedGuard {
                table: self,
                first,
                last,
                id,
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
    /// # Panics
    /// If `gather` was filled by another table.
    pub fn sync(&self, gather: &mut Gather) {
        self.raw.sync(gather)
    }

    /// Reserves the worst-case table pages for the maps in `plan` (`(iova, len)`
    /// pairs), for [`RangeGuard::map_reserved`]; see [`PageTable::worst_case_tables`].
    pub fn reserve(&self, plan: &[(u64, u64)]) -> Result<Reservation> {
        self.raw.reserve(plan)
    }

    /// Gives the unused pages of a reservation back.
    ///
    /// # Panics
    /// If the reservation belongs to another table.
    pub fn release(&self, reservation: Reservation) {
        self.raw.release(reservation)
    }

    /// `Ok` if `iova ..= last` lies inside the guard range `first ..= last_g`.
    fn inside(first: u64, last_g: u64, iova: u64, last: u64) -> Result<()> {
        if first <= iova && iova <= last && last <= last_g {
            Ok(())
        } else {
            Err(Error::OutOfAperture { iova, last })
        }
    }

    /// Translates `iova` for a guard over `first ..= last`.
    fn translate_in(&self, first: u64, last: u64, iova: u64) -> Result<Option<Translation>> {
        Self::inside(first, last, iova, iova)?;
        // SAFETY: a guard over `iova` is alive, so no map or unmap of a range containing
        // it runs (an exclusive guard's own map and unmap need `&mut` to it).
        Ok(unsafe { self.raw.translate(iova) })
    }

    /// The smallest page size.
    fn min_page(&self) -> u64 {
        1 << self.pgsize_bitmap.trailing_zeros()
    }
}

/// An exclusive hold on an IOVA range of a [`SharedTable`]: maps, unmaps and translates
/// inside it. Dropping it releases the range.
///
/// Every operation's range must lie inside the guard's ([`RangeGuard::range`]);
/// otherwise it fails with [`Error::OutOfAperture`] naming the operation's range, and
/// nothing changes.
#[must_use = "the range is released as soon as the guard is dropped"]
pub struct RangeGuard<'t, F: Format, M: TableMemory, X: FlushOps> {
    table: &'t SharedTable<F, M, X>,
    first: u64,
    last: u64,
    id: u64,
}

impl<F: Format, M: TableMemory, X: FlushOps> core::fmt::Debug for RangeGuard<'_, F, M, X> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RangeGuard")
            .field("first", &self.first)
            .field("last", &self.last)
            .finish()
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> Drop for RangeGuard<'_, F, M, X> {
    fn drop(&mut self) {
        self.table.locks.release(self.id);
    }
}

impl<'t, F: Format, M: TableMemory, X: FlushOps> RangeGuard<'t, F, M, X> {
    /// The IOVA range held, inclusive.
    pub fn range(&self) -> RangeInclusive<u64> {
        self.first..=self.last
    }

    /// The table the guard belongs to.
    pub fn table(&self) -> &'t SharedTable<F, M, X> {
        self.table
    }

    /// Translates `iova` (inside the guard): its physical address and the mapping
    /// around it.
    pub fn translate(&self, iova: u64) -> Result<Option<Translation>> {
        self.table.translate_in(self.first, self.last, iova)
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
    /// [`Error::OutOfAperture`] (the range is not inside the guard's),
    /// [`Error::PaddrTooLarge`], [`Error::AddressInUse`] naming an IOVA in use,
    /// [`Error::OutOfMemory`].
    pub fn map(&mut self, iova: u64, paddr: u64, len: u64, prot: Prot) -> Result<()> {
        self.map_inner(iova, paddr, len, prot, None)
    }

    /// [`Self::map`] taking new tables only from `reservation`
    /// ([`SharedTable::reserve`]): it never allocates. Fails with
    /// [`Error::ReservationExhausted`] (nothing changed) if the reservation is short.
    ///
    /// # Panics
    /// If the reservation belongs to another table.
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
        let t = self.table;
        if !prot.has_access() {
            return Err(Error::NoAccess);
        }
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        let min = t.min_page();
        if !len.is_multiple_of(min) {
            return Err(Error::BadPageSize(len));
        }
        if !iova.is_multiple_of(min) {
            return Err(Error::UnalignedIova { iova, pgsize: min });
        }
        if !paddr.is_multiple_of(min) {
            return Err(Error::UnalignedPaddr { paddr, pgsize: min });
        }
        let last = iova.checked_add(len - 1).ok_or(Error::Overflow)?;
        let pa_last = paddr.checked_add(len - 1).ok_or(Error::Overflow)?;
        SharedTable::<F, M, X>::inside(self.first, self.last, iova, last)?;
        if t.oa_bits < 64 && pa_last >> t.oa_bits != 0 {
            return Err(Error::PaddrTooLarge {
                last: pa_last,
                oa_bits: t.oa_bits,
            });
        }
        // SAFETY: `&mut self` on the exclusive guard holds the range, which lies inside
        // the guard; the arguments are checked.
        unsafe { map_all(&t.raw, t.pgsize_bitmap, iova, paddr, len, prot, reservation) }
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
    /// [`Error::UnalignedIova`], [`Error::Overflow`], [`Error::OutOfAperture`] (not
    /// inside the guard), [`Error::WouldSplit`].
    ///
    /// # Panics
    /// If `gather` holds work of another table.
    pub fn unmap(&mut self, iova: u64, len: u64, gather: &mut Gather) -> Result<u64> {
        let t = self.table;
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        let min = t.min_page();
        if !len.is_multiple_of(min) {
            return Err(Error::BadPageSize(len));
        }
        if !iova.is_multiple_of(min) {
            return Err(Error::UnalignedIova { iova, pgsize: min });
        }
        let last = iova.checked_add(len - 1).ok_or(Error::Overflow)?;
        SharedTable::<F, M, X>::inside(self.first, self.last, iova, last)?;
        for at in [iova, last] {
            // SAFETY: `&mut self` on the exclusive guard holds `at`.
            if let Some(tr) = unsafe { t.raw.translate(at) } {
                let tr_last = tr.iova_base + (tr.size - 1);
                if tr.iova_base < iova || tr_last > last {
                    return Err(Error::WouldSplit {
                        base: tr.iova_base,
                        size: tr.size,
                    });
                }
            }
        }
        // SAFETY: as above for the whole range; no mapping crosses its ends (checked),
        // so every entry this unmap clears covers only IOVAs inside the guard, and every
        // table it detaches spans only such IOVAs.
        let (bytes, r) = unsafe { t.raw.unmap_range(iova, len, gather) };
        r.map(|()| bytes)
    }
}

/// A shared hold on an IOVA range of a [`SharedTable`], for lookups: other shared guards
/// may overlap it, exclusive ones may not. Dropping it releases the range.
#[must_use = "the range is released as soon as the guard is dropped"]
pub struct SharedGuard<'t, F: Format, M: TableMemory, X: FlushOps> {
    table: &'t SharedTable<F, M, X>,
    first: u64,
    last: u64,
    id: u64,
}

impl<F: Format, M: TableMemory, X: FlushOps> core::fmt::Debug for SharedGuard<'_, F, M, X> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedGuard")
            .field("first", &self.first)
            .field("last", &self.last)
            .finish()
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> Drop for SharedGuard<'_, F, M, X> {
    fn drop(&mut self) {
        self.table.locks.release(self.id);
    }
}

impl<'t, F: Format, M: TableMemory, X: FlushOps> SharedGuard<'t, F, M, X> {
    /// The IOVA range held, inclusive.
    pub fn range(&self) -> RangeInclusive<u64> {
        self.first..=self.last
    }

    /// The table the guard belongs to.
    pub fn table(&self) -> &'t SharedTable<F, M, X> {
        self.table
    }

    /// Translates `iova` (inside the guard, else [`Error::OutOfAperture`]).
    pub fn translate(&self, iova: u64) -> Result<Option<Translation>> {
        self.table.translate_in(self.first, self.last, iova)
    }
}

/// The page size for the next piece of a map at `iova`/`paddr` with `remaining` bytes
/// left (the largest size of `bitmap` both addresses are aligned to that fits), and how
/// many pages of it to map before a larger size could take over.
///
/// `remaining` is a non-zero multiple of the smallest size, to which both addresses are
/// aligned.
fn piece(bitmap: u64, iova: u64, paddr: u64, remaining: u64) -> (u64, u64) {
    let align = (iova | paddr).trailing_zeros();
    let aligned = if align >= 63 {
        u64::MAX
    } else {
        (2u64 << align) - 1
    };
    let fits = u64::MAX >> remaining.leading_zeros();
    let usable = bitmap & aligned & fits;
    let size = 1u64 << (63 - usable.leading_zeros());
    let mut count = remaining / size;
    // The next larger size: worth switching to at its next IOVA boundary if the
    // physical address is aligned to it there too.
    let larger = bitmap & !(size | (size - 1));
    if larger != 0 {
        let big = larger & larger.wrapping_neg();
        if (iova ^ paddr) & (big - 1) == 0 {
            count = count.min((big - (iova & (big - 1))) / size);
        }
    }
    (size, count.clamp(1, usize::MAX as u64))
}

/// The pieces of a map: `(iova, paddr, page size, count)` in IOVA order.
#[derive(Debug, Clone, Copy)]
struct Pieces {
    bitmap: u64,
    iova: u64,
    paddr: u64,
    remaining: u64,
}

impl Iterator for Pieces {
    type Item = (u64, u64, u64, u64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (size, count) = piece(self.bitmap, self.iova, self.paddr, self.remaining);
        let item = (self.iova, self.paddr, size, count);
        let bytes = size * count;
        self.iova = self.iova.wrapping_add(bytes);
        self.paddr = self.paddr.wrapping_add(bytes);
        self.remaining -= bytes;
        Some(item)
    }
}

/// Maps `[iova, iova + len)` to `[paddr, paddr + len)` in [`Pieces`], all or nothing:
/// checks every piece's range free and takes the table pages the pieces need (from
/// `reservation`, or reserved here) before writing anything.
///
/// A reservation is accepted if it holds what the pieces need by the plan of each
/// piece, or the worst case of the whole range ([`PageTable::worst_case_tables`]); so a
/// reservation made for this one map always suffices. (With a reservation made for
/// several maps, a map whose pieces share new tables can be refused although the pages
/// left would do: the engine's plan cannot yet count a table that consecutive pieces
/// share once.)
///
/// Other threads may install tables or grow the top meanwhile: that only lowers what
/// the map needs (tables that exist now stay, on this range's path), so the pages
/// planned here always suffice.
///
/// # Safety
/// The caller holds `[iova, iova + len)` exclusively. The arguments are valid: `len` a
/// non-zero multiple of the smallest page size, both addresses aligned to it, the ranges
/// inside the aperture and the output-address width, `prot` granting access.
unsafe fn map_all<F: Format, M: TableMemory, X: FlushOps>(
    raw: &PageTable<F, M, X>,
    bitmap: u64,
    iova: u64,
    paddr: u64,
    len: u64,
    prot: Prot,
    reservation: Option<&mut Reservation>,
) -> Result<()> {
    let pieces = Pieces {
        bitmap,
        iova,
        paddr,
        remaining: len,
    };
    let mut counts = TableCounts::default();
    for (v, _, size, n) in pieces {
        let (level, run) = raw.leaf_of(size);
        // SAFETY: the caller holds the range.
        let planned = unsafe { raw.plan_map(v, v + (size * n - 1), level, run, &mut counts) };
        if let Err(e) = planned {
            if let Error::AddressInUse(_) = e {
                raw.note_overlap();
            }
            return Err(e);
        }
    }
    // `counts` sums what each piece needs on its own, so a new table two pieces share
    // is counted twice; the worst case of the whole range counts it once but ignores
    // what exists. Both bound what the map takes; having either in hand suffices.
    let worst = raw.worst_case_tables(&[(iova, len)])?;
    let mut own: Option<Reservation> = None;
    let pool: &mut Reservation = match reservation {
        Some(r) => {
            assert_eq!(r.owner, raw.id(), "reservation of another table");
            let covers = |c: &TableCounts| (0..24).all(|k| r.pages_of(k) as u64 >= c.of(k));
            if !covers(&counts) && !covers(&worst) {
                return Err(Error::ReservationExhausted);
            }
            r
        }
        None => {
            let need = if worst.total() < counts.total() {
                &worst
            } else {
                &counts
            };
            own.insert(raw.reserve_counts(need)?)
        }
    };
    let mut done = 0u64;
    let mut result = Ok(());
    for (v, p, size, n) in pieces {
        // SAFETY: the caller holds the range, which was found free.
        let (mapped, r) = unsafe { raw.map_pages_reserved(v, p, size, n as usize, prot, pool) };
        done += mapped;
        if let Err(e) = r {
            result = Err(e);
            break;
        }
    }
    if result.is_err() && done != 0 {
        // Not expected (the range was free and the pages are in hand): take back what
        // this call mapped, so the translations are as before.
        let mut g = Gather::new();
        // SAFETY: the caller holds the range; these are the pages this call mapped.
        let _ = unsafe { raw.unmap_range(iova, done, &mut g) };
        raw.sync(&mut g);
    }
    if let Some(own) = own {
        raw.release(own);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::piece;

    #[test]
    fn pieces_follow_alignment_and_length() {
        // 4K, 64K (run), 2M, 1G.
        let bm = (1 << 12) | (1 << 16) | (1 << 21) | (1 << 30);
        // Misaligned start: 4K pages up to the next 64K boundary.
        assert_eq!(piece(bm, 0x1000, 0x1000, 0x30_0000), (0x1000, 15));
        // At 64K: 64K runs up to the 2M boundary.
        assert_eq!(piece(bm, 0x1_0000, 0x1_0000, 0x30_0000), (0x1_0000, 31));
        // At 2M with 2M+ left: one 2M page (1G is too big).
        assert_eq!(piece(bm, 0x20_0000, 0x20_0000, 0x30_0000), (0x20_0000, 1));
        // Physical address only 4K aligned: 4K pages all the way.
        assert_eq!(piece(bm, 0x20_0000, 0x1000, 0x30_0000), (0x1000, 0x300));
        // Both zero (fully aligned), short length.
        assert_eq!(piece(bm, 0, 0, 0x3000), (0x1000, 3));
    }
}
