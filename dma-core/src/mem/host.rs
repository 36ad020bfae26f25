//! The host platform: real pages of this process, pinned, with their physical addresses
//! from `/proc/self/pagemap`, for devices without an IOMMU (UIO, sysfs `resource0`).
//!
//! RAM is one memfd of `host_mem` bytes of 4 KiB pages, plus one hugetlb memfd of
//! `hugepages` 2 MiB pages. Every page is populated and `mlock`ed, then its page frame
//! number read from pagemap (root only: without `CAP_SYS_ADMIN` the kernel reports 0, and
//! the platform refuses with `EPERM`). Pages are sorted by physical address and grouped
//! into runs of physically contiguous frames; each run is one RAM range of the page
//! allocator, so zones, masks and `dma_capable` work on real addresses unchanged. 4 KiB
//! pages are usually scattered (mostly one-page runs, so they serve single pages and
//! kmalloc); hugepages give runs of 512 pages or more, which multi-page allocations, the
//! swiotlb pool and CMA areas need.
//!
//! The CPU view maps the runs in physical order into one reserved range (`MAP_FIXED` of
//! the memfd pages, as `vmap` does), so a physically contiguous range is also virtually
//! contiguous and `phys_to_virt` / `virt_to_phys` are a binary search over the runs. The
//! mapping is then checked against pagemap once more.
//!
//! `host_low=SIZE,LIMIT` gathers pages for a device with a small mask: allocate 4 MiB at
//! a time, keep the pages below `LIMIT`, hold the rest (so the kernel does not hand them
//! out again) until enough are found, then punch them out of the memfd.
//!
//! One view: the device reads and writes the memory the CPU maps. Cache maintenance is
//! the real `dma_arch` instruction on the CPU address, no copies. Userspace cannot map
//! memory uncached, so the uncached remap (a coherent allocation for a non-coherent
//! device) is `EOPNOTSUPP`.
//!
//! Caveat: with `vm.compact_unevictable_allowed=1` (the default) compaction may migrate
//! mlocked 4 KiB pages; hugetlb pages are not moved by compaction. A warning says so.
//!
//! # Safety
//!
//! This file owns the CPU view and the vmaps. Every pointer it hands out lies inside
//! one of them, comes from a bounds-checked physical range, and stays valid until the
//! `HostRam` is dropped (the system that owns it outlives its devices and buffers).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use crate::addr::{PAGE_SHIFT, PAGE_SIZE, PhysAddr};
use crate::errno::{Errno, Result};
use crate::log::{Level, Log};
use crate::mem::platform::Region;
use crate::options::HostOptions;

mod sys;

/// A hugetlb page.
const HUGE: usize = 2 << 20;
/// How much `host_low` allocates at a time.
const GATHER_BATCH: u64 = 4 << 20;

/// What the host says when asked for uncached memory.
pub(crate) const NO_UNCACHED: &str = "host platform: userspace cannot map memory uncached; use a coherent device or non-coherent allocations with dma_sync_*";
/// What the host says without the privilege to read physical addresses.
pub(crate) const NEEDS_ROOT: &str =
    "host platform needs root (CAP_SYS_ADMIN) to read physical addresses from /proc/self/pagemap";

/// One frame of RAM found at set-up: where it is in its memfd and in physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Frame {
    huge: bool,
    file_off: u64,
    pfn: u64,
}

/// The frames of one region, in physical order, by their offset in their memfd.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Run {
    huge: bool,
    files: Vec<u64>,
}

impl Run {
    fn frame(&self) -> usize {
        if self.huge { HUGE } else { PAGE_SIZE }
    }
}

/// A range of address space this platform mapped, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    base: usize,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range was mapped by this file and nothing uses it once dropped.
        unsafe { sys::unmap(self.base, self.len) };
    }
}

/// Real pinned RAM.
#[derive(Debug)]
pub struct HostRam {
    regions: Vec<Region>,
    runs: Vec<Run>,
    view: Mapping,
    small: Option<OwnedFd>,
    huge: Option<OwnedFd>,
    line: usize,
    /// Live vmaps: CPU address → the pages, in order.
    vmaps: Mutex<BTreeMap<usize, Vec<PhysAddr>>>,
}

/// Set-up state: frames found so far, temporary mappings holding them, pages to give back.
struct Gather<'a> {
    pagemap: sys::Pagemap,
    log: &'a Log,
    frames: Vec<Frame>,
    temps: Vec<Mapping>,
    rejects: Vec<u64>,
}

impl Gather<'_> {
    /// Maps, populates and pins `[off, off + len)` of `fd`, reads the frames' numbers and
    /// keeps those `keep` accepts.
    fn take(&mut self, fd: &OwnedFd, off: u64, len: usize, huge: bool, keep: impl Fn(u64) -> bool) -> Result<()> {
        let va = sys::map_shared(fd, off, len).inspect_err(|e| {
            let what = if huge { "hugetlb pages" } else { "pages" };
            self.log.emit(Level::Error, "host", format_args!("cannot map {len} bytes of {what}: {e}"));
            if huge {
                self.log.emit(
                    Level::Error,
                    "host",
                    format_args!("reserve 2 MiB hugepages first: echo N > /proc/sys/vm/nr_hugepages"),
                );
            }
        })?;
        self.temps.push(Mapping { base: va, len });
        sys::pin(va, len).inspect_err(|e| {
            self.log.emit(Level::Error, "host", format_args!("cannot mlock {len} bytes: {e} (raise RLIMIT_MEMLOCK)"));
        })?;
        let frame = if huge { HUGE } else { PAGE_SIZE };
        let entries = self.pagemap.pfns(va, len / PAGE_SIZE)?;
        for (i, e) in entries.iter().step_by(frame / PAGE_SIZE).enumerate() {
            let file_off = off + (i * frame) as u64;
            match *e {
                None => {
                    self.log.emit(Level::Error, "host", format_args!("a pinned page is not present in pagemap"));
                    return Err(Errno::EFAULT);
                }
                Some(0) => {
                    self.log.emit(Level::Error, "host", format_args!("{NEEDS_ROOT}"));
                    return Err(Errno::EPERM);
                }
                Some(pfn) if keep(pfn) => self.frames.push(Frame { huge, file_off, pfn }),
                Some(_) => self.rejects.push(file_off),
            }
        }
        Ok(())
    }
}

/// Groups frames into regions of physically contiguous frames of one kind, laid out in
/// physical order in the CPU view (hugetlb regions on 2 MiB boundaries). Returns the
/// regions, their runs and the view's length.
fn build_runs(mut frames: Vec<Frame>) -> (Vec<Region>, Vec<Run>, usize) {
    frames.sort_by_key(|f| f.pfn);
    let (mut regions, mut runs): (Vec<Region>, Vec<Run>) = (Vec::new(), Vec::new());
    let mut end = 0usize;
    for f in frames {
        let size = if f.huge { HUGE } else { PAGE_SIZE };
        let phys = f.pfn << PAGE_SHIFT;
        if let (Some(r), Some(run)) = (regions.last_mut(), runs.last_mut()) {
            if run.huge == f.huge && r.phys + r.size == phys {
                r.size += size as u64;
                run.files.push(f.file_off);
                end += size;
                continue;
            }
        }
        let off = if f.huge { end.next_multiple_of(HUGE) } else { end };
        regions.push(Region { phys, size: size as u64, off });
        runs.push(Run { huge: f.huge, files: vec![f.file_off] });
        end = off + size;
    }
    (regions, runs, end)
}

impl HostRam {
    /// Takes, pins and lays out the memory `host` asks for.
    ///
    /// # Errors
    ///
    /// `EPERM` without the privilege to read physical addresses; `EINVAL` when no memory
    /// is asked for; `ENOMEM` or the OS error when memory cannot be had or pinned; `EBUSY`
    /// when a page moved during set-up. Each with a message in `log`.
    pub(crate) fn new(host: &HostOptions, log: &Log) -> Result<HostRam> {
        if host.mem == 0 && host.hugepages == 0 && host.low.is_none() {
            log.emit(Level::Error, "host", format_args!("no memory: set host_mem=SIZE or hugepages=N"));
            return Err(Errno::EINVAL);
        }
        let pagemap = sys::Pagemap::open().inspect_err(|e| {
            log.emit(Level::Error, "host", format_args!("cannot open /proc/self/pagemap: {e}"));
        })?;
        let mut g = Gather { pagemap, log, frames: Vec::new(), temps: Vec::new(), rejects: Vec::new() };
        let small =
            if host.mem > 0 || host.low.is_some() { Some(sys::memfd(c"dma-host", host.mem, false)?) } else { None };
        if let (Some(fd), true) = (&small, host.mem > 0) {
            g.take(fd, 0, to_usize(host.mem)?, false, |_| true)?;
        }
        if let (Some(fd), Some(low)) = (&small, host.low) {
            gather_low(&mut g, fd, host.mem, low.size, low.limit)?;
        }
        let huge = match host.hugepages {
            0 => None,
            n => {
                let len = n.checked_mul(HUGE).ok_or(Errno::ENOMEM)?;
                let fd = sys::memfd(c"dma-host-huge", len as u64, true).inspect_err(|e| {
                    log.emit(Level::Error, "host", format_args!("cannot create a hugetlb memfd: {e}"));
                })?;
                g.take(&fd, 0, len, true, |_| true)?;
                Some(fd)
            }
        };
        let (regions, runs, len) = build_runs(std::mem::take(&mut g.frames));
        if regions.is_empty() {
            log.emit(Level::Error, "host", format_args!("no pages were found to use as RAM"));
            return Err(Errno::ENOMEM);
        }
        let align = if huge.is_some() { HUGE } else { PAGE_SIZE };
        let view = Mapping { base: sys::reserve(len, align)?, len };
        let ram = HostRam {
            regions,
            runs,
            view,
            small,
            huge,
            line: dma_arch::cache_line_size(),
            vmaps: Mutex::new(BTreeMap::new()),
        };
        ram.map_view()?;
        ram.verify(&g.pagemap, log)?;
        // The view holds the pages now; the temporary mappings and the rejects can go.
        drop(std::mem::take(&mut g.temps));
        if let Some(fd) = &ram.small {
            for off in &g.rejects {
                let _ = sys::punch_hole(fd, *off, PAGE_SIZE as u64);
            }
        }
        if host.mem > 0 && sys::compaction_moves_locked_pages() {
            log.emit(
                Level::Info,
                "host",
                format_args!(
                    "vm.compact_unevictable_allowed=1: compaction may move pinned 4 KiB pages; \
                     set it to 0 or use hugepages=N for long-lived DMA buffers"
                ),
            );
        }
        Ok(ram)
    }

    /// Maps every run's frames, in physical order, over the reserved view, and pins them.
    fn map_view(&self) -> Result<()> {
        for (r, run) in self.regions.iter().zip(&self.runs) {
            let fd = self.fd(run.huge);
            let frame = run.frame();
            let mut i = 0;
            while i < run.files.len() {
                // Frames adjacent in the file too go in one call.
                let mut n = 1;
                while i + n < run.files.len() && run.files[i + n] == run.files[i] + (n * frame) as u64 {
                    n += 1;
                }
                // SAFETY: the target lies inside the view this platform reserved and owns.
                unsafe { sys::map_fixed(fd, run.files[i], self.view.base + r.off + i * frame, n * frame)? };
                i += n;
            }
            sys::pin(self.view.base + r.off, r.size as usize)?;
        }
        Ok(())
    }

    /// Checks that each page of the view is the physical page its region says.
    fn verify(&self, pagemap: &sys::Pagemap, log: &Log) -> Result<()> {
        for r in &self.regions {
            let pfns = pagemap.pfns(self.view.base + r.off, r.size as usize / PAGE_SIZE)?;
            let first = r.phys >> PAGE_SHIFT;
            if let Some(i) = pfns.iter().enumerate().position(|(i, p)| *p != Some(first + i as u64)) {
                log.emit(
                    Level::Error,
                    "host",
                    format_args!(
                        "page {:#x} moved during set-up (now {:?})",
                        r.phys + (i << PAGE_SHIFT) as u64,
                        pfns[i]
                    ),
                );
                return Err(Errno::EBUSY);
            }
        }
        Ok(())
    }

    fn fd(&self, huge: bool) -> &OwnedFd {
        let fd = if huge { &self.huge } else { &self.small };
        fd.as_ref().expect("a run's memfd exists")
    }

    /// The CPU's cache line size.
    pub(crate) fn line_size(&self) -> usize {
        self.line
    }

    /// The runs of physically contiguous RAM, sorted.
    pub(crate) fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The index of the region holding `[phys, phys + len)`, and the offset in it.
    #[inline]
    fn locate(&self, phys: PhysAddr, len: usize) -> Option<(usize, u64)> {
        let i = self.regions.partition_point(|r| r.phys + r.size <= phys.0);
        let r = self.regions.get(i)?;
        let rel = phys.0.checked_sub(r.phys)?;
        ((len as u64) <= r.size - rel).then_some((i, rel))
    }

    /// True when `[phys, phys + len)` is RAM of one run.
    pub(crate) fn is_ram(&self, phys: PhysAddr, len: usize) -> bool {
        self.locate(phys, len).is_some()
    }

    /// The CPU address of `[phys, phys + len)`.
    #[inline]
    pub(crate) fn cached_ptr(&self, phys: PhysAddr, len: usize) -> Option<*mut u8> {
        let (i, rel) = self.locate(phys, len)?;
        Some((self.view.base + self.regions[i].off + rel as usize) as *mut u8)
    }

    /// The physical address of a CPU address in the view, if `[va, va + len)` lies in one run.
    #[inline]
    pub(crate) fn virt_to_phys(&self, va: usize, len: usize) -> Option<PhysAddr> {
        let off = va.checked_sub(self.view.base).filter(|&o| o < self.view.len)?;
        let i = self.regions.partition_point(|r| r.off + r.size as usize <= off);
        let r = self.regions.get(i)?;
        let rel = off.checked_sub(r.off)?;
        (len <= r.size as usize - rel).then_some(PhysAddr(r.phys + rel as u64))
    }

    /// Calls `f(memfd, file offset, CPU address, start, end)` for each frame-sized piece
    /// of `[phys, phys + len)`, `start..end` being the piece's bytes in the range.
    fn pieces(
        &self,
        phys: PhysAddr,
        len: usize,
        mut f: impl FnMut(&OwnedFd, u64, *mut u8, usize, usize) -> bool,
    ) -> bool {
        let Some((i, rel)) = self.locate(phys, len) else { return false };
        let (r, run) = (&self.regions[i], &self.runs[i]);
        let frame = run.frame();
        let mut done = 0;
        while done < len {
            let at = rel as usize + done;
            let n = (frame - at % frame).min(len - done);
            let file_off = run.files[at / frame] + (at % frame) as u64;
            let cpu = (self.view.base + r.off + at) as *mut u8;
            if !f(self.fd(run.huge), file_off, cpu, done, done + n) {
                return false;
            }
            done += n;
        }
        true
    }

    /// Reads RAM through the memfd (so guard mode's protected pages do not fault), or
    /// through the view where the file cannot be read.
    pub(crate) fn read_cached(&self, phys: PhysAddr, buf: &mut [u8]) -> bool {
        self.pieces(phys, buf.len(), |fd, off, cpu, s, e| {
            sys::pread(fd, off, &mut buf[s..e]) || {
                // SAFETY: `cpu` covers `e - s` bytes of the view; `buf` is a distinct buffer.
                unsafe { std::ptr::copy_nonoverlapping(cpu, buf[s..e].as_mut_ptr(), e - s) };
                true
            }
        })
    }

    /// Writes RAM through the memfd, or the view for hugetlb pages (no `write` there).
    pub(crate) fn write_cached(&self, phys: PhysAddr, data: &[u8]) -> bool {
        self.pieces(phys, data.len(), |fd, off, cpu, s, e| {
            sys::pwrite(fd, off, &data[s..e]) || {
                // SAFETY: as in `read_cached`.
                unsafe { std::ptr::copy_nonoverlapping(data[s..e].as_ptr(), cpu, e - s) };
                true
            }
        })
    }

    /// Writes the CPU's dirty lines of the range back to memory (`dcache_clean_poc`).
    /// The real cache cannot tell partly covered lines apart, so `_track_edges` is moot.
    #[inline]
    pub(crate) fn clean(&self, phys: PhysAddr, len: usize, _track_edges: bool) {
        if let Some(p) = self.cached_ptr(phys, len) {
            // SAFETY: `[p, p + len)` lies inside the view, mapped for the platform's life.
            unsafe { dma_arch::clean(p, len) };
        }
    }

    /// `dcache_clean_inval_poc`.
    #[inline]
    pub(crate) fn clean_invalidate(&self, phys: PhysAddr, len: usize) {
        if let Some(p) = self.cached_ptr(phys, len) {
            // SAFETY: as in `clean`.
            unsafe { dma_arch::clean_invalidate(p, len) };
        }
    }

    /// `dcache_inval_poc` (on arm64 at EL0 this cleans too: `dc ivac` traps there).
    #[inline]
    pub(crate) fn invalidate_for_cpu(&self, phys: PhysAddr, len: usize) {
        if let Some(p) = self.cached_ptr(phys, len) {
            // SAFETY: as in `clean`.
            unsafe { dma_arch::invalidate(p, len) };
        }
    }

    /// Userspace cannot map memory uncached.
    pub(crate) fn remap_uncached(&self, _phys: PhysAddr, _len: usize) -> Result<*mut u8> {
        Err(Errno::EOPNOTSUPP)
    }

    /// Maps the RAM of `[phys, phys + len)` (page aligned, one run) over
    /// `[at, at + len)`, replacing what is there: its memfd pages, in one call per
    /// stretch that is contiguous in the file too. `EOPNOTSUPP` for `uncached`
    /// (userspace cannot map memory uncached).
    ///
    /// # Safety
    ///
    /// `[at, at + len)` is the caller's to replace: it holds no object in use.
    pub(crate) unsafe fn map_at(&self, phys: PhysAddr, len: usize, at: usize, uncached: bool) -> Result<()> {
        if uncached {
            return Err(Errno::EOPNOTSUPP);
        }
        if phys.page_offset() != 0 || len == 0 || len % PAGE_SIZE != 0 || at % PAGE_SIZE != 0 {
            return Err(Errno::EINVAL);
        }
        let (i, rel) = self.locate(phys, len).ok_or(Errno::EINVAL)?;
        let run = &self.runs[i];
        let (fd, frame, rel) = (self.fd(run.huge), run.frame(), rel as usize);
        // (file offset, destination, length) of each piece, merged where the file continues.
        let mut pieces: Vec<(u64, usize, usize)> = Vec::new();
        let mut done = 0;
        while done < len {
            let pos = rel + done;
            let n = (frame - pos % frame).min(len - done);
            let file_off = run.files[pos / frame] + (pos % frame) as u64;
            match pieces.last_mut() {
                Some(last) if last.0 + last.2 as u64 == file_off => last.2 += n,
                _ => pieces.push((file_off, at + done, n)),
            }
            done += n;
        }
        for (off, dst, n) in pieces {
            // SAFETY: the destination lies in the caller's range (forwarded contract).
            unsafe { sys::map_fixed(fd, off, dst, n)? };
        }
        Ok(())
    }

    /// There are no uncached remaps.
    pub(crate) fn unmap_uncached(&self, _va: usize) -> Option<(PhysAddr, usize)> {
        None
    }

    /// There are no uncached remaps.
    #[inline]
    pub(crate) fn find_remap(&self, _va: usize) -> Option<(usize, PhysAddr, usize)> {
        None
    }

    /// Userspace cannot map memory uncached.
    pub(crate) fn vmap_uncached(&self, _pages: &[PhysAddr]) -> Result<*mut u8> {
        Err(Errno::EOPNOTSUPP)
    }

    /// Maps 4 KiB pages of RAM, in order, at one new virtually contiguous range; the same
    /// memory as their addresses in the view. Hugetlb memory cannot be remapped by 4 KiB
    /// pages (`EOPNOTSUPP`).
    pub(crate) fn vmap(&self, pages: &[PhysAddr]) -> Result<*mut u8> {
        let len = pages.len().checked_mul(PAGE_SIZE).filter(|&l| l != 0).ok_or(Errno::EINVAL)?;
        let mut files = Vec::with_capacity(pages.len());
        for p in pages {
            let (i, rel) = self.locate(*p, PAGE_SIZE).filter(|_| p.page_offset() == 0).ok_or(Errno::EINVAL)?;
            let run = &self.runs[i];
            if run.huge {
                return Err(Errno::EOPNOTSUPP);
            }
            files.push(run.files[rel as usize / PAGE_SIZE]);
        }
        let fd = self.fd(false);
        let map = Mapping { base: sys::reserve(len, PAGE_SIZE)?, len };
        for (i, off) in files.iter().enumerate() {
            // SAFETY: the target page lies inside the range reserved just above.
            unsafe { sys::map_fixed(fd, *off, map.base + i * PAGE_SIZE, PAGE_SIZE)? };
        }
        let base = map.base;
        std::mem::forget(map);
        self.vmaps.lock().unwrap_or_else(|e| e.into_inner()).insert(base, pages.to_vec());
        Ok(base as *mut u8)
    }

    /// Removes a vmap; its pages, or `None` (nothing changed) if `va` starts none.
    pub(crate) fn vunmap(&self, va: usize) -> Option<Vec<PhysAddr>> {
        let pages = self.vmaps.lock().unwrap_or_else(|e| e.into_inner()).remove(&va)?;
        // SAFETY: `va` starts a live vmap of `pages.len()` pages made here; it was just
        // removed from the registry, so nobody unmaps it twice.
        unsafe { sys::unmap(va, pages.len() * PAGE_SIZE) };
        Some(pages)
    }

    /// The physical address behind a CPU address inside a live vmap.
    pub(crate) fn vmap_to_phys(&self, va: usize) -> Option<PhysAddr> {
        let vmaps = self.vmaps.lock().unwrap_or_else(|e| e.into_inner());
        let (&start, pages) = vmaps.range(..=va).next_back()?;
        let page = pages.get((va - start) / PAGE_SIZE)?;
        Some(PhysAddr(page.0 + ((va - start) % PAGE_SIZE) as u64))
    }
}

impl Drop for HostRam {
    fn drop(&mut self) {
        let vmaps = std::mem::take(self.vmaps.get_mut().unwrap_or_else(|e| e.into_inner()));
        for (va, pages) in vmaps {
            // SAFETY: each entry is a live vmap made here; the platform is going away.
            unsafe { sys::unmap(va, pages.len() * PAGE_SIZE) };
        }
    }
}

/// `host_low`: allocates more 4 KiB pages, `GATHER_BATCH` at a time from file offset
/// `from`, until `size` bytes below `limit` are held, or half the available memory (at
/// most 4 GiB) has been tried. Pages above the limit are held until the end, so the
/// kernel cannot hand them out again, and then given back.
fn gather_low(g: &mut Gather<'_>, fd: &OwnedFd, from: u64, size: u64, limit: u64) -> Result<()> {
    let below = |pfn: u64| (pfn + 1) << PAGE_SHIFT <= limit;
    let held = |g: &Gather<'_>| g.frames.iter().filter(|f| !f.huge && below(f.pfn)).count() as u64 * PAGE_SIZE as u64;
    let budget = (sys::mem_available() / 2).min(4 << 30);
    let mut end = from;
    while held(g) < size && end - from + GATHER_BATCH <= budget {
        sys::resize(fd, end + GATHER_BATCH)?;
        g.take(fd, end, GATHER_BATCH as usize, false, below)?;
        end += GATHER_BATCH;
    }
    let got = held(g);
    if got < size {
        g.log.emit(
            Level::Warn,
            "host",
            format_args!("host_low: found {got} of {size} bytes below {limit:#x} after trying {} bytes", end - from),
        );
    }
    Ok(())
}

fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| Errno::ENOMEM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pfn: u64, file_off: u64, huge: bool) -> Frame {
        Frame { huge, file_off, pfn }
    }

    #[test]
    fn runs_group_contiguous_frames_of_one_kind_in_physical_order() {
        let frames = vec![
            f(0x102, 0x2000, false),
            f(0x100, 0x0, false),
            f(0x101, 0x5000, false),
            f(0x200, 0x1000, false),
            f(0x400, 0, true),
            f(0x600, HUGE as u64 * 3, true),
            f(0x800, 0x3000, false), // adjacent to the hugepage run, but another kind
        ];
        let (regions, runs, len) = build_runs(frames);
        let want = [
            Region { phys: 0x10_0000, size: 0x3000, off: 0 },
            Region { phys: 0x20_0000, size: 0x1000, off: 0x3000 },
            Region { phys: 0x40_0000, size: 2 * HUGE as u64, off: HUGE },
            Region { phys: 0x80_0000, size: 0x1000, off: 3 * HUGE },
        ];
        assert_eq!(regions, want);
        assert_eq!(runs[0].files, [0x0, 0x5000, 0x2000], "frames in physical order");
        assert_eq!(runs[2], Run { huge: true, files: vec![0, HUGE as u64 * 3] });
        assert_eq!(len, 3 * HUGE + 0x1000);
    }

    #[test]
    fn an_empty_request_is_refused_with_a_message() {
        let log = Log::new();
        let msg = std::sync::Arc::new(Mutex::new(String::new()));
        let m = std::sync::Arc::clone(&msg);
        log.set(Some(std::sync::Arc::new(move |_, s: &str| *m.lock().unwrap() = s.to_owned())));
        let r = HostRam::new(&HostOptions { mem: 0, hugepages: 0, low: None }, &log);
        assert_eq!(r.err(), Some(Errno::EINVAL));
        assert!(msg.lock().unwrap().contains("host_mem=SIZE or hugepages=N"));
    }
}
