//! ARMv7 short-descriptor translation tables (Linux's `ARM_V7S` io-pgtable format).
//!
//! Two levels of 32-bit descriptors translate a 32-bit IOVA to a 32-bit physical address:
//!
//! | iopt level | ARM name     | entries | table size | entry spans | leaves                     |
//! |------------|--------------|---------|------------|-------------|----------------------------|
//! | 1 (top)    | first level  | 4096    | 16 KiB     | 1 MiB       | section, supersection (16) |
//! | 0          | second level | 256     | 1 KiB      | 4 KiB       | small page, large page (16)|
//!
//! Large pages (64 KiB) and supersections (16 MiB) are written, as the architecture
//! requires, as 16 identical copies of one descriptor starting on a 16-entry boundary, so
//! their [`Format::run_step`] is 0 and [`Format::decode`] of any copy gives the run's base.
//!
//! # Alignment
//! The first-level table is addressed by TTBR0 with `TTBCR.N = 0`, whose base field is
//! bits `[31:14]`: it must be 16 KiB aligned (its natural size). A second-level table is
//! addressed by a page-table descriptor whose base field is bits `[31:10]`: it must be
//! 1 KiB aligned (its natural size). [`Format::min_table_bytes_lg2`] is therefore 10; the
//! top table's 16 KiB alignment comes from its own size. Every table must also lie below
//! 4 GiB, since descriptors and TTBR0 hold 32-bit addresses.
//!
//! # Attributes (as Linux's io-pgtable-arm-v7s sets them)
//! * Access permissions use the simplified AP\[2:1\] model with AP\[0\] as the access flag
//!   (always set). AP\[2\] set means read-only (no `WRITE`); AP\[1\] set means unprivileged
//!   accesses are allowed (no `PRIV`). Read access cannot be removed, so write-only
//!   mappings become read/write.
//! * Memory type through TEX\[0\]:C:B, chosen so that it means the same with or without TEX
//!   remap (with remap, the [`hw_words`](Format::hw_words) PRRR/NMRR give the types):
//!   `MMIO` → TEX=000 C=0 B=1 (device, index 1); `CACHE` → TEX=001 C=1 B=1 (normal
//!   write-back write-allocate, index 7); otherwise TEX=001 C=0 B=0 (normal non-cacheable,
//!   index 4). `MMIO` wins over `CACHE`.
//! * Every leaf is shareable (S) and not global (nG).
//! * `NOEXEC` sets the XN bit of the descriptor type (bit 0 of a small page, bit 15 of a
//!   large page, bit 4 of a section or supersection).
//! * With [`ArmV7sConfig::ns`], sections and supersections get NS (bit 19) and page-table
//!   descriptors get NS (bit 3); second-level pages have no NS bit of their own.
//! * PXN and domains are never set (domain 0).
//!
//! # No dirty tracking
//! The short-descriptor format has no dirty state the hardware writes: no DBM, no
//! hardware update of AP bits (FEAT_HAFDBS is for long descriptors only), and an SMMU
//! walking these tables never writes them. Dirty reads refuse these tables with
//! [`Error::NoDirtyTracking`].

use crate::format::{Format, HwWords, Pte};
use crate::{Error, Prot};

// ---- Descriptor type field, bits [1:0] ----
/// Mask of the type field.
const TYPE_MASK: u32 = 0b11;
/// Level 1: page-table descriptor.
const L1_TYPE_TABLE: u32 = 0b01;
/// Level 1: section or supersection (0b11 is the same with PXN set).
const L1_TYPE_SECTION: u32 = 0b10;
/// Level 0: large page.
const L0_TYPE_LARGE: u32 = 0b01;
/// Level 0: small page (bit 0 is then the XN bit).
const L0_TYPE_SMALL: u32 = 0b10;

// ---- Level-1 page-table descriptor ----
/// Non-secure table.
const TABLE_NS: u32 = 1 << 3;
/// Base address of a second-level table, bits [31:10].
const TABLE_ADDR: u32 = 0xffff_fc00;

// ---- Memory type bits, at the same place in every leaf type ----
/// B (bufferable), bit 2.
const ATTR_B: u32 = 1 << 2;
/// C (cacheable), bit 3.
const ATTR_C: u32 = 1 << 3;

// ---- Level-1 section / supersection ----
const SECT_XN: u32 = 1 << 4;
/// AP[1:0] at bits [11:10].
const SECT_AP_SHIFT: u32 = 10;
/// TEX[2:0] at bits [14:12].
const SECT_TEX_SHIFT: u32 = 12;
const SECT_AP2: u32 = 1 << 15;
const SECT_S: u32 = 1 << 16;
const SECT_NG: u32 = 1 << 17;
/// Set for a supersection, clear for a section.
const SECT_SUPER: u32 = 1 << 18;
const SECT_NS: u32 = 1 << 19;
/// Section base, bits [31:20].
const SECT_ADDR: u32 = 0xfff0_0000;
/// Supersection base, bits [31:24] (bits [23:20] and [8:5] would hold PA[39:32]).
const SUPER_ADDR: u32 = 0xff00_0000;

// ---- Level-0 small / large page ----
/// AP[1:0] at bits [5:4].
const PAGE_AP_SHIFT: u32 = 4;
const PAGE_AP2: u32 = 1 << 9;
const PAGE_S: u32 = 1 << 10;
const PAGE_NG: u32 = 1 << 11;
/// Small page: XN is bit 0.
const SMALL_XN: u32 = 1 << 0;
/// Small page: TEX[2:0] at bits [8:6].
const SMALL_TEX_SHIFT: u32 = 6;
/// Large page: TEX[2:0] at bits [14:12].
const LARGE_TEX_SHIFT: u32 = 12;
/// Large page: XN is bit 15.
const LARGE_XN: u32 = 1 << 15;
/// Small page base, bits [31:12].
const SMALL_ADDR: u32 = 0xffff_f000;
/// Large page base, bits [31:16].
const LARGE_ADDR: u32 = 0xffff_0000;

// ---- AP[1:0] values under the simplified access model ----
/// AP[0]: the access flag.
const AP_AF: u32 = 0b01;
/// AP[1]: unprivileged accesses allowed.
const AP_UNPRIV: u32 = 0b10;

/// log2 of the number of identical entries in a large page or supersection.
const CONT_LG2: u32 = 4;

// ---- Register values ----
/// TTBR0.S: the walk is to shareable memory.
const TTBR_S: u32 = 1 << 1;
/// TTBR0.NOS: inner shareable rather than outer shareable.
const TTBR_NOS: u32 = 1 << 5;
/// TTBR0.RGN (outer cacheability of walks), bits [4:3]: 0b01 write-back write-allocate.
const TTBR_RGN_WBWA: u32 = 0b01 << 3;
/// TTBR0.IRGN (inner cacheability of walks) is split: IRGN[0] at bit 6, IRGN[1] at bit 0.
/// Write-back write-allocate is IRGN = 0b01, i.e. bit 6 only.
const TTBR_IRGN_WBWA: u32 = 1 << 6;

/// PRRR.TRn memory type codes.
const PRRR_DEVICE: u32 = 0b01;
const PRRR_NORMAL: u32 = 0b10;
/// PRRR as Linux programs it: index 1 device, indices 4 and 7 normal; DS0/DS1 (device
/// shareable for S=0 and S=1), NS1 (normal memory with S=1 is shareable), NOS7 (index 7
/// inner shareable).
const PRRR: u32 = (PRRR_DEVICE << 2)
    | (PRRR_NORMAL << 8)
    | (PRRR_NORMAL << 14)
    | (1 << 16)
    | (1 << 17)
    | (1 << 19)
    | (1 << 31);
/// NMRR.IRn/ORn cacheability code for write-back write-allocate.
const NMRR_WBWA: u32 = 0b01;
/// NMRR as Linux programs it: index 7 inner and outer write-back write-allocate, every
/// other index non-cacheable.
const NMRR: u32 = (NMRR_WBWA << 14) | (NMRR_WBWA << 30);

/// Configuration of an [`ArmV7s`] table.
///
/// `ArmV7sConfig::default()` is a valid configuration: secure, 32-bit output addresses,
/// non-coherent table walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmV7sConfig {
    /// Linux's `IO_PGTABLE_QUIRK_ARM_NS`: set the NS bit in sections, supersections and
    /// page-table descriptors.
    pub ns: bool,
    /// Output address width; must be 32 (the MediaTek 33/34/35-bit extension is not
    /// implemented).
    pub oa_bits: u32,
    /// The IOMMU's table walks snoop the CPU caches (Linux's `coherent_walk`): TTBR0 then
    /// asks for inner-shareable write-back write-allocate walks instead of non-cacheable.
    pub coherent_walk: bool,
}

impl Default for ArmV7sConfig {
    fn default() -> Self {
        ArmV7sConfig {
            ns: false,
            oa_bits: 32,
            coherent_walk: false,
        }
    }
}

/// The ARMv7 short-descriptor format: 2 levels, 32-bit entries, 4K/64K/1M/16M leaves.
///
/// ```
/// use iopt::fmt::armv7s::{ArmV7s, ArmV7sConfig};
/// use iopt::{Format, Prot, Pte};
/// let f = ArmV7s::new(ArmV7sConfig::default()).unwrap();
/// let pte = f.make_leaf(0, 0x1234_5000, 0, Prot::READ | Prot::WRITE);
/// assert_eq!(pte, 0x1234_5c72);
/// assert_eq!(f.decode(0, pte), Pte::Leaf { pa: 0x1234_5000, run_lg2: 0 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmV7s {
    cfg: ArmV7sConfig,
}

impl ArmV7s {
    /// Validates `cfg` and builds the format.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if `cfg.oa_bits` is not 32.
    pub fn new(cfg: ArmV7sConfig) -> Result<Self, Error> {
        if cfg.oa_bits != 32 {
            return Err(Error::BadConfig(
                "oa_bits must be 32 (the MediaTek >32-bit extension is not supported)",
            ));
        }
        Ok(ArmV7s { cfg })
    }

    /// The configuration this format was built with.
    #[inline]
    pub fn config(&self) -> ArmV7sConfig {
        self.cfg
    }
}

/// The attribute fields shared by every leaf type, before placement in a descriptor.
#[derive(Clone, Copy)]
struct LeafAttrs {
    /// AP[1:0] (AF and unprivileged access).
    ap: u32,
    /// AP[2] (read-only).
    ro: bool,
    /// TEX[2:0].
    tex: u32,
    /// C:B as bits [3:2] (the same position in every leaf type).
    cb: u32,
    /// Execute-never.
    xn: bool,
}

#[inline]
fn leaf_attrs(prot: Prot) -> LeafAttrs {
    let mut ap = AP_AF;
    if !prot.contains(Prot::PRIV) {
        ap |= AP_UNPRIV;
    }
    let (tex, cb) = if prot.contains(Prot::MMIO) {
        (0b000, ATTR_B)
    } else if prot.contains(Prot::CACHE) {
        (0b001, ATTR_C | ATTR_B)
    } else {
        (0b001, 0)
    };
    LeafAttrs {
        ap,
        ro: !prot.contains(Prot::WRITE),
        tex,
        cb,
        xn: prot.contains(Prot::NOEXEC),
    }
}

/// Builds a `Prot` from the decoded fields of a leaf.
#[inline]
fn prot_from(ap2: bool, ap: u32, tex: u32, c: bool, b: bool, xn: bool) -> Prot {
    let mut p = Prot::READ;
    if !ap2 {
        p |= Prot::WRITE;
    }
    if ap & AP_UNPRIV == 0 {
        p |= Prot::PRIV;
    }
    if xn {
        p |= Prot::NOEXEC;
    }
    if c && b {
        p |= Prot::CACHE;
    } else if b && !c && tex == 0 {
        p |= Prot::MMIO;
    }
    p
}

impl Format for ArmV7s {
    const NAME: &'static str = "armv7s";
    const ENTRY_LG2: u32 = 2;
    const MAX_LEVELS: u32 = 2;
    const OA_IN_PLACE: bool = true;
    const FIXED_GEOMETRY: bool = true;

    #[inline]
    fn levels(&self) -> u32 {
        2
    }

    #[inline]
    fn va_bits(&self, top_level: u32) -> u32 {
        // 12 index bits at the first level (4096 entries), 8 at the second.
        if top_level >= 1 { 32 } else { 20 }
    }

    #[inline]
    fn oa_bits(&self) -> u32 {
        self.cfg.oa_bits
    }

    #[inline]
    fn item_lg2(&self, level: u32) -> u32 {
        if level == 0 { 12 } else { 20 }
    }

    #[inline]
    fn table_lg2(&self, level: u32) -> u32 {
        if level == 0 { 8 } else { 12 }
    }

    #[inline]
    fn min_table_bytes_lg2(&self) -> u32 {
        // Second-level tables: 1 KiB, 1 KiB aligned. The 16 KiB first-level table gets its
        // 16 KiB alignment from its own size.
        10
    }

    #[inline]
    fn leaf_runs(&self, _level: u32) -> u32 {
        // Single entries (4K page / 1M section) and runs of 16 (64K page / 16M supersection).
        (1 << 0) | (1 << CONT_LG2)
    }

    #[inline]
    fn plain_leaf_pattern(&self, level: u32) -> (u64, u64) {
        // Small page (0b1x) at level 0; section (0b1x without the supersection bit)
        // above.
        if level == 0 {
            (0b10, u64::from(L0_TYPE_SMALL))
        } else {
            (u64::from(0b10 | SECT_SUPER), u64::from(L1_TYPE_SECTION))
        }
    }

    #[inline]
    fn decode(&self, level: u32, pte: u64) -> Pte {
        let pte = pte as u32;
        let ty = pte & TYPE_MASK;
        if ty == 0 {
            return Pte::Empty;
        }
        if level == 0 {
            if ty == L0_TYPE_LARGE {
                Pte::Leaf {
                    pa: u64::from(pte & LARGE_ADDR),
                    run_lg2: CONT_LG2,
                }
            } else {
                Pte::Leaf {
                    pa: u64::from(pte & SMALL_ADDR),
                    run_lg2: 0,
                }
            }
        } else if ty == L1_TYPE_TABLE {
            Pte::Table {
                pa: u64::from(pte & TABLE_ADDR),
            }
        } else if pte & SECT_SUPER != 0 {
            // 0b10, or 0b11 (PXN set): supersection.
            Pte::Leaf {
                pa: u64::from(pte & SUPER_ADDR),
                run_lg2: CONT_LG2,
            }
        } else {
            Pte::Leaf {
                pa: u64::from(pte & SECT_ADDR),
                run_lg2: 0,
            }
        }
    }

    #[inline]
    fn leaf_prot(&self, level: u32, pte: u64) -> Prot {
        let pte = pte as u32;
        let c = pte & ATTR_C != 0;
        let b = pte & ATTR_B != 0;
        if level == 0 {
            let ap = (pte >> PAGE_AP_SHIFT) & 0b11;
            let ap2 = pte & PAGE_AP2 != 0;
            let (tex, xn) = if pte & L0_TYPE_SMALL != 0 {
                ((pte >> SMALL_TEX_SHIFT) & 0b111, pte & SMALL_XN != 0)
            } else {
                ((pte >> LARGE_TEX_SHIFT) & 0b111, pte & LARGE_XN != 0)
            };
            prot_from(ap2, ap, tex, c, b, xn)
        } else {
            let ap = (pte >> SECT_AP_SHIFT) & 0b11;
            let ap2 = pte & SECT_AP2 != 0;
            let tex = (pte >> SECT_TEX_SHIFT) & 0b111;
            prot_from(ap2, ap, tex, c, b, pte & SECT_XN != 0)
        }
    }

    /// A change of memory type (TEX/C/B) needs break-before-make, as on every ARM
    /// translation regime; permissions (AP, XN) change in place. Cuts are never hitless:
    /// the short-descriptor format predates FEAT_BBM.
    #[inline]
    fn prot_needs_bbm(&self, old: Prot, new: Prot) -> bool {
        (old ^ new).intersects(Prot::CACHE.union(Prot::MMIO))
    }

    #[inline]
    fn make_table(&self, level: u32, table_pa: u64) -> u64 {
        debug_assert_eq!(level, 1, "only the first level holds table descriptors");
        debug_assert_eq!(table_pa & !u64::from(TABLE_ADDR), 0, "bad table address");
        let mut pte = (table_pa as u32 & TABLE_ADDR) | L1_TYPE_TABLE;
        if self.cfg.ns {
            pte |= TABLE_NS;
        }
        u64::from(pte)
    }

    #[inline]
    fn make_leaf(&self, level: u32, pa: u64, run_lg2: u32, prot: Prot) -> u64 {
        debug_assert!(run_lg2 == 0 || run_lg2 == CONT_LG2, "unsupported run");
        let a = leaf_attrs(prot);
        let pa = pa as u32;
        let pte = if level == 0 {
            let common =
                (a.ap << PAGE_AP_SHIFT) | if a.ro { PAGE_AP2 } else { 0 } | PAGE_S | PAGE_NG | a.cb;
            if run_lg2 == 0 {
                debug_assert_eq!(pa & !SMALL_ADDR, 0);
                (pa & SMALL_ADDR)
                    | common
                    | (a.tex << SMALL_TEX_SHIFT)
                    | if a.xn { SMALL_XN } else { 0 }
                    | L0_TYPE_SMALL
            } else {
                debug_assert_eq!(pa & !LARGE_ADDR, 0);
                (pa & LARGE_ADDR)
                    | common
                    | (a.tex << LARGE_TEX_SHIFT)
                    | if a.xn { LARGE_XN } else { 0 }
                    | L0_TYPE_LARGE
            }
        } else {
            let mut pte = (a.ap << SECT_AP_SHIFT)
                | if a.ro { SECT_AP2 } else { 0 }
                | (a.tex << SECT_TEX_SHIFT)
                | SECT_S
                | SECT_NG
                | if a.xn { SECT_XN } else { 0 }
                | a.cb
                | L1_TYPE_SECTION;
            if self.cfg.ns {
                pte |= SECT_NS;
            }
            if run_lg2 == 0 {
                debug_assert_eq!(pa & !SECT_ADDR, 0);
                pte | (pa & SECT_ADDR)
            } else {
                debug_assert_eq!(pa & !SUPER_ADDR, 0);
                pte | SECT_SUPER | (pa & SUPER_ADDR)
            }
        };
        u64::from(pte)
    }

    #[inline]
    fn run_step(&self, _level: u32, _run_lg2: u32) -> u64 {
        // Large pages and supersections repeat one descriptor 16 times.
        0
    }

    fn hw_words(&self, root_pa: u64, _top_level: u32) -> HwWords {
        debug_assert_eq!(
            root_pa & 0x3fff,
            0,
            "the first-level table must be 16 KiB aligned"
        );
        let walk = if self.cfg.coherent_walk {
            TTBR_NOS | TTBR_IRGN_WBWA | TTBR_RGN_WBWA
        } else {
            // IRGN = RGN = 0b00: non-cacheable walks.
            0
        };
        let ttbr = (root_pa as u32) | TTBR_S | walk;
        let mut w = HwWords::new();
        w.push("TTBR", u64::from(ttbr));
        // TTBCR: N = 0 (TTBR0 covers the whole 32-bit space), EAE = 0 (short descriptors).
        w.push("TCR", 0);
        w.push("NMRR", u64::from(NMRR));
        w.push("PRRR", u64::from(PRRR));
        w
    }
}
