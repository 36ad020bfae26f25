//! The devres-managed DMA API: `dmam_alloc_attrs`, `dmam_alloc_coherent`,
//! `dmam_free_coherent` (the "Managed DMA API" of `kernel/dma/mapping.c`) and
//! `dmam_pool_create`, `dmam_pool_destroy` (`mm/dmapool.c`).
//!
//! The kernel records these on the device and releases them when the driver detaches
//! (`devres_release_all`); here that moment is `dma_device_destroy`. Each C device has a
//! [`Devres`]: its records in creation order behind a mutex. `dma_device_destroy` takes
//! them all and releases them newest first, before the device itself goes, so that
//! dma-debug's report at the device's release names only what the driver left unmanaged.
//!
//! Where this differs from the kernel, so that nothing is freed twice or leaked:
//!
//! - `dmam_free_coherent` of an address with no record on the device warns and frees
//!   nothing (the kernel WARNs, and older kernels free it anyway);
//! - a record whose size or handle differ from the caller's (`dmam_match`'s WARN) is
//!   released with the recorded size, handle and attrs, which are those of the
//!   allocation (the kernel frees with the caller's values);
//! - `dma_free_attrs` (so `dma_free_coherent`, `dma_free_wc`) of a managed allocation
//!   and `dma_pool_destroy` of a managed pool warn ("use dmam_...") and release it and
//!   its record now; the kernel would release it a second time at detach;
//! - `dmam_pool_destroy` of a pool that is not managed warns and destroys nothing (the
//!   kernel's `devres_release` finds nothing to release, and WARNs).

use std::ffi::{c_char, c_ulong, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dma_core::{Attrs, DmaAddr, Errno};

use crate::boundary::{attrs, gfp, nothing, null, refuse};
use crate::dev::{device, to_dev};
use crate::pool::{destroy_boxed, dma_pool};
use crate::types::{dma_addr_t, gfp_t};

/// A managed coherent allocation: what `dma_free_attrs` needs to free it (the kernel's
/// `struct dma_devres`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Coherent {
    vaddr: usize,
    size: usize,
    dma: dma_addr_t,
    attrs: Attrs,
}

/// One managed resource of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resource {
    Coherent(Coherent),
    /// The address of a boxed [`dma_pool`] C holds.
    Pool(usize),
}

/// A device's managed resources (the kernel's `dev->devres_head`).
///
/// # Invariants
///
/// `records` is in creation order. A `Pool` record is the address of a live boxed
/// [`dma_pool`] whose `devres` is this registry; whoever removes the record owns the box.
/// `coherent` is true once any `Coherent` record was added.
#[derive(Debug, Default)]
pub(crate) struct Devres {
    records: Mutex<Vec<Resource>>,
    /// Lets the unmanaged frees skip the lock on a device that never had a managed
    /// allocation (the common path costs a relaxed load).
    coherent: AtomicBool,
}

impl Devres {
    fn records(&self) -> MutexGuard<'_, Vec<Resource>> {
        // A panic under the lock leaves the vector whole (push and remove do not unwind
        // halfway), so a poisoned lock is still good.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, r: Resource) {
        let mut records = self.records();
        if matches!(r, Resource::Coherent(_)) {
            self.coherent.store(true, Ordering::Relaxed);
        }
        // INVARIANT: appended, so creation order holds.
        records.push(r);
    }

    /// Removes and returns the record of the managed allocation at `vaddr` (the kernel's
    /// `dmam_match` compares only the address).
    fn take_coherent(&self, vaddr: usize) -> Option<Coherent> {
        if !self.coherent.load(Ordering::Relaxed) {
            return None;
        }
        let mut records = self.records();
        let i = records.iter().rposition(|r| matches!(r, Resource::Coherent(c) if c.vaddr == vaddr))?;
        match records.remove(i) {
            Resource::Coherent(c) => Some(c),
            Resource::Pool(_) => None,
        }
    }

    /// Removes the record of the managed pool at `pool`; false when there is none. The
    /// caller then owns the pool.
    pub(crate) fn take_pool(&self, pool: usize) -> bool {
        let mut records = self.records();
        match records.iter().rposition(|r| *r == Resource::Pool(pool)) {
            Some(i) => {
                records.remove(i);
                true
            }
            None => false,
        }
    }

    /// Removes every record, newest first: the order they are released in.
    fn take_all(&self) -> Vec<Resource> {
        let mut all = std::mem::take(&mut *self.records());
        all.reverse();
        all
    }
}

/// Frees a managed allocation whose record was just taken, warning (as `dmam_match`
/// does) when the caller's `size` or `dma` differ from the record; the record's values
/// are the allocation's, so they are the ones freed.
///
/// # Safety
///
/// `c` is a record taken from `d`'s registry; nothing uses the memory afterwards.
unsafe fn free_record(func: &str, d: &device, c: Coherent, size: usize, dma: dma_addr_t) {
    if c.size != size || c.dma != dma {
        d.dev.warn(format_args!(
            "{func}: {:#x}: size {size} and handle {} differ from the allocation's ({} bytes at {}); freeing the allocation",
            c.vaddr,
            DmaAddr(dma),
            c.size,
            DmaAddr(c.dma)
        ));
    }
    // SAFETY: the record is the one live allocation made by `alloc` on this device (the
    // registry held it until now), and the caller no longer uses it.
    unsafe { d.dev.free_attrs(c.size, c.vaddr as *mut u8, DmaAddr(c.dma), c.attrs) };
}

/// For `dma_free_attrs`: frees `vaddr` if it is a managed allocation of `d` and forgets
/// it, with a warning that `dmam_free_coherent` was meant; false (nothing done) when it
/// is not managed.
///
/// # Safety
///
/// Nothing uses the memory at `vaddr` afterwards if it is a live allocation of `d`.
pub(crate) unsafe fn free_if_managed(d: &device, size: usize, vaddr: *mut c_void, dma: dma_addr_t) -> bool {
    let Some(c) = d.devres.take_coherent(vaddr as usize) else { return false };
    d.dev.warn(format_args!(
        "dma_free_attrs: {vaddr:p} is a managed allocation; use dmam_free_coherent (freed now, not again at dma_device_destroy)"
    ));
    // SAFETY: taken from `d`'s registry just now; forwarded from the caller.
    unsafe { free_record("dma_free_attrs", d, c, size, dma) };
    true
}

/// Releases every managed resource of `d`, newest first (`devres_release_all`).
pub(crate) fn release_all(d: &device) {
    for r in d.devres.take_all() {
        match r {
            Resource::Coherent(c) => {
                // SAFETY: taken from `d`'s registry; the device is being destroyed, so the
                // driver no longer uses its managed memory (the contract of
                // `dma_device_destroy`).
                unsafe { free_record("dma_device_destroy", d, c, c.size, c.dma) }
            }
            // SAFETY: a pool record is a live boxed pool (the registry's invariant), now
            // unrecorded; nothing uses it after its device's destruction.
            Resource::Pool(p) => unsafe { destroy_boxed(p as *mut dma_pool) },
        }
    }
}

/// # Safety
///
/// `dev` is NULL or a live device; `h` is NULL or writable.
unsafe fn alloc(
    func: &str,
    dev: *mut device,
    size: usize,
    h: *mut dma_addr_t,
    g: gfp_t,
    a: Attrs,
) -> Result<*mut c_void, Errno> {
    // SAFETY: forwarded from the caller.
    let d = unsafe { to_dev(func, dev) }?;
    // SAFETY: forwarded from the caller.
    let out = unsafe { h.as_mut() }.ok_or_else(|| refuse(func, format_args!("NULL dma_handle")))?;
    let (cpu, dma) = d.dev.alloc_attrs(size, gfp(func, g)?, a)?;
    d.devres.add(Resource::Coherent(Coherent { vaddr: cpu.as_ptr() as usize, size, dma: dma.0, attrs: a }));
    *out = dma.0;
    Ok(cpu.as_ptr().cast())
}

/// `dmam_alloc_attrs`: `dma_alloc_attrs`, and the allocation is recorded on the device
/// and freed by `dma_device_destroy` (the kernel's driver detach) unless
/// `dmam_free_coherent` freed it before. Returns as `dma_alloc_attrs`: NULL for a NULL
/// device or handle, size 0 or too large, unknown `gfp` or `attrs` bits, or no reachable
/// memory left (`*dma_handle` untouched, nothing recorded).
///
/// # Safety
///
/// `dev` is NULL or a live device; `dma_handle` is NULL or writable. Nothing uses the
/// memory after `dma_device_destroy(dev)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dmam_alloc_attrs(
    dev: *mut device,
    size: usize,
    dma_handle: *mut dma_addr_t,
    gfp: gfp_t,
    attrs: c_ulong,
) -> *mut c_void {
    c_call!(null, {
        const F: &str = "dmam_alloc_attrs";
        let a = self::attrs(F, attrs)?;
        // SAFETY: forwarded from the caller.
        unsafe { alloc(F, dev, size, dma_handle, gfp, a) }
    })
}

/// `dmam_alloc_coherent`: `dmam_alloc_attrs` with `DMA_ATTR_NO_WARN` when `gfp` has
/// `__GFP_NOWARN`. Returns as `dmam_alloc_attrs`.
///
/// # Safety
///
/// As `dmam_alloc_attrs`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dmam_alloc_coherent(
    dev: *mut device,
    size: usize,
    dma_handle: *mut dma_addr_t,
    gfp: gfp_t,
) -> *mut c_void {
    c_call!(null, {
        let a = crate::alloc::coherent_attrs(gfp);
        // SAFETY: forwarded from the caller.
        unsafe { alloc("dmam_alloc_coherent", dev, size, dma_handle, gfp, a) }
    })
}

/// `dmam_free_coherent`: frees a `dmam_alloc_attrs` or `dmam_alloc_coherent` allocation
/// now and forgets it. The allocation is found by `vaddr`; a `size` or `dma_handle` that
/// differs from the allocation's is warned about, and the allocation (its own size,
/// handle and attrs) is freed. NULL `vaddr` is a no-op; an address that is not a managed
/// allocation of `dev` is warned about and nothing is freed.
///
/// # Safety
///
/// `dev` is NULL or a live device; if `vaddr` is a managed allocation of it, nothing uses
/// the memory afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dmam_free_coherent(dev: *mut device, size: usize, vaddr: *mut c_void, dma_handle: dma_addr_t) {
    c_call!(nothing, {
        const F: &str = "dmam_free_coherent";
        if vaddr.is_null() {
            return Ok(());
        }
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        match d.devres.take_coherent(vaddr as usize) {
            // SAFETY: taken from `d`'s registry just now; the caller no longer uses it.
            Some(c) => unsafe { free_record(F, d, c, size, dma_handle) },
            None => {
                d.dev.warn(format_args!("{F}: {vaddr:p} is not a managed allocation of this device; nothing freed"))
            }
        }
        Ok(())
    })
}

/// `dmam_pool_create`: `dma_pool_create` (`allocation` is the boundary), and the pool is
/// recorded on the device and destroyed by `dma_device_destroy` unless
/// `dmam_pool_destroy` destroyed it before (blocks still in use are then reported and
/// their chunks leaked, as `dma_pool_destroy` does). Returns NULL as `dma_pool_create`
/// does.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `dev` is NULL or a live device. Nothing
/// uses the pool or its blocks after `dma_device_destroy(dev)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dmam_pool_create(
    name: *const c_char,
    dev: *mut device,
    size: usize,
    align: usize,
    allocation: usize,
) -> *mut dma_pool {
    boundary!(null, {
        // SAFETY: forwarded from the caller.
        let (d, pool) = unsafe { crate::pool::create("dmam_pool_create", name, dev, size, align, allocation) }?;
        let p = Box::into_raw(Box::new(dma_pool { pool, devres: Some(Arc::clone(&d.devres)) }));
        // INVARIANT: a live boxed pool whose `devres` is this registry.
        d.devres.add(Resource::Pool(p as usize));
        Ok(p)
    })
}

/// `dmam_pool_destroy`: destroys a `dmam_pool_create` pool now (as `dma_pool_destroy`)
/// and forgets it. NULL is a no-op; a pool from `dma_pool_create` is warned about and
/// not destroyed.
///
/// # Safety
///
/// `pool` is NULL or a live pool (its device not destroyed); nothing uses a managed pool
/// afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dmam_pool_destroy(pool: *mut dma_pool) {
    c_call!(nothing, {
        if pool.is_null() {
            return Ok(());
        }
        // SAFETY: a live pool (the caller's contract).
        let p = unsafe { &*pool };
        match &p.devres {
            // SAFETY: the record was just taken, so this call owns the pool; the caller
            // no longer uses it.
            Some(r) if r.take_pool(pool as usize) => unsafe { destroy_boxed(pool) },
            _ => p.pool.device().warn(format_args!(
                "dmam_pool_destroy: {pool:p} ({}) is not a managed pool; nothing destroyed",
                p.pool.name()
            )),
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coherent(vaddr: usize) -> Resource {
        Resource::Coherent(Coherent { vaddr, size: 4096, dma: vaddr as u64, attrs: Attrs::empty() })
    }

    #[test]
    fn records_are_found_by_address_and_released_newest_first() {
        let r = Devres::default();
        assert_eq!(r.take_coherent(0x1000), None, "nothing recorded: the lock-free path");
        r.add(Resource::Pool(0x10));
        assert!(!r.coherent.load(Ordering::Relaxed), "a pool does not arm the coherent path");
        r.add(coherent(0x1000));
        r.add(coherent(0x2000));
        r.add(Resource::Pool(0x20));
        r.add(coherent(0x3000));

        assert_eq!(r.take_coherent(0x2000).map(|c| c.vaddr), Some(0x2000));
        assert_eq!(r.take_coherent(0x2000), None, "taken once");
        assert_eq!(r.take_coherent(0x10), None, "a pool is not an allocation");
        assert!(r.take_pool(0x20));
        assert!(!r.take_pool(0x20), "taken once");
        assert!(!r.take_pool(0x1000), "an allocation is not a pool");

        assert_eq!(r.take_all(), vec![coherent(0x3000), coherent(0x1000), Resource::Pool(0x10)]);
        assert!(r.take_all().is_empty());
        assert_eq!(r.take_coherent(0x1000), None);
    }
}
