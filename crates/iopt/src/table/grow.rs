//! The dynamic top going down: a single owner lowers a grown top again once the levels
//! growth added hold nothing but the path to the old root. (Growth itself happens during
//! a map: `map_grow` and `grow_and_map` in `map.rs`.)

use super::cursor::Cursor;
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
