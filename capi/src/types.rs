//! The C types and constants of `<dma-mapping.h>`, named as C sees them.
//!
//! Every `#[repr(C)]` struct here is part of the ABI. `struct scatterlist` has the layout
//! of [`dma_core::Scatterlist`] (checked at compile time below), so an array of them is
//! handed to dma-core as it is, without copying.
//!
//! `enum dma_data_direction`, `DMA_BIT_MASK` and `DMA_MAPPING_ERROR` are written in C in
//! `capi/cbindgen/prelude.h`: the functions take the enum as a plain `u32` on the Rust
//! side ([`DmaDataDirection`]), because a C caller may pass any value and a Rust enum
//! must never hold one it does not list.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_uint, c_ulong, c_void};
use std::mem::{align_of, offset_of, size_of};

/// A bus address as the device sees it (64-bit on every target).
pub type dma_addr_t = u64;

/// A CPU physical address (64-bit on every target).
pub type phys_addr_t = u64;

/// Allocation flags (`GFP_*`).
pub type gfp_t = c_uint;

/// `enum dma_data_direction` (the header names the enum; Rust reads the raw value).
pub type DmaDataDirection = c_uint;

/// Reads and writes may pass each other (e.g. PCIe relaxed ordering).
pub const DMA_ATTR_WEAK_ORDERING: c_ulong = 1 << 1;
/// Writes may be buffered (write-combining CPU mapping).
pub const DMA_ATTR_WRITE_COMBINE: c_ulong = 1 << 2;
/// Cached memory whose ownership moves with `dma_sync_*` (the seed API; prefer
/// `dma_alloc_noncoherent`).
pub const DMA_ATTR_NON_CONSISTENT: c_ulong = 1 << 3;
/// No CPU mapping: the returned pointer is a cookie for free and mmap only.
pub const DMA_ATTR_NO_KERNEL_MAPPING: c_ulong = 1 << 4;
/// Skip cache maintenance on map and unmap.
pub const DMA_ATTR_SKIP_CPU_SYNC: c_ulong = 1 << 5;
/// Physically contiguous even behind an IOMMU.
pub const DMA_ATTR_FORCE_CONTIGUOUS: c_ulong = 1 << 6;
/// Hint: do not try high-order pages.
pub const DMA_ATTR_ALLOC_SINGLE_PAGES: c_ulong = 1 << 7;
/// No message on allocation or bounce failure.
pub const DMA_ATTR_NO_WARN: c_ulong = 1 << 8;
/// Accessible only at elevated privilege.
pub const DMA_ATTR_PRIVILEGED: c_ulong = 1 << 9;
/// The address is MMIO, not RAM: no cache maintenance, no bouncing.
pub const DMA_ATTR_MMIO: c_ulong = 1 << 10;
/// The driver will not dirty cache lines shared by small buffers.
pub const DMA_ATTR_DEBUGGING_IGNORE_CACHELINES: c_ulong = 1 << 11;
/// Fail where bouncing or cache maintenance would be needed.
pub const DMA_ATTR_REQUIRE_COHERENT: c_ulong = 1 << 12;

/// From ZONE_DMA.
pub const __GFP_DMA: gfp_t = 0x01;
/// Highmem (ignored: there is none).
pub const __GFP_HIGHMEM: gfp_t = 0x02;
/// From ZONE_DMA32.
pub const __GFP_DMA32: gfp_t = 0x04;
/// Movable.
pub const __GFP_MOVABLE: gfp_t = 0x08;
/// Reclaimable.
pub const __GFP_RECLAIMABLE: gfp_t = 0x10;
/// May use emergency reserves.
pub const __GFP_HIGH: gfp_t = 0x20;
/// May start I/O.
pub const __GFP_IO: gfp_t = 0x40;
/// May call into the file system.
pub const __GFP_FS: gfp_t = 0x80;
/// Zeroed memory.
pub const __GFP_ZERO: gfp_t = 0x100;
/// Atomic context.
pub const __GFP_ATOMIC: gfp_t = 0x200;
/// The caller may sleep.
pub const __GFP_DIRECT_RECLAIM: gfp_t = 0x400;
/// May wake kswapd.
pub const __GFP_KSWAPD_RECLAIM: gfp_t = 0x800;
/// Page-cache write.
pub const __GFP_WRITE: gfp_t = 0x1000;
/// No failure message.
pub const __GFP_NOWARN: gfp_t = 0x2000;
/// Retry, but may fail.
pub const __GFP_RETRY_MAYFAIL: gfp_t = 0x4000;
/// Never fail (not honoured: allocations here can always fail).
pub const __GFP_NOFAIL: gfp_t = 0x8000;
/// Fail fast.
pub const __GFP_NORETRY: gfp_t = 0x1_0000;
/// Compound page (refused by the DMA allocators).
pub const __GFP_COMP: gfp_t = 0x4_0000;
/// May not sleep.
pub const GFP_ATOMIC: gfp_t = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM;
/// May sleep.
pub const GFP_KERNEL: gfp_t = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM | __GFP_IO | __GFP_FS;
/// Does not sleep, no reserves.
pub const GFP_NOWAIT: gfp_t = __GFP_KSWAPD_RECLAIM;
/// From ZONE_DMA.
pub const GFP_DMA: gfp_t = __GFP_DMA;
/// From ZONE_DMA32.
pub const GFP_DMA32: gfp_t = __GFP_DMA32;

/// log2 of the platform's page size.
pub const DMA_PAGE_SHIFT: c_uint = 12;
/// The platform's page size in bytes.
pub const DMA_PAGE_SIZE: c_ulong = 1 << DMA_PAGE_SHIFT;

/// Index of ZONE_DMA in `struct dma_stats`.
pub const DMA_ZONE_DMA: c_uint = 0;
/// Index of ZONE_DMA32 in `struct dma_stats`.
pub const DMA_ZONE_DMA32: c_uint = 1;
/// Index of ZONE_NORMAL in `struct dma_stats`.
pub const DMA_ZONE_NORMAL: c_uint = 2;

/// The address is beyond the device's mask (or bus limit).
pub const DMA_SIM_FAULT_OUTSIDE_MASK: c_uint = 1;
/// No translation exists for the address.
pub const DMA_SIM_FAULT_NOT_MAPPED: c_uint = 2;
/// The translation forbids this access.
pub const DMA_SIM_FAULT_PERMISSION: c_uint = 3;
/// The address translates to something that is not RAM.
pub const DMA_SIM_FAULT_NOT_RAM: c_uint = 4;

/// The memory of a page of platform RAM. A `struct page *` is the CPU address of the
/// page's first byte (`page_address` is a cast); C never dereferences it.
#[derive(Debug)]
pub struct page {
    _opaque: [u8; 0],
}

/// One entry of a scatter-gather list (userspace form: the page and offset are folded
/// into `cpu_addr`). Fill the CPU side with `sg_set_buf` / `sg_set_page`; a map call
/// fills the DMA side, read with `sg_dma_address` / `sg_dma_len`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct scatterlist {
    /// CPU address of the data.
    pub cpu_addr: *mut c_void,
    /// Length of the data in bytes.
    pub length: c_uint,
    /// Length of the DMA segment after mapping.
    pub dma_length: c_uint,
    /// Bus address of the DMA segment after mapping.
    pub dma_address: dma_addr_t,
}

const _: () = {
    use dma_core::Scatterlist as S;
    assert!(size_of::<scatterlist>() == size_of::<S>());
    assert!(align_of::<scatterlist>() == align_of::<S>());
    assert!(offset_of!(scatterlist, cpu_addr) == offset_of!(S, cpu_addr));
    assert!(offset_of!(scatterlist, length) == offset_of!(S, length));
    assert!(offset_of!(scatterlist, dma_length) == offset_of!(S, dma_length));
    assert!(offset_of!(scatterlist, dma_address) == offset_of!(S, dma_address));
};

/// A scatter-gather table: `orig_nents` CPU entries at `sgl`, `nents` DMA segments
/// after `dma_map_sgtable`. `sg_alloc_table` / `sg_free_table` own `sgl`; a caller may
/// also point `sgl` at its own array (then it must not call `sg_free_table`).
#[repr(C)]
#[derive(Debug)]
pub struct sg_table {
    /// The entries.
    pub sgl: *mut scatterlist,
    /// DMA segments after mapping.
    pub nents: c_uint,
    /// CPU entries.
    pub orig_nents: c_uint,
}

/// One window of a device's `dma_range_map`: CPU physical `[cpu_start, cpu_start + size)`
/// appears to the device at `dma_start`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dma_bus_region {
    /// First CPU physical address of the window.
    pub cpu_start: phys_addr_t,
    /// Its bus address.
    pub dma_start: dma_addr_t,
    /// Length in bytes.
    pub size: u64,
}

/// How to create a device. Zero-initialise it and set what matters: a zeroed config is
/// a non-coherent device with 32-bit masks, no bus limit, identity translation and no
/// contiguous area of its own.
///
/// Layout (part of the ABI): the fields in the order below, with the C compiler's usual
/// padding. New fields are only ever added at the end, so a zeroed config keeps its
/// meaning; a program compiled against an older header must be recompiled before it
/// links a newer library.
#[repr(C)]
#[derive(Debug)]
pub struct dma_device_config {
    /// Name used in messages (required, NUL-terminated, UTF-8).
    pub name: *const c_char,
    /// Streaming mask; 0 means `DMA_BIT_MASK(32)`.
    pub dma_mask: u64,
    /// Coherent mask; 0 means the same as `dma_mask`.
    pub coherent_dma_mask: u64,
    /// Interconnect limit (`bus_dma_limit`); 0 means none.
    pub bus_dma_limit: u64,
    /// Address bits a bounce buffer must preserve (`dma_set_min_align_mask`).
    pub min_align_mask: u64,
    /// Translation windows, `nr_ranges` of them; NULL / 0 means bus = physical.
    pub range_map: *const dma_bus_region,
    /// Number of windows at `range_map`.
    pub nr_ranges: usize,
    /// Largest scatter-gather segment; 0 means 64 KiB.
    pub max_segment_size: c_uint,
    /// True for a device that snoops the CPU caches; false for a non-coherent one.
    pub coherent: bool,
    /// Size in bytes of a contiguous area of the device's own (the kernel's per-device
    /// `shared-dma-pool`), reserved within the coherent mask's reach at creation and
    /// rounded up to 2 MiB; 0 for none. Its allocations of any size come from it first.
    pub cma_size: u64,
    /// The IOMMU domain to attach the device to (`dma_iommu_domain_create`), or NULL for
    /// the direct path. Every allocation, mapping, sync and `dma_sim_*` access of the
    /// device then goes through the domain's page table; the device keeps the domain
    /// alive. `range_map` and `bus_dma_limit` still bound the IOVAs it is given.
    pub iommu: *mut crate::iommu::dma_iommu_domain,
}

/// The zeroed config, for Rust callers (`..Default::default()` keeps a struct literal
/// compiling when fields are added at the end).
impl Default for dma_device_config {
    fn default() -> Self {
        dma_device_config {
            name: std::ptr::null(),
            dma_mask: 0,
            coherent_dma_mask: 0,
            bus_dma_limit: 0,
            min_align_mask: 0,
            range_map: std::ptr::null(),
            nr_ranges: 0,
            max_segment_size: 0,
            coherent: false,
            cma_size: 0,
            iommu: std::ptr::null_mut(),
        }
    }
}

/// Free and total pages of one zone.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dma_zone_stats {
    /// Pages in the zone.
    pub total_pages: u64,
    /// Pages free now.
    pub free_pages: u64,
}

/// A snapshot of the system's memory (`dma_system_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dma_stats {
    /// Indexed by `DMA_ZONE_DMA`, `DMA_ZONE_DMA32`, `DMA_ZONE_NORMAL`.
    pub zones: [dma_zone_stats; 3],
    /// swiotlb slots (0 when there is no bounce pool).
    pub swiotlb_total_slots: u64,
    /// swiotlb slots in use now.
    pub swiotlb_used_slots: u64,
    /// Bounce mappings made so far.
    pub swiotlb_mappings: u64,
    /// Bytes bounced so far, either direction.
    pub swiotlb_bytes_bounced: u64,
    /// Map requests refused because the pool was full.
    pub swiotlb_full: u64,
}

/// A device access the simulated bus master refused (`dma_sim_last_fault`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dma_sim_fault {
    /// Bus address of the access.
    pub addr: dma_addr_t,
    /// Its length.
    pub len: usize,
    /// One of `DMA_SIM_FAULT_*`.
    pub kind: c_uint,
    /// True for a device write, false for a read.
    pub write: bool,
}

/// The userspace stand-in for the kernel's VMA in `dma_mmap_attrs`: a page-aligned
/// address range the caller owns (e.g. reserved with `mmap(PROT_NONE)`), and the page
/// offset into the buffer where the mapping starts.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct vm_area_struct {
    /// First address of the range (page aligned).
    pub vm_start: c_ulong,
    /// One past the last address (page aligned).
    pub vm_end: c_ulong,
    /// Offset into the buffer, in pages.
    pub vm_pgoff: c_ulong,
}

#[cfg(test)]
mod tests {
    use super::*;
    use dma_core::{Attrs, Gfp};

    #[test]
    #[allow(clippy::useless_conversion)] // c_ulong is u32 on 32-bit targets
    fn constants_match_dma_core() {
        let attrs = [
            (DMA_ATTR_WEAK_ORDERING, Attrs::WEAK_ORDERING),
            (DMA_ATTR_WRITE_COMBINE, Attrs::WRITE_COMBINE),
            (DMA_ATTR_NON_CONSISTENT, Attrs::NON_CONSISTENT),
            (DMA_ATTR_NO_KERNEL_MAPPING, Attrs::NO_KERNEL_MAPPING),
            (DMA_ATTR_SKIP_CPU_SYNC, Attrs::SKIP_CPU_SYNC),
            (DMA_ATTR_FORCE_CONTIGUOUS, Attrs::FORCE_CONTIGUOUS),
            (DMA_ATTR_ALLOC_SINGLE_PAGES, Attrs::ALLOC_SINGLE_PAGES),
            (DMA_ATTR_NO_WARN, Attrs::NO_WARN),
            (DMA_ATTR_PRIVILEGED, Attrs::PRIVILEGED),
            (DMA_ATTR_MMIO, Attrs::MMIO),
            (DMA_ATTR_DEBUGGING_IGNORE_CACHELINES, Attrs::DEBUGGING_IGNORE_CACHELINES),
            (DMA_ATTR_REQUIRE_COHERENT, Attrs::REQUIRE_COHERENT),
        ];
        for (c, r) in attrs {
            assert_eq!(u64::from(c), u64::from(r.bits()));
        }
        assert_eq!(u64::from(Attrs::all().bits()), attrs.iter().fold(0u64, |a, (c, _)| a | u64::from(*c)));
        let gfps = [
            (GFP_KERNEL, Gfp::GFP_KERNEL),
            (GFP_ATOMIC, Gfp::GFP_ATOMIC),
            (GFP_NOWAIT, Gfp::GFP_NOWAIT),
            (GFP_DMA, Gfp::GFP_DMA),
            (GFP_DMA32, Gfp::GFP_DMA32),
            (__GFP_HIGHMEM, Gfp::__GFP_HIGHMEM),
            (__GFP_MOVABLE, Gfp::__GFP_MOVABLE),
            (__GFP_RECLAIMABLE, Gfp::__GFP_RECLAIMABLE),
            (__GFP_ZERO, Gfp::__GFP_ZERO),
            (__GFP_WRITE, Gfp::__GFP_WRITE),
            (__GFP_NOWARN, Gfp::__GFP_NOWARN),
            (__GFP_RETRY_MAYFAIL, Gfp::__GFP_RETRY_MAYFAIL),
            (__GFP_NOFAIL, Gfp::__GFP_NOFAIL),
            (__GFP_NORETRY, Gfp::__GFP_NORETRY),
            (__GFP_COMP, Gfp::__GFP_COMP),
        ];
        for (c, r) in gfps {
            assert_eq!(c, r.bits());
        }
        assert_eq!(DMA_PAGE_SIZE as usize, dma_core::PAGE_SIZE);
        assert_eq!(DMA_PAGE_SHIFT, dma_core::PAGE_SHIFT);
    }
}
