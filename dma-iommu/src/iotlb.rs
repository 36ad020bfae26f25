//! The IOTLB: the IOMMU's cache of translations the device has used.
//!
//! Hardware keeps translating an IOVA from its IOTLB after the page-table entry is
//! cleared, until software invalidates it. A strict domain invalidates on every unmap, so
//! there is no window; a lazy one batches invalidations in its flush queue, and until the
//! batch is flushed a device that still holds the old bus address reaches the old page.
//! The simulated IOMMU models that window so a driver's use-after-unmap shows in a lazy
//! domain as it would on hardware: the access lands, and it is reported as a stale hit
//! (hardware would be silent). Entries are per 4 KiB IOVA page, filled on the device's
//! first access through the page table; a full cache is emptied whole, as a small TLB
//! loses its entries to newer ones.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::pgtable::Prot;

/// IOVA page size of an entry.
pub(crate) const PAGE: u64 = 1 << 12;

/// Entries kept before the cache is emptied.
const CAPACITY: usize = 1024;

/// One cached translation: the physical page and what the device may do there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cached {
    pub(crate) phys: u64,
    pub(crate) prot: Prot,
}

/// A domain's IOTLB, keyed by IOVA page.
#[derive(Debug, Default)]
pub(crate) struct Iotlb {
    entries: Mutex<HashMap<u64, Cached>>,
}

impl Iotlb {
    fn entries(&self) -> MutexGuard<'_, HashMap<u64, Cached>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached translation of the page at `iova` (page aligned).
    pub(crate) fn lookup(&self, iova: u64) -> Option<Cached> {
        self.entries().get(&iova).copied()
    }

    /// Caches the translation of the page at `iova` (page aligned).
    pub(crate) fn fill(&self, iova: u64, cached: Cached) {
        let mut entries = self.entries();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(iova, cached);
    }

    /// Invalidates the pages of `[iova, iova + size)` (a strict unmap's invalidation).
    pub(crate) fn invalidate(&self, iova: u64, size: u64) {
        let end = iova.saturating_add(size);
        let mut entries = self.entries();
        if size / PAGE > entries.len() as u64 {
            entries.retain(|&page, _| page < iova || page >= end);
        } else {
            let first = iova & !(PAGE - 1);
            for page in (first..end).step_by(PAGE as usize) {
                entries.remove(&page);
            }
        }
    }

    /// Invalidates everything (`iommu_flush_iotlb_all`, a lazy batch's flush).
    pub(crate) fn invalidate_all(&self) {
        self.entries().clear();
    }

    /// Entries held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_drops_exactly_the_range() {
        let tlb = Iotlb::default();
        let c = Cached { phys: 0x8000, prot: Prot::READ };
        for page in 0..8u64 {
            tlb.fill(page * PAGE, c);
        }
        tlb.invalidate(2 * PAGE, 3 * PAGE);
        let kept: Vec<u64> = (0..8).filter(|p| tlb.lookup(p * PAGE).is_some()).collect();
        assert_eq!(kept, [0, 1, 5, 6, 7]);
        // A range larger than the cache takes the other path, with the same result.
        tlb.invalidate(6 * PAGE, 1 << 40);
        assert_eq!(tlb.len(), 3);
        tlb.invalidate_all();
        assert_eq!(tlb.len(), 0);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let tlb = Iotlb::default();
        let c = Cached { phys: 0, prot: Prot::WRITE };
        for page in 0..CAPACITY as u64 {
            tlb.fill(page * PAGE, c);
        }
        assert_eq!(tlb.len(), CAPACITY);
        tlb.fill(1 << 30, c);
        assert_eq!(tlb.len(), 1, "emptied, then the new entry");
        assert_eq!(tlb.lookup(1 << 30), Some(c));
    }
}
