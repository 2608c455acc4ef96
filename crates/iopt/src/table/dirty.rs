//! Hardware dirty tracking: reading and clearing the dirty state the IOMMU records in
//! leaf entries (Linux's `iommu_dirty_ops::read_and_clear_dirty`), switching tracking on
//! and off (`set_dirty_tracking`), and a bitmap to record into (iommufd's
//! `iova_bitmap`).
//!
//! Both walks are one body over the [`Cursor`] ([`PageTable::dirty_level`]): a leaf is
//! one item (a run or a large page whole), its replicas are read and rewritten with
//! compare-and-swap, tables are descended.

use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::cursor::{CleanSpan, Cursor};
use super::*;

bitflags::bitflags! {
    /// Options of [`PageTable::read_and_clear_dirty`] (the values of Linux's
    /// `IOMMU_DIRTY_*` flags).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct DirtyFlags: u32 {
        /// Only report: leave the dirty state as it is (Linux's `IOMMU_DIRTY_NO_CLEAR`).
        const NO_CLEAR = 1 << 0;
    }
}

/// What a simulated device write did ([`PageTable::simulate_write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimWrite {
    /// The leaf was clean: the write set its dirty record.
    Marked,
    /// The write went through and recorded nothing new (the leaf was dirty already, or
    /// the hardware records nothing: no dirty tracking, or tracking switched off).
    Unchanged,
    /// The device would fault: nothing is mapped at the IOVA, or the mapping is not
    /// writable.
    Fault,
}

/// What a dirty walk does with each leaf.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Report dirty leaves (clipped to `start ..= last`), and clean them if `clear`.
    Read { clear: bool },
    /// Tracking switched on: make every writable leaf writable-clean.
    On,
    /// Tracking switched off: make every leaf writable-dirty.
    Off,
}

/// Progress of a dirty walk.
struct DirtyState<'a, R> {
    mode: Mode,
    /// The walk's range (reports are clipped to it).
    start: u64,
    last: u64,
    gather: &'a mut Gather,
    record: &'a mut R,
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// Reports the mappings in `[iova, iova + len)` that the hardware wrote through since
    /// they were made or last cleaned, and (unless [`DirtyFlags::NO_CLEAR`]) cleans them
    /// (Linux's `read_and_clear_dirty`).
    ///
    /// For every dirty leaf met, `record(base, size)` is called once with the leaf's
    /// extent **clipped to the requested range** (as iommufd's `iova_bitmap` expects):
    /// a large page or a run of entries (contiguous hint, AMD size-encoded page, Svnapot)
    /// is one leaf, dirty if any of its entries is, and all of its entries are cleaned.
    /// A leaf that crosses an end of the range is reported for the part inside it, but
    /// cleaned whole: it is one entry (one dirty record) for the hardware, so the dirty
    /// state of its part outside the range is cleared with it, as iommufd does with
    /// large pages (read the whole leaf, or cut it first, to keep that part's record).
    /// Leaves are reported in IOVA order. Holes are skipped. Cleaning replaces each
    /// entry with an atomic compare-and-swap, so a dirty mark the hardware sets at the
    /// same moment is never lost: it is either seen (and reported) or left in the
    /// table. The whole extent of each cleaned leaf is added to `gather`, and the caller
    /// must [`sync`](Self::sync) it: until the IOTLB forgets the old translations the
    /// device may write without marking the leaf dirty again.
    ///
    /// `record` may be a closure or a [`DirtyBitmap`]'s [`DirtyBitmap::recorder`].
    ///
    /// Switched off ([`Self::set_dirty_tracking`]), the table still reports what the
    /// entries record (nothing new, on formats whose hardware stops marking). On ARM,
    /// where switching off makes every writable leaf writable-dirty, every writable leaf
    /// is then reported and none is cleaned, as with [`DirtyFlags::NO_CLEAR`]: a
    /// writable-clean leaf would be read-only to an SMMU that no longer updates dirty
    /// state, and the device's writes would fault.
    ///
    /// Errors, before anything is read: [`Error::NoDirtyTracking`] if the format (as
    /// configured) has no dirty tracking; [`Error::UndefinedDirtyFlags`];
    /// [`Error::ZeroLength`], [`Error::BadPageSize`] (`len` not a multiple of the
    /// smallest page size), [`Error::UnalignedIova`], [`Error::Overflow`],
    /// [`Error::OutOfAperture`].
    ///
    /// With `coherent_walk: false` the cleaned entries are cleaned from the CPU cache
    /// like any other write, but the CPU may not see the dirty marks such a walker
    /// writes: dirty tracking wants a walker that snoops.
    ///
    /// # Safety
    /// No map or unmap runs at the same time on a range that overlaps `[iova, iova +
    /// len)` or a leaf that reaches into it (lookups and other dirty reads may). The
    /// caller treats cleaned leaves as possibly cached by the IOTLB until the gather is
    /// synced.
    ///
    /// # Panics
    /// If `gather` holds work of another table.
    ///
    /// ```
    /// use iopt::{DirtyFlags, Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
    /// use iopt::mem::HeapMemory;
    /// let fmt = AmdV1::new(AmdV1Config { dirty_tracking: true, ..AmdV1Config::default() })?;
    /// let pt = PageTable::new(fmt, HeapMemory::new(), NoFlush)?;
    /// let mut g = Gather::new();
    /// let mut dirty = Vec::new();
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0, 0x8000_0000, 4096, 4, Prot::READ | Prot::WRITE);
    ///     // No device wrote: nothing is reported.
    ///     pt.read_and_clear_dirty(0, 0x4000, DirtyFlags::empty(), &mut g, &mut |b, s| dirty.push((b, s)))?;
    /// }
    /// assert!(dirty.is_empty());
    /// pt.sync(&mut g);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub unsafe fn read_and_clear_dirty<R: FnMut(u64, u64)>(
        &self,
        iova: u64,
        len: u64,
        flags: DirtyFlags,
        gather: &mut Gather,
        record: &mut R,
    ) -> Result<()> {
        if !self.fmt.tracks_dirty() {
            return Err(Error::NoDirtyTracking);
        }
        self.check_dirty_flags(flags)?;
        let last = self.check_bytes(iova, len)?;
        gather.bind(self.id);
        let (root, top) = self.top();
        let ap = self.aperture(top);
        // With a dynamic top, part of the range may lie above the current top: nothing
        // is mapped there.
        let cur_last = if ap.contains(iova, last) {
            last
        } else if ap.contains(iova, iova) {
            ap.last
        } else {
            return Ok(());
        };
        // A writable-clean ARM leaf is read-only to hardware that no longer updates dirty
        // state: while tracking is off, such formats only report.
        let clear = !flags.contains(DirtyFlags::NO_CLEAR)
            && (self.dirty_tracking() || !self.fmt.dirty_fresh_clean());
        let mut st = DirtyState {
            mode: Mode::Read { clear },
            start: iova,
            last: cur_last,
            gather,
            record,
        };
        let cur = Cursor::new(self, top, root, self.entries_lg2(top, top), iova, cur_last);
        // SAFETY: `root` is the live top table at `top`; the caller keeps maps and unmaps
        // away from every leaf the walk reaches.
        unsafe { self.dirty_level(cur, &mut st) };
        Ok(())
    }

    /// True while dirty tracking is switched on: from creation when the format's
    /// configuration asks for dirty tracking ([`Format::tracks_dirty`]), until
    /// [`Self::set_dirty_tracking`] switches it off. Always false without dirty tracking.
    ///
    /// ```
    /// use iopt::{NoFlush, PageTable};
    /// use iopt::fmt::vtdss::{VtdSs, VtdSsConfig};
    /// use iopt::mem::HeapMemory;
    /// let fmt = VtdSs::new(VtdSsConfig { dirty_tracking: true, ..VtdSsConfig::default() })?;
    /// let pt = PageTable::new(fmt, HeapMemory::new(), NoFlush)?;
    /// assert!(pt.dirty_tracking());
    /// assert_eq!(pt.info().hw.get("SSADE"), Some(1));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    #[inline]
    pub fn dirty_tracking(&self) -> bool {
        // Relaxed: a mode the caller changes with `set_dirty_tracking` while no map runs
        // (its safety rule); nothing is published through it.
        self.dirty_on.load(Ordering::Relaxed)
    }

    /// Plays the IOMMU for tests and simulators: a device write through `iova`,
    /// recorded in the table as the hardware records it. The walk reads the leaf that
    /// translates `iova`; if the leaf is writable (ARM: writable-clean counts), the
    /// entry the hardware used (for a run: the replica that covers `iova`) gets its
    /// dirty record set with one compare-and-swap, retried on the value found
    /// ([`Format::leaf_mark_dirty`]: D set; ARM: AP\[2\] cleared / S2AP\[1\] set in a
    /// DBM leaf).
    ///
    /// Whether the hardware records anything follows the table
    /// ([`Format::hw_records_dirty`]): formats without dirty tracking record nothing
    /// ([`SimWrite::Unchanged`]), except x86-64, whose IOMMU always sets D; while
    /// tracking is switched off, AMD, VT-d and ARM hardware stops recording, RISC-V and
    /// x86-64 go on.
    /// No IOTLB is modelled: the write always walks the table.
    ///
    /// # Safety
    /// As for [`Self::translate`]: no map or unmap of a range containing `iova` runs at
    /// the same time (dirty reads, protects and cuts may: the hardware writes during
    /// those too).
    ///
    /// ```
    /// use iopt::{DirtyFlags, Gather, NoFlush, PageTable, Prot, SimWrite};
    /// use iopt::fmt::vtdss::{VtdSs, VtdSsConfig};
    /// use iopt::mem::HeapMemory;
    /// let fmt = VtdSs::new(VtdSsConfig { dirty_tracking: true, ..VtdSsConfig::default() })?;
    /// let pt = PageTable::new(fmt, HeapMemory::new(), NoFlush)?;
    /// let (mut g, mut dirty) = (Gather::new(), Vec::new());
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0, 0x8000_0000, 4096, 2, Prot::READ | Prot::WRITE);
    ///     let _ = pt.map_pages(0x2000, 0x9000_0000, 4096, 1, Prot::READ);
    ///     assert_eq!(pt.simulate_write(0x1234), SimWrite::Marked);
    ///     assert_eq!(pt.simulate_write(0x1000), SimWrite::Unchanged); // dirty already
    ///     assert_eq!(pt.simulate_write(0x2000), SimWrite::Fault); // read-only
    ///     assert_eq!(pt.simulate_write(0x3000), SimWrite::Fault); // nothing mapped
    ///     pt.read_and_clear_dirty(0, 0x4000, DirtyFlags::empty(), &mut g, &mut |b, s| dirty.push((b, s)))?;
    /// }
    /// assert_eq!(dirty, [(0x1000, 0x1000)]);
    /// pt.sync(&mut g);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub unsafe fn simulate_write(&self, iova: u64) -> SimWrite {
        let (root, top) = self.top();
        if !self.in_aperture(top, iova) {
            return SimWrite::Fault;
        }
        // SAFETY: `root` is the live top table at `top`; the caller keeps unmaps away.
        let cur = unsafe { self.descend(root, top, iova, 0) };
        let Pte::Leaf { .. } = cur.pte else {
            return SimWrite::Fault;
        };
        let level = cur.level;
        if !self.fmt.leaf_prot(level, cur.raw).contains(Prot::WRITE) {
            return SimWrite::Fault;
        }
        if !self.fmt.hw_records_dirty(self.dirty_tracking()) {
            return SimWrite::Unchanged;
        }
        let mut old = cur.raw;
        loop {
            let new = self.fmt.leaf_mark_dirty(level, old);
            if new == old {
                return SimWrite::Unchanged;
            }
            // SAFETY: the cursor's entry is inside its live table.
            if unsafe { Self::cas(cur.table, cur.idx, old, new) } {
                return SimWrite::Marked;
            }
            // SAFETY: as above.
            old = unsafe { Self::load(cur.table, cur.idx) };
        }
    }

    /// Switches hardware dirty tracking on or off (Linux's `set_dirty_tracking`).
    ///
    /// What changes, per format:
    /// - AMD v1, VT-d second stage, x86-64: no entry. The hardware words
    ///   ([`Self::info`]) follow the switch: AMD `DTE.HAD` 3 / 0, VT-d `SSADE` 1 / 0;
    ///   x86-64 first-stage tables have no enable (the IOMMU always sets D), and RISC-V
    ///   keeps `DC.tc.SADE` = 1 (its leaves are made with D clear: an IOMMU that stopped
    ///   updating D would fault on writes). The driver programs the new words.
    /// - ARM LPAE (arm64, arm32, stage 1 and 2, with `dirty_tracking` configured): on,
    ///   every writable leaf becomes *writable-clean* (AP\[2\] set / S2AP\[1\] clear with
    ///   DBM) and new writable maps are made writable-clean; off, every DBM leaf becomes
    ///   writable-dirty (AP\[2\] clear / S2AP\[1\] set), so that the hardware has no more
    ///   writes to make, and new maps are writable-dirty. Each entry is rewritten with a
    ///   compare-and-swap (every replica of a run), and each changed leaf is added to
    ///   `gather` (the IOTLB may cache the old permission): the caller must
    ///   [`sync`](Self::sync) it. The hardware words turn TCR/VTCR HA and HD on or off.
    ///
    /// Switching to the state the table is in changes nothing. Dirty state recorded
    /// before switching on is lost on ARM (every leaf starts clean); elsewhere it stays
    /// until the next [`Self::read_and_clear_dirty`].
    ///
    /// # Errors
    /// [`Error::NoDirtyTracking`] if the format, as configured, has no dirty tracking
    /// (nothing changes).
    ///
    /// # Safety
    /// No map or unmap runs at the same time on any part of the table (dirty reads and
    /// lookups may). The caller programs the new hardware words and syncs `gather`.
    ///
    /// # Panics
    /// If `gather` holds work of another table.
    ///
    /// ```
    /// use iopt::{Gather, NoFlush, PageTable, Prot};
    /// use iopt::fmt::arm_lpae::{ArmLpae, ArmLpaeConfig};
    /// use iopt::mem::HeapMemory;
    /// let fmt = ArmLpae::new(ArmLpaeConfig { dirty_tracking: true, ..ArmLpaeConfig::default() })?;
    /// let pt = PageTable::new(fmt, HeapMemory::new(), NoFlush)?;
    /// let mut g = Gather::new();
    /// // SAFETY: nothing else uses this table and no hardware walks it.
    /// unsafe {
    ///     let _ = pt.map_pages(0x10_0000, 0x8000_0000, 4096, 1, Prot::READ | Prot::WRITE);
    ///     pt.set_dirty_tracking(false, &mut g)?; // the leaf becomes writable-dirty
    /// }
    /// assert_eq!(g.range(), Some((0x10_0000, 0x10_0fff)));
    /// assert_eq!(pt.info().hw.get("TCR").unwrap() & (3 << 39), 0); // HA, HD off
    /// pt.sync(&mut g);
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub unsafe fn set_dirty_tracking(&self, enable: bool, gather: &mut Gather) -> Result<()> {
        if !self.fmt.tracks_dirty() {
            return Err(Error::NoDirtyTracking);
        }
        gather.bind(self.id);
        // Relaxed: see `dirty_tracking`; maps are kept away by the caller.
        if self.dirty_on.swap(enable, Ordering::Relaxed) == enable {
            return Ok(());
        }
        if !self.fmt.dirty_fresh_clean() {
            return Ok(());
        }
        let (root, top) = self.top();
        let ap = self.aperture(top);
        let windows = [Some((ap.start, ap.last)), ap.upper];
        for (start, last) in windows.into_iter().flatten() {
            let mut st = DirtyState {
                mode: if enable { Mode::On } else { Mode::Off },
                start,
                last,
                gather: &mut *gather,
                record: &mut |_, _| {},
            };
            let cur = Cursor::new(self, top, root, self.entries_lg2(top, top), start, last);
            // SAFETY: `root` is the live top at `top`; the caller keeps maps and unmaps
            // away from the whole table.
            unsafe { self.dirty_level(cur, &mut st) };
        }
        Ok(())
    }

    /// The leaf a map writes for `pa` (the first entry of a run): the format's leaf,
    /// made writable-clean while tracking is on in formats that need it
    /// ([`Format::dirty_fresh_clean`]). Every map path takes its template from here,
    /// once per template (the stretch fills add to it), so that formats without that
    /// need pay nothing.
    #[inline(always)]
    pub(super) fn leaf_template(&self, level: u32, pa: u64, run_lg2: u32, prot: Prot) -> u64 {
        self.fresh_leaf(level, self.fmt.make_leaf(level, pa, run_lg2, prot))
    }

    /// A leaf `v` as [`Format::make_leaf`] made it, given the dirty state of a fresh
    /// mapping: writable-clean while tracking is on where the format needs it, else as
    /// made (the D formats make their leaves clean; while ARM tracking is off a
    /// writable-clean leaf would fault without hardware updates).
    #[inline(always)]
    pub(super) fn fresh_leaf(&self, level: u32, v: u64) -> u64 {
        if self.fmt.dirty_fresh_clean() && self.dirty_tracking() {
            self.clean_template(level, v)
        } else {
            v
        }
    }

    /// A new leaf `v` (as [`Format::make_leaf`] made it) that replaces one whose dirty
    /// record was `dirty` (a cut's pieces, a protect's rewrite): the record carried over
    /// ([`Format::leaf_carry_dirty`]) if it was dirty, else fresh ([`Self::fresh_leaf`]).
    #[inline]
    pub(super) fn stamp(&self, level: u32, v: u64, dirty: bool) -> u64 {
        if dirty && self.fmt.tracks_dirty() {
            self.fmt.leaf_carry_dirty(level, v)
        } else {
            self.fresh_leaf(level, v)
        }
    }

    /// The clean of [`Self::leaf_template`], out of line: inlined, the compiler computes
    /// it on every map and selects (a handful of instructions per page for tables that
    /// never track).
    #[cold]
    #[inline(never)]
    fn clean_template(&self, level: u32, v: u64) -> u64 {
        self.fmt.leaf_clean(level, v)
    }

    /// The body of both dirty walks over `cur`: reads (and cleans) the dirty leaves, or
    /// switches them to the new tracking state.
    ///
    /// # Safety
    /// `cur`'s table is live; as for [`Self::read_and_clear_dirty`].
    unsafe fn dirty_level<R: FnMut(u64, u64)>(
        &self,
        mut cur: Cursor<'_, F, M, X>,
        st: &mut DirtyState<'_, R>,
    ) {
        let fmt = &self.fmt;
        let (level, table) = (cur.level, cur.table);
        let mut written = CleanSpan::default();
        while !cur.done() {
            // SAFETY: the cursor's entry is inside the table.
            match unsafe { cur.load() } {
                Pte::Empty => {}
                Pte::Leaf { .. } => {
                    let (base, size) = (cur.item_base(), cur.item_size());
                    let (first, count) = (cur.item_first(), cur.item_entries());
                    let changed = match st.mode {
                        Mode::Read { clear } => {
                            let dirty = (first..first + count).any(|i| {
                                // SAFETY: runs never cross a table, so `i` is inside it.
                                fmt.leaf_dirty(level, unsafe { Self::load(table, i) })
                            });
                            if dirty {
                                // Clipped to the walk's range.
                                let lo = base.max(st.start);
                                let hi = cur.item_last().min(st.last);
                                (st.record)(lo, hi - lo + 1);
                            }
                            dirty && clear && {
                                let mut any = false;
                                for i in first..first + count {
                                    // SAFETY: inside the table; the leaf is kept from
                                    // maps and unmaps by the caller.
                                    any |= unsafe {
                                        self.rewrite_entry(table, i, |e| fmt.leaf_clean(level, e))
                                    };
                                }
                                any
                            }
                        }
                        Mode::On | Mode::Off => {
                            let on = st.mode == Mode::On;
                            let mut any = false;
                            for i in first..first + count {
                                // SAFETY: as above; the caller keeps maps away.
                                any |= unsafe {
                                    self.rewrite_entry(table, i, |e| {
                                        if on {
                                            fmt.leaf_clean(level, e)
                                        } else {
                                            fmt.leaf_mark_dirty(level, e)
                                        }
                                    })
                                };
                            }
                            any
                        }
                    };
                    if changed {
                        written.add(first, count);
                        st.gather.add_range(base, size, size);
                    }
                }
                Pte::Table { .. } => {
                    if level > 0 {
                        // SAFETY: linked tables are live; the caller's guarantee covers
                        // the leaves below.
                        unsafe { self.dirty_level(cur.child(), st) };
                    }
                }
            }
            cur.next();
        }
        self.clean_span(table, &written);
    }

    /// Replaces leaf entry `i` of `table` by `change(entry)` with a compare-and-swap,
    /// retried on the value found, so that bits the hardware sets meanwhile (accessed,
    /// dirty) go into the new value instead of being overwritten. True if the entry
    /// changed.
    ///
    /// # Safety
    /// `table` is live with more than `i` entries; entry `i` is a leaf that no map or
    /// unmap touches meanwhile.
    #[inline]
    unsafe fn rewrite_entry(
        &self,
        table: NonNull<u8>,
        i: usize,
        change: impl Fn(u64) -> u64,
    ) -> bool {
        // SAFETY: the caller's guarantee.
        let mut cur = unsafe { Self::load(table, i) };
        loop {
            let new = change(cur);
            if new == cur {
                return false;
            }
            // SAFETY: the caller's guarantee.
            if unsafe { Self::cas(table, i, cur, new) } {
                return true;
            }
            // SAFETY: the caller's guarantee.
            cur = unsafe { Self::load(table, i) };
        }
    }
}

/// A dirty bitmap like iommufd's `iova_bitmap`: one bit per page of `page_size` bytes
/// from `base`, set for every page a dirty extent touches.
///
/// The storage is any `u64` slice holder: a borrowed `&mut [u64]` (no allocation, for
/// `no_std`), or, with the `alloc` feature, an owned `Vec<u64>`
/// ([`DirtyBitmap::with_len`]). Bit `n` (bit `n % 64` of word `n / 64`) stands for the
/// page at `base + n * page_size`. Extents outside the bitmap's span are clipped
/// (the part outside is ignored). The page size may differ from the table's pages: a
/// 2 MiB dirty leaf sets 512 bits of a 4 KiB bitmap; a 4 KiB dirty page sets the bit of
/// the 2 MiB block containing it in a 2 MiB bitmap.
///
/// ```
/// use iopt::{DirtyBitmap, DirtyFlags, Gather, NoFlush, PageTable, Prot};
/// use iopt::fmt::amdv1::{AmdV1, AmdV1Config};
/// use iopt::mem::HeapMemory;
/// let fmt = AmdV1::new(AmdV1Config { dirty_tracking: true, ..AmdV1Config::default() })?;
/// let pt = PageTable::new(fmt, HeapMemory::new(), NoFlush)?;
/// let mut words = [0u64; 1]; // 64 pages of 4 KiB from 0x10_0000
/// let mut bitmap = DirtyBitmap::new(0x10_0000, 4096, &mut words[..])?;
/// bitmap.record(0x10_2000, 0x2000); // as a dirty walk would: pages 2 and 3
/// assert!(bitmap.is_dirty(0x10_3fff) && !bitmap.is_dirty(0x10_4000));
/// let mut g = Gather::new();
/// // SAFETY: nothing else uses this table and no hardware walks it.
/// unsafe {
///     let _ = pt.map_pages(0x10_0000, 0x8000_0000, 4096, 64, Prot::READ | Prot::WRITE);
///     pt.read_and_clear_dirty(0x10_0000, 64 * 4096, DirtyFlags::empty(), &mut g, &mut bitmap.recorder())?;
/// }
/// assert_eq!(words[0], 0b1100); // no device wrote: only what was recorded by hand
/// assert!(DirtyBitmap::new(0, 3000, &mut [0u64; 1][..]).is_err()); // not a power of two
/// # Ok::<(), iopt::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyBitmap<S> {
    base: u64,
    page_lg2: u32,
    bits: S,
}

impl<S: AsRef<[u64]> + AsMut<[u64]>> DirtyBitmap<S> {
    /// A bitmap of `64 * bits.len()` pages of `page_size` bytes from `base`, over the
    /// words in `bits` (left as they are: clear them first for a fresh bitmap).
    ///
    /// # Errors
    /// [`Error::BadBitmapPageSize`] if `page_size` is not a power of two;
    /// [`Error::UnalignedIova`] if `base` is not a multiple of it; [`Error::Overflow`]
    /// if the span passes the end of the 64-bit space.
    pub fn new(base: u64, page_size: u64, bits: S) -> Result<Self> {
        if !page_size.is_power_of_two() {
            return Err(Error::BadBitmapPageSize(page_size));
        }
        if base & (page_size - 1) != 0 {
            return Err(Error::UnalignedIova {
                iova: base,
                pgsize: page_size,
            });
        }
        let page_lg2 = page_size.trailing_zeros();
        let pages = (bits.as_ref().len() as u128) * 64;
        if u128::from(base) + (pages << page_lg2) > 1u128 << 64 {
            return Err(Error::Overflow);
        }
        Ok(DirtyBitmap {
            base,
            page_lg2,
            bits,
        })
    }

    /// First IOVA of the bitmap.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Bytes one bit stands for.
    pub fn page_size(&self) -> u64 {
        1 << self.page_lg2
    }

    /// Number of pages (bits).
    pub fn pages(&self) -> u64 {
        self.bits.as_ref().len() as u64 * 64
    }

    /// Records the extent `[iova, iova + len)`: sets the bit of every page it touches
    /// inside the bitmap (a partly touched page counts). The part outside is ignored,
    /// as is an empty extent.
    pub fn record(&mut self, iova: u64, len: u64) {
        let pages = self.pages();
        if len == 0 || pages == 0 {
            return;
        }
        let end = u128::from(iova) + u128::from(len); // exclusive
        let span_end = u128::from(self.base) + (u128::from(pages) << self.page_lg2);
        let lo = u128::from(iova).max(u128::from(self.base));
        let hi = end.min(span_end);
        if lo >= hi {
            return;
        }
        let first = ((lo - u128::from(self.base)) >> self.page_lg2) as u64;
        let last = ((hi - 1 - u128::from(self.base)) >> self.page_lg2) as u64;
        let words = self.bits.as_mut();
        let (fw, lw) = ((first / 64) as usize, (last / 64) as usize);
        let lo_mask = !0u64 << (first % 64);
        let hi_mask = !0u64 >> (63 - last % 64);
        if fw == lw {
            words[fw] |= lo_mask & hi_mask;
        } else {
            words[fw] |= lo_mask;
            for w in &mut words[fw + 1..lw] {
                *w = !0;
            }
            words[lw] |= hi_mask;
        }
    }

    /// True if the bit of the page containing `iova` is set (false outside the bitmap).
    pub fn is_dirty(&self, iova: u64) -> bool {
        let Some(off) = iova.checked_sub(self.base) else {
            return false;
        };
        let page = off >> self.page_lg2;
        page < self.pages() && self.bits.as_ref()[(page / 64) as usize] >> (page % 64) & 1 != 0
    }

    /// A callback for [`PageTable::read_and_clear_dirty`] (and the safe and shared
    /// tables' dirty reads) that records into this bitmap.
    pub fn recorder(&mut self) -> impl FnMut(u64, u64) + '_ {
        move |iova, len| self.record(iova, len)
    }

    /// The words.
    pub fn bits(&self) -> &[u64] {
        self.bits.as_ref()
    }

    /// Clears every bit.
    pub fn clear(&mut self) {
        self.bits.as_mut().fill(0);
    }

    /// The storage back.
    pub fn into_inner(self) -> S {
        self.bits
    }
}

#[cfg(feature = "alloc")]
impl DirtyBitmap<alloc::vec::Vec<u64>> {
    /// An owned, clear bitmap covering at least `len` bytes from `base` in pages of
    /// `page_size` bytes.
    ///
    /// # Errors
    /// As [`DirtyBitmap::new`]; [`Error::Overflow`] if `base + len` passes the end of
    /// the 64-bit space.
    ///
    /// ```
    /// let mut b = iopt::DirtyBitmap::with_len(0, 0x20_0000, 1 << 30)?; // 2 MiB pages
    /// b.record(0x1000, 0x1000);
    /// assert_eq!((b.pages(), b.bits()[0]), (512, 1));
    /// # Ok::<(), iopt::Error>(())
    /// ```
    pub fn with_len(base: u64, page_size: u64, len: u64) -> Result<Self> {
        if !page_size.is_power_of_two() {
            return Err(Error::BadBitmapPageSize(page_size));
        }
        base.checked_add(len).ok_or(Error::Overflow)?;
        let pages = len.div_ceil(page_size);
        Self::new(base, page_size, alloc::vec![0; pages.div_ceil(64) as usize])
    }
}
