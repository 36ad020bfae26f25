//! Contiguous memory areas (CMA): a safe allocator of page-frame ranges.
//!
//! A [`CmaArea`] is the bookkeeping half of the kernel's `mm/cma.c`: a bitmap over a range of
//! page frames, each bit standing for `1 << order_per_bit` pages, from which
//! [`CmaArea::alloc`] hands out contiguous, aligned runs and [`CmaArea::release`] takes them
//! back. It knows nothing of devices or memory; `dma-core` reserves the pages, wraps an area in
//! a `Mutex` and turns `None` into `ENOMEM`.
//!
//! Beyond the kernel, the search is complete: `alloc` fails only when no aligned run of free
//! pages exists anywhere in the area. It scans `u64` words, skips fully used words, tests each
//! candidate window from its end, starts at the first free bit, serves large word-aligned
//! requests from a summary with one bit per bitmap word (starting at the first empty word), and
//! remembers the last failure until the next release.
//!
//! ```
//! use dma_cma::CmaArea;
//!
//! let mut area = CmaArea::new("reserved", 0x8_0000, 65536, 0)?;
//! let pfn = area.alloc(512, 9).expect("the area is empty");
//! assert_eq!(pfn % 512, 0);
//! assert_eq!(area.stats().free_pages, 65536 - 512);
//! area.release(pfn, 512)?;
//! # Ok::<(), dma_cma::CmaError>(())
//! ```
#![forbid(unsafe_code)]

mod area;
mod bitmap;
mod error;
mod map;

pub use area::{CmaArea, CmaStats, MAX_NAME_LEN, MAX_ORDER_PER_BIT};
pub use error::CmaError;
