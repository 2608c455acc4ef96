//! An interval lock: exclusive and shared holds over inclusive ranges of `u64`.
//!
//! The holds live in a small vector under one [`Mutex`]; a request that conflicts with a
//! hold waits on a [`Condvar`] and checks again whenever a hold is released.
//!
//! - **No lost wakeups**: a waiter checks for conflicts and registers itself as waiting
//!   in one critical section, and a release removes its hold and reads the number of
//!   waiters in one critical section; the condition variable's wait gives up the mutex
//!   atomically, so a release either happens before the check (which then sees it) or
//!   finds the waiter registered and wakes it.
//! - **No fairness**: waiters are not queued. Every release wakes every waiter and each
//!   checks again; whoever finds no conflict takes its range. A steady stream of
//!   overlapping shared holds can keep an exclusive request waiting, and a waiting
//!   request does not stop later ones that do not overlap the holds from going ahead.
//! - Costs grow with the number of holds (a linear scan), which is the number of guards
//!   alive at once: a few per thread.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::vec::Vec;

/// How a range is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No other hold may overlap it.
    Exclusive,
    /// Other shared holds may overlap it; exclusive ones may not.
    Shared,
}

/// One held range, inclusive.
#[derive(Debug, Clone, Copy)]
struct Hold {
    first: u64,
    last: u64,
    mode: Mode,
    id: u64,
}

impl Hold {
    /// True if a request for `first ..= last` in `mode` must wait for this hold.
    fn blocks(&self, first: u64, last: u64, mode: Mode) -> bool {
        self.first <= last
            && first <= self.last
            && (self.mode == Mode::Exclusive || mode == Mode::Exclusive)
    }
}

#[derive(Debug, Default)]
struct State {
    holds: Vec<Hold>,
    next_id: u64,
    /// Threads blocked in [`RangeLock::acquire`].
    waiting: usize,
}

impl State {
    /// Grants `first ..= last` in `mode` if nothing blocks it; returns the hold's id.
    fn grant(&mut self, first: u64, last: u64, mode: Mode) -> Option<u64> {
        if self.holds.iter().any(|h| h.blocks(first, last, mode)) {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.holds.push(Hold {
            first,
            last,
            mode,
            id,
        });
        Some(id)
    }
}

/// The interval lock; see the [module documentation](self).
#[derive(Debug, Default)]
pub(crate) struct RangeLock {
    state: Mutex<State>,
    released: Condvar,
}

impl RangeLock {
    /// The state. Poisoning is ignored: no critical section leaves the state half
    /// changed (none of them can panic between two writes).
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `first ..= last` in `mode` if no hold blocks it, without waiting.
    pub(crate) fn try_acquire(&self, first: u64, last: u64, mode: Mode) -> Option<u64> {
        self.state().grant(first, last, mode)
    }

    /// Takes `first ..= last` in `mode`, waiting (asleep) until no hold blocks it.
    pub(crate) fn acquire(&self, first: u64, last: u64, mode: Mode) -> u64 {
        let mut s = self.state();
        loop {
            if let Some(id) = s.grant(first, last, mode) {
                return id;
            }
            s.waiting += 1;
            s = self
                .released
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
            s.waiting -= 1;
        }
    }

    /// Gives back the hold `id`, waking the waiters.
    pub(crate) fn release(&self, id: u64) {
        let mut s = self.state();
        let at = s.holds.iter().position(|h| h.id == id);
        debug_assert!(at.is_some(), "released a range that is not held");
        if let Some(at) = at {
            s.holds.swap_remove(at);
        }
        let wake = s.waiting != 0;
        drop(s);
        if wake {
            // Every waiter checks again: any of them may fit now.
            self.released.notify_all();
        }
    }

    /// Threads waiting now (a snapshot).
    pub(crate) fn waiting(&self) -> usize {
        self.state().waiting
    }

    /// Holds now (a snapshot).
    pub(crate) fn held(&self) -> usize {
        self.state().holds.len()
    }
}
