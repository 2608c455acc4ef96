//! Golden values for the ARM64 LPAE format, computed by hand from the Arm ARM
//! (VMSAv8-64 descriptor, TCR_EL1, VTCR_EL2 layouts) and Linux io-pgtable-arm.c.
//!
//! Descriptor bits used below: valid/type 1:0 (0b11 table or page, 0b01 block),
//! AttrIndx 4:2 / MemAttr 5:2, NS 5, AP 7:6 / S2AP 7:6, SH 9:8 (0x200 outer, 0x300 inner),
//! AF 10 (0x400), nG 11 (0x800), contiguous 52 (0x0010_0000_0000_0000),
//! PXN|UXN 53,54 (0x0060_0000_0000_0000), NSTable 63.

use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig, Granule, Stage};
use iopt::{Error, Format, Prot, Pte, VaMode};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const CONT: u64 = 0x0010_0000_0000_0000;
const XN: u64 = 0x0060_0000_0000_0000;

fn fmt(stage: Stage, granule: Granule, ias: u32, oas: u32) -> ArmLpae {
    ArmLpae::new(ArmLpaeConfig {
        stage,
        granule,
        ias,
        oas,
        ..ArmLpaeConfig::default()
    })
    .unwrap()
}

fn s1_4k() -> ArmLpae {
    ArmLpae::new(ArmLpaeConfig::default()).unwrap()
}

fn leaf(pa: u64, run_lg2: u32) -> Pte {
    Pte::Leaf { pa, run_lg2 }
}

fn bad(cfg: ArmLpaeConfig) -> &'static str {
    match ArmLpae::new(cfg) {
        Err(Error::BadConfig(m)) => m,
        other => panic!("expected BadConfig, got {other:?}"),
    }
}

/// (levels, start level, item_lg2 per level from 0, va_bits, leaf_runs per level from 0)
fn check_geometry(f: &ArmLpae, levels: u32, items: &[u32], va: u32, runs: &[u32]) {
    assert_eq!(f.levels(), levels);
    assert_eq!(f.max_levels(), levels);
    assert_eq!(f.start_level_arm(), 4 - levels);
    assert_eq!(f.va_bits(levels - 1), va);
    for (l, &it) in items.iter().enumerate() {
        assert_eq!(f.item_lg2(l as u32), it, "item_lg2({l})");
    }
    for (l, &r) in runs.iter().enumerate() {
        assert_eq!(f.leaf_runs(l as u32), r, "leaf_runs({l})");
    }
}

#[test]
fn config_default() {
    let c = ArmLpaeConfig::default();
    assert_eq!(c.stage, Stage::S1);
    assert_eq!(c.granule, Granule::K4);
    assert_eq!((c.ias, c.oas), (48, 48));
    assert!(c.contiguous && c.coherent_walk && !c.ttbr1 && !c.ns);
    assert_eq!(ArmLpae::NAME, "arm64-lpae");
    assert_eq!(ArmLpae::ENTRY_LG2, 3);
    assert_eq!(ArmLpae::MAX_LEVELS, 4);
}

// ---------------------------------------------------------------- geometry

#[test]
fn geometry_stage1() {
    // 4K: 9 bits per level; 2M and 1G blocks; 16-entry contiguous runs everywhere.
    let f = s1_4k();
    check_geometry(&f, 4, &[12, 21, 30, 39], 48, &[0x11, 0x11, 0x11, 0]);
    for l in 0..4 {
        assert_eq!(f.table_lg2(l), 9);
    }
    assert_eq!(f.oa_bits(), 48);
    assert_eq!(f.va_mode(), VaMode::Low);
    assert_eq!(f.min_table_bytes_lg2(), 6);
    // 4K ias 39: exactly three full levels, start at ARM level 1.
    let f = fmt(Stage::S1, Granule::K4, 39, 40);
    check_geometry(&f, 3, &[12, 21, 30], 39, &[0x11, 0x11, 0x11]);
    // 4K ias 40: stage 1 does not concatenate, 4 levels with a 2-entry top.
    let f = fmt(Stage::S1, Granule::K4, 40, 48);
    check_geometry(&f, 4, &[12, 21, 30, 39], 40, &[0x11, 0x11, 0x11, 0]);
    // 4K ias 32: 3 levels, top (1G) has 4 entries: a 16-entry run cannot fit there.
    let f = fmt(Stage::S1, Granule::K4, 32, 32);
    check_geometry(&f, 3, &[12, 21, 30], 32, &[0x11, 0x11, 0x01]);
    assert_eq!(f.oa_bits(), 32);

    // 16K: 11 bits per level; 32M blocks; runs of 128 pages, 32 blocks.
    let f = fmt(Stage::S1, Granule::K16, 48, 48);
    check_geometry(&f, 4, &[14, 25, 36, 47], 48, &[0x81, 0x21, 0, 0]);
    assert_eq!(f.table_lg2(1), 11);
    let f = fmt(Stage::S1, Granule::K16, 36, 48);
    check_geometry(&f, 2, &[14, 25], 36, &[0x81, 0x21]);
    let f = fmt(Stage::S1, Granule::K16, 47, 48);
    check_geometry(&f, 3, &[14, 25, 36], 47, &[0x81, 0x21, 0]);

    // 64K: 13 bits per level; 512M blocks; runs of 32.
    let f = fmt(Stage::S1, Granule::K64, 48, 48);
    check_geometry(&f, 3, &[16, 29, 42], 48, &[0x21, 0x21, 0]);
    assert_eq!(f.table_lg2(0), 13);
    let f = fmt(Stage::S1, Granule::K64, 42, 48);
    check_geometry(&f, 2, &[16, 29], 42, &[0x21, 0x21]);
    // 64K ias 32: the 512M top has only 8 entries.
    let f = fmt(Stage::S1, Granule::K64, 32, 32);
    check_geometry(&f, 2, &[16, 29], 32, &[0x21, 0x01]);

    // contiguous off: single entries only.
    let f = ArmLpae::new(ArmLpaeConfig {
        contiguous: false,
        ..ArmLpaeConfig::default()
    })
    .unwrap();
    check_geometry(&f, 4, &[12, 21, 30, 39], 48, &[1, 1, 1, 0]);
}

#[test]
fn geometry_stage2_concatenation() {
    // 4K ias 40: would start at ARM level 0 with 2 entries -> 2 tables at level 1.
    let f = fmt(Stage::S2, Granule::K4, 40, 48);
    check_geometry(&f, 3, &[12, 21, 30], 40, &[0x11, 0x11, 0x11]);
    assert_eq!(f.start_level_arm(), 1);
    // top entries = 2^(va_bits - item_lg2(top)) = 2^10 = 2 x 512
    assert_eq!(f.va_bits(2) - f.item_lg2(2), 10);
    // 4K ias 42 oas 42: 8 tables at level 1.
    let f = fmt(Stage::S2, Granule::K4, 42, 42);
    check_geometry(&f, 3, &[12, 21, 30], 42, &[0x11, 0x11, 0x11]);
    assert_eq!(f.va_bits(2) - f.item_lg2(2), 12);
    // 4K ias 43: 16 tables, the most allowed.
    let f = fmt(Stage::S2, Granule::K4, 43, 48);
    check_geometry(&f, 3, &[12, 21, 30], 43, &[0x11, 0x11, 0x11]);
    // 4K ias 44 oas 44: 32 entries at level 0 -> no concatenation, 4 levels.
    let f = fmt(Stage::S2, Granule::K4, 44, 44);
    check_geometry(&f, 4, &[12, 21, 30, 39], 44, &[0x11, 0x11, 0x11, 0]);
    // 4K ias 48: 4 levels, start level 0.
    let f = fmt(Stage::S2, Granule::K4, 48, 48);
    check_geometry(&f, 4, &[12, 21, 30, 39], 48, &[0x11, 0x11, 0x11, 0]);
    // 4K ias 32: starts at level 1 with 4 entries (only level 0 is concatenated away).
    let f = fmt(Stage::S2, Granule::K4, 32, 32);
    check_geometry(&f, 3, &[12, 21, 30], 32, &[0x11, 0x11, 0x01]);

    // 16K ias 48: never level 0 at stage 2 -> 2 tables at level 1.
    let f = fmt(Stage::S2, Granule::K16, 48, 48);
    check_geometry(&f, 3, &[14, 25, 36], 48, &[0x81, 0x21, 0]);
    assert_eq!(f.va_bits(2) - f.item_lg2(2), 12);
    // 16K ias 40 oas 48: level 1 start is fine.
    let f = fmt(Stage::S2, Granule::K16, 40, 48);
    check_geometry(&f, 3, &[14, 25, 36], 40, &[0x81, 0x21, 0]);
    // 16K ias 40 oas 40: level 1 not allowed -> 16 tables at level 2.
    let f = fmt(Stage::S2, Granule::K16, 40, 40);
    check_geometry(&f, 2, &[14, 25], 40, &[0x81, 0x21]);
    assert_eq!(f.va_bits(1) - f.item_lg2(1), 15);

    // 64K ias 48 oas 48: start level 1 with 64 entries.
    let f = fmt(Stage::S2, Granule::K64, 48, 48);
    check_geometry(&f, 3, &[16, 29, 42], 48, &[0x21, 0x21, 0]);
    // 64K ias 44 oas 42: level 1 not allowed -> 4 tables at level 2.
    let f = fmt(Stage::S2, Granule::K64, 44, 42);
    check_geometry(&f, 2, &[16, 29], 44, &[0x21, 0x21]);
    assert_eq!(f.va_bits(1) - f.item_lg2(1), 15);
    let f = fmt(Stage::S2, Granule::K64, 32, 32);
    check_geometry(&f, 2, &[16, 29], 32, &[0x21, 0x01]);
}

// ---------------------------------------------------------------- stage 1 entries

#[test]
fn s1_4k_tables() {
    let f = s1_4k();
    for l in 1..4 {
        assert_eq!(f.make_table(l, 0x8000_1000), 0x8000_1003);
        assert_eq!(f.decode(l, 0x8000_1003), Pte::Table { pa: 0x8000_1000 });
    }
    // Highest table address.
    assert_eq!(f.make_table(3, 0xffff_ffff_f000), 0x0000_ffff_ffff_f003);
    assert_eq!(
        f.decode(3, 0x0000_ffff_ffff_f003),
        Pte::Table {
            pa: 0xffff_ffff_f000
        }
    );
    // Table attribute bits (APTable, NSTable...) are not part of the address.
    assert_eq!(
        f.decode(2, 0xe000_0000_8000_1003),
        Pte::Table { pa: 0x8000_1000 }
    );
}

#[test]
fn s1_4k_leaves_and_prot() {
    let f = s1_4k();
    let pa = 0x1234_5000;
    // (prot, page value, prot decoded back)
    let cases: &[(Prot, u64, Prot)] = &[
        (RW, 0x1234_5e43, RW),
        (Prot::READ, 0x1234_5ec3, Prot::READ),
        // write-only is not expressible at stage 1: read-write
        (Prot::WRITE, 0x1234_5e43, RW),
        (RW | Prot::NOEXEC, XN | 0x1234_5e43, RW | Prot::NOEXEC),
        (RW | Prot::PRIV, 0x1234_5e03, RW | Prot::PRIV),
        (RW | Prot::CACHE, 0x1234_5f47, RW | Prot::CACHE),
        (RW | Prot::MMIO, 0x1234_5e4b, RW | Prot::MMIO),
        (
            RW | Prot::MMIO | Prot::CACHE,
            0x1234_5f4b,
            RW | Prot::MMIO | Prot::CACHE,
        ),
        (
            Prot::READ | Prot::CACHE | Prot::NOEXEC | Prot::PRIV,
            XN | 0x1234_5f87,
            Prot::READ | Prot::CACHE | Prot::NOEXEC | Prot::PRIV,
        ),
    ];
    for &(prot, want, back) in cases {
        let pte = f.make_leaf(0, pa, 0, prot);
        assert_eq!(pte, want, "{prot:?}");
        assert_eq!(f.decode(0, pte), leaf(pa, 0));
        assert_eq!(f.leaf_prot(0, pte), back, "{prot:?}");
    }
    // 2M block at level 1, 1G block at level 2.
    assert_eq!(f.make_leaf(1, 0x4020_0000, 0, RW), 0x4020_0e41);
    assert_eq!(f.decode(1, 0x4020_0e41), leaf(0x4020_0000, 0));
    assert_eq!(f.leaf_prot(1, 0x4020_0e41), RW);
    assert_eq!(
        f.make_leaf(2, 0x80_4000_0000, 0, Prot::READ | Prot::CACHE),
        0x0000_0080_4000_0fc5
    );
    assert_eq!(f.decode(2, 0x0000_0080_4000_0fc5), leaf(0x80_4000_0000, 0));
    assert_eq!(
        f.leaf_prot(2, 0x0000_0080_4000_0fc5),
        Prot::READ | Prot::CACHE
    );
    // Highest output address (oas 48).
    assert_eq!(
        f.make_leaf(0, 0xffff_ffff_f000, 0, RW),
        0x0000_ffff_ffff_fe43
    );
    assert_eq!(
        f.decode(0, 0x0000_ffff_ffff_fe43),
        leaf(0xffff_ffff_f000, 0)
    );
    assert_eq!(
        f.make_leaf(2, 0xffff_c000_0000, 0, RW),
        0x0000_ffff_c000_0e41
    );
    assert_eq!(
        f.decode(2, 0x0000_ffff_c000_0e41),
        leaf(0xffff_c000_0000, 0)
    );
}

#[test]
fn s1_4k_decode_reserved() {
    let f = s1_4k();
    assert_eq!(f.decode(0, 0), Pte::Empty);
    assert_eq!(f.decode(2, 0), Pte::Empty);
    // valid bit clear
    assert_eq!(f.decode(0, 0x1234_5e42), Pte::Empty);
    assert_eq!(f.decode(1, 0x8000_1002), Pte::Empty);
    // 0b01 at ARM level 3 is reserved
    assert_eq!(f.decode(0, 0x1234_5e41), Pte::Empty);
    // no 512G blocks at ARM level 0
    assert_eq!(f.decode(3, 0x0000_8000_0000_0e41), Pte::Empty);
}

#[test]
fn s1_4k_contiguous() {
    let f = s1_4k();
    // 16 x 4K = 64K at level 0.
    assert_eq!(f.run_step(0, 4), 0x1000);
    let first = f.make_leaf(0, 0x4567_0000, 4, RW);
    assert_eq!(first, CONT | 0x4567_0e43);
    assert_eq!(first + 5 * f.run_step(0, 4), 0x0010_0000_4567_5e43);
    assert_eq!(f.decode(0, 0x0010_0000_4567_0e43), leaf(0x4567_0000, 4));
    assert_eq!(f.decode(0, 0x0010_0000_4567_5e43), leaf(0x4567_0000, 4));
    assert_eq!(f.decode(0, 0x0010_0000_4567_fe43), leaf(0x4567_0000, 4));
    assert_eq!(f.leaf_prot(0, 0x0010_0000_4567_5e43), RW);
    // 16 x 2M = 32M at level 1.
    assert_eq!(f.run_step(1, 4), 0x20_0000);
    assert_eq!(f.make_leaf(1, 0x4200_0000, 4, RW), 0x0010_0000_4200_0e41);
    assert_eq!(
        0x0010_0000_4200_0e41 + 15 * f.run_step(1, 4),
        0x0010_0000_43e0_0e41
    );
    assert_eq!(f.decode(1, 0x0010_0000_43e0_0e41), leaf(0x4200_0000, 4));
    // 16 x 1G = 16G at level 2.
    assert_eq!(f.run_step(2, 4), 0x4000_0000);
    assert_eq!(f.make_leaf(2, 0x4_0000_0000, 4, RW), 0x0010_0004_0000_0e41);
    assert_eq!(
        0x0010_0004_0000_0e41 + 3 * f.run_step(2, 4),
        0x0010_0004_c000_0e41
    );
    assert_eq!(f.decode(2, 0x0010_0004_c000_0e41), leaf(0x4_0000_0000, 4));
    // Highest contiguous run.
    assert_eq!(
        f.make_leaf(0, 0xffff_ffff_0000, 4, RW),
        0x0010_ffff_ffff_0e43
    );
    assert_eq!(
        f.decode(0, 0x0010_ffff_ffff_fe43),
        leaf(0xffff_ffff_0000, 4)
    );
}

#[test]
fn s1_ns() {
    let f = ArmLpae::new(ArmLpaeConfig {
        ns: true,
        ..ArmLpaeConfig::default()
    })
    .unwrap();
    assert_eq!(f.make_table(1, 0x8000_1000), 0x8000_0000_8000_1003);
    assert_eq!(
        f.decode(1, 0x8000_0000_8000_1003),
        Pte::Table { pa: 0x8000_1000 }
    );
    assert_eq!(f.make_leaf(0, 0x1234_5000, 0, RW), 0x1234_5e63);
    assert_eq!(f.make_leaf(1, 0x4020_0000, 0, Prot::READ), 0x4020_0ee1);
    assert_eq!(
        f.make_leaf(0, 0x1234_5000, 0, RW | Prot::CACHE),
        0x1234_5f67
    );
    assert_eq!(f.decode(0, 0x1234_5e63), leaf(0x1234_5000, 0));
    assert_eq!(f.leaf_prot(0, 0x1234_5e63), RW);
}

#[test]
fn s1_16k_entries() {
    let f = fmt(Stage::S1, Granule::K16, 48, 48);
    assert_eq!(f.make_table(3, 0x8000_4000), 0x8000_4003);
    assert_eq!(f.decode(3, 0x8000_4003), Pte::Table { pa: 0x8000_4000 });
    assert_eq!(f.decode(1, 0x8000_4003), Pte::Table { pa: 0x8000_4000 });
    // page 16K
    assert_eq!(f.make_leaf(0, 0x1234_4000, 0, RW), 0x1234_4e43);
    assert_eq!(f.decode(0, 0x1234_4e43), leaf(0x1234_4000, 0));
    assert_eq!(
        f.make_leaf(0, 0x1234_4000, 0, Prot::READ | Prot::MMIO | Prot::NOEXEC),
        XN | 0x1234_4ecb
    );
    assert_eq!(
        f.leaf_prot(0, XN | 0x1234_4ecb),
        Prot::READ | Prot::MMIO | Prot::NOEXEC
    );
    // 32M block
    assert_eq!(f.make_leaf(1, 0x4200_0000, 0, RW), 0x4200_0e41);
    assert_eq!(f.decode(1, 0x4200_0e41), leaf(0x4200_0000, 0));
    // no 64G blocks at ARM level 1
    assert_eq!(f.decode(2, 0x10_0000_0e41), Pte::Empty);
    // 128 x 16K = 2M
    assert_eq!(f.run_step(0, 7), 0x4000);
    assert_eq!(f.make_leaf(0, 0x4060_0000, 7, RW), 0x0010_0000_4060_0e43);
    assert_eq!(
        0x0010_0000_4060_0e43 + 127 * f.run_step(0, 7),
        0x0010_0000_407f_ce43
    );
    assert_eq!(f.decode(0, 0x0010_0000_407f_ce43), leaf(0x4060_0000, 7));
    // 32 x 32M = 1G
    assert_eq!(f.run_step(1, 5), 0x200_0000);
    assert_eq!(f.make_leaf(1, 0x4000_0000, 5, RW), 0x0010_0000_4000_0e41);
    assert_eq!(
        0x0010_0000_4000_0e41 + 31 * f.run_step(1, 5),
        0x0010_0000_7e00_0e41
    );
    assert_eq!(f.decode(1, 0x0010_0000_7e00_0e41), leaf(0x4000_0000, 5));
    // highest OA
    assert_eq!(
        f.make_leaf(0, 0xffff_ffff_c000, 0, RW),
        0x0000_ffff_ffff_ce43
    );
    assert_eq!(
        f.decode(0, 0x0000_ffff_ffff_ce43),
        leaf(0xffff_ffff_c000, 0)
    );
    assert_eq!(
        f.make_leaf(1, 0xffff_fe00_0000, 0, RW),
        0x0000_ffff_fe00_0e41
    );
}

#[test]
fn s1_64k_entries() {
    let f = fmt(Stage::S1, Granule::K64, 48, 48);
    assert_eq!(f.make_table(2, 0x8001_0000), 0x8001_0003);
    // bits 15:12 are not address bits with a 48-bit OA
    assert_eq!(f.decode(2, 0x8001_f003), Pte::Table { pa: 0x8001_0000 });
    assert_eq!(f.make_leaf(0, 0x1235_0000, 0, RW), 0x1235_0e43);
    assert_eq!(f.decode(0, 0x1235_0e43), leaf(0x1235_0000, 0));
    assert_eq!(f.make_leaf(1, 0x6000_0000, 0, RW), 0x6000_0e41);
    assert_eq!(f.decode(1, 0x6000_0e41), leaf(0x6000_0000, 0));
    // no 4T blocks without 52-bit OA
    assert_eq!(f.decode(2, 0x400_0000_0e41), Pte::Empty);
    // 32 x 64K = 2M
    assert_eq!(f.run_step(0, 5), 0x1_0000);
    assert_eq!(f.make_leaf(0, 0x4060_0000, 5, RW), 0x0010_0000_4060_0e43);
    assert_eq!(
        0x0010_0000_4060_0e43 + f.run_step(0, 5),
        0x0010_0000_4061_0e43
    );
    assert_eq!(f.decode(0, 0x0010_0000_4061_0e43), leaf(0x4060_0000, 5));
    // 32 x 512M = 16G
    assert_eq!(f.run_step(1, 5), 0x2000_0000);
    assert_eq!(f.make_leaf(1, 0x4_0000_0000, 5, RW), 0x0010_0004_0000_0e41);
    assert_eq!(
        0x0010_0004_0000_0e41 + 31 * f.run_step(1, 5),
        0x0010_0007_e000_0e41
    );
    assert_eq!(f.decode(1, 0x0010_0007_e000_0e41), leaf(0x4_0000_0000, 5));
    // highest OA
    assert_eq!(
        f.make_leaf(0, 0xffff_ffff_0000, 0, RW),
        0x0000_ffff_ffff_0e43
    );
    assert_eq!(
        f.decode(0, 0x0000_ffff_ffff_0e43),
        leaf(0xffff_ffff_0000, 0)
    );
    assert_eq!(
        f.make_leaf(1, 0xffff_e000_0000, 0, RW),
        0x0000_ffff_e000_0e41
    );
}

// ---------------------------------------------------------------- stage 2 entries

#[test]
fn s2_entries_and_prot() {
    let f = fmt(Stage::S2, Granule::K4, 40, 48);
    assert_eq!(f.make_table(2, 0x8000_1000), 0x8000_1003);
    assert_eq!(f.make_table(1, 0x8000_1000), 0x8000_1003);
    assert_eq!(f.decode(2, 0x8000_1003), Pte::Table { pa: 0x8000_1000 });
    let pa = 0x1234_5000;
    let cases: &[(Prot, u64, Prot)] = &[
        (RW, 0x1234_56d7, RW),
        (Prot::READ, 0x1234_5657, Prot::READ),
        (Prot::WRITE, 0x1234_5697, Prot::WRITE),
        (RW | Prot::CACHE, 0x1234_57ff, RW | Prot::CACHE),
        (RW | Prot::MMIO, 0x1234_56c7, RW | Prot::MMIO),
        (
            RW | Prot::MMIO | Prot::CACHE,
            0x1234_57c7,
            RW | Prot::MMIO | Prot::CACHE,
        ),
        // stage 2: XN[1:0] = 0b10 (bit 54 only; bit 53 is XN[0], RES0 without FEAT_XNX)
        (RW | Prot::NOEXEC, 0x0040_0000_1234_56d7, RW | Prot::NOEXEC),
        // PRIV has no stage-2 encoding
        (RW | Prot::PRIV, 0x1234_56d7, RW),
        (
            Prot::WRITE | Prot::CACHE | Prot::NOEXEC,
            0x0040_0000_1234_57bf,
            Prot::WRITE | Prot::CACHE | Prot::NOEXEC,
        ),
    ];
    for &(prot, want, back) in cases {
        let pte = f.make_leaf(0, pa, 0, prot);
        assert_eq!(pte, want, "{prot:?}");
        assert_eq!(f.decode(0, pte), leaf(pa, 0));
        assert_eq!(f.leaf_prot(0, pte), back, "{prot:?}");
    }
    // blocks
    assert_eq!(f.make_leaf(1, 0x4020_0000, 0, RW), 0x4020_06d5);
    assert_eq!(f.decode(1, 0x4020_06d5), leaf(0x4020_0000, 0));
    assert_eq!(f.make_leaf(2, 0x80_4000_0000, 0, RW), 0x0000_0080_4000_06d5);
    assert_eq!(f.decode(2, 0x0000_0080_4000_06d5), leaf(0x80_4000_0000, 0));
    // highest OA
    assert_eq!(
        f.make_leaf(0, 0xffff_ffff_f000, 0, RW),
        0x0000_ffff_ffff_f6d7
    );
    assert_eq!(
        f.decode(0, 0x0000_ffff_ffff_f6d7),
        leaf(0xffff_ffff_f000, 0)
    );
    // contiguous
    assert_eq!(f.make_leaf(0, 0x4567_0000, 4, RW), 0x0010_0000_4567_06d7);
    assert_eq!(
        0x0010_0000_4567_06d7 + 15 * f.run_step(0, 4),
        0x0010_0000_4567_f6d7
    );
    assert_eq!(f.decode(0, 0x0010_0000_4567_f6d7), leaf(0x4567_0000, 4));
    assert_eq!(f.leaf_prot(0, 0x0010_0000_4567_f6d7), RW);
    // reserved
    assert_eq!(f.decode(0, 0x1234_56d5), Pte::Empty);
}

#[test]
fn s2_16k_64k_entries() {
    let f = fmt(Stage::S2, Granule::K16, 48, 48);
    assert_eq!(f.make_leaf(0, 0x1234_4000, 0, RW), 0x1234_46d7);
    assert_eq!(f.make_leaf(1, 0x4000_0000, 5, RW), 0x0010_0000_4000_06d5);
    assert_eq!(f.decode(1, 0x0010_0000_43e0_06d5), leaf(0x4000_0000, 5));
    assert_eq!(f.decode(2, 0x8000_4003), Pte::Table { pa: 0x8000_4000 });
    let f = fmt(Stage::S2, Granule::K64, 48, 48);
    assert_eq!(
        f.make_leaf(1, 0x6000_0000, 0, Prot::READ | Prot::CACHE),
        0x6000_077d
    );
    assert_eq!(f.leaf_prot(1, 0x6000_077d), Prot::READ | Prot::CACHE);
    assert_eq!(
        f.make_leaf(0, 0xffff_ffff_0000, 0, RW),
        0x0000_ffff_ffff_06d7
    );
}

// ---------------------------------------------------------------- hardware words

#[test]
fn hw_words_stage1() {
    let root = 0x8_1234_0000;
    let f = s1_4k();
    let w = f.hw_words(root, 3);
    assert_eq!(w.get("TTBR"), Some(root));
    assert_eq!(w.get("TCR"), Some(0x0000_0005_0080_3510));
    assert_eq!(w.get("MAIR"), Some(0x0000_0000_f404_ff44));
    assert_eq!(ArmLpae::MAIR, 0xf404_ff44);
    assert_eq!(w.as_slice().len(), 3);

    let f = ArmLpae::new(ArmLpaeConfig {
        ias: 39,
        oas: 40,
        coherent_walk: false,
        ..ArmLpaeConfig::default()
    })
    .unwrap();
    assert_eq!(f.hw_words(root, 2).get("TCR"), Some(0x0000_0002_0080_2019));

    let f = fmt(Stage::S1, Granule::K4, 32, 32);
    assert_eq!(f.hw_words(root, 2).get("TCR"), Some(0x0000_0000_0080_3520));

    let f = fmt(Stage::S1, Granule::K16, 48, 44);
    assert_eq!(f.hw_words(root, 3).get("TCR"), Some(0x0000_0004_0080_b510));

    let f = fmt(Stage::S1, Granule::K64, 42, 36);
    assert_eq!(f.hw_words(root, 1).get("TCR"), Some(0x0000_0001_0080_7516));

    let f = fmt(Stage::S1, Granule::K64, 48, 42);
    assert_eq!(f.hw_words(root, 2).get("TCR"), Some(0x0000_0003_0080_7510));
}

#[test]
fn hw_words_ttbr1() {
    let root = 0x4000_0000;
    let f = ArmLpae::new(ArmLpaeConfig {
        ttbr1: true,
        ..ArmLpaeConfig::default()
    })
    .unwrap();
    assert_eq!(f.va_mode(), VaMode::High);
    let w = f.hw_words(root, 3);
    assert_eq!(w.get("TTBR"), Some(root));
    // T1SZ 16, IRGN1/ORGN1 WBWA, SH1 IS, TG1 4K (0b10), EPD0, IPS 48
    assert_eq!(w.get("TCR"), Some(0x0000_0005_b510_0080));
    assert_eq!(w.get("MAIR"), Some(0xf404_ff44));

    let f = ArmLpae::new(ArmLpaeConfig {
        ttbr1: true,
        granule: Granule::K16,
        ias: 36,
        oas: 32,
        coherent_walk: false,
        ..ArmLpaeConfig::default()
    })
    .unwrap();
    assert_eq!(f.hw_words(root, 1).get("TCR"), Some(0x0000_0000_601c_0080));

    let f = ArmLpae::new(ArmLpaeConfig {
        ttbr1: true,
        granule: Granule::K64,
        ..ArmLpaeConfig::default()
    })
    .unwrap();
    assert_eq!(f.hw_words(root, 2).get("TCR"), Some(0x0000_0005_f510_0080));
}

#[test]
fn hw_words_stage2() {
    let root = 0x9_0000_0000;
    let cases: &[(Granule, u32, u32, bool, u64)] = &[
        // 4K ias 40: concatenated, start level 1 (SL0 0b01)
        (Granule::K4, 40, 48, true, 0x8005_3558),
        (Granule::K4, 40, 40, true, 0x8002_3558),
        (Granule::K4, 42, 42, true, 0x8003_3556),
        // 4K ias 48: start level 0 (SL0 0b10)
        (Granule::K4, 48, 48, true, 0x8005_3590),
        (Granule::K4, 44, 44, true, 0x8004_3594),
        // 4K ias 32: start level 1
        (Granule::K4, 32, 32, true, 0x8000_3560),
        (Granule::K4, 32, 32, false, 0x8000_2060),
        // 4K ias 39 oas 36: start level 1
        (Granule::K4, 39, 36, true, 0x8001_3559),
        // 16K ias 48: concatenated, start level 1 (SL0 0b10)
        (Granule::K16, 48, 48, true, 0x8005_b590),
        (Granule::K16, 40, 48, true, 0x8005_b598),
        // 16K ias 40 oas 40: 16 tables, start level 2 (SL0 0b01)
        (Granule::K16, 40, 40, true, 0x8002_b558),
        // 64K ias 48: start level 1 (SL0 0b10)
        (Granule::K64, 48, 48, true, 0x8005_7590),
        (Granule::K64, 48, 48, false, 0x8005_6090),
        // 64K ias 44 oas 42: 4 tables, start level 2 (SL0 0b01)
        (Granule::K64, 44, 42, true, 0x8003_7554),
        (Granule::K64, 32, 32, true, 0x8000_7560),
    ];
    for &(granule, ias, oas, coherent_walk, vtcr) in cases {
        let f = ArmLpae::new(ArmLpaeConfig {
            stage: Stage::S2,
            granule,
            ias,
            oas,
            coherent_walk,
            ..ArmLpaeConfig::default()
        })
        .unwrap();
        let w = f.hw_words(root, f.levels() - 1);
        assert_eq!(w.get("VTTBR"), Some(root));
        assert_eq!(w.get("VTCR"), Some(vtcr), "{granule:?} ias {ias} oas {oas}");
        assert_eq!(w.as_slice().len(), 2);
        assert_eq!(w.get("TCR"), None);
    }
}

// ---------------------------------------------------------------- refused configs

#[test]
fn bad_configs() {
    let d = ArmLpaeConfig::default();
    for ias in [0, 31, 49, 52, 64] {
        assert_eq!(bad(ArmLpaeConfig { ias, ..d }), "ias must be 32..=48");
    }
    for oas in [0, 31, 49, 51, 53] {
        assert_eq!(bad(ArmLpaeConfig { oas, ..d }), "oas must be 32..=48");
    }
    // oas 52 is the other type's (ArmLpae52), whatever the granule.
    for granule in [Granule::K4, Granule::K16, Granule::K64] {
        assert!(
            bad(ArmLpaeConfig {
                oas: 52,
                granule,
                ..d
            })
            .starts_with("oas 52 needs the 52-bit format ArmLpae52")
        );
    }
    for oas in [33, 38, 41, 43, 46, 47] {
        assert!(
            bad(ArmLpaeConfig { oas, ..d }).starts_with("oas must be 32, 36, 40, 42, 44 or 48")
        );
    }
    let s2 = ArmLpaeConfig {
        stage: Stage::S2,
        ..d
    };
    assert_eq!(
        bad(ArmLpaeConfig { ttbr1: true, ..s2 }),
        "ttbr1 is a stage 1 option"
    );
    assert_eq!(
        bad(ArmLpaeConfig { ns: true, ..s2 }),
        "ns is a stage 1 option"
    );
    // Forbidden stage-2 start level that would need > 16 concatenated tables.
    for (granule, ias, oas) in [
        (Granule::K4, 44, 40),
        (Granule::K4, 48, 42),
        (Granule::K16, 41, 40),
        (Granule::K16, 47, 36),
        (Granule::K64, 47, 42),
        (Granule::K64, 48, 32),
    ] {
        assert!(
            bad(ArmLpaeConfig {
                granule,
                ias,
                oas,
                ..s2
            })
            .starts_with("stage 2 start level is not allowed"),
            "{granule:?} {ias} {oas}"
        );
    }
    // ...while stage 1 accepts the same sizes, and ttbr1 + ns is fine at stage 1.
    assert!(
        ArmLpae::new(ArmLpaeConfig {
            ias: 44,
            oas: 40,
            ..d
        })
        .is_ok()
    );
    assert!(
        ArmLpae::new(ArmLpaeConfig {
            ttbr1: true,
            ns: true,
            ..d
        })
        .is_ok()
    );
    // Every encodable size is accepted for every granule and stage where legal.
    for granule in [Granule::K4, Granule::K16, Granule::K64] {
        for ias in 32..=48 {
            for oas in [32, 36, 40, 42, 44, 48] {
                let s1 = ArmLpae::new(ArmLpaeConfig {
                    granule,
                    ias,
                    oas,
                    ..d
                });
                assert!(s1.is_ok());
            }
        }
    }
}
