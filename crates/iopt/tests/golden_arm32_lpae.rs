//! Golden values for the ARM32 LPAE format, computed by hand from the Arm ARM (VMSAv7
//! LPAE / VMSAv8-32 long descriptors; TTBCR, VTCR, MAIR0/1 layouts) and Linux
//! io-pgtable-arm.c (`arm_32_lpae_alloc_pgtable_s1/_s2`).
//!
//! Descriptor bits (the ARM64 4K-granule ones): type 1:0 (0b11 table or page, 0b01
//! block), AttrIndx 4:2 / MemAttr 5:2, NS 5, AP 7:6 / S2AP 7:6, SH 9:8 (0x200 outer,
//! 0x300 inner), AF 0x400, nG 0x800, contiguous bit 52, PXN|XN bits 53,54, NSTable 63.
//! Register bits: TTBCR T0SZ 2:0, IRGN0 9:8, ORGN0 11:10, SH0 13:12, EPD1 23, EAE 31;
//! VTCR T0SZ 3:0 + S 4 (signed), SL0 7:6 (0b01 level 1, 0b00 level 2), RES1 31.

use iopt::fmt::arm_lpae::Stage;
use iopt::fmt::arm32_lpae::{Arm32Lpae, Arm32LpaeConfig};
use iopt::mem::ArenaMemory;
use iopt::{Error, Format, NoFlush, Prot, Pte, Table, VaMode};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const XN: u64 = 0x0060_0000_0000_0000;

fn fmt(stage: Stage, ias: u32, oas: u32) -> Arm32Lpae {
    Arm32Lpae::new(Arm32LpaeConfig {
        stage,
        ias,
        oas,
        ..Arm32LpaeConfig::default()
    })
    .unwrap()
}

fn leaf(pa: u64, run_lg2: u32) -> Pte {
    Pte::Leaf { pa, run_lg2 }
}

fn bad(cfg: Arm32LpaeConfig) -> &'static str {
    match Arm32Lpae::new(cfg) {
        Err(Error::BadConfig(m)) => m,
        other => panic!("expected BadConfig for {cfg:?}, got {other:?}"),
    }
}

/// (levels, ARM start level, item_lg2 per level, va_bits, top entries lg2, leaf_runs)
fn check_geometry(f: &Arm32Lpae, levels: u32, va: u32, top_lg2: u32, runs: &[u32]) {
    assert_eq!(f.levels(), levels);
    assert_eq!(f.max_levels(), levels);
    assert_eq!(f.start_level_arm(), 4 - levels);
    assert_eq!(f.va_bits(levels - 1), va);
    assert_eq!(f.va_bits(levels - 1) - f.item_lg2(levels - 1), top_lg2);
    let items = [12, 21, 30];
    for l in 0..levels {
        assert_eq!(f.item_lg2(l), items[l as usize], "item_lg2({l})");
        assert_eq!(f.table_lg2(l), 9);
        assert_eq!(f.leaf_runs(l), runs[l as usize], "leaf_runs({l})");
    }
    assert_eq!(f.va_mode(), VaMode::Low);
    assert_eq!(f.min_table_bytes_lg2(), 6);
}

#[test]
fn config_default() {
    let c = Arm32LpaeConfig::default();
    assert_eq!(c.stage, Stage::S1);
    assert_eq!((c.ias, c.oas), (32, 40));
    assert!(c.contiguous && c.coherent_walk && !c.ns);
    assert_eq!(Arm32Lpae::NAME, "arm32-lpae");
    assert_eq!(Arm32Lpae::ENTRY_LG2, 3);
    assert_eq!(Arm32Lpae::MAX_LEVELS, 4);
    const { assert!(Arm32Lpae::OA_IN_PLACE) };
}

// ---------------------------------------------------------------- geometry

#[test]
fn geometry_stage1() {
    // 32 bits: ARM levels 1..3, a 4-entry top; a 16-entry run cannot fit there.
    let f = fmt(Stage::S1, 32, 40);
    check_geometry(&f, 3, 32, 2, &[0x11, 0x11, 0x01]);
    assert_eq!(f.oa_bits(), 40);
    // 31 bits: still from level 1, 2 entries.
    check_geometry(&fmt(Stage::S1, 31, 36), 3, 31, 1, &[0x11, 0x11, 0x01]);
    // 30 bits: from level 2 with 512 entries.
    check_geometry(&fmt(Stage::S1, 30, 32), 2, 30, 9, &[0x11, 0x11]);
    // 25 bits (T0SZ 7): 16 entries at level 2, exactly one 32M run.
    check_geometry(&fmt(Stage::S1, 25, 40), 2, 25, 4, &[0x11, 0x11]);
    // Contiguous hints off.
    let f = Arm32Lpae::new(Arm32LpaeConfig {
        contiguous: false,
        ..Arm32LpaeConfig::default()
    })
    .unwrap();
    check_geometry(&f, 3, 32, 2, &[1, 1, 1]);
}

#[test]
fn geometry_stage2() {
    // 40 bits: two concatenated level-1 tables (1024 entries).
    check_geometry(&fmt(Stage::S2, 40, 40), 3, 40, 10, &[0x11, 0x11, 0x11]);
    check_geometry(&fmt(Stage::S2, 39, 40), 3, 39, 9, &[0x11, 0x11, 0x11]);
    check_geometry(&fmt(Stage::S2, 36, 36), 3, 36, 6, &[0x11, 0x11, 0x11]);
    check_geometry(&fmt(Stage::S2, 32, 40), 3, 32, 2, &[0x11, 0x11, 0x01]);
    check_geometry(&fmt(Stage::S2, 30, 40), 2, 30, 9, &[0x11, 0x11]);
    check_geometry(&fmt(Stage::S2, 25, 32), 2, 25, 4, &[0x11, 0x11]);
}

// ---------------------------------------------------------------- entries

#[test]
fn stage1_entries() {
    let f = fmt(Stage::S1, 32, 40);
    for l in 1..3 {
        assert_eq!(f.make_table(l, 0x80_0000_1000), 0x0000_0080_0000_1003);
        assert_eq!(
            f.decode(l, 0x0000_0080_0000_1003),
            Pte::Table { pa: 0x80_0000_1000 }
        );
    }
    let pa = 0x12_3456_7000;
    let cases: &[(Prot, u64, Prot)] = &[
        (RW, 0x0000_0012_3456_7e43, RW),
        (Prot::READ, 0x0000_0012_3456_7ec3, Prot::READ),
        (Prot::WRITE, 0x0000_0012_3456_7e43, RW),
        (
            RW | Prot::NOEXEC,
            XN | 0x0000_0012_3456_7e43,
            RW | Prot::NOEXEC,
        ),
        (RW | Prot::PRIV, 0x0000_0012_3456_7e03, RW | Prot::PRIV),
        (RW | Prot::CACHE, 0x0000_0012_3456_7f47, RW | Prot::CACHE),
        (RW | Prot::MMIO, 0x0000_0012_3456_7e4b, RW | Prot::MMIO),
    ];
    for &(prot, want, back) in cases {
        let pte = f.make_leaf(0, pa, 0, prot);
        assert_eq!(pte, want, "{prot:?}");
        assert_eq!(f.decode(0, pte), leaf(pa, 0));
        assert_eq!(f.leaf_prot(0, pte), back, "{prot:?}");
    }
    // 2M and 1G blocks.
    assert_eq!(f.make_leaf(1, 0x4020_0000, 0, RW), 0x4020_0e41);
    assert_eq!(f.decode(1, 0x4020_0e41), leaf(0x4020_0000, 0));
    assert_eq!(
        f.make_leaf(2, 0xc0_4000_0000, 0, Prot::READ | Prot::CACHE),
        0x0000_00c0_4000_0fc5
    );
    assert_eq!(f.decode(2, 0x0000_00c0_4000_0fc5), leaf(0xc0_4000_0000, 0));
    // Highest output address (40 bits).
    assert_eq!(f.make_leaf(0, 0xff_ffff_f000, 0, RW), 0x0000_00ff_ffff_fe43);
    assert_eq!(f.decode(0, 0x0000_00ff_ffff_fe43), leaf(0xff_ffff_f000, 0));
    assert_eq!(f.make_leaf(2, 0xff_c000_0000, 0, RW), 0x0000_00ff_c000_0e41);
    // Reserved: 0b01 at ARM level 3; invalid.
    assert_eq!(f.decode(0, 0x1234_5e41), Pte::Empty);
    assert_eq!(f.decode(1, 0x4020_0e40), Pte::Empty);
    // Contiguous: 16 x 4K.
    assert_eq!(f.run_step(0, 4), 0x1000);
    assert_eq!(f.make_leaf(0, 0xff_ffff_0000, 4, RW), 0x0010_00ff_ffff_0e43);
    assert_eq!(f.decode(0, 0x0010_00ff_ffff_9e43), leaf(0xff_ffff_0000, 4));
    // 16 x 2M.
    assert_eq!(f.make_leaf(1, 0x4200_0000, 4, RW), 0x0010_0000_4200_0e41);
    assert_eq!(f.decode(1, 0x0010_0000_43e0_0e41), leaf(0x4200_0000, 4));
}

#[test]
fn stage1_ns() {
    let f = Arm32Lpae::new(Arm32LpaeConfig {
        ns: true,
        ..Arm32LpaeConfig::default()
    })
    .unwrap();
    assert_eq!(f.make_table(2, 0x8000_1000), 0x8000_0000_8000_1003);
    assert_eq!(
        f.decode(2, 0x8000_0000_8000_1003),
        Pte::Table { pa: 0x8000_1000 }
    );
    assert_eq!(f.make_leaf(0, 0x1234_5000, 0, RW), 0x1234_5e63);
    assert_eq!(f.leaf_prot(0, 0x1234_5e63), RW);
}

#[test]
fn stage2_entries() {
    let f = fmt(Stage::S2, 40, 40);
    assert_eq!(f.make_table(2, 0x8000_1000), 0x8000_1003);
    let pa = 0x12_3456_7000;
    let cases: &[(Prot, u64, Prot)] = &[
        (RW, 0x0000_0012_3456_76d7, RW),
        (Prot::READ, 0x0000_0012_3456_7657, Prot::READ),
        (Prot::WRITE, 0x0000_0012_3456_7697, Prot::WRITE),
        (RW | Prot::CACHE, 0x0000_0012_3456_77ff, RW | Prot::CACHE),
        (RW | Prot::MMIO, 0x0000_0012_3456_76c7, RW | Prot::MMIO),
        // XN (bit 54) only; bit 53 is reserved at stage 2.
        (RW | Prot::NOEXEC, 0x0040_0012_3456_76d7, RW | Prot::NOEXEC),
        (RW | Prot::PRIV, 0x0000_0012_3456_76d7, RW),
    ];
    for &(prot, want, back) in cases {
        let pte = f.make_leaf(0, pa, 0, prot);
        assert_eq!(pte, want, "{prot:?}");
        assert_eq!(f.decode(0, pte), leaf(pa, 0));
        assert_eq!(f.leaf_prot(0, pte), back, "{prot:?}");
    }
    assert_eq!(f.make_leaf(1, 0x4020_0000, 0, RW), 0x4020_06d5);
    assert_eq!(f.make_leaf(2, 0xff_c000_0000, 0, RW), 0x0000_00ff_c000_06d5);
    assert_eq!(f.decode(2, 0x0000_00ff_c000_06d5), leaf(0xff_c000_0000, 0));
    // 16 x 1G run in the concatenated top.
    assert_eq!(f.make_leaf(2, 0x40_0000_0000, 4, RW), 0x0010_0040_0000_06d5);
    assert_eq!(f.decode(2, 0x0010_0043_c000_06d5), leaf(0x40_0000_0000, 4));
}

// ---------------------------------------------------------------- hardware words

#[test]
fn hw_words_stage1() {
    let root = 0x80_1234_5000;
    let cases: &[(u32, bool, u64)] = &[
        // EAE | EPD1 | SH0 inner | ORGN0 = IRGN0 = WBWA | T0SZ
        (32, true, 0x8080_3500),
        (31, true, 0x8080_3501),
        (30, false, 0x8080_2002),
        (25, true, 0x8080_3507),
    ];
    for &(ias, coherent_walk, ttbcr) in cases {
        let f = Arm32Lpae::new(Arm32LpaeConfig {
            ias,
            coherent_walk,
            ..Arm32LpaeConfig::default()
        })
        .unwrap();
        let w = f.hw_words(root, f.levels() - 1);
        assert_eq!(w.get("TTBR0"), Some(root));
        assert_eq!(w.get("TTBCR"), Some(ttbcr), "ias {ias}");
        assert_eq!(w.get("MAIR0"), Some(0xf404_ff44));
        assert_eq!(w.get("MAIR1"), Some(0));
        assert_eq!(w.as_slice().len(), 4);
    }
}

#[test]
fn hw_words_stage2() {
    let root = 0x40_0000_2000;
    let cases: &[(u32, bool, u64)] = &[
        // RES1 | SH0/ORGN0/IRGN0 | SL0 | S + T0SZ
        (40, true, 0x8000_3558),
        (39, true, 0x8000_3559),
        (36, true, 0x8000_355c),
        (32, false, 0x8000_2040),
        (31, true, 0x8000_3541),
        (30, true, 0x8000_3502),
        (25, false, 0x8000_2007),
    ];
    for &(ias, coherent_walk, vtcr) in cases {
        let f = Arm32Lpae::new(Arm32LpaeConfig {
            stage: Stage::S2,
            ias,
            coherent_walk,
            ..Arm32LpaeConfig::default()
        })
        .unwrap();
        let w = f.hw_words(root, f.levels() - 1);
        assert_eq!(w.get("VTTBR"), Some(root));
        assert_eq!(w.get("VTCR"), Some(vtcr), "ias {ias}");
        assert_eq!(w.as_slice().len(), 2);
    }
}

// ---------------------------------------------------------------- refused configs

#[test]
fn bad_configs() {
    let d = Arm32LpaeConfig::default();
    let s2 = Arm32LpaeConfig {
        stage: Stage::S2,
        ..d
    };
    for ias in [0, 24, 33, 40, 48] {
        assert_eq!(
            bad(Arm32LpaeConfig { ias, ..d }),
            "ias must be 25..=32 at stage 1 (TTBCR.T0SZ 0..=7)"
        );
    }
    for ias in [24, 41, 48] {
        assert_eq!(
            bad(Arm32LpaeConfig { ias, ..s2 }),
            "ias must be 25..=40 at stage 2 (VTCR.T0SZ -8..=7)"
        );
    }
    for oas in [0, 31, 33, 38, 41, 42, 44, 48, 52] {
        for c in [d, s2] {
            assert_eq!(
                bad(Arm32LpaeConfig { oas, ..c }),
                "oas must be 32, 36 or 40 (LPAE output addresses are at most 40 bits)"
            );
        }
    }
    assert_eq!(
        bad(Arm32LpaeConfig { ns: true, ..s2 }),
        "ns is a stage 1 option"
    );
    // Every size in range builds.
    for ias in 25..=40 {
        for oas in [32, 36, 40] {
            assert!(Arm32Lpae::new(Arm32LpaeConfig { ias, oas, ..s2 }).is_ok());
            assert_eq!(
                Arm32Lpae::new(Arm32LpaeConfig { ias, oas, ..d }).is_ok(),
                ias <= 32
            );
        }
    }
}

// ---------------------------------------------------------------- end to end

#[test]
fn end_to_end_raw_entries() {
    // Table pages above 4 GiB (a 40-bit physical address).
    let base = 0x80_0000_0000;
    let mut t = Table::new(
        fmt(Stage::S1, 32, 40),
        ArenaMemory::new(base, 1 << 20),
        NoFlush,
    )
    .unwrap();
    // A 2M block at IOVA 1G + 2M, and a 64K contiguous run at 1G.
    t.map(0x4020_0000, 0x12_3420_0000, 0x20_0000, RW).unwrap();
    t.map(0x4000_0000, 0xff_ffff_0000, 0x1_0000, RW | Prot::NOEXEC)
        .unwrap();
    let info = t.info();
    assert_eq!(info.root_pa, base);
    assert_eq!(info.hw.get("TTBR0"), Some(base));
    assert_eq!(info.hw.get("TTBCR"), Some(0x8080_3500));
    assert_eq!(
        info.pgsize_bitmap,
        0x4000_0000 | 0x200_0000 | 0x20_0000 | 0x1_0000 | 0x1000
    );
    let m = t.memory();
    // Root (4 entries at `base`), then the level-2 table, then the level-3 table.
    assert_eq!(m.read_u64(base), Some(0));
    assert_eq!(m.read_u64(base + 8), Some(0x0000_0080_0000_1003));
    assert_eq!(m.read_u64(base + 16), Some(0));
    assert_eq!(m.read_u64(base + 0x1000), Some(0x0000_0080_0000_2003));
    assert_eq!(m.read_u64(base + 0x1008), Some(0x0000_0012_3420_0e41));
    assert_eq!(m.read_u64(base + 0x2000), Some(0x0070_00ff_ffff_0e43));
    assert_eq!(
        m.read_u64(base + 0x2000 + 15 * 8),
        Some(0x0070_00ff_ffff_fe43)
    );
    assert_eq!(m.read_u64(base + 0x2000 + 16 * 8), Some(0));
    let tr = t.translate(0x4000_abcd).unwrap();
    assert_eq!((tr.pa, tr.size), (0xff_ffff_abcd, 0x1_0000));
    assert_eq!(tr.prot, RW | Prot::NOEXEC);
    assert_eq!(t.translate(0x4021_0000).unwrap().pa, 0x12_3421_0000);
}
