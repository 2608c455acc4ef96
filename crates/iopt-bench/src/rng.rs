//! A tiny deterministic pseudo-random generator: W4's addresses and W5's operations (and
//! the `iopt demo` workload, which uses it too).

/// xorshift64* (Marsaglia's xorshift with a multiplicative output scramble): fast,
/// reproducible from a seed, and plenty for choosing operations.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator seeded from `seed`; every seed (0 included) gives a usable stream.
    pub fn new(seed: u64) -> Self {
        // One splitmix64 step spreads similar seeds apart and never leaves zero (the one
        // state xorshift cannot leave).
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        XorShift(if z == 0 { 1 } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`; the slight modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0, "empty range");
        self.next_u64() % n.max(1)
    }

    /// A random index into a collection of `len > 0` elements.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability `percent / 100`.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = XorShift::new(0);
        let mut b = XorShift::new(0);
        for _ in 0..1000 {
            let x = a.below(17);
            assert_eq!(x, b.below(17));
            assert!(x < 17);
        }
        assert_ne!(XorShift::new(1).next_u64(), XorShift::new(2).next_u64());
    }
}
