//! Model-based property tests: random map/unmap/lookup sequences against an interval
//! model, for every format and configuration. After every step the lookups agree; at the
//! end everything is unmapped and only the top table may remain.

mod common;

use common::{aop, run_model};
use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig, Granule, Stage};
use iopt::fmt::armv7s::{ArmV7s, ArmV7sConfig};
use iopt::fmt::vtdss::{VtdSs, VtdSsConfig};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use proptest::prelude::*;

// LPAE family members (appended).
use iopt::fmt::arm_lpae::ArmLpae52;
use iopt::fmt::arm32_lpae::{Arm32Lpae, Arm32LpaeConfig};
use iopt::fmt::mali::{MaliLpae, MaliLpaeConfig};

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        ..ProptestConfig::default()
    }
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

fn arm(stage: Stage, granule: Granule, ias: u32, oas: u32) -> ArmLpae {
    ArmLpae::new(ArmLpaeConfig {
        stage,
        granule,
        ias,
        oas,
        ..ArmLpaeConfig::default()
    })
    .unwrap()
}

model_test!(arm_s1_4k_48, arm(Stage::S1, Granule::K4, 48, 48));
model_test!(arm_s1_4k_39, arm(Stage::S1, Granule::K4, 39, 40));
model_test!(arm_s1_4k_32, arm(Stage::S1, Granule::K4, 32, 32));
model_test!(arm_s1_16k_48, arm(Stage::S1, Granule::K16, 48, 48));
model_test!(arm_s1_16k_36, arm(Stage::S1, Granule::K16, 36, 40));
model_test!(arm_s1_64k_48, arm(Stage::S1, Granule::K64, 48, 48));
model_test!(arm_s1_64k_42, arm(Stage::S1, Granule::K64, 42, 44));
model_test!(arm_s2_4k_40, arm(Stage::S2, Granule::K4, 40, 48));
model_test!(arm_s2_4k_48, arm(Stage::S2, Granule::K4, 48, 48));
model_test!(arm_s2_16k_42, arm(Stage::S2, Granule::K16, 42, 44));
model_test!(arm_s2_64k_44, arm(Stage::S2, Granule::K64, 44, 48));
model_test!(
    arm_s1_ttbr1,
    ArmLpae::new(ArmLpaeConfig {
        ttbr1: true,
        ias: 39,
        ..ArmLpaeConfig::default()
    })
    .unwrap()
);
model_test!(
    arm_s1_ns_nocontig,
    ArmLpae::new(ArmLpaeConfig {
        ns: true,
        contiguous: false,
        ..ArmLpaeConfig::default()
    })
    .unwrap()
);
model_test!(amdv1_dynamic, AmdV1::new(AmdV1Config::default()).unwrap());
model_test!(
    amdv1_dynamic_from_1,
    AmdV1::new(AmdV1Config {
        levels: 1,
        ..AmdV1Config::default()
    })
    .unwrap()
);
model_test!(
    amdv1_fixed_4,
    AmdV1::new(AmdV1Config {
        levels: 4,
        max_levels: 4,
        dynamic_top: false,
        ..AmdV1Config::default()
    })
    .unwrap()
);
model_test!(x86_64_4level, X86_64::new(X86_64Config::default()).unwrap());
model_test!(
    x86_64_5level,
    X86_64::new(X86_64Config {
        levels: 5,
        ..X86_64Config::default()
    })
    .unwrap()
);
model_test!(
    x86_64_low_half,
    X86_64::new(X86_64Config {
        sign_extend: false,
        ..X86_64Config::default()
    })
    .unwrap()
);
model_test!(
    armv7s_default,
    ArmV7s::new(ArmV7sConfig::default()).unwrap()
);
model_test!(
    armv7s_ns,
    ArmV7s::new(ArmV7sConfig {
        ns: true,
        ..ArmV7sConfig::default()
    })
    .unwrap()
);

fn vtd(cfg: VtdSsConfig) -> VtdSs {
    VtdSs::new(cfg).unwrap()
}

model_test!(vtd_ss_4level, vtd(VtdSsConfig::default()));
model_test!(
    vtd_ss_3level,
    vtd(VtdSsConfig {
        levels: 3,
        ..VtdSsConfig::default()
    })
);
model_test!(
    vtd_ss_5level,
    vtd(VtdSsConfig {
        levels: 5,
        ..VtdSsConfig::default()
    })
);
model_test!(
    vtd_ss_4k_only,
    vtd(VtdSsConfig {
        large_2m: false,
        large_1g: false,
        ..VtdSsConfig::default()
    })
);
model_test!(
    vtd_ss_1g_no_2m_oa40_snoop_dirty,
    vtd(VtdSsConfig {
        large_2m: false,
        oa_bits: 40,
        force_coherence: true,
        dirty_tracking: true,
        ..VtdSsConfig::default()
    })
);

// Apple DART: v1 16K (M1), v1 4K with four TTBRs, v2 on T8020 registers (M1 Pro/Max),
// v2 on T8110 registers with two and three table levels.
use iopt::fmt::dart::{Dart, DartConfig};
model_test!(dart_t8103, Dart::new(DartConfig::t8103()).unwrap());
model_test!(
    dart_v1_4k_four_ttbrs,
    Dart::new(DartConfig {
        granule: Granule::K4,
        ..DartConfig::t8103()
    })
    .unwrap()
);
model_test!(dart_t6000, Dart::new(DartConfig::t6000()).unwrap());
model_test!(dart_t8110_36, Dart::new(DartConfig::t8110(36, 36)).unwrap());
model_test!(dart_t6020_42, Dart::new(DartConfig::t8110(42, 42)).unwrap());

fn riscv(levels: u32) -> iopt::fmt::riscv::RiscvConfig {
    iopt::fmt::riscv::RiscvConfig {
        levels,
        ..iopt::fmt::riscv::RiscvConfig::default()
    }
}

model_test!(riscv_sv39, iopt::fmt::riscv::Riscv::new(riscv(3)).unwrap());
model_test!(riscv_sv48, iopt::fmt::riscv::Riscv::new(riscv(4)).unwrap());
model_test!(riscv_sv57, iopt::fmt::riscv::Riscv::new(riscv(5)).unwrap());
model_test!(
    riscv_sv48_low_half_no_napot,
    iopt::fmt::riscv::Riscv::new(iopt::fmt::riscv::RiscvConfig {
        sign_extend: false,
        svnapot: false,
        ..riscv(4)
    })
    .unwrap()
);
model_test!(
    riscv_sv39_pbmt_dirty_oa40,
    iopt::fmt::riscv::Riscv::new(iopt::fmt::riscv::RiscvConfig {
        svpbmt: true,
        dirty_tracking: true,
        oa_bits: 40,
        ..riscv(3)
    })
    .unwrap()
);

fn arm52(stage: Stage, ias: u32) -> ArmLpae52 {
    ArmLpae52::new(ArmLpaeConfig {
        stage,
        granule: Granule::K64,
        ias,
        oas: 52,
        ..ArmLpaeConfig::default()
    })
    .unwrap()
}

fn arm32(stage: Stage, ias: u32, oas: u32) -> Arm32Lpae {
    Arm32Lpae::new(Arm32LpaeConfig {
        stage,
        ias,
        oas,
        ..Arm32LpaeConfig::default()
    })
    .unwrap()
}

model_test!(arm52_s1_48, arm52(Stage::S1, 48));
model_test!(arm52_s1_52, arm52(Stage::S1, 52));
model_test!(arm52_s2_44, arm52(Stage::S2, 44));
model_test!(arm32_s1_32, arm32(Stage::S1, 32, 40));
model_test!(arm32_s1_30, arm32(Stage::S1, 30, 36));
model_test!(arm32_s2_40, arm32(Stage::S2, 40, 40));
model_test!(arm32_s2_25, arm32(Stage::S2, 25, 32));
model_test!(
    mali_default,
    MaliLpae::new(MaliLpaeConfig::default()).unwrap()
);
model_test!(
    mali_oa32,
    MaliLpae::new(MaliLpaeConfig {
        oas: 32,
        coherent_walk: true,
    })
    .unwrap()
);
