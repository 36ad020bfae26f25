//! Walking the cache lines that cover a byte range, and sanitizing a detected line size.
//!
//! The loop mirrors arm64's `dcache_by_line_op` (arch/arm64/include/asm/assembler.h) and x86's
//! `clflush_cache_range_opt` (arch/x86/mm/pat/set_memory.c): round the start down to a line,
//! issue one instruction per line until the end is passed, and leave the single trailing
//! barrier to the caller. The per-arch files supply the instruction and the barrier.

// The fence-only backend walks no lines.
#![cfg_attr(
    not(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", any(target_os = "linux", target_os = "android")),
        all(target_arch = "riscv64", target_os = "linux"),
    )),
    allow(dead_code, reason = "only the fence-only backend is built")
)]

/// Line size used when detection fails or reports nonsense.
pub(crate) const FALLBACK_LINE_SIZE: usize = 64;

/// Smallest line size believed. No DMA-capable CPU has data cache lines below 16 bytes.
const MIN_LINE_SIZE: usize = 16;

/// Largest line size believed. Real CPUs top out at 256 (A64FX); staying well under the
/// smallest page size (4 KiB) guarantees that rounding a range out to whole lines never
/// leaves the pages the range lies in, so the rounded-out lines are mapped too.
const MAX_LINE_SIZE: usize = 2048;

/// Returns `raw` if it is a believable line size (a power of two in 16..=2048), otherwise
/// [`FALLBACK_LINE_SIZE`].
pub(crate) fn sanitize_line_size(raw: u64) -> usize {
    match usize::try_from(raw) {
        Ok(size) if size.is_power_of_two() && (MIN_LINE_SIZE..=MAX_LINE_SIZE).contains(&size) => size,
        _ => FALLBACK_LINE_SIZE,
    }
}

/// Calls `op` with the start address of every `line`-byte line that overlaps
/// `[addr, addr + len)`, lowest first. Does nothing when `len` is 0.
///
/// `line` must be a power of two (the sanitized line size). Only addresses are computed, with
/// wrapping arithmetic, so this is safe; whether `op` may touch them is the caller's contract.
#[inline]
pub(crate) fn for_each_line(addr: *const u8, len: usize, line: usize, mut op: impl FnMut(*const u8)) {
    debug_assert!(line.is_power_of_two());
    if len == 0 {
        return;
    }
    let misalign = addr.addr() & (line - 1);
    // A real range cannot wrap the address space; saturate so a bogus `len` cannot make the
    // count wrap to something small either.
    let span = misalign.saturating_add(len);
    // `span.div_ceil(line)`, without a division: `line` is a power of two.
    let count = (span >> line.trailing_zeros()) + usize::from(span & (line - 1) != 0);
    let mut cursor = addr.wrapping_sub(misalign);
    for _ in 0..count {
        op(cursor);
        cursor = cursor.wrapping_add(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(addr: usize, len: usize, line: usize) -> Vec<usize> {
        let mut seen = Vec::new();
        for_each_line(core::ptr::without_provenance(addr), len, line, |p| seen.push(p.addr()));
        seen
    }

    #[test]
    fn zero_length_touches_nothing() {
        assert!(lines(0x1000, 0, 64).is_empty());
        assert!(lines(0x1003, 0, 64).is_empty());
    }

    #[test]
    fn aligned_range_is_exact() {
        assert_eq!(lines(0x1000, 64, 64), [0x1000]);
        assert_eq!(lines(0x1000, 128, 64), [0x1000, 0x1040]);
        assert_eq!(lines(0x1000, 65, 64), [0x1000, 0x1040]);
    }

    #[test]
    fn unaligned_range_rounds_out_on_both_sides() {
        assert_eq!(lines(0x1001, 1, 64), [0x1000]);
        assert_eq!(lines(0x103f, 2, 64), [0x1000, 0x1040]);
        assert_eq!(lines(0x1030, 0x20, 32), [0x1020, 0x1040]);
        assert_eq!(lines(0x10ff, 0x102, 256), [0x1000, 0x1100, 0x1200]);
    }

    #[test]
    fn every_byte_is_covered_exactly_once() {
        for line in [16, 32, 64, 128, 256] {
            for start in 0x4000..0x4000 + 2 * line {
                for len in [1, 7, line - 1, line, line + 1, 5 * line + 3] {
                    let got = lines(start, len, line);
                    assert_eq!(got[0], start & !(line - 1));
                    assert!(got.windows(2).all(|w| w[1] == w[0] + line));
                    let last = *got.last().unwrap();
                    assert!(last < start + len && start + len <= last + line);
                }
            }
        }
    }

    #[test]
    fn sanitize_accepts_powers_of_two_in_range_only() {
        for good in [16u64, 32, 64, 128, 256, 2048] {
            assert_eq!(sanitize_line_size(good), good as usize);
        }
        for bad in [0u64, 1, 4, 8, 48, 96, 4096, 1 << 40, u64::MAX] {
            assert_eq!(sanitize_line_size(bad), FALLBACK_LINE_SIZE, "{bad}");
        }
    }
}
