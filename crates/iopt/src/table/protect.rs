//! Protect: change the permissions of every mapping in a range in place, one atomic
//! update per entry, the changed range gathered for the IOTLB (aarch64-paging's
//! `modify_range`, the x86_64 crate's `update_flags`; io-pgtable has none).

use super::cursor::{CleanSpan, Cursor};
use super::cut::Bbm;
use super::*;

/// What a [`PageTable::protect`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protected {
    /// Bytes of the range that are mapped (all of them now with the new permissions).
    pub mapped: u64,
    /// Bytes whose entries were rewritten (the rest had the permissions already).
    pub changed: u64,
    /// Bytes of the range with nothing mapped (skipped).
    pub holes: u64,
}

/// Progress of a protect walk.
struct ProtectState<'a> {
    prot: Prot,
    bbm: bool,
    gather: &'a mut Gather,
    done: Protected,
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Gives every mapping in `[iova, iova + len)` the permissions `prot`, in place: each
    /// entry (every entry of a run) is rewritten with a compare-and-swap, keeping its
    /// output address, size and dirty state; holes are skipped and counted. The ranges
    /// rewritten go into `gather` (the IOTLB may hold the old permissions until it is
    /// synced).
    ///
    /// Large pages and runs stay whole: a range whose ends fall inside one is refused
    /// with [`Error::WouldSplit`] before anything changes (cut first,
    /// [`Self::cut`]). A change the hardware only allows with break-before-make
    /// ([`Format::prot_needs_bbm`]: ARM's memory type) is refused with
    /// [`Error::NeedsBreakBeforeMake`] before anything changes, unless `bbm` is
    /// [`Bbm::Allow`]: then that mapping is invalidated, flushed
    /// ([`FlushOps::flush_walk`]) and rewritten, and a device access to it in between
    /// faults.
    ///
    /// Errors: [`Error::NoAccess`], [`Error::UndefinedProt`], [`Error::ZeroLength`],
    /// [`Error::BadPageSize`], [`Error::UnalignedIova`], [`Error::Overflow`],
    /// [`Error::OutOfAperture`], [`Error::WouldSplit`], [`Error::NeedsBreakBeforeMake`]:
    /// all with nothing changed.
    ///
    /// # Safety
    /// The caller holds `[iova, iova + len)` exclusively (no map, unmap or edit of it at
    /// the same time); it treats the old permissions as possibly cached until `gather`
    /// is synced.
    ///
    /// # Panics
    /// If `gather` holds work of another table.
    ///
    /// ```
    /// use iopt::{Bbm, Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let mut g = Gather::new();
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0, 0x8000_0000, 0x1000, 4, Prot::READ | Prot::WRITE);
    ///     let done = pt.protect(0, 0x8000, Prot::READ, Bbm::Refuse, &mut g)?;
    ///     assert_eq!((done.mapped, done.changed, done.holes), (0x4000, 0x4000, 0x4000));
    ///     assert!(!pt.translate(0x1000).unwrap().prot.contains(Prot::WRITE));
    /// }
    /// assert_eq!(g.range(), Some((0, 0x3fff)));
    /// pt.sync(&mut g);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub unsafe fn protect(
        &self,
        iova: u64,
        len: u64,
        prot: Prot,
        bbm: Bbm,
        gather: &mut Gather,
    ) -> Result<Protected> {
        let last = self.check_protect(iova, len, prot)?;
        // SAFETY: the caller holds the range.
        unsafe { self.refuse_split_ends(iova, last) }?;
        gather.bind(self.id);
        let (root, top) = self.top();
        let ap = self.aperture(top);
        let mut st = ProtectState {
            prot,
            bbm: bbm == Bbm::Allow,
            gather,
            done: Protected::default(),
        };
        // Above a dynamic top that has not grown so far, nothing is mapped.
        let cur_last = if ap.contains(iova, last) {
            last
        } else if ap.contains(iova, iova) {
            ap.last
        } else {
            st.done.holes = len;
            return Ok(st.done);
        };
        let cur = || Cursor::new(self, top, root, self.entries_lg2(top, top), iova, cur_last);
        if bbm == Bbm::Refuse {
            // SAFETY: the caller holds the range.
            if let Some((base, size)) = unsafe { self.first_needing_bbm(cur(), prot) } {
                return Err(Error::NeedsBreakBeforeMake { base, size });
            }
        }
        // SAFETY: the caller holds the range; no item crosses its ends.
        unsafe { self.protect_level(cur(), &mut st) };
        st.done.holes = len - st.done.mapped;
        Ok(st.done)
    }

    /// The first leaf in `cur`'s walk whose change to `prot` needs break-before-make.
    ///
    /// # Safety
    /// `cur`'s table is live; the caller holds its range.
    unsafe fn first_needing_bbm(
        &self,
        mut cur: Cursor<'_, F, M, X>,
        prot: Prot,
    ) -> Option<(u64, u64)> {
        while !cur.done() {
            // SAFETY: the cursor's entry is inside the table.
            match unsafe { cur.load() } {
                Pte::Leaf { .. }
                    if self
                        .fmt
                        .prot_needs_bbm(self.fmt.leaf_prot(cur.level, cur.raw), prot) =>
                {
                    return Some((cur.item_base(), cur.item_size()));
                }
                Pte::Table { .. } if cur.level > 0 => {
                    // SAFETY: linked tables are live.
                    if let Some(hit) = unsafe { self.first_needing_bbm(cur.child(), prot) } {
                        return Some(hit);
                    }
                }
                _ => {}
            }
            cur.next();
        }
        None
    }

    /// Rewrites the leaves of `cur`'s walk with `st.prot`.
    ///
    /// # Safety
    /// `cur`'s table is live; the caller holds its range and no item crosses its ends.
    unsafe fn protect_level(&self, mut cur: Cursor<'_, F, M, X>, st: &mut ProtectState<'_>) {
        let fmt = &self.fmt;
        let (level, table) = (cur.level, cur.table);
        let mut written = CleanSpan::default();
        while !cur.done() {
            // SAFETY: the cursor's entry is inside the table.
            match unsafe { cur.load() } {
                Pte::Empty => {}
                Pte::Leaf { pa, run_lg2 } => {
                    let (base, size) = (cur.item_base(), cur.item_size());
                    let (first, count) = (cur.item_first(), cur.item_entries());
                    st.done.mapped += size;
                    let old = fmt.leaf_prot(level, cur.raw);
                    let new0 = fmt.make_leaf(level, pa, run_lg2, st.prot);
                    if fmt.leaf_prot(level, new0) != old {
                        let step = fmt.run_step(level, run_lg2);
                        let entry = |r: usize| new0.wrapping_add(step.wrapping_mul(r as u64));
                        let dirty_of = |v: u64| fmt.tracks_dirty() && fmt.leaf_dirty(level, v);
                        if st.bbm && fmt.prot_needs_bbm(old, st.prot) {
                            // Break: clear, make it visible, invalidate; then make.
                            let mut dirty = false;
                            for i in first..first + count {
                                // SAFETY: a run never crosses its table; the caller
                                // holds the range.
                                dirty |= dirty_of(unsafe { self.swap_entry(table, i, |_| 0) });
                            }
                            let mut cleared = CleanSpan::default();
                            cleared.add(first, count);
                            self.clean_span(table, &cleared);
                            self.ops.flush_walk(base, size, 1 << cur.entry_lg2());
                            for r in 0..count {
                                let v = self.stamp(level, entry(r), dirty);
                                // SAFETY: as above; the entry is empty and ours.
                                unsafe { Self::store(table, first + r, v) };
                            }
                        } else {
                            for r in 0..count {
                                // SAFETY: as above. Each entry keeps its own dirty
                                // record (the hardware may set it meanwhile).
                                unsafe {
                                    self.swap_entry(table, first + r, |v| {
                                        self.stamp(level, entry(r), dirty_of(v))
                                    })
                                };
                            }
                            self.ops.add_pages(st.gather, base, size, 1);
                        }
                        written.add(first, count);
                        st.done.changed += size;
                    }
                }
                Pte::Table { .. } => {
                    if level > 0 {
                        // SAFETY: linked tables are live; the caller holds the range.
                        unsafe { self.protect_level(cur.child(), st) };
                    }
                }
            }
            cur.next();
        }
        self.clean_span(table, &written);
    }
}
