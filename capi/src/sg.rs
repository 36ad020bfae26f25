//! Scatter-gather: mapping, unmapping and syncing lists and tables, the table
//! allocator, and `dma_get_sgtable_attrs` (`include/linux/scatterlist.h`,
//! `kernel/dma/mapping.c`).
//!
//! `struct scatterlist` has dma-core's layout, so the C array is handed over in place.
//! Unmap and sync calls take the original entry count (`orig_nents`), not the count the
//! map call returned, as in the kernel.

use std::ffi::{c_int, c_uint, c_ulong, c_void};

use dma_core::{DmaAddr, Errno, Page, Scatterlist, page_align};

use crate::boundary::{attrs, direction, gfp, neg, nothing, refuse, zero};
use crate::dev::{device, to_dev};
use crate::types::{DmaDataDirection, dma_addr_t, gfp_t, scatterlist, sg_table};

/// The C array as dma-core's entries.
///
/// # Safety
///
/// `sg` is NULL or points to `nents` entries, valid for reads and writes and not
/// otherwise referenced for `'a`.
unsafe fn entries<'a>(func: &str, sg: *mut scatterlist, nents: c_int) -> Result<&'a mut [Scatterlist], Errno> {
    if sg.is_null() || nents <= 0 {
        return Err(refuse(func, format_args!("no entries ({sg:p}, nents {nents})")));
    }
    // SAFETY: `scatterlist` has the layout of `Scatterlist` (asserted in `types`); the
    // caller guarantees `nents` valid entries.
    Ok(unsafe { std::slice::from_raw_parts_mut(sg.cast::<Scatterlist>(), nents as usize) })
}

/// The entries of a table (`orig_nents` of them).
///
/// # Safety
///
/// `sgt` is NULL or a valid table whose `sgl` holds `orig_nents` entries.
unsafe fn table<'a>(func: &str, sgt: *mut sg_table) -> Result<(&'a mut sg_table, &'a mut [Scatterlist]), Errno> {
    // SAFETY: forwarded from the caller.
    let t = unsafe { sgt.as_mut() }.ok_or_else(|| refuse(func, format_args!("NULL sg_table")))?;
    let n = c_int::try_from(t.orig_nents)
        .map_err(|_| refuse(func, format_args!("orig_nents {} too large", t.orig_nents)))?;
    // SAFETY: forwarded from the caller.
    let e = unsafe { entries(func, t.sgl, n) }?;
    Ok((t, e))
}

/// `dma_map_sg_attrs`: maps `nents` entries; returns the number of DMA segments (their
/// `sg_dma_address` / `sg_dma_len` are filled), or 0 on any error (NULL device or list,
/// `nents` ≤ 0, a zero-length entry, `DMA_NONE`, unknown attrs, no bounce space). On
/// error nothing stays mapped.
///
/// # Safety
///
/// `dev` is NULL or a live device; `sg` is NULL or points to `nents` entries whose CPU
/// ranges stay valid until the unmap and are not touched by the CPU while the device
/// owns them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_map_sg_attrs(
    dev: *mut device,
    sg: *mut scatterlist,
    nents: c_int,
    dir: DmaDataDirection,
    attrs: c_ulong,
) -> c_uint {
    c_call!(zero, {
        const F: &str = "dma_map_sg_attrs";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller.
        let e = unsafe { entries(F, sg, nents) }?;
        // SAFETY: forwarded from the caller.
        Ok(unsafe { d.dev.map_sg(e, dir, a) }? as c_uint)
    })
}

/// `dma_unmap_sg_attrs`: pass the `nents` given to the map call, not its result.
///
/// # Safety
///
/// `dev` is NULL or a live device; `sg` is NULL or the list of a live `dma_map_sg_attrs`
/// with the same `nents`; the CPU holds no access into it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_unmap_sg_attrs(
    dev: *mut device,
    sg: *mut scatterlist,
    nents: c_int,
    dir: DmaDataDirection,
    attrs: c_ulong,
) {
    c_call!(nothing, {
        const F: &str = "dma_unmap_sg_attrs";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller.
        let e = unsafe { entries(F, sg, nents) }?;
        // SAFETY: forwarded from the caller.
        unsafe { d.dev.unmap_sg(e, dir, a) };
        Ok(())
    })
}

/// `dma_map_sgtable`: maps `sgt->orig_nents` entries and sets `sgt->nents`. Returns 0,
/// `-EINVAL` (bad arguments), `-ENOMEM` (bounce pool full, a retry may help) or `-EIO`
/// (memory out of the device's reach).
///
/// # Safety
///
/// `dev` is NULL or a live device; `sgt` is NULL or a valid table, with CPU ranges as
/// for `dma_map_sg_attrs`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_map_sgtable(
    dev: *mut device,
    sgt: *mut sg_table,
    dir: DmaDataDirection,
    attrs: c_ulong,
) -> c_int {
    c_call!(neg, {
        const F: &str = "dma_map_sgtable";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller.
        let (t, e) = unsafe { table(F, sgt) }?;
        // SAFETY: forwarded from the caller.
        let n = unsafe { d.dev.map_sg(e, dir, a) }?;
        t.nents = n as c_uint;
        Ok(0)
    })
}

/// `dma_unmap_sgtable`: unmaps `sgt->orig_nents` entries.
///
/// # Safety
///
/// As `dma_unmap_sg_attrs`, for the table's entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_unmap_sgtable(
    dev: *mut device,
    sgt: *mut sg_table,
    dir: DmaDataDirection,
    attrs: c_ulong,
) {
    c_call!(nothing, {
        const F: &str = "dma_unmap_sgtable";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller.
        let (_, e) = unsafe { table(F, sgt) }?;
        // SAFETY: forwarded from the caller.
        unsafe { d.dev.unmap_sg(e, dir, a) };
        Ok(())
    })
}

/// # Safety
///
/// As the exports'.
unsafe fn sync(
    func: &str,
    dev: *mut device,
    e: Result<&mut [Scatterlist], Errno>,
    dir: DmaDataDirection,
    for_device: bool,
) -> Result<(), Errno> {
    // SAFETY: forwarded from the caller.
    let d = unsafe { to_dev(func, dev) }?;
    let dir = direction(func, dir)?;
    let e = e?;
    // SAFETY: forwarded from the caller.
    unsafe { if for_device { d.dev.sync_sg_for_device(e, dir) } else { d.dev.sync_sg_for_cpu(e, dir) } }
    Ok(())
}

/// `dma_sync_sg_for_cpu`: pass the `nents` given to the map call.
///
/// # Safety
///
/// `dev` is NULL or a live device; `sg` is NULL or the list of a live mapping with
/// `nelems` entries; the CPU holds no access into it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sync_sg_for_cpu(
    dev: *mut device,
    sg: *mut scatterlist,
    nelems: c_int,
    dir: DmaDataDirection,
) {
    const F: &str = "dma_sync_sg_for_cpu";
    // SAFETY: forwarded from the caller.
    c_call!(nothing, unsafe { sync(F, dev, entries(F, sg, nelems), dir, false) })
}

/// `dma_sync_sg_for_device`: pass the `nents` given to the map call.
///
/// # Safety
///
/// As `dma_sync_sg_for_cpu`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sync_sg_for_device(
    dev: *mut device,
    sg: *mut scatterlist,
    nelems: c_int,
    dir: DmaDataDirection,
) {
    const F: &str = "dma_sync_sg_for_device";
    // SAFETY: forwarded from the caller.
    c_call!(nothing, unsafe { sync(F, dev, entries(F, sg, nelems), dir, true) })
}

/// `dma_sync_sgtable_for_cpu`: syncs `sgt->orig_nents` entries.
///
/// # Safety
///
/// As `dma_sync_sg_for_cpu`, for the table's entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sync_sgtable_for_cpu(dev: *mut device, sgt: *mut sg_table, dir: DmaDataDirection) {
    const F: &str = "dma_sync_sgtable_for_cpu";
    // SAFETY: forwarded from the caller.
    c_call!(nothing, unsafe { sync(F, dev, table(F, sgt).map(|(_, e)| e), dir, false) })
}

/// `dma_sync_sgtable_for_device`: syncs `sgt->orig_nents` entries.
///
/// # Safety
///
/// As `dma_sync_sg_for_cpu`, for the table's entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sync_sgtable_for_device(dev: *mut device, sgt: *mut sg_table, dir: DmaDataDirection) {
    const F: &str = "dma_sync_sgtable_for_device";
    // SAFETY: forwarded from the caller.
    c_call!(nothing, unsafe { sync(F, dev, table(F, sgt).map(|(_, e)| e), dir, true) })
}

/// `sg_alloc_table`: a table of `nents` zeroed entries. Returns 0, or `-EINVAL` for a
/// NULL table, 0 entries or unknown `gfp` bits (`*sgt` is written only on success).
/// Free it with `sg_free_table`.
///
/// # Safety
///
/// `sgt` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sg_alloc_table(sgt: *mut sg_table, nents: c_uint, gfp_mask: gfp_t) -> c_int {
    boundary!(neg, {
        const F: &str = "sg_alloc_table";
        gfp(F, gfp_mask)?;
        if sgt.is_null() || nents == 0 || c_int::try_from(nents).is_err() {
            return Err(refuse(F, format_args!("NULL table or bad nents {nents}")));
        }
        let zeroed = scatterlist { cpu_addr: std::ptr::null_mut(), length: 0, dma_length: 0, dma_address: 0 };
        let sgl = Box::into_raw(vec![zeroed; nents as usize].into_boxed_slice()).cast::<scatterlist>();
        // SAFETY: `sgt` is non-null and writable (the caller's contract).
        unsafe { sgt.write(sg_table { sgl, nents, orig_nents: nents }) };
        Ok(0)
    })
}

/// `sg_free_table`: frees the entries of a table from `sg_alloc_table` (or
/// `dma_get_sgtable_attrs`) and clears it. NULL, or a table with NULL `sgl`, is a no-op.
///
/// # Safety
///
/// `sgt` is NULL or a table whose `sgl` is NULL or came from `sg_alloc_table` with
/// `orig_nents` unchanged; nothing uses the entries afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sg_free_table(sgt: *mut sg_table) {
    boundary!(nothing, {
        // SAFETY: forwarded from the caller.
        let Some(t) = (unsafe { sgt.as_mut() }) else { return Ok(()) };
        if !t.sgl.is_null() {
            let all = std::ptr::slice_from_raw_parts_mut(t.sgl, t.orig_nents as usize);
            // SAFETY: `sgl` came from `Box::into_raw` of `orig_nents` entries in
            // `sg_alloc_table` and is freed once (the caller's contract).
            drop(unsafe { Box::from_raw(all) });
        }
        *t = sg_table { sgl: std::ptr::null_mut(), nents: 0, orig_nents: 0 };
        Ok(())
    })
}

/// `dma_get_sgtable_attrs`: describes a `dma_alloc_attrs` buffer as a one-entry table
/// (allocated here; free it with `sg_free_table`) whose entry holds the buffer's pages
/// through their cached CPU address and `PAGE_ALIGN(size)` bytes. The kernel calls this
/// "fundamentally unsafe": streaming such a table on a non-coherent device maintains the
/// cached alias, not the uncached one the buffer was used through.
///
/// Returns 0, `-EINVAL` for a NULL device or table, size 0 or over 4 GiB, unknown attrs
/// or a CPU address that is not the buffer at `dma_addr`, or `-ENXIO` when `dma_addr` is
/// not RAM of this device. `*sgt` is written only on success.
///
/// # Safety
///
/// `dev` is NULL or a live device; `sgt` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_get_sgtable_attrs(
    dev: *mut device,
    sgt: *mut sg_table,
    cpu_addr: *mut c_void,
    dma_addr: dma_addr_t,
    size: usize,
    attrs: c_ulong,
) -> c_int {
    boundary!(neg, {
        const F: &str = "dma_get_sgtable_attrs";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        self::attrs(F, attrs)?;
        if sgt.is_null() {
            return Err(refuse(F, format_args!("NULL sg_table")));
        }
        let len = page_align(size).filter(|&l| l != 0).and_then(|l| c_uint::try_from(l).ok());
        let len = len.ok_or_else(|| refuse(F, format_args!("bad size {size}")))?;
        let sys = d.dev.system();
        let phys = d.dev.dma_to_phys(DmaAddr(dma_addr)).ok_or(Errno::ENXIO)?;
        let first = sys.page_address(Page(phys.pfn()));
        let cpu = first.wrapping_add(phys.page_offset());
        if first.is_null() || sys.virt_to_phys(cpu.wrapping_add(len as usize - 1)).is_none() {
            return Err(Errno::ENXIO);
        }
        if let Some(p) = sys.virt_to_phys(cpu_addr.cast()) {
            if p != phys {
                return Err(refuse(F, format_args!("{cpu_addr:p} is not the buffer at {dma_addr:#x}")));
            }
        }
        let entry = scatterlist { cpu_addr: cpu.cast(), length: len, dma_length: 0, dma_address: 0 };
        let sgl = Box::into_raw(vec![entry].into_boxed_slice()).cast::<scatterlist>();
        // SAFETY: `sgt` is non-null and writable (the caller's contract).
        unsafe { sgt.write(sg_table { sgl, nents: 1, orig_nents: 1 }) };
        Ok(0)
    })
}
