//! Differential tests: iopt's ARM32 LPAE format against Google's `aarch64-paging`.
//!
//! aarch64-paging 0.12.3 knows only VMSAv8-64 with the 4K granule (`PAGE_SHIFT` 12,
//! address field 47:12, root at ARM level 0..=3). It has no AArch32 regime, no 64K
//! granule (so no FEAT_LPA 52-bit output) and no LPA2. But the AArch32 long-descriptor
//! format's descriptors are bit for bit those of VMSAv8-64 with the 4K granule, and its
//! walks start at ARM level 1 or 2, which aarch64-paging supports: so iopt's
//! [`Arm32Lpae`] tables can be compared with aarch64-paging's for the same mappings
//! whenever the geometry matches.
//! - Stage 2, 39-bit IPA, 40-bit output: both roots are one 512-entry table at ARM
//!   level 1. The trees are compared entry by entry, and aarch64-paging's walker also
//!   walks iopt's table memory.
//! - Stage 1, 32-bit input: iopt's root has the 4 entries TTBCR.T0SZ 0 gives; the
//!   peer's level-1 root has 512, of which only the first 4 may be used. The trees are
//!   compared from the root's first 4 entries down (the peer's others must stay empty).
//!   The peer's walker does not walk iopt's memory here (it would take the 64-byte root
//!   for a 4 KiB table).
//!
//! In both, iopt's decoder also walks the peer's tables, and every probe agrees with an
//! interval model. Both libraries keep their tables on the heap (PA == host address,
//! which is above 2^40 on a 64-bit host), so iopt's table runs through [`Wide`], which
//! changes nothing but the table-address reach the engine checks against. Contiguous hints are off in iopt (aarch64-paging never writes them),
//! and iopt is given the same greedy split into 1G / 2M / 4K pieces that aarch64-paging
//! uses.
#![cfg(target_pointer_width = "64")]

use aarch64_paging::descriptor::{El1Attributes, PhysicalAddress, Stage2Attributes};
use aarch64_paging::paging::{
    Constraints, El1And0, MemoryRegion, RootTable, Stage2, Translation as PeerTranslation,
    TranslationRegime, VaRange,
};
use iopt::fmt::arm_lpae::Stage;
use iopt::fmt::arm32_lpae::{Arm32Lpae, Arm32LpaeConfig};
use iopt::mem::HeapMemory;
use iopt::{Format, Gather, HwWords, NoFlush, PageTable, Prot, Pte, VaMode};

#[path = "common/aarch64_peer.rs"]
mod aarch64_peer;
use aarch64_peer::{Adopt, HeapTr, s1_attrs, s2_attrs};

const K4: u64 = 1 << 12;
const M2: u64 = 1 << 21;
const G1: u64 = 1 << 30;
const SIZES: [u64; 3] = [G1, M2, K4];
/// Output-address field of a 4K-granule descriptor.
const ADDR: u64 = 0x0000_ffff_ffff_f000;
/// Output addresses are drawn in [PA_FLOOR, 2^40): above 1G so that aarch64-paging's
/// block-reuse arithmetic never underflows.
const PA_FLOOR: u64 = 1 << 32;
const OA: u64 = 1 << 40;

type IoTable = PageTable<Wide, HeapMemory, NoFlush>;

/// [`Arm32Lpae`] with table pages allowed anywhere below 2^48 (host heap addresses):
/// every entry is encoded and decoded by the format itself.
struct Wide(Arm32Lpae);

impl Format for Wide {
    const NAME: &'static str = Arm32Lpae::NAME;
    const ENTRY_LG2: u32 = Arm32Lpae::ENTRY_LG2;
    const MAX_LEVELS: u32 = Arm32Lpae::MAX_LEVELS;
    const OA_IN_PLACE: bool = Arm32Lpae::OA_IN_PLACE;
    fn levels(&self) -> u32 {
        self.0.levels()
    }
    fn va_bits(&self, top_level: u32) -> u32 {
        self.0.va_bits(top_level)
    }
    fn va_mode(&self) -> VaMode {
        self.0.va_mode()
    }
    fn oa_bits(&self) -> u32 {
        self.0.oa_bits()
    }
    fn table_pa_bits(&self) -> u32 {
        48
    }
    fn item_lg2(&self, level: u32) -> u32 {
        self.0.item_lg2(level)
    }
    fn table_lg2(&self, level: u32) -> u32 {
        self.0.table_lg2(level)
    }
    fn min_table_bytes_lg2(&self) -> u32 {
        self.0.min_table_bytes_lg2()
    }
    fn leaf_runs(&self, level: u32) -> u32 {
        self.0.leaf_runs(level)
    }
    fn decode(&self, level: u32, pte: u64) -> Pte {
        self.0.decode(level, pte)
    }
    fn leaf_prot(&self, level: u32, pte: u64) -> Prot {
        self.0.leaf_prot(level, pte)
    }
    fn make_table(&self, level: u32, table_pa: u64) -> u64 {
        self.0.make_table(level, table_pa)
    }
    fn make_leaf(&self, level: u32, pa: u64, run_lg2: u32, prot: Prot) -> u64 {
        self.0.make_leaf(level, pa, run_lg2, prot)
    }
    fn run_step(&self, level: u32, run_lg2: u32) -> u64 {
        self.0.run_step(level, run_lg2)
    }
    fn hw_words(&self, root_pa: u64, top_level: u32) -> HwWords {
        self.0.hw_words(root_pa, top_level)
    }
}

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

/// An aarch64-paging regime standing in for one ARM32 stage.
trait Regime: TranslationRegime + Sized {
    const STAGE: Stage;
    const IAS: u32;
    fn root<T: PeerTranslation<Self::Attributes>>(t: T) -> RootTable<Self, T>;
    /// The attributes iopt's encoding of `prot` corresponds to.
    fn attrs(prot: Prot) -> Self::Attributes;
}

impl Regime for El1And0 {
    const STAGE: Stage = Stage::S1;
    const IAS: u32 = 32;
    fn root<T: PeerTranslation<El1Attributes>>(t: T) -> RootTable<Self, T> {
        RootTable::with_va_range(t, 1, El1And0, VaRange::Lower)
    }
    fn attrs(prot: Prot) -> El1Attributes {
        s1_attrs(prot)
    }
}

impl Regime for Stage2 {
    const STAGE: Stage = Stage::S2;
    const IAS: u32 = 39;
    fn root<T: PeerTranslation<Stage2Attributes>>(t: T) -> RootTable<Self, T> {
        RootTable::new(t, 1, Stage2)
    }
    fn attrs(prot: Prot) -> Stage2Attributes {
        s2_attrs(prot)
    }
}

/// What aarch64-paging's walker finds at `va`: the output address.
fn peer_walk<R: Regime, T: PeerTranslation<R::Attributes>>(
    rt: &RootTable<R, T>,
    va: u64,
) -> Option<u64> {
    let mut out = None;
    rt.walk_range(
        &MemoryRegion::new(va as usize, va as usize + 1),
        &mut |_, d, level| {
            if d.is_valid() {
                let size = 1u64 << (12 + 9 * (3 - level));
                out = Some(d.output_address().0 as u64 + (va & (size - 1)));
            }
            Ok(())
        },
    )
    .unwrap_or_else(|e| panic!("peer walk of {va:#x}: {e}"));
    out
}

/// Entry `idx` of the table at `pa`.
///
/// # Safety
/// `pa` is a live table (PA == host address) with more than `idx` entries, not being
/// written.
unsafe fn load(pa: u64, idx: u64) -> u64 {
    // SAFETY: as the caller guarantees.
    unsafe { (pa as *const u64).add(idx as usize).read() }
}

/// iopt's decoder walking a tree at `root` (the peer's): (output address, prot).
///
/// # Safety
/// `root` is the live top table of a tree in `fmt`'s geometry, not being written.
unsafe fn decode_walk(fmt: &Arm32Lpae, root: u64, va: u64) -> Option<(u64, Prot)> {
    let (mut table, mut level) = (root, fmt.levels() - 1);
    loop {
        let item = fmt.item_lg2(level);
        // SAFETY: live tables; the index is below the table's entry count.
        let e = unsafe { load(table, (va >> item) & 511) };
        match fmt.decode(level, e) {
            Pte::Empty => return None,
            Pte::Table { pa } => (table, level) = (pa, level - 1),
            Pte::Leaf { pa, run_lg2 } => {
                let size = 1u64 << (item + run_lg2);
                return Some((pa + (va & (size - 1)), fmt.leaf_prot(level, e)));
            }
        }
    }
}

/// Compares entries `0..n` of the tables at `io` and `peer` (ARM `level`), and below;
/// returns the number of tables found below.
///
/// # Safety
/// Both are live trees (PA == host address), not being written, each table with at
/// least `n` entries.
unsafe fn compare(io: u64, peer: u64, level: u32, va: u64, n: u64) -> u64 {
    let shift = 12 + 9 * (3 - level);
    let mut tables = 0;
    for i in 0..n {
        let at = va + (i << shift);
        // SAFETY: both tables are live and have more than `i` entries.
        let (a, b) = unsafe { (load(io, i), load(peer, i)) };
        if a & 1 == 0 {
            assert_eq!((a, b), (0, 0), "invalid entries at {at:#x} L{level}");
        } else if level < 3 && a & 0b11 == 0b11 {
            assert_eq!(a & !ADDR, 0b11, "iopt table descriptor at {at:#x} L{level}");
            assert_eq!(b & !ADDR, 0b11, "peer table descriptor at {at:#x} L{level}");
            // SAFETY: valid table descriptors of live trees point to live 4K tables.
            tables += 1 + unsafe { compare(a & ADDR, b & ADDR, level + 1, at, 512) };
        } else {
            assert_eq!(a, b, "leaf at {at:#x} L{level}: iopt {a:#x}, peer {b:#x}");
        }
    }
    tables
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    iova: u64,
    pa: u64,
    len: u64,
    prot: Prot,
}

/// The largest naturally aligned pieces whose IOVA and output address are both aligned
/// (aarch64-paging's choice, and Linux's `iommu_pgsize`): `(iova, pa, size)`.
fn pieces(r: Range) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < r.len {
        let (v, p) = (r.iova + off, r.pa + off);
        let size = *SIZES
            .iter()
            .find(|&&s| (v | p) & (s - 1) == 0 && r.len - off >= s)
            .expect("4K-aligned range");
        out.push((v, p, size));
        off += size;
    }
    out
}

struct Pair<R: Regime> {
    fmt: Arm32Lpae,
    io: IoTable,
    peer: RootTable<R, HeapTr>,
    live: Vec<Range>,
}

impl<R: Regime> Pair<R> {
    fn new() -> Self {
        let fmt = Arm32Lpae::new(Arm32LpaeConfig {
            stage: R::STAGE,
            ias: R::IAS,
            oas: 40,
            contiguous: false,
            ..Arm32LpaeConfig::default()
        })
        .unwrap();
        assert_eq!(fmt.start_level_arm(), 1);
        let io = IoTable::new(Wide(fmt), HeapMemory::new(), NoFlush).unwrap();
        Pair {
            fmt,
            io,
            peer: R::root(HeapTr { live: 0 }),
            live: Vec::new(),
        }
    }

    fn map(&mut self, r: Range) {
        for (iova, pa, size) in pieces(r) {
            // SAFETY: single-threaded; nothing walks the table.
            let got = unsafe { self.io.map_pages(iova, pa, size, 1, r.prot) };
            assert_eq!(got, (size, Ok(())), "iopt map {iova:#x} {size:#x}");
        }
        let region = MemoryRegion::new(r.iova as usize, (r.iova + r.len) as usize);
        self.peer
            .map_range(
                &region,
                PhysicalAddress(r.pa as usize),
                R::attrs(r.prot),
                Constraints::empty(),
            )
            .unwrap_or_else(|e| panic!("aarch64-paging map {r:x?}: {e}"));
        self.live.push(r);
    }

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

    /// Both trees entry by entry (iopt's root entries only), and the page counts.
    fn compare(&self) {
        let top = self.fmt.levels() - 1;
        let n = 1 << (self.fmt.va_bits(top) - self.fmt.item_lg2(top));
        let (io, peer) = (self.io.info().root_pa, self.peer.to_physical().0 as u64);
        // SAFETY: both trees are live and nothing writes them while `&self` is held.
        let tables = unsafe { compare(io, peer, 1, 0, n) };
        // SAFETY: the peer's root has 512 entries.
        assert!((n..512).all(|i| unsafe { load(peer, i) } == 0));
        assert_eq!(self.io.mem_stats().pages, tables + 1, "iopt table pages");
        assert_eq!(
            self.peer.translation().live as u64,
            tables + 1,
            "peer tables"
        );
    }

    /// Probes `va` against the model: iopt's translate, the peer's walker on its own
    /// table (and on iopt's when the roots match), iopt's decoder on the peer's table.
    fn probe(&self, va: u64) {
        let want = self
            .live
            .iter()
            .find(|r| va.wrapping_sub(r.iova) < r.len)
            .map(|r| (r.pa + (va - r.iova), r.prot));
        // SAFETY: single-threaded; nothing writes the table.
        let io = unsafe { self.io.translate(va) };
        assert_eq!(io.map(|t| t.pa), want.map(|w| w.0), "iopt at {va:#x}");
        assert_eq!(
            peer_walk(&self.peer, va),
            want.map(|w| w.0),
            "peer at {va:#x}"
        );
        // SAFETY: the peer's tree is live and not written while `&self` is held.
        let decoded = unsafe { decode_walk(&self.fmt, self.peer.to_physical().0 as u64, va) };
        assert_eq!(decoded.map(|d| d.0), want.map(|w| w.0), "decode at {va:#x}");
        if let (Some(io), Some(d)) = (io, decoded) {
            assert_eq!(d.1, io.prot, "prot at {va:#x}");
        }
        if R::IAS == 39 {
            let adopted = R::root(Adopt {
                root: Some(self.io.info().root_pa),
            });
            assert_eq!(
                peer_walk(&adopted, va),
                want.map(|w| w.0),
                "peer on iopt {va:#x}"
            );
        }
    }
}

/// A random range inside 1G window `w` (so ranges never overlap): pages at any output
/// alignment, or output congruent to the IOVA modulo 2M or 1G.
fn random_range(rng: &mut Rng, w: u64) -> Range {
    let base = w * G1;
    let (iova, len, pa) = match rng.below(3) {
        0 => {
            let iova = base + rng.below(G1 / K4 - 600) * K4;
            (
                iova,
                (1 + rng.below(512)) * K4,
                PA_FLOOR + rng.below((OA - PA_FLOOR) / K4 - 600) * K4,
            )
        }
        1 => {
            let iova = base + rng.below(256) * M2 + rng.below(512) * K4;
            let len = rng.below(200) * M2 + rng.below(512) * K4 + K4;
            let pa = PA_FLOOR + rng.below((OA - PA_FLOOR) / M2 - 1024) * M2 + iova % M2;
            (iova, len, pa)
        }
        _ => {
            // The whole window, with 1G-congruent output: one 1G block.
            let pa = PA_FLOOR + rng.below((OA - PA_FLOOR) / G1 - 2) * G1;
            (base, G1, pa)
        }
    };
    let mut prot = Prot::from_bits_truncate(rng.below(64) as u32);
    if !prot.has_access() {
        prot |= Prot::READ;
    }
    Range {
        iova,
        pa,
        len,
        prot,
    }
}

fn run<R: Regime>(seed: u64) {
    let mut rng = Rng(seed);
    let mut pair = Pair::<R>::new();
    let windows = 1u64 << (R::IAS - 30);
    let mut used = Vec::new();
    for _ in 0..1 + rng.below(6) {
        let w = rng.below(windows);
        if !used.contains(&w) {
            used.push(w);
            let r = random_range(&mut rng, w);
            pair.map(r);
        }
    }
    let check = |pair: &Pair<R>, rng: &mut Rng, extra: &[Range]| {
        pair.compare();
        let mut vas = Vec::new();
        for r in pair.live.iter().chain(extra) {
            vas.extend([
                r.iova,
                r.iova + r.len - 1,
                r.iova + r.len,
                r.iova.wrapping_sub(1),
            ]);
            vas.extend((0..8).map(|_| r.iova + rng.below(r.len)));
        }
        vas.extend((0..32).map(|_| rng.below(1 << R::IAS)));
        for va in vas.into_iter().filter(|&va| va < 1 << R::IAS) {
            pair.probe(va);
        }
    };
    check(&pair, &mut rng, &[]);
    let gone: Vec<Range> = pair
        .live
        .iter()
        .filter(|_| rng.below(2) == 0)
        .copied()
        .collect();
    for &r in &gone {
        pair.unmap(r);
    }
    check(&pair, &mut rng, &gone);
}

#[test]
fn stage1_32bit_against_aarch64_paging() {
    for seed in 0..48 {
        run::<El1And0>(seed);
    }
}

#[test]
fn stage2_39bit_against_aarch64_paging() {
    for seed in 0..48 {
        run::<Stage2>(seed ^ 0x5eed);
    }
}
