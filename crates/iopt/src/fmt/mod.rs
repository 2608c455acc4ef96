//! The hardware formats. Each module is one format type implementing [`crate::Format`].
pub mod amdv1;
pub mod arm32_lpae;
pub mod arm_lpae;
pub mod armv7s;
pub mod common;
pub mod dart;
pub mod mali;
pub mod riscv;
pub mod vtdss;
pub mod x86_64;
