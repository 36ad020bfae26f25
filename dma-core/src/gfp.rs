//! `Gfp`: allocation flags (`gfp_t`), with the kernel's classic (v5.x) bit values.

use crate::errno::Errno;

bitflags::bitflags! {
    /// How an allocation may behave: which zone, whether it may block, zeroing, warnings.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
    pub struct Gfp: u32 {
        /// `__GFP_DMA`: from ZONE_DMA.
        const __GFP_DMA = 0x01;
        /// `__GFP_HIGHMEM`.
        const __GFP_HIGHMEM = 0x02;
        /// `__GFP_DMA32`: from ZONE_DMA32.
        const __GFP_DMA32 = 0x04;
        /// `__GFP_MOVABLE`.
        const __GFP_MOVABLE = 0x08;
        /// `__GFP_RECLAIMABLE`.
        const __GFP_RECLAIMABLE = 0x10;
        /// `__GFP_HIGH`: may use emergency reserves.
        const __GFP_HIGH = 0x20;
        /// `__GFP_IO`.
        const __GFP_IO = 0x40;
        /// `__GFP_FS`.
        const __GFP_FS = 0x80;
        /// `__GFP_ZERO`: return zeroed memory.
        const __GFP_ZERO = 0x100;
        /// `__GFP_ATOMIC`.
        const __GFP_ATOMIC = 0x200;
        /// `__GFP_DIRECT_RECLAIM`: the caller may sleep.
        const __GFP_DIRECT_RECLAIM = 0x400;
        /// `__GFP_KSWAPD_RECLAIM`.
        const __GFP_KSWAPD_RECLAIM = 0x800;
        /// `__GFP_WRITE`.
        const __GFP_WRITE = 0x1000;
        /// `__GFP_NOWARN`: no failure message.
        const __GFP_NOWARN = 0x2000;
        /// `__GFP_RETRY_MAYFAIL`.
        const __GFP_RETRY_MAYFAIL = 0x4000;
        /// `__GFP_NOFAIL`.
        const __GFP_NOFAIL = 0x8000;
        /// `__GFP_NORETRY`: fail fast rather than retry.
        const __GFP_NORETRY = 0x1_0000;
        /// `__GFP_COMP`: compound page (refused by the DMA allocators).
        const __GFP_COMP = 0x4_0000;

        /// `GFP_ATOMIC`: may not sleep.
        const GFP_ATOMIC = Self::__GFP_HIGH.bits() | Self::__GFP_ATOMIC.bits() | Self::__GFP_KSWAPD_RECLAIM.bits();
        /// `GFP_KERNEL`: may sleep.
        const GFP_KERNEL = Self::__GFP_DIRECT_RECLAIM.bits() | Self::__GFP_KSWAPD_RECLAIM.bits() | Self::__GFP_IO.bits() | Self::__GFP_FS.bits();
        /// `GFP_NOWAIT`.
        const GFP_NOWAIT = Self::__GFP_KSWAPD_RECLAIM.bits();
        /// `GFP_DMA` (= `__GFP_DMA`).
        const GFP_DMA = Self::__GFP_DMA.bits();
        /// `GFP_DMA32` (= `__GFP_DMA32`).
        const GFP_DMA32 = Self::__GFP_DMA32.bits();
    }
}

impl Gfp {
    /// Zone modifiers, which `dma_alloc_attrs` strips and `dma_alloc_pages` refuses.
    pub const ZONE_MASK: Gfp = Gfp::__GFP_DMA.union(Gfp::__GFP_DMA32).union(Gfp::__GFP_HIGHMEM);

    /// Converts the C ABI's `gfp_t`.
    ///
    /// # Errors
    ///
    /// `EINVAL` when any bit is not one this library knows.
    pub fn from_raw(raw: u32) -> Result<Gfp, Errno> {
        Gfp::from_bits(raw).ok_or(Errno::EINVAL)
    }

    /// `gfpflags_allow_blocking`: true when the caller may sleep.
    pub const fn allows_blocking(self) -> bool {
        self.contains(Gfp::__GFP_DIRECT_RECLAIM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composites_and_blocking() {
        assert!(Gfp::GFP_KERNEL.allows_blocking());
        assert!(!Gfp::GFP_ATOMIC.allows_blocking());
        assert_eq!(Gfp::GFP_DMA32.bits(), 4);
        assert_eq!(Gfp::from_raw(0x8000_0000), Err(Errno::EINVAL));
        assert!(Gfp::ZONE_MASK.contains(Gfp::GFP_DMA));
    }
}
