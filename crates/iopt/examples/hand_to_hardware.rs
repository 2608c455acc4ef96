//! Building a table and handing it to hardware: the root's physical address and the
//! configuration words a driver programs, and the descriptors the walker will read.
//!
//! The tables live in an `ArenaMemory`, which gives them simulated physical addresses
//! (as a hypervisor's or a test's memory would) and can read them back by physical
//! address, like a device walking them. Run with
//! `cargo run -p iopt --example hand_to_hardware`.

use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig, Granule, Stage};
use iopt::mem::ArenaMemory;
use iopt::{NoFlush, Prot, Table};

fn main() -> iopt::Result<()> {
    // An SMMU stage-1 context: 4K granule, 48-bit input, 40-bit output.
    let cfg = ArmLpaeConfig {
        stage: Stage::S1,
        granule: Granule::K4,
        ias: 48,
        oas: 40,
        ..ArmLpaeConfig::default()
    };
    let arena = ArenaMemory::new(0x8000_0000, 1 << 20);
    let mut t = Table::new(ArmLpae::new(cfg)?, &arena, NoFlush)?;

    // A 2 MiB block and a 4 KiB page.
    t.map(
        0x4000_0000,
        0x10_0000_0000,
        0x20_0000,
        Prot::READ | Prot::WRITE,
    )?;
    t.map(0x4020_0000, 0x10_0040_0000, 0x1000, Prot::READ)?;

    let info = t.info();
    println!(
        "root table at pa {:#x}, {} levels",
        info.root_pa, info.levels
    );
    for (name, value) in info.hw.as_slice() {
        println!("  program {name:<6} = {value:#018x}");
    }
    // The driver writes TTBR0 (the root) and TCR into the context descriptor; the
    // walker then reads the tables from physical memory.
    assert_eq!(info.hw.get("TTBR").map(|v| v & !0xfff), Some(info.root_pa));

    // Walk it as the hardware would: level 0 index, level 1 index, ... (48-bit, 4K).
    let mut table_pa = info.root_pa;
    let iova = 0x4020_0000u64;
    for (level, shift) in [(0, 39), (1, 30), (2, 21), (3, 12)] {
        let idx = (iova >> shift) & 0x1ff;
        let desc = arena
            .read_u64(table_pa + idx * 8)
            .expect("inside the arena");
        println!("  level {level} entry {idx:3}: {desc:#018x}");
        if desc & 0b11 != 0b11 || level == 3 {
            break; // a block or the page: the walk ends
        }
        table_pa = desc & 0x0000_ffff_ffff_f000;
    }
    let tr = t.translate(iova).expect("mapped");
    println!("iova {iova:#x} -> pa {:#x}, {:?}", tr.pa, tr.prot);
    assert_eq!(tr.pa, 0x10_0040_0000);
    Ok(())
}
