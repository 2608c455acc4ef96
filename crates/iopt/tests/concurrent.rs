//! The concurrent handle (`SharedTable`): several threads mapping, unmapping and
//! translating through range guards on disjoint and on adjacent ranges (sharing table
//! pages), for x86-64, ARM64 4K stage 1 and AMD v1 growing from one level; the interval
//! lock's waiting and `try_` behaviour; guard range checks; growth under concurrency.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::{ArenaMemory, FaultyMemory, HeapMemory, MemStats, TableMemory};
use iopt::{
    Error, Format, Gather, NoFlush, Options, PageTable, Prot, RangeGuard, SharedGuard, SharedTable,
    Table,
};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const K4: u64 = 0x1000;
const K64: u64 = 0x1_0000;
const M1: u64 = 0x10_0000;
const M2: u64 = 0x20_0000;
const G1: u64 = 0x4000_0000;

type Shared<'a, F> = SharedTable<F, SlowClean<'a>, NoFlush>;

/// Arena memory whose cache clean of a whole table gives up the CPU. Tables built with
/// `coherent_walk: false` clean every new table just before linking it in, so threads
/// racing to install the same table (or to grow the top) meet there far more often
/// than they would by chance.
struct SlowClean<'a>(&'a ArenaMemory);

// SAFETY: every method forwards to the arena, which upholds the contract; yielding in
// `clean` changes no memory.
unsafe impl TableMemory for SlowClean<'_> {
    fn alloc(&self, size_lg2: u32) -> Option<core::ptr::NonNull<u8>> {
        self.0.alloc(size_lg2)
    }
    unsafe fn free(&self, ptr: core::ptr::NonNull<u8>, size_lg2: u32) {
        // SAFETY: the caller's guarantee is passed on.
        unsafe { self.0.free(ptr, size_lg2) }
    }
    fn virt_to_phys(&self, ptr: core::ptr::NonNull<u8>) -> u64 {
        self.0.virt_to_phys(ptr)
    }
    fn phys_to_virt(&self, pa: u64) -> core::ptr::NonNull<u8> {
        self.0.phys_to_virt(pa)
    }
    fn stats(&self) -> MemStats {
        self.0.stats()
    }
    fn clean(&self, _ptr: core::ptr::NonNull<u8>, len: usize) {
        if len == 4096 {
            std::thread::yield_now();
        }
    }
}

/// A shared table on `mem` whose walker does not snoop (see [`SlowClean`]).
fn slow_shared<F: Format>(fmt: F, mem: &ArenaMemory) -> Shared<'_, F> {
    let opts = Options {
        coherent_walk: false,
        ..Options::default()
    };
    SharedTable::with_options(fmt, SlowClean(mem), NoFlush, opts).unwrap()
}

fn x86() -> X86_64 {
    X86_64::new(X86_64Config::default()).unwrap()
}

fn arm() -> ArmLpae {
    ArmLpae::new(ArmLpaeConfig::default()).unwrap()
}

/// AMD v1 starting with one level (a 2 MiB aperture), growing to six.
fn amd1() -> AmdV1 {
    AmdV1::new(AmdV1Config {
        levels: 1,
        ..AmdV1Config::default()
    })
    .unwrap()
}

fn arena() -> ArenaMemory {
    ArenaMemory::new(0x4000_0000, 16 << 20)
}

/// The physical address every test maps an IOVA to: a pure function of the IOVA, so any
/// thread can check any translation it sees. Linear within every 2^40 bytes, so large
/// pages and runs line up with the IOVA.
fn pa_of(iova: u64) -> u64 {
    (1 << 40) + (iova & ((1 << 40) - 1))
}

/// What translate reports for a leaf mapped with `RW` in format `fmt`.
fn reported_prot<F: Format>(fmt: F) -> Prot {
    let mut t = Table::new(fmt, HeapMemory::new(), NoFlush).unwrap();
    t.map(0, pa_of(0), K4, RW).unwrap();
    t.translate(0).unwrap().prot
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A model of what is mapped: one entry per successful map call, `iova -> len`.
#[derive(Debug, Default, Clone)]
struct Extents {
    map: BTreeMap<u64, u64>,
}

impl Extents {
    /// The extent containing `iova`.
    fn find(&self, iova: u64) -> Option<(u64, u64)> {
        let (&s, &len) = self.map.range(..=iova).next_back()?;
        (iova - s < len).then_some((s, len))
    }
    /// The first IOVA of `first ..= last` inside an extent.
    fn first_in_use(&self, first: u64, last: u64) -> Option<u64> {
        if self.find(first).is_some() {
            return Some(first);
        }
        self.map.range(first..=last).next().map(|(&s, _)| s)
    }
    /// The extents starting in `first ..= last`.
    fn within(&self, first: u64, last: u64) -> Vec<(u64, u64)> {
        self.map
            .range(first..=last)
            .map(|(&s, &l)| (s, l))
            .collect()
    }
    fn insert(&mut self, iova: u64, len: u64) {
        assert!(self.first_in_use(iova, iova + (len - 1)).is_none());
        self.map.insert(iova, len);
    }
    fn bytes(&self) -> u64 {
        self.map.values().sum()
    }
}

/// Checks a translation of `iova` against the model (`Some(extent)` or `None`).
fn check_tr(tr: Option<iopt::Translation>, iova: u64, ext: Option<(u64, u64)>, prot: Prot) {
    match (tr, ext) {
        (None, None) => {}
        (Some(tr), Some((s, len))) => {
            assert_eq!(tr.pa, pa_of(iova), "pa of {iova:#x}");
            assert_eq!(tr.prot, prot, "prot of {iova:#x}");
            // The hardware mapping lies inside the map call's extent.
            assert!(
                tr.iova_base >= s && tr.iova_base + (tr.size - 1) <= s + (len - 1),
                "mapping {:#x}+{:#x} of {iova:#x} outside the extent {s:#x}+{len:#x}",
                tr.iova_base,
                tr.size
            );
        }
        (tr, ext) => panic!("translate {iova:#x}: table {tr:?}, model {ext:?}"),
    }
}

/// A spinning barrier: the threads that are running leave it together (a sleeping
/// barrier lets the last one in run far ahead while the others wake up, so they would
/// rarely race). It breaks when a party panics, so that the others fail instead of
/// waiting for ever.
struct Gate {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicU64,
    broken: AtomicBool,
}

impl Gate {
    fn new(n: usize) -> Self {
        Gate {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            broken: AtomicBool::new(false),
        }
    }
    fn wait(&self) {
        let generation = self.generation.load(Ordering::SeqCst);
        if self.arrived.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            self.arrived.store(0, Ordering::SeqCst);
            self.generation.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::SeqCst) == generation {
            assert!(!self.broken.load(Ordering::SeqCst), "another worker failed");
            spins += 1;
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Breaks the gate if the thread panics while this is alive.
struct BreakOnPanic<'a>(&'a Gate);

impl Drop for BreakOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.broken.store(true, Ordering::SeqCst);
        }
    }
}

/// Where a thread works in an epoch: the bases of its units and their size (a unit is
/// never crossed by a map, so unmaps of whole units never cut a mapping).
struct Units {
    bases: Vec<u64>,
    size: u64,
}

/// A stress scenario.
struct Layout {
    threads: usize,
    epochs: usize,
    ops_per_epoch: usize,
    units: fn(usize, usize) -> Units,
    /// Whether the thread unmaps its units at the end of every epoch.
    clear_after_epoch: fn(usize) -> bool,
}

/// What a worker did, by kind of operation and outcome.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    maps: u64,
    /// Maps refused with AddressInUse (each counts as an overlap warning).
    conflicts: u64,
    big_maps: u64,
    unmaps: u64,
    unmapped_bytes: u64,
    hits: u64,
    misses: u64,
    foreign_hits: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.maps += o.maps;
        self.conflicts += o.conflicts;
        self.big_maps += o.big_maps;
        self.unmaps += o.unmaps;
        self.unmapped_bytes += o.unmapped_bytes;
        self.hits += o.hits;
        self.misses += o.misses;
        self.foreign_hits += o.foreign_hits;
    }
}

/// What a worker leaves behind.
struct Outcome {
    model: Extents,
    tally: Tally,
}

/// Unmaps `[iova, iova + len)` under a fresh guard, expecting `want` bytes; syncs under
/// the guard.
fn unmap_expect<F: Format, M: TableMemory>(
    t: &SharedTable<F, M, NoFlush>,
    iova: u64,
    len: u64,
    want: u64,
    g: &mut Gather,
) {
    let mut guard = t.lock(iova, len).unwrap();
    assert_eq!(
        guard.unmap(iova, len, g),
        Ok(want),
        "unmap {iova:#x}+{len:#x}"
    );
    t.sync(g);
}

fn worker<F: Format>(
    t: &Shared<'_, F>,
    lay: &Layout,
    me: usize,
    prot: Prot,
    barrier: &Gate,
) -> Outcome {
    let _break = BreakOnPanic(barrier);
    let mut rng = Rng(0x5eed_0000 + me as u64 * 7919);
    let mut model = Extents::default();
    let mut n = Tally::default();
    let mut gather = Gather::new();
    for epoch in 0..lay.epochs {
        barrier.wait();
        let Units { bases, size: usz } = (lay.units)(me, epoch);
        let pages = usz / K4;
        for op in 0..lay.ops_per_epoch {
            let ub = bases[rng.below(bases.len() as u64) as usize];
            let ulast = ub + (usz - 1);
            // Every epoch starts with a map (into fresh tables for the adjacent layouts:
            // the threads race to install them).
            let r = if op == 0 { 0 } else { rng.below(100) };
            if r < 40 {
                // Map 1..=16 pages inside the unit.
                let off = if op == 0 { 0 } else { rng.below(pages) };
                let k = (1 + rng.below(16)).min(pages - off);
                let (iova, len) = (ub + off * K4, k * K4);
                let mut g = t.lock(iova, len).unwrap();
                let got = g.map(iova, pa_of(iova), len, RW);
                match model.first_in_use(iova, iova + (len - 1)) {
                    None => {
                        assert_eq!(got, Ok(()), "map {iova:#x}+{len:#x}");
                        model.insert(iova, len);
                        n.maps += 1;
                    }
                    Some(at) => {
                        assert_eq!(got, Err(Error::AddressInUse(at)), "map {iova:#x}+{len:#x}");
                        n.conflicts += 1;
                    }
                }
            } else if r < 43 && usz == M2 {
                // A 2 MiB page over the whole unit.
                let mut g = t.lock(ub, M2).unwrap();
                let got = g.map(ub, pa_of(ub), M2, RW);
                if model.first_in_use(ub, ulast).is_none() {
                    assert_eq!(got, Ok(()), "map 2M at {ub:#x}");
                    assert_eq!(g.translate(ub).unwrap().map(|tr| tr.size), Some(M2));
                    model.insert(ub, M2);
                    n.big_maps += 1;
                } else {
                    // The first IOVA in use, not the start of the page being placed.
                    let at = model.first_in_use(ub, ulast).unwrap();
                    assert_eq!(got, Err(Error::AddressInUse(at)), "map 2M at {ub:#x}");
                    n.conflicts += 1;
                }
            } else if r < 68 {
                // Unmap one to three consecutive extents (and the holes between them).
                let from = ub + rng.below(pages) * K4;
                let mut exts = model.within(from, ulast);
                if exts.is_empty() {
                    exts = model.within(ub, ulast);
                }
                if exts.is_empty() {
                    // Nothing mapped in the unit: unmapping a hole removes nothing.
                    let k = 1 + rng.below(16).min(pages - 1 - (from - ub) / K4);
                    unmap_expect(t, from, k * K4, 0, &mut gather);
                    continue;
                }
                let k = (1 + rng.below(3) as usize).min(exts.len());
                let (s, _) = exts[0];
                let (ls, ll) = exts[k - 1];
                let want: u64 = exts[..k].iter().map(|e| e.1).sum();
                unmap_expect(t, s, ls + ll - s, want, &mut gather);
                n.unmaps += 1;
                n.unmapped_bytes += want;
                for (e, _) in &exts[..k] {
                    model.map.remove(e);
                }
            } else if r < 71 {
                // Clear the whole unit.
                let exts = model.within(ub, ulast);
                let want = exts.iter().map(|e| e.1).sum();
                unmap_expect(t, ub, usz, want, &mut gather);
                n.unmaps += 1;
                n.unmapped_bytes += want;
                for (e, _) in exts {
                    model.map.remove(&e);
                }
            } else if r < 90 {
                // Translate in the thread's own unit, under a shared guard.
                let exts = model.within(ub, ulast);
                let iova = if !exts.is_empty() && rng.below(2) == 0 {
                    let (s, len) = exts[rng.below(exts.len() as u64) as usize];
                    s + rng.below(len)
                } else {
                    ub + rng.below(usz)
                };
                let g = if rng.below(4) == 0 {
                    t.lock_shared(ub, usz).unwrap()
                } else {
                    t.lock_shared(iova & !(K4 - 1), K4).unwrap()
                };
                let ext = model.find(iova);
                check_tr(g.translate(iova).unwrap(), iova, ext, prot);
                if ext.is_some() {
                    n.hits += 1;
                } else {
                    n.misses += 1;
                }
            } else {
                // Translate in another thread's unit: whatever is there is right.
                let other = (me + 1 + rng.below(lay.threads as u64 - 1) as usize) % lay.threads;
                let Units {
                    bases: ob,
                    size: os,
                } = (lay.units)(other, epoch);
                let iova = ob[rng.below(ob.len() as u64) as usize] + rng.below(os);
                let g = t.lock_shared(iova & !(K4 - 1), K4).unwrap();
                if let Some(tr) = g.translate(iova).unwrap() {
                    assert_eq!((tr.pa, tr.prot), (pa_of(iova), prot), "{iova:#x}");
                    n.foreign_hits += 1;
                }
            }
        }
        if (lay.clear_after_epoch)(me) {
            for &ub in &bases {
                let exts = model.within(ub, ub + (usz - 1));
                unmap_expect(t, ub, usz, exts.iter().map(|e| e.1).sum(), &mut gather);
                for (e, _) in exts {
                    model.map.remove(&e);
                }
            }
        }
    }
    assert!(gather.is_empty());
    Outcome { model, tally: n }
}

/// Runs `lay` on a fresh shared table of format `fmt`, then checks the merged models
/// against the table, unmaps everything under one guard over `[0, unmap_len)` and checks
/// that only the top table is left. Returns the levels the table ended with.
fn stress<F: Format + Copy>(fmt: F, lay: &Layout, unmap_len: u64) -> u32 {
    let mem = arena();
    let t = slow_shared(fmt, &mem);
    let prot = reported_prot(fmt);
    let barrier = Gate::new(lay.threads);
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..lay.threads)
            .map(|me| {
                let (t, barrier) = (&t, &barrier);
                s.spawn(move || worker(t, lay, me, prot, barrier))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(t.guards(), 0);
    // Merge the models (the threads' ranges are disjoint).
    let mut all = Extents::default();
    for o in &outcomes {
        for (&s, &len) in &o.model.map {
            all.insert(s, len);
        }
    }
    let mut n = Tally::default();
    for o in &outcomes {
        n.add(&o.tally);
    }
    assert_eq!(t.raw().overlap_warnings(), n.conflicts);
    // The mix really ran: every kind of operation and outcome happened often.
    let ops = (lay.threads * lay.epochs * lay.ops_per_epoch) as u64;
    for (what, count) in [
        ("maps", n.maps),
        ("refused maps", n.conflicts),
        ("unmaps", n.unmaps),
        ("hits", n.hits),
        ("misses", n.misses),
    ] {
        assert!(
            count > ops / 100,
            "{what}: {count} of {ops} operations ({n:?})"
        );
    }
    assert!(n.unmapped_bytes > 0);
    if (0..lay.threads).any(|me| (lay.units)(me, 0).size == M2) {
        assert!(n.big_maps > 100, "2 MiB maps: {n:?}");
    }
    // Every mapped page translates right, and the pages around every extent too.
    for (&s, &len) in &all.map {
        let g = t.lock_shared(s, len).unwrap();
        for p in (s..s + len).step_by(K4 as usize) {
            check_tr(
                g.translate(p + 0x123).unwrap(),
                p + 0x123,
                all.find(p),
                prot,
            );
        }
        drop(g);
        for p in [s.wrapping_sub(K4), s + len] {
            if let Ok(g) = t.lock_shared(p, K4) {
                check_tr(g.translate(p).unwrap(), p, all.find(p), prot);
            }
        }
    }
    // Nothing else is mapped: samples of every unit ever used, and of the aperture.
    let mut rng = Rng(42);
    for me in 0..lay.threads {
        for epoch in 0..lay.epochs {
            let Units { bases, size } = (lay.units)(me, epoch);
            for b in bases {
                for _ in 0..4 {
                    let p = b + rng.below(size);
                    let g = t.lock_shared(p & !(K4 - 1), K4).unwrap();
                    check_tr(g.translate(p).unwrap(), p, all.find(p), prot);
                }
            }
        }
    }
    let ap = t.info().aperture;
    for _ in 0..2000 {
        let p = ap.start + rng.below(ap.last.wrapping_sub(ap.start).saturating_add(1).max(1));
        let g = t.lock_shared(p & !(K4 - 1), K4).unwrap();
        check_tr(g.translate(p).unwrap(), p, all.find(p), prot);
    }
    // Unmap everything; only the top table is left.
    let mut gather = Gather::new();
    unmap_expect(&t, 0, unmap_len, all.bytes(), &mut gather);
    assert_eq!(t.mem_stats().pages, 1, "only the top table is left");
    t.info().levels
}

const THREADS: usize = 4;
/// Operations per thread in every stress run.
const OPS: usize = 100_000;

/// Disjoint: every thread owns eight 2 MiB units (its own level-0 tables; level-1 and
/// above shared).
fn disjoint_units(me: usize, _epoch: usize) -> Units {
    let base = G1 + me as u64 * 16 * M1;
    Units {
        bases: (0..8).map(|i| base + i * M2).collect(),
        size: M2,
    }
}

/// Adjacent: in every epoch a fresh 2 MiB block in a fresh 1 GiB region, whose 64 KiB
/// windows alternate between the threads: all of them race to install the level-1 and
/// level-0 tables of the block at the start of the epoch.
fn adjacent_units(me: usize, epoch: usize) -> Units {
    let block = G1 + epoch as u64 * (G1 + M2);
    Units {
        bases: (0..32u64)
            .filter(|w| *w as usize % THREADS == me)
            .map(|w| block + w * K64)
            .collect(),
        size: K64,
    }
}

fn never(_: usize) -> bool {
    false
}

fn always(_: usize) -> bool {
    true
}

const DISJOINT: Layout = Layout {
    threads: THREADS,
    epochs: 4,
    ops_per_epoch: OPS / 4,
    units: disjoint_units,
    clear_after_epoch: never,
};

const ADJACENT: Layout = Layout {
    threads: THREADS,
    epochs: 400,
    ops_per_epoch: OPS / 400,
    units: adjacent_units,
    clear_after_epoch: always,
};

#[test]
fn stress_disjoint_x86_64() {
    stress(x86(), &DISJOINT, 1 << 47);
}

#[test]
fn stress_adjacent_x86_64() {
    stress(x86(), &ADJACENT, 1 << 47);
}

#[test]
fn stress_disjoint_arm64_4k() {
    stress(arm(), &DISJOINT, 1 << 48);
}

#[test]
fn stress_adjacent_arm64_4k() {
    stress(arm(), &ADJACENT, 1 << 48);
}

/// AMD v1: the last thread works high up, at a height that needs one more level in
/// each quarter of the run, so the top grows while the other threads work below it.
/// (The low threads stay below 512 GiB.)
const AMD_HIGH: [u64; 4] = [1 << 40, 1 << 46, 1 << 50, 1 << 60];

fn amd_high_units(phase: usize) -> Units {
    Units {
        bases: (0..8).map(|i| AMD_HIGH[phase] + i * M2).collect(),
        size: M2,
    }
}

/// Disjoint, low threads from IOVA 0 (thread 0 starts inside the one-level table).
fn amd_disjoint_units(me: usize, epoch: usize) -> Units {
    if me == THREADS - 1 {
        return amd_high_units(epoch);
    }
    Units {
        bases: (0..8).map(|i| me as u64 * 16 * M1 + i * M2).collect(),
        size: M2,
    }
}

/// Adjacent windows among the low threads; the first block is the one-level table's.
fn amd_adjacent_units(me: usize, epoch: usize) -> Units {
    if me == THREADS - 1 {
        return amd_high_units(epoch * 4 / 400);
    }
    let block = epoch as u64 * (G1 + M2);
    Units {
        bases: (0..32u64)
            .filter(|w| *w as usize % (THREADS - 1) == me)
            .map(|w| block + w * K64)
            .collect(),
        size: K64,
    }
}

fn low_threads_clear(me: usize) -> bool {
    me != THREADS - 1
}

#[test]
fn stress_disjoint_amdv1_growing() {
    let lay = Layout {
        units: amd_disjoint_units,
        ..DISJOINT
    };
    assert_eq!(stress(amd1(), &lay, 1 << 63), 6);
}

#[test]
fn stress_adjacent_amdv1_growing() {
    let lay = Layout {
        units: amd_adjacent_units,
        clear_after_epoch: low_threads_clear,
        ..ADJACENT
    };
    assert_eq!(stress(amd1(), &lay, 1 << 63), 6);
}

/// AMD v1 from one level, many rounds: two threads map 4 KiB pages inside the first
/// table (which stops being the top while they work) while two others map at heights
/// that need new levels at the same moment (both grow: one publishes, the other
/// discards its private levels and retries). The result has exactly the tables a
/// single-threaded build of the same mappings has.
#[test]
fn growth_under_concurrency_amdv1() {
    for round in 0..60u32 {
        let mem = arena();
        let t = slow_shared(amd1(), &mem);
        assert_eq!(t.info().levels, 1);
        // Heights for the two growing threads: 1 GiB up to 2^60, varied per round.
        let hi = |k: u32| 1u64 << (30 + 9 * (k % 4) + (round % 3));
        let high = [hi(round), hi(round + 1 + round / 4)];
        let barrier = Gate::new(4);
        let prot = reported_prot(amd1());
        std::thread::scope(|s| {
            for me in 0..4usize {
                let (t, barrier) = (&t, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    if me < 2 {
                        // 16 single pages in this thread's own 64 KiB windows.
                        for i in 0..16u64 {
                            let iova = (me as u64 * 4 + (i % 4)) * K64 + (i / 4) * K4;
                            let mut g = t.lock(iova, K4).unwrap();
                            g.map(iova, pa_of(iova), K4, RW).unwrap();
                        }
                    } else {
                        let base = high[me - 2] + (me as u64) * M2;
                        let mut g = t.lock(base, M2).unwrap();
                        g.map(base, pa_of(base), K64, RW).unwrap();
                        g.map(base + M1, pa_of(base + M1), K4, RW).unwrap();
                    }
                });
            }
        });
        // The same mappings built by one owner.
        let mut seq = Table::new(amd1(), HeapMemory::new(), NoFlush).unwrap();
        let mut want = Extents::default();
        for me in 0..2u64 {
            for i in 0..16u64 {
                let iova = (me * 4 + (i % 4)) * K64 + (i / 4) * K4;
                seq.map(iova, pa_of(iova), K4, RW).unwrap();
                want.insert(iova, K4);
            }
        }
        for (k, &h) in high.iter().enumerate() {
            let base = h + (k as u64 + 2) * M2;
            seq.map(base, pa_of(base), K64, RW).unwrap();
            seq.map(base + M1, pa_of(base + M1), K4, RW).unwrap();
            want.insert(base, K64);
            want.insert(base + M1, K4);
        }
        assert_eq!(t.info().levels, seq.info().levels, "round {round}");
        assert_eq!(
            t.mem_stats().pages,
            seq.mem_stats().pages,
            "round {round}: tables"
        );
        for (&s, &len) in &want.map {
            let g = t.lock_shared(s, len).unwrap();
            for p in (s..s + len).step_by(K4 as usize) {
                check_tr(g.translate(p).unwrap(), p, want.find(p), prot);
            }
        }
        let mut gather = Gather::new();
        unmap_expect(&t, 0, 1 << 63, want.bytes(), &mut gather);
        assert_eq!(t.mem_stats().pages, 1, "round {round}");
    }
}

// ---------------------------------------------------------------------------------
// The interval lock.

fn x86_heap() -> SharedTable<X86_64, HeapMemory, NoFlush> {
    SharedTable::new(x86(), HeapMemory::new(), NoFlush).unwrap()
}

/// Waits (yielding) until `n` threads are blocked in the table's lock.
/// (Not a timing assertion: the bound only turns a hang into a failure.)
fn wait_for_waiters<F: Format, M: iopt::mem::TableMemory>(
    t: &SharedTable<F, M, NoFlush>,
    n: usize,
) {
    let start = std::time::Instant::now();
    while t.waiters() != n {
        assert!(
            start.elapsed().as_secs() < 60,
            "{n} waiter(s) expected, {} seen",
            t.waiters()
        );
        std::thread::yield_now();
    }
}

/// A guard over [1M, 3M) waits while [0, 2M) is held, and gets it only after the holder
/// dropped its guard; a request that does not overlap the held range is not held up by
/// the waiter.
#[test]
fn overlapping_lock_waits_for_the_holder() {
    let t = x86_heap();
    let released = AtomicBool::new(false);
    let a = t.lock(0, M2).unwrap();
    std::thread::scope(|s| {
        let b = s.spawn(|| {
            let g = t.lock(M1, M2).unwrap();
            let seen = released.load(Ordering::SeqCst);
            drop(g);
            seen
        });
        wait_for_waiters(&t, 1);
        // B is asleep; non-overlapping requests still go ahead, overlapping ones fail fast.
        assert!(t.try_lock(M1, M2).unwrap().is_none());
        assert!(t.try_lock_shared(M1 + M1 / 2, K4).unwrap().is_none());
        let c = t.try_lock(4 * M1, M2).unwrap().expect("disjoint range");
        drop(c);
        assert_eq!(t.waiters(), 1);
        released.store(true, Ordering::SeqCst);
        drop(a);
        assert!(b.join().unwrap(), "B got the range before A released it");
    });
    assert_eq!((t.waiters(), t.guards()), (0, 0));
}

#[test]
fn try_lock_fails_fast_while_held() {
    let t = x86_heap();
    let g = t.lock(0, M2).unwrap();
    assert!(t.try_lock(M2 - K4, 2 * K4).unwrap().is_none());
    assert!(t.try_lock(0, K4).unwrap().is_none());
    assert!(t.try_lock_shared(0x1234_0000 % M2, K4).unwrap().is_none());
    // Adjacent ranges do not overlap.
    let next = t.try_lock(M2, M2).unwrap().expect("adjacent range");
    assert_eq!(next.range(), M2..=2 * M2 - 1);
    assert_eq!(t.guards(), 2);
    drop(g);
    assert!(t.try_lock(0, K4).unwrap().is_some());
    assert!(t.try_lock_shared(0, K4).unwrap().is_some());
}

/// Shared guards coexist; an exclusive request waits for all of them.
#[test]
fn shared_guards_coexist_and_exclusive_waits_for_them() {
    let t = x86_heap();
    let alive = AtomicUsize::new(0);
    let s1 = t.try_lock_shared(0, M2).unwrap().expect("first shared");
    let s2 = t
        .try_lock_shared(M1, M2)
        .unwrap()
        .expect("overlapping shared");
    let s3 = t.lock_shared(M1 / 2, K4).unwrap(); // would wait for ever if shared excluded shared
    alive.store(3, Ordering::SeqCst);
    assert!(t.try_lock(M1 + K4, K4).unwrap().is_none());
    std::thread::scope(|s| {
        let x = s.spawn(|| {
            let g = t.lock(M1 / 2, 2 * M1).unwrap();
            let n = alive.load(Ordering::SeqCst);
            drop(g);
            n
        });
        wait_for_waiters(&t, 1);
        for g in [s1, s2, s3] {
            alive.fetch_sub(1, Ordering::SeqCst);
            drop(g);
            std::thread::yield_now();
        }
        assert_eq!(
            x.join().unwrap(),
            0,
            "exclusive granted while a shared guard lived"
        );
    });
}

/// A shared request waits for an exclusive guard.
#[test]
fn shared_lock_waits_for_exclusive() {
    let t = x86_heap();
    let released = AtomicBool::new(false);
    let g = t.lock(M2, M2).unwrap();
    std::thread::scope(|s| {
        let r = s.spawn(|| {
            let r = t.lock_shared(3 * M1, K4).unwrap();
            let seen = released.load(Ordering::SeqCst);
            drop(r);
            seen
        });
        wait_for_waiters(&t, 1);
        released.store(true, Ordering::SeqCst);
        drop(g);
        assert!(r.join().unwrap());
    });
}

/// Threads fight over a small space with random exclusive and shared requests. Counters
/// per 4 KiB page check that no two holders ever overlap unless both are shared; the
/// test ending at all shows that no wakeup was lost.
#[test]
fn mutual_exclusion_under_contention() {
    let t = x86_heap();
    let writers: Vec<AtomicUsize> = (0..16).map(|_| AtomicUsize::new(0)).collect();
    let readers: Vec<AtomicUsize> = (0..16).map(|_| AtomicUsize::new(0)).collect();
    std::thread::scope(|s| {
        for me in 0..4u64 {
            let (t, writers, readers) = (&t, &writers, &readers);
            s.spawn(move || {
                let mut rng = Rng(me);
                for _ in 0..3000 {
                    let first = rng.below(16);
                    let n = 1 + rng.below(16 - first);
                    let pages = first as usize..(first + n) as usize;
                    let (iova, len) = (first * K4, n * K4);
                    match rng.below(3) {
                        0 => {
                            let g = t.lock_shared(iova, len).unwrap();
                            for p in pages.clone() {
                                readers[p].fetch_add(1, Ordering::SeqCst);
                                assert_eq!(writers[p].load(Ordering::SeqCst), 0);
                            }
                            std::thread::yield_now();
                            for p in pages {
                                readers[p].fetch_sub(1, Ordering::SeqCst);
                            }
                            drop(g);
                        }
                        k => {
                            let g = if k == 1 {
                                t.lock(iova, len).unwrap()
                            } else {
                                loop {
                                    if let Some(g) = t.try_lock(iova, len).unwrap() {
                                        break g;
                                    }
                                    std::thread::yield_now();
                                }
                            };
                            for p in pages.clone() {
                                assert_eq!(writers[p].fetch_add(1, Ordering::SeqCst), 0);
                                assert_eq!(readers[p].load(Ordering::SeqCst), 0);
                            }
                            std::thread::yield_now();
                            for p in pages {
                                writers[p].fetch_sub(1, Ordering::SeqCst);
                            }
                            drop(g);
                        }
                    }
                }
            });
        }
    });
    assert_eq!((t.waiters(), t.guards()), (0, 0));
}

#[test]
fn lock_argument_errors() {
    let t = x86_heap();
    assert_eq!(t.lock(0, 0).map(|_| ()), Err(Error::ZeroLength));
    assert_eq!(t.try_lock(K4, u64::MAX).map(|_| ()), Err(Error::Overflow));
    assert_eq!(
        t.lock_shared(1 << 47, K4).map(|_| ()),
        Err(Error::OutOfAperture {
            iova: 1 << 47,
            last: (1 << 47) + K4 - 1
        })
    );
    // Across the non-canonical hole: refused, although both ends are in the aperture.
    assert_eq!(
        t.try_lock_shared((1 << 47) - K4, 1 << 63).map(|_| ()),
        Err(Error::OutOfAperture {
            iova: (1 << 47) - K4,
            last: (1 << 47) - K4 + (1 << 63) - 1
        })
    );
    // The whole upper half, ending at the last IOVA. (Mapping there is left out: the
    // engine's map planning mishandles the upper half of sign-extended formats.)
    let upper = 0xffff_8000_0000_0000;
    let g = t.lock(upper, 1 << 47).unwrap();
    assert_eq!(g.range(), upper..=u64::MAX);
    assert_eq!(g.translate(u64::MAX), Ok(None));
    let mut gather = Gather::new();
    let mut g = g;
    assert_eq!(g.unmap(upper, 1 << 47, &mut gather), Ok(0));
    assert!(t.try_lock(u64::MAX, 1).unwrap().is_none());
    drop(g);
    assert!(t.try_lock(u64::MAX, 1).unwrap().is_some());
}

// ---------------------------------------------------------------------------------
// Guard operations.

/// Operations reaching outside the guard fail with OutsideGuard naming the operation's
/// range, and change nothing.
#[test]
fn operations_outside_the_guard_are_refused() {
    let t = x86_heap();
    let mut g = t.lock(M1, M1).unwrap();
    let oob = |iova: u64, last: u64| Err(Error::OutsideGuard { iova, last });
    assert_eq!(g.map(M1 - K4, 0, K4, RW), oob(M1 - K4, M1 - 1));
    assert_eq!(g.map(M2 - K4, 0, 2 * K4, RW), oob(M2 - K4, M2 + K4 - 1));
    assert_eq!(g.translate(M2), oob(M2, M2).map(|()| None));
    assert_eq!(g.translate(M1 - 1), oob(M1 - 1, M1 - 1).map(|()| None));
    let mut gather = Gather::new();
    assert_eq!(g.unmap(0, M2, &mut gather), oob(0, M2 - 1).map(|()| 0));
    assert!(gather.is_empty());
    assert_eq!(t.mem_stats().pages, 1, "nothing was built");
    // At the edges of the guard: fine.
    g.map(M1, pa_of(M1), K4, RW).unwrap();
    g.map(M2 - K4, pa_of(M2 - K4), K4, RW).unwrap();
    drop(g);
    let s = t.lock_shared(M1 + K4, K4).unwrap();
    assert_eq!(s.range(), M1 + K4..=M1 + 2 * K4 - 1);
    assert_eq!(s.translate(M1), oob(M1, M1).map(|()| None));
    assert_eq!(s.translate(M1 + K4), Ok(None));
}

/// The guard's map refuses bad arguments exactly as the single-owner table does.
#[test]
fn map_argument_errors_match_the_single_owner_table() {
    let t = x86_heap();
    let mut single = Table::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    let mut g = t.lock(0, 1 << 46).unwrap();
    let cases: [(u64, u64, u64, Prot); 7] = [
        (0, 0, K4, Prot::CACHE),           // NoAccess
        (0, 0, 0, RW),                     // ZeroLength
        (0, 0, K4 + 1, RW),                // BadPageSize
        (0x800, 0, K4, RW),                // UnalignedIova
        (0, 0x800, K4, RW),                // UnalignedPaddr
        (0, u64::MAX - 0xfff, 2 * K4, RW), // Overflow (paddr)
        (0, 1 << 52, K4, RW),              // PaddrTooLarge
    ];
    for (iova, pa, len, prot) in cases {
        let want = single.map(iova, pa, len, prot);
        assert!(want.is_err());
        assert_eq!(
            g.map(iova, pa, len, prot),
            want,
            "{iova:#x} {pa:#x} {len:#x}"
        );
    }
    assert_eq!(t.mem_stats().pages, 1);
}

/// A map that finds part of its range in use, or runs out of memory, leaves the
/// translations (and the table pages) as they were.
#[test]
fn map_is_all_or_nothing() {
    let mem = FaultyMemory::new(HeapMemory::new());
    let t = SharedTable::new(x86(), &mem, NoFlush).unwrap();
    let mut g = t.lock(0, 1 << 40).unwrap();
    g.map(M1 + K64, pa_of(M1 + K64), K4, RW).unwrap();
    let pages = t.mem_stats().pages;
    assert_eq!(
        g.map(M1, pa_of(M1), 2 * K64, RW),
        Err(Error::AddressInUse(M1 + K64))
    );
    assert_eq!(g.translate(M1).unwrap(), None);
    assert_eq!(t.mem_stats().pages, pages);
    // A map across three fresh 1 GiB regions needs new tables at two levels.
    let (iova, len) = (3 * G1 - K4, G1 + 2 * K4);
    for n in 1..=4 {
        mem.reset();
        mem.fail_nth(n);
        assert_eq!(
            g.map(iova, pa_of(iova), len, RW),
            Err(Error::OutOfMemory),
            "n={n}"
        );
        assert_eq!(t.mem_stats().pages, pages, "n={n}");
        for p in [iova, 3 * G1, 4 * G1] {
            assert_eq!(g.translate(p).unwrap(), None);
        }
    }
    mem.reset();
    g.map(iova, pa_of(iova), len, RW).unwrap();
    assert_eq!(
        g.translate(3 * G1 + 0x1234)
            .unwrap()
            .map(|tr| (tr.pa, tr.size)),
        Some((pa_of(3 * G1 + 0x1234), G1))
    );
    assert_eq!(t.raw().overlap_warnings(), 1);
}

/// Unmap refuses to cut a mapping at either end, even one the guard only partly covers.
#[test]
fn unmap_refuses_cuts() {
    let t = SharedTable::new(arm(), HeapMemory::new(), NoFlush).unwrap();
    let mut gather = Gather::new();
    {
        let mut g = t.lock(0, M2).unwrap();
        g.map(K64, pa_of(K64), K64, RW).unwrap(); // one contiguous run
        let cut = Err(Error::WouldSplit {
            base: K64,
            size: K64,
        });
        assert_eq!(g.unmap(K64, K4, &mut gather), cut);
        assert_eq!(g.unmap(0, K64 + K4, &mut gather), cut);
        assert_eq!(g.unmap(K64 + K4, K64, &mut gather), cut);
        assert_eq!(g.unmap(0, 3 * K64, &mut gather), Ok(K64));
        g.map(0, pa_of(0), M2, RW).unwrap();
    }
    // A guard over the first page of a 2 MiB block sees the block but cannot cut it.
    let mut g = t.lock(0, K4).unwrap();
    assert_eq!(
        g.translate(0).unwrap().map(|tr| (tr.iova_base, tr.size)),
        Some((0, M2))
    );
    assert_eq!(
        g.unmap(0, K4, &mut gather),
        Err(Error::WouldSplit { base: 0, size: M2 })
    );
    drop(g);
    let mut g = t.lock(0, M2).unwrap();
    assert_eq!(g.unmap(0, M2, &mut gather), Ok(M2));
    t.sync(&mut gather);
}

/// Tables whose span lies inside the unmapped range are detached and freed by sync;
/// tables only emptied stay linked and are reused.
#[test]
fn unmap_detaches_covered_tables_and_sync_frees_them() {
    let mem = arena();
    let t = SharedTable::new(x86(), &mem, NoFlush).unwrap();
    let mut gather = Gather::new();
    let mut g = t.lock(0, 1 << 39).unwrap();
    g.map(0, pa_of(0), 16 * K4, RW).unwrap();
    assert_eq!(t.mem_stats().pages, 4);
    // Emptied but not covered: stays.
    assert_eq!(g.unmap(0, 16 * K4, &mut gather), Ok(16 * K4));
    assert_eq!(gather.pending_tables(), 0);
    t.sync(&mut gather);
    assert_eq!(t.mem_stats().pages, 4);
    g.map(K64, pa_of(K64), K4, RW).unwrap();
    assert_eq!(t.mem_stats().pages, 4, "the emptied table is used again");
    // Covering the level-0 table's span detaches it.
    assert_eq!(g.unmap(0, M2, &mut gather), Ok(K4));
    assert_eq!(gather.pending_tables(), 1);
    assert_eq!(t.mem_stats().pages, 4, "freed only by sync");
    t.sync(&mut gather);
    assert_eq!(t.mem_stats().pages, 3);
    // The span of the level-2 table (512 GiB) detaches the rest below the top.
    assert_eq!(g.unmap(0, 1 << 39, &mut gather), Ok(0));
    assert_eq!(gather.pending_tables(), 2);
    t.sync(&mut gather);
    assert_eq!(t.mem_stats().pages, 1);
}

/// map_reserved takes every table from the reservation and never allocates.
#[test]
fn map_reserved_never_allocates() {
    let mem = FaultyMemory::new(HeapMemory::new());
    let t = SharedTable::new(amd1(), &mem, NoFlush).unwrap();
    let plan = [(5 * G1, M2 + K64)];
    let mut res = t.reserve(&plan).unwrap();
    mem.fail_from(mem.allocations() + 1);
    let mut g = t.lock(5 * G1, M2 + K64).unwrap();
    g.map_reserved(5 * G1, pa_of(5 * G1), M2 + K64, RW, &mut res)
        .unwrap();
    assert_eq!(mem.failures(), 0);
    assert_eq!(t.info().levels, 3, "grew from the reservation too");
    assert_eq!(
        g.translate(5 * G1 + M2).unwrap().map(|tr| tr.size),
        Some(K64)
    );
    drop(g);
    t.release(res);
    mem.reset();
    let mut gather = Gather::new();
    let mut g = t.lock(0, 1 << 39).unwrap();
    assert_eq!(g.unmap(0, 1 << 39, &mut gather), Ok(M2 + K64));
    t.sync(&mut gather);
    assert_eq!(t.mem_stats().pages, 1);
}

/// A single-owner table becomes a shared one with its mappings.
#[test]
fn from_table_keeps_mappings() {
    let mut single = Table::new(arm(), HeapMemory::new(), NoFlush).unwrap();
    single.map(G1, pa_of(G1), M2, RW).unwrap();
    let t = SharedTable::from(single);
    let g = t.lock_shared(G1, K4).unwrap();
    assert_eq!(
        g.translate(G1 + 5).unwrap().map(|tr| tr.pa),
        Some(pa_of(G1) + 5)
    );
    drop(g);
    let raw: PageTable<ArmLpae, HeapMemory, NoFlush> = t.into_raw();
    assert_eq!(raw.mem_stats().pages, 3);
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SharedTable<X86_64, HeapMemory, NoFlush>>();
    send_sync::<SharedTable<AmdV1, &ArenaMemory, NoFlush>>();
    send_sync::<RangeGuard<'static, ArmLpae, HeapMemory, NoFlush>>();
    send_sync::<SharedGuard<'static, ArmLpae, HeapMemory, NoFlush>>();
}
