//! Hashing of integer keys (page frame numbers, cache line numbers) for the library's
//! lookup tables: the golden-ratio multiply of the kernel's `hash_64`
//! (`include/linux/hash.h`) instead of std's SipHash, whose resistance to chosen keys
//! buys nothing here (the allocator picks the keys) and costs most of a lookup.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `GOLDEN_RATIO_64`.
const GOLDEN_RATIO: u64 = 0x61c8_8646_80b5_83eb;

/// A hasher for integer keys. The table takes its bucket from the low bits of the hash
/// and a tag from the top seven; a multiply mixes upwards only, so the product is rotated
/// to bring its well-mixed high half down (keys on a stride, say one cache line per page,
/// would otherwise share buckets).
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(GOLDEN_RATIO);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// A map keyed by integers, hashed with [`IntHasher`].
pub(crate) type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    #[test]
    fn strided_keys_spread_over_buckets_and_tags() {
        // Keys 64 apart (one cache line per page) into 1024 buckets: a bare multiply
        // would put them all in 16 buckets.
        let build = BuildHasherDefault::<IntHasher>::default();
        let mut buckets = std::collections::HashSet::new();
        let mut tags = std::collections::HashSet::new();
        for k in 0..1024u64 {
            let h = build.hash_one(k * 64);
            buckets.insert(h & 1023);
            tags.insert(h >> 57);
        }
        assert!(buckets.len() > 600, "{} buckets used", buckets.len());
        assert!(tags.len() > 100, "{} tags used", tags.len());
    }
}
