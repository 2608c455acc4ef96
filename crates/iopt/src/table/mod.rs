//! The generic engine: one radix-tree algorithm for every format, and the raw API.
//!
//! Written once, monomorphised per [`Format`]: no `dyn`, no function pointers on the
//! map/unmap/lookup paths. Entries are read and written with atomics of the entry's width
//! because hardware walks the table while software edits it, and because operations on
//! disjoint IOVA ranges may run concurrently (see the `# Safety` sections).
//!
//! # How map builds tables
//! When map meets an empty entry above the leaf level, it allocates the next-level table
//! and fills it *privately* before linking it in with a compare-and-swap. A table that
//! ends up holding nothing (the map failed before writing into it) is freed without ever
//! having been visible, so a failed map leaves no empty tables behind. If the
//! compare-and-swap loses against another thread that linked its own table there, this
//! thread frees its private subtree and redoes that part through the winner's table.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

// Entries, the top pointer and the growth lock: loom's under `cfg(loom)` (src/sync.rs).
use crate::sync;

use crate::flush::FlushOps;
use crate::format::{Format, HwWords, Pte, VaMode};
use crate::gather::{DetachedTable, Gather};
use crate::mem::{MemStats, TableMemory};
use crate::reserve::Reservation;
use crate::{Error, Prot, Result};

use cursor::CleanSpan;

pub use auto::UnmapMode;
pub use cut::{Bbm, Cut};
pub use dirty::{DirtyBitmap, DirtyFlags, SimWrite};
pub use geometry::Aperture;
use geometry::{Geometry, mask_lg2};
pub(crate) use plan::Plan;
pub use plan::TableCounts;
pub use protect::Protected;

mod auto;
mod check;
mod cursor;
mod cut;
mod dirty;
mod entry;
mod geometry;
mod grow;
mod lookup;
mod map;
mod plan;
mod protect;
mod teardown;
mod unmap;

/// What a driver needs to know about a table (Linux's `get_info` plus the hardware
/// configuration words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Bit `n` set: a page of `2^n` bytes can be mapped (one entry or a run of entries).
    pub pgsize_bitmap: u64,
    /// The IOVA ranges that can be mapped (for dynamic-top formats, at the largest top).
    pub aperture: Aperture,
    /// Levels the table has now.
    pub levels: u32,
    /// Levels it may grow to.
    pub max_levels: u32,
    /// Output address width.
    pub oa_bits: u32,
    /// Physical address of the top table.
    pub root_pa: u64,
    /// Configuration words for the hardware.
    pub hw: HwWords,
}

/// The result of a translation: where an IOVA goes and what the mapping around it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// Physical address of the IOVA asked about.
    pub pa: u64,
    /// First IOVA of the mapping (the entry or run) containing it.
    pub iova_base: u64,
    /// Size of that mapping in bytes.
    pub size: u64,
    /// Its permissions, as the format records them.
    pub prot: Prot,
    /// Level of the leaf entry.
    pub level: u32,
}

/// What to do when a map finds its range already in use.
///
/// The map fails with [`Error::AddressInUse`] either way and changes nothing for the part
/// that failed; the policy only decides whether the attempt also counts as a caller bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverlapPolicy {
    /// Count it as a usage bug ([`PageTable::overlap_warnings`]) and, with the `log`
    /// feature, log a warning (Linux's default: `WARN_ON`).
    #[default]
    Warn,
    /// Say nothing (io-pgtable's `IO_PGTABLE_QUIRK_NO_WARN`: user-controlled GPU
    /// mappings, where overlaps are expected).
    Silent,
}

/// Construction options of a [`PageTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The hardware walker snoops the CPU caches. When `false`, the engine asks the table
    /// memory to clean ([`TableMemory::clean`]) every entry range it writes, once per
    /// table and raw operation, and every new table before it is linked in. (Replacing an
    /// empty leftover table by a leaf also cleans the cleared link before the walk flush:
    /// break-before-make. A safe map made of several page-size pieces is several raw
    /// operations.)
    pub coherent_walk: bool,
    /// What an overlapping map means.
    pub overlap: OverlapPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            coherent_walk: true,
            overlap: OverlapPolicy::Warn,
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A page table of format `F`, with table pages from `M`, driven by flush operations `X`.
///
/// This is the raw, kernel-style layer: its operations are `unsafe` and mirror Linux's
/// io-pgtable (`map_pages`, `unmap_pages`, `iova_to_phys`, `get_info`). Dropping the table
/// frees every table page; the hardware must have stopped walking it by then.
///
/// ```
/// use iopt::{PageTable, Prot, Gather, NoFlush};
/// use iopt::fmt::x86_64::{X86_64, X86_64Config};
/// use iopt::mem::HeapMemory;
///
/// let pt = PageTable::new(X86_64::new(X86_64Config::default()).unwrap(), HeapMemory::new(), NoFlush).unwrap();
/// // SAFETY: nothing else uses this table, and no hardware walks it.
/// unsafe {
///     let (mapped, r) = pt.map_pages(0x10_0000, 0x8000_0000, 4096, 16, Prot::READ | Prot::WRITE);
///     assert_eq!((mapped, r), (16 * 4096, Ok(())));
///     assert_eq!(pt.iova_to_phys(0x10_1234), Some(0x8000_1234));
///     let mut g = Gather::new();
///     assert_eq!(pt.unmap_pages(0x10_0000, 4096, 16, &mut g), (16 * 4096, Ok(())));
///     pt.sync(&mut g);
/// }
/// ```
pub struct PageTable<F: Format, M: TableMemory, X: FlushOps> {
    fmt: F,
    mem: M,
    ops: X,
    /// Pointer to the top table with the top level in the low 3 bits, so that readers
    /// see the root and its level change together.
    top: sync::AtomicPtr<u8>,
    grow_lock: sync::Mutex<()>,
    pgsize_bitmap: u64,
    id: u64,
    opts: Options,
    overlaps: AtomicU64,
    /// Dirty tracking switched on ([`PageTable::set_dirty_tracking`]); initially
    /// [`Format::tracks_dirty`].
    dirty_on: AtomicBool,
    geo: Geometry,
}

// SAFETY: the table pages are reached only through atomics; `F`, `M` and `X` are
// `Send + Sync` by their trait bounds; the raw pointer in `top` is an address owned by
// this table.
unsafe impl<F: Format, M: TableMemory, X: FlushOps> Send for PageTable<F, M, X> {}
// SAFETY: as above; concurrent use follows the range-exclusivity rules of the unsafe API.
unsafe impl<F: Format, M: TableMemory, X: FlushOps> Sync for PageTable<F, M, X> {}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Creates an empty table (one top table) of format `fmt`.
    ///
    /// Fails with [`Error::OutOfMemory`] if the top table cannot be allocated, or
    /// [`Error::BadConfig`] if the format reports an inconsistent geometry.
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// assert_eq!(pt.info().levels, 4);
    /// assert_eq!(pt.mem_stats().pages, 1); // the top table
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn new(fmt: F, mem: M, ops: X) -> Result<Self> {
        Self::with_options(fmt, mem, ops, Options::default())
    }

    /// [`Self::new`] with explicit [`Options`].
    ///
    /// ```
    /// use iopt::{NoFlush, Options, OverlapPolicy, PageTable};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let opts = Options { overlap: OverlapPolicy::Silent, ..Options::default() };
    /// let pt = PageTable::with_options(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush, opts)?;
    /// assert_eq!(pt.options().overlap, OverlapPolicy::Silent);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn with_options(fmt: F, mem: M, ops: X, opts: Options) -> Result<Self> {
        let (geo, pgsize_bitmap) = Geometry::of(&fmt)?;
        let top = fmt.levels() - 1;
        let dirty_on = AtomicBool::new(fmt.tracks_dirty());
        let t = PageTable {
            geo,
            fmt,
            mem,
            ops,
            top: sync::AtomicPtr::new(core::ptr::null_mut()),
            grow_lock: sync::Mutex::new(()),
            pgsize_bitmap,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            opts,
            overlaps: AtomicU64::new(0),
            dirty_on,
        };
        let root = t.alloc_table(t.table_bytes_lg2(top, top))?;
        t.top.store(Self::tag(root, top), Ordering::Release);
        Ok(t)
    }

    /// The options the table was built with.
    pub fn options(&self) -> Options {
        self.opts
    }

    /// How many maps found their range in use while the policy was
    /// [`OverlapPolicy::Warn`].
    pub fn overlap_warnings(&self) -> u64 {
        self.overlaps.load(Ordering::Relaxed)
    }

    /// The level and run of a page size in the bitmap.
    pub(crate) fn leaf_of(&self, pgsize: u64) -> (u32, u32) {
        self.leaf_for(pgsize).expect("a page size from the bitmap")
    }

    /// Records an overlapping map under the table's policy.
    pub(crate) fn note_overlap(&self) {
        if self.opts.overlap == OverlapPolicy::Warn {
            // Relaxed: a statistic.
            self.overlaps.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "log")]
            log::warn!("iopt: map over an existing mapping (a caller bug or race)");
        }
    }

    /// Cleans the entries `span` names in `table` for an incoherent walker (once per
    /// table and operation). Private tables are cleaned whole before they are linked in
    /// instead ([`Self::clean_new_table`]).
    #[inline]
    pub(super) fn clean_span(&self, table: NonNull<u8>, span: &CleanSpan) {
        if !self.opts.coherent_walk && span.lo < span.hi {
            // SAFETY: `lo..hi` are entry indices inside `table`.
            let p = unsafe { table.add(span.lo << F::ENTRY_LG2) };
            self.mem.clean(p, (span.hi - span.lo) << F::ENTRY_LG2);
        }
    }

    /// Cleans a whole private table before it is linked in (incoherent walkers).
    #[inline]
    pub(super) fn clean_new_table(&self, table: NonNull<u8>, bytes_lg2: u32) {
        if !self.opts.coherent_walk {
            self.mem.clean(table, 1 << bytes_lg2);
        }
    }

    /// A new zeroed table for a map: from the reservation when there is one.
    pub(super) fn new_table(
        &self,
        bytes_lg2: u32,
        pool: &mut Option<&mut Reservation>,
    ) -> Result<NonNull<u8>> {
        match pool {
            Some(pool) => pool.take(bytes_lg2).ok_or(Error::ReservationExhausted),
            None => self.alloc_table(bytes_lg2),
        }
    }

    /// The format of this table.
    pub fn format(&self) -> &F {
        &self.fmt
    }

    /// The table memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The flush operations.
    pub fn flush_ops(&self) -> &X {
        &self.ops
    }

    /// Table-memory counters.
    pub fn mem_stats(&self) -> MemStats {
        self.mem.stats()
    }

    /// Levels, page sizes, aperture, root and configuration words (Linux's `get_info`).
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::x86_64::{X86_64, X86_64Config};
    /// use iopt::mem::HeapMemory;
    /// let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
    /// let info = pt.info();
    /// assert_eq!(info.pgsize_bitmap, (1 << 12) | (1 << 21) | (1 << 30)); // 4K, 2M, 1G
    /// assert_eq!(info.aperture.last, (1 << 47) - 1); // the lower half of a sign-extended space
    /// assert_eq!(info.hw.get("CR3"), Some(info.root_pa)); // what the driver programs
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn info(&self) -> Info {
        let (root, top) = self.top();
        let root_pa = self.mem.virt_to_phys(root);
        Info {
            pgsize_bitmap: self.pgsize_bitmap,
            aperture: self.aperture(self.fmt.max_levels() - 1),
            levels: top + 1,
            max_levels: self.fmt.max_levels(),
            oa_bits: self.fmt.oa_bits(),
            root_pa,
            hw: self
                .fmt
                .hw_words_tracking(root_pa, top, self.dirty_tracking()),
        }
    }

    /// Allocates a zeroed table of `2^bytes_lg2` bytes that the format can point to.
    pub(super) fn alloc_table(&self, bytes_lg2: u32) -> Result<NonNull<u8>> {
        let t = self.mem.alloc(bytes_lg2).ok_or(Error::OutOfMemory)?;
        let pa = self.mem.virt_to_phys(t);
        let bits = self.fmt.table_pa_bits();
        if pa
            .checked_add((1 << bytes_lg2) - 1)
            .is_none_or(|end| end & !mask_lg2(bits) != 0)
        {
            // SAFETY: just allocated, never used.
            unsafe { self.mem.free(t, bytes_lg2) };
            return Err(Error::TableOutOfReach { pa, bits });
        }
        Ok(t)
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> Drop for PageTable<F, M, X> {
    fn drop(&mut self) {
        if self.top.load(Ordering::Acquire).is_null() {
            return; // `new` failed before the top table existed
        }
        let (root, top) = self.top();
        // SAFETY: `&mut self`: no operation runs; the owner has stopped the hardware
        // (documented on the type); every table is reachable from the root.
        unsafe { self.free_tree(top, root, self.entries_lg2(top, top), None) };
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> core::fmt::Debug for PageTable<F, M, X> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (root, top) = self.top();
        f.debug_struct("PageTable")
            .field("format", &F::NAME)
            .field("levels", &(top + 1))
            .field("root_pa", &self.mem.virt_to_phys(root))
            .finish()
    }
}
