//! Streaming mappings on the direct path (`kernel/dma/mapping.c` → `direct.c`).
//!
//! `mapping/map_unmap_single/direct` is one `dma_map_single` + `dma_unmap_single` pair of a
//! 4 KiB kmalloc buffer on a coherent device with a 64-bit mask: no bounce, no cache
//! maintenance, so what is left is the bookkeeping of the call. Beside it,
//! `mapping/map_unmap_single/baseline_phys_to_dma` is the least any map must compute: the
//! pointer's offset from the RAM mapping, plus the physical base, checked against the mask.
//! Target: the pair within 20 ns.
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dma_core::{Attrs, Device, DeviceConfig, Direction, DmaAddr, DmaMask, Gfp, Options, Page, System};

/// The mapped buffer: one page, as `kmalloc(4096)` gives it.
const SIZE: usize = 4096;

/// The bus address of `ptr` the way the direct path must at least compute it: offset into
/// the CPU mapping of the RAM range, rebased on the range's physical start, then bounded by
/// the mask (`dma_capable`). Everything comes in through `black_box`, so nothing folds.
fn phys_to_dma(ptr: *const u8, cpu_base: usize, phys_base: u64, mask: u64) -> Option<DmaAddr> {
    let off = (ptr as usize).wrapping_sub(cpu_base) as u64;
    let dma = phys_base.wrapping_add(off);
    (dma.wrapping_add(SIZE as u64 - 1) <= mask).then_some(DmaAddr(dma))
}

fn bench_mapping(c: &mut Criterion) {
    let sys = System::builder().build().expect("default system");
    let dev = Device::new(&sys, DeviceConfig::new("bench").mask(DmaMask::bits(64))).expect("coherent 64-bit device");
    let buf = sys.kmalloc(SIZE, Gfp::GFP_KERNEL).expect("kmalloc of one page");
    let ptr = buf.as_ptr();

    // The RAM range holding the buffer, and where the platform maps its first byte.
    let phys = sys.virt_to_phys(ptr).expect("kmalloc memory is platform RAM");
    let (range_phys, _) = sys
        .ram_ranges()
        .into_iter()
        .find(|&(base, size)| phys.0 >= base.0 && phys.0 - base.0 < size)
        .expect("the buffer lies in a RAM range");
    let range_cpu = sys.page_address(Page(range_phys.pfn())) as usize;
    assert_ne!(range_cpu, 0, "the range's first page has a CPU address");

    // Both must agree on the address before either is timed.
    // SAFETY: the buffer is ours, one page long, and nothing touches it while it is mapped.
    let dma = unsafe { dev.map_single(ptr, SIZE, Direction::ToDevice, Attrs::empty()) }.expect("direct map");
    // SAFETY: the mapping made just above, with its own size and direction.
    unsafe { dev.unmap_single(dma, SIZE, Direction::ToDevice, Attrs::empty()) };
    assert_eq!(
        phys_to_dma(ptr, range_cpu, range_phys.0, dev.map_limit()),
        Some(dma),
        "baseline disagrees with the map"
    );
    assert_eq!(dma.0, phys.0, "identity translation: no range map, no bounce");

    let mut group = c.benchmark_group("mapping");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    group.bench_function("map_unmap_single/direct", |b| {
        b.iter(|| {
            // SAFETY: as above; every iteration unmaps what it mapped.
            let dma = unsafe { dev.map_single(black_box(ptr), SIZE, Direction::ToDevice, Attrs::empty()) }
                .expect("direct map");
            // SAFETY: the mapping made just above, with its own size and direction.
            unsafe { dev.unmap_single(black_box(dma), SIZE, Direction::ToDevice, Attrs::empty()) };
            dma
        });
    });

    group.bench_function("map_unmap_single/baseline_phys_to_dma", |b| {
        b.iter(|| {
            phys_to_dma(
                black_box(ptr),
                black_box(range_cpu),
                black_box(range_phys.0),
                black_box(DmaMask::bits(64).value()),
            )
        });
    });

    group.finish();
    // SAFETY: the buffer came from this system's kmalloc and is no longer mapped or used.
    unsafe { sys.kfree(buf) }.expect("kfree of the kmalloc buffer");
}

/// `mapping/map_unmap_single/debug_on` beside `/debug_off`: the same pair (a 4 KiB kmalloc
/// buffer, FROM_DEVICE so the overlap check runs too) on two systems that differ only in
/// `dma_debug`. Target: on ≤ 150 ns per pair; off is the plain path's one branch.
fn bench_debug(c: &mut Criterion) {
    let mut group = c.benchmark_group("mapping");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for (id, opts) in [("map_unmap_single/debug_off", "dma_debug=0"), ("map_unmap_single/debug_on", "dma_debug=1")] {
        let sys = System::builder().options(Options::parse(opts).expect("options")).build().expect("system");
        let dev = Device::new(&sys, DeviceConfig::new("bench").mask(DmaMask::bits(64))).expect("device");
        let ptr = sys.kmalloc(SIZE, Gfp::GFP_KERNEL).expect("kmalloc").as_ptr();
        group.bench_function(id, |b| {
            b.iter(|| {
                // SAFETY: a kmalloc page nothing else touches; each iteration unmaps it.
                let dma = unsafe { dev.map_single(black_box(ptr), SIZE, Direction::FromDevice, Attrs::empty()) }
                    .expect("map");
                // SAFETY: the mapping made just above.
                unsafe { dev.unmap_single(dma, SIZE, Direction::FromDevice, Attrs::empty()) };
                dma
            });
        });
        assert_eq!(sys.debug_stats().map_or(0, |s| s.error_count), 0, "correct use reports nothing");
    }
    group.finish();
}

/// `debug_sync/deep_in_8m` beside `debug_sync/small_buffer`: with `dma_debug=1`, one
/// `sync_single_range_for_cpu` + `_for_device` pair of 64 bytes at offset 6 MiB of a live
/// 8 MiB coherent allocation, and the same pair at offset 0 of a 4 KiB mapping in the same
/// system. dma-debug finds the entry containing a sync through its index of large entries:
/// three bucket locks and the index against one, not a walk back over 768 buckets.
/// Target: the deep pair within 3× the shallow one.
fn bench_debug_sync(c: &mut Criterion) {
    const BIG: usize = 8 << 20;
    const DEEP: usize = 6 << 20;
    const LEN: usize = 64;
    let opts = Options::parse("dma_debug=1 cma=16M").expect("options");
    let sys = System::builder().options(opts).build().expect("system");
    let dev = Device::new(&sys, DeviceConfig::new("bench").mask(DmaMask::bits(64))).expect("device");
    let (big_cpu, big) = dev.alloc_coherent(BIG, Gfp::GFP_KERNEL).expect("8 MiB from the contiguous area");
    let small_buf = sys.kmalloc(SIZE, Gfp::GFP_KERNEL).expect("kmalloc");
    // SAFETY: a kmalloc page nothing else touches, unmapped after the benches.
    let small =
        unsafe { dev.map_single(small_buf.as_ptr(), SIZE, Direction::Bidirectional, Attrs::empty()) }.expect("map");

    let mut group = c.benchmark_group("debug_sync");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for (id, dma, offset) in [("deep_in_8m", big, DEEP), ("small_buffer", small, 0)] {
        group.bench_function(id, |b| {
            b.iter(|| {
                // SAFETY: 64 bytes inside a live buffer of this device that nothing else touches.
                unsafe {
                    dev.sync_single_range_for_cpu(black_box(dma), black_box(offset), LEN, Direction::Bidirectional);
                    dev.sync_single_range_for_device(black_box(dma), black_box(offset), LEN, Direction::Bidirectional);
                }
            });
        });
    }
    group.finish();
    assert_eq!(sys.debug_stats().map_or(0, |s| s.error_count), 0, "correct use reports nothing");

    // SAFETY: the mapping made above, with its own size and direction.
    unsafe { dev.unmap_single(small, SIZE, Direction::Bidirectional, Attrs::empty()) };
    // SAFETY: the allocation made above, no longer used.
    unsafe { dev.free_coherent(BIG, big_cpu.as_ptr(), big) };
    // SAFETY: the buffer came from this system's kmalloc and is no longer mapped.
    unsafe { sys.kfree(small_buf) }.expect("kfree");
}

criterion_group!(benches, bench_mapping, bench_debug, bench_debug_sync);
criterion_main!(benches);
