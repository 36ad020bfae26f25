//! The IOMMU DMA ops (`drivers/iommu/dma-iommu.c`): what a device attached to a
//! [`Domain`] gets for every DMA API call.
//!
//! - `alloc`: for a caller that may block, a page array allocated from the largest
//!   page size down (2 MiB, then 4 KiB; only 4 KiB with `ALLOC_SINGLE_PAGES`), mapped at one
//!   IOVA range and vmapped at one CPU range (`iommu_dma_alloc_remap`): cached for a coherent
//!   device, uncached (the memory view, after `arch_dma_prep_coherent`) for a non-coherent
//!   one. `FORCE_CONTIGUOUS` takes one block from CMA when the device or the system has an
//!   area (else from the page allocator); `NON_CONSISTENT` (cached pages whose
//!   `page_address` is the CPU address) and atomic callers get one contiguous block too.
//! - `map_phys` / `unmap_phys`: one IOVA range per mapping under the device's mask, with the
//!   permissions its direction allows (`dma_info_to_prot`), cache maintenance first for a
//!   non-coherent device.
//! - `map_sg`: one IOVA range for the whole list, entries merged as in [`crate::sg`].
//! - `alloc_noncontiguous`: the page array as one DMA segment; `vmap_noncontiguous` maps its
//!   pages at one cached CPU range.
//! - `translate`: the bus master's view: unmapped IOVAs fault `NotMapped`, writes to a
//!   read-only mapping fault `Permission`. As on Arm's LPAE format, a write-only mapping
//!   (`DMA_FROM_DEVICE`) can also be read.
//!
//! Memory of any zone serves any device: the IOMMU, not the page allocator, keeps addresses
//! under the device's mask, so nothing bounces.
//!
//! # Safety
//!
//! Unsafe code here only ends CPU mappings (`System::vunmap`, `System::unmap_uncached`) this
//! file made for an allocation the caller is freeing.

#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::Ordering::Relaxed;

use dma_core::{
    Attrs, Device, DmaAddr, DmaMask, DmaOps, Errno, FaultKind, Gfp, IovaState, Page, PhysAddr, Result, Scatterlist,
    SgTable, System, get_order, page_align,
};

use crate::domain::{Alloc, CpuView, Domain};
use crate::iotlb;
use crate::iova::{IOVA_GRANULE, IOVA_RANGE_CACHE_MAX_SIZE, IOVA_SHIFT};
use crate::pgtable::{PGSIZE_BITMAP, Prot};
use crate::sg;
use dma_core::Direction;

/// `dma_opt_mapping_size` behind an IOMMU: the largest size the IOVA caches serve
/// (`iova_rcache_range`), 128 KiB.
pub const OPT_MAPPING_SIZE: usize = (IOVA_GRANULE as usize) << (IOVA_RANGE_CACHE_MAX_SIZE - 1);

/// `dma_info_to_prot`.
pub(crate) fn prot(dir: Direction) -> Prot {
    match dir {
        Direction::ToDevice => Prot::READ,
        Direction::FromDevice => Prot::WRITE,
        _ => Prot::READ_WRITE,
    }
}

pub(crate) const fn granule_align(n: u64) -> u64 {
    (n + IOVA_GRANULE - 1) & !(IOVA_GRANULE - 1)
}

/// The physical range behind a CPU range of platform RAM, if it is one contiguous piece.
fn cpu_to_phys(sys: &System, cpu: *const u8, len: usize) -> Option<PhysAddr> {
    let first = sys.virt_to_phys(cpu)?;
    let last = sys.virt_to_phys(cpu.wrapping_add(len.max(1) - 1))?;
    (last.0.wrapping_sub(first.0) == len.max(1) as u64 - 1).then_some(first)
}

/// The page orders an allocation may use, largest first (`iommu_dma_alloc_remap`'s
/// `alloc_sizes`): every page size of the table, or the smallest with `ALLOC_SINGLE_PAGES`.
fn orders(attrs: Attrs) -> Vec<u32> {
    let mut sizes: Vec<u32> = (0..64).rev().filter(|b| PGSIZE_BITMAP & (1 << b) != 0).map(|b| b - IOVA_SHIFT).collect();
    if attrs.contains(Attrs::ALLOC_SINGLE_PAGES) {
        sizes.drain(..sizes.len() - 1);
    }
    sizes
}

/// `__iommu_dma_alloc_pages`: `count` pages in chunks of the largest allowed order that fits
/// what is left, falling back to smaller orders; zeroed.
fn alloc_page_array(sys: &System, count: u64, gfp: Gfp, attrs: Attrs) -> Result<Vec<(Page, u32)>> {
    let gfp = gfp.difference(Gfp::ZONE_MASK | Gfp::__GFP_COMP) | Gfp::__GFP_ZERO | Gfp::__GFP_NOWARN;
    let orders = orders(attrs);
    let mut chunks = Vec::new();
    let mut left = count;
    while left > 0 {
        let got =
            orders.iter().filter(|&&o| 1u64 << o <= left).find_map(|&o| sys.alloc_pages(gfp, o).ok().map(|p| (p, o)));
        match got {
            Some((page, order)) => {
                left -= 1 << order;
                chunks.push((page, order));
            }
            None => {
                free_chunks(sys, &chunks);
                return Err(Errno::ENOMEM);
            }
        }
    }
    Ok(chunks)
}

/// Frees chunks to the page allocator, or one chunk of `size` bytes back to CMA.
fn release_chunks(sys: &System, chunks: &[(Page, u32)], cma: Option<&Device>, size: u64) {
    match (cma, chunks) {
        (Some(dev), [(page, _)]) => dev.release_contiguous(*page, size as usize),
        _ => free_chunks(sys, chunks),
    }
}

fn free_chunks(sys: &System, chunks: &[(Page, u32)]) {
    for &(page, order) in chunks {
        let _ = sys.free_pages(page, order);
    }
}

/// Every 4 KiB page of the chunks, in order.
fn pages_of(chunks: &[(Page, u32)]) -> Vec<Page> {
    chunks.iter().flat_map(|&(p, o)| (0..1u64 << o).map(move |i| Page(dma_core::Pfn(p.pfn().0 + i)))).collect()
}

impl Domain {
    /// Maps the chunks back to back at `iova`; unmaps what it mapped on failure.
    fn map_chunks(&self, iova: u64, chunks: &[(Page, u32)], prot: Prot) -> Result<()> {
        let mut off = 0;
        for &(page, order) in chunks {
            let len = IOVA_GRANULE << order;
            if let Err(e) = self.map(iova + off, page.phys(), len, prot) {
                self.pgtable().unmap(iova, off);
                return Err(e);
            }
            off += len;
        }
        Ok(())
    }

    /// A page array mapped at one fresh IOVA range under `limit`.
    fn alloc_mapped_array(
        &self,
        size: u64,
        limit: u64,
        gfp: Gfp,
        attrs: Attrs,
        prot: Prot,
    ) -> Result<(u64, Vec<(Page, u32)>)> {
        let chunks = alloc_page_array(&self.sys, size >> IOVA_SHIFT, gfp, attrs)?;
        let iova = match self.alloc_iova(size, limit) {
            Ok(iova) => iova,
            Err(e) => {
                free_chunks(&self.sys, &chunks);
                return Err(e);
            }
        };
        if let Err(e) = self.map_chunks(iova, &chunks, prot) {
            self.free_iova(iova, size);
            free_chunks(&self.sys, &chunks);
            return Err(if e == Errno::ENOMEM { e } else { Errno::ENOMEM });
        }
        Ok((iova, chunks))
    }

    /// `iommu_dma_alloc_pages` + `__iommu_dma_map`: one contiguous block, CPU view as asked.
    fn alloc_contiguous(&self, dev: &Device, size: u64, gfp: Gfp, attrs: Attrs) -> Result<(NonNull<u8>, DmaAddr)> {
        let order = get_order(size as usize);
        let cma_page =
            attrs.contains(Attrs::FORCE_CONTIGUOUS).then(|| dev.alloc_contiguous(size as usize, gfp)).flatten();
        let page = match cma_page {
            Some(p) => p,
            None => {
                let gfp = gfp.difference(Gfp::ZONE_MASK | Gfp::__GFP_COMP) | Gfp::__GFP_ZERO;
                self.sys.alloc_pages(gfp, order).map_err(|_| Errno::ENOMEM)?
            }
        };
        let cma = cma_page.is_some();
        let phys = page.phys();
        let chunks = vec![(page, order)];
        if cma {
            if let Some(p) = self.sys.phys_to_virt(phys, size as usize) {
                // SAFETY: the block was just taken from the area and is `size` bytes long.
                unsafe { p.as_ptr().write_bytes(0, size as usize) };
            }
        }
        let (cpu, view) = if dev.is_coherent() || attrs.contains(Attrs::NON_CONSISTENT) {
            (self.sys.phys_to_virt(phys, size as usize), CpuView::Linear)
        } else {
            self.sys.arch_prep_coherent(phys, size as usize);
            (self.sys.remap_uncached(phys, size as usize).ok(), CpuView::Uncached)
        };
        let Some(cpu) = cpu else {
            release_chunks(&self.sys, &chunks, cma.then_some(dev), size);
            return Err(Errno::ENOMEM);
        };
        let iova = self.alloc_iova(size, dev.alloc_limit()).and_then(|iova| {
            self.map(iova, phys, size, Prot::READ_WRITE).map(|()| iova).inspect_err(|_| self.free_iova(iova, size))
        });
        match iova {
            Ok(iova) => {
                let cpu_addr = cpu.as_ptr() as usize;
                self.allocs().insert(iova, Alloc { chunks, size, cpu: cpu_addr, view, cma });
                Ok((cpu, DmaAddr(iova)))
            }
            Err(e) => {
                if view == CpuView::Uncached {
                    // SAFETY: the remap was made just above and not handed out.
                    let _ = unsafe { self.sys.unmap_uncached(cpu) };
                }
                release_chunks(&self.sys, &chunks, cma.then_some(dev), size);
                Err(e)
            }
        }
    }

    /// `iommu_dma_alloc_remap`: a page array, one IOVA range, one vmap: cached for a
    /// coherent device, uncached (after `arch_dma_prep_coherent`) for a non-coherent one.
    fn alloc_remap(&self, dev: &Device, size: u64, gfp: Gfp, attrs: Attrs) -> Result<(NonNull<u8>, DmaAddr)> {
        let (iova, chunks) = self.alloc_mapped_array(size, dev.alloc_limit(), gfp, attrs, Prot::READ_WRITE)?;
        let pages = pages_of(&chunks);
        let cpu = if dev.is_coherent() {
            self.sys.vmap(&pages)
        } else {
            for &(page, order) in &chunks {
                self.sys.arch_prep_coherent(page.phys(), (IOVA_GRANULE << order) as usize);
            }
            self.sys.vmap_uncached(&pages)
        };
        match cpu {
            Ok(cpu) => {
                if !dev.is_coherent() {
                    // SAFETY: the uncached vmap covers `size` bytes of the pages just allocated.
                    unsafe { cpu.as_ptr().write_bytes(0, size as usize) };
                }
                self.allocs()
                    .insert(iova, Alloc { chunks, size, cpu: cpu.as_ptr() as usize, view: CpuView::Vmap, cma: false });
                Ok((cpu, DmaAddr(iova)))
            }
            Err(e) => {
                self.unmap_and_free(iova, size);
                free_chunks(&self.sys, &chunks);
                Err(e)
            }
        }
    }

    /// Ends an allocation: IOVA, CPU view, pages.
    fn release_alloc(&self, dev: &Device, iova: u64, a: Alloc) {
        self.unmap_and_free(iova, a.size);
        if let Some(cpu) = NonNull::new(a.cpu as *mut u8) {
            match a.view {
                // SAFETY: the caller of `free` guarantees nothing uses the mapping any more.
                CpuView::Vmap => drop(unsafe { self.sys.vunmap(cpu) }),
                // SAFETY: as above.
                CpuView::Uncached => drop(unsafe { self.sys.unmap_uncached(cpu) }),
                CpuView::Linear | CpuView::Unmapped => {}
            }
        }
        release_chunks(&self.sys, &a.chunks, a.cma.then_some(dev), a.size);
    }

    /// Cache maintenance over the pages mapped at `[dma, dma + size)` (none when coherent).
    pub(crate) fn sync(&self, dev: &Device, dma: DmaAddr, size: usize, f: impl Fn(&System, PhysAddr, usize)) {
        if dev.is_coherent() || size == 0 {
            return;
        }
        let _ = self.pgtable().walk(dma.0, size as u64, |p, l, _| f(&self.sys, p, l as usize));
    }
}

impl DmaOps for Domain {
    fn name(&self) -> &str {
        "iommu"
    }

    fn supported(&self, dev: &Device, mask: DmaMask) -> bool {
        std::sync::Arc::ptr_eq(dev.system(), &self.sys)
            && mask.value() >= ((self.iova_domain().start_pfn() + 1) << IOVA_SHIFT) - 1
    }

    fn need_sync(&self, dev: &Device, _dma: DmaAddr) -> bool {
        !dev.is_coherent()
    }

    fn merge_boundary(&self, _dev: &Device) -> u64 {
        IOVA_GRANULE - 1
    }

    fn opt_mapping_size(&self, _dev: &Device) -> usize {
        OPT_MAPPING_SIZE
    }

    fn alloc(&self, dev: &Device, size: usize, gfp: Gfp, attrs: Attrs) -> Result<(NonNull<u8>, DmaAddr)> {
        let size = page_align(size).filter(|&s| s != 0).ok_or(Errno::EINVAL)? as u64;
        let contiguous = attrs.intersects(Attrs::FORCE_CONTIGUOUS | Attrs::NON_CONSISTENT) || !gfp.allows_blocking();
        if contiguous { self.alloc_contiguous(dev, size, gfp, attrs) } else { self.alloc_remap(dev, size, gfp, attrs) }
    }

    unsafe fn free(&self, dev: &Device, size: usize, cpu: NonNull<u8>, dma: DmaAddr, _attrs: Attrs) {
        let size = page_align(size).unwrap_or(0) as u64;
        let mut allocs = self.allocs();
        let ok = allocs.get(&dma.0).is_some_and(|a| a.cpu == cpu.as_ptr() as usize && a.size == size);
        let Some(a) = allocs.remove(&dma.0).filter(|_| ok) else {
            drop(allocs);
            return dev.warn(format_args!(
                "dma_free_attrs: {cpu:p} / {dma} / {size} bytes is not a live IOMMU allocation; nothing freed"
            ));
        };
        drop(allocs);
        self.release_alloc(dev, dma.0, a);
    }

    unsafe fn map_phys(
        &self,
        dev: &Device,
        phys: PhysAddr,
        size: usize,
        dir: Direction,
        attrs: Attrs,
    ) -> Result<DmaAddr> {
        let off = phys.0 & (IOVA_GRANULE - 1);
        let len = granule_align(size as u64 + off);
        if !dev.is_coherent() && !attrs.intersects(Attrs::SKIP_CPU_SYNC | Attrs::MMIO) {
            self.sys.arch_sync_for_device(phys, size, dir);
        }
        let iova = self.alloc_iova(len, dev.map_limit())?;
        if let Err(e) = self.map(iova, PhysAddr(phys.0 - off), len, prot(dir)) {
            self.free_iova(iova, len);
            return Err(if e == Errno::EEXIST { Errno::EIO } else { e });
        }
        Ok(DmaAddr(iova + off))
    }

    unsafe fn unmap_phys(&self, dev: &Device, dma: DmaAddr, size: usize, dir: Direction, attrs: Attrs) -> Result<()> {
        let off = dma.0 & (IOVA_GRANULE - 1);
        let (iova, len) = (dma.0 - off, granule_align(size as u64 + off));
        if size == 0 || !self.is_live(iova, len) {
            return Err(Errno::EINVAL);
        }
        if !attrs.intersects(Attrs::SKIP_CPU_SYNC | Attrs::MMIO) {
            self.sync(dev, dma, size, |sys, p, l| sys.arch_sync_for_cpu(p, l, dir));
        }
        self.unmap_and_free(iova, len);
        Ok(())
    }

    unsafe fn sync_for_cpu(&self, dev: &Device, dma: DmaAddr, size: usize, dir: Direction) {
        self.sync(dev, dma, size, |sys, p, l| sys.arch_sync_for_cpu(p, l, dir));
    }

    unsafe fn sync_for_device(&self, dev: &Device, dma: DmaAddr, size: usize, dir: Direction) {
        self.sync(dev, dma, size, |sys, p, l| sys.arch_sync_for_device(p, l, dir));
    }

    fn translate(
        &self,
        dev: &Device,
        dma: DmaAddr,
        len: usize,
        write: bool,
    ) -> core::result::Result<PhysAddr, FaultKind> {
        // The bus master asks page by page; an access inside one IOTLB page uses the IOTLB.
        let page = dma.0 & !(iotlb::PAGE - 1);
        let in_one_page =
            dma.0.checked_add(len.max(1) as u64 - 1).is_some_and(|last| last & !(iotlb::PAGE - 1) == page);
        if let Some(hit) = in_one_page.then(|| self.iotlb.lookup(page)).flatten() {
            if write && !hit.prot.contains(Prot::WRITE) {
                return Err(FaultKind::Permission);
            }
            if self.pgtable().translate(page).is_none() {
                // Unmapped, not yet invalidated: hardware would go on, silently.
                self.iotlb_stale_hits.fetch_add(1, Relaxed);
                dev.warn(format_args!(
                    "device {} {dma}+{len}: unmapped IOVA reached through a stale IOTLB entry (lazy invalidation \
                     pending): use after unmap",
                    if write { "write to" } else { "read of" }
                ));
            }
            return Ok(PhysAddr(hit.phys + (dma.0 - page)));
        }
        let (mut first, mut pieces, mut denied, mut prot_seen) = (None, 0, false, Prot::READ_WRITE);
        self.pgtable()
            .walk(dma.0, len as u64, |p, _, prot| {
                first.get_or_insert(p);
                pieces += 1;
                denied |= write && !prot.contains(Prot::WRITE);
                prot_seen = prot;
            })
            .map_err(|_| FaultKind::NotMapped)?;
        if denied {
            return Err(FaultKind::Permission);
        }
        // The simulated bus master copies one physical range per access: an access spanning
        // IOVA pages that are not physically adjacent has no single answer.
        if pieces != 1 {
            return Err(FaultKind::NotMapped);
        }
        let phys = first.ok_or(FaultKind::NotMapped)?;
        if in_one_page {
            self.iotlb.fill(page, iotlb::Cached { phys: phys.0 - (dma.0 - page), prot: prot_seen });
        }
        Ok(phys)
    }

    unsafe fn map_sg(&self, dev: &Device, sgl: &mut [Scatterlist], dir: Direction, attrs: Attrs) -> Result<usize> {
        let mut phys = Vec::with_capacity(sgl.len());
        for s in sgl.iter() {
            phys.push((cpu_to_phys(&self.sys, s.cpu_addr, s.length as usize).ok_or(Errno::EINVAL)?, s.length as u64));
        }
        let seg_mask = dev.segment_boundary_mask();
        let (segs, iova_len) = sg::layout(phys.iter().copied(), seg_mask);
        if !dev.is_coherent() && !attrs.contains(Attrs::SKIP_CPU_SYNC) {
            for &(p, l) in &phys {
                self.sys.arch_sync_for_device(p, l as usize, dir);
            }
        }
        let iova = self.alloc_iova(iova_len, dev.map_limit())?;
        let mut cursor = 0;
        for s in &segs {
            if let Err(e) = self.map(iova + cursor, s.phys, s.map_len, prot(dir)) {
                self.unmap_and_free(iova, iova_len);
                return Err(if e == Errno::EEXIST { Errno::EIO } else { e });
            }
            cursor += s.iova_len;
        }
        let out = sg::finalise(&segs, iova, seg_mask, dev.max_segment_size());
        for (i, s) in sgl.iter_mut().enumerate() {
            match out.get(i) {
                Some(&(dma, len)) => {
                    s.dma_address = dma;
                    s.dma_length = len as u32;
                }
                None => {
                    s.dma_address = dma_core::DMA_MAPPING_ERROR.0;
                    s.dma_length = 0;
                }
            }
        }
        Ok(out.len())
    }

    unsafe fn unmap_sg(&self, dev: &Device, sgl: &[Scatterlist], dir: Direction, attrs: Attrs) {
        if !dev.is_coherent() && !attrs.contains(Attrs::SKIP_CPU_SYNC) {
            for s in sgl {
                if let Some(p) = cpu_to_phys(&self.sys, s.cpu_addr, s.length as usize) {
                    self.sys.arch_sync_for_cpu(p, s.length as usize, dir);
                }
            }
        }
        let mapped = || sgl.iter().filter(|s| s.dma_length != 0);
        let Some(start) = mapped().map(|s| s.dma_address).next() else { return };
        let end = mapped().map(|s| s.dma_address + s.dma_length as u64).max().unwrap_or(start);
        let iova = start & !(IOVA_GRANULE - 1);
        let len = granule_align(end - iova);
        if self.is_live(iova, len) {
            self.unmap_and_free(iova, len);
        }
    }

    fn alloc_noncontiguous(
        &self,
        dev: &Device,
        size: usize,
        dir: Direction,
        gfp: Gfp,
        attrs: Attrs,
    ) -> Result<SgTable> {
        let size = page_align(size).filter(|&s| s != 0 && s <= u32::MAX as usize).ok_or(Errno::EINVAL)? as u64;
        let (iova, chunks) = self.alloc_mapped_array(size, dev.alloc_limit(), gfp, attrs, prot(dir))?;
        if !dev.is_coherent() {
            // The zeroes must reach memory before the device looks (`arch_dma_prep_coherent`).
            for &(page, order) in &chunks {
                self.sys.arch_prep_coherent(page.phys(), (IOVA_GRANULE << order) as usize);
            }
        }
        let mut sgt = SgTable::new();
        let mut run: Option<(PhysAddr, u64)> = None;
        for &(page, order) in &chunks {
            let len = IOVA_GRANULE << order;
            run = match run {
                Some((p, l)) if p.0 + l == page.phys().0 => Some((p, l + len)),
                Some((p, l)) => {
                    sgt.push(
                        self.sys.phys_to_virt(p, l as usize).map_or(std::ptr::null_mut(), NonNull::as_ptr),
                        l as u32,
                    );
                    Some((page.phys(), len))
                }
                None => Some((page.phys(), len)),
            };
        }
        if let Some((p, l)) = run {
            sgt.push(self.sys.phys_to_virt(p, l as usize).map_or(std::ptr::null_mut(), NonNull::as_ptr), l as u32);
        }
        sgt.sgl[0].dma_address = iova;
        sgt.sgl[0].dma_length = size as u32;
        sgt.nents = 1;
        self.allocs().insert(iova, Alloc { chunks, size, cpu: 0, view: CpuView::Unmapped, cma: false });
        Ok(sgt)
    }

    unsafe fn free_noncontiguous(&self, dev: &Device, size: usize, sgt: SgTable, _dir: Direction) {
        let Some(iova) = sgt.sgl.first().map(|s| s.dma_address) else { return };
        let size = page_align(size).unwrap_or(0) as u64;
        let mut allocs = self.allocs();
        let ok = allocs.get(&iova).is_some_and(|a| a.view == CpuView::Unmapped && a.size == size);
        let Some(a) = allocs.remove(&iova).filter(|_| ok) else { return };
        drop(allocs);
        self.release_alloc(dev, iova, a);
    }

    fn vmap_noncontiguous(&self, _dev: &Device, size: usize, sgt: &SgTable) -> Result<NonNull<u8>> {
        let iova = sgt.sgl.first().map(|s| s.dma_address).ok_or(Errno::EINVAL)?;
        let count = page_align(size).ok_or(Errno::EINVAL)? >> IOVA_SHIFT;
        let pages = match self.allocs().get(&iova) {
            Some(a) if a.view == CpuView::Unmapped && count != 0 && count as u64 <= a.size >> IOVA_SHIFT => {
                pages_of(&a.chunks)
            }
            _ => return Err(Errno::EINVAL),
        };
        self.sys.vmap(&pages[..count])
    }

    unsafe fn vunmap_noncontiguous(&self, _dev: &Device, vaddr: NonNull<u8>) {
        // SAFETY: forwarded from the caller: `vaddr` is a live vmap nothing uses any more.
        let _ = unsafe { self.sys.vunmap(vaddr) };
    }

    fn iova_alloc(&self, dev: &Device, phys: PhysAddr, size: usize) -> Result<DmaAddr> {
        self.try_alloc_range(dev, phys, size)
    }

    fn iova_free(&self, dev: &Device, state: &IovaState) -> Result<()> {
        self.free_range(dev, state)
    }

    unsafe fn iova_link(
        &self,
        dev: &Device,
        state: &IovaState,
        phys: PhysAddr,
        offset: usize,
        size: usize,
        dir: Direction,
        attrs: Attrs,
    ) -> Result<()> {
        self.link_range(dev, state, phys, offset, size, dir, attrs)
    }

    fn iova_sync(&self, dev: &Device, state: &IovaState, _offset: usize, _size: usize) -> Result<()> {
        self.sync_range(dev, state)
    }

    unsafe fn iova_unlink(
        &self,
        dev: &Device,
        state: &IovaState,
        offset: usize,
        size: usize,
        dir: Direction,
        attrs: Attrs,
    ) -> Result<()> {
        self.unlink_range(dev, state, offset, size, dir, attrs)
    }
}
