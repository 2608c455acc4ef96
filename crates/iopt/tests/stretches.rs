//! The stretch fast paths of the engine, on every catalogue configuration: a map into
//! entries that all read zero fills them in one pass, an unmap clears a stretch of
//! single-entry leaves found by the format's `plain_leaf_pattern` and reports it with one
//! `FlushOps::add_pages`. Each test would fail if a fast path wrote the wrong entries,
//! reported the wrong range, or accepted an entry it must not.

mod common;

use std::sync::Mutex;

use common::{configs, for_each_config, label_seed};
use iopt::mem::ArenaMemory;
use iopt::{FlushOps, Format, Gather, PageTable, Prot, Pte};

const RW: Prot = Prot::READ.union(Prot::WRITE);

/// Records `add_pages` calls.
#[derive(Default)]
struct Rec(Mutex<Vec<(u64, u64, usize)>>);

impl FlushOps for Rec {
    fn flush_all(&self) {}
    fn flush_walk(&self, _iova: u64, _size: u64, _granule: u64) {}
    fn top_changed(&self, _root_pa: u64, _levels: u32) {}
    fn add_pages(&self, gather: &mut Gather, iova: u64, size: u64, count: usize) {
        self.0.lock().unwrap().push((iova, size, count));
        gather.add_range(iova, size * count as u64, size);
    }
}

/// A small xorshift for raw entry values.
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Every entry the pattern accepts decodes as a single-entry leaf (the pattern may
/// reject leaves, never accept anything else), and the pattern accepts the single-entry
/// leaves the format itself writes, so the fast path is taken.
fn pattern_is_sound<F: Format>(label: &str, f: F) {
    let mut s = label_seed(label) | 1;
    let width = if F::ENTRY_LG2 == 3 {
        u64::MAX
    } else {
        u32::MAX as u64
    };
    for level in 0..f.max_levels() {
        let (mask, value) = f.plain_leaf_pattern(level);
        if (mask, value) != (0, 1) {
            assert_eq!(value & !mask, 0, "level {level}: value outside the mask");
            for _ in 0..20_000 {
                let raw = ((next(&mut s) & !mask) | value) & width;
                if raw & mask != value {
                    continue; // the value needs bits a 32-bit entry has not
                }
                assert!(
                    matches!(f.decode(level, raw), Pte::Leaf { run_lg2: 0, .. }),
                    "level {level}: pattern ({mask:#x}, {value:#x}) accepts {raw:#x}, which \
                     decodes as {:?}",
                    f.decode(level, raw)
                );
            }
        }
        if f.leaf_runs(level) & 1 != 0 {
            let size = 1u64 << f.item_lg2(level);
            let leaf = f.make_leaf(level, 0x8000_0000 & !(size - 1), 0, RW);
            assert_eq!(
                leaf & mask,
                value,
                "level {level}: the pattern rejects the format's own leaf {leaf:#x}"
            );
        }
    }
}

#[test]
fn plain_leaf_patterns_are_sound() {
    for_each_config!(configs(), pattern_is_sound);
}

/// Maps 16 pages, unmaps them page by page (their leaf table stays), maps 16 others over
/// the emptied entries in one call (the fill of zeroed live entries), checks every page's
/// translation, then unmaps them in one call and checks the stretch's report.
fn refill_and_stretch_unmap<F: Format>(_label: &str, f: F) {
    let mem = ArenaMemory::new(0x4000_0000, 4 << 20);
    let rec = Rec::default();
    let pt = PageTable::new(f, &mem, &rec).unwrap();
    let info = pt.info();
    let page = 1u64 << info.pgsize_bitmap.trailing_zeros();
    let iova = info.aperture.start + 32 * page;
    let mut g = Gather::new();
    // SAFETY: a private table no hardware walks.
    unsafe {
        assert_eq!(
            pt.map_pages(iova, 0x1000_0000, page, 16, RW),
            (16 * page, Ok(()))
        );
        for i in 0..16 {
            assert_eq!(
                pt.unmap_pages(iova + i * page, page, 1, &mut g),
                (page, Ok(()))
            );
        }
        pt.sync(&mut g);
        rec.0.lock().unwrap().clear();
        let pages_before = pt.mem_stats().pages;
        assert_eq!(
            pt.map_pages(iova, 0x2000_0000, page, 16, Prot::READ),
            (16 * page, Ok(()))
        );
        assert_eq!(
            pt.mem_stats().pages,
            pages_before,
            "the leaf table was reused"
        );
        for i in 0..16 {
            let t = pt.translate(iova + i * page).expect("mapped");
            assert_eq!((t.pa, t.size), (0x2000_0000 + i * page, page), "page {i}");
            assert!(!t.prot.contains(Prot::WRITE), "page {i}: {:?}", t.prot);
        }
        assert_eq!(pt.translate(iova - page), None);
        assert_eq!(pt.translate(iova + 16 * page), None);
        // A map that runs into it maps the prefix before it and stops (the raw API's
        // partial result), leaving the refilled pages as they are.
        assert_eq!(
            pt.map_pages(iova - page, 0x3000_0000, page, 2, RW),
            (page, Err(iopt::Error::AddressInUse(iova)))
        );
        assert_eq!(pt.translate(iova).map(|t| t.pa), Some(0x2000_0000));
        assert_eq!(pt.unmap_pages(iova - page, page, 1, &mut g), (page, Ok(())));
        pt.sync(&mut g);
        rec.0.lock().unwrap().clear();
        // One unmap of 12 pages from the 3rd: one stretch, one report.
        assert_eq!(
            pt.unmap_pages(iova + 2 * page, page, 12, &mut g),
            (12 * page, Ok(()))
        );
        assert_eq!(*rec.0.lock().unwrap(), [(iova + 2 * page, page, 12)]);
        assert_eq!(g.range(), Some((iova + 2 * page, iova + 14 * page - 1)));
        pt.sync(&mut g);
        for i in 0..16 {
            let kept = !(2..14).contains(&i);
            assert_eq!(pt.translate(iova + i * page).is_some(), kept, "page {i}");
        }
    }
}

#[test]
fn refill_of_emptied_tables_and_stretch_unmap() {
    for_each_config!(configs(), refill_and_stretch_unmap);
}
