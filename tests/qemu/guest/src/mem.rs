//! The seam between the checks and where DMA memory comes from: raw pagemap pages, the
//! library's buffers, or VFIO mappings all describe themselves as CPU address, bus address
//! and length, and the round trip below moves bytes through any of them.

use crate::edu::{Edu, MAX_TRANSFER, Regs};

/// Memory the device can reach.
pub trait DmaMemory {
    /// The CPU address of the first byte.
    fn cpu(&self) -> *mut u8;
    /// The bus address the device uses for the first byte.
    fn bus(&self) -> u64;
    /// Length in bytes.
    fn len(&self) -> usize;
}

impl DmaMemory for crate::pagemap::PinnedPage {
    fn cpu(&self) -> *mut u8 {
        self.as_ptr()
    }
    fn bus(&self) -> u64 {
        self.phys()
    }
    fn len(&self) -> usize {
        crate::pagemap::PAGE
    }
}

/// A byte range inside some memory: CPU address, bus address, length.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    /// CPU address.
    pub cpu: *mut u8,
    /// Bus address.
    pub bus: u64,
    /// Length.
    pub len: usize,
}

impl<M: DmaMemory + ?Sized> From<&M> for Span {
    fn from(m: &M) -> Span {
        Span { cpu: m.cpu(), bus: m.bus(), len: m.len() }
    }
}

/// The test pattern: position- and seed-dependent, never all one value.
pub fn pattern(seed: u8, i: usize) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8
}

/// Writes `len` bytes of `f(i)` at `cpu`.
///
/// # Safety
///
/// `[cpu, cpu + len)` must be writable memory the device does not own right now.
pub unsafe fn fill(cpu: *mut u8, len: usize, f: impl Fn(usize) -> u8) {
    for i in 0..len {
        // SAFETY: inside the range the caller vouches for.
        unsafe { cpu.add(i).write_volatile(f(i)) };
    }
}

/// Compares `len` bytes at `cpu` with `f(i)`; describes the first difference.
///
/// # Safety
///
/// `[cpu, cpu + len)` must be readable memory the device does not own right now.
pub unsafe fn verify(cpu: *const u8, len: usize, f: impl Fn(usize) -> u8) -> Result<(), String> {
    let mut bad = 0usize;
    let mut first = None;
    for i in 0..len {
        // SAFETY: inside the range the caller vouches for; volatile, since the device wrote it.
        let got = unsafe { cpu.add(i).read_volatile() };
        if got != f(i) {
            bad += 1;
            first.get_or_insert((i, got, f(i)));
        }
    }
    match first {
        None => Ok(()),
        Some((i, got, want)) => Err(format!("{bad} of {len} bytes differ, first at {i}: {got:#04x} != {want:#04x}")),
    }
}

/// Fills `src` with a pattern and `dst` with its complement, moves `len` bytes RAM -> device
/// -> RAM, and checks every byte of `dst` (and that nothing past `len` changed).
///
/// # Safety
///
/// Both spans must be memory the device may access at those bus addresses, owned by the CPU
/// around the call (the caller does the syncs a non-coherent buffer needs).
pub unsafe fn round_trip<R: Regs>(edu: &Edu<R>, src: Span, dst: Span, len: usize, seed: u8) -> Result<(), String> {
    if len > MAX_TRANSFER || len > src.len || len > dst.len {
        return Err(format!("round trip of {len} bytes does not fit"));
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        fill(src.cpu, src.len, |i| pattern(seed, i));
        fill(dst.cpu, dst.len, |i| !pattern(seed, i));
    }
    edu.ram_to_device(src.bus, 0, len)?;
    edu.device_to_ram(0, dst.bus, len)?;
    // SAFETY: as above.
    unsafe {
        verify(dst.cpu, len, |i| pattern(seed, i)).map_err(|e| format!("device -> RAM: {e}"))?;
        verify(dst.cpu.add(len), dst.len - len, |i| !pattern(seed, i + len))
            .map_err(|e| format!("bytes past the transfer changed: {e}"))?;
    }
    Ok(())
}
