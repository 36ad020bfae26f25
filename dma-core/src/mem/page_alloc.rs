//! The page allocator: buddy allocators over the platform's RAM, grouped in zones.
//!
//! Mirrors the kernel's zones: ZONE_DMA below `zone_dma_bits`, ZONE_DMA32 below 4 GiB,
//! ZONE_NORMAL above. An allocation names the highest zone it may come from and falls
//! back to lower ones (the kernel's zonelist order). Each RAM range is cut at the zone
//! boundaries into spans; each span has its own buddy allocator and lock, so the
//! common case takes one uncontended lock.

use std::sync::Mutex;

use crate::addr::{PAGE_SHIFT, Pfn};
use crate::mask::dma_bit_mask;
use crate::mem::buddy::{Buddy, BuddyError, MAX_ORDER};

/// A page of the platform's RAM: the handle `struct page *` stands for.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Page(pub Pfn);

impl Page {
    /// The page frame number.
    pub const fn pfn(self) -> Pfn {
        self.0
    }

    /// The physical address of the page's first byte (`page_to_phys`).
    pub const fn phys(self) -> crate::addr::PhysAddr {
        self.0.phys()
    }
}

/// A memory zone, lowest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub enum Zone {
    /// Below `zone_dma_bits` (`ZONE_DMA`).
    Dma,
    /// Below 4 GiB (`ZONE_DMA32`).
    Dma32,
    /// Everything else (`ZONE_NORMAL`).
    Normal,
}

impl Zone {
    /// All zones, lowest first.
    pub const ALL: [Zone; 3] = [Zone::Dma, Zone::Dma32, Zone::Normal];

    /// The kernel's name.
    pub const fn name(self) -> &'static str {
        match self {
            Zone::Dma => "DMA",
            Zone::Dma32 => "DMA32",
            Zone::Normal => "Normal",
        }
    }
}

#[derive(Debug)]
struct Span {
    zone: Zone,
    base: u64,
    end: u64,
    buddy: Mutex<Frames>,
}

/// Most order-0 pages kept hot on a span's list before half go back to the buddy.
const HOT_MAX: usize = 64;

/// A span's buddy allocator with a list of recently freed single pages in front of it,
/// like the kernel's per-CPU page lists (`free_unref_page` / `rmqueue_pcplist`): a page
/// freed and allocated again does not merge up to the largest order and split back down,
/// and it comes back cache-hot. Pages on the list stay allocated in the buddy's view and
/// count as free here.
#[derive(Debug)]
struct Frames {
    buddy: Buddy,
    hot: Vec<u64>,
}

impl Frames {
    fn alloc_below(&mut self, order: u32, limit_pfn: u64) -> Option<u64> {
        if order == 0 {
            if let Some(i) = self.hot.iter().rposition(|&p| p < limit_pfn) {
                return Some(self.hot.swap_remove(i));
            }
        }
        self.buddy.alloc_below(order, limit_pfn)
    }

    fn free(&mut self, pfn: u64, order: u32) -> Result<(), BuddyError> {
        if order != 0 || !self.buddy.is_allocated(pfn, 0) {
            return self.buddy.free(pfn, order);
        }
        if self.hot.contains(&pfn) {
            return Err(BuddyError::NotAllocated);
        }
        if self.hot.len() == HOT_MAX {
            for p in self.hot.drain(..HOT_MAX / 2) {
                let _ = self.buddy.free(p, 0);
            }
        }
        self.hot.push(pfn);
        Ok(())
    }

    /// Returns the hot pages to the buddy (before taking a fixed range, which needs them
    /// merged back, as the kernel drains its per-CPU lists before `alloc_contig_range`).
    fn drain(&mut self) {
        for p in self.hot.drain(..) {
            let _ = self.buddy.free(p, 0);
        }
    }

    fn take_range(&mut self, pfn: u64, count: u64) -> Result<(), BuddyError> {
        self.buddy.take_range(pfn, count).or_else(|_| {
            self.drain();
            self.buddy.take_range(pfn, count)
        })
    }

    fn nr_free(&self) -> u64 {
        self.buddy.nr_free() + self.hot.len() as u64
    }

    fn largest_free_order(&self) -> Option<u32> {
        self.buddy.largest_free_order().or((!self.hot.is_empty()).then_some(0))
    }
}

/// Zoned buddy allocation over a set of RAM ranges.
#[derive(Debug)]
pub(crate) struct PageAllocator {
    spans: Vec<Span>,
    dma_limit: u64,
}

impl PageAllocator {
    /// Builds the zones over RAM `ranges` (base, size) in bytes; every page starts free.
    pub(crate) fn new(ranges: impl Iterator<Item = (u64, u64)>, zone_dma_bits: u32) -> PageAllocator {
        let dma_limit = dma_bit_mask(zone_dma_bits);
        let dma_end = (dma_limit >> PAGE_SHIFT) + 1;
        let dma32_end = ((u32::MAX as u64) >> PAGE_SHIFT).max(dma_end - 1) + 1;
        let mut spans = Vec::new();
        for (base, size) in ranges {
            let (mut pfn, end) = (base >> PAGE_SHIFT, (base + size) >> PAGE_SHIFT);
            for (zone, zone_end) in [(Zone::Dma, dma_end), (Zone::Dma32, dma32_end), (Zone::Normal, u64::MAX)] {
                let stop = end.min(zone_end);
                if pfn < stop {
                    let mut buddy = Buddy::new(pfn, stop - pfn);
                    buddy.add_free_range(pfn, stop - pfn).expect("a fresh span accepts its own range");
                    let (base, end) = (buddy.base_pfn(), buddy.base_pfn() + buddy.span());
                    spans.push(Span {
                        zone,
                        base,
                        end,
                        buddy: Mutex::new(Frames { buddy, hot: Vec::with_capacity(HOT_MAX) }),
                    });
                    pfn = stop;
                }
            }
        }
        spans.sort_by_key(|s| s.base);
        PageAllocator { spans, dma_limit }
    }

    /// The zone a physical limit needs (`dma_direct_optimal_gfp_mask`).
    pub(crate) fn zone_for_limit(&self, phys_limit: u64) -> Zone {
        if phys_limit <= self.dma_limit {
            Zone::Dma
        } else if phys_limit <= u32::MAX as u64 {
            Zone::Dma32
        } else {
            Zone::Normal
        }
    }

    /// `2^order` pages from `highest` or a lower zone, entirely below `limit_pfn`
    /// (exclusive); `None` when no zone has such a block. Searching below a limit inside a
    /// zone spares the small low zones when a mask ends mid-zone (a 28-bit device on a
    /// machine with 1 GiB below 4 GiB gets ZONE_DMA32 pages below 256 MiB).
    pub(crate) fn alloc(&self, order: u32, highest: Zone, limit_pfn: u64) -> Option<Pfn> {
        if order > MAX_ORDER {
            return None;
        }
        for zone in Zone::ALL.iter().rev().filter(|z| **z <= highest) {
            for span in self.spans.iter().filter(|s| s.zone == *zone && s.base < limit_pfn) {
                if let Some(pfn) = lock(&span.buddy).alloc_below(order, limit_pfn) {
                    return Some(Pfn(pfn));
                }
            }
        }
        None
    }

    /// Frees a block from [`PageAllocator::alloc`].
    ///
    /// # Errors
    ///
    /// The buddy allocator's verdict when the block was not allocated with that order.
    pub(crate) fn free(&self, pfn: Pfn, order: u32) -> Result<(), BuddyError> {
        let span = self.span(pfn.0).ok_or(BuddyError::OutOfSpan)?;
        lock(&span.buddy).free(pfn.0, order)
    }

    /// Takes `count` physically contiguous pages, all below `limit_pfn`, searching from the
    /// highest allowed zone down (used to reserve the swiotlb pool and CMA areas).
    pub(crate) fn take_contig(&self, count: u64, highest: Zone, limit_pfn: u64) -> Option<Pfn> {
        const STEP: u64 = 1 << MAX_ORDER;
        for zone in Zone::ALL.iter().rev().filter(|z| **z <= highest) {
            for span in self.spans.iter().filter(|s| s.zone == *zone) {
                let mut pfn = span.base;
                while pfn + count <= span.end.min(limit_pfn) {
                    if lock(&span.buddy).take_range(pfn, count).is_ok() {
                        return Some(Pfn(pfn));
                    }
                    pfn = (pfn / STEP + 1) * STEP;
                }
            }
        }
        None
    }

    /// Takes a specific contiguous range (for `cma=SIZE@BASE`).
    pub(crate) fn take_range(&self, pfn: Pfn, count: u64) -> Result<(), BuddyError> {
        let span = self.span(pfn.0).ok_or(BuddyError::OutOfSpan)?;
        if pfn.0 + count > span.end {
            return Err(BuddyError::OutOfSpan);
        }
        lock(&span.buddy).take_range(pfn.0, count)
    }

    /// Gives back a range from [`PageAllocator::take_contig`] or [`PageAllocator::take_range`].
    pub(crate) fn free_range(&self, pfn: Pfn, count: u64) -> Result<(), BuddyError> {
        let span = self.span(pfn.0).ok_or(BuddyError::OutOfSpan)?;
        lock(&span.buddy).buddy.free_range(pfn.0, count)
    }

    /// Free pages in a zone.
    pub(crate) fn nr_free(&self, zone: Zone) -> u64 {
        self.spans.iter().filter(|s| s.zone == zone).map(|s| lock(&s.buddy).nr_free()).sum()
    }

    /// The largest free block in a zone, as an order.
    pub(crate) fn largest_free_order(&self, zone: Zone) -> Option<u32> {
        self.spans.iter().filter(|s| s.zone == zone).filter_map(|s| lock(&s.buddy).largest_free_order()).max()
    }

    /// Pages in a zone.
    pub(crate) fn nr_pages(&self, zone: Zone) -> u64 {
        self.spans.iter().filter(|s| s.zone == zone).map(|s| s.end - s.base).sum()
    }

    /// Checks every span's buddy allocator (tests and `debug-checks`).
    #[cfg(any(test, feature = "debug-checks"))]
    pub(crate) fn check_invariants(&self) {
        for s in &self.spans {
            lock(&s.buddy).buddy.check_invariants();
        }
    }

    /// The span holding `pfn`: a binary search, as the host platform has thousands of
    /// one-page spans (spans are sorted and disjoint, so their ends are sorted too).
    fn span(&self, pfn: u64) -> Option<&Span> {
        let i = self.spans.partition_point(|s| s.end <= pfn);
        self.spans.get(i).filter(|s| pfn >= s.base)
    }
}

fn lock(m: &Mutex<Frames>) -> std::sync::MutexGuard<'_, Frames> {
    // A panic while holding the lock cannot leave the buddy half-updated in a way that
    // matters more than losing the allocator, so keep going with the inner value.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn pa() -> PageAllocator {
        // 8 MiB..24 MiB straddles the 16 MiB ZONE_DMA limit; 4 GiB.. is Normal.
        PageAllocator::new([(8 * MIB, 16 * MIB), (1 << 32, 8 * MIB)].into_iter(), 24)
    }

    #[test]
    fn ranges_are_cut_at_zone_boundaries() {
        let p = pa();
        assert_eq!(p.nr_pages(Zone::Dma), 2048);
        assert_eq!(p.nr_pages(Zone::Dma32), 2048);
        assert_eq!(p.nr_pages(Zone::Normal), 2048);
        assert_eq!(p.zone_for_limit(dma_bit_mask(24)), Zone::Dma);
        assert_eq!(p.zone_for_limit(dma_bit_mask(30)), Zone::Dma32);
        assert_eq!(p.zone_for_limit(dma_bit_mask(40)), Zone::Normal);
    }

    #[test]
    fn allocations_respect_their_zone_and_fall_back_downwards() {
        let p = pa();
        let dma = p.alloc(0, Zone::Dma, u64::MAX).unwrap();
        assert!(dma.phys().0 < 16 * MIB);
        let n = p.alloc(0, Zone::Normal, u64::MAX).unwrap();
        assert!(n.phys().0 >= 1 << 32);
        // Drain DMA32 (2048 pages), then DMA32 requests fall back to ZONE_DMA.
        for _ in 0..2 {
            assert!(p.alloc(MAX_ORDER, Zone::Dma32, u64::MAX).unwrap().phys().0 >= 16 * MIB);
        }
        let f = p.alloc(0, Zone::Dma32, u64::MAX).unwrap();
        assert!(f.phys().0 < 16 * MIB);
        p.free(f, 0).unwrap();
        assert_eq!(p.free(f, 0), Err(BuddyError::NotAllocated));
    }

    #[test]
    fn hot_pages_are_reused_counted_free_and_still_guarded_against_double_free() {
        let p = pa();
        let before = p.nr_free(Zone::Normal);
        let a = p.alloc(0, Zone::Normal, u64::MAX).unwrap();
        p.free(a, 0).unwrap();
        assert_eq!(p.nr_free(Zone::Normal), before, "a hot page counts as free");
        assert_eq!(p.free(a, 0), Err(BuddyError::NotAllocated), "double free of a hot page");
        assert_eq!(p.alloc(0, Zone::Normal, u64::MAX), Some(a), "the hot page comes back first");
        p.free(a, 0).unwrap();
        // A fixed range over a hot page drains the list and succeeds.
        let span_base = Pfn((1u64 << 32) >> PAGE_SHIFT);
        p.take_range(span_base, 2048).unwrap();
        assert_eq!(p.nr_free(Zone::Normal), before - 2048);
        p.free_range(span_base, 2048).unwrap();
        assert_eq!(p.largest_free_order(Zone::Normal), Some(MAX_ORDER));
    }

    #[test]
    fn take_contig_stays_below_the_limit() {
        let p = pa();
        let t = p.take_contig(1024, Zone::Dma32, u64::MAX).unwrap();
        assert!(t.phys().0 >= 16 * MIB && t.phys().0 + 4 * MIB <= 24 * MIB);
        p.free_range(t, 1024).unwrap();
        assert_eq!(p.nr_free(Zone::Dma32), 2048);
    }
}
