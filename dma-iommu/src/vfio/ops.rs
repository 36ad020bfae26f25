//! A [`VfioDevice`] as a device's DMA ops: the system's platform (`host`: real pinned pages)
//! provides the memory, the VFIO container maps its process addresses at IOVAs from this
//! crate's allocator, under the device's mask. The kernel's `dma-iommu.c` with the IOMMU
//! driver in the kernel.
//!
//! - `alloc`: a contiguous block from the page allocator, mapped read-write. Userspace
//!   cannot make memory uncached, so a coherent allocation for a non-coherent device is
//!   refused (`EOPNOTSUPP`); `NON_CONSISTENT` (cached, synced) allocations work.
//! - `map_phys`: the CPU address of the physical range, mapped with the direction's
//!   permissions; cache maintenance first for a non-coherent device.
//! - `alloc_noncontiguous`: single pages, wherever they are, mapped as one IOVA range;
//!   `vmap_noncontiguous` maps them at one CPU range.
//! - `translate`: IOVA -> process address -> physical address, with the mapping's
//!   permissions; the real device goes through the real IOMMU, this serves the simulated
//!   bus master and diagnostics.

use std::ptr::NonNull;

use dma_core::{
    Attrs, Device, Direction, DmaAddr, DmaMask, DmaOps, Errno, FaultKind, Gfp, Page, PhysAddr, Result, SgTable, System,
    get_order, page_align,
};

use super::VfioDevice;
use crate::iova::{IOVA_GRANULE, IOVA_SHIFT};

/// Zone flags go: the IOMMU, not the zone, keeps addresses under the mask.
fn page_gfp(gfp: Gfp) -> Gfp {
    gfp.difference(Gfp::ZONE_MASK | Gfp::__GFP_COMP) | Gfp::__GFP_ZERO
}

impl VfioDevice {
    /// Calls `f` with each physically contiguous piece behind `[dma, dma + size)`, page by
    /// page (the pieces of a scattered mapping need not be adjacent).
    fn for_each_phys(&self, sys: &System, dma: DmaAddr, size: usize, mut f: impl FnMut(PhysAddr, usize)) {
        let mut at = dma.0;
        let end = dma.0.saturating_add(size as u64);
        while at < end {
            let chunk = ((at | (IOVA_GRANULE - 1)) + 1).min(end) - at;
            if let Some(phys) = self.iova_to_virt(DmaAddr(at)).and_then(|v| sys.virt_to_phys(v as *const u8)) {
                f(phys, chunk as usize);
            }
            at += chunk;
        }
    }

    /// Frees the pages behind the pieces of an unmapped allocation.
    fn free_pieces(sys: &System, pieces: &[(usize, usize)], order: u32) {
        for &(addr, _) in pieces {
            if let Some(page) = sys.virt_to_page(addr as *const u8) {
                let _ = sys.free_pages(page, order);
            }
        }
    }
}

impl DmaOps for VfioDevice {
    fn name(&self) -> &str {
        "vfio"
    }

    fn supported(&self, _dev: &Device, mask: DmaMask) -> bool {
        mask.value() >= ((self.iovad.start_pfn() + 1) << IOVA_SHIFT) - 1
    }

    fn need_sync(&self, dev: &Device, _dma: DmaAddr) -> bool {
        !dev.is_coherent()
    }

    fn alloc(&self, dev: &Device, size: usize, gfp: Gfp, attrs: Attrs) -> Result<(NonNull<u8>, DmaAddr)> {
        if !dev.is_coherent() && !attrs.contains(Attrs::NON_CONSISTENT) {
            dev.warn(format_args!(
                "vfio: no uncached memory in userspace for a coherent allocation of a non-coherent device"
            ));
            return Err(Errno::EOPNOTSUPP);
        }
        let size = page_align(size).filter(|&s| s != 0).ok_or(Errno::EINVAL)?;
        let sys = dev.system();
        let order = get_order(size);
        let page = sys.alloc_pages(page_gfp(gfp), order).map_err(|_| Errno::ENOMEM)?;
        let cpu = NonNull::new(sys.page_address(page)).ok_or(Errno::ENOMEM)?;
        match self.map_pieces(&[(cpu.as_ptr() as usize, size)], Direction::Bidirectional, dev.alloc_limit()) {
            Ok(dma) => Ok((cpu, dma)),
            Err(e) => {
                let _ = sys.free_pages(page, order);
                Err(e)
            }
        }
    }

    unsafe fn free(&self, dev: &Device, size: usize, cpu: NonNull<u8>, dma: DmaAddr, _attrs: Attrs) {
        if self.pieces(dma).is_none_or(|p| p.first().map(|&(a, _)| a) != Some(cpu.as_ptr() as usize)) {
            dev.warn(format_args!("dma_free: {dma} is not a live allocation at {cpu:p}"));
            return;
        }
        if let Ok(pieces) = self.unmap_dma(dma) {
            Self::free_pieces(dev.system(), &pieces, get_order(size));
        }
    }

    unsafe fn map_phys(
        &self,
        dev: &Device,
        phys: PhysAddr,
        size: usize,
        dir: Direction,
        attrs: Attrs,
    ) -> Result<DmaAddr> {
        let sys = dev.system();
        let cpu = sys.phys_to_virt(phys, size).ok_or(Errno::EINVAL)?;
        if !dev.is_coherent() && !attrs.intersects(Attrs::SKIP_CPU_SYNC | Attrs::MMIO) {
            sys.arch_sync_for_device(phys, size, dir);
        }
        let addr = cpu.as_ptr() as usize;
        let off = addr % IOVA_GRANULE as usize;
        let len = (size + off).div_ceil(IOVA_GRANULE as usize) * IOVA_GRANULE as usize;
        let iova = self.map_pieces(&[(addr - off, len)], dir, dev.map_limit())?;
        Ok(DmaAddr(iova.0 + off as u64))
    }

    unsafe fn unmap_phys(&self, dev: &Device, dma: DmaAddr, size: usize, dir: Direction, attrs: Attrs) -> Result<()> {
        let sys = dev.system();
        if !dev.is_coherent() && !attrs.intersects(Attrs::SKIP_CPU_SYNC | Attrs::MMIO) {
            self.for_each_phys(sys, dma, size, |p, l| sys.arch_sync_for_cpu(p, l, dir));
        }
        self.unmap_dma(dma).map(|_| ())
    }

    unsafe fn map_virt(
        &self,
        dev: &Device,
        cpu: std::ptr::NonNull<u8>,
        size: usize,
        dir: Direction,
        _attrs: Attrs,
    ) -> Result<DmaAddr> {
        // The IOMMU takes the process address as it is. Memory of a non-coherent device
        // needs cache maintenance by physical address, which foreign memory has none of.
        if !dev.is_coherent() {
            dev.warn(format_args!(
                "VFIO: a non-coherent device maps only platform memory (kmalloc or a DMA allocation)"
            ));
            return Err(Errno::EINVAL);
        }
        let addr = cpu.as_ptr() as usize;
        let off = addr % IOVA_GRANULE as usize;
        let len = (size + off).div_ceil(IOVA_GRANULE as usize) * IOVA_GRANULE as usize;
        let iova = self.map_pieces(&[(addr - off, len)], dir, dev.map_limit())?;
        Ok(DmaAddr(iova.0 + off as u64))
    }

    unsafe fn sync_for_cpu(&self, dev: &Device, dma: DmaAddr, size: usize, dir: Direction) {
        if !dev.is_coherent() {
            let sys = dev.system();
            self.for_each_phys(sys, dma, size, |p, l| sys.arch_sync_for_cpu(p, l, dir));
        }
    }

    unsafe fn sync_for_device(&self, dev: &Device, dma: DmaAddr, size: usize, dir: Direction) {
        if !dev.is_coherent() {
            let sys = dev.system();
            self.for_each_phys(sys, dma, size, |p, l| sys.arch_sync_for_device(p, l, dir));
        }
    }

    fn translate(
        &self,
        dev: &Device,
        dma: DmaAddr,
        len: usize,
        write: bool,
    ) -> core::result::Result<PhysAddr, FaultKind> {
        let dir = self.direction(dma).ok_or(FaultKind::NotMapped)?;
        let allowed = if write { dir != Direction::ToDevice } else { dir != Direction::FromDevice };
        if !allowed {
            return Err(FaultKind::Permission);
        }
        let sys = dev.system();
        let first =
            self.iova_to_virt(dma).and_then(|v| sys.virt_to_phys(v as *const u8)).ok_or(FaultKind::NotMapped)?;
        // One physical range per access, as the simulated bus master copies.
        let mut contiguous = true;
        let mut expect = first.0;
        self.for_each_phys(sys, dma, len, |p, l| {
            contiguous &= p.0 == expect;
            expect = p.0 + l as u64;
        });
        if !contiguous || expect != first.0 + len as u64 {
            return Err(FaultKind::NotMapped);
        }
        Ok(first)
    }

    fn alloc_noncontiguous(
        &self,
        dev: &Device,
        size: usize,
        dir: Direction,
        gfp: Gfp,
        _attrs: Attrs,
    ) -> Result<SgTable> {
        let size = page_align(size).filter(|&s| s != 0 && s <= u32::MAX as usize).ok_or(Errno::EINVAL)?;
        let sys = dev.system();
        let page_len = IOVA_GRANULE as usize;
        let mut pieces = Vec::with_capacity(size / page_len);
        for _ in 0..size / page_len {
            match sys.alloc_pages(page_gfp(gfp), 0) {
                Ok(page) => pieces.push((sys.page_address(page) as usize, page_len)),
                Err(_) => {
                    Self::free_pieces(sys, &pieces, 0);
                    return Err(Errno::ENOMEM);
                }
            }
        }
        if !dev.is_coherent() {
            // The zeroes must reach memory before the device looks.
            for &(addr, len) in &pieces {
                if let Some(p) = sys.virt_to_phys(addr as *const u8) {
                    sys.arch_prep_coherent(p, len);
                }
            }
        }
        let iova = match self.map_pieces(&pieces, dir, dev.alloc_limit()) {
            Ok(iova) => iova,
            Err(e) => {
                Self::free_pieces(sys, &pieces, 0);
                return Err(e);
            }
        };
        let mut sgt = SgTable::new();
        for &(addr, len) in &pieces {
            sgt.push(addr as *mut u8, len as u32);
        }
        sgt.sgl[0].dma_address = iova.0;
        sgt.sgl[0].dma_length = size as u32;
        sgt.nents = 1;
        Ok(sgt)
    }

    unsafe fn free_noncontiguous(&self, dev: &Device, _size: usize, sgt: SgTable, _dir: Direction) {
        let Some(iova) = sgt.sgl.first().map(|s| DmaAddr(s.dma_address)) else { return };
        match self.unmap_dma(iova) {
            Ok(pieces) => Self::free_pieces(dev.system(), &pieces, 0),
            Err(e) => dev.warn(format_args!("dma_free_noncontiguous: {iova} is not live: {e}")),
        }
    }

    fn vmap_noncontiguous(&self, dev: &Device, size: usize, sgt: &SgTable) -> Result<NonNull<u8>> {
        let iova = sgt.sgl.first().map(|s| DmaAddr(s.dma_address)).ok_or(Errno::EINVAL)?;
        let count = page_align(size).ok_or(Errno::EINVAL)? / IOVA_GRANULE as usize;
        let sys = dev.system();
        let pages: Vec<Page> = self
            .pieces(iova)
            .ok_or(Errno::EINVAL)?
            .iter()
            .filter_map(|&(addr, _)| sys.virt_to_page(addr as *const u8))
            .collect();
        if count == 0 || count > pages.len() {
            return Err(Errno::EINVAL);
        }
        sys.vmap(&pages[..count])
    }

    unsafe fn vunmap_noncontiguous(&self, dev: &Device, vaddr: NonNull<u8>) {
        // SAFETY: forwarded from the caller: `vaddr` is a live vmap nothing uses any more.
        let _ = unsafe { dev.system().vunmap(vaddr) };
    }
}
