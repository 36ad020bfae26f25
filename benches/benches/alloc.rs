//! Coherent allocation on the direct path (`kernel/dma/direct.c`, `dma_direct_alloc`).
//!
//! `alloc/coherent/4k` is one `dma_alloc_coherent` + `dma_free_coherent` of a page on a coherent
//! device: a page from the buddy allocator, zeroed through the cached view, and given back.
//! Beside it, `alloc/memset/4k` is the zeroing alone, on a 4 KiB heap buffer.
//! Target: the pair within 3× the memset.
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dma_core::{Device, DeviceConfig, Gfp, System};

/// One page.
const SIZE: usize = 4096;

fn bench_alloc(c: &mut Criterion) {
    let sys = System::builder().build().expect("default system");
    let dev = Device::new(&sys, DeviceConfig::new("bench")).expect("coherent device");

    // Check that a pair leaves the page allocator as it found it, before timing it.
    let before = sys.stats();
    let (cpu, dma) = dev.alloc_coherent(SIZE, Gfp::GFP_KERNEL).expect("one coherent page");
    // SAFETY: the allocation made just above, with its own size; nothing uses it afterwards.
    unsafe { dev.free_coherent(SIZE, cpu.as_ptr(), dma) };
    assert_eq!(sys.stats(), before, "free_coherent gives the page back");

    let mut group = c.benchmark_group("alloc");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    group.bench_function("coherent/4k", |b| {
        b.iter(|| {
            let (cpu, dma) = dev.alloc_coherent(black_box(SIZE), Gfp::GFP_KERNEL).expect("one coherent page");
            // SAFETY: the allocation made just above, with its own size; nothing uses it afterwards.
            unsafe { dev.free_coherent(SIZE, black_box(cpu.as_ptr()), dma) };
            dma
        });
    });

    let mut buf = vec![0xffu8; SIZE];
    let ptr = buf.as_mut_ptr();
    group.bench_function("memset/4k", |b| {
        b.iter(|| {
            // SAFETY: `buf` is a live 4 KiB buffer.
            unsafe { black_box(ptr).write_bytes(0, SIZE) };
        });
    });

    group.finish();
    black_box(&buf);
}

criterion_group!(benches, bench_alloc);
criterion_main!(benches);
