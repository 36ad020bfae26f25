//! riscv64 (Linux): Zicbom `cbo.clean` / `cbo.flush`, then one `fence rw,rw`, when this
//! process may execute them; otherwise a fence only.
//!
//! Mirrors arch/riscv/mm/dma-noncoherent.c (`ALT_CMO_OP`) and arch/riscv/include/asm/barrier.h.
//!
//! Whether U-mode may run `cbo.*` is the kernel's choice (`senvcfg.CBCFE`/`CBIE`), not just the
//! hardware's. Linux 6.15 enables `cbo.clean`/`cbo.flush` for user mode and, in the same
//! series, reports Zicbom through `riscv_hwprobe` (`RISCV_HWPROBE_KEY_IMA_EXT_0` bit 55) with
//! its block size (`RISCV_HWPROBE_KEY_ZICBOM_BLOCK_SIZE` = 12). `cbo.inval` stays disabled in
//! user mode (it would expose other processes' stale data), so [`invalidate`] uses
//! `cbo.flush`, as arm64 uses `dc civac`.
//!
//! Detection, robust against both old kernels and emulators:
//! 1. hwprobe says Zicbom: trust it; the kernel only says so after enabling it for user mode.
//! 2. Otherwise (older kernel, `ENOSYS`, or qemu-user, whose hwprobe may omit Zicbom while
//!    executing `cbo.*` fine): execute one `cbo.clean` under a temporary SIGILL handler. If it
//!    traps, the handler skips it and we fall back to fences; if not, Zicbom works here.
//!
//! The block size comes from hwprobe, else the device tree (`riscv,cbom-block-size` of cpu0 in
//! sysfs), else 64. Encodings (checked against the CMO spec and with objdump): MISC-MEM opcode
//! 0x0f, funct3 010, rd 0, imm 0/1/2 = inval/clean/flush, so `cbo.clean (a0)` = 0x0015200f.
//!
//! # Safety
//!
//! Unsafe code here is inline asm, one raw syscall and a short-lived SIGILL handler (see
//! [`sys`]). `cbo.clean` and `cbo.flush` write back a block's own data and never discard dirty
//! data; they fault like a load on an unmapped address, which is why the block walkers require
//! a mapped, readable range. Fences touch no memory.

#![allow(unsafe_code)]

use core::arch::asm;

use crate::caps::{CachePath, Capabilities};
use crate::lines::{FALLBACK_LINE_SIZE, for_each_line, sanitize_line_size};

/// arch/riscv/include/asm/cache.h: `L1_CACHE_BYTES` for non-coherent DMA.
pub(crate) const ARCH_DMA_MINALIGN: usize = 64;

/// What the kernel and CPU allow, decided once by [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Detected {
    /// The public answer: `RiscvZicbom` or `FenceOnly`.
    pub(crate) caps: Capabilities,
}

/// Picks the path from what the kernel reported and what the probe observed. `probe` only
/// runs when hwprobe did not confirm Zicbom.
fn select(hw: sys::Hwprobe, probe: impl FnOnce() -> bool, dt_block_size: impl FnOnce() -> Option<u64>) -> Detected {
    let usable = hw.zicbom || probe();
    if !usable {
        let caps = Capabilities { path: CachePath::FenceOnly, line_size: FALLBACK_LINE_SIZE };
        return Detected { caps };
    }
    let line_size = hw.block_size.or_else(dt_block_size).map_or(FALLBACK_LINE_SIZE, sanitize_line_size);
    Detected { caps: Capabilities { path: CachePath::RiscvZicbom, line_size } }
}

/// Asks the kernel, then probes if needed.
pub(crate) fn detect() -> Detected {
    select(sys::hwprobe(), || !sys::traps(probe_cbo_clean), sys::dt_cbom_block_size)
}

/// Executes `cbo.clean` on the line holding `line`, recording its address for the SIGILL
/// handler first.
///
/// # Safety
///
/// `line` must lie in a mapped, readable page, and [`sys::traps`] must be the caller (its
/// handler skips the instruction if it traps).
unsafe fn probe_cbo_clean(line: *const u8) {
    // SAFETY: `lla`/`sd` store the address of label 2 into `sys::PROBE_PC`, which only this
    // thread writes while it holds the probe lock; `cbo.clean` writes back a mapped line's own
    // data or traps into the handler, which resumes after it.
    unsafe {
        asm!(
            "lla {pc}, 2f",
            "sd {pc}, 0({slot})",
            ".option push",
            ".option arch, +zicbom",
            "2: cbo.clean ({line})",
            ".option pop",
            pc = out(reg) _,
            slot = in(reg) sys::PROBE_PC.as_ptr(),
            line = in(reg) line,
            options(nostack),
        );
    }
}

/// # Safety
///
/// `line` must lie in a mapped, readable page, and Zicbom must be usable (see [`detect`]).
#[inline]
unsafe fn cbo_clean(line: *const u8) {
    // SAFETY: CBO.CLEAN writes a block of a mapped page back to memory with its own data.
    unsafe {
        asm!(
            ".option push",
            ".option arch, +zicbom",
            "cbo.clean ({0})",
            ".option pop",
            in(reg) line,
            options(nostack, preserves_flags),
        );
    }
}

/// # Safety
///
/// `line` must lie in a mapped, readable page, and Zicbom must be usable (see [`detect`]).
#[inline]
unsafe fn cbo_flush(line: *const u8) {
    // SAFETY: CBO.FLUSH writes a block of a mapped page back, then drops it; nothing is lost.
    unsafe {
        asm!(
            ".option push",
            ".option arch, +zicbom",
            "cbo.flush ({0})",
            ".option pop",
            in(reg) line,
            options(nostack, preserves_flags),
        );
    }
}

/// Orders the preceding `cbo.*` (which the CMO spec orders like stores) before later memory
/// accesses. Not `nomem`: the compiler must not move accesses across it.
#[inline]
fn fence_rw_rw() {
    // SAFETY: FENCE has no memory operand; it only orders accesses.
    unsafe { asm!("fence rw, rw", options(nostack, preserves_flags)) }
}

#[inline]
fn fence_iorw_iorw() {
    // SAFETY: FENCE has no memory operand; it only orders accesses.
    unsafe { asm!("fence iorw, iorw", options(nostack, preserves_flags)) }
}

#[inline]
fn fence_w_w() {
    // SAFETY: FENCE has no memory operand; it only orders accesses.
    unsafe { asm!("fence w, w", options(nostack, preserves_flags)) }
}

#[inline]
fn fence_r_r() {
    // SAFETY: FENCE has no memory operand; it only orders accesses.
    unsafe { asm!("fence r, r", options(nostack, preserves_flags)) }
}

/// # Safety
///
/// `[addr, addr + len)` must be mapped and readable; `d` must come from [`detect`].
#[inline]
pub(crate) unsafe fn clean(d: &Detected, addr: *const u8, len: usize) {
    if d.caps.path == CachePath::RiscvZicbom {
        // SAFETY: each block overlaps the caller's range and blocks never cross a page
        // (size ≤ 2048), so each is in a mapped, readable page; `d` says Zicbom is usable.
        for_each_line(addr, len, d.caps.line_size, |p| unsafe { cbo_clean(p) });
        fence_rw_rw();
    } else {
        fence_iorw_iorw();
    }
}

/// # Safety
///
/// As [`clean`]. Nothing is lost: `cbo.inval` is not enabled for user mode, so this flushes.
#[inline]
pub(crate) unsafe fn invalidate(d: &Detected, addr: *const u8, len: usize) {
    // SAFETY: forwarded contract.
    unsafe { clean_invalidate(d, addr, len) }
}

/// # Safety
///
/// As [`clean`].
#[inline]
pub(crate) unsafe fn clean_invalidate(d: &Detected, addr: *const u8, len: usize) {
    if d.caps.path == CachePath::RiscvZicbom {
        // SAFETY: as in `clean`.
        for_each_line(addr, len, d.caps.line_size, |p| unsafe { cbo_flush(p) });
        fence_rw_rw();
    } else {
        fence_iorw_iorw();
    }
}

#[inline]
pub(crate) fn mb() {
    fence_iorw_iorw();
}

#[inline]
pub(crate) fn dma_wmb() {
    fence_w_w();
}

#[inline]
pub(crate) fn dma_rmb() {
    fence_r_r();
}

/// The syscall-facing part: `riscv_hwprobe`, the device tree in sysfs, and the SIGILL probe.
mod sys {
    use core::cell::UnsafeCell;
    use core::mem::MaybeUninit;
    use core::ptr;
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Mutex, PoisonError};

    /// `__NR_riscv_hwprobe` (asm-generic `__NR_arch_specific_syscall` + 14).
    const NR_RISCV_HWPROBE: libc::c_long = 258;
    const KEY_IMA_EXT_0: i64 = 4;
    const IMA_EXT_0_ZICBOM: u64 = 1 << 55;
    const KEY_ZICBOM_BLOCK_SIZE: i64 = 12;
    /// What the kernel writes into `key` when it does not know it.
    const KEY_UNKNOWN: i64 = -1;

    /// `struct riscv_hwprobe` from the uapi header.
    #[repr(C)]
    struct Pair {
        key: i64,
        value: u64,
    }

    /// What `riscv_hwprobe` said; all `false`/`None` when the syscall or a key is unknown.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub(super) struct Hwprobe {
        pub(super) zicbom: bool,
        pub(super) block_size: Option<u64>,
    }

    pub(super) fn hwprobe() -> Hwprobe {
        let mut pairs = [Pair { key: KEY_IMA_EXT_0, value: 0 }, Pair { key: KEY_ZICBOM_BLOCK_SIZE, value: 0 }];
        // SAFETY: `pairs` is a live, writable array of `pairs.len()` `struct riscv_hwprobe`;
        // a zero cpusetsize with a null set means "all online CPUs"; flags must be 0.
        let rc = unsafe {
            libc::syscall(
                NR_RISCV_HWPROBE,
                pairs.as_mut_ptr(),
                pairs.len(),
                0usize,
                ptr::null_mut::<libc::c_void>(),
                0 as libc::c_uint,
            )
        };
        if rc != 0 {
            return Hwprobe::default();
        }
        let [ext, block] = pairs;
        Hwprobe {
            zicbom: ext.key != KEY_UNKNOWN && ext.value & IMA_EXT_0_ZICBOM != 0,
            block_size: (block.key != KEY_UNKNOWN && block.value != 0).then_some(block.value),
        }
    }

    /// cpu0's `riscv,cbom-block-size` device tree property: one big-endian u32.
    pub(super) fn dt_cbom_block_size() -> Option<u64> {
        let raw = std::fs::read("/sys/devices/system/cpu/cpu0/of_node/riscv,cbom-block-size").ok()?;
        let word: [u8; 4] = raw.get(..4)?.try_into().ok()?;
        Some(u32::from_be_bytes(word).into())
    }

    /// Address of the probed instruction while a probe runs, else 0. Written by the probe asm.
    pub(super) static PROBE_PC: AtomicUsize = AtomicUsize::new(0);
    /// Set by the handler when the probed instruction trapped.
    static TRAPPED: AtomicBool = AtomicBool::new(false);
    /// One probe at a time: it swaps a process-wide signal disposition.
    static PROBE_LOCK: Mutex<()> = Mutex::new(());

    /// The SIGILL disposition in force before the probe, for the handler to put back.
    struct Previous(UnsafeCell<MaybeUninit<libc::sigaction>>);
    // SAFETY: written only under `PROBE_LOCK` before our handler is installed, read by the
    // handler while it is installed (the `sigaction` syscall orders the two), never otherwise.
    unsafe impl Sync for Previous {}
    static PREVIOUS: Previous = Previous(UnsafeCell::new(MaybeUninit::uninit()));

    /// glibc `REG_PC`: `__gregs[0]` holds the faulting pc.
    const REG_PC: usize = 0;

    extern "C" fn on_sigill(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        let uc = ctx.cast::<libc::ucontext_t>();
        // SAFETY: for an SA_SIGINFO handler the kernel passes the interrupted context as a
        // valid, writable `ucontext_t`; only this handler touches it.
        let pc = unsafe { &mut (*uc).uc_mcontext.__gregs[REG_PC] };
        let probe = PROBE_PC.load(Ordering::Relaxed);
        if probe != 0 && *pc as usize == probe {
            // Our 4-byte `cbo.clean`: resume after it.
            *pc += 4;
            TRAPPED.store(true, Ordering::Relaxed);
        } else {
            // Not ours (another thread, during the few instructions of the probe): restore the
            // previous disposition and return, so the instruction re-executes and faults
            // under it as if we had never been here.
            // SAFETY: `PREVIOUS` was initialized before this handler was installed;
            // `sigaction` is async-signal-safe.
            unsafe { libc::sigaction(libc::SIGILL, (*PREVIOUS.0.get()).as_ptr(), ptr::null_mut()) };
        }
    }

    /// Runs `insn` (a probe that records its pc in [`PROBE_PC`]) on a line of our stack under
    /// a temporary SIGILL handler and reports whether it trapped. Restores the previous
    /// disposition and signal mask. If the handler cannot be installed, reports a trap, which
    /// selects the safe fence-only path.
    pub(super) fn traps(insn: unsafe fn(*const u8)) -> bool {
        let _guard = PROBE_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let target = [0u8; 64];
        // SAFETY: plain libc calls on local, initialized structures. SIGILL is unblocked for
        // the probe because a synchronous SIGILL while blocked kills the process.
        unsafe {
            let mut ours: libc::sigaction = core::mem::zeroed();
            ours.sa_sigaction = on_sigill as *const () as libc::sighandler_t;
            ours.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut ours.sa_mask);
            let mut ill: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut ill);
            libc::sigaddset(&mut ill, libc::SIGILL);
            let mut old_mask: libc::sigset_t = core::mem::zeroed();
            if libc::pthread_sigmask(libc::SIG_UNBLOCK, &ill, &mut old_mask) != 0 {
                return true;
            }
            let previous = (*PREVIOUS.0.get()).as_mut_ptr();
            if libc::sigaction(libc::SIGILL, &ours, previous) != 0 {
                libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, ptr::null_mut());
                return true;
            }
            TRAPPED.store(false, Ordering::Relaxed);
            insn(target.as_ptr());
            PROBE_PC.store(0, Ordering::Relaxed);
            libc::sigaction(libc::SIGILL, previous, ptr::null_mut());
            libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, ptr::null_mut());
        }
        TRAPPED.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(super) fn current_sigill_handler() -> libc::sighandler_t {
        let _guard = PROBE_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: querying the disposition writes only into `now`.
        unsafe {
            let mut now: libc::sigaction = core::mem::zeroed();
            libc::sigaction(libc::SIGILL, ptr::null(), &mut now);
            now.sa_sigaction
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records its pc, then executes `csrrw x0, cycle, x0`: a write to a read-only CSR, which
    /// is an illegal instruction everywhere.
    ///
    /// # Safety
    ///
    /// Only under `sys::traps`.
    unsafe fn probe_always_illegal(_line: *const u8) {
        // SAFETY: as in `probe_cbo_clean`; the instruction always traps into the handler.
        unsafe {
            asm!(
                "lla {pc}, 2f",
                "sd {pc}, 0({slot})",
                "2: .4byte 0xc0001073",
                pc = out(reg) _,
                slot = in(reg) sys::PROBE_PC.as_ptr(),
                options(nostack),
            );
        }
    }

    #[test]
    fn the_sigill_probe_catches_a_trap_and_restores_the_handler() {
        let before = sys::current_sigill_handler();
        assert!(sys::traps(probe_always_illegal));
        assert!(sys::traps(probe_always_illegal), "works twice");
        assert_eq!(sys::current_sigill_handler(), before);
    }

    #[test]
    fn detection_agrees_with_hwprobe_and_the_probe() {
        let hw = sys::hwprobe();
        let cbo_works = !sys::traps(probe_cbo_clean);
        let d = detect();
        assert_eq!(crate::capabilities(), d.caps);
        eprintln!("hwprobe {hw:?}, cbo.clean executes: {cbo_works}, detected {:?}", d.caps);
        if hw.zicbom || cbo_works {
            assert_eq!(d.caps.path, CachePath::RiscvZicbom);
        } else {
            assert_eq!(d.caps.path, CachePath::FenceOnly);
        }
        if hw.zicbom {
            assert!(cbo_works, "the kernel reports Zicbom but cbo.clean traps");
        }
    }

    #[test]
    fn select_trusts_hwprobe_then_probes() {
        let yes = sys::Hwprobe { zicbom: true, block_size: Some(64) };
        let d = select(yes, || panic!("no probe needed"), || None);
        assert_eq!(d.caps, Capabilities { path: CachePath::RiscvZicbom, line_size: 64 });

        let silent = sys::Hwprobe::default();
        assert_eq!(select(silent, || false, || Some(32)).caps.path, CachePath::FenceOnly);
        let probed = select(silent, || true, || Some(32)).caps;
        assert_eq!(probed, Capabilities { path: CachePath::RiscvZicbom, line_size: 32 });
        assert_eq!(select(silent, || true, || None).caps.line_size, 64);
        assert_eq!(select(silent, || true, || Some(3)).caps.line_size, 64, "garbage");
    }

    #[test]
    fn maintenance_keeps_data_on_the_detected_path() {
        let d = detect();
        let line = d.caps.line_size;
        let mut buf: Vec<u8> = (0..70 * line + 9).map(|i| (i % 253) as u8).collect();
        let want = buf.clone();
        for (off, len) in [(0, buf.len()), (0, 0), (1, 1), (5, line), (line - 1, 2)] {
            let p = buf[off..].as_ptr();
            // SAFETY: `[p, p + len)` lies inside `buf`; `d` comes from `detect`.
            unsafe {
                clean(&d, p, len);
                clean_invalidate(&d, p, len);
                invalidate(&d, p, len);
            }
            assert_eq!(buf, want);
        }
        buf.iter_mut().for_each(|b| *b = !*b);
        // SAFETY: as above.
        unsafe { clean_invalidate(&d, buf.as_ptr(), buf.len()) };
        assert!(buf.iter().zip(&want).all(|(a, b)| *a == !*b));
    }

    #[test]
    fn barriers_run() {
        mb();
        dma_wmb();
        dma_rmb();
        fence_rw_rw();
    }
}
