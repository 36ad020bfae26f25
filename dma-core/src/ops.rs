//! `DmaOps`: the hooks a translation layer (an IOMMU) installs on a device
//! (`include/linux/dma-map-ops.h`).
//!
//! A device without ops takes the direct path in [`crate::direct`], with no indirect
//! call. A device with ops routes every allocation, mapping and sync through them.
//! Physical addresses and platform pages are the currency: memory the platform does not
//! own is bounced through swiotlb by the dispatcher before ops ever see it.

use std::fmt::Debug;
use std::ptr::NonNull;

use crate::addr::{DmaAddr, PhysAddr};
use crate::attrs::Attrs;
use crate::device::Device;
use crate::direction::Direction;
use crate::errno::Result;
use crate::gfp::Gfp;
use crate::mask::{DmaMask, dma_bit_mask};

/// How a bus master access went wrong, as a translation layer reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FaultKind {
    /// The address is beyond the device's addressing mask.
    OutsideMask,
    /// No translation exists for the address (unmapped IOVA, no range-map window).
    NotMapped,
    /// The translation exists but forbids this access (write to a read-only mapping).
    Permission,
    /// The address translates to something that is not RAM.
    NotRam,
}

/// A device's DMA operations (the kernel's `struct dma_map_ops`).
pub trait DmaOps: Send + Sync + Debug {
    /// A short name for messages (`"iommu"`).
    fn name(&self) -> &str;

    /// `dma_supported`: can the ops serve this mask?
    fn supported(&self, _dev: &Device, _mask: DmaMask) -> bool {
        true
    }

    /// `get_required_mask`.
    fn required_mask(&self, _dev: &Device) -> u64 {
        dma_bit_mask(32)
    }

    /// `max_mapping_size`.
    fn max_mapping_size(&self, _dev: &Device) -> usize {
        usize::MAX
    }

    /// `dma_need_sync` for one address.
    fn need_sync(&self, _dev: &Device, _dma: DmaAddr) -> bool {
        true
    }

    /// `alloc`: a coherent (or, with `NON_CONSISTENT`, cached) allocation of `size` bytes.
    ///
    /// # Errors
    ///
    /// `ENOMEM` when memory or address space ran out; `EINVAL` for arguments the ops refuse.
    fn alloc(&self, dev: &Device, size: usize, gfp: Gfp, attrs: Attrs) -> Result<(NonNull<u8>, DmaAddr)>;

    /// `free`.
    ///
    /// # Safety
    ///
    /// `cpu`, `dma`, `size` and `attrs` must be those of one live allocation from `alloc`,
    /// and nothing may use the memory afterwards.
    unsafe fn free(&self, dev: &Device, size: usize, cpu: NonNull<u8>, dma: DmaAddr, attrs: Attrs);

    /// `map_phys`: map `[phys, phys + size)` of platform RAM (or MMIO with `Attrs::MMIO`).
    ///
    /// # Errors
    ///
    /// `ENOMEM` when address space ran out; `EIO` when the range cannot be reached.
    ///
    /// # Safety
    ///
    /// The range must be platform RAM that stays allocated until the unmap, and the CPU
    /// must hold no references into it while the device owns it.
    unsafe fn map_phys(
        &self,
        dev: &Device,
        phys: PhysAddr,
        size: usize,
        dir: Direction,
        attrs: Attrs,
    ) -> Result<DmaAddr>;

    /// `unmap_phys`: returns the physical address the mapping started at.
    ///
    /// # Errors
    ///
    /// `EINVAL` when `dma` is not a live mapping.
    ///
    /// # Safety
    ///
    /// `dma` and `size` must be those of one live mapping from `map_phys`.
    unsafe fn unmap_phys(
        &self,
        dev: &Device,
        dma: DmaAddr,
        size: usize,
        dir: Direction,
        attrs: Attrs,
    ) -> Result<PhysAddr>;

    /// `sync_single_for_cpu`.
    ///
    /// # Safety
    ///
    /// `[dma, dma + size)` must lie inside a live mapping of this device.
    unsafe fn sync_for_cpu(&self, dev: &Device, dma: DmaAddr, size: usize, dir: Direction);

    /// `sync_single_for_device`.
    ///
    /// # Safety
    ///
    /// As [`DmaOps::sync_for_cpu`].
    unsafe fn sync_for_device(&self, dev: &Device, dma: DmaAddr, size: usize, dir: Direction);

    /// Translates a bus address for the simulated bus master: the physical address of
    /// `[dma, dma + len)`, if the device may access it this way.
    ///
    /// # Errors
    ///
    /// The fault an IOMMU would report.
    fn translate(
        &self,
        dev: &Device,
        dma: DmaAddr,
        len: usize,
        write: bool,
    ) -> core::result::Result<PhysAddr, FaultKind>;
}
