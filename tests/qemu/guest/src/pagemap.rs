//! Pinned pages with their physical addresses from `/proc/self/pagemap` (root only): the
//! raw memory the harness was proven with before the library's `host` platform, and the
//! scattered pages of the IOMMU checks.
//!
//! # Safety
//!
//! A [`PinnedPage`] owns a private one-page mapping; the slices it hands out borrow it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;

/// Page size of the guest.
pub const PAGE: usize = 4096;

/// The physical address behind a touched, locked virtual address.
///
/// # Errors
///
/// The OS error of reading pagemap; `PermissionDenied` when the PFN reads 0 (no
/// CAP_SYS_ADMIN); `NotFound` for a page that is not present.
pub fn phys_addr(vaddr: usize) -> io::Result<u64> {
    let f = File::open("/proc/self/pagemap")?;
    let mut e = [0u8; 8];
    f.read_exact_at(&mut e, (vaddr / PAGE * 8) as u64)?;
    let e = u64::from_le_bytes(e);
    if e & (1 << 63) == 0 {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("page at {vaddr:#x} not present")));
    }
    let pfn = e & ((1 << 55) - 1);
    if pfn == 0 {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, "pagemap hides PFNs: run as root"));
    }
    Ok(pfn * PAGE as u64 + (vaddr % PAGE) as u64)
}

/// One locked page of anonymous memory and its physical address.
///
/// # Invariants
///
/// `ptr` maps one page, locked in memory, until drop; `phys` is its physical address.
#[derive(Debug)]
pub struct PinnedPage {
    ptr: NonNull<u8>,
    phys: u64,
}

impl PinnedPage {
    /// A fresh locked, zeroed page.
    ///
    /// # Errors
    ///
    /// The OS error of mapping or reading pagemap.
    pub fn new() -> io::Result<PinnedPage> {
        // SAFETY: a fresh private anonymous mapping; it aliases no Rust object.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_LOCKED | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        // SAFETY: the page is ours; writing makes sure it is present.
        unsafe { ptr.as_ptr().write_volatile(0) };
        // The page is owned (and unmapped on an early return) before pagemap is read.
        let mut page = PinnedPage { ptr, phys: 0 };
        // INVARIANT: mapped and locked above; the address is read once the page is present.
        page.phys = phys_addr(ptr.as_ptr() as usize)?;
        Ok(page)
    }

    /// `n` pages whose physical addresses satisfy `keep`, trying at most `tries` pages.
    ///
    /// # Errors
    ///
    /// As [`PinnedPage::new`]; `OutOfMemory` when not enough pages qualified.
    pub fn gather(n: usize, tries: usize, keep: impl Fn(u64) -> bool) -> io::Result<Vec<PinnedPage>> {
        let mut out = Vec::new();
        let mut rejected = Vec::new();
        for _ in 0..tries {
            let p = PinnedPage::new()?;
            if keep(p.phys) {
                out.push(p)
            } else {
                rejected.push(p)
            }
            if out.len() == n {
                return Ok(out);
            }
        }
        Err(io::Error::new(io::ErrorKind::OutOfMemory, format!("only {} of {n} pages qualified", out.len())))
    }

    /// The physical address.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// The CPU address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The page's bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the page is mapped for our life and `&mut self` makes this borrow unique.
        // The device writes it only between calls that do not hold this borrow.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), PAGE) }
    }
}

impl Drop for PinnedPage {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and unused after drop.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), PAGE) };
    }
}
