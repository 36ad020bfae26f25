//! DMA barriers, with the kernel's meaning (Documentation/memory-barriers.txt, "DMA barriers",
//! and each arch's `asm/barrier.h`).
//!
//! | | [`mb`] | [`dma_wmb`] | [`dma_rmb`] |
//! |---|---|---|---|
//! | x86_64 | `mfence` | compiler barrier (TSO) | compiler barrier (TSO) |
//! | aarch64 | `dsb sy` | `dmb oshst` | `dmb oshld` |
//! | riscv64 | `fence iorw,iorw` | `fence w,w` | `fence r,r` |
//! | armv7 | `dsb sy` | `dmb oshst` | `dmb osh` |
//! | other | `fence(SeqCst)` | `fence(SeqCst)` | `fence(SeqCst)` |

use crate::imp;

/// Full barrier: every earlier memory and MMIO access of this CPU completes before any later
/// one, as the kernel's `mb()`.
///
/// Use it between writing a descriptor and ringing a device doorbell through MMIO, or after
/// cache maintenance when the next step is not a memory access the barriers below cover.
///
/// ```
/// dma_arch::mb();
/// ```
#[inline]
pub fn mb() {
    imp::mb();
}

/// Orders earlier stores to DMA-visible memory before later stores to DMA-visible memory, as
/// the kernel's `dma_wmb()`: fill a descriptor, `dma_wmb()`, then set its "owned by device"
/// flag.
///
/// It does not order against MMIO writes; use [`mb`] for a doorbell.
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// let (desc_len, desc_owner) = (AtomicU32::new(0), AtomicU32::new(0));
/// desc_len.store(512, Ordering::Relaxed);
/// dma_arch::dma_wmb();
/// desc_owner.store(1, Ordering::Relaxed); // the device may now see len == 512
/// ```
#[inline]
pub fn dma_wmb() {
    imp::dma_wmb();
}

/// Orders earlier loads from DMA-visible memory before later loads from it, as the kernel's
/// `dma_rmb()`: read a descriptor's "done by device" flag, `dma_rmb()`, then read the data
/// the device wrote.
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// let (desc_status, desc_len) = (AtomicU32::new(1), AtomicU32::new(64));
/// if desc_status.load(Ordering::Relaxed) == 1 {
///     dma_arch::dma_rmb();
///     assert_eq!(desc_len.load(Ordering::Relaxed), 64);
/// }
/// ```
#[inline]
pub fn dma_rmb() {
    imp::dma_rmb();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barriers_execute() {
        // Every barrier instruction of this target runs without trapping.
        for _ in 0..3 {
            mb();
            dma_wmb();
            dma_rmb();
        }
    }
}
