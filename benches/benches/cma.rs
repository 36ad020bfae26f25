//! CMA: one 2 MiB allocation (512 pages, aligned to 512) and its release, in a 256 MiB area
//! (65536 pages of 4 KiB) fragmented to about 50 %.
//!
//! `cma/alloc_free/2m_frag50` is `dma_cma::CmaArea`. Beside it, on the same used pages: a naive
//! first-fit scan testing one bit at a time (`alloc_free_naive`), and `buddy_system_allocator`'s
//! `FrameAllocator` (`alloc_free_buddy_system_allocator`). The pattern comes from a seeded
//! xorshift, identical to `examples/cma_latency.rs`.
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::hint::black_box;

use buddy_system_allocator::FrameAllocator;
use criterion::{Criterion, criterion_group, criterion_main};

use dma_benches::cma_pattern::{ALIGN_ORDER, BASE_PFN, REQUEST, SEED, cma_area, fragmentation};

/// First fit the simple way: try each aligned start, testing its pages one bit at a time.
struct NaiveBitmap {
    words: Vec<u64>,
}

impl NaiveBitmap {
    fn new(used: &[bool]) -> Self {
        let mut map = Self { words: vec![0; used.len().div_ceil(64)] };
        for (page, _) in (0..).zip(used).filter(|(_, used)| **used) {
            map.assign(page, true);
        }
        map
    }

    fn test(&self, bit: u64) -> bool {
        self.words[(bit / 64) as usize] >> (bit % 64) & 1 == 1
    }

    fn assign(&mut self, bit: u64, used: bool) {
        let word = &mut self.words[(bit / 64) as usize];
        if used {
            *word |= 1 << (bit % 64);
        } else {
            *word &= !(1 << (bit % 64));
        }
    }

    /// Bit index of `count` free bits starting on a multiple of `1 << align_order`.
    fn alloc(&mut self, count: u64, align_order: u32) -> Option<u64> {
        let nbits = self.words.len() as u64 * 64;
        let mut start = 0;
        while start + count <= nbits {
            if (start..start + count).all(|bit| !self.test(bit)) {
                for bit in start..start + count {
                    self.assign(bit, true);
                }
                return Some(start);
            }
            start += 1 << align_order;
        }
        None
    }

    fn release(&mut self, start: u64, count: u64) {
        for bit in start..start + count {
            self.assign(bit, false);
        }
    }
}

/// A buddy frame allocator over the same page frames with exactly the `used` pages taken.
fn buddy(used: &[bool]) -> FrameAllocator<32> {
    let mut frames = FrameAllocator::<32>::new();
    let base = BASE_PFN as usize;
    frames.add_frame(base, base + used.len());
    for (page, _) in used.iter().enumerate().filter(|(_, used)| **used) {
        assert_eq!(frames.alloc_at(base + page, 1), Some(base + page));
    }
    frames
}

fn bench_cma(c: &mut Criterion) {
    let used = fragmentation(SEED);
    let mut group = c.benchmark_group("cma");

    let mut area = cma_area(&used);
    let mut naive = NaiveBitmap::new(&used);
    // Both first-fit searches must land on the same hole, or they are not doing the same work.
    let (pfn, bit) = (area.alloc(REQUEST, ALIGN_ORDER), naive.alloc(REQUEST, ALIGN_ORDER));
    assert_eq!(pfn.map(|pfn| pfn - BASE_PFN), bit);
    area.release(pfn.expect("the pattern keeps 2 MiB holes"), REQUEST).expect("just allocated");
    naive.release(bit.expect("the pattern keeps 2 MiB holes"), REQUEST);

    group.bench_function("alloc_free/2m_frag50", |b| {
        b.iter(|| {
            let pfn = area.alloc(black_box(REQUEST), black_box(ALIGN_ORDER)).expect("the pattern keeps 2 MiB holes");
            area.release(pfn, REQUEST).expect("just allocated");
            pfn
        });
    });

    // The base is 2 MiB aligned, so bit alignment is page-frame alignment.
    group.bench_function("alloc_free_naive/2m_frag50", |b| {
        b.iter(|| {
            let bit = naive.alloc(black_box(REQUEST), black_box(ALIGN_ORDER)).expect("the pattern keeps 2 MiB holes");
            naive.release(bit, REQUEST);
            bit
        });
    });

    let mut frames = buddy(&used);
    group.bench_function("alloc_free_buddy_system_allocator/2m_frag50", |b| {
        b.iter(|| {
            let pfn = frames.alloc(black_box(REQUEST as usize)).expect("the pattern keeps 2 MiB holes");
            frames.dealloc(pfn, REQUEST as usize);
            pfn
        });
    });

    group.finish();
}

criterion_group!(benches, bench_cma);
criterion_main!(benches);
