//! The safe APIs' basic paths, small enough for Miri (CI runs this file under
//! `cargo +nightly miri test`): the single-owner `Table` (all-or-nothing map with
//! automatic page sizes, exact unmap, reclaim, reservations) and the concurrent
//! `SharedTable` with two threads on disjoint ranges of one table.

use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::{ArenaMemory, FaultyMemory, TableMemory};
use iopt::{Error, Gather, NoFlush, Prot, SharedTable, Table};

const RW: Prot = Prot::READ.union(Prot::WRITE);

fn arena() -> ArenaMemory {
    ArenaMemory::new(0x4000_0000, 2 << 20)
}

#[test]
fn table_map_translate_unmap() {
    let a = arena();
    let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default()).unwrap(), &a, NoFlush).unwrap();
    // 2M block + 64K contiguous run + one 4K page.
    t.map(0x4000_0000, 0x8000_0000, 0x21_1000, RW).unwrap();
    let sizes: Vec<u64> = [0x4000_0000u64, 0x4020_0000, 0x4021_0000]
        .iter()
        .map(|&v| t.translate(v).unwrap().size)
        .collect();
    assert_eq!(sizes, [0x20_0000, 0x1_0000, 0x1000]);
    assert_eq!(t.translate(0x4021_0abc).unwrap().pa, 0x8021_0abc);
    // All or nothing: overlaps the 4K page at the end.
    let before = a.image();
    assert_eq!(
        t.map(0x4021_0000, 0, 0x2000, RW),
        Err(Error::AddressInUse(0x4021_0000))
    );
    assert!(ArenaMemory::same_image(&before, &a.image()));
    // Cutting the block is refused; the exact range is removed and tables reclaimed.
    let mut g = Gather::new();
    assert_eq!(
        t.unmap(0x4000_1000, 0x1000, &mut g).map(|u| u.bytes()),
        Err(Error::WouldSplit {
            base: 0x4000_0000,
            size: 0x20_0000
        })
    );
    assert_eq!(
        t.unmap(0x4000_0000, 0x21_1000, &mut g).unwrap().bytes(),
        0x21_1000
    );
    t.sync(&mut g);
    assert_eq!(a.stats().pages, 1);
}

#[test]
fn table_reservation_never_allocates() {
    let a = FaultyMemory::new(arena());
    let mut t = Table::new(X86_64::new(X86_64Config::default()).unwrap(), &a, NoFlush).unwrap();
    let plan = [(0x1000u64, 0x3000u64), (0x20_0000, 0x1000)];
    let mut r = t.reserve(&plan).unwrap();
    let pages = a.stats().pages;
    a.fail_from(a.allocations() + 1);
    for &(iova, len) in &plan {
        t.map_reserved(iova, iova, len, RW, &mut r).unwrap();
    }
    assert_eq!(a.failures(), 0);
    assert_eq!(a.stats().pages, pages);
    t.release(r);
    // Root, level 3 and level 2, one leaf table each for the two maps.
    assert_eq!(a.stats().pages, 5);
}

#[test]
fn shared_table_two_threads() {
    let a = arena();
    let t = SharedTable::new(X86_64::new(X86_64Config::default()).unwrap(), &a, NoFlush).unwrap();
    std::thread::scope(|s| {
        for i in 0..2u64 {
            let t = &t;
            s.spawn(move || {
                let base = 0x4000_0000 + i * 0x1_0000;
                let mut g = t.lock(base, 0x1_0000).unwrap();
                g.map(base, 0x10_0000 * (i + 1), 0x3000, RW).unwrap();
                assert_eq!(
                    g.translate(base + 0x1234).unwrap().unwrap().pa,
                    0x10_0000 * (i + 1) + 0x1234
                );
                let mut gather = Gather::new();
                assert_eq!(g.unmap(base + 0x1000, 0x1000, &mut gather), Ok(0x1000));
                drop(g);
                t.sync(&mut gather);
            });
        }
    });
    let r = t.lock_shared(0x4000_0000, 0x2_0000).unwrap();
    assert_eq!(
        r.translate(0x4001_0000).unwrap().map(|x| x.pa),
        Some(0x20_0000)
    );
    assert_eq!(r.translate(0x4001_1000).unwrap(), None);
    drop(r);
    // Both threads shared one leaf table (installed once, by compare-and-swap).
    assert_eq!(a.stats().pages, 4);
}
