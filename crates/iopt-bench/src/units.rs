//! Sizes in binary units, as the benchmarks and the tool print and take them (`64K`,
//! `1G`), and page-size bitmaps in those units. The one copy: the tool (`iopt-cli`) uses
//! this module.

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

/// Parses a byte count with an optional binary unit: `4096`, `64K`, `1M`, `2G`, `1GiB`
/// (K, M, G, T; case-insensitive; `B`, `iB` accepted after the unit).
///
/// # Errors
/// A message naming the input when it is not such a count or does not fit in 64 bits.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size (examples: 4096, 64K, 1M, 1G)");
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .or_else(|| t.strip_suffix(['B', 'b']))
        .unwrap_or(t);
    let (digits, lg2) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let lg2 = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(bad()),
            };
            (&t[..i], lg2)
        }
        _ => (t, 0),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << lg2).ok_or_else(bad)
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
    fn parsing() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2MB"), Ok(2 << 20));
        assert_eq!(parse_size("512B"), Ok(512));
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("-1M").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn bitmap_list() {
        assert_eq!(page_size_list(0x4_4221_1000), "4K 64K 2M 32M 1G 16G");
        assert_eq!(page_size_list(0), "");
    }
}
