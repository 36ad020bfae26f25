//! Per-CPU IOVA range caches: magazines and a depot (`iova.c`'s rcache, after Bonwick and
//! Adams' "Magazines and Vmem", USENIX 2001).
//!
//! Six size classes (1 to 32 granules). Each CPU has, per class, a `loaded` and a `prev`
//! magazine of up to 127 pfns; a free pushes onto `loaded`, swapping with `prev` when full,
//! and when both are full parks `loaded` in the class's shared depot and starts an empty one;
//! an allocation pops the highest-placed pfn under its limit, swapping with `prev` or taking a
//! full magazine from the depot when `loaded` is empty. In userspace a "CPU" is a cache-padded
//! shard picked by `sched_getcpu` (re-read every few calls), else by a per-thread number.
//!
//! The kernel trims the depot from a delayed work item (one magazine every 100 ms while the
//! depot holds more magazines than there are CPUs). Here the insert that pushes the depot past
//! that bound takes one magazine back out, and the caller returns its ranges to the map.

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::fmt;

// loom is a dev-dependency: only the crate's own tests model-check with its mutex.
#[cfg(all(test, loom))]
use loom::sync::{Mutex, MutexGuard};
#[cfg(not(all(test, loom)))]
use std::sync::{Mutex, MutexGuard};

use super::IOVA_RANGE_CACHE_MAX_SIZE;

/// pfns per magazine: 127, so that a magazine (count plus pfns) is exactly 1 KiB.
pub const IOVA_MAG_SIZE: usize = 127;

/// A stack of cached pfns of one size class (`struct iova_magazine`).
pub struct Magazine {
    size: usize,
    pfns: [u64; IOVA_MAG_SIZE],
}

impl Magazine {
    fn new() -> Box<Magazine> {
        Box::new(Magazine { size: 0, pfns: [0; IOVA_MAG_SIZE] })
    }

    /// The pfns it holds.
    pub fn pfns(&self) -> &[u64] {
        &self.pfns[..self.size]
    }

    fn push(&mut self, pfn: u64) {
        self.pfns[self.size] = pfn;
        self.size += 1;
    }

    /// `iova_magazine_pop`: the topmost pfn at or below `limit`, swap-removed; `None` when
    /// no pfn qualifies (only then does the caller fall back to the map).
    fn pop(&mut self, limit: u64) -> Option<u64> {
        let i = self.pfns[..self.size].iter().rposition(|&p| p <= limit)?;
        let pfn = self.pfns[i];
        self.size -= 1;
        self.pfns[i] = self.pfns[self.size];
        Some(pfn)
    }
}

impl fmt::Debug for Magazine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Magazine").field("size", &self.size).finish()
    }
}

/// Aligns its content to 128 bytes so two shards never share a cache line (or the pair of
/// lines adjacent-line prefetchers fetch together).
#[derive(Debug)]
#[repr(align(128))]
struct CachePadded<T>(T);

#[derive(Debug)]
struct CpuRcache {
    loaded: Box<Magazine>,
    prev: Box<Magazine>,
}

/// The cache of one size class: per-shard magazine pairs and a depot of full magazines
/// (`struct iova_rcache`).
#[derive(Debug)]
pub struct Rcache {
    cpus: Box<[CachePadded<Mutex<CpuRcache>>]>,
    #[allow(clippy::vec_box, reason = "magazines move between a CPU and the depot by pointer, not by 1 KiB copies")]
    depot: Mutex<Vec<Box<Magazine>>>,
    /// Magazines hold at most this many pfns (127, fewer in model-checking tests).
    capacity: usize,
    /// The depot is trimmed when it grows beyond this many magazines.
    depot_max: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Rcache {
    /// A cache with `shards` magazine pairs, magazines of `capacity` pfns (at most 127) and a
    /// depot trimmed past `depot_max` magazines.
    ///
    /// # Panics
    ///
    /// When `shards` or `capacity` is 0 or `capacity` exceeds [`IOVA_MAG_SIZE`].
    pub fn new(shards: usize, capacity: usize, depot_max: usize) -> Rcache {
        assert!(shards > 0 && (1..=IOVA_MAG_SIZE).contains(&capacity));
        let cpus = (0..shards)
            .map(|_| CachePadded(Mutex::new(CpuRcache { loaded: Magazine::new(), prev: Magazine::new() })))
            .collect();
        Rcache { cpus, depot: Mutex::new(Vec::new()), capacity, depot_max }
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.cpus.len()
    }

    /// `__iova_rcache_insert` on `shard`. Always caches `pfn`; returns a magazine trimmed
    /// from the depot, whose pfns the caller must free to the map.
    pub fn insert(&self, shard: usize, pfn: u64) -> Option<Box<Magazine>> {
        let mut cpu = lock(&self.cpus[shard % self.cpus.len()].0);
        let mut trimmed = None;
        if cpu.loaded.size < self.capacity {
        } else if cpu.prev.size < self.capacity {
            let CpuRcache { loaded, prev } = &mut *cpu;
            std::mem::swap(loaded, prev);
        } else {
            let full = std::mem::replace(&mut cpu.loaded, Magazine::new());
            let mut depot = lock(&self.depot);
            depot.push(full);
            if depot.len() > self.depot_max {
                // The oldest magazine: its ranges have been idle longest.
                trimmed = Some(depot.remove(0));
            }
        }
        cpu.loaded.push(pfn);
        trimmed
    }

    /// `__iova_rcache_get` on `shard`: a cached pfn at or below `limit`.
    pub fn get(&self, shard: usize, limit: u64) -> Option<u64> {
        let mut cpu = lock(&self.cpus[shard % self.cpus.len()].0);
        if cpu.loaded.size != 0 {
        } else if cpu.prev.size != 0 {
            let CpuRcache { loaded, prev } = &mut *cpu;
            std::mem::swap(loaded, prev);
        } else {
            let full = lock(&self.depot).pop()?;
            cpu.loaded = full;
        }
        cpu.loaded.pop(limit)
    }

    /// Empties every shard and the depot; returns the pfns they held.
    pub fn drain(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for c in self.cpus.iter() {
            let mut cpu = lock(&c.0);
            out.extend_from_slice(cpu.loaded.pfns());
            out.extend_from_slice(cpu.prev.pfns());
            cpu.loaded.size = 0;
            cpu.prev.size = 0;
        }
        for mag in lock(&self.depot).drain(..) {
            out.extend_from_slice(mag.pfns());
        }
        out
    }

    /// Every cached pfn, and the number of depot magazines.
    fn contents(&self) -> (Vec<u64>, usize) {
        let mut out = Vec::new();
        for c in self.cpus.iter() {
            let cpu = lock(&c.0);
            out.extend_from_slice(cpu.loaded.pfns());
            out.extend_from_slice(cpu.prev.pfns());
        }
        let depot = lock(&self.depot);
        for mag in depot.iter() {
            out.extend_from_slice(mag.pfns());
        }
        (out, depot.len())
    }
}

/// The caches of all six classes of one IOVA domain.
#[derive(Debug)]
pub struct Rcaches {
    classes: [Rcache; IOVA_RANGE_CACHE_MAX_SIZE],
}

impl Default for Rcaches {
    fn default() -> Self {
        Rcaches::new()
    }
}

impl Rcaches {
    /// One shard per available CPU; the depot bound is the CPU count, as in the kernel.
    pub fn new() -> Rcaches {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Rcaches { classes: std::array::from_fn(|_| Rcache::new(cpus, IOVA_MAG_SIZE, cpus.max(2))) }
    }

    /// The class of a (power-of-two) size in granules, if it is cached at all.
    pub fn class_of(pages: u64) -> Option<usize> {
        let order = pages.next_power_of_two().trailing_zeros() as usize;
        (pages != 0 && order < IOVA_RANGE_CACHE_MAX_SIZE).then_some(order)
    }

    /// A cached range of `pages` granules starting at or below `limit`, from this CPU.
    pub fn get(&self, pages: u64, limit: u64) -> Option<u64> {
        let class = &self.classes[Self::class_of(pages)?];
        class.get(current_shard(class.shards()), limit)
    }

    /// Caches a range on this CPU; returns pfns the caller must free to the map.
    ///
    /// # Panics
    ///
    /// When `pages` is not a cached size (see [`Rcaches::class_of`]).
    pub fn insert(&self, pages: u64, pfn: u64) -> Option<impl Iterator<Item = u64>> {
        let class = &self.classes[Self::class_of(pages).expect("an rcache size class")];
        class.insert(current_shard(class.shards()), pfn).map(|m| m.pfns().to_vec().into_iter())
    }

    /// Empties every cache; returns the pfns they held.
    pub fn drain_all(&self) -> Vec<u64> {
        self.classes.iter().flat_map(Rcache::drain).collect()
    }

    /// (cached ranges, depot magazines) over all classes.
    pub fn counts(&self) -> (usize, usize) {
        self.classes.iter().map(Rcache::contents).fold((0, 0), |(a, b), (v, d)| (a + v.len(), b + d))
    }

    /// Every cached range as (size in granules, pfn).
    pub fn snapshot(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for (order, class) in self.classes.iter().enumerate() {
            out.extend(class.contents().0.into_iter().map(|pfn| (1u64 << order, pfn)));
        }
        out
    }
}

/// Calls between two reads of the current CPU: `sched_getcpu` costs as much as a cache hit,
/// and a thread rarely migrates.
const CPU_RECHECK: u32 = 64;

thread_local! {
    /// (last CPU seen, calls left before reading it again)
    static CPU: Cell<(usize, u32)> = const { Cell::new((0, 0)) };
}

/// The shard of the CPU this thread runs on, in `0..shards`.
fn current_shard(shards: usize) -> usize {
    if shards == 1 {
        return 0;
    }
    CPU.with(|c| {
        let (cpu, left) = c.get();
        if left != 0 {
            c.set((cpu, left - 1));
            return cpu % shards;
        }
        let cpu = current_cpu();
        c.set((cpu, CPU_RECHECK));
        cpu % shards
    })
}

#[cfg(target_os = "linux")]
fn current_cpu() -> usize {
    rustix::thread::sched_getcpu()
}

/// Without `sched_getcpu`, threads spread over the shards by their identity.
#[cfg(not(target_os = "linux"))]
fn current_cpu() -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    h.finish() as usize
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn magazine_pop_takes_the_topmost_pfn_under_the_limit() {
        let mut m = Magazine::new();
        for p in [10, 50, 20, 40] {
            m.push(p);
        }
        assert_eq!(m.pop(30), Some(20));
        assert_eq!(m.pfns(), &[10, 50, 40]);
        assert_eq!(m.pop(5), None);
        assert_eq!(m.pop(u64::MAX), Some(40));
        assert_eq!(std::mem::size_of::<Magazine>(), 1024);
    }

    #[test]
    fn loaded_prev_and_depot_exchange() {
        let c = Rcache::new(1, 2, 1);
        assert!(c.insert(0, 1).is_none());
        assert!(c.insert(0, 2).is_none());
        assert!(c.insert(0, 3).is_none(), "loaded full: swap with prev");
        assert!(c.insert(0, 4).is_none());
        assert!(c.insert(0, 5).is_none(), "both full: loaded to the depot");
        assert!(c.insert(0, 6).is_none());
        let trimmed = c.insert(0, 7).expect("a second full magazine trims the depot");
        assert_eq!(trimmed.pfns(), &[3, 4], "the oldest magazine goes");
        assert_eq!(c.contents().1, 1, "the depot stays at its bound");
        let mut got = Vec::new();
        while let Some(p) = c.get(0, u64::MAX) {
            got.push(p);
        }
        got.sort_unstable();
        assert_eq!(got, vec![1, 2, 5, 6, 7]);
        assert!(c.contents().0.is_empty());
    }

    #[test]
    fn shards_are_independent_and_drain_returns_everything() {
        let c = Rcache::new(4, IOVA_MAG_SIZE, 4);
        for s in 0..4 {
            c.insert(s, 100 + s as u64);
        }
        assert_eq!(c.get(1, u64::MAX), Some(101));
        assert_eq!(c.get(1, u64::MAX), None, "shard 1 is empty and the depot too");
        let mut rest = c.drain();
        rest.sort_unstable();
        assert_eq!(rest, vec![100, 102, 103]);
    }

    #[test]
    fn class_of_covers_one_to_thirty_two_pages() {
        assert_eq!(Rcaches::class_of(1), Some(0));
        assert_eq!(Rcaches::class_of(3), Some(2));
        assert_eq!(Rcaches::class_of(32), Some(5));
        assert_eq!(Rcaches::class_of(33), None);
        assert_eq!(Rcaches::class_of(0), None);
        assert!(current_shard(8) < 8);
    }
}

/// Model checks of the magazine exchange:
/// `RUSTFLAGS="--cfg loom" cargo test -p dma-iommu --release loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Two threads cache ranges through tiny magazines and a one-magazine depot, each on its
    /// own shard, then take one from the other's shard (a thread that migrated): every pfn
    /// ends up exactly once in a get, a trimmed magazine or the final drain.
    #[test]
    fn loom_magazine_exchange_loses_and_duplicates_nothing() {
        loom::model(|| {
            let c = Arc::new(Rcache::new(2, 1, 1));
            let spawn = |shard: usize, pfns: [u64; 3]| {
                let c = Arc::clone(&c);
                loom::thread::spawn(move || {
                    let mut out = Vec::new();
                    for p in pfns {
                        if let Some(m) = c.insert(shard, p) {
                            out.extend_from_slice(m.pfns());
                        }
                    }
                    out.extend(c.get(1 - shard, u64::MAX));
                    out
                })
            };
            let a = spawn(0, [1, 2, 3]);
            let b = spawn(1, [11, 12, 13]);
            let mut seen = a.join().unwrap();
            seen.extend(b.join().unwrap());
            seen.extend(c.drain());
            seen.sort_unstable();
            assert_eq!(seen, vec![1, 2, 3, 11, 12, 13]);
        });
    }
}
