//! Allocation: `dma_alloc_attrs` and its coherent, write-combining, non-coherent and
//! page forms (`kernel/dma/mapping.c`, `include/linux/dma-mapping.h`).
//!
//! All of them return NULL on failure and write `*dma_handle` only on success.

use std::ffi::{c_ulong, c_void};

use dma_core::{Attrs, DmaAddr, Errno, Gfp};

use crate::boundary::{attrs, direction, gfp, nothing, null, refuse};
use crate::dev::{device, to_dev};
use crate::kmem::{page_handle, page_of};
use crate::types::{DmaDataDirection, dma_addr_t, gfp_t, page};

/// # Safety
///
/// `p` is NULL or writable, and not otherwise referenced for `'a`.
unsafe fn handle_out<'a>(func: &str, p: *mut dma_addr_t) -> Result<&'a mut dma_addr_t, Errno> {
    // SAFETY: forwarded from the caller.
    unsafe { p.as_mut() }.ok_or_else(|| refuse(func, format_args!("NULL dma_handle")))
}

/// # Safety
///
/// `d` is NULL or a live device; `h` is NULL or writable.
unsafe fn alloc(
    func: &str,
    d: *mut device,
    size: usize,
    h: *mut dma_addr_t,
    g: gfp_t,
    a: Attrs,
) -> Result<*mut c_void, Errno> {
    // SAFETY: forwarded from the caller.
    let d = unsafe { to_dev(func, d) }?;
    // SAFETY: forwarded from the caller.
    let out = unsafe { handle_out(func, h) }?;
    let g = gfp(func, g)?;
    let (cpu, dma) = d.dev.alloc_attrs(size, g, a)?;
    *out = dma.0;
    Ok(cpu.as_ptr().cast())
}

/// `dma_alloc_attrs`: `size` bytes the device can always see. On a coherent device it
/// is ordinary cached memory; on a non-coherent one an uncached alias, unless
/// `DMA_ATTR_NON_CONSISTENT` asks for cached memory owned through `dma_sync_*`. With
/// `DMA_ATTR_NO_KERNEL_MAPPING` the result is a cookie for `dma_free_attrs` and
/// `dma_mmap_attrs` only. Zone flags in `gfp` are ignored (the coherent mask decides).
///
/// Returns the CPU address and writes the bus address to `*dma_handle`, or returns NULL
/// for a NULL device or handle, size 0 or too large, unknown `gfp` or `attrs` bits,
/// `__GFP_COMP`, or no reachable memory left.
///
/// # Safety
///
/// `dev` is NULL or a live device; `dma_handle` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_alloc_attrs(
    dev: *mut device,
    size: usize,
    dma_handle: *mut dma_addr_t,
    flag: gfp_t,
    attrs: c_ulong,
) -> *mut c_void {
    c_call!(null, {
        let a = self::attrs("dma_alloc_attrs", attrs)?;
        // SAFETY: forwarded from the caller.
        unsafe { alloc("dma_alloc_attrs", dev, size, dma_handle, flag, a) }
    })
}

/// `dma_free_attrs`: frees what `dma_alloc_attrs` returned; pass the same size and
/// attrs. NULL `cpu_addr` is a no-op. An address, handle or size that does not match a
/// live allocation is refused with a message and nothing is freed. An allocation from
/// `dmam_alloc_attrs` is freed with a warning to use `dmam_free_coherent`, and forgotten,
/// so that `dma_device_destroy` does not free it again (the kernel would).
///
/// # Safety
///
/// `dev` is NULL or a live device; if `cpu_addr` is a live allocation of this device,
/// nothing uses it afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_free_attrs(
    dev: *mut device,
    size: usize,
    cpu_addr: *mut c_void,
    dma_handle: dma_addr_t,
    attrs: c_ulong,
) {
    c_call!(nothing, {
        if cpu_addr.is_null() {
            return Ok(());
        }
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev("dma_free_attrs", dev) }?;
        let a = self::attrs("dma_free_attrs", attrs)?;
        // SAFETY: forwarded from the caller.
        if unsafe { crate::devres::free_if_managed(d, size, cpu_addr, dma_handle) } {
            return Ok(());
        }
        // SAFETY: dma-core checks the triple against the allocation and frees only a
        // match; the caller no longer uses a matching allocation.
        unsafe { d.dev.free_attrs(size, cpu_addr.cast(), DmaAddr(dma_handle), a) };
        Ok(())
    })
}

/// The attrs `dma_alloc_coherent` (and `dmam_alloc_coherent`) pass on: `DMA_ATTR_NO_WARN`
/// when `gfp` has `__GFP_NOWARN`.
pub(crate) fn coherent_attrs(gfp: gfp_t) -> Attrs {
    if Gfp::from_bits_retain(gfp).contains(Gfp::__GFP_NOWARN) { Attrs::NO_WARN } else { Attrs::empty() }
}

/// `dma_alloc_coherent`: `dma_alloc_attrs` with `DMA_ATTR_NO_WARN` when `gfp` has
/// `__GFP_NOWARN`. Returns as `dma_alloc_attrs`.
///
/// # Safety
///
/// As `dma_alloc_attrs`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_alloc_coherent(
    dev: *mut device,
    size: usize,
    dma_handle: *mut dma_addr_t,
    gfp: gfp_t,
) -> *mut c_void {
    c_call!(null, {
        let a = coherent_attrs(gfp);
        // SAFETY: forwarded from the caller.
        unsafe { alloc("dma_alloc_coherent", dev, size, dma_handle, gfp, a) }
    })
}

/// `dma_free_coherent`: `dma_free_attrs` with attrs 0.
///
/// # Safety
///
/// As `dma_free_attrs`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_free_coherent(
    dev: *mut device,
    size: usize,
    cpu_addr: *mut c_void,
    dma_handle: dma_addr_t,
) {
    // SAFETY: forwarded from the caller.
    unsafe { dma_free_attrs(dev, size, cpu_addr, dma_handle, 0) }
}

/// `dma_alloc_wc`: `dma_alloc_attrs` with `DMA_ATTR_WRITE_COMBINE`.
///
/// # Safety
///
/// As `dma_alloc_attrs`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_alloc_wc(
    dev: *mut device,
    size: usize,
    dma_handle: *mut dma_addr_t,
    gfp: gfp_t,
) -> *mut c_void {
    // SAFETY: forwarded from the caller.
    unsafe { dma_alloc_attrs(dev, size, dma_handle, gfp, crate::types::DMA_ATTR_WRITE_COMBINE) }
}

/// `dma_free_wc`: `dma_free_attrs` with `DMA_ATTR_WRITE_COMBINE`.
///
/// # Safety
///
/// As `dma_free_attrs`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_free_wc(dev: *mut device, size: usize, cpu_addr: *mut c_void, dma_handle: dma_addr_t) {
    // SAFETY: forwarded from the caller.
    unsafe { dma_free_attrs(dev, size, cpu_addr, dma_handle, crate::types::DMA_ATTR_WRITE_COMBINE) }
}

/// `dma_alloc_pages`: cached, zeroed pages the device can reach, owned by the CPU until
/// `dma_sync_single_for_device`. Never uncached, on any device. Returns the first page
/// and writes the bus address to `*dma_handle`, or returns NULL for a NULL device or
/// handle, size 0, `DMA_NONE` or an invalid direction, zone flags, `__GFP_COMP` or
/// unknown bits in `gfp`, or no reachable memory left.
///
/// # Safety
///
/// `dev` is NULL or a live device; `dma_handle` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_alloc_pages(
    dev: *mut device,
    size: usize,
    dma_handle: *mut dma_addr_t,
    dir: DmaDataDirection,
    gfp: gfp_t,
) -> *mut page {
    c_call!(null, {
        const F: &str = "dma_alloc_pages";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        // SAFETY: forwarded from the caller.
        let out = unsafe { handle_out(F, dma_handle) }?;
        let (pg, dma) = d.dev.alloc_pages(size, direction(F, dir)?, self::gfp(F, gfp)?)?;
        let h = page_handle(d.dev.system(), pg)?;
        *out = dma.0;
        Ok(h)
    })
}

/// `dma_free_pages`: frees what `dma_alloc_pages` returned. NULL `page` is a no-op; a
/// page or handle that does not match is refused with a message.
///
/// # Safety
///
/// `dev` is NULL or a live device; nothing uses the pages afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_free_pages(
    dev: *mut device,
    size: usize,
    page: *mut page,
    dma_handle: dma_addr_t,
    dir: DmaDataDirection,
) {
    c_call!(nothing, {
        const F: &str = "dma_free_pages";
        if page.is_null() {
            return Ok(());
        }
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let pg = page_of(F, d.dev.system(), page)?;
        // SAFETY: dma-core frees only pages that match the handle; the caller no longer
        // uses them.
        unsafe { d.dev.free_pages(size, pg, DmaAddr(dma_handle), direction(F, dir)?) };
        Ok(())
    })
}

/// `dma_alloc_noncoherent`: `dma_alloc_pages` returning the CPU address. Returns as
/// `dma_alloc_pages`.
///
/// # Safety
///
/// As `dma_alloc_pages`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_alloc_noncoherent(
    dev: *mut device,
    size: usize,
    dma_handle: *mut dma_addr_t,
    dir: DmaDataDirection,
    gfp: gfp_t,
) -> *mut c_void {
    // A page handle is the page's CPU address.
    // SAFETY: forwarded from the caller.
    unsafe { dma_alloc_pages(dev, size, dma_handle, dir, gfp) }.cast()
}

/// `dma_free_noncoherent`: frees what `dma_alloc_noncoherent` returned. NULL `vaddr` is
/// a no-op; an address that is not such an allocation is refused with a message.
///
/// # Safety
///
/// As `dma_free_pages`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_free_noncoherent(
    dev: *mut device,
    size: usize,
    vaddr: *mut c_void,
    dma_handle: dma_addr_t,
    dir: DmaDataDirection,
) {
    c_call!(nothing, {
        const F: &str = "dma_free_noncoherent";
        if vaddr.is_null() {
            return Ok(());
        }
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        // SAFETY: dma-core frees only a page-aligned allocation that matches the handle.
        unsafe { d.dev.free_noncoherent(size, vaddr.cast(), DmaAddr(dma_handle), direction(F, dir)?) };
        Ok(())
    })
}
