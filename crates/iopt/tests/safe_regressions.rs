//! Regressions for the safe layers' map planning: maps in the upper half of a sign-extended
//! table, and reservations for maps whose pieces share new tables (found by review).

use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::HeapMemory;
use iopt::{NoFlush, Prot, SharedTable, Table};

const RW: Prot = Prot::READ.union(Prot::WRITE);

/// Was a bug: `plan_map` (used by `Table::map`) treats the upper half of a sign-extended
/// aperture as lying above the top: `part_last = last.min(ap.last)` with `ap.last` the
/// LOWER half's end, so plan_level gets first > last and `count_fresh` underflows
/// (debug: panic "attempt to subtract with overflow" at table/plan.rs:61; release: the
/// count wraps to ~2^64 tables, which `reserve_counts` then tries to allocate).
#[test]
fn single_owner_map_in_the_upper_half_x86_64() {
    let mut t = Table::new(
        X86_64::new(X86_64Config::default()).unwrap(),
        HeapMemory::new(),
        NoFlush,
    )
    .unwrap();
    assert_eq!(
        t.map(0xffff_8000_0000_0000, 0x8000_0000, 0x1000, RW),
        Ok(())
    );
    assert_eq!(
        t.map(0xffff_ffff_ffe0_0000, 0x8020_0000, 0x20_0000, RW),
        Ok(())
    );
    assert_eq!(t.translate(u64::MAX).map(|tr| tr.pa), Some(0x803f_ffff));
}

/// The same through a guard of the concurrent handle (it plans with `plan_map` too).
#[test]
fn guard_map_in_the_upper_half_x86_64() {
    let t = SharedTable::new(
        X86_64::new(X86_64Config::default()).unwrap(),
        HeapMemory::new(),
        NoFlush,
    )
    .unwrap();
    let mut g = t.lock(0xffff_8000_0000_0000, 1 << 47).unwrap();
    assert_eq!(
        g.map(0xffff_ffff_ffe0_0000, 0x8020_0000, 0x20_0000, RW),
        Ok(())
    );
}

/// Was a bug: `Table::map_reserved` refuses (ReservationExhausted) a map whose reservation
/// was made by `reserve(&[(iova, len)])` for exactly that map, whenever its pieces share
/// a new table: the pre-check sums `plan_map` counts piece by piece, each against the
/// table as it is before the map, so a table two pieces share is counted twice, while
/// `worst_case_tables` (what `reserve` allocates) counts it once.
#[test]
fn single_owner_map_reserved_two_pieces_share_a_table_arm64() {
    let mut t = Table::new(
        ArmLpae::new(ArmLpaeConfig::default()).unwrap(),
        HeapMemory::new(),
        NoFlush,
    )
    .unwrap();
    // 4 KiB, then two 64 KiB runs: all in one new level-0 table (and one new level-1).
    let (iova, len) = (0x4020_f000u64, 0x2_1000u64);
    let mut r = t.reserve(&[(iova, len)]).unwrap();
    let res = t.map_reserved(iova, 0x8020_f000, len, Prot::READ, &mut r);
    t.release(r);
    assert_eq!(res, Ok(()));
}

/// Bug 2 with growth: each piece counts the new top levels again.
#[test]
fn single_owner_map_reserved_with_growth_amdv1() {
    let fmt = AmdV1::new(AmdV1Config {
        levels: 1,
        ..AmdV1Config::default()
    })
    .unwrap();
    let mut t = Table::new(fmt, HeapMemory::new(), NoFlush).unwrap();
    let (iova, len) = (5u64 << 30, 0x21_0000u64); // a 2 MiB page, then a 64 KiB one
    let mut r = t.reserve(&[(iova, len)]).unwrap();
    let res = t.map_reserved(iova, 1 << 40, len, Prot::READ, &mut r);
    t.release(r);
    assert_eq!(res, Ok(()));
}

/// The single-page fast path of the safe map must still refuse a reservation made by
/// another table (found by review: it skipped the owner check when every table on the
/// way already existed).
#[test]
fn single_page_map_reserved_checks_the_owner() {
    let fmt = || X86_64::new(X86_64Config::default()).unwrap();
    let mut a = Table::new(fmt(), HeapMemory::new(), NoFlush).unwrap();
    let b = Table::new(fmt(), HeapMemory::new(), NoFlush).unwrap();
    // The tables for 0x1000 exist after this map, so the next one is a single entry.
    a.map(0, 0, 0x1000, RW).unwrap();
    let mut other = b.reserve(&[(0x1000, 0x1000)]).unwrap();
    // (Was a panic; a reservation of another table is now an error, nothing mapped.)
    assert_eq!(
        a.map_reserved(0x1000, 0x1000, 0x1000, RW, &mut other),
        Err(iopt::Error::ForeignReservation)
    );
    assert!(a.translate(0x1000).is_none());
    b.release(other);
}
