//! DMA pools: small coherent blocks carved from whole-page coherent allocations
//! (`mm/dmapool.c`).
//!
//! The kernel's rules: `align` is a power of two (0 means 1); the block size is rounded
//! up to it (and to at least 16 bytes); each chunk is `max(size, PAGE_SIZE)` bytes from
//! `dma_alloc_coherent`; no block crosses a `boundary` (a power of two no smaller than
//! the block, 0 meaning the chunk size). Allocation and free are O(1): a pool-wide stack
//! of free blocks, as the 2023 rewrite of the kernel's pool has. Beyond the kernel's
//! default build, every free is checked (the pool owns the address, it is a block start,
//! the bus address matches, the block is in use: a page-number hash and one bit), so a
//! bad or double free is refused with a message instead of corrupting the pool.
//! Destroying a pool with blocks in use reports them and leaks their chunks, as the
//! kernel does.
//!
//! # Safety
//!
//! Zeroing writes only inside a block just taken from the free stack, which lies inside
//! a live coherent chunk of this pool.

use std::ptr::NonNull;
use std::sync::Arc;

use crate::addr::{DmaAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::device::Device;
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;
use crate::hash::IntMap;
use crate::spinlock::{SpinLock, SpinLockGuard};

/// A chunk: one coherent allocation carved into blocks.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    cpu: usize,
    dma: u64,
}

/// A free block: where it is, and which in-use bit tracks it.
#[derive(Clone, Copy, Debug)]
struct FreeBlock {
    cpu: usize,
    dma: u64,
    bit: u32,
}

#[derive(Debug, Default)]
struct Inner {
    /// Chunks in the order they were made (indices are stable).
    chunks: Vec<Chunk>,
    /// CPU page number → the chunk holding that page: a freed block's chunk in O(1).
    pages: IntMap<usize, u32>,
    /// One bit per block, set while it is handed out; chunk `c` owns the bits from
    /// `c * chunk_bits`.
    in_use: Vec<u64>,
    /// Free blocks, most recently freed last.
    free: Vec<FreeBlock>,
    /// The chunk of the last free: frees come in runs from one chunk (a ring's
    /// descriptors, a batch of completions), so most skip the hash.
    last: usize,
}

/// A pool of equal, aligned coherent blocks (`struct dma_pool`).
///
/// # Invariants
///
/// Every `free` entry is a block start inside a chunk whose in-use bit is clear, and
/// every clear bit of a chunk's blocks has exactly one `free` entry.
pub struct DmaPool {
    name: String,
    dev: Arc<Device>,
    size: usize,
    allocation: usize,
    boundary: usize,
    /// Blocks per boundary segment, and blocks per chunk.
    per_segment: usize,
    blocks_per_chunk: usize,
    /// In-use bits reserved per chunk: `blocks_per_chunk` rounded up to whole words.
    chunk_bits: usize,
    /// log2 of `size` when it is a power of two (a shift instead of a division on free).
    size_shift: Option<u32>,
    /// The kernel's lock is a spin lock too: every section below is a few loads and stores.
    inner: SpinLock<Inner>,
}

/// What `dma_pool_create` would refuse.
fn layout(size: usize, align: usize, boundary: usize) -> Result<(usize, usize, usize)> {
    let align = if align == 0 { 1 } else { align };
    if !align.is_power_of_two() || size == 0 || size > i32::MAX as usize {
        return Err(Errno::EINVAL);
    }
    let size = size.max(16).checked_next_multiple_of(align).ok_or(Errno::EINVAL)?;
    let allocation = size.max(PAGE_SIZE).next_multiple_of(PAGE_SIZE);
    let boundary = match boundary {
        0 => allocation,
        b if b < size || !b.is_power_of_two() => return Err(Errno::EINVAL),
        b => b.min(allocation),
    };
    Ok((size, allocation, boundary))
}

impl DmaPool {
    /// `dma_pool_create(name, dev, size, align, boundary)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for size 0 (or above `INT_MAX`), an alignment that is not a power of two, or
    /// a boundary that is not a power of two or is smaller than the block.
    pub fn create(name: &str, dev: &Arc<Device>, size: usize, align: usize, boundary: usize) -> Result<DmaPool> {
        let (size, allocation, boundary) = layout(size, align, boundary).inspect_err(|_| {
            dev.warn(format_args!("dma_pool_create {name}: bad size {size}, align {align} or boundary {boundary}"))
        })?;
        let per_segment = boundary / size;
        let blocks_per_chunk = per_segment * (allocation / boundary);
        Ok(DmaPool {
            name: name.to_owned(),
            dev: Arc::clone(dev),
            size,
            allocation,
            boundary,
            per_segment,
            blocks_per_chunk,
            chunk_bits: blocks_per_chunk.next_multiple_of(64),
            size_shift: size.is_power_of_two().then(|| size.trailing_zeros()),
            inner: SpinLock::new(Inner::default()),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device the pool allocates from (the kernel's `pool->dev`).
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// The block size after rounding.
    pub fn block_size(&self) -> usize {
        self.size
    }

    /// Blocks handed out now.
    pub fn in_use(&self) -> usize {
        self.lock().in_use.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Chunks (coherent allocations) the pool holds.
    pub fn chunks(&self) -> usize {
        self.lock().chunks.len()
    }

    fn lock(&self) -> SpinLockGuard<'_, Inner> {
        self.inner.lock()
    }

    /// The offset of block `i` in its chunk: blocks fill each boundary segment, then the
    /// next segment starts on the boundary.
    fn offset(&self, i: usize) -> usize {
        (i / self.per_segment) * self.boundary + (i % self.per_segment) * self.size
    }

    /// `dma_pool_alloc`: a block and its bus address.
    ///
    /// # Errors
    ///
    /// `ENOMEM` when a new chunk is needed and none can be allocated.
    #[track_caller]
    pub fn alloc(&self, gfp: Gfp) -> Result<(NonNull<u8>, DmaAddr)> {
        let mut inner = self.lock();
        let FreeBlock { cpu, dma, bit } = match inner.free.pop() {
            Some(b) => b,
            None => {
                drop(inner);
                let grown;
                (inner, grown) = self.grow(gfp)?;
                grown
            }
        };
        let bit = bit as usize;
        inner.in_use[bit / 64] |= 1 << (bit % 64);
        drop(inner);
        if gfp.contains(Gfp::__GFP_ZERO) {
            // SAFETY: the block is `size` bytes inside a live chunk and was just taken.
            unsafe { (cpu as *mut u8).write_bytes(0, self.size) };
        }
        Ok((NonNull::new(cpu as *mut u8).ok_or(Errno::EFAULT)?, DmaAddr(dma)))
    }

    /// `dma_pool_zalloc`.
    ///
    /// # Errors
    ///
    /// As [`DmaPool::alloc`].
    #[track_caller]
    pub fn zalloc(&self, gfp: Gfp) -> Result<(NonNull<u8>, DmaAddr)> {
        self.alloc(gfp | Gfp::__GFP_ZERO)
    }

    /// Adds a chunk, pushes all its blocks but the first on the free stack and returns
    /// the first, with the lock held again. As in the kernel, the chunk is allocated with
    /// the lock dropped (the allocation may map memory), so two threads finding the stack
    /// empty may both add one.
    #[cold]
    fn grow(&self, gfp: Gfp) -> Result<(SpinLockGuard<'_, Inner>, FreeBlock)> {
        let (cpu, dma) = self.dev.alloc_coherent(self.allocation, gfp)?;
        let (cpu, dma) = (cpu.as_ptr() as usize, dma.0);
        let mut inner = self.lock();
        let c = inner.chunks.len();
        let Some(bits) = (c + 1).checked_mul(self.chunk_bits).filter(|&b| u32::try_from(b).is_ok()) else {
            drop(inner);
            // SAFETY: the allocation just made above, never handed out.
            unsafe { self.dev.free_coherent(self.allocation, cpu as *mut u8, DmaAddr(dma)) };
            return Err(Errno::ENOMEM);
        };
        inner.chunks.push(Chunk { cpu, dma });
        let first_page = cpu >> PAGE_SHIFT;
        inner.pages.extend((0..self.allocation / PAGE_SIZE).map(|p| (first_page + p, c as u32)));
        inner.in_use.resize(bits / 64, 0);
        // Lowest addresses first out of the stack.
        let base = c * self.chunk_bits;
        let block = |i: usize| {
            let off = self.offset(i);
            FreeBlock { cpu: cpu + off, dma: dma + off as u64, bit: (base + i) as u32 }
        };
        inner.free.extend((1..self.blocks_per_chunk).rev().map(block));
        Ok((inner, block(0)))
    }

    /// The chunk and in-use bit of a block start, if `cpu` is one.
    #[inline]
    fn find(&self, inner: &Inner, cpu: usize) -> Option<(Chunk, usize, usize)> {
        let mut c = inner.last;
        let mut chunk = *inner.chunks.get(c)?;
        if cpu.wrapping_sub(chunk.cpu) >= self.allocation {
            c = *inner.pages.get(&(cpu >> PAGE_SHIFT))? as usize;
            chunk = inner.chunks[c];
        }
        // The page is the chunk's, so `off` is below the allocation (at most 2^31 bytes).
        let off = (cpu - chunk.cpu) as u32;
        let (seg, in_seg) = if self.boundary == self.allocation {
            (0, off)
        } else {
            // A boundary below the chunk size is a power of two.
            let shift = self.boundary.trailing_zeros();
            (off >> shift, off & (self.boundary as u32 - 1))
        };
        let i = match self.size_shift {
            Some(s) if in_seg & (self.size as u32 - 1) == 0 => in_seg >> s,
            Some(_) => return None,
            None if in_seg % self.size as u32 == 0 => in_seg / self.size as u32,
            None => return None,
        } as usize;
        (i < self.per_segment).then(|| (chunk, c, c * self.chunk_bits + seg as usize * self.per_segment + i))
    }

    /// `dma_pool_free`.
    ///
    /// # Errors
    ///
    /// `EINVAL` (nothing changed, a message printed) when `cpu` is not a block of this
    /// pool, `dma` is not its bus address, or the block is already free.
    ///
    /// # Safety
    ///
    /// Nothing may use the block after the call.
    pub unsafe fn free(&self, cpu: *mut u8, dma: DmaAddr) -> Result<()> {
        let mut inner = self.lock();
        let Some((chunk, c, bit)) = self.find(&inner, cpu as usize) else {
            drop(inner);
            self.dev.warn(format_args!("dma_pool_free {}, {cpu:p} (bad vaddr)/{dma}", self.name));
            return Err(Errno::EINVAL);
        };
        let mask = 1u64 << (bit % 64);
        let problem = if chunk.dma + (cpu as usize - chunk.cpu) as u64 != dma.0 {
            "bad dma"
        } else if inner.in_use[bit / 64] & mask == 0 {
            "already free"
        } else {
            inner.in_use[bit / 64] &= !mask;
            inner.last = c;
            inner.free.push(FreeBlock { cpu: cpu as usize, dma: dma.0, bit: bit as u32 });
            return Ok(());
        };
        drop(inner);
        self.dev.warn(format_args!("dma_pool_free {}, {cpu:p}/{dma} ({problem})", self.name));
        Err(Errno::EINVAL)
    }

    /// `dma_pool_destroy`: frees every chunk; chunks with blocks still in use are reported
    /// and leaked (the device may still be using them).
    pub fn destroy(self) {}

    #[cfg(any(test, feature = "debug-checks"))]
    /// Checks the free stack against the in-use bits.
    pub fn check_invariants(&self) {
        let inner = self.lock();
        let blocks = inner.chunks.len() * self.blocks_per_chunk;
        let used: usize = inner.in_use.iter().map(|w| w.count_ones() as usize).sum();
        assert_eq!(blocks - used, inner.free.len(), "free stack and in-use bits disagree");
        for b in &inner.free {
            let (chunk, _, bit) = self.find(&inner, b.cpu).expect("a free entry is a block start");
            assert_eq!(bit, b.bit as usize, "a free entry knows its bit");
            assert_eq!(inner.in_use[bit / 64] & (1 << (bit % 64)), 0, "a free entry is not in use");
            assert_eq!(chunk.dma + (b.cpu - chunk.cpu) as u64, b.dma);
        }
    }
}

impl Drop for DmaPool {
    fn drop(&mut self) {
        let inner = std::mem::take(self.inner.get_mut());
        for (c, chunk) in inner.chunks.iter().enumerate() {
            let words = &inner.in_use[c * self.chunk_bits / 64..(c + 1) * self.chunk_bits / 64];
            let used: u32 = words.iter().map(|w| w.count_ones()).sum();
            if used != 0 {
                self.dev.warn(format_args!(
                    "dma_pool_destroy {}, {:#x} busy ({used} blocks in use); chunk leaked",
                    self.name, chunk.cpu
                ));
                continue;
            }
            // SAFETY: the chunk is a live coherent allocation of `allocation` bytes made by
            // `grow`, and no block of it is in use.
            unsafe { self.dev.free_coherent(self.allocation, chunk.cpu as *mut u8, DmaAddr(chunk.dma)) };
        }
    }
}

impl std::fmt::Debug for DmaPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaPool")
            .field("name", &self.name)
            .field("device", &self.dev.name())
            .field("size", &self.size)
            .field("boundary", &self.boundary)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_kernel() {
        assert_eq!(layout(68, 32, 4096), Ok((96, 4096, 4096)));
        assert_eq!(layout(1, 0, 0), Ok((16, 4096, 4096)), "at least 16 bytes, align 0 means 1");
        assert_eq!(layout(5000, 8, 0), Ok((5000, 8192, 8192)));
        assert_eq!(layout(64, 3, 0), Err(Errno::EINVAL));
        assert_eq!(layout(0, 8, 0), Err(Errno::EINVAL));
        assert_eq!(layout(64, 8, 32), Err(Errno::EINVAL), "boundary smaller than a block");
        assert_eq!(layout(64, 8, 100), Err(Errno::EINVAL), "boundary not a power of two");
        assert_eq!(layout(64, 8, 1 << 20), Ok((64, 4096, 4096)), "boundary capped at the chunk");
    }
}
