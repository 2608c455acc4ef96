//! What an unmap leaves to do: the IOVA range to invalidate and the table pages to free
//! once the invalidation has completed.

use core::ptr::NonNull;

/// A table page detached from the tree, waiting for the TLB invalidation before it may
/// be freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetachedTable {
    pub(crate) ptr: NonNull<u8>,
    pub(crate) size_lg2: u32,
}

// SAFETY: a detached table is owned by the gather that holds it; it is only freed through
// the table it came from (checked by the owner id), so moving the handle across threads
// is fine.
unsafe impl Send for DetachedTable {}

/// Capacity of the detached-table list without the `alloc` feature. When it is full,
/// unmap leaves further fully-covered tables linked (empty) instead of detaching them;
/// they are reclaimed by a later unmap or by teardown.
pub const INLINE_TABLES: usize = 32;

#[cfg(feature = "alloc")]
type TableList = alloc::vec::Vec<DetachedTable>;

#[cfg(not(feature = "alloc"))]
#[derive(Debug)]
struct TableList {
    items: [Option<DetachedTable>; INLINE_TABLES],
    len: usize,
}

#[cfg(not(feature = "alloc"))]
impl TableList {
    const fn new() -> Self {
        TableList {
            items: [None; INLINE_TABLES],
            len: 0,
        }
    }
    fn push(&mut self, t: DetachedTable) {
        self.items[self.len] = Some(t);
        self.len += 1;
    }
    fn len(&self) -> usize {
        self.len
    }
    fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn pop(&mut self) -> Option<DetachedTable> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        self.items[self.len].take()
    }
}

/// Collects the effects of one or more unmaps: the IOVA range whose translations must be
/// invalidated, the smallest granule removed, and the table pages detached from the tree.
///
/// Detached pages are freed only by [`crate::PageTable::sync`], after the table's flush
/// operations have run for the gathered range. A gather belongs to the table that filled
/// it until it is synced; an empty gather can serve any table.
///
/// ```
/// use iopt::fmt::x86_64::{X86_64, X86_64Config};
/// use iopt::mem::HeapMemory;
/// use iopt::{Gather, NoFlush, Prot, Table};
/// let mut t = Table::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
/// t.map(0, 0x8000_0000, 0x3000, Prot::READ)?;
/// let mut g = Gather::new();
/// let _ = t.unmap(0, 0x1000, &mut g)?;
/// let _ = t.unmap(0x2000, 0x1000, &mut g)?; // one gather for both unmaps
/// assert_eq!((g.range(), g.granule(), g.pending_tables()), (Some((0, 0x2fff)), 0x1000, 0));
/// t.sync(&mut g); // one invalidation covering both
/// assert!(g.is_empty());
/// # Ok::<(), iopt::Error>(())
/// ```
#[derive(Debug)]
pub struct Gather {
    owner: u64,
    start: u64,
    last: u64,
    granule: u64,
    has_range: bool,
    tables: TableList,
}

impl Default for Gather {
    fn default() -> Self {
        Self::new()
    }
}

impl Gather {
    /// An empty gather.
    ///
    /// ```
    /// let g = iopt::Gather::new();
    /// assert!(g.is_empty());
    /// assert_eq!((g.range(), g.granule(), g.pending_tables()), (None, 0, 0));
    /// ```
    pub const fn new() -> Self {
        Gather {
            owner: 0,
            start: 0,
            last: 0,
            granule: 0,
            has_range: false,
            #[cfg(feature = "alloc")]
            tables: alloc::vec::Vec::new(),
            #[cfg(not(feature = "alloc"))]
            tables: TableList::new(),
        }
    }

    /// The gathered IOVA range, inclusive (`(first, last)`), if any.
    ///
    /// ```
    /// let mut g = iopt::Gather::new();
    /// g.add_range(0x1000, 0x1000, 0x1000);
    /// g.add_range(0x8000, 0x2000, 0x1000);
    /// assert_eq!(g.range(), Some((0x1000, 0x9fff))); // one range covering both
    /// ```
    pub fn range(&self) -> Option<(u64, u64)> {
        self.has_range.then_some((self.start, self.last))
    }

    /// The smallest leaf or table span removed (the invalidation granule), or 0.
    ///
    /// ```
    /// let mut g = iopt::Gather::new();
    /// g.add_range(0, 0x20_0000, 0x20_0000);
    /// g.add_range(0x20_0000, 0x1000, 0x1000);
    /// assert_eq!(g.granule(), 0x1000);
    /// ```
    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// Number of detached table pages waiting to be freed.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Gather, NoFlush, Prot, Table};
    /// let mut t = Table::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// t.map(0, 0x8000_0000, 0x1000, Prot::READ)?;
    /// let mut g = Gather::new();
    /// let _ = t.unmap(0, 0x1000, &mut g)?; // empties every table below the top
    /// assert_eq!(g.pending_tables(), 3);
    /// t.sync(&mut g);
    /// assert_eq!(g.pending_tables(), 0);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn pending_tables(&self) -> usize {
        self.tables.len()
    }

    /// True if there is nothing to invalidate and nothing to free.
    ///
    /// ```
    /// let mut g = iopt::Gather::new();
    /// assert!(g.is_empty());
    /// g.add_range(0x1000, 0x1000, 0x1000);
    /// assert!(!g.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        !self.has_range && self.tables.is_empty()
    }

    /// Adds `[iova, iova + size)` (size > 0) removed at `granule` to the range.
    ///
    /// [`FlushOps::add_pages`](crate::FlushOps::add_pages) calls it by default.
    ///
    /// ```
    /// let mut g = iopt::Gather::new();
    /// g.add_range(0x4000, 0x2000, 0x1000);
    /// assert_eq!((g.range(), g.granule()), (Some((0x4000, 0x5fff)), 0x1000));
    /// ```
    #[inline]
    pub fn add_range(&mut self, iova: u64, size: u64, granule: u64) {
        let last = iova.wrapping_add(size - 1);
        if self.has_range {
            self.start = self.start.min(iova);
            self.last = self.last.max(last);
            self.granule = self.granule.min(granule);
        } else {
            self.start = iova;
            self.last = last;
            self.granule = granule;
            self.has_range = true;
        }
    }

    #[inline]
    pub(crate) fn bind(&mut self, owner: u64) {
        if self.owner != owner {
            self.bind_slow(owner);
        }
    }

    #[cold]
    fn bind_slow(&mut self, owner: u64) {
        // An empty gather may move to another table.
        if self.owner == 0 || self.is_empty() {
            self.owner = owner;
        }
        assert_eq!(
            self.owner, owner,
            "a Gather was used with two different tables"
        );
    }

    pub(crate) fn owner(&self) -> u64 {
        self.owner
    }

    pub(crate) fn can_hold_table(&self) -> bool {
        #[cfg(feature = "alloc")]
        {
            true
        }
        #[cfg(not(feature = "alloc"))]
        {
            self.tables.len() < INLINE_TABLES
        }
    }

    pub(crate) fn push_table(&mut self, t: DetachedTable) {
        self.tables.push(t);
    }

    pub(crate) fn pop_table(&mut self) -> Option<DetachedTable> {
        self.tables.pop()
    }

    pub(crate) fn clear_range(&mut self) {
        self.has_range = false;
        self.granule = 0;
    }
}
