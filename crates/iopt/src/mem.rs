//! Where table pages come from, and what their physical addresses are.
//!
//! The engine writes physical addresses into table entries (that is what hardware walks)
//! and needs the reverse to descend. A [`TableMemory`] provides both, allocates zeroed,
//! naturally aligned tables, and counts what is in use.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

/// Table-memory usage counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemStats {
    /// Table pages (allocations) in use now.
    pub pages: u64,
    /// Most table pages in use at once.
    pub peak_pages: u64,
    /// Bytes of table memory in use now.
    pub bytes: u64,
    /// Most bytes in use at once.
    pub peak_bytes: u64,
}

/// Page and byte counters shared by the memory implementations (lock-free).
#[derive(Debug, Default)]
pub struct Counters {
    pages: AtomicU64,
    peak_pages: AtomicU64,
    bytes: AtomicU64,
    peak_bytes: AtomicU64,
}

impl Counters {
    /// Zeroed counters.
    pub const fn new() -> Self {
        Counters {
            pages: AtomicU64::new(0),
            peak_pages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            peak_bytes: AtomicU64::new(0),
        }
    }
    /// Records an allocation of `bytes`.
    pub fn add(&self, bytes: u64) {
        // Relaxed: these are statistics; no other memory is published through them.
        let p = self.pages.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_pages.fetch_max(p, Ordering::Relaxed);
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak_bytes.fetch_max(b, Ordering::Relaxed);
    }
    /// Records a free of `bytes`.
    pub fn sub(&self, bytes: u64) {
        self.pages.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
    /// A snapshot.
    pub fn stats(&self) -> MemStats {
        MemStats {
            pages: self.pages.load(Ordering::Relaxed),
            peak_pages: self.peak_pages.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            peak_bytes: self.peak_bytes.load(Ordering::Relaxed),
        }
    }
}

/// A source of table pages.
///
/// # Safety
/// The engine trusts an implementation completely:
/// - `alloc(size_lg2)` returns memory of `2^size_lg2` bytes, aligned to `2^size_lg2`,
///   zero-filled, valid for reads and writes (including atomic ones) until it is passed to
///   `free`, and not handed out again before then;
/// - `virt_to_phys` and `phys_to_virt` are inverse for every live allocation, and the
///   physical address is aligned like the pointer;
/// - the methods may be called from several threads at once.
///
/// Using an implementation directly (the engine does the same):
///
/// ```
/// use iopt::mem::{HeapMemory, TableMemory};
/// let m = HeapMemory::new();
/// let t = m.alloc(12).unwrap(); // one 4 KiB table
/// assert_eq!(t.as_ptr() as usize % 4096, 0); // aligned to its size
/// // SAFETY: `t` is a live 4 KiB allocation of `m`.
/// assert!(unsafe { core::slice::from_raw_parts(t.as_ptr(), 4096) }.iter().all(|&b| b == 0));
/// assert_eq!(m.phys_to_virt(m.virt_to_phys(t)), t);
/// assert_eq!(m.stats().bytes, 4096);
/// // SAFETY: `t` came from `m` with this size, and nothing uses it any more.
/// unsafe { m.free(t, 12) };
/// assert_eq!(m.stats().pages, 0);
/// ```
pub unsafe trait TableMemory: Send + Sync {
    /// Allocates a zeroed table of `2^size_lg2` bytes, aligned to its size; `None` when
    /// out of memory.
    fn alloc(&self, size_lg2: u32) -> Option<NonNull<u8>>;
    /// Frees a table.
    ///
    /// # Safety
    /// `ptr` came from `alloc(size_lg2)` on this object, is not freed yet, and nothing
    /// (neither software nor the hardware walker) will access it again.
    unsafe fn free(&self, ptr: NonNull<u8>, size_lg2: u32);
    /// The physical address of a live table.
    fn virt_to_phys(&self, ptr: NonNull<u8>) -> u64;
    /// The table at physical address `pa`, which `virt_to_phys` returned for a live table.
    fn phys_to_virt(&self, pa: u64) -> NonNull<u8>;
    /// Usage counters.
    fn stats(&self) -> MemStats;
    /// An upper bound on how many more tables of `2^size_lg2` bytes this memory can hand
    /// out now, or `None` if it cannot tell. Reservations compare their worst case with
    /// it before they allocate anything ([`Error::ReservationTooLarge`]); an allocation
    /// may still fail below the bound. The default: `None`.
    ///
    /// [`Error::ReservationTooLarge`]: crate::Error::ReservationTooLarge
    #[inline]
    fn pages_left(&self, size_lg2: u32) -> Option<u64> {
        let _ = size_lg2;
        None
    }
    /// Makes `len` bytes of table memory at `ptr`, just written by the CPU, visible to a
    /// hardware walker that does not snoop the CPU caches (clean to the point of
    /// coherency). Called only for tables built with `coherent_walk: false`; the default
    /// does nothing.
    #[inline]
    fn clean(&self, ptr: NonNull<u8>, len: usize) {
        let _ = (ptr, len);
    }
}

/// Table pages from the global heap; physical address = virtual address (plain userspace,
/// identity-mapped firmware).
///
/// Freed tables are kept in a small cache per size (up to [`HeapMemory::CACHE_BYTES`]
/// in all) and handed out again, zeroed, instead of going back to the global allocator:
/// a table that is built and torn down repeatedly then costs a memset, not a trip through
/// the allocator and the kernel's page faults. [`HeapMemory::trim`] empties the cache.
///
/// # Budget
/// [`HeapMemory::with_budget`] caps the tables in use at a number of pages (table
/// allocations, whatever their size); allocations beyond it fail. What
/// [`TableMemory::pages_left`] reports:
/// - with a budget: the budget minus the pages in use;
/// - without one, with the `std` feature on Linux: the machine's physical memory
///   (`MemTotal` in `/proc/meminfo`) in tables of the size asked, minus the bytes in use.
///   The global allocator's failures are not reported by an overcommitting kernel (the
///   process is killed instead), so a reservation larger than the machine is refused
///   up front ([`Error::ReservationTooLarge`](crate::Error::ReservationTooLarge));
/// - otherwise: no bound (`None`); the global allocator's failures are reported as
///   [`Error::OutOfMemory`](crate::Error::OutOfMemory).
///
/// ```
/// use iopt::mem::{HeapMemory, TableMemory};
/// let m = HeapMemory::with_budget(2);
/// let a = m.alloc(12).unwrap();
/// assert_eq!(m.pages_left(12), Some(1));
/// let b = m.alloc(12).unwrap();
/// assert!(m.alloc(12).is_none()); // over budget
/// // SAFETY: both came from `m` with this size and are unused.
/// unsafe { m.free(a, 12); m.free(b, 12); }
/// ```
#[cfg(feature = "alloc")]
#[derive(Debug, Default)]
pub struct HeapMemory {
    counters: Counters,
    cache: spin::Mutex<HeapCache>,
    /// Most pages in use at once, if limited.
    budget: Option<u64>,
    /// Pages in use counted against the budget.
    budget_used: AtomicU64,
}

/// Freed tables waiting for reuse: one list per size, linked through each table's first
/// word (the table is free, so the word is ours).
#[cfg(feature = "alloc")]
#[derive(Debug, Default)]
struct HeapCache {
    heads: [usize; 24],
    bytes: usize,
}

#[cfg(feature = "alloc")]
impl HeapMemory {
    /// Most bytes of freed tables kept for reuse.
    pub const CACHE_BYTES: usize = 16 << 20;

    /// A new heap source with zeroed counters and an empty cache.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::{HeapMemory, TableMemory};
    /// use iopt::{NoFlush, Table};
    /// assert_eq!(HeapMemory::new().stats().pages, 0);
    /// let t = Table::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// assert_eq!(t.memory().stats().pages, 1); // the top table
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub const fn new() -> Self {
        HeapMemory {
            counters: Counters::new(),
            cache: spin::Mutex::new(HeapCache {
                heads: [0; 24],
                bytes: 0,
            }),
            budget: None,
            budget_used: AtomicU64::new(0),
        }
    }

    /// A heap source that gives at most `pages` tables (of any size) at once.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// use iopt::{Error, NoFlush, Prot, Table};
    /// // The top and two more: one short of what a first 4 KiB map needs.
    /// let mut t = Table::new(X86_64::new(X86_64Config::default())?, HeapMemory::with_budget(3), NoFlush)?;
    /// let r = t.map(0, 0x8000_0000, 0x1000, Prot::READ); // refused before allocating
    /// assert_eq!(r, Err(Error::ReservationTooLarge { size_lg2: 12, needed: 3, available: 2 }));
    /// assert_eq!(t.mem_stats().pages, 1);
    /// t.map(0, 0x8000_0000, 0x20_0000, Prot::READ)?; // a 2 MiB page needs one table less
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub const fn with_budget(pages: u64) -> Self {
        let mut m = Self::new();
        m.budget = Some(pages);
        m
    }

    /// The budget, if any.
    ///
    /// ```
    /// use iopt::mem::HeapMemory;
    /// assert_eq!(HeapMemory::new().budget(), None);
    /// assert_eq!(HeapMemory::with_budget(64).budget(), Some(64));
    /// ```
    pub fn budget(&self) -> Option<u64> {
        self.budget
    }

    /// Takes one page of the budget; false if none is left.
    #[inline]
    fn take_budget(&self) -> bool {
        let Some(budget) = self.budget else {
            return true;
        };
        // Relaxed: a counter; the allocation it admits publishes nothing through it.
        self.budget_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u < budget).then_some(u + 1)
            })
            .is_ok()
    }

    /// Gives one page back to the budget.
    #[inline]
    fn return_budget(&self) {
        if self.budget.is_some() {
            // Relaxed: as in `take_budget`.
            self.budget_used.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Gives every cached free table back to the global allocator.
    ///
    /// ```
    /// use iopt::mem::{HeapMemory, TableMemory};
    /// let m = HeapMemory::new();
    /// let t = m.alloc(12).unwrap();
    /// // SAFETY: `t` came from `m` with this size and is unused.
    /// unsafe { m.free(t, 12) }; // kept in the cache, not counted as in use
    /// assert_eq!(m.stats().pages, 0);
    /// m.trim(); // and now returned to the global allocator
    /// ```
    pub fn trim(&self) {
        let mut c = self.cache.lock();
        for lg2 in 0..24u32 {
            while c.heads[lg2 as usize] != 0 {
                let p = core::ptr::with_exposed_provenance_mut::<u8>(c.heads[lg2 as usize]);
                // SAFETY: cached tables are free, at least a word long, and hold the link.
                c.heads[lg2 as usize] = unsafe { p.cast::<usize>().read() };
                // SAFETY: allocated by `alloc` with this layout; freed once.
                unsafe { alloc::alloc::dealloc(p, table_layout(lg2)) };
            }
        }
        c.bytes = 0;
    }
}

#[cfg(feature = "alloc")]
impl Drop for HeapMemory {
    fn drop(&mut self) {
        self.trim();
    }
}

/// The machine's physical memory in bytes (`MemTotal` in `/proc/meminfo`), read once.
#[cfg(all(feature = "std", target_os = "linux"))]
fn physical_memory() -> Option<u64> {
    static TOTAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    })
}

/// No bound known without `std` on Linux.
#[cfg(all(feature = "alloc", not(all(feature = "std", target_os = "linux"))))]
fn physical_memory() -> Option<u64> {
    None
}

#[cfg(feature = "alloc")]
fn table_layout(size_lg2: u32) -> core::alloc::Layout {
    let size = 1usize << size_lg2;
    // A power-of-two size is always a valid alignment, and size == align never overflows
    // isize for the table sizes formats use (at most 64 KiB * 16).
    core::alloc::Layout::from_size_align(size, size).expect("table layout")
}

// SAFETY: `alloc_zeroed` with a size-aligned layout gives zeroed, aligned memory that
// stays valid until `dealloc`; the identity mapping is trivially inverse; the global
// allocator and the atomic counters are thread-safe.
#[cfg(feature = "alloc")]
unsafe impl TableMemory for HeapMemory {
    #[inline]
    fn alloc(&self, size_lg2: u32) -> Option<NonNull<u8>> {
        let layout = table_layout(size_lg2);
        if !self.take_budget() {
            return None;
        }
        let cached = if (size_lg2 as usize) < 24 && size_lg2 >= 3 {
            let mut c = self.cache.lock();
            let head = c.heads[size_lg2 as usize];
            (head != 0).then(|| {
                let p = core::ptr::with_exposed_provenance_mut::<u8>(head);
                // SAFETY: cached tables are free and hold the link in their first word.
                c.heads[size_lg2 as usize] = unsafe { p.cast::<usize>().read() };
                c.bytes -= layout.size();
                p
            })
        } else {
            None
        };
        let p = match cached {
            Some(p) => {
                // SAFETY: a free table of this size, ours alone: zero it for reuse.
                unsafe { core::ptr::write_bytes(p, 0, layout.size()) };
                // SAFETY: non-null (it was in the cache).
                unsafe { NonNull::new_unchecked(p) }
            }
            // SAFETY: the layout has a non-zero size.
            None => match NonNull::new(unsafe { alloc::alloc::alloc_zeroed(layout) }) {
                Some(p) => p,
                None => {
                    self.return_budget();
                    return None;
                }
            },
        };
        self.counters.add(layout.size() as u64);
        Some(p)
    }
    #[inline]
    unsafe fn free(&self, ptr: NonNull<u8>, size_lg2: u32) {
        let layout = table_layout(size_lg2);
        self.counters.sub(layout.size() as u64);
        self.return_budget();
        if size_lg2 >= 3 && (size_lg2 as usize) < 24 {
            let mut c = self.cache.lock();
            if c.bytes + layout.size() <= Self::CACHE_BYTES {
                let next = c.heads[size_lg2 as usize];
                // SAFETY: the caller gives the table up; its first word is ours now.
                unsafe { ptr.as_ptr().cast::<usize>().write(next) };
                c.heads[size_lg2 as usize] = ptr.as_ptr().expose_provenance();
                c.bytes += layout.size();
                return;
            }
        }
        // SAFETY: the caller guarantees `ptr` came from `alloc` with this size, hence
        // from `alloc_zeroed` (or the cache, which holds only such tables) with this
        // layout, and is freed once.
        unsafe { alloc::alloc::dealloc(ptr.as_ptr(), layout) }
    }
    #[inline]
    fn virt_to_phys(&self, ptr: NonNull<u8>) -> u64 {
        // The physical address is the pointer's address; exposing its provenance lets
        // `phys_to_virt` turn the integer back into a usable pointer.
        ptr.as_ptr().expose_provenance() as u64
    }
    #[inline]
    fn phys_to_virt(&self, pa: u64) -> NonNull<u8> {
        NonNull::new(core::ptr::with_exposed_provenance_mut(pa as usize))
            .expect("table at physical address 0")
    }
    #[inline]
    fn stats(&self) -> MemStats {
        self.counters.stats()
    }
    /// See the type's documentation ("Budget").
    fn pages_left(&self, size_lg2: u32) -> Option<u64> {
        if let Some(budget) = self.budget {
            // Relaxed: a snapshot of a counter.
            return Some(budget.saturating_sub(self.budget_used.load(Ordering::Relaxed)));
        }
        let total = physical_memory()?;
        Some(total.saturating_sub(self.counters.stats().bytes) >> size_lg2)
    }
}

#[cfg(feature = "alloc")]
pub use arena::ArenaMemory;

#[cfg(feature = "alloc")]
mod arena {
    use super::{Counters, MemStats, NonNull, TableMemory, table_layout};
    use alloc::vec::Vec;

    /// Free lists and the bump pointer of an arena.
    #[derive(Debug)]
    struct State {
        /// Offset of the first never-used byte.
        bump: usize,
        /// Free blocks, by log2 size: offsets into the buffer.
        free: [Vec<usize>; 24],
    }

    /// One contiguous buffer of simulated physical memory starting at a chosen base
    /// address; tables are carved from it, and the whole buffer can be read back as a
    /// byte image (a memory dump of the table pages).
    ///
    /// Freed tables are zeroed, so the image of a table that went back to an earlier
    /// state is byte-identical to the earlier image.
    ///
    /// ```
    /// use iopt::mem::{ArenaMemory, TableMemory};
    /// let arena = ArenaMemory::new(0x8000_0000, 1 << 20);
    /// let t = arena.alloc(12).unwrap();
    /// assert_eq!(arena.virt_to_phys(t), 0x8000_0000);
    /// assert_eq!(arena.stats().pages, 1);
    /// ```
    #[derive(Debug)]
    pub struct ArenaMemory {
        base_pa: u64,
        buf: NonNull<u8>,
        capacity: usize,
        state: spin::Mutex<State>,
        counters: Counters,
    }

    // SAFETY: the buffer is owned by the arena; all shared mutation goes through the
    // mutex (allocation state) or through table entries, which the engine accesses
    // atomically.
    unsafe impl Send for ArenaMemory {}
    // SAFETY: as above.
    unsafe impl Sync for ArenaMemory {}

    /// Largest alignment the buffer itself gets (tables up to this size are naturally
    /// aligned in physical and virtual addresses when `base_pa` is aligned to it).
    const BUF_ALIGN_LG2: u32 = 16;

    impl ArenaMemory {
        /// An arena of `capacity` bytes whose first byte has physical address `base_pa`.
        ///
        /// ```
        /// use iopt::mem::ArenaMemory;
        /// let arena = ArenaMemory::new(0x8000_0000, 1 << 20);
        /// assert_eq!((arena.base_pa(), arena.capacity()), (0x8000_0000, 1 << 20));
        /// assert!(arena.image().is_empty()); // nothing handed out yet
        /// ```
        ///
        /// # Panics
        /// If `base_pa` is not 64 KiB aligned, `capacity` is zero or not a multiple of
        /// 64 KiB... rounded up to 64 KiB, or the host cannot allocate the buffer.
        pub fn new(base_pa: u64, capacity: usize) -> Self {
            assert!(
                base_pa.trailing_zeros() >= BUF_ALIGN_LG2,
                "arena base must be 64 KiB aligned"
            );
            let capacity = capacity.max(1).next_multiple_of(1 << BUF_ALIGN_LG2);
            let layout = core::alloc::Layout::from_size_align(capacity, 1 << BUF_ALIGN_LG2)
                .expect("arena layout");
            // SAFETY: non-zero size.
            let buf = NonNull::new(unsafe { alloc::alloc::alloc_zeroed(layout) })
                .expect("arena allocation failed");
            ArenaMemory {
                base_pa,
                buf,
                capacity,
                state: spin::Mutex::new(State {
                    bump: 0,
                    free: Default::default(),
                }),
                counters: Counters::new(),
            }
        }

        /// Physical address of the first byte.
        pub fn base_pa(&self) -> u64 {
            self.base_pa
        }

        /// Size of the buffer in bytes.
        pub fn capacity(&self) -> usize {
            self.capacity
        }

        /// A copy of the buffer up to the highest byte ever handed out (the physical
        /// memory image; everything above it is zero). Take it while no operation is
        /// running on a table that uses this arena.
        ///
        /// Two images describe the same memory if they are equal after trailing zeros
        /// are removed: see [`ArenaMemory::same_image`].
        ///
        /// ```
        /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
        /// use iopt::mem::ArenaMemory;
        /// use iopt::{Gather, NoFlush, Prot, Table};
        /// let arena = ArenaMemory::new(0x8000_0000, 1 << 20);
        /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, &arena, NoFlush)?;
        /// let empty = arena.image();
        /// assert_eq!(empty.len(), 4096); // just the top table
        /// t.map(0x4000_0000, 0x1_0000_0000, 0x1000, Prot::READ)?;
        /// let mut g = Gather::new();
        /// let _ = t.unmap(0x4000_0000, 0x1000, &mut g)?;
        /// t.sync(&mut g);
        /// assert!(ArenaMemory::same_image(&empty, &arena.image())); // back to the same bytes
        /// # Ok::<(), iopt::Error>(())
        /// ```
        pub fn image(&self) -> Vec<u8> {
            let used = self.state.lock().bump;
            let mut v = alloc::vec![0u8; used];
            // SAFETY: `used <= capacity` bytes of the live buffer; the caller promises no
            // concurrent writer, so a plain copy reads settled bytes.
            unsafe { core::ptr::copy_nonoverlapping(self.buf.as_ptr(), v.as_mut_ptr(), used) };
            v
        }

        /// True if two images from [`ArenaMemory::image`] describe the same memory.
        ///
        /// ```
        /// use iopt::mem::ArenaMemory;
        /// assert!(ArenaMemory::same_image(&[1, 2], &[1, 2, 0, 0])); // trailing zeros
        /// assert!(!ArenaMemory::same_image(&[1, 2], &[1, 2, 3]));
        /// ```
        pub fn same_image(a: &[u8], b: &[u8]) -> bool {
            let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
            long[..short.len()] == *short && long[short.len()..].iter().all(|&x| x == 0)
        }

        /// Reads one 64-bit little-endian word at physical address `pa` (for tools that
        /// walk an image), or `None` outside the arena.
        ///
        /// ```
        /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
        /// use iopt::mem::ArenaMemory;
        /// use iopt::{NoFlush, Prot, Table};
        /// let arena = ArenaMemory::new(0x8000_0000, 1 << 20);
        /// let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, &arena, NoFlush)?;
        /// let root = t.info().root_pa;
        /// assert_eq!(arena.read_u64(root), Some(0)); // entry 0 of the empty top table
        /// t.map(0, 0x1_0000_0000, 0x1000, Prot::READ)?;
        /// assert_ne!(arena.read_u64(root), Some(0)); // now it points to a table
        /// assert_eq!(arena.read_u64(0x8000_0000 + (1 << 20)), None); // past the arena
        /// # Ok::<(), iopt::Error>(())
        /// ```
        pub fn read_u64(&self, pa: u64) -> Option<u64> {
            let off = usize::try_from(pa.checked_sub(self.base_pa)?).ok()?;
            if off % 8 != 0 || off + 8 > self.capacity {
                return None;
            }
            // SAFETY: in bounds and 8-byte aligned (the buffer is 64 KiB aligned); the
            // engine writes entries with atomics, so an atomic read never races UB.
            let a =
                unsafe { &*(self.buf.as_ptr().add(off) as *const core::sync::atomic::AtomicU64) };
            Some(a.load(core::sync::atomic::Ordering::Relaxed))
        }

        /// Sets `bits` in the 64-bit word at physical address `pa` with an atomic OR, as
        /// an IOMMU sets the accessed and dirty flags of an entry it walks (for tests and
        /// emulators that play the hardware's part). Returns the old value, or `None`
        /// outside the arena.
        ///
        /// # Safety
        /// The word is a table entry, or unused memory, and the bits set do not change
        /// what a table using this arena reads the entry as (its kind, address or size):
        /// hardware-owned status bits such as accessed and dirty, or software bits the
        /// format ignores. Setting other bits can make the engine follow a bad table
        /// pointer.
        pub unsafe fn fetch_or_u64(&self, pa: u64, bits: u64) -> Option<u64> {
            let off = usize::try_from(pa.checked_sub(self.base_pa)?).ok()?;
            if off % 8 != 0 || off + 8 > self.capacity {
                return None;
            }
            // SAFETY: in bounds and 8-byte aligned (as in `read_u64`); the engine accesses
            // entries only atomically, so an atomic read-modify-write does not race UB.
            let a =
                unsafe { &*(self.buf.as_ptr().add(off) as *const core::sync::atomic::AtomicU64) };
            // SeqCst: a stand-in for the hardware's locked update; nothing else is
            // published through it.
            Some(a.fetch_or(bits, core::sync::atomic::Ordering::SeqCst))
        }

        /// Replaces the 64-bit word at physical address `pa` by `new` if it holds `old`,
        /// with an atomic compare-and-swap, as an IOMMU rewrites an entry's permission
        /// or dirty bits (ARM's hardware dirty state update clears AP\[2\] this way).
        /// Returns the value found (`Ok` if it was `old` and the swap happened), or
        /// `None` outside the arena.
        ///
        /// # Safety
        /// As for [`Self::fetch_or_u64`]: the word is a table entry or unused memory, and
        /// `new` differs from `old` only in bits that do not change the entry's kind,
        /// address or size.
        pub unsafe fn compare_exchange_u64(
            &self,
            pa: u64,
            old: u64,
            new: u64,
        ) -> Option<Result<u64, u64>> {
            let off = usize::try_from(pa.checked_sub(self.base_pa)?).ok()?;
            if off % 8 != 0 || off + 8 > self.capacity {
                return None;
            }
            // SAFETY: as in `fetch_or_u64`.
            let a =
                unsafe { &*(self.buf.as_ptr().add(off) as *const core::sync::atomic::AtomicU64) };
            // SeqCst: as in `fetch_or_u64`.
            Some(a.compare_exchange(
                old,
                new,
                core::sync::atomic::Ordering::SeqCst,
                core::sync::atomic::Ordering::SeqCst,
            ))
        }
    }

    impl Drop for ArenaMemory {
        fn drop(&mut self) {
            let layout = core::alloc::Layout::from_size_align(self.capacity, 1 << BUF_ALIGN_LG2)
                .expect("arena layout");
            // SAFETY: allocated in `new` with this layout, freed once.
            unsafe { alloc::alloc::dealloc(self.buf.as_ptr(), layout) }
        }
    }

    // SAFETY: blocks are carved at offsets aligned to their size from a buffer aligned to
    // 64 KiB (and `base_pa` is 64 KiB aligned), so virtual and physical alignment agree
    // for every table size up to 64 KiB; larger blocks are aligned by offset, which
    // `alloc` checks against the base. Blocks are zero on hand-out (zeroed on free, and
    // the buffer starts zeroed); the free lists never hold a live block.
    unsafe impl TableMemory for ArenaMemory {
        #[inline]
        fn alloc(&self, size_lg2: u32) -> Option<NonNull<u8>> {
            let size = table_layout(size_lg2).size();
            let align_ok = size_lg2 <= BUF_ALIGN_LG2 || (self.base_pa.trailing_zeros() >= size_lg2);
            if !align_ok || size_lg2 as usize >= 24 {
                return None;
            }
            let off = {
                let mut st = self.state.lock();
                if let Some(off) = st.free[size_lg2 as usize].pop() {
                    off
                } else {
                    let off = st.bump.next_multiple_of(size);
                    if off.checked_add(size)? > self.capacity {
                        return None;
                    }
                    // The alignment gap goes to the free lists so it is not lost.
                    let mut gap = st.bump;
                    while gap < off {
                        let lg2 = gap.trailing_zeros().min((off - gap).ilog2());
                        st.free[lg2 as usize].push(gap);
                        gap += 1 << lg2;
                    }
                    st.bump = off + size;
                    off
                }
            };
            self.counters.add(size as u64);
            // SAFETY: `off + size <= capacity`, so the pointer stays in the buffer.
            Some(unsafe { NonNull::new_unchecked(self.buf.as_ptr().add(off)) })
        }

        #[inline]
        unsafe fn free(&self, ptr: NonNull<u8>, size_lg2: u32) {
            let size = 1usize << size_lg2;
            let off = ptr.as_ptr() as usize - self.buf.as_ptr() as usize;
            // SAFETY: the caller guarantees the block is ours, live, and unused from now
            // on, so zeroing its `size` bytes touches nothing anyone else reads.
            unsafe { core::ptr::write_bytes(ptr.as_ptr(), 0, size) };
            self.state.lock().free[size_lg2 as usize].push(off);
            self.counters.sub(size as u64);
        }

        #[inline]
        fn virt_to_phys(&self, ptr: NonNull<u8>) -> u64 {
            self.base_pa + (ptr.as_ptr() as usize - self.buf.as_ptr() as usize) as u64
        }

        #[inline]
        fn phys_to_virt(&self, pa: u64) -> NonNull<u8> {
            let off = (pa - self.base_pa) as usize;
            assert!(off < self.capacity, "physical address outside the arena");
            // SAFETY: in bounds (checked above).
            unsafe { NonNull::new_unchecked(self.buf.as_ptr().add(off)) }
        }

        #[inline]
        fn stats(&self) -> MemStats {
            self.counters.stats()
        }
        /// The free blocks of that size plus the untouched rest of the buffer.
        fn pages_left(&self, size_lg2: u32) -> Option<u64> {
            if size_lg2 as usize >= 24 {
                return Some(0);
            }
            let st = self.state.lock();
            let rest = self.capacity - st.bump.min(self.capacity);
            Some(st.free[size_lg2 as usize].len() as u64 + (rest >> size_lg2) as u64)
        }
    }
}

// SAFETY: forwards to `T`, which upholds the contract.
unsafe impl<T: TableMemory + ?Sized> TableMemory for &T {
    #[inline]
    fn alloc(&self, size_lg2: u32) -> Option<NonNull<u8>> {
        (**self).alloc(size_lg2)
    }
    #[inline]
    unsafe fn free(&self, ptr: NonNull<u8>, size_lg2: u32) {
        // SAFETY: the caller's guarantee is passed on.
        unsafe { (**self).free(ptr, size_lg2) }
    }
    #[inline]
    fn virt_to_phys(&self, ptr: NonNull<u8>) -> u64 {
        (**self).virt_to_phys(ptr)
    }
    #[inline]
    fn phys_to_virt(&self, pa: u64) -> NonNull<u8> {
        (**self).phys_to_virt(pa)
    }
    #[inline]
    fn stats(&self) -> MemStats {
        (**self).stats()
    }
    #[inline]
    fn pages_left(&self, size_lg2: u32) -> Option<u64> {
        (**self).pages_left(size_lg2)
    }
    #[inline]
    fn clean(&self, ptr: NonNull<u8>, len: usize) {
        (**self).clean(ptr, len)
    }
}

/// A [`TableMemory`] wrapper that fails chosen allocations, for fault-injection tests.
///
/// Allocations are numbered from 1 (counting from creation or the last
/// [`FaultyMemory::reset`]). [`FaultyMemory::fail_nth`] fails exactly one of them;
/// [`FaultyMemory::fail_from`] fails that one and every later one.
///
/// ```
/// use iopt::mem::{FaultyMemory, HeapMemory, TableMemory};
/// let m = FaultyMemory::new(HeapMemory::new());
/// m.fail_nth(2);
/// let a = m.alloc(12).unwrap();
/// assert!(m.alloc(12).is_none());
/// let b = m.alloc(12).unwrap();
/// // SAFETY: both came from `m` with this size and are unused.
/// unsafe { m.free(a, 12); m.free(b, 12); }
/// assert_eq!(m.failures(), 1);
/// ```
#[derive(Debug, Default)]
pub struct FaultyMemory<M> {
    inner: M,
    count: AtomicU64,
    fail_at: AtomicU64,
    fail_all_after: core::sync::atomic::AtomicBool,
    failures: AtomicU64,
}

impl<M: TableMemory> FaultyMemory<M> {
    /// Wraps `inner`; nothing fails until told to.
    pub fn new(inner: M) -> Self {
        FaultyMemory {
            inner,
            count: AtomicU64::new(0),
            fail_at: AtomicU64::new(0),
            fail_all_after: core::sync::atomic::AtomicBool::new(false),
            failures: AtomicU64::new(0),
        }
    }
    /// Fails allocation number `n` only (0: none).
    pub fn fail_nth(&self, n: u64) {
        self.fail_at.store(n, Ordering::SeqCst);
        self.fail_all_after.store(false, Ordering::SeqCst);
    }
    /// Fails allocation number `n` and every later one.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::{FaultyMemory, HeapMemory};
    /// use iopt::{Error, NoFlush, Prot, Table};
    /// let mut t = Table::new(X86_64::new(X86_64Config::default())?, FaultyMemory::new(HeapMemory::new()), NoFlush)?;
    /// t.memory().fail_from(t.memory().allocations() + 2); // the map's 2nd table and later
    /// assert_eq!(t.map(0, 0x8000_0000, 0x1000, Prot::READ), Err(Error::OutOfMemory));
    /// assert_eq!((t.translate(0), t.mem_stats().pages), (None, 1)); // nothing changed
    /// t.memory().reset();
    /// t.map(0, 0x8000_0000, 0x1000, Prot::READ)?;
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn fail_from(&self, n: u64) {
        self.fail_at.store(n, Ordering::SeqCst);
        self.fail_all_after.store(true, Ordering::SeqCst);
    }
    /// Restarts the numbering and stops failing.
    ///
    /// ```
    /// use iopt::mem::{FaultyMemory, HeapMemory, TableMemory};
    /// let m = FaultyMemory::new(HeapMemory::new());
    /// m.fail_from(1);
    /// assert!(m.alloc(12).is_none());
    /// m.reset();
    /// assert_eq!(m.allocations(), 0);
    /// let a = m.alloc(12).unwrap();
    /// // SAFETY: `a` came from `m` with this size and is unused.
    /// unsafe { m.free(a, 12) };
    /// ```
    pub fn reset(&self) {
        self.count.store(0, Ordering::SeqCst);
        self.fail_at.store(0, Ordering::SeqCst);
        self.fail_all_after.store(false, Ordering::SeqCst);
    }
    /// Allocations asked for since creation or the last reset.
    ///
    /// ```
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::{FaultyMemory, HeapMemory};
    /// use iopt::{NoFlush, Prot, Table};
    /// let mut t = Table::new(X86_64::new(X86_64Config::default())?, FaultyMemory::new(HeapMemory::new()), NoFlush)?;
    /// assert_eq!(t.memory().allocations(), 1); // the top table
    /// t.map(0, 0x8000_0000, 0x1000, Prot::READ)?;
    /// assert_eq!(t.memory().allocations(), 4); // one table per level below it
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn allocations(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
    /// Allocations refused so far.
    ///
    /// ```
    /// use iopt::mem::{FaultyMemory, HeapMemory, TableMemory};
    /// let m = FaultyMemory::new(HeapMemory::new());
    /// m.fail_nth(1);
    /// assert!(m.alloc(12).is_none());
    /// assert_eq!((m.allocations(), m.failures()), (1, 1));
    /// ```
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }
    /// The wrapped memory.
    ///
    /// ```
    /// use iopt::mem::{FaultyMemory, HeapMemory};
    /// let m = FaultyMemory::new(HeapMemory::with_budget(4));
    /// assert_eq!(m.inner().budget(), Some(4));
    /// ```
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

// SAFETY: forwards to `inner`, which upholds the contract; refusing an allocation is
// always allowed.
unsafe impl<M: TableMemory> TableMemory for FaultyMemory<M> {
    #[inline]
    fn alloc(&self, size_lg2: u32) -> Option<NonNull<u8>> {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        let at = self.fail_at.load(Ordering::SeqCst);
        let fail = at != 0 && (n == at || (n > at && self.fail_all_after.load(Ordering::SeqCst)));
        if fail {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        self.inner.alloc(size_lg2)
    }
    #[inline]
    unsafe fn free(&self, ptr: NonNull<u8>, size_lg2: u32) {
        // SAFETY: the caller's guarantee is passed on.
        unsafe { self.inner.free(ptr, size_lg2) }
    }
    #[inline]
    fn virt_to_phys(&self, ptr: NonNull<u8>) -> u64 {
        self.inner.virt_to_phys(ptr)
    }
    #[inline]
    fn phys_to_virt(&self, pa: u64) -> NonNull<u8> {
        self.inner.phys_to_virt(pa)
    }
    #[inline]
    fn stats(&self) -> MemStats {
        self.inner.stats()
    }
    #[inline]
    fn pages_left(&self, size_lg2: u32) -> Option<u64> {
        self.inner.pages_left(size_lg2)
    }
    #[inline]
    fn clean(&self, ptr: NonNull<u8>, len: usize) {
        self.inner.clean(ptr, len)
    }
}
