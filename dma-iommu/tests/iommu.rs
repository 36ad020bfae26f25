//! Devices behind an IOMMU domain on the simulated platform, through dma-core's public API.

use std::sync::Arc;

use dma_core::sim::BusMaster;
use dma_core::{
    Attrs, Coherence, Device, DeviceConfig, Direction, DmaAddr, DmaMask, Errno, FaultKind, Gfp, Options, PAGE_SIZE,
    Page, Scatterlist, System,
};
use dma_iommu::{Domain, DomainConfig, OPT_MAPPING_SIZE};

fn system(opts: &str) -> Arc<System> {
    System::builder().options(Options::parse(opts).unwrap()).log_sink(Arc::new(|_, _| {})).build().unwrap()
}

fn device(domain: &Arc<Domain>, coherence: Coherence, bits: u32) -> Arc<Device> {
    let cfg = DeviceConfig::new("dev").coherence(coherence).mask(DmaMask::bits(bits));
    Device::new(domain.system(), domain.attach(cfg)).unwrap()
}

/// Device read of `len` bytes at `dma` (the bus master walks the IOMMU page by page).
fn bus_read(bus: &BusMaster, dma: DmaAddr, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    bus.read(dma, &mut out).unwrap();
    out
}

fn bus_write(bus: &BusMaster, dma: DmaAddr, data: &[u8]) {
    bus.write(dma, data).unwrap();
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn a_peer_bar_maps_through_the_page_table() {
    let sys = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::NonCoherent, 32);
    assert!(dev.need_unmap(), "an IOMMU mapping always holds an IOVA");
    let bar = dma_core::PhysAddr(0xfe00_0000);
    // SAFETY: the "BAR" is never touched by the CPU.
    let dma = unsafe { dev.map_resource(bar, 0x2000, Direction::Bidirectional, Attrs::empty()) }.unwrap();
    assert_eq!(domain.iova_to_phys(DmaAddr(dma.0 + 0x1008)), Some(dma_core::PhysAddr(bar.0 + 0x1008)));
    // SAFETY: the mapping made above.
    unsafe { dev.unmap_resource(dma, 0x2000, Direction::Bidirectional, Attrs::empty()) };
    assert_eq!(domain.iova_to_phys(dma), None);
    assert_eq!(domain.stats().mapped_bytes, 0);
}

#[test]
fn page_table_pages_come_back_after_unmap() {
    let sys = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::Coherent, 32);
    assert_eq!(domain.stats().pgtable_pages, 1, "the root");
    // 16 MiB at a 16 MiB-aligned IOVA: its unmap covers every last-level table it used.
    let size = 16 << 20;
    let (cpu, dma) = dev.alloc_coherent(size, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(dma.0 % size as u64, 0);
    let mapped = domain.stats().pgtable_pages;
    assert!(mapped >= 3, "root, and tables at levels 1 and 2 at least: {mapped}");
    // SAFETY: the allocation is not used afterwards.
    unsafe { dev.free_coherent(size, cpu.as_ptr(), dma) };
    assert!(domain.stats().pgtable_pages <= 3, "only the path to the range may stay: {:?}", domain.stats());
    // Streaming maps of many small buffers, each unmapped: what stays linked is bounded.
    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
    for _ in 0..2000 {
        // SAFETY: the page stays allocated until after the unmap.
        let dma = unsafe { dev.map_page(page, 0, PAGE_SIZE, Direction::ToDevice, Attrs::empty()) }.unwrap();
        // SAFETY: mapped just above.
        unsafe { dev.unmap_single(dma, PAGE_SIZE, Direction::ToDevice, Attrs::empty()) };
    }
    assert!(domain.stats().pgtable_pages <= 3 + dma_iommu::pgtable::SWEEP_AFTER, "{:?}", domain.stats());
    sys.free_pages(page, 0).unwrap();
}

#[test]
fn coherent_alloc_goes_through_the_page_table() {
    let sys = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::Coherent, 32);
    let bus = BusMaster::new(&dev);
    let size = (2 << 20) + 3 * PAGE_SIZE;
    let (cpu, dma) = dev.alloc_coherent(size, Gfp::GFP_KERNEL).unwrap();
    assert!(dma.0 + size as u64 <= 1 << 32);
    assert_eq!(domain.stats().mapped_bytes, (size as u64).div_ceil(4096) * 4096);
    let data = pattern(size, 7);
    // SAFETY: `cpu` maps `size` bytes of the allocation, which the CPU owns.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), cpu.as_ptr(), size) };
    assert_eq!(bus_read(&bus, dma, size), data);
    bus_write(&bus, DmaAddr(dma.0 + 100), b"device");
    // SAFETY: as above; the device wrote through a coherent mapping.
    let seen = unsafe { std::slice::from_raw_parts(cpu.as_ptr().add(100), 6) };
    assert_eq!(seen, b"device");
    // SAFETY: the allocation is not used afterwards.
    unsafe { dev.free_coherent(size, cpu.as_ptr(), dma) };
    assert_eq!(domain.stats().mapped_bytes, 0);
    domain.iova_domain().check_invariants();
}

#[test]
fn noncoherent_coherent_alloc_is_uncached_and_force_contiguous_is_one_block() {
    let sys = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::NonCoherent, 32);
    let bus = BusMaster::new(&dev);
    let (cpu, dma) = dev.alloc_attrs(3 * PAGE_SIZE, Gfp::GFP_KERNEL, Attrs::FORCE_CONTIGUOUS).unwrap();
    // SAFETY: the uncached alias of the allocation; the device does not run.
    unsafe { cpu.as_ptr().add(5000).write(0xab) };
    let mut b = [0u8; 1];
    bus.read(DmaAddr(dma.0 + 5000), &mut b).unwrap();
    assert_eq!(b[0], 0xab, "an uncached write reaches the device without a sync");
    let base = domain.iova_to_phys(dma).unwrap();
    assert_eq!(domain.iova_to_phys(DmaAddr(dma.0 + 2 * 4096)).unwrap().0, base.0 + 2 * 4096);
    // SAFETY: not used afterwards.
    unsafe { dev.free_attrs(3 * PAGE_SIZE, cpu.as_ptr(), dma, Attrs::FORCE_CONTIGUOUS) };
    assert_eq!(domain.stats().mapped_bytes, 0);
}

#[test]
fn map_single_bus_master_io_and_permissions() {
    let sys = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::NonCoherent, 32);
    let bus = BusMaster::new(&dev);
    let buf = sys.kmalloc(256, Gfp::GFP_KERNEL).unwrap();
    let data = pattern(256, 3);
    // SAFETY: the CPU owns the buffer until the map.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf.as_ptr(), 256) };
    // SAFETY: the buffer outlives the mapping and the CPU leaves it alone meanwhile.
    let dma = unsafe { dev.map_single(buf.as_ptr(), 256, Direction::ToDevice, Attrs::empty()) }.unwrap();
    assert_eq!(dma.0 % 4096, buf.as_ptr() as u64 % 4096, "the offset in the page is kept");
    assert_eq!(bus_read(&bus, dma, 256), data, "the map cleaned the cache");
    let fault = bus.write(dma, b"nope").unwrap_err();
    assert_eq!(fault.kind, FaultKind::Permission);
    // SAFETY: the mapping above.
    unsafe { dev.unmap_single(dma, 256, Direction::ToDevice, Attrs::empty()) };
    // SAFETY: the CPU owns the buffer again.
    assert_eq!(unsafe { std::slice::from_raw_parts(buf.as_ptr(), 256) }, &data[..], "memory untouched");
    // SAFETY: not used afterwards.
    unsafe { sys.kfree(buf).unwrap() };
}

#[test]
fn access_after_unmap_faults_and_leaves_memory_alone() {
    let sys = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::Coherent, 32);
    let bus = BusMaster::new(&dev);
    let buf = sys.kmalloc(4096, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: the CPU owns the buffer.
    unsafe { buf.as_ptr().write_bytes(0x5a, 4096) };
    // SAFETY: the buffer outlives the mapping.
    let dma = unsafe { dev.map_single(buf.as_ptr(), 4096, Direction::FromDevice, Attrs::empty()) }.unwrap();
    bus.write(dma, b"ok").unwrap();
    // SAFETY: the mapping above.
    unsafe { dev.unmap_single(dma, 4096, Direction::FromDevice, Attrs::empty()) };
    let fault = bus.write(dma, &[0u8; 64]).unwrap_err();
    assert_eq!((fault.kind, fault.write), (FaultKind::NotMapped, true));
    assert_eq!(bus.read(dma, &mut [0u8; 4]).unwrap_err().kind, FaultKind::NotMapped);
    assert_eq!(bus.faults().len(), 2);
    // SAFETY: the CPU owns the buffer.
    let seen = unsafe { std::slice::from_raw_parts(buf.as_ptr(), 4096) };
    assert_eq!(&seen[..2], b"ok");
    assert!(seen[2..].iter().all(|&b| b == 0x5a), "the faulting write did not land");
    // SAFETY: not used afterwards.
    unsafe { sys.kfree(buf).unwrap() };
}

/// Eight single pages, allocated so that neighbours are not physically adjacent.
fn scattered_pages(sys: &System, n: usize) -> (Vec<Page>, Vec<Page>) {
    let mut keep = Vec::new();
    let mut spacers = Vec::new();
    for _ in 0..n {
        keep.push(sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap());
        spacers.push(sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap());
    }
    (keep, spacers)
}

#[test]
fn map_sg_merges_scattered_pages_into_one_segment() {
    let sys = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::NonCoherent, 32);
    let bus = BusMaster::new(&dev);
    let (pages, spacers) = scattered_pages(&sys, 8);
    let mut sgl: Vec<Scatterlist> =
        pages.iter().map(|&p| Scatterlist::new(sys.page_address(p), PAGE_SIZE as u32)).collect();
    // SAFETY: the pages stay allocated and the CPU leaves them alone while mapped.
    let n = unsafe { dev.map_sg(&mut sgl, Direction::FromDevice, Attrs::empty()) }.unwrap();
    assert_eq!(n, 1, "eight scattered pages, one DMA segment");
    assert_eq!(sgl[0].dma_length as usize, 8 * PAGE_SIZE);
    assert!(sgl[1..].iter().all(|s| s.dma_length == 0));
    let data = pattern(8 * PAGE_SIZE, 11);
    bus_write(&bus, DmaAddr(sgl[0].dma_address), &data);
    // SAFETY: the mapping above; unmap makes the device's writes visible.
    unsafe { dev.unmap_sg(&sgl, Direction::FromDevice, Attrs::empty()) };
    for (i, &p) in pages.iter().enumerate() {
        // SAFETY: the CPU owns the page again.
        let seen = unsafe { std::slice::from_raw_parts(sys.page_address(p), PAGE_SIZE) };
        assert_eq!(seen, &data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]);
    }
    assert_eq!(domain.stats().mapped_bytes, 0);

    // max_segment_size caps the merge.
    dev.set_max_segment_size(2 * PAGE_SIZE as u32).unwrap();
    let mut sgl: Vec<Scatterlist> =
        pages.iter().map(|&p| Scatterlist::new(sys.page_address(p), PAGE_SIZE as u32)).collect();
    // SAFETY: as above.
    let n = unsafe { dev.map_sg(&mut sgl, Direction::ToDevice, Attrs::empty()) }.unwrap();
    assert_eq!(n, 4);
    // SAFETY: as above.
    unsafe { dev.unmap_sg(&sgl, Direction::ToDevice, Attrs::empty()) };
    for p in pages.into_iter().chain(spacers) {
        sys.free_pages(p, 0).unwrap();
    }
    assert_eq!(dev.merge_boundary(), 4095);
    assert_eq!(dev.opt_mapping_size(), OPT_MAPPING_SIZE);
    assert_eq!(OPT_MAPPING_SIZE, 128 << 10);
    domain.iova_domain().check_invariants();
}

#[test]
fn noncontiguous_vmap_round_trip_with_a_28_bit_device() {
    let sys = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::NonCoherent, 28);
    let bus = BusMaster::new(&dev);
    let size = 1 << 20;
    let mut sgt =
        dev.alloc_noncontiguous(size, Direction::Bidirectional, Gfp::GFP_KERNEL, Attrs::ALLOC_SINGLE_PAGES).unwrap();
    let (dma, len) = sgt.dma_segments().next().unwrap();
    assert_eq!((sgt.nents, len as usize), (1, size));
    assert!(dma.0 + size as u64 <= 1 << 28, "one DMA range under the 28-bit mask");
    let vaddr = dev.vmap_noncontiguous(size, &sgt).unwrap();
    // SAFETY: the vmap covers `size` bytes; the CPU owns the memory.
    let cpu = unsafe { std::slice::from_raw_parts_mut(vaddr.as_ptr(), size) };
    assert!(cpu.iter().all(|&b| b == 0), "zeroed");
    let data = pattern(size, 1);
    cpu.copy_from_slice(&data);
    // SAFETY: the table is mapped; the CPU leaves the memory alone until sync_for_cpu.
    unsafe { dev.sync_sg_for_device(&sgt.sgl, Direction::Bidirectional) };
    assert_eq!(bus_read(&bus, dma, size), data, "the device reads what the CPU wrote through the vmap");
    let back = pattern(size, 99);
    bus_write(&bus, dma, &back);
    // SAFETY: as above.
    unsafe { dev.sync_sg_for_cpu(&sgt.sgl, Direction::Bidirectional) };
    // SAFETY: the CPU owns the memory again.
    let cpu = unsafe { std::slice::from_raw_parts(vaddr.as_ptr(), size) };
    assert!(cpu == &back[..], "the device's writes are visible through the vmap");
    for sg in &sgt.sgl {
        assert!(sys.virt_to_phys(sg.cpu_addr).is_some_and(|p| p.0 >= 1 << 32), "pages from anywhere, here above 4 GiB");
    }
    // SAFETY: not used afterwards.
    unsafe {
        dev.vunmap_noncontiguous(vaddr.as_ptr());
        dev.free_noncontiguous(size, std::mem::take(&mut sgt), Direction::Bidirectional);
    }
    assert_eq!(domain.stats().mapped_bytes, 0);
}

#[test]
fn a_32_bit_device_reaches_memory_above_4g_without_bouncing() {
    let sys = system("");
    let domain = Domain::new(&sys).unwrap();
    for bits in [32, 28] {
        let dev = device(&domain, Coherence::Coherent, bits);
        let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
        assert!(page.phys().0 >= 1 << 32);
        let before = sys.stats().swiotlb.map(|s| s.mappings);
        // SAFETY: the page stays allocated until the unmap.
        let dma = unsafe { dev.map_page(page, 16, 64, Direction::ToDevice, Attrs::empty()) }.unwrap();
        assert!(dma.0 + 64 <= 1 << bits);
        assert_eq!(domain.iova_to_phys(dma), Some(dma_core::PhysAddr(page.phys().0 + 16)));
        assert_eq!(sys.stats().swiotlb.map(|s| s.mappings), before, "no bounce");
        // SAFETY: the mapping above.
        unsafe { dev.unmap_single(dma, 64, Direction::ToDevice, Attrs::empty()) };
        sys.free_pages(page, 0).unwrap();
    }
}

fn map_one(dev: &Device, buf: *mut u8) -> DmaAddr {
    // SAFETY: the callers' buffers outlive their mappings.
    unsafe { dev.map_single(buf, 4096, Direction::Bidirectional, Attrs::empty()) }.unwrap()
}

fn unmap_one(dev: &Device, dma: DmaAddr) {
    // SAFETY: a mapping from `map_one`.
    unsafe { dev.unmap_single(dma, 4096, Direction::Bidirectional, Attrs::empty()) };
}

#[test]
fn in_lazy_mode_a_stale_iotlb_entry_reaches_the_old_page_until_the_flush() {
    let sys = system("");
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let l = Arc::clone(&log);
    sys.set_log_sink(Some(Arc::new(move |_, m: &str| l.lock().unwrap().push_str(m))));
    let buf = sys.kmalloc(4096, Gfp::GFP_KERNEL).unwrap().as_ptr();
    let lazy = Domain::with_config(
        &sys,
        DomainConfig::default().strict(false).flush_timeout(std::time::Duration::from_secs(3600)),
    )
    .unwrap();
    let dev = device(&lazy, Coherence::Coherent, 32);
    let bus = BusMaster::new(&dev);
    let a = map_one(&dev, buf);
    bus_write(&bus, a, b"before");
    unmap_one(&dev, a);
    // The device used the translation, and the invalidation waits in the flush queue: the
    // device still lands on the old page, as on hardware. The access is reported.
    bus.write(DmaAddr(a.0 + 8), b"after").expect("a stale IOTLB hit goes through");
    // SAFETY: the kmalloc buffer is live; the device's write above is done.
    assert_eq!(unsafe { std::slice::from_raw_parts(buf.add(8), 5) }, b"after");
    assert_eq!(lazy.stats().iotlb_stale_hits, 1);
    assert!(log.lock().unwrap().contains("stale IOTLB entry"), "{}", log.lock().unwrap());
    // A page the device never used is not in the IOTLB: it faults at once.
    let b = map_one(&dev, buf);
    unmap_one(&dev, b);
    assert_eq!(bus.write(b, b"x").unwrap_err().kind, FaultKind::NotMapped);
    // After the flush, the old address faults too.
    lazy.flush_iotlb_all();
    assert_eq!(bus.write(a, b"late").unwrap_err().kind, FaultKind::NotMapped);
    assert_eq!(lazy.stats().iotlb_stale_hits, 1);

    // Strict mode invalidates on the unmap itself: no window.
    let strict = Domain::with_config(&sys, DomainConfig::default().strict(true)).unwrap();
    let dev = device(&strict, Coherence::Coherent, 32);
    let bus = BusMaster::new(&dev);
    let a = map_one(&dev, buf);
    bus_write(&bus, a, b"before");
    unmap_one(&dev, a);
    assert_eq!(bus.write(a, b"after").unwrap_err().kind, FaultKind::NotMapped);
    assert_eq!(strict.stats().iotlb_stale_hits, 0);
    drop((bus, dev, strict, lazy));
    // SAFETY: the buffer came from this system's kmalloc and is no longer mapped.
    unsafe { sys.kfree(std::ptr::NonNull::new(buf).unwrap()).unwrap() };
}

#[test]
fn strict_reuses_at_once_and_lazy_only_after_the_flush() {
    let sys = system("");
    let buf = sys.kmalloc(4096, Gfp::GFP_KERNEL).unwrap().as_ptr();

    let strict = Domain::with_config(&sys, DomainConfig::default().strict(true)).unwrap();
    let dev = device(&strict, Coherence::Coherent, 32);
    let a = map_one(&dev, buf);
    unmap_one(&dev, a);
    assert_eq!(strict.stats().iotlb_flushes, 1, "one invalidation per unmap");
    assert_eq!(map_one(&dev, buf), a, "the IOVA is reused at once");

    // A long flush timeout: under emulation 10 ms can pass between two lines of this test.
    let lazy = Domain::with_config(
        &sys,
        DomainConfig::default().strict(false).flush_timeout(std::time::Duration::from_secs(3600)),
    )
    .unwrap();
    assert!(!lazy.is_strict());
    let dev = device(&lazy, Coherence::Coherent, 32);
    let a = map_one(&dev, buf);
    unmap_one(&dev, a);
    assert_eq!((lazy.stats().iotlb_flushes, lazy.stats().fq_pending), (0, 1));
    let b = map_one(&dev, buf);
    assert_ne!(b, a, "not reused before the flush that covers its unmap");
    lazy.flush_iotlb_all();
    assert_eq!((lazy.stats().iotlb_flushes, lazy.stats().fq_pending), (1, 0));
    assert_eq!(map_one(&dev, buf), a, "reused after it");
    // A full queue flushes by itself: 256 unmaps, one invalidation.
    let maps: Vec<DmaAddr> = (0..257).map(|_| map_one(&dev, buf)).collect();
    for &m in &maps {
        unmap_one(&dev, m);
    }
    assert_eq!(lazy.stats().iotlb_flushes, 2);
    lazy.iova_domain().check_invariants();
    drop((dev, strict, lazy));
    // SAFETY: the buffer came from this system's kmalloc and is no longer mapped.
    unsafe { sys.kfree(std::ptr::NonNull::new(buf).unwrap()).unwrap() };
    drop(sys); // a 32-bit process has room for few systems at once

    let from_options = Domain::new(&system("iommu.strict=0")).unwrap();
    assert!(!from_options.is_strict());
    assert!(Domain::new(&system("")).unwrap().is_strict(), "strict by default, as on arm64");
}

#[test]
fn passthrough_leaves_devices_direct() {
    let sys = system("iommu.passthrough=1");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::Coherent, 32);
    assert_eq!(dev.merge_boundary(), 0);
}

#[test]
fn iova_exhaustion_returns_enomem_and_recovers() {
    let sys = system("");
    let domain = Domain::with_config(&sys, DomainConfig::default().aperture(0x10_0000, 0x10_ffff)).unwrap();
    let dev = device(&domain, Coherence::Coherent, 32);
    let buf = sys.kmalloc(4096, Gfp::GFP_KERNEL).unwrap().as_ptr();
    let mut maps = Vec::new();
    let err = loop {
        // SAFETY: the buffer outlives the mappings.
        match unsafe { dev.map_single(buf, 4096, Direction::ToDevice, Attrs::empty()) } {
            Ok(d) => maps.push(d),
            Err(e) => break e,
        }
    };
    assert_eq!((err, maps.len()), (Errno::ENOMEM, 16));
    for d in maps.drain(..) {
        // SAFETY: the mappings above.
        unsafe { dev.unmap_single(d, 4096, Direction::ToDevice, Attrs::empty()) };
    }
    // A 64 KiB mapping needs the whole aperture, including the ranges parked in caches.
    let big = sys.kmalloc(65536, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: as above.
    let d = unsafe { dev.map_single(big.as_ptr(), 65536, Direction::ToDevice, Attrs::empty()) }.unwrap();
    assert_eq!(d.0, 0x10_0000);
    domain.iova_domain().check_invariants();
}

#[test]
fn devices_can_share_a_domain_and_bad_unmaps_are_refused() {
    let sys = system("");
    let domain = Domain::new(&sys).unwrap();
    let a = device(&domain, Coherence::Coherent, 32);
    let b = device(&domain, Coherence::Coherent, 32);
    let buf = sys.kmalloc(4096, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: the CPU owns the buffer.
    unsafe { buf.as_ptr().write_bytes(0x42, 16) };
    let d = map_one(&a, buf.as_ptr());
    let mut seen = [0u8; 16];
    BusMaster::new(&b).read(d, &mut seen).unwrap();
    assert_eq!(seen, [0x42; 16], "one page table for both devices");
    unmap_one(&a, d);
    let before = domain.stats();
    unmap_one(&a, d);
    assert_eq!(domain.stats(), before, "a second unmap changes nothing");
    domain.iova_domain().check_invariants();
    let other = system("");
    assert_eq!(
        Device::new(&other, domain.attach(DeviceConfig::new("x"))).err(),
        Some(Errno::EIO),
        "a domain serves devices of its own system only"
    );
}

#[test]
fn force_contiguous_comes_from_cma_and_goes_back() {
    let sys = system("cma=16M");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::Coherent, 32);
    let (cpu, dma) = dev.alloc_attrs(8 * PAGE_SIZE, Gfp::GFP_KERNEL, Attrs::FORCE_CONTIGUOUS).unwrap();
    let area = sys.cma_stats().unwrap();
    assert_eq!(area.stats.allocations, 1, "the block came from the default area");
    let phys = sys.virt_to_phys(cpu.as_ptr()).unwrap();
    assert!(phys.0 >= area.base.0 && phys.0 < area.base.0 + (16 << 20));
    assert_eq!(bus_read(&BusMaster::new(&dev), dma, 8 * PAGE_SIZE), vec![0u8; 8 * PAGE_SIZE], "zeroed");
    // SAFETY: freed once with the same arguments.
    unsafe { dev.free_attrs(8 * PAGE_SIZE, cpu.as_ptr(), dma, Attrs::FORCE_CONTIGUOUS) };
    assert_eq!(sys.cma_stats().unwrap().stats.free_pages, 4096, "back to the area");
}

#[test]
fn a_noncoherent_device_gets_an_uncached_vmap_of_scattered_pages() {
    let sys = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::NonCoherent, 32);
    let bus = BusMaster::new(&dev);
    let size = 5 * PAGE_SIZE;
    let (cpu, dma) = dev.alloc_coherent(size, Gfp::GFP_KERNEL).unwrap();
    assert!(sys.virt_to_phys(cpu.as_ptr()).is_none(), "not the cached view");
    assert!(sys.vmap_to_phys(cpu.as_ptr()).is_some(), "a vmap");
    let data = pattern(size, 3);
    // SAFETY: the CPU address maps `size` bytes of the allocation.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), cpu.as_ptr(), size) };
    assert_eq!(bus_read(&bus, dma, size), data, "uncached: the device sees CPU writes without a sync");
    bus_write(&bus, dma, &[9; 100]);
    // SAFETY: as above.
    assert_eq!(unsafe { std::slice::from_raw_parts(cpu.as_ptr(), 100) }, &[9; 100][..]);
    // A free with the wrong CPU address is refused with a message and frees nothing.
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let l = Arc::clone(&log);
    sys.set_log_sink(Some(Arc::new(move |_, m: &str| l.lock().unwrap().push_str(m))));
    // SAFETY: refused: not the allocation's CPU address.
    unsafe { dev.free_coherent(size, cpu.as_ptr().add(PAGE_SIZE), dma) };
    assert!(log.lock().unwrap().contains("not a live IOMMU allocation"));
    // SAFETY: freed once with the right arguments.
    unsafe { dev.free_coherent(size, cpu.as_ptr(), dma) };
}
