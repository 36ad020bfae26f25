//! dma-debug from C: its error kinds, its counters and a report callback
//! (`kernel/dma/debug.c`; switched on by `dma_debug=1` or `dma_debug=guard` in the
//! options). Reports name the C caller by file and line (see the `caller` module).
#![allow(non_camel_case_types)]

use std::ffi::{CString, c_char, c_int, c_uint, c_void};
use std::sync::Arc;

use dma_core::Errno;
use dma_core::debug::{Caller, ErrorKind, Report};

use crate::boundary::{neg, nothing, refuse};
use crate::system::system;
use crate::types::dma_addr_t;

/// What a dma-debug report is about, in the order of dma-core's `debug::ErrorKind` (a
/// test checks it); indexes `dma_debug_stats.errors`.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum dma_debug_error {
    /// An unmap or free of memory that is not mapped or allocated.
    DMA_DEBUG_FREE_NOT_ALLOCATED = 0,
    /// An unmap or free of `DMA_MAPPING_ERROR`.
    DMA_DEBUG_FREE_INVALID_ADDRESS = 1,
    /// An unmap or free with a different size.
    DMA_DEBUG_FREE_WRONG_SIZE = 2,
    /// Unmapped or freed by the wrong kind of call (e.g. a single mapping with `dma_unmap_sg`).
    DMA_DEBUG_FREE_WRONG_FUNCTION = 3,
    /// An allocation freed with a different CPU address.
    DMA_DEBUG_FREE_WRONG_CPU_ADDRESS = 4,
    /// A scatterlist unmapped with a different `nents`.
    DMA_DEBUG_FREE_WRONG_SG_COUNT = 5,
    /// An unmap with a different direction.
    DMA_DEBUG_FREE_WRONG_DIRECTION = 6,
    /// Unmapped without `dma_mapping_error` on the address first.
    DMA_DEBUG_MAP_ERROR_NOT_CHECKED = 7,
    /// A sync of memory that is not mapped.
    DMA_DEBUG_SYNC_NOT_ALLOCATED = 8,
    /// A sync reaching past the end of its mapping.
    DMA_DEBUG_SYNC_OUT_OF_RANGE = 9,
    /// A sync with a direction other than the mapping's.
    DMA_DEBUG_SYNC_WRONG_DIRECTION = 10,
    /// A sync for the CPU of a mapping the device only reads.
    DMA_DEBUG_SYNC_READ_ONLY_FOR_CPU = 11,
    /// A sync for the device of a mapping the device only writes.
    DMA_DEBUG_SYNC_WRITE_ONLY_FOR_DEVICE = 12,
    /// A scatterlist synced with a different `nents`.
    DMA_DEBUG_SYNC_WRONG_SG_COUNT = 13,
    /// A mapping of the calling thread's stack.
    DMA_DEBUG_MAP_STACK = 14,
    /// A mapping of program text or read-only data.
    DMA_DEBUG_MAP_TEXT = 15,
    /// A mapping of a remapped (uncached or vmap) CPU address.
    DMA_DEBUG_MAP_INVALID_AREA = 16,
    /// A DMA segment longer than `dma_get_max_seg_size`.
    DMA_DEBUG_SG_SEGMENT_TOO_LONG = 17,
    /// A DMA segment across `dma_get_seg_boundary`.
    DMA_DEBUG_SG_SEGMENT_ACROSS_BOUNDARY = 18,
    /// Two live mappings the device may write start on one cache line.
    DMA_DEBUG_CACHELINE_OVERLAP = 19,
    /// More than 7 such mappings on one cache line.
    DMA_DEBUG_CACHELINE_OVERFLOW = 20,
    /// A device destroyed with live mappings or allocations.
    DMA_DEBUG_PENDING_AT_RELEASE = 21,
    /// The device read memory the CPU had not handed over (or dirtied after).
    DMA_DEBUG_MISSING_SYNC_FOR_DEVICE = 22,
    /// Handed back to the device after it wrote, with no sync for the CPU between.
    DMA_DEBUG_MISSING_SYNC_FOR_CPU = 23,
    /// The device wrote memory the CPU owns.
    DMA_DEBUG_DEVICE_WRITES_CPU_OWNED = 24,
}

impl dma_debug_error {
    /// Every kind, by value.
    #[cfg(test)]
    const ALL: [dma_debug_error; DMA_DEBUG_NR_ERRORS] = [
        dma_debug_error::DMA_DEBUG_FREE_NOT_ALLOCATED,
        dma_debug_error::DMA_DEBUG_FREE_INVALID_ADDRESS,
        dma_debug_error::DMA_DEBUG_FREE_WRONG_SIZE,
        dma_debug_error::DMA_DEBUG_FREE_WRONG_FUNCTION,
        dma_debug_error::DMA_DEBUG_FREE_WRONG_CPU_ADDRESS,
        dma_debug_error::DMA_DEBUG_FREE_WRONG_SG_COUNT,
        dma_debug_error::DMA_DEBUG_FREE_WRONG_DIRECTION,
        dma_debug_error::DMA_DEBUG_MAP_ERROR_NOT_CHECKED,
        dma_debug_error::DMA_DEBUG_SYNC_NOT_ALLOCATED,
        dma_debug_error::DMA_DEBUG_SYNC_OUT_OF_RANGE,
        dma_debug_error::DMA_DEBUG_SYNC_WRONG_DIRECTION,
        dma_debug_error::DMA_DEBUG_SYNC_READ_ONLY_FOR_CPU,
        dma_debug_error::DMA_DEBUG_SYNC_WRITE_ONLY_FOR_DEVICE,
        dma_debug_error::DMA_DEBUG_SYNC_WRONG_SG_COUNT,
        dma_debug_error::DMA_DEBUG_MAP_STACK,
        dma_debug_error::DMA_DEBUG_MAP_TEXT,
        dma_debug_error::DMA_DEBUG_MAP_INVALID_AREA,
        dma_debug_error::DMA_DEBUG_SG_SEGMENT_TOO_LONG,
        dma_debug_error::DMA_DEBUG_SG_SEGMENT_ACROSS_BOUNDARY,
        dma_debug_error::DMA_DEBUG_CACHELINE_OVERLAP,
        dma_debug_error::DMA_DEBUG_CACHELINE_OVERFLOW,
        dma_debug_error::DMA_DEBUG_PENDING_AT_RELEASE,
        dma_debug_error::DMA_DEBUG_MISSING_SYNC_FOR_DEVICE,
        dma_debug_error::DMA_DEBUG_MISSING_SYNC_FOR_CPU,
        dma_debug_error::DMA_DEBUG_DEVICE_WRITES_CPU_OWNED,
    ];
}

/// The number of kinds in `enum dma_debug_error` (the valid part of
/// `dma_debug_stats.errors`).
pub const DMA_DEBUG_NR_ERRORS: usize = 25;

/// Room for kinds in `struct dma_debug_stats`, so new kinds keep its size.
pub const DMA_DEBUG_MAX_ERRORS: usize = 32;

const _: () = assert!(
    dma_debug_error::DMA_DEBUG_DEVICE_WRITES_CPU_OWNED as usize + 1 == DMA_DEBUG_NR_ERRORS
        && DMA_DEBUG_NR_ERRORS <= DMA_DEBUG_MAX_ERRORS
);

/// dma-debug's counters (`dma_debug_get_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dma_debug_stats {
    /// Reports so far per kind, indexed by `enum dma_debug_error`; entries from
    /// `DMA_DEBUG_NR_ERRORS` on are 0.
    pub errors: [u64; DMA_DEBUG_MAX_ERRORS],
    /// All reports so far.
    pub error_count: u64,
    /// Allocations and mappings tracked now.
    pub entries: u64,
}

/// One report, as the callback of `dma_debug_set_report_callback` receives it. The
/// strings are valid only during the callback.
#[repr(C)]
#[derive(Debug)]
pub struct dma_debug_report {
    /// An `enum dma_debug_error`.
    pub kind: c_uint,
    /// The device's name.
    pub device: *const c_char,
    /// The kernel's wording of the error and its details (addresses, sizes, directions).
    pub message: *const c_char,
    /// The bus address involved.
    pub dma_addr: dma_addr_t,
    /// The size involved.
    pub size: usize,
    /// The direction of the call (an `enum dma_data_direction`).
    pub dir: c_uint,
    /// Source file of the call that was wrong (the header's macros pass `__FILE__`);
    /// NULL when unknown.
    pub file: *const c_char,
    /// Its line; 0 when unknown.
    pub line: c_int,
    /// Source file of the map or allocation call the report concerns; NULL when there
    /// is none or it is unknown.
    pub mapped_file: *const c_char,
    /// Its line; 0 when unknown.
    pub mapped_line: c_int,
}

/// A report callback and its context, as C passed them.
struct Callback {
    f: unsafe extern "C" fn(*const dma_debug_report, *mut c_void),
    ctx: *mut c_void,
}

// SAFETY: `dma_debug_set_report_callback`'s contract: the callback may be called from any
// thread with `ctx`.
unsafe impl Send for Callback {}
// SAFETY: as for `Send`; the callback is only ever called, never changed.
unsafe impl Sync for Callback {}

/// The value of a dma-core kind in `enum dma_debug_error`: its index, by construction.
fn kind_value(kind: ErrorKind) -> c_uint {
    ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as c_uint
}

/// A C string of `s`; interior NULs (never in our messages) cut it short.
fn c_string(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let end = e.nul_position();
        CString::new(&s[..end]).unwrap_or_default()
    })
}

fn site(c: Option<Caller>) -> (Option<CString>, c_int) {
    match c {
        Some(Caller::Rust(l)) => (Some(c_string(l.file())), c_int::try_from(l.line()).unwrap_or(0)),
        Some(Caller::C { file: Some(f), line }) => (Some(c_string(f)), c_int::try_from(line).unwrap_or(0)),
        Some(Caller::C { file: None, .. }) | None => (None, 0),
    }
}

impl Callback {
    fn call(&self, r: &Report) {
        let (device, message) = (c_string(&r.device), c_string(&r.message));
        let (file, line) = site(Some(r.caller));
        let (mapped_file, mapped_line) = site(r.mapped_at);
        let c = dma_debug_report {
            kind: kind_value(r.kind),
            device: device.as_ptr(),
            message: message.as_ptr(),
            dma_addr: r.dma,
            size: r.size,
            dir: r.dir as c_uint,
            file: file.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            line,
            mapped_file: mapped_file.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            mapped_line,
        };
        // SAFETY: the caller of `dma_debug_set_report_callback` gave a callback that
        // takes this report and `ctx`; the strings outlive the call.
        unsafe { (self.f)(&c, self.ctx) };
    }
}

/// Fills `*out` with dma-debug's counters. Returns 0, `-EINVAL` for a NULL `out`,
/// `-EOPNOTSUPP` when dma-debug is off (`dma_debug=1` in the options turns it on), or
/// the error building the system failed with. `*out` is written only on success.
///
/// # Safety
///
/// `out` is NULL or writable for one `struct dma_debug_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_debug_get_stats(out: *mut dma_debug_stats) -> c_int {
    boundary!(neg, {
        if out.is_null() {
            return Err(refuse("dma_debug_get_stats", format_args!("NULL out")));
        }
        let s = system()?.debug_stats().ok_or(Errno::from_raw(libc::EOPNOTSUPP))?;
        let mut st = dma_debug_stats { errors: [0; DMA_DEBUG_MAX_ERRORS], error_count: s.error_count, entries: 0 };
        for (kind, n) in &s.errors {
            if let Some(slot) = st.errors.get_mut(kind_value(*kind) as usize) {
                *slot = *n;
            }
        }
        st.entries = s.entries as u64;
        // SAFETY: `out` is non-null and writable (the caller's contract).
        unsafe { out.write(st) };
        Ok(0)
    })
}

/// Sends every dma-debug report to `cb(report, ctx)` instead of standard error; a NULL
/// `cb` restores standard error. Does nothing when dma-debug is off.
///
/// # Safety
///
/// `cb` is NULL or a function that can be called with `ctx` from any thread that calls
/// the DMA API, for as long as it is installed; it must not unwind or `longjmp` out,
/// and must not map, unmap, allocate or free DMA memory (it may read the counters).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_debug_set_report_callback(
    cb: Option<unsafe extern "C" fn(report: *const dma_debug_report, ctx: *mut c_void)>,
    ctx: *mut c_void,
) {
    boundary!(nothing, {
        let sys = system()?;
        match cb {
            None => sys.set_debug_sink(None),
            Some(f) => {
                let cb = Callback { f, ctx };
                sys.set_debug_sink(Some(Arc::new(move |r: &Report| cb.call(r))));
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `FreeNotAllocated` -> `FREE_NOT_ALLOCATED`.
    fn screaming(name: &str) -> String {
        let mut out = String::new();
        for (i, ch) in name.chars().enumerate() {
            if ch.is_ascii_uppercase() && i != 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_uppercase());
        }
        out
    }

    #[test]
    fn the_c_enum_mirrors_error_kind_in_order() {
        assert_eq!(ErrorKind::COUNT, DMA_DEBUG_NR_ERRORS, "dma-core has a new kind: add it to dma_debug_error");
        for (i, (kind, c)) in ErrorKind::ALL.iter().zip(dma_debug_error::ALL).enumerate() {
            assert_eq!(c as usize, i);
            assert_eq!(kind_value(*kind) as usize, i);
            assert_eq!(format!("DMA_DEBUG_{}", screaming(&format!("{kind:?}"))), format!("{c:?}"));
        }
    }
}
