//! Golden descriptor values for the Apple DART formats, worked out by hand from Linux
//! `drivers/iommu/io-pgtable-dart.c` and `drivers/iommu/apple-dart.c`:
//!
//! - valid = bit 0; leaves carry the subpage window start 0 (bits 63:52) and end 0xfff
//!   (bits 51:40), i.e. `0x000f_ff00_0000_0000`.
//! - v1: address in place, bits 35:12; SP_DIS = 0x2 (every leaf), NO_WRITE = 0x80,
//!   NO_READ = 0x100. A read-write leaf is `0x000f_ff00_0000_0003 | pa`.
//! - v2: `(pa >> 4)` in bits 37:10; NO_CACHE = 0x2, NO_WRITE = 0x4, NO_READ = 0x8.
//! - tables: valid | address field, nothing else.
//! - T8020 TTBR: 0x8000_0000 | pa >> 12; TCR 0x80. T8110 TTBR: 1 | (pa >> 14) << 2; TCR
//!   0x1, plus 0x8 (FOUR_LEVEL) with three table levels.

use iopt::fmt::arm_lpae::Granule;
use iopt::fmt::dart::{Dart, DartConfig, DartRegs, DartVersion};
use iopt::mem::{ArenaMemory, TableMemory};
use iopt::{Error, Format, Gather, NoFlush, PageTable, Prot, Pte, VaMode};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const RWC: Prot = RW.union(Prot::CACHE);

/// M1: v1, 16K, ias 32, oas 36, T8020.
fn t8103() -> Dart {
    Dart::new(DartConfig::t8103()).unwrap()
}

/// An old 4K DART: v1, 4K, ias 32 (two table levels under four TTBRs), T8020.
fn v1_4k() -> Dart {
    Dart::new(DartConfig {
        granule: Granule::K4,
        ..DartConfig::t8103()
    })
    .unwrap()
}

/// M1 Pro/Max: v2, 16K, ias 32, oas 42, T8020.
fn t6000() -> Dart {
    Dart::new(DartConfig::t6000()).unwrap()
}

/// M2-style T8110 with a 36-bit IOVA: two levels, a full 2048-entry top.
fn t8110_36() -> Dart {
    Dart::new(DartConfig::t8110(36, 36)).unwrap()
}

/// T6020: T8110 registers with a 42-bit IOVA, three table levels.
fn t6020() -> Dart {
    Dart::new(DartConfig::t8110(42, 42)).unwrap()
}

fn leaf(pa: u64) -> Pte {
    Pte::Leaf { pa, run_lg2: 0 }
}

#[test]
fn defaults_and_presets() {
    let d = DartConfig::default();
    assert_eq!(d, DartConfig::t8103());
    assert_eq!(d.version, DartVersion::V1);
    assert_eq!(d.granule, Granule::K16);
    assert_eq!((d.ias, d.oas), (32, 36));
    assert_eq!(d.regs, DartRegs::T8020);
    let c = DartConfig::t6000();
    assert_eq!(
        (c.version, c.granule, c.ias, c.oas, c.regs),
        (DartVersion::V2, Granule::K16, 32, 42, DartRegs::T8020)
    );
    let c = DartConfig::t8110(42, 42);
    assert_eq!(
        (c.version, c.granule, c.ias, c.oas, c.regs),
        (DartVersion::V2, Granule::K16, 42, 42, DartRegs::T8110)
    );
    assert_eq!(Dart::NAME, "dart");
    assert_eq!(Dart::ENTRY_LG2, 3);
    assert_eq!(Dart::MAX_LEVELS, 3);
    assert_eq!(t8103().config(), DartConfig::t8103());
}

#[test]
fn geometry() {
    /// Format, levels, item_lg2 per level, table_lg2, top va_bits, TTBRs, Linux levels.
    type Case = (Dart, u32, &'static [u32], u32, u32, u32, u32);
    let cases: [Case; 5] = [
        (t8103(), 2, &[14, 25], 11, 32, 1, 3),
        (v1_4k(), 2, &[12, 21], 9, 32, 4, 3),
        (t6000(), 2, &[14, 25], 11, 32, 1, 3),
        (t8110_36(), 2, &[14, 25], 11, 36, 1, 3),
        (t6020(), 3, &[14, 25, 36], 11, 42, 1, 4),
    ];
    for (f, levels, items, table, va, ttbrs, linux) in cases {
        let name = format!("{:?}", f.config());
        assert_eq!(f.levels(), levels, "{name}");
        assert_eq!(f.max_levels(), levels, "{name}");
        assert_eq!(f.va_bits(levels - 1), va, "{name}");
        assert_eq!(f.va_mode(), VaMode::Low, "{name}");
        assert_eq!(f.oa_bits(), f.config().oas, "{name}");
        assert_eq!(f.ttbrs(), ttbrs, "{name}");
        assert_eq!(f.linux_levels(), linux, "{name}");
        // Every table (the top too) is at least one granule.
        assert_eq!(f.min_table_bytes_lg2(), items[0], "{name}");
        for l in 0..levels {
            assert_eq!(f.item_lg2(l), items[l as usize], "{name} item {l}");
            assert_eq!(f.table_lg2(l), table, "{name} table {l}");
            // Pages at the last level only: no blocks, no runs.
            assert_eq!(f.leaf_runs(l), u32::from(l == 0), "{name} runs {l}");
        }
    }
    // Top tables: t8103 indexes IOVA bits 31:25 (128 entries, in a 16 KiB table); the
    // 4K DART bits 31:21 (2048 entries = four 4 KiB first-level tables, one per TTBR);
    // T8110/36 bits 35:25 (2048); T6020 bits 41:36 (64).
    assert_eq!(t8103().va_bits(1) - t8103().item_lg2(1), 7);
    assert_eq!(v1_4k().va_bits(1) - v1_4k().item_lg2(1), 11);
    assert_eq!(t8110_36().va_bits(1) - t8110_36().item_lg2(1), 11);
    assert_eq!(t6020().va_bits(2) - t6020().item_lg2(2), 6);
    // Below the top, a table is a full granule.
    assert_eq!(t6020().va_bits(1), 36);
    assert_eq!(t6020().va_bits(0), 25);
    // Other widths.
    for (cfg, levels, ttbrs) in [
        (
            DartConfig {
                ias: 36,
                ..DartConfig::t8103()
            },
            2,
            1,
        ),
        (
            DartConfig {
                ias: 36,
                ..DartConfig::t6000()
            },
            2,
            1,
        ),
        (DartConfig::t8110(37, 42), 3, 1),
        (DartConfig::t8110(32, 36), 2, 1),
    ] {
        let f = Dart::new(cfg).unwrap();
        assert_eq!((f.levels(), f.ttbrs()), (levels, ttbrs), "{cfg:?}");
        assert_eq!(f.va_bits(levels - 1), cfg.ias, "{cfg:?}");
    }
    // Page steps: v1 in place, v2 shifted right by 4.
    assert_eq!(t8103().run_step(0, 0), 0x4000);
    assert_eq!(v1_4k().run_step(0, 0), 0x1000);
    assert_eq!(t6000().run_step(0, 0), 0x400);
}

#[test]
fn table_entries() {
    let cases = [
        (t8103(), 1, 0x8_0000_4000, 0x8_0000_4001),
        (t8103(), 1, 0xf_ffff_c000, 0xf_ffff_c001),
        (v1_4k(), 1, 0x4000_1000, 0x4000_1001),
        (v1_4k(), 1, 0xf_ffff_f000, 0xf_ffff_f001),
        (t6000(), 1, 0x8_0000_4000, 0x8000_0401),
        (t6000(), 1, 0x3ff_ffff_c000, 0x3f_ffff_fc01),
        (t6020(), 2, 0x1_2345_c000, 0x1234_5c01),
        (t6020(), 1, 0x3ff_ffff_c000, 0x3f_ffff_fc01),
        (t8110_36(), 1, 0xf_ffff_c000, 0xffff_fc01),
    ];
    for (f, level, pa, pte) in cases {
        assert_eq!(f.make_table(level, pa), pte, "{level} {pa:#x}");
        assert_eq!(f.decode(level, pte), Pte::Table { pa }, "{level} {pa:#x}");
    }
}

#[test]
fn v1_leaves() {
    let f = t8103();
    let cases: [(u64, Prot, u64); 5] = [
        (0x8_1234_4000, RW, 0x000f_ff08_1234_4003),
        (0x8_1234_4000, Prot::READ, 0x000f_ff08_1234_4083),
        (0x8_1234_4000, Prot::WRITE, 0x000f_ff08_1234_4103),
        (0, RW, 0x000f_ff00_0000_0003),
        // Highest output address (36 bits, 16K pages).
        (0xf_ffff_c000, RW, 0x000f_ff0f_ffff_c003),
    ];
    for (pa, prot, pte) in cases {
        assert_eq!(f.make_leaf(0, pa, 0, prot), pte, "{pa:#x} {prot:?}");
        assert_eq!(f.decode(0, pte), leaf(pa));
        assert_eq!(f.leaf_prot(0, pte), prot);
    }
    let f = v1_4k();
    for (pa, prot, pte) in [
        (0x1234_5000, RW, 0x000f_ff00_1234_5003),
        (0x1234_5000, Prot::READ, 0x000f_ff00_1234_5083),
        (0xf_ffff_f000, Prot::WRITE, 0x000f_ff0f_ffff_f103),
    ] {
        assert_eq!(f.make_leaf(0, pa, 0, prot), pte, "{pa:#x} {prot:?}");
        assert_eq!(f.decode(0, pte), leaf(pa));
        assert_eq!(f.leaf_prot(0, pte), prot);
    }
}

#[test]
fn v2_leaves() {
    let f = t6000();
    let cases: [(u64, Prot, u64); 8] = [
        (0x3_4567_8000, RWC, 0x000f_ff00_3456_7801),
        (0x3_4567_8000, RW, 0x000f_ff00_3456_7803),
        (
            0x3_4567_8000,
            Prot::READ | Prot::CACHE,
            0x000f_ff00_3456_7805,
        ),
        (0x3_4567_8000, Prot::READ, 0x000f_ff00_3456_7807),
        (
            0x3_4567_8000,
            Prot::WRITE | Prot::CACHE,
            0x000f_ff00_3456_7809,
        ),
        (0x3_4567_8000, Prot::WRITE, 0x000f_ff00_3456_780b),
        (0, RWC, 0x000f_ff00_0000_0001),
        // Highest output address (42 bits, 16K pages).
        (0x3ff_ffff_c000, RWC, 0x000f_ff3f_ffff_fc01),
    ];
    for (pa, prot, pte) in cases {
        assert_eq!(f.make_leaf(0, pa, 0, prot), pte, "{pa:#x} {prot:?}");
        assert_eq!(f.decode(0, pte), leaf(pa));
        assert_eq!(f.leaf_prot(0, pte), prot);
    }
    // The same entries under T8110 registers and three levels.
    assert_eq!(
        t6020().make_leaf(0, 0x3_4567_8000, 0, RW),
        0x000f_ff00_3456_7803
    );
    assert_eq!(
        t8110_36().make_leaf(0, 0xf_ffff_c000, 0, RWC),
        0x000f_ff00_ffff_fc01
    );
}

#[test]
fn ignored_prot_bits() {
    // v1: CACHE, NOEXEC, MMIO and PRIV have no encoding.
    let f = t8103();
    for extra in [Prot::CACHE, Prot::NOEXEC, Prot::MMIO, Prot::PRIV] {
        assert_eq!(
            f.make_leaf(0, 0x8_1234_4000, 0, RW | extra),
            0x000f_ff08_1234_4003
        );
        assert_eq!(
            f.make_leaf(0, 0x8_1234_4000, 0, Prot::READ | extra),
            0x000f_ff08_1234_4083
        );
    }
    // v2: NOEXEC, MMIO and PRIV have no encoding (CACHE has: NO_CACHE).
    let f = t6000();
    for extra in [Prot::NOEXEC, Prot::MMIO, Prot::PRIV] {
        assert_eq!(
            f.make_leaf(0, 0x3_4567_8000, 0, RW | extra),
            0x000f_ff00_3456_7803
        );
        assert_eq!(
            f.make_leaf(0, 0x3_4567_8000, 0, RWC | extra),
            0x000f_ff00_3456_7801
        );
    }
    // Both refused: an entry that allows nothing (the engine never asks for one).
    assert_eq!(t8103().leaf_prot(0, 0x000f_ff08_1234_4183), Prot::empty());
    assert_eq!(t6000().leaf_prot(0, 0x000f_ff00_3456_780f), Prot::empty());
}

#[test]
fn decode_details() {
    for f in [t8103(), v1_4k(), t6000(), t6020()] {
        for level in 0..f.levels() {
            assert_eq!(f.decode(level, 0), Pte::Empty);
        }
    }
    let f = t8103();
    // Valid bit clear: empty, whatever else is set.
    assert_eq!(f.decode(0, 0x000f_ff08_1234_4002), Pte::Empty);
    assert_eq!(f.decode(1, 0x8_0000_4000), Pte::Empty);
    // v1 16K page: address bits 13:12 are not part of the page.
    assert_eq!(f.decode(0, 0x000f_ff08_1234_7003), leaf(0x8_1234_4000));
    // Above level 0 every valid entry is a table, whatever its other bits.
    assert_eq!(
        f.decode(1, 0x000f_ff08_1234_4003),
        Pte::Table { pa: 0x8_1234_4000 }
    );
    // v2: the subpage fields and bits 38..39 are not address bits.
    let f = t6000();
    assert_eq!(f.decode(0, 0xfff0_00c0_3456_7801), leaf(0x3_4567_8000));
}

#[test]
fn hw_words() {
    // t8103: one TTBR, the other three cleared.
    let w = t8103().hw_words(0x8_0000_4000, 1);
    assert_eq!(
        w.as_slice(),
        &[
            ("TTBR0", 0x8080_0004),
            ("TTBR1", 0),
            ("TTBR2", 0),
            ("TTBR3", 0),
            ("TCR", 0x80)
        ]
    );
    // 4K: four TTBRs, one per 4 KiB table of the 16 KiB top.
    let w = v1_4k().hw_words(0x8_0001_0000, 1);
    assert_eq!(
        w.as_slice(),
        &[
            ("TTBR0", 0x8080_0010),
            ("TTBR1", 0x8080_0011),
            ("TTBR2", 0x8080_0012),
            ("TTBR3", 0x8080_0013),
            ("TCR", 0x80)
        ]
    );
    // t6000: T8020 registers, a 42-bit table address.
    let w = t6000().hw_words(0x3ff_ffff_c000, 1);
    assert_eq!(w.get("TTBR0"), Some(0xbfff_fffc));
    assert_eq!(w.get("TTBR3"), Some(0));
    assert_eq!(w.get("TCR"), Some(0x80));
    // T8110: one TTBR; FOUR_LEVEL only with three table levels.
    let w = t8110_36().hw_words(0x8_0000_4000, 1);
    assert_eq!(w.as_slice(), &[("TTBR0", 0x80_0005), ("TCR", 0x1)]);
    let w = t6020().hw_words(0x3ff_ffff_c000, 2);
    assert_eq!(w.as_slice(), &[("TTBR0", 0x3fff_fffd), ("TCR", 0x9)]);
}

#[test]
fn bad_configs() {
    let bad = |cfg: DartConfig, msg: &'static str| {
        assert_eq!(Dart::new(cfg), Err(Error::BadConfig(msg)), "{cfg:?}");
    };
    let v1 = DartConfig::t8103();
    let v2 = DartConfig::t6000();
    bad(
        DartConfig {
            granule: Granule::K64,
            ..v1
        },
        "granule must be 4K or 16K",
    );
    for oas in [32, 35, 37, 40, 41, 43, 48] {
        bad(DartConfig { oas, ..v2 }, "oas must be 36 or 42");
    }
    bad(
        DartConfig { oas: 42, ..v1 },
        "DART v1 oas must be 36 (entries hold address bits 35:12)",
    );
    bad(
        DartConfig {
            granule: Granule::K4,
            ..v2
        },
        "DART v2 needs the 16K granule (entries hold address bits 41:14)",
    );
    bad(
        DartConfig {
            granule: Granule::K4,
            regs: DartRegs::T8110,
            ..v1
        },
        "T8110 registers need the 16K granule (TTBRs hold address bits 43:14)",
    );
    // The message says which oas bounds ias (often the version's default).
    let ias36 = "ias must be 32..=oas (oas is 36 here)";
    let ias42 = "ias must be 32..=oas (oas is 42 here)";
    bad(DartConfig { ias: 31, ..v1 }, ias36);
    bad(DartConfig { ias: 0, ..v2 }, ias42);
    bad(DartConfig { ias: 37, ..v1 }, ias36);
    bad(DartConfig { ias: 43, ..v2 }, ias42);
    bad(DartConfig::t8110(42, 36), ias36);
    bad(DartConfig::t8110(64, 42), ias42);
    let t8020 = "T8020 registers have no 4-level mode: ias must be at most 32 (4K) or 36 (16K)";
    bad(DartConfig { ias: 37, ..v2 }, t8020);
    bad(DartConfig { ias: 42, ..v2 }, t8020);
    bad(
        DartConfig {
            granule: Granule::K4,
            ias: 33,
            ..v1
        },
        t8020,
    );
    // The limits themselves are accepted.
    for cfg in [
        DartConfig { ias: 36, ..v1 },
        DartConfig { ias: 36, ..v2 },
        DartConfig::t8110(32, 42),
        DartConfig::t8110(42, 42),
        DartConfig {
            version: DartVersion::V1,
            ..DartConfig::t8110(36, 36)
        },
    ] {
        assert!(Dart::new(cfg).is_ok(), "{cfg:?}");
    }
}

/// Reads the 64-bit entry at `pa` of the arena.
fn entry(mem: &ArenaMemory, pa: u64) -> u64 {
    mem.read_u64(pa).expect("inside the arena")
}

/// End to end on the 4K DART: the top is four first-level tables, one per TTBR; a map
/// in the TTBR3 quarter writes through the fourth one.
#[test]
fn through_page_table_4k_four_ttbrs() {
    let mem = ArenaMemory::new(0x4000_0000, 1 << 20);
    let pt = PageTable::new(v1_4k(), &mem, NoFlush).unwrap();
    let info = pt.info();
    assert_eq!(info.root_pa, 0x4000_0000);
    assert_eq!(info.pgsize_bitmap, 0x1000);
    assert_eq!((info.aperture.start, info.aperture.last), (0, 0xffff_ffff));
    // The top is one 16 KiB block.
    assert_eq!(mem.stats().bytes, 0x4000);
    let ttbrs = [0x8004_0000, 0x8004_0001, 0x8004_0002, 0x8004_0003];
    for (i, t) in ttbrs.into_iter().enumerate() {
        assert_eq!(
            info.hw.get(["TTBR0", "TTBR1", "TTBR2", "TTBR3"][i]),
            Some(t)
        );
    }
    // SAFETY: this thread alone uses the table; no hardware walks it.
    unsafe {
        // IOVA 0xc020_3000: TTBR 3, first-level index 1, page index 3.
        assert_eq!(
            pt.map_pages(0xc020_3000, 0x8_7654_3000, 0x1000, 1, RW),
            (0x1000, Ok(()))
        );
        // IOVA 0x1000: TTBR 0, index 0, page index 1, read-only.
        assert_eq!(
            pt.map_pages(0x1000, 0x5000, 0x1000, 1, Prot::READ),
            (0x1000, Ok(()))
        );
    }
    // TTBR3's table is the fourth 4 KiB of the top; its entry 1 points to the first
    // leaf table (the next 4 KiB of the arena), whose entry 3 is the page.
    assert_eq!(entry(&mem, 0x4000_3008), 0x4000_4001);
    assert_eq!(entry(&mem, 0x4000_4018), 0x000f_ff08_7654_3003);
    assert_eq!(entry(&mem, 0x4000_0000), 0x4000_5001);
    assert_eq!(entry(&mem, 0x4000_5008), 0x000f_ff00_0000_5083);
    // The TTBR words did not move.
    assert_eq!(pt.info().hw, info.hw);
    // SAFETY: as above.
    unsafe {
        assert_eq!(pt.iova_to_phys(0xc020_3abc), Some(0x8_7654_3abc));
        let mut g = Gather::new();
        assert_eq!(
            pt.unmap_pages(0xc020_3000, 0x1000, 1, &mut g),
            (0x1000, Ok(()))
        );
        pt.sync(&mut g);
    }
    assert_eq!(entry(&mem, 0x4000_4018), 0);
    assert_eq!(pt.info().hw, info.hw);
}

/// End to end on T6020 (v2 entries, three levels, T8110 registers).
#[test]
fn through_page_table_t6020() {
    let mem = ArenaMemory::new(0x4000_0000, 1 << 20);
    let pt = PageTable::new(t6020(), &mem, NoFlush).unwrap();
    let info = pt.info();
    assert_eq!(info.root_pa, 0x4000_0000);
    assert_eq!(info.pgsize_bitmap, 0x4000);
    assert_eq!(info.aperture.last, 0x3ff_ffff_ffff);
    // The 64-entry top still takes a whole 16 KiB granule.
    assert_eq!(mem.stats().bytes, 0x4000);
    // 0x4000_0000 >> 14 = 0x1_0000; << 2 = 0x4_0000; | valid.
    assert_eq!(info.hw.get("TTBR0"), Some(0x4_0001));
    assert_eq!(info.hw.get("TCR"), Some(0x9));
    // SAFETY: this thread alone uses the table; no hardware walks it.
    unsafe {
        // IOVA 0x123_4567_c000: top index 0x12, level-1 index 0x1a2, page index 0x59f.
        assert_eq!(
            pt.map_pages(0x123_4567_c000, 0x2_0000_c000, 0x4000, 1, RW),
            (0x4000, Ok(()))
        );
    }
    assert_eq!(entry(&mem, 0x4000_0090), 0x0400_0401);
    assert_eq!(entry(&mem, 0x4000_4d10), 0x0400_0801);
    assert_eq!(entry(&mem, 0x4000_acf8), 0x000f_ff00_2000_0c03);
    // SAFETY: as above.
    unsafe {
        let t = pt.translate(0x123_4567_c010).unwrap();
        assert_eq!(
            (t.pa, t.size, t.prot, t.level),
            (0x2_0000_c010, 0x4000, RW, 0)
        );
    }
}
