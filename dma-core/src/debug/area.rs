//! Where a mapped CPU address lives: the current thread's stack, or the program's text
//! and read-only data (what `check_for_stack` and `check_for_illegal_area` ask in the
//! kernel).
//!
//! # Safety
//!
//! `pthread_getattr_np` and `dl_iterate_phdr` are called with valid out-parameters; the
//! program headers they hand to the callback are only read during the callback.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::OnceLock;

thread_local! {
    static STACK: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// The calling thread's stack as `[low, high)`, looked up once per thread.
fn stack() -> Option<(usize, usize)> {
    STACK.with(|s| {
        if s.get().is_none() {
            // SAFETY: `attr` is initialised by pthread_getattr_np before use and destroyed
            // after; the out-parameters are valid locals.
            unsafe {
                let mut attr: libc::pthread_attr_t = std::mem::zeroed();
                if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
                    let mut addr: *mut c_void = std::ptr::null_mut();
                    let mut size: libc::size_t = 0;
                    if libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0 {
                        s.set(Some((addr as usize, addr as usize + size)));
                    }
                    libc::pthread_attr_destroy(&mut attr);
                }
            }
        }
        s.get()
    })
}

/// True when `[ptr, ptr + len)` overlaps the calling thread's stack.
pub(crate) fn on_stack(ptr: usize, len: usize) -> bool {
    stack().is_some_and(|(lo, hi)| ptr < hi && ptr.saturating_add(len) > lo)
}

/// Read-only loaded segments (text, rodata) of the program and its libraries.
fn read_only() -> &'static [(usize, usize)] {
    static RANGES: OnceLock<Vec<(usize, usize)>> = OnceLock::new();
    RANGES.get_or_init(|| {
        unsafe extern "C" fn each(
            info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            data: *mut c_void,
        ) -> libc::c_int {
            // SAFETY: dl_iterate_phdr passes a valid info and our `data` pointer.
            unsafe {
                let ranges = &mut *(data as *mut Vec<(usize, usize)>);
                let info = &*info;
                for i in 0..info.dlpi_phnum as usize {
                    let ph = &*info.dlpi_phdr.add(i);
                    if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_W == 0 {
                        let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
                        ranges.push((start, start + ph.p_memsz as usize));
                    }
                }
            }
            0
        }
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        // SAFETY: the callback only reads the headers and pushes to `ranges`.
        unsafe { libc::dl_iterate_phdr(Some(each), (&mut ranges as *mut Vec<(usize, usize)>).cast()) };
        ranges
    })
}

/// True when `[ptr, ptr + len)` overlaps program text or read-only data.
pub(crate) fn in_text(ptr: usize, len: usize) -> bool {
    read_only().iter().any(|&(lo, hi)| ptr < hi && ptr.saturating_add(len) > lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    static TEXT: [u8; 16] = [1; 16];

    #[test]
    fn stack_and_text_are_recognised() {
        let local = [0u8; 32];
        assert!(on_stack(local.as_ptr() as usize, 32));
        let heap = Box::new([0u8; 32]);
        assert!(!on_stack(heap.as_ptr() as usize, 32));
        assert!(in_text(TEXT.as_ptr() as usize, 16), "a static in .rodata");
        assert!(in_text(stack_and_text_are_recognised as *const () as usize, 1), "code");
        assert!(!in_text(heap.as_ptr() as usize, 32));
    }
}
