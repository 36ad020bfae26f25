//! The library on real memory without an IOMMU: a [`System`] on the `host` platform (pinned
//! pages, physical addresses from pagemap) gives the buffers and bus addresses, the edu
//! device moves the bytes.

use std::sync::Arc;

use dma_core::api::NonCoherentBuffer;
use dma_core::{Attrs, Coherence, Device, DeviceConfig, Direction, DmaMask, Gfp, Options, PAGE_SIZE, System};

use crate::check;
use crate::edu::{Edu, MAX_TRANSFER, Regs, dma_bits, dma_limit};
use crate::mem::{Span, pattern, round_trip, verify};

/// The options of the host system: 4 KiB pages, some gathered below the device's mask,
/// and hugepages for a bounce pool (physically contiguous) below it too.
fn opts() -> String {
    format!("platform=host host_mem=4M hugepages=16 host_low=2M,{:#x} swiotlb=1M", dma_limit())
}

fn below_mask(dma: u64, len: usize) -> Result<(), String> {
    if dma + len as u64 > dma_limit() {
        return Err(format!("bus address {dma:#x} + {len} is beyond the {}-bit mask", dma_bits()));
    }
    Ok(())
}

fn device(sys: &Arc<System>, coherence: Coherence) -> Result<Arc<Device>, String> {
    let cfg = DeviceConfig::new("edu").mask(DmaMask::bits(dma_bits())).coherence(coherence);
    Device::new(sys, cfg).map_err(|e| format!("Device::new: {e}"))
}

/// Runs every check; true when all passed.
pub fn run<R: Regs>(edu: &Edu<R>) -> bool {
    let mut sys = None;
    let mut ok = check("host_system", || {
        let opts = opts();
        let o = Options::parse(&opts).map_err(|e| e.to_string())?;
        let s = System::new(o).map_err(|e| format!("System::new({opts}): {e}"))?;
        let ram = s.ram_ranges();
        let below = ram.iter().filter(|(b, _)| b.0 < dma_limit()).map(|(_, n)| n).sum::<u64>();
        let total = ram.iter().map(|(_, n)| n).sum::<u64>();
        let pool = s.swiotlb().map(|t| format!("{:?}", t.stats())).unwrap_or_else(|| "none".into());
        let d = format!("{} ranges, {total:#x} bytes, {below:#x} below {:#x}; swiotlb {pool}", ram.len(), dma_limit());
        sys = Some(s);
        Ok(d)
    });
    let Some(sys) = sys else { return false };

    ok &= check("host_coherent_roundtrip", || {
        let dev = device(&sys, Coherence::Coherent)?;
        let alloc = || dev.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).map_err(|e| format!("alloc_coherent: {e}"));
        let (s, sd) = alloc()?;
        let r = alloc().and_then(|(d, dd)| {
            let r = below_mask(sd.0, PAGE_SIZE).and_then(|()| below_mask(dd.0, PAGE_SIZE)).and_then(|()| {
                let src = Span { cpu: s.as_ptr(), bus: sd.0, len: PAGE_SIZE };
                let dst = Span { cpu: d.as_ptr(), bus: dd.0, len: PAGE_SIZE };
                // SAFETY: coherent allocations the device may access at any time.
                unsafe { round_trip(edu, src, dst, MAX_TRANSFER, 0x21) }
            });
            // SAFETY: the allocation from above, no longer used.
            unsafe { dev.free_coherent(PAGE_SIZE, d.as_ptr(), dd) };
            r.map(|()| format!("src dma={sd} dst dma={dd} bytes={MAX_TRANSFER}"))
        });
        // SAFETY: as above.
        unsafe { dev.free_coherent(PAGE_SIZE, s.as_ptr(), sd) };
        r
    });

    ok &= check("host_noncoherent_roundtrip", || {
        // x86 DMA is coherent; declaring the device non-coherent runs the real cache
        // maintenance (clflushopt/clwb) in each sync, and the data must still arrive.
        let dev = device(&sys, Coherence::NonCoherent)?;
        let e = |what: &str, err: dma_core::Errno| format!("{what}: {err}");
        let mut src = NonCoherentBuffer::<u8>::new(&dev, PAGE_SIZE, Direction::ToDevice, Gfp::GFP_KERNEL)
            .map_err(|x| e("src", x))?;
        let mut dst = NonCoherentBuffer::<u8>::new(&dev, PAGE_SIZE, Direction::FromDevice, Gfp::GFP_KERNEL)
            .map_err(|x| e("dst", x))?;
        for (i, b) in src.iter_mut().enumerate() {
            *b = pattern(0x31, i);
        }
        dst.fill(0);
        let src = src.sync_for_device();
        let dst = dst.sync_for_device();
        below_mask(src.dma_handle().0, PAGE_SIZE)?;
        below_mask(dst.dma_handle().0, PAGE_SIZE)?;
        edu.ram_to_device(src.dma_handle().0, 0, MAX_TRANSFER)?;
        edu.device_to_ram(0, dst.dma_handle().0, MAX_TRANSFER)?;
        let (sh, dh) = (src.dma_handle(), dst.dma_handle());
        let dst = dst.sync_for_cpu();
        drop(src.sync_for_cpu());
        if let Some(i) = (0..MAX_TRANSFER).find(|&i| dst[i] != pattern(0x31, i)) {
            return Err(format!("byte {i} is {:#04x}, want {:#04x}", dst[i], pattern(0x31, i)));
        }
        if dst[MAX_TRANSFER] != 0 {
            return Err("the byte past the transfer changed".into());
        }
        Ok(format!("src={sh} dst={dh} bytes={MAX_TRANSFER}"))
    });

    ok &= check("host_map_single_bounce", || {
        // A page above the mask: the device cannot reach it, and would silently clamp
        // the address, so the mapping must bounce below the mask.
        let dev = device(&sys, Coherence::Coherent)?;
        let mut kept = Vec::new();
        let mut high = Vec::new();
        for _ in 0..(1 << 16) {
            let Ok(page) = sys.alloc_pages(Gfp::GFP_KERNEL, 0) else { break };
            if page.phys().0 >= dma_limit() {
                high.push(page)
            } else {
                kept.push(page)
            }
            if high.len() == 2 {
                break;
            }
        }
        let r = (|| {
            let [src, dst] = high[..] else {
                return Err(format!("no pages above {:#x} ({} below)", dma_limit(), kept.len()));
            };
            let (s, d) = (sys.page_address(src), sys.page_address(dst));
            // SAFETY: both pages are ours, a page long, and not mapped elsewhere.
            unsafe {
                crate::mem::fill(s, PAGE_SIZE, |i| pattern(0x41, i));
                crate::mem::fill(d, PAGE_SIZE, |_| 0);
            }
            // SAFETY: the pages stay allocated until the unmaps below, and the CPU does not
            // touch them in between.
            let sd = unsafe { dev.map_single(s, MAX_TRANSFER, Direction::ToDevice, Attrs::empty()) }
                .map_err(|e| format!("map_single(to device): {e}"))?;
            // SAFETY: as above.
            let dd = match unsafe { dev.map_single(d, MAX_TRANSFER, Direction::FromDevice, Attrs::empty()) } {
                Ok(dd) => dd,
                Err(e) => {
                    // SAFETY: the mapping from above.
                    unsafe { dev.unmap_single(sd, MAX_TRANSFER, Direction::ToDevice, Attrs::empty()) };
                    return Err(format!("map_single(from device): {e}"));
                }
            };
            let moved = below_mask(sd.0, MAX_TRANSFER)
                .and_then(|()| below_mask(dd.0, MAX_TRANSFER))
                .and_then(|()| edu.ram_to_device(sd.0, 0, MAX_TRANSFER))
                .and_then(|()| edu.device_to_ram(0, dd.0, MAX_TRANSFER));
            // SAFETY: the mappings from above; the unmap copies the bounce buffer back.
            unsafe {
                dev.unmap_single(sd, MAX_TRANSFER, Direction::ToDevice, Attrs::empty());
                dev.unmap_single(dd, MAX_TRANSFER, Direction::FromDevice, Attrs::empty());
            }
            moved?;
            // SAFETY: unmapped: the CPU owns the page again.
            unsafe { verify(d, MAX_TRANSFER, |i| pattern(0x41, i)) }?;
            Ok(format!(
                "src phys={} -> dma={sd}, dst phys={} -> dma={dd} (bounced), bytes={MAX_TRANSFER}",
                src.phys(),
                dst.phys()
            ))
        })();
        for p in kept.into_iter().chain(high) {
            let _ = sys.free_pages(p, 0);
        }
        r
    });
    ok
}
