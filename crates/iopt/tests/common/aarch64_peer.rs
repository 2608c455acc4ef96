//! aarch64-paging as a test peer: iopt's permissions in its attribute types, and its
//! table memory (fresh heap pages, or adopting a table iopt built). Shared by the
//! differential tests of ARM64 and ARM32 LPAE (whose descriptors are the ARM64 4K ones).
#![allow(dead_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

use aarch64_paging::descriptor::{
    El1Attributes, PagingAttributes, PhysicalAddress, Stage2Attributes,
};
use aarch64_paging::paging::{PageTable as PeerPage, Translation as PeerTranslation};
use iopt::Prot;

/// Stage 1, with iopt's MAIR layout (index 0 normal non-cacheable, 1 write-back,
/// 2 device): AF and nG always; AP\[2\] for read-only; AP\[1\] unless privileged;
/// inner-shareable when cacheable, else outer; UXN and PXN for no-execute.
pub fn s1_attrs(prot: Prot) -> El1Attributes {
    let mut a = El1Attributes::VALID | El1Attributes::ACCESSED | El1Attributes::NON_GLOBAL;
    if prot.contains(Prot::READ) && !prot.contains(Prot::WRITE) {
        a |= El1Attributes::READ_ONLY;
    }
    if !prot.contains(Prot::PRIV) {
        a |= El1Attributes::USER;
    }
    a |= if prot.contains(Prot::MMIO) {
        El1Attributes::ATTRIBUTE_INDEX_2
    } else if prot.contains(Prot::CACHE) {
        El1Attributes::ATTRIBUTE_INDEX_1
    } else {
        El1Attributes::ATTRIBUTE_INDEX_0
    };
    a |= if prot.contains(Prot::CACHE) {
        El1Attributes::INNER_SHAREABLE
    } else {
        El1Attributes::OUTER_SHAREABLE
    };
    if prot.contains(Prot::NOEXEC) {
        a |= El1Attributes::UXN | El1Attributes::PXN;
    }
    a
}

/// Stage 2: AF always; S2AP read/write from the prot; MemAttr Device-nGnRE for MMIO,
/// inner+outer write-back when cacheable, else inner+outer non-cacheable; the stage-1
/// shareability rule; XN for no-execute.
pub fn s2_attrs(prot: Prot) -> Stage2Attributes {
    let mut a = Stage2Attributes::VALID | Stage2Attributes::ACCESS_FLAG;
    if prot.contains(Prot::READ) {
        a |= Stage2Attributes::S2AP_ACCESS_RO;
    }
    if prot.contains(Prot::WRITE) {
        a |= Stage2Attributes::S2AP_ACCESS_WO;
    }
    a |= if prot.contains(Prot::MMIO) {
        Stage2Attributes::MEMATTR_DEVICE_nGnRE
    } else if prot.contains(Prot::CACHE) {
        Stage2Attributes::MEMATTR_NORMAL_INNER_WB | Stage2Attributes::MEMATTR_NORMAL_OUTER_WB
    } else {
        Stage2Attributes::MEMATTR_NORMAL_INNER_NC | Stage2Attributes::MEMATTR_NORMAL_OUTER_NC
    };
    a |= if prot.contains(Prot::CACHE) {
        Stage2Attributes::SH_INNER
    } else {
        Stage2Attributes::SH_OUTER
    };
    if prot.contains(Prot::NOEXEC) {
        a |= Stage2Attributes::XN;
    }
    a
}

/// aarch64-paging's table memory for its own tables: zeroed heap pages, PA == host address.
pub struct HeapTr {
    pub live: usize,
}

impl<A: PagingAttributes> PeerTranslation<A> for HeapTr {
    fn allocate_table(&mut self) -> (NonNull<PeerPage<A>>, PhysicalAddress) {
        // SAFETY: the layout of a 4K-aligned 4K table has a non-zero size.
        let p = unsafe { alloc_zeroed(Layout::new::<PeerPage<A>>()) }.cast::<PeerPage<A>>();
        let p = NonNull::new(p).expect("out of memory");
        self.live += 1;
        (p, PhysicalAddress(p.as_ptr() as usize))
    }
    unsafe fn deallocate_table(&mut self, t: NonNull<PeerPage<A>>) {
        self.live -= 1;
        // SAFETY: aarch64-paging passes back a table `allocate_table` gave it, once.
        unsafe { dealloc(t.as_ptr().cast(), Layout::new::<PeerPage<A>>()) }
    }
    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PeerPage<A>> {
        NonNull::new(pa.0 as *mut PeerPage<A>).expect("null table address")
    }
}

/// Lets aarch64-paging walk a table someone else built: `RootTable::new` takes its root
/// from the first `allocate_table`, which hands back the existing root; nothing is ever
/// freed. Only for read-only walks (`walk_range`); mapping would need a new table and panic.
pub struct Adopt {
    pub root: Option<u64>,
}

impl<A: PagingAttributes> PeerTranslation<A> for Adopt {
    fn allocate_table(&mut self) -> (NonNull<PeerPage<A>>, PhysicalAddress) {
        let pa = self
            .root
            .take()
            .expect("an adopted table must not allocate");
        let p = NonNull::new(pa as *mut PeerPage<A>).expect("null root");
        (p, PhysicalAddress(pa as usize))
    }
    unsafe fn deallocate_table(&mut self, _: NonNull<PeerPage<A>>) {}
    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PeerPage<A>> {
        NonNull::new(pa.0 as *mut PeerPage<A>).expect("null table address")
    }
}
