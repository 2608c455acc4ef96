//! Apple DART (Device Address Resolution Table) page tables, entry formats v1 and v2.
//!
//! The format of Linux's `io-pgtable-dart.c` (`APPLE_DART`, `APPLE_DART2`), programmed by
//! `apple-dart.c`: v1 entries on M1 (`apple,t8103-dart`), v2 entries on M1 Pro/Max/Ultra
//! (`apple,t6000-dart`) and on M2 and later (`apple,t8110-dart`, and T6020 with its
//! 42-bit IOVA space). There is no public specification; the facts below are those of
//! the Linux drivers (late-2025 versions, with the 4-level support of Hector Martin and
//! Janne Grunau).
//!
//! # Geometry
//! Entries are 64 bits and every table is one granule (4 KiB with 512 entries, or 16 KiB
//! with 2048), so each level resolves 9 or 11 IOVA bits above the 12- or 14-bit page
//! offset. Leaves exist only at the last level (level 0 here): one page size, no blocks
//! and no contiguous runs.
//!
//! Above the tables sits a small array of up to four TTBR registers per stream, which
//! Linux counts as one more level: the top IOVA bits pick a TTBR, and each TTBR points to
//! its own first-level table. Linux chooses the table levels (2 or 3) and the number of
//! TTBRs (1, 2 or 4) from `ias` as follows (`dart_alloc_pgtable`): with `b` bits per level
//! and `v = ias - page_shift`, `levels = max(2, ceil((v - t) / b))` where `t` is 2 for the
//! 4K granule and 0 for 16K (only old 4K DARTs use several TTBRs), and the TTBRs resolve
//! the remaining `max(0, v - levels * b)` bits.
//!
//! | granule | ias      | levels | TTBRs | top table here          |
//! |---------|----------|--------|-------|-------------------------|
//! | 4K      | 32       | 2      | 4     | 16 KiB (4 tables)       |
//! | 16K     | 32..=36  | 2      | 1     | 16 KiB                  |
//! | 16K     | 37..=42  | 3      | 1     | 16 KiB                  |
//!
//! # The TTBR level
//! The engine has one top table per page table, and a driver wants TTBR values it can
//! program once, when the domain is created, and never again while mappings come and go.
//! This format therefore makes the top table the *concatenation* of the first-level tables
//! of all TTBRs, exactly as ARM stage 2 concatenates its top tables: for 4 TTBRs the top
//! is one 16 KiB block holding four 4 KiB tables, TTBR `i` points to `root + i * 4 KiB`,
//! and indexing the block with the TTBR bits and the first-level bits together reaches
//! the same entry the hardware reaches through TTBR `i`. The top table is allocated when
//! the page table is created and only freed when it is dropped, so
//! [`hw_words`](Format::hw_words) gives every TTBR value up front and they never change.
//! No engine hook is needed. (Linux allocates the first-level tables separately; each
//! TTBR holds its own address, so the hardware only needs each table granule aligned.)
//!
//! Every table, including a top whose `ias` needs fewer entries than a granule holds, is a
//! whole granule ([`Format::min_table_bytes_lg2`]): the hardware indexes a full table
//! for any IOVA it is given, so the unused entries must exist and stay invalid.
//!
//! # Entries
//! | bits  | v1                          | v2                               |
//! |-------|-----------------------------|----------------------------------|
//! | 0     | valid                       | valid                            |
//! | 1     | SP_DIS (leaves, always set) | NO_CACHE (leaves, without `CACHE`) |
//! | 2     | -                           | NO_WRITE (leaves, without `WRITE`) |
//! | 3     | -                           | NO_READ (leaves, without `READ`)   |
//! | 7     | NO_WRITE (without `WRITE`)  | -                                |
//! | 8     | NO_READ (without `READ`)    | -                                |
//! | 35:12 | address bits 35:12          | -                                |
//! | 37:10 | -                           | address bits 41:14 (address >> 4) |
//! | 51:40 | subpage end (leaves: 0xfff) | subpage end (leaves: 0xfff)      |
//! | 63:52 | subpage start (leaves: 0)   | subpage start (leaves: 0)        |
//!
//! A table entry is the valid bit and the table's address, nothing else. A leaf is the
//! valid bit, the address, the protection bits and the subpage-protection window, which
//! Linux always sets to the whole page (start 0, end 0xfff); v1 leaves also set SP_DIS,
//! which turns subpage protection off. On v2 subpage protection cannot be turned off
//! (bit 1 is NO_CACHE there; newer Linux sets SP_DIS on v1 only), so the full-page window
//! is what makes a v2 page accessible at all. Entries are told apart by level: every
//! valid entry above level 0 is a table, every valid entry at level 0 a page.
//!
//! # Permissions
//! `READ` and `WRITE` are the inverted NO_READ and NO_WRITE bits, so write-only mappings
//! exist. v2 honours `CACHE` (NO_CACHE is set without it); v1 has no cache attribute and
//! ignores it. `NOEXEC`, `MMIO` and `PRIV` have no encoding and are ignored by both, as in
//! Linux. [`Format::leaf_prot`] reports `READ`/`WRITE` (and `CACHE` on v2) from the bits;
//! a subpage window narrower than the page is not reported.
//!
//! # Registers
//! The TTBR and TCR encodings belong to the register block ([`DartRegs`]), not to the
//! entry version: T6000 pairs v2 entries with the T8020 registers.
//! - T8020 (t8103, t6000): TTBR = bit 31 (valid) | address >> 12; four TTBRs per
//!   stream; TCR = bit 7 (translation enable). There is no mode for a third table level.
//! - T8110 (t8110, t6020): TTBR = bit 0 (valid) | (address >> 14) << 2; one TTBR per
//!   stream; TCR = bit 0 (translation enable) | bit 3 (FOUR_LEVEL: three table levels
//!   plus the TTBR level).
//!
//! # Limits and what is not implemented
//! As Linux: `oas` is 36 or 42, `ias <= oas`, walks must be cache coherent (Linux refuses
//! `coherent_walk = false`; build the table with [`crate::Options::coherent_walk`] on, the
//! default). Beyond Linux, configurations that Linux would accept but encode wrongly are
//! refused: v1 with a 42-bit `oas` (its address field ends at bit 35), v2 or T8110
//! registers with the 4K granule (their addresses start at bit 14), and T8020 registers
//! with three table levels (no TCR mode for it). `ias` starts at 32, the width Linux uses
//! for every T8020-style DART (T8110 DARTs report theirs). Subpage protection narrower
//! than a page, DART "locked" streams, bypass and the per-SoC stream tables are driver
//! matters outside the table format.
//!
//! No dirty tracking: DART entries have no dirty (or accessed) bit and the DART never
//! writes its tables (Linux's io-pgtable-dart has no dirty operations), so dirty reads
//! refuse these tables with [`Error::NoDirtyTracking`].

/// The page (and table) size; DART takes [`Granule::K4`] and [`Granule::K16`]. The type
/// is ARM LPAE's, re-exported here.
pub use crate::fmt::arm_lpae::Granule;
use crate::fmt::common::addr_mask;
use crate::format::{Format, HwWords, Pte};
use crate::{Error, Prot, Result};

/// Valid (tables and leaves, both versions).
const VALID: u64 = 1 << 0;
/// Subpage-protection window end, bits 51:40: 0xfff allows the whole page.
const SUBPAGE_END_ALL: u64 = 0xfff << 40;

/// v1: subpage protection disabled.
const V1_SP_DIS: u64 = 1 << 1;
/// v1: writes refused.
const V1_NO_WRITE: u64 = 1 << 7;
/// v1: reads refused.
const V1_NO_READ: u64 = 1 << 8;
/// v1: the address, in place, bits 35:12.
const V1_ADDR: u64 = addr_mask(12, 35);

/// v2: not cacheable.
const V2_NO_CACHE: u64 = 1 << 1;
/// v2: writes refused.
const V2_NO_WRITE: u64 = 1 << 2;
/// v2: reads refused.
const V2_NO_READ: u64 = 1 << 3;
/// v2: the address shifted right by [`V2_ADDR_SHIFT`], in bits 37:10.
const V2_ADDR: u64 = addr_mask(10, 37);
/// v2: how far the address is shifted right in an entry.
const V2_ADDR_SHIFT: u32 = 4;

/// T8020 TTBR: valid.
const T8020_TTBR_VALID: u64 = 1 << 31;
/// T8020 TTBR: the address is stored shifted right by 12.
const T8020_TTBR_SHIFT: u32 = 12;
/// T8020 TCR: translation enabled.
const T8020_TCR_TRANSLATE: u64 = 1 << 7;
/// T8020: TTBRs per stream.
const T8020_TTBRS: u32 = 4;
/// T8110 TTBR: valid.
const T8110_TTBR_VALID: u64 = 1 << 0;
/// T8110 TTBR: the address is stored shifted right by 14 ...
const T8110_TTBR_SHIFT: u32 = 14;
/// ... and the result placed from bit 2 up.
const T8110_TTBR_FIELD: u32 = 2;
/// T8110 TCR: translation enabled.
const T8110_TCR_TRANSLATE: u64 = 1 << 0;
/// T8110 TCR: three table levels under the TTBR (Linux's "four levels").
const T8110_TCR_FOUR_LEVEL: u64 = 1 << 3;

/// Names of the TTBR words, by index.
const TTBR_NAMES: [&str; 4] = ["TTBR0", "TTBR1", "TTBR2", "TTBR3"];

/// The entry format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DartVersion {
    /// `APPLE_DART`: address in place (bits 35:12), NO_READ/NO_WRITE at bits 8/7, SP_DIS.
    V1,
    /// `APPLE_DART2`: address >> 4 in bits 37:10, NO_READ/NO_WRITE/NO_CACHE at bits 3/2/1.
    V2,
}

/// The register block that holds the TTBRs and the TCR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DartRegs {
    /// T8020-style registers (t8103, t6000): four TTBRs per stream, valid bit 31, 4 KiB
    /// address units; two table levels only.
    T8020,
    /// T8110-style registers (t8110, t6020): one TTBR per stream, valid bit 0, 16 KiB
    /// address units from bit 2; optional third table level (TCR FOUR_LEVEL).
    T8110,
}

/// Configuration of a [`Dart`] table. The default is M1's (t8103) DART.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DartConfig {
    /// Entry format. Default [`DartVersion::V1`].
    pub version: DartVersion,
    /// Page and table size, [`Granule::K4`] or [`Granule::K16`]. Default 16K.
    pub granule: Granule,
    /// IOVA width in bits, `32..=oas` (and within what the registers can walk). Default 32.
    pub ias: u32,
    /// Output (physical) address width: 36 or 42 (36 only for v1). Default 36.
    pub oas: u32,
    /// The register block the TTBR and TCR words are for. Default [`DartRegs::T8020`].
    pub regs: DartRegs,
}

impl DartConfig {
    /// M1 (`apple,t8103-dart`): v1 entries, 16K pages, 32-bit IOVA, 36-bit output, T8020
    /// registers.
    pub const fn t8103() -> Self {
        DartConfig {
            version: DartVersion::V1,
            granule: Granule::K16,
            ias: 32,
            oas: 36,
            regs: DartRegs::T8020,
        }
    }

    /// M1 Pro/Max/Ultra (`apple,t6000-dart`): v2 entries, 16K pages, 32-bit IOVA, 42-bit
    /// output, T8020 registers.
    pub const fn t6000() -> Self {
        DartConfig {
            version: DartVersion::V2,
            granule: Granule::K16,
            ias: 32,
            oas: 42,
            regs: DartRegs::T8020,
        }
    }

    /// M2 and later (`apple,t8110-dart`): v2 entries, 16K pages, T8110 registers, with the
    /// IOVA and output widths the hardware reports (PARAMS3 VA_WIDTH and PA_WIDTH; T6020
    /// reports a 42-bit IOVA, which takes three table levels).
    pub const fn t8110(ias: u32, oas: u32) -> Self {
        DartConfig {
            version: DartVersion::V2,
            granule: Granule::K16,
            ias,
            oas,
            regs: DartRegs::T8110,
        }
    }
}

impl Default for DartConfig {
    fn default() -> Self {
        Self::t8103()
    }
}

/// The Apple DART format (`dart`): 2 or 3 levels of 4K or 16K tables under 1 to 4 TTBRs.
///
/// ```
/// use iopt::fmt::dart::{Dart, DartConfig};
/// use iopt::{Format, Prot, Pte};
/// let f = Dart::new(DartConfig::t8103()).unwrap();
/// let pte = f.make_leaf(0, 0x8_1234_4000, 0, Prot::READ | Prot::WRITE);
/// assert_eq!(pte, 0x000f_ff08_1234_4003);
/// assert_eq!(f.decode(0, pte), Pte::Leaf { pa: 0x8_1234_4000, run_lg2: 0 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dart {
    cfg: DartConfig,
    /// log2 of the page (and table) size: 12 or 14.
    page_lg2: u32,
    /// IOVA bits per table level: 9 or 11.
    bits: u32,
    /// Table levels under the TTBRs: 2 or 3.
    levels: u32,
    /// log2 of the number of TTBRs in use: 0, 1 or 2.
    ttbr_lg2: u32,
}

impl Dart {
    /// Validates `cfg` and builds the format.
    ///
    /// # Errors
    /// [`Error::BadConfig`] naming the violated limit.
    pub fn new(cfg: DartConfig) -> Result<Self> {
        let page_lg2 = match cfg.granule {
            Granule::K4 => 12,
            Granule::K16 => 14,
            Granule::K64 => return Err(Error::BadConfig("granule must be 4K or 16K")),
        };
        if cfg.oas != 36 && cfg.oas != 42 {
            return Err(Error::BadConfig("oas must be 36 or 42"));
        }
        if cfg.version == DartVersion::V1 && cfg.oas != 36 {
            return Err(Error::BadConfig(
                "DART v1 oas must be 36 (entries hold address bits 35:12)",
            ));
        }
        if cfg.version == DartVersion::V2 && page_lg2 != 14 {
            return Err(Error::BadConfig(
                "DART v2 needs the 16K granule (entries hold address bits 41:14)",
            ));
        }
        if cfg.regs == DartRegs::T8110 && page_lg2 != 14 {
            return Err(Error::BadConfig(
                "T8110 registers need the 16K granule (TTBRs hold address bits 43:14)",
            ));
        }
        if cfg.ias < 32 || cfg.ias > cfg.oas {
            // oas is 36 or 42 (checked above): say which, since it is often a default.
            return Err(Error::BadConfig(if cfg.oas == 36 {
                "ias must be 32..=oas (oas is 36 here)"
            } else {
                "ias must be 32..=oas (oas is 42 here)"
            }));
        }
        // Linux's split (dart_alloc_pgtable). With ias <= 42 it never needs more than
        // three levels or more TTBRs than the granule allows.
        let bits = page_lg2 - 3;
        let max_ttbr_lg2 = if page_lg2 == 12 { 2 } else { 0 };
        let v = cfg.ias - page_lg2;
        let levels = (v - max_ttbr_lg2).div_ceil(bits).max(2);
        let ttbr_lg2 = v.saturating_sub(bits * levels);
        debug_assert!(levels <= 3 && ttbr_lg2 <= max_ttbr_lg2);
        if cfg.regs == DartRegs::T8020 && levels > 2 {
            return Err(Error::BadConfig(
                "T8020 registers have no 4-level mode: ias must be at most 32 (4K) or 36 (16K)",
            ));
        }
        Ok(Dart {
            cfg,
            page_lg2,
            bits,
            levels,
            ttbr_lg2,
        })
    }

    /// The configuration this format was built with.
    #[inline]
    pub fn config(&self) -> DartConfig {
        self.cfg
    }

    /// Number of TTBRs the table uses (1, 2 or 4); the top table holds that many
    /// first-level tables, one granule each, TTBR `i` pointing to the `i`-th.
    #[inline]
    pub fn ttbrs(&self) -> u32 {
        1 << self.ttbr_lg2
    }

    /// Levels as Linux counts them (`apple_dart_cfg.n_levels`): the table levels plus the
    /// TTBR level, 3 or 4.
    #[inline]
    pub fn linux_levels(&self) -> u32 {
        self.levels + 1
    }

    /// The address field of an entry for the table or page at `pa`.
    #[inline]
    fn addr_field(&self, pa: u64) -> u64 {
        match self.cfg.version {
            DartVersion::V1 => pa & V1_ADDR,
            DartVersion::V2 => (pa >> V2_ADDR_SHIFT) & V2_ADDR,
        }
    }

    /// The address an entry holds.
    #[inline]
    fn addr_of(&self, pte: u64) -> u64 {
        match self.cfg.version {
            DartVersion::V1 => pte & V1_ADDR,
            DartVersion::V2 => (pte & V2_ADDR) << V2_ADDR_SHIFT,
        }
    }

    /// The TTBR word pointing to the first-level table at `pa`.
    #[inline]
    fn ttbr(&self, pa: u64) -> u64 {
        match self.cfg.regs {
            DartRegs::T8020 => T8020_TTBR_VALID | pa >> T8020_TTBR_SHIFT,
            DartRegs::T8110 => T8110_TTBR_VALID | (pa >> T8110_TTBR_SHIFT) << T8110_TTBR_FIELD,
        }
    }
}

impl Format for Dart {
    const NAME: &'static str = "dart";
    const ENTRY_LG2: u32 = 3;
    const MAX_LEVELS: u32 = 3;
    // v2 stores the address shifted, so a run of pages does not step by the page size.
    const OA_IN_PLACE: bool = false;

    #[inline]
    fn levels(&self) -> u32 {
        self.levels
    }

    /// `ias` at the top (the TTBR bits included); a lower top would be one full table.
    #[inline]
    fn va_bits(&self, top_level: u32) -> u32 {
        if top_level + 1 >= self.levels {
            self.cfg.ias
        } else {
            self.item_lg2(top_level + 1)
        }
    }

    #[inline]
    fn oa_bits(&self) -> u32 {
        self.cfg.oas
    }

    #[inline]
    fn item_lg2(&self, level: u32) -> u32 {
        self.page_lg2 + self.bits * level
    }

    #[inline]
    fn table_lg2(&self, _level: u32) -> u32 {
        self.bits
    }

    /// Every table is at least one whole granule (see the module documentation).
    #[inline]
    fn min_table_bytes_lg2(&self) -> u32 {
        self.page_lg2
    }

    /// Single pages at level 0 only.
    #[inline]
    fn leaf_runs(&self, level: u32) -> u32 {
        u32::from(level == 0)
    }

    #[inline]
    fn plain_leaf_pattern(&self, level: u32) -> (u64, u64) {
        // Only level 0 holds pages; any valid entry there is one.
        if level == 0 { (VALID, VALID) } else { (0, 1) }
    }

    #[inline]
    fn decode(&self, level: u32, pte: u64) -> Pte {
        if pte & VALID == 0 {
            return Pte::Empty;
        }
        let addr = self.addr_of(pte);
        if level == 0 {
            // v1 keeps address bits 13:12 in 16K pages; they are not part of the page.
            Pte::Leaf {
                pa: addr & !((1u64 << self.page_lg2) - 1),
                run_lg2: 0,
            }
        } else {
            Pte::Table { pa: addr }
        }
    }

    #[inline]
    fn leaf_prot(&self, _level: u32, pte: u64) -> Prot {
        let (no_read, no_write) = match self.cfg.version {
            DartVersion::V1 => (V1_NO_READ, V1_NO_WRITE),
            DartVersion::V2 => (V2_NO_READ, V2_NO_WRITE),
        };
        let mut prot = Prot::empty();
        if pte & no_read == 0 {
            prot |= Prot::READ;
        }
        if pte & no_write == 0 {
            prot |= Prot::WRITE;
        }
        if self.cfg.version == DartVersion::V2 && pte & V2_NO_CACHE == 0 {
            prot |= Prot::CACHE;
        }
        prot
    }

    #[inline]
    fn make_table(&self, _level: u32, table_pa: u64) -> u64 {
        VALID | self.addr_field(table_pa)
    }

    #[inline]
    fn make_leaf(&self, _level: u32, pa: u64, _run_lg2: u32, prot: Prot) -> u64 {
        let mut pte = VALID | SUBPAGE_END_ALL | self.addr_field(pa);
        let (no_read, no_write) = match self.cfg.version {
            DartVersion::V1 => {
                pte |= V1_SP_DIS;
                (V1_NO_READ, V1_NO_WRITE)
            }
            DartVersion::V2 => {
                if !prot.contains(Prot::CACHE) {
                    pte |= V2_NO_CACHE;
                }
                (V2_NO_READ, V2_NO_WRITE)
            }
        };
        if !prot.contains(Prot::READ) {
            pte |= no_read;
        }
        if !prot.contains(Prot::WRITE) {
            pte |= no_write;
        }
        pte
    }

    /// No runs; the step between neighbouring pages' entries is the page size as the
    /// address field stores it (shifted right by 4 on v2).
    #[inline]
    fn run_step(&self, level: u32, _run_lg2: u32) -> u64 {
        self.addr_field(1u64 << self.item_lg2(level))
    }

    /// `TTBR0`.. : the TTBR words, TTBR `i` pointing to the `i`-th granule of the top
    /// table. T8020 registers: all four TTBRs, the unused ones 0 (Linux clears them).
    /// T8110: `TTBR0` only. `TCR`: translation enabled, plus FOUR_LEVEL on T8110 with three
    /// table levels.
    fn hw_words(&self, root_pa: u64, top_level: u32) -> HwWords {
        let mut w = HwWords::new();
        let (slots, tcr) = match self.cfg.regs {
            DartRegs::T8020 => (T8020_TTBRS, T8020_TCR_TRANSLATE),
            DartRegs::T8110 => {
                let four = if top_level >= 2 {
                    T8110_TCR_FOUR_LEVEL
                } else {
                    0
                };
                (1, T8110_TCR_TRANSLATE | four)
            }
        };
        for (i, name) in TTBR_NAMES.iter().enumerate().take(slots as usize) {
            let word = if (i as u32) < self.ttbrs() {
                self.ttbr(root_pa + ((i as u64) << self.page_lg2))
            } else {
                0
            };
            w.push(name, word);
        }
        w.push("TCR", tcr);
        w
    }
}
