//! iopt: page tables for IOMMUs and GPU MMUs.
//!
//! One generic radix-tree engine ([`PageTable`]) serves every hardware format; a format
//! ([`fmt`]) is a small type that only says how its entries are encoded. Table pages come
//! from a [`mem::TableMemory`]; TLB invalidation goes through [`FlushOps`].
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod error;
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
pub use flush::{FlushOps, NoFlush};
pub use format::{Format, HwWords, Pte, VaMode};
pub use gather::Gather;
pub use prot::Prot;
pub use reserve::Reservation;
pub use safe::{Table, Unmapped};
#[cfg(feature = "std")]
pub use shared::{RangeGuard, SharedGuard, SharedTable};
pub use spec::{AnyFormat, FormatSpec, FormatVisitor, SpecError};
pub use table::DirtyFlags;
pub use table::{Aperture, Info, Options, OverlapPolicy, PageTable, TableCounts, Translation};
