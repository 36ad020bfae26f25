//! Bad input gets the kernel's error shape and a message, never a panic.

mod common;

use common::{device, logged, system};
use dma_core::{Attrs, Coherence, DMA_MAPPING_ERROR, Direction, DmaAddr, Errno, Gfp, Options, PAGE_SIZE};

#[test]
fn zero_sizes_dma_none_and_bad_flags_are_einval() {
    let (sys, _) = system("");
    let dev = device(&sys, "bad", Coherence::NonCoherent, 32);
    assert_eq!(dev.alloc_coherent(0, Gfp::GFP_KERNEL).err(), Some(Errno::EINVAL));
    assert_eq!(
        dev.alloc_attrs(PAGE_SIZE, Gfp::GFP_KERNEL | Gfp::__GFP_COMP, Attrs::empty()).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(dev.alloc_pages(PAGE_SIZE, Direction::None, Gfp::GFP_KERNEL).err(), Some(Errno::EINVAL));
    assert_eq!(
        dev.alloc_pages(PAGE_SIZE, Direction::ToDevice, Gfp::GFP_DMA).err(),
        Some(Errno::EINVAL),
        "zone flags are refused"
    );
    assert_eq!(dev.alloc_pages(0, Direction::ToDevice, Gfp::GFP_KERNEL).err(), Some(Errno::EINVAL));
    let mut b = [0u8; 8];
    // SAFETY: each call is refused before touching memory.
    unsafe {
        assert_eq!(dev.map_single(b.as_mut_ptr(), 0, Direction::ToDevice, Attrs::empty()), Err(Errno::EINVAL));
        assert_eq!(dev.map_single(b.as_mut_ptr(), 8, Direction::None, Attrs::empty()), Err(Errno::EINVAL));
        assert_eq!(dev.map_single(std::ptr::null_mut(), 8, Direction::ToDevice, Attrs::empty()), Err(Errno::EINVAL));
    }
    assert_eq!(Attrs::from_raw(1), Err(Errno::EINVAL), "bit 0 (WRITE_BARRIER) is gone");
    assert_eq!(Gfp::from_raw(0x8000_0000), Err(Errno::EINVAL));
    assert_eq!(Direction::try_from(7), Err(Errno::EINVAL));
}

#[test]
fn huge_sizes_are_refused_cleanly() {
    let (sys, _) = system("");
    let dev = device(&sys, "huge", Coherence::Coherent, 64);
    assert_eq!(dev.alloc_coherent(usize::MAX, Gfp::GFP_KERNEL).err(), Some(Errno::EINVAL));
    assert_eq!(dev.alloc_coherent(usize::MAX - PAGE_SIZE * 2, Gfp::GFP_KERNEL).err(), Some(Errno::ENOMEM));
    assert_eq!(dev.alloc_coherent(1 << 30, Gfp::GFP_KERNEL | Gfp::__GFP_NOWARN).err(), Some(Errno::ENOMEM));
    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
    // SAFETY: refused: the range runs off the end of RAM.
    let r = unsafe { dev.map_page(page, usize::MAX - 8, 64, Direction::ToDevice, Attrs::empty()) };
    assert_eq!(r, Err(Errno::EINVAL));
    sys.free_pages(page, 0).unwrap();
    assert_eq!(sys.alloc_pages(Gfp::GFP_KERNEL, 11).err(), Some(Errno::EINVAL));
}

#[test]
fn bad_frees_and_unmaps_warn_and_change_nothing() {
    let (sys, log) = system("");
    let dev = device(&sys, "oops", Coherence::NonCoherent, 32);
    let (cpu, dma) = dev.alloc_coherent(PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    let free_before = sys.stats();
    // SAFETY: wrong cookie: refused before anything is freed.
    unsafe { dev.free_coherent(PAGE_SIZE, cpu.as_ptr().wrapping_add(64), dma) };
    assert!(logged(&log, "does not match the allocation"));
    assert_eq!(sys.stats(), free_before, "nothing was freed");
    // SAFETY: the real free, then a double free that must be refused.
    unsafe {
        dev.free_coherent(PAGE_SIZE, cpu.as_ptr(), dma);
        dev.free_coherent(PAGE_SIZE, std::ptr::null_mut(), dma); // NULL is a no-op
        dev.unmap_single(DMA_MAPPING_ERROR, 8, Direction::ToDevice, Attrs::empty());
    }
    assert!(logged(&log, "invalid DMA memory address"));
    let tlb = sys.swiotlb().unwrap().start();
    // SAFETY: unknown mapping in swiotlb's range: refused with a message.
    unsafe { dev.unmap_single(DmaAddr(tlb.0 + 4096), 8, Direction::ToDevice, Attrs::empty()) };
    assert!(logged(&log, "not the start of a bounce mapping"));
    let k = sys.kmalloc(64, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: a pointer kmalloc never returned: refused.
    assert_eq!(unsafe { sys.kfree(std::ptr::NonNull::new(k.as_ptr().wrapping_add(8)).unwrap()) }, Err(Errno::EINVAL));
}

#[test]
fn unknown_options_name_the_key() {
    let e = Options::parse("swiotlb=16M frobnicate=1").unwrap_err();
    assert!(e.to_string().contains("frobnicate"), "{e}");
    let e = Options::parse("mem=12Q@0").unwrap_err();
    assert!(e.to_string().contains("mem"), "{e}");
}

#[test]
fn a_layout_from_options_is_honoured() {
    let (sys, _) = system("mem=64M@0x40000000,64M@0x200000000 zone_dma_bits=30 swiotlb=2M");
    let r = sys.ram_ranges();
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].0.0, r[0].1), (0x4000_0000, 64 << 20));
    assert_eq!(sys.stats().swiotlb.unwrap().total_slots, 1024);
    let z = sys.stats().zones;
    assert_eq!(z[0].total_pages, 0, "ZONE_DMA (below 1 GiB) is empty");
    assert_eq!(z[1].total_pages, (64 << 20) / PAGE_SIZE as u64);
    assert_eq!(z[1].free_pages, z[1].total_pages - 512, "the 2 MiB swiotlb pool came out of DMA32");
}

#[test]
fn kfree_refuses_a_double_free_and_the_object_is_not_handed_out_twice() {
    let (sys, log) = system("");
    let a = sys.kmalloc(100, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: freed once; the second free must be refused.
    unsafe {
        sys.kfree(a).unwrap();
        assert_eq!(sys.kfree(a), Err(Errno::EINVAL));
    }
    assert!(logged(&log, "kfree of"));
    let b = sys.kmalloc(100, Gfp::GFP_KERNEL).unwrap();
    let c = sys.kmalloc(100, Gfp::GFP_KERNEL).unwrap();
    assert_ne!(b, c, "the double free did not put the object on the free list twice");
}
