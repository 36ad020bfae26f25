//! The system calls and `/proc` files behind the host platform, each in a small function.
//!
//! # Safety
//!
//! `map_fixed` and `unmap` take raw addresses: their callers own the ranges (reserved by
//! [`reserve`] or mapped by [`map_shared`]) and say so at each call.

use std::ffi::{CStr, c_void};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::ptr;

use rustix::fs::{FallocateFlags, MemfdFlags, fallocate, ftruncate, memfd_create};
use rustix::mm::{MapFlags, ProtFlags, mlock, mmap, mmap_anonymous, munmap};

use crate::errno::{Errno, Result};

fn os(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// A memfd of `len` bytes, of hugetlb 2 MiB pages when `huge`.
pub(super) fn memfd(name: &CStr, len: u64, huge: bool) -> Result<OwnedFd> {
    let flags =
        if huge { MemfdFlags::CLOEXEC | MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB } else { MemfdFlags::CLOEXEC };
    let fd = memfd_create(name, flags).map_err(os)?;
    ftruncate(&fd, len).map_err(os)?;
    Ok(fd)
}

/// Grows (or shrinks) a memfd.
pub(super) fn resize(fd: &OwnedFd, len: u64) -> Result<()> {
    ftruncate(fd, len).map_err(os)
}

/// Gives the pages of `[off, off + len)` of a memfd back to the kernel.
pub(super) fn punch_hole(fd: &OwnedFd, off: u64, len: u64) -> Result<()> {
    fallocate(fd, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, off, len).map_err(os)
}

/// Maps `[off, off + len)` of `fd` shared, read-write, populated, at a kernel-chosen address.
pub(super) fn map_shared(fd: &OwnedFd, off: u64, len: usize) -> Result<usize> {
    // SAFETY: a fresh mapping at an address the kernel picks aliases no Rust object.
    let p = unsafe {
        mmap(ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::SHARED | MapFlags::POPULATE, fd, off)
    }
    .map_err(os)?;
    Ok(p as usize)
}

/// Maps `[off, off + len)` of `fd` over `[at, at + len)`, replacing what is there.
///
/// # Safety
///
/// The caller owns `[at, at + len)` (a range it reserved) and nothing uses it.
pub(super) unsafe fn map_fixed(fd: &OwnedFd, off: u64, at: usize, len: usize) -> Result<()> {
    let flags = MapFlags::SHARED | MapFlags::FIXED | MapFlags::POPULATE;
    // SAFETY: forwarded from the caller.
    unsafe { mmap(at as *mut c_void, len, ProtFlags::READ | ProtFlags::WRITE, flags, fd, off) }.map_err(os)?;
    Ok(())
}

/// Reserves `len` bytes of address space, inaccessible, starting on an `align` boundary
/// (a power of two). Returns the aligned start; the whole reservation is
/// `[start, start + len)` (the slack around it is given back).
pub(super) fn reserve(len: usize, align: usize) -> Result<usize> {
    let total = len.checked_add(align).ok_or(Errno::ENOMEM)?;
    // SAFETY: a fresh inaccessible range at a kernel-chosen address aliases nothing.
    let p =
        unsafe { mmap_anonymous(ptr::null_mut(), total, ProtFlags::empty(), MapFlags::PRIVATE | MapFlags::NORESERVE) }
            .map_err(os)? as usize;
    let start = p.next_multiple_of(align);
    // SAFETY: the slack before and after the aligned part is ours and unused.
    unsafe {
        if start > p {
            unmap(p, start - p);
        }
        if p + total > start + len {
            unmap(start + len, p + total - start - len);
        }
    }
    Ok(start)
}

/// Unmaps `[at, at + len)`.
///
/// # Safety
///
/// The caller owns the range and nothing uses it afterwards.
pub(super) unsafe fn unmap(at: usize, len: usize) {
    // SAFETY: forwarded from the caller.
    let _ = unsafe { munmap(at as *mut c_void, len) };
}

/// Pins `[at, at + len)` in memory (`mlock`).
pub(super) fn pin(at: usize, len: usize) -> Result<()> {
    // SAFETY: mlock only changes how the kernel treats the pages; it does not touch them
    // from Rust's point of view.
    unsafe { mlock(at as *mut c_void, len) }.map_err(os)
}

/// Reads from a memfd at `off` into `buf`; false when the file cannot be read there.
pub(super) fn pread(fd: &OwnedFd, off: u64, buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(fd, &mut buf[done..], off + done as u64) {
            Ok(0) | Err(_) => return false,
            Ok(n) => done += n,
        }
    }
    true
}

/// Writes into a memfd at `off`; false when the file cannot be written (hugetlbfs has no
/// `write`).
pub(super) fn pwrite(fd: &OwnedFd, off: u64, data: &[u8]) -> bool {
    let mut done = 0;
    while done < data.len() {
        match rustix::io::pwrite(fd, &data[done..], off + done as u64) {
            Ok(0) | Err(_) => return false,
            Ok(n) => done += n,
        }
    }
    true
}

/// `/proc/self/pagemap`: one 64-bit entry per virtual 4 KiB page.
#[derive(Debug)]
pub(super) struct Pagemap(File);

/// Bit 63 of an entry: the page is present in RAM.
const PM_PRESENT: u64 = 1 << 63;
/// Bits 0-54: the page frame number (0 without `CAP_SYS_ADMIN`).
const PM_PFN: u64 = (1 << 55) - 1;

impl Pagemap {
    pub(super) fn open() -> Result<Pagemap> {
        File::open("/proc/self/pagemap").map(Pagemap).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(5)))
    }

    /// The page frame numbers of the `count` pages from `va` (page aligned): `Some(0)` for
    /// a present page whose number the kernel hides (no privilege), `None` for a page
    /// that is not present.
    pub(super) fn pfns(&self, va: usize, count: usize) -> Result<Vec<Option<u64>>> {
        let mut raw = vec![0u8; count * 8];
        let at = (va / crate::addr::PAGE_SIZE) as u64 * 8;
        self.0.read_exact_at(&mut raw, at).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(5)))?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| {
                let e = u64::from_ne_bytes(c.try_into().expect("8-byte chunks"));
                (e & PM_PRESENT != 0).then_some(e & PM_PFN)
            })
            .collect())
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes (0 when unreadable).
pub(super) fn mem_available() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb << 10)
}

/// True when compaction may migrate mlocked pages (`vm.compact_unevictable_allowed`).
pub(super) fn compaction_moves_locked_pages() -> bool {
    std::fs::read_to_string("/proc/sys/vm/compact_unevictable_allowed").is_ok_and(|s| s.trim() == "1")
}
