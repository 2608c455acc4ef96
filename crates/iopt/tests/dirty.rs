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
fn a_leaf_crossing_the_range_is_reported_and_cleaned_whole() {
    let mem = arena();
    let pt = PageTable::new(vtd(3), &mem, NoFlush).unwrap();
    map(&pt, M2, 0x4000_0000, M2, 1);
    let pa = hw_mark(&pt, &mem, M2, VTD_D);
    let mut g = Gather::new();
    // One page in the middle of the 2M page.
    assert_eq!(
        read(&pt, M2 + 0x8_0000, K4, DirtyFlags::empty(), &mut g),
        Ok(vec![(M2, M2)])
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
    // A range that starts inside the run: the run is reported once, whole.
    assert_eq!(
        read(&pt, 0x40_6000, 0x3000, DirtyFlags::NO_CLEAR, &mut g),
        Ok(vec![(0x40_0000, 0x8000)])
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
    // A guard smaller than a 2M page reports and cleans the page whole.
    let mut g = t.lock(0x10_0000, K4).unwrap();
    recs.clear();
    g.read_and_clear_dirty(0x10_0000, K4, DirtyFlags::empty(), &mut gather, |b, s| {
        recs.push((b, s))
    })
    .unwrap();
    assert_eq!(recs, [(0, M2)]);
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
