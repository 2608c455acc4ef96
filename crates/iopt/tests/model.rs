//! Model-based property tests: random map/unmap/lookup sequences against an interval
//! model, for every configuration of the catalogue (`common::configs`). After every step
//! the lookups agree; at the end everything is unmapped and only the top table may remain.
//!
//! Every catalogue entry runs here by construction: the four parts of `model` together
//! are all of `common::configs()`.

mod common;

use common::{aop, config_tests, proptest_run, run_model};
use iopt::Format;

/// The configurations this suite tested before it iterated the catalogue, besides
/// [`common::BEFORE_CATALOGUE`]: 32 cases each, as then. The catalogue's other entries
/// run 8 cases each, to keep the suite's time.
const MODEL_ONLY_BEFORE: &[&str] = &[
    "vtd-ss/4-level",
    "vtd-ss/3-level",
    "vtd-ss/5-level",
    "vtd-ss/4-level/4K-only",
    "vtd-ss/4-level/no-2M/oas40/snoop/dirty",
    "dart/v1/16K",
    "dart/v1/4K/4-ttbr",
    "dart/v2/t6000",
    "dart/v2/t8110/ias36",
    "dart/v2/t8110/ias42",
    "riscv/sv39",
    "riscv/sv48",
    "riscv/sv57",
    "riscv/sv48/lower-half/no-svnapot",
    "riscv/sv39/oas40/svpbmt/dirty",
    "arm64-s1/64K/oas52",
    "arm64-s1/64K/ias52/oas52",
    "arm64-s2/64K/ias44/oas52",
    "arm32-s1",
    "arm32-s1/ias30/oas36",
    "arm32-s2/ias40",
    "arm32-s2/ias25",
    "mali",
    "mali/oas32/coherent",
];

fn cases(label: &str) -> u32 {
    if common::BEFORE_CATALOGUE.contains(&label) || MODEL_ONLY_BEFORE.contains(&label) {
        32
    } else {
        8
    }
}

fn model<F: Format + Copy>(label: &str, fmt: F) {
    proptest_run(
        cases(label),
        proptest::collection::vec(aop(), 1..60),
        |ops| run_model(fmt, &ops),
    );
}

config_tests!(model, model);

/// A label above that the catalogue no longer has would silently lose its cases.
#[test]
fn full_case_labels_are_in_the_catalogue() {
    common::assert_labels_in_catalogue(common::BEFORE_CATALOGUE);
    common::assert_labels_in_catalogue(MODEL_ONLY_BEFORE);
}
