//! The plain-fill baseline: the entry values iopt writes for x86-64, written with a loop
//! into preallocated, pre-touched, 4 KiB-aligned pages. The floor for writing the
//! entries, not a page table.

use std::hint::black_box;
use std::time::Duration;

use iopt::Format;
use iopt::fmt::x86_64::{X86_64, X86_64Config};

use crate::{BLOCK, IOVA_BASE, PAGE, PROT, Params, Sample, W7_BUFFER, W7_SLOTS, Workload};
use crate::{pa_of, timed};

/// One 4 KiB-aligned page of entries.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Page([u64; 512]);

/// Writes `n` entries `first + i * step` into preallocated, pre-touched pages, `rounds`
/// times over the same pages (each round timed on its own).
fn fill(n: u64, rounds: u64, first: u64, step: u64) -> Sample {
    let pages = n.div_ceil(512) as usize;
    // Pre-touch: every page written once before the timed fill.
    let mut buf = vec![Page([u64::MAX; 512]); pages];
    black_box(&mut buf);
    let mut elapsed = Duration::ZERO;
    for _ in 0..rounds {
        elapsed += timed(|| {
            let entries = buf.iter_mut().flat_map(|p| p.0.iter_mut()).take(n as usize);
            let mut v = first;
            for e in entries {
                *e = v;
                v = v.wrapping_add(step);
            }
            black_box(&mut buf);
        });
    }
    Sample {
        elapsed,
        ops: n * rounds,
        table_pages: pages as u64,
        table_pages_end: pages as u64,
    }
}

/// Runs `w` (W1, W2, W2e, W3, W7 or W7u: the workloads whose cost is writing entries).
pub fn run(w: Workload, p: &Params) -> Sample {
    // The entry values iopt writes for x86-64 (4K leaves, 2M leaves).
    let fmt = X86_64::new(X86_64Config::default()).expect("x86-64 default config");
    let leaf_4k = fmt.make_leaf(0, pa_of(IOVA_BASE), 0, PROT);
    let w7_entries = W7_SLOTS * (W7_BUFFER / PAGE);
    match w {
        Workload::W1 | Workload::W2 | Workload::W2e => fill(p.pages(), 1, leaf_4k, PAGE),
        Workload::W3 => fill(
            p.blocks(),
            1,
            fmt.make_leaf(1, pa_of(IOVA_BASE), 0, PROT),
            BLOCK,
        ),
        // The entries of every slot, once per round (the same pages, as W7's leaf tables).
        Workload::W7 => fill(w7_entries, p.w7_rounds(), leaf_4k, PAGE),
        // Unmapping writes empty entries.
        Workload::W7u => fill(w7_entries, p.w7_rounds(), 0, 0),
        _ => unreachable!("fill does only W1, W2, W2e, W3, W7 and W7u"),
    }
}
