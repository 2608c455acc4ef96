//! The argument checks: one function per kind of request, each a branch-light fast path
//! (one pass of adds, ands and compares, no early exits) and one cold slow path that
//! finds out which argument is at fault and names it in the error.
//!
//! | request | check | used by |
//! |---|---|---|
//! | map of `pgcount` pages of `pgsize` | [`PageTable::check_map`] | `map_pages`, `map_pages_reserved` |
//! | unmap of `pgcount` pages of `pgsize` | [`PageTable::check_unmap`] | `unmap_pages` |
//! | byte range (a multiple of the smallest page) | [`PageTable::check_bytes`] | `unmap_range`, dirty reads, the safe layers' unmap, reservation plans |
//! | map of a byte range (the safe layers) | [`PageTable::check_map_bytes`] | `Table::map`, guards' `map` |
//! | reservation plan | [`PageTable::check_plan`] | `worst_case_tables`, `reserve` |
//!
//! Nothing else in the engine validates arguments.

use super::*;

/// The checked arguments of a map: the request's length and last IOVA, and the level
/// and run of its page size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MapArgs {
    /// Bytes of the request.
    pub(crate) len: u64,
    /// Level of the leaves.
    pub(crate) level: u32,
    /// log2 of the entries per page.
    pub(crate) run: u32,
}

/// The bits of [`Prot`] and [`DirtyFlags`] that mean something.
const PROT_DEFINED: u32 = Prot::all().bits();
const DIRTY_DEFINED: u32 = DirtyFlags::all().bits();

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Checks a map of `pgcount` pages of `pgsize` bytes at `iova` to `paddr` with `prot`.
    ///
    /// Errors, in this order: [`Error::NoAccess`], [`Error::UndefinedProt`],
    /// [`Error::ZeroLength`], [`Error::BadPageSize`], [`Error::UnalignedIova`],
    /// [`Error::Overflow`], [`Error::OutOfAperture`], [`Error::UnalignedPaddr`],
    /// [`Error::PaddrTooLarge`].
    #[inline(always)]
    pub(crate) fn check_map(
        &self,
        iova: u64,
        paddr: u64,
        pgsize: u64,
        pgcount: usize,
        prot: Prot,
    ) -> Result<MapArgs> {
        if let Some((level, run)) = self.leaf_for(pgsize)
            && let Some(len) = pgsize.checked_mul(pgcount as u64)
            && let Some(last) = len.checked_sub(1).and_then(|l| iova.checked_add(l))
            && let Some(pa_last) = paddr.checked_add(len.wrapping_sub(1))
        {
            let ok = prot.has_access()
                & (prot.bits() & !PROT_DEFINED == 0)
                & ((iova | paddr) & (pgsize - 1) == 0)
                & (pa_last & !mask_lg2(self.fmt.oa_bits()) == 0)
                & self.in_max_aperture(iova, last);
            if ok {
                return Ok(MapArgs { len, level, run });
            }
        }
        Err(self.map_error(iova, paddr, pgsize, pgcount, prot))
    }

    /// The slow path of [`Self::check_map`]: which argument is wrong.
    #[cold]
    #[inline(never)]
    fn map_error(&self, iova: u64, paddr: u64, pgsize: u64, pgcount: usize, prot: Prot) -> Error {
        if !prot.has_access() {
            return Error::NoAccess;
        }
        if prot.bits() & !PROT_DEFINED != 0 {
            return Error::UndefinedProt(prot.bits() & !PROT_DEFINED);
        }
        let len = match self.unmap_error(iova, pgsize, pgcount) {
            Ok(len) => len,
            Err(e) => return e,
        };
        if paddr & (pgsize - 1) != 0 {
            return Error::UnalignedPaddr { paddr, pgsize };
        }
        self.paddr_error(paddr, len)
            .unwrap_or(Error::BadPageSize(pgsize))
    }

    /// The physical-range error of a map of `len` bytes from `paddr`, if any.
    fn paddr_error(&self, paddr: u64, len: u64) -> Option<Error> {
        let Some(pa_last) = paddr.checked_add(len - 1) else {
            return Some(Error::Overflow);
        };
        let oa_bits = self.fmt.oa_bits();
        (pa_last & !mask_lg2(oa_bits) != 0).then_some(Error::PaddrTooLarge {
            last: pa_last,
            oa_bits,
        })
    }

    /// Checks an unmap of `pgcount` pages of `pgsize` bytes at `iova`; returns the
    /// length and the last IOVA.
    ///
    /// Errors, in this order: [`Error::ZeroLength`], [`Error::BadPageSize`],
    /// [`Error::UnalignedIova`], [`Error::Overflow`], [`Error::OutOfAperture`].
    #[inline(always)]
    pub(crate) fn check_unmap(&self, iova: u64, pgsize: u64, pgcount: usize) -> Result<(u64, u64)> {
        if let Some(len) = pgsize.checked_mul(pgcount as u64)
            && let Some(last) = len.checked_sub(1).and_then(|l| iova.checked_add(l))
        {
            let ok = pgsize.is_power_of_two()
                & (self.pgsize_bitmap & pgsize != 0)
                & (iova & pgsize.wrapping_sub(1) == 0)
                & self.in_max_aperture(iova, last);
            if ok {
                return Ok((len, last));
            }
        }
        Err(self
            .unmap_error(iova, pgsize, pgcount)
            .err()
            .unwrap_or(Error::Overflow))
    }

    /// The slow path of [`Self::check_unmap`] (also the range part of a map's): the
    /// error, or the length if the range is fine.
    #[cold]
    #[inline(never)]
    fn unmap_error(&self, iova: u64, pgsize: u64, pgcount: usize) -> Result<u64> {
        if pgcount == 0 {
            return Err(Error::ZeroLength);
        }
        if !pgsize.is_power_of_two() || self.pgsize_bitmap & pgsize == 0 {
            return Err(Error::BadPageSize(pgsize));
        }
        if iova & (pgsize - 1) != 0 {
            return Err(Error::UnalignedIova { iova, pgsize });
        }
        let len = pgsize.checked_mul(pgcount as u64).ok_or(Error::Overflow)?;
        let last = iova.checked_add(len - 1).ok_or(Error::Overflow)?;
        if !self.in_max_aperture(iova, last) {
            return Err(Error::OutOfAperture { iova, last });
        }
        Ok(len)
    }

    /// Checks a byte range: non-empty, a multiple of the smallest page size, aligned to
    /// it, no overflow, inside the aperture (at the largest top). Returns the last IOVA.
    ///
    /// Errors, in this order: [`Error::ZeroLength`], [`Error::BadPageSize`] (naming the
    /// length), [`Error::UnalignedIova`] (with the smallest page size),
    /// [`Error::Overflow`], [`Error::OutOfAperture`].
    #[inline(always)]
    pub(crate) fn check_bytes(&self, iova: u64, len: u64) -> Result<u64> {
        let min_mask = self.min_page() - 1;
        if let Some(last) = len.checked_sub(1).and_then(|l| iova.checked_add(l)) {
            let ok = ((iova | len) & min_mask == 0) & self.in_max_aperture(iova, last);
            if ok {
                return Ok(last);
            }
        }
        Err(self.bytes_error(iova, len))
    }

    /// The slow path of [`Self::check_bytes`].
    #[cold]
    #[inline(never)]
    fn bytes_error(&self, iova: u64, len: u64) -> Error {
        if len == 0 {
            return Error::ZeroLength;
        }
        let min = self.min_page();
        if !len.is_multiple_of(min) {
            return Error::BadPageSize(len);
        }
        if !iova.is_multiple_of(min) {
            return Error::UnalignedIova { iova, pgsize: min };
        }
        let Some(last) = iova.checked_add(len - 1) else {
            return Error::Overflow;
        };
        Error::OutOfAperture { iova, last }
    }

    /// Checks a map of the byte range `[iova, iova + len)` to `paddr` with `prot` (the
    /// safe layers' map, which picks its page sizes): [`Self::check_bytes`] plus the
    /// permissions and the physical range. Returns the last IOVA.
    ///
    /// Errors, in this order: [`Error::NoAccess`], [`Error::UndefinedProt`], those of
    /// [`Self::check_bytes`], [`Error::UnalignedPaddr`] (with the smallest page size),
    /// [`Error::Overflow`], [`Error::PaddrTooLarge`].
    #[inline(always)]
    pub(crate) fn check_map_bytes(
        &self,
        iova: u64,
        paddr: u64,
        len: u64,
        prot: Prot,
    ) -> Result<u64> {
        let min_mask = self.min_page() - 1;
        if let Some(last) = len.checked_sub(1).and_then(|l| iova.checked_add(l))
            && let Some(pa_last) = paddr.checked_add(len.wrapping_sub(1))
        {
            let ok = prot.has_access()
                & (prot.bits() & !PROT_DEFINED == 0)
                & ((iova | paddr | len) & min_mask == 0)
                & (pa_last & !mask_lg2(self.fmt.oa_bits()) == 0)
                & self.in_max_aperture(iova, last);
            if ok {
                return Ok(last);
            }
        }
        Err(self.map_bytes_error(iova, paddr, len, prot))
    }

    /// The slow path of [`Self::check_map_bytes`].
    #[cold]
    #[inline(never)]
    fn map_bytes_error(&self, iova: u64, paddr: u64, len: u64, prot: Prot) -> Error {
        if !prot.has_access() {
            return Error::NoAccess;
        }
        if prot.bits() & !PROT_DEFINED != 0 {
            return Error::UndefinedProt(prot.bits() & !PROT_DEFINED);
        }
        if let Err(e) = self.check_bytes(iova, len) {
            return e;
        }
        let min = self.min_page();
        if !paddr.is_multiple_of(min) {
            return Error::UnalignedPaddr { paddr, pgsize: min };
        }
        self.paddr_error(paddr, len).unwrap_or(Error::Overflow)
    }

    /// Checks a reservation plan (`(iova, len)` pairs) as [`Self::check_bytes`] checks
    /// each range, so that a plan is refused exactly where the maps it plans would be.
    pub(crate) fn check_plan(&self, plan: &[(u64, u64)]) -> Result<()> {
        plan.iter()
            .try_for_each(|&(iova, len)| self.check_bytes(iova, len).map(|_| ()))
    }

    /// Checks the flags of a dirty read: [`Error::UndefinedDirtyFlags`] for bits that
    /// mean nothing.
    #[inline(always)]
    pub(crate) fn check_dirty_flags(&self, flags: DirtyFlags) -> Result<()> {
        match flags.bits() & !DIRTY_DEFINED {
            0 => Ok(()),
            bits => Err(Error::UndefinedDirtyFlags(bits)),
        }
    }

    /// Checks that `reservation` was made by this table: [`Error::ForeignReservation`].
    #[inline(always)]
    pub(crate) fn check_reservation(&self, reservation: &Reservation) -> Result<()> {
        if reservation.owner == self.id {
            Ok(())
        } else {
            Err(Error::ForeignReservation)
        }
    }
}
