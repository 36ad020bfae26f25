//! Guard mode (`dma_debug=guard`): while a buffer belongs to the device, the whole pages
//! it covers are inaccessible to the CPU, so a CPU touch faults at once. A signal handler
//! names the buffer and its owner, then lets the process die of the fault.
//!
//! # Safety
//!
//! `mprotect` is applied only to whole pages inside a buffer the caller has just handed
//! to the device: platform RAM in the cached view, which holds no Rust object the CPU may
//! use until the buffer is handed back (and the library lifts the protection before its
//! own accesses). The signal handler reads only atomics and records that are published
//! before their slot is set; it calls only async-signal-safe functions (`write`,
//! `sigaction`).

use std::ffi::c_void;
use std::ptr;
use std::sync::Mutex;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, Ordering};

const SLOTS: usize = 4096;
const PAGE: usize = crate::addr::PAGE_SIZE;

/// A guarded range and what to say when it is touched.
struct Record {
    start: usize,
    end: usize,
    msg: Box<[u8]>,
}

static RECORDS: [AtomicPtr<Record>; SLOTS] = [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS];
static INSTALL: Once = Once::new();

/// Guarded ranges of one system.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Slots this system uses, serialised (the handler never takes it).
    lock: Mutex<Vec<usize>>,
}

impl Guard {
    pub(crate) fn new() -> Guard {
        INSTALL.call_once(install_handler);
        Guard { lock: Mutex::new(Vec::new()) }
    }

    /// Makes the whole pages of `[cpu, cpu + size)` inaccessible; `msg` is printed if the
    /// CPU touches them. A buffer covering no whole page is not guarded.
    pub(crate) fn protect(&self, cpu: usize, size: usize, msg: String) {
        let start = cpu.next_multiple_of(PAGE);
        let end = (cpu + size) / PAGE * PAGE;
        if start >= end {
            return;
        }
        let mut used = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = (0..SLOTS).find(|&i| RECORDS[i].load(Ordering::Acquire).is_null()) else { return };
        let rec = Box::into_raw(Box::new(Record { start, end, msg: format!("{msg}\n").into_bytes().into() }));
        RECORDS[slot].store(rec, Ordering::Release);
        used.push(slot);
        // SAFETY: whole pages of platform RAM inside a device-owned buffer (module docs).
        unsafe { libc::mprotect(start as *mut c_void, end - start, libc::PROT_NONE) };
    }

    /// Lifts the protection of the buffer at `cpu`, if it has one.
    pub(crate) fn unprotect(&self, cpu: usize, size: usize) {
        let start = cpu.next_multiple_of(PAGE);
        let end = (cpu + size) / PAGE * PAGE;
        if start >= end {
            return;
        }
        let mut used = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pos) = used.iter().position(|&s| {
            let r = RECORDS[s].load(Ordering::Acquire);
            // SAFETY: records in our slots are live until we free them below, under the lock.
            !r.is_null() && unsafe { (*r).start == start }
        }) else {
            return;
        };
        let slot = used.swap_remove(pos);
        // SAFETY: the range was protected by `protect` with these bounds.
        unsafe { libc::mprotect(start as *mut c_void, end - start, libc::PROT_READ | libc::PROT_WRITE) };
        let rec = RECORDS[slot].swap(ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: the pointer came from Box::into_raw in `protect` and the slot no longer
        // publishes it. A handler that loaded it just before could still read it; the
        // pages are accessible again by now, so no fault from them can be in flight.
        drop(unsafe { Box::from_raw(rec) });
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let used = std::mem::take(self.lock.get_mut().unwrap_or_else(|e| e.into_inner()));
        for slot in used {
            let rec = RECORDS[slot].swap(ptr::null_mut(), Ordering::AcqRel);
            if !rec.is_null() {
                // SAFETY: as in `unprotect`.
                let rec = unsafe { Box::from_raw(rec) };
                // SAFETY: as in `unprotect`.
                unsafe {
                    libc::mprotect(rec.start as *mut c_void, rec.end - rec.start, libc::PROT_READ | libc::PROT_WRITE)
                };
            }
        }
    }
}

fn install_handler() {
    // SAFETY: a zeroed sigaction is a valid starting value; the handler has the
    // SA_SIGINFO signature.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_fault as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGSEGV, &sa, ptr::null_mut());
    }
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &RECORDS {
        let r = slot.load(Ordering::Acquire);
        if r.is_null() {
            continue;
        }
        // SAFETY: a published record stays valid while its pages are protected (see
        // `unprotect`), which they are if they faulted.
        let rec = unsafe { &*r };
        if addr >= rec.start && addr < rec.end {
            let head = b"dma-debug guard: the CPU touched a buffer the device owns\n";
            // SAFETY: write(2) is async-signal-safe; the buffers are valid.
            unsafe {
                libc::write(2, head.as_ptr().cast(), head.len());
                libc::write(2, rec.msg.as_ptr().cast(), rec.msg.len());
            }
            break;
        }
    }
    // Die of the fault as if no handler were installed: restore the default action and
    // return, so the faulting access runs again and kills the process.
    // SAFETY: a zeroed sigaction with SIG_DFL is valid.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &sa, ptr::null_mut());
    }
}
