//! Noncontiguous allocations from C: `dma_alloc_noncontiguous`, `dma_free_noncontiguous`,
//! `dma_vmap_noncontiguous`, `dma_vunmap_noncontiguous` (`kernel/dma/mapping.c`).
//!
//! The kernel returns a `struct sg_table *` it allocated; so does this file. The table C
//! holds is the first field of an [`NcTable`], whose other field is dma-core's table:
//! its entries are the very array C's `sgl` points at (`struct scatterlist` has dma-core's
//! layout), so nothing is copied and the free hands dma-core back its own table.
//!
//! Every live table and vmap is registered, with its device, size and vmaps, so a free,
//! vmap or vunmap of something this file never returned (a table from `sg_alloc_table`,
//! a second free, another device's table, a free with a live vmap) is refused with a
//! message, never a crash or a double free.

use std::collections::BTreeMap;
use std::ffi::{c_uint, c_ulong, c_void};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use dma_core::{Device, Errno, SgTable, page_align};

use crate::boundary::{attrs, direction, gfp, nothing, null, refuse};
use crate::dev::{device, to_dev};
use crate::types::{DmaDataDirection, gfp_t, sg_table};

/// What `dma_alloc_noncontiguous` hands out. `c` comes first, so a pointer to it is a
/// pointer to the whole (`#[repr(C)]`).
///
/// # Invariants
///
/// `c.sgl` points at `sgt.sgl`'s buffer and `c.orig_nents == sgt.sgl.len()`; `sgt.sgl` is
/// never resized while the table lives.
#[repr(C)]
#[derive(Debug)]
struct NcTable {
    c: sg_table,
    sgt: SgTable,
}

/// A live table: its device, its size (page aligned), and the CPU addresses of its live
/// vmaps (one entry per `dma_vmap_noncontiguous`; on the direct path repeated vmaps
/// return the same address).
#[derive(Debug)]
struct Live {
    dev: Weak<Device>,
    size: usize,
    vmaps: Vec<usize>,
}

/// Live tables by the address C holds. The lock is also held across each dma-core call on
/// a table, so a free cannot race a vmap of the same table.
static LIVE: Mutex<BTreeMap<usize, Live>> = Mutex::new(BTreeMap::new());

fn live() -> MutexGuard<'static, BTreeMap<usize, Live>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The registered table at `sgt`, if it is one of `dev`'s.
fn find<'a>(
    func: &str,
    tables: &'a mut BTreeMap<usize, Live>,
    dev: &Arc<Device>,
    sgt: *mut sg_table,
) -> Result<&'a mut Live, Errno> {
    match tables.get_mut(&(sgt as usize)) {
        Some(l) if Weak::ptr_eq(&l.dev, &Arc::downgrade(dev)) => Ok(l),
        Some(_) => Err(refuse(func, format_args!("{sgt:p} belongs to another device"))),
        None => Err(refuse(func, format_args!("{sgt:p} is not a live dma_alloc_noncontiguous table"))),
    }
}

/// `dma_alloc_noncontiguous`: `size` bytes of cached, zeroed memory, owned by the CPU,
/// that the device sees as one DMA segment: `sgt->nents` is 1 and `sg_dma_address(sgt->sgl)`
/// / `sg_dma_len(sgt->sgl)` give it. The table's `orig_nents` entries are the CPU pieces:
/// behind an IOMMU, scattered pages (`dma_vmap_noncontiguous` gives them one CPU range);
/// on the direct path, one contiguous block. Hand the memory over with
/// `dma_sync_sgtable_for_device` / `dma_sync_sgtable_for_cpu`.
///
/// Returns the table, or NULL for a NULL device, size 0 or above 4 GiB, `DMA_NONE` or an
/// invalid direction, zone flags, `__GFP_COMP` or unknown bits in `gfp`, attrs other
/// than `DMA_ATTR_ALLOC_SINGLE_PAGES` and `DMA_ATTR_NO_WARN`, or no memory or address
/// space left.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_alloc_noncontiguous(
    dev: *mut device,
    size: usize,
    dir: DmaDataDirection,
    gfp: gfp_t,
    attrs: c_ulong,
) -> *mut sg_table {
    c_call!(null, {
        const F: &str = "dma_alloc_noncontiguous";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let (dir, g, a) = (direction(F, dir)?, self::gfp(F, gfp)?, self::attrs(F, attrs)?);
        if u32::try_from(size).is_err() {
            return Err(refuse(F, format_args!("size {size} does not fit a scatterlist entry")));
        }
        let mut sgt = d.dev.alloc_noncontiguous(size, dir, g, a)?;
        let c = sg_table {
            sgl: sgt.sgl.as_mut_ptr().cast(),
            nents: sgt.nents as c_uint,
            orig_nents: sgt.sgl.len() as c_uint,
        };
        // INVARIANT: `c` describes `sgt`'s entries, which move with the Vec's buffer, not
        // with the Vec, so boxing keeps `c.sgl` valid.
        let p = Box::into_raw(Box::new(NcTable { c, sgt }));
        let size = page_align(size).unwrap_or(size);
        live().insert(p as usize, Live { dev: Arc::downgrade(&d.dev), size, vmaps: Vec::new() });
        Ok(p.cast::<sg_table>())
    })
}

/// `dma_free_noncontiguous`: frees what `dma_alloc_noncontiguous` returned; pass the same
/// size and direction. NULL `sgt` is a no-op. A table this library did not return (or
/// already freed), another device's table, a different size, or a table with a live
/// `dma_vmap_noncontiguous` is refused with a message and nothing is freed.
///
/// # Safety
///
/// `dev` is NULL or a live device; if `sgt` is a live table of this device, nothing uses
/// it or its memory afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_free_noncontiguous(
    dev: *mut device,
    size: usize,
    sgt: *mut sg_table,
    dir: DmaDataDirection,
) {
    c_call!(nothing, {
        const F: &str = "dma_free_noncontiguous";
        if sgt.is_null() {
            return Ok(());
        }
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let dir = direction(F, dir)?;
        let mut tables = live();
        let l = find(F, &mut tables, &d.dev, sgt)?;
        if page_align(size) != Some(l.size) {
            return Err(refuse(F, format_args!("size {size} is not the allocation's ({} bytes)", l.size)));
        }
        if !l.vmaps.is_empty() {
            return Err(refuse(F, format_args!("{sgt:p} is still vmapped; dma_vunmap_noncontiguous it first")));
        }
        tables.remove(&(sgt as usize));
        // SAFETY: `sgt` is registered, so it came from `Box::into_raw` in
        // `dma_alloc_noncontiguous`; unregistered now, it is freed once.
        let nc = unsafe { Box::from_raw(sgt.cast::<NcTable>()) };
        // SAFETY: the table, size and device match a live allocation with no vmap; the
        // caller no longer uses its memory.
        unsafe { d.dev.free_noncontiguous(size, nc.sgt, dir) };
        Ok(())
    })
}

/// `dma_vmap_noncontiguous`: one virtually contiguous, cached CPU mapping of the first
/// `size` bytes of a `dma_alloc_noncontiguous` table (on the direct path, the block's own
/// address). Returns it, or NULL for a NULL device, a table this library did not return
/// for this device, size 0 or beyond the allocation, or no address space left. Undo with
/// `dma_vunmap_noncontiguous` before the free.
///
/// # Safety
///
/// `dev` is NULL or a live device; `sgt` is NULL or a table nothing frees during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_vmap_noncontiguous(dev: *mut device, size: usize, sgt: *mut sg_table) -> *mut c_void {
    boundary!(null, {
        const F: &str = "dma_vmap_noncontiguous";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let mut tables = live();
        let l = find(F, &mut tables, &d.dev, sgt)?;
        if size == 0 || page_align(size).is_none_or(|s| s > l.size) {
            return Err(refuse(F, format_args!("size {size} is not within the allocation ({} bytes)", l.size)));
        }
        // SAFETY: `sgt` is registered, so it points to a live `NcTable`; the lock keeps it
        // from being freed during the call.
        let nc = unsafe { &*sgt.cast::<NcTable>() };
        let v = d.dev.vmap_noncontiguous(size, &nc.sgt)?;
        l.vmaps.push(v.as_ptr() as usize);
        Ok(v.as_ptr().cast())
    })
}

/// `dma_vunmap_noncontiguous`: ends a `dma_vmap_noncontiguous` mapping. NULL `vaddr` is a
/// no-op; an address that is not a live vmap of this device is refused with a message.
///
/// # Safety
///
/// `dev` is NULL or a live device; nothing uses the mapping afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_vunmap_noncontiguous(dev: *mut device, vaddr: *mut c_void) {
    boundary!(nothing, {
        const F: &str = "dma_vunmap_noncontiguous";
        if vaddr.is_null() {
            return Ok(());
        }
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let me = Arc::downgrade(&d.dev);
        let mut tables = live();
        let found = tables.values_mut().filter(|l| Weak::ptr_eq(&l.dev, &me)).find_map(|l| {
            let i = l.vmaps.iter().position(|&v| v == vaddr as usize)?;
            Some(l.vmaps.swap_remove(i))
        });
        if found.is_none() {
            return Err(refuse(F, format_args!("{vaddr:p} is not a live vmap of this device")));
        }
        // SAFETY: `vaddr` was a registered vmap of this device, now unregistered; the
        // caller no longer uses it. (A repeated direct-path vmap is the block's address:
        // dma-core's vunmap of it is a no-op.)
        unsafe { d.dev.vunmap_noncontiguous(vaddr.cast()) };
        Ok(())
    })
}
