//! The process-wide system: the kernel has one platform and one set of allocators, and
//! so does a C program. It is built by `dma_system_init`, or from `$DMA_OPTS` by the
//! first call that needs it, and lives until the process exits.

use std::ffi::{CStr, c_char, c_int};
use std::sync::{Arc, Mutex, OnceLock};

use dma_core::options::DebugMode;
use dma_core::{Errno, Options, System};

use crate::boundary::{neg, refuse};
use crate::types::{dma_stats, dma_zone_stats};

static SYSTEM: OnceLock<Arc<System>> = OnceLock::new();
/// Serialises the build so two first callers do not map RAM twice.
static BUILD: Mutex<()> = Mutex::new(());

fn build(make: impl FnOnce() -> Result<Arc<System>, Errno>) -> Result<&'static Arc<System>, Errno> {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if SYSTEM.get().is_some() {
        return Err(Errno::EBUSY);
    }
    let sys = make()?;
    if sys.options().dma_debug != DebugMode::Off {
        crate::caller::set_debug_on();
    }
    Ok(SYSTEM.get_or_init(|| sys))
}

/// The system, built from `$DMA_OPTS` on first use.
pub(crate) fn system() -> Result<&'static Arc<System>, Errno> {
    if let Some(s) = SYSTEM.get() {
        return Ok(s);
    }
    match build(System::from_env) {
        Err(Errno::EBUSY) => SYSTEM.get().ok_or(Errno::EBUSY),
        r => r,
    }
}

/// Builds the system from an option string in `DMA_OPTS` syntax (e.g.
/// `"swiotlb=4096 cache_line=64"`); NULL means `$DMA_OPTS` (or the defaults).
///
/// Optional: without it the first call that needs the system builds it from
/// `$DMA_OPTS`. Returns 0, `-EBUSY` if the system already exists (it is built once per
/// process), `-EINVAL` for a bad option string (the reason is printed), or the
/// platform's error (`-ENOMEM`, `-ENODEV`).
///
/// # Safety
///
/// `opts` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_system_init(opts: *const c_char) -> c_int {
    boundary!(neg, {
        let options = if opts.is_null() {
            None
        } else {
            // SAFETY: the caller passes a NUL-terminated string.
            let s = unsafe { CStr::from_ptr(opts) };
            let s = s.to_str().map_err(|_| refuse("dma_system_init", format_args!("options are not UTF-8")))?;
            Some(Options::parse(s).map_err(|e| refuse("dma_system_init", format_args!("{e}")))?)
        };
        build(|| match options {
            Some(o) => System::new(o),
            None => System::from_env(),
        })?;
        Ok(0)
    })
}

/// Fills `*out` with a snapshot of the system's memory: pages per zone and the bounce
/// pool's counters. Returns 0, `-EINVAL` for a NULL `out`, or the error building the
/// system failed with. `*out` is written only on success.
///
/// # Safety
///
/// `out` is NULL or points to writable memory for one `struct dma_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_system_stats(out: *mut dma_stats) -> c_int {
    boundary!(neg, {
        if out.is_null() {
            return Err(refuse("dma_system_stats", format_args!("NULL out")));
        }
        let s = system()?.stats();
        let mut st = dma_stats::default();
        for (c, z) in st.zones.iter_mut().zip(s.zones) {
            *c = dma_zone_stats { total_pages: z.total_pages, free_pages: z.free_pages };
        }
        if let Some(t) = s.swiotlb {
            st.swiotlb_total_slots = t.total_slots as u64;
            st.swiotlb_used_slots = t.used_slots as u64;
            st.swiotlb_mappings = t.mappings;
            st.swiotlb_bytes_bounced = t.bytes_bounced;
            st.swiotlb_full = t.full;
        }
        // SAFETY: `out` is non-null and writable (the caller's contract).
        unsafe { out.write(st) };
        Ok(0)
    })
}

/// `dma_get_cache_alignment`: the alignment and size granule that keeps DMA buffers
/// off each other's cache lines. 1 if the system cannot be built.
#[unsafe(no_mangle)]
pub extern "C" fn dma_get_cache_alignment() -> c_int {
    boundary!(|_| 1, Ok(system()?.cache_alignment() as c_int))
}
