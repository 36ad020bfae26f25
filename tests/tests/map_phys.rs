//! `dma_map_phys`, `dma_map_resource` and `dma_need_unmap` on the direct path: RAM by
//! physical address (cleaned for a non-coherent device, bounced when forced), peer MMIO
//! (never bounced, never cleaned), and the refusals the kernel makes.

mod common;

use std::sync::{Arc, Mutex};

use common::{device, logged, system};
use dma_core::debug::{ErrorKind, Report};
use dma_core::sim::BusMaster;
use dma_core::{Attrs, Coherence, Direction, DmaAddr, Errno, Gfp, PAGE_SIZE, PhysAddr};

/// An address below 4 GiB that the default layout leaves out of RAM: a peer's BAR.
const BAR: PhysAddr = PhysAddr(0xfe00_0000);

#[test]
fn ram_maps_by_physical_address_and_the_device_sees_it() {
    let (sys, _) = system("");
    for coherence in [Coherence::Coherent, Coherence::NonCoherent] {
        let dev = device(&sys, "phys", coherence, 64);
        let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
        let cpu = sys.page_address(page);
        // SAFETY: a page of ours; the device is not using it yet.
        unsafe { cpu.add(16).write_bytes(0x5a, 64) };
        let phys = PhysAddr(page.phys().0 + 16);
        // SAFETY: the page stays allocated until after the unmap; the CPU keeps off it.
        let dma = unsafe { dev.map_phys(phys, 64, Direction::Bidirectional, Attrs::empty()) }.unwrap();
        assert_eq!(dma, DmaAddr(phys.0), "{coherence:?}: no offset, no bounce");
        let mut seen = [0u8; 64];
        BusMaster::new(&dev).read(dma, &mut seen).unwrap();
        assert_eq!(seen, [0x5a; 64], "{coherence:?}: cleaned for the device where it must be");
        BusMaster::new(&dev).write(dma, b"from the device").unwrap();
        // SAFETY: the mapping made above.
        unsafe { dev.unmap_phys(dma, 64, Direction::Bidirectional, Attrs::empty()) };
        // SAFETY: the CPU owns the page again.
        assert_eq!(unsafe { std::slice::from_raw_parts(cpu.add(16), 15) }, b"from the device");
        sys.free_pages(page, 0).unwrap();
    }
}

#[test]
fn forced_bouncing_copies_ram_and_refuses_mmio() {
    let (sys, log) = system("swiotlb=force");
    let dev = device(&sys, "bounced", Coherence::Coherent, 64);
    assert!(!dev.need_unmap(), "coherent, direct, nothing bounced yet");
    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
    // SAFETY: a page of ours.
    unsafe { sys.page_address(page).write_bytes(7, PAGE_SIZE) };
    // SAFETY: the page stays allocated until after the unmap.
    let dma = unsafe { dev.map_phys(page.phys(), PAGE_SIZE, Direction::ToDevice, Attrs::empty()) }.unwrap();
    assert_ne!(dma.0, page.phys().0, "bounced");
    assert!(dev.need_unmap(), "a bounced mapping must be unmapped to release its slot");
    let mut seen = vec![0u8; PAGE_SIZE];
    BusMaster::new(&dev).read(dma, &mut seen).unwrap();
    assert!(seen.iter().all(|&b| b == 7));
    // SAFETY: the mapping made above.
    unsafe { dev.unmap_phys(dma, PAGE_SIZE, Direction::ToDevice, Attrs::empty()) };
    // SAFETY: MMIO is never touched here.
    let r = unsafe { dev.map_resource(BAR, 4096, Direction::Bidirectional, Attrs::empty()) };
    assert_eq!(r, Err(Errno::EIO), "everything must bounce, and MMIO cannot");
    assert!(logged(&log, "swiotlb=force"));
    sys.free_pages(page, 0).unwrap();
}

#[test]
fn mmio_maps_at_its_bus_address_and_ram_is_refused_as_a_resource() {
    let (sys, log) = system("");
    let dev = device(&sys, "peer", Coherence::NonCoherent, 32);
    // SAFETY: the "BAR" is never touched by the CPU.
    let dma = unsafe { dev.map_resource(BAR, 0x1000, Direction::Bidirectional, Attrs::empty()) }.unwrap();
    assert_eq!(dma, DmaAddr(BAR.0), "MMIO is neither bounced nor translated on the direct path");
    // SAFETY: the mapping made above.
    unsafe { dev.unmap_resource(dma, 0x1000, Direction::Bidirectional, Attrs::empty()) };

    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
    // SAFETY: refused before anything is mapped.
    let r = unsafe { dev.map_resource(page.phys(), 64, Direction::ToDevice, Attrs::empty()) };
    assert_eq!(r, Err(Errno::EINVAL));
    assert!(logged(&log, "is RAM, not MMIO"));
    // SAFETY: refused before anything is mapped.
    let r = unsafe { dev.map_phys(BAR, 64, Direction::ToDevice, Attrs::empty()) };
    assert_eq!(r, Err(Errno::EINVAL), "not RAM, and no DMA_ATTR_MMIO");
    assert!(logged(&log, "needs DMA_ATTR_MMIO"));
    // SAFETY: refused before anything is mapped.
    unsafe {
        assert_eq!(dev.map_phys(page.phys(), 0, Direction::ToDevice, Attrs::empty()), Err(Errno::EINVAL));
        assert_eq!(dev.map_phys(page.phys(), 64, Direction::None, Attrs::empty()), Err(Errno::EINVAL));
        assert_eq!(dev.map_phys(PhysAddr(u64::MAX - 8), 64, Direction::ToDevice, Attrs::MMIO), Err(Errno::EINVAL));
    }
    // A peer out of a 32-bit device's reach: MMIO cannot bounce.
    // SAFETY: refused before anything is mapped.
    let r = unsafe { dev.map_resource(PhysAddr(0x2_0000_0000), 64, Direction::ToDevice, Attrs::empty()) };
    assert_eq!(r, Err(Errno::EIO));
    sys.free_pages(page, 0).unwrap();
}

#[test]
fn need_unmap_is_false_only_for_a_coherent_direct_device_without_debug() {
    let (sys, _) = system("");
    assert!(!device(&sys, "coherent", Coherence::Coherent, 64).need_unmap());
    assert!(device(&sys, "noncoherent", Coherence::NonCoherent, 64).need_unmap(), "its unmap invalidates");
    let (debug, _) = system("dma_debug=1");
    assert!(device(&debug, "tracked", Coherence::Coherent, 64).need_unmap(), "dma-debug checks every unmap");
}

#[test]
fn dma_debug_tracks_phys_and_resource_mappings() {
    let (sys, _) = system("dma_debug=1");
    let reports: Arc<Mutex<Vec<Report>>> = Arc::default();
    let r = Arc::clone(&reports);
    sys.set_debug_sink(Some(Arc::new(move |rep: &Report| r.lock().unwrap().push(rep.clone()))));
    let dev = device(&sys, "dbg", Coherence::NonCoherent, 64);
    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
    // SAFETY: the page stays allocated until after the unmaps; the CPU keeps off it.
    unsafe {
        let dma = dev.map_phys(page.phys(), 256, Direction::FromDevice, Attrs::empty()).unwrap();
        dev.sync_single_for_cpu(dma, 256, Direction::FromDevice);
        dev.unmap_phys(dma, 256, Direction::FromDevice, Attrs::empty());
        let bar = dev.map_resource(BAR, 4096, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.unmap_resource(bar, 4096, Direction::ToDevice, Attrs::empty());
    }
    assert!(reports.lock().unwrap().is_empty(), "correct use: {:#?}", reports.lock().unwrap());
    // SAFETY: a wrong unmap: dma-debug reports it; the mapping is live RAM of ours.
    unsafe {
        let dma = dev.map_phys(page.phys(), 256, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.unmap_phys(dma, 128, Direction::ToDevice, Attrs::empty());
    }
    let kinds: Vec<ErrorKind> = reports.lock().unwrap().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [ErrorKind::FreeWrongSize]);
    sys.free_pages(page, 0).unwrap();
}
