//! The dynamic top (AMD v1): growing it during a map (new levels built privately above
//! the old root, published under the growth lock), and lowering it again once the levels
//! growth added hold nothing but the path to the old root (a single owner).

use core::ptr::NonNull;

use super::cursor::Cursor;
use super::map::MapState;
use super::*;

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Lowers the top while the top table holds nothing but entry 0, a table (the level
    /// below becomes the top), down to the level the table was created with. When the
    /// whole table is empty, the top page itself becomes the root at that level (its
    /// entries are all zero, which every level reads as empty).
    ///
    /// The new root is announced with [`FlushOps::top_changed`] first; the old top pages
    /// then wait in `gather` with the whole old aperture to invalidate, and are freed by
    /// [`Self::sync`] after the flush. Returns the levels removed.
    ///
    /// # Safety
    /// The caller owns every IOVA range of the table (no other operation runs).
    pub(crate) unsafe fn shrink_top(&self, gather: &mut Gather) -> u32 {
        if !self.geo.growable || !gather.can_hold_table() {
            return 0;
        }
        let min_top = self.fmt.levels() - 1;
        let guard = self.grow_lock.lock();
        let (old_root, old_top) = self.top();
        let (mut root, mut top) = (old_root, old_top);
        let mut detached = 0usize;
        while top > min_top {
            let mut cur = Cursor::whole(self, top, root, self.entries_lg2(top, top), 0);
            // SAFETY: the caller owns the whole table.
            let first = unsafe { cur.load() };
            let first_raw = cur.raw;
            cur.next();
            let mut rest_empty = true;
            while !cur.done() {
                // SAFETY: as above.
                if unsafe { cur.load() } != Pte::Empty || cur.raw != 0 {
                    rest_empty = false;
                    break;
                }
                cur.next();
            }
            if !rest_empty {
                break;
            }
            match first {
                Pte::Table { pa } => {
                    gather.push_table(DetachedTable {
                        ptr: root,
                        size_lg2: self.table_bytes_lg2(top, top),
                    });
                    detached += 1;
                    root = self.mem.phys_to_virt(pa);
                    top -= 1;
                }
                Pte::Empty if first_raw == 0 => {
                    // Nothing mapped anywhere: the (zeroed) top page is the new root.
                    top = min_top;
                }
                _ => break,
            }
        }
        if top == old_top {
            return 0;
        }
        let ap = self.aperture(old_top);
        self.ops.top_changed(self.mem.virt_to_phys(root), top + 1);
        // Release: the new root's contents are visible to whoever reads the new top.
        self.top.store(Self::tag(root, top), Ordering::Release);
        drop(guard);
        if detached != 0 {
            // The old top tables may sit in the walk caches: invalidate the whole old
            // aperture before `sync` frees them.
            gather.bind(self.id);
            // (Its two ends: the span may be the whole 64-bit space, which one
            // `add_range` cannot express; the gather merges them into one range.)
            let granule = 1 << self.item_lg2(top);
            gather.add_range(ap.start, 1, granule);
            gather.add_range(ap.last, 1, granule);
        }
        old_top - top
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Maps what `st` describes, growing the top first where the format allows it.
    ///
    /// # Safety
    /// As for [`Self::map_pages`].
    pub(super) unsafe fn map_grow(&self, st: &mut MapState<'_>, last: u64) -> Result<()> {
        loop {
            let (root, top) = self.top();
            let ap = self.aperture(top);
            if st.leaf_level <= top && ap.contains(st.iova, last) {
                // SAFETY: the caller owns the range; `root` is the live top table.
                return unsafe { self.map_level(self.top_cursor(root, top, st), top, st, false) };
            }
            // Only formats with a dynamic top get here (the full aperture was checked).
            // First the part that fits below the current top.
            if st.leaf_level <= top && st.iova <= ap.last {
                let full = st.remaining;
                let part = ap.last - st.iova + 1;
                st.remaining = part;
                // SAFETY: as above.
                let r = unsafe { self.map_level(self.top_cursor(root, top, st), top, st, false) };
                st.remaining = full - (part - st.remaining);
                r?;
            }
            // SAFETY: as above.
            match unsafe { self.grow_and_map(root, top, st, last) } {
                Ok(true) => return Ok(()),
                Ok(false) => continue, // another thread grew the top first
                Err(e) => return Err(e),
            }
        }
    }

    /// Builds new top levels privately above `old_root`, maps `st` into them, and
    /// publishes the new top. `Ok(false)`: the top changed meanwhile and nothing was done.
    ///
    /// # Safety
    /// As for [`Self::map_pages`]; `old_root` is the top table at level `old_top`.
    unsafe fn grow_and_map(
        &self,
        old_root: NonNull<u8>,
        old_top: u32,
        st: &mut MapState<'_>,
        last: u64,
    ) -> Result<bool> {
        let max_top = self.fmt.max_levels() - 1;
        let mut new_top = old_top;
        while new_top < max_top && (st.leaf_level > new_top || last > self.aperture(new_top).last) {
            new_top += 1;
        }
        // Chain of new tables: the one at level `l` links the one below at index 0.
        let mut below = old_root;
        let mut chain_bottom: Option<NonNull<u8>> = None;
        for level in old_top + 1..=new_top {
            let t = match self.new_table(self.table_bytes_lg2(level, new_top), &mut st.pool) {
                Ok(t) => t,
                Err(e) => {
                    if let Some(bottom) = chain_bottom {
                        // SAFETY: the chain is private; unlink the old root before freeing.
                        unsafe {
                            self.discard_chain(
                                bottom,
                                below,
                                level - 1,
                                new_top,
                                st.pool.as_deref_mut(),
                            )
                        };
                    }
                    return Err(e);
                }
            };
            let link = self.fmt.make_table(level, self.mem.virt_to_phys(below));
            // SAFETY: `t` is a fresh private table with at least one entry.
            unsafe { Self::store(t, 0, link) };
            chain_bottom.get_or_insert(t);
            below = t;
        }
        let new_root = below;
        let bottom = chain_bottom.expect("grow adds at least one level");
        if st.iova <= self.aperture(old_top).last {
            // The new page would cover the whole old root: refuse before publishing
            // anything if the old root maps something.
            // SAFETY: the old root is live; the caller owns the range it spans.
            let used = unsafe {
                self.subtree_first_leaf(old_top, old_root, self.entries_lg2(old_top, old_top), 0)
            };
            if used.is_some() {
                // SAFETY: never published.
                unsafe {
                    self.discard_chain(bottom, new_root, new_top, new_top, st.pool.as_deref_mut())
                };
                return Err(Error::AddressInUse(st.iova));
            }
            // The mapping's leaves sit above the old root (a page larger than the old
            // table spans): publish the new levels first, then map through the normal
            // path, which may replace the old, empty root by a leaf after a walk flush.
            let guard = self.grow_lock.lock();
            let (cur, cur_top) = self.top();
            if cur == old_root && cur_top == old_top {
                self.clean_chain(new_root, old_top, new_top);
                self.ops
                    .top_changed(self.mem.virt_to_phys(new_root), new_top + 1);
                self.top
                    .store(Self::tag(new_root, new_top), Ordering::Release);
            } else {
                drop(guard);
                // SAFETY: never published.
                unsafe {
                    self.discard_chain(bottom, new_root, new_top, new_top, st.pool.as_deref_mut())
                };
            }
            return Ok(false);
        }
        let before = st.remaining;
        // SAFETY: writes go to the private chain (the range lies above the old top's
        // aperture, so it never enters the old root) and to tables hanging off it.
        let r =
            unsafe { self.map_level(self.top_cursor(new_root, new_top, st), new_top, st, true) };
        if st.remaining == before {
            // SAFETY: nothing was mapped; the chain was never published.
            unsafe {
                self.discard_chain(bottom, new_root, new_top, new_top, st.pool.as_deref_mut())
            };
            return r.map(|()| false);
        }
        let guard = self.grow_lock.lock();
        let (cur, cur_top) = self.top();
        if cur != old_root || cur_top != old_top {
            drop(guard);
            // Undo our private work and let the caller retry on the new top.
            let done = before - st.remaining;
            st.iova = st.iova.wrapping_sub(done);
            st.pa -= done;
            st.remaining = before;
            // SAFETY: never published.
            unsafe {
                self.discard_chain(bottom, new_root, new_top, new_top, st.pool.as_deref_mut())
            };
            return Ok(false);
        }
        self.clean_chain(new_root, old_top, new_top);
        self.ops
            .top_changed(self.mem.virt_to_phys(new_root), new_top + 1);
        self.top
            .store(Self::tag(new_root, new_top), Ordering::Release);
        drop(guard);
        r.map(|()| true)
    }

    /// Cleans the new top tables above `old_top` (incoherent walkers), before publishing.
    fn clean_chain(&self, new_root: NonNull<u8>, old_top: u32, new_top: u32) {
        if self.opts.coherent_walk {
            return;
        }
        let mut t = new_root;
        for level in (old_top + 1..=new_top).rev() {
            self.clean_new_table(t, self.table_bytes_lg2(level, new_top));
            // SAFETY: chain tables are private and link the next one down at index 0.
            let e = unsafe { Self::load(t, 0) };
            match self.fmt.decode(level, e) {
                Pte::Table { pa } => t = self.mem.phys_to_virt(pa),
                _ => break,
            }
        }
    }

    /// Frees a private chain of new top levels (and everything mapped under it) while
    /// keeping the old root it links at index 0 of `bottom`.
    ///
    /// # Safety
    /// The chain from `root` (at `level`, tables sized for a top at `top`) down to
    /// `bottom` was never published.
    unsafe fn discard_chain(
        &self,
        bottom: NonNull<u8>,
        root: NonNull<u8>,
        level: u32,
        top: u32,
        pool: Option<&mut Reservation>,
    ) {
        // SAFETY: `bottom` is private; unlinking the old root keeps it out of the free.
        unsafe {
            Self::store(bottom, 0, 0);
            self.free_tree(level, root, self.entries_lg2(level, top), pool);
        }
    }
}
