//! The unmaps that report what they removed (`PageTable::unmap_pages_report`,
//! `unmap_range_report`, `Table::unmap_report`, `RangeGuard::unmap_report`), on every
//! catalogue configuration, against an interval model of what was mapped: random mixes
//! of page sizes and runs at random physical addresses, then unmaps whose reported
//! extents must be exactly the model's (IOVA, physical address, size, permissions, in
//! IOVA order, one per leaf item), add up to the bytes unmapped, and be nothing when
//! the unmap is refused (which must change nothing). Tables detached whole report every
//! leaf; the merging collector merges exactly the contiguous neighbours.

mod common;

use std::collections::BTreeMap;

use common::{
    ARENA_BASE, config_tests, configs, for_each_config, label_seed, page_sizes, prot_of, ranges,
};
use iopt::mem::ArenaMemory;
use iopt::{
    Error, Extent, Format, Gather, MergedExtents, NoFlush, PageTable, Prot, SharedTable, Table,
};

/// A fresh arena, smaller than the shared one (every table here stays small, and each
/// arena's zeroing is most of a test's time).
fn arena() -> ArenaMemory {
    ArenaMemory::new(ARENA_BASE, 8 << 20)
}

/// A small xorshift generator.
struct Rng(u64);

impl Rng {
    fn new(label: &str, salt: u64) -> Self {
        Rng(label_seed(label) ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The interval model: the first IOVA of each mapped leaf item -> that item.
#[derive(Debug, Default, Clone)]
struct Model(BTreeMap<u64, Extent>);

fn end(e: &Extent) -> u64 {
    e.iova + (e.size - 1)
}

impl Model {
    /// The item containing `iova`.
    fn find(&self, iova: u64) -> Option<Extent> {
        let (_, e) = self.0.range(..=iova).next_back()?;
        (iova <= end(e)).then_some(*e)
    }

    fn free(&self, first: u64, last: u64) -> bool {
        self.find(first).is_none() && self.0.range(first..=last).next().is_none()
    }

    /// Removes the items starting in `first ..= last` and returns them in order.
    fn take(&mut self, first: u64, last: u64) -> Vec<Extent> {
        let keys: Vec<u64> = self.0.range(first..=last).map(|(&k, _)| k).collect();
        keys.iter().map(|k| self.0.remove(k).unwrap()).collect()
    }

    /// What the raw `unmap_pages` of `first ..= last` does (stops at the first hole,
    /// refuses to start inside an item, removes an item that crosses the end whole).
    fn unmap_pages(&mut self, first: u64, last: u64) -> ((u64, Result<(), Error>), Vec<Extent>) {
        if let Some(e) = self.find(first)
            && e.iova < first
        {
            let err = Error::WouldSplit {
                base: e.iova,
                size: e.size,
            };
            return ((0, Err(err)), vec![]);
        }
        let (mut at, mut removed) = (first, Vec::new());
        loop {
            let Some(e) = self.find(at) else {
                let bytes = removed.iter().map(|e: &Extent| e.size).sum();
                return ((bytes, Err(Error::NotMapped(at))), removed);
            };
            self.0.remove(&e.iova);
            removed.push(e);
            match end(&e).checked_add(1) {
                Some(next) if next <= last => at = next,
                _ => {
                    let bytes = removed.iter().map(|e| e.size).sum();
                    return ((bytes, Ok(())), removed);
                }
            }
        }
    }

    /// What the raw `unmap_range` of `first ..= last` does (holes skipped).
    fn unmap_range(&mut self, first: u64, last: u64) -> ((u64, Result<(), Error>), Vec<Extent>) {
        if let Some(e) = self.find(first)
            && e.iova < first
        {
            let err = Error::WouldSplit {
                base: e.iova,
                size: e.size,
            };
            return ((0, Err(err)), vec![]);
        }
        let removed = self.take(first, last);
        ((removed.iter().map(|e| e.size).sum(), Ok(())), removed)
    }

    /// What the safe layers' exact unmap of `first ..= last` does (refuses a cut at
    /// either end, holes skipped).
    fn unmap_exact(&mut self, first: u64, last: u64) -> (Result<u64, Error>, Vec<Extent>) {
        for at in [first, last] {
            if let Some(e) = self.find(at)
                && (e.iova < first || end(&e) > last)
            {
                return (
                    Err(Error::WouldSplit {
                        base: e.iova,
                        size: e.size,
                    }),
                    vec![],
                );
            }
        }
        let removed = self.take(first, last);
        (Ok(removed.iter().map(|e| e.size).sum()), removed)
    }
}

/// `list` with each extent that continues the one before it merged into it.
fn merged(list: &[Extent]) -> Vec<Extent> {
    let mut out: Vec<Extent> = Vec::new();
    for e in list {
        match out.last_mut() {
            Some(l)
                if l.iova + l.size == e.iova && l.paddr + l.size == e.paddr && l.prot == e.prot =>
            {
                l.size += e.size
            }
            _ => out.push(*e),
        }
    }
    out
}

/// Checks what a reporting unmap reported against the model's removed items: exactly
/// (in order), their sum, and what the merging collector makes of them.
fn check_reported(what: &str, got: &[Extent], want: &[Extent], bytes: u64) {
    assert_eq!(got, want, "{what}: reported extents");
    assert_eq!(
        got.iter().map(|e| e.size).sum::<u64>(),
        bytes,
        "{what}: sum of sizes"
    );
    let mut c = MergedExtents::new();
    for e in got {
        c.push(*e);
    }
    assert_eq!(c.as_slice(), merged(want), "{what}: merged");
    assert_eq!(c.bytes(), bytes, "{what}: merged bytes");
}

/// The permissions a format records for a mapping of `size` bytes made with `prot`,
/// learnt once on a scratch table (mapped, translated and unmapped again).
struct Recorded<F: Format> {
    scratch: PageTable<F, ArenaMemory, NoFlush>,
    seen: BTreeMap<(u64, u32), Prot>,
}

impl<F: Format + Copy> Recorded<F> {
    fn new(fmt: F) -> Self {
        let scratch = PageTable::new(fmt, arena(), NoFlush).expect("scratch table");
        Recorded {
            scratch,
            seen: BTreeMap::new(),
        }
    }

    fn of(&mut self, size: u64, prot: Prot) -> Prot {
        let pt = &self.scratch;
        *self.seen.entry((size, prot.bits())).or_insert_with(|| {
            let (start, _) = ranges(&pt.info())[0];
            let iova = start.next_multiple_of(size);
            // SAFETY: a private table, no hardware.
            let r = unsafe { pt.map_pages(iova, size, size, 1, prot) };
            assert_eq!(r, (size, Ok(())), "scratch map of {size:#x} with {prot:?}");
            // SAFETY: as above.
            let t = unsafe { pt.translate(iova) }.expect("scratch translate");
            let mut g = Gather::new();
            // SAFETY: as above.
            let r = unsafe { pt.unmap_range(iova, size, &mut g) };
            assert_eq!(r, (size, Ok(())));
            pt.sync(&mut g);
            t.prot
        })
    }
}

/// Where a configuration's random tests work: an IOVA window, the page sizes used in it
/// (at most two leaf tables' span), the span of one leaf table.
struct Window {
    base: u64,
    len: u64,
    sizes: Vec<u64>,
    leaf_span: u64,
    oa_mask: u64,
}

fn window<F: Format>(fmt: &F, pt_info: &iopt::Info, round: u64) -> Window {
    let leaf_span = 1u64 << fmt.item_lg2(1);
    let sizes: Vec<u64> = page_sizes(pt_info)
        .into_iter()
        .filter(|&s| s <= 2 * leaf_span)
        .collect();
    let rs = ranges(pt_info);
    let (start, last) = rs[round as usize % rs.len()];
    let span = (last - start) / 2 + 1;
    let len = (8 * leaf_span).min(span);
    let oa_mask = if pt_info.oa_bits >= 64 {
        u64::MAX
    } else {
        (1u64 << pt_info.oa_bits) - 1
    };
    Window {
        base: start,
        len,
        sizes,
        leaf_span,
        oa_mask,
    }
}

/// Fills `w` with a random layout through the raw map (page sizes and runs mixed, runs of
/// pages that continue the physical addresses and permissions of the one before, holes,
/// whole leaf tables of small pages), checking each map; returns the model.
fn layout<F: Format + Copy, M: iopt::mem::TableMemory>(
    pt: &PageTable<F, M, NoFlush>,
    w: &Window,
    rec: &mut Recorded<F>,
    rng: &mut Rng,
) -> Model {
    let mut model = Model::default();
    let small = w.sizes[0];
    let (mut at, stop) = (w.base, w.base + (w.len - 1));
    let (mut next_pa, mut prot) = (0u64, Prot::READ);
    for _ in 0..300 {
        let fits: Vec<u64> = w
            .sizes
            .iter()
            .copied()
            .filter(|&s| at % s == 0 && at.checked_add(s - 1).is_some_and(|l| l <= stop))
            .collect();
        let Some(&largest) = fits.last() else { break };
        if rng.below(8) == 0 {
            at += fits[rng.below(fits.len() as u64) as usize] * (1 + rng.below(3));
            if at > stop {
                break;
            }
            continue;
        }
        let size = if rng.below(2) == 0 {
            largest
        } else {
            fits[rng.below(fits.len() as u64) as usize]
        };
        let room = (stop - at) / size + 1;
        let most = if size == small && rng.below(4) == 0 {
            w.leaf_span / small
        } else {
            8
        };
        let count = 1 + rng.below(most.min(room));
        // Physically contiguous with the previous piece half of the time.
        let fresh = (rng.next() & w.oa_mask & !(size - 1)).min(w.oa_mask - (count * size - 1))
            & !(size - 1);
        let contiguous = rng.below(2) == 0
            && next_pa % size == 0
            && next_pa
                .checked_add(count * size - 1)
                .is_some_and(|l| l <= w.oa_mask);
        let pa = if contiguous { next_pa } else { fresh };
        if rng.below(2) == 0 {
            prot = prot_of(rng.next() as u8);
        }
        // SAFETY: single-threaded; no hardware.
        let r = unsafe { pt.map_pages(at, pa, size, count as usize, prot) };
        assert_eq!(
            r,
            (count * size, Ok(())),
            "map {at:#x} -> {pa:#x}, {size:#x} x {count}"
        );
        let recorded = rec.of(size, prot);
        for k in 0..count {
            let e = Extent {
                iova: at + k * size,
                paddr: pa + k * size,
                size,
                prot: recorded,
            };
            assert!(model.free(e.iova, end(&e)));
            model.0.insert(e.iova, e);
        }
        // SAFETY: as above.
        let t = unsafe { pt.translate(at) }.expect("mapped");
        assert_eq!(
            (t.pa, t.size, t.prot),
            (pa, size, recorded),
            "translate {at:#x}"
        );
        next_pa = pa + count * size;
        at += count * size;
        if at > stop {
            break;
        }
    }
    model
}

/// A random unmap range in the window: from an item's base (mostly), an item's inside,
/// or anywhere; to an item's end, a little further, or far.
fn pick(model: &Model, w: &Window, rng: &mut Rng) -> (u64, u64) {
    let small = w.sizes[0];
    let stop = w.base + (w.len - 1);
    let keys: Vec<u64> = model.0.keys().copied().collect();
    let first = match rng.below(8) {
        0..=4 if !keys.is_empty() => keys[rng.below(keys.len() as u64) as usize],
        5 if !keys.is_empty() => keys[rng.below(keys.len() as u64) as usize] + small,
        _ => w.base + rng.below(w.len / small) * small,
    }
    .min(stop - (small - 1));
    let after: Vec<u64> = model
        .0
        .range(first..)
        .map(|(_, e)| end(e))
        .take(64)
        .collect();
    let last = match rng.below(8) {
        0..=3 if !after.is_empty() => after[rng.below(after.len() as u64) as usize],
        4 | 5 => first + small * (1 + rng.below(64)) - 1,
        _ => first + small * (1 + rng.below(w.len / small / 2)) - 1,
    }
    .min(stop);
    (first, last)
}

/// Spot checks after an unmap: what it removed translates to nothing; a sample of what
/// the model still has translates as mapped.
fn check_table<F: Format, M: iopt::mem::TableMemory>(
    pt: &PageTable<F, M, NoFlush>,
    model: &Model,
    removed: &[Extent],
    rng: &mut Rng,
) {
    for e in removed.iter().take(64) {
        // SAFETY: single-threaded; no hardware.
        let t = unsafe { pt.translate(e.iova) };
        assert_eq!(t, None, "{:#x} still mapped", e.iova);
    }
    let keys: Vec<&Extent> = model.0.values().collect();
    for _ in 0..16.min(keys.len()) {
        let e = keys[rng.below(keys.len() as u64) as usize];
        // SAFETY: as above.
        let t = unsafe { pt.translate(end(e)) }.expect("still mapped");
        assert_eq!(
            (t.iova_base, t.pa, t.size),
            (e.iova, e.paddr + (e.size - 1), e.size)
        );
    }
}

/// The raw reporting unmaps (pages and range, alternately) against the model.
fn raw_reports<F: Format + Copy>(label: &str, fmt: F) {
    let mut rec = Recorded::new(fmt);
    for round in 0..4u64 {
        let mut rng = Rng::new(label, round);
        let mem = arena();
        let pt = PageTable::new(fmt, &mem, NoFlush).expect("table");
        let w = window(&fmt, &pt.info(), round);
        let mut model = layout(&pt, &w, &mut rec, &mut rng);
        let mut g = Gather::new();
        for step in 0..40 {
            let (first, last) = pick(&model, &w, &mut rng);
            let len = last - first + 1;
            let before = mem.image();
            let mut got = Vec::new();
            let (what, r, (want_r, want)) = if step % 2 == 0 {
                // The largest page size the range is a multiple of, some of the time.
                let pgsize = w
                    .sizes
                    .iter()
                    .copied()
                    .filter(|&s| rng.below(2) == 0 && first % s == 0 && len % s == 0)
                    .max()
                    .unwrap_or(w.sizes[0]);
                let count = (len / pgsize) as usize;
                // SAFETY: single-threaded; no hardware.
                let r = unsafe {
                    pt.unmap_pages_report(first, pgsize, count, &mut g, &mut |e| got.push(e))
                };
                let what = format!("unmap_pages_report({first:#x}, {pgsize:#x}, {count})");
                (what, r, model.unmap_pages(first, last))
            } else {
                // SAFETY: single-threaded; no hardware.
                let r = unsafe { pt.unmap_range_report(first, len, &mut g, &mut |e| got.push(e)) };
                (
                    format!("unmap_range_report({first:#x}, {len:#x})"),
                    r,
                    model.unmap_range(first, last),
                )
            };
            assert_eq!(r, want_r, "{what}");
            check_reported(&what, &got, &want, r.0);
            if r.1.is_err() && r.0 == 0 {
                assert!(
                    ArenaMemory::same_image(&before, &mem.image()),
                    "{what}: failed, but changed the table"
                );
            }
            pt.sync(&mut g);
            check_table(&pt, &model, &want, &mut rng);
        }
        // The rest, in one call.
        let mut got = Vec::new();
        // SAFETY: single-threaded; no hardware.
        let r = unsafe { pt.unmap_range_report(w.base, w.len, &mut g, &mut |e| got.push(e)) };
        let (want_r, want) = model.unmap_range(w.base, w.base + (w.len - 1));
        assert_eq!(r, want_r, "final unmap_range_report");
        check_reported("final unmap_range_report", &got, &want, r.0);
        pt.sync(&mut g);
        assert!(model.0.is_empty());
    }
}

/// `Table::unmap_report` against the model (all or nothing, cuts refused at both ends).
fn safe_reports<F: Format + Copy>(label: &str, fmt: F) {
    let mut rec = Recorded::new(fmt);
    for round in 0..3u64 {
        let mut rng = Rng::new(label, 100 + round);
        let mem = arena();
        let mut t = Table::new(fmt, &mem, NoFlush).expect("table");
        let w = window(&fmt, &t.info(), round);
        let mut model = layout(t.raw(), &w, &mut rec, &mut rng);
        let mut g = Gather::new();
        for _ in 0..40 {
            let (first, last) = pick(&model, &w, &mut rng);
            let len = last - first + 1;
            let before = mem.image();
            let mut got = Vec::new();
            let r = t
                .unmap_report(first, len, &mut g, |e| got.push(e))
                .map(|u| u.bytes());
            let (want_r, want) = model.unmap_exact(first, last);
            let what = format!("unmap_report({first:#x}, {len:#x})");
            assert_eq!(r, want_r, "{what}");
            check_reported(&what, &got, &want, r.unwrap_or(0));
            if r.is_err() {
                assert!(
                    ArenaMemory::same_image(&before, &mem.image()),
                    "{what}: refused, but changed the table"
                );
            }
            t.sync(&mut g);
            check_table(t.raw(), &model, &want, &mut rng);
        }
        let mut got = Vec::new();
        let r = t
            .unmap_report(w.base, w.len, &mut g, |e| got.push(e))
            .map(|u| u.bytes());
        let (want_r, want) = model.unmap_exact(w.base, w.base + (w.len - 1));
        assert_eq!(r, want_r, "final unmap_report");
        check_reported("final unmap_report", &got, &want, r.unwrap_or(0));
        t.sync(&mut g);
        // The single owner reclaims what it empties: only the top (and, for ARM stage 2's
        // concatenated tops, the top's pages) is left.
        assert_eq!(
            t.mem_stats().pages,
            Table::new(fmt, arena(), NoFlush).unwrap().mem_stats().pages
        );
    }
}

/// `RangeGuard::unmap_report` against the model, including ranges reaching out of the
/// guard (refused, nothing reported).
fn guard_reports<F: Format + Copy>(label: &str, fmt: F) {
    let mut rec = Recorded::new(fmt);
    for round in 0..3u64 {
        let mut rng = Rng::new(label, 200 + round);
        let mem = arena();
        let t = SharedTable::new(fmt, &mem, NoFlush).expect("table");
        let w = window(&fmt, &t.info(), round);
        let mut model = layout(t.raw(), &w, &mut rec, &mut rng);
        let mut guard = t.lock(w.base, w.len).expect("lock the window");
        let mut g = Gather::new();
        for _ in 0..40 {
            let (first, mut last) = pick(&model, &w, &mut rng);
            let outside = rng.below(10) == 0;
            if outside {
                last = w.base + w.len + (w.sizes[0] - 1); // one page past the guard
            }
            let len = last - first + 1;
            let before = mem.image();
            let mut got = Vec::new();
            let r = guard.unmap_report(first, len, &mut g, |e| got.push(e));
            let what = format!("guard unmap_report({first:#x}, {len:#x})");
            let want = if outside {
                assert_eq!(r, Err(Error::OutsideGuard { iova: first, last }), "{what}");
                vec![]
            } else {
                let (want_r, want) = model.unmap_exact(first, last);
                assert_eq!(r, want_r, "{what}");
                want
            };
            check_reported(&what, &got, &want, r.unwrap_or(0));
            if r.is_err() {
                assert!(
                    ArenaMemory::same_image(&before, &mem.image()),
                    "{what}: refused, but changed the table"
                );
            }
            t.sync(&mut g);
            check_table(t.raw(), &model, &want, &mut rng);
        }
        let mut got = Vec::new();
        let r = guard.unmap_report(w.base, w.len, &mut g, |e| got.push(e));
        let (want_r, want) = model.unmap_exact(w.base, w.base + (w.len - 1));
        assert_eq!(r, want_r, "final guard unmap_report");
        check_reported("final guard unmap_report", &got, &want, r.unwrap_or(0));
        t.sync(&mut g);
    }
}

config_tests!(raw, raw_reports);
config_tests!(safe, safe_reports);
config_tests!(guard, guard_reports);

/// Maps `count` pages of `size` at `iova` -> `pa` through the raw API, into the model.
fn map_into<F: Format + Copy, M: iopt::mem::TableMemory>(
    pt: &PageTable<F, M, NoFlush>,
    model: &mut Model,
    rec: &mut Recorded<F>,
    (iova, pa, size, count, prot): (u64, u64, u64, u64, Prot),
) {
    // SAFETY: single-threaded; no hardware.
    let r = unsafe { pt.map_pages(iova, pa, size, count as usize, prot) };
    assert_eq!(
        r,
        (count * size, Ok(())),
        "map {iova:#x} -> {pa:#x}, {size:#x} x {count}"
    );
    let prot = rec.of(size, prot);
    for k in 0..count {
        let e = Extent {
            iova: iova + k * size,
            paddr: pa + k * size,
            size,
            prot,
        };
        model.0.insert(e.iova, e);
    }
}

/// Leaf tables that an unmap detaches whole (full ones under `unmap_pages`, one with
/// holes under `unmap_range`) and a whole subtree (a level-1 table with large pages and
/// a leaf table) report every leaf they held, in order.
fn whole_tables<F: Format + Copy>(label: &str, fmt: F) {
    let mut rec = Recorded::new(fmt);
    let mut rng = Rng::new(label, 300);
    let mem = arena();
    let pt = PageTable::new(fmt, &mem, NoFlush).expect("table");
    let info = pt.info();
    let w = window(&fmt, &info, 0);
    let (small, span) = (w.sizes[0], w.leaf_span);
    assert!(span > small, "a leaf table of one entry");
    let oa = |rng: &mut Rng, size: u64| {
        (rng.next() & w.oa_mask & !(size - 1)).min(w.oa_mask >> 1) & !(size - 1)
    };
    let mut model = Model::default();
    let base = w.base + span;
    // A: every entry its own page, at a random physical address, with random permissions.
    for i in 0..span / small {
        let pa = oa(&mut rng, small);
        map_into(
            &pt,
            &mut model,
            &mut rec,
            (base + i * small, pa, small, 1, prot_of(rng.next() as u8)),
        );
    }
    // B: runs and pages mixed, full.
    let (mut at, b_end) = (base + span, base + 2 * span);
    while at < b_end {
        let fits: Vec<u64> = w
            .sizes
            .iter()
            .copied()
            .filter(|&s| s < span && at % s == 0)
            .collect();
        let size = fits[rng.below(fits.len() as u64) as usize];
        let count = (1 + rng.below(4)).min((b_end - at) / size);
        let pa = oa(&mut rng, size);
        map_into(
            &pt,
            &mut model,
            &mut rec,
            (at, pa, size, count, prot_of(rng.next() as u8)),
        );
        at += size * count;
    }
    // C: pages with holes.
    let c = base + 2 * span;
    for i in 0..span / small {
        if i == 0 || rng.below(2) == 0 {
            let pa = oa(&mut rng, small);
            map_into(
                &pt,
                &mut model,
                &mut rec,
                (c + i * small, pa, small, 1, Prot::READ),
            );
        }
    }
    let mut g = Gather::new();
    let mut got = Vec::new();
    // SAFETY: single-threaded; no hardware.
    let r = unsafe {
        pt.unmap_pages_report(base, small, (2 * span / small) as usize, &mut g, &mut |e| {
            got.push(e)
        })
    };
    let (want_r, want) = model.unmap_pages(base, base + (2 * span - 1));
    assert_eq!(r, want_r, "unmap_pages_report of the full tables");
    assert_eq!(r.0, 2 * span);
    check_reported("full tables", &got, &want, r.0);
    assert!(
        g.pending_tables() >= 2,
        "the full leaf tables were detached whole"
    );
    let mut got = Vec::new();
    // SAFETY: as above.
    let r = unsafe { pt.unmap_range_report(c, span, &mut g, &mut |e| got.push(e)) };
    let (want_r, want) = model.unmap_range(c, c + (span - 1));
    assert_eq!(r, want_r, "unmap_range_report of the table with holes");
    check_reported("table with holes", &got, &want, r.0);
    assert!(
        g.pending_tables() >= 3,
        "the table with holes was detached whole"
    );
    pt.sync(&mut g);
    assert!(model.0.is_empty());

    // A whole subtree: a level-1 table holding a leaf table and large pages.
    let levels = info.levels.max(fmt.levels());
    if levels < 3 || fmt.item_lg2(2) > 31 || (1u64 << fmt.item_lg2(2)) > w.len.max(span) * 64 {
        return;
    }
    let l2 = 1u64 << fmt.item_lg2(2);
    let (start, last) = ranges(&info)[0];
    if last - start < 2 * l2 {
        return;
    }
    let b2 = start + l2;
    map_into(
        &pt,
        &mut model,
        &mut rec,
        (
            b2,
            oa(&mut rng, span),
            small,
            span / small,
            Prot::READ | Prot::WRITE,
        ),
    );
    if info.pgsize_bitmap & span != 0 {
        let count = l2 / span - 1;
        let pa = (oa(&mut rng, span)).min(w.oa_mask - (count * span - 1)) & !(span - 1);
        map_into(
            &pt,
            &mut model,
            &mut rec,
            (b2 + span, pa, span, count, Prot::READ),
        );
    } else {
        let pa = oa(&mut rng, small);
        map_into(
            &pt,
            &mut model,
            &mut rec,
            (b2 + l2 - span, pa, small, 3, Prot::WRITE),
        );
    }
    let mut got = Vec::new();
    // SAFETY: as above.
    let r = unsafe { pt.unmap_range_report(b2, l2, &mut g, &mut |e| got.push(e)) };
    let (want_r, want) = model.unmap_range(b2, b2 + (l2 - 1));
    assert_eq!(r, want_r, "unmap_range_report of a subtree");
    check_reported("subtree", &got, &want, r.0);
    assert!(g.pending_tables() >= 2, "the subtree was detached");
    pt.sync(&mut g);
}

/// Unmaps that fail before changing anything (argument errors, a cut of a large page,
/// a range outside the guard) report nothing and leave the table's bytes as they were.
fn refused<F: Format + Copy>(label: &str, fmt: F) {
    let mut rec = Recorded::new(fmt);
    let mut rng = Rng::new(label, 400);
    let mem = arena();
    let mut t = Table::new(fmt, &mem, NoFlush).expect("table");
    let info = t.info();
    let w = window(&fmt, &info, 0);
    let small = w.sizes[0];
    let big = *w.sizes.last().unwrap();
    let mut model = Model::default();
    map_into(
        t.raw(),
        &mut model,
        &mut rec,
        (w.base, 0x10_0000 & !(small - 1), small, 4, Prot::READ),
    );
    let bbase = w.base + 2 * big.max(w.leaf_span);
    if big > small {
        map_into(
            t.raw(),
            &mut model,
            &mut rec,
            (bbase, big * (1 + rng.below(4)), big, 1, Prot::READ),
        );
    }
    let image = mem.image();
    let unchanged = |what: &str, got: &[Extent]| {
        assert!(got.is_empty(), "{what}: reported {got:?}");
        assert!(
            ArenaMemory::same_image(&image, &mem.image()),
            "{what}: changed the table"
        );
    };
    let mut g = Gather::new();
    let raw = t.raw();
    let (ap_start, ap_last) = (info.aperture.start, info.aperture.last);
    // An IOVA below or above the aperture, if it does not span the whole 64-bit space.
    let outside = if ap_start >= small {
        Some(ap_start - small)
    } else {
        ap_last.checked_add(1)
    };
    /// What a refused raw unmap is: (name, iova, page size, count, expected error).
    type Case = (&'static str, u64, u64, usize, fn(&Error) -> bool);
    let mut cases: Vec<Case> = vec![
        ("zero pages", w.base, small, 0, |e| {
            matches!(e, Error::ZeroLength)
        }),
        ("bad page size", w.base, small * 3, 1, |e| {
            matches!(e, Error::BadPageSize(_))
        }),
    ];
    if let Some(outside) = outside {
        cases.push(("outside the aperture", outside, small, 1, |e| {
            matches!(e, Error::OutOfAperture { .. })
        }));
    }
    if big > small {
        cases.push(("unaligned", bbase + small, big, 1, |e| {
            matches!(e, Error::UnalignedIova { .. })
        }));
        cases.push(("inside a large page", bbase + small, small, 1, |e| {
            matches!(e, Error::WouldSplit { .. })
        }));
    }
    for (what, iova, pgsize, count, want) in cases {
        let mut got = Vec::new();
        // SAFETY: single-threaded; no hardware.
        let (n, r) =
            unsafe { raw.unmap_pages_report(iova, pgsize, count, &mut g, &mut |e| got.push(e)) };
        assert!(
            n == 0 && r.as_ref().is_err_and(want),
            "unmap_pages_report {what}: {r:?}"
        );
        unchanged(what, &got);
    }
    let mut ranges_cases: Vec<(&str, u64, u64)> = vec![
        ("zero length", w.base, 0),
        ("odd length", w.base, small / 2),
    ];
    if big > small {
        ranges_cases.push(("inside a large page", bbase + small, small));
    }
    for (what, iova, len) in ranges_cases {
        let mut got = Vec::new();
        // SAFETY: single-threaded; no hardware.
        let (n, r) = unsafe { raw.unmap_range_report(iova, len, &mut g, &mut |e| got.push(e)) };
        assert!(n == 0 && r.is_err(), "unmap_range_report {what}: {r:?}");
        unchanged(what, &got);
    }
    let mut safe_cases: Vec<(&str, u64, u64)> = vec![
        ("zero length", w.base, 0),
        ("odd length", w.base, small + small / 2),
    ];
    if big > small {
        safe_cases.push(("ends inside a large page", bbase - small, 2 * small));
        safe_cases.push(("starts inside a large page", bbase + small, big));
    }
    for (what, iova, len) in &safe_cases {
        let mut got = Vec::new();
        let r = t.unmap_report(*iova, *len, &mut g, |e| got.push(e));
        assert!(r.is_err(), "unmap_report {what}: {r:?}");
        unchanged(what, &got);
    }
    assert!(g.is_empty(), "a refused unmap gathered something");
    // The same through a guard, plus a range reaching out of it.
    let mem2 = arena();
    let s = SharedTable::new(fmt, &mem2, NoFlush).expect("table");
    let mut model2 = Model::default();
    map_into(
        s.raw(),
        &mut model2,
        &mut rec,
        (w.base, 0x10_0000 & !(small - 1), small, 4, Prot::READ),
    );
    if big > small {
        map_into(
            s.raw(),
            &mut model2,
            &mut rec,
            (bbase, big, big, 1, Prot::READ),
        );
    }
    let image2 = mem2.image();
    let mut guard = s.lock(w.base, w.len).expect("lock");
    safe_cases.push(("outside the guard", w.base, w.len + small));
    for (what, iova, len) in &safe_cases {
        let mut got = Vec::new();
        let r = guard.unmap_report(*iova, *len, &mut g, |e| got.push(e));
        assert!(r.is_err(), "guard unmap_report {what}: {r:?}");
        assert!(got.is_empty(), "guard {what}: reported {got:?}");
        assert!(
            ArenaMemory::same_image(&image2, &mem2.image()),
            "guard {what}: changed the table"
        );
    }
    // And the unmaps that succeed report what the model has.
    let mut got = Vec::new();
    let r = t
        .unmap_report(w.base, w.len, &mut g, |e| got.push(e))
        .map(|u| u.bytes());
    let (want_r, want) = model.unmap_exact(w.base, w.base + (w.len - 1));
    assert_eq!(r, want_r);
    check_reported("the rest", &got, &want, r.unwrap_or(0));
    t.sync(&mut g);
    let mut got = Vec::new();
    let r = guard.unmap_report(w.base, w.len, &mut g, |e| got.push(e));
    let (want_r, want) = model2.unmap_exact(w.base, w.base + (w.len - 1));
    assert_eq!(r, want_r);
    check_reported("the rest, guarded", &got, &want, r.unwrap_or(0));
    s.sync(&mut g);
}

config_tests!(whole, whole_tables);

#[test]
fn refused_unmaps_report_nothing() {
    for_each_config!(configs(), refused);
}

const R: Prot = Prot::READ;

fn ext(iova: u64, paddr: u64, size: u64, prot: Prot) -> Extent {
    Extent {
        iova,
        paddr,
        size,
        prot,
    }
}

#[test]
fn the_collector_merges_exactly_the_contiguous_neighbours() {
    let mut c = MergedExtents::new();
    c.push(ext(0x1000, 0x8000_1000, 0x1000, R));
    c.push(ext(0x2000, 0x8000_2000, 0x2000, R)); // continues: merged
    c.push(ext(0x4000, 0x9000_0000, 0x1000, R)); // IOVA contiguous only
    c.push(ext(0x6000, 0x9000_1000, 0x1000, R)); // physical contiguous only
    c.push(ext(0x7000, 0x9000_2000, 0x1000, Prot::WRITE)); // other permissions
    c.push(ext(0x8000, 0x9000_3000, 0x1000, Prot::WRITE)); // continues: merged
    c.push(ext(0x1000, 0x8000_1000, 0x1000, R)); // out of order: kept
    assert_eq!(
        c.as_slice(),
        [
            ext(0x1000, 0x8000_1000, 0x3000, R),
            ext(0x4000, 0x9000_0000, 0x1000, R),
            ext(0x6000, 0x9000_1000, 0x1000, R),
            ext(0x7000, 0x9000_2000, 0x2000, Prot::WRITE),
            ext(0x1000, 0x8000_1000, 0x1000, R),
        ]
    );
    assert_eq!(c.bytes(), 0x8000);
    // Nothing wraps past 2^64, in either space.
    let top = u64::MAX - 0xfff;
    let mut c = MergedExtents::new();
    c.push(ext(top, 0x1000, 0x1000, R));
    c.push(ext(0, 0x2000, 0x1000, R));
    let mut d = MergedExtents::new();
    d.push(ext(0x1000, top, 0x1000, R));
    d.push(ext(0x2000, 0, 0x1000, R));
    assert_eq!((c.len(), d.len()), (2, 2));
    // Up to the last byte is fine.
    let mut e = MergedExtents::new();
    e.push(ext(top - 0x1000, 0x1000, 0x1000, R));
    e.push(ext(top, 0x2000, 0x1000, R));
    assert_eq!(e.as_slice(), [ext(top - 0x1000, 0x1000, 0x2000, R)]);
    e.clear();
    assert!(e.is_empty() && e.clone().into_vec().is_empty());
}

/// A driver's buffer of 4 KiB pages at consecutive physical addresses, then at scattered
/// ones: the stretch path reports one extent per page, the collector merges the
/// consecutive ones only.
#[test]
fn stretch_reports_per_page_and_the_collector_merges() {
    use iopt::fmt::x86_64::{X86_64, X86_64Config};
    let mem = arena();
    let pt = PageTable::new(X86_64::new(X86_64Config::default()).unwrap(), &mem, NoFlush).unwrap();
    let rw = Prot::READ | Prot::WRITE;
    // SAFETY: single-threaded; no hardware.
    unsafe {
        assert_eq!(
            pt.map_pages(0x10_0000, 0x8000_0000, 0x1000, 64, rw),
            (0x4_0000, Ok(()))
        );
        for i in 0..4u64 {
            let r = pt.map_pages(
                0x14_0000 + i * 0x1000,
                0x9000_0000 - i * 0x1000,
                0x1000,
                1,
                rw,
            );
            assert_eq!(r, (0x1000, Ok(())));
        }
    }
    let (mut g, mut all, mut c) = (Gather::new(), Vec::new(), MergedExtents::new());
    // SAFETY: as above.
    let r = unsafe {
        pt.unmap_pages_report(0x10_0000, 0x1000, 68, &mut g, &mut |e| {
            all.push(e);
            c.push(e)
        })
    };
    pt.sync(&mut g);
    assert_eq!(r, (68 * 0x1000, Ok(())));
    assert_eq!(all.len(), 68);
    assert!(all.iter().all(|e| e.size == 0x1000 && e.prot.contains(rw)));
    let prot = all[0].prot;
    let mut want = vec![ext(0x10_0000, 0x8000_0000, 0x4_0000, prot)];
    want.extend((0..4u64).map(|i| {
        ext(
            0x14_0000 + i * 0x1000,
            0x9000_0000 - i * 0x1000,
            0x1000,
            prot,
        )
    }));
    assert_eq!(c.as_slice(), want);
}
