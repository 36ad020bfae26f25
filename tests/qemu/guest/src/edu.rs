//! A driver for QEMU's `edu` PCI device (QEMU's docs/specs/edu.rst): its DMA engine copies
//! between guest memory (by bus address) and a 4 KiB buffer inside the device.
//!
//! Registers are reached through [`Regs`], so the same driver runs on a sysfs `resource0`
//! mapping (no IOMMU) and on a VFIO BAR mapping.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// 32/64-bit register access to BAR0.
pub trait Regs {
    /// Reads the 32-bit register at `off`.
    fn read32(&self, off: usize) -> u32;
    /// Writes the 32-bit register at `off`.
    fn write32(&self, off: usize, v: u32);
    /// Reads the 64-bit register at `off`.
    fn read64(&self, off: usize) -> u64;
    /// Writes the 64-bit register at `off`.
    fn write64(&self, off: usize, v: u64);
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
impl Regs for dma_iommu::vfio::Bar {
    fn read32(&self, off: usize) -> u32 {
        dma_iommu::vfio::Bar::read32(self, off)
    }
    fn write32(&self, off: usize, v: u32) {
        dma_iommu::vfio::Bar::write32(self, off, v)
    }
    fn read64(&self, off: usize) -> u64 {
        dma_iommu::vfio::Bar::read64(self, off)
    }
    fn write64(&self, off: usize, v: u64) {
        dma_iommu::vfio::Bar::write64(self, off, v)
    }
}

const IDENT: usize = 0x00;
const LIVENESS: usize = 0x04;
const DMA_SRC: usize = 0x80;
const DMA_DST: usize = 0x88;
const DMA_COUNT: usize = 0x90;
const DMA_CMD: usize = 0x98;
const CMD_START: u64 = 1;
const CMD_TO_RAM: u64 = 2;

/// Device address of the DMA buffer inside the device.
pub const DEV_BUF: u64 = 0x40000;
/// The largest transfer: QEMU 7.2 aborts on one that ends exactly at the end of the 4 KiB
/// buffer (an off-by-one fixed upstream), so one byte less.
pub const MAX_TRANSFER: usize = 4095;
/// The device's default DMA mask: 28 bits. It clamps wider addresses silently.
pub const DEFAULT_DMA_BITS: u32 = 28;

static DMA_BITS: OnceLock<u32> = OnceLock::new();

/// Sets the width of the device's DMA mask (QEMU's `-device edu,dma_mask=...`), once,
/// before any check runs. On aarch64 `virt` RAM starts at 1 GiB, beyond the default mask.
pub fn set_dma_bits(bits: u32) -> Result<(), String> {
    if !(20..=64).contains(&bits) {
        return Err(format!("DMA mask of {bits} bits"));
    }
    DMA_BITS.set(bits).map_err(|_| "DMA mask set twice".to_string())
}

/// The width of the device's DMA mask.
pub fn dma_bits() -> u32 {
    *DMA_BITS.get().unwrap_or(&DEFAULT_DMA_BITS)
}

/// The first bus address beyond the device's mask.
pub fn dma_limit() -> u64 {
    1u64.checked_shl(dma_bits()).unwrap_or(u64::MAX)
}

/// A probed edu device.
#[derive(Debug)]
pub struct Edu<R: Regs> {
    regs: R,
    ident: u32,
}

impl<R: Regs> Edu<R> {
    /// Checks the identification and liveness registers.
    ///
    /// # Errors
    ///
    /// A description when the BAR does not behave like an edu device.
    pub fn probe(regs: R) -> Result<Edu<R>, String> {
        let ident = regs.read32(IDENT);
        if ident & 0xff != 0xed {
            return Err(format!("ident {ident:#x} is not an edu device"));
        }
        regs.write32(LIVENESS, 0x1234_5678);
        let back = regs.read32(LIVENESS);
        if back != !0x1234_5678 {
            return Err(format!("liveness register returned {back:#x}"));
        }
        Ok(Edu { regs, ident })
    }

    /// The identification register (`0x010000ed` for version 1.0).
    pub fn ident(&self) -> u32 {
        self.ident
    }

    /// Copies `len` bytes from guest memory at bus address `ram` into the device buffer at
    /// `off`, and waits.
    ///
    /// # Errors
    ///
    /// Bad arguments, or a transfer that does not finish in 5 s.
    pub fn ram_to_device(&self, ram: u64, off: u64, len: usize) -> Result<(), String> {
        self.run(ram, DEV_BUF + off, off, len, 0)
    }

    /// Copies `len` bytes from the device buffer at `off` to guest memory at bus address
    /// `ram`, and waits.
    ///
    /// # Errors
    ///
    /// As [`Edu::ram_to_device`].
    pub fn device_to_ram(&self, off: u64, ram: u64, len: usize) -> Result<(), String> {
        self.run(DEV_BUF + off, ram, off, len, CMD_TO_RAM)
    }

    fn run(&self, src: u64, dst: u64, off: u64, len: usize, dir: u64) -> Result<(), String> {
        if len == 0 || off as usize + len > MAX_TRANSFER {
            return Err(format!("transfer of {len} bytes at device offset {off:#x} is out of the buffer"));
        }
        self.wait()?;
        self.regs.write64(DMA_SRC, src);
        self.regs.write64(DMA_DST, dst);
        self.regs.write64(DMA_COUNT, len as u64);
        self.regs.write64(DMA_CMD, CMD_START | dir);
        self.wait()
    }

    /// Polls the command register until the engine is idle.
    fn wait(&self) -> Result<(), String> {
        let start = Instant::now();
        while self.regs.read64(DMA_CMD) & CMD_START != 0 {
            if start.elapsed() > Duration::from_secs(5) {
                return Err("DMA did not complete within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}
