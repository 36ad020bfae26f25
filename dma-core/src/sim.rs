//! The simulated bus master: a device's side of DMA, for tests, the demo and users'
//! own device models.
//!
//! It reads and writes by bus address through the device's translation (range map, or
//! the ops' page table), refuses anything outside the device's mask (an error, never a
//! silent wrap), and sees memory as the device would: a non-coherent device sees only
//! the memory view (so a missing clean shows as stale data), a coherent one snoops the
//! cached view and its writes reach both views. Every refused access is recorded.
//!
//! # Safety
//!
//! Accesses go through pointers the platform returns for a bounds-checked physical
//! range of its own RAM. They are plain copies: like real DMA, they race with a CPU that
//! touches the same memory while the device owns it, and that is the driver's bug.

use std::sync::{Arc, Mutex};

use crate::addr::{DmaAddr, PhysAddr};
use crate::device::Device;
use crate::ops::FaultKind;

/// A refused device access.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fault {
    /// The bus address of the access.
    pub addr: DmaAddr,
    /// Its length.
    pub len: usize,
    /// True for a device write.
    pub write: bool,
    /// Why it was refused.
    pub kind: FaultKind,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DMA {} of {} bytes at {} refused: {:?}",
            if self.write { "write" } else { "read" },
            self.len,
            self.addr,
            self.kind
        )
    }
}

impl std::error::Error for Fault {}

/// The device side of DMA for one [`Device`].
#[derive(Debug)]
pub struct BusMaster {
    dev: Arc<Device>,
    faults: Mutex<Vec<Fault>>,
}

impl BusMaster {
    /// A bus master acting as `dev`.
    pub fn new(dev: &Arc<Device>) -> BusMaster {
        BusMaster { dev: Arc::clone(dev), faults: Mutex::new(Vec::new()) }
    }

    /// The device it acts as.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// Faults recorded so far.
    pub fn faults(&self) -> Vec<Fault> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn translate(&self, addr: DmaAddr, len: usize, write: bool) -> Result<PhysAddr, Fault> {
        let fault = |kind| Fault { addr, len, write, kind };
        if len == 0 || !Device::capable(addr, len, self.dev.map_limit()) {
            return Err(fault(FaultKind::OutsideMask));
        }
        let phys = match &self.dev.ops {
            Some(ops) => ops.translate(&self.dev, addr, len, write).map_err(fault)?,
            None => {
                // The whole range must sit in one window (or translate 1:1).
                let last = DmaAddr(addr.0 + len as u64 - 1);
                match (self.dev.dma_to_phys(addr), self.dev.dma_to_phys(last)) {
                    (Some(p), Some(q)) if q.0 - p.0 == len as u64 - 1 => p,
                    _ => return Err(fault(FaultKind::NotMapped)),
                }
            }
        };
        if !self.dev.system().ram().is_ram(phys, len) {
            return Err(fault(FaultKind::NotRam));
        }
        Ok(phys)
    }

    fn record<T>(&self, r: Result<T, Fault>) -> Result<T, Fault> {
        if let Err(f) = &r {
            self.faults.lock().unwrap_or_else(|e| e.into_inner()).push(*f);
        }
        r
    }

    /// Translates every piece of `[addr, addr + len)`: one piece on the direct path, one
    /// per IOMMU page (4 KiB of bus address) through ops, whose pages need not be
    /// physically adjacent. All pieces are checked before any byte moves.
    fn translate_all(&self, addr: DmaAddr, len: usize, write: bool) -> Result<Vec<(PhysAddr, usize)>, Fault> {
        if self.dev.ops.is_none() || len == 0 {
            return self.record(self.translate(addr, len, write)).map(|p| vec![(p, len)]);
        }
        if !Device::capable(addr, len, self.dev.map_limit()) {
            return self.record(Err(Fault { addr, len, write, kind: FaultKind::OutsideMask }));
        }
        let mut pieces = Vec::new();
        let (mut at, end) = (addr.0, addr.0 + len as u64);
        while at < end {
            let n = ((crate::PAGE_SIZE as u64 - (at & (crate::PAGE_SIZE as u64 - 1))).min(end - at)) as usize;
            let phys = self.record(self.translate(DmaAddr(at), n, write).map_err(|f| Fault { addr, len, ..f }))?;
            pieces.push((phys, n));
            at += n as u64;
        }
        Ok(pieces)
    }

    /// Device read of `buf.len()` bytes at bus address `addr`.
    ///
    /// # Errors
    ///
    /// The [`Fault`] (also recorded) when the device may not read there.
    pub fn read(&self, addr: DmaAddr, buf: &mut [u8]) -> Result<(), Fault> {
        let pieces = self.translate_all(addr, buf.len(), false)?;
        let ram = self.dev.system().ram();
        let mut done = 0;
        for (phys, n) in pieces {
            let (dma, out) = (DmaAddr(addr.0 + done as u64), &mut buf[done..done + n]);
            self.debug_access(dma, phys, n, false);
            if self.dev.is_coherent() {
                // Snooping reads see the CPU's cache. Through the file, so guard mode's
                // protected CPU pages do not get in the way.
                ram.read_cached(phys, out);
            } else {
                ram.device_read(phys, out);
            }
            done += n;
        }
        Ok(())
    }

    /// Device write of `data` at bus address `addr`.
    ///
    /// # Errors
    ///
    /// The [`Fault`] (also recorded) when the device may not write there; memory is not
    /// touched.
    pub fn write(&self, addr: DmaAddr, data: &[u8]) -> Result<(), Fault> {
        let pieces = self.translate_all(addr, data.len(), true)?;
        let ram = self.dev.system().ram();
        let mut done = 0;
        for (phys, n) in pieces {
            let (dma, src) = (DmaAddr(addr.0 + done as u64), &data[done..done + n]);
            self.debug_access(dma, phys, n, true);
            ram.device_write(phys, src);
            if self.dev.is_coherent() {
                // A snooping write updates the CPU's cached copy too.
                ram.write_cached(phys, src);
            }
            done += n;
        }
        Ok(())
    }

    /// Tells dma-debug (when on) about a non-coherent device's access.
    fn debug_access(&self, addr: DmaAddr, phys: crate::PhysAddr, len: usize, write: bool) {
        let Some(d) = self.dev.system().debug() else { return };
        if self.dev.is_coherent() {
            return;
        }
        let call = self.dev.debug_call(
            addr,
            len,
            crate::Direction::Bidirectional,
            crate::debug::EntryKind::Single,
            0,
            0,
            std::panic::Location::caller(),
        );
        let ram = self.dev.system().ram();
        d.device_access(self.dev.name(), &call, write, |dma, n| {
            ram.first_dirty_line(phys, n).map(|line| dma.wrapping_add(line.wrapping_sub(phys.0)))
        });
    }

    /// Device fill of `len` bytes with `byte` at `addr`.
    ///
    /// # Errors
    ///
    /// As [`BusMaster::write`].
    pub fn fill(&self, addr: DmaAddr, byte: u8, len: usize) -> Result<(), Fault> {
        self.write(addr, &vec![byte; len])
    }

    /// Device-to-device copy inside memory (a DMA engine's memcpy).
    ///
    /// # Errors
    ///
    /// The first [`Fault`] of the read or the write.
    pub fn copy(&self, src: DmaAddr, dst: DmaAddr, len: usize) -> Result<(), Fault> {
        let mut tmp = vec![0u8; len];
        self.read(src, &mut tmp)?;
        self.write(dst, &tmp)
    }
}
