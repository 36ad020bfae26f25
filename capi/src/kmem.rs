//! The kernel's memory calls that DMA drivers use around the DMA API (`kmalloc`,
//! `alloc_pages`, ...), over the platform's RAM so their buffers map without bouncing.
//!
//! Exported as `dmalib_*` so linking `libdma.a` never clashes with another library's
//! symbols; `include/dma-kernel-compat.h` gives them the kernel's names.
//!
//! A `struct page *` is the CPU (cached view) address of the page's first byte.

use std::ffi::{c_uint, c_ulong, c_void};
use std::ptr::NonNull;
use std::sync::Arc;

use dma_core::{Errno, Page, System};

use crate::boundary::{gfp, nothing, null, refuse, zero};
use crate::system::system;
use crate::types::{__GFP_ZERO, gfp_t, page, phys_addr_t};

/// The C handle of a page.
pub(crate) fn page_handle(sys: &Arc<System>, pg: Page) -> Result<*mut page, Errno> {
    let p = sys.page_address(pg);
    if p.is_null() { Err(Errno::EFAULT) } else { Ok(p.cast()) }
}

/// The page behind a C handle: it must be the first byte of a page of platform RAM.
pub(crate) fn page_of(func: &str, sys: &Arc<System>, h: *mut page) -> Result<Page, Errno> {
    match sys.virt_to_page(h.cast()) {
        Some(pg) if sys.page_address(pg) == h.cast() => Ok(pg),
        _ => Err(refuse(func, format_args!("{h:p} is not a page of this library"))),
    }
}

/// `kmalloc`: `size` bytes of platform RAM from the zone `flags` names (`GFP_DMA`,
/// `GFP_DMA32`, else any), aligned to at least `dma_get_cache_alignment()`, so the
/// buffer maps without bouncing and shares no cache line. NULL for size 0, unknown
/// flags or no memory.
#[unsafe(no_mangle)]
pub extern "C" fn dmalib_kmalloc(size: usize, flags: gfp_t) -> *mut c_void {
    boundary!(null, {
        let g = gfp("kmalloc", flags)?;
        Ok(system()?.kmalloc(size, g)?.as_ptr().cast())
    })
}

/// `kzalloc`: `kmalloc` with `__GFP_ZERO`.
#[unsafe(no_mangle)]
pub extern "C" fn dmalib_kzalloc(size: usize, flags: gfp_t) -> *mut c_void {
    dmalib_kmalloc(size, flags | __GFP_ZERO)
}

/// `kfree`. NULL is a no-op; a pointer `kmalloc` did not return is refused with a
/// message and nothing is freed.
///
/// # Safety
///
/// If `objp` came from `kmalloc`, nothing uses it afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dmalib_kfree(objp: *const c_void) {
    boundary!(nothing, {
        let Some(p) = NonNull::new(objp.cast_mut().cast::<u8>()) else { return Ok(()) };
        // SAFETY: kmalloc refuses pointers it did not return; the caller no longer uses
        // one it did.
        unsafe { system()?.kfree(p) }
    })
}

/// `alloc_pages`: `2^order` contiguous pages (zeroed with `__GFP_ZERO`), or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn dmalib_alloc_pages(gfp_mask: gfp_t, order: c_uint) -> *mut page {
    boundary!(null, {
        let sys = system()?;
        let pg = sys.alloc_pages(gfp("alloc_pages", gfp_mask)?, order)?;
        page_handle(sys, pg)
    })
}

/// `__free_pages`: frees `2^order` pages from `alloc_pages`. NULL is a no-op; a page
/// or order that does not match is refused with a message.
///
/// # Safety
///
/// Nothing uses the pages afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dmalib___free_pages(page: *mut page, order: c_uint) {
    boundary!(nothing, {
        if page.is_null() {
            return Ok(());
        }
        let sys = system()?;
        sys.free_pages(page_of("__free_pages", sys, page)?, order)
    })
}

/// `page_address`: the CPU address of a page (NULL for NULL or a foreign pointer).
#[unsafe(no_mangle)]
pub extern "C" fn dmalib_page_address(page: *const page) -> *mut c_void {
    boundary!(null, {
        if page.is_null() {
            return Ok(std::ptr::null_mut());
        }
        let sys = system()?;
        Ok(page_handle(sys, page_of("page_address", sys, page.cast_mut())?)?.cast())
    })
}

/// `virt_to_page`: the page holding a CPU address of platform RAM, or NULL for memory
/// the library does not own.
#[unsafe(no_mangle)]
pub extern "C" fn dmalib_virt_to_page(addr: *const c_void) -> *mut page {
    boundary!(null, {
        let sys = system()?;
        let pg = sys.virt_to_page(addr.cast()).ok_or(Errno::EFAULT)?;
        page_handle(sys, pg)
    })
}

/// `virt_to_phys`: the CPU physical address of a CPU address of platform RAM (what
/// `dma_iova_link` takes), or 0 for memory the library does not own.
#[unsafe(no_mangle)]
pub extern "C" fn dmalib_virt_to_phys(addr: *const c_void) -> phys_addr_t {
    boundary!(zero, {
        let sys = system()?;
        Ok(sys.virt_to_phys(addr.cast()).map_or(0, |p| p.0))
    })
}

/// `page_to_phys`: the physical address of a page, or 0 for NULL or a foreign pointer.
#[unsafe(no_mangle)]
pub extern "C" fn dmalib_page_to_phys(page: *const page) -> phys_addr_t {
    boundary!(zero, {
        if page.is_null() {
            return Ok(0);
        }
        let sys = system()?;
        Ok(page_of("page_to_phys", sys, page.cast_mut())?.phys().0)
    })
}

/// `__get_free_pages`: `alloc_pages` returning the CPU address as an integer, or 0.
#[unsafe(no_mangle)]
pub extern "C" fn dmalib___get_free_pages(gfp_mask: gfp_t, order: c_uint) -> c_ulong {
    dmalib_alloc_pages(gfp_mask, order) as c_ulong
}

/// `free_pages`: frees what `__get_free_pages` returned. 0 is a no-op.
///
/// # Safety
///
/// As `__free_pages`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dmalib_free_pages(addr: c_ulong, order: c_uint) {
    // SAFETY: forwarded from the caller.
    unsafe { dmalib___free_pages(addr as *mut page, order) }
}
