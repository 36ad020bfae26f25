//! What the C ABI adds to a streaming mapping (`capi/src/mapping.rs` over `kernel/dma/mapping.c`).
//!
//! `mapping/map_unmap_single/rust` is one `Device::map_single` + `Device::unmap_single` pair of
//! a 4 KiB kmalloc buffer on a coherent device with a 64-bit mask (the direct path: no bounce,
//! no cache maintenance). `mapping/map_unmap_single/c_abi` is the same pair through the
//! exported `dma_map_single_attrs` / `dma_unmap_single_attrs`, called through function
//! pointers so nothing is inlined across the boundary, on an identical system and device:
//! the difference is the FFI layer (handle lookup, argument checks, panic boundary, caller
//! hand-off, the dma-debug hooks' off branch) for two calls. Target: ≤ 5 ns per call.
//!
//! `mapping/map_unmap_single/c_abi_header` is what a C driver compiled with
//! `<dma-mapping.h>` runs: each call preceded by the header macro's `dma_debug_set_caller`,
//! and a `dma_mapping_error` check between map and unmap (the Rust pair checks its `Result`).
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dma::{
    GFP_KERNEL, dma_addr_t, dma_debug_set_caller, dma_device_config, dma_device_create, dma_map_single_attrs,
    dma_mapping_error, dma_system_init, dma_unmap_single_attrs, dmalib_kmalloc,
};
use dma_core::{Attrs, Device, DeviceConfig, Direction, DmaMask, Gfp, Options, System};

/// The mapped buffer: one page, as `kmalloc(4096)` gives it.
const SIZE: usize = 4096;
/// `DMA_TO_DEVICE`.
const TO_DEVICE: c_uint = 1;
/// What `__FILE__` would be.
const FILE: &std::ffi::CStr = c"benches/benches/capi.rs";

type MapFn = unsafe extern "C" fn(*mut dma::device, *mut c_void, usize, c_uint, c_ulong) -> dma_addr_t;
type UnmapFn = unsafe extern "C" fn(*mut dma::device, dma_addr_t, usize, c_uint, c_ulong);
type CheckFn = unsafe extern "C" fn(*mut dma::device, dma_addr_t) -> c_int;
type CallerFn = unsafe extern "C" fn(*const c_char, c_int);

fn bench_c_abi(c: &mut Criterion) {
    // The C side: the process's system, with the options the Rust side gets by default.
    // SAFETY: a NUL-terminated literal.
    assert_eq!(unsafe { dma_system_init(c"".as_ptr()) }, 0, "the C ABI's system is built once, here");
    let cfg = dma_device_config {
        name: c"bench".as_ptr(),
        dma_mask: u64::MAX,
        coherent_dma_mask: 0,
        bus_dma_limit: 0,
        min_align_mask: 0,
        range_map: std::ptr::null(),
        nr_ranges: 0,
        max_segment_size: 0,
        coherent: true,
        cma_size: 0,
        iommu: std::ptr::null_mut(),
    };
    // SAFETY: a valid config whose name is a literal.
    let cdev = unsafe { dma_device_create(&cfg) };
    assert!(!cdev.is_null(), "a coherent 64-bit device");
    let cbuf = dmalib_kmalloc(SIZE, GFP_KERNEL);
    assert!(!cbuf.is_null(), "kmalloc of one page");

    // The Rust side: an identical system and device.
    let sys = System::new(Options::default()).expect("default system");
    let dev = Device::new(&sys, DeviceConfig::new("bench").mask(DmaMask::bits(64))).expect("coherent 64-bit device");
    let buf = sys.kmalloc(SIZE, Gfp::GFP_KERNEL).expect("kmalloc of one page").as_ptr();

    // Real calls, as from C: through pointers the optimiser cannot see through.
    let map: MapFn = black_box(dma_map_single_attrs);
    let unmap: UnmapFn = black_box(dma_unmap_single_attrs);
    let check: CheckFn = black_box(dma_mapping_error);
    let set_caller: CallerFn = black_box(dma_debug_set_caller);

    // SAFETY: the buffer is ours, one page long, and nothing touches it while it is mapped.
    let h = unsafe { map(cdev, cbuf, SIZE, TO_DEVICE, 0) };
    // SAFETY: a live device.
    assert_eq!(unsafe { check(cdev, h) }, 0, "the C map succeeds");
    // SAFETY: the mapping made just above, with its own size and direction.
    unsafe { unmap(cdev, h, SIZE, TO_DEVICE, 0) };

    let mut group = c.benchmark_group("mapping");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    group.bench_function("map_unmap_single/rust", |b| {
        b.iter(|| {
            // SAFETY: as above; every iteration unmaps what it mapped.
            let dma = unsafe { dev.map_single(black_box(buf), SIZE, Direction::ToDevice, Attrs::empty()) }
                .expect("direct map");
            // SAFETY: the mapping made just above, with its own size and direction.
            unsafe { dev.unmap_single(black_box(dma), SIZE, Direction::ToDevice, Attrs::empty()) };
            dma
        });
    });

    group.bench_function("map_unmap_single/c_abi", |b| {
        b.iter(|| {
            // SAFETY: as above; every iteration unmaps what it mapped.
            let h = unsafe { map(cdev, black_box(cbuf), SIZE, TO_DEVICE, 0) };
            // SAFETY: the mapping made just above, with its own size and direction.
            unsafe { unmap(cdev, black_box(h), SIZE, TO_DEVICE, 0) };
            h
        });
    });

    group.bench_function("map_unmap_single/c_abi_header", |b| {
        b.iter(|| {
            // SAFETY: as above, each call preceded by the header macro's caller hand-off
            // (a literal lives forever).
            unsafe {
                set_caller(FILE.as_ptr(), 101);
                let h = map(cdev, black_box(cbuf), SIZE, TO_DEVICE, 0);
                set_caller(FILE.as_ptr(), 102);
                if check(cdev, h) == 0 {
                    set_caller(FILE.as_ptr(), 103);
                    unmap(cdev, black_box(h), SIZE, TO_DEVICE, 0);
                }
                h
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench_c_abi);
criterion_main!(benches);
