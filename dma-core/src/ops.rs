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
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;
use crate::iova::IovaState;
use crate::mask::{DmaMask, dma_bit_mask};
use crate::noncontiguous;
use crate::scatterlist::{Scatterlist, SgTable};

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

    /// `unmap_phys`.
    ///
    /// # Errors
    ///
    /// `EINVAL` when `dma` is not a live mapping.
    ///
    /// # Safety
    ///
    /// `dma` and `size` must be those of one live mapping from `map_phys`.
    unsafe fn unmap_phys(&self, dev: &Device, dma: DmaAddr, size: usize, dir: Direction, attrs: Attrs) -> Result<()>;

    /// `map_phys` for memory the platform does not own (a heap or stack buffer of the
    /// process, which has no physical address here). Only ops that map process addresses
    /// themselves can (VFIO hands the IOMMU a virtual address); the default refuses with
    /// `EINVAL`, and the caller says why.
    ///
    /// # Errors
    ///
    /// `EINVAL` when the ops cannot map process memory; else as [`DmaOps::map_phys`].
    ///
    /// # Safety
    ///
    /// `[cpu, cpu + size)` must stay valid until the unmap, and the CPU must not touch it
    /// while the device owns it.
    unsafe fn map_virt(
        &self,
        dev: &Device,
        cpu: std::ptr::NonNull<u8>,
        size: usize,
        dir: Direction,
        attrs: Attrs,
    ) -> Result<DmaAddr> {
        let _ = (dev, cpu, size, dir, attrs);
        Err(crate::Errno::EINVAL)
    }

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

    /// `map_sg`: maps every entry's CPU range (platform memory); fills the first `n` entries'
    /// DMA fields with `n` DMA segments, clears the rest's `dma_length`, and returns `n`. An
    /// IOMMU may merge entries. The default maps each entry on its own with
    /// [`DmaOps::map_phys`].
    ///
    /// # Errors
    ///
    /// `EINVAL` for an entry that is not platform memory; else as [`DmaOps::map_phys`]. On
    /// error nothing stays mapped.
    ///
    /// # Safety
    ///
    /// As [`DmaOps::map_phys`], for every entry.
    unsafe fn map_sg(&self, dev: &Device, sgl: &mut [Scatterlist], dir: Direction, attrs: Attrs) -> Result<usize> {
        for i in 0..sgl.len() {
            let len = sgl[i].length as usize;
            let r = match dev.system().ram().virt_to_phys(sgl[i].cpu_addr as usize, len) {
                // SAFETY: forwarded from the caller.
                Some(phys) => unsafe { self.map_phys(dev, phys, len, dir, attrs) },
                None => {
                    dev.warn(format_args!("dma_map_sg: {:p} is not platform memory", sgl[i].cpu_addr));
                    Err(Errno::EINVAL)
                }
            };
            match r {
                Ok(dma) => {
                    sgl[i].dma_address = dma.0;
                    sgl[i].dma_length = sgl[i].length;
                }
                Err(e) => {
                    // SAFETY: these entries were mapped just above.
                    unsafe { self.unmap_sg(dev, &sgl[..i], dir, attrs | Attrs::SKIP_CPU_SYNC) };
                    return Err(e);
                }
            }
        }
        Ok(sgl.len())
    }

    /// `unmap_sg`: ends a `map_sg`, given all its entries (`orig_nents`). The default unmaps
    /// each DMA segment with [`DmaOps::unmap_phys`].
    ///
    /// # Safety
    ///
    /// The entries must be those of one live `map_sg` of these ops on `dev`.
    unsafe fn unmap_sg(&self, dev: &Device, sgl: &[Scatterlist], dir: Direction, attrs: Attrs) {
        for sg in sgl.iter().filter(|s| s.dma_length != 0) {
            // SAFETY: forwarded from the caller.
            if let Err(e) = unsafe { self.unmap_phys(dev, DmaAddr(sg.dma_address), sg.dma_length as usize, dir, attrs) }
            {
                dev.warn(format_args!("dma_unmap_sg: {} is not a live mapping: {e}", DmaAddr(sg.dma_address)));
            }
        }
    }

    /// `get_merge_boundary`: the mask of address bits below which `map_sg` can merge
    /// segments (the IOMMU granule minus one); 0 when it never merges.
    fn merge_boundary(&self, _dev: &Device) -> u64 {
        0
    }

    /// `opt_mapping_size`: the largest mapping that stays on the fast path.
    fn opt_mapping_size(&self, _dev: &Device) -> usize {
        usize::MAX
    }

    /// `alloc_noncontiguous`: cached pages the device sees as one DMA segment, described by
    /// a table of their CPU ranges. The default is one contiguous `dma_alloc_pages` block.
    ///
    /// # Errors
    ///
    /// As [`Device::alloc_pages`].
    fn alloc_noncontiguous(
        &self,
        dev: &Device,
        size: usize,
        dir: Direction,
        gfp: Gfp,
        _attrs: Attrs,
    ) -> Result<SgTable> {
        noncontiguous::alloc_single(dev, size, dir, gfp)
    }

    /// `free_noncontiguous`.
    ///
    /// # Safety
    ///
    /// `size` and `sgt` must be those of one live `alloc_noncontiguous` of these ops on
    /// `dev`, with no live vmap, and nothing may use the memory afterwards.
    unsafe fn free_noncontiguous(&self, dev: &Device, size: usize, sgt: SgTable, dir: Direction) {
        // SAFETY: forwarded from the caller.
        unsafe { noncontiguous::free_single(dev, size, sgt, dir) }
    }

    /// `vmap_noncontiguous`: one virtually contiguous, cached CPU mapping of the pages. The
    /// default returns the single block's address.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a table that is not from `alloc_noncontiguous`; `ENOMEM` or the OS error
    /// when the mapping cannot be made.
    fn vmap_noncontiguous(&self, _dev: &Device, _size: usize, sgt: &SgTable) -> Result<NonNull<u8>> {
        noncontiguous::single_vaddr(sgt)
    }

    /// `vunmap_noncontiguous`: removes a mapping from `vmap_noncontiguous` (the default has
    /// nothing to remove).
    ///
    /// # Safety
    ///
    /// `vaddr` must come from `vmap_noncontiguous` of these ops on `dev`, and nothing may
    /// use it afterwards.
    unsafe fn vunmap_noncontiguous(&self, _dev: &Device, _vaddr: NonNull<u8>) {}

    /// `dma_iova_try_alloc`'s work: IOVA space under the device's mask for `size` bytes
    /// starting at `phys`'s offset within the granule. Returns the bus address of byte 0
    /// (the IOVA plus that offset). The default has no IOVA space.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` when the ops have no IOVA space; `ENOMEM` when it ran out.
    fn iova_alloc(&self, _dev: &Device, _phys: PhysAddr, _size: usize) -> Result<DmaAddr> {
        Err(Errno::EOPNOTSUPP)
    }

    /// `dma_iova_free`: returns the range of a state with nothing linked.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a range that is not live (freed already, never allocated), `EBUSY` for
    /// one with links left: nothing is freed, after a message. `EOPNOTSUPP` by default.
    fn iova_free(&self, _dev: &Device, _state: &IovaState) -> Result<()> {
        Err(Errno::EOPNOTSUPP)
    }

    /// `dma_iova_link`: maps `[phys, phys + size)` at `state.addr + offset`; the caller has
    /// checked the range lies in the state's and `phys` is RAM (or `MMIO`).
    ///
    /// # Errors
    ///
    /// As [`Device::iova_link`](crate::Device::iova_link); `EOPNOTSUPP` by default.
    ///
    /// # Safety
    ///
    /// As [`Device::iova_link`](crate::Device::iova_link).
    #[allow(clippy::too_many_arguments)]
    unsafe fn iova_link(
        &self,
        _dev: &Device,
        _state: &IovaState,
        _phys: PhysAddr,
        _offset: usize,
        _size: usize,
        _dir: Direction,
        _attrs: Attrs,
    ) -> Result<()> {
        Err(Errno::EOPNOTSUPP)
    }

    /// `dma_iova_sync`: makes the links of `[offset, offset + size)` visible to the device.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a range that is not live; `EOPNOTSUPP` by default.
    fn iova_sync(&self, _dev: &Device, _state: &IovaState, _offset: usize, _size: usize) -> Result<()> {
        Err(Errno::EOPNOTSUPP)
    }

    /// `dma_iova_unlink`: unmaps what is linked in `[offset, offset + size)`, keeping the
    /// IOVA space.
    ///
    /// # Errors
    ///
    /// `EINVAL`, after a message, for a range that is not live (nothing is unmapped) or one
    /// only partly linked (the linked part is unmapped); `EOPNOTSUPP` by default.
    ///
    /// # Safety
    ///
    /// As [`Device::iova_unlink`](crate::Device::iova_unlink).
    unsafe fn iova_unlink(
        &self,
        _dev: &Device,
        _state: &IovaState,
        _offset: usize,
        _size: usize,
        _dir: Direction,
        _attrs: Attrs,
    ) -> Result<()> {
        Err(Errno::EOPNOTSUPP)
    }
}
