//! `struct device`: creating and destroying devices, their masks and limits.
#![allow(non_camel_case_types)]

use std::ffi::{CStr, c_int, c_uint, c_ulong};
use std::sync::Arc;

use dma_core::sim::BusMaster;
use dma_core::{BusDmaRegion, Coherence, Device, DeviceConfig, DmaAddr, DmaMask, Errno, PhysAddr};

use crate::boundary::{neg, nothing, null, refuse, zero};
use crate::devres::{Devres, release_all};
use crate::system::system;
use crate::types::{dma_addr_t, dma_device_config};

/// A device as C holds it: the dma-core device, its simulated bus master, its managed
/// resources (devres: `dmam_*` allocations and pools) and, for a device from
/// `dma_device_create_vfio`, its VFIO handle (BARs, config space). C sees an opaque
/// `struct device *`.
#[derive(Debug)]
pub struct device {
    pub(crate) dev: Arc<Device>,
    pub(crate) bus: BusMaster,
    pub(crate) devres: Arc<Devres>,
    pub(crate) vfio: Option<crate::vfio::Vfio>,
}

impl device {
    /// The C device around `dev`, with no managed resources yet.
    pub(crate) fn new(dev: Arc<Device>, vfio: Option<crate::vfio::Vfio>) -> Self {
        let bus = BusMaster::new(&dev);
        device { dev, bus, devres: Arc::default(), vfio }
    }
}

/// The device behind a C pointer, or `EINVAL` (with a message naming `func`) for NULL.
///
/// # Safety
///
/// `p` is NULL or a live pointer from `dma_device_create`.
pub(crate) unsafe fn to_dev<'a>(func: &str, p: *const device) -> Result<&'a device, Errno> {
    // SAFETY: forwarded from the caller.
    unsafe { p.as_ref() }.ok_or_else(|| refuse(func, format_args!("NULL device")))
}

fn mask(func: &str, raw: u64, default: DmaMask) -> Result<DmaMask, Errno> {
    if raw == 0 {
        return Ok(default);
    }
    DmaMask::from_raw(raw).ok_or_else(|| refuse(func, format_args!("{raw:#x} is not a DMA_BIT_MASK")))
}

/// The dma-core configuration a C config asks for, without the IOMMU (`config.iommu` is
/// the caller's business). `name` is the config's name, or `default_name` when that is
/// NULL (and a NULL name is refused when there is no default).
///
/// # Safety
///
/// `c.name` is NULL or a NUL-terminated string, `c.range_map` points to `c.nr_ranges`
/// entries.
pub(crate) unsafe fn device_config(
    func: &str,
    c: &dma_device_config,
    default_name: Option<&str>,
) -> Result<DeviceConfig, Errno> {
    let name = if c.name.is_null() {
        default_name.ok_or_else(|| refuse(func, format_args!("NULL name")))?.to_owned()
    } else {
        // SAFETY: the caller passes a NUL-terminated name.
        unsafe { CStr::from_ptr(c.name) }.to_string_lossy().into_owned()
    };
    let dma_mask = mask(func, c.dma_mask, DmaMask::bits(32))?;
    let mut cfg = DeviceConfig::new(&name)
        .coherence(if c.coherent { Coherence::Coherent } else { Coherence::NonCoherent })
        .mask(dma_mask)
        .bus_dma_limit(c.bus_dma_limit)
        .min_align_mask(c.min_align_mask);
    cfg.coherent_dma_mask = mask(func, c.coherent_dma_mask, dma_mask)?;
    if c.max_segment_size != 0 {
        cfg.max_segment_size = c.max_segment_size;
    }
    if c.nr_ranges != 0 {
        if c.range_map.is_null() {
            return Err(refuse(func, format_args!("NULL range_map with {} ranges", c.nr_ranges)));
        }
        // SAFETY: the caller passes `nr_ranges` entries at `range_map`.
        let ranges = unsafe { std::slice::from_raw_parts(c.range_map, c.nr_ranges) };
        for r in ranges {
            cfg = cfg.range(BusDmaRegion {
                cpu_start: PhysAddr(r.cpu_start),
                dma_start: DmaAddr(r.dma_start),
                size: r.size,
            });
        }
    }
    if c.cma_size != 0 {
        cfg = cfg.cma(c.cma_size);
    }
    Ok(cfg)
}

/// Creates a device on the system (built from `$DMA_OPTS` if nothing built it yet).
/// With `config->iommu` set the device is attached to that IOMMU domain. Returns NULL
/// for a NULL config or name, an invalid mask or window, a mask the platform (or the
/// domain's aperture) cannot serve, or a `cma_size` that does not fit within its reach
/// (the reason is printed).
///
/// # Safety
///
/// `config` is NULL or points to a valid `struct dma_device_config` whose `name` is a
/// NUL-terminated string, whose `range_map` points to `nr_ranges` entries and whose
/// `iommu` is NULL or a live domain.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_device_create(config: *const dma_device_config) -> *mut device {
    boundary!(null, {
        // SAFETY: the caller passes NULL or a valid config.
        let c = unsafe { config.as_ref() }.ok_or_else(|| refuse("dma_device_create", format_args!("NULL config")))?;
        // SAFETY: the caller passes a valid name and range map.
        let mut cfg = unsafe { device_config("dma_device_create", c, None) }?;
        if !c.iommu.is_null() {
            // SAFETY: the caller passes NULL or a live domain.
            cfg = unsafe { crate::iommu::to_domain("dma_device_create", c.iommu) }?.attach(cfg);
        }
        let dev = Device::new(system()?, cfg)?;
        Ok(Box::into_raw(Box::new(device::new(dev, None))))
    })
}

/// Destroys a device. NULL is a no-op. Its managed resources go first, newest first, as
/// at the kernel's driver detach: `dmam_*` allocations are freed and `dmam_pool_create`
/// pools destroyed (a pool with blocks in use reports them, as `dma_pool_destroy` does).
/// Other allocations and mappings still live on it stay valid memory of the system but
/// can no longer be freed through it (dma-debug reports them; a contiguous area of the
/// device's own with live allocations is kept, not reused). A VFIO device's BAR mappings
/// end, and its container is closed once nothing else (a dma_pool) keeps the device
/// alive: the kernel then drops its IOMMU mappings.
///
/// # Safety
///
/// `dev` is NULL or a pointer from `dma_device_create` or `dma_device_create_vfio` not
/// destroyed before; nothing uses it afterwards, nor its BAR mappings, managed
/// allocations or managed pools.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_device_destroy(dev: *mut device) {
    c_call!(nothing, {
        if !dev.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` in `dma_device_create` and is
            // destroyed once (the caller's contract).
            let d = unsafe { Box::from_raw(dev) };
            // Before the device goes, so dma-debug's report at its release names only
            // what the driver left unmanaged.
            release_all(&d);
            drop(d);
        }
        Ok(())
    })
}

fn set(
    func: &str,
    p: *const device,
    raw: u64,
    f: impl FnOnce(&Device, DmaMask) -> Result<(), Errno>,
) -> Result<c_int, Errno> {
    // SAFETY: the export's caller passes NULL or a live device.
    let d = unsafe { to_dev(func, p) }?;
    let m = DmaMask::from_raw(raw).ok_or_else(|| {
        eprintln!("dma: {}: {func}: {raw:#x} is not a DMA_BIT_MASK", d.dev.name());
        Errno::EIO
    })?;
    f(&d.dev, m)?;
    Ok(0)
}

/// `dma_set_mask`: 0, or `-EIO` when the mask is not all ones below a bit or the
/// platform cannot serve it; `-EINVAL` for a NULL device.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_set_mask(dev: *mut device, mask: u64) -> c_int {
    boundary!(neg, set("dma_set_mask", dev, mask, Device::set_mask))
}

/// `dma_set_coherent_mask`: as `dma_set_mask`, for coherent allocations.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_set_coherent_mask(dev: *mut device, mask: u64) -> c_int {
    boundary!(neg, set("dma_set_coherent_mask", dev, mask, Device::set_coherent_mask))
}

/// `dma_set_mask_and_coherent`: the coherent mask is set only if the streaming mask was
/// accepted. Returns as `dma_set_mask`.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_set_mask_and_coherent(dev: *mut device, mask: u64) -> c_int {
    boundary!(neg, set("dma_set_mask_and_coherent", dev, mask, Device::set_mask_and_coherent))
}

/// `dma_get_mask`: the streaming mask; 0 for a NULL device.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_get_mask(dev: *mut device) -> u64 {
    // SAFETY: forwarded from the caller.
    boundary!(zero, Ok(unsafe { to_dev("dma_get_mask", dev) }?.dev.mask().value()))
}

/// `dma_get_required_mask`: the smallest mask that reaches all RAM without bouncing;
/// 0 for a NULL device.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_get_required_mask(dev: *mut device) -> u64 {
    // SAFETY: forwarded from the caller.
    boundary!(zero, Ok(unsafe { to_dev("dma_get_required_mask", dev) }?.dev.required_mask()))
}

/// `dma_max_mapping_size`: the largest streaming mapping that can succeed (`SIZE_MAX`
/// when nothing limits it); 0 for a NULL device.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_max_mapping_size(dev: *mut device) -> usize {
    // SAFETY: forwarded from the caller.
    boundary!(zero, Ok(unsafe { to_dev("dma_max_mapping_size", dev) }?.dev.max_mapping_size()))
}

/// `dma_get_merge_boundary`: the mask of address bits below which `dma_map_sg` may
/// merge entries into one DMA segment (an IOMMU's page size minus one); 0 when it never
/// merges (the direct path) and for a NULL device.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_get_merge_boundary(dev: *mut device) -> c_ulong {
    // SAFETY: forwarded from the caller.
    boundary!(zero, Ok(unsafe { to_dev("dma_get_merge_boundary", dev) }?.dev.merge_boundary() as c_ulong))
}

/// `dma_opt_mapping_size`: the largest streaming mapping that stays on the fast path
/// (behind an IOMMU the IOVA caches' range, 128 KiB), never above
/// `dma_max_mapping_size`; 0 for a NULL device.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_opt_mapping_size(dev: *mut device) -> usize {
    // SAFETY: forwarded from the caller.
    boundary!(zero, Ok(unsafe { to_dev("dma_opt_mapping_size", dev) }?.dev.opt_mapping_size()))
}

/// `dma_need_sync`: whether sync calls on this mapping do anything. True for a NULL
/// device (a sync is never wrong).
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_need_sync(dev: *mut device, dma_addr: dma_addr_t) -> bool {
    // SAFETY: forwarded from the caller.
    boundary!(|_| true, Ok(unsafe { to_dev("dma_need_sync", dev) }?.dev.need_sync(DmaAddr(dma_addr))))
}

/// `dma_need_unmap`: whether streaming mappings of this device must be unmapped. False
/// only for a coherent device on the direct path that never bounced, with dma-debug off;
/// true for a NULL device (an unmap is never wrong).
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_need_unmap(dev: *mut device) -> bool {
    // SAFETY: forwarded from the caller.
    boundary!(|_| true, Ok(unsafe { to_dev("dma_need_unmap", dev) }?.dev.need_unmap()))
}

/// `dma_addressing_limited`: true when some RAM is out of the device's reach (and for a
/// NULL device).
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_addressing_limited(dev: *mut device) -> bool {
    // SAFETY: forwarded from the caller.
    boundary!(|_| true, Ok(unsafe { to_dev("dma_addressing_limited", dev) }?.dev.addressing_limited()))
}

/// `dma_get_max_seg_size`: the longest scatter-gather segment the device takes (64 KiB
/// unless set); 0 for a NULL device.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_get_max_seg_size(dev: *mut device) -> c_uint {
    // SAFETY: forwarded from the caller.
    boundary!(zero, Ok(unsafe { to_dev("dma_get_max_seg_size", dev) }?.dev.max_segment_size() as c_uint))
}

/// `dma_set_max_seg_size`: 0, or `-EINVAL` for a NULL device or size 0.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_set_max_seg_size(dev: *mut device, size: c_uint) -> c_int {
    boundary!(neg, {
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev("dma_set_max_seg_size", dev) }?;
        d.dev
            .set_max_segment_size(size)
            .map_err(|e| refuse("dma_set_max_seg_size", format_args!("size {size}: {e}")))?;
        Ok(0)
    })
}

/// `dma_get_seg_boundary`: the mask of address bits a segment may not cross
/// (`ULONG_MAX` unless set); 0 for a NULL device.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_get_seg_boundary(dev: *mut device) -> c_ulong {
    // SAFETY: forwarded from the caller.
    boundary!(zero, Ok(unsafe { to_dev("dma_get_seg_boundary", dev) }?.dev.segment_boundary_mask() as c_ulong))
}

/// `dma_set_seg_boundary`: 0, or `-EINVAL` for a NULL device or a mask that is not all
/// ones below some bit.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_set_seg_boundary(dev: *mut device, mask: c_ulong) -> c_int {
    boundary!(neg, {
        // SAFETY: forwarded from the caller.
        let d = unsafe { to_dev("dma_set_seg_boundary", dev) }?;
        #[allow(clippy::useless_conversion)] // c_ulong is u32 on 32-bit targets
        let m = u64::from(mask);
        d.dev
            .set_segment_boundary_mask(m)
            .map_err(|e| refuse("dma_set_seg_boundary", format_args!("{mask:#x}: {e}")))?;
        Ok(0)
    })
}
