//! Decodes an area and a sequence of allocs and releases from the input, runs them on a
//! `CmaArea` and on a granule-by-granule model, and checks after every step that:
//! - `alloc` succeeds exactly when the model holds an aligned free run (no false failures),
//!   and returns a free, aligned run inside the area;
//! - releases of live allocations succeed, and bad releases fail and change nothing;
//! - `check_invariants` holds and the free count and largest free run match the model.
#![no_main]

use dma_cma::CmaArea;
use libfuzzer_sys::fuzz_target;

/// Reads the input a byte at a time, zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
}

/// Used granules, beside the area.
struct Model {
    base_pfn: u64,
    order_per_bit: u32,
    used: Vec<bool>,
}

impl Model {
    fn pfn(&self, bit: usize) -> u64 {
        self.base_pfn + ((bit as u64) << self.order_per_bit)
    }

    fn bits(&self, count: u64) -> usize {
        count.div_ceil(1 << self.order_per_bit) as usize
    }

    fn bit(&self, pfn: u64) -> Option<usize> {
        let offset = pfn.checked_sub(self.base_pfn)?;
        let bit = usize::try_from(offset >> self.order_per_bit).ok()?;
        (offset % (1 << self.order_per_bit) == 0 && bit < self.used.len()).then_some(bit)
    }

    /// Whether an aligned run of free granules for `count` pages exists: each free stretch is
    /// tried from its first aligned start.
    fn fits(&self, count: u64, align_order: u32) -> bool {
        let bits = self.bits(count);
        let aligned = |bit: usize| match 1u64.checked_shl(align_order) {
            Some(step) => self.pfn(bit).is_multiple_of(step),
            None => self.pfn(bit) == 0,
        };
        let mut bit = 0;
        while bit < self.used.len() {
            if self.used[bit] {
                bit += 1;
                continue;
            }
            let end = (bit..self.used.len()).find(|&b| self.used[b]).unwrap_or(self.used.len());
            if count > 0 && (bit..end).find(|&b| aligned(b)).is_some_and(|c| c + bits <= end) {
                return true;
            }
            bit = end;
        }
        false
    }

    fn releasable(&self, pfn: u64, count: u64) -> bool {
        let Some(lo) = self.bit(pfn) else { return false };
        let hi = lo + self.bits(count);
        count > 0 && hi <= self.used.len() && self.used[lo..hi].iter().all(|u| *u)
    }

    fn mark(&mut self, pfn: u64, count: u64, used: bool) {
        let lo = self.bit(pfn).expect("inside and granule aligned");
        let hi = lo + self.bits(count);
        for u in &mut self.used[lo..hi] {
            assert_ne!(*u, used, "overlap at {pfn:#x}+{count}");
            *u = used;
        }
    }

    fn check(&self, area: &CmaArea) {
        area.check_invariants();
        let granule = 1u64 << self.order_per_bit;
        let free = self.used.iter().filter(|u| !**u).count() as u64;
        let longest = self.used.split(|u| *u).map(<[bool]>::len).max().unwrap_or(0) as u64;
        let stats = area.stats();
        assert_eq!(stats.free_pages, free * granule);
        assert_eq!(stats.largest_free_run, longest * granule);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let order_per_bit = u32::from(input.byte() % 4);
    // Half the bases aligned to 1024 granules, so large aligned requests start on bitmap words.
    let base_granules = match input.byte() % 2 {
        0 => u64::from(input.u16()),
        _ => u64::from(input.u16() % 64) << 10,
    };
    let granules = 1 + u64::from(input.u16() % 4096);
    let Ok(mut area) = CmaArea::new("fuzz", base_granules << order_per_bit, granules << order_per_bit, order_per_bit)
    else {
        unreachable!("arguments are valid by construction");
    };
    let mut model = Model { base_pfn: area.base_pfn(), order_per_bit, used: vec![false; granules as usize] };
    let mut live: Vec<(u64, u64)> = Vec::new();

    for _ in 0..256 {
        if input.0.is_empty() {
            break;
        }
        match input.byte() % 8 {
            0..=3 => {
                let count = u64::from(input.u16() % 1100);
                let align_order = u32::from(input.byte() % 16);
                let fits = model.fits(count, align_order);
                let got = area.alloc(count, align_order);
                assert_eq!(got.is_some(), fits, "alloc({count}, {align_order})");
                if let Some(pfn) = got {
                    assert_eq!(pfn % (1 << align_order), 0);
                    model.mark(pfn, count, true);
                    live.push((pfn, count));
                }
            }
            4 | 5 => {
                if !live.is_empty() {
                    let pick = usize::from(input.u16()) % live.len();
                    let (pfn, count) = live.swap_remove(pick);
                    assert_eq!(area.release(pfn, count), Ok(()));
                    model.mark(pfn, count, false);
                }
            }
            6 => {
                let pfn = area.base_pfn().wrapping_add(u64::from(input.u16())).wrapping_sub(8);
                let count = u64::from(input.byte());
                if !model.releasable(pfn, count) {
                    let before = area.stats();
                    assert!(area.release(pfn, count).is_err());
                    assert_eq!(area.stats(), before);
                }
            }
            _ => {
                for (pfn, count) in live.drain(..) {
                    assert_eq!(area.release(pfn, count), Ok(()));
                    model.mark(pfn, count, false);
                }
            }
        }
        model.check(&area);
    }
});
