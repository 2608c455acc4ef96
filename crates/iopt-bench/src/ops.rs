//! The operation lists the workloads replay, the same for every subject: W4's addresses,
//! W5's mixed sequence, W7's slots.

use std::collections::VecDeque;

use crate::rng::XorShift;
use crate::{BLOCK, IOVA_BASE, KIB, PAGE, Params, W7_BUFFER, W7_SLOTS, pa_of};

/// W4's addresses: uniformly random bytes of `[IOVA_BASE, IOVA_BASE + size)`.
pub fn w4_iovas(p: &Params) -> Vec<u64> {
    let mut rng = XorShift::new(p.seed);
    (0..p.lookups())
        .map(|_| IOVA_BASE + rng.below(p.size))
        .collect()
}

/// What W4's lookups must add up to (wrapping sum of the physical addresses).
pub(crate) fn w4_expected(iovas: &[u64]) -> u64 {
    iovas.iter().fold(0u64, |s, &v| s.wrapping_add(pa_of(v)))
}

/// One operation of W5. The physical address is always [`pa_of`] the IOVA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Map `len` bytes at `iova`.
    Map {
        /// First IOVA.
        iova: u64,
        /// Bytes.
        len: u64,
    },
    /// Unmap the buffer mapped at `iova` (`len` bytes).
    Unmap {
        /// First IOVA.
        iova: u64,
        /// Bytes.
        len: u64,
    },
}

/// One kind of buffer of W5: where its slots are, how many may be live, and how long.
struct BufferKind {
    base: u64,
    slot: u64,
    slots: u64,
    live_max: usize,
    percent: u64,
}

/// W5's kinds: streaming buffers of 1-16 pages (80%), 64 KiB buffers (10%), 2 MiB
/// buffers (10%), each at its own recycled slots.
const W5_KINDS: [BufferKind; 3] = [
    BufferKind {
        base: 0x0100_0000,
        slot: 64 * KIB,
        slots: 64,
        live_max: 32,
        percent: 80,
    },
    BufferKind {
        base: 0x1000_0000,
        slot: 64 * KIB,
        slots: 32,
        live_max: 16,
        percent: 10,
    },
    BufferKind {
        base: 0x4000_0000,
        slot: BLOCK,
        slots: 16,
        live_max: 8,
        percent: 10,
    },
];

/// The end of W5's IOVAs (its slots do not depend on the size).
pub fn w5_end() -> u64 {
    W5_KINDS
        .iter()
        .map(|k| k.base + k.slot * k.slots)
        .max()
        .unwrap_or(IOVA_BASE)
}

/// W5's operation sequence (the same for every subject): a buffer kind is drawn; if as
/// many of that kind as allowed are live, the oldest is unmapped first; the new buffer
/// goes to the slot that was freed longest ago. At the end every live buffer is
/// unmapped, so the table is empty again.
pub fn w5_ops(p: &Params) -> Vec<Op> {
    let mut rng = XorShift::new(p.seed);
    let mut free: Vec<VecDeque<u64>> = W5_KINDS
        .iter()
        .map(|k| (0..k.slots).map(|i| k.base + i * k.slot).collect())
        .collect();
    let mut live: Vec<VecDeque<(u64, u64)>> = W5_KINDS.iter().map(|_| VecDeque::new()).collect();
    let mut ops = Vec::new();
    while (ops.len() as u64) < p.w5_target_ops() {
        let mut r = rng.below(100);
        let k = W5_KINDS
            .iter()
            .position(|kind| {
                let hit = r < kind.percent;
                r = r.saturating_sub(kind.percent);
                hit
            })
            .unwrap_or(0);
        if live[k].len() == W5_KINDS[k].live_max {
            let (iova, len) = live[k].pop_front().expect("a live buffer");
            ops.push(Op::Unmap { iova, len });
            free[k].push_back(iova);
        }
        let iova = free[k].pop_front().expect("a free slot");
        let len = if k == 0 {
            (rng.below(16) + 1) * PAGE
        } else {
            W5_KINDS[k].slot
        };
        ops.push(Op::Map { iova, len });
        live[k].push_back((iova, len));
    }
    for (iova, len) in live.into_iter().flatten() {
        ops.push(Op::Unmap { iova, len });
    }
    ops
}

/// The largest page size of `bitmap` that divides `iova`, `pa` and `len`: what a driver
/// passes to `map_pages` for a buffer (one call per buffer).
pub(crate) fn pgsize_for(bitmap: u64, iova: u64, pa: u64, len: u64) -> u64 {
    let align = iova | pa | len;
    let fits = bitmap
        & (align & align.wrapping_neg())
            .wrapping_mul(2)
            .wrapping_sub(1);
    1 << (63 - fits.leading_zeros())
}

/// W7's slots: [`W7_SLOTS`] consecutive [`W7_BUFFER`]-aligned IOVAs from [`IOVA_BASE`].
pub fn w7_slots() -> impl Iterator<Item = u64> {
    (0..W7_SLOTS).map(|i| IOVA_BASE + i * W7_BUFFER)
}
