//! Differential tests: iopt's x86-64 format (4 levels, sign-extended) against the
//! `x86_64` crate (0.15, without its `instructions` feature: its walker and mapper are
//! plain memory walks and run in userspace).
//!
//! - iopt builds tables in heap memory (PA == host address); `x86_64`'s
//!   `OffsetPageTable` with offset 0 then walks iopt's root, read-only, and must report
//!   the same frame, offset, page size (4K, 2M, 1G) and leaf flags as iopt's `translate`
//!   and as an interval model, in both halves of the address space.
//! - The other way round: `x86_64`'s mapper builds the same mappings in its own tables.
//!   iopt cannot adopt a foreign root, so the two trees are compared entry by entry (the
//!   raw leaf values, and the flag bits of table entries, must be equal), and iopt's
//!   format decoder walks the mapper's tables.
//!
//! Quirks of `x86_64` 0.15 that the checks allow for:
//! - A 4K leaf is only tested for being zero, so a non-zero entry without PRESENT is
//!   reported as mapped; such results count as unmapped here (iopt writes zero anyway).
//! - `translate` panics on PS in a PML4 entry; iopt has no 512G pages (pinned below).
//! - `VirtAddr` is always canonical: non-canonical IOVAs are checked against iopt alone.
//! - Its mapper never frees tables on unmap, so after unmaps only translations are
//!   compared, not tree shapes.
//!
//! Flush tokens are always `.ignore()`d: `flush()` would need privileged instructions.
#![cfg(target_pointer_width = "64")]

use std::alloc::{Layout, alloc_zeroed, dealloc};

use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::HeapMemory;
use iopt::{Format, Gather, NoFlush, PageTable, Prot, Pte};
use proptest::prelude::*;
use x86_64::structures::paging::mapper::{CleanUp, MappedFrame, TranslateResult};
use x86_64::structures::paging::{
    FrameAllocator, FrameDeallocator, Mapper, OffsetPageTable, Page, PageSize,
    PageTable as X86Table, PageTableFlags as F, PhysFrame, Size1GiB, Size2MiB, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

const K4: u64 = 1 << 12;
const M2: u64 = 1 << 21;
const G1: u64 = 1 << 30;
/// The leaf sizes, largest first.
const SIZES: [u64; 3] = [G1, M2, K4];
/// Address field, bits 51:12.
const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// Start of the upper (negative) half of a 48-bit sign-extended space.
const UPPER: u64 = 0xffff_8000_0000_0000;
/// Half of the 48-bit space.
const HALF: u64 = 1 << 47;
/// Lowest output address used.
const PA_FLOOR: u64 = 1 << 40;
/// Flags of every table entry, in both libraries: P | R/W | U/S | A.
const TABLE_FLAGS: F = F::PRESENT
    .union(F::WRITABLE)
    .union(F::USER_ACCESSIBLE)
    .union(F::ACCESSED);

type IoTable = PageTable<X86_64, HeapMemory, NoFlush>;

// ---------------------------------------------------------------------------------------
// Seeded randomness (SplitMix64).

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

// ---------------------------------------------------------------------------------------
// Heap frames for x86_64's mapper (PA == host address).

fn page_layout() -> Layout {
    Layout::from_size_align(4096, 4096).unwrap()
}

#[derive(Default)]
struct HeapFrames {
    live: Vec<u64>,
}

impl HeapFrames {
    fn page(&mut self) -> u64 {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(page_layout()) } as u64;
        assert_ne!(p, 0, "out of memory");
        self.live.push(p);
        p
    }
}

// SAFETY: every frame is a distinct, live, 4K-aligned heap page, handed out once.
unsafe impl FrameAllocator<Size4KiB> for HeapFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let p = self.page();
        Some(PhysFrame::from_start_address(PhysAddr::new(p)).unwrap())
    }
}

impl FrameDeallocator<Size4KiB> for HeapFrames {
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame<Size4KiB>) {
        let p = frame.start_address().as_u64();
        let i = self
            .live
            .iter()
            .position(|&x| x == p)
            .expect("a frame of ours");
        self.live.swap_remove(i);
        // SAFETY: allocated by `page` with this layout; the mapper no longer links it.
        unsafe { dealloc(p as *mut u8, page_layout()) }
    }
}

impl Drop for HeapFrames {
    fn drop(&mut self) {
        for &p in &self.live {
            // SAFETY: allocated by `page` with this layout, freed once.
            unsafe { dealloc(p as *mut u8, page_layout()) }
        }
    }
}

/// `x86_64`'s view of the tree rooted at `root` (PA == host address, offset 0).
///
/// # Safety
/// `root` is a live 4K-aligned top table whose entries lead to live tables; while the
/// wrapper lives, nothing else reads or writes the tree, and a wrapper over a tree it
/// does not own is only used to translate.
unsafe fn wrap<'a>(root: u64) -> OffsetPageTable<'a> {
    // SAFETY: as the caller guarantees.
    unsafe { OffsetPageTable::new(&mut *(root as *mut X86Table), VirtAddr::zero()) }
}

/// What `x86_64`'s walker reports: (frame start, frame size, offset, leaf flags), or
/// `None` for an unmapped IOVA (including a non-present 4K leaf, see the module notes).
fn x86_translate(pt: &OffsetPageTable<'_>, va: u64) -> Option<(u64, u64, u64, F)> {
    match pt.translate(VirtAddr::new(va)) {
        TranslateResult::Mapped {
            frame,
            offset,
            flags,
        } => {
            if !flags.contains(F::PRESENT) {
                return None;
            }
            let size = match frame {
                MappedFrame::Size4KiB(_) => Size4KiB::SIZE,
                MappedFrame::Size2MiB(_) => Size2MiB::SIZE,
                MappedFrame::Size1GiB(_) => Size1GiB::SIZE,
            };
            assert_eq!(frame.size(), size);
            Some((frame.start_address().as_u64(), size, offset, flags))
        }
        TranslateResult::NotMapped => None,
        TranslateResult::InvalidFrameAddress(a) => panic!("invalid frame {a:?} at {va:#x}"),
    }
}

/// Reads entry `idx` of the table at `table_pa`.
///
/// # Safety
/// A live 512-entry table (PA == host address), not being written.
unsafe fn load(table_pa: u64, idx: u64) -> u64 {
    // SAFETY: as the caller guarantees.
    unsafe { (table_pa as *const u64).add(idx as usize).read() }
}

/// iopt's format decoder walking any 4-level tree: (output address, level, prot).
///
/// # Safety
/// `root` is a live tree in this format, not being written.
unsafe fn decode_walk(fmt: &X86_64, root: u64, va: u64) -> Option<(u64, u32, Prot)> {
    let (mut table, mut level) = (root, 3);
    loop {
        let item = fmt.item_lg2(level);
        // SAFETY: live 512-entry tables.
        let e = unsafe { load(table, (va >> item) & 511) };
        match fmt.decode(level, e) {
            Pte::Empty => return None,
            Pte::Table { pa } => {
                assert!(level > 0, "table at level 0: {e:#x}");
                table = pa;
                level -= 1;
            }
            Pte::Leaf { pa, run_lg2 } => {
                assert_eq!(run_lg2, 0);
                return Some((
                    pa + (va & ((1 << item) - 1)),
                    level,
                    fmt.leaf_prot(level, e),
                ));
            }
        }
    }
}

/// Compares iopt's tree (`a`) and the mapper's (`b`) entry by entry; returns leaves per
/// level (0 = 4K) and counts tables below the roots in `tables`.
///
/// # Safety
/// Both are live trees, not being written.
unsafe fn compare_trees(a_pa: u64, b_pa: u64, level: u32, va: u64, c: &mut [u64; 3], t: &mut u64) {
    let shift = 12 + 9 * level;
    for i in 0..512u64 {
        // Sign-extend bit 47 (only the PML4 index reaches it).
        let at = ((((va | (i << shift)) << 16) as i64) >> 16) as u64;
        // SAFETY: live tables of 512 entries.
        let (a, b) = unsafe { (load(a_pa, i), load(b_pa, i)) };
        if a & F::PRESENT.bits() == 0 {
            assert_eq!((a, b), (0, 0), "empty entries at {at:#x} level {level}");
        } else if level > 0 && a & F::HUGE_PAGE.bits() == 0 {
            assert_eq!(
                a & !ADDR,
                TABLE_FLAGS.bits(),
                "iopt table entry {a:#x} at {at:#x}"
            );
            assert_eq!(
                b & !ADDR,
                TABLE_FLAGS.bits(),
                "mapper table entry {b:#x} at {at:#x}"
            );
            *t += 1;
            // SAFETY: table entries of live trees point to live tables.
            unsafe { compare_trees(a & ADDR, b & ADDR, level - 1, at, c, t) };
        } else {
            assert!(level <= 2, "leaf at level 3: {a:#x}");
            assert_eq!(
                a, b,
                "leaf at {at:#x} level {level}: iopt {a:#x}, mapper {b:#x}"
            );
            c[level as usize] += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Both tables, and the model.

#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    iova: u64,
    pa: u64,
    len: u64,
    prot: Prot,
}

impl Range {
    fn find(ranges: &[Range], va: u64) -> Option<(Range, u64)> {
        ranges
            .iter()
            .find(|r| va.wrapping_sub(r.iova) < r.len)
            .map(|r| (*r, r.pa + va.wrapping_sub(r.iova)))
    }
}

/// The largest naturally aligned pieces whose IOVA and output address are both aligned,
/// consecutive ones of one size merged: `(iova, pa, size, count)`.
fn pieces(iova: u64, pa: u64, len: u64) -> Vec<(u64, u64, u64, usize)> {
    let mut out: Vec<(u64, u64, u64, usize)> = Vec::new();
    let mut off = 0;
    while off < len {
        let (v, p) = (iova.wrapping_add(off), pa + off);
        let size = *SIZES
            .iter()
            .find(|&&s| (v | p) & (s - 1) == 0 && len - off >= s)
            .expect("4K-aligned range");
        match out.last_mut() {
            Some(last) if last.2 == size => last.3 += 1,
            _ => out.push((v, p, size, 1)),
        }
        off += size;
    }
    out
}

/// The leaf flags iopt's encoding gives `prot` (module docs of `iopt::fmt::x86_64`,
/// following Linux): P, U/S and A always; R/W and D for write; PS above 4K. `NOEXEC`
/// and `PRIV` are not encoded.
fn leaf_flags(prot: Prot, size: u64) -> F {
    let mut f = F::PRESENT | F::USER_ACCESSIBLE | F::ACCESSED;
    if prot.contains(Prot::WRITE) {
        f |= F::WRITABLE | F::DIRTY;
    }
    if size > K4 {
        f |= F::HUGE_PAGE;
    }
    f
}

/// Maps one page of `size` with `x86_64`'s mapper; new tables get [`TABLE_FLAGS`].
fn x86_map(pt: &mut OffsetPageTable<'_>, fa: &mut HeapFrames, va: u64, pa: u64, size: u64, f: F) {
    let v = VirtAddr::new(va);
    let p = PhysAddr::new(pa);
    // The frames are fake output addresses that nothing accesses; the tables are heap
    // pages of `fa`; nothing walks this tree in hardware.
    match size {
        // SAFETY: see above.
        K4 => unsafe {
            let page = Page::<Size4KiB>::from_start_address(v).unwrap();
            let frame = PhysFrame::<Size4KiB>::from_start_address(p).unwrap();
            pt.map_to_with_table_flags(page, frame, f, TABLE_FLAGS, fa)
                .unwrap()
                .ignore();
        },
        // SAFETY: see above.
        M2 => unsafe {
            let page = Page::<Size2MiB>::from_start_address(v).unwrap();
            let frame = PhysFrame::<Size2MiB>::from_start_address(p).unwrap();
            pt.map_to_with_table_flags(page, frame, f, TABLE_FLAGS, fa)
                .unwrap()
                .ignore();
        },
        // SAFETY: see above.
        _ => unsafe {
            let page = Page::<Size1GiB>::from_start_address(v).unwrap();
            let frame = PhysFrame::<Size1GiB>::from_start_address(p).unwrap();
            pt.map_to_with_table_flags(page, frame, f, TABLE_FLAGS, fa)
                .unwrap()
                .ignore();
        },
    }
}

/// Unmaps one page of `size` with `x86_64`'s mapper and returns the frame it held.
fn x86_unmap(pt: &mut OffsetPageTable<'_>, va: u64, size: u64) -> u64 {
    let v = VirtAddr::new(va);
    match size {
        K4 => {
            let (f, flush) = pt
                .unmap(Page::<Size4KiB>::from_start_address(v).unwrap())
                .unwrap();
            flush.ignore();
            f.start_address().as_u64()
        }
        M2 => {
            let (f, flush) = pt
                .unmap(Page::<Size2MiB>::from_start_address(v).unwrap())
                .unwrap();
            flush.ignore();
            f.start_address().as_u64()
        }
        _ => {
            let (f, flush) = pt
                .unmap(Page::<Size1GiB>::from_start_address(v).unwrap())
                .unwrap();
            flush.ignore();
            f.start_address().as_u64()
        }
    }
}

struct Pair {
    fmt: X86_64,
    io: IoTable,
    fa: HeapFrames,
    /// Root of the mapper's tree (one of `fa`'s pages).
    x86_root: u64,
    live: Vec<Range>,
}

impl Pair {
    fn new() -> Self {
        let fmt = X86_64::new(X86_64Config::default()).unwrap();
        let io = IoTable::new(fmt, HeapMemory::new(), NoFlush).unwrap();
        let info = io.info();
        assert_eq!(info.levels, 4);
        // 4K, 2M, 1G: no 512G pages, so x86_64's walker never meets PS in a PML4 entry.
        assert_eq!(info.pgsize_bitmap, K4 | M2 | G1);
        assert_eq!((info.aperture.start, info.aperture.last), (0, HALF - 1));
        assert_eq!(info.aperture.upper, Some((UPPER, u64::MAX)));
        assert_eq!(info.root_pa % K4, 0);
        let mut fa = HeapFrames::default();
        let x86_root = fa.page();
        Pair {
            fmt,
            io,
            fa,
            x86_root,
            live: Vec::new(),
        }
    }

    fn map(&mut self, r: Range) {
        // SAFETY: the mapper's root is ours; nothing else uses it meanwhile.
        let mut pt = unsafe { wrap(self.x86_root) };
        for (iova, pa, size, count) in pieces(r.iova, r.pa, r.len) {
            // SAFETY: single-threaded; nothing walks the table.
            let got = unsafe { self.io.map_pages(iova, pa, size, count, r.prot) };
            assert_eq!(
                got,
                (size * count as u64, Ok(())),
                "iopt map {iova:#x} {size:#x}x{count}"
            );
            for k in 0..count as u64 {
                let (v, p) = (iova.wrapping_add(k * size), pa + k * size);
                x86_map(&mut pt, &mut self.fa, v, p, size, leaf_flags(r.prot, size));
            }
        }
        self.live.push(r);
    }

    fn unmap(&mut self, r: Range) {
        let mut g = Gather::new();
        // SAFETY: as for map.
        let got = unsafe { self.io.unmap_range(r.iova, r.len, &mut g) };
        assert_eq!(got, (r.len, Ok(())), "iopt unmap {r:x?}");
        self.io.sync(&mut g);
        // SAFETY: as for map.
        let mut pt = unsafe { wrap(self.x86_root) };
        for (iova, pa, size, count) in pieces(r.iova, r.pa, r.len) {
            for k in 0..count as u64 {
                let frame = x86_unmap(&mut pt, iova.wrapping_add(k * size), size);
                assert_eq!(frame, pa + k * size);
            }
        }
        self.live.retain(|x| *x != r);
    }

    /// Frees the mapper's empty tables: unlike iopt, its `map_to` refuses to put a large
    /// page where an empty table is linked (`PageAlreadyMapped`).
    fn x86_clean_up(&mut self) {
        // SAFETY: the mapper's root is ours; nothing else uses it meanwhile.
        let mut pt = unsafe { wrap(self.x86_root) };
        // SAFETY: every table below the root came from `self.fa`; nothing walks the tree.
        unsafe { pt.clean_up(&mut self.fa) };
    }

    /// Entry-by-entry comparison of the two trees; returns leaves per level.
    fn compare_trees(&self) -> [u64; 3] {
        let (mut c, mut t) = ([0; 3], 0);
        // SAFETY: both trees are live and unchanged while `&self` is held.
        unsafe { compare_trees(self.io.info().root_pa, self.x86_root, 3, 0, &mut c, &mut t) };
        assert_eq!(self.io.mem_stats().pages, t + 1, "iopt table pages");
        assert_eq!(self.fa.live.len() as u64, t + 1, "mapper tables");
        c
    }

    /// Checks `vas` four ways against the model: iopt's translate, x86_64's walker on
    /// iopt's tree and on its own, iopt's decoder on the mapper's tree.
    fn check(&self, vas: &[u64]) {
        // The wrapper over iopt's tree lives only while collecting; iopt is not used then.
        let on_iopt: Vec<_> = {
            // SAFETY: iopt's root is a live 4K-aligned PML4 of heap tables (PA == host
            // address); the wrapper only translates and is dropped before iopt runs again.
            let pt = unsafe { wrap(self.io.info().root_pa) };
            vas.iter().map(|&va| x86_translate(&pt, va)).collect()
        };
        let own: Vec<_> = {
            // SAFETY: the mapper's tree, unchanged while `&self` is held.
            let pt = unsafe { wrap(self.x86_root) };
            vas.iter().map(|&va| x86_translate(&pt, va)).collect()
        };
        for (i, &va) in vas.iter().enumerate() {
            let want = Range::find(&self.live, va);
            // SAFETY: single-threaded; nothing writes the table.
            let io = unsafe { self.io.translate(va) };
            // SAFETY: the mapper's tree is live and unchanged.
            let decoded = unsafe { decode_walk(&self.fmt, self.x86_root, va) };
            let want_pa = want.map(|w| w.1);
            assert_eq!(io.map(|t| t.pa), want_pa, "iopt translate {va:#x}");
            let x_pa = |x: &Option<(u64, u64, u64, F)>| x.map(|(f, _, o, _)| f + o);
            assert_eq!(x_pa(&on_iopt[i]), want_pa, "x86_64 on iopt's tree {va:#x}");
            assert_eq!(x_pa(&own[i]), want_pa, "x86_64 on its tree {va:#x}");
            assert_eq!(
                decoded.map(|d| d.0),
                want_pa,
                "iopt decoding the mapper's tree {va:#x}"
            );
            let (Some(io), Some((r, _)), Some(x), Some(d)) = (io, want, on_iopt[i], decoded) else {
                continue;
            };
            let (frame, size, offset, flags) = x;
            assert_eq!(frame, io.pa - (va - io.iova_base), "frame {va:#x}");
            assert_eq!((size, offset), (io.size, va - io.iova_base), "size {va:#x}");
            assert_eq!(flags, leaf_flags(r.prot, size), "flags {va:#x}");
            // The flags and iopt's prot say the same thing.
            assert_eq!(flags.contains(F::WRITABLE), io.prot.contains(Prot::WRITE));
            assert_eq!(
                flags.contains(F::NO_EXECUTE),
                io.prot.contains(Prot::NOEXEC)
            );
            assert_eq!(
                !flags.contains(F::USER_ACCESSIBLE),
                io.prot.contains(Prot::PRIV)
            );
            assert!(io.prot.contains(Prot::READ));
            assert_eq!(
                u64::from(io.level),
                u64::from(size.trailing_zeros() - 12) / 9
            );
            // iopt reads the mapper's leaf as its own.
            assert_eq!((d.1, d.2), (io.level, io.prot), "decoded {va:#x}");
            assert_eq!(own[i], Some(x), "x86_64 on both trees {va:#x}");
        }
    }

    /// Probe IOVAs: each range's edges, piece boundaries and interior points, their
    /// neighbours, and random canonical IOVAs of both halves.
    fn probes(&self, extra: &[Range], rng: &mut Rng) -> Vec<u64> {
        let mut vas = Vec::new();
        for r in self.live.iter().chain(extra) {
            let end = r.iova.wrapping_add(r.len);
            vas.extend([r.iova, end.wrapping_sub(1), r.iova.wrapping_sub(1), end]);
            for (iova, _, size, count) in pieces(r.iova, r.pa, r.len) {
                let span = size * count as u64;
                vas.extend([iova, iova.wrapping_add(span - 1)]);
                vas.push(iova.wrapping_add(rng.below(span)));
            }
            vas.extend((0..6).map(|_| r.iova.wrapping_add(rng.below(r.len))));
        }
        for _ in 0..64 {
            let va = rng.below(HALF);
            vas.push(if rng.below(2) == 0 { va } else { UPPER | va });
        }
        vas.retain(|&va| VirtAddr::try_new(va).is_ok());
        vas
    }
}

// ---------------------------------------------------------------------------------------
// Random mixes.

/// (kind, window, offset bits, length bits, pa bits, prot bits).
type Spec = (u8, u16, u32, u32, u32, u8);

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..3,
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
    )
}

/// A range in its own 16G window, in the lower or the upper half: kind 0 up to 512
/// pages at any output alignment; kind 1 up to 4G congruent modulo 2M; kind 2 up to ~5G
/// congruent modulo 1G.
fn range_of(s: Spec) -> (u64, Range) {
    const WINDOW: u64 = 1 << 34;
    let (kind, slot, off, len, pa, prot) = s;
    let slot = u64::from(slot) % (2 * HALF / WINDOW);
    let wbase = if slot * WINDOW < HALF {
        slot * WINDOW
    } else {
        UPPER | (slot * WINDOW - HALF)
    };
    let (off, len, pa) = (u64::from(off), u64::from(len), u64::from(pa));
    // Output addresses up to 2^51, exercising high address bits.
    let pa_base = PA_FLOOR + (pa * G1) % (1 << 50);
    let pages = |x: u64| (x % 512) * K4;
    let (iova, len, pa) = match kind {
        0 => {
            let iova = wbase + (off % (1 << 21)) * K4;
            (iova, (1 + len % 512) * K4, pa_base + pages(pa >> 20))
        }
        1 => {
            let iova = wbase + (off % 4096) * M2 + pages(off >> 12);
            let len = (len % 2048) * M2 + pages(len >> 11) + K4;
            (iova, len, pa_base + (iova % M2))
        }
        _ => {
            let iova = wbase + (off % 4) * G1 + (off >> 2) % 512 * M2 + pages(off >> 11);
            let len = (len % 5) * G1 + (len >> 3) % 512 * M2 + pages(len >> 12) + K4;
            (iova, len, pa_base + (iova % G1))
        }
    };
    let mut prot = Prot::from_bits_truncate(u32::from(prot));
    if !prot.has_access() {
        prot |= Prot::READ;
    }
    (
        slot,
        Range {
            iova,
            pa,
            len,
            prot,
        },
    )
}

/// Maps the specs in both, compares trees and translations; unmaps those picked by
/// `mask` and compares translations again (the mapper keeps its empty tables); maps new
/// 2M-rounded ranges over the freed windows and compares once more.
fn run_mix(specs: &[Spec], mask: u32, seed: u64) {
    let mut rng = Rng(seed);
    let mut pair = Pair::new();
    let mut slots = Vec::new();
    for &s in specs {
        let (slot, r) = range_of(s);
        if !slots.contains(&slot) {
            slots.push(slot);
            pair.map(r);
        }
    }
    pair.compare_trees();
    let vas = pair.probes(&[], &mut rng);
    pair.check(&vas);

    let gone: Vec<Range> = (pair.live.iter().enumerate())
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, r)| *r)
        .collect();
    for &r in &gone {
        pair.unmap(r);
    }
    let vas = pair.probes(&gone, &mut rng);
    pair.check(&vas);

    pair.x86_clean_up();
    pair.check(&vas);
    for r in &gone {
        let iova = r.iova & !(M2 - 1);
        let len = r.iova.wrapping_add(r.len).next_multiple_of(M2) - iova;
        let pa = PA_FLOOR + G1 * rng.below(1 << 16) + iova % G1;
        pair.map(Range {
            iova,
            pa,
            len,
            prot: (r.prot ^ Prot::WRITE) | Prot::READ,
        });
    }
    let vas = pair.probes(&gone, &mut rng);
    pair.check(&vas);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mix(specs in proptest::collection::vec(spec(), 1..12), mask in any::<u32>(), seed in any::<u64>()) {
        run_mix(&specs, mask, seed);
    }
}

// ---------------------------------------------------------------------------------------
// Fixed shapes.

/// Pages, 2M pages and 1G pages in both halves with every prot, plus output alignments
/// that forbid the larger sizes; the trees are equal entry by entry.
#[test]
fn every_size_both_halves() {
    let mut pair = Pair::new();
    let mut want = [0u64; 3];
    let prots = (0u32..64)
        .map(Prot::from_bits_truncate)
        .filter(|p| p.has_access());
    for (i, prot) in prots.enumerate() {
        let i = i as u64;
        let half = if i.is_multiple_of(2) { 0 } else { UPPER };
        let w = half | ((i + 1) * 8 * G1);
        let pa = PA_FLOOR + i * 8 * G1;
        // [1G - 8K, 3G + 2M + 12K): 2 pages, two 1G pages, a 2M page, 3 pages.
        pair.map(Range {
            iova: w + G1 - 2 * K4,
            pa: pa + G1 - 2 * K4,
            len: 2 * G1 + M2 + 5 * K4,
            prot,
        });
        // Output congruent modulo 2M only, then off by a page.
        pair.map(Range {
            iova: w + 4 * G1,
            pa: pa + 4 * G1 + M2,
            len: G1,
            prot,
        });
        pair.map(Range {
            iova: w + 6 * G1,
            pa: pa + 6 * G1 + K4,
            len: M2,
            prot,
        });
        want[2] += 2;
        want[1] += 1 + 512;
        want[0] += 5 + 512;
    }
    assert_eq!(pair.compare_trees(), want);
    let vas = pair.probes(&[], &mut Rng(1));
    pair.check(&vas);
}

/// The edges of the canonical halves: the top of the lower half, the bottom of the upper
/// half and the last page of the 64-bit space; non-canonical IOVAs are refused by iopt
/// and cannot even be named in x86_64.
#[test]
fn canonical_edges() {
    let mut pair = Pair::new();
    let prot = Prot::READ | Prot::WRITE;
    let ranges = [
        // Up to the top of the lower half: a page, a 2M page, a 1G page.
        Range {
            iova: HALF - G1 - M2 - K4,
            pa: PA_FLOOR + 3 * G1 - M2 - K4,
            len: G1 + M2 + K4,
            prot,
        },
        // From the bottom of the upper half.
        Range {
            iova: UPPER,
            pa: PA_FLOOR + 8 * G1,
            len: G1 + M2 + K4,
            prot: Prot::READ,
        },
        // The last 2M + 4K below 2^64.
        Range {
            iova: 0u64.wrapping_sub(M2 + K4),
            pa: PA_FLOOR + 16 * G1 - K4,
            len: M2 + K4,
            prot,
        },
    ];
    for r in ranges {
        pair.map(r);
    }
    assert_eq!(pair.compare_trees(), [3, 3, 2]);
    let mut vas = pair.probes(&[], &mut Rng(2));
    vas.extend([0, u64::MAX, u64::MAX - K4 + 1, UPPER + K4 - 1]);
    pair.check(&vas);
    for va in [
        HALF,
        HALF + 0x1234,
        UPPER - 1,
        1 << 63,
        0x0001_0000_0000_0000,
    ] {
        assert!(VirtAddr::try_new(va).is_err(), "{va:#x} is non-canonical");
        // SAFETY: single-threaded.
        assert_eq!(unsafe { pair.io.translate(va) }, None, "{va:#x}");
    }
}

/// Tables emptied by partial unmaps stay linked in iopt; x86_64's walker must read
/// them as valid, empty tables (NotMapped), like its own left-over tables.
#[test]
fn emptied_tables_walk_as_unmapped() {
    let mut pair = Pair::new();
    let rs = [
        Range {
            iova: 5 * G1 + 3 * K4,
            pa: PA_FLOOR,
            len: 7 * K4,
            prot: Prot::READ | Prot::WRITE,
        },
        Range {
            iova: UPPER | (9 * G1 + M2),
            pa: PA_FLOOR + M2,
            len: 3 * M2,
            prot: Prot::READ,
        },
    ];
    for r in rs {
        pair.map(r);
    }
    pair.compare_trees();
    for r in rs {
        pair.unmap(r);
    }
    // iopt keeps its emptied page table / page directory; nothing is mapped anywhere.
    assert_eq!(pair.io.mem_stats().pages, 1 + 3 + 2);
    let mut rng = Rng(4);
    let vas = pair.probes(&rs, &mut rng);
    {
        // SAFETY: iopt's root is live and unchanged while the wrapper lives.
        let pt = unsafe { wrap(pair.io.info().root_pa) };
        for &va in &vas {
            let r = pt.translate(VirtAddr::new(va));
            assert!(matches!(r, TranslateResult::NotMapped), "{va:#x}: {r:?}");
        }
    }
    pair.check(&vas);
}
