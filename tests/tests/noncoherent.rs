//! The seed's story on a non-coherent simulated device: cached memory, ownership moved
//! only by sync calls, and what goes wrong without them.

mod common;

use common::{device, system};
use dma_core::api::{CoherentBuffer, NonCoherentBuffer};
use dma_core::sim::BusMaster;
use dma_core::{Attrs, Coherence, Direction, DmaAddr, Gfp, PAGE_SIZE};

#[test]
fn noncoherent_buffer_is_cached_memory_within_the_mask() {
    let (sys, _) = system("");
    let dev = device(&sys, "cam", Coherence::NonCoherent, 32);
    let buf = NonCoherentBuffer::<u8>::new(&dev, 3 * PAGE_SIZE, Direction::FromDevice, Gfp::GFP_KERNEL).unwrap();
    // Cached: the CPU address is the platform's normal (cached-view) mapping, not a remap.
    let phys = sys.virt_to_phys(buf.as_ptr()).expect("platform RAM in the cached view");
    let owned = buf.sync_for_device();
    assert_eq!(owned.dma_handle(), DmaAddr(phys.0));
    assert!(owned.dma_handle().0 + owned.size() as u64 - 1 <= u32::MAX as u64, "within the 32-bit mask");
}

#[test]
fn device_sees_cpu_writes_only_after_sync_for_device() {
    let (sys, _) = system("");
    let dev = device(&sys, "nic", Coherence::NonCoherent, 32);
    let bus = BusMaster::new(&dev);
    let (cpu, dma) = dev.alloc_noncoherent(PAGE_SIZE, Direction::ToDevice, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: the CPU owns the fresh allocation.
    unsafe { cpu.as_ptr().write_bytes(0x5a, 64) };
    let mut seen = [0u8; 64];
    bus.read(dma, &mut seen).unwrap();
    assert_eq!(seen, [0; 64], "without a sync the device reads stale memory");
    // SAFETY: the mapping is live; the CPU holds no reference into it.
    unsafe { dev.sync_single_for_device(dma, 64, Direction::ToDevice) };
    bus.read(dma, &mut seen).unwrap();
    assert_eq!(seen, [0x5a; 64], "after sync_for_device the device sees the CPU's data");
    // SAFETY: the allocation is live and unused from here on.
    unsafe { dev.free_noncoherent(PAGE_SIZE, cpu.as_ptr(), dma, Direction::ToDevice) };
}

#[test]
fn cpu_sees_device_writes_only_after_sync_for_cpu() {
    let (sys, _) = system("");
    let dev = device(&sys, "adc", Coherence::NonCoherent, 32);
    let bus = BusMaster::new(&dev);
    let (cpu, dma) = dev.alloc_noncoherent(PAGE_SIZE, Direction::FromDevice, Gfp::GFP_KERNEL).unwrap();
    // SAFETY: the CPU owns the fresh allocation; then it gives it to the device.
    unsafe { dev.sync_single_for_device(dma, PAGE_SIZE, Direction::FromDevice) };
    bus.write(dma, &[0xc3; 128]).unwrap();
    // SAFETY: reading the CPU's cached view without taking ownership: the bug under test.
    let stale = unsafe { std::slice::from_raw_parts(cpu.as_ptr(), 128).to_vec() };
    assert_eq!(stale, vec![0; 128], "without sync_for_cpu the CPU reads its stale cache");
    // SAFETY: the mapping is live; the CPU holds no reference into it.
    unsafe { dev.sync_single_for_cpu(dma, PAGE_SIZE, Direction::FromDevice) };
    // SAFETY: the CPU owns the buffer again.
    let fresh = unsafe { std::slice::from_raw_parts(cpu.as_ptr(), 128).to_vec() };
    assert_eq!(fresh, vec![0xc3; 128], "after sync_for_cpu the CPU sees the device's data");
    // SAFETY: the allocation is live and unused from here on.
    unsafe { dev.free_noncoherent(PAGE_SIZE, cpu.as_ptr(), dma, Direction::FromDevice) };
}

#[test]
fn typed_buffer_moves_ownership_by_value() {
    let (sys, _) = system("");
    let dev = device(&sys, "dsp", Coherence::NonCoherent, 32);
    let bus = BusMaster::new(&dev);
    let mut buf = NonCoherentBuffer::<u32>::new(&dev, 256, Direction::Bidirectional, Gfp::GFP_KERNEL).unwrap();
    buf.iter_mut().enumerate().for_each(|(i, w)| *w = i as u32);
    let owned = buf.sync_for_device();
    let mut word = [0u8; 4];
    bus.read(DmaAddr(owned.dma_handle().0 + 4 * 200), &mut word).unwrap();
    assert_eq!(u32::from_ne_bytes(word), 200);
    bus.write(owned.dma_handle(), &7u32.to_ne_bytes()).unwrap();
    let buf = owned.sync_for_cpu();
    assert_eq!(buf[0], 7);
    assert_eq!(buf[255], 255);
}

#[test]
fn coherent_buffer_needs_no_sync_on_either_kind_of_device() {
    let (sys, _) = system("");
    for coherence in [Coherence::Coherent, Coherence::NonCoherent] {
        let dev = device(&sys, "ring", coherence, 32);
        let bus = BusMaster::new(&dev);
        let mut ring = CoherentBuffer::<u64>::new_with(&dev, 512, Gfp::GFP_KERNEL, |r| r[3] = 33).unwrap();
        let mut v = [0u8; 8];
        bus.read(DmaAddr(ring.dma_handle().0 + 24), &mut v).unwrap();
        assert_eq!(u64::from_ne_bytes(v), 33, "{coherence:?}: device sees the CPU's write at once");
        ring.write(10, 0xfeed).unwrap();
        bus.read(DmaAddr(ring.dma_handle().0 + 80), &mut v).unwrap();
        assert_eq!(u64::from_ne_bytes(v), 0xfeed);
        bus.write(DmaAddr(ring.dma_handle().0 + 8), &99u64.to_ne_bytes()).unwrap();
        assert_eq!(ring.read(1), Some(99), "{coherence:?}: CPU sees the device's write at once");
        assert_eq!(ring.read(512), None);
        assert!(ring.write(512, 0).is_err());
    }
}

#[test]
fn coherent_allocation_on_a_noncoherent_device_is_the_uncached_remap() {
    let (sys, _) = system("");
    let dev = device(&sys, "gpu", Coherence::NonCoherent, 32);
    let (cpu, dma) = dev.alloc_coherent(2 * PAGE_SIZE, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(sys.virt_to_phys(cpu.as_ptr()), None, "not the cached view");
    // Streaming-mapping an uncached alias is refused, as the kernel refuses vmalloc addresses.
    // SAFETY: the call is refused before touching memory.
    assert!(unsafe { dev.map_single(cpu.as_ptr(), 16, Direction::ToDevice, Attrs::empty()) }.is_err());
    // SAFETY: live allocation, freed once.
    unsafe { dev.free_coherent(2 * PAGE_SIZE, cpu.as_ptr(), dma) };
}

#[test]
fn non_consistent_attr_and_alloc_pages_never_fall_back_to_uncached() {
    let (sys, _) = system("");
    let dev = device(&sys, "vpu", Coherence::NonCoherent, 32);
    let (cpu, dma) = dev.alloc_attrs(PAGE_SIZE, Gfp::GFP_KERNEL, Attrs::NON_CONSISTENT).unwrap();
    assert_eq!(sys.virt_to_phys(cpu.as_ptr()).map(|p| p.0), Some(dma.0), "cached view, not a remap");
    // SAFETY: live allocation, freed once with the same attrs.
    unsafe { dev.free_attrs(PAGE_SIZE, cpu.as_ptr(), dma, Attrs::NON_CONSISTENT) };
    let (page, dma) = dev.alloc_pages(PAGE_SIZE, Direction::Bidirectional, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(page.phys().0, dma.0);
    // SAFETY: live allocation, freed once.
    unsafe { dev.free_pages(PAGE_SIZE, page, dma, Direction::Bidirectional) };
}

#[test]
#[allow(deprecated)]
fn dma_cache_sync_is_a_shim_over_the_sync_calls() {
    let (sys, _) = system("");
    let dev = device(&sys, "old", Coherence::NonCoherent, 32);
    let bus = BusMaster::new(&dev);
    let (cpu, dma) = dev.alloc_attrs(PAGE_SIZE, Gfp::GFP_KERNEL, Attrs::NON_CONSISTENT).unwrap();
    // SAFETY: the CPU owns the buffer; each shim call moves ownership as its direction says.
    unsafe {
        cpu.as_ptr().write(1);
        dev.cache_sync(cpu.as_ptr(), 64, Direction::ToDevice);
        let mut b = [0u8; 1];
        bus.read(dma, &mut b).unwrap();
        assert_eq!(b[0], 1, "TO_DEVICE cleans");
        bus.write(dma, &[2]).unwrap();
        dev.cache_sync(cpu.as_ptr(), 64, Direction::FromDevice);
        assert_eq!(cpu.as_ptr().read(), 2, "FROM_DEVICE invalidates");
        dev.free_attrs(PAGE_SIZE, cpu.as_ptr(), dma, Attrs::NON_CONSISTENT);
    }
}

#[test]
fn a_buffer_sharing_a_cache_line_loses_data_on_invalidate() {
    let (sys, _) = system("cache_line=64");
    // 64-bit mask: kmalloc memory (above 4 GiB) maps directly instead of bouncing.
    let dev = device(&sys, "uart", Coherence::NonCoherent, 64);
    let bus = BusMaster::new(&dev);
    // One line holds a 32-byte DMA buffer and, right after it, 32 bytes of other data.
    let line = sys.kmalloc(64, Gfp::GFP_KERNEL).unwrap().as_ptr();
    // SAFETY: `line` is a 64-byte kmalloc object; the mapping covers its first half.
    unsafe {
        let dma = dev.map_single(line, 32, Direction::FromDevice, Attrs::empty()).unwrap();
        line.add(32).write_bytes(0x11, 32); // the CPU updates its neighbour while the DMA runs
        bus.write(dma, &[0xdd; 32]).unwrap();
        dev.unmap_single(dma, 32, Direction::FromDevice, Attrs::empty());
        let got = std::slice::from_raw_parts(line, 64);
        // The partly covered line is cleaned before the invalidate: the CPU's stale copy
        // of the buffer bytes overwrites what the device wrote. Hardware does the same.
        assert_eq!(&got[..32], &[0u8; 32], "the device's data in the shared line is lost");
        assert_eq!(&got[32..], &[0x11; 32], "the neighbour survives only because it was written back");
    }
    // The cure: ARCH_DMA_MINALIGN-sized and -aligned buffers (kmalloc's classes start there).
    let align = sys.cache_alignment();
    let own = sys.kmalloc(align, Gfp::GFP_KERNEL).unwrap().as_ptr();
    assert_eq!(own as usize % align, 0);
    // SAFETY: `own` is a whole `align`-byte kmalloc object.
    unsafe {
        let dma = dev.map_single(own, align, Direction::FromDevice, Attrs::empty()).unwrap();
        bus.write(dma, &vec![0xdd; align]).unwrap();
        dev.unmap_single(dma, align, Direction::FromDevice, Attrs::empty());
        assert!(std::slice::from_raw_parts(own, align).iter().all(|&b| b == 0xdd));
    }
}
