//! Fallback for every target without a userspace cache maintenance backend, armv7 included:
//! the maintenance functions are a full barrier and NOTHING else.
//!
//! No cache line is cleaned or invalidated here, and [`detect`] says so with
//! [`CachePath::FenceOnly`]. On 32-bit Arm, cache maintenance by VA is a CP15 operation that
//! user mode cannot issue; Linux's `cacheflush` syscall (0xf0002) exists but only promises
//! coherence between the data and instruction caches, not with memory for a device. Such
//! targets can drive coherent devices only.
//!
//! Barriers: on ARMv7 Linux they are the kernel's (arch/arm/include/asm/barrier.h: `mb()` is
//! `dsb sy`, `dma_wmb()` `dmb oshst`, `dma_rmb()` `dmb osh`). Stable Rust cannot tell ARMv6
//! from ARMv7 with `cfg(target_feature)`, so build.rs sets `dma_arch_armv7` from the target
//! name. Everywhere else they are `fence(SeqCst)`, the strongest portable barrier.
//!
//! # Safety
//!
//! The maintenance functions are `unsafe fn` only to share the other backends' signature;
//! they touch no memory. The only unsafe blocks are the ARMv7 barrier asm, which has no
//! operands and touches no memory.

#![allow(unsafe_code)]

use crate::caps::{CachePath, Capabilities};
use crate::lines::FALLBACK_LINE_SIZE;

/// The kernel's value on 32-bit Arm (`L1_CACHE_BYTES` with `CONFIG_ARM_L1_CACHE_SHIFT` 6) and
/// a safe default elsewhere.
pub(crate) const ARCH_DMA_MINALIGN: usize = 64;

/// Nothing to detect: fence only, with the fallback line size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Detected {
    /// The public answer: always `FenceOnly`.
    pub(crate) caps: Capabilities,
}

pub(crate) fn detect() -> Detected {
    Detected { caps: Capabilities { path: CachePath::FenceOnly, line_size: FALLBACK_LINE_SIZE } }
}

/// Does NOT clean: only [`mb`].
///
/// # Safety
///
/// None beyond the public contract; no memory is touched.
#[inline]
pub(crate) unsafe fn clean(_d: &Detected, _addr: *const u8, _len: usize) {
    mb();
}

/// Does NOT invalidate: only [`mb`].
///
/// # Safety
///
/// None beyond the public contract; no memory is touched.
#[inline]
pub(crate) unsafe fn invalidate(_d: &Detected, _addr: *const u8, _len: usize) {
    mb();
}

/// Does NOT clean or invalidate: only [`mb`].
///
/// # Safety
///
/// None beyond the public contract; no memory is touched.
#[inline]
pub(crate) unsafe fn clean_invalidate(_d: &Detected, _addr: *const u8, _len: usize) {
    mb();
}

cfg_if::cfg_if! {
    if #[cfg(dma_arch_armv7)] {
        use core::arch::asm;

        #[inline]
        pub(crate) fn mb() {
            // SAFETY: DSB SY has no operands and only orders/completes accesses. Not `nomem`:
            // the compiler must not move memory accesses across it.
            unsafe { asm!("dsb sy", options(nostack, preserves_flags)) }
        }

        #[inline]
        pub(crate) fn dma_wmb() {
            // SAFETY: DMB has no operands and only orders accesses.
            unsafe { asm!("dmb oshst", options(nostack, preserves_flags)) }
        }

        #[inline]
        pub(crate) fn dma_rmb() {
            // SAFETY: DMB has no operands and only orders accesses.
            unsafe { asm!("dmb osh", options(nostack, preserves_flags)) }
        }
    } else {
        use core::sync::atomic::{Ordering, fence};

        #[inline]
        pub(crate) fn mb() {
            fence(Ordering::SeqCst);
        }

        #[inline]
        pub(crate) fn dma_wmb() {
            fence(Ordering::SeqCst);
        }

        #[inline]
        pub(crate) fn dma_rmb() {
            fence(Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_fence_only_honestly() {
        let d = detect();
        assert_eq!(d.caps.path, CachePath::FenceOnly);
        assert!(!d.caps.path.maintains_cache());
        assert_eq!(crate::capabilities(), d.caps);
    }

    #[test]
    fn maintenance_is_a_harmless_fence() {
        let d = detect();
        let buf = [7u8; 100];
        // SAFETY: the range lies inside `buf`.
        unsafe {
            clean(&d, buf.as_ptr(), buf.len());
            invalidate(&d, buf.as_ptr().wrapping_add(3), 10);
            clean_invalidate(&d, buf.as_ptr(), 0);
        }
        assert!(buf.iter().all(|&b| b == 7));
    }

    #[test]
    fn barriers_run() {
        mb();
        dma_wmb();
        dma_rmb();
    }
}
