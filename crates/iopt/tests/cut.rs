//! Cut (`PageTable::cut`): on every catalogue configuration, every large page size and
//! run, at cut points at every page-size boundary inside it (every point for small
//! ones): the translations stay identical page for page, no leaf crosses the cut, the
//! replacement uses the largest page sizes on each side, the table-page count grows by
//! exactly what `cut_tables` said, and a cut the format cannot make hitlessly is
//! refused with the byte image unchanged unless break-before-make is allowed. Also: the
//! break-before-make path invalidates before it installs (a recording flush that reads
//! the entry at the moment of the flush), a cut that fails for memory changes nothing,
//! and cuts against a reservation.

mod common;

use std::sync::Mutex;

use common::{configs, for_each_config, page_sizes};
use iopt::mem::{ArenaMemory, FaultyMemory, TableMemory};
use iopt::{Bbm, Cut, Error, FlushOps, Format, Gather, NoFlush, PageTable, Prot};

const RW: Prot = Prot::READ.union(Prot::WRITE);

/// The leaves over `[lo, hi)`, stepping by translate: (base, pa, size, prot).
fn leaves<F: Format, M: TableMemory, X: FlushOps>(
    pt: &PageTable<F, M, X>,
    lo: u64,
    hi: u64,
) -> Vec<(u64, u64, u64, Prot)> {
    let mut v = Vec::new();
    let mut at = lo;
    while at != hi {
        // SAFETY: a private table.
        let t = unsafe { pt.translate(at) }.unwrap_or_else(|| panic!("{at:#x} unmapped"));
        assert_eq!(t.iova_base, at, "a leaf begins before {at:#x}");
        v.push((t.iova_base, t.pa, t.size, t.prot));
        at = at.wrapping_add(t.size);
    }
    v
}

/// How many leaves the largest page sizes below `size` give for `[lo, hi)` (both
/// aligned to the smallest page; addresses congruent to the output addresses modulo
/// every page size): greedy, largest aligned size first.
fn greedy_count(bitmap: u64, size: u64, lo: u64, hi: u64) -> usize {
    let sizes: Vec<u64> = (0..64)
        .map(|b| 1u64 << b)
        .filter(|&s| bitmap & s != 0 && s < size)
        .rev()
        .collect();
    let (mut at, mut n) = (lo, 0);
    while at != hi {
        let s = *sizes
            .iter()
            .find(|&&s| at & (s - 1) == 0 && hi.wrapping_sub(at) >= s)
            .expect("the smallest page fits");
        at = at.wrapping_add(s);
        n += 1;
    }
    n
}

/// Where a test leaf of `size` goes: aligned, inside the aperture, with room before it.
fn place<F: Format, M: TableMemory, X: FlushOps>(
    pt: &PageTable<F, M, X>,
    size: u64,
) -> Option<u64> {
    let ap = pt.info().aperture;
    let base = (ap.start.checked_add(size)? - 1) & !(size - 1);
    let base = if base == ap.start {
        base.checked_add(size)?
    } else {
        base
    };
    (base.checked_add(size - 1)? <= ap.last).then_some(base)
}

/// At most `k` elements of `v`, evenly spread, the first and the last among them.
fn spread(v: &[u64], k: usize) -> Vec<u64> {
    if v.len() <= k {
        return v.to_vec();
    }
    (0..k).map(|i| v[i * (v.len() - 1) / (k - 1)]).collect()
}

/// Cut points inside a leaf of `size`: one page in from either end, past the middle, and
/// every smaller page size's first and last boundary; every point when the leaf has at
/// most 64 smallest pages.
fn cut_points(bitmap: u64, size: u64) -> Vec<u64> {
    let min = 1u64 << bitmap.trailing_zeros();
    if size / min <= 64 {
        return (1..size / min).map(|k| k * min).collect();
    }
    let mut v = vec![min, size - min, size / 2 + min];
    let smaller: Vec<u64> = (0..64)
        .map(|b| 1u64 << b)
        .filter(|&s| bitmap & s != 0 && s < size)
        .collect();
    for s in spread(&smaller, 8) {
        v.extend([s, size - s]);
    }
    v.sort_unstable();
    v.dedup();
    v.retain(|&o| o > 0 && o < size);
    v
}

fn cut_everywhere<F: Format + Copy>(label: &str, f: F) {
    let hitless = f.cut_hitless();
    let probe = ArenaMemory::new(0x4000_0000, 4 << 20);
    let info = PageTable::new(f, &probe, NoFlush).unwrap().info();
    let bitmap = info.pgsize_bitmap;
    let min = 1u64 << bitmap.trailing_zeros();
    // AMD v1 has a page size for every power of two: a spread of at most 10 of them.
    let sizes: Vec<u64> = page_sizes(&info).into_iter().filter(|&s| s > min).collect();
    for size in spread(&sizes, 10) {
        let probe_pt = PageTable::new(f, &probe, NoFlush).unwrap();
        let Some(base) = place(&probe_pt, size) else {
            continue;
        };
        let pa = size;
        for off in cut_points(bitmap, size) {
            let x = base + off;
            let arena = ArenaMemory::new(0x4000_0000, 4 << 20);
            let pt = PageTable::new(f, &arena, NoFlush).unwrap();
            // SAFETY: a private table; no hardware walks it.
            unsafe {
                match pt.map_pages(base, pa, size, 1, RW) {
                    (n, Ok(())) if n == size => {}
                    // An output address this configuration cannot hold: skip the size.
                    (0, Err(Error::PaddrTooLarge { .. })) => break,
                    other => panic!("{label}: map {size:#x} at {base:#x}: {other:?}"),
                }
                let prot = pt.translate(base).unwrap().prot;
                let need = pt.cut_tables(&[x]).unwrap().total();
                let pages = pt.mem_stats().pages;
                let image = arena.image();
                let want = |bbm| Some(Cut { base, size, bbm });
                if hitless {
                    assert_eq!(pt.cut(x, Bbm::Refuse), Ok(want(false)), "{label} {x:#x}");
                } else {
                    assert_eq!(
                        pt.cut(x, Bbm::Refuse),
                        Err(Error::NeedsBreakBeforeMake { base, size }),
                        "{label} {x:#x}"
                    );
                    assert!(ArenaMemory::same_image(&image, &arena.image()), "{label}");
                    assert_eq!(pt.cut(x, Bbm::Allow), Ok(want(true)), "{label} {x:#x}");
                }
                assert_eq!(pt.mem_stats().pages, pages + need, "{label} {x:#x}: tables");
                let got = leaves(&pt, base, base.wrapping_add(size));
                for &(b, p, s, pr) in &got {
                    assert_eq!(p, pa + (b - base), "{label} cut {x:#x}: pa of {b:#x}");
                    assert_eq!(pr, prot, "{label} cut {x:#x}: prot of {b:#x}");
                    assert!(
                        !(b < x && x - b < s),
                        "{label}: {b:#x}+{s:#x} crosses {x:#x}"
                    );
                }
                let want_n = greedy_count(bitmap, size, base, x)
                    + greedy_count(bitmap, size, x, base.wrapping_add(size));
                assert_eq!(got.len(), want_n, "{label} cut {x:#x}: {got:x?}");
                // Nothing crosses it any more; an exact unmap of the page after it works.
                assert_eq!(pt.cut(x, Bbm::Refuse), Ok(None), "{label}");
                let mut g = Gather::new();
                let at = pt.translate(x).unwrap().size;
                assert_eq!(pt.unmap_pages(x, at, 1, &mut g), (at, Ok(())), "{label}");
                pt.sync(&mut g);
                assert_eq!(pt.translate(x), None);
                assert!(pt.translate(x - min).is_some());
            }
        }
    }
}

common::config_tests!(cut_at_every_boundary, cut_everywhere);

/// One invalidation seen: iova, size, granule, and the watched entry at that moment.
type Seen = (u64, u64, u64, Option<u64>);

/// A recording flush that reads, at each invalidation, the entry at `watch` (a physical
/// address in the arena).
struct Watch<'a> {
    arena: &'a ArenaMemory,
    watch: Mutex<Option<u64>>,
    seen: Mutex<Vec<Seen>>,
}

impl FlushOps for Watch<'_> {
    fn flush_all(&self) {}
    fn flush_walk(&self, iova: u64, size: u64, granule: u64) {
        let v = self
            .watch
            .lock()
            .unwrap()
            .and_then(|pa| self.arena.read_u64(pa));
        self.seen.lock().unwrap().push((iova, size, granule, v));
    }
    fn top_changed(&self, _root_pa: u64, _levels: u32) {}
}

/// The physical address of the entry at `level` that translates `iova` (walking the
/// arena from the root through the format's decode).
fn entry_pa<F: Format, X: FlushOps>(
    pt: &PageTable<F, &ArenaMemory, X>,
    arena: &ArenaMemory,
    iova: u64,
    level: u32,
) -> u64 {
    let info = pt.info();
    let f = pt.format();
    let mut table = info.root_pa;
    let mut l = info.levels - 1;
    loop {
        let shift = f.item_lg2(l);
        let bits = if l == info.levels - 1 {
            f.va_bits(l) - shift
        } else {
            f.table_lg2(l)
        };
        let idx = (iova >> shift) & ((1 << bits) - 1);
        let pa = table + (idx << F::ENTRY_LG2);
        if l == level {
            return pa;
        }
        match f.decode(l, arena.read_u64(pa).unwrap()) {
            iopt::Pte::Table { pa } => table = pa,
            other => panic!("no table at level {l}: {other:?}"),
        }
        l -= 1;
    }
}

#[test]
fn break_before_make_invalidates_before_it_installs() {
    use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    let arena = ArenaMemory::new(0x4000_0000, 4 << 20);
    let w = Watch {
        arena: &arena,
        watch: Mutex::new(None),
        seen: Mutex::new(Vec::new()),
    };
    // BBM level 0: no hitless cut.
    let f = ArmLpae::new(ArmLpaeConfig::default()).unwrap();
    let pt = PageTable::new(f, &arena, &w).unwrap();
    // SAFETY: a private table.
    unsafe {
        assert_eq!(
            pt.map_pages(0x4000_0000, 0x8000_0000, 0x20_0000, 1, RW),
            (0x20_0000, Ok(()))
        );
        let slot = entry_pa(&pt, &arena, 0x4000_0000, 1);
        let block = arena.read_u64(slot).unwrap();
        *w.watch.lock().unwrap() = Some(slot);
        assert_eq!(
            pt.cut(0x4000_3000, Bbm::Allow),
            Ok(Some(Cut {
                base: 0x4000_0000,
                size: 0x20_0000,
                bbm: true
            }))
        );
        // One invalidation of the block, with the entry already empty at that moment.
        assert_eq!(
            *w.seen.lock().unwrap(),
            [(0x4000_0000, 0x20_0000, 0x20_0000, Some(0))]
        );
        let now = arena.read_u64(slot).unwrap();
        assert!(
            matches!(f.decode(1, now), iopt::Pte::Table { .. }),
            "{now:#x} after {block:#x}"
        );
        // With BBM level 2 the same cut is hitless: no invalidation at all.
        let f2 = ArmLpae::new(ArmLpaeConfig {
            bbm_level: 2,
            ..ArmLpaeConfig::default()
        })
        .unwrap();
        let arena2 = ArenaMemory::new(0x4000_0000, 4 << 20);
        let w2 = Watch {
            arena: &arena2,
            watch: Mutex::new(None),
            seen: Mutex::new(Vec::new()),
        };
        let pt2 = PageTable::new(f2, &arena2, &w2).unwrap();
        let _ = pt2.map_pages(0x4000_0000, 0x8000_0000, 0x20_0000, 1, RW);
        assert_eq!(
            pt2.cut(0x4000_3000, Bbm::Refuse).map(|c| c.map(|c| c.bbm)),
            Ok(Some(false))
        );
        assert!(w2.seen.lock().unwrap().is_empty());
    }
}

fn cut_fails_for_memory<F: Format + Copy>(label: &str, f: F) {
    let probe = ArenaMemory::new(0x4000_0000, 4 << 20);
    let info = PageTable::new(f, &probe, NoFlush).unwrap().info();
    let sizes = page_sizes(&info);
    let min = sizes[0];
    // The largest page size of at most 1 GiB, cut one page in: the most tables.
    let Some(&size) = sizes.iter().rev().find(|&&s| s > min && s <= 1 << 30) else {
        return;
    };
    let arena = ArenaMemory::new(0x4000_0000, 8 << 20);
    let mem = FaultyMemory::new(&arena);
    let pt = PageTable::new(f, &mem, NoFlush).unwrap();
    let Some(base) = place(&pt, size) else {
        return;
    };
    let x = base + min;
    // SAFETY: a private table.
    unsafe {
        if pt.map_pages(base, size, size, 1, RW).1.is_err() {
            return;
        }
        let need = pt.cut_tables(&[x]).unwrap().total();
        let image = arena.image();
        let pages = pt.mem_stats().pages;
        for k in (0..need).filter(|&k| k < 6 || k + 3 >= need) {
            mem.reset();
            mem.fail_nth(mem.allocations() + k + 1);
            assert_eq!(
                pt.cut(x, Bbm::Allow),
                Err(Error::OutOfMemory),
                "{label}: alloc {k}"
            );
            assert!(
                ArenaMemory::same_image(&image, &arena.image()),
                "{label}: alloc {k}"
            );
            assert_eq!(pt.mem_stats().pages, pages, "{label}: alloc {k}");
        }
        mem.reset();
        // From a reservation: exactly the pages counted; an empty one changes nothing.
        let mut empty = pt.reserve_counts(&Default::default()).unwrap();
        if need > 0 {
            assert_eq!(
                pt.cut_reserved(x, Bbm::Allow, &mut empty),
                Err(Error::ReservationExhausted),
                "{label}"
            );
            assert!(ArenaMemory::same_image(&image, &arena.image()), "{label}");
        }
        pt.release(empty);
        let mut r = pt.reserve_cuts(&[x]).unwrap();
        assert_eq!(r.pages() as u64, need, "{label}");
        assert!(
            pt.cut_reserved(x, Bbm::Allow, &mut r).unwrap().is_some(),
            "{label}"
        );
        assert_eq!(r.pages(), 0, "{label}: the reservation held exactly enough");
        pt.release(r);
    }
}

#[test]
fn a_cut_that_fails_for_memory_changes_nothing() {
    for_each_config!(configs(), cut_fails_for_memory);
}

#[test]
fn bad_cut_points_are_refused() {
    use iopt::fmt::x86_64::{X86_64, X86_64Config};
    let pt = PageTable::new(
        X86_64::new(X86_64Config::default()).unwrap(),
        ArenaMemory::new(0x4000_0000, 1 << 20),
        NoFlush,
    )
    .unwrap();
    // SAFETY: a private table.
    unsafe {
        assert_eq!(
            pt.cut(0x1234, Bbm::Refuse),
            Err(Error::UnalignedIova {
                iova: 0x1234,
                pgsize: 0x1000
            })
        );
        assert!(matches!(
            pt.cut(0x8000_0000_0000, Bbm::Refuse),
            Err(Error::OutOfAperture { .. })
        ));
        // A hole: nothing to cut.
        assert_eq!(pt.cut(0x4000_0000, Bbm::Refuse), Ok(None));
    }
}

/// Dirty state across a cut, on every configuration with dirty tracking: a clean large
/// page gives clean entries, a dirty one (marked as the hardware marks it, on one
/// replica of a run) dirty entries that cover it whole.
fn cut_keeps_dirt<F: Format + Copy>(label: &str, f: F) {
    let probe = ArenaMemory::new(0x4000_0000, 4 << 20);
    let info = PageTable::new(f, &probe, NoFlush).unwrap().info();
    let sizes = page_sizes(&info);
    let min = sizes[0];
    for &size in sizes.iter().filter(|&&s| s > min && s <= 1 << 30) {
        for dirty in [false, true] {
            let arena = ArenaMemory::new(0x4000_0000, 8 << 20);
            let pt = PageTable::new(f, &arena, NoFlush).unwrap();
            let Some(base) = place(&pt, size) else {
                continue;
            };
            let x = base + (size / 2 + min).min(size - min);
            let mut g = Gather::new();
            // SAFETY: a private table; the test plays the IOMMU on the entry bytes.
            unsafe {
                if pt.map_pages(base, size, size, 1, RW).1.is_err() {
                    continue;
                }
                // Clean it all first (a fresh writable ARM leaf while tracking is on is
                // clean already; elsewhere clean too: this makes it certain).
                pt.read_and_clear_dirty(
                    base,
                    size,
                    iopt::DirtyFlags::empty(),
                    &mut g,
                    &mut |_, _| (),
                )
                .unwrap();
                pt.sync(&mut g);
                let level = pt.translate(base).unwrap().level;
                if dirty {
                    // The replica of the run that holds `x`.
                    let slot = entry_pa(&pt, &arena, x, level);
                    let old = arena.read_u64(slot).unwrap();
                    let new = f.leaf_mark_dirty(level, old);
                    assert_ne!(new, old, "{label}: marking a writable leaf changes it");
                    arena.compare_exchange_u64(slot, old, new).unwrap().unwrap();
                }
                assert!(pt.cut(x, Bbm::Allow).unwrap().is_some(), "{label}");
                let mut seen = 0u64;
                pt.read_and_clear_dirty(
                    base,
                    size,
                    iopt::DirtyFlags::NO_CLEAR,
                    &mut g,
                    &mut |_, s| seen += s,
                )
                .unwrap();
                let want = if dirty { size } else { 0 };
                assert_eq!(
                    seen, want,
                    "{label} {size:#x} dirty {dirty}: dirty bytes after the cut"
                );
                pt.sync(&mut g);
            }
        }
    }
}

#[test]
fn a_cut_carries_the_dirty_state() {
    let cfgs = common::dirty_configs();
    assert!(!cfgs.is_empty());
    for_each_config!(cfgs, cut_keeps_dirt);
}
