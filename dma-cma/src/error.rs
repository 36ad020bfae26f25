//! Errors of [`CmaArea::new`](crate::CmaArea::new) and
//! [`CmaArea::release`](crate::CmaArea::release).
//!
//! Every variant is a caller bug (the kernel's `-EINVAL`): retrying the same call cannot help.
//! Running out of space is not an error here; `alloc` returns `None` for it and the caller turns
//! that into `ENOMEM`.

use core::fmt;

/// Why an area could not be created or a range could not be released.
///
/// Each variant names the argument that is wrong. A failed call changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CmaError {
    /// `name` is longer than [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes.
    NameTooLong {
        /// Length of the rejected name, in bytes.
        len: usize,
    },
    /// `count` is zero: an area must hold at least one bitmap granule.
    ZeroCount,
    /// `count` is not a multiple of the granule `1 << order_per_bit`.
    CountNotGranular {
        /// The rejected page count.
        count: u64,
        /// Pages per bitmap bit.
        granule: u64,
    },
    /// `count` pages cannot be tracked: the bitmap could not be allocated.
    CountTooLarge {
        /// The rejected page count.
        count: u64,
    },
    /// `order_per_bit` exceeds [`MAX_ORDER_PER_BIT`](crate::MAX_ORDER_PER_BIT).
    OrderPerBitTooLarge {
        /// The rejected order.
        order_per_bit: u32,
    },
    /// `base_pfn` is not a multiple of the granule `1 << order_per_bit`.
    BaseNotGranular {
        /// The rejected base page-frame number.
        base_pfn: u64,
        /// Pages per bitmap bit.
        granule: u64,
    },
    /// `base_pfn + count` does not fit in a `u64`.
    RangeOverflow {
        /// The rejected base page-frame number.
        base_pfn: u64,
        /// The rejected page count.
        count: u64,
    },
    /// `release` was asked to free zero pages.
    EmptyRelease {
        /// The page-frame number passed to `release`.
        pfn: u64,
    },
    /// The range `[pfn, pfn + count)` does not lie wholly inside the area.
    OutsideArea {
        /// First page of the rejected range.
        pfn: u64,
        /// Length of the rejected range, in pages.
        count: u64,
    },
    /// `pfn` does not start a bitmap granule, so it cannot start an allocation.
    Misaligned {
        /// The rejected page-frame number.
        pfn: u64,
        /// Pages per bitmap bit.
        granule: u64,
    },
    /// Some page of `[pfn, pfn + count)` is not allocated: a double free, or a range that was
    /// never handed out.
    NotAllocated {
        /// First page of the rejected range.
        pfn: u64,
        /// Length of the rejected range, in pages.
        count: u64,
    },
}

impl fmt::Display for CmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NameTooLong { len } => write!(f, "cma: name is {len} bytes, more than {}", crate::MAX_NAME_LEN),
            Self::ZeroCount => f.write_str("cma: count is zero"),
            Self::CountNotGranular { count, granule } => {
                write!(f, "cma: count {count} is not a multiple of {granule} pages per bit")
            }
            Self::CountTooLarge { count } => {
                write!(f, "cma: no memory for the bitmap of {count} pages")
            }
            Self::OrderPerBitTooLarge { order_per_bit } => {
                write!(f, "cma: order_per_bit {order_per_bit} is more than {}", crate::MAX_ORDER_PER_BIT)
            }
            Self::BaseNotGranular { base_pfn, granule } => {
                write!(f, "cma: base_pfn {base_pfn:#x} is not a multiple of {granule} pages per bit")
            }
            Self::RangeOverflow { base_pfn, count } => {
                write!(f, "cma: base_pfn {base_pfn:#x} + count {count} overflows")
            }
            Self::EmptyRelease { pfn } => write!(f, "cma: release of zero pages at pfn {pfn:#x}"),
            Self::OutsideArea { pfn, count } => {
                write!(f, "cma: release of {count} pages at pfn {pfn:#x} reaches outside the area")
            }
            Self::Misaligned { pfn, granule } => {
                write!(f, "cma: release at pfn {pfn:#x} does not start a {granule}-page granule")
            }
            Self::NotAllocated { pfn, count } => {
                write!(f, "cma: release of {count} pages at pfn {pfn:#x} covers pages that are not allocated")
            }
        }
    }
}

impl std::error::Error for CmaError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_argument() {
        let e = CmaError::CountNotGranular { count: 3, granule: 4 };
        assert_eq!(e.to_string(), "cma: count 3 is not a multiple of 4 pages per bit");
        let e = CmaError::NotAllocated { pfn: 0x10, count: 2 };
        assert!(e.to_string().contains("not allocated"));
        let boxed: Box<dyn std::error::Error> = Box::new(CmaError::ZeroCount);
        assert_eq!(boxed.to_string(), "cma: count is zero");
    }
}
