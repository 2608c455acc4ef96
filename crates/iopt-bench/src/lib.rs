//! The benchmark workloads of iopt and the peers they are measured against, shared by
//! `iopt bench` (the command-line report layer, `crates/iopt-cli/src/bench.rs`) and the
//! criterion benchmarks (`benches/workloads.rs`).
//!
//! A *subject* ([`Subject`]) is something that can build page tables: iopt with one of
//! its formats ([`IoptFormat`]), the `aarch64-paging` crate, the `x86_64` crate, or the
//! plain-fill baseline. A *workload* ([`Workload`]) is a fixed, seeded sequence of
//! operations. [`run`] builds whatever the workload needs first (a fresh table, a
//! populated table, the op list: none of it timed), times the operations themselves, and
//! returns a [`Sample`]: the elapsed time, the number of operations, and the table pages
//! used.
//!
//! Every table lives in heap pages with physical address = virtual address and is never
//! walked by hardware, so iopt runs with [`HeapMemory`](iopt::mem::HeapMemory) and
//! [`NoFlush`](iopt::NoFlush), and the peers with allocators that hand out zeroed 4 KiB
//! heap pages in the same way. The physical addresses mapped are made up
//! (`PA_BASE + iova`): only the table pages are real memory.
//!
//! Where the code lives: [`formats`] turns a spec of the library's format catalogue
//! (`iopt::spec::FormatSpec`) into a subject, everything about it read from the built
//! table (a format added to the library needs no change here), [`Workload`] and
//! [`Subject`] say who does what, `iopt_runs` and `peers/` are the workloads written once
//! per subject, and [`ops`] the seeded operation lists that every subject replays.
//!
//! The measured operations of every run go through one function that is never inlined,
//! `measured`, so that `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*iopt_bench::measured*'` counts exactly their instructions
//! (`scripts/instr-counts.sh`, with the `run_once` example).

use std::hint::black_box;
use std::time::{Duration, Instant};

use iopt::Prot;

pub mod formats;
mod iopt_runs;
pub mod ops;
mod peers;
pub mod rng;
pub mod units;
mod workload;

#[cfg(test)]
mod tests;

pub use formats::{IoptFormat, Peer, Props};
pub use workload::{Subject, Workload};

/// 1 KiB, 1 MiB, 1 GiB.
pub const KIB: u64 = 1 << 10;
/// 1 MiB.
pub const MIB: u64 = 1 << 20;
/// 1 GiB.
pub const GIB: u64 = 1 << 30;
/// The smallest page, and the granule of every workload.
pub const PAGE: u64 = 4 * KIB;
/// The block size of W3 and of W5's large buffers.
pub const BLOCK: u64 = 2 * MIB;
/// First IOVA of W1, W2, W3, W4 and W6.
pub const IOVA_BASE: u64 = 0;
/// Physical address of IOVA 0 (`pa = PA_BASE + iova`): below 4 GiB with room for 3 GiB
/// of mappings, so that the 32-bit armv7s fits too.
pub const PA_BASE: u64 = 0x4000_0000;
/// Seed of the pseudo-random workloads (W4's addresses, W5's operations).
pub const DEFAULT_SEED: u64 = 0x10_5eed;
/// Lookups of W4 at 1 GiB (scaled with the size, at least [`MIN_LOOKUPS`]).
pub const LOOKUPS_PER_GIB: u64 = 1_000_000;
/// Fewest lookups of W4.
pub const MIN_LOOKUPS: u64 = 10_000;
/// The buffer of W7: 1 MiB, 256 4K pages mapped in one call.
pub const W7_BUFFER: u64 = MIB;
/// The recycled, [`W7_BUFFER`]-aligned IOVA slots of W7, from [`IOVA_BASE`].
pub const W7_SLOTS: u64 = 64;

/// The largest `--size` of the benchmarks.
pub const MAX_SIZE: u64 = 64 * GIB;

/// The permissions every subject maps with: read, write, cacheable, not executable.
pub const PROT: Prot = Prot::READ
    .union(Prot::WRITE)
    .union(Prot::CACHE)
    .union(Prot::NOEXEC);

/// The physical address mapped at `iova`.
#[inline(always)]
pub fn pa_of(iova: u64) -> u64 {
    PA_BASE + iova
}

/// The size of a workload and its seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Bytes mapped by W1/W2 (and the table W4 looks up in); the other workloads scale
    /// from it. A multiple of 64 KiB.
    pub size: u64,
    /// Seed of W4's addresses and W5's operations.
    pub seed: u64,
}

impl Params {
    /// `size` bytes with the default seed.
    pub fn new(size: u64) -> Self {
        Params {
            size,
            seed: DEFAULT_SEED,
        }
    }

    /// 4K pages of W1/W2/W4.
    pub fn pages(&self) -> u64 {
        self.size / PAGE
    }

    /// 2M blocks of W3 (at least one).
    pub fn blocks(&self) -> u64 {
        (self.size / BLOCK).max(1)
    }

    /// Lookups of W4: 1,000,000 per GiB, at least 10,000.
    pub fn lookups(&self) -> u64 {
        (LOOKUPS_PER_GIB * (self.size / MIB) / 1024).max(MIN_LOOKUPS)
    }

    /// Operations W5 aims for (it then unmaps what is left): one per 8 KiB, at least 256.
    pub fn w5_target_ops(&self) -> u64 {
        (self.size / (8 * KIB)).max(256)
    }

    /// 4K pages W6 maps and unmaps in all (split between the threads): a quarter of the
    /// size, at least 1024, a multiple of 1024.
    pub fn w6_pages(&self) -> u64 {
        (self.size / 4 / PAGE).max(1024) & !1023
    }

    /// Rounds of W7 (each maps, or unmaps, a buffer at every slot): as many buffers as
    /// `size` holds, at least one round.
    pub fn w7_rounds(&self) -> u64 {
        (self.size / (W7_SLOTS * W7_BUFFER)).max(1)
    }

    /// 4K pages W7 maps (and W7u unmaps) in all.
    pub fn w7_pages(&self) -> u64 {
        self.w7_rounds() * W7_SLOTS * (W7_BUFFER / PAGE)
    }
}

/// The result of one timed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Time of the operations (setup and teardown excluded).
    pub elapsed: Duration,
    /// Operations done (see [`Workload::op`]).
    pub ops: u64,
    /// Most table pages in use at once, setup included (fill: pages written).
    pub table_pages: u64,
    /// Table pages in use at the end.
    pub table_pages_end: u64,
}

impl Sample {
    /// Nanoseconds per operation.
    pub fn ns_per_op(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.ops.max(1) as f64
    }
}

/// Runs `workload` once with `subject`: setup, the timed operations, teardown.
///
/// # Panics
/// If the subject cannot do the workload at this size ([`Subject::can_run`]), or if an
/// operation fails (every workload only does what must succeed).
pub fn run(subject: Subject, workload: Workload, p: &Params) -> Sample {
    assert!(
        subject.can_run(workload, p.size),
        "{} cannot run {}: {}",
        subject.name(),
        workload.name(),
        subject.why_not(workload, p.size).unwrap_or_default()
    );
    match subject {
        Subject::Iopt(f) => f.run(workload, p),
        Subject::Aarch64Paging => peers::aarch64_paging::run(workload, p),
        #[cfg(target_pointer_width = "64")]
        Subject::X86_64Crate => peers::x86_64_crate::run(workload, p),
        Subject::Fill => peers::fill::run(workload, p),
    }
}

/// Keeps freed table pages in the process between runs, so that a run's table pages do
/// not all start as fresh memory whose first touch is a page fault.
///
/// glibc's malloc hands memory back to the kernel when a free leaves more than its trim
/// threshold (128 KiB at first) at the top of the heap, so every run that allocates a
/// few MiB of tables page-faults them in again: a kernel-side cost of a few ns per 4K
/// entry that has nothing to do with the page-table code, and that a kernel's page
/// allocator does not have. Freeing one large block raises glibc's thresholds (to 16 MiB
/// and 32 MiB); with other allocators this does nothing. Call it once, before measuring.
pub fn warm_allocator() {
    let block = vec![1u8; 16 << 20];
    drop(black_box(block));
}

/// Times `f`, the measured operations of a run (through [`measured`]).
#[inline(always)]
fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    measured(f);
    start.elapsed()
}

/// Runs `f`: the one function every measured operation goes through, never inlined, so
/// that callgrind can count its instructions alone (`--toggle-collect`).
#[inline(never)]
fn measured(f: impl FnOnce()) {
    f();
}
