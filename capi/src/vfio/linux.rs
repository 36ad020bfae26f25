//! VFIO on 64-bit Linux: dma-iommu's [`VfioDevice`] is the device's DMA ops, and the BARs
//! C mapped live here until `dma_vfio_unmap_bar` or the device's destruction.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use dma_core::{Device, DeviceConfig, DmaOps, Errno, System};
use dma_iommu::vfio::{Bar, PciAddress, VfioDevice};

use crate::boundary::refuse;
use crate::dev::device;

/// A PCI address as `dma_device_create_vfio` was given it.
pub(crate) type Addr = PciAddress;

/// The VFIO side of a C device: the container, group and device descriptors (shared with
/// the device's DMA ops) and the BARs mapped so far.
#[derive(Debug)]
pub(crate) struct Vfio {
    dev: Arc<VfioDevice>,
    bars: Mutex<Vec<Bar>>,
}

/// Parses `[dddd:]bb:dd.f`.
pub(crate) fn parse(func: &str, s: &str) -> Result<Addr, Errno> {
    s.parse().map_err(|_| refuse(func, format_args!("{s:?} is not a PCI address ([dddd:]bb:dd.f, hex)")))
}

/// Why `VfioDevice::open` failed, in the words of someone setting up vfio-pci: the errno
/// alone does not say which step went wrong.
fn hint(addr: Addr, e: Errno) -> String {
    let sysfs = format!("/sys/bus/pci/devices/{addr}");
    let driver = std::fs::read_link(format!("{sysfs}/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let os = std::io::Error::from_raw_os_error(e.raw());
    match e {
        _ if !Path::new(&sysfs).exists() => "no such PCI device".to_owned(),
        Errno::ENODEV => {
            "no IOMMU group: is an IOMMU on (intel_iommu=on; the kernel has no vfio no-IOMMU mode)?".into()
        }
        Errno::EBUSY => "its IOMMU group is not viable: bind every device of the group to vfio-pci".into(),
        Errno::EOPNOTSUPP => "the kernel has no VFIO type1v2 IOMMU (vfio_iommu_type1)".into(),
        _ if !Path::new("/dev/vfio/vfio").exists() => format!("/dev/vfio/vfio is missing: load vfio ({os})"),
        _ if driver.as_deref() != Some("vfio-pci") => match driver {
            Some(d) => format!("bound to {d}, not vfio-pci ({os})"),
            None => format!("not bound to vfio-pci ({os})"),
        },
        _ => format!("{os}"),
    }
}

/// Opens the device at `addr` and creates the C device with it as DMA ops.
pub(crate) fn open(func: &str, addr: Addr, sys: &Arc<System>, cfg: DeviceConfig) -> Result<device, Errno> {
    let vfio = VfioDevice::open(addr).inspect_err(|&e| eprintln!("dma: {func}: {addr}: {}", hint(addr, e)))?;
    let vfio = Arc::new(vfio);
    let dev = Device::new(sys, cfg.ops(Arc::clone(&vfio) as Arc<dyn DmaOps>)).inspect_err(|e| {
        eprintln!("dma: {func}: {addr}: {e} (a mask below the first valid IOVA, or a bad window?)");
    })?;
    Ok(device::new(dev, Some(Vfio { dev: vfio, bars: Mutex::new(Vec::new()) })))
}

impl Vfio {
    fn bars(&self) -> MutexGuard<'_, Vec<Bar>> {
        self.bars.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device's PCI address, for messages.
    pub(crate) fn address(&self) -> String {
        self.dev.address().to_string()
    }

    /// Maps BAR `bar` once more; returns its address and length.
    pub(crate) fn map_bar(&self, bar: u32) -> Result<(*mut u8, usize), Errno> {
        let b = self.dev.map_bar(bar)?;
        let r = (b.as_ptr(), b.len());
        self.bars().push(b);
        Ok(r)
    }

    /// Unmaps the BAR mapping at `addr`; false when no mapping of ours starts there.
    pub(crate) fn unmap_bar(&self, addr: *mut u8) -> bool {
        let mut bars = self.bars();
        let Some(i) = bars.iter().position(|b| b.as_ptr() == addr) else { return false };
        drop(bars.swap_remove(i));
        true
    }

    /// Reads config space at `off`.
    pub(crate) fn config_read(&self, off: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.dev.config_read(off, buf)
    }

    /// Writes config space at `off`.
    pub(crate) fn config_write(&self, off: u64, buf: &[u8]) -> Result<(), Errno> {
        self.dev.config_write(off, buf)
    }
}
