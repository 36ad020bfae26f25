//! The safe Rust API: typed buffers whose types say who owns the memory.
//!
//! - [`CoherentBuffer`]: always shared with the device; CPU access is volatile, element
//!   by element, because the device may write at any time.
//! - [`NonCoherentBuffer`] / [`DeviceOwned`]: cached memory that is either the CPU's
//!   (a plain `&mut [T]`) or the device's (only a bus address). `sync_for_device`
//!   consumes the first and returns the second, `sync_for_cpu` the reverse, so a
//!   forgotten sync is a compile error, not stale data.
//! - [`StreamingMapping`] and [`MappedSg`]: mappings that borrow what they map, so the
//!   CPU cannot touch the memory until the mapping is dropped.

mod coherent;
mod noncoherent;
mod pod;
mod streaming;

pub use coherent::CoherentBuffer;
pub use noncoherent::{DeviceOwned, NonCoherentBuffer};
pub use pod::Pod;
pub use streaming::{MappedSg, StreamingMapping};
