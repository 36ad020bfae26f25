//! Noncontiguous allocations: `dma_alloc_noncontiguous`, `dma_free_noncontiguous`,
//! `dma_vmap_noncontiguous`, `dma_vunmap_noncontiguous` (`kernel/dma/mapping.c`).
//!
//! Cached memory the device sees as one DMA segment, described by a scatter-gather table
//! of its CPU ranges. Behind an IOMMU the pages are scattered and `vmap_noncontiguous` gives
//! them one virtually contiguous CPU range; on the direct path (and for ops that do not
//! override it) the table has one entry, a `dma_alloc_pages` block, whose address the vmap
//! call returns as is. Ownership moves with `dma_sync_sgtable_for_{device,cpu}`.

use std::ptr::NonNull;

use crate::addr::DmaAddr;
use crate::attrs::Attrs;
use crate::device::Device;
use crate::direction::Direction;
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;
use crate::scatterlist::SgTable;

impl Device {
    /// `dma_alloc_noncontiguous`: `size` bytes of cached, zeroed memory, owned by the CPU,
    /// that the device sees as one DMA segment (`sgt.sgl[0]`'s DMA fields, `nents == 1`).
    ///
    /// # Errors
    ///
    /// `EINVAL` for size 0, `DMA_NONE`, zone flags or `__GFP_COMP` in `gfp`, or attributes
    /// other than `ALLOC_SINGLE_PAGES` and `NO_WARN`; `ENOMEM` when memory or address space
    /// ran out.
    pub fn alloc_noncontiguous(&self, size: usize, dir: Direction, gfp: Gfp, attrs: Attrs) -> Result<SgTable> {
        if size == 0
            || dir.check().is_err()
            || gfp.intersects(Gfp::ZONE_MASK | Gfp::__GFP_COMP)
            || !(Attrs::ALLOC_SINGLE_PAGES | Attrs::NO_WARN).contains(attrs)
        {
            self.warn(format_args!("dma_alloc_noncontiguous: refused (size {size}, {dir}, {gfp:?}, {attrs:?})"));
            return Err(Errno::EINVAL);
        }
        match &self.ops {
            None => alloc_single(self, size, dir, gfp),
            Some(ops) => ops.alloc_noncontiguous(self, size, dir, gfp, attrs),
        }
    }

    /// `dma_free_noncontiguous`.
    ///
    /// # Safety
    ///
    /// `size` and `sgt` must be those of one live `alloc_noncontiguous` on this device, with
    /// no live `vmap_noncontiguous`, and nothing may use the memory afterwards.
    pub unsafe fn free_noncontiguous(&self, size: usize, sgt: SgTable, dir: Direction) {
        match &self.ops {
            // SAFETY: forwarded from the caller.
            None => unsafe { free_single(self, size, sgt, dir) },
            // SAFETY: forwarded from the caller.
            Some(ops) => unsafe { ops.free_noncontiguous(self, size, sgt, dir) },
        }
    }

    /// `dma_vmap_noncontiguous`: one virtually contiguous, cached CPU mapping of an
    /// `alloc_noncontiguous` table, valid until `vunmap_noncontiguous`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty table; `ENOMEM` or the OS error when the mapping cannot be made.
    pub fn vmap_noncontiguous(&self, size: usize, sgt: &SgTable) -> Result<NonNull<u8>> {
        match &self.ops {
            None => single_vaddr(sgt),
            Some(ops) => ops.vmap_noncontiguous(self, size, sgt),
        }
    }

    /// `dma_vunmap_noncontiguous`. A null `vaddr` is a no-op.
    ///
    /// # Safety
    ///
    /// `vaddr` must come from `vmap_noncontiguous` on this device, and nothing may use it
    /// afterwards.
    pub unsafe fn vunmap_noncontiguous(&self, vaddr: *mut u8) {
        if let (Some(ops), Some(vaddr)) = (&self.ops, NonNull::new(vaddr)) {
            // SAFETY: forwarded from the caller.
            unsafe { ops.vunmap_noncontiguous(self, vaddr) }
        }
    }
}

/// `alloc_single_sgt`: a `dma_alloc_pages` block as a one-entry table.
pub(crate) fn alloc_single(dev: &Device, size: usize, dir: Direction, gfp: Gfp) -> Result<SgTable> {
    // The segment covers whole pages, as the kernel's `alloc_single_sgt` has it.
    let Some(len) = crate::page_align(size).and_then(|s| u32::try_from(s).ok()) else { return Err(Errno::EINVAL) };
    let (page, dma) = dev.alloc_pages(size, dir, gfp)?;
    let mut sgt = SgTable::new();
    sgt.push(dev.system().page_address(page), len);
    sgt.sgl[0].dma_address = dma.0;
    sgt.sgl[0].dma_length = len;
    sgt.nents = 1;
    Ok(sgt)
}

/// `free_single_sgt`.
///
/// # Safety
///
/// As [`Device::free_noncontiguous`], for a table from [`alloc_single`].
pub(crate) unsafe fn free_single(dev: &Device, size: usize, sgt: SgTable, dir: Direction) {
    let page = sgt.sgl.first().and_then(|sg| dev.system().virt_to_page(sg.cpu_addr).map(|p| (p, sg.dma_address)));
    match page {
        // SAFETY: forwarded from the caller.
        Some((page, dma)) => unsafe { dev.free_pages(size, page, DmaAddr(dma), dir) },
        None => dev.warn(format_args!("dma_free_noncontiguous: the table is not from dma_alloc_noncontiguous")),
    }
}

/// The CPU address of a one-entry table's block.
pub(crate) fn single_vaddr(sgt: &SgTable) -> Result<NonNull<u8>> {
    sgt.sgl.first().and_then(|sg| NonNull::new(sg.cpu_addr)).ok_or(Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use crate::{Attrs, Coherence, Device, DeviceConfig, Direction, DmaMask, Errno, Gfp, System};

    #[test]
    fn direct_path_is_one_block_and_vmap_is_its_address() {
        let sys = System::builder().build().unwrap();
        let dev = Device::new(&sys, DeviceConfig::new("nc").coherence(Coherence::NonCoherent).mask(DmaMask::bits(32)))
            .unwrap();
        let sgt = dev.alloc_noncontiguous(3 * 4096, Direction::FromDevice, Gfp::GFP_KERNEL, Attrs::empty()).unwrap();
        assert_eq!((sgt.nents, sgt.orig_nents()), (1, 1));
        let (dma, len) = sgt.dma_segments().next().unwrap();
        assert_eq!(len, 3 * 4096);
        assert!(dma.0 + len as u64 <= 1 << 32);
        let v = dev.vmap_noncontiguous(3 * 4096, &sgt).unwrap();
        assert_eq!(v.as_ptr(), sgt.sgl[0].cpu_addr);
        // SAFETY: the mapping and allocation are not used afterwards.
        unsafe {
            dev.vunmap_noncontiguous(v.as_ptr());
            dev.free_noncontiguous(3 * 4096, sgt, Direction::FromDevice);
        }
        let bad = dev.alloc_noncontiguous(4096, Direction::ToDevice, Gfp::GFP_KERNEL, Attrs::FORCE_CONTIGUOUS);
        assert_eq!(bad.err(), Some(Errno::EINVAL));
    }
}
