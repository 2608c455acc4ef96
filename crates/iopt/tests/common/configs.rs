//! The configurations the suites test: the library's catalogue
//! ([`FormatSpec::catalogue`]), built, with selection helpers and a runner that names the
//! configuration in every failure. A new format or variant is one entry in the catalogue,
//! and every suite that iterates [`configs`] (or a filtered part of it) picks it up.

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};

use iopt::mem::ArenaMemory;
use iopt::spec::{AnyFormat, FormatSpec};
use iopt::{Format, Info, NoFlush, PageTable, VaMode};
use proptest::strategy::Strategy;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

/// One configuration of the catalogue, built.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// The catalogue's label (`arm64-s2/4K/ias40`).
    pub label: &'static str,
    /// The spec in canonical text form (`arm64-s2:ias=40`).
    pub text: &'static str,
    /// The built format.
    pub any: AnyFormat,
}

impl Config {
    /// What a fresh table of this configuration reports (page sizes, aperture, levels).
    pub fn info(&self) -> Info {
        fn info_of<F: Format>(fmt: F) -> Info {
            // Below 4 GiB (ARMv7s), aligned for the 1 MiB concatenated stage-2 tops.
            let mem = ArenaMemory::new(0x4000_0000, 2 << 20);
            PageTable::new(fmt, &mem, NoFlush)
                .expect("create a table")
                .info()
        }
        iopt::with_format!(self.any, f => info_of(f))
    }

    /// The format family's name (`arm64-s1`, `amdv1`, ...).
    pub fn family(&self) -> &'static str {
        self.text.split(':').next().unwrap_or(self.text)
    }

    /// True if the table offers pages of `size` bytes.
    pub fn has_page_size(&self, size: u64) -> bool {
        self.info().pgsize_bitmap & size != 0
    }

    /// True if the top level grows while the table is in use.
    pub fn dynamic_top(&self) -> bool {
        self.any.max_levels() > self.any.levels()
    }

    /// True if the aperture has two halves (sign-extended IOVAs, or ARM's TTBR1 upper
    /// half only).
    pub fn va_mode(&self) -> VaMode {
        self.any.va_mode()
    }
}

/// Every configuration of the catalogue, in its order.
pub fn configs() -> Vec<Config> {
    FormatSpec::catalogue()
        .iter()
        .map(|e| Config {
            label: e.label,
            text: e.text,
            any: e
                .spec()
                .build()
                .unwrap_or_else(|err| panic!("catalogue entry {}: {err}", e.label)),
        })
        .collect()
}

/// The configurations for which `keep` holds.
pub fn configs_where(keep: impl Fn(&Config) -> bool) -> Vec<Config> {
    configs().into_iter().filter(|c| keep(c)).collect()
}

/// The configurations with hardware dirty tracking.
pub fn dirty_configs() -> Vec<Config> {
    configs_where(|c| c.any.tracks_dirty())
}

/// The configurations without hardware dirty tracking.
pub fn clean_configs() -> Vec<Config> {
    configs_where(|c| !c.any.tracks_dirty())
}

/// The configurations whose top grows while in use.
pub fn dynamic_top_configs() -> Vec<Config> {
    configs_where(Config::dynamic_top)
}

/// The `k`th of `n` interleaved parts of `cfgs` (for tests that split a long list so the
/// harness runs the parts in parallel). The parts `0..n` together are all of `cfgs`.
pub fn shard(cfgs: Vec<Config>, k: usize, n: usize) -> Vec<Config> {
    cfgs.into_iter()
        .enumerate()
        .filter(|(i, _)| i % n == k)
        .map(|(_, c)| c)
        .collect()
}

/// A stable per-configuration number (FNV-1a of the label), for seeds.
pub fn label_seed(label: &str) -> u64 {
    label.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Runs `body` for every configuration of `cfgs`, all of them even when some fail, and
/// fails at the end naming each configuration that failed (label and spec) with its
/// message. An empty `cfgs` fails too: a selection that matches nothing tests nothing.
/// With `IOPT_CONFIG_TIMES` set in the environment, each configuration's time is printed
/// (`--nocapture` shows it).
pub fn run_each(cfgs: &[Config], mut body: impl FnMut(&Config)) {
    assert!(!cfgs.is_empty(), "no configuration selected");
    let mut failures = Vec::new();
    let times = std::env::var_os("IOPT_CONFIG_TIMES").is_some();
    for cfg in cfgs {
        let t0 = std::time::Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| body(cfg)));
        if times {
            eprintln!(
                "config time {:>8.3}s {}",
                t0.elapsed().as_secs_f64(),
                cfg.label
            );
        }
        if let Err(p) = r {
            failures.push(format!("{} ({}): {}", cfg.label, cfg.text, panic_text(&*p)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} configurations failed:\n{}",
        failures.len(),
        cfgs.len(),
        failures.join("\n")
    );
}

/// Runs a property test of `cases` cases: `test` on values drawn from `strategy`, shrinking
/// a failing case as `proptest!` does, and fails with the minimal input.
pub fn proptest_run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value))
where
    S::Value: Debug,
{
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    if let Err(e) = runner.run(&strategy, |v| {
        test(v);
        Ok(())
    }) {
        panic!("{e}");
    }
}

/// `cases`, unless `PROPTEST_CASES` asks for another number.
pub fn cases_or_env(cases: u32) -> u32 {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default().cases
    } else {
        cases
    }
}

/// Runs a generic check on every configuration of a list, with the concrete format type:
/// `for_each_config!(cfgs, check)` calls `check(label, fmt)`, and
/// `for_each_config!(cfgs, |label, fmt| body)` runs `body`. A failure names the
/// configuration (see [`run_each`]).
macro_rules! for_each_config {
    ($cfgs:expr, |$label:ident, $f:ident| $body:expr) => {
        $crate::common::run_each(&$cfgs, |cfg| {
            let $label: &'static str = cfg.label;
            let _ = $label;
            iopt::with_format!(cfg.any, $f => {
                $body;
            })
        })
    };
    ($cfgs:expr, $check:path) => {
        $crate::common::for_each_config!($cfgs, |label, f| $check(label, f))
    };
}
pub(crate) use for_each_config;

/// A module `$name` of tests that run `super::$check(label, fmt)` on every configuration
/// of `$cfgs`, split in four interleaved parts that the harness runs in parallel.
macro_rules! config_tests {
    ($name:ident, $cfgs:expr, $check:ident) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn part(k: usize) {
                let all = $cfgs;
                assert!(!all.is_empty(), "no configuration selected");
                let mine = $crate::common::shard(all, k, 4);
                if !mine.is_empty() {
                    $crate::common::for_each_config!(mine, super::$check);
                }
            }
            #[test]
            fn part_1_of_4() {
                part(0)
            }
            #[test]
            fn part_2_of_4() {
                part(1)
            }
            #[test]
            fn part_3_of_4() {
                part(2)
            }
            #[test]
            fn part_4_of_4() {
                part(3)
            }
        }
    };
    ($name:ident, $check:ident) => {
        $crate::common::config_tests!($name, $crate::common::configs(), $check);
    };
}
pub(crate) use config_tests;

/// An ARM64 LPAE format (the other options at their defaults), for directed tests that
/// need one particular ARM configuration.
pub fn arm(
    stage: iopt::fmt::arm_lpae::Stage,
    granule: iopt::fmt::arm_lpae::Granule,
    ias: u32,
    oas: u32,
) -> iopt::fmt::arm_lpae::ArmLpae {
    iopt::fmt::arm_lpae::ArmLpae::new(arm_config(stage, granule, ias, oas))
        .unwrap_or_else(|e| panic!("arm {stage:?} {granule:?} ias {ias} oas {oas}: {e}"))
}

/// The configuration [`arm`] builds.
pub fn arm_config(
    stage: iopt::fmt::arm_lpae::Stage,
    granule: iopt::fmt::arm_lpae::Granule,
    ias: u32,
    oas: u32,
) -> iopt::fmt::arm_lpae::ArmLpaeConfig {
    iopt::fmt::arm_lpae::ArmLpaeConfig {
        stage,
        granule,
        ias,
        oas,
        ..iopt::fmt::arm_lpae::ArmLpaeConfig::default()
    }
}

/// The configurations the model-style suites (the raw model test, the safe-API model
/// test) tested before they iterated the catalogue; they keep their old case counts.
pub const BEFORE_CATALOGUE: &[&str] = &[
    "arm64-s1/4K",
    "arm64-s1/4K/ias39",
    "arm64-s1/4K/ias32",
    "arm64-s1/16K",
    "arm64-s1/16K/ias36",
    "arm64-s1/64K",
    "arm64-s1/64K/ias42",
    "arm64-s2/4K/ias40",
    "arm64-s2/4K",
    "arm64-s2/16K/ias42",
    "arm64-s2/64K/ias44",
    "arm64-s1/4K/ias39/ttbr1",
    "arm64-s1/4K/ns/no-contig",
    "amdv1/3-level",
    "amdv1/dynamic-top",
    "amdv1/fixed-4",
    "x86-64/4-level",
    "x86-64/5-level",
    "x86-64/4-level/lower-half",
    "armv7s",
    "armv7s/ns",
];

/// Panics naming the first of `labels` that the catalogue does not have: a list of labels
/// that keep old case counts or seeds must not lose one silently.
pub fn assert_labels_in_catalogue(labels: &[&str]) {
    let known: Vec<&str> = configs().iter().map(|c| c.label).collect();
    for l in labels {
        assert!(known.contains(l), "{l} is not in the catalogue");
    }
}
