//! iopt: page tables for IOMMUs and GPU MMUs.
//!
//! One generic radix-tree engine serves every hardware format; a format ([`fmt`]) is a
//! small type that only says how its entries are encoded, and the tables the engine
//! builds are the bits the hardware reads. Table pages come from a [`mem::TableMemory`];
//! TLB invalidation goes through [`FlushOps`], which the driver implements (or
//! [`NoFlush`], chosen by name, for tables no hardware caches).
//!
//! # Three layers
//!
//! **[`PageTable`], the raw layer**, mirrors Linux's io-pgtable operations and contracts
//! (`map_pages`, `unmap_pages`, `iova_to_phys`, `get_info`): its operations are `unsafe`
//! because the caller owns the IOVA-range locking rule, exactly as a kernel driver does.
//! A map reports both how much it mapped and whether it failed.
//!
//! ```
//! use iopt::fmt::x86_64::{X86_64, X86_64Config};
//! use iopt::mem::HeapMemory;
//! use iopt::{Gather, NoFlush, PageTable, Prot};
//!
//! let pt = PageTable::new(X86_64::new(X86_64Config::default())?, HeapMemory::new(), NoFlush)?;
//! // SAFETY: this thread is the only user of the table and no hardware walks it.
//! unsafe {
//!     // 256 pages of 4 KiB: a driver's 1 MiB DMA buffer.
//!     let (mapped, r) = pt.map_pages(0x10_0000, 0x8000_0000, 4096, 256, Prot::READ | Prot::WRITE);
//!     assert_eq!((mapped, r), (1 << 20, Ok(())));
//!     assert_eq!(pt.iova_to_phys(0x10_2345), Some(0x8000_2345));
//!     let mut g = Gather::new();
//!     assert_eq!(pt.unmap_pages(0x10_0000, 4096, 256, &mut g), (1 << 20, Ok(())));
//!     pt.sync(&mut g); // invalidate, then free the emptied tables
//! }
//! # Ok::<(), iopt::Error>(())
//! ```
//!
//! **[`Table`], the safe single owner**: `&mut self` is the locking rule, so nothing is
//! `unsafe`. It picks page sizes itself, maps all-or-nothing, unmaps exactly the range
//! asked for (refusing to cut a large page) and returns a `#[must_use]` [`Unmapped`]
//! until the gather is synced.
//!
//! ```
//! use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
//! use iopt::mem::HeapMemory;
//! use iopt::{Gather, NoFlush, Prot, Table};
//!
//! let mut t = Table::new(ArmLpae::new(ArmLpaeConfig::default())?, HeapMemory::new(), NoFlush)?;
//! t.map(0x4000_0000, 0x8000_0000, 0x20_0000, Prot::READ)?; // one 2 MiB block
//! assert_eq!(t.translate(0x4000_1000).map(|tr| tr.size), Some(0x20_0000));
//! let mut g = Gather::new();
//! let removed = t.unmap(0x4000_0000, 0x20_0000, &mut g)?;
//! t.sync(&mut g);
//! assert_eq!(removed.bytes(), 0x20_0000);
//! # Ok::<(), iopt::Error>(())
//! ```
//!
//! **[`SharedTable`], the concurrent handle** (with `std`): threads take range guards
//! ([`SharedTable::lock`], [`SharedTable::lock_shared`]) and work inside them; guards on
//! disjoint ranges proceed in parallel, overlapping ones wait, and an operation outside
//! its guard is refused.
//!
//! ```
//! use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
//! use iopt::mem::HeapMemory;
//! use iopt::{Gather, NoFlush, Prot, SharedTable};
//!
//! let t = SharedTable::new(AmdV1::new(AmdV1Config::default())?, HeapMemory::new(), NoFlush)?;
//! std::thread::scope(|s| {
//!     for i in 0..2u64 {
//!         let t = &t;
//!         s.spawn(move || {
//!             let base = i << 21;
//!             let mut g = t.lock(base, 1 << 21).unwrap();
//!             g.map(base, 0x1_0000_0000 + base, 1 << 16, Prot::READ | Prot::WRITE).unwrap();
//!         });
//!     }
//! });
//! let mut g = t.lock(0, 1 << 22)?;
//! let mut gather = Gather::new();
//! assert_eq!(g.unmap(0, 1 << 22, &mut gather)?, 2 << 16);
//! t.sync(&mut gather);
//! # Ok::<(), iopt::Error>(())
//! ```
//!
//! # Handing a table to hardware
//! [`PageTable::info`] (and the safe layers' `info`) gives the root's physical address,
//! the page sizes, the aperture and the configuration words the driver programs (ARM
//! TTBR/TCR/MAIR or VTTBR/VTCR, AMD DTE fields, VT-d and RISC-V pointers): see the
//! crate's `examples/` (`dma_map_unmap`, `hand_to_hardware`).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod error;
mod extent;
mod flush;
pub mod fmt;
pub mod format;
pub mod gather;
pub mod mem;
mod prot;
mod reserve;
mod safe;
#[cfg(feature = "std")]
mod shared;
pub mod spec;
mod sync;
mod table;

pub use error::{Error, Result};
pub use extent::Extent;
#[cfg(feature = "alloc")]
pub use extent::MergedExtents;
pub use flush::{FlushOps, NoFlush};
pub use format::{Format, HwWords, Pte, VaMode};
pub use gather::Gather;
pub use prot::Prot;
pub use reserve::Reservation;
pub use safe::{Table, Unmapped};
#[cfg(feature = "std")]
pub use shared::{RangeGuard, SharedGuard, SharedTable};
pub use spec::{AnyFormat, FormatSpec, FormatVisitor, SpecError};
pub use table::{Aperture, Info, Options, OverlapPolicy, PageTable, TableCounts, Translation};
pub use table::{Bbm, Cut, Protected, UnmapMode};
pub use table::{DirtyBitmap, DirtyFlags, SimWrite};
