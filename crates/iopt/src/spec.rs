//! The format catalogue: every format and its options, chosen at run time from one short
//! text form, and built into the monomorphised format type with one dispatch per table.
//!
//! A [`FormatSpec`] names a format family and its options, written
//! `NAME[:OPTION,OPTION,...]`, for example `arm64-s2:granule=16k,ias=40`,
//! `amdv1:levels=1`, `riscv:levels=5,no-svnapot` or `dart:version=2,regs=t8110`:
//! - `NAME` is one of the families of [`FormatSpec::families`] (`arm64-s1`, `arm64-s2`,
//!   `arm32-s1`, `arm32-s2`, `mali`, `amdv1`, `x86-64`, `armv7s`, `vtd-ss`, `dart`,
//!   `riscv`);
//! - a value option is written `option=value` (`ias=40`, `granule=16k`);
//! - an on/off option is written `option` (on) or `no-option` (off): `ttbr1`,
//!   `no-contig`, `no-sign-extend`;
//! - options may come in any order, each at most once; an option left out takes the
//!   family's default. Names and values are not case-sensitive.
//!
//! Parsing checks everything the format's constructor checks, so an error names the
//! option and its limit. [`Display`](core::fmt::Display) prints the canonical form: the
//! options that differ from the defaults, in the family's option order (the alternate
//! form `{:#}` prints every option). The canonical form parses back to an equal spec.
//!
//! [`FormatSpec::build`] gives an [`AnyFormat`], an enum with one variant per format
//! type. Generic code runs on it through [`AnyFormat::visit`] with a [`FormatVisitor`],
//! or through the [`with_format!`](crate::with_format) macro: either is one `match` per
//! table, after which the table works on the concrete format type (no `dyn` on the hot
//! path). These are the only places that list the format types.
//!
//! [`FormatSpec::catalogue`] lists the configurations worth testing: every format and
//! every variant that changes what the engine does.
//!
//! ```
//! use iopt::mem::HeapMemory;
//! use iopt::spec::FormatSpec;
//! use iopt::{NoFlush, PageTable};
//!
//! let spec: FormatSpec = "arm64-s2:granule=16k,ias=40".parse()?;
//! assert_eq!(spec.to_string(), "arm64-s2:granule=16k,ias=40");
//! let levels = iopt::with_format!(spec.build()?, f => {
//!     let pt = PageTable::new(f, HeapMemory::new(), NoFlush)?;
//!     pt.info().levels
//! });
//! assert_eq!(levels, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::str::FromStr;

use crate::fmt::amdv1::{AmdV1, AmdV1Config};
use crate::fmt::arm_lpae::{ArmLpae, ArmLpae52, ArmLpaeConfig, Granule, Stage};
use crate::fmt::arm32_lpae::{Arm32Lpae, Arm32LpaeConfig};
use crate::fmt::armv7s::{ArmV7s, ArmV7sConfig};
use crate::fmt::dart::{Dart, DartConfig, DartRegs, DartVersion};
use crate::fmt::mali::{MaliLpae, MaliLpaeConfig};
use crate::fmt::riscv::{Riscv, RiscvConfig};
use crate::fmt::vtdss::{VtdSs, VtdSsConfig};
use crate::fmt::x86_64::{X86_64, X86_64Config};
use crate::{Error, Format, VaMode};

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

/// Every option any family has. The index is the option's slot in [`Given`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Granule,
    Ias,
    Oas,
    Levels,
    MaxLevels,
    Version,
    Regs,
    SmeCBit,
    Ttbr1,
    Ns,
    Contig,
    CoherentWalk,
    DynamicTop,
    ForceCoherence,
    SignExtend,
    Large2m,
    Large1g,
    Svnapot,
    Svpbmt,
    DirtyTracking,
    Bbml,
}

/// Number of [`Opt`] variants.
const OPT_COUNT: usize = 21;

/// What an option's value looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// On/off: `name` or `no-name`.
    Flag,
    /// A decimal number.
    Number,
    /// `4k`, `16k` or `64k`.
    Granule,
    /// `1` or `2`.
    Version,
    /// `t8020` or `t8110`.
    Regs,
    /// A bit number, or `none`.
    BitOrNone,
}

impl Opt {
    const fn name(self) -> &'static str {
        match self {
            Opt::Granule => "granule",
            Opt::Ias => "ias",
            Opt::Oas => "oas",
            Opt::Levels => "levels",
            Opt::MaxLevels => "max-levels",
            Opt::Version => "version",
            Opt::Regs => "regs",
            Opt::SmeCBit => "sme-c-bit",
            Opt::Ttbr1 => "ttbr1",
            Opt::Ns => "ns",
            Opt::Contig => "contig",
            Opt::CoherentWalk => "coherent-walk",
            Opt::DynamicTop => "dynamic-top",
            Opt::ForceCoherence => "force-coherence",
            Opt::SignExtend => "sign-extend",
            Opt::Large2m => "2m",
            Opt::Large1g => "1g",
            Opt::Svnapot => "svnapot",
            Opt::Svpbmt => "svpbmt",
            Opt::DirtyTracking => "dirty-tracking",
            Opt::Bbml => "bbml",
        }
    }

    const fn kind(self) -> Kind {
        match self {
            Opt::Granule => Kind::Granule,
            Opt::Ias | Opt::Oas | Opt::Levels | Opt::MaxLevels | Opt::Bbml => Kind::Number,
            Opt::Version => Kind::Version,
            Opt::Regs => Kind::Regs,
            Opt::SmeCBit => Kind::BitOrNone,
            Opt::Ttbr1
            | Opt::Ns
            | Opt::Contig
            | Opt::CoherentWalk
            | Opt::DynamicTop
            | Opt::ForceCoherence
            | Opt::SignExtend
            | Opt::Large2m
            | Opt::Large1g
            | Opt::Svnapot
            | Opt::Svpbmt
            | Opt::DirtyTracking => Kind::Flag,
        }
    }
}

/// One option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Bool(bool),
    Num(u32),
    Granule(Granule),
    Version(DartVersion),
    Regs(DartRegs),
    BitOrNone(Option<u32>),
}

/// The options given (or, for printing, every option of a spec), by [`Opt`].
#[derive(Debug, Clone, Copy, Default)]
struct Given([Option<Val>; OPT_COUNT]);

impl Given {
    fn get(&self, opt: Opt) -> Option<Val> {
        self.0[opt as usize]
    }
    fn set(&mut self, opt: Opt, val: Val) {
        self.0[opt as usize] = Some(val);
    }
    fn clear(&mut self, opt: Opt) {
        self.0[opt as usize] = None;
    }
    fn flag(&self, opt: Opt, default: bool) -> bool {
        match self.get(opt) {
            Some(Val::Bool(b)) => b,
            _ => default,
        }
    }
    fn num(&self, opt: Opt, default: u32) -> u32 {
        match self.get(opt) {
            Some(Val::Num(n)) => n,
            _ => default,
        }
    }
    fn granule(&self, default: Granule) -> Granule {
        match self.get(Opt::Granule) {
            Some(Val::Granule(g)) => g,
            _ => default,
        }
    }
    fn sme_c_bit(&self, default: Option<u32>) -> Option<u32> {
        match self.get(Opt::SmeCBit) {
            Some(Val::BitOrNone(b)) => b,
            _ => default,
        }
    }
}

/// One option of a format family, as [`Family::options`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionInfo {
    opt: Opt,
    values: &'static str,
    default: &'static str,
    help: &'static str,
}

impl OptionInfo {
    const fn new(
        opt: Opt,
        values: &'static str,
        default: &'static str,
        help: &'static str,
    ) -> Self {
        OptionInfo {
            opt,
            values,
            default,
            help,
        }
    }

    /// The option's name (`granule`, `ias`, `no-contig` is the off form of `contig`).
    ///
    /// ```
    /// let arm = iopt::spec::FormatSpec::family_named("arm64-s1").unwrap();
    /// assert_eq!(arm.options()[0].name(), "granule");
    /// ```
    pub fn name(&self) -> &'static str {
        self.opt.name()
    }

    /// True for an on/off option (written `name` or `no-name`); false for one written
    /// `name=value`.
    pub fn is_flag(&self) -> bool {
        self.opt.kind() == Kind::Flag
    }

    /// The values it accepts, in words (`4k, 16k or 64k`, `32..=48`, `on or off`).
    pub fn values(&self) -> &'static str {
        self.values
    }

    /// Its default, in words (`48`; `on` or `off` for an on/off option).
    pub fn default_text(&self) -> &'static str {
        self.default
    }

    /// For an on/off option, whether it is on by default.
    pub fn default_on(&self) -> Option<bool> {
        match (self.is_flag(), self.default) {
            (true, "on") => Some(true),
            (true, "off") => Some(false),
            _ => None,
        }
    }

    /// What it does, in one line.
    pub fn help(&self) -> &'static str {
        self.help
    }
}

const ON_OFF: &str = "on or off";

// The option tables: the order is the canonical print order.

const ARM64_OPTIONS: &[OptionInfo] = &[
    OptionInfo::new(Opt::Granule, "4k, 16k or 64k", "4k", "translation granule"),
    OptionInfo::new(
        Opt::Ias,
        "32..=48 (32..=52 with oas=52)",
        "48",
        "input address size in bits (TCR.T0SZ = 64 - ias)",
    ),
    OptionInfo::new(
        Opt::Oas,
        "32, 36, 40, 42, 44, 48, or 52 (the 52-bit format, 64k granule only)",
        "48",
        "output address size in bits (TCR.IPS / VTCR.PS)",
    ),
    OptionInfo::new(
        Opt::Ttbr1,
        ON_OFF,
        "off",
        "translate the upper half of the address space (TTBR1; stage 1 only)",
    ),
    OptionInfo::new(
        Opt::Ns,
        ON_OFF,
        "off",
        "set the non-secure bits NS/NSTable (stage 1 only)",
    ),
    OptionInfo::new(Opt::Contig, ON_OFF, "on", "use contiguous-hint runs"),
    OptionInfo::new(
        Opt::CoherentWalk,
        ON_OFF,
        "on",
        "the IOMMU's table walks snoop the CPU caches",
    ),
    OptionInfo::new(
        Opt::DirtyTracking,
        ON_OFF,
        "off",
        "hardware dirty tracking: writable-clean leaves with DBM, HTTU (TCR/VTCR HA+HD)",
    ),
    OptionInfo::new(
        Opt::Bbml,
        "0, 1 or 2",
        "0",
        "break-before-make level (SMMU_IDR3.BBML / FEAT_BBM): 2 makes cuts hitless",
    ),
];

const ARM32_OPTIONS: &[OptionInfo] = &[
    OptionInfo::new(
        Opt::Ias,
        "25..=32 at stage 1, 25..=40 at stage 2",
        "32",
        "input address size in bits",
    ),
    OptionInfo::new(
        Opt::Oas,
        "32, 36 or 40",
        "40",
        "output address size in bits",
    ),
    OptionInfo::new(
        Opt::Ns,
        ON_OFF,
        "off",
        "set the non-secure bits NS/NSTable (stage 1 only)",
    ),
    OptionInfo::new(Opt::Contig, ON_OFF, "on", "use contiguous-hint runs"),
    OptionInfo::new(
        Opt::CoherentWalk,
        ON_OFF,
        "on",
        "the IOMMU's table walks snoop the CPU caches",
    ),
    OptionInfo::new(
        Opt::DirtyTracking,
        ON_OFF,
        "off",
        "hardware dirty tracking: writable-clean leaves with DBM, HTTU (TCR/VTCR HA+HD)",
    ),
    OptionInfo::new(
        Opt::Bbml,
        "0, 1 or 2",
        "0",
        "break-before-make level (SMMU_IDR3.BBML / FEAT_BBM): 2 makes cuts hitless",
    ),
];

const MALI_OPTIONS: &[OptionInfo] = &[
    OptionInfo::new(Opt::Oas, "32..=40", "40", "output address size in bits"),
    OptionInfo::new(
        Opt::CoherentWalk,
        ON_OFF,
        "off",
        "the GPU's table walks are coherent with the CPU caches (TRANSTAB SHARE_OUTER)",
    ),
];

const AMDV1_OPTIONS: &[OptionInfo] = &[
    OptionInfo::new(Opt::Levels, "1..=6", "3", "levels at creation (DTE.Mode)"),
    OptionInfo::new(
        Opt::MaxLevels,
        "levels..=6 (equal to levels with no-dynamic-top)",
        "6, or levels with no-dynamic-top",
        "most levels the top may grow to (EFR.HATS)",
    ),
    OptionInfo::new(Opt::Oas, "32..=52", "52", "output address size in bits"),
    OptionInfo::new(
        Opt::SmeCBit,
        "oas..=51, or none",
        "none",
        "memory encryption C-bit position (SME)",
    ),
    OptionInfo::new(
        Opt::DynamicTop,
        ON_OFF,
        "on",
        "the top level grows while the table is in use",
    ),
    OptionInfo::new(
        Opt::ForceCoherence,
        ON_OFF,
        "on",
        "set FC (force coherent) in every leaf",
    ),
    OptionInfo::new(
        Opt::DirtyTracking,
        ON_OFF,
        "off",
        "hardware dirty tracking (DTE.HAD = 3)",
    ),
];

const X86_64_OPTIONS: &[OptionInfo] = &[
    OptionInfo::new(Opt::Levels, "4 or 5", "4", "paging levels"),
    OptionInfo::new(Opt::Oas, "32..=52", "52", "output address size in bits"),
    OptionInfo::new(
        Opt::SmeCBit,
        "oas..=51, or none",
        "none",
        "memory encryption C-bit position (AMD SME)",
    ),
    OptionInfo::new(
        Opt::SignExtend,
        ON_OFF,
        "on",
        "sign-extended IOVAs, both halves (off: the lower half only, as AMD v2)",
    ),
    OptionInfo::new(
        Opt::DirtyTracking,
        ON_OFF,
        "off",
        "hardware dirty tracking: writable leaves start with D clear",
    ),
];

const ARMV7S_OPTIONS: &[OptionInfo] = &[
    OptionInfo::new(Opt::Oas, "32", "32", "output address size in bits"),
    OptionInfo::new(Opt::Ns, ON_OFF, "off", "set the NS bits"),
    OptionInfo::new(
        Opt::CoherentWalk,
        ON_OFF,
        "off",
        "the IOMMU's table walks snoop the CPU caches",
    ),
];

const VTDSS_OPTIONS: &[OptionInfo] = &[
    OptionInfo::new(
        Opt::Levels,
        "3, 4 or 5",
        "4",
        "levels: 39-, 48- or 57-bit IOVA (CAP.SAGAW)",
    ),
    OptionInfo::new(
        Opt::Oas,
        "32..=52",
        "52",
        "output address size in bits (the DMAR table's HAW)",
    ),
    OptionInfo::new(Opt::Large2m, ON_OFF, "on", "2 MiB pages (CAP.SLLPS bit 0)"),
    OptionInfo::new(Opt::Large1g, ON_OFF, "on", "1 GiB pages (CAP.SLLPS bit 1)"),
    OptionInfo::new(
        Opt::ForceCoherence,
        ON_OFF,
        "off",
        "set SNP in every leaf (force snooping)",
    ),
    OptionInfo::new(
        Opt::DirtyTracking,
        ON_OFF,
        "off",
        "hardware dirty tracking (PASID entry SSADE)",
    ),
];

const DART_OPTIONS: &[OptionInfo] = &[
    OptionInfo::new(
        Opt::Version,
        "1 or 2",
        "1",
        "entry format: 1 (t8103), 2 (t6000 and later)",
    ),
    OptionInfo::new(
        Opt::Granule,
        "4k or 16k (16k only for version 2 and regs=t8110)",
        "16k",
        "page and table size",
    ),
    OptionInfo::new(
        Opt::Ias,
        "32..=oas, and at most 36 with regs=t8020",
        "32",
        "IOVA width in bits",
    ),
    OptionInfo::new(
        Opt::Oas,
        "36 or 42 (36 only for version 1)",
        "36 for version 1, 42 for version 2",
        "output address width in bits",
    ),
    OptionInfo::new(
        Opt::Regs,
        "t8020 or t8110",
        "t8020",
        "register block the TTBR/TCR words are for",
    ),
];

const RISCV_OPTIONS: &[OptionInfo] = &[
    OptionInfo::new(Opt::Levels, "3, 4 or 5", "4", "levels: Sv39, Sv48 or Sv57"),
    OptionInfo::new(Opt::Oas, "32..=56", "56", "output address size in bits"),
    OptionInfo::new(
        Opt::SignExtend,
        ON_OFF,
        "on",
        "sign-extended IOVAs, both halves (off: the lower half only)",
    ),
    OptionInfo::new(Opt::Svnapot, ON_OFF, "on", "Svnapot 64K pages"),
    OptionInfo::new(
        Opt::Svpbmt,
        ON_OFF,
        "off",
        "Svpbmt memory types in leaves (IO for MMIO, NC without CACHE)",
    ),
    OptionInfo::new(
        Opt::DirtyTracking,
        ON_OFF,
        "off",
        "hardware dirty tracking: writable leaves start clean (DC.tc.SADE)",
    ),
];

// ---------------------------------------------------------------------------------------
// Families
// ---------------------------------------------------------------------------------------

/// Which family a spec belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fam {
    Arm64S1,
    Arm64S2,
    Arm32S1,
    Arm32S2,
    Mali,
    AmdV1,
    X86_64,
    ArmV7s,
    VtdSs,
    Dart,
    Riscv,
}

/// A format family: a name on the command line, with its options.
///
/// ```
/// use iopt::spec::FormatSpec;
/// for family in FormatSpec::families() {
///     println!("{:10} {}", family.name(), family.help());
///     for opt in family.options() {
///         println!("    {:16} {} [default: {}]", opt.name(), opt.help(), opt.default_text());
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    fam: Fam,
    name: &'static str,
    module: &'static str,
    help: &'static str,
    options: &'static [OptionInfo],
}

/// Every family, in the order the tool lists them.
static FAMILIES: &[Family] = &[
    Family {
        fam: Fam::Arm64S1,
        name: "arm64-s1",
        module: "arm_lpae",
        help: "ARM64 LPAE (VMSAv8-64) stage 1: SMMUv3 and SMMUv2 AArch64 contexts",
        options: ARM64_OPTIONS,
    },
    Family {
        fam: Fam::Arm64S2,
        name: "arm64-s2",
        module: "arm_lpae",
        help: "ARM64 LPAE (VMSAv8-64) stage 2, with concatenated top tables",
        options: ARM64_OPTIONS,
    },
    Family {
        fam: Fam::Arm32S1,
        name: "arm32-s1",
        module: "arm32_lpae",
        help: "ARM32 LPAE (AArch32 long descriptors) stage 1",
        options: ARM32_OPTIONS,
    },
    Family {
        fam: Fam::Arm32S2,
        name: "arm32-s2",
        module: "arm32_lpae",
        help: "ARM32 LPAE (AArch32 long descriptors) stage 2",
        options: ARM32_OPTIONS,
    },
    Family {
        fam: Fam::Mali,
        name: "mali",
        module: "mali",
        help: "Arm Mali GPU LPAE format (panfrost)",
        options: MALI_OPTIONS,
    },
    Family {
        fam: Fam::AmdV1,
        name: "amdv1",
        module: "amdv1",
        help: "AMD IOMMU v1 host page table: up to 6 levels, dynamic top, any power-of-two page",
        options: AMDV1_OPTIONS,
    },
    Family {
        fam: Fam::X86_64,
        name: "x86-64",
        module: "x86_64",
        help: "x86-64 4- and 5-level paging (VT-d first stage, AMD v2)",
        options: X86_64_OPTIONS,
    },
    Family {
        fam: Fam::ArmV7s,
        name: "armv7s",
        module: "armv7s",
        help: "ARMv7 short descriptors: 32-bit entries, 32-bit IOVA and PA",
        options: ARMV7S_OPTIONS,
    },
    Family {
        fam: Fam::VtdSs,
        name: "vtd-ss",
        module: "vtdss",
        help: "Intel VT-d second stage: 3, 4 or 5 levels",
        options: VTDSS_OPTIONS,
    },
    Family {
        fam: Fam::Dart,
        name: "dart",
        module: "dart",
        help: "Apple DART, entry format v1 or v2, T8020 or T8110 registers",
        options: DART_OPTIONS,
    },
    Family {
        fam: Fam::Riscv,
        name: "riscv",
        module: "riscv",
        help: "RISC-V Sv39/Sv48/Sv57 (RISC-V IOMMU first stage)",
        options: RISCV_OPTIONS,
    },
];

impl Family {
    /// The name, as written in a spec (`arm64-s1`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What it is, in one line.
    pub fn help(&self) -> &'static str {
        self.help
    }

    /// The [`fmt`](crate::fmt) module its format type lives in (`arm_lpae`).
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// Its options, in canonical order.
    pub fn options(&self) -> &'static [OptionInfo] {
        self.options
    }

    /// The option called `name` (the on/off options by their plain name: `contig`, not
    /// `no-contig`).
    ///
    /// ```
    /// let dart = iopt::spec::FormatSpec::family_named("dart").unwrap();
    /// assert!(dart.option("regs").is_some());
    /// assert!(dart.option("ttbr1").is_none());
    /// ```
    pub fn option(&self, name: &str) -> Option<&'static OptionInfo> {
        self.options
            .iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    /// The family's spec with every option at its default.
    ///
    /// ```
    /// let amd = iopt::spec::FormatSpec::family_named("amdv1").unwrap();
    /// assert_eq!(amd.default_spec().to_string(), "amdv1");
    /// ```
    pub fn default_spec(&self) -> FormatSpec {
        resolve(self.fam, &Given::default())
    }

    /// Looks up an option as written: `name` or, for an on/off option, `no-name`
    /// (returned with `true` for negated).
    fn lookup(&self, key: &str) -> Option<(&'static OptionInfo, bool)> {
        if let Some(o) = self.option(key) {
            return Some((o, false));
        }
        let rest = key
            .get(..3)
            .filter(|p| p.eq_ignore_ascii_case("no-"))
            .map(|_| &key[3..])?;
        self.option(rest).filter(|o| o.is_flag()).map(|o| (o, true))
    }
}

impl Fam {
    fn family(self) -> &'static Family {
        // Every `Fam` has exactly one entry (checked by the tests); the fallback is never
        // taken.
        FAMILIES
            .iter()
            .find(|f| f.fam == self)
            .unwrap_or(&FAMILIES[0])
    }
}

// ---------------------------------------------------------------------------------------
// FormatSpec
// ---------------------------------------------------------------------------------------

/// A format and its configuration, chosen at run time: parsed from and printed as
/// `NAME[:OPTION,...]` (see the [module documentation](self)).
///
/// Each variant holds the configuration of one format module; the variants can be
/// built directly (a VMM that learns the configuration from guest registers), and
/// printed as text. ARM64 with `oas` 52 is the 52-bit format
/// [`ArmLpae52`]; the stage picks `arm64-s1` or `arm64-s2` (and `arm32-s1`/`-s2`).
///
/// ```
/// use iopt::fmt::x86_64::X86_64Config;
/// use iopt::spec::FormatSpec;
///
/// let spec: FormatSpec = "x86-64:levels=5,no-sign-extend".parse()?;
/// assert_eq!(
///     spec,
///     FormatSpec::X86_64(X86_64Config { levels: 5, sign_extend: false, ..X86_64Config::default() })
/// );
/// assert_eq!(spec.to_string(), "x86-64:levels=5,no-sign-extend");
/// assert_eq!(format!("{spec:#}"), "x86-64:levels=5,oas=52,sme-c-bit=none,no-sign-extend,no-dirty-tracking");
/// # Ok::<(), iopt::spec::SpecError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatSpec {
    /// `arm64-s1` / `arm64-s2`: [`ArmLpae`], or [`ArmLpae52`] when `oas` is 52.
    Arm64(ArmLpaeConfig),
    /// `arm32-s1` / `arm32-s2`: [`Arm32Lpae`].
    Arm32(Arm32LpaeConfig),
    /// `mali`: [`MaliLpae`].
    Mali(MaliLpaeConfig),
    /// `amdv1`: [`AmdV1`].
    AmdV1(AmdV1Config),
    /// `x86-64`: [`X86_64`].
    X86_64(X86_64Config),
    /// `armv7s`: [`ArmV7s`].
    ArmV7s(ArmV7sConfig),
    /// `vtd-ss`: [`VtdSs`].
    VtdSs(VtdSsConfig),
    /// `dart`: [`Dart`].
    Dart(DartConfig),
    /// `riscv`: [`Riscv`].
    Riscv(RiscvConfig),
}

/// The `bbml` option (a value that does not fit a `u8` stays out of range, so the
/// format's constructor names the limit).
fn bbml(g: &Given, default: u8) -> u8 {
    u8::try_from(g.num(Opt::Bbml, u32::from(default))).unwrap_or(u8::MAX)
}

/// The spec of family `fam` with the options in `g` (the rest at their defaults).
fn resolve(fam: Fam, g: &Given) -> FormatSpec {
    match fam {
        Fam::Arm64S1 | Fam::Arm64S2 => {
            let d = ArmLpaeConfig::default();
            FormatSpec::Arm64(ArmLpaeConfig {
                stage: if fam == Fam::Arm64S1 {
                    Stage::S1
                } else {
                    Stage::S2
                },
                granule: g.granule(d.granule),
                ias: g.num(Opt::Ias, d.ias),
                oas: g.num(Opt::Oas, d.oas),
                contiguous: g.flag(Opt::Contig, d.contiguous),
                coherent_walk: g.flag(Opt::CoherentWalk, d.coherent_walk),
                ttbr1: g.flag(Opt::Ttbr1, d.ttbr1),
                ns: g.flag(Opt::Ns, d.ns),
                dirty_tracking: g.flag(Opt::DirtyTracking, d.dirty_tracking),
                bbm_level: bbml(g, d.bbm_level),
            })
        }
        Fam::Arm32S1 | Fam::Arm32S2 => {
            let d = Arm32LpaeConfig::default();
            FormatSpec::Arm32(Arm32LpaeConfig {
                stage: if fam == Fam::Arm32S1 {
                    Stage::S1
                } else {
                    Stage::S2
                },
                ias: g.num(Opt::Ias, d.ias),
                oas: g.num(Opt::Oas, d.oas),
                contiguous: g.flag(Opt::Contig, d.contiguous),
                coherent_walk: g.flag(Opt::CoherentWalk, d.coherent_walk),
                ns: g.flag(Opt::Ns, d.ns),
                dirty_tracking: g.flag(Opt::DirtyTracking, d.dirty_tracking),
                bbm_level: bbml(g, d.bbm_level),
            })
        }
        Fam::Mali => {
            let d = MaliLpaeConfig::default();
            FormatSpec::Mali(MaliLpaeConfig {
                oas: g.num(Opt::Oas, d.oas),
                coherent_walk: g.flag(Opt::CoherentWalk, d.coherent_walk),
            })
        }
        Fam::AmdV1 => {
            let d = AmdV1Config::default();
            let levels = g.num(Opt::Levels, d.levels);
            let dynamic_top = g.flag(Opt::DynamicTop, d.dynamic_top);
            FormatSpec::AmdV1(AmdV1Config {
                levels,
                max_levels: g.num(
                    Opt::MaxLevels,
                    if dynamic_top { d.max_levels } else { levels },
                ),
                dynamic_top,
                oa_bits: g.num(Opt::Oas, d.oa_bits),
                force_coherence: g.flag(Opt::ForceCoherence, d.force_coherence),
                sme_c_bit: g.sme_c_bit(d.sme_c_bit),
                dirty_tracking: g.flag(Opt::DirtyTracking, d.dirty_tracking),
            })
        }
        Fam::X86_64 => {
            let d = X86_64Config::default();
            FormatSpec::X86_64(X86_64Config {
                levels: g.num(Opt::Levels, d.levels),
                oa_bits: g.num(Opt::Oas, d.oa_bits),
                sign_extend: g.flag(Opt::SignExtend, d.sign_extend),
                sme_c_bit: g.sme_c_bit(d.sme_c_bit),
                dirty_tracking: g.flag(Opt::DirtyTracking, d.dirty_tracking),
            })
        }
        Fam::ArmV7s => {
            let d = ArmV7sConfig::default();
            FormatSpec::ArmV7s(ArmV7sConfig {
                ns: g.flag(Opt::Ns, d.ns),
                oa_bits: g.num(Opt::Oas, d.oa_bits),
                coherent_walk: g.flag(Opt::CoherentWalk, d.coherent_walk),
            })
        }
        Fam::VtdSs => {
            let d = VtdSsConfig::default();
            FormatSpec::VtdSs(VtdSsConfig {
                levels: g.num(Opt::Levels, d.levels),
                oa_bits: g.num(Opt::Oas, d.oa_bits),
                large_2m: g.flag(Opt::Large2m, d.large_2m),
                large_1g: g.flag(Opt::Large1g, d.large_1g),
                force_coherence: g.flag(Opt::ForceCoherence, d.force_coherence),
                dirty_tracking: g.flag(Opt::DirtyTracking, d.dirty_tracking),
            })
        }
        Fam::Dart => {
            // The version picks the SoC the other defaults come from.
            let d = match g.get(Opt::Version) {
                Some(Val::Version(DartVersion::V2)) => DartConfig::t6000(),
                _ => DartConfig::t8103(),
            };
            FormatSpec::Dart(DartConfig {
                version: d.version,
                granule: g.granule(d.granule),
                ias: g.num(Opt::Ias, d.ias),
                oas: g.num(Opt::Oas, d.oas),
                regs: match g.get(Opt::Regs) {
                    Some(Val::Regs(r)) => r,
                    _ => d.regs,
                },
            })
        }
        Fam::Riscv => {
            let d = RiscvConfig::default();
            FormatSpec::Riscv(RiscvConfig {
                levels: g.num(Opt::Levels, d.levels),
                oa_bits: g.num(Opt::Oas, d.oa_bits),
                sign_extend: g.flag(Opt::SignExtend, d.sign_extend),
                svnapot: g.flag(Opt::Svnapot, d.svnapot),
                svpbmt: g.flag(Opt::Svpbmt, d.svpbmt),
                dirty_tracking: g.flag(Opt::DirtyTracking, d.dirty_tracking),
            })
        }
    }
}

impl FormatSpec {
    /// Every format family with its options and their one-line help.
    ///
    /// ```
    /// let names: Vec<&str> = iopt::spec::FormatSpec::families().iter().map(|f| f.name()).collect();
    /// assert!(names.contains(&"arm64-s2") && names.contains(&"riscv"));
    /// ```
    pub fn families() -> &'static [Family] {
        FAMILIES
    }

    /// The family called `name` (not case-sensitive).
    ///
    /// ```
    /// use iopt::spec::FormatSpec;
    /// let riscv = FormatSpec::family_named("riscv").unwrap();
    /// assert_eq!(riscv.module(), "riscv");
    /// assert!(riscv.option("svnapot").unwrap().is_flag());
    /// assert!(FormatSpec::family_named("sparc").is_none());
    /// ```
    pub fn family_named(name: &str) -> Option<&'static Family> {
        FAMILIES.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Parses a spec; the same as [`str::parse`].
    ///
    /// # Errors
    /// A [`SpecError`] naming the unknown format or option, the bad value and what the
    /// option takes, or the limit the configuration breaks.
    ///
    /// ```
    /// use iopt::spec::FormatSpec;
    /// let spec = FormatSpec::parse("amdv1:levels=1,dirty-tracking")?;
    /// assert_eq!(spec.name(), "amdv1");
    ///
    /// let e = FormatSpec::parse("dart:regs=t8110,ias=42").unwrap_err();
    /// assert!(e.to_string().contains("ias must be 32..=oas (oas is 36 here)"), "{e}");
    /// # Ok::<(), iopt::spec::SpecError>(())
    /// ```
    pub fn parse(text: &str) -> Result<FormatSpec, SpecError> {
        text.parse()
    }

    fn fam(&self) -> Fam {
        match self {
            FormatSpec::Arm64(c) if c.stage == Stage::S1 => Fam::Arm64S1,
            FormatSpec::Arm64(_) => Fam::Arm64S2,
            FormatSpec::Arm32(c) if c.stage == Stage::S1 => Fam::Arm32S1,
            FormatSpec::Arm32(_) => Fam::Arm32S2,
            FormatSpec::Mali(_) => Fam::Mali,
            FormatSpec::AmdV1(_) => Fam::AmdV1,
            FormatSpec::X86_64(_) => Fam::X86_64,
            FormatSpec::ArmV7s(_) => Fam::ArmV7s,
            FormatSpec::VtdSs(_) => Fam::VtdSs,
            FormatSpec::Dart(_) => Fam::Dart,
            FormatSpec::Riscv(_) => Fam::Riscv,
        }
    }

    /// The family this spec belongs to.
    pub fn family(&self) -> &'static Family {
        self.fam().family()
    }

    /// The family's name (`arm64-s2`).
    pub fn name(&self) -> &'static str {
        self.family().name
    }

    /// Every option of the family with this spec's value.
    fn given(&self) -> Given {
        use Val::{Bool, Num};
        let mut g = Given::default();
        let mut put = |opt, val| g.set(opt, val);
        match *self {
            FormatSpec::Arm64(c) => {
                put(Opt::Granule, Val::Granule(c.granule));
                put(Opt::Ias, Num(c.ias));
                put(Opt::Oas, Num(c.oas));
                put(Opt::Ttbr1, Bool(c.ttbr1));
                put(Opt::Ns, Bool(c.ns));
                put(Opt::Contig, Bool(c.contiguous));
                put(Opt::CoherentWalk, Bool(c.coherent_walk));
                put(Opt::DirtyTracking, Bool(c.dirty_tracking));
                put(Opt::Bbml, Num(u32::from(c.bbm_level)));
            }
            FormatSpec::Arm32(c) => {
                put(Opt::Ias, Num(c.ias));
                put(Opt::Oas, Num(c.oas));
                put(Opt::Ns, Bool(c.ns));
                put(Opt::Contig, Bool(c.contiguous));
                put(Opt::CoherentWalk, Bool(c.coherent_walk));
                put(Opt::DirtyTracking, Bool(c.dirty_tracking));
                put(Opt::Bbml, Num(u32::from(c.bbm_level)));
            }
            FormatSpec::Mali(c) => {
                put(Opt::Oas, Num(c.oas));
                put(Opt::CoherentWalk, Bool(c.coherent_walk));
            }
            FormatSpec::AmdV1(c) => {
                put(Opt::Levels, Num(c.levels));
                put(Opt::MaxLevels, Num(c.max_levels));
                put(Opt::Oas, Num(c.oa_bits));
                put(Opt::SmeCBit, Val::BitOrNone(c.sme_c_bit));
                put(Opt::DynamicTop, Bool(c.dynamic_top));
                put(Opt::ForceCoherence, Bool(c.force_coherence));
                put(Opt::DirtyTracking, Bool(c.dirty_tracking));
            }
            FormatSpec::X86_64(c) => {
                put(Opt::Levels, Num(c.levels));
                put(Opt::Oas, Num(c.oa_bits));
                put(Opt::SmeCBit, Val::BitOrNone(c.sme_c_bit));
                put(Opt::SignExtend, Bool(c.sign_extend));
                put(Opt::DirtyTracking, Bool(c.dirty_tracking));
            }
            FormatSpec::ArmV7s(c) => {
                put(Opt::Oas, Num(c.oa_bits));
                put(Opt::Ns, Bool(c.ns));
                put(Opt::CoherentWalk, Bool(c.coherent_walk));
            }
            FormatSpec::VtdSs(c) => {
                put(Opt::Levels, Num(c.levels));
                put(Opt::Oas, Num(c.oa_bits));
                put(Opt::Large2m, Bool(c.large_2m));
                put(Opt::Large1g, Bool(c.large_1g));
                put(Opt::ForceCoherence, Bool(c.force_coherence));
                put(Opt::DirtyTracking, Bool(c.dirty_tracking));
            }
            FormatSpec::Dart(c) => {
                put(Opt::Version, Val::Version(c.version));
                put(Opt::Granule, Val::Granule(c.granule));
                put(Opt::Ias, Num(c.ias));
                put(Opt::Oas, Num(c.oas));
                put(Opt::Regs, Val::Regs(c.regs));
            }
            FormatSpec::Riscv(c) => {
                put(Opt::Levels, Num(c.levels));
                put(Opt::Oas, Num(c.oa_bits));
                put(Opt::SignExtend, Bool(c.sign_extend));
                put(Opt::Svnapot, Bool(c.svnapot));
                put(Opt::Svpbmt, Bool(c.svpbmt));
                put(Opt::DirtyTracking, Bool(c.dirty_tracking));
            }
        }
        g
    }

    /// The options the canonical form shows: each one that, left out, would give another
    /// spec; every option if that set does not give this spec back.
    fn shown(&self, full: Given) -> Given {
        let fam = self.fam();
        let mut min = Given::default();
        for info in fam.family().options {
            let mut without = full;
            without.clear(info.opt);
            if resolve(fam, &without) != *self
                && let Some(v) = full.get(info.opt)
            {
                min.set(info.opt, v);
            }
        }
        if resolve(fam, &min) == *self {
            min
        } else {
            full
        }
    }

    /// Builds the format this spec describes, checking the configuration as its
    /// constructor does.
    ///
    /// # Errors
    /// [`SpecError::Config`] with the constructor's error, which names the limit.
    ///
    /// ```
    /// use iopt::spec::{AnyFormat, FormatSpec};
    /// let f = FormatSpec::parse("arm64-s1:granule=64k,oas=52")?.build()?;
    /// assert!(matches!(f, AnyFormat::ArmLpae52(_)));
    /// assert_eq!(f.name(), "arm64-lpae52");
    /// # Ok::<(), iopt::spec::SpecError>(())
    /// ```
    pub fn build(&self) -> Result<AnyFormat, SpecError> {
        let built = match *self {
            FormatSpec::Arm64(c) if c.oas == 52 => ArmLpae52::new(c).map(AnyFormat::ArmLpae52),
            FormatSpec::Arm64(c) => ArmLpae::new(c).map(AnyFormat::ArmLpae),
            FormatSpec::Arm32(c) => Arm32Lpae::new(c).map(AnyFormat::Arm32Lpae),
            FormatSpec::Mali(c) => MaliLpae::new(c).map(AnyFormat::MaliLpae),
            FormatSpec::AmdV1(c) => AmdV1::new(c).map(AnyFormat::AmdV1),
            FormatSpec::X86_64(c) => X86_64::new(c).map(AnyFormat::X86_64),
            FormatSpec::ArmV7s(c) => ArmV7s::new(c).map(AnyFormat::ArmV7s),
            FormatSpec::VtdSs(c) => VtdSs::new(c).map(AnyFormat::VtdSs),
            FormatSpec::Dart(c) => Dart::new(c).map(AnyFormat::Dart),
            FormatSpec::Riscv(c) => Riscv::new(c).map(AnyFormat::Riscv),
        };
        built.map_err(|error| SpecError::Config { spec: *self, error })
    }

    /// The configuration in words, e.g. `stage 1, 4K granule, ias 48, oas 48, start
    /// level 0, TTBR0, contiguous hints, coherent walk` (what `iopt info` prints).
    ///
    /// ```
    /// let spec = iopt::spec::FormatSpec::parse("riscv:levels=3,svpbmt")?;
    /// assert_eq!(spec.describe().to_string(), "Sv39, oas 56, sign-extended, Svnapot, Svpbmt");
    /// # Ok::<(), iopt::spec::SpecError>(())
    /// ```
    pub fn describe(&self) -> Description {
        Description(*self)
    }

    /// The configurations worth testing: every format, and the variants that change
    /// what the engine does (granules, stages, upper half, 52-bit output, contiguous
    /// runs off, fixed and growing tops, level counts, lower-half-only spaces, missing
    /// page sizes, Svnapot, Svpbmt, dirty tracking, DART versions, granules and
    /// register blocks, narrow output widths). Test suites iterate it, so that a new
    /// format or variant is one entry here.
    ///
    /// ```
    /// use iopt::mem::ArenaMemory;
    /// use iopt::spec::FormatSpec;
    /// use iopt::{NoFlush, PageTable};
    ///
    /// for entry in FormatSpec::catalogue() {
    ///     let format = entry.spec().build()?;
    ///     // Simulated physical memory below 4 GiB: every format's table pointers reach
    ///     // it (ARMv7s tables must be there: `table_pa_bits` is 32).
    ///     assert!(format.table_pa_bits() >= 32);
    ///     let mem = ArenaMemory::new(0x4000_0000, 8 << 20);
    ///     let levels = iopt::with_format!(format, f => PageTable::new(f, &mem, NoFlush)?.info().levels);
    ///     assert!(levels >= 1, "{}", entry.label);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn catalogue() -> &'static [CatalogueEntry] {
        CATALOGUE
    }
}

impl fmt::Display for FormatSpec {
    /// The canonical form: the family name and the options that differ from the
    /// defaults, in the family's order. `{:#}` prints every option.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = self.family();
        let full = self.given();
        let shown = if f.alternate() {
            full
        } else {
            self.shown(full)
        };
        f.write_str(family.name)?;
        let mut sep = ":";
        for info in family.options {
            let Some(val) = shown.get(info.opt) else {
                continue;
            };
            f.write_str(sep)?;
            sep = ",";
            let name = info.opt.name();
            match val {
                Val::Bool(true) => f.write_str(name)?,
                Val::Bool(false) => write!(f, "no-{name}")?,
                Val::Num(n) => write!(f, "{name}={n}")?,
                Val::Granule(g) => write!(f, "{name}={}", granule_text(g))?,
                Val::Version(DartVersion::V1) => write!(f, "{name}=1")?,
                Val::Version(DartVersion::V2) => write!(f, "{name}=2")?,
                Val::Regs(DartRegs::T8020) => write!(f, "{name}=t8020")?,
                Val::Regs(DartRegs::T8110) => write!(f, "{name}=t8110")?,
                Val::BitOrNone(None) => write!(f, "{name}=none")?,
                Val::BitOrNone(Some(b)) => write!(f, "{name}={b}")?,
            }
        }
        Ok(())
    }
}

fn granule_text(g: Granule) -> &'static str {
    match g {
        Granule::K4 => "4k",
        Granule::K16 => "16k",
        Granule::K64 => "64k",
    }
}

/// Parses the value of `info` as written (`value` is `None` for a bare name).
fn parse_value(
    family: &Family,
    info: &'static OptionInfo,
    negated: bool,
    value: Option<&str>,
) -> Result<Val, SpecError> {
    let format = family.name;
    let option = info.opt.name();
    let kind = info.opt.kind();
    let value = match (kind, value) {
        (Kind::Flag, None) => return Ok(Val::Bool(!negated)),
        (Kind::Flag, Some(v)) => {
            return Err(SpecError::FlagWithValue {
                format,
                option,
                value: Snippet::new(v),
            });
        }
        (_, None) => {
            return Err(SpecError::MissingValue {
                format,
                option,
                expected: info.values,
            });
        }
        (_, Some(v)) => v,
    };
    let is = |s: &str| value.eq_ignore_ascii_case(s);
    let parsed = match kind {
        Kind::Flag => None,
        Kind::Number => value.parse().ok().map(Val::Num),
        Kind::BitOrNone if is("none") => Some(Val::BitOrNone(None)),
        Kind::BitOrNone => value.parse().ok().map(|b| Val::BitOrNone(Some(b))),
        Kind::Granule => [Granule::K4, Granule::K16, Granule::K64]
            .into_iter()
            .find(|&g| is(granule_text(g)))
            .map(Val::Granule),
        Kind::Version if is("1") || is("v1") => Some(Val::Version(DartVersion::V1)),
        Kind::Version if is("2") || is("v2") => Some(Val::Version(DartVersion::V2)),
        Kind::Version => None,
        Kind::Regs if is("t8020") => Some(Val::Regs(DartRegs::T8020)),
        Kind::Regs if is("t8110") => Some(Val::Regs(DartRegs::T8110)),
        Kind::Regs => None,
    };
    parsed.ok_or(SpecError::BadValue {
        format,
        option,
        value: Snippet::new(value),
        expected: info.values,
    })
}

impl FromStr for FormatSpec {
    type Err = SpecError;

    /// Parses `NAME[:OPTION,...]` and checks the configuration.
    fn from_str(text: &str) -> Result<Self, SpecError> {
        let text = text.trim();
        let (name, options) = match text.split_once(':') {
            Some((name, options)) => (name.trim(), options),
            None => (text, ""),
        };
        if name.is_empty() {
            return Err(SpecError::Empty);
        }
        let family = FormatSpec::family_named(name).ok_or(SpecError::UnknownFormat {
            name: Snippet::new(name),
        })?;
        let mut given = Given::default();
        for item in options.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let (info, negated) = family.lookup(key).ok_or(SpecError::UnknownOption {
                format: family.name,
                option: Snippet::new(key),
            })?;
            let val = parse_value(family, info, negated, value)?;
            if given.get(info.opt).is_some() {
                return Err(SpecError::DuplicateOption {
                    format: family.name,
                    option: info.opt.name(),
                });
            }
            given.set(info.opt, val);
        }
        let spec = resolve(family.fam, &given);
        spec.build()?;
        Ok(spec)
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A piece of the text being parsed, kept in the error (at most 40 bytes; longer text
/// is cut at a character boundary and ends with `...`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Snippet {
    buf: [u8; Snippet::CAP],
    len: u8,
    cut: bool,
}

impl Snippet {
    const CAP: usize = 40;

    fn new(s: &str) -> Self {
        let mut len = s.len().min(Self::CAP);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut buf = [0; Self::CAP];
        buf[..len].copy_from_slice(&s.as_bytes()[..len]);
        Snippet {
            buf,
            // `len` is at most CAP (40).
            len: len as u8,
            cut: len < s.len(),
        }
    }

    /// The text kept (without the `...` of a cut one).
    pub fn as_str(&self) -> &str {
        // The bytes are a prefix of a `str` cut at a character boundary.
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.cut {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// The family names, comma-separated.
struct FamilyNames;

impl fmt::Display for FamilyNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, family) in FAMILIES.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(family.name)?;
        }
        Ok(())
    }
}

/// The options of a family, as they are written (`granule=...`, `ttbr1 / no-ttbr1`).
struct OptionNames<'a>(&'a str);

impl fmt::Display for OptionNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(family) = FormatSpec::family_named(self.0) else {
            return Ok(());
        };
        for (i, o) in family.options.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if o.is_flag() {
                write!(f, "{0} / no-{0}", o.name())?;
            } else {
                write!(f, "{}=...", o.name())?;
            }
        }
        Ok(())
    }
}

/// Why a spec could not be parsed or built. Every variant names what is wrong: the
/// format or option as written, the value, and what is accepted or the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The text is empty or has no format name.
    #[error(
        "empty format spec: expected NAME[:OPTION,...], NAME one of {}",
        FamilyNames
    )]
    Empty,
    /// No family has this name.
    #[error("unknown format `{name}`: the formats are {}", FamilyNames)]
    UnknownFormat {
        /// The name as written.
        name: Snippet,
    },
    /// The family has no option of this name.
    #[error("{format} has no option `{option}`; its options are {}", OptionNames(.format))]
    UnknownOption {
        /// The family.
        format: &'static str,
        /// The option as written.
        option: Snippet,
    },
    /// The option is given more than once (`contig` and `no-contig` count as one).
    #[error("{format}: option `{option}` is given more than once")]
    DuplicateOption {
        /// The family.
        format: &'static str,
        /// The option.
        option: &'static str,
    },
    /// A value option without `=value`.
    #[error(
        "{format}: option `{option}` needs a value: write {option}=VALUE, VALUE being {expected}"
    )]
    MissingValue {
        /// The family.
        format: &'static str,
        /// The option.
        option: &'static str,
        /// What it accepts.
        expected: &'static str,
    },
    /// An on/off option written with a value.
    #[error(
        "{format}: `{option}={value}`: {option} is an on/off option, written `{option}` or `no-{option}`"
    )]
    FlagWithValue {
        /// The family.
        format: &'static str,
        /// The option.
        option: &'static str,
        /// The value as written.
        value: Snippet,
    },
    /// A value the option cannot take.
    #[error("{format}: `{option}={value}`: {option} must be {expected}")]
    BadValue {
        /// The family.
        format: &'static str,
        /// The option.
        option: &'static str,
        /// The value as written.
        value: Snippet,
        /// What it accepts.
        expected: &'static str,
    },
    /// The format's constructor refused the configuration; its error names the limit.
    #[error("{spec}: {error} (the whole configuration: {spec:#})")]
    Config {
        /// The spec refused.
        spec: FormatSpec,
        /// The constructor's error.
        error: Error,
    },
}

// ---------------------------------------------------------------------------------------
// AnyFormat and the one dispatch
// ---------------------------------------------------------------------------------------

/// A built format of any type: one variant per format type.
///
/// Run generic code on it with [`AnyFormat::visit`] or [`with_format!`](crate::with_format):
/// one `match` per table, and the code inside is monomorphised for the format type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyFormat {
    /// [`ArmLpae`] (`arm64-s1`, `arm64-s2`).
    ArmLpae(ArmLpae),
    /// [`ArmLpae52`] (`arm64-s1`, `arm64-s2` with `oas=52`).
    ArmLpae52(ArmLpae52),
    /// [`Arm32Lpae`] (`arm32-s1`, `arm32-s2`).
    Arm32Lpae(Arm32Lpae),
    /// [`MaliLpae`] (`mali`).
    MaliLpae(MaliLpae),
    /// [`AmdV1`] (`amdv1`).
    AmdV1(AmdV1),
    /// [`X86_64`] (`x86-64`).
    X86_64(X86_64),
    /// [`ArmV7s`] (`armv7s`).
    ArmV7s(ArmV7s),
    /// [`VtdSs`] (`vtd-ss`).
    VtdSs(VtdSs),
    /// [`Dart`] (`dart`).
    Dart(Dart),
    /// [`Riscv`] (`riscv`).
    Riscv(Riscv),
}

/// Generic code run on a format chosen at run time: [`AnyFormat::visit`] calls
/// [`FormatVisitor::visit`] with the concrete format.
///
/// ```
/// use iopt::spec::{FormatSpec, FormatVisitor};
/// use iopt::Format;
///
/// struct EntryBytes;
/// impl FormatVisitor for EntryBytes {
///     type Output = u32;
///     fn visit<F: Format>(self, _fmt: F) -> u32 {
///         1 << F::ENTRY_LG2
///     }
/// }
/// assert_eq!(FormatSpec::parse("armv7s")?.build()?.visit(EntryBytes), 4);
/// # Ok::<(), iopt::spec::SpecError>(())
/// ```
pub trait FormatVisitor {
    /// What the visit returns.
    type Output;
    /// Runs on the concrete format.
    fn visit<F: Format>(self, fmt: F) -> Self::Output;
}

/// Runs an expression on the concrete format inside an [`AnyFormat`]: expands to the one
/// `match` over its variants, binding the format to the given name in each arm.
///
/// ```
/// use iopt::mem::HeapMemory;
/// use iopt::spec::FormatSpec;
/// use iopt::{NoFlush, PageTable};
///
/// let any = FormatSpec::parse("vtd-ss:levels=5")?.build()?;
/// let pt_info = iopt::with_format!(any, f => PageTable::new(f, HeapMemory::new(), NoFlush)?.info());
/// assert_eq!(pt_info.levels, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! with_format {
    ($any:expr, $f:ident => $body:expr) => {
        match $any {
            $crate::spec::AnyFormat::ArmLpae($f) => $body,
            $crate::spec::AnyFormat::ArmLpae52($f) => $body,
            $crate::spec::AnyFormat::Arm32Lpae($f) => $body,
            $crate::spec::AnyFormat::MaliLpae($f) => $body,
            $crate::spec::AnyFormat::AmdV1($f) => $body,
            $crate::spec::AnyFormat::X86_64($f) => $body,
            $crate::spec::AnyFormat::ArmV7s($f) => $body,
            $crate::spec::AnyFormat::VtdSs($f) => $body,
            $crate::spec::AnyFormat::Dart($f) => $body,
            $crate::spec::AnyFormat::Riscv($f) => $body,
        }
    };
}

impl AnyFormat {
    /// Runs `visitor` on the concrete format (see [`FormatVisitor`]).
    pub fn visit<V: FormatVisitor>(self, visitor: V) -> V::Output {
        crate::with_format!(self, f => visitor.visit(f))
    }

    /// The format type's name ([`Format::NAME`]: `arm64-lpae`, `arm64-lpae52`, ...).
    pub fn name(&self) -> &'static str {
        const fn name_of<F: Format>(_: &F) -> &'static str {
            F::NAME
        }
        crate::with_format!(*self, f => name_of(&f))
    }

    /// Physical address bits a table may live in ([`Format::table_pa_bits`]): table
    /// memory must hand out pages below `2^table_pa_bits` (32 for ARMv7s, whose
    /// descriptors and TTBR hold 32-bit table addresses).
    ///
    /// ```
    /// use iopt::spec::FormatSpec;
    /// assert_eq!(FormatSpec::parse("armv7s")?.build()?.table_pa_bits(), 32);
    /// assert_eq!(FormatSpec::parse("x86-64")?.build()?.table_pa_bits(), 52);
    /// # Ok::<(), iopt::spec::SpecError>(())
    /// ```
    pub fn table_pa_bits(&self) -> u32 {
        crate::with_format!(*self, f => f.table_pa_bits())
    }

    /// Output address width ([`Format::oa_bits`]).
    pub fn oa_bits(&self) -> u32 {
        crate::with_format!(*self, f => f.oa_bits())
    }

    /// Levels at creation ([`Format::levels`]).
    pub fn levels(&self) -> u32 {
        crate::with_format!(*self, f => f.levels())
    }

    /// Most levels the table may grow to ([`Format::max_levels`]).
    pub fn max_levels(&self) -> u32 {
        crate::with_format!(*self, f => f.max_levels())
    }

    /// Which part of the IOVA space is translated ([`Format::va_mode`]).
    pub fn va_mode(&self) -> VaMode {
        crate::with_format!(*self, f => f.va_mode())
    }

    /// Whether this configuration has hardware dirty tracking ([`Format::tracks_dirty`]).
    pub fn tracks_dirty(&self) -> bool {
        crate::with_format!(*self, f => f.tracks_dirty())
    }
}

// ---------------------------------------------------------------------------------------
// Description
// ---------------------------------------------------------------------------------------

/// A spec's configuration in words; see [`FormatSpec::describe`].
#[derive(Debug, Clone, Copy)]
pub struct Description(FormatSpec);

fn size_text(g: Granule) -> &'static str {
    match g {
        Granule::K4 => "4K",
        Granule::K16 => "16K",
        Granule::K64 => "64K",
    }
}

fn on_off<'a>(on: bool, yes: &'a str, no: &'a str) -> &'a str {
    if on { yes } else { no }
}

/// An ARM LPAE configuration in words; `levels` is the built format's level count.
fn arm_words(
    f: &mut fmt::Formatter<'_>,
    cfg: &ArmLpaeConfig,
    levels: u32,
    aarch32: bool,
) -> fmt::Result {
    let stage = match cfg.stage {
        Stage::S1 => "stage 1",
        Stage::S2 => "stage 2",
    };
    write!(
        f,
        "{}{stage}, {} granule, ias {}, oas {}, start level {}",
        on_off(aarch32, "AArch32 ", ""),
        size_text(cfg.granule),
        cfg.ias,
        cfg.oas,
        4 - levels.min(4)
    )?;
    if cfg.stage == Stage::S1 && !aarch32 {
        f.write_str(on_off(cfg.ttbr1, ", TTBR1", ", TTBR0"))?;
    }
    f.write_str(on_off(
        cfg.contiguous,
        ", contiguous hints",
        ", no contiguous hints",
    ))?;
    f.write_str(on_off(
        cfg.coherent_walk,
        ", coherent walk",
        ", non-coherent walk",
    ))?;
    if cfg.ns {
        f.write_str(", non-secure")?;
    }
    if cfg.dirty_tracking {
        f.write_str(", dirty tracking")?;
    }
    Ok(())
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let built = match self.0.build() {
            Ok(b) => b,
            Err(SpecError::Config { error, .. }) => return write!(f, "refused: {error}"),
            Err(e) => return write!(f, "refused: {e}"),
        };
        let walk = |coherent| on_off(coherent, "coherent", "non-coherent");
        match self.0 {
            FormatSpec::Arm64(c) => arm_words(f, &c, built.levels(), false),
            FormatSpec::Arm32(c) => {
                let arm = ArmLpaeConfig {
                    stage: c.stage,
                    granule: Granule::K4,
                    ias: c.ias,
                    oas: c.oas,
                    contiguous: c.contiguous,
                    coherent_walk: c.coherent_walk,
                    ttbr1: false,
                    ns: c.ns,
                    dirty_tracking: c.dirty_tracking,
                    bbm_level: c.bbm_level,
                };
                arm_words(f, &arm, built.levels(), true)
            }
            FormatSpec::Mali(c) => write!(
                f,
                "4K granule, ias 48, oas {}, 4 levels, {} walk",
                c.oas,
                walk(c.coherent_walk)
            ),
            FormatSpec::AmdV1(c) => {
                write!(f, "{} levels, ", c.levels)?;
                if c.dynamic_top {
                    write!(f, "dynamic top up to {} levels", c.max_levels)?;
                } else {
                    f.write_str("fixed top")?;
                }
                write!(f, ", oas {}", c.oa_bits)?;
                if let Some(bit) = c.sme_c_bit {
                    write!(f, ", SME C-bit {bit}")?;
                }
                if c.force_coherence {
                    f.write_str(", force coherent")?;
                }
                if c.dirty_tracking {
                    f.write_str(", dirty tracking")?;
                }
                Ok(())
            }
            FormatSpec::X86_64(c) => {
                write!(
                    f,
                    "{} levels, oas {}, {}",
                    c.levels,
                    c.oa_bits,
                    on_off(c.sign_extend, "sign-extended", "lower half only")
                )?;
                if let Some(bit) = c.sme_c_bit {
                    write!(f, ", SME C-bit {bit}")?;
                }
                if c.dirty_tracking {
                    f.write_str(", dirty tracking")?;
                }
                Ok(())
            }
            FormatSpec::ArmV7s(c) => write!(
                f,
                "oas {}, {}, {} walk",
                c.oa_bits,
                on_off(c.ns, "non-secure", "secure"),
                walk(c.coherent_walk)
            ),
            FormatSpec::VtdSs(c) => {
                write!(f, "{} levels, oas {}, large pages: ", c.levels, c.oa_bits)?;
                match (c.large_2m, c.large_1g) {
                    (true, true) => f.write_str("2M 1G")?,
                    (true, false) => f.write_str("2M")?,
                    (false, true) => f.write_str("1G")?,
                    (false, false) => f.write_str("none")?,
                }
                if c.force_coherence {
                    f.write_str(", snoop")?;
                }
                if c.dirty_tracking {
                    f.write_str(", dirty tracking")?;
                }
                Ok(())
            }
            FormatSpec::Dart(c) => {
                let ttbrs = match built {
                    AnyFormat::Dart(d) => d.ttbrs(),
                    _ => 1,
                };
                write!(
                    f,
                    "{}, {} granule, ias {}, oas {}, {} registers, {ttbrs} TTBR{}",
                    match c.version {
                        DartVersion::V1 => "v1",
                        DartVersion::V2 => "v2",
                    },
                    size_text(c.granule),
                    c.ias,
                    c.oas,
                    match c.regs {
                        DartRegs::T8020 => "T8020",
                        DartRegs::T8110 => "T8110",
                    },
                    on_off(ttbrs == 1, "", "s")
                )
            }
            FormatSpec::Riscv(c) => {
                // Sv39, Sv48, Sv57: the IOVA width of 3, 4 or 5 levels.
                write!(
                    f,
                    "Sv{}, oas {}, {}",
                    12 + 9 * c.levels,
                    c.oa_bits,
                    on_off(c.sign_extend, "sign-extended", "lower half only")
                )?;
                if c.svnapot {
                    f.write_str(", Svnapot")?;
                }
                if c.svpbmt {
                    f.write_str(", Svpbmt")?;
                }
                if c.dirty_tracking {
                    f.write_str(", dirty tracking")?;
                }
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The catalogue
// ---------------------------------------------------------------------------------------

/// One configuration of [`FormatSpec::catalogue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// A short unique label (`arm64-s2/4K/ias40`), for test names and reports.
    pub label: &'static str,
    /// The spec in canonical text form.
    pub text: &'static str,
    /// Part of the short tour `iopt demo` takes: one table per format type, the
    /// variants with a visibly different geometry, and one dirty-tracking table per
    /// family that has dirty tracking (the demo's dirty steps run on those).
    pub demo: bool,
}

impl CatalogueEntry {
    const fn new(label: &'static str, text: &'static str) -> Self {
        CatalogueEntry {
            label,
            text,
            demo: false,
        }
    }

    const fn demo(label: &'static str, text: &'static str) -> Self {
        CatalogueEntry {
            label,
            text,
            demo: true,
        }
    }

    /// The entry's spec.
    ///
    /// # Panics
    /// Never for the entries of [`FormatSpec::catalogue`]: each one parses and builds
    /// (the library's tests check every entry).
    ///
    /// ```
    /// let first = &iopt::spec::FormatSpec::catalogue()[0];
    /// assert_eq!(first.spec().to_string(), first.text);
    /// ```
    pub fn spec(&self) -> FormatSpec {
        match self.text.parse() {
            Ok(spec) => spec,
            Err(e) => panic!("catalogue entry {}: {e}", self.label),
        }
    }
}

use CatalogueEntry as E;

/// The catalogue. Labels follow `family/variant`; the texts are canonical.
static CATALOGUE: &[CatalogueEntry] = &[
    // ARM64 stage 1: every granule, narrow and odd input sizes, the upper half (TTBR1),
    // contiguous hints off, NS, non-coherent walks.
    E::demo("arm64-s1/4K", "arm64-s1"),
    E::new("arm64-s1/4K/ias32", "arm64-s1:ias=32,oas=32"),
    E::new("arm64-s1/4K/ias39", "arm64-s1:ias=39,oas=40"),
    E::new("arm64-s1/4K/no-contig", "arm64-s1:no-contig"),
    E::new("arm64-s1/4K/ns/no-contig", "arm64-s1:ns,no-contig"),
    E::new("arm64-s1/4K/incoherent", "arm64-s1:no-coherent-walk"),
    E::demo("arm64-s1/16K", "arm64-s1:granule=16k"),
    E::new("arm64-s1/16K/ias36", "arm64-s1:granule=16k,ias=36,oas=40"),
    E::new("arm64-s1/16K/ias47", "arm64-s1:granule=16k,ias=47"),
    E::demo("arm64-s1/64K", "arm64-s1:granule=64k"),
    E::new("arm64-s1/64K/ias42", "arm64-s1:granule=64k,ias=42,oas=44"),
    E::new("arm64-s1/4K/ttbr1", "arm64-s1:ttbr1"),
    E::new("arm64-s1/4K/ias39/ttbr1", "arm64-s1:ias=39,ttbr1"),
    E::demo("arm64-s1/4K/dirty", "arm64-s1:dirty-tracking"),
    E::new(
        "arm64-s1/16K/ttbr1/dirty",
        "arm64-s1:granule=16k,ttbr1,dirty-tracking",
    ),
    E::new(
        "arm64-s1/64K/oas52/dirty",
        "arm64-s1:granule=64k,oas=52,dirty-tracking",
    ),
    E::new("arm64-s1/4K/bbml2", "arm64-s1:bbml=2"),
    E::new("arm64-s1/16K/bbml2", "arm64-s1:granule=16k,bbml=2"),
    E::new(
        "arm64-s1/64K/ias42/ttbr1",
        "arm64-s1:granule=64k,ias=42,ttbr1",
    ),
    // ARM64 stage 2: concatenated top tables (2, 8 and 16), start levels, ias above oas.
    E::demo("arm64-s2/4K/ias40", "arm64-s2:ias=40"),
    E::new("arm64-s2/4K", "arm64-s2"),
    E::demo("arm64-s2/4K/dirty", "arm64-s2:dirty-tracking"),
    E::new("arm64-s2/4K/bbml2", "arm64-s2:bbml=2"),
    E::new("arm64-s2/4K/ias32", "arm64-s2:ias=32,oas=40"),
    E::new("arm64-s2/4K/ias40/no-contig", "arm64-s2:ias=40,no-contig"),
    E::new("arm64-s2/4K/ias42/oas42", "arm64-s2:ias=42,oas=42"),
    E::new(
        "arm64-s2/16K/ias40/oas40",
        "arm64-s2:granule=16k,ias=40,oas=40",
    ),
    E::new("arm64-s2/16K/ias42", "arm64-s2:granule=16k,ias=42,oas=44"),
    E::new("arm64-s2/64K/ias44", "arm64-s2:granule=64k,ias=44"),
    E::new(
        "arm64-s2/64K/ias46/oas42",
        "arm64-s2:granule=64k,ias=46,oas=42",
    ),
    // ARM64 with 52-bit output addresses (ArmLpae52).
    E::demo("arm64-s1/64K/oas52", "arm64-s1:granule=64k,oas=52"),
    E::new(
        "arm64-s1/64K/ias52/oas52",
        "arm64-s1:granule=64k,ias=52,oas=52",
    ),
    E::new(
        "arm64-s1/64K/ias42/oas52/ttbr1",
        "arm64-s1:granule=64k,ias=42,oas=52,ttbr1",
    ),
    E::new(
        "arm64-s2/64K/ias44/oas52",
        "arm64-s2:granule=64k,ias=44,oas=52",
    ),
    // ARM32 LPAE stage 1 and 2.
    E::demo("arm32-s1", "arm32-s1"),
    E::new("arm32-s1/ias30/oas32", "arm32-s1:ias=30,oas=32"),
    E::new("arm32-s1/ias30/oas36", "arm32-s1:ias=30,oas=36"),
    E::new("arm32-s1/ns/incoherent", "arm32-s1:ns,no-coherent-walk"),
    E::demo("arm32-s1/dirty", "arm32-s1:dirty-tracking"),
    E::demo("arm32-s2/ias40/dirty", "arm32-s2:ias=40,dirty-tracking"),
    E::new("arm32-s1/bbml2", "arm32-s1:bbml=2"),
    E::demo("arm32-s2/ias40", "arm32-s2:ias=40"),
    E::new(
        "arm32-s2/ias39/no-contig",
        "arm32-s2:ias=39,oas=36,no-contig",
    ),
    E::new("arm32-s2/ias25", "arm32-s2:ias=25,oas=32"),
    // Mali.
    E::demo("mali", "mali"),
    E::new("mali/oas32/coherent", "mali:oas=32,coherent-walk"),
    // AMD v1: growing tops from 1 and 3 levels (to 4 or 6), fixed tops, dirty tracking.
    E::demo("amdv1/dynamic-top", "amdv1:levels=1"),
    E::new("amdv1/3-level", "amdv1"),
    E::new("amdv1/3-to-4", "amdv1:max-levels=4"),
    E::new("amdv1/1-to-4", "amdv1:levels=1,max-levels=4"),
    E::new("amdv1/fixed-3", "amdv1:no-dynamic-top"),
    E::new("amdv1/fixed-4", "amdv1:levels=4,no-dynamic-top"),
    E::new("amdv1/fixed-6", "amdv1:levels=6,no-dynamic-top"),
    E::new("amdv1/fixed-3/oas40", "amdv1:oas=40,no-dynamic-top"),
    E::new(
        "amdv1/fixed-4/oas40",
        "amdv1:levels=4,oas=40,no-dynamic-top",
    ),
    E::new("amdv1/3-level/dirty", "amdv1:dirty-tracking"),
    E::demo("amdv1/dynamic-top/dirty", "amdv1:levels=1,dirty-tracking"),
    // x86-64: 4 and 5 levels, sign-extended or lower half only.
    E::demo("x86-64/4-level", "x86-64"),
    E::demo("x86-64/5-level", "x86-64:levels=5"),
    E::new("x86-64/4-level/lower-half", "x86-64:no-sign-extend"),
    E::new(
        "x86-64/5-level/lower-half",
        "x86-64:levels=5,no-sign-extend",
    ),
    E::new("x86-64/4-level/oas40", "x86-64:oas=40"),
    E::demo("x86-64/4-level/dirty", "x86-64:dirty-tracking"),
    E::new(
        "x86-64/5-level/lower-half/dirty",
        "x86-64:levels=5,no-sign-extend,dirty-tracking",
    ),
    // ARMv7 short descriptors.
    E::demo("armv7s", "armv7s"),
    E::new("armv7s/ns", "armv7s:ns"),
    // VT-d second stage: 3, 4 and 5 levels, missing large pages, snoop, dirty tracking.
    E::demo("vtd-ss/3-level", "vtd-ss:levels=3"),
    E::new("vtd-ss/4-level", "vtd-ss"),
    E::demo("vtd-ss/5-level", "vtd-ss:levels=5"),
    E::new("vtd-ss/4-level/4K-only", "vtd-ss:no-2m,no-1g"),
    E::new("vtd-ss/4-level/no-2M/oas40", "vtd-ss:oas=40,no-2m"),
    E::new(
        "vtd-ss/4-level/no-2M/oas40/snoop/dirty",
        "vtd-ss:oas=40,no-2m,force-coherence,dirty-tracking",
    ),
    E::demo("vtd-ss/3-level/dirty", "vtd-ss:levels=3,dirty-tracking"),
    E::new("vtd-ss/4-level/dirty", "vtd-ss:dirty-tracking"),
    E::new("vtd-ss/5-level/dirty", "vtd-ss:levels=5,dirty-tracking"),
    // Apple DART: v1 16K and 4K (four TTBRs), v2 on T8020 and T8110 registers, two and
    // three table levels.
    E::demo("dart/v1/16K", "dart"),
    E::demo("dart/v1/4K/4-ttbr", "dart:granule=4k"),
    E::demo("dart/v2/t6000", "dart:version=2"),
    E::new("dart/v2/t8110", "dart:version=2,regs=t8110"),
    E::new(
        "dart/v2/t8110/ias36",
        "dart:version=2,ias=36,oas=36,regs=t8110",
    ),
    E::demo("dart/v2/t8110/ias42", "dart:version=2,ias=42,regs=t8110"),
    // RISC-V: Sv39/48/57, with and without Svnapot, lower half, Svpbmt, dirty tracking,
    // narrow output.
    E::demo("riscv/sv39", "riscv:levels=3"),
    E::new("riscv/sv48", "riscv"),
    E::demo("riscv/sv57", "riscv:levels=5"),
    E::new("riscv/sv39/no-svnapot", "riscv:levels=3,no-svnapot"),
    E::new("riscv/sv57/no-svnapot", "riscv:levels=5,no-svnapot"),
    E::new(
        "riscv/sv48/lower-half/no-svnapot",
        "riscv:no-sign-extend,no-svnapot",
    ),
    E::new("riscv/sv57/lower-half", "riscv:levels=5,no-sign-extend"),
    E::demo(
        "riscv/sv39/oas40/svpbmt/dirty",
        "riscv:levels=3,oas=40,svpbmt,dirty-tracking",
    ),
    E::new("riscv/sv39/oas32", "riscv:levels=3,oas=32"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Each family's `Fam` finds that family (no two share one, none is missing).
    #[test]
    fn every_family_is_found_by_its_kind() {
        for family in FAMILIES {
            assert!(
                core::ptr::eq(family.fam.family(), family),
                "{}",
                family.name
            );
            assert_eq!(family.default_spec().fam(), family.fam, "{}", family.name);
        }
        assert_eq!(Opt::Bbml as usize + 1, OPT_COUNT);
    }
}
