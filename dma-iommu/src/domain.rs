//! An IOMMU domain: one IOVA space, its page table and its invalidation policy
//! (`struct iommu_domain` with the `iommu_dma_cookie` of `drivers/iommu/dma-iommu.c`).
//!
//! Devices attach to a domain, their own or a shared one, by taking it as their DMA ops
//! ([`Domain::attach`]); every allocation, mapping and bus-master access of those devices
//! then goes through the domain's page table. `iommu.strict=1` (the default here, as on
//! arm64) invalidates the IOTLB on every unmap and frees the IOVA at once; `iommu.strict=0`
//! queues the IOVA in a [`FlushQueue`] until a batched invalidation covers it.
//! `iommu.passthrough=1` makes [`Domain::attach`] leave devices on the direct path.
//!
//! The simulated IOMMU has an IOTLB of the pages a device used: in lazy mode a device that
//! reaches an unmapped IOVA before the flush still lands on the old page, as on hardware,
//! and the access is reported as a stale IOTLB hit and counted.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use dma_core::mem::Page;
use dma_core::{DeviceConfig, DmaAddr, Errno, PhysAddr, Result, System};

use crate::fq::FlushQueue;
use crate::iotlb::Iotlb;
use crate::iova::{FlushRcache, IOVA_GRANULE, IOVA_SHIFT, IovaDomain, IovaStats, fast_size};
use crate::pgtable::{IOVA_BITS, PageTable, Prot};

/// How to create a [`Domain`]. Defaults: the whole 48-bit IOVA space (page 0 excluded),
/// invalidation policy from the system's `iommu.strict=` (strict when unset), passthrough
/// from `iommu.passthrough=`.
#[derive(Clone, Debug)]
pub struct DomainConfig {
    /// First IOVA of the aperture.
    pub aperture_start: u64,
    /// Last IOVA of the aperture (inclusive).
    pub aperture_end: u64,
    /// `Some(true)` strict, `Some(false)` lazy, `None` from the options.
    pub strict: Option<bool>,
    /// IOVA ranges (first, last inclusive) never handed out: MSI doorbells, PCI windows.
    pub reserved: Vec<(u64, u64)>,
    /// Lazy mode: the longest an unmapped IOVA waits for its IOTLB flush
    /// ([`IOVA_FQ_TIMEOUT`](crate::fq::IOVA_FQ_TIMEOUT) by default).
    pub flush_timeout: std::time::Duration,
}

impl Default for DomainConfig {
    fn default() -> Self {
        DomainConfig {
            aperture_start: 0,
            aperture_end: (1 << IOVA_BITS) - 1,
            strict: None,
            reserved: Vec::new(),
            flush_timeout: crate::fq::IOVA_FQ_TIMEOUT,
        }
    }
}

impl DomainConfig {
    /// Sets the aperture `[start, end]`.
    pub fn aperture(mut self, start: u64, end: u64) -> Self {
        self.aperture_start = start;
        self.aperture_end = end;
        self
    }

    /// Sets the lazy-mode flush timeout.
    pub fn flush_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Strict (`true`) or lazy invalidation, overriding `iommu.strict=`.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = Some(strict);
        self
    }

    /// Reserves `[first, last]` (`iommu_dma_reserve_iova`).
    pub fn reserve(mut self, first: u64, last: u64) -> Self {
        self.reserved.push((first, last));
        self
    }
}

/// A snapshot of a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainStats {
    /// The IOVA allocator's counters.
    pub iova: IovaStats,
    /// Bytes mapped in the page table.
    pub mapped_bytes: u64,
    /// IOTLB invalidations so far (one per unmap when strict, one per batch when lazy).
    pub iotlb_flushes: u64,
    /// Unmapped IOVAs waiting for an invalidation (lazy only).
    pub fq_pending: usize,
    /// Device accesses that reached an unmapped IOVA through an IOTLB entry not yet
    /// invalidated (lazy only): use after unmap that hardware would not catch.
    pub iotlb_stale_hits: u64,
    /// Page-table pages in use, the root included.
    pub pgtable_pages: usize,
}

/// How an allocation's CPU address was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CpuView {
    /// `page_address` of a contiguous block.
    Linear,
    /// A `System::vmap` of the page array.
    Vmap,
    /// A `System::remap_uncached` of a contiguous block.
    Uncached,
    /// None (noncontiguous allocations are vmapped on request).
    Unmapped,
}

/// The pages and CPU view behind one allocation, keyed by its IOVA.
#[derive(Debug)]
pub(crate) struct Alloc {
    pub(crate) chunks: Vec<(Page, u32)>,
    pub(crate) size: u64,
    pub(crate) cpu: usize,
    pub(crate) view: CpuView,
    /// The one chunk came from a contiguous area (CMA) of the device or the system.
    pub(crate) cma: bool,
}

/// An IOMMU domain. Use it as a device's DMA ops: `Arc<Domain>` implements
/// [`dma_core::DmaOps`].
#[derive(Debug)]
pub struct Domain {
    pub(crate) sys: Arc<System>,
    iovad: IovaDomain,
    pgtable: Mutex<PageTable>,
    fq: Option<FlushQueue>,
    pub(crate) iotlb: Iotlb,
    iotlb_flushes: AtomicU64,
    pub(crate) iotlb_stale_hits: AtomicU64,
    allocs: Mutex<HashMap<u64, Alloc>>,
    /// The live ranges of the two-step IOVA API.
    pub(crate) iova_ranges: crate::iova_link::Ranges,
    passthrough: bool,
}

impl Domain {
    /// A domain with the default configuration on `sys`.
    ///
    /// # Errors
    ///
    /// As [`Domain::with_config`].
    pub fn new(sys: &Arc<System>) -> Result<Arc<Domain>> {
        Domain::with_config(sys, DomainConfig::default())
    }

    /// A domain on `sys`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an aperture that holds no whole granule above page 0 or reaches beyond
    /// the 48-bit IOVA space.
    pub fn with_config(sys: &Arc<System>, config: DomainConfig) -> Result<Arc<Domain>> {
        let start_pfn = config.aperture_start.div_ceil(IOVA_GRANULE).max(1);
        let end_pfn = (config.aperture_end.saturating_add(1) >> IOVA_SHIFT).wrapping_sub(1);
        if config.aperture_end >= 1 << IOVA_BITS || end_pfn < start_pfn || end_pfn == u64::MAX {
            return Err(Errno::EINVAL);
        }
        let iovad = IovaDomain::new(start_pfn, end_pfn);
        for &(first, last) in &config.reserved {
            if first <= last {
                iovad.reserve(first >> IOVA_SHIFT, last >> IOVA_SHIFT);
            }
        }
        let strict = config.strict.or(sys.options().iommu_strict).unwrap_or(true);
        Ok(Arc::new(Domain {
            sys: Arc::clone(sys),
            iovad,
            pgtable: Mutex::new(PageTable::new()),
            fq: (!strict).then(|| FlushQueue::with_timeout(config.flush_timeout)),
            iotlb: Iotlb::default(),
            iotlb_flushes: AtomicU64::new(0),
            iotlb_stale_hits: AtomicU64::new(0),
            allocs: Mutex::new(HashMap::new()),
            iova_ranges: crate::iova_link::Ranges::default(),
            passthrough: sys.options().iommu_passthrough.unwrap_or(false),
        }))
    }

    /// Attaches a device configuration to this domain: its DMA ops become the domain (with
    /// `iommu.passthrough=1`, the configuration is returned unchanged: direct, identity).
    pub fn attach(self: &Arc<Self>, config: DeviceConfig) -> DeviceConfig {
        if self.passthrough { config } else { config.ops(Arc::clone(self) as Arc<dyn dma_core::DmaOps>) }
    }

    /// True when every unmap invalidates the IOTLB at once.
    pub fn is_strict(&self) -> bool {
        self.fq.is_none()
    }

    /// The system the domain maps memory of.
    pub fn system(&self) -> &Arc<System> {
        &self.sys
    }

    /// The IOVA allocator (for statistics and invariant checks).
    pub fn iova_domain(&self) -> &IovaDomain {
        &self.iovad
    }

    /// `iommu_iova_to_phys`.
    pub fn iova_to_phys(&self, iova: DmaAddr) -> Option<PhysAddr> {
        self.pgtable().iova_to_phys(iova.0)
    }

    /// `iommu_flush_iotlb_all`: in lazy mode, invalidates now and frees every queued IOVA.
    pub fn flush_iotlb_all(&self) {
        match &self.fq {
            Some(fq) => {
                fq.flush(|| self.invalidate_all(), |pfn, pages| self.release(pfn, pages));
            }
            None => self.invalidate_all(),
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DomainStats {
        let (mapped_bytes, pgtable_pages) = {
            let pt = self.pgtable();
            (pt.mapped_bytes(), pt.table_count())
        };
        DomainStats {
            iova: self.iovad.stats(),
            mapped_bytes,
            pgtable_pages,
            iotlb_flushes: self.iotlb_flushes.load(Relaxed),
            fq_pending: self.fq.as_ref().map_or(0, FlushQueue::pending),
            iotlb_stale_hits: self.iotlb_stale_hits.load(Relaxed),
        }
    }

    pub(crate) fn pgtable(&self) -> MutexGuard<'_, PageTable> {
        self.pgtable.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn allocs(&self) -> MutexGuard<'_, HashMap<u64, Alloc>> {
        self.allocs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One invalidation of the whole IOTLB (a lazy batch, or `flush_iotlb_all`).
    fn invalidate_all(&self) {
        self.iotlb.invalidate_all();
        self.iotlb_flushes.fetch_add(1, Relaxed);
    }

    fn release(&self, pfn: u64, pages: u64) {
        self.iovad.free_fast(pfn, pages);
    }

    /// `iommu_dma_alloc_iova`: `size` bytes (granule aligned) of IOVA space whose last byte is
    /// at most `dma_limit`. Returns the IOVA.
    ///
    /// # Errors
    ///
    /// `ENOMEM` when no room is left under the limit, even after flushing the queue and the
    /// range caches.
    pub(crate) fn alloc_iova(&self, size: u64, dma_limit: u64) -> Result<u64> {
        let pages = size >> IOVA_SHIFT;
        let limit_pfn = dma_limit >> IOVA_SHIFT;
        if let Some(fq) = &self.fq {
            fq.poll(|| self.invalidate_all(), |pfn, n| self.release(pfn, n));
        }
        if let Some(pfn) = self.iovad.alloc_fast(pages, limit_pfn, FlushRcache::Never) {
            return Ok(pfn << IOVA_SHIFT);
        }
        // Out of space: ranges waiting for a flush are the first to reclaim.
        self.flush_iotlb_all();
        self.iovad
            .alloc_fast(pages, limit_pfn, FlushRcache::OnFailure)
            .map(|pfn| pfn << IOVA_SHIFT)
            .ok_or(Errno::ENOMEM)
    }

    /// Frees an IOVA range whose page-table entries are already cleared: after one
    /// invalidation when strict, after the flush queue's next batch when lazy.
    pub(crate) fn free_iova(&self, iova: u64, size: u64) {
        let (pfn, pages) = (iova >> IOVA_SHIFT, size >> IOVA_SHIFT);
        match &self.fq {
            None => {
                self.invalidate(iova, size);
                self.release(pfn, pages);
            }
            Some(fq) => fq.queue(pfn, pages, || self.invalidate_all(), |p, n| self.release(p, n)),
        }
    }

    /// One invalidation of the IOTLB entries of `[iova, iova + size)`.
    pub(crate) fn invalidate(&self, iova: u64, size: u64) {
        self.iotlb.invalidate(iova, size);
        self.iotlb_flushes.fetch_add(1, Relaxed);
    }

    /// Frees an IOVA range whose entries are cleared and invalidated already (a two-step
    /// range: every unlink invalidated its part).
    pub(crate) fn release_iova(&self, iova: u64, size: u64) {
        self.release(iova >> IOVA_SHIFT, size >> IOVA_SHIFT);
    }

    /// True when `[iova, iova + size)` (granule aligned) is exactly one live IOVA range, as
    /// `alloc_iova(size)` made it, and its first page is mapped: the check that keeps a bad
    /// or repeated unmap from freeing a range twice. A two-step IOVA range is never one:
    /// only `dma_iova_free` frees it.
    pub(crate) fn is_live(&self, iova: u64, size: u64) -> bool {
        let (pfn, pages) = (iova >> IOVA_SHIFT, size >> IOVA_SHIFT);
        if self.iova_ranges.starts_at(iova) {
            return false;
        }
        let range_ok =
            self.iovad.find(pfn).is_some_and(|r| r.pfn_lo == pfn && !r.reserved && r.pages() == fast_size(pages));
        range_ok && self.pgtable().translate(iova).is_some()
    }

    /// Maps `[iova, iova + size)` to `phys`.
    ///
    /// # Errors
    ///
    /// As [`PageTable::map`].
    pub(crate) fn map(&self, iova: u64, phys: PhysAddr, size: u64, prot: Prot) -> Result<()> {
        self.pgtable().map(iova, phys, size, prot)
    }

    /// `__iommu_dma_unmap`: clears the entries and frees the IOVA range.
    pub(crate) fn unmap_and_free(&self, iova: u64, size: u64) {
        self.pgtable().unmap(iova, size);
        self.free_iova(iova, size);
    }
}
