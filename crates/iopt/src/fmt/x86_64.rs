//! x86-64 4-level and 5-level paging, as used by the VT-d first stage and by AMD IOMMU
//! v2 (guest) page tables (Intel SDM Vol. 3 "4-Level Paging and 5-Level Paging"; VT-d
//! specification "First-Stage Paging Entries"; AMD IOMMU specification "I/O Page
//! Tables for Guest Translations"; Linux `drivers/iommu/generic_pt/fmt/x86_64.h`).
//!
//! # Geometry
//! Every table is one 4 KiB page of 512 eight-byte entries. Level 0 is the page table
//! (PTEs, 4 KiB), level 1 the page directory (PDEs, 2 MiB), level 2 the page-directory
//! pointer table (PDPTEs, 1 GiB), level 3 the PML4 (512 GiB) and level 4 the PML5
//! (256 TiB). Four levels translate 48 IOVA bits, five levels 57.
//!
//! By default the IOVA space is sign-extended, like a CPU's canonical addresses (what
//! the VT-d first stage needs): the lower half `0 ..= 2^47 - 1` (or `2^56 - 1`) and the
//! same size at the top of the 64-bit space. With [`X86_64Config::sign_extend`] off
//! the table only translates the lower 47 (or 56) bits, as Linux's AMD driver does so
//! that one table works both on PASID 0 (where AMD hardware does not sign-extend) and
//! on other PASIDs.
//!
//! # Entries
//! | bit   | name | use here                                                  |
//! |-------|------|-----------------------------------------------------------|
//! | 0     | P    | present                                                   |
//! | 1     | R/W  | writable (`WRITE`); tables always have it                 |
//! | 2     | U/S  | user; Linux sets it in every entry                        |
//! | 3, 4  | PWT, PCD | never set (Linux ignores `CACHE` and `MMIO`)          |
//! | 5     | A    | accessed; Linux presets it in every entry                 |
//! | 6     | D    | dirty; preset in writable leaves unless dirty tracking is on |
//! | 7     | PS   | page size: set in 2 MiB and 1 GiB leaves                  |
//! | 51:12 | address | table or page address                                  |
//! | 63    | XD   | execute disable; never set (Linux ignores `NOEXEC`)       |
//!
//! Table entries are `P | R/W | U/S | A | address` (`0x27 | pa`). Leaves are
//! `P | U/S | A | address`, plus `R/W | D` for `WRITE` and `PS` above level 0. Reads
//! are always allowed by a present entry, so `WRITE` alone maps read-write.
//! [`Format::leaf_prot`] reports `READ`, `WRITE` if R/W, `NOEXEC` if XD and `PRIV` if
//! U/S is clear.
//!
//! Leaves exist at levels 0..=2 only (4 KiB, 2 MiB, 1 GiB; no 512 GiB pages), one
//! entry each: there are no contiguous runs.
//!
//! With [`X86_64Config::sme_c_bit`] (AMD memory encryption), the C-bit is set in every
//! table entry and leaf (Linux does not exempt `MMIO` leaves in this format) and in the
//! root pointer.
//!
//! # Dirty tracking
//! With [`X86_64Config::dirty_tracking`], writable leaves (4 KiB PTEs and PS=1 large
//! entries alike) are made with D clear, and the IOMMU sets D in the leaf it writes
//! through, as the architecture has it for first-stage tables: the VT-d first stage
//! (scalable-mode PASID entry with first-stage translation) and the AMD IOMMU's guest
//! (v2, GCR3) tables update A and D in memory with atomic operations; neither has an
//! enable bit for it, so the hardware words do not change with
//! [`PageTable::set_dirty_tracking`](crate::PageTable::set_dirty_tracking) (switching
//! tracking off only stops [`PageTable::read_and_clear_dirty`](crate::PageTable::read_and_clear_dirty)
//! from reporting). A dirty leaf has D set; cleaning clears D with a compare-and-swap.
//! Without dirty tracking D is preset in writable leaves (Linux's choice, which spares
//! the IOMMU the atomic update).
//!
//! Not implemented: 3-level (39-bit) tables (Linux can build them for small IOVA
//! widths, but neither IOMMU uses them), PAT/PCD/PWT memory types, the global bit,
//! protection keys, and an option not to preset A.

use crate::fmt::common::radix4k;
use crate::fmt::common::radix4k_geometry;
use crate::fmt::common::x86_ps::{self, MAX_LEAF_LEVEL, PS};
use crate::fmt::common::{addr_mask, sign_extended_va_bits, sign_extended_va_mode};
use crate::format::{Format, HwWords, Pte, VaMode};
use crate::{Error, Prot, Result};

/// Present.
const P: u64 = 1 << 0;
/// Writable.
const RW: u64 = 1 << 1;
/// User/supervisor: set means user accesses are allowed.
const US: u64 = 1 << 2;
/// Accessed.
const A: u64 = 1 << 5;
/// Dirty.
const D: u64 = 1 << 6;
/// Address field, bits 51:12.
const ADDR_MASK: u64 = addr_mask(12, 51);
/// Execute disable.
const XD: u64 = 1 << 63;

/// Configuration of an [`X86_64`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X86_64Config {
    /// Levels, 4 or 5. Default 4.
    pub levels: u32,
    /// Output (physical) address width, 32..=52. Default 52.
    pub oa_bits: u32,
    /// Sign-extended IOVA space (48 or 57 bits, lower and upper halves), as the VT-d
    /// first stage uses it. When `false`, only the lower 47 or 56 bits are translated,
    /// as Linux's AMD v2 driver does. Default `true`.
    pub sign_extend: bool,
    /// AMD memory encryption (SME) C-bit position, if the table memory is encrypted.
    /// Must lie in `oa_bits..=51`. Default `None`.
    pub sme_c_bit: Option<u32>,
    /// Hardware dirty tracking: writable leaves are made with D clear and the IOMMU
    /// sets D on the first write through them (see the module documentation, "Dirty
    /// tracking"). Default `false`: D is preset in writable leaves, as Linux does.
    pub dirty_tracking: bool,
}

impl Default for X86_64Config {
    fn default() -> Self {
        X86_64Config {
            levels: 4,
            oa_bits: 52,
            sign_extend: true,
            sme_c_bit: None,
            dirty_tracking: false,
        }
    }
}

/// The x86-64 4/5-level page table format (`x86-64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X86_64 {
    levels: u32,
    oa_bits: u32,
    sign_extend: bool,
    /// The C-bit mask, or 0.
    c_bit: u64,
    /// The address field without the C-bit (precomputed for decode).
    addr_mask: u64,
    /// D preset in writable leaves: `D` without dirty tracking, else 0.
    preset_d: u64,
}

impl X86_64 {
    /// Validates `cfg` and builds the format.
    ///
    /// # Errors
    /// [`Error::BadConfig`] naming the violated limit.
    pub fn new(cfg: X86_64Config) -> Result<Self> {
        if !(4..=5).contains(&cfg.levels) {
            return Err(Error::BadConfig("levels must be 4 or 5"));
        }
        if !(32..=52).contains(&cfg.oa_bits) {
            return Err(Error::BadConfig("oa_bits must be 32..=52"));
        }
        let c_bit = match cfg.sme_c_bit {
            None => 0,
            Some(b) if b >= cfg.oa_bits && b <= 51 => 1u64 << b,
            Some(_) => return Err(Error::BadConfig("sme_c_bit must be oa_bits..=51")),
        };
        Ok(X86_64 {
            levels: cfg.levels,
            oa_bits: cfg.oa_bits,
            sign_extend: cfg.sign_extend,
            c_bit,
            addr_mask: ADDR_MASK & !c_bit,
            preset_d: if cfg.dirty_tracking { 0 } else { D },
        })
    }
}

impl Format for X86_64 {
    const NAME: &'static str = "x86-64";
    const ENTRY_LG2: u32 = 3;
    const MAX_LEVELS: u32 = 5;
    const OA_IN_PLACE: bool = true;
    const FIXED_GEOMETRY: bool = true;

    #[inline]
    fn levels(&self) -> u32 {
        self.levels
    }

    /// 48 or 57 bits when sign-extended (the sign bit included), 47 or 56 otherwise.
    #[inline]
    fn va_bits(&self, top_level: u32) -> u32 {
        sign_extended_va_bits(radix4k::va_bits(top_level), self.sign_extend)
    }

    #[inline]
    fn va_mode(&self) -> VaMode {
        sign_extended_va_mode(self.sign_extend)
    }

    #[inline]
    fn oa_bits(&self) -> u32 {
        self.oa_bits
    }

    radix4k_geometry!(full_tables);

    #[inline]
    fn leaf_runs(&self, level: u32) -> u32 {
        if level <= MAX_LEAF_LEVEL && self.item_lg2(level) < self.oa_bits {
            1
        } else {
            0
        }
    }

    #[inline]
    fn plain_leaf_pattern(&self, level: u32) -> (u64, u64) {
        // Present, and at the levels that have large pages, PS.
        match level {
            0 => (P, P),
            l if l <= x86_ps::MAX_LEAF_LEVEL => (P | x86_ps::PS, P | x86_ps::PS),
            _ => (0, 1),
        }
    }

    #[inline]
    fn decode(&self, level: u32, pte: u64) -> Pte {
        if pte & P == 0 {
            return Pte::Empty;
        }
        let addr = pte & self.addr_mask;
        if x86_ps::is_leaf(level, pte) {
            // Address bits below the page size (PAT at bit 12 in large pages) are not
            // part of the output address.
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
        let mut prot = Prot::READ;
        if pte & RW != 0 {
            prot |= Prot::WRITE;
        }
        if pte & XD != 0 {
            prot |= Prot::NOEXEC;
        }
        if pte & US == 0 {
            prot |= Prot::PRIV;
        }
        prot
    }

    /// Hitless: the SDM (Vol. 3A, 4.10.2.3 and 4.10.4) lets the TLBs hold a large-page
    /// and a 4K translation of the same address at once, and a replacement that keeps
    /// the output address and attributes gives the same answer from either; the IOMMUs
    /// walking this format (VT-d first stage, AMD v2) follow the same paging rules.
    #[inline]
    fn cut_hitless(&self) -> bool {
        true
    }

    #[inline]
    fn make_table(&self, _level: u32, table_pa: u64) -> u64 {
        P | RW | US | A | (table_pa & ADDR_MASK) | self.c_bit
    }

    #[inline]
    fn make_leaf(&self, level: u32, pa: u64, _run_lg2: u32, prot: Prot) -> u64 {
        let mut pte = P | US | A | (pa & ADDR_MASK) | self.c_bit;
        if prot.contains(Prot::WRITE) {
            pte |= RW | self.preset_d;
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

    /// `CR3`: the root table's address (the VT-d PASID entry's first-stage pointer, or
    /// AMD's GCR3 table entry), with the C-bit when the tables are encrypted. `FLPM`:
    /// the VT-d PASID entry's first-stage paging mode (AMD's guest paging mode uses the
    /// same values): 0 for 4 levels, 1 for 5 levels.
    fn hw_words(&self, root_pa: u64, top_level: u32) -> HwWords {
        let mut w = HwWords::new();
        w.push("CR3", root_pa | self.c_bit);
        w.push("FLPM", u64::from(top_level.saturating_sub(3)));
        w
    }

    #[inline]
    fn tracks_dirty(&self) -> bool {
        self.preset_d == 0
    }

    /// D is set (in a 4 KiB PTE, or a 2 MiB / 1 GiB leaf with PS).
    #[inline]
    fn leaf_dirty(&self, _level: u32, pte: u64) -> bool {
        pte & D != 0
    }

    /// The leaf with D cleared (A is left as it is).
    #[inline]
    fn leaf_clean(&self, _level: u32, pte: u64) -> u64 {
        pte & !D
    }

    /// D set in a writable leaf (the IOMMU only sets D on a write, which needs R/W).
    #[inline]
    fn leaf_mark_dirty(&self, _level: u32, pte: u64) -> u64 {
        if pte & RW != 0 { pte | D } else { pte }
    }

    /// D set, writable or not (a read-only leaf keeps the record of earlier writes).
    #[inline]
    fn leaf_carry_dirty(&self, _level: u32, pte: u64) -> u64 {
        pte | D
    }

    /// The IOMMU sets D in first-stage leaves whatever the configuration (there is no enable).
    #[inline]
    fn hw_records_dirty(&self, _tracking: bool) -> bool {
        true
    }
}
