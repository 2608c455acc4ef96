//! Golden values for ARM64 LPAE with 52-bit output addresses (FEAT_LPA, 64K granule),
//! computed by hand from the Arm ARM (VMSAv8-64 descriptors with OA\[51:48\] in bits
//! 15:12; TTBR BADDR\[51:48\] in bits 5:2; TCR.IPS / VTCR.PS 0b110) and Linux
//! io-pgtable-arm.c (`paddr_to_iopte`, `iopte_to_paddr`, `ARM_LPAE_MAX_ADDR_BITS` 52,
//! 4 TB blocks when oas > 48) and arch/arm64 `phys_to_ttbr`.
//!
//! Stage-1 RW attributes are 0xe43 for a page and 0xe41 for a block (see
//! golden_arm_lpae.rs), stage-2 RW 0x6d7 / 0x6d5; the contiguous bit is bit 52.

use iopt::fmt::arm_lpae::{ArmLpae, ArmLpae52, ArmLpaeConfig, Granule, Stage};
use iopt::mem::ArenaMemory;
use iopt::{Error, Format, Gather, NoFlush, Prot, Pte, Table, VaMode};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const K64: u64 = 1 << 16;
const M2: u64 = 1 << 21;
const P48: u64 = 1 << 48;

fn cfg(stage: Stage, ias: u32) -> ArmLpaeConfig {
    ArmLpaeConfig {
        stage,
        granule: Granule::K64,
        ias,
        oas: 52,
        ..ArmLpaeConfig::default()
    }
}

fn fmt(stage: Stage, ias: u32) -> ArmLpae52 {
    ArmLpae52::new(cfg(stage, ias)).unwrap()
}

fn leaf(pa: u64, run_lg2: u32) -> Pte {
    Pte::Leaf { pa, run_lg2 }
}

fn bad(c: ArmLpaeConfig) -> &'static str {
    match ArmLpae52::new(c) {
        Err(Error::BadConfig(m)) => m,
        other => panic!("expected BadConfig for {c:?}, got {other:?}"),
    }
}

#[test]
fn constants() {
    assert_eq!(ArmLpae52::NAME, "arm64-lpae52");
    assert_eq!(ArmLpae52::ENTRY_LG2, 3);
    // The split address field: entries are not the previous one plus the page size
    // across a 2^48 boundary, so the engine must not fill by addition.
    const { assert!(!ArmLpae52::OA_IN_PLACE) };
    const { assert!(ArmLpae::OA_IN_PLACE) };
    let f = fmt(Stage::S1, 48);
    assert_eq!(f.make_leaf(0, P48 - K64, 0, RW), 0x0000_ffff_ffff_0e43);
    assert_eq!(f.make_leaf(0, P48, 0, RW), 0x0000_0000_0000_1e43);
    assert_ne!(
        f.make_leaf(0, P48, 0, RW),
        f.make_leaf(0, P48 - K64, 0, RW) + K64
    );
}

#[test]
fn geometry() {
    // (stage, ias, levels, top entries lg2, leaf_runs per level)
    let cases: &[(Stage, u32, u32, u32, &[u32])] = &[
        // 52-bit input (FEAT_LVA): ARM levels 1..3, 1024 entries at the top.
        (Stage::S1, 52, 3, 10, &[0x21, 0x21, 0x01]),
        (Stage::S1, 48, 3, 6, &[0x21, 0x21, 0x01]),
        (Stage::S1, 43, 3, 1, &[0x21, 0x21, 0x01]),
        (Stage::S1, 42, 2, 13, &[0x21, 0x21]),
        (Stage::S1, 32, 2, 3, &[0x21, 0x01]),
        (Stage::S2, 52, 3, 10, &[0x21, 0x21, 0x01]),
        (Stage::S2, 44, 3, 2, &[0x21, 0x21, 0x01]),
        (Stage::S2, 40, 2, 11, &[0x21, 0x21]),
    ];
    for &(stage, ias, levels, top, runs) in cases {
        let f = fmt(stage, ias);
        assert_eq!(f.levels(), levels, "{stage:?} {ias}");
        assert_eq!(f.start_level_arm(), 4 - levels);
        assert_eq!(f.va_bits(levels - 1), ias);
        assert_eq!(f.va_bits(levels - 1) - f.item_lg2(levels - 1), top);
        for (l, &r) in runs.iter().enumerate() {
            assert_eq!(f.item_lg2(l as u32), [16, 29, 42][l]);
            assert_eq!(f.table_lg2(l as u32), 13);
            assert_eq!(f.leaf_runs(l as u32), r, "{stage:?} {ias} level {l}");
        }
        assert_eq!(f.oa_bits(), 52);
        assert_eq!(f.table_pa_bits(), 52);
        // The 64-byte alignment a 52-bit TTBR needs.
        assert_eq!(f.min_table_bytes_lg2(), 6);
    }
    assert_eq!(fmt(Stage::S1, 48).va_mode(), VaMode::Low);
}

#[test]
fn tables() {
    let f = fmt(Stage::S1, 52);
    for l in 1..3 {
        assert_eq!(
            f.make_table(l, 0x000f_1234_5678_0000),
            0x0000_1234_5678_f003
        );
        assert_eq!(
            f.decode(l, 0x0000_1234_5678_f003),
            Pte::Table {
                pa: 0x000f_1234_5678_0000
            }
        );
    }
    assert_eq!(f.make_table(1, P48), 0x1003);
    assert_eq!(f.decode(1, 0x1003), Pte::Table { pa: P48 });
    assert_eq!(
        f.make_table(2, 0x0000_8000_0001_0000),
        0x0000_8000_0001_0003
    );
    assert_eq!(
        f.make_table(2, 0x000f_ffff_ffff_0000),
        0x0000_ffff_ffff_f003
    );
    assert_eq!(
        f.decode(2, 0x0000_ffff_ffff_f003),
        Pte::Table {
            pa: 0x000f_ffff_ffff_0000
        }
    );
}

#[test]
fn leaves() {
    let f = fmt(Stage::S1, 52);
    // 64K pages.
    assert_eq!(
        f.make_leaf(0, 0x000a_bcde_f012_0000, 0, RW),
        0x0000_bcde_f012_ae43
    );
    assert_eq!(
        f.decode(0, 0x0000_bcde_f012_ae43),
        leaf(0x000a_bcde_f012_0000, 0)
    );
    assert_eq!(f.leaf_prot(0, 0x0000_bcde_f012_ae43), RW);
    assert_eq!(
        f.make_leaf(0, 0x000f_ffff_ffff_0000, 0, RW),
        0x0000_ffff_ffff_fe43
    );
    assert_eq!(
        f.decode(0, 0x0000_ffff_ffff_fe43),
        leaf(0x000f_ffff_ffff_0000, 0)
    );
    assert_eq!(
        f.make_leaf(
            0,
            0x0001_0000_1234_0000,
            0,
            Prot::READ | Prot::CACHE | Prot::NOEXEC
        ),
        0x0060_0000_1234_1fc7
    );
    assert_eq!(
        f.leaf_prot(0, 0x0060_0000_1234_1fc7),
        Prot::READ | Prot::CACHE | Prot::NOEXEC
    );
    // 512M blocks.
    assert_eq!(
        f.make_leaf(1, 0x0003_0000_2000_0000, 0, RW),
        0x0000_0000_2000_3e41
    );
    assert_eq!(
        f.decode(1, 0x0000_0000_2000_3e41),
        leaf(0x0003_0000_2000_0000, 0)
    );
    assert_eq!(
        f.make_leaf(1, 0x000f_ffff_e000_0000, 0, RW),
        0x0000_ffff_e000_fe41
    );
    // 4T blocks at ARM level 1.
    assert_eq!(
        f.make_leaf(2, 0x000f_fc00_0000_0000, 0, RW),
        0x0000_fc00_0000_fe41
    );
    assert_eq!(
        f.decode(2, 0x0000_fc00_0000_fe41),
        leaf(0x000f_fc00_0000_0000, 0)
    );
    assert_eq!(f.make_leaf(2, P48, 0, RW), 0x1e41);
    assert_eq!(f.decode(2, 0x1e41), leaf(P48, 0));
    assert_eq!(
        f.decode(2, 0x0000_0400_0000_0e41),
        leaf(0x0400_0000_0000, 0)
    );
    // Reserved: 0b01 at ARM level 3.
    assert_eq!(f.decode(0, 0x0000_bcde_f012_ae41), Pte::Empty);
}

#[test]
fn contiguous_runs_near_2_pow_48() {
    let f = fmt(Stage::S1, 48);
    assert_eq!(f.run_step(0, 5), K64);
    // 32 x 64K at 2^50 + 2M.
    let first = f.make_leaf(0, 0x0004_0000_0020_0000, 5, RW);
    assert_eq!(first, 0x0010_0000_0020_4e43);
    assert_eq!(first + 31 * f.run_step(0, 5), 0x0010_0000_003f_4e43);
    assert_eq!(
        f.decode(0, 0x0010_0000_003f_4e43),
        leaf(0x0004_0000_0020_0000, 5)
    );
    // The last run below 2^48 and the first one above.
    let below = f.make_leaf(0, P48 - M2, 5, RW);
    assert_eq!(below, 0x0010_ffff_ffe0_0e43);
    assert_eq!(below + 31 * K64, 0x0010_ffff_ffff_0e43);
    assert_eq!(f.decode(0, 0x0010_ffff_ffff_0e43), leaf(P48 - M2, 5));
    let above = f.make_leaf(0, P48, 5, RW);
    assert_eq!(above, 0x0010_0000_0000_1e43);
    assert_eq!(above + 31 * K64, 0x0010_0000_001f_1e43);
    assert_eq!(f.decode(0, 0x0010_0000_001f_1e43), leaf(P48, 5));
    // 32 x 512M = 16G.
    assert_eq!(f.run_step(1, 5), 1 << 29);
    let b = f.make_leaf(1, 0x0007_fffc_0000_0000, 5, RW);
    assert_eq!(b, 0x0010_fffc_0000_7e41);
    assert_eq!(b + 31 * (1 << 29), 0x0010_ffff_e000_7e41);
    assert_eq!(
        f.decode(1, 0x0010_ffff_e000_7e41),
        leaf(0x0007_fffc_0000_0000, 5)
    );
}

#[test]
fn stage2_entries() {
    let f = fmt(Stage::S2, 52);
    assert_eq!(
        f.make_leaf(0, 0x0008_0000_0001_0000, 0, RW),
        0x0000_0000_0001_86d7
    );
    assert_eq!(
        f.decode(0, 0x0000_0000_0001_86d7),
        leaf(0x0008_0000_0001_0000, 0)
    );
    assert_eq!(f.leaf_prot(0, 0x0000_0000_0001_86d7), RW);
    assert_eq!(
        f.make_leaf(2, 0x0004_0400_0000_0000, 0, RW | Prot::CACHE),
        0x0000_0400_0000_47fd
    );
    assert_eq!(
        f.decode(2, 0x0000_0400_0000_47fd),
        leaf(0x0004_0400_0000_0000, 0)
    );
    assert_eq!(
        f.make_table(2, 0x000c_0000_0002_0000),
        0x0000_0000_0002_c003
    );
}

#[test]
fn hw_words() {
    // Stage 1: TTBR holds BADDR[51:48] in bits 5:2; TCR T0SZ 12, TG0 64K, IPS 0b110.
    let f = fmt(Stage::S1, 52);
    let w = f.hw_words(0x000a_0000_1234_0000, 2);
    assert_eq!(w.get("TTBR"), Some(0x0000_0000_1234_0028));
    assert_eq!(w.get("TCR"), Some(0x0000_0006_0080_750c));
    assert_eq!(w.get("MAIR"), Some(0xf404_ff44));
    // A root below 2^48 is unchanged; 64-byte alignment is enough.
    assert_eq!(
        f.hw_words(0x0000_8765_4321_0040, 2).get("TTBR"),
        Some(0x0000_8765_4321_0040)
    );
    assert_eq!(
        f.hw_words(0x000f_ffff_ffff_ffc0, 2).get("TTBR"),
        Some(0x0000_ffff_ffff_fffc)
    );
    // Non-coherent, 48-bit input.
    let f = ArmLpae52::new(ArmLpaeConfig {
        coherent_walk: false,
        ..cfg(Stage::S1, 48)
    })
    .unwrap();
    assert_eq!(
        f.hw_words(0x1000, 2).get("TCR"),
        Some(0x0000_0006_0080_6010)
    );
    // TTBR1: T1SZ 16, TG1 64K (0b11), EPD0.
    let f = ArmLpae52::new(ArmLpaeConfig {
        ttbr1: true,
        ..cfg(Stage::S1, 48)
    })
    .unwrap();
    assert_eq!(f.va_mode(), VaMode::High);
    assert_eq!(
        f.hw_words(0x1000, 2).get("TCR"),
        Some(0x0000_0006_f510_0080)
    );
    // Stage 2: VTTBR folded the same way; VTCR PS 0b110, TG0 64K, SL0 level 1.
    let f = fmt(Stage::S2, 52);
    let w = f.hw_words(0x0001_0000_0001_0000, 2);
    assert_eq!(w.get("VTTBR"), Some(0x0000_0000_0001_0004));
    assert_eq!(w.get("VTCR"), Some(0x8006_758c));
    assert_eq!(w.as_slice().len(), 2);
    let f = fmt(Stage::S2, 44);
    assert_eq!(f.hw_words(0x2000, 2).get("VTCR"), Some(0x8006_7594));
    // 40 bits: start at ARM level 2 (SL0 0b01).
    let f = fmt(Stage::S2, 40);
    assert_eq!(f.hw_words(0x2000, 1).get("VTCR"), Some(0x8006_7558));
}

#[test]
fn bad_configs() {
    let granule = "oas 52 needs the 64K granule (FEAT_LPA); 52-bit output with the 4K or 16K \
                   granule needs FEAT_LPA2, which is not implemented";
    for g in [Granule::K4, Granule::K16] {
        for stage in [Stage::S1, Stage::S2] {
            assert_eq!(
                bad(ArmLpaeConfig {
                    granule: g,
                    ..cfg(stage, 48)
                }),
                granule
            );
        }
    }
    for oas in [32, 40, 48, 51, 53] {
        assert_eq!(
            bad(ArmLpaeConfig {
                oas,
                ..cfg(Stage::S1, 48)
            }),
            "ArmLpae52 needs oas 52 (use ArmLpae for oas 32..=48)"
        );
    }
    for ias in [0, 31, 53, 64] {
        assert_eq!(bad(cfg(Stage::S1, ias)), "ias must be 32..=52");
    }
    assert_eq!(
        bad(ArmLpaeConfig {
            ttbr1: true,
            ..cfg(Stage::S2, 48)
        }),
        "ttbr1 is a stage 1 option"
    );
    assert_eq!(
        bad(ArmLpaeConfig {
            ns: true,
            ..cfg(Stage::S2, 48)
        }),
        "ns is a stage 1 option"
    );
    for ias in 32..=52 {
        assert!(ArmLpae52::new(cfg(Stage::S1, ias)).is_ok());
        assert!(ArmLpae52::new(cfg(Stage::S2, ias)).is_ok());
    }
}

/// Mappings whose output addresses cross 2^48, with table pages above 2^48 too: the raw
/// entries read back from the simulated memory, translations, and a clean unmap.
#[test]
fn end_to_end_across_2_pow_48() {
    // Table memory just below 2^52.
    let base = 0x000f_ffff_fff0_0000;
    let mut t = Table::new(fmt(Stage::S1, 48), ArenaMemory::new(base, 1 << 20), NoFlush).unwrap();
    let info = t.info();
    assert_eq!(info.root_pa, base);
    assert_eq!(info.oa_bits, 52);
    // 4T blocks are only in tops that reach them: ias 48 has a 64-entry top at ARM level 1.
    assert_eq!(
        info.pgsize_bitmap,
        (1 << 42) | (1 << 34) | (1 << 29) | (1 << 21) | (1 << 16)
    );
    assert_eq!(info.hw.get("TTBR"), Some(0x0000_ffff_fff0_003c));
    // Eight 64K pages, four on each side of 2^48 (not a run: 2M-unaligned output).
    t.map(0x1_0000_0000, P48 - 4 * K64, 8 * K64, RW).unwrap();
    // Two 2M runs: the last below 2^48 and the first above it.
    t.map(0x1_0040_0000, P48 - M2, 2 * M2, RW).unwrap();
    let m = t.memory();
    // Root at `base`; the two lower tables are the next 64K pages, in the order the
    // engine takes them. Their descriptors hold PA[51:48] = 0xf in bits 15:12.
    let tables = [
        (0x0000_ffff_fff1_f003, base + 0x1_0000),
        (0x0000_ffff_fff2_f003, base + 0x2_0000),
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
    let l3 = follow(l2 + 8 * 8);
    assert_ne!(l2, l3);
    let want: [u64; 8] = [
        0x0000_ffff_fffc_0e43,
        0x0000_ffff_fffd_0e43,
        0x0000_ffff_fffe_0e43,
        0x0000_ffff_ffff_0e43,
        0x0000_0000_0000_1e43,
        0x0000_0000_0001_1e43,
        0x0000_0000_0002_1e43,
        0x0000_0000_0003_1e43,
    ];
    for (i, &w) in want.iter().enumerate() {
        assert_eq!(m.read_u64(l3 + 8 * i as u64), Some(w), "page {i}");
    }
    // IOVA 4G + 4M is entry 64 of the same level-3 table.
    let run = l3 + 64 * 8;
    assert_eq!(m.read_u64(run), Some(0x0010_ffff_ffe0_0e43));
    assert_eq!(m.read_u64(run + 31 * 8), Some(0x0010_ffff_ffff_0e43));
    assert_eq!(m.read_u64(run + 32 * 8), Some(0x0010_0000_0000_1e43));
    assert_eq!(m.read_u64(run + 63 * 8), Some(0x0010_0000_001f_1e43));
    for i in 0..8 {
        let tr = t.translate(0x1_0000_0000 + i * K64 + 0x123).unwrap();
        assert_eq!(tr.pa, P48 - 4 * K64 + i * K64 + 0x123);
        assert_eq!(tr.size, K64);
    }
    let tr = t.translate(0x1_0060_0000 + 0x4567).unwrap();
    assert_eq!((tr.pa, tr.size), (P48 + 0x4567, M2));
    let tr = t.translate(0x1_005f_ffff).unwrap();
    assert_eq!((tr.pa, tr.size), (P48 - 1, M2));
    // A 4T block at IOVA 2^46 (top entry 16), output 2^51 + 2^48.
    t.map(0x4000_0000_0000, 0x0009_0000_0000_0000, 1 << 42, Prot::READ)
        .unwrap();
    assert_eq!(
        t.memory().read_u64(base + 16 * 8),
        Some(0x0000_0000_0000_9ec1)
    );
    assert_eq!(
        t.translate(0x4123_4567_89ab).unwrap().pa,
        0x0009_0123_4567_89ab
    );
    let mut g = Gather::new();
    let done = t.unmap(0, 1 << 48, &mut g).unwrap();
    assert_eq!(done.bytes(), 8 * K64 + 2 * M2 + (1 << 42));
    t.sync(&mut g);
    assert_eq!(t.mem_stats().pages, 1);
}

/// The 52-bit descriptor address field, written independently of the format: bits
/// 47:16 in place, 51:48 in 15:12.
fn oracle_field(pa: u64) -> u64 {
    (pa & 0x0000_ffff_ffff_0000) | ((pa >> 48) & 0xf) << 12
}

/// The inverse of [`oracle_field`] for a table or page descriptor.
fn oracle_pa(pte: u64) -> u64 {
    (pte & 0x0000_ffff_ffff_0000) | ((pte >> 12) & 0xf) << 48
}

/// Seeded mixes of page ranges whose outputs straddle 2^48 and 2^49 (at every offset
/// from 64K to 4M around the boundary, single pages and 2M runs): every page's raw
/// descriptor, found by walking the memory image with the oracle, and every translation.
#[test]
fn seeded_ranges_across_oa_boundaries() {
    let mut x = 0x5eed_u64;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for round in 0..24 {
        let base = 0x000f_ffff_ff00_0000;
        let mut t =
            Table::new(fmt(Stage::S1, 48), ArenaMemory::new(base, 4 << 20), NoFlush).unwrap();
        let boundary = if round % 2 == 0 { P48 } else { 2 * P48 };
        let mut ranges = Vec::new();
        for slot in 0..6u64 {
            // Output start 64K..4M below the boundary, optionally 2M-aligned (runs).
            let below = if next(2) == 0 {
                (1 + next(2)) * M2
            } else {
                (1 + next(64)) * K64
            };
            let pa = boundary - below;
            let len = below + (1 + next(64)) * K64;
            // Half the ranges are congruent modulo 2M (runs), half one page off (single
            // pages straddling the boundary within one fresh table).
            let shift = next(2) * K64;
            let iova = 0x10_0000_0000 * (slot + 1) + (pa % M2) + shift;
            t.map(iova, pa, len, RW).unwrap();
            ranges.push((iova, pa, len));
        }
        let m = t.memory();
        let root = t.info().root_pa;
        for &(iova, pa, len) in &ranges {
            for off in (0..len).step_by(K64 as usize) {
                let va = iova + off;
                let tr = t.translate(va + 0x10).unwrap();
                assert_eq!(tr.pa, pa + off + 0x10, "{va:#x}");
                // Walk the image: top (ARM level 1) -> level 2 -> level 3.
                let e1 = m.read_u64(root + (va >> 42) * 8).unwrap();
                assert_eq!(e1 & 0b11, 0b11);
                let e2 = m.read_u64(oracle_pa(e1) + ((va >> 29) & 8191) * 8).unwrap();
                assert_eq!(e2 & 0b11, 0b11);
                let e3 = m.read_u64(oracle_pa(e2) + ((va >> 16) & 8191) * 8).unwrap();
                let cont = if tr.size == M2 { 1 << 52 } else { 0 };
                assert_eq!(e3, cont | oracle_field(pa + off) | 0xe43, "{va:#x}");
            }
        }
        let mut g = Gather::new();
        for &(iova, _, len) in &ranges {
            let end = (iova + len).next_multiple_of(M2);
            let start = iova & !(M2 - 1);
            let _ = t.unmap(start, end - start, &mut g).unwrap();
        }
        t.sync(&mut g);
        assert_eq!(t.mem_stats().pages, 1);
    }
}
