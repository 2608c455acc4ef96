//! Loom models of the engine's lock-free paths: the table-install race (private build,
//! compare-and-swap, the loser frees its own tables and goes through the winner's) and the
//! growth of a dynamic top (private levels published under the growth lock).
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p iopt --test loom --release`
//! (the CI does, with its own target directory). Under `cfg(loom)` the engine's entry
//! atomics, its top pointer and its growth lock are loom's (`src/sync.rs`), so loom
//! explores the interleavings and the weak-memory outcomes of those accesses.
//!
//! What the models leave out, because it cannot run on loom table memory or is not
//! concurrent:
//! - reservations (`map_pages_reserved`): their free list writes raw words into pages and
//!   `free_tree` zeroes pooled pages with `write_bytes`, which would corrupt loom atomics;
//! - incoherent walkers (`coherent_walk: false`): `clean` gets byte ranges, meaningless
//!   here (the memory below ignores them anyway);
//! - `HeapMemory` and `ArenaMemory` (plain bytes, not loom atomics), and so `image()`;
//! - formats with 4-byte entries (ARMv7s short descriptors): the memory below holds 8-byte
//!   loom atomics only;
//! - the statistics counters (`overlap_warnings`, memory counters) and the table id, which
//!   stay on `core` atomics: they publish nothing.
#![cfg(loom)]

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::Mutex as StdMutex;

use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::{MemStats, TableMemory};
use iopt::{DirtyFlags, FlushOps, Gather, NoFlush, PageTable, Prot, Translation};
use loom::sync::Arc;
use loom::sync::atomic::AtomicU64;

const RW: Prot = Prot::READ.union(Prot::WRITE);
const PAGE: u64 = 4096;

/// Where the fake physical addresses of the loom table memory start.
const PA_BASE: u64 = 0x1000_0000;

/// One live table of [`LoomMemory`].
struct Block {
    /// The entries: real loom atomics, so that the engine's casts to `AtomicU64` are
    /// loom objects.
    slots: Box<[AtomicU64]>,
    size_lg2: u32,
}

#[derive(Default)]
struct MemState {
    /// Live tables by fake physical address.
    live: BTreeMap<u64, Block>,
    /// Fake physical address of each live table, by the address of its first slot.
    by_ptr: BTreeMap<usize, u64>,
    /// Freed tables, kept until the memory is dropped so that a stray access after a free
    /// reads loom atomics rather than freed memory. Their physical addresses are never
    /// reused, so `phys_to_virt` of a freed table panics.
    freed: Vec<Box<[AtomicU64]>>,
    next_pa: u64,
    allocs: u64,
    frees: u64,
    stats: MemStats,
}

/// Table memory for loom: every table is a boxed slice of loom `AtomicU64`s created with
/// `new(0)` (zeroed), with a fake, size-aligned physical address.
///
/// The bookkeeping sits behind a std mutex, invisible to loom: loom runs its threads one
/// at a time and none of them is switched out while holding it (it makes no loom call
/// inside), so it models a thread-safe allocator without adding interleavings.
///
/// Only the fake physical address is aligned to the table size; the host pointer is
/// aligned to 8 bytes, which is all the engine relies on (it tags the top pointer with the
/// level in the low 3 bits and indexes entries from the table pointer).
#[derive(Clone, Default)]
struct LoomMemory(std::sync::Arc<StdMutex<MemState>>);

impl LoomMemory {
    fn new() -> Self {
        let m = LoomMemory::default();
        m.0.lock().unwrap().next_pa = PA_BASE;
        m
    }
    /// (tables allocated, tables freed) so far.
    fn counts(&self) -> (u64, u64) {
        let st = self.0.lock().unwrap();
        (st.allocs, st.frees)
    }
    /// Live tables now.
    fn live(&self) -> usize {
        self.0.lock().unwrap().live.len()
    }
    /// The loom atomic holding the 8-byte word at physical address `pa` of a live table
    /// (for a thread that plays the IOMMU). It stays valid while the memory lives:
    /// freed tables are kept until the memory is dropped.
    fn word(&self, pa: u64) -> *const AtomicU64 {
        let st = self.0.lock().unwrap();
        let (&base, block) = st.live.range(..=pa).next_back().expect("a live table");
        let i = usize::try_from((pa - base) / 8).unwrap();
        &block.slots[i] as *const AtomicU64
    }
}

// SAFETY: each table is a fresh boxed slice of `2^size_lg2 / 8` loom atomics, all zero,
// kept alive (at least) until it is freed; physical addresses are unique, aligned to the
// table size, and map back to the same slice while it is live; the state is behind a
// mutex. Host pointers are only 8-byte aligned, which the engine does not go beyond
// (see the type's documentation): this memory is for the loom models only.
unsafe impl TableMemory for LoomMemory {
    fn alloc(&self, size_lg2: u32) -> Option<NonNull<u8>> {
        assert!(size_lg2 >= 3, "tables of 8-byte entries");
        let n = 1usize << (size_lg2 - 3);
        let slots: Box<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();
        let ptr = NonNull::from(&slots[0]).cast::<u8>();
        let mut st = self.0.lock().unwrap();
        let pa = st.next_pa.next_multiple_of(1 << size_lg2);
        st.next_pa = pa + (1 << size_lg2);
        st.live.insert(pa, Block { slots, size_lg2 });
        st.by_ptr.insert(ptr.as_ptr() as usize, pa);
        st.allocs += 1;
        st.stats.pages += 1;
        st.stats.bytes += 1 << size_lg2;
        st.stats.peak_pages = st.stats.peak_pages.max(st.stats.pages);
        st.stats.peak_bytes = st.stats.peak_bytes.max(st.stats.bytes);
        Some(ptr)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, size_lg2: u32) {
        let mut st = self.0.lock().unwrap();
        let pa = st
            .by_ptr
            .remove(&(ptr.as_ptr() as usize))
            .expect("free of a table that is not live");
        let block = st.live.remove(&pa).expect("live table");
        assert_eq!(block.size_lg2, size_lg2, "freed with another size");
        st.freed.push(block.slots);
        st.frees += 1;
        st.stats.pages -= 1;
        st.stats.bytes -= 1 << size_lg2;
    }

    fn virt_to_phys(&self, ptr: NonNull<u8>) -> u64 {
        *self
            .0
            .lock()
            .unwrap()
            .by_ptr
            .get(&(ptr.as_ptr() as usize))
            .expect("virt_to_phys of a table that is not live")
    }

    fn phys_to_virt(&self, pa: u64) -> NonNull<u8> {
        let st = self.0.lock().unwrap();
        let block = st
            .live
            .get(&pa)
            .expect("phys_to_virt of a table that is not live");
        NonNull::from(&block.slots[0]).cast()
    }

    fn stats(&self) -> MemStats {
        self.0.lock().unwrap().stats
    }
}

/// Records the top changes of a growing table.
#[derive(Default)]
struct TopRecorder {
    tops: StdMutex<Vec<(u64, u32)>>,
}

impl FlushOps for TopRecorder {
    fn flush_all(&self) {}
    fn flush_walk(&self, _iova: u64, _size: u64, _granule: u64) {}
    fn top_changed(&self, root_pa: u64, levels: u32) {
        self.tops.lock().unwrap().push((root_pa, levels));
    }
}

/// Runs a model with a small default preemption bound (2, unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise) and room for the branches of whole-table walks (a 4 KiB table is 512
/// loom atomics: freeing one is 512 loads). Returns the number of executions explored.
fn model<F: Fn() + Sync + Send + 'static>(f: F) -> usize {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    let mut b = loom::model::Builder::new();
    b.max_branches = 1 << 20;
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("explored {n} executions");
    n
}

/// The translation of a 4 KiB page mapped by the models.
fn page(pa: u64, iova: u64) -> Option<(u64, u64, u64, u32)> {
    Some((pa, iova, PAGE, 0))
}

fn brief(t: Option<Translation>) -> Option<(u64, u64, u64, u32)> {
    t.map(|t| (t.pa, t.iova_base, t.size, t.level))
}

fn x86_64_table(mem: &LoomMemory) -> Arc<PageTable<X86_64, LoomMemory, NoFlush>> {
    let fmt = X86_64::new(X86_64Config::default()).unwrap();
    Arc::new(PageTable::new(fmt, mem.clone(), NoFlush).unwrap())
}

/// Model 1: two threads map disjoint 4 KiB pages under the same empty top-level entry, so
/// both build the same three new tables (levels 2, 1, 0) privately and race to link them.
/// The first compare-and-swap to land wins at each level; the loser frees its private
/// subtree and redoes its page through the winner's tables. A third thread translates an
/// unmapped address in the same leaf table meanwhile, as a hardware walk would: it must
/// find initialised tables wherever it descends (loom flags reading a table whose
/// creation it cannot see).
#[test]
fn install_race_x86_64() {
    let n = model(|| {
        let mem = LoomMemory::new();
        let pt = x86_64_table(&mem);
        let (a, b, r) = (pt.clone(), pt.clone(), pt.clone());
        let tr = loom::thread::spawn(move || {
            // SAFETY: nothing maps or unmaps 0x3000.
            unsafe { r.translate(0x3000) }
        });
        let ta = loom::thread::spawn(move || {
            // SAFETY: this thread alone uses [0x1000, 0x2000); no hardware walks the table.
            unsafe { a.map_pages(0x1000, 0xa000, PAGE, 1, RW) }
        });
        let tb = loom::thread::spawn(move || {
            // SAFETY: this thread alone uses [0x2000, 0x3000).
            unsafe { b.map_pages(0x2000, 0xb000, PAGE, 1, RW) }
        });
        assert_eq!(ta.join().unwrap(), (PAGE, Ok(())));
        assert_eq!(tb.join().unwrap(), (PAGE, Ok(())));
        assert_eq!(tr.join().unwrap(), None);
        // SAFETY: both maps are done; nothing else runs.
        unsafe {
            assert_eq!(brief(pt.translate(0x1000)), page(0xa000, 0x1000));
            assert_eq!(brief(pt.translate(0x2000)), page(0xb000, 0x2000));
            assert_eq!(pt.translate(0x3000), None);
        }
        // The root and one table per lower level: the loser's private tables are gone.
        assert_eq!(pt.mem_stats().pages, 4);
        let (allocs, frees) = mem.counts();
        assert_eq!(allocs - frees, 4);
        // Each map built at most three tables.
        assert!(allocs <= 1 + 3 + 3, "{allocs} tables allocated");
        drop(pt);
        assert_eq!(mem.live(), 0, "teardown frees every table");
    });
    assert!(n > 1, "loom explored a single execution");
}

/// Model 2: one thread maps a page while another unmaps a different page of the same leaf
/// table (which stays linked: a partial unmap never detaches it).
#[test]
fn map_beside_unmap_x86_64() {
    let n = model(|| {
        let mem = LoomMemory::new();
        let pt = x86_64_table(&mem);
        // SAFETY: single-threaded setup.
        unsafe { assert_eq!(pt.map_pages(0x1000, 0xa000, PAGE, 1, RW), (PAGE, Ok(()))) };
        assert_eq!(pt.mem_stats().pages, 4);
        let (a, b) = (pt.clone(), pt.clone());
        let ta = loom::thread::spawn(move || {
            // SAFETY: this thread alone uses [0x2000, 0x3000).
            unsafe { a.map_pages(0x2000, 0xb000, PAGE, 1, RW) }
        });
        let tb = loom::thread::spawn(move || {
            let mut g = Gather::new();
            // SAFETY: this thread alone uses [0x1000, 0x2000).
            let r = unsafe { b.unmap_pages(0x1000, PAGE, 1, &mut g) };
            let tables = g.pending_tables();
            b.sync(&mut g);
            (r, tables)
        });
        assert_eq!(ta.join().unwrap(), (PAGE, Ok(())));
        assert_eq!(tb.join().unwrap(), ((PAGE, Ok(())), 0));
        // SAFETY: both operations are done.
        unsafe {
            assert_eq!(pt.translate(0x1000), None);
            assert_eq!(brief(pt.translate(0x2000)), page(0xb000, 0x2000));
        }
        assert_eq!(pt.mem_stats().pages, 4);
        assert_eq!(mem.counts(), (4, 0));
        drop(pt);
        assert_eq!(mem.live(), 0);
    });
    assert!(n > 1, "loom explored a single execution");
}

/// An AMD v1 table that starts with one level (2 MiB of IOVA) and may grow to two (1 GiB).
fn amdv1_table(mem: &LoomMemory) -> Arc<PageTable<AmdV1, LoomMemory, TopRecorder>> {
    let fmt = AmdV1::new(AmdV1Config {
        levels: 1,
        max_levels: 2,
        ..AmdV1Config::default()
    })
    .unwrap();
    let pt = PageTable::new(fmt, mem.clone(), TopRecorder::default()).unwrap();
    assert_eq!(pt.info().levels, 1);
    Arc::new(pt)
}

/// Checks the end state of a table grown once to two levels: one top change, naming the
/// root and level count the table reports, and a root that is neither the first one nor
/// any table freed on the way.
fn check_grown_once(pt: &PageTable<AmdV1, LoomMemory, TopRecorder>, first_root: u64) {
    let info = pt.info();
    assert_eq!(info.levels, 2);
    assert_ne!(info.root_pa, first_root);
    let tops = pt.flush_ops().tops.lock().unwrap().clone();
    assert_eq!(tops, vec![(info.root_pa, 2)]);
}

/// Model 3: thread A maps a page below the top while thread B maps one above it, which
/// grows the top: B builds the new level privately (linking the old root at index 0) and
/// publishes it under the growth lock while A writes into the old root, before or after.
/// A third thread translates an unmapped address in the new level's span (out of the
/// aperture before the growth, an empty entry of the new root after it).
#[test]
fn growth_beside_map_amdv1() {
    let n = model(|| {
        let mem = LoomMemory::new();
        let pt = amdv1_table(&mem);
        let first_root = pt.info().root_pa;
        let (a, b, r) = (pt.clone(), pt.clone(), pt.clone());
        let tr = loom::thread::spawn(move || {
            // SAFETY: nothing maps or unmaps 0x60_0000.
            unsafe { r.translate(0x60_0000) }
        });
        let ta = loom::thread::spawn(move || {
            // SAFETY: this thread alone uses [0x1000, 0x2000).
            unsafe { a.map_pages(0x1000, 0xa000, PAGE, 1, RW) }
        });
        let tb = loom::thread::spawn(move || {
            // SAFETY: this thread alone uses [0x40_0000, 0x40_1000).
            unsafe { b.map_pages(0x40_0000, 0xb000, PAGE, 1, RW) }
        });
        assert_eq!(ta.join().unwrap(), (PAGE, Ok(())));
        assert_eq!(tb.join().unwrap(), (PAGE, Ok(())));
        assert_eq!(tr.join().unwrap(), None);
        check_grown_once(&pt, first_root);
        // SAFETY: both maps are done.
        unsafe {
            assert_eq!(brief(pt.translate(0x1000)), page(0xa000, 0x1000));
            assert_eq!(brief(pt.translate(0x40_0000)), page(0xb000, 0x40_0000));
            assert_eq!(pt.translate(0x20_0000), None);
        }
        // The new root, the old root (now its first child) and B's leaf table; growth
        // allocates nothing that it does not keep here.
        assert_eq!(pt.mem_stats().pages, 3);
        assert_eq!(mem.counts(), (3, 0));
        drop(pt);
        assert_eq!(mem.live(), 0);
    });
    assert!(n > 1, "loom explored a single execution");
}

/// Model 4: both threads map above the top, into the same future leaf table, so both grow
/// it privately. One publishes; the other sees the top changed under the growth lock,
/// discards its private levels (keeping the old root) and maps through the new top.
#[test]
fn growth_race_amdv1() {
    let n = model(|| {
        let mem = LoomMemory::new();
        let pt = amdv1_table(&mem);
        let first_root = pt.info().root_pa;
        let (a, b) = (pt.clone(), pt.clone());
        let ta = loom::thread::spawn(move || {
            // SAFETY: this thread alone uses [0x40_0000, 0x40_1000).
            unsafe { a.map_pages(0x40_0000, 0xa000, PAGE, 1, RW) }
        });
        let tb = loom::thread::spawn(move || {
            // SAFETY: this thread alone uses [0x40_1000, 0x40_2000).
            unsafe { b.map_pages(0x40_1000, 0xb000, PAGE, 1, RW) }
        });
        assert_eq!(ta.join().unwrap(), (PAGE, Ok(())));
        assert_eq!(tb.join().unwrap(), (PAGE, Ok(())));
        check_grown_once(&pt, first_root);
        // SAFETY: both maps are done.
        unsafe {
            assert_eq!(brief(pt.translate(0x40_0000)), page(0xa000, 0x40_0000));
            assert_eq!(brief(pt.translate(0x40_1000)), page(0xb000, 0x40_1000));
            assert_eq!(pt.translate(0x1000), None);
        }
        // New root, old root, one shared leaf table; the loser freed its own two.
        assert_eq!(pt.mem_stats().pages, 3);
        let (allocs, frees) = mem.counts();
        assert_eq!(allocs - frees, 3);
        drop(pt);
        assert_eq!(mem.live(), 0);
    });
    assert!(n > 1, "loom explored a single execution");
}

/// Model 5: a dirty read and clear races the IOMMU setting D (an atomic OR, as x86-64
/// hardware does it) in the leaf it reads: the write is either reported, or its mark is
/// still in the entry afterwards; the clear's compare-and-swap never drops it.
#[test]
fn dirty_clear_beside_hardware_mark_x86_64() {
    const D: u64 = 1 << 6;
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    let n = model(|| {
        let mem = LoomMemory::new();
        let fmt = X86_64::new(X86_64Config {
            dirty_tracking: true,
            ..X86_64Config::default()
        })
        .unwrap();
        let pt = PageTable::new(fmt, mem.clone(), NoFlush).unwrap();
        // SAFETY: single-threaded setup.
        unsafe { assert_eq!(pt.map_pages(0x1000, 0xa000, PAGE, 1, RW), (PAGE, Ok(()))) };
        // Entry 0 of each table down to the leaf table, whose entry 1 maps 0x1000.
        let mut table = pt.info().root_pa;
        for _ in 0..3 {
            // SAFETY: a word of a live table.
            table = unsafe { &*mem.word(table) }.load(loom::sync::atomic::Ordering::SeqCst) & ADDR;
        }
        let word = mem.word(table + 8) as usize;
        let hw = loom::thread::spawn(move || {
            // SAFETY: the leaf entry's atomic, alive as long as the memory (held by the
            // model until after the join).
            let e = unsafe { &*(word as *const AtomicU64) };
            e.fetch_or(D, loom::sync::atomic::Ordering::SeqCst) & D == 0
        });
        let mut reports = 0u32;
        let mut g = Gather::new();
        // SAFETY: no map or unmap runs; the other thread only sets D.
        unsafe {
            pt.read_and_clear_dirty(0x1000, PAGE, DirtyFlags::empty(), &mut g, &mut |b, s| {
                assert_eq!((b, s), (0x1000, PAGE));
                reports += 1;
            })
        }
        .unwrap();
        let marked = hw.join().unwrap();
        // SAFETY: as above.
        let left =
            unsafe { &*(word as *const AtomicU64) }.load(loom::sync::atomic::Ordering::SeqCst) & D
                != 0;
        assert!(marked, "the entry was made clean");
        assert_eq!(reports + u32::from(left), 1, "reported once or left marked");
        pt.sync(&mut g);
    });
    assert!(n > 1, "loom explored a single execution");
}
