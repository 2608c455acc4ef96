//! Differential tests: iopt's ARM64 LPAE format (4K granule, stage 1 and stage 2) against
//! Google's `aarch64-paging` crate, an independent implementation of the same VMSAv8-64
//! descriptors.
//!
//! Each test builds the same mappings in both libraries and then checks, against an
//! interval model of what should be mapped:
//! - translations: iopt's `translate`, aarch64-paging's walker on its own table,
//!   aarch64-paging's walker on *iopt's* table memory (the key check: an independent
//!   walker agrees on the tables iopt wrote), and iopt's format decoder on the table
//!   memory aarch64-paging wrote;
//! - descriptors: both trees side by side, every entry of every table: the same entries
//!   are invalid (and zero), tables (with the same non-address bits) or leaves (with
//!   equal raw values), and both libraries hold the same number of tables.
//!
//! What aarch64-paging 0.12.3 can express, and so what is compared:
//! - 4K granule only, 64-bit descriptors, root at ARM level 0..=3 (no 16K/64K, no
//!   52-bit LPA2 level -1). iopt is configured with `Granule::K4`, oas 48.
//! - It never writes the contiguous hint (its `Constraints::NO_CONTIGUOUS_HINT` exists
//!   but is unused), so the main tests build iopt tables with `contiguous: false`;
//!   `contiguous_runs_read_by_peer_walker` checks that its walker still reads iopt's
//!   contiguous runs and that the runs differ from its tables only in bit 52.
//! - It has no stage-2 concatenated top table. Table-to-table comparisons use stage-2
//!   configurations in which iopt does not concatenate either (ias 48 and ias 39 with
//!   oas 48: 4 and 3 levels); `s2_concatenated_top_walked_per_table` walks iopt's
//!   concatenated top one 4K table at a time instead.
//! - Blocks at ARM levels 1 and 2 (1G, 2M), placed whenever a whole entry's range is
//!   mapped and the output address is aligned; never at level 0. iopt is given the same
//!   greedy split as explicit `map_pages` calls.
//! - Table descriptors carry no hierarchical attributes (APTable, XNTable, NSTable);
//!   iopt with `ns: false` writes none either.
//! - Its stage-2 attributes know only XN\[1\] (bit 54); iopt writes the same for
//!   `NOEXEC` at stage 2 (XN\[1:0\] = 0b10), so stage-2 leaves compare bit for bit.
//! - Mapping over an empty table left behind by a partial unmap: aarch64-paging descends
//!   into the table and writes smaller leaves, iopt frees it and writes the block. After
//!   such remaps only translations are compared.
#![cfg(target_pointer_width = "64")]

use aarch64_paging::descriptor::{
    Descriptor, El1Attributes, PagingAttributes, PhysicalAddress, Stage2Attributes,
};
use aarch64_paging::paging::{
    Constraints, El1And0, MemoryRegion, RootTable, Stage2, Translation as PeerTranslation,
    TranslationRegime, VaRange,
};
use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig, Granule, Stage};
use iopt::mem::HeapMemory;
use iopt::{Format, Gather, NoFlush, PageTable, Prot, Pte};
use proptest::prelude::*;

#[path = "common/aarch64_peer.rs"]
mod aarch64_peer;
use aarch64_peer::{Adopt, HeapTr, s1_attrs, s2_attrs};

const K4: u64 = 1 << 12;
const K64: u64 = 1 << 16;
const M2: u64 = 1 << 21;
const M32: u64 = 1 << 25;
const G1: u64 = 1 << 30;
/// The leaf sizes of the 4K granule, largest first.
const SIZES: [u64; 3] = [G1, M2, K4];
/// Output-address field of a 4K-granule descriptor, bits 47:12.
const ADDR: u64 = 0x0000_ffff_ffff_f000;
/// Bits 1:0 of a table descriptor (and of a page).
const TABLE_BITS: u64 = 0b11;
/// Stage-2 XN\[0\], which aarch64-paging's `Stage2Attributes` does not define.
const S2_XN0: u64 = 1 << 53;
/// XN / UXN / stage-2 XN\[1\].
const XN: u64 = 1 << 54;
/// The contiguous hint.
const CONT: u64 = 1 << 52;
/// Lowest output address the tests use: high enough that aarch64-paging's block-reuse
/// check (`pa - start % granularity`) never underflows while unmapping.
const PA_FLOOR: u64 = 1 << 40;

type IoTable = PageTable<ArmLpae, HeapMemory, NoFlush>;

// ---------------------------------------------------------------------------------------
// Seeded randomness (SplitMix64).

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------------------
// Geometry of one configuration.

#[derive(Debug, Clone, Copy)]
struct Geo {
    stage: Stage,
    ias: u32,
    ttbr1: bool,
}

const S1_48: Geo = Geo {
    stage: Stage::S1,
    ias: 48,
    ttbr1: false,
};
const S1_39: Geo = Geo {
    stage: Stage::S1,
    ias: 39,
    ttbr1: false,
};
const S1_39_TTBR1: Geo = Geo {
    stage: Stage::S1,
    ias: 39,
    ttbr1: true,
};
const S2_48: Geo = Geo {
    stage: Stage::S2,
    ias: 48,
    ttbr1: false,
};
const S2_39: Geo = Geo {
    stage: Stage::S2,
    ias: 39,
    ttbr1: false,
};

impl Geo {
    fn format(self, contiguous: bool) -> ArmLpae {
        ArmLpae::new(ArmLpaeConfig {
            stage: self.stage,
            granule: Granule::K4,
            ias: self.ias,
            oas: 48,
            contiguous,
            coherent_walk: true,
            ttbr1: self.ttbr1,
            ns: false,
            dirty_tracking: false,
            bbm_level: 0,
        })
        .unwrap()
    }
    /// ARM number of the root level: 0 for 48 bits, 1 for 39 bits.
    fn root_level(self) -> usize {
        4 - (self.ias as usize - 12).div_ceil(9)
    }
    /// First IOVA of the translated range.
    fn base(self) -> u64 {
        if self.ttbr1 {
            0u64.wrapping_sub(1 << self.ias)
        } else {
            0
        }
    }
    fn span(self) -> u64 {
        1 << self.ias
    }
    /// One past the last IOVA the tests may probe. aarch64-paging's region rounding
    /// overflows in the very last page of the 64-bit space, so the upper range keeps off it.
    fn probe_end(self) -> u64 {
        if self.ttbr1 {
            0u64.wrapping_sub(K4)
        } else {
            self.span()
        }
    }
}

// ---------------------------------------------------------------------------------------
// The peer: aarch64-paging regimes, their attributes for an iopt `Prot`, table memory.

trait Regime: TranslationRegime {
    const STAGE: Stage;
    /// Leaf bits iopt writes that this regime's attribute type does not define.
    const IOPT_ONLY: u64;
    fn root<T: PeerTranslation<Self::Attributes>>(
        t: T,
        level: usize,
        upper: bool,
    ) -> RootTable<Self, T>;
    /// The attributes iopt's encoding of `prot` corresponds to.
    fn attrs(prot: Prot) -> Self::Attributes;
}

impl Regime for El1And0 {
    const STAGE: Stage = Stage::S1;
    const IOPT_ONLY: u64 = 0;
    fn root<T: PeerTranslation<El1Attributes>>(
        t: T,
        level: usize,
        upper: bool,
    ) -> RootTable<Self, T> {
        let range = if upper {
            VaRange::Upper
        } else {
            VaRange::Lower
        };
        RootTable::with_va_range(t, level, El1And0, range)
    }
    /// Stage 1, with iopt's MAIR layout (index 0 normal non-cacheable, 1 write-back,
    /// 2 device): AF and nG always; AP\[2\] for read-only; AP\[1\] unless privileged;
    /// inner-shareable when cacheable, else outer; UXN and PXN for no-execute.
    fn attrs(prot: Prot) -> El1Attributes {
        s1_attrs(prot)
    }
}

impl Regime for Stage2 {
    const STAGE: Stage = Stage::S2;
    const IOPT_ONLY: u64 = 0;
    fn root<T: PeerTranslation<Stage2Attributes>>(
        t: T,
        level: usize,
        upper: bool,
    ) -> RootTable<Self, T> {
        assert!(!upper, "stage 2 has no upper range");
        RootTable::new(t, level, Stage2)
    }
    /// Stage 2: AF always; S2AP read/write from the prot; MemAttr Device-nGnRE for MMIO,
    /// inner+outer write-back when cacheable, else inner+outer non-cacheable; the stage-1
    /// shareability rule; XN for no-execute.
    fn attrs(prot: Prot) -> Stage2Attributes {
        s2_attrs(prot)
    }
}

/// The raw 64-bit descriptor (`Descriptor::bits` is crate-private, but address and flags
/// together rebuild it exactly: `flags()` keeps every non-address bit).
fn raw<A: PagingAttributes>(d: &Descriptor<A>) -> u64 {
    (d.output_address().0 | d.flags().bits()) as u64
}

/// What aarch64-paging's walker finds at `va`: (output address, ARM level, raw leaf).
fn peer_walk<R: Regime, T: PeerTranslation<R::Attributes>>(
    rt: &RootTable<R, T>,
    va: u64,
) -> Option<(u64, usize, u64)> {
    let mut out = None;
    let mut calls = 0;
    rt.walk_range(
        &MemoryRegion::new(va as usize, va as usize + 1),
        &mut |_, d, level| {
            calls += 1;
            if d.is_valid() {
                let size = 1u64 << (12 + 9 * (3 - level));
                out = Some((
                    d.output_address().0 as u64 + (va & (size - 1)),
                    level,
                    raw(d),
                ));
            }
            Ok(())
        },
    )
    .unwrap_or_else(|e| panic!("peer walk of {va:#x}: {e}"));
    assert_eq!(calls, 1, "one descriptor per page probe at {va:#x}");
    out
}

/// Reads entry `idx` of the table at `table_pa`.
///
/// # Safety
/// `table_pa` is a live table (PA == host address) with more than `idx` entries, not
/// being written.
unsafe fn load(table_pa: u64, idx: u64) -> u64 {
    // SAFETY: as the caller guarantees.
    unsafe { (table_pa as *const u64).add(idx as usize).read() }
}

/// iopt's format decoder walking a table at `root_pa` (PA == host address) that anyone
/// may have written: (output address, iopt level, prot, raw leaf).
///
/// # Safety
/// `root_pa` is the live top table of a tree in `fmt`'s geometry, not being written.
unsafe fn decode_walk(fmt: &ArmLpae, root_pa: u64, va: u64) -> Option<(u64, u32, Prot, u64)> {
    let mut table = root_pa;
    let mut level = fmt.levels() - 1;
    loop {
        let item = fmt.item_lg2(level);
        // SAFETY: a live table of 512 entries (no concatenation in these geometries).
        let e = unsafe { load(table, (va >> item) & 511) };
        match fmt.decode(level, e) {
            Pte::Empty => return None,
            Pte::Table { pa } => {
                assert!(level > 0, "table descriptor at the leaf level: {e:#x}");
                table = pa;
                level -= 1;
            }
            Pte::Leaf { pa, run_lg2 } => {
                let size = 1u64 << (item + run_lg2);
                return Some((pa + (va & (size - 1)), level, fmt.leaf_prot(level, e), e));
            }
        }
    }
}

/// Compares two trees entry by entry from the tables at `io_pa` (iopt) and `peer_pa`
/// (aarch64-paging), both at ARM `level` and starting at IOVA `va`. Counts leaves per ARM
/// level and tables (below the root) in `counts` / `tables`.
///
/// # Safety
/// Both are live trees (PA == host address), not being written.
unsafe fn compare_trees(
    io_pa: u64,
    peer_pa: u64,
    level: usize,
    va: u64,
    iopt_only: u64,
    counts: &mut [u64; 4],
    tables: &mut u64,
) {
    let shift = 12 + 9 * (3 - level as u32);
    for i in 0..512u64 {
        let at = va.wrapping_add(i << shift);
        // SAFETY: both tables are live and have 512 entries.
        let (a, b) = unsafe { (load(io_pa, i), load(peer_pa, i)) };
        if a & 1 == 0 {
            assert_eq!((a, b), (0, 0), "invalid entries at {at:#x} L{level}");
        } else if level < 3 && a & TABLE_BITS == TABLE_BITS {
            assert_eq!(
                a & !ADDR,
                TABLE_BITS,
                "iopt table descriptor at {at:#x} L{level}"
            );
            assert_eq!(
                b & !ADDR,
                TABLE_BITS,
                "peer table descriptor at {at:#x} L{level}"
            );
            *tables += 1;
            // SAFETY: valid table descriptors of live trees point to live tables.
            unsafe { compare_trees(a & ADDR, b & ADDR, level + 1, at, iopt_only, counts, tables) };
        } else {
            assert!(level >= 1, "block at ARM level 0: {a:#x}");
            assert_eq!(
                a & !iopt_only,
                b,
                "leaf at {at:#x} L{level}: iopt {a:#x}, aarch64-paging {b:#x}"
            );
            counts[level] += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Building both tables.

#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    iova: u64,
    pa: u64,
    len: u64,
    prot: Prot,
}

impl Range {
    fn find(ranges: &[Range], va: u64) -> Option<u64> {
        ranges
            .iter()
            .find(|r| va.wrapping_sub(r.iova) < r.len)
            .map(|r| r.pa + (va - r.iova))
    }
}

/// The largest naturally aligned pieces (from `sizes`, largest first) whose IOVA and
/// output address are both aligned: aarch64-paging's own choice when blocks are allowed
/// (and Linux's `iommu_pgsize`). Consecutive pieces of one size are merged:
/// `(iova, pa, size, count)`.
fn pieces(iova: u64, pa: u64, len: u64, sizes: &[u64]) -> Vec<(u64, u64, u64, usize)> {
    let mut out: Vec<(u64, u64, u64, usize)> = Vec::new();
    let mut off = 0;
    while off < len {
        let (v, p) = (iova + off, pa + off);
        let size = *sizes
            .iter()
            .find(|&&s| (v | p) & (s - 1) == 0 && len - off >= s)
            .expect("4K-aligned range");
        match out.last_mut() {
            Some(last) if last.2 == size => last.3 += 1,
            _ => out.push((v, p, size, 1)),
        }
        off += size;
    }
    out
}

struct Pair<R: Regime> {
    geo: Geo,
    fmt: ArmLpae,
    io: IoTable,
    peer: RootTable<R, HeapTr>,
    live: Vec<Range>,
}

impl<R: Regime> Pair<R> {
    fn new(geo: Geo) -> Self {
        Self::with_format(geo, geo.format(false))
    }

    fn with_format(geo: Geo, fmt: ArmLpae) -> Self {
        assert_eq!(R::STAGE, geo.stage);
        let io = IoTable::new(fmt, HeapMemory::new(), NoFlush).unwrap();
        let info = io.info();
        // The geometry aarch64-paging supports: no concatenation, root at this level.
        assert_eq!(info.levels as usize, 4 - geo.root_level(), "{geo:?}");
        assert_eq!(fmt.start_level_arm() as usize, geo.root_level());
        assert_eq!(info.aperture.start, geo.base());
        assert_eq!(info.aperture.last, geo.base().wrapping_add(geo.span() - 1));
        let peer = R::root(HeapTr { live: 0 }, geo.root_level(), geo.ttbr1);
        assert_eq!(peer.size() as u64, geo.span());
        Pair {
            geo,
            fmt,
            io,
            peer,
            live: Vec::new(),
        }
    }

    /// Maps `r` in both: iopt with the greedy split (4K pages only without `blocks`),
    /// aarch64-paging with one `map_range`.
    fn map(&mut self, r: Range, blocks: bool) {
        let sizes: &[u64] = if blocks { &SIZES } else { &[K4] };
        for (iova, pa, size, count) in pieces(r.iova, r.pa, r.len, sizes) {
            // SAFETY: single-threaded; nothing walks the table.
            let got = unsafe { self.io.map_pages(iova, pa, size, count, r.prot) };
            assert_eq!(
                got,
                (size * count as u64, Ok(())),
                "iopt map {iova:#x} {size:#x}x{count}"
            );
        }
        let c = if blocks {
            Constraints::empty()
        } else {
            Constraints::NO_BLOCK_MAPPINGS
        };
        let region = MemoryRegion::new(r.iova as usize, (r.iova + r.len) as usize);
        self.peer
            .map_range(&region, PhysicalAddress(r.pa as usize), R::attrs(r.prot), c)
            .unwrap_or_else(|e| panic!("aarch64-paging map {r:x?}: {e}"));
        self.live.push(r);
    }

    /// Unmaps the whole of the earlier mapping `r` in both (aarch64-paging: a `map_range`
    /// without VALID).
    fn unmap(&mut self, r: Range) {
        let mut g = Gather::new();
        // SAFETY: as for map.
        let got = unsafe { self.io.unmap_range(r.iova, r.len, &mut g) };
        assert_eq!(got, (r.len, Ok(())), "iopt unmap {r:x?}");
        self.io.sync(&mut g);
        let region = MemoryRegion::new(r.iova as usize, (r.iova + r.len) as usize);
        self.peer
            .map_range(
                &region,
                PhysicalAddress(r.pa as usize),
                R::Attributes::default(),
                Constraints::empty(),
            )
            .unwrap_or_else(|e| panic!("aarch64-paging unmap {r:x?}: {e}"));
        self.live.retain(|x| *x != r);
    }

    /// Compares both trees entry by entry; returns leaves per ARM level.
    fn compare_trees(&self, iopt_only: u64) -> [u64; 4] {
        let mut counts = [0; 4];
        let mut tables = 0;
        // SAFETY: both trees are live and nothing writes them while `&self` is held.
        unsafe {
            compare_trees(
                self.io.info().root_pa,
                self.peer.to_physical().0 as u64,
                self.geo.root_level(),
                self.geo.base(),
                iopt_only,
                &mut counts,
                &mut tables,
            )
        };
        assert_eq!(self.io.mem_stats().pages, tables + 1, "iopt table pages");
        assert_eq!(
            self.peer.translation().live as u64,
            tables + 1,
            "peer tables"
        );
        counts
    }

    /// Probes `va` four ways against the model. `same_shape`: both trees were built by
    /// the same sequence without remaps over left-over tables, so leaves match exactly.
    fn probe(&self, adopted: &RootTable<R, Adopt>, va: u64, same_shape: bool) {
        let want = Range::find(&self.live, va);
        // SAFETY: single-threaded; nothing writes the table.
        let io = unsafe { self.io.translate(va) };
        let own = peer_walk(&self.peer, va);
        let on_iopt = peer_walk(adopted, va);
        // SAFETY: the peer's tree is live and not written while `&self` is held.
        let decoded = unsafe { decode_walk(&self.fmt, self.peer.to_physical().0 as u64, va) };
        let ctx = || format!("{:?} va {va:#x}", self.geo);
        assert_eq!(io.map(|t| t.pa), want, "iopt translate, {}", ctx());
        assert_eq!(
            own.map(|t| t.0),
            want,
            "aarch64-paging on its table, {}",
            ctx()
        );
        assert_eq!(
            on_iopt.map(|t| t.0),
            want,
            "aarch64-paging on iopt's table, {}",
            ctx()
        );
        assert_eq!(
            decoded.map(|t| t.0),
            want,
            "iopt decoding the peer's table, {}",
            ctx()
        );
        let (Some(io), Some(own), Some(on_iopt), Some(decoded)) = (io, own, on_iopt, decoded)
        else {
            return;
        };
        // aarch64-paging's walker on iopt's memory sees iopt's own leaf at iopt's level.
        assert_eq!(on_iopt.1, 3 - io.level as usize, "{}", ctx());
        // One entry, or a contiguous run of 16.
        let item = 1u64 << (12 + 9 * io.level);
        assert!(io.size == item || io.size == 16 * item, "{}", ctx());
        // iopt reads the peer's encoding of the same attributes as the same prot.
        assert_eq!(
            decoded.2,
            io.prot,
            "prot of the peer's leaf {:#x}, {}",
            own.2,
            ctx()
        );
        if same_shape {
            assert_eq!(io.size, item, "{}", ctx());
            assert_eq!(own.1, on_iopt.1, "leaf level, {}", ctx());
            assert_eq!(decoded.1, io.level, "{}", ctx());
            assert_eq!(on_iopt.2 & !R::IOPT_ONLY, own.2, "leaf bits, {}", ctx());
        }
    }

    /// Probes every range's edges, piece boundaries and random interior points, their
    /// neighbours, and random IOVAs over the whole range.
    fn check(&self, extra: &[Range], same_shape: bool, rng: &mut Rng) {
        let adopted = R::root(
            Adopt {
                root: Some(self.io.info().root_pa),
            },
            self.geo.root_level(),
            self.geo.ttbr1,
        );
        let (base, end) = (self.geo.base(), self.geo.probe_end());
        let ok = |va: u64| va >= base && va < end;
        let mut vas = Vec::new();
        for r in self.live.iter().chain(extra) {
            vas.extend([
                r.iova,
                r.iova + r.len - 1,
                r.iova.wrapping_sub(1),
                r.iova + r.len,
            ]);
            for (iova, _, size, count) in pieces(r.iova, r.pa, r.len, &SIZES) {
                let last = iova + size * count as u64 - 1;
                vas.extend([iova, last, iova + rng.below(last - iova + 1)]);
            }
            for _ in 0..6 {
                vas.push(r.iova + rng.below(r.len));
            }
        }
        for _ in 0..64 {
            vas.push(base + rng.below(end - base));
        }
        for va in vas.into_iter().filter(|&va| ok(va)) {
            self.probe(&adopted, va, same_shape);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Random mixes.

/// One range as proptest generates it: (kind, window, offset bits, length bits, pa bits,
/// prot bits).
type Spec = (u8, u16, u32, u32, u32, u8);

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..3,
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
    )
}

/// Turns a spec into a range inside its own 16G window (so ranges never overlap):
/// kind 0 is up to 512 pages at any output alignment; kind 1 up to 4G with the output
/// congruent to the IOVA modulo 2M (2M blocks and pages); kind 2 up to ~5G congruent
/// modulo 1G (1G and 2M blocks and pages).
fn range_of(geo: Geo, s: Spec) -> (u64, Range) {
    const WINDOW: u64 = 1 << 34;
    let (kind, slot, off, len, pa, prot) = s;
    let windows = geo.span() / WINDOW;
    let slot = u64::from(slot) % windows;
    let wbase = geo.base() + slot * WINDOW;
    let (off, len, pa) = (u64::from(off), u64::from(len), u64::from(pa));
    let pa_base = PA_FLOOR + (pa * G1) % (1 << 47);
    let pages = |x: u64| (x % 512) * K4;
    let (iova, len, pa) = match kind {
        0 => {
            let iova = wbase + (off % (1 << 21)) * K4;
            (iova, (1 + len % 512) * K4, pa_base + pages(pa >> 20))
        }
        1 => {
            let iova = wbase + (off % 4096) * M2 + pages(off >> 12);
            let len = (len % 2048) * M2 + pages(len >> 11) + K4;
            (iova, len, pa_base + (iova % M2))
        }
        _ => {
            let iova = wbase + (off % 4) * G1 + (off >> 2) % 512 * M2 + pages(off >> 11);
            let len = (len % 5) * G1 + (len >> 3) % 512 * M2 + pages(len >> 12) + K4;
            (iova, len, pa_base + (iova % G1))
        }
    };
    let mut prot = Prot::from_bits_truncate(u32::from(prot));
    if !prot.has_access() {
        prot |= Prot::READ;
    }
    (
        slot,
        Range {
            iova,
            pa,
            len,
            prot,
        },
    )
}

/// Maps the specs (one per window) in both tables and compares; unmaps those selected by
/// `unmap_mask` and compares; then maps 2M-rounded, 1G-congruent ranges over the freed
/// windows (where left-over empty tables make the two libraries differ in shape) and
/// compares translations.
fn run_mix<R: Regime>(geo: Geo, specs: &[Spec], unmap_mask: u32, seed: u64) {
    let mut rng = Rng(seed);
    let mut pair = Pair::<R>::new(geo);
    let mut slots = Vec::new();
    for &s in specs {
        let (slot, r) = range_of(geo, s);
        if !slots.contains(&slot) {
            slots.push(slot);
            pair.map(r, true);
        }
    }
    let mapped = pair.live.clone();
    pair.compare_trees(R::IOPT_ONLY);
    pair.check(&[], true, &mut rng);

    let gone: Vec<Range> = mapped
        .iter()
        .enumerate()
        .filter(|(i, _)| unmap_mask & (1 << i) != 0)
        .map(|(_, r)| *r)
        .collect();
    for &r in &gone {
        pair.unmap(r);
    }
    pair.compare_trees(R::IOPT_ONLY);
    pair.check(&gone, true, &mut rng);

    for r in &gone {
        let iova = r.iova & !(M2 - 1);
        let len = (r.iova + r.len).next_multiple_of(M2) - iova;
        let pa = PA_FLOOR + G1 * rng.below(1 << 16) + iova % G1;
        let prot = if rng.below(2) == 0 {
            Prot::READ | Prot::WRITE | Prot::CACHE
        } else {
            r.prot
        };
        pair.map(
            Range {
                iova,
                pa,
                len,
                prot,
            },
            true,
        );
    }
    pair.check(&gone, false, &mut rng);
}

fn mix_cfg() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(mix_cfg())]

    #[test]
    fn mix_s1_48(specs in proptest::collection::vec(spec(), 1..10), mask in any::<u32>(), seed in any::<u64>()) {
        run_mix::<El1And0>(S1_48, &specs, mask, seed);
    }

    #[test]
    fn mix_s1_39(specs in proptest::collection::vec(spec(), 1..10), mask in any::<u32>(), seed in any::<u64>()) {
        run_mix::<El1And0>(S1_39, &specs, mask, seed);
    }

    #[test]
    fn mix_s1_39_ttbr1(specs in proptest::collection::vec(spec(), 1..10), mask in any::<u32>(), seed in any::<u64>()) {
        run_mix::<El1And0>(S1_39_TTBR1, &specs, mask, seed);
    }

    #[test]
    fn mix_s2_48(specs in proptest::collection::vec(spec(), 1..10), mask in any::<u32>(), seed in any::<u64>()) {
        run_mix::<Stage2>(S2_48, &specs, mask, seed);
    }

    #[test]
    fn mix_s2_39(specs in proptest::collection::vec(spec(), 1..10), mask in any::<u32>(), seed in any::<u64>()) {
        run_mix::<Stage2>(S2_39, &specs, mask, seed);
    }
}

// ---------------------------------------------------------------------------------------
// Fixed shapes.

/// Every prot combination with access.
fn all_prots() -> impl Iterator<Item = Prot> {
    (0u32..64)
        .map(Prot::from_bits_truncate)
        .filter(|p| p.has_access())
}

/// Pages, 2M blocks and 1G blocks in one range, with every prot; and output alignments
/// that forbid the larger sizes.
fn every_size<R: Regime>(geo: Geo) {
    let mut pair = Pair::<R>::new(geo);
    let base = geo.base();
    let mut want = [0u64; 4];
    for (i, prot) in all_prots().enumerate() {
        let i = i as u64;
        // [1G - 8K, 3G + 2M + 12K) of window i: 2 pages, two 1G blocks, a 2M block, 3 pages.
        let w = base + (i + 1) * (8 * G1);
        let pa = PA_FLOOR + i * (8 * G1);
        let iova = w + G1 - 2 * K4;
        let len = 2 * G1 + M2 + 5 * K4;
        pair.map(
            Range {
                iova,
                pa: pa + G1 - 2 * K4,
                len,
                prot,
            },
            true,
        );
        want[1] += 2;
        want[2] += 1;
        want[3] += 5;
        // Output congruent modulo 2M only: 2M blocks instead of the 1G one.
        pair.map(
            Range {
                iova: w + 4 * G1,
                pa: pa + 4 * G1 + M2,
                len: G1,
                prot,
            },
            true,
        );
        want[2] += 512;
        // Output off by one page: pages only.
        pair.map(
            Range {
                iova: w + 6 * G1,
                pa: pa + 6 * G1 + K4,
                len: M2,
                prot,
            },
            true,
        );
        want[3] += 512;
    }
    assert_eq!(pair.compare_trees(R::IOPT_ONLY), want, "{geo:?}");
    pair.check(&[], true, &mut Rng(geo.ias.into()));
}

#[test]
fn every_size_s1() {
    every_size::<El1And0>(S1_48);
    every_size::<El1And0>(S1_39);
    every_size::<El1And0>(S1_39_TTBR1);
}

#[test]
fn every_size_s2() {
    every_size::<Stage2>(S2_48);
    every_size::<Stage2>(S2_39);
}

/// aarch64-paging with `NO_BLOCK_MAPPINGS` against iopt mapping 4K pages only.
fn pages_only<R: Regime>(geo: Geo) {
    let mut pair = Pair::<R>::new(geo);
    let base = geo.base();
    pair.map(
        Range {
            iova: base + 3 * G1,
            pa: PA_FLOOR + 5 * G1,
            len: 2 * M2,
            prot: Prot::READ | Prot::WRITE,
        },
        false,
    );
    pair.map(
        Range {
            iova: base + 7 * G1 - K4,
            pa: PA_FLOOR,
            len: 3 * K4,
            prot: Prot::READ | Prot::NOEXEC,
        },
        false,
    );
    assert_eq!(pair.compare_trees(R::IOPT_ONLY), [0, 0, 0, 1024 + 3]);
    pair.check(&[], true, &mut Rng(7));
}

#[test]
fn pages_only_all_configs() {
    pages_only::<El1And0>(S1_48);
    pages_only::<El1And0>(S1_39);
    pages_only::<El1And0>(S1_39_TTBR1);
    pages_only::<Stage2>(S2_48);
    pages_only::<Stage2>(S2_39);
}

/// Mappings that end at the top of the input range; IOVAs beyond it are refused by both.
fn aperture_top<R: Regime>(geo: Geo) {
    let mut pair = Pair::<R>::new(geo);
    let top = geo.span();
    pair.map(
        Range {
            iova: top - G1 - M2 - K4,
            pa: PA_FLOOR + 3 * G1 - M2 - K4,
            len: G1 + M2 + K4,
            prot: Prot::READ | Prot::WRITE | Prot::CACHE,
        },
        true,
    );
    assert_eq!(pair.compare_trees(R::IOPT_ONLY), [0, 1, 1, 1]);
    pair.check(&[], true, &mut Rng(11));
    for va in [top, top + 0x1234, u64::MAX / 2, u64::MAX - K4] {
        // SAFETY: single-threaded.
        assert_eq!(unsafe { pair.io.translate(va) }, None, "{va:#x}");
        let r = pair.peer.walk_range(
            &MemoryRegion::new(va as usize, va as usize + 1),
            &mut |_, _, _| Ok(()),
        );
        assert!(
            r.is_err(),
            "aarch64-paging accepts {va:#x} beyond its range"
        );
    }
}

#[test]
fn aperture_top_all_configs() {
    aperture_top::<El1And0>(S1_48);
    aperture_top::<El1And0>(S1_39);
    aperture_top::<Stage2>(S2_48);
    aperture_top::<Stage2>(S2_39);
}

/// The stage-2 XN encoding: both write XN\[1:0\] = 0b10 (never executable), and XN\[0\]
/// (RES0 without FEAT_XNX) stays clear.
#[test]
fn s2_xn_bits() {
    let mut pair = Pair::<Stage2>::new(S2_39);
    let prot = Prot::READ | Prot::NOEXEC;
    pair.map(
        Range {
            iova: G1,
            pa: PA_FLOOR,
            len: K4,
            prot,
        },
        true,
    );
    pair.compare_trees(0);
    // SAFETY: single-threaded.
    let t = unsafe { pair.io.translate(G1) }.unwrap();
    assert_eq!(t.prot & Prot::NOEXEC, Prot::NOEXEC);
    let own = peer_walk(&pair.peer, G1).unwrap();
    assert_eq!(own.2 & (XN | S2_XN0), XN);
}

/// iopt's contiguous runs (16 pages, 16 x 2M, 16 x 1G), which aarch64-paging never
/// writes: its walker reads iopt's runs entry by entry correctly, and the runs equal its
/// own leaves except for bit 52.
fn contiguous<R: Regime>(geo: Geo) {
    let mut pair = Pair::<R>::with_format(geo, geo.format(true));
    let base = geo.base();
    let prot = Prot::READ | Prot::WRITE | Prot::CACHE;
    let runs = [
        (base + 5 * G1 + 3 * K64, PA_FLOOR + 7 * K64, K64, K4),
        (
            base + 9 * G1 + 4 * M32,
            PA_FLOOR + 64 * G1 + 3 * M32,
            M32,
            M2,
        ),
        (base + 32 * G1, PA_FLOOR + 128 * G1, 16 * G1, G1),
    ];
    for (iova, pa, size, item) in runs {
        // SAFETY: single-threaded; nothing walks the table.
        let got = unsafe { pair.io.map_pages(iova, pa, size, 1, prot) };
        assert_eq!(got, (size, Ok(())));
        let region = MemoryRegion::new(iova as usize, (iova + size) as usize);
        pair.peer
            .map_range(
                &region,
                PhysicalAddress(pa as usize),
                R::attrs(prot),
                Constraints::empty(),
            )
            .unwrap();
        pair.live.push(Range {
            iova,
            pa,
            len: size,
            prot,
        });
        // SAFETY: single-threaded.
        let t = unsafe { pair.io.translate(iova + item) }.unwrap();
        assert_eq!((t.iova_base, t.size), (iova, size), "iopt wrote a run");
    }
    assert_eq!(pair.compare_trees(R::IOPT_ONLY | CONT), [0, 16, 16, 16]);
    let mut rng = Rng(5);
    pair.check(&[], false, &mut rng);
    // Every entry of iopt's runs carries the hint; the peer's never does.
    let adopted = R::root(
        Adopt {
            root: Some(pair.io.info().root_pa),
        },
        geo.root_level(),
        false,
    );
    for (iova, _, size, item) in runs {
        for i in 0..size / item {
            let va = iova + i * item + rng.below(item);
            assert_eq!(peer_walk(&adopted, va).unwrap().2 & CONT, CONT, "{va:#x}");
            assert_eq!(peer_walk(&pair.peer, va).unwrap().2 & CONT, 0, "{va:#x}");
        }
    }
}

#[test]
fn contiguous_runs_read_by_peer_walker() {
    contiguous::<El1And0>(S1_48);
    contiguous::<Stage2>(S2_39);
}

/// Stage 2 with ias 40: iopt starts at ARM level 1 with two concatenated 4K tables (an
/// 8K root) instead of a 2-entry level-0 table. aarch64-paging cannot build this, but
/// each concatenated table is an ordinary level-1 table for the IOVAs it covers, so its
/// walker reads table `i` as a root for `iova - i * 2^39`.
#[test]
fn s2_concatenated_top_walked_per_table() {
    let fmt = ArmLpae::new(ArmLpaeConfig {
        stage: Stage::S2,
        granule: Granule::K4,
        ias: 40,
        oas: 48,
        contiguous: false,
        ..ArmLpaeConfig::default()
    })
    .unwrap();
    assert_eq!((fmt.levels(), fmt.start_level_arm()), (3, 1));
    let io = IoTable::new(fmt, HeapMemory::new(), NoFlush).unwrap();
    let info = io.info();
    assert_eq!(
        (info.aperture.start, info.aperture.last),
        (0, (1 << 40) - 1)
    );
    let half = 1u64 << 39;
    let ranges = [
        Range {
            iova: G1 - K4,
            pa: PA_FLOOR,
            len: G1 + M2 + 2 * K4,
            prot: Prot::READ | Prot::WRITE,
        },
        Range {
            iova: half - M2,
            pa: PA_FLOOR + 8 * G1 - M2,
            len: G1 + 2 * M2,
            prot: Prot::READ | Prot::CACHE,
        },
        Range {
            iova: (1 << 40) - 3 * K4,
            pa: PA_FLOOR + 16 * G1,
            len: 3 * K4,
            prot: Prot::WRITE | Prot::NOEXEC,
        },
    ];
    for r in ranges {
        for (iova, pa, size, count) in pieces(r.iova, r.pa, r.len, &SIZES) {
            // SAFETY: single-threaded; nothing walks the table.
            let got = unsafe { io.map_pages(iova, pa, size, count, r.prot) };
            assert_eq!(got, (size * count as u64, Ok(())));
        }
    }
    let halves: Vec<RootTable<Stage2, Adopt>> = (0..2)
        .map(|i| {
            let root = info.root_pa + i * 4096;
            RootTable::new(Adopt { root: Some(root) }, 1, Stage2)
        })
        .collect();
    let mut rng = Rng(3);
    let mut vas: Vec<u64> = (0..256).map(|_| rng.below(1 << 40)).collect();
    for r in ranges {
        vas.extend([
            r.iova,
            r.iova + r.len - 1,
            r.iova.wrapping_sub(1),
            r.iova + r.len,
        ]);
        vas.extend((0..32).map(|_| r.iova + rng.below(r.len)));
    }
    for va in vas.into_iter().filter(|&va| va < 1 << 40) {
        let want = Range::find(&ranges, va);
        // SAFETY: single-threaded.
        let io_t = unsafe { io.translate(va) };
        assert_eq!(io_t.map(|t| t.pa), want, "{va:#x}");
        let peer = peer_walk(&halves[(va >> 39) as usize], va % half);
        assert_eq!(peer.map(|p| p.0), want, "{va:#x}");
        if let (Some(t), Some(p)) = (io_t, peer) {
            assert_eq!(p.1, 3 - t.level as usize, "{va:#x}");
        }
    }
}
