//! The platform: where pages, their CPU addresses and their physical addresses come from.
//!
//! One enum, dispatched by `match`, so the common path stays a direct (inlined) call with
//! one predictable branch, the way `kernel/dma/mapping.c` keeps the direct path free of
//! indirect calls. Both platforms provide the same method set:
//!
//! - [`SimRam`]: simulated RAM at chosen physical addresses with a cache model (two views);
//! - [`HostRam`]: real pinned pages of this process, physical addresses from pagemap, one
//!   view (what the CPU sees is what the device sees once the real caches are maintained).

use crate::addr::PhysAddr;
use crate::errno::Result;
use crate::mem::host::HostRam;
use crate::mem::sim::SimRam;

/// One range of RAM: physical base, size, and where it sits in the platform's CPU view
/// (the offset from the view's base).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    pub(crate) phys: u64,
    pub(crate) size: u64,
    pub(crate) off: usize,
}

/// The platform a [`System`](crate::System) runs on.
#[derive(Debug)]
pub(crate) enum Platform {
    /// The simulated SoC (`platform=sim`).
    Sim(SimRam),
    /// Real pinned pages (`platform=host`).
    Host(HostRam),
}

/// Forwards a call to the platform in use.
macro_rules! dispatch {
    ($self:ident, $r:ident => $e:expr) => {
        match $self {
            Platform::Sim($r) => $e,
            Platform::Host($r) => $e,
        }
    };
}

impl Platform {
    /// True for the host platform.
    #[inline]
    pub(crate) fn is_host(&self) -> bool {
        matches!(self, Platform::Host(_))
    }

    /// The cache line size the platform maintains: simulated, or the CPU's.
    #[inline]
    pub(crate) fn line_size(&self) -> usize {
        dispatch!(self, r => r.line_size())
    }

    /// The RAM regions, sorted by physical address.
    #[inline]
    pub(crate) fn regions(&self) -> &[Region] {
        dispatch!(self, r => r.regions())
    }

    /// Physical RAM ranges as (base, size), sorted.
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.regions().iter().map(|r| (r.phys, r.size))
    }

    /// True when `[phys, phys + len)` is RAM.
    #[inline]
    pub(crate) fn is_ram(&self, phys: PhysAddr, len: usize) -> bool {
        dispatch!(self, r => r.is_ram(phys, len))
    }

    /// The CPU address of `[phys, phys + len)`.
    #[inline]
    pub(crate) fn cached_ptr(&self, phys: PhysAddr, len: usize) -> Option<*mut u8> {
        dispatch!(self, r => r.cached_ptr(phys, len))
    }

    /// A non-coherent device's read of `[phys, phys + buf.len())`, past the CPU's cache:
    /// the memory view on the sim; on the host, whose one view is coherent with the
    /// device, RAM through the file, so guard mode's protected CPU pages do not fault
    /// (hugetlb pages, which have no file I/O, are read through the view). `false` when
    /// the range is not RAM.
    pub(crate) fn device_read(&self, phys: PhysAddr, buf: &mut [u8]) -> bool {
        match self {
            Platform::Sim(r) => r.read_memory(phys, buf),
            Platform::Host(r) => r.read_cached(phys, buf),
        }
    }

    /// A non-coherent device's write of `data` at `phys`, past the CPU's cache (as
    /// [`Platform::device_read`]).
    pub(crate) fn device_write(&self, phys: PhysAddr, data: &[u8]) -> bool {
        match self {
            Platform::Sim(r) => r.write_memory(phys, data),
            Platform::Host(r) => r.write_cached(phys, data),
        }
    }

    /// Reads what the CPU sees without touching its mapping (guard mode may protect it).
    pub(crate) fn read_cached(&self, phys: PhysAddr, buf: &mut [u8]) -> bool {
        dispatch!(self, r => r.read_cached(phys, buf))
    }

    /// Writes what the CPU sees without touching its mapping.
    pub(crate) fn write_cached(&self, phys: PhysAddr, data: &[u8]) -> bool {
        dispatch!(self, r => r.write_cached(phys, data))
    }

    /// The first line of the range the CPU dirtied and nobody cleaned (sim only: the host
    /// cannot see its cache's state).
    pub(crate) fn first_dirty_line(&self, phys: PhysAddr, len: usize) -> Option<u64> {
        match self {
            Platform::Sim(r) => r.first_dirty_line(phys, len),
            Platform::Host(_) => None,
        }
    }

    /// `virt_to_phys` for a CPU address of platform RAM.
    #[inline]
    pub(crate) fn virt_to_phys(&self, va: usize, len: usize) -> Option<PhysAddr> {
        dispatch!(self, r => r.virt_to_phys(va, len))
    }

    /// `dcache_clean_poc` on the range.
    #[inline]
    pub(crate) fn clean(&self, phys: PhysAddr, len: usize, track_edges: bool) {
        dispatch!(self, r => r.clean(phys, len, track_edges))
    }

    /// `dcache_clean_inval_poc` on the range.
    #[inline]
    pub(crate) fn clean_invalidate(&self, phys: PhysAddr, len: usize) {
        dispatch!(self, r => r.clean_invalidate(phys, len))
    }

    /// `dcache_inval_poc` on the range, after the device wrote it.
    #[inline]
    pub(crate) fn invalidate_for_cpu(&self, phys: PhysAddr, len: usize) {
        dispatch!(self, r => r.invalidate_for_cpu(phys, len))
    }

    /// An uncached alias of `[phys, phys + len)`.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` on the host (userspace cannot map memory uncached); `EINVAL` for a
    /// range that is not RAM; the OS error if mapping fails.
    pub(crate) fn remap_uncached(&self, phys: PhysAddr, len: usize) -> Result<*mut u8> {
        dispatch!(self, r => r.remap_uncached(phys, len))
    }

    /// Maps the cached (or, `uncached`, the memory) view of `[phys, phys + len)` over
    /// `[at, at + len)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned range or one that is not RAM; `EOPNOTSUPP` for
    /// `uncached` on the host; the OS error if mapping fails.
    ///
    /// # Safety
    ///
    /// `[at, at + len)` is the caller's to replace: it holds no object in use.
    pub(crate) unsafe fn map_at(&self, phys: PhysAddr, len: usize, at: usize, uncached: bool) -> Result<()> {
        // SAFETY: forwarded from the caller.
        dispatch!(self, r => unsafe { r.map_at(phys, len, at, uncached) })
    }

    /// Removes an uncached alias; its physical range, or `None` if `va` starts none.
    pub(crate) fn unmap_uncached(&self, va: usize) -> Option<(PhysAddr, usize)> {
        dispatch!(self, r => r.unmap_uncached(va))
    }

    /// The uncached alias containing `va`, as (start, physical address, length).
    #[inline]
    pub(crate) fn find_remap(&self, va: usize) -> Option<(usize, PhysAddr, usize)> {
        dispatch!(self, r => r.find_remap(va))
    }

    /// Maps `pages` at consecutive CPU addresses, cached.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty list or a page that is not page-aligned RAM; `EOPNOTSUPP` on
    /// the host for hugetlb pages; the OS error if mapping fails.
    pub(crate) fn vmap(&self, pages: &[PhysAddr]) -> Result<*mut u8> {
        dispatch!(self, r => r.vmap(pages))
    }

    /// Maps `pages` at consecutive CPU addresses, uncached.
    ///
    /// # Errors
    ///
    /// As [`Platform::vmap`]; `EOPNOTSUPP` on the host.
    pub(crate) fn vmap_uncached(&self, pages: &[PhysAddr]) -> Result<*mut u8> {
        dispatch!(self, r => r.vmap_uncached(pages))
    }

    /// Removes a vmap; its pages, or `None` if `va` starts none.
    pub(crate) fn vunmap(&self, va: usize) -> Option<Vec<PhysAddr>> {
        dispatch!(self, r => r.vunmap(va))
    }

    /// The physical address behind a CPU address inside a live vmap.
    #[inline]
    pub(crate) fn vmap_to_phys(&self, va: usize) -> Option<PhysAddr> {
        dispatch!(self, r => r.vmap_to_phys(va))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::MemRange;

    fn sim() -> Platform {
        let ranges = [MemRange { base: 0x10_0000, size: 0x10_0000 }, MemRange { base: 0x1_0000_0000, size: 0x4000 }];
        Platform::Sim(SimRam::new(&ranges, 64).unwrap())
    }

    #[test]
    fn the_sim_platform_forwards_every_call() {
        let p = sim();
        assert!(!p.is_host());
        assert_eq!(p.line_size(), 64);
        assert_eq!(p.ranges().collect::<Vec<_>>(), [(0x10_0000, 0x10_0000), (0x1_0000_0000, 0x4000)]);
        let phys = PhysAddr(0x1_0000_1000);
        assert!(p.is_ram(phys, 0x3000) && !p.is_ram(phys, 0x3001));
        let cpu = p.cached_ptr(phys, 8).unwrap();
        assert_eq!(p.virt_to_phys(cpu as usize + 4, 4), Some(PhysAddr(phys.0 + 4)));
        assert!(p.write_cached(phys, b"abc"));
        assert_eq!(p.first_dirty_line(phys, 64), Some(phys.0), "written, not cleaned");
        p.clean(phys, 3, false);
        assert_eq!(p.first_dirty_line(phys, 64), None);
        let mut got = [0u8; 3];
        assert!(p.device_read(phys, &mut got));
        assert_eq!(&got, b"abc", "the device reads memory, where the clean put the bytes");
        assert!(p.device_write(phys, b"xyz"));
        assert!(p.read_cached(phys, &mut got) && &got == b"abc", "the CPU still sees its cached copy");
        p.invalidate_for_cpu(phys, 64);
        assert!(p.read_cached(phys, &mut got) && &got == b"xyz", "until it invalidates");
        assert!(p.write_cached(phys, b"abc"));
        p.clean(phys, 3, false);
        p.clean_invalidate(phys, 64);
        p.invalidate_for_cpu(phys, 64);
        assert!(p.read_cached(phys, &mut got) && &got == b"abc");
        let u = p.remap_uncached(phys, 0x1000).unwrap();
        assert_eq!(p.find_remap(u as usize + 5), Some((u as usize, phys, 0x1000)));
        assert_eq!(p.unmap_uncached(u as usize), Some((phys, 0x1000)));
        let pages = [PhysAddr(0x1_0000_3000), PhysAddr(0x10_2000)];
        let v = p.vmap(&pages).unwrap();
        assert_eq!(p.vmap_to_phys(v as usize + 0x1008), Some(PhysAddr(0x10_2008)));
        assert_eq!(p.vunmap(v as usize), Some(pages.to_vec()));
        let v = p.vmap_uncached(&pages).unwrap();
        assert!(p.vunmap(v as usize).is_some());
    }
}
