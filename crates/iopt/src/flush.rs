//! The operations a table needs from the hardware driver: TLB invalidation and, for
//! formats whose top level can grow, the news of a new root.

/// Callbacks into the driver that owns the hardware walking a table.
///
/// The engine calls these; it never decides on its own that a flush is unnecessary. A
/// driver whose hardware caches nothing chooses [`NoFlush`] by name.
///
/// A driver that records the invalidations it is asked for (a real one would write
/// them to the IOMMU's command queue and wait for completion):
///
/// ```
/// use std::sync::Mutex;
/// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
/// use iopt::mem::HeapMemory;
/// use iopt::{FlushOps, Gather, Prot, Table};
///
/// #[derive(Default)]
/// struct Recorder(Mutex<Vec<(u64, u64, u64)>>);
/// impl FlushOps for Recorder {
///     fn flush_all(&self) {}
///     fn flush_walk(&self, iova: u64, size: u64, granule: u64) {
///         self.0.lock().unwrap().push((iova, size, granule));
///     }
///     fn top_changed(&self, _root_pa: u64, _levels: u32) {}
/// }
///
/// let rec = Recorder::default();
/// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), &rec)?;
/// t.map(0, 0x8000_0000, 0x2000, Prot::READ)?;
/// let mut g = Gather::new();
/// let _ = t.unmap(0x1000, 0x1000, &mut g)?; // the leaf table keeps the other page
/// assert!(rec.0.lock().unwrap().is_empty()); // nothing flushed before the sync
/// t.sync(&mut g);
/// assert_eq!(*rec.0.lock().unwrap(), [(0x1000, 0x1000, 0x1000)]);
/// # Ok::<(), iopt::Error>(())
/// ```
pub trait FlushOps: Send + Sync {
    /// Invalidate every cached translation and cached table walk of this table.
    fn flush_all(&self);
    /// Invalidate cached translations and cached table walks (intermediate entries) for
    /// `[iova, iova + size)`, where the removed entries were at least `granule` in size.
    /// For a detached subtree, `granule` is the item size of the deepest table in it, so
    /// an invalidation that steps by `granule` reaches the walks cached for every one of
    /// its tables. `size` may be `0` to mean the whole 2^64 space.
    fn flush_walk(&self, iova: u64, size: u64, granule: u64);
    /// The table's top changed (dynamic-top formats only): the hardware must now be
    /// given `root_pa` with `levels` levels. Called before the new top is used, under
    /// the table's growth lock, so calls arrive in order.
    fn top_changed(&self, root_pa: u64, levels: u32);
    /// An unmap removed `count` consecutive leaf mappings of `size` bytes each, the first
    /// at `iova` (`[iova, iova + count * size)`); record them in `gather` (the default)
    /// or act on them at once (Linux's `tlb_add_page`, called here once per stretch of
    /// equal leaves instead of once per page).
    ///
    /// Leaves inside a table that the unmap detaches whole are not reported one by one:
    /// the table's whole span goes into the gather as one range (with the table's entry
    /// size as granule) and is invalidated by [`Self::flush_walk`] at
    /// [`crate::PageTable::sync`], as Linux flushes a removed table's span as a walk.
    #[inline]
    fn add_pages(&self, gather: &mut crate::Gather, iova: u64, size: u64, count: usize) {
        gather.add_range(iova, size * count as u64, size);
    }
}

/// Flush operations that do nothing: for hardware that caches no translations, or for
/// tables no hardware walks (tests, tools). Top changes are ignored too: read the root
/// from [`crate::PageTable::info`] when you need it.
///
/// ```
/// use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
/// use iopt::mem::HeapMemory;
/// use iopt::{NoFlush, Prot, Table};
/// let mut t = Table::new(AmdV1::new(AmdV1Config::default())?, HeapMemory::new(), NoFlush)?;
/// let before = t.info();
/// t.map(1 << 40, 0x8000_0000, 0x1000, Prot::READ)?; // the dynamic top grows
/// let after = t.info(); // nobody was told: the new root is read here
/// assert!(after.levels > before.levels);
/// assert_ne!(after.root_pa, before.root_pa);
/// # Ok::<(), iopt::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFlush;

impl FlushOps for NoFlush {
    fn flush_all(&self) {}
    fn flush_walk(&self, _iova: u64, _size: u64, _granule: u64) {}
    fn top_changed(&self, _root_pa: u64, _levels: u32) {}
}

impl<T: FlushOps + ?Sized> FlushOps for &T {
    fn flush_all(&self) {
        (**self).flush_all()
    }
    fn flush_walk(&self, iova: u64, size: u64, granule: u64) {
        (**self).flush_walk(iova, size, granule)
    }
    fn top_changed(&self, root_pa: u64, levels: u32) {
        (**self).top_changed(root_pa, levels)
    }
    fn add_pages(&self, gather: &mut crate::Gather, iova: u64, size: u64, count: usize) {
        (**self).add_pages(gather, iova, size, count)
    }
}
