//! Model-based property tests: random map/unmap/lookup sequences against an interval
//! model, for every format and configuration.

mod common;

use common::{aop, run_model};
use iopt::fmt::armv7s::{ArmV7s, ArmV7sConfig};
use proptest::prelude::*;

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: 48, ..ProptestConfig::default() }
}

macro_rules! model_test {
    ($name:ident, $fmt:expr) => {
        proptest! {
            #![proptest_config(cfg())]
            #[test]
            fn $name(ops in proptest::collection::vec(aop(), 1..60)) {
                run_model($fmt, &ops);
            }
        }
    };
}

model_test!(armv7s_default, ArmV7s::new(ArmV7sConfig::default()).unwrap());
model_test!(armv7s_ns, ArmV7s::new(ArmV7sConfig { ns: true, ..ArmV7sConfig::default() }).unwrap());
