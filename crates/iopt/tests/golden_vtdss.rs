//! Golden descriptor values for the Intel VT-d second-stage format, worked out by hand
//! from the VT-d specification ("Second-Stage Paging Entries") and Linux
//! `generic_pt/fmt/vtdss.h` / `intel/iommu.h`:
//! R = bit 0, W = bit 1, PS = bit 7, A = bit 8, D = bit 9, SNP = bit 11,
//! address = bits 51:12; no present bit (zero is empty); bits 10, 61:52 and 63 ignored
//! by hardware. So a table entry is `pa | 0x3`, a read-write 2M/1G leaf `pa | 0x83`, and
//! SNP adds `0x800`.

use iopt::fmt::vtdss::{VtdSs, VtdSsConfig};
use iopt::mem::ArenaMemory;
use iopt::{Error, Format, Gather, NoFlush, PageTable, Prot, Pte, VaMode};

const RW: Prot = Prot::READ.union(Prot::WRITE);

fn cfg(f: impl FnOnce(&mut VtdSsConfig)) -> VtdSs {
    let mut c = VtdSsConfig::default();
    f(&mut c);
    VtdSs::new(c).unwrap()
}

fn fmt() -> VtdSs {
    VtdSs::new(VtdSsConfig::default()).unwrap()
}

fn leaf(pa: u64) -> Pte {
    Pte::Leaf { pa, run_lg2: 0 }
}

#[test]
fn defaults() {
    let c = VtdSsConfig::default();
    assert_eq!(c.levels, 4);
    assert_eq!(c.oa_bits, 52);
    assert!(c.large_2m);
    assert!(c.large_1g);
    assert!(!c.force_coherence);
    assert!(!c.dirty_tracking);
    assert_eq!(VtdSs::NAME, "vtd-ss");
    assert_eq!(VtdSs::ENTRY_LG2, 3);
    assert_eq!(VtdSs::MAX_LEVELS, 5);
    // Bits 10, 52..=61 and 63.
    assert_eq!(VtdSs::SW_BITS, 0xbff0_0000_0000_0400);
}

#[test]
fn table_entries_every_level() {
    let f = cfg(|c| c.levels = 5);
    let cases = [
        (1, 0x5000, 0x5003),
        (2, 0x1234_5000, 0x1234_5003),
        (3, 0xa_bcde_f000, 0xa_bcde_f003),
        (4, 0x000f_ffff_ffff_f000, 0x000f_ffff_ffff_f003),
    ];
    for (level, pa, pte) in cases {
        assert_eq!(f.make_table(level, pa), pte, "level {level}");
        assert_eq!(f.decode(level, pte), Pte::Table { pa }, "level {level}");
    }
    // Neither SNP nor dirty tracking changes table entries.
    let g = cfg(|c| {
        c.force_coherence = true;
        c.dirty_tracking = true;
    });
    assert_eq!(g.make_table(1, 0x5000), 0x5003);
}

#[test]
fn leaves_every_level_and_prot() {
    let f = fmt();
    let cases: [(u32, u64, Prot, u64); 10] = [
        (0, 0x1234_5000, RW, 0x1234_5003),
        (0, 0x1234_5000, Prot::READ, 0x1234_5001),
        (0, 0x1234_5000, Prot::WRITE, 0x1234_5002),
        (1, 0x20_0000, RW, 0x20_0083),
        (1, 0x20_0000, Prot::READ, 0x20_0081),
        (2, 0x1_4000_0000, RW, 0x1_4000_0083),
        (2, 0x1_4000_0000, Prot::WRITE, 0x1_4000_0082),
        // The highest output address for each page size.
        (0, 0x000f_ffff_ffff_f000, RW, 0x000f_ffff_ffff_f003),
        (1, 0x000f_ffff_ffe0_0000, RW, 0x000f_ffff_ffe0_0083),
        (2, 0x000f_ffff_c000_0000, RW, 0x000f_ffff_c000_0083),
    ];
    for (level, pa, prot, pte) in cases {
        assert_eq!(f.make_leaf(level, pa, 0, prot), pte, "{level} {pa:#x}");
        assert_eq!(f.decode(level, pte), leaf(pa), "{level} {pa:#x}");
        assert_eq!(f.leaf_prot(level, pte), prot, "{level} {pa:#x}");
        assert_eq!(f.run_step(level, 0), 1 << (12 + 9 * level));
    }
    // CACHE does not set SNP by itself; NOEXEC, PRIV and MMIO have no bits.
    for extra in [Prot::CACHE, Prot::NOEXEC, Prot::PRIV, Prot::MMIO] {
        assert_eq!(f.make_leaf(0, 0x1234_5000, 0, RW | extra), 0x1234_5003);
        assert_eq!(f.make_leaf(1, 0x20_0000, 0, RW | extra), 0x20_0083);
    }
}

#[test]
fn force_coherence_sets_snp() {
    let f = cfg(|c| c.force_coherence = true);
    assert_eq!(f.make_leaf(0, 0x1234_5000, 0, RW), 0x1234_5803);
    assert_eq!(f.make_leaf(1, 0x20_0000, 0, Prot::READ), 0x20_0881);
    assert_eq!(f.make_leaf(2, 0x1_4000_0000, 0, Prot::WRITE), 0x1_4000_0882);
    assert_eq!(f.leaf_prot(0, 0x1234_5803), RW | Prot::CACHE);
    assert_eq!(f.leaf_prot(1, 0x20_0881), Prot::READ | Prot::CACHE);
    assert_eq!(f.decode(0, 0x1234_5803), leaf(0x1234_5000));
    assert_eq!(f.decode(2, 0x1_4000_0882), leaf(0x1_4000_0000));
}

#[test]
fn no_present_bit_zero_is_empty() {
    let f = cfg(|c| c.levels = 5);
    for level in 0..5 {
        assert_eq!(f.decode(level, 0), Pte::Empty);
    }
    // Any non-zero value is valid: R alone at address 0 maps physical page 0 ...
    assert_eq!(f.decode(0, 0x1), leaf(0));
    assert_eq!(f.leaf_prot(0, 0x1), Prot::READ);
    // ... or points to a table at 0.
    assert_eq!(f.decode(1, 0x3), Pte::Table { pa: 0 });
    // PS above level 2 is not a page size: still a table.
    assert_eq!(f.decode(3, 0x5083), Pte::Table { pa: 0x5000 });
    assert_eq!(f.decode(4, 0x5083), Pte::Table { pa: 0x5000 });
}

#[test]
fn decode_ignores_status_and_software_bits() {
    let f = fmt();
    // A (0x100) and D (0x200), set by hardware.
    assert_eq!(f.decode(0, 0x1234_5303), leaf(0x1234_5000));
    assert_eq!(f.leaf_prot(0, 0x1234_5303), RW);
    assert_eq!(f.decode(1, 0x5103), Pte::Table { pa: 0x5000 });
    // Software bits: 10, 52..=61, 63.
    assert_eq!(f.decode(0, 0xbff0_0000_1234_5403), leaf(0x1234_5000));
    assert_eq!(f.leaf_prot(0, 0xbff0_0000_1234_5403), RW);
    assert_eq!(f.decode(1, 0xbff0_0000_0020_0483), leaf(0x20_0000));
    assert_eq!(
        f.decode(2, 0xbff0_0000_0000_5403),
        Pte::Table { pa: 0x5000 }
    );
    // The format never sets them.
    let all = cfg(|c| {
        c.force_coherence = true;
        c.dirty_tracking = true;
    });
    for level in 0..3 {
        let pa = 0x000f_ffff_c000_0000;
        assert_eq!(
            all.make_leaf(level, pa, 0, RW | Prot::all()) & VtdSs::SW_BITS,
            0
        );
        assert_eq!(
            all.make_table(level + 1, 0x000f_ffff_ffff_f000) & VtdSs::SW_BITS,
            0
        );
    }
    // Reserved address bits below a large page's size do not move its address.
    assert_eq!(f.decode(1, 0x20_1083), leaf(0x20_0000));
    assert_eq!(f.decode(2, 0x4020_0083), leaf(0x4000_0000));
}

#[test]
fn dirty_hooks() {
    assert!(!fmt().tracks_dirty());
    let f = cfg(|c| c.dirty_tracking = true);
    assert!(f.tracks_dirty());
    // D = 0x200; A = 0x100 is not dirt.
    assert!(f.leaf_dirty(0, 0x1234_5203));
    assert!(f.leaf_dirty(1, 0x20_0283));
    assert!(!f.leaf_dirty(0, 0x1234_5103));
    assert!(!f.leaf_dirty(0, 0x1234_5003));
    // Cleaning drops D only (A, software bits, permissions stay).
    assert_eq!(f.leaf_clean(0, 0x1234_5303), 0x1234_5103);
    assert_eq!(f.leaf_clean(2, 0x1_4000_0283), 0x1_4000_0083);
    assert_eq!(
        f.leaf_clean(0, 0xbff0_0000_1234_5e03),
        0xbff0_0000_1234_5c03
    );
}

#[test]
fn geometry_per_configuration() {
    for (levels, va) in [(3, 39), (4, 48), (5, 57)] {
        let f = cfg(|c| c.levels = levels);
        assert_eq!(f.levels(), levels);
        assert_eq!(f.max_levels(), levels);
        assert_eq!(f.va_bits(levels - 1), va);
        assert_eq!(f.va_mode(), VaMode::Low);
        assert_eq!(f.oa_bits(), 52);
        assert_eq!(f.min_table_bytes_lg2(), 12);
        let item = [12, 21, 30, 39, 48];
        let runs = [1, 1, 1, 0, 0];
        for l in 0..levels {
            assert_eq!(f.item_lg2(l), item[l as usize], "item {l}");
            assert_eq!(f.table_lg2(l), 9, "table {l}");
            assert_eq!(f.leaf_runs(l), runs[l as usize], "runs {l}");
        }
    }
    let runs = |f: VtdSs| [0, 1, 2, 3, 4].map(|l| f.leaf_runs(l));
    assert_eq!(runs(cfg(|c| c.large_2m = false)), [1, 0, 1, 0, 0]);
    assert_eq!(runs(cfg(|c| c.large_1g = false)), [1, 1, 0, 0, 0]);
    assert_eq!(
        runs(cfg(|c| {
            c.large_2m = false;
            c.large_1g = false;
        })),
        [1, 0, 0, 0, 0]
    );
    // Even a 32-bit output address keeps 1G pages (2^30 < 2^32).
    let f = cfg(|c| c.oa_bits = 32);
    assert_eq!(f.oa_bits(), 32);
    assert_eq!(runs(f), [1, 1, 1, 0, 0]);
}

#[test]
fn hw_words() {
    let w = fmt().hw_words(0x12_3456_7000, 3);
    assert_eq!(
        w.as_slice(),
        &[("SSPTPTR", 0x12_3456_7000), ("AW", 2), ("SSADE", 0)]
    );
    let three = cfg(|c| c.levels = 3);
    assert_eq!(three.hw_words(0x1000, 2).get("AW"), Some(1));
    let five = cfg(|c| {
        c.levels = 5;
        c.dirty_tracking = true;
    });
    let w = five.hw_words(0x000f_ffff_ffff_f000, 4);
    assert_eq!(
        w.as_slice(),
        &[("SSPTPTR", 0x000f_ffff_ffff_f000), ("AW", 3), ("SSADE", 1)]
    );
}

#[test]
fn bad_configs() {
    let bad = |c: VtdSsConfig, msg: &'static str| {
        assert_eq!(VtdSs::new(c), Err(Error::BadConfig(msg)), "{c:?}");
    };
    let d = VtdSsConfig::default();
    for levels in [0, 2, 6] {
        bad(VtdSsConfig { levels, ..d }, "levels must be 3, 4 or 5");
    }
    bad(VtdSsConfig { oa_bits: 31, ..d }, "oa_bits must be 32..=52");
    bad(VtdSsConfig { oa_bits: 53, ..d }, "oa_bits must be 32..=52");
    // Every page-size and feature combination is buildable.
    for bits in 0..16u32 {
        let c = VtdSsConfig {
            large_2m: bits & 1 != 0,
            large_1g: bits & 2 != 0,
            force_coherence: bits & 4 != 0,
            dirty_tracking: bits & 8 != 0,
            ..d
        };
        assert!(VtdSs::new(c).is_ok(), "{c:?}");
    }
}

/// Through the engine: the entry bytes in simulated memory, tables allocated top-down
/// from the arena base (root at 0x4000_0000).
#[test]
fn end_to_end_entry_bytes() {
    let arena = ArenaMemory::new(0x4000_0000, 1 << 20);
    let pt = PageTable::new(fmt(), &arena, NoFlush).unwrap();
    let info = pt.info();
    assert_eq!(info.root_pa, 0x4000_0000);
    assert_eq!(info.pgsize_bitmap, 0x4020_1000);
    assert_eq!(
        (info.aperture.start, info.aperture.last),
        (0, 0xffff_ffff_ffff)
    );
    assert_eq!(info.hw.get("SSPTPTR"), Some(0x4000_0000));
    assert_eq!(info.hw.get("AW"), Some(2));
    // SAFETY: nothing else uses the table and no hardware walks it.
    unsafe {
        // 4K at 1G: top index 0, level-2 index 1, level-1 index 0, level-0 index 0.
        assert_eq!(
            pt.map_pages(0x4000_0000, 0x8000_0000, 0x1000, 1, RW),
            (0x1000, Ok(()))
        );
        // 2M at 2M, read-write: the same level-2 table (index 0), a new level-1 table.
        assert_eq!(
            pt.map_pages(0x20_0000, 0x1_0000_0000, 0x20_0000, 1, RW),
            (0x20_0000, Ok(()))
        );
        // 1G read-only at 512G: top index 1, a new level-2 table.
        assert_eq!(
            pt.map_pages(0x80_0000_0000, 0x1_4000_0000, 0x4000_0000, 1, Prot::READ),
            (0x4000_0000, Ok(()))
        );
    }
    let rd = |pa| arena.read_u64(pa).unwrap();
    // Root (level 3).
    assert_eq!(rd(0x4000_0000), 0x4000_1003);
    assert_eq!(rd(0x4000_0008), 0x4000_5003);
    // Level 2 under top index 0: entry 1 -> level-1 table, entry 0 -> another one.
    assert_eq!(rd(0x4000_1008), 0x4000_2003);
    assert_eq!(rd(0x4000_1000), 0x4000_4003);
    // Level 1 -> level 0 -> the 4K leaf.
    assert_eq!(rd(0x4000_2000), 0x4000_3003);
    assert_eq!(rd(0x4000_3000), 0x8000_0003);
    // The 2M leaf: entry 1 of the second level-1 table.
    assert_eq!(rd(0x4000_4008), 0x1_0000_0083);
    // The 1G leaf: entry 0 of the level-2 table under top index 1.
    assert_eq!(rd(0x4000_5000), 0x1_4000_0081);
    // Translations agree.
    // SAFETY: as above.
    let t = unsafe { pt.translate(0x80_1234_5678) }.unwrap();
    assert_eq!(
        (t.pa, t.size, t.prot, t.level),
        (0x1_5234_5678, 1 << 30, Prot::READ, 2)
    );
    // Unmapping zeroes the leaves (zero is empty: no stale R/W left behind).
    let mut g = Gather::new();
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            pt.unmap_pages(0x4000_0000, 0x1000, 1, &mut g),
            (0x1000, Ok(()))
        );
        pt.sync(&mut g);
    }
    assert_eq!(rd(0x4000_3000), 0);
}
