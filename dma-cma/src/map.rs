//! The allocation map: the page bitmap plus a summary with one bit per bitmap word.
//!
//! Large aligned requests (2 MiB of 4 KiB pages is 512 bits, 8 words) start on word boundaries,
//! and a window of whole words is free iff each word is zero. The summary marks the words that
//! hold any set bit, so such a window is a run of clear summary bits: the same zero-area search,
//! run on a map 64 times smaller, where a fragmented stretch of 4096 pages is one `u64::MAX`
//! word skipped by a single compare. Other requests search the page bitmap directly.
//!
//! Ranges that start and end on word boundaries are set, cleared and checked with plain word
//! stores and compares, without masks.

use crate::bitmap::{Align, Bitmap};

/// Bits per bitmap word, the word summary's granule.
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

    /// Length of the longest run of clear bits.
    pub(crate) fn longest_zero_run(&self) -> u64 {
        self.bits.longest_zero_run()
    }

    /// Sets every bit of `[lo, hi)`, with `lo < hi <= nbits`.
    #[cfg(test)]
    pub(crate) fn set(&mut self, lo: u64, hi: u64) {
        self.bits.set(lo, hi);
        self.mark_used(lo, hi);
    }

    /// Clears every bit of `[lo, hi)`, with `lo < hi <= nbits`.
    #[cfg(test)]
    pub(crate) fn clear(&mut self, lo: u64, hi: u64) {
        self.bits.clear(lo, hi);
        self.mark_free(lo, hi);
    }

    /// Sets every bit of `[lo, hi)`, all clear, with `lo < hi <= nbits`: an allocation of a
    /// range [`find_zero_area`](Self::find_zero_area) returned.
    #[inline]
    pub(crate) fn take(&mut self, lo: u64, hi: u64) {
        debug_assert!(self.bits.last_set(lo, hi).is_none(), "taking a range in use");
        if (lo | hi) % WORD_BITS == 0 {
            // Whole words: plain stores, no masks.
            self.bits.fill_words(lo / WORD_BITS, hi / WORD_BITS, u64::MAX);
        } else {
            self.bits.set(lo, hi);
        }
        self.mark_used(lo, hi);
    }

    /// Clears every bit of `[lo, hi)` if all are set, with `lo < hi <= nbits`; otherwise changes
    /// nothing and returns `false`.
    #[inline]
    pub(crate) fn release(&mut self, lo: u64, hi: u64) -> bool {
        if (lo | hi) % WORD_BITS == 0 {
            // Whole words: plain compares and stores, no masks.
            let (first, end) = (lo / WORD_BITS, hi / WORD_BITS);
            if !self.bits.words_full(first, end) {
                return false;
            }
            self.bits.fill_words(first, end, 0);
        } else {
            if !self.bits.all_set(lo, hi) {
                return false;
            }
            self.bits.clear(lo, hi);
        }
        self.mark_free(lo, hi);
        true
    }

    /// Brings the summary and hints up to date after `[lo, hi)` was set.
    #[inline]
    fn mark_used(&mut self, lo: u64, hi: u64) {
        let (first, end) = (lo / WORD_BITS, (hi - 1) / WORD_BITS + 1);
        // INVARIANT: every word touched now holds a set bit. Bits only get set, so the hints
        // stay lower bounds; a range reaching down to a hint leaves nothing free below its end.
        self.used_words.set(first, end);
        if lo <= self.bit_hint && self.bit_hint < hi {
            self.bit_hint = hi;
        }
        if first <= self.word_hint && self.word_hint < end {
            self.word_hint = end;
        }
    }

    /// Brings the summary and hints up to date after `[lo, hi)` was cleared.
    #[inline]
    fn mark_free(&mut self, lo: u64, hi: u64) {
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
        // Starts on a grid of whole units: the grid is at least a unit and lands on unit
        // boundaries. `u64::MAX` (a single possible start) is left to the plain search.
        let on_grid = |unit: u64| align.mask >= unit - 1 && align.mask != u64::MAX && align.offset % unit == 0;
        if len >= WORD_BITS && on_grid(WORD_BITS) {
            let Some(first_empty) = self.used_words.next_zero(self.word_hint) else {
                // INVARIANT: no word at or after the hint is empty, nor any below it.
                self.word_hint = self.used_words.nbits();
                return None;
            };
            // INVARIANT: every word from the old hint up to `first_empty` has a set bit.
            self.word_hint = first_empty;
            find_units::<WORD_BITS>(&self.used_words, &self.bits, first_empty, from, len, align)
        } else {
            let first_free = self.bits.next_zero(self.bit_hint);
            // INVARIANT: every bit from the old hint up to the first clear one is set.
            self.bit_hint = first_free.unwrap_or(self.bits.nbits());
            self.bits.find_zero_area(from.max(first_free?), len, align)
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

/// [`AllocMap::find_zero_area`] for starts on a grid of whole `UNIT`s of bits and `len >= UNIT`,
/// through `summary`, one bit per unit of `bits`, set iff the unit has a set bit: whole free
/// units from the summary, then the bits of a partial tail unit from `bits`.
///
/// `first_empty` is the first clear summary bit (at or after a hint below which none is): a run
/// of `len / UNIT >= 1` clear summary bits starts on one, so none starts below it.
#[inline]
fn find_units<const UNIT: u64>(
    summary: &Bitmap,
    bits: &Bitmap,
    first_empty: u64,
    from: u64,
    len: u64,
    align: Align,
) -> Option<u64> {
    let (full, tail) = (len / UNIT, len % UNIT);
    let grid = Align { mask: align.mask / UNIT, offset: align.offset / UNIT };
    let units = summary.nbits();
    // The zero-area search of `Bitmap::find_zero_area` on the summary, written out here so that
    // it inlines: `next` is always the first clear summary bit at or after a position that is
    // at most the first fitting start (see `bitmap.rs`).
    let from_unit = from.div_ceil(UNIT);
    let mut next = if from_unit > first_empty { summary.next_zero(from_unit)? } else { first_empty };
    loop {
        let u = grid.up(next)?;
        let end_unit = u.checked_add(full)?;
        if end_unit > units {
            return None;
        }
        // Unit `next` is clear, so when the candidate starts there it need not be asked again.
        let checked_from = if u == next { u + 1 } else { u };
        let used = if checked_from < end_unit { summary.last_set(checked_from, end_unit) } else { None };
        let pos = match used {
            Some(used) => used + 1,
            None => {
                let start = u * UNIT;
                if tail == 0 {
                    return Some(start);
                }
                // Later candidates end later still.
                let end = start + len;
                if end > bits.nbits() {
                    return None;
                }
                if bits.last_set(end - tail, end).is_none() {
                    return Some(start);
                }
                // The tail unit holds a set bit, and every start up to it would need it whole.
                end_unit + 1
            }
        };
        next = summary.next_zero(pos)?;
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
    fn take_and_release_whole_words_and_partial_ranges() {
        // Whole-word ranges (stores and compares, no masks) and ranges with partial edge words
        // leave the same map: bitmap, summary and hints.
        let nbits = 64 * 24 + 5;
        for (lo, hi) in [(0, 64), (64, 576), (128, 64 * 24), (5, 64), (64, 130), (3, 1000), (1000, nbits)] {
            let mut whole = AllocMap::try_new(nbits).unwrap();
            let mut plain = AllocMap::try_new(nbits).unwrap();
            whole.set(7, 8);
            plain.set(7, 8);
            whole.take(lo.max(8), hi);
            plain.set(lo.max(8), hi);
            assert_eq!(whole.structure_error(), None, "take {lo}..{hi}");
            assert!((0..nbits).all(|b| whole.test(b) == plain.test(b)), "take {lo}..{hi}");
            assert_eq!((whole.bit_hint, whole.word_hint), (plain.bit_hint, plain.word_hint));
            assert!(whole.release(lo.max(8), hi));
            plain.clear(lo.max(8), hi);
            assert_eq!(whole.structure_error(), None, "release {lo}..{hi}");
            assert!((0..nbits).all(|b| whole.test(b) == plain.test(b)), "release {lo}..{hi}");
            assert_eq!((whole.bit_hint, whole.word_hint), (plain.bit_hint, plain.word_hint));
            assert_eq!(whole.count_zeros(), nbits - 1);
        }
    }

    #[test]
    fn release_of_a_range_not_all_set_changes_nothing() {
        let nbits = 64 * 20;
        let mut map = AllocMap::try_new(nbits).unwrap();
        map.take(64, 64 * 9);
        // One clear bit anywhere in a whole-word range, in the first, an inner or the last word,
        // or in an 8-word chunk or the remainder past it: refused.
        for hole in [64, 100, 64 * 5 + 63, 64 * 8, 64 * 9 - 1] {
            map.bits.clear(hole, hole + 1);
            let before: Vec<bool> = (0..nbits).map(|b| map.test(b)).collect();
            let hints = (map.bit_hint, map.word_hint);
            assert!(!map.release(64, 64 * 9), "hole at {hole}");
            assert!(!map.release(0, 64 * 10), "hole at {hole}");
            assert!(!map.release(hole, hole + 1), "hole at {hole}");
            assert_eq!((0..nbits).map(|b| map.test(b)).collect::<Vec<_>>(), before);
            assert_eq!((map.bit_hint, map.word_hint), hints);
            map.bits.set(hole, hole + 1);
        }
        assert_eq!(map.structure_error(), None);
        assert!(map.release(64, 64 * 9));
        assert_eq!(map.count_zeros(), nbits);
        assert!(!map.release(64, 128));
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
