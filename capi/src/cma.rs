//! Contiguous memory areas from C (`kernel/dma/contiguous.c`): the default area comes
//! from `cma=SIZE[@BASE][-LIMIT]` in the options, a device's own area from `cma_size` in
//! `struct dma_device_config`; `dma_alloc_*` use them as the kernel does. This file
//! reads their statistics, as `/proc/meminfo`'s `CmaTotal` / `CmaFree` do per area.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int};

use dma_core::{CmaAreaStats, Errno};

use crate::boundary::{neg, refuse};
use crate::dev::device;
use crate::system::system;
use crate::types::phys_addr_t;

/// Bytes of `dma_cma_stats.name`, NUL included.
pub const DMA_CMA_NAME_LEN: usize = 32;

/// A snapshot of one contiguous area (`dma_cma_get_stats`). Counts are in pages of
/// `DMA_PAGE_SIZE` bytes: `CmaTotal` is `total_pages * DMA_PAGE_SIZE`, `CmaFree` is
/// `free_pages * DMA_PAGE_SIZE`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dma_cma_stats {
    /// The area's name: `"reserved"` for the default area, else the device's name
    /// (truncated, NUL-terminated).
    pub name: [c_char; DMA_CMA_NAME_LEN],
    /// First physical address of the area.
    pub base: phys_addr_t,
    /// Pages in the area.
    pub total_pages: u64,
    /// Pages not allocated now.
    pub free_pages: u64,
    /// Longest run of free pages (ignoring alignment).
    pub largest_free_pages: u64,
    /// Successful allocations so far.
    pub allocations: u64,
    /// Allocations the area could not satisfy (the caller then fell back, or failed).
    pub failures: u64,
    /// Releases so far.
    pub releases: u64,
}

fn to_c(s: &CmaAreaStats) -> dma_cma_stats {
    let mut name = [0 as c_char; DMA_CMA_NAME_LEN];
    for (d, b) in name.iter_mut().zip(s.name.bytes().take(DMA_CMA_NAME_LEN - 1)) {
        *d = b as c_char;
    }
    dma_cma_stats {
        name,
        base: s.base.0,
        total_pages: s.stats.total_pages,
        free_pages: s.stats.free_pages,
        largest_free_pages: s.stats.largest_free_run,
        allocations: s.stats.allocations,
        failures: s.stats.failures,
        releases: s.stats.releases,
    }
}

/// Fills `*out` with the statistics of `dev`'s own contiguous area, or of the default
/// area (`cma=` in the options) when `dev` is NULL. Returns 0, `-EINVAL` for a NULL
/// `out`, `-ENOENT` when there is no such area, or the error building the system failed
/// with. `*out` is written only on success.
///
/// # Safety
///
/// `dev` is NULL or a live device; `out` is NULL or writable for one
/// `struct dma_cma_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_cma_get_stats(dev: *const device, out: *mut dma_cma_stats) -> c_int {
    boundary!(neg, {
        if out.is_null() {
            return Err(refuse("dma_cma_get_stats", format_args!("NULL out")));
        }
        // SAFETY: the caller passes NULL or a live device.
        let s = match unsafe { dev.as_ref() } {
            Some(d) => d.dev.cma_stats(),
            None => system()?.cma_stats(),
        };
        let s = s.ok_or(Errno::from_raw(libc::ENOENT))?;
        // SAFETY: `out` is non-null and writable (the caller's contract).
        unsafe { out.write(to_c(&s)) };
        Ok(0)
    })
}
