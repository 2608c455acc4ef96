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
        // Every condition in one pass of arithmetic and one branch. A page size that is
        // not a power of two has bits in `pgsize & (pgsize - 1)`; zero reads entry 0 of
        // the size table, which is empty (there are no 1-byte pages).
        let code = self.geo.leaf_by_lg2[(pgsize.trailing_zeros() & 63) as usize];
        let (len, mul_over) = pgsize.overflowing_mul(pgcount as u64);
        let last = iova.wrapping_add(len.wrapping_sub(1));
        let pa_last = paddr.wrapping_add(len.wrapping_sub(1));
        let (a, b) = (
            iova.wrapping_add(self.geo.max_bias),
            last.wrapping_add(self.geo.max_bias),
        );
        let bad_bits = (pgsize & pgsize.wrapping_sub(1))
            | ((iova | paddr) & pgsize.wrapping_sub(1))
            | (pa_last & self.geo.oa_over)
            | (b & self.geo.max_mask)
            | u64::from(prot.bits() & !PROT_DEFINED);
        // One page, aligned to its power-of-two size, cannot wrap the 64-bit space: the
        // wrap checks are for counts.
        let wraps = pgcount != 1 && (mul_over | (last < iova) | (pa_last < paddr) | (len == 0));
        if bad_bits == 0 && code != 0 && prot.has_access() && !wraps && a <= b {
            let v = (code - 1) as u32;
            return Ok(MapArgs {
                len,
                level: v >> 5,
                run: v & 31,
            });
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
        // As in `check_map`: one pass, one branch.
        let (len, mul_over) = pgsize.overflowing_mul(pgcount as u64);
        let last = iova.wrapping_add(len.wrapping_sub(1));
        let (a, b) = (
            iova.wrapping_add(self.geo.max_bias),
            last.wrapping_add(self.geo.max_bias),
        );
        let bad_bits = (pgsize & pgsize.wrapping_sub(1))
            | (iova & pgsize.wrapping_sub(1))
            | (b & self.geo.max_mask);
        let wraps = pgcount != 1 && (mul_over | (last < iova) | (len == 0));
        if bad_bits == 0 && self.pgsize_bitmap & pgsize != 0 && !wraps && a <= b {
            return Ok((len, last));
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

    /// Checks the IOVA of a cut ([`PageTable::cut`]): aligned to the smallest page size,
    /// inside the aperture (at the largest top). Errors: [`Error::UnalignedIova`] (with
    /// the smallest page size), [`Error::OutOfAperture`].
    #[inline]
    pub(crate) fn check_cut(&self, iova: u64) -> Result<()> {
        self.check_bytes(iova, self.min_page()).map(|_| ())
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

    /// Checks a permission change of `[iova, iova + len)` to `prot`
    /// ([`PageTable::protect`]). Returns the last IOVA.
    ///
    /// Errors, in this order: [`Error::NoAccess`], [`Error::UndefinedProt`], those of
    /// [`Self::check_bytes`].
    #[inline]
    pub(crate) fn check_protect(&self, iova: u64, len: u64, prot: Prot) -> Result<u64> {
        if !prot.has_access() {
            return Err(Error::NoAccess);
        }
        if prot.bits() & !PROT_DEFINED != 0 {
            return Err(Error::UndefinedProt(prot.bits() & !PROT_DEFINED));
        }
        self.check_bytes(iova, len)
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
