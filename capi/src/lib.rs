//! The C ABI of the dma-mapping library: `libdma.a`, `libdma.so` and
//! `include/dma-mapping.h` (generated from this crate by cbindgen).
//!
//! C drivers call the kernel's DMA API by its kernel names, argument order and return
//! shapes: a failed allocation is `NULL`, a failed mapping `DMA_MAPPING_ERROR`, a failed
//! scatter-gather mapping 0 entries, anything else a negative errno. What the kernel
//! gets from elsewhere (the platform, `struct device`, `kmalloc`, the device's side of
//! DMA) is here too, under `dma_system_*`, `dma_device_*`, `dmalib_*` and `dma_sim_*`;
//! dma-debug's counters and reports under `dma_debug_*`, the contiguous areas'
//! statistics under `dma_cma_*`, IOMMU domains (dma-iommu) under `dma_iommu_*` (and the
//! two-step IOVA API of their devices under `dma_iova_*`), real PCI
//! devices behind VFIO (`dma_device_create_vfio`, BARs and config space) under `dma_vfio_*`.
//!
//! Rules every export follows (after rustls-ffi):
//!
//! - it sits in a panic boundary (`boundary!`) that turns a panic into the function's
//!   error shape; nothing unwinds into C;
//! - a NULL pointer argument is an error (or a no-op for `_destroy` and free calls);
//! - out-parameters are written only on success;
//! - the header is generated, checked in, and a test fails when it drifts.
//!
//! The kernel's devres-managed calls (`dmam_alloc_attrs`, `dmam_alloc_coherent`,
//! `dmam_free_coherent`, `dmam_pool_create`, `dmam_pool_destroy`) record what they
//! create on the device, and `dma_device_destroy` (this library's driver detach)
//! releases it.
//!
//! Handles: `struct device *` is a boxed [`device`] (an `Arc<Device>`, the device's
//! simulated bus master, its managed resources and, for a VFIO device, its BAR mappings
//! and VFIO descriptors); `struct dma_iommu_domain *` and `struct dma_pool *`
//! box a dma-iommu `Domain` and a dma-core `DmaPool`; `struct page *` is the CPU
//! address of the page's first byte in the platform's cached view, so `page_address` is
//! a cast and `virt_to_page` rounds down.
//!
//! # Safety
//!
//! This is the only crate of the workspace with `extern "C"`. Every export is an
//! `unsafe extern "C" fn` whose `# Safety` section (copied into the header) states what
//! the C caller must guarantee; the bodies trust exactly that and check everything else.

#[macro_use]
mod boundary;
mod alloc;
mod caller;
mod cma;
mod debug;
mod dev;
mod devres;
mod iommu;
mod iova;
mod kmem;
mod mapping;
mod mmap;
mod noncontiguous;
mod pool;
mod sg;
mod sim;
mod system;
mod types;
mod vfio;

pub use alloc::*;
pub use caller::*;
pub use cma::*;
pub use debug::*;
pub use dev::*;
pub use devres::*;
pub use iommu::*;
pub use iova::*;
pub use kmem::*;
pub use mapping::*;
pub use mmap::*;
pub use noncontiguous::*;
pub use pool::*;
pub use sg::*;
pub use sim::*;
pub use system::*;
pub use types::*;
pub use vfio::*;
