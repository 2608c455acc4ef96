//! The peers: independent page-table crates doing the same work, and the plain-fill
//! baseline.

pub mod aarch64_paging;
pub mod fill;
#[cfg(target_pointer_width = "64")]
pub mod x86_64_crate;
