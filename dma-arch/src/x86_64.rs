//! x86-64: `clwb`, `clflushopt` or `clflush`, picked once from CPUID.
//!
//! Mirrors `clflush_cache_range` (arch/x86/mm/pat/set_memory.c), `arch_wb_cache_pmem`
//! (arch/x86/lib/usercopy_64.c) and the barriers of arch/x86/include/asm/barrier.h. x86 DMA is
//! normally cache-coherent; this backend exists for the rare non-snooping agent and so the
//! maintenance code paths are exercised on x86 development machines.
//!
//! Ordering (Intel SDM vol. 2, CLFLUSH/CLFLUSHOPT/CLWB): each instruction is ordered after
//! earlier stores to the same line, so the write-back includes them. `clflush` is also ordered
//! with all writes and fences and `mfence` waits for it; `clflushopt` and `clwb` are ordered
//! only by fences, and `sfence` is the one that completes them. x86 has no user-level
//! invalidate without write-back, so invalidate means flush, and `clwb` (which may keep the
//! line) never serves it.
//!
//! # Safety
//!
//! The only unsafe code is inline asm. The cache instructions take a memory operand that is
//! checked like a load (a page fault if unmapped, never a write to memory), which is why the
//! line walkers require a mapped, readable range. `cpuid`, `sfence` and `mfence` touch no
//! memory at all.

#![allow(unsafe_code)]

use core::arch::asm;
use core::arch::x86_64::{__cpuid, __cpuid_count};

use crate::caps::{CachePath, Capabilities};
use crate::lines::{FALLBACK_LINE_SIZE, for_each_line, sanitize_line_size};

pub(crate) const ARCH_DMA_MINALIGN: usize = 64;

/// What CPUID allows, decided once by [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Detected {
    /// The public answer; `caps.path` is also what [`clean`] uses.
    pub(crate) caps: Capabilities,
    /// What [`invalidate`] and [`clean_invalidate`] use: `X86Clflushopt`, `X86Clflush`, or
    /// `FenceOnly` on a CPU without even `clflush`.
    flush: CachePath,
}

/// CPUID bits this backend reads (Intel SDM vol. 2, CPUID).
mod bits {
    /// Leaf 1, EDX bit 19: CLFLUSH.
    pub(super) const LEAF1_EDX_CLFSH: u32 = 1 << 19;
    /// Leaf 7 subleaf 0, EBX bit 23: CLFLUSHOPT.
    pub(super) const LEAF7_EBX_CLFLUSHOPT: u32 = 1 << 23;
    /// Leaf 7 subleaf 0, EBX bit 24: CLWB.
    pub(super) const LEAF7_EBX_CLWB: u32 = 1 << 24;
}

/// The three flush-family instructions this CPU has, per CPUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Features {
    clflush: bool,
    clflushopt: bool,
    clwb: bool,
    /// Leaf 1 `EBX[15:8]` in bytes (units of 8); 0 when `clflush` is absent.
    clflush_line: u32,
}

fn cpuid_features() -> Features {
    // SAFETY: CPUID exists on every x86-64 CPU and only writes registers. (The intrinsics are
    // safe functions in newer Rust but still `unsafe` at this crate's MSRV, hence the allow.)
    #[allow(unused_unsafe)]
    let (max_leaf, leaf1) = unsafe { (__cpuid(0).eax, __cpuid(1)) };
    let leaf7_ebx = if max_leaf >= 7 {
        // SAFETY: as above; leaf 7 exists because the maximum basic leaf is at least 7.
        #[allow(unused_unsafe)]
        let ebx = unsafe { __cpuid_count(7, 0).ebx };
        ebx
    } else {
        0
    };
    let clflush = leaf1.edx & bits::LEAF1_EDX_CLFSH != 0;
    Features {
        clflush,
        clflushopt: leaf7_ebx & bits::LEAF7_EBX_CLFLUSHOPT != 0,
        clwb: leaf7_ebx & bits::LEAF7_EBX_CLWB != 0,
        clflush_line: if clflush { ((leaf1.ebx >> 8) & 0xff) * 8 } else { 0 },
    }
}

fn select(f: Features) -> Detected {
    let flush = if f.clflushopt {
        CachePath::X86Clflushopt
    } else if f.clflush {
        CachePath::X86Clflush
    } else {
        CachePath::FenceOnly
    };
    // `clwb` alone cannot invalidate; without a flush instruction nothing is maintained.
    let path = if f.clwb && flush != CachePath::FenceOnly { CachePath::X86Clwb } else { flush };
    let line_size = if f.clflush { sanitize_line_size(f.clflush_line.into()) } else { FALLBACK_LINE_SIZE };
    Detected { caps: Capabilities { path, line_size }, flush }
}

/// Reads CPUID and picks the best instructions.
pub(crate) fn detect() -> Detected {
    select(cpuid_features())
}

/// # Safety
///
/// `line` must lie in a mapped, readable page.
#[inline]
unsafe fn clwb(line: *const u8) {
    // SAFETY: CLWB reads the mapping of a page the caller guarantees is mapped and readable
    // and writes memory only with the line's own data; the caller checked CPUID for it.
    unsafe { asm!("clwb [{0}]", in(reg) line, options(nostack, preserves_flags)) }
}

/// # Safety
///
/// `line` must lie in a mapped, readable page.
#[inline]
unsafe fn clflushopt(line: *const u8) {
    // SAFETY: as for `clwb`: a flush of a mapped line writes back its own data only.
    unsafe { asm!("clflushopt [{0}]", in(reg) line, options(nostack, preserves_flags)) }
}

/// # Safety
///
/// `line` must lie in a mapped, readable page.
#[inline]
unsafe fn clflush(line: *const u8) {
    // SAFETY: as for `clwb`: a flush of a mapped line writes back its own data only.
    unsafe { asm!("clflush [{0}]", in(reg) line, options(nostack, preserves_flags)) }
}

/// Completes earlier `clwb`/`clflushopt` and orders them before later stores.
#[inline]
fn sfence() {
    // SAFETY: SFENCE only orders stores; no memory operand. Not `nomem`: the compiler must not
    // move memory accesses across it either.
    unsafe { asm!("sfence", options(nostack, preserves_flags)) }
}

#[inline]
fn mfence() {
    // SAFETY: MFENCE only orders loads and stores; no memory operand.
    unsafe { asm!("mfence", options(nostack, preserves_flags)) }
}

/// Runs `path`'s instruction over the range, then its one trailing fence.
///
/// # Safety
///
/// `[addr, addr + len)` must be mapped and readable, and `path` supported by this CPU.
#[inline]
unsafe fn walk(path: CachePath, addr: *const u8, len: usize, line_size: usize) {
    match path {
        CachePath::X86Clwb => {
            // SAFETY: each line overlaps the caller's range and lines never cross a page
            // (`line_size` ≤ 2048), so each one is in a mapped, readable page.
            for_each_line(addr, len, line_size, |p| unsafe { clwb(p) });
            sfence();
        }
        CachePath::X86Clflushopt => {
            // SAFETY: as above.
            for_each_line(addr, len, line_size, |p| unsafe { clflushopt(p) });
            sfence();
        }
        CachePath::X86Clflush => {
            // SAFETY: as above.
            for_each_line(addr, len, line_size, |p| unsafe { clflush(p) });
            mfence();
        }
        _ => mfence(),
    }
}

/// # Safety
///
/// `[addr, addr + len)` must be mapped and readable; `d` must come from [`detect`] (or name
/// instructions this CPU has).
#[inline]
pub(crate) unsafe fn clean(d: &Detected, addr: *const u8, len: usize) {
    // SAFETY: forwarded contract.
    unsafe { walk(d.caps.path, addr, len, d.caps.line_size) }
}

/// # Safety
///
/// As [`clean`]. Nothing is lost: x86 can only flush (write back, then invalidate).
#[inline]
pub(crate) unsafe fn invalidate(d: &Detected, addr: *const u8, len: usize) {
    // SAFETY: forwarded contract.
    unsafe { walk(d.flush, addr, len, d.caps.line_size) }
}

/// # Safety
///
/// As [`clean`].
#[inline]
pub(crate) unsafe fn clean_invalidate(d: &Detected, addr: *const u8, len: usize) {
    // SAFETY: forwarded contract.
    unsafe { walk(d.flush, addr, len, d.caps.line_size) }
}

#[inline]
pub(crate) fn mb() {
    mfence();
}

/// x86 is TSO: stores are not reordered with stores nor loads with loads, so the kernel's
/// `dma_wmb()`/`dma_rmb()` are `barrier()`, a compiler-only fence.
#[inline]
fn compiler_barrier() {
    // SAFETY: an empty asm emits nothing; without `nomem` the compiler must assume it reads
    // and writes memory, which is exactly the kernel's `barrier()`.
    unsafe { asm!("", options(nostack, preserves_flags)) }
}

#[inline]
pub(crate) fn dma_wmb() {
    compiler_barrier();
}

#[inline]
pub(crate) fn dma_rmb() {
    compiler_barrier();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(5)).collect()
    }

    /// Every (clean, flush) pair this CPU supports, so each instruction runs at least once.
    fn supported() -> Vec<Detected> {
        let f = cpuid_features();
        let line_size = detect().caps.line_size;
        let mut flushes = vec![];
        if f.clflushopt {
            flushes.push(CachePath::X86Clflushopt);
        }
        if f.clflush {
            flushes.push(CachePath::X86Clflush);
        }
        let mut out = vec![];
        for &flush in &flushes {
            for path in [Some(CachePath::X86Clwb).filter(|_| f.clwb), Some(flush)].into_iter().flatten() {
                out.push(Detected { caps: Capabilities { path, line_size }, flush });
            }
        }
        out
    }

    fn exercise(d: &Detected) {
        let line = d.caps.line_size;
        let mut buf = pattern(80 * line + 13);
        let want = buf.clone();
        for (off, len) in [(0, buf.len()), (0, 0), (1, 1), (7, line), (line - 1, 2), (3, 70 * line + 5)] {
            let p = buf[off..].as_ptr();
            // SAFETY: `[p, p + len)` is inside `buf`; `d` names instructions CPUID reported.
            unsafe {
                clean(d, p, len);
                clean_invalidate(d, p, len);
                invalidate(d, p, len);
            }
            assert_eq!(buf, want, "{d:?} off {off} len {len}");
        }
        buf.iter_mut().for_each(|b| *b ^= 0xff);
        // SAFETY: as above.
        unsafe { clean(d, buf.as_ptr(), buf.len()) };
        assert!(buf.iter().zip(&want).all(|(a, b)| *a == !*b), "{d:?}");
    }

    #[test]
    fn every_supported_instruction_keeps_data() {
        let all = supported();
        assert!(!all.is_empty());
        for d in &all {
            exercise(d);
        }
    }

    #[test]
    fn a_smaller_or_larger_stride_is_still_safe() {
        // A stride of 16 issues several instructions per real line; 256 rounds the range out
        // past the real lines but never past the page, so neither faults nor loses data.
        for line_size in [16, 256] {
            for mut d in supported() {
                d.caps.line_size = line_size;
                exercise(&d);
            }
        }
    }

    #[test]
    fn this_host_runs_every_flush_family_instruction() {
        // The brief for this machine: clwb, clflushopt and clflush are all present. On other
        // hosts only require what /proc/cpuinfo lists.
        let f = cpuid_features();
        let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") else {
            return;
        };
        let flags: Vec<&str> = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        assert_eq!(f.clflush, flags.contains(&"clflush"));
        assert_eq!(f.clflushopt, flags.contains(&"clflushopt"));
        assert_eq!(f.clwb, flags.contains(&"clwb"));
        let clflush_size = cpuinfo.lines().find(|l| l.starts_with("clflush size")).and_then(|l| l.split(':').nth(1));
        if let Some(size) = clflush_size {
            assert_eq!(size.trim().parse::<usize>().unwrap(), detect().caps.line_size);
        }
    }

    #[test]
    fn capabilities_report_the_best_path() {
        let f = cpuid_features();
        let best = if f.clwb {
            CachePath::X86Clwb
        } else if f.clflushopt {
            CachePath::X86Clflushopt
        } else {
            CachePath::X86Clflush
        };
        assert_eq!(crate::capabilities().path, best);
        assert_eq!(crate::capabilities(), detect().caps);
    }

    #[test]
    fn selection_prefers_clwb_then_clflushopt_then_clflush() {
        let f = |clflush, clflushopt, clwb| Features { clflush, clflushopt, clwb, clflush_line: 64 };
        let pick = |f| {
            let d = select(f);
            (d.caps.path, d.flush)
        };
        assert_eq!(pick(f(true, true, true)), (CachePath::X86Clwb, CachePath::X86Clflushopt));
        assert_eq!(pick(f(true, false, true)), (CachePath::X86Clwb, CachePath::X86Clflush));
        assert_eq!(pick(f(true, true, false)), (CachePath::X86Clflushopt, CachePath::X86Clflushopt));
        assert_eq!(pick(f(true, false, false)), (CachePath::X86Clflush, CachePath::X86Clflush));
        assert_eq!(pick(f(false, false, false)), (CachePath::FenceOnly, CachePath::FenceOnly));
        assert_eq!(pick(f(false, false, true)), (CachePath::FenceOnly, CachePath::FenceOnly));
        let garbage = Features { clflush_line: 8 * 3, ..f(true, false, false) };
        assert_eq!(select(garbage).caps.line_size, FALLBACK_LINE_SIZE);
    }

    #[test]
    fn barriers_run() {
        mb();
        dma_wmb();
        dma_rmb();
        sfence();
    }
}
