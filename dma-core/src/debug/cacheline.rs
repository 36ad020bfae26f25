//! The overlap check: the first cache line of each mapping the device may write,
//! counted (`active_cacheline_*`). Two live mappings on one line corrupt each other on a
//! non-coherent machine, whatever this one is.

use std::sync::Mutex;

use crate::hash::IntMap;

/// Live mappings per physical cache line.
#[derive(Debug)]
pub(crate) struct Lines {
    shift: u32,
    map: Mutex<IntMap<u64, u32>>,
}

/// What inserting a line found.
pub(crate) enum Insert {
    /// No other live mapping starts on this line.
    New,
    /// `n` other mappings already do.
    Overlap(u32),
}

impl Lines {
    pub(crate) fn new(line_size: usize) -> Lines {
        Lines { shift: line_size.trailing_zeros(), map: Mutex::new(IntMap::default()) }
    }

    pub(crate) fn insert(&self, phys: u64) -> Insert {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(phys >> self.shift).or_insert(0);
        *n += 1;
        if *n == 1 { Insert::New } else { Insert::Overlap(*n - 1) }
    }

    pub(crate) fn remove(&self, phys: u64) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&(phys >> self.shift)) {
            *n -= 1;
            if *n == 0 {
                map.remove(&(phys >> self.shift));
            }
        }
    }
}
