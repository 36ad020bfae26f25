//! IOVA allocation and IOMMU mapping.
//!
//! `iova/alloc_free/pages=N` is `dma_iommu::iova::IovaDomain::alloc_fast` + `free_fast` (the
//! per-CPU magazines in front of the range map), with 1000 live ranges. Beside it, with the same
//! 1000 live ranges and the same alloc+free pattern: the range map alone
//! (`alloc_free_tree`), rust-vmm's `vm-allocator` `AddressAllocator` with its fastest policy,
//! `LastMatch` (`alloc_free_vm_allocator_last`), and with `FirstMatch`
//! (`alloc_free_vm_allocator_first`), and a plain ordered-map first-fit allocator
//! (`alloc_free_btree_first_fit`). `iova/alloc_free/threads=N` runs the fast path on N threads
//! at once; the time is wall time per operation of one thread, so scaling = 2 x t(1) / t(2).
//!
//! `iommu/map_unmap/4k` is `dma_map_single` + `dma_unmap_single` of 4 KiB on a coherent
//! device behind a strict IOMMU domain, beside the direct path (`map_unmap/4k_direct`);
//! `iommu/map_sg/64_pages` maps and unmaps 64 scattered pages as one merged segment.
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dma_core::{Attrs, Coherence, Device, DeviceConfig, Direction, DmaMask, Gfp, PAGE_SIZE, Scatterlist, System};
use dma_iommu::Domain;
use dma_iommu::iova::{FlushRcache, IovaDomain};
use vm_allocator::{AddressAllocator, AllocPolicy, RangeInclusive};

/// Live ranges in every allocator while it is measured.
const LIVE: u64 = 1000;
/// The IOVA space: 4 KiB granules from 4 KiB to 4 GiB.
const GRANULE: u64 = 4096;
const END_PFN: u64 = (1 << 20) - 1;

fn iova_domain() -> IovaDomain {
    let d = IovaDomain::new(1, END_PFN);
    for _ in 0..LIVE {
        d.alloc_fast(1, END_PFN, FlushRcache::Never).expect("room");
    }
    d
}

fn vm_allocator() -> AddressAllocator {
    let mut a = AddressAllocator::new(GRANULE, (END_PFN) * GRANULE).expect("valid range");
    for _ in 0..LIVE {
        a.allocate(GRANULE, GRANULE, AllocPolicy::LastMatch).expect("room");
    }
    a
}

/// First fit over an ordered map of live ranges (start -> end, exclusive): the baseline.
struct FirstFit {
    live: BTreeMap<u64, u64>,
    start: u64,
    end: u64,
}

impl FirstFit {
    fn new() -> Self {
        let mut f = FirstFit { live: BTreeMap::new(), start: 1, end: END_PFN + 1 };
        for _ in 0..LIVE {
            f.alloc(1, 1).expect("room");
        }
        f
    }

    fn alloc(&mut self, pages: u64, align: u64) -> Option<u64> {
        let mut cur = self.start;
        for (&lo, &hi) in &self.live {
            let aligned = cur.next_multiple_of(align);
            if aligned + pages <= lo {
                self.live.insert(aligned, aligned + pages);
                return Some(aligned);
            }
            cur = cur.max(hi);
        }
        let aligned = cur.next_multiple_of(align);
        (aligned + pages <= self.end).then(|| {
            self.live.insert(aligned, aligned + pages);
            aligned
        })
    }

    fn free(&mut self, pfn: u64) {
        self.live.remove(&pfn);
    }
}

fn alloc_free(c: &mut Criterion) {
    let mut g = c.benchmark_group("iova");
    for pages in [1u64, 4, 32] {
        let d = iova_domain();
        g.bench_function(format!("alloc_free/pages={pages}"), |b| {
            b.iter(|| {
                let pfn = d.alloc_fast(black_box(pages), END_PFN, FlushRcache::OnFailure).expect("room");
                d.free_fast(pfn, pages);
            })
        });
        let d = iova_domain();
        g.bench_function(format!("alloc_free_tree/pages={pages}"), |b| {
            b.iter(|| {
                let pfn = d.alloc(black_box(pages), END_PFN).expect("room");
                d.free(pfn);
            })
        });
        for (name, policy) in [("last", AllocPolicy::LastMatch), ("first", AllocPolicy::FirstMatch)] {
            let mut a = vm_allocator();
            let size = pages * GRANULE;
            let align = pages.next_power_of_two() * GRANULE;
            g.bench_function(format!("alloc_free_vm_allocator_{name}/pages={pages}"), |b| {
                b.iter(|| {
                    let r: RangeInclusive = a.allocate(black_box(size), align, policy).expect("room");
                    a.free(&r).expect("allocated");
                })
            });
        }
        let mut f = FirstFit::new();
        g.bench_function(format!("alloc_free_btree_first_fit/pages={pages}"), |b| {
            b.iter(|| {
                let pfn = f.alloc(black_box(pages), pages.next_power_of_two()).expect("room");
                f.free(pfn);
            })
        });
    }
    for threads in [1usize, 2] {
        let d = Arc::new(iova_domain());
        g.bench_function(format!("alloc_free/threads={threads}"), |b| {
            b.iter_custom(|iters| {
                let barrier = Arc::new(Barrier::new(threads));
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        let (d, barrier) = (Arc::clone(&d), Arc::clone(&barrier));
                        std::thread::spawn(move || {
                            barrier.wait();
                            let t = Instant::now();
                            for _ in 0..iters {
                                let pfn = d.alloc_fast(black_box(1), END_PFN, FlushRcache::OnFailure).expect("room");
                                d.free_fast(pfn, 1);
                            }
                            t.elapsed()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("bench thread")).max().unwrap_or(Duration::ZERO)
            })
        });
    }
    g.finish();
}

fn mapping(c: &mut Criterion) {
    let sys = System::builder().log_sink(Arc::new(|_, _| {})).build().expect("system");
    let domain = Domain::new(&sys).expect("domain");
    let cfg = || DeviceConfig::new("bench").coherence(Coherence::Coherent).mask(DmaMask::bits(32));
    let iommu = Device::new(&sys, domain.attach(cfg())).expect("device");
    let direct = Device::new(&sys, cfg()).expect("device");
    let buf = sys.kmalloc(PAGE_SIZE, Gfp::GFP_DMA32).expect("buffer");
    let mut g = c.benchmark_group("iommu");
    for (name, dev) in [("4k", &iommu), ("4k_direct", &direct)] {
        g.bench_function(format!("map_unmap/{name}"), |b| {
            b.iter(|| {
                // SAFETY: the buffer outlives the mapping and the CPU does not touch it.
                let dma = unsafe { dev.map_single(buf.as_ptr(), PAGE_SIZE, Direction::ToDevice, Attrs::empty()) }
                    .expect("mapping");
                // SAFETY: the mapping above.
                unsafe { dev.unmap_single(black_box(dma), PAGE_SIZE, Direction::ToDevice, Attrs::empty()) };
            })
        });
    }
    let pages: Vec<_> = (0..128).map(|_| sys.alloc_pages(Gfp::GFP_KERNEL, 0).expect("page")).collect();
    let mut sgl: Vec<Scatterlist> =
        pages.iter().step_by(2).map(|&p| Scatterlist::new(sys.page_address(p), PAGE_SIZE as u32)).collect();
    g.bench_function("map_sg/64_pages", |b| {
        b.iter(|| {
            // SAFETY: the pages stay allocated and untouched while mapped.
            let n = unsafe { iommu.map_sg(&mut sgl, Direction::ToDevice, Attrs::empty()) }.expect("mapping");
            black_box(n);
            // SAFETY: the mapping above.
            unsafe { iommu.unmap_sg(&sgl, Direction::ToDevice, Attrs::empty()) };
        })
    });
    g.finish();
}

criterion_group!(benches, alloc_free, mapping);
criterion_main!(benches);
