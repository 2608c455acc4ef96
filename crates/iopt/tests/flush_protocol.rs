//! The flush protocol, checked with a recording flush implementation and a recording
//! table memory that share one sequence of events.
//!
//! For mixed workloads on several formats, through the raw and the safe API:
//! - every leaf an unmap removes is reported once through `add_pages`, and its IOVA range
//!   is covered by a `flush_walk` (granule no larger than the leaf) before the gather's
//!   sync returns;
//! - nothing is freed during an unmap; every table an unmap detaches is freed exactly once,
//!   in the sync, after a flush covering the table's whole span;
//! - a map that replaces an empty leftover table flushes its span before freeing it;
//!   any other table a map frees was private (allocated by that map);
//! - with an incoherent walker (`coherent_walk: false`) every entry an operation changes
//!   in a table that stays reachable is covered by a `clean` whose snapshot holds the
//!   final value; every new table is cleaned whole before the entry linking it is written
//!   (or before `top_changed` for a new top); a raw operation cleans each table at most
//!   once, over exactly the entries it changed (except the break-before-make replacement
//!   of a leftover table, whose cleared link is cleaned before the walk flush); a
//!   coherent table never cleans. The safe map cleans once per page-size piece, not once
//!   per safe operation (a documented limitation: one engine call per piece).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ptr::NonNull;
use std::sync::Mutex;

use common::{Mapping, arm, place, prot_of};
use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::arm_lpae::{ArmLpae, Granule, Stage};
use iopt::mem::{ArenaMemory, MemStats, TableMemory};
use iopt::{
    Error, FlushOps, Format, Gather, Info, Options, OverlapPolicy, PageTable, Prot, Pte, Table,
    VaMode,
};

const ARENA_BASE: u64 = 0x4000_0000;
const ARENA_BYTES: usize = 8 << 20;

// ---------------------------------------------------------------------------------------
// Recording.

#[derive(Debug, Clone)]
enum Ev {
    FlushAll,
    FlushWalk {
        iova: u64,
        size: u64,
        granule: u64,
        /// The arena image when the flush was asked for (when snapshots are on).
        image: Option<Vec<u8>>,
    },
    AddPage {
        iova: u64,
        size: u64,
    },
    TopChanged {
        root_pa: u64,
        levels: u32,
    },
    Alloc {
        pa: u64,
        lg2: u32,
    },
    Free {
        pa: u64,
        lg2: u32,
    },
    Clean {
        pa: u64,
        len: u64,
        /// The arena image when the clean was asked for.
        image: Vec<u8>,
    },
}

/// The shared event log: its index is the global sequence number.
#[derive(Debug, Default)]
struct Log {
    events: Mutex<Vec<Ev>>,
}

impl Log {
    fn push(&self, e: Ev) {
        self.events.lock().unwrap().push(e);
    }
    /// Starts a new operation: its events are those recorded from the returned
    /// sequence number on.
    fn begin(&self) -> usize {
        self.events.lock().unwrap().len()
    }
    /// `(sequence, event)` for the events since `from`.
    fn since(&self, from: usize) -> Vec<(usize, Ev)> {
        let ev = self.events.lock().unwrap();
        ev[from..]
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, e)| (from + i, e))
            .collect()
    }
}

/// Flush operations that record every call.
struct RecFlush<'a> {
    log: &'a Log,
    /// Take an image of the arena at every `flush_walk`.
    snap: Option<&'a ArenaMemory>,
}

impl FlushOps for RecFlush<'_> {
    fn flush_all(&self) {
        self.log.push(Ev::FlushAll);
    }
    fn flush_walk(&self, iova: u64, size: u64, granule: u64) {
        self.log.push(Ev::FlushWalk {
            iova,
            size,
            granule,
            image: self.snap.map(|a| a.image()),
        });
    }
    fn top_changed(&self, root_pa: u64, levels: u32) {
        self.log.push(Ev::TopChanged { root_pa, levels });
    }
    fn add_pages(&self, gather: &mut Gather, iova: u64, size: u64, count: usize) {
        // One event per leaf: the checks below compare them with the leaves removed.
        for i in 0..count as u64 {
            self.log.push(Ev::AddPage {
                iova: iova + i * size,
                size,
            });
        }
        gather.add_range(iova, size * count as u64, size);
    }
}

/// Table memory from an arena, recording allocations, frees and cleans.
struct RecMem<'a> {
    arena: &'a ArenaMemory,
    log: &'a Log,
}

// SAFETY: every call is forwarded to the arena, which upholds the contract; recording
// touches only the log.
unsafe impl TableMemory for RecMem<'_> {
    fn alloc(&self, size_lg2: u32) -> Option<NonNull<u8>> {
        let p = self.arena.alloc(size_lg2)?;
        self.log.push(Ev::Alloc {
            pa: self.arena.virt_to_phys(p),
            lg2: size_lg2,
        });
        Some(p)
    }
    unsafe fn free(&self, ptr: NonNull<u8>, size_lg2: u32) {
        self.log.push(Ev::Free {
            pa: self.arena.virt_to_phys(ptr),
            lg2: size_lg2,
        });
        // SAFETY: the caller's guarantee is passed on.
        unsafe { self.arena.free(ptr, size_lg2) }
    }
    fn virt_to_phys(&self, ptr: NonNull<u8>) -> u64 {
        self.arena.virt_to_phys(ptr)
    }
    fn phys_to_virt(&self, pa: u64) -> NonNull<u8> {
        self.arena.phys_to_virt(pa)
    }
    fn stats(&self) -> MemStats {
        self.arena.stats()
    }
    fn clean(&self, ptr: NonNull<u8>, len: usize) {
        self.log.push(Ev::Clean {
            pa: self.arena.virt_to_phys(ptr),
            len: len as u64,
            image: self.arena.image(),
        });
    }
}

// ---------------------------------------------------------------------------------------
// Reading a table back from the memory image.

/// One table reachable from the root.
#[derive(Debug, Clone, Copy)]
struct Node {
    pa: u64,
    level: u32,
    bytes: u64,
    entries: u64,
    /// First IOVA it translates, and log2 of its span (the span of its parent entry).
    base: u64,
    span_lg2: u32,
    /// log2 of the span of one of its entries.
    item_lg2: u32,
    /// Physical address of the entry pointing to it (None for the root).
    parent_entry: Option<u64>,
    /// Index (in `Tree::tables`) of its parent.
    parent: Option<usize>,
}

#[derive(Debug, Default)]
struct Tree {
    tables: Vec<Node>,
    leaves: BTreeMap<u64, Mapping>,
}

impl Tree {
    fn by_pa(&self) -> BTreeMap<u64, usize> {
        self.tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.pa, i))
            .collect()
    }
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

fn entry_width<F: Format>() -> u64 {
    1 << F::ENTRY_LG2
}

fn read_entry<F: Format>(image: &[u8], pa: u64) -> u64 {
    let off = (pa - ARENA_BASE) as usize;
    let w = entry_width::<F>() as usize;
    if off + w > image.len() {
        return 0;
    }
    let mut b = [0u8; 8];
    b[..w].copy_from_slice(&image[off..off + w]);
    u64::from_le_bytes(b)
}

fn canonical<F: Format>(fmt: &F, va_bits: u32, raw: u64) -> u64 {
    match fmt.va_mode() {
        VaMode::Low => raw,
        VaMode::High => raw | !mask(va_bits),
        VaMode::SignExtended => {
            if va_bits < 64 && raw >> (va_bits - 1) & 1 == 1 {
                raw | !mask(va_bits)
            } else {
                raw
            }
        }
    }
}

fn walk<F: Format>(fmt: &F, info: &Info, image: &[u8]) -> Tree {
    let top = info.levels - 1;
    let mut tree = Tree::default();
    let va = fmt.va_bits(top);
    walk_table(fmt, top, top, info.root_pa, 0, va, None, image, &mut tree);
    assert_eq!(
        tree.by_pa().len(),
        tree.tables.len(),
        "a table is linked twice"
    );
    tree
}

#[allow(clippy::too_many_arguments)]
fn walk_table<F: Format>(
    fmt: &F,
    level: u32,
    top: u32,
    pa: u64,
    prefix: u64,
    span_lg2: u32,
    parent: Option<(usize, u64)>,
    image: &[u8],
    tree: &mut Tree,
) {
    let va_bits = fmt.va_bits(top);
    let entries_lg2 = if level == top {
        va_bits - fmt.item_lg2(top)
    } else {
        fmt.table_lg2(level)
    };
    let item_lg2 = fmt.item_lg2(level);
    let me = tree.tables.len();
    tree.tables.push(Node {
        pa,
        level,
        bytes: 1 << (entries_lg2 + F::ENTRY_LG2).max(fmt.min_table_bytes_lg2()),
        entries: 1 << entries_lg2,
        base: canonical(fmt, va_bits, prefix),
        span_lg2,
        item_lg2,
        parent_entry: parent.map(|p| p.1),
        parent: parent.map(|p| p.0),
    });
    let n = 1u64 << entries_lg2;
    let mut idx = 0;
    while idx < n {
        let at = pa + (idx << F::ENTRY_LG2);
        let e = read_entry::<F>(image, at);
        let raw = prefix | idx << item_lg2;
        match fmt.decode(level, e) {
            Pte::Empty => idx += 1,
            Pte::Table { pa: child } => {
                assert!(level > 0, "table entry at level 0");
                walk_table(
                    fmt,
                    level - 1,
                    top,
                    child,
                    raw,
                    item_lg2,
                    Some((me, at)),
                    image,
                    tree,
                );
                idx += 1;
            }
            Pte::Leaf { pa: out, run_lg2 } => {
                let size = 1u64 << (item_lg2 + run_lg2);
                tree.leaves
                    .insert(canonical(fmt, va_bits, raw), Mapping { size, pa: out });
                idx += 1 << run_lg2;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The checker.

/// True if `[iova, iova + size)` (size 0: everything) contains `[start, start + 2^lg2)`.
fn covers(iova: u64, size: u64, start: u64, len: u128) -> bool {
    if size == 0 {
        return true;
    }
    let (a, b) = (iova as u128, iova as u128 + size as u128);
    let (s, e) = (start as u128, start as u128 + len);
    a <= s && e <= b
}

/// A flush event covering `[start, start + len)` with a granule no larger than `max_gran`.
fn flush_covers(ev: &Ev, start: u64, len: u128, max_gran: u64) -> bool {
    match *ev {
        Ev::FlushAll => true,
        Ev::FlushWalk {
            iova,
            size,
            granule,
            ..
        } => covers(iova, size, start, len) && granule <= max_gran && granule != 0,
        _ => false,
    }
}

/// Something removed by an unmap and not yet synced.
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// A leaf `[base, base + size)`.
    Leaf { base: u64, size: u64 },
    /// A detached table.
    Table(Node),
}

/// Which API a workload drives.
trait Api {
    type F: Format;
    fn fmt(&self) -> &Self::F;
    fn info(&self) -> Info;
    /// The mapped bytes and the result.
    fn map(
        &mut self,
        iova: u64,
        pa: u64,
        size: u64,
        count: u64,
        prot: Prot,
    ) -> (u64, Result<(), Error>);
    fn unmap(
        &mut self,
        iova: u64,
        size: u64,
        count: u64,
        g: &mut Gather,
    ) -> (u64, Result<(), Error>);
    fn unmap_range(&mut self, iova: u64, len: u64, g: &mut Gather) -> (u64, Result<(), Error>);
    fn sync(&mut self, g: &mut Gather);
    /// One engine call per operation (the safe map may make several).
    const RAW: bool;
}

struct Raw<'a, F: Format>(PageTable<F, RecMem<'a>, RecFlush<'a>>);
struct Safe<'a, F: Format>(Table<F, RecMem<'a>, RecFlush<'a>>);

impl<'a, F: Format> Api for Raw<'a, F> {
    type F = F;
    const RAW: bool = true;
    fn fmt(&self) -> &F {
        self.0.format()
    }
    fn info(&self) -> Info {
        self.0.info()
    }
    fn map(
        &mut self,
        iova: u64,
        pa: u64,
        size: u64,
        count: u64,
        prot: Prot,
    ) -> (u64, Result<(), Error>) {
        // SAFETY: single-threaded; no hardware walks the table.
        unsafe { self.0.map_pages(iova, pa, size, count as usize, prot) }
    }
    fn unmap(
        &mut self,
        iova: u64,
        size: u64,
        count: u64,
        g: &mut Gather,
    ) -> (u64, Result<(), Error>) {
        // SAFETY: as above.
        unsafe { self.0.unmap_pages(iova, size, count as usize, g) }
    }
    fn unmap_range(&mut self, iova: u64, len: u64, g: &mut Gather) -> (u64, Result<(), Error>) {
        // SAFETY: as above.
        unsafe { self.0.unmap_range(iova, len, g) }
    }
    fn sync(&mut self, g: &mut Gather) {
        self.0.sync(g)
    }
}

impl<'a, F: Format> Api for Safe<'a, F> {
    type F = F;
    const RAW: bool = false;
    fn fmt(&self) -> &F {
        self.0.raw().format()
    }
    fn info(&self) -> Info {
        self.0.info()
    }
    fn map(
        &mut self,
        iova: u64,
        pa: u64,
        size: u64,
        count: u64,
        prot: Prot,
    ) -> (u64, Result<(), Error>) {
        let r = self.0.map(iova, pa, size * count, prot);
        (if r.is_ok() { size * count } else { 0 }, r)
    }
    fn unmap(
        &mut self,
        iova: u64,
        size: u64,
        count: u64,
        g: &mut Gather,
    ) -> (u64, Result<(), Error>) {
        match self.0.unmap(iova, size * count, g) {
            Ok(u) => (u.bytes(), Ok(())),
            Err(e) => (0, Err(e)),
        }
    }
    fn unmap_range(&mut self, iova: u64, len: u64, g: &mut Gather) -> (u64, Result<(), Error>) {
        match self.0.unmap(iova, len, g) {
            Ok(u) => (u.bytes(), Ok(())),
            Err(e) => (0, Err(e)),
        }
    }
    fn sync(&mut self, g: &mut Gather) {
        self.0.sync(g)
    }
}

/// The aperture as `(start, len)` pieces (a 2^64 range in halves).
fn everything(info: &Info) -> Vec<(u64, u64)> {
    let mut rs = vec![(info.aperture.start, info.aperture.last)];
    rs.extend(info.aperture.upper);
    let mut out = Vec::new();
    for (s, l) in rs {
        let len = (l - s).wrapping_add(1);
        if len == 0 {
            out.push((0, 1 << 63));
            out.push((1 << 63, 1 << 63));
        } else {
            out.push((s, len));
        }
    }
    out
}

/// Drives one table and checks every operation's events.
struct Checker<'a, A: Api> {
    name: String,
    api: A,
    arena: &'a ArenaMemory,
    log: &'a Log,
    coherent: bool,
    gather: Gather,
    /// `(sequence of the unmap, what it removed)`, waiting for a sync.
    pending: Vec<(usize, Pending)>,
    ops: usize,
    /// Table pages freed during maps after a flush (leftover tables replaced).
    replaced: usize,
    /// Tables detached by unmaps and freed by syncs.
    detached: usize,
    /// New tables checked for clean-before-link.
    new_tables: usize,
}

impl<'a, A: Api> Checker<'a, A> {
    fn new(name: String, api: A, arena: &'a ArenaMemory, log: &'a Log, coherent: bool) -> Self {
        Checker {
            name,
            api,
            arena,
            log,
            coherent,
            gather: Gather::new(),
            pending: Vec::new(),
            ops: 0,
            replaced: 0,
            detached: 0,
            new_tables: 0,
        }
    }

    fn report(&self) {
        eprintln!(
            "REPORT {}: {} ops, {} tables replaced by maps, {} detached by unmaps, {} new tables, {} levels",
            self.name,
            self.ops,
            self.replaced,
            self.detached,
            self.new_tables,
            self.api.info().levels
        );
    }

    fn snapshot(&self) -> (Info, Vec<u8>, Tree) {
        let info = self.api.info();
        let image = self.arena.image();
        let tree = walk(self.api.fmt(), &info, &image);
        (info, image, tree)
    }

    fn map(&mut self, iova: u64, pa: u64, size: u64, count: u64, prot: Prot) -> Result<(), Error> {
        self.ops += 1;
        let ctx = format!(
            "{} op {} map {iova:#x} {size:#x}x{count}",
            self.name, self.ops
        );
        let (info0, img0, t0) = self.snapshot();
        let from = self.log.begin();
        let (_, r) = self.api.map(iova, pa, size, count, prot);
        let ev = self.log.since(from);
        let (info1, img1, t1) = self.snapshot();
        let before = t0.by_pa();
        let after = t1.by_pa();
        let mut allocated = BTreeSet::new();
        let mut freed = BTreeSet::new();
        for (seq, e) in &ev {
            match *e {
                Ev::AddPage { .. } => panic!("{ctx}: add_page during a map"),
                Ev::Alloc { pa, .. } => {
                    allocated.insert(pa);
                }
                Ev::Free { pa, lg2 } => {
                    assert!(
                        freed.insert(pa) || allocated.contains(&pa),
                        "{ctx}: double free"
                    );
                    if let Some(&i) = before.get(&pa) {
                        // A table that was visible: replaced after a flush of its span.
                        let t = t0.tables[i];
                        assert_eq!(1u64 << lg2, t.bytes, "{ctx}: freed with another size");
                        self.check_unlinked_free(&ctx, &ev, *seq, &t0, i, &img0);
                        self.replaced += 1;
                    } else {
                        assert!(
                            allocated.contains(&pa),
                            "{ctx}: freed {pa:#x}, neither visible before nor allocated by this map"
                        );
                    }
                }
                _ => {}
            }
        }
        // Tables that disappeared were freed by this map (replaced), not leaked.
        for t in &t0.tables {
            if !after.contains_key(&t.pa) {
                assert!(
                    freed.contains(&t.pa),
                    "{ctx}: table {:#x} unlinked and not freed",
                    t.pa
                );
            }
        }
        self.check_top(&ctx, &ev, &info0, &info1);
        self.check_cleans(&ctx, &ev, &img0, &img1, &t0, &t1, &freed);
        assert_eq!(
            (t1.tables.len() + self.gather.pending_tables()) as u64,
            self.arena.stats().pages,
            "{ctx}: pages in use vs reachable tables and tables waiting for a sync"
        );
        r
    }

    fn unmap(&mut self, iova: u64, size: u64, count: u64) -> (u64, Result<(), Error>) {
        let what = format!("unmap {iova:#x} {size:#x}x{count}");
        self.unmap_with(&what, |a, g| a.unmap(iova, size, count, g))
    }

    /// Unmaps everything (in the safe API's or the raw `unmap_range`'s terms).
    fn unmap_everything(&mut self) {
        for (s, len) in everything(&self.api.info()) {
            let (_, r) = self.unmap_with("unmap everything", |a, g| a.unmap_range(s, len, g));
            r.unwrap_or_else(|e| panic!("{}: unmap everything: {e:?}", self.name));
        }
    }

    fn unmap_with(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut A, &mut Gather) -> (u64, Result<(), Error>),
    ) -> (u64, Result<(), Error>) {
        self.ops += 1;
        let ctx = format!("{} op {} {what}", self.name, self.ops);
        let (info0, img0, t0) = self.snapshot();
        let from = self.log.begin();
        let mut g = std::mem::take(&mut self.gather);
        let got = f(&mut self.api, &mut g);
        self.gather = g;
        let ev = self.log.since(from);
        let (info1, img1, t1) = self.snapshot();
        // The top changes only when the safe table lowers a grown top again: then the
        // levels go down (never below the format's initial levels), the hardware hears of
        // the new root through exactly one `top_changed`, and nothing else changes.
        let top_lowered = info0 != info1;
        if top_lowered {
            assert!(!A::RAW, "{ctx}: a raw unmap changed the top");
            assert!(
                info1.levels < info0.levels && info1.levels >= self.api.fmt().levels(),
                "{ctx}: unmap changed the top from {} to {} levels",
                info0.levels,
                info1.levels
            );
            assert_eq!(
                Info {
                    levels: info0.levels,
                    root_pa: info0.root_pa,
                    hw: info0.hw,
                    ..info1
                },
                info0,
                "{ctx}: unmap changed more than the top"
            );
            let tops: Vec<&Ev> = ev
                .iter()
                .map(|(_, e)| e)
                .filter(|e| matches!(e, Ev::TopChanged { .. }))
                .collect();
            assert!(
                matches!(tops[..], [Ev::TopChanged { root_pa, levels }]
                    if *root_pa == info1.root_pa && *levels == info1.levels),
                "{ctx}: top lowered with {tops:?}"
            );
        }
        let removed: Vec<(u64, Mapping)> = t0
            .leaves
            .iter()
            .filter(|(b, m)| t1.leaves.get(b) != Some(m))
            .map(|(&b, &m)| (b, m))
            .collect();
        assert!(
            t1.leaves.iter().all(|(b, m)| t0.leaves.get(b) == Some(m)),
            "{ctx}: unmap created a leaf"
        );
        assert_eq!(
            got.0,
            removed.iter().map(|(_, m)| m.size).sum::<u64>(),
            "{ctx}: reported bytes vs leaves removed"
        );
        // Every removed leaf is reported once with add_page, except the leaves of a
        // table detached whole (the table's span goes to the gather as one range, as
        // Linux flushes a removed table's span as a walk); nothing else is reported.
        let mut reported: Vec<(u64, u64)> = ev
            .iter()
            .filter_map(|(_, e)| match *e {
                Ev::AddPage { iova, size } => Some((iova, size)),
                _ => None,
            })
            .collect();
        reported.sort_unstable();
        let detached: Vec<(u64, u32)> = t0
            .tables
            .iter()
            .filter(|t| t.parent_entry.is_some() && !t1.by_pa().contains_key(&t.pa))
            .map(|t| (t.base, t.span_lg2))
            .collect();
        let in_detached = |b: u64| {
            detached
                .iter()
                .any(|&(base, lg2)| b >= base && (b - base) >> lg2 == 0)
        };
        let mut want: Vec<(u64, u64)> = removed
            .iter()
            .filter(|(b, _)| !in_detached(*b))
            .map(|(b, m)| (*b, m.size))
            .collect();
        want.sort_unstable();
        let reported_outside: Vec<(u64, u64)> = reported
            .iter()
            .copied()
            .filter(|&(b, _)| !in_detached(b))
            .collect();
        assert_eq!(
            reported_outside, want,
            "{ctx}: add_page calls vs leaves removed"
        );
        let removed_set: BTreeSet<(u64, u64)> = removed.iter().map(|(b, m)| (*b, m.size)).collect();
        let mut seen = BTreeSet::new();
        for r in &reported {
            assert!(
                removed_set.contains(r) && seen.insert(*r),
                "{ctx}: add_page {r:?} is not a removed leaf, or reported twice"
            );
        }
        if let Some(g) = self.gather.range() {
            for (b, m) in &removed {
                if in_detached(*b) {
                    assert!(
                        g.0 <= *b && b + (m.size - 1) <= g.1,
                        "{ctx}: leaf {b:#x} of a detached table outside the gather"
                    );
                }
            }
        }
        for (_, e) in &ev {
            assert!(
                !matches!(e, Ev::Free { .. } | Ev::Alloc { .. })
                    && (top_lowered || !matches!(e, Ev::TopChanged { .. })),
                "{ctx}: {e:?} during an unmap (tables are freed only by sync)"
            );
        }
        let after = t1.by_pa();
        if !self.coherent {
            // A detached table's link (in a table that stays) is cleaned by the unmap, so
            // the walker no longer reaches it when the sync flushes.
            for t in t0.tables.iter().filter(|t| !after.contains_key(&t.pa)) {
                let Some(parent) = t.parent.map(|i| t0.tables[i]) else {
                    continue; // an old top: unlinked by `top_changed`, not by an entry
                };
                if !after.contains_key(&parent.pa) {
                    continue;
                }
                let pe = t.parent_entry.unwrap();
                let link = read_entry::<<A as Api>::F>(&img0, pe);
                assert!(
                    ev.iter()
                        .any(|(_, e)| matches!(e, Ev::Clean { pa, len, image }
                        if *pa <= pe && pe < pa + len
                            && read_entry::<<A as Api>::F>(image, pe) != link)),
                    "{ctx}: the entry {pe:#x} detaching table {:#x} was not cleaned",
                    t.pa
                );
            }
        }
        for (b, m) in removed {
            self.pending.push((
                from,
                Pending::Leaf {
                    base: b,
                    size: m.size,
                },
            ));
        }
        for t in &t0.tables {
            if !after.contains_key(&t.pa) {
                self.pending.push((from, Pending::Table(*t)));
            }
        }
        assert_eq!(
            self.gather.pending_tables(),
            self.pending
                .iter()
                .filter(|p| matches!(p.1, Pending::Table(_)))
                .count(),
            "{ctx}: tables waiting in the gather"
        );
        self.check_cleans(&ctx, &ev, &img0, &img1, &t0, &t1, &BTreeSet::new());
        got
    }

    fn sync(&mut self) {
        self.ops += 1;
        let ctx = format!("{} op {} sync", self.name, self.ops);
        let from = self.log.begin();
        let mut g = std::mem::take(&mut self.gather);
        self.api.sync(&mut g);
        assert!(g.is_empty(), "{ctx}: gather not empty after sync");
        self.gather = g;
        let ev = self.log.since(from);
        let mut freed = BTreeMap::new();
        for (seq, e) in &ev {
            match *e {
                Ev::Free { pa, lg2 } => {
                    assert!(
                        freed.insert(pa, (*seq, lg2)).is_none(),
                        "{ctx}: double free"
                    );
                }
                Ev::Alloc { .. }
                | Ev::AddPage { .. }
                | Ev::TopChanged { .. }
                | Ev::Clean { .. } => {
                    panic!("{ctx}: {e:?} during sync")
                }
                _ => {}
            }
        }
        for (_, p) in std::mem::take(&mut self.pending) {
            match p {
                Pending::Leaf { base, size } => assert!(
                    ev.iter()
                        .any(|(_, f)| flush_covers(f, base, size as u128, size)),
                    "{ctx}: unmapped {base:#x}+{size:#x} not invalidated"
                ),
                Pending::Table(t) => {
                    let (seq, lg2) = freed
                        .remove(&t.pa)
                        .unwrap_or_else(|| panic!("{ctx}: detached table {:#x} not freed", t.pa));
                    assert_eq!(1u64 << lg2, t.bytes, "{ctx}: freed with another size");
                    assert!(
                        ev.iter().any(|(s, f)| *s < seq
                            && flush_covers(f, t.base, 1u128 << t.span_lg2, 1 << t.item_lg2)),
                        "{ctx}: table {:#x} (span {:#x}+2^{}) freed before a flush of its span",
                        t.pa,
                        t.base,
                        t.span_lg2
                    );
                    self.detached += 1;
                }
            }
        }
        assert!(freed.is_empty(), "{ctx}: freed {freed:x?}, never detached");
        let (_, _, t) = self.snapshot();
        assert_eq!(
            t.tables.len() as u64,
            self.arena.stats().pages,
            "{ctx}: pages in use vs reachable tables"
        );
    }

    /// A table that hardware could reach (`t0.tables[i]`) freed at `free_seq`: a flush of
    /// its span came before, at a time its link was already gone from memory as the
    /// walker sees it (for an incoherent walker: the cleared link was cleaned before the
    /// flush). Only the top of a freed subtree has a link to check.
    fn check_unlinked_free(
        &self,
        ctx: &str,
        ev: &[(usize, Ev)],
        free_seq: usize,
        t0: &Tree,
        i: usize,
        img0: &[u8],
    ) {
        type F<A> = <A as Api>::F;
        let t = t0.tables[i];
        let flushes: Vec<(usize, Option<&Vec<u8>>)> = ev
            .iter()
            .filter(|(s, f)| {
                *s < free_seq && flush_covers(f, t.base, 1u128 << t.span_lg2, 1 << t.item_lg2)
            })
            .map(|(s, f)| match f {
                Ev::FlushWalk { image, .. } => (*s, image.as_ref()),
                _ => (*s, None),
            })
            .collect();
        assert!(
            !flushes.is_empty(),
            "{ctx}: table {:#x} (span {:#x}+2^{}) freed before a flush of its span",
            t.pa,
            t.base,
            t.span_lg2
        );
        let Some(pe) = t.parent_entry else {
            return; // an old root
        };
        let parent_pa = t0.tables[t.parent.unwrap()].pa;
        let parent_freed = ev
            .iter()
            .any(|(_, e)| matches!(*e, Ev::Free { pa, .. } if pa == parent_pa));
        if parent_freed {
            return; // unlinked with its parent
        }
        let link = read_entry::<F<A>>(img0, pe);
        // Break before make: at the flush, the link is gone from the table.
        let ok = flushes
            .iter()
            .any(|(_, img)| img.is_none_or(|img| read_entry::<F<A>>(img, pe) != link));
        assert!(
            ok,
            "{ctx}: table {:#x} still linked at {pe:#x} when its span was flushed",
            t.pa
        );
        if !self.coherent {
            // The walker reads memory: the cleared link must be cleaned before the flush.
            let cleaned = ev.iter().any(|(c, e)| match e {
                Ev::Clean { pa, len, image } => {
                    *pa <= pe
                        && pe < pa + len
                        && read_entry::<F<A>>(image, pe) != link
                        && flushes.iter().any(|(f, _)| c < f)
                }
                _ => false,
            });
            assert!(
                cleaned,
                "{ctx}: table {:#x} freed after a flush, but the entry {pe:#x} unlinking it \
                 was not cleaned before the flush (an incoherent walker can still reach it)",
                t.pa
            );
        }
    }

    /// A grown top is announced once, with the new root and level count; otherwise never.
    fn check_top(&self, ctx: &str, ev: &[(usize, Ev)], info0: &Info, info1: &Info) {
        let tops: Vec<(u64, u32)> = ev
            .iter()
            .filter_map(|(_, e)| match *e {
                Ev::TopChanged { root_pa, levels } => Some((root_pa, levels)),
                _ => None,
            })
            .collect();
        if info0.root_pa == info1.root_pa {
            assert!(tops.is_empty(), "{ctx}: top_changed without a new top");
        } else {
            assert!(info1.levels > info0.levels, "{ctx}: the top shrank");
            assert_eq!(tops, [(info1.root_pa, info1.levels)], "{ctx}: top_changed");
        }
    }

    /// Cleaning for an incoherent walker (and none for a coherent one).
    #[allow(clippy::too_many_arguments)]
    fn check_cleans(
        &mut self,
        ctx: &str,
        ev: &[(usize, Ev)],
        img0: &[u8],
        img1: &[u8],
        t0: &Tree,
        t1: &Tree,
        freed: &BTreeSet<u64>,
    ) {
        type F<A> = <A as Api>::F;
        let w = entry_width::<F<A>>();
        let cleans: Vec<(usize, u64, u64, &Vec<u8>)> = ev
            .iter()
            .filter_map(|(s, e)| match e {
                Ev::Clean { pa, len, image } => Some((*s, *pa, *len, image)),
                _ => None,
            })
            .collect();
        if self.coherent {
            assert!(cleans.is_empty(), "{ctx}: a coherent table cleaned");
            return;
        }
        let before = t0.by_pa();
        let allocated: BTreeMap<u64, u32> = ev
            .iter()
            .filter_map(|(_, e)| match *e {
                Ev::Alloc { pa, lg2 } => Some((pa, lg2)),
                _ => None,
            })
            .collect();
        // Which table page each clean falls in: tables before, after, or allocated now.
        let mut pages: BTreeMap<u64, u64> = BTreeMap::new();
        for t in t0.tables.iter().chain(&t1.tables) {
            pages.insert(t.pa, t.bytes);
        }
        for (&pa, &lg2) in &allocated {
            pages.insert(pa, 1 << lg2);
        }
        let mut per_table: BTreeMap<u64, usize> = BTreeMap::new();
        for &(_, pa, len, _) in &cleans {
            let (&tpa, &bytes) = pages
                .range(..=pa)
                .next_back()
                .unwrap_or_else(|| panic!("{ctx}: clean of {pa:#x} outside every table"));
            assert!(
                len != 0 && pa + len <= tpa + bytes && pa % w == 0 && len % w == 0,
                "{ctx}: clean {pa:#x}+{len:#x} is not whole entries inside table {tpa:#x}"
            );
            *per_table.entry(tpa).or_default() += 1;
        }
        // Documented limitation: the safe map cleans a table once per page-size piece (it
        // makes one engine call per piece), not once per whole safe operation, so the
        // count is checked for raw operations only.
        if A::RAW {
            // Once per table, except that replacing an empty leftover table by a leaf
            // (break-before-make: clear, clean, flush, free, write) cleans the table
            // holding the link twice: the cleared link before the walk flush, the written
            // entries after. So at most 1 + the number of walk flushes.
            let replacements = ev
                .iter()
                .filter(|(_, e)| matches!(e, Ev::FlushWalk { .. }))
                .count();
            for (tpa, n) in &per_table {
                assert!(
                    *n == 1 || *n <= 1 + replacements,
                    "{ctx}: table {tpa:#x} cleaned {n} times in one operation"
                );
            }
        }
        // The last clean covering an entry holds its final value.
        let last_clean = |pa: u64| {
            cleans
                .iter()
                .rev()
                .find(|&&(_, c, len, _)| c <= pa && pa < c + len)
        };
        for (ti, t) in t1.tables.iter().enumerate() {
            let live = before.contains_key(&t.pa) && !freed.contains(&t.pa);
            let mut changed = Vec::new();
            for i in 0..t.entries {
                let at = t.pa + i * w;
                let now = read_entry::<F<A>>(img1, at);
                if live && read_entry::<F<A>>(img0, at) == now {
                    continue;
                }
                changed.push(at);
                let (seq, ..) = last_clean(at).unwrap_or_else(|| {
                    panic!(
                        "{ctx}: entry {at:#x} (table {:#x}) written but not cleaned",
                        t.pa
                    )
                });
                let (_, _, _, snap) = cleans.iter().find(|c| c.0 == *seq).unwrap();
                assert_eq!(
                    read_entry::<F<A>>(snap, at),
                    now,
                    "{ctx}: entry {at:#x} changed after its last clean"
                );
            }
            if live {
                // Each clean of a live table starts and ends at an entry it changed.
                // A raw operation's last clean spans exactly the changed entries; the
                // ones before it are break-before-make clears, each of the one entry
                // that linked a replaced table (the safe map's per-piece cleans, a
                // documented limitation, each span some).
                let mine: Vec<(u64, u64)> = cleans
                    .iter()
                    .filter(|c| t.pa <= c.1 && c.1 < t.pa + t.bytes)
                    .map(|&(_, c, len, _)| (c, len))
                    .collect();
                for (k, &(c, len)) in mine.iter().enumerate() {
                    assert!(
                        changed.contains(&c) && changed.contains(&(c + len - w)),
                        "{ctx}: clean {c:#x}+{len:#x} of table {:#x} is wider than its writes",
                        t.pa
                    );
                    if !A::RAW {
                        continue;
                    }
                    if k + 1 == mine.len() {
                        assert_eq!(
                            (c, c + len),
                            (changed[0], changed[changed.len() - 1] + w),
                            "{ctx}: clean range of table {:#x}",
                            t.pa
                        );
                    } else {
                        assert!(
                            len == w
                                && t0
                                    .tables
                                    .iter()
                                    .any(|d| d.parent_entry == Some(c) && freed.contains(&d.pa)),
                            "{ctx}: clean {c:#x}+{len:#x} of table {:#x} before its last \
                             is not the clear of a replaced table's link",
                            t.pa
                        );
                    }
                }
                continue;
            }
            // A new table: cleaned whole at a time the walker could not reach it yet.
            // Reachable means: linked from a table that was live all along through link
            // entries already in memory (as the snapshot taken at that clean shows), or
            // hanging off a new top that has been announced. (The safe map makes several
            // engine calls, so a table may be linked below one that an earlier call of the
            // same operation published.)
            self.new_tables += 1;
            let top_seq = ev
                .iter()
                .find(|(_, e)| matches!(e, Ev::TopChanged { .. }))
                .map(|(s, _)| *s);
            let live = |n: &Node| before.contains_key(&n.pa) && !freed.contains(&n.pa);
            let reachable = |snap: &[u8], seq: usize| {
                let mut x = ti;
                loop {
                    let n = &t1.tables[x];
                    if live(n) {
                        return true;
                    }
                    match (n.parent, n.parent_entry) {
                        (Some(p), Some(pe)) => {
                            if read_entry::<F<A>>(snap, pe) != read_entry::<F<A>>(img1, pe) {
                                return false;
                            }
                            x = p;
                        }
                        _ => return top_seq.is_some_and(|s| s < seq),
                    }
                }
            };
            let whole = cleans
                .iter()
                .find(|c| c.1 == t.pa && c.2 == t.bytes && !reachable(c.3, c.0))
                .unwrap_or_else(|| {
                    panic!(
                        "{ctx}: new table {:#x} not cleaned whole before the walker could \
                         reach it (top_changed at {top_seq:?}; cleans {:x?})",
                        t.pa,
                        cleans.iter().map(|c| (c.0, c.1, c.2)).collect::<Vec<_>>()
                    )
                });
            // Linked from a table that was live before: the clean of the new table comes
            // before the clean of the entry linking it.
            if let (Some(p), Some(pe)) = (t.parent, t.parent_entry)
                && live(&t1.tables[p])
            {
                let link = read_entry::<F<A>>(img1, pe);
                let parent_clean = cleans
                    .iter()
                    .find(|c| c.1 <= pe && pe < c.1 + c.2 && read_entry::<F<A>>(c.3, pe) == link)
                    .unwrap_or_else(|| panic!("{ctx}: link entry {pe:#x} never cleaned"));
                assert!(
                    whole.0 < parent_clean.0,
                    "{ctx}: table {:#x} cleaned after the entry linking it",
                    t.pa
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Workloads.

/// SplitMix64.
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
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A seeded mixed workload, the same for the raw and the safe API: maps and unmaps spread
/// over the aperture (both halves of a sign-extended one), whole leaf tables filled and
/// unmapped in one piece or in halves and then covered by one large page, unmaps of
/// existing leaves, several unmaps gathered before one sync; finally everything is
/// unmapped.
fn run_workload<A: Api>(ck: &mut Checker<'_, A>, seed: u64, n: usize) {
    let mut rng = Rng(seed);
    let info = ck.api.info();
    let fmt_t1 = 1u64 << ck.api.fmt().item_lg2(1);
    let sizes: Vec<u64> = (0..64)
        .map(|b| 1u64 << b)
        .filter(|s| info.pgsize_bitmap & s != 0)
        .collect();
    let oa_mask = mask(info.oa_bits);
    let s0 = sizes[0];
    // Fixed edges first: the bottom of the aperture to physical address 0 (`iova | paddr`
    // is 0) and the bottom of the upper half of a sign-extended aperture.
    let mut edges = vec![info.aperture.start];
    edges.extend(info.aperture.upper.map(|u| u.0));
    for iova in edges {
        let r = ck.map(iova, 0, s0, 4, RW);
        assert_eq!(r, Ok(()), "{}: map {iova:#x} -> 0", ck.name);
    }
    let mut unsynced = 0;
    let mut i = 0;
    while i < n {
        i += 1;
        let kind = rng.below(100);
        if kind < 40 {
            let (iova, size, count) = place(
                &info,
                rng.next() as u8,
                rng.next() as u16,
                rng.next() as u8,
                rng.next() as u8,
                true,
            );
            let count = count.min((oa_mask / size).max(1));
            let pa = rng.next().wrapping_mul(size) & oa_mask & !(size - 1);
            let pa = if pa.checked_add(count * size - 1).is_none_or(|l| l > oa_mask) {
                0
            } else {
                pa
            };
            let _ = ck.map(iova, pa, size, count, prot_of(rng.next() as u8));
        } else if kind < 50 {
            // Fill a whole leaf table, then unmap it whole or in halves (+ a large page).
            // (The smallest page when none does: DART's 16K tables hold 2048 pages.)
            let fill = *sizes.iter().find(|&&s| fmt_t1 / s <= 1024).unwrap_or(&s0);
            let (iova, _, _) = place(&info, 0, rng.next() as u16, 0, rng.next() as u8, true);
            let iova = iova & !(fmt_t1 - 1);
            if !info.aperture.contains(iova, iova + (fmt_t1 - 1)) {
                continue;
            }
            let count = fmt_t1 / fill;
            if ck.map(iova, fmt_t1, fill, count, Prot::READ).is_err() {
                continue;
            }
            if rng.below(2) == 0 {
                let _ = ck.unmap(iova, fmt_t1, 1);
            } else {
                let half = count / 2;
                let _ = ck.unmap(iova, fill, half);
                let _ = ck.unmap(iova + half * fill, fill, count - half);
                if rng.below(2) == 0 {
                    ck.sync();
                    unsynced = 0;
                }
                let _ = ck.map(iova, 2 * fmt_t1, fmt_t1, 1, Prot::WRITE);
            }
            unsynced += 1;
        } else if kind < 75 {
            // Unmap around an existing leaf, or at a random place.
            let (_, _, tree) = ck.snapshot();
            let (iova, size, count) = if !tree.leaves.is_empty() && rng.below(3) != 0 {
                let k = rng.below(tree.leaves.len() as u64) as usize;
                let (&b, &m) = tree.leaves.iter().nth(k).unwrap();
                (b, m.size, 1 + rng.below(3))
            } else {
                place(
                    &info,
                    rng.next() as u8,
                    rng.next() as u16,
                    rng.next() as u8,
                    rng.next() as u8,
                    false,
                )
            };
            if !info
                .aperture
                .contains(iova, iova.wrapping_add(size * count - 1))
            {
                continue;
            }
            let _ = ck.unmap(iova, size, count);
            unsynced += 1;
        } else {
            ck.sync();
            unsynced = 0;
        }
        if unsynced >= 3 {
            ck.sync();
            unsynced = 0;
        }
    }
    ck.sync();
    ck.unmap_everything();
    ck.sync();
    assert_eq!(
        ck.arena.stats().pages,
        1,
        "{}: only the top table remains after unmapping everything",
        ck.name
    );
    // 2^63 to physical address 0 (`iova | paddr` is 2^63), where the aperture reaches it
    // (for a dynamic top, this grows it to the largest top).
    let high = 1u64 << 63;
    if info.aperture.contains(high, high + (s0 - 1)) {
        assert_eq!(
            ck.map(high, 0, s0, 1, RW),
            Ok(()),
            "{}: map 2^63 -> 0",
            ck.name
        );
        ck.unmap_everything();
        ck.sync();
        assert_eq!(ck.arena.stats().pages, 1, "{}: after 2^63", ck.name);
    }
}

fn options(coherent: bool) -> Options {
    Options {
        coherent_walk: coherent,
        overlap: OverlapPolicy::Silent,
    }
}

/// Runs the workload through the raw and the safe API, coherent and not.
fn protocol<F: Format + Clone>(name: &str, fmt: F, seed: u64, ops: usize) {
    for coherent in [true, false] {
        let arena = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
        let log = Log::default();
        let mem = RecMem {
            arena: &arena,
            log: &log,
        };
        let ops_ = RecFlush {
            log: &log,
            snap: Some(&arena),
        };
        let pt = PageTable::with_options(fmt.clone(), mem, ops_, options(coherent)).unwrap();
        let mut ck = Checker::new(
            format!("{name} raw coherent={coherent}"),
            Raw(pt),
            &arena,
            &log,
            coherent,
        );
        run_workload(&mut ck, seed, ops);
        ck.report();

        let arena = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
        let log = Log::default();
        let mem = RecMem {
            arena: &arena,
            log: &log,
        };
        let ops_ = RecFlush {
            log: &log,
            snap: Some(&arena),
        };
        let t = Table::with_options(fmt.clone(), mem, ops_, options(coherent)).unwrap();
        let mut ck = Checker::new(
            format!("{name} safe coherent={coherent}"),
            Safe(t),
            &arena,
            &log,
            coherent,
        );
        run_workload(&mut ck, seed, ops);
        ck.report();
    }
}

/// The configurations this suite ran before it iterated the catalogue, with their seeds
/// and workload lengths then (shorter for 64K pages). The catalogue's other entries run
/// a 40-operation workload with a seed from their label, to keep the suite's time.
const FULL: &[(&str, u64, usize)] = &[
    ("arm64-s1/4K", 11, 150),
    ("arm64-s1/64K", 12, 80),
    ("arm64-s2/4K/ias40", 13, 150),
    ("amdv1/dynamic-top", 14, 150),
    ("x86-64/4-level", 15, 150),
    ("armv7s", 16, 150),
];

/// The protocol check for one catalogue configuration.
fn protocol_config<F: Format + Clone>(label: &str, fmt: F) {
    let (seed, ops) = FULL
        .iter()
        .find(|(l, _, _)| *l == label)
        .map_or((common::label_seed(label), 40), |&(_, seed, n)| (seed, n));
    protocol(label, fmt, seed, ops);
}

common::config_tests!(protocol, protocol_config);

/// Seeds that once failed, each with its configuration and workload length: a 16 GiB
/// contiguous block over an empty two-table subtree (the walk flush's granule, and the
/// break-before-make clean of the cleared link, on arm64-s2/4K/ias40); a safe map whose
/// pieces each grew the dynamic top (two `top_changed` for one request, amdv1/1-to-4).
const REGRESSIONS: &[(&str, u64, usize)] = &[
    ("arm64-s2/4K/ias40", 0x435d_8964_2bb4_3cd1, 150),
    ("amdv1/1-to-4", 0x3898_d190_f9eb_dacc, 150),
];

#[test]
fn regression_seeds() {
    let cfgs: Vec<_> = common::configs()
        .into_iter()
        .filter(|c| REGRESSIONS.iter().any(|r| r.0 == c.label))
        .collect();
    assert_eq!(
        cfgs.len(),
        REGRESSIONS.len(),
        "a regression's label left the catalogue"
    );
    common::for_each_config!(cfgs, |label, f| {
        for &(l, seed, ops) in REGRESSIONS {
            if l == label {
                protocol(label, f, seed, ops);
            }
        }
    });
}

/// A label above that the catalogue no longer has would silently lose its workload.
#[test]
fn full_ops_labels_are_in_the_catalogue() {
    let labels: Vec<&str> = common::configs().iter().map(|c| c.label).collect();
    for (l, _, _) in FULL {
        assert!(labels.contains(l), "{l} is not in the catalogue");
    }
}

// ---------------------------------------------------------------------------------------
// Directed scenarios, with the exact events.

type RawPt<'a, F> = PageTable<F, RecMem<'a>, RecFlush<'a>>;

fn raw_table<'a, F: Format>(
    fmt: F,
    arena: &'a ArenaMemory,
    log: &'a Log,
    coherent: bool,
) -> RawPt<'a, F> {
    let mem = RecMem { arena, log };
    let ops = RecFlush {
        log,
        snap: Some(arena),
    };
    PageTable::with_options(fmt, mem, ops, options(coherent)).unwrap()
}

/// The events without images, for exact comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum E {
    Walk(u64, u64, u64),
    Top(u64, u32),
    Alloc(u64),
    Free(u64),
    Clean(u64, u64),
    Add(u64, u64),
    All,
}

fn plain(ev: &[(usize, Ev)]) -> Vec<E> {
    ev.iter()
        .map(|(_, e)| match *e {
            Ev::FlushAll => E::All,
            Ev::FlushWalk {
                iova,
                size,
                granule,
                ..
            } => E::Walk(iova, size, granule),
            Ev::AddPage { iova, size } => E::Add(iova, size),
            Ev::TopChanged { root_pa, levels } => E::Top(root_pa, levels),
            Ev::Alloc { pa, .. } => E::Alloc(pa),
            Ev::Free { pa, .. } => E::Free(pa),
            Ev::Clean { pa, len, .. } => E::Clean(pa, len),
        })
        .collect()
}

const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;
const G1: u64 = 0x4000_0000;
const RW: Prot = Prot::READ.union(Prot::WRITE);

/// Raw API: an emptied leaf table left linked by partial unmaps is replaced by a 2 MiB
/// block: break (link cleared), flush of its span at the leaf granule, free, make. No
/// allocation, nothing else freed.
#[test]
fn leftover_table_replaced_break_before_make() {
    let arena = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
    let log = Log::default();
    let pt = raw_table(arm(Stage::S1, Granule::K4, 48, 48), &arena, &log, true);
    let mut g = Gather::new();
    // SAFETY: single-threaded; no hardware walks the table.
    unsafe {
        assert_eq!(pt.map_pages(M2, 0x100_0000, K4, 512, RW), (M2, Ok(())));
        assert_eq!(pt.unmap_pages(M2, K4, 256, &mut g), (M2 / 2, Ok(())));
        assert_eq!(
            pt.unmap_pages(M2 + M2 / 2, K4, 256, &mut g),
            (M2 / 2, Ok(()))
        );
    }
    pt.sync(&mut g);
    assert_eq!(
        arena.stats().pages,
        4,
        "the emptied leaf table stays linked"
    );
    let info = pt.info();
    let tree = walk(pt.format(), &info, &arena.image());
    let leaf_table = *tree.tables.iter().find(|t| t.level == 0).unwrap();
    let link_at = leaf_table.parent_entry.unwrap();

    let from = log.begin();
    // SAFETY: as above.
    let got = unsafe { pt.map_pages(M2, 0x4000_0000, M2, 1, RW) };
    assert_eq!(got, (M2, Ok(())));
    let ev = log.since(from);
    assert_eq!(
        plain(&ev),
        [E::Walk(M2, M2, K4), E::Free(leaf_table.pa)],
        "flush of the table's span, then its free"
    );
    let Ev::FlushWalk {
        image: Some(img), ..
    } = &ev[0].1
    else {
        unreachable!()
    };
    assert_eq!(
        read_entry::<ArmLpae>(img, link_at),
        0,
        "link cleared before the flush"
    );
    // SAFETY: as above.
    let tr = unsafe { pt.translate(M2 + 0x1234) }.unwrap();
    assert_eq!((tr.pa, tr.iova_base, tr.size), (0x4000_1234, M2, M2));
    assert_eq!(arena.stats().pages, 3);
}

/// Raw API: an empty subtree two tables deep (a level-1 table linking an emptied leaf
/// table) replaced by a 1 GiB block: the walk flush names the leaf table's 4 KiB granule,
/// the smallest item of any table it frees, not the 2 MiB items of the table the block's
/// entry linked (a walk-cache invalidation stepping by 2 MiB would skip the leaf table's
/// walks). Found by a seeded run of arm64-s2/4K/ias40 (a 16 GiB contiguous block over a
/// leftover 64 KiB mapping's tables).
#[test]
fn nested_leftover_subtree_flushed_at_its_smallest_granule() {
    let arena = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
    let log = Log::default();
    let pt = raw_table(arm(Stage::S1, Granule::K4, 48, 48), &arena, &log, true);
    let mut g = Gather::new();
    // SAFETY: single-threaded; no hardware walks the table.
    unsafe {
        assert_eq!(pt.map_pages(G1 + M2, 0x100_0000, K4, 1, RW), (K4, Ok(())));
        assert_eq!(pt.unmap_pages(G1 + M2, K4, 1, &mut g), (K4, Ok(())));
    }
    pt.sync(&mut g);
    let tree = walk(pt.format(), &pt.info(), &arena.image());
    let leaf_table = tree.tables.iter().find(|t| t.level == 0).unwrap().pa;
    let mid_table = tree.tables.iter().find(|t| t.level == 1).unwrap().pa;
    let from = log.begin();
    // SAFETY: as above.
    let got = unsafe { pt.map_pages(G1, 0x4000_0000, G1, 1, RW) };
    assert_eq!(got, (G1, Ok(())));
    assert_eq!(
        plain(&log.since(from)),
        [E::Walk(G1, G1, K4), E::Free(leaf_table), E::Free(mid_table)],
        "one flush of the block's span at the leaf tables' granule, then both frees"
    );
}

/// AMD v1 from one level: a 1 GiB page at 0 needs a top at level 2. The two new levels
/// are allocated and announced first; the chain (a level-1 table holding the empty old
/// root) is then replaced by the leaf: one flush of [0, 1 GiB) at the old root's 4 KiB
/// granule (the smallest item of the tables it frees), then the old root and the chain
/// table are freed.
fn growth_replaces_old_root(safe: bool) {
    let fmt = AmdV1::new(AmdV1Config {
        levels: 1,
        ..AmdV1Config::default()
    })
    .unwrap();
    let arena = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
    let log = Log::default();
    let mem = RecMem {
        arena: &arena,
        log: &log,
    };
    let ops = RecFlush {
        log: &log,
        snap: None,
    };
    let mut api: Box<dyn FnMut() -> (Result<(), Error>, Info)> = if safe {
        let mut t = Table::with_options(fmt, mem, ops, options(true)).unwrap();
        Box::new(move || (t.map(0, 0x8000_0000, G1, RW), t.info()))
    } else {
        let pt = PageTable::with_options(fmt, mem, ops, options(true)).unwrap();
        // SAFETY: single-threaded; no hardware walks the table.
        Box::new(move || {
            (
                // SAFETY: single-threaded; no hardware walks the table.
                unsafe { pt.map_pages(0, 0x8000_0000, G1, 1, RW) }.1,
                pt.info(),
            )
        })
    };
    let old_root = ARENA_BASE; // the first table of the arena
    let from = log.begin();
    let (r, info) = api();
    assert_eq!(r, Ok(()), "safe={safe}");
    assert_eq!(info.levels, 3, "safe={safe}");
    let ev = plain(&log.since(from));
    let root = info.root_pa;
    match ev.as_slice() {
        [
            E::Alloc(p),
            E::Alloc(q),
            E::Top(r, 3),
            E::Walk(0, G1, K4),
            E::Free(f1),
            E::Free(f2),
        ] if *r == root
            && (root == *p || root == *q)
            && *f1 == old_root
            && *f2 == if root == *p { *q } else { *p } => {}
        other => panic!("safe={safe}: {other:x?}"),
    }
    assert_eq!(
        arena.stats().pages,
        1,
        "safe={safe}: only the new top remains"
    );
}

#[test]
fn growth_replaces_the_empty_old_root_raw() {
    growth_replaces_old_root(false);
}

#[test]
fn growth_replaces_the_empty_old_root_safe() {
    growth_replaces_old_root(true);
}

/// ARM 4K, 4 levels, incoherent walker, raw API: one page on an empty table creates three
/// tables, each cleaned whole before its link is written (deepest first), then the one
/// root entry; unmapping the page cleans exactly its entry; the sync flushes exactly it.
#[test]
fn incoherent_raw_map_and_unmap_clean_exactly() {
    let arena = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
    let log = Log::default();
    let pt = raw_table(arm(Stage::S1, Granule::K4, 48, 48), &arena, &log, false);
    let root = pt.info().root_pa;
    assert_eq!(root, ARENA_BASE);
    let (l2, l1, l0) = (root + K4, root + 2 * K4, root + 3 * K4);
    let from = log.begin();
    // SAFETY: single-threaded; no hardware walks the table.
    let got = unsafe { pt.map_pages(K4, 0x8000_0000, K4, 1, RW) };
    assert_eq!(got, (K4, Ok(())));
    assert_eq!(
        plain(&log.since(from)),
        [
            E::Alloc(l2),
            E::Alloc(l1),
            E::Alloc(l0),
            E::Clean(l0, K4),
            E::Clean(l1, K4),
            E::Clean(l2, K4),
            E::Clean(root, 8),
        ]
    );
    let mut g = Gather::new();
    let from = log.begin();
    // SAFETY: as above.
    let got = unsafe { pt.unmap_pages(K4, K4, 1, &mut g) };
    assert_eq!(got, (K4, Ok(())));
    assert_eq!(
        plain(&log.since(from)),
        [E::Add(K4, K4), E::Clean(l0 + 8, 8)]
    );
    let from = log.begin();
    pt.sync(&mut g);
    assert_eq!(plain(&log.since(from)), [E::Walk(K4, K4, K4)]);
    assert_eq!(
        arena.stats().pages,
        4,
        "the raw API leaves the emptied tables"
    );
}

/// The safe API reclaims the tables an unmap empties: each unlink is cleaned (incoherent
/// walker) during the unmap; the sync flushes their whole span at the leaf granule once,
/// then frees them.
#[test]
fn safe_unmap_reclaims_emptied_tables_after_the_flush() {
    for coherent in [true, false] {
        let arena = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
        let log = Log::default();
        let mem = RecMem {
            arena: &arena,
            log: &log,
        };
        let ops = RecFlush {
            log: &log,
            snap: None,
        };
        let fmt = arm(Stage::S1, Granule::K4, 48, 48);
        let mut t = Table::with_options(fmt, mem, ops, options(coherent)).unwrap();
        let root = t.info().root_pa;
        t.map(K4, 0x8000_0000, K4, RW).unwrap();
        let tree = walk(t.raw().format(), &t.info(), &arena.image());
        let pa_at = |level: u32| tree.tables.iter().find(|n| n.level == level).unwrap().pa;
        let (l2, l1, l0) = (pa_at(2), pa_at(1), pa_at(0));
        let mut g = Gather::new();
        let from = log.begin();
        assert_eq!(t.unmap(K4, K4, &mut g).unwrap().bytes(), K4);
        let want: Vec<E> = if coherent {
            vec![E::Add(K4, K4)]
        } else {
            vec![
                E::Add(K4, K4),
                E::Clean(l0 + 8, 8),
                E::Clean(l1, 8),
                E::Clean(l2, 8),
                E::Clean(root, 8),
            ]
        };
        assert_eq!(plain(&log.since(from)), want, "coherent={coherent}");
        assert_eq!(g.pending_tables(), 3);
        assert_eq!(arena.stats().pages, 4, "freed only by the sync");
        let from = log.begin();
        t.sync(&mut g);
        assert_eq!(
            plain(&log.since(from)),
            [
                E::Walk(0, 1 << 39, K4),
                E::Free(l2),
                E::Free(l1),
                E::Free(l0)
            ],
            "coherent={coherent}"
        );
        assert_eq!(arena.stats().pages, 1);
    }
}

/// Several unmaps gathered before one sync: one flush covering all of them, at the
/// smallest granule removed.
#[test]
fn gathered_unmaps_are_flushed_together() {
    let arena = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
    let log = Log::default();
    let pt = raw_table(arm(Stage::S1, Granule::K4, 48, 48), &arena, &log, true);
    let far = 0x40_0000_0000;
    let mut g = Gather::new();
    // SAFETY: single-threaded; no hardware walks the table.
    unsafe {
        assert_eq!(pt.map_pages(K4, 0, K4, 1, RW), (K4, Ok(())));
        assert_eq!(pt.map_pages(far, 0, M2, 1, RW), (M2, Ok(())));
    }
    let from = log.begin();
    // SAFETY: as above.
    unsafe {
        assert_eq!(pt.unmap_pages(far, M2, 1, &mut g), (M2, Ok(())));
        assert_eq!(pt.unmap_pages(K4, K4, 1, &mut g), (K4, Ok(())));
    }
    assert_eq!(plain(&log.since(from)), [E::Add(far, M2), E::Add(K4, K4)]);
    let from = log.begin();
    pt.sync(&mut g);
    assert_eq!(plain(&log.since(from)), [E::Walk(K4, far + M2 - K4, K4)]);
    let from = log.begin();
    pt.sync(&mut g);
    assert_eq!(
        plain(&log.since(from)),
        [],
        "an empty gather asks for nothing"
    );
}
