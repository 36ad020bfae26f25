//! The allocation map: the page bitmap plus a summary with one bit per bitmap word.
//!
//! Large aligned requests (2 MiB of 4 KiB pages is 512 bits, 8 words) start on word boundaries,
//! and a window of whole words is free iff each word is zero. The summary marks the words that
//! hold any set bit, so such a window is a run of clear summary bits: the same zero-area search,
//! run on a map 64 times smaller, where a fragmented stretch of 4096 pages is one `u64::MAX`
//! word skipped by a single compare. Other requests search the page bitmap directly.

use crate::bitmap::{Align, Bitmap};

/// Bits per bitmap word, the summary's granule.
const WORD_BITS: u64 = u64::BITS as u64;

/// The page bitmap and its word summary.
///
/// # Invariants
///
/// `used_words` has one bit per word of `bits`, set iff that word has any set bit (its padding
/// included, so a partial last word is always marked).
#[derive(Debug)]
pub(crate) struct AllocMap {
    bits: Bitmap,
    used_words: Bitmap,
}

impl AllocMap {
    /// An all-clear map of `nbits` bits, or `None` if its memory cannot be had.
    pub(crate) fn try_new(nbits: u64) -> Option<Self> {
        let bits = Bitmap::try_new(nbits)?;
        let words = bits.word_count();
        let mut used_words = Bitmap::try_new(words)?;
        if words > 0 && !bits.word_is_empty(words - 1) {
            // INVARIANT: only a partial last word, through its padding, holds set bits.
            used_words.set(words - 1, words);
        }
        Some(Self { bits, used_words })
    }

    /// Number of bits in the map.
    pub(crate) fn nbits(&self) -> u64 {
        self.bits.nbits()
    }

    /// The first clear bit at or after `from`.
    pub(crate) fn next_zero(&self, from: u64) -> Option<u64> {
        self.bits.next_zero(from)
    }

    /// Whether every bit of `[lo, hi)` is set, with `lo < hi <= nbits`.
    pub(crate) fn all_set(&self, lo: u64, hi: u64) -> bool {
        self.bits.all_set(lo, hi)
    }

    /// Length of the longest run of clear bits.
    pub(crate) fn longest_zero_run(&self) -> u64 {
        self.bits.longest_zero_run()
    }

    /// Sets every bit of `[lo, hi)`, with `lo < hi <= nbits`.
    pub(crate) fn set(&mut self, lo: u64, hi: u64) {
        self.bits.set(lo, hi);
        // INVARIANT: every word touched now holds a set bit.
        self.used_words.set(lo / WORD_BITS, (hi - 1) / WORD_BITS + 1);
    }

    /// Clears every bit of `[lo, hi)`, with `lo < hi <= nbits`.
    pub(crate) fn clear(&mut self, lo: u64, hi: u64) {
        self.bits.clear(lo, hi);
        let (first, last) = (lo / WORD_BITS, (hi - 1) / WORD_BITS);
        // INVARIANT: the words strictly inside the range are now empty; the two end words may
        // keep bits outside the range, so ask them.
        if last > first + 1 {
            self.used_words.clear(first + 1, last);
        }
        for w in [first, last] {
            if self.bits.word_is_empty(w) {
                self.used_words.clear(w, w + 1);
            }
        }
    }

    /// The first start at or after `from` of `len` clear bits allowed by `align`; `len >= 1`.
    ///
    /// Both paths are complete first-fit searches over the same candidates, so they agree.
    pub(crate) fn find_zero_area(&self, from: u64, len: u64, align: Align) -> Option<u64> {
        // Word-aligned starts: the grid is at least a word and lands on word boundaries.
        // `u64::MAX` (a single possible start) is left to the plain search.
        let word_grid = align.mask >= WORD_BITS - 1 && align.mask != u64::MAX && align.offset % WORD_BITS == 0;
        if word_grid && len >= WORD_BITS {
            self.find_whole_words(from, len, align)
        } else {
            self.bits.find_zero_area(from, len, align)
        }
    }

    /// [`find_zero_area`](Self::find_zero_area) for word-aligned starts and `len >= 64`: whole
    /// free words from the summary, then the bits of a partial tail word from the bitmap.
    fn find_whole_words(&self, from: u64, len: u64, align: Align) -> Option<u64> {
        let (full, tail) = (len / WORD_BITS, len % WORD_BITS);
        let grid = Align { mask: align.mask / WORD_BITS, offset: align.offset / WORD_BITS };
        let mut from_word = from.div_ceil(WORD_BITS);
        loop {
            let w = self.used_words.find_zero_area(from_word, full, grid)?;
            let start = w * WORD_BITS;
            if tail == 0 {
                return Some(start);
            }
            // Later candidates end later still.
            let end = start + len;
            if end > self.bits.nbits() {
                return None;
            }
            if self.bits.last_set(end - tail, end).is_none() {
                return Some(start);
            }
            // The tail word holds a set bit, and every start up to it would need it whole.
            from_word = w + full + 1;
        }
    }

    /// Whether bit `bit` (below `nbits`) is set.
    #[cfg(any(test, feature = "debug-checks"))]
    pub(crate) fn test(&self, bit: u64) -> bool {
        self.bits.test(bit)
    }

    /// Number of clear bits.
    #[cfg(any(test, feature = "debug-checks"))]
    pub(crate) fn count_zeros(&self) -> u64 {
        self.bits.count_zeros()
    }

    /// Bit-by-bit oracle: whether any allowed run of `len` clear bits exists.
    #[cfg(any(test, feature = "debug-checks"))]
    pub(crate) fn zero_area_exists_slow(&self, len: u64, align: Align) -> bool {
        self.bits.zero_area_exists_slow(len, align)
    }

    /// Describes the first broken structural invariant, if any.
    #[cfg(any(test, feature = "debug-checks"))]
    pub(crate) fn structure_error(&self) -> Option<String> {
        if !self.bits.padding_is_set() {
            return Some("bitmap padding past the end is clear".into());
        }
        if !self.used_words.padding_is_set() || self.used_words.nbits() != self.bits.word_count() {
            return Some("word summary has the wrong shape".into());
        }
        (0..self.bits.word_count())
            .find(|&w| self.used_words.test(w) == self.bits.word_is_empty(w))
            .map(|w| format!("word summary is wrong for word {w}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pattern: runs of used and free bits, with longer free runs now and then.
    fn patterned(nbits: u64, mut seed: u64) -> AllocMap {
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut map = AllocMap::try_new(nbits).unwrap();
        let mut bit = 0;
        while bit < nbits {
            let r = next();
            let used = 1 + r % 7;
            let free = if r >> 32 & 7 == 0 { 1 + (r >> 40) % 700 } else { 1 + (r >> 40) % 5 };
            let end = (bit + used).min(nbits);
            map.set(bit, end);
            bit = end + free;
        }
        map
    }

    #[test]
    fn summary_follows_set_and_clear() {
        let mut map = AllocMap::try_new(1000).unwrap();
        assert_eq!(map.structure_error(), None);
        map.set(10, 700);
        assert_eq!(map.structure_error(), None);
        map.clear(64, 640);
        assert_eq!(map.structure_error(), None);
        map.clear(10, 64);
        map.clear(640, 700);
        assert_eq!(map.structure_error(), None);
        assert_eq!(map.count_zeros(), 1000);
    }

    #[test]
    fn whole_word_search_agrees_with_the_plain_one() {
        for seed in 1..40u64 {
            let nbits = 2000 + seed * 97;
            let map = patterned(nbits, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert_eq!(map.structure_error(), None);
            for len in [64, 65, 100, 128, 200, 512, 640] {
                for k in 6..11 {
                    let mask = (1u64 << k) - 1;
                    for offset in (0..=mask).step_by(64) {
                        let align = Align { mask, offset };
                        for from in [0, 1, 64, 130] {
                            assert_eq!(
                                map.find_zero_area(from, len, align),
                                map.bits.find_zero_area(from, len, align),
                                "seed {seed} len {len} {align:?} from {from}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn partial_last_word_is_never_a_whole_free_word() {
        let map = AllocMap::try_new(100).unwrap();
        let align = Align { mask: 63, offset: 0 };
        assert_eq!(map.find_zero_area(0, 64, align), Some(0));
        assert_eq!(map.find_zero_area(1, 64, align), None);
        assert_eq!(map.find_zero_area(0, 100, align), Some(0));
        assert_eq!(map.find_zero_area(0, 101, align), None);
    }
}
