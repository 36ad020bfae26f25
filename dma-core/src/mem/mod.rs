//! Physical memory: the platform's RAM, the page allocator and kmalloc.

pub(crate) mod buddy;
pub(crate) mod host;
pub(crate) mod kmalloc;
pub(crate) mod page_alloc;
pub(crate) mod platform;
pub(crate) mod sim;

pub use page_alloc::{Page, Zone};
