//! PCI addresses (`domain:bus:device.function`) and the config-space bits a userspace
//! driver sets.

use std::fmt;
use std::str::FromStr;

use dma_core::{Errno, Result};

/// PCI command register offset and its memory-space and bus-master bits.
pub(super) const PCI_COMMAND: u64 = 0x04;
pub(super) const PCI_COMMAND_MEMORY: u16 = 1 << 1;
pub(super) const PCI_COMMAND_MASTER: u16 = 1 << 2;

/// A PCI address, `domain:bus:device.function` (`0000:00:03.0`; the domain may be left out).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PciAddress {
    /// PCI segment.
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number, below 32.
    pub device: u8,
    /// Function number, below 8.
    pub function: u8,
}

impl FromStr for PciAddress {
    type Err = Errno;

    /// # Errors
    ///
    /// `EINVAL` for anything but `[dddd:]bb:dd.f` in hex with device < 32 and function < 8.
    fn from_str(s: &str) -> Result<PciAddress> {
        let hex = |t: &str, max_len: usize| -> Result<u32> {
            if t.is_empty() || t.len() > max_len || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Errno::EINVAL);
            }
            u32::from_str_radix(t, 16).map_err(|_| Errno::EINVAL)
        };
        let (head, function) = s.rsplit_once('.').ok_or(Errno::EINVAL)?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, device) = match parts[..] {
            [d, b, v] => (hex(d, 4)?, hex(b, 2)?, hex(v, 2)?),
            [b, v] => (0, hex(b, 2)?, hex(v, 2)?),
            _ => return Err(Errno::EINVAL),
        };
        let function = hex(function, 1)?;
        if device >= 32 || function >= 8 {
            return Err(Errno::EINVAL);
        }
        Ok(PciAddress { domain: domain as u16, bus: bus as u8, device: device as u8, function: function as u8 })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:02x}:{:02x}.{:x}", self.domain, self.bus, self.device, self.function)
    }
}
