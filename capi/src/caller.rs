//! The C call site of each API call, for dma-debug's reports.
//!
//! The kernel's reports name the caller from its return address. A C program's return
//! addresses mean little to its author, so the header passes `__FILE__` and `__LINE__`
//! instead: for every call that reaches dma-core it defines a macro of the function's own
//! name, `#define dma_map_single_attrs(...) (dma_debug_set_caller(__FILE__, __LINE__),
//! dma_map_single_attrs(__VA_ARGS__))`. A function-like macro is not expanded inside its
//! own expansion, so the inner name is the real function; the kernel's short forms
//! (`dma_map_single`, ...) expand to the `_attrs` names and so to these macros. One extra
//! export and no second set of functions; `-DDMA_NO_CALLER_MACROS` turns the macros off.
//!
//! With dma-debug on, [`dma_debug_set_caller`] stores the pointer and line in a
//! thread-local; the next call on the thread takes them ([`scope`]) and copies the file
//! name into an interned, never-freed string (dma-core keeps `&'static str` callers in its
//! entries for the life of a mapping). With dma-debug off both are one relaxed load and a
//! predictable branch.
//!
//! A call made without the macros (through a function pointer, or from Rust) has an
//! unknown caller: file NULL, line 0. An export that calls another export keeps the outer
//! call's caller.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::ffi::{CStr, c_char, c_int};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use dma_core::debug::{Caller, with_caller};

use crate::boundary::nothing;

thread_local! {
    /// What `dma_debug_set_caller` passed, not yet taken by an API call.
    static PENDING: Cell<(*const c_char, c_int)> = const { Cell::new((std::ptr::null(), 0)) };
    /// True while an API call with a known caller runs on this thread.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the process's system has dma-debug on; set once when the system is built.
static DEBUG_ON: AtomicBool = AtomicBool::new(false);

/// The system was built with dma-debug on.
pub(crate) fn set_debug_on() {
    DEBUG_ON.store(true, Relaxed);
}

/// Records the call site of the next DMA API call made on this thread. The header's
/// macros call it before every call that reaches dma-debug; a program need not call it
/// itself. The next API call on the thread takes it (whether or not dma-debug is on).
///
/// # Safety
///
/// `file` is NULL or a NUL-terminated string that stays valid until the next DMA API
/// call on this thread has returned (a `__FILE__` literal always does).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_debug_set_caller(file: *const c_char, line: c_int) {
    boundary!(nothing, {
        if debug_on() {
            PENDING.with(|p| p.set((file, line)));
        }
        Ok(())
    })
}

/// Whether dma-debug is on. Every call that takes a device runs after the system was
/// built, so it sees the final value; with dma-debug off the caller is never needed and
/// neither this module nor the exports touch the thread-local.
#[inline]
pub(crate) fn debug_on() -> bool {
    DEBUG_ON.load(Relaxed)
}

/// Runs an export's body (already inside its panic boundary, so `f` does not unwind) with
/// the pending C caller as the call site dma-debug reports.
#[inline]
pub(crate) fn scope<R>(f: impl FnOnce() -> R) -> R {
    if !debug_on() {
        return f();
    }
    at(f)
}

#[cold]
#[inline(never)]
fn at<R>(f: impl FnOnce() -> R) -> R {
    let (file, line) = PENDING.with(|p| p.replace((std::ptr::null(), 0)));
    if file.is_null() && ACTIVE.with(Cell::get) {
        // An export called by another export: the outer call's caller stands.
        return f();
    }
    let caller = match intern(file) {
        Some(file) => Caller::C { file: Some(file), line: usize::try_from(line).unwrap_or(0) },
        None => Caller::C { file: None, line: 0 },
    };
    let outer = ACTIVE.with(|a| a.replace(true));
    // `f` runs inside the export's panic boundary, so the restore below always runs.
    let r = with_caller(caller, f);
    ACTIVE.with(|a| a.set(outer));
    r
}

/// The file name as a string that lives forever: one leaked copy per distinct name.
fn intern(file: *const c_char) -> Option<&'static str> {
    static FILES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    if file.is_null() {
        return None;
    }
    // SAFETY: `dma_debug_set_caller`'s contract: a NUL-terminated string still valid.
    let name = unsafe { CStr::from_ptr(file) }.to_string_lossy();
    let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&known) = files.get(&*name) {
        return Some(known);
    }
    let leaked: &'static str = Box::leak(name.into_owned().into_boxed_str());
    files.insert(leaked);
    Some(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_interned_once() {
        let a = intern(c"a.c".as_ptr()).expect("a name");
        let b = intern(c"a.c".to_owned().as_ptr()).expect("a name");
        assert_eq!(a, "a.c");
        assert!(std::ptr::eq(a, b), "the same name is one string");
        assert_eq!(intern(std::ptr::null()), None);
    }

    #[test]
    fn the_pending_caller_is_taken_by_the_next_call() {
        set_debug_on();
        // SAFETY: a literal lives forever.
        unsafe { dma_debug_set_caller(c"x.c".as_ptr(), 7) };
        assert_eq!(PENDING.with(Cell::get).1, 7);
        let inner = scope(|| {
            assert!(ACTIVE.with(Cell::get));
            scope(|| ACTIVE.with(Cell::get))
        });
        assert!(inner, "a nested call keeps the outer caller");
        assert!(PENDING.with(Cell::get).0.is_null(), "taken by the call");
        assert!(!ACTIVE.with(Cell::get));
    }
}
