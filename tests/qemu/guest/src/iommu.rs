//! Checks behind an emulated IOMMU (Intel VT-d on x86_64, SMMUv3 on aarch64): the edu device
//! bound to vfio-pci, reached through the VFIO backend of `dma-iommu`. IOVAs lie below the
//! device's mask (28 bits) while the memory lies anywhere; scattered pages are one IOVA
//! range; an unmapped IOVA faults, and the kernel reports it.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dma_core::{Direction, DmaAddr, DmaMask};
use dma_iommu::vfio::{Bar, PciAddress, VfioDevice};

use crate::edu::{Edu, MAX_TRANSFER, dma_bits, dma_limit};
use crate::mem::{Span, fill, pattern, round_trip, verify};
use crate::pagemap::{PAGE, PinnedPage};
use crate::{EDU_DEVICE, EDU_VENDOR, check, sysfs};

fn mask() -> DmaMask {
    DmaMask::bits(dma_bits())
}

fn iova_ok(dma: DmaAddr, len: usize) -> Result<(), String> {
    if dma.0 + len as u64 > dma_limit() {
        return Err(format!("IOVA {dma} + {len} is beyond the {}-bit mask", dma_bits()));
    }
    Ok(())
}

/// Pages above the device's mask: only the IOMMU lets it reach them.
fn high_pages(n: usize) -> Result<Vec<PinnedPage>, String> {
    PinnedPage::gather(n, 1 << 16, |a| a >= dma_limit()).map_err(|e| e.to_string())
}

/// Runs every check; true when all passed.
pub fn run() -> bool {
    let mut opened: Option<(Arc<VfioDevice>, Edu<Bar>)> = None;
    let mut ok = check("vfio_open", || {
        let path = sysfs::find(EDU_VENDOR, EDU_DEVICE).map_err(|e| e.to_string())?;
        let name = path.file_name().and_then(|n| n.to_str()).ok_or("bad sysfs path")?;
        let addr: PciAddress = name.parse().map_err(|e| format!("{name}: {e}"))?;
        let dev = VfioDevice::open(addr).map_err(|e| format!("VfioDevice::open({addr}): {e}"))?;
        dev.set_bus_master().map_err(|e| format!("bus master: {e}"))?;
        let bar = dev.map_bar(0).map_err(|e| format!("BAR0: {e}"))?;
        let edu = Edu::probe(bar)?;
        let d = format!(
            "{addr} group={} ranges={:x?} pgsizes={:#x} ident={:#x}",
            dev.group_id(),
            dev.iova_ranges(),
            dev.page_sizes(),
            edu.ident()
        );
        opened = Some((Arc::new(dev), edu));
        Ok(d)
    });
    let Some((dev, edu)) = opened else { return false };

    ok &= check("vfio_roundtrip", || {
        let pages = high_pages(2)?;
        // SAFETY: the pages stay mapped until unmapped below; the CPU writes them only
        // before the transfers and reads them after.
        let src =
            unsafe { dev.map_dma(pages[0].as_ptr(), PAGE, Direction::ToDevice, mask()) }.map_err(|e| e.to_string())?;
        // SAFETY: as above.
        let dst = unsafe { dev.map_dma(pages[1].as_ptr(), PAGE, Direction::FromDevice, mask()) }
            .map_err(|e| e.to_string())?;
        let r = iova_ok(src, PAGE).and_then(|()| iova_ok(dst, PAGE)).and_then(|()| {
            let s = Span { cpu: pages[0].as_ptr(), bus: src.0, len: PAGE };
            let d = Span { cpu: pages[1].as_ptr(), bus: dst.0, len: PAGE };
            // SAFETY: both pages are mapped for the device at those IOVAs.
            unsafe { round_trip(&edu, s, d, MAX_TRANSFER, 0x51) }
        });
        let u = dev.unmap_dma(src).and(dev.unmap_dma(dst)).map_err(|e| format!("unmap: {e}"));
        r?;
        u?;
        Ok(format!(
            "phys {:#x} -> iova {src}, phys {:#x} -> iova {dst}, bytes={MAX_TRANSFER}",
            pages[0].phys(),
            pages[1].phys()
        ))
    });

    ok &= check("vfio_noncontiguous", || {
        // Two buffers of two scattered pages each, each one IOVA range; one transfer each
        // way crosses the page boundary in the middle of the range.
        // Every other page of eight, highest first: no two neighbours in a range are
        // physically adjacent in either order.
        let mut pages = high_pages(8)?;
        pages.sort_by_key(|p| std::cmp::Reverse(p.phys()));
        let pages: Vec<PinnedPage> = pages.into_iter().step_by(2).collect();
        let adjacent = |a: &PinnedPage, b: &PinnedPage| a.phys().abs_diff(b.phys()) == PAGE as u64;
        if adjacent(&pages[0], &pages[1]) || adjacent(&pages[2], &pages[3]) {
            return Err("pages happen to be physically adjacent".into());
        }
        let pieces = |a: &PinnedPage, b: &PinnedPage| [(a.as_ptr() as usize, PAGE), (b.as_ptr() as usize, PAGE)];
        // SAFETY: the pages stay mapped until unmapped below; the CPU touches them only
        // before and after the transfers.
        let src = unsafe { dev.map_dma_scattered(&pieces(&pages[0], &pages[1]), Direction::ToDevice, mask()) }
            .map_err(|e| e.to_string())?;
        // SAFETY: as above.
        let dst = unsafe { dev.map_dma_scattered(&pieces(&pages[2], &pages[3]), Direction::FromDevice, mask()) }
            .map_err(|e| e.to_string())?;
        let off = PAGE / 2;
        let at = |i: usize| off + i; // byte i of the transfer, within the two-page range
        let page_of = |pages: &[PinnedPage], x: usize| pages[x / PAGE].as_ptr().wrapping_add(x % PAGE);
        let r = (|| {
            iova_ok(src, 2 * PAGE)?;
            iova_ok(dst, 2 * PAGE)?;
            // SAFETY: the CPU owns the pages before the transfers.
            unsafe {
                for p in &pages {
                    fill(p.as_ptr(), PAGE, |_| 0);
                }
                for i in 0..MAX_TRANSFER {
                    page_of(&pages[..2], at(i)).write_volatile(pattern(0x61, i));
                }
            }
            edu.ram_to_device(src.0 + off as u64, 0, MAX_TRANSFER)?;
            edu.device_to_ram(0, dst.0 + off as u64, MAX_TRANSFER)?;
            for i in 0..MAX_TRANSFER {
                // SAFETY: the transfers are over.
                let got = unsafe { page_of(&pages[2..], at(i)).read_volatile() };
                if got != pattern(0x61, i) {
                    return Err(format!("byte {i} (page {}) is {got:#04x}", at(i) / PAGE));
                }
            }
            // SAFETY: as above; the bytes outside the transfer stay zero.
            unsafe {
                verify(pages[2].as_ptr(), off, |_| 0)?;
                verify(page_of(&pages[2..], at(MAX_TRANSFER)), 2 * PAGE - at(MAX_TRANSFER), |_| 0)?;
            }
            Ok(())
        })();
        let u = dev.unmap_dma(src).and(dev.unmap_dma(dst)).map_err(|e| format!("unmap: {e}"));
        r?;
        u?;
        Ok(format!(
            "pages {:#x},{:#x} -> iova {src}; {:#x},{:#x} -> iova {dst}; {MAX_TRANSFER} bytes from offset {off:#x}",
            pages[0].phys(),
            pages[1].phys(),
            pages[2].phys(),
            pages[3].phys()
        ))
    });

    ok &= check("vfio_unmap_fault", || {
        let mut kmsg = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .map_err(|e| format!("/dev/kmsg: {e}"))?;
        drain(&mut kmsg);
        let mut page = high_pages(1)?.remove(0);
        // SAFETY: mapped until the unmap just below; not touched in between.
        let iova =
            unsafe { dev.map_dma(page.as_ptr(), PAGE, Direction::FromDevice, mask()) }.map_err(|e| e.to_string())?;
        dev.unmap_dma(iova).map_err(|e| format!("unmap: {e}"))?;
        page.bytes().fill(0xa5);
        edu.device_to_ram(0, iova.0, MAX_TRANSFER)?;
        // SAFETY: the page is ours; the device may not reach it any more.
        unsafe { verify(page.as_ptr(), PAGE, |_| 0xa5) }.map_err(|e| format!("write through a dead IOVA: {e}"))?;
        let start = Instant::now();
        let mut seen = String::new();
        while start.elapsed() < Duration::from_secs(3) {
            seen.push_str(&drain(&mut kmsg));
            if let Some(report) = iommu_fault(&seen, iova.0) {
                return Ok(format!("iova {iova} untouched; kernel: {report}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("memory untouched but no IOMMU fault for {iova} in the kernel log"))
    });
    ok &= crate::vfio_ops::run(&dev, &edu);
    ok
}

/// The kernel's report of a DMA fault at `iova` in the records of /dev/kmsg, if any:
///
/// - Intel VT-d: one line, `DMAR: [DMA Write NO_PASID] Request device [00:03.0] fault addr
///   0xffff000 [fault reason 0x05] PTE Write access is not set`;
/// - Arm SMMUv3: `arm-smmu-v3 ...: event 0x10 received:` and the event record's four
///   64-bit words on the following lines, the third being the input address (the IOVA).
///   Translation, address size, access flag and permission faults are events 0x10-0x13.
fn iommu_fault(kmsg: &str, iova: u64) -> Option<String> {
    let text = |l: &str| l.split_once(';').map_or(l, |(_, t)| t).to_string();
    let lines: Vec<&str> = kmsg.lines().collect();
    let dmar = format!("fault addr 0x{iova:x}");
    if let Some(l) = lines.iter().find(|l| l.contains("DMAR") && l.contains(&dmar)) {
        return Some(text(l));
    }
    // /dev/kmsg may follow each record with dictionary lines (` SUBSYSTEM=...`): look at
    // the next few lines rather than count them.
    let word = format!("0x{iova:016x}");
    lines.iter().enumerate().find_map(|(i, l)| {
        if !["event 0x10 ", "event 0x11 ", "event 0x12 ", "event 0x13 "].iter().any(|e| l.contains(e)) {
            return None;
        }
        let addr = lines[i + 1..].iter().take(12).find(|r| r.contains("smmu") && r.contains(&word))?;
        Some(format!("{} {}", text(l), text(addr).replace("\\x09", "").trim()))
    })
}

/// Every record /dev/kmsg has for us now, one per line.
fn drain(kmsg: &mut std::fs::File) -> String {
    let mut out = String::new();
    let mut rec = [0u8; 8192];
    // Each read returns one record; EAGAIN ends the buffer, EPIPE means records were
    // overwritten (the next read goes on).
    loop {
        match kmsg.read(&mut rec) {
            Ok(0) => break,
            Ok(n) => {
                out.push_str(&String::from_utf8_lossy(&rec[..n]));
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    out
}
