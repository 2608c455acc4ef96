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
}
