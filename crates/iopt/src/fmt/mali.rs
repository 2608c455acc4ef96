//! Arm Mali "LPAE" GPU page tables: the legacy address-space format of Midgard and
//! Bifrost GPUs, as panfrost programs it.
//!
//! This is Linux's `io-pgtable-arm.c` `ARM_MALI_LPAE` (`arm_mali_lpae_alloc_pgtable`,
//! and the Mali cases of `iopte_leaf()`, `__arm_lpae_init_pte()` and
//! `arm_lpae_prot_to_pte()`), programmed by `drivers/gpu/drm/panfrost/panfrost_mmu.c`
//! (`AS_TRANSTAB`, `AS_MEMATTR`, and `AS_TRANSCFG` = `ADRMODE_LEGACY` on GPUs that have
//! it). The entry bits agree with Arm's out-of-tree kbase driver (`ENTRY_IS_ATE` 1,
//! `ENTRY_IS_INVAL` 2, `ENTRY_IS_PTE` 3, `ENTRY_ATTR_BITS` 4:2, `ENTRY_RD_BIT` 6,
//! `ENTRY_WR_BIT` 7, `ENTRY_SHARE_BITS` 9:8, `ENTRY_NX_BIT` 54). Newer (CSF) GPUs driven
//! by panthor use the AArch64 format instead ([`ArmLpae`](crate::fmt::arm_lpae::ArmLpae)
//! stage 1, with a `TRANSCFG` word), not this one.
//!
//! # Geometry
//! The LPAE 4K-granule tree ([`MaliLpae`] is [`Lpae`] with the [`Mali`] flavour): always
//! 4 levels and a 48-bit input (Linux: "Mali seems to need a full 4-level table
//! regardless of IAS"), every table 512 entries; leaves of 4 KiB (level 0), 2 MiB
//! (level 1) and 1 GiB (level 2); output addresses up to 40 bits. No contiguous runs:
//! the Mali entry bits (kbase's list) have no contiguous hint and Linux never writes
//! bit 52, so bit 52 is not interpreted.
//!
//! # Entries
//! | bits  | table entry | leaf (any level)                                            |
//! |-------|-------------|-------------------------------------------------------------|
//! | 1:0   | 0b11        | 0b01, at the last level too (0b11 there is not a leaf)      |
//! | 4:2   |             | MEMATTR index: 2 for `MMIO`, 1 for `CACHE`, else 0         |
//! | 6     |             | read allowed (`READ`)                                       |
//! | 7     |             | write allowed (`WRITE`)                                     |
//! | 9:8   |             | shareability: always 0b10 (outer, i.e. outside the GPU)    |
//! | 10    |             | access flag: never set (Linux leaves it clear for Mali)    |
//! | 47:12 | table address | output address (at most 40 bits)                          |
//! | 53, 54 |            | no-execute (`NOEXEC`); the GPU reads bit 54, Linux sets both |
//!
//! An entry with bit 0 clear is empty (kbase fills empty entries with 0b10, Linux with
//! zero; both decode as empty). Permissions are the stage-2-like read and write bits, so
//! write-only mappings exist; `PRIV` has no meaning and is ignored. A mapping asking for
//! both `MMIO` and `CACHE` gets the device index (as in Linux) and reads back as `MMIO`.
//! Mali's inner domain is the GPU's own cores, so even `CACHE` mappings are outer
//! shareable (Linux's rule).
//!
//! # Hardware words
//! - `TRANSTAB` = root | READ_INNER (bit 2) | ADRMODE_TABLE (0b11), plus SHARE_OUTER
//!   (bit 4) when [`MaliLpaeConfig::coherent_walk`];
//! - `MEMATTR` = one byte per index: 0 and 2 `0x88` (implementation-defined caching
//!   policy), 1 `0x8d` (write-allocate): `0x888d88`;
//! - `TRANSCFG` = 0 (ADRMODE_LEGACY: the mode comes from `TRANSTAB`), which panfrost
//!   writes on GPUs that have the register.
//!
//! Not implemented: Linux refuses every io-pgtable quirk for Mali (no NS bits), and
//! there are no stage-2 or TTBR1 variants.
//!
//! # No dirty tracking
//! Mali GPUs have no hardware dirty state: their MMU has no dirty bit modifier (DBM)
//! and never writes the tables, and Linux refuses `IO_PGTABLE_QUIRK_ARM_HD` for Mali.
//! [`PageTable::read_and_clear_dirty`](crate::PageTable::read_and_clear_dirty) and
//! [`PageTable::set_dirty_tracking`](crate::PageTable::set_dirty_tracking) refuse
//! these tables with [`Error::NoDirtyTracking`].

use crate::fmt::arm_lpae::{
    ArmLpaeConfig, DESC_PXN, DESC_TYPE_BLOCK, DESC_UXN, Flavour, Granule, Lpae, MAIR_IDX_CACHE,
    MAIR_IDX_DEV, MAIR_IDX_NC, S1_ATTRIDX_MASK, S1_ATTRIDX_SHIFT, S2_AP_READ, S2_AP_WRITE,
    SH_OUTER, SH_SHIFT, Stage, attr_index, sealed,
};
use crate::format::HwWords;
use crate::{Error, Prot};

/// The Mali flavour of [`Lpae`]: see [`MaliLpae`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mali;

impl sealed::Sealed for Mali {}

/// The Mali LPAE GPU format (`mali`); see the [module documentation](self).
pub type MaliLpae = Lpae<Mali>;

/// TRANSTAB: translation-table walks (ADRMODE_TABLE).
const TRANSTAB_ADRMODE_TABLE: u64 = 0b11;
/// TRANSTAB: table walks read through the inner cache.
const TRANSTAB_READ_INNER: u64 = 1 << 2;
/// TRANSTAB: table walks are outer shareable (coherent).
const TRANSTAB_SHARE_OUTER: u64 = 1 << 4;
/// MEMATTR byte: implementation-defined caching policy (Mali has no non-cacheable type).
const MEMATTR_IMP_DEF: u64 = 0x88;
/// MEMATTR byte: write-allocate.
const MEMATTR_WRITE_ALLOC: u64 = 0x8d;
/// TRANSCFG: legacy address mode.
const TRANSCFG_ADRMODE_LEGACY: u64 = 0;

impl Flavour for Mali {
    const NAME: &'static str = "mali";
    const PAGE_TYPE: u64 = DESC_TYPE_BLOCK;
    const CONTIGUOUS: bool = false;
    /// No DBM, no hardware dirty state (see the module documentation).
    const DIRTY: bool = false;

    #[inline]
    fn prot_bits(_f: &Lpae<Self>, prot: Prot) -> u64 {
        let mut pte = attr_index(prot) << S1_ATTRIDX_SHIFT | SH_OUTER << SH_SHIFT;
        if prot.contains(Prot::READ) {
            pte |= S2_AP_READ;
        }
        if prot.contains(Prot::WRITE) {
            pte |= S2_AP_WRITE;
        }
        if prot.contains(Prot::NOEXEC) {
            pte |= DESC_UXN | DESC_PXN;
        }
        pte
    }

    #[inline]
    fn leaf_prot(_f: &Lpae<Self>, pte: u64) -> Prot {
        let mut prot = Prot::empty();
        if pte & S2_AP_READ != 0 {
            prot |= Prot::READ;
        }
        if pte & S2_AP_WRITE != 0 {
            prot |= Prot::WRITE;
        }
        match (pte & S1_ATTRIDX_MASK) >> S1_ATTRIDX_SHIFT {
            MAIR_IDX_DEV => prot |= Prot::MMIO,
            MAIR_IDX_CACHE => prot |= Prot::CACHE,
            _ => {}
        }
        if pte & DESC_UXN != 0 {
            prot |= Prot::NOEXEC;
        }
        prot
    }

    fn hw_words(f: &Lpae<Self>, root_pa: u64, _top_level: u32, _tracking: bool) -> HwWords {
        let mut w = HwWords::new();
        let mut transtab = root_pa | TRANSTAB_READ_INNER | TRANSTAB_ADRMODE_TABLE;
        if f.cfg().coherent_walk {
            transtab |= TRANSTAB_SHARE_OUTER;
        }
        let memattr = MEMATTR_IMP_DEF << (8 * MAIR_IDX_NC)
            | MEMATTR_WRITE_ALLOC << (8 * MAIR_IDX_CACHE)
            | MEMATTR_IMP_DEF << (8 * MAIR_IDX_DEV);
        w.push("TRANSTAB", transtab);
        w.push("MEMATTR", memattr);
        w.push("TRANSCFG", TRANSCFG_ADRMODE_LEGACY);
        w
    }
}

/// Configuration of a [`MaliLpae`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaliLpaeConfig {
    /// Output (physical) address size in bits, 32..=40.
    pub oas: u32,
    /// The GPU's table walks are coherent with the CPU caches (TRANSTAB SHARE_OUTER;
    /// panfrost sets it for `dma-coherent` GPUs).
    pub coherent_walk: bool,
}

impl Default for MaliLpaeConfig {
    /// 40-bit output, non-coherent walks (most SoCs with these GPUs are not coherent).
    fn default() -> Self {
        MaliLpaeConfig {
            oas: 40,
            coherent_walk: false,
        }
    }
}

impl MaliLpae {
    /// Builds the format, checking the configuration.
    ///
    /// # Errors
    /// [`Error::BadConfig`] when `oas` is not 32..=40.
    pub fn new(cfg: MaliLpaeConfig) -> Result<Self, Error> {
        if !(32..=40).contains(&cfg.oas) {
            return Err(Error::BadConfig("oas must be 32..=40"));
        }
        Self::build(ArmLpaeConfig {
            stage: Stage::S1,
            granule: Granule::K4,
            ias: 48,
            oas: cfg.oas,
            contiguous: false,
            coherent_walk: cfg.coherent_walk,
            ttbr1: false,
            ns: false,
            dirty_tracking: false,
            // Mali documents no break-before-make level: cuts need break-before-make.
            bbm_level: 0,
        })
    }
}
