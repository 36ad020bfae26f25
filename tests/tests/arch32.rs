//! 32-bit correctness: `dma_addr_t` and `phys_addr_t` stay 64-bit when `usize` is 32 bits,
//! RAM above 4 GiB works, and sizes near `usize::MAX` get the kernel's error shape, never a
//! panic, a wrapped size or a truncated address.
//!
//! Written for armv7 (scripts/cross.sh runs it under qemu-arm), where a `u64 as usize`
//! would silently drop the top half of an address. Most of it holds on every target and
//! runs everywhere; only what depends on a 32-bit address space is under `cfg`.

mod common;

use common::{device, system};
use dma_core::api::{CoherentBuffer, NonCoherentBuffer};
use dma_core::sim::BusMaster;
use dma_core::{
    Attrs, Coherence, DMA_MAPPING_ERROR, Direction, DmaAddr, DmaMask, Errno, Gfp, PAGE_SIZE, Page, Pfn, PhysAddr,
    dma_bit_mask,
};

const GIB4: u64 = 1 << 32;

/// The errors a size that cannot be satisfied may get: `EINVAL` when it cannot even be
/// represented (page rounding overflows), `ENOMEM` when it is merely too big.
fn refused<T>(r: Result<T, Errno>) -> bool {
    matches!(r, Err(Errno::EINVAL | Errno::ENOMEM))
}

#[test]
fn addresses_and_masks_are_64_bit_whatever_the_pointer_width() {
    assert_eq!(size_of::<DmaAddr>(), 8);
    assert_eq!(size_of::<PhysAddr>(), 8);
    assert_eq!(size_of::<Pfn>(), 8);
    assert_eq!(DMA_MAPPING_ERROR.0, u64::MAX, "~(dma_addr_t)0, not ~(size_t)0");
    assert_eq!(DmaMask::bits(64).value(), u64::MAX);
    assert_eq!(DmaMask::bits(40).value(), dma_bit_mask(40));
    assert_eq!(DmaMask::bits(40).width(), 40);
    let high = PhysAddr(0x12_3456_7abc);
    assert_eq!(high.pfn(), Pfn(0x0123_4567));
    assert_eq!(high.pfn().phys(), PhysAddr(0x12_3456_7000));
    assert_eq!(high.page_offset(), 0xabc);
    assert_eq!(PhysAddr(u64::MAX - 0x10).checked_add(0x20), None);
    assert_eq!(DmaAddr(GIB4 - 1).checked_add(1), Some(DmaAddr(GIB4)), "no wrap at 4 GiB");
}

#[test]
fn the_default_layout_has_ram_above_4g_and_a_64bit_device_uses_it() {
    let (sys, _) = system("");
    let top = sys.ram_ranges().iter().map(|&(b, s)| b.0 + s).max().unwrap();
    assert!(top > GIB4, "the default layout puts RAM above 4 GiB: {:?}", sys.ram_ranges());
    let dev = device(&sys, "nvme", Coherence::NonCoherent, 64);
    assert!(dev.required_mask() > u64::from(u32::MAX), "required mask {:#x}", dev.required_mask());
    let bus = BusMaster::new(&dev);

    let mut buf = NonCoherentBuffer::<u8>::new(&dev, 3 * PAGE_SIZE, Direction::Bidirectional, Gfp::GFP_KERNEL).unwrap();
    let cpu = buf.as_ptr();
    let phys = sys.virt_to_phys(cpu).expect("the buffer is platform RAM");
    assert!(phys.0 >= GIB4, "GFP_KERNEL memory comes from ZONE_NORMAL: {phys:?}");
    assert_eq!(sys.phys_to_virt(phys, buf.len()).map(|p| p.as_ptr().cast_const()), Some(cpu));
    buf.iter_mut().enumerate().for_each(|(i, b)| *b = (i % 251) as u8);
    let owned = buf.sync_for_device();
    assert_eq!(owned.dma_handle().0, phys.0, "direct mapping: bus address = physical address, all 64 bits");
    let mut seen = vec![0u8; 3 * PAGE_SIZE];
    bus.read(owned.dma_handle(), &mut seen).unwrap();
    assert!(seen.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8), "the device reads what the CPU wrote");
    bus.write(DmaAddr(owned.dma_handle().0 + PAGE_SIZE as u64), b"above 4 GiB").unwrap();
    let buf = owned.sync_for_cpu();
    assert_eq!(&buf[PAGE_SIZE..PAGE_SIZE + 11], b"above 4 GiB");
}

/// A RAM region that straddles 4 GiB, and low RAM at the address its upper half would
/// alias to if any path truncated a physical address to 32 bits.
#[test]
fn ram_straddling_4g_keeps_every_address_bit() {
    // Low RAM 8..40 MiB; high RAM 0xfe00_0000..0x1_0200_0000. 0x1_0100_0000 truncated
    // to 32 bits is 0x0100_0000, which is low RAM: a truncation would alias, not fault.
    let (sys, _) = system("mem=32M@0x800000,64M@0xfe000000 swiotlb=2M");
    let dev = device(&sys, "wide", Coherence::Coherent, 64);
    let bus = BusMaster::new(&dev);
    let high = PhysAddr(0x1_0100_0000);
    let alias = PhysAddr(high.0 & u64::from(u32::MAX));
    assert!(sys.is_ram(high, PAGE_SIZE) && sys.is_ram(alias, PAGE_SIZE));
    let hp = sys.phys_to_virt(high, PAGE_SIZE).unwrap().as_ptr();
    let ap = sys.phys_to_virt(alias, PAGE_SIZE).unwrap().as_ptr();
    assert_ne!(hp, ap);
    assert_eq!(sys.virt_to_phys(hp), Some(high));
    assert_eq!(sys.virt_to_phys(ap), Some(alias));
    // One contiguous CPU range across the 4 GiB line, as in the physical layout.
    let below = sys.phys_to_virt(PhysAddr(GIB4 - 8), 16).expect("a range across 4 GiB inside one region");
    assert_eq!(sys.phys_to_virt(PhysAddr(GIB4), 8).unwrap().as_ptr(), below.as_ptr().wrapping_add(8));
    assert_eq!(sys.virt_to_phys(below.as_ptr().wrapping_add(8)), Some(PhysAddr(GIB4)));

    // Take every 2 MiB block the allocator has and stamp each with its own physical
    // address through the CPU; the device must read each stamp at that bus address.
    let order = 9;
    let mut blocks = Vec::new();
    while let Ok(page) = sys.alloc_pages(Gfp::GFP_KERNEL, order) {
        blocks.push(page);
    }
    assert!(blocks.iter().any(|p| p.phys().0 >= GIB4), "some blocks lie above 4 GiB");
    assert!(blocks.iter().any(|p| p.phys().0 < GIB4 && p.phys().0 >= 0xfe00_0000), "and some just below");
    let size = PAGE_SIZE << order;
    for p in &blocks {
        let cpu = sys.page_address(*p);
        assert!(!cpu.is_null());
        assert_eq!(sys.virt_to_phys(cpu), Some(p.phys()));
        assert_eq!(sys.virt_to_page(cpu.wrapping_add(size - 1)), Some(Page(Pfn(p.pfn().0 + (1 << order) - 1))));
        // SAFETY: the block is ours, `size` bytes long in the cached view.
        unsafe {
            cpu.cast::<u64>().write_unaligned(p.phys().0);
            cpu.add(size - 8).cast::<u64>().write_unaligned(!p.phys().0);
        }
    }
    for p in &blocks {
        let mut head = [0u8; 8];
        let mut tail = [0u8; 8];
        bus.read(DmaAddr(p.phys().0), &mut head).unwrap();
        bus.read(DmaAddr(p.phys().0 + size as u64 - 8), &mut tail).unwrap();
        assert_eq!(u64::from_le_bytes(head), p.phys().0, "block at {:?}", p.phys());
        assert_eq!(u64::from_le_bytes(tail), !p.phys().0, "block at {:?}", p.phys());
    }
    for p in blocks {
        sys.free_pages(p, order).unwrap();
    }
}

/// RAM only far above 4 GiB besides a little low memory for swiotlb: a device whose mask
/// ends just below that RAM (at 2^38) must bounce: 64-bit addresses against a 38-bit mask.
#[test]
fn ram_far_above_4g_bounces_for_a_narrower_mask() {
    let (sys, _) = system("mem=16M@0x800000,32M@0x4000000000 swiotlb=4M");
    let wide = device(&sys, "wide", Coherence::NonCoherent, 64);
    let narrow = device(&sys, "narrow", Coherence::NonCoherent, 38);
    let (cpu, dma) = wide.alloc_coherent(2 * PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    assert!(dma.0 >= 0x40_0000_0000, "{dma:?}");
    // SAFETY: freed right away, never used.
    unsafe { wide.free_coherent(2 * PAGE_SIZE, cpu.as_ptr(), dma) };

    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
    assert!(page.phys().0 >= 0x40_0000_0000);
    let cpu = sys.page_address(page);
    let bus = BusMaster::new(&narrow);
    // SAFETY: the page is ours and outlives the mapping; the CPU leaves it alone while
    // it is mapped.
    unsafe {
        cpu.write_bytes(0x5a, PAGE_SIZE);
        let dma = narrow.map_page(page, 0, PAGE_SIZE, Direction::ToDevice, Attrs::empty()).unwrap();
        assert!(dma.0 <= dma_bit_mask(38), "the bounce slot is inside the mask: {dma:?}");
        assert_ne!(dma.0, page.phys().0);
        let mut seen = vec![0u8; PAGE_SIZE];
        bus.read(dma, &mut seen).unwrap();
        assert!(seen.iter().all(|&b| b == 0x5a));
        narrow.unmap_single(dma, PAGE_SIZE, Direction::ToDevice, Attrs::empty());
        let direct = wide.map_page(page, 16, 64, Direction::ToDevice, Attrs::empty()).unwrap();
        assert_eq!(direct.0, page.phys().0 + 16, "a 64-bit device maps it directly");
        wide.unmap_single(direct, 64, Direction::ToDevice, Attrs::empty());
    }
    sys.free_pages(page, 0).unwrap();
}

/// Sizes at the top of `usize`: the arithmetic on them (page rounding, order, element
/// count times element size) must overflow into an error, not wrap into a small size.
#[test]
fn sizes_near_usize_max_are_refused_without_a_panic_or_a_leak() {
    let (sys, _) = system("");
    let sizes = [
        usize::MAX,
        usize::MAX - 1,
        usize::MAX - PAGE_SIZE + 2,
        usize::MAX - 2 * PAGE_SIZE,
        usize::MAX / 2 + 1,
        usize::MAX / 2,
        1 << (usize::BITS - 2),
    ];
    for coherence in [Coherence::Coherent, Coherence::NonCoherent] {
        let dev = device(&sys, "huge", coherence, 64);
        let before = sys.stats();
        for size in sizes {
            let what = format!("{coherence:?} size {size:#x}");
            assert!(refused(dev.alloc_coherent(size, Gfp::GFP_KERNEL)), "alloc_coherent {what}");
            assert!(
                refused(dev.alloc_attrs(size, Gfp::GFP_KERNEL | Gfp::__GFP_NOWARN, Attrs::NON_CONSISTENT)),
                "alloc_attrs NON_CONSISTENT {what}"
            );
            assert!(
                refused(dev.alloc_noncoherent(size, Direction::Bidirectional, Gfp::GFP_KERNEL)),
                "noncoherent {what}"
            );
            assert!(refused(dev.alloc_pages(size, Direction::ToDevice, Gfp::GFP_KERNEL)), "alloc_pages {what}");
            assert!(refused(sys.kmalloc(size, Gfp::GFP_KERNEL)), "kmalloc {what}");
            let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
            // SAFETY: refused before any memory is touched: the range runs off the end of
            // RAM (and of the address space).
            let r = unsafe { dev.map_page(page, 0, size, Direction::ToDevice, Attrs::empty()) };
            assert!(refused(r), "map_page {what}");
            // SAFETY: as above, with the offset near the top instead.
            let r = unsafe { dev.map_page(page, size, 64, Direction::ToDevice, Attrs::empty()) };
            assert!(refused(r), "map_page offset {what}");
            sys.free_pages(page, 0).unwrap();
        }
        // Element counts whose byte size overflows `usize`.
        assert!(refused(NonCoherentBuffer::<u64>::new(&dev, usize::MAX / 4, Direction::ToDevice, Gfp::GFP_KERNEL)));
        assert!(refused(NonCoherentBuffer::<u32>::new(&dev, usize::MAX / 2, Direction::ToDevice, Gfp::GFP_KERNEL)));
        assert!(refused(CoherentBuffer::<u64>::new_zeroed(&dev, usize::MAX / 8 + 1, Gfp::GFP_KERNEL)));
        assert!(refused(CoherentBuffer::<u16>::new_zeroed(&dev, usize::MAX, Gfp::GFP_KERNEL)));
        assert_eq!(sys.stats(), before, "{coherence:?}: the refusals allocated nothing");
    }
    assert!(refused(sys.alloc_pages(Gfp::GFP_KERNEL, usize::BITS)));
}

/// A layout whose two views cannot fit a 32-bit address space is refused when the system
/// is built. On 64-bit targets the same layout is fine (the views are sparse), hence the cfg.
#[cfg(target_pointer_width = "32")]
#[test]
fn a_layout_too_big_for_the_address_space_fails_to_build_cleanly() {
    use dma_core::{Options, System};
    for opts in ["mem=3G@0x100000000", "mem=4G@0x100000000", "mem=2G@0x80000000,2G@0x100000000"] {
        let r = System::builder().options(Options::parse(opts).unwrap()).build();
        assert_eq!(r.err(), Some(Errno::ENOMEM), "{opts}");
    }
}

#[test]
fn a_layout_running_off_the_top_of_the_physical_address_space_is_refused() {
    use dma_core::{Options, System};
    for opts in ["mem=16M@0xfffffffffff00000", "mem=1M@0x800000,16M@0xfffffffffff00000"] {
        match Options::parse(opts) {
            Err(e) => assert!(e.to_string().contains("mem"), "{opts}: {e}"),
            Ok(o) => assert!(System::builder().options(o).build().is_err(), "{opts} built"),
        }
    }
}
