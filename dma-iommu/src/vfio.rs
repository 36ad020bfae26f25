//! The VFIO backend: a PCI device behind a real IOMMU, driven from userspace through a VFIO
//! type1 container (`Documentation/driver-api/vfio.rst`).
//!
//! [`VfioDevice::open`] takes the PCI address of a device bound to `vfio-pci`, opens its
//! group and a container, sets the type1v2 IOMMU and reads the valid IOVA ranges. IOVAs come
//! from this crate's allocator ([`IovaDomain`]) inside those ranges and under the caller's
//! mask; `VFIO_IOMMU_MAP_DMA` points them at process memory, which the kernel pins.
//! Scattered pages can share one IOVA range ([`VfioDevice::map_dma_scattered`]), so the
//! device sees one contiguous buffer. The device's BARs ([`VfioDevice::map_bar`]) and
//! config space ([`VfioDevice::config_read`], [`VfioDevice::set_bus_master`]) are reachable
//! too, which is all a userspace driver needs. The ioctl structures are `vfio-bindings`'.
//!
//! # Safety
//!
//! Unsafe code here issues ioctls on descriptors this file opened, each with a pointer to a
//! live, correctly sized structure (or buffer whose `argsz` says its length), and maps BARs
//! with `mmap` on the device descriptor; a [`Bar`] owns its mapping and only touches it with
//! bounds-checked, aligned volatile accesses. Mapping memory for the device is `unsafe` for
//! the caller: the device may write it until it is unmapped.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};

use dma_core::{Direction, DmaAddr, DmaMask, Errno, Result};
use vfio_bindings::bindings::vfio as sys;

use crate::iova::{IOVA_GRANULE, IOVA_SHIFT, IovaDomain};

mod bar;
mod iova_ranges;
mod ops;
mod pci;

pub use bar::Bar;
use iova_ranges::{IOVA_TOP, read_u32, read_u64};
pub use iova_ranges::{IovaRanges, iova_domain_for, parse_iova_ranges};
pub use pci::PciAddress;
use pci::{PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY};

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`: VFIO's ioctls carry no size or direction bits.
const fn vfio_io(n: u32) -> u64 {
    ((sys::VFIO_TYPE as u64) << 8) | (sys::VFIO_BASE + n) as u64
}
const VFIO_GET_API_VERSION: u64 = vfio_io(0);
const VFIO_CHECK_EXTENSION: u64 = vfio_io(1);
const VFIO_SET_IOMMU: u64 = vfio_io(2);
const VFIO_GROUP_GET_STATUS: u64 = vfio_io(3);
const VFIO_GROUP_SET_CONTAINER: u64 = vfio_io(4);
const VFIO_GROUP_GET_DEVICE_FD: u64 = vfio_io(6);
const VFIO_DEVICE_GET_REGION_INFO: u64 = vfio_io(8);
const VFIO_IOMMU_GET_INFO: u64 = vfio_io(12);
const VFIO_IOMMU_MAP_DMA: u64 = vfio_io(13);
const VFIO_IOMMU_UNMAP_DMA: u64 = vfio_io(14);

/// `VFIO_DMA_MAP_FLAG_*` for a direction: the device may read what goes to it and write
/// what comes from it (`dma_info_to_prot`).
///
/// # Errors
///
/// `EINVAL` for `DMA_NONE` or an invalid value.
pub fn map_flags(dir: Direction) -> Result<u32> {
    match dir.check()? {
        Direction::ToDevice => Ok(sys::VFIO_DMA_MAP_FLAG_READ),
        Direction::FromDevice => Ok(sys::VFIO_DMA_MAP_FLAG_WRITE),
        Direction::Bidirectional => Ok(sys::VFIO_DMA_MAP_FLAG_READ | sys::VFIO_DMA_MAP_FLAG_WRITE),
        _ => Err(Errno::EINVAL),
    }
}

/// Checks pieces of process memory for one IOVA range: each page-aligned, a non-zero
/// multiple of pages long, not wrapping. Returns the total length.
///
/// # Errors
///
/// `EINVAL` for no pieces, or a piece that is not whole pages.
pub fn check_pieces(pieces: &[(usize, usize)]) -> Result<u64> {
    let page = IOVA_GRANULE as usize;
    let mut total = 0u64;
    for &(addr, len) in pieces {
        if len == 0 || addr % page != 0 || len % page != 0 || addr.checked_add(len).is_none() {
            return Err(Errno::EINVAL);
        }
        total = total.checked_add(len as u64).ok_or(Errno::EINVAL)?;
    }
    if total == 0 { Err(Errno::EINVAL) } else { Ok(total) }
}

fn last_os_error() -> Errno {
    Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(Errno::EIO.raw()))
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO.raw()))
}

/// `ioctl(fd, req, arg)` returning the non-negative result.
///
/// # Safety
///
/// `arg` must be what `req` expects: an integer, or a pointer to a live structure of the
/// size the request (or its `argsz`) says.
unsafe fn ioctl(fd: &impl AsRawFd, req: u64, arg: usize) -> Result<i32> {
    // SAFETY: forwarded from the caller.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    if r < 0 { Err(last_os_error()) } else { Ok(r) }
}

/// What `VFIO_DEVICE_GET_REGION_INFO` says about one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// Region index (`VFIO_PCI_BAR0_REGION_INDEX` ..).
    pub index: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Length in bytes (0: the region does not exist).
    pub size: u64,
    /// Offset of the region in the device descriptor.
    pub offset: u64,
}

/// One live DMA mapping: its length and the pieces of process memory behind it.
#[derive(Debug)]
struct Mapping {
    len: u64,
    pieces: Vec<(usize, usize)>,
    dir: Direction,
}

/// A PCI device bound to `vfio-pci`, in its own type1 container.
///
/// # Invariants
///
/// Every entry of `mappings` is an IOVA range allocated from `iovad` (keyed by its start)
/// and mapped in the container with `VFIO_IOMMU_MAP_DMA`, piece after piece.
pub struct VfioDevice {
    addr: PciAddress,
    group_id: u32,
    // Field order is drop order: device, group, then container. The group is only held
    // open: closing it detaches the container.
    device: File,
    _group: File,
    container: File,
    ranges: Vec<(u64, u64)>,
    pgsizes: u64,
    iovad: IovaDomain,
    mappings: Mutex<BTreeMap<u64, Mapping>>,
}

impl VfioDevice {
    /// Opens the device at `addr` (bound to `vfio-pci`): its IOMMU group, a new container with
    /// the type1v2 IOMMU, and the device itself.
    ///
    /// # Errors
    ///
    /// `ENODEV` when the device has no IOMMU group (no IOMMU, or `intel_iommu=on` missing);
    /// `EBUSY` when the group is not viable (another device in it is bound to a host driver);
    /// `EOPNOTSUPP` when the kernel lacks the type1v2 IOMMU; `EINVAL` when the IOMMU's
    /// smallest page is above 4 KiB or no IOVA is valid; else the OS error of the failing step.
    pub fn open(addr: PciAddress) -> Result<VfioDevice> {
        let link = PathBuf::from(format!("/sys/bus/pci/devices/{addr}/iommu_group"));
        let group_path = std::fs::read_link(&link).map_err(|_| Errno::ENODEV)?;
        let group_id: u32 =
            group_path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()).ok_or(Errno::ENODEV)?;
        let rw = |p: &str| OpenOptions::new().read(true).write(true).open(p).map_err(io_errno);
        let container = rw("/dev/vfio/vfio")?;
        // SAFETY: integer-argument ioctls on our container.
        unsafe {
            if ioctl(&container, VFIO_GET_API_VERSION, 0)? != sys::VFIO_API_VERSION as i32 {
                return Err(Errno::EOPNOTSUPP);
            }
            if ioctl(&container, VFIO_CHECK_EXTENSION, sys::VFIO_TYPE1v2_IOMMU as usize)? <= 0 {
                return Err(Errno::EOPNOTSUPP);
            }
        }
        let group = rw(&format!("/dev/vfio/{group_id}"))?;
        let mut status = sys::vfio_group_status { argsz: size_of::<sys::vfio_group_status>() as u32, flags: 0 };
        // SAFETY: `status` is a live `vfio_group_status` with its size in `argsz`.
        unsafe { ioctl(&group, VFIO_GROUP_GET_STATUS, &raw mut status as usize)? };
        if status.flags & sys::VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(Errno::EBUSY);
        }
        let cfd: i32 = container.as_raw_fd();
        // SAFETY: the argument points at a live int holding the container's descriptor; the
        // type is an integer argument.
        unsafe {
            ioctl(&group, VFIO_GROUP_SET_CONTAINER, &raw const cfd as usize)?;
            ioctl(&container, VFIO_SET_IOMMU, sys::VFIO_TYPE1v2_IOMMU as usize)?;
        }
        let (pgsizes, ranges) = iommu_info(&container)?;
        if pgsizes & (IOVA_GRANULE * 2 - 1) == 0 {
            return Err(Errno::EINVAL);
        }
        let ranges = ranges.unwrap_or_else(|| vec![(0, IOVA_TOP)]);
        let iovad = iova_domain_for(&ranges).ok_or(Errno::EINVAL)?;
        let name = std::ffi::CString::new(addr.to_string()).map_err(|_| Errno::EINVAL)?;
        // SAFETY: a NUL-terminated device name; the result is a new descriptor we own.
        let fd = unsafe { ioctl(&group, VFIO_GROUP_GET_DEVICE_FD, name.as_ptr() as usize)? };
        // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
        let device = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(VfioDevice {
            addr,
            group_id,
            device,
            _group: group,
            container,
            ranges,
            pgsizes,
            iovad,
            mappings: Mutex::new(BTreeMap::new()),
        })
    }

    /// The device's PCI address.
    pub fn address(&self) -> PciAddress {
        self.addr
    }

    /// The IOMMU group number.
    pub fn group_id(&self) -> u32 {
        self.group_id
    }

    /// The valid IOVA ranges, `(first, last)` inclusive.
    pub fn iova_ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// The IOMMU page sizes (a bitmap of powers of two).
    pub fn page_sizes(&self) -> u64 {
        self.pgsizes
    }

    /// The IOVA allocator (for statistics and invariant checks).
    pub fn iova_domain(&self) -> &IovaDomain {
        &self.iovad
    }

    fn mappings(&self) -> MutexGuard<'_, BTreeMap<u64, Mapping>> {
        self.mappings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Maps `[ptr, ptr + size)` of process memory for the device at a fresh IOVA range whose
    /// last byte is at most `mask`; returns the IOVA of `ptr` (the range starts at the page
    /// below it). The kernel pins the pages until the unmap.
    ///
    /// # Errors
    ///
    /// `EINVAL` for size 0, an address range that wraps, or `DMA_NONE`; `ENOMEM` when no IOVA
    /// range fits under the mask; the OS error when the kernel refuses the mapping (`EFAULT`
    /// for memory that is not mapped, `ENOSPC` past the container's mapping limit).
    ///
    /// # Safety
    ///
    /// The memory must stay mapped until [`VfioDevice::unmap_dma`], and while the device may
    /// write it (`FROM_DEVICE`, `BIDIRECTIONAL`) no Rust reference may point into it.
    pub unsafe fn map_dma(&self, ptr: *const u8, size: usize, dir: Direction, mask: DmaMask) -> Result<DmaAddr> {
        let addr = ptr as usize;
        let off = addr % IOVA_GRANULE as usize;
        let end = addr.checked_add(size).filter(|_| size != 0).ok_or(Errno::EINVAL)?;
        let len = (end - (addr - off)).checked_next_multiple_of(IOVA_GRANULE as usize).ok_or(Errno::EINVAL)?;
        let iova = self.map_pieces(&[(addr - off, len)], dir, mask.value())?;
        Ok(DmaAddr(iova.0 + off as u64))
    }

    /// Maps whole pages of process memory, in order, at one fresh IOVA range under `mask`,
    /// so the device sees them as one buffer; returns its start. `pieces` are (address,
    /// length), each page-aligned and a whole number of pages.
    ///
    /// # Errors
    ///
    /// `EINVAL` for no pieces, pieces that are not whole pages, or `DMA_NONE`; otherwise as
    /// [`VfioDevice::map_dma`]. On error nothing stays mapped.
    ///
    /// # Safety
    ///
    /// As [`VfioDevice::map_dma`], for every piece.
    pub unsafe fn map_dma_scattered(
        &self,
        pieces: &[(usize, usize)],
        dir: Direction,
        mask: DmaMask,
    ) -> Result<DmaAddr> {
        self.map_pieces(pieces, dir, mask.value())
    }

    /// Maps the pieces at one IOVA range ending at or below `limit`. The caller vouches for
    /// the memory as [`VfioDevice::map_dma`] asks.
    fn map_pieces(&self, pieces: &[(usize, usize)], dir: Direction, limit: u64) -> Result<DmaAddr> {
        let flags = map_flags(dir)?;
        let total = check_pieces(pieces)?;
        let pages = total >> IOVA_SHIFT;
        let pfn = self.iovad.alloc(pages, limit >> IOVA_SHIFT).ok_or(Errno::ENOMEM)?;
        let iova = pfn << IOVA_SHIFT;
        let mut done = 0u64;
        for &(addr, len) in pieces {
            let mut map = sys::vfio_iommu_type1_dma_map {
                argsz: size_of::<sys::vfio_iommu_type1_dma_map>() as u32,
                flags,
                vaddr: addr as u64,
                iova: iova + done,
                size: len as u64,
            };
            // SAFETY: `map` is a live `vfio_iommu_type1_dma_map` with its size in `argsz`.
            if let Err(e) = unsafe { ioctl(&self.container, VFIO_IOMMU_MAP_DMA, &raw mut map as usize) } {
                if done != 0 {
                    let _ = self.unmap_range(iova, done);
                }
                self.iovad.free(pfn);
                return Err(e);
            }
            done += len as u64;
        }
        // INVARIANT: the range came from `iovad` and every piece is mapped in the container.
        self.mappings().insert(iova, Mapping { len: total, pieces: pieces.to_vec(), dir });
        Ok(DmaAddr(iova))
    }

    fn unmap_range(&self, iova: u64, len: u64) -> Result<()> {
        let mut unmap = sys::vfio_iommu_type1_dma_unmap {
            argsz: size_of::<sys::vfio_iommu_type1_dma_unmap>() as u32,
            iova,
            size: len,
            ..Default::default()
        };
        // SAFETY: `unmap` is a live `vfio_iommu_type1_dma_unmap` with its size in `argsz`
        // (no bitmap: flags are 0).
        unsafe { ioctl(&self.container, VFIO_IOMMU_UNMAP_DMA, &raw mut unmap as usize)? };
        if unmap.size != len { Err(Errno::EIO) } else { Ok(()) }
    }

    /// Ends the mapping that contains `dma` (from `map_dma` or `map_dma_scattered`): the IOMMU
    /// forgets it (the kernel flushes the IOTLB before returning), the pages are unpinned and
    /// the IOVA range is free again. Returns the pieces of memory it covered.
    ///
    /// # Errors
    ///
    /// `EINVAL` when no live mapping contains `dma`; the OS error if the kernel refuses.
    pub fn unmap_dma(&self, dma: DmaAddr) -> Result<Vec<(usize, usize)>> {
        let mut maps = self.mappings();
        let (&iova, m) = maps.range(..=dma.0).next_back().ok_or(Errno::EINVAL)?;
        if dma.0 - iova >= m.len {
            return Err(Errno::EINVAL);
        }
        self.unmap_range(iova, m.len)?;
        let m = maps.remove(&iova).ok_or(Errno::EINVAL)?;
        self.iovad.free(iova >> IOVA_SHIFT);
        Ok(m.pieces)
    }

    /// The pieces of memory behind the live mapping that starts at `dma`.
    pub fn pieces(&self, dma: DmaAddr) -> Option<Vec<(usize, usize)>> {
        self.mappings().get(&dma.0).map(|m| m.pieces.clone())
    }

    /// The direction a live mapping containing `dma` was made for.
    pub fn direction(&self, dma: DmaAddr) -> Option<Direction> {
        let maps = self.mappings();
        let (&iova, m) = maps.range(..=dma.0).next_back()?;
        (dma.0 - iova < m.len).then_some(m.dir)
    }

    /// The process address behind a mapped IOVA, if a live mapping covers it.
    pub fn iova_to_virt(&self, dma: DmaAddr) -> Option<usize> {
        let maps = self.mappings();
        let (&iova, m) = maps.range(..=dma.0).next_back()?;
        let mut off = dma.0.checked_sub(iova).filter(|&o| o < m.len)? as usize;
        for &(addr, len) in &m.pieces {
            if off < len {
                return Some(addr + off);
            }
            off -= len;
        }
        None
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for region `index`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an index the device does not have; else the OS error.
    pub fn region(&self, index: u32) -> Result<RegionInfo> {
        let mut info =
            sys::vfio_region_info { argsz: size_of::<sys::vfio_region_info>() as u32, index, ..Default::default() };
        // SAFETY: `info` is a live `vfio_region_info` with its size in `argsz`.
        unsafe { ioctl(&self.device, VFIO_DEVICE_GET_REGION_INFO, &raw mut info as usize)? };
        Ok(RegionInfo { index, flags: info.flags, size: info.size, offset: info.offset })
    }

    /// Maps BAR `bar` (0 to 5) into the process.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a BAR above 5, one that does not exist or cannot be mapped (an I/O BAR);
    /// the OS error if `mmap` fails.
    pub fn map_bar(&self, bar: u32) -> Result<Bar> {
        if bar > sys::VFIO_PCI_BAR5_REGION_INDEX {
            return Err(Errno::EINVAL);
        }
        let r = self.region(sys::VFIO_PCI_BAR0_REGION_INDEX + bar)?;
        if r.size == 0 || r.flags & sys::VFIO_REGION_INFO_FLAG_MMAP == 0 {
            return Err(Errno::EINVAL);
        }
        let len = usize::try_from(r.size).map_err(|_| Errno::EINVAL)?;
        let off = libc::off_t::try_from(r.offset).map_err(|_| Errno::EINVAL)?;
        // SAFETY: a fresh shared mapping of the device region at an address the kernel picks;
        // it aliases no Rust object.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.device.as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last_os_error());
        }
        // INVARIANT: `p` maps `len` bytes of the BAR until the `Bar` is dropped.
        Ok(Bar { base: NonNull::new(p.cast()).ok_or(Errno::EFAULT)?, len })
    }

    fn config_offset(&self, off: u64, len: usize) -> Result<u64> {
        let r = self.region(sys::VFIO_PCI_CONFIG_REGION_INDEX)?;
        match off.checked_add(len as u64) {
            Some(end) if end <= r.size => Ok(r.offset + off),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Reads config space at `off`.
    ///
    /// # Errors
    ///
    /// `EINVAL` past the end of config space; else the OS error.
    pub fn config_read(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let at = self.config_offset(off, buf.len())?;
        self.device.read_exact_at(buf, at).map_err(io_errno)
    }

    /// Writes config space at `off` (vfio-pci filters what userspace may change).
    ///
    /// # Errors
    ///
    /// As [`VfioDevice::config_read`].
    pub fn config_write(&self, off: u64, buf: &[u8]) -> Result<()> {
        let at = self.config_offset(off, buf.len())?;
        self.device.write_all_at(buf, at).map_err(io_errno)
    }

    /// Sets memory decoding and bus mastering in the command register: without the latter
    /// the device's DMA silently reaches nothing (vfio-pci leaves it off).
    ///
    /// # Errors
    ///
    /// As [`VfioDevice::config_read`].
    pub fn set_bus_master(&self) -> Result<()> {
        let mut cmd = [0u8; 2];
        self.config_read(PCI_COMMAND, &mut cmd)?;
        let v = u16::from_le_bytes(cmd) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        self.config_write(PCI_COMMAND, &v.to_le_bytes())
    }
}

/// `VFIO_IOMMU_GET_INFO`: the page-size bitmap and the valid IOVA ranges.
fn iommu_info(container: &File) -> Result<(u64, Option<IovaRanges>)> {
    // A u64 buffer keeps the structures aligned; the first call tells the size the
    // capability chain needs.
    let mut buf = vec![0u64; size_of::<sys::vfio_iommu_type1_info>().div_ceil(8)];
    let argsz_at = std::mem::offset_of!(sys::vfio_iommu_type1_info, argsz);
    loop {
        let bytes = buf.len() * 8;
        buf.fill(0);
        bytes_of(&mut buf)[argsz_at..argsz_at + 4].copy_from_slice(&(bytes as u32).to_ne_bytes());
        // SAFETY: `buf` is a live, aligned buffer of `bytes` bytes, which `argsz` says.
        unsafe { ioctl(container, VFIO_IOMMU_GET_INFO, buf.as_mut_ptr() as usize)? };
        let raw: &[u8] = bytes_of(&mut buf);
        let want = read_u32(raw, argsz_at)? as usize;
        if want > bytes {
            buf = vec![0u64; want.div_ceil(8)];
            continue;
        }
        let flags = read_u32(raw, std::mem::offset_of!(sys::vfio_iommu_type1_info, flags))?;
        let pgsizes = if flags & sys::VFIO_IOMMU_INFO_PGSIZES != 0 {
            read_u64(raw, std::mem::offset_of!(sys::vfio_iommu_type1_info, iova_pgsizes))?
        } else {
            IOVA_GRANULE
        };
        return Ok((pgsizes, parse_iova_ranges(raw)?));
    }
}

/// The bytes of a u64 buffer.
fn bytes_of(buf: &mut [u64]) -> &mut [u8] {
    let len = buf.len() * 8;
    // SAFETY: u8 has no alignment or validity requirement, and the slice covers exactly the
    // buffer's bytes for the buffer's borrow.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), len) }
}

impl fmt::Debug for VfioDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioDevice")
            .field("addr", &self.addr)
            .field("group_id", &self.group_id)
            .field("ranges", &self.ranges)
            .field("pgsizes", &format_args!("{:#x}", self.pgsizes))
            .field("mappings", &self.mappings().len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
