//! The safe layers' primitives: a map that chooses its page sizes and is all-or-nothing,
//! and an unmap of exactly a range. `Table` and the concurrent guards call these with
//! the range they own.

use super::*;
use crate::extent::{ExtentSink, NoReport};

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
            count = count.min((big - (iova & (big - 1))) / size);
        }
    }
    (size, count.max(1))
}

/// The pieces of a map, in IOVA order: `(iova, paddr, page size, count)`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pieces {
    pub(super) bitmap: u64,
    pub(super) iova: u64,
    pub(super) paddr: u64,
    pub(super) remaining: u64,
}

impl Iterator for Pieces {
    type Item = (u64, u64, u64, u64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (size, count) = next_piece(self.bitmap, self.iova, self.paddr, self.remaining);
        let item = (self.iova, self.paddr, size, count);
        let bytes = size * count;
        self.iova = self.iova.wrapping_add(bytes);
        self.paddr = self.paddr.wrapping_add(bytes);
        self.remaining -= bytes;
        Some(item)
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// The smallest page size.
    pub(crate) fn min_page(&self) -> u64 {
        1 << self.pgsize_bitmap.trailing_zeros()
    }

    /// Maps `[iova, iova + len)` to `[paddr, paddr + len)`, choosing the page sizes
    /// ([`next_piece`]), all or nothing: it checks the arguments, finds the range free and
    /// takes every table page the pieces need (from `reservation`, or allocated here)
    /// before it writes anything, so on error the table is unchanged.
    ///
    /// Other threads may install tables or grow the top meanwhile: that only lowers what
    /// the map needs (tables that exist now stay, on this range's path), so the pages
    /// planned here always suffice.
    ///
    /// # Safety
    /// The caller holds `[iova, iova + len)` exclusively.
    pub(crate) unsafe fn map_auto(
        &self,
        iova: u64,
        paddr: u64,
        len: u64,
        prot: Prot,
        reservation: Option<&mut Reservation>,
    ) -> Result<()> {
        if let Some(r) = &reservation {
            self.check_reservation(r)?;
        }
        self.check_map_bytes(iova, paddr, len, prot)?;
        // One page of a supported size whose tables all exist: a single entry (or run)
        // written in one step is all or nothing by itself.
        if let Some((level, run)) = self.leaf_for(len)
            && (iova | paddr) & (len - 1) == 0
        {
            // SAFETY: the caller holds the range.
            match unsafe { self.map_one(iova, paddr, level, run, prot) } {
                Some(Err(e)) => {
                    self.note_overlap();
                    return Err(e);
                }
                Some(Ok(())) => return Ok(()),
                None => {}
            }
        }
        let pieces = Pieces {
            bitmap: self.pgsize_bitmap,
            iova,
            paddr,
            remaining: len,
        };
        // Plan: every piece's range must be free; count the tables the pieces create
        // (a new table that consecutive pieces share is counted once).
        let mut plan = Plan::default();
        for (v, _, size, n) in pieces {
            let (level, run) = self.leaf_of(size);
            // SAFETY: the caller holds the range.
            let planned = unsafe { self.plan_map(v, v + (size * n - 1), level, run, &mut plan) };
            if let Err(e) = planned {
                if let Error::AddressInUse(_) = e {
                    self.note_overlap();
                }
                return Err(e);
            }
        }
        let mut own: Option<Reservation> = None;
        let pool: &mut Reservation = match reservation {
            Some(r) => {
                if (0..24).any(|c| (r.pages_of(c) as u64) < plan.counts.of(c)) {
                    return Err(Error::ReservationExhausted);
                }
                r
            }
            None => own.insert(self.reserve_counts(&plan.counts)?),
        };
        // A dynamic top that must grow grows once: the piece reaching highest goes
        // first, so the hardware hears of one new top for the whole request.
        let (_, top) = self.top();
        let first = (iova + (len - 1) > self.aperture(top).last)
            .then(|| pieces.last())
            .flatten();
        let order = first
            .into_iter()
            .chain(pieces.filter(move |&piece| Some(piece) != first));
        let mut done = 0u64;
        let mut result = Ok(());
        for (v, p, size, n) in order {
            // SAFETY: the caller holds the range, which was found free.
            let (mapped, r) =
                unsafe { self.map_pages_reserved(v, p, size, n as usize, prot, pool) };
            done += mapped;
            if let Err(e) = r {
                result = Err(e);
                break;
            }
        }
        if result.is_err() && done != 0 {
            // Not expected (the range was free and the pages are in hand): take back
            // what this call mapped, so the translations are as before. The range was
            // free, so everything in it is this call's, in whatever order it was mapped.
            let mut g = Gather::new();
            // SAFETY: the caller holds the range; all it maps is this call's.
            let _ = unsafe { self.unmap_inner(iova, iova + (len - 1), true, false, &mut g) };
            self.sync(&mut g);
        }
        if let Some(own) = own {
            self.release(own);
        }
        result
    }

    /// Unmaps exactly `[iova, iova + len)`: every mapping inside it, skipping holes. A
    /// range that would cut a large or contiguous mapping at either end is refused with
    /// [`Error::WouldSplit`] before anything changes. `reclaim`: also detach tables this
    /// unmap empties although the range covers only part of them (only when the caller
    /// owns their whole span). Returns the bytes removed.
    ///
    /// # Safety
    /// The caller holds `[iova, iova + len)` exclusively (and, with `reclaim`, every
    /// range of the table).
    pub(crate) unsafe fn unmap_exact(
        &self,
        iova: u64,
        len: u64,
        reclaim: bool,
        gather: &mut Gather,
    ) -> Result<u64> {
        // SAFETY: the caller's guarantees are passed on.
        unsafe { self.unmap_exact_with(iova, len, reclaim, gather, NoReport) }
    }

    /// [`Self::unmap_exact`], each removed extent handed to `sink` in IOVA order (only
    /// once nothing can fail: an unmap refused reports nothing).
    ///
    /// # Safety
    /// As for [`Self::unmap_exact`].
    #[inline(always)]
    pub(crate) unsafe fn unmap_exact_with<S: ExtentSink>(
        &self,
        iova: u64,
        len: u64,
        reclaim: bool,
        gather: &mut Gather,
        mut sink: S,
    ) -> Result<u64> {
        // One whole leaf of exactly this size (no table to reclaim): cleared directly.
        let last = self.check_bytes(iova, len)?;
        if !reclaim && len.is_power_of_two() && self.pgsize_bitmap & len != 0 {
            // SAFETY: the caller holds the range.
            if let Some(n) = unsafe { self.unmap_one(iova, len, true, gather, &mut sink) } {
                return Ok(n);
            }
        }
        // SAFETY: the caller holds the range.
        unsafe { self.refuse_split_ends(iova, last) }?;
        // SAFETY: the caller holds the range (and the table, with `reclaim`); no mapping
        // crosses its ends, so every entry cleared and every table detached lies inside.
        let (bytes, r) = unsafe { self.unmap_walk(iova, last, true, reclaim, gather, sink) };
        r.map(|()| bytes)
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// [`Error::WouldSplit`] naming the mapping that crosses an end of `iova ..= last`
    /// (starts before `iova` or ends after `last`), if one does: the check of the edits
    /// that keep large pages and runs whole (exact unmap, protect).
    ///
    /// # Safety
    /// The caller holds `iova` and `last` (no unmap of them runs meanwhile).
    pub(crate) unsafe fn refuse_split_ends(&self, iova: u64, last: u64) -> Result<()> {
        for at in [iova, last] {
            // SAFETY: the caller holds `at`.
            if let Some(t) = unsafe { self.translate(at) } {
                let t_last = t.iova_base + (t.size - 1);
                if t.iova_base < iova || t_last > last {
                    return Err(Error::WouldSplit {
                        base: t.iova_base,
                        size: t.size,
                    });
                }
            }
        }
        Ok(())
    }
}

/// How a safe unmap treats a range whose ends fall inside a large page or run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum UnmapMode {
    /// Refuse with [`Error::WouldSplit`], changing nothing (the default, and what
    /// [`crate::Table::unmap`] does).
    #[default]
    Exact,
    /// Cut the table at both ends first ([`PageTable::cut`]), then unmap exactly: any
    /// range aligned to the smallest page size can be unmapped. The cuts follow the
    /// [`Bbm`](crate::Bbm) policy given.
    Cut(crate::Bbm),
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// [`Self::unmap_exact`] after cutting at both ends of the range, all or nothing:
    /// both cuts are checked (break-before-make policy, and with `bound` the guard's
    /// range) and their tables reserved before either is made, so an error leaves the
    /// table as it was.
    ///
    /// # Safety
    /// As for [`Self::unmap_exact`], and the caller holds the mappings crossing the
    /// range's ends (a guard: they lie inside `bound`, which the cuts check).
    pub(crate) unsafe fn unmap_cutting(
        &self,
        iova: u64,
        len: u64,
        bbm: crate::Bbm,
        reclaim: bool,
        bound: Option<(u64, u64)>,
        gather: &mut Gather,
    ) -> Result<u64> {
        let last = self.check_bytes(iova, len)?;
        let end = last.wrapping_add(1);
        // The end cut only where something can cross it (not past the aperture).
        let cuts = [iova, end];
        let cuts = if end != 0 && self.check_cut(end).is_ok() {
            &cuts[..]
        } else {
            &cuts[..1]
        };
        for &at in cuts {
            // SAFETY: the caller holds the mappings at the ends.
            if let Some((base, size)) = unsafe { self.cut_would(at, bbm)? }
                && let Some((first, last)) = bound
                && (base < first || base.wrapping_add(size - 1) > last)
            {
                return Err(Error::OutsideGuard {
                    iova: base,
                    last: base.wrapping_add(size - 1),
                });
            }
        }
        // SAFETY: as above.
        let mut pool = unsafe { self.reserve_cuts(cuts)? };
        for &at in cuts {
            // SAFETY: as above; checked, and the tables are in hand.
            if let Err(e) = unsafe { self.cut_inner(at, bbm, Some(&mut pool), bound) } {
                self.release(pool);
                return Err(e);
            }
        }
        self.release(pool);
        // SAFETY: the caller holds the range; no mapping crosses its ends now.
        unsafe { self.unmap_exact(iova, len, reclaim, gather) }
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
        // At 2M with 2M+ left but under 32M: 2M pages; short lengths cap the size.
        assert_eq!(next_piece(ARM4K, 0, 0, 0x21_0000), (0x20_0000, 1));
        assert_eq!(
            next_piece(ARM4K, 0x20_0000, 0x20_0000, 0x1_0000),
            (0x1_0000, 1)
        );
        // Address 0 is aligned to everything.
        assert_eq!(next_piece(ARM4K, 0, 0, 1 << 35), (1 << 34, 2));
        // Only the physical address is 4K aligned: 4K pages all the way.
        assert_eq!(
            next_piece(ARM4K, 0x20_0000, 0x1000, 0x30_0000),
            (0x1000, 0x300)
        );
    }
}
