//! dma-debug: one test per error kind, each asserting the report it must produce, and
//! the missing-sync checks beyond the kernel.

use std::sync::{Arc, Mutex};

use dma_core::debug::{ErrorKind, Report};
use dma_core::sim::BusMaster;
use dma_core::{
    Attrs, Coherence, Device, DeviceConfig, Direction, DmaAddr, DmaMask, Gfp, Options, PAGE_SIZE, Scatterlist, System,
};

struct Dbg {
    sys: Arc<System>,
    reports: Arc<Mutex<Vec<Report>>>,
}

impl Dbg {
    fn new() -> Dbg {
        Dbg::with("dma_debug=1")
    }

    fn with(opts: &str) -> Dbg {
        let sys =
            System::builder().options(Options::parse(opts).unwrap()).log_sink(Arc::new(|_, _| {})).build().unwrap();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let r = Arc::clone(&reports);
        sys.set_debug_sink(Some(Arc::new(move |rep: &Report| r.lock().unwrap().push(rep.clone()))));
        Dbg { sys, reports }
    }

    fn dev(&self, coherence: Coherence) -> Arc<Device> {
        Device::new(&self.sys, DeviceConfig::new("dbgdev").coherence(coherence).mask(DmaMask::bits(64))).unwrap()
    }

    fn kinds(&self) -> Vec<ErrorKind> {
        self.reports.lock().unwrap().iter().map(|r| r.kind).collect()
    }

    /// The single report of `kind`; fails if there is not exactly one report at all.
    fn only(&self, kind: ErrorKind) -> Report {
        let reports = self.reports.lock().unwrap();
        assert_eq!(reports.len(), 1, "expected exactly one report, got {reports:#?}");
        assert_eq!(reports[0].kind, kind, "{:#?}", reports[0]);
        assert!(self.sys.debug_stats().unwrap().count(kind) >= 1, "counted too");
        reports[0].clone()
    }

    fn clear(&self) {
        self.reports.lock().unwrap().clear();
    }
}

fn kbuf(d: &Dbg, size: usize) -> *mut u8 {
    d.sys.kmalloc(size, Gfp::GFP_KERNEL).unwrap().as_ptr()
}

#[test]
fn correct_use_reports_nothing() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::NonCoherent);
    let p = kbuf(&d, 256);
    // SAFETY: a kmalloc buffer, mapped, synced and unmapped correctly.
    unsafe {
        let dma = dev.map_single(p, 256, Direction::FromDevice, Attrs::empty()).unwrap();
        dev.sync_single_for_cpu(dma, 256, Direction::FromDevice);
        dev.sync_single_for_device(dma, 256, Direction::FromDevice);
        dev.unmap_single(dma, 256, Direction::FromDevice, Attrs::empty());
    }
    let (cpu, dma) = dev.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: freed once with the same arguments.
    unsafe { dev.free_coherent(PAGE_SIZE, cpu.as_ptr(), dma) };
    assert_eq!(d.kinds(), vec![]);
    assert_eq!(d.sys.debug_stats().unwrap().entries, 0);
}

#[test]
fn unmap_of_an_address_never_mapped() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    // SAFETY: a bogus address: the library refuses it.
    unsafe { dev.unmap_single(DmaAddr(0x1234_5000), 64, Direction::ToDevice, Attrs::empty()) };
    let r = d.only(ErrorKind::FreeNotAllocated);
    assert!(r.message.contains("0x12345000"), "{}", r.message);
    assert!(r.caller.to_string().contains("debug.rs"), "the report names the caller: {}", r.caller);
}

#[test]
fn unmap_of_the_error_sentinel() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    // SAFETY: the sentinel is refused.
    unsafe { dev.unmap_single(dma_core::DMA_MAPPING_ERROR, 64, Direction::ToDevice, Attrs::empty()) };
    d.only(ErrorKind::FreeInvalidAddress);
}

#[test]
fn unmap_with_another_size_direction_or_function() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    let p = kbuf(&d, 512);
    // SAFETY: mapped, then unmapped with a wrong size.
    unsafe {
        let dma = dev.map_single(p, 512, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.unmap_single(dma, 256, Direction::ToDevice, Attrs::empty());
    }
    let r = d.only(ErrorKind::FreeWrongSize);
    assert!(r.message.contains("[map size=512 bytes] [unmap size=256 bytes]"), "{}", r.message);
    assert!(r.mapped_at.is_some(), "the report says where the mapping was made");
    d.clear();
    // SAFETY: as above, wrong direction.
    unsafe {
        let dma = dev.map_single(p, 512, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.unmap_single(dma, 512, Direction::FromDevice, Attrs::empty());
    }
    d.only(ErrorKind::FreeWrongDirection);
    d.clear();
    // A coherent allocation unmapped as a streaming mapping.
    let (cpu, dma) = dev.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: the unmap is the misuse under test; the memory is freed properly after.
    unsafe { dev.unmap_single(dma, PAGE_SIZE, Direction::Bidirectional, Attrs::empty()) };
    d.only(ErrorKind::FreeWrongFunction);
    let _ = cpu;
}

#[test]
fn free_with_another_cpu_address() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    let (cpu, dma) = dev.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: the wrong CPU address: dma-debug reports, dma-core refuses the free.
    unsafe { dev.free_coherent(PAGE_SIZE, cpu.as_ptr().add(64), dma) };
    d.only(ErrorKind::FreeWrongCpuAddress);
}

#[test]
fn sg_unmap_and_sync_with_another_entry_count() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    let (a, b) = (kbuf(&d, 128), kbuf(&d, 128));
    let mut sgl = [Scatterlist::new(a, 128), Scatterlist::new(b, 128)];
    // SAFETY: kmalloc buffers; the short syncs and unmaps are the misuse under test.
    unsafe {
        assert_eq!(dev.map_sg(&mut sgl, Direction::ToDevice, Attrs::empty()), Ok(2));
        dev.sync_sg_for_device(&sgl[..1], Direction::ToDevice);
        assert_eq!(d.kinds(), vec![ErrorKind::SyncWrongSgCount]);
        d.clear();
        dev.unmap_sg(&sgl[..1], Direction::ToDevice, Attrs::empty());
        assert_eq!(d.kinds(), vec![ErrorKind::FreeWrongSgCount]);
    }
}

#[test]
fn unmap_without_checking_the_mapping() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    let p = kbuf(&d, 64);
    // SAFETY: as the C ABI does: the address is handed out unchecked.
    unsafe {
        let dma = dev.map_single(p, 64, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.debug_expect_mapping_check(dma);
        dev.unmap_single(dma, 64, Direction::ToDevice, Attrs::empty());
    }
    d.only(ErrorKind::MapErrorNotChecked);
    d.clear();
    // SAFETY: the same, checked this time.
    unsafe {
        let dma = dev.map_single(p, 64, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.debug_expect_mapping_check(dma);
        assert_eq!(dev.mapping_error(dma), Ok(()));
        dev.unmap_single(dma, 64, Direction::ToDevice, Attrs::empty());
    }
    assert_eq!(d.kinds(), vec![]);
}

#[test]
fn sync_of_memory_never_mapped_and_outside_the_mapping() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::NonCoherent);
    // SAFETY: syncs of unknown memory touch nothing the test uses.
    unsafe { dev.sync_single_for_cpu(DmaAddr(0x1_0000_0000), 64, Direction::FromDevice) };
    d.only(ErrorKind::SyncNotAllocated);
    d.clear();
    let p = kbuf(&d, 256);
    // SAFETY: the buffer is mapped; the sync runs past its end (the misuse under test).
    unsafe {
        let dma = dev.map_single(p, 256, Direction::FromDevice, Attrs::empty()).unwrap();
        dev.sync_single_for_cpu(dma, 512, Direction::FromDevice);
        let r = d.only(ErrorKind::SyncOutOfRange);
        assert!(r.message.contains("[allocation size=256 bytes] [sync offset+size=512]"), "{}", r.message);
        dev.unmap_single(dma, 256, Direction::FromDevice, Attrs::empty());
    }
}

/// 4 MiB: a buddy block of the largest order, 512 granules of the hash.
const BIG: usize = 4 << 20;

#[test]
fn a_sync_deep_inside_a_large_allocation_finds_it_until_freed() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    let (cpu, dma) = dev.alloc_coherent(BIG, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: syncs inside (then past the end of) a live allocation nothing else touches.
    unsafe {
        dev.sync_single_range_for_cpu(dma, 3 << 20, 64, Direction::Bidirectional);
        dev.sync_single_range_for_device(dma, 3 << 20, 64, Direction::Bidirectional);
        dev.sync_single_range_for_device(dma, BIG - 1, 1, Direction::Bidirectional);
        assert_eq!(d.kinds(), vec![], "found from 3 MiB in and from the last byte");
        dev.sync_single_range_for_cpu(dma, 3 << 20, (1 << 20) + 64, Direction::Bidirectional);
    }
    let r = d.only(ErrorKind::SyncOutOfRange);
    assert!(r.message.contains("[allocation size=4194304 bytes] [sync offset+size=4194368]"), "{}", r.message);
    d.clear();
    // SAFETY: freed once with the same arguments; the syncs after are of memory no longer mapped.
    unsafe {
        dev.free_coherent(BIG, cpu.as_ptr(), dma);
        dev.sync_single_range_for_cpu(dma, 3 << 20, 64, Direction::Bidirectional);
    }
    d.only(ErrorKind::SyncNotAllocated);
    assert_eq!(d.sys.debug_stats().unwrap().entries, 0);
}

#[test]
fn a_large_buffer_mapped_twice_stays_found_until_both_are_unmapped() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    let page = d.sys.alloc_pages(Gfp::GFP_KERNEL, 10).unwrap();
    let p = d.sys.page_address(page);
    let deep = 3 << 20;
    // SAFETY: a 4 MiB block of pages nothing else touches, mapped twice (the device only
    // reads one mapping; the other skips the overlap check), unmapped before it is freed.
    unsafe {
        let to = dev.map_single(p, BIG, Direction::ToDevice, Attrs::empty()).unwrap();
        let from = dev.map_single(p, BIG, Direction::FromDevice, Attrs::DEBUGGING_IGNORE_CACHELINES).unwrap();
        assert_eq!(to, from, "one start, two entries");
        dev.sync_single_range_for_device(to, deep, 64, Direction::ToDevice);
        assert_eq!(d.kinds(), vec![], "the first mapping (TO_DEVICE) is found");
        dev.unmap_single(to, BIG, Direction::ToDevice, Attrs::empty());
        dev.sync_single_range_for_cpu(from, deep, 64, Direction::FromDevice);
        assert_eq!(d.kinds(), vec![], "the second mapping is still found");
        dev.sync_single_range_for_device(from, deep, 64, Direction::ToDevice);
        let wrong = vec![ErrorKind::SyncWrongDirection, ErrorKind::SyncWriteOnlyForDevice];
        assert_eq!(d.kinds(), wrong, "and it is the FROM_DEVICE one");
        d.clear();
        dev.unmap_single(from, BIG, Direction::FromDevice, Attrs::empty());
        dev.sync_single_range_for_cpu(from, deep, 64, Direction::FromDevice);
    }
    d.only(ErrorKind::SyncNotAllocated);
    d.sys.free_pages(page, 10).unwrap();
}

#[test]
fn small_mappings_across_a_granule_boundary_are_found_from_either_side() {
    const GRANULE: usize = 8192;
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    // Four pages of one buddy block: aligned to 16 KiB, so the bus address to the hash granule.
    let page = d.sys.alloc_pages(Gfp::GFP_KERNEL, 2).unwrap();
    let p = d.sys.page_address(page);
    // SAFETY: ranges of a block nothing else touches, unmapped before it is freed.
    unsafe {
        let a = dev.map_single(p.add(GRANULE - 100), 256, Direction::ToDevice, Attrs::empty()).unwrap();
        let b = dev.map_single(p.add(GRANULE / 2), GRANULE, Direction::ToDevice, Attrs::empty()).unwrap();
        assert_eq!((a.0 as usize + 100) % GRANULE, 0, "the first mapping straddles a granule boundary");
        dev.sync_single_range_for_device(a, 200, 56, Direction::ToDevice);
        dev.sync_single_range_for_device(b, GRANULE - 1, 1, Direction::ToDevice);
        assert_eq!(d.kinds(), vec![], "both found from their second granule");
        dev.sync_single_range_for_device(a, 200, 100, Direction::ToDevice);
        d.only(ErrorKind::SyncOutOfRange);
        d.clear();
        dev.sync_single_range_for_device(b, GRANULE, 1, Direction::ToDevice);
        d.only(ErrorKind::SyncNotAllocated);
        dev.unmap_single(a, 256, Direction::ToDevice, Attrs::empty());
        dev.unmap_single(b, GRANULE, Direction::ToDevice, Attrs::empty());
    }
    d.sys.free_pages(page, 2).unwrap();
}

#[test]
fn sync_with_the_wrong_direction() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::NonCoherent);
    let p = kbuf(&d, 256);
    // SAFETY: a mapped kmalloc buffer; the directions are the misuse under test.
    unsafe {
        let dma = dev.map_single(p, 256, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.sync_single_for_cpu(dma, 256, Direction::FromDevice);
        assert_eq!(d.kinds(), vec![ErrorKind::SyncWrongDirection, ErrorKind::SyncReadOnlyForCpu]);
        d.clear();
        dev.unmap_single(dma, 256, Direction::ToDevice, Attrs::empty());
        let dma = dev.map_single(p, 256, Direction::FromDevice, Attrs::empty()).unwrap();
        dev.sync_single_for_device(dma, 256, Direction::ToDevice);
        assert_eq!(d.kinds(), vec![ErrorKind::SyncWrongDirection, ErrorKind::SyncWriteOnlyForDevice]);
        d.clear();
        dev.unmap_single(dma, 256, Direction::FromDevice, Attrs::empty());
        // A bidirectional mapping may be synced either way.
        let dma = dev.map_single(p, 256, Direction::Bidirectional, Attrs::empty()).unwrap();
        dev.sync_single_for_cpu(dma, 256, Direction::FromDevice);
        dev.unmap_single(dma, 256, Direction::Bidirectional, Attrs::empty());
    }
    assert_eq!(d.kinds(), vec![]);
}

#[test]
fn mapping_stack_and_program_text() {
    static RODATA: [u8; 64] = [7; 64];
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    let mut local = [0u8; 64];
    // SAFETY: the local outlives the mapping; the stack is the misuse under test.
    unsafe {
        let dma = dev.map_single(local.as_mut_ptr(), 64, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.unmap_single(dma, 64, Direction::ToDevice, Attrs::empty());
    }
    d.only(ErrorKind::MapStack);
    d.clear();
    // SAFETY: TO_DEVICE never writes the buffer; read-only data is the misuse under test.
    unsafe {
        let dma = dev.map_single(RODATA.as_ptr().cast_mut(), 64, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.unmap_single(dma, 64, Direction::ToDevice, Attrs::empty());
    }
    d.only(ErrorKind::MapText);
}

#[test]
fn mapping_a_remapped_area() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::NonCoherent);
    let (cpu, dma) = dev.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: refused: the uncached alias cannot be streaming-mapped.
    assert!(unsafe { dev.map_single(cpu.as_ptr(), 64, Direction::ToDevice, Attrs::empty()) }.is_err());
    d.only(ErrorKind::MapInvalidArea);
    // SAFETY: freed once.
    unsafe { dev.free_coherent(PAGE_SIZE, cpu.as_ptr(), dma) };
}

#[test]
fn sg_segments_too_long_or_across_the_boundary() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    dev.set_max_segment_size(1024).unwrap();
    let p = d.sys.kmalloc(2048, Gfp::GFP_KERNEL).unwrap().as_ptr();
    let mut sgl = [Scatterlist::new(p, 2048)];
    // SAFETY: a kmalloc buffer, mapped and unmapped.
    unsafe {
        dev.map_sg(&mut sgl, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.unmap_sg(&sgl, Direction::ToDevice, Attrs::empty());
    }
    d.only(ErrorKind::SgSegmentTooLong);
    d.clear();
    dev.set_max_segment_size(65536).unwrap();
    dev.set_segment_boundary_mask(0x3ff).unwrap();
    let mut sgl = [Scatterlist::new(p, 2048)];
    // SAFETY: as above.
    unsafe {
        dev.map_sg(&mut sgl, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.unmap_sg(&sgl, Direction::ToDevice, Attrs::empty());
    }
    d.only(ErrorKind::SgSegmentAcrossBoundary);
}

#[test]
fn overlapping_mappings_of_one_cache_line() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::NonCoherent);
    let p = kbuf(&d, 128);
    // SAFETY: two halves of one buffer; sharing the first line is the misuse under test.
    unsafe {
        let a = dev.map_single(p, 16, Direction::FromDevice, Attrs::empty()).unwrap();
        let b = dev.map_single(p.add(16), 16, Direction::FromDevice, Attrs::empty()).unwrap();
        d.only(ErrorKind::CachelineOverlap);
        dev.unmap_single(b, 16, Direction::FromDevice, Attrs::empty());
        dev.unmap_single(a, 16, Direction::FromDevice, Attrs::empty());
        // TO_DEVICE mappings and SKIP_CPU_SYNC are not counted.
        d.clear();
        let a = dev.map_single(p, 16, Direction::ToDevice, Attrs::empty()).unwrap();
        let b = dev.map_single(p.add(16), 16, Direction::FromDevice, Attrs::SKIP_CPU_SYNC).unwrap();
        dev.unmap_single(b, 16, Direction::FromDevice, Attrs::SKIP_CPU_SYNC);
        dev.unmap_single(a, 16, Direction::ToDevice, Attrs::empty());
        assert_eq!(d.kinds(), vec![]);
        // More than seven overlaps.
        let maps: Vec<_> =
            (0..9).map(|i| dev.map_single(p.add(i), 1, Direction::FromDevice, Attrs::empty()).unwrap()).collect();
        let kinds = d.kinds();
        assert_eq!(kinds.iter().filter(|k| **k == ErrorKind::CachelineOverlap).count(), 7);
        assert_eq!(kinds.last(), Some(&ErrorKind::CachelineOverflow));
        for m in maps {
            dev.unmap_single(m, 1, Direction::FromDevice, Attrs::empty());
        }
    }
}

#[test]
fn a_device_released_with_live_mappings() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::Coherent);
    let p = kbuf(&d, 64);
    // SAFETY: the mapping is leaked on purpose.
    unsafe { dev.map_single(p, 64, Direction::ToDevice, Attrs::empty()).unwrap() };
    let (_cpu, _dma) = dev.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    drop(dev);
    let r = d.only(ErrorKind::PendingAtRelease);
    assert!(r.message.contains("[count=2]"), "{}", r.message);
    assert_eq!(d.sys.debug_stats().unwrap().entries, 0);
}

#[test]
fn the_device_reads_what_the_cpu_did_not_hand_over() {
    // 64-byte lines, whatever the CPU has, so the dirty line is the one at offset 128.
    let d = Dbg::with("dma_debug=1 cache_line=64");
    let dev = d.dev(Coherence::NonCoherent);
    let bus = BusMaster::new(&dev);
    let (cpu, dma) = dev.alloc_noncoherent(PAGE_SIZE, Direction::ToDevice, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: the CPU owns the fresh buffer.
    unsafe { cpu.as_ptr().write_bytes(1, 64) };
    bus.read(dma, &mut [0u8; 64]).unwrap();
    let r = d.only(ErrorKind::MissingSyncForDevice);
    assert!(r.message.contains("owned by the CPU"), "{}", r.message);
    d.clear();
    // SAFETY: handed over properly; then the CPU writes again without a sync.
    unsafe {
        dev.sync_single_for_device(dma, PAGE_SIZE, Direction::ToDevice);
        bus.read(dma, &mut [0u8; 64]).unwrap();
        assert_eq!(d.kinds(), vec![]);
        cpu.as_ptr().add(128).write(9);
    }
    bus.read(dma, &mut [0u8; 256]).unwrap();
    let r = d.only(ErrorKind::MissingSyncForDevice);
    assert!(r.message.contains(&format!("{:#x}", dma.0 + 128)), "names the dirty line: {}", r.message);
    assert!(r.message.contains(&format!("{:#x}", cpu.as_ptr() as usize + 128)), "and its CPU address: {}", r.message);
    // SAFETY: freed once.
    unsafe { dev.free_noncoherent(PAGE_SIZE, cpu.as_ptr(), dma, Direction::ToDevice) };
}

#[test]
fn the_cpu_never_took_back_what_the_device_wrote() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::NonCoherent);
    let bus = BusMaster::new(&dev);
    let (cpu, dma) = dev.alloc_noncoherent(PAGE_SIZE, Direction::Bidirectional, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: ownership moves by the calls below; the missing sync_for_cpu is the bug.
    unsafe {
        dev.sync_single_for_device(dma, PAGE_SIZE, Direction::Bidirectional);
        bus.write(dma, &[5; 64]).unwrap();
        dev.sync_single_for_device(dma, PAGE_SIZE, Direction::Bidirectional);
    }
    d.only(ErrorKind::MissingSyncForCpu);
    d.clear();
    bus.write(dma, &[6; 64]).unwrap();
    // SAFETY: done right this time.
    unsafe {
        dev.sync_single_for_cpu(dma, PAGE_SIZE, Direction::Bidirectional);
        dev.sync_single_for_device(dma, PAGE_SIZE, Direction::Bidirectional);
    }
    assert_eq!(d.kinds(), vec![]);
    // SAFETY: the device writes while the CPU owns the buffer: reported.
    unsafe { dev.sync_single_for_cpu(dma, PAGE_SIZE, Direction::Bidirectional) };
    bus.write(dma, &[7; 8]).unwrap();
    d.only(ErrorKind::DeviceWritesCpuOwned);
    // SAFETY: freed once.
    unsafe { dev.free_noncoherent(PAGE_SIZE, cpu.as_ptr(), dma, Direction::Bidirectional) };
}

#[test]
fn typed_buffers_never_trip_dma_debug() {
    let d = Dbg::new();
    let dev = d.dev(Coherence::NonCoherent);
    let bus = BusMaster::new(&dev);
    let mut buf =
        dma_core::api::NonCoherentBuffer::<u8>::new(&dev, PAGE_SIZE, Direction::Bidirectional, Gfp::GFP_KERNEL)
            .unwrap();
    buf[0] = 1;
    let owned = buf.sync_for_device();
    bus.read(owned.dma_handle(), &mut [0u8; 16]).unwrap();
    bus.write(owned.dma_handle(), &[2; 16]).unwrap();
    let buf = owned.sync_for_cpu();
    assert_eq!(buf[0], 2);
    drop(buf);
    let mut v = vec![0u8; 100];
    drop(dev.map_slice(&mut v, Direction::FromDevice).unwrap());
    assert_eq!(d.kinds(), vec![]);
}

#[test]
fn every_kind_has_a_test_here() {
    // The kinds exercised above; a new kind must get a test.
    let tested = [
        ErrorKind::FreeNotAllocated,
        ErrorKind::FreeInvalidAddress,
        ErrorKind::FreeWrongSize,
        ErrorKind::FreeWrongFunction,
        ErrorKind::FreeWrongCpuAddress,
        ErrorKind::FreeWrongSgCount,
        ErrorKind::FreeWrongDirection,
        ErrorKind::MapErrorNotChecked,
        ErrorKind::SyncNotAllocated,
        ErrorKind::SyncOutOfRange,
        ErrorKind::SyncWrongDirection,
        ErrorKind::SyncReadOnlyForCpu,
        ErrorKind::SyncWriteOnlyForDevice,
        ErrorKind::SyncWrongSgCount,
        ErrorKind::MapStack,
        ErrorKind::MapText,
        ErrorKind::MapInvalidArea,
        ErrorKind::SgSegmentTooLong,
        ErrorKind::SgSegmentAcrossBoundary,
        ErrorKind::CachelineOverlap,
        ErrorKind::CachelineOverflow,
        ErrorKind::PendingAtRelease,
        ErrorKind::MissingSyncForDevice,
        ErrorKind::MissingSyncForCpu,
        ErrorKind::DeviceWritesCpuOwned,
    ];
    assert_eq!(tested.len(), ErrorKind::ALL.len());
    assert!(ErrorKind::ALL.iter().all(|k| tested.contains(k)));
}

#[test]
fn guard_mode_kills_a_cpu_touch_and_names_the_buffer() {
    use std::os::unix::process::ExitStatusExt;
    // Under qemu-user the runner names the emulator (this host cannot exec foreign binaries).
    let runner = std::env::var("DMA_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut cmd = match words.next() {
        Some(emulator) => {
            let mut c = std::process::Command::new(emulator);
            c.args(words).arg(env!("CARGO_BIN_EXE_guard_child"));
            c
        }
        None => std::process::Command::new(env!("CARGO_BIN_EXE_guard_child")),
    };
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc_sigsegv()), "the child died of the fault: {stderr}");
    assert!(stderr.contains("dma-debug guard: the CPU touched a buffer the device owns"), "{stderr}");
    assert!(stderr.contains("owned by device 'guarded'"), "{stderr}");
    assert!(stderr.contains("guard_child.rs"), "names where the buffer was allocated: {stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
}

#[test]
fn guard_mode_lets_correct_code_run() {
    let d = Dbg::with("dma_debug=guard");
    for coherence in [Coherence::Coherent, Coherence::NonCoherent] {
        let dev = d.dev(coherence);
        let bus = BusMaster::new(&dev);
        let mut buf =
            dma_core::api::NonCoherentBuffer::<u8>::new(&dev, 3 * PAGE_SIZE, Direction::Bidirectional, Gfp::GFP_KERNEL)
                .unwrap();
        buf[5000] = 1;
        let owned = buf.sync_for_device();
        let mut b = [0u8; 1];
        bus.read(dma_core::DmaAddr(owned.dma_handle().0 + 5000), &mut b).unwrap();
        assert_eq!(b[0], 1, "the device reads through the guard");
        bus.write(owned.dma_handle(), &[3; 8192]).unwrap();
        let buf = owned.sync_for_cpu();
        assert_eq!(buf[8191], 3, "{coherence:?}");
    }
    assert_eq!(d.kinds(), vec![]);
}

const fn libc_sigsegv() -> i32 {
    11
}
