//! iopt: page tables for IOMMUs and GPU MMUs.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod error;
pub mod fmt;
pub mod format;
mod prot;

pub use error::{Error, Result};
pub use format::{Format, HwWords, Pte, VaMode};
pub use prot::Prot;
