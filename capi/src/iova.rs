//! The two-step IOVA API (`include/linux/dma-mapping.h`, Linux 6.16): IOVA space first,
//! then physical ranges linked into it at offsets the driver picks.
//!
//! `dma_iova_try_alloc` returns false (and zeroes the state) for a device that is not
//! behind an IOMMU domain: the driver then maps each range with `dma_map_page` /
//! `dma_map_single`. `dma_use_iova` is a `static inline` in the header, as in the kernel.
//! `int` calls return `-EINVAL` for NULL or bad arguments; `void` calls refuse them with a
//! message.

use std::ffi::{c_int, c_ulong};

use dma_core::{DmaAddr, Errno, IovaState, PhysAddr};

use crate::boundary::{attrs, direction, neg, nothing, refuse, zero};
use crate::dev::{device, to_dev};
use crate::types::{DmaDataDirection, dma_addr_t, phys_addr_t};

/// `struct dma_iova_state`: an IOVA range from `dma_iova_try_alloc`. `addr` is the bus
/// address of its first byte; `__size` is the size asked for, 0 when the state holds no
/// range (test it with `dma_use_iova`). Zero it, or let `dma_iova_try_alloc` fill it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dma_iova_state {
    /// The bus address of the range's first byte.
    pub addr: dma_addr_t,
    /// The size of the range; 0 when not in use (bit 63 is the kernel's "swiotlb used",
    /// never set here).
    pub __size: u64,
}

/// The state behind a C pointer, or `EINVAL` with a message.
///
/// # Safety
///
/// `p` is NULL or points to a `struct dma_iova_state`.
unsafe fn state(func: &str, p: *const dma_iova_state) -> Result<IovaState, Errno> {
    // SAFETY: forwarded from the caller.
    let s = unsafe { p.as_ref() }.ok_or_else(|| refuse(func, format_args!("NULL state")))?;
    IovaState::from_raw(DmaAddr(s.addr), s.__size).ok_or_else(|| {
        refuse(func, format_args!("state {:#x}+{:#x}: swiotlb bit set or range wraps", s.addr, s.__size))
    })
}

/// `dma_iova_try_alloc`: IOVA space for `size` bytes starting at `phys`'s offset within
/// the IOMMU granule. Returns true and fills `*state`; else false with `*state` zeroed (as
/// the kernel does, unlike other out-parameters here): the device is not behind an IOMMU
/// (or is in passthrough), `size` is 0, or no space is left under its mask. False, with a
/// message, for a NULL device or state.
///
/// # Safety
///
/// `dev` is NULL or a live device; `state` is NULL or points to a writable
/// `struct dma_iova_state`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_iova_try_alloc(
    dev: *mut device,
    state: *mut dma_iova_state,
    phys: phys_addr_t,
    size: usize,
) -> bool {
    boundary!(zero, {
        const F: &str = "dma_iova_try_alloc";
        // SAFETY: forwarded from the caller.
        let out = unsafe { state.as_mut() }.ok_or_else(|| refuse(F, format_args!("NULL state")))?;
        *out = dma_iova_state::default();
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        let mut s = IovaState::default();
        let ok = d.dev.iova_try_alloc(&mut s, PhysAddr(phys), size);
        *out = dma_iova_state { addr: s.addr.0, __size: s.size() };
        Ok(ok)
    })
}

/// `dma_iova_free`: returns the range of `state`, which must have nothing linked. A NULL
/// device or state, a state not in use, a range freed already or one with links left is
/// refused with a message; `*state` is not changed.
///
/// # Safety
///
/// `dev` is NULL or a live device; `state` is NULL or points to a `struct dma_iova_state`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_iova_free(dev: *mut device, state: *const dma_iova_state) {
    boundary!(nothing, {
        const F: &str = "dma_iova_free";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        // SAFETY: forwarded from the caller.
        let s = unsafe { self::state(F, state) }?;
        d.dev.iova_free(&s);
        Ok(())
    })
}

/// `dma_iova_link`: maps `[phys, phys + size)` at `state->addr + offset`, cleaning the CPU
/// caches first for a non-coherent device (not with `DMA_ATTR_SKIP_CPU_SYNC`;
/// `DMA_ATTR_MMIO` maps device registers and skips it too). Call `dma_iova_sync` after a
/// batch of links, before the device uses them.
///
/// Returns 0; `-EINVAL` for a NULL device or state, a state not in use, size 0, a range
/// past the end of the state's, `DMA_NONE` or an invalid direction, unknown attrs, `phys`
/// not platform RAM (without `DMA_ATTR_MMIO`), a bus address and `phys` that differ in
/// their offset within the granule, or a range linked already; `-EIO` (as the kernel)
/// for a `phys` inside a granule at an offset other than 0 (only the first link may start
/// inside one); `-ENOMEM` when page-table memory ran out.
///
/// # Safety
///
/// `dev` is NULL or a live device; `state` is NULL or points to a `struct dma_iova_state`;
/// the memory stays allocated until it is unlinked, and the CPU does not touch it while
/// the device owns it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_iova_link(
    dev: *mut device,
    state: *const dma_iova_state,
    phys: phys_addr_t,
    offset: usize,
    size: usize,
    dir: DmaDataDirection,
    attrs: c_ulong,
) -> c_int {
    c_call!(neg, {
        const F: &str = "dma_iova_link";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        // SAFETY: forwarded from the caller.
        let s = unsafe { self::state(F, state) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller.
        unsafe { d.dev.iova_link(&s, PhysAddr(phys), offset, size, dir, a) }?;
        Ok(0)
    })
}

/// `dma_iova_sync`: the IOTLB sync after a batch of links to `[offset, offset + size)`.
/// Returns 0, or `-EINVAL` for a NULL device or state, a state not in use, size 0 or a
/// range past the end of the state's.
///
/// # Safety
///
/// `dev` is NULL or a live device; `state` is NULL or points to a `struct dma_iova_state`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_iova_sync(
    dev: *mut device,
    state: *const dma_iova_state,
    offset: usize,
    size: usize,
) -> c_int {
    boundary!(neg, {
        const F: &str = "dma_iova_sync";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        // SAFETY: forwarded from the caller.
        let s = unsafe { self::state(F, state) }?;
        d.dev.iova_sync(&s, offset, size)?;
        Ok(0)
    })
}

/// `dma_iova_unlink`: unmaps what is linked in `[offset, offset + size)`, after making the
/// device's writes visible to the CPU on a non-coherent device (not with
/// `DMA_ATTR_SKIP_CPU_SYNC` or `DMA_ATTR_MMIO`). The IOVA space stays the state's. Bad
/// arguments are refused with a message.
///
/// # Safety
///
/// `dev` is NULL or a live device; `state` is NULL or points to a `struct dma_iova_state`;
/// the CPU holds no access into the memory during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_iova_unlink(
    dev: *mut device,
    state: *const dma_iova_state,
    offset: usize,
    size: usize,
    dir: DmaDataDirection,
    attrs: c_ulong,
) {
    c_call!(nothing, {
        const F: &str = "dma_iova_unlink";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        // SAFETY: forwarded from the caller.
        let s = unsafe { self::state(F, state) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller.
        unsafe { d.dev.iova_unlink(&s, offset, size, dir, a) };
        Ok(())
    })
}

/// `dma_iova_destroy`: `dma_iova_unlink` of `[0, mapped_len)`, which must hold every link,
/// then `dma_iova_free` (only the free when `mapped_len` is 0, after a first link failed).
///
/// # Safety
///
/// As `dma_iova_unlink`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_iova_destroy(
    dev: *mut device,
    state: *const dma_iova_state,
    mapped_len: usize,
    dir: DmaDataDirection,
    attrs: c_ulong,
) {
    c_call!(nothing, {
        const F: &str = "dma_iova_destroy";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        // SAFETY: forwarded from the caller.
        let s = unsafe { self::state(F, state) }?;
        let (dir, a) = (direction(F, dir)?, self::attrs(F, attrs)?);
        // SAFETY: forwarded from the caller.
        unsafe { d.dev.iova_destroy(&s, mapped_len, dir, a) };
        Ok(())
    })
}
