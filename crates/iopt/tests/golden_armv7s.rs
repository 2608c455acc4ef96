//! Golden descriptor values for the ARMv7 short-descriptor format.
//!
//! Every hex literal below was worked out by hand from the ARMv7 ARM short-descriptor
//! layouts and the attribute choices of Linux's io-pgtable-arm-v7s.c, not from the code
//! under test. Bit reminders:
//! * small page (level 0): XN 0, type 1, B 2, C 3, AP[1:0] 5:4, TEX 8:6, AP2 9, S 10, nG 11
//! * large page (level 0): type 0b01, B 2, C 3, AP[1:0] 5:4, AP2 9, S 10, nG 11, TEX 14:12,
//!   XN 15
//! * section (level 1): type 0b10, B 2, C 3, XN 4, AP[1:0] 11:10, TEX 14:12, AP2 15, S 16,
//!   nG 17, supersection 18, NS 19
//! * page table (level 1): type 0b01, NS 3, base 31:10

use iopt::fmt::armv7s::{ArmV7s, ArmV7sConfig};
use iopt::{Error, Format, Prot, Pte, VaMode};

const R: Prot = Prot::READ;
const W: Prot = Prot::WRITE;
const RW: Prot = Prot::READ.union(Prot::WRITE);
const X: Prot = Prot::NOEXEC;
const P: Prot = Prot::PRIV;
const C: Prot = Prot::CACHE;
const M: Prot = Prot::MMIO;

fn fmt(ns: bool, coherent_walk: bool) -> ArmV7s {
    ArmV7s::new(ArmV7sConfig {
        ns,
        oa_bits: 32,
        coherent_walk,
    })
    .unwrap()
}

/// (prot given, expected descriptor, prot read back)
type Case = (Prot, u64, Prot);

/// Checks make_leaf, decode and leaf_prot of one leaf entry.
fn check_leaf(f: &ArmV7s, level: u32, pa: u64, run_lg2: u32, cases: &[Case]) {
    for &(prot, want, back) in cases {
        let pte = f.make_leaf(level, pa, run_lg2, prot);
        assert_eq!(
            pte, want,
            "level {level} run {run_lg2} pa {pa:#x} prot {prot:?}: got {pte:#x}"
        );
        assert_eq!(f.decode(level, want), Pte::Leaf { pa, run_lg2 });
        assert_eq!(f.leaf_prot(level, want), back, "prot of {want:#x}");
        // Every entry of a run is identical (step 0) and decodes to the run's base.
        let step = f.run_step(level, run_lg2);
        assert_eq!(step, 0);
        let last = want + step * ((1u64 << run_lg2) - 1);
        assert_eq!(last, want);
        assert_eq!(f.decode(level, last), Pte::Leaf { pa, run_lg2 });
    }
}

#[test]
fn small_pages() {
    let f = fmt(false, false);
    check_leaf(
        &f,
        0,
        0x1234_5000,
        0,
        &[
            (RW, 0x1234_5c72, RW),
            (R, 0x1234_5e72, R),
            // Write-only cannot be expressed: it becomes read/write.
            (W, 0x1234_5c72, RW),
            (RW | X, 0x1234_5c73, RW | X),
            (RW | P, 0x1234_5c52, RW | P),
            (RW | C, 0x1234_5c7e, RW | C),
            (RW | M, 0x1234_5c36, RW | M),
            // MMIO wins over CACHE.
            (RW | M | C, 0x1234_5c36, RW | M),
            (R | X | P | C, 0x1234_5e5f, R | X | P | C),
            (R | M | X, 0x1234_5e37, R | M | X),
        ],
    );
    // Highest output address.
    check_leaf(&f, 0, 0xffff_f000, 0, &[(RW, 0xffff_fc72, RW)]);
    check_leaf(&f, 0, 0, 0, &[(RW, 0x0000_0c72, RW)]);
    // Second-level pages carry no NS bit: the NS configuration does not change them.
    let ns = fmt(true, false);
    check_leaf(&ns, 0, 0x1234_5000, 0, &[(RW, 0x1234_5c72, RW)]);
    check_leaf(&ns, 0, 0xffff_f000, 0, &[(R | X, 0xffff_fe73, R | X)]);
}

#[test]
fn large_pages() {
    let f = fmt(false, false);
    check_leaf(
        &f,
        0,
        0x1234_0000,
        4,
        &[
            (RW, 0x1234_1c31, RW),
            (R, 0x1234_1e31, R),
            (W, 0x1234_1c31, RW),
            (RW | X, 0x1234_9c31, RW | X),
            (RW | P, 0x1234_1c11, RW | P),
            (RW | C, 0x1234_1c3d, RW | C),
            (RW | M, 0x1234_0c35, RW | M),
            (RW | M | C, 0x1234_0c35, RW | M),
            (R | X, 0x1234_9e31, R | X),
            (R | X | P | C, 0x1234_9e1d, R | X | P | C),
        ],
    );
    check_leaf(&f, 0, 0xffff_0000, 4, &[(RW, 0xffff_1c31, RW)]);
    let ns = fmt(true, true);
    check_leaf(&ns, 0, 0xffff_0000, 4, &[(RW | C, 0xffff_1c3d, RW | C)]);
}

#[test]
fn sections() {
    let f = fmt(false, false);
    check_leaf(
        &f,
        1,
        0x1230_0000,
        0,
        &[
            (RW, 0x1233_1c02, RW),
            (R, 0x1233_9c02, R),
            (W, 0x1233_1c02, RW),
            (RW | X, 0x1233_1c12, RW | X),
            (RW | P, 0x1233_1402, RW | P),
            (RW | C, 0x1233_1c0e, RW | C),
            (RW | M, 0x1233_0c06, RW | M),
            (RW | M | C, 0x1233_0c06, RW | M),
            (R | X | P | C, 0x1233_941e, R | X | P | C),
        ],
    );
    check_leaf(&f, 1, 0xfff0_0000, 0, &[(RW, 0xfff3_1c02, RW)]);
    let ns = fmt(true, false);
    check_leaf(
        &ns,
        1,
        0x1230_0000,
        0,
        &[
            (RW, 0x123b_1c02, RW),
            (R | X | P | C, 0x123b_941e, R | X | P | C),
        ],
    );
    check_leaf(&ns, 1, 0xfff0_0000, 0, &[(RW, 0xfffb_1c02, RW)]);
}

#[test]
fn supersections() {
    let f = fmt(false, false);
    check_leaf(
        &f,
        1,
        0x1200_0000,
        4,
        &[
            (RW, 0x1207_1c02, RW),
            (R, 0x1207_9c02, R),
            (W, 0x1207_1c02, RW),
            (RW | X, 0x1207_1c12, RW | X),
            (RW | P, 0x1207_1402, RW | P),
            (RW | C, 0x1207_1c0e, RW | C),
            (RW | M, 0x1207_0c06, RW | M),
            (R | X | P | C, 0x1207_941e, R | X | P | C),
        ],
    );
    // Highest output address.
    check_leaf(&f, 1, 0xff00_0000, 4, &[(RW, 0xff07_1c02, RW)]);
    let ns = fmt(true, false);
    check_leaf(&ns, 1, 0x1200_0000, 4, &[(RW, 0x120f_1c02, RW)]);
    check_leaf(
        &ns,
        1,
        0xff00_0000,
        4,
        &[
            (RW, 0xff0f_1c02, RW),
            (R | X | P | C, 0xff0f_941e, R | X | P | C),
        ],
    );
}

#[test]
fn table_descriptors() {
    let f = fmt(false, false);
    for (pa, want) in [
        (0x1234_5400u64, 0x1234_5401u64),
        (0x0000_0400, 0x0000_0401),
        (0xffff_fc00, 0xffff_fc01),
    ] {
        assert_eq!(f.make_table(1, pa), want);
        assert_eq!(f.decode(1, want), Pte::Table { pa });
    }
    let ns = fmt(true, false);
    for (pa, want) in [(0x1234_5400u64, 0x1234_5409u64), (0xffff_fc00, 0xffff_fc09)] {
        assert_eq!(ns.make_table(1, pa), want);
        assert_eq!(ns.decode(1, want), Pte::Table { pa });
    }
}

#[test]
fn decode_other_encodings() {
    let f = fmt(false, false);
    // Fault entries: type bits 0b00, whatever the rest holds.
    for level in 0..2 {
        assert_eq!(f.decode(level, 0), Pte::Empty);
        assert_eq!(f.decode(level, 0xffff_fffc), Pte::Empty);
    }
    // Level 1, type 0b11: a section / supersection with PXN set.
    assert_eq!(
        f.decode(1, 0x1233_1c03),
        Pte::Leaf {
            pa: 0x1230_0000,
            run_lg2: 0
        }
    );
    assert_eq!(
        f.decode(1, 0x1207_1c03),
        Pte::Leaf {
            pa: 0x1200_0000,
            run_lg2: 4
        }
    );
    // Level 1 page table with PXN (bit 2) and a domain (bits 8:5) set.
    assert_eq!(f.decode(1, 0x1234_55e5), Pte::Table { pa: 0x1234_5400 });
    // Level 0 type 0b11: small page with XN.
    assert_eq!(
        f.decode(0, 0x1234_5c73),
        Pte::Leaf {
            pa: 0x1234_5000,
            run_lg2: 0
        }
    );
    // Same raw value read at the two levels means different things.
    assert_eq!(
        f.decode(0, 0x1234_5401),
        Pte::Leaf {
            pa: 0x1234_0000,
            run_lg2: 4
        }
    );
    assert_eq!(f.decode(1, 0x1234_5401), Pte::Table { pa: 0x1234_5400 });
}

#[test]
fn geometry() {
    assert_eq!(ArmV7s::NAME, "armv7s");
    assert_eq!(ArmV7s::ENTRY_LG2, 2);
    assert_eq!(ArmV7s::MAX_LEVELS, 2);
    for (ns, coherent) in [(false, false), (true, false), (false, true), (true, true)] {
        let f = fmt(ns, coherent);
        assert_eq!(f.levels(), 2);
        assert_eq!(f.max_levels(), 2);
        assert_eq!(f.va_bits(1), 32);
        assert_eq!(f.va_mode(), VaMode::Low);
        assert_eq!(f.oa_bits(), 32);
        assert_eq!(f.item_lg2(0), 12);
        assert_eq!(f.item_lg2(1), 20);
        // Second-level table: 256 entries of 4 bytes = 1 KiB.
        assert_eq!(f.table_lg2(0), 8);
        assert_eq!(1u32 << (f.table_lg2(0) + ArmV7s::ENTRY_LG2), 1024);
        // First-level table: 4096 entries = 16 KiB.
        assert_eq!(f.va_bits(1) - f.item_lg2(1), 12);
        assert_eq!(f.table_lg2(1), 12);
        assert_eq!(1u32 << (f.table_lg2(1) + ArmV7s::ENTRY_LG2), 16384);
        // 1 KiB minimum: second-level tables need only 1 KiB alignment.
        assert_eq!(f.min_table_bytes_lg2(), 10);
        // 4K + 64K (16 entries) at level 0; 1M + 16M (16 entries) at level 1.
        assert_eq!(f.leaf_runs(0), 0b1_0001);
        assert_eq!(f.leaf_runs(1), 0b1_0001);
        for level in 0..2 {
            assert_eq!(f.run_step(level, 0), 0);
            assert_eq!(f.run_step(level, 4), 0);
        }
    }
}

#[test]
fn hw_words() {
    // Non-coherent walk: TTBR = base | S (bit 1), IRGN = RGN = non-cacheable.
    let f = fmt(false, false);
    let w = f.hw_words(0x8000_4000, 1);
    assert_eq!(
        w.as_slice(),
        &[
            ("TTBR", 0x8000_4002),
            ("TCR", 0),
            ("NMRR", 0x4000_4000),
            ("PRRR", 0x800b_8204),
        ]
    );
    // Coherent walk: S | RGN=WBWA (bit 3) | NOS (bit 5) | IRGN[0] (bit 6) = 0x6a.
    let f = fmt(false, true);
    let w = f.hw_words(0x1234_4000, 1);
    assert_eq!(w.get("TTBR"), Some(0x1234_406a));
    assert_eq!(w.get("TCR"), Some(0));
    assert_eq!(w.get("NMRR"), Some(0x4000_4000));
    assert_eq!(w.get("PRRR"), Some(0x800b_8204));
    // NS does not change the registers.
    let f = fmt(true, true);
    assert_eq!(f.hw_words(0xffff_c000, 1).get("TTBR"), Some(0xffff_c06a));
    let f = fmt(true, false);
    assert_eq!(f.hw_words(0x0000_0000, 1).get("TTBR"), Some(0x0000_0002));
}

#[test]
fn config() {
    let d = ArmV7sConfig::default();
    assert!(!d.ns);
    assert_eq!(d.oa_bits, 32);
    assert!(!d.coherent_walk);
    let f = ArmV7s::new(d).unwrap();
    assert_eq!(f.config(), d);
}

#[test]
fn bad_configs() {
    for oa_bits in [0, 1, 31, 33, 34, 35, 36, 40, 48, 52, 64, u32::MAX] {
        for ns in [false, true] {
            let cfg = ArmV7sConfig {
                ns,
                oa_bits,
                coherent_walk: false,
            };
            match ArmV7s::new(cfg) {
                Err(Error::BadConfig(msg)) => assert!(msg.contains("oa_bits must be 32"), "{msg}"),
                other => panic!("oa_bits {oa_bits} accepted: {other:?}"),
            }
        }
    }
}
