//! The two-step IOVA API on a domain (`dma_iova_try_alloc`, `dma_iova_link`,
//! `dma_iova_sync`, `dma_iova_unlink`, `dma_iova_free` of `drivers/iommu/dma-iommu.c`).
//!
//! A range is IOVA space with nothing mapped until the driver links physical ranges into
//! it, each at granule-aligned IOVAs except the first, which keeps the offset within the
//! granule of the physical address the range was asked for. The domain remembers every
//! live range and how many bytes are linked in it, so a free of a range that is not live
//! (freed already, never allocated) or still has links is refused instead of handing the
//! space out twice or leaving mapped pages behind.
//!
//! Every unlink invalidates its IOTLB range at once, in lazy mode too: the IOVA stays the
//! driver's and may be linked again at once, to other pages, which the device must not
//! reach through a stale entry. A free then has nothing left to invalidate and returns the
//! space to the allocator directly (the kernel's `iommu_dma_free_iova` without a gather).

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use dma_core::{Attrs, Device, Direction, DmaAddr, Errno, IovaState, PhysAddr, Result};

use crate::dma_iommu::{granule_align, prot};
use crate::domain::Domain;
use crate::iova::IOVA_GRANULE;

/// One live range: its granule-aligned size and the bytes linked in it.
#[derive(Clone, Copy, Debug)]
struct Range {
    size: u64,
    linked: u64,
}

/// A domain's live two-step ranges, keyed by their first IOVA (granule aligned).
///
/// # Invariants
///
/// `any` is true whenever the map is not empty.
#[derive(Debug, Default)]
pub(crate) struct Ranges {
    map: Mutex<HashMap<u64, Range>>,
    /// Lets every `dma_unmap_*` of a domain that never used the two-step API skip the lock.
    any: AtomicBool,
}

impl Ranges {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Range>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when a live range starts at `iova`: not a mapping `dma_unmap_*` may end.
    pub(crate) fn starts_at(&self, iova: u64) -> bool {
        self.any.load(Ordering::Acquire) && self.lock().contains_key(&iova)
    }

    fn insert(&self, iova: u64, range: Range) {
        let mut map = self.lock();
        // INVARIANT: set before the map holds the range (and never cleared: a domain that
        // used the API once pays the lock on unmap from then on).
        self.any.store(true, Ordering::Release);
        map.insert(iova, range);
    }
}

/// The granule-aligned IOVA span of a state: (first IOVA, size).
fn span(state: &IovaState) -> Option<(u64, u64)> {
    let pad = state.addr.0 & (IOVA_GRANULE - 1);
    let len = state.size().checked_add(pad)?.checked_add(IOVA_GRANULE - 1)? & !(IOVA_GRANULE - 1);
    Some((state.addr.0 - pad, len))
}

impl Domain {
    /// `dma_iova_try_alloc`: IOVA space for `size` bytes after `phys`'s offset in its granule,
    /// under the device's mask. Returns the IOVA plus that offset.
    pub(crate) fn try_alloc_range(&self, dev: &Device, phys: PhysAddr, size: usize) -> Result<DmaAddr> {
        let pad = phys.0 & (IOVA_GRANULE - 1);
        let len = (size as u64)
            .checked_add(pad)
            .filter(|&n| n <= u64::MAX - IOVA_GRANULE)
            .map(granule_align)
            .ok_or(Errno::EINVAL)?;
        let iova = self.alloc_iova(len, dev.map_limit())?;
        self.iova_ranges.insert(iova, Range { size: len, linked: 0 });
        Ok(DmaAddr(iova + pad))
    }

    /// `dma_iova_free`: frees a live range with nothing linked.
    pub(crate) fn free_range(&self, dev: &Device, state: &IovaState) -> Result<()> {
        let (iova, len) = span(state).ok_or(Errno::EINVAL)?;
        let mut ranges = self.iova_ranges.lock();
        match ranges.get(&iova) {
            Some(r) if r.size == len && r.linked == 0 => {
                ranges.remove(&iova);
                drop(ranges);
                self.release_iova(iova, len);
                Ok(())
            }
            Some(r) if r.size == len => {
                dev.warn(format_args!(
                    "dma_iova_free: {} still has {} bytes linked: unlink them first (or use dma_iova_destroy)",
                    state.addr, r.linked
                ));
                Err(Errno::EBUSY)
            }
            _ => {
                dev.warn(format_args!(
                    "dma_iova_free: {} ({} bytes) is not a live IOVA range (freed twice?)",
                    state.addr,
                    state.size()
                ));
                Err(Errno::EINVAL)
            }
        }
    }

    /// `dma_iova_link`: maps `[phys, phys + size)` at `state.addr + offset` (the dispatcher
    /// checked the range lies in the state's).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn link_range(
        &self,
        dev: &Device,
        state: &IovaState,
        phys: PhysAddr,
        offset: usize,
        size: usize,
        dir: Direction,
        attrs: Attrs,
    ) -> Result<()> {
        let addr = state.addr.0 + offset as u64;
        let pad = phys.0 & (IOVA_GRANULE - 1);
        if pad != 0 && offset != 0 {
            // The kernel's WARN_ON_ONCE(iova_start_pad && offset > 0): -EIO.
            dev.warn(format_args!(
                "dma_iova_link: {phys} at offset {offset:#x}: only the first link may start inside a \
                 {IOVA_GRANULE}-byte granule"
            ));
            return Err(Errno::EIO);
        }
        if addr & (IOVA_GRANULE - 1) != pad {
            // iommu_map's refusal of an unaligned IOVA: -EINVAL.
            dev.warn(format_args!(
                "dma_iova_link: {phys} at offset {offset:#x} ({}): the bus address and the physical address must \
                 have the same offset within the {IOVA_GRANULE}-byte granule",
                DmaAddr(addr)
            ));
            return Err(Errno::EINVAL);
        }
        let (iova, len) = (addr - pad, granule_align(size as u64 + pad));
        let (start, total) = span(state).ok_or(Errno::EINVAL)?;
        let mut ranges = self.iova_ranges.lock();
        let Some(range) = ranges.get_mut(&start).filter(|r| r.size == total) else {
            dev.warn(format_args!("dma_iova_link: {} is not a live IOVA range", state.addr));
            return Err(Errno::EINVAL);
        };
        if !dev.is_coherent() && !attrs.intersects(Attrs::SKIP_CPU_SYNC | Attrs::MMIO) {
            self.sys.arch_sync_for_device(phys, size, dir);
        }
        match self.map(iova, PhysAddr(phys.0 - pad), len, prot(dir)) {
            Ok(()) => {
                range.linked += len;
                Ok(())
            }
            Err(Errno::EEXIST) => {
                dev.warn(format_args!(
                    "dma_iova_link: offset {offset:#x}+{size:#x} of {} is linked already",
                    state.addr
                ));
                Err(Errno::EINVAL)
            }
            Err(e) => Err(e),
        }
    }

    /// `dma_iova_sync`: the simulated IOMMU walks the page table on every miss, so there is
    /// nothing to write back; the range must be live.
    pub(crate) fn sync_range(&self, dev: &Device, state: &IovaState) -> Result<()> {
        let (start, total) = span(state).ok_or(Errno::EINVAL)?;
        if self.iova_ranges.lock().get(&start).is_some_and(|r| r.size == total) {
            return Ok(());
        }
        dev.warn(format_args!("dma_iova_sync: {} is not a live IOVA range", state.addr));
        Err(Errno::EINVAL)
    }

    /// `dma_iova_unlink`: unmaps the granules of `[state.addr + offset, + size)`, after a sync
    /// for the CPU on a non-coherent device, and invalidates them in the IOTLB.
    pub(crate) fn unlink_range(
        &self,
        dev: &Device,
        state: &IovaState,
        offset: usize,
        size: usize,
        dir: Direction,
        attrs: Attrs,
    ) -> Result<()> {
        let addr = state.addr.0 + offset as u64;
        let pad = addr & (IOVA_GRANULE - 1);
        let (iova, len) = (addr - pad, granule_align(size as u64 + pad));
        let (start, total) = span(state).ok_or(Errno::EINVAL)?;
        let mut ranges = self.iova_ranges.lock();
        let Some(range) = ranges.get_mut(&start).filter(|r| r.size == total) else {
            dev.warn(format_args!("dma_iova_unlink: {} is not a live IOVA range", state.addr));
            return Err(Errno::EINVAL);
        };
        if !attrs.intersects(Attrs::SKIP_CPU_SYNC | Attrs::MMIO) {
            self.sync(dev, DmaAddr(addr), size, |sys, p, l| sys.arch_sync_for_cpu(p, l, dir));
        }
        let unmapped = self.pgtable().unmap(iova, len);
        range.linked -= unmapped.min(range.linked);
        drop(ranges);
        if unmapped != 0 {
            self.invalidate(iova, len);
        }
        if unmapped != len {
            dev.warn(format_args!(
                "dma_iova_unlink: offset {offset:#x}+{size:#x} of {}: only {unmapped} of {len} bytes were linked",
                state.addr
            ));
            return Err(Errno::EINVAL);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_covers_the_offset_and_the_size() {
        let s = IovaState::from_raw(DmaAddr(0x10_0100), 0x1000).unwrap();
        assert_eq!(span(&s), Some((0x10_0000, 0x2000)));
        let s = IovaState::from_raw(DmaAddr(0x10_0000), 0x1000).unwrap();
        assert_eq!(span(&s), Some((0x10_0000, 0x1000)));
        let s = IovaState::from_raw(DmaAddr(0x10_0fff), (1 << 63) - 1).unwrap();
        assert_eq!(span(&s), Some((0x10_0000, (1 << 63) + 0x1000)));
    }
}
