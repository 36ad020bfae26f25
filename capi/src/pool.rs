//! DMA pools from C: `dma_pool_create`, `dma_pool_alloc`, `dma_pool_zalloc`,
//! `dma_pool_free`, `dma_pool_destroy` (`mm/dmapool.c`, over dma-core's `DmaPool`).
//!
//! The kernel's rules: `align` a power of two (0 means 1), the block size rounded up to it
//! (at least 16 bytes), no block across `boundary` (a power of two no smaller than the
//! block, 0 for none). Beyond the kernel's default build, every free is checked, so a bad
//! or double free is refused with a message instead of corrupting the pool; destroying a
//! pool with blocks in use reports them and leaks their chunks, as the kernel does.
#![allow(non_camel_case_types)]

use std::ffi::{CStr, c_char, c_void};
use std::sync::Arc;

use dma_core::{DmaAddr, DmaPool, Errno, Gfp};

use crate::boundary::{gfp, nothing, null, refuse};
use crate::dev::{device, to_dev};
use crate::devres::Devres;
use crate::types::{dma_addr_t, gfp_t};

/// A pool as C holds it: an opaque `struct dma_pool *` from `dma_pool_create` or
/// `dmam_pool_create`. It keeps its device alive, so an unmanaged pool may outlive
/// `dma_device_destroy`; a managed one also holds its device's devres registry, where
/// it is recorded.
#[derive(Debug)]
pub struct dma_pool {
    pub(crate) pool: DmaPool,
    pub(crate) devres: Option<Arc<Devres>>,
}

/// The pool behind a C pointer, or `EINVAL` (with a message naming `func`) for NULL.
///
/// # Safety
///
/// `p` is NULL or a live pointer from `dma_pool_create`.
unsafe fn to_pool<'a>(func: &str, p: *const dma_pool) -> Result<&'a DmaPool, Errno> {
    // SAFETY: forwarded from the caller.
    unsafe { p.as_ref() }.map(|p| &p.pool).ok_or_else(|| refuse(func, format_args!("NULL pool")))
}

/// `dma_pool_create`: a pool of `size`-byte blocks aligned to `align`, none crossing a
/// `boundary`-aligned address (0 for no boundary), carved from coherent allocations of
/// `dev`. Returns the pool, or NULL for a NULL name or device, size 0 (or above
/// `INT_MAX`), an `align` that is not a power of two, or a `boundary` that is not a power
/// of two or is smaller than the block (the reason is printed).
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_pool_create(
    name: *const c_char,
    dev: *mut device,
    size: usize,
    align: usize,
    boundary: usize,
) -> *mut dma_pool {
    boundary!(null, {
        // SAFETY: forwarded from the caller.
        let (_, pool) = unsafe { create("dma_pool_create", name, dev, size, align, boundary) }?;
        Ok(Box::into_raw(Box::new(dma_pool { pool, devres: None })))
    })
}

/// The body of `dma_pool_create` and `dmam_pool_create`: the device and a new pool on it.
///
/// # Safety
///
/// As `dma_pool_create`.
pub(crate) unsafe fn create<'a>(
    func: &str,
    name: *const c_char,
    dev: *mut device,
    size: usize,
    align: usize,
    boundary: usize,
) -> Result<(&'a device, DmaPool), Errno> {
    if name.is_null() {
        return Err(refuse(func, format_args!("NULL name")));
    }
    // SAFETY: the caller passes a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
    // SAFETY: forwarded from the caller.
    let d = unsafe { to_dev(func, dev) }?;
    Ok((d, DmaPool::create(&name, &d.dev, size, align, boundary)?))
}

/// # Safety
///
/// As the exports'.
unsafe fn alloc(func: &str, pool: *mut dma_pool, g: Gfp, handle: *mut dma_addr_t) -> Result<*mut c_void, Errno> {
    // SAFETY: forwarded from the caller.
    let p = unsafe { to_pool(func, pool) }?;
    // SAFETY: forwarded from the caller.
    let out = unsafe { handle.as_mut() }.ok_or_else(|| refuse(func, format_args!("NULL handle")))?;
    let (cpu, dma) = p.alloc(g)?;
    *out = dma.0;
    Ok(cpu.as_ptr().cast())
}

/// `dma_pool_alloc`: a block (zeroed with `__GFP_ZERO`); writes its bus address to
/// `*handle`. Returns NULL for a NULL pool or handle, unknown `mem_flags` bits, or no
/// memory for a new chunk (`*handle` untouched).
///
/// # Safety
///
/// `pool` is NULL or a live pool; `handle` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_pool_alloc(pool: *mut dma_pool, mem_flags: gfp_t, handle: *mut dma_addr_t) -> *mut c_void {
    c_call!(null, {
        let g = gfp("dma_pool_alloc", mem_flags)?;
        // SAFETY: forwarded from the caller.
        unsafe { alloc("dma_pool_alloc", pool, g, handle) }
    })
}

/// `dma_pool_zalloc`: `dma_pool_alloc` of a zeroed block.
///
/// # Safety
///
/// As `dma_pool_alloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_pool_zalloc(
    pool: *mut dma_pool,
    mem_flags: gfp_t,
    handle: *mut dma_addr_t,
) -> *mut c_void {
    c_call!(null, {
        let g = gfp("dma_pool_zalloc", mem_flags)?;
        // SAFETY: forwarded from the caller.
        unsafe { alloc("dma_pool_zalloc", pool, g | Gfp::__GFP_ZERO, handle) }
    })
}

/// `dma_pool_free`: returns a block to its pool; pass the bus address `dma_pool_alloc`
/// gave. NULL `vaddr` is a no-op. An address that is not a block of this pool, a bus
/// address that is not the block's, or a block already free is refused with a message
/// and nothing changes.
///
/// # Safety
///
/// `pool` is NULL or a live pool; if `vaddr` is a block of it in use, nothing uses the
/// block afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_pool_free(pool: *mut dma_pool, vaddr: *mut c_void, addr: dma_addr_t) {
    c_call!(nothing, {
        if vaddr.is_null() {
            return Ok(());
        }
        // SAFETY: forwarded from the caller.
        let p = unsafe { to_pool("dma_pool_free", pool) }?;
        // SAFETY: dma-core frees only a block of this pool in use at that bus address; the
        // caller no longer uses it. A refusal has printed its message.
        unsafe { p.free(vaddr.cast(), DmaAddr(addr)) }
    })
}

/// `dma_pool_destroy`: frees the pool and its chunks. NULL is a no-op. Chunks with
/// blocks still in use are reported (`dma_pool_destroy NAME, ADDR busy`) and leaked: the
/// device may still be using them. A pool from `dmam_pool_create` is destroyed too, with
/// a warning to use `dmam_pool_destroy`, and its record dropped, so that
/// `dma_device_destroy` does not destroy it again (the kernel would).
///
/// # Safety
///
/// `pool` is NULL or a pointer from `dma_pool_create` or `dmam_pool_create` not destroyed
/// before (nor its device, for a managed pool); nothing uses it afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_pool_destroy(pool: *mut dma_pool) {
    c_call!(nothing, {
        if pool.is_null() {
            return Ok(());
        }
        // SAFETY: a live pool (the caller's contract).
        let p = unsafe { &*pool };
        if let Some(devres) = &p.devres {
            if devres.take_pool(pool as usize) {
                p.pool.device().warn(format_args!(
                    "dma_pool_destroy: {pool:p} is a managed pool; use dmam_pool_destroy (destroyed now)"
                ));
            }
        }
        // SAFETY: the pointer came from `Box::into_raw` in `dma_pool_create` or
        // `dmam_pool_create`, is destroyed once (the caller's contract) and, managed, no
        // longer recorded on its device.
        unsafe { destroy_boxed(pool) };
        Ok(())
    })
}

/// Destroys a pool C held.
///
/// # Safety
///
/// `pool` came from `Box::into_raw` of a [`dma_pool`], is not recorded as a managed
/// resource any more, and nothing uses it afterwards.
pub(crate) unsafe fn destroy_boxed(pool: *mut dma_pool) {
    // SAFETY: forwarded from the caller.
    unsafe { Box::from_raw(pool) }.pool.destroy();
}
