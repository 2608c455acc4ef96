//! Human-readable sizes and address ranges.

/// Binary unit suffixes, largest first, with their log2.
const UNITS: [(u32, &str); 6] = [
    (60, "E"),
    (50, "P"),
    (40, "T"),
    (30, "G"),
    (20, "M"),
    (10, "K"),
];

/// A byte count in the largest binary unit that divides it exactly (`4K`, `2M`, `16G`),
/// else in bytes (`512B`).
pub fn size(bytes: u64) -> String {
    UNITS
        .iter()
        .find(|&&(lg2, _)| bytes != 0 && bytes.trailing_zeros() >= lg2)
        .map_or_else(
            || format!("{bytes}B"),
            |&(lg2, suffix)| format!("{}{suffix}", bytes >> lg2),
        )
}

/// The sizes whose bits are set in a page-size bitmap, smallest first.
pub fn page_sizes(bitmap: u64) -> impl Iterator<Item = u64> {
    (0..64)
        .map(|bit| 1u64 << bit)
        .filter(move |s| bitmap & s != 0)
}

/// The page sizes of a bitmap in human units, separated by spaces.
pub fn page_size_list(bitmap: u64) -> String {
    page_sizes(bitmap).map(size).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(4096), "4K");
        assert_eq!(size(64 << 10), "64K");
        assert_eq!(size(3 << 20), "3M");
        assert_eq!(size(16 << 30), "16G");
        assert_eq!(size(1 << 51), "2P");
        assert_eq!(size(512), "512B");
        assert_eq!(size(197_120), "197120B");
        assert_eq!(size(0), "0B");
    }

    #[test]
    fn bitmap_list() {
        assert_eq!(page_size_list(0x4_4221_1000), "4K 64K 2M 32M 1G 16G");
        assert_eq!(page_size_list(0), "");
    }
}
