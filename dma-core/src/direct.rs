//! The direct mapping: bus address = physical address through the device's range map,
//! no IOMMU (`kernel/dma/direct.c`).
//!
//! Allocation picks the zone from the coherent mask and bus limit and retries lower
//! zones when a page lands out of reach. A coherent allocation for a non-coherent device
//! is remapped uncached (the memory view); a non-coherent allocation (`NON_CONSISTENT`,
//! `dma_alloc_pages`, `dma_alloc_noncoherent`) is cached memory, always, never the remap:
//! the seed series' rule (a). Streaming mappings check `dma_capable` and bounce through
//! swiotlb what the device cannot reach or what the platform does not own.
//!
//! Cache maintenance per direction (arm64 since v5.19): before the device, clean for
//! every direction; after it, invalidate for FROM_DEVICE and BIDIRECTIONAL, cleaning
//! partly covered edge lines first.
//!
//! # Safety
//!
//! Pointers written here come from the platform (cached view or an uncached remap) for
//! pages this code just allocated, with the allocation's length.

use std::ptr::NonNull;

use crate::addr::{DmaAddr, PAGE_SHIFT, PAGE_SIZE, Pfn, PhysAddr, get_order, page_align};
use crate::attrs::Attrs;
use crate::device::Device;
use crate::direction::Direction;
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;
use crate::mask::{DmaMask, dma_bit_mask};
use crate::mem::buddy::MAX_ORDER;
use crate::mem::page_alloc::{Page, Zone};
use crate::scatterlist::Scatterlist;

/// `dma_direct_supported`: masks of 32 bits or more always work (the platform has
/// ZONE_DMA32 or bounces); a smaller mask must cover ZONE_DMA (or all RAM if lower),
/// and, beyond the kernel, must reach at least some RAM at all.
pub(crate) fn supported(dev: &Device, mask: DmaMask) -> bool {
    let sys = dev.system();
    let Some(lowest) = lowest_ram_dma(dev) else { return false };
    if lowest > mask.value() {
        return false;
    }
    if mask.value() >= dma_bit_mask(32) {
        return true;
    }
    let max_ram = sys.ram().ranges().map(|(b, s)| b + s - 1).max().unwrap_or(0);
    let min_mask = dma_bit_mask(sys.options().zone_dma_bits).min(max_ram);
    mask.value() >= dev.phys_to_dma(PhysAddr(min_mask)).0
}

/// The lowest bus address at which the device sees any RAM.
fn lowest_ram_dma(dev: &Device) -> Option<u64> {
    let ram = dev.system().ram().ranges();
    if dev.range_map().is_empty() {
        return ram.map(|(b, _)| b).min();
    }
    ram.flat_map(|(b, s)| {
        dev.range_map().iter().filter_map(move |w| {
            let start = b.max(w.cpu_start.0);
            (start < (b + s).min(w.cpu_start.0 + w.size)).then(|| w.dma_start.0 + (start - w.cpu_start.0))
        })
    })
    .min()
}

/// `dma_direct_get_required_mask`: all ones up to the top bit of the last RAM address.
pub(crate) fn required_mask(dev: &Device) -> u64 {
    let last = dev.system().ram().ranges().map(|(b, s)| b + s - PAGE_SIZE as u64).max().unwrap_or(0);
    let max_dma = dev.phys_to_dma(PhysAddr(last)).0.saturating_add(PAGE_SIZE as u64 - 1);
    dma_bit_mask(64 - max_dma.leading_zeros())
}

/// The highest physical address whose bus address is within `limit`.
pub(crate) fn phys_limit(dev: &Device, limit: u64) -> u64 {
    if dev.range_map().is_empty() {
        return limit;
    }
    dev.range_map()
        .iter()
        .filter(|r| r.dma_start.0 <= limit)
        .map(|r| r.cpu_start.0 + (limit - r.dma_start.0).min(r.size - 1))
        .max()
        .unwrap_or(0)
}

/// `dma_alloc_contiguous`: the device's own area (any size), then the default area
/// (more than one page), skipping an area the device cannot reach; only for callers
/// that may block.
pub(crate) fn alloc_contiguous(dev: &Device, size: usize, gfp: Gfp) -> Option<Pfn> {
    if !gfp.allows_blocking() {
        return None;
    }
    let count = (size >> PAGE_SHIFT) as u64;
    let own = dev.cma().into_iter();
    let shared = dev.system().cma().filter(|_| count > 1);
    own.chain(shared).filter(|cma| reachable(dev, cma.range())).find_map(|cma| cma.alloc(count))
}

fn reachable(dev: &Device, (start, end): (PhysAddr, PhysAddr)) -> bool {
    let first = dev.phys_to_dma(start);
    let last = dev.phys_to_dma(PhysAddr(end.0 - 1));
    Device::capable(first, 1, dev.alloc_limit())
        && Device::capable(last, 1, dev.alloc_limit())
        && last.0 - first.0 == end.0 - 1 - start.0
}

/// `__dma_direct_alloc_pages`: pages the device can reach with its coherent mask: from
/// CMA when it applies, else from the zone the mask needs, retrying lower zones when a
/// page lands out of reach.
fn alloc_reachable(dev: &Device, size: usize, gfp: Gfp) -> Result<Page> {
    if let Some(pfn) = alloc_contiguous(dev, size, gfp) {
        return Ok(Page(pfn));
    }
    let order = get_order(size);
    if order > MAX_ORDER {
        return Err(Errno::ENOMEM);
    }
    let sys = dev.system();
    let limit = dev.alloc_limit();
    let phys_limit = phys_limit(dev, limit);
    let limit_pfn = phys_limit.saturating_add(1) >> PAGE_SHIFT;
    let mut zone = sys.pages().zone_for_limit(phys_limit);
    loop {
        // The range map may have holes below the limit: check, and retry lower zones.
        let pfn = sys.pages().alloc(order, zone, limit_pfn).ok_or(Errno::ENOMEM)?;
        if Device::capable(dev.phys_to_dma(pfn.phys()), size, limit) {
            return Ok(Page(pfn));
        }
        let _ = sys.pages().free(pfn, order);
        zone = match zone {
            Zone::Normal => Zone::Dma32,
            Zone::Dma32 => Zone::Dma,
            Zone::Dma => return Err(Errno::ENOMEM),
        };
    }
}

/// `dma_free_contiguous`: back to the area the pages came from, found by address, else
/// to the buddy allocator.
pub(crate) fn release(dev: &Device, page: Page, size: usize, dma: DmaAddr, what: &str) {
    let count = (size >> PAGE_SHIFT) as u64;
    let areas = dev.cma().into_iter().chain(dev.system().cma());
    let r = match areas.filter_map(|cma| cma.release(page.pfn(), count)).next() {
        Some(r) => r.map_err(|e| e.to_string()),
        None => dev.system().pages().free(page.pfn(), get_order(size)).map_err(|e| e.to_string()),
    };
    if let Err(e) = r {
        dev.warn(format_args!("{what}: tries to free DMA memory it has not allocated at {dma}: {e}"));
    }
}

/// `dma_direct_alloc`.
pub(crate) fn alloc(dev: &Device, size: usize, gfp: Gfp, attrs: Attrs) -> Result<(NonNull<u8>, DmaAddr)> {
    let size = page_align(size).filter(|&s| s != 0).ok_or(Errno::EINVAL)?;
    let page = alloc_reachable(dev, size, gfp)?;
    let (phys, ram) = (page.phys(), dev.system().ram());
    let dma = dev.phys_to_dma(phys);
    let cached = ram.cached_ptr(phys, size).ok_or(Errno::EFAULT)?;
    let cpu = if attrs.contains(Attrs::NO_KERNEL_MAPPING) {
        // An opaque cookie for free/mmap. The memory is still prepared for the device.
        if !dev.is_coherent() {
            ram.clean_invalidate(phys, size);
        }
        return NonNull::new(cached).map(|c| (c, dma)).ok_or(Errno::EFAULT);
    } else if dev.is_coherent() || attrs.contains(Attrs::NON_CONSISTENT) {
        cached
    } else {
        // `arch_dma_prep_coherent`: no dirty cached line may later overwrite the memory
        // the uncached alias writes.
        ram.clean_invalidate(phys, size);
        match dev.system().remap_uncached(phys, size) {
            Ok(p) => p.as_ptr(),
            Err(e) => {
                release(dev, page, size, dma, "dma_alloc_attrs");
                return Err(e);
            }
        }
    };
    // SAFETY: `cpu` maps the `size` bytes of the pages just allocated.
    unsafe { cpu.write_bytes(0, size) };
    NonNull::new(cpu).map(|c| (c, dma)).ok_or(Errno::EFAULT)
}

/// `dma_direct_free`. Refuses (with a message) a CPU address that does not belong to
/// the allocation at `dma`, freeing nothing.
pub(crate) fn free(dev: &Device, size: usize, cpu: NonNull<u8>, dma: DmaAddr, attrs: Attrs) {
    let Some(size) = page_align(size).filter(|&s| s != 0) else {
        return dev.warn(format_args!("dma_free_attrs: bad size {size}"));
    };
    let ram = dev.system().ram();
    let Some(phys) = dev.dma_to_phys(dma) else {
        return dev.warn(format_args!("dma_free_attrs: {dma} is not a bus address of this device"));
    };
    let remapped = !dev.is_coherent() && !attrs.intersects(Attrs::NO_KERNEL_MAPPING | Attrs::NON_CONSISTENT);
    let ok = if remapped {
        match ram.find_remap(cpu.as_ptr() as usize) {
            Some((start, p, len)) if start == cpu.as_ptr() as usize && p == phys && len == size => {
                ram.unmap_uncached(start);
                true
            }
            _ => false,
        }
    } else {
        ram.cached_ptr(phys, size) == Some(cpu.as_ptr())
    };
    if !ok {
        return dev.warn(format_args!(
            "dma_free_attrs: cpu address {:p} does not match the allocation at {dma} of {size} bytes; nothing freed",
            cpu.as_ptr()
        ));
    }
    release(dev, Page(phys.pfn()), size, dma, "dma_free_attrs");
}

/// `dma_direct_alloc_pages`: cached, zeroed, reachable pages; never a remap.
pub(crate) fn alloc_pages(dev: &Device, size: usize, gfp: Gfp) -> Result<(Page, DmaAddr)> {
    let size = page_align(size).filter(|&s| s != 0).ok_or(Errno::EINVAL)?;
    let page = alloc_reachable(dev, size, gfp)?;
    let cpu = dev.system().ram().cached_ptr(page.phys(), size).ok_or(Errno::EFAULT)?;
    // SAFETY: `cpu` maps the `size` bytes of the pages just allocated.
    unsafe { cpu.write_bytes(0, size) };
    Ok((page, dev.phys_to_dma(page.phys())))
}

/// `dma_direct_free_pages`.
pub(crate) fn free_pages(dev: &Device, size: usize, page: Page, dma: DmaAddr) {
    let Some(size) = page_align(size).filter(|&s| s != 0) else {
        return dev.warn(format_args!("dma_free_pages: bad size {size}"));
    };
    if dev.phys_to_dma(page.phys()) != dma {
        return dev.warn(format_args!("dma_free_pages: page {:?} is not at {dma}; nothing freed", page.pfn()));
    }
    release(dev, page, size, dma, "dma_free_pages");
}

/// `arch_sync_dma_for_device`: clean, whatever the direction.
#[inline]
fn arch_sync_for_device(dev: &Device, phys: PhysAddr, size: usize, dir: Direction) {
    dev.system().arch_sync_for_device(phys, size, dir);
}

/// `arch_sync_dma_for_cpu`: invalidate what the device may have written.
#[inline]
fn arch_sync_for_cpu(dev: &Device, phys: PhysAddr, size: usize, dir: Direction) {
    dev.system().arch_sync_for_cpu(phys, size, dir);
}

/// `dma_direct_map_phys` for platform RAM (or MMIO with `Attrs::MMIO`).
pub(crate) fn map_phys(dev: &Device, phys: PhysAddr, size: usize, dir: Direction, attrs: Attrs) -> Result<DmaAddr> {
    let dma = dev.phys_to_dma(phys);
    let force = dev.system().swiotlb().is_some_and(|t| t.force_bounce());
    if attrs.contains(Attrs::MMIO) {
        if force {
            // Everything must bounce (`swiotlb=force`), and MMIO cannot.
            dev.warn(format_args!("DMA to MMIO {phys}+{size} refused: swiotlb=force bounces everything"));
            return Err(Errno::EIO);
        }
        if !Device::capable(dma, size, dev.map_limit()) {
            dev.warn(format_args!(
                "DMA addr {dma}+{size} overflow (mask {:#x}, bus limit {:#x})",
                dev.map_limit(),
                dev.bus_dma_limit()
            ));
            return Err(Errno::EIO);
        }
        return Ok(dma);
    }
    if force || !Device::capable(dma, size, dev.map_limit()) {
        let cpu = dev.system().ram().cached_ptr(phys, size).ok_or(Errno::EFAULT)?;
        // SAFETY: platform RAM is mapped for the system's lifetime; the caller keeps the
        // range allocated until unmap (map_phys's contract).
        return unsafe { bounce(dev, cpu as usize, phys.0, size, dir, attrs) };
    }
    if !dev.is_coherent() && !attrs.contains(Attrs::SKIP_CPU_SYNC) {
        if attrs.contains(Attrs::REQUIRE_COHERENT) {
            return Err(Errno::EIO);
        }
        arch_sync_for_device(dev, phys, size, dir);
    }
    Ok(dma)
}

/// Maps memory the platform does not own: it has no bus address, so it bounces.
///
/// # Safety
///
/// `[cpu, cpu + size)` must stay valid for reads and writes until unmap.
pub(crate) unsafe fn map_foreign(
    dev: &Device,
    cpu: usize,
    size: usize,
    dir: Direction,
    attrs: Attrs,
) -> Result<DmaAddr> {
    if attrs.contains(Attrs::MMIO) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: forwarded from the caller.
    unsafe { bounce(dev, cpu, cpu as u64, size, dir, attrs) }
}

/// `swiotlb_map`: copy into a bounce buffer the device can reach.
///
/// # Safety
///
/// As [`map_foreign`].
unsafe fn bounce(dev: &Device, cpu: usize, key: u64, size: usize, dir: Direction, attrs: Attrs) -> Result<DmaAddr> {
    let warn = |a: std::fmt::Arguments<'_>| dev.warn(a);
    let Some(tlb) = dev.system().swiotlb() else {
        dev.warn(format_args!(
            "DMA addr of {size} bytes at {cpu:#x} is out of reach (mask {:#x}) and there is no swiotlb to bounce it",
            dev.map_limit()
        ));
        return Err(Errno::EIO);
    };
    if attrs.contains(Attrs::REQUIRE_COHERENT) {
        return Err(Errno::EIO);
    }
    // SAFETY: forwarded from the caller.
    let phys = unsafe { tlb.map(cpu, key, size, dev.min_align_mask(), dev.segment_boundary_mask(), attrs, &warn)? };
    let dma = dev.phys_to_dma(phys);
    if !Device::capable(dma, size, dev.map_limit()) {
        let _ = tlb.unmap(phys, size, dir, Attrs::SKIP_CPU_SYNC);
        dev.warn(format_args!(
            "swiotlb pool at {} is out of reach of this device (mask {:#x})",
            tlb.start(),
            dev.map_limit()
        ));
        return Err(Errno::EIO);
    }
    dev.clear_skip_sync();
    if !dev.is_coherent() && !attrs.contains(Attrs::SKIP_CPU_SYNC) {
        arch_sync_for_device(dev, phys, size, dir);
    }
    Ok(dma)
}

/// `dma_direct_unmap_phys`.
pub(crate) fn unmap_phys(dev: &Device, dma: DmaAddr, size: usize, dir: Direction, attrs: Attrs) {
    let Some(phys) = dev.dma_to_phys(dma) else {
        return dev.warn(format_args!("unmap of {dma}, which is not a bus address of this device"));
    };
    if attrs.contains(Attrs::MMIO) {
        return;
    }
    if !dev.is_coherent() && !attrs.contains(Attrs::SKIP_CPU_SYNC) {
        arch_sync_for_cpu(dev, phys, size, dir);
    }
    if let Some(tlb) = dev.system().swiotlb().filter(|t| t.contains(phys)) {
        if tlb.unmap(phys, size, dir, attrs).is_err() {
            dev.warn(format_args!("unmap of {dma}, which is not the start of a bounce mapping"));
        }
    }
}

/// `dma_direct_sync_single_for_cpu`.
pub(crate) fn sync_for_cpu(dev: &Device, dma: DmaAddr, size: usize, dir: Direction) {
    let Some(phys) = dev.dma_to_phys(dma) else { return };
    if !dev.is_coherent() {
        arch_sync_for_cpu(dev, phys, size, dir);
    }
    if let Some(tlb) = dev.system().swiotlb().filter(|t| t.contains(phys)) {
        tlb.sync_for_cpu(phys, size, dir, &|a| dev.warn(a));
    }
}

/// `dma_direct_sync_single_for_device`.
pub(crate) fn sync_for_device(dev: &Device, dma: DmaAddr, size: usize, dir: Direction) {
    let Some(phys) = dev.dma_to_phys(dma) else { return };
    if let Some(tlb) = dev.system().swiotlb().filter(|t| t.contains(phys)) {
        tlb.sync_for_device(phys, size, &|a| dev.warn(a));
    }
    if !dev.is_coherent() {
        arch_sync_for_device(dev, phys, size, dir);
    }
}

/// `dma_direct_map_sg`: one mapping per entry, no merging. On failure the entries
/// mapped so far are unmapped again and the error returned.
///
/// # Safety
///
/// Every entry's CPU range must stay valid for reads and writes until unmap.
pub(crate) unsafe fn map_sg(dev: &Device, sgl: &mut [Scatterlist], dir: Direction, attrs: Attrs) -> Result<usize> {
    for i in 0..sgl.len() {
        let sg = sgl[i];
        // SAFETY: forwarded from the caller.
        match unsafe { map_cpu(dev, sg.cpu_addr, sg.length as usize, dir, attrs) } {
            Ok(dma) => {
                sgl[i].dma_address = dma.0;
                sgl[i].dma_length = sg.length;
            }
            Err(e) => {
                for done in &sgl[..i] {
                    unmap_phys(dev, DmaAddr(done.dma_address), done.length as usize, dir, attrs | Attrs::SKIP_CPU_SYNC);
                }
                return Err(e);
            }
        }
    }
    Ok(sgl.len())
}

/// Maps a CPU range: platform RAM directly, anything else through swiotlb. Uncached
/// remaps are refused, as the kernel refuses vmalloc addresses in `dma_map_single`.
///
/// # Safety
///
/// As [`map_foreign`].
pub(crate) unsafe fn map_cpu(dev: &Device, cpu: *mut u8, size: usize, dir: Direction, attrs: Attrs) -> Result<DmaAddr> {
    let ram = dev.system().ram();
    match ram.virt_to_phys(cpu as usize, size) {
        Some(phys) => map_phys(dev, phys, size, dir, attrs),
        None if ram.find_remap(cpu as usize).is_some() || ram.vmap_to_phys(cpu as usize).is_some() => {
            dev.warn(format_args!("dma_map_single of {cpu:p}: maps memory from a remap or vmap area"));
            Err(Errno::EINVAL)
        }
        None if ram.virt_to_phys(cpu as usize, 1).is_some() => {
            dev.warn(format_args!("dma_map_single of {cpu:p}+{size}: runs past the end of a RAM range"));
            Err(Errno::EINVAL)
        }
        // SAFETY: forwarded from the caller.
        None => unsafe { map_foreign(dev, cpu as usize, size, dir, attrs) },
    }
}

/// `dma_direct_max_mapping_size`.
pub(crate) fn max_mapping_size(dev: &Device) -> usize {
    match dev.system().swiotlb() {
        Some(t) if t.force_bounce() || dev.map_limit() < required_mask(dev) => {
            crate::swiotlb::Swiotlb::max_mapping_size(dev.min_align_mask())
        }
        _ => usize::MAX,
    }
}

/// `dma_direct_need_sync`.
pub(crate) fn need_sync(dev: &Device, dma: DmaAddr) -> bool {
    !dev.is_coherent() || dev.dma_to_phys(dma).is_some_and(|p| dev.system().swiotlb().is_some_and(|t| t.contains(p)))
}
