//! The library behind the IOMMU: a [`System`] on the `host` platform gives the memory, the
//! [`VfioDevice`] is the device's DMA ops, and the driver uses only the DMA API.

use std::sync::Arc;

use dma_core::{Attrs, Device, DeviceConfig, Direction, DmaMask, DmaOps, Gfp, Options, PAGE_SIZE, System};
use dma_iommu::vfio::{Bar, VfioDevice};

use crate::check;
use crate::edu::{Edu, MAX_TRANSFER, dma_bits, dma_limit};
use crate::mem::{Span, fill, pattern, round_trip, verify};

/// Scattered 4 KiB pages; nothing bounces behind an IOMMU.
const OPTS: &str = "platform=host host_mem=4M swiotlb=0";

fn iova_ok(dma: u64, len: usize) -> Result<(), String> {
    if dma + len as u64 > dma_limit() {
        return Err(format!("IOVA {dma:#x} + {len} is beyond the {}-bit mask", dma_bits()));
    }
    Ok(())
}

/// Runs every check; true when all passed.
pub fn run(vfio: &Arc<VfioDevice>, edu: &Edu<Bar>) -> bool {
    let mut found = None;
    let mut ok = check("vfio_dmaops_device", || {
        let sys = System::new(Options::parse(OPTS).map_err(|e| e.to_string())?).map_err(|e| format!("System: {e}"))?;
        let ops = Arc::clone(vfio) as Arc<dyn DmaOps>;
        let dev = Device::new(&sys, DeviceConfig::new("edu").mask(DmaMask::bits(dma_bits())).ops(ops))
            .map_err(|e| format!("Device::new: {e}"))?;
        let d = format!("{dev:?}");
        found = Some((sys, dev));
        Ok(d)
    });
    let Some((sys, dev)) = found else { return false };

    ok &= check("vfio_dmaops_coherent", || {
        let alloc = || dev.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).map_err(|e| format!("alloc_coherent: {e}"));
        let (s, sd) = alloc()?;
        let r = alloc().and_then(|(d, dd)| {
            let r = iova_ok(sd.0, PAGE_SIZE).and_then(|()| iova_ok(dd.0, PAGE_SIZE)).and_then(|()| {
                // SAFETY: coherent allocations the device may access at any time.
                unsafe {
                    round_trip(
                        edu,
                        Span { cpu: s.as_ptr(), bus: sd.0, len: PAGE_SIZE },
                        Span { cpu: d.as_ptr(), bus: dd.0, len: PAGE_SIZE },
                        MAX_TRANSFER,
                        0x71,
                    )
                }
            });
            // SAFETY: the allocation from above, no longer used.
            unsafe { dev.free_coherent(PAGE_SIZE, d.as_ptr(), dd) };
            r.map(|()| format!("iova {sd} -> iova {dd}, bytes={MAX_TRANSFER}"))
        });
        // SAFETY: as above.
        unsafe { dev.free_coherent(PAGE_SIZE, s.as_ptr(), sd) };
        r
    });

    ok &= check("vfio_dmaops_map_single_high", || {
        // Pages above 256 MiB map without bouncing: the IOMMU puts them below the mask.
        let mut all = Vec::new();
        let mut high = Vec::new();
        while high.len() < 2 {
            let Ok(p) = sys.alloc_pages(Gfp::GFP_KERNEL, 0) else { break };
            if p.phys().0 >= dma_limit() { high.push(p) } else { all.push(p) }
        }
        let r = (|| {
            let [src, dst] = high[..] else { return Err(format!("no pages above {:#x}", dma_limit())) };
            let (s, d) = (sys.page_address(src), sys.page_address(dst));
            // SAFETY: our pages, not mapped yet.
            unsafe {
                fill(s, PAGE_SIZE, |i| pattern(0x81, i));
                fill(d, PAGE_SIZE, |_| 0);
            }
            // SAFETY: the pages stay allocated until the unmaps; the CPU keeps off them.
            let sd = unsafe { dev.map_single(s, MAX_TRANSFER, Direction::ToDevice, Attrs::empty()) }
                .map_err(|e| format!("map_single: {e}"))?;
            // SAFETY: as above.
            let dd = unsafe { dev.map_single(d, MAX_TRANSFER, Direction::FromDevice, Attrs::empty()) };
            let moved = dd.map_err(|e| format!("map_single: {e}")).and_then(|dd| {
                iova_ok(sd.0, MAX_TRANSFER)?;
                iova_ok(dd.0, MAX_TRANSFER)?;
                edu.ram_to_device(sd.0, 0, MAX_TRANSFER)?;
                edu.device_to_ram(0, dd.0, MAX_TRANSFER)?;
                Ok(dd)
            });
            // SAFETY: the mappings from above.
            unsafe {
                dev.unmap_single(sd, MAX_TRANSFER, Direction::ToDevice, Attrs::empty());
                if let Ok(&dd) = dd.as_ref() {
                    dev.unmap_single(dd, MAX_TRANSFER, Direction::FromDevice, Attrs::empty());
                }
            }
            let dd = moved?;
            // SAFETY: unmapped: the CPU owns the page again.
            unsafe { verify(d, MAX_TRANSFER, |i| pattern(0x81, i)) }?;
            Ok(format!("phys {} -> iova {sd}, phys {} -> iova {dd}, bytes={MAX_TRANSFER}", src.phys(), dst.phys()))
        })();
        for p in all.into_iter().chain(high) {
            let _ = sys.free_pages(p, 0);
        }
        r
    });

    ok &= check("vfio_dmaops_noncontiguous", || {
        let size = 2 * PAGE_SIZE;
        let alloc =
            |dir| dev.alloc_noncontiguous(size, dir, Gfp::GFP_KERNEL, Attrs::empty()).map_err(|e| e.to_string());
        let src = alloc(Direction::ToDevice)?;
        let dst = alloc(Direction::FromDevice)?;
        let describe = |t: &dma_core::SgTable| {
            let phys: Vec<String> =
                t.sgl.iter().map(|s| sys.virt_to_phys(s.cpu_addr).map_or("?".into(), |p| p.to_string())).collect();
            format!("iova {:#x} = [{}]", t.sgl[0].dma_address, phys.join(","))
        };
        let detail = format!("{}; {}", describe(&src), describe(&dst));
        let r = (|| {
            if src.nents != 1 || dst.nents != 1 {
                return Err(format!("{} and {} DMA segments, want 1 each", src.nents, dst.nents));
            }
            let (sv, dv) = (dev.vmap_noncontiguous(size, &src), dev.vmap_noncontiguous(size, &dst));
            let (sv, dv) = (sv.map_err(|e| e.to_string())?, dv.map_err(|e| e.to_string())?);
            let off = PAGE_SIZE / 2;
            let (sd, dd) = (src.sgl[0].dma_address, dst.sgl[0].dma_address);
            iova_ok(sd, size)?;
            iova_ok(dd, size)?;
            // SAFETY: vmaps of the two allocations; the device is coherent, and the
            // transfers cross the page boundary in the middle of each range.
            let r = unsafe {
                round_trip(
                    edu,
                    Span { cpu: sv.as_ptr().add(off), bus: sd + off as u64, len: PAGE_SIZE },
                    Span { cpu: dv.as_ptr().add(off), bus: dd + off as u64, len: PAGE_SIZE },
                    MAX_TRANSFER,
                    0x91,
                )
            };
            // SAFETY: the vmaps from above, unused from here on.
            unsafe {
                dev.vunmap_noncontiguous(sv.as_ptr());
                dev.vunmap_noncontiguous(dv.as_ptr());
            }
            r
        })();
        // SAFETY: the allocations from above, unused from here on.
        unsafe {
            dev.free_noncontiguous(size, src, Direction::ToDevice);
            dev.free_noncontiguous(size, dst, Direction::FromDevice);
        }
        r.map(|()| detail)
    });
    ok
}
