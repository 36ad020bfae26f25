//! The host platform (`platform=host`): real pinned pages with physical addresses from
//! `/proc/self/pagemap`. These tests need root and a real pagemap (native, not qemu-user):
//! they fail, never skip, without root. The hugepage test reserves 2 MiB pages through
//! `/proc/sys/vm/nr_hugepages` and puts the old value back.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;

use common::{device, logged, system};
use dma_core::api::NonCoherentBuffer;
use dma_core::sim::BusMaster;
use dma_core::{Attrs, Coherence, Direction, Errno, Gfp, Options, PAGE_SIZE, PhysAddr, System};

/// Panics with a clear message unless the process runs as root.
fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("Uid line in /proc/self/status");
    assert_eq!(
        euid, "0",
        "the host platform tests must run as root: they read physical addresses from /proc/self/pagemap \
         (needs CAP_SYS_ADMIN) and reserve hugepages; run them with sudo"
    );
}

/// The physical address of the byte at `va`, read from pagemap here, independently of
/// the library.
fn pagemap_phys(va: *const u8) -> u64 {
    let va = va as usize;
    let mut e = [0u8; 8];
    File::open("/proc/self/pagemap").unwrap().read_exact_at(&mut e, (va / PAGE_SIZE * 8) as u64).unwrap();
    let e = u64::from_ne_bytes(e);
    assert!(e & (1 << 63) != 0, "page at {va:#x} is not present");
    ((e & ((1 << 55) - 1)) << 12) | (va % PAGE_SIZE) as u64
}

/// The `VmFlags` of the mapping holding `va`, from `/proc/self/smaps`.
fn vm_flags(va: *const u8) -> String {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                    inside = (a..b).contains(&(va as usize));
                    continue;
                }
            }
        }
        if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.trim().to_owned();
            }
        }
    }
    panic!("no mapping holds {va:p}");
}

#[test]
fn physical_addresses_come_from_pagemap_and_are_stable() {
    require_root();
    let (sys, _) = system("platform=host host_mem=4M");
    let ranges = sys.ram_ranges();
    assert!(!ranges.is_empty());
    assert!(ranges.iter().all(|(b, s)| b.0 != 0 && *s >= PAGE_SIZE as u64), "{ranges:?}");
    assert_eq!(ranges.iter().map(|r| r.1).sum::<u64>(), 4 << 20, "every page of host_mem is RAM");
    assert!(ranges.windows(2).all(|w| w[0].0.0 + w[0].1 <= w[1].0.0), "runs are sorted and disjoint");
    for _ in 0..16 {
        let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
        let cpu = sys.page_address(page);
        // SAFETY: the page is ours; touching it must not move it.
        unsafe { cpu.write_bytes(0x5a, PAGE_SIZE) };
        assert_eq!(pagemap_phys(cpu), page.phys().0, "the library's address is the kernel's");
        assert_eq!(pagemap_phys(cpu), page.phys().0, "a second read agrees");
        assert_eq!(sys.virt_to_phys(cpu), Some(page.phys()));
        assert_eq!(sys.phys_to_virt(page.phys(), PAGE_SIZE).map(|p| p.as_ptr()), Some(cpu));
        sys.free_pages(page, 0).unwrap();
    }
    assert_eq!(sys.cache_line_size(), dma_arch::cache_line_size());
}

#[test]
fn platform_ram_is_locked() {
    require_root();
    let (sys, _) = system("platform=host host_mem=2M");
    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
    let flags = vm_flags(sys.page_address(page));
    assert!(flags.split_whitespace().any(|f| f == "lo"), "VmFlags {flags:?} lack 'lo' (mlocked)");
}

#[test]
fn a_non_coherent_allocation_is_cached_memory_at_its_physical_address() {
    require_root();
    let (sys, _) = system("platform=host host_mem=2M");
    let dev = device(&sys, "nic", Coherence::NonCoherent, 64);
    let (cpu, dma) = dev.alloc_noncoherent(PAGE_SIZE, Direction::Bidirectional, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(dma.0, pagemap_phys(cpu.as_ptr()), "no IOMMU, no offset: the bus address is physical");
    // The device (a bus master over the same memory) sees what the CPU wrote once cleaned.
    // SAFETY: the buffer is ours, PAGE_SIZE long; the device does not run concurrently.
    unsafe {
        cpu.as_ptr().write_bytes(0x3c, PAGE_SIZE);
        dev.sync_single_for_device(dma, PAGE_SIZE, Direction::Bidirectional);
        let mut got = vec![0u8; PAGE_SIZE];
        BusMaster::new(&dev).read(dma, &mut got).unwrap();
        assert!(got.iter().all(|&b| b == 0x3c));
        BusMaster::new(&dev).write(dma, b"device").unwrap();
        dev.sync_single_for_cpu(dma, PAGE_SIZE, Direction::Bidirectional);
        assert_eq!(std::slice::from_raw_parts(cpu.as_ptr(), 6), b"device");
        dev.free_noncoherent(PAGE_SIZE, cpu.as_ptr(), dma, Direction::Bidirectional);
    }
    let mut buf = NonCoherentBuffer::<u8>::new(&dev, 64, Direction::ToDevice, Gfp::GFP_KERNEL).unwrap();
    buf[..5].copy_from_slice(b"hello");
    let owned = buf.sync_for_device();
    let mut seen = [0u8; 5];
    BusMaster::new(&dev).read(owned.dma_handle(), &mut seen).unwrap();
    assert_eq!(&seen, b"hello");
    drop(owned.sync_for_cpu());
}

#[test]
fn a_coherent_allocation_for_a_non_coherent_device_is_refused_with_the_reason() {
    require_root();
    let (sys, log) = system("platform=host host_mem=2M");
    let nc = device(&sys, "nc", Coherence::NonCoherent, 64);
    let free = sys.stats().zones.iter().map(|z| z.free_pages).sum::<u64>();
    assert_eq!(nc.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).err(), Some(Errno::EOPNOTSUPP));
    assert!(logged(&log, "userspace cannot map memory uncached"), "{:?}", log.lock().unwrap());
    assert_eq!(sys.stats().zones.iter().map(|z| z.free_pages).sum::<u64>(), free, "nothing leaked");
    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
    assert_eq!(sys.remap_uncached(page.phys(), PAGE_SIZE).err(), Some(Errno::EOPNOTSUPP));
    assert_eq!(sys.vmap_uncached(&[page]).err(), Some(Errno::EOPNOTSUPP));
    // A coherent device gets cached memory, at its physical address.
    let co = device(&sys, "co", Coherence::Coherent, 64);
    let (cpu, dma) = co.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(dma.0, pagemap_phys(cpu.as_ptr()));
    // SAFETY: allocated just above with the same size.
    unsafe { co.free_coherent(PAGE_SIZE, cpu.as_ptr(), dma) };
}

#[test]
fn vmap_makes_scattered_host_pages_virtually_contiguous() {
    require_root();
    let (sys, _) = system("platform=host host_mem=2M");
    let pages: Vec<_> = (0..3).map(|_| sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap()).collect();
    let v = sys.vmap(&pages).unwrap();
    for (i, p) in pages.iter().enumerate() {
        // SAFETY: the vmap covers three pages; the page addresses are the same memory.
        unsafe {
            *v.as_ptr().add(i * PAGE_SIZE + 7) = i as u8 + 1;
            assert_eq!(*sys.page_address(*p).add(7), i as u8 + 1);
        }
        assert_eq!(pagemap_phys(v.as_ptr().wrapping_add(i * PAGE_SIZE)), p.phys().0);
        assert_eq!(sys.vmap_to_phys(v.as_ptr().wrapping_add(i * PAGE_SIZE + 9)), Some(PhysAddr(p.phys().0 + 9)));
    }
    // SAFETY: nothing uses the vmap afterwards.
    assert_eq!(unsafe { sys.vunmap(v) }.unwrap(), pages);
}

#[test]
fn without_a_contiguous_run_there_is_no_pool_and_heap_buffers_fail_cleanly() {
    require_root();
    // 4 KiB pages are scattered: a 16 MiB pool does not fit; whatever the halving finds,
    // a heap buffer either bounces or fails with EIO, never maps to a wrong address.
    let (sys, _) = system("platform=host host_mem=2M");
    let dev = device(&sys, "d", Coherence::Coherent, 64);
    let mut heap = vec![7u8; 512];
    // SAFETY: `heap` outlives the mapping.
    match unsafe { dev.map_single(heap.as_mut_ptr(), 512, Direction::ToDevice, Attrs::empty()) } {
        Ok(dma) => {
            assert!(sys.swiotlb().is_some_and(|t| t.contains(PhysAddr(dma.0))));
            // SAFETY: mapped just above.
            unsafe { dev.unmap_single(dma, 512, Direction::ToDevice, Attrs::empty()) };
        }
        Err(e) => assert_eq!((e, sys.swiotlb().is_none()), (Errno::EIO, true)),
    }
}

#[test]
fn host_low_gathers_pages_below_a_limit_and_keeps_only_those() {
    require_root();
    // A limit most fresh pages lie below: the 75th percentile of a first sample.
    let limit = {
        let (probe, _) = system("platform=host host_mem=4M");
        let mut bases: Vec<u64> = probe.ram_ranges().iter().map(|r| r.0.0).collect();
        bases.sort_unstable();
        (bases[bases.len() * 3 / 4] + PAGE_SIZE as u64) & !(PAGE_SIZE as u64 - 1)
    };
    let (sys, log) = system(&format!("platform=host host_mem=0 host_low=256K,{limit:#x} swiotlb=0"));
    let ranges = sys.ram_ranges();
    let total: u64 = ranges.iter().map(|r| r.1).sum();
    assert!(total >= 256 << 10, "gathered {total} bytes; {:?}", log.lock().unwrap());
    assert!(ranges.iter().all(|(b, s)| b.0 + s <= limit), "only pages below {limit:#x} are kept");
}

#[test]
fn the_host_refuses_a_simulated_cache_line_and_an_empty_layout() {
    require_root();
    let build = |s: &str| System::new(Options::parse(s).unwrap()).err();
    assert_eq!(build("platform=host cache_line=64"), Some(Errno::EINVAL));
    assert_eq!(build("platform=host host_mem=0"), Some(Errno::EINVAL));
}

/// Reserves hugepages for the life of the value, then puts the old count back.
struct HugePages {
    old: String,
}

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

impl HugePages {
    fn reserve(n: u64) -> HugePages {
        let old = std::fs::read_to_string(NR_HUGEPAGES).unwrap().trim().to_owned();
        let total = old.parse::<u64>().unwrap() + n;
        std::fs::write(NR_HUGEPAGES, total.to_string()).expect("write nr_hugepages (root)");
        let got: u64 = std::fs::read_to_string(NR_HUGEPAGES).unwrap().trim().parse().unwrap();
        assert!(got >= total, "the kernel reserved only {got} of {total} hugepages");
        HugePages { old }
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        let _ = std::fs::write(NR_HUGEPAGES, &self.old);
    }
}

/// Everything that needs physically contiguous memory, in one test so that only one
/// test changes `nr_hugepages` at a time.
#[test]
fn hugepages_give_contiguous_runs_for_swiotlb_cma_and_multi_page_allocations() {
    require_root();
    // One hugepage for the pool, one for CMA, the rest for allocations. The default CMA
    // area stays below 4 GiB as on arm64; hugepages may all lie above, so lift the limit.
    let _reserved = HugePages::reserve(6);
    let (sys, log) = system("platform=host host_mem=2M hugepages=6 swiotlb=2M cma=2M@-0x10000000000");
    let ranges = sys.ram_ranges();
    assert!(ranges.iter().any(|(b, s)| b.0 % (2 << 20) == 0 && *s >= 2 << 20), "{ranges:?}");
    let tlb = sys.swiotlb().expect("a 2 MiB pool fits in a hugepage");
    assert_eq!(tlb.size(), 2 << 20);
    assert!(sys.cma_stats().is_some(), "{:?}", log.lock().unwrap());

    // A heap buffer has no physical address: it bounces, and the data arrives.
    let dev = device(&sys, "nic", Coherence::NonCoherent, 64);
    let bus = BusMaster::new(&dev);
    let mut heap = vec![0xa5u8; 3000];
    let before = tlb.stats().mappings;
    // SAFETY: `heap` outlives the mapping and the CPU leaves it alone while mapped.
    unsafe {
        let dma = dev.map_single(heap.as_mut_ptr(), 3000, Direction::Bidirectional, Attrs::empty()).unwrap();
        assert!(tlb.contains(PhysAddr(dma.0)), "{dma} is in the pool");
        assert_eq!(tlb.stats().mappings, before + 1);
        let mut got = vec![0u8; 3000];
        bus.read(dma, &mut got).unwrap();
        assert!(got.iter().all(|&b| b == 0xa5));
        bus.write(dma, b"from the device").unwrap();
        dev.unmap_single(dma, 3000, Direction::Bidirectional, Attrs::empty());
    }
    assert_eq!(&heap[..15], b"from the device");

    // Multi-page allocations come from the hugepage runs, physically contiguous.
    let (cpu, dma) = dev.alloc_noncoherent(64 << 10, Direction::FromDevice, Gfp::GFP_KERNEL).unwrap();
    for i in 0..16 {
        assert_eq!(pagemap_phys(cpu.as_ptr().wrapping_add(i * PAGE_SIZE)), dma.0 + (i * PAGE_SIZE) as u64);
    }
    // SAFETY: allocated just above.
    unsafe { dev.free_noncoherent(64 << 10, cpu.as_ptr(), dma, Direction::FromDevice) };
    let page = dev.alloc_contiguous(1 << 20, Gfp::GFP_KERNEL).expect("CMA serves 1 MiB");
    dev.release_contiguous(page, 1 << 20);

    // A device whose mask lies below every page it could use bounces or fails cleanly.
    let lowest = ranges.iter().map(|r| r.0.0).min().unwrap();
    let tiny_bits = (64 - lowest.leading_zeros()).saturating_sub(1).max(12);
    match dma_core::Device::new(
        &sys,
        dma_core::DeviceConfig::new("tiny").coherence(Coherence::Coherent).mask(dma_core::DmaMask::bits(tiny_bits)),
    ) {
        Err(e) => assert!(matches!(e, Errno::EIO | Errno::EINVAL | Errno::ENODEV), "{e}"),
        Ok(tiny) => {
            let p = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
            // SAFETY: the page stays allocated until after the attempt.
            match unsafe { tiny.map_page(p, 0, 64, Direction::ToDevice, Attrs::empty()) } {
                Ok(dma) => {
                    assert!(dma.0 + 64 <= 1 << tiny_bits, "{dma} fits the mask");
                    // SAFETY: mapped just above.
                    unsafe { tiny.unmap_single(dma, 64, Direction::ToDevice, Attrs::empty()) };
                }
                Err(e) => assert_eq!(e, Errno::EIO),
            }
            assert!(tiny.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).is_err(), "no page lies below the mask");
        }
    }
    sys.check_invariants();
}

/// The permissions column of `/proc/self/maps` for the mapping holding `va`.
fn map_perms(va: *const u8) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let mut cols = line.split_whitespace();
        let (range, perms) = (cols.next().unwrap(), cols.next().unwrap());
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap());
        if (a..b).contains(&(va as usize)) {
            return perms.to_owned();
        }
    }
    panic!("no mapping holds {va:p}");
}

#[test]
fn guard_mode_keeps_the_cpu_out_and_lets_the_device_in() {
    // The host has one view of RAM: the CPU's pages guard mode protects are the very
    // pages the device must reach. The bus master goes through the memfd, so it does.
    // (One page: the host's scattered pages may hold no run of two.)
    require_root();
    let (sys, _) = system("platform=host host_mem=2M dma_debug=guard");
    for (name, coherence) in [("coherent", Coherence::Coherent), ("noncoherent", Coherence::NonCoherent)] {
        let dev = device(&sys, name, coherence, 64);
        let bus = BusMaster::new(&dev);
        let mut buf = NonCoherentBuffer::<u8>::new(&dev, PAGE_SIZE, Direction::Bidirectional, Gfp::GFP_KERNEL).unwrap();
        buf[7] = 9;
        let cpu = buf.as_ptr();
        assert_eq!(map_perms(cpu), "rw-s", "{name}: the CPU owns it");
        let owned = buf.sync_for_device();
        assert_eq!(map_perms(cpu), "---s", "{name}: device-owned pages are guarded");
        let mut b = [0u8; 1];
        bus.read(dma_core::DmaAddr(owned.dma_handle().0 + 7), &mut b).unwrap();
        assert_eq!(b[0], 9, "{name}: the device reads through the guard");
        bus.write(owned.dma_handle(), &[5; PAGE_SIZE]).unwrap();
        let buf = owned.sync_for_cpu();
        assert_eq!(map_perms(cpu), "rw-s", "{name}: back with the CPU");
        assert!(buf.iter().all(|&x| x == 5), "{name}: the device's write arrived");
    }
    assert_eq!(sys.debug_stats().unwrap().error_count, 0);
}
