//! The workloads on the `aarch64-paging` crate: `RootTable<El1And0, _>` with a level-0
//! root (48-bit, like iopt's `arm64-s1`); unmap is `map_range` with empty flags; lookups
//! go through `walk_range`.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Duration;

use aarch64_paging::descriptor::{El1Attributes as A, PhysicalAddress};
use aarch64_paging::paging::{
    Constraints, El1And0, MemoryRegion, PageTable as ArmPage, RootTable, Translation, VaRange,
};

use crate::ops::{Op, w4_expected, w4_iovas, w5_ops, w7_slots};
use crate::{BLOCK, IOVA_BASE, PAGE, Params, Sample, W7_BUFFER, Workload, pa_of, timed};

/// Table pages from the heap (PA = VA), counted.
#[derive(Debug, Default)]
pub struct Counted {
    live: u64,
    peak: u64,
}

impl Translation<A> for Counted {
    fn allocate_table(&mut self) -> (NonNull<ArmPage<A>>, PhysicalAddress) {
        let layout = Layout::new::<ArmPage<A>>();
        // SAFETY: the layout has a non-zero size (4 KiB, aligned to 4 KiB).
        let ptr = unsafe { alloc_zeroed(layout) }.cast::<ArmPage<A>>();
        let ptr = NonNull::new(ptr).expect("out of memory");
        self.live += 1;
        self.peak = self.peak.max(self.live);
        (ptr, PhysicalAddress(ptr.as_ptr() as usize))
    }

    unsafe fn deallocate_table(&mut self, table: NonNull<ArmPage<A>>) {
        self.live -= 1;
        // SAFETY: the library frees only tables it got from `allocate_table`, with
        // the same layout, once.
        unsafe { dealloc(table.as_ptr().cast(), Layout::new::<ArmPage<A>>()) }
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<ArmPage<A>> {
        NonNull::new(pa.0 as *mut ArmPage<A>).expect("a table address")
    }
}

type Table = RootTable<El1And0, Counted>;

/// A 48-bit stage 1 table (root at level 0), like iopt's `arm64-s1`.
fn new_table() -> Table {
    RootTable::with_va_range(Counted::default(), 0, El1And0, VaRange::Lower)
}

/// Normal write-back memory (MAIR index 1), inner shareable, accessed, not
/// executable: what iopt writes for `PROT`.
fn flags() -> A {
    A::VALID | A::ACCESSED | A::ATTRIBUTE_INDEX_1 | A::INNER_SHAREABLE | A::UXN | A::PXN
}

/// 4K pages only.
const PAGES: Constraints = Constraints::NO_BLOCK_MAPPINGS.union(Constraints::NO_CONTIGUOUS_HINT);
/// Blocks where aligned.
const BLOCKS: Constraints = Constraints::NO_CONTIGUOUS_HINT;

fn region(iova: u64, len: u64) -> MemoryRegion {
    MemoryRegion::new(iova as usize, (iova + len) as usize)
}

#[inline(always)]
fn map(t: &mut Table, iova: u64, len: u64, flags: A, c: Constraints) {
    t.map_range(
        &region(iova, len),
        PhysicalAddress(pa_of(iova) as usize),
        flags,
        c,
    )
    .unwrap_or_else(|e| panic!("aarch64-paging map {iova:#x}+{len:#x}: {e}"));
}

/// Unmapping is mapping with flags that lack VALID.
#[inline(always)]
fn unmap(t: &mut Table, iova: u64, len: u64, c: Constraints) {
    t.map_range(&region(iova, len), PhysicalAddress(0), A::empty(), c)
        .unwrap_or_else(|e| panic!("aarch64-paging unmap {iova:#x}+{len:#x}: {e}"));
}

fn sample(t: &Table, elapsed: Duration, ops: u64) -> Sample {
    Sample {
        elapsed,
        ops,
        table_pages: t.translation().peak,
        table_pages_end: t.translation().live,
    }
}

/// The physical address `iova` translates to, through `walk_range`.
#[inline(always)]
fn translate(t: &Table, iova: u64) -> Option<u64> {
    let mut out = None;
    let va = iova as usize;
    t.walk_range(&MemoryRegion::new(va, va + 1), &mut |_, d, level| {
        if d.is_valid() {
            let size = 1usize << (12 + 9 * (3 - level));
            out = Some((d.output_address().0 + (va & (size - 1))) as u64);
        }
        Ok(())
    })
    .ok()?;
    out
}

/// Runs `w` on a fresh table.
pub fn run(w: Workload, p: &Params) -> Sample {
    let mut t = new_table();
    let f = flags();
    let (pages, blocks) = (p.pages(), p.blocks());
    match w {
        Workload::W1 => {
            let e = timed(|| {
                for i in 0..pages {
                    map(&mut t, IOVA_BASE + i * PAGE, PAGE, f, PAGES);
                }
            });
            sample(&t, e, pages)
        }
        Workload::W1u => {
            map(&mut t, IOVA_BASE, p.size, f, PAGES);
            let e = timed(|| {
                for i in 0..pages {
                    unmap(&mut t, IOVA_BASE + i * PAGE, PAGE, PAGES);
                }
            });
            sample(&t, e, pages)
        }
        Workload::W2 => {
            let e = timed(|| map(&mut t, IOVA_BASE, p.size, f, PAGES));
            sample(&t, e, pages)
        }
        Workload::W2u => {
            map(&mut t, IOVA_BASE, p.size, f, PAGES);
            let e = timed(|| unmap(&mut t, IOVA_BASE, p.size, PAGES));
            sample(&t, e, pages)
        }
        Workload::W2e => {
            // Its unmaps never free tables: the leaf tables stay, empty.
            map(&mut t, IOVA_BASE, p.size, f, PAGES);
            for i in 0..pages {
                unmap(&mut t, IOVA_BASE + i * PAGE, PAGE, PAGES);
            }
            let e = timed(|| map(&mut t, IOVA_BASE, p.size, f, PAGES));
            sample(&t, e, pages)
        }
        Workload::W7 | Workload::W7u => {
            let map_all = |t: &mut Table| {
                for iova in w7_slots() {
                    map(t, iova, W7_BUFFER, f, PAGES);
                }
            };
            let unmap_all = |t: &mut Table| {
                for iova in w7_slots() {
                    unmap(t, iova, W7_BUFFER, PAGES);
                }
            };
            map_all(&mut t);
            unmap_all(&mut t);
            let mut e = Duration::ZERO;
            for _ in 0..p.w7_rounds() {
                if w == Workload::W7u {
                    map_all(&mut t);
                    e += timed(|| unmap_all(&mut t));
                } else {
                    e += timed(|| map_all(&mut t));
                    unmap_all(&mut t);
                }
            }
            sample(&t, e, p.w7_pages())
        }
        Workload::W3 => {
            let e = timed(|| {
                for b in 0..blocks {
                    map(&mut t, IOVA_BASE + b * BLOCK, BLOCK, f, BLOCKS);
                }
            });
            sample(&t, e, blocks)
        }
        Workload::W3u => {
            for b in 0..blocks {
                map(&mut t, IOVA_BASE + b * BLOCK, BLOCK, f, BLOCKS);
            }
            let e = timed(|| {
                for b in 0..blocks {
                    unmap(&mut t, IOVA_BASE + b * BLOCK, BLOCK, BLOCKS);
                }
            });
            sample(&t, e, blocks)
        }
        Workload::W4 => {
            map(&mut t, IOVA_BASE, p.size, f, PAGES);
            let iovas = w4_iovas(p);
            let mut sum = 0u64;
            let e = timed(|| {
                for &iova in &iovas {
                    sum = sum.wrapping_add(translate(&t, iova).unwrap_or(0));
                }
                black_box(sum);
            });
            assert_eq!(sum, w4_expected(&iovas), "aarch64-paging W4 lookups");
            sample(&t, e, iovas.len() as u64)
        }
        Workload::W5 => {
            let ops = w5_ops(p);
            let e = timed(|| {
                for &op in &ops {
                    match op {
                        Op::Map { iova, len } => map(&mut t, iova, len, f, BLOCKS),
                        Op::Unmap { iova, len } => unmap(&mut t, iova, len, BLOCKS),
                    }
                }
            });
            sample(&t, e, ops.len() as u64)
        }
        Workload::W6 | Workload::W6Single => unreachable!("not a peer workload"),
    }
}
