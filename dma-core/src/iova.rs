//! The two-step IOVA API (`dma_iova_try_alloc` and friends, `kernel/dma/mapping.c` and
//! `drivers/iommu/dma-iommu.c`, Linux 6.16).
//!
//! A driver that maps many physical ranges as one device-contiguous block asks for the
//! IOVA space first ([`Device::iova_try_alloc`]), then links ranges into it at offsets of
//! its choosing ([`Device::iova_link`]), makes the batch visible ([`Device::iova_sync`]),
//! and later unlinks them ([`Device::iova_unlink`]) and frees the space
//! ([`Device::iova_free`], or both at once with [`Device::iova_destroy`]). Only a device
//! behind an IOMMU has IOVA space: elsewhere `iova_try_alloc` returns false and the driver
//! maps each range on its own (`dma_map_phys` / `dma_map_page`).
//!
//! The checks common to every implementation (a state in use, a range inside it, a valid
//! direction, platform RAM unless `MMIO`) are made here; granule alignment and what is
//! linked are the ops' business. dma-debug tracks every link as a single mapping, so syncs
//! and device accesses inside a linked range are checked like any other mapping, and an
//! unlink ends every link that starts in its range.

use std::panic::Location;

use crate::addr::{DmaAddr, PhysAddr};
use crate::attrs::Attrs;
use crate::debug::EntryKind;
use crate::device::Device;
use crate::direction::Direction;
use crate::errno::{Errno, Result};

/// `struct dma_iova_state`: an IOVA range from [`Device::iova_try_alloc`].
///
/// `addr` is the bus address of byte 0 of the range: the IOVA plus the offset within the
/// IOMMU granule of the physical address given to `iova_try_alloc`.
///
/// # Invariants
///
/// `size` is 0 (the state is not in use: the zeroed, default state) or the size asked of
/// a successful `iova_try_alloc`, below 2^63 (the kernel keeps bit 63 for "swiotlb used");
/// `addr + size` does not overflow, so every offset inside the range has a bus address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IovaState {
    /// The bus address of the range's first byte.
    pub addr: DmaAddr,
    size: u64,
}

impl IovaState {
    /// The kernel's `DMA_IOVA_USE_SWIOTLB` bit of `__size`: never set here, and refused
    /// as a size.
    const USE_SWIOTLB: u64 = 1 << 63;

    /// A state as C holds it (`addr`, `__size`); `None` when `size` has the swiotlb bit or
    /// the range would wrap around the bus address space.
    pub fn from_raw(addr: DmaAddr, size: u64) -> Option<IovaState> {
        // INVARIANT: the swiotlb bit and a wrapping range are refused.
        (size & Self::USE_SWIOTLB == 0 && addr.0.checked_add(size).is_some()).then_some(IovaState { addr, size })
    }

    /// `dma_use_iova`: true when the state holds an IOVA range.
    pub const fn use_iova(&self) -> bool {
        self.size != 0
    }

    /// `dma_iova_size`: the size asked of `iova_try_alloc` (0 when not in use).
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// True when `[offset, offset + size)` is a non-empty part of the range.
    fn holds(&self, offset: usize, size: usize) -> bool {
        size != 0 && (offset as u64).checked_add(size as u64).is_some_and(|end| end <= self.size)
    }
}

impl Device {
    /// `dma_iova_try_alloc`: IOVA space for `size` bytes starting at `phys`'s offset within
    /// the IOMMU granule. Returns true and fills `state`; else false with `state` zeroed,
    /// when the device is not behind an IOMMU (direct, passthrough, VFIO), `size` is 0 or
    /// has bit 63 set, or no space is left under the device's mask: the driver then maps
    /// each range on its own.
    pub fn iova_try_alloc(&self, state: &mut IovaState, phys: PhysAddr, size: usize) -> bool {
        *state = IovaState::default();
        let Some(ops) = &self.ops else { return false };
        if size == 0 || size as u64 & IovaState::USE_SWIOTLB != 0 {
            self.warn(format_args!("dma_iova_try_alloc: refused size {size}"));
            return false;
        }
        match ops.iova_alloc(self, phys, size).map(|addr| IovaState::from_raw(addr, size as u64)) {
            Ok(Some(s)) => {
                *state = s;
                true
            }
            _ => false,
        }
    }

    /// `dma_iova_free`: returns the range of `state` (it must have nothing linked). A state
    /// not in use, a range freed already or one with links is refused with a message.
    pub fn iova_free(&self, state: &IovaState) {
        let Some(ops) = self.iova_ops("dma_iova_free", state) else { return };
        // The ops say why they refuse; only a missing implementation is said here.
        if ops.iova_free(self, state) == Err(Errno::EOPNOTSUPP) {
            self.warn(format_args!("dma_iova_free: {} has no IOVA space", ops.name()));
        }
    }

    /// `dma_iova_link`: maps `[phys, phys + size)` at `state.addr + offset`, with cache
    /// maintenance for a non-coherent device first (none with `SKIP_CPU_SYNC` or `MMIO`;
    /// `MMIO` maps a device's registers, not RAM). The device may use the range after
    /// [`Device::iova_sync`].
    ///
    /// # Errors
    ///
    /// `EINVAL` for a state not in use, size 0, a range past the end of the state's,
    /// `DMA_NONE`, `phys` not platform RAM (without `MMIO`), a bus address and `phys` that
    /// differ in their offset within the IOMMU granule, or a range linked already; `EIO`
    /// (as the kernel) for a `phys` inside a granule at an offset other than 0 (only the
    /// first link may start inside one); `ENOMEM` when page-table memory ran out.
    ///
    /// # Safety
    ///
    /// The memory must stay allocated until it is unlinked, and the CPU must not access it
    /// while the device owns it (between link and unlink).
    #[track_caller]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn iova_link(
        &self,
        state: &IovaState,
        phys: PhysAddr,
        offset: usize,
        size: usize,
        dir: Direction,
        attrs: Attrs,
    ) -> Result<()> {
        const F: &str = "dma_iova_link";
        let ops = self.iova_ops(F, state).ok_or(Errno::EINVAL)?;
        if !state.holds(offset, size) || dir.check().is_err() {
            self.warn(format_args!(
                "{F}: refused ({phys} at offset {offset:#x}, size {size}, {dir}) in a range of {} bytes",
                state.size
            ));
            return Err(Errno::EINVAL);
        }
        let cpu = if attrs.contains(Attrs::MMIO) {
            0
        } else {
            match self.system().ram().cached_ptr(phys, size) {
                Some(p) => p as usize,
                None => {
                    self.warn(format_args!("{F}: {phys}+{size:#x} is not platform RAM (MMIO needs DMA_ATTR_MMIO)"));
                    return Err(Errno::EINVAL);
                }
            }
        };
        // SAFETY: forwarded from the caller.
        let r = unsafe { ops.iova_link(self, state, phys, offset, size, dir, attrs) };
        if let (Some(d), Ok(())) = (self.system().debug(), &r) {
            if !attrs.contains(Attrs::MMIO) {
                let dma = DmaAddr(state.addr.0 + offset as u64);
                d.mapped(self, cpu, size, dir, attrs, dma, EntryKind::Single, 0, Location::caller());
            }
        }
        r
    }

    /// `dma_iova_sync`: the IOTLB sync after a batch of links to `[offset, offset + size)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a state not in use, size 0 or a range past the end of the state's.
    pub fn iova_sync(&self, state: &IovaState, offset: usize, size: usize) -> Result<()> {
        let ops = self.iova_ops("dma_iova_sync", state).ok_or(Errno::EINVAL)?;
        if !state.holds(offset, size) {
            self.warn(format_args!(
                "dma_iova_sync: refused offset {offset:#x}, size {size} in a range of {} bytes",
                state.size
            ));
            return Err(Errno::EINVAL);
        }
        ops.iova_sync(self, state, offset, size)
    }

    /// `dma_iova_unlink`: unmaps what is linked in `[offset, offset + size)`, after making
    /// the device's writes visible to the CPU on a non-coherent device (unless
    /// `SKIP_CPU_SYNC` or `MMIO`); the IOVA space stays the state's. Bad arguments are
    /// refused with a message.
    ///
    /// # Safety
    ///
    /// The range must be what the caller linked (its direction and attrs), and the CPU
    /// must hold no references into that memory during the call.
    #[track_caller]
    pub unsafe fn iova_unlink(&self, state: &IovaState, offset: usize, size: usize, dir: Direction, attrs: Attrs) {
        const F: &str = "dma_iova_unlink";
        let Some(ops) = self.iova_ops(F, state) else { return };
        if !state.holds(offset, size) || dir.check().is_err() {
            return self.warn(format_args!(
                "{F}: refused offset {offset:#x}, size {size}, {dir} in a range of {} bytes",
                state.size
            ));
        }
        if let Some(d) = self.system().debug() {
            if !attrs.contains(Attrs::MMIO) {
                d.unlinking(self, DmaAddr(state.addr.0 + offset as u64), size, dir, Location::caller());
            }
        }
        // SAFETY: forwarded from the caller.
        // The ops say why they refuse; only a missing implementation is said here.
        if unsafe { ops.iova_unlink(self, state, offset, size, dir, attrs) } == Err(Errno::EOPNOTSUPP) {
            self.warn(format_args!("{F}: {} has no IOVA space", ops.name()));
        }
    }

    /// `dma_iova_destroy`: unlinks `[0, mapped_len)` and frees the range (only frees it when
    /// `mapped_len` is 0, after a first link failed).
    ///
    /// # Safety
    ///
    /// As [`Device::iova_unlink`] for `[0, mapped_len)`, which must hold every link.
    #[track_caller]
    pub unsafe fn iova_destroy(&self, state: &IovaState, mapped_len: usize, dir: Direction, attrs: Attrs) {
        if mapped_len != 0 {
            // SAFETY: forwarded from the caller.
            unsafe { self.iova_unlink(state, 0, mapped_len, dir, attrs) };
        }
        self.iova_free(state);
    }

    /// The ops of a state in use, or `None` after a message.
    fn iova_ops(&self, func: &str, state: &IovaState) -> Option<&dyn crate::ops::DmaOps> {
        match &self.ops {
            Some(ops) if state.use_iova() => Some(&**ops),
            _ => {
                self.warn(format_args!("{func}: the state holds no IOVA range of this device ({state:?})"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceConfig, System};

    #[test]
    fn a_direct_device_has_no_iova_space() {
        let sys = System::builder().log_sink(std::sync::Arc::new(|_, _| {})).build().unwrap();
        let dev = Device::new(&sys, DeviceConfig::new("direct")).unwrap();
        let mut state = IovaState::from_raw(DmaAddr(0x1000), 4096).unwrap();
        assert!(!dev.iova_try_alloc(&mut state, PhysAddr(0x1000), 4096));
        assert_eq!(state, IovaState::default());
        assert!(!state.use_iova());
        let page = sys.alloc_pages(crate::Gfp::GFP_KERNEL, 0).unwrap();
        let fake = IovaState::from_raw(DmaAddr(0x1000), 4096).unwrap();
        // SAFETY: refused before anything is mapped.
        let r = unsafe { dev.iova_link(&fake, page.phys(), 0, 4096, Direction::ToDevice, Attrs::empty()) };
        assert_eq!(r, Err(Errno::EINVAL));
        assert_eq!(dev.iova_sync(&fake, 0, 4096), Err(Errno::EINVAL));
        // SAFETY: nothing is linked; both are refused.
        unsafe { dev.iova_destroy(&fake, 4096, Direction::ToDevice, Attrs::empty()) };
        sys.free_pages(page, 0).unwrap();
    }

    #[test]
    fn the_swiotlb_bit_is_not_a_size() {
        assert_eq!(IovaState::from_raw(DmaAddr(0), 1 << 63), None);
        assert_eq!(IovaState::from_raw(DmaAddr(u64::MAX - 10), 11), None, "wraps");
        assert!(IovaState::from_raw(DmaAddr(u64::MAX - 10), 10).is_some());
        let s = IovaState::from_raw(DmaAddr(0x2000), 100).unwrap();
        assert!(s.use_iova() && s.size() == 100);
        assert!(s.holds(0, 100) && s.holds(99, 1));
        assert!(!s.holds(0, 0) && !s.holds(1, 100) && !s.holds(usize::MAX, 2));
    }
}
