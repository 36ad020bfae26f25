//! `Attrs`: the `DMA_ATTR_*` bits, with the kernel's values.

use crate::errno::Errno;

bitflags::bitflags! {
    /// `unsigned long attrs` of the `*_attrs` calls.
    ///
    /// Bit 0 (`DMA_ATTR_WRITE_BARRIER`) was removed from the kernel in 2019 and is
    /// refused here like any other unknown bit.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
    pub struct Attrs: u32 {
        /// Reads and writes may pass each other (e.g. PCIe relaxed ordering).
        const WEAK_ORDERING = 1 << 1;
        /// Writes may be buffered (write-combining CPU mapping).
        const WRITE_COMBINE = 1 << 2;
        /// The seed API's non-consistent allocation: cached memory whose ownership moves
        /// with `dma_sync_*` (the kernel replaced it with `dma_alloc_pages` in v5.10; here
        /// it is served by the same cached path).
        const NON_CONSISTENT = 1 << 3;
        /// No CPU mapping: the returned pointer is an opaque cookie for free/mmap only.
        const NO_KERNEL_MAPPING = 1 << 4;
        /// Skip cache maintenance on map/unmap: the buffer is already in the device domain.
        const SKIP_CPU_SYNC = 1 << 5;
        /// Physically contiguous even behind an IOMMU.
        const FORCE_CONTIGUOUS = 1 << 6;
        /// Hint: do not try high-order pages.
        const ALLOC_SINGLE_PAGES = 1 << 7;
        /// Do not warn on allocation or bounce failure.
        const NO_WARN = 1 << 8;
        /// Accessible only at elevated privilege (`IOMMU_PRIV`).
        const PRIVILEGED = 1 << 9;
        /// The physical address is MMIO, not RAM: no cache maintenance, no bouncing.
        const MMIO = 1 << 10;
        /// The driver promises not to dirty cache lines shared by small buffers
        /// (silences dma-debug's overlap check only).
        const DEBUGGING_IGNORE_CACHELINES = 1 << 11;
        /// Fail where bouncing or cache maintenance would be needed.
        const REQUIRE_COHERENT = 1 << 12;
    }
}

impl Attrs {
    /// Converts the C ABI's `unsigned long`.
    ///
    /// # Errors
    ///
    /// `EINVAL` when any bit is not a `DMA_ATTR_*` this library knows.
    pub fn from_raw(raw: u64) -> Result<Attrs, Errno> {
        u32::try_from(raw).ok().and_then(Attrs::from_bits).ok_or(Errno::EINVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_the_kernels_and_unknown_bits_are_refused() {
        assert_eq!(Attrs::WRITE_COMBINE.bits(), 4);
        assert_eq!(Attrs::NON_CONSISTENT.bits(), 8);
        assert_eq!(Attrs::SKIP_CPU_SYNC.bits(), 0x20);
        assert_eq!(Attrs::NO_WARN.bits(), 0x100);
        assert_eq!(Attrs::MMIO.bits(), 0x400);
        assert_eq!(Attrs::from_raw(0x20), Ok(Attrs::SKIP_CPU_SYNC));
        assert_eq!(Attrs::from_raw(1), Err(Errno::EINVAL));
        assert_eq!(Attrs::from_raw(1 << 40), Err(Errno::EINVAL));
    }
}
