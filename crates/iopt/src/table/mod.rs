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
use core::sync::atomic::{AtomicU64, Ordering};

// Entries, the top pointer and the growth lock: loom's under `cfg(loom)` (src/sync.rs).
use crate::sync;

use crate::flush::FlushOps;
use crate::format::{Format, HwWords, Pte, VaMode};
use crate::gather::{DetachedTable, Gather};
use crate::mem::{MemStats, TableMemory};
use crate::reserve::Reservation;
use crate::{Error, Prot, Result};

use cursor::CleanSpan;

pub use dirty::DirtyFlags;
pub(crate) use plan::Plan;
pub use plan::TableCounts;

mod auto;
mod check;
mod cursor;
mod dirty;
mod grow;
mod map;
mod plan;
mod unmap;
mod walk;

/// The IOVA ranges a table translates (inclusive bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aperture {
    /// First IOVA of the (lower) range.
    pub start: u64,
    /// Last IOVA of the (lower) range.
    pub last: u64,
    /// For sign-extended formats, the upper range `(first, last)`.
    pub upper: Option<(u64, u64)>,
}

impl Aperture {
    /// True if the whole of `first ..= last` lies inside one range of the aperture.
    pub fn contains(&self, first: u64, last: u64) -> bool {
        let inside = |s: u64, l: u64| s <= first && first <= last && last <= l;
        inside(self.start, self.last) || self.upper.is_some_and(|(s, l)| inside(s, l))
    }
}

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
    geo: Geometry,
}

/// The format's geometry, computed once so that the hot paths read small arrays instead
/// of re-deriving shifts and masks from the configuration.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    /// log2 of the span of one entry, per level.
    item_lg2: [u32; 8],
    /// log2 of the entry count of a table at this level that is not the top.
    inner_lg2: [u32; 8],
    /// log2 of the entry count of a table at this level when it is the top.
    top_lg2: [u32; 8],
    /// `(level << 5 | run) + 1` for a page of `2^n` bytes, 0 if not supported.
    leaf_by_lg2: [u8; 64],
    /// The aperture at the largest top.
    max_aperture: Aperture,
    /// Whether the top can grow.
    growable: bool,
    /// Per top level, the aperture as one contiguous window after a shift: `iova` is
    /// translated iff `(iova + ap_bias[top]) & ap_mask[top] == 0`. The bias moves a
    /// sign-extended or upper-half range down to `0 .. 2^va_bits`, so that each check on
    /// the hot paths is an add, an and and a compare, whatever the mode.
    ap_bias: [u64; 8],
    /// See `ap_bias`.
    ap_mask: [u64; 8],
    /// The largest top level.
    max_top: u32,
}

// SAFETY: the table pages are reached only through atomics; `F`, `M` and `X` are
// `Send + Sync` by their trait bounds; the raw pointer in `top` is an address owned by
// this table.
unsafe impl<F: Format, M: TableMemory, X: FlushOps> Send for PageTable<F, M, X> {}
// SAFETY: as above; concurrent use follows the range-exclusivity rules of the unsafe API.
unsafe impl<F: Format, M: TableMemory, X: FlushOps> Sync for PageTable<F, M, X> {}

const LEVEL_MASK: usize = 7;

#[inline]
fn mask_lg2(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

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
        let levels = fmt.levels();
        if levels == 0 || levels > F::MAX_LEVELS || fmt.max_levels() < levels || F::MAX_LEVELS > 8 {
            return Err(Error::BadConfig("levels out of range for the format"));
        }
        let top = levels - 1;
        let mut pgsize_bitmap = 0u64;
        let max_top = fmt.max_levels() - 1;
        let max_va = fmt.va_bits(max_top);
        for level in 0..=max_top {
            let runs = fmt.leaf_runs(level);
            for c in 0..32 {
                if runs & (1 << c) == 0 {
                    continue;
                }
                let lg2 = fmt.item_lg2(level) + c;
                if lg2 < 64 && lg2 < fmt.oa_bits() && lg2 <= max_va {
                    pgsize_bitmap |= 1 << lg2;
                }
            }
        }
        if fmt.max_levels() > levels {
            for level in 0..max_top {
                let as_top = (fmt.va_bits(level) - fmt.item_lg2(level) + F::ENTRY_LG2)
                    .max(fmt.min_table_bytes_lg2());
                let as_inner = (fmt.table_lg2(level) + F::ENTRY_LG2).max(fmt.min_table_bytes_lg2());
                if as_top != as_inner {
                    return Err(Error::BadConfig(
                        "a growing top needs top tables sized like inner tables",
                    ));
                }
            }
        }
        let mut geo = Geometry {
            item_lg2: [0; 8],
            inner_lg2: [0; 8],
            top_lg2: [0; 8],
            leaf_by_lg2: [0; 64],
            max_aperture: Self::aperture_of(&fmt, max_top),
            growable: fmt.max_levels() > levels,
            ap_bias: [0; 8],
            ap_mask: [u64::MAX; 8],
            max_top,
        };
        for level in 0..=max_top {
            let l = level as usize;
            let va = fmt.va_bits(level);
            geo.ap_mask[l] = !mask_lg2(va);
            geo.ap_bias[l] = match fmt.va_mode() {
                VaMode::Low => 0,
                VaMode::High if va >= 64 => 0,
                VaMode::High => 1 << va,
                VaMode::SignExtended => 1 << (va - 1),
            };
            geo.item_lg2[l] = fmt.item_lg2(level);
            geo.inner_lg2[l] = fmt.table_lg2(level);
            geo.top_lg2[l] = fmt.va_bits(level) - fmt.item_lg2(level);
        }
        for lg2 in 0..64u32 {
            if pgsize_bitmap & (1 << lg2) == 0 {
                continue;
            }
            // The highest level that can hold the size (fewest entries).
            geo.leaf_by_lg2[lg2 as usize] = (0..=max_top)
                .rev()
                .find_map(|level| {
                    let c = lg2.checked_sub(fmt.item_lg2(level))?;
                    (c < 32 && fmt.leaf_runs(level) & (1 << c) != 0)
                        .then_some(((level << 5) | c) as u8 + 1)
                })
                .unwrap_or(0);
        }
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
            hw: self.fmt.hw_words(root_pa, top),
        }
    }

    /// The aperture of the table when its top is at `top`.
    #[inline]
    pub(super) fn aperture(&self, top: u32) -> Aperture {
        if !self.geo.growable {
            return self.geo.max_aperture;
        }
        Self::aperture_of(&self.fmt, top)
    }

    /// True if `iova` lies in the aperture of the table with its top at `top` (the hot
    /// paths' check: shifts instead of range compares).
    #[inline(always)]
    pub(super) fn in_aperture(&self, top: u32, iova: u64) -> bool {
        let t = top as usize & 7;
        iova.wrapping_add(self.geo.ap_bias[t]) & self.geo.ap_mask[t] == 0
    }

    /// The aperture of `fmt` with its top at `top`.
    fn aperture_of(fmt: &F, top: u32) -> Aperture {
        let va = fmt.va_bits(top);
        match fmt.va_mode() {
            VaMode::Low => Aperture {
                start: 0,
                last: mask_lg2(va),
                upper: None,
            },
            VaMode::High => Aperture {
                start: !mask_lg2(va),
                last: u64::MAX,
                upper: None,
            },
            VaMode::SignExtended => Aperture {
                start: 0,
                last: mask_lg2(va - 1),
                upper: Some((!mask_lg2(va - 1), u64::MAX)),
            },
        }
    }

    #[inline]
    pub(super) fn top(&self) -> (NonNull<u8>, u32) {
        // Acquire: pairs with the Release store that published a (new) top, so the top
        // table's contents are visible.
        let v = self.top.load(Ordering::Acquire);
        let p = v.map_addr(|a| a & !LEVEL_MASK);
        // SAFETY: `top` always holds a live, non-null table pointer (set in `new`), and
        // tables are at least 64-byte aligned, so clearing the level bits keeps it.
        (
            unsafe { NonNull::new_unchecked(p) },
            (v.addr() & LEVEL_MASK) as u32,
        )
    }

    /// The top pointer with the top level in its low bits.
    #[inline]
    pub(super) fn tag(root: NonNull<u8>, top: u32) -> *mut u8 {
        root.as_ptr().map_addr(|a| a | top as usize)
    }

    /// log2 of the number of entries of the table at `level` when the top is at `top`.
    #[inline]
    pub(super) fn entries_lg2(&self, level: u32, top: u32) -> u32 {
        if level == top {
            self.geo.top_lg2[level as usize & 7]
        } else {
            self.geo.inner_lg2[level as usize & 7]
        }
    }

    /// log2 of the entry count of a table at `level` that is not the top.
    #[inline]
    pub(super) fn inner_lg2(&self, level: u32) -> u32 {
        self.geo.inner_lg2[level as usize & 7]
    }

    /// log2 of the bytes of a table at `level` that is not the top.
    #[inline]
    pub(super) fn inner_bytes_lg2(&self, level: u32) -> u32 {
        (self.inner_lg2(level) + F::ENTRY_LG2).max(self.fmt.min_table_bytes_lg2())
    }

    /// log2 of the span of one entry at `level`.
    #[inline]
    pub(super) fn item_lg2(&self, level: u32) -> u32 {
        self.geo.item_lg2[level as usize & 7]
    }

    #[inline]
    pub(super) fn table_bytes_lg2(&self, level: u32, top: u32) -> u32 {
        (self.entries_lg2(level, top) + F::ENTRY_LG2).max(self.fmt.min_table_bytes_lg2())
    }

    /// Reads entry `i` of `table`.
    ///
    /// # Safety
    /// `table` is a live table of this page table with more than `i` entries.
    #[inline(always)]
    pub(super) unsafe fn load(table: NonNull<u8>, i: usize) -> u64 {
        // Acquire: an entry may point to a table another thread just linked with a
        // Release compare-and-swap; its contents must be visible before we descend.
        if F::ENTRY_LG2 == 3 {
            // SAFETY: in bounds by the caller's guarantee; tables are aligned to their
            // size, so entry `i` is 8-byte aligned; table memory is only accessed
            // atomically while the table is live.
            unsafe { (*table.as_ptr().cast::<sync::AtomicU64>().add(i)).load(Ordering::Acquire) }
        } else {
            // SAFETY: as above, for 4-byte entries.
            unsafe {
                (*table.as_ptr().cast::<sync::AtomicU32>().add(i)).load(Ordering::Acquire) as u64
            }
        }
    }

    /// Writes entry `i` of `table`.
    ///
    /// # Safety
    /// As for [`Self::load`], and the caller owns the IOVA range of the entry.
    #[inline(always)]
    pub(super) unsafe fn store(table: NonNull<u8>, i: usize, v: u64) {
        // Release: a new entry must not become visible before the writes that prepared
        // what it points to.
        if F::ENTRY_LG2 == 3 {
            // SAFETY: see `load`.
            unsafe {
                (*table.as_ptr().cast::<sync::AtomicU64>().add(i)).store(v, Ordering::Release)
            }
        } else {
            // SAFETY: see `load`; 32-bit formats only produce 32-bit entries.
            unsafe {
                (*table.as_ptr().cast::<sync::AtomicU32>().add(i))
                    .store(v as u32, Ordering::Release)
            }
        }
    }

    /// Compare-and-swap of entry `i`: installs `new` if the entry still holds `old`.
    ///
    /// # Safety
    /// As for [`Self::load`].
    #[inline(always)]
    pub(super) unsafe fn cas(table: NonNull<u8>, i: usize, old: u64, new: u64) -> bool {
        // AcqRel on success: publishes the new table's contents (Release) and orders
        // later accesses; Acquire on failure: we descend into the winner's table next.
        if F::ENTRY_LG2 == 3 {
            // SAFETY: see `load`.
            unsafe {
                (*table.as_ptr().cast::<sync::AtomicU64>().add(i))
                    .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            }
        } else {
            // SAFETY: see `load`.
            unsafe {
                (*table.as_ptr().cast::<sync::AtomicU32>().add(i))
                    .compare_exchange(old as u32, new as u32, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            }
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

    /// The level and run for a page size, if the table can hold it.
    pub(super) fn leaf_for(&self, pgsize: u64) -> Option<(u32, u32)> {
        if !pgsize.is_power_of_two() {
            return None;
        }
        match self.geo.leaf_by_lg2[pgsize.trailing_zeros() as usize] {
            0 => None,
            v => Some(((v - 1) as u32 >> 5, (v - 1) as u32 & 31)),
        }
    }

    /// True if `iova ..= last` (with `iova <= last`) lies in one range of the aperture at
    /// the largest top: shift checks instead of range compares.
    #[inline(always)]
    pub(super) fn in_max_aperture(&self, iova: u64, last: u64) -> bool {
        // After the bias the aperture is one window `0 .. 2^va`: the range lies in it
        // iff its end does and it did not wrap across the window's edge (which is where
        // a sign-extended range would cross the hole between the halves).
        let t = self.geo.max_top as usize & 7;
        let (a, b) = (
            iova.wrapping_add(self.geo.ap_bias[t]),
            last.wrapping_add(self.geo.ap_bias[t]),
        );
        b & self.geo.ap_mask[t] == 0 && a <= b
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
