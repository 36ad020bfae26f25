//! The device's side of DMA from C: the simulated bus master reads and writes by bus
//! address through the device's translation and mask, seeing memory as the device
//! would (a non-coherent device sees only what was cleaned to memory). C tests and C
//! drivers' own device models use it to play the device.

use std::ffi::{c_int, c_void};

use dma_core::sim::Fault;
use dma_core::{DmaAddr, Errno, FaultKind};

use crate::boundary::{neg, refuse, zero};
use crate::dev::{device, to_dev};
use crate::types::{
    DMA_SIM_FAULT_NOT_MAPPED, DMA_SIM_FAULT_NOT_RAM, DMA_SIM_FAULT_OUTSIDE_MASK, DMA_SIM_FAULT_PERMISSION, dma_addr_t,
    dma_sim_fault,
};

fn faulted(_: Fault) -> Errno {
    Errno::EFAULT
}

/// Device read of `len` bytes at bus address `addr` into `buf`. Returns 0, `-EINVAL`
/// for a NULL device or buffer, or `-EFAULT` when the device may not read there
/// (outside its mask, no translation, not RAM, or `len` 0); the fault is recorded for
/// `dma_sim_last_fault` and `buf` is not written.
///
/// # Safety
///
/// `dev` is NULL or a live device; `buf` is NULL or writable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sim_read(dev: *mut device, addr: dma_addr_t, buf: *mut c_void, len: usize) -> c_int {
    c_call!(neg, {
        const F: &str = "dma_sim_read";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        if buf.is_null() {
            return Err(refuse(F, format_args!("NULL buffer")));
        }
        let mut tmp = vec![0u8; len];
        d.bus.read(DmaAddr(addr), &mut tmp).map_err(faulted)?;
        // SAFETY: `buf` is writable for `len` bytes (the caller's contract) and is not
        // `tmp`.
        unsafe { std::ptr::copy_nonoverlapping(tmp.as_ptr(), buf.cast::<u8>(), len) };
        Ok(0)
    })
}

/// Device write of `len` bytes from `buf` at bus address `addr`. Returns as
/// `dma_sim_read`; on a fault memory is not touched.
///
/// # Safety
///
/// `dev` is NULL or a live device; `buf` is NULL or readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sim_write(dev: *mut device, addr: dma_addr_t, buf: *const c_void, len: usize) -> c_int {
    c_call!(neg, {
        const F: &str = "dma_sim_write";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        if buf.is_null() {
            return Err(refuse(F, format_args!("NULL buffer")));
        }
        // Copy first: the device's write must not alias a view of the memory it writes.
        // SAFETY: `buf` is readable for `len` bytes (the caller's contract).
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }.to_vec();
        d.bus.write(DmaAddr(addr), &data).map_err(faulted)?;
        Ok(0)
    })
}

/// The number of accesses the device's bus master has refused so far (0 for NULL).
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sim_nr_faults(dev: *mut device) -> usize {
    // SAFETY: forwarded from the caller.
    boundary!(zero, Ok(unsafe { to_dev("dma_sim_nr_faults", dev) }?.bus.faults().len()))
}

/// Writes the most recent refused access to `*out`. Returns 0, `-ENOENT` when there has
/// been none (`*out` untouched), or `-EINVAL` for a NULL argument.
///
/// # Safety
///
/// `dev` is NULL or a live device; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_sim_last_fault(dev: *mut device, out: *mut dma_sim_fault) -> c_int {
    boundary!(neg, {
        const F: &str = "dma_sim_last_fault";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev(F, dev) }?;
        if out.is_null() {
            return Err(refuse(F, format_args!("NULL out")));
        }
        let f = d.bus.faults().last().copied().ok_or(Errno::from_raw(libc::ENOENT))?;
        let kind = match f.kind {
            FaultKind::OutsideMask => DMA_SIM_FAULT_OUTSIDE_MASK,
            FaultKind::NotMapped => DMA_SIM_FAULT_NOT_MAPPED,
            FaultKind::Permission => DMA_SIM_FAULT_PERMISSION,
            FaultKind::NotRam => DMA_SIM_FAULT_NOT_RAM,
        };
        // SAFETY: `out` is non-null and writable (the caller's contract).
        unsafe { out.write(dma_sim_fault { addr: f.addr.0, len: f.len, kind, write: f.write }) };
        Ok(0)
    })
}
