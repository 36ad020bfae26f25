//! A PCI device through sysfs, the way a userspace driver without an IOMMU reaches it:
//! `resource0` mapped for registers, `config` written for bus mastering.
//!
//! # Safety
//!
//! A [`Resource`] owns its mapping of device memory and touches it only with bounds-checked,
//! aligned volatile accesses.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::ptr::NonNull;

use crate::edu::Regs;

/// The sysfs directory of the first PCI device with this vendor and device id.
///
/// # Errors
///
/// `NotFound` when there is none.
pub fn find(vendor: u16, device: u16) -> io::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir("/sys/bus/pci/devices")?.filter_map(|e| Some(e.ok()?.path())).collect();
    dirs.sort();
    let id = |p: &PathBuf, f: &str| {
        std::fs::read_to_string(p.join(f))
            .ok()
            .and_then(|s| u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
    };
    dirs.into_iter()
        .find(|d| id(d, "vendor") == Some(vendor) && id(d, "device") == Some(device))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no PCI device {vendor:04x}:{device:04x}")))
}

/// Sets or clears bus mastering (command register bit 2), with memory decoding on.
///
/// # Errors
///
/// The OS error of reading or writing `config`.
pub fn set_bus_master(dev: &std::path::Path, on: bool) -> io::Result<()> {
    let f = OpenOptions::new().read(true).write(true).open(dev.join("config"))?;
    let mut cmd = [0u8; 2];
    f.read_exact_at(&mut cmd, 4)?;
    let mut v = u16::from_le_bytes(cmd) | 1 << 1;
    if on {
        v |= 1 << 2;
    } else {
        v &= !(1 << 2);
    }
    f.write_all_at(&v.to_le_bytes(), 4)
}

/// `resource<N>` of a device, mapped.
///
/// # Invariants
///
/// `base` maps `len` bytes of the BAR for the life of the value.
#[derive(Debug)]
pub struct Resource {
    base: NonNull<u8>,
    len: usize,
}

impl Resource {
    /// Maps `resource<bar>` of the device at `dev`.
    ///
    /// # Errors
    ///
    /// The OS error of opening or mapping it.
    pub fn map(dev: &std::path::Path, bar: u32) -> io::Result<Resource> {
        let f: File = OpenOptions::new().read(true).write(true).open(dev.join(format!("resource{bar}")))?;
        let len = f.metadata()?.len() as usize;
        // SAFETY: a fresh shared mapping of the BAR at an address the kernel picks; it
        // aliases no Rust object.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        // INVARIANT: the mapping outlives the file descriptor and lasts until drop.
        Ok(Resource { base, len })
    }

    fn at<T>(&self, off: usize) -> *mut T {
        let size = size_of::<T>();
        assert!(off % size == 0 && off + size <= self.len, "register access at {off:#x}");
        self.base.as_ptr().wrapping_add(off).cast()
    }
}

impl Regs for Resource {
    fn read32(&self, off: usize) -> u32 {
        // SAFETY: `at` checked that the access lies aligned inside the live mapping.
        unsafe { self.at::<u32>(off).read_volatile() }
    }
    fn write32(&self, off: usize, v: u32) {
        // SAFETY: as in `read32`.
        unsafe { self.at::<u32>(off).write_volatile(v) }
    }
    fn read64(&self, off: usize) -> u64 {
        // SAFETY: as in `read32`.
        unsafe { self.at::<u64>(off).read_volatile() }
    }
    fn write64(&self, off: usize, v: u64) {
        // SAFETY: as in `read32`.
        unsafe { self.at::<u64>(off).write_volatile(v) }
    }
}

impl Drop for Resource {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and unused after drop.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
