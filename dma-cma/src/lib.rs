//! Contiguous memory areas (CMA): a safe allocator of page-frame ranges.
#![forbid(unsafe_code)]
