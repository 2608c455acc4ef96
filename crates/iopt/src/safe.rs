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
use crate::table::{Info, Options, PageTable, TableCounts, Translation};
use crate::{Error, Prot, Reservation, Result};

/// The next piece of a map with page sizes `bitmap`: the largest page size usable at
/// `iova`/`paddr` (both aligned to it) for at most `remaining` bytes, and how many such
/// pages to map before a larger size becomes usable (`remaining` and the addresses are
/// multiples of the smallest page size).
pub(crate) fn next_piece(bitmap: u64, iova: u64, paddr: u64, remaining: u64) -> (u64, u64) {
    let align = (iova | paddr).trailing_zeros().min(63);
    let fits = bitmap & (u64::MAX >> (63 - align)) & (u64::MAX >> remaining.leading_zeros());
    let size = 1u64 << (63 - fits.leading_zeros());
    let mut count = remaining / size;
    // Stop where the next larger page size becomes usable.
    let larger = bitmap & !(size.wrapping_shl(1).wrapping_sub(1));
    if larger != 0 {
        let big = 1u64 << larger.trailing_zeros();
        if (iova ^ paddr) & (big - 1) == 0 {
            let to_boundary = big - (iova & (big - 1));
            count = count.min(to_boundary / size);
        }
    }
    (size, count.max(1))
}

/// What an unmap removed. The hardware may still use the old translations until the
/// gather is synced: pass the gather to [`Table::sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the unmapped range stays in the hardware's TLB until the gather is synced (Table::sync)"]
pub struct Unmapped {
    bytes: u64,
}

impl Unmapped {
    /// Bytes removed (exactly the range asked for).
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
///   empty tables behind.
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
    pub fn new(fmt: F, mem: M, ops: X) -> Result<Self> {
        Ok(Table {
            raw: PageTable::new(fmt, mem, ops)?,
        })
    }

    /// An empty table with explicit [`Options`].
    pub fn with_options(fmt: F, mem: M, ops: X, opts: Options) -> Result<Self> {
        Ok(Table {
            raw: PageTable::with_options(fmt, mem, ops, opts)?,
        })
    }

    /// The raw, kernel-style table underneath (its operations are `unsafe`).
    pub fn raw(&self) -> &PageTable<F, M, X> {
        &self.raw
    }

    /// Unwraps the raw table.
    pub fn into_raw(self) -> PageTable<F, M, X> {
        self.raw
    }

    /// Levels, page sizes, aperture, root and hardware words.
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

    /// Translates `iova`.
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
    /// the addresses aligned to it), [`Error::AddressInUse`] naming the first IOVA in use,
    /// [`Error::OutOfMemory`].
    pub fn map(&mut self, iova: u64, paddr: u64, len: u64, prot: Prot) -> Result<()> {
        self.map_inner(iova, paddr, len, prot, None)
    }

    /// [`Table::map`] taking new tables only from `reservation`
    /// ([`Table::reserve`]): it never allocates. Fails with
    /// [`Error::ReservationExhausted`] (nothing changed) if the reservation is short.
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
    pub fn reserve(&self, plan: &[(u64, u64)]) -> Result<Reservation> {
        self.raw.reserve(plan)
    }

    /// Gives the unused pages of a reservation back.
    pub fn release(&self, reservation: Reservation) {
        self.raw.release(reservation)
    }

    fn check_args(&self, iova: u64, paddr: u64, len: u64, prot: Prot) -> Result<()> {
        if !prot.has_access() {
            return Err(Error::NoAccess);
        }
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        let info = self.raw.info();
        let min = 1u64 << info.pgsize_bitmap.trailing_zeros();
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
        if !info.aperture.contains(iova, last) {
            return Err(Error::OutOfAperture { iova, last });
        }
        if info.oa_bits < 64 && pa_last >> info.oa_bits != 0 {
            return Err(Error::PaddrTooLarge {
                last: pa_last,
                oa_bits: info.oa_bits,
            });
        }
        Ok(())
    }

    fn map_inner(
        &mut self,
        iova: u64,
        paddr: u64,
        len: u64,
        prot: Prot,
        reservation: Option<&mut Reservation>,
    ) -> Result<()> {
        self.check_args(iova, paddr, len, prot)?;
        // Plan: every piece's range must be free; count the tables the pieces create.
        let mut counts = TableCounts::default();
        let (mut v, mut p, mut rem) = (iova, paddr, len);
        while rem != 0 {
            let (size, n) = next_piece(self.raw.info().pgsize_bitmap, v, p, rem);
            let (level, run) = self.raw.leaf_of(size);
            let piece = size * n;
            // SAFETY: `&mut self`: we own every range of the table.
            unsafe {
                self.raw
                    .plan_map(v, v + (piece - 1), level, run, &mut counts)
            }
            .inspect_err(|e| {
                if let Error::AddressInUse(_) = e {
                    self.raw.note_overlap();
                }
            })?;
            (v, p, rem) = (v.wrapping_add(piece), p + piece, rem - piece);
        }
        let mut own: Option<Reservation> = None;
        let pool: &mut Reservation = match reservation {
            Some(r) => {
                assert_eq!(r.owner, self.raw.id(), "reservation of another table");
                for (size_lg2, n) in (0..24).map(|c| (c, counts.of(c))) {
                    if (r.pages_of(size_lg2) as u64) < n {
                        return Err(Error::ReservationExhausted);
                    }
                }
                r
            }
            None => own.insert(self.raw.reserve_counts(&counts)?),
        };
        // Map: cannot fail now (the range is free and the tables are in hand).
        let (mut v, mut p, mut rem) = (iova, paddr, len);
        let mut result = Ok(());
        while rem != 0 {
            let (size, n) = next_piece(self.raw.info().pgsize_bitmap, v, p, rem);
            // SAFETY: `&mut self` owns the range; it was checked free.
            let (done, r) = unsafe {
                self.raw
                    .map_pages_reserved(v, p, size, n as usize, prot, pool)
            };
            if let Err(e) = r {
                result = Err(e);
                // Not expected: undo what this call mapped so the table is unchanged.
                let mapped = v - iova + done;
                if mapped != 0 {
                    let mut g = Gather::new();
                    // SAFETY: as above; these are the pages this call just mapped.
                    let _ = unsafe {
                        self.raw
                            .unmap_inner(iova, iova + (mapped - 1), true, true, &mut g)
                    };
                    self.raw.sync(&mut g);
                }
                break;
            }
            (v, p, rem) = (v.wrapping_add(size * n), p + size * n, rem - size * n);
        }
        if let Some(own) = own {
            self.raw.release(own);
        }
        result
    }

    /// Unmaps exactly `[iova, iova + len)`: every mapping inside it, skipping holes.
    ///
    /// A range that would cut a large or contiguous mapping at either end is refused with
    /// [`Error::WouldSplit`] naming that mapping, before anything changes. Removed tables
    /// (including partly covered ones this unmap empties) wait in `gather` until
    /// [`Table::sync`].
    pub fn unmap(&mut self, iova: u64, len: u64, gather: &mut Gather) -> Result<Unmapped> {
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        let info = self.raw.info();
        let min = 1u64 << info.pgsize_bitmap.trailing_zeros();
        if !len.is_multiple_of(min) {
            return Err(Error::BadPageSize(len));
        }
        if !iova.is_multiple_of(min) {
            return Err(Error::UnalignedIova { iova, pgsize: min });
        }
        let last = iova.checked_add(len - 1).ok_or(Error::Overflow)?;
        if !info.aperture.contains(iova, last) {
            return Err(Error::OutOfAperture { iova, last });
        }
        for at in [iova, last] {
            if let Some(t) = self.translate(at) {
                let t_last = t.iova_base + (t.size - 1);
                if t.iova_base < iova || t_last > last {
                    return Err(Error::WouldSplit {
                        base: t.iova_base,
                        size: t.size,
                    });
                }
            }
        }
        // SAFETY: `&mut self` owns the whole table, so emptied tables may be reclaimed.
        let (bytes, r) = unsafe { self.raw.unmap_inner(iova, last, true, true, gather) };
        r?;
        Ok(Unmapped { bytes })
    }

    /// Invalidates what `gather` collected through the flush operations, then frees the
    /// detached table pages.
    pub fn sync(&mut self, gather: &mut Gather) {
        self.raw.sync(gather)
    }
}

#[cfg(test)]
mod tests {
    use super::next_piece;

    /// ARM64 4K: 4K, 64K (contiguous), 2M, 32M (contiguous), 1G, 16G (contiguous).
    const ARM4K: u64 = (1 << 12) | (1 << 16) | (1 << 21) | (1 << 25) | (1 << 30) | (1 << 34);

    #[test]
    fn pieces_grow_with_alignment_and_stop_at_boundaries() {
        // 4K-aligned start: 4K pages up to the 64K boundary.
        assert_eq!(next_piece(ARM4K, 0x1000, 0x1000, 1 << 30), (0x1000, 15));
        // 64K-aligned: 64K runs up to the 2M boundary.
        assert_eq!(
            next_piece(ARM4K, 0x1_0000, 0x1_0000, 1 << 30),
            (0x1_0000, 31)
        );
        // Different offsets modulo 64K: 4K pages for the whole length.
        assert_eq!(next_piece(ARM4K, 0x1000, 0x2000, 0x10_0000), (0x1000, 256));
        // Short lengths cap the size.
        assert_eq!(next_piece(ARM4K, 0, 0, 0x21_0000), (0x20_0000, 1));
        assert_eq!(
            next_piece(ARM4K, 0x20_0000, 0x20_0000, 0x1_0000),
            (0x1_0000, 1)
        );
        // Address 0 is aligned to everything.
        assert_eq!(next_piece(ARM4K, 0, 0, 1 << 35), (1 << 34, 2));
    }
}
