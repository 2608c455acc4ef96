//! The checks Linux's own page-table self-tests make (the generic page table's KUnit
//! suite and the io-pgtable-arm self-test), written afresh for iopt's raw API and run
//! against every format configuration.
//!
//! Each check is a generic function over the format; `common::config_tests!` runs it on
//! every configuration of the catalogue (`common::configs`: every format, with its
//! granules, stages, input sizes, upper halves, growing and fixed tops, level counts and
//! output widths), in four parts the harness runs in parallel.

mod common;

use std::sync::Mutex;

use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::mem::{ArenaMemory, TableMemory};
use iopt::{Error, FlushOps, Format, Gather, Info, NoFlush, PageTable, Prot, Pte, Translation};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const K4: u64 = 1 << 12;
const M2: u64 = 1 << 21;
const G1: u64 = 1 << 30;

/// Simulated physical memory for table pages: below 4 GiB so 32-bit formats reach it,
/// aligned enough for the 1 MiB concatenated stage-2 top tables.
const ARENA_BASE: u64 = 0x4000_0000;
const ARENA_BYTES: usize = 8 << 20;

type Pt<'a, F, X = NoFlush> = PageTable<F, &'a ArenaMemory, X>;

// ---------------------------------------------------------------------------------------
// Configurations
// ---------------------------------------------------------------------------------------

// The checks run on every configuration of the catalogue (`common::configs`); `amd`
// builds the particular ones the directed top-growth tests use.

fn amd(levels: u32, max_levels: u32, dynamic_top: bool, oa_bits: u32) -> AmdV1 {
    AmdV1::new(AmdV1Config {
        levels,
        max_levels,
        dynamic_top,
        oa_bits,
        ..AmdV1Config::default()
    })
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn arena() -> ArenaMemory {
    ArenaMemory::new(ARENA_BASE, ARENA_BYTES)
}

fn new_pt<'m, F: Format>(name: &str, fmt: F, mem: &'m ArenaMemory) -> Pt<'m, F> {
    PageTable::new(fmt, mem, NoFlush).unwrap_or_else(|e| panic!("{name}: create: {e}"))
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Page sizes of the table, smallest first.
fn sizes(info: &Info) -> Vec<u64> {
    (0..64)
        .map(|b| 1u64 << b)
        .filter(|s| info.pgsize_bitmap & s != 0)
        .collect()
}

/// The page sizes that fit in the aperture's (first) range beside one another: all of
/// them, less a page as large as the whole range (ARM32 stage 2 with a 25-bit input
/// space has a 32 MiB contiguous run in a 32 MiB range), which `largest_page_at_edges`
/// maps on its own.
fn sizes_beside(info: &Info) -> Vec<u64> {
    let span_m1 = info.aperture.last - info.aperture.start;
    let mut all = sizes(info);
    if all.len() > 1 && all.last().is_some_and(|&z| z > span_m1) {
        all.pop();
    }
    all
}

/// The aperture's ranges, inclusive: the lower (or only) one first.
fn ranges(info: &Info) -> Vec<(u64, u64)> {
    let mut v = vec![(info.aperture.start, info.aperture.last)];
    v.extend(info.aperture.upper);
    v
}

/// A physical address for `iova` that fits the output-address width ("identity-ish").
fn pa_of(info: &Info, iova: u64) -> u64 {
    iova & mask(info.oa_bits)
}

fn map<F: Format, X: FlushOps>(
    pt: &Pt<'_, F, X>,
    iova: u64,
    pa: u64,
    size: u64,
    count: usize,
    prot: Prot,
) -> (u64, Result<(), Error>) {
    // SAFETY: each table is used by one thread only, and no hardware walks it.
    unsafe { pt.map_pages(iova, pa, size, count, prot) }
}

fn unmap<F: Format, X: FlushOps>(
    pt: &Pt<'_, F, X>,
    iova: u64,
    size: u64,
    count: usize,
    g: &mut Gather,
) -> (u64, Result<(), Error>) {
    // SAFETY: as in `map`.
    unsafe { pt.unmap_pages(iova, size, count, g) }
}

fn unmap_range<F: Format, X: FlushOps>(
    pt: &Pt<'_, F, X>,
    iova: u64,
    len: u64,
    g: &mut Gather,
) -> (u64, Result<(), Error>) {
    // SAFETY: as in `map`.
    unsafe { pt.unmap_range(iova, len, g) }
}

fn tr<F: Format, X: FlushOps>(pt: &Pt<'_, F, X>, iova: u64) -> Option<Translation> {
    // SAFETY: as in `map`.
    unsafe { pt.translate(iova) }
}

/// Asserts that `iova` lies in the mapping `[base, base + size)` of `pa` (with `pa`
/// the output address of `base`).
fn check_tr<F: Format, X: FlushOps>(
    name: &str,
    pt: &Pt<'_, F, X>,
    iova: u64,
    base: u64,
    size: u64,
    pa: u64,
) {
    let t = tr(pt, iova).unwrap_or_else(|| panic!("{name}: {iova:#x} not mapped"));
    assert_eq!(t.pa, pa + (iova - base), "{name}: pa of {iova:#x}");
    assert_eq!(
        (t.iova_base, t.size),
        (base, size),
        "{name}: extent of {iova:#x}"
    );
    assert_eq!(
        pt.iova_to_phys_checked(iova),
        Some(t.pa),
        "{name}: iova_to_phys {iova:#x}"
    );
}

/// `iova_to_phys` without an `unsafe` at every call site.
trait IovaToPhys {
    fn iova_to_phys_checked(&self, iova: u64) -> Option<u64>;
}

impl<F: Format, X: FlushOps> IovaToPhys for Pt<'_, F, X> {
    fn iova_to_phys_checked(&self, iova: u64) -> Option<u64> {
        // SAFETY: as in `map`.
        unsafe { self.iova_to_phys(iova) }
    }
}

/// Checks the translation of every smallest page of `[base, base + size)`, or of 512
/// evenly spread ones (and the last one) when there are more.
fn check_every_page<F: Format, X: FlushOps>(
    name: &str,
    pt: &Pt<'_, F, X>,
    base: u64,
    size: u64,
    pa: u64,
    min: u64,
) {
    let n = size / min;
    let step = (n / 512).max(1);
    let mut k = 0;
    while k < n {
        let off = k * min;
        // A different offset inside each page.
        check_tr(name, pt, base + off + (k * 8) % min, base, size, pa);
        k += step;
    }
    check_tr(name, pt, base + (size - 1), base, size, pa);
}

/// The top level's item size, log2.
fn top_item_lg2<F: Format, X: FlushOps>(pt: &Pt<'_, F, X>) -> u32 {
    pt.format().item_lg2(pt.info().levels - 1)
}

/// `unmap_range` over `[first, last]` widened to whole top-level entries (so every
/// table below the top inside it is fully covered); returns the bytes unmapped.
fn clear_span<F: Format, X: FlushOps>(name: &str, pt: &Pt<'_, F, X>, first: u64, last: u64) -> u64 {
    let item = mask(top_item_lg2(pt));
    let (first, last) = (first & !item, last | item);
    let mut g = Gather::new();
    let len = (last - first).wrapping_add(1);
    let parts = if len == 0 {
        vec![(first, 1u64 << 63), (first.wrapping_add(1 << 63), 1 << 63)]
    } else {
        vec![(first, len)]
    };
    let mut total = 0;
    for (s, l) in parts {
        let (n, r) = unmap_range(pt, s, l, &mut g);
        assert_eq!(r, Ok(()), "{name}: unmap_range {s:#x}+{l:#x}");
        total += n;
    }
    pt.sync(&mut g);
    total
}

/// Unmaps everything in the whole aperture; afterwards only the top table remains.
fn clear_all<F: Format, X: FlushOps>(name: &str, pt: &Pt<'_, F, X>, mem: &ArenaMemory) {
    for (s, l) in ranges(&pt.info()) {
        clear_span(name, pt, s, l);
    }
    assert_eq!(mem.stats().pages, 1, "{name}: table pages after clearing");
}

/// The level and run (log2 entries) the engine uses for a page of `size` bytes: the
/// highest level whose entries or runs make that size.
fn leaf_of<F: Format>(f: &F, size: u64) -> (u32, u32) {
    let lg2 = size.trailing_zeros();
    (0..f.max_levels())
        .rev()
        .find_map(|l| {
            let c = lg2.checked_sub(f.item_lg2(l))?;
            (c < 32 && f.leaf_runs(l) & (1 << c) != 0).then_some((l, c))
        })
        .expect("size in bitmap")
}

/// A small deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Splits `[va, va + len)` -> `pa` into (iova, pa, pgsize, count) pieces the way Linux's
/// `iommu_pgsize` does: each piece uses the largest supported page size that both
/// addresses are aligned to and that fits the remaining length; consecutive pieces of
/// one size become one call.
fn greedy(bitmap: u64, mut va: u64, mut pa: u64, mut len: u64) -> Vec<(u64, u64, u64, usize)> {
    let mut out: Vec<(u64, u64, u64, usize)> = Vec::new();
    while len != 0 {
        let align = match va | pa {
            0 => u64::MAX,
            x => x & x.wrapping_neg(),
        };
        let limit = align.min(1u64 << (63 - len.leading_zeros()));
        let cand = bitmap & (limit | (limit - 1));
        assert_ne!(cand, 0, "no page size fits {va:#x}/{pa:#x}+{len:#x}");
        let size = 1u64 << (63 - cand.leading_zeros());
        match out.last_mut() {
            Some((v, _, s, c)) if *s == size && *v + *s * *c as u64 == va => *c += 1,
            _ => out.push((va, pa, size, 1)),
        }
        va += size;
        pa += size;
        len -= size;
    }
    out
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// Lookups on an empty table find nothing, anywhere: inside the aperture (its edges
/// included), and outside it.
fn empty_lookups<F: Format>(name: &str, fmt: F) {
    let mem = arena();
    let pt = new_pt(name, fmt, &mem);
    let info = pt.info();
    let mut probes = vec![0, 42, G1 + 42, 2 * G1 + 42, u64::MAX, 1 << 63];
    for (s, l) in ranges(&info) {
        probes.extend([s, s + 42, l, l - 41, s.wrapping_sub(1), l.wrapping_add(1)]);
        probes.push(s + (l - s) / 2);
    }
    for iova in probes {
        assert_eq!(tr(&pt, iova), None, "{name}: translate {iova:#x}");
        assert_eq!(
            pt.iova_to_phys_checked(iova),
            None,
            "{name}: iova_to_phys {iova:#x}"
        );
    }
    assert_eq!(mem.stats().pages, 1, "{name}: an empty table is one page");
}
common::config_tests!(empty_lookups, empty_lookups);

/// Places one page of every size in `[start, last]`, each at its own slot of `step`
/// bytes (or of its size, if larger), largest first from `start`; `step` starts at 1 GiB
/// and halves until everything fits. Returns (iova, size), smallest size first.
fn spread(start: u64, last: u64, all: &[u64]) -> Vec<(u64, u64)> {
    let mut step = G1;
    loop {
        let mut cursor = 0u64; // offset from start
        let mut out = Vec::new();
        let fits = all.iter().rev().all(|&size| {
            let a = size.max(step);
            let off = cursor.next_multiple_of(a);
            if off > last - start || size - 1 > (last - start) - off {
                return false;
            }
            out.push((start + off, size));
            cursor = off + a;
            true
        });
        if fits {
            out.reverse();
            return out;
        }
        step /= 2;
        assert!(
            step >= all[0],
            "no layout for {all:x?} in {start:#x}..={last:#x}"
        );
    }
}

/// io-pgtable-arm's self-test, for every format: one mapping of every page size at
/// 1 GiB steps (smaller steps when the aperture is too small), identity-like output
/// addresses. Mapping the same IOVA again fails and changes nothing; the translation is
/// right. Then each is unmapped (exactly its size comes back), is gone, and can be mapped
/// again write-only.
fn every_size_at_steps<F: Format>(name: &str, fmt: F) {
    let mem = arena();
    let pt = new_pt(name, fmt, &mem);
    let info = pt.info();
    let mut placed = Vec::new();
    for (iova, size) in spread(
        info.aperture.start,
        info.aperture.last,
        &sizes_beside(&info),
    ) {
        let pa = pa_of(&info, iova);
        assert_eq!(
            map(&pt, iova, pa, size, 1, RW),
            (size, Ok(())),
            "{name}: map {size:#x} at {iova:#x}"
        );
        let before = mem.image();
        let pages = mem.stats().pages;
        let other = pa_of(&info, pa.wrapping_add(size));
        assert_eq!(
            map(&pt, iova, other, size, 1, RW),
            (0, Err(Error::AddressInUse(iova))),
            "{name}: map {size:#x} at {iova:#x} again"
        );
        assert!(
            ArenaMemory::same_image(&before, &mem.image()),
            "{name}: a refused map changed the table"
        );
        assert_eq!(
            mem.stats().pages,
            pages,
            "{name}: a refused map kept tables"
        );
        let t = tr(&pt, iova + 42).unwrap_or_else(|| panic!("{name}: {iova:#x}+42 unmapped"));
        assert_eq!(t.pa, pa + 42, "{name}: pa of {iova:#x}+42");
        assert_eq!((t.iova_base, t.size), (iova, size), "{name}: extent");
        assert!(t.prot.contains(RW), "{name}: prot {:?}", t.prot);
        placed.push((iova, size, pa));
    }
    let mut g = Gather::new();
    for &(iova, size, pa) in &placed {
        assert_eq!(
            unmap(&pt, iova, size, 1, &mut g),
            (size, Ok(())),
            "{name}: unmap {size:#x} at {iova:#x}"
        );
        pt.sync(&mut g);
        assert_eq!(tr(&pt, iova + 42), None, "{name}: {iova:#x} after unmap");
        assert_eq!(tr(&pt, iova + (size - 1)), None, "{name}: end after unmap");
        assert_eq!(
            map(&pt, iova, pa, size, 1, Prot::WRITE),
            (size, Ok(())),
            "{name}: write-only map {size:#x} at {iova:#x}"
        );
        let t = tr(&pt, iova + 42).unwrap_or_else(|| panic!("{name}: write-only unmapped"));
        assert_eq!(t.pa, pa + 42, "{name}: write-only pa");
        assert!(t.prot.contains(Prot::WRITE), "{name}: prot {:?}", t.prot);
        assert_eq!(
            unmap(&pt, iova, size, 1, &mut g),
            (size, Ok(())),
            "{name}: unmap the write-only {size:#x}"
        );
        pt.sync(&mut g);
    }
    clear_all(name, &pt, &mem);
}
common::config_tests!(every_size_at_steps, every_size_at_steps);

/// The largest page at the very top (and bottom) of each aperture range maps and
/// unmaps: the last entries of (possibly concatenated) top tables, the top of the upper
/// half for sign-extended tables, the top of the 64-bit space for TTBR1.
fn largest_page_at_edges<F: Format>(name: &str, fmt: F) {
    let mem = arena();
    let pt = new_pt(name, fmt, &mem);
    let info = pt.info();
    let levels0 = info.levels;
    let mut g = Gather::new();
    for (s, l) in ranges(&info) {
        let size = *sizes(&info)
            .iter()
            .rev()
            .find(|&&z| z - 1 <= l - s)
            .expect("some page fits");
        for iova in [l - (size - 1), s] {
            let pa = pa_of(&info, iova);
            assert_eq!(
                map(&pt, iova, pa, size, 1, RW),
                (size, Ok(())),
                "{name}: map {size:#x} at {iova:#x}"
            );
            check_tr(name, &pt, iova, iova, size, pa);
            check_tr(name, &pt, iova + (size - 1), iova, size, pa);
            assert_eq!(
                unmap(&pt, iova, size, 1, &mut g),
                (size, Ok(())),
                "{name}: unmap {size:#x} at {iova:#x}"
            );
            pt.sync(&mut g);
            assert_eq!(tr(&pt, iova), None, "{name}: {iova:#x} after unmap");
            // Empty tables on the way stay until a covering unmap; a grown top keeps
            // its chain of former tops (each linked at index 0 of the next) unless that
            // unmap covers index 0 too.
            let covers_zero = iova & !mask(top_item_lg2(&pt)) == 0;
            assert_eq!(clear_span(name, &pt, iova, iova + (size - 1)), 0);
            let grown = u64::from(pt.info().levels - levels0);
            assert_eq!(
                mem.stats().pages,
                if covers_zero { 1 } else { 1 + grown },
                "{name}: table pages after the page at {iova:#x}"
            );
        }
    }
    clear_all(name, &pt, &mem);
}
common::config_tests!(largest_page_at_edges, largest_page_at_edges);

/// KUnit test_map_simple: one page of every size at increasing aligned IOVAs; every
/// smallest page inside translates; each unmaps with exactly its size; an unmap_range
/// over the used span then leaves only the top table.
fn map_simple<F: Format>(name: &str, fmt: F) {
    let mem = arena();
    let pt = new_pt(name, fmt, &mem);
    let info = pt.info();
    let (start, last) = (info.aperture.start, info.aperture.last);
    let all = sizes_beside(&info);
    let min = all[0];
    let mut iova = start;
    let mut placed = Vec::new();
    for &size in &all {
        iova = (iova - start).next_multiple_of(size) + start;
        assert!(
            iova - start <= (last - start) - (size - 1),
            "{name}: {size:#x} does not fit at {iova:#x}"
        );
        let pa = pa_of(&info, iova);
        assert_eq!(
            map(&pt, iova, pa, size, 1, RW),
            (size, Ok(())),
            "{name}: map {size:#x} at {iova:#x}"
        );
        placed.push((iova, size, pa));
        iova += size;
    }
    let used_last = iova - 1;
    // Every page is one leaf of exactly its size, and translates everywhere inside.
    for &(iova, size, pa) in &placed {
        check_every_page(name, &pt, iova, size, pa, min);
        let (level, _) = leaf_of(pt.format(), size);
        assert_eq!(
            tr(&pt, iova).unwrap().level,
            level,
            "{name}: level of {size:#x}"
        );
    }
    let mut g = Gather::new();
    for &(iova, size, _) in &placed {
        assert_eq!(
            unmap(&pt, iova, size, 1, &mut g),
            (size, Ok(())),
            "{name}: unmap {size:#x} at {iova:#x}"
        );
    }
    pt.sync(&mut g);
    for &(iova, size, _) in &placed {
        assert_eq!(tr(&pt, iova), None, "{name}: {iova:#x}");
        assert_eq!(tr(&pt, iova + (size - 1)), None, "{name}: end of {iova:#x}");
    }
    assert_eq!(clear_span(name, &pt, start, used_last), 0);
    assert_eq!(
        mem.stats().pages,
        1,
        "{name}: table pages after unmapping all"
    );
}
common::config_tests!(map_simple, map_simple);

/// KUnit test_unmap_split: for every pair of sizes small < big, an unmap of `small` at a
/// big page's first byte removes the whole big page (and reports it), without running
/// into a following big page. An unmap starting inside the big page is refused and
/// changes nothing.
fn unmap_split<F: Format>(name: &str, fmt: F) {
    let mem = arena();
    let pt = new_pt(name, fmt, &mem);
    let info = pt.info();
    let (va, last) = (info.aperture.start, info.aperture.last);
    let all = sizes(&info);
    let mut g = Gather::new();
    for (i, &big) in all.iter().enumerate() {
        let two_fit = big - 1 <= (last - va) / 2;
        for &small in &all[..i] {
            let what = format!("{name}: small {small:#x} big {big:#x}");
            let pa = pa_of(&info, va);
            assert_eq!(map(&pt, va, pa, big, 1, RW), (big, Ok(())), "{what}: map");
            assert_eq!(
                unmap(&pt, va, small, 1, &mut g),
                (big, Ok(())),
                "{what}: unmap small at the start"
            );
            pt.sync(&mut g);
            assert_eq!(tr(&pt, va), None, "{what}");
            assert_eq!(tr(&pt, va + (big - 1)), None, "{what}");

            // Starting inside: refused, nothing changes (also through unmap_range).
            assert_eq!(map(&pt, va, pa, big, 1, RW), (big, Ok(())), "{what}: remap");
            let before = mem.image();
            let refusal = Err(Error::WouldSplit {
                base: va,
                size: big,
            });
            assert_eq!(
                unmap(&pt, va + small, small, 1, &mut g),
                (0, refusal),
                "{what}: unmap inside"
            );
            assert_eq!(
                unmap_range(&pt, va + small, small, &mut g),
                (0, refusal),
                "{what}: unmap_range inside"
            );
            assert!(g.is_empty(), "{what}: a refused unmap gathered work");
            assert!(
                ArenaMemory::same_image(&before, &mem.image()),
                "{what}: a refused unmap changed the table"
            );
            check_tr(&what, &pt, va + small, va, big, pa);

            if two_fit {
                let pa2 = pa_of(&info, va + big);
                assert_eq!(
                    map(&pt, va + big, pa2, big, 1, RW),
                    (big, Ok(())),
                    "{what}: map second"
                );
                assert_eq!(
                    unmap(&pt, va, small, 1, &mut g),
                    (big, Ok(())),
                    "{what}: unmap small before a second big page"
                );
                pt.sync(&mut g);
                assert_eq!(tr(&pt, va), None, "{what}");
                check_tr(&what, &pt, va + big, va + big, big, pa2);
                assert_eq!(
                    unmap(&pt, va + big, big, 1, &mut g),
                    (big, Ok(())),
                    "{what}: unmap second"
                );
                pt.sync(&mut g);
            } else {
                assert_eq!(unmap(&pt, va, big, 1, &mut g), (big, Ok(())), "{what}");
                pt.sync(&mut g);
            }
            assert_eq!(tr(&pt, va + big), None, "{what}");
        }
    }
    clear_all(name, &pt, &mem);
}
common::config_tests!(unmap_split, unmap_split);

/// KUnit test_map_table_to_oa: small pages spread over a big page's span are mapped and
/// unmapped one by one, which leaves empty tables behind; the big page must then map
/// over them (replacing them, so the table-page count is what the big page alone uses).
fn map_over_empty_tables<F: Format>(name: &str, fmt: F) {
    let mem = arena();
    let pt = new_pt(name, fmt, &mem);
    let info = pt.info();
    let (start, last) = (info.aperture.start, info.aperture.last);
    let all = sizes(&info);
    let mut g = Gather::new();
    for (i, &big) in all.iter().enumerate() {
        // A big-aligned spot one big page above the start (so not at index 0).
        let va = start + big;
        if big - 1 > (last - start) / 2 {
            continue;
        }
        let pa = pa_of(&info, va);
        // What the big page alone costs in tables (tables above it stay afterwards).
        assert_eq!(
            map(&pt, va, pa, big, 1, RW),
            (big, Ok(())),
            "{name}: {big:#x}"
        );
        let pages_with_big = mem.stats().pages;
        assert_eq!(unmap(&pt, va, big, 1, &mut g), (big, Ok(())));
        pt.sync(&mut g);
        for &small in &all[..i] {
            let what = format!("{name}: small {small:#x} big {big:#x}");
            let k = (big / small).min(16);
            let stride = big / k;
            for j in 0..k {
                let s = va + j * stride;
                let spa = pa_of(&info, s);
                assert_eq!(
                    map(&pt, s, spa, small, 1, RW),
                    (small, Ok(())),
                    "{what}: map small at {s:#x}"
                );
                check_tr(&what, &pt, s, s, small, spa);
            }
            // The big page cannot go over live small pages (the first is at `va`).
            let before = mem.image();
            assert_eq!(
                map(&pt, va, pa, big, 1, RW),
                (0, Err(Error::AddressInUse(va))),
                "{what}: big over small pages"
            );
            assert!(ArenaMemory::same_image(&before, &mem.image()), "{what}");
            for j in 0..k {
                let s = va + j * stride;
                assert_eq!(
                    unmap(&pt, s, small, 1, &mut g),
                    (small, Ok(())),
                    "{what}: unmap small at {s:#x}"
                );
            }
            pt.sync(&mut g);
            assert_eq!(
                map(&pt, va, pa, big, 1, RW),
                (big, Ok(())),
                "{what}: big over empty tables"
            );
            assert_eq!(
                mem.stats().pages,
                pages_with_big,
                "{what}: empty tables under the big page were freed"
            );
            check_tr(&what, &pt, va, va, big, pa);
            check_tr(&what, &pt, va + big / 2 + 42, va, big, pa);
            check_tr(&what, &pt, va + (big - 1), va, big, pa);
            assert_eq!(unmap(&pt, va, big, 1, &mut g), (big, Ok(())), "{what}");
            pt.sync(&mut g);
        }
    }
    clear_all(name, &pt, &mem);
}
common::config_tests!(map_over_empty_tables, map_over_empty_tables);

/// A mapped range: `count` pages of `size` from `iova` to `pa`.
#[derive(Debug, Clone, Copy)]
struct Range {
    iova: u64,
    size: u64,
    count: u64,
    pa: u64,
}

impl Range {
    fn last(&self) -> u64 {
        self.iova + (self.size * self.count - 1)
    }
    fn overlaps(&self, first: u64, last: u64) -> bool {
        self.iova <= last && first <= self.last()
    }
}

/// KUnit test_random_map: 1000 random aligned ranges of random page sizes inside a
/// window of at most 1 GiB (and one in the upper half for sign-extended tables). A map
/// over something already mapped fails with AddressInUse after mapping exactly the
/// pages before the first conflict; the test then removes that prefix and every
/// overlapping range and maps again, which must succeed. Translations are checked
/// throughout against the recorded ranges; at the end everything is unmapped and only
/// the top table remains.
fn random_map<F: Format>(name: &str, fmt: F) {
    let mem = arena();
    let pt = new_pt(name, fmt, &mem);
    let info = pt.info();
    let windows: Vec<(u64, u64)> = ranges(&info)
        .into_iter()
        .map(|(s, l)| {
            let quarter = (l - s) / 4 + 1;
            let len = G1.min(1u64 << (63 - quarter.leading_zeros()));
            // Above a reserved low range of the same length.
            (s + len, len)
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(info.oa_bits));
    let mut recs: Vec<Range> = Vec::new();
    let mut g = Gather::new();
    /// The recorded range holding `iova`, and the base of its page there.
    fn find(recs: &[Range], iova: u64) -> Option<(u64, &Range)> {
        recs.iter()
            .find(|r| r.overlaps(iova, iova))
            .map(|r| (r.iova + (iova - r.iova) / r.size * r.size, r))
    }
    let mut conflicts = 0;
    for it in 0..1000 {
        let (ws, wl) = windows[rng.below(windows.len() as u64) as usize];
        let usable: Vec<u64> = sizes(&info).into_iter().filter(|&s| s <= wl / 4).collect();
        // Favour small pages: they make the interesting table structure.
        let size =
            usable[(rng.below(usable.len() as u64)).min(rng.below(usable.len() as u64)) as usize];
        let slots = wl / size;
        let count = 1 + rng.below(slots.min(8));
        let iova = ws + rng.below(slots - count + 1) * size;
        let pa = pa_of(&info, iova);
        let new = Range {
            iova,
            size,
            count,
            pa,
        };
        let what = format!("{name}: #{it} {iova:#x} {size:#x}x{count}");
        let (mapped, r) = map(&pt, iova, pa, size, count as usize, RW);
        let first_conflict = (0..count).find(|&k| {
            let s = iova + k * size;
            recs.iter().any(|r| r.overlaps(s, s + (size - 1)))
        });
        match (r, first_conflict) {
            (Ok(()), None) => assert_eq!(mapped, size * count, "{what}"),
            (Err(Error::AddressInUse(a)), Some(k)) => {
                conflicts += 1;
                assert_eq!(mapped, k * size, "{what}: prefix before the conflict");
                let page = iova + k * size;
                assert!(
                    page <= a && a <= page + (size - 1),
                    "{what}: conflict at {a:#x}, page {page:#x}"
                );
                if mapped != 0 {
                    assert_eq!(
                        unmap(&pt, iova, size, k as usize, &mut g),
                        (mapped, Ok(())),
                        "{what}: unmap the prefix"
                    );
                }
                recs.retain(|r| {
                    if !r.overlaps(iova, new.last()) {
                        return true;
                    }
                    check_tr(&what, &pt, r.iova, r.iova, r.size, r.pa);
                    assert_eq!(
                        unmap(&pt, r.iova, r.size, r.count as usize, &mut g),
                        (r.size * r.count, Ok(())),
                        "{what}: unmap overlapping {r:?}"
                    );
                    false
                });
                pt.sync(&mut g);
                assert_eq!(
                    map(&pt, iova, pa, size, count as usize, RW),
                    (size * count, Ok(())),
                    "{what}: map again"
                );
            }
            other => panic!("{what}: {other:?}"),
        }
        recs.push(new);
        for k in [0, count / 2, count - 1] {
            let s = iova + k * size;
            check_tr(&what, &pt, s + (it * 8) % size, s, size, pa + k * size);
        }
        if it % 50 == 49 {
            for _ in 0..64 {
                let (ws, wl) = windows[rng.below(windows.len() as u64) as usize];
                let probe = ws + rng.below(wl);
                match find(&recs, probe) {
                    Some((base, r)) => {
                        check_tr(&what, &pt, probe, base, r.size, r.pa + (base - r.iova))
                    }
                    None => assert_eq!(tr(&pt, probe), None, "{what}: stray {probe:#x}"),
                }
            }
        }
    }
    assert!(
        conflicts > 0,
        "{name}: the random walk never hit a conflict"
    );
    for r in &recs {
        check_tr(name, &pt, r.iova, r.iova, r.size, r.pa);
        let lp = r.iova + (r.count - 1) * r.size;
        check_tr(name, &pt, r.last(), lp, r.size, r.pa + (lp - r.iova));
    }
    for r in &recs {
        assert_eq!(
            unmap(&pt, r.iova, r.size, r.count as usize, &mut g),
            (r.size * r.count, Ok(())),
            "{name}: final unmap {r:?}"
        );
    }
    pt.sync(&mut g);
    for r in &recs {
        assert_eq!(tr(&pt, r.iova), None, "{name}: {r:?} after unmap");
    }
    for &(ws, wl) in &windows {
        assert_eq!(clear_span(name, &pt, ws, ws + (wl - 1)), 0, "{name}");
    }
    clear_all(name, &pt, &mem);
}
common::config_tests!(random_map, random_map);

/// KUnit test_pgsize_boundary (an AMD driver bug case): va 0xfef80000 -> pa
/// 0x208b95d000, 128 KiB, split into the largest pieces that fit.
fn pgsize_boundary<F: Format>(name: &str, fmt: F) {
    let (va, pa, len) = (0xfef8_0000u64, 0x20_8b95_d000u64, 0x2_0000u64);
    let mem = arena();
    let pt = new_pt(name, fmt, &mem);
    let info = pt.info();
    if !info.aperture.contains(va, va + len - 1)
        || pa + len - 1 > mask(info.oa_bits)
        || sizes(&info)[0] != K4
    {
        return;
    }
    let pieces = greedy(info.pgsize_bitmap, va, pa, len);
    // pa is only 4 KiB aligned: every format maps 32 pages of its 4 KiB size.
    assert_eq!(pieces, vec![(va, pa, K4, 32)], "{name}: pieces");
    for &(v, p, s, c) in &pieces {
        assert_eq!(map(&pt, v, p, s, c, RW), (s * c as u64, Ok(())), "{name}");
    }
    let mut iova = va;
    while iova < va + len {
        check_tr(name, &pt, iova + 0x123, iova, K4, pa + (iova - va));
        iova += K4;
    }
    assert_eq!(tr(&pt, va - 1), None, "{name}");
    assert_eq!(tr(&pt, va + len), None, "{name}");
    clear_all(name, &pt, &mem);
}
common::config_tests!(pgsize_boundary, pgsize_boundary);

/// KUnit test_mixed: va = pa = 0x3fe400000 .. 0x4c0600000 mapped with the largest
/// pieces that fit. Walks the leaves and compares them with the split; for x86-64 that
/// is 14 x 2M, 3 x 1G, 3 x 2M (20 leaves); for AMD v1 (any power of two)
/// 4M, 8M, 16M, 2G, 1G, 4M, 2M.
fn mixed<F: Format>(name: &str, fmt: F) {
    let (va, end) = (0x3_fe40_0000u64, 0x4_c060_0000u64);
    let len = end - va;
    let mem = arena();
    let pt = new_pt(name, fmt, &mem);
    let info = pt.info();
    if !info.aperture.contains(va, end - 1) || end - 1 > mask(info.oa_bits) {
        return;
    }
    let pieces = greedy(info.pgsize_bitmap, va, va, len);
    let leaves: Vec<u64> = pieces
        .iter()
        .flat_map(|&(_, _, s, c)| std::iter::repeat_n(s, c))
        .collect();
    if F::NAME == "x86-64" {
        let mut want = vec![M2; 14];
        want.extend([G1; 3]);
        want.extend([M2; 3]);
        assert_eq!(leaves, want, "{name}");
    }
    if F::NAME == "amdv1" {
        let want = vec![2 * M2, 4 * M2, 8 * M2, 2 * G1, G1, 2 * M2, M2];
        assert_eq!(leaves, want, "{name}");
    }
    for &(v, p, s, c) in &pieces {
        assert_eq!(map(&pt, v, p, s, c, RW), (s * c as u64, Ok(())), "{name}");
    }
    // Walk the leaves through translate: each starts where the previous ended.
    let mut found = Vec::new();
    let mut iova = va;
    while iova < end {
        let t = tr(&pt, iova).unwrap_or_else(|| panic!("{name}: hole at {iova:#x}"));
        assert_eq!(
            (t.iova_base, t.pa),
            (iova, iova),
            "{name}: leaf at {iova:#x}"
        );
        check_tr(name, &pt, iova + t.size / 2 + 8, iova, t.size, iova);
        found.push(t.size);
        iova += t.size;
    }
    assert_eq!(found, leaves, "{name}: leaves");
    assert_eq!(tr(&pt, va - 1), None, "{name}");
    assert_eq!(tr(&pt, end), None, "{name}");
    // One unmap over the whole range returns exactly its length.
    let mut g = Gather::new();
    assert_eq!(
        unmap_range(&pt, va, len, &mut g),
        (len, Ok(())),
        "{name}: unmap"
    );
    pt.sync(&mut g);
    clear_all(name, &pt, &mem);
}
common::config_tests!(mixed, mixed);

// ---------------------------------------------------------------------------------------
// Dynamic top (AMD v1)
// ---------------------------------------------------------------------------------------

/// Flush operations that record every top change.
#[derive(Default)]
struct Recorder {
    tops: Mutex<Vec<(u64, u32)>>,
}

impl FlushOps for Recorder {
    fn flush_all(&self) {}
    fn flush_walk(&self, _iova: u64, _size: u64, _granule: u64) {}
    fn top_changed(&self, root_pa: u64, levels: u32) {
        self.tops.lock().unwrap().push((root_pa, levels));
    }
}

impl Recorder {
    fn tops(&self) -> Vec<(u64, u32)> {
        self.tops.lock().unwrap().clone()
    }
}

/// KUnit test_increase_level: one 4 KiB page just above the current top at a time; the
/// table grows by exactly one level each time up to 6, reporting each new root (with
/// the old root linked at its index 0); earlier pages keep translating.
#[test]
fn amdv1_top_grows_one_level_at_a_time() {
    let mem = arena();
    let rec = Recorder::default();
    let pt = PageTable::new(amd(1, 6, true, 52), &mem, &rec).unwrap();
    let info = pt.info();
    assert_eq!((info.levels, info.max_levels), (1, 6));
    assert_eq!((info.aperture.start, info.aperture.last), (0, u64::MAX));
    assert_eq!(map(&pt, 0, 0x1000_0000, K4, 1, RW), (K4, Ok(())));
    assert_eq!(
        pt.info().levels,
        1,
        "a page inside the top does not grow it"
    );
    let mut pages = vec![(0u64, 0x1000_0000u64)];
    let mut want_tops = Vec::new();
    for levels in 1..6u32 {
        let before = pt.info();
        assert_eq!(before.levels, levels);
        let iova = 1u64 << pt.format().va_bits(levels - 1);
        let pa = 0x2000_0000 + u64::from(levels) * K4;
        assert_eq!(map(&pt, iova, pa, K4, 1, RW), (K4, Ok(())), "at {iova:#x}");
        let after = pt.info();
        assert_eq!(after.levels, levels + 1, "one level more for {iova:#x}");
        assert_ne!(after.root_pa, before.root_pa, "a new root");
        want_tops.push((after.root_pa, after.levels));
        assert_eq!(rec.tops(), want_tops, "top_changed calls");
        let link = mem.read_u64(after.root_pa).unwrap();
        assert_eq!(
            pt.format().decode(levels, link),
            Pte::Table { pa: before.root_pa },
            "the old root is entry 0 of the new one"
        );
        pages.push((iova, pa));
        for &(v, p) in &pages {
            check_tr("amdv1", &pt, v + 7, v, K4, p);
        }
    }
    // Six levels translate all 64 bits: no more growth.
    let top = u64::MAX - (K4 - 1);
    assert_eq!(map(&pt, top, 0x3000_0000, K4, 1, RW), (K4, Ok(())));
    assert_eq!(pt.info().levels, 6);
    assert_eq!(rec.tops().len(), 5, "no top change at the maximum");
    check_tr("amdv1", &pt, u64::MAX, top, K4, 0x3000_0000);
    clear_all("amdv1", &pt, &mem);
}

/// Growing by several levels in one map: one top change, straight to the level needed.
#[test]
fn amdv1_top_grows_several_levels_at_once() {
    for (start, iova, want) in [(1u32, 1u64 << 60, 6u32), (3, 1 << 48, 5), (2, 1 << 39, 4)] {
        let mem = arena();
        let rec = Recorder::default();
        let pt = PageTable::new(amd(start, 6, true, 52), &mem, &rec).unwrap();
        let old_root = pt.info().root_pa;
        assert_eq!(map(&pt, iova, 0x5000_0000, K4, 1, RW), (K4, Ok(())));
        let info = pt.info();
        assert_eq!(info.levels, want, "from {start} for {iova:#x}");
        assert_eq!(rec.tops(), vec![(info.root_pa, want)]);
        check_tr("amdv1", &pt, iova + 1, iova, K4, 0x5000_0000);
        // The old root is linked at index 0 of each new level down to it.
        let mut pa = info.root_pa;
        for level in (start..want).rev() {
            match pt.format().decode(level, mem.read_u64(pa).unwrap()) {
                Pte::Table { pa: next } => pa = next,
                other => panic!("level {level}: {other:?}"),
            }
        }
        assert_eq!(pa, old_root, "chain ends at the old root");
        clear_all("amdv1", &pt, &mem);
    }
}

/// A page larger than the current top can hold: the top grows first, then the page is
/// written (here at level 2, replacing the empty former root).
#[test]
fn amdv1_top_grows_for_a_large_page() {
    let mem = arena();
    let rec = Recorder::default();
    let pt = PageTable::new(amd(1, 6, true, 52), &mem, &rec).unwrap();
    assert_eq!(map(&pt, 0, 0x4000_0000, G1, 1, RW), (G1, Ok(())));
    let info = pt.info();
    assert_eq!(info.levels, 3);
    assert_eq!(rec.tops(), vec![(info.root_pa, 3)]);
    check_tr("amdv1", &pt, 0x1234_5678, 0, G1, 0x4000_0000);
    // The old (empty) root was replaced by the leaf: only the new top is left.
    assert_eq!(mem.stats().pages, 1);
    let mut g = Gather::new();
    assert_eq!(unmap(&pt, 0, G1, 1, &mut g), (G1, Ok(())));
    pt.sync(&mut g);
    assert_eq!(tr(&pt, 0), None);
}

/// One map across the current top: the part below it goes into the old table, the
/// rest into the new levels, and the whole range translates.
#[test]
fn amdv1_map_across_the_current_top() {
    for (start_levels, count) in [(1u32, 600usize), (2, 16), (3, 3)] {
        let mem = arena();
        let rec = Recorder::default();
        let pt = PageTable::new(amd(start_levels, 6, true, 52), &mem, &rec).unwrap();
        let top = 1u64 << pt.format().va_bits(start_levels - 1);
        let size = if start_levels == 3 { M2 } else { K4 };
        let iova = top - (count as u64 / 2) * size;
        let pa = 0x8000_0000;
        assert_eq!(
            map(&pt, iova, pa, size, count, RW),
            (size * count as u64, Ok(())),
            "from {start_levels}"
        );
        let info = pt.info();
        assert_eq!(info.levels, start_levels + 1);
        assert_eq!(rec.tops(), vec![(info.root_pa, start_levels + 1)]);
        for k in 0..count as u64 {
            let v = iova + k * size;
            check_tr("amdv1", &pt, v + 5, v, size, pa + k * size);
        }
        assert_eq!(tr(&pt, iova - 1), None);
        assert_eq!(tr(&pt, iova + size * count as u64), None);
        let mut g = Gather::new();
        assert_eq!(
            unmap(&pt, iova, size, count, &mut g),
            (size * count as u64, Ok(()))
        );
        pt.sync(&mut g);
        clear_all("amdv1", &pt, &mem);
    }
}

/// Without a dynamic top the aperture is fixed: the table never grows.
#[test]
fn amdv1_fixed_top_never_grows() {
    let mem = arena();
    let rec = Recorder::default();
    let pt = PageTable::new(amd(3, 3, false, 52), &mem, &rec).unwrap();
    let last = pt.info().aperture.last;
    assert_eq!(last, (1 << 39) - 1);
    assert_eq!(
        map(&pt, 1 << 39, 0, K4, 1, RW),
        (
            0,
            Err(Error::OutOfAperture {
                iova: 1 << 39,
                last: (1 << 39) + K4 - 1
            })
        )
    );
    assert_eq!(map(&pt, last - (K4 - 1), 0, K4, 1, RW), (K4, Ok(())));
    assert_eq!(pt.info().levels, 3);
    assert!(rec.tops().is_empty());
    clear_all("amdv1", &pt, &mem);
}
