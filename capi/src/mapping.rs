//! Streaming mappings of single buffers and pages, their syncs, and
//! `dma_mapping_error` (`include/linux/dma-mapping.h`, `kernel/dma/mapping.c`).
//!
//! Map calls return `DMA_MAPPING_ERROR` on failure; unmap and sync calls are `void` and
//! refuse bad input with a message (dma-core's, or one from here for NULL and
//! out-of-range arguments), never a crash.
//!
//! A C caller gets a bus address, not a `Result`, so each successful map tells dma-debug
//! to expect a `dma_mapping_error` on it before the unmap (as `debug_dma_map_page` marks
//! its entry `MAP_ERR_NOT_CHECKED`).

use std::ffi::{c_int, c_ulong, c_void};

use dma_core::{DmaAddr, Errno, PhysAddr};

use crate::boundary::{attrs, direction, mapping_error, neg, nothing};
use crate::dev::device;
use crate::dev::to_dev;
use crate::kmem::page_of;
use crate::types::{DmaDataDirection, dma_addr_t, page, phys_addr_t};

/// A bus address handed to C: with dma-debug on, it must pass `dma_mapping_error` before
/// its unmap (a Rust caller's `Result` is its check; C's sentinel is not).
fn handed_out(d: &device, dma: DmaAddr) -> dma_addr_t {
    if crate::caller::debug_on() {
        d.dev.debug_expect_mapping_check(dma);
    }
    dma.0
}

/// `dma_map_single_attrs`: maps `size` bytes at `ptr` for the device. Platform memory
/// (`kmalloc`, pages, non-coherent allocations) maps directly when the device reaches
/// it; anything else (a heap or stack buffer) bounces through swiotlb.
///
/// Returns the bus address, or `DMA_MAPPING_ERROR` for a NULL device or pointer, size
/// 0, `DMA_NONE` or an invalid direction, unknown attrs, an uncached (coherent)
/// allocation, a full bounce pool, or memory the device cannot reach with nothing to
/// bounce it. Check it with `dma_mapping_error`.
///
/// # Safety
///
/// `dev` is NULL or a live device; `[ptr, ptr + size)` stays valid for reads and writes
/// until the unmap, and the CPU does not touch it while the device owns it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_map_single_attrs(
    dev: *mut device,
    ptr: *mut c_void,
    size: usize,
    dir: DmaDataDirection,
    attrs: c_ulong,
) -> dma_addr_t {
    c_call!(mapping_error, {
        const F: &str = "dma_map_single_attrs";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller; dma-core checks NULL and size 0.
        let dma = unsafe { d.dev.map_single(ptr.cast(), size, dir, a) }?;
        Ok(handed_out(d, dma))
    })
}

/// `dma_unmap_single_attrs`: ends a mapping; pass the address, size and direction of
/// the map call. The CPU owns the memory again and sees what the device wrote.
///
/// # Safety
///
/// `dev` is NULL or a live device; the CPU holds no access into the memory during the
/// call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_unmap_single_attrs(
    dev: *mut device,
    addr: dma_addr_t,
    size: usize,
    dir: DmaDataDirection,
    attrs: c_ulong,
) {
    c_call!(nothing, {
        const F: &str = "dma_unmap_single_attrs";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller; dma-core refuses what is not a mapping.
        unsafe { d.dev.unmap_single(DmaAddr(addr), size, dir, a) };
        Ok(())
    })
}

/// `dma_map_page_attrs`: maps `size` bytes at `offset` in `page` (a page from
/// `alloc_pages`, `dma_alloc_pages` or `virt_to_page`). Returns as
/// `dma_map_single_attrs`.
///
/// # Safety
///
/// `dev` is NULL or a live device; the pages stay allocated until the unmap, and the
/// CPU does not touch them while the device owns them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_map_page_attrs(
    dev: *mut device,
    page: *mut page,
    offset: usize,
    size: usize,
    dir: DmaDataDirection,
    attrs: c_ulong,
) -> dma_addr_t {
    c_call!(mapping_error, {
        const F: &str = "dma_map_page_attrs";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let pg = page_of(F, d.dev.system(), page)?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller; dma-core checks the range is RAM.
        let dma = unsafe { d.dev.map_page(pg, offset, size, dir, a) }?;
        Ok(handed_out(d, dma))
    })
}

/// `dma_unmap_page_attrs`: as `dma_unmap_single_attrs`.
///
/// # Safety
///
/// As `dma_unmap_single_attrs`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_unmap_page_attrs(
    dev: *mut device,
    addr: dma_addr_t,
    size: usize,
    dir: DmaDataDirection,
    attrs: c_ulong,
) {
    // SAFETY: forwarded from the caller.
    unsafe { dma_unmap_single_attrs(dev, addr, size, dir, attrs) }
}

/// `dma_map_phys`: maps `size` bytes at physical address `phys`: platform RAM, or with
/// `DMA_ATTR_MMIO` a peer device's MMIO (no cache maintenance, never bounced). Returns the
/// bus address, or `DMA_MAPPING_ERROR` (with a message) for size 0, `DMA_NONE`, a range
/// that is not RAM without `DMA_ATTR_MMIO`, or one the device cannot reach.
///
/// # Safety
///
/// `dev` is NULL or a live device; a RAM range stays allocated until the unmap, and the
/// CPU does not touch it while the device owns it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_map_phys(
    dev: *mut device,
    phys: phys_addr_t,
    size: usize,
    dir: DmaDataDirection,
    attrs: c_ulong,
) -> dma_addr_t {
    c_call!(mapping_error, {
        const F: &str = "dma_map_phys";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller; dma-core checks the range is RAM unless MMIO.
        let dma = unsafe { d.dev.map_phys(PhysAddr(phys), size, dir, a) }?;
        Ok(handed_out(d, dma))
    })
}

/// `dma_unmap_phys`: as `dma_unmap_single_attrs`.
///
/// # Safety
///
/// As `dma_unmap_single_attrs`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_unmap_phys(
    dev: *mut device,
    addr: dma_addr_t,
    size: usize,
    dir: DmaDataDirection,
    attrs: c_ulong,
) {
    // SAFETY: forwarded from the caller.
    unsafe { dma_unmap_single_attrs(dev, addr, size, dir, attrs) }
}

/// `dma_map_resource`: maps a peer device's MMIO range (a BAR) for device-to-device DMA:
/// `dma_map_phys` with `DMA_ATTR_MMIO`. Returns `DMA_MAPPING_ERROR` (with a message) for
/// a range that is RAM, and as `dma_map_phys` otherwise.
///
/// # Safety
///
/// `dev` is NULL or a live device; the MMIO range stays valid for device access until the
/// unmap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_map_resource(
    dev: *mut device,
    phys_addr: phys_addr_t,
    size: usize,
    dir: DmaDataDirection,
    attrs: c_ulong,
) -> dma_addr_t {
    c_call!(mapping_error, {
        const F: &str = "dma_map_resource";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller; dma-core refuses RAM.
        let dma = unsafe { d.dev.map_resource(PhysAddr(phys_addr), size, dir, a) }?;
        Ok(handed_out(d, dma))
    })
}

/// `dma_unmap_resource`: ends a mapping from `dma_map_resource`.
///
/// # Safety
///
/// `dev` is NULL or a live device; `addr`, `size` and `dir` are those of one live mapping
/// from `dma_map_resource`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_unmap_resource(
    dev: *mut device,
    addr: dma_addr_t,
    size: usize,
    dir: DmaDataDirection,
    attrs: c_ulong,
) {
    c_call!(nothing, {
        const F: &str = "dma_unmap_resource";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller; dma-core refuses what is not a mapping.
        unsafe { d.dev.unmap_resource(DmaAddr(addr), size, dir, a) };
        Ok(())
    })
}

/// The four sync calls share this: check, then hand `[addr + offset, + size)` over.
///
/// # Safety
///
/// As the exports'.
unsafe fn sync(
    func: &str,
    dev: *mut device,
    addr: dma_addr_t,
    offset: usize,
    size: usize,
    dir: DmaDataDirection,
    for_device: bool,
) -> Result<(), Errno> {
    // SAFETY: forwarded from the caller.
    let d = unsafe { to_dev(func, dev) }?;
    let dir = direction(func, dir)?;
    let dma = DmaAddr(addr);
    // SAFETY: forwarded from the caller; dma-core refuses DMA_NONE and ignores what is
    // not a mapping.
    unsafe {
        if for_device {
            d.dev.sync_single_range_for_device(dma, offset, size, dir)
        } else {
            d.dev.sync_single_range_for_cpu(dma, offset, size, dir)
        }
    }
    Ok(())
}

/// `dma_sync_single_for_cpu`: gives the CPU ownership of `[addr, addr + size)` (part of
/// a mapping is fine); what the device wrote becomes visible to the CPU.
///
/// # Safety
///
/// `dev` is NULL or a live device; the range lies in a live mapping of it and the CPU
/// holds no access into it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sync_single_for_cpu(
    dev: *mut device,
    addr: dma_addr_t,
    size: usize,
    dir: DmaDataDirection,
) {
    // SAFETY: forwarded from the caller.
    c_call!(nothing, unsafe { sync("dma_sync_single_for_cpu", dev, addr, 0, size, dir, false) })
}

/// `dma_sync_single_for_device`: gives the device ownership; what the CPU wrote becomes
/// visible to the device.
///
/// # Safety
///
/// As `dma_sync_single_for_cpu`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sync_single_for_device(
    dev: *mut device,
    addr: dma_addr_t,
    size: usize,
    dir: DmaDataDirection,
) {
    // SAFETY: forwarded from the caller.
    c_call!(nothing, unsafe { sync("dma_sync_single_for_device", dev, addr, 0, size, dir, true) })
}

/// `dma_sync_single_range_for_cpu`: the sync at `addr + offset`.
///
/// # Safety
///
/// As `dma_sync_single_for_cpu`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sync_single_range_for_cpu(
    dev: *mut device,
    addr: dma_addr_t,
    offset: usize,
    size: usize,
    dir: DmaDataDirection,
) {
    // SAFETY: forwarded from the caller.
    c_call!(nothing, unsafe { sync("dma_sync_single_range_for_cpu", dev, addr, offset, size, dir, false) })
}

/// `dma_sync_single_range_for_device`: the sync at `addr + offset`.
///
/// # Safety
///
/// As `dma_sync_single_for_cpu`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sync_single_range_for_device(
    dev: *mut device,
    addr: dma_addr_t,
    offset: usize,
    size: usize,
    dir: DmaDataDirection,
) {
    // SAFETY: forwarded from the caller.
    c_call!(nothing, unsafe { sync("dma_sync_single_range_for_device", dev, addr, offset, size, dir, true) })
}

/// `dma_cache_sync`, deprecated: a shim over the ownership transfers for a cached
/// allocation (`DMA_ATTR_NON_CONSISTENT`, `dma_alloc_noncoherent`): `DMA_TO_DEVICE`
/// syncs for the device, `DMA_FROM_DEVICE` for the CPU, `DMA_BIDIRECTIONAL` both in
/// turn. Use the `dma_sync_single_*` calls, which say who owns the buffer.
///
/// # Safety
///
/// As `dma_sync_single_for_cpu`, for `[vaddr, vaddr + size)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_cache_sync(dev: *mut device, vaddr: *mut c_void, size: usize, dir: DmaDataDirection) {
    c_call!(nothing, {
        const F: &str = "dma_cache_sync";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let dir = direction(F, dir)?;
        // SAFETY: forwarded from the caller; dma-core refuses a foreign address.
        #[allow(deprecated)]
        unsafe {
            d.dev.cache_sync(vaddr.cast(), size, dir)
        };
        Ok(())
    })
}

/// `dma_mapping_error`: `-ENOMEM` if `dma_addr` is `DMA_MAPPING_ERROR`, else 0. With
/// dma-debug on it also records that the caller checked this mapping: unmapping a
/// `dma_map_single_attrs` / `dma_map_page_attrs` result without this call is reported,
/// as in the kernel (scatter-gather results are checked by their count instead). `dev`
/// may be NULL (then nothing is recorded).
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_mapping_error(dev: *mut device, dma_addr: dma_addr_t) -> c_int {
    c_call!(neg, {
        let dma = DmaAddr(dma_addr);
        // SAFETY: the caller passes NULL or a live device.
        match unsafe { dev.as_ref() } {
            Some(d) => d.dev.mapping_error(dma)?,
            None if dma.is_error() => return Err(Errno::ENOMEM),
            None => {}
        }
        Ok(0)
    })
}
