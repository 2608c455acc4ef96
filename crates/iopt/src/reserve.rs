//! Table pages set aside in advance, for paths that must not allocate.

use core::ptr::NonNull;

/// Size classes a reservation can hold (log2 bytes).
const CLASSES: usize = 24;

/// Table pages allocated ahead of time: maps made against a reservation take their new
/// tables from it and never call the table memory, so they cannot fail for lack of
/// memory (a GPU driver's fence-signalling path, an interrupt handler).
///
/// A reservation belongs to the table that made it
/// ([`crate::PageTable::reserve`]); give what is left back with
/// [`crate::PageTable::release`]. Pages still in a reservation when it is dropped are
/// leaked (the reservation cannot reach the table memory), which the page counters show.
///
/// The pages are linked through their own first word while they wait (they are private:
/// no table points to them), and are zeroed again when taken.
#[derive(Debug)]
#[must_use = "give unused pages back with PageTable::release"]
pub struct Reservation {
    pub(crate) owner: u64,
    heads: [Option<NonNull<u8>>; CLASSES],
    counts: [u32; CLASSES],
}

// SAFETY: the pages are private to the reservation; moving the handle to another thread
// moves their ownership with it.
unsafe impl Send for Reservation {}

impl Reservation {
    pub(crate) const fn new(owner: u64) -> Self {
        Reservation {
            owner,
            heads: [None; CLASSES],
            counts: [0; CLASSES],
        }
    }

    /// Pages held, of every size.
    pub fn pages(&self) -> usize {
        self.counts.iter().map(|&c| c as usize).sum()
    }

    /// Pages held of `2^size_lg2` bytes.
    pub fn pages_of(&self, size_lg2: u32) -> usize {
        self.counts
            .get(size_lg2 as usize)
            .map_or(0, |&c| c as usize)
    }

    /// Adds a zeroed, private page.
    ///
    /// # Safety
    /// `page` is a zeroed table of `2^size_lg2` bytes (at least a word) from the owning
    /// table's memory that nothing else references.
    pub(crate) unsafe fn put(&mut self, page: NonNull<u8>, size_lg2: u32) {
        let c = size_lg2 as usize;
        let next = self.heads[c].map_or(core::ptr::null_mut(), |p| p.as_ptr());
        // SAFETY: the page is private, at least a word long and aligned to its size.
        unsafe { page.as_ptr().cast::<*mut u8>().write(next) };
        self.heads[c] = Some(page);
        self.counts[c] += 1;
    }

    /// Takes a zeroed page of `2^size_lg2` bytes.
    pub(crate) fn take(&mut self, size_lg2: u32) -> Option<NonNull<u8>> {
        let c = size_lg2 as usize;
        let page = (*self.heads.get(c)?)?;
        // SAFETY: pages in the list are private and hold the link in their first word.
        let next = unsafe { page.as_ptr().cast::<*mut u8>().read() };
        // SAFETY: as above; restore the page to all zeroes.
        unsafe { page.as_ptr().cast::<*mut u8>().write(core::ptr::null_mut()) };
        self.heads[c] = NonNull::new(next);
        self.counts[c] -= 1;
        Some(page)
    }

    /// Takes any page, with its size, to give it back to memory.
    pub(crate) fn take_any(&mut self) -> Option<(NonNull<u8>, u32)> {
        let c = (0..CLASSES).find(|&c| self.counts[c] != 0)? as u32;
        self.take(c).map(|p| (p, c))
    }
}
