//! Intel VT-d second-stage page tables (Intel Virtualization Technology for Directed
//! I/O Architecture Specification, "Second-Stage Translation" and "Second-Stage Paging
//! Entries"; Linux `drivers/iommu/generic_pt/fmt/vtdss.h` and the `DMA_PTE_*`,
//! `cap_*`, `ecap_*` and PASID-entry definitions under `drivers/iommu/intel/`).
//!
//! The second stage is the VT-d table format that predates the x86-64-compatible first
//! stage: legacy-mode context entries and scalable-mode PASID entries with a translation
//! type of "second stage only" or "nested" point to it. It is the table a hypervisor
//! builds for a VM's devices (guest-physical to host-physical), and the one that carries
//! hardware dirty tracking for live migration.
//!
//! # Geometry
//! Every table is one 4 KiB page of 512 eight-byte entries (the same radix tree as
//! x86-64 paging): level 0 is the SS-PTE table (4 KiB), level 1 the SS-PDE table
//! (2 MiB), level 2 the SS-PDPTE table (1 GiB), level 3 the SS-PML4E table (512 GiB)
//! and level 4 the SS-PML5E table (256 TiB). Three, four or five levels translate 39,
//! 48 or 57 IOVA bits, zero-extended (the IOVA space starts at 0; there is no
//! sign extension). The hardware calls this width the adjusted guest address width
//! (AGAW); which ones an IOMMU can walk is in its capability register, `CAP.SAGAW`
//! (bits 12:8): bit 1 for 3 levels, bit 2 for 4, bit 3 for 5. The same number goes
//! into the context or PASID entry's *AW* field (see [`Format::hw_words`]).
//!
//! Leaves: 4 KiB pages at level 0, 2 MiB pages at level 1 and 1 GiB pages at level 2,
//! one entry each (no contiguous runs). The large pages are capabilities of the IOMMU
//! (`CAP.SLLPS`, bits 37:34: bit 34 for 2 MiB, bit 35 for 1 GiB), hence
//! [`VtdSsConfig::large_2m`] and [`VtdSsConfig::large_1g`].
//!
//! # Entries
//! | bit   | name    | use here                                                     |
//! |-------|---------|--------------------------------------------------------------|
//! | 0     | R       | read permission; tables always have it                       |
//! | 1     | W       | write permission; tables always have it                      |
//! | 2     | X       | execute permission; never set (see below)                    |
//! | 5:3   | EMT     | extended memory type; never set (as Linux)                   |
//! | 6     | IPAT    | ignore PAT; never set (as Linux)                             |
//! | 7     | PS      | page size: set in 2 MiB and 1 GiB leaves                     |
//! | 8     | A       | accessed: set by hardware when `SSADE` is on; ignored        |
//! | 9     | D       | dirty: set by hardware on writes when `SSADE` is on          |
//! | 10    | -       | ignored by hardware: available to software                   |
//! | 11    | SNP     | snoop: force snooped (coherent) accesses                     |
//! | 51:12 | address | table or page address (bits above the IOMMU's host address width are reserved) |
//! | 61:52 | -       | ignored by hardware: available to software                   |
//! | 62    | -       | reserved (transient-mapping hint in older revisions)         |
//! | 63    | -       | ignored by hardware: available to software                   |
//!
//! There is **no present bit**: hardware treats an entry with neither R nor W as not
//! present, and this format (like Linux) treats an entry as empty exactly when it is
//! zero. So every entry it writes has R or W: table entries are `R | W | address`
//! (`0x3 | pa`; the hardware ANDs the permissions of the whole walk, so only the leaf
//! decides), and a leaf needs `READ` or `WRITE` (the engine refuses other `Prot`s).
//! Software bits must therefore only be set in entries that are otherwise valid.
//!
//! Leaves are `address | R? | W? | SNP? | PS?`: `READ` sets R and `WRITE` sets W (a
//! write-only mapping is expressible), PS above level 0, and SNP when
//! [`VtdSsConfig::force_coherence`] is on. `Prot::CACHE` does not set SNP by itself:
//! current Linux sets SNP only for a domain that enforces cache coherency as a whole
//! (`force_snooping`), which is the configuration option here. `NOEXEC`, `PRIV` and
//! `MMIO` have no bit and are ignored, as in Linux. [`Format::leaf_prot`] reports R as
//! `READ`, W as `WRITE` and SNP as `CACHE`.
//!
//! # Software bits
//! Bits 10, 52..=61 and 63 ([`VtdSs::SW_BITS`]) are ignored by the hardware in every
//! second-stage entry (Linux's `vtdss_pt_sw_bit` hands out 10, 52..=60 and 63). The
//! format never sets them and [`Format::decode`] ignores them, so software may keep its
//! own state there (through the raw table memory; the engine has no API for it).
//!
//! # Dirty tracking
//! When the PASID entry's `SSADE` bit (bit 9 of its first quadword; the IOMMU reports
//! support in `ECAP.SSADS`, bit 45) is set, the IOMMU sets A in the entries it walks
//! and D in a leaf it writes through. With [`VtdSsConfig::dirty_tracking`] the format
//! reports that ([`Format::tracks_dirty`]), so that
//! [`PageTable::read_and_clear_dirty`](crate::PageTable::read_and_clear_dirty) can
//! read and clear D; [`Format::hw_words`] then asks for `SSADE = 1`. Dirty tracking
//! needs an IOMMU that snoops its table walks: with an incoherent walker the CPU would
//! not see the hardware's D updates (Linux does not combine the two either).
//! [`PageTable::set_dirty_tracking`](crate::PageTable::set_dirty_tracking) changes no
//! entry: switched off, the hardware words ask for `SSADE = 0` (Linux's
//! `intel_pasid_setup_dirty_tracking` toggles the same bit), switched on again, 1.
//!
//! Not implemented, and why:
//! - the X bit: Linux never sets it and does not enable execute requests for the second
//!   stage, so `NOEXEC` is ignored;
//! - EMT/IPAT memory types: Linux never sets them (they matter only for nested
//!   translation with memory-type support enabled in the PASID entry);
//! - Linux's `FORCE_WRITEABLE` quirk (refusing read-only maps on a nesting parent,
//!   hardware erratum): a format cannot refuse a map; a driver that needs it checks
//!   `Prot` itself.

use crate::fmt::common::addr_mask;
use crate::fmt::common::radix4k;
use crate::fmt::common::radix4k_geometry;
use crate::fmt::common::x86_ps::{self, MAX_LEAF_LEVEL, PS};
use crate::format::{Format, HwWords, Pte, VaMode};
use crate::{Error, Prot, Result};

/// Read permission.
const R: u64 = 1 << 0;
/// Write permission.
const W: u64 = 1 << 1;
/// Dirty (set by hardware when SSADE is on).
const D: u64 = 1 << 9;
/// Snoop: force coherent accesses.
const SNP: u64 = 1 << 11;
/// Address field, bits 51:12.
const ADDR_MASK: u64 = addr_mask(12, 51);

/// Configuration of a [`VtdSs`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VtdSsConfig {
    /// Levels: 3 (39-bit IOVA), 4 (48-bit) or 5 (57-bit). The IOMMU must list the width
    /// in `CAP.SAGAW`. Default 4.
    pub levels: u32,
    /// Output (host physical) address width, 32..=52: the platform's host address width
    /// (the ACPI DMAR table's HAW). Default 52.
    pub oa_bits: u32,
    /// 2 MiB pages (`CAP.SLLPS` bit 0). Default `true`.
    pub large_2m: bool,
    /// 1 GiB pages (`CAP.SLLPS` bit 1). Default `true`.
    pub large_1g: bool,
    /// Set SNP in every leaf, so that the device's accesses snoop the CPU caches even
    /// when it asks for no-snoop (Linux's `force_snooping`, for domains that enforce
    /// cache coherency; needs `ECAP.SC`). Default `false`, as a Linux domain starts.
    pub force_coherence: bool,
    /// Hardware dirty tracking: the PASID entry will have `SSADE` set (needs
    /// `ECAP.SSADS`, and a walker that snoops the CPU caches). Default `false`.
    pub dirty_tracking: bool,
}

impl Default for VtdSsConfig {
    fn default() -> Self {
        VtdSsConfig {
            levels: 4,
            oa_bits: 52,
            large_2m: true,
            large_1g: true,
            force_coherence: false,
            dirty_tracking: false,
        }
    }
}

/// The Intel VT-d second-stage page table format (`vtd-ss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VtdSs {
    levels: u32,
    oa_bits: u32,
    /// `leaf_runs` per leaf level (1: allowed, 0: not).
    leaves: [u32; 3],
    /// SNP, or 0.
    snp: u64,
    dirty_tracking: bool,
}

impl VtdSs {
    /// The bits that the hardware ignores in every second-stage entry and that this
    /// format never sets: bit 10, bits 52..=61 and bit 63.
    pub const SW_BITS: u64 = (1 << 10) | addr_mask(52, 61) | (1 << 63);

    /// Validates `cfg` and builds the format.
    ///
    /// # Errors
    /// [`Error::BadConfig`] naming the violated limit.
    pub fn new(cfg: VtdSsConfig) -> Result<Self> {
        if !(3..=5).contains(&cfg.levels) {
            return Err(Error::BadConfig("levels must be 3, 4 or 5"));
        }
        if !(32..=52).contains(&cfg.oa_bits) {
            return Err(Error::BadConfig("oa_bits must be 32..=52"));
        }
        Ok(VtdSs {
            levels: cfg.levels,
            oa_bits: cfg.oa_bits,
            leaves: [1, u32::from(cfg.large_2m), u32::from(cfg.large_1g)],
            snp: if cfg.force_coherence { SNP } else { 0 },
            dirty_tracking: cfg.dirty_tracking,
        })
    }
}

impl Format for VtdSs {
    const NAME: &'static str = "vtd-ss";
    const ENTRY_LG2: u32 = 3;
    const MAX_LEVELS: u32 = 5;
    const OA_IN_PLACE: bool = true;
    const FIXED_GEOMETRY: bool = true;

    #[inline]
    fn levels(&self) -> u32 {
        self.levels
    }

    /// 39, 48 or 57 bits for a top at level 2, 3 or 4.
    #[inline]
    fn va_bits(&self, top_level: u32) -> u32 {
        radix4k::va_bits(top_level)
    }

    #[inline]
    fn va_mode(&self) -> VaMode {
        VaMode::Low
    }

    #[inline]
    fn oa_bits(&self) -> u32 {
        self.oa_bits
    }

    radix4k_geometry!(full_tables);

    #[inline]
    fn leaf_runs(&self, level: u32) -> u32 {
        if level <= MAX_LEAF_LEVEL {
            self.leaves[level as usize]
        } else {
            0
        }
    }

    /// Zero is empty; anything else is a table or a page (PS, or level 0).
    #[inline]
    fn plain_leaf_pattern(&self, level: u32) -> (u64, u64) {
        // Readable (any non-zero entry is in use; R is what our leaves carry), and PS
        // above level 0.
        match level {
            0 => (R, R),
            l if l <= x86_ps::MAX_LEAF_LEVEL => (R | x86_ps::PS, R | x86_ps::PS),
            _ => (0, 1),
        }
    }

    #[inline]
    fn decode(&self, level: u32, pte: u64) -> Pte {
        if pte == 0 {
            return Pte::Empty;
        }
        let addr = pte & ADDR_MASK;
        if x86_ps::is_leaf(level, pte) {
            // Address bits below the page size are reserved in large leaves.
            Pte::Leaf {
                pa: addr & !((1u64 << self.item_lg2(level)) - 1),
                run_lg2: 0,
            }
        } else {
            Pte::Table { pa: addr }
        }
    }

    #[inline]
    fn leaf_prot(&self, _level: u32, pte: u64) -> Prot {
        let mut prot = Prot::empty();
        if pte & R != 0 {
            prot |= Prot::READ;
        }
        if pte & W != 0 {
            prot |= Prot::WRITE;
        }
        if pte & SNP != 0 {
            prot |= Prot::CACHE;
        }
        prot
    }

    #[inline]
    fn make_table(&self, _level: u32, table_pa: u64) -> u64 {
        R | W | (table_pa & ADDR_MASK)
    }

    #[inline]
    fn make_leaf(&self, level: u32, pa: u64, _run_lg2: u32, prot: Prot) -> u64 {
        let mut pte = (pa & ADDR_MASK) | self.snp;
        if prot.contains(Prot::READ) {
            pte |= R;
        }
        if prot.contains(Prot::WRITE) {
            pte |= W;
        }
        if level != 0 {
            pte |= PS;
        }
        pte
    }

    /// No runs; each entry holds its own address, so the step is the entry size.
    #[inline]
    fn run_step(&self, level: u32, _run_lg2: u32) -> u64 {
        1u64 << self.item_lg2(level)
    }

    /// `SSPTPTR`: the root table's address, as written into the scalable-mode PASID
    /// entry (bits 63:12 of its first quadword; the legacy context entry's
    /// second-level pointer has the same layout). `AW`: the entry's address-width
    /// field (bits 4:2 of the PASID entry, bits 66:64 of the context entry): 1, 2 or 3
    /// for 3, 4 or 5 levels, the `CAP.SAGAW` bit the IOMMU must have. `SSADE`: the
    /// PASID entry's second-stage accessed/dirty enable (bit 9), 1 with dirty tracking.
    fn hw_words(&self, root_pa: u64, top_level: u32) -> HwWords {
        self.hw_words_tracking(root_pa, top_level, self.dirty_tracking)
    }

    /// `SSADE` = 1 only while tracking is on (Linux's
    /// `intel_pasid_setup_dirty_tracking` toggles it); the entries do not change.
    fn hw_words_tracking(&self, root_pa: u64, top_level: u32, tracking: bool) -> HwWords {
        let mut w = HwWords::new();
        w.push("SSPTPTR", root_pa);
        w.push("AW", u64::from(top_level.saturating_sub(1)));
        w.push("SSADE", u64::from(self.dirty_tracking && tracking));
        w
    }

    #[inline]
    fn tracks_dirty(&self) -> bool {
        self.dirty_tracking
    }

    #[inline]
    fn leaf_dirty(&self, _level: u32, pte: u64) -> bool {
        pte & D != 0
    }

    #[inline]
    fn leaf_clean(&self, _level: u32, pte: u64) -> u64 {
        pte & !D
    }

    /// D set in a writable leaf (the IOMMU only sets D on a write, which needs W).
    #[inline]
    fn leaf_mark_dirty(&self, _level: u32, pte: u64) -> u64 {
        if pte & W != 0 { pte | D } else { pte }
    }

    /// D set, writable or not (a read-only leaf keeps the record of earlier writes).
    #[inline]
    fn leaf_carry_dirty(&self, _level: u32, pte: u64) -> u64 {
        pte | D
    }
}
