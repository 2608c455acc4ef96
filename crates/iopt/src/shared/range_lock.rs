//! An interval lock: exclusive and shared holds over inclusive ranges of `u64`.
//!
//! The IOVA space is cut into 2 MiB regions, and each region belongs to one of
//! [`SHARDS`] shards (by a multiplicative hash of the region number, so that ranges a
//! power of two apart do not pile up on one shard). A hold is recorded in the shard of
//! every region it touches (in every shard once it spans [`SHARDS`] regions or more).
//! Two overlapping ranges share a region, hence a shard, so checking the shards of one's
//! own regions finds every conflict. Guards on ranges in different regions usually take
//! different mutexes, so threads working on their own buffers do not contend on one lock.
//!
//! - **Deadlock freedom**: a request locks its shards in ascending order and holds them
//!   only while it checks and records; it never waits while holding a shard.
//! - **No lost wakeups**: a blocked request registers as waiting in the shard holding the
//!   conflicting hold before it lets go of that shard's mutex (the condition variable's
//!   wait releases it atomically); a release removes its hold and reads that shard's
//!   waiter count under the same mutex, so it either happens before the check (which
//!   then sees it gone) or finds the waiter registered and wakes it.
//! - **No fairness**: waiters are not queued. Every release wakes the waiters of the
//!   shards it leaves and each checks again; whoever finds no conflict takes its range. A
//!   steady stream of overlapping shared holds can keep an exclusive request waiting.
//! - Costs grow with the number of holds in a shard (a linear scan): a few per thread.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::vec::Vec;

/// Number of shards (a power of two, at most 32: shard sets are `u32` masks).
pub(crate) const SHARDS: usize = 16;
/// log2 of the region size that maps to one shard.
const REGION_LG2: u32 = 21;

/// How a range is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No other hold may overlap it.
    Exclusive,
    /// Other shared holds may overlap it; exclusive ones may not.
    Shared,
}

/// One held range, inclusive, as recorded in one shard.
#[derive(Debug, Clone, Copy)]
struct Hold {
    first: u64,
    last: u64,
    mode: Mode,
    id: u64,
    /// Recorded in its lowest shard (counted once by [`RangeLock::held`]).
    primary: bool,
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
    /// Ids handed out by requests whose lowest shard is this one.
    next_id: u64,
    /// Threads blocked in [`RangeLock::acquire`] on a hold in this shard.
    waiting: usize,
}

/// One shard, on cache lines of its own (128 bytes, for adjacent-line prefetchers), so
/// that threads using different shards never write to the same line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    state: Mutex<State>,
    released: Condvar,
}

impl Shard {
    /// The state. Poisoning is ignored: no critical section leaves the state half
    /// changed (none of them can panic between two writes).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The shards of the regions `first ..= last` touches, as a bit mask.
fn shard_mask(first: u64, last: u64) -> u32 {
    let (r0, r1) = (first >> REGION_LG2, last >> REGION_LG2);
    if r1 - r0 >= SHARDS as u64 - 1 {
        return u32::MAX >> (32 - SHARDS);
    }
    (r0..=r1).fold(0, |m, r| {
        // Fibonacci hashing: the top bits of the product spread consecutive and
        // power-of-two-strided regions over the shards.
        let s = r.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SHARDS.trailing_zeros());
        m | 1 << s
    })
}

/// The interval lock; see the [module documentation](self).
#[derive(Debug, Default)]
pub(crate) struct RangeLock {
    shards: [Shard; SHARDS],
}

/// Shard indices of a mask, ascending.
fn shards_of(mask: u32) -> impl Iterator<Item = usize> {
    (0..SHARDS).filter(move |&i| mask & (1 << i) != 0)
}

impl RangeLock {
    /// One attempt: locks the shards of `first ..= last` in ascending order; records the
    /// hold in each if nothing blocks it (`Ok(id)`), else returns the index of a shard
    /// holding a blocking hold, with that shard still locked.
    fn attempt(
        &self,
        first: u64,
        last: u64,
        mode: Mode,
    ) -> Result<u64, (usize, MutexGuard<'_, State>)> {
        let mask = shard_mask(first, last);
        let mut guards: Vec<(usize, MutexGuard<'_, State>)> = Vec::new();
        for i in shards_of(mask) {
            let g = self.shards[i].lock();
            if g.holds.iter().any(|h| h.blocks(first, last, mode)) {
                // Let go of the others first (they were locked before this one).
                drop(guards);
                return Err((i, g));
            }
            guards.push((i, g));
        }
        let primary = mask.trailing_zeros() as u64;
        let (_, g0) = &mut guards[0];
        let id = (g0.next_id << 5) | primary;
        g0.next_id += 1;
        for (k, (_, g)) in guards.iter_mut().enumerate() {
            g.holds.push(Hold {
                first,
                last,
                mode,
                id,
                primary: k == 0,
            });
        }
        Ok(id)
    }

    /// Takes `first ..= last` in `mode` if no hold blocks it, without waiting.
    pub(crate) fn try_acquire(&self, first: u64, last: u64, mode: Mode) -> Option<u64> {
        self.attempt(first, last, mode).ok()
    }

    /// Takes `first ..= last` in `mode`, waiting (asleep) until no hold blocks it.
    pub(crate) fn acquire(&self, first: u64, last: u64, mode: Mode) -> u64 {
        loop {
            match self.attempt(first, last, mode) {
                Ok(id) => return id,
                Err((i, mut g)) => {
                    // Registered under the shard's mutex, which the wait releases
                    // atomically: the release of the blocking hold wakes us.
                    g.waiting += 1;
                    let mut g = self.shards[i]
                        .released
                        .wait(g)
                        .unwrap_or_else(PoisonError::into_inner);
                    g.waiting -= 1;
                }
            }
        }
    }

    /// Gives back the hold `id` taken for `first ..= last`, waking the waiters of its
    /// shards.
    pub(crate) fn release(&self, id: u64, first: u64, last: u64) {
        for i in shards_of(shard_mask(first, last)) {
            let mut s = self.shards[i].lock();
            let at = s.holds.iter().position(|h| h.id == id);
            debug_assert!(at.is_some(), "released a range that is not held");
            if let Some(at) = at {
                s.holds.swap_remove(at);
            }
            let wake = s.waiting != 0;
            drop(s);
            if wake {
                // Every waiter checks again: any of them may fit now.
                self.shards[i].released.notify_all();
            }
        }
    }

    /// Threads waiting now (a snapshot).
    pub(crate) fn waiting(&self) -> usize {
        self.shards.iter().map(|s| s.lock().waiting).sum()
    }

    /// Holds now (a snapshot).
    pub(crate) fn held(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().holds.iter().filter(|h| h.primary).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cover_every_region_once_wide() {
        // One region: one shard.
        assert_eq!(shard_mask(0, 0x1f_ffff).count_ones(), 1);
        // A range over many regions: every shard.
        assert_eq!(shard_mask(0, u64::MAX), u32::MAX >> (32 - SHARDS));
        assert_eq!(
            shard_mask(0, (SHARDS as u64) << REGION_LG2).count_ones() as usize,
            SHARDS
        );
        // Overlapping ranges share a shard.
        let (a, b) = (
            shard_mask(0x1000, 0x40_0000),
            shard_mask(0x3f_f000, 0x80_0000),
        );
        assert_ne!(a & b, 0);
        // Power-of-two-strided regions spread out.
        let spread: u32 = (0..8u64)
            .map(|k| shard_mask(k << 27, (k << 27) + 0xfff))
            .fold(0, |m, s| m | s);
        assert!(spread.count_ones() >= 6, "{spread:#x}");
    }

    #[test]
    fn conflicts_across_shards_and_release() {
        let l = RangeLock::default();
        let a = l.acquire(0x40_0000, 0xbf_ffff, Mode::Exclusive);
        assert_eq!(l.held(), 1);
        // Overlaps only the last region of `a`.
        assert_eq!(l.try_acquire(0xbf_f000, 0xc0_0fff, Mode::Shared), None);
        let b = l
            .try_acquire(0xc0_0000, 0xc0_0fff, Mode::Exclusive)
            .unwrap();
        let c = l.try_acquire(0, 0x3f_ffff, Mode::Shared).unwrap();
        let d = l.try_acquire(0, 0xfff, Mode::Shared).unwrap();
        assert_eq!(l.try_acquire(0, 0xfff, Mode::Exclusive), None);
        assert_eq!(l.held(), 4);
        l.release(a, 0x40_0000, 0xbf_ffff);
        assert!(l.try_acquire(0xbf_f000, 0xbf_ffff, Mode::Shared).is_some());
        l.release(b, 0xc0_0000, 0xc0_0fff);
        l.release(c, 0, 0x3f_ffff);
        l.release(d, 0, 0xfff);
        assert_eq!(l.held(), 1);
        assert_eq!(l.waiting(), 0);
    }
}
