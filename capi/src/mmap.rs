//! `dma_mmap_attrs`, `dma_mmap_pages`, `dma_mmap_noncontiguous`: map a DMA allocation
//! into a caller-provided address range, the userspace form of mapping it into a
//! process's VMA (`dma_direct_mmap`, `remap_pfn_range`, `vm_map_pages`).
//!
//! The platform's RAM is shared memfd mappings, so the new mapping is another
//! `MAP_SHARED | MAP_FIXED` mapping of the same memfd pages over the caller's range
//! ([`dma_core::System::map_at`]): the cached view for a cached allocation, the memory
//! view (the uncached alias) for a coherent allocation of a non-coherent device, the
//! same attributes the kernel's `dma_pgprot` would choose. (Not `mremap` with old size
//! 0: QEMU's user mode refuses that.)
//!
//! # Safety
//!
//! The source range is checked to lie in the allocation (cached view) or to be the
//! uncached alias dma-core returned; the destination is the caller's, who promises in
//! the export's contract that replacing whatever is mapped there is fine.

use std::ffi::{c_int, c_ulong, c_void};
use std::ptr::NonNull;

use dma_core::{Attrs, DmaAddr, Errno, PAGE_SIZE, PhysAddr, page_align};

use crate::boundary::{attrs, neg, refuse};
use crate::dev::{device, to_dev};
use crate::kmem::page_of;
use crate::types::{dma_addr_t, page, sg_table, vm_area_struct};

/// The part of a buffer of `size` bytes a VMA maps: (first page, pages, destination).
/// `EINVAL` for an unaligned or empty range, `ENXIO` when it runs past the buffer
/// (the kernel's `vm_pgoff >= count || vma_pages > count - vm_pgoff`).
fn window(func: &str, v: &vm_area_struct, size: usize) -> Result<(usize, usize, NonNull<u8>), Errno> {
    let page = PAGE_SIZE as c_ulong;
    if v.vm_start % page != 0 || v.vm_end % page != 0 || v.vm_end <= v.vm_start {
        return Err(refuse(func, format_args!("bad range {:#x}..{:#x}", v.vm_start, v.vm_end)));
    }
    let count = page_align(size).ok_or(Errno::EINVAL)? / PAGE_SIZE;
    let user = ((v.vm_end - v.vm_start) / page) as usize;
    let off = usize::try_from(v.vm_pgoff).map_err(|_| Errno::ENXIO)?;
    if off >= count || user > count - off {
        return Err(Errno::ENXIO);
    }
    Ok((off, user, NonNull::new(v.vm_start as *mut u8).ok_or(Errno::EINVAL)?))
}

/// `dma_can_mmap`: whether `dma_mmap_attrs` can map this device's allocations into a
/// process. Always true here (every platform page is a shared memfd page); false for a
/// NULL device.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_can_mmap(dev: *mut device) -> bool {
    // SAFETY: forwarded from the caller.
    boundary!(|_| false, unsafe { to_dev("dma_can_mmap", dev) }.map(|_| true))
}

/// `dma_mmap_pages`: maps `size` bytes of pages from `dma_alloc_pages` (cached, as the
/// kernel's `remap_pfn_range` with the VMA's default protection) over
/// `[vma->vm_start, vma->vm_end)`, starting `vma->vm_pgoff` pages in. Returns 0;
/// `-EINVAL` for a NULL or foreign argument or an unaligned or empty range; `-ENXIO` when
/// the range runs past the buffer; or the mapping error.
///
/// # Safety
///
/// `dev` is NULL or a live device; `vma` is NULL or valid; the range it names belongs to
/// the caller and may be replaced; `page` is NULL or from `dma_alloc_pages` of `size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_mmap_pages(
    dev: *mut device,
    vma: *mut vm_area_struct,
    size: usize,
    page: *mut page,
) -> c_int {
    boundary!(neg, {
        const F: &str = "dma_mmap_pages";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        // SAFETY: forwarded from the caller.
        let v = *unsafe { vma.as_ref() }.ok_or_else(|| refuse(F, format_args!("NULL vma")))?;
        if page.is_null() {
            return Err(refuse(F, format_args!("NULL page")));
        }
        let sys = d.dev.system();
        let pg = page_of(F, sys, page)?;
        let (off, user, at) = window(F, &v, size)?;
        let (first, len) = (PhysAddr(pg.phys().0 + (off * PAGE_SIZE) as u64), user * PAGE_SIZE);
        if !sys.is_ram(first, len) {
            return Err(Errno::ENXIO);
        }
        // SAFETY: `[first, first + len)` is RAM of the caller's pages; the destination is
        // the caller's to replace (the export's contract).
        unsafe { sys.map_at(first, len, at, false) }?;
        Ok(0)
    })
}

/// `dma_mmap_noncontiguous`: maps `size` bytes of an allocation from
/// `dma_alloc_noncontiguous` over `[vma->vm_start, vma->vm_end)`, starting `vma->vm_pgoff`
/// pages in: its pages in table order, which need not be physically adjacent (cached, as
/// the kernel's `vm_map_pages`). Returns as `dma_mmap_pages`.
///
/// # Safety
///
/// As `dma_mmap_pages`; `sgt` is NULL or the table `dma_alloc_noncontiguous` returned for
/// `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_mmap_noncontiguous(
    dev: *mut device,
    vma: *mut vm_area_struct,
    size: usize,
    sgt: *mut sg_table,
) -> c_int {
    boundary!(neg, {
        const F: &str = "dma_mmap_noncontiguous";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        // SAFETY: forwarded from the caller.
        let v = *unsafe { vma.as_ref() }.ok_or_else(|| refuse(F, format_args!("NULL vma")))?;
        // SAFETY: forwarded from the caller.
        let t = unsafe { sgt.as_ref() }.ok_or_else(|| refuse(F, format_args!("NULL sg_table")))?;
        if t.sgl.is_null() {
            return Err(refuse(F, format_args!("empty sg_table")));
        }
        let (off, user, at) = window(F, &v, size)?;
        let sys = d.dev.system();
        // SAFETY: the table's `orig_nents` entries are live (the caller's contract).
        let sgl = unsafe { std::slice::from_raw_parts(t.sgl, t.orig_nents as usize) };
        // The buffer's pages in order, then the VMA's window of them.
        let mut pages = Vec::with_capacity(off + user);
        for sg in sgl {
            if sg.cpu_addr as usize % PAGE_SIZE != 0 {
                return Err(refuse(F, format_args!("entry at {:p} is not page aligned", sg.cpu_addr)));
            }
            for i in 0..(sg.length as usize).div_ceil(PAGE_SIZE) {
                let cpu = (sg.cpu_addr as usize + i * PAGE_SIZE) as *const u8;
                let p = sys.virt_to_phys(cpu).ok_or_else(|| refuse(F, format_args!("{cpu:p} is not a DMA page")))?;
                pages.push(p);
            }
        }
        let window = pages.get(off..off + user).ok_or(Errno::ENXIO)?;
        // One mapping per physically contiguous run.
        let mut i = 0;
        while i < window.len() {
            let mut n = 1;
            while i + n < window.len() && window[i + n].0 == window[i].0 + (n * PAGE_SIZE) as u64 {
                n += 1;
            }
            let to = NonNull::new((at.as_ptr() as usize + i * PAGE_SIZE) as *mut u8).ok_or(Errno::EINVAL)?;
            // SAFETY: the run is pages of the allocation; the destination is the caller's to
            // replace (the export's contract).
            unsafe { sys.map_at(window[i], n * PAGE_SIZE, to, false) }?;
            i += n;
        }
        Ok(0)
    })
}

/// `dma_mmap_attrs`: maps the allocation `cpu_addr` / `dma_addr` of `size` bytes from
/// `dma_alloc_attrs` (same `attrs`) over `[vma->vm_start, vma->vm_end)`, starting
/// `vma->vm_pgoff` pages into the buffer, replacing whatever the caller had mapped there
/// (reserve the range first, e.g. with `mmap(NULL, len, PROT_NONE, MAP_PRIVATE |
/// MAP_ANONYMOUS, -1, 0)`). Unmap it with `munmap`.
///
/// Returns 0; `-EINVAL` for a NULL device, vma or address, unaligned or empty range,
/// unknown attrs, or a CPU address that is not the buffer at `dma_addr`; `-ENXIO` when
/// the range runs past the buffer or `dma_addr` is not RAM of the device; `-EOPNOTSUPP`
/// for a `DMA_ATTR_NO_KERNEL_MAPPING` buffer of a non-coherent device (its uncached
/// view is not reachable from here yet); or the mapping error.
///
/// # Safety
///
/// `dev` is NULL or a live device; `vma` is NULL or valid; the range it names belongs to
/// the caller, holds no Rust or C object in use, and may be replaced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_mmap_attrs(
    dev: *mut device,
    vma: *mut vm_area_struct,
    cpu_addr: *mut c_void,
    dma_addr: dma_addr_t,
    size: usize,
    attrs: c_ulong,
) -> c_int {
    boundary!(neg, {
        const F: &str = "dma_mmap_attrs";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let a = self::attrs(F, attrs)?;
        // SAFETY: forwarded from the caller.
        let v = *unsafe { vma.as_ref() }.ok_or_else(|| refuse(F, format_args!("NULL vma")))?;
        if cpu_addr.is_null() || (cpu_addr as usize) % PAGE_SIZE != 0 {
            return Err(refuse(F, format_args!("bad address {cpu_addr:p}")));
        }
        let (off, user, at) = window(F, &v, size)?;
        let sys = d.dev.system();
        let phys = d.dev.dma_to_phys(DmaAddr(dma_addr)).ok_or(Errno::ENXIO)?;
        let src = (cpu_addr as usize + off * PAGE_SIZE) as *const u8;
        let len = user * PAGE_SIZE;
        let first = PhysAddr(phys.0 + (off * PAGE_SIZE) as u64);
        let uncached = match sys.virt_to_phys(cpu_addr.cast()) {
            Some(p) if p != phys => {
                return Err(refuse(F, format_args!("{cpu_addr:p} is not the buffer at {dma_addr:#x}")));
            }
            Some(_) if a.contains(Attrs::NO_KERNEL_MAPPING) && !d.dev.is_coherent() => return Err(Errno::EOPNOTSUPP),
            Some(_) => {
                if sys.virt_to_phys((src as usize + len - 1) as *const u8).is_none() {
                    return Err(Errno::ENXIO);
                }
                false
            }
            // Not the cached view: only the uncached alias of a coherent allocation of
            // a non-coherent device may be that.
            None if !d.dev.is_coherent() && !a.intersects(Attrs::NON_CONSISTENT | Attrs::NO_KERNEL_MAPPING) => {
                match sys.find_uncached(cpu_addr.cast()) {
                    Some((_, p, _)) if p != phys => {
                        return Err(refuse(F, format_args!("{cpu_addr:p} is not the buffer at {dma_addr:#x}")));
                    }
                    Some(_) => {}
                    // An uncached vmap of scattered pages (behind an IOMMU): page by page.
                    None => {
                        let at = at.as_ptr() as usize;
                        for i in 0..user {
                            let p =
                                sys.vmap_to_phys((src as usize + i * PAGE_SIZE) as *const u8).ok_or(Errno::ENXIO)?;
                            let to = NonNull::new((at + i * PAGE_SIZE) as *mut u8).ok_or(Errno::EINVAL)?;
                            // SAFETY: `p` is a page of the allocation's vmap; the destination
                            // page is the caller's to replace (the export's contract).
                            unsafe { sys.map_at(p, PAGE_SIZE, to, true) }?;
                        }
                        return Ok(0);
                    }
                }
                true
            }
            None => return Err(refuse(F, format_args!("{cpu_addr:p} is not a DMA allocation"))),
        };
        if !sys.is_ram(first, len) {
            return Err(Errno::ENXIO);
        }
        // SAFETY: `[first, first + len)` is RAM of the allocation (checked above); the
        // destination range is the caller's to replace (the export's contract).
        unsafe { sys.map_at(first, len, at, uncached) }?;
        Ok(0)
    })
}
