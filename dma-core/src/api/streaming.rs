//! Streaming mappings that borrow what they map.
//!
//! # Safety
//!
//! A mapping holds the borrow of its memory for its whole life: exclusive for directions
//! in which the device writes, shared for `TO_DEVICE` (the device only reads, and no
//! cache maintenance or bounce copy writes the CPU's memory in that direction). The
//! unmap on drop ends the device's ownership before the borrow ends.

use std::marker::PhantomData;

use crate::addr::DmaAddr;
use crate::api::Pod;
use crate::attrs::Attrs;
use crate::device::Device;
use crate::direction::Direction;
use crate::errno::{Errno, Result};
use crate::scatterlist::SgTable;

/// A `dma_map_single` of a borrowed slice; unmapped on drop.
pub struct StreamingMapping<'a, T: Pod> {
    dev: &'a Device,
    dma: DmaAddr,
    size: usize,
    dir: Direction,
    _borrow: PhantomData<&'a mut [T]>,
}

impl Device {
    /// Maps `buf` for the device in direction `dir`. The CPU gets `buf` back when the
    /// mapping is dropped (or [`StreamingMapping::unmap`]ped), with the device's writes.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty slice or `DMA_NONE`; otherwise as [`Device::map_single`].
    #[track_caller]
    pub fn map_slice<'a, T: Pod>(&'a self, buf: &'a mut [T], dir: Direction) -> Result<StreamingMapping<'a, T>> {
        let size = size_of_val(buf);
        // SAFETY: the exclusive borrow keeps `buf` valid and untouched by the CPU for the
        // mapping's lifetime, and drop unmaps before the borrow ends.
        let dma = unsafe { self.map_single(buf.as_mut_ptr().cast(), size, dir, Attrs::empty())? };
        Ok(StreamingMapping { dev: self, dma, size, dir, _borrow: PhantomData })
    }

    /// Maps `buf` for the device to read (`DMA_TO_DEVICE`); the CPU may keep reading it.
    ///
    /// # Errors
    ///
    /// As [`Device::map_slice`].
    #[track_caller]
    pub fn map_slice_to_device<'a, T: Pod>(&'a self, buf: &'a [T]) -> Result<StreamingMapping<'a, T>> {
        let size = size_of_val(buf);
        // SAFETY: with TO_DEVICE nothing writes `buf` (clean only reads the cached view,
        // a bounce copies out of it and never back), so a shared borrow suffices.
        let dma =
            unsafe { self.map_single(buf.as_ptr().cast_mut().cast(), size, Direction::ToDevice, Attrs::empty())? };
        Ok(StreamingMapping { dev: self, dma, size, dir: Direction::ToDevice, _borrow: PhantomData })
    }

    /// Maps several borrowed byte buffers as one scatter-gather list.
    ///
    /// # Errors
    ///
    /// As [`Device::map_sg`]; `EINVAL` also for a buffer longer than 4 GiB.
    #[track_caller]
    pub fn map_sg_slices<'a>(&'a self, bufs: Vec<&'a mut [u8]>, dir: Direction) -> Result<MappedSg<'a>> {
        let mut table = SgTable::new();
        for b in bufs {
            table.push(b.as_mut_ptr(), u32::try_from(b.len()).map_err(|_| Errno::EINVAL)?);
        }
        // SAFETY: the buffers are exclusively borrowed for 'a and drop unmaps first.
        unsafe { self.map_sgtable(&mut table, dir, Attrs::empty())? };
        Ok(MappedSg { dev: self, table, dir, _borrow: PhantomData })
    }
}

impl<T: Pod> StreamingMapping<'_, T> {
    /// The bus address to program into the device.
    pub fn dma_handle(&self) -> DmaAddr {
        self.dma
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The mapping's direction.
    pub fn direction(&self) -> Direction {
        self.dir
    }

    /// Ends the mapping (also done on drop).
    pub fn unmap(self) {}
}

impl<T: Pod> Drop for StreamingMapping<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this is the live mapping made in `map_slice`, and the borrow of the
        // memory is still held, so no CPU reference into it exists.
        unsafe { self.dev.unmap_single(self.dma, self.size, self.dir, Attrs::empty()) };
    }
}

impl<T: Pod> std::fmt::Debug for StreamingMapping<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingMapping")
            .field("dma", &self.dma)
            .field("size", &self.size)
            .field("dir", &self.dir)
            .finish()
    }
}

/// A mapped scatter-gather list of borrowed buffers; unmapped on drop.
pub struct MappedSg<'a> {
    dev: &'a Device,
    table: SgTable,
    dir: Direction,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl MappedSg<'_> {
    /// The DMA segments, as (bus address, length).
    pub fn segments(&self) -> impl Iterator<Item = (DmaAddr, u32)> + '_ {
        self.table.dma_segments()
    }

    /// Number of DMA segments.
    pub fn nents(&self) -> usize {
        self.table.nents
    }
}

impl Drop for MappedSg<'_> {
    fn drop(&mut self) {
        // SAFETY: the table is the live mapping made in `map_sg_slices`; the buffers are
        // still borrowed.
        unsafe { self.dev.unmap_sgtable(&mut self.table, self.dir, Attrs::empty()) };
    }
}

impl std::fmt::Debug for MappedSg<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedSg").field("nents", &self.table.nents).field("dir", &self.dir).finish()
    }
}
