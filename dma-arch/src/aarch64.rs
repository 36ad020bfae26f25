//! AArch64 (Linux): `dc cvac` / `dc civac` by virtual address to the point of coherency, then
//! one `dsb sy`; line size from `CTR_EL0.DminLine`.
//!
//! Mirrors `dcache_clean_poc` / `dcache_clean_inval_poc` (arch/arm64/mm/cache.S, the
//! `dcache_by_line_op` macro) and arch/arm64/include/asm/barrier.h. Linux sets `SCTLR_EL1.UCI`
//! and `SCTLR_EL1.UCT`, so EL0 may run `dc cvac`, `dc civac` and read `CTR_EL0` (on
//! mismatched big.LITTLE systems the kernel traps the read and returns the system-wide safe
//! value). `dc ivac` is not allowed at EL0 (SIGILL), so invalidate uses `dc civac`, as the
//! kernel itself does for partially covered lines.
//!
//! # Safety
//!
//! The only unsafe code is inline asm. `dc cvac` and `dc civac` write back a line's own data
//! and never discard dirty data; they fault like a load on an unmapped address, which is why
//! the line walkers require a mapped, readable range. `mrs`, `dsb` and `dmb` touch no memory.

#![allow(unsafe_code)]

use core::arch::asm;

use crate::caps::{CachePath, Capabilities};
use crate::lines::{for_each_line, sanitize_line_size};

/// arch/arm64/include/asm/cache.h: the largest cache writeback granule of any arm64 CPU the
/// kernel supports.
pub(crate) const ARCH_DMA_MINALIGN: usize = 128;

/// What this CPU allows, decided once by [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Detected {
    /// The public answer.
    pub(crate) caps: Capabilities,
}

/// `CTR_EL0.DminLine`, bits `[19:16]`: log2 of the smallest data cache line in 4-byte words.
fn dminline_bytes(ctr: u64) -> u64 {
    4 << ((ctr >> 16) & 0xf)
}

#[inline]
fn read_ctr_el0() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 only writes the output register; Linux allows (or emulates) the
    // read at EL0.
    unsafe { asm!("mrs {0}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    ctr
}

/// Reads the line size; the instructions themselves are architectural at EL0 on Linux.
pub(crate) fn detect() -> Detected {
    let line_size = sanitize_line_size(dminline_bytes(read_ctr_el0()));
    Detected { caps: Capabilities { path: CachePath::Aarch64Dc, line_size } }
}

/// # Safety
///
/// `line` must lie in a mapped, readable page.
#[inline]
unsafe fn dc_cvac(line: *const u8) {
    // SAFETY: DC CVAC writes a line of a mapped page back to memory with its own data.
    unsafe { asm!("dc cvac, {0}", in(reg) line, options(nostack, preserves_flags)) }
}

/// # Safety
///
/// `line` must lie in a mapped, readable page.
#[inline]
unsafe fn dc_civac(line: *const u8) {
    // SAFETY: DC CIVAC writes a line of a mapped page back, then drops it; no data is lost.
    unsafe { asm!("dc civac, {0}", in(reg) line, options(nostack, preserves_flags)) }
}

/// Waits for every earlier `dc` operation and memory access to complete. Not `nomem`: the
/// compiler must not move memory accesses across it.
#[inline]
fn dsb_sy() {
    // SAFETY: DSB SY has no operands and only orders/completes earlier accesses.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) }
}

#[inline]
fn dmb_oshst() {
    // SAFETY: DMB has no operands and only orders accesses.
    unsafe { asm!("dmb oshst", options(nostack, preserves_flags)) }
}

#[inline]
fn dmb_oshld() {
    // SAFETY: DMB has no operands and only orders accesses.
    unsafe { asm!("dmb oshld", options(nostack, preserves_flags)) }
}

/// # Safety
///
/// `[addr, addr + len)` must be mapped and readable.
#[inline]
pub(crate) unsafe fn clean(d: &Detected, addr: *const u8, len: usize) {
    // SAFETY: each line overlaps the caller's range and lines never cross a page
    // (line size ≤ 2048), so each one is in a mapped, readable page.
    for_each_line(addr, len, d.caps.line_size, |p| unsafe { dc_cvac(p) });
    dsb_sy();
}

/// # Safety
///
/// As [`clean`]. Nothing is lost: `dc civac` is the only EL0 invalidate.
#[inline]
pub(crate) unsafe fn invalidate(d: &Detected, addr: *const u8, len: usize) {
    // SAFETY: forwarded contract.
    unsafe { clean_invalidate(d, addr, len) }
}

/// # Safety
///
/// As [`clean`].
#[inline]
pub(crate) unsafe fn clean_invalidate(d: &Detected, addr: *const u8, len: usize) {
    // SAFETY: as in `clean`, every line is in a mapped, readable page.
    for_each_line(addr, len, d.caps.line_size, |p| unsafe { dc_civac(p) });
    dsb_sy();
}

#[inline]
pub(crate) fn mb() {
    dsb_sy();
}

#[inline]
pub(crate) fn dma_wmb() {
    dmb_oshst();
}

#[inline]
pub(crate) fn dma_rmb() {
    dmb_oshld();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dminline_decodes_words_to_bytes() {
        // Cortex-A72 CTR_EL0 = 0x8444c004: DminLine 4 -> 64 bytes.
        assert_eq!(dminline_bytes(0x8444_c004), 64);
        assert_eq!(dminline_bytes(3 << 16), 32);
        assert_eq!(dminline_bytes(6 << 16), 256);
        assert_eq!(sanitize_line_size(dminline_bytes(0)), 64, "4-byte lines are garbage");
    }

    #[test]
    fn detect_reads_ctr_el0() {
        let d = detect();
        assert_eq!(d.caps.path, CachePath::Aarch64Dc);
        assert_eq!(d.caps.line_size, sanitize_line_size(dminline_bytes(read_ctr_el0())));
        assert_eq!(crate::capabilities(), d.caps);
    }

    #[test]
    fn dc_cvac_and_dc_civac_keep_data() {
        let real = detect();
        for line_size in [real.caps.line_size, 16, 256] {
            let d = Detected { caps: Capabilities { line_size, ..real.caps } };
            let mut buf: Vec<u8> = (0..70 * line_size + 9).map(|i| (i % 251) as u8).collect();
            let want = buf.clone();
            for (off, len) in [(0, buf.len()), (0, 0), (1, 1), (5, line_size), (line_size - 1, 2)] {
                let p = buf[off..].as_ptr();
                // SAFETY: `[p, p + len)` lies inside `buf`.
                unsafe {
                    clean(&d, p, len);
                    clean_invalidate(&d, p, len);
                    invalidate(&d, p, len);
                }
                assert_eq!(buf, want, "line {line_size} off {off} len {len}");
            }
            buf.iter_mut().for_each(|b| *b = b.wrapping_add(1));
            // SAFETY: as above.
            unsafe { invalidate(&d, buf.as_ptr(), buf.len()) };
            assert!(buf.iter().zip(&want).all(|(a, b)| *a == b.wrapping_add(1)));
        }
    }

    #[test]
    fn barriers_run() {
        mb();
        dma_wmb();
        dma_rmb();
    }
}
