//! The hardware formats. Each module is one format type implementing [`crate::Format`].
pub mod arm_lpae;
