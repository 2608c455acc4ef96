//! Protect (`PageTable::protect`) on every catalogue configuration: each page size
//! (single entries, blocks, runs) with a hole between two mappings: the permissions
//! after are those a fresh map with the new permissions gives, addresses unchanged,
//! holes counted, the gather's range exact, a repeat changes nothing; ranges that would
//! split a mapping, memory-type changes that need break-before-make and bad arguments
//! are refused with the byte image unchanged. Also the cut-unmap (`UnmapMode::Cut`)
//! of the safe table and of a guard.

mod common;

use common::{configs, for_each_config, page_sizes};
use iopt::mem::ArenaMemory;
use iopt::{
    Bbm, Error, Format, Gather, NoFlush, PageTable, Prot, Protected, SharedTable, Table, UnmapMode,
};

const RW: Prot = Prot::READ.union(Prot::WRITE);

/// The smallest-aligned base for three pages of `size` inside the aperture.
fn base_for(info: &iopt::Info, size: u64) -> Option<u64> {
    let ap = info.aperture;
    let base = ap.start.checked_add(size - 1)? & !(size - 1);
    (base.checked_add(3 * size - 1)? <= ap.last).then_some(base)
}

fn protect_each_size<F: Format + Copy>(label: &str, f: F) {
    let probe = ArenaMemory::new(0x4000_0000, 4 << 20);
    let info = PageTable::new(f, &probe, NoFlush).unwrap().info();
    let min = 1u64 << info.pgsize_bitmap.trailing_zeros();
    for size in page_sizes(&info).into_iter().filter(|&s| s <= 1 << 30) {
        let Some(base) = base_for(&info, size) else {
            continue;
        };
        let arena = ArenaMemory::new(0x4000_0000, 4 << 20);
        let pt = PageTable::new(f, &arena, NoFlush).unwrap();
        let fresh_arena = ArenaMemory::new(0x4000_0000, 4 << 20);
        let fresh = PageTable::new(f, &fresh_arena, NoFlush).unwrap();
        let pa = size;
        // SAFETY: private tables.
        unsafe {
            if pt.map_pages(base, pa, size, 1, RW).1.is_err() {
                continue; // an output address the configuration cannot hold
            }
            if pt
                .map_pages(base + 2 * size, pa + 2 * size, size, 1, RW)
                .1
                .is_err()
            {
                continue;
            }
            assert_eq!(fresh.map_pages(base, pa, size, 1, Prot::READ).1, Ok(()));
            let want = fresh.translate(base).unwrap().prot;
            let before = pt.translate(base).unwrap().prot;
            let mut g = Gather::new();
            let done = pt
                .protect(base, 3 * size, Prot::READ, Bbm::Refuse, &mut g)
                .unwrap_or_else(|e| panic!("{label} {size:#x}: {e}"));
            let changed = if want == before { 0 } else { 2 * size };
            assert_eq!(
                done,
                Protected {
                    mapped: 2 * size,
                    changed,
                    holes: size
                },
                "{label} {size:#x}"
            );
            for at in [
                base,
                base + size - min,
                base + 2 * size,
                base + 3 * size - min,
            ] {
                let t = pt.translate(at).unwrap();
                assert_eq!(t.prot, want, "{label} {size:#x} at {at:#x}");
                assert_eq!(t.pa, pa + (at - base), "{label} {size:#x} at {at:#x}");
                assert_eq!(t.size, size, "{label}: the mapping stays whole");
            }
            assert_eq!(pt.translate(base + size), None);
            let range = (changed != 0).then_some((base, base + 3 * size - 1));
            assert_eq!(g.range(), range, "{label} {size:#x}: gather");
            pt.sync(&mut g);
            // Again: nothing to change, nothing gathered.
            let again = pt
                .protect(base, 3 * size, Prot::READ, Bbm::Refuse, &mut g)
                .unwrap();
            assert_eq!(again.changed, 0, "{label}");
            assert_eq!(g.range(), None, "{label}");
            // Refusals, each with the bytes unchanged.
            let image = arena.image();
            if size > min {
                assert_eq!(
                    pt.protect(base + min, min, RW, Bbm::Refuse, &mut g),
                    Err(Error::WouldSplit { base, size }),
                    "{label}"
                );
            }
            let device = Prot::READ | Prot::MMIO;
            let r = pt.protect(base, size, device, Bbm::Refuse, &mut g);
            if f.prot_needs_bbm(want, device) {
                assert_eq!(
                    r,
                    Err(Error::NeedsBreakBeforeMake { base, size }),
                    "{label}"
                );
                assert!(ArenaMemory::same_image(&image, &arena.image()), "{label}");
                let done = pt.protect(base, size, device, Bbm::Allow, &mut g).unwrap();
                assert_eq!(done.changed, size, "{label}");
                assert_eq!(
                    g.range(),
                    None,
                    "{label}: flushed before the make, not gathered"
                );
                let t = pt.translate(base).unwrap();
                assert_eq!((t.pa, t.size), (pa, size), "{label}");
            } else {
                assert!(r.is_ok(), "{label}: {r:?}");
                pt.sync(&mut g);
            }
            let image = arena.image();
            for (bad, e) in [
                (Prot::empty(), Error::NoAccess),
                (Prot::from_bits_retain(0x101), Error::UndefinedProt(0x100)),
            ] {
                assert_eq!(pt.protect(base, size, bad, Bbm::Refuse, &mut g), Err(e));
            }
            assert!(matches!(
                pt.protect(base + 1, min, RW, Bbm::Refuse, &mut g),
                Err(Error::UnalignedIova { .. })
            ));
            assert!(ArenaMemory::same_image(&image, &arena.image()), "{label}");
            pt.sync(&mut g);
        }
    }
}

common::config_tests!(protect_pages_blocks_and_runs, protect_each_size);

/// `UnmapMode::Cut` on the safe table: a page out of the middle of the largest page of
/// at most 1 GiB; the rest translates as before.
fn cut_unmap<F: Format + Copy>(label: &str, f: F) {
    let arena = ArenaMemory::new(0x4000_0000, 8 << 20);
    let mut t = Table::new(f, &arena, NoFlush).unwrap();
    let info = t.info();
    let sizes = page_sizes(&info);
    let min = sizes[0];
    let Some(&size) = sizes.iter().rev().find(|&&s| s > min && s <= 1 << 30) else {
        return;
    };
    let Some(base) = base_for(&info, size) else {
        return;
    };
    if t.map(base, size, size, RW).is_err() {
        return;
    }
    let hole = base + size / 2 + min;
    let mut g = Gather::new();
    let image = arena.image();
    assert_eq!(
        t.unmap_with(hole, min, UnmapMode::Exact, &mut g),
        Err(Error::WouldSplit { base, size }),
        "{label}"
    );
    if !f.cut_hitless() {
        assert_eq!(
            t.unmap_with(hole, min, UnmapMode::Cut(Bbm::Refuse), &mut g),
            Err(Error::NeedsBreakBeforeMake { base, size }),
            "{label}"
        );
    }
    assert!(ArenaMemory::same_image(&image, &arena.image()), "{label}");
    let gone = t
        .unmap_with(hole, min, UnmapMode::Cut(Bbm::Allow), &mut g)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    t.sync(&mut g);
    assert_eq!(gone.bytes(), min, "{label}");
    assert_eq!(t.translate(hole), None, "{label}");
    for at in [base, hole - min, hole + min, base + size - min] {
        assert_eq!(
            t.translate(at).map(|x| x.pa),
            Some(size + (at - base)),
            "{label} {at:#x}"
        );
    }
    // And the rest, then nothing is left but the top table.
    let _ = t.unmap(base, size, &mut g).unwrap();
    t.sync(&mut g);
    assert_eq!(t.mem_stats().pages, 1, "{label}: no table left behind");
}

#[test]
fn cut_unmap_on_the_safe_table() {
    for_each_config!(configs(), cut_unmap);
}

#[test]
fn cut_unmap_and_protect_in_a_guard() {
    use iopt::fmt::x86_64::{X86_64, X86_64Config};
    let t = SharedTable::new(
        X86_64::new(X86_64Config::default()).unwrap(),
        ArenaMemory::new(0x4000_0000, 1 << 20),
        NoFlush,
    )
    .unwrap();
    let mut gather = Gather::new();
    {
        let mut g = t.lock(0, 0x40_0000).unwrap();
        g.map(0, 0x8000_0000, 0x40_0000, RW).unwrap(); // two 2 MiB pages
    }
    // A guard over the first half of the second page cannot cut it.
    let mut g = t.lock(0x20_0000, 0x10_0000).unwrap();
    assert_eq!(
        g.unmap_with(0x20_1000, 0x1000, UnmapMode::Cut(Bbm::Allow), &mut gather),
        Err(Error::OutsideGuard {
            iova: 0x20_0000,
            last: 0x3f_ffff
        })
    );
    assert_eq!(
        g.protect(0x20_0000, 0x1000, Prot::READ, Bbm::Refuse, &mut gather),
        Err(Error::WouldSplit {
            base: 0x20_0000,
            size: 0x20_0000
        })
    );
    drop(g);
    let mut g = t.lock(0, 0x20_0000).unwrap();
    assert_eq!(
        g.unmap_with(0x1000, 0x1000, UnmapMode::Cut(Bbm::Refuse), &mut gather),
        Ok(0x1000)
    );
    let p = g
        .protect(0x2000, 0x2000, Prot::READ, Bbm::Refuse, &mut gather)
        .unwrap();
    assert_eq!((p.mapped, p.changed, p.holes), (0x2000, 0x2000, 0));
    assert_eq!(g.translate(0x1000), Ok(None));
    let x = g.translate(0x3000).unwrap().unwrap();
    assert!(!x.prot.contains(Prot::WRITE));
    assert!(
        g.translate(0x4000)
            .unwrap()
            .unwrap()
            .prot
            .contains(Prot::WRITE)
    );
    drop(g);
    t.sync(&mut gather);
}
