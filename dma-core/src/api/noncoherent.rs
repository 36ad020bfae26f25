//! `NonCoherentBuffer` / `DeviceOwned`: a `dma_alloc_pages` allocation whose owner is
//! in its type.
//!
//! # Safety
//!
//! Both types wrap one live allocation of `len` elements at `cpu` (platform RAM, cached
//! view). `NonCoherentBuffer` hands out `&[T]` / `&mut [T]` only while the CPU owns the
//! memory; `DeviceOwned` has no CPU accessor at all, so no reference to the memory
//! exists while the device may write it. Ownership changes only by value through the
//! sync calls, which do the cache maintenance.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::addr::DmaAddr;
use crate::api::Pod;
use crate::device::Device;
use crate::direction::Direction;
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;
use crate::mem::page_alloc::Page;

/// The allocation both ownership states share; freed on drop.
///
/// # Invariants
///
/// `cpu` points to `len` initialised `T`s, the whole of a live `dev.alloc_pages`
/// allocation of `len * size_of::<T>()` bytes at `page` / `dma`.
struct Alloc<T: Pod> {
    dev: Arc<Device>,
    page: Page,
    cpu: NonNull<T>,
    dma: DmaAddr,
    len: usize,
    dir: Direction,
}

impl<T: Pod> Alloc<T> {
    fn size(&self) -> usize {
        self.len * size_of::<T>()
    }
}

impl<T: Pod> Drop for Alloc<T> {
    fn drop(&mut self) {
        // SAFETY: the allocation is live and ours (invariant); nothing uses it after drop.
        unsafe { self.dev.free_pages(self.size(), self.page, self.dma, self.dir) };
    }
}

/// Cached DMA memory that the CPU owns: read and write it at full speed, then hand it to
/// the device with [`NonCoherentBuffer::sync_for_device`].
pub struct NonCoherentBuffer<T: Pod>(Alloc<T>);

/// Cached DMA memory that the device owns: only its bus address is available. Take it
/// back with [`DeviceOwned::sync_for_cpu`].
pub struct DeviceOwned<T: Pod>(Alloc<T>);

// SAFETY: each type is the only handle to its allocation; `T: Pod` is Send + Sync.
unsafe impl<T: Pod> Send for NonCoherentBuffer<T> {}
// SAFETY: shared access only yields `&[T]` (Deref), which is Sync for `T: Sync`.
unsafe impl<T: Pod> Sync for NonCoherentBuffer<T> {}
// SAFETY: as for NonCoherentBuffer; DeviceOwned exposes no CPU access at all.
unsafe impl<T: Pod> Send for DeviceOwned<T> {}
// SAFETY: DeviceOwned exposes only plain values (bus address, length).
unsafe impl<T: Pod> Sync for DeviceOwned<T> {}

impl<T: Pod> NonCoherentBuffer<T> {
    /// Allocates `len` zeroed elements of cached memory the device can reach, for
    /// transfers in direction `dir` (`dma_alloc_pages`). Never uncached, on any device.
    ///
    /// # Errors
    ///
    /// `EINVAL` for `len == 0`, a zero-sized `T`, an overflowing size or `DMA_NONE`;
    /// otherwise as [`Device::alloc_pages`].
    #[track_caller]
    pub fn new(dev: &Arc<Device>, len: usize, dir: Direction, gfp: Gfp) -> Result<NonCoherentBuffer<T>> {
        let bytes = len.checked_mul(size_of::<T>()).filter(|&b| b != 0).ok_or(Errno::EINVAL)?;
        if align_of::<T>() > crate::addr::PAGE_SIZE {
            return Err(Errno::EINVAL);
        }
        let (page, dma) = dev.alloc_pages(bytes, dir, gfp)?;
        let cpu = NonNull::new(dev.system().page_address(page)).ok_or(Errno::EFAULT)?.cast();
        // INVARIANT: page aligned, `bytes` long, zeroed (a valid T), owned by us.
        Ok(NonCoherentBuffer(Alloc { dev: Arc::clone(dev), page, cpu, dma, len, dir }))
    }

    /// The transfer direction given at allocation.
    pub fn direction(&self) -> Direction {
        self.0.dir
    }

    /// Gives the buffer to the device (`dma_sync_single_for_device`): what the CPU wrote
    /// is written back to memory, and only the bus address remains accessible.
    #[track_caller]
    pub fn sync_for_device(self) -> DeviceOwned<T> {
        let a = &self.0;
        // SAFETY: the allocation is live; `self` is consumed, so no CPU reference
        // into it survives the call.
        unsafe { a.dev.sync_single_for_device(a.dma, a.size(), a.dir) };
        DeviceOwned(self.0)
    }
}

impl<T: Pod> Deref for NonCoherentBuffer<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the CPU owns the memory (this type), which holds `len` initialised
        // elements (invariant).
        unsafe { std::slice::from_raw_parts(self.0.cpu.as_ptr(), self.0.len) }
    }
}

impl<T: Pod> DerefMut for NonCoherentBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the reference unique.
        unsafe { std::slice::from_raw_parts_mut(self.0.cpu.as_ptr(), self.0.len) }
    }
}

impl<T: Pod> DeviceOwned<T> {
    /// The bus address to program into the device.
    pub fn dma_handle(&self) -> DmaAddr {
        self.0.dma
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// Always false: empty buffers cannot be allocated.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.0.size()
    }

    /// Takes the buffer back from the device (`dma_sync_single_for_cpu`): stale cache
    /// lines are dropped, so the CPU reads what the device wrote.
    #[track_caller]
    pub fn sync_for_cpu(self) -> NonCoherentBuffer<T> {
        let a = &self.0;
        // SAFETY: the allocation is live and no CPU reference into it exists while it is
        // device-owned.
        unsafe { a.dev.sync_single_for_cpu(a.dma, a.size(), a.dir) };
        NonCoherentBuffer(self.0)
    }
}

impl<T: Pod> std::fmt::Debug for NonCoherentBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonCoherentBuffer")
            .field("device", &self.0.dev.name())
            .field("len", &self.0.len)
            .field("dir", &self.0.dir)
            .finish()
    }
}

impl<T: Pod> std::fmt::Debug for DeviceOwned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceOwned")
            .field("device", &self.0.dev.name())
            .field("dma", &self.0.dma)
            .field("len", &self.0.len)
            .finish()
    }
}
