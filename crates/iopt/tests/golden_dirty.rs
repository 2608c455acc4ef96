//! Golden values of the dirty-tracking encodings, worked out by hand from the
//! specifications: ARM VMSAv8-64 descriptors with DBM (bit 51) and AP\[2\] (bit 7) /
//! S2AP\[1\] (bit 7), TCR_EL1.HA/HD (bits 39, 40), VTCR_EL2.HA/HD (bits 21, 22); the
//! x86-64 D bit (bit 6) in PTEs and PS=1 entries. Each value: writable-clean (as a map
//! writes it while tracking is on), dirty (as the hardware leaves it after a write) and
//! cleaned (after `leaf_clean`).

use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig, Granule, Stage};
use iopt::fmt::arm32_lpae::{Arm32Lpae, Arm32LpaeConfig};
use iopt::fmt::mali::{MaliLpae, MaliLpaeConfig};
use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::{Format, Prot};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const DBM: u64 = 1 << 51;

fn arm(stage: Stage, dirty_tracking: bool) -> ArmLpae {
    ArmLpae::new(ArmLpaeConfig {
        stage,
        granule: Granule::K4,
        ias: 48,
        oas: 48,
        dirty_tracking,
        ..ArmLpaeConfig::default()
    })
    .unwrap()
}

/// Stage 1, 4 KiB page at 0x8000_0000, read-write: 0b11 page | AP[1] 0x40 | SH outer
/// 0x200 | AF 0x400 | nG 0x800 = 0xe43; writable-clean adds DBM (bit 51) and AP[2].
#[test]
fn arm64_s1_page() {
    let f = arm(Stage::S1, true);
    assert!(f.tracks_dirty() && f.dirty_fresh_clean());
    let made = f.make_leaf(0, 0x8000_0000, 0, RW);
    assert_eq!(made, 0x8000_0e43, "as without tracking: writable (dirty)");
    assert!(f.leaf_dirty(0, made));
    let clean = f.leaf_clean(0, made);
    assert_eq!(
        clean, 0x0008_0000_8000_0ec3,
        "writable-clean: AP[2] (0x80) set"
    );
    // The hardware clears AP[2] on a write.
    let dirty = clean & !(1 << 7);
    assert_eq!(dirty, 0x0008_0000_8000_0e43);
    assert!(f.leaf_dirty(0, dirty) && !f.leaf_dirty(0, clean));
    assert_eq!(f.leaf_mark_dirty(0, clean), dirty);
    assert_eq!(f.leaf_clean(0, dirty), clean);
    // Writable-clean reads back as writable.
    assert_eq!(f.leaf_prot(0, clean), RW);
    assert_eq!(f.leaf_prot(0, dirty), RW);
    // Read-only: no DBM, never dirty, nothing to clean or mark.
    let ro = f.make_leaf(0, 0x8000_0000, 0, Prot::READ);
    assert_eq!(ro, 0x0000_0000_8000_0ec3);
    assert!(!f.leaf_dirty(0, ro));
    assert_eq!((f.leaf_clean(0, ro), f.leaf_mark_dirty(0, ro)), (ro, ro));
    assert_eq!(f.leaf_prot(0, ro), Prot::READ);
    // Without tracking: no DBM, as before.
    let plain = arm(Stage::S1, false);
    assert!(!plain.tracks_dirty());
    assert_eq!(plain.make_leaf(0, 0x8000_0000, 0, RW), 0x8000_0e43);
    // A DBM read-only leaf found in a table without tracking is read-only.
    assert_eq!(plain.leaf_prot(0, 0x0008_0000_8000_0ec3), Prot::READ);
}

/// Stage 1, 2 MiB block (type 0b01) and a 64 KiB contiguous run (bit 52).
#[test]
fn arm64_s1_block_and_run() {
    let f = arm(Stage::S1, true);
    let block = f.leaf_clean(1, f.make_leaf(1, 0x4020_0000, 0, RW));
    assert_eq!(block, 0x0008_0000_4020_0ec1);
    assert!(!f.leaf_dirty(1, block));
    assert_eq!(f.leaf_mark_dirty(1, block), 0x0008_0000_4020_0e41);
    assert!(f.leaf_dirty(1, 0x0008_0000_4020_0e41));
    let run = f.leaf_clean(0, f.make_leaf(0, 0x4001_0000, 4, RW));
    assert_eq!(run, 0x0018_0000_4001_0ec3);
    assert_eq!(f.leaf_mark_dirty(0, run), 0x0018_0000_4001_0e43);
}

/// Stage 2, 4 KiB page: 0b11 | MemAttr NC 0x5 << 2 | S2AP read 0x40, write 0x80 |
/// SH outer 0x200 | AF 0x400 = 0x6d7; writable-clean: DBM, S2AP[1] clear.
#[test]
fn arm64_s2_page() {
    let f = arm(Stage::S2, true);
    let made = f.make_leaf(0, 0x8000_0000, 0, RW);
    assert_eq!(made, 0x8000_06d7, "as without tracking: writable (dirty)");
    let clean = f.leaf_clean(0, made);
    assert_eq!(
        clean, 0x0008_0000_8000_0657,
        "writable-clean: S2AP[1] clear"
    );
    // The hardware sets S2AP[1] on a write.
    let dirty = clean | (1 << 7);
    assert_eq!(dirty, DBM | made);
    assert_eq!(f.leaf_clean(0, dirty), clean);
    assert!(f.leaf_dirty(0, dirty) && !f.leaf_dirty(0, clean));
    assert_eq!(f.leaf_mark_dirty(0, clean), dirty);
    assert_eq!(f.leaf_prot(0, clean), RW);
    // Read-only stage 2: no DBM.
    let ro = f.make_leaf(0, 0x8000_0000, 0, Prot::READ);
    assert_eq!(ro, 0x8000_0657);
    assert_eq!(f.leaf_prot(0, ro), Prot::READ);
    assert!(!f.leaf_dirty(0, ro));
    // Write-only (S2AP 0b10) is writable with DBM too.
    let wo = f.make_leaf(0, 0x8000_0000, 0, Prot::WRITE);
    assert_eq!(wo, 0x8000_0697);
    assert_eq!(f.leaf_clean(0, wo), DBM | 0x8000_0617);
}

/// TCR.HA (bit 39) and TCR.HD (bit 40) at stage 1, VTCR.HA (21) and VTCR.HD (22) at
/// stage 2, only when tracking is on.
#[test]
fn arm64_hw_words() {
    let root = 0x8000_0000;
    let f = arm(Stage::S1, true);
    // The default stage-1 TCR (golden_arm_lpae) plus HA and HD.
    assert_eq!(f.hw_words(root, 3).get("TCR"), Some(0x0000_0185_0080_3510));
    assert_eq!(
        f.hw_words_tracking(root, 3, false).get("TCR"),
        Some(0x0000_0005_0080_3510)
    );
    assert_eq!(
        arm(Stage::S1, false)
            .hw_words_tracking(root, 3, true)
            .get("TCR"),
        Some(0x0000_0005_0080_3510),
        "no HA/HD without tracking configured"
    );
    let s2 = arm(Stage::S2, true);
    // The default stage-2 VTCR of ias 48 (0x8005_3590) plus HA and HD (0x60_0000).
    assert_eq!(s2.hw_words(root, 3).get("VTCR"), Some(0x8065_3590));
    assert_eq!(
        s2.hw_words_tracking(root, 3, false).get("VTCR"),
        Some(0x8005_3590)
    );
}

/// AArch32 LPAE: the same descriptor bits; the HTTU word (HA | HD = 0b11) for the SMMU.
#[test]
fn arm32_lpae() {
    let f = Arm32Lpae::new(Arm32LpaeConfig {
        dirty_tracking: true,
        ..Arm32LpaeConfig::default()
    })
    .unwrap();
    let clean = f.leaf_clean(0, f.make_leaf(0, 0x8000_0000, 0, RW));
    assert_eq!(clean, 0x0008_0000_8000_0ec3);
    assert_eq!(f.leaf_mark_dirty(0, clean), 0x0008_0000_8000_0e43);
    assert_eq!(f.hw_words(0x8000_0000, 2).get("HTTU"), Some(3));
    assert_eq!(
        f.hw_words_tracking(0x8000_0000, 2, false).get("HTTU"),
        Some(0)
    );
    let plain = Arm32Lpae::new(Arm32LpaeConfig::default()).unwrap();
    assert_eq!(plain.hw_words(0x8000_0000, 2).get("HTTU"), None);
}

/// Mali has no dirty tracking.
#[test]
fn mali_has_none() {
    let f = MaliLpae::new(MaliLpaeConfig::default()).unwrap();
    assert!(!f.tracks_dirty() && !f.dirty_fresh_clean());
    assert_eq!(f.make_leaf(0, 0x8000_0000, 0, RW) & DBM, 0);
}

/// x86-64: P | R/W | U/S | A = 0x27; D is bit 6 (0x40), PS bit 7 (0x80).
#[test]
fn x86_64_d_bit() {
    let f = X86_64::new(X86_64Config {
        dirty_tracking: true,
        ..X86_64Config::default()
    })
    .unwrap();
    assert!(f.tracks_dirty() && !f.dirty_fresh_clean());
    let page = f.make_leaf(0, 0x8000_0000, 0, RW);
    assert_eq!(page, 0x8000_0027, "clean as made: D clear");
    let dirty = page | 0x40; // the IOMMU sets D
    assert!(f.leaf_dirty(0, dirty) && !f.leaf_dirty(0, page));
    assert_eq!(f.leaf_clean(0, dirty), page);
    assert_eq!(f.leaf_mark_dirty(0, page), 0x8000_0067);
    let large = f.make_leaf(1, 0x4020_0000, 0, RW);
    assert_eq!(large, 0x4020_00a7, "2 MiB, PS set, D clear");
    assert_eq!(f.leaf_mark_dirty(1, large), 0x4020_00e7);
    assert!(f.leaf_dirty(1, 0x4020_00e7));
    assert_eq!(f.leaf_clean(2, 0x4000_00e7), 0x4000_00a7);
    // Read-only: the IOMMU never sets D there.
    let ro = f.make_leaf(0, 0x8000_0000, 0, Prot::READ);
    assert_eq!((ro, f.leaf_mark_dirty(0, ro)), (0x8000_0025, 0x8000_0025));
    // No enable word: the same words with tracking on or off.
    assert_eq!(f.hw_words(0x1000, 3), f.hw_words_tracking(0x1000, 3, false));
    // Without tracking, D is preset (Linux's encoding).
    let plain = X86_64::new(X86_64Config::default()).unwrap();
    assert!(!plain.tracks_dirty());
    assert_eq!(plain.make_leaf(0, 0x8000_0000, 0, RW), 0x8000_0067);
}
