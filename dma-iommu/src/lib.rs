//! The IOMMU DMA layer (IOVA allocator, IO page tables, dma-iommu ops).
