//! Address limits: zones, masks, bouncing through swiotlb.

mod common;

use common::{device, logged, system};
use dma_core::sim::BusMaster;
use dma_core::{Attrs, Coherence, Device, DeviceConfig, Direction, DmaMask, Errno, Gfp, PAGE_SIZE, Scatterlist, Zone};

#[test]
fn a_32bit_device_mapping_memory_above_4g_bounces_and_the_data_arrives() {
    let (sys, _) = system("");
    for coherence in [Coherence::Coherent, Coherence::NonCoherent] {
        let dev = device(&sys, "usb2", coherence, 32);
        let bus = BusMaster::new(&dev);
        let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
        assert!(page.phys().0 >= 1 << 32, "GFP_KERNEL pages come from ZONE_NORMAL, above 4 GiB");
        let cpu = sys.page_address(page);
        let before = sys.stats().swiotlb.unwrap().mappings;
        // SAFETY: the page stays allocated until after the unmap; the CPU does not touch
        // it while mapped.
        unsafe {
            cpu.write_bytes(0xab, PAGE_SIZE);
            let dma = dev.map_page(page, 0, PAGE_SIZE, Direction::Bidirectional, Attrs::empty()).unwrap();
            assert!(dma.0 < 1 << 32, "{coherence:?}: the bus address fits the mask");
            assert_eq!(sys.stats().swiotlb.unwrap().mappings, before + 1);
            let mut got = vec![0u8; PAGE_SIZE];
            bus.read(dma, &mut got).unwrap();
            assert!(
                got.iter().all(|&b| b == 0xab),
                "{coherence:?}: the device reads the original through the bounce buffer"
            );
            bus.write(dma, &[0x77; 100]).unwrap();
            dev.unmap_single(dma, PAGE_SIZE, Direction::Bidirectional, Attrs::empty());
            let back = std::slice::from_raw_parts(cpu, PAGE_SIZE);
            assert_eq!(&back[..100], &[0x77; 100][..], "{coherence:?}: device writes are copied back on unmap");
            assert!(back[100..].iter().all(|&b| b == 0xab));
        }
        sys.free_pages(page, 0).unwrap();
    }
    assert_eq!(sys.stats().swiotlb.unwrap().used_slots, 0);
}

#[test]
fn a_64bit_device_maps_the_same_memory_directly() {
    let (sys, _) = system("");
    let dev = device(&sys, "nvme", Coherence::Coherent, 64);
    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
    // SAFETY: the page outlives the mapping.
    let dma = unsafe { dev.map_page(page, 8, 64, Direction::ToDevice, Attrs::empty()) }.unwrap();
    assert_eq!(dma.0, page.phys().0 + 8, "direct: bus address = physical address");
    assert!(!dev.need_sync(dma), "coherent and not bounced");
    // SAFETY: live mapping.
    unsafe { dev.unmap_single(dma, 64, Direction::ToDevice, Attrs::empty()) };
    sys.free_pages(page, 0).unwrap();
}

#[test]
fn heap_memory_has_no_bus_address_and_bounces_while_kmalloc_maps_directly() {
    let (sys, _) = system("");
    let dev = device(&sys, "spi", Coherence::NonCoherent, 32);
    let bus = BusMaster::new(&dev);
    let mut heap = vec![3u8; 1000];
    // SAFETY: `heap` outlives the mapping and is not touched while mapped.
    unsafe {
        let dma = dev.map_single(heap.as_mut_ptr(), 1000, Direction::FromDevice, Attrs::empty()).unwrap();
        assert!(sys.swiotlb().unwrap().contains(dma_core::PhysAddr(dma.0)), "heap memory bounces");
        assert!(dev.need_sync(dma));
        bus.write(dma, &[9; 1000]).unwrap();
        dev.sync_single_for_cpu(dma, 1000, Direction::FromDevice);
        assert_eq!(heap[999], 9, "sync_for_cpu copies the bounce buffer back");
        dev.unmap_single(dma, 1000, Direction::FromDevice, Attrs::empty());
    }
    let k = sys.kmalloc(1000, Gfp::GFP_DMA32).unwrap();
    // SAFETY: the kmalloc buffer outlives the mapping.
    unsafe {
        let dma = dev.map_single(k.as_ptr(), 1000, Direction::ToDevice, Attrs::empty()).unwrap();
        assert_eq!(Some(dma.0), sys.virt_to_phys(k.as_ptr()).map(|p| p.0), "kmalloc memory maps directly");
        dev.unmap_single(dma, 1000, Direction::ToDevice, Attrs::empty());
        sys.kfree(k).unwrap();
    }
}

#[test]
fn swiotlb_exhaustion_returns_enomem_and_recovers() {
    // 256 slots = 512 KiB: two 256 KiB mappings fill it.
    let (sys, log) = system("swiotlb=256");
    let dev = device(&sys, "sd", Coherence::Coherent, 32);
    let mut big = vec![1u8; 256 << 10];
    let mut small = vec![2u8; 512];
    // SAFETY: the buffers outlive their mappings.
    unsafe {
        let a = dev.map_single(big.as_mut_ptr(), big.len(), Direction::ToDevice, Attrs::empty()).unwrap();
        let b = dev.map_single(big.as_mut_ptr(), big.len(), Direction::ToDevice, Attrs::empty()).unwrap();
        let r = dev.map_single(small.as_mut_ptr(), 512, Direction::FromDevice, Attrs::empty());
        assert_eq!(r, Err(Errno::ENOMEM));
        assert!(logged(&log, "swiotlb buffer is full (sz: 512 bytes)"));
        dev.unmap_single(a, big.len(), Direction::ToDevice, Attrs::empty());
        let c = dev.map_single(small.as_mut_ptr(), 512, Direction::FromDevice, Attrs::empty()).unwrap();
        dev.unmap_single(c, 512, Direction::FromDevice, Attrs::empty());
        dev.unmap_single(b, big.len(), Direction::ToDevice, Attrs::empty());
    }
    assert_eq!(small, vec![2u8; 512], "nothing lost: the failed map never touched the buffer");
    let st = sys.stats().swiotlb.unwrap();
    assert_eq!((st.used_slots, st.full), (0, 1));
    // Larger than one slot set can ever hold: refused outright.
    let mut huge = vec![0u8; (256 << 10) + 1];
    // SAFETY: refused before any copy.
    let r = unsafe { dev.map_single(huge.as_mut_ptr(), huge.len(), Direction::ToDevice, Attrs::empty()) };
    assert_eq!(r, Err(Errno::EINVAL));
}

#[test]
fn max_mapping_size_is_swiotlbs_for_an_addressing_limited_device() {
    let (sys, _) = system("");
    let limited = device(&sys, "lim", Coherence::Coherent, 32);
    assert!(limited.addressing_limited());
    assert_eq!(limited.max_mapping_size(), 256 << 10);
    let full = device(&sys, "full", Coherence::Coherent, 64);
    assert!(!full.addressing_limited());
    assert_eq!(full.max_mapping_size(), usize::MAX);
    assert_eq!(full.required_mask(), (1u64 << 33) - 1, "last RAM byte is below 8 GiB");
}

#[test]
fn swiotlb_force_bounces_everything() {
    let (sys, _) = system("swiotlb=1024,force");
    let dev = device(&sys, "cc", Coherence::Coherent, 64);
    let k = sys.kmalloc(256, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: the buffer outlives the mapping.
    unsafe {
        let dma = dev.map_single(k.as_ptr(), 256, Direction::ToDevice, Attrs::empty()).unwrap();
        assert!(sys.swiotlb().unwrap().contains(dma_core::PhysAddr(dma.0)));
        dev.unmap_single(dma, 256, Direction::ToDevice, Attrs::empty());
    }
    assert_eq!(dev.max_mapping_size(), 256 << 10);
}

#[test]
fn no_swiotlb_means_an_unreachable_buffer_is_an_error_with_a_message() {
    let (sys, log) = system("swiotlb=0");
    let dev = device(&sys, "old32", Coherence::Coherent, 32);
    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
    // SAFETY: refused before any access.
    let r = unsafe { dev.map_page(page, 0, 64, Direction::ToDevice, Attrs::empty()) };
    assert_eq!(r, Err(Errno::EIO));
    assert!(logged(&log, "no swiotlb"));
    sys.free_pages(page, 0).unwrap();
}

#[test]
fn a_zone_dma_wide_mask_gets_zone_dma_memory() {
    let (sys, _) = system("");
    let dev = device(&sys, "isa", Coherence::Coherent, 24);
    let dma_free = sys.stats().zones[Zone::Dma as usize].free_pages;
    let (cpu, dma) = dev.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    assert!(dma.0 < 1 << 24, "{dma} below 16 MiB");
    assert_eq!(sys.stats().zones[Zone::Dma as usize].free_pages, dma_free - 1);
    // SAFETY: live allocation, freed once.
    unsafe { dev.free_coherent(PAGE_SIZE, cpu.as_ptr(), dma) };
    let dev28 = device(&sys, "edu", Coherence::Coherent, 28);
    let (cpu, dma) = dev28.alloc_coherent(8 * PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    assert!(dma.0 + 8 * PAGE_SIZE as u64 <= 1 << 28);
    // SAFETY: live allocation, freed once.
    unsafe { dev28.free_coherent(8 * PAGE_SIZE, cpu.as_ptr(), dma) };
}

#[test]
fn a_mask_smaller_than_any_ram_is_refused_with_eio() {
    let (sys, log) = system("");
    let r = Device::new(&sys, DeviceConfig::new("tiny").mask(DmaMask::bits(20)));
    assert_eq!(r.err(), Some(Errno::EIO));
    let dev = device(&sys, "d", Coherence::Coherent, 32);
    assert_eq!(dev.set_mask(DmaMask::bits(22)), Err(Errno::EIO));
    assert_eq!(dev.mask(), DmaMask::bits(32), "a refused mask leaves the old one");
    assert!(logged(&log, "is not supported"));
    dev.set_mask_and_coherent(DmaMask::bits(24)).unwrap();
    assert_eq!(dev.coherent_mask(), DmaMask::bits(24));
}

#[test]
fn map_sg_maps_every_entry_and_bounces_what_it_must() {
    let (sys, _) = system("");
    let dev = device(&sys, "sata", Coherence::NonCoherent, 32);
    let bus = BusMaster::new(&dev);
    let k = sys.kmalloc(512, Gfp::GFP_KERNEL).unwrap();
    let mut heap = vec![0u8; 300];
    let mut a = vec![0u8; 100];
    let mut bufs: Vec<&mut [u8]> = vec![&mut heap, &mut a];
    // SAFETY: a platform buffer we own, freed at the end.
    bufs.push(unsafe { std::slice::from_raw_parts_mut(k.as_ptr(), 512) });
    {
        let sg = dev.map_sg_slices(bufs, Direction::FromDevice).unwrap();
        assert_eq!(sg.nents(), 3);
        for (i, (dma, len)) in sg.segments().enumerate() {
            bus.fill(dma, i as u8 + 1, len as usize).unwrap();
        }
    }
    assert!(heap.iter().all(|&b| b == 1) && a.iter().all(|&b| b == 2));
    // SAFETY: the mapping ended with the scope above.
    assert!(unsafe { std::slice::from_raw_parts(k.as_ptr(), 512) }.iter().all(|&b| b == 3));
    // SAFETY: freed once.
    unsafe { sys.kfree(k).unwrap() };
    let mut sgl = [Scatterlist::new(std::ptr::null_mut(), 8)];
    // SAFETY: refused before use.
    assert_eq!(unsafe { dev.map_sg(&mut sgl, Direction::ToDevice, Attrs::empty()) }, Err(Errno::EINVAL));
}

#[test]
fn range_map_offsets_translate_both_ways() {
    let (sys, _) = system("");
    let dev = Device::new(
        &sys,
        DeviceConfig::new("pcie").mask(DmaMask::bits(32)).range(dma_core::BusDmaRegion {
            cpu_start: dma_core::PhysAddr(0x1_0000_0000),
            dma_start: dma_core::DmaAddr(0x8000_0000),
            size: 256 << 20,
        }),
    )
    .unwrap();
    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
    // SAFETY: the page outlives the mapping.
    let dma = unsafe { dev.map_page(page, 0, 64, Direction::ToDevice, Attrs::empty()) }.unwrap();
    assert_eq!(dma.0, page.phys().0 - 0x1_0000_0000 + 0x8000_0000, "mapped through the window, no bounce");
    assert_eq!(dev.dma_to_phys(dma), Some(page.phys()));
    // SAFETY: live mapping.
    unsafe { dev.unmap_single(dma, 64, Direction::ToDevice, Attrs::empty()) };
    sys.free_pages(page, 0).unwrap();
}

#[test]
fn the_bus_master_refuses_addresses_outside_its_mask() {
    let (sys, _) = system("");
    let dev = device(&sys, "edu", Coherence::Coherent, 28);
    let bus = BusMaster::new(&dev);
    let err = bus.write(dma_core::DmaAddr(1 << 28), &[1]).unwrap_err();
    assert_eq!(err.kind, dma_core::FaultKind::OutsideMask);
    assert_eq!(bus.read(dma_core::DmaAddr(0x10), &mut [0]).unwrap_err().kind, dma_core::FaultKind::NotRam);
    assert_eq!(bus.faults().len(), 2);
}
