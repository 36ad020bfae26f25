//! The QEMU system suite's guest program: drives QEMU's `edu` DMA engine with memory and bus
//! addresses from this library, and prints one machine-readable line per check:
//!
//! ```text
//! RESULT <name> PASS|FAIL <detail>
//! ```
//!
//! `dma-qemu-guest noiommu` runs the checks for a guest without an IOMMU (sysfs BAR access,
//! physical addresses); `dma-qemu-guest iommu` those behind the emulated IOMMU (VT-d or
//! SMMUv3), through the VFIO backend of `dma-iommu`. A second argument gives the width of
//! the device's DMA mask when it is not edu's default 28 bits (`-device edu,dma_mask=...`:
//! aarch64 `virt` has no RAM below 1 GiB). `tests/qemu/run.sh` boots the guests and reads
//! the lines.

mod edu;
#[cfg(target_os = "linux")]
mod host;
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod iommu;
mod mem;
#[cfg(target_os = "linux")]
mod noiommu;
mod pagemap;
mod sysfs;
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod vfio_ops;

use std::panic::{AssertUnwindSafe, catch_unwind};

/// PCI ids of QEMU's edu device.
pub const EDU_VENDOR: u16 = 0x1234;
/// See [`EDU_VENDOR`].
pub const EDU_DEVICE: u16 = 0x11e8;

/// Runs one check and prints its result line; a panic is a failure.
pub fn check(name: &str, f: impl FnOnce() -> Result<String, String>) -> bool {
    let r = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|e| {
        let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
        Err(format!("panicked: {}", msg.unwrap_or_default()))
    });
    let (verdict, detail) = match &r {
        Ok(d) => ("PASS", d),
        Err(d) => ("FAIL", d),
    };
    println!("RESULT {name} {verdict} {}", detail.replace('\n', " "));
    r.is_ok()
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    // The device's DMA mask when QEMU was given `-device edu,dma_mask=...`.
    if let Some(bits) = std::env::args().nth(2) {
        if let Err(e) = bits.parse().map_err(|e| format!("{bits}: {e}")).and_then(edu::set_dma_bits) {
            eprintln!("dma-qemu-guest: bad DMA mask width: {e}");
            std::process::exit(2);
        }
    }
    let ok = match mode.as_str() {
        #[cfg(target_os = "linux")]
        "noiommu" => noiommu::run(),
        #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
        "iommu" => iommu::run(),
        _ => {
            eprintln!("usage: dma-qemu-guest noiommu|iommu [DMA_MASK_BITS]");
            std::process::exit(2);
        }
    };
    std::process::exit(if ok { 0 } else { 1 });
}
