//! The workloads on the `x86_64` crate: `OffsetPageTable` (physical offset 0) with
//! `Mapper::map_to` / `unmap` and `translate_addr`. It has no range API: one-call maps
//! and unmaps go page by page.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Duration;

use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable as X86Page,
    PageTableFlags as F, PhysFrame, Size2MiB, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use crate::ops::{Op, w4_expected, w4_iovas, w5_ops, w7_slots};
use crate::{BLOCK, IOVA_BASE, PAGE, Params, Sample, W7_BUFFER, Workload, pa_of, timed};

const LAYOUT: Layout = Layout::new::<X86Page>();

/// Table pages from the heap (PA = VA), counted; all freed on drop.
#[derive(Debug, Default)]
struct Frames {
    live: Vec<u64>,
    peak: u64,
}

impl Frames {
    fn page(&mut self) -> u64 {
        // SAFETY: the layout has a non-zero size (4 KiB, aligned to 4 KiB).
        let ptr = unsafe { alloc_zeroed(LAYOUT) };
        assert!(!ptr.is_null(), "out of memory");
        self.live.push(ptr as u64);
        self.peak = self.peak.max(self.live.len() as u64);
        ptr as u64
    }
}

// SAFETY: every frame is a fresh, zeroed, 4 KiB-aligned heap page owned by `Frames`
// until it is dropped, never handed out twice.
unsafe impl FrameAllocator<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let pa = self.page();
        PhysFrame::from_start_address(PhysAddr::new(pa)).ok()
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        for &pa in &self.live {
            // SAFETY: each address came from `alloc_zeroed(LAYOUT)` in `page` and is
            // freed once, here; the table using them is gone.
            unsafe { dealloc(pa as *mut u8, LAYOUT) }
        }
    }
}

/// A 4-level table: the root and every table below it are `frames`' pages.
struct Table {
    frames: Frames,
    root: NonNull<X86Page>,
}

impl Table {
    fn new() -> Self {
        let mut frames = Frames::default();
        let root = NonNull::new(frames.page() as *mut X86Page).expect("a root");
        Table { frames, root }
    }

    /// The mapper over the table, and the allocator for its new tables.
    fn parts(&mut self) -> (OffsetPageTable<'_>, &mut Frames) {
        // SAFETY: the root is a live, zeroed-then-edited table page owned by
        // `self.frames`, borrowed mutably for as long as `self` is; with physical
        // offset 0 every table address (PA = VA) is a valid pointer. The leaf frames
        // are made-up addresses the crate never dereferences, and the table is never
        // loaded into CR3.
        let pt = unsafe { OffsetPageTable::new(&mut *self.root.as_ptr(), VirtAddr::zero()) };
        (pt, &mut self.frames)
    }

    fn sample(&self, elapsed: Duration, ops: u64) -> Sample {
        Sample {
            elapsed,
            ops,
            table_pages: self.frames.peak,
            table_pages_end: self.frames.live.len() as u64,
        }
    }
}

fn flags() -> F {
    F::PRESENT | F::WRITABLE | F::NO_EXECUTE
}

#[inline(always)]
fn map<S: PageSize + std::fmt::Debug>(pt: &mut OffsetPageTable<'_>, fa: &mut Frames, iova: u64)
where
    for<'a> OffsetPageTable<'a>: Mapper<S>,
{
    let page = Page::<S>::from_start_address(VirtAddr::new(iova)).expect("aligned");
    let frame = PhysFrame::<S>::from_start_address(PhysAddr::new(pa_of(iova))).expect("aligned");
    // SAFETY: the table is never live: mapping a made-up frame cannot alias memory
    // the program uses.
    match unsafe { pt.map_to(page, frame, flags(), fa) } {
        Ok(flush) => flush.ignore(),
        Err(e) => panic!("x86_64 map_to {iova:#x}: {e:?}"),
    }
}

#[inline(always)]
fn unmap<S: PageSize>(pt: &mut OffsetPageTable<'_>, iova: u64)
where
    for<'a> OffsetPageTable<'a>: Mapper<S>,
{
    let page = Page::<S>::from_start_address(VirtAddr::new(iova)).expect("aligned");
    match pt.unmap(page) {
        Ok((_, flush)) => flush.ignore(),
        Err(e) => panic!("x86_64 unmap {iova:#x}: {e:?}"),
    }
}

/// Maps a buffer: one 2 MiB page if it is exactly one, else 4K pages.
fn map_buffer(pt: &mut OffsetPageTable<'_>, fa: &mut Frames, iova: u64, len: u64) {
    if len == BLOCK && iova.is_multiple_of(BLOCK) {
        map::<Size2MiB>(pt, fa, iova);
    } else {
        for i in 0..len / PAGE {
            map::<Size4KiB>(pt, fa, iova + i * PAGE);
        }
    }
}

fn unmap_buffer(pt: &mut OffsetPageTable<'_>, iova: u64, len: u64) {
    if len == BLOCK && iova.is_multiple_of(BLOCK) {
        unmap::<Size2MiB>(pt, iova);
    } else {
        for i in 0..len / PAGE {
            unmap::<Size4KiB>(pt, iova + i * PAGE);
        }
    }
}

/// Runs `w` on a fresh table.
pub fn run(w: Workload, p: &Params) -> Sample {
    let mut t = Table::new();
    let (pages, blocks) = (p.pages(), p.blocks());
    let e = {
        let (mut pt, fa) = t.parts();
        let pt = &mut pt;
        let map_all = |pt: &mut OffsetPageTable<'_>, fa: &mut Frames| {
            for i in 0..pages {
                map::<Size4KiB>(pt, fa, IOVA_BASE + i * PAGE);
            }
        };
        match w {
            // No range API: W2 maps page by page like W1, W2u unmaps like W1u.
            Workload::W1 | Workload::W2 => timed(|| map_all(pt, fa)),
            Workload::W1u | Workload::W2u => {
                map_all(pt, fa);
                timed(|| {
                    for i in 0..pages {
                        unmap::<Size4KiB>(pt, IOVA_BASE + i * PAGE);
                    }
                })
            }
            Workload::W2e => {
                // Its unmaps never free tables: the leaf tables stay, empty.
                map_all(pt, fa);
                for i in 0..pages {
                    unmap::<Size4KiB>(pt, IOVA_BASE + i * PAGE);
                }
                timed(|| map_all(pt, fa))
            }
            Workload::W7 | Workload::W7u => {
                let map_slots = |pt: &mut OffsetPageTable<'_>, fa: &mut Frames| {
                    for iova in w7_slots() {
                        map_buffer(pt, fa, iova, W7_BUFFER);
                    }
                };
                let unmap_slots = |pt: &mut OffsetPageTable<'_>| {
                    for iova in w7_slots() {
                        unmap_buffer(pt, iova, W7_BUFFER);
                    }
                };
                map_slots(pt, fa);
                unmap_slots(pt);
                let mut e = Duration::ZERO;
                for _ in 0..p.w7_rounds() {
                    if w == Workload::W7u {
                        map_slots(pt, fa);
                        e += timed(|| unmap_slots(pt));
                    } else {
                        e += timed(|| map_slots(pt, fa));
                        unmap_slots(pt);
                    }
                }
                return t.sample(e, p.w7_pages());
            }
            Workload::W3 => timed(|| {
                for b in 0..blocks {
                    map::<Size2MiB>(pt, fa, IOVA_BASE + b * BLOCK);
                }
            }),
            Workload::W3u => {
                for b in 0..blocks {
                    map::<Size2MiB>(pt, fa, IOVA_BASE + b * BLOCK);
                }
                timed(|| {
                    for b in 0..blocks {
                        unmap::<Size2MiB>(pt, IOVA_BASE + b * BLOCK);
                    }
                })
            }
            Workload::W4 => {
                map_all(pt, fa);
                let iovas = w4_iovas(p);
                let mut sum = 0u64;
                let e = timed(|| {
                    for &iova in &iovas {
                        let pa = pt.translate_addr(VirtAddr::new(iova));
                        sum = sum.wrapping_add(pa.map_or(0, PhysAddr::as_u64));
                    }
                    black_box(sum);
                });
                assert_eq!(sum, w4_expected(&iovas), "x86_64 W4 lookups");
                return t.sample(e, iovas.len() as u64);
            }
            Workload::W5 => {
                let ops = w5_ops(p);
                let e = timed(|| {
                    for &op in &ops {
                        match op {
                            Op::Map { iova, len } => map_buffer(pt, fa, iova, len),
                            Op::Unmap { iova, len } => unmap_buffer(pt, iova, len),
                        }
                    }
                });
                return t.sample(e, ops.len() as u64);
            }
            Workload::W6 | Workload::W6Single => unreachable!("not a peer workload"),
        }
    };
    let ops = if matches!(w, Workload::W3 | Workload::W3u) {
        blocks
    } else {
        pages
    };
    t.sample(e, ops)
}
