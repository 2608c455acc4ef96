//! Golden descriptor values for the AMD IOMMU v1 format, worked out by hand from the AMD
//! IOMMU specification (host page tables) and Linux `generic_pt/fmt/amdv1.h`:
//! PR = bit 0, Next Level = bits 11:9, address = bits 51:12, FC = bit 60, IR = bit 61,
//! IW = bit 62. So IR|IW = 0x6000_0000_0000_0000, IR|IW|FC = 0x7000_..., NL=7 is 0xE00.

use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::{Error, Format, Prot, Pte, VaMode};

const RW: Prot = Prot::READ.union(Prot::WRITE);

fn fmt() -> AmdV1 {
    AmdV1::new(AmdV1Config::default()).unwrap()
}

fn no_fc() -> AmdV1 {
    AmdV1::new(AmdV1Config {
        force_coherence: false,
        ..Default::default()
    })
    .unwrap()
}

fn leaf(pa: u64, run_lg2: u32) -> Pte {
    Pte::Leaf { pa, run_lg2 }
}

#[test]
fn defaults() {
    let c = AmdV1Config::default();
    assert_eq!(c.levels, 3);
    assert_eq!(c.max_levels, 6);
    assert!(c.dynamic_top);
    assert_eq!(c.oa_bits, 52);
    assert!(c.force_coherence);
    assert_eq!(c.sme_c_bit, None);
    assert!(!c.dirty_tracking);
    assert_eq!(AmdV1::NAME, "amdv1");
    assert_eq!(AmdV1::ENTRY_LG2, 3);
    assert_eq!(AmdV1::MAX_LEVELS, 6);
}

#[test]
fn table_entries_every_level() {
    let f = fmt();
    // (level holding the entry, child table pa, entry): NL = level (AMD level of child).
    let cases = [
        (1, 0x5000, 0x6000_0000_0000_5201),
        (2, 0x1234_5000, 0x6000_0000_1234_5401),
        (3, 0xa_bcde_f000, 0x6000_000a_bcde_f601),
        (4, 0x000f_ffff_ffff_f000, 0x600f_ffff_ffff_f801),
        (5, 0x7000, 0x6000_0000_0000_7a01),
    ];
    for (level, pa, pte) in cases {
        assert_eq!(f.make_table(level, pa), pte, "level {level}");
        assert_eq!(f.decode(level, pte), Pte::Table { pa }, "level {level}");
    }
    // FC never in table entries, whatever force_coherence says.
    assert_eq!(no_fc().make_table(1, 0x5000), 0x6000_0000_0000_5201);
}

#[test]
fn single_entry_leaves() {
    let f = fmt();
    let cases: [(u32, u64, Prot, u64); 8] = [
        (0, 0x1234_5000, RW, 0x7000_0000_1234_5001),
        (0, 0x1234_5000, Prot::READ, 0x3000_0000_1234_5001),
        (0, 0x1234_5000, Prot::WRITE, 0x5000_0000_1234_5001),
        (1, 0x20_0000, RW, 0x7000_0000_0020_0001),
        (2, 0x1_4000_0000, Prot::READ, 0x3000_0001_4000_0001),
        (4, 0x1_0000_0000_0000, RW, 0x7001_0000_0000_0001),
        // Highest output address, 4 KiB page.
        (0, 0x000f_ffff_ffff_f000, RW, 0x700f_ffff_ffff_f001),
        // Highest 2 MiB page.
        (1, 0x000f_ffff_ffe0_0000, RW, 0x700f_ffff_ffe0_0001),
    ];
    for (level, pa, prot, pte) in cases {
        assert_eq!(f.make_leaf(level, pa, 0, prot), pte, "{level} {pa:#x}");
        assert_eq!(f.decode(level, pte), leaf(pa, 0));
        assert_eq!(f.leaf_prot(level, pte), prot | Prot::CACHE);
    }
}

#[test]
fn prot_bits_without_force_coherence() {
    let f = no_fc();
    // Linux's worked value: RW 4K at 0x12345000 without FC.
    assert_eq!(f.make_leaf(0, 0x1234_5000, 0, RW), 0x6000_0000_1234_5001);
    assert_eq!(
        f.make_leaf(0, 0x1234_5000, 0, Prot::READ),
        0x2000_0000_1234_5001
    );
    assert_eq!(
        f.make_leaf(0, 0x1234_5000, 0, Prot::WRITE),
        0x4000_0000_1234_5001
    );
    assert_eq!(f.leaf_prot(0, 0x6000_0000_1234_5001), RW);
    assert_eq!(f.leaf_prot(0, 0x2000_0000_1234_5001), Prot::READ);
    assert_eq!(f.leaf_prot(0, 0x4000_0000_1234_5001), Prot::WRITE);
    // CACHE, NOEXEC, PRIV and MMIO have no bits: ignored.
    for extra in [Prot::CACHE, Prot::NOEXEC, Prot::PRIV, Prot::MMIO] {
        assert_eq!(
            f.make_leaf(0, 0x1234_5000, 0, RW | extra),
            0x6000_0000_1234_5001
        );
        assert_eq!(
            fmt().make_leaf(0, 0x1234_5000, 0, RW | extra),
            0x7000_0000_1234_5001
        );
    }
}

#[test]
fn size_encoded_runs() {
    let f = fmt();
    // (level, pa, run_lg2, entry)
    let cases = [
        // 8K: NL=7, no extra one bits (zero at address bit 12).
        (0, 0x2000, 1, 0x7000_0000_0000_2e01),
        // 32K: ones at bits 12-13, zero at 14.
        (0, 0x4_0000, 3, 0x7000_0000_0004_3e01),
        // 1M: ones at bits 12-18.
        (0, 0x1230_0000, 8, 0x7000_0000_1237_fe01),
        // 4M at level 1 (two 2M entries): ones at bits 12-20.
        (1, 0x40_0000, 1, 0x7000_0000_005f_fe01),
        // 512M at level 1: ones at bits 12-27.
        (1, 0x4000_0000, 8, 0x7000_0000_4fff_fe01),
        // 256G at level 2: ones at bits 12-36.
        (2, 0x40_0000_0000, 8, 0x7000_005f_ffff_fe01),
        // 1T at level 3 (two 512G entries): ones at bits 12-38.
        (3, 0x100_0000_0000, 1, 0x7000_017f_ffff_fe01),
        // 128T at level 3: ones at bits 12-45.
        (3, 0x8000_0000_0000, 8, 0x7000_bfff_ffff_fe01),
        // 2P at level 4, the largest page, at the highest address it can have.
        (4, 0x8_0000_0000_0000, 3, 0x700b_ffff_ffff_fe01),
    ];
    for (level, pa, run, pte) in cases {
        assert_eq!(
            f.make_leaf(level, pa, run, RW),
            pte,
            "{level} {pa:#x} {run}"
        );
        assert_eq!(f.run_step(level, run), 0);
        // Every entry of the run holds the same value and decodes to the run's base.
        for i in [0u64, 1, (1 << run) - 1] {
            let e = pte + i * f.run_step(level, run);
            assert_eq!(f.decode(level, e), leaf(pa, run), "{level} {pa:#x} {i}");
        }
        assert_eq!(f.leaf_prot(level, pte), RW | Prot::CACHE);
    }
    // Read-only 32K without FC (Linux's worked value with IR only).
    assert_eq!(
        no_fc().make_leaf(0, 0x4_0000, 3, Prot::READ),
        0x2000_0000_0004_3e01
    );
}

#[test]
fn decode_ignores_accessed_and_dirty() {
    let f = fmt();
    // A (bit 5) and D (bit 6) set by hardware.
    assert_eq!(f.decode(0, 0x7000_0000_1234_5061), leaf(0x1234_5000, 0));
    assert_eq!(f.decode(0, 0x7000_0000_0004_3e61), leaf(0x4_0000, 3));
    assert_eq!(f.decode(2, 0), Pte::Empty);
    // Not present, whatever else is set.
    assert_eq!(f.decode(1, 0x7000_0000_0020_0000), Pte::Empty);
    // NL = 0 above level 0 is a page of the level's size.
    assert_eq!(f.decode(2, 0x6000_0000_4000_0001), leaf(0x4000_0000, 0));
}

#[test]
fn geometry_default() {
    let f = fmt();
    assert_eq!(f.levels(), 3);
    assert_eq!(f.max_levels(), 6);
    assert_eq!(f.oa_bits(), 52);
    assert_eq!(f.va_mode(), VaMode::Low);
    assert_eq!(f.min_table_bytes_lg2(), 12);
    let item = [12, 21, 30, 39, 48, 57];
    let va = [21, 30, 39, 48, 57, 64];
    let table = [9, 9, 9, 9, 9, 7];
    let runs = [0x1ff, 0x1ff, 0x1ff, 0x1fe, 0xf, 0];
    for l in 0..6u32 {
        let i = l as usize;
        assert_eq!(f.item_lg2(l), item[i], "item {l}");
        assert_eq!(f.va_bits(l), va[i], "va {l}");
        assert_eq!(f.table_lg2(l), table[i], "table {l}");
        assert_eq!(f.leaf_runs(l), runs[i], "runs {l}");
    }
}

#[test]
fn geometry_other_configs() {
    let f = AmdV1::new(AmdV1Config {
        levels: 4,
        max_levels: 4,
        dynamic_top: false,
        ..Default::default()
    })
    .unwrap();
    assert_eq!((f.levels(), f.max_levels(), f.va_bits(3)), (4, 4, 48));

    let f = AmdV1::new(AmdV1Config {
        levels: 1,
        max_levels: 5,
        ..Default::default()
    })
    .unwrap();
    assert_eq!((f.levels(), f.max_levels(), f.va_bits(0)), (1, 5, 21));

    let f = AmdV1::new(AmdV1Config {
        levels: 6,
        dynamic_top: false,
        ..Default::default()
    })
    .unwrap();
    assert_eq!((f.levels(), f.max_levels(), f.va_bits(5)), (6, 6, 64));

    // Smaller output addresses hide the page sizes that reach 2^oa_bits.
    let f = AmdV1::new(AmdV1Config {
        oa_bits: 44,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(f.oa_bits(), 44);
    assert_eq!(f.leaf_runs(2), 0x1ff);
    assert_eq!(f.leaf_runs(3), 0x1e); // 1T..8T
    assert_eq!(f.leaf_runs(4), 0);
    let f = AmdV1::new(AmdV1Config {
        oa_bits: 32,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(f.leaf_runs(0), 0x1ff);
    assert_eq!(f.leaf_runs(1), 0x1ff); // 2M..512M all below 4G
    assert_eq!(f.leaf_runs(2), 0x3); // 1G, 2G
    assert_eq!(f.leaf_runs(3), 0);
}

#[test]
fn encrypted_tables() {
    let f = AmdV1::new(AmdV1Config {
        oa_bits: 47,
        sme_c_bit: Some(47),
        ..Default::default()
    })
    .unwrap();
    // C-bit = 0x0000_8000_0000_0000.
    assert_eq!(f.make_table(1, 0x5000), 0x6000_8000_0000_5201);
    assert_eq!(
        f.decode(1, 0x6000_8000_0000_5201),
        Pte::Table { pa: 0x5000 }
    );
    assert_eq!(f.make_leaf(0, 0x1234_5000, 0, RW), 0x7000_8000_1234_5001);
    assert_eq!(f.decode(0, 0x7000_8000_1234_5001), leaf(0x1234_5000, 0));
    assert_eq!(f.leaf_prot(0, 0x7000_8000_1234_5001), RW | Prot::CACHE);
    // MMIO leaves are not encrypted.
    assert_eq!(
        f.make_leaf(0, 0x1234_5000, 0, RW | Prot::MMIO),
        0x7000_0000_1234_5001
    );
    assert_eq!(
        f.leaf_prot(0, 0x7000_0000_1234_5001),
        RW | Prot::CACHE | Prot::MMIO
    );
    // Size-encoded page: the C-bit does not disturb the size.
    assert_eq!(f.make_leaf(0, 0x4_0000, 3, RW), 0x7000_8000_0004_3e01);
    assert_eq!(f.decode(0, 0x7000_8000_0004_3e01), leaf(0x4_0000, 3));
    // Highest output address below the C-bit.
    assert_eq!(
        f.make_leaf(0, 0x7fff_ffff_f000, 0, RW),
        0x7000_ffff_ffff_f001
    );
    assert_eq!(
        f.decode(0, 0x7000_ffff_ffff_f001),
        leaf(0x7fff_ffff_f000, 0)
    );
    let w = f.hw_words(0x1000, 2);
    assert_eq!(w.get("DTE.HostPtRootPtr"), Some(0x8000_0000_1000));
}

#[test]
fn hw_words() {
    let f = fmt();
    let w = f.hw_words(0x12_3456_7000, 2);
    assert_eq!(
        w.as_slice(),
        &[
            ("DTE.HostPtRootPtr", 0x12_3456_7000),
            ("DTE.Mode", 3),
            ("DTE.HAD", 0)
        ]
    );
    let w = f.hw_words(0x000f_ffff_ffff_f000, 5);
    assert_eq!(w.get("DTE.HostPtRootPtr"), Some(0x000f_ffff_ffff_f000));
    assert_eq!(w.get("DTE.Mode"), Some(6));
    assert_eq!(f.hw_words(0x1000, 0).get("DTE.Mode"), Some(1));
}

#[test]
fn bad_configs() {
    let bad = |cfg: AmdV1Config, msg: &'static str| {
        assert_eq!(AmdV1::new(cfg), Err(Error::BadConfig(msg)), "{cfg:?}");
    };
    let d = AmdV1Config::default();
    bad(AmdV1Config { levels: 0, ..d }, "levels must be 1..=6");
    bad(AmdV1Config { levels: 7, ..d }, "levels must be 1..=6");
    bad(
        AmdV1Config {
            max_levels: 0,
            levels: 1,
            ..d
        },
        "max_levels must be 1..=6",
    );
    bad(
        AmdV1Config { max_levels: 7, ..d },
        "max_levels must be 1..=6",
    );
    bad(
        AmdV1Config {
            levels: 4,
            max_levels: 3,
            ..d
        },
        "max_levels must be >= levels",
    );
    bad(
        AmdV1Config {
            dynamic_top: false,
            ..d
        },
        "max_levels must equal levels when dynamic_top is false",
    );
    bad(AmdV1Config { oa_bits: 31, ..d }, "oa_bits must be 32..=52");
    bad(AmdV1Config { oa_bits: 53, ..d }, "oa_bits must be 32..=52");
    bad(
        AmdV1Config {
            oa_bits: 47,
            sme_c_bit: Some(46),
            ..d
        },
        "sme_c_bit must be oa_bits..=51",
    );
    bad(
        AmdV1Config {
            oa_bits: 47,
            sme_c_bit: Some(52),
            ..d
        },
        "sme_c_bit must be oa_bits..=51",
    );
    // With the default 52-bit output address there is no room for a C-bit.
    bad(
        AmdV1Config {
            sme_c_bit: Some(51),
            ..d
        },
        "sme_c_bit must be oa_bits..=51",
    );
}

#[test]
fn every_allowed_size_round_trips() {
    let f = fmt();
    for level in 0..6u32 {
        let runs = f.leaf_runs(level);
        for run in 0..9u32 {
            if runs & (1 << run) == 0 {
                continue;
            }
            let size_lg2 = f.item_lg2(level) + run;
            // The lowest non-zero and the highest aligned address below 2^52.
            let highest = ((1u64 << 52) - 1) & !((1u64 << size_lg2) - 1);
            for pa in [1u64 << size_lg2, highest, 0] {
                if pa >= 1 << 52 {
                    continue;
                }
                for prot in [RW, Prot::READ, Prot::WRITE] {
                    let pte = f.make_leaf(level, pa, run, prot);
                    assert_eq!(f.decode(level, pte), leaf(pa, run), "{level} {run} {pa:#x}");
                    assert_eq!(f.leaf_prot(level, pte), prot | Prot::CACHE);
                }
            }
        }
    }
}

#[test]
fn dirty_tracking() {
    assert!(!fmt().tracks_dirty());
    let f = AmdV1::new(AmdV1Config {
        dirty_tracking: true,
        ..Default::default()
    })
    .unwrap();
    assert!(f.tracks_dirty());
    // D = bit 6 (0x40); A = bit 5 (0x20) is not dirt.
    assert!(f.leaf_dirty(0, 0x7000_0000_1234_5041));
    assert!(f.leaf_dirty(0, 0x7000_0000_1234_5061));
    assert!(!f.leaf_dirty(0, 0x7000_0000_1234_5021));
    assert!(!f.leaf_dirty(0, 0x7000_0000_1234_5001));
    // Cleaning drops D only.
    assert_eq!(
        f.leaf_clean(0, 0x7000_0000_1234_5061),
        0x7000_0000_1234_5021
    );
    assert_eq!(
        f.leaf_clean(1, 0x7000_0000_0020_0041),
        0x7000_0000_0020_0001
    );
    // A dirty entry of a size-encoded 32K page still decodes as the page, and cleans
    // back to the value its siblings hold.
    assert!(f.leaf_dirty(0, 0x7000_0000_0004_3e41));
    assert_eq!(f.decode(0, 0x7000_0000_0004_3e41), leaf(0x4_0000, 3));
    assert_eq!(
        f.leaf_clean(0, 0x7000_0000_0004_3e41),
        0x7000_0000_0004_3e01
    );
    // The device table entry asks for accessed and dirty updates.
    let w = f.hw_words(0x1000, 2);
    assert_eq!(
        w.as_slice(),
        &[
            ("DTE.HostPtRootPtr", 0x1000),
            ("DTE.Mode", 3),
            ("DTE.HAD", 3)
        ]
    );
}
