//! The simulated platform: RAM at chosen physical addresses, with a cache model.
//!
//! RAM is two sparse memfds of the same size, each mapped once into the process:
//!
//! - the **cached view** is what the CPU reads and writes through its normal mapping;
//! - the **memory view** is what lies in DRAM, and what a non-coherent device sees.
//!
//! Cache maintenance moves whole lines between them: clean copies cached → memory,
//! invalidate copies memory → cached. The model treats every line as cached and dirty,
//! the pessimistic choice: a driver that forgets a sync reads stale data here, on any
//! machine, as it would on a non-coherent SoC. A coherent device snoops: it reads the
//! cached view and its writes reach both. The kernel's "uncached remap" for coherent
//! allocations on a non-coherent device is a second mapping of the memory view.
//! The real `dma_arch` instructions run on the cached view as well, so the cost of
//! maintenance is real too.
//!
//! Pages are committed only when touched, so a large layout costs nothing until used,
//! but it does cost address space (two views): default sizes fit a 32-bit process.
//!
//! # Safety
//!
//! This file owns the two mappings. Every pointer it hands out lies inside one of them,
//! is derived from a bounds-checked physical range, and stays valid until the `SimRam`
//! is dropped; the system that owns it outlives every device and buffer (they hold an
//! `Arc` to it). Copies between views never overlap (they are different mappings).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::ptr;
use std::sync::Mutex;

use rustix::fs::{MemfdFlags, ftruncate, memfd_create};
use rustix::mm::{MapFlags, ProtFlags, mmap, mmap_anonymous, munmap};

use crate::addr::{PAGE_SIZE, PhysAddr};
use crate::errno::{Errno, Result};
use crate::hash::IntMap;
use crate::mem::platform::Region;
use crate::options::MemRange;

/// A mapping of a base address and length, unmapped on drop.
#[derive(Debug)]
struct View {
    base: usize,
    len: usize,
}

impl View {
    fn map(fd: &OwnedFd, len: usize) -> Result<View> {
        // SAFETY: a fresh shared mapping of our own memfd at an address the kernel
        // picks; it aliases no Rust object.
        let p = unsafe { mmap(ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::SHARED, fd, 0) }
            .map_err(|e| Errno::from_raw(e.raw_os_error()))?;
        Ok(View { base: p as usize, len })
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range in `View::map` and nothing uses it after
        // the owner is dropped.
        let _ = unsafe { munmap(self.base as *mut _, self.len) };
    }
}

/// The simulated RAM and its cache model.
#[derive(Debug)]
pub struct SimRam {
    regions: Vec<Region>,
    cached: View,
    memory: View,
    cached_fd: OwnedFd,
    memory_fd: OwnedFd,
    line: usize,
    /// Live remaps of the memory view: CPU address → (physical address, length).
    remaps: Mutex<BTreeMap<usize, (PhysAddr, usize)>>,
    /// Live vmaps of the cached view: CPU address → the pages, in order.
    vmaps: Mutex<BTreeMap<usize, Vec<PhysAddr>>>,
    /// Contents of partly covered lines at the clean that handed them to a device that
    /// writes; see [`SimRam::invalidate_for_cpu`].
    shadows: Mutex<IntMap<u64, Box<[u8]>>>,
}

impl SimRam {
    /// Lays out RAM as `ranges` (sorted, non-overlapping, page multiples: checked by the
    /// option parser) with a simulated cache line of `line` bytes.
    pub(crate) fn new(ranges: &[MemRange], line: usize) -> Result<SimRam> {
        let mut regions = Vec::with_capacity(ranges.len());
        let mut off = 0usize;
        let mut sorted = ranges.to_vec();
        sorted.sort_by_key(|r| r.base);
        for r in &sorted {
            let size = usize::try_from(r.size).map_err(|_| Errno::ENOMEM)?;
            if r.size == 0 || r.base % PAGE_SIZE as u64 != 0 || size % PAGE_SIZE != 0 {
                return Err(Errno::EINVAL);
            }
            regions.push(Region { phys: r.base, size: r.size, off });
            off = off.checked_add(size).ok_or(Errno::ENOMEM)?;
        }
        if regions.is_empty() || !line.is_power_of_two() || line > PAGE_SIZE {
            return Err(Errno::EINVAL);
        }
        let total = off;
        let cached_fd = new_memfd(c"dma-sim-cached", total)?;
        let memory_fd = new_memfd(c"dma-sim-memory", total)?;
        let cached = View::map(&cached_fd, total)?;
        let memory = View::map(&memory_fd, total)?;
        Ok(SimRam {
            regions,
            cached,
            memory,
            cached_fd,
            memory_fd,
            line,
            remaps: Mutex::new(BTreeMap::new()),
            vmaps: Mutex::new(BTreeMap::new()),
            shadows: Mutex::new(IntMap::default()),
        })
    }

    /// The simulated cache line size.
    pub(crate) fn line_size(&self) -> usize {
        self.line
    }

    /// The RAM regions (offsets are into both views), sorted.
    pub(crate) fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The offset in the views of `[phys, phys + len)`, if it lies inside one RAM region.
    #[inline]
    fn offset(&self, phys: PhysAddr, len: usize) -> Option<usize> {
        for r in &self.regions {
            if phys.0 >= r.phys && phys.0 - r.phys < r.size {
                let rel = (phys.0 - r.phys) as usize;
                return if (len as u64) <= r.size - rel as u64 { Some(r.off + rel) } else { None };
            }
        }
        None
    }

    /// True when `[phys, phys + len)` is RAM.
    pub(crate) fn is_ram(&self, phys: PhysAddr, len: usize) -> bool {
        self.offset(phys, len).is_some()
    }

    /// The CPU (cached view) address of `[phys, phys + len)`.
    #[inline]
    pub(crate) fn cached_ptr(&self, phys: PhysAddr, len: usize) -> Option<*mut u8> {
        self.offset(phys, len).map(|o| (self.cached.base + o) as *mut u8)
    }

    /// The memory-view address of `[phys, phys + len)`: what a non-coherent device sees.
    #[inline]
    pub(crate) fn memory_ptr(&self, phys: PhysAddr, len: usize) -> Option<*mut u8> {
        self.offset(phys, len).map(|o| (self.memory.base + o) as *mut u8)
    }

    /// Reads the memory view (what a non-coherent device sees). `false` when the range is
    /// not RAM.
    pub(crate) fn read_memory(&self, phys: PhysAddr, buf: &mut [u8]) -> bool {
        let Some(src) = self.memory_ptr(phys, buf.len()) else { return false };
        // SAFETY: `src` covers `buf.len()` bytes of the memory view, which no Rust reference
        // aliases; `buf` is a distinct buffer.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// Writes the memory view (a non-coherent device's write). `false` when the range is
    /// not RAM.
    pub(crate) fn write_memory(&self, phys: PhysAddr, data: &[u8]) -> bool {
        let Some(dst) = self.memory_ptr(phys, data.len()) else { return false };
        // SAFETY: as in `read_memory`, the other way round.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        true
    }

    /// Reads the cached view of `[phys, phys + buf.len())` through the file, not the
    /// mapping, so it works while guard mode has the CPU's pages protected. `false` when
    /// the range is not RAM.
    pub(crate) fn read_cached(&self, phys: PhysAddr, buf: &mut [u8]) -> bool {
        let Some(off) = self.offset(phys, buf.len()) else { return false };
        let mut done = 0;
        while done < buf.len() {
            match rustix::io::pread(&self.cached_fd, &mut buf[done..], (off + done) as u64) {
                Ok(0) | Err(_) => return false,
                Ok(n) => done += n,
            }
        }
        true
    }

    /// Writes the cached view through the file (see [`SimRam::read_cached`]).
    pub(crate) fn write_cached(&self, phys: PhysAddr, data: &[u8]) -> bool {
        let Some(off) = self.offset(phys, data.len()) else { return false };
        let mut done = 0;
        while done < data.len() {
            match rustix::io::pwrite(&self.cached_fd, &data[done..], (off + done) as u64) {
                Ok(0) | Err(_) => return false,
                Ok(n) => done += n,
            }
        }
        true
    }

    /// The cache line holding the first byte of `[phys, phys + len)` whose cached copy
    /// differs from memory, as a physical address: the CPU wrote it and nobody cleaned it.
    pub(crate) fn first_dirty_line(&self, phys: PhysAddr, len: usize) -> Option<u64> {
        let memory = self.memory_ptr(phys, len)?;
        let mut cached = vec![0u8; len];
        if !self.read_cached(phys, &mut cached) {
            return None;
        }
        // SAFETY: the memory view of the range lies inside the view (checked above).
        let memory = unsafe { std::slice::from_raw_parts(memory, len) };
        let i = cached.iter().zip(memory).position(|(a, b)| a != b)?;
        Some((phys.0 + i as u64) & !(self.line as u64 - 1))
    }

    /// The physical address of a CPU address in the cached view (`virt_to_phys`), if
    /// `[va, va + len)` lies in one RAM region. Memory the platform does not own has none.
    #[inline]
    pub(crate) fn virt_to_phys(&self, va: usize, len: usize) -> Option<PhysAddr> {
        let off = va.checked_sub(self.cached.base)?;
        if off >= self.cached.len {
            return None;
        }
        for r in &self.regions {
            if off >= r.off && off - r.off < r.size as usize {
                let rel = off - r.off;
                return if len <= r.size as usize - rel { Some(PhysAddr(r.phys + rel as u64)) } else { None };
            }
        }
        None
    }

    /// The range `[phys, phys + len)` rounded out to whole cache lines, as a view offset
    /// and length. Lines never cross a region: regions are page aligned and `line ≤ PAGE_SIZE`.
    fn lines(&self, phys: PhysAddr, len: usize) -> Option<(usize, usize)> {
        if len == 0 {
            return None;
        }
        let mask = self.line as u64 - 1;
        let start = PhysAddr(phys.0 & !mask);
        let end = phys.0.checked_add(len as u64)?.checked_add(mask)? & !mask;
        let n = (end - start.0) as usize;
        self.offset(start, n).map(|o| (o, n))
    }

    /// Writes the cached view of every line touching the range back to memory
    /// (`dcache_clean_poc`), then runs the real clean instruction on it.
    ///
    /// With `track_edges` (the device will write the range), the lines the range covers
    /// only partly are remembered as they are now, clean, so that
    /// [`SimRam::invalidate_for_cpu`] can tell whether the CPU dirtied them meanwhile.
    pub(crate) fn clean(&self, phys: PhysAddr, len: usize, track_edges: bool) {
        let Some((off, n)) = self.lines(phys, len) else { return };
        self.copy_to_memory(off, n);
        if track_edges {
            let mut shadows = self.lock_shadows();
            for (line_phys, line_off) in self.partial_lines(phys, len, off, n) {
                shadows.insert(line_phys, self.cached_line(line_off).into());
            }
        }
        // SAFETY: [cached.base + off, + n) lies inside the cached view (checked by `lines`).
        unsafe { dma_arch::clean((self.cached.base + off) as *const u8, n) };
    }

    /// The lines `[phys, phys + len)` covers only partly, as (line physical address,
    /// view offset); `off`/`n` are the rounded-out range from `lines`.
    fn partial_lines(&self, phys: PhysAddr, len: usize, off: usize, n: usize) -> impl Iterator<Item = (u64, usize)> {
        let line = self.line;
        let mask = line as u64 - 1;
        let head = phys.0 & mask != 0;
        let tail = (phys.0 + len as u64) & mask != 0 && !(n == line && head);
        let first = phys.0 & !mask;
        let last = first + (n - line) as u64;
        [(head, first, off), (tail, last, off + n - line)].into_iter().filter(|t| t.0).map(|(_, p, o)| (p, o))
    }

    fn cached_line(&self, off: usize) -> &[u8] {
        // SAFETY: `off` is a line offset inside the cached view (from `lines`); the slice
        // is only read, and only while the CPU owns no reference into device-owned lines.
        unsafe { std::slice::from_raw_parts((self.cached.base + off) as *const u8, self.line) }
    }

    fn lock_shadows(&self) -> std::sync::MutexGuard<'_, IntMap<u64, Box<[u8]>>> {
        self.shadows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cleans, then invalidates, every line touching the range (`dcache_clean_inval_poc`).
    pub(crate) fn clean_invalidate(&self, phys: PhysAddr, len: usize) {
        if let Some((off, n)) = self.lines(phys, len) {
            // After the write-back both views agree, so the invalidate copies nothing.
            self.copy_to_memory(off, n);
            // SAFETY: as in `clean`.
            unsafe { dma_arch::clean_invalidate((self.cached.base + off) as *const u8, n) };
        }
    }

    /// Invalidates the range for the CPU after the device wrote it (`dcache_inval_poc`).
    ///
    /// Lines fully inside are dropped and reloaded from memory. A line only partly
    /// covered gets arm64's `dc civac`: if the CPU dirtied it since the clean that handed
    /// it to the device (some byte differs from the line as it was then), the whole line is
    /// written back first, over whatever the device wrote into it, exactly as hardware
    /// does. That is the hazard `ARCH_DMA_MINALIGN` exists for: a DMA buffer must not
    /// share a line with data the CPU writes. A partial line the CPU left alone is clean
    /// and is simply reloaded, as on hardware.
    pub(crate) fn invalidate_for_cpu(&self, phys: PhysAddr, len: usize) {
        let Some((off, n)) = self.lines(phys, len) else { return };
        let edges: Vec<_> = self.partial_lines(phys, len, off, n).collect();
        if !edges.is_empty() {
            let mut shadows = self.lock_shadows();
            for (line_phys, line_off) in edges {
                let dirty = shadows.remove(&line_phys).is_some_and(|s| *s != *self.cached_line(line_off));
                if dirty {
                    self.copy_to_memory(line_off, self.line);
                }
            }
        }
        self.copy_to_cached(off, n);
        // SAFETY: as in `clean`.
        unsafe { dma_arch::invalidate((self.cached.base + off) as *const u8, n) };
    }

    fn copy_to_memory(&self, off: usize, n: usize) {
        // SAFETY: both ranges lie inside their views (callers pass offsets from `lines`)
        // and the two views are distinct mappings, so they do not overlap.
        unsafe {
            ptr::copy_nonoverlapping((self.cached.base + off) as *const u8, (self.memory.base + off) as *mut u8, n)
        };
    }

    fn copy_to_cached(&self, off: usize, n: usize) {
        // SAFETY: as in `copy_to_memory`.
        unsafe {
            ptr::copy_nonoverlapping((self.memory.base + off) as *const u8, (self.cached.base + off) as *mut u8, n)
        };
    }

    /// Maps the memory view of `[phys, phys + len)` at a new CPU address: the uncached
    /// alias a coherent allocation for a non-coherent device uses. `phys` and `len` are
    /// page aligned.
    pub(crate) fn remap_uncached(&self, phys: PhysAddr, len: usize) -> Result<*mut u8> {
        let off = self.offset(phys, len).ok_or(Errno::EINVAL)?;
        // SAFETY: a new shared mapping of our memfd at a kernel-chosen address; the file
        // range exists (checked by `offset`) and the mapping aliases no Rust object.
        let p = unsafe {
            mmap(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &self.memory_fd,
                off as u64,
            )
        }
        .map_err(|e| Errno::from_raw(e.raw_os_error()))?;
        self.remaps.lock().unwrap_or_else(|e| e.into_inner()).insert(p as usize, (phys, len));
        Ok(p.cast())
    }

    /// Maps the cached view (or, `uncached`, the memory view) of `[phys, phys + len)`
    /// (page aligned, one RAM region) over `[at, at + len)`, replacing what is there.
    ///
    /// # Safety
    ///
    /// `[at, at + len)` is the caller's to replace: it holds no object in use.
    pub(crate) unsafe fn map_at(&self, phys: PhysAddr, len: usize, at: usize, uncached: bool) -> Result<()> {
        if phys.page_offset() != 0 || len == 0 || len % PAGE_SIZE != 0 || at % PAGE_SIZE != 0 {
            return Err(Errno::EINVAL);
        }
        let off = self.offset(phys, len).ok_or(Errno::EINVAL)?;
        let fd = if uncached { &self.memory_fd } else { &self.cached_fd };
        // SAFETY: a shared mapping of our memfd over the caller's range (its contract);
        // the file range exists (checked by `offset`).
        unsafe {
            mmap(
                at as *mut std::ffi::c_void,
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::FIXED,
                fd,
                off as u64,
            )
        }
        .map_err(|e| Errno::from_raw(e.raw_os_error()))?;
        Ok(())
    }

    /// Removes a remap made by [`SimRam::remap_uncached`]. Returns its physical range,
    /// or `None` (and changes nothing) if `va` is not the start of a live remap.
    pub(crate) fn unmap_uncached(&self, va: usize) -> Option<(PhysAddr, usize)> {
        let (phys, len) = self.remaps.lock().unwrap_or_else(|e| e.into_inner()).remove(&va)?;
        // SAFETY: `va..va+len` is a live mapping we created in `remap_uncached`; it was
        // just removed from the registry so nobody unmaps it twice.
        let _ = unsafe { munmap(va as *mut _, len) };
        Some((phys, len))
    }

    /// Maps `pages` (page-aligned physical addresses of RAM, in order) at consecutive CPU
    /// addresses of a new range: one virtually contiguous, cached alias of scattered pages
    /// (the kernel's `vmap`). Each page is the same memory as its cached-view address.
    pub(crate) fn vmap(&self, pages: &[PhysAddr]) -> Result<*mut u8> {
        self.vmap_view(pages, &self.cached_fd)
    }

    /// Like [`SimRam::vmap`], of the memory view: an uncached alias of scattered pages
    /// (`dma_common_pages_remap` with the coherent protection).
    pub(crate) fn vmap_uncached(&self, pages: &[PhysAddr]) -> Result<*mut u8> {
        self.vmap_view(pages, &self.memory_fd)
    }

    fn vmap_view(&self, pages: &[PhysAddr], fd: &OwnedFd) -> Result<*mut u8> {
        let len = pages.len().checked_mul(PAGE_SIZE).filter(|&l| l != 0).ok_or(Errno::EINVAL)?;
        let offs = pages
            .iter()
            .map(|p| if p.page_offset() == 0 { self.offset(*p, PAGE_SIZE) } else { None })
            .collect::<Option<Vec<_>>>()
            .ok_or(Errno::EINVAL)?;
        // SAFETY: reserving a fresh inaccessible range at a kernel-chosen address; it
        // aliases no Rust object.
        let base = unsafe {
            mmap_anonymous(ptr::null_mut(), len, ProtFlags::empty(), MapFlags::PRIVATE | MapFlags::NORESERVE)
        }
        .map_err(|e| Errno::from_raw(e.raw_os_error()))?;
        for (i, off) in offs.iter().enumerate() {
            let at = (base as usize + i * PAGE_SIZE) as *mut std::ffi::c_void;
            // SAFETY: `at` is inside the range reserved just above, which nothing else
            // uses; MAP_FIXED replaces that reserved page only.
            let r = unsafe {
                mmap(
                    at,
                    PAGE_SIZE,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED | MapFlags::FIXED,
                    fd,
                    *off as u64,
                )
            };
            if let Err(e) = r {
                // SAFETY: the whole range is ours and unused.
                let _ = unsafe { munmap(base, len) };
                return Err(Errno::from_raw(e.raw_os_error()));
            }
        }
        self.vmaps.lock().unwrap_or_else(|e| e.into_inner()).insert(base as usize, pages.to_vec());
        Ok(base.cast())
    }

    /// Removes a vmap; returns its pages, or `None` (nothing changed) if `va` is not the
    /// start of a live vmap.
    pub(crate) fn vunmap(&self, va: usize) -> Option<Vec<PhysAddr>> {
        let pages = self.vmaps.lock().unwrap_or_else(|e| e.into_inner()).remove(&va)?;
        // SAFETY: `va` starts a live vmap of `pages.len()` pages we created; it was just
        // removed from the registry so nobody unmaps it twice.
        let _ = unsafe { munmap(va as *mut _, pages.len() * PAGE_SIZE) };
        Some(pages)
    }

    /// The physical address behind a CPU address inside a live vmap.
    pub(crate) fn vmap_to_phys(&self, va: usize) -> Option<PhysAddr> {
        let vmaps = self.vmaps.lock().unwrap_or_else(|e| e.into_inner());
        let (&start, pages) = vmaps.range(..=va).next_back()?;
        let page = pages.get((va - start) / PAGE_SIZE)?;
        Some(PhysAddr(page.0 + ((va - start) % PAGE_SIZE) as u64))
    }

    /// The remap that contains `va`, as (start, physical address, length).
    pub(crate) fn find_remap(&self, va: usize) -> Option<(usize, PhysAddr, usize)> {
        let remaps = self.remaps.lock().unwrap_or_else(|e| e.into_inner());
        let (&start, &(phys, len)) = remaps.range(..=va).next_back()?;
        (va - start < len).then_some((start, phys, len))
    }
}

impl Drop for SimRam {
    fn drop(&mut self) {
        let remaps = std::mem::take(self.remaps.get_mut().unwrap_or_else(|e| e.into_inner()));
        let vmaps = std::mem::take(self.vmaps.get_mut().unwrap_or_else(|e| e.into_inner()));
        let aliases = remaps.into_iter().map(|(va, (_, len))| (va, len));
        for (va, len) in aliases.chain(vmaps.into_iter().map(|(va, p)| (va, p.len() * PAGE_SIZE))) {
            // SAFETY: each entry is a live mapping this platform created; the platform
            // is going away, so nothing can use it any more.
            let _ = unsafe { munmap(va as *mut _, len) };
        }
    }
}

fn new_memfd(name: &std::ffi::CStr, len: usize) -> Result<OwnedFd> {
    let fd = memfd_create(name, MemfdFlags::CLOEXEC).map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    ftruncate(&fd, len as u64).map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram() -> SimRam {
        SimRam::new(
            &[MemRange { base: 0x10_0000, size: 0x10_0000 }, MemRange { base: 0x1_0000_0000, size: 0x2000 }],
            64,
        )
        .unwrap()
    }

    fn cpu(r: &SimRam, p: u64) -> *mut u8 {
        r.cached_ptr(PhysAddr(p), 1).unwrap()
    }

    fn mem(r: &SimRam, p: u64) -> *mut u8 {
        r.memory_ptr(PhysAddr(p), 1).unwrap()
    }

    #[test]
    fn translation_is_bounded_by_regions() {
        let r = ram();
        assert!(r.is_ram(PhysAddr(0x10_0000), 0x10_0000));
        assert!(!r.is_ram(PhysAddr(0x10_0000), 0x10_0001), "a range may not run past its region");
        assert!(!r.is_ram(PhysAddr(0xf_f000), 1));
        let va = cpu(&r, 0x1_0000_1000) as usize;
        assert_eq!(r.virt_to_phys(va, 0x1000), Some(PhysAddr(0x1_0000_1000)));
        assert_eq!(r.virt_to_phys(va, 0x1001), None);
        let heap = [0u8; 16];
        assert_eq!(r.virt_to_phys(heap.as_ptr() as usize, 16), None);
    }

    #[test]
    fn clean_and_invalidate_move_whole_lines_between_views() {
        let r = ram();
        // SAFETY: addresses come from the platform and lie in its views.
        unsafe {
            *cpu(&r, 0x10_0010) = 7;
            assert_eq!(*mem(&r, 0x10_0010), 0, "the device view is stale before a clean");
            *cpu(&r, 0x10_0000) = 9; // same line, outside the cleaned byte
            r.clean(PhysAddr(0x10_0010), 1, false);
            assert_eq!(*mem(&r, 0x10_0010), 7);
            assert_eq!(*mem(&r, 0x10_0000), 9, "clean writes the whole line back");
            *mem(&r, 0x10_0040) = 5;
            r.invalidate_for_cpu(PhysAddr(0x10_0040), 64);
            assert_eq!(*cpu(&r, 0x10_0040), 5);
        }
    }

    #[test]
    fn a_partial_line_the_cpu_dirtied_is_written_back_over_the_device_data() {
        let r = ram();
        // SAFETY: addresses come from the platform and lie in its views.
        unsafe {
            // Bytes 0x20..0x40 of a line go to the device; byte 0 is another variable.
            r.clean(PhysAddr(0x10_0020), 0x20, true);
            *cpu(&r, 0x10_0000) = 0x11; // the CPU dirties the line during the DMA
            *mem(&r, 0x10_0020) = 0xdd; // the device writes its part
            r.invalidate_for_cpu(PhysAddr(0x10_0020), 0x20);
            assert_eq!(*cpu(&r, 0x10_0000), 0x11, "the neighbour survives (written back)");
            assert_eq!(*cpu(&r, 0x10_0020), 0, "the device's bytes in the shared line are lost");
        }
    }

    #[test]
    fn a_partial_line_the_cpu_left_clean_keeps_the_device_data() {
        let r = ram();
        // SAFETY: addresses come from the platform and lie in its views.
        unsafe {
            *cpu(&r, 0x10_0000) = 0x11;
            r.clean(PhysAddr(0x10_0020), 0x10, true); // head and tail in one line
            *mem(&r, 0x10_0020) = 0xdd;
            r.invalidate_for_cpu(PhysAddr(0x10_0020), 0x10);
            assert_eq!(*cpu(&r, 0x10_0020), 0xdd);
            assert_eq!(*cpu(&r, 0x10_0000), 0x11);
        }
        assert!(r.lock_shadows().is_empty(), "shadows are consumed by the invalidate");
    }

    #[test]
    fn vmap_makes_scattered_pages_virtually_contiguous() {
        let r = ram();
        let pages = [PhysAddr(0x1_0000_1000), PhysAddr(0x10_5000), PhysAddr(0x1_0000_0000)];
        let v = r.vmap(&pages).unwrap();
        // SAFETY: `v` maps three pages; the cached-view pointers are in range.
        unsafe {
            *v.add(0x1000 + 5) = 77;
            assert_eq!(*cpu(&r, 0x10_5005), 77, "the vmap aliases the cached view");
            *cpu(&r, 0x1_0000_0010) = 66;
            assert_eq!(*v.add(0x2010), 66);
        }
        assert_eq!(r.vmap_to_phys(v as usize + 0x1005), Some(PhysAddr(0x10_5005)));
        assert!(r.vmap(&[PhysAddr(0x10_0001)]).is_err(), "pages must be page aligned");
        assert!(r.vmap(&[PhysAddr(0x50_0000_0000)]).is_err(), "and RAM");
        assert_eq!(r.vunmap(v as usize), Some(pages.to_vec()));
        assert_eq!(r.vunmap(v as usize), None);
        let u = r.vmap_uncached(&pages[..2]).unwrap();
        // SAFETY: `u` maps two pages; the memory-view pointer is in range.
        unsafe {
            *u.add(0x1000 + 7) = 55;
            assert_eq!(*mem(&r, 0x10_5007), 55, "the uncached vmap aliases the memory view");
        }
        assert!(r.vunmap(u as usize).is_some());
    }

    #[test]
    fn uncached_remap_aliases_the_memory_view() {
        let r = ram();
        let p = r.remap_uncached(PhysAddr(0x10_2000), 0x2000).unwrap();
        // SAFETY: p is a live 8 KiB mapping; the memory-view pointer is in range.
        unsafe {
            *p.add(0x1004) = 42;
            assert_eq!(*mem(&r, 0x10_3004), 42);
        }
        assert_eq!(r.find_remap(p as usize + 0x1fff), Some((p as usize, PhysAddr(0x10_2000), 0x2000)));
        assert_eq!(r.unmap_uncached(p as usize), Some((PhysAddr(0x10_2000), 0x2000)));
        assert_eq!(r.unmap_uncached(p as usize), None);
    }
}
