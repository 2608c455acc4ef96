//! Property tests of the live-table edits against an interval model, on every catalogue
//! configuration: random mixes of maps (the safe table picks page sizes), cuts, unmaps
//! with `UnmapMode::Cut`, exact unmaps (refused where they would split a mapping, then
//! retried after cutting), protects (likewise), simulated device writes, dirty reads
//! (with and without `NO_CLEAR`) and lookups. After every step each mapping's ends and a
//! sample of its bytes translate as the model says (address and write permission),
//! holes translate to nothing, and at the end everything unmaps back to the top table
//! alone.
//!
//! The model's dirty state is a set of smallest pages: a device write dirties the whole
//! leaf it goes through (one entry for the hardware), cuts keep the state of every piece,
//! protect keeps it (a dirty page made read-only stays dirty), unmaps drop it. A read
//! must report exactly the dirty pages inside its range (records merged where they
//! touch), and a clearing read cleans every leaf it meets, whole.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{cases_or_env, configs, page_sizes, proptest_run};
use iopt::mem::ArenaMemory;
use iopt::{Bbm, DirtyFlags, Error, Format, Gather, NoFlush, Prot, SimWrite, Table, UnmapMode};
use proptest::prelude::*;

const RW: Prot = Prot::READ.union(Prot::WRITE);

/// The model: first IOVA -> (length, physical address, writable); and the dirty
/// smallest pages.
#[derive(Debug, Default)]
struct Model {
    maps: BTreeMap<u64, (u64, u64, bool)>,
    dirty: BTreeSet<u64>,
    /// The smallest page size.
    page: u64,
}

impl Model {
    fn find(&self, iova: u64) -> Option<(u64, u64, bool)> {
        let (&s, &(len, pa, w)) = self.maps.range(..=iova).next_back()?;
        (iova - s < len).then_some((s, pa + (iova - s), w))
    }
    fn free(&self, iova: u64, len: u64) -> bool {
        self.find(iova).is_none() && self.maps.range(iova..iova + len).next().is_none()
    }
    /// Splits the extents at `at` (so that `at` starts one if it is mapped).
    fn split(&mut self, at: u64) {
        if let Some((s, pa, w)) = self.find(at)
            && s != at
        {
            let (len, _, _) = self.maps[&s];
            self.maps.insert(s, (at - s, pa - (at - s), w));
            self.maps.insert(at, (len - (at - s), pa, w));
        }
    }
    fn remove(&mut self, iova: u64, len: u64) -> u64 {
        self.split(iova);
        self.split(iova + len);
        let keys: Vec<u64> = self.maps.range(iova..iova + len).map(|(&k, _)| k).collect();
        self.set_dirty(iova, len, false);
        keys.iter().map(|k| self.maps.remove(k).unwrap().0).sum()
    }
    fn set_writable(&mut self, iova: u64, len: u64, w: bool) {
        self.split(iova);
        self.split(iova + len);
        for (_, v) in self.maps.range_mut(iova..iova + len) {
            v.2 = w;
        }
    }
    /// Marks (or cleans) the pages of `[iova, iova + len)`, of `min` bytes each.
    fn set_dirty(&mut self, iova: u64, len: u64, dirty: bool) {
        if dirty {
            let min = self.page;
            self.dirty.extend((0..len / min).map(|k| iova + k * min));
        } else {
            let gone: Vec<u64> = self.dirty.range(iova..iova + len).copied().collect();
            for p in gone {
                self.dirty.remove(&p);
            }
        }
    }
    /// The dirty pages of `[iova, iova + len)`, merged into extents.
    fn dirty_extents(&self, iova: u64, len: u64) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = Vec::new();
        for &p in self.dirty.range(iova..iova + len) {
            push_merged(&mut v, p, self.page);
        }
        v
    }
}

/// Appends `(base, size)` to `v`, joined to the last extent where they touch.
fn push_merged(v: &mut Vec<(u64, u64)>, base: u64, size: u64) {
    match v.last_mut() {
        Some(l) if l.0 + l.1 == base => l.1 += size,
        _ => v.push((base, size)),
    }
}

/// One abstract step: kind, two position selectors, a size selector.
type Op = (u8, u16, u16, u8);

fn run<F: Format + Copy>(label: &str, f: F, ops: &[Op]) {
    let arena = ArenaMemory::new(0x4000_0000, 24 << 20);
    let mut t = Table::new(f, &arena, NoFlush).unwrap();
    let info = t.info();
    let min = 1u64 << info.pgsize_bitmap.trailing_zeros();
    // A window of 256 smallest pages, at the first place where the largest page size
    // up to 2M (and a 16-page span of it) fits: mappings of every size up to that.
    let sizes: Vec<u64> = page_sizes(&info)
        .into_iter()
        .filter(|&s| s <= (2 << 20).max(min))
        .collect();
    let big = *sizes.last().unwrap();
    let wlen = (256 * min).max(8 * big);
    let ap = info.aperture;
    let Some(base) = ap.start.checked_add(wlen - 1).map(|x| x & !(wlen - 1)) else {
        return;
    };
    if base.checked_add(wlen - 1).is_none_or(|l| l > ap.last) {
        return;
    }
    let pages = wlen / min;
    let mut model = Model {
        page: min,
        ..Model::default()
    };
    let mut g = Gather::new();
    let check = |t: &Table<F, &ArenaMemory, NoFlush>, model: &Model, at: u64, what: &str| {
        let got = t
            .translate(at)
            .map(|x| (x.pa, x.prot.contains(Prot::WRITE)));
        let want = model.find(at).map(|(_, pa, w)| (pa, w));
        assert_eq!(got, want, "{label}: after {what}: translate({at:#x})");
    };
    for (i, &(kind, a, b, s)) in ops.iter().enumerate() {
        let size = sizes[s as usize % sizes.len()];
        let at = base + (u64::from(a) % pages) * min;
        let what = format!("step {i} {ops:x?}");
        match kind % 8 {
            // Map `n` pages of `size`, aligned, where the model has room.
            0 | 1 => {
                let iova = base + (u64::from(a) * size) % wlen;
                let len = size * (1 + u64::from(b) % 4);
                if iova + len <= base + wlen && model.free(iova, len) {
                    let pa = (1 << 32) + (u64::from(b) << 24) + (iova - base);
                    let w = a % 3 != 0;
                    let prot = if w { RW } else { Prot::READ };
                    match t.map(iova, pa, len, prot) {
                        Ok(()) => {
                            model.maps.insert(iova, (len, pa, w));
                        }
                        Err(Error::PaddrTooLarge { .. }) => {}
                        Err(e) => panic!("{label}: {what}: map: {e}"),
                    }
                }
            }
            2 => {
                t.cut(at, Bbm::Allow)
                    .unwrap_or_else(|e| panic!("{label}: {what}: cut: {e}"));
            }
            3 => {
                let len = (min * (1 + u64::from(b) % 64)).min(base + wlen - at);
                let gone = t
                    .unmap_with(at, len, UnmapMode::Cut(Bbm::Allow), &mut g)
                    .unwrap_or_else(|e| panic!("{label}: {what}: cut-unmap: {e}"));
                t.sync(&mut g);
                assert_eq!(gone.bytes(), model.remove(at, len), "{label}: {what}");
            }
            4 => {
                let len = (min * (1 + u64::from(b) % 64)).min(base + wlen - at);
                let r = t.unmap(at, len, &mut g);
                let gone = match r {
                    Err(Error::WouldSplit { base: mb, size: ms }) => {
                        let crosses = |x: u64| mb < x && x - mb < ms;
                        assert!(crosses(at) || crosses(at + len), "{label}: {what}");
                        t.cut(at, Bbm::Allow).unwrap();
                        t.cut(at + len, Bbm::Allow).unwrap();
                        t.unmap(at, len, &mut g).unwrap()
                    }
                    r => r.unwrap_or_else(|e| panic!("{label}: {what}: unmap: {e}")),
                };
                t.sync(&mut g);
                assert_eq!(gone.bytes(), model.remove(at, len), "{label}: {what}");
            }
            // A device writes through a few pages from `at`.
            6 => {
                // Half the time into a mapping (there the writes mark something).
                let n = model.maps.len();
                let from = match model.maps.iter().nth(usize::from(b) % n.max(1)) {
                    Some((&s, &(len, _, _))) if b % 2 == 0 => s + (u64::from(a) * min) % len,
                    _ => at,
                };
                for k in 0..=u64::from(b % 4) {
                    let p = from + k * min;
                    if p >= base + wlen {
                        break;
                    }
                    let got = t.simulate_write(p);
                    // A dirty run may still have clean replicas: the write marks the one
                    // it goes through.
                    let want: &[SimWrite] = match model.find(p) {
                        None | Some((_, _, false)) => &[SimWrite::Fault],
                        Some(_) if !t.dirty_tracking() => &[SimWrite::Unchanged],
                        Some(_) if model.dirty.contains(&p) => {
                            &[SimWrite::Unchanged, SimWrite::Marked]
                        }
                        Some(_) => &[SimWrite::Marked],
                    };
                    assert!(
                        want.contains(&got),
                        "{label}: {what}: simulate_write({p:#x}) gave {got:?}, expected one of {want:?}"
                    );
                    if got == SimWrite::Marked {
                        let leaf = t.translate(p).unwrap();
                        model.set_dirty(leaf.iova_base, leaf.size, true);
                    }
                }
            }
            // A dirty read of `[at, at + len)`, cleaning or not.
            7 => {
                let len = (min * (1 + u64::from(b) % 64)).min(base + wlen - at);
                let flags = if b % 3 == 0 {
                    DirtyFlags::NO_CLEAR
                } else {
                    DirtyFlags::empty()
                };
                let mut got = Vec::new();
                let r = t.read_and_clear_dirty(at, len, flags, &mut g, |b, s| {
                    push_merged(&mut got, b, s)
                });
                t.sync(&mut g);
                if !t.dirty_tracking() {
                    assert_eq!(r, Err(Error::NoDirtyTracking), "{label}: {what}");
                } else {
                    r.unwrap_or_else(|e| panic!("{label}: {what}: dirty read: {e}"));
                    assert_eq!(
                        got,
                        model.dirty_extents(at, len),
                        "{label}: {what}: read_and_clear_dirty({at:#x}, {len:#x}, {flags:?})"
                    );
                    if !flags.contains(DirtyFlags::NO_CLEAR) {
                        // Every leaf met is cleaned whole: the range, and the leaves
                        // that cross its ends.
                        model.set_dirty(at, len, false);
                        for end in [at, at + len - min] {
                            if let Some(leaf) = t.translate(end) {
                                model.set_dirty(leaf.iova_base, leaf.size, false);
                            }
                        }
                    }
                }
            }
            _ => {
                let len = (min * (1 + u64::from(b) % 64)).min(base + wlen - at);
                let w = b % 2 == 0;
                let prot = if w { RW } else { Prot::READ };
                let r = match t.protect(at, len, prot, Bbm::Refuse, &mut g) {
                    Err(Error::WouldSplit { .. }) => {
                        t.cut(at, Bbm::Allow).unwrap();
                        t.cut(at + len, Bbm::Allow).unwrap();
                        t.protect(at, len, prot, Bbm::Refuse, &mut g)
                    }
                    r => r,
                };
                let p = r.unwrap_or_else(|e| panic!("{label}: {what}: protect: {e}"));
                t.sync(&mut g);
                assert_eq!(p.mapped + p.holes, len, "{label}: {what}");
                model.set_writable(at, len, w);
            }
        }
        let extents: Vec<(u64, u64)> = model.maps.iter().map(|(&k, v)| (k, v.0)).collect();
        for (s, len) in extents {
            check(&t, &model, s, &what);
            check(&t, &model, s + len - min, &what);
        }
        for k in 0..8 {
            check(
                &t,
                &model,
                base + ((u64::from(a) * 7 + k * 37) % pages) * min,
                &what,
            );
        }
    }
    let _ = t
        .unmap_with(base, wlen, UnmapMode::Cut(Bbm::Allow), &mut g)
        .unwrap();
    t.sync(&mut g);
    assert_eq!(t.mem_stats().pages, 1, "{label}: tables left behind");
}

fn edits<F: Format + Copy>(label: &str, f: F) {
    let op = (any::<u8>(), any::<u16>(), any::<u16>(), any::<u8>());
    proptest_run(
        cases_or_env(6),
        proptest::collection::vec(op, 1..60),
        |ops| run(label, f, &ops),
    );
}

common::config_tests!(map_cut_protect_unmap_against_the_model, configs(), edits);

/// A fixed sequence: a page mapped writable, written by the device, made read-only, cut
/// and read: the write is reported (it must survive the write-protect).
fn write_then_protect<F: Format + Copy>(label: &str, f: F) {
    // (kind, a, b, size): map one page at base + min; write it; protect two pages
    // read-only; cut at base + min; read two pages, cleaning; read again.
    let ops: [Op; 6] = [
        (0, 1, 0, 0),
        (6, 1, 0, 0),
        (5, 1, 1, 0),
        (2, 1, 0, 0),
        (7, 1, 1, 0),
        (7, 1, 1, 0),
    ];
    run(label, f, &ops);
}

common::config_tests!(
    a_dirty_page_made_read_only_stays_dirty,
    configs(),
    write_then_protect
);
