//! The contract between the generic engine and a hardware format.
//!
//! A format is a type implementing [`Format`]: constants plus `#[inline]` entry
//! encode/decode. It holds its configuration (granule, address widths, stage, ...)
//! as plain fields, validated when it is constructed. It never loops over tables;
//! all table walking lives in the engine, written once and monomorphised per format.
//!
//! # Levels
//! Levels are numbered from the leaf end: level 0 holds the smallest pages (4 KiB for
//! most formats) and the top table is at level `levels - 1`. (ARM numbers its levels the
//! other way round; the ARM format converts where it reports hardware level numbers.)
//!
//! # Runs
//! A mapping larger than one entry's span but smaller than the next level's is a *run*
//! of `2^run_lg2` consecutive, naturally aligned entries at one level: ARM's contiguous
//! hint, ARMv7's 16-entry large pages, AMD v1's size-encoded pages. Entry `i` of a run is
//! `first + i * run_step(..)`: formats whose entries hold their own output address step by
//! the item size; formats whose entries repeat one value step by 0.

use crate::Prot;

/// What an entry means, as far as the engine is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pte {
    /// Not valid: nothing is mapped through this entry.
    Empty,
    /// Points to a table one level down, at physical address `pa`.
    Table {
        /// Physical address of the next-level table.
        pa: u64,
    },
    /// A leaf: part of a mapping of `item << run_lg2` bytes whose first byte translates
    /// to `pa` (the output address of the whole run, not of this entry).
    Leaf {
        /// Output address of the start of the run.
        pa: u64,
        /// log2 of the number of entries in the run (0 for a single entry).
        run_lg2: u32,
    },
}

/// Which part of the 64-bit IOVA space the table translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaMode {
    /// `0 ..= 2^va_bits - 1`.
    Low,
    /// The upper half only: `2^64 - 2^va_bits ..= 2^64 - 1` (ARM TTBR1).
    High,
    /// Sign-extended: both `0 ..= 2^(va_bits-1) - 1` and the same size at the top of the
    /// 64-bit space (x86-64, RISC-V).
    SignExtended,
}

/// Configuration words a driver programs into hardware, as name/value pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HwWords {
    words: [(&'static str, u64); 8],
    len: usize,
}

impl HwWords {
    /// An empty list.
    pub const fn new() -> Self {
        HwWords {
            words: [("", 0); 8],
            len: 0,
        }
    }
    /// Adds one word (at most 8; further words are a programming error in a format).
    pub fn push(&mut self, name: &'static str, value: u64) {
        assert!(self.len < self.words.len(), "too many hardware words");
        self.words[self.len] = (name, value);
        self.len += 1;
    }
    /// The words, in the order the format pushed them.
    pub fn as_slice(&self) -> &[(&'static str, u64)] {
        &self.words[..self.len]
    }
    /// The value of the word called `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.as_slice()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }
}

/// A hardware page-table format.
///
/// Implementations are small: geometry, and `#[inline]` encode/decode of single entries.
/// The engine guarantees it only asks about levels `0 ..= top_level`, only passes output
/// addresses aligned to the mapping size and within [`Format::oa_bits`], and only asks for
/// leaves of sizes that [`Format::leaf_runs`] allows.
pub trait Format: Sized + Send + Sync {
    /// Short name, as used by the command line (`arm64-s1`, `amdv1`, ...).
    const NAME: &'static str;
    /// log2 of the entry size in bytes: 2 for 32-bit entries, 3 for 64-bit ones.
    const ENTRY_LG2: u32;
    /// The most levels any configuration of this format can have.
    const MAX_LEVELS: u32;
    /// The output address sits in the entry as it is (not shifted or split), so that
    /// `make_leaf(l, pa + k * size, c, p) == make_leaf(l, pa, c, p) + k * size` for every
    /// `pa` aligned to the mapping size and within the output-address width. The engine
    /// then fills runs of fresh entries by addition instead of encoding each one.
    const OA_IN_PLACE: bool = false;
    /// [`Format::item_lg2`] and [`Format::table_lg2`] do not depend on the configuration
    /// (they fold to constants per level), so the engine's walks compute shifts from them
    /// directly; otherwise (the default) the walks read them from tables the engine fills
    /// when the page table is created.
    const FIXED_GEOMETRY: bool = false;

    /// Number of levels the table has when it is created.
    fn levels(&self) -> u32;
    /// Most levels the table may grow to (formats with a dynamic top); default: no growth.
    #[inline]
    fn max_levels(&self) -> u32 {
        self.levels()
    }
    /// IOVA bits translated when the top table is at `top_level`.
    fn va_bits(&self, top_level: u32) -> u32;
    /// Which part of the IOVA space is translated.
    #[inline]
    fn va_mode(&self) -> VaMode {
        VaMode::Low
    }
    /// Output (physical) address width in bits.
    fn oa_bits(&self) -> u32;
    /// log2 of the bytes one entry at `level` spans.
    fn item_lg2(&self, level: u32) -> u32;
    /// log2 of the number of entries in a table at `level` that is not the top table.
    /// (The top table's entry count follows from [`Format::va_bits`].)
    fn table_lg2(&self, level: u32) -> u32;
    /// Physical address width a table may live in (descriptors and root registers hold
    /// this many address bits). Default: [`Format::oa_bits`].
    #[inline]
    fn table_pa_bits(&self) -> u32 {
        self.oa_bits()
    }
    /// Smallest allocation for a table, log2 bytes (hardware alignment rules). Default 6.
    #[inline]
    fn min_table_bytes_lg2(&self) -> u32 {
        6
    }
    /// Which runs a leaf may use at `level`: bit `c` set means a mapping of
    /// `item << c` bytes written as `2^c` entries is allowed (bit 0: a single-entry leaf).
    /// Zero: no leaves at this level.
    fn leaf_runs(&self, level: u32) -> u32;

    /// Decodes one entry read from a table at `level`.
    fn decode(&self, level: u32, pte: u64) -> Pte;
    /// A quick test for a single-entry leaf at `level`, as `(mask, value)`: every entry
    /// with `pte & mask == value` decodes as `Pte::Leaf { run_lg2: 0, .. }`. It may
    /// reject some such leaves (the engine then decodes them), never accept anything
    /// else. The unmap of a stretch of pages tests each entry with it instead of decoding.
    /// The default `(0, 1)` accepts nothing.
    #[inline]
    fn plain_leaf_pattern(&self, _level: u32) -> (u64, u64) {
        (0, 1)
    }
    /// The permissions of a leaf entry at `level` (as far as the format can express them).
    fn leaf_prot(&self, level: u32, pte: u64) -> Prot;
    /// Encodes an entry at `level` pointing to a next-level table at `table_pa`.
    fn make_table(&self, level: u32, table_pa: u64) -> u64;
    /// Encodes the first entry of a leaf run of `2^run_lg2` entries at `level` mapping
    /// the output address `pa` with `prot`.
    fn make_leaf(&self, level: u32, pa: u64, run_lg2: u32, prot: Prot) -> u64;
    /// Added to an entry's raw value to get the next entry of the same run.
    fn run_step(&self, level: u32, run_lg2: u32) -> u64;
    /// The configuration words a driver programs for a table rooted at `root_pa` whose
    /// top is at `top_level`.
    fn hw_words(&self, root_pa: u64, top_level: u32) -> HwWords;

    /// True if the hardware accepts replacing a live leaf (a large page, or a run of
    /// entries) by an equivalent set of smaller ones (a new table, or entries without the
    /// run) without break-before-make: while the replacement happens, a walk finds either
    /// translation, both the same. Per format from its specification; default false.
    /// [`PageTable::cut`](crate::PageTable::cut) refuses a cut where this is false unless
    /// the caller opts into break-before-make.
    #[inline]
    fn cut_hitless(&self) -> bool {
        false
    }
    /// True if changing a live leaf's permissions from `old` to `new` in place is not
    /// allowed by the hardware (ARM: a change of memory type, which the architecture only
    /// allows with break-before-make). Default false: permission and attribute changes
    /// are made in place and invalidated afterwards.
    #[inline]
    fn prot_needs_bbm(&self, _old: Prot, _new: Prot) -> bool {
        false
    }

    /// True if this configuration has hardware dirty tracking: the IOMMU records writes
    /// in leaves, and [`Format::leaf_dirty`] / [`Format::leaf_clean`] read and reset that
    /// record. Default: no dirty tracking.
    #[inline]
    fn tracks_dirty(&self) -> bool {
        false
    }
    /// True if the hardware has written through the leaf `pte` at `level` since it was
    /// made or last cleaned. Only asked when [`Format::tracks_dirty`] is true.
    #[inline]
    fn leaf_dirty(&self, _level: u32, _pte: u64) -> bool {
        false
    }
    /// The leaf `pte` at `level` with its dirty record reset (the mapping and its
    /// permissions unchanged). Only asked when [`Format::tracks_dirty`] is true.
    #[inline]
    fn leaf_clean(&self, _level: u32, pte: u64) -> u64 {
        pte
    }
    /// The leaf `pte` at `level` with its dirty record set as the hardware sets it on a
    /// write (D set; ARM: AP\[2\] cleared at stage 1, S2AP\[1\] set at stage 2), the
    /// mapping unchanged. A leaf the hardware could not write through (read-only, or
    /// without ARM's DBM) is returned as it is. Used to carry a dirty large page's state
    /// into the smaller entries that replace it, and (ARM) to make every leaf
    /// writable-dirty when tracking is switched off. Default: the identity.
    #[inline]
    fn leaf_mark_dirty(&self, _level: u32, pte: u64) -> u64 {
        pte
    }
    /// The leaf `pte` at `level` (freshly made with new permissions, or a piece of a
    /// large page being cut) given the dirty record of the leaf it replaces, whatever its
    /// permissions: a dirty leaf made read-only stays dirty until it is read and cleaned
    /// (a migration must not lose a write because the page was write-protected since).
    /// D set (AMD v1, VT-d, RISC-V, x86-64: a D bit on a read-only leaf is legal and
    /// ignored by the walk); ARM: [`Format::leaf_mark_dirty`] for a leaf the hardware can
    /// write, a software bit for a read-only one. Only asked when [`Format::tracks_dirty`]
    /// is true. Default: [`Format::leaf_mark_dirty`].
    #[inline]
    fn leaf_carry_dirty(&self, level: u32, pte: u64) -> u64 {
        self.leaf_mark_dirty(level, pte)
    }
    /// True if the hardware, programmed with this table's words
    /// ([`Format::hw_words_tracking`] with `tracking`), records writes in the leaves
    /// (what [`PageTable::simulate_write`](crate::PageTable::simulate_write) models).
    /// Default: while tracking is on, in configurations with dirty tracking (the enables
    /// of AMD `DTE.HAD`, VT-d `SSADE`, ARM `HA`/`HD` follow the switch).
    #[inline]
    fn hw_records_dirty(&self, tracking: bool) -> bool {
        tracking && self.tracks_dirty()
    }
    /// True if, while dirty tracking is on, a freshly made writable leaf must be cleaned
    /// ([`Format::leaf_clean`]) before it is written, and every leaf must change when
    /// tracking is switched on or off (ARM's DBM scheme: a writable-clean leaf is
    /// read-only in the hardware's eyes until the first write makes it writable-dirty).
    /// False (the default) where the dirty record is a bit of its own that does not
    /// restrict access (D in AMD v1, VT-d, RISC-V, x86-64). Only acted on while tracking
    /// is on, so a format may answer true for configurations without dirty tracking
    /// (a constant keeps the map paths free of a configuration load).
    #[inline]
    fn dirty_fresh_clean(&self) -> bool {
        false
    }
    /// [`Format::hw_words`] for a table whose dirty tracking is switched on (`tracking`)
    /// or off at run time ([`PageTable::set_dirty_tracking`](crate::PageTable::set_dirty_tracking)):
    /// the enables of hardware dirty updates (AMD `DTE.HAD`, VT-d `SSADE`, RISC-V
    /// `DC.tc.SADE`, ARM TCR/VTCR `HA`/`HD`) follow `tracking`. Only asked with `tracking`
    /// true when [`Format::tracks_dirty`] is. Default: [`Format::hw_words`].
    #[inline]
    fn hw_words_tracking(&self, root_pa: u64, top_level: u32, _tracking: bool) -> HwWords {
        self.hw_words(root_pa, top_level)
    }
}
