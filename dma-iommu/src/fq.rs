//! Lazy IOTLB invalidation: the flush queue (`dma-iommu.c`'s `iova_fq`, from Intel's
//! deferred flushing, 2008).
//!
//! With `iommu.strict=0` an unmap clears the page-table entries at once but leaves the
//! IOTLB invalidation for later: the IOVA goes into a ring, stamped with the flush counter
//! current at the unmap. When the ring holds 256 entries, or the oldest has waited 10 ms,
//! one invalidation of the whole IOTLB covers them all, and only then are their IOVAs freed
//! for reuse: an IOVA is never handed out again while a stale IOTLB entry could still point
//! at its old page. The kernel's ring is per CPU and its timeout a timer; here the ring is
//! one per domain and the timeout is checked whenever the domain queues or allocates.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Entries per ring (`IOVA_DEFAULT_FQ_SIZE`).
pub const IOVA_FQ_SIZE: usize = 256;
/// The longest an entry waits for its flush (`IOVA_DEFAULT_FQ_TIMEOUT`).
pub const IOVA_FQ_TIMEOUT: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug)]
struct Entry {
    pfn: u64,
    pages: u64,
    counter: u64,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<Entry>,
    oldest: Option<Instant>,
}

/// A flush queue.
#[derive(Debug)]
pub struct FlushQueue {
    ring: Mutex<Ring>,
    timeout: Duration,
    /// `fq_flush_start_cnt`: flushes begun.
    start: AtomicU64,
    /// `fq_flush_finish_cnt`: flushes completed; entries stamped below it are safe to free.
    finish: AtomicU64,
}

impl Default for FlushQueue {
    fn default() -> Self {
        FlushQueue::new()
    }
}

impl FlushQueue {
    /// An empty queue with the kernel's timeout ([`IOVA_FQ_TIMEOUT`]).
    pub fn new() -> FlushQueue {
        FlushQueue::with_timeout(IOVA_FQ_TIMEOUT)
    }

    /// An empty queue whose entries wait at most `timeout` (tests under emulation, where
    /// 10 ms pass between two lines, use a long one).
    pub fn with_timeout(timeout: Duration) -> FlushQueue {
        FlushQueue { ring: Mutex::new(Ring::default()), timeout, start: AtomicU64::new(0), finish: AtomicU64::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Flushes completed so far.
    pub fn flushes(&self) -> u64 {
        self.finish.load(Relaxed)
    }

    /// Entries waiting for a flush.
    pub fn pending(&self) -> usize {
        self.lock().entries.len()
    }

    /// `queue_iova`: defers the free of `pages` granules at `pfn`. `flush_iotlb` invalidates
    /// the IOTLB when the ring is full or has timed out; the ranges that are then safe to
    /// free are passed to `free`.
    pub fn queue(&self, pfn: u64, pages: u64, flush_iotlb: impl FnOnce(), free: impl FnMut(u64, u64)) {
        let mut ring = self.lock();
        let full = ring.entries.len() >= IOVA_FQ_SIZE;
        let late = ring.oldest.is_some_and(|t| t.elapsed() >= self.timeout);
        if full || late {
            self.flush_locked(&mut ring, flush_iotlb);
        }
        ring.entries.push_back(Entry { pfn, pages, counter: self.start.load(Relaxed) });
        ring.oldest.get_or_insert_with(Instant::now);
        self.ring_free(&mut ring, free);
    }

    /// Flushes if the oldest entry has waited the timeout (the kernel's timer).
    /// Returns true when it flushed.
    pub fn poll(&self, flush_iotlb: impl FnOnce(), free: impl FnMut(u64, u64)) -> bool {
        let mut ring = self.lock();
        if ring.oldest.is_none_or(|t| t.elapsed() < self.timeout) {
            return false;
        }
        self.flush_locked(&mut ring, flush_iotlb);
        self.ring_free(&mut ring, free);
        true
    }

    /// Flushes now if anything waits (`fq_flush_timeout` run early: on address-space
    /// exhaustion, or by the user). Returns true when it flushed.
    pub fn flush(&self, flush_iotlb: impl FnOnce(), free: impl FnMut(u64, u64)) -> bool {
        let mut ring = self.lock();
        if ring.entries.is_empty() {
            return false;
        }
        self.flush_locked(&mut ring, flush_iotlb);
        self.ring_free(&mut ring, free);
        true
    }

    /// `fq_flush_iotlb`: the counters bracket the invalidation.
    fn flush_locked(&self, ring: &mut Ring, flush_iotlb: impl FnOnce()) {
        self.start.fetch_add(1, Relaxed);
        flush_iotlb();
        self.finish.fetch_add(1, Relaxed);
        ring.oldest = None;
    }

    /// `fq_ring_free`: frees, oldest first, the entries a completed flush covers.
    fn ring_free(&self, ring: &mut Ring, mut free: impl FnMut(u64, u64)) {
        let finish = self.finish.load(Relaxed);
        while let Some(e) = ring.entries.front().copied() {
            if e.counter >= finish {
                break;
            }
            ring.entries.pop_front();
            free(e.pfn, e.pages);
        }
        if ring.entries.is_empty() {
            ring.oldest = None;
        } else if ring.oldest.is_none() {
            ring.oldest = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_freed_only_after_the_flush_that_covers_them() {
        // Long enough that emulation cannot make it fire between two lines of the test.
        let fq = FlushQueue::with_timeout(Duration::from_secs(3600));
        let mut freed = Vec::new();
        let mut flushes = 0;
        for pfn in 0..IOVA_FQ_SIZE as u64 {
            fq.queue(pfn, 1, || flushes += 1, |p, _| freed.push(p));
        }
        assert!(freed.is_empty(), "nothing is reused before a flush");
        assert_eq!(fq.pending(), IOVA_FQ_SIZE);
        fq.queue(1000, 1, || flushes += 1, |p, _| freed.push(p));
        assert_eq!(flushes, 1, "a full ring flushes once");
        assert_eq!(freed.len(), IOVA_FQ_SIZE, "all entries queued before the flush are freed");
        assert!(!freed.contains(&1000), "the entry queued after the flush waits for the next");
        assert!(!fq.poll(|| flushes += 1, |p, _| freed.push(p)), "not timed out yet");
        assert!(fq.flush(|| flushes += 1, |p, _| freed.push(p)));
        assert_eq!((freed.last(), fq.pending(), fq.flushes()), (Some(&1000), 0, 2));
        assert!(!fq.flush(|| flushes += 1, |_, _| {}), "an empty queue does not flush");
        // The timeout: an entry older than it is flushed by the next poll.
        let quick = FlushQueue::with_timeout(Duration::from_millis(1));
        quick.queue(7, 1, || {}, |_, _| {});
        std::thread::sleep(Duration::from_millis(2));
        let mut late = Vec::new();
        assert!(quick.poll(|| {}, |p, _| late.push(p)));
        assert_eq!(late, vec![7]);
    }
}
