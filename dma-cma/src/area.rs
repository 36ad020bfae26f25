//! One contiguous memory area: its bitmap, free count and counters.
//!
//! Mirrors `mm/cma.c` (`cma_alloc`, `cma_release`, `cma_bitmap_aligned_mask`,
//! `cma_bitmap_aligned_offset`), minus the page migration, which is the caller's business.

use crate::bitmap::Align;
use crate::error::CmaError;
use crate::map::AllocMap;

/// Longest area name accepted, in bytes (the kernel's `CMA_MAX_NAME`).
pub const MAX_NAME_LEN: usize = 64;

/// Largest `order_per_bit` accepted: one bit per 1024 pages (the kernel's default
/// `MAX_PAGE_ORDER`), 4 MiB with 4 KiB pages.
pub const MAX_ORDER_PER_BIT: u32 = 10;

/// A snapshot of an area's occupancy and counters, from [`CmaArea::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CmaStats {
    /// Pages in the area.
    pub total_pages: u64,
    /// Pages not allocated.
    pub free_pages: u64,
    /// Longest run of free pages, ignoring alignment.
    pub largest_free_run: u64,
    /// Successful [`CmaArea::alloc`] calls.
    pub allocations: u64,
    /// [`CmaArea::alloc`] calls that returned `None`.
    pub failures: u64,
    /// Successful [`CmaArea::release`] calls.
    pub releases: u64,
}

/// A range of page frames handed out in aligned, contiguous pieces.
///
/// Each bitmap bit stands for `1 << order_per_bit` pages (a granule); a request is rounded up to
/// whole granules. It knows nothing of memory: it hands out page-frame numbers, and the caller
/// reserves, migrates and maps the pages. Not thread-safe by itself; wrap it in a `Mutex`.
///
/// # Invariants
///
/// - `bitmap` has `count >> order_per_bit` bits, bit `i` set iff pages
///   `[base_pfn + (i << order_per_bit), ..)` of that granule are allocated.
/// - `free_bits` is the number of clear bits of `bitmap`.
/// - If `no_fit` is `Some((bits, mask))`, no free run of `bits` bits starts on the `mask` grid.
#[derive(Debug)]
pub struct CmaArea {
    name: String,
    base_pfn: u64,
    count: u64,
    order_per_bit: u32,
    bitmap: AllocMap,
    free_bits: u64,
    no_fit: Option<(u64, u64)>,
    allocations: u64,
    failures: u64,
    releases: u64,
}

impl CmaArea {
    /// Creates an area of `count` free pages starting at page frame `base_pfn`.
    ///
    /// # Errors
    ///
    /// - [`CmaError::NameTooLong`] if `name` is longer than [`MAX_NAME_LEN`] bytes.
    /// - [`CmaError::OrderPerBitTooLarge`] if `order_per_bit > MAX_ORDER_PER_BIT`.
    /// - [`CmaError::ZeroCount`] if `count == 0`.
    /// - [`CmaError::CountNotGranular`] / [`CmaError::BaseNotGranular`] if `count` /
    ///   `base_pfn` is not a multiple of `1 << order_per_bit`.
    /// - [`CmaError::RangeOverflow`] if `base_pfn + count` overflows.
    /// - [`CmaError::CountTooLarge`] if the bitmap's memory cannot be allocated.
    pub fn new(name: &str, base_pfn: u64, count: u64, order_per_bit: u32) -> Result<Self, CmaError> {
        if name.len() > MAX_NAME_LEN {
            return Err(CmaError::NameTooLong { len: name.len() });
        }
        if order_per_bit > MAX_ORDER_PER_BIT {
            return Err(CmaError::OrderPerBitTooLarge { order_per_bit });
        }
        let granule = 1u64 << order_per_bit;
        if count == 0 {
            return Err(CmaError::ZeroCount);
        }
        if count % granule != 0 {
            return Err(CmaError::CountNotGranular { count, granule });
        }
        if base_pfn % granule != 0 {
            return Err(CmaError::BaseNotGranular { base_pfn, granule });
        }
        if base_pfn.checked_add(count).is_none() {
            return Err(CmaError::RangeOverflow { base_pfn, count });
        }
        let bitmap = AllocMap::try_new(count >> order_per_bit).ok_or(CmaError::CountTooLarge { count })?;
        // INVARIANT: an all-clear map, all bits free, nothing below bit 0, no failure known.
        Ok(Self {
            name: name.to_owned(),
            base_pfn,
            count,
            order_per_bit,
            free_bits: bitmap.nbits(),
            bitmap,
            no_fit: None,
            allocations: 0,
            failures: 0,
            releases: 0,
        })
    }

    /// The area's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// First page frame of the area.
    pub fn base_pfn(&self) -> u64 {
        self.base_pfn
    }

    /// Number of pages in the area.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Each bitmap bit stands for `1 << order_per_bit` pages.
    pub fn order_per_bit(&self) -> u32 {
        self.order_per_bit
    }

    /// Number of free pages, in O(1).
    pub fn free_pages(&self) -> u64 {
        self.free_bits << self.order_per_bit
    }

    /// Whether page frame `pfn` lies inside the area (allocated or not).
    pub fn contains(&self, pfn: u64) -> bool {
        pfn.checked_sub(self.base_pfn).is_some_and(|offset| offset < self.count)
    }

    /// Allocates `count` contiguous pages whose first page frame is a multiple of
    /// `1 << align_order`, and returns that page frame.
    ///
    /// The request is rounded up to whole granules of `1 << order_per_bit` pages, so
    /// [`release`](Self::release) must be given the same `count`. The alignment is of the
    /// absolute page-frame number, even when `base_pfn` is not aligned to it. The search is
    /// first-fit and complete: it returns `None` only when no aligned free run exists at all.
    ///
    /// Returns `None` if `count` is zero or no aligned run of free pages is long enough.
    #[must_use]
    pub fn alloc(&mut self, count: u64, align_order: u32) -> Option<u64> {
        let pfn = self.alloc_bits(count, align_order);
        match pfn {
            Some(_) => self.allocations += 1,
            None => self.failures += 1,
        }
        pfn
    }

    fn alloc_bits(&mut self, count: u64, align_order: u32) -> Option<u64> {
        if count == 0 {
            return None;
        }
        let bits = count.div_ceil(1 << self.order_per_bit);
        // The kernel's early exit: no search can succeed with fewer free bits than asked for.
        if bits > self.free_bits {
            return None;
        }
        let align = self.align(align_order);
        // A larger request on a coarser (nested) grid cannot fit where a smaller one did not.
        // (No let-chain: the workspace's rust-version is 1.85.)
        if self.no_fit.is_some_and(|(no_bits, no_mask)| bits >= no_bits && align.mask >= no_mask) {
            return None;
        }
        let Some(start) = self.bitmap.find_zero_area(0, bits, align) else {
            // INVARIANT: the search is complete.
            self.no_fit = Some((bits, align.mask));
            return None;
        };
        self.bitmap.take(start, start + bits);
        // INVARIANT: `bits` clear bits were set.
        self.free_bits -= bits;
        Some(self.base_pfn + (start << self.order_per_bit))
    }

    /// The grid, in bits, of starts whose page frame is a multiple of `1 << align_order`
    /// (`cma_bitmap_aligned_mask` and `cma_bitmap_aligned_offset`).
    fn align(&self, align_order: u32) -> Align {
        let shift = align_order.saturating_sub(self.order_per_bit);
        // Past 64, no two starts in a u64 share the grid: a full mask keeps only an exact hit.
        let mask = 1u64.checked_shl(shift).map_or(u64::MAX, |step| step - 1);
        Align { mask, offset: (self.base_pfn >> self.order_per_bit) & mask }
    }

    /// Releases pages `[pfn, pfn + count)`, which must all be allocated.
    ///
    /// `count` is rounded up to whole granules, as in [`alloc`](Self::alloc). Like the kernel's
    /// `cma_release`, the bitmap does not remember where each allocation began, so releasing
    /// part of one allocation, or two adjacent ones at once, is accepted.
    ///
    /// # Errors
    ///
    /// Nothing is changed on error.
    /// - [`CmaError::EmptyRelease`] if `count == 0`.
    /// - [`CmaError::OutsideArea`] if the range does not lie inside the area.
    /// - [`CmaError::Misaligned`] if `pfn` does not start a granule.
    /// - [`CmaError::NotAllocated`] if any page of the range is free (a double free).
    pub fn release(&mut self, pfn: u64, count: u64) -> Result<(), CmaError> {
        if count == 0 {
            return Err(CmaError::EmptyRelease { pfn });
        }
        let offset = pfn
            .checked_sub(self.base_pfn)
            .filter(|&off| off.checked_add(count).is_some_and(|end| end <= self.count))
            .ok_or(CmaError::OutsideArea { pfn, count })?;
        let granule = 1u64 << self.order_per_bit;
        if offset % granule != 0 {
            return Err(CmaError::Misaligned { pfn, granule });
        }
        let lo = offset >> self.order_per_bit;
        // In bounds: `offset` and `self.count` are whole granules and `offset + count <= self.count`,
        // so rounding `count` up to a granule stays inside.
        let hi = lo + count.div_ceil(granule);
        if !self.bitmap.release(lo, hi) {
            return Err(CmaError::NotAllocated { pfn, count });
        }
        // INVARIANT: `hi - lo` set bits were cleared; any remembered failure may now fit.
        self.free_bits += hi - lo;
        self.no_fit = None;
        self.releases += 1;
        Ok(())
    }

    /// Occupancy and counters. `largest_free_run` scans the bitmap: O(`count` / 64).
    pub fn stats(&self) -> CmaStats {
        CmaStats {
            total_pages: self.count,
            free_pages: self.free_pages(),
            largest_free_run: self.bitmap.longest_zero_run() << self.order_per_bit,
            allocations: self.allocations,
            failures: self.failures,
            releases: self.releases,
        }
    }

    /// Checks the type's invariants against the bitmap, bit by bit.
    ///
    /// # Panics
    ///
    /// With a message naming the broken invariant, if the bitmap, the free count, the search
    /// hints and the statistics disagree.
    #[cfg(any(test, feature = "debug-checks"))]
    pub fn check_invariants(&self) {
        let map = &self.bitmap;
        let name = &self.name;
        assert_eq!(map.nbits(), self.count >> self.order_per_bit, "cma {name}: bitmap size does not match count");
        if let Some(broken) = map.structure_error() {
            panic!("cma {name}: {broken}");
        }
        assert_eq!(map.count_zeros(), self.free_bits, "cma {name}: free count disagrees with the bitmap");
        if let Some((bits, mask)) = self.no_fit {
            let align = Align { mask, offset: (self.base_pfn >> self.order_per_bit) & mask };
            assert!(
                !map.zero_area_exists_slow(bits, align),
                "cma {name}: remembered failure of {bits} bits (mask {mask:#x}) now fits"
            );
        }
        let stats = self.stats();
        assert!(
            stats.free_pages <= stats.total_pages
                && stats.largest_free_run <= stats.free_pages
                && (stats.largest_free_run == 0) == (stats.free_pages == 0),
            "cma {name}: inconsistent stats {stats:?}"
        );
        assert!(
            stats.allocations > 0 || stats.free_pages == stats.total_pages,
            "cma {name}: pages in use without any allocation: {stats:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(base_pfn: u64, count: u64, order_per_bit: u32) -> CmaArea {
        CmaArea::new("test", base_pfn, count, order_per_bit).unwrap()
    }

    /// The state a failed call must leave untouched.
    fn snapshot(a: &CmaArea) -> (Vec<bool>, u64, u64, Option<(u64, u64)>, CmaStats) {
        let bits = (0..a.bitmap.nbits()).map(|b| a.bitmap.test(b)).collect();
        (bits, a.free_bits, a.bitmap.bit_hint(), a.no_fit, a.stats())
    }

    #[test]
    fn new_rejects_each_bad_argument() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(CmaArea::new(&long, 0, 8, 0).unwrap_err(), CmaError::NameTooLong { len: 65 });
        assert!(CmaArea::new(&long[1..], 0, 8, 0).is_ok());
        assert_eq!(CmaArea::new("a", 0, 0, 0).unwrap_err(), CmaError::ZeroCount);
        assert_eq!(CmaArea::new("a", 0, 12, 3).unwrap_err(), CmaError::CountNotGranular { count: 12, granule: 8 });
        assert_eq!(CmaArea::new("a", 4, 16, 3).unwrap_err(), CmaError::BaseNotGranular { base_pfn: 4, granule: 8 });
        assert_eq!(CmaArea::new("a", 0, 1 << 11, 11).unwrap_err(), CmaError::OrderPerBitTooLarge { order_per_bit: 11 });
        assert_eq!(
            CmaArea::new("a", u64::MAX - 3, 8, 0).unwrap_err(),
            CmaError::RangeOverflow { base_pfn: u64::MAX - 3, count: 8 }
        );
        assert!(matches!(CmaArea::new("a", 0, u64::MAX - 1023, 10), Err(CmaError::CountTooLarge { .. })));
    }

    #[test]
    fn accessors() {
        let a = area(0x1000, 64, 2);
        assert_eq!(a.name(), "test");
        assert_eq!((a.base_pfn(), a.count(), a.order_per_bit()), (0x1000, 64, 2));
        assert!(a.contains(0x1000) && a.contains(0x103f));
        assert!(!a.contains(0xfff) && !a.contains(0x1040));
        a.check_invariants();
    }

    #[test]
    fn rounds_to_granules_and_first_fits() {
        let mut a = area(0, 64, 2);
        assert_eq!(a.alloc(1, 0), Some(0));
        assert_eq!(a.alloc(5, 0), Some(4));
        assert_eq!(a.free_pages(), 64 - 12);
        assert_eq!(a.alloc(0, 0), None);
        a.release(0, 1).unwrap();
        assert_eq!(a.alloc(4, 0), Some(0));
        a.check_invariants();
        let s = a.stats();
        assert_eq!((s.allocations, s.failures, s.releases), (3, 1, 1));
    }

    #[test]
    fn alignment_is_of_the_absolute_pfn() {
        // Base 0x1003 is not 8-aligned; the first 8-aligned pfn inside is 0x1008.
        let mut a = area(0x1003, 64, 0);
        assert_eq!(a.alloc(1, 3), Some(0x1008));
        assert_eq!(a.alloc(1, 0), Some(0x1003));
        assert_eq!(a.alloc(8, 3), Some(0x1010));
        assert_eq!(a.alloc(16, 4), Some(0x1020));
        assert_eq!(a.alloc(16, 4), Some(0x1030));
        assert_eq!(a.alloc(8, 3), Some(0x1018));
        // 0x1040 is aligned but 8 pages from it end past 0x1043, the area's end.
        assert_eq!(a.alloc(8, 3), None);
        assert_eq!(a.alloc(4, 0), Some(0x1004));
        assert_eq!(a.alloc(7, 0), Some(0x1009));
        assert_eq!(a.alloc(3, 0), Some(0x1040));
        assert_eq!(a.free_pages(), 0);
        a.check_invariants();
        // An alignment beyond any pfn in the area fails unless the base is zero.
        assert_eq!(a.alloc(1, 63), None);
        assert_eq!(a.alloc(1, 200), None);
        let mut z = area(0, 8, 0);
        assert_eq!(z.alloc(1, 200), Some(0));
        assert_eq!(z.alloc(1, 200), None);
        z.check_invariants();
    }

    #[test]
    fn alignment_below_the_granule_is_free() {
        let mut a = area(16, 64, 3);
        assert_eq!(a.alloc(3, 2), Some(16));
        assert_eq!(a.alloc(3, 3), Some(24));
        assert_eq!(a.alloc(8, 5), Some(32));
        assert_eq!(a.alloc(8, 5), Some(64));
        a.check_invariants();
    }

    #[test]
    fn exhaustion_then_recovery() {
        let mut a = area(100, 32, 0);
        let pfns: Vec<u64> = (0..8).map(|_| a.alloc(4, 0).unwrap()).collect();
        assert_eq!(a.free_pages(), 0);
        assert_eq!(a.alloc(1, 0), None);
        a.check_invariants();
        a.release(pfns[3], 4).unwrap();
        assert_eq!(a.alloc(8, 0), None);
        a.release(pfns[4], 4).unwrap();
        assert_eq!(a.alloc(8, 0), Some(pfns[3]));
        a.check_invariants();
        assert_eq!(a.stats().failures, 2);
    }

    #[test]
    fn failure_memo_covers_larger_and_coarser_requests_only() {
        let mut a = area(0, 64, 0);
        for i in 0..16 {
            assert_eq!(a.alloc(1, 2), Some(4 * i));
        }
        // Free runs of 3 pages at 1, 5, 9...: 4 pages never fit; 3 fit unaligned only.
        assert_eq!(a.alloc(4, 0), None);
        assert_eq!(a.no_fit, Some((4, 0)));
        assert_eq!(a.alloc(5, 1), None);
        assert_eq!(a.alloc(3, 0), Some(1));
        assert_eq!(a.alloc(2, 1), Some(6));
        assert_eq!(a.alloc(1, 2), None);
        a.check_invariants();
        assert_eq!(a.no_fit, Some((1, 3)));
        a.release(0, 1).unwrap();
        assert_eq!(a.no_fit, None);
        assert_eq!(a.alloc(1, 2), Some(0));
        a.check_invariants();
    }

    #[test]
    fn bad_releases_change_nothing() {
        let mut a = area(64, 64, 1);
        let p = a.alloc(8, 0).unwrap();
        let q = a.alloc(4, 0).unwrap();
        let before = snapshot(&a);
        assert_eq!(a.release(p, 0), Err(CmaError::EmptyRelease { pfn: p }));
        assert_eq!(a.release(63, 2), Err(CmaError::OutsideArea { pfn: 63, count: 2 }));
        assert_eq!(a.release(126, 4), Err(CmaError::OutsideArea { pfn: 126, count: 4 }));
        assert!(matches!(a.release(u64::MAX, 2), Err(CmaError::OutsideArea { .. })));
        assert_eq!(a.release(p + 1, 2), Err(CmaError::Misaligned { pfn: p + 1, granule: 2 }));
        assert_eq!(a.release(q, 6), Err(CmaError::NotAllocated { pfn: q, count: 6 }));
        assert_eq!(snapshot(&a), before);
        a.release(q, 4).unwrap();
        let before = snapshot(&a);
        assert_eq!(a.release(q, 4), Err(CmaError::NotAllocated { pfn: q, count: 4 }));
        assert_eq!(snapshot(&a), before);
        a.check_invariants();
    }

    #[test]
    fn hint_follows_releases_below_it() {
        let mut a = area(0, 256, 0);
        let first = a.alloc(100, 0).unwrap();
        let _second = a.alloc(100, 0).unwrap();
        assert_eq!(a.bitmap.bit_hint(), 200);
        a.release(first + 10, 5).unwrap();
        assert_eq!(a.bitmap.bit_hint(), 10);
        assert_eq!(a.alloc(5, 0), Some(10));
        a.check_invariants();
    }

    #[test]
    fn stats_report_the_largest_run() {
        let mut a = area(0, 1024, 0);
        let p = a.alloc(300, 0).unwrap();
        let _q = a.alloc(10, 0).unwrap();
        a.release(p + 100, 150).unwrap();
        let s = a.stats();
        assert_eq!(s.total_pages, 1024);
        assert_eq!(s.free_pages, 1024 - 160);
        assert_eq!(s.largest_free_run, 1024 - 310);
        a.check_invariants();
    }
}
