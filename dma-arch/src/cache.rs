//! The public cache maintenance entry points: detection once, then the per-arch `imp` calls.
//!
//! # Safety
//!
//! This file only forwards: each public `unsafe fn` hands its caller's contract (the range is
//! mapped and readable) unchanged to the `imp` function with the same name, whose contract is
//! the same.

#![allow(unsafe_code)]

use std::sync::OnceLock;

use crate::caps::Capabilities;
use crate::imp;

/// Minimum alignment and size granule that keeps two DMA buffers out of each other's cache
/// lines on every CPU of this architecture, as the kernel's `ARCH_DMA_MINALIGN`.
///
/// If two buffers shared a line, cleaning or invalidating one for a non-coherent device would
/// write back or discard the other's bytes. Values: aarch64 128 (the largest writeback granule
/// among arm64 CPUs Linux knows), x86_64 64 (the kernel leaves it unset because x86 DMA is
/// coherent; the line size keeps buffers apart anyway), riscv64 64, arm 64 (`L1_CACHE_BYTES`),
/// anything else 64.
///
/// A CPU may still have a larger line than this (A64FX: 256); code that must never share a
/// line uses `ARCH_DMA_MINALIGN.max(cache_line_size())`.
pub const ARCH_DMA_MINALIGN: usize = imp::ARCH_DMA_MINALIGN;

static DETECTED: OnceLock<imp::Detected> = OnceLock::new();

/// The per-arch detection result, computed on first use.
#[inline]
fn detected() -> &'static imp::Detected {
    DETECTED.get_or_init(imp::detect)
}

/// The data cache line size in bytes: the stride of [`clean`], [`invalidate`] and
/// [`clean_invalidate`].
///
/// Detected once, then cached: x86_64 from CPUID leaf 1 (`clflush` line size), aarch64 from
/// `CTR_EL0.DminLine` (the smallest data cache line of any level), riscv64 from the kernel's
/// Zicbom block size when Zicbom is usable, else 64; 64 elsewhere. Always a power of two of at
/// least 16; a detected value that is not one is replaced by 64.
///
/// ```
/// let line = dma_arch::cache_line_size();
/// assert!(line.is_power_of_two() && line >= 16);
/// ```
#[must_use]
#[inline]
pub fn cache_line_size() -> usize {
    detected().caps.line_size
}

/// Which maintenance instructions this machine uses, and their stride.
///
/// Check [`crate::CachePath::maintains_cache`] before driving a non-coherent device: on a
/// fence-only machine the maintenance functions clean and invalidate nothing.
///
/// ```
/// let caps = dma_arch::capabilities();
/// assert_eq!(caps.line_size, dma_arch::cache_line_size());
/// println!("cache maintenance: {}", caps.path);
/// ```
#[must_use]
#[inline]
pub fn capabilities() -> Capabilities {
    detected().caps
}

/// Writes dirty data cache lines back to the point of coherency, so a device reading memory
/// sees what the CPU wrote. Lines may stay cached.
///
/// Covers every line that touches `[addr, addr + len)`, rounded out to whole lines, followed
/// by one barrier so the write-back completes before later memory and MMIO accesses. `len == 0`
/// does nothing. On a fence-only machine ([`capabilities`]) this is the barrier alone.
///
/// # Safety
///
/// `[addr, addr + len)` must be mapped and readable in this process for the whole call.
///
/// ```
/// let buf = vec![0x5au8; 1000];
/// // SAFETY: `buf` is live, mapped and readable over its whole length.
/// unsafe { dma_arch::clean(buf.as_ptr(), buf.len()) };
/// // The device may now read `buf` from memory.
/// assert!(buf.iter().all(|&b| b == 0x5a));
/// ```
#[inline]
pub unsafe fn clean(addr: *const u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: our caller guarantees the range is mapped and readable, which is all
    // `imp::clean` requires.
    unsafe { imp::clean(detected(), addr, len) }
}

/// Drops data cache lines so the next CPU read fetches what a device wrote to memory.
///
/// Covers every line that touches `[addr, addr + len)`, rounded out to whole lines, followed
/// by one barrier. `len == 0` does nothing. No architecture lets userspace discard a line
/// without writing it back first (x86 has no such instruction; arm64 `dc ivac` and riscv
/// `cbo.inval` trap at user level on Linux), so every implementation here cleans and then
/// invalidates, like [`clean_invalidate`]. On a fence-only machine this is the barrier alone.
///
/// # Safety
///
/// `[addr, addr + len)` must be mapped and readable in this process for the whole call. The
/// caller accepts that dirty data in the rounded-out lines, including bytes just outside the
/// range in its first and last line, may be discarded (a future implementation may use a real
/// invalidate).
///
/// ```
/// let buf = vec![0u8; 256];
/// // ... a device writes `buf` ...
/// // SAFETY: `buf` is live, mapped and readable; it owns whole lines or we accept losing the rest.
/// unsafe { dma_arch::invalidate(buf.as_ptr(), buf.len()) };
/// assert_eq!(buf[0], 0);
/// ```
#[inline]
pub unsafe fn invalidate(addr: *const u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: our caller guarantees the range is mapped and readable and accepts the loss of
    // dirty data in rounded-out lines, which is all `imp::invalidate` requires.
    unsafe { imp::invalidate(detected(), addr, len) }
}

/// Writes dirty data cache lines back to the point of coherency and drops them.
///
/// Covers every line that touches `[addr, addr + len)`, rounded out to whole lines, followed
/// by one barrier. `len == 0` does nothing. No data is lost. On a fence-only machine this is
/// the barrier alone.
///
/// # Safety
///
/// `[addr, addr + len)` must be mapped and readable in this process for the whole call.
///
/// ```
/// let mut buf = vec![0u8; 300];
/// buf[299] = 7;
/// // SAFETY: `buf` is live, mapped and readable over its whole length.
/// unsafe { dma_arch::clean_invalidate(buf.as_ptr().wrapping_add(1), buf.len() - 1) };
/// assert_eq!(buf[299], 7);
/// ```
#[inline]
pub unsafe fn clean_invalidate(addr: *const u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: our caller guarantees the range is mapped and readable, which is all
    // `imp::clean_invalidate` requires.
    unsafe { imp::clean_invalidate(detected(), addr, len) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::CachePath;

    /// The path this target must end up on. A silent fallback to `FenceOnly` where real
    /// maintenance exists fails here. `DMA_ARCH_EXPECT_PATH` (a `CachePath` variant name) lets
    /// a CI job pin the answer for a given emulator, e.g. `FenceOnly` under a QEMU without
    /// Zicbom.
    fn expected_path() -> Option<CachePath> {
        if let Ok(name) = std::env::var("DMA_ARCH_EXPECT_PATH") {
            let path = match name.as_str() {
                "X86Clwb" => CachePath::X86Clwb,
                "X86Clflushopt" => CachePath::X86Clflushopt,
                "X86Clflush" => CachePath::X86Clflush,
                "Aarch64Dc" => CachePath::Aarch64Dc,
                "RiscvZicbom" => CachePath::RiscvZicbom,
                "FenceOnly" => CachePath::FenceOnly,
                other => panic!("DMA_ARCH_EXPECT_PATH={other} is not a CachePath variant"),
            };
            return Some(path);
        }
        if cfg!(all(target_arch = "aarch64", any(target_os = "linux", target_os = "android"))) {
            Some(CachePath::Aarch64Dc)
        } else if cfg!(any(target_arch = "arm", not(any(target_arch = "x86_64", target_arch = "riscv64")))) {
            Some(CachePath::FenceOnly)
        } else {
            // x86_64: the x86_64 tests compare against CPUID and /proc/cpuinfo.
            // riscv64: it depends on the kernel; the riscv64 tests re-run detection.
            None
        }
    }

    #[test]
    fn path_is_the_expected_one_for_this_target() {
        let caps = capabilities();
        if let Some(want) = expected_path() {
            assert_eq!(caps.path, want, "detected {caps:?}");
        }
        if cfg!(target_arch = "x86_64") {
            assert_ne!(caps.path, CachePath::FenceOnly, "every x86_64 CPU has clflush");
        }
        if cfg!(target_arch = "riscv64") {
            assert!(matches!(caps.path, CachePath::RiscvZicbom | CachePath::FenceOnly), "{caps:?}");
        }
    }

    /// `DMA_ARCH_EXPECT_LINE` pins the line size; otherwise a `QEMU_CPU` (which qemu-user
    /// passes through to the guest environment) with a known line size pins it.
    #[test]
    fn line_size_is_sane_and_matches_the_emulated_cpu() {
        let line = cache_line_size();
        assert!(line.is_power_of_two() && line >= 16, "{line}");
        assert_eq!(line, capabilities().line_size);
        let want = std::env::var("DMA_ARCH_EXPECT_LINE")
            .ok()
            .map(|v| v.parse::<usize>().expect("DMA_ARCH_EXPECT_LINE is a number"))
            .or_else(|| match std::env::var("QEMU_CPU").ok()?.as_str() {
                _ if !cfg!(target_arch = "aarch64") => None,
                "cortex-a53" | "cortex-a57" | "cortex-a72" | "neoverse-n1" => Some(64),
                "a64fx" => Some(256),
                _ => None,
            });
        if let Some(want) = want {
            assert_eq!(line, want);
        }
        eprintln!("detected {} with {line}-byte lines", capabilities().path);
    }

    #[test]
    fn minalign_is_a_power_of_two_line() {
        assert!(ARCH_DMA_MINALIGN.is_power_of_two() && ARCH_DMA_MINALIGN >= 64);
    }

    #[test]
    fn zero_length_is_a_no_op_even_for_a_dangling_pointer() {
        let dangling = core::ptr::NonNull::<u8>::dangling().as_ptr();
        // SAFETY: a zero-length range touches no memory; the functions return before any
        // instruction, so the pointer is never used.
        unsafe {
            clean(dangling, 0);
            invalidate(dangling, 0);
            clean_invalidate(dangling, 0);
        }
    }

    #[test]
    fn public_paths_keep_data_over_many_unaligned_ranges() {
        let line = cache_line_size();
        let mut buf: Vec<u8> = (0..64 * line).map(|i| (i * 7 + 3) as u8).collect();
        let want = buf.clone();
        for (off, len) in [(0, buf.len()), (1, 1), (3, line), (line - 1, 2), (5, 40 * line + 9)] {
            let p = buf[off..].as_ptr();
            // SAFETY: `[p, p + len)` lies inside `buf`, which is live and readable.
            unsafe {
                clean(p, len);
                clean_invalidate(p, len);
                invalidate(p, len);
            }
            assert_eq!(buf, want);
        }
        // Writes after maintenance land normally and survive the next round.
        buf.iter_mut().for_each(|b| *b = !*b);
        // SAFETY: as above.
        unsafe { clean_invalidate(buf.as_ptr(), buf.len()) };
        assert!(buf.iter().zip(&want).all(|(a, b)| *a == !*b));
    }

    #[test]
    fn detection_is_stable_across_threads() {
        let here = capabilities();
        let there = std::thread::spawn(capabilities).join().unwrap();
        assert_eq!(here, there);
    }
}
