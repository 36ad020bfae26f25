//! `Errno`: the kernel's negative-errno error shape.
//!
//! Every fallible call in this crate returns `Result<_, Errno>`. The C ABI turns an
//! `Errno` into the shape the kernel's function has (NULL, `DMA_MAPPING_ERROR`, 0
//! entries or `-errno`). `EINVAL` means the caller passed something wrong and a retry
//! will not help; `ENOMEM` means space ran out and a retry may succeed.

use core::fmt;

/// A positive Linux errno value (`EINVAL` = 22, ...). The C ABI negates it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

macro_rules! errnos {
    ($($name:ident = $val:literal, $text:literal;)*) => {
        impl Errno {
            $(
                #[doc = $text]
                pub const $name: Errno = Errno($val);
            )*

            /// The symbolic name (`"EINVAL"`), or `"E?"` for a value without one here.
            pub fn name(self) -> &'static str {
                match self.0 {
                    $($val => stringify!($name),)*
                    _ => "E?",
                }
            }

            fn text(self) -> &'static str {
                match self.0 {
                    $($val => $text,)*
                    _ => "unknown error",
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted";
    EIO = 5, "Input/output error";
    ENXIO = 6, "No such device or address";
    E2BIG = 7, "Argument list too long";
    ENOMEM = 12, "Cannot allocate memory";
    EFAULT = 14, "Bad address";
    EBUSY = 16, "Device or resource busy";
    EEXIST = 17, "File exists";
    ENODEV = 19, "No such device";
    EINVAL = 22, "Invalid argument";
    ENOSPC = 28, "No space left on device";
    ERANGE = 34, "Numerical result out of range";
    EOPNOTSUPP = 95, "Operation not supported";
    EREMOTEIO = 121, "Remote I/O error";
}

impl Errno {
    /// Wraps a raw positive errno value.
    pub const fn from_raw(value: i32) -> Errno {
        Errno(value)
    }

    /// The positive errno value.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The kernel's return shape for an `int` function: `-errno`.
    pub const fn to_negative(self) -> i32 {
        -self.0
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text(), self.name())
    }
}

impl std::error::Error for Errno {}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(Errno::EIO.0))
    }
}

/// The crate's result type.
pub type Result<T> = core::result::Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_and_negation_match_linux() {
        assert_eq!(Errno::EINVAL.raw(), 22);
        assert_eq!(Errno::ENOMEM.to_negative(), -12);
        assert_eq!(Errno::EIO.name(), "EIO");
        assert_eq!(Errno::from_raw(9999).name(), "E?");
        assert_eq!(Errno::ENOMEM.to_string(), "Cannot allocate memory (ENOMEM)");
    }
}
