//! What an unmap removed, extent by extent: for callers that must act on the physical
//! pages behind a mapping once it is gone (unpin them, return them to a pool) without
//! translating every IOVA first.

use crate::Prot;

/// One mapping an unmap removed: the leaf item (a page, a large page or a whole
/// contiguous run) that translated `iova .. iova + size` to `paddr .. paddr + size` with
/// `prot`.
///
/// The reporting unmaps ([`PageTable::unmap_pages_report`](crate::PageTable::unmap_pages_report),
/// [`PageTable::unmap_range_report`](crate::PageTable::unmap_range_report),
/// [`Table::unmap_report`](crate::Table::unmap_report) and the concurrent guard's
/// `unmap_report`) hand over one `Extent` per removed leaf item, in IOVA order. `prot` is
/// what the format records ([`Format::leaf_prot`](crate::Format::leaf_prot)): a format
/// that cannot express a permission or attribute does not report it.
///
/// ```
/// use iopt::fmt::x86_64::{X86_64, X86_64Config};
/// use iopt::mem::HeapMemory;
/// use iopt::{Extent, Gather, NoFlush, Prot, Table};
/// let mut t = Table::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
/// t.map(0x20_0000, 0x8020_0000, 0x20_0000, Prot::READ)?; // one 2 MiB page
/// let (mut g, mut removed) = (Gather::new(), Vec::new());
/// let _ = t.unmap_report(0x20_0000, 0x20_0000, &mut g, |e| removed.push(e))?;
/// t.sync(&mut g);
/// let prot = removed[0].prot;
/// assert!(prot.contains(Prot::READ) && !prot.contains(Prot::WRITE));
/// assert_eq!(removed, [Extent { iova: 0x20_0000, paddr: 0x8020_0000, size: 0x20_0000, prot }]);
/// # Ok::<(), iopt::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    /// First IOVA of the mapping.
    pub iova: u64,
    /// Physical address its first byte translated to.
    pub paddr: u64,
    /// Bytes (a power of two for one leaf item; any multiple of the smallest page size
    /// after [`MergedExtents`] merged several).
    pub size: u64,
    /// Its permissions, as the format recorded them.
    pub prot: Prot,
}

impl Extent {
    /// The extent that `self` and `next` form together, if `next` begins where `self`
    /// ends in both the IOVA and the physical space and has the same permissions (and
    /// neither space nor the size wraps past 2^64).
    ///
    /// ```
    /// use iopt::{Extent, Prot};
    /// let a = Extent { iova: 0x1000, paddr: 0x8000_1000, size: 0x1000, prot: Prot::READ };
    /// let b = Extent { iova: 0x2000, paddr: 0x8000_2000, size: 0x2000, prot: Prot::READ };
    /// assert_eq!(a.merge(&b), Some(Extent { size: 0x3000, ..a }));
    /// assert_eq!(b.merge(&a), None); // not in order
    /// assert_eq!(a.merge(&Extent { prot: Prot::WRITE, ..b }), None);
    /// assert_eq!(a.merge(&Extent { paddr: 0x9000_2000, ..b }), None);
    /// ```
    pub fn merge(&self, next: &Extent) -> Option<Extent> {
        let iova_ok = self.iova.checked_add(self.size) == Some(next.iova);
        let paddr_ok = self.paddr.checked_add(self.size) == Some(next.paddr);
        let size = self.size.checked_add(next.size)?;
        (iova_ok && paddr_ok && self.prot == next.prot).then_some(Extent { size, ..*self })
    }
}

/// A collector of removed extents that merges neighbours: an extent pushed right after
/// one it continues (IOVA and physical address both contiguous, same permissions,
/// [`Extent::merge`]) grows that one instead of adding another. Extents pushed out of
/// IOVA order are kept as they come (only the last one is merged into).
///
/// The reporting unmaps report one extent per leaf item, so a buffer of 4 KiB pages
/// mapped at consecutive physical addresses comes back as one extent here.
///
/// ```
/// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
/// use iopt::mem::HeapMemory;
/// use iopt::{Extent, Gather, MergedExtents, NoFlush, Prot, Table};
/// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
/// t.map(0x1000, 0x8000_1000, 0x3000, Prot::READ)?; // three 4 KiB pages
/// t.map(0x4000, 0x9000_0000, 0x1000, Prot::READ)?; // elsewhere in physical memory
/// let (mut g, mut ext) = (Gather::new(), MergedExtents::new());
/// let _ = t.unmap_report(0, 0x10_0000, &mut g, |e| ext.push(e))?;
/// t.sync(&mut g);
/// let prot = ext.as_slice()[0].prot;
/// assert_eq!(
///     ext.as_slice(),
///     [
///         Extent { iova: 0x1000, paddr: 0x8000_1000, size: 0x3000, prot },
///         Extent { iova: 0x4000, paddr: 0x9000_0000, size: 0x1000, prot },
///     ]
/// );
/// # Ok::<(), iopt::Error>(())
/// ```
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedExtents {
    list: alloc::vec::Vec<Extent>,
}

#[cfg(feature = "alloc")]
impl MergedExtents {
    /// An empty collector.
    ///
    /// ```
    /// let c = iopt::MergedExtents::new();
    /// assert!(c.is_empty());
    /// ```
    pub const fn new() -> Self {
        MergedExtents {
            list: alloc::vec::Vec::new(),
        }
    }

    /// Adds `e`: merged into the last extent when it continues it, else appended.
    ///
    /// ```
    /// use iopt::{Extent, MergedExtents, Prot};
    /// let mut c = MergedExtents::new();
    /// c.push(Extent { iova: 0, paddr: 0x1000, size: 0x1000, prot: Prot::READ });
    /// c.push(Extent { iova: 0x1000, paddr: 0x2000, size: 0x1000, prot: Prot::READ });
    /// c.push(Extent { iova: 0x2000, paddr: 0x2000, size: 0x1000, prot: Prot::READ });
    /// assert_eq!(c.len(), 2);
    /// assert_eq!(c.as_slice()[0].size, 0x2000);
    /// ```
    pub fn push(&mut self, e: Extent) {
        if let Some(last) = self.list.last_mut()
            && let Some(m) = last.merge(&e)
        {
            *last = m;
        } else {
            self.list.push(e);
        }
    }

    /// The extents collected, in the order pushed.
    ///
    /// ```
    /// assert!(iopt::MergedExtents::new().as_slice().is_empty());
    /// ```
    pub fn as_slice(&self) -> &[Extent] {
        &self.list
    }

    /// How many (merged) extents there are.
    ///
    /// ```
    /// assert_eq!(iopt::MergedExtents::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True if nothing was collected.
    ///
    /// ```
    /// assert!(iopt::MergedExtents::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The sum of the extents' sizes.
    ///
    /// ```
    /// use iopt::{Extent, MergedExtents, Prot};
    /// let mut c = MergedExtents::new();
    /// c.push(Extent { iova: 0, paddr: 0, size: 0x1000, prot: Prot::READ });
    /// c.push(Extent { iova: 0x8000, paddr: 0, size: 0x2000, prot: Prot::READ });
    /// assert_eq!(c.bytes(), 0x3000);
    /// ```
    pub fn bytes(&self) -> u64 {
        self.list.iter().map(|e| e.size).sum()
    }

    /// Forgets every extent (keeps the allocation).
    ///
    /// ```
    /// use iopt::{Extent, MergedExtents, Prot};
    /// let mut c = MergedExtents::new();
    /// c.push(Extent { iova: 0, paddr: 0, size: 0x1000, prot: Prot::READ });
    /// c.clear();
    /// assert!(c.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.list.clear()
    }

    /// The extents, as a vector.
    ///
    /// ```
    /// assert!(iopt::MergedExtents::new().into_vec().is_empty());
    /// ```
    pub fn into_vec(self) -> alloc::vec::Vec<Extent> {
        self.list
    }
}

/// Where an unmap walk hands its removed extents: a generic parameter of the walk, so
/// that the plain unmaps ([`NoReport`]) compile to the walk without reporting (every
/// use is behind `if S::ACTIVE`).
pub(crate) trait ExtentSink {
    /// False for [`NoReport`]: the walk skips building extents altogether.
    const ACTIVE: bool;
    /// One removed extent.
    fn extent(&mut self, e: Extent);
}

/// The sink of the plain unmaps: reports nothing.
pub(crate) struct NoReport;

impl ExtentSink for NoReport {
    const ACTIVE: bool = false;
    #[inline(always)]
    fn extent(&mut self, _e: Extent) {}
}

/// The sink of the reporting unmaps: the caller's callback.
pub(crate) struct Report<'r, R: FnMut(Extent)>(pub(crate) &'r mut R);

impl<R: FnMut(Extent)> ExtentSink for Report<'_, R> {
    const ACTIVE: bool = true;
    #[inline(always)]
    fn extent(&mut self, e: Extent) {
        (self.0)(e)
    }
}
