//! DMA pools: small coherent blocks carved from whole-page coherent allocations
//! (`mm/dmapool.c`).
//!
//! The kernel's rules: `align` is a power of two (0 means 1); the block size is rounded
//! up to it (and to at least 16 bytes); each chunk is `max(size, PAGE_SIZE)` bytes from
//! `dma_alloc_coherent`; no block crosses a `boundary` (a power of two no smaller than
//! the block, 0 meaning the chunk size). Allocation and free are O(1): a pool-wide stack
//! of free blocks, as the 2023 rewrite of the kernel's pool has. Beyond the kernel's
//! default build, every free is checked (the pool owns the address, it is a block start,
//! the bus address matches, the block is in use), so a bad or double free is refused
//! with a message instead of corrupting the pool. Destroying a pool with blocks in use
//! reports them and leaks their chunks, as the kernel does.
//!
//! # Safety
//!
//! Zeroing writes only inside a block just taken from the free stack, which lies inside
//! a live coherent chunk of this pool.

use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::addr::{DmaAddr, PAGE_SIZE};
use crate::device::Device;
use crate::errno::{Errno, Result};
use crate::gfp::Gfp;

/// A chunk: one coherent allocation carved into blocks.
#[derive(Debug)]
struct Chunk {
    cpu: usize,
    dma: u64,
    /// Bit `i` set while block `i` is handed out.
    in_use: Vec<u64>,
    used: usize,
}

/// A free block: where it is, and which bit tracks it.
#[derive(Clone, Copy, Debug)]
struct FreeBlock {
    cpu: usize,
    dma: u64,
    chunk: u32,
    index: u32,
}

#[derive(Debug)]
struct Inner {
    /// Chunks in the order they were made (indices are stable).
    chunks: Vec<Chunk>,
    /// (CPU address, chunk index), sorted by address, to find a freed block's chunk.
    by_addr: Vec<(usize, u32)>,
    /// Free blocks, most recently freed last.
    free: Vec<FreeBlock>,
}

/// A pool of equal, aligned coherent blocks (`struct dma_pool`).
///
/// # Invariants
///
/// Every `free` entry is a block start inside a chunk of `chunks` whose `in_use` bit is
/// clear, and every clear bit of a chunk has exactly one `free` entry.
pub struct DmaPool {
    name: String,
    dev: Arc<Device>,
    size: usize,
    allocation: usize,
    boundary: usize,
    /// Blocks per boundary segment, and segments per chunk.
    per_segment: usize,
    blocks_per_chunk: usize,
    /// log2 of `size` when it is a power of two (a shift instead of a division on free).
    size_shift: Option<u32>,
    inner: Mutex<Inner>,
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
            size_shift: size.is_power_of_two().then(|| size.trailing_zeros()),
            inner: Mutex::new(Inner { chunks: Vec::new(), by_addr: Vec::new(), free: Vec::new() }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The block size after rounding.
    pub fn block_size(&self) -> usize {
        self.size
    }

    /// Blocks handed out now.
    pub fn in_use(&self) -> usize {
        self.lock().chunks.iter().map(|c| c.used).sum()
    }

    /// Chunks (coherent allocations) the pool holds.
    pub fn chunks(&self) -> usize {
        self.lock().chunks.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        if inner.free.is_empty() {
            self.grow(&mut inner, gfp)?;
        }
        let FreeBlock { cpu, dma, chunk, index } = inner.free.pop().ok_or(Errno::ENOMEM)?;
        let i = index as usize;
        let chunk = &mut inner.chunks[chunk as usize];
        chunk.in_use[i / 64] |= 1 << (i % 64);
        chunk.used += 1;
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

    fn grow(&self, inner: &mut Inner, gfp: Gfp) -> Result<()> {
        let (cpu, dma) = self.dev.alloc_coherent(self.allocation, gfp)?;
        let (cpu, dma) = (cpu.as_ptr() as usize, dma.0);
        let chunk = u32::try_from(inner.chunks.len()).map_err(|_| Errno::ENOMEM)?;
        inner.chunks.push(Chunk { cpu, dma, in_use: vec![0; self.blocks_per_chunk.div_ceil(64)], used: 0 });
        let at = inner.by_addr.partition_point(|&(c, _)| c < cpu);
        inner.by_addr.insert(at, (cpu, chunk));
        // Lowest addresses first out of the stack.
        for i in (0..self.blocks_per_chunk).rev() {
            let off = self.offset(i);
            inner.free.push(FreeBlock { cpu: cpu + off, dma: dma + off as u64, chunk, index: i as u32 });
        }
        Ok(())
    }

    /// The chunk index and block index of a block start, if `cpu` is one.
    #[inline]
    fn find(&self, inner: &Inner, cpu: usize) -> Option<(usize, usize)> {
        let k = inner.by_addr.partition_point(|&(c, _)| c <= cpu).checked_sub(1)?;
        let (start, c) = inner.by_addr[k];
        let off = cpu - start;
        if off >= self.allocation {
            return None;
        }
        if self.boundary == self.allocation {
            // One segment: the common case, a shift when the size is a power of two.
            return match self.size_shift {
                Some(s) if off & (self.size - 1) == 0 && off >> s < self.per_segment => Some((c as usize, off >> s)),
                Some(_) => None,
                None if off % self.size == 0 && off / self.size < self.per_segment => {
                    Some((c as usize, off / self.size))
                }
                None => None,
            };
        }
        let (seg, in_seg) = (off / self.boundary, off % self.boundary);
        if in_seg % self.size != 0 || in_seg / self.size >= self.per_segment {
            return None;
        }
        Some((c as usize, seg * self.per_segment + in_seg / self.size))
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
        let Some((c, i)) = self.find(&inner, cpu as usize) else {
            drop(inner);
            self.dev.warn(format_args!("dma_pool_free {}, {cpu:p} (bad vaddr)/{dma}", self.name));
            return Err(Errno::EINVAL);
        };
        let chunk = &mut inner.chunks[c];
        let block_dma = chunk.dma + (cpu as usize - chunk.cpu) as u64;
        let bit = 1u64 << (i % 64);
        let problem = if block_dma != dma.0 {
            Some("bad dma")
        } else if chunk.in_use[i / 64] & bit == 0 {
            Some("already free")
        } else {
            None
        };
        if let Some(what) = problem {
            drop(inner);
            self.dev.warn(format_args!("dma_pool_free {}, {cpu:p}/{dma} ({what})", self.name));
            return Err(Errno::EINVAL);
        }
        chunk.in_use[i / 64] &= !bit;
        chunk.used -= 1;
        inner.free.push(FreeBlock { cpu: cpu as usize, dma: dma.0, chunk: c as u32, index: i as u32 });
        Ok(())
    }

    /// `dma_pool_destroy`: frees every chunk; chunks with blocks still in use are reported
    /// and leaked (the device may still be using them).
    pub fn destroy(self) {}

    #[cfg(any(test, feature = "debug-checks"))]
    /// Checks the free stack against the in-use bits.
    pub fn check_invariants(&self) {
        let inner = self.lock();
        let free_bits: usize = inner.chunks.iter().map(|c| self.blocks_per_chunk - c.used).sum();
        assert_eq!(free_bits, inner.free.len(), "free stack and in-use bits disagree");
        for b in &inner.free {
            let (c, i) = self.find(&inner, b.cpu).expect("a free entry is a block start");
            assert_eq!((c, i), (b.chunk as usize, b.index as usize), "a free entry knows its place");
            let ch = &inner.chunks[c];
            assert_eq!(ch.in_use[i / 64] & (1 << (i % 64)), 0, "a free entry is not in use");
            assert_eq!(ch.dma + (b.cpu - ch.cpu) as u64, b.dma);
        }
    }
}

impl Drop for DmaPool {
    fn drop(&mut self) {
        let inner = std::mem::replace(
            self.inner.get_mut().unwrap_or_else(|e| e.into_inner()),
            Inner { chunks: Vec::new(), by_addr: Vec::new(), free: Vec::new() },
        );
        for c in inner.chunks {
            if c.used != 0 {
                self.dev.warn(format_args!(
                    "dma_pool_destroy {}, {:#x} busy ({} blocks in use); chunk leaked",
                    self.name, c.cpu, c.used
                ));
                continue;
            }
            // SAFETY: the chunk is a live coherent allocation of `allocation` bytes made by
            // `grow`, and no block of it is in use.
            unsafe { self.dev.free_coherent(self.allocation, c.cpu as *mut u8, DmaAddr(c.dma)) };
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
