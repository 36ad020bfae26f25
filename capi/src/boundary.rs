//! The panic boundary and the conversions every export shares.
//!
//! Each export's body returns `Result<T, Errno>`; [`boundary!`] runs it under
//! `catch_unwind` and turns an error, or a panic, into the kernel's error shape for the
//! function's return type: `NULL` ([`null`]), `DMA_MAPPING_ERROR` ([`mapping_error`]),
//! 0 entries ([`zero`]), `-errno` ([`neg`]) or nothing ([`nothing`]).

use std::ffi::c_int;

use dma_core::{Attrs, DMA_MAPPING_ERROR, Direction, Errno, Gfp};

use crate::types::dma_addr_t;

/// Runs `$body` (an expression of type `Result<T, Errno>`) so that no panic crosses into
/// C: `Ok(v)` returns `v`, `Err(e)` returns `$shape(e)`, a panic returns `$shape(EIO)`
/// after the panic hook has printed its message.
macro_rules! boundary {
    ($shape:expr, $body:expr) => {{
        let r = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
            || -> ::core::result::Result<_, ::dma_core::Errno> { $body },
        ));
        match r {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => $shape(e),
            Err(_) => $shape(::dma_core::Errno::EIO),
        }
    }};
}

/// [`boundary!`] run with the C caller the header's macros passed (see `caller`), for
/// the exports that reach dma-debug: the body's allocations, mappings and syncs are
/// reported against that file and line.
macro_rules! c_call {
    ($shape:expr, $body:expr) => {
        $crate::caller::scope(|| boundary!($shape, $body))
    };
}

/// Error shape of pointer-returning functions.
pub(crate) fn null<T>(_: Errno) -> *mut T {
    std::ptr::null_mut()
}

/// Error shape of mapping functions.
pub(crate) fn mapping_error(_: Errno) -> dma_addr_t {
    DMA_MAPPING_ERROR.0
}

/// Error shape of `int` functions.
pub(crate) fn neg(e: Errno) -> c_int {
    e.to_negative()
}

/// Error shape of counting functions (`dma_map_sg_attrs`) and of queries with no error.
pub(crate) fn zero<T: Default>(_: Errno) -> T {
    T::default()
}

/// Error shape of `void` functions: the message has been printed, nothing else to do.
pub(crate) fn nothing(_: Errno) {}

/// Prints a refusal the way dma-core's default sink does, and returns `EINVAL`.
pub(crate) fn refuse(func: &str, why: std::fmt::Arguments<'_>) -> Errno {
    eprintln!("dma: {func}: {why}");
    Errno::EINVAL
}

/// `enum dma_data_direction` as C passed it. `DMA_NONE` passes (dma-core refuses it
/// with its own message); values outside the enum are `EINVAL` here.
pub(crate) fn direction(func: &str, raw: u32) -> Result<Direction, Errno> {
    Direction::try_from(raw).inspect_err(|_| {
        refuse(func, format_args!("invalid DMA direction {raw}"));
    })
}

/// `unsigned long attrs`; unknown bits are `EINVAL`.
pub(crate) fn attrs(func: &str, raw: std::ffi::c_ulong) -> Result<Attrs, Errno> {
    #[allow(clippy::useless_conversion)] // c_ulong is u32 on 32-bit targets
    Attrs::from_raw(u64::from(raw)).inspect_err(|_| {
        refuse(func, format_args!("unknown DMA_ATTR bits in {raw:#x}"));
    })
}

/// `gfp_t`; unknown bits are `EINVAL`.
pub(crate) fn gfp(func: &str, raw: u32) -> Result<Gfp, Errno> {
    Gfp::from_raw(raw).inspect_err(|_| {
        refuse(func, format_args!("unknown gfp bits in {raw:#x}"));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_panics_become_the_error_shape() {
        let ok: c_int = boundary!(neg, Ok(7));
        assert_eq!(ok, 7);
        let err: c_int = boundary!(neg, Err(Errno::ENOMEM));
        assert_eq!(err, -12);
        let panicked: dma_addr_t = boundary!(mapping_error, {
            if ok == 7 {
                panic!("a bug below the boundary");
            }
            Ok(0)
        });
        assert_eq!(panicked, u64::MAX);
        let p: *mut u8 = boundary!(null, Err(Errno::EINVAL));
        assert!(p.is_null());
        assert_eq!(direction("t", 4), Err(Errno::EINVAL));
        assert_eq!(attrs("t", 1), Err(Errno::EINVAL));
        assert_eq!(gfp("t", 0x8000_0000), Err(Errno::EINVAL));
    }
}
