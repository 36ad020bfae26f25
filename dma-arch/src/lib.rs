//! Per-architecture cache maintenance for DMA.
