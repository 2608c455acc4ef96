//! Unit tests of the workloads: exact table-page counts, operation counts, the op lists.

use crate::iopt_runs::iopt_block_pgsize;
use crate::ops::{Op, pgsize_for, w5_ops};
use crate::*;

/// The default subject called `name`.
fn iopt(name: &str) -> Subject {
    Subject::Iopt(IoptFormat::from_name(name).unwrap_or_else(|| panic!("no subject {name}")))
}

/// Exact table-page counts of W2 (and the W2 table under W4): the minimum for each
/// layout.
#[test]
fn w2_uses_the_fewest_tables() {
    // 4 MiB at IOVA 0, x86-64 4-level: 2 leaf tables + PD + PDPT + root.
    let p = Params::new(4 * MIB);
    for s in [iopt("x86-64"), Subject::X86_64Crate] {
        let r = run(s, Workload::W2, &p);
        assert_eq!((r.table_pages, r.ops), (5, 1024), "{}", s.name());
    }
    // 64 MiB, ARM64 4K 48-bit: 32 leaf tables + 3 above, with or without hints.
    let p = Params::new(64 * MIB);
    for s in [
        iopt("arm64-s1"),
        iopt("arm64-s1-contig"),
        Subject::Aarch64Paging,
    ] {
        assert_eq!(run(s, Workload::W2, &p).table_pages, 35, "{}", s.name());
    }
    // AMD v1 (3 levels: 32 leaf tables + 1 + root); armv7s (64 1 KiB tables + root).
    assert_eq!(run(iopt("amdv1"), Workload::W2, &p).table_pages, 34);
    assert_eq!(run(iopt("armv7s"), Workload::W2, &p).table_pages, 65);
    // The baseline writes the same 16384 entries into 32 pages.
    let fill = run(Subject::Fill, Workload::W2, &p);
    assert_eq!((fill.ops, fill.table_pages), (16384, 32));
}

/// The fewest x86-64 4-level table pages that can hold leaves of `2^leaf_lg2` bytes
/// (4 KiB or 2 MiB) at every IOVA in `ranges`: the root, plus one table per distinct
/// span at each level between the root and the leaves.
fn x86_min_tables(ranges: &[(u64, u64)], leaf_lg2: u32) -> u64 {
    let mut spans = std::collections::BTreeSet::new();
    for &(iova, len) in ranges {
        // A table at level L (0 = 4 KiB leaves) spans 2^(21 + 9L) bytes; tables are
        // needed from the leaf level up to level 2 (the root is level 3).
        let leaf_level = (leaf_lg2 - 12) / 9;
        for level in leaf_level..3 {
            let span_lg2 = 21 + 9 * level;
            for t in iova >> span_lg2..=(iova + len - 1) >> span_lg2 {
                spans.insert((level, t));
            }
        }
    }
    1 + spans.len() as u64
}

/// Every workload's peak table pages against the minimum for what it maps (x86-64):
/// W1, W1u, W2, W2u and W4 the tables for 4 KiB leaves over the whole size; W3 the
/// tables for 2 MiB blocks; W6 both threads' ranges. W5 recycles IOVAs and keeps
/// emptied tables (as Linux does), so its peak is checked against the tables of its
/// whole IOVA footprint at 4 KiB granularity.
#[test]
fn every_workload_uses_the_fewest_tables() {
    let p = Params::new(8 * MIB);
    let x86 = iopt("x86-64");
    let all = [(IOVA_BASE, p.pages() * PAGE)];
    let min4k = x86_min_tables(&all, 12);
    for w in [
        Workload::W1,
        Workload::W1u,
        Workload::W2,
        Workload::W2u,
        Workload::W2e,
        Workload::W4,
    ] {
        assert_eq!(run(x86, w, &p).table_pages, min4k, "{}", w.name());
    }
    let blocks = [(IOVA_BASE, p.blocks() * BLOCK)];
    assert_eq!(
        run(x86, Workload::W3, &p).table_pages,
        x86_min_tables(&blocks, 21)
    );
    // W6 maps both threads' ranges. One thread (W6-1) builds exactly the minimum. Two
    // threads start together (a barrier) and both find the root empty: the engine
    // builds a missing chain of tables privately (here PDPT, PD and the leaf table) and
    // links it with one compare-and-swap, and the loser frees its chain and redoes its
    // part through the winner's tables. For a moment both chains exist, so the *peak*
    // may count the loser's copies of the shared tables: at most the levels between the
    // root and the leaves (PDPT and PD: 2 on x86-64 4-level) for the one losing thread.
    // Its own leaf table is no extra (it needs one anyway), and the ranges share no leaf
    // table (they split at a multiple of 2 MiB). What is left at the end is the minimum.
    let w6 = x86_min_tables(&[(IOVA_BASE, p.w6_pages() * PAGE)], 12);
    let r = run(x86, Workload::W6Single, &p);
    assert_eq!((r.table_pages, r.table_pages_end), (w6, w6), "W6-1");
    let shared_below_root = 2;
    for _ in 0..20 {
        let r = run(x86, Workload::W6, &p);
        assert_eq!(r.table_pages_end, w6, "W6 end");
        assert!(
            (w6..=w6 + shared_below_root).contains(&r.table_pages),
            "W6 peak {} tables, the minimum being {w6}",
            r.table_pages
        );
    }
    let footprint: Vec<(u64, u64)> = w5_ops(&p)
        .iter()
        .filter_map(|o| match *o {
            Op::Map { iova, len } => Some((iova, len)),
            Op::Unmap { .. } => None,
        })
        .collect();
    let r = run(x86, Workload::W5, &p);
    assert!(
        r.table_pages <= x86_min_tables(&footprint, 12),
        "W5 peak {} tables",
        r.table_pages
    );
}

#[test]
fn unmaps_keep_or_free_tables_as_documented() {
    let p = Params::new(4 * MIB);
    let x86 = iopt("x86-64");
    // Page by page, the emptied leaf tables stay linked; one call covers the spans
    // of both leaf tables (2 MiB each), which are detached and freed by the sync.
    assert_eq!(run(x86, Workload::W1u, &p).table_pages_end, 5);
    assert_eq!(run(x86, Workload::W2u, &p).table_pages_end, 3);
    // Blocks: 2 blocks of 2 MiB in one PD, no leaf tables.
    let r = run(x86, Workload::W3, &p);
    assert_eq!((r.ops, r.table_pages), (2, 3));
    let r = run(Subject::X86_64Crate, Workload::W3, &p);
    assert_eq!((r.ops, r.table_pages), (2, 3));
}

#[test]
fn every_subject_runs_every_workload_it_claims() {
    let p = Params::new(MIB);
    for w in Workload::ALL {
        for s in w.subjects() {
            let r = run(s, w, &p);
            assert!(r.ops > 0, "{} {}", s.name(), w.name());
        }
    }
}

#[test]
fn w5_is_balanced_and_recycles() {
    let p = Params::new(4 * MIB);
    let ops = w5_ops(&p);
    assert_eq!(ops, w5_ops(&p), "seeded");
    let maps = ops.iter().filter(|o| matches!(o, Op::Map { .. })).count();
    assert_eq!(2 * maps, ops.len(), "every map is unmapped");
    let stream_maps: Vec<u64> = ops
        .iter()
        .filter_map(|o| match *o {
            Op::Map { iova, .. } if iova < 0x1000_0000 => Some(iova),
            _ => None,
        })
        .collect();
    assert!(stream_maps.len() > 64, "more streaming maps than slots");
    let r = run(iopt("x86-64"), Workload::W5, &p);
    assert_eq!(r.ops, ops.len() as u64);
}

#[test]
fn page_size_choice() {
    // 4K | 64K | 2M | 32M
    let bitmap = 0x0220_1000 | 0x1_0000;
    assert_eq!(
        pgsize_for(bitmap, 0x1_0000, 0x4001_0000, 0x1_0000),
        0x1_0000
    );
    assert_eq!(pgsize_for(bitmap, 0x1_0000, 0x4001_0000, 0x5000), 0x1000);
    assert_eq!(pgsize_for(bitmap, 0x4000_0000, 0x8000_0000, BLOCK), BLOCK);
    assert_eq!(iopt_block_pgsize(bitmap), BLOCK);
    // armv7s: 4K | 64K | 1M | 16M
    assert_eq!(iopt_block_pgsize(0x0110_1000 | 0x1_0000), MIB);
}

#[test]
fn scaling() {
    let p = Params::new(GIB);
    assert_eq!(
        (p.pages(), p.blocks(), p.lookups(), p.w6_pages()),
        (262_144, 512, 1_000_000, 65_536)
    );
    let p = Params::new(4 * MIB);
    assert_eq!((p.blocks(), p.lookups(), p.w6_pages()), (2, 10_000, 1024));
}

/// W2e maps into the leaf tables W1u left: no table is allocated by the timed map, and
/// every subject ends with them all.
#[test]
fn w2e_maps_into_the_emptied_tables() {
    let p = Params::new(4 * MIB);
    for s in [
        iopt("x86-64"),
        iopt("arm64-s1"),
        iopt("arm64-s1-contig"),
        Subject::X86_64Crate,
        Subject::Aarch64Paging,
    ] {
        let r = run(s, Workload::W2e, &p);
        assert_eq!(
            (r.ops, r.table_pages, r.table_pages_end),
            (1024, 5, 5),
            "{}",
            s.name()
        );
    }
}

/// W7's slots span 64 MiB from IOVA 0 (32 leaf tables of 2 MiB); the tables stay between
/// buffers, so the peak is the end count.
#[test]
fn w7_keeps_its_leaf_tables() {
    let p = Params::new(4 * MIB);
    assert_eq!((p.w7_rounds(), p.w7_pages()), (1, 64 * 256));
    for w in [Workload::W7, Workload::W7u] {
        for s in [
            iopt("x86-64"),
            iopt("arm64-s1"),
            iopt("arm64-s1-contig"),
            Subject::X86_64Crate,
            Subject::Aarch64Paging,
        ] {
            let r = run(s, w, &p);
            assert_eq!(
                (r.ops, r.table_pages, r.table_pages_end),
                (16384, 35, 35),
                "{} {}",
                w.name(),
                s.name()
            );
        }
        // AMD v1 with 3 levels: 32 leaf tables + 1 + the root. armv7s does not take part:
        // its leaf tables span 1 MiB, so every buffer's unmap frees its table.
        let amd = run(iopt("amdv1"), w, &p);
        assert_eq!((amd.table_pages, amd.table_pages_end), (34, 34));
        assert!(!w.subjects().contains(&iopt("armv7s")));
        // The baseline writes the entries of the 64 slots into 32 pages.
        let fill = run(Subject::Fill, w, &p);
        assert_eq!((fill.ops, fill.table_pages), (16384, 32));
    }
    assert_eq!(Params::new(GIB).w7_pages(), GIB / PAGE);
}

#[test]
fn names_round_trip() {
    for w in Workload::ALL {
        assert_eq!(Workload::from_name(w.name()), Some(w));
        assert!(Workload::groups().contains(&w.group()));
    }
    for s in Subject::all() {
        assert_eq!(Subject::from_name(&s.name()), Some(s));
    }
    assert_eq!(
        Subject::from_name("x86_64-crate"),
        Some(Subject::X86_64Crate)
    );
    let names: Vec<String> = IoptFormat::defaults()
        .iter()
        .map(|f| f.name().into_owned())
        .collect();
    assert_eq!(
        names,
        ["x86-64", "arm64-s1", "arm64-s1-contig", "amdv1", "armv7s"]
    );
    for &f in IoptFormat::defaults() {
        assert_eq!(IoptFormat::from_name(&f.name()), Some(f));
        assert_eq!(IoptFormat::parse(&f.name()), Ok(f));
        // A default's spec text is that default (same name, same peer).
        assert_eq!(IoptFormat::from_spec(f.spec()), Ok(f));
    }
    assert_eq!(
        Workload::groups(),
        ["w1", "w2", "w2e", "w3", "w4", "w5", "w6", "w7"]
    );
}

/// The default subjects' properties, all read from their tables.
#[test]
fn defaults_are_derived_from_their_tables() {
    let f = |n: &str| IoptFormat::from_name(n).expect("a default");
    let pg: Vec<u64> = IoptFormat::defaults()
        .iter()
        .map(IoptFormat::bulk_pgsize)
        .collect();
    assert_eq!(pg, [PAGE, PAGE, 64 * KIB, PAGE, PAGE]);
    let spans: Vec<u64> = IoptFormat::defaults()
        .iter()
        .map(|f| f.props().leaf_table_span)
        .collect();
    assert_eq!(spans, [2 * MIB, 2 * MIB, 2 * MIB, 2 * MIB, MIB]);
    assert_eq!(f("armv7s").props().table_pa_bits, 32);
    assert_eq!(f("armv7s").props().block_pgsize(), Some(MIB));
    assert_eq!(f("x86-64").props().block_pgsize(), Some(BLOCK));
    assert_eq!(f("x86-64").peer(), Some(Subject::X86_64Crate));
    assert_eq!(f("arm64-s1-contig").peer(), Some(Subject::Aarch64Paging));
    assert_eq!(f("amdv1").peer(), None);
    assert!(f("x86-64").describe().contains("4 levels"));
}

#[test]
fn armv7s_limit() {
    let v7s = IoptFormat::from_name("armv7s").expect("armv7s");
    assert!(v7s.fits(3 * GIB) && !v7s.fits(4 * GIB));
    let (max, why) = v7s.max_size().expect("a limit");
    assert_eq!(max, 3 * GIB);
    assert!(why.contains("32-bit"), "{why}");
    assert!(
        IoptFormat::from_name("x86-64")
            .expect("x86-64")
            .fits(64 * GIB)
    );
}

/// Any spec the catalogue parses is a subject, its abilities read from its table.
#[test]
fn spec_texts_are_subjects() {
    let riscv = IoptFormat::parse("riscv:levels=3").expect("Sv39");
    assert_eq!(riscv.name(), "riscv:levels=3");
    assert_eq!(riscv.peer(), None);
    let p = Params::new(MIB);
    for w in Workload::ALL {
        let s = Subject::Iopt(riscv);
        assert!(s.can_run(w, p.size), "{}", w.name());
        assert!(run(s, w, &p).ops > 0, "{}", w.name());
    }
    // A spec equal to a default's is that default.
    assert_eq!(
        IoptFormat::parse("arm64-s1:no-contig"),
        Ok(IoptFormat::from_name("arm64-s1").expect("arm64-s1"))
    );
    // 16K pages: nothing that maps 4K pages, and no 2 MiB block above the leaf tables.
    let g16 = IoptFormat::parse("arm64-s1:granule=16k").expect("16K");
    for w in Workload::ALL {
        let why = g16.why_not(w, MIB).expect("does not run");
        assert!(why.contains("16K") || why.contains("32M"), "{why}");
    }
    // A 32 MiB aperture: W5 and W7 reach beyond it; narrow table pointers use the arena.
    let narrow = IoptFormat::parse("arm32-s2:ias=25,oas=32").expect("25-bit");
    assert_eq!(narrow.max_size().map(|m| m.0), Some(32 * MIB));
    assert!(narrow.why_not(Workload::W5, MIB).is_some());
    assert!(narrow.why_not(Workload::W2, MIB).is_none());
    assert!(run(Subject::Iopt(narrow), Workload::W2, &p).ops > 0);
    // The catalogue's errors name the option.
    let e = IoptFormat::parse("riscv:levels=7").expect_err("no Sv66");
    assert!(e.to_string().contains("levels"), "{e}");
}

/// Every demonstration entry of the catalogue runs what it can at the smallest size,
/// and says why it skips the rest.
#[test]
fn every_catalogue_demo_entry_runs() {
    let p = Params::new(64 * KIB);
    let mut ran = 0;
    for f in IoptFormat::catalogue() {
        for w in Workload::ALL {
            match f.why_not(w, p.size) {
                None => {
                    assert!(
                        run(Subject::Iopt(f), w, &p).ops > 0,
                        "{} {}",
                        f.name(),
                        w.name()
                    );
                    ran += 1;
                }
                Some(why) => assert!(why.contains(&*f.name()), "{why}"),
            }
        }
    }
    assert!(ran > 100, "{ran} runs");
}
