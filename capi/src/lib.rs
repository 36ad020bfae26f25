//! The C ABI of the dma-mapping library.
