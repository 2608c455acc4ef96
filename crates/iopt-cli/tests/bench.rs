//! Smoke tests of `iopt bench` at small sizes: the JSON lines and their fields, the exact
//! table-page counts, the human, Markdown and SVG outputs, and the refused options. No
//! timing is asserted.

use std::process::{Command, Output};

use serde_json::Value;

fn iopt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iopt"))
        .args(args)
        .output()
        .expect("the iopt binary runs")
}

/// Runs `iopt bench` with `args`, expects success and a silent stderr (no progress bar
/// when stderr is not a terminal), returns stdout.
fn bench(args: &[&str]) -> String {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    let out = iopt(&all);
    assert!(
        out.status.success(),
        "iopt {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "iopt {all:?} wrote to stderr");
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// `bench --json` with `args`: every line parsed.
fn json(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    bench(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

#[test]
fn w1_json_lines_have_every_field() {
    let rows = json(&["--size", "1M", "--workload", "w1", "--format", "x86-64"]);
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["workload"].as_str().expect("workload"))
        .collect();
    assert_eq!(names, ["W1", "W1u"]);
    for r in &rows {
        assert_eq!(r["format"], "x86-64");
        assert_eq!(r["peer"], "x86_64 crate");
        // 1 MiB of 4K pages at IOVA 0: one leaf table, PD, PDPT and the root.
        assert_eq!(u(r, "ops"), 256);
        assert_eq!(u(r, "table_pages"), 4);
        assert_eq!(u(r, "peer_table_pages"), 4);
        let (ns, peer_ns) = (f(r, "ns_per_op"), f(r, "peer_ns_per_op"));
        assert!(ns > 0.0 && peer_ns > 0.0, "{r}");
        let ratio = f(r, "ratio");
        assert!((ratio - ns / peer_ns).abs() <= 1e-9 * ratio.max(1.0), "{r}");
        let rate = f(r, "ops_per_s");
        assert!((rate * ns / 1e9 - 1.0).abs() < 1e-9, "{r}");
    }
    assert!(rows[0]["fill_ns_per_entry"].is_f64());
    assert!(
        rows[1]["fill_ns_per_entry"].is_null(),
        "no fill baseline for unmaps"
    );
}

#[test]
fn w2_at_4m_uses_the_fewest_tables() {
    let rows = json(&[
        "--size",
        "4M",
        "--workload",
        "w2",
        "--format",
        "x86-64,arm64-s1,amdv1,armv7s",
        "--reps",
        "1",
    ]);
    let w2: Vec<(&str, u64, Option<u64>)> = rows
        .iter()
        .filter(|r| r["workload"] == "W2")
        .map(|r| {
            (
                r["format"].as_str().expect("format"),
                u(r, "table_pages"),
                r["peer_table_pages"].as_u64(),
            )
        })
        .collect();
    // x86-64 and ARM64 4K: 2 leaf tables + 3 above; AMD v1 (3 levels): 2 + 2;
    // armv7s: 4 second-level tables (1 MiB each) + the first-level table.
    assert_eq!(
        w2,
        [
            ("x86-64", 5, Some(5)),
            ("arm64-s1", 5, Some(5)),
            ("amdv1", 4, None),
            ("armv7s", 5, None),
        ]
    );
    // The x86_64 crate has no range API: its W2 is per page, and says so.
    let x86 = &rows[0];
    assert_eq!(x86["peer_note"], "per-page map_to: no range API");
    // Unmapping in one call detaches both leaf tables.
    let w2u = rows
        .iter()
        .find(|r| r["workload"] == "W2u" && r["format"] == "x86-64")
        .expect("a W2u row");
    assert_eq!(u(w2u, "table_pages_end"), 3);
}

#[test]
fn every_workload_and_format_runs() {
    let rows = json(&["--size", "1M", "--reps", "1"]);
    // 12 workloads (W6 compares with its own 1-thread run) x 5 formats, less W7 and W7u
    // for armv7s (its 1 MiB leaf tables are freed by every buffer's unmap).
    assert_eq!(rows.len(), 58);
    let mut names: Vec<&str> = rows
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    names.dedup();
    assert_eq!(
        names,
        [
            "W1", "W1u", "W2", "W2u", "W2e", "W3", "W3u", "W4", "W5", "W6", "W7", "W7u"
        ]
    );
    let w6: Vec<&Value> = rows.iter().filter(|r| r["workload"] == "W6").collect();
    assert_eq!(w6.len(), 5);
    assert!(w6.iter().all(|r| r["peer"] == "1 thread"));
    // Formats without a peer say so.
    let amd = rows
        .iter()
        .find(|r| r["workload"] == "W1" && r["format"] == "amdv1")
        .expect("amdv1 W1");
    assert!(amd["peer"].is_null() && amd["ratio"].is_null());
}

#[test]
fn human_and_markdown_tables() {
    let text = bench(&["--size", "1M", "--workload", "w2", "--format", "arm64-s1"]);
    assert!(text.contains("W2  map 1M of 4K pages in 1 call (ns per 4K page); fill baseline"));
    assert!(text.contains("aarch64-paging"));
    let md = bench(&[
        "--size",
        "1M",
        "--workload",
        "w3",
        "--format",
        "x86-64",
        "--markdown",
    ]);
    assert!(md.starts_with("Machine: "));
    assert!(md.contains("| workload | op | format | ns/op | table pages |"));
    assert!(md.contains("| W3 map 1 2M blocks, 1 per call | 2M block | x86-64 |"));
}

#[test]
fn plot_writes_an_svg() {
    let dir = std::env::temp_dir().join(format!("iopt-bench-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("plot.svg");
    let path = file.to_str().expect("UTF-8 path");
    let text = bench(&[
        "--size",
        "1M",
        "--format",
        "x86-64,arm64-s1",
        "--reps",
        "1",
        "--plot",
        path,
    ]);
    let svg = std::fs::read_to_string(&file).expect("the plot was written");
    std::fs::remove_dir_all(&dir).ok();
    assert!(text.contains("plot written to"));
    assert!(svg.starts_with("<svg"));
    // x86-64, arm64-s1 and aarch64-paging at 64K, 256K and 1M.
    assert_eq!(svg.matches("<polyline").count(), 3);
    assert_eq!(svg.matches("<circle").count(), 9);
    for label in [
        ">64K</text>",
        ">256K</text>",
        ">1M</text>",
        ">aarch64-paging</text>",
    ] {
        assert!(svg.contains(label), "{label}");
    }
}

#[test]
fn bad_sizes_are_usage_errors() {
    for size in ["100K", "32K", "1T", "lots"] {
        let out = iopt(&["bench", "--size", size]);
        assert_eq!(out.status.code(), Some(2), "--size {size}");
        assert!(out.stdout.is_empty());
    }
    let out = iopt(&["bench", "--json", "--markdown"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Runs `iopt` with `args`, expects it to fail with `status` and print nothing on stdout,
/// returns stderr.
fn failure(args: &[&str], status: i32) -> String {
    let out = iopt(args);
    assert_eq!(out.status.code(), Some(status), "iopt {args:?}");
    assert!(out.stdout.is_empty(), "iopt {args:?} printed a report");
    String::from_utf8(out.stderr).expect("stderr is UTF-8")
}

#[test]
fn w7_maps_and_unmaps_buffers_at_warm_slots() {
    let rows = json(&[
        "--size",
        "4M",
        "--workload",
        "w7",
        "--format",
        "x86-64,arm64-s1,amdv1,armv7s",
        "--reps",
        "1",
    ]);
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["workload"].as_str().unwrap(),
                r["format"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("W7", "x86-64"),
            ("W7", "arm64-s1"),
            ("W7", "amdv1"),
            ("W7u", "x86-64"),
            ("W7u", "arm64-s1"),
            ("W7u", "amdv1"),
        ]
    );
    for r in &rows {
        // One round of 64 buffers of 256 pages; the 64 MiB of slots keep their 32 leaf
        // tables (+ 3 above on x86-64 and ARM64, + 2 on AMD v1 with 3 levels). armv7s
        // does not take part: its 1 MiB leaf tables are freed by every buffer's unmap.
        assert_eq!(u(r, "ops"), 64 * 256, "{r}");
        let pages = if r["format"] == "amdv1" { 34 } else { 35 };
        assert_eq!(u(r, "table_pages"), pages, "{r}");
        assert_eq!(u(r, "table_pages_end"), pages, "{r}");
        assert!(f(r, "ns_per_op") > 0.0, "{r}");
        // Both are compared with writing the same number of entries.
        assert!(f(r, "fill_ns_per_entry") > 0.0, "{r}");
        if r["format"] != "amdv1" {
            assert_eq!(u(r, "peer_table_pages"), 35, "{r}");
            assert!(f(r, "ratio") > 0.0, "{r}");
        }
    }
    assert!(rows[0]["what"].as_str().unwrap().contains("64 1M buffers"));
    assert_eq!(rows[0]["peer_note"], "per-page map_to: no range API");
    assert_eq!(rows[3]["peer_note"], "per-page unmap: no range API");
}

#[test]
fn w2e_maps_into_the_tables_w1u_emptied() {
    let rows = json(&[
        "--size",
        "4M",
        "--workload",
        "w2e",
        "--format",
        "x86-64,arm64-s1",
        "--reps",
        "1",
    ]);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r["workload"], "W2e");
        // No table is allocated or freed: the 2 leaf tables + 3 above stay.
        assert_eq!(
            (u(r, "ops"), u(r, "table_pages"), u(r, "table_pages_end")),
            (1024, 5, 5),
            "{r}"
        );
        assert_eq!(u(r, "peer_table_pages"), 5, "{r}");
        assert!(f(r, "fill_ns_per_entry") > 0.0, "{r}");
    }
    assert_eq!(rows[1]["peer"], "aarch64-paging");
    let md = bench(&[
        "--size",
        "1M",
        "--workload",
        "w2e,w7",
        "--format",
        "x86-64",
        "--markdown",
    ]);
    assert!(
        md.contains("| W2e map 1M of 4K pages in 1 call into emptied tables | 4K page | x86-64 |")
    );
    assert!(md.contains("| W7u unmap 64 1M buffers, 1 call + sync each, at 64 warm slots |"));
}

#[test]
fn a_size_beyond_the_format_is_an_error_naming_both() {
    let err = failure(&["bench", "--format", "armv7s", "--size", "4G"], 2);
    assert!(
        err.contains("--size 4G") && err.contains("armv7s") && err.contains("at most 3G"),
        "{err}"
    );
    // With --format all, the format is skipped and the report says so.
    let out = iopt(&[
        "bench",
        "--format",
        "all",
        "--size",
        "4G",
        "--workload",
        "w3",
        "--reps",
        "1",
        "--json",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("armv7s skipped: --size 4G"), "{stderr}");
    let rows = String::from_utf8_lossy(&out.stdout);
    assert_eq!(rows.lines().count(), 8, "W3 and W3u for 4 formats");
    assert!(!rows.contains("armv7s"));
    let text = bench(&[
        "--format",
        "x86-64,armv7s",
        "--size",
        "3G",
        "--workload",
        "w3",
        "--reps",
        "1",
    ]);
    assert!(text.contains("armv7s"), "3G still fits");
}

#[test]
fn a_plot_into_a_missing_folder_names_it() {
    let dir = std::env::temp_dir().join(format!("iopt-bench-missing-{}", std::process::id()));
    let file = dir.join("sub").join("plot.svg");
    let path = file.to_str().expect("UTF-8 path");
    let err = failure(&["bench", "--size", "1M", "--plot", path], 1);
    let folder = dir.join("sub");
    assert!(
        err.contains(&format!("the folder {} does not exist", folder.display())),
        "{err}"
    );
    assert!(err.contains(path), "{err}");
    assert!(!dir.exists(), "no folder is created");
}

#[test]
fn a_selection_that_runs_nothing_is_an_error() {
    // armv7s's 1 MiB leaf tables cannot stay in place under W7's 1 MiB buffers.
    let err = failure(
        &[
            "bench",
            "--format",
            "armv7s",
            "--workload",
            "w7",
            "--size",
            "1M",
        ],
        2,
    );
    assert!(
        err.contains("nothing to run") && err.contains("armv7s"),
        "{err}"
    );
}

#[test]
fn a_spec_text_is_a_format() {
    // Any spec of the library's catalogue, with options (commas between them stay in
    // the spec), next to a default name.
    let rows = json(&[
        "--size",
        "64K",
        "--workload",
        "w2,w3",
        "--format",
        "riscv:levels=3,no-svnapot,x86-64",
        "--reps",
        "1",
    ]);
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["workload"].as_str().unwrap(),
                r["format"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("W2", "riscv:levels=3,no-svnapot"),
            ("W2", "x86-64"),
            ("W2u", "riscv:levels=3,no-svnapot"),
            ("W2u", "x86-64"),
            ("W3", "riscv:levels=3,no-svnapot"),
            ("W3", "x86-64"),
            ("W3u", "riscv:levels=3,no-svnapot"),
            ("W3u", "x86-64"),
        ]
    );
    // Sv39, 64K of 4K pages: one leaf table, one in the middle, the root.
    assert_eq!(u(&rows[0], "table_pages"), 3);
    assert!(rows[0]["peer"].is_null());
    // A format with no default name and no peer runs alone, repeated --format too.
    let rows = json(&[
        "--size",
        "64K",
        "--workload",
        "w1",
        "--format",
        "vtd-ss",
        "--format",
        "amdv1:levels=1",
        "--reps",
        "1",
    ]);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["format"], "vtd-ss");
    assert_eq!(rows[1]["format"], "amdv1:levels=1");
    // The spec of a default is that default.
    let rows = json(&[
        "--size",
        "64K",
        "--workload",
        "w1",
        "--format",
        "arm64-s1:no-contig",
        "--reps",
        "1",
    ]);
    assert_eq!(rows[0]["format"], "arm64-s1");
    assert_eq!(rows[0]["peer"], "aarch64-paging");
}

#[test]
fn a_bad_spec_text_is_the_catalogues_error() {
    // A value the option cannot take: exit status 1, as `iopt info` (the values are
    // refused); a malformed spec is a usage error (2).
    let err = failure(&["bench", "--format", "riscv:levels=7", "--size", "64K"], 1);
    assert!(
        err.contains("--format riscv:levels=7") && err.contains("levels must be"),
        "{err}"
    );
    let err = failure(&["bench", "--format", "x86-64:granule=16k"], 2);
    assert!(err.contains("no option `granule`"), "{err}");
    let err = failure(&["bench", "--format", "sparc"], 2);
    assert!(err.contains("unknown format `sparc`"), "{err}");
    // A format that runs none of the workloads, named on its own: the reasons.
    let err = failure(
        &["bench", "--format", "arm64-s1:granule=16k", "--size", "64K"],
        2,
    );
    assert!(err.contains("smallest page is 16K"), "{err}");
}

#[test]
fn catalogue_runs_every_demo_entry() {
    let out = iopt(&[
        "bench",
        "--format",
        "catalogue",
        "--size",
        "64K",
        "--reps",
        "1",
        "--workload",
        "w2,w3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let demo = iopt::spec::FormatSpec::catalogue()
        .iter()
        .filter(|e| e.demo);
    for e in demo {
        // Every entry either has rows or is skipped with the reason.
        let ran = rows.iter().any(|r| r["format"] == e.label);
        let skipped = stderr.contains(&format!("{} skipped: ", e.label));
        assert!(ran ^ skipped, "{}: ran {ran}, skipped {skipped}", e.label);
    }
    assert!(rows.iter().any(|r| r["format"] == "riscv/sv39"));
    assert!(
        stderr.contains("arm64-s1/16K skipped: nothing to run"),
        "{stderr}"
    );
}
