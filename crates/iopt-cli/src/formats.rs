//! Turning command-line options into a configured table format.
//!
//! Every option belongs to some formats only; an option given to a format it does not
//! apply to is a usage error, so that a typo never silently changes nothing. Range
//! checks (address widths, level counts, ...) are left to the library, whose error names
//! the limit.

use clap::{Args, ValueEnum};
use iopt::Error;
use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::arm_lpae::{ArmLpae, ArmLpae52, ArmLpaeConfig, Granule, Stage};
use iopt::fmt::arm32_lpae::{Arm32Lpae, Arm32LpaeConfig};
use iopt::fmt::armv7s::{ArmV7s, ArmV7sConfig};
use iopt::fmt::dart::{Dart, DartConfig, DartRegs, DartVersion};
use iopt::fmt::mali::{MaliLpae, MaliLpaeConfig};
use iopt::fmt::riscv::{Riscv, RiscvConfig};
use iopt::fmt::vtdss::{VtdSs, VtdSsConfig};
use iopt::fmt::x86_64::{X86_64, X86_64Config};

use crate::units;
use FormatName::VtdSs as Vtd;
use FormatName::{
    AmdV1 as Amd, Arm64S1 as S1, Arm64S2 as S2, ArmV7s as V7s, Dart as DartName, Riscv as RiscV,
    X86_64 as X86,
};
use FormatName::{Arm32S1 as A32S1, Arm32S2 as A32S2, Mali as MaliGpu};

/// The formats the command line offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatName {
    /// ARM64 LPAE (VMSAv8-64) stage 1.
    #[value(name = "arm64-s1")]
    Arm64S1,
    /// ARM64 LPAE (VMSAv8-64) stage 2.
    #[value(name = "arm64-s2")]
    Arm64S2,
    /// AMD IOMMU v1 host page table.
    #[value(name = "amdv1")]
    AmdV1,
    /// x86-64 4- and 5-level paging (VT-d first stage, AMD v2).
    #[value(name = "x86-64")]
    X86_64,
    /// ARMv7 short descriptors.
    #[value(name = "armv7s")]
    ArmV7s,
    /// Intel VT-d second stage.
    #[value(name = "vtd-ss")]
    VtdSs,
    /// Apple DART, entry format v1 or v2 (`--dart-version`).
    #[value(name = "dart")]
    Dart,
    /// RISC-V Sv39/Sv48/Sv57 (RISC-V IOMMU first stage).
    #[value(name = "riscv")]
    Riscv,
    /// ARM32 LPAE (AArch32 long descriptors) stage 1.
    #[value(name = "arm32-s1")]
    Arm32S1,
    /// ARM32 LPAE (AArch32 long descriptors) stage 2.
    #[value(name = "arm32-s2")]
    Arm32S2,
    /// Arm Mali GPU LPAE format (panfrost).
    #[value(name = "mali")]
    Mali,
}

impl FormatName {
    /// The name as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            FormatName::Arm64S1 => "arm64-s1",
            FormatName::Arm64S2 => "arm64-s2",
            FormatName::AmdV1 => "amdv1",
            FormatName::X86_64 => "x86-64",
            FormatName::ArmV7s => "armv7s",
            FormatName::VtdSs => "vtd-ss",
            FormatName::Dart => "dart",
            FormatName::Riscv => "riscv",
            FormatName::Arm32S1 => "arm32-s1",
            FormatName::Arm32S2 => "arm32-s2",
            FormatName::Mali => "mali",
        }
    }
}

/// ARM translation granule, as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GranuleArg {
    /// 4 KiB pages.
    #[value(name = "4k")]
    K4,
    /// 16 KiB pages.
    #[value(name = "16k")]
    K16,
    /// 64 KiB pages.
    #[value(name = "64k")]
    K64,
}

impl From<GranuleArg> for Granule {
    fn from(g: GranuleArg) -> Self {
        match g {
            GranuleArg::K4 => Granule::K4,
            GranuleArg::K16 => Granule::K16,
            GranuleArg::K64 => Granule::K64,
        }
    }
}

/// Apple DART entry format, as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DartVersionArg {
    /// v1 (M1, t8103).
    #[value(name = "1")]
    V1,
    /// v2 (M1 Pro/Max t6000, M2 and later t8110).
    #[value(name = "2")]
    V2,
}

/// Apple DART register block (TTBR and TCR encodings), as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DartRegsArg {
    /// T8020-style: four TTBRs, two table levels (t8103, t6000).
    #[value(name = "t8020")]
    T8020,
    /// T8110-style: one TTBR, two or three table levels (t8110, t6020).
    #[value(name = "t8110")]
    T8110,
}

/// Format options. Unset options take the format's defaults.
#[derive(Debug, Clone, Default, Args)]
pub struct FormatOptions {
    /// (arm64, dart) Translation granule [default: 4k for arm64, 16k for dart].
    #[arg(long, value_enum)]
    pub granule: Option<GranuleArg>,
    /// (arm64, arm32, dart) Input address size in bits [default: 48 for arm64, 32 for
    /// arm32 and dart].
    #[arg(long, value_name = "BITS")]
    pub ias: Option<u32>,
    /// Output address size in bits [default: 48 for arm64 (52 selects the 52-bit
    /// format, 64k granule only), 52 for amdv1, x86-64 and vtd-ss, 40 for arm32 and
    /// mali, 32 for armv7s, 36 for dart v1, 42 for dart v2, 56 for riscv].
    #[arg(long, value_name = "BITS")]
    pub oas: Option<u32>,
    /// (arm64) Translate the upper half of the address space (TTBR1; stage 1 only).
    #[arg(long)]
    pub ttbr1: bool,
    /// (arm64, arm32, armv7s) Set the non-secure bits (stage 1 only on arm64 and arm32).
    #[arg(long)]
    pub ns: bool,
    /// (arm64, arm32) Do not use contiguous-hint runs.
    #[arg(long)]
    pub no_contig: bool,
    /// (arm64, arm32) The IOMMU's table walks do not snoop the CPU caches.
    #[arg(long)]
    pub incoherent_walk: bool,
    /// (mali) The GPU's table walks are coherent with the CPU caches.
    #[arg(long)]
    pub coherent_walk: bool,
    /// (amdv1) Levels at creation [default: 3]; (x86-64) 4 or 5 [default: 4]; (vtd-ss)
    /// 3, 4 or 5 [default: 4]; (riscv) 3, 4 or 5 for Sv39, Sv48, Sv57 [default: 4].
    #[arg(long, value_name = "N")]
    pub levels: Option<u32>,
    /// (amdv1) Most levels the table may grow to [default: 6, or --levels with
    /// --no-dynamic-top].
    #[arg(long, value_name = "N")]
    pub max_levels: Option<u32>,
    /// (amdv1) The top level never grows.
    #[arg(long)]
    pub no_dynamic_top: bool,
    /// (x86-64, riscv) Translate only the lower half, without sign extension.
    #[arg(long)]
    pub no_sign_extend: bool,
    /// (amdv1, vtd-ss, riscv) Hardware dirty tracking (AMD DTE.HAD, VT-d SSADE; RISC-V:
    /// writable leaves start clean and the IOMMU updates A/D, DC.tc.SADE).
    #[arg(long)]
    pub dirty_tracking: bool,
    /// (vtd-ss) The IOMMU has no 2 MiB pages (CAP.SLLPS bit 0 clear).
    #[arg(long)]
    pub no_2m: bool,
    /// (vtd-ss) The IOMMU has no 1 GiB pages (CAP.SLLPS bit 1 clear).
    #[arg(long)]
    pub no_1g: bool,
    /// (dart) Entry format [default: 1; 2 starts from the t6000 configuration].
    #[arg(long, value_enum, value_name = "VERSION")]
    pub dart_version: Option<DartVersionArg>,
    /// (dart) Register block the TTBR/TCR words are for [default: t8020].
    #[arg(long, value_enum, value_name = "REGS")]
    pub dart_regs: Option<DartRegsArg>,
    /// (riscv) No Svnapot 64K pages.
    #[arg(long)]
    pub no_svnapot: bool,
    /// (riscv) Svpbmt memory types in leaves (IO for MMIO, NC without CACHE).
    #[arg(long)]
    pub svpbmt: bool,
}

/// A configured format of any kind.
#[derive(Debug, Clone, Copy)]
pub enum AnyFormat {
    /// `arm64-s1` or `arm64-s2`.
    ArmLpae(ArmLpae),
    /// `arm64-s1` or `arm64-s2` with `--oas 52`.
    ArmLpae52(ArmLpae52),
    /// `arm32-s1` or `arm32-s2`.
    Arm32Lpae(Arm32Lpae),
    /// `mali`.
    MaliLpae(MaliLpae),
    /// `amdv1`.
    AmdV1(AmdV1),
    /// `x86-64`.
    X86_64(X86_64),
    /// `armv7s`.
    ArmV7s(ArmV7s),
    /// `vtd-ss`.
    VtdSs(VtdSs),
    /// `dart`.
    Dart(Dart),
    /// `riscv`.
    Riscv(Riscv),
}

/// A format chosen on the command line, with a one-line description of its
/// configuration.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The command-line name.
    pub name: FormatName,
    /// The configuration in words, e.g. `stage 1, 4K granule, ias 48, oas 48, ...`.
    pub summary: String,
    /// The format itself.
    pub format: AnyFormat,
}

/// Why a format could not be built from the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// `--option` was given to a format it does not apply to.
    NotApplicable {
        /// The option's long name, without the dashes.
        option: &'static str,
        /// The format it was given to.
        format: FormatName,
    },
    /// The library refused the configuration.
    Config(Error),
}

impl From<Error> for BuildError {
    fn from(e: Error) -> Self {
        BuildError::Config(e)
    }
}

impl FormatOptions {
    /// The options that were given, each with the formats it applies to.
    fn given(&self) -> [(&'static str, bool, &'static [FormatName]); 19] {
        const ARM: &[FormatName] = &[S1, S2];
        const LPAE: &[FormatName] = &[S1, S2, A32S1, A32S2];
        [
            ("granule", self.granule.is_some(), &[S1, S2, DartName]),
            ("ias", self.ias.is_some(), &[S1, S2, A32S1, A32S2, DartName]),
            (
                "oas",
                self.oas.is_some(),
                &[
                    S1, S2, Amd, X86, V7s, Vtd, DartName, RiscV, A32S1, A32S2, MaliGpu,
                ],
            ),
            ("ttbr1", self.ttbr1, ARM),
            ("ns", self.ns, &[S1, S2, V7s, A32S1, A32S2]),
            ("no-contig", self.no_contig, LPAE),
            ("incoherent-walk", self.incoherent_walk, LPAE),
            ("coherent-walk", self.coherent_walk, &[MaliGpu]),
            ("levels", self.levels.is_some(), &[Amd, X86, Vtd, RiscV]),
            ("max-levels", self.max_levels.is_some(), &[Amd]),
            ("no-dynamic-top", self.no_dynamic_top, &[Amd]),
            ("no-sign-extend", self.no_sign_extend, &[X86, RiscV]),
            ("dirty-tracking", self.dirty_tracking, &[Amd, Vtd, RiscV]),
            ("no-2m", self.no_2m, &[Vtd]),
            ("no-1g", self.no_1g, &[Vtd]),
            ("dart-version", self.dart_version.is_some(), &[DartName]),
            ("dart-regs", self.dart_regs.is_some(), &[DartName]),
            ("no-svnapot", self.no_svnapot, &[RiscV]),
            ("svpbmt", self.svpbmt, &[RiscV]),
        ]
    }

    /// Fails on the first option given that does not apply to `format`.
    fn check_applicable(&self, format: FormatName) -> Result<(), BuildError> {
        match self
            .given()
            .into_iter()
            .find(|&(_, set, formats)| set && !formats.contains(&format))
        {
            Some((option, ..)) => Err(BuildError::NotApplicable { option, format }),
            None => Ok(()),
        }
    }
}

/// Builds the format `name` from `opts`.
///
/// # Errors
/// [`BuildError::NotApplicable`] for an option that does not belong to the format,
/// [`BuildError::Config`] when the library refuses the configuration.
pub fn build(name: FormatName, opts: &FormatOptions) -> Result<Selected, BuildError> {
    opts.check_applicable(name)?;
    let (summary, format) = match name {
        S1 | S2 => {
            let defaults = ArmLpaeConfig::default();
            let cfg = ArmLpaeConfig {
                stage: if name == S1 { Stage::S1 } else { Stage::S2 },
                granule: opts.granule.map_or(defaults.granule, Granule::from),
                ias: opts.ias.unwrap_or(defaults.ias),
                oas: opts.oas.unwrap_or(defaults.oas),
                contiguous: !opts.no_contig,
                coherent_walk: !opts.incoherent_walk,
                ttbr1: opts.ttbr1,
                ns: opts.ns,
            };
            if cfg.oas == 52 {
                let fmt = ArmLpae52::new(cfg)?;
                (
                    arm_summary(&cfg, fmt.start_level_arm(), false),
                    AnyFormat::ArmLpae52(fmt),
                )
            } else {
                let fmt = ArmLpae::new(cfg)?;
                (
                    arm_summary(&cfg, fmt.start_level_arm(), false),
                    AnyFormat::ArmLpae(fmt),
                )
            }
        }
        A32S1 | A32S2 => {
            let defaults = Arm32LpaeConfig::default();
            let cfg = Arm32LpaeConfig {
                stage: if name == A32S1 { Stage::S1 } else { Stage::S2 },
                ias: opts.ias.unwrap_or(defaults.ias),
                oas: opts.oas.unwrap_or(defaults.oas),
                contiguous: !opts.no_contig,
                coherent_walk: !opts.incoherent_walk,
                ns: opts.ns,
            };
            let fmt = Arm32Lpae::new(cfg)?;
            let arm = ArmLpaeConfig {
                stage: cfg.stage,
                granule: Granule::K4,
                ias: cfg.ias,
                oas: cfg.oas,
                contiguous: cfg.contiguous,
                coherent_walk: cfg.coherent_walk,
                ttbr1: false,
                ns: cfg.ns,
            };
            (
                arm_summary(&arm, fmt.start_level_arm(), true),
                AnyFormat::Arm32Lpae(fmt),
            )
        }
        MaliGpu => {
            let defaults = MaliLpaeConfig::default();
            let cfg = MaliLpaeConfig {
                oas: opts.oas.unwrap_or(defaults.oas),
                coherent_walk: opts.coherent_walk,
            };
            let fmt = MaliLpae::new(cfg)?;
            let summary = format!(
                "4K granule, ias 48, oas {}, 4 levels, {} walk",
                cfg.oas,
                if cfg.coherent_walk {
                    "coherent"
                } else {
                    "non-coherent"
                }
            );
            (summary, AnyFormat::MaliLpae(fmt))
        }
        Amd => {
            let defaults = AmdV1Config::default();
            let levels = opts.levels.unwrap_or(defaults.levels);
            let dynamic_top = !opts.no_dynamic_top;
            let cfg = AmdV1Config {
                levels,
                max_levels: opts.max_levels.unwrap_or(if dynamic_top {
                    defaults.max_levels
                } else {
                    levels
                }),
                dynamic_top,
                oa_bits: opts.oas.unwrap_or(defaults.oa_bits),
                dirty_tracking: opts.dirty_tracking,
                ..defaults
            };
            let fmt = AmdV1::new(cfg)?;
            let top = if cfg.dynamic_top {
                format!("dynamic top up to {} levels", cfg.max_levels)
            } else {
                "fixed top".to_owned()
            };
            let summary = format!(
                "{} levels, {top}, oas {}{}{}",
                cfg.levels,
                cfg.oa_bits,
                if cfg.force_coherence {
                    ", force coherent"
                } else {
                    ""
                },
                if cfg.dirty_tracking {
                    ", dirty tracking"
                } else {
                    ""
                }
            );
            (summary, AnyFormat::AmdV1(fmt))
        }
        X86 => {
            let defaults = X86_64Config::default();
            let cfg = X86_64Config {
                levels: opts.levels.unwrap_or(defaults.levels),
                oa_bits: opts.oas.unwrap_or(defaults.oa_bits),
                sign_extend: !opts.no_sign_extend,
                ..defaults
            };
            let fmt = X86_64::new(cfg)?;
            let summary = format!(
                "{} levels, oas {}, {}",
                cfg.levels,
                cfg.oa_bits,
                if cfg.sign_extend {
                    "sign-extended"
                } else {
                    "lower half only"
                }
            );
            (summary, AnyFormat::X86_64(fmt))
        }
        V7s => {
            let defaults = ArmV7sConfig::default();
            let cfg = ArmV7sConfig {
                ns: opts.ns,
                oa_bits: opts.oas.unwrap_or(defaults.oa_bits),
                ..defaults
            };
            let fmt = ArmV7s::new(cfg)?;
            let summary = format!(
                "oas {}, {}, {} walk",
                cfg.oa_bits,
                if cfg.ns { "non-secure" } else { "secure" },
                if cfg.coherent_walk {
                    "coherent"
                } else {
                    "non-coherent"
                }
            );
            (summary, AnyFormat::ArmV7s(fmt))
        }
        Vtd => {
            let defaults = VtdSsConfig::default();
            let cfg = VtdSsConfig {
                levels: opts.levels.unwrap_or(defaults.levels),
                oa_bits: opts.oas.unwrap_or(defaults.oa_bits),
                large_2m: !opts.no_2m,
                large_1g: !opts.no_1g,
                dirty_tracking: opts.dirty_tracking,
                ..defaults
            };
            let fmt = VtdSs::new(cfg)?;
            let large: Vec<&str> = [(cfg.large_2m, "2M"), (cfg.large_1g, "1G")]
                .into_iter()
                .filter_map(|(on, s)| on.then_some(s))
                .collect();
            let summary = format!(
                "{} levels, oas {}, large pages: {}{}{}",
                cfg.levels,
                cfg.oa_bits,
                if large.is_empty() {
                    "none".to_owned()
                } else {
                    large.join(" ")
                },
                if cfg.force_coherence { ", snoop" } else { "" },
                if cfg.dirty_tracking {
                    ", dirty tracking"
                } else {
                    ""
                }
            );
            (summary, AnyFormat::VtdSs(fmt))
        }
        DartName => {
            let defaults = match opts.dart_version {
                None | Some(DartVersionArg::V1) => DartConfig::t8103(),
                Some(DartVersionArg::V2) => DartConfig::t6000(),
            };
            let cfg = DartConfig {
                granule: opts.granule.map_or(defaults.granule, Granule::from),
                ias: opts.ias.unwrap_or(defaults.ias),
                oas: opts.oas.unwrap_or(defaults.oas),
                regs: match opts.dart_regs {
                    None => defaults.regs,
                    Some(DartRegsArg::T8020) => DartRegs::T8020,
                    Some(DartRegsArg::T8110) => DartRegs::T8110,
                },
                ..defaults
            };
            let fmt = Dart::new(cfg)?;
            let summary = format!(
                "{}, {} granule, ias {}, oas {}, {} registers, {} TTBR{}",
                match cfg.version {
                    DartVersion::V1 => "v1",
                    DartVersion::V2 => "v2",
                },
                units::size(1 << cfg.granule.lg2()),
                cfg.ias,
                cfg.oas,
                match cfg.regs {
                    DartRegs::T8020 => "T8020",
                    DartRegs::T8110 => "T8110",
                },
                fmt.ttbrs(),
                if fmt.ttbrs() == 1 { "" } else { "s" }
            );
            (summary, AnyFormat::Dart(fmt))
        }
        RiscV => {
            let defaults = RiscvConfig::default();
            let cfg = RiscvConfig {
                levels: opts.levels.unwrap_or(defaults.levels),
                oa_bits: opts.oas.unwrap_or(defaults.oa_bits),
                sign_extend: !opts.no_sign_extend,
                svnapot: !opts.no_svnapot,
                svpbmt: opts.svpbmt,
                dirty_tracking: opts.dirty_tracking,
            };
            let fmt = Riscv::new(cfg)?;
            (riscv_summary(&cfg), AnyFormat::Riscv(fmt))
        }
    };
    Ok(Selected {
        name,
        summary,
        format,
    })
}

/// The one-line description of a RISC-V configuration, e.g. `Sv48, oas 56, sign-extended,
/// Svnapot`.
fn riscv_summary(cfg: &RiscvConfig) -> String {
    // Sv39, Sv48, Sv57: the IOVA width of 3, 4 or 5 levels.
    let mut s = format!(
        "Sv{}, oas {}, {}",
        12 + 9 * cfg.levels,
        cfg.oa_bits,
        if cfg.sign_extend {
            "sign-extended"
        } else {
            "lower half only"
        }
    );
    if cfg.svnapot {
        s.push_str(", Svnapot");
    }
    if cfg.svpbmt {
        s.push_str(", Svpbmt");
    }
    if cfg.dirty_tracking {
        s.push_str(", dirty tracking");
    }
    s
}

/// The one-line description of an ARM LPAE configuration whose walk starts at ARM level
/// `start_level` (an AArch32 one when `aarch32`).
fn arm_summary(cfg: &ArmLpaeConfig, start_level: u32, aarch32: bool) -> String {
    let stage = match cfg.stage {
        Stage::S1 => "stage 1",
        Stage::S2 => "stage 2",
    };
    let mut s = format!(
        "{}{stage}, {} granule, ias {}, oas {}, start level {}",
        if aarch32 { "AArch32 " } else { "" },
        units::size(1 << cfg.granule.lg2()),
        cfg.ias,
        cfg.oas,
        start_level
    );
    if cfg.stage == Stage::S1 && !aarch32 {
        s.push_str(if cfg.ttbr1 { ", TTBR1" } else { ", TTBR0" });
    }
    s.push_str(if cfg.contiguous {
        ", contiguous hints"
    } else {
        ", no contiguous hints"
    });
    s.push_str(if cfg.coherent_walk {
        ", coherent walk"
    } else {
        ", non-coherent walk"
    });
    if cfg.ns {
        s.push_str(", non-secure");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_for_another_format_is_refused() {
        let opts = FormatOptions {
            granule: Some(GranuleArg::K16),
            ..FormatOptions::default()
        };
        assert_eq!(
            build(Amd, &opts).err(),
            Some(BuildError::NotApplicable {
                option: "granule",
                format: Amd
            })
        );
    }

    #[test]
    fn library_limits_are_passed_through() {
        let opts = FormatOptions {
            levels: Some(3),
            ..FormatOptions::default()
        };
        assert_eq!(
            build(X86, &opts).err(),
            Some(BuildError::Config(Error::BadConfig(
                "levels must be 4 or 5"
            )))
        );
    }

    #[test]
    fn dart_versions_and_registers() {
        let sel = build(DartName, &FormatOptions::default()).expect("t8103 is valid");
        assert_eq!(
            sel.summary,
            "v1, 16K granule, ias 32, oas 36, T8020 registers, 1 TTBR"
        );
        let opts = FormatOptions {
            dart_version: Some(DartVersionArg::V2),
            dart_regs: Some(DartRegsArg::T8110),
            ias: Some(42),
            ..FormatOptions::default()
        };
        let sel = build(DartName, &opts).expect("t6020 is valid");
        assert_eq!(
            sel.summary,
            "v2, 16K granule, ias 42, oas 42, T8110 registers, 1 TTBR"
        );
        let opts = FormatOptions {
            granule: Some(GranuleArg::K4),
            ..FormatOptions::default()
        };
        let sel = build(DartName, &opts).expect("4K v1 is valid");
        assert!(sel.summary.ends_with("4 TTBRs"), "{}", sel.summary);
        let opts = FormatOptions {
            dart_version: Some(DartVersionArg::V2),
            ..FormatOptions::default()
        };
        assert_eq!(
            build(V7s, &opts).err(),
            Some(BuildError::NotApplicable {
                option: "dart-version",
                format: V7s
            })
        );
    }

    #[test]
    fn riscv_options() {
        let opts = FormatOptions {
            levels: Some(5),
            svpbmt: true,
            ..FormatOptions::default()
        };
        let sel = build(RiscV, &opts).expect("Sv57 is valid");
        assert_eq!(sel.summary, "Sv57, oas 56, sign-extended, Svnapot, Svpbmt");
        let opts = FormatOptions {
            svpbmt: true,
            ..FormatOptions::default()
        };
        assert_eq!(
            build(X86, &opts).err(),
            Some(BuildError::NotApplicable {
                option: "svpbmt",
                format: X86
            })
        );
        let opts = FormatOptions {
            levels: Some(2),
            ..FormatOptions::default()
        };
        assert_eq!(
            build(RiscV, &opts).err(),
            Some(BuildError::Config(Error::BadConfig(
                "levels must be 3, 4 or 5"
            )))
        );
    }

    #[test]
    fn fixed_amdv1_top_defaults_max_levels_to_levels() {
        let opts = FormatOptions {
            levels: Some(4),
            no_dynamic_top: true,
            ..FormatOptions::default()
        };
        let sel = build(Amd, &opts).expect("a fixed 4-level table is valid");
        assert_eq!(sel.summary, "4 levels, fixed top, oas 52, force coherent");
    }
}

#[cfg(test)]
mod vtd_tests {
    use super::*;

    #[test]
    fn vtd_ss_options() {
        let opts = FormatOptions {
            levels: Some(5),
            no_2m: true,
            dirty_tracking: true,
            ..FormatOptions::default()
        };
        let sel = build(Vtd, &opts).expect("a 5-level table is valid");
        assert_eq!(
            sel.summary,
            "5 levels, oas 52, large pages: 1G, dirty tracking"
        );
        let opts = FormatOptions {
            no_1g: true,
            ..FormatOptions::default()
        };
        assert_eq!(
            build(Amd, &opts).err(),
            Some(BuildError::NotApplicable {
                option: "no-1g",
                format: Amd
            })
        );
    }
}
