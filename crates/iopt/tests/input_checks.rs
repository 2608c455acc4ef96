//! The argument checks (one per request kind) and the input fixes of issue 9: undefined
//! permission and dirty-flag bits, the first IOVA in use, reservation plans checked like
//! maps, reservations larger than the memory, reservations of another table.

use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::{ArenaMemory, HeapMemory, TableMemory};
use iopt::{DirtyFlags, Error, Gather, NoFlush, PageTable, Prot, SharedTable, Table};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const K4: u64 = 0x1000;
const G1: u64 = 0x4000_0000;

fn x86() -> X86_64 {
    X86_64::new(X86_64Config::default()).unwrap()
}

fn amd_dirty() -> AmdV1 {
    AmdV1::new(AmdV1Config {
        dirty_tracking: true,
        ..AmdV1Config::default()
    })
    .unwrap()
}

#[test]
fn undefined_prot_bits_are_refused_on_every_layer() {
    let bad = Prot::from_bits_retain(0xffff_ffff);
    let undefined = !Prot::all().bits(); // every bit of 0xffff_ffff but the defined ones
    let mem = ArenaMemory::new(0x4000_0000, 1 << 20);
    let pt = PageTable::new(x86(), &mem, NoFlush).unwrap();
    let before = mem.image();
    // SAFETY: single-threaded; no hardware.
    let got = unsafe { pt.map_pages(0, 0, K4, 1, bad) };
    assert_eq!(got, (0, Err(Error::UndefinedProt(undefined))));
    // SAFETY: as above.
    let got = unsafe { pt.map_pages(0, 0, K4, 8, bad) };
    assert_eq!(got, (0, Err(Error::UndefinedProt(undefined))));
    assert!(ArenaMemory::same_image(&before, &mem.image()));
    // No access at all is still its own error, even with undefined bits.
    let no_access = Prot::from_bits_retain(1 << 20);
    // SAFETY: as above.
    let got = unsafe { pt.map_pages(0, 0, K4, 1, no_access) };
    assert_eq!(got, (0, Err(Error::NoAccess)));
    drop(pt);

    let mut t = Table::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    assert_eq!(t.map(0, 0, K4, bad), Err(Error::UndefinedProt(undefined)));
    assert_eq!(
        t.map(0, 0, 0x20_0000, bad),
        Err(Error::UndefinedProt(undefined))
    );
    assert_eq!(t.mem_stats().pages, 1);
    assert!(t.translate(0).is_none());

    let s = SharedTable::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    let mut g = s.lock(0, 0x20_0000).unwrap();
    assert_eq!(g.map(0, 0, K4, bad), Err(Error::UndefinedProt(undefined)));
}

#[test]
fn undefined_dirty_flags_are_refused() {
    let mut t = Table::new(amd_dirty(), HeapMemory::new(), NoFlush).unwrap();
    t.map(0, 0, K4, RW).unwrap();
    let mut g = Gather::new();
    let bad = DirtyFlags::from_bits_retain(0x8000_0001);
    let mut seen = 0;
    assert_eq!(
        t.read_and_clear_dirty(0, K4, bad, &mut g, |_, _| seen += 1),
        Err(Error::UndefinedDirtyFlags(0x8000_0000))
    );
    assert_eq!(seen, 0);
    assert!(g.is_empty());
    // The defined flag alone is fine.
    t.read_and_clear_dirty(0, K4, DirtyFlags::NO_CLEAR, &mut g, |_, _| seen += 1)
        .unwrap();
}

#[test]
fn a_safe_map_over_a_used_range_names_the_first_iova_in_use() {
    let mut t = Table::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    t.map(0x4000, 0x4000, K4, RW).unwrap();
    assert_eq!(t.map(0, 0, G1, RW), Err(Error::AddressInUse(0x4000)));
    // Deeper: a 1 GiB map whose first conflict is in the middle of a 2 MiB region.
    t.map(G1 + 0x30_5000, 0, K4, RW).unwrap();
    assert_eq!(
        t.map(G1, G1, G1, RW),
        Err(Error::AddressInUse(G1 + 0x30_5000))
    );
    // A large leaf in the way: the first IOVA of the request inside it.
    t.map(2 * G1, 2 * G1, 0x20_0000, RW).unwrap();
    assert_eq!(
        t.map(2 * G1 + 0x1000, 0x1000, 0x1000, RW),
        Err(Error::AddressInUse(2 * G1 + 0x1000))
    );
    // Through a guard as well.
    let s = SharedTable::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    let mut g = s.lock(0, G1).unwrap();
    g.map(0x7000, 0x7000, K4, RW).unwrap();
    assert_eq!(g.map(0, 0, G1, RW), Err(Error::AddressInUse(0x7000)));
}

#[test]
fn plans_are_checked_like_maps() {
    let t = Table::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    let pt = t.raw();
    let unaligned = Error::UnalignedIova {
        iova: 0x1001,
        pgsize: K4,
    };
    assert_eq!(pt.worst_case_tables(&[(0x1001, 0x1000)]), Err(unaligned));
    assert_eq!(
        t.reserve(&[(0x1001, 0x1000)]).map(|r| r.pages()),
        Err(unaligned)
    );
    assert_eq!(
        pt.worst_case_tables(&[(0x1000, 0x1800)]),
        Err(Error::BadPageSize(0x1800))
    );
    assert_eq!(pt.worst_case_tables(&[(0, 0)]), Err(Error::ZeroLength));
    assert_eq!(
        pt.worst_case_tables(&[(0, K4), (u64::MAX - 0xfff, 0x2000)]),
        Err(Error::Overflow)
    );
    assert_eq!(
        pt.worst_case_tables(&[(1 << 47, K4)]),
        Err(Error::OutOfAperture {
            iova: 1 << 47,
            last: (1 << 47) + 0xfff
        })
    );
    // The same errors the map gives.
    let mut t = t;
    assert_eq!(t.map(0x1001, 0, 0x1000, RW), Err(unaligned));
    assert_eq!(
        t.map(0x1000, 0, 0x1800, RW),
        Err(Error::BadPageSize(0x1800))
    );
    assert_eq!(t.mem_stats().pages, 1, "nothing allocated");
}

#[test]
fn a_reservation_larger_than_the_memory_fails_before_allocating() {
    // A heap budget.
    let t = Table::new(x86(), HeapMemory::with_budget(4), NoFlush).unwrap();
    // 1 GiB of 4K pages: 512 leaf tables + 1 + 1 under the root, the root taken.
    match t.reserve(&[(0, G1)]) {
        Err(Error::ReservationTooLarge {
            size_lg2: 12,
            needed,
            available: 3,
        }) => assert_eq!(needed, 512 + 1 + 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.mem_stats().pages, 1);
    let r = t.reserve(&[(0, K4)]).unwrap();
    assert_eq!(r.pages(), 3);
    t.release(r);
    // An arena: its free space.
    let mem = ArenaMemory::new(0x4000_0000, 64 << 10); // 16 pages
    let pt = PageTable::new(x86(), &mem, NoFlush).unwrap();
    assert_eq!(mem.pages_left(12), Some(15));
    assert!(matches!(
        pt.reserve(&[(0, G1)]),
        Err(Error::ReservationTooLarge { available: 15, .. })
    ));
    assert_eq!(mem.stats().pages, 1);
    // The whole lower half of x86-64 with an unbudgeted heap: about 2^26 table pages
    // (256 GiB), more than this machine has: refused, not the process killed.
    let t = Table::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    match t.reserve(&[(0, 1 << 47)]) {
        Err(Error::ReservationTooLarge {
            needed, available, ..
        }) => {
            assert!(needed > 1 << 26, "{needed}");
            assert!(available < needed);
        }
        other => panic!("{:?}", other.map(|r| r.pages())),
    }
    assert_eq!(t.mem_stats().pages, 1);
}

#[test]
fn a_reservation_of_another_table_is_an_error_on_every_layer() {
    let a = Table::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    let mut b = Table::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    let mut r = a.reserve(&[(0, 0x20_0000)]).unwrap();
    assert_eq!(
        b.map_reserved(0, 0, K4, RW, &mut r),
        Err(Error::ForeignReservation)
    );
    // SAFETY: single-threaded; no hardware.
    let got = unsafe { b.raw().map_pages_reserved(0, 0, K4, 1, RW, &mut r) };
    assert_eq!(got, (0, Err(Error::ForeignReservation)));
    let s = SharedTable::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    let mut g = s.lock(0, 0x20_0000).unwrap();
    assert_eq!(
        g.map_reserved(0, 0, K4, RW, &mut r),
        Err(Error::ForeignReservation)
    );
    assert!(b.translate(0).is_none());
    assert_eq!(b.mem_stats().pages, 1);
    // The reservation is intact and works on its own table.
    let mut a = a;
    a.map_reserved(0, 0, K4, RW, &mut r).unwrap();
    a.release(r);
}

/// Flush operations that record the top changes and the walk flushes.
#[derive(Default)]
struct Recorder {
    tops: std::sync::Mutex<Vec<(u64, u32)>>,
    walks: std::sync::atomic::AtomicU64,
}

impl iopt::FlushOps for Recorder {
    fn flush_all(&self) {}
    fn flush_walk(&self, _iova: u64, _size: u64, _granule: u64) {
        self.walks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn top_changed(&self, root_pa: u64, levels: u32) {
        self.tops.lock().unwrap().push((root_pa, levels));
    }
}

fn amd_growing() -> AmdV1 {
    AmdV1::new(AmdV1Config {
        levels: 3,
        max_levels: 6,
        dynamic_top: true,
        ..AmdV1Config::default()
    })
    .unwrap()
}

#[test]
fn the_safe_table_lowers_a_grown_top_once_it_is_empty() {
    let rec = Recorder::default();
    let mut t = Table::new(amd_growing(), HeapMemory::new(), &rec).unwrap();
    let root3 = t.info().root_pa;
    // Above 2^57: the top grows from 3 to 6 levels.
    let high = 1u64 << 60;
    t.map(high, 0x1000, K4, RW).unwrap();
    assert_eq!(t.info().levels, 6);
    let mut g = Gather::new();
    let _ = t.unmap(high, K4, &mut g).unwrap();
    // Lowered at once (the hardware is told before the old pages are freed)...
    assert_eq!(t.info().levels, 3);
    assert_eq!(t.info().root_pa, root3);
    assert_eq!(rec.tops.lock().unwrap().last(), Some(&(root3, 3)));
    assert!(
        g.pending_tables() >= 3,
        "the three added levels wait for the flush"
    );
    let walks = rec.walks.load(std::sync::atomic::Ordering::Relaxed);
    t.sync(&mut g);
    assert!(rec.walks.load(std::sync::atomic::Ordering::Relaxed) > walks);
    // ...and freed after it: only the original root is left.
    assert_eq!(t.mem_stats().pages, 1);

    // With a mapping left in the old root's range, the top goes down to 3 levels and
    // keeps it.
    t.map(0x4000, 0x4000, K4, RW).unwrap();
    t.map(high, 0x1000, K4, RW).unwrap();
    assert_eq!(t.info().levels, 6);
    let _ = t.unmap(high, K4, &mut g).unwrap();
    t.sync(&mut g);
    assert_eq!(t.info().levels, 3);
    assert_eq!(t.translate(0x4000).map(|tr| tr.pa), Some(0x4000));
    assert_eq!(t.mem_stats().pages, 3); // root, level 1, level 0

    // Everything gone, including the old root's range: one empty page at 3 levels.
    t.map(high, 0x1000, K4, RW).unwrap();
    let _ = t.unmap(0x4000, K4, &mut g).unwrap();
    let _ = t.unmap(high, K4, &mut g).unwrap();
    t.sync(&mut g);
    assert_eq!(t.info().levels, 3);
    assert_eq!(t.mem_stats().pages, 1);
    // Still a working table.
    t.map(high, 0x1000, K4, RW).unwrap();
    assert_eq!(t.translate(high).map(|tr| tr.pa), Some(0x1000));
}

#[test]
fn the_raw_table_keeps_its_grown_top() {
    // Only the single owner lowers the top (the raw and shared layers may have other
    // users below it).
    let pt = PageTable::new(amd_growing(), HeapMemory::new(), NoFlush).unwrap();
    let high = 1u64 << 60;
    // SAFETY: single-threaded; no hardware.
    unsafe {
        assert_eq!(pt.map_pages(high, 0, K4, 1, RW), (K4, Ok(())));
        let mut g = Gather::new();
        assert_eq!(pt.unmap_pages(high, K4, 1, &mut g), (K4, Ok(())));
        pt.sync(&mut g);
    }
    assert_eq!(pt.info().levels, 6);
}

#[test]
fn compact_after_a_map_unmap_stress_leaves_no_empty_tables() {
    let s = SharedTable::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    const REGION: u64 = 64 << 20;
    std::thread::scope(|sc| {
        for w in 0..4u64 {
            let s = &s;
            sc.spawn(move || {
                let base = w * REGION;
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ w;
                let mut gather = Gather::new();
                for _ in 0..400 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let iova = base + (x % (REGION / K4)) * K4;
                    let mut g = s.lock(iova, K4).unwrap();
                    if g.translate(iova).unwrap().is_none() {
                        g.map(iova, iova, K4, RW).unwrap();
                    }
                    let _ = g.unmap(iova, K4, &mut gather).unwrap();
                }
                s.sync(&mut gather);
                // The guard of the worker's region frees what lies wholly inside it.
                let mut g = s.lock(base, REGION).unwrap();
                let freed = g.compact(&mut gather);
                assert!(freed > 0, "the stress left empty tables in {base:#x}");
                drop(g);
                s.sync(&mut gather);
            });
        }
    });
    // What is left spans more than one region: the top, the 512 GiB table, the 1 GiB
    // table the four regions share.
    assert_eq!(s.mem_stats().pages, 3);
    let mut gather = Gather::new();
    let mut g = s.lock(0, 1 << 47).unwrap();
    assert_eq!(g.compact(&mut gather), 2);
    // Nothing mapped anywhere: a second compact finds nothing.
    assert_eq!(g.compact(&mut gather), 0);
    drop(g);
    s.sync(&mut gather);
    assert_eq!(s.mem_stats().pages, 1);
}

#[test]
fn compact_keeps_tables_that_map_something_or_reach_outside() {
    let s = SharedTable::new(x86(), HeapMemory::new(), NoFlush).unwrap();
    let mut gather = Gather::new();
    {
        let mut g = s.lock(0, 4 << 20).unwrap();
        g.map(0x1000, 0x1000, K4, RW).unwrap(); // leaf table of 0..2M
        g.map(0x20_1000, 0x1000, K4, RW).unwrap(); // leaf table of 2M..4M
        let _ = g.unmap(0x20_1000, K4, &mut gather).unwrap();
    }
    s.sync(&mut gather);
    assert_eq!(s.mem_stats().pages, 5);
    // A guard over 2M..4M frees that leaf table only.
    let mut g = s.lock(0x20_0000, 0x20_0000).unwrap();
    assert_eq!(g.compact(&mut gather), 1);
    drop(g);
    // A guard over 1M..3M covers no table's whole span.
    let mut g = s.lock(0x10_0000, 0x20_0000).unwrap();
    assert_eq!(g.compact(&mut gather), 0);
    drop(g);
    s.sync(&mut gather);
    assert_eq!(s.mem_stats().pages, 4);
    let r = s.lock_shared(0, 0x20_0000).unwrap();
    assert_eq!(r.translate(0x1000).unwrap().map(|t| t.pa), Some(0x1000));
}
