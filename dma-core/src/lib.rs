//! The Linux DMA-mapping API for userspace.
//!
//! A driver gets memory a device can address and moves ownership of it between CPU and
//! device exactly as in the kernel: coherent allocations, non-coherent (cached)
//! allocations with explicit `sync` ownership transfers, streaming mappings with swiotlb
//! bounce buffering for address-limited devices, on a simulated platform that makes a
//! missing sync show up as stale data on any machine.
//!
//! ```
//! use dma_core::{Coherence, DeviceConfig, Device, DmaMask, Direction, Gfp, System};
//! use dma_core::api::NonCoherentBuffer;
//! use dma_core::sim::BusMaster;
//!
//! let sys = System::builder().build()?;
//! let dev = Device::new(&sys, DeviceConfig::new("nic").coherence(Coherence::NonCoherent).mask(DmaMask::bits(32)))?;
//! let bus = BusMaster::new(&dev);
//!
//! let mut buf = NonCoherentBuffer::<u8>::new(&dev, 4096, Direction::Bidirectional, Gfp::GFP_KERNEL)?;
//! buf[..5].copy_from_slice(b"hello");
//! let owned = buf.sync_for_device();              // the device now owns it
//! let mut seen = [0u8; 5];
//! bus.read(owned.dma_handle(), &mut seen).unwrap();
//! assert_eq!(&seen, b"hello");
//! bus.write(owned.dma_handle(), b"HELLO").unwrap();
//! let buf = owned.sync_for_cpu();                 // and the CPU again
//! assert_eq!(&buf[..5], b"HELLO");
//! # Ok::<(), dma_core::Errno>(())
//! ```
//!
//! Crate map: [`System`] composes the platform ([`mem`]), the page allocator, swiotlb
//! ([`swiotlb`]) and kmalloc; a [`Device`] carries masks and coherence; [`mapping`] holds
//! the kernel-shaped entry points, which go to [`direct`]-mapping code or a device's
//! [`DmaOps`] (and, with [`IovaState`], the two-step IOVA API of a device behind an
//! IOMMU); [`api`] is the typed, safe layer; [`sim::BusMaster`] plays the device.

mod addr;
pub mod api;
mod attrs;
pub mod contiguous;
pub mod debug;
mod device;
pub mod direct;
mod direction;
mod errno;
mod gfp;
mod hash;
mod iova;
pub mod log;
pub mod mapping;
mod mask;
pub mod mem;
mod noncontiguous;
pub mod ops;
pub mod options;
pub mod pool;
mod scatterlist;
pub mod sim;
pub(crate) mod spinlock;
pub mod swiotlb;
mod system;

pub use addr::{DMA_MAPPING_ERROR, DmaAddr, PAGE_SHIFT, PAGE_SIZE, Pfn, PhysAddr, get_order, page_align};
pub use attrs::Attrs;
pub use contiguous::CmaAreaStats;
pub use device::{BusDmaRegion, Coherence, Device, DeviceConfig};
pub use direction::Direction;
pub use errno::{Errno, Result};
pub use gfp::Gfp;
pub use iova::IovaState;
pub use mask::{DmaMask, dma_bit_mask, min_not_zero};
pub use mem::{Page, Zone};
pub use ops::{DmaOps, FaultKind};
pub use options::Options;
pub use pool::DmaPool;
pub use scatterlist::{Scatterlist, SgTable};
pub use system::{System, SystemBuilder, SystemStats, ZoneStats};
