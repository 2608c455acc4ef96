//! Planning maps before making them: how many table pages a map needs, whether its
//! range is free, and reservations of table pages for paths that must not allocate.

use super::cursor::Cursor;
use super::*;

/// Table pages needed, by size class (log2 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableCounts {
    counts: [u64; 24],
}

impl TableCounts {
    /// Pages of `2^size_lg2` bytes.
    pub fn of(&self, size_lg2: u32) -> u64 {
        self.counts.get(size_lg2 as usize).copied().unwrap_or(0)
    }

    /// Pages of every size.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(super) fn add(&mut self, size_lg2: u32, n: u64) {
        self.counts[size_lg2 as usize] += n;
    }

    fn classes(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        (0..24u32)
            .map(|c| (c, self.counts[c as usize]))
            .filter(|&(_, n)| n != 0)
    }
}

/// The running plan of a map made of consecutive pieces: the tables to create, with the
/// last new table counted at each level so that pieces sharing one count it once.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) counts: TableCounts,
    /// Per level, the highest index (IOVA >> span of the level above) counted so far.
    last_idx: [Option<u64>; 8],
    /// The top the plan already grows to.
    grown_to: Option<u32>,
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// The top level a map of `..= last` with leaves at `leaf_level` needs (the current
    /// top unless the format grows).
    fn needed_top(&self, top: u32, last: u64, leaf_level: u32) -> u32 {
        let max_top = self.fmt.max_levels() - 1;
        let mut t = top;
        while t < max_top && (leaf_level > t || last > self.aperture(t).last) {
            t += 1;
        }
        t
    }

    /// Adds the tables of levels `from .. to` that a map of `first ..= last` needs where
    /// nothing exists yet: one table per distinct span of the level above.
    fn count_fresh(&self, first: u64, last: u64, from: u32, to: u32, top: u32, plan: &mut Plan) {
        for level in from..to {
            let shift = self.item_lg2(level + 1);
            let (mut a, b) = (first >> shift, last >> shift);
            let seen = &mut plan.last_idx[level as usize & 7];
            if let Some(s) = *seen {
                if b <= s {
                    continue;
                }
                a = a.max(s + 1);
            }
            *seen = Some(b);
            plan.counts.add(self.table_bytes_lg2(level, top), b - a + 1);
        }
    }

    /// The worst-case number of table pages the maps in `plan` (`(iova, len)` pairs)
    /// can need, whatever page sizes they use and whatever exists when they run.
    ///
    /// For a top at level `T` (the level the plan needs; growth adds `T - T_now` tables),
    /// the bound is, for every level `l < T`, the number of distinct level-`l + 1`
    /// entries the plan's ranges touch:
    ///
    /// `pages = (T - T_now) + Σ_{l=0}^{T-1} |⋃_i [iova_i >> s(l+1), last_i >> s(l+1)]|`
    ///
    /// where `s(l)` is log2 of the span of one level-`l` entry. Ranges sorted by IOVA are
    /// merged per level (a table two maps share is counted once); unsorted plans are
    /// summed, which over-counts but never under-counts.
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// // 2 MiB of 4K pages at 0: one leaf table, one level-1 table, one level-2 table.
    /// assert_eq!(pt.worst_case_tables(&[(0, 0x20_0000)])?.total(), 3);
    /// assert!(pt.worst_case_tables(&[(0x1001, 0x1000)]).is_err()); // as map would refuse
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn worst_case_tables(&self, plan: &[(u64, u64)]) -> Result<TableCounts> {
        let (_, cur_top) = self.top();
        let mut top = cur_top;
        let mut sorted = true;
        let mut prev_last: Option<u64> = None;
        self.check_plan(plan)?;
        for &(iova, len) in plan {
            let last = iova + (len - 1);
            top = top.max(self.needed_top(cur_top, last, 0));
            sorted &= prev_last.is_none_or(|p| p < iova);
            prev_last = Some(last);
        }
        let mut counts = TableCounts::default();
        for level in cur_top + 1..=top {
            counts.add(self.table_bytes_lg2(level, top), 1);
        }
        for level in 0..top {
            let shift = self.item_lg2(level + 1);
            let mut counted: Option<u64> = None; // last index counted (sorted plans)
            let mut n = 0u64;
            for &(iova, len) in plan {
                let (a, b) = (iova >> shift, (iova + (len - 1)) >> shift);
                match counted {
                    Some(c) if sorted && a <= c => {
                        if b > c {
                            n += b - c;
                        }
                    }
                    _ => n += b - a + 1,
                }
                counted = Some(counted.map_or(b, |c| c.max(b)));
            }
            counts.add(self.table_bytes_lg2(level, top), n);
        }
        Ok(counts)
    }

    /// Allocates the table pages of `counts` into a new reservation; on failure frees
    /// what it took and changes nothing.
    ///
    /// Before allocating anything it compares each size class with what the table memory
    /// says it can give ([`TableMemory::pages_left`]): [`Error::ReservationTooLarge`]
    /// names the size, the pages needed and the pages available.
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let counts = pt.worst_case_tables(&[(0, 0x1000)])?;
    /// let r = pt.reserve_counts(&counts)?;
    /// assert_eq!(r.pages() as u64, counts.total());
    /// pt.release(r);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn reserve_counts(&self, counts: &TableCounts) -> Result<Reservation> {
        for (size_lg2, needed) in counts.classes() {
            if let Some(available) = self.mem.pages_left(size_lg2)
                && needed > available
            {
                return Err(Error::ReservationTooLarge {
                    size_lg2,
                    needed,
                    available,
                });
            }
        }
        let mut r = Reservation::new(self.id);
        for (size_lg2, n) in counts.classes() {
            for _ in 0..n {
                match self.alloc_table(size_lg2) {
                    // SAFETY: a fresh zeroed table from this table's memory.
                    Ok(t) => unsafe { r.put(t, size_lg2) },
                    Err(e) => {
                        self.release(r);
                        return Err(e);
                    }
                }
            }
        }
        Ok(r)
    }

    /// A reservation holding the worst case of [`Self::worst_case_tables`] for `plan`:
    /// maps of the plan made with [`Self::map_pages_reserved`] (or the safe layer's
    /// `map_reserved`) never allocate and cannot fail for lack of memory.
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let r = pt.reserve(&[(0, 0x20_0000), (0x4000_0000, 0x1000)])?;
    /// assert_eq!(pt.mem_stats().pages, 1 + r.pages() as u64);
    /// pt.release(r);
    /// assert_eq!(pt.mem_stats().pages, 1);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn reserve(&self, plan: &[(u64, u64)]) -> Result<Reservation> {
        self.reserve_counts(&self.worst_case_tables(plan)?)
    }

    /// Gives the pages left in a reservation back to the table memory.
    ///
    /// # Panics
    /// If the reservation belongs to another table.
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let r = pt.reserve(&[(0, 0x1000)])?;
    /// pt.release(r); // the unused pages go back to the memory
    /// assert_eq!(pt.mem_stats().pages, 1);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn release(&self, mut reservation: Reservation) {
        assert_eq!(reservation.owner, self.id, "reservation of another table");
        while let Some((t, size_lg2)) = reservation.take_any() {
            // SAFETY: the page came from this table's memory with this size and is
            // private to the reservation.
            unsafe { self.mem.free(t, size_lg2) };
        }
    }

    /// Checks that `first ..= last` can be mapped with leaves at `leaf_level` (runs of
    /// `2^run_lg2`): nothing mapped there. Adds to `plan` the tables such a map would
    /// create, exactly for what exists now.
    ///
    /// # Safety
    /// The caller owns the range (no concurrent map or unmap in it).
    pub(crate) unsafe fn plan_map(
        &self,
        first: u64,
        last: u64,
        leaf_level: u32,
        run_lg2: u32,
        plan: &mut Plan,
    ) -> Result<()> {
        let (root, top) = self.top();
        let ap = self.aperture(top);
        let new_top = self.needed_top(top, last, leaf_level);
        let from = plan.grown_to.map_or(top, |g| g.max(top));
        for level in from + 1..=new_top {
            plan.counts.add(self.table_bytes_lg2(level, new_top), 1);
        }
        plan.grown_to = Some(new_top.max(from));
        // The aperture range (lower or upper half) holding `first`.
        let (ap_first, ap_last) = match ap.upper {
            Some((s, l)) if first >= s => (s, l),
            _ => (ap.start, ap.last),
        };
        let in_old = ap_first <= first && first <= ap_last;
        if in_old && leaf_level > top {
            // The page covers the whole old root: it must hold nothing.
            // SAFETY: live root.
            let used = unsafe { self.subtree_first_leaf(top, root, self.entries_lg2(top, top), 0) };
            if let Some(at) = used {
                return Err(Error::AddressInUse(at.max(first)));
            }
        } else if in_old {
            let part_last = last.min(ap_last);
            let cur = Cursor::new(
                self,
                top,
                root,
                self.entries_lg2(top, top),
                first,
                part_last,
            );
            // SAFETY: the caller owns the range; `root` is the live top.
            unsafe { self.plan_level(cur, leaf_level, run_lg2, plan)? };
        }
        if last > ap_last {
            let from = if in_old { ap_last + 1 } else { first };
            if from <= last && leaf_level < new_top {
                self.count_fresh(from, last, leaf_level, new_top, new_top, plan);
            }
        }
        Ok(())
    }

    /// Checks `cur`'s walk for a map with leaves at `leaf_level` (runs of `2^run_lg2`)
    /// and counts the tables it would create.
    ///
    /// # Safety
    /// `cur`'s table is live; the caller owns its range.
    unsafe fn plan_level(
        &self,
        mut cur: Cursor<'_, F, M, X>,
        leaf_level: u32,
        run_lg2: u32,
        plan: &mut Plan,
    ) -> Result<()> {
        let fmt = &self.fmt;
        let level = cur.level;
        if level == leaf_level {
            // The body steps by the map's own run; every slot of it must be free.
            let run = 1usize << run_lg2;
            while !cur.done() {
                for i in 0..run {
                    let idx = cur.idx + i;
                    // SAFETY: runs are aligned and never cross a table.
                    let e = unsafe { Self::load(cur.table, idx) };
                    let at = cur.item_va(idx);
                    match fmt.decode(level, e) {
                        Pte::Empty => {}
                        Pte::Leaf { .. } => return Err(Error::AddressInUse(at)),
                        Pte::Table { pa } => {
                            // A leftover table is replaced; one holding leaves conflicts.
                            let used = if level == 0 {
                                Some(at)
                            } else {
                                // SAFETY: linked tables are live.
                                unsafe {
                                    self.subtree_first_leaf(
                                        level - 1,
                                        self.mem.phys_to_virt(pa),
                                        self.inner_lg2(level - 1),
                                        at,
                                    )
                                }
                            };
                            if let Some(at) = used {
                                return Err(Error::AddressInUse(at));
                            }
                        }
                    }
                }
                cur.advance(run);
            }
            return Ok(());
        }
        while !cur.done() {
            // SAFETY: the cursor's entry is inside the table.
            match unsafe { cur.load() } {
                Pte::Empty => {
                    self.count_fresh(cur.va(), cur.child_last(), leaf_level, level, level, plan);
                }
                Pte::Leaf { .. } => return Err(Error::AddressInUse(cur.va())),
                Pte::Table { .. } => {
                    // SAFETY: live; the caller owns the range.
                    unsafe { self.plan_level(cur.child(), leaf_level, run_lg2, plan)? };
                }
            }
            cur.next();
        }
        Ok(())
    }
}
