//! Address newtypes: physical addresses, DMA (bus) addresses, page frame numbers.
//!
//! `dma_addr_t` and `phys_addr_t` are 64-bit on every target, including 32-bit ones,
//! so RAM above 4 GiB and 64-bit masks work on armv7 too.

use core::fmt;

/// log2 of the page size. The platform's pages are always 4 KiB.
pub const PAGE_SHIFT: u32 = 12;
/// The page size in bytes.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// A CPU physical address (`phys_addr_t`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysAddr(pub u64);

/// A device-visible bus address (`dma_addr_t`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DmaAddr(pub u64);

/// A page frame number: a physical address shifted right by [`PAGE_SHIFT`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pfn(pub u64);

/// The sentinel every mapping call returns on failure (`~(dma_addr_t)0`).
pub const DMA_MAPPING_ERROR: DmaAddr = DmaAddr(u64::MAX);

impl PhysAddr {
    /// The page frame this address lies in.
    pub const fn pfn(self) -> Pfn {
        Pfn(self.0 >> PAGE_SHIFT)
    }

    /// The offset of this address inside its page.
    pub const fn page_offset(self) -> usize {
        (self.0 as usize) & (PAGE_SIZE - 1)
    }

    /// `self + bytes`, or `None` on overflow.
    pub const fn checked_add(self, bytes: u64) -> Option<PhysAddr> {
        match self.0.checked_add(bytes) {
            Some(v) => Some(PhysAddr(v)),
            None => None,
        }
    }
}

impl DmaAddr {
    /// True for [`DMA_MAPPING_ERROR`].
    pub const fn is_error(self) -> bool {
        self.0 == DMA_MAPPING_ERROR.0
    }

    /// `self + bytes`, or `None` on overflow.
    pub const fn checked_add(self, bytes: u64) -> Option<DmaAddr> {
        match self.0.checked_add(bytes) {
            Some(v) => Some(DmaAddr(v)),
            None => None,
        }
    }
}

impl Pfn {
    /// The physical address of the first byte of this page.
    pub const fn phys(self) -> PhysAddr {
        PhysAddr(self.0 << PAGE_SHIFT)
    }
}

/// The page order (log2 of the page count) that covers `size` bytes: the kernel's `get_order`.
pub const fn get_order(size: usize) -> u32 {
    if size <= PAGE_SIZE { 0 } else { usize::BITS - ((size - 1) >> PAGE_SHIFT).leading_zeros() }
}

/// `size` rounded up to whole pages, or `None` on overflow (`PAGE_ALIGN`).
pub const fn page_align(size: usize) -> Option<usize> {
    match size.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v & !(PAGE_SIZE - 1)),
        None => None,
    }
}

macro_rules! hex_debug {
    ($($t:ident),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({:#x})"), self.0)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    )*};
}
hex_debug!(PhysAddr, DmaAddr, Pfn);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_order_matches_the_kernel() {
        assert_eq!(get_order(1), 0);
        assert_eq!(get_order(4096), 0);
        assert_eq!(get_order(4097), 1);
        assert_eq!(get_order(8192), 1);
        assert_eq!(get_order(8193), 2);
        assert_eq!(get_order(4 << 20), 10);
    }

    #[test]
    fn page_align_refuses_overflow() {
        assert_eq!(page_align(1), Some(4096));
        assert_eq!(page_align(4096), Some(4096));
        assert_eq!(page_align(usize::MAX), None);
    }

    #[test]
    fn pfn_and_offset_round_trip() {
        let p = PhysAddr(0x1_2345_6789);
        assert_eq!(p.pfn(), Pfn(0x12_3456));
        assert_eq!(p.page_offset(), 0x789);
        assert_eq!(p.pfn().phys().0 + p.page_offset() as u64, p.0);
        assert!(DMA_MAPPING_ERROR.is_error());
    }
}
