//! What dma-debug reports: the error kinds, one report, the counters.

use std::fmt;
use std::panic::Location;

use crate::direction::Direction;

macro_rules! kinds {
    ($($name:ident => $text:literal,)*) => {
        /// Every misuse dma-debug detects. The first group is the kernel's
        /// (`kernel/dma/debug.c`); the last group goes beyond it.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[non_exhaustive]
        pub enum ErrorKind { $(#[doc = $text] $name,)* }

        impl ErrorKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$name,)*];

            /// The kernel's wording (or ours, for the kinds beyond the kernel).
            pub const fn text(self) -> &'static str {
                match self { $(ErrorKind::$name => $text,)* }
            }
        }
    };
}

kinds! {
    FreeNotAllocated => "device driver tries to free DMA memory it has not allocated",
    FreeInvalidAddress => "device driver tries to free an invalid DMA memory address",
    FreeWrongSize => "device driver frees DMA memory with different size",
    FreeWrongFunction => "device driver frees DMA memory with wrong function",
    FreeWrongCpuAddress => "device driver frees DMA memory with different CPU address",
    FreeWrongSgCount => "device driver frees DMA sg list with different entry count",
    FreeWrongDirection => "device driver frees DMA memory with different direction",
    MapErrorNotChecked => "device driver failed to check map error",
    SyncNotAllocated => "device driver tries to sync DMA memory it has not allocated",
    SyncOutOfRange => "device driver syncs DMA memory outside allocated range",
    SyncWrongDirection => "device driver syncs DMA memory with different direction",
    SyncReadOnlyForCpu => "device driver syncs device read-only DMA memory for cpu",
    SyncWriteOnlyForDevice => "device driver syncs device write-only DMA memory to device",
    SyncWrongSgCount => "device driver syncs DMA sg list with different entry count",
    MapStack => "device driver maps memory from stack",
    MapText => "device driver maps memory from kernel text or rodata",
    MapInvalidArea => "device driver maps memory from vmalloc area",
    SgSegmentTooLong => "mapping sg segment longer than device claims to support",
    SgSegmentAcrossBoundary => "mapping sg segment across boundary",
    CachelineOverlap => "cacheline tracking EEXIST, overlapping mappings aren't supported",
    CachelineOverflow => "exceeded 7 overlapping mappings of cacheline",
    PendingAtRelease => "device driver has pending DMA allocations while released from device",
    MissingSyncForDevice => "device reads data the CPU has not handed over (missing dma_sync_*_for_device)",
    MissingSyncForCpu => "device data overwritten by the CPU's stale cache (missing dma_sync_*_for_cpu)",
    DeviceWritesCpuOwned => "device writes memory the CPU owns (missing dma_sync_*_for_device)",
}

impl ErrorKind {
    /// Number of kinds.
    pub const COUNT: usize = ErrorKind::ALL.len();

    pub(crate) fn index(self) -> usize {
        ErrorKind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// Where a DMA API call came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Caller {
    /// A Rust call site (`#[track_caller]`).
    Rust(&'static Location<'static>),
    /// A C call site: file and line passed through the C ABI, or a return address.
    C {
        /// Source file, if the caller passed one.
        file: Option<&'static str>,
        /// Source line, or the return address when `file` is `None`.
        line: usize,
    },
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Rust(l) => write!(f, "{}:{}", l.file(), l.line()),
            Caller::C { file: Some(file), line } => write!(f, "{file}:{line}"),
            Caller::C { file: None, line } => write!(f, "C caller at {line:#x}"),
        }
    }
}

/// One detected misuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The device's name.
    pub device: String,
    /// The full message: the kind's text and the details (addresses, sizes, directions).
    pub message: String,
    /// The bus address involved.
    pub dma: u64,
    /// The size involved.
    pub size: usize,
    /// The direction of the call.
    pub dir: Direction,
    /// The call that did it.
    pub caller: Caller,
    /// Where the mapping or allocation involved was made, when there is one.
    pub mapped_at: Option<Caller>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DMA-API: {}: {} [at {}]", self.device, self.message, self.caller)?;
        if let Some(m) = self.mapped_at {
            write!(f, " [mapped at {m}]")?;
        }
        Ok(())
    }
}

/// Counters of a system's dma-debug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugStats {
    /// Reports per kind, indexed like [`ErrorKind::ALL`].
    pub errors: Vec<(ErrorKind, u64)>,
    /// All reports.
    pub error_count: u64,
    /// Live tracked allocations and mappings.
    pub entries: usize,
}

impl DebugStats {
    /// Reports of one kind.
    pub fn count(&self, kind: ErrorKind) -> u64 {
        self.errors.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n)
    }
}
