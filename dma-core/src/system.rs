//! `System`: the composition root. One platform, its page allocator, the swiotlb pool,
//! kmalloc and the message sink; devices are created on a system and keep it alive.
//!
//! The kernel has these as globals set up at boot. Here a program (or the C ABI's
//! global) builds one from an [`Options`] string, so tests can run many side by side.

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::addr::{PAGE_SHIFT, PAGE_SIZE, PhysAddr};
use crate::contiguous::{Cma, CmaAreaStats};
use crate::debug::{Debug, DebugStats, ReportSink};
use crate::direction::Direction;
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;
use crate::log::{Level, Log, Sink};
use crate::mem::host::{HostRam, NO_UNCACHED};
use crate::mem::kmalloc::Kmalloc;
use crate::mem::page_alloc::{Page, PageAllocator, Zone};
use crate::mem::platform::Platform;
use crate::mem::sim::SimRam;
use crate::options::{DebugMode, Options, PlatformKind, SwiotlbForce};
use crate::swiotlb::{IO_TLB_SEGSIZE, IO_TLB_SIZE, Swiotlb, SwiotlbStats};

/// Free and total pages of one zone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZoneStats {
    /// Pages in the zone.
    pub total_pages: u64,
    /// Pages free now.
    pub free_pages: u64,
    /// Order of the largest free block (`/proc/buddyinfo`'s last non-zero column).
    pub largest_free_order: Option<u32>,
}

/// A snapshot of the system's memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemStats {
    /// ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, in that order.
    pub zones: [ZoneStats; 3],
    /// The bounce pool, if there is one.
    pub swiotlb: Option<SwiotlbStats>,
}

/// Builds a [`System`].
#[derive(Default)]
pub struct SystemBuilder {
    options: Options,
    sink: Option<Sink>,
}

impl SystemBuilder {
    /// Uses these options (default: [`Options::default`]).
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Sends messages to `sink` instead of standard error.
    pub fn log_sink(mut self, sink: Sink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Lays out RAM, builds the zones and reserves the swiotlb pool.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a layout the platform refuses; `ENOMEM` or the OS error when RAM
    /// cannot be mapped; on the host platform `EPERM` without the privilege to read
    /// physical addresses (root), with a message naming it.
    pub fn build(self) -> Result<Arc<System>> {
        let log = Log::new();
        log.set(self.sink);
        let o = self.options;
        let ram = match o.platform {
            PlatformKind::Sim => {
                Platform::Sim(SimRam::new(&o.mem, o.cache_line.unwrap_or_else(dma_arch::cache_line_size))?)
            }
            PlatformKind::Host if o.cache_line.is_some() => {
                log.emit(Level::Error, "dma", format_args!("cache_line= is for platform=sim; the host uses the CPU's"));
                return Err(Errno::EINVAL);
            }
            PlatformKind::Host => Platform::Host(HostRam::new(&o.host, &log)?),
        };
        let line = ram.line_size();
        let pages = PageAllocator::new(ram.ranges(), o.zone_dma_bits);
        let swiotlb = reserve_swiotlb(&o, &ram, &pages, &log);
        let cma = match o.cma {
            None => None,
            Some(c) => {
                // Like arm64, the default area sits below 4 GiB unless told otherwise, so
                // 32-bit devices can use it; `cma=SIZE@BASE` alone is a fixed placement.
                let hi = c.limit.unwrap_or(if c.base.is_some() { u64::MAX } else { 1 << 32 });
                let fixed = c.base.is_some() && c.limit.is_none();
                match Cma::reserve(&pages, "reserved", c.size, c.base.map(PhysAddr), hi, fixed) {
                    Ok(cma) => Some(cma),
                    Err(e) => {
                        log.emit(
                            Level::Error,
                            "cma",
                            format_args!("cannot reserve the default area ({} bytes): {e}", c.size),
                        );
                        if ram.is_host() {
                            log.emit(Level::Error, "cma", format_args!("{HOST_CONTIG}"));
                        }
                        return Err(e);
                    }
                }
            }
        };
        let cache_alignment = dma_arch::ARCH_DMA_MINALIGN.max(line);
        let debug = match o.dma_debug {
            DebugMode::Off => None,
            DebugMode::On => Some(Debug::new(line, false)),
            DebugMode::Guard => Some(Debug::new(line, true)),
        };
        Ok(Arc::new(System {
            debug,
            kmalloc: Kmalloc::new(cache_alignment),
            options: o,
            ram,
            pages,
            swiotlb,
            cma,
            log,
            cache_alignment,
        }))
    }
}

impl fmt::Debug for SystemBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemBuilder").field("options", &self.options).field("sink", &self.sink.is_some()).finish()
    }
}

/// What the host platform adds when something needs physically contiguous memory.
const HOST_CONTIG: &str = "host platform: physically contiguous memory comes from runs of hugepages; set hugepages=N (and /proc/sys/vm/nr_hugepages)";

/// Takes the bounce pool below 4 GiB, halving the request while it does not fit (as the
/// kernel does at boot), and says so when it had to. On the host, below `host_low`'s
/// limit first when it is set, so small-mask devices can reach the pool.
fn reserve_swiotlb(o: &Options, ram: &Platform, pages: &PageAllocator, log: &Log) -> Option<Swiotlb> {
    let s = o.swiotlb;
    if s.slots == 0 || s.force == SwiotlbForce::NoForce {
        return None;
    }
    // On the host, below `host_low`'s limit first; and, as a last resort, anywhere: a heap
    // buffer has no physical address there, so even a 64-bit device needs the pool.
    let mut limits = vec![(Zone::Dma32, 1u64 << 32)];
    if ram.is_host() {
        if let Some(low) = o.host.low {
            limits.insert(0, (Zone::Dma32, low.limit.min(1 << 32)));
        }
        limits.push((Zone::Normal, u64::MAX));
    }
    let mut slots = s.slots;
    while slots >= IO_TLB_SEGSIZE {
        let npages = (slots * IO_TLB_SIZE / PAGE_SIZE) as u64;
        if let Some(pfn) = limits.iter().find_map(|&(z, l)| pages.take_contig(npages, z, l >> PAGE_SHIFT)) {
            if slots != s.slots {
                log.emit(Level::Warn, "swiotlb", format_args!("only {} of {} slots fit below 4 GiB", slots, s.slots));
            }
            if pfn.phys().0 >= 1 << 32 {
                log.emit(
                    Level::Warn,
                    "swiotlb",
                    format_args!("bounce pool at {} is above 4 GiB: 32-bit devices cannot use it", pfn.phys()),
                );
            }
            let cpu = ram.cached_ptr(pfn.phys(), slots * IO_TLB_SIZE)?;
            let nareas = s.areas.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            return Some(Swiotlb::new(pfn.phys(), cpu, slots, nareas, s.force == SwiotlbForce::Force));
        }
        slots = (slots / 2) / IO_TLB_SEGSIZE * IO_TLB_SEGSIZE;
    }
    log.emit(Level::Warn, "swiotlb", format_args!("no room below 4 GiB for a bounce pool; bouncing is disabled"));
    if ram.is_host() {
        log.emit(Level::Warn, "swiotlb", format_args!("{HOST_CONTIG}"));
    }
    None
}

/// The platform and its allocators.
pub struct System {
    options: Options,
    ram: Platform,
    pages: PageAllocator,
    swiotlb: Option<Swiotlb>,
    cma: Option<Cma>,
    debug: Option<Debug>,
    kmalloc: Kmalloc,
    log: Log,
    cache_alignment: usize,
}

impl System {
    /// A builder with default options.
    pub fn builder() -> SystemBuilder {
        SystemBuilder::default()
    }

    /// A system from `options`.
    ///
    /// # Errors
    ///
    /// As [`SystemBuilder::build`].
    pub fn new(options: Options) -> Result<Arc<System>> {
        System::builder().options(options).build()
    }

    /// A system from `$DMA_OPTS` (or the defaults when it is unset).
    ///
    /// # Errors
    ///
    /// `EINVAL` (with the parser's message on standard error) for a bad option string,
    /// else as [`SystemBuilder::build`].
    pub fn from_env() -> Result<Arc<System>> {
        match Options::from_env() {
            Ok(o) => System::new(o),
            Err(e) => {
                eprintln!("dma: {e}");
                Err(Errno::EINVAL)
            }
        }
    }

    /// The options the system was built from.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Sends messages to `sink` (`None`: standard error).
    pub fn set_log_sink(&self, sink: Option<Sink>) {
        self.log.set(sink);
    }

    /// `dma_get_cache_alignment`: the alignment and size granule that keeps DMA buffers
    /// off each other's cache lines (`ARCH_DMA_MINALIGN`, or the simulated line if larger).
    pub fn cache_alignment(&self) -> usize {
        self.cache_alignment
    }

    /// The cache line size the platform maintains: the simulated one, or the CPU's on the host.
    pub fn cache_line_size(&self) -> usize {
        self.ram.line_size()
    }

    /// The bounce pool, if there is one.
    pub fn swiotlb(&self) -> Option<&Swiotlb> {
        self.swiotlb.as_ref()
    }

    /// dma-debug's counters, when it is on (`dma_debug=1` or `guard`).
    pub fn debug_stats(&self) -> Option<DebugStats> {
        self.debug.as_ref().map(Debug::stats)
    }

    /// Sends dma-debug's reports to `sink` (`None`: standard error). No-op when off.
    pub fn set_debug_sink(&self, sink: Option<ReportSink>) {
        if let Some(d) = &self.debug {
            d.set_sink(sink);
        }
    }

    #[inline]
    pub(crate) fn debug(&self) -> Option<&Debug> {
        self.debug.as_ref()
    }

    /// The default contiguous area's statistics (`cma=`), if there is one.
    pub fn cma_stats(&self) -> Option<CmaAreaStats> {
        self.cma.as_ref().map(Cma::stats)
    }

    pub(crate) fn cma(&self) -> Option<&Cma> {
        self.cma.as_ref()
    }

    /// Memory statistics.
    pub fn stats(&self) -> SystemStats {
        let z = |zone| ZoneStats {
            total_pages: self.pages.nr_pages(zone),
            free_pages: self.pages.nr_free(zone),
            largest_free_order: self.pages.largest_free_order(zone),
        };
        SystemStats {
            zones: [z(Zone::Dma), z(Zone::Dma32), z(Zone::Normal)],
            swiotlb: self.swiotlb.as_ref().map(Swiotlb::stats),
        }
    }

    /// Physical RAM ranges as (base, size).
    pub fn ram_ranges(&self) -> Vec<(PhysAddr, u64)> {
        self.ram.ranges().map(|(b, s)| (PhysAddr(b), s)).collect()
    }

    /// `alloc_pages(gfp, order)`: `2^order` contiguous pages from the zone `gfp` names
    /// (`GFP_DMA`, `GFP_DMA32`, else any), zeroed with `__GFP_ZERO`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an order above the buddy maximum; `ENOMEM` when the zones are full.
    pub fn alloc_pages(&self, gfp: Gfp, order: u32) -> Result<Page> {
        if order > crate::mem::buddy::MAX_ORDER {
            return Err(Errno::EINVAL);
        }
        let zone = if gfp.contains(Gfp::__GFP_DMA) {
            Zone::Dma
        } else if gfp.contains(Gfp::__GFP_DMA32) {
            Zone::Dma32
        } else {
            Zone::Normal
        };
        let pfn = self.pages.alloc(order, zone, u64::MAX).ok_or(Errno::ENOMEM)?;
        if gfp.contains(Gfp::__GFP_ZERO) {
            let p = self.page_address(Page(pfn));
            // SAFETY: the block is ours and `PAGE_SIZE << order` long in the cached view.
            unsafe { p.write_bytes(0, PAGE_SIZE << order) };
        }
        Ok(Page(pfn))
    }

    /// `__free_pages(page, order)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` (nothing freed) when the block was not allocated with that order.
    pub fn free_pages(&self, page: Page, order: u32) -> Result<()> {
        self.pages.free(page.pfn(), order).map_err(|e| {
            self.log.emit(Level::Warn, "page_alloc", format_args!("bad free of {:?} order {order}: {e}", page.pfn()));
            Errno::EINVAL
        })
    }

    /// `page_address(page)`: the CPU (cached view) address of a page.
    pub fn page_address(&self, page: Page) -> *mut u8 {
        self.ram.cached_ptr(page.phys(), PAGE_SIZE).unwrap_or(std::ptr::null_mut())
    }

    /// `virt_to_page(ptr)`: the page behind a CPU address of platform RAM.
    pub fn virt_to_page(&self, ptr: *const u8) -> Option<Page> {
        self.ram.virt_to_phys(ptr as usize, 1).map(|p| Page(p.pfn()))
    }

    /// `virt_to_phys(ptr)`: the physical address behind a CPU address of platform RAM.
    pub fn virt_to_phys(&self, ptr: *const u8) -> Option<PhysAddr> {
        self.ram.virt_to_phys(ptr as usize, 1)
    }

    /// `kmalloc(size, gfp)`: a small buffer from platform RAM, aligned to its size class
    /// (at least [`System::cache_alignment`]), so it maps without bouncing.
    ///
    /// # Errors
    ///
    /// `EINVAL` for size 0; `ENOMEM` when the zone is full.
    pub fn kmalloc(&self, size: usize, gfp: Gfp) -> Result<NonNull<u8>> {
        self.kmalloc.alloc(&self.ram, &self.pages, size, gfp)
    }

    /// `kfree(ptr)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` (nothing freed, a message printed) for a pointer `kmalloc` did not return.
    ///
    /// # Safety
    ///
    /// `ptr` must not be used after this call.
    pub unsafe fn kfree(&self, ptr: NonNull<u8>) -> Result<()> {
        self.kmalloc.free(&self.ram, &self.pages, ptr).inspect_err(|_| {
            self.log.emit(Level::Warn, "kmalloc", format_args!("kfree of {ptr:p}, which kmalloc did not return"));
        })
    }

    /// The CPU (cached view) address of `[phys, phys + len)` of RAM (`phys_to_virt`).
    pub fn phys_to_virt(&self, phys: PhysAddr, len: usize) -> Option<NonNull<u8>> {
        self.ram.cached_ptr(phys, len).and_then(NonNull::new)
    }

    /// True when `[phys, phys + len)` is RAM of this platform.
    pub fn is_ram(&self, phys: PhysAddr, len: usize) -> bool {
        self.ram.is_ram(phys, len)
    }

    /// `arch_sync_dma_for_device` on RAM, for DMA ops of a non-coherent device: cleans
    /// every line touching the range, whatever the direction.
    pub fn arch_sync_for_device(&self, phys: PhysAddr, size: usize, dir: Direction) {
        self.ram.clean(phys, size, dir.device_writes());
    }

    /// `arch_sync_dma_for_cpu` on RAM, for DMA ops of a non-coherent device: invalidates
    /// what the device may have written (`FROM_DEVICE`, `BIDIRECTIONAL`).
    pub fn arch_sync_for_cpu(&self, phys: PhysAddr, size: usize, dir: Direction) {
        if dir.device_writes() {
            self.ram.invalidate_for_cpu(phys, size);
        }
    }

    /// `arch_dma_prep_coherent`: writes back and drops the cached copy of a range about
    /// to be used through an uncached alias.
    pub fn arch_prep_coherent(&self, phys: PhysAddr, size: usize) {
        self.ram.clean_invalidate(phys, size);
    }

    /// `dma_common_pages_remap` with the coherent protection: maps the memory view of
    /// `[phys, phys + size)` (page aligned) at a new CPU address, uncached.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a range that is not page-aligned RAM; `EOPNOTSUPP` (with a message) on
    /// the host platform, which cannot map memory uncached; the OS error if mapping fails.
    pub fn remap_uncached(&self, phys: PhysAddr, size: usize) -> Result<NonNull<u8>> {
        if phys.page_offset() != 0 || size % PAGE_SIZE != 0 {
            return Err(Errno::EINVAL);
        }
        let r = self.ram.remap_uncached(phys, size).inspect_err(|e| self.uncached_refused(*e));
        r.and_then(|p| NonNull::new(p).ok_or(Errno::EFAULT))
    }

    fn uncached_refused(&self, e: Errno) {
        if e == Errno::EOPNOTSUPP {
            self.log.emit(Level::Error, "dma", format_args!("{NO_UNCACHED}"));
        }
    }

    /// Maps `[phys, phys + len)` of RAM (page aligned) over the caller's range
    /// `[at, at + len)` with `MAP_SHARED | MAP_FIXED`, replacing what is there: the
    /// cached view (the same memory as [`System::phys_to_virt`]), or with `uncached` the
    /// memory view (what [`System::remap_uncached`] maps). The userspace `remap_pfn_range`
    /// of `dma_mmap_attrs`; remove it with `munmap`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned or empty range, or one that is not RAM (of one region);
    /// `EOPNOTSUPP` (with a message) for `uncached` on the host platform; the OS error if
    /// mapping fails.
    ///
    /// # Safety
    ///
    /// `[at, at + len)` belongs to the caller, holds no Rust or C object in use, and may
    /// be replaced.
    pub unsafe fn map_at(&self, phys: PhysAddr, len: usize, at: NonNull<u8>, uncached: bool) -> Result<()> {
        // SAFETY: forwarded from the caller.
        let r = unsafe { self.ram.map_at(phys, len, at.as_ptr() as usize, uncached) };
        r.inspect_err(|e| {
            if uncached {
                self.uncached_refused(*e);
            }
        })
    }

    /// Removes a mapping made by [`System::remap_uncached`]; returns its physical range.
    ///
    /// # Errors
    ///
    /// `EINVAL` (nothing changed) when `addr` does not start a live uncached remap.
    ///
    /// # Safety
    ///
    /// Nothing may use the mapping afterwards.
    pub unsafe fn unmap_uncached(&self, addr: NonNull<u8>) -> Result<(PhysAddr, usize)> {
        self.ram.unmap_uncached(addr.as_ptr() as usize).ok_or(Errno::EINVAL)
    }

    /// The uncached remap (coherent allocation for a non-coherent device) that contains
    /// `addr`, as (its start, its physical address, its length).
    pub fn find_uncached(&self, addr: *const u8) -> Option<(NonNull<u8>, PhysAddr, usize)> {
        let (start, phys, len) = self.ram.find_remap(addr as usize)?;
        Some((NonNull::new(start as *mut u8)?, phys, len))
    }

    /// `vmap`: maps `pages`, in order, at one virtually contiguous CPU range. The alias is
    /// cached: it is the same memory as each page's [`System::page_address`].
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty list; `EOPNOTSUPP` on the host platform for hugetlb pages
    /// (they cannot be remapped by 4 KiB pages); the OS error if mapping fails.
    pub fn vmap(&self, pages: &[Page]) -> Result<NonNull<u8>> {
        let phys: Vec<PhysAddr> = pages.iter().map(|p| p.phys()).collect();
        self.ram.vmap(&phys).and_then(|p| NonNull::new(p).ok_or(Errno::EFAULT))
    }

    /// An uncached vmap: maps the memory view of `pages`, in order, at one virtually
    /// contiguous CPU range (a coherent allocation of scattered pages for a non-coherent
    /// device behind an IOMMU). Removed with [`System::vunmap`].
    ///
    /// # Errors
    ///
    /// As [`System::vmap`]; `EOPNOTSUPP` (with a message) on the host platform.
    pub fn vmap_uncached(&self, pages: &[Page]) -> Result<NonNull<u8>> {
        let phys: Vec<PhysAddr> = pages.iter().map(|p| p.phys()).collect();
        let r = self.ram.vmap_uncached(&phys).inspect_err(|e| self.uncached_refused(*e));
        r.and_then(|p| NonNull::new(p).ok_or(Errno::EFAULT))
    }

    /// `vunmap`: removes a mapping made by [`System::vmap`]; returns its pages.
    ///
    /// # Errors
    ///
    /// `EINVAL` (nothing changed) when `addr` does not start a live vmap.
    ///
    /// # Safety
    ///
    /// Nothing may use the mapping afterwards.
    pub unsafe fn vunmap(&self, addr: NonNull<u8>) -> Result<Vec<Page>> {
        let pages = self.ram.vunmap(addr.as_ptr() as usize).ok_or(Errno::EINVAL)?;
        Ok(pages.into_iter().map(|p| Page(p.pfn())).collect())
    }

    /// `vmalloc_to_page` + offset: the physical address behind an address inside a vmap.
    pub fn vmap_to_phys(&self, addr: *const u8) -> Option<PhysAddr> {
        self.ram.vmap_to_phys(addr as usize)
    }

    /// Checks the page allocator's and the bounce pool's invariants; panics with a message
    /// on the first violation (tests and the `debug-checks` feature).
    #[cfg(any(test, feature = "debug-checks"))]
    pub fn check_invariants(&self) {
        self.pages.check_invariants();
        if let Some(t) = &self.swiotlb {
            t.check_invariants();
        }
    }

    pub(crate) fn ram(&self) -> &Platform {
        &self.ram
    }

    pub(crate) fn pages(&self) -> &PageAllocator {
        &self.pages
    }

    pub(crate) fn log(&self) -> &Log {
        &self.log
    }
}

impl fmt::Debug for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("System")
            .field("options", &self.options.to_string())
            .field("cache_alignment", &self.cache_alignment)
            .field("stats", &self.stats())
            .finish()
    }
}
