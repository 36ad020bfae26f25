//! `Device`: what the kernel keeps in `struct device` for DMA.
//!
//! Masks, bus limit, range map, coherence and segment limits. The hot paths read a
//! precomputed limit (`min_not_zero(dma_mask, bus_dma_limit)`) and a skip-sync flag, both
//! recomputed when a mask changes, never per call.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Numbers devices for dma-debug, which must tell a device from a later one at the same
/// address.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
use std::sync::{Arc, OnceLock};

use crate::addr::{DMA_MAPPING_ERROR, DmaAddr, PhysAddr};
use crate::contiguous::{Cma, CmaAreaStats};
use crate::errno::{Errno, Result};
use crate::mask::{DmaMask, min_not_zero};
use crate::ops::DmaOps;
use crate::system::System;

/// Whether the device snoops the CPU caches.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Coherence {
    /// DMA is cache-coherent (x86, most servers): no cache maintenance is needed.
    #[default]
    Coherent,
    /// DMA bypasses the CPU caches (most Arm, RISC-V, MIPS SoCs): ownership moves with
    /// `dma_sync_*`, and coherent allocations are uncached.
    NonCoherent,
}

/// One entry of `dma_range_map` (`struct bus_dma_region`): CPU physical addresses
/// `[cpu_start, cpu_start + size)` appear to the device at `dma_start`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BusDmaRegion {
    /// First CPU physical address of the window.
    pub cpu_start: PhysAddr,
    /// The bus address it has on the device's side.
    pub dma_start: DmaAddr,
    /// Length of the window in bytes.
    pub size: u64,
}

/// How to create a [`Device`]. Defaults: coherent, 32-bit masks, no bus limit, identity
/// translation, 64 KiB max segment, no segment boundary, no min-align mask, no ops.
#[derive(Clone)]
pub struct DeviceConfig {
    /// Name used in every message about the device.
    pub name: String,
    /// Coherent or not.
    pub coherence: Coherence,
    /// Streaming mask (`dma_mask`).
    pub dma_mask: DmaMask,
    /// Mask for coherent allocations (`coherent_dma_mask`).
    pub coherent_dma_mask: DmaMask,
    /// Interconnect limit (`bus_dma_limit`), 0 = none.
    pub bus_dma_limit: u64,
    /// Address translation windows; empty means bus address = physical address.
    pub range_map: Vec<BusDmaRegion>,
    /// `dma_set_max_seg_size`.
    pub max_segment_size: u32,
    /// `dma_set_seg_boundary`.
    pub segment_boundary_mask: u64,
    /// `dma_set_min_align_mask`: address bits a bounce buffer must preserve.
    pub min_align_mask: u64,
    /// Custom DMA ops (an IOMMU); `None` is the direct path.
    pub ops: Option<Arc<dyn DmaOps>>,
    /// Size in bytes of a contiguous area of the device's own (the kernel's per-device
    /// `shared-dma-pool`), reserved where the device can reach it; `None` for none.
    pub cma: Option<u64>,
}

impl DeviceConfig {
    /// A configuration with the defaults and this name.
    pub fn new(name: &str) -> DeviceConfig {
        DeviceConfig {
            name: name.to_owned(),
            coherence: Coherence::Coherent,
            dma_mask: DmaMask::bits(32),
            coherent_dma_mask: DmaMask::bits(32),
            bus_dma_limit: 0,
            range_map: Vec::new(),
            max_segment_size: 1 << 16,
            segment_boundary_mask: u64::MAX,
            min_align_mask: 0,
            ops: None,
            cma: None,
        }
    }

    /// Sets coherence.
    pub fn coherence(mut self, c: Coherence) -> Self {
        self.coherence = c;
        self
    }

    /// Sets both masks.
    pub fn mask(mut self, m: DmaMask) -> Self {
        self.dma_mask = m;
        self.coherent_dma_mask = m;
        self
    }

    /// Sets the bus limit.
    pub fn bus_dma_limit(mut self, limit: u64) -> Self {
        self.bus_dma_limit = limit;
        self
    }

    /// Adds a translation window.
    pub fn range(mut self, region: BusDmaRegion) -> Self {
        self.range_map.push(region);
        self
    }

    /// Sets the min-align mask.
    pub fn min_align_mask(mut self, mask: u64) -> Self {
        self.min_align_mask = mask;
        self
    }

    /// Gives the device its own contiguous area of `size` bytes.
    pub fn cma(mut self, size: u64) -> Self {
        self.cma = Some(size);
        self
    }

    /// Installs DMA ops (an IOMMU).
    pub fn ops(mut self, ops: Arc<dyn DmaOps>) -> Self {
        self.ops = Some(ops);
        self
    }
}

impl fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("name", &self.name)
            .field("coherence", &self.coherence)
            .field("dma_mask", &self.dma_mask)
            .field("coherent_dma_mask", &self.coherent_dma_mask)
            .field("bus_dma_limit", &format_args!("{:#x}", self.bus_dma_limit))
            .field("range_map", &self.range_map)
            .field("ops", &self.ops.is_some())
            .field("cma", &self.cma)
            .finish()
    }
}

/// A device that does DMA.
///
/// # Invariants
///
/// `map_limit == min_not_zero(dma_mask, bus_dma_limit)` and
/// `alloc_limit == min_not_zero(coherent_dma_mask, bus_dma_limit)` whenever no mask
/// update is in progress; every mask value satisfies [`DmaMask`]'s invariant.
pub struct Device {
    id: u64,
    name: String,
    system: Arc<System>,
    coherence: Coherence,
    bus_dma_limit: u64,
    range_map: Box<[BusDmaRegion]>,
    dma_mask: AtomicU64,
    coherent_dma_mask: AtomicU64,
    map_limit: AtomicU64,
    alloc_limit: AtomicU64,
    max_segment_size: AtomicU64,
    segment_boundary_mask: AtomicU64,
    min_align_mask: AtomicU64,
    /// `dma_skip_sync`: coherent and never bounced, so sync calls return at once.
    skip_sync: AtomicBool,
    pub(crate) ops: Option<Arc<dyn DmaOps>>,
    /// The device's own contiguous area, if it has one.
    cma: OnceLock<Cma>,
}

impl Device {
    /// Creates a device on `system`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty name, a zero-sized or overflowing range-map window, or a zero
    /// segment size; `EIO` when the platform cannot serve one of the masks (see
    /// [`Device::set_mask`]).
    pub fn new(system: &Arc<System>, config: DeviceConfig) -> Result<Arc<Device>> {
        if config.name.is_empty() || config.max_segment_size == 0 || config.min_align_mask > u32::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        for r in &config.range_map {
            if r.size == 0
                || r.cpu_start.checked_add(r.size - 1).is_none()
                || r.dma_start.checked_add(r.size - 1).is_none()
            {
                return Err(Errno::EINVAL);
            }
        }
        let dev = Arc::new(Device {
            id: NEXT_ID.fetch_add(1, Relaxed),
            name: config.name,
            system: Arc::clone(system),
            coherence: config.coherence,
            bus_dma_limit: config.bus_dma_limit,
            range_map: config.range_map.into_boxed_slice(),
            dma_mask: AtomicU64::new(DmaMask::bits(32).value()),
            coherent_dma_mask: AtomicU64::new(DmaMask::bits(32).value()),
            map_limit: AtomicU64::new(0),
            alloc_limit: AtomicU64::new(0),
            max_segment_size: AtomicU64::new(config.max_segment_size as u64),
            segment_boundary_mask: AtomicU64::new(config.segment_boundary_mask),
            min_align_mask: AtomicU64::new(config.min_align_mask),
            // dma-debug checks every sync, so it never lets them be skipped.
            skip_sync: AtomicBool::new(config.coherence == Coherence::Coherent && system.debug().is_none()),
            ops: config.ops,
            cma: OnceLock::new(),
        });
        dev.set_mask(config.dma_mask)?;
        dev.set_coherent_mask(config.coherent_dma_mask)?;
        if let Some(size) = config.cma {
            let hi = crate::direct::phys_limit(&dev, dev.alloc_limit()).saturating_add(1);
            let area = Cma::reserve(system.pages(), &dev.name, size, None, hi, false).inspect_err(|e| {
                dev.warn(format_args!("cannot reserve a contiguous area of {size} bytes within reach: {e}"));
            })?;
            let _ = dev.cma.set(area);
        }
        Ok(dev)
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The system (platform, allocators) the device lives on.
    pub fn system(&self) -> &Arc<System> {
        &self.system
    }

    /// Coherent or not (`dev_is_dma_coherent`).
    pub fn coherence(&self) -> Coherence {
        self.coherence
    }

    /// True for a cache-coherent device.
    #[inline]
    pub fn is_coherent(&self) -> bool {
        self.coherence == Coherence::Coherent
    }

    /// The streaming mask (`dma_get_mask`).
    pub fn mask(&self) -> DmaMask {
        DmaMask::from_raw(self.dma_mask.load(Relaxed)).unwrap_or(DmaMask::bits(32))
    }

    /// The coherent mask.
    pub fn coherent_mask(&self) -> DmaMask {
        DmaMask::from_raw(self.coherent_dma_mask.load(Relaxed)).unwrap_or(DmaMask::bits(32))
    }

    /// The bus limit (0 = none).
    pub fn bus_dma_limit(&self) -> u64 {
        self.bus_dma_limit
    }

    /// The translation windows.
    pub fn range_map(&self) -> &[BusDmaRegion] {
        &self.range_map
    }

    /// `dma_get_max_seg_size`.
    pub fn max_segment_size(&self) -> u64 {
        self.max_segment_size.load(Relaxed)
    }

    /// `dma_set_max_seg_size`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for zero.
    pub fn set_max_segment_size(&self, size: u32) -> Result<()> {
        if size == 0 {
            return Err(Errno::EINVAL);
        }
        self.max_segment_size.store(size as u64, Relaxed);
        Ok(())
    }

    /// `dma_get_seg_boundary`.
    pub fn segment_boundary_mask(&self) -> u64 {
        self.segment_boundary_mask.load(Relaxed)
    }

    /// `dma_set_seg_boundary`.
    ///
    /// # Errors
    ///
    /// `EINVAL` unless the mask is all ones below some bit (a boundary is a power of two).
    pub fn set_segment_boundary_mask(&self, mask: u64) -> Result<()> {
        DmaMask::from_raw(mask).ok_or(Errno::EINVAL)?;
        self.segment_boundary_mask.store(mask, Relaxed);
        Ok(())
    }

    /// `dma_get_min_align_mask`.
    pub fn min_align_mask(&self) -> u64 {
        self.min_align_mask.load(Relaxed)
    }

    /// `dma_set_min_align_mask`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a mask wider than 32 bits (the kernel's is an `unsigned int`).
    pub fn set_min_align_mask(&self, mask: u64) -> Result<()> {
        if mask > u32::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        self.min_align_mask.store(mask, Relaxed);
        Ok(())
    }

    /// `min_not_zero(dma_mask, bus_dma_limit)`: the highest bus address a streaming
    /// mapping may use.
    #[inline]
    pub fn map_limit(&self) -> u64 {
        self.map_limit.load(Relaxed)
    }

    /// `min_not_zero(coherent_dma_mask, bus_dma_limit)`: the highest bus address an
    /// allocation may use.
    #[inline]
    pub fn alloc_limit(&self) -> u64 {
        self.alloc_limit.load(Relaxed)
    }

    pub(crate) fn store_mask(&self, mask: DmaMask) {
        self.dma_mask.store(mask.value(), Relaxed);
        // INVARIANT: the derived limit is recomputed with the mask it derives from.
        self.map_limit.store(min_not_zero(mask.value(), self.bus_dma_limit), Relaxed);
    }

    pub(crate) fn store_coherent_mask(&self, mask: DmaMask) {
        self.coherent_dma_mask.store(mask.value(), Relaxed);
        // INVARIANT: as in `store_mask`.
        self.alloc_limit.store(min_not_zero(mask.value(), self.bus_dma_limit), Relaxed);
    }

    /// `dma_skip_sync`: true while sync calls have nothing to do.
    #[inline]
    pub(crate) fn skip_sync(&self) -> bool {
        self.skip_sync.load(Relaxed)
    }

    /// Called on the first bounce: from now on syncs must run (to copy bounce buffers).
    #[inline]
    pub(crate) fn clear_skip_sync(&self) {
        if self.skip_sync.load(Relaxed) {
            self.skip_sync.store(false, Relaxed);
        }
    }

    /// `phys_to_dma`: the bus address of a physical address, or [`DMA_MAPPING_ERROR`]
    /// when no window of the range map covers it.
    #[inline]
    pub fn phys_to_dma(&self, phys: PhysAddr) -> DmaAddr {
        if self.range_map.is_empty() {
            return DmaAddr(phys.0);
        }
        for r in self.range_map.iter() {
            if phys.0 >= r.cpu_start.0 && phys.0 - r.cpu_start.0 < r.size {
                return DmaAddr(r.dma_start.0 + (phys.0 - r.cpu_start.0));
            }
        }
        DMA_MAPPING_ERROR
    }

    /// `dma_to_phys`: the physical address behind a bus address, if a window covers it.
    #[inline]
    pub fn dma_to_phys(&self, dma: DmaAddr) -> Option<PhysAddr> {
        if self.range_map.is_empty() {
            return Some(PhysAddr(dma.0));
        }
        self.range_map
            .iter()
            .find(|r| dma.0 >= r.dma_start.0 && dma.0 - r.dma_start.0 < r.size)
            .map(|r| PhysAddr(r.cpu_start.0 + (dma.0 - r.dma_start.0)))
    }

    /// `dma_capable`: true when `[dma, dma + size)` is a valid bus range below `limit`.
    #[inline]
    pub(crate) fn capable(dma: DmaAddr, size: usize, limit: u64) -> bool {
        !dma.is_error() && size != 0 && matches!(dma.0.checked_add(size as u64 - 1), Some(end) if end <= limit)
    }

    /// The device's own contiguous area.
    pub(crate) fn cma(&self) -> Option<&Cma> {
        self.cma.get()
    }

    /// Statistics of the device's own contiguous area, if it has one.
    pub fn cma_stats(&self) -> Option<CmaAreaStats> {
        self.cma.get().map(Cma::stats)
    }

    /// dma-debug's description of a call on this device.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn debug_call(
        &self,
        dma: DmaAddr,
        size: usize,
        dir: crate::Direction,
        kind: crate::debug::EntryKind,
        cpu: usize,
        sg_ents: usize,
        at: &'static std::panic::Location<'static>,
    ) -> crate::debug::Call {
        crate::debug::Call { dev: self.id, dma, size, dir, kind, cpu, sg_ents, caller: crate::debug::caller(at) }
    }

    /// The identity dma-debug tracks this device by.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Prints a warning about this device through its system's message sink (what the
    /// kernel's `dev_warn` does); for DMA ops that refuse a call.
    pub fn warn(&self, args: fmt::Arguments<'_>) {
        self.system.log().emit(crate::log::Level::Warn, &self.name, args);
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Some(d) = self.system.debug() {
            d.device_released(&self.name, self.id);
        }
        if let Some(cma) = self.cma.get() {
            if cma.in_use() {
                // Returning pages that are still handed out would let them be reused
                // under a live buffer: keep them, and say so.
                self.warn(format_args!(
                    "released with allocations still live in its contiguous area; the area is leaked"
                ));
            } else {
                cma.unreserve(self.system.pages());
            }
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("coherence", &self.coherence)
            .field("dma_mask", &self.mask())
            .field("coherent_dma_mask", &self.coherent_mask())
            .field("bus_dma_limit", &format_args!("{:#x}", self.bus_dma_limit))
            .field("range_map", &self.range_map)
            .field("ops", &self.ops.is_some())
            .finish()
    }
}
