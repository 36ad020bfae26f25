//! `Direction`: `enum dma_data_direction`, with the kernel's values.

use crate::errno::Errno;

/// Which way data moves during a DMA transfer.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Direction {
    /// `DMA_BIDIRECTIONAL`: either way. Synced both before the device runs and before the CPU reads.
    Bidirectional = 0,
    /// `DMA_TO_DEVICE`: memory to device; the device only reads the buffer.
    ToDevice = 1,
    /// `DMA_FROM_DEVICE`: device to memory; the CPU only reads what the device wrote.
    FromDevice = 2,
    /// `DMA_NONE`: debugging only; every map and sync call rejects it.
    None = 3,
}

impl Direction {
    /// True for the three directions a mapping may have (`valid_dma_direction`).
    pub const fn is_valid(self) -> bool {
        !matches!(self, Direction::None)
    }

    /// Checks a direction for a map or sync call.
    ///
    /// # Errors
    ///
    /// `EINVAL` for [`Direction::None`].
    pub fn check(self) -> Result<Direction, Errno> {
        if self.is_valid() { Ok(self) } else { Err(Errno::EINVAL) }
    }

    /// The kernel's name (`"DMA_TO_DEVICE"`).
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Bidirectional => "DMA_BIDIRECTIONAL",
            Direction::ToDevice => "DMA_TO_DEVICE",
            Direction::FromDevice => "DMA_FROM_DEVICE",
            Direction::None => "DMA_NONE",
        }
    }

    /// True when the device may write the buffer (`FROM_DEVICE` or `BIDIRECTIONAL`).
    pub const fn device_writes(self) -> bool {
        matches!(self, Direction::FromDevice | Direction::Bidirectional)
    }
}

impl TryFrom<u32> for Direction {
    type Error = Errno;

    fn try_from(v: u32) -> Result<Direction, Errno> {
        match v {
            0 => Ok(Direction::Bidirectional),
            1 => Ok(Direction::ToDevice),
            2 => Ok(Direction::FromDevice),
            3 => Ok(Direction::None),
            _ => Err(Errno::EINVAL),
        }
    }
}

impl core::fmt::Display for Direction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_kernels() {
        assert_eq!(Direction::Bidirectional as u32, 0);
        assert_eq!(Direction::ToDevice as u32, 1);
        assert_eq!(Direction::FromDevice as u32, 2);
        assert_eq!(Direction::None as u32, 3);
        for v in 0..4 {
            assert_eq!(Direction::try_from(v).unwrap() as u32, v);
        }
        assert_eq!(Direction::try_from(4), Err(Errno::EINVAL));
        assert_eq!(Direction::None.check(), Err(Errno::EINVAL));
    }
}
