//! ARM32 LPAE: the AArch32 (ARMv7-A LPAE / ARMv8 AArch32) long-descriptor translation
//! tables, stage 1 and stage 2.
//!
//! This is Linux's `io-pgtable-arm.c` `ARM_32_LPAE_S1` / `ARM_32_LPAE_S2`
//! (`arm_32_lpae_alloc_pgtable_s1/_s2`), used by Arm SMMU context banks in the AArch32
//! long-descriptor format (`ARM_SMMU_CTX_FMT_AARCH32_L`) and by 32-bit IOMMUs that
//! follow the CPU's LPAE format. References: Arm ARM (ARMv7-A "Long-descriptor
//! translation table format"; ARMv8 AArch32 "VMSAv8-32 Long-descriptor translation
//! table format", registers TTBCR, TTBR0, MAIR0/MAIR1, VTCR, VTTBR).
//!
//! # Geometry and descriptors
//! The descriptors are exactly those of the ARM64 format with the 4K granule (Linux
//! shares the code): [`Arm32Lpae`] is [`Lpae`] with the [`Arm32`] flavour, and every
//! entry bit, the contiguous hint (16 entries at every leaf level), the stage-2
//! concatenation rule and the [`Prot`](crate::Prot) mapping are described in
//! [`arm_lpae`](crate::fmt::arm_lpae). What differs are the limits:
//! - 4K granule only; pages of 4 KiB and blocks of 2 MiB and 1 GiB (Linux restricts
//!   `pgsize_bitmap` to 4K | 2M | 1G);
//! - stage 1: input 25..=32 bits (Linux: ias <= 32; TTBCR.T0SZ is 3 bits, 0..=7, so a
//!   TTBR0 region is 2^25..=2^32 bytes): 3 levels (start at ARM level 1) for 31 and 32
//!   bits, 2 levels (start at level 2) below;
//! - stage 2: input 25..=40 bits (Linux: ias <= 40; VTCR.T0SZ is a signed 4-bit field,
//!   -8..=7): 3 levels for 31..=40 bits (a 40-bit IPA uses two concatenated level-1
//!   tables, as io-pgtable-arm builds it), 2 levels below;
//! - output: 32, 36 or 40 bits (Linux: oas <= 40 with a TCR.IPS size; LPAE descriptors
//!   hold at most 40 address bits).
//!
//! # Hardware words
//! Linux computes the ARM64 TCR/VTCR fields and the arm-smmu driver writes them to an
//! AArch32 context bank (with TTBCR.EAE for stage 1); the words here are the
//! architectural AArch32 register values:
//! - stage 1: `TTBR0` (the root; ASID 0), `TTBCR` = T0SZ\[2:0\] (32 - ias) | IRGN0
//!   \[9:8\] | ORGN0 \[11:10\] | SH0 \[13:12\] | EPD1 (bit 23: no TTBR1 walks) | EAE
//!   (bit 31: long descriptors), `MAIR0` / `MAIR1` = the low and high halves of
//!   [`ArmLpae::MAIR`](crate::fmt::arm_lpae::ArmLpae::MAIR) (`0xf404ff44`, 0);
//! - stage 2: `VTTBR` (the root; VMID 0), `VTCR` = T0SZ\[3:0\] and its sign S (bit 4)
//!   (32 - ias as a signed 5-bit value) | SL0 \[7:6\] (0b00 start at level 2, 0b01 at
//!   level 1) | IRGN0 | ORGN0 | SH0 | bit 31 (RES1).
//!
//! Walk attributes: inner-shareable write-back write-allocate with
//! [`Arm32LpaeConfig::coherent_walk`], else outer-shareable non-cacheable.
//!
//! Linux's arm-smmu writes T0SZ as `64 - ias` into a 6-bit field: the low bits are the
//! AArch32 T0SZ (and S), but for every input of 32 bits or less bit 5 is set as well
//! (`64 - ias` is 32..=39), and its stage-2 VTCR also carries the AArch64 PS field (0b010
//! at bits 18:16). Those bits are RES0 in the AArch32 layouts; the words here leave them
//! clear. The SMMUv2-only TCR2 (PASize, SEP) is not reported.
//!
//! Not implemented: TTBR1 (split address spaces; the AArch32 TTBR1 region is not
//! the top of a 64-bit space), and the AArch32 short-descriptor format (that is
//! [`ArmV7s`](crate::fmt::armv7s::ArmV7s)).

use crate::Error;
use crate::fmt::arm_lpae::{
    ArmLpaeConfig, Flavour, Granule, LINUX_MAIR, Lpae, Stage, TCR_EPD1, TCR_IRGN_SHIFT,
    TCR_ORGN_SHIFT, TCR_SH_SHIFT, VTCR_RES1, VTCR_SL0_SHIFT, sealed,
};
use crate::format::{Format, HwWords};

/// The AArch32 long-descriptor flavour of [`Lpae`]: see [`Arm32Lpae`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arm32;

impl sealed::Sealed for Arm32 {}

impl Flavour for Arm32 {
    const NAME: &'static str = "arm32-lpae";

    fn hw_words(f: &Lpae<Self>, root_pa: u64, top_level: u32, tracking: bool) -> HwWords {
        f.aarch32_words(root_pa, top_level, tracking)
    }
}

/// The ARM32 LPAE format (`arm32-s1`, `arm32-s2`); see the [module documentation](self).
pub type Arm32Lpae = Lpae<Arm32>;

/// TTBCR.EAE: the long-descriptor format.
const TTBCR_EAE: u64 = 1 << 31;
/// TTBCR.T0SZ is bits 2:0.
const TTBCR_T0SZ_MASK: u64 = 0b111;
/// VTCR.T0SZ (bits 3:0) with its sign bit S (bit 4).
const VTCR_T0SZ_S_MASK: u64 = 0b1_1111;

/// Configuration of an [`Arm32Lpae`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arm32LpaeConfig {
    /// Stage 1 or stage 2.
    pub stage: Stage,
    /// Input address size in bits: 25..=32 at stage 1, 25..=40 at stage 2.
    pub ias: u32,
    /// Output address size in bits: 32, 36 or 40.
    pub oas: u32,
    /// Allow leaves written as contiguous-hint runs (16 entries).
    pub contiguous: bool,
    /// The IOMMU's table walks are cache coherent (TTBCR/VTCR SH0 inner, IRGN0 = ORGN0
    /// write-back write-allocate) instead of outer-shareable non-cacheable.
    pub coherent_walk: bool,
    /// Stage 1 only: set NS in leaves and NSTable in table entries.
    pub ns: bool,
    /// Hardware dirty tracking with DBM, as for
    /// [`ArmLpaeConfig::dirty_tracking`]: an SMMUv3 context descriptor with `AA64` = 0
    /// (stage 1) or stream table entry with `S2AA64` = 0 (stage 2) and HTTU enabled;
    /// the extra `HTTU` word says what to program. Default `false`.
    pub dirty_tracking: bool,
    /// The break-before-make level of the SMMU (SMMU_IDR3.BBML) or CPU (FEAT_BBM): see
    /// [`ArmLpaeConfig::bbm_level`](crate::fmt::arm_lpae::ArmLpaeConfig::bbm_level).
    pub bbm_level: u8,
}

impl Default for Arm32LpaeConfig {
    /// Stage 1, 32-bit input, 40-bit output (what arm-smmu uses for AArch32 contexts at
    /// most), contiguous hints allowed, coherent walks, secure-state bits off.
    fn default() -> Self {
        Arm32LpaeConfig {
            stage: Stage::S1,
            ias: 32,
            oas: 40,
            contiguous: true,
            coherent_walk: true,
            ns: false,
            dirty_tracking: false,
            bbm_level: 0,
        }
    }
}

impl Arm32Lpae {
    /// Builds the format, checking the configuration.
    ///
    /// # Errors
    /// [`Error::BadConfig`] when `ias` is not 25..=32 at stage 1 or 25..=40 at stage 2,
    /// `oas` is not 32, 36 or 40, or `ns` is asked of a stage-2 table.
    pub fn new(cfg: Arm32LpaeConfig) -> Result<Self, Error> {
        match cfg.stage {
            Stage::S1 if !(25..=32).contains(&cfg.ias) => {
                return Err(Error::BadConfig(
                    "ias must be 25..=32 at stage 1 (TTBCR.T0SZ 0..=7)",
                ));
            }
            Stage::S2 if !(25..=40).contains(&cfg.ias) => {
                return Err(Error::BadConfig(
                    "ias must be 25..=40 at stage 2 (VTCR.T0SZ -8..=7)",
                ));
            }
            _ => {}
        }
        if !matches!(cfg.oas, 32 | 36 | 40) {
            return Err(Error::BadConfig(
                "oas must be 32, 36 or 40 (LPAE output addresses are at most 40 bits)",
            ));
        }
        Self::build(ArmLpaeConfig {
            stage: cfg.stage,
            granule: Granule::K4,
            ias: cfg.ias,
            oas: cfg.oas,
            contiguous: cfg.contiguous,
            coherent_walk: cfg.coherent_walk,
            ttbr1: false,
            ns: cfg.ns,
            dirty_tracking: cfg.dirty_tracking,
            bbm_level: cfg.bbm_level,
        })
    }

    /// The AArch32 words: TTBR0/TTBCR/MAIR0/MAIR1 at stage 1, VTTBR/VTCR at stage 2.
    ///
    /// With dirty tracking configured, one more word, `HTTU`: 0b11 (bit 0 HA, bit 1 HD)
    /// while tracking is on, else 0. The AArch32 TTBCR and VTCR have no HA/HD fields;
    /// the SMMU takes them from the context descriptor (`CD.HA`, `CD.HD`) at stage 1 and
    /// from the stream table entry (`STE.S2HA`, `STE.S2HD`) at stage 2.
    fn aarch32_words(&self, root_pa: u64, top_level: u32, tracking: bool) -> HwWords {
        let mut w = HwWords::new();
        // 32 - ias, negative at stage 2 above 32 bits.
        let t0sz = 32u64.wrapping_sub(u64::from(self.va_bits(top_level)));
        let (sh, irgn, orgn) = self.walk_attrs();
        let walk = irgn << TCR_IRGN_SHIFT | orgn << TCR_ORGN_SHIFT | sh << TCR_SH_SHIFT;
        match self.cfg().stage {
            Stage::S1 => {
                w.push("TTBR0", root_pa);
                w.push(
                    "TTBCR",
                    TTBCR_EAE | TCR_EPD1 | walk | (t0sz & TTBCR_T0SZ_MASK),
                );
                w.push("MAIR0", LINUX_MAIR & 0xffff_ffff);
                w.push("MAIR1", LINUX_MAIR >> 32);
            }
            Stage::S2 => {
                // SL0: 0b01 starts at ARM level 1, 0b00 at level 2.
                let start = u64::from(3 - top_level.min(3));
                let sl0 = 2 - start.clamp(1, 2);
                w.push("VTTBR", root_pa);
                w.push(
                    "VTCR",
                    VTCR_RES1 | walk | sl0 << VTCR_SL0_SHIFT | (t0sz & VTCR_T0SZ_S_MASK),
                );
            }
        }
        if self.tracks_dirty() {
            w.push("HTTU", if tracking { 0b11 } else { 0 });
        }
        w
    }
}
