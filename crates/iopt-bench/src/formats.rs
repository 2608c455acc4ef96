//! The iopt formats the benchmarks measure, and everything the benchmarks know about
//! them: the name, the configuration a driver would use, the page size of a one-call
//! map, how much fits, the peer that builds the same tables, and the constructor
//! (`with_format!`).
//!
//! This file is the one place to change when a format is added. (Once the library's
//! format catalogue, `FormatSpec`, is in, [`IoptFormat`] becomes a list of catalogue
//! entries and `with_format!` its dispatch.)

// Used by `with_format!` (through `use $crate::formats::*`).
pub(crate) use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
pub(crate) use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
pub(crate) use iopt::fmt::armv7s::{ArmV7s, ArmV7sConfig};
pub(crate) use iopt::fmt::x86_64::{X86_64, X86_64Config};
pub(crate) use iopt::mem::{ArenaMemory, HeapMemory};

use crate::{IOVA_BASE, KIB, PA_BASE, PAGE, Subject};

/// Largest size armv7s takes: its IOVAs and physical addresses are 32-bit, and the
/// benchmarks map IOVA `i` to `PA_BASE + i`.
pub const ARMV7S_MAX_SIZE: u64 = (1 << 32) - PA_BASE;

/// The iopt formats benchmarked, each in the configuration a driver would use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoptFormat {
    /// x86-64 4-level paging (VT-d first stage), sign-extended.
    X86_64,
    /// ARM64 LPAE stage 1, 4K granule, ias 48, contiguous hints off (as aarch64-paging).
    Arm64S1,
    /// The same with contiguous hints on (16-entry runs for 64 KiB pages).
    Arm64S1Contig,
    /// AMD IOMMU v1, 3 levels at creation, dynamic top.
    AmdV1,
    /// ARMv7 short descriptors (32-bit IOVA and PA).
    ArmV7s,
}

impl IoptFormat {
    /// Every format, in report order.
    pub const ALL: [IoptFormat; 5] = [
        IoptFormat::X86_64,
        IoptFormat::Arm64S1,
        IoptFormat::Arm64S1Contig,
        IoptFormat::AmdV1,
        IoptFormat::ArmV7s,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            IoptFormat::X86_64 => "x86-64",
            IoptFormat::Arm64S1 => "arm64-s1",
            IoptFormat::Arm64S1Contig => "arm64-s1-contig",
            IoptFormat::AmdV1 => "amdv1",
            IoptFormat::ArmV7s => "armv7s",
        }
    }

    /// The page size of a "4K pages in one call" map: 4 KiB, except 64 KiB (a
    /// contiguous run of 16 4K entries, the same leaf tables) when contiguous hints are on.
    pub fn bulk_pgsize(self) -> u64 {
        match self {
            IoptFormat::Arm64S1Contig => 64 * KIB,
            _ => PAGE,
        }
    }

    /// The format with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<IoptFormat> {
        IoptFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    /// One line on the configuration measured.
    pub fn describe(self) -> &'static str {
        match self {
            IoptFormat::X86_64 => "x86-64 4-level",
            IoptFormat::Arm64S1 => "ARM64 stage 1, 4K granule, ias 48, no contiguous hints",
            IoptFormat::Arm64S1Contig => "ARM64 stage 1, 4K granule, ias 48, contiguous hints",
            IoptFormat::AmdV1 => "AMD IOMMU v1, 3 levels, dynamic top",
            IoptFormat::ArmV7s => "ARMv7 short descriptors",
        }
    }

    /// The largest `--size` the format takes, and why, if it has a limit below the
    /// benchmarks' own.
    pub fn max_size(self) -> Option<(u64, &'static str)> {
        match self {
            IoptFormat::ArmV7s => Some((
                ARMV7S_MAX_SIZE,
                "its IOVAs and physical addresses are 32-bit (a 4G aperture), and the \
                 benchmarks map IOVA i to physical address 1G + i",
            )),
            _ => None,
        }
    }

    /// The span of a leaf table: the IOVA range one table of 4K entries covers (2 MiB;
    /// armv7s: 1 MiB, 256 entries).
    pub fn leaf_table_span(self) -> u64 {
        match self {
            IoptFormat::ArmV7s => 256 * PAGE,
            _ => 512 * PAGE,
        }
    }

    /// Whether `size` bytes at [`IOVA_BASE`] (and the workloads scaled from it) fit.
    pub fn fits(self, size: u64) -> bool {
        self.max_size()
            .is_none_or(|(max, _)| IOVA_BASE + size <= max)
    }

    /// The peer that does the same work with the same table layout, if any.
    pub fn peer(self) -> Option<Subject> {
        match self {
            IoptFormat::Arm64S1 | IoptFormat::Arm64S1Contig => Some(Subject::Aarch64Paging),
            #[cfg(target_pointer_width = "64")]
            IoptFormat::X86_64 => Some(Subject::X86_64Crate),
            _ => None,
        }
    }
}

/// Runs `$body` with `$f` bound to the configured iopt format `$kind` and `$m` to the
/// table memory type it uses (each arm is monomorphised: no dynamic dispatch on the
/// measured paths).
macro_rules! with_format {
    ($kind:expr, |$f:ident, $m:ident| $body:expr) => {{
        use $crate::formats::*;
        match $kind {
            IoptFormat::X86_64 => {
                type $m = HeapMemory;
                let $f = X86_64::new(X86_64Config::default()).expect("x86-64 default config");
                $body
            }
            IoptFormat::Arm64S1 | IoptFormat::Arm64S1Contig => {
                type $m = HeapMemory;
                let $f = ArmLpae::new(ArmLpaeConfig {
                    contiguous: $kind == IoptFormat::Arm64S1Contig,
                    ..ArmLpaeConfig::default()
                })
                .expect("arm64 stage 1 4K ias 48 config");
                $body
            }
            IoptFormat::AmdV1 => {
                type $m = HeapMemory;
                let $f = AmdV1::new(AmdV1Config::default()).expect("amdv1 default config");
                $body
            }
            IoptFormat::ArmV7s => {
                // Its table entries hold 32-bit addresses: tables from simulated physical
                // memory below 4 GiB.
                type $m = ArenaMemory;
                let $f = ArmV7s::new(ArmV7sConfig::default()).expect("armv7s default config");
                $body
            }
        }
    }};
}

pub(crate) use with_format;
