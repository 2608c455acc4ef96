//! Entry access: every read and write of a table entry, with its atomics and memory
//! orderings (hardware walks the table while software edits it, and operations on
//! disjoint ranges may run concurrently).

use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::*;

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Reads entry `i` of `table`.
    ///
    /// # Safety
    /// `table` is a live table of this page table with more than `i` entries.
    #[inline(always)]
    pub(super) unsafe fn load(table: NonNull<u8>, i: usize) -> u64 {
        // Acquire: an entry may point to a table another thread just linked with a
        // Release compare-and-swap; its contents must be visible before we descend.
        if F::ENTRY_LG2 == 3 {
            // SAFETY: in bounds by the caller's guarantee; tables are aligned to their
            // size, so entry `i` is 8-byte aligned; table memory is only accessed
            // atomically while the table is live.
            unsafe { (*table.as_ptr().cast::<sync::AtomicU64>().add(i)).load(Ordering::Acquire) }
        } else {
            // SAFETY: as above, for 4-byte entries.
            unsafe {
                (*table.as_ptr().cast::<sync::AtomicU32>().add(i)).load(Ordering::Acquire) as u64
            }
        }
    }

    /// Writes entry `i` of `table`.
    ///
    /// # Safety
    /// As for [`Self::load`], and the caller owns the IOVA range of the entry.
    #[inline(always)]
    pub(super) unsafe fn store(table: NonNull<u8>, i: usize, v: u64) {
        // Release: a new entry must not become visible before the writes that prepared
        // what it points to.
        if F::ENTRY_LG2 == 3 {
            // SAFETY: see `load`.
            unsafe {
                (*table.as_ptr().cast::<sync::AtomicU64>().add(i)).store(v, Ordering::Release)
            }
        } else {
            // SAFETY: see `load`; 32-bit formats only produce 32-bit entries.
            unsafe {
                (*table.as_ptr().cast::<sync::AtomicU32>().add(i))
                    .store(v as u32, Ordering::Release)
            }
        }
    }

    /// Compare-and-swap of entry `i`: installs `new` if the entry still holds `old`.
    ///
    /// # Safety
    /// As for [`Self::load`].
    #[inline(always)]
    pub(super) unsafe fn cas(table: NonNull<u8>, i: usize, old: u64, new: u64) -> bool {
        // AcqRel on success: publishes the new table's contents (Release) and orders
        // later accesses; Acquire on failure: we descend into the winner's table next.
        if F::ENTRY_LG2 == 3 {
            // SAFETY: see `load`.
            unsafe {
                (*table.as_ptr().cast::<sync::AtomicU64>().add(i))
                    .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            }
        } else {
            // SAFETY: see `load`.
            unsafe {
                (*table.as_ptr().cast::<sync::AtomicU32>().add(i))
                    .compare_exchange(old as u32, new as u32, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            }
        }
    }

    /// Reads entry `i` of `table` without ordering (a bulk scan that only asks whether
    /// entries are zero or plain leaves: it follows no table pointer it reads).
    ///
    /// # Safety
    /// As for [`Self::load`].
    #[inline(always)]
    pub(super) unsafe fn load_relaxed(table: NonNull<u8>, i: usize) -> u64 {
        if F::ENTRY_LG2 == 3 {
            // SAFETY: as for `load`.
            unsafe { (*table.as_ptr().cast::<sync::AtomicU64>().add(i)).load(Ordering::Relaxed) }
        } else {
            // SAFETY: as for `load`.
            unsafe {
                (*table.as_ptr().cast::<sync::AtomicU32>().add(i)).load(Ordering::Relaxed) as u64
            }
        }
    }

    /// True if entries `first .. first + count` of `table` all read zero (which every
    /// format decodes as empty; a non-zero empty entry makes this false, and the caller
    /// takes its entry-by-entry path).
    ///
    /// # Safety
    /// As for [`Self::load`], for every entry of the range.
    #[inline(always)]
    pub(super) unsafe fn all_zero(table: NonNull<u8>, first: usize, count: usize) -> bool {
        let mut acc = 0u64;
        for i in first..first + count {
            // SAFETY: inside the table by the caller's guarantee.
            acc |= unsafe { Self::load_relaxed(table, i) };
        }
        acc == 0
    }

    /// Writes `count` entries from entry `first` of `table`, entry `first + i` getting
    /// `value(i)` (a map's leaves).
    ///
    /// A `private` table (not linked yet, nothing else sees it) gets plain, vectorisable
    /// writes. A live one gets one Release fence and then Relaxed stores: the fence
    /// orders everything before it ahead of every store after it, which is what a Release
    /// store per entry gives, at the price of one barrier per call.
    ///
    /// # Safety
    /// As for [`Self::store`], for every entry of the range; for `private`, no other
    /// thread or walker can reach the table.
    #[inline(always)]
    pub(super) unsafe fn fill(
        table: NonNull<u8>,
        first: usize,
        count: usize,
        private: bool,
        value: impl Fn(usize) -> u64,
    ) {
        if cfg!(loom) {
            // Loom's atomics are not plain memory, and it models per-entry orderings.
            for i in 0..count {
                // SAFETY: as the caller guarantees.
                unsafe { Self::store(table, first + i, value(i)) };
            }
            return;
        }
        if private {
            for i in 0..count {
                let e = value(i);
                // SAFETY: inside the table, which is private to the caller: no atomics
                // are needed for memory nothing else can access.
                unsafe {
                    if F::ENTRY_LG2 == 3 {
                        table.as_ptr().cast::<u64>().add(first + i).write(e);
                    } else {
                        table.as_ptr().cast::<u32>().add(first + i).write(e as u32);
                    }
                }
            }
            return;
        }
        core::sync::atomic::fence(Ordering::Release);
        for i in 0..count {
            let e = value(i);
            // SAFETY: inside the table by the caller's guarantee; the range is the
            // caller's, so nothing else writes these entries.
            unsafe {
                if F::ENTRY_LG2 == 3 {
                    (*table.as_ptr().cast::<sync::AtomicU64>().add(first + i))
                        .store(e, Ordering::Relaxed);
                } else {
                    (*table.as_ptr().cast::<sync::AtomicU32>().add(first + i))
                        .store(e as u32, Ordering::Relaxed);
                }
            }
        }
    }

    /// Clears `count` entries from entry `first` of `table` (an unmap's leaves: nothing
    /// is published by a cleared entry, so the stores need no ordering).
    ///
    /// # Safety
    /// As for [`Self::store`], for every entry of the range.
    #[inline(always)]
    pub(super) unsafe fn clear(table: NonNull<u8>, first: usize, count: usize) {
        for i in first..first + count {
            // SAFETY: inside the table by the caller's guarantee; the range is the
            // caller's.
            unsafe {
                if F::ENTRY_LG2 == 3 {
                    (*table.as_ptr().cast::<sync::AtomicU64>().add(i)).store(0, Ordering::Relaxed);
                } else {
                    (*table.as_ptr().cast::<sync::AtomicU32>().add(i)).store(0, Ordering::Relaxed);
                }
            }
        }
    }
}
