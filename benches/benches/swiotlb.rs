//! Bounce buffering (`kernel/dma/swiotlb.c`).
//!
//! `swiotlb/bounce/64k` maps and unmaps a 64 KiB heap buffer `DMA_TO_DEVICE` on a coherent
//! device. The simulated platform gives a heap buffer no physical address, so the map bounces:
//! slot search and bookkeeping, then one 64 KiB copy into the pool; the unmap copies nothing
//! back for this direction. Beside it, `swiotlb/memcpy/64k` is that copy alone, between two
//! heap buffers. Target: the bounce within 1.15× the memcpy.
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dma_core::{Attrs, Device, DeviceConfig, Direction, PhysAddr, System};

/// The mapped buffer: 64 KiB, 32 bounce slots.
const SIZE: usize = 64 << 10;

fn bench_swiotlb(c: &mut Criterion) {
    let sys = System::builder().build().expect("default system");
    let dev = Device::new(&sys, DeviceConfig::new("bench")).expect("coherent device");
    let tlb = sys.swiotlb().expect("the default options reserve a bounce pool");
    let mut src = vec![0x5au8; SIZE];
    let mut dst = vec![0u8; SIZE];
    let ptr = src.as_mut_ptr();
    assert!(sys.virt_to_phys(ptr).is_none(), "a heap buffer is not platform RAM");

    // Check that the map really bounces, and copies exactly once, before timing it.
    let before = tlb.stats();
    // SAFETY: `src` is 64 KiB, outlives the mapping and is not touched while mapped.
    let dma = unsafe { dev.map_single(ptr, SIZE, Direction::ToDevice, Attrs::empty()) }.expect("bounce map");
    assert!(tlb.contains(PhysAddr(dma.0)), "{dma} is not in the bounce pool");
    // SAFETY: the mapping made just above, with its own size and direction.
    unsafe { dev.unmap_single(dma, SIZE, Direction::ToDevice, Attrs::empty()) };
    let after = tlb.stats();
    assert_eq!(after.mappings - before.mappings, 1);
    assert_eq!(after.bytes_bounced - before.bytes_bounced, SIZE as u64, "TO_DEVICE copies on map only");
    assert_eq!(after.used_slots, before.used_slots, "unmap releases the slots");

    let mut group = c.benchmark_group("swiotlb");
    group.warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Bytes(SIZE as u64));

    group.bench_function("bounce/64k", |b| {
        b.iter(|| {
            // SAFETY: as above; every iteration unmaps what it mapped.
            let dma = unsafe { dev.map_single(black_box(ptr), SIZE, Direction::ToDevice, Attrs::empty()) }
                .expect("bounce map");
            // SAFETY: the mapping made just above, with its own size and direction.
            unsafe { dev.unmap_single(black_box(dma), SIZE, Direction::ToDevice, Attrs::empty()) };
            dma
        });
    });

    let (from, to) = (src.as_ptr(), dst.as_mut_ptr());
    group.bench_function("memcpy/64k", |b| {
        b.iter(|| {
            // SAFETY: two distinct live 64 KiB buffers.
            unsafe { std::ptr::copy_nonoverlapping(black_box(from), black_box(to), SIZE) };
        });
    });

    group.finish();
    black_box(&dst);
}

criterion_group!(benches, bench_swiotlb);
criterion_main!(benches);
