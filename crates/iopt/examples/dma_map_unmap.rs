//! A driver's streaming DMA path: map a buffer's scatter-gather list into an IOMMU domain,
//! let the device use it, unmap it, and invalidate the IOTLB once for the whole buffer.
//!
//! The domain here is a `SharedTable` (several CPUs map and unmap at once, each inside a
//! range guard), and the IOTLB is a command queue that the flush callbacks fill: a real
//! driver would write these commands to its IOMMU. Run with
//! `cargo run -p iopt --example dma_map_unmap`.

use std::sync::Mutex;

use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
use iopt::mem::HeapMemory;
use iopt::{FlushOps, Gather, Prot, SharedTable};

/// An invalidation command, as an SMMU-like IOMMU would take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Invalidate everything cached for this domain.
    InvalidateAll,
    /// Invalidate translations and walk-cache entries of `[iova, iova + size)`, removed
    /// in entries of at least `granule` bytes.
    InvalidateRange { iova: u64, size: u64, granule: u64 },
    /// Wait until the commands before have completed.
    Sync,
}

/// The driver's side of the flush protocol: the engine says what to invalidate, the
/// driver turns it into commands.
#[derive(Default)]
struct CommandQueue {
    issued: Mutex<Vec<Command>>,
}

impl FlushOps for CommandQueue {
    fn flush_all(&self) {
        let mut q = self.issued.lock().unwrap();
        q.push(Command::InvalidateAll);
        q.push(Command::Sync);
    }
    fn flush_walk(&self, iova: u64, size: u64, granule: u64) {
        let mut q = self.issued.lock().unwrap();
        q.push(Command::InvalidateRange {
            iova,
            size,
            granule,
        });
        q.push(Command::Sync);
    }
    fn top_changed(&self, _root_pa: u64, _levels: u32) {
        // ARM64 tables have a fixed top; formats with a dynamic top (AMD v1) would
        // reprogram the device table entry here.
    }
}

/// One DMA buffer as the DMA API sees it: physically scattered pieces.
struct SgEntry {
    paddr: u64,
    len: u64,
}

fn main() -> iopt::Result<()> {
    let fmt = ArmLpae::new(ArmLpaeConfig::default())?;
    let domain = SharedTable::new(fmt, HeapMemory::new(), CommandQueue::default())?;

    // A 1 MiB buffer in three physical pieces, given one contiguous IOVA range (the IOVA
    // allocator's job in a real driver).
    let sg = [
        SgEntry {
            paddr: 0x8_1230_0000,
            len: 0x8_0000,
        },
        SgEntry {
            paddr: 0x8_4000_0000,
            len: 0x7_0000,
        },
        SgEntry {
            paddr: 0x8_7770_0000,
            len: 0x1_0000,
        },
    ];
    let iova = 0x1_0000_0000u64;
    let total: u64 = sg.iter().map(|e| e.len).sum();

    // dma_map_sg: one guard over the buffer's IOVA range, one map per piece.
    {
        let mut g = domain.lock(iova, total)?;
        let mut at = iova;
        for e in &sg {
            // Each piece is all-or-nothing; a real driver unmaps the pieces already
            // mapped if a later one fails.
            g.map(at, e.paddr, e.len, Prot::READ | Prot::WRITE | Prot::CACHE)?;
            at += e.len;
        }
        // What the device will see: each piece's first byte.
        let mut at = iova;
        for e in &sg {
            let tr = g.translate(at)?.expect("just mapped");
            println!(
                "iova {at:#x} -> pa {:#x} (a {} KiB mapping)",
                tr.pa,
                tr.size >> 10
            );
            assert_eq!(tr.pa, e.paddr);
            at += e.len;
        }
    }

    // ... the device does its DMA ...

    // dma_unmap_sg: remove the whole range, then one invalidation for all of it before
    // the IOVA range is reused (and before the emptied tables are freed).
    let mut gather = Gather::new();
    {
        let mut g = domain.lock(iova, total)?;
        let removed = g.unmap(iova, total, &mut gather)?;
        assert_eq!(removed, total);
    }
    domain.sync(&mut gather);

    let queue = domain.into_raw();
    let issued = queue.flush_ops().issued.lock().unwrap().clone();
    println!("commands issued for the unmap: {issued:?}");
    assert_eq!(issued.last(), Some(&Command::Sync));
    assert!(matches!(
        issued[0],
        Command::InvalidateRange { iova: i, size, .. } if i <= iova && i + size >= iova + total
    ));
    Ok(())
}
