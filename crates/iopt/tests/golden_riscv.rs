//! Golden descriptor values for the RISC-V Sv39/Sv48/Sv57 format, worked out by hand from
//! the RISC-V privileged specification (Sv39/48/57, Svnapot, Svpbmt), the RISC-V IOMMU
//! specification (`iosatp`) and Linux `generic_pt/fmt/riscv.h`, never computed by the code
//! under test.
//!
//! Bit reminders: V 0x1, R 0x2, W 0x4, X 0x8, U 0x10, G 0x20, A 0x40, D 0x80; the PPN
//! (address bits 55:12) sits in bits 53:10, so a 4 KiB-aligned address `pa` contributes
//! `pa >> 2`; PBMT NC = bit 61 (0x2000_0000_0000_0000), IO = bit 62
//! (0x4000_0000_0000_0000); N = bit 63; the 64 KiB NAPOT size code is PPN bit 3 = PTE
//! bit 13 (0x2000).
//!
//! Leaf flag bytes (Linux's choices): read-write V|R|W|X|U|A|D = 0xdf; read-only
//! V|R|X|U|A = 0x5b; NOEXEC drops X (0xd7, 0x53); PRIV drops U (0xcf, 0x4b); with dirty
//! tracking a writable leaf has no D (0x5f). Table entries: V | pa >> 2.

use iopt::fmt::riscv::{Riscv, RiscvConfig};
use iopt::mem::ArenaMemory;
use iopt::{Error, Format, Gather, NoFlush, PageTable, Prot, Pte, VaMode};

const R: Prot = Prot::READ;
const W: Prot = Prot::WRITE;
const RW: Prot = Prot::READ.union(Prot::WRITE);
const NX: Prot = Prot::NOEXEC;
const PRIV: Prot = Prot::PRIV;
const C: Prot = Prot::CACHE;
const M: Prot = Prot::MMIO;

fn cfg(levels: u32) -> RiscvConfig {
    RiscvConfig {
        levels,
        ..RiscvConfig::default()
    }
}

fn fmt(c: RiscvConfig) -> Riscv {
    Riscv::new(c).unwrap()
}

fn sv39() -> Riscv {
    fmt(cfg(3))
}

fn sv48() -> Riscv {
    fmt(cfg(4))
}

fn sv57() -> Riscv {
    fmt(cfg(5))
}

fn pbmt() -> Riscv {
    fmt(RiscvConfig {
        svpbmt: true,
        ..RiscvConfig::default()
    })
}

fn dirty() -> Riscv {
    fmt(RiscvConfig {
        dirty_tracking: true,
        ..RiscvConfig::default()
    })
}

fn leaf(pa: u64) -> Pte {
    Pte::Leaf { pa, run_lg2: 0 }
}

fn napot(pa: u64) -> Pte {
    Pte::Leaf { pa, run_lg2: 4 }
}

/// (prot given, expected entry, prot read back)
type Case = (Prot, u64, Prot);

/// Checks make_leaf, decode and leaf_prot of single-entry leaves.
fn check(f: &Riscv, level: u32, pa: u64, cases: &[Case]) {
    for &(prot, want, back) in cases {
        let pte = f.make_leaf(level, pa, 0, prot);
        assert_eq!(pte, want, "level {level} pa {pa:#x} {prot:?}: got {pte:#x}");
        assert_eq!(f.decode(level, want), leaf(pa), "decode {want:#x}");
        assert_eq!(f.leaf_prot(level, want), back, "prot of {want:#x}");
    }
}

#[test]
fn defaults() {
    let c = RiscvConfig::default();
    assert_eq!(c.levels, 4);
    assert_eq!(c.oa_bits, 56);
    assert!(c.sign_extend);
    assert!(c.svnapot);
    assert!(!c.svpbmt);
    assert!(!c.dirty_tracking);
    assert_eq!(Riscv::NAME, "riscv");
    assert_eq!(Riscv::ENTRY_LG2, 3);
    assert_eq!(Riscv::MAX_LEVELS, 5);
    const { assert!(!Riscv::OA_IN_PLACE) };
}

#[test]
fn table_entries_every_level() {
    let f = sv57();
    let cases = [
        (4, 0x1000, 0x401),
        (3, 0x8000_1000, 0x2000_0401),
        (2, 0x12_3456_7000, 0x4_8d15_9c01),
        // Highest table address (PPN all ones).
        (1, 0x00ff_ffff_ffff_f000, 0x003f_ffff_ffff_fc01),
    ];
    for (level, pa, pte) in cases {
        assert_eq!(f.make_table(level, pa), pte, "level {level}");
        assert_eq!(f.decode(level, pte), Pte::Table { pa }, "level {level}");
    }
}

#[test]
fn leaves_every_level() {
    let f = sv57();
    // 4K, 2M, 1G, 512G, 256T: read-write and read-only.
    check(
        &f,
        0,
        0x1234_5000,
        &[(RW, 0x048d_14df, RW), (R, 0x048d_145b, R)],
    );
    check(
        &f,
        1,
        0x4060_0000,
        &[(RW, 0x1018_00df, RW), (R, 0x1018_005b, R)],
    );
    check(
        &f,
        2,
        0x1_4000_0000,
        &[(RW, 0x5000_00df, RW), (R, 0x5000_005b, R)],
    );
    check(
        &f,
        3,
        0x80_0000_0000,
        &[(RW, 0x20_0000_00df, RW), (R, 0x20_0000_005b, R)],
    );
    check(
        &f,
        4,
        0x1_0000_0000_0000,
        &[(RW, 0x4000_0000_00df, RW), (R, 0x4000_0000_005b, R)],
    );
}

#[test]
fn highest_output_address() {
    let f = sv57();
    check(
        &f,
        0,
        0x00ff_ffff_ffff_f000,
        &[(RW, 0x003f_ffff_ffff_fcdf, RW)],
    );
    check(
        &f,
        1,
        0x00ff_ffff_ffe0_0000,
        &[(RW, 0x003f_ffff_fff8_00df, RW)],
    );
    check(
        &f,
        2,
        0x00ff_ffff_c000_0000,
        &[(RW, 0x003f_ffff_f000_00df, RW)],
    );
    check(
        &f,
        3,
        0x00ff_ff80_0000_0000,
        &[(RW, 0x003f_ffe0_0000_00df, RW)],
    );
    check(
        &f,
        4,
        0x00ff_0000_0000_0000,
        &[(RW, 0x003f_c000_0000_00df, RW)],
    );
    check(&f, 0, 0, &[(R, 0x5b, R)]);
}

#[test]
fn prot_variants() {
    let f = sv48();
    check(
        &f,
        0,
        0x1234_5000,
        &[
            // W without R is reserved: write-only maps read-write (Linux sets R with W).
            (W, 0x048d_14df, RW),
            // Read-only stays executable unless NOEXEC.
            (R | NX, 0x048d_1453, R | NX),
            (RW | NX, 0x048d_14d7, RW | NX),
            // PRIV clears U.
            (RW | PRIV, 0x048d_14cf, RW | PRIV),
            (R | PRIV, 0x048d_144b, R | PRIV),
            (R | NX | PRIV, 0x048d_1443, R | NX | PRIV),
            (W | NX | PRIV, 0x048d_14c7, RW | NX | PRIV),
            // Without Svpbmt, CACHE and MMIO change nothing.
            (RW | C, 0x048d_14df, RW),
            (RW | M, 0x048d_14df, RW),
            (R | M | C, 0x048d_145b, R),
        ],
    );
    // The same choices at a large-page level.
    check(
        &f,
        2,
        0x1_4000_0000,
        &[
            (W | NX, 0x5000_00d7, RW | NX),
            (R | PRIV, 0x5000_004b, R | PRIV),
        ],
    );
    // Entries written by someone else: execute-only, and G/RSW/A-clear ignored.
    assert_eq!(f.leaf_prot(1, 0x1018_0009), PRIV);
    assert_eq!(f.decode(1, 0x1018_0009), leaf(0x4060_0000));
    assert_eq!(f.leaf_prot(0, 0x048d_173b), R);
    assert_eq!(f.decode(0, 0x048d_173b), leaf(0x1234_5000));
}

#[test]
fn svpbmt_memory_types() {
    let f = pbmt();
    check(
        &f,
        0,
        0x1234_5000,
        &[
            // No CACHE: NC (bit 61).
            (RW, 0x2000_0000_048d_14df, RW),
            (R, 0x2000_0000_048d_145b, R),
            // CACHE: PMA (0).
            (RW | C, 0x048d_14df, RW | C),
            // MMIO: IO (bit 62), whatever CACHE says.
            (RW | M, 0x4000_0000_048d_14df, RW | M),
            (RW | M | C, 0x4000_0000_048d_14df, RW | M),
            (R | M | NX, 0x4000_0000_048d_1453, R | M | NX),
        ],
    );
    check(&f, 2, 0x1_4000_0000, &[(RW | C, 0x5000_00df, RW | C)]);
    check(
        &f,
        3,
        0x80_0000_0000,
        &[(R | NX, 0x2000_0020_0000_0053, R | NX)],
    );
    // The reserved memory type 3 reads as neither cacheable nor device.
    assert_eq!(f.leaf_prot(0, 0x6000_0000_048d_14df), RW);
    // A 64K NAPOT run with NC.
    assert_eq!(f.make_leaf(0, 0x1234_0000, 4, RW), 0xa000_0000_048d_20df);
    assert_eq!(f.decode(0, 0xa000_0000_048d_20df), napot(0x1234_0000));
    // Table entries never carry PBMT.
    assert_eq!(f.make_table(1, 0x8000_1000), 0x2000_0401);
}

#[test]
fn napot_runs() {
    let f = sv39();
    // 64 KiB at 0x1234_0000: PPN 0x12340 with its low four bits set to 0b1000.
    let first = f.make_leaf(0, 0x1234_0000, 4, RW);
    assert_eq!(first, 0x8000_0000_048d_20df);
    assert_eq!(f.run_step(0, 4), 0);
    // Every entry of the run is the same value and decodes to the run's base.
    let last = first + f.run_step(0, 4) * 15;
    assert_eq!(last, 0x8000_0000_048d_20df);
    assert_eq!(f.decode(0, first), napot(0x1234_0000));
    assert_eq!(f.decode(0, last), napot(0x1234_0000));
    assert_eq!(f.leaf_prot(0, first), RW);
    // Read-only, not executable, privileged.
    assert_eq!(
        f.make_leaf(0, 0x5_0000, 4, R | NX | PRIV),
        0x8000_0000_0001_6043
    );
    assert_eq!(f.decode(0, 0x8000_0000_0001_6043), napot(0x5_0000));
    // The highest 64 KiB page.
    assert_eq!(
        f.make_leaf(0, 0x00ff_ffff_ffff_0000, 4, RW),
        0x803f_ffff_ffff_e0df
    );
    assert_eq!(
        f.decode(0, 0x803f_ffff_ffff_e0df),
        napot(0x00ff_ffff_ffff_0000)
    );
    // Hardware-set D in one alias does not change what it decodes to.
    assert_eq!(f.decode(0, 0x8000_0000_048d_205f), napot(0x1234_0000));

    // Without Svnapot, N is ignored (as Linux does): a 4 KiB leaf whose PPN includes
    // the size code's bit (address bit 15).
    let plain = fmt(RiscvConfig {
        levels: 3,
        svnapot: false,
        ..RiscvConfig::default()
    });
    assert_eq!(plain.decode(0, 0x8000_0000_048d_20df), leaf(0x1234_8000));
    // N above level 0 is reserved; decode ignores it.
    assert_eq!(f.decode(1, 0x8000_0000_1018_00df), leaf(0x4060_0000));
}

#[test]
fn decode_details() {
    let f = sv48();
    assert_eq!(f.decode(0, 0), Pte::Empty);
    // V clear: empty, whatever else is set.
    assert_eq!(f.decode(0, 0x048d_14de), Pte::Empty);
    assert_eq!(f.decode(2, 0x2000_0400), Pte::Empty);
    // A valid entry with R = W = X = 0 above level 0 is a table, even with (reserved)
    // A/D/U bits set.
    assert_eq!(f.decode(2, 0x2000_04d1), Pte::Table { pa: 0x8000_1000 });
    // At level 0 every valid entry is a leaf (Linux reads it so).
    assert_eq!(f.decode(0, 0x2000_0401), leaf(0x8000_1000));
    // A misaligned superpage (which hardware faults on) drops its low PPN bits.
    assert_eq!(f.decode(1, 0x1018_04df), leaf(0x4060_0000));
    assert_eq!(f.decode(3, 0x20_0000_04df), leaf(0x80_0000_0000));
    // Reserved bits 60:54 are not part of the address.
    assert_eq!(f.decode(0, 0x1fc0_0000_048d_14df), leaf(0x1234_5000));
}

#[test]
fn dirty_tracking_hooks() {
    let f = dirty();
    assert!(f.tracks_dirty());
    assert!(!sv48().tracks_dirty());
    // Writable leaves are made clean (A preset, D clear); read-only ones as before.
    check(
        &f,
        0,
        0x1234_5000,
        &[
            (RW, 0x048d_145f, RW),
            (R, 0x048d_145b, R),
            (W | NX, 0x048d_1457, RW | NX),
        ],
    );
    check(&f, 2, 0x1_4000_0000, &[(RW, 0x5000_005f, RW)]);
    assert_eq!(f.make_leaf(0, 0x1234_0000, 4, RW), 0x8000_0000_048d_205f);
    // The hardware sets D on a write.
    assert!(!f.leaf_dirty(0, 0x048d_145f));
    assert!(f.leaf_dirty(0, 0x048d_14df));
    assert!(f.leaf_dirty(2, 0x5000_00df));
    assert!(f.leaf_dirty(0, 0x8000_0000_048d_20df));
    // Cleaning clears D only.
    assert_eq!(f.leaf_clean(0, 0x048d_14df), 0x048d_145f);
    assert_eq!(f.leaf_clean(0, 0x048d_145f), 0x048d_145f);
    assert_eq!(
        f.leaf_clean(0, 0x8000_0000_048d_20df),
        0x8000_0000_048d_205f
    );
    assert_eq!(
        f.leaf_clean(0, 0x4000_0000_048d_14df),
        0x4000_0000_048d_145f
    );
    // Without dirty tracking, a writable leaf is made dirty already.
    assert!(sv48().leaf_dirty(0, sv48().make_leaf(0, 0x1234_5000, 0, RW)));
}

#[test]
fn geometry() {
    let all = [(sv39(), 3, 39), (sv48(), 4, 48), (sv57(), 5, 57)];
    for (f, levels, va) in all {
        assert_eq!(f.levels(), levels);
        assert_eq!(f.max_levels(), levels);
        assert_eq!(f.va_bits(levels - 1), va);
        assert_eq!(f.va_mode(), VaMode::SignExtended);
        assert_eq!(f.oa_bits(), 56);
        assert_eq!(f.min_table_bytes_lg2(), 12);
        // The top table decodes 9 bits like the others.
        assert_eq!(f.va_bits(levels - 1) - f.item_lg2(levels - 1), 9);
        let item = [12, 21, 30, 39, 48];
        // 4K and 64K (bit 4) at level 0; one entry at every other level.
        let runs = [0x11, 1, 1, 1, 1];
        for l in 0..levels {
            let i = l as usize;
            assert_eq!(f.item_lg2(l), item[i], "item {l}");
            assert_eq!(f.table_lg2(l), 9, "table {l}");
            assert_eq!(f.leaf_runs(l), runs[i], "runs {l}");
        }
        for l in 0..levels {
            assert_eq!(f.run_step(l, 0), 0);
        }
    }

    // Lower half only.
    for (levels, va) in [(3, 38), (4, 47), (5, 56)] {
        let f = fmt(RiscvConfig {
            levels,
            sign_extend: false,
            ..RiscvConfig::default()
        });
        assert_eq!(f.va_mode(), VaMode::Low);
        assert_eq!(f.va_bits(levels - 1), va);
        // Same entries either way.
        assert_eq!(f.make_table(1, 0x8000_1000), 0x2000_0401);
        assert_eq!(f.make_leaf(0, 0x1234_5000, 0, RW), 0x048d_14df);
    }

    // No Svnapot: single entries only.
    let f = fmt(RiscvConfig {
        svnapot: false,
        ..RiscvConfig::default()
    });
    assert_eq!([f.leaf_runs(0), f.leaf_runs(1)], [1, 1]);

    // Sizes not below 2^oa_bits are left out: 512G needs oa_bits >= 40, 256T >= 49.
    for (oa, want) in [
        (32, [0x11, 1, 1, 0, 0]),
        (39, [0x11, 1, 1, 0, 0]),
        (40, [0x11, 1, 1, 1, 0]),
        (48, [0x11, 1, 1, 1, 0]),
        (49, [0x11, 1, 1, 1, 1]),
    ] {
        let f = fmt(RiscvConfig {
            levels: 5,
            oa_bits: oa,
            ..RiscvConfig::default()
        });
        assert_eq!(f.oa_bits(), oa);
        let got: Vec<u32> = (0..5).map(|l| f.leaf_runs(l)).collect();
        assert_eq!(got, want, "oa_bits {oa}");
    }
}

#[test]
fn hw_words() {
    // iosatp: MODE (8/9/10) in bits 63:60, root PPN in 43:0.
    let w = sv39().hw_words(0x8000_0000, 2);
    assert_eq!(
        w.as_slice(),
        &[
            ("iosatp", 0x8000_0000_0008_0000),
            ("iosatp.MODE", 8),
            ("iosatp.PPN", 0x8_0000),
        ]
    );
    let w = sv48().hw_words(0x1234_5000, 3);
    assert_eq!(w.get("iosatp"), Some(0x9000_0000_0001_2345));
    assert_eq!(w.get("iosatp.MODE"), Some(9));
    assert_eq!(w.get("DC.tc.SADE"), None);
    let w = sv57().hw_words(0x00ff_ffff_ffff_f000, 4);
    assert_eq!(w.get("iosatp"), Some(0xa000_0fff_ffff_ffff));
    assert_eq!(w.get("iosatp.MODE"), Some(10));
    assert_eq!(w.get("iosatp.PPN"), Some(0x0fff_ffff_ffff));
    // Dirty tracking needs the IOMMU to update A/D: DC.tc.SADE.
    let w = dirty().hw_words(0x8000_0000, 3);
    assert_eq!(
        w.as_slice(),
        &[
            ("iosatp", 0x9000_0000_0008_0000),
            ("iosatp.MODE", 9),
            ("iosatp.PPN", 0x8_0000),
            ("DC.tc.SADE", 1),
        ]
    );
}

#[test]
fn bad_configs() {
    let bad = |c: RiscvConfig, msg: &'static str| {
        assert_eq!(Riscv::new(c), Err(Error::BadConfig(msg)), "{c:?}");
    };
    let d = RiscvConfig::default();
    bad(RiscvConfig { levels: 2, ..d }, "levels must be 3, 4 or 5");
    bad(RiscvConfig { levels: 6, ..d }, "levels must be 3, 4 or 5");
    bad(RiscvConfig { levels: 0, ..d }, "levels must be 3, 4 or 5");
    bad(RiscvConfig { oa_bits: 31, ..d }, "oa_bits must be 32..=56");
    bad(RiscvConfig { oa_bits: 57, ..d }, "oa_bits must be 32..=56");
    // The limits themselves are fine.
    for c in [
        RiscvConfig { levels: 3, ..d },
        RiscvConfig { levels: 5, ..d },
        RiscvConfig { oa_bits: 32, ..d },
        RiscvConfig { oa_bits: 56, ..d },
    ] {
        assert!(Riscv::new(c).is_ok(), "{c:?}");
    }
}

type Pt<'a> = PageTable<Riscv, &'a ArenaMemory, NoFlush>;

fn map(
    pt: &Pt<'_>,
    iova: u64,
    pa: u64,
    size: u64,
    count: usize,
    prot: Prot,
) -> (u64, Result<(), Error>) {
    // SAFETY: one thread uses the table, and no hardware walks it.
    unsafe { pt.map_pages(iova, pa, size, count, prot) }
}

fn unmap(pt: &Pt<'_>, iova: u64, size: u64, g: &mut Gather) -> (u64, Result<(), Error>) {
    // SAFETY: as in `map`.
    unsafe { pt.unmap_pages(iova, size, 1, g) }
}

fn tr(pt: &Pt<'_>, iova: u64) -> Option<iopt::Translation> {
    // SAFETY: as in `map`.
    unsafe { pt.translate(iova) }
}

/// A Sv39 table built through the engine in simulated memory; the raw entries are read
/// back and compared with hand-computed values. The arena hands out 4 KiB pages from its
/// base upwards, so the root is at 0x8000_0000 and the next tables follow it.
#[test]
fn end_to_end_sv39() {
    const BASE: u64 = 0x8000_0000;
    let mem = ArenaMemory::new(BASE, 1 << 20);
    let pt = PageTable::new(sv39(), &mem, NoFlush).unwrap();
    let info = pt.info();
    assert_eq!(info.root_pa, BASE);
    assert_eq!(info.levels, 3);
    // 4K | 64K | 2M | 1G.
    assert_eq!(info.pgsize_bitmap, 0x4021_1000);
    assert_eq!(info.aperture.start, 0);
    assert_eq!(info.aperture.last, 0x3f_ffff_ffff);
    assert_eq!(info.aperture.upper, Some((0xffff_ffc0_0000_0000, u64::MAX)));
    assert_eq!(info.hw.get("iosatp"), Some(0x8000_0000_0008_0000));

    let rd = |pa: u64| mem.read_u64(pa).unwrap();
    // 4K at IOVA 0x1000: root[0] -> level-1 table at BASE + 0x1000, its [0] -> level-0
    // table at BASE + 0x2000, entry [1].
    let (n, r) = map(&pt, 0x1000, 0x1234_5000, 0x1000, 1, RW);
    assert_eq!((n, r), (0x1000, Ok(())));
    assert_eq!(rd(BASE), 0x2000_0401);
    assert_eq!(rd(BASE + 0x1000), 0x2000_0801);
    assert_eq!(rd(BASE + 0x2008), 0x048d_14df);
    assert_eq!(rd(BASE + 0x2000), 0);
    assert_eq!(rd(BASE + 0x2010), 0);

    // 64K at IOVA 0x1_0000: entries [16..32) of the same level-0 table, all equal.
    let (n, r) = map(&pt, 0x1_0000, 0x5_0000, 0x1_0000, 1, R | NX);
    assert_eq!((n, r), (0x1_0000, Ok(())));
    for i in 16..32 {
        assert_eq!(
            rd(BASE + 0x2000 + i * 8),
            0x8000_0000_0001_6053,
            "entry {i}"
        );
    }
    assert_eq!(rd(BASE + 0x2000 + 32 * 8), 0);

    // 2M at IOVA 0x20_0000: level-1 entry [1].
    let (n, r) = map(&pt, 0x20_0000, 0x4060_0000, 0x20_0000, 1, RW);
    assert_eq!((n, r), (0x20_0000, Ok(())));
    assert_eq!(rd(BASE + 0x1008), 0x1018_00df);

    // 1G at the very top of the upper half: root entry [511].
    let top = 0xffff_ffff_c000_0000;
    let (n, r) = map(&pt, top, 0x1_4000_0000, 0x4000_0000, 1, RW | PRIV);
    assert_eq!((n, r), (0x4000_0000, Ok(())));
    assert_eq!(rd(BASE + 511 * 8), 0x5000_00cf);

    // Lookups through the engine.
    let t = tr(&pt, 0x1_7abc).unwrap();
    assert_eq!((t.pa, t.iova_base, t.size), (0x5_7abc, 0x1_0000, 0x1_0000));
    assert_eq!(t.prot, R | NX);
    let t = tr(&pt, top + 0x1234_5678).unwrap();
    assert_eq!((t.pa, t.size), (0x1_5234_5678, 0x4000_0000));
    assert_eq!(t.prot, RW | PRIV);
    assert_eq!(tr(&pt, 0x2000), None);
    assert_eq!(tr(&pt, 0x1abc).map(|t| t.pa), Some(0x1234_5abc));

    // Unmapping the 64K run clears all 16 entries.
    let mut g = Gather::new();
    let (n, r) = unmap(&pt, 0x1_0000, 0x1_0000, &mut g);
    assert_eq!((n, r), (0x1_0000, Ok(())));
    pt.sync(&mut g);
    for i in 16..32 {
        assert_eq!(rd(BASE + 0x2000 + i * 8), 0, "entry {i}");
    }
    assert_eq!(rd(BASE + 0x2008), 0x048d_14df);
}
