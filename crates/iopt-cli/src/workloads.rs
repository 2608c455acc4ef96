//! Benchmark workloads, written once and shared by `iopt bench` and the criterion
//! benchmarks (`crates/iopt/benches/workloads.rs` includes this file, and `rng.rs`, with
//! `#[path]`).
//!
//! A *subject* ([`Subject`]) is something that can build page tables: iopt with one of
//! its formats, the `aarch64-paging` crate, the `x86_64` crate, or the plain-fill
//! baseline. A *workload* ([`Workload`]) is a fixed, seeded sequence of operations. [`run`]
//! builds whatever the workload needs first (a fresh table, a populated table, the op
//! list: none of it timed), times the operations themselves, and returns a [`Sample`]:
//! the elapsed time, the number of operations, and the table pages used.
//!
//! Every table lives in heap pages with physical address = virtual address and is never
//! walked by hardware, so iopt runs with [`HeapMemory`] and [`NoFlush`], and the peers
//! with allocators that hand out zeroed 4 KiB heap pages in the same way. The physical
//! addresses mapped are made up (`PA_BASE + iova`): only the table pages are real memory.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::VecDeque;
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
use iopt::fmt::armv7s::{ArmV7s, ArmV7sConfig};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::{ArenaMemory, HeapMemory, TableMemory};
use iopt::{Format, Gather, NoFlush, PageTable, Prot, SharedTable};

use crate::rng::XorShift;
use crate::units::size as human;

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
/// Largest size armv7s takes: its IOVAs and physical addresses are 32-bit.
pub const ARMV7S_MAX_SIZE: u64 = (1 << 32) - PA_BASE;
/// Seed of the pseudo-random workloads (W4's addresses, W5's operations).
pub const DEFAULT_SEED: u64 = 0x10_5eed;
/// Lookups of W4 at 1 GiB (scaled with the size, at least [`MIN_LOOKUPS`]).
pub const LOOKUPS_PER_GIB: u64 = 1_000_000;
/// Fewest lookups of W4.
pub const MIN_LOOKUPS: u64 = 10_000;

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

/// The iopt formats benchmarked, each in the configuration a driver would use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoptFormat {
    /// x86-64 4-level paging (VT-d first stage), sign-extended.
    X86_64,
    /// ARM64 LPAE stage 1, 4K granule, ias 48, contiguous hints off (as aarch64-paging).
    Arm64S1,
    /// The same with contiguous hints on (16-entry runs for 64 KiB pages).
    Arm64S1Contig,
    /// AMD IOMMU v1, 3 levels at creation, dynamic top.
    AmdV1,
    /// ARMv7 short descriptors (32-bit IOVA and PA).
    ArmV7s,
}

impl IoptFormat {
    /// Every format, in report order.
    pub const ALL: [IoptFormat; 5] = [
        IoptFormat::X86_64,
        IoptFormat::Arm64S1,
        IoptFormat::Arm64S1Contig,
        IoptFormat::AmdV1,
        IoptFormat::ArmV7s,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            IoptFormat::X86_64 => "x86-64",
            IoptFormat::Arm64S1 => "arm64-s1",
            IoptFormat::Arm64S1Contig => "arm64-s1-contig",
            IoptFormat::AmdV1 => "amdv1",
            IoptFormat::ArmV7s => "armv7s",
        }
    }

    /// The page size of a "4K pages in one call" map: 4 KiB, except 64 KiB (a
    /// contiguous run of 16 4K entries, the same leaf tables) when contiguous hints are on.
    pub fn bulk_pgsize(self) -> u64 {
        match self {
            IoptFormat::Arm64S1Contig => 64 * KIB,
            _ => PAGE,
        }
    }

    /// Whether `size` bytes at [`IOVA_BASE`] (and the workloads scaled from it) fit.
    pub fn fits(self, size: u64) -> bool {
        self != IoptFormat::ArmV7s || size <= ARMV7S_MAX_SIZE
    }

    /// The peer that does the same work with the same table layout, if any.
    pub fn peer(self) -> Option<Subject> {
        match self {
            IoptFormat::Arm64S1 | IoptFormat::Arm64S1Contig => Some(Subject::Aarch64Paging),
            #[cfg(target_pointer_width = "64")]
            IoptFormat::X86_64 => Some(Subject::X86_64Crate),
            _ => None,
        }
    }
}

/// Runs `$body` with `$f` bound to the configured iopt format `$kind` and `$m` to the
/// table memory type it uses (each arm is monomorphised: no dynamic dispatch on the
/// measured paths).
macro_rules! with_format {
    ($kind:expr, |$f:ident, $m:ident| $body:expr) => {
        match $kind {
            IoptFormat::X86_64 => {
                type $m = HeapMemory;
                let $f = X86_64::new(X86_64Config::default()).expect("x86-64 default config");
                $body
            }
            IoptFormat::Arm64S1 | IoptFormat::Arm64S1Contig => {
                type $m = HeapMemory;
                let $f = ArmLpae::new(ArmLpaeConfig {
                    contiguous: $kind == IoptFormat::Arm64S1Contig,
                    ..ArmLpaeConfig::default()
                })
                .expect("arm64 stage 1 4K ias 48 config");
                $body
            }
            IoptFormat::AmdV1 => {
                type $m = HeapMemory;
                let $f = AmdV1::new(AmdV1Config::default()).expect("amdv1 default config");
                $body
            }
            IoptFormat::ArmV7s => {
                // Its table entries hold 32-bit addresses: tables from simulated physical
                // memory below 4 GiB.
                type $m = ArenaMemory;
                let $f = ArmV7s::new(ArmV7sConfig::default()).expect("armv7s default config");
                $body
            }
        }
    };
}

/// Something that builds page tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// iopt with one of its formats (raw API; W6: the concurrent handle).
    Iopt(IoptFormat),
    /// The `aarch64-paging` crate: `RootTable` with a 48-bit (level 0) root, stage 1,
    /// no contiguous hints; `NO_BLOCK_MAPPINGS` where the workload maps 4K pages.
    Aarch64Paging,
    /// The `x86_64` crate: `OffsetPageTable` with `Mapper::map_to` / `unmap`.
    #[cfg(target_pointer_width = "64")]
    X86_64Crate,
    /// Plain fill of the same entry bytes: the entry values written with a loop into
    /// preallocated, pre-touched 4 KiB-aligned pages (a lower bound, not a page table).
    Fill,
}

impl Subject {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Subject::Iopt(f) => f.name(),
            Subject::Aarch64Paging => "aarch64-paging",
            #[cfg(target_pointer_width = "64")]
            Subject::X86_64Crate => "x86_64 crate",
            Subject::Fill => "fill",
        }
    }

    /// Whether this subject can do `workload` at `size` bytes.
    pub fn can_run(self, workload: Workload, size: u64) -> bool {
        use Workload::*;
        match self {
            Subject::Iopt(f) => f.fits(size),
            Subject::Aarch64Paging => !matches!(workload, W6 | W6Single),
            #[cfg(target_pointer_width = "64")]
            Subject::X86_64Crate => !matches!(workload, W6 | W6Single),
            Subject::Fill => matches!(workload, W1 | W2 | W3),
        }
    }

    /// How this subject does `workload` differently from the others, if it does.
    pub fn note(self, workload: Workload) -> Option<&'static str> {
        match (self, workload) {
            #[cfg(target_pointer_width = "64")]
            (Subject::X86_64Crate, Workload::W2) => Some("per-page map_to: no range API"),
            #[cfg(target_pointer_width = "64")]
            (Subject::X86_64Crate, Workload::W2u) => Some("per-page unmap: no range API"),
            _ => None,
        }
    }
}

/// A benchmark workload. `u` variants unmap what the workload before them mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Map `size` bytes of 4K pages, one page per call.
    W1,
    /// Unmap the W1 table, one page per call.
    W1u,
    /// Map `size` bytes of 4K pages in one call.
    W2,
    /// Unmap the W2 table in one call (and free the tables it empties).
    W2u,
    /// Map `size / 2M` 2 MiB blocks, one per call.
    W3,
    /// Unmap them, one per call.
    W3u,
    /// Translate pseudo-random IOVAs in the W2 table.
    W4,
    /// A mixed driver workload: streaming map/unmap pairs of 1-16 pages at recycled
    /// IOVAs, interleaved with 64 KiB and 2 MiB buffers.
    W5,
    /// Two threads mapping and unmapping 4K pages in disjoint ranges of one
    /// [`SharedTable`], one range guard per 64 KiB window of 16 pages.
    W6,
    /// The same operations as W6 done by one thread (W6's reference).
    W6Single,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 10] = [
        Workload::W1,
        Workload::W1u,
        Workload::W2,
        Workload::W2u,
        Workload::W3,
        Workload::W3u,
        Workload::W4,
        Workload::W5,
        Workload::W6,
        Workload::W6Single,
    ];

    /// The short name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W1u => "W1u",
            Workload::W2 => "W2",
            Workload::W2u => "W2u",
            Workload::W3 => "W3",
            Workload::W3u => "W3u",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
            Workload::W6 => "W6",
            Workload::W6Single => "W6-1",
        }
    }

    /// What one operation is, for "ns per op".
    pub fn op(self) -> &'static str {
        match self {
            Workload::W1 | Workload::W1u | Workload::W2 | Workload::W2u => "4K page",
            Workload::W3 | Workload::W3u => "2M block",
            Workload::W4 => "lookup",
            Workload::W5 => "map or unmap call",
            Workload::W6 | Workload::W6Single => "4K page map or unmap",
        }
    }

    /// One line on what it does at `p`.
    pub fn describe(self, p: &Params) -> String {
        let size = human(p.size);
        match self {
            Workload::W1 => format!("map {size} of 4K pages, 1 page per call"),
            Workload::W1u => format!("unmap {size} of 4K pages, 1 page per call"),
            Workload::W2 => format!("map {size} of 4K pages in 1 call"),
            Workload::W2u => format!("unmap {size} of 4K pages in 1 call"),
            Workload::W3 => format!("map {} 2M blocks, 1 per call", p.blocks()),
            Workload::W3u => format!("unmap {} 2M blocks, 1 per call", p.blocks()),
            Workload::W4 => format!("{} random lookups in {size}", p.lookups()),
            Workload::W5 => format!("mixed driver ops ({} ops)", w5_ops(p).len()),
            Workload::W6 => format!("2 threads, {} 4K map+unmap", p.w6_pages()),
            Workload::W6Single => format!("1 thread, {} 4K map+unmap", p.w6_pages()),
        }
    }

    /// The subjects that take part, in report order (iopt first).
    pub fn subjects(self) -> Vec<Subject> {
        let mut v: Vec<Subject> = IoptFormat::ALL.iter().map(|&f| Subject::Iopt(f)).collect();
        v.push(Subject::Aarch64Paging);
        #[cfg(target_pointer_width = "64")]
        v.push(Subject::X86_64Crate);
        v.push(Subject::Fill);
        v.retain(|s| s.can_run(self, 0));
        v
    }
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
        "{} cannot run {}",
        subject.name(),
        workload.name()
    );
    match subject {
        Subject::Iopt(kind) => with_format!(kind, |f, M| iopt_run::<_, M>(
            f,
            kind.bulk_pgsize(),
            workload,
            p
        )),
        Subject::Aarch64Paging => arm::run(workload, p),
        #[cfg(target_pointer_width = "64")]
        Subject::X86_64Crate => x86::run(workload, p),
        Subject::Fill => fill::run(workload, p),
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

/// Times `f`.
#[inline(always)]
fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// W4's addresses: uniformly random bytes of `[IOVA_BASE, IOVA_BASE + size)`.
pub fn w4_iovas(p: &Params) -> Vec<u64> {
    let mut rng = XorShift::new(p.seed);
    (0..p.lookups())
        .map(|_| IOVA_BASE + rng.below(p.size))
        .collect()
}

/// What W4's lookups must add up to (wrapping sum of the physical addresses).
fn w4_expected(iovas: &[u64]) -> u64 {
    iovas.iter().fold(0u64, |s, &v| s.wrapping_add(pa_of(v)))
}

/// One operation of W5. The physical address is always [`pa_of`] the IOVA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Map `len` bytes at `iova`.
    Map {
        /// First IOVA.
        iova: u64,
        /// Bytes.
        len: u64,
    },
    /// Unmap the buffer mapped at `iova` (`len` bytes).
    Unmap {
        /// First IOVA.
        iova: u64,
        /// Bytes.
        len: u64,
    },
}

/// One kind of buffer of W5: where its slots are, how many may be live, and how long.
struct BufferKind {
    base: u64,
    slot: u64,
    slots: u64,
    live_max: usize,
    percent: u64,
}

/// W5's kinds: streaming buffers of 1-16 pages (80%), 64 KiB buffers (10%), 2 MiB
/// buffers (10%), each at its own recycled slots.
const W5_KINDS: [BufferKind; 3] = [
    BufferKind {
        base: 0x0100_0000,
        slot: 64 * KIB,
        slots: 64,
        live_max: 32,
        percent: 80,
    },
    BufferKind {
        base: 0x1000_0000,
        slot: 64 * KIB,
        slots: 32,
        live_max: 16,
        percent: 10,
    },
    BufferKind {
        base: 0x4000_0000,
        slot: BLOCK,
        slots: 16,
        live_max: 8,
        percent: 10,
    },
];

/// W5's operation sequence (the same for every subject): a buffer kind is drawn; if as
/// many of that kind as allowed are live, the oldest is unmapped first; the new buffer
/// goes to the slot that was freed longest ago. At the end every live buffer is
/// unmapped, so the table is empty again.
pub fn w5_ops(p: &Params) -> Vec<Op> {
    let mut rng = XorShift::new(p.seed);
    let mut free: Vec<VecDeque<u64>> = W5_KINDS
        .iter()
        .map(|k| (0..k.slots).map(|i| k.base + i * k.slot).collect())
        .collect();
    let mut live: Vec<VecDeque<(u64, u64)>> = W5_KINDS.iter().map(|_| VecDeque::new()).collect();
    let mut ops = Vec::new();
    while (ops.len() as u64) < p.w5_target_ops() {
        let mut r = rng.below(100);
        let k = W5_KINDS
            .iter()
            .position(|kind| {
                let hit = r < kind.percent;
                r = r.saturating_sub(kind.percent);
                hit
            })
            .unwrap_or(0);
        if live[k].len() == W5_KINDS[k].live_max {
            let (iova, len) = live[k].pop_front().expect("a live buffer");
            ops.push(Op::Unmap { iova, len });
            free[k].push_back(iova);
        }
        let iova = free[k].pop_front().expect("a free slot");
        let len = if k == 0 {
            (rng.below(16) + 1) * PAGE
        } else {
            W5_KINDS[k].slot
        };
        ops.push(Op::Map { iova, len });
        live[k].push_back((iova, len));
    }
    for (iova, len) in live.into_iter().flatten() {
        ops.push(Op::Unmap { iova, len });
    }
    ops
}

/// The largest page size of `bitmap` that divides `iova`, `pa` and `len`: what a driver
/// passes to `map_pages` for a buffer (one call per buffer).
fn pgsize_for(bitmap: u64, iova: u64, pa: u64, len: u64) -> u64 {
    let align = iova | pa | len;
    let fits = bitmap
        & (align & align.wrapping_neg())
            .wrapping_mul(2)
            .wrapping_sub(1);
    1 << (63 - fits.leading_zeros())
}

// ---------------------------------------------------------------------------------------
// iopt

/// Where a benchmark table's pages come from.
trait BenchMemory: TableMemory + Sized {
    /// Memory for the tables of a workload at `p`.
    fn for_params(p: &Params) -> Self;
}

impl BenchMemory for HeapMemory {
    fn for_params(_: &Params) -> Self {
        HeapMemory::new()
    }
}

/// Physical address of the arena of 32-bit formats.
const ARENA_BASE: u64 = 0x1000_0000;

impl BenchMemory for ArenaMemory {
    /// Room for 1 KiB per MiB mapped (armv7s leaf tables) and 1 MiB more.
    fn for_params(p: &Params) -> Self {
        ArenaMemory::new(ARENA_BASE, (p.size / 1024 + MIB) as usize)
    }
}

/// The raw table the benchmarks use: no flushing (never live).
type Raw<F, M> = PageTable<F, M, NoFlush>;

fn new_raw<F: Format, M: BenchMemory>(fmt: F, p: &Params) -> Raw<F, M> {
    PageTable::new(fmt, M::for_params(p), NoFlush).expect("a new table")
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
fn iopt_block_pgsize(bitmap: u64) -> u64 {
    let below = bitmap & (2 * BLOCK - 1);
    1 << (63 - below.leading_zeros())
}

fn iopt_run<F: Format, M: BenchMemory>(fmt: F, bulk: u64, w: Workload, p: &Params) -> Sample {
    match w {
        Workload::W1 => iopt_w1::<F, M>(fmt, p),
        Workload::W1u => iopt_w1u::<F, M>(fmt, p),
        Workload::W2 => iopt_w2::<F, M>(fmt, bulk, p),
        Workload::W2u => iopt_w2u::<F, M>(fmt, bulk, p),
        Workload::W3 => iopt_w3::<F, M>(fmt, p),
        Workload::W3u => iopt_w3u::<F, M>(fmt, p),
        Workload::W4 => iopt_w4::<F, M>(fmt, bulk, p),
        Workload::W5 => iopt_w5::<F, M>(fmt, p),
        Workload::W6 => iopt_w6::<F, M>(fmt, p, 2),
        Workload::W6Single => iopt_w6::<F, M>(fmt, p, 1),
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

/// Pages W6 maps (or unmaps) under one guard: a 64 KiB window, like a driver that locks
/// the IOVA range of one buffer and maps its pages.
const W6_GUARD_PAGES: u64 = 16;

/// W6 with `threads` threads (1 or 2) over the same two disjoint ranges: each range is
/// mapped page by page, then unmapped page by page, through a guard per window.
fn iopt_w6<F: Format, M: BenchMemory>(fmt: F, p: &Params, threads: usize) -> Sample {
    let t = SharedTable::new(fmt, M::for_params(p), NoFlush).expect("a new table");
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

// ---------------------------------------------------------------------------------------
// aarch64-paging

mod arm {
    use super::*;
    use aarch64_paging::descriptor::{El1Attributes as A, PhysicalAddress};
    use aarch64_paging::paging::{
        Constraints, El1And0, MemoryRegion, PageTable as ArmPage, RootTable, Translation, VaRange,
    };

    /// Table pages from the heap (PA = VA), counted.
    #[derive(Debug, Default)]
    pub struct Counted {
        live: u64,
        peak: u64,
    }

    impl Translation<A> for Counted {
        fn allocate_table(&mut self) -> (NonNull<ArmPage<A>>, PhysicalAddress) {
            let layout = Layout::new::<ArmPage<A>>();
            // SAFETY: the layout has a non-zero size (4 KiB, aligned to 4 KiB).
            let ptr = unsafe { alloc_zeroed(layout) }.cast::<ArmPage<A>>();
            let ptr = NonNull::new(ptr).expect("out of memory");
            self.live += 1;
            self.peak = self.peak.max(self.live);
            (ptr, PhysicalAddress(ptr.as_ptr() as usize))
        }

        unsafe fn deallocate_table(&mut self, table: NonNull<ArmPage<A>>) {
            self.live -= 1;
            // SAFETY: the library frees only tables it got from `allocate_table`, with
            // the same layout, once.
            unsafe { dealloc(table.as_ptr().cast(), Layout::new::<ArmPage<A>>()) }
        }

        fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<ArmPage<A>> {
            NonNull::new(pa.0 as *mut ArmPage<A>).expect("a table address")
        }
    }

    type Table = RootTable<El1And0, Counted>;

    /// A 48-bit stage 1 table (root at level 0), like iopt's `arm64-s1`.
    fn new_table() -> Table {
        RootTable::with_va_range(Counted::default(), 0, El1And0, VaRange::Lower)
    }

    /// Normal write-back memory (MAIR index 1), inner shareable, accessed, not
    /// executable: what iopt writes for `PROT`.
    fn flags() -> A {
        A::VALID | A::ACCESSED | A::ATTRIBUTE_INDEX_1 | A::INNER_SHAREABLE | A::UXN | A::PXN
    }

    /// 4K pages only.
    const PAGES: Constraints =
        Constraints::NO_BLOCK_MAPPINGS.union(Constraints::NO_CONTIGUOUS_HINT);
    /// Blocks where aligned.
    const BLOCKS: Constraints = Constraints::NO_CONTIGUOUS_HINT;

    fn region(iova: u64, len: u64) -> MemoryRegion {
        MemoryRegion::new(iova as usize, (iova + len) as usize)
    }

    #[inline(always)]
    fn map(t: &mut Table, iova: u64, len: u64, flags: A, c: Constraints) {
        t.map_range(
            &region(iova, len),
            PhysicalAddress(pa_of(iova) as usize),
            flags,
            c,
        )
        .unwrap_or_else(|e| panic!("aarch64-paging map {iova:#x}+{len:#x}: {e}"));
    }

    /// Unmapping is mapping with flags that lack VALID.
    #[inline(always)]
    fn unmap(t: &mut Table, iova: u64, len: u64, c: Constraints) {
        t.map_range(&region(iova, len), PhysicalAddress(0), A::empty(), c)
            .unwrap_or_else(|e| panic!("aarch64-paging unmap {iova:#x}+{len:#x}: {e}"));
    }

    fn sample(t: &Table, elapsed: Duration, ops: u64) -> Sample {
        Sample {
            elapsed,
            ops,
            table_pages: t.translation().peak,
            table_pages_end: t.translation().live,
        }
    }

    /// The physical address `iova` translates to, through `walk_range`.
    #[inline(always)]
    fn translate(t: &Table, iova: u64) -> Option<u64> {
        let mut out = None;
        let va = iova as usize;
        t.walk_range(&MemoryRegion::new(va, va + 1), &mut |_, d, level| {
            if d.is_valid() {
                let size = 1usize << (12 + 9 * (3 - level));
                out = Some((d.output_address().0 + (va & (size - 1))) as u64);
            }
            Ok(())
        })
        .ok()?;
        out
    }

    pub fn run(w: Workload, p: &Params) -> Sample {
        let mut t = new_table();
        let f = flags();
        let (pages, blocks) = (p.pages(), p.blocks());
        match w {
            Workload::W1 => {
                let e = timed(|| {
                    for i in 0..pages {
                        map(&mut t, IOVA_BASE + i * PAGE, PAGE, f, PAGES);
                    }
                });
                sample(&t, e, pages)
            }
            Workload::W1u => {
                map(&mut t, IOVA_BASE, p.size, f, PAGES);
                let e = timed(|| {
                    for i in 0..pages {
                        unmap(&mut t, IOVA_BASE + i * PAGE, PAGE, PAGES);
                    }
                });
                sample(&t, e, pages)
            }
            Workload::W2 => {
                let e = timed(|| map(&mut t, IOVA_BASE, p.size, f, PAGES));
                sample(&t, e, pages)
            }
            Workload::W2u => {
                map(&mut t, IOVA_BASE, p.size, f, PAGES);
                let e = timed(|| unmap(&mut t, IOVA_BASE, p.size, PAGES));
                sample(&t, e, pages)
            }
            Workload::W3 => {
                let e = timed(|| {
                    for b in 0..blocks {
                        map(&mut t, IOVA_BASE + b * BLOCK, BLOCK, f, BLOCKS);
                    }
                });
                sample(&t, e, blocks)
            }
            Workload::W3u => {
                for b in 0..blocks {
                    map(&mut t, IOVA_BASE + b * BLOCK, BLOCK, f, BLOCKS);
                }
                let e = timed(|| {
                    for b in 0..blocks {
                        unmap(&mut t, IOVA_BASE + b * BLOCK, BLOCK, BLOCKS);
                    }
                });
                sample(&t, e, blocks)
            }
            Workload::W4 => {
                map(&mut t, IOVA_BASE, p.size, f, PAGES);
                let iovas = w4_iovas(p);
                let mut sum = 0u64;
                let e = timed(|| {
                    for &iova in &iovas {
                        sum = sum.wrapping_add(translate(&t, iova).unwrap_or(0));
                    }
                    black_box(sum);
                });
                assert_eq!(sum, w4_expected(&iovas), "aarch64-paging W4 lookups");
                sample(&t, e, iovas.len() as u64)
            }
            Workload::W5 => {
                let ops = w5_ops(p);
                let e = timed(|| {
                    for &op in &ops {
                        match op {
                            Op::Map { iova, len } => map(&mut t, iova, len, f, BLOCKS),
                            Op::Unmap { iova, len } => unmap(&mut t, iova, len, BLOCKS),
                        }
                    }
                });
                sample(&t, e, ops.len() as u64)
            }
            Workload::W6 | Workload::W6Single => unreachable!("not a peer workload"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// x86_64 crate

#[cfg(target_pointer_width = "64")]
mod x86 {
    use super::*;
    use x86_64::structures::paging::{
        FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable as X86Page,
        PageTableFlags as F, PhysFrame, Size2MiB, Size4KiB, Translate,
    };
    use x86_64::{PhysAddr, VirtAddr};

    const LAYOUT: Layout = Layout::new::<X86Page>();

    /// Table pages from the heap (PA = VA), counted; all freed on drop.
    #[derive(Debug, Default)]
    struct Frames {
        live: Vec<u64>,
        peak: u64,
    }

    impl Frames {
        fn page(&mut self) -> u64 {
            // SAFETY: the layout has a non-zero size (4 KiB, aligned to 4 KiB).
            let ptr = unsafe { alloc_zeroed(LAYOUT) };
            assert!(!ptr.is_null(), "out of memory");
            self.live.push(ptr as u64);
            self.peak = self.peak.max(self.live.len() as u64);
            ptr as u64
        }
    }

    // SAFETY: every frame is a fresh, zeroed, 4 KiB-aligned heap page owned by `Frames`
    // until it is dropped, never handed out twice.
    unsafe impl FrameAllocator<Size4KiB> for Frames {
        fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
            let pa = self.page();
            PhysFrame::from_start_address(PhysAddr::new(pa)).ok()
        }
    }

    impl Drop for Frames {
        fn drop(&mut self) {
            for &pa in &self.live {
                // SAFETY: each address came from `alloc_zeroed(LAYOUT)` in `page` and is
                // freed once, here; the table using them is gone.
                unsafe { dealloc(pa as *mut u8, LAYOUT) }
            }
        }
    }

    /// A 4-level table: the root and every table below it are `frames`' pages.
    struct Table {
        frames: Frames,
        root: NonNull<X86Page>,
    }

    impl Table {
        fn new() -> Self {
            let mut frames = Frames::default();
            let root = NonNull::new(frames.page() as *mut X86Page).expect("a root");
            Table { frames, root }
        }

        /// The mapper over the table, and the allocator for its new tables.
        fn parts(&mut self) -> (OffsetPageTable<'_>, &mut Frames) {
            // SAFETY: the root is a live, zeroed-then-edited table page owned by
            // `self.frames`, borrowed mutably for as long as `self` is; with physical
            // offset 0 every table address (PA = VA) is a valid pointer. The leaf frames
            // are made-up addresses the crate never dereferences, and the table is never
            // loaded into CR3.
            let pt = unsafe { OffsetPageTable::new(&mut *self.root.as_ptr(), VirtAddr::zero()) };
            (pt, &mut self.frames)
        }

        fn sample(&self, elapsed: Duration, ops: u64) -> Sample {
            Sample {
                elapsed,
                ops,
                table_pages: self.frames.peak,
                table_pages_end: self.frames.live.len() as u64,
            }
        }
    }

    fn flags() -> F {
        F::PRESENT | F::WRITABLE | F::NO_EXECUTE
    }

    #[inline(always)]
    fn map<S: PageSize + std::fmt::Debug>(pt: &mut OffsetPageTable<'_>, fa: &mut Frames, iova: u64)
    where
        for<'a> OffsetPageTable<'a>: Mapper<S>,
    {
        let page = Page::<S>::from_start_address(VirtAddr::new(iova)).expect("aligned");
        let frame =
            PhysFrame::<S>::from_start_address(PhysAddr::new(pa_of(iova))).expect("aligned");
        // SAFETY: the table is never live: mapping a made-up frame cannot alias memory
        // the program uses.
        match unsafe { pt.map_to(page, frame, flags(), fa) } {
            Ok(flush) => flush.ignore(),
            Err(e) => panic!("x86_64 map_to {iova:#x}: {e:?}"),
        }
    }

    #[inline(always)]
    fn unmap<S: PageSize>(pt: &mut OffsetPageTable<'_>, iova: u64)
    where
        for<'a> OffsetPageTable<'a>: Mapper<S>,
    {
        let page = Page::<S>::from_start_address(VirtAddr::new(iova)).expect("aligned");
        match pt.unmap(page) {
            Ok((_, flush)) => flush.ignore(),
            Err(e) => panic!("x86_64 unmap {iova:#x}: {e:?}"),
        }
    }

    /// Maps a buffer: one 2 MiB page if it is exactly one, else 4K pages.
    fn map_buffer(pt: &mut OffsetPageTable<'_>, fa: &mut Frames, iova: u64, len: u64) {
        if len == BLOCK && iova.is_multiple_of(BLOCK) {
            map::<Size2MiB>(pt, fa, iova);
        } else {
            for i in 0..len / PAGE {
                map::<Size4KiB>(pt, fa, iova + i * PAGE);
            }
        }
    }

    fn unmap_buffer(pt: &mut OffsetPageTable<'_>, iova: u64, len: u64) {
        if len == BLOCK && iova.is_multiple_of(BLOCK) {
            unmap::<Size2MiB>(pt, iova);
        } else {
            for i in 0..len / PAGE {
                unmap::<Size4KiB>(pt, iova + i * PAGE);
            }
        }
    }

    pub fn run(w: Workload, p: &Params) -> Sample {
        let mut t = Table::new();
        let (pages, blocks) = (p.pages(), p.blocks());
        let e = {
            let (mut pt, fa) = t.parts();
            let pt = &mut pt;
            let map_all = |pt: &mut OffsetPageTable<'_>, fa: &mut Frames| {
                for i in 0..pages {
                    map::<Size4KiB>(pt, fa, IOVA_BASE + i * PAGE);
                }
            };
            match w {
                // No range API: W2 maps page by page like W1, W2u unmaps like W1u.
                Workload::W1 | Workload::W2 => timed(|| map_all(pt, fa)),
                Workload::W1u | Workload::W2u => {
                    map_all(pt, fa);
                    timed(|| {
                        for i in 0..pages {
                            unmap::<Size4KiB>(pt, IOVA_BASE + i * PAGE);
                        }
                    })
                }
                Workload::W3 => timed(|| {
                    for b in 0..blocks {
                        map::<Size2MiB>(pt, fa, IOVA_BASE + b * BLOCK);
                    }
                }),
                Workload::W3u => {
                    for b in 0..blocks {
                        map::<Size2MiB>(pt, fa, IOVA_BASE + b * BLOCK);
                    }
                    timed(|| {
                        for b in 0..blocks {
                            unmap::<Size2MiB>(pt, IOVA_BASE + b * BLOCK);
                        }
                    })
                }
                Workload::W4 => {
                    map_all(pt, fa);
                    let iovas = w4_iovas(p);
                    let mut sum = 0u64;
                    let e = timed(|| {
                        for &iova in &iovas {
                            let pa = pt.translate_addr(VirtAddr::new(iova));
                            sum = sum.wrapping_add(pa.map_or(0, PhysAddr::as_u64));
                        }
                        black_box(sum);
                    });
                    assert_eq!(sum, w4_expected(&iovas), "x86_64 W4 lookups");
                    return t.sample(e, iovas.len() as u64);
                }
                Workload::W5 => {
                    let ops = w5_ops(p);
                    let e = timed(|| {
                        for &op in &ops {
                            match op {
                                Op::Map { iova, len } => map_buffer(pt, fa, iova, len),
                                Op::Unmap { iova, len } => unmap_buffer(pt, iova, len),
                            }
                        }
                    });
                    return t.sample(e, ops.len() as u64);
                }
                Workload::W6 | Workload::W6Single => unreachable!("not a peer workload"),
            }
        };
        let ops = if matches!(w, Workload::W3 | Workload::W3u) {
            blocks
        } else {
            pages
        };
        t.sample(e, ops)
    }
}

// ---------------------------------------------------------------------------------------
// Plain fill

mod fill {
    use super::*;

    /// One 4 KiB-aligned page of entries.
    #[derive(Clone, Copy)]
    #[repr(C, align(4096))]
    struct Page([u64; 512]);

    /// Writes `n` entries `first + i * step` into preallocated, pre-touched pages.
    fn fill(n: u64, first: u64, step: u64) -> Sample {
        let pages = n.div_ceil(512) as usize;
        // Pre-touch: every page written once before the timed fill.
        let mut buf = vec![Page([u64::MAX; 512]); pages];
        black_box(&mut buf);
        let elapsed = timed(|| {
            let entries = buf.iter_mut().flat_map(|p| p.0.iter_mut()).take(n as usize);
            let mut v = first;
            for e in entries {
                *e = v;
                v = v.wrapping_add(step);
            }
            black_box(&mut buf);
        });
        Sample {
            elapsed,
            ops: n,
            table_pages: pages as u64,
            table_pages_end: pages as u64,
        }
    }

    pub fn run(w: Workload, p: &Params) -> Sample {
        // The entry values iopt writes for x86-64 (4K leaves, 2M leaves).
        let fmt = X86_64::new(X86_64Config::default()).expect("x86-64 default config");
        match w {
            Workload::W1 | Workload::W2 => {
                fill(p.pages(), fmt.make_leaf(0, pa_of(IOVA_BASE), 0, PROT), PAGE)
            }
            Workload::W3 => fill(
                p.blocks(),
                fmt.make_leaf(1, pa_of(IOVA_BASE), 0, PROT),
                BLOCK,
            ),
            _ => unreachable!("fill does only W1, W2 and W3"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact table-page counts of W2 (and the W2 table under W4): the minimum for each
    /// layout.
    #[test]
    fn w2_uses_the_fewest_tables() {
        // 4 MiB at IOVA 0, x86-64 4-level: 2 leaf tables + PD + PDPT + root.
        let p = Params::new(4 * MIB);
        for s in [Subject::Iopt(IoptFormat::X86_64), Subject::X86_64Crate] {
            let r = run(s, Workload::W2, &p);
            assert_eq!((r.table_pages, r.ops), (5, 1024), "{}", s.name());
        }
        // 64 MiB, ARM64 4K 48-bit: 32 leaf tables + 3 above, with or without hints.
        let p = Params::new(64 * MIB);
        for s in [
            Subject::Iopt(IoptFormat::Arm64S1),
            Subject::Iopt(IoptFormat::Arm64S1Contig),
            Subject::Aarch64Paging,
        ] {
            assert_eq!(run(s, Workload::W2, &p).table_pages, 35, "{}", s.name());
        }
        // AMD v1 (3 levels: 32 leaf tables + 1 + root); armv7s (64 1 KiB tables + root).
        assert_eq!(
            run(Subject::Iopt(IoptFormat::AmdV1), Workload::W2, &p).table_pages,
            34
        );
        assert_eq!(
            run(Subject::Iopt(IoptFormat::ArmV7s), Workload::W2, &p).table_pages,
            65
        );
        // The baseline writes the same 16384 entries into 32 pages.
        let fill = run(Subject::Fill, Workload::W2, &p);
        assert_eq!((fill.ops, fill.table_pages), (16384, 32));
    }

    /// The fewest x86-64 4-level table pages that can hold leaves of `2^leaf_lg2` bytes
    /// (4 KiB or 2 MiB) at every IOVA in `ranges`: the root, plus one table per distinct
    /// span at each level between the root and the leaves.
    fn x86_min_tables(ranges: &[(u64, u64)], leaf_lg2: u32) -> u64 {
        let mut spans = std::collections::BTreeSet::new();
        for &(iova, len) in ranges {
            // A table at level L (0 = 4 KiB leaves) spans 2^(21 + 9L) bytes; tables are
            // needed from the leaf level up to level 2 (the root is level 3).
            let leaf_level = (leaf_lg2 - 12) / 9;
            for level in leaf_level..3 {
                let span_lg2 = 21 + 9 * level;
                for t in iova >> span_lg2..=(iova + len - 1) >> span_lg2 {
                    spans.insert((level, t));
                }
            }
        }
        1 + spans.len() as u64
    }

    /// Every workload's peak table pages against the minimum for what it maps (x86-64):
    /// W1, W1u, W2, W2u and W4 the tables for 4 KiB leaves over the whole size; W3 the
    /// tables for 2 MiB blocks; W6 both threads' ranges. W5 recycles IOVAs and keeps
    /// emptied tables (as Linux does), so its peak is checked against the tables of its
    /// whole IOVA footprint at 4 KiB granularity.
    #[test]
    fn every_workload_uses_the_fewest_tables() {
        let p = Params::new(8 * MIB);
        let x86 = Subject::Iopt(IoptFormat::X86_64);
        let all = [(IOVA_BASE, p.pages() * PAGE)];
        let min4k = x86_min_tables(&all, 12);
        for w in [
            Workload::W1,
            Workload::W1u,
            Workload::W2,
            Workload::W2u,
            Workload::W4,
        ] {
            assert_eq!(run(x86, w, &p).table_pages, min4k, "{}", w.name());
        }
        let blocks = [(IOVA_BASE, p.blocks() * BLOCK)];
        assert_eq!(
            run(x86, Workload::W3, &p).table_pages,
            x86_min_tables(&blocks, 21)
        );
        let w6 = [(IOVA_BASE, p.w6_pages() * PAGE)];
        for w in [Workload::W6, Workload::W6Single] {
            assert_eq!(
                run(x86, w, &p).table_pages,
                x86_min_tables(&w6, 12),
                "{}",
                w.name()
            );
        }
        let footprint: Vec<(u64, u64)> = w5_ops(&p)
            .iter()
            .filter_map(|o| match *o {
                Op::Map { iova, len } => Some((iova, len)),
                Op::Unmap { .. } => None,
            })
            .collect();
        let r = run(x86, Workload::W5, &p);
        assert!(
            r.table_pages <= x86_min_tables(&footprint, 12),
            "W5 peak {} tables",
            r.table_pages
        );
    }

    #[test]
    fn unmaps_keep_or_free_tables_as_documented() {
        let p = Params::new(4 * MIB);
        let x86 = Subject::Iopt(IoptFormat::X86_64);
        // Page by page, the emptied leaf tables stay linked; one call covers the spans
        // of both leaf tables (2 MiB each), which are detached and freed by the sync.
        assert_eq!(run(x86, Workload::W1u, &p).table_pages_end, 5);
        assert_eq!(run(x86, Workload::W2u, &p).table_pages_end, 3);
        // Blocks: 2 blocks of 2 MiB in one PD, no leaf tables.
        let r = run(x86, Workload::W3, &p);
        assert_eq!((r.ops, r.table_pages), (2, 3));
        let r = run(Subject::X86_64Crate, Workload::W3, &p);
        assert_eq!((r.ops, r.table_pages), (2, 3));
    }

    #[test]
    fn every_subject_runs_every_workload_it_claims() {
        let p = Params::new(MIB);
        for w in Workload::ALL {
            for s in w.subjects() {
                let r = run(s, w, &p);
                assert!(r.ops > 0, "{} {}", s.name(), w.name());
            }
        }
    }

    #[test]
    fn w5_is_balanced_and_recycles() {
        let p = Params::new(4 * MIB);
        let ops = w5_ops(&p);
        assert_eq!(ops, w5_ops(&p), "seeded");
        let maps = ops.iter().filter(|o| matches!(o, Op::Map { .. })).count();
        assert_eq!(2 * maps, ops.len(), "every map is unmapped");
        let stream_maps: Vec<u64> = ops
            .iter()
            .filter_map(|o| match *o {
                Op::Map { iova, .. } if iova < 0x1000_0000 => Some(iova),
                _ => None,
            })
            .collect();
        assert!(stream_maps.len() > 64, "more streaming maps than slots");
        let r = run(Subject::Iopt(IoptFormat::X86_64), Workload::W5, &p);
        assert_eq!(r.ops, ops.len() as u64);
    }

    #[test]
    fn page_size_choice() {
        // 4K | 64K | 2M | 32M
        let bitmap = 0x0220_1000 | 0x1_0000;
        assert_eq!(
            pgsize_for(bitmap, 0x1_0000, 0x4001_0000, 0x1_0000),
            0x1_0000
        );
        assert_eq!(pgsize_for(bitmap, 0x1_0000, 0x4001_0000, 0x5000), 0x1000);
        assert_eq!(pgsize_for(bitmap, 0x4000_0000, 0x8000_0000, BLOCK), BLOCK);
        assert_eq!(iopt_block_pgsize(bitmap), BLOCK);
        // armv7s: 4K | 64K | 1M | 16M
        assert_eq!(iopt_block_pgsize(0x0110_1000 | 0x1_0000), MIB);
    }

    #[test]
    fn scaling() {
        let p = Params::new(GIB);
        assert_eq!(
            (p.pages(), p.blocks(), p.lookups(), p.w6_pages()),
            (262_144, 512, 1_000_000, 65_536)
        );
        let p = Params::new(4 * MIB);
        assert_eq!((p.blocks(), p.lookups(), p.w6_pages()), (2, 10_000, 1024));
    }
}
