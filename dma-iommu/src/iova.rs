//! The IOVA range allocator (`drivers/iommu/iova.c`).
//!
//! Ranges of IOVA page frames (4 KiB granules) inside an aperture, handed out top-down under
//! each request's limit, every range aligned to its size rounded up to a power of two (the
//! kernel's `size_aligned`). Live ranges sit in an ordered map keyed by their first pfn, the
//! kernel's rbtree. Two cached search starts (one for 32-bit limits, one above) skip the packed
//! top of the space, and `max32_alloc_size` remembers the smallest 32-bit request that failed,
//! so that later ones of that size fail at once until something below 4 GiB is freed.
//!
//! The fast path ([`IovaDomain::alloc_fast`] / [`IovaDomain::free_fast`]) puts the per-CPU range
//! caches of [`rcache`] in front: sizes below 32 granules are rounded up to a power of two so a
//! freed range returns to the cache of its class, and a cached range stays in the map (it is
//! still allocated as far as the map knows).
//!
//! An index allocator: it hands out frame numbers, never pointers, so it is safe code.

#![forbid(unsafe_code)]

pub mod rcache;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use rcache::Rcaches;

/// log2 of the IOVA granule: the smallest IOMMU page, 4 KiB.
pub const IOVA_SHIFT: u32 = 12;
/// The IOVA granule in bytes.
pub const IOVA_GRANULE: u64 = 1 << IOVA_SHIFT;
/// Number of rcache size classes: ranges of 1, 2, 4, 8, 16 and 32 granules are cached.
pub const IOVA_RANGE_CACHE_MAX_SIZE: usize = 6;
/// The first pfn above the 32-bit space (`dma_32bit_pfn`).
const DMA_32BIT_PFN: u64 = 1 << (32 - IOVA_SHIFT);

/// Whether [`IovaDomain::alloc_fast`] may empty every range cache and retry when the space
/// looks full (the kernel's `flush_rcache` argument).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FlushRcache {
    /// Return all cached ranges to the map and retry once.
    OnFailure,
    /// Fail at once.
    Never,
}

/// One live range, as [`IovaDomain::find`] reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IovaRange {
    /// First pfn.
    pub pfn_lo: u64,
    /// Last pfn (inclusive).
    pub pfn_hi: u64,
    /// True for a range made by [`IovaDomain::reserve`].
    pub reserved: bool,
}

impl IovaRange {
    /// Number of granules.
    pub const fn pages(&self) -> u64 {
        self.pfn_hi - self.pfn_lo + 1
    }
}

/// A snapshot of the allocator.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IovaStats {
    /// Ranges in the map, including reserved ones and those held by the caches.
    pub ranges: usize,
    /// Ranges held by the range caches.
    pub cached: usize,
    /// Full magazines in the depots.
    pub depot_magazines: usize,
}

#[derive(Debug)]
struct Tree {
    /// pfn_lo -> (pfn_hi, reserved)
    ranges: BTreeMap<u64, (u64, bool)>,
    /// Exclusive upper bound where a search for a limit above 32 bits starts
    /// (`cached_node`'s pfn_lo); `u64::MAX` for the top of the space.
    cached: u64,
    /// The same for 32-bit limits (`cached32_node`).
    cached32: u64,
    /// The smallest 32-bit size that failed since the last free below 4 GiB.
    max32_alloc_size: u64,
}

/// An IOVA space: `iova_domain`.
///
/// # Invariants
///
/// Ranges in the map never overlap, each lies inside `[start_pfn, end_pfn]`, and every pfn a
/// range cache holds starts a live, non-reserved range of its class size.
#[derive(Debug)]
pub struct IovaDomain {
    start_pfn: u64,
    end_pfn: u64,
    tree: Mutex<Tree>,
    rcaches: Rcaches,
}

/// `roundup_pow_of_two`.
const fn pow2_roundup(n: u64) -> u64 {
    if n <= 1 { 1 } else { 1 << (64 - (n - 1).leading_zeros()) }
}

/// The size `alloc_fast` really allocates for a request of `pages`: below 32 granules, the
/// next power of two, so a free returns the range to the cache of its class.
pub const fn fast_size(pages: u64) -> u64 {
    if pages < 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1) { pow2_roundup(pages) } else { pages }
}

impl IovaDomain {
    /// A domain handing out pfns in `[start_pfn, end_pfn]` (`init_iova_domain`). Page 0 is
    /// never handed out: a start of 0 becomes 1, so no mapping has bus address 0.
    ///
    /// # Panics
    ///
    /// When `end_pfn < max(start_pfn, 1)` or `end_pfn` is `u64::MAX`.
    pub fn new(start_pfn: u64, end_pfn: u64) -> IovaDomain {
        let start_pfn = start_pfn.max(1);
        assert!(end_pfn >= start_pfn && end_pfn < u64::MAX, "empty IOVA aperture");
        IovaDomain {
            start_pfn,
            end_pfn,
            tree: Mutex::new(Tree {
                ranges: BTreeMap::new(),
                cached: u64::MAX,
                cached32: u64::MAX,
                max32_alloc_size: DMA_32BIT_PFN,
            }),
            rcaches: Rcaches::new(),
        }
    }

    /// The first pfn that can be handed out.
    pub fn start_pfn(&self) -> u64 {
        self.start_pfn
    }

    /// The last pfn that can be handed out.
    pub fn end_pfn(&self) -> u64 {
        self.end_pfn
    }

    fn lock(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `alloc_iova(size_aligned = true)`: `pages` granules, aligned to `pages` rounded up to a
    /// power of two, ending at or below `limit_pfn`, as high as possible. Returns the first pfn.
    /// Bypasses the range caches.
    pub fn alloc(&self, pages: u64, limit_pfn: u64) -> Option<u64> {
        if pages == 0 {
            return None;
        }
        let mut t = self.lock();
        self.alloc_locked(&mut t, pages, limit_pfn)
    }

    fn alloc_locked(&self, t: &mut Tree, pages: u64, limit_pfn: u64) -> Option<u64> {
        // Exclusive from here on, as in `__alloc_and_insert_iova_range`.
        let limit = limit_pfn.min(self.end_pfn) + 1;
        let is32 = limit <= DMA_32BIT_PFN;
        if is32 && pages >= t.max32_alloc_size {
            return None;
        }
        let align = pow2_roundup(pages);
        let cached = if is32 { t.cached32 } else { t.cached };
        let found = match search(&t.ranges, pages, align, limit.min(cached), self.start_pfn) {
            Some(pfn) => Some(pfn),
            // The retry pass from the top: the cached start is only a hint.
            None if cached < limit => search(&t.ranges, pages, align, limit, self.start_pfn),
            None => None,
        };
        let Some(pfn) = found else {
            if is32 {
                t.max32_alloc_size = pages;
            }
            return None;
        };
        t.ranges.insert(pfn, (pfn + pages - 1, false));
        // `__cached_rbnode_insert_update`.
        if is32 {
            t.cached32 = pfn;
        } else {
            t.cached = pfn;
        }
        Some(pfn)
    }

    /// `free_iova`: frees the live range starting at `pfn`, bypassing the caches. Returns
    /// false (nothing freed) when no allocated range starts there.
    pub fn free(&self, pfn: u64) -> bool {
        let mut t = self.lock();
        Self::free_locked(&mut t, pfn)
    }

    fn free_locked(t: &mut Tree, pfn: u64) -> bool {
        let Some(&(hi, false)) = t.ranges.get(&pfn) else { return false };
        t.ranges.remove(&pfn);
        // `__cached_rbnode_delete_update`: searches restart above the hole.
        let next = t.ranges.range(hi + 1..).next().map_or(u64::MAX, |(&lo, _)| lo);
        if hi < DMA_32BIT_PFN && pfn >= t.cached32 {
            t.cached32 = next;
        }
        if pfn < DMA_32BIT_PFN {
            t.max32_alloc_size = DMA_32BIT_PFN;
        }
        if pfn >= t.cached {
            t.cached = next;
        }
        true
    }

    /// `alloc_iova_fast`: `pages` (rounded as [`fast_size`]) from this CPU's range cache, else
    /// from the map; when that fails too and `flush` allows, empties every cache and retries.
    /// Free with [`IovaDomain::free_fast`] and the same `pages`.
    pub fn alloc_fast(&self, pages: u64, limit_pfn: u64, flush: FlushRcache) -> Option<u64> {
        if pages == 0 {
            return None;
        }
        let pages = fast_size(pages);
        // The cache holds ranges by first pfn: the last one must stay under the limit.
        let limit = limit_pfn.min(self.end_pfn);
        if let Some(pfn) = limit.checked_sub(pages - 1).and_then(|l| self.rcaches.get(pages, l)) {
            return Some(pfn);
        }
        if let Some(pfn) = self.alloc(pages, limit_pfn) {
            return Some(pfn);
        }
        if flush == FlushRcache::Never {
            return None;
        }
        self.flush_rcaches();
        self.alloc(pages, limit_pfn)
    }

    /// `free_iova_fast`: returns a range from [`IovaDomain::alloc_fast`] to this CPU's cache
    /// (ranges of up to 32 granules), else to the map. Like the kernel, a cached size is
    /// trusted: the caller (the DMA ops, which look the mapping up first) passes a live range
    /// and the `pages` it was allocated with; `IovaDomain::check_invariants` (in tests) catches a lie.
    /// Returns false (nothing freed) when an uncached range is not live with that size.
    pub fn free_fast(&self, pfn: u64, pages: u64) -> bool {
        let pages = fast_size(pages);
        if Rcaches::class_of(pages).is_some() {
            if let Some(trimmed) = self.rcaches.insert(pages, pfn) {
                // A depot past its bound hands back one magazine: its ranges go to the map.
                let mut t = self.lock();
                for pfn in trimmed {
                    Self::free_locked(&mut t, pfn);
                }
            }
            true
        } else {
            let mut t = self.lock();
            match t.ranges.get(&pfn) {
                Some(&(hi, false)) if hi - pfn + 1 == pages => Self::free_locked(&mut t, pfn),
                _ => false,
            }
        }
    }

    /// `free_cpu_cached_iovas` for every CPU plus `free_global_cached_iovas`: every cached
    /// range goes back to the map.
    pub fn flush_rcaches(&self) {
        let pfns = self.rcaches.drain_all();
        if pfns.is_empty() {
            return;
        }
        let mut t = self.lock();
        for pfn in pfns {
            Self::free_locked(&mut t, pfn);
        }
    }

    /// `reserve_iova`: takes `[pfn_lo, pfn_hi]` (clipped to the aperture) out of the space for
    /// good (MSI windows, PCI holes). Overlapping reservations merge. Returns false (nothing
    /// changed) when the range is empty or overlaps an allocated range.
    pub fn reserve(&self, pfn_lo: u64, pfn_hi: u64) -> bool {
        let (lo, hi) = (pfn_lo.max(self.start_pfn), pfn_hi.min(self.end_pfn));
        if lo > hi {
            return false;
        }
        let mut t = self.lock();
        let overlapping: Vec<(u64, u64, bool)> =
            t.ranges.range(..=hi).rev().take_while(|&(_, &(h, _))| h >= lo).map(|(&l, &(h, r))| (l, h, r)).collect();
        if overlapping.iter().any(|&(_, _, reserved)| !reserved) {
            return false;
        }
        let (mut new_lo, mut new_hi) = (lo, hi);
        for (l, h, _) in overlapping {
            t.ranges.remove(&l);
            new_lo = new_lo.min(l);
            new_hi = new_hi.max(h);
        }
        t.ranges.insert(new_lo, (new_hi, true));
        true
    }

    /// `find_iova`: the live range (allocated, cached or reserved) containing `pfn`.
    pub fn find(&self, pfn: u64) -> Option<IovaRange> {
        let t = self.lock();
        let (&lo, &(hi, reserved)) = t.ranges.range(..=pfn).next_back()?;
        (hi >= pfn).then_some(IovaRange { pfn_lo: lo, pfn_hi: hi, reserved })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> IovaStats {
        let (cached, depot_magazines) = self.rcaches.counts();
        IovaStats { ranges: self.lock().ranges.len(), cached, depot_magazines }
    }

    /// Checks the invariants; panics with a description on the first one broken.
    ///
    /// # Panics
    ///
    /// When an invariant does not hold.
    #[cfg(any(test, feature = "debug-checks"))]
    pub fn check_invariants(&self) {
        let cached = self.rcaches.snapshot();
        let t = self.lock();
        let mut prev_hi: Option<u64> = None;
        for (&lo, &(hi, _)) in &t.ranges {
            assert!(lo <= hi, "range {lo:#x}..={hi:#x} is inverted");
            assert!(lo >= self.start_pfn && hi <= self.end_pfn, "range {lo:#x}..={hi:#x} outside the aperture");
            if let Some(p) = prev_hi {
                assert!(lo > p, "range at {lo:#x} overlaps the one ending at {p:#x}");
            }
            prev_hi = Some(hi);
        }
        let mut seen = std::collections::HashSet::new();
        for (pages, pfn) in cached {
            assert!(seen.insert(pfn), "pfn {pfn:#x} is cached twice");
            match t.ranges.get(&pfn) {
                Some(&(hi, false)) => assert_eq!(hi - pfn + 1, pages, "cached pfn {pfn:#x} has the wrong size"),
                other => panic!("cached pfn {pfn:#x} is not a live range: {other:?}"),
            }
        }
        assert!(t.max32_alloc_size >= 1);
    }
}

/// The highest `pages`-sized, `align`-aligned hole ending below `high` (exclusive) and starting
/// at or above `low`: the walk of `__alloc_and_insert_iova_range`, downward from `high`.
fn search(ranges: &BTreeMap<u64, (u64, bool)>, pages: u64, align: u64, high: u64, low: u64) -> Option<u64> {
    let fits = |high: u64, above: Option<u64>| -> Option<u64> {
        let pfn = high.checked_sub(pages)? & !(align - 1);
        (pfn >= low && above.is_none_or(|hi| pfn > hi)).then_some(pfn)
    };
    let mut high = high;
    for (&lo, &(hi, _)) in ranges.range(..high).rev() {
        if let Some(pfn) = fits(high, Some(hi)) {
            return Some(pfn);
        }
        high = high.min(lo);
        if high < low.saturating_add(pages) {
            return None;
        }
    }
    fits(high, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn allocates_top_down_size_aligned() {
        let d = IovaDomain::new(0, 0xfff);
        assert_eq!(d.alloc(1, 0xfff), Some(0xfff));
        assert_eq!(d.alloc(4, 0xfff), Some(0xff8));
        assert_eq!(d.alloc(3, 0xfff), Some(0xff4), "3 granules align to 4");
        assert_eq!(d.alloc(1, 0x10), Some(0x10));
        d.check_invariants();
        assert!(d.free(0xff8));
        assert_eq!(d.alloc(2, 0xfff), Some(0xffc), "the freed hole is found first");
        assert!(!d.free(0xff9), "not the start of a range");
        d.check_invariants();
    }

    #[test]
    fn page_zero_is_never_handed_out() {
        let d = IovaDomain::new(0, 3);
        assert_eq!(d.alloc(1, 3), Some(3));
        assert_eq!(d.alloc(2, 3), None, "two granules would need pfn 0 or pfn 3");
        assert_eq!(d.alloc(1, 3), Some(2));
        assert_eq!(d.alloc(1, 3), Some(1));
        assert_eq!(d.alloc(1, 3), None);
    }

    #[test]
    fn max32_hint_fails_fast_and_resets_on_free() {
        let d = IovaDomain::new(1, (1 << 40) - 1);
        let limit32 = DMA_32BIT_PFN - 1;
        assert!(d.reserve(1, limit32 - 8));
        let a = d.alloc(8, limit32).expect("room for 8");
        assert_eq!(d.alloc(8, limit32), None);
        assert_eq!(d.lock().max32_alloc_size, 8);
        assert_eq!(d.alloc(16, limit32), None, "larger sizes fail fast too");
        assert!(d.free(a));
        assert_eq!(d.lock().max32_alloc_size, DMA_32BIT_PFN);
        assert_eq!(d.alloc(8, limit32), Some(a));
        assert!(d.alloc(8, u64::MAX).is_some_and(|p| p > limit32), "64-bit limits are unaffected");
    }

    #[test]
    fn reserve_merges_and_refuses_live_ranges() {
        let d = IovaDomain::new(1, 0xffff);
        assert!(d.reserve(0x100, 0x1ff));
        assert!(d.reserve(0x180, 0x2ff));
        assert_eq!(d.find(0x250), Some(IovaRange { pfn_lo: 0x100, pfn_hi: 0x2ff, reserved: true }));
        assert!(!d.free(0x100), "reserved ranges are not freed");
        let a = d.alloc(1, 0xffff).unwrap();
        assert!(!d.reserve(a, a));
        assert_eq!(d.alloc(0x200, 0x2ff), None, "nothing fits below the reservation");
        d.check_invariants();
    }

    #[test]
    fn fast_path_reuses_cached_ranges_under_the_limit() {
        let d = IovaDomain::new(1, (1 << 36) - 1);
        let a = d.alloc_fast(3, u64::MAX, FlushRcache::Never).unwrap();
        assert_eq!(d.find(a).unwrap().pages(), 4);
        assert!(d.free_fast(a, 3));
        assert_eq!(d.stats().cached, 1);
        d.check_invariants();
        // A lower limit cannot use the cached range.
        let low = d.alloc_fast(4, 0xffff, FlushRcache::Never).unwrap();
        assert!(low + 3 <= 0xffff);
        assert_eq!(d.alloc_fast(4, u64::MAX, FlushRcache::Never), Some(a));
        assert!(!d.free_fast(a, 40), "uncached sizes are checked");
        assert!(d.free_fast(a, 4));
        d.flush_rcaches();
        assert_eq!(d.stats(), IovaStats { ranges: 1, cached: 0, depot_magazines: 0 });
        d.check_invariants();
    }

    #[test]
    fn exhaustion_flushes_the_caches_and_recovers() {
        let d = IovaDomain::new(64, 127);
        let got: Vec<u64> = std::iter::from_fn(|| d.alloc_fast(1, 127, FlushRcache::OnFailure)).collect();
        assert_eq!(got.len(), 64);
        for &p in &got {
            assert!(d.free_fast(p, 1));
        }
        // Everything sits in caches now; a 64-page request must flush them to succeed.
        assert_eq!(d.alloc_fast(64, 127, FlushRcache::Never), None);
        assert_eq!(d.alloc_fast(64, 127, FlushRcache::OnFailure), Some(64));
        d.check_invariants();
    }

    #[test]
    fn large_ranges_bypass_the_caches() {
        let d = IovaDomain::new(1, 1 << 20);
        let a = d.alloc_fast(33, u64::MAX, FlushRcache::Never).unwrap();
        assert_eq!(d.find(a).unwrap().pages(), 33);
        assert_eq!(a % 64, 0, "aligned to the next power of two");
        assert!(d.free_fast(a, 33));
        assert_eq!(d.stats().ranges, 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Alloc { pages: u64, limit: u64, fast: bool },
        Free { index: usize },
        Reserve { lo: u64, len: u64 },
        Flush,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (1u64..70, 0u64..0x1000, any::<bool>()).prop_map(|(pages, limit, fast)| Op::Alloc { pages, limit, fast }),
            4 => any::<usize>().prop_map(|index| Op::Free { index }),
            1 => (0u64..0x1000, 1u64..16).prop_map(|(lo, len)| Op::Reserve { lo, len }),
            1 => Just(Op::Flush),
        ]
    }

    proptest! {
        /// Live ranges never overlap and each ends under its request's limit.
        #[test]
        fn live_ranges_never_overlap_and_respect_limits(ops in proptest::collection::vec(op(), 1..200)) {
            let d = IovaDomain::new(1, 0xfff);
            let mut live: Vec<(u64, u64, bool)> = Vec::new();
            for op in ops {
                match op {
                    Op::Alloc { pages, limit, fast } => {
                        let got = if fast {
                            d.alloc_fast(pages, limit, FlushRcache::OnFailure)
                        } else {
                            d.alloc(pages, limit)
                        };
                        if let Some(pfn) = got {
                            let size = if fast { fast_size(pages) } else { pages };
                            prop_assert!(pfn + size - 1 <= limit, "{pfn:#x}+{size} over {limit:#x}");
                            prop_assert_eq!(pfn % pow2_roundup(size), 0);
                            for &(p, s, _) in &live {
                                prop_assert!(pfn + size <= p || p + s <= pfn, "overlap");
                            }
                            live.push((pfn, size, fast));
                        }
                    }
                    Op::Free { index } if !live.is_empty() => {
                        let (pfn, size, fast) = live.swap_remove(index % live.len());
                        let freed = if fast { d.free_fast(pfn, size) } else { d.free(pfn) };
                        prop_assert!(freed);
                    }
                    Op::Free { .. } => {}
                    Op::Reserve { lo, len } => {
                        let ok = d.reserve(lo, lo + len - 1);
                        let clash = live.iter().any(|&(p, s, _)| p < lo + len && lo < p + s);
                        if ok {
                            prop_assert!(!clash);
                        }
                    }
                    Op::Flush => d.flush_rcaches(),
                }
                d.check_invariants();
            }
        }
    }
}
