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
}
