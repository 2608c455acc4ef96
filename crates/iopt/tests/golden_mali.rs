//! Golden values for the Mali LPAE GPU format, computed by hand from Linux
//! io-pgtable-arm.c (`ARM_MALI_LPAE`: `iopte_leaf()`, `__arm_lpae_init_pte()`,
//! `arm_lpae_prot_to_pte()`, `arm_mali_lpae_alloc_pgtable()`), panfrost_mmu.c and
//! kbase's `ENTRY_*` bits.
//!
//! Entry bits: type 1:0 (0b11 table, 0b01 leaf at every level), MEMATTR index 4:2
//! (0 default, 1 cached, 2 device), read 6 (0x40), write 7 (0x80), SH 9:8 always outer
//! (0x200), no access flag, no-execute bits 53 and 54 (0x0060_0000_0000_0000).
//! TRANSTAB: ADRMODE_TABLE 0b11, READ_INNER 0x4, SHARE_OUTER 0x10. MEMATTR bytes
//! 0x88, 0x8d, 0x88.

use iopt::fmt::mali::{MaliLpae, MaliLpaeConfig};
use iopt::mem::ArenaMemory;
use iopt::{Error, Format, NoFlush, Prot, Pte, Table, VaMode};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const XN: u64 = 0x0060_0000_0000_0000;

fn mali() -> MaliLpae {
    MaliLpae::new(MaliLpaeConfig::default()).unwrap()
}

fn leaf(pa: u64) -> Pte {
    Pte::Leaf { pa, run_lg2: 0 }
}

#[test]
fn config_and_geometry() {
    let c = MaliLpaeConfig::default();
    assert_eq!(c.oas, 40);
    assert!(!c.coherent_walk);
    assert_eq!(MaliLpae::NAME, "mali");
    assert_eq!(MaliLpae::ENTRY_LG2, 3);
    const { assert!(MaliLpae::OA_IN_PLACE) };
    let f = mali();
    assert_eq!(f.levels(), 4);
    assert_eq!(f.max_levels(), 4);
    assert_eq!(f.start_level_arm(), 0);
    assert_eq!(f.va_bits(3), 48);
    assert_eq!(f.va_mode(), VaMode::Low);
    assert_eq!(f.oa_bits(), 40);
    for (l, item) in [12, 21, 30, 39].into_iter().enumerate() {
        assert_eq!(f.item_lg2(l as u32), item);
        assert_eq!(f.table_lg2(l as u32), 9);
    }
    // 4K, 2M, 1G single entries; no contiguous runs; no 512G leaves.
    for (l, runs) in [1, 1, 1, 0].into_iter().enumerate() {
        assert_eq!(f.leaf_runs(l as u32), runs, "level {l}");
    }
    let f = MaliLpae::new(MaliLpaeConfig {
        oas: 32,
        coherent_walk: true,
    })
    .unwrap();
    assert_eq!((f.levels(), f.va_bits(3), f.oa_bits()), (4, 48, 32));
}

#[test]
fn tables() {
    let f = mali();
    for l in 1..4 {
        assert_eq!(f.make_table(l, 0x80_0000_1000), 0x0000_0080_0000_1003);
        assert_eq!(
            f.decode(l, 0x0000_0080_0000_1003),
            Pte::Table { pa: 0x80_0000_1000 }
        );
    }
    // Highest table address (40 bits).
    assert_eq!(f.make_table(3, 0xff_ffff_f000), 0x0000_00ff_ffff_f003);
    // At the last level 0b11 is neither a table nor a leaf.
    assert_eq!(f.decode(0, 0x1234_52c3), Pte::Empty);
}

#[test]
fn leaves_and_prot() {
    let f = mali();
    let pa = 0x12_3456_7000;
    let cases: &[(Prot, u64, Prot)] = &[
        (RW, 0x0000_0012_3456_72c1, RW),
        (Prot::READ, 0x0000_0012_3456_7241, Prot::READ),
        // Write-only is expressible.
        (Prot::WRITE, 0x0000_0012_3456_7281, Prot::WRITE),
        // Cached: index 1, still outer shareable.
        (RW | Prot::CACHE, 0x0000_0012_3456_72c5, RW | Prot::CACHE),
        (RW | Prot::MMIO, 0x0000_0012_3456_72c9, RW | Prot::MMIO),
        // MMIO wins over CACHE.
        (
            RW | Prot::MMIO | Prot::CACHE,
            0x0000_0012_3456_72c9,
            RW | Prot::MMIO,
        ),
        (
            RW | Prot::NOEXEC,
            XN | 0x0000_0012_3456_72c1,
            RW | Prot::NOEXEC,
        ),
        // PRIV means nothing here.
        (RW | Prot::PRIV, 0x0000_0012_3456_72c1, RW),
        (
            Prot::READ | Prot::CACHE | Prot::NOEXEC,
            XN | 0x0000_0012_3456_7245,
            Prot::READ | Prot::CACHE | Prot::NOEXEC,
        ),
    ];
    for &(prot, want, back) in cases {
        let pte = f.make_leaf(0, pa, 0, prot);
        assert_eq!(pte, want, "{prot:?}");
        assert_eq!(f.decode(0, pte), leaf(pa));
        assert_eq!(f.leaf_prot(0, pte), back, "{prot:?}");
    }
    // 2M and 1G leaves use the same type bits.
    assert_eq!(f.make_leaf(1, 0x4020_0000, 0, RW), 0x4020_02c1);
    assert_eq!(f.decode(1, 0x4020_02c1), leaf(0x4020_0000));
    assert_eq!(
        f.make_leaf(2, 0xc0_4000_0000, 0, RW | Prot::CACHE),
        0x0000_00c0_4000_02c5
    );
    assert_eq!(f.decode(2, 0x0000_00c0_4000_02c5), leaf(0xc0_4000_0000));
    // No 512G leaves.
    assert_eq!(f.decode(3, 0x0000_0080_0000_02c1), Pte::Empty);
    // Highest output address.
    assert_eq!(f.make_leaf(0, 0xff_ffff_f000, 0, RW), 0x0000_00ff_ffff_f2c1);
    assert_eq!(f.decode(0, 0x0000_00ff_ffff_f2c1), leaf(0xff_ffff_f000));
    assert_eq!(
        f.make_leaf(2, 0xff_c000_0000, 0, Prot::READ),
        0x0000_00ff_c000_0241
    );
    // Empty entries: zero (Linux) and 0b10 (kbase's ENTRY_IS_INVAL).
    for l in 0..4 {
        assert_eq!(f.decode(l, 0), Pte::Empty);
        assert_eq!(f.decode(l, 0b10), Pte::Empty);
    }
    // Bit 52 is not a contiguous hint here.
    assert_eq!(f.decode(0, 0x0010_0000_1234_52c1), leaf(0x1234_5000));
}

#[test]
fn hw_words() {
    let root = 0x80_1234_5000;
    let w = mali().hw_words(root, 3);
    assert_eq!(w.get("TRANSTAB"), Some(0x0000_0080_1234_5007));
    assert_eq!(w.get("MEMATTR"), Some(0x0000_0000_0088_8d88));
    assert_eq!(w.get("TRANSCFG"), Some(0));
    assert_eq!(w.as_slice().len(), 3);
    let f = MaliLpae::new(MaliLpaeConfig {
        coherent_walk: true,
        ..MaliLpaeConfig::default()
    })
    .unwrap();
    assert_eq!(
        f.hw_words(root, 3).get("TRANSTAB"),
        Some(0x0000_0080_1234_5017)
    );
}

#[test]
fn bad_configs() {
    for oas in [0, 31, 41, 44, 48, 52] {
        let c = MaliLpaeConfig {
            oas,
            ..MaliLpaeConfig::default()
        };
        assert_eq!(
            MaliLpae::new(c),
            Err(Error::BadConfig("oas must be 32..=40")),
            "{oas}"
        );
    }
    for oas in 32..=40 {
        assert!(
            MaliLpae::new(MaliLpaeConfig {
                oas,
                ..MaliLpaeConfig::default()
            })
            .is_ok()
        );
    }
}

#[test]
fn end_to_end_raw_entries() {
    let base = 0x80_0000_0000;
    let mut t = Table::new(mali(), ArenaMemory::new(base, 1 << 20), NoFlush).unwrap();
    // A 2M leaf at 4G + 0, then a 4K page right after it.
    t.map(0x1_0000_0000, 0x40_0000_0000, 0x20_0000, RW | Prot::CACHE)
        .unwrap();
    t.map(0x1_0020_0000, 0x12_3456_7000, 0x1000, Prot::READ)
        .unwrap();
    let info = t.info();
    assert_eq!(info.root_pa, base);
    assert_eq!(info.pgsize_bitmap, 0x4000_0000 | 0x20_0000 | 0x1000);
    assert_eq!(info.hw.get("TRANSTAB"), Some(0x0000_0080_0000_0007));
    let m = t.memory();
    // Root at `base`; the three lower tables are the next 4K pages, in the order the
    // engine takes them: each table descriptor must be one of these.
    let tables = [
        (0x0000_0080_0000_1003, base + 0x1000),
        (0x0000_0080_0000_2003, base + 0x2000),
        (0x0000_0080_0000_3003, base + 0x3000),
    ];
    let follow = |pa: u64| {
        let v = m.read_u64(pa).unwrap();
        tables
            .iter()
            .find(|t| t.0 == v)
            .unwrap_or_else(|| panic!("{v:#x} at {pa:#x} is not a table descriptor"))
            .1
    };
    let l2 = follow(base);
    let l1 = follow(l2 + 4 * 8);
    assert_eq!(m.read_u64(l1), Some(0x0000_0040_0000_02c5));
    let l0 = follow(l1 + 8);
    assert_eq!(m.read_u64(l0), Some(0x0000_0012_3456_7241));
    assert_eq!(m.read_u64(l0 + 8), Some(0));
    let tr = t.translate(0x1_0012_3456).unwrap();
    assert_eq!(
        (tr.pa, tr.size, tr.prot),
        (0x40_0012_3456, 0x20_0000, RW | Prot::CACHE)
    );
    let tr = t.translate(0x1_0020_0abc).unwrap();
    assert_eq!(
        (tr.pa, tr.size, tr.prot),
        (0x12_3456_7abc, 0x1000, Prot::READ)
    );
}
