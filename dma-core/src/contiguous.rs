//! Contiguous memory areas for DMA (`kernel/dma/contiguous.c`).
//!
//! Areas are reserved from the platform's RAM: the default area at start-up from
//! `cma=SIZE[@BASE][-LIMIT]`, and per-device areas (the kernel's `memory-region` /
//! `shared-dma-pool`) when a device is created with one. `dma_alloc_contiguous` tries the
//! device's own area first (any size), then the default area (more than one page only);
//! an area the device cannot reach with its coherent mask is skipped; a caller that may
//! not block never uses CMA. Free finds the area by address; a page in no area goes
//! back to the buddy allocator.
//!
//! In userspace nothing else uses an area's pages meanwhile (there is no page cache to
//! migrate), so an allocation is the bitmap search alone, and `dma-cma` guarantees it
//! finds an aligned run whenever one exists.

use std::sync::{Mutex, MutexGuard};

use dma_cma::{CmaArea, CmaStats};

use crate::addr::{PAGE_SHIFT, Pfn, PhysAddr};
use crate::errno::{Errno, Result};
use crate::mem::page_alloc::{PageAllocator, Zone};

/// The default cap on the alignment of a CMA allocation, as an order (`CONFIG_CMA_ALIGNMENT`):
/// 2^8 pages = 1 MiB.
pub const CMA_ALIGNMENT: u32 = 8;

/// Areas are placed on pageblock boundaries (`CMA_MIN_ALIGNMENT_PAGES`): 2 MiB.
const AREA_ALIGN_PAGES: u64 = 512;

/// One area with the physical range it covers.
#[derive(Debug)]
pub(crate) struct Cma {
    base: Pfn,
    count: u64,
    area: Mutex<CmaArea>,
}

/// A snapshot of one area, like a line of `/proc/meminfo`'s `CmaTotal` / `CmaFree`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmaAreaStats {
    /// The area's name (`"reserved"` for the default area, else the device's).
    pub name: String,
    /// First physical address.
    pub base: PhysAddr,
    /// Occupancy and counters.
    pub stats: CmaStats,
}

impl Cma {
    /// Reserves `size` bytes (rounded up to 2 MiB) from `pages` inside `[lo, hi)`: exactly
    /// at `lo` when `fixed`, else at the first free 2 MiB-aligned place from `lo` up (or,
    /// without `lo`, anywhere below `hi`, highest zone first).
    pub(crate) fn reserve(
        pages: &PageAllocator,
        name: &str,
        size: u64,
        lo: Option<PhysAddr>,
        hi: u64,
        fixed: bool,
    ) -> Result<Cma> {
        let count = (size >> PAGE_SHIFT).div_ceil(AREA_ALIGN_PAGES) * AREA_ALIGN_PAGES;
        if count == 0 {
            return Err(Errno::EINVAL);
        }
        let hi_pfn = hi >> PAGE_SHIFT;
        let pfn = match lo {
            Some(b) if b.0 % (AREA_ALIGN_PAGES << PAGE_SHIFT) != 0 => return Err(Errno::EINVAL),
            Some(b) => {
                let mut pfn = b.pfn().0;
                loop {
                    if pfn + count > hi_pfn {
                        return Err(if fixed { Errno::EINVAL } else { Errno::ENOMEM });
                    }
                    match pages.take_range(Pfn(pfn), count) {
                        Ok(()) => break Pfn(pfn),
                        Err(_) if fixed => return Err(Errno::EBUSY),
                        Err(_) => pfn += AREA_ALIGN_PAGES,
                    }
                }
            }
            None => pages.take_contig(count, Zone::Normal, hi_pfn).ok_or(Errno::ENOMEM)?,
        };
        match CmaArea::new(name, pfn.0, count, 0) {
            Ok(area) => Ok(Cma { base: pfn, count, area: Mutex::new(area) }),
            Err(_) => {
                let _ = pages.free_range(pfn, count);
                Err(Errno::EINVAL)
            }
        }
    }

    /// True while some allocation from the area is live.
    pub(crate) fn in_use(&self) -> bool {
        let area = self.lock();
        area.free_pages() != area.count()
    }

    /// Gives the area's pages back to the page allocator (per-device areas, on drop).
    pub(crate) fn unreserve(&self, pages: &PageAllocator) {
        let _ = pages.free_range(self.base, self.count);
    }

    /// The physical range, as (first, one past the last).
    pub(crate) fn range(&self) -> (PhysAddr, PhysAddr) {
        (self.base.phys(), Pfn(self.base.0 + self.count).phys())
    }

    fn lock(&self) -> MutexGuard<'_, CmaArea> {
        self.area.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `cma_alloc` of `count` pages aligned to `min(order of the size, CMA_ALIGNMENT)`.
    pub(crate) fn alloc(&self, count: u64) -> Option<Pfn> {
        let order = (64 - (count - 1).leading_zeros()).min(CMA_ALIGNMENT);
        self.lock().alloc(count, order).map(Pfn)
    }

    /// `cma_release`: false (nothing freed) when the pages are not this area's.
    pub(crate) fn release(&self, pfn: Pfn, count: u64) -> Option<core::result::Result<(), dma_cma::CmaError>> {
        let mut area = self.lock();
        area.contains(pfn.0).then(|| area.release(pfn.0, count))
    }

    /// Statistics.
    pub(crate) fn stats(&self) -> CmaAreaStats {
        let area = self.lock();
        CmaAreaStats { name: area.name().to_owned(), base: self.base.phys(), stats: area.stats() }
    }
}

impl crate::device::Device {
    /// `dma_alloc_contiguous`: `size` bytes (whole pages) of physically contiguous memory
    /// from the device's own area or the default one, for DMA ops that need contiguity
    /// (`DMA_ATTR_FORCE_CONTIGUOUS` behind an IOMMU). `None` when CMA does not apply (no
    /// area, a single page from the shared area, a caller that may not block) or is full.
    pub fn alloc_contiguous(&self, size: usize, gfp: crate::Gfp) -> Option<crate::Page> {
        let size = crate::page_align(size).filter(|&s| s != 0)?;
        crate::direct::alloc_contiguous(self, size, gfp).map(crate::Page)
    }

    /// `dma_free_contiguous`: gives back pages from [`Device::alloc_contiguous`](crate::Device::alloc_contiguous) (or, for
    /// pages in no area, to the page allocator as one block of `size` bytes).
    pub fn release_contiguous(&self, page: crate::Page, size: usize) {
        let Some(size) = crate::page_align(size).filter(|&s| s != 0) else { return };
        crate::direct::release(self, page, size, crate::DmaAddr(page.phys().0), "dma_free_contiguous");
    }
}
