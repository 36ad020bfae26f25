//! VFIO devices from C: a real PCI device bound to `vfio-pci`, driven from userspace the
//! way a kernel driver drives it (`Documentation/driver-api/vfio.rst`).
//!
//! `dma_device_create_vfio` opens the device's IOMMU group in a type1 container of its own
//! (dma-iommu's VFIO backend) and returns a `struct device *` whose DMA ops are that
//! container: every allocation and mapping gets an IOVA from this project's allocator,
//! within the device's masks and the IOMMU's valid ranges, and `VFIO_IOMMU_MAP_DMA` points
//! it at the memory. The rest of what a PCI driver needs has the kernel's shape:
//! `dma_vfio_map_bar` / `dma_vfio_unmap_bar` are `pci_iomap` / `pci_iounmap`,
//! `dma_vfio_config_read` / `_write` are `pci_{read,write}_config_*` over a buffer, and
//! `dma_vfio_set_master` / `dma_vfio_clear_master` are `pci_set_master` /
//! `pci_clear_master` (vfio-pci leaves bus mastering off: without it the device's DMA
//! silently reaches nothing).
//!
//! The backend exists on 64-bit Linux only (vfio-bindings' layouts are 64-bit). The exports
//! exist everywhere, so the header is the same on every target: elsewhere every PCI
//! address is refused with a message (`imp` is picked per target, after rustix).

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};

use dma_core::Errno;

use crate::boundary::{neg, nothing, null, refuse};
use crate::dev::{device, device_config, to_dev};
use crate::system::system;
use crate::types::dma_device_config;

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod linux;
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod unsupported;

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
use linux as imp;
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
use unsupported as imp;

pub(crate) use imp::Vfio;

/// PCI command register and its memory-decoding and bus-master bits (`<linux/pci_regs.h>`).
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 0x2;
const PCI_COMMAND_MASTER: u16 = 0x4;

/// The device and its VFIO side, or `EINVAL` with a message for NULL or a device that did
/// not come from `dma_device_create_vfio`.
///
/// # Safety
///
/// `p` is NULL or a live device.
unsafe fn to_vfio<'a>(func: &str, p: *const device) -> Result<(&'a device, &'a Vfio), Errno> {
    // SAFETY: forwarded from the caller.
    let d = unsafe { to_dev(func, p) }?;
    match &d.vfio {
        Some(v) => Ok((d, v)),
        None => Err(refuse(func, format_args!("{} is not a VFIO device (dma_device_create_vfio)", d.dev.name()))),
    }
}

/// Prints a failure of the device (`dma: FUNC: ADDR: WHAT: ERROR`) and passes the error on.
fn failed(func: &str, v: &Vfio, what: std::fmt::Arguments<'_>, e: Errno) -> Errno {
    eprintln!("dma: {func}: {}: {what}: {}", v.address(), std::io::Error::from_raw_os_error(e.raw()));
    e
}

/// The body of `dma_device_create_vfio`.
///
/// # Safety
///
/// As `dma_device_create_vfio`.
unsafe fn create(pci_addr: *const c_char, config: *const dma_device_config) -> Result<*mut device, Errno> {
    const F: &str = "dma_device_create_vfio";
    if pci_addr.is_null() {
        return Err(refuse(F, format_args!("NULL PCI address")));
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let text = unsafe { CStr::from_ptr(pci_addr) };
    let text = text.to_str().map_err(|_| refuse(F, format_args!("{text:?} is not a PCI address")))?;
    // SAFETY: the caller passes NULL or a valid config.
    let c = unsafe { config.as_ref() }.ok_or_else(|| refuse(F, format_args!("NULL config")))?;
    let addr = imp::parse(F, text)?;
    if !c.iommu.is_null() {
        return Err(refuse(
            F,
            format_args!("{addr}: iommu must be NULL: the device's own VFIO container is its IOMMU"),
        ));
    }
    if c.cma_size != 0 {
        return Err(refuse(F, format_args!("{addr}: cma_size must be 0: a VFIO device allocates through its IOMMU")));
    }
    // SAFETY: the caller passes a valid name (or NULL) and range map.
    let cfg = unsafe { device_config(F, c, Some(&addr.to_string())) }?;
    Ok(Box::into_raw(Box::new(imp::open(F, addr, system()?, cfg)?)))
}

/// Creates a device for the PCI device at `pci_addr` (`"0000:00:03.0"`, or `"00:03.0"` in
/// segment 0), which must be bound to `vfio-pci` behind an IOMMU: its IOMMU group is
/// opened in a VFIO type1 container of its own, which becomes the device's DMA ops
/// (allocations and mappings get IOVAs below its masks, wherever the memory lies; memory
/// comes from the system, built from `$DMA_OPTS` if nothing built it yet: use
/// `platform=host` for memory a real device can reach).
///
/// `config` is read as by `dma_device_create`: masks (what the device can address: the
/// IOVAs stay below them), `coherent` (set it for a device that snoops the CPU caches,
/// as every PCI device on x86 does: userspace cannot make memory uncached, so coherent
/// allocations for a non-coherent device fail), `bus_dma_limit`, segment limits. `name`
/// may be NULL: the device is then named by its PCI address. `iommu` must be NULL and
/// `cma_size` 0. Bus mastering stays as it was: see `dma_vfio_set_master`. Destroy the
/// device with `dma_device_destroy`, which unmaps its BARs and closes the container
/// (the kernel then drops every IOMMU mapping still live).
///
/// Returns NULL (the reason is printed) for a NULL or malformed address, a NULL config,
/// a config `dma_device_create` refuses, a non-NULL `iommu` or a non-zero `cma_size`; for
/// a device that does not exist, has no IOMMU group (no IOMMU), is not bound to vfio-pci
/// or whose group is not viable; for a mask below the IOMMU's first valid IOVA; and on
/// any target but 64-bit Linux.
///
/// # Safety
///
/// `pci_addr` is NULL or a NUL-terminated string; `config` is NULL or points to a valid
/// `struct dma_device_config` whose `name` is NULL or a NUL-terminated string and whose
/// `range_map` points to `nr_ranges` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_device_create_vfio(
    pci_addr: *const c_char,
    config: *const dma_device_config,
) -> *mut device {
    // SAFETY: forwarded from the caller.
    boundary!(null, unsafe { create(pci_addr, config) })
}

/// `pci_iomap`: maps BAR `bar` (0 to 5) of a VFIO device into the process and returns its
/// address (the kernel's `void __iomem *`: access registers only with volatile loads and
/// stores of their width); `*size` gets its length when `size` is not NULL. Each call is a
/// new mapping; `dma_vfio_unmap_bar` or the device's destruction ends it.
///
/// Returns NULL (the reason is printed; `*size` untouched) for a NULL device, a device not
/// from `dma_device_create_vfio`, a BAR above 5, one the device does not have or that
/// cannot be mapped (an I/O-port BAR), or when `mmap` fails.
///
/// # Safety
///
/// `dev` is NULL or a live device; `size` is NULL or writable. The mapping must not be
/// used after `dma_vfio_unmap_bar` or `dma_device_destroy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_vfio_map_bar(dev: *mut device, bar: c_uint, size: *mut usize) -> *mut c_void {
    boundary!(null, {
        const F: &str = "dma_vfio_map_bar";
        // SAFETY: forwarded from the caller.
        let (_, v) = unsafe { to_vfio(F, dev) }?;
        let (p, len) = v.map_bar(bar).map_err(|e| match e {
            Errno::EINVAL => refuse(F, format_args!("{}: BAR {bar}: no such memory BAR, or not mappable", v.address())),
            e => failed(F, v, format_args!("BAR {bar}"), e),
        })?;
        if !size.is_null() {
            // SAFETY: non-null and writable (the caller's contract).
            unsafe { size.write(len) };
        }
        Ok(p.cast())
    })
}

/// `pci_iounmap`: ends a mapping from `dma_vfio_map_bar`. NULL `addr` is a no-op; an
/// address that is not the start of a live mapping of this device, or a NULL device, is
/// refused with a message.
///
/// # Safety
///
/// `dev` is NULL or a live device; nothing uses the mapping afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_vfio_unmap_bar(dev: *mut device, addr: *mut c_void) {
    boundary!(nothing, {
        const F: &str = "dma_vfio_unmap_bar";
        // SAFETY: forwarded from the caller.
        let (_, v) = unsafe { to_vfio(F, dev) }?;
        if !addr.is_null() && !v.unmap_bar(addr.cast()) {
            return Err(refuse(F, format_args!("{}: {addr:p} is not a BAR mapping of this device", v.address())));
        }
        Ok(())
    })
}

/// `pci_read_config_*` over a buffer: reads `len` bytes of the device's configuration
/// space at `offset` into `buf` (multi-byte registers are little-endian, as on the bus).
///
/// Returns 0, or (`buf` untouched, the reason printed) `-EINVAL` for a NULL argument, a
/// device not from `dma_device_create_vfio` or a range past the end of config space; the
/// OS error (`-EIO`, ...) when the read fails.
///
/// # Safety
///
/// `dev` is NULL or a live device; `buf` is NULL or `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_vfio_config_read(dev: *mut device, offset: c_uint, buf: *mut c_void, len: usize) -> c_int {
    boundary!(neg, {
        const F: &str = "dma_vfio_config_read";
        // SAFETY: forwarded from the caller.
        let (_, v) = unsafe { to_vfio(F, dev) }?;
        if buf.is_null() {
            return Err(refuse(F, format_args!("NULL buffer")));
        }
        // Read aside first: a failed read leaves the caller's buffer as it was.
        let mut tmp = vec![0u8; len];
        v.config_read(u64::from(offset), &mut tmp).map_err(|e| config_error(F, v, offset, len, e))?;
        // SAFETY: `buf` holds `len` writable bytes (the caller's contract) and is not `tmp`.
        unsafe { std::ptr::copy_nonoverlapping(tmp.as_ptr(), buf.cast::<u8>(), len) };
        Ok(0)
    })
}

/// `pci_write_config_*` over a buffer: writes `len` bytes from `buf` to the device's
/// configuration space at `offset`. vfio-pci filters what userspace may change (BARs,
/// for one, are virtualised).
///
/// Returns 0, or `-EINVAL` for a NULL argument, a device not from
/// `dma_device_create_vfio` or a range past the end of config space; the OS error when
/// the write fails (the reason is printed).
///
/// # Safety
///
/// `dev` is NULL or a live device; `buf` is NULL or `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_vfio_config_write(
    dev: *mut device,
    offset: c_uint,
    buf: *const c_void,
    len: usize,
) -> c_int {
    boundary!(neg, {
        const F: &str = "dma_vfio_config_write";
        // SAFETY: forwarded from the caller.
        let (_, v) = unsafe { to_vfio(F, dev) }?;
        if buf.is_null() {
            return Err(refuse(F, format_args!("NULL buffer")));
        }
        // SAFETY: `buf` holds `len` readable bytes (the caller's contract); nothing writes
        // them while the slice lives.
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        v.config_write(u64::from(offset), data).map_err(|e| config_error(F, v, offset, len, e))?;
        Ok(0)
    })
}

fn config_error(func: &str, v: &Vfio, offset: c_uint, len: usize, e: Errno) -> Errno {
    match e {
        Errno::EINVAL => {
            refuse(func, format_args!("{}: {len} bytes at {offset:#x} are past config space", v.address()))
        }
        e => failed(func, v, format_args!("{len} bytes at {offset:#x}"), e),
    }
}

/// Sets and clears bits of the command register; returns 0 or `-errno`.
///
/// # Safety
///
/// `dev` is NULL or a live device.
unsafe fn update_command(func: &str, dev: *const device, set: u16, clear: u16) -> Result<c_int, Errno> {
    // SAFETY: forwarded from the caller.
    let (_, v) = unsafe { to_vfio(func, dev) }?;
    let mut cmd = [0u8; 2];
    v.config_read(PCI_COMMAND, &mut cmd).map_err(|e| failed(func, v, format_args!("command register"), e))?;
    let cmd = (u16::from_le_bytes(cmd) | set) & !clear;
    v.config_write(PCI_COMMAND, &cmd.to_le_bytes())
        .map_err(|e| failed(func, v, format_args!("command register"), e))?;
    Ok(0)
}

/// `pci_set_master`: sets bus mastering (and memory decoding, which BAR access needs) in
/// the command register. vfio-pci leaves bus mastering off, and a device without it
/// "completes" its DMA having reached nothing, with no error anywhere.
///
/// Returns 0, `-EINVAL` for a NULL device or one not from `dma_device_create_vfio`, or
/// the OS error of the config access (the reason is printed).
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_vfio_set_master(dev: *mut device) -> c_int {
    // SAFETY: forwarded from the caller.
    boundary!(neg, unsafe { update_command("dma_vfio_set_master", dev, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0) })
}

/// `pci_clear_master`: clears bus mastering, so the device can start no more DMA. Returns
/// as `dma_vfio_set_master`.
///
/// # Safety
///
/// `dev` is NULL or a live device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dma_vfio_clear_master(dev: *mut device) -> c_int {
    // SAFETY: forwarded from the caller.
    boundary!(neg, unsafe { update_command("dma_vfio_clear_master", dev, 0, PCI_COMMAND_MASTER) })
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use super::*;
    use crate::dev::{dma_device_create, dma_device_destroy};

    const VFIO_HERE: bool = cfg!(all(target_os = "linux", target_pointer_width = "64"));

    fn config() -> dma_device_config {
        dma_device_config { dma_mask: (1 << 28) - 1, coherent: true, ..Default::default() }
    }

    fn create_err(addr: &[u8], cfg: Option<&dma_device_config>) -> Errno {
        let addr = CString::new(addr).unwrap();
        let cfg = cfg.map_or(std::ptr::null(), |c| c as *const _);
        // SAFETY: a NUL-terminated address and NULL or a valid config.
        let r = unsafe { create(addr.as_ptr(), cfg) };
        // SAFETY: the same arguments.
        assert!(unsafe { dma_device_create_vfio(addr.as_ptr(), cfg) }.is_null());
        r.unwrap_err()
    }

    #[test]
    fn null_and_malformed_addresses_are_refused() {
        let cfg = config();
        // SAFETY: NULL address, valid config.
        assert_eq!(unsafe { create(std::ptr::null(), &cfg) }.unwrap_err(), Errno::EINVAL);
        // SAFETY: NULL arguments.
        assert!(unsafe { dma_device_create_vfio(std::ptr::null(), std::ptr::null()) }.is_null());
        assert_eq!(create_err(b"0000:00:03.0", None), Errno::EINVAL, "NULL config");
        // Elsewhere any address gets as far as opening, which fails.
        let malformed = if VFIO_HERE { Errno::EINVAL } else { Errno::EOPNOTSUPP };
        for bad in [&b""[..], b"edu", b"00:03", b"00:20.0", b"00:03.8", b"0000:00:03.0 ", b"12345:00:03.0"] {
            assert_eq!(create_err(bad, Some(&cfg)), malformed, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(create_err(b"00:03.\xff", Some(&cfg)), Errno::EINVAL, "not UTF-8");
    }

    #[test]
    fn configs_a_vfio_device_cannot_take_are_refused() {
        let refused = Errno::EINVAL;
        let cma = dma_device_config { cma_size: 1 << 21, ..config() };
        assert_eq!(create_err(b"0000:00:03.0", Some(&cma)), refused);
        // SAFETY: NULL is the default domain.
        let dom = unsafe { crate::iommu::dma_iommu_domain_create(std::ptr::null()) };
        assert!(!dom.is_null());
        let iommu = dma_device_config { iommu: dom, ..config() };
        assert_eq!(create_err(b"0000:00:03.0", Some(&iommu)), refused);
        // SAFETY: the domain from above, unused afterwards.
        unsafe { crate::iommu::dma_iommu_domain_destroy(dom) };
    }

    #[test]
    fn a_device_that_does_not_exist_is_refused_cleanly() {
        // No such segment on any machine; natively there is no /dev/vfio either.
        let want = if VFIO_HERE { Errno::ENODEV } else { Errno::EOPNOTSUPP };
        assert_eq!(create_err(b"ffff:ff:1f.7", Some(&config())), want);
        let named = CString::new("edu").unwrap();
        let cfg = dma_device_config { name: named.as_ptr(), ..config() };
        assert_eq!(create_err(b"fffe:00:00.0", Some(&cfg)), want);
    }

    #[test]
    fn device_calls_refuse_null_and_non_vfio_devices() {
        let name = CString::new("not-vfio").unwrap();
        let cfg = dma_device_config { name: name.as_ptr(), ..config() };
        // SAFETY: a valid config.
        let plain = unsafe { dma_device_create(&cfg) };
        assert!(!plain.is_null());
        for dev in [std::ptr::null_mut(), plain] {
            let mut size = 77usize;
            let mut buf = [0xaau8; 4];
            // SAFETY: NULL or a live device; writable out-parameters and buffers.
            unsafe {
                assert!(dma_vfio_map_bar(dev, 0, &mut size).is_null());
                assert_eq!(size, 77, "written on failure");
                assert_eq!(dma_vfio_config_read(dev, 0, buf.as_mut_ptr().cast(), 4), -22);
                assert_eq!(buf, [0xaa; 4], "written on failure");
                assert_eq!(dma_vfio_config_write(dev, 4, buf.as_ptr().cast(), 2), -22);
                assert_eq!(dma_vfio_set_master(dev), -22);
                assert_eq!(dma_vfio_clear_master(dev), -22);
                dma_vfio_unmap_bar(dev, buf.as_mut_ptr().cast());
                dma_vfio_unmap_bar(dev, std::ptr::null_mut());
            }
        }
        // SAFETY: the device from above, unused afterwards.
        unsafe { dma_device_destroy(plain) };
    }
}
