//! Deterministic walk-throughs of the engine on every format: small enough to run under
//! Miri (`cargo +nightly miri test -p iopt --test engine_basic`), which checks the unsafe
//! table handling (atomics on table memory, allocation, detaching and freeing).

use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig, Granule, Stage};
use iopt::fmt::armv7s::{ArmV7s, ArmV7sConfig};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::{ArenaMemory, HeapMemory, TableMemory};
use iopt::{Error, FlushOps, Format, Gather, NoFlush, PageTable, Prot};
use std::sync::Mutex;

const RW: Prot = Prot::READ.union(Prot::WRITE);

/// Records every flush call, to check that detached tables are flushed before reuse.
#[derive(Default)]
struct Recorder {
    walks: Mutex<Vec<(u64, u64, u64)>>,
    tops: Mutex<Vec<(u64, u32)>>,
}

impl FlushOps for Recorder {
    fn flush_all(&self) {
        self.walks.lock().unwrap().push((0, 0, 0));
    }
    fn flush_walk(&self, iova: u64, size: u64, granule: u64) {
        self.walks.lock().unwrap().push((iova, size, granule));
    }
    fn top_changed(&self, root_pa: u64, levels: u32) {
        self.tops.lock().unwrap().push((root_pa, levels));
    }
}

/// Map, look up, unmap and tear down a few pages of the smallest and the next size.
fn walkthrough<F: Format, M: TableMemory>(fmt: F, mem: M, base: u64) {
    let pt = PageTable::new(fmt, mem, NoFlush).unwrap();
    let info = pt.info();
    let sizes: Vec<u64> = (0..64)
        .map(|b| 1u64 << b)
        .filter(|s| info.pgsize_bitmap & s != 0)
        .collect();
    let small = sizes[0];
    let mut g = Gather::new();
    // SAFETY: single-threaded, no hardware walks this table.
    unsafe {
        assert_eq!(pt.iova_to_phys(base), None);
        assert_eq!(
            pt.map_pages(base, 0x10_0000, small, 3, RW),
            (3 * small, Ok(()))
        );
        assert_eq!(
            pt.iova_to_phys(base + small + 5),
            Some(0x10_0000 + small + 5)
        );
        let t = pt.translate(base + 2 * small).unwrap();
        assert_eq!((t.iova_base, t.size, t.level), (base + 2 * small, small, 0));
        assert!(t.prot.contains(Prot::READ));
        assert_eq!(
            pt.map_pages(base + small, 0x20_0000, small, 1, RW),
            (0, Err(Error::AddressInUse(base + small)))
        );
        // Unmap the middle page, then the rest stops at the hole it left.
        assert_eq!(
            pt.unmap_pages(base + small, small, 1, &mut g),
            (small, Ok(()))
        );
        assert_eq!(
            pt.unmap_pages(base, small, 3, &mut g),
            (small, Err(Error::NotMapped(base + small)))
        );
        assert_eq!(
            pt.unmap_pages(base + 2 * small, small, 1, &mut g),
            (small, Ok(()))
        );
        pt.sync(&mut g);
        // A larger page where the small ones were: the emptied table is replaced.
        if let Some(&big) = sizes.get(1) {
            let big_base = base & !(big - 1);
            assert_eq!(pt.map_pages(big_base, 0, big, 1, RW), (big, Ok(())));
            assert_eq!(pt.iova_to_phys(big_base + big - 1), Some(big - 1));
            assert_eq!(
                pt.unmap_pages(big_base + small, small, 1, &mut g),
                (
                    0,
                    Err(Error::WouldSplit {
                        base: big_base,
                        size: big
                    })
                )
            );
            assert_eq!(pt.unmap_pages(big_base, small, 1, &mut g), (big, Ok(())));
        }
        // Something left mapped for teardown to free.
        assert_eq!(
            pt.map_pages(base, 0x30_0000, small, 2, Prot::READ),
            (2 * small, Ok(()))
        );
    }
    pt.sync(&mut g);
    drop(pt);
}

fn arena() -> ArenaMemory {
    ArenaMemory::new(0x4000_0000, 4 << 20)
}

#[test]
fn arm64_s1_4k() {
    let a = arena();
    walkthrough(
        ArmLpae::new(ArmLpaeConfig::default()).unwrap(),
        &a,
        0x1234_5000_0000,
    );
    assert_eq!(a.stats().pages, 0, "teardown frees every table");
}

#[test]
fn arm64_s2_16k_concatenated() {
    let a = arena();
    let cfg = ArmLpaeConfig {
        stage: Stage::S2,
        granule: Granule::K16,
        ias: 40,
        oas: 44,
        ..ArmLpaeConfig::default()
    };
    walkthrough(ArmLpae::new(cfg).unwrap(), &a, 0xff_0000_0000);
    assert_eq!(a.stats().pages, 0);
}

#[test]
fn arm64_s1_64k_heap() {
    let cfg = ArmLpaeConfig {
        granule: Granule::K64,
        ..ArmLpaeConfig::default()
    };
    let h = HeapMemory::new();
    walkthrough(ArmLpae::new(cfg).unwrap(), &h, 0x4000_0000);
    assert_eq!(h.stats().pages, 0);
}

#[test]
fn x86_64_upper_half() {
    let a = arena();
    walkthrough(
        X86_64::new(X86_64Config::default()).unwrap(),
        &a,
        0xffff_8000_0000_0000,
    );
    assert_eq!(a.stats().pages, 0);
}

#[test]
fn armv7s() {
    let a = arena();
    walkthrough(
        ArmV7s::new(ArmV7sConfig::default()).unwrap(),
        &a,
        0x1230_0000,
    );
    assert_eq!(a.stats().pages, 0);
}

#[test]
fn amdv1_grows_and_reports_the_new_top() {
    let a = arena();
    let rec = Recorder::default();
    let fmt = AmdV1::new(AmdV1Config {
        levels: 1,
        ..AmdV1Config::default()
    })
    .unwrap();
    let pt = PageTable::new(fmt, &a, &rec).unwrap();
    assert_eq!(pt.info().levels, 1);
    // SAFETY: single-threaded, no hardware.
    unsafe {
        assert_eq!(pt.map_pages(0x1000, 0x1000, 4096, 1, RW), (4096, Ok(())));
        // 1 GiB + 4 KiB needs three levels.
        assert_eq!(
            pt.map_pages(0x4000_1000, 0x2000, 4096, 1, RW),
            (4096, Ok(()))
        );
        let info = pt.info();
        assert_eq!(info.levels, 3);
        assert_eq!(*rec.tops.lock().unwrap(), vec![(info.root_pa, 3)]);
        // The old mapping is still reachable through the new top.
        assert_eq!(pt.iova_to_phys(0x1234), Some(0x1234));
        assert_eq!(pt.iova_to_phys(0x4000_1234), Some(0x2234));
        // A failed map above the top (bad paddr) does not grow it.
        assert!(pt.map_pages(1 << 50, 1 << 60, 4096, 1, RW).1.is_err());
        assert_eq!(pt.info().levels, 3);
        // Unmapping beyond the current top finds nothing.
        let mut g = Gather::new();
        assert_eq!(
            pt.unmap_pages(1 << 50, 4096, 1, &mut g),
            (0, Err(Error::NotMapped(1 << 50)))
        );
    }
    drop(pt);
    assert_eq!(a.stats().pages, 0);
}

#[test]
fn fully_covered_tables_wait_for_the_flush() {
    let a = arena();
    let rec = Recorder::default();
    let pt = PageTable::new(X86_64::new(X86_64Config::default()).unwrap(), &a, &rec).unwrap();
    let mut g = Gather::new();
    // SAFETY: single-threaded, no hardware.
    unsafe {
        assert_eq!(pt.map_pages(0x20_0000, 0, 4096, 512, RW), (2 << 20, Ok(())));
        assert_eq!(
            a.stats().pages,
            4,
            "top, two intermediate tables and the leaf table"
        );
        assert_eq!(
            pt.unmap_pages(0x20_0000, 2 << 20, 1, &mut g),
            (2 << 20, Ok(()))
        );
    }
    assert_eq!(g.pending_tables(), 1, "the leaf table is detached");
    assert_eq!(a.stats().pages, 4, "but not freed before the flush");
    assert_eq!(g.range(), Some((0x20_0000, 0x3f_ffff)));
    pt.sync(&mut g);
    assert_eq!(a.stats().pages, 3);
    assert_eq!(*rec.walks.lock().unwrap(), vec![(0x20_0000, 2 << 20, 4096)]);
    assert!(g.is_empty());
}
