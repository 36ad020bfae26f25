//! The allocation bitmap and its zero-area search, a word at a time.
//!
//! The search answers the question of `lib/bitmap.c`'s `bitmap_find_next_zero_area_off`: the
//! first run of `len` clear bits whose start `c` satisfies `(c + offset) & mask == 0`. It walks
//! `u64` words rather than bits: whole words of set bits are skipped by one compare, and each
//! candidate window is tested from its *end* backwards, so a set bit near the end of a window
//! moves the search past the whole window at once.
//!
//! Why it never misses a run: let `c*` be the first fitting start at or after `pos`. Every bit of
//! `[c*, c* + len)` is clear and `c*` is aligned, so the next clear bit at or after `pos` is at
//! most `c*`, and aligning it up stays at most `c*`. If that candidate `c` fails, the set bit
//! found lies in `[c, c + len)` but outside `[c*, c* + len)`, hence below `c*`; the new `pos` is
//! at most `c*` again. `pos` grows every round, so the loop ends on `c*` or on the end of the map.

use core::fmt;

/// Alignment of a run's first bit, in bits: a start `c` is allowed iff `(c + offset) & mask == 0`.
///
/// `mask` is `2^k - 1` (or `u64::MAX` for an alignment no start inside a `u64` can reach twice);
/// `offset < mask + 1` places the grid when the area's base is not itself aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Align {
    pub(crate) mask: u64,
    pub(crate) offset: u64,
}

impl Align {
    /// Any start is allowed.
    #[cfg(test)]
    pub(crate) const NONE: Self = Self { mask: 0, offset: 0 };

    /// The first allowed start at or after `x`, or `None` if it does not fit in a `u64`.
    #[inline]
    pub(crate) fn up(self, x: u64) -> Option<u64> {
        let y = x.checked_add(self.offset)?.checked_add(self.mask)? & !self.mask;
        // `y >= x + offset`, so this cannot underflow.
        Some(y - self.offset)
    }
}

/// Number of bits in a word.
const WORD_BITS: u64 = u64::BITS as u64;

/// Index of the word holding `bit`.
#[inline]
fn word(bit: u64) -> usize {
    // A bit below `nbits` always has its word inside `words`, whose length is a `usize`.
    (bit / WORD_BITS) as usize
}

/// Mask of the bits of a word at or above `bit`'s position.
#[inline]
fn from_mask(bit: u64) -> u64 {
    u64::MAX << (bit % WORD_BITS)
}

/// Mask of the bits of a word at or below `bit`'s position.
#[inline]
fn upto_mask(bit: u64) -> u64 {
    u64::MAX >> (WORD_BITS - 1 - bit % WORD_BITS)
}

/// A fixed-size bitmap, bit `i` in `words[i / 64]` at position `i % 64`; a set bit is in use.
///
/// # Invariants
///
/// `words.len() == nbits.div_ceil(64)`, and every bit at or past `nbits` in the last word is set,
/// so scans never see a clear bit outside the map and need no bound check.
pub(crate) struct Bitmap {
    words: Vec<u64>,
    nbits: u64,
}

impl fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The words themselves would swamp any log; their shape is what helps.
        f.debug_struct("Bitmap").field("nbits", &self.nbits).field("words", &self.words.len()).finish()
    }
}

impl Bitmap {
    /// An all-clear map of `nbits` bits, or `None` if its memory cannot be had.
    pub(crate) fn try_new(nbits: u64) -> Option<Self> {
        let len = usize::try_from(nbits.div_ceil(WORD_BITS)).ok()?;
        let mut words = Vec::new();
        words.try_reserve_exact(len).ok()?;
        words.resize(len, 0);
        if nbits % WORD_BITS != 0 {
            // INVARIANT: the padding past `nbits` is set once and never cleared.
            words[len - 1] = !upto_mask(nbits - 1);
        }
        Some(Self { words, nbits })
    }

    /// Number of bits in the map.
    pub(crate) fn nbits(&self) -> u64 {
        self.nbits
    }

    /// Number of words in the map, the last one possibly partly padding.
    pub(crate) fn word_count(&self) -> u64 {
        self.words.len() as u64
    }

    /// Whether word `w` (below `word_count`) has no set bit.
    pub(crate) fn word_is_empty(&self, w: u64) -> bool {
        self.words[w as usize] == 0
    }

    /// Whether every word of `[lo, hi)` (word indices, `lo < hi <= word_count`) is all ones.
    #[inline]
    pub(crate) fn words_full(&self, lo: u64, hi: u64) -> bool {
        // The clear bits are gathered without an early exit, eight words at a time in an
        // unrolled body: a failed check is a caller's bug, not worth a branch per word.
        let words = &self.words[lo as usize..hi as usize];
        let mut chunks = words.chunks_exact(8);
        let mut clear = 0;
        for chunk in &mut chunks {
            clear |= chunk.iter().fold(0, |clear, &w| clear | !w);
        }
        clear |= chunks.remainder().iter().fold(0, |clear, &w| clear | !w);
        clear == 0
    }

    /// Stores `value` in every word of `[lo, hi)` (word indices, `lo < hi <= word_count`), whole
    /// words inside the map, so the padding stays set.
    ///
    /// The stores do not read the old words: a later load of them waits on nothing else.
    #[inline]
    pub(crate) fn fill_words(&mut self, lo: u64, hi: u64, value: u64) {
        self.words[lo as usize..hi as usize].fill(value);
    }

    /// Whether bit `bit` (below `nbits`) is set.
    #[cfg(any(test, feature = "debug-checks"))]
    pub(crate) fn test(&self, bit: u64) -> bool {
        self.words[word(bit)] >> (bit % WORD_BITS) & 1 == 1
    }

    /// The first clear bit at or after `from`.
    #[inline]
    pub(crate) fn next_zero(&self, from: u64) -> Option<u64> {
        if from >= self.nbits {
            return None;
        }
        let mut w = word(from);
        let mut free = !self.words[w] & from_mask(from);
        while free == 0 {
            w += 1;
            free = !*self.words.get(w)?;
        }
        // The padding is set, so a clear bit found here is below `nbits`.
        Some(w as u64 * WORD_BITS + u64::from(free.trailing_zeros()))
    }

    /// The last set bit in `[lo, hi)`, with `lo < hi <= nbits`.
    #[inline]
    pub(crate) fn last_set(&self, lo: u64, hi: u64) -> Option<u64> {
        debug_assert!(lo < hi && hi <= self.nbits);
        let first = word(lo);
        let mut w = word(hi - 1);
        let mut used = self.words[w] & upto_mask(hi - 1);
        loop {
            if w == first {
                used &= from_mask(lo);
            }
            if used != 0 {
                let top = WORD_BITS - 1 - u64::from(used.leading_zeros());
                return Some(w as u64 * WORD_BITS + top);
            }
            if w == first {
                return None;
            }
            w -= 1;
            used = self.words[w];
        }
    }

    /// The first start at or after `from` of `len` clear bits allowed by `align`.
    ///
    /// `len` must be at least 1. See the module comment for why no run is missed.
    pub(crate) fn find_zero_area(&self, from: u64, len: u64, align: Align) -> Option<u64> {
        debug_assert!(len > 0);
        let mut pos = from;
        loop {
            let start = align.up(self.next_zero(pos)?)?;
            let end = start.checked_add(len)?;
            if end > self.nbits {
                return None;
            }
            match self.last_set(start, end) {
                None => return Some(start),
                Some(used) => pos = used + 1,
            }
        }
    }

    /// Whether every bit of `[lo, hi)` is set, with `lo < hi <= nbits`.
    #[inline]
    pub(crate) fn all_set(&self, lo: u64, hi: u64) -> bool {
        debug_assert!(lo < hi && hi <= self.nbits);
        let (first, last) = (word(lo), word(hi - 1));
        let (head, tail) = (from_mask(lo), upto_mask(hi - 1));
        if first == last {
            let mask = head & tail;
            return self.words[first] & mask == mask;
        }
        // One bounds check for the whole range. The clear bits of the range are gathered by
        // `or` without an early exit, a loop the compiler vectorises: a failed check is a
        // caller's bug, not worth a branch per word. Whole words have all-ones masks.
        match &self.words[first..last + 1] {
            [first_word, inner @ .., last_word] => {
                let edges = (!first_word & head) | (!last_word & tail);
                inner.iter().fold(edges, |clear, &w| clear | !w) == 0
            }
            _ => unreachable!("a range over two words or more"),
        }
    }

    /// Sets every bit of `[lo, hi)`, with `lo < hi <= nbits`.
    #[inline]
    pub(crate) fn set(&mut self, lo: u64, hi: u64) {
        self.update(lo, hi, |w, m| w | m);
    }

    /// Clears every bit of `[lo, hi)`, with `lo < hi <= nbits`.
    #[inline]
    pub(crate) fn clear(&mut self, lo: u64, hi: u64) {
        self.update(lo, hi, |w, m| w & !m);
    }

    /// Applies `op(word, mask)` to each word touching `[lo, hi)`, `mask` selecting the range.
    #[inline]
    fn update(&mut self, lo: u64, hi: u64, op: impl Fn(u64, u64) -> u64) {
        debug_assert!(lo < hi && hi <= self.nbits);
        let (first, last) = (word(lo), word(hi - 1));
        let (head, tail) = (from_mask(lo), upto_mask(hi - 1));
        if first == last {
            let only = &mut self.words[first];
            *only = op(*only, head & tail);
            return;
        }
        // One bounds check for the whole range; the inner words then update without any.
        match &mut self.words[first..last + 1] {
            [first_word, inner @ .., last_word] => {
                *first_word = op(*first_word, head);
                for w in inner {
                    *w = op(*w, u64::MAX);
                }
                *last_word = op(*last_word, tail);
            }
            _ => unreachable!("a range over two words or more"),
        }
    }

    /// Number of clear bits.
    #[cfg(any(test, feature = "debug-checks"))]
    pub(crate) fn count_zeros(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_zeros())).sum()
    }

    /// Whether the padding past `nbits` is all set.
    #[cfg(any(test, feature = "debug-checks"))]
    pub(crate) fn padding_is_set(&self) -> bool {
        if self.words.len() as u64 != self.nbits.div_ceil(WORD_BITS) {
            return false;
        }
        match self.nbits % WORD_BITS {
            0 => true,
            _ => {
                let pad = !upto_mask(self.nbits - 1);
                self.words[self.words.len() - 1] & pad == pad
            }
        }
    }

    /// Length of the longest run of clear bits.
    pub(crate) fn longest_zero_run(&self) -> u64 {
        let (mut best, mut run) = (0, 0);
        for &w in &self.words {
            match w {
                0 => run += WORD_BITS,
                u64::MAX => run = 0,
                _ => {
                    // Alternate clear and set stretches from the low end; the padding is set, so
                    // a run never counts bits past `nbits`.
                    let mut p = 0;
                    while p < WORD_BITS {
                        let rest = w >> p;
                        let zeros = if rest == 0 { WORD_BITS - p } else { u64::from(rest.trailing_zeros()) };
                        run += zeros;
                        best = best.max(run);
                        p += zeros;
                        if p < WORD_BITS {
                            run = 0;
                            p += u64::from((!(w >> p)).trailing_zeros());
                        }
                    }
                }
            }
            best = best.max(run);
        }
        best
    }

    /// Bit-by-bit oracle for [`find_zero_area`](Self::find_zero_area): whether any allowed run
    /// of `len` clear bits exists. Slow and simple on purpose, for the invariant checker.
    #[cfg(any(test, feature = "debug-checks"))]
    pub(crate) fn zero_area_exists_slow(&self, len: u64, align: Align) -> bool {
        let mut run_start = None;
        for bit in 0..=self.nbits {
            let clear = bit < self.nbits && !self.test(bit);
            match (clear, run_start) {
                (true, None) => run_start = Some(bit),
                (false, Some(s)) => {
                    if align.up(s).and_then(|c| c.checked_add(len)).is_some_and(|end| end <= bit) {
                        return true;
                    }
                    run_start = None;
                }
                _ => {}
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_from(pattern: &str) -> Bitmap {
        let mut map = Bitmap::try_new(pattern.len() as u64).unwrap();
        for (i, c) in pattern.bytes().enumerate() {
            if c == b'1' {
                map.set(i as u64, i as u64 + 1);
            }
        }
        map
    }

    #[test]
    fn padding_is_set_and_stays_out_of_scans() {
        let map = Bitmap::try_new(70).unwrap();
        assert!(map.padding_is_set());
        assert_eq!(map.count_zeros(), 70);
        assert_eq!(map.next_zero(69), Some(69));
        assert_eq!(map.next_zero(70), None);
        assert_eq!(map.longest_zero_run(), 70);
        assert!(Bitmap::try_new(128).unwrap().padding_is_set());
    }

    #[test]
    fn set_clear_across_words() {
        let mut map = Bitmap::try_new(300).unwrap();
        map.set(60, 200);
        assert!(map.all_set(60, 200));
        assert!(!map.all_set(59, 200));
        assert!(!map.all_set(60, 201));
        assert_eq!(map.count_zeros(), 300 - 140);
        assert_eq!(map.next_zero(60), Some(200));
        assert_eq!(map.last_set(0, 300), Some(199));
        assert_eq!(map.last_set(0, 60), None);
        assert_eq!(map.last_set(100, 130), Some(129));
        map.clear(64, 128);
        assert_eq!(map.next_zero(60), Some(64));
        assert_eq!(map.longest_zero_run(), 100);
        map.clear(60, 200);
        assert_eq!(map.count_zeros(), 300);
    }

    #[test]
    fn whole_word_fill_and_check() {
        // 21 words: two unrolled chunks of eight and a remainder of five.
        let mut map = Bitmap::try_new(64 * 21).unwrap();
        for (lo, hi) in [(0, 1), (0, 8), (3, 11), (0, 21), (13, 21), (8, 16)] {
            map.fill_words(lo, hi, u64::MAX);
            assert!(map.words_full(lo, hi));
            assert!(map.all_set(lo * 64, hi * 64));
            assert_eq!(map.count_zeros(), 64 * (21 - (hi - lo)));
            for w in lo..hi {
                map.clear(w * 64 + 17, w * 64 + 18);
                assert!(!map.words_full(lo, hi), "{lo}..{hi} word {w}");
                map.set(w * 64 + 17, w * 64 + 18);
            }
            if lo > 0 {
                assert!(!map.words_full(lo - 1, hi));
            }
            map.fill_words(lo, hi, 0);
            assert_eq!(map.count_zeros(), 64 * 21);
        }
    }

    #[test]
    fn align_up_handles_offset_and_overflow() {
        let a = Align { mask: 7, offset: 3 };
        assert_eq!(a.up(0), Some(5));
        assert_eq!(a.up(5), Some(5));
        assert_eq!(a.up(6), Some(13));
        let only_zero = Align { mask: u64::MAX, offset: 0 };
        assert_eq!(only_zero.up(0), Some(0));
        assert_eq!(only_zero.up(1), None);
        assert_eq!(Align::NONE.up(u64::MAX), Some(u64::MAX));
    }

    #[test]
    fn find_zero_area_first_fit() {
        let map = map_from("1101100011110000");
        assert_eq!(map.find_zero_area(0, 1, Align::NONE), Some(2));
        assert_eq!(map.find_zero_area(0, 3, Align::NONE), Some(5));
        assert_eq!(map.find_zero_area(0, 4, Align::NONE), Some(12));
        assert_eq!(map.find_zero_area(0, 5, Align::NONE), None);
        let four = Align { mask: 3, offset: 0 };
        assert_eq!(map.find_zero_area(0, 2, four), Some(12));
        let four_shifted = Align { mask: 3, offset: 3 };
        assert_eq!(map.find_zero_area(0, 2, four_shifted), Some(5));
    }

    #[test]
    fn longest_run_inside_one_word() {
        let map = map_from("1000100000011000000010");
        assert_eq!(map.longest_zero_run(), 7);
        let full = map_from("1111");
        assert_eq!(full.longest_zero_run(), 0);
    }

    #[test]
    fn search_matches_oracle_on_all_small_maps() {
        // Every 10-bit map, every length and alignment: the word search and the bit oracle agree.
        for pattern in 0u32..1 << 10 {
            let text: String = (0..10).map(|i| if pattern >> i & 1 == 1 { '1' } else { '0' }).collect();
            let map = map_from(&text);
            for len in 1..=10 {
                for k in 0..4 {
                    let mask = (1u64 << k) - 1;
                    for offset in 0..=mask {
                        let align = Align { mask, offset };
                        let found = map.find_zero_area(0, len, align);
                        assert_eq!(
                            found.is_some(),
                            map.zero_area_exists_slow(len, align),
                            "{text} len {len} {align:?}"
                        );
                        if let Some(s) = found {
                            assert_eq!((s + offset) & mask, 0);
                            assert!(map.last_set(s, s + len).is_none());
                        }
                    }
                }
            }
        }
    }
}
