//! Contiguous areas wired into allocation: the default area, per-device areas, reach,
//! exhaustion, and free by address.

mod common;

use common::{device, system};
use dma_core::{Attrs, Coherence, Device, DeviceConfig, Direction, DmaMask, Errno, Gfp, Options, PAGE_SIZE, System};

const MIB: usize = 1 << 20;

#[test]
fn large_allocations_come_from_the_default_area_and_go_back_to_it() {
    let (sys, _) = system("cma=64M");
    let area = sys.cma_stats().unwrap();
    assert_eq!(area.stats.total_pages, 16384);
    assert!(area.base.0 + (64 << 20) <= 1 << 32, "the default area sits below 4 GiB");
    let dev = device(&sys, "isp", Coherence::NonCoherent, 32);
    // 8 MiB: more than the buddy allocator's largest block (4 MiB); only CMA can serve it.
    let (cpu, dma) = dev.alloc_coherent(8 * MIB, Gfp::GFP_KERNEL).unwrap();
    assert!(dma.0 >= area.base.0 && dma.0 + 8 * MIB as u64 <= area.base.0 + (64 << 20));
    assert_eq!(dma.0 % MIB as u64, 0, "aligned to min(order of the size, CMA_ALIGNMENT) = 1 MiB");
    assert_eq!(sys.cma_stats().unwrap().stats.free_pages, 16384 - 2048);
    // SAFETY: live allocation, freed once.
    unsafe { dev.free_coherent(8 * MIB, cpu.as_ptr(), dma) };
    assert_eq!(sys.cma_stats().unwrap().stats.free_pages, 16384, "free found the area by address");
    // The cached kind uses the same path.
    let (page, dma) = dev.alloc_pages(6 * MIB, Direction::FromDevice, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(page.phys().0, dma.0);
    assert_eq!(sys.cma_stats().unwrap().stats.free_pages, 16384 - 1536);
    // SAFETY: live allocation, freed once.
    unsafe { dev.free_pages(6 * MIB, page, dma, Direction::FromDevice) };
    assert_eq!(sys.cma_stats().unwrap().stats.releases, 2);
}

#[test]
fn single_pages_and_atomic_callers_skip_the_shared_area() {
    let (sys, _) = system("cma=16M");
    let dev = device(&sys, "d", Coherence::Coherent, 32);
    let (cpu, dma) = dev.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(sys.cma_stats().unwrap().stats.allocations, 0, "one page comes from the page allocator");
    // SAFETY: live allocation, freed once.
    unsafe { dev.free_coherent(PAGE_SIZE, cpu.as_ptr(), dma) };
    assert_eq!(
        dev.alloc_coherent(8 * MIB, Gfp::GFP_ATOMIC | Gfp::__GFP_NOWARN).err(),
        Some(Errno::ENOMEM),
        "CMA only serves callers that may block"
    );
    let (cpu, dma) = dev.alloc_coherent(2 * PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(sys.cma_stats().unwrap().stats.allocations, 1);
    // SAFETY: live allocation, freed once.
    unsafe { dev.free_coherent(2 * PAGE_SIZE, cpu.as_ptr(), dma) };
}

#[test]
fn an_area_the_device_cannot_reach_is_skipped() {
    let (sys, _) = system("cma=32M@0x100000000");
    let low = device(&sys, "low", Coherence::Coherent, 32);
    assert_eq!(low.alloc_coherent(8 * MIB, Gfp::GFP_KERNEL | Gfp::__GFP_NOWARN).err(), Some(Errno::ENOMEM));
    let (cpu, dma) = low.alloc_coherent(2 * MIB, Gfp::GFP_KERNEL).unwrap();
    assert!(dma.0 < 1 << 32, "fell back to the page allocator within the mask");
    // SAFETY: live allocation, freed once.
    unsafe { low.free_coherent(2 * MIB, cpu.as_ptr(), dma) };
    let high = device(&sys, "high", Coherence::Coherent, 64);
    let (cpu, dma) = high.alloc_coherent(8 * MIB, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(dma.0, 0x1_0000_0000, "fixed placement at the given base");
    // SAFETY: live allocation, freed once.
    unsafe { high.free_coherent(8 * MIB, cpu.as_ptr(), dma) };
    assert_eq!(sys.cma_stats().unwrap().stats.allocations, 1);
}

#[test]
fn exhaustion_is_enomem_and_recovers() {
    let (sys, _) = system("cma=8M@0x100000000");
    let dev = device(&sys, "fill", Coherence::Coherent, 64);
    let a = dev.alloc_attrs(6 * MIB, Gfp::GFP_KERNEL, Attrs::FORCE_CONTIGUOUS).unwrap();
    assert_eq!(dev.alloc_attrs(6 * MIB, Gfp::GFP_KERNEL, Attrs::NO_WARN).err(), Some(Errno::ENOMEM));
    assert_eq!(sys.cma_stats().unwrap().stats.failures, 1);
    // SAFETY: live allocation, freed once.
    unsafe { dev.free_attrs(6 * MIB, a.0.as_ptr(), a.1, Attrs::FORCE_CONTIGUOUS) };
    let b = dev.alloc_attrs(6 * MIB, Gfp::GFP_KERNEL, Attrs::empty()).unwrap();
    // SAFETY: live allocation, freed once.
    unsafe { dev.free_attrs(6 * MIB, b.0.as_ptr(), b.1, Attrs::empty()) };
}

#[test]
fn a_device_area_serves_every_size_and_returns_to_ram_with_the_device() {
    let (sys, _) = system("");
    let free_before = sys.stats().zones[1].free_pages;
    {
        let dev = Device::new(&sys, DeviceConfig::new("vpu").mask(DmaMask::bits(32)).cma(16 << 20)).unwrap();
        assert_eq!(sys.stats().zones[1].free_pages, free_before - 4096, "reserved from ZONE_DMA32, in reach");
        let (cpu, dma) = dev.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
        let own = dev.cma_stats().unwrap();
        assert_eq!(own.name, "vpu");
        assert_eq!(own.stats.allocations, 1, "even one page comes from the device's own area");
        assert!(dma.0 >= own.base.0 && dma.0 < own.base.0 + (16 << 20));
        // SAFETY: live allocation, freed once.
        unsafe { dev.free_coherent(PAGE_SIZE, cpu.as_ptr(), dma) };
    }
    assert_eq!(sys.stats().zones[1].free_pages, free_before, "the area went back to RAM with the device");
}

#[test]
fn bad_cma_options_fail_loudly() {
    // Fixed placement over memory that is not RAM.
    let o = Options::parse("cma=16M@0x40000000").unwrap();
    assert!(System::new(o).is_err());
    // Larger than RAM below 4 GiB.
    let o = Options::parse("cma=1G").unwrap();
    assert_eq!(
        System::builder().options(o).log_sink(std::sync::Arc::new(|_, _| {})).build().err(),
        Some(Errno::ENOMEM)
    );
}
