//! The Linux DMA-mapping API for userspace.
