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
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use crate::flush::FlushOps;
use crate::format::{Format, HwWords, Pte, VaMode};
use crate::gather::{DetachedTable, Gather};
use crate::mem::{MemStats, TableMemory};
use crate::{Error, Prot, Result};

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
    top: AtomicPtr<u8>,
    grow_lock: spin::Mutex<()>,
    pgsize_bitmap: u64,
    id: u64,
}

// SAFETY: the table pages are reached only through atomics; `F`, `M` and `X` are
// `Send + Sync` by their trait bounds; the raw pointer in `top` is an address owned by
// this table.
unsafe impl<F: Format, M: TableMemory, X: FlushOps> Send for PageTable<F, M, X> {}
// SAFETY: as above; concurrent use follows the range-exclusivity rules of the unsafe API.
unsafe impl<F: Format, M: TableMemory, X: FlushOps> Sync for PageTable<F, M, X> {}

const LEVEL_MASK: usize = 7;

/// Progress of a map walk.
struct MapState {
    iova: u64,
    pa: u64,
    remaining: u64,
    leaf_level: u32,
    run_lg2: u32,
    prot: Prot,
}

/// Progress of an unmap walk.
struct UnmapState<'g> {
    iova: u64,
    start: u64,
    last: u64,
    done: bool,
    unmapped: u64,
    skip_holes: bool,
    gather: &'g mut Gather,
}

impl UnmapState<'_> {
    /// Moves to `next` (the IOVA after something handled), noting the end of the range.
    #[inline]
    fn advance_to(&mut self, next: u64) {
        if next == 0 || next > self.last {
            self.done = true;
        } else {
            self.iova = next;
        }
    }
}

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
    pub fn new(fmt: F, mem: M, ops: X) -> Result<Self> {
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
        let t = PageTable {
            fmt,
            mem,
            ops,
            top: AtomicPtr::new(core::ptr::null_mut()),
            grow_lock: spin::Mutex::new(()),
            pgsize_bitmap,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        };
        let root = t.alloc_table(t.table_bytes_lg2(top, top))?;
        t.top.store(Self::tag(root, top), Ordering::Release);
        Ok(t)
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
    fn aperture(&self, top: u32) -> Aperture {
        let va = self.fmt.va_bits(top);
        match self.fmt.va_mode() {
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
    fn top(&self) -> (NonNull<u8>, u32) {
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
    fn tag(root: NonNull<u8>, top: u32) -> *mut u8 {
        root.as_ptr().map_addr(|a| a | top as usize)
    }

    /// log2 of the number of entries of the table at `level` when the top is at `top`.
    #[inline]
    fn entries_lg2(&self, level: u32, top: u32) -> u32 {
        if level == top {
            self.fmt.va_bits(top) - self.fmt.item_lg2(top)
        } else {
            self.fmt.table_lg2(level)
        }
    }

    #[inline]
    fn table_bytes_lg2(&self, level: u32, top: u32) -> u32 {
        (self.entries_lg2(level, top) + F::ENTRY_LG2).max(self.fmt.min_table_bytes_lg2())
    }

    /// Reads entry `i` of `table`.
    ///
    /// # Safety
    /// `table` is a live table of this page table with more than `i` entries.
    #[inline(always)]
    unsafe fn load(table: NonNull<u8>, i: usize) -> u64 {
        // Acquire: an entry may point to a table another thread just linked with a
        // Release compare-and-swap; its contents must be visible before we descend.
        if F::ENTRY_LG2 == 3 {
            // SAFETY: in bounds by the caller's guarantee; tables are aligned to their
            // size, so entry `i` is 8-byte aligned; table memory is only accessed
            // atomically while the table is live.
            unsafe { (*table.as_ptr().cast::<AtomicU64>().add(i)).load(Ordering::Acquire) }
        } else {
            // SAFETY: as above, for 4-byte entries.
            unsafe { (*table.as_ptr().cast::<AtomicU32>().add(i)).load(Ordering::Acquire) as u64 }
        }
    }

    /// Writes entry `i` of `table`.
    ///
    /// # Safety
    /// As for [`Self::load`], and the caller owns the IOVA range of the entry.
    #[inline(always)]
    unsafe fn store(table: NonNull<u8>, i: usize, v: u64) {
        // Release: a new entry must not become visible before the writes that prepared
        // what it points to.
        if F::ENTRY_LG2 == 3 {
            // SAFETY: see `load`.
            unsafe { (*table.as_ptr().cast::<AtomicU64>().add(i)).store(v, Ordering::Release) }
        } else {
            // SAFETY: see `load`; 32-bit formats only produce 32-bit entries.
            unsafe {
                (*table.as_ptr().cast::<AtomicU32>().add(i)).store(v as u32, Ordering::Release)
            }
        }
    }

    /// Compare-and-swap of entry `i`: installs `new` if the entry still holds `old`.
    ///
    /// # Safety
    /// As for [`Self::load`].
    #[inline(always)]
    unsafe fn cas(table: NonNull<u8>, i: usize, old: u64, new: u64) -> bool {
        // AcqRel on success: publishes the new table's contents (Release) and orders
        // later accesses; Acquire on failure: we descend into the winner's table next.
        if F::ENTRY_LG2 == 3 {
            // SAFETY: see `load`.
            unsafe {
                (*table.as_ptr().cast::<AtomicU64>().add(i))
                    .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            }
        } else {
            // SAFETY: see `load`.
            unsafe {
                (*table.as_ptr().cast::<AtomicU32>().add(i))
                    .compare_exchange(old as u32, new as u32, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            }
        }
    }

    /// Allocates a zeroed table of `2^bytes_lg2` bytes that the format can point to.
    fn alloc_table(&self, bytes_lg2: u32) -> Result<NonNull<u8>> {
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
    fn leaf_for(&self, pgsize: u64) -> Option<(u32, u32)> {
        if !pgsize.is_power_of_two() || self.pgsize_bitmap & pgsize == 0 {
            return None;
        }
        let lg2 = pgsize.trailing_zeros();
        (0..self.fmt.max_levels()).rev().find_map(|level| {
            let item = self.fmt.item_lg2(level);
            let c = lg2.checked_sub(item)?;
            (c < 32 && self.fmt.leaf_runs(level) & (1 << c) != 0).then_some((level, c))
        })
    }

    /// Checks the arguments shared by map and unmap; returns the last IOVA.
    fn check_range(&self, iova: u64, pgsize: u64, pgcount: usize) -> Result<(u64, u64)> {
        if pgcount == 0 {
            return Err(Error::ZeroLength);
        }
        if !pgsize.is_power_of_two() || self.pgsize_bitmap & pgsize == 0 {
            return Err(Error::BadPageSize(pgsize));
        }
        if iova & (pgsize - 1) != 0 {
            return Err(Error::UnalignedIova { iova, pgsize });
        }
        let len = pgsize.checked_mul(pgcount as u64).ok_or(Error::Overflow)?;
        let last = iova.checked_add(len - 1).ok_or(Error::Overflow)?;
        if !self
            .aperture(self.fmt.max_levels() - 1)
            .contains(iova, last)
        {
            return Err(Error::OutOfAperture { iova, last });
        }
        Ok((len, last))
    }

    /// Maps `pgcount` pages of `pgsize` bytes at `iova` to the physical range starting at
    /// `paddr`, with permissions `prot` (Linux's `map_pages`).
    ///
    /// Returns how many bytes were mapped and whether it failed. The four outcomes:
    /// `(len, Ok)` everything mapped; `(n < len, Ok)` cannot happen here (one call maps
    /// the whole request) but callers written for io-pgtable may loop; `(n > 0, Err)` a
    /// prefix of `n` bytes is mapped and the caller must unmap it; `(0, Err)` nothing
    /// changed. `(0, Ok)` never happens.
    ///
    /// Errors: [`Error::NoAccess`], [`Error::ZeroLength`], [`Error::BadPageSize`],
    /// [`Error::UnalignedIova`], [`Error::UnalignedPaddr`], [`Error::Overflow`],
    /// [`Error::OutOfAperture`], [`Error::PaddrTooLarge`] (all before any change);
    /// [`Error::AddressInUse`] when something is already mapped in the range (nothing is
    /// changed for that part), [`Error::OutOfMemory`].
    ///
    /// # Safety
    /// - The caller holds the IOVA range `[iova, iova + pgsize * pgcount)` exclusively:
    ///   no other map, unmap or lookup on an overlapping range runs at the same time.
    /// - The range is not already mapped (an overlap is detected and reported, but is a
    ///   usage error of this API).
    /// - If the table is live (hardware walks it), the physical range stays valid for
    ///   device access for as long as it is mapped.
    #[must_use = "the mapped length and the error must both be handled"]
    pub unsafe fn map_pages(
        &self,
        iova: u64,
        paddr: u64,
        pgsize: u64,
        pgcount: usize,
        prot: Prot,
    ) -> (u64, Result<()>) {
        match self.check_map(iova, paddr, pgsize, pgcount, prot) {
            Err(e) => (0, Err(e)),
            Ok((len, last, leaf_level, run_lg2)) => {
                let mut st = MapState {
                    iova,
                    pa: paddr,
                    remaining: len,
                    leaf_level,
                    run_lg2,
                    prot,
                };
                // SAFETY: the caller's guarantees are passed on.
                let r = unsafe { self.map_grow(&mut st, last) };
                (len - st.remaining, r)
            }
        }
    }

    fn check_map(
        &self,
        iova: u64,
        paddr: u64,
        pgsize: u64,
        pgcount: usize,
        prot: Prot,
    ) -> Result<(u64, u64, u32, u32)> {
        if !prot.has_access() {
            return Err(Error::NoAccess);
        }
        let (len, last) = self.check_range(iova, pgsize, pgcount)?;
        if paddr & (pgsize - 1) != 0 {
            return Err(Error::UnalignedPaddr { paddr, pgsize });
        }
        let pa_last = paddr.checked_add(len - 1).ok_or(Error::Overflow)?;
        let oa_bits = self.fmt.oa_bits();
        if pa_last & !mask_lg2(oa_bits) != 0 {
            return Err(Error::PaddrTooLarge {
                last: pa_last,
                oa_bits,
            });
        }
        let (level, run) = self.leaf_for(pgsize).ok_or(Error::BadPageSize(pgsize))?;
        Ok((len, last, level, run))
    }

    /// Maps what `st` describes, growing the top first where the format allows it.
    ///
    /// # Safety
    /// As for [`Self::map_pages`].
    unsafe fn map_grow(&self, st: &mut MapState, last: u64) -> Result<()> {
        loop {
            let (root, top) = self.top();
            let ap = self.aperture(top);
            if st.leaf_level <= top && ap.contains(st.iova, last) {
                // SAFETY: the caller owns the range; `root` is the live top table.
                return unsafe { self.map_level(top, top, root, st) };
            }
            // Only formats with a dynamic top get here (the full aperture was checked).
            // First the part that fits below the current top.
            if st.leaf_level <= top && st.iova <= ap.last {
                let mut part = MapState {
                    remaining: ap.last - st.iova + 1,
                    ..*st
                };
                // SAFETY: as above.
                let r = unsafe { self.map_level(top, top, root, &mut part) };
                let done = ap.last - st.iova + 1 - part.remaining;
                st.iova = st.iova.wrapping_add(done);
                st.pa += done;
                st.remaining -= done;
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
        st: &mut MapState,
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
            let t = match self.alloc_table(self.table_bytes_lg2(level, new_top)) {
                Ok(t) => t,
                Err(e) => {
                    if let Some(bottom) = chain_bottom {
                        // SAFETY: the chain is private; unlink the old root before freeing.
                        unsafe { self.discard_chain(bottom, below, level - 1, new_top) };
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
            if unsafe {
                self.subtree_has_leaf(old_top, old_root, self.entries_lg2(old_top, old_top))
            } {
                // SAFETY: never published.
                unsafe { self.discard_chain(bottom, new_root, new_top, new_top) };
                return Err(Error::AddressInUse(st.iova));
            }
            // The mapping's leaves sit above the old root (a page larger than the old
            // table spans): publish the new levels first, then map through the normal
            // path, which may replace the old, empty root by a leaf after a walk flush.
            let guard = self.grow_lock.lock();
            let (cur, cur_top) = self.top();
            if cur == old_root && cur_top == old_top {
                self.ops
                    .top_changed(self.mem.virt_to_phys(new_root), new_top + 1);
                self.top
                    .store(Self::tag(new_root, new_top), Ordering::Release);
            } else {
                drop(guard);
                // SAFETY: never published.
                unsafe { self.discard_chain(bottom, new_root, new_top, new_top) };
            }
            return Ok(false);
        }
        let before = st.remaining;
        // SAFETY: writes go to the private chain (the range lies above the old top's
        // aperture, so it never enters the old root) and to tables hanging off it.
        let r = unsafe { self.map_level(new_top, new_top, new_root, st) };
        if st.remaining == before {
            // SAFETY: nothing was mapped; the chain was never published.
            unsafe { self.discard_chain(bottom, new_root, new_top, new_top) };
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
            unsafe { self.discard_chain(bottom, new_root, new_top, new_top) };
            return Ok(false);
        }
        self.ops
            .top_changed(self.mem.virt_to_phys(new_root), new_top + 1);
        self.top
            .store(Self::tag(new_root, new_top), Ordering::Release);
        drop(guard);
        r.map(|()| true)
    }

    /// Frees a private chain of new top levels (and everything mapped under it) while
    /// keeping the old root it links at index 0 of `bottom`.
    ///
    /// # Safety
    /// The chain from `root` (at `level`, tables sized for a top at `top`) down to
    /// `bottom` was never published.
    unsafe fn discard_chain(&self, bottom: NonNull<u8>, root: NonNull<u8>, level: u32, top: u32) {
        // SAFETY: `bottom` is private; unlinking the old root keeps it out of the free.
        unsafe {
            Self::store(bottom, 0, 0);
            self.free_tree(level, root, self.entries_lg2(level, top));
        }
    }

    /// Maps the part of `st` that falls in `table` (at `level`) and below.
    ///
    /// # Safety
    /// `table` is a live table at `level` of this page table (top at `top`), or a private
    /// one about to be linked there; the caller owns the IOVA range.
    unsafe fn map_level(
        &self,
        level: u32,
        top: u32,
        table: NonNull<u8>,
        st: &mut MapState,
    ) -> Result<()> {
        let fmt = &self.fmt;
        let n = 1usize << self.entries_lg2(level, top);
        let item_lg2 = fmt.item_lg2(level);
        let mut idx = (st.iova >> item_lg2) as usize & (n - 1);
        if level == st.leaf_level {
            let run = 1usize << st.run_lg2;
            let size = 1u64 << (item_lg2 + st.run_lg2);
            let step = fmt.run_step(level, st.run_lg2);
            while st.remaining != 0 && idx < n {
                // Check every slot of the run before writing any.
                let mut leftover_tables = false;
                for i in 0..run {
                    // SAFETY: runs are aligned and never cross a table (the format's
                    // run sizes divide the table), so idx + i < n.
                    let e = unsafe { Self::load(table, idx + i) };
                    match fmt.decode(level, e) {
                        Pte::Empty => {}
                        Pte::Leaf { .. } => {
                            return Err(Error::AddressInUse(st.iova + ((i as u64) << item_lg2)));
                        }
                        Pte::Table { pa } => {
                            let used = level == 0 || {
                                // SAFETY: a linked table below a table we walk is live.
                                unsafe {
                                    self.subtree_has_leaf(
                                        level - 1,
                                        self.mem.phys_to_virt(pa),
                                        self.fmt.table_lg2(level - 1),
                                    )
                                }
                            };
                            if used {
                                return Err(Error::AddressInUse(
                                    st.iova + ((i as u64) << item_lg2),
                                ));
                            }
                            leftover_tables = true;
                        }
                    }
                }
                if leftover_tables {
                    // Empty tables left by earlier partial unmaps: detach, invalidate the
                    // walk caches for them, free, then write the leaf (break-before-make).
                    for i in 0..run {
                        // SAFETY: as above.
                        let e = unsafe { Self::load(table, idx + i) };
                        if let Pte::Table { pa } = fmt.decode(level, e) {
                            let slot = st.iova + ((i as u64) << item_lg2);
                            // SAFETY: the caller owns the slot's range; the subtree holds
                            // no leaf; after the walk flush nothing references it.
                            unsafe {
                                Self::store(table, idx + i, 0);
                                self.ops.flush_walk(
                                    slot,
                                    1 << item_lg2,
                                    1 << fmt.item_lg2(level - 1),
                                );
                                self.free_tree(
                                    level - 1,
                                    self.mem.phys_to_virt(pa),
                                    fmt.table_lg2(level - 1),
                                );
                            }
                        }
                    }
                }
                let first = fmt.make_leaf(level, st.pa, st.run_lg2, st.prot);
                for i in 0..run {
                    // SAFETY: as above.
                    unsafe {
                        Self::store(
                            table,
                            idx + i,
                            first.wrapping_add(step.wrapping_mul(i as u64)),
                        )
                    };
                }
                st.iova = st.iova.wrapping_add(size);
                st.pa = st.pa.wrapping_add(size);
                st.remaining -= size;
                idx += run;
            }
            return Ok(());
        }
        while st.remaining != 0 && idx < n {
            // SAFETY: idx < n.
            let e = unsafe { Self::load(table, idx) };
            match fmt.decode(level, e) {
                Pte::Leaf { .. } => return Err(Error::AddressInUse(st.iova)),
                Pte::Table { pa } => {
                    // SAFETY: linked tables are live; the range is the caller's.
                    unsafe { self.map_level(level - 1, top, self.mem.phys_to_virt(pa), st)? };
                }
                Pte::Empty => {
                    let child_lg2 = self.table_bytes_lg2(level - 1, top);
                    let child = self.alloc_table(child_lg2)?;
                    let saved = (st.iova, st.pa, st.remaining);
                    // SAFETY: `child` is private, zeroed, sized for level - 1.
                    let r = unsafe { self.map_level(level - 1, top, child, st) };
                    if st.remaining == saved.2 {
                        // SAFETY: never linked.
                        unsafe { self.free_tree(level - 1, child, fmt.table_lg2(level - 1)) };
                        return r;
                    }
                    let link = fmt.make_table(level, self.mem.virt_to_phys(child));
                    // SAFETY: idx < n; `e` is the value we saw.
                    if unsafe { Self::cas(table, idx, e, link) } {
                        r?;
                    } else {
                        // Lost the race: another thread linked a table here. Drop ours
                        // (never visible) and redo this part through the winner's.
                        // SAFETY: never linked.
                        unsafe { self.free_tree(level - 1, child, fmt.table_lg2(level - 1)) };
                        (st.iova, st.pa, st.remaining) = saved;
                        continue;
                    }
                }
            }
            idx += 1;
        }
        Ok(())
    }

    /// True if any leaf is reachable from `table` (at `level`, with `2^entries_lg2` entries).
    ///
    /// # Safety
    /// `table` is a live or private table at `level`.
    unsafe fn subtree_has_leaf(&self, level: u32, table: NonNull<u8>, entries_lg2: u32) -> bool {
        let n = 1usize << entries_lg2;
        (0..n).any(|i| {
            // SAFETY: i < n.
            let e = unsafe { Self::load(table, i) };
            match self.fmt.decode(level, e) {
                Pte::Empty => false,
                Pte::Leaf { .. } => true,
                Pte::Table { pa } => {
                    level > 0 && {
                        // SAFETY: linked tables are live.
                        unsafe {
                            self.subtree_has_leaf(
                                level - 1,
                                self.mem.phys_to_virt(pa),
                                self.fmt.table_lg2(level - 1),
                            )
                        }
                    }
                }
            }
        })
    }

    /// Frees `table` (at `level`, with `2^entries_lg2` entries) and every table below it.
    ///
    /// # Safety
    /// Nothing (software or hardware) will access these tables again.
    unsafe fn free_tree(&self, level: u32, table: NonNull<u8>, entries_lg2: u32) {
        if level > 0 {
            for i in 0..1usize << entries_lg2 {
                // SAFETY: in bounds.
                let e = unsafe { Self::load(table, i) };
                if let Pte::Table { pa } = self.fmt.decode(level, e) {
                    // SAFETY: the caller's guarantee covers the whole subtree.
                    unsafe {
                        self.free_tree(
                            level - 1,
                            self.mem.phys_to_virt(pa),
                            self.fmt.table_lg2(level - 1),
                        )
                    };
                }
            }
        }
        let bytes_lg2 = (entries_lg2 + F::ENTRY_LG2).max(self.fmt.min_table_bytes_lg2());
        // SAFETY: allocated with this size (sizes depend only on level and top-ness).
        unsafe { self.mem.free(table, bytes_lg2) };
    }

    /// Unmaps `pgsize * pgcount` bytes at `iova`: one or more consecutive mappings
    /// (Linux's `unmap_pages`).
    ///
    /// Returns how many bytes were unmapped and whether it stopped early:
    /// - a range that *ends* inside a large or contiguous mapping removes the whole
    ///   mapping, and the count includes all of it (it can exceed the request);
    /// - a range that *starts* inside one is refused: [`Error::WouldSplit`], nothing
    ///   changed;
    /// - unmap stops at the first hole: [`Error::NotMapped`] with the hole's IOVA, after
    ///   the bytes before it were unmapped (as Linux's generic page table does);
    /// - argument errors as for map, before any change.
    ///
    /// Tables whose whole span lies in the range are detached into `gather`; call
    /// [`Self::sync`] to invalidate and free them. Tables emptied by partial unmaps stay
    /// linked (as in Linux) and are reused or replaced by later maps.
    ///
    /// # Safety
    /// The caller holds the IOVA range exclusively (see [`Self::map_pages`]), and treats
    /// the range as still reachable by hardware until the gather is synced.
    #[must_use = "the unmapped length and the error must both be handled"]
    pub unsafe fn unmap_pages(
        &self,
        iova: u64,
        pgsize: u64,
        pgcount: usize,
        gather: &mut Gather,
    ) -> (u64, Result<()>) {
        match self.check_range(iova, pgsize, pgcount) {
            Err(e) => (0, Err(e)),
            // SAFETY: the caller's guarantees are passed on.
            Ok((_, last)) => unsafe { self.unmap_inner(iova, last, false, gather) },
        }
    }

    /// Unmaps everything mapped in `[iova, iova + len)`, skipping holes (the safe layer's
    /// primitive). Refuses to start inside a mapping ([`Error::WouldSplit`]); a mapping
    /// crossing the end is removed whole. `len` need not be a page multiple... but a
    /// range that is not aligned to the smallest page size is refused.
    ///
    /// # Safety
    /// As for [`Self::unmap_pages`].
    #[must_use = "the unmapped length and the error must both be handled"]
    pub unsafe fn unmap_range(
        &self,
        iova: u64,
        len: u64,
        gather: &mut Gather,
    ) -> (u64, Result<()>) {
        let min_page = 1u64 << self.pgsize_bitmap.trailing_zeros();
        if len == 0 {
            return (0, Err(Error::ZeroLength));
        }
        if !len.is_multiple_of(min_page) {
            return (0, Err(Error::BadPageSize(len)));
        }
        if !iova.is_multiple_of(min_page) {
            return (
                0,
                Err(Error::UnalignedIova {
                    iova,
                    pgsize: min_page,
                }),
            );
        }
        let Some(last) = iova.checked_add(len - 1) else {
            return (0, Err(Error::Overflow));
        };
        if !self
            .aperture(self.fmt.max_levels() - 1)
            .contains(iova, last)
        {
            return (0, Err(Error::OutOfAperture { iova, last }));
        }
        // SAFETY: as the caller guarantees.
        unsafe { self.unmap_inner(iova, last, true, gather) }
    }

    /// # Safety
    /// As for [`Self::unmap_pages`]; `iova ..= last` lies in the full aperture.
    unsafe fn unmap_inner(
        &self,
        iova: u64,
        last: u64,
        skip_holes: bool,
        gather: &mut Gather,
    ) -> (u64, Result<()>) {
        gather.bind(self.id);
        let (root, top) = self.top();
        let ap = self.aperture(top);
        // With a dynamic top, part of the range may lie above the current top: nothing is
        // mapped there.
        let (cur_last, beyond) = if ap.contains(iova, last) {
            (last, false)
        } else if ap.contains(iova, iova) {
            (ap.last, true)
        } else {
            return if skip_holes {
                (0, Ok(()))
            } else {
                (0, Err(Error::NotMapped(iova)))
            };
        };
        let mut st = UnmapState {
            iova,
            start: iova,
            last: cur_last,
            done: false,
            unmapped: 0,
            skip_holes,
            gather,
        };
        // SAFETY: the caller owns the range; `root` is live.
        let r = unsafe { self.unmap_level(top, top, root, &mut st) };
        let r = match r {
            Ok(()) if beyond && !skip_holes => Err(Error::NotMapped(cur_last.wrapping_add(1))),
            r => r,
        };
        match r {
            Err(Error::NotMapped(_)) if st.unmapped == 0 && !skip_holes => (0, r),
            r => (st.unmapped, r),
        }
    }

    /// # Safety
    /// `table` is live at `level`; the caller owns `st`'s range.
    unsafe fn unmap_level(
        &self,
        level: u32,
        top: u32,
        table: NonNull<u8>,
        st: &mut UnmapState<'_>,
    ) -> Result<()> {
        let fmt = &self.fmt;
        let n = 1usize << self.entries_lg2(level, top);
        let item_lg2 = fmt.item_lg2(level);
        let item = 1u64 << item_lg2;
        let mut idx = (st.iova >> item_lg2) as usize & (n - 1);
        while !st.done && idx < n {
            // SAFETY: idx < n.
            let e = unsafe { Self::load(table, idx) };
            let slot = st.iova & !(item - 1);
            match fmt.decode(level, e) {
                Pte::Empty => {
                    if !st.skip_holes {
                        return Err(Error::NotMapped(st.iova));
                    }
                    st.advance_to(slot.wrapping_add(item));
                    idx += 1;
                }
                Pte::Leaf { run_lg2, .. } => {
                    let size = item << run_lg2;
                    let base = st.iova & !(size - 1);
                    if base < st.start {
                        return Err(Error::WouldSplit { base, size });
                    }
                    let first = idx & !((1usize << run_lg2) - 1);
                    for i in 0..1usize << run_lg2 {
                        // SAFETY: runs never cross a table; the range is the caller's.
                        unsafe { Self::store(table, first + i, 0) };
                    }
                    st.unmapped += size;
                    st.gather.add_range(base, size, item);
                    st.advance_to(base.wrapping_add(size));
                    idx = first + (1 << run_lg2);
                }
                Pte::Table { pa } => {
                    let child = self.mem.phys_to_virt(pa);
                    let covered = slot >= st.start && slot.wrapping_add(item - 1) <= st.last;
                    // SAFETY: linked tables are live; the range is the caller's.
                    unsafe { self.unmap_level(level - 1, top, child, st)? };
                    if covered && st.gather.can_hold_table() {
                        // SAFETY: the whole span is ours; the detached table is freed
                        // only after the gather's flush.
                        unsafe { Self::store(table, idx, 0) };
                        st.gather.push_table(DetachedTable {
                            ptr: child,
                            size_lg2: self.table_bytes_lg2(level - 1, top),
                        });
                        st.gather
                            .add_range(slot, item, 1 << fmt.item_lg2(level - 1));
                    }
                    idx += 1;
                }
            }
        }
        Ok(())
    }

    /// Invalidates the gathered range through the flush operations, then frees the
    /// gathered table pages (the end of an unmap in Linux's terms: `iotlb_sync`).
    ///
    /// # Panics
    /// If `gather` was filled by another table.
    pub fn sync(&self, gather: &mut Gather) {
        if gather.is_empty() {
            return;
        }
        assert_eq!(
            gather.owner(),
            self.id,
            "Gather synced on a different table"
        );
        if let Some((start, last)) = gather.range() {
            self.ops.flush_walk(
                start,
                last.wrapping_sub(start).wrapping_add(1),
                gather.granule(),
            );
        }
        gather.clear_range();
        while let Some(t) = gather.pop_table() {
            // SAFETY: detached by this table's unmap; the flush above ended the
            // hardware's last references; nothing else holds it.
            unsafe { self.mem.free(t.ptr, t.size_lg2) };
        }
    }

    /// The physical address `iova` translates to, or `None` (Linux's `iova_to_phys`).
    ///
    /// # Safety
    /// No map or unmap of a range containing `iova` runs at the same time.
    pub unsafe fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        // SAFETY: as the caller guarantees.
        unsafe { self.translate(iova) }.map(|t| t.pa)
    }

    /// Translates `iova`: its physical address, and the base, size and permissions of
    /// the mapping around it.
    ///
    /// # Safety
    /// As for [`Self::iova_to_phys`].
    pub unsafe fn translate(&self, iova: u64) -> Option<Translation> {
        let (mut table, top) = self.top();
        if !self.aperture(top).contains(iova, iova) {
            return None;
        }
        let mut level = top;
        loop {
            let n = 1usize << self.entries_lg2(level, top);
            let item_lg2 = self.fmt.item_lg2(level);
            let idx = (iova >> item_lg2) as usize & (n - 1);
            // SAFETY: idx < n; `table` is live (top, or linked below a live table).
            let e = unsafe { Self::load(table, idx) };
            match self.fmt.decode(level, e) {
                Pte::Empty => return None,
                Pte::Table { pa } => {
                    if level == 0 {
                        return None;
                    }
                    table = self.mem.phys_to_virt(pa);
                    level -= 1;
                }
                Pte::Leaf { pa, run_lg2 } => {
                    let size = 1u64 << (item_lg2 + run_lg2);
                    let off = iova & (size - 1);
                    return Some(Translation {
                        pa: pa + off,
                        iova_base: iova - off,
                        size,
                        prot: self.fmt.leaf_prot(level, e),
                        level,
                    });
                }
            }
        }
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
        unsafe { self.free_tree(top, root, self.entries_lg2(top, top)) };
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
