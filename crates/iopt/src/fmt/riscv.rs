//! RISC-V Sv39, Sv48 and Sv57 page tables, as the RISC-V IOMMU walks them for first-stage
//! (`iosatp`) translation: the same page-table entries a RISC-V hart uses for supervisor
//! virtual memory (RISC-V Privileged Architecture, "Sv39/Sv48/Sv57: Page-Based
//! 39/48/57-bit Virtual-Memory System", "Svnapot" and "Svpbmt" extensions, "Svadu"; RISC-V
//! IOMMU Architecture Specification, "Device-context" `fsc`/`iosatp` and first-stage
//! address translation; Linux `drivers/iommu/generic_pt/fmt/riscv.h` and
//! `drivers/iommu/riscv/iommu.c`).
//!
//! # Geometry
//! Every table is one 4 KiB page of 512 eight-byte entries. Level 0 entries span 4 KiB,
//! level 1 2 MiB ("megapages"), level 2 1 GiB ("gigapages"), level 3 512 GiB
//! ("terapages") and level 4 256 TiB ("petapages"). Sv39 has 3 levels, Sv48 4 and Sv57 5
//! ([`RiscvConfig::levels`]); the privileged specification numbers a walk's steps
//! `i = LEVELS - 1 .. 0`, which is this crate's level `i`.
//!
//! Any level may hold a leaf, the top included: Linux's generic page table
//! (`riscvpt_can_have_leaf`) offers every level's size, so Sv48 tables have 512 GiB
//! pages and Sv57 tables 256 TiB ones. (The RISC-V IOMMU driver before it moved to the
//! generic page table advertised 4K, 2M, 1G and 512G only; this crate follows the
//! current code and the specification, which allow them all.) Leaf sizes not below
//! 2^[`oa_bits`](RiscvConfig::oa_bits) are left out.
//!
//! With [`RiscvConfig::svnapot`] (the IOMMU specification requires Svnapot, and Linux
//! always turns it on), a 64 KiB page is a *NAPOT run*: 16 naturally aligned level-0
//! entries holding the very same value, with N (bit 63) set and the low four bits of the
//! PPN set to `0b1000` (the 64 KiB size code; the real PPN of a 64 KiB-aligned page has
//! zeros there). The run steps by 0 ([`Format::run_step`]) and [`Format::decode`] of any
//! of its entries gives the run's base address. 64 KiB is the only NAPOT size the
//! specification defines; the other size codes and N above level 0 are reserved.
//!
//! IOVAs are sign-extended, like a hart's virtual addresses (the IOMMU faults on an IOVA
//! whose bits above the translated width do not all equal its top translated bit): the
//! lower `2^(va-1)` bytes and the same size at the top of the 64-bit space, where `va`
//! is 39, 48 or 57. Linux's driver builds its tables so (`PT_FEAT_SIGN_EXTEND`). With
//! [`RiscvConfig::sign_extend`] off, only the lower half is used, which is what Linux's
//! RISC-V IOMMU driver did before the generic page table (it limited the aperture to
//! `va - 1` bits because the DMA layer handed it no sign-extended IOVAs).
//!
//! # Entries
//! | bits  | name  | use here                                                        |
//! |-------|-------|-----------------------------------------------------------------|
//! | 0     | V     | valid                                                           |
//! | 1     | R     | readable; set in every leaf                                     |
//! | 2     | W     | writable (`WRITE`)                                              |
//! | 3     | X     | executable, unless `NOEXEC`                                     |
//! | 4     | U     | user: set unless `PRIV`                                         |
//! | 5     | G     | global; never set                                               |
//! | 6     | A     | accessed; preset in every leaf                                  |
//! | 7     | D     | dirty; preset in writable leaves unless dirty tracking is on   |
//! | 9:8   | RSW   | reserved for software; never set, ignored                       |
//! | 53:10 | PPN   | physical page number: address bits 55:12 (*not* in place)       |
//! | 60:54 | -     | reserved, zero                                                  |
//! | 62:61 | PBMT  | Svpbmt memory type (with [`RiscvConfig::svpbmt`]): 0 PMA, 1 NC, 2 IO |
//! | 63    | N     | Svnapot: part of a 64 KiB NAPOT run                             |
//!
//! An entry with V set and R = W = X = 0 points to the next-level table: a table entry is
//! `V | PPN` (`0x1 | pa >> 2`), nothing else, since D, A, U, PBMT and N are reserved in
//! non-leaf entries. Any other valid entry is a leaf; at level 0 every valid entry is
//! one (as Linux reads them; hardware would fault on a level-0 pointer).
//!
//! The output address is stored shifted (address bit 12 in PTE bit 10), so
//! [`Format::OA_IN_PLACE`] is false.
//!
//! # Permissions (as Linux's `riscvpt_iommu_set_prot`)
//! Every leaf gets V, R, A and U. `WRITE` adds W, and D unless
//! [`RiscvConfig::dirty_tracking`]. `W` without `R` is a reserved encoding, so write-only
//! mappings become read-write (Linux sets R with W). X is set unless `NOEXEC`: a
//! read-only mapping is readable and executable, as in Linux. `PRIV` clears U, so that
//! only privileged (S-mode) requests may use the mapping (transactions without a PASID
//! carrying "privileged mode requested" are U-mode for the IOMMU); Linux ignores
//! `IOMMU_PRIV` and always sets U, which is what every mapping without `PRIV` gets here.
//!
//! With [`RiscvConfig::svpbmt`] (Linux's `PT_FEAT_RISCV_SVPBMT`), `MMIO` selects the IO
//! memory type, otherwise a mapping without `CACHE` gets NC (non-cacheable) and one with
//! `CACHE` keeps PMA (the platform's attributes for that address). Without Svpbmt the
//! PBMT bits stay zero (they are reserved then) and `CACHE`/`MMIO` are ignored.
//!
//! [`Format::leaf_prot`] reports `READ` for R, `WRITE` for W, `NOEXEC` when X is clear,
//! `PRIV` when U is clear and, with Svpbmt, `CACHE` for PMA and `MMIO` for IO.
//!
//! # Accessed and dirty bits
//! An IOMMU without hardware A/D updating (`DC.tc.SADE` clear) faults on a leaf whose A
//! bit is clear, or on a write through a leaf whose D bit is clear. So, as Linux does,
//! every leaf is made with A set and every writable one with D set. With
//! [`RiscvConfig::dirty_tracking`] the IOMMU must update A and D itself (`DC.tc.SADE`
//! set, reported in [`Format::hw_words`]): writable leaves are then made with D clear
//! (A still preset, as Linux's earlier driver did when the IOMMU had `AMO_HWAD`), the
//! hardware sets D on the first write, and [`Format::leaf_dirty`] /
//! [`Format::leaf_clean`] read and clear it. The hardware may set A or D in any of the 16
//! entries of a NAPOT run (Svnapot leaves it to the implementation which alias it
//! updates), so a dirty scan must look at, and clean, all of them.
//!
//! [`PageTable::set_dirty_tracking`](crate::PageTable::set_dirty_tracking) changes no
//! entry, and `DC.tc.SADE` stays 1 while it is off: the leaves are made with D clear,
//! and an IOMMU that stopped updating D would fault on the first write through them.
//! Off only means that the table no longer reports; the hardware keeps marking.
//!
//! # Hardware words
//! [`Format::hw_words`] gives `iosatp` (the device or process context's `fsc` when it
//! holds a first-stage table): MODE in bits 63:60 (8 for Sv39, 9 for Sv48, 10 for Sv57)
//! and the root table's PPN in bits 43:0; the same value split into `iosatp.MODE` and
//! `iosatp.PPN`; and `DC.tc.SADE` = 1 when dirty tracking needs it.
//!
//! # Not implemented
//! Sv32 (32-bit entries, `DC.tc.SXL` = 1), the second-stage Sv39x4/Sv48x4/Sv57x4 formats
//! of `iohgatp` (16 KiB root tables, two more IOVA bits; Linux builds none), the G bit,
//! the software bits, NAPOT sizes other than 64 KiB (reserved), and rejecting reserved
//! encodings on decode: an entry with N set at level 0 reads as a 64 KiB run whatever
//! its size code, as in Linux; N above level 0 and the PBMT bits are ignored by
//! [`Format::decode`]; a misaligned superpage decodes with its low PPN bits dropped.
//! Hardware would fault on all of these; this crate never writes them.

use crate::fmt::common::radix4k::{self, PAGE_LG2};
use crate::fmt::common::radix4k_geometry;
use crate::fmt::common::{pfn_field, sign_extended_va_bits, sign_extended_va_mode};
use crate::format::{Format, HwWords, Pte, VaMode};
use crate::{Error, Prot, Result};

/// Valid.
const V: u64 = 1 << 0;
/// Readable.
const R: u64 = 1 << 1;
/// Writable.
const W: u64 = 1 << 2;
/// Executable.
const X: u64 = 1 << 3;
/// Accessible to U-mode (unprivileged) requests.
const U: u64 = 1 << 4;
/// Accessed.
const A: u64 = 1 << 6;
/// Dirty.
const D: u64 = 1 << 7;
/// The permission bits: all clear in a valid entry means a pointer to a table.
const RWX: u64 = R | W | X;
/// Lowest PTE bit of the PPN field (address bit 12).
const PPN_LO: u32 = 10;
/// Highest PTE bit of the PPN field (address bit 55).
const PPN_HI: u32 = 53;
/// Svpbmt memory type field, bits 62:61.
const PBMT_MASK: u64 = 0b11 << 61;
/// Svpbmt NC: non-cacheable, idempotent, weakly ordered main memory.
const PBMT_NC: u64 = 0b01 << 61;
/// Svpbmt IO: non-cacheable, non-idempotent, strongly ordered I/O memory.
const PBMT_IO: u64 = 0b10 << 61;
/// Svnapot: the leaf is part of a NAPOT run.
const N: u64 = 1 << 63;
/// The 64 KiB NAPOT size code: PPN bits 3:0 = `0b1000`, i.e. PTE bit 13.
const NAPOT_64K_CODE: u64 = 1 << (PPN_LO + 3);
/// log2 of the entries of a 64 KiB NAPOT run of 4 KiB entries.
const NAPOT_64K_RUN_LG2: u32 = 4;
/// Bit position of the MODE field of `iosatp`.
const IOSATP_MODE_SHIFT: u32 = 60;
/// `iosatp.MODE` minus the top level: Sv39 (top level 2) is 8, Sv48 9, Sv57 10.
const IOSATP_MODE_BIAS: u64 = 6;

/// Configuration of a [`Riscv`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiscvConfig {
    /// Levels: 3 (Sv39), 4 (Sv48) or 5 (Sv57). Default 4, the width of x86-64's and
    /// ARM64's usual IOVA spaces. (Linux's driver picks the widest mode the IOMMU's
    /// capabilities register offers.)
    pub levels: u32,
    /// Output (physical) address width, 32..=56. Default 56, the width of the PPN field.
    pub oa_bits: u32,
    /// Sign-extended IOVAs (both halves), as the IOMMU translates them. When `false`,
    /// only the lower half (38, 47 or 56 bits) is used. Default `true`.
    pub sign_extend: bool,
    /// Svnapot 64 KiB pages (16-entry NAPOT runs at level 0). Default `true`: the IOMMU
    /// specification requires Svnapot, and Linux always uses it.
    pub svnapot: bool,
    /// Svpbmt memory types in leaves (`MMIO` → IO, no `CACHE` → NC). Default `false`,
    /// as Linux's driver leaves it off. The IOMMU must implement Svpbmt.
    pub svpbmt: bool,
    /// Hardware dirty tracking: writable leaves are made with D clear, and the IOMMU
    /// must update A/D itself (`DC.tc.SADE` = 1). Default `false`: A and D are preset,
    /// as Linux does, and the IOMMU need not update them.
    pub dirty_tracking: bool,
}

impl Default for RiscvConfig {
    fn default() -> Self {
        RiscvConfig {
            levels: 4,
            oa_bits: 56,
            sign_extend: true,
            svnapot: true,
            svpbmt: false,
            dirty_tracking: false,
        }
    }
}

/// The RISC-V Sv39/Sv48/Sv57 page table format (`riscv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Riscv {
    levels: u32,
    oa_bits: u32,
    sign_extend: bool,
    svnapot: bool,
    svpbmt: bool,
    dirty_tracking: bool,
}

impl Riscv {
    /// Validates `cfg` and builds the format.
    ///
    /// # Errors
    /// [`Error::BadConfig`] naming the violated limit.
    pub fn new(cfg: RiscvConfig) -> Result<Self> {
        if !(3..=5).contains(&cfg.levels) {
            return Err(Error::BadConfig("levels must be 3, 4 or 5"));
        }
        if !(32..=56).contains(&cfg.oa_bits) {
            return Err(Error::BadConfig("oa_bits must be 32..=56"));
        }
        Ok(Riscv {
            levels: cfg.levels,
            oa_bits: cfg.oa_bits,
            sign_extend: cfg.sign_extend,
            svnapot: cfg.svnapot,
            svpbmt: cfg.svpbmt,
            dirty_tracking: cfg.dirty_tracking,
        })
    }

    /// The address in an entry's PPN field.
    #[inline]
    fn ppn_addr(pte: u64) -> u64 {
        pfn_field::decode(pte, PAGE_LG2, PPN_LO, PPN_HI)
    }

    /// The PPN field holding address `pa`.
    #[inline]
    fn ppn_of(pa: u64) -> u64 {
        pfn_field::encode(pa, PAGE_LG2, PPN_LO, PPN_HI)
    }
}

impl Format for Riscv {
    const NAME: &'static str = "riscv";
    const ENTRY_LG2: u32 = 3;
    const MAX_LEVELS: u32 = 5;
    const OA_IN_PLACE: bool = false;
    const FIXED_GEOMETRY: bool = true;

    #[inline]
    fn levels(&self) -> u32 {
        self.levels
    }

    /// 39, 48 or 57 bits when sign-extended (the sign bit included), 38, 47 or 56 for
    /// the lower half only.
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

    /// A single entry at every level whose size is below 2^`oa_bits`; at level 0 also
    /// 16-entry (64 KiB) NAPOT runs with Svnapot.
    #[inline]
    fn leaf_runs(&self, level: u32) -> u32 {
        if self.item_lg2(level) >= self.oa_bits {
            0
        } else if level == 0 && self.svnapot {
            1 | (1 << NAPOT_64K_RUN_LG2)
        } else {
            1
        }
    }

    #[inline]
    fn plain_leaf_pattern(&self, level: u32) -> (u64, u64) {
        // Valid and readable (so not a pointer), and at level 0 not a NAPOT run.
        let napot = if level == 0 && self.svnapot { N } else { 0 };
        (V | R | napot, V | R)
    }

    #[inline]
    fn decode(&self, level: u32, pte: u64) -> Pte {
        if pte & V == 0 {
            return Pte::Empty;
        }
        let addr = Self::ppn_addr(pte);
        if level != 0 && pte & RWX == 0 {
            return Pte::Table { pa: addr };
        }
        let (size_lg2, run_lg2) = if level == 0 && self.svnapot && pte & N != 0 {
            (PAGE_LG2 + NAPOT_64K_RUN_LG2, NAPOT_64K_RUN_LG2)
        } else {
            (self.item_lg2(level), 0)
        };
        Pte::Leaf {
            pa: addr & !((1u64 << size_lg2) - 1),
            run_lg2,
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
        if pte & X == 0 {
            prot |= Prot::NOEXEC;
        }
        if pte & U == 0 {
            prot |= Prot::PRIV;
        }
        if self.svpbmt {
            match pte & PBMT_MASK {
                0 => prot |= Prot::CACHE,
                PBMT_IO => prot |= Prot::MMIO,
                // NC, and the reserved value 3: neither cacheable nor device.
                _ => {}
            }
        }
        prot
    }

    /// Hitless: the RISC-V IOMMU specification's software guidelines allow a page size
    /// promotion or demotion without first clearing V and invalidating, provided the old
    /// and new PTEs have identical permissions and memory type and translate every IOVA
    /// alike (the privileged spec's Svnapot rules allow the same for NAPOT runs).
    #[inline]
    fn cut_hitless(&self) -> bool {
        true
    }

    /// A change of the Svpbmt memory type in place is implementation defined (the IOMMU
    /// guidelines allow only a size change without clearing V): break-before-make.
    #[inline]
    fn prot_needs_bbm(&self, old: Prot, new: Prot) -> bool {
        self.svpbmt && (old ^ new).intersects(Prot::CACHE.union(Prot::MMIO))
    }

    #[inline]
    fn make_table(&self, _level: u32, table_pa: u64) -> u64 {
        V | Self::ppn_of(table_pa)
    }

    #[inline]
    fn make_leaf(&self, _level: u32, pa: u64, run_lg2: u32, prot: Prot) -> u64 {
        let mut pte = V | A | Self::ppn_of(pa);
        if prot.has_access() {
            // Write-only is reserved (W without R): it maps read-write.
            pte |= R;
        }
        if prot.contains(Prot::WRITE) {
            pte |= W;
            if !self.dirty_tracking {
                pte |= D;
            }
        }
        if !prot.contains(Prot::NOEXEC) {
            pte |= X;
        }
        if !prot.contains(Prot::PRIV) {
            pte |= U;
        }
        if self.svpbmt {
            if prot.contains(Prot::MMIO) {
                pte |= PBMT_IO;
            } else if !prot.contains(Prot::CACHE) {
                pte |= PBMT_NC;
            }
        }
        if run_lg2 != 0 {
            // Only a 64 KiB run at level 0 is ever asked for (leaf_runs).
            pte |= N | NAPOT_64K_CODE;
        }
        pte
    }

    /// Every entry of a NAPOT run holds the same value: the step is 0. (Single entries
    /// have no next entry; they report 0 too.)
    #[inline]
    fn run_step(&self, _level: u32, _run_lg2: u32) -> u64 {
        0
    }

    /// `iosatp` = MODE << 60 | root PPN (MODE 8, 9, 10 for a top at level 2, 3, 4), the
    /// same split into `iosatp.MODE` and `iosatp.PPN`, and `DC.tc.SADE` = 1 when dirty
    /// tracking needs the IOMMU to update A/D bits.
    fn hw_words(&self, root_pa: u64, top_level: u32) -> HwWords {
        let mode = u64::from(top_level) + IOSATP_MODE_BIAS;
        let ppn = root_pa >> PAGE_LG2;
        let mut w = HwWords::new();
        w.push("iosatp", (mode << IOSATP_MODE_SHIFT) | ppn);
        w.push("iosatp.MODE", mode);
        w.push("iosatp.PPN", ppn);
        if self.dirty_tracking {
            w.push("DC.tc.SADE", 1);
        }
        w
    }

    #[inline]
    fn tracks_dirty(&self) -> bool {
        self.dirty_tracking
    }

    /// D is set. For a NAPOT run the hardware may have set D in any of its 16 entries.
    #[inline]
    fn leaf_dirty(&self, _level: u32, pte: u64) -> bool {
        pte & D != 0
    }

    /// The leaf with D cleared (A is left as it is).
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

    /// `DC.tc.SADE` stays 1 while tracking is switched off: the IOMMU goes on setting D.
    #[inline]
    fn hw_records_dirty(&self, _tracking: bool) -> bool {
        self.tracks_dirty()
    }
}
