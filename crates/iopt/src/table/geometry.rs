//! Geometry and aperture: the shifts, entry counts and address windows of a table,
//! computed once from the format ([`Geometry`]) so that the hot paths read small arrays.

use core::ptr::NonNull;

use super::*;

/// The IOVA ranges a table translates (inclusive bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aperture {
    /// First IOVA of the (lower) range.
    pub start: u64,
    /// Last IOVA of the (lower) range.
    pub last: u64,
    /// For sign-extended formats, the upper range `(first, last)`.
    pub upper: Option<(u64, u64)>,
}

impl Aperture {
    /// True if the whole of `first ..= last` lies inside one range of the aperture.
    pub fn contains(&self, first: u64, last: u64) -> bool {
        let inside = |s: u64, l: u64| s <= first && first <= last && last <= l;
        inside(self.start, self.last) || self.upper.is_some_and(|(s, l)| inside(s, l))
    }
}

/// The format's geometry, computed once so that the hot paths read small arrays instead
/// of re-deriving shifts and masks from the configuration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    /// log2 of the span of one entry, per level.
    pub(super) item_lg2: [u32; 8],
    /// log2 of the entry count of a table at this level that is not the top.
    pub(super) inner_lg2: [u32; 8],
    /// log2 of the entry count of a table at this level when it is the top.
    pub(super) top_lg2: [u32; 8],
    /// `2^top_lg2 - 1`: the index mask of a top table at this level.
    pub(super) top_mask: [usize; 8],
    /// `(level << 5 | run) + 1` for a page of `2^n` bytes, 0 if not supported.
    pub(super) leaf_by_lg2: [u8; 64],
    /// The aperture at the largest top.
    pub(super) max_aperture: Aperture,
    /// Whether the top can grow.
    pub(super) growable: bool,
    /// Per top level, the aperture as one contiguous window after a shift: `iova` is
    /// translated iff `(iova + ap_bias[top]) & ap_mask[top] == 0`. The bias moves a
    /// sign-extended or upper-half range down to `0 .. 2^va_bits`, so that each check on
    /// the hot paths is an add, an and and a compare, whatever the mode.
    pub(super) ap_bias: [u64; 8],
    /// See `ap_bias`.
    pub(super) ap_mask: [u64; 8],
    /// `ap_bias` and `ap_mask` of the largest top, for the argument checks.
    pub(super) max_bias: u64,
    /// See `max_bias`.
    pub(super) max_mask: u64,
    /// The bits of a physical address above the output-address width.
    pub(super) oa_over: u64,
}

pub(super) const LEVEL_MASK: usize = 7;

#[inline]
pub(super) fn mask_lg2(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

impl Geometry {
    /// The geometry of `fmt` and its page-size bitmap; [`Error::BadConfig`] if the format
    /// reports an inconsistent geometry.
    pub(super) fn of<F: Format>(fmt: &F) -> Result<(Geometry, u64)> {
        let levels = fmt.levels();
        if levels == 0 || levels > F::MAX_LEVELS || fmt.max_levels() < levels || F::MAX_LEVELS > 8 {
            return Err(Error::BadConfig("levels out of range for the format"));
        }
        let mut pgsize_bitmap = 0u64;
        let max_top = fmt.max_levels() - 1;
        let max_va = fmt.va_bits(max_top);
        for level in 0..=max_top {
            let runs = fmt.leaf_runs(level);
            for c in 0..32 {
                if runs & (1 << c) == 0 {
                    continue;
                }
                let lg2 = fmt.item_lg2(level) + c;
                if lg2 < 64 && lg2 < fmt.oa_bits() && lg2 <= max_va {
                    pgsize_bitmap |= 1 << lg2;
                }
            }
        }
        if fmt.max_levels() > levels {
            for level in 0..max_top {
                let as_top = (fmt.va_bits(level) - fmt.item_lg2(level) + F::ENTRY_LG2)
                    .max(fmt.min_table_bytes_lg2());
                let as_inner = (fmt.table_lg2(level) + F::ENTRY_LG2).max(fmt.min_table_bytes_lg2());
                if as_top != as_inner {
                    return Err(Error::BadConfig(
                        "a growing top needs top tables sized like inner tables",
                    ));
                }
            }
        }
        let mut geo = Geometry {
            item_lg2: [0; 8],
            inner_lg2: [0; 8],
            top_lg2: [0; 8],
            top_mask: [0; 8],
            leaf_by_lg2: [0; 64],
            max_aperture: aperture_of(fmt, max_top),
            growable: fmt.max_levels() > levels,
            ap_bias: [0; 8],
            ap_mask: [u64::MAX; 8],
            max_bias: 0,
            max_mask: 0,
            oa_over: !mask_lg2(fmt.oa_bits()),
        };
        for level in 0..=max_top {
            let l = level as usize;
            let va = fmt.va_bits(level);
            geo.ap_mask[l] = !mask_lg2(va);
            geo.ap_bias[l] = match fmt.va_mode() {
                VaMode::Low => 0,
                VaMode::High if va >= 64 => 0,
                VaMode::High => 1 << va,
                VaMode::SignExtended => 1 << (va - 1),
            };
            geo.item_lg2[l] = fmt.item_lg2(level);
            geo.inner_lg2[l] = fmt.table_lg2(level);
            geo.top_lg2[l] = fmt.va_bits(level) - fmt.item_lg2(level);
            geo.top_mask[l] = (1usize << geo.top_lg2[l]) - 1;
        }
        geo.max_bias = geo.ap_bias[max_top as usize & 7];
        geo.max_mask = geo.ap_mask[max_top as usize & 7];
        for lg2 in 0..64u32 {
            if pgsize_bitmap & (1 << lg2) == 0 {
                continue;
            }
            // The highest level that can hold the size (fewest entries).
            geo.leaf_by_lg2[lg2 as usize] = (0..=max_top)
                .rev()
                .find_map(|level| {
                    let c = lg2.checked_sub(fmt.item_lg2(level))?;
                    (c < 32 && fmt.leaf_runs(level) & (1 << c) != 0)
                        .then_some(((level << 5) | c) as u8 + 1)
                })
                .unwrap_or(0);
        }
        Ok((geo, pgsize_bitmap))
    }
}

impl<F: Format, M: TableMemory, X: FlushOps> PageTable<F, M, X> {
    /// The aperture of the table when its top is at `top`.
    #[inline]
    pub(super) fn aperture(&self, top: u32) -> Aperture {
        if !self.geo.growable {
            return self.geo.max_aperture;
        }
        aperture_of(&self.fmt, top)
    }

    /// True if `iova` lies in the aperture of the table with its top at `top` (the hot
    /// paths' check: shifts instead of range compares).
    #[inline(always)]
    pub(super) fn in_aperture(&self, top: u32, iova: u64) -> bool {
        let t = top as usize & 7;
        iova.wrapping_add(self.geo.ap_bias[t]) & self.geo.ap_mask[t] == 0
    }

    #[inline]
    pub(super) fn top(&self) -> (NonNull<u8>, u32) {
        // Acquire: pairs with the Release store that published a (new) top, so the top
        // table's contents are visible.
        let v = self.top.load(Ordering::Acquire);
        let p = v.map_addr(|a| a & !LEVEL_MASK);
        // SAFETY: `top` always holds a live, non-null table pointer (set in `new`), and
        // tables are at least 64-byte aligned, so clearing the level bits keeps it.
        (
            unsafe { NonNull::new_unchecked(p) },
            (v.addr() & LEVEL_MASK) as u32,
        )
    }

    /// The top pointer with the top level in its low bits.
    #[inline]
    pub(super) fn tag(root: NonNull<u8>, top: u32) -> *mut u8 {
        root.as_ptr().map_addr(|a| a | top as usize)
    }

    /// log2 of the number of entries of the table at `level` when the top is at `top`.
    #[inline]
    pub(super) fn entries_lg2(&self, level: u32, top: u32) -> u32 {
        if level == top {
            self.geo.top_lg2[level as usize & 7]
        } else {
            self.geo.inner_lg2[level as usize & 7]
        }
    }

    /// log2 of the entry count of a table at `level` that is not the top.
    #[inline]
    pub(super) fn inner_lg2(&self, level: u32) -> u32 {
        self.geo.inner_lg2[level as usize & 7]
    }

    /// log2 of the bytes of a table at `level` that is not the top.
    #[inline]
    pub(super) fn inner_bytes_lg2(&self, level: u32) -> u32 {
        (self.inner_lg2(level) + F::ENTRY_LG2).max(self.fmt.min_table_bytes_lg2())
    }

    /// log2 of the span of one entry at `level`.
    #[inline]
    pub(super) fn item_lg2(&self, level: u32) -> u32 {
        self.geo.item_lg2[level as usize & 7]
    }

    #[inline]
    pub(super) fn table_bytes_lg2(&self, level: u32, top: u32) -> u32 {
        (self.entries_lg2(level, top) + F::ENTRY_LG2).max(self.fmt.min_table_bytes_lg2())
    }

    /// The level and run for a page size, if the table can hold it.
    pub(super) fn leaf_for(&self, pgsize: u64) -> Option<(u32, u32)> {
        if !pgsize.is_power_of_two() {
            return None;
        }
        match self.geo.leaf_by_lg2[pgsize.trailing_zeros() as usize] {
            0 => None,
            v => Some(((v - 1) as u32 >> 5, (v - 1) as u32 & 31)),
        }
    }

    /// True if `iova ..= last` (with `iova <= last`) lies in one range of the aperture at
    /// the largest top: shift checks instead of range compares.
    #[inline(always)]
    pub(super) fn in_max_aperture(&self, iova: u64, last: u64) -> bool {
        // After the bias the aperture is one window `0 .. 2^va`: the range lies in it
        // iff its end does and it did not wrap across the window's edge (which is where
        // a sign-extended range would cross the hole between the halves).
        let (a, b) = (
            iova.wrapping_add(self.geo.max_bias),
            last.wrapping_add(self.geo.max_bias),
        );
        b & self.geo.max_mask == 0 && a <= b
    }
}

/// The aperture of `fmt` with its top at `top`.
pub(super) fn aperture_of<F: Format>(fmt: &F, top: u32) -> Aperture {
    let va = fmt.va_bits(top);
    match fmt.va_mode() {
        VaMode::Low => Aperture {
            start: 0,
            last: mask_lg2(va),
            upper: None,
        },
        VaMode::High => Aperture {
            start: !mask_lg2(va),
            last: u64::MAX,
            upper: None,
        },
        VaMode::SignExtended => Aperture {
            start: 0,
            last: mask_lg2(va - 1),
            upper: Some((!mask_lg2(va - 1), u64::MAX)),
        },
    }
}
