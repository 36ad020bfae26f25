//! The IOMMU DMA layer for userspace: the kernel's `drivers/iommu/iova.c`, `dma-iommu.c`
//! and io-pgtable, as [`dma_core::DmaOps`] for the simulated platform.
//!
//! ```
//! use dma_core::{DeviceConfig, Device, Direction, DmaMask, Gfp, System, Attrs};
//! use dma_iommu::Domain;
//!
//! let sys = System::builder().build()?;
//! let domain = Domain::new(&sys)?;
//! let dev = Device::new(&sys, domain.attach(DeviceConfig::new("gpu").mask(DmaMask::bits(32))))?;
//! // 1 MiB of scattered pages: one DMA segment, and one CPU range on request.
//! let sgt = dev.alloc_noncontiguous(1 << 20, Direction::Bidirectional, Gfp::GFP_KERNEL, Attrs::empty())?;
//! assert_eq!(sgt.nents, 1);
//! let cpu = dev.vmap_noncontiguous(1 << 20, &sgt)?;
//! // SAFETY: the mapping and the allocation are not used afterwards.
//! unsafe {
//!     dev.vunmap_noncontiguous(cpu.as_ptr());
//!     dev.free_noncontiguous(1 << 20, sgt, Direction::Bidirectional);
//! }
//! # Ok::<(), dma_core::Errno>(())
//! ```
//!
//! Crate map: [`iova`] allocates IOVA ranges (with the per-CPU caches of [`iova::rcache`]);
//! [`pgtable`] translates them; [`fq`] defers invalidations in lazy mode, during which the
//! IOTLB (`iotlb.rs`) still holds what the device used; a [`Domain`] puts them together, and
//! implements `DmaOps` (in `dma_iommu.rs`) so devices attach to it; `iova_link.rs` serves
//! the two-step IOVA API ([`dma_core::IovaState`]) on it.

#![deny(unsafe_code)]

mod dma_iommu;
mod domain;
pub mod fq;
mod iotlb;
pub mod iova;
mod iova_link;
pub mod pgtable;
mod sg;
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub mod vfio;

pub use dma_iommu::OPT_MAPPING_SIZE;
pub use domain::{Domain, DomainConfig, DomainStats};
