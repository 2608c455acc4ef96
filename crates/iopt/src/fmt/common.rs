//! Encodings that several formats share, written once.
//!
//! Formats built on 4 KiB tables of 512 eight-byte entries (x86-64, AMD v1, VT-d second
//! stage, RISC-V Sv39/48/57) take their geometry from [`radix4k`]; formats that
//! sign-extend their IOVAs share [`sign_extended_va_bits`]. Helpers here are `const fn`
//! or `#[inline]`, so that a format built on them costs nothing extra.

/// The 4 KiB / 512-entry radix tree: level `n` entries span `2^(12 + 9n)` bytes.
pub mod radix4k {
    /// log2 of the smallest page and of every table's size in bytes.
    pub const PAGE_LG2: u32 = 12;
    /// log2 of the entries in a full table.
    pub const TABLE_LG2: u32 = 9;

    /// log2 of the bytes one entry at `level` spans.
    #[inline]
    pub const fn item_lg2(level: u32) -> u32 {
        PAGE_LG2 + TABLE_LG2 * level
    }

    /// IOVA bits translated by a tree whose top table is at `top_level`, capped at 64.
    #[inline]
    pub const fn va_bits(top_level: u32) -> u32 {
        let bits = item_lg2(top_level + 1);
        if bits > 64 { 64 } else { bits }
    }
}

/// Inside an `impl Format`, the geometry methods every 4 KiB / 512-entry radix format
/// shares: `item_lg2` from [`radix4k::item_lg2`], and `min_table_bytes_lg2` of a whole
/// 4 KiB page (these formats' root pointers and table entries hold page numbers, so
/// every table, the top included, is a page). With `full_tables`, also `table_lg2` of
/// 512 entries at every level.
macro_rules! radix4k_geometry {
    (full_tables) => {
        #[inline]
        fn table_lg2(&self, _level: u32) -> u32 {
            $crate::fmt::common::radix4k::TABLE_LG2
        }
        $crate::fmt::common::radix4k_geometry!();
    };
    () => {
        #[inline]
        fn item_lg2(&self, level: u32) -> u32 {
            $crate::fmt::common::radix4k::item_lg2(level)
        }
        #[inline]
        fn min_table_bytes_lg2(&self) -> u32 {
            $crate::fmt::common::radix4k::PAGE_LG2
        }
    };
}
pub(crate) use radix4k_geometry;

/// A mask of the address bits `lo ..= hi` (inclusive), e.g. `addr_mask(12, 51)` for the
/// 40-bit page-frame field most 64-bit formats use.
#[inline]
pub const fn addr_mask(lo: u32, hi: u32) -> u64 {
    (u64::MAX >> (63 - hi)) & !((1u64 << lo) - 1)
}

/// The `va_bits` a sign-extending format reports: the bits its tree decodes, when the
/// sign bit is part of the translated range; one bit fewer when only the lower half is
/// translated.
#[inline]
pub const fn sign_extended_va_bits(tree_bits: u32, sign_extend: bool) -> u32 {
    if sign_extend {
        tree_bits
    } else {
        tree_bits - 1
    }
}

/// Output addresses stored as a page-frame number that does not sit at its address
/// position: address bits `page_lg2..` go to entry bits `lo ..= hi` (RISC-V keeps
/// PA\[55:12\] in PTE bits 53:10). Such formats are not [`OA_IN_PLACE`].
///
/// [`OA_IN_PLACE`]: crate::Format::OA_IN_PLACE
pub mod pfn_field {
    use super::addr_mask;

    /// The entry bits holding address `pa` (which must be `2^page_lg2` aligned).
    #[inline]
    pub const fn encode(pa: u64, page_lg2: u32, lo: u32, hi: u32) -> u64 {
        ((pa >> page_lg2) << lo) & addr_mask(lo, hi)
    }

    /// The address held in entry bits `lo ..= hi` of `pte`.
    #[inline]
    pub const fn decode(pte: u64, page_lg2: u32, lo: u32, hi: u32) -> u64 {
        ((pte & addr_mask(lo, hi)) >> lo) << page_lg2
    }
}

/// The [`VaMode`](crate::VaMode) of a format that sign-extends its IOVAs when
/// `sign_extend` is set and otherwise translates the lower half only.
#[inline]
pub const fn sign_extended_va_mode(sign_extend: bool) -> crate::VaMode {
    if sign_extend {
        crate::VaMode::SignExtended
    } else {
        crate::VaMode::Low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(addr_mask(12, 51), 0x000f_ffff_ffff_f000);
        assert_eq!(addr_mask(0, 63), u64::MAX);
        assert_eq!(addr_mask(12, 47), 0x0000_ffff_ffff_f000);
    }

    #[test]
    fn radix() {
        assert_eq!(radix4k::item_lg2(0), 12);
        assert_eq!(radix4k::item_lg2(2), 30);
        assert_eq!(radix4k::va_bits(3), 48);
        assert_eq!(radix4k::va_bits(4), 57);
        assert_eq!(radix4k::va_bits(5), 64);
    }

    #[test]
    fn pfn_fields() {
        // RISC-V: PA[55:12] in bits 53:10.
        assert_eq!(pfn_field::encode(0x8000_1000, 12, 10, 53), 0x2000_0400);
        assert_eq!(pfn_field::decode(0x2000_04df, 12, 10, 53), 0x8000_1000);
        assert_eq!(
            pfn_field::encode(0x00ff_ffff_ffff_f000, 12, 10, 53),
            0x003f_ffff_ffff_fc00
        );
        assert_eq!(
            pfn_field::decode(u64::MAX, 12, 10, 53),
            0x00ff_ffff_ffff_f000
        );
    }
}

/// The x86 page-size convention, shared by x86-64 paging and the VT-d second stage: a
/// level-0 entry is always a 4 KiB page; an entry at level 1 (2 MiB) or 2 (1 GiB) is a
/// page when its PS bit (bit 7) is set and points to a table otherwise; higher levels
/// only point to tables.
pub mod x86_ps {
    /// Page size: set in 2 MiB and 1 GiB leaves.
    pub const PS: u64 = 1 << 7;
    /// The highest level that can hold a leaf (1 GiB pages).
    pub const MAX_LEAF_LEVEL: u32 = 2;

    /// True if the valid entry `pte` at `level` maps a page rather than a table.
    #[inline]
    pub const fn is_leaf(level: u32, pte: u64) -> bool {
        level == 0 || (level <= MAX_LEAF_LEVEL && pte & PS != 0)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn page_size_bit() {
            assert!(is_leaf(0, 0x1003));
            assert!(!is_leaf(1, 0x1003));
            assert!(is_leaf(1, 0x20_0083));
            assert!(is_leaf(2, 0x4000_0083));
            assert!(!is_leaf(3, 0x4000_0083));
        }
    }
}
