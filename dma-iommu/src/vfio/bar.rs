//! A PCI BAR mapped into the process (`VFIO_DEVICE_GET_REGION_INFO` + `mmap`).

use std::ptr::NonNull;

/// A BAR mapped into the process, unmapped on drop. Accesses are volatile, aligned and
/// bounds-checked.
///
/// # Invariants
///
/// `base` maps `len` bytes of device memory for the life of the value.
#[derive(Debug)]
pub struct Bar {
    pub(super) base: NonNull<u8>,
    pub(super) len: usize,
}

// SAFETY: the mapping is device memory reached only through volatile accesses; it is not
// tied to a thread.
unsafe impl Send for Bar {}
// SAFETY: as above; concurrent register accesses are the device's business, not memory
// safety's.
unsafe impl Sync for Bar {}

impl Bar {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length BAR (never: mapping one fails).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping's address, for drivers that want their own accessors.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    fn at<T>(&self, off: usize) -> *mut T {
        let size = size_of::<T>();
        assert!(off % size == 0 && off.checked_add(size).is_some_and(|e| e <= self.len), "BAR access at {off:#x}");
        self.base.as_ptr().wrapping_add(off).cast()
    }

    /// Reads the 32-bit register at `off`.
    ///
    /// # Panics
    ///
    /// When `off` is unaligned or out of the BAR.
    pub fn read32(&self, off: usize) -> u32 {
        // SAFETY: `at` checked the access lies aligned inside the live mapping.
        unsafe { self.at::<u32>(off).read_volatile() }
    }

    /// Writes the 32-bit register at `off`.
    ///
    /// # Panics
    ///
    /// As [`Bar::read32`].
    pub fn write32(&self, off: usize, v: u32) {
        // SAFETY: as in `read32`.
        unsafe { self.at::<u32>(off).write_volatile(v) }
    }

    /// Reads the 64-bit register at `off`.
    ///
    /// # Panics
    ///
    /// As [`Bar::read32`].
    pub fn read64(&self, off: usize) -> u64 {
        // SAFETY: as in `read32`.
        unsafe { self.at::<u64>(off).read_volatile() }
    }

    /// Writes the 64-bit register at `off`.
    ///
    /// # Panics
    ///
    /// As [`Bar::read32`].
    pub fn write64(&self, off: usize, v: u64) {
        // SAFETY: as in `read32`.
        unsafe { self.at::<u64>(off).write_volatile(v) }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours (the invariant) and nothing uses it after drop.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
