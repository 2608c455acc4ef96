//! Mapping permissions and attributes, in the vocabulary of Linux's `IOMMU_*` flags.

bitflags::bitflags! {
    /// What a mapping allows and how it is cached.
    ///
    /// The bit values are those of Linux's `IOMMU_READ`, `IOMMU_WRITE`, ... so that a
    /// kernel-style caller can pass its flags through unchanged. Every format maps these
    /// onto its own descriptor bits; a format that cannot express one of them ignores it
    /// (documented per format), except that a mapping always needs `READ` or `WRITE`.
    ///
    /// ```
    /// use iopt::Prot;
    /// let p = Prot::READ | Prot::WRITE | Prot::CACHE;
    /// assert!(p.contains(Prot::WRITE));
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct Prot: u32 {
        /// The device may read.
        const READ = 1 << 0;
        /// The device may write.
        const WRITE = 1 << 1;
        /// Cacheable, coherent memory (write-back, shareable where the format says so).
        const CACHE = 1 << 2;
        /// The device may not fetch instructions from it.
        const NOEXEC = 1 << 3;
        /// Device (MMIO) memory: uncached, no speculation.
        const MMIO = 1 << 4;
        /// Only privileged accesses are allowed.
        const PRIV = 1 << 5;
    }
}

impl Prot {
    /// True if the mapping grants some access (read or write).
    #[inline]
    pub const fn has_access(self) -> bool {
        self.intersects(Prot::READ.union(Prot::WRITE))
    }
}
