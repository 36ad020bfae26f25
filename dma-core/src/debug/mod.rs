//! dma-debug: every misuse of the API reported, as `CONFIG_DMA_API_DEBUG` does
//! (`kernel/dma/debug.c`), and the misuses the kernel cannot see.
//!
//! Switched on by `dma_debug=1` (or `guard`) in the options. When off, each API call
//! pays one predictable branch (`System::debug()` is `None`).
//!
//! Every allocation and mapping is an entry in one of 16384 hash buckets keyed by its
//! start bus address (8 KiB granules, like the kernel), each with its own lock. Unmaps
//! and frees look up the exact entry and compare size, kind, CPU address, direction and
//! sg count. Syncs and device accesses look up the entry containing the address, the one
//! with the nearest start: an entry of a granule or less starts in the address's granule
//! or the one before (two buckets); a larger one is also in a side index by power-of-two
//! size class, each class ordered by device and start, so a class is searched only for
//! starts within its largest size below the address. The cost does not grow with the
//! largest entry (the kernel walks buckets back, up to the max segment size). The first
//! cache line of every mapping the device may write is counted, and a second live mapping
//! on the same line is reported (the overlap check). A device released with live entries
//! is reported with one of them.
//!
//! Beyond the kernel, on non-coherent devices the owner of each buffer is tracked (CPU
//! or device, moved by map, sync and unmap), and the simulated bus master asks dma-debug
//! about every access: reading a buffer the CPU still owns, or a line the CPU dirtied
//! after handing the buffer over, is a missing `sync_for_device`; handing a buffer back
//! to the device after it wrote, without a `sync_for_cpu` between, is a missing
//! `sync_for_cpu` (the clean then writes the CPU's stale lines over the device's data).

mod area;
mod cacheline;
mod entry;
mod guard;
mod hooks;
mod index;
mod report;
#[cfg(test)]
mod tests;

pub use entry::EntryKind;
pub use report::{Caller, DebugStats, ErrorKind, Report};

use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockWriteGuard};

use crate::addr::DmaAddr;
use crate::direction::Direction;
use entry::{Entry, Owner};
use index::{GRANULE, Large};

/// A function that receives every report.
pub type ReportSink = Arc<dyn Fn(&Report) + Send + Sync>;

const HASH_SIZE: usize = 16384;
const HASH_SHIFT: u32 = 13;

fn bucket_of(dma: u64) -> usize {
    ((dma >> HASH_SHIFT) as usize) & (HASH_SIZE - 1)
}

thread_local! {
    static C_CALLER: Cell<Option<Caller>> = const { Cell::new(None) };
}

/// Runs `f` with `caller` as the call site of every DMA API call it makes on this thread
/// (the C ABI passes its caller through here).
pub fn with_caller<R>(caller: Caller, f: impl FnOnce() -> R) -> R {
    let prev = C_CALLER.with(|c| c.replace(Some(caller)));
    let r = f();
    C_CALLER.with(|c| c.set(prev));
    r
}

/// The call site of the current API call: the C caller if one was set, else the Rust one.
pub(crate) fn caller(at: &'static Location<'static>) -> Caller {
    C_CALLER.with(|c| c.get()).unwrap_or(Caller::Rust(at))
}

/// The tracking state of one system.
pub(crate) struct Debug {
    buckets: Box<[Mutex<Vec<Entry>>]>,
    lines: cacheline::Lines,
    counts: Box<[AtomicU64]>,
    total: AtomicU64,
    entries: AtomicUsize,
    /// The entries of more than a granule, for the containing lookup. Never locked
    /// together with a bucket.
    large: RwLock<Large>,
    sink: RwLock<Option<ReportSink>>,
    pub(crate) guard: Option<guard::Guard>,
}

/// What a map, alloc, unmap, free or sync call says about itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call {
    pub dev: u64,
    pub dma: DmaAddr,
    pub size: usize,
    pub dir: Direction,
    pub kind: EntryKind,
    pub cpu: usize,
    pub sg_ents: usize,
    pub caller: Caller,
}

impl Debug {
    pub(crate) fn new(line_size: usize, guard: bool) -> Debug {
        Debug {
            buckets: (0..HASH_SIZE).map(|_| Mutex::new(Vec::new())).collect(),
            lines: cacheline::Lines::new(line_size),
            counts: (0..ErrorKind::COUNT).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            entries: AtomicUsize::new(0),
            large: RwLock::new(Large::new()),
            sink: RwLock::new(None),
            guard: guard.then(guard::Guard::new),
        }
    }

    pub(crate) fn set_sink(&self, sink: Option<ReportSink>) {
        *self.sink.write().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    pub(crate) fn stats(&self) -> DebugStats {
        DebugStats {
            errors: ErrorKind::ALL.iter().map(|k| (*k, self.counts[k.index()].load(Relaxed))).collect(),
            error_count: self.total.load(Relaxed),
            entries: self.entries.load(Relaxed),
        }
    }

    fn bucket(&self, dma: u64) -> MutexGuard<'_, Vec<Entry>> {
        self.buckets[bucket_of(dma)].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The index of large entries, to change it; never taken with a bucket locked.
    fn large(&self) -> RwLockWriteGuard<'_, Large> {
        self.large.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Files a report: counters, then the sink (standard error by default).
    pub(crate) fn report(
        &self,
        kind: ErrorKind,
        device: &str,
        call: &Call,
        detail: std::fmt::Arguments<'_>,
        mapped_at: Option<Caller>,
    ) {
        self.counts[kind.index()].fetch_add(1, Relaxed);
        self.total.fetch_add(1, Relaxed);
        let report = Report {
            kind,
            device: device.to_owned(),
            message: format!("{} {detail}", kind.text()),
            dma: call.dma.0,
            size: call.size,
            dir: call.dir,
            caller: call.caller,
            mapped_at,
        };
        let sink = self.sink.read().unwrap_or_else(|e| e.into_inner()).clone();
        match sink {
            Some(f) => f(&report),
            None => eprintln!("{report}"),
        }
    }

    /// Tracks a new allocation or mapping. `checked`: whether the caller has seen the
    /// result (Rust's `Result` is a check; the C ABI clears it until `dma_mapping_error`).
    /// `track_line`: whether the overlap check applies (device may write, no SKIP_CPU_SYNC).
    pub(crate) fn add(
        &self,
        device: &str,
        call: &Call,
        owner_is_device: bool,
        track_line: bool,
        phys: Option<u64>,
        guarded: bool,
    ) {
        let line = match (track_line, phys) {
            (true, Some(p)) => match self.lines.insert(p) {
                cacheline::Insert::New => Some(p),
                cacheline::Insert::Overlap(n) => {
                    let kind = if n > 7 { ErrorKind::CachelineOverflow } else { ErrorKind::CachelineOverlap };
                    self.report(kind, device, call, format_args!("[phys={p:#x}] [overlaps={n}]"), None);
                    Some(p)
                }
            },
            _ => None,
        };
        let entry = Entry {
            dev: call.dev,
            dma: call.dma.0,
            size: call.size,
            kind: call.kind,
            dir: call.dir,
            cpu: call.cpu,
            sg_call_ents: call.sg_ents,
            checked: true,
            owner: if owner_is_device { Owner::Device } else { Owner::Cpu },
            device_wrote: false,
            line,
            guarded,
            at: call.caller,
        };
        if guarded && owner_is_device {
            self.protect(device, &entry);
        }
        // The index first and out last, so it never says less than the buckets.
        if index::is_large(call.size) {
            self.large().insert(call.dev, call.dma.0, call.size);
        }
        self.bucket(call.dma.0).push(entry);
        self.entries.fetch_add(1, Relaxed);
    }

    /// `dma_mapping_error`: the caller looked at the result.
    pub(crate) fn mapping_checked(&self, dev: u64, dma: DmaAddr) {
        if let Some(e) = self.bucket(dma.0).iter_mut().find(|e| e.dev == dev && e.dma == dma.0 && !e.checked) {
            e.checked = true;
        }
    }

    /// The C ABI hands bus addresses out unchecked: the caller must call
    /// `dma_mapping_error` before it unmaps.
    pub(crate) fn expect_check(&self, dev: u64, dma: DmaAddr) {
        if let Some(e) = self.bucket(dma.0).iter_mut().rev().find(|e| e.dev == dev && e.dma == dma.0) {
            e.checked = false;
        }
    }

    /// Checks an unmap or free against its entry and drops the entry (`check_unmap`).
    pub(crate) fn remove(&self, device: &str, call: &Call) {
        if call.dma.is_error() {
            return self.report(
                ErrorKind::FreeInvalidAddress,
                device,
                call,
                format_args!("[addr={}] [size={}]", call.dma, call.size),
                None,
            );
        }
        let found = {
            let mut bucket = self.bucket(call.dma.0);
            entry::best_match(&bucket, call).map(|i| bucket.swap_remove(i))
        };
        let Some(e) = found else {
            return self.report(
                ErrorKind::FreeNotAllocated,
                device,
                call,
                format_args!("[device address={}] [size={} bytes]", call.dma, call.size),
                None,
            );
        };
        self.entries.fetch_sub(1, Relaxed);
        if index::is_large(e.size) {
            self.large().remove(e.dev, e.dma, e.size);
        }
        if let Some(p) = e.line {
            self.lines.remove(p);
        }
        if e.guarded {
            self.unprotect(&e);
        }
        let at = Some(e.at);
        if e.size != call.size {
            self.report(
                ErrorKind::FreeWrongSize,
                device,
                call,
                format_args!(
                    "[device address={}] [map size={} bytes] [unmap size={} bytes]",
                    call.dma, e.size, call.size
                ),
                at,
            );
        }
        if e.kind != call.kind {
            self.report(
                ErrorKind::FreeWrongFunction,
                device,
                call,
                format_args!(
                    "[device address={}] [size={} bytes] [mapped as {}] [unmapped as {}]",
                    call.dma,
                    call.size,
                    e.kind.name(),
                    call.kind.name()
                ),
                at,
            );
        }
        if e.kind.has_cpu_addr() && e.kind == call.kind && e.cpu != call.cpu {
            self.report(
                ErrorKind::FreeWrongCpuAddress,
                device,
                call,
                format_args!(
                    "[device address={}] [size={} bytes] [cpu alloc address={:#x}] [cpu free address={:#x}]",
                    call.dma, call.size, e.cpu, call.cpu
                ),
                at,
            );
        }
        if e.kind == EntryKind::Sg && call.kind == EntryKind::Sg && e.sg_call_ents != call.sg_ents {
            self.report(
                ErrorKind::FreeWrongSgCount,
                device,
                call,
                format_args!(
                    "[device address={}] [map count={}] [unmap count={}]",
                    call.dma, e.sg_call_ents, call.sg_ents
                ),
                at,
            );
        }
        if e.dir != call.dir {
            self.report(
                ErrorKind::FreeWrongDirection,
                device,
                call,
                format_args!(
                    "[device address={}] [size={} bytes] [mapped with {}] [unmapped with {}]",
                    call.dma, call.size, e.dir, call.dir
                ),
                at,
            );
        }
        if !e.checked {
            self.report(
                ErrorKind::MapErrorNotChecked,
                device,
                call,
                format_args!("[device address={}] [size={} bytes] [mapped as {}]", call.dma, call.size, e.kind.name()),
                at,
            );
        }
    }

    /// The (start, size) of every entry of `dev` starting in `[lo, hi)`, in no order.
    pub(crate) fn starting_in(&self, dev: u64, lo: u64, hi: u64) -> Vec<(u64, usize)> {
        let granules = (hi.saturating_sub(lo & !((1 << HASH_SHIFT) - 1)) >> HASH_SHIFT) + 1;
        let buckets: Vec<usize> = if granules >= HASH_SIZE as u64 {
            (0..HASH_SIZE).collect()
        } else {
            (0..granules).map(|g| bucket_of(lo.wrapping_add(g << HASH_SHIFT))).collect()
        };
        let mut found = Vec::new();
        for b in buckets {
            let bucket = self.buckets[b].lock().unwrap_or_else(|e| e.into_inner());
            found.extend(bucket.iter().filter(|e| e.dev == dev && e.dma >= lo && e.dma < hi).map(|e| (e.dma, e.size)));
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Checks a sync against the entry containing it and moves ownership (`check_sync`).
    /// Returns true when the sync hands the buffer to the device after the device wrote
    /// it and the CPU never took it back: the caller reports the lost data.
    pub(crate) fn sync(&self, device: &str, call: &Call, to_cpu: bool, sg_ents: Option<usize>) {
        let mut reports: Vec<(ErrorKind, String, Option<Caller>)> = Vec::new();
        let found = self.with_containing(call.dev, call.dma.0, |e| {
            let at = Some(e.at);
            let end = e.dma + e.size as u64;
            if call.dma.0 + call.size as u64 > end {
                reports.push((ErrorKind::SyncOutOfRange, format!("[device address={}] [allocation size={} bytes] [sync offset+size={}]", call.dma, e.size, call.dma.0 - e.dma + call.size as u64), at));
            }
            if e.dir != Direction::Bidirectional {
                if call.dir != e.dir {
                    reports.push((ErrorKind::SyncWrongDirection, format!("[device address={}] [size={} bytes] [mapped with {}] [synced with {}]", call.dma, call.size, e.dir, call.dir), at));
                }
                if to_cpu && e.dir != Direction::FromDevice && call.dir != Direction::ToDevice {
                    reports.push((ErrorKind::SyncReadOnlyForCpu, format!("[device address={}] [size={} bytes] [mapped with {}] [synced with {}]", call.dma, call.size, e.dir, call.dir), at));
                }
                if !to_cpu && e.dir != Direction::ToDevice && call.dir != Direction::FromDevice {
                    reports.push((ErrorKind::SyncWriteOnlyForDevice, format!("[device address={}] [size={} bytes] [mapped with {}] [synced with {}]", call.dma, call.size, e.dir, call.dir), at));
                }
            }
            if let Some(n) = sg_ents {
                if e.kind == EntryKind::Sg && n != e.sg_call_ents {
                    reports.push((ErrorKind::SyncWrongSgCount, format!("[device address={}] [map count={}] [sync count={}]", call.dma, e.sg_call_ents, n), at));
                }
            }
            if to_cpu {
                if e.guarded {
                    self.unprotect(e);
                }
                e.owner = Owner::Cpu;
                e.device_wrote = false;
            } else {
                if e.guarded {
                    self.protect(device, e);
                }
                if e.owner == Owner::Device && e.device_wrote {
                    reports.push((ErrorKind::MissingSyncForCpu, format!("[device address={}] [size={} bytes]: the device wrote this buffer and it goes back to the device without a sync_for_cpu in between; the CPU never saw that data, and the clean writes its stale cache lines over it", call.dma, e.size), at));
                }
                e.owner = Owner::Device;
                e.device_wrote = false;
            }
        });
        if !found {
            return self.report(
                ErrorKind::SyncNotAllocated,
                device,
                call,
                format_args!("[device address={}] [size={} bytes]", call.dma, call.size),
                None,
            );
        }
        for (kind, text, at) in reports {
            self.report(kind, device, call, format_args!("{text}"), at);
        }
    }

    /// Lifts guard mode's protection of the buffer containing `dma` before the library
    /// touches it (a sync for the device reads the CPU's view).
    pub(crate) fn unguard(&self, dev: u64, dma: DmaAddr) {
        if self.guard.is_some() {
            self.with_containing(dev, dma.0, |e| {
                if e.guarded {
                    self.unprotect(e);
                }
            });
        }
    }

    fn protect(&self, device: &str, e: &Entry) {
        if let Some(g) = &self.guard {
            g.protect(
                e.cpu,
                e.size,
                format!(
                    "  CPU address {:#x}, {} bytes, device address {:#x}, {} {}, owned by device '{device}' since {}",
                    e.cpu,
                    e.size,
                    e.dma,
                    e.kind.name(),
                    e.dir,
                    e.at
                ),
            );
        }
    }

    fn unprotect(&self, e: &Entry) {
        if let Some(g) = &self.guard {
            g.unprotect(e.cpu, e.size);
        }
    }

    /// Runs `f` on the live entry of device `dev` that contains bus address `dma`, the one
    /// with the nearest start (then the first in its bucket); false when there is none.
    /// Three bucket locks at most, whatever the size of the entries.
    fn with_containing(&self, dev: u64, dma: u64, f: impl FnOnce(&mut Entry)) -> bool {
        let (mut bucket, i) = 'found: {
            // Starts in dma's granule, then in the one before: every entry of a granule
            // or less that contains dma, and the large ones that start there.
            let granule = dma & !(GRANULE - 1);
            let bucket = self.bucket(granule);
            if let Some(i) = entry::nearest(&bucket, dev, dma, granule) {
                break 'found (bucket, i);
            }
            drop(bucket);
            let Some(prev) = granule.checked_sub(GRANULE) else { return false };
            let bucket = self.bucket(prev);
            if let Some(i) = entry::nearest(&bucket, dev, dma, prev) {
                break 'found (bucket, i);
            }
            drop(bucket);
            // Earlier starts: large entries only, through the index.
            let Some(mut below) = prev.checked_sub(1) else { return false };
            loop {
                let Some(start) = self.large.read().unwrap_or_else(|e| e.into_inner()).nearest(dev, dma, below) else {
                    return false;
                };
                let bucket = self.bucket(start);
                if let Some(i) = bucket.iter().position(|e| e.dev == dev && e.dma == start && e.contains(dma)) {
                    break 'found (bucket, i);
                }
                // Unmapped since the index was read: the next start down.
                let Some(next) = start.checked_sub(1) else { return false };
                below = next;
            }
        };
        f(&mut bucket[i]);
        true
    }

    /// The simulated bus master's access to `[dma, dma + len)` of device `dev`, on a
    /// non-coherent device: checks and records ownership. `stale` says whether the CPU's
    /// cached copy of the range differs from memory (for a read).
    pub(crate) fn device_access(
        &self,
        device: &str,
        call: &Call,
        write: bool,
        stale: impl FnOnce(u64, usize) -> Option<u64>,
    ) {
        let mut report = None;
        self.with_containing(call.dev, call.dma.0, |e| {
            let at = Some(e.at);
            if e.kind == EntryKind::Coherent {
                return;
            }
            if e.owner == Owner::Cpu {
                let kind = if write { ErrorKind::DeviceWritesCpuOwned } else { ErrorKind::MissingSyncForDevice };
                report = Some((kind, format!("[device address={}] [size={} bytes]: the buffer at {:#x} ({} bytes) is owned by the CPU", call.dma, call.size, e.cpu, e.size), at));
            } else if write {
                e.device_wrote = true;
            } else if !e.device_wrote {
                if let Some(line) = stale(call.dma.0, call.size) {
                    report = Some((ErrorKind::MissingSyncForDevice, format!("[device address={}] [size={} bytes]: the CPU wrote the cache line at device address {line:#x} (CPU address {:#x}) after handing the buffer to the device; the device reads stale memory", call.dma, call.size, e.cpu.wrapping_add(line.wrapping_sub(e.dma) as usize)), at));
                }
            }
        });
        if let Some((kind, text, at)) = report {
            self.report(kind, device, call, format_args!("{text}"), at);
        }
    }

    /// A device is going away: report live entries (`dma_debug_device_change`).
    pub(crate) fn device_released(&self, device: &str, dev: u64) {
        let mut count = 0usize;
        let mut first: Option<Entry> = None;
        let mut large = Vec::new();
        for b in self.buckets.iter() {
            let mut bucket = b.lock().unwrap_or_else(|e| e.into_inner());
            bucket.retain(|e| {
                if e.dev == dev {
                    count += 1;
                    if first.is_none() {
                        first = Some(*e);
                    }
                    if index::is_large(e.size) {
                        large.push((e.dma, e.size));
                    }
                    if let Some(p) = e.line {
                        self.lines.remove(p);
                    }
                    false
                } else {
                    true
                }
            });
        }
        if !large.is_empty() {
            let mut index = self.large();
            for (start, size) in large {
                index.remove(dev, start, size);
            }
        }
        if let Some(e) = first {
            self.entries.fetch_sub(count, Relaxed);
            let call = Call {
                dev,
                dma: DmaAddr(e.dma),
                size: e.size,
                dir: e.dir,
                kind: e.kind,
                cpu: e.cpu,
                sg_ents: e.sg_call_ents,
                caller: e.at,
            };
            self.report(ErrorKind::PendingAtRelease, device, &call, format_args!("[count={count}] One of leaked entries details: [device address={:#x}] [size={} bytes] [mapped as {}] [direction={}]", e.dma, e.size, e.kind.name(), e.dir), Some(e.at));
        }
    }
}

impl std::fmt::Debug for Debug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Debug").field("stats", &self.stats()).field("guard", &self.guard.is_some()).finish()
    }
}
