//! The two-step IOVA API (`dma_iova_try_alloc`, `dma_iova_link`, ...) on devices behind an
//! IOMMU domain and on a direct device, through dma-core's public API.

use std::sync::{Arc, Mutex};

use dma_core::debug::ErrorKind;
use dma_core::sim::BusMaster;
use dma_core::{
    Attrs, Coherence, Device, DeviceConfig, Direction, DmaAddr, DmaMask, Errno, FaultKind, Gfp, IovaState, Options,
    PAGE_SIZE, Page, PhysAddr, System,
};
use dma_iommu::{Domain, DomainConfig};

const BIDI: Direction = Direction::Bidirectional;

/// A system whose warnings are collected.
fn system(opts: &str) -> (Arc<System>, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let sys = System::builder()
        .options(Options::parse(opts).unwrap())
        .log_sink(Arc::new(move |_, m: &str| sink.lock().unwrap().push(m.to_owned())))
        .build()
        .unwrap();
    (sys, log)
}

fn device(domain: &Arc<Domain>, coherence: Coherence) -> Arc<Device> {
    let cfg = DeviceConfig::new("dev").coherence(coherence).mask(DmaMask::bits(32));
    Device::new(domain.system(), domain.attach(cfg)).unwrap()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// `n` pages, each filled with its own pattern through the CPU's cached view.
fn pages(sys: &System, n: usize) -> Vec<Page> {
    (0..n)
        .map(|i| {
            let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
            let cpu = sys.page_address(page);
            let data = pattern(PAGE_SIZE, i as u8 * 40);
            // SAFETY: the page was just allocated; nothing else uses it.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), cpu, PAGE_SIZE) };
            page
        })
        .collect()
}

fn cpu_bytes(sys: &System, page: Page, off: usize, len: usize) -> Vec<u8> {
    let cpu = sys.page_address(page);
    // SAFETY: `[off, off + len)` lies in the page, which the CPU owns now.
    unsafe { std::slice::from_raw_parts(cpu.add(off), len) }.to_vec()
}

fn read(bus: &BusMaster, dma: DmaAddr, len: usize) -> Result<Vec<u8>, FaultKind> {
    let mut out = vec![0u8; len];
    bus.read(dma, &mut out).map_err(|f| f.kind)?;
    Ok(out)
}

fn at(state: &IovaState, offset: usize) -> DmaAddr {
    DmaAddr(state.addr.0 + offset as u64)
}

#[test]
fn a_device_without_an_iommu_gets_no_iova_space() {
    let (sys, _) = system("");
    let direct = Device::new(&sys, DeviceConfig::new("direct")).unwrap();
    let mut state = IovaState::from_raw(DmaAddr(0x5000), 0x1000).unwrap();
    assert!(!direct.iova_try_alloc(&mut state, PhysAddr(0x1000), PAGE_SIZE));
    assert_eq!(state, IovaState::default());
    assert!(!state.use_iova());

    let (sys, _) = system("iommu.passthrough=1");
    let domain = Domain::new(&sys).unwrap();
    let passthrough = device(&domain, Coherence::Coherent);
    let mut state = IovaState::from_raw(DmaAddr(0x5000), 0x1000).unwrap();
    assert!(!passthrough.iova_try_alloc(&mut state, PhysAddr(0x1000), PAGE_SIZE));
    assert_eq!(state, IovaState::default());
}

/// Three scattered pages linked as one 12 KiB range, one unlinked and another linked in its
/// place, then the whole range destroyed.
fn link_unlink_relink_destroy(coherence: Coherence, opts: &str) {
    let (sys, log) = system(opts);
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, coherence);
    let bus = BusMaster::new(&dev);
    let p = pages(&sys, 4);
    let mut state = IovaState::default();
    assert!(dev.iova_try_alloc(&mut state, p[0].phys(), 3 * PAGE_SIZE));
    assert!(state.use_iova());
    assert_eq!(state.size(), 3 * PAGE_SIZE as u64);
    assert_eq!(state.addr.0 % PAGE_SIZE as u64, 0);
    assert!(state.addr.0 + 3 * PAGE_SIZE as u64 <= 1 << 32, "under the device's mask: {}", state.addr);
    assert_eq!(domain.stats().mapped_bytes, 0, "space only");
    assert_eq!(read(&bus, state.addr, 16), Err(FaultKind::NotMapped));

    for (i, page) in p[..3].iter().enumerate() {
        // SAFETY: the pages stay allocated until after the destroy; the CPU keeps off them.
        unsafe { dev.iova_link(&state, page.phys(), i * PAGE_SIZE, PAGE_SIZE, BIDI, Attrs::empty()) }.unwrap();
    }
    dev.iova_sync(&state, 0, 3 * PAGE_SIZE).unwrap();
    assert_eq!(domain.stats().mapped_bytes, 3 * PAGE_SIZE as u64);
    // The device sees the CPU's bytes (on a non-coherent device: because link cleaned them).
    let want: Vec<u8> = (0..3).flat_map(|i| pattern(PAGE_SIZE, i as u8 * 40)).collect();
    assert_eq!(read(&bus, state.addr, 3 * PAGE_SIZE).unwrap(), want);

    // The device writes page 1; unlinking it hands the data to the CPU and the page is gone.
    bus.write(at(&state, PAGE_SIZE + 10), b"device").unwrap();
    // SAFETY: the CPU does not touch page 1 during the call.
    unsafe { dev.iova_unlink(&state, PAGE_SIZE, PAGE_SIZE, BIDI, Attrs::empty()) };
    assert_eq!(cpu_bytes(&sys, p[1], 10, 6), b"device");
    assert_eq!(read(&bus, at(&state, PAGE_SIZE), 16), Err(FaultKind::NotMapped), "no stale IOTLB entry either");
    assert_eq!(read(&bus, state.addr, PAGE_SIZE).unwrap(), pattern(PAGE_SIZE, 0));
    assert_eq!(read(&bus, at(&state, 2 * PAGE_SIZE), PAGE_SIZE).unwrap(), pattern(PAGE_SIZE, 80));
    assert_eq!(domain.stats().mapped_bytes, 2 * PAGE_SIZE as u64);

    // Another page in its place.
    // SAFETY: as above.
    unsafe { dev.iova_link(&state, p[3].phys(), PAGE_SIZE, PAGE_SIZE, BIDI, Attrs::empty()) }.unwrap();
    dev.iova_sync(&state, PAGE_SIZE, PAGE_SIZE).unwrap();
    assert_eq!(read(&bus, at(&state, PAGE_SIZE), PAGE_SIZE).unwrap(), pattern(PAGE_SIZE, 120));
    assert_eq!(domain.stats().iotlb_stale_hits, 0);

    // SAFETY: `[0, 12 KiB)` holds every link; the CPU keeps off the pages during the call.
    unsafe { dev.iova_destroy(&state, 3 * PAGE_SIZE, BIDI, Attrs::empty()) };
    for i in 0..3 {
        assert_eq!(read(&bus, at(&state, i * PAGE_SIZE), 16), Err(FaultKind::NotMapped));
    }
    let stats = domain.stats();
    assert_eq!(stats.mapped_bytes, 0);
    assert_eq!(stats.iotlb_stale_hits, 0);
    domain.flush_iotlb_all();
    domain.iova_domain().check_invariants();
    assert!(log.lock().unwrap().is_empty(), "no warnings: {:?}", log.lock().unwrap());
    for page in p {
        sys.free_pages(page, 0).unwrap();
    }
}

#[test]
fn linked_pages_read_as_one_range_coherent_strict() {
    link_unlink_relink_destroy(Coherence::Coherent, "");
}

#[test]
fn linked_pages_read_as_one_range_noncoherent_strict() {
    link_unlink_relink_destroy(Coherence::NonCoherent, "");
}

#[test]
fn linked_pages_read_as_one_range_noncoherent_lazy() {
    link_unlink_relink_destroy(Coherence::NonCoherent, "iommu.strict=0");
}

#[test]
fn the_first_link_keeps_the_offset_within_the_granule() {
    let (sys, log) = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::NonCoherent);
    let bus = BusMaster::new(&dev);
    let p = pages(&sys, 2);
    let first = PhysAddr(p[0].phys().0 + 0x100);
    let mut state = IovaState::default();
    assert!(dev.iova_try_alloc(&mut state, first, PAGE_SIZE));
    assert_eq!(state.addr.0 % PAGE_SIZE as u64, 0x100);
    let head = PAGE_SIZE - 0x100;
    // SAFETY: the pages stay allocated until after the destroy.
    unsafe {
        dev.iova_link(&state, first, 0, head, Direction::ToDevice, Attrs::empty()).unwrap();
        dev.iova_link(&state, p[1].phys(), head, 0x100, Direction::ToDevice, Attrs::empty()).unwrap();
    }
    dev.iova_sync(&state, 0, PAGE_SIZE).unwrap();
    let mut want = pattern(PAGE_SIZE, 0)[0x100..].to_vec();
    want.extend_from_slice(&pattern(PAGE_SIZE, 40)[..0x100]);
    assert_eq!(read(&bus, state.addr, PAGE_SIZE).unwrap(), want);
    // ToDevice: read-only for the device.
    assert_eq!(bus.write(state.addr, b"x").map_err(|f| f.kind), Err(FaultKind::Permission));
    // SAFETY: `[0, 4 KiB)` holds both links.
    unsafe { dev.iova_destroy(&state, PAGE_SIZE, Direction::ToDevice, Attrs::empty()) };
    assert_eq!(domain.stats().mapped_bytes, 0);
    domain.iova_domain().check_invariants();
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
    for page in p {
        sys.free_pages(page, 0).unwrap();
    }
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let (sys, log) = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::Coherent);
    let bus = BusMaster::new(&dev);
    let p = pages(&sys, 2);
    let mut state = IovaState::default();
    assert!(dev.iova_try_alloc(&mut state, p[0].phys(), 3 * PAGE_SIZE));
    // SAFETY: the pages stay allocated until after the destroy.
    unsafe { dev.iova_link(&state, p[0].phys(), 0, PAGE_SIZE, BIDI, Attrs::empty()) }.unwrap();
    let before = domain.stats();
    let warned = |log: &Mutex<Vec<String>>, what: &str| {
        let mut l = log.lock().unwrap();
        assert!(!l.is_empty(), "{what}: no warning");
        l.clear();
    };

    let link = |phys: PhysAddr, offset: usize, size: usize, dir: Direction| {
        // SAFETY: each of these is refused before anything is mapped.
        unsafe { dev.iova_link(&state, phys, offset, size, dir, Attrs::empty()) }
    };
    let phys = p[1].phys();
    assert_eq!(link(phys, 2 * PAGE_SIZE, 2 * PAGE_SIZE, BIDI), Err(Errno::EINVAL), "past the end");
    warned(&log, "past the end");
    assert_eq!(link(phys, 3 * PAGE_SIZE, 1, BIDI), Err(Errno::EINVAL), "at the end");
    warned(&log, "at the end");
    assert_eq!(link(phys, PAGE_SIZE, 0, BIDI), Err(Errno::EINVAL), "size 0");
    warned(&log, "size 0");
    assert_eq!(link(phys, PAGE_SIZE + 100, 100, BIDI), Err(Errno::EINVAL), "misaligned offset");
    warned(&log, "misaligned offset");
    assert_eq!(link(PhysAddr(phys.0 + 0x100), PAGE_SIZE + 0x100, 100, BIDI), Err(Errno::EIO), "inner offset");
    warned(&log, "inner offset");
    assert_eq!(link(phys, 0, PAGE_SIZE, BIDI), Err(Errno::EINVAL), "linked already");
    warned(&log, "linked already");
    assert_eq!(link(phys, PAGE_SIZE, PAGE_SIZE, Direction::None), Err(Errno::EINVAL), "DMA_NONE");
    warned(&log, "DMA_NONE");
    assert_eq!(link(PhysAddr(1 << 46), PAGE_SIZE, PAGE_SIZE, BIDI), Err(Errno::EINVAL), "not RAM");
    warned(&log, "not RAM");
    assert_eq!(dev.iova_sync(&state, 0, 4 * PAGE_SIZE), Err(Errno::EINVAL));
    warned(&log, "sync past the end");
    // SAFETY: refused: nothing is linked there.
    unsafe { dev.iova_unlink(&state, 2 * PAGE_SIZE, PAGE_SIZE, BIDI, Attrs::empty()) };
    warned(&log, "unlink of nothing");
    dev.iova_free(&state);
    warned(&log, "free with a link");
    // SAFETY: refused: a linked range is not a streaming mapping.
    unsafe { dev.unmap_single(state.addr, 3 * PAGE_SIZE, BIDI, Attrs::empty()) };
    warned(&log, "dma_unmap_single of the range");
    assert_eq!(domain.stats(), before, "nothing changed");
    assert_eq!(read(&bus, state.addr, PAGE_SIZE).unwrap(), pattern(PAGE_SIZE, 0));

    // A state this domain never handed out, and one not in use.
    let foreign = IovaState::from_raw(DmaAddr(0x7000_0000), PAGE_SIZE as u64).unwrap();
    assert_eq!(link(phys, 0, PAGE_SIZE, BIDI), Err(Errno::EINVAL));
    log.lock().unwrap().clear();
    // SAFETY: refused before anything is mapped.
    let r = unsafe { dev.iova_link(&foreign, phys, 0, PAGE_SIZE, BIDI, Attrs::empty()) };
    assert_eq!(r, Err(Errno::EINVAL));
    warned(&log, "foreign state");
    dev.iova_free(&IovaState::default());
    warned(&log, "free of an unused state");
    assert_eq!(domain.stats(), before, "nothing changed");

    // SAFETY: `[0, 4 KiB)` holds the one link.
    unsafe { dev.iova_destroy(&state, PAGE_SIZE, BIDI, Attrs::empty()) };
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
    let after = domain.stats();
    dev.iova_free(&state);
    warned(&log, "double free");
    assert_eq!(domain.stats(), after, "the double free changed nothing");
    assert_eq!(after.mapped_bytes, 0);
    domain.iova_domain().check_invariants();
    // The space is usable again.
    let mut again = IovaState::default();
    assert!(dev.iova_try_alloc(&mut again, phys, 3 * PAGE_SIZE));
    dev.iova_free(&again);
    domain.iova_domain().check_invariants();
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
    for page in p {
        sys.free_pages(page, 0).unwrap();
    }
}

#[test]
fn no_space_under_the_mask_is_a_false_with_a_zeroed_state() {
    let (sys, _) = system("");
    let domain = Domain::with_config(&sys, DomainConfig::default().aperture(0, (16 << 20) - 1)).unwrap();
    let dev = device(&domain, Coherence::Coherent);
    let mut state = IovaState::default();
    assert!(!dev.iova_try_alloc(&mut state, PhysAddr(0x1000), 32 << 20));
    assert_eq!(state, IovaState::default());
    assert!(!dev.iova_try_alloc(&mut state, PhysAddr(0x1000), 0), "size 0");
    assert!(dev.iova_try_alloc(&mut state, PhysAddr(0x1000), 8 << 20));
    dev.iova_free(&state);
    domain.iova_domain().check_invariants();
}

#[test]
fn mmio_links_without_cache_maintenance() {
    let (sys, log) = system("");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::NonCoherent);
    let doorbell = PhysAddr(1 << 46);
    let mut state = IovaState::default();
    assert!(dev.iova_try_alloc(&mut state, doorbell, PAGE_SIZE));
    // SAFETY: MMIO: no memory of the CPU is involved.
    unsafe { dev.iova_link(&state, doorbell, 0, PAGE_SIZE, Direction::FromDevice, Attrs::MMIO) }.unwrap();
    assert_eq!(domain.iova_to_phys(state.addr), Some(doorbell));
    // SAFETY: as above.
    unsafe { dev.iova_destroy(&state, PAGE_SIZE, Direction::FromDevice, Attrs::MMIO) };
    assert_eq!(domain.iova_to_phys(state.addr), None);
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
}

#[test]
fn dma_debug_tracks_each_link() {
    let (sys, _) = system("dma_debug=1");
    let domain = Domain::new(&sys).unwrap();
    let dev = device(&domain, Coherence::NonCoherent);
    let bus = BusMaster::new(&dev);
    let p = pages(&sys, 2);
    let mut state = IovaState::default();
    assert!(dev.iova_try_alloc(&mut state, p[0].phys(), 2 * PAGE_SIZE));
    for (i, page) in p.iter().enumerate() {
        // SAFETY: the pages stay allocated until after the destroy.
        unsafe { dev.iova_link(&state, page.phys(), i * PAGE_SIZE, PAGE_SIZE, BIDI, Attrs::empty()) }.unwrap();
    }
    assert_eq!(sys.debug_stats().unwrap().entries, 2);
    bus.write(at(&state, PAGE_SIZE), b"dev").unwrap();
    // A sync inside the second link finds its entry.
    // SAFETY: inside a live link.
    unsafe { dev.sync_single_for_cpu(at(&state, PAGE_SIZE), 3, BIDI) };
    assert_eq!(cpu_bytes(&sys, p[1], 0, 3), b"dev");
    let stats = sys.debug_stats().unwrap();
    assert_eq!(stats.error_count, 0, "{stats:?}");
    // One unlink over both links ends both entries.
    // SAFETY: `[0, 8 KiB)` holds both links.
    unsafe { dev.iova_destroy(&state, 2 * PAGE_SIZE, BIDI, Attrs::empty()) };
    let stats = sys.debug_stats().unwrap();
    assert_eq!((stats.entries, stats.error_count), (0, 0), "{stats:?}");
    // A sync of an unlinked range is reported.
    // SAFETY: nothing is mapped there; dma-debug reports it and the IOMMU skips it.
    unsafe { dev.sync_single_for_cpu(state.addr, 16, BIDI) };
    assert_eq!(sys.debug_stats().unwrap().count(ErrorKind::SyncNotAllocated), 1);
    for page in p {
        sys.free_pages(page, 0).unwrap();
    }
}
