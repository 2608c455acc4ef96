//! Runs the built `iopt` binary: `info` for every format (exact values, worked out by
//! hand from the format definitions), refused configurations, and the demonstration.

use std::process::{Command, Output};

/// Runs `iopt` with `args`.
fn iopt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iopt"))
        .args(args)
        .output()
        .expect("the iopt binary runs")
}

/// Runs `iopt` with `args`, expects success, returns stdout.
fn stdout_of(args: &[&str]) -> String {
    let out = iopt(args);
    assert!(
        out.status.success(),
        "iopt {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "iopt {args:?} wrote to stderr");
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Runs `iopt info` with `args` and returns the value of the line `key: value`
/// (or `key = value` for hardware words).
fn info(args: &[&str]) -> impl Fn(&str) -> String {
    let mut all = vec!["info"];
    all.extend_from_slice(args);
    let text = stdout_of(&all);
    move |key: &str| {
        text.lines()
            .find_map(|line| {
                let line = line.trim_start();
                line.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix(':').or_else(|| rest.strip_prefix(" =")))
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no line {key:?} in:\n{text}"))
    }
}

/// Runs `iopt` with `args`, expects failure with `code`, returns stderr.
fn failure(args: &[&str], code: i32) -> String {
    let out = iopt(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "iopt {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "iopt {args:?} printed a report");
    assert!(
        !stderr.contains("panicked"),
        "iopt {args:?} panicked: {stderr}"
    );
    stderr
}

#[test]
fn info_arm64_s1_default_is_exact() {
    // TCR: T0SZ 16, IRGN0/ORGN0 write-back (1 << 8 | 1 << 10), SH0 inner (3 << 12),
    // TG0 4K (0), EPD1 (1 << 23), IPS 48-bit (5 << 32).
    let expected = "\
format:     arm64-s1 (arm64-lpae)
spec:       arm64-s1
config:     stage 1, 4K granule, ias 48, oas 48, start level 0, TTBR0, contiguous hints, coherent walk
levels:     4
top table:  512 entries, 4K
page sizes: 4K 64K 2M 32M 1G 16G (bitmap 0x442211000)
aperture:   0x0 ..= 0xffffffffffff
oa bits:    48
root pa:    0x80000000
hw words:
  TTBR = 0x80000000
  TCR = 0x500803510
  MAIR = 0xf404ff44
";
    assert_eq!(stdout_of(&["info", "--format", "arm64-s1"]), expected);
    // The same in the spec form, with the defaults spelled out.
    assert_eq!(
        stdout_of(&["info", "--format", "arm64-s1:granule=4k,ias=48,oas=48"]),
        expected
    );
    // Spelled out, the defaults give the same table.
    assert_eq!(
        stdout_of(&[
            "info",
            "--format",
            "arm64-s1",
            "--granule",
            "4k",
            "--ias",
            "48",
            "--oas",
            "48"
        ]),
        expected
    );
}

#[test]
fn info_arm64_s1_granules_and_options() {
    let k16 = info(&["--format", "arm64-s1", "--granule", "16k"]);
    assert_eq!(k16("levels"), "4");
    assert_eq!(k16("top table"), "2 entries, 64B");
    assert_eq!(k16("page sizes"), "16K 2M 32M 1G (bitmap 0x42204000)");

    let k64 = info(&["--format", "arm64-s1", "--granule", "64k"]);
    assert_eq!(k64("levels"), "3");
    assert_eq!(k64("top table"), "64 entries, 512B");
    assert_eq!(k64("page sizes"), "64K 2M 512M 16G (bitmap 0x420210000)");
    // TG0 64K = 1 << 14.
    assert_eq!(k64("TCR"), "0x500807510");

    // TTBR1, 64K, 42-bit: T1SZ 22, SH1 outer (2 << 12), TG1 64K (3 << 14), all in the
    // upper half of TCR, EPD0 (1 << 7); no contiguous runs.
    let hi = info(&[
        "--format",
        "arm64-s1",
        "--ttbr1",
        "--granule",
        "64k",
        "--ias",
        "42",
        "--no-contig",
        "--incoherent-walk",
        "--ns",
    ]);
    assert_eq!(hi("levels"), "2");
    assert_eq!(hi("page sizes"), "64K 512M (bitmap 0x20010000)");
    assert_eq!(hi("aperture"), "0xfffffc0000000000 ..= 0xffffffffffffffff");
    assert_eq!(hi("TCR"), "0x5e0160080");
    assert!(hi("config").ends_with("TTBR1, no contiguous hints, non-coherent walk, non-secure"));
}

#[test]
fn info_arm64_s2_concatenated() {
    let s2 = info(&["--format", "arm64-s2", "--ias", "40"]);
    assert_eq!(s2("levels"), "3");
    assert_eq!(s2("top table"), "1024 entries, 8K (2 concatenated tables)");
    assert_eq!(s2("aperture"), "0x0 ..= 0xffffffffff");
    assert_eq!(s2("VTTBR"), "0x80000000");
    // RES1 (1 << 31), PS 48-bit (5 << 16), SL0 level 1 (1 << 6), SH0/IRGN0/ORGN0
    // write-back inner (0x3500), T0SZ 24.
    assert_eq!(s2("VTCR"), "0x80053558");
}

#[test]
fn info_amdv1() {
    let amd = info(&["--format", "amdv1"]);
    assert_eq!(amd("levels"), "3 (grows up to 6)");
    assert_eq!(
        amd("page sizes"),
        "4K 8K 16K 32K 64K 128K 256K 512K 1M 2M 4M 8M 16M 32M 64M 128M 256M 512M 1G 2G \
         4G 8G 16G 32G 64G 128G 256G 1T 2T 4T 8T 16T 32T 64T 128T 256T 512T 1P 2P \
         (bitmap 0xfff7ffffff000)"
    );
    assert_eq!(amd("aperture"), "0x0 ..= 0xffffffffffffffff");
    assert_eq!(amd("oa bits"), "52");
    assert_eq!(amd("root pa"), "0x80000000");
    assert_eq!(amd("DTE.HostPtRootPtr"), "0x80000000");
    assert_eq!(amd("DTE.Mode"), "0x3");

    let fixed = info(&["--format", "amdv1", "--levels", "6", "--no-dynamic-top"]);
    assert_eq!(fixed("levels"), "6");
    assert_eq!(fixed("top table"), "128 entries, 4K");
    assert_eq!(fixed("DTE.Mode"), "0x6");
}

#[test]
fn info_x86_64() {
    let four = info(&["--format", "x86-64"]);
    assert_eq!(four("levels"), "4");
    assert_eq!(four("page sizes"), "4K 2M 1G (bitmap 0x40201000)");
    assert_eq!(
        four("aperture"),
        "0x0 ..= 0x7fffffffffff, 0xffff800000000000 ..= 0xffffffffffffffff"
    );
    assert_eq!(four("CR3"), "0x80000000");
    assert_eq!(four("FLPM"), "0x0");

    let five = info(&["--format", "x86-64", "--levels", "5"]);
    assert_eq!(five("levels"), "5");
    assert_eq!(
        five("aperture"),
        "0x0 ..= 0xffffffffffffff, 0xff00000000000000 ..= 0xffffffffffffffff"
    );
    assert_eq!(five("FLPM"), "0x1");

    let low = info(&["--format", "x86-64", "--no-sign-extend"]);
    assert_eq!(low("aperture"), "0x0 ..= 0x7fffffffffff");
}

#[test]
fn info_vtd_ss() {
    let four = info(&["--format", "vtd-ss"]);
    assert_eq!(four("levels"), "4");
    assert_eq!(four("top table"), "512 entries, 4K");
    assert_eq!(four("page sizes"), "4K 2M 1G (bitmap 0x40201000)");
    assert_eq!(four("aperture"), "0x0 ..= 0xffffffffffff");
    assert_eq!(four("oa bits"), "52");
    assert_eq!(four("SSPTPTR"), "0x80000000");
    assert_eq!(four("AW"), "0x2");
    assert_eq!(four("SSADE"), "0x0");

    let three = info(&["--format", "vtd-ss", "--levels", "3", "--no-2m"]);
    assert_eq!(three("aperture"), "0x0 ..= 0x7fffffffff");
    assert_eq!(three("page sizes"), "4K 1G (bitmap 0x40001000)");
    assert_eq!(three("AW"), "0x1");

    let five = info(&["--format", "vtd-ss", "--levels", "5", "--dirty-tracking"]);
    assert_eq!(five("aperture"), "0x0 ..= 0x1ffffffffffffff");
    assert_eq!(five("AW"), "0x3");
    assert_eq!(five("SSADE"), "0x1");

    let amd = info(&["--format", "amdv1", "--dirty-tracking"]);
    assert_eq!(amd("DTE.HAD"), "0x3");
}

#[test]
fn info_armv7s() {
    let v7s = info(&["--format", "armv7s"]);
    assert_eq!(v7s("levels"), "2");
    assert_eq!(v7s("top table"), "4096 entries, 16K");
    assert_eq!(v7s("page sizes"), "4K 64K 1M 16M (bitmap 0x1111000)");
    assert_eq!(v7s("aperture"), "0x0 ..= 0xffffffff");
    assert_eq!(v7s("oa bits"), "32");
    // Root | S (shareable walks); non-coherent, so no cacheability bits.
    assert_eq!(v7s("TTBR"), "0x80000002");
    assert_eq!(v7s("TCR"), "0x0");
    assert_eq!(v7s("NMRR"), "0x40004000");
    assert_eq!(v7s("PRRR"), "0x800b8204");

    let ns = info(&["--format", "armv7s", "--ns"]);
    assert_eq!(ns("config"), "oas 32, non-secure, non-coherent walk");
}

#[test]
fn info_dart() {
    // t8103: v1, 16K, ias 32: IOVA bits 31:25 index a 128-entry top in a 16 KiB table.
    let m1 = info(&["--format", "dart"]);
    assert_eq!(
        m1("config"),
        "v1, 16K granule, ias 32, oas 36, T8020 registers, 1 TTBR"
    );
    assert_eq!(m1("levels"), "2");
    assert_eq!(m1("top table"), "128 entries, 16K");
    assert_eq!(m1("page sizes"), "16K (bitmap 0x4000)");
    assert_eq!(m1("aperture"), "0x0 ..= 0xffffffff");
    assert_eq!(m1("oa bits"), "36");
    // T8020 TTBR: valid (bit 31) | 0x8000_0000 >> 12; unused TTBRs cleared; TCR
    // translation enable (bit 7).
    assert_eq!(m1("TTBR0"), "0x80080000");
    assert_eq!(m1("TTBR3"), "0x0");
    assert_eq!(m1("TCR"), "0x80");

    // 4K: four 4 KiB first-level tables in one 16 KiB top, one TTBR each.
    let k4 = info(&["--format", "dart", "--granule", "4k"]);
    assert_eq!(k4("top table"), "2048 entries, 16K (4 concatenated tables)");
    assert_eq!(k4("page sizes"), "4K (bitmap 0x1000)");
    assert_eq!(k4("TTBR1"), "0x80080001");
    assert_eq!(k4("TTBR3"), "0x80080003");

    // T6020: v2, T8110 registers, three levels: TTBR = valid (bit 0) | (pa >> 14) << 2,
    // TCR = translation enable | FOUR_LEVEL (bit 3).
    let t6020 = info(&[
        "--format",
        "dart",
        "--dart-version",
        "2",
        "--dart-regs",
        "t8110",
        "--ias",
        "42",
    ]);
    assert_eq!(t6020("levels"), "3");
    assert_eq!(t6020("top table"), "64 entries, 16K");
    assert_eq!(t6020("aperture"), "0x0 ..= 0x3ffffffffff");
    assert_eq!(t6020("oa bits"), "42");
    assert_eq!(t6020("TTBR0"), "0x80001");
    assert_eq!(t6020("TCR"), "0x9");

    let e = failure(
        &[
            "info",
            "--format",
            "dart",
            "--dart-version",
            "2",
            "--granule",
            "4k",
        ],
        1,
    );
    assert!(e.contains("DART v2 needs the 16K granule"), "{e}");
    let e = failure(&["info", "--format", "dart", "--ias", "40"], 1);
    assert!(e.contains("ias must be 32..=oas"), "{e}");
    // T8110 registers on the default (v1) DART: the error says what oas is.
    let e = failure(
        &[
            "info",
            "--format",
            "dart",
            "--dart-regs",
            "t8110",
            "--ias",
            "42",
        ],
        1,
    );
    assert!(e.contains("ias must be 32..=oas (oas is 36 here)"), "{e}");
    assert!(
        e.contains("dart:version=1,granule=16k,ias=42,oas=36,regs=t8110"),
        "{e}"
    );
    let e = failure(&["info", "--format", "dart", "--ttbr1"], 2);
    assert!(e.contains("--ttbr1 does not apply to --format dart"), "{e}");
}

#[test]
fn info_riscv() {
    // iosatp = MODE << 60 | root PPN: root 0x8000_0000 is PPN 0x80000; MODE 8/9/10.
    let sv48 = info(&["--format", "riscv"]);
    assert_eq!(sv48("config"), "Sv48, oas 56, sign-extended, Svnapot");
    assert_eq!(sv48("levels"), "4");
    assert_eq!(sv48("top table"), "512 entries, 4K");
    // 4K, 64K (Svnapot), 2M, 1G, 512G.
    assert_eq!(
        sv48("page sizes"),
        "4K 64K 2M 1G 512G (bitmap 0x8040211000)"
    );
    assert_eq!(
        sv48("aperture"),
        "0x0 ..= 0x7fffffffffff, 0xffff800000000000 ..= 0xffffffffffffffff"
    );
    assert_eq!(sv48("oa bits"), "56");
    assert_eq!(sv48("iosatp"), "0x9000000000080000");
    assert_eq!(sv48("iosatp.MODE"), "0x9");
    assert_eq!(sv48("iosatp.PPN"), "0x80000");

    let sv39 = info(&["--format", "riscv", "--levels", "3", "--dirty-tracking"]);
    assert_eq!(sv39("page sizes"), "4K 64K 2M 1G (bitmap 0x40211000)");
    assert_eq!(
        sv39("aperture"),
        "0x0 ..= 0x3fffffffff, 0xffffffc000000000 ..= 0xffffffffffffffff"
    );
    assert_eq!(sv39("iosatp"), "0x8000000000080000");
    assert_eq!(sv39("DC.tc.SADE"), "0x1");

    // Sv57 adds 256T pages; lower half only, no Svnapot, Svpbmt.
    let sv57 = info(&[
        "--format",
        "riscv",
        "--levels",
        "5",
        "--no-sign-extend",
        "--no-svnapot",
        "--svpbmt",
    ]);
    assert_eq!(sv57("config"), "Sv57, oas 56, lower half only, Svpbmt");
    assert_eq!(sv57("top table"), "256 entries, 4K");
    assert_eq!(
        sv57("page sizes"),
        "4K 2M 1G 512G 256T (bitmap 0x1008040201000)"
    );
    assert_eq!(sv57("aperture"), "0x0 ..= 0xffffffffffffff");
    assert_eq!(sv57("iosatp"), "0xa000000000080000");

    let e = failure(&["info", "--format", "riscv", "--levels", "6"], 1);
    assert!(e.contains("levels must be 3, 4 or 5"), "{e}");
    let e = failure(&["info", "--format", "riscv", "--oas", "57"], 1);
    assert!(e.contains("oa_bits must be 32..=56"), "{e}");
    let e = failure(&["info", "--format", "x86-64", "--svpbmt"], 2);
    assert!(
        e.contains("--svpbmt does not apply to --format x86-64"),
        "{e}"
    );
}

#[test]
fn bad_configurations_name_the_limit() {
    let e = failure(&["info", "--format", "arm64-s1", "--ias", "52"], 1);
    assert!(
        e.contains("invalid configuration: ias must be 32..=48"),
        "{e}"
    );

    let e = failure(
        &[
            "info",
            "--format",
            "arm64-s2",
            "--granule",
            "64k",
            "--oas",
            "40",
        ],
        1,
    );
    assert!(
        e.contains("concatenating would need more than 16 tables"),
        "{e}"
    );

    let e = failure(&["info", "--format", "arm64-s1", "--oas", "39"], 1);
    assert!(e.contains("oas must be 32, 36, 40, 42, 44 or 48"), "{e}");

    let e = failure(&["info", "--format", "arm64-s2", "--ttbr1"], 1);
    assert!(e.contains("ttbr1 is a stage 1 option"), "{e}");

    let e = failure(&["info", "--format", "amdv1", "--levels", "7"], 1);
    assert!(e.contains("levels must be 1..=6"), "{e}");

    let e = failure(
        &[
            "info",
            "--format",
            "amdv1",
            "--levels",
            "4",
            "--max-levels",
            "3",
        ],
        1,
    );
    assert!(e.contains("max_levels must be >= levels"), "{e}");

    let e = failure(&["info", "--format", "x86-64", "--levels", "3"], 1);
    assert!(e.contains("levels must be 4 or 5"), "{e}");

    let e = failure(&["info", "--format", "armv7s", "--oas", "40"], 1);
    assert!(e.contains("oa_bits must be 32"), "{e}");
}

#[test]
fn options_for_other_formats_are_usage_errors() {
    let e = failure(&["info", "--format", "amdv1", "--granule", "16k"], 2);
    assert!(
        e.contains("--granule does not apply to --format amdv1"),
        "{e}"
    );
    let e = failure(&["info", "--format", "arm64-s1", "--levels", "4"], 2);
    assert!(
        e.contains("--levels does not apply to --format arm64-s1"),
        "{e}"
    );
    let e = failure(&["info", "--format", "armv7s", "--no-sign-extend"], 2);
    assert!(e.contains("--no-sign-extend does not apply"), "{e}");
    // clap's own checks.
    failure(&["info", "--format", "sparc"], 2);
    failure(&["info"], 2);
}

/// The labels of the demonstration's tables, in order.
const DEMO_TABLES: [&str; 28] = [
    "arm64-s1/4K",
    "arm64-s1/16K",
    "arm64-s1/64K",
    "arm64-s2/4K/ias40",
    "amdv1/dynamic-top",
    "x86-64/4-level",
    "x86-64/5-level",
    "armv7s",
    "vtd-ss/3-level",
    "vtd-ss/5-level",
    "dart/v1/16K",
    "dart/v1/4K/4-ttbr",
    "dart/v2/t6000",
    "dart/v2/t8110/ias42",
    "riscv/sv39",
    "riscv/sv57",
    "arm64-s1/64K/oas52",
    "arm32-s1",
    "arm32-s2/ias40",
    "mali",
    "arm64-s1/4K/dirty",
    "arm64-s2/4K/dirty",
    "arm32-s1/dirty",
    "arm32-s2/ias40/dirty",
    "amdv1/dynamic-top/dirty",
    "x86-64/4-level/dirty",
    "vtd-ss/3-level/dirty",
    "riscv/sv39/oas40/svpbmt/dirty",
];

/// Checks a demonstration report: one row per table with consistent counts, only the
/// top table left at the end, and the final verdict.
fn check_demo(text: &str, ops: u64) {
    for (label, levels) in DEMO_TABLES.iter().zip([
        "4", "4", "3", "3", "1->6", "4", "5", "2", "3", "5", "2", "2", "2", "3", "3", "5", "3",
        "3", "3", "4", "4", "4", "3", "3", "1->6", "4", "3", "3",
    ]) {
        let row: Vec<&str> = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(label))
            .unwrap_or_else(|| panic!("no row for {label} in:\n{text}"))
            .split_whitespace()
            .collect();
        assert_eq!(row.len(), 15, "{row:?}");
        let n = |i: usize| -> u64 { row[i].parse().expect("a number") };
        assert_eq!(row[1], levels, "{label} levels");
        // ops = maps + unmaps + overlap attempts + cuts + protects + device writes +
        // dirty reads; everything mapped is unmapped.
        assert_eq!(n(2), (3..=9).map(n).sum::<u64>(), "{label}: {row:?}");
        assert_eq!(n(3), n(4), "{label}: {row:?}");
        // The workload itself has `ops` steps; the teardown adds unmaps.
        assert!(
            n(3) + n(5) + n(6) + n(7) <= ops && n(2) >= ops,
            "{label}: {row:?}"
        );
        assert!(n(5) > 0, "{label}: no overlap attempt");
        // Every format has permissions to change; DART has no large pages to cut (a
        // short run may draw no cut by chance).
        assert!(n(7) > 0, "{label}: no protect");
        assert!(
            n(6) > 0 || ops < 1000 || label.starts_with("dart"),
            "{label}: no cut"
        );
        // Device writes and dirty reads on the tables with dirty tracking only.
        let dirty = label.ends_with("/dirty");
        assert_eq!(n(8) > 0, dirty, "{label}: device writes");
        assert_eq!(n(9) > 0, dirty, "{label}: dirty reads");
        assert!(n(10) >= 3 * n(3), "{label}: too few lookups");
        assert!(n(12) > 1, "{label}: the table never grew");
        assert_eq!(row[13], "1", "{label}: table pages at the end");
        assert!(n(14) > 0);
    }
    assert!(text.contains("amdv1/dynamic-top: the top grew while in use:"));
    assert!(text.contains("  6 levels, root 0x"));
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.starts_with("all checks passed: 28 tables,")),
        "{text}"
    );
}

#[test]
fn demo_without_arguments() {
    let text = stdout_of(&[]);
    check_demo(&text, 2000);
    assert!(text.starts_with("iopt demo: seed 1072877, 2000 operations per table"));
    // `iopt demo` is the same run.
    assert_eq!(stdout_of(&["demo"]), text);
}

#[test]
fn demo_with_seed_is_reproducible() {
    let args = ["demo", "--seed", "7", "--ops", "300"];
    let text = stdout_of(&args);
    check_demo(&text, 300);
    assert_eq!(stdout_of(&args), text);
    assert_ne!(stdout_of(&["demo", "--seed", "8", "--ops", "300"]), text);
}

/// The LPAE family members: ARM32, Mali, and ARM64 with a 52-bit output.
#[test]
fn info_lpae_family() {
    let a32 = info(&["--format", "arm32-s1"]);
    assert_eq!(a32("format"), "arm32-s1 (arm32-lpae)");
    assert_eq!(a32("levels"), "3");
    assert_eq!(a32("top table"), "4 entries, 64B");
    assert_eq!(a32("page sizes"), "4K 64K 2M 32M 1G (bitmap 0x42211000)");
    // EAE | EPD1 | SH0 inner | ORGN0 = IRGN0 = WBWA | T0SZ 0.
    assert_eq!(a32("TTBCR"), "0x80803500");
    assert_eq!(a32("MAIR0"), "0xf404ff44");
    assert_eq!(a32("MAIR1"), "0x0");

    let s2 = info(&["--format", "arm32-s2", "--ias", "40", "--incoherent-walk"]);
    assert_eq!(s2("top table"), "1024 entries, 8K (2 concatenated tables)");
    // RES1 | SH0 outer | SL0 level 1 | S + T0SZ (-8).
    assert_eq!(s2("VTCR"), "0x80002058");

    let mali = info(&["--format", "mali", "--coherent-walk"]);
    assert_eq!(mali("format"), "mali (mali)");
    assert_eq!(mali("levels"), "4");
    assert_eq!(mali("page sizes"), "4K 2M 1G (bitmap 0x40201000)");
    assert_eq!(mali("TRANSTAB"), "0x80000017");
    assert_eq!(mali("MEMATTR"), "0x888d88");

    let a52 = info(&["--format", "arm64-s1", "--granule", "64k", "--oas", "52"]);
    assert_eq!(a52("format"), "arm64-s1 (arm64-lpae52)");
    assert_eq!(a52("oa bits"), "52");
    assert_eq!(
        a52("page sizes"),
        "64K 2M 512M 16G 4T (bitmap 0x40420210000)"
    );
    // T0SZ 16, TG0 64K, EPD1, IPS 0b110.
    assert_eq!(a52("TCR"), "0x600807510");

    let e = failure(&["info", "--format", "arm64-s1", "--oas", "52"], 1);
    assert!(e.contains("oas 52 needs the 64K granule (FEAT_LPA)"), "{e}");
    let e = failure(&["info", "--format", "arm32-s1", "--ias", "40"], 1);
    assert!(e.contains("ias must be 25..=32 at stage 1"), "{e}");
    let e = failure(&["info", "--format", "mali", "--oas", "48"], 1);
    assert!(e.contains("oas must be 32..=40"), "{e}");
    let e = failure(&["info", "--format", "mali", "--ias", "39"], 2);
    assert!(e.contains("--ias does not apply to --format mali"), "{e}");
    let e = failure(&["info", "--format", "arm32-s1", "--granule", "64k"], 2);
    assert!(
        e.contains("--granule does not apply to --format arm32-s1"),
        "{e}"
    );
    let e = failure(&["info", "--format", "arm64-s1", "--coherent-walk"], 2);
    assert!(
        e.contains("--coherent-walk does not apply to --format arm64-s1"),
        "{e}"
    );
}

/// `--format` takes the library's spec text; flags add to its options.
#[test]
fn info_format_spec_text() {
    let s2 = info(&["--format", "arm64-s2:granule=16k,ias=40"]);
    assert_eq!(s2("spec"), "arm64-s2:granule=16k,ias=40");
    assert_eq!(s2("levels"), "3");
    // Flags and spec options together; the spec line is canonical.
    let amd = info(&["--format", "amdv1:no-dynamic-top", "--levels", "4"]);
    assert_eq!(amd("spec"), "amdv1:levels=4,no-dynamic-top");
    assert_eq!(amd("levels"), "4");
    let dart = info(&["--format", "dart:version=2,regs=t8110,ias=42"]);
    assert_eq!(dart("TCR"), "0x9");
    assert_eq!(
        info(&["--format", "riscv", "--levels", "5", "--no-svnapot"])("spec"),
        "riscv:levels=5,no-svnapot"
    );

    // Errors name the format, the option and what it takes.
    let e = failure(&["info", "--format", "sparc:ias=40"], 2);
    assert!(
        e.contains("unknown format `sparc`") && e.contains("arm64-s1"),
        "{e}"
    );
    let e = failure(&["info", "--format", "amdv1:granule=16k"], 2);
    assert!(e.contains("amdv1 has no option `granule`"), "{e}");
    let e = failure(&["info", "--format", "arm64-s1:granule=8k"], 2);
    assert!(
        e.contains("`granule=8k`: granule must be 4k, 16k or 64k"),
        "{e}"
    );
    let e = failure(&["info", "--format", "arm64-s1:ttbr1=yes"], 2);
    assert!(e.contains("written `ttbr1` or `no-ttbr1`"), "{e}");
    let e = failure(&["info", "--format", "x86-64:levels=5", "--levels", "4"], 2);
    assert!(e.contains("`levels` is given more than once"), "{e}");
    let e = failure(&["info", "--format", "arm64-s1:ias=52"], 1);
    assert!(
        e.contains("arm64-s1:ias=52: invalid configuration: ias must be 32..=48"),
        "{e}"
    );
    let e = failure(&["info", "--format", "dart", "--dart-version", "3"], 2);
    assert!(e.contains("`version=3`: version must be 1 or 2"), "{e}");
}

/// `info --list` prints every format and option; `info --catalogue` every configuration.
#[test]
fn info_lists_formats_and_catalogue() {
    let list = stdout_of(&["info", "--list"]);
    for name in [
        "arm64-s1", "arm64-s2", "arm32-s1", "arm32-s2", "mali", "amdv1", "x86-64", "armv7s",
        "vtd-ss", "dart", "riscv",
    ] {
        assert!(
            list.lines().any(|l| l.starts_with(&format!("{name}  "))),
            "{name} missing from:\n{list}"
        );
    }
    assert!(list.contains("  granule=VALUE"), "{list}");
    assert!(list.contains("  ttbr1 | no-ttbr1"), "{list}");
    assert!(list.contains("[default: 4k]"), "{list}");
    assert!(list.contains("sme-c-bit=VALUE"), "{list}");

    let cat = stdout_of(&["info", "--catalogue"]);
    assert!(cat.lines().count() > 60, "{cat}");
    assert!(
        cat.lines()
            .any(|l| l.starts_with("* arm64-s2/4K/ias40") && l.ends_with("arm64-s2:ias=40")),
        "{cat}"
    );
    assert!(
        cat.lines()
            .any(|l| l.starts_with("  vtd-ss/4-level/4K-only") && l.ends_with("vtd-ss:no-2m,no-1g")),
        "{cat}"
    );
    // Every spec the catalogue lists is accepted by `info`.
    for line in cat.lines().skip(1) {
        let text = line.split_whitespace().last().unwrap_or_default();
        let args = ["--format", text];
        let one = info(&args);
        assert_eq!(one("spec"), text);
    }
}
