//! `CoherentBuffer`: a `dma_alloc_coherent` allocation.
//!
//! # Safety
//!
//! The buffer owns `len` elements at `cpu`, allocated by `alloc_attrs` for `dev` and
//! freed on drop. Every CPU access is a bounds-checked volatile read or write of one
//! element (or a volatile copy of a range), never a reference, because the device may
//! write the memory at any time. The type is `Send` but not `Sync`, so CPU accesses come
//! from one thread at a time.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::addr::DmaAddr;
use crate::api::Pod;
use crate::attrs::Attrs;
use crate::device::Device;
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;

/// Memory the CPU and the device share at all times, with no sync calls.
///
/// On a coherent device it is ordinary cached memory; on a non-coherent one, an uncached
/// alias (slow for the CPU: prefer [`crate::api::NonCoherentBuffer`] for bulk data).
///
/// # Invariants
///
/// `cpu` points to `len` initialised elements of a live allocation of `len *
/// size_of::<T>()` bytes made by `dev.alloc_attrs`, whose bus address is `dma`.
pub struct CoherentBuffer<T: Pod> {
    dev: Arc<Device>,
    cpu: NonNull<T>,
    dma: DmaAddr,
    len: usize,
    _owns: PhantomData<T>,
}

// SAFETY: the buffer owns its allocation; moving it to another thread moves the only
// CPU handle. (Not `Sync`: see the module docs.)
unsafe impl<T: Pod> Send for CoherentBuffer<T> {}

impl<T: Pod> CoherentBuffer<T> {
    /// Allocates `len` zeroed elements.
    ///
    /// # Errors
    ///
    /// `EINVAL` for `len == 0`, a zero-sized `T` or an overflowing size; otherwise as
    /// [`Device::alloc_attrs`].
    #[track_caller]
    pub fn new_zeroed(dev: &Arc<Device>, len: usize, gfp: Gfp) -> Result<CoherentBuffer<T>> {
        let bytes = len.checked_mul(size_of::<T>()).filter(|&b| b != 0).ok_or(Errno::EINVAL)?;
        if align_of::<T>() > crate::addr::PAGE_SIZE {
            return Err(Errno::EINVAL);
        }
        let (cpu, dma) = dev.alloc_attrs(bytes, gfp, Attrs::empty())?;
        // INVARIANT: the allocation is page aligned (so aligned for T), `bytes` long and
        // zeroed, and zero is a valid `T` (Pod).
        Ok(CoherentBuffer { dev: Arc::clone(dev), cpu: cpu.cast(), dma, len, _owns: PhantomData })
    }

    /// Allocates `len` elements and lets the CPU fill them before the bus address
    /// exists: the device cannot be told about the buffer while it is half written.
    ///
    /// # Errors
    ///
    /// As [`CoherentBuffer::new_zeroed`].
    #[track_caller]
    pub fn new_with(dev: &Arc<Device>, len: usize, gfp: Gfp, fill: impl FnOnce(&mut [T])) -> Result<CoherentBuffer<T>> {
        let buf = CoherentBuffer::new_zeroed(dev, len, gfp)?;
        // SAFETY: nobody else knows the bus address yet, so no device writes; `cpu` holds
        // `len` initialised elements and this is the only reference.
        fill(unsafe { std::slice::from_raw_parts_mut(buf.cpu.as_ptr(), len) });
        Ok(buf)
    }

    /// The bus address to program into the device.
    pub fn dma_handle(&self) -> DmaAddr {
        self.dma
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: empty buffers cannot be allocated.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.len * size_of::<T>()
    }

    /// Reads element `i`, or `None` past the end.
    pub fn read(&self, i: usize) -> Option<T> {
        // SAFETY: `i < len`, so the element is inside the allocation (invariant).
        (i < self.len).then(|| unsafe { self.cpu.as_ptr().add(i).read_volatile() })
    }

    /// Writes element `i`.
    ///
    /// # Errors
    ///
    /// `EINVAL` past the end.
    pub fn write(&mut self, i: usize, value: T) -> Result<()> {
        if i >= self.len {
            return Err(Errno::EINVAL);
        }
        // SAFETY: as in `read`; `&mut self` means no other CPU access is in progress.
        unsafe { self.cpu.as_ptr().add(i).write_volatile(value) };
        Ok(())
    }

    /// Copies `src` into the buffer at element `offset`.
    ///
    /// # Errors
    ///
    /// `EINVAL` when the range runs past the end.
    pub fn copy_from_slice(&mut self, offset: usize, src: &[T]) -> Result<()> {
        self.check(offset, src.len())?;
        for (k, v) in src.iter().enumerate() {
            // SAFETY: `offset + k < len`, checked above.
            unsafe { self.cpu.as_ptr().add(offset + k).write_volatile(*v) };
        }
        Ok(())
    }

    /// Copies elements from `offset` into `dst`.
    ///
    /// # Errors
    ///
    /// `EINVAL` when the range runs past the end.
    pub fn copy_to_slice(&self, offset: usize, dst: &mut [T]) -> Result<()> {
        self.check(offset, dst.len())?;
        for (k, v) in dst.iter_mut().enumerate() {
            // SAFETY: `offset + k < len`, checked above.
            *v = unsafe { self.cpu.as_ptr().add(offset + k).read_volatile() };
        }
        Ok(())
    }

    fn check(&self, offset: usize, n: usize) -> Result<()> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Errno::EINVAL),
        }
    }
}

impl<T: Pod> Drop for CoherentBuffer<T> {
    fn drop(&mut self) {
        // SAFETY: the allocation is live and ours (invariant), and nothing can use it
        // after drop.
        unsafe { self.dev.free_attrs(self.size(), self.cpu.as_ptr().cast(), self.dma, Attrs::empty()) };
    }
}

impl<T: Pod> std::fmt::Debug for CoherentBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoherentBuffer")
            .field("device", &self.dev.name())
            .field("dma", &self.dma)
            .field("len", &self.len)
            .finish()
    }
}
