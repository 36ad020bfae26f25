//! The DMA API entry points: checks, then the direct path or the device's ops
//! (`kernel/dma/mapping.c`).
//!
//! These are the raw, kernel-shaped calls the C ABI is built on: CPU pointers, bus
//! addresses and sizes, with ownership rules stated in each `# Safety` section. Rust code
//! should prefer the typed buffers in [`crate::api`], where the compiler enforces who
//! owns what.
//!
//! A device without ops goes direct with no indirect call: the check is one predictable
//! branch. Bad input (zero size, `DMA_NONE`, unknown attribute bits in the C ABI,
//! compound pages, zone flags where the kernel refuses them) returns `EINVAL` with a
//! message, never a panic.

use std::panic::Location;
use std::ptr::NonNull;

use crate::addr::{DmaAddr, PhysAddr};
use crate::attrs::Attrs;
use crate::debug::EntryKind;
use crate::device::Device;
use crate::direct;
use crate::direction::Direction;
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;
use crate::mask::DmaMask;
use crate::mem::page_alloc::Page;
use crate::scatterlist::{Scatterlist, SgTable};

impl Device {
    /// `dma_set_mask`.
    ///
    /// # Errors
    ///
    /// `EIO` when the platform (or the ops) cannot serve the mask: it is smaller than
    /// ZONE_DMA or reaches no RAM at all.
    pub fn set_mask(&self, mask: DmaMask) -> Result<()> {
        if !self.mask_supported(mask) {
            self.warn(format_args!("dma_set_mask: {mask:?} is not supported by this platform"));
            return Err(Errno::EIO);
        }
        self.store_mask(mask);
        Ok(())
    }

    /// `dma_set_coherent_mask`.
    ///
    /// # Errors
    ///
    /// As [`Device::set_mask`].
    pub fn set_coherent_mask(&self, mask: DmaMask) -> Result<()> {
        if !self.mask_supported(mask) {
            self.warn(format_args!("dma_set_coherent_mask: {mask:?} is not supported by this platform"));
            return Err(Errno::EIO);
        }
        self.store_coherent_mask(mask);
        Ok(())
    }

    /// `dma_set_mask_and_coherent`: the coherent mask is set only if the streaming
    /// mask was accepted.
    ///
    /// # Errors
    ///
    /// As [`Device::set_mask`].
    pub fn set_mask_and_coherent(&self, mask: DmaMask) -> Result<()> {
        self.set_mask(mask)?;
        self.set_coherent_mask(mask)
    }

    fn mask_supported(&self, mask: DmaMask) -> bool {
        match &self.ops {
            None => direct::supported(self, mask),
            Some(ops) => ops.supported(self, mask),
        }
    }

    /// `dma_get_required_mask`: the smallest mask that reaches all RAM without bouncing.
    pub fn required_mask(&self) -> u64 {
        match &self.ops {
            None => direct::required_mask(self),
            Some(ops) => ops.required_mask(self),
        }
    }

    /// `dma_addressing_limited`: true when some RAM is out of the device's reach.
    pub fn addressing_limited(&self) -> bool {
        self.map_limit() < self.required_mask()
    }

    /// `dma_max_mapping_size`: the largest streaming mapping that can succeed
    /// (swiotlb's 256 KiB for a device that may bounce, else unlimited).
    pub fn max_mapping_size(&self) -> usize {
        match &self.ops {
            None => direct::max_mapping_size(self),
            Some(ops) => ops.max_mapping_size(self),
        }
    }

    /// `dma_need_sync`: whether sync calls for this mapping do anything.
    pub fn need_sync(&self, dma: DmaAddr) -> bool {
        match &self.ops {
            None => direct::need_sync(self, dma),
            Some(ops) => ops.need_sync(self, dma),
        }
    }

    /// `dma_need_unmap`: whether a streaming mapping must be unmapped at all. False only
    /// on the direct path for a coherent device that never bounced, with dma-debug off:
    /// then unmap would do nothing, and a driver may skip keeping the bus address.
    pub fn need_unmap(&self) -> bool {
        self.ops.is_some() || !self.skip_sync() || self.system().debug().is_some()
    }

    /// `dma_get_cache_alignment`.
    pub fn cache_alignment(&self) -> usize {
        self.system().cache_alignment()
    }

    /// `dma_alloc_attrs`: memory the device can always see. On a coherent device it is
    /// ordinary cached memory; on a non-coherent one it is an uncached alias, unless
    /// `NON_CONSISTENT` asks for cached memory whose ownership moves with `sync_*`.
    /// Zone flags in `gfp` are ignored: the device's coherent mask decides the zone.
    /// Returns the CPU address and the bus address (`*dma_handle`).
    ///
    /// # Errors
    ///
    /// `EINVAL` for size 0, `__GFP_COMP` or an invalid request; `ENOMEM` when no
    /// reachable memory is left (with a message unless `NO_WARN` / `__GFP_NOWARN`).
    #[track_caller]
    pub fn alloc_attrs(&self, size: usize, gfp: Gfp, attrs: Attrs) -> Result<(NonNull<u8>, DmaAddr)> {
        if size == 0 || gfp.contains(Gfp::__GFP_COMP) {
            self.warn(format_args!("dma_alloc_attrs: refused (size {size}, gfp {gfp:?})"));
            return Err(Errno::EINVAL);
        }
        let r = match &self.ops {
            None => direct::alloc(self, size, gfp, attrs),
            Some(ops) => ops.alloc(self, size, gfp.difference(Gfp::ZONE_MASK), attrs),
        };
        if let Err(e) = r {
            if e == Errno::ENOMEM && !attrs.contains(Attrs::NO_WARN) && !gfp.contains(Gfp::__GFP_NOWARN) {
                self.warn(format_args!(
                    "dma_alloc_attrs: out of memory for {size} bytes within mask {:#x}",
                    self.alloc_limit()
                ));
            }
        }
        if let (Some(d), Ok((cpu, dma))) = (self.system().debug(), &r) {
            let kind = if attrs.contains(Attrs::NON_CONSISTENT) { EntryKind::Noncoherent } else { EntryKind::Coherent };
            d.allocated(self, cpu.as_ptr() as usize, *dma, size, Direction::Bidirectional, kind, Location::caller());
        }
        r
    }

    /// `dma_free_attrs`. A null `cpu` is a no-op.
    ///
    /// # Safety
    ///
    /// `cpu`, `dma`, `size` and `attrs` must be those of one live `alloc_attrs` on this
    /// device, and nothing may use the memory afterwards.
    #[track_caller]
    pub unsafe fn free_attrs(&self, size: usize, cpu: *mut u8, dma: DmaAddr, attrs: Attrs) {
        let Some(cpu) = NonNull::new(cpu) else { return };
        if let Some(d) = self.system().debug() {
            let kind = if attrs.contains(Attrs::NON_CONSISTENT) { EntryKind::Noncoherent } else { EntryKind::Coherent };
            d.unmapping(self, dma, size, Direction::Bidirectional, kind, cpu.as_ptr() as usize, 0, Location::caller());
        }
        match &self.ops {
            None => direct::free(self, size, cpu, dma, attrs),
            // SAFETY: forwarded from the caller.
            Some(ops) => unsafe { ops.free(self, size, cpu, dma, attrs) },
        }
    }

    /// `dma_alloc_coherent`: `alloc_attrs` with `NO_WARN` when `gfp` has `__GFP_NOWARN`.
    ///
    /// # Errors
    ///
    /// As [`Device::alloc_attrs`].
    #[track_caller]
    pub fn alloc_coherent(&self, size: usize, gfp: Gfp) -> Result<(NonNull<u8>, DmaAddr)> {
        let attrs = if gfp.contains(Gfp::__GFP_NOWARN) { Attrs::NO_WARN } else { Attrs::empty() };
        self.alloc_attrs(size, gfp, attrs)
    }

    /// `dma_free_coherent`.
    ///
    /// # Safety
    ///
    /// As [`Device::free_attrs`] with empty attrs.
    #[track_caller]
    pub unsafe fn free_coherent(&self, size: usize, cpu: *mut u8, dma: DmaAddr) {
        // SAFETY: forwarded from the caller.
        unsafe { self.free_attrs(size, cpu, dma, Attrs::empty()) }
    }

    /// `dma_alloc_pages`: cached, zeroed pages the device can reach, owned by the CPU
    /// until `sync_single_for_device`. Never uncached, on any device.
    ///
    /// # Errors
    ///
    /// `EINVAL` for size 0, zone flags or `__GFP_COMP` in `gfp`, or `DMA_NONE`;
    /// `ENOMEM` when no reachable memory is left.
    #[track_caller]
    pub fn alloc_pages(&self, size: usize, dir: Direction, gfp: Gfp) -> Result<(Page, DmaAddr)> {
        let r = self.alloc_pages_inner(size, dir, gfp);
        if let (Some(d), Ok((page, dma))) = (self.system().debug(), &r) {
            let cpu = self.system().page_address(*page) as usize;
            d.allocated(self, cpu, *dma, size, dir, EntryKind::Noncoherent, Location::caller());
        }
        r
    }

    fn alloc_pages_inner(&self, size: usize, dir: Direction, gfp: Gfp) -> Result<(Page, DmaAddr)> {
        dir.check()?;
        if size == 0 || gfp.intersects(Gfp::ZONE_MASK | Gfp::__GFP_COMP) {
            self.warn(format_args!("dma_alloc_pages: refused (size {size}, gfp {gfp:?})"));
            return Err(Errno::EINVAL);
        }
        match &self.ops {
            None => direct::alloc_pages(self, size, gfp),
            Some(ops) => {
                let (cpu, dma) = ops.alloc(self, size, gfp, Attrs::NON_CONSISTENT)?;
                match self.system().virt_to_page(cpu.as_ptr()) {
                    Some(page) => Ok((page, dma)),
                    None => {
                        // SAFETY: the allocation was just made and is not used.
                        unsafe { ops.free(self, size, cpu, dma, Attrs::NON_CONSISTENT) };
                        Err(Errno::ENOMEM)
                    }
                }
            }
        }
    }

    /// `dma_free_pages`.
    ///
    /// # Safety
    ///
    /// `page`, `dma` and `size` must be those of one live `alloc_pages` on this device,
    /// and nothing may use the memory afterwards.
    #[track_caller]
    pub unsafe fn free_pages(&self, size: usize, page: Page, dma: DmaAddr, dir: Direction) {
        if let Some(d) = self.system().debug() {
            let cpu = self.system().page_address(page) as usize;
            d.unmapping(self, dma, size, dir, EntryKind::Noncoherent, cpu, 0, Location::caller());
        }
        match &self.ops {
            None => direct::free_pages(self, size, page, dma),
            Some(ops) => {
                let cpu = self.system().page_address(page);
                if let Some(cpu) = NonNull::new(cpu) {
                    // SAFETY: forwarded from the caller.
                    unsafe { ops.free(self, size, cpu, dma, Attrs::NON_CONSISTENT) };
                }
            }
        }
    }

    /// `dma_alloc_noncoherent`: [`Device::alloc_pages`] returning the CPU address.
    ///
    /// # Errors
    ///
    /// As [`Device::alloc_pages`].
    #[track_caller]
    pub fn alloc_noncoherent(&self, size: usize, dir: Direction, gfp: Gfp) -> Result<(NonNull<u8>, DmaAddr)> {
        let (page, dma) = self.alloc_pages(size, dir, gfp)?;
        let cpu = self.system().page_address(page);
        NonNull::new(cpu).map(|c| (c, dma)).ok_or(Errno::EFAULT)
    }

    /// `dma_free_noncoherent`.
    ///
    /// # Safety
    ///
    /// As [`Device::free_pages`], with the CPU address `alloc_noncoherent` returned.
    #[track_caller]
    pub unsafe fn free_noncoherent(&self, size: usize, cpu: *mut u8, dma: DmaAddr, dir: Direction) {
        match self.system().virt_to_page(cpu) {
            // SAFETY: forwarded from the caller.
            Some(page) if self.system().page_address(page) == cpu => unsafe { self.free_pages(size, page, dma, dir) },
            _ if cpu.is_null() => {}
            _ => self.warn(format_args!("dma_free_noncoherent: {cpu:p} is not a page this library allocated")),
        }
    }

    /// `dma_map_page_attrs`: map `size` bytes at `offset` in `page`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for size 0, `DMA_NONE` or a range outside RAM; `ENOMEM` when the bounce
    /// pool is full; `EIO` when the device cannot reach the memory and nothing can bounce it.
    ///
    /// # Safety
    ///
    /// The pages must stay allocated until unmap, and the CPU must not access them while
    /// the device owns them (between map or `sync_*_for_device` and unmap or
    /// `sync_*_for_cpu`).
    #[track_caller]
    pub unsafe fn map_page(
        &self,
        page: Page,
        offset: usize,
        size: usize,
        dir: Direction,
        attrs: Attrs,
    ) -> Result<DmaAddr> {
        let Some(phys) = page.phys().checked_add(offset as u64) else { return Err(Errno::EINVAL) };
        let cpu = self.system().ram().cached_ptr(phys, size).ok_or(Errno::EINVAL)?;
        // SAFETY: forwarded from the caller.
        unsafe { self.map_single(cpu, size, dir, attrs) }
    }

    /// `dma_map_single_attrs`: map `size` bytes at CPU address `ptr`. Platform memory
    /// (kmalloc, pages, non-coherent allocations) maps directly when the device can reach
    /// it; memory the platform does not own (a heap or stack buffer of the process) has
    /// no bus address and bounces through swiotlb: correct, at the cost of a copy.
    ///
    /// # Errors
    ///
    /// As [`Device::map_page`]; also `EINVAL` for an uncached (coherent) alias, like the
    /// kernel's refusal of vmalloc addresses.
    ///
    /// # Safety
    ///
    /// `[ptr, ptr + size)` must stay valid for reads and writes until unmap, and the CPU
    /// must not access it while the device owns it.
    #[track_caller]
    pub unsafe fn map_single(&self, ptr: *mut u8, size: usize, dir: Direction, attrs: Attrs) -> Result<DmaAddr> {
        // SAFETY: forwarded from the caller.
        let r = unsafe { self.map_cpu(ptr, size, dir, attrs) };
        if let Some(d) = self.system().debug() {
            match r {
                Ok(dma) => {
                    d.mapped(self, ptr as usize, size, dir, attrs, dma, EntryKind::Single, 0, Location::caller())
                }
                Err(_) => d.map_refused(self, ptr as usize, size, dir, Location::caller()),
            }
        }
        r
    }

    /// `map_single` without dma-debug (map_sg records its own entries).
    ///
    /// # Safety
    ///
    /// As [`Device::map_single`].
    unsafe fn map_cpu(&self, ptr: *mut u8, size: usize, dir: Direction, attrs: Attrs) -> Result<DmaAddr> {
        if size == 0 || dir.check().is_err() || ptr.is_null() {
            self.warn(format_args!("dma_map_single: refused ({ptr:p}, size {size}, {dir})"));
            return Err(Errno::EINVAL);
        }
        match &self.ops {
            // SAFETY: forwarded from the caller.
            None => unsafe { direct::map_cpu(self, ptr, size, dir, attrs) },
            Some(ops) => match self.system().ram().virt_to_phys(ptr as usize, size) {
                // SAFETY: forwarded from the caller.
                Some(phys) => unsafe { ops.map_phys(self, phys, size, dir, attrs) },
                None => {
                    let cpu = NonNull::new(ptr).ok_or(Errno::EINVAL)?;
                    // SAFETY: forwarded from the caller.
                    let r = unsafe { ops.map_virt(self, cpu, size, dir, attrs) };
                    if r == Err(Errno::EINVAL) {
                        self.warn(format_args!(
                            "dma_map_single: {ptr:p} is not platform memory and {} cannot map process memory; use kmalloc or a DMA allocation",
                            ops.name()
                        ));
                    }
                    r
                }
            },
        }
    }

    /// `dma_unmap_page_attrs` / `dma_unmap_single_attrs`: ends a mapping; the CPU owns
    /// the memory again and sees what the device wrote.
    ///
    /// # Safety
    ///
    /// `dma`, `size` and `dir` must be those of one live mapping of this device, and the
    /// CPU must hold no references into the memory during the call.
    #[track_caller]
    pub unsafe fn unmap_single(&self, dma: DmaAddr, size: usize, dir: Direction, attrs: Attrs) {
        if let Some(d) = self.system().debug() {
            d.unmapping(self, dma, size, dir, EntryKind::Single, 0, 0, Location::caller());
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.unmap_cpu(dma, size, dir, attrs) }
    }

    /// `dma_map_phys`: maps `size` bytes of platform RAM at physical address `phys`, or,
    /// with `Attrs::MMIO`, of a peer device's MMIO (no cache maintenance, no bouncing). The
    /// core of every streaming map: the direct path, else the device's ops.
    ///
    /// # Errors
    ///
    /// `EINVAL` for size 0, `DMA_NONE`, or a range that is not platform RAM without
    /// `Attrs::MMIO`; `EIO` when the device cannot reach the range (and it cannot bounce:
    /// MMIO never does); else as [`Device::map_single`].
    ///
    /// # Safety
    ///
    /// A RAM range must stay allocated until unmap, and the CPU must hold no references
    /// into it while the device owns it.
    #[track_caller]
    pub unsafe fn map_phys(&self, phys: PhysAddr, size: usize, dir: Direction, attrs: Attrs) -> Result<DmaAddr> {
        // SAFETY: forwarded from the caller.
        let r = unsafe { self.map_phys_inner(phys, size, dir, attrs) };
        if let (Some(d), Ok(dma)) = (self.system().debug(), r) {
            d.mapped_phys(self, phys, size, dir, attrs, dma, Location::caller());
        }
        r
    }

    /// `map_phys` without dma-debug.
    ///
    /// # Safety
    ///
    /// As [`Device::map_phys`].
    unsafe fn map_phys_inner(&self, phys: PhysAddr, size: usize, dir: Direction, attrs: Attrs) -> Result<DmaAddr> {
        let mmio = attrs.contains(Attrs::MMIO);
        if size == 0 || dir.check().is_err() || phys.0.checked_add(size as u64).is_none() {
            self.warn(format_args!("dma_map_phys: refused ({phys}, size {size}, {dir})"));
            return Err(Errno::EINVAL);
        }
        if !mmio && !self.system().ram().is_ram(phys, size) {
            self.warn(format_args!("dma_map_phys: {phys}+{size} is not platform RAM (MMIO needs DMA_ATTR_MMIO)"));
            return Err(Errno::EINVAL);
        }
        match &self.ops {
            None => direct::map_phys(self, phys, size, dir, attrs),
            // SAFETY: forwarded from the caller.
            Some(ops) => unsafe { ops.map_phys(self, phys, size, dir, attrs) },
        }
    }

    /// `dma_unmap_phys`: ends a mapping from [`Device::map_phys`].
    ///
    /// # Safety
    ///
    /// As [`Device::unmap_single`].
    #[track_caller]
    pub unsafe fn unmap_phys(&self, dma: DmaAddr, size: usize, dir: Direction, attrs: Attrs) {
        // SAFETY: forwarded from the caller.
        unsafe { self.unmap_single(dma, size, dir, attrs) }
    }

    /// `dma_map_resource`: maps a peer device's MMIO range (a BAR) for this device, for
    /// device-to-device DMA: [`Device::map_phys`] with `Attrs::MMIO`.
    ///
    /// # Errors
    ///
    /// `EINVAL` when the range is platform RAM (use `map_phys` or `map_page`), with a
    /// message; else as [`Device::map_phys`].
    ///
    /// # Safety
    ///
    /// The MMIO range must stay valid for device access until unmap.
    #[track_caller]
    pub unsafe fn map_resource(&self, phys: PhysAddr, size: usize, dir: Direction, attrs: Attrs) -> Result<DmaAddr> {
        if self.system().ram().is_ram(phys, 1) {
            self.warn(format_args!("dma_map_resource: {phys} is RAM, not MMIO; use dma_map_phys or dma_map_page"));
            return Err(Errno::EINVAL);
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.map_phys(phys, size, dir, attrs | Attrs::MMIO) }
    }

    /// `dma_unmap_resource`.
    ///
    /// # Safety
    ///
    /// `dma`, `size` and `dir` must be those of one live mapping from
    /// [`Device::map_resource`].
    #[track_caller]
    pub unsafe fn unmap_resource(&self, dma: DmaAddr, size: usize, dir: Direction, attrs: Attrs) {
        // SAFETY: forwarded from the caller.
        unsafe { self.unmap_single(dma, size, dir, attrs | Attrs::MMIO) }
    }

    /// `unmap_single` without dma-debug.
    ///
    /// # Safety
    ///
    /// As [`Device::unmap_single`].
    unsafe fn unmap_cpu(&self, dma: DmaAddr, size: usize, dir: Direction, attrs: Attrs) {
        if dma.is_error() || dir.check().is_err() {
            return self.warn(format_args!("dma_unmap: tries to free an invalid DMA memory address {dma} ({dir})"));
        }
        match &self.ops {
            None => direct::unmap_phys(self, dma, size, dir, attrs),
            Some(ops) => {
                // SAFETY: forwarded from the caller.
                if let Err(e) = unsafe { ops.unmap_phys(self, dma, size, dir, attrs) } {
                    self.warn(format_args!("dma_unmap: {dma} is not a live mapping: {e}"));
                }
            }
        }
    }

    /// `dma_map_sg_attrs`: maps every entry; returns the number of DMA segments
    /// (the entries' `dma_address` / `dma_length` are filled).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty list, a zero-length entry or `DMA_NONE`; else as
    /// [`Device::map_single`]. On error nothing stays mapped.
    ///
    /// # Safety
    ///
    /// Every entry's CPU range must stay valid until unmap, and the CPU must not access
    /// it while the device owns it.
    #[track_caller]
    pub unsafe fn map_sg(&self, sgl: &mut [Scatterlist], dir: Direction, attrs: Attrs) -> Result<usize> {
        // SAFETY: forwarded from the caller.
        let r = unsafe { self.map_sg_inner(sgl, dir, attrs) };
        if let (Some(d), Ok(n)) = (self.system().debug(), r) {
            for sg in &sgl[..n] {
                let (dma, len) = (DmaAddr(sg.dma_address), sg.dma_length as usize);
                d.mapped(
                    self,
                    sg.cpu_addr as usize,
                    len,
                    dir,
                    attrs,
                    dma,
                    EntryKind::Sg,
                    sgl.len(),
                    Location::caller(),
                );
            }
        }
        r
    }

    /// `map_sg` without dma-debug.
    ///
    /// # Safety
    ///
    /// As [`Device::map_sg`].
    unsafe fn map_sg_inner(&self, sgl: &mut [Scatterlist], dir: Direction, attrs: Attrs) -> Result<usize> {
        if sgl.is_empty() || dir.check().is_err() || sgl.iter().any(|s| s.length == 0 || s.cpu_addr.is_null()) {
            self.warn(format_args!("dma_map_sg: refused ({} entries, {dir})", sgl.len()));
            return Err(Errno::EINVAL);
        }
        match &self.ops {
            // SAFETY: forwarded from the caller.
            None => unsafe { direct::map_sg(self, sgl, dir, attrs) },
            Some(ops) => {
                for sg in sgl.iter_mut() {
                    sg.dma_length = 0;
                    sg.dma_address = crate::addr::DMA_MAPPING_ERROR.0;
                }
                // SAFETY: forwarded from the caller.
                unsafe { ops.map_sg(self, sgl, dir, attrs) }
            }
        }
    }

    /// `dma_unmap_sg_attrs`: pass all the entries given to `map_sg` (`orig_nents`).
    ///
    /// # Safety
    ///
    /// The entries must be those of one live `map_sg` on this device, and the CPU must
    /// hold no references into them during the call.
    #[track_caller]
    pub unsafe fn unmap_sg(&self, sgl: &[Scatterlist], dir: Direction, attrs: Attrs) {
        if let Some(d) = self.system().debug() {
            for sg in sgl.iter().filter(|s| s.dma_length != 0) {
                let (dma, len) = (DmaAddr(sg.dma_address), sg.dma_length as usize);
                d.unmapping(self, dma, len, dir, EntryKind::Sg, 0, sgl.len(), Location::caller());
            }
        }
        match &self.ops {
            None => {
                for sg in sgl.iter().filter(|s| s.dma_length != 0) {
                    // SAFETY: forwarded from the caller.
                    unsafe { self.unmap_cpu(DmaAddr(sg.dma_address), sg.dma_length as usize, dir, attrs) };
                }
            }
            Some(ops) => {
                if dir.check().is_err() {
                    return self.warn(format_args!("dma_unmap_sg: invalid direction {dir}"));
                }
                // SAFETY: forwarded from the caller.
                unsafe { ops.unmap_sg(self, sgl, dir, attrs) }
            }
        }
    }

    /// `dma_get_merge_boundary`: the mask of address bits below which `map_sg` may merge
    /// segments (an IOMMU's granule minus one); 0 when it never merges (the direct path).
    pub fn merge_boundary(&self) -> u64 {
        self.ops.as_ref().map_or(0, |ops| ops.merge_boundary(self))
    }

    /// `dma_opt_mapping_size`: the largest mapping that stays on the fast path (an IOMMU's
    /// IOVA cache range), never above [`Device::max_mapping_size`].
    pub fn opt_mapping_size(&self) -> usize {
        let opt = self.ops.as_ref().map_or(usize::MAX, |ops| ops.opt_mapping_size(self));
        opt.min(self.max_mapping_size())
    }

    /// `dma_map_sgtable`: [`Device::map_sg`] on a table, setting `nents`.
    ///
    /// # Errors
    ///
    /// As [`Device::map_sg`].
    ///
    /// # Safety
    ///
    /// As [`Device::map_sg`].
    #[track_caller]
    pub unsafe fn map_sgtable(&self, sgt: &mut SgTable, dir: Direction, attrs: Attrs) -> Result<()> {
        // SAFETY: forwarded from the caller.
        sgt.nents = unsafe { self.map_sg(&mut sgt.sgl, dir, attrs)? };
        Ok(())
    }

    /// `dma_unmap_sgtable`.
    ///
    /// # Safety
    ///
    /// As [`Device::unmap_sg`].
    #[track_caller]
    pub unsafe fn unmap_sgtable(&self, sgt: &mut SgTable, dir: Direction, attrs: Attrs) {
        // SAFETY: forwarded from the caller.
        unsafe { self.unmap_sg(&sgt.sgl, dir, attrs) };
        sgt.nents = 0;
    }

    /// `dma_sync_single_for_cpu`: gives the CPU ownership of `[dma, dma + size)` (part of
    /// a mapping is fine); what the device wrote becomes visible to the CPU.
    ///
    /// # Safety
    ///
    /// The range must lie inside a live mapping of this device, and the CPU must hold no
    /// references into it during the call.
    #[inline]
    #[track_caller]
    pub unsafe fn sync_single_for_cpu(&self, dma: DmaAddr, size: usize, dir: Direction) {
        if self.skip_sync() {
            return;
        }
        if let Some(d) = self.system().debug() {
            d.synced(self, dma, size, dir, true, None, Location::caller());
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.sync_for_cpu_raw(dma, size, dir) }
    }

    /// `dma_sync_single_for_device`: gives the device ownership; what the CPU wrote
    /// becomes visible to the device.
    ///
    /// # Safety
    ///
    /// As [`Device::sync_single_for_cpu`].
    #[inline]
    #[track_caller]
    pub unsafe fn sync_single_for_device(&self, dma: DmaAddr, size: usize, dir: Direction) {
        if self.skip_sync() {
            return;
        }
        let debug = self.system().debug();
        if let Some(d) = debug {
            d.unguard(self.id(), dma);
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.sync_for_device_raw(dma, size, dir) };
        if let Some(d) = debug {
            d.synced(self, dma, size, dir, false, None, Location::caller());
        }
    }

    /// The sync for the CPU without dma-debug.
    ///
    /// # Safety
    ///
    /// As [`Device::sync_single_for_cpu`].
    unsafe fn sync_for_cpu_raw(&self, dma: DmaAddr, size: usize, dir: Direction) {
        if dir.check().is_err() {
            return self.warn(format_args!("dma_sync_single_for_cpu: invalid direction {dir}"));
        }
        match &self.ops {
            None => direct::sync_for_cpu(self, dma, size, dir),
            // SAFETY: forwarded from the caller.
            Some(ops) => unsafe { ops.sync_for_cpu(self, dma, size, dir) },
        }
    }

    /// The sync for the device without dma-debug.
    ///
    /// # Safety
    ///
    /// As [`Device::sync_single_for_cpu`].
    unsafe fn sync_for_device_raw(&self, dma: DmaAddr, size: usize, dir: Direction) {
        if dir.check().is_err() {
            return self.warn(format_args!("dma_sync_single_for_device: invalid direction {dir}"));
        }
        match &self.ops {
            None => direct::sync_for_device(self, dma, size, dir),
            // SAFETY: forwarded from the caller.
            Some(ops) => unsafe { ops.sync_for_device(self, dma, size, dir) },
        }
    }

    /// `dma_sync_single_range_for_cpu`: the sync at `dma + offset`.
    ///
    /// # Safety
    ///
    /// As [`Device::sync_single_for_cpu`].
    #[track_caller]
    pub unsafe fn sync_single_range_for_cpu(&self, dma: DmaAddr, offset: usize, size: usize, dir: Direction) {
        // SAFETY: forwarded from the caller.
        unsafe { self.sync_single_for_cpu(DmaAddr(dma.0.wrapping_add(offset as u64)), size, dir) }
    }

    /// `dma_sync_single_range_for_device`.
    ///
    /// # Safety
    ///
    /// As [`Device::sync_single_for_cpu`].
    #[track_caller]
    pub unsafe fn sync_single_range_for_device(&self, dma: DmaAddr, offset: usize, size: usize, dir: Direction) {
        // SAFETY: forwarded from the caller.
        unsafe { self.sync_single_for_device(DmaAddr(dma.0.wrapping_add(offset as u64)), size, dir) }
    }

    /// `dma_sync_sg_for_cpu`: pass the entries given to `map_sg` (all of them: dma-debug
    /// checks the count).
    ///
    /// # Safety
    ///
    /// As [`Device::sync_single_for_cpu`], for every entry.
    #[track_caller]
    pub unsafe fn sync_sg_for_cpu(&self, sgl: &[Scatterlist], dir: Direction) {
        if self.skip_sync() {
            return;
        }
        for sg in sgl.iter().filter(|s| s.dma_length != 0) {
            let (dma, len) = (DmaAddr(sg.dma_address), sg.dma_length as usize);
            if let Some(d) = self.system().debug() {
                d.synced(self, dma, len, dir, true, Some(sgl.len()), Location::caller());
            }
            // SAFETY: forwarded from the caller.
            unsafe { self.sync_for_cpu_raw(dma, len, dir) };
        }
    }

    /// `dma_sync_sg_for_device`.
    ///
    /// # Safety
    ///
    /// As [`Device::sync_single_for_cpu`], for every entry.
    #[track_caller]
    pub unsafe fn sync_sg_for_device(&self, sgl: &[Scatterlist], dir: Direction) {
        if self.skip_sync() {
            return;
        }
        for sg in sgl.iter().filter(|s| s.dma_length != 0) {
            let (dma, len) = (DmaAddr(sg.dma_address), sg.dma_length as usize);
            let debug = self.system().debug();
            if let Some(d) = debug {
                d.unguard(self.id(), dma);
            }
            // SAFETY: forwarded from the caller.
            unsafe { self.sync_for_device_raw(dma, len, dir) };
            if let Some(d) = debug {
                d.synced(self, dma, len, dir, false, Some(sgl.len()), Location::caller());
            }
        }
    }

    /// `dma_mapping_error`: `ENOMEM` for [`DMA_MAPPING_ERROR`](crate::DMA_MAPPING_ERROR),
    /// else `Ok`. Tells dma-debug the caller checked the mapping.
    ///
    /// # Errors
    ///
    /// `ENOMEM` for the error sentinel.
    pub fn mapping_error(&self, dma: DmaAddr) -> Result<()> {
        if dma.is_error() {
            return Err(Errno::ENOMEM);
        }
        if let Some(d) = self.system().debug() {
            d.checked(self, dma);
        }
        Ok(())
    }

    /// For the C ABI: the bus address `dma` was just handed out unchecked, so dma-debug
    /// expects a `dma_mapping_error` on it before the unmap (a Rust `Result` is a check).
    pub fn debug_expect_mapping_check(&self, dma: DmaAddr) {
        if let Some(d) = self.system().debug() {
            d.expect_check(self.id(), dma);
        }
    }

    /// `dma_cache_sync`, kept only as a shim over the ownership-transfer calls (the
    /// seed series' rule (b)): `TO_DEVICE` gives the buffer to the device, `FROM_DEVICE`
    /// to the CPU, `BIDIRECTIONAL` does both in turn. `vaddr` must be the CPU address of
    /// a cached allocation of this device (`NON_CONSISTENT` or `alloc_noncoherent`).
    ///
    /// # Safety
    ///
    /// As [`Device::sync_single_for_cpu`].
    #[deprecated(note = "use sync_single_for_device / sync_single_for_cpu, which say who owns the buffer")]
    #[track_caller]
    pub unsafe fn cache_sync(&self, vaddr: *mut u8, size: usize, dir: Direction) {
        let Some(phys) = self.system().ram().virt_to_phys(vaddr as usize, size.max(1)) else {
            return self.warn(format_args!("dma_cache_sync: {vaddr:p} is not a cached DMA allocation"));
        };
        let dma = self.phys_to_dma(phys);
        // SAFETY: forwarded from the caller.
        unsafe {
            match dir {
                Direction::ToDevice => self.sync_single_for_device(dma, size, dir),
                Direction::FromDevice => self.sync_single_for_cpu(dma, size, dir),
                Direction::Bidirectional => {
                    self.sync_single_for_device(dma, size, dir);
                    self.sync_single_for_cpu(dma, size, dir);
                }
                Direction::None => self.warn(format_args!("dma_cache_sync: invalid direction {dir}")),
            }
        }
    }
}
