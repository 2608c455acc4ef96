//! `iopt demo`: a short, seeded workload over the catalogue's demonstration tables
//! (every format type), checked step by step.
//!
//! Each table gets a mix of operations like a DMA mapping layer produces:
//! - streaming buffers of 1 to 16 smallest pages, mapped and unmapped again at a fixed
//!   set of recycled IOVA slots near the bottom of the aperture and, from half-way
//!   through, also near its top and in the upper half of sign-extended formats (so that a
//!   table with a growing top grows in steps);
//! - buffers of 1 to 4 larger pages (blocks, contiguous runs, size-encoded pages:
//!   every page size the format offers up to 1 GiB), each size at its own slots;
//! - deliberate overlaps: a page mapped inside, or a larger page mapped over, a buffer
//!   already there, which must fail with [`Error::AddressInUse`] and change nothing;
//! - live edits of buffers: permissions changed in place ([`PageTable::protect`]), and
//!   large pages cut at a random page inside them ([`PageTable::cut`], with
//!   break-before-make where the format is not hitless), after which every byte must
//!   translate as before;
//! - on the tables with dirty tracking, device writes into a buffer
//!   ([`PageTable::simulate_write`], which plays the IOMMU), sometimes a write-protect
//!   of the buffer after them, then dirty reads of part of it
//!   ([`PageTable::read_and_clear_dirty`], with and without `NO_CLEAR`): each must
//!   report exactly the leaves written (clipped to the range read), a write to a
//!   read-only buffer must fault, and after the clearing read nothing in the buffer is
//!   dirty.
//!
//! Every map and unmap must return exactly what a [`Model`] of the buffers predicts, and
//! lookups ([`PageTable::translate`]) of the bytes touched, plus periodic random
//! samples, must agree with the model. At the end every buffer is unmapped, a sweep over
//! the whole aperture must find nothing left and release every emptied table, and only
//! the top table may remain.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use iopt::mem::ArenaMemory;
use iopt::spec::FormatSpec;
use iopt::{Bbm, DirtyFlags, Error, FlushOps, Format, Gather, Info, PageTable, Prot, SimWrite};

use crate::model::{Buffer, Model};
use crate::rng::XorShift;
use crate::units;

/// Seed used when none is given.
pub const DEFAULT_SEED: u64 = 0x10_5eed;
/// Operations per table when not told otherwise.
pub const DEFAULT_OPS: u32 = 2000;

/// Base and size of each table's simulated physical memory (below 4 GiB for the 32-bit
/// formats; far more than any table here needs).
const ARENA_BASE: u64 = crate::info::ARENA_BASE;
const ARENA_BYTES: usize = 16 << 20;
/// Streaming slots per window, and the most pages of one streaming buffer.
const STREAM_SLOTS: u64 = 64;
const STREAM_MAX_PAGES: usize = 16;
/// Slots per larger page size, and the most pages of one such buffer.
const LARGE_SLOTS: u64 = 8;
const LARGE_MAX_PAGES: usize = 4;
/// Largest page size used (and at most 1/64 of the aperture).
const MAX_PAGE: u64 = 1 << 30;
/// Physical addresses are drawn below this (or below the format's limit).
const PA_LIMIT: u64 = 1 << 40;
/// Percentages of the operation mix: overlap attempts, and streaming (the rest go to
/// larger pages).
const OVERLAP_PERCENT: u64 = 5;
/// Percentage of edits (protect or cut of a buffer there).
const EDIT_PERCENT: u64 = 5;
/// Percentage of dirty steps (device writes and dirty reads), on tables with dirty
/// tracking; the most device writes of one step.
const DIRTY_PERCENT: u64 = 5;
const DIRTY_WRITES: usize = 4;
const STREAM_PERCENT: u64 = 65;
/// Every this many operations, lookups of random buffers and random slots.
const AUDIT_EVERY: u32 = 50;
const AUDIT_LOOKUPS: usize = 8;

/// A check failed: which table, what was done, what came back and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFailed(pub String);

impl fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs the demonstration over the catalogue's demonstration tables (one or more of
/// every format type: [`iopt::spec::CatalogueEntry::demo`]) and returns the summary to
/// print.
///
/// # Errors
/// The first check that failed.
pub fn run(seed: u64, ops: u32) -> Result<Report, CheckFailed> {
    let mut rows = Vec::new();
    for entry in FormatSpec::catalogue().iter().filter(|e| e.demo) {
        let label = entry.label;
        let format = entry
            .spec()
            .build()
            .map_err(|e| CheckFailed(format!("{label}: built-in configuration refused: {e}")))?;
        // The arena must be where the format's table pointers reach (below 4 GiB for
        // 32-bit ones).
        let reach = 1u128 << format.table_pa_bits();
        if u128::from(ARENA_BASE) + ARENA_BYTES as u128 > reach {
            return Err(CheckFailed(format!(
                "{label}: the demo's table memory at {ARENA_BASE:#x} is beyond the format's {}-bit table addresses",
                format.table_pa_bits()
            )));
        }
        rows.push(iopt::with_format!(format, f => run_table(label, f, seed, ops))?);
    }
    Ok(Report { seed, ops, rows })
}

/// Flush operations that record what the engine asks for: the top changes of a growing
/// table (in order), and how many invalidations were requested.
#[derive(Debug, Default)]
struct Recorder {
    tops: Mutex<Vec<(u64, u32)>>,
    walk_flushes: AtomicU64,
    full_flushes: AtomicU64,
}

impl Recorder {
    fn tops(&self) -> Vec<(u64, u32)> {
        self.tops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn flushes(&self) -> u64 {
        // Relaxed: plain counters, read after the table is done.
        self.walk_flushes.load(Ordering::Relaxed) + self.full_flushes.load(Ordering::Relaxed)
    }
}

impl FlushOps for Recorder {
    fn flush_all(&self) {
        self.full_flushes.fetch_add(1, Ordering::Relaxed);
    }
    fn flush_walk(&self, _iova: u64, _size: u64, _granule: u64) {
        self.walk_flushes.fetch_add(1, Ordering::Relaxed);
    }
    fn top_changed(&self, root_pa: u64, levels: u32) {
        self.tops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((root_pa, levels));
    }
}

/// IOVA slots at which buffers of one page size come and go.
#[derive(Debug, Clone)]
struct Pool {
    pgsize: u64,
    max_pages: usize,
    /// First IOVA of each slot; slots are `pgsize * max_pages` bytes apart.
    slots: Vec<u64>,
    /// The slots used in the first half of the run (the rest are far away: near the
    /// top of the aperture, or in its upper half).
    early_slots: usize,
}

impl Pool {
    fn span(&self) -> u64 {
        self.pgsize * self.max_pages as u64
    }
}

/// Where the workload goes in a table's aperture: the streaming pool first, then one
/// pool per larger page size; and every page size used, smallest first.
fn layout(info: &Info) -> Option<(Vec<Pool>, Vec<u64>)> {
    let ap = info.aperture;
    let cap = MAX_PAGE.min(((ap.last - ap.start) >> 6) + 1);
    let sizes: Vec<u64> = units::page_sizes(info.pgsize_bitmap)
        .filter(|&s| s <= cap)
        .collect();
    let &smallest = sizes.first()?;

    let stream_span = smallest * STREAM_MAX_PAGES as u64;
    let window = stream_span * STREAM_SLOTS;
    let mut windows = vec![ap.start];
    let mut cursor = ap.start.checked_add(window)?;
    let mut pools = Vec::new();
    for &pgsize in &sizes[1..] {
        let span = pgsize * LARGE_MAX_PAGES as u64;
        let Some(base) = cursor.checked_next_multiple_of(pgsize) else {
            continue;
        };
        match base.checked_add(span * LARGE_SLOTS) {
            Some(end) if end - 1 <= ap.last => {
                pools.push(Pool {
                    pgsize,
                    max_pages: LARGE_MAX_PAGES,
                    slots: (0..LARGE_SLOTS).map(|i| base + i * span).collect(),
                    early_slots: LARGE_SLOTS as usize,
                });
                cursor = end;
            }
            _ => {}
        }
    }
    // Near the top of the (lower) range, and at the start of the upper half.
    let top = ap.last - (window - 1);
    if top >= cursor {
        windows.push(top);
    }
    windows.extend(ap.upper.map(|(start, _)| start));
    pools.insert(
        0,
        Pool {
            pgsize: smallest,
            max_pages: STREAM_MAX_PAGES,
            slots: windows
                .iter()
                .flat_map(|&w| (0..STREAM_SLOTS).map(move |i| w + i * stream_span))
                .collect(),
            early_slots: STREAM_SLOTS as usize,
        },
    );
    Some((pools, sizes))
}

/// The inclusive ranges of the aperture, split so that each length fits in 64 bits.
fn sweep_ranges(info: &Info) -> Vec<(u64, u64)> {
    let ap = info.aperture;
    let mut out = Vec::new();
    for (start, last) in std::iter::once((ap.start, ap.last)).chain(ap.upper) {
        if last - start == u64::MAX {
            let half = 1u64 << 63;
            out.push((start, half));
            out.push((start + half, half));
        } else {
            out.push((start, last - start + 1));
        }
    }
    out
}

/// Operation and lookup counts of one table.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    maps: u64,
    unmaps: u64,
    overlaps: u64,
    cuts: u64,
    protects: u64,
    /// Device writes simulated, and dirty reads.
    writes: u64,
    dirty_reads: u64,
    lookups: u64,
}

/// Drives one table and its model.
struct Runner<F: Format> {
    label: &'static str,
    pt: PageTable<F, ArenaMemory, Recorder>,
    model: Model,
    rng: XorShift,
    gather: Gather,
    pools: Vec<Pool>,
    sizes: Vec<u64>,
    pa_limit: u64,
    counts: Counts,
}

/// Runs `ops` operations on a fresh table of format `fmt`, then tears everything down.
fn run_table<F: Format>(
    label: &'static str,
    fmt: F,
    seed: u64,
    ops: u32,
) -> Result<Row, CheckFailed> {
    let pt = PageTable::new(
        fmt,
        ArenaMemory::new(ARENA_BASE, ARENA_BYTES),
        Recorder::default(),
    )
    .map_err(|e| CheckFailed(format!("{label}: creating the table failed: {e}")))?;
    let info = pt.info();
    let (pools, sizes) =
        layout(&info).ok_or_else(|| CheckFailed(format!("{label}: no room for the workload")))?;
    let mut runner = Runner {
        label,
        pt,
        model: Model::default(),
        // Each table gets its own stream: the label is mixed into the seed.
        rng: XorShift::new(label.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })),
        gather: Gather::new(),
        pools,
        sizes,
        pa_limit: PA_LIMIT.min(1u64 << info.oa_bits.min(63)),
        counts: Counts::default(),
    };
    for i in 1..=ops {
        runner.step(i > ops / 2)?;
        if i % AUDIT_EVERY == 0 {
            runner.audit()?;
        }
    }
    runner.finish(info.levels)
}

impl<F: Format> Runner<F> {
    fn fail(&self, what: String) -> CheckFailed {
        CheckFailed(format!("{}: {what}", self.label))
    }

    /// One operation: an overlap attempt, or a map or unmap at a random slot (`late`:
    /// the far slots too).
    fn step(&mut self, late: bool) -> Result<(), CheckFailed> {
        if !self.model.is_empty() && self.rng.percent(OVERLAP_PERCENT) {
            return self.overlap();
        }
        if !self.model.is_empty() && self.rng.percent(EDIT_PERCENT) {
            return self.edit();
        }
        if self.pt.dirty_tracking() && !self.model.is_empty() && self.rng.percent(DIRTY_PERCENT) {
            return self.dirty();
        }
        let index = if self.pools.len() == 1 || self.rng.percent(STREAM_PERCENT) {
            0
        } else {
            1 + self.rng.index(self.pools.len() - 1)
        };
        let pool = &self.pools[index];
        let (pgsize, max_pages) = (pool.pgsize, pool.max_pages);
        let usable = if late {
            pool.slots.len()
        } else {
            pool.early_slots
        };
        let slot = self.pools[index].slots[self.rng.index(usable)];
        match self.model.get(slot) {
            Some(buffer) => self.unmap(slot, buffer),
            None => {
                let count = 1 + self.rng.index(max_pages);
                self.map(slot, pgsize, count)
            }
        }
    }

    /// A physical address for `len` bytes aligned to `pgsize`, below the limit.
    fn random_pa(&mut self, pgsize: u64, len: u64) -> u64 {
        let room = self.pa_limit.saturating_sub(len);
        if room == 0 {
            0
        } else {
            self.rng.below(room) & !(pgsize - 1)
        }
    }

    fn random_prot(&mut self) -> Prot {
        match self.rng.below(4) {
            0 => Prot::READ,
            1 => Prot::READ | Prot::WRITE | Prot::CACHE,
            _ => Prot::READ | Prot::WRITE,
        }
    }

    /// Maps a buffer of `count` pages at `iova`, which the model says is free.
    fn map(&mut self, iova: u64, pgsize: u64, count: usize) -> Result<(), CheckFailed> {
        let len = pgsize * count as u64;
        if self.model.overlaps(iova, iova + (len - 1)) {
            return Err(self.fail(format!("workload layout overlaps itself at {iova:#x}")));
        }
        let pa = self.random_pa(pgsize, len);
        let prot = self.random_prot();
        // SAFETY: this runner owns the table: no other thread uses it and no hardware
        // walks it, so it holds every IOVA range exclusively.
        let got = unsafe { self.pt.map_pages(iova, pa, pgsize, count, prot) };
        if got != (len, Ok(())) {
            return Err(self.fail(format!(
                "map_pages({iova:#x}, pa {pa:#x}, {} x {count}) returned {got:?}, expected ({len:#x}, Ok)",
                units::size(pgsize)
            )));
        }
        self.model.insert(
            iova,
            Buffer {
                pgsize,
                count,
                pa,
                prot,
                cut: false,
            },
        );
        self.counts.maps += 1;
        self.check_span(iova, len)
    }

    /// Unmaps the buffer at `iova` with one call, as it was mapped.
    fn unmap(&mut self, iova: u64, buffer: Buffer) -> Result<(), CheckFailed> {
        let len = buffer.len();
        // SAFETY: as in `map`; the gather is synced right away, before any reuse.
        let got = unsafe {
            self.pt
                .unmap_pages(iova, buffer.pgsize, buffer.count, &mut self.gather)
        };
        self.pt.sync(&mut self.gather);
        if got != (len, Ok(())) {
            return Err(self.fail(format!(
                "unmap_pages({iova:#x}, {} x {}) returned {got:?}, expected ({len:#x}, Ok)",
                units::size(buffer.pgsize),
                buffer.count
            )));
        }
        self.model.remove(iova);
        self.counts.unmaps += 1;
        self.check_span(iova, len)
    }

    /// Tries to map over a buffer that is there: the smallest page inside it, or a
    /// larger page whose block contains part of it. Must fail with `AddressInUse` and
    /// change nothing.
    fn overlap(&mut self) -> Result<(), CheckFailed> {
        let n = self.rng.index(self.model.len());
        let Some((start, buffer)) = self.model.nth(n) else {
            return Ok(());
        };
        let smallest = self.sizes[0];
        let iova = start + (self.rng.below(buffer.len()) & !(smallest - 1));
        let larger: Vec<u64> = self
            .sizes
            .iter()
            .copied()
            .filter(|&s| s > buffer.pgsize)
            .collect();
        let (at, pgsize, exact) = if larger.is_empty() || self.rng.percent(50) {
            (iova, smallest, true)
        } else {
            let s = larger[self.rng.index(larger.len())];
            (iova & !(s - 1), s, false)
        };
        let pa = self.random_pa(pgsize, pgsize);
        // SAFETY: as in `map`.
        let got = unsafe {
            self.pt
                .map_pages(at, pa, pgsize, 1, Prot::READ | Prot::WRITE)
        };
        let ok = match got {
            (0, Err(Error::AddressInUse(x))) => {
                if exact {
                    x == at
                } else {
                    (at..=at + (pgsize - 1)).contains(&x)
                }
            }
            _ => false,
        };
        if !ok {
            return Err(self.fail(format!(
                "map_pages({at:#x}, {} x 1) over the buffer at {start:#x} returned {got:?}, expected (0, AddressInUse({}))",
                units::size(pgsize),
                if exact {
                    format!("{at:#x}")
                } else {
                    "an iova in the page".to_owned()
                }
            )));
        }
        self.counts.overlaps += 1;
        // Nothing changed: the buffer is intact, the rest of the block is as before.
        self.check(iova)?;
        let other = at + (self.rng.below(pgsize) & !(smallest - 1));
        self.check(other)
    }

    /// A live edit of a random buffer: its write permission flipped in place, or (a
    /// buffer of larger pages) a cut at a random smallest page inside it. Every byte
    /// must translate as the model says before and after.
    fn edit(&mut self) -> Result<(), CheckFailed> {
        let n = self.rng.index(self.model.len());
        let Some((start, buffer)) = self.model.nth(n) else {
            return Ok(());
        };
        let (len, smallest) = (buffer.len(), self.sizes[0]);
        if buffer.pgsize > smallest && self.rng.percent(50) {
            let at = start + smallest + (self.rng.below(len - smallest) & !(smallest - 1));
            // SAFETY: as in `map`.
            let got = unsafe { self.pt.cut(at, Bbm::Allow) };
            if let Err(e) = got {
                return Err(self.fail(format!("cut({at:#x}) in the buffer at {start:#x}: {e}")));
            }
            if let Some(b) = self.model.get_mut(start) {
                b.cut = true;
            }
            self.counts.cuts += 1;
            self.check(at - smallest)?;
            self.check(at)?;
            return self.check_span(start, len);
        }
        let prot = if buffer.prot.contains(Prot::WRITE) {
            buffer.prot - Prot::WRITE
        } else {
            buffer.prot | Prot::WRITE
        };
        // SAFETY: as in `map`; the gather is synced right away.
        let got = unsafe {
            self.pt
                .protect(start, len, prot, Bbm::Allow, &mut self.gather)
        };
        self.pt.sync(&mut self.gather);
        match got {
            Ok(p) if p.mapped == len && p.holes == 0 => {}
            other => {
                return Err(self.fail(format!(
                    "protect({start:#x}, {len:#x}, {prot:?}) returned {other:?}, expected all {len:#x} bytes mapped"
                )));
            }
        }
        if let Some(b) = self.model.get_mut(start) {
            b.prot = prot;
        }
        self.counts.protects += 1;
        self.check_span(start, len)
    }

    /// Device writes into part of a random buffer, perhaps a write-protect of the whole
    /// buffer after them, then dirty reads of that part: the leaves written must be
    /// reported (clipped to the part), the same again without `NO_CLEAR`, and nothing
    /// dirty left in the buffer afterwards.
    fn dirty(&mut self) -> Result<(), CheckFailed> {
        let n = self.rng.index(self.model.len());
        let Some((start, buffer)) = self.model.nth(n) else {
            return Ok(());
        };
        let (len, smallest) = (buffer.len(), self.sizes[0]);
        let pages = len / smallest;
        let first = self.rng.below(pages);
        let count = 1 + self.rng.below(pages - first);
        let (lo, part) = (start + first * smallest, count * smallest);
        let writable = buffer.prot.contains(Prot::WRITE);
        // The leaves written: (base, size) clipped to the part, in IOVA order.
        let mut want: Vec<(u64, u64)> = Vec::new();
        for _ in 0..1 + self.rng.index(DIRTY_WRITES) {
            let at = lo + (self.rng.below(part) & !(smallest - 1));
            // SAFETY: as in `map`.
            let got = unsafe { self.pt.simulate_write(at) };
            self.counts.writes += 1;
            // SAFETY: as in `map`.
            let leaf = unsafe { self.pt.translate(at) }
                .map(|t| (t.iova_base.max(lo), (t.iova_base + t.size).min(lo + part)));
            let ok = match (writable, got, leaf) {
                (false, SimWrite::Fault, _) => true,
                (true, SimWrite::Marked | SimWrite::Unchanged, Some((b, e))) => {
                    // Unchanged: the leaf was written in this step already (through
                    // the same entry).
                    let seen = want.iter().any(|&(wb, _)| wb == b);
                    if !seen {
                        want.push((b, e - b));
                    }
                    got == SimWrite::Marked || seen
                }
                _ => false,
            };
            if !ok {
                return Err(self.fail(format!(
                    "simulate_write({at:#x}) into the {} buffer at {start:#x} gave {got:?}",
                    if writable { "writable" } else { "read-only" }
                )));
            }
        }
        want.sort_unstable();
        if writable && self.rng.percent(25) {
            // A dirty page made read-only stays dirty.
            let prot = buffer.prot - Prot::WRITE;
            // SAFETY: as in `map`; the gather is synced right away.
            let got = unsafe {
                self.pt
                    .protect(start, len, prot, Bbm::Allow, &mut self.gather)
            };
            self.pt.sync(&mut self.gather);
            if let Err(e) = got {
                return Err(self.fail(format!("protect({start:#x}, {len:#x}, {prot:?}): {e}")));
            }
            if let Some(b) = self.model.get_mut(start) {
                b.prot = prot;
            }
            self.counts.protects += 1;
        }
        if self.rng.percent(50) {
            self.read_dirty(lo, part, DirtyFlags::NO_CLEAR, &want)?;
        }
        self.read_dirty(lo, part, DirtyFlags::empty(), &want)?;
        // Every leaf met was cleaned whole: nothing in the buffer is dirty now.
        self.read_dirty(start, len, DirtyFlags::NO_CLEAR, &[])?;
        self.check_span(start, len)
    }

    /// A dirty read of `[iova, iova + len)`, which must report `want`.
    fn read_dirty(
        &mut self,
        iova: u64,
        len: u64,
        flags: DirtyFlags,
        want: &[(u64, u64)],
    ) -> Result<(), CheckFailed> {
        let mut got = Vec::new();
        // SAFETY: as in `map`; the gather is synced right away.
        let r = unsafe {
            self.pt
                .read_and_clear_dirty(iova, len, flags, &mut self.gather, &mut |b, s| {
                    got.push((b, s))
                })
        };
        self.pt.sync(&mut self.gather);
        self.counts.dirty_reads += 1;
        match r {
            Ok(()) if got == want => Ok(()),
            r => Err(self.fail(format!(
                "read_and_clear_dirty({iova:#x}, {len:#x}, {flags:?}) returned {r:?} with {got:x?}, expected {want:x?}"
            ))),
        }
    }

    /// Lookups of random bytes of random buffers and of random places in the pools.
    fn audit(&mut self) -> Result<(), CheckFailed> {
        for _ in 0..AUDIT_LOOKUPS {
            if self.model.is_empty() {
                break;
            }
            let n = self.rng.index(self.model.len());
            if let Some((start, buffer)) = self.model.nth(n) {
                let iova = start + self.rng.below(buffer.len());
                self.check(iova)?;
            }
        }
        for _ in 0..AUDIT_LOOKUPS {
            let pool = &self.pools[self.rng.index(self.pools.len())];
            let (slot, span) = (pool.slots[self.rng.index(pool.slots.len())], pool.span());
            let iova = slot + self.rng.below(span);
            self.check(iova)?;
        }
        Ok(())
    }

    /// Lookups of the first, the last and a random byte of `[iova, iova + len)`.
    fn check_span(&mut self, iova: u64, len: u64) -> Result<(), CheckFailed> {
        let middle = iova + self.rng.below(len);
        self.check(iova)?;
        self.check(iova + (len - 1))?;
        self.check(middle)
    }

    /// Translates `iova` and compares with the model.
    fn check(&mut self, iova: u64) -> Result<(), CheckFailed> {
        self.counts.lookups += 1;
        let want = self.model.expect(iova);
        // SAFETY: as in `map`: no map or unmap runs at the same time.
        let got = unsafe { self.pt.translate(iova) };
        let same = match (got, want) {
            (None, None) => true,
            (Some(t), Some(w)) => {
                t.pa == w.pa
                    && (w.cut || (t.iova_base == w.iova_base && t.size == w.size))
                    && t.prot.contains(Prot::READ)
                    && t.prot.contains(Prot::WRITE) == w.writable
            }
            _ => false,
        };
        if same {
            return Ok(());
        }
        let got = got.map_or_else(
            || "nothing".to_owned(),
            |t| {
                format!(
                    "pa {:#x} in a {} page at {:#x}, {:?}",
                    t.pa,
                    units::size(t.size),
                    t.iova_base,
                    t.prot
                )
            },
        );
        let want = want.map_or_else(
            || "nothing".to_owned(),
            |w| {
                format!(
                    "pa {:#x} in a {} page at {:#x}, {}",
                    w.pa,
                    units::size(w.size),
                    w.iova_base,
                    if w.writable { "writable" } else { "read-only" }
                )
            },
        );
        Err(self.fail(format!(
            "translate({iova:#x}) gave {got}; the model expects {want}"
        )))
    }

    /// Unmaps everything, checks that only the top table is left, and reports.
    fn finish(mut self, start_levels: u32) -> Result<Row, CheckFailed> {
        let buffers: Vec<(u64, Buffer)> = self.model.iter().collect();
        for &(iova, buffer) in &buffers {
            self.check(iova)?;
            self.check(iova + (buffer.len() - 1))?;
        }
        for (iova, buffer) in buffers {
            self.unmap(iova, buffer)?;
        }
        let peak = self.pt.mem_stats();
        // Tables emptied by unmaps stay linked; a sweep over the whole aperture finds no
        // mapping and detaches them.
        let info = self.pt.info();
        for (start, len) in sweep_ranges(&info) {
            // SAFETY: as in `map`.
            let got = unsafe { self.pt.unmap_range(start, len, &mut self.gather) };
            self.pt.sync(&mut self.gather);
            if got != (0, Ok(())) {
                return Err(self.fail(format!(
                    "unmap_range({start:#x}, {len:#x}) after unmapping every buffer returned {got:?}, expected (0, Ok)"
                )));
            }
        }
        let end = self.pt.mem_stats();
        if end.pages != 1 {
            return Err(self.fail(format!(
                "{} table pages left after unmapping everything, expected 1 (the top table)",
                end.pages
            )));
        }
        let slots: Vec<u64> = self.pools.iter().flat_map(|p| p.slots.clone()).collect();
        for slot in slots {
            self.check(slot)?;
        }

        let info = self.pt.info();
        let tops = self.pt.flush_ops().tops();
        let expected_top = tops.last().copied().unwrap_or((info.root_pa, start_levels));
        if (info.root_pa, info.levels) != expected_top {
            return Err(self.fail(format!(
                "the table reports root {:#x} with {} levels, but the last top change was root {:#x} with {} levels",
                info.root_pa, info.levels, expected_top.0, expected_top.1
            )));
        }
        let c = self.counts;
        Ok(Row {
            label: self.label,
            start_levels,
            end_levels: info.levels,
            ops: c.maps + c.unmaps + c.overlaps + c.cuts + c.protects + c.writes + c.dirty_reads,
            counts: c,
            flushes: self.pt.flush_ops().flushes(),
            peak_pages: peak.peak_pages,
            end_pages: end.pages,
            peak_bytes: peak.peak_bytes,
            growth: tops,
        })
    }
}

/// One table's results.
#[derive(Debug, Clone)]
struct Row {
    label: &'static str,
    start_levels: u32,
    end_levels: u32,
    ops: u64,
    counts: Counts,
    flushes: u64,
    peak_pages: u64,
    end_pages: u64,
    peak_bytes: u64,
    /// Top changes, in order: (root pa, levels).
    growth: Vec<(u64, u32)>,
}

/// The results of the whole demonstration, printed as a table.
#[derive(Debug, Clone)]
pub struct Report {
    seed: u64,
    ops: u32,
    rows: Vec<Row>,
}

const HEADERS: [&str; 15] = [
    "table",
    "levels",
    "ops",
    "maps",
    "unmaps",
    "overlaps",
    "cuts",
    "protects",
    "writes",
    "dirty-reads",
    "lookups",
    "flushes",
    "pages-peak",
    "pages-end",
    "bytes-peak",
];

impl Row {
    fn cells(&self) -> [String; 15] {
        let levels = if self.start_levels == self.end_levels {
            self.end_levels.to_string()
        } else {
            format!("{}->{}", self.start_levels, self.end_levels)
        };
        [
            self.label.to_owned(),
            levels,
            self.ops.to_string(),
            self.counts.maps.to_string(),
            self.counts.unmaps.to_string(),
            self.counts.overlaps.to_string(),
            self.counts.cuts.to_string(),
            self.counts.protects.to_string(),
            self.counts.writes.to_string(),
            self.counts.dirty_reads.to_string(),
            self.counts.lookups.to_string(),
            self.flushes.to_string(),
            self.peak_pages.to_string(),
            self.end_pages.to_string(),
            self.peak_bytes.to_string(),
        ]
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "iopt demo: seed {}, {} operations per table, every step checked against a model",
            self.seed, self.ops
        )?;
        writeln!(f)?;
        let cells: Vec<[String; 15]> = self.rows.iter().map(Row::cells).collect();
        let mut widths = HEADERS.map(str::len);
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let headers = HEADERS.map(str::to_owned);
        for row in std::iter::once(&headers).chain(&cells) {
            let mut line = String::new();
            for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
                if i == 0 {
                    line += &format!("{cell:<w$}");
                } else {
                    line += &format!("  {cell:>w$}");
                }
            }
            writeln!(f, "{line}")?;
        }
        for row in self.rows.iter().filter(|r| !r.growth.is_empty()) {
            writeln!(f)?;
            writeln!(f, "{}: the top grew while in use:", row.label)?;
            for &(root, levels) in &row.growth {
                writeln!(f, "  {levels} levels, root {root:#x}")?;
            }
        }
        let (ops, lookups) = self
            .rows
            .iter()
            .fold((0, 0), |(o, l), r| (o + r.ops, l + r.counts.lookups));
        writeln!(f)?;
        writeln!(
            f,
            "all checks passed: {} tables, {ops} operations, {lookups} lookups, every table back to its top table alone",
            self.rows.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_demo_passes() {
        let report = run(1, 200).expect("every check passes");
        assert_eq!(report.rows.len(), 28);
        // The dirty steps run on the tables with dirty tracking, and only there.
        for r in &report.rows {
            let dirty = r.label.ends_with("/dirty");
            assert_eq!(r.counts.dirty_reads > 0, dirty, "{}", r.label);
        }
        assert!(report.rows.iter().all(|r| r.end_pages == 1));
    }

    #[test]
    fn amdv1_grows_from_one_level() {
        let report = run(DEFAULT_SEED, 300).expect("every check passes");
        let amd = report
            .rows
            .iter()
            .find(|r| r.label == "amdv1/dynamic-top")
            .expect("amdv1 row");
        assert_eq!(amd.start_levels, 1);
        // The slots near the top of the 64-bit space need all six levels.
        assert_eq!(amd.end_levels, 6);
        assert_eq!(amd.growth.last().map(|&(_, l)| l), Some(6));
    }
}
