//! Scatter-gather lists (`struct scatterlist`, `struct sg_table`).

use crate::addr::DMA_MAPPING_ERROR;

/// One entry of a scatter-gather list. `#[repr(C)]` so the C ABI can hand an array of
/// them straight through.
///
/// The CPU side (`cpu_addr`, `length`) is filled by the caller; the DMA side
/// (`dma_address`, `dma_length`) by a map call. After mapping, only the first `n` entries
/// (the count the map call returned) carry DMA segments; an IOMMU may merge several CPU
/// entries into one DMA segment.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scatterlist {
    /// CPU address of the data (`page_address(sg_page(sg)) + sg->offset`).
    pub cpu_addr: *mut u8,
    /// Length of the data in bytes.
    pub length: u32,
    /// Length of the DMA segment (`sg_dma_len`).
    pub dma_length: u32,
    /// Bus address of the DMA segment (`sg_dma_address`).
    pub dma_address: u64,
}

impl Scatterlist {
    /// An entry for `length` bytes at `cpu_addr` (`sg_set_buf`), not yet mapped.
    pub const fn new(cpu_addr: *mut u8, length: u32) -> Scatterlist {
        Scatterlist { cpu_addr, length, dma_length: 0, dma_address: DMA_MAPPING_ERROR.0 }
    }
}

/// A scatter-gather table: CPU entries plus the number of DMA segments after mapping.
#[derive(Debug, Default)]
pub struct SgTable {
    /// The entries (`sgl`, `orig_nents` of them).
    pub sgl: Vec<Scatterlist>,
    /// DMA segments after a successful map (`nents`); 0 while unmapped.
    pub nents: usize,
}

impl SgTable {
    /// An empty table.
    pub fn new() -> SgTable {
        SgTable::default()
    }

    /// The number of CPU entries (`orig_nents`).
    pub fn orig_nents(&self) -> usize {
        self.sgl.len()
    }

    /// Appends an entry.
    pub fn push(&mut self, cpu_addr: *mut u8, length: u32) {
        self.sgl.push(Scatterlist::new(cpu_addr, length));
    }

    /// The mapped DMA segments as (bus address, length).
    pub fn dma_segments(&self) -> impl Iterator<Item = (crate::DmaAddr, u32)> + '_ {
        self.sgl[..self.nents.min(self.sgl.len())].iter().map(|s| (crate::DmaAddr(s.dma_address), s.dma_length))
    }
}
