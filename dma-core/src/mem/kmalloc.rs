//! `kmalloc` / `kfree` over the platform's RAM, so small driver buffers map without
//! bouncing (a heap buffer of the process has no physical address on the sim platform).
//!
//! Power-of-two size classes from the DMA cache alignment up to half a page, carved from
//! whole pages of the zone the flags ask for; larger requests take whole pages. Objects
//! are aligned to their size, so no two kmalloc buffers ever share a cache line: the
//! guarantee `ARCH_DMA_MINALIGN` gives kernel drivers. Slab pages are kept for reuse once
//! carved (a cache that does not shrink).
//!
//! # Safety
//!
//! Object addresses come from the platform's cached view of pages this allocator owns;
//! zeroing writes only inside the object just taken off a free list.

use std::ptr::NonNull;
use std::sync::Mutex;

use crate::addr::{PAGE_SIZE, Pfn, get_order};
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;
use crate::hash::IntMap;
use crate::mem::page_alloc::{PageAllocator, Zone};
use crate::mem::platform::Platform;

/// What a page in use by kmalloc holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Meta {
    /// Objects of one class; bit `i` of `used` is set while object `i` is handed out
    /// (at most 64 objects a page: classes start at the DMA alignment, at least 64).
    Slab { zone: Zone, class: usize, used: u64 },
    /// The first page of a large allocation of `2^order` pages.
    Large { order: u32 },
}

/// The small-object allocator.
#[derive(Debug)]
pub(crate) struct Kmalloc {
    min_shift: u32,
    /// Free objects (CPU addresses) per zone and class.
    free: [Vec<Mutex<Vec<usize>>>; 3],
    meta: Mutex<IntMap<Pfn, Meta>>,
}

const MAX_SHIFT: u32 = crate::addr::PAGE_SHIFT - 1;

fn zone_of(gfp: Gfp) -> Zone {
    if gfp.contains(Gfp::__GFP_DMA) {
        Zone::Dma
    } else if gfp.contains(Gfp::__GFP_DMA32) {
        Zone::Dma32
    } else {
        Zone::Normal
    }
}

impl Kmalloc {
    /// Classes start at `min_align` (the DMA cache alignment, a power of two).
    pub(crate) fn new(min_align: usize) -> Kmalloc {
        // At least 64-byte objects, so a page holds at most 64 and `used` fits a u64.
        let min_shift = min_align.max(64).trailing_zeros().min(MAX_SHIFT);
        let classes = || (min_shift..=MAX_SHIFT).map(|_| Mutex::new(Vec::new())).collect();
        Kmalloc { min_shift, free: [classes(), classes(), classes()], meta: Mutex::new(IntMap::default()) }
    }

    /// `kmalloc(size, gfp)`.
    pub(crate) fn alloc(&self, ram: &Platform, pages: &PageAllocator, size: usize, gfp: Gfp) -> Result<NonNull<u8>> {
        if size == 0 {
            return Err(Errno::EINVAL);
        }
        let zone = zone_of(gfp);
        let p = if size > 1 << MAX_SHIFT {
            let order = get_order(size);
            let pfn = pages.alloc(order, zone, u64::MAX).ok_or(Errno::ENOMEM)?;
            self.meta().insert(pfn, Meta::Large { order });
            ram.cached_ptr(pfn.phys(), PAGE_SIZE << order).ok_or(Errno::EFAULT)?
        } else {
            let shift = (usize::BITS - (size - 1).leading_zeros()).max(self.min_shift);
            let class = (shift - self.min_shift) as usize;
            let mut list = self.free[zone as usize][class].lock().unwrap_or_else(|e| e.into_inner());
            if list.is_empty() {
                let pfn = pages.alloc(0, zone, u64::MAX).ok_or(Errno::ENOMEM)?;
                let base = ram.cached_ptr(pfn.phys(), PAGE_SIZE).ok_or(Errno::EFAULT)? as usize;
                self.meta().insert(pfn, Meta::Slab { zone, class, used: 0 });
                list.extend((0..PAGE_SIZE >> shift).rev().map(|i| base + (i << shift)));
            }
            let obj = list.pop().ok_or(Errno::ENOMEM)?;
            let phys = ram.virt_to_phys(obj, 1).ok_or(Errno::EFAULT)?;
            if let Some(Meta::Slab { used, .. }) = self.meta().get_mut(&phys.pfn()) {
                *used |= 1 << (phys.page_offset() >> shift);
            }
            obj as *mut u8
        };
        if gfp.contains(Gfp::__GFP_ZERO) {
            // SAFETY: `p` is the start of an object of at least `size` bytes we just took.
            unsafe { p.write_bytes(0, size) };
        }
        NonNull::new(p).ok_or(Errno::ENOMEM)
    }

    /// `kfree(ptr)`. Returns `EINVAL` (and frees nothing) for a pointer kmalloc did not
    /// return: a different platform address, a misaligned one, or foreign memory.
    pub(crate) fn free(&self, ram: &Platform, pages: &PageAllocator, ptr: NonNull<u8>) -> Result<()> {
        let va = ptr.as_ptr() as usize;
        let phys = ram.virt_to_phys(va, 1).ok_or(Errno::EINVAL)?;
        let pfn = phys.pfn();
        let meta = self.meta().get(&pfn).copied().ok_or(Errno::EINVAL)?;
        match meta {
            Meta::Large { order } => {
                if phys.page_offset() != 0 {
                    return Err(Errno::EINVAL);
                }
                self.meta().remove(&pfn);
                pages.free(pfn, order).map_err(|_| Errno::EINVAL)
            }
            Meta::Slab { zone, class, .. } => {
                let shift = self.min_shift + class as u32;
                if phys.page_offset() & ((1 << shift) - 1) != 0 {
                    return Err(Errno::EINVAL);
                }
                let bit = 1u64 << (phys.page_offset() >> shift);
                match self.meta().get_mut(&pfn) {
                    Some(Meta::Slab { used, .. }) if *used & bit != 0 => *used &= !bit,
                    _ => return Err(Errno::EINVAL), // double free
                }
                self.free[zone as usize][class].lock().unwrap_or_else(|e| e.into_inner()).push(va);
                Ok(())
            }
        }
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, IntMap<Pfn, Meta>> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner())
    }
}
