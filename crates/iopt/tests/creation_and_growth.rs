//! Failures at table creation, `unmap_range` argument reports, and a refused map on a
//! dynamic-top table: each leaves nothing behind (regressions for bugs found by review).

mod common;

use common::arm;
use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::arm_lpae::{Granule, Stage};
use iopt::fmt::armv7s::{ArmV7s, ArmV7sConfig};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::{ArenaMemory, HeapMemory, TableMemory};
use iopt::{Error, Format, Gather, NoFlush, PageTable, Prot};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const G4: u64 = 1 << 32;
const ARENA_BASE: u64 = 0x4000_0000;

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

fn x86(oa_bits: u32) -> X86_64 {
    X86_64::new(X86_64Config {
        oa_bits,
        ..X86_64Config::default()
    })
    .unwrap()
}

// A failed `new` (top table not allocated) must not touch the table it never built.

/// The top table does not fit the memory: OutOfMemory, nothing left allocated.
#[test]
fn out_of_memory_for_the_top_table() {
    // Sixteen concatenated 64 KiB tables: a 1 MiB top in a 64 KiB arena.
    let mem = ArenaMemory::new(ARENA_BASE, 64 << 10);
    assert_eq!(
        PageTable::new(arm(Stage::S2, Granule::K64, 46, 42), &mem, NoFlush).map(|_| ()),
        Err(Error::OutOfMemory)
    );
    assert_eq!(mem.stats().pages, 0);
}

fn refuses_memory_above_4g<F: Format>(name: &str, fmt: F) {
    let mem = ArenaMemory::new(G4, 1 << 20);
    assert_eq!(
        PageTable::new(fmt, &mem, NoFlush).map(|_| ()),
        Err(Error::TableOutOfReach { pa: G4, bits: 32 }),
        "{name}"
    );
    assert_eq!(mem.stats().pages, 0, "{name}: the table was given back");
}

/// Formats configured for 32-bit addresses cannot point to tables above 4 GiB.
#[test]
fn table_out_of_reach_at_creation() {
    refuses_memory_above_4g("arm-s1-4k-32", arm(Stage::S1, Granule::K4, 32, 32));
    refuses_memory_above_4g("amdv1-oa32", amd(3, 6, true, 32));
    refuses_memory_above_4g("x86-64-oa32", x86(32));
    refuses_memory_above_4g("armv7s", ArmV7s::new(ArmV7sConfig::default()).unwrap());
}

// Every catalogue configuration whose tables or output addresses are 32 bits wide
// (ARMv7s, and the 32-bit output widths) refuses table memory above 4 GiB. (AMD v1 and
// x86-64 with 32-bit output, above, are not catalogue entries.)
common::config_tests!(
    table_out_of_reach_in_the_catalogue,
    common::configs_where(|c| c.any.table_pa_bits().min(c.any.oa_bits()) == 32),
    refuses_memory_above_4g
);

/// ARMv7s on the heap of a 64-bit host: the table is above 4 GiB.
#[cfg(target_pointer_width = "64")]
#[test]
fn armv7s_heap_memory_out_of_reach() {
    let mem = HeapMemory::new();
    match PageTable::new(ArmV7s::new(ArmV7sConfig::default()).unwrap(), &mem, NoFlush) {
        Err(Error::TableOutOfReach { pa, bits }) => {
            assert_eq!(bits, 32);
            assert!(pa + (16 << 10) - 1 > u64::from(u32::MAX), "{pa:#x}");
            assert_eq!(mem.stats().pages, 0, "the table was given back");
        }
        Ok(pt) => assert!(pt.info().root_pa + (16 << 10) - 1 <= u64::from(u32::MAX)),
        Err(e) => panic!("{e}"),
    }
}

// `unmap_range` reports the whole request in OutOfAperture, not just its first page.
#[test]
fn unmap_range_out_of_aperture_reports_the_request() {
    let mem = ArenaMemory::new(ARENA_BASE, 1 << 20);
    let pt = PageTable::new(x86(52), &mem, NoFlush).unwrap();
    let mut g = Gather::new();
    for (iova, len) in [
        (1u64 << 47, 0x3000u64),         // in the hole, three pages
        (0xffff_7fff_ffff_f000, 0x2000), // straddling the upper half's start
        (1 << 63, 1 << 20),              // middle of the hole
    ] {
        // SAFETY: single-threaded; no hardware.
        let got = unsafe { pt.unmap_range(iova, len, &mut g) };
        assert_eq!(
            got,
            (
                0,
                Err(Error::OutOfAperture {
                    iova,
                    last: iova + (len - 1)
                })
            ),
            "unmap_range {iova:#x} + {len:#x}"
        );
    }
}

// A map refused for AddressInUse must not grow a dynamic top (Linux grows first; iopt
// checks the old root before publishing new levels).
#[test]
fn refused_map_does_not_grow_the_top() {
    let mem = ArenaMemory::new(ARENA_BASE, 1 << 20);
    let pt = PageTable::new(amd(1, 6, true, 52), &mem, NoFlush).unwrap();
    // SAFETY: single-threaded; no hardware.
    unsafe {
        assert_eq!(pt.map_pages(8 << 20, 0, 4096, 1, RW), (4096, Ok(())));
        let levels = pt.info().levels;
        let before = mem.image();
        assert_eq!(
            pt.map_pages(0, 0, 1 << 51, 1, RW),
            (0, Err(Error::AddressInUse(0)))
        );
        assert_eq!(pt.info().levels, levels, "levels after a refused map");
        assert!(ArenaMemory::same_image(&before, &mem.image()));
    }
}
