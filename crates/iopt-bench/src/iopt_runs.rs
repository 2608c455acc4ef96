//! The workloads on iopt: the raw API (`PageTable`) with `NoFlush`, W6 on the
//! concurrent handle (`SharedTable`).

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use iopt::mem::TableMemory;
use iopt::{Format, Gather, NoFlush, PageTable, SharedTable};

use crate::ops::{Op, pgsize_for, w4_expected, w4_iovas, w5_ops, w7_slots};
use crate::{BLOCK, IOVA_BASE, PAGE, PROT, Params, Sample, W7_BUFFER, Workload, pa_of, timed};

/// Where a benchmark table's pages come from (`formats.rs` implements it for the heap
/// and for the arena of formats with narrow table pointers).
pub(crate) trait BenchMemory: TableMemory + Sized {
    /// Memory for the tables of `fmt` in a workload at `p`.
    fn for_format<F: Format>(fmt: &F, p: &Params) -> Self;
}

/// The raw table the benchmarks use: no flushing (never live).
type Raw<F, M> = PageTable<F, M, NoFlush>;

fn new_raw<F: Format, M: BenchMemory>(fmt: F, p: &Params) -> Raw<F, M> {
    let mem = M::for_format(&fmt, p);
    PageTable::new(fmt, mem, NoFlush).expect("a new table")
}

/// Maps `count` pages of `pgsize` at `iova` (to [`pa_of`] it).
#[inline(always)]
fn iopt_map<F: Format, M: TableMemory>(t: &Raw<F, M>, iova: u64, pgsize: u64, count: u64) {
    // SAFETY: the table is private to this function's caller (one thread), no hardware
    // walks it, and every workload maps only ranges it has not mapped (or has unmapped).
    let (n, r) = unsafe { t.map_pages(iova, pa_of(iova), pgsize, count as usize, PROT) };
    if r.is_err() || n != pgsize * count {
        panic!("iopt map {iova:#x} {pgsize:#x} x {count}: {n:#x}, {r:?}");
    }
}

/// Unmaps `count` pages of `pgsize` at `iova`.
#[inline(always)]
fn iopt_unmap<F: Format, M: TableMemory>(
    t: &Raw<F, M>,
    iova: u64,
    pgsize: u64,
    count: u64,
    g: &mut Gather,
) {
    // SAFETY: as in `iopt_map`; the range is mapped, and the gather is synced before the
    // range is used again.
    let (n, r) = unsafe { t.unmap_pages(iova, pgsize, count as usize, g) };
    if r.is_err() || n != pgsize * count {
        panic!("iopt unmap {iova:#x} {pgsize:#x} x {count}: {n:#x}, {r:?}");
    }
}

fn iopt_sample<F: Format, M: TableMemory>(t: &Raw<F, M>, elapsed: Duration, ops: u64) -> Sample {
    let s = t.mem_stats();
    Sample {
        elapsed,
        ops,
        table_pages: s.peak_pages,
        table_pages_end: s.pages,
    }
}

/// The page size for a 2 MiB block: 2 MiB, or the largest size below it (armv7s: 1 MiB
/// sections).
pub(crate) fn iopt_block_pgsize(bitmap: u64) -> u64 {
    let below = bitmap & (2 * BLOCK - 1);
    1 << (63 - below.leading_zeros())
}

/// Runs `w` on a table of `fmt`; `bulk` is the page size of the one-call maps.
pub(crate) fn run<F: Format, M: BenchMemory>(fmt: F, bulk: u64, w: Workload, p: &Params) -> Sample {
    match w {
        Workload::W1 => iopt_w1::<F, M>(fmt, p),
        Workload::W1u => iopt_w1u::<F, M>(fmt, p),
        Workload::W2 => iopt_w2::<F, M>(fmt, bulk, p),
        Workload::W2u => iopt_w2u::<F, M>(fmt, bulk, p),
        Workload::W2e => iopt_w2e::<F, M>(fmt, bulk, p),
        Workload::W3 => iopt_w3::<F, M>(fmt, p),
        Workload::W3u => iopt_w3u::<F, M>(fmt, p),
        Workload::W4 => iopt_w4::<F, M>(fmt, bulk, p),
        Workload::W5 => iopt_w5::<F, M>(fmt, p),
        Workload::W6 => iopt_w6::<F, M>(fmt, p, 2),
        Workload::W6Single => iopt_w6::<F, M>(fmt, p, 1),
        Workload::W7 => iopt_w7::<F, M>(fmt, bulk, p, false),
        Workload::W7u => iopt_w7::<F, M>(fmt, bulk, p, true),
    }
}

fn iopt_w1<F: Format, M: BenchMemory>(fmt: F, p: &Params) -> Sample {
    let t = new_raw::<F, M>(fmt, p);
    let elapsed = timed(|| {
        for i in 0..p.pages() {
            iopt_map(&t, IOVA_BASE + i * PAGE, PAGE, 1);
        }
    });
    iopt_sample(&t, elapsed, p.pages())
}

fn iopt_w1u<F: Format, M: BenchMemory>(fmt: F, p: &Params) -> Sample {
    let t = new_raw::<F, M>(fmt, p);
    iopt_map(&t, IOVA_BASE, PAGE, p.pages());
    let mut g = Gather::new();
    let elapsed = timed(|| {
        for i in 0..p.pages() {
            iopt_unmap(&t, IOVA_BASE + i * PAGE, PAGE, 1, &mut g);
        }
        t.sync(&mut g);
    });
    iopt_sample(&t, elapsed, p.pages())
}

fn iopt_w2<F: Format, M: BenchMemory>(fmt: F, bulk: u64, p: &Params) -> Sample {
    let t = new_raw::<F, M>(fmt, p);
    let elapsed = timed(|| iopt_map(&t, IOVA_BASE, bulk, p.size / bulk));
    iopt_sample(&t, elapsed, p.pages())
}

fn iopt_w2u<F: Format, M: BenchMemory>(fmt: F, bulk: u64, p: &Params) -> Sample {
    let t = new_raw::<F, M>(fmt, p);
    iopt_map(&t, IOVA_BASE, bulk, p.size / bulk);
    let mut g = Gather::new();
    let elapsed = timed(|| {
        iopt_unmap(&t, IOVA_BASE, bulk, p.size / bulk, &mut g);
        t.sync(&mut g);
    });
    iopt_sample(&t, elapsed, p.pages())
}

/// W2 into the empty leaf tables a page-by-page unmap leaves linked: W1's pages mapped
/// (in one call: the same tables) and unmapped page by page, untimed; then one timed map
/// of the whole range.
fn iopt_w2e<F: Format, M: BenchMemory>(fmt: F, bulk: u64, p: &Params) -> Sample {
    let t = new_raw::<F, M>(fmt, p);
    iopt_map(&t, IOVA_BASE, PAGE, p.pages());
    let mut g = Gather::new();
    for i in 0..p.pages() {
        iopt_unmap(&t, IOVA_BASE + i * PAGE, PAGE, 1, &mut g);
    }
    t.sync(&mut g);
    let elapsed = timed(|| iopt_map(&t, IOVA_BASE, bulk, p.size / bulk));
    iopt_sample(&t, elapsed, p.pages())
}

fn iopt_w3<F: Format, M: BenchMemory>(fmt: F, p: &Params) -> Sample {
    let t = new_raw::<F, M>(fmt, p);
    let pg = iopt_block_pgsize(t.info().pgsize_bitmap);
    let elapsed = timed(|| {
        for b in 0..p.blocks() {
            iopt_map(&t, IOVA_BASE + b * BLOCK, pg, BLOCK / pg);
        }
    });
    iopt_sample(&t, elapsed, p.blocks())
}

fn iopt_w3u<F: Format, M: BenchMemory>(fmt: F, p: &Params) -> Sample {
    let t = new_raw::<F, M>(fmt, p);
    let pg = iopt_block_pgsize(t.info().pgsize_bitmap);
    for b in 0..p.blocks() {
        iopt_map(&t, IOVA_BASE + b * BLOCK, pg, BLOCK / pg);
    }
    let mut g = Gather::new();
    let elapsed = timed(|| {
        for b in 0..p.blocks() {
            iopt_unmap(&t, IOVA_BASE + b * BLOCK, pg, BLOCK / pg, &mut g);
        }
        t.sync(&mut g);
    });
    iopt_sample(&t, elapsed, p.blocks())
}

fn iopt_w4<F: Format, M: BenchMemory>(fmt: F, bulk: u64, p: &Params) -> Sample {
    let t = new_raw::<F, M>(fmt, p);
    iopt_map(&t, IOVA_BASE, bulk, p.size / bulk);
    let iovas = w4_iovas(p);
    let mut sum = 0u64;
    let elapsed = timed(|| {
        for &iova in &iovas {
            // SAFETY: no map or unmap runs on this table meanwhile.
            let pa = unsafe { t.iova_to_phys(iova) };
            sum = sum.wrapping_add(pa.unwrap_or(0));
        }
        black_box(sum);
    });
    assert_eq!(sum, w4_expected(&iovas), "iopt W4 lookups");
    iopt_sample(&t, elapsed, iovas.len() as u64)
}

fn iopt_w5<F: Format, M: BenchMemory>(fmt: F, p: &Params) -> Sample {
    let t = new_raw::<F, M>(fmt, p);
    let ops = w5_ops(p);
    let bitmap = t.info().pgsize_bitmap;
    let mut g = Gather::new();
    let elapsed = timed(|| {
        for &op in &ops {
            match op {
                Op::Map { iova, len } => {
                    let pg = pgsize_for(bitmap, iova, pa_of(iova), len);
                    iopt_map(&t, iova, pg, len / pg);
                }
                Op::Unmap { iova, len } => {
                    let pg = pgsize_for(bitmap, iova, pa_of(iova), len);
                    iopt_unmap(&t, iova, pg, len / pg, &mut g);
                    t.sync(&mut g);
                }
            }
        }
    });
    iopt_sample(&t, elapsed, ops.len() as u64)
}

/// W7 (`unmaps` false: the maps are timed) or W7u (the unmaps, each with its `sync`):
/// every slot mapped and unmapped once first, untimed, so that its leaf tables are there;
/// then [`Params::w7_rounds`] rounds of one buffer mapped at every slot, then unmapped
/// at every slot.
fn iopt_w7<F: Format, M: BenchMemory>(fmt: F, bulk: u64, p: &Params, unmaps: bool) -> Sample {
    let t = new_raw::<F, M>(fmt, p);
    let count = W7_BUFFER / bulk;
    let mut g = Gather::new();
    let map_all = |t: &Raw<F, M>| {
        for iova in w7_slots() {
            iopt_map(t, iova, bulk, count);
        }
    };
    let unmap_all = |t: &Raw<F, M>, g: &mut Gather| {
        for iova in w7_slots() {
            iopt_unmap(t, iova, bulk, count, g);
            t.sync(g);
        }
    };
    map_all(&t);
    unmap_all(&t, &mut g);
    let mut elapsed = Duration::ZERO;
    for _ in 0..p.w7_rounds() {
        if unmaps {
            map_all(&t);
            elapsed += timed(|| unmap_all(&t, &mut g));
        } else {
            elapsed += timed(|| map_all(&t));
            unmap_all(&t, &mut g);
        }
    }
    iopt_sample(&t, elapsed, p.w7_pages())
}

/// Pages W6 maps (or unmaps) under one guard: a 64 KiB window, like a driver that locks
/// the IOVA range of one buffer and maps its pages.
const W6_GUARD_PAGES: u64 = 16;

/// W6 with `threads` threads (1 or 2) over the same two disjoint ranges: each range is
/// mapped page by page, then unmapped page by page, through a guard per window.
fn iopt_w6<F: Format, M: BenchMemory>(fmt: F, p: &Params, threads: usize) -> Sample {
    let mem = M::for_format(&fmt, p);
    let t = SharedTable::new(fmt, mem, NoFlush).expect("a new table");
    let half = p.w6_pages() / 2;
    let per_guard = W6_GUARD_PAGES.min(half);
    let work = |range: u64| {
        let base = IOVA_BASE + range * half * PAGE;
        for w in 0..half / per_guard {
            let window = base + w * per_guard * PAGE;
            let mut g = t.lock(window, per_guard * PAGE).expect("lock");
            for i in 0..per_guard {
                let iova = window + i * PAGE;
                g.map(iova, pa_of(iova), PAGE, PROT).expect("W6 map");
            }
        }
        let mut gather = Gather::new();
        for w in 0..half / per_guard {
            let window = base + w * per_guard * PAGE;
            let mut g = t.lock(window, per_guard * PAGE).expect("lock");
            for i in 0..per_guard {
                let iova = window + i * PAGE;
                assert_eq!(g.unmap(iova, PAGE, &mut gather), Ok(PAGE), "W6 unmap");
            }
        }
        t.sync(&mut gather);
    };
    let elapsed = if threads == 1 {
        timed(|| {
            work(0);
            work(1);
        })
    } else {
        // Each worker notes when it started (after the barrier) and finished; the run
        // lasts from the first start to the last finish (thread creation excluded).
        let barrier = Barrier::new(2);
        let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2u64)
                .map(|range| {
                    let (barrier, work) = (&barrier, &work);
                    s.spawn(move || {
                        barrier.wait();
                        let start = Instant::now();
                        work(range);
                        (start, Instant::now())
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("W6 worker"))
                .collect()
        });
        let first = spans.iter().map(|s| s.0).min().expect("two workers");
        let last = spans.iter().map(|s| s.1).max().expect("two workers");
        last - first
    };
    let s = t.mem_stats();
    Sample {
        elapsed,
        ops: 2 * p.w6_pages(),
        table_pages: s.peak_pages,
        table_pages_end: s.pages,
    }
}
