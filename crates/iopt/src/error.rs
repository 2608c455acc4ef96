//! The one error type of the library: one variant per cause.

/// Why an operation failed.
///
/// Every variant names one cause, so a caller (or a test) can tell them apart. Argument
/// errors are detected before anything is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The permissions grant neither read nor write.
    #[error("prot grants neither read nor write")]
    NoAccess,
    /// The permissions have bits set that no [`crate::Prot`] flag defines (the value
    /// names them).
    #[error("prot has undefined bits {0:#x}")]
    UndefinedProt(u32),
    /// The dirty-read flags have bits set that no [`crate::DirtyFlags`] flag defines (the
    /// value names them).
    #[error("dirty flags have undefined bits {0:#x}")]
    UndefinedDirtyFlags(u32),
    /// The reservation was made by another table.
    #[error("the reservation belongs to another table")]
    ForeignReservation,
    /// A reservation needs more table pages than the table memory can give: nothing was
    /// allocated.
    #[error(
        "the reservation needs {needed} table pages of {} bytes, the memory can give {available}",
        1u64 << size_lg2
    )]
    ReservationTooLarge {
        /// log2 of the size of the table pages in question.
        size_lg2: u32,
        /// Pages of that size the worst case needs.
        needed: u64,
        /// Pages of that size the memory says it can still give.
        available: u64,
    },
    /// The page size is not one this table can hold (see `Info::pgsize_bitmap`).
    #[error("page size {0:#x} is not supported by this table")]
    BadPageSize(u64),
    /// The IOVA is not aligned to the page size.
    #[error("iova {iova:#x} is not aligned to the page size {pgsize:#x}")]
    UnalignedIova {
        /// The IOVA given.
        iova: u64,
        /// The page size given.
        pgsize: u64,
    },
    /// The physical address is not aligned to the page size.
    #[error("paddr {paddr:#x} is not aligned to the page size {pgsize:#x}")]
    UnalignedPaddr {
        /// The physical address given.
        paddr: u64,
        /// The page size given.
        pgsize: u64,
    },
    /// A page count of zero (or a zero length).
    #[error("length is zero")]
    ZeroLength,
    /// `pgsize * pgcount`, or the end of the range, does not fit in 64 bits.
    #[error("length overflows the address space")]
    Overflow,
    /// Part of the IOVA range lies outside the table's aperture.
    #[error("iova range {iova:#x}..={last:#x} is outside the aperture")]
    OutOfAperture {
        /// First IOVA of the request.
        iova: u64,
        /// Last IOVA of the request.
        last: u64,
    },
    /// The physical range goes beyond the output-address width.
    #[error("paddr range ending at {last:#x} exceeds the {oa_bits}-bit output address size")]
    PaddrTooLarge {
        /// Last physical address of the request.
        last: u64,
        /// The table's output-address width.
        oa_bits: u32,
    },
    /// Something is already mapped at this IOVA.
    #[error("iova {0:#x} is already mapped")]
    AddressInUse(u64),
    /// No memory for a new table page.
    #[error("out of memory for a table page")]
    OutOfMemory,
    /// A concurrent guard's operation reaches outside the range the guard holds.
    #[error("iova range {iova:#x}..={last:#x} is outside the guard's range")]
    OutsideGuard {
        /// First IOVA of the operation.
        iova: u64,
        /// Last IOVA of the operation.
        last: u64,
    },
    /// The table memory handed out a table at a physical address the format cannot
    /// point to (for example above 4 GiB for 32-bit descriptors).
    #[error("table at physical address {pa:#x} is beyond the format's {bits}-bit reach")]
    TableOutOfReach {
        /// Physical address of the table.
        pa: u64,
        /// Address bits the format's descriptors hold.
        bits: u32,
    },
    /// A map against a reservation needed more tables than the reservation held (the
    /// map was not in the plan the reservation was made for).
    #[error("the reservation holds no table page of the size needed")]
    ReservationExhausted,
    /// The operation would split a large or contiguous mapping.
    #[error("range would split the {size:#x}-byte mapping at {base:#x}")]
    WouldSplit {
        /// Base IOVA of the large or contiguous mapping.
        base: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// The edit replaces a live entry in a way this format's hardware only allows with
    /// break-before-make (a cut where the spec gives no hitless replacement, a change of
    /// memory type on ARM): nothing was changed. Opt in with [`crate::Bbm::Allow`] to
    /// have the entry invalidated and flushed first.
    #[error(
        "changing the {size:#x}-byte mapping at {base:#x} needs break-before-make on this format"
    )]
    NeedsBreakBeforeMake {
        /// Base IOVA of the mapping.
        base: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// Nothing is mapped in the range.
    #[error("nothing is mapped at iova {0:#x}")]
    NotMapped(u64),
    /// Dirty tracking was asked of a table whose format (as configured) has none.
    #[error(
        "the table's format has no hardware dirty tracking (or it is not enabled in its configuration)"
    )]
    NoDirtyTracking,
    /// A dirty bitmap's page size is not a power of two (the value given).
    #[error("dirty bitmap page size {0:#x} is not a power of two")]
    BadBitmapPageSize(u64),
    /// The configuration cannot be built; the message names the limit.
    #[error("invalid configuration: {0}")]
    BadConfig(&'static str),
}

/// Shorthand for `core::result::Result<T, iopt::Error>`.
pub type Result<T, E = Error> = core::result::Result<T, E>;
