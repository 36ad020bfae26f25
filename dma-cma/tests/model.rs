//! Property tests of `CmaArea` against a page-by-page model, through the public API only.
//!
//! The model is a `Vec<bool>` of used granules; its oracle tries every start, so `alloc` must
//! succeed exactly when the oracle finds an aligned free run (no false failures), and the run it
//! returns must be free, aligned and inside the area.

use dma_cma::{CmaArea, CmaError};
use proptest::prelude::*;

/// Used granules of an area, kept beside it.
struct Model {
    base_pfn: u64,
    order_per_bit: u32,
    used: Vec<bool>,
}

impl Model {
    fn new(area: &CmaArea) -> Self {
        Self {
            base_pfn: area.base_pfn(),
            order_per_bit: area.order_per_bit(),
            used: vec![false; (area.count() >> area.order_per_bit()) as usize],
        }
    }

    fn granule(&self) -> u64 {
        1 << self.order_per_bit
    }

    fn pfn(&self, bit: usize) -> u64 {
        self.base_pfn + ((bit as u64) << self.order_per_bit)
    }

    fn bits(&self, count: u64) -> usize {
        count.div_ceil(self.granule()) as usize
    }

    fn bit(&self, pfn: u64) -> usize {
        ((pfn - self.base_pfn) >> self.order_per_bit) as usize
    }

    /// Every start whose pfn is aligned and whose run is free, tried one by one.
    fn fits(&self, count: u64, align_order: u32) -> bool {
        let bits = self.bits(count);
        count > 0
            && (0..self.used.len()).any(|c| {
                let aligned = align_order >= 64 || self.pfn(c) % (1u64 << align_order) == 0;
                aligned && c + bits <= self.used.len() && !self.used[c..c + bits].contains(&true)
            })
    }

    fn free_pages(&self) -> u64 {
        self.used.iter().filter(|u| !**u).count() as u64 * self.granule()
    }

    fn largest_free_run(&self) -> u64 {
        let longest = self.used.split(|u| *u).map(<[bool]>::len).max().unwrap_or(0);
        longest as u64 * self.granule()
    }

    /// Whether `release(pfn, count)` must succeed.
    fn releasable(&self, pfn: u64, count: u64) -> bool {
        let total = self.used.len() as u64 * self.granule();
        let Some(offset) = pfn.checked_sub(self.base_pfn) else {
            return false;
        };
        count > 0 && offset.checked_add(count).is_some_and(|end| end <= total) && offset % self.granule() == 0 && {
            let lo = self.bit(pfn);
            self.used[lo..lo + self.bits(count)].iter().all(|u| *u)
        }
    }

    fn mark(&mut self, pfn: u64, count: u64, used: bool) {
        let lo = self.bit(pfn);
        let hi = lo + self.bits(count);
        for u in &mut self.used[lo..hi] {
            assert_ne!(*u, used, "model: range {pfn:#x}+{count} overlaps");
            *u = used;
        }
    }

    fn assert_matches(&self, area: &CmaArea) {
        area.check_invariants();
        let stats = area.stats();
        assert_eq!(stats.free_pages, self.free_pages(), "free pages");
        assert_eq!(area.free_pages(), stats.free_pages);
        assert_eq!(stats.largest_free_run, self.largest_free_run(), "largest free run");
    }
}

/// An area of 1..=600 granules of `1 << order_per_bit` pages, at a granule-aligned base: half
/// the time any such base, half the time one aligned to 1024 granules (so that large aligned
/// requests start on bitmap words and take the word-summary search).
fn area_strategy() -> impl Strategy<Value = CmaArea> {
    let base = prop_oneof![0u64..1 << 20, (0u64..1 << 10).prop_map(|b| b << 10)];
    (0u32..=3, 1u64..=600, base)
        .prop_map(|(order, granules, base)| CmaArea::new("model", base << order, granules << order, order).unwrap())
}

#[derive(Debug, Clone)]
enum Op {
    Alloc { count: u64, align_order: u32 },
    Release { pick: usize },
    BadRelease { offset: i64, count: u64 },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..=64, 0u32..=8).prop_map(|(count, align_order)| Op::Alloc { count, align_order }),
        1 => (1u64..=512, 0u32..=10).prop_map(|(count, align_order)| Op::Alloc { count, align_order }),
        3 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        1 => (-16i64..5000, 0u64..40).prop_map(|(offset, count)| Op::BadRelease { offset, count }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ops_keep_allocations_disjoint_aligned_and_inside(
        mut area in area_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..120),
    ) {
        let mut model = Model::new(&area);
        let start = area.stats();
        let mut live: Vec<(u64, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Alloc { count, align_order } => {
                    let fits = model.fits(count, align_order);
                    let got = area.alloc(count, align_order);
                    prop_assert_eq!(got.is_some(), fits, "alloc({}, {}) vs oracle", count, align_order);
                    if let Some(pfn) = got {
                        prop_assert_eq!(pfn % (1 << align_order), 0);
                        prop_assert!(area.contains(pfn) && area.contains(pfn + count - 1));
                        model.mark(pfn, count, true);
                        live.push((pfn, count));
                    }
                }
                Op::Release { pick } => {
                    if !live.is_empty() {
                        let (pfn, count) = live.swap_remove(pick % live.len());
                        prop_assert_eq!(area.release(pfn, count), Ok(()));
                        model.mark(pfn, count, false);
                    }
                }
                Op::BadRelease { offset, count } => {
                    let pfn = area.base_pfn().wrapping_add_signed(offset);
                    if !model.releasable(pfn, count) {
                        let before = area.stats();
                        prop_assert!(area.release(pfn, count).is_err());
                        prop_assert_eq!(area.stats(), before);
                    }
                }
            }
            model.assert_matches(&area);
        }
        for (pfn, count) in live {
            prop_assert_eq!(area.release(pfn, count), Ok(()));
            model.mark(pfn, count, false);
        }
        model.assert_matches(&area);
        let end = area.stats();
        prop_assert_eq!(end.free_pages, start.free_pages);
        prop_assert_eq!(end.largest_free_run, start.largest_free_run);
    }

    #[test]
    fn alloc_succeeds_iff_an_aligned_free_run_exists(
        mut area in area_strategy(),
        runs in prop::collection::vec((any::<bool>(), 1usize..80), 1..40),
        requests in prop::collection::vec((1u64..=700, 0u32..=12), 1..16),
    ) {
        // Any bitmap: take every granule singly, then give back the granules of the free runs.
        let mut model = Model::new(&area);
        let granule = 1u64 << area.order_per_bit();
        let taken: Vec<u64> = (0..model.used.len())
            .map(|_| area.alloc(granule, 0).expect("the area has room for every granule"))
            .collect();
        prop_assert_eq!(area.alloc(1, 0), None);
        let pattern = runs.iter().flat_map(|&(free, len)| std::iter::repeat_n(free, len)).cycle();
        for (&pfn, free) in taken.iter().zip(pattern) {
            model.mark(pfn, granule, true);
            if free {
                area.release(pfn, granule).unwrap();
                model.mark(pfn, granule, false);
            }
        }
        model.assert_matches(&area);
        for (count, align_order) in requests {
            let fits = model.fits(count, align_order);
            let got = area.alloc(count, align_order);
            prop_assert_eq!(got.is_some(), fits, "alloc({}, {}) vs oracle", count, align_order);
            if let Some(pfn) = got {
                prop_assert_eq!(pfn % (1 << align_order), 0);
                model.mark(pfn, count, true);
                // Release again half the time, so later requests see both kinds of state.
                if count % 2 == 0 {
                    area.release(pfn, count).unwrap();
                    model.mark(pfn, count, false);
                }
            }
            model.assert_matches(&area);
        }
    }
}

#[test]
fn bad_releases_leave_the_area_alone() {
    let mut area = CmaArea::new("bad", 1000, 64, 0).unwrap();
    let pfn = area.alloc(16, 3).unwrap();
    assert_eq!(pfn, 1000);
    let before = area.stats();
    assert_eq!(area.release(pfn + 16, 1), Err(CmaError::NotAllocated { pfn: pfn + 16, count: 1 }));
    assert!(matches!(area.release(999, 2), Err(CmaError::OutsideArea { .. })));
    assert!(matches!(area.release(1060, 8), Err(CmaError::OutsideArea { .. })));
    assert_eq!(area.stats(), before);
    area.release(pfn, 16).unwrap();
    assert!(matches!(area.release(pfn, 16), Err(CmaError::NotAllocated { .. })));
    area.check_invariants();
}

#[test]
fn exhaustion_returns_none_and_recovers() {
    let mut area = CmaArea::new("full", 0x4_0000, 4096, 2).unwrap();
    let mut live = Vec::new();
    while let Some(pfn) = area.alloc(64, 6) {
        live.push(pfn);
    }
    assert_eq!(live.len(), 64);
    assert_eq!(area.alloc(1, 0), None);
    assert_eq!(area.stats().free_pages, 0);
    for pfn in live.drain(..).step_by(2) {
        area.release(pfn, 64).unwrap();
    }
    assert_eq!(area.alloc(128, 0), None);
    assert!(area.alloc(64, 6).is_some());
    area.check_invariants();
    let stats = area.stats();
    assert_eq!((stats.allocations, stats.failures, stats.releases), (65, 3, 32));
}

#[test]
fn base_misaligned_to_the_request_is_handled() {
    // A 2 MiB (order 9) request in an area whose base is only 4-page aligned.
    let mut area = CmaArea::new("odd", 0x1_0004, 2048, 2).unwrap();
    let pfn = area.alloc(512, 9).unwrap();
    assert_eq!(pfn, 0x1_0200);
    assert_eq!(area.alloc(512, 9), Some(0x1_0400));
    assert_eq!(area.alloc(512, 9), Some(0x1_0600));
    // 0x1_0800 + 512 would pass the end at 0x1_0804.
    assert_eq!(area.alloc(512, 9), None);
    assert_eq!(area.alloc(508, 2), Some(0x1_0004));
    area.check_invariants();
}
