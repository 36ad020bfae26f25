//! IOMMU domains from C (`struct iommu_domain` and the IOMMU DMA layer of
//! `drivers/iommu/dma-iommu.c`, as built by dma-iommu).
//!
//! A domain is one IOVA space with its page table. A device created with
//! `dma_device_config.iommu` set is attached to it: every allocation, mapping, sync and
//! `dma_sim_*` access of that device goes through the domain's page table, so memory
//! anywhere in RAM reaches a device with a small mask without bouncing, scatter-gather
//! lists merge into fewer DMA segments, and an access the page table does not allow
//! faults. Several devices may share one domain.
#![allow(non_camel_case_types)]

use std::ffi::{c_int, c_uint};
use std::sync::Arc;

use dma_core::{DmaAddr, Errno};
use dma_iommu::{Domain, DomainConfig};

use crate::boundary::{neg, nothing, null, refuse, zero};
use crate::system::system;
use crate::types::{dma_addr_t, phys_addr_t};

/// Invalidation policy from the options (`iommu.strict=`; strict when unset).
pub const DMA_IOMMU_FLUSH_DEFAULT: c_uint = 0;
/// Every unmap invalidates the IOTLB and frees its IOVA at once (`iommu.strict=1`).
pub const DMA_IOMMU_FLUSH_STRICT: c_uint = 1;
/// Unmapped IOVAs wait in a flush queue for a batched invalidation (`iommu.strict=0`).
pub const DMA_IOMMU_FLUSH_LAZY: c_uint = 2;

/// An IOVA range never handed out (an MSI doorbell, a PCI window): `[first, last]`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dma_iommu_region {
    /// First IOVA of the range.
    pub first: dma_addr_t,
    /// Last IOVA of the range (inclusive).
    pub last: dma_addr_t,
}

/// How to create a domain. A zeroed config (or NULL) is the default domain: the whole
/// 48-bit IOVA space except page 0, the invalidation policy of the options, nothing
/// reserved.
///
/// Layout (part of the ABI): the fields in the order below; new fields are only ever
/// added at the end, so a zeroed config keeps its meaning.
#[repr(C)]
#[derive(Debug)]
pub struct dma_iommu_domain_config {
    /// First IOVA of the aperture (page 0 is never handed out).
    pub aperture_start: dma_addr_t,
    /// Last IOVA of the aperture (inclusive); 0 means the top of the 48-bit space.
    pub aperture_end: dma_addr_t,
    /// One of `DMA_IOMMU_FLUSH_*`.
    pub flush: c_uint,
    /// Ranges never handed out, `nr_reserved` of them; NULL / 0 for none.
    pub reserved: *const dma_iommu_region,
    /// Number of ranges at `reserved`.
    pub nr_reserved: usize,
}

/// A snapshot of a domain (`dma_iommu_domain_get_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dma_iommu_domain_stats {
    /// Bytes mapped in the page table now.
    pub mapped_bytes: u64,
    /// IOTLB invalidations so far (one per unmap when strict, one per batch when lazy).
    pub iotlb_flushes: u64,
    /// Unmapped IOVA ranges waiting for an invalidation (lazy only).
    pub fq_pending: u64,
    /// IOVA ranges allocated now, including reserved ones and those the caches hold.
    pub iova_ranges: u64,
    /// IOVA ranges held by the per-CPU range caches.
    pub iova_cached: u64,
    /// True when every unmap invalidates at once.
    pub strict: bool,
    /// Page-table pages in use, the root included.
    pub pgtable_pages: u64,
    /// Device accesses that reached an unmapped IOVA through an IOTLB entry a lazy domain
    /// had not invalidated yet: use after unmap that hardware would not catch.
    pub iotlb_stale_hits: u64,
}

/// A domain as C holds it. C sees an opaque `struct dma_iommu_domain *`.
#[derive(Debug)]
pub struct dma_iommu_domain {
    pub(crate) domain: Arc<Domain>,
}

/// The domain behind a C pointer, or `EINVAL` (with a message naming `func`) for NULL.
///
/// # Safety
///
/// `p` is NULL or a live pointer from `dma_iommu_domain_create`.
pub(crate) unsafe fn to_domain<'a>(func: &str, p: *const dma_iommu_domain) -> Result<&'a Arc<Domain>, Errno> {
    // SAFETY: forwarded from the caller.
    unsafe { p.as_ref() }.map(|d| &d.domain).ok_or_else(|| refuse(func, format_args!("NULL domain")))
}

/// Creates an IOMMU domain on the system (built from `$DMA_OPTS` if nothing built it
/// yet). NULL `config` means the defaults. Returns NULL for an aperture that holds no
/// whole page above page 0 or reaches past the 48-bit IOVA space, an unknown `flush`
/// value, or a NULL `reserved` with `nr_reserved` > 0 (the reason is printed). With
/// `iommu.passthrough=1` in the options, devices created with the domain stay on the
/// direct path, as in the kernel.
///
/// # Safety
///
/// `config` is NULL or points to a valid `struct dma_iommu_domain_config` whose
/// `reserved` points to `nr_reserved` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_iommu_domain_create(config: *const dma_iommu_domain_config) -> *mut dma_iommu_domain {
    boundary!(null, {
        const F: &str = "dma_iommu_domain_create";
        let mut cfg = DomainConfig::default();
        // SAFETY: the caller passes NULL or a valid config.
        if let Some(c) = unsafe { config.as_ref() } {
            let end = if c.aperture_end == 0 { cfg.aperture_end } else { c.aperture_end };
            cfg = cfg.aperture(c.aperture_start, end);
            cfg = match c.flush {
                DMA_IOMMU_FLUSH_DEFAULT => cfg,
                DMA_IOMMU_FLUSH_STRICT => cfg.strict(true),
                DMA_IOMMU_FLUSH_LAZY => cfg.strict(false),
                f => return Err(refuse(F, format_args!("unknown flush policy {f}"))),
            };
            if c.nr_reserved != 0 {
                if c.reserved.is_null() {
                    return Err(refuse(F, format_args!("NULL reserved with {} ranges", c.nr_reserved)));
                }
                // SAFETY: the caller passes `nr_reserved` entries at `reserved`.
                let ranges = unsafe { std::slice::from_raw_parts(c.reserved, c.nr_reserved) };
                for r in ranges {
                    if r.first > r.last {
                        return Err(refuse(F, format_args!("reserved range {:#x}..{:#x} is empty", r.first, r.last)));
                    }
                    cfg = cfg.reserve(r.first, r.last);
                }
            }
        }
        let (start, end) = (cfg.aperture_start, cfg.aperture_end);
        let domain = Domain::with_config(system()?, cfg)
            .map_err(|e| refuse(F, format_args!("aperture {start:#x}..={end:#x}: {e}")))?;
        Ok(Box::into_raw(Box::new(dma_iommu_domain { domain })))
    })
}

/// Destroys the caller's handle of a domain. NULL is a no-op. Devices attached to it
/// keep it alive until the last of them is destroyed, so this may come before or after
/// their `dma_device_destroy`; no new device can be attached through this handle.
///
/// # Safety
///
/// `domain` is NULL or a pointer from `dma_iommu_domain_create` not destroyed before;
/// nothing uses it afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_iommu_domain_destroy(domain: *mut dma_iommu_domain) {
    boundary!(nothing, {
        if !domain.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` in `dma_iommu_domain_create`
            // and is destroyed once (the caller's contract).
            drop(unsafe { Box::from_raw(domain) });
        }
        Ok(())
    })
}

/// Fills `*out` with the domain's counters. Returns 0, or `-EINVAL` for a NULL argument
/// (`*out` untouched).
///
/// # Safety
///
/// `domain` is NULL or a live domain; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_iommu_domain_get_stats(
    domain: *const dma_iommu_domain,
    out: *mut dma_iommu_domain_stats,
) -> c_int {
    boundary!(neg, {
        const F: &str = "dma_iommu_domain_get_stats";
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_domain(F, domain) }?;
        if out.is_null() {
            return Err(refuse(F, format_args!("NULL out")));
        }
        let s = d.stats();
        let st = dma_iommu_domain_stats {
            mapped_bytes: s.mapped_bytes,
            iotlb_flushes: s.iotlb_flushes,
            fq_pending: s.fq_pending as u64,
            iova_ranges: s.iova.ranges as u64,
            iova_cached: s.iova.cached as u64,
            strict: d.is_strict(),
            pgtable_pages: s.pgtable_pages as u64,
            iotlb_stale_hits: s.iotlb_stale_hits,
        };
        // SAFETY: `out` is non-null and writable (the caller's contract).
        unsafe { out.write(st) };
        Ok(0)
    })
}

/// `iommu_iova_to_phys`: the physical address `iova` translates to, or 0 when it is not
/// mapped (or `domain` is NULL).
///
/// # Safety
///
/// `domain` is NULL or a live domain.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_iommu_iova_to_phys(domain: *const dma_iommu_domain, iova: dma_addr_t) -> phys_addr_t {
    boundary!(zero, {
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_domain("dma_iommu_iova_to_phys", domain) }?;
        Ok(d.iova_to_phys(DmaAddr(iova)).map_or(0, |p| p.0))
    })
}

/// `iommu_flush_iotlb_all`: in lazy mode, invalidates now and frees every IOVA waiting
/// in the flush queue; in strict mode, one more invalidation. NULL is refused with a
/// message.
///
/// # Safety
///
/// `domain` is NULL or a live domain.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_iommu_flush_iotlb_all(domain: *mut dma_iommu_domain) {
    boundary!(nothing, {
        // SAFETY: forwarded from the caller.
        unsafe { to_domain("dma_iommu_flush_iotlb_all", domain) }?.flush_iotlb_all();
        Ok(())
    })
}
