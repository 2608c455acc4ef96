//! Fault injection: a table memory that refuses the Nth allocation (or every allocation
//! from the Nth on), run for every N across a fixed, seeded, mixed workload on every
//! configuration of the catalogue (`common::configs`).
//!
//! - Raw API: an operation either succeeds or returns its documented partial result
//!   (`map_pages` reports the mapped prefix with `OutOfMemory`); the model records exactly
//!   that prefix, and after every operation the table's leaves (read back from the memory
//!   image) equal the model's pages and the page counter equals the tables reachable
//!   from the root (nothing leaked, nothing freed too early).
//! - Safe API: a map that fails with `OutOfMemory` leaves the byte image and the page
//!   counters exactly as they were; the same leaf and counter checks hold after every
//!   operation, and the safe API never leaves an empty table behind.
//!
//! After the workload everything is unmapped: one page (the top table) remains, and
//! dropping the table gives every page back.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use common::{Mapping, Model};
use iopt::mem::{ArenaMemory, FaultyMemory, TableMemory};
use iopt::{Error, Format, Gather, Info, NoFlush, PageTable, Prot, Pte, Table, VaMode};

const ARENA_BASE: u64 = 0x4000_0000;
const ARENA_BYTES: usize = 4 << 20;

type Faulty<'a> = FaultyMemory<&'a ArenaMemory>;

// ---------------------------------------------------------------------------------------
// Reading a table back from the arena memory.

/// One table reachable from the root.
#[derive(Debug, Clone, Copy)]
struct Node {
    pa: u64,
    level: u32,
    /// Valid entries in it.
    used: usize,
}

/// Everything reachable from the root: tables and leaves (base IOVA -> page).
#[derive(Debug, Default)]
struct Tree {
    tables: Vec<Node>,
    leaves: BTreeMap<u64, Mapping>,
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Reads the entry at physical address `pa` from the live arena.
fn read_entry<F: Format>(arena: &ArenaMemory, pa: u64) -> u64 {
    let p = arena.phys_to_virt(pa).as_ptr();
    // SAFETY: `pa` is an entry of a live table in the arena (aligned to the entry size);
    // no operation runs while the test reads, and the engine writes entries atomically.
    unsafe {
        if F::ENTRY_LG2 == 3 {
            (*p.cast::<AtomicU64>()).load(Ordering::Relaxed)
        } else {
            u64::from((*p.cast::<AtomicU32>()).load(Ordering::Relaxed))
        }
    }
}

/// The IOVA an index path names, in the format's addressing mode.
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

/// Walks the table rooted at `info.root_pa` in the arena.
fn walk<F: Format>(fmt: &F, info: &Info, arena: &ArenaMemory) -> Tree {
    let top = info.levels - 1;
    let mut tree = Tree::default();
    walk_table(fmt, top, top, info.root_pa, 0, arena, &mut tree);
    let mut pas: Vec<u64> = tree.tables.iter().map(|t| t.pa).collect();
    pas.sort_unstable();
    pas.dedup();
    assert_eq!(pas.len(), tree.tables.len(), "a table is linked twice");
    tree
}

fn walk_table<F: Format>(
    fmt: &F,
    level: u32,
    top: u32,
    pa: u64,
    prefix: u64,
    arena: &ArenaMemory,
    tree: &mut Tree,
) {
    let va_bits = fmt.va_bits(top);
    let entries_lg2 = if level == top {
        va_bits - fmt.item_lg2(top)
    } else {
        fmt.table_lg2(level)
    };
    let item_lg2 = fmt.item_lg2(level);
    let n = 1usize << entries_lg2;
    let at = tree.tables.len();
    tree.tables.push(Node { pa, level, used: 0 });
    let mut used = 0;
    let mut idx = 0;
    while idx < n {
        let e = read_entry::<F>(arena, pa + ((idx as u64) << F::ENTRY_LG2));
        let raw = prefix | (idx as u64) << item_lg2;
        match fmt.decode(level, e) {
            Pte::Empty => idx += 1,
            Pte::Table { pa: child } => {
                assert!(level > 0, "table entry at level 0");
                used += 1;
                walk_table(fmt, level - 1, top, child, raw, arena, tree);
                idx += 1;
            }
            Pte::Leaf { pa: out, run_lg2 } => {
                let run = 1usize << run_lg2;
                assert_eq!(idx % run, 0, "run not aligned at level {level} index {idx}");
                for i in 1..run {
                    let ei = read_entry::<F>(arena, pa + (((idx + i) as u64) << F::ENTRY_LG2));
                    assert_eq!(
                        fmt.decode(level, ei),
                        Pte::Leaf { pa: out, run_lg2 },
                        "entry {i} of a run"
                    );
                }
                let size = 1u64 << (item_lg2 + run_lg2);
                let base = canonical(fmt, va_bits, raw);
                tree.leaves.insert(base, Mapping { size, pa: out });
                used += run;
                idx += run;
            }
        }
    }
    tree.tables[at].used = used;
}

// ---------------------------------------------------------------------------------------
// The workload.

#[derive(Debug, Clone, Copy)]
enum Op {
    Map {
        iova: u64,
        pa: u64,
        size: u64,
        count: u64,
        prot: Prot,
    },
    Unmap {
        iova: u64,
        size: u64,
        count: u64,
    },
}

/// SplitMix64: a small deterministic generator.
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

/// Where the workload puts things for one table geometry.
struct Geo {
    sizes: Vec<u64>,
    s0: u64,
    /// The span of one leaf table (one level-1 entry).
    t1: u64,
    /// The span of one level-1 table (one level-2 entry).
    t2: u64,
    /// `(start, len)`: first a small window at the bottom of the aperture (a few leaf
    /// tables), then large windows (bottom, top of the lower range, upper range).
    windows: Vec<(u64, u64)>,
    /// Physical addresses stay below this.
    pa_lim: u64,
}

/// The windows include the upper range of a sign-extended aperture.
fn geo<F: Format>(fmt: &F, info: &Info) -> Geo {
    let sizes: Vec<u64> = (0..64)
        .map(|b| 1u64 << b)
        .filter(|s| info.pgsize_bitmap & s != 0)
        .collect();
    let s0 = sizes[0];
    let t1 = 1u64 << fmt.item_lg2(1);
    let t2 = 1u64 << fmt.item_lg2(2).min(63);
    let big = 1u64 << 40;
    let (s, l) = (info.aperture.start, info.aperture.last);
    let span_m1 = l - s;
    let mut windows = vec![(s, (16 * t1).min(span_m1) + (16 * t1 > span_m1) as u64)];
    windows.push((s, span_m1.min(big - 1) + 1));
    if span_m1 > 2 * big {
        windows.push((l - (big - 1), big));
    }
    if let Some((us, ul)) = info.aperture.upper {
        let len = (ul - us).min(big - 1) + 1;
        windows.push((ul - (len - 1), len));
    }
    Geo {
        sizes,
        s0,
        t1,
        t2,
        windows,
        pa_lim: 1u64 << info.oa_bits.min(40),
    }
}

fn prot_of(r: u64) -> Prot {
    match r % 4 {
        0 => Prot::READ | Prot::WRITE,
        1 => Prot::READ,
        2 => Prot::WRITE | Prot::CACHE,
        _ => Prot::READ | Prot::NOEXEC,
    }
}

/// The page size that fills a leaf table in at most 1024 pages (the smallest page when
/// none does: DART's 16K tables hold 2048 pages and nothing larger).
fn fill_size(g: &Geo) -> u64 {
    *g.sizes.iter().find(|&&s| g.t1 / s <= 1024).unwrap_or(&g.s0)
}

/// A fixed, seeded workload: runs of 1..600 small pages crossing leaf-table boundaries,
/// large and contiguous pages, overlapping maps, unmaps of whole mappings, of parts of
/// small-page runs and with large page sizes over small pages, unmaps of holes.
fn workload(g: &Geo, seed: u64, n: usize) -> Vec<Op> {
    let mut rng = Rng(seed);
    let mut sim = Model::default();
    let mut ops = Vec::new();
    let w0 = g.windows[0];
    let pa_for =
        |rng: &mut Rng, size: u64, count: u64| (rng.below(g.pa_lim / size - count + 1)) * size;
    // A fixed start: a few pages at the bottom (to physical address 0: `iova | paddr` is
    // 0 where the aperture starts at 0), then a run across the first leaf-table
    // boundary (for AMD v1 from one level, this grows the top); a leaf table filled and
    // unmapped with one large page (the table is detached); a leaf table filled and
    // unmapped in two halves (the raw API leaves it linked and empty), then one large
    // page over it (the empty table is replaced).
    let fill = fill_size(g);
    let n_fill = g.t1 / fill;
    // Formats with pages at the last level only (DART) have no page of a leaf table's
    // span: they empty and refill the table with small pages instead.
    let t1_page = g.sizes.contains(&g.t1);
    let (t1_size, t1_count) = if t1_page { (g.t1, 1) } else { (fill, n_fill) };
    let (a, b) = (w0.0 + 4 * g.t1, w0.0 + 6 * g.t1);
    let rw = Prot::READ | Prot::WRITE;
    let first = [
        Op::Map {
            iova: w0.0,
            pa: 0,
            size: g.s0,
            count: 3,
            prot: rw,
        },
        Op::Map {
            iova: w0.0 + g.t1 - 5 * g.s0,
            pa: 0x20_0000,
            size: g.s0,
            count: 20,
            prot: Prot::READ,
        },
        Op::Map {
            iova: a,
            pa: g.t1,
            size: fill,
            count: n_fill,
            prot: rw,
        },
        Op::Unmap {
            iova: a,
            size: t1_size,
            count: t1_count,
        },
        Op::Map {
            iova: b,
            pa: 2 * g.t1,
            size: fill,
            count: n_fill,
            prot: rw,
        },
        Op::Unmap {
            iova: b,
            size: fill,
            count: n_fill / 2,
        },
        Op::Unmap {
            iova: b + n_fill / 2 * fill,
            size: fill,
            count: n_fill - n_fill / 2,
        },
        Op::Map {
            iova: b,
            pa: 3 * g.t1,
            size: t1_size,
            count: t1_count,
            prot: rw,
        },
    ];
    for op in first.into_iter().take(n) {
        match op {
            Op::Map {
                iova,
                pa,
                size,
                count,
                ..
            } => {
                sim.map(iova, pa, size, count);
            }
            Op::Unmap { iova, size, count } => {
                let _ = sim.unmap(iova, iova + (size * count - 1));
            }
        }
        ops.push(op);
    }
    while ops.len() < n {
        let kind = rng.below(100);
        if kind < 12 {
            // Fill one whole table span (a leaf table with small or contiguous pages, or
            // a level-1 table with blocks), and usually unmap it with one large page: the
            // unmap detaches the table.
            let (span, size) =
                if kind < 7 || !t1_page || g.t2 > g.pa_lim / 4 || g.t2 > g.windows[1].1 / 4 {
                    (g.t1, fill)
                } else {
                    (g.t2, g.t1)
                };
            let w = if span <= w0.1 / 4 { w0 } else { g.windows[1] };
            let iova = w.0 + rng.below(w.1 / span) * span;
            let count = span / size;
            let op = Op::Map {
                iova,
                pa: pa_for(&mut rng, span, 1),
                size,
                count,
                prot: Prot::READ | Prot::WRITE,
            };
            sim.map(iova, 0, size, count);
            ops.push(op);
            let follow: Vec<Op> = match rng.below(3) {
                0 => vec![if g.sizes.contains(&span) {
                    Op::Unmap {
                        iova,
                        size: span,
                        count: 1,
                    }
                } else {
                    Op::Unmap { iova, size, count }
                }],
                1 if count >= 2 => {
                    // Two halves (the raw API leaves the emptied table linked), then one
                    // large page over it (which replaces the empty table).
                    let half = count / 2;
                    let mut v = vec![
                        Op::Unmap {
                            iova,
                            size,
                            count: half,
                        },
                        Op::Unmap {
                            iova: iova + half * size,
                            size,
                            count: count - half,
                        },
                    ];
                    if g.sizes.contains(&span) {
                        v.push(Op::Map {
                            iova,
                            pa: pa_for(&mut rng, span, 1),
                            size: span,
                            count: 1,
                            prot: Prot::READ,
                        });
                    }
                    v
                }
                _ => vec![],
            };
            for op in follow {
                if ops.len() == n {
                    break;
                }
                match op {
                    Op::Map {
                        iova,
                        pa,
                        size,
                        count,
                        ..
                    } => {
                        sim.map(iova, pa, size, count);
                    }
                    Op::Unmap { iova, size, count } => {
                        let _ = sim.unmap(iova, iova + (size * count - 1));
                    }
                }
                ops.push(op);
            }
            continue;
        }
        let w = if rng.below(10) < 6 {
            w0
        } else {
            g.windows[rng.below(g.windows.len() as u64) as usize]
        };
        let op = if kind < 28 {
            // A run of small pages across a leaf-table boundary.
            let tables = (w.1 / g.t1).max(1);
            let count = (1 + rng.below(600)).min(w.1 / g.s0);
            let boundary = w.0 + (1 + rng.below(tables - 1)).min(tables - 1) * g.t1;
            let back = rng.below(count.min((boundary - w.0) / g.s0) + 1);
            let mut iova = boundary - back * g.s0;
            let w_last = w.0 + (w.1 - 1);
            if iova + (count * g.s0 - 1) > w_last {
                iova = w_last - (count * g.s0 - 1);
            }
            Op::Map {
                iova,
                pa: pa_for(&mut rng, g.s0, count),
                size: g.s0,
                count,
                prot: prot_of(rng.next()),
            }
        } else if kind < 55 {
            // Large or contiguous pages, a few at a time.
            let usable: Vec<u64> = g.sizes[1..]
                .iter()
                .copied()
                .filter(|&s| s <= w.1 / 16 && s <= g.pa_lim / 16)
                .collect();
            let size = if usable.is_empty() {
                g.s0
            } else {
                usable[rng.below(usable.len() as u64) as usize]
            };
            let count = 1 + rng
                .below(if kind < 47 { 3 } else { 40 })
                .min(w.1 / size - 1);
            let slot = rng.below(w.1 / size - count + 1);
            Op::Map {
                iova: w.0 + slot * size,
                pa: pa_for(&mut rng, size, count),
                size,
                count,
                prot: prot_of(rng.next()),
            }
        } else if kind < 88 && !sim.pages.is_empty() {
            // Unmap around something that is mapped.
            let k = rng.below(sim.pages.len() as u64) as usize;
            let (&base, &m) = sim.pages.iter().nth(k).unwrap();
            // The run of same-size pages that continues from `base`.
            let mut run = 1;
            while run < 600
                && sim
                    .pages
                    .get(&(base + run * m.size))
                    .is_some_and(|n| n.size == m.size)
            {
                run += 1;
            }
            let larger: Vec<u64> = g
                .sizes
                .iter()
                .copied()
                .filter(|&s| s > m.size && s <= 64 * m.size && sim.find(base & !(s - 1)).is_some())
                .collect();
            match rng.below(5) {
                0 => Op::Unmap {
                    iova: base,
                    size: m.size,
                    count: 1 + rng.below(run),
                },
                1 => Op::Unmap {
                    iova: base,
                    size: m.size,
                    count: run + rng.below(2),
                },
                2 if !larger.is_empty() => {
                    // A larger page size over whatever is there.
                    let s = larger[rng.below(larger.len() as u64) as usize];
                    Op::Unmap {
                        iova: base & !(s - 1),
                        size: s,
                        count: 1,
                    }
                }
                3 => Op::Unmap {
                    iova: base,
                    size: g.s0,
                    count: 1 + rng.below(m.size / g.s0 * 3),
                },
                _ => Op::Unmap {
                    iova: base,
                    size: m.size,
                    count: 1,
                },
            }
        } else if kind < 94 && !sim.pages.is_empty() {
            // Map over something that is mapped.
            let k = rng.below(sim.pages.len() as u64) as usize;
            let (&base, &m) = sim.pages.iter().nth(k).unwrap();
            let off = rng.below(m.size / g.s0);
            Op::Map {
                iova: base + off * g.s0,
                pa: 0,
                size: g.s0,
                count: 1 + rng.below(4),
                prot: Prot::READ,
            }
        } else {
            // Unmap at a random place (probably a hole).
            let count = 1 + rng.below(50);
            let slot = rng.below(w.1 / g.s0 - count + 1);
            Op::Unmap {
                iova: w.0 + slot * g.s0,
                size: g.s0,
                count,
            }
        };
        // Keep the op inside the aperture, then simulate it (no faults).
        match op {
            Op::Map {
                iova,
                pa,
                size,
                count,
                ..
            } => {
                sim.map(iova, pa, size, count);
            }
            Op::Unmap { iova, size, count } => {
                let _ = sim.unmap(iova, iova + (size * count - 1));
            }
        }
        ops.push(op);
    }
    ops
}

// ---------------------------------------------------------------------------------------
// The safe API's model: pages chosen greedily (the largest page size both addresses'
// alignment and the remaining length allow), all-or-nothing maps, exact unmaps.

#[derive(Debug, Clone, Default)]
struct SafeModel {
    sizes: Vec<u64>,
    pages: BTreeMap<u64, Mapping>,
}

impl SafeModel {
    fn pieces(&self, iova: u64, pa: u64, len: u64) -> Vec<(u64, Mapping)> {
        let (mut v, mut p, mut rem) = (iova, pa, len);
        let mut out = Vec::new();
        while rem != 0 {
            let size = *self
                .sizes
                .iter()
                .rev()
                .find(|&&s| s <= rem && (v | p) & (s - 1) == 0)
                .expect("the smallest page fits");
            out.push((v, Mapping { size, pa: p }));
            v = v.wrapping_add(size);
            p += size;
            rem -= size;
        }
        out
    }

    fn find(&self, iova: u64) -> Option<(u64, Mapping)> {
        let (&base, &m) = self.pages.range(..=iova).next_back()?;
        (iova - base < m.size).then_some((base, m))
    }

    fn overlaps(&self, first: u64, last: u64) -> bool {
        self.find(first).is_some() || self.pages.range(first..=last).next().is_some()
    }

    /// `Err(piece)`: the first page of the map that overlaps something.
    fn map(&mut self, iova: u64, pa: u64, len: u64) -> Result<(), (u64, u64)> {
        let ps = self.pieces(iova, pa, len);
        for &(b, m) in &ps {
            if self.overlaps(b, b + (m.size - 1)) {
                return Err((b, b + (m.size - 1)));
            }
        }
        self.pages.extend(ps);
        Ok(())
    }

    fn unmap(&mut self, iova: u64, len: u64) -> Result<u64, Error> {
        let last = iova + (len - 1);
        for at in [iova, last] {
            if let Some((b, m)) = self.find(at)
                && (b < iova || b + (m.size - 1) > last)
            {
                return Err(Error::WouldSplit {
                    base: b,
                    size: m.size,
                });
            }
        }
        let gone: Vec<u64> = self.pages.range(iova..=last).map(|(&b, _)| b).collect();
        let mut bytes = 0;
        for b in gone {
            bytes += self.pages.remove(&b).unwrap().size;
        }
        Ok(bytes)
    }
}

// ---------------------------------------------------------------------------------------
// Running a workload under a fault.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Nth(u64),
    From(u64),
}

fn set_fault(mem: &Faulty<'_>, fault: Fault) {
    match fault {
        Fault::None => {}
        Fault::Nth(n) => mem.fail_nth(n),
        Fault::From(n) => mem.fail_from(n),
    }
}

/// The inclusive aperture ranges as `(start, len)` pieces (a 2^64 range in halves).
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

/// Leaves equal the model; the page counter equals the reachable tables.
fn check_tree<F: Format>(
    ctx: &str,
    fmt: &F,
    info: &Info,
    arena: &ArenaMemory,
    pages: &BTreeMap<u64, Mapping>,
    no_empty_tables: bool,
) {
    let tree = walk(fmt, info, arena);
    if tree.leaves != *pages {
        let extra: Vec<_> = tree
            .leaves
            .iter()
            .filter(|(b, m)| pages.get(b) != Some(m))
            .take(4)
            .collect();
        let missing: Vec<_> = pages
            .iter()
            .filter(|(b, m)| tree.leaves.get(b) != Some(m))
            .take(4)
            .collect();
        panic!("{ctx}: table and model disagree: table has {extra:x?}, model has {missing:x?}");
    }
    assert_eq!(
        tree.tables.len() as u64,
        arena.stats().pages,
        "{ctx}: page counter vs tables reachable from the root"
    );
    if no_empty_tables {
        for t in &tree.tables[1..] {
            assert!(
                t.used != 0,
                "{ctx}: empty table at {:#x} (level {}) left linked",
                t.pa,
                t.level
            );
        }
    }
}

/// Runs `ops` through the raw API with `fault`; returns the allocations asked for and
/// the allocations refused.
fn run_raw<F: Format + Clone>(name: &str, fmt: &F, ops: &[Op], fault: Fault) -> (u64, u64) {
    let arena = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
    let mem = FaultyMemory::new(&arena);
    set_fault(&mem, fault);
    let pt = match PageTable::new(fmt.clone(), &mem, NoFlush) {
        Ok(pt) => pt,
        Err(e) => {
            assert_eq!(e, Error::OutOfMemory, "{name} {fault:?}: creation");
            assert_eq!(mem.allocations(), 1, "{name} {fault:?}: creation");
            assert_eq!(arena.stats().pages, 0, "{name} {fault:?}: creation leaked");
            return (1, 1);
        }
    };
    let mut model = Model::default();
    let mut g = Gather::new();
    for (i, &op) in ops.iter().enumerate() {
        let ctx = format!("{name} {fault:?} op {i} {op:x?}");
        let failures = mem.failures();
        match op {
            Op::Map {
                iova,
                pa,
                size,
                count,
                prot,
            } => {
                let mut full = model.clone();
                let (want, conflict) = full.map(iova, pa, size, count);
                // SAFETY: single-threaded; no hardware walks the table.
                let (mapped, r) = unsafe { pt.map_pages(iova, pa, size, count as usize, prot) };
                let faulted = mem.failures() != failures;
                match r {
                    Ok(()) => {
                        assert!(!faulted && conflict.is_none(), "{ctx}: Ok");
                        assert_eq!(mapped, want, "{ctx}: mapped");
                        model = full;
                    }
                    Err(Error::AddressInUse(a)) => {
                        assert!(!faulted, "{ctx}: an allocation failed but no OutOfMemory");
                        let (s, l) = conflict.unwrap_or_else(|| panic!("{ctx}: in use?"));
                        assert!(s <= a && a <= l, "{ctx}: in use at {a:#x}");
                        assert_eq!(mapped, want, "{ctx}: mapped before the conflict");
                        model = full;
                    }
                    Err(Error::OutOfMemory) => {
                        assert!(faulted, "{ctx}: OutOfMemory without a failed allocation");
                        assert_eq!(mapped % size, 0, "{ctx}: partial page");
                        if conflict.is_some() {
                            assert!(mapped <= want, "{ctx}: mapped {mapped:#x} > {want:#x}");
                        } else {
                            assert!(mapped < want, "{ctx}: mapped {mapped:#x} of {want:#x}");
                        }
                        // The model records exactly the reported prefix.
                        let (m, c) = model.map(iova, pa, size, mapped / size);
                        assert_eq!((m, c), (mapped, None), "{ctx}");
                    }
                    Err(e) => panic!("{ctx}: unexpected {e:?}"),
                }
            }
            Op::Unmap { iova, size, count } => {
                let want = model.unmap(iova, iova + (size * count - 1));
                // SAFETY: single-threaded; no hardware.
                let got = unsafe { pt.unmap_pages(iova, size, count as usize, &mut g) };
                assert_eq!(got, want, "{ctx}");
                assert_eq!(mem.failures(), failures, "{ctx}: unmap allocated");
                pt.sync(&mut g);
            }
        }
        check_tree(&ctx, pt.format(), &pt.info(), &arena, &model.pages, false);
    }
    for (s, len) in everything(&pt.info()) {
        // SAFETY: single-threaded; no hardware.
        let (_, r) = unsafe { pt.unmap_range(s, len, &mut g) };
        r.unwrap_or_else(|e| panic!("{name} {fault:?}: unmap everything: {e:?}"));
    }
    pt.sync(&mut g);
    let ctx = format!("{name} {fault:?} after unmapping everything");
    check_tree(
        &ctx,
        pt.format(),
        &pt.info(),
        &arena,
        &BTreeMap::new(),
        false,
    );
    assert_eq!(arena.stats().pages, 1, "{ctx}: only the top table remains");
    let n = (mem.allocations(), mem.failures());
    drop(pt);
    assert_eq!(
        arena.stats().pages,
        0,
        "{name} {fault:?}: dropped table leaked"
    );
    assert_eq!(
        arena.stats().bytes,
        0,
        "{name} {fault:?}: dropped table leaked"
    );
    n
}

/// Runs `ops` through the safe API with `fault`; returns the allocations asked for and
/// the allocations refused.
fn run_safe<F: Format + Clone>(name: &str, fmt: &F, ops: &[Op], fault: Fault) -> (u64, u64) {
    let arena = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
    let mem = FaultyMemory::new(&arena);
    set_fault(&mem, fault);
    let mut t = match Table::new(fmt.clone(), &mem, NoFlush) {
        Ok(t) => t,
        Err(e) => {
            assert_eq!(e, Error::OutOfMemory, "{name} {fault:?}: creation");
            assert_eq!(arena.stats().pages, 0, "{name} {fault:?}: creation leaked");
            return (1, 1);
        }
    };
    let info = t.info();
    let mut model = SafeModel {
        sizes: (0..64)
            .map(|b| 1u64 << b)
            .filter(|s| info.pgsize_bitmap & s != 0)
            .collect(),
        pages: BTreeMap::new(),
    };
    let mut g = Gather::new();
    for (i, &op) in ops.iter().enumerate() {
        let ctx = format!("{name} {fault:?} safe op {i} {op:x?}");
        let (failures, allocations) = (mem.failures(), mem.allocations());
        let before = arena.image();
        let stats = arena.stats();
        match op {
            Op::Map {
                iova,
                pa,
                size,
                count,
                prot,
            } => {
                let mut full = model.clone();
                let want = full.map(iova, pa, size * count);
                let r = t.map(iova, pa, size * count, prot);
                let faulted = mem.failures() != failures;
                let failed = match (r, want) {
                    (Ok(()), Ok(())) => {
                        assert!(!faulted, "{ctx}: an allocation failed but the map worked");
                        model = full;
                        false
                    }
                    (Err(Error::AddressInUse(a)), Err((s, l))) => {
                        assert!(
                            s <= a && a <= l,
                            "{ctx}: in use at {a:#x}, not {s:#x}..={l:#x}"
                        );
                        assert_eq!(
                            mem.allocations(),
                            allocations,
                            "{ctx}: refused map allocated"
                        );
                        true
                    }
                    (Err(Error::OutOfMemory), Ok(())) => {
                        assert!(faulted, "{ctx}: OutOfMemory without a failed allocation");
                        true
                    }
                    other => panic!("{ctx}: got/expected {other:x?}"),
                };
                if failed {
                    // All or nothing: the table is byte for byte what it was.
                    assert!(
                        ArenaMemory::same_image(&before, &arena.image()),
                        "{ctx}: a failed map changed the image"
                    );
                    let after = arena.stats();
                    assert_eq!(
                        (after.pages, after.bytes),
                        (stats.pages, stats.bytes),
                        "{ctx}: a failed map changed the page counters"
                    );
                }
            }
            Op::Unmap { iova, size, count } => {
                let mut full = model.clone();
                let want = full.unmap(iova, size * count);
                let r = t.unmap(iova, size * count, &mut g);
                match (r, want) {
                    (Ok(u), Ok(b)) => {
                        assert_eq!(u.bytes(), b, "{ctx}: bytes unmapped");
                        model = full;
                    }
                    (Err(e), Err(w)) => {
                        assert_eq!(e, w, "{ctx}");
                        assert!(
                            ArenaMemory::same_image(&before, &arena.image()),
                            "{ctx}: a refused unmap changed the image"
                        );
                    }
                    other => panic!("{ctx}: got/expected {other:x?}"),
                }
                t.sync(&mut g);
                assert_eq!(mem.allocations(), allocations, "{ctx}: unmap allocated");
            }
        }
        check_tree(
            &ctx,
            t.raw().format(),
            &t.info(),
            &arena,
            &model.pages,
            true,
        );
    }
    for (s, len) in everything(&t.info()) {
        let _ = t
            .unmap(s, len, &mut g)
            .unwrap_or_else(|e| panic!("{name} {fault:?}: unmap everything: {e:?}"));
    }
    t.sync(&mut g);
    let ctx = format!("{name} {fault:?} safe, after unmapping everything");
    check_tree(
        &ctx,
        t.raw().format(),
        &t.info(),
        &arena,
        &BTreeMap::new(),
        true,
    );
    assert_eq!(arena.stats().pages, 1, "{ctx}: only the top table remains");
    let n = (mem.allocations(), mem.failures());
    drop(t);
    assert_eq!(
        arena.stats().pages,
        0,
        "{name} {fault:?}: dropped table leaked"
    );
    n
}

// ---------------------------------------------------------------------------------------
// The sweep.

/// Every N up to `total` when `every`, else the first three, the last two and a spread
/// sample between.
fn fault_points(total: u64, every: bool) -> Vec<u64> {
    if every || total <= 12 {
        return (1..=total).collect();
    }
    let mut v: Vec<u64> = vec![1, 2, 3];
    let step = (total - 5).div_ceil(8);
    v.extend((3 + step..total - 1).step_by(step as usize));
    v.extend([total - 1, total]);
    v
}

/// Runs both workloads of a format through both APIs, failing every N (and every N on):
/// every N of the small workload when `every_small`, a sample otherwise.
fn sweep<F: Format + Clone>(name: &str, fmt: F, seed: u64, every_small: bool) {
    let info = {
        let arena = ArenaMemory::new(ARENA_BASE, 1 << 20);
        PageTable::new(fmt.clone(), &arena, NoFlush)
            .expect("create")
            .info()
    };
    // The same workloads (both halves of a sign-extended aperture) for both APIs.
    let g = geo(&fmt, &info);
    let small = workload(&g, seed, 12);
    let big = workload(&g, seed ^ 0x5555, 30);
    type Run<F> = fn(&str, &F, &[Op], Fault) -> (u64, u64);
    for (api, run) in [("raw", run_raw::<F> as Run<F>), ("safe", run_safe::<F>)] {
        for (ops, every) in [(&small, every_small), (&big, false)] {
            let (total, failures) = run(name, &fmt, ops, Fault::None);
            assert_eq!(failures, 0, "{name} {api}");
            assert!(total > 1, "{name} {api}: the workload allocates");
            for n in fault_points(total, every) {
                // The first N - 1 allocations are those of the fault-free run, so the
                // Nth is asked for and refused.
                let (_, f) = run(name, &fmt, ops, Fault::Nth(n));
                assert_eq!(f, 1, "{name} {api}: fail_nth({n}) refused {f}");
                let (_, f) = run(name, &fmt, ops, Fault::From(n));
                assert!(f >= 1, "{name} {api}: fail_from({n}) refused nothing");
            }
        }
    }
}

/// The configurations this suite swept before it iterated the catalogue, with their
/// seeds then: every fault point of the small workload. The catalogue's other entries
/// use a seed from their label and a sample of the small workload's fault points (as of
/// the big one's), to keep the suite's time.
const FULL: &[(&str, u64)] = &[
    ("arm64-s1/4K", 1),
    ("arm64-s1/16K", 2),
    ("arm64-s1/64K", 3),
    ("arm64-s2/4K/ias40", 4),
    ("arm64-s2/16K/ias42", 5),
    ("amdv1/dynamic-top", 6),
    ("amdv1/3-level", 7),
    ("x86-64/4-level", 8),
    ("x86-64/5-level", 9),
    ("armv7s", 10),
    ("vtd-ss/4-level", 11),
    ("vtd-ss/3-level", 12),
    ("vtd-ss/5-level", 13),
    ("dart/v1/16K", 11),
    ("dart/v1/4K/4-ttbr", 12),
    ("dart/v2/t8110/ias42", 13),
    ("riscv/sv39", 11),
    ("riscv/sv48", 12),
    ("riscv/sv57/lower-half", 13),
    ("arm64-s1/64K/ias52/oas52", 11),
    ("arm32-s1", 12),
    ("arm32-s2/ias40", 13),
    ("mali", 14),
];

/// The sweep for one catalogue configuration.
fn sweep_config<F: Format + Clone>(label: &str, fmt: F) {
    match FULL.iter().find(|(l, _)| *l == label) {
        Some(&(_, seed)) => sweep(label, fmt, seed, true),
        None => sweep(label, fmt, common::label_seed(label), false),
    }
}

/// A label above that the catalogue no longer has would silently lose its full sweep.
#[test]
fn full_labels_are_in_the_catalogue() {
    let labels: Vec<&str> = common::configs().iter().map(|c| c.label).collect();
    for (l, _) in FULL {
        assert!(labels.contains(l), "{l} is not in the catalogue");
    }
}

common::config_tests!(sweep, sweep_config);
