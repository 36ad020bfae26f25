//! `DmaMask`: the addressing capability of a device (`DMA_BIT_MASK(n)`).

use core::fmt;

/// A DMA addressing mask: the highest bus address a device can reach, all ones below it.
///
/// # Invariants
///
/// The value is `2^n - 1` for some `n` in `1..=64`, so it is never zero.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DmaMask(u64);

/// `DMA_BIT_MASK(n)` as a plain number: all ones in the low `n` bits (`n` ≥ 64 gives all ones).
pub const fn dma_bit_mask(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

impl DmaMask {
    /// `DMA_BIT_MASK(64)`.
    pub const ALL: DmaMask = DmaMask(u64::MAX);

    /// `DMA_BIT_MASK(bits)`. `bits` is clamped to `1..=64`.
    pub const fn bits(bits: u32) -> DmaMask {
        let n = if bits == 0 { 1 } else { bits };
        // INVARIANT: dma_bit_mask of n >= 1 is 2^n - 1 >= 1.
        DmaMask(dma_bit_mask(n))
    }

    /// A mask from a raw value. Only all-ones-below-a-bit values are masks; the kernel
    /// accepts any value but every real driver passes `DMA_BIT_MASK(n)`, so anything
    /// else (or zero) is `None`.
    pub const fn from_raw(value: u64) -> Option<DmaMask> {
        if value != 0 && value & value.wrapping_add(1) == 0 {
            // INVARIANT: non-zero and value + 1 is a power of two (or wraps to 0).
            Some(DmaMask(value))
        } else {
            None
        }
    }

    /// The raw value.
    pub const fn value(self) -> u64 {
        self.0
    }

    /// The number of address bits (`n` of `DMA_BIT_MASK(n)`).
    pub const fn width(self) -> u32 {
        64 - self.0.leading_zeros()
    }
}

/// `min_not_zero(a, b)`: the smaller of two limits where zero means "no limit".
pub const fn min_not_zero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, b) => b,
        (a, 0) => a,
        (a, b) => {
            if a < b {
                a
            } else {
                b
            }
        }
    }
}

impl fmt::Debug for DmaMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DMA_BIT_MASK({})", self.width())
    }
}

impl fmt::Display for DmaMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_masks_match_the_kernel_macro() {
        assert_eq!(DmaMask::bits(32).value(), 0xffff_ffff);
        assert_eq!(DmaMask::bits(64).value(), u64::MAX);
        assert_eq!(DmaMask::bits(28).width(), 28);
        assert_eq!(DmaMask::bits(0).value(), 1);
    }

    #[test]
    fn from_raw_accepts_only_masks() {
        assert_eq!(DmaMask::from_raw(0xff_ffff), Some(DmaMask::bits(24)));
        assert_eq!(DmaMask::from_raw(u64::MAX), Some(DmaMask::ALL));
        assert_eq!(DmaMask::from_raw(0), None);
        assert_eq!(DmaMask::from_raw(0x1000), None);
    }

    #[test]
    fn min_not_zero_ignores_zero() {
        assert_eq!(min_not_zero(0, 5), 5);
        assert_eq!(min_not_zero(5, 0), 5);
        assert_eq!(min_not_zero(3, 5), 3);
        assert_eq!(min_not_zero(0, 0), 0);
    }
}
