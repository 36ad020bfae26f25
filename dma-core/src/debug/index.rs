//! The side index of large entries (more than one granule) for the containing lookup. An
//! entry sits in the bucket of its start, so an address deep inside a large buffer is
//! found here, not by walking buckets back: one ordered map per power-of-two size class,
//! where a class's entries containing an address all start within one class size below it.

use std::collections::BTreeMap;

use super::HASH_SHIFT;

/// One granule of bus address space: the unit of the bucket key.
pub(crate) const GRANULE: u64 = 1 << HASH_SHIFT;

/// Size classes: class k holds sizes in (2^k, 2^(k+1)] granules; 51 cover every `usize`.
const CLASSES: usize = 64 - HASH_SHIFT as usize;

/// Whether an entry of `size` bytes goes in the index: one of a granule or less starts in
/// the granule of any address it contains or the one before.
pub(crate) fn is_large(size: usize) -> bool {
    size as u64 > GRANULE
}

/// The class of a large size.
fn class_of(size: usize) -> usize {
    (63 - ((size as u64 - 1) >> HASH_SHIFT).leading_zeros()) as usize
}

/// The farthest an address can lie past the start of an entry of class `k` that contains
/// it: the class's largest size, less one.
fn reach(k: usize) -> u64 {
    u64::MAX >> (63 - HASH_SHIFT as usize - k)
}

/// Live large entries by class, each class keyed by (device, start, size) with a count:
/// one buffer may be mapped several times.
#[derive(Debug)]
pub(crate) struct Large {
    classes: [BTreeMap<(u64, u64, usize), u32>; CLASSES],
    /// Bit k set while class k is not empty, so a lookup skips the empty ones.
    used: u64,
}

impl Large {
    pub(crate) fn new() -> Large {
        Large { classes: std::array::from_fn(|_| BTreeMap::new()), used: 0 }
    }

    /// Records a new large entry (before it enters its bucket: the index may say more than
    /// the buckets, never less).
    pub(crate) fn insert(&mut self, dev: u64, start: u64, size: usize) {
        let k = class_of(size);
        *self.classes[k].entry((dev, start, size)).or_insert(0) += 1;
        self.used |= 1 << k;
    }

    /// Forgets a large entry (after it left its bucket).
    pub(crate) fn remove(&mut self, dev: u64, start: u64, size: usize) {
        let k = class_of(size);
        let class = &mut self.classes[k];
        if let Some(n) = class.get_mut(&(dev, start, size)) {
            *n -= 1;
            if *n == 0 {
                class.remove(&(dev, start, size));
                if class.is_empty() {
                    self.used &= !(1 << k);
                }
            }
        }
    }

    /// Whether no large entry is recorded.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.used == 0 && self.classes.iter().all(BTreeMap::is_empty)
    }

    /// The greatest start at most `below` (itself at most `dma`) of a large entry of `dev`
    /// containing `dma`.
    pub(crate) fn nearest(&self, dev: u64, dma: u64, below: u64) -> Option<u64> {
        debug_assert!(below <= dma);
        let mut best = None;
        let mut used = self.used;
        while used != 0 {
            let k = used.trailing_zeros() as usize;
            used &= used - 1;
            let lo = dma.saturating_sub(reach(k)).max(best.map_or(0, |b: u64| b.saturating_add(1)));
            if lo > below {
                continue;
            }
            let hit = self.classes[k]
                .range((dev, lo, 0)..=(dev, below, usize::MAX))
                .rev()
                .find(|&(&(_, start, size), _)| dma - start < size as u64);
            if let Some((&(_, start, _), _)) = hit {
                best = Some(start);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: usize = GRANULE as usize;

    #[test]
    fn classes_split_at_powers_of_two_granules() {
        assert!(!is_large(G) && is_large(G + 1));
        assert_eq!(class_of(G + 1), 0);
        assert_eq!(class_of(2 * G), 0);
        assert_eq!(class_of(2 * G + 1), 1);
        assert_eq!(class_of(8 << 20), 9, "8 MiB: 1024 granules, in (512, 1024]");
        // The largest size a usize holds is in the last class it can reach (the last of
        // all on 64-bit targets, class 18 on 32-bit ones).
        let last = usize::BITS as usize - HASH_SHIFT as usize - 1;
        assert!(last < CLASSES);
        assert_eq!(class_of(usize::MAX), last);
        for k in [0, 9, last - 1] {
            let top = G << (k + 1);
            assert_eq!(class_of(top), k);
            assert_eq!(reach(k), top as u64 - 1, "the largest of class {k} reaches its last byte");
        }
        assert_eq!(reach(CLASSES - 1), u64::MAX);
    }

    #[test]
    fn nearest_start_containing_wins_across_classes() {
        let mut ix = Large::new();
        ix.insert(1, 0x10_0000, 4 << 20);
        ix.insert(1, 0x30_0000, 3 * G);
        ix.insert(2, 0x30_2000, 3 * G);
        let dma = 0x30_4000;
        assert_eq!(ix.nearest(1, dma, dma), Some(0x30_0000), "the small class's entry starts later");
        assert_eq!(ix.nearest(1, dma, 0x30_0000 - 1), Some(0x10_0000), "below the bound: the 4 MiB one");
        assert_eq!(ix.nearest(1, 0x30_6000, 0x30_6000), Some(0x10_0000), "past the 24 KiB one's end");
        assert_eq!(ix.nearest(2, dma, dma), Some(0x30_2000), "another device's own");
        assert_eq!(ix.nearest(3, dma, dma), None);
        assert_eq!(ix.nearest(1, 0x50_0000, 0x50_0000), None, "past every end");
    }

    #[test]
    fn duplicates_are_counted_and_empty_classes_cleared() {
        let mut ix = Large::new();
        ix.insert(1, 0x40_0000, 4 << 20);
        ix.insert(1, 0x40_0000, 4 << 20);
        ix.remove(1, 0x40_0000, 4 << 20);
        assert_eq!(ix.nearest(1, 0x70_0000, 0x70_0000), Some(0x40_0000), "one mapping left");
        ix.remove(1, 0x40_0000, 4 << 20);
        assert_eq!(ix.nearest(1, 0x70_0000, 0x70_0000), None);
        assert!(ix.is_empty());
        ix.remove(1, 0x40_0000, 4 << 20);
        assert!(ix.is_empty(), "removing what is not there changes nothing");
    }
}
