//! Latency of one 2 MiB CMA allocation plus its release, pair by pair.
//!
//! Builds the fragmented 256 MiB area of `benches/cma.rs` (same seed, same pattern), times
//! 100 000 `alloc(512, 9)` + `release` pairs one at a time, and prints the median, the 99th
//! percentile and the worst, in µs; then the same figures for fixed busy work of the same median,
//! the machine's own noise. Run with
//! `cargo run --release -p dma-benches --example cma_latency`.

use std::hint::black_box;
use std::time::Instant;

use dma_benches::cma_pattern::{ALIGN_ORDER, BASE_PFN, PAGES, REQUEST, SEED, cma_area, fragmentation};

/// Timed pairs.
const PAIRS: usize = 100_000;

fn micros(nanos: u128) -> f64 {
    nanos as f64 / 1000.0
}

/// Sorted durations of `samples` calls of `op`, each timed on its own.
fn timed(samples: usize, mut op: impl FnMut()) -> Vec<u128> {
    let mut nanos = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        op();
        nanos.push(start.elapsed().as_nanos());
    }
    nanos.sort_unstable();
    nanos
}

/// Prints the median, 99th and 99.9th percentiles and worst of sorted durations, in µs.
fn report(what: &str, sorted: &[u128]) {
    let at = |per_mille: usize| micros(sorted[(sorted.len() - 1) * per_mille / 1000]);
    println!(
        "{what}, {} samples: median {:.3} µs, p99 {:.3} µs, p99.9 {:.3} µs, max {:.3} µs",
        sorted.len(),
        at(500),
        at(990),
        at(999),
        at(1000),
    );
}

/// A fixed amount of work that no optimiser can remove.
fn spin(iterations: u64) {
    for i in 0..iterations {
        black_box(i);
    }
}

fn main() {
    let used = fragmentation(SEED);
    let mut area = cma_area(&used);
    let stats = area.stats();
    let first = area.alloc(REQUEST, ALIGN_ORDER).expect("the pattern keeps 2 MiB holes");
    area.release(first, REQUEST).expect("just allocated");
    println!(
        "area: {} pages, {:.1} % used, largest free run {} pages, first fit at block {} of {}",
        stats.total_pages,
        100.0 * (stats.total_pages - stats.free_pages) as f64 / stats.total_pages as f64,
        stats.largest_free_run,
        (first - BASE_PFN) / REQUEST,
        PAGES / REQUEST,
    );

    for _ in 0..PAIRS / 100 {
        let pfn = area.alloc(REQUEST, ALIGN_ORDER).expect("warm-up");
        area.release(pfn, REQUEST).expect("just allocated");
    }
    let nanos = timed(PAIRS, || {
        let pfn = area.alloc(black_box(REQUEST), black_box(ALIGN_ORDER)).expect("the pattern keeps 2 MiB holes");
        area.release(black_box(pfn), REQUEST).expect("just allocated");
    });
    report("cma alloc+release 2 MiB", &nanos);
    // Every pair does the same work, so a max far above the median is the machine (interrupts,
    // preemption, a hypervisor), not the search. Fixed busy work of the same median, timed the
    // same way, shows that floor.
    let probe = timed(1000, || spin(1000));
    let per_iteration = probe[probe.len() / 2].max(1) as f64 / 1000.0;
    let iterations = (nanos[nanos.len() / 2] as f64 / per_iteration) as u64;
    let floor = timed(PAIRS, || spin(iterations));
    report("fixed busy work (noise floor)", &floor);
}
