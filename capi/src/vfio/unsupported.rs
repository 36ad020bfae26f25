//! VFIO elsewhere: dma-iommu's backend needs 64-bit Linux (vfio-bindings' layouts are
//! 64-bit only), so every address is refused with a message and no VFIO device exists.
//! The exports stay, so the header is the same on every target.

use std::fmt;
use std::sync::Arc;

use dma_core::{DeviceConfig, Errno, System};

use crate::dev::device;

/// A PCI address, as given (no device is ever opened).
#[derive(Debug)]
pub(crate) struct Addr(String);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// No VFIO device exists.
#[derive(Debug)]
pub(crate) enum Vfio {}

/// Takes any address: [`open`] refuses them all.
pub(crate) fn parse(_: &str, s: &str) -> Result<Addr, Errno> {
    Ok(Addr(s.to_owned()))
}

/// Refuses every device: there is no VFIO here.
pub(crate) fn open(func: &str, addr: Addr, _: &Arc<System>, _: DeviceConfig) -> Result<device, Errno> {
    eprintln!(
        "dma: {func}: {addr}: VFIO devices need 64-bit Linux (this library is built for {}, {}-bit)",
        std::env::consts::OS,
        usize::BITS
    );
    Err(Errno::EOPNOTSUPP)
}

impl Vfio {
    pub(crate) fn address(&self) -> String {
        match *self {}
    }

    pub(crate) fn map_bar(&self, _: u32) -> Result<(*mut u8, usize), Errno> {
        match *self {}
    }

    pub(crate) fn unmap_bar(&self, _: *mut u8) -> bool {
        match *self {}
    }

    pub(crate) fn config_read(&self, _: u64, _: &mut [u8]) -> Result<(), Errno> {
        match *self {}
    }

    pub(crate) fn config_write(&self, _: u64, _: &[u8]) -> Result<(), Errno> {
        match *self {}
    }
}
