//! Golden descriptor values for the x86-64 format, worked out by hand from the Intel SDM
//! (4-level and 5-level paging) and Linux `generic_pt/fmt/x86_64.h`:
//! P = 0x1, R/W = 0x2, U/S = 0x4, A = 0x20, D = 0x40, PS = 0x80, address = bits 51:12,
//! XD = bit 63. Tables: P|R/W|U/S|A = 0x27. Read-write leaf: P|R/W|U/S|A|D = 0x67;
//! read-only leaf: P|U/S|A = 0x25; PS adds 0x80 above level 0.

use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::{Error, Format, Prot, Pte, VaMode};

const RW: Prot = Prot::READ.union(Prot::WRITE);

fn four() -> X86_64 {
    X86_64::new(X86_64Config::default()).unwrap()
}

fn five() -> X86_64 {
    X86_64::new(X86_64Config {
        levels: 5,
        ..Default::default()
    })
    .unwrap()
}

fn leaf(pa: u64) -> Pte {
    Pte::Leaf { pa, run_lg2: 0 }
}

#[test]
fn defaults() {
    let c = X86_64Config::default();
    assert_eq!(c.levels, 4);
    assert_eq!(c.oa_bits, 52);
    assert!(c.sign_extend);
    assert_eq!(c.sme_c_bit, None);
    assert_eq!(X86_64::NAME, "x86-64");
    assert_eq!(X86_64::ENTRY_LG2, 3);
    assert_eq!(X86_64::MAX_LEVELS, 5);
}

#[test]
fn table_entries_every_level() {
    let f = five();
    let cases = [
        (4, 0x1000, 0x1027),
        (3, 0x12_3456_7000, 0x12_3456_7027),
        (2, 0x8000, 0x8027),
        (1, 0x000f_ffff_ffff_f000, 0x000f_ffff_ffff_f027),
    ];
    for (level, pa, pte) in cases {
        assert_eq!(f.make_table(level, pa), pte, "level {level}");
        assert_eq!(f.decode(level, pte), Pte::Table { pa }, "level {level}");
    }
}

#[test]
fn leaves() {
    let f = four();
    let cases: [(u32, u64, Prot, u64); 10] = [
        (0, 0x1234_5000, RW, 0x1234_5067),
        (0, 0x1234_5000, Prot::READ, 0x1234_5025),
        (1, 0x20_0000, RW, 0x20_00e7),
        (1, 0x4060_0000, Prot::READ, 0x4060_00a5),
        (2, 0x1_4000_0000, RW, 0x1_4000_00e7),
        (2, 0x1_4000_0000, Prot::READ, 0x1_4000_00a5),
        // Highest output address at each leaf level.
        (0, 0x000f_ffff_ffff_f000, RW, 0x000f_ffff_ffff_f067),
        (1, 0x000f_ffff_ffe0_0000, RW, 0x000f_ffff_ffe0_00e7),
        (2, 0x000f_ffff_c000_0000, RW, 0x000f_ffff_c000_00e7),
        (2, 0x000f_ffff_c000_0000, Prot::READ, 0x000f_ffff_c000_00a5),
    ];
    for (level, pa, prot, pte) in cases {
        assert_eq!(f.make_leaf(level, pa, 0, prot), pte, "{level} {pa:#x}");
        assert_eq!(f.decode(level, pte), leaf(pa));
        assert_eq!(f.leaf_prot(level, pte), prot);
    }
}

#[test]
fn prot_variants() {
    let f = four();
    // Write-only is not expressible: present implies readable, so it maps read-write.
    assert_eq!(f.make_leaf(0, 0x1234_5000, 0, Prot::WRITE), 0x1234_5067);
    // NOEXEC, CACHE, MMIO and PRIV are ignored, as in Linux (no XD, PCD/PWT, U/S clear).
    for extra in [Prot::NOEXEC, Prot::CACHE, Prot::MMIO, Prot::PRIV] {
        assert_eq!(f.make_leaf(0, 0x1234_5000, 0, RW | extra), 0x1234_5067);
        assert_eq!(f.make_leaf(1, 0x20_0000, 0, Prot::READ | extra), 0x20_00a5);
    }
    // Entries written by someone else: XD and a cleared U/S are reported.
    assert_eq!(
        f.leaf_prot(0, 0x8000_0000_1234_5063),
        RW | Prot::NOEXEC | Prot::PRIV
    );
    assert_eq!(f.leaf_prot(0, 0x1234_5021), Prot::READ | Prot::PRIV);
}

#[test]
fn decode_details() {
    let f = four();
    assert_eq!(f.decode(0, 0), Pte::Empty);
    assert_eq!(f.decode(0, 0x1234_5066), Pte::Empty); // P clear
    // Level 0: PS is the PAT bit there, not a page size; still a 4K leaf.
    assert_eq!(f.decode(0, 0x1234_50e7), leaf(0x1234_5000));
    // PAT (bit 12) in a 2M leaf is not part of the address.
    assert_eq!(f.decode(1, 0x20_10e7), leaf(0x20_0000));
    // PS at levels 3 and 4 is not a leaf (no 512G pages); Linux treats it as a table.
    assert_eq!(f.decode(3, 0x50a7), Pte::Table { pa: 0x5000 });
    assert_eq!(five().decode(4, 0x50a7), Pte::Table { pa: 0x5000 });
    // Hardware-set A/D on a table entry do not change it.
    assert_eq!(f.decode(2, 0x5067), Pte::Table { pa: 0x5000 });
}

#[test]
fn geometry() {
    for (f, levels, top_va) in [(four(), 4, 48), (five(), 5, 57)] {
        assert_eq!(f.levels(), levels);
        assert_eq!(f.max_levels(), levels);
        assert_eq!(f.va_bits(levels - 1), top_va);
        assert_eq!(f.va_mode(), VaMode::SignExtended);
        assert_eq!(f.oa_bits(), 52);
        assert_eq!(f.min_table_bytes_lg2(), 12);
        let item = [12, 21, 30, 39, 48];
        let runs = [1, 1, 1, 0, 0];
        for l in 0..levels {
            let i = l as usize;
            assert_eq!(f.item_lg2(l), item[i], "item {l}");
            assert_eq!(f.table_lg2(l), 9, "table {l}");
            assert_eq!(f.leaf_runs(l), runs[i], "runs {l}");
        }
        assert_eq!(f.run_step(0, 0), 0x1000);
        assert_eq!(f.run_step(1, 0), 0x20_0000);
        assert_eq!(f.run_step(2, 0), 0x4000_0000);
    }
    // Sign-extended halves: 48 bits cover 0..=0x7fff_ffff_ffff and
    // 0xffff_8000_0000_0000..=u64::MAX; the top table indexes bits 47:39.
    let f = four();
    assert_eq!(f.va_bits(3) - f.item_lg2(3), 9);
    let f = five();
    assert_eq!(f.va_bits(4) - f.item_lg2(4), 9);

    // AMD v2 style: no sign extension, one bit less (lower half only).
    for (levels, va) in [(4, 47), (5, 56)] {
        let f = X86_64::new(X86_64Config {
            levels,
            sign_extend: false,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.va_mode(), VaMode::Low);
        assert_eq!(f.va_bits(levels - 1), va);
        // Same entries either way.
        assert_eq!(f.make_table(3, 0x5000), 0x5027);
    }

    // Even a 32-bit output address keeps all three page sizes (1G = 2^30 < 2^32).
    let f = X86_64::new(X86_64Config {
        oa_bits: 32,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(f.oa_bits(), 32);
    assert_eq!([f.leaf_runs(0), f.leaf_runs(1), f.leaf_runs(2)], [1, 1, 1]);
}

#[test]
fn encrypted_tables() {
    let f = X86_64::new(X86_64Config {
        oa_bits: 47,
        sme_c_bit: Some(47),
        ..Default::default()
    })
    .unwrap();
    // C-bit = 0x0000_8000_0000_0000, in tables and in every leaf (MMIO too).
    assert_eq!(f.make_table(3, 0x1000), 0x8000_0000_1027);
    assert_eq!(f.decode(3, 0x8000_0000_1027), Pte::Table { pa: 0x1000 });
    assert_eq!(f.make_leaf(0, 0x1234_5000, 0, RW), 0x8000_1234_5067);
    assert_eq!(
        f.make_leaf(0, 0x1234_5000, 0, RW | Prot::MMIO),
        0x8000_1234_5067
    );
    assert_eq!(f.decode(0, 0x8000_1234_5067), leaf(0x1234_5000));
    assert_eq!(f.make_leaf(1, 0x7fff_ffe0_0000, 0, RW), 0xffff_ffe0_00e7);
    assert_eq!(f.decode(1, 0xffff_ffe0_00e7), leaf(0x7fff_ffe0_0000));
    assert_eq!(f.hw_words(0x1000, 3).get("CR3"), Some(0x8000_0000_1000));
}

#[test]
fn hw_words() {
    let w = four().hw_words(0xab_c000, 3);
    assert_eq!(w.as_slice(), &[("CR3", 0xab_c000), ("FLPM", 0)]);
    let w = five().hw_words(0x000f_ffff_ffff_f000, 4);
    assert_eq!(w.as_slice(), &[("CR3", 0x000f_ffff_ffff_f000), ("FLPM", 1)]);
}

#[test]
fn bad_configs() {
    let bad = |cfg: X86_64Config, msg: &'static str| {
        assert_eq!(X86_64::new(cfg), Err(Error::BadConfig(msg)), "{cfg:?}");
    };
    let d = X86_64Config::default();
    bad(X86_64Config { levels: 3, ..d }, "levels must be 4 or 5");
    bad(X86_64Config { levels: 6, ..d }, "levels must be 4 or 5");
    bad(X86_64Config { oa_bits: 31, ..d }, "oa_bits must be 32..=52");
    bad(X86_64Config { oa_bits: 53, ..d }, "oa_bits must be 32..=52");
    bad(
        X86_64Config {
            oa_bits: 47,
            sme_c_bit: Some(46),
            ..d
        },
        "sme_c_bit must be oa_bits..=51",
    );
    bad(
        X86_64Config {
            oa_bits: 47,
            sme_c_bit: Some(52),
            ..d
        },
        "sme_c_bit must be oa_bits..=51",
    );
}
