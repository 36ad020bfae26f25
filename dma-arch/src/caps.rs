//! What the detected CPU lets this process do to its data caches.

use core::fmt;

/// The instruction family [`crate::clean`] and friends use on this machine.
///
/// Picked once at run time. Only [`CachePath::FenceOnly`] leaves the caches untouched; test it
/// with [`CachePath::maintains_cache`] rather than matching, so new paths need no caller change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CachePath {
    /// x86-64 `clwb` cleans (the line may stay cached); invalidation uses `clflushopt` or
    /// `clflush`, since `clwb` does not invalidate.
    X86Clwb,
    /// x86-64 `clflushopt` (weakly ordered flush, `sfence` afterwards) for every operation.
    X86Clflushopt,
    /// x86-64 `clflush` (ordered flush, `mfence` afterwards) for every operation.
    X86Clflush,
    /// AArch64 `dc cvac` / `dc civac` to the point of coherency, then `dsb sy`.
    Aarch64Dc,
    /// RISC-V Zicbom `cbo.clean` / `cbo.flush`, then `fence rw,rw`.
    RiscvZicbom,
    /// A full barrier and nothing else: no cache line is cleaned or invalidated.
    FenceOnly,
}

impl CachePath {
    /// Whether the maintenance functions really clean or invalidate cache lines.
    ///
    /// `false` only for [`CachePath::FenceOnly`]: there, a non-coherent device would read
    /// stale memory and the CPU would read stale cache lines.
    #[must_use]
    pub fn maintains_cache(self) -> bool {
        !matches!(self, Self::FenceOnly)
    }
}

impl fmt::Display for CachePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::X86Clwb => "x86 clwb (invalidate: clflushopt/clflush) + sfence",
            Self::X86Clflushopt => "x86 clflushopt + sfence",
            Self::X86Clflush => "x86 clflush + mfence",
            Self::Aarch64Dc => "aarch64 dc cvac/civac + dsb sy",
            Self::RiscvZicbom => "riscv zicbom cbo.clean/cbo.flush + fence rw,rw",
            Self::FenceOnly => "fence only (caches are NOT maintained)",
        })
    }
}

/// The detected cache maintenance path and line size, as returned by [`crate::capabilities`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// Which instructions [`crate::clean`], [`crate::invalidate`] and
    /// [`crate::clean_invalidate`] issue.
    pub path: CachePath,
    /// The stride of those instructions in bytes, equal to [`crate::cache_line_size`]:
    /// a power of two, at least 16.
    pub line_size: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [CachePath; 6] = [
        CachePath::X86Clwb,
        CachePath::X86Clflushopt,
        CachePath::X86Clflush,
        CachePath::Aarch64Dc,
        CachePath::RiscvZicbom,
        CachePath::FenceOnly,
    ];

    #[test]
    fn only_fence_only_skips_maintenance() {
        for path in ALL {
            assert_eq!(path.maintains_cache(), path != CachePath::FenceOnly, "{path:?}");
        }
    }

    #[test]
    fn display_is_distinct_and_fence_only_says_not() {
        let names: Vec<String> = ALL.iter().map(ToString::to_string).collect();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(CachePath::FenceOnly.to_string().contains("NOT"));
    }
}
