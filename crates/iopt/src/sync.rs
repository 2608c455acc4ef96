//! The synchronisation primitives of the engine's lock-free paths, in one place so that
//! the loom model checker can replace them.
//!
//! Normally these are `core`'s atomics and a `spin` mutex. Built with `--cfg loom` (see
//! `tests/loom.rs`), they are loom's, and loom explores the interleavings and the weak
//! memory behaviours of the table-install race and of top growth. Only the table entries,
//! the top pointer and the growth lock go through here; statistics counters stay on
//! `core`'s atomics (they publish nothing).
//!
//! Under loom, table memory must hold loom atomics (the engine casts table pointers to
//! [`AtomicU64`] / [`AtomicU32`]): only a table memory written for loom may be used.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64};

/// The growth lock: a spin lock normally (no_std), loom's mutex under loom.
#[cfg(not(loom))]
pub(crate) type Mutex<T> = spin::Mutex<T>;

/// The growth lock under loom: loom's mutex with `spin`'s infallible `lock`.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(v: T) -> Self {
        Mutex(loom::sync::Mutex::new(v))
    }

    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        // Loom's mutex never reports poisoning of its own; a panic inside the model
        // fails the model anyway.
        self.0.lock().expect("loom mutex")
    }
}
