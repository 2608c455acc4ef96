//! A catalogue of bad input: every error path of `map_pages`, `unmap_pages` and
//! `unmap_range` (and of table construction), for every format family. Each case checks
//! the exact error (with its fields), that nothing was mapped or unmapped, and that the
//! table memory is byte-for-byte what it was before (`ArenaMemory::same_image`), with the
//! same number of table pages in use. The few errors that come after progress (a map
//! that meets a mapping part-way, an unmap that meets a hole) are checked for exactly the
//! progress they report.

mod common;

use std::ptr::NonNull;
use std::sync::Mutex;

use common::arm_config as arm;
use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig, Granule, Stage};
use iopt::fmt::armv7s::{ArmV7s, ArmV7sConfig};
use iopt::fmt::dart::{Dart, DartConfig, DartRegs, DartVersion};
use iopt::fmt::riscv::{Riscv, RiscvConfig};
use iopt::fmt::vtdss::{VtdSs, VtdSsConfig};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::{ArenaMemory, TableMemory};
// LPAE family members (appended).
use iopt::fmt::arm_lpae::ArmLpae52;
use iopt::fmt::arm32_lpae::{Arm32Lpae, Arm32LpaeConfig};
use iopt::fmt::mali::{MaliLpae, MaliLpaeConfig};
use iopt::{
    Error, FlushOps, Format, Gather, HwWords, Info, NoFlush, PageTable, Prot, Pte, Translation,
    VaMode,
};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const K4: u64 = 1 << 12;
const G4: u64 = 1 << 32;

const ARENA_BASE: u64 = 0x4000_0000;
const ARENA_BYTES: usize = 8 << 20;

type Pt<'a, F, X = NoFlush> = PageTable<F, &'a ArenaMemory, X>;

// ---------------------------------------------------------------------------------------
// Configurations
// ---------------------------------------------------------------------------------------

// The configurations the generic checks run on are the catalogue's
// (`common::configs`); these build the particular ones the directed tests use.

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

fn x86(levels: u32, sign_extend: bool, oa_bits: u32) -> X86_64 {
    X86_64::new(X86_64Config {
        levels,
        sign_extend,
        oa_bits,
        ..X86_64Config::default()
    })
    .unwrap()
}

fn riscv(levels: u32, oa_bits: u32) -> RiscvConfig {
    RiscvConfig {
        levels,
        oa_bits,
        ..RiscvConfig::default()
    }
}

fn arm32(stage: Stage, ias: u32, oas: u32) -> Arm32LpaeConfig {
    Arm32LpaeConfig {
        stage,
        ias,
        oas,
        ..Arm32LpaeConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

fn sizes(info: &Info) -> Vec<u64> {
    (0..64)
        .map(|b| 1u64 << b)
        .filter(|s| info.pgsize_bitmap & s != 0)
        .collect()
}

fn ranges(info: &Info) -> Vec<(u64, u64)> {
    let mut v = vec![(info.aperture.start, info.aperture.last)];
    v.extend(info.aperture.upper);
    v
}

fn pa_of(info: &Info, iova: u64) -> u64 {
    iova & mask(info.oa_bits)
}

/// The level the engine writes a page of `size` at (the highest that can make it).
fn leaf_level<F: Format>(f: &F, size: u64) -> u32 {
    let lg2 = size.trailing_zeros();
    (0..f.max_levels())
        .rev()
        .find(|&l| {
            lg2.checked_sub(f.item_lg2(l))
                .is_some_and(|c| c < 32 && f.leaf_runs(l) & (1 << c) != 0)
        })
        .expect("size in bitmap")
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

/// A table under test with its memory: runs a call and checks it was refused cleanly.
struct Bench<'m, F: Format, X: FlushOps = NoFlush> {
    name: &'static str,
    pt: Pt<'m, F, X>,
    mem: &'m ArenaMemory,
}

impl<F: Format, X: FlushOps> Bench<'_, F, X> {
    /// Runs `op` and checks that it returned `(0, Err(want))`, changed no byte of table
    /// memory, allocated or freed no table page, and left nothing to flush or free.
    fn refused(
        &self,
        what: &str,
        want: Error,
        op: impl FnOnce(&Pt<'_, F, X>, &mut Gather) -> (u64, Result<(), Error>),
    ) {
        let before = self.mem.image();
        let pages = self.mem.stats().pages;
        let levels = self.pt.info().levels;
        let mut g = Gather::new();
        let got = op(&self.pt, &mut g);
        assert_eq!(got, (0, Err(want)), "{}: {what}", self.name);
        assert!(
            ArenaMemory::same_image(&before, &self.mem.image()),
            "{}: {what}: refused, but the table memory changed",
            self.name
        );
        assert_eq!(
            self.mem.stats().pages,
            pages,
            "{}: {what}: table pages",
            self.name
        );
        assert_eq!(
            self.pt.info().levels,
            levels,
            "{}: {what}: levels",
            self.name
        );
        assert!(g.is_empty(), "{}: {what}: work gathered", self.name);
    }

    fn map_refused(&self, iova: u64, pa: u64, size: u64, count: usize, prot: Prot, want: Error) {
        let what = format!("map {iova:#x} -> {pa:#x} {size:#x} x {count} {prot:?}");
        self.refused(&what, want, |pt, _| map(pt, iova, pa, size, count, prot));
    }

    fn unmap_refused(&self, iova: u64, size: u64, count: usize, want: Error) {
        let what = format!("unmap {iova:#x} {size:#x} x {count}");
        self.refused(&what, want, |pt, g| unmap(pt, iova, size, count, g));
    }

    fn unmap_range_refused(&self, iova: u64, len: u64, want: Error) {
        let what = format!("unmap_range {iova:#x} + {len:#x}");
        self.refused(&what, want, |pt, g| unmap_range(pt, iova, len, g));
    }

    fn map_ok(&self, iova: u64, size: u64) {
        let pa = pa_of(&self.pt.info(), iova);
        assert_eq!(
            map(&self.pt, iova, pa, size, 1, RW),
            (size, Ok(())),
            "{}: map {iova:#x} {size:#x}",
            self.name
        );
    }

    /// Asserts `iova` translates as part of the page `[base, base + size)` mapped by
    /// `map_ok`.
    fn mapped_at(&self, iova: u64, base: u64, size: u64) {
        let t = tr(&self.pt, iova).unwrap_or_else(|| panic!("{}: {iova:#x}", self.name));
        let pa = pa_of(&self.pt.info(), base);
        assert_eq!(
            (t.pa, t.iova_base, t.size),
            (pa + (iova - base), base, size),
            "{}: translate {iova:#x}",
            self.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// The catalogue, per format configuration
// ---------------------------------------------------------------------------------------

/// Every argument and state error of map, unmap and unmap_range, against a table that
/// holds a page, a block and a run.
fn catalogue<F: Format>(name: &'static str, fmt: F) {
    let mem = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
    let pt = PageTable::new(fmt, &mem, NoFlush).unwrap_or_else(|e| panic!("{name}: {e}"));
    let b = Bench {
        name,
        pt,
        mem: &mem,
    };
    let info = b.pt.info();
    let f = b.pt.format();
    let all = sizes(&info);
    let p = all[0];
    let max = *all.last().unwrap();
    let (s, l) = (info.aperture.start, info.aperture.last);
    // A block (a leaf above level 0) and a run (a multi-entry leaf at level 0).
    let block = all.iter().copied().find(|&z| leaf_level(f, z) > 0);
    let run = all
        .iter()
        .copied()
        .find(|&z| z > p && leaf_level(f, z) == 0);
    // The pieces are four times the largest apart; two times where the aperture is too
    // small for that (ARM32 stage 2 with a 25-bit input space).
    let piece = block.unwrap_or(p).max(run.unwrap_or(p));
    let d = if 24 * piece - 1 <= l - s {
        4 * piece
    } else {
        2 * piece
    };
    let (x, y, z, z2, e) = (s + d, s + 2 * d, s + 3 * d, s + 4 * d, s + 5 * d);
    assert!(6 * d - 1 <= l - s, "{name}: layout does not fit");
    b.map_ok(x, p);
    if let Some(block) = block {
        b.map_ok(y, block);
    }
    if let Some(run) = run {
        b.map_ok(z, run);
        b.map_ok(z2 + run - p, p);
    }
    // A growing table may have grown for these: take the geometry now.
    let info = b.pt.info();
    let epa = pa_of(&info, e);

    // --- NoAccess: checked before anything else.
    b.map_refused(e, epa, p, 1, Prot::empty(), Error::NoAccess);
    let no_rw = Prot::CACHE | Prot::NOEXEC | Prot::MMIO | Prot::PRIV;
    b.map_refused(e, epa, p, 1, no_rw, Error::NoAccess);
    b.map_refused(e, epa, p, 0, Prot::empty(), Error::NoAccess);
    b.map_refused(x, epa, 3, 0, Prot::NOEXEC, Error::NoAccess);

    // --- ZeroLength: before the page size and alignment checks.
    b.map_refused(e, epa, p, 0, RW, Error::ZeroLength);
    b.map_refused(e + 1, epa, 3 * p, 0, RW, Error::ZeroLength);
    b.unmap_refused(x, p, 0, Error::ZeroLength);
    b.unmap_refused(x + 1, 3, 0, Error::ZeroLength);
    b.unmap_range_refused(x, 0, Error::ZeroLength);

    // --- BadPageSize: not a power of two, or a power of two the table cannot hold.
    let mut bad = vec![0, 3 * p, p + 1, p / 2, u64::MAX, 1 << 63];
    if max < 1 << 63 {
        bad.push(max * 2);
    }
    // Gaps in the bitmap (8K on ARM's 4K granule, 4M on x86-64, 512G on AMD v1, ...).
    bad.extend(
        (p.trailing_zeros()..max.trailing_zeros())
            .map(|b| 1u64 << b)
            .filter(|z| info.pgsize_bitmap & z == 0),
    );
    for &bad in &bad {
        b.map_refused(e, epa, bad, 1, RW, Error::BadPageSize(bad));
        b.unmap_refused(x, bad, 1, Error::BadPageSize(bad));
    }
    // unmap_range: a length that is not a multiple of the smallest page.
    for len in [p / 2, p + p / 2, 1, p - 1] {
        b.unmap_range_refused(x, len, Error::BadPageSize(len));
    }

    // --- UnalignedIova.
    b.map_refused(
        e + 1,
        epa,
        p,
        1,
        RW,
        Error::UnalignedIova {
            iova: e + 1,
            pgsize: p,
        },
    );
    b.map_refused(
        e + p / 2,
        epa,
        p,
        2,
        RW,
        Error::UnalignedIova {
            iova: e + p / 2,
            pgsize: p,
        },
    );
    b.unmap_refused(
        x + 1,
        p,
        1,
        Error::UnalignedIova {
            iova: x + 1,
            pgsize: p,
        },
    );
    b.unmap_range_refused(
        x + p / 2,
        p,
        Error::UnalignedIova {
            iova: x + p / 2,
            pgsize: p,
        },
    );
    if let Some(block) = block {
        let want = Error::UnalignedIova {
            iova: e + p,
            pgsize: block,
        };
        b.map_refused(e + p, epa, block, 1, RW, want);
        let want = Error::UnalignedIova {
            iova: y + p,
            pgsize: block,
        };
        b.unmap_refused(y + p, block, 1, want);
    }
    if let Some(run) = run {
        let want = Error::UnalignedIova {
            iova: e + p,
            pgsize: run,
        };
        b.map_refused(e + p, epa, run, 1, RW, want);
    }

    // --- UnalignedPaddr.
    b.map_refused(
        e,
        p / 2,
        p,
        1,
        RW,
        Error::UnalignedPaddr {
            paddr: p / 2,
            pgsize: p,
        },
    );
    b.map_refused(
        e,
        epa + 1,
        p,
        3,
        RW,
        Error::UnalignedPaddr {
            paddr: epa + 1,
            pgsize: p,
        },
    );
    for big in [block, run].into_iter().flatten() {
        let want = Error::UnalignedPaddr {
            paddr: epa + p,
            pgsize: big,
        };
        b.map_refused(e, epa + p, big, 1, RW, want);
    }

    // --- Overflow: pgsize * pgcount; iova + len; paddr + len.
    if p.checked_mul(usize::MAX as u64).is_none() {
        b.map_refused(e, epa, p, usize::MAX, RW, Error::Overflow);
        b.unmap_refused(x, p, usize::MAX, Error::Overflow);
    }
    let over = (u64::MAX / max + 1) as usize;
    b.map_refused(s, 0, max, over, RW, Error::Overflow);
    b.unmap_refused(s, max, over, Error::Overflow);
    let top = u64::MAX - (p - 1);
    b.map_refused(top, 0, p, 2, RW, Error::Overflow);
    b.unmap_refused(top, p, 2, Error::Overflow);
    b.map_refused(e, top, p, 2, RW, Error::Overflow);
    // unmap_range: a valid start whose end runs past 2^64.
    b.unmap_range_refused(x, u64::MAX - (p - 1), Error::Overflow);

    // --- OutOfAperture: past either end of each range (the hole of a sign-extended
    // table, the low half for TTBR1), and straddling an end.
    for (rs, rl) in ranges(&info) {
        let mut cases = Vec::new();
        if rl != u64::MAX {
            cases.push((rl + 1, 1)); // just past the end
            cases.push((rl - (p - 1), 2)); // straddling the end
            cases.push((rl + 1 + 4 * p, 3)); // further out
        }
        if rs != 0 {
            cases.push((rs - p, 1)); // just below the start
            cases.push((rs - p, 2)); // straddling the start
        }
        for (iova, count) in cases {
            let last = iova + (p * count - 1);
            let want = Error::OutOfAperture { iova, last };
            b.map_refused(iova, 0, p, count as usize, RW, want);
            b.unmap_refused(iova, p, count as usize, want);
            // (unmap_range from outside with more than one page reports the wrong
            // `last`: see the engine report; only the cases it gets right are here.)
            if count == 1 || info.aperture.contains(iova, iova) {
                b.unmap_range_refused(iova, p * count, want);
            }
        }
    }
    if let Some((us, _)) = info.aperture.upper {
        // From the lower half across the whole hole into the upper half.
        let iova = l - (p - 1);
        let count = (us - l - 1) / p + 2;
        let want = Error::OutOfAperture {
            iova,
            last: us + (p - 1),
        };
        b.map_refused(iova, 0, p, count as usize, RW, want);
        b.unmap_refused(iova, p, count as usize, want);
        b.unmap_range_refused(iova, count * p, want);
        // The middle of the hole.
        let mid = 1u64 << 63;
        let want = Error::OutOfAperture {
            iova: mid,
            last: mid + (p - 1),
        };
        b.map_refused(mid, 0, p, 1, RW, want);
        b.unmap_refused(mid, p, 1, want);
    }
    if !info.aperture.contains(0, 0) {
        let want = Error::OutOfAperture {
            iova: 0,
            last: p - 1,
        };
        b.map_refused(0, 0, p, 1, RW, want);
        b.unmap_refused(0, p, 1, want);
        b.unmap_range_refused(0, p, want);
    }
    // unmap_range starting inside but ending outside.
    let rl = ranges(&info)[0].1;
    if rl != u64::MAX {
        let len = rl - x + 1 + p;
        let want = Error::OutOfAperture {
            iova: x,
            last: rl + p,
        };
        b.unmap_range_refused(x, len, want);
    }

    // --- PaddrTooLarge: start or end beyond the output address size.
    let oa = info.oa_bits;
    let lim = 1u64 << oa;
    for (pa, count) in [(lim, 1), (lim - p, 2), (1 << 63, 1), (lim - p, 1 << 20)] {
        let last = pa + (p * count - 1);
        let want = Error::PaddrTooLarge { last, oa_bits: oa };
        if p * count - 1 > l - e {
            // The IOVA range would not fit: that is checked first.
            continue;
        }
        b.map_refused(e, pa, p, count as usize, RW, want);
    }
    if let Some(block) = block {
        let pa = lim - block;
        let want = Error::PaddrTooLarge {
            last: lim + (block - 1),
            oa_bits: oa,
        };
        b.map_refused(e, pa, block, 2, RW, want);
    }

    // --- AddressInUse, nothing mapped: the conflict is in the first page.
    b.map_refused(x, epa, p, 1, RW, Error::AddressInUse(x));
    b.map_refused(x, pa_of(&info, x), p, 3, Prot::READ, Error::AddressInUse(x));
    // A larger page over the lone page: the conflict is the slot holding it. (Sizes
    // that would first have to grow a dynamic top are left to a separate test.)
    let cur_last = s + mask(f.va_bits(info.levels - 1));
    for &big in all.iter().filter(|&&z| z > p) {
        let base = x & !(big - 1);
        let lvl = leaf_level(f, big);
        if base + (big - 1) > cur_last.min(l) || lvl >= info.levels {
            continue;
        }
        let slot = x & !mask(f.item_lg2(lvl));
        b.map_refused(
            base,
            pa_of(&info, base),
            big,
            1,
            RW,
            Error::AddressInUse(slot),
        );
    }
    if let Some(block) = block {
        // Pages, runs and blocks inside or over a block.
        b.map_refused(y + p, epa, p, 1, RW, Error::AddressInUse(y + p));
        b.map_refused(
            y + block - p,
            epa,
            p,
            1,
            RW,
            Error::AddressInUse(y + block - p),
        );
        b.map_refused(y, epa, block, 1, RW, Error::AddressInUse(y));
        if let Some(run) = run {
            b.map_refused(y + run, epa, run, 1, RW, Error::AddressInUse(y + run));
        }
    }
    if let Some(run) = run {
        // A page inside a run; a run over a run; a run over a page in its last slot.
        let last_page = z + run - p;
        b.map_refused(last_page, epa, p, 1, RW, Error::AddressInUse(last_page));
        b.map_refused(z, epa, run, 1, RW, Error::AddressInUse(z));
        b.map_refused(z2, epa, run, 1, RW, Error::AddressInUse(z2 + run - p));
    }

    // --- WouldSplit: an unmap starting inside a block or a run changes nothing.
    if let Some(block) = block {
        let want = Error::WouldSplit {
            base: y,
            size: block,
        };
        b.unmap_refused(y + p, p, 1, want);
        b.unmap_refused(y + block - p, p, 1, want);
        b.unmap_refused(y + p, p, (block / p) as usize, want);
        b.unmap_range_refused(y + p, block, want);
        b.unmap_range_refused(y + block / 2, p, want);
    }
    if let Some(run) = run {
        let want = Error::WouldSplit { base: z, size: run };
        b.unmap_refused(z + p, p, 1, want);
        b.unmap_refused(z + run - p, p, 3, want);
        b.unmap_refused(
            z + run - p,
            run,
            1,
            Error::UnalignedIova {
                iova: z + run - p,
                pgsize: run,
            },
        );
        b.unmap_range_refused(z + p, p, want);
    }

    // --- NotMapped: the range starts on a hole.
    b.unmap_refused(e, p, 1, Error::NotMapped(e));
    b.unmap_refused(e, p, 16, Error::NotMapped(e));
    b.unmap_refused(x + p, p, 1, Error::NotMapped(x + p));
    b.unmap_refused(x - p, p, 2, Error::NotMapped(x - p));
    if let Some(block) = block {
        b.unmap_refused(e, block, 1, Error::NotMapped(e));
    }
    for (rs, rl) in ranges(&info) {
        b.unmap_refused(rl - (p - 1), p, 1, Error::NotMapped(rl - (p - 1)));
        if rs != s {
            b.unmap_refused(rs, p, 1, Error::NotMapped(rs));
        }
    }
    if info.levels < info.max_levels {
        // Above the current top of a growing table.
        let above = 1u64 << f.va_bits(info.levels - 1);
        b.unmap_refused(above, p, 1, Error::NotMapped(above));
    }
    // unmap_range skips holes: an empty range is not an error, and changes nothing.
    let before = mem.image();
    let mut g = Gather::new();
    assert_eq!(unmap_range(&b.pt, e, 16 * p, &mut g), (0, Ok(())), "{name}");
    assert!(g.is_empty() && ArenaMemory::same_image(&before, &mem.image()));

    // Everything mapped at the start is still there.
    b.mapped_at(x, x, p);
    if let Some(block) = block {
        b.mapped_at(y + p, y, block);
    }
    if let Some(run) = run {
        b.mapped_at(z + p, z, run);
        b.mapped_at(z2 + run - p, z2 + run - p, p);
    }

    // --- Errors after progress, reported exactly.
    let mut g = Gather::new();
    // Map: the first page is free, the second is the lone page.
    let (n, r) = map(&b.pt, x - p, pa_of(&info, x - p), p, 3, RW);
    assert_eq!(
        (n, r),
        (p, Err(Error::AddressInUse(x))),
        "{name}: map into X"
    );
    b.mapped_at(x - p, x - p, p);
    assert_eq!(tr(&b.pt, x + p), None, "{name}: nothing after the conflict");
    // Unmap: stops at the first hole, after removing what came before it.
    assert_eq!(
        unmap(&b.pt, x - p, p, 3, &mut g),
        (2 * p, Err(Error::NotMapped(x + p))),
        "{name}: unmap into a hole"
    );
    b.pt.sync(&mut g);
    assert_eq!(tr(&b.pt, x - p), None, "{name}");
    assert_eq!(tr(&b.pt, x), None, "{name}");
    if let Some(block) = block {
        // An unmap that ends inside a block removes all of it (and says so).
        assert_eq!(
            unmap(&b.pt, y, p, 1, &mut g),
            (block, Ok(())),
            "{name}: unmap the start of a block"
        );
        b.pt.sync(&mut g);
        assert_eq!(tr(&b.pt, y + block - 1), None, "{name}");
    }
}
common::config_tests!(catalogue, catalogue);

/// Output address for the partial maps: aligned to every block size used, below 4 GiB.
const PA: u64 = 0x4000_0000;

/// A map that builds new tables for its first pages and then meets an existing block
/// reports exactly the pages it mapped; the new tables stay linked (they hold those
/// pages) and the block is untouched.
fn partial_map_after_new_tables<F: Format>(name: &'static str, fmt: F) {
    let mem = ArenaMemory::new(ARENA_BASE, ARENA_BYTES);
    let pt = PageTable::new(fmt, &mem, NoFlush).unwrap();
    let info = pt.info();
    let f = pt.format();
    if info.levels < 2 {
        return;
    }
    let all = sizes(&info);
    let p = all[0];
    let Some(block) = all.iter().copied().find(|&z| leaf_level(f, z) > 0) else {
        return;
    };
    let top = info.levels - 1;
    // The block sits at index 1 of the top table; the pages before it go through index
    // 0, where every table below the top is new.
    let s = info.aperture.start;
    let y = s + (1u64 << f.item_lg2(top)).max(block);
    let b = Bench {
        name,
        pt,
        mem: &mem,
    };
    b.map_ok(y, block);
    let pages = mem.stats().pages;
    let new_tables = u64::from(top);
    for k in 1..=3u64 {
        let start = y - k * p;
        let (n, r) = map(&b.pt, start, PA, p, k as usize + 2, RW);
        assert_eq!(
            (n, r),
            (k * p, Err(Error::AddressInUse(y))),
            "{name}: {k} pages before the block"
        );
        assert_eq!(
            mem.stats().pages,
            pages + new_tables,
            "{name}: tables built for the mapped pages stay"
        );
        for i in 0..k {
            let t = tr(&b.pt, start + i * p).expect("mapped");
            assert_eq!((t.pa, t.size), (PA + i * p, p), "{name}: page {i}");
        }
        b.mapped_at(y, y, block);
        let mut g = Gather::new();
        assert_eq!(unmap(&b.pt, start, p, k as usize, &mut g), (k * p, Ok(())));
        b.pt.sync(&mut g);
    }
    // The same with a first page that needs no table below the block's level: a block
    // right before the block.
    if y - block >= s {
        let (n, r) = map(&b.pt, y - block, PA, block, 2, RW);
        assert_eq!((n, r), (block, Err(Error::AddressInUse(y))), "{name}");
        let t = tr(&b.pt, y - 1).expect("mapped");
        assert_eq!(
            (t.pa, t.iova_base, t.size),
            (PA + block - 1, y - block, block)
        );
    }
}
common::config_tests!(partial_map_after_new_tables, partial_map_after_new_tables);

// ---------------------------------------------------------------------------------------
// Out of memory
// ---------------------------------------------------------------------------------------

/// Flush operations that record top changes.
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

/// Takes every free block of an arena, `first_lg2`-sized ones first.
fn exhaust(mem: &ArenaMemory, first_lg2: u32) -> Vec<(NonNull<u8>, u32)> {
    let mut held = Vec::new();
    for lg2 in std::iter::once(first_lg2).chain((6..=20).rev()) {
        while let Some(t) = mem.alloc(lg2) {
            held.push((t, lg2));
        }
    }
    held
}

/// Gives back the last held block of `lg2` bytes.
fn give_back(mem: &ArenaMemory, held: &mut Vec<(NonNull<u8>, u32)>, lg2: u32) {
    let i = held
        .iter()
        .rposition(|&(_, l)| l == lg2)
        .expect("a held block of that size");
    let (t, l) = held.remove(i);
    // SAFETY: `t` came from `mem.alloc(l)` and was never used or freed.
    unsafe { mem.free(t, l) };
}

/// Bytes (log2) of a table below the top.
fn inner_table_lg2<F: Format>(f: &F) -> u32 {
    (f.table_lg2(0) + F::ENTRY_LG2).max(f.min_table_bytes_lg2())
}

/// With no memory left, a map that needs a table fails with OutOfMemory and changes
/// nothing; with memory for all but the last table it needs, the same, and the tables
/// it did get are given back; with enough memory it then succeeds.
fn out_of_memory<F: Format>(name: &'static str, fmt: F) {
    let mem = ArenaMemory::new(ARENA_BASE, 2 << 20);
    let rec = Recorder::default();
    let pt = PageTable::new(fmt, &mem, &rec).unwrap();
    let info = pt.info();
    let f = pt.format();
    let p = sizes(&info)[0];
    let inner = inner_table_lg2(f);
    // An IOVA whose page needs every table below the top (or, for a one-level table
    // that can grow, a new top).
    let iova = if info.levels > 1 {
        info.aperture.start
    } else {
        1u64 << f.va_bits(0)
    };
    // Tables the map needs: one per level below the top, plus growth.
    let needed = if info.levels > 1 {
        u64::from(info.levels - 1)
    } else {
        // Growing one level: the new top, and the level-0 table at its index 1.
        2
    };
    let pa = pa_of(&info, iova);
    let b = Bench {
        name,
        pt,
        mem: &mem,
    };
    let mut held = exhaust(&mem, inner);
    b.map_refused(iova, pa, p, 1, RW, Error::OutOfMemory);
    b.map_refused(iova, pa, p, 4, RW, Error::OutOfMemory);
    for _ in 1..needed {
        give_back(&mem, &mut held, inner);
        b.map_refused(iova, pa, p, 1, RW, Error::OutOfMemory);
    }
    assert!(rec.tops.lock().unwrap().is_empty(), "{name}: no top change");
    give_back(&mem, &mut held, inner);
    let pages = mem.stats().pages;
    assert_eq!(map(&b.pt, iova, pa, p, 1, RW), (p, Ok(())), "{name}");
    assert_eq!(mem.stats().pages, pages + needed, "{name}: tables used");
    b.mapped_at(iova, iova, p);
    assert_eq!(b.pt.info().levels, info.levels.max(2), "{name}");
    // A new top was reported only when the table grew.
    assert_eq!(
        rec.tops.lock().unwrap().len(),
        usize::from(info.levels == 1),
        "{name}"
    );
    for (t, l) in held {
        // SAFETY: from `mem.alloc(l)`, never used, freed once.
        unsafe { mem.free(t, l) };
    }
}
common::config_tests!(out_of_memory, out_of_memory);

/// A 64 KiB top table that fills the arena exactly: the first map needing another
/// table fails cleanly; a block in the top table itself needs none.
#[test]
fn out_of_memory_with_only_the_top_table() {
    let mem = ArenaMemory::new(ARENA_BASE, 64 << 10);
    let f = ArmLpae::new(arm(Stage::S1, Granule::K64, 42, 44)).unwrap();
    let pt = PageTable::new(f, &mem, NoFlush).unwrap();
    assert_eq!((mem.stats().pages, mem.stats().bytes), (1, 64 << 10));
    let b = Bench {
        name: "arm-s1-64k-42",
        pt,
        mem: &mem,
    };
    b.map_refused(0, 0, 64 << 10, 1, RW, Error::OutOfMemory);
    b.map_refused(1 << 29, 0, 2 << 20, 3, RW, Error::OutOfMemory);
    b.map_ok(1 << 29, 1 << 29);
    b.mapped_at((1 << 29) + 12345, 1 << 29, 1 << 29);
    b.map_refused(1 << 30, 0, 64 << 10, 1, Prot::READ, Error::OutOfMemory);
}

/// Growing a dynamic top by several levels, with memory for all but the last new table:
/// nothing is published, everything is given back.
#[test]
fn out_of_memory_while_growing() {
    let mem = ArenaMemory::new(ARENA_BASE, 1 << 20);
    let rec = Recorder::default();
    let pt = PageTable::new(amd(1, 6, true, 52), &mem, &rec).unwrap();
    let b = Bench {
        name: "amdv1-from-1",
        pt,
        mem: &mem,
    };
    // 1 GiB needs three levels: two new tops, then at index 1 of the level-2 top a
    // level-1 and a level-0 table: four tables.
    let iova = 1u64 << 30;
    let mut held = exhaust(&mem, 12);
    for _ in 0..4 {
        b.map_refused(iova, 0, K4, 1, RW, Error::OutOfMemory);
        give_back(&mem, &mut held, 12);
    }
    assert!(rec.tops.lock().unwrap().is_empty());
    assert_eq!(b.pt.info().levels, 1);
    assert_eq!(map(&b.pt, iova, 0, K4, 1, RW), (K4, Ok(())));
    let info = b.pt.info();
    assert_eq!(info.levels, 3);
    assert_eq!(*rec.tops.lock().unwrap(), vec![(info.root_pa, 3)]);
    for (t, l) in held {
        // SAFETY: from `mem.alloc(l)`, never used, freed once.
        unsafe { mem.free(t, l) };
    }
}

/// A range across the current top of a growing table, with no memory to grow: the part
/// below the top is mapped (it needs no new table) and reported; the rest fails.
#[test]
fn out_of_memory_while_growing_after_progress() {
    let mem = ArenaMemory::new(ARENA_BASE, 1 << 20);
    let rec = Recorder::default();
    let pt = PageTable::new(amd(1, 6, true, 52), &mem, &rec).unwrap();
    let top = 2u64 << 20; // a one-level table ends at 2 MiB
    let held = exhaust(&mem, 12);
    let start = top - 2 * K4;
    assert_eq!(
        map(&pt, start, 0x10_0000, K4, 4, RW),
        (2 * K4, Err(Error::OutOfMemory))
    );
    assert_eq!(pt.info().levels, 1);
    assert!(rec.tops.lock().unwrap().is_empty());
    for i in 0..2 {
        let t = tr(&pt, start + i * K4).expect("mapped below the top");
        assert_eq!((t.pa, t.size), (0x10_0000 + i * K4, K4));
    }
    assert_eq!(tr(&pt, top), None);
    for (t, l) in held {
        // SAFETY: from `mem.alloc(l)`, never used, freed once.
        unsafe { mem.free(t, l) };
    }
}

// ---------------------------------------------------------------------------------------
// Tables out of the format's reach
// ---------------------------------------------------------------------------------------

/// The memory hands out a table at 4 GiB during a map: refused, nothing changes.
fn reach_during_map<F: Format>(name: &'static str, fmt: F) {
    let mem = ArenaMemory::new(G4 - (64 << 10), 128 << 10);
    let pt = PageTable::new(fmt, &mem, NoFlush).unwrap_or_else(|e| panic!("{name}: {e}"));
    let inner = inner_table_lg2(pt.format());
    // Take blocks until one lies at 4 GiB, then give that one back: it is next.
    let mut held = Vec::new();
    loop {
        let t = mem.alloc(inner).expect("arena reaches 4 GiB");
        if mem.virt_to_phys(t) >= G4 {
            // SAFETY: just allocated, never used.
            unsafe { mem.free(t, inner) };
            break;
        }
        held.push(t);
    }
    let info = pt.info();
    let p = sizes(&info)[0];
    let b = Bench {
        name,
        pt,
        mem: &mem,
    };
    let want = Error::TableOutOfReach { pa: G4, bits: 32 };
    b.map_refused(info.aperture.start, 0, p, 1, RW, want);
    b.map_refused(info.aperture.start + 4 * p, 0x1000_0000, p, 8, RW, want);
    for t in held {
        // SAFETY: from `mem.alloc(inner)`, never used, freed once.
        unsafe { mem.free(t, inner) };
    }
    b.map_ok(info.aperture.start, p);
}

#[test]
fn table_out_of_reach_during_map() {
    reach_during_map(
        "arm-s1-4k-32",
        ArmLpae::new(arm(Stage::S1, Granule::K4, 32, 32)).unwrap(),
    );
    reach_during_map("amdv1-fixed-3-oa32", amd(3, 3, false, 32));
    reach_during_map("x86-64-oa32", x86(4, true, 32));
    reach_during_map("armv7s", ArmV7s::new(ArmV7sConfig::default()).unwrap());
    reach_during_map("riscv-oa32", Riscv::new(riscv(3, 32)).unwrap());
}

// ---------------------------------------------------------------------------------------
// Configurations that cannot be built
// ---------------------------------------------------------------------------------------

#[test]
fn bad_config_arm_lpae() {
    let bad = |c: ArmLpaeConfig, msg: &'static str| {
        assert_eq!(ArmLpae::new(c), Err(Error::BadConfig(msg)), "{c:?}");
    };
    use Granule::*;
    use Stage::*;
    bad(arm(S1, K4, 31, 48), "ias must be 32..=48");
    bad(arm(S1, K4, 49, 48), "ias must be 32..=48");
    bad(arm(S1, K4, 48, 31), "oas must be 32..=48");
    bad(arm(S1, K4, 48, 53), "oas must be 32..=48");
    bad(
        arm(S1, K64, 48, 52),
        "oas 52 needs the 52-bit format ArmLpae52 (64K granule only); ArmLpae stores at \
         most 48 output-address bits",
    );
    let ps = "oas must be 32, 36, 40, 42, 44 or 48 (the TCR.IPS / VTCR.PS encodings)";
    bad(arm(S1, K4, 48, 38), ps);
    bad(arm(S2, K16, 40, 33), ps);
    bad(
        ArmLpaeConfig {
            ttbr1: true,
            ..arm(S2, K4, 48, 48)
        },
        "ttbr1 is a stage 1 option",
    );
    bad(
        ArmLpaeConfig {
            ns: true,
            ..arm(S2, K4, 48, 48)
        },
        "ns is a stage 1 option",
    );
    let concat = "stage 2 start level is not allowed for this granule and oas, and \
                  concatenating would need more than 16 tables (reduce ias or raise oas)";
    // 4K from level 0 needs oas >= 44; 48 bits would need 512 concatenated tables.
    bad(arm(S2, K4, 48, 40), concat);
    // 64K from level 1 needs oas > 42; 48 bits would need 64 tables.
    bad(arm(S2, K64, 48, 42), concat);
    // The same stage-2 geometry is fine with a larger oas.
    assert!(ArmLpae::new(arm(S2, K4, 48, 44)).is_ok());
    assert!(ArmLpae::new(arm(S2, K64, 48, 44)).is_ok());
}

#[test]
fn bad_config_amdv1() {
    let bad = |c: AmdV1Config, msg: &'static str| {
        assert_eq!(AmdV1::new(c), Err(Error::BadConfig(msg)), "{c:?}");
    };
    let d = AmdV1Config::default();
    bad(AmdV1Config { levels: 0, ..d }, "levels must be 1..=6");
    bad(
        AmdV1Config {
            levels: 7,
            max_levels: 7,
            ..d
        },
        "levels must be 1..=6",
    );
    bad(
        AmdV1Config { max_levels: 0, ..d },
        "max_levels must be 1..=6",
    );
    bad(
        AmdV1Config { max_levels: 7, ..d },
        "max_levels must be 1..=6",
    );
    bad(
        AmdV1Config {
            levels: 4,
            max_levels: 3,
            ..d
        },
        "max_levels must be >= levels",
    );
    bad(
        AmdV1Config {
            levels: 3,
            max_levels: 6,
            dynamic_top: false,
            ..d
        },
        "max_levels must equal levels when dynamic_top is false",
    );
    bad(AmdV1Config { oa_bits: 31, ..d }, "oa_bits must be 32..=52");
    bad(AmdV1Config { oa_bits: 53, ..d }, "oa_bits must be 32..=52");
    let sme = "sme_c_bit must be oa_bits..=51";
    bad(
        AmdV1Config {
            oa_bits: 48,
            sme_c_bit: Some(47),
            ..d
        },
        sme,
    );
    bad(
        AmdV1Config {
            sme_c_bit: Some(52),
            ..d
        },
        sme,
    );
}

#[test]
fn bad_config_x86_64() {
    let bad = |c: X86_64Config, msg: &'static str| {
        assert_eq!(X86_64::new(c), Err(Error::BadConfig(msg)), "{c:?}");
    };
    let d = X86_64Config::default();
    bad(X86_64Config { levels: 3, ..d }, "levels must be 4 or 5");
    bad(X86_64Config { levels: 6, ..d }, "levels must be 4 or 5");
    bad(X86_64Config { oa_bits: 31, ..d }, "oa_bits must be 32..=52");
    bad(X86_64Config { oa_bits: 53, ..d }, "oa_bits must be 32..=52");
    let sme = "sme_c_bit must be oa_bits..=51";
    bad(
        X86_64Config {
            oa_bits: 46,
            sme_c_bit: Some(40),
            ..d
        },
        sme,
    );
    bad(
        X86_64Config {
            sme_c_bit: Some(63),
            ..d
        },
        sme,
    );
}

#[test]
fn bad_config_vtdss() {
    let bad = |c: VtdSsConfig, msg: &'static str| {
        assert_eq!(VtdSs::new(c), Err(Error::BadConfig(msg)), "{c:?}");
    };
    let d = VtdSsConfig::default();
    for levels in [0, 1, 2, 6] {
        bad(VtdSsConfig { levels, ..d }, "levels must be 3, 4 or 5");
    }
    bad(VtdSsConfig { oa_bits: 31, ..d }, "oa_bits must be 32..=52");
    bad(VtdSsConfig { oa_bits: 53, ..d }, "oa_bits must be 32..=52");
}

#[test]
fn bad_config_armv7s() {
    let msg = "oa_bits must be 32 (the MediaTek >32-bit extension is not supported)";
    for oa_bits in [31, 33, 34, 35, 40] {
        let c = ArmV7sConfig {
            oa_bits,
            ..ArmV7sConfig::default()
        };
        assert_eq!(ArmV7s::new(c), Err(Error::BadConfig(msg)), "{oa_bits}");
    }
}

#[test]
fn bad_config_dart() {
    let bad = |c: DartConfig, msg: &'static str| {
        assert_eq!(Dart::new(c), Err(Error::BadConfig(msg)), "{c:?}");
    };
    let v1 = DartConfig::t8103();
    let v2 = DartConfig::t6000();
    bad(
        DartConfig {
            granule: Granule::K64,
            ..v1
        },
        "granule must be 4K or 16K",
    );
    bad(DartConfig { oas: 40, ..v2 }, "oas must be 36 or 42");
    bad(DartConfig { oas: 48, ..v1 }, "oas must be 36 or 42");
    bad(
        DartConfig {
            version: DartVersion::V1,
            ..v2
        },
        "DART v1 oas must be 36 (entries hold address bits 35:12)",
    );
    bad(
        DartConfig {
            granule: Granule::K4,
            ..v2
        },
        "DART v2 needs the 16K granule (entries hold address bits 41:14)",
    );
    bad(
        DartConfig {
            granule: Granule::K4,
            regs: DartRegs::T8110,
            ..v1
        },
        "T8110 registers need the 16K granule (TTBRs hold address bits 43:14)",
    );
    let (ias36, ias42) = (
        "ias must be 32..=oas (oas is 36 here)",
        "ias must be 32..=oas (oas is 42 here)",
    );
    for (c, msg) in [
        (DartConfig { ias: 31, ..v1 }, ias36),
        (DartConfig { ias: 37, ..v1 }, ias36),
        (DartConfig::t8110(43, 42), ias42),
        (DartConfig::t8110(16, 36), ias36),
    ] {
        bad(c, msg);
    }
    for c in [
        DartConfig { ias: 40, ..v2 },
        DartConfig {
            granule: Granule::K4,
            ias: 36,
            ..v1
        },
    ] {
        bad(
            c,
            "T8020 registers have no 4-level mode: ias must be at most 32 (4K) or 36 (16K)",
        );
    }
}

#[test]
fn bad_config_riscv() {
    let bad = |c: RiscvConfig, msg: &'static str| {
        assert_eq!(Riscv::new(c), Err(Error::BadConfig(msg)), "{c:?}");
    };
    for levels in [0, 1, 2, 6, 7] {
        bad(riscv(levels, 56), "levels must be 3, 4 or 5");
    }
    for oa_bits in [0, 31, 57, 64] {
        bad(riscv(4, oa_bits), "oa_bits must be 32..=56");
    }
}

#[test]
fn bad_config_arm_lpae52() {
    let bad = |c: ArmLpaeConfig, msg: &'static str| {
        assert_eq!(ArmLpae52::new(c), Err(Error::BadConfig(msg)), "{c:?}");
    };
    use Granule::*;
    use Stage::*;
    let lpa2 = "oas 52 needs the 64K granule (FEAT_LPA); 52-bit output with the 4K or 16K \
                granule needs FEAT_LPA2, which is not implemented";
    bad(arm(S1, K4, 48, 52), lpa2);
    bad(arm(S2, K16, 48, 52), lpa2);
    bad(
        arm(S1, K64, 48, 48),
        "ArmLpae52 needs oas 52 (use ArmLpae for oas 32..=48)",
    );
    bad(arm(S1, K64, 31, 52), "ias must be 32..=52");
    bad(arm(S2, K64, 53, 52), "ias must be 32..=52");
    bad(
        ArmLpaeConfig {
            ttbr1: true,
            ..arm(S2, K64, 48, 52)
        },
        "ttbr1 is a stage 1 option",
    );
    bad(
        ArmLpaeConfig {
            ns: true,
            ..arm(S2, K64, 48, 52)
        },
        "ns is a stage 1 option",
    );
}

#[test]
fn bad_config_arm32_lpae() {
    let bad = |c: Arm32LpaeConfig, msg: &'static str| {
        assert_eq!(Arm32Lpae::new(c), Err(Error::BadConfig(msg)), "{c:?}");
    };
    use Stage::*;
    let s1 = "ias must be 25..=32 at stage 1 (TTBCR.T0SZ 0..=7)";
    bad(arm32(S1, 24, 40), s1);
    bad(arm32(S1, 33, 40), s1);
    let s2 = "ias must be 25..=40 at stage 2 (VTCR.T0SZ -8..=7)";
    bad(arm32(S2, 24, 40), s2);
    bad(arm32(S2, 41, 40), s2);
    let oas = "oas must be 32, 36 or 40 (LPAE output addresses are at most 40 bits)";
    bad(arm32(S1, 32, 48), oas);
    bad(arm32(S2, 40, 34), oas);
    bad(
        Arm32LpaeConfig {
            ns: true,
            ..arm32(S2, 40, 40)
        },
        "ns is a stage 1 option",
    );
}

#[test]
fn bad_config_mali() {
    for oas in [31, 41, 48] {
        let c = MaliLpaeConfig {
            oas,
            ..MaliLpaeConfig::default()
        };
        assert_eq!(
            MaliLpae::new(c),
            Err(Error::BadConfig("oas must be 32..=40")),
            "{c:?}"
        );
    }
}

/// A format that lies about its geometry, to reach the engine's own refusals.
struct Odd<F> {
    inner: F,
    levels: u32,
    max_levels: u32,
    /// Overrides the level-0 table size and drops the minimum table size.
    table0_lg2: Option<u32>,
}

impl<F: Format> Format for Odd<F> {
    const NAME: &'static str = "odd";
    const ENTRY_LG2: u32 = F::ENTRY_LG2;
    const MAX_LEVELS: u32 = F::MAX_LEVELS;
    fn levels(&self) -> u32 {
        self.levels
    }
    fn max_levels(&self) -> u32 {
        self.max_levels
    }
    fn va_bits(&self, top_level: u32) -> u32 {
        self.inner.va_bits(top_level)
    }
    fn va_mode(&self) -> VaMode {
        self.inner.va_mode()
    }
    fn oa_bits(&self) -> u32 {
        self.inner.oa_bits()
    }
    fn item_lg2(&self, level: u32) -> u32 {
        self.inner.item_lg2(level)
    }
    fn table_lg2(&self, level: u32) -> u32 {
        match self.table0_lg2 {
            Some(t) if level == 0 => t,
            _ => self.inner.table_lg2(level),
        }
    }
    fn min_table_bytes_lg2(&self) -> u32 {
        if self.table0_lg2.is_some() {
            6
        } else {
            self.inner.min_table_bytes_lg2()
        }
    }
    fn leaf_runs(&self, level: u32) -> u32 {
        self.inner.leaf_runs(level)
    }
    fn decode(&self, level: u32, pte: u64) -> Pte {
        self.inner.decode(level, pte)
    }
    fn leaf_prot(&self, level: u32, pte: u64) -> Prot {
        self.inner.leaf_prot(level, pte)
    }
    fn make_table(&self, level: u32, table_pa: u64) -> u64 {
        self.inner.make_table(level, table_pa)
    }
    fn make_leaf(&self, level: u32, pa: u64, run_lg2: u32, prot: Prot) -> u64 {
        self.inner.make_leaf(level, pa, run_lg2, prot)
    }
    fn run_step(&self, level: u32, run_lg2: u32) -> u64 {
        self.inner.run_step(level, run_lg2)
    }
    fn hw_words(&self, root_pa: u64, top_level: u32) -> HwWords {
        self.inner.hw_words(root_pa, top_level)
    }
}

/// The engine refuses a format whose level counts or growing-top table sizes are
/// inconsistent, before allocating anything.
#[test]
fn bad_config_engine() {
    let levels_msg = "levels out of range for the format";
    let grow_msg = "a growing top needs top tables sized like inner tables";
    let cases = [
        (0, 0, None, levels_msg),
        (0, 6, None, levels_msg),
        (7, 7, None, levels_msg),
        (4, 3, None, levels_msg),
        // Growing from one level, with 256-entry level-0 tables but a 512-entry top.
        (1, 2, Some(8), grow_msg),
    ];
    for (levels, max_levels, table0_lg2, msg) in cases {
        let mem = ArenaMemory::new(ARENA_BASE, 1 << 20);
        let f = Odd {
            inner: amd(1, 6, true, 52),
            levels,
            max_levels,
            table0_lg2,
        };
        assert_eq!(
            PageTable::new(f, &mem, NoFlush).map(|_| ()),
            Err(Error::BadConfig(msg)),
            "{levels} {max_levels} {table0_lg2:?}"
        );
        assert_eq!(mem.stats().pages, 0);
    }
    // The same wrapper with honest numbers builds.
    let mem = ArenaMemory::new(ARENA_BASE, 1 << 20);
    let f = Odd {
        inner: amd(1, 6, true, 52),
        levels: 1,
        max_levels: 6,
        table0_lg2: None,
    };
    assert!(PageTable::new(f, &mem, NoFlush).is_ok());
}
