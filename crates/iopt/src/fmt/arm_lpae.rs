//! ARM64 long-descriptor (LPAE / VMSAv8-64) translation tables, stage 1 and stage 2, and
//! the descriptor encoding the whole LPAE family shares.
//!
//! This is the format of Linux's `io-pgtable-arm.c` (`ARM_64_LPAE_S1`, `ARM_64_LPAE_S2`),
//! used by the Arm SMMU (v1/v2 context banks, v3 context descriptors and stream table
//! entries) and by many other IOMMUs that reuse the CPU's page-table format.
//!
//! # The family
//! One generic type, [`Lpae`], holds the geometry and the descriptor encoding; a
//! zero-sized [`Flavour`] parameter picks, at compile time, what differs between the
//! members of the family:
//! - [`ArmLpae`] (`Lpae<Arm64>`): VMSAv8-64 with output addresses up to 48 bits, whose
//!   descriptors hold the output address in place ([`Format::OA_IN_PLACE`]);
//! - [`ArmLpae52`] (`Lpae<Arm64Pa52>`): the same with the 64K granule and 52-bit output
//!   addresses (FEAT_LPA, see below);
//! - [`Arm32Lpae`](crate::fmt::arm32_lpae::Arm32Lpae): the AArch32 (VMSAv7 LPAE)
//!   long-descriptor format, whose descriptors are those of the 4K granule here; only
//!   its limits and hardware words differ;
//! - [`MaliLpae`](crate::fmt::mali::MaliLpae): Arm Mali GPUs' "LPAE" format, with its
//!   own leaf type and attribute bits.
//!
//! Every flavour constant is a `const`, so a branch on it disappears when the engine is
//! monomorphised: [`ArmLpae`]'s encode and decode are the same instructions they would be
//! without the other flavours.
//!
//! # Geometry
//! Entries are 64 bits. A table is one granule (4, 16 or 64 KiB), so each level resolves
//! 9, 11 or 13 address bits. Level 0 here (ARM level 3) holds pages; blocks exist at
//! ARM level 2 and 1 with the 4K granule (2 MiB, 1 GiB) and at ARM level 2 with the
//! 16K (32 MiB) and 64K (512 MiB) granules. The 64K granule's 4 TiB blocks at ARM level 1
//! need a 52-bit output address and exist only in [`ArmLpae52`].
//!
//! Stage 1 uses as many levels as the input size needs. Stage 2 may instead start one
//! level lower with up to 16 *concatenated* tables at the top (see [`ArmLpae::new`]).
//!
//! # Descriptors
//! | bits  | table descriptor      | block / page descriptor                              |
//! |-------|-----------------------|------------------------------------------------------|
//! | 1:0   | 0b11                  | 0b01 block (ARM levels 1, 2), 0b11 page (ARM level 3) |
//! | 4:2   |                       | stage 1 AttrIndx (MAIR index)                        |
//! | 5     |                       | stage 1 NS; stage 2 MemAttr\[3\] (MemAttr is 5:2)     |
//! | 7:6   |                       | stage 1 AP\[2:1\]; stage 2 S2AP (6 read, 7 write)      |
//! | 9:8   |                       | SH: 0b10 outer, 0b11 inner shareable                  |
//! | 10    |                       | AF (access flag), always set                          |
//! | 11    |                       | stage 1 nG, always set                                |
//! | 15:12 | OA\[51:48\] ([`ArmLpae52`]) | OA\[51:48\] ([`ArmLpae52`])                      |
//! | 47:g  | next-level table address | output address (g = log2 of the mapping size)     |
//! | 51    |                       | DBM, with dirty tracking (see below)                  |
//! | 52    |                       | contiguous hint                                       |
//! | 53    |                       | stage 1 PXN; stage 2 XN\[0\]                           |
//! | 54    |                       | stage 1 UXN/XN; stage 2 XN\[1\]                        |
//! | 63    | NSTable (stage 1, `ns`) |                                                     |
//!
//! # Contiguous hint
//! With [`ArmLpaeConfig::contiguous`], a leaf may be written as a naturally aligned run
//! of entries that all carry the contiguous bit (bit 52); each entry keeps its own output
//! address. Run lengths (Arm ARM, "The Contiguous bit"): 4K granule 16 entries at every
//! leaf level (64 KiB, 32 MiB, 16 GiB); 16K granule 128 pages (2 MiB) or 32 blocks
//! (1 GiB); 64K granule 32 pages (2 MiB) or 32 blocks (16 GiB). The 4 TiB blocks of
//! [`ArmLpae52`] have no contiguous runs.
//!
//! # Permissions
//! [`Prot`] is encoded as `arm_lpae_prot_to_pte()` does:
//! - stage 1: AF, nG, AP\[2\] (read-only) when `READ` without `WRITE`, AP\[1\]
//!   (unprivileged access) unless `PRIV`, AttrIndx 2 (device) for `MMIO`, 1 (write-back)
//!   for `CACHE`, else 0 (non-cacheable) in the MAIR layout of [`ArmLpae::MAIR`];
//!   inner-shareable for `CACHE`, outer-shareable otherwise; UXN and PXN for `NOEXEC`;
//!   NS when [`ArmLpaeConfig::ns`].
//!   A write-only mapping cannot be expressed and becomes read-write.
//! - stage 2: AF, S2AP read (bit 6) / write (bit 7), MemAttr device-nGnRE for `MMIO`,
//!   outer+inner write-back for `CACHE`, else non-cacheable; the same shareability rule;
//!   XN\[1\] only for `NOEXEC` (XN\[1:0\] = 0b10, never executable; Linux sets both bits,
//!   but bit 53 is RES0 without FEAT_XNX and 0b11 would allow EL1 execution with it).
//!   `PRIV` has no stage-2 meaning and is ignored.
//!
//! # Dirty tracking
//! With [`ArmLpaeConfig::dirty_tracking`] (Linux's `IO_PGTABLE_QUIRK_ARM_HD`), the table
//! uses the hardware update of dirty state (FEAT_HAFDBS on a CPU, HTTU on an SMMUv3): a
//! *writable-clean* leaf carries the dirty bit modifier, DBM (bit 51), and is read-only
//! to the hardware until its first write, which makes it writable:
//! - stage 1: writable-clean is AP\[2\] (bit 7, read-only) set with DBM; on a write the
//!   hardware clears AP\[2\];
//! - stage 2: writable-clean is S2AP\[1\] (bit 7, write) clear with DBM; on a write the
//!   hardware sets S2AP\[1\].
//!
//! A leaf is dirty when it is writable to the hardware (AP\[2\] clear / S2AP\[1\] set):
//! a writable-clean leaf after a write (DBM still set), or a writable leaf made while
//! tracking was off (written as without tracking, no DBM: the map paths pay nothing for
//! tracking they do not do). [`Format::leaf_prot`] reports `WRITE` for a writable-clean
//! leaf. Cleaning ([`PageTable::read_and_clear_dirty`](crate::PageTable::read_and_clear_dirty))
//! makes a writable leaf writable-clean again (DBM and AP\[2\] set / DBM set and S2AP\[1\]
//! cleared), with a compare-and-swap.
//!
//! A dirty leaf made read-only ([`PageTable::protect`](crate::PageTable::protect)) keeps
//! its record in the software bit 55 (one of the bits \[58:55\] the architecture leaves
//! to software; Linux's arm64 CPU tables keep their software dirty bit there too): the
//! leaf stays dirty until it is read and cleaned, and a cut carries the bit into the
//! pieces.
//!
//! While tracking is on ([`PageTable::set_dirty_tracking`](crate::PageTable::set_dirty_tracking),
//! on from creation), new writable leaves are written writable-clean
//! ([`Format::dirty_fresh_clean`]); switching it on makes every writable leaf
//! writable-clean, switching it off makes every writable-clean leaf writable-dirty
//! (AP\[2\] clear / S2AP\[1\] set; DBM, ignored without HD, stays), so that the
//! hardware no longer needs to write the tables; both add the leaves they change to the
//! gather (the IOTLB may hold the old permission).
//!
//! The hardware words enable the updates while tracking is on: TCR.HA and TCR.HD
//! (bits 39 and 40 of the AArch64 TCR) at stage 1, VTCR.HA and VTCR.HD (bits 21 and 22)
//! at stage 2. An SMMUv3 driver takes them to the context descriptor's `CD.HA` and
//! `CD.HD` (CD bits 43 and 42) at stage 1, or to the stream table entry's `STE.S2HA` and
//! `STE.S2HD` at stage 2; the SMMU must report HTTU with dirty state (`IDR0.HTTU` =
//! 0b10). The walker must snoop the CPU caches (as for every format with dirty
//! tracking): the CPU must see the hardware's updates.
//!
//! Mali ([`MaliLpae`](crate::fmt::mali::MaliLpae)) has no dirty tracking: Mali GPUs
//! have no DBM or hardware dirty state.
//!
//! # 52-bit output addresses ([`ArmLpae52`])
//! With FEAT_LPA and the 64K granule, descriptors hold output-address bits \[47:16\] in
//! place and bits \[51:48\] in descriptor bits \[15:12\], in table descriptors as in
//! leaves (Arm ARM "VMSAv8-64 translation table format descriptors"; Linux
//! `paddr_to_iopte()` / `iopte_to_paddr()`, `ARM_LPAE_MAX_ADDR_BITS` 52). TCR.IPS or
//! VTCR.PS is 0b110, and the TTBR/VTTBR holds base-address bits \[51:48\] in its bits
//! \[5:2\], which needs the top table 64-byte aligned (it always is: the smallest table
//! iopt allocates is 64 bytes). The input size may also be up to 52 bits (FEAT_LVA with
//! the 64K granule; T0SZ 12), and 4 TiB blocks exist at ARM level 1.
//!
//! Because bits 51:48 of the address are not stored above bit 47, adding a multiple of
//! the page size to a descriptor does not give the descriptor of the next page across a
//! 2^48 boundary, so [`ArmLpae52`] does not claim [`Format::OA_IN_PLACE`] (the engine then
//! encodes every entry). The entries of one contiguous run never cross such a boundary
//! (runs are naturally aligned and at most 16 GiB), so [`Format::run_step`] is still the
//! page size. [`ArmLpae`] refuses oas 52, so the 48-bit configurations keep the fast fill.
//!
//! Not implemented: FEAT_LPA2 (52-bit output with the 4K and 16K granules). It stores
//! OA\[51:50\] in descriptor bits \[9:8\], where the shareability field is, moving
//! shareability to TCR.DS/SH (so `CACHE` could no longer choose inner or outer per
//! mapping), and a 52-bit input needs a fifth level (ARM level -1) with the 4K granule.
//! Linux's io-pgtable does not implement it either.

use core::fmt::Debug;
use core::marker::PhantomData;

use crate::fmt::common::addr_mask;
use crate::format::{Format, HwWords, Pte, VaMode};
use crate::{Error, Prot};

/// Which translation stage the table is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Stage 1: virtual (IOVA) to intermediate/physical address, AP/AttrIndx attributes.
    S1,
    /// Stage 2: intermediate physical to physical address, S2AP/MemAttr attributes.
    S2,
}

/// The translation granule: the page size and the size of every non-top table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granule {
    /// 4 KiB pages; 512 entries per table.
    K4,
    /// 16 KiB pages; 2048 entries per table.
    K16,
    /// 64 KiB pages; 8192 entries per table.
    K64,
}

impl Granule {
    /// log2 of the granule size in bytes (12, 14 or 16).
    #[inline]
    pub const fn lg2(self) -> u32 {
        match self {
            Granule::K4 => 12,
            Granule::K16 => 14,
            Granule::K64 => 16,
        }
    }
}

/// Configuration of an [`ArmLpae`] or [`ArmLpae52`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmLpaeConfig {
    /// Stage 1 or stage 2.
    pub stage: Stage,
    /// Translation granule.
    pub granule: Granule,
    /// Input address size in bits, 32..=48, or 32..=52 for [`ArmLpae52`]
    /// (TCR.T0SZ / VTCR.T0SZ = 64 - ias).
    pub ias: u32,
    /// Output address size in bits: 32, 36, 40, 42, 44 or 48 (the TCR.IPS / VTCR.PS
    /// encodings) for [`ArmLpae`]; 52 for [`ArmLpae52`].
    pub oas: u32,
    /// Allow leaves written as contiguous-hint runs.
    pub contiguous: bool,
    /// The IOMMU's table walks are cache coherent: walks are inner-shareable write-back
    /// (TCR/VTCR SH=IS, IRGN=ORGN=WBWA) instead of outer-shareable non-cacheable.
    pub coherent_walk: bool,
    /// Stage 1 only: the table translates the upper half of the address space through
    /// TTBR1 ([`VaMode::High`]); the TCR word then programs T1SZ/IRGN1/ORGN1/SH1/TG1 and
    /// disables TTBR0 walks with EPD0.
    pub ttbr1: bool,
    /// Stage 1 only: set NS in leaves and NSTable in table entries (Linux's
    /// `IO_PGTABLE_QUIRK_ARM_NS`).
    pub ns: bool,
    /// Hardware dirty tracking with the dirty bit modifier (DBM, bit 51; Linux's
    /// `IO_PGTABLE_QUIRK_ARM_HD`; needs HTTU: SMMUv3 `IDR0.HTTU` = 0b10, FEAT_HAFDBS on
    /// a CPU): while tracking is on, writable leaves are written writable-clean (DBM),
    /// and the hardware words enable hardware updates of the access flag and dirty
    /// state (see the module documentation, "Dirty tracking"). Default `false`.
    pub dirty_tracking: bool,
    /// The break-before-make level the hardware supports: the SMMU's SMMU_IDR3.BBML, or
    /// the CPU's FEAT_BBM level (0, 1 or 2). At level 2 a live block or contiguous run
    /// may be replaced by an equivalent table or smaller entries without invalidating
    /// it first (no TLB conflict aborts), so [`PageTable::cut`](crate::PageTable::cut)
    /// is hitless; below it a cut needs break-before-make (level 1 would allow a change
    /// of block size only through the nT bit two-step, which this library does not do).
    pub bbm_level: u8,
}

impl Default for ArmLpaeConfig {
    /// Stage 1, 4K granule, 48-bit input and output, contiguous hints allowed, coherent
    /// walks, TTBR0, secure-state attribute bits off.
    fn default() -> Self {
        ArmLpaeConfig {
            stage: Stage::S1,
            granule: Granule::K4,
            ias: 48,
            oas: 48,
            contiguous: true,
            coherent_walk: true,
            ttbr1: false,
            ns: false,
            dirty_tracking: false,
            bbm_level: 0,
        }
    }
}

pub(crate) mod sealed {
    /// Only this crate's flavours implement [`super::Flavour`].
    pub trait Sealed {}
}

/// What distinguishes one member of the LPAE family from another, fixed at compile
/// time. Implemented by [`Arm64`], [`Arm64Pa52`],
/// [`Arm32`](crate::fmt::arm32_lpae::Arm32) and [`Mali`](crate::fmt::mali::Mali) only.
pub trait Flavour: sealed::Sealed + Copy + Eq + Debug + Send + Sync + 'static {
    /// [`Format::NAME`] of tables of this flavour.
    const NAME: &'static str;
    /// Output-address bits 51:48 are stored in descriptor bits 15:12 (FEAT_LPA with the
    /// 64K granule) instead of in place.
    const PA52: bool = false;
    /// Descriptor bits\[1:0\] of a leaf at the last level (ARM level 3): 0b11 for the
    /// CPU formats, 0b01 (the block type) for Mali.
    const PAGE_TYPE: u64 = DESC_TYPE_TABLE_OR_PAGE;
    /// Bit 52 is the contiguous hint.
    const CONTIGUOUS: bool = true;
    /// The hardware can track dirty state with DBM (bit 51) and AP\[2\] / S2AP\[1\]
    /// (false for Mali, whose GPUs have no hardware dirty bit).
    const DIRTY: bool = true;

    /// The attribute bits of a leaf mapping `prot` (everything but the type bits, the
    /// address and the contiguous bit). Default: the Arm stage 1 / stage 2 encoding.
    #[inline]
    fn prot_bits(f: &Lpae<Self>, prot: Prot) -> u64 {
        f.arm_prot_bits(prot)
    }
    /// The permissions a leaf descriptor encodes. Default: the Arm encoding.
    #[inline]
    fn leaf_prot(f: &Lpae<Self>, pte: u64) -> Prot {
        f.arm_leaf_prot(pte)
    }
    /// The words a driver programs for a table rooted at `root_pa` with its top at
    /// `top_level`, with hardware dirty updates enabled when `tracking`.
    fn hw_words(f: &Lpae<Self>, root_pa: u64, top_level: u32, tracking: bool) -> HwWords;
}

/// The ARM64 flavour with output addresses up to 48 bits: see [`ArmLpae`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arm64;

/// The ARM64 flavour with the 64K granule and 52-bit output addresses: see
/// [`ArmLpae52`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arm64Pa52;

impl sealed::Sealed for Arm64 {}
impl sealed::Sealed for Arm64Pa52 {}

impl Flavour for Arm64 {
    const NAME: &'static str = "arm64-lpae";
    fn hw_words(f: &Lpae<Self>, root_pa: u64, top_level: u32, tracking: bool) -> HwWords {
        f.aarch64_words(root_pa, top_level, tracking)
    }
}

impl Flavour for Arm64Pa52 {
    const NAME: &'static str = "arm64-lpae52";
    const PA52: bool = true;
    fn hw_words(f: &Lpae<Self>, root_pa: u64, top_level: u32, tracking: bool) -> HwWords {
        f.aarch64_words(root_pa, top_level, tracking)
    }
}

/// A table format of the LPAE family; see the [module documentation](self). Use the
/// aliases: [`ArmLpae`], [`ArmLpae52`],
/// [`Arm32Lpae`](crate::fmt::arm32_lpae::Arm32Lpae),
/// [`MaliLpae`](crate::fmt::mali::MaliLpae).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lpae<F: Flavour> {
    /// The configuration in ARM64 terms (the other flavours translate theirs).
    cfg: ArmLpaeConfig,
    /// log2 of the granule (the page size).
    pg_shift: u32,
    /// Address bits resolved by one full table: `pg_shift - 3`.
    bits_per_level: u32,
    /// Number of levels, after any stage-2 concatenation.
    levels: u32,
    flavour: PhantomData<F>,
}

/// The ARM64 LPAE format with output addresses up to 48 bits (`arm64-s1`, `arm64-s2`).
pub type ArmLpae = Lpae<Arm64>;

/// The ARM64 LPAE format with the 64K granule and 52-bit output addresses (FEAT_LPA).
pub type ArmLpae52 = Lpae<Arm64Pa52>;

// Descriptor bits (Arm ARM D8 "Translation table descriptor formats"; io-pgtable-arm.c).
const DESC_VALID: u64 = 1 << 0;
const DESC_TYPE_MASK: u64 = 0b11;
/// Bits[1:0] of a table descriptor (ARM levels 0..2) and of a page (ARM level 3).
pub(crate) const DESC_TYPE_TABLE_OR_PAGE: u64 = 0b11;
/// Bits[1:0] of a block descriptor (ARM levels 1, 2).
pub(crate) const DESC_TYPE_BLOCK: u64 = 0b01;
/// Stage 1 AttrIndx[2:0] at bits 4:2.
pub(crate) const S1_ATTRIDX_SHIFT: u32 = 2;
pub(crate) const S1_ATTRIDX_MASK: u64 = 0b111 << S1_ATTRIDX_SHIFT;
/// Stage 1 NS (leaf).
const S1_NS: u64 = 1 << 5;
/// Stage 1 AP\[1\]: EL0 (unprivileged) access allowed.
const S1_AP_UNPRIV: u64 = 1 << 6;
/// Stage 1 AP\[2\]: read-only.
const S1_AP_RDONLY: u64 = 1 << 7;
/// Stage 2 S2AP\[0\]: read allowed.
pub(crate) const S2_AP_READ: u64 = 1 << 6;
/// Stage 2 S2AP\[1\]: write allowed.
pub(crate) const S2_AP_WRITE: u64 = 1 << 7;
/// Stage 2 MemAttr[3:0] at bits 5:2.
const S2_MEMATTR_SHIFT: u32 = 2;
const S2_MEMATTR_MASK: u64 = 0xf << S2_MEMATTR_SHIFT;
/// MemAttr: Device-nGnRE.
const S2_MEMATTR_DEVICE: u64 = 0x1;
/// MemAttr: Normal, outer and inner write-back cacheable.
const S2_MEMATTR_WB: u64 = 0xf;
/// MemAttr: Normal, outer and inner non-cacheable.
const S2_MEMATTR_NC: u64 = 0x5;
/// Shareability SH[1:0] at bits 9:8.
pub(crate) const SH_SHIFT: u32 = 8;
const SH_MASK: u64 = 0b11 << SH_SHIFT;
pub(crate) const SH_OUTER: u64 = 0b10;
pub(crate) const SH_INNER: u64 = 0b11;
/// Access flag.
const DESC_AF: u64 = 1 << 10;
/// Stage 1 not-global.
const S1_NG: u64 = 1 << 11;
/// Dirty bit modifier (FEAT_HAFDBS, SMMUv3 HTTU): the hardware may make the leaf
/// writable (clear AP\[2\] / set S2AP\[1\]) on a write, recording it as dirty.
pub(crate) const DESC_DBM: u64 = 1 << 51;
/// Contiguous hint.
const DESC_CONT: u64 = 1 << 52;
/// Software dirty: bit 55, the first of the bits \[58:55\] that stage-1 and stage-2
/// leaves leave to software (the hardware ignores them; Linux's arm64 `PTE_DIRTY` is
/// the same bit). It keeps the dirty record of a leaf made read-only after a write,
/// which has no hardware encoding (read-only means AP\[2\] set / S2AP\[1\] clear without
/// DBM, which is also what writable-clean looks like minus DBM).
pub(crate) const DESC_SW_DIRTY: u64 = 1 << 55;
/// PXN (stage 1) / XN\[0\] (stage 2).
pub(crate) const DESC_PXN: u64 = 1 << 53;
/// UXN or XN (stage 1) / XN\[1\] (stage 2).
pub(crate) const DESC_UXN: u64 = 1 << 54;
/// NSTable in table descriptors.
const TABLE_NSTABLE: u64 = 1 << 63;
/// Highest output-address bit stored in place.
const OA_HI_BIT: u32 = 47;
/// With FEAT_LPA: where OA\[51:48\] sit in a descriptor (bits 15:12).
const OA52_SHIFT: u32 = 12;
const OA52_BITS: u64 = 0xf;

// io-pgtable-arm's MAIR indices.
pub(crate) const MAIR_IDX_NC: u64 = 0;
pub(crate) const MAIR_IDX_CACHE: u64 = 1;
pub(crate) const MAIR_IDX_DEV: u64 = 2;

/// The MAIR value Linux's io-pgtable-arm programs for its stage-1 AttrIndx layout:
/// attribute 0 normal non-cacheable (0x44), 1 normal write-back read/write-allocate
/// (0xff), 2 Device-nGnRE (0x04), 3 inner non-cacheable / outer write-back (0xf4).
pub(crate) const LINUX_MAIR: u64 = 0x44 | (0xff << 8) | (0x04 << 16) | (0xf4 << 24);

// TCR_EL1 / VTCR_EL2 fields (the AArch32 TTBCR and VTCR put the walk attributes at the
// same places).
const TCR_EPD0: u64 = 1 << 7;
pub(crate) const TCR_EPD1: u64 = 1 << 23;
pub(crate) const TCR_IRGN_SHIFT: u32 = 8;
pub(crate) const TCR_ORGN_SHIFT: u32 = 10;
pub(crate) const TCR_SH_SHIFT: u32 = 12;
const TCR_TG_SHIFT: u32 = 14;
/// Offset of the TTBR1 half (T1SZ, IRGN1, ...) from the TTBR0 half.
const TCR_HALF1_SHIFT: u32 = 16;
const TCR_IPS_SHIFT: u32 = 32;
/// TCR_EL1.HA: hardware update of the access flag (FEAT_HAFDBS).
const TCR_HA: u64 = 1 << 39;
/// TCR_EL1.HD: hardware update of the dirty state (DBM leaves).
const TCR_HD: u64 = 1 << 40;
/// VTCR_EL2.HA / HD: the same for stage 2.
const VTCR_HA: u64 = 1 << 21;
const VTCR_HD: u64 = 1 << 22;
const TCR_RGN_NC: u64 = 0;
const TCR_RGN_WBWA: u64 = 1;
pub(crate) const VTCR_SL0_SHIFT: u32 = 6;
const VTCR_PS_SHIFT: u32 = 16;
pub(crate) const VTCR_RES1: u64 = 1 << 31;
/// TTBR / VTTBR base-address field with FEAT_LPA: bits 47:2 (BADDR\[51:48\] in 5:2).
const TTBR_BADDR_52: u64 = addr_mask(2, 47);

/// Most tables a stage-2 top level may concatenate.
const S2_MAX_CONCAT_LG2: u32 = 4;

impl ArmLpae {
    /// The MAIR value that goes with stage-1 tables: attribute 0 normal non-cacheable
    /// (0x44), 1 normal write-back read/write-allocate (0xff), 2 Device-nGnRE (0x04),
    /// 3 inner non-cacheable / outer write-back (0xf4), as io-pgtable-arm programs it.
    pub const MAIR: u64 = LINUX_MAIR;

    /// Builds the format, checking the configuration.
    ///
    /// Stage 1 uses `ceil((ias - granule_bits) / bits_per_level)` levels. Stage 2 then
    /// removes the top level by concatenating up to 16 tables one level down when:
    /// - the walk would start at ARM level 0 and its top table would have at most 16
    ///   entries (io-pgtable-arm's rule to shorten stage-2 walks), or
    /// - the architecture forbids that start level for this granule and output size
    ///   (Arm ARM stage-2 start-level rules, Linux `arm_lpae_concat_mandatory()`):
    ///   4K from level 0 needs oas >= 44; 16K never starts at level 0 and needs
    ///   oas > 40 to start at level 1; 64K needs oas > 42 to start at level 1.
    ///
    /// # Errors
    /// [`Error::BadConfig`] when `ias` is not 32..=48, `oas` is 52 (that is
    /// [`ArmLpae52`]), not 32..=48 or not one of the encodable sizes, `ttbr1` or `ns` is
    /// asked of a stage-2 table, or a stage-2 start level is forbidden and concatenation
    /// would need more than 16 tables.
    pub fn new(cfg: ArmLpaeConfig) -> Result<Self, Error> {
        if !(32..=48).contains(&cfg.ias) {
            return Err(Error::BadConfig("ias must be 32..=48"));
        }
        if cfg.oas == 52 {
            return Err(Error::BadConfig(
                "oas 52 needs the 52-bit format ArmLpae52 (64K granule only); ArmLpae \
                 stores at most 48 output-address bits",
            ));
        }
        if !(32..=48).contains(&cfg.oas) {
            return Err(Error::BadConfig("oas must be 32..=48"));
        }
        if ps_encoding(cfg.oas).is_none() {
            return Err(Error::BadConfig(
                "oas must be 32, 36, 40, 42, 44 or 48 (the TCR.IPS / VTCR.PS encodings)",
            ));
        }
        Self::build(cfg)
    }
}

impl ArmLpae52 {
    /// Builds the 52-bit format, checking the configuration: the 64K granule, oas 52 and
    /// ias 32..=52; everything else as [`ArmLpae::new`] (the stage-2 rules included).
    ///
    /// # Errors
    /// [`Error::BadConfig`] when `oas` is not 52, the granule is not 64K (52-bit output
    /// with 4K or 16K needs FEAT_LPA2, which is not implemented), `ias` is not 32..=52,
    /// or for the reasons [`ArmLpae::new`] gives.
    pub fn new(cfg: ArmLpaeConfig) -> Result<Self, Error> {
        if cfg.oas != 52 {
            return Err(Error::BadConfig(
                "ArmLpae52 needs oas 52 (use ArmLpae for oas 32..=48)",
            ));
        }
        if cfg.granule != Granule::K64 {
            return Err(Error::BadConfig(
                "oas 52 needs the 64K granule (FEAT_LPA); 52-bit output with the 4K or 16K \
                 granule needs FEAT_LPA2, which is not implemented",
            ));
        }
        if !(32..=52).contains(&cfg.ias) {
            return Err(Error::BadConfig("ias must be 32..=52"));
        }
        Self::build(cfg)
    }
}

impl<F: Flavour> Lpae<F> {
    /// The geometry of a configuration whose sizes the flavour has checked: levels and
    /// stage-2 concatenation (see [`ArmLpae::new`]), and the stage-1-only options.
    pub(crate) fn build(cfg: ArmLpaeConfig) -> Result<Self, Error> {
        if cfg.stage == Stage::S2 && cfg.ttbr1 {
            return Err(Error::BadConfig("ttbr1 is a stage 1 option"));
        }
        if cfg.stage == Stage::S2 && cfg.ns {
            return Err(Error::BadConfig("ns is a stage 1 option"));
        }
        if cfg.dirty_tracking && !F::DIRTY {
            return Err(Error::BadConfig(
                "this LPAE flavour has no hardware dirty tracking (no DBM)",
            ));
        }
        if cfg.bbm_level > 2 {
            return Err(Error::BadConfig(
                "bbm_level must be 0, 1 or 2 (SMMU_IDR3.BBML)",
            ));
        }

        let pg_shift = cfg.granule.lg2();
        let bits_per_level = pg_shift - 3;
        let va = cfg.ias - pg_shift;
        let mut levels = va.div_ceil(bits_per_level);
        // Address bits resolved by the top table before any concatenation.
        let top_bits = va - bits_per_level * (levels - 1);

        if cfg.stage == Stage::S2 {
            let start = 4 - levels;
            let shortens = start == 0 && top_bits <= S2_MAX_CONCAT_LG2;
            let mandatory = match cfg.granule {
                Granule::K4 => start == 0 && cfg.oas < 44,
                Granule::K16 => start == 0 || (start == 1 && cfg.oas <= 40),
                Granule::K64 => start == 0 || (start == 1 && cfg.oas <= 42),
            };
            if mandatory && top_bits > S2_MAX_CONCAT_LG2 {
                return Err(Error::BadConfig(
                    "stage 2 start level is not allowed for this granule and oas, and \
                     concatenating would need more than 16 tables (reduce ias or raise oas)",
                ));
            }
            if shortens || mandatory {
                levels -= 1;
            }
        }

        Ok(Lpae {
            cfg,
            pg_shift,
            bits_per_level,
            levels,
            flavour: PhantomData,
        })
    }

    /// The configuration, in ARM64 terms.
    #[inline]
    pub(crate) fn cfg(&self) -> &ArmLpaeConfig {
        &self.cfg
    }

    /// ARM's number (0..=3) of the level the walk starts at: the top table's level.
    #[inline]
    pub fn start_level_arm(&self) -> u32 {
        4 - self.levels
    }

    /// log2 of the contiguous-run length at `level` (0: no contiguous runs there).
    #[inline]
    fn contig_lg2(&self, level: u32) -> u32 {
        match (self.cfg.granule, level) {
            (Granule::K4, 0..=2) => 4,
            (Granule::K16, 0) => 7,
            (Granule::K16, 1) => 5,
            (Granule::K64, 0..=1) => 5,
            _ => 0,
        }
    }

    /// True if a block descriptor is valid at `level` (> 0).
    #[inline]
    fn block_ok(&self, level: u32) -> bool {
        match self.cfg.granule {
            Granule::K4 => level == 1 || level == 2,
            // 4 TiB blocks at ARM level 1 only with a 52-bit output address. (A guard,
            // so that without it the 16K and 64K arms stay one.)
            Granule::K64 if F::PA52 => level == 1 || level == 2,
            Granule::K16 | Granule::K64 => level == 1,
        }
    }

    /// The descriptor field holding the output or table address `pa` (aligned to at
    /// least the granule).
    #[inline]
    fn oa_field(pa: u64) -> u64 {
        if F::PA52 {
            (pa & addr_mask(16, OA_HI_BIT)) | ((pa >> 48) & OA52_BITS) << OA52_SHIFT
        } else {
            pa
        }
    }

    /// The address a descriptor holds, from bit `lo` up.
    #[inline]
    fn oa_of(pte: u64, lo: u32) -> u64 {
        let pa = pte & addr_mask(lo, OA_HI_BIT);
        if F::PA52 {
            pa | ((pte >> OA52_SHIFT) & OA52_BITS) << 48
        } else {
            pa
        }
    }

    /// Attribute bits of an Arm stage-1 or stage-2 leaf for `prot` (everything but type,
    /// address, contiguous).
    #[inline]
    pub(crate) fn arm_prot_bits(&self, prot: Prot) -> u64 {
        let mut pte = DESC_AF;
        match self.cfg.stage {
            Stage::S1 => {
                pte |= S1_NG;
                if prot.contains(Prot::READ) && !prot.contains(Prot::WRITE) {
                    pte |= S1_AP_RDONLY;
                }
                if !prot.contains(Prot::PRIV) {
                    pte |= S1_AP_UNPRIV;
                }
                pte |= attr_index(prot) << S1_ATTRIDX_SHIFT;
                if self.cfg.ns {
                    pte |= S1_NS;
                }
            }
            Stage::S2 => {
                if prot.contains(Prot::READ) {
                    pte |= S2_AP_READ;
                }
                if prot.contains(Prot::WRITE) {
                    pte |= S2_AP_WRITE;
                }
                let attr = if prot.contains(Prot::MMIO) {
                    S2_MEMATTR_DEVICE
                } else if prot.contains(Prot::CACHE) {
                    S2_MEMATTR_WB
                } else {
                    S2_MEMATTR_NC
                };
                pte |= attr << S2_MEMATTR_SHIFT;
            }
        }
        let sh = if prot.contains(Prot::CACHE) {
            SH_INNER
        } else {
            SH_OUTER
        };
        pte |= sh << SH_SHIFT;
        if prot.contains(Prot::NOEXEC) {
            pte |= match self.cfg.stage {
                Stage::S1 => DESC_UXN | DESC_PXN,
                // XN[1:0] = 0b10: no execution at any level. Linux also sets XN[0], which
                // is RES0 without FEAT_XNX and with it (0b11) would allow EL1 execution.
                Stage::S2 => DESC_UXN,
            };
        }
        pte
    }

    /// The permissions of an Arm stage-1 or stage-2 leaf.
    #[inline]
    pub(crate) fn arm_leaf_prot(&self, pte: u64) -> Prot {
        let mut prot = Prot::empty();
        let inner = (pte & SH_MASK) >> SH_SHIFT == SH_INNER;
        match self.cfg.stage {
            Stage::S1 => {
                prot |= Prot::READ;
                // Writable-clean (AP[2] with DBM) is writable: the first write makes it
                // writable-dirty.
                if pte & S1_AP_RDONLY == 0 || self.dbm(pte) {
                    prot |= Prot::WRITE;
                }
                if pte & S1_AP_UNPRIV == 0 {
                    prot |= Prot::PRIV;
                }
                let idx = (pte & S1_ATTRIDX_MASK) >> S1_ATTRIDX_SHIFT;
                if idx == MAIR_IDX_DEV {
                    prot |= Prot::MMIO;
                }
                if idx == MAIR_IDX_CACHE || inner {
                    prot |= Prot::CACHE;
                }
            }
            Stage::S2 => {
                if pte & S2_AP_READ != 0 {
                    prot |= Prot::READ;
                }
                if pte & S2_AP_WRITE != 0 || self.dbm(pte) {
                    prot |= Prot::WRITE;
                }
                let attr = (pte & S2_MEMATTR_MASK) >> S2_MEMATTR_SHIFT;
                // MemAttr[3:2] == 0b00 is Device memory.
                if attr & 0b1100 == 0 {
                    prot |= Prot::MMIO;
                }
                if attr == S2_MEMATTR_WB || inner {
                    prot |= Prot::CACHE;
                }
            }
        }
        if pte & DESC_UXN != 0 {
            prot |= Prot::NOEXEC;
        }
        prot
    }

    /// True if the leaf carries DBM in a configuration with dirty tracking (without it,
    /// bit 51 is never written and a DBM found in a table means nothing to this table).
    #[inline]
    fn dbm(&self, pte: u64) -> bool {
        F::DIRTY && self.cfg.dirty_tracking && pte & DESC_DBM != 0
    }

    /// Walk attributes: (SH, IRGN, ORGN) for TCR/VTCR (and the AArch32 TTBCR/VTCR).
    #[inline]
    pub(crate) fn walk_attrs(&self) -> (u64, u64, u64) {
        if self.cfg.coherent_walk {
            (SH_INNER, TCR_RGN_WBWA, TCR_RGN_WBWA)
        } else {
            (SH_OUTER, TCR_RGN_NC, TCR_RGN_NC)
        }
    }

    /// The AArch64 words: TTBR/TCR/MAIR at stage 1, VTTBR/VTCR at stage 2. With a
    /// 52-bit output the base register holds BADDR\[51:48\] in its bits 5:2.
    /// With `tracking`, TCR.HA/HD (bits 39, 40) or VTCR.HA/HD (bits 21, 22).
    fn aarch64_words(&self, root_pa: u64, top_level: u32, tracking: bool) -> HwWords {
        let mut w = HwWords::new();
        let ttbr = if F::PA52 {
            (root_pa | root_pa >> 46) & TTBR_BADDR_52
        } else {
            root_pa
        };
        let tsz = 64 - u64::from(self.va_bits(top_level));
        let (sh, irgn, orgn) = self.walk_attrs();
        let ps = ps_encoding(self.cfg.oas).unwrap_or(0);
        let walk = tsz | irgn << TCR_IRGN_SHIFT | orgn << TCR_ORGN_SHIFT | sh << TCR_SH_SHIFT;
        // TG0: 4K 0b00, 64K 0b01, 16K 0b10.
        let tg0: u64 = match self.cfg.granule {
            Granule::K4 => 0,
            Granule::K64 => 1,
            Granule::K16 => 2,
        };
        match self.cfg.stage {
            Stage::S1 => {
                let tcr = if self.cfg.ttbr1 {
                    // TG1: 16K 0b01, 4K 0b10, 64K 0b11.
                    let tg1: u64 = match self.cfg.granule {
                        Granule::K16 => 1,
                        Granule::K4 => 2,
                        Granule::K64 => 3,
                    };
                    ((walk | tg1 << TCR_TG_SHIFT) << TCR_HALF1_SHIFT) | TCR_EPD0
                } else {
                    walk | tg0 << TCR_TG_SHIFT | TCR_EPD1
                };
                let httu = if tracking { TCR_HA | TCR_HD } else { 0 };
                w.push("TTBR", ttbr);
                w.push("TCR", tcr | ps << TCR_IPS_SHIFT | httu);
                w.push("MAIR", LINUX_MAIR);
            }
            Stage::S2 => {
                let start = u64::from(3 - top_level.min(3));
                // SL0: 4K 0b10/01/00 = level 0/1/2; 16K/64K 0b10/01/00 = level 1/2/3.
                let sl0 = match self.cfg.granule {
                    Granule::K4 => 2 - start.min(2),
                    Granule::K16 | Granule::K64 => 3 - start.max(1),
                };
                let vtcr = VTCR_RES1
                    | ps << VTCR_PS_SHIFT
                    | tg0 << TCR_TG_SHIFT
                    | sl0 << VTCR_SL0_SHIFT
                    | walk
                    | if tracking { VTCR_HA | VTCR_HD } else { 0 };
                w.push("VTTBR", ttbr);
                w.push("VTCR", vtcr);
            }
        }
        w
    }
}

/// The MAIR index (AttrIndx) io-pgtable-arm uses for `prot`: device for `MMIO`,
/// write-back for `CACHE`, else non-cacheable.
#[inline]
pub(crate) fn attr_index(prot: Prot) -> u64 {
    if prot.contains(Prot::MMIO) {
        MAIR_IDX_DEV
    } else if prot.contains(Prot::CACHE) {
        MAIR_IDX_CACHE
    } else {
        MAIR_IDX_NC
    }
}

/// TCR.IPS / VTCR.PS encoding of an output size.
#[inline]
const fn ps_encoding(oas: u32) -> Option<u64> {
    match oas {
        32 => Some(0),
        36 => Some(1),
        40 => Some(2),
        42 => Some(3),
        44 => Some(4),
        48 => Some(5),
        52 => Some(6),
        _ => None,
    }
}

impl<F: Flavour> Format for Lpae<F> {
    const NAME: &'static str = F::NAME;
    const ENTRY_LG2: u32 = 3;
    const MAX_LEVELS: u32 = 4;
    const OA_IN_PLACE: bool = !F::PA52;

    #[inline]
    fn levels(&self) -> u32 {
        self.levels
    }

    #[inline]
    fn va_bits(&self, top_level: u32) -> u32 {
        if top_level + 1 >= self.levels {
            self.cfg.ias
        } else {
            // A lower top would be a full table.
            self.item_lg2(top_level + 1)
        }
    }

    #[inline]
    fn va_mode(&self) -> VaMode {
        if self.cfg.ttbr1 {
            VaMode::High
        } else {
            VaMode::Low
        }
    }

    #[inline]
    fn oa_bits(&self) -> u32 {
        self.cfg.oas
    }

    #[inline]
    fn item_lg2(&self, level: u32) -> u32 {
        self.pg_shift + level * self.bits_per_level
    }

    #[inline]
    fn table_lg2(&self, _level: u32) -> u32 {
        self.bits_per_level
    }

    #[inline]
    fn leaf_runs(&self, level: u32) -> u32 {
        if level != 0 && !self.block_ok(level) {
            return 0;
        }
        let mut runs = 1;
        let c = self.contig_lg2(level);
        if F::CONTIGUOUS && self.cfg.contiguous && c != 0 {
            // At the top, a run must fit in the (possibly small) top table.
            let fits = level + 1 < self.levels
                || c <= self.va_bits(level).saturating_sub(self.item_lg2(level));
            if fits {
                runs |= 1 << c;
            }
        }
        runs
    }

    #[inline]
    fn plain_leaf_pattern(&self, level: u32) -> (u64, u64) {
        // The descriptor type of a page (level 0) or block, without the contiguous hint.
        let cont = if F::CONTIGUOUS { DESC_CONT } else { 0 };
        let ty = if level == 0 {
            F::PAGE_TYPE
        } else if self.block_ok(level) {
            DESC_TYPE_BLOCK
        } else {
            return (0, 1);
        };
        if ty & DESC_VALID == 0 {
            return (0, 1);
        }
        (DESC_TYPE_MASK | cont, ty)
    }

    #[inline(always)]
    fn decode(&self, level: u32, pte: u64) -> Pte {
        if pte & DESC_VALID == 0 {
            return Pte::Empty;
        }
        let ty = pte & DESC_TYPE_MASK;
        let leaf = if level == 0 {
            ty == F::PAGE_TYPE
        } else if ty == DESC_TYPE_TABLE_OR_PAGE {
            return Pte::Table {
                pa: Self::oa_of(pte, self.pg_shift),
            };
        } else {
            self.block_ok(level)
        };
        if !leaf {
            // Reserved encoding (0b01 at ARM level 3; 0b11 there for Mali) or a block
            // where none may be.
            return Pte::Empty;
        }
        let mut pa = Self::oa_of(pte, self.item_lg2(level));
        let mut run_lg2 = 0;
        if F::CONTIGUOUS && pte & DESC_CONT != 0 {
            run_lg2 = self.contig_lg2(level);
            pa &= !((1u64 << (self.item_lg2(level) + run_lg2)) - 1);
        }
        Pte::Leaf { pa, run_lg2 }
    }

    #[inline]
    fn leaf_prot(&self, _level: u32, pte: u64) -> Prot {
        F::leaf_prot(self, pte)
    }

    /// Hitless only at break-before-make level 2 ([`ArmLpaeConfig::bbm_level`]): below
    /// it the Arm ARM requires a live block or contiguous run to be invalidated (and the
    /// TLB flushed) before a table or entries of another size replace it.
    #[inline]
    fn cut_hitless(&self) -> bool {
        self.cfg.bbm_level >= 2
    }

    /// A change of memory type (cacheable, device: the AttrIndx / MemAttr of the leaf)
    /// needs break-before-make (Arm ARM, "changing memory attributes"); permissions
    /// (AP, S2AP, XN, PXN) change in place.
    #[inline]
    fn prot_needs_bbm(&self, old: Prot, new: Prot) -> bool {
        (old ^ new).intersects(Prot::CACHE.union(Prot::MMIO))
    }

    #[inline]
    fn make_table(&self, _level: u32, table_pa: u64) -> u64 {
        let mut pte = Self::oa_field(table_pa) | DESC_TYPE_TABLE_OR_PAGE;
        if self.cfg.ns {
            pte |= TABLE_NSTABLE;
        }
        pte
    }

    #[inline]
    fn make_leaf(&self, level: u32, pa: u64, run_lg2: u32, prot: Prot) -> u64 {
        let ty = if level == 0 {
            F::PAGE_TYPE
        } else {
            DESC_TYPE_BLOCK
        };
        let mut pte = Self::oa_field(pa) | ty | F::prot_bits(self, prot);
        if run_lg2 != 0 {
            pte |= DESC_CONT;
        }
        pte
    }

    #[inline]
    fn run_step(&self, level: u32, _run_lg2: u32) -> u64 {
        // Also right with a 52-bit output: a run is naturally aligned and far smaller
        // than 2^48, so its entries never carry into the OA[51:48] field.
        1u64 << self.item_lg2(level)
    }

    fn hw_words(&self, root_pa: u64, top_level: u32) -> HwWords {
        F::hw_words(self, root_pa, top_level, self.tracks_dirty())
    }

    #[inline]
    fn hw_words_tracking(&self, root_pa: u64, top_level: u32, tracking: bool) -> HwWords {
        F::hw_words(self, root_pa, top_level, tracking && self.tracks_dirty())
    }

    #[inline]
    fn tracks_dirty(&self) -> bool {
        F::DIRTY && self.cfg.dirty_tracking
    }

    /// Writable as the hardware sees it: AP\[2\] clear (stage 1) or S2AP\[1\] set
    /// (stage 2), whether the hardware made it so on a write (DBM set) or the leaf was
    /// made writable while tracking was off. A writable-clean leaf is not dirty.
    /// A read-only leaf is dirty if it carries the software dirty bit (bit 55: made
    /// read-only while dirty).
    #[inline]
    fn leaf_dirty(&self, _level: u32, pte: u64) -> bool {
        pte & DESC_SW_DIRTY != 0
            || match self.cfg.stage {
                Stage::S1 => pte & S1_AP_RDONLY == 0,
                Stage::S2 => pte & S2_AP_WRITE != 0,
            }
    }

    /// A writable leaf made writable-clean: DBM with AP\[2\] set (stage 1), or DBM with
    /// S2AP\[1\] cleared (stage 2). Read-only and writable-clean leaves are returned as
    /// they are, less the software dirty bit.
    #[inline]
    fn leaf_clean(&self, _level: u32, pte: u64) -> u64 {
        let pte = pte & !DESC_SW_DIRTY;
        match self.cfg.stage {
            Stage::S1 if pte & S1_AP_RDONLY == 0 => pte | DESC_DBM | S1_AP_RDONLY,
            Stage::S2 if pte & S2_AP_WRITE != 0 => (pte | DESC_DBM) & !S2_AP_WRITE,
            _ => pte,
        }
    }

    /// A writable-clean (DBM) leaf made writable-dirty, as the hardware does on a write:
    /// AP\[2\] cleared (stage 1) or S2AP\[1\] set (stage 2); DBM stays. Other leaves
    /// (read-only, already writable) are returned as they are.
    #[inline]
    fn leaf_mark_dirty(&self, _level: u32, pte: u64) -> u64 {
        if pte & DESC_DBM == 0 {
            return pte;
        }
        match self.cfg.stage {
            Stage::S1 => pte & !S1_AP_RDONLY,
            Stage::S2 => pte | S2_AP_WRITE,
        }
    }

    /// A leaf the hardware can write (writable-clean or writable) marked as by a write;
    /// a read-only one given the software dirty bit (bit 55), which only a clean
    /// removes.
    #[inline]
    fn leaf_carry_dirty(&self, level: u32, pte: u64) -> u64 {
        let read_only = pte & DESC_DBM == 0
            && match self.cfg.stage {
                Stage::S1 => pte & S1_AP_RDONLY != 0,
                Stage::S2 => pte & S2_AP_WRITE == 0,
            };
        if read_only {
            pte | DESC_SW_DIRTY
        } else {
            self.leaf_mark_dirty(level, pte)
        }
    }

    /// A writable leaf is writable-clean while tracking is on. (True for every
    /// configuration of a flavour with DBM: without dirty tracking configured, tracking
    /// is never on, and the engine's test of its run-time switch is then the only cost.)
    #[inline]
    fn dirty_fresh_clean(&self) -> bool {
        F::DIRTY
    }
}
