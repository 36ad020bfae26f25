//! Per-architecture CPU cache maintenance, barriers and cache geometry for DMA.
//!
//! This crate is the userspace counterpart of the kernel's `arch_sync_dma_*` hooks and
//! `<asm/barrier.h>`: it writes dirty cache lines back to the point of coherency ([`clean`]),
//! discards them ([`invalidate`]) or both ([`clean_invalidate`]), and orders CPU accesses
//! against a device ([`mb`], [`dma_wmb`], [`dma_rmb`]). Which rule to apply for which DMA
//! direction is the caller's business (dma-core); this crate only knows how.
//!
//! # Honesty rule
//!
//! Not every CPU lets userspace touch its caches. Where it cannot (armv7, riscv64 without a
//! user-enabled Zicbom, any other architecture) the maintenance functions issue a full barrier
//! and nothing else. [`capabilities`] says which case applies, and
//! [`CachePath::maintains_cache`] is `false` exactly for the fence-only case, so a caller that
//! needs real maintenance for a non-coherent device can refuse to run instead of silently
//! corrupting data.
//!
//! | Target | [`clean`] | [`invalidate`] | [`clean_invalidate`] | trailing barrier |
//! |---|---|---|---|---|
//! | x86_64 | `clwb`, else `clflushopt`, else `clflush` | `clflushopt`, else `clflush` | same as invalidate | `sfence` (`mfence` for `clflush`) |
//! | aarch64 Linux | `dc cvac` | `dc civac` | `dc civac` | `dsb sy` |
//! | riscv64 Linux with Zicbom usable at U-mode | `cbo.clean` | `cbo.flush` | `cbo.flush` | `fence rw,rw` |
//! | everything else | nothing | nothing | nothing | full fence |
//!
//! # Example
//!
//! ```
//! let caps = dma_arch::capabilities();
//! assert!(caps.line_size.is_power_of_two());
//! if !caps.path.maintains_cache() {
//!     // Only coherent devices are safe here.
//!     println!("{}: cache maintenance is a fence only", caps.path);
//! }
//! ```
//!
//! # Safety
//!
//! Unsafe code is denied here and allowed back only in the files that need it: one file per
//! architecture (inline asm, and on riscv64 a syscall plus a signal-handler probe) and
//! `cache.rs`, which forwards the public `unsafe fn`s. Each of those files starts with a
//! `# Safety` paragraph.

#![deny(unsafe_code)]

mod barrier;
mod cache;
mod caps;
mod lines;

cfg_if::cfg_if! {
    if #[cfg(target_arch = "x86_64")] {
        #[path = "x86_64.rs"]
        mod imp;
    } else if #[cfg(all(target_arch = "aarch64", any(target_os = "linux", target_os = "android")))] {
        #[path = "aarch64.rs"]
        mod imp;
    } else if #[cfg(all(target_arch = "riscv64", target_os = "linux"))] {
        #[path = "riscv64.rs"]
        mod imp;
    } else {
        #[path = "generic.rs"]
        mod imp;
    }
}

pub use barrier::{dma_rmb, dma_wmb, mb};
pub use cache::{ARCH_DMA_MINALIGN, cache_line_size, capabilities, clean, clean_invalidate, invalidate};
pub use caps::{CachePath, Capabilities};
