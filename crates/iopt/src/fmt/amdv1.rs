//! AMD IOMMU v1 host page table ("I/O Page Tables for Host Translations" in the AMD
//! I/O Virtualization Technology (IOMMU) Specification; Linux
//! `drivers/iommu/generic_pt/fmt/amdv1.h`).
//!
//! # Geometry
//! Every table is one 4 KiB page of 512 eight-byte entries, and every level resolves
//! 9 IOVA bits above the 12-bit page offset: level 0 entries span 4 KiB, level 1 2 MiB,
//! level 2 1 GiB, level 3 512 GiB, level 4 256 TiB, level 5 128 PiB. A table of `n`
//! levels (the device table entry's *Mode* field, 1..=6) translates
//! `min(64, 12 + 9 * n)` IOVA bits, zero-extended (no sign extension). A six-level
//! table's top only decodes IOVA bits 63:57, i.e. its first 128 entries, but is still
//! a whole 4 KiB page. The table can grow at the top while in use (Linux's
//! `PT_FEAT_DYNAMIC_TOP`): a new top table is allocated, its entry 0 pointed at the old
//! top, and the device table entry rewritten with the new root and mode.
//!
//! AMD numbers levels from 1 at the leaf end; this crate from 0, so AMD level `L + 1`
//! is our level `L`.
//!
//! # Entries
//! | bits  | name       | use here                                                   |
//! |-------|------------|------------------------------------------------------------|
//! | 0     | PR         | present                                                    |
//! | 5     | A          | accessed (hardware-set with `DTE.HAD`; ignored)            |
//! | 6     | D          | dirty (hardware-set with `DTE.HAD`; see below)             |
//! | 11:9  | Next Level | 1..=6: table of that AMD level; 0: page; 7: size-encoded page |
//! | 51:12 | address    | table or page address (4 KiB aligned)                      |
//! | 60    | FC         | force coherent (snooped) accesses                          |
//! | 61    | IR         | read permission                                            |
//! | 62    | IW         | write permission                                           |
//!
//! A table entry's Next Level is the AMD level of the table it points to, which is the
//! (0-based) level of the table holding the entry. Linux always sets IR and IW in table
//! entries, because the hardware ANDs the permissions of every level of the walk and
//! the leaf alone should decide; FC is not set in table entries.
//!
//! A page exactly one entry in size has Next Level 0. A larger page that is smaller
//! than the next level's entry is *size-encoded*: Next Level 7, and the address field
//! holds the page's base address with address bits `12 ..= size_lg2 - 2` set to one and
//! bit `size_lg2 - 1` zero (so an 8 KiB page sets no extra bits, a 32 KiB page sets
//! bits 12 and 13). The very same 64-bit value is written into every entry the page
//! covers, so a run steps by 0 ([`Format::run_step`]).
//!
//! # Page sizes
//! Linux allows every power of two from the level's entry size up to half the level's
//! table span (the largest a run of a 512-entry table can be while still being smaller
//! than the next level's entry), capped at 2^51 (the address field ends at bit 51),
//! except 512 GiB, which Linux (`amdv1pt_possible_sizes`, as the older io-pgtable code
//! before it) leaves out because of a hardware bug. Level 5, the top of a six-level
//! table, holds no pages: the AMD specification's page table level parameters give it
//! no translation entries, and Linux's `amdv1pt_can_have_leaf` refuses it. So, per
//! level:
//!
//! | level | entry | sizes (runs of 2^c entries)          |
//! |-------|-------|--------------------------------------|
//! | 0     | 4K    | 4K, 8K, ..., 1M (c = 0..=8)          |
//! | 1     | 2M    | 2M, 4M, ..., 512M (c = 0..=8)        |
//! | 2     | 1G    | 1G, 2G, ..., 256G (c = 0..=8)        |
//! | 3     | 512G  | 1T, 2T, ..., 128T (c = 1..=8; no 512G) |
//! | 4     | 256T  | 256T, 512T, 1P, 2P (c = 0..=3)       |
//! | 5     | 128P  | none                                 |
//!
//! Sizes not below 2^`oa_bits` are left out as well (as Linux hides page sizes above
//! its maximum output address).
//!
//! # Permissions
//! `READ` sets IR, `WRITE` sets IW (write-only is expressible). `CACHE`, `NOEXEC` and
//! `PRIV` have no bit and are ignored, as in Linux. FC is set on every leaf when
//! [`AmdV1Config::force_coherence`] is on (Linux's AMD driver always turns it on);
//! [`Format::leaf_prot`] reports a leaf with FC as `CACHE`, one with IR as `READ` and
//! one with IW as `WRITE`, and, when encryption is configured, one without the C-bit
//! as `MMIO`.
//! With [`AmdV1Config::sme_c_bit`] (memory encryption), the C-bit is set in table
//! entries and in leaves except `MMIO` ones, as Linux does.
//!
//! # Dirty tracking
//! When the device table entry's host access/dirty field (`DTE.HAD`, bits 8:7) is 3,
//! an IOMMU with host dirty support (`HDSup` in its extended features) sets A in the
//! entries it walks and D in a leaf it writes through. With
//! [`AmdV1Config::dirty_tracking`] the format reports that ([`Format::tracks_dirty`]),
//! [`Format::hw_words`] asks for `DTE.HAD = 3`, and
//! [`PageTable::read_and_clear_dirty`](crate::PageTable::read_and_clear_dirty) reads
//! and clears D. The hardware may mark any one entry of a size-encoded page: the engine
//! treats the page as dirty if any of its entries is, and cleans all of them (as
//! Linux's `amdv1pt_entry_is_write_dirty` / `make_write_clean` do). [`Format::decode`]
//! ignores A and D, so the entries of a page still decode alike.
//!
//! [`PageTable::set_dirty_tracking`](crate::PageTable::set_dirty_tracking) changes no
//! entry: switched off, the hardware words ask for `DTE.HAD = 0` (the IOMMU stops
//! setting D; Linux's AMD driver toggles the same field), switched on again, 3.
//!
//! Not implemented: the U (untranslated-only) bit, level skipping in table entries.

use crate::fmt::common::addr_mask;
use crate::fmt::common::radix4k::{self, PAGE_LG2, TABLE_LG2};
use crate::fmt::common::radix4k_geometry;
use crate::format::{Format, HwWords, Pte, VaMode};
use crate::{Error, Prot, Result};

/// Present.
const PR: u64 = 1 << 0;
/// Next Level field, bits 11:9.
const NL_SHIFT: u32 = 9;
/// Mask of the Next Level field.
const NL_MASK: u64 = 0x7 << NL_SHIFT;
/// Next Level value of a page of the level's own entry size.
const NL_PAGE: u64 = 0;
/// Next Level value of a size-encoded page.
const NL_SIZED: u64 = 7;
/// Address field, bits 51:12.
const ADDR_MASK: u64 = addr_mask(12, 51);
/// Dirty (set by hardware when `DTE.HAD` enables it).
const D: u64 = 1 << 6;
/// Force coherent.
const FC: u64 = 1 << 60;
/// Read permission.
const IR: u64 = 1 << 61;
/// Write permission.
const IW: u64 = 1 << 62;

/// log2 of the largest page: 2 PiB, whose size encoding puts its zero at bit 50 (the
/// address field ends at bit 51; Linux caps sizes at 2^51).
const MAX_PAGE_LG2: u32 = 51;
/// 512 GiB pages are excluded (hardware bug, per Linux).
const BROKEN_PAGE_LG2: u32 = 39;

/// Configuration of an [`AmdV1`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdV1Config {
    /// Levels when the table is created (the DTE *Mode*), 1..=6. Default 3 (39-bit,
    /// 512 GiB IOVA space), which is where Linux's AMD driver starts.
    pub levels: u32,
    /// Most levels the table may grow to, 1..=6 and at least `levels`. Default 6
    /// (64-bit IOVA). Set it from the IOMMU's host address translation size (EFR.HATS).
    pub max_levels: u32,
    /// Whether the top may grow while the table is in use. Default `true`. When
    /// `false`, `max_levels` must equal `levels`.
    pub dynamic_top: bool,
    /// Output (physical) address width, 32..=52. Default 52.
    pub oa_bits: u32,
    /// Set FC (force coherent) in every leaf. Default `true`, as Linux's AMD driver
    /// always does.
    pub force_coherence: bool,
    /// Memory encryption (SME) C-bit position, if the table memory is encrypted. It is
    /// set in table entries, non-MMIO leaves and the root pointer. Must lie in
    /// `oa_bits..=51`. Default `None`.
    pub sme_c_bit: Option<u32>,
    /// Hardware dirty tracking: the device table entry will have `HAD = 3` (needs host
    /// dirty support, `HDSup`). Default `false`.
    pub dirty_tracking: bool,
}

impl Default for AmdV1Config {
    fn default() -> Self {
        AmdV1Config {
            levels: 3,
            max_levels: 6,
            dynamic_top: true,
            oa_bits: 52,
            force_coherence: true,
            sme_c_bit: None,
            dirty_tracking: false,
        }
    }
}

/// The AMD IOMMU v1 host page table format (`amdv1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdV1 {
    levels: u32,
    max_levels: u32,
    oa_bits: u32,
    /// FC, or 0.
    fc: u64,
    /// The C-bit mask, or 0.
    c_bit: u64,
    /// The address field without the C-bit (precomputed for decode).
    addr_mask: u64,
    dirty_tracking: bool,
}

impl AmdV1 {
    /// Validates `cfg` and builds the format.
    ///
    /// # Errors
    /// [`Error::BadConfig`] naming the violated limit.
    pub fn new(cfg: AmdV1Config) -> Result<Self> {
        if !(1..=6).contains(&cfg.levels) {
            return Err(Error::BadConfig("levels must be 1..=6"));
        }
        if !(1..=6).contains(&cfg.max_levels) {
            return Err(Error::BadConfig("max_levels must be 1..=6"));
        }
        if cfg.max_levels < cfg.levels {
            return Err(Error::BadConfig("max_levels must be >= levels"));
        }
        if !cfg.dynamic_top && cfg.max_levels != cfg.levels {
            return Err(Error::BadConfig(
                "max_levels must equal levels when dynamic_top is false",
            ));
        }
        if !(32..=52).contains(&cfg.oa_bits) {
            return Err(Error::BadConfig("oa_bits must be 32..=52"));
        }
        let c_bit = match cfg.sme_c_bit {
            None => 0,
            Some(b) if b >= cfg.oa_bits && b <= 51 => 1u64 << b,
            Some(_) => return Err(Error::BadConfig("sme_c_bit must be oa_bits..=51")),
        };
        Ok(AmdV1 {
            levels: cfg.levels,
            max_levels: if cfg.dynamic_top {
                cfg.max_levels
            } else {
                cfg.levels
            },
            oa_bits: cfg.oa_bits,
            fc: if cfg.force_coherence { FC } else { 0 },
            c_bit,
            addr_mask: ADDR_MASK & !c_bit,
            dirty_tracking: cfg.dirty_tracking,
        })
    }

    /// The address field of an entry, with the C-bit removed.
    #[inline]
    fn addr(&self, pte: u64) -> u64 {
        pte & self.addr_mask
    }
}

impl Format for AmdV1 {
    const NAME: &'static str = "amdv1";
    const ENTRY_LG2: u32 = 3;
    const MAX_LEVELS: u32 = 6;
    const OA_IN_PLACE: bool = true;
    const FIXED_GEOMETRY: bool = true;

    #[inline]
    fn levels(&self) -> u32 {
        self.levels
    }

    #[inline]
    fn max_levels(&self) -> u32 {
        self.max_levels
    }

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

    /// 9 (512 entries) at levels 0..=4. Level 5 is always the top and only decodes
    /// IOVA bits 63:57, so 7 (128 entries) there, although the table still occupies a
    /// whole 4 KiB page.
    #[inline]
    fn table_lg2(&self, level: u32) -> u32 {
        if level >= 5 { 64 - 57 } else { TABLE_LG2 }
    }

    radix4k_geometry!();

    #[inline]
    fn leaf_runs(&self, level: u32) -> u32 {
        if level >= 5 {
            return 0;
        }
        let item = self.item_lg2(level);
        // Page sizes run from the entry size up to half the table span, below 2^52 and
        // below 2^oa_bits.
        let end_lg2 = (MAX_PAGE_LG2 + 1).min(self.oa_bits);
        let count = end_lg2.saturating_sub(item).min(TABLE_LG2);
        let mut runs = (1u32 << count) - 1;
        if (item..item + count).contains(&BROKEN_PAGE_LG2) {
            runs &= !(1 << (BROKEN_PAGE_LG2 - item));
        }
        runs
    }

    #[inline]
    fn plain_leaf_pattern(&self, _level: u32) -> (u64, u64) {
        // Present with next level 0: a page of this level's size (at level 0, also
        // what the engine writes for 4K pages).
        (PR | NL_MASK, PR | (NL_PAGE << NL_SHIFT))
    }

    #[inline]
    fn decode(&self, level: u32, pte: u64) -> Pte {
        if pte & PR == 0 {
            return Pte::Empty;
        }
        let nl = (pte & NL_MASK) >> NL_SHIFT;
        let addr = self.addr(pte);
        let item = self.item_lg2(level);
        if nl == NL_SIZED {
            // The page's size is told by the string of ones starting at address bit 12.
            let size_lg2 = PAGE_LG2 + 1 + (addr >> PAGE_LG2).trailing_ones();
            let base_lg2 = size_lg2.max(item);
            Pte::Leaf {
                pa: addr & !((1u64 << base_lg2) - 1),
                run_lg2: size_lg2.saturating_sub(item),
            }
        } else if level == 0 || nl == NL_PAGE {
            Pte::Leaf {
                pa: addr & !((1u64 << item) - 1),
                run_lg2: 0,
            }
        } else {
            Pte::Table { pa: addr }
        }
    }

    #[inline]
    fn leaf_prot(&self, _level: u32, pte: u64) -> Prot {
        let mut prot = Prot::empty();
        if pte & IR != 0 {
            prot |= Prot::READ;
        }
        if pte & IW != 0 {
            prot |= Prot::WRITE;
        }
        if pte & FC != 0 {
            prot |= Prot::CACHE;
        }
        if self.c_bit != 0 && pte & self.c_bit == 0 {
            prot |= Prot::MMIO;
        }
        prot
    }

    #[inline]
    fn make_table(&self, level: u32, table_pa: u64) -> u64 {
        // The child is at our level - 1, i.e. AMD level `level`.
        PR | (u64::from(level) << NL_SHIFT) | (table_pa & ADDR_MASK) | IR | IW | self.c_bit
    }

    #[inline]
    fn make_leaf(&self, level: u32, pa: u64, run_lg2: u32, prot: Prot) -> u64 {
        let mut pte = PR | (pa & ADDR_MASK) | self.fc;
        if prot.contains(Prot::READ) {
            pte |= IR;
        }
        if prot.contains(Prot::WRITE) {
            pte |= IW;
        }
        if !prot.contains(Prot::MMIO) {
            pte |= self.c_bit;
        }
        if run_lg2 != 0 {
            let size_lg2 = self.item_lg2(level) + run_lg2;
            // Ones in address bits 12 ..= size_lg2 - 2; bit size_lg2 - 1 stays zero.
            let ones = ((1u64 << (size_lg2 - 1)) - 1) & !((1u64 << PAGE_LG2) - 1);
            pte |= (NL_SIZED << NL_SHIFT) | ones;
        }
        pte
    }

    /// Every entry of a size-encoded page holds the same value: the step is 0. (A
    /// single entry, `run_lg2 == 0`, also reports 0.)
    #[inline]
    fn run_step(&self, _level: u32, _run_lg2: u32) -> u64 {
        0
    }

    /// `DTE.HostPtRootPtr`: the root table's address (with the C-bit when the tables
    /// are encrypted), the DTE holding bits 51:12. `DTE.Mode`: the number of levels,
    /// `top_level + 1`. `DTE.HAD`: host access/dirty updates, 3 (accessed and dirty)
    /// with dirty tracking, else 0.
    fn hw_words(&self, root_pa: u64, top_level: u32) -> HwWords {
        self.hw_words_tracking(root_pa, top_level, self.dirty_tracking)
    }

    /// `DTE.HAD` = 3 only while tracking is on (what Linux's AMD driver toggles in
    /// `set_dirty_tracking`); the entries do not change.
    fn hw_words_tracking(&self, root_pa: u64, top_level: u32, tracking: bool) -> HwWords {
        let mut w = HwWords::new();
        w.push("DTE.HostPtRootPtr", root_pa | self.c_bit);
        w.push("DTE.Mode", u64::from(top_level) + 1);
        w.push(
            "DTE.HAD",
            if self.dirty_tracking && tracking {
                3
            } else {
                0
            },
        );
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

    /// D set in a writable leaf (the IOMMU only sets D on a write, which needs IW).
    #[inline]
    fn leaf_mark_dirty(&self, _level: u32, pte: u64) -> u64 {
        if pte & IW != 0 { pte | D } else { pte }
    }

    /// D set, writable or not (a read-only leaf keeps the record of earlier writes).
    #[inline]
    fn leaf_carry_dirty(&self, _level: u32, pte: u64) -> u64 {
        pte | D
    }
}
