//! Checks for a guest without an IOMMU: the device sees physical addresses, reaches only
//! those below its mask (28 bits unless QEMU was told otherwise), and clamps others silently.

use std::path::PathBuf;

use crate::edu::{Edu, MAX_TRANSFER, dma_limit};
use crate::mem::{Span, round_trip, verify};
use crate::pagemap::PinnedPage;
use crate::sysfs::{self, Resource};
use crate::{EDU_DEVICE, EDU_VENDOR, check};

/// Pages to try when gathering pages below the mask: on aarch64 the suite puts the CPU in a
/// small NUMA node above the mask, so the first few thousand pages lie above it.
const BELOW_TRIES: usize = 1 << 15;

/// Runs every check; true when all passed.
pub fn run() -> bool {
    let mut ok = true;
    let mut probed: Option<(PathBuf, Edu<Resource>)> = None;
    ok &= check("edu_probe", || {
        let dev = sysfs::find(EDU_VENDOR, EDU_DEVICE).map_err(|e| e.to_string())?;
        let bar = Resource::map(&dev, 0).map_err(|e| format!("resource0: {e}"))?;
        let edu = Edu::probe(bar)?;
        let driver = std::fs::read_link(dev.join("driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        let d =
            format!("{} ident={:#x} driver={}", dev.display(), edu.ident(), driver.unwrap_or_else(|| "none".into()));
        probed = Some((dev, edu));
        Ok(d)
    });
    let Some((dev, edu)) = probed else { return false };

    ok &= check("no_bus_master_no_dma", || {
        // Without bus mastering a transfer "completes" and nothing reaches memory: the
        // harness must see that as a failure, or a later pass proves nothing.
        sysfs::set_bus_master(&dev, false).map_err(|e| e.to_string())?;
        let mut p =
            PinnedPage::gather(1, BELOW_TRIES, |a| a + 4096 <= dma_limit()).map_err(|e| e.to_string())?.remove(0);
        p.bytes().fill(0x5a);
        edu.device_to_ram(0, p.phys(), MAX_TRANSFER)?;
        // SAFETY: the page is ours and the transfer is over.
        unsafe { verify(p.as_ptr(), 4096, |_| 0x5a) }.map_err(|e| format!("memory changed: {e}"))?;
        Ok(format!("phys={:#x} untouched", p.phys()))
    });
    ok &= check("bus_master", || {
        sysfs::set_bus_master(&dev, true).map_err(|e| e.to_string())?;
        Ok("command register bit 2 set through sysfs config".into())
    });
    ok &= check("raw_pagemap_roundtrip", || {
        // The harness on memory the library did not allocate: two locked pages below the
        // mask, found through pagemap.
        let pages = PinnedPage::gather(2, BELOW_TRIES, |a| a + 4096 <= dma_limit()).map_err(|e| e.to_string())?;
        // SAFETY: both pages are ours, below the mask, and owned by the CPU around the call.
        unsafe { round_trip(&edu, Span::from(&pages[0]), Span::from(&pages[1]), MAX_TRANSFER, 0x11)? };
        Ok(format!("src={:#x} dst={:#x} bytes={MAX_TRANSFER}", pages[0].phys(), pages[1].phys()))
    });
    ok &= crate::host::run(&edu);
    ok
}
