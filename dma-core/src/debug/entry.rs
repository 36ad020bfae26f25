//! One tracked allocation or mapping (`struct dma_debug_entry`).

use crate::debug::{Call, Caller};
use crate::direction::Direction;

/// What kind of call made an entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EntryKind {
    /// `dma_map_single` / `dma_map_page`.
    Single,
    /// One segment of `dma_map_sg`.
    Sg,
    /// `dma_alloc_attrs` / `dma_alloc_coherent`.
    Coherent,
    /// `dma_alloc_pages` / `dma_alloc_noncoherent`.
    Noncoherent,
}

impl EntryKind {
    /// The kernel's name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            EntryKind::Single => "single",
            EntryKind::Sg => "scatter-gather",
            EntryKind::Coherent => "coherent",
            EntryKind::Noncoherent => "noncoherent",
        }
    }

    /// Allocations are freed with the CPU address they were given.
    pub(crate) const fn has_cpu_addr(self) -> bool {
        matches!(self, EntryKind::Coherent | EntryKind::Noncoherent)
    }
}

/// Who may touch the buffer now (tracked beyond the kernel, for the missing-sync checks).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Owner {
    Cpu,
    Device,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub dev: u64,
    pub dma: u64,
    pub size: usize,
    pub kind: EntryKind,
    pub dir: Direction,
    pub cpu: usize,
    pub sg_call_ents: usize,
    /// `map_err_type`: false while the caller has not checked the result.
    pub checked: bool,
    pub owner: Owner,
    /// The device wrote since ownership last moved.
    pub device_wrote: bool,
    /// The physical cache line counted for the overlap check.
    pub line: Option<u64>,
    /// Guard mode protects the buffer's pages while the device owns it.
    pub guarded: bool,
    pub at: Caller,
}

impl Entry {
    /// Whether bus address `dma` lies in the entry (an empty one holds its start).
    pub(crate) fn contains(&self, dma: u64) -> bool {
        dma >= self.dma && dma - self.dma < self.size.max(1) as u64
    }
}

/// The index in `bucket` of the entry of `dev` containing `dma` that starts nearest below
/// it, at `lo` or after (a bucket also holds entries 128 MiB apart); the first of equals.
pub(crate) fn nearest(bucket: &[Entry], dev: u64, dma: u64, lo: u64) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (i, e) in bucket.iter().enumerate() {
        if e.dev == dev && e.dma >= lo && e.contains(dma) && best.is_none_or(|(_, start)| e.dma > start) {
            best = Some((i, e.dma));
        }
    }
    best.map(|(i, _)| i)
}

/// The index of the entry an unmap or free refers to: same device and bus address,
/// the best fit on size, kind, direction and sg count among several (`bucket_find_exact`).
pub(crate) fn best_match(bucket: &[Entry], call: &Call) -> Option<usize> {
    bucket
        .iter()
        .enumerate()
        .filter(|(_, e)| e.dev == call.dev && e.dma == call.dma.0)
        .max_by_key(|(_, e)| {
            (e.size == call.size) as u8
                + (e.kind == call.kind) as u8
                + (e.dir == call.dir) as u8
                + (e.sg_call_ents == call.sg_ents) as u8
        })
        .map(|(i, _)| i)
}
