//! Hardware dirty tracking through the engine (`read_and_clear_dirty` on the raw table,
//! the safe `Table` and a `RangeGuard`), for the VT-d second stage and AMD v1; the
//! refusal on every catalogue configuration without dirty tracking, and a clean second
//! read on every one with it.
//!
//! The test plays the IOMMU: it sets the dirty bit of a leaf entry in the simulated
//! memory with an atomic OR (`ArenaMemory::fetch_or_u64`), then checks what is reported
//! (each dirty leaf once, with its whole extent, in IOVA order), what is cleaned (the D
//! bit of every entry of the leaf, nothing else), what goes to the gather (the cleaned
//! extents, nothing with `NO_CLEAR`), that holes are skipped, and the refusals.

mod common;

use std::ptr::NonNull;
use std::sync::Mutex;

use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::vtdss::{VtdSs, VtdSsConfig};
use iopt::mem::{ArenaMemory, MemStats, TableMemory};
use iopt::{
    DirtyFlags, Error, FlushOps, Format, Gather, NoFlush, Options, PageTable, Prot, Pte,
    SharedTable, Table,
};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;
const G1: u64 = 0x4000_0000;
const ARENA_BASE: u64 = 0x4000_0000;

/// The VT-d second stage's D bit (bit 9) and A bit (bit 8).
const VTD_D: u64 = 1 << 9;
const VTD_A: u64 = 1 << 8;
/// AMD v1's D bit (bit 6).
const AMD_D: u64 = 1 << 6;

fn arena() -> ArenaMemory {
    ArenaMemory::new(ARENA_BASE, 4 << 20)
}

fn vtd(levels: u32) -> VtdSs {
    VtdSs::new(VtdSsConfig {
        levels,
        dirty_tracking: true,
        ..VtdSsConfig::default()
    })
    .unwrap()
}

fn amd(levels: u32) -> AmdV1 {
    AmdV1::new(AmdV1Config {
        levels,
        dirty_tracking: true,
        ..AmdV1Config::default()
    })
    .unwrap()
}

/// The physical address of the leaf entry that translates `iova` (for a run: the entry
/// of the run that covers `iova`), found by reading the table back from memory.
fn entry_pa<F: Format, M: TableMemory, X: FlushOps>(
    pt: &PageTable<F, M, X>,
    arena: &ArenaMemory,
    iova: u64,
) -> u64 {
    let fmt = pt.format();
    let info = pt.info();
    let top = info.levels - 1;
    let (mut table, mut level) = (info.root_pa, top);
    loop {
        let lg2 = if level == top {
            fmt.va_bits(top) - fmt.item_lg2(top)
        } else {
            fmt.table_lg2(level)
        };
        let idx = (iova >> fmt.item_lg2(level)) & ((1u64 << lg2) - 1);
        let pa = table + 8 * idx;
        match fmt.decode(level, arena.read_u64(pa).unwrap()) {
            Pte::Table { pa } => {
                table = pa;
                level -= 1;
            }
            Pte::Leaf { .. } => return pa,
            Pte::Empty => panic!("nothing mapped at {iova:#x}"),
        }
    }
}

/// Plays the IOMMU writing through `iova`: sets `bits` in its leaf entry.
fn hw_mark<F: Format, M: TableMemory, X: FlushOps>(
    pt: &PageTable<F, M, X>,
    arena: &ArenaMemory,
    iova: u64,
    bits: u64,
) -> u64 {
    let pa = entry_pa(pt, arena, iova);
    // SAFETY: `pa` is a leaf entry, and the bits are the format's accessed/dirty flags,
    // which do not change what the entry decodes to.
    unsafe { arena.fetch_or_u64(pa, bits) }.unwrap();
    pa
}

/// Runs `read_and_clear_dirty` and returns the records.
fn read<F: Format, M: TableMemory, X: FlushOps>(
    pt: &PageTable<F, M, X>,
    iova: u64,
    len: u64,
    flags: DirtyFlags,
    gather: &mut Gather,
) -> Result<Vec<(u64, u64)>, Error> {
    let mut recs = Vec::new();
    // SAFETY: one thread; no hardware walks these tables.
    unsafe { pt.read_and_clear_dirty(iova, len, flags, gather, &mut |b, s| recs.push((b, s))) }
        .map(|()| recs)
}

fn map<F: Format, M: TableMemory, X: FlushOps>(
    pt: &PageTable<F, M, X>,
    iova: u64,
    pa: u64,
    pgsize: u64,
    count: usize,
) {
    // SAFETY: one thread; no hardware walks these tables.
    let r = unsafe { pt.map_pages(iova, pa, pgsize, count, RW) };
    assert_eq!(r, (pgsize * count as u64, Ok(())));
}

#[test]
fn vtd_reports_whole_leaves_in_order_and_cleans_them() {
    let mem = arena();
    let pt = PageTable::new(vtd(4), &mem, NoFlush).unwrap();
    map(&pt, 0, 0x1000_0000, K4, 16);
    map(&pt, M2, 0x2000_0000, M2, 1);
    map(&pt, G1, 0x8000_0000, G1, 1);
    let before = mem.image();
    // Writes through page 5, page 3 (with accessed), the 2M page (inside it) and the 1G
    // page (near its end).
    let p5 = hw_mark(&pt, &mem, 5 * K4 + 0x10, VTD_D);
    let p3 = hw_mark(&pt, &mem, 3 * K4, VTD_A | VTD_D);
    let p2m = hw_mark(&pt, &mem, M2 + 0x12_3000, VTD_D);
    let p1g = hw_mark(&pt, &mem, 2 * G1 - 1, VTD_D);
    let mut g = Gather::new();
    let recs = read(&pt, 0, 2 * G1, DirtyFlags::empty(), &mut g).unwrap();
    assert_eq!(recs, [(3 * K4, K4), (5 * K4, K4), (M2, M2), (G1, G1)]);
    // The gather covers the cleaned leaves, at the smallest size cleaned.
    assert_eq!(g.range(), Some((3 * K4, 2 * G1 - 1)));
    assert_eq!(g.granule(), K4);
    assert_eq!(g.pending_tables(), 0);
    // D is gone, A stays, the rest of memory is as before the marks.
    assert_eq!(mem.read_u64(p3).unwrap() & (VTD_A | VTD_D), VTD_A);
    for pa in [p5, p2m, p1g] {
        assert_eq!(mem.read_u64(pa).unwrap() & VTD_D, 0);
    }
    let off = (p3 - ARENA_BASE) as usize;
    let mut now = mem.image();
    now[off..off + 8].copy_from_slice(&before[off..off + 8]);
    assert!(ArenaMemory::same_image(&before, &now));
    pt.sync(&mut g);
    // Clean now: nothing more to report, nothing gathered.
    let mut g2 = Gather::new();
    assert_eq!(
        read(&pt, 0, 2 * G1, DirtyFlags::empty(), &mut g2),
        Ok(vec![])
    );
    assert!(g2.is_empty());
    // The mappings are untouched.
    // SAFETY: one thread.
    let t = unsafe { pt.translate(5 * K4 + 0x10) }.unwrap();
    assert_eq!((t.pa, t.prot), (0x1000_5010, RW));
}

#[test]
fn no_clear_reports_and_leaves_the_dirt() {
    let mem = arena();
    let pt = PageTable::new(vtd(4), &mem, NoFlush).unwrap();
    map(&pt, 0x10_0000, 0x1000_0000, K4, 4);
    let pa = hw_mark(&pt, &mem, 0x10_2000, VTD_D);
    let image = mem.image();
    let mut g = Gather::new();
    for _ in 0..2 {
        assert_eq!(
            read(&pt, 0x10_0000, 4 * K4, DirtyFlags::NO_CLEAR, &mut g),
            Ok(vec![(0x10_2000, K4)])
        );
        assert!(g.is_empty());
        assert!(ArenaMemory::same_image(&image, &mem.image()));
    }
    assert_ne!(mem.read_u64(pa).unwrap() & VTD_D, 0);
    assert_eq!(
        read(&pt, 0x10_0000, 4 * K4, DirtyFlags::empty(), &mut g),
        Ok(vec![(0x10_2000, K4)])
    );
    assert_eq!(g.range(), Some((0x10_2000, 0x10_2fff)));
    assert_eq!(mem.read_u64(pa).unwrap() & VTD_D, 0);
}

#[test]
fn holes_are_skipped_and_ranges_are_respected() {
    let mem = arena();
    let pt = PageTable::new(vtd(4), &mem, NoFlush).unwrap();
    // Pages at 0, 8K and 1G + 4K; everything else is a hole, including whole tables.
    map(&pt, 0, 0x1000_0000, K4, 1);
    map(&pt, 2 * K4, 0x1000_2000, K4, 1);
    map(&pt, G1 + K4, 0x1000_4000, K4, 1);
    for iova in [0, 2 * K4, G1 + K4] {
        hw_mark(&pt, &mem, iova, VTD_D);
    }
    let mut g = Gather::new();
    let nc = DirtyFlags::NO_CLEAR;
    // Only what lies in the range; empty ranges report nothing and are not errors.
    assert_eq!(read(&pt, K4, K4, nc, &mut g), Ok(vec![]));
    assert_eq!(read(&pt, K4, 2 * K4, nc, &mut g), Ok(vec![(2 * K4, K4)]));
    assert_eq!(read(&pt, 4 * K4, G1 - 4 * K4, nc, &mut g), Ok(vec![]));
    assert_eq!(read(&pt, 4 * K4, G1, nc, &mut g), Ok(vec![(G1 + K4, K4)]));
    assert_eq!(read(&pt, 1 << 40, 1 << 40, nc, &mut g), Ok(vec![]));
    // The last page of the aperture (no tables there at all).
    assert_eq!(read(&pt, (1 << 48) - K4, K4, nc, &mut g), Ok(vec![]));
    assert_eq!(
        read(&pt, 0, 1 << 48, nc, &mut g),
        Ok(vec![(0, K4), (2 * K4, K4), (G1 + K4, K4)])
    );
    assert!(g.is_empty());
}

#[test]
fn a_leaf_crossing_the_range_is_reported_clipped_and_cleaned_whole() {
    let mem = arena();
    let pt = PageTable::new(vtd(3), &mem, NoFlush).unwrap();
    map(&pt, M2, 0x4000_0000, M2, 1);
    let pa = hw_mark(&pt, &mem, M2, VTD_D);
    let mut g = Gather::new();
    // One page in the middle of the 2M page: reported for that page only, but the
    // whole leaf (one entry) is cleaned and gathered.
    assert_eq!(
        read(&pt, M2 + 0x8_0000, K4, DirtyFlags::empty(), &mut g),
        Ok(vec![(M2 + 0x8_0000, K4)])
    );
    assert_eq!(g.range(), Some((M2, 2 * M2 - 1)));
    assert_eq!(g.granule(), M2);
    assert_eq!(mem.read_u64(pa).unwrap() & VTD_D, 0);
}

#[test]
fn five_levels() {
    let mem = arena();
    let pt = PageTable::new(vtd(5), &mem, NoFlush).unwrap();
    assert_eq!(pt.info().aperture.last, (1 << 57) - 1);
    let high = (1u64 << 57) - 2 * G1;
    map(&pt, high, 0xc000_0000, G1, 1);
    map(&pt, high + G1, 0x1000_0000, K4, 2);
    map(&pt, 1 << 48, 0x2000_0000, M2, 1);
    hw_mark(&pt, &mem, high + G1 + K4, VTD_D);
    hw_mark(&pt, &mem, high + 0x1234, VTD_D);
    hw_mark(&pt, &mem, (1 << 48) + 0x1000, VTD_D);
    let mut g = Gather::new();
    assert_eq!(
        read(&pt, 0, 1 << 57, DirtyFlags::empty(), &mut g),
        Ok(vec![(1 << 48, M2), (high, G1), (high + G1 + K4, K4)])
    );
    assert_eq!(g.range(), Some((1 << 48, high + G1 + 2 * K4 - 1)));
    assert_eq!(
        read(&pt, 0, 1 << 57, DirtyFlags::empty(), &mut g),
        Ok(vec![])
    );
    pt.sync(&mut g);
}

#[test]
fn amd_runs_are_one_leaf() {
    let mem = arena();
    let pt = PageTable::new(amd(3), &mem, NoFlush).unwrap();
    // A 32K size-encoded page (eight equal entries) and a 4K page after it.
    map(&pt, 0x40_0000, 0x1234_0000, 0x8000, 1);
    map(&pt, 0x40_8000, 0x5000_0000, K4, 1);
    let first = entry_pa(&pt, &mem, 0x40_0000);
    let value = mem.read_u64(first).unwrap();
    // The hardware marks the fourth entry of the run only.
    let e3 = hw_mark(&pt, &mem, 0x40_3000, AMD_D);
    assert_eq!(e3, first + 3 * 8);
    let mut g = Gather::new();
    // A range that starts inside the run: the run is reported once, clipped to the
    // range (the mark is on another entry of the run: the run is one leaf).
    assert_eq!(
        read(&pt, 0x40_6000, 0x3000, DirtyFlags::NO_CLEAR, &mut g),
        Ok(vec![(0x40_6000, 0x2000)])
    );
    assert!(g.is_empty());
    assert_eq!(
        read(&pt, 0x40_0000, 0x9000, DirtyFlags::empty(), &mut g),
        Ok(vec![(0x40_0000, 0x8000)])
    );
    assert_eq!(g.range(), Some((0x40_0000, 0x40_7fff)));
    assert_eq!(g.granule(), 0x8000);
    // Every entry of the run is back to the value the map wrote.
    for i in 0..8 {
        assert_eq!(mem.read_u64(first + 8 * i).unwrap(), value, "entry {i}");
    }
    // Marks on several entries still make one record.
    hw_mark(&pt, &mem, 0x40_0000, AMD_D);
    hw_mark(&pt, &mem, 0x40_7000, AMD_D);
    hw_mark(&pt, &mem, 0x40_8000, AMD_D);
    assert_eq!(
        read(&pt, 0x40_0000, 0x9000, DirtyFlags::empty(), &mut g),
        Ok(vec![(0x40_0000, 0x8000), (0x40_8000, K4)])
    );
    for i in 0..8 {
        assert_eq!(mem.read_u64(first + 8 * i).unwrap(), value, "entry {i}");
    }
    pt.sync(&mut g);
}

#[test]
fn amd_range_above_the_current_top() {
    let mem = arena();
    let pt = PageTable::new(amd(1), &mem, NoFlush).unwrap();
    assert_eq!(pt.info().levels, 1);
    map(&pt, K4, 0x1000, K4, 1);
    hw_mark(&pt, &mem, K4, AMD_D);
    let mut g = Gather::new();
    // The table has one level (2 MiB of IOVA); the range reaches far above.
    assert_eq!(
        read(&pt, 0, 1 << 40, DirtyFlags::empty(), &mut g),
        Ok(vec![(K4, K4)])
    );
    assert_eq!(
        read(&pt, 1 << 40, 1 << 40, DirtyFlags::empty(), &mut g),
        Ok(vec![])
    );
    // After growing, the same entries are found through the new top.
    map(&pt, 1 << 40, 0x2000, K4, 1);
    assert_eq!(pt.info().levels, 4);
    hw_mark(&pt, &mem, K4, AMD_D);
    hw_mark(&pt, &mem, 1 << 40, AMD_D);
    assert_eq!(
        read(&pt, 0, 1 << 41, DirtyFlags::empty(), &mut g),
        Ok(vec![(K4, K4), (1 << 40, K4)])
    );
    pt.sync(&mut g);
}

/// Every catalogue configuration without dirty tracking refuses, and changes nothing.
fn refuses_without_dirty_tracking<F: Format>(label: &str, fmt: F) {
    let mem = arena();
    let pt = PageTable::new(fmt, &mem, NoFlush).unwrap();
    let info = pt.info();
    let s0 = 1u64 << info.pgsize_bitmap.trailing_zeros();
    let iova = info.aperture.start;
    map(&pt, iova, 0, s0, 1);
    let image = mem.image();
    let mut g = Gather::new();
    for flags in [DirtyFlags::empty(), DirtyFlags::NO_CLEAR] {
        let mut called = false;
        // SAFETY: one thread.
        let r =
            unsafe { pt.read_and_clear_dirty(iova, s0, flags, &mut g, &mut |_, _| called = true) };
        assert_eq!(r, Err(Error::NoDirtyTracking), "{label} {}", F::NAME);
        assert!(!called);
    }
    for enable in [true, false] {
        // SAFETY: one thread.
        let r = unsafe { pt.set_dirty_tracking(enable, &mut g) };
        assert_eq!(r, Err(Error::NoDirtyTracking), "{label} {}", F::NAME);
        assert!(!pt.dirty_tracking());
    }
    assert!(g.is_empty());
    assert!(ArenaMemory::same_image(&image, &mem.image()));
}

common::config_tests!(
    formats_without_dirty_tracking_refuse,
    common::clean_configs(),
    refuses_without_dirty_tracking
);

#[test]
fn no_dirty_tracking_error_text() {
    assert_eq!(
        Error::NoDirtyTracking.to_string(),
        "the table's format has no hardware dirty tracking (or it is not enabled in its configuration)"
    );
}

/// Every catalogue configuration with dirty tracking reads a mapped range; once read and
/// cleared, with no hardware writing, a second read reports nothing and changes nothing.
fn reads_when_tracking<F: Format>(label: &str, fmt: F) {
    assert!(fmt.tracks_dirty(), "{label}");
    let mem = arena();
    let pt = PageTable::new(fmt, &mem, NoFlush).unwrap();
    let info = pt.info();
    let s0 = 1u64 << info.pgsize_bitmap.trailing_zeros();
    let iova = info.aperture.start;
    map(&pt, iova, 0, s0, 4);
    let mut g = Gather::new();
    let first = read(&pt, iova, 4 * s0, DirtyFlags::empty(), &mut g).expect("first read");
    for &(b, z) in &first {
        assert!(
            iova <= b && b - iova < 4 * s0 && z >= s0,
            "{label}: {b:#x}+{z:#x}"
        );
    }
    pt.sync(&mut g);
    let image = mem.image();
    for flags in [DirtyFlags::empty(), DirtyFlags::NO_CLEAR] {
        let again = read(&pt, iova, 4 * s0, flags, &mut g).expect("second read");
        assert_eq!(again, [], "{label}: dirty again with no writes");
    }
    assert!(g.is_empty(), "{label}");
    assert!(ArenaMemory::same_image(&image, &mem.image()), "{label}");
}

common::config_tests!(
    dirty_configs_read,
    common::dirty_configs(),
    reads_when_tracking
);

#[test]
fn bad_ranges_are_refused() {
    let mem = arena();
    let pt = PageTable::new(vtd(4), &mem, NoFlush).unwrap();
    map(&pt, 0, 0x1000, K4, 1);
    hw_mark(&pt, &mem, 0, VTD_D);
    let image = mem.image();
    let mut g = Gather::new();
    let e = DirtyFlags::empty();
    assert_eq!(read(&pt, 0, 0, e, &mut g), Err(Error::ZeroLength));
    assert_eq!(
        read(&pt, 0, 0x800, e, &mut g),
        Err(Error::BadPageSize(0x800))
    );
    assert_eq!(
        read(&pt, 0x800, K4, e, &mut g),
        Err(Error::UnalignedIova {
            iova: 0x800,
            pgsize: K4
        })
    );
    assert_eq!(
        read(&pt, 1 << 48, K4, e, &mut g),
        Err(Error::OutOfAperture {
            iova: 1 << 48,
            last: (1 << 48) + K4 - 1
        })
    );
    assert_eq!(
        read(&pt, (1 << 48) - K4, 2 * K4, e, &mut g),
        Err(Error::OutOfAperture {
            iova: (1 << 48) - K4,
            last: (1 << 48) + K4 - 1
        })
    );
    assert_eq!(
        read(&pt, u64::MAX - 0xfff, 2 * K4, e, &mut g),
        Err(Error::Overflow)
    );
    assert!(g.is_empty());
    assert!(ArenaMemory::same_image(&image, &mem.image()));
}

/// Flush operations that record the walk flushes.
#[derive(Debug, Default)]
struct Flushes(Mutex<Vec<(u64, u64, u64)>>);

impl FlushOps for Flushes {
    fn flush_all(&self) {}
    fn flush_walk(&self, iova: u64, size: u64, granule: u64) {
        self.0.lock().unwrap().push((iova, size, granule));
    }
    fn top_changed(&self, _root_pa: u64, _levels: u32) {}
}

#[test]
fn safe_table_and_sync_flush() {
    let mem = arena();
    let flushes = Flushes::default();
    let mut t = Table::new(vtd(4), &mem, &flushes).unwrap();
    t.map(0, 0x4000_0000, 2 * M2 + 2 * K4, RW).unwrap();
    hw_mark(t.raw(), &mem, M2 + 0x1000, VTD_D);
    hw_mark(t.raw(), &mem, 2 * M2 + K4, VTD_D);
    let mut g = Gather::new();
    let mut recs = Vec::new();
    t.read_and_clear_dirty(0, 4 * M2, DirtyFlags::empty(), &mut g, |b, s| {
        recs.push((b, s))
    })
    .unwrap();
    assert_eq!(recs, [(M2, M2), (2 * M2 + K4, K4)]);
    assert!(flushes.0.lock().unwrap().is_empty());
    t.sync(&mut g);
    assert_eq!(
        *flushes.0.lock().unwrap(),
        [(M2, M2 + 2 * K4, K4)],
        "one flush over the cleaned extents"
    );
    assert!(g.is_empty());
    // A table without dirty tracking refuses through the safe API too.
    let mut plain = Table::new(VtdSs::new(VtdSsConfig::default()).unwrap(), &mem, NoFlush).unwrap();
    assert_eq!(
        plain.read_and_clear_dirty(0, K4, DirtyFlags::empty(), &mut g, |_, _| ()),
        Err(Error::NoDirtyTracking)
    );
}

#[test]
fn range_guard_stays_inside_its_range() {
    let mem = arena();
    let t = SharedTable::new(vtd(4), &mem, NoFlush).unwrap();
    {
        let mut g = t.lock(0, 4 * M2).unwrap();
        g.map(0, 0x4000_0000, M2, RW).unwrap();
        g.map(M2, 0x5000_0000, 4 * K4, RW).unwrap();
        g.map(3 * M2, 0x6000_0000, K4, RW).unwrap();
    }
    hw_mark(t.raw(), &mem, 0x1_0000, VTD_D);
    hw_mark(t.raw(), &mem, M2 + K4, VTD_D);
    hw_mark(t.raw(), &mem, 3 * M2, VTD_D);
    let mut gather = Gather::new();
    let mut g = t.lock(M2, 2 * M2).unwrap();
    let mut recs = Vec::new();
    // Outside the guard: refused, nothing read.
    assert_eq!(
        g.read_and_clear_dirty(0, 2 * M2, DirtyFlags::empty(), &mut gather, |b, s| recs
            .push((b, s))),
        Err(Error::OutsideGuard {
            iova: 0,
            last: 2 * M2 - 1
        })
    );
    assert_eq!(
        g.read_and_clear_dirty(M2, 3 * M2, DirtyFlags::empty(), &mut gather, |b, s| recs
            .push((b, s))),
        Err(Error::OutsideGuard {
            iova: M2,
            last: 4 * M2 - 1
        })
    );
    assert!(recs.is_empty() && gather.is_empty());
    g.read_and_clear_dirty(M2, 2 * M2, DirtyFlags::empty(), &mut gather, |b, s| {
        recs.push((b, s))
    })
    .unwrap();
    assert_eq!(recs, [(M2 + K4, K4)]);
    drop(g);
    t.sync(&mut gather);
    // A guard smaller than a 2M page reports the part in its range, and cleans the
    // page whole (one entry).
    let mut g = t.lock(0x10_0000, K4).unwrap();
    recs.clear();
    g.read_and_clear_dirty(0x10_0000, K4, DirtyFlags::empty(), &mut gather, |b, s| {
        recs.push((b, s))
    })
    .unwrap();
    assert_eq!(recs, [(0x10_0000, K4)]);
    assert_eq!(gather.range(), Some((0, M2 - 1)));
    drop(g);
    t.sync(&mut gather);
    // Only the page outside both guards is still dirty.
    let mut g = t.lock(0, 4 * M2).unwrap();
    recs.clear();
    g.read_and_clear_dirty(0, 4 * M2, DirtyFlags::NO_CLEAR, &mut gather, |b, s| {
        recs.push((b, s))
    })
    .unwrap();
    assert_eq!(recs, [(3 * M2, K4)]);
}

/// A table memory that records the cleans an incoherent walker needs.
#[derive(Debug)]
struct Cleans<'a> {
    inner: &'a ArenaMemory,
    log: Mutex<Vec<(u64, usize)>>,
}

// SAFETY: forwards everything to the arena, which upholds the contract.
unsafe impl TableMemory for Cleans<'_> {
    fn alloc(&self, size_lg2: u32) -> Option<NonNull<u8>> {
        self.inner.alloc(size_lg2)
    }
    unsafe fn free(&self, ptr: NonNull<u8>, size_lg2: u32) {
        // SAFETY: the caller's guarantee is passed on.
        unsafe { self.inner.free(ptr, size_lg2) }
    }
    fn virt_to_phys(&self, ptr: NonNull<u8>) -> u64 {
        self.inner.virt_to_phys(ptr)
    }
    fn phys_to_virt(&self, pa: u64) -> NonNull<u8> {
        self.inner.phys_to_virt(pa)
    }
    fn stats(&self) -> MemStats {
        self.inner.stats()
    }
    fn clean(&self, ptr: NonNull<u8>, len: usize) {
        self.log
            .lock()
            .unwrap()
            .push((self.inner.virt_to_phys(ptr), len));
    }
}

#[test]
fn incoherent_walker_gets_the_cleaned_entries_cleaned() {
    let mem = arena();
    let cleans = Cleans {
        inner: &mem,
        log: Mutex::new(Vec::new()),
    };
    let opts = Options {
        coherent_walk: false,
        ..Options::default()
    };
    let pt = PageTable::with_options(vtd(4), &cleans, NoFlush, opts).unwrap();
    map(&pt, 0, 0x1000_0000, K4, 8);
    map(&pt, M2, 0x4000_0000, M2, 1);
    let a = hw_mark(&pt, &mem, 2 * K4, VTD_D);
    let b = hw_mark(&pt, &mem, 6 * K4, VTD_D);
    let c = hw_mark(&pt, &mem, M2, VTD_D);
    cleans.log.lock().unwrap().clear();
    let mut g = Gather::new();
    // Reading only writes nothing, so cleans nothing.
    read(&pt, 0, G1, DirtyFlags::NO_CLEAR, &mut g).unwrap();
    assert!(cleans.log.lock().unwrap().is_empty());
    read(&pt, 0, G1, DirtyFlags::empty(), &mut g).unwrap();
    // One clean per table, over the entries written: entries 2..=6 of the leaf table,
    // entry 1 of the level-1 table.
    let log = cleans.log.lock().unwrap().clone();
    assert_eq!(log, [(a, (b - a + 8) as usize), (c, 8)]);
}

/// The hardware sets bits while software cleans: the compare-and-swap never overwrites
/// them (a plain read-modify-write store could drop the accessed bit set in between).
#[test]
fn concurrent_hardware_marks_are_not_lost() {
    let mem = arena();
    let pt = PageTable::new(vtd(4), &mem, NoFlush).unwrap();
    map(&pt, 0, 0x1000_0000, K4, 64);
    let pas: Vec<u64> = (0..64).map(|i| entry_pa(&pt, &mem, i * K4)).collect();
    for round in 0..50 {
        for &pa in &pas {
            // SAFETY: leaf entries; D and A are status bits.
            unsafe { mem.fetch_or_u64(pa, VTD_D) };
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                for &pa in pas.iter().rev() {
                    // SAFETY: as above.
                    unsafe { mem.fetch_or_u64(pa, VTD_A) };
                }
            });
            let mut g = Gather::new();
            let recs = read(&pt, 0, 64 * K4, DirtyFlags::empty(), &mut g).unwrap();
            assert_eq!(recs.len(), 64, "round {round}");
        });
        for &pa in &pas {
            let e = mem.read_u64(pa).unwrap();
            assert_eq!(e & (VTD_A | VTD_D), VTD_A, "round {round}: {e:#x}");
        }
        // Fresh entries (without A) for the next round.
        let mut g = Gather::new();
        // SAFETY: one thread now.
        unsafe {
            assert_eq!(pt.unmap_pages(0, K4, 64, &mut g), (64 * K4, Ok(())));
            pt.sync(&mut g);
        }
        map(&pt, 0, 0x1000_0000, K4, 64);
    }
}

// ---------------------------------------------------------------------------------------
// Every format with dirty tracking: hardware writes as the hardware makes them
// ---------------------------------------------------------------------------------------

/// ARM's dirty bit modifier, stage-1 AP[2] (read-only) and stage-2 S2AP[1] (write).
const ARM_DBM: u64 = 1 << 51;
const ARM_AP2: u64 = 1 << 7;
const ARM_S2AP_W: u64 = 1 << 7;

/// How the hardware records a write through a leaf, per format, from the specs (not
/// from the library's encoding functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hw {
    /// Sets a D bit (x86-64 bit 6, AMD v1 bit 6, VT-d bit 9, RISC-V bit 7).
    SetBit(u64),
    /// ARM stage 1: clears AP[2] of a DBM leaf.
    ArmS1,
    /// ARM stage 2: sets S2AP[1] of a DBM leaf.
    ArmS2,
}

impl Hw {
    fn of<F: Format, M: TableMemory, X: FlushOps>(pt: &PageTable<F, M, X>) -> Hw {
        match F::NAME {
            "vtd-ss" => Hw::SetBit(VTD_D),
            "amdv1" => Hw::SetBit(AMD_D),
            "x86-64" => Hw::SetBit(1 << 6),
            "riscv" => Hw::SetBit(1 << 7),
            n if n.starts_with("arm") => {
                if pt.info().hw.get("VTTBR").is_some() {
                    Hw::ArmS2
                } else {
                    Hw::ArmS1
                }
            }
            n => panic!("no hardware model for {n}"),
        }
    }

    fn is_arm(self) -> bool {
        self != Hw::SetBit(self.bit())
    }

    fn bit(self) -> u64 {
        match self {
            Hw::SetBit(b) => b,
            _ => 0,
        }
    }

    /// The entry after a write through it.
    fn written(self, e: u64) -> u64 {
        match self {
            Hw::SetBit(b) => e | b,
            Hw::ArmS1 => {
                assert_ne!(e & ARM_DBM, 0, "a write through a leaf without DBM: {e:#x}");
                e & !ARM_AP2
            }
            Hw::ArmS2 => {
                assert_ne!(e & ARM_DBM, 0, "a write through a leaf without DBM: {e:#x}");
                e | ARM_S2AP_W
            }
        }
    }

    fn is_dirty(self, e: u64) -> bool {
        match self {
            Hw::SetBit(b) => e & b != 0,
            // Writable to the hardware (after a write, or made while tracking was off).
            Hw::ArmS1 => e & ARM_AP2 == 0,
            Hw::ArmS2 => e & ARM_S2AP_W != 0,
        }
    }

    /// Plays the IOMMU writing through the leaf entry at `pa`: a compare-and-swap on the
    /// entry's bytes, retried. True if this write marked the entry (clean to dirty).
    fn write(self, mem: &ArenaMemory, pa: u64) -> bool {
        loop {
            let e = mem.read_u64(pa).unwrap();
            let n = self.written(e);
            if n == e {
                return false;
            }
            // SAFETY: `pa` is a leaf entry; only its dirty record changes.
            match unsafe { mem.compare_exchange_u64(pa, e, n) }.unwrap() {
                Ok(_) => return true,
                Err(_) => continue,
            }
        }
    }
}

/// The page sizes of a table, smallest first.
fn sizes(info: &iopt::Info) -> Vec<u64> {
    (0..64)
        .filter(|b| info.pgsize_bitmap >> b & 1 != 0)
        .map(|b| 1u64 << b)
        .collect()
}

/// The distinct entries that hold the leaf at `iova ..+ size` (every replica of a run;
/// the one entry of a large page), in order.
fn leaf_entries<F: Format, M: TableMemory, X: FlushOps>(
    pt: &PageTable<F, M, X>,
    mem: &ArenaMemory,
    iova: u64,
    size: u64,
    step: u64,
) -> Vec<u64> {
    let mut v: Vec<u64> = (0..size / step)
        .map(|k| entry_pa(pt, mem, iova + k * step))
        .collect();
    v.dedup();
    v
}

/// Pages and a leaf of the second page size (a run or a large page), written through as
/// the hardware does (on one replica of a run; on a large page the range only partly
/// covers), read with and without `NO_CLEAR`: the extents are clipped to the range,
/// the entries are exactly as made again afterwards, the gather holds exactly the
/// cleaned leaves.
fn hardware_writes<F: Format>(label: &str, fmt: F) {
    let mem = arena();
    let pt = PageTable::new(fmt, &mem, NoFlush).unwrap();
    let hw = Hw::of(&pt);
    let info = pt.info();
    let sz = sizes(&info);
    let (s0, s1) = (sz[0], sz[1]);
    let base = info.aperture.start;
    map(&pt, base, 0x100_0000, s0, 4);
    let big = base + 2 * s1;
    map(&pt, big, 4 * s1, s1, 1);
    // SAFETY: one thread.
    let t = unsafe { pt.translate(big + s1 - 1) }.unwrap();
    assert_eq!((t.iova_base, t.size), (big, s1), "{label}: one leaf");
    assert!(
        t.prot.contains(Prot::WRITE),
        "{label}: writable-clean reads as writable"
    );
    let pages: Vec<u64> = (0..4).map(|i| entry_pa(&pt, &mem, base + i * s0)).collect();
    let big_entries = leaf_entries(&pt, &mem, big, s1, s0);
    let all: Vec<u64> = pages.iter().chain(&big_entries).copied().collect();
    let made: Vec<u64> = all.iter().map(|&pa| mem.read_u64(pa).unwrap()).collect();
    for (&pa, &e) in all.iter().zip(&made) {
        assert!(
            !hw.is_dirty(e),
            "{label}: fresh leaf at {pa:#x} dirty: {e:#x}"
        );
    }
    // The format's own hooks agree with the hardware model.
    let f = pt.format();
    assert_eq!(
        f.leaf_mark_dirty(0, made[0]),
        hw.written(made[0]),
        "{label}"
    );
    assert!(f.leaf_dirty(0, hw.written(made[0])), "{label}");
    assert_eq!(f.leaf_clean(0, hw.written(made[0])), made[0], "{label}");
    let lvl = t.level;
    let b0 = made[4];
    assert_eq!(f.leaf_mark_dirty(lvl, b0), hw.written(b0), "{label}");
    assert_eq!(f.leaf_clean(lvl, hw.written(b0)), b0, "{label}");
    let image0 = mem.image();
    let mut g = Gather::new();
    assert_eq!(
        read(&pt, base, 3 * s1, DirtyFlags::NO_CLEAR, &mut g),
        Ok(vec![]),
        "{label}"
    );
    // The device writes page 1 and the last part of the big leaf (its last replica).
    assert!(hw.write(&mem, pages[1]));
    assert!(hw.write(&mem, *big_entries.last().unwrap()));
    assert!(!hw.write(&mem, pages[1]), "{label}: already dirty");
    let marked = mem.image();
    // A range that covers the pages and the first half of the big leaf.
    let len = 2 * s1 + s1 / 2;
    let want = vec![(base + s0, s0), (big, s1 / 2)];
    assert_eq!(
        read(&pt, base, len, DirtyFlags::NO_CLEAR, &mut g),
        Ok(want.clone()),
        "{label}"
    );
    assert!(g.is_empty(), "{label}");
    assert!(ArenaMemory::same_image(&marked, &mem.image()), "{label}");
    assert_eq!(
        read(&pt, base, len, DirtyFlags::empty(), &mut g),
        Ok(want),
        "{label}"
    );
    // Cleaned: page 1 and the whole big leaf (one entry for the hardware).
    assert_eq!(g.range(), Some((base + s0, big + s1 - 1)), "{label}");
    assert_eq!(g.granule(), s0, "{label}");
    for (&pa, &e) in all.iter().zip(&made) {
        assert_eq!(
            mem.read_u64(pa).unwrap(),
            e,
            "{label}: entry {pa:#x} after cleaning"
        );
    }
    assert!(ArenaMemory::same_image(&image0, &mem.image()), "{label}");
    pt.sync(&mut g);
    // One replica in the middle of a run (or the large page itself) marks it whole.
    let mid = big_entries[big_entries.len() / 2];
    assert!(hw.write(&mem, mid));
    assert_eq!(
        read(&pt, base, 3 * s1, DirtyFlags::empty(), &mut g),
        Ok(vec![(big, s1)]),
        "{label}"
    );
    assert_eq!(g.range(), Some((big, big + s1 - 1)), "{label}");
    assert!(ArenaMemory::same_image(&image0, &mem.image()), "{label}");
    // Clean now.
    let mut g2 = Gather::new();
    assert_eq!(
        read(&pt, base, 3 * s1, DirtyFlags::empty(), &mut g2),
        Ok(vec![])
    );
    assert!(g2.is_empty(), "{label}");
    pt.sync(&mut g);
}

common::config_tests!(
    hardware_writes_every_format,
    common::dirty_configs(),
    hardware_writes
);

/// The enable of hardware dirty updates in the words, per format (`None`: x86-64, which
/// has none).
fn tracking_word<F: Format>(hw: Hw, info: &iopt::Info) -> Option<u64> {
    let w = &info.hw;
    match F::NAME {
        "amdv1" => w.get("DTE.HAD"),
        "vtd-ss" => w.get("SSADE"),
        "riscv" => w.get("DC.tc.SADE"),
        "x86-64" => None,
        "arm32-lpae" => w.get("HTTU"),
        _ if hw == Hw::ArmS1 => w.get("TCR").map(|t| t >> 39 & 3),
        _ => w.get("VTCR").map(|t| t >> 21 & 3),
    }
}

/// Switching tracking off and on again: what changes in the entries (ARM: writable leaves
/// become writable-dirty, then writable-clean, each change gathered), in the hardware
/// words, and how new maps are made in each state.
fn switching_tracking<F: Format>(label: &str, fmt: F) {
    let mem = arena();
    let pt = PageTable::new(fmt, &mem, NoFlush).unwrap();
    let hw = Hw::of(&pt);
    let info = pt.info();
    let s0 = sizes(&info)[0];
    let base = info.aperture.start;
    assert!(pt.dirty_tracking(), "{label}: on from creation");
    map(&pt, base, 0x100_0000, s0, 4);
    // SAFETY: one thread.
    let r = unsafe { pt.map_pages(base + 6 * s0, 0x200_0000, s0, 1, Prot::READ) };
    assert_eq!(r, (s0, Ok(())));
    let pages: Vec<u64> = (0..4).map(|i| entry_pa(&pt, &mem, base + i * s0)).collect();
    let ro = entry_pa(&pt, &mem, base + 6 * s0);
    let words_on = pt.info().hw;
    let on_word = tracking_word::<F>(hw, &pt.info());
    let image_on = mem.image();
    let mut g = Gather::new();
    // Switching to the state the table is in changes nothing.
    // SAFETY: one thread; no hardware.
    unsafe { pt.set_dirty_tracking(true, &mut g) }.unwrap();
    assert!(g.is_empty() && ArenaMemory::same_image(&image_on, &mem.image()));
    // Off.
    // SAFETY: as above.
    unsafe { pt.set_dirty_tracking(false, &mut g) }.unwrap();
    assert!(!pt.dirty_tracking());
    let off_info = pt.info();
    if hw.is_arm() {
        for &pa in &pages {
            let e = mem.read_u64(pa).unwrap();
            assert!(hw.is_dirty(e), "{label}: writable-dirty when off: {e:#x}");
        }
        assert_eq!(g.range(), Some((base, base + 4 * s0 - 1)), "{label}");
        assert_eq!(g.granule(), s0);
        assert_eq!(
            (on_word, tracking_word::<F>(hw, &off_info)),
            (Some(3), Some(0))
        );
    } else {
        assert!(g.is_empty(), "{label}");
        assert!(ArenaMemory::same_image(&image_on, &mem.image()), "{label}");
        let off_word = tracking_word::<F>(hw, &off_info);
        match F::NAME {
            "amdv1" => assert_eq!((on_word, off_word), (Some(3), Some(0))),
            "vtd-ss" => assert_eq!((on_word, off_word), (Some(1), Some(0))),
            // D is made clear: the IOMMU must keep updating it.
            "riscv" => assert_eq!((on_word, off_word), (Some(1), Some(1))),
            _ => assert_eq!(off_info.hw, words_on, "{label}"),
        }
    }
    // The read-only leaf never changes.
    assert_eq!(
        mem.read_u64(ro).unwrap(),
        u64::from_le_bytes(
            image_on[(ro - ARENA_BASE) as usize..][..8]
                .try_into()
                .unwrap()
        )
    );
    pt.sync(&mut g);
    // A map while off: writable-dirty on ARM, clean elsewhere (D is not preset).
    map(&pt, base + 8 * s0, 0x300_0000, s0, 1);
    let new_off = entry_pa(&pt, &mem, base + 8 * s0);
    assert_eq!(
        hw.is_dirty(mem.read_u64(new_off).unwrap()),
        hw.is_arm(),
        "{label}: a map while off"
    );
    // On again: the old entries as they were, the words as they were.
    // SAFETY: as above.
    unsafe { pt.set_dirty_tracking(true, &mut g) }.unwrap();
    assert!(pt.dirty_tracking());
    assert_eq!(pt.info().hw, words_on, "{label}");
    for &pa in pages.iter().chain([&ro]) {
        let off = (pa - ARENA_BASE) as usize;
        assert_eq!(
            mem.read_u64(pa).unwrap().to_le_bytes(),
            image_on[off..off + 8],
            "{label}: entry {pa:#x} back to writable-clean"
        );
    }
    assert!(!hw.is_dirty(mem.read_u64(new_off).unwrap()), "{label}");
    if hw.is_arm() {
        assert_eq!(g.range(), Some((base, base + 9 * s0 - 1)), "{label}");
    } else {
        assert!(g.is_empty(), "{label}");
    }
    pt.sync(&mut g);
    // A map while on is clean.
    map(&pt, base + 10 * s0, 0x400_0000, s0, 1);
    let new_on = entry_pa(&pt, &mem, base + 10 * s0);
    assert!(!hw.is_dirty(mem.read_u64(new_on).unwrap()), "{label}");
    assert_eq!(
        read(&pt, base, 16 * s0, DirtyFlags::empty(), &mut g),
        Ok(vec![]),
        "{label}"
    );
    // And the hardware can still mark it.
    assert!(hw.write(&mem, new_on));
    assert_eq!(
        read(&pt, base, 16 * s0, DirtyFlags::empty(), &mut g),
        Ok(vec![(base + 10 * s0, s0)]),
        "{label}"
    );
    pt.sync(&mut g);
}

common::config_tests!(
    switching_tracking_every_format,
    common::dirty_configs(),
    switching_tracking
);

/// One thread plays the IOMMU, marking pages (a compare-and-swap on the entry bytes, as
/// the hardware does), while another reads and clears in a loop: every mark is reported
/// exactly once, or is still in the table at the end.
fn no_dirty_write_is_lost<F: Format>(label: &str, fmt: F) {
    const PAGES: usize = 64;
    let mem = arena();
    let pt = PageTable::new(fmt, &mem, NoFlush).unwrap();
    let hw = Hw::of(&pt);
    let info = pt.info();
    let s0 = sizes(&info)[0];
    let base = info.aperture.start;
    map(&pt, base, 0x100_0000, s0, PAGES);
    let pas: Vec<u64> = (0..PAGES as u64)
        .map(|i| entry_pa(&pt, &mem, base + i * s0))
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut marks = [0u64; PAGES];
    let mut reports = [0u64; PAGES];
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut x = 0x2545_f491_4f6c_dd1du64 ^ common::label_seed(label);
            for _ in 0..20_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % PAGES as u64) as usize;
                if hw.write(&mem, pas[i]) {
                    marks[i] += 1;
                }
            }
            done.store(true, std::sync::atomic::Ordering::Release);
        });
        let mut g = Gather::new();
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            // SAFETY: no map or unmap runs; the other thread only sets dirty records.
            unsafe {
                pt.read_and_clear_dirty(
                    base,
                    PAGES as u64 * s0,
                    DirtyFlags::empty(),
                    &mut g,
                    &mut |b, z| {
                        assert_eq!(z, s0);
                        reports[((b - base) / s0) as usize] += 1;
                    },
                )
            }
            .unwrap();
            pt.sync(&mut g);
        }
    });
    for i in 0..PAGES {
        let left = u64::from(hw.is_dirty(mem.read_u64(pas[i]).unwrap()));
        assert_eq!(
            marks[i],
            reports[i] + left,
            "{label}: page {i}: {} marks, {} reports, {left} left",
            marks[i],
            reports[i]
        );
    }
    assert!(marks.iter().sum::<u64>() > 0);
}

common::config_tests!(
    concurrent_marks_every_format,
    common::dirty_configs(),
    no_dirty_write_is_lost
);

#[test]
fn set_dirty_tracking_through_the_safe_and_shared_tables() {
    use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    let mem = arena();
    let cfg = ArmLpaeConfig {
        dirty_tracking: true,
        ..ArmLpaeConfig::default()
    };
    let mut t = Table::new(ArmLpae::new(cfg).unwrap(), &mem, NoFlush).unwrap();
    t.map(0, 0x4000_0000, 2 * K4, RW).unwrap();
    let mut g = Gather::new();
    t.set_dirty_tracking(false, &mut g).unwrap();
    assert!(!t.dirty_tracking());
    assert_eq!(g.range(), Some((0, 2 * K4 - 1)));
    t.sync(&mut g);
    let shared = SharedTable::from(t);
    let guard = shared.lock(0x10_0000, K4).unwrap();
    // The switch waits for every guard: try it from another thread.
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut g = Gather::new();
            shared.set_dirty_tracking(true, &mut g).unwrap();
            g
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!shared.dirty_tracking(), "switched while a guard was alive");
        drop(guard);
        let mut g = h.join().unwrap();
        assert_eq!(g.range(), Some((0, 2 * K4 - 1)));
        shared.sync(&mut g);
    });
    assert!(shared.dirty_tracking());
    assert_eq!(shared.guards(), 0);
    // Refused without dirty tracking, through both.
    let mut plain = Table::new(VtdSs::new(VtdSsConfig::default()).unwrap(), &mem, NoFlush).unwrap();
    assert_eq!(
        plain.set_dirty_tracking(true, &mut g),
        Err(Error::NoDirtyTracking)
    );
    let plain = SharedTable::from(plain);
    assert_eq!(
        plain.set_dirty_tracking(false, &mut g),
        Err(Error::NoDirtyTracking)
    );
    assert!(g.is_empty());
}

#[test]
fn dirty_bitmap_records_pages_touched() {
    use iopt::DirtyBitmap;
    let mut words = [0u64; 2];
    // Refusals name the value.
    assert_eq!(
        DirtyBitmap::new(0, 3 * K4, &mut words[..]).err(),
        Some(Error::BadBitmapPageSize(3 * K4))
    );
    assert_eq!(
        DirtyBitmap::new(0, 0, &mut words[..]).err(),
        Some(Error::BadBitmapPageSize(0))
    );
    assert_eq!(
        DirtyBitmap::new(0x800, K4, &mut words[..]).err(),
        Some(Error::UnalignedIova {
            iova: 0x800,
            pgsize: K4
        })
    );
    assert_eq!(
        DirtyBitmap::new(u64::MAX - K4 + 1, K4, &mut words[..]).err(),
        Some(Error::Overflow)
    );
    let mut b = DirtyBitmap::new(M2, K4, &mut words[..]).unwrap();
    assert_eq!((b.base(), b.page_size(), b.pages()), (M2, K4, 128));
    b.record(M2 + 0x10, 1); // part of page 0
    b.record(M2 + 62 * K4, 3 * K4); // pages 62..=64, across a word
    b.record(M2 - K4, 2 * K4); // from before the bitmap: page 0 only
    b.record(M2 + 127 * K4, 2 * M2); // past its end: page 127 only
    b.record(M2 + 5 * K4, 0); // empty
    b.record(0, K4); // wholly outside
    assert_eq!(b.bits(), [1 | 3 << 62, 1 | 1 << 63], "{:#x?}", b.bits());
    assert!(b.is_dirty(M2 + 64 * K4 + 0xfff) && !b.is_dirty(M2 + 65 * K4));
    assert!(!b.is_dirty(0) && !b.is_dirty(u64::MAX));
    // Pages larger than the extents: a 4K extent marks its 2M page.
    let mut owned = DirtyBitmap::with_len(0, M2, G1).unwrap();
    assert_eq!(owned.pages(), 512);
    owned.record(3 * M2 + K4, K4);
    owned.record(10 * M2 - K4, 2 * K4); // straddles 9 and 10
    assert_eq!(owned.bits()[0], 1 << 3 | 3 << 9);
    owned.clear();
    assert!(owned.bits().iter().all(|&w| w == 0));
    // As a dirty walk's sink, with clipped extents.
    let mem = arena();
    let pt = PageTable::new(vtd(3), &mem, NoFlush).unwrap();
    map(&pt, M2, 0x4000_0000, M2, 1);
    hw_mark(&pt, &mem, M2 + 0x1000, VTD_D);
    let mut g = Gather::new();
    let mut words = [0u64; 1];
    let mut b = DirtyBitmap::new(M2 + 0x10_0000, K4, &mut words[..]).unwrap();
    // SAFETY: one thread.
    unsafe {
        pt.read_and_clear_dirty(
            M2 + 0x10_0000,
            16 * K4,
            DirtyFlags::empty(),
            &mut g,
            &mut b.recorder(),
        )
    }
    .unwrap();
    assert_eq!(
        words[0], 0xffff,
        "the 16 pages of the range, not the whole 2M page"
    );
    assert_eq!(g.range(), Some((M2, 2 * M2 - 1)));
}

/// ARM with tracking off: every writable leaf is writable-dirty and reported, and a dirty
/// read does not clean it (a writable-clean leaf would fault without HA/HD).
#[test]
fn arm_off_reports_without_cleaning() {
    use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig, Stage};
    for stage in [Stage::S1, Stage::S2] {
        let mem = arena();
        let cfg = ArmLpaeConfig {
            stage,
            dirty_tracking: true,
            ..ArmLpaeConfig::default()
        };
        let pt = PageTable::new(ArmLpae::new(cfg).unwrap(), &mem, NoFlush).unwrap();
        map(&pt, 0, 0x4000_0000, K4, 2);
        let mut g = Gather::new();
        // SAFETY: one thread.
        unsafe { pt.set_dirty_tracking(false, &mut g) }.unwrap();
        pt.sync(&mut g);
        let image = mem.image();
        assert_eq!(
            read(&pt, 0, M2, DirtyFlags::empty(), &mut g),
            Ok(vec![(0, K4), (K4, K4)]),
            "{stage:?}"
        );
        assert!(g.is_empty(), "{stage:?}");
        assert!(ArenaMemory::same_image(&image, &mem.image()), "{stage:?}");
    }
}

/// `simulate_write` does what the test's own hardware model does (the same entry after
/// the write), faults where the device would, and records nothing where the hardware
/// stops recording; a dirty leaf made read-only by `protect`, then cut, then made
/// writable again stays dirty until a read cleans it (the cut pieces all dirty), and a
/// clean read-only leaf stays clean through the same steps.
fn write_protect_cut_keep_the_record<F: Format + Copy>(label: &str, fmt: F) {
    use iopt::{Bbm, SimWrite};
    // Room for cutting two 1 GiB pages into 4K pages (VT-d without 2M pages).
    let mem = ArenaMemory::new(ARENA_BASE, 16 << 20);
    let mut t = Table::new(fmt, &mem, NoFlush).unwrap();
    let hw = Hw::of(t.raw());
    let info = t.info();
    let sz = sizes(&info);
    let (s0, s1) = (sz[0], sz[1]);
    let base = info.aperture.start;
    for i in 0..4 {
        // One page each (`map` would join them into a larger page where it can).
        t.map(base + i * s0, 0x100_0000 + i * s0, s0, RW).unwrap();
    }
    let big = base + 2 * s1;
    t.map(big, 4 * s1, s1, RW).unwrap();
    let other = big + 2 * s1;
    t.map(other, 8 * s1, s1, RW).unwrap();
    let page = entry_pa(t.raw(), &mem, base + s0);
    let made = mem.read_u64(page).unwrap();
    assert_eq!(t.simulate_write(base + s0 + 8), SimWrite::Marked, "{label}");
    assert_eq!(
        mem.read_u64(page).unwrap(),
        hw.written(made),
        "{label}: the entry after a write"
    );
    assert_eq!(t.simulate_write(base + s0), SimWrite::Unchanged, "{label}");
    let hole = other + s1;
    assert_eq!(t.simulate_write(hole), SimWrite::Fault, "{label}");
    assert_eq!(t.simulate_write(big + s1 - 1), SimWrite::Marked, "{label}");

    let reads = |t: &mut Table<F, &ArenaMemory, NoFlush>, flags: DirtyFlags| {
        let (mut g, mut v) = (Gather::new(), Vec::<(u64, u64)>::new());
        t.read_and_clear_dirty(base, 6 * s1, flags, &mut g, |b, s| match v.last_mut() {
            Some(l) if l.0 + l.1 == b => l.1 += s,
            _ => v.push((b, s)),
        })
        .unwrap();
        t.sync(&mut g);
        v
    };
    let mut g = Gather::new();
    let ro = Prot::READ;
    // Write-protect everything; cut the big leaves (dirty and clean) in the middle.
    let p = t.protect(base, 6 * s1, ro, Bbm::Allow, &mut g).unwrap();
    t.sync(&mut g);
    assert_eq!(p.mapped, 4 * s0 + 2 * s1, "{label}");
    assert_eq!(
        t.simulate_write(base + s0),
        SimWrite::Fault,
        "{label}: read-only"
    );
    let want = vec![(base + s0, s0), (big, s1)];
    assert_eq!(
        reads(&mut t, DirtyFlags::NO_CLEAR),
        want,
        "{label}: read-only"
    );
    t.cut(big + s1 / 2, Bbm::Allow).unwrap();
    t.cut(other + s1 / 2, Bbm::Allow).unwrap();
    assert_eq!(
        reads(&mut t, DirtyFlags::NO_CLEAR),
        want,
        "{label}: after the cut"
    );
    let p = t.protect(base, 6 * s1, RW, Bbm::Allow, &mut g).unwrap();
    t.sync(&mut g);
    assert_eq!(p.changed, p.mapped, "{label}");
    assert_eq!(
        reads(&mut t, DirtyFlags::empty()),
        want,
        "{label}: writable again"
    );
    assert_eq!(
        reads(&mut t, DirtyFlags::empty()),
        vec![],
        "{label}: cleaned"
    );
    // Writable and clean again: a write marks it as a fresh leaf's would.
    assert_eq!(t.simulate_write(big), SimWrite::Marked, "{label}");
    assert_eq!(reads(&mut t, DirtyFlags::empty()).len(), 1, "{label}");

    // Switched off: AMD, VT-d and ARM hardware stops recording; x86-64 and RISC-V go
    // on setting D.
    t.set_dirty_tracking(false, &mut g).unwrap();
    t.sync(&mut g);
    let goes_on = matches!(F::NAME, "x86-64" | "riscv");
    let want = if goes_on {
        SimWrite::Marked
    } else {
        SimWrite::Unchanged
    };
    assert_eq!(t.simulate_write(base), want, "{label}: tracking off");
    assert_eq!(t.simulate_write(hole), SimWrite::Fault, "{label}");
}

common::config_tests!(
    write_protect_cut_every_format,
    common::dirty_configs(),
    write_protect_cut_keep_the_record
);

/// A simulated write on a format without dirty tracking records nothing (x86-64, whose
/// IOMMU always sets D, gets its leaves made with D set), and faults on a read-only
/// page.
fn simulated_write_without_tracking<F: Format + Copy>(label: &str, fmt: F) {
    use iopt::SimWrite;
    let mem = arena();
    let mut t = Table::new(fmt, &mem, NoFlush).unwrap();
    let info = t.info();
    let s0 = sizes(&info)[0];
    let base = info.aperture.start;
    t.map(base, 0x100_0000, s0, RW).unwrap();
    t.map(base + s0, 0x200_0000, s0, Prot::READ).unwrap();
    let image = mem.image();
    assert_eq!(t.simulate_write(base), SimWrite::Unchanged, "{label}");
    assert_eq!(t.simulate_write(base + s0), SimWrite::Fault, "{label}");
    assert_eq!(t.simulate_write(base + 2 * s0), SimWrite::Fault, "{label}");
    assert!(ArenaMemory::same_image(&image, &mem.image()), "{label}");
}

common::config_tests!(
    simulated_write_every_clean_format,
    common::clean_configs(),
    simulated_write_without_tracking
);
