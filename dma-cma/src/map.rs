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
/// - `used_words` has one bit per word of `bits`, set iff that word has any set bit (its padding
///   included, so a partial last word is always marked).
/// - `bit_hint <= nbits`, and every bit below it is set: the bit search may start there.
/// - `word_hint <= word_count`, and every word of `bits` below it has a set bit (every summary
///   bit below it is set): the whole-word search may start there.
#[derive(Debug)]
pub(crate) struct AllocMap {
    bits: Bitmap,
    used_words: Bitmap,
    bit_hint: u64,
    word_hint: u64,
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
        // INVARIANT: nothing lies below 0.
        Some(Self { bits, used_words, bit_hint: 0, word_hint: 0 })
    }

    /// Number of bits in the map.
    pub(crate) fn nbits(&self) -> u64 {
        self.bits.nbits()
    }

    /// Lower bound of the first clear bit: every bit below it is set.
    #[cfg(test)]
    pub(crate) fn bit_hint(&self) -> u64 {
        self.bit_hint
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
    #[inline]
    pub(crate) fn set(&mut self, lo: u64, hi: u64) {
        self.bits.set(lo, hi);
        let (first, end) = (lo / WORD_BITS, (hi - 1) / WORD_BITS + 1);
        // INVARIANT: every word touched now holds a set bit. Bits only get set, so the hints stay
        // lower bounds; a range reaching down to a hint leaves nothing free below its end.
        self.used_words.set(first, end);
        if lo <= self.bit_hint && self.bit_hint < hi {
            self.bit_hint = hi;
        }
        if first <= self.word_hint && self.word_hint < end {
            self.word_hint = end;
        }
    }

    /// Clears every bit of `[lo, hi)`, with `lo < hi <= nbits`.
    #[inline]
    pub(crate) fn clear(&mut self, lo: u64, hi: u64) {
        self.bits.clear(lo, hi);
        // INVARIANT: the words the range covers whole are now empty; a word it covers in part
        // may keep bits outside the range, so ask it. Only bits from `lo` on were freed, and
        // only words from `lo`'s on may have emptied, so the hints drop at most to those.
        let (whole_lo, whole_hi) = (lo.div_ceil(WORD_BITS), hi / WORD_BITS);
        if whole_lo < whole_hi {
            self.used_words.clear(whole_lo, whole_hi);
        }
        if lo % WORD_BITS != 0 {
            self.clear_if_empty(lo / WORD_BITS);
        }
        if hi % WORD_BITS != 0 {
            self.clear_if_empty(hi / WORD_BITS);
        }
        self.bit_hint = self.bit_hint.min(lo);
        self.word_hint = self.word_hint.min(lo / WORD_BITS);
    }

    /// Clears the summary bit of word `w` if the word holds no set bit.
    #[inline]
    fn clear_if_empty(&mut self, w: u64) {
        if self.bits.word_is_empty(w) {
            self.used_words.clear(w, w + 1);
        }
    }

    /// The first start at or after `from` of `len` clear bits allowed by `align`; `len >= 1`.
    ///
    /// Both paths are complete first-fit searches over the same candidates, so they agree; each
    /// starts at its hint, below which nothing is free.
    ///
    /// Takes `&mut self` only to move the hints up to the first free bit or word it meets.
    #[inline]
    pub(crate) fn find_zero_area(&mut self, from: u64, len: u64, align: Align) -> Option<u64> {
        // Word-aligned starts: the grid is at least a word and lands on word boundaries.
        // `u64::MAX` (a single possible start) is left to the plain search.
        let word_grid = align.mask >= WORD_BITS - 1 && align.mask != u64::MAX && align.offset % WORD_BITS == 0;
        if word_grid && len >= WORD_BITS {
            self.find_whole_words(from, len, align)
        } else {
            let first_free = self.bits.next_zero(self.bit_hint);
            // INVARIANT: every bit from the old hint up to the first clear one is set.
            self.bit_hint = first_free.unwrap_or(self.bits.nbits());
            self.bits.find_zero_area(from.max(first_free?), len, align)
        }
    }

    /// [`find_zero_area`](Self::find_zero_area) for word-aligned starts and `len >= 64`: whole
    /// free words from the summary, then the bits of a partial tail word from the bitmap.
    ///
    /// Starts at the first empty word at or after the word hint: a run of `full >= 1` clear
    /// summary bits starts on an empty word, and none lies below the hint.
    #[inline]
    fn find_whole_words(&mut self, from: u64, len: u64, align: Align) -> Option<u64> {
        let (full, tail) = (len / WORD_BITS, len % WORD_BITS);
        let grid = Align { mask: align.mask / WORD_BITS, offset: align.offset / WORD_BITS };
        let Some(first_empty) = self.used_words.next_zero(self.word_hint) else {
            // INVARIANT: no word at or after the hint is empty, nor any below it.
            self.word_hint = self.bits.word_count();
            return None;
        };
        // INVARIANT: every word from the old hint up to `first_empty` has a set bit.
        self.word_hint = first_empty;
        let nwords = self.bits.word_count();
        // The zero-area search of `Bitmap::find_zero_area` on the summary, written out here so
        // that it inlines: `pos` is always at most the first fitting start (see `bitmap.rs`).
        let mut pos = from.div_ceil(WORD_BITS).max(first_empty);
        loop {
            let w = grid.up(self.used_words.next_zero(pos)?)?;
            let end_word = w.checked_add(full)?;
            if end_word > nwords {
                return None;
            }
            if let Some(used) = self.used_words.last_set(w, end_word) {
                pos = used + 1;
                continue;
            }
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
            pos = end_word + 1;
        }
    }

    /// Whether bit `bit` (below `nbits`) is set.
    #[cfg(test)]
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
        if let Some(w) = (0..self.bits.word_count()).find(|&w| self.used_words.test(w) == self.bits.word_is_empty(w)) {
            return Some(format!("word summary is wrong for word {w}"));
        }
        if self.bit_hint > self.bits.nbits() || (0..self.bit_hint).any(|bit| !self.bits.test(bit)) {
            return Some(format!("a free bit lies below the bit hint {}", self.bit_hint));
        }
        if self.word_hint > self.bits.word_count() || (0..self.word_hint).any(|w| self.bits.word_is_empty(w)) {
            return Some(format!("an empty word lies below the word hint {}", self.word_hint));
        }
        None
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
            let mut map = patterned(nbits, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
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
    fn word_hint_follows_set_clear_and_search() {
        let mut map = AllocMap::try_new(64 * 20 + 10).unwrap();
        let whole = Align { mask: 63, offset: 0 };
        // Words 0..5 hold a set bit each, set from the top down: only the last set, at the hint,
        // moves it (to word 1); the first search then moves it to word 5.
        for w in (0..5).rev() {
            map.set(w * 64 + 7, w * 64 + 8);
        }
        assert_eq!(map.word_hint, 1);
        assert_eq!(map.find_zero_area(0, 64, whole), Some(5 * 64));
        assert_eq!(map.word_hint, 5);
        // An allocation from the hint on carries it past its end; one above it leaves it.
        map.set(5 * 64, 7 * 64);
        assert_eq!(map.word_hint, 7);
        map.set(9 * 64, 9 * 64 + 1);
        assert_eq!(map.word_hint, 7);
        assert_eq!(map.structure_error(), None);
        // A release drops it to the first word it touches, even in part.
        map.clear(6 * 64 + 3, 6 * 64 + 4);
        assert_eq!(map.word_hint, 6);
        map.clear(2 * 64 + 7, 2 * 64 + 8);
        assert_eq!(map.word_hint, 2);
        assert_eq!(map.structure_error(), None);
        assert_eq!(map.find_zero_area(0, 64, whole), Some(2 * 64));
        // No empty word left: the hint goes to the end, and a release brings it back.
        for bit in 0..64 * 20 + 10 {
            if !map.test(bit) {
                map.set(bit, bit + 1);
            }
        }
        assert_eq!(map.find_zero_area(0, 64, whole), None);
        assert_eq!(map.word_hint, 21);
        assert_eq!(map.structure_error(), None);
        map.clear(64 * 19, 64 * 20);
        assert_eq!(map.word_hint, 19);
        assert_eq!(map.find_zero_area(0, 64, whole), Some(64 * 19));
        assert_eq!(map.structure_error(), None);
    }

    #[test]
    fn search_agrees_with_the_plain_one_across_sets_and_clears() {
        // Random sets and clears between searches, so the word hint is met in every state.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let nbits = 64 * 40 + 17;
        let mut map = AllocMap::try_new(nbits).unwrap();
        for step in 0..4000 {
            let r = next();
            let lo = r % nbits;
            let hi = (lo + 1 + (r >> 20) % 300).min(nbits);
            if r >> 40 & 1 == 0 {
                map.set(lo, hi);
            } else {
                map.clear(lo, hi);
            }
            assert_eq!(map.structure_error(), None, "step {step}");
            let len = 64 + (r >> 44) % 200;
            let mask = (1u64 << (6 + (r >> 52) % 4)) - 1;
            let align = Align { mask, offset: 0 };
            let from = (r >> 56) * 7;
            assert_eq!(
                map.find_zero_area(from, len, align),
                map.bits.find_zero_area(from, len, align),
                "step {step} len {len} {align:?} from {from}"
            );
            assert_eq!(map.structure_error(), None, "step {step}");
        }
    }

    #[test]
    fn partial_last_word_is_never_a_whole_free_word() {
        let mut map = AllocMap::try_new(100).unwrap();
        let align = Align { mask: 63, offset: 0 };
        assert_eq!(map.find_zero_area(0, 64, align), Some(0));
        assert_eq!(map.find_zero_area(1, 64, align), None);
        assert_eq!(map.find_zero_area(0, 100, align), Some(0));
        assert_eq!(map.find_zero_area(0, 101, align), None);
    }
}
