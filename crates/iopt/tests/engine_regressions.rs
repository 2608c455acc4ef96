//! Regressions for engine bugs found while writing faults.rs, flush_protocol.rs and
//! safe_api.rs: safe maps in the upper half and at address 0, a reservation made for a
//! multi-size map, and the clean-before-flush order when a leftover table is replaced.

use std::ptr::NonNull;
use std::sync::Mutex;

use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::{ArenaMemory, MemStats, TableMemory};
use iopt::{FlushOps, Gather, NoFlush, Options, PageTable, Prot, Table};

const BASE: u64 = 0x4000_0000;
const G1: u64 = 0x4000_0000;
const M2: u64 = 0x20_0000;
const K4: u64 = 0x1000;

/// Was a bug: The safe map of any IOVA in the upper half of a sign-extended aperture panics
/// (plan.rs `count_fresh`: subtract with overflow; `plan_map` clips the range to the end
/// of the LOWER half, `ap.last`). The raw map of the same range works.
#[test]
fn bug1_safe_map_upper_half() {
    let arena = ArenaMemory::new(BASE, 1 << 20);
    let mut t = Table::new(
        X86_64::new(X86_64Config::default()).unwrap(),
        &arena,
        NoFlush,
    )
    .unwrap();
    assert_eq!(t.map(0xffff_8000_0000_0000, 0, K4, Prot::READ), Ok(()));
    assert_eq!(
        t.translate(0xffff_8000_0000_0123).map(|x| x.pa),
        Some(0x123)
    );
}

/// Was a bug: The safe map panics when `iova | paddr` is 0 (or 2^63): `Table::next_piece` computes
/// `(2u64 << align) - 1` with align = 63 (safe.rs:157, subtract with overflow).
#[test]
fn bug2_safe_map_zero_to_zero() {
    let arena = ArenaMemory::new(BASE, 1 << 20);
    let mut t = Table::new(
        ArmLpae::new(ArmLpaeConfig::default()).unwrap(),
        &arena,
        NoFlush,
    )
    .unwrap();
    assert_eq!(t.map(0, 0, K4, Prot::READ), Ok(()));
}

/// Was a bug: `map_reserved` refuses a map with a reservation made for exactly that map when the
/// map uses several page sizes: `map_inner` plans each piece against the unchanged table
/// and sums the counts, so tables shared by pieces (and growth levels) are counted once per
/// piece (here 2 + 3 + 3 = 8 pages asked for; the worst case is 4).
#[test]
fn bug3_map_reserved_refuses_its_own_plan() {
    let arena = ArenaMemory::new(BASE, 1 << 20);
    let mut t = Table::new(
        ArmLpae::new(ArmLpaeConfig::default()).unwrap(),
        &arena,
        NoFlush,
    )
    .unwrap();
    let len = M2 + 0x1_0000 + K4;
    let mut r = t.reserve(&[(G1, len)]).unwrap();
    assert_eq!(r.pages(), 4);
    assert_eq!(t.map_reserved(G1, 2 * G1, len, Prot::READ, &mut r), Ok(()));
    t.release(r);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Walk(u64, u64),
    Free(u64),
    Clean(u64, u64),
}

struct Rec<'a> {
    arena: &'a ArenaMemory,
    log: &'a Mutex<Vec<Ev>>,
}

// SAFETY: forwards to the arena.
unsafe impl TableMemory for Rec<'_> {
    fn alloc(&self, size_lg2: u32) -> Option<NonNull<u8>> {
        self.arena.alloc(size_lg2)
    }
    unsafe fn free(&self, ptr: NonNull<u8>, size_lg2: u32) {
        self.log
            .lock()
            .unwrap()
            .push(Ev::Free(self.arena.virt_to_phys(ptr)));
        // SAFETY: passed on.
        unsafe { self.arena.free(ptr, size_lg2) }
    }
    fn virt_to_phys(&self, ptr: NonNull<u8>) -> u64 {
        self.arena.virt_to_phys(ptr)
    }
    fn phys_to_virt(&self, pa: u64) -> NonNull<u8> {
        self.arena.phys_to_virt(pa)
    }
    fn stats(&self) -> MemStats {
        self.arena.stats()
    }
    fn clean(&self, ptr: NonNull<u8>, len: usize) {
        self.log
            .lock()
            .unwrap()
            .push(Ev::Clean(self.arena.virt_to_phys(ptr), len as u64));
    }
}

struct Flush<'a>(&'a Mutex<Vec<Ev>>);

impl FlushOps for Flush<'_> {
    fn flush_all(&self) {}
    fn flush_walk(&self, iova: u64, size: u64, _granule: u64) {
        self.0.lock().unwrap().push(Ev::Walk(iova, size));
    }
    fn top_changed(&self, _root_pa: u64, _levels: u32) {}
}

/// Was a bug: Incoherent walker (`coherent_walk: false`): a map replacing an empty leftover table
/// clears the link, flushes and FREES the table before cleaning the cleared link (the
/// clean of the parent's dirty range comes only at the end of `map_level`), so the walker
/// can still read the old link from memory after the flush and walk a freed table.
/// Expected: clean of the link entry, then the flush, then the free.
#[test]
fn bug5_incoherent_leftover_replacement_order() {
    let arena = ArenaMemory::new(BASE, 1 << 20);
    let log = Mutex::new(Vec::new());
    let opts = Options {
        coherent_walk: false,
        ..Options::default()
    };
    let pt = PageTable::with_options(
        ArmLpae::new(ArmLpaeConfig::default()).unwrap(),
        Rec {
            arena: &arena,
            log: &log,
        },
        Flush(&log),
        opts,
    )
    .unwrap();
    let mut g = Gather::new();
    // SAFETY: single-threaded; no hardware.
    unsafe {
        assert_eq!(pt.map_pages(M2, 0, K4, 512, Prot::READ).1, Ok(()));
        assert_eq!(pt.unmap_pages(M2, K4, 256, &mut g).1, Ok(()));
        assert_eq!(pt.unmap_pages(M2 + M2 / 2, K4, 256, &mut g).1, Ok(()));
    }
    pt.sync(&mut g);
    // Tables: top 0x4000_0000, L2 +0x1000, L1 +0x2000 (entry 1 links the leaf table
    // +0x3000).
    let (l1, leaf) = (BASE + 2 * K4, BASE + 3 * K4);
    log.lock().unwrap().clear();
    // SAFETY: as above.
    assert_eq!(unsafe { pt.map_pages(M2, 0, M2, 1, Prot::READ) }.1, Ok(()));
    let ev = log.lock().unwrap().clone();
    let clean = ev.iter().position(|e| *e == Ev::Clean(l1 + 8, 8));
    let walk = ev.iter().position(|e| *e == Ev::Walk(M2, M2));
    let free = ev.iter().position(|e| *e == Ev::Free(leaf));
    assert!(
        clean < walk && walk < free,
        "the cleared link must be cleaned before the flush, and the flush come before the \
         free; got {ev:x?}"
    );
}

/// The unmap of a table covered whole counts its leaves instead of clearing them; it must
/// still stop at a hole inside such a table (after clearing the leaves before it), skip
/// holes in `unmap_range`, and give every page back at the sync.
#[test]
fn covered_leaf_tables_are_detached_whole_but_holes_still_stop_unmap() {
    let arena = ArenaMemory::new(BASE, 4 << 20);
    let pt = PageTable::new(
        X86_64::new(X86_64Config::default()).unwrap(),
        &arena,
        NoFlush,
    )
    .unwrap();
    let rw = Prot::READ | Prot::WRITE;
    let mut g = Gather::new();
    // SAFETY: single-threaded, no hardware.
    unsafe {
        // Two full leaf tables: [0, 4M).
        assert_eq!(pt.map_pages(0, 0, K4, 1024, rw), (4 << 20, Ok(())));
        // A hole in the second one.
        assert_eq!(pt.unmap_pages(M2 + 100 * K4, K4, 1, &mut g), (K4, Ok(())));
        pt.sync(&mut g);
        let pages = arena.stats().pages;
        // The first table is covered and full: detached whole; the second stops at the
        // hole after clearing its first 100 pages.
        assert_eq!(
            pt.unmap_pages(0, K4, 1024, &mut g),
            (M2 + 100 * K4, Err(iopt::Error::NotMapped(M2 + 100 * K4)))
        );
        assert_eq!(pt.iova_to_phys(M2 - K4), None);
        assert_eq!(pt.iova_to_phys(M2 + 99 * K4), None);
        assert_eq!(pt.iova_to_phys(M2 + 101 * K4), Some(M2 + 101 * K4));
        assert_eq!(g.pending_tables(), 1);
        assert_eq!(g.range(), Some((0, M2 + 100 * K4 - 1)));
        pt.sync(&mut g);
        assert_eq!(arena.stats().pages, pages - 1);
        // unmap_range skips the hole and detaches the second table whole.
        assert_eq!(pt.unmap_range(M2, M2, &mut g), (411 * K4, Ok(())));
        assert_eq!(g.pending_tables(), 1);
        pt.sync(&mut g);
        assert_eq!(arena.stats().pages, pages - 2);
        assert_eq!(pt.iova_to_phys(M2 + 101 * K4), None);
    }
}

/// Formats that declare `FIXED_GEOMETRY` (the walks then take shifts from the format's
/// methods instead of the precomputed geometry) must give the same `item_lg2` and
/// `table_lg2` in every configuration.
#[test]
fn fixed_geometry_claims_hold_for_every_configuration() {
    use iopt::Format;
    use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
    use iopt::fmt::armv7s::{ArmV7s, ArmV7sConfig};
    use iopt::fmt::riscv::{Riscv, RiscvConfig};
    use iopt::fmt::vtdss::{VtdSs, VtdSsConfig};

    fn same<F: Format>(fmts: &[F]) {
        assert!(F::FIXED_GEOMETRY, "{}", F::NAME);
        for f in fmts {
            for level in 0..f.max_levels() {
                assert_eq!(f.item_lg2(level), fmts[0].item_lg2(level), "{}", F::NAME);
                assert_eq!(f.table_lg2(level), fmts[0].table_lg2(level), "{}", F::NAME);
            }
        }
    }
    same(&[
        X86_64::new(X86_64Config::default()).unwrap(),
        X86_64::new(X86_64Config {
            levels: 5,
            sign_extend: false,
            oa_bits: 40,
            ..X86_64Config::default()
        })
        .unwrap(),
    ]);
    same(
        &(1..=6)
            .map(|levels| {
                AmdV1::new(AmdV1Config {
                    levels,
                    max_levels: 6,
                    ..AmdV1Config::default()
                })
                .unwrap()
            })
            .collect::<Vec<_>>(),
    );
    same(
        &(3..=5)
            .map(|levels| {
                VtdSs::new(VtdSsConfig {
                    levels,
                    large_1g: levels != 4,
                    ..VtdSsConfig::default()
                })
                .unwrap()
            })
            .collect::<Vec<_>>(),
    );
    same(
        &(3..=5)
            .map(|levels| {
                Riscv::new(RiscvConfig {
                    levels,
                    sign_extend: levels != 4,
                    ..RiscvConfig::default()
                })
                .unwrap()
            })
            .collect::<Vec<_>>(),
    );
    same(&[
        ArmV7s::new(ArmV7sConfig::default()).unwrap(),
        ArmV7s::new(ArmV7sConfig {
            ns: true,
            ..ArmV7sConfig::default()
        })
        .unwrap(),
    ]);
}
