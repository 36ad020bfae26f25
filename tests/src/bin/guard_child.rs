//! Touches a buffer the device owns under `dma_debug=guard`, which must kill the process
//! with guard mode's message. Run by `tests/debug.rs`; not useful on its own.

use dma_core::{Coherence, Device, DeviceConfig, Direction, DmaMask, Gfp, Options, PAGE_SIZE, System};

fn main() {
    let sys = System::builder().options(Options::parse("dma_debug=guard").expect("options")).build().expect("system");
    let dev = Device::new(&sys, DeviceConfig::new("guarded").coherence(Coherence::NonCoherent).mask(DmaMask::bits(64)))
        .expect("device");
    let (cpu, dma) = dev.alloc_noncoherent(2 * PAGE_SIZE, Direction::FromDevice, Gfp::GFP_KERNEL).expect("buffer");
    // SAFETY: the touch after handing the buffer to the device is the bug guard mode must
    // catch; the process dies of it.
    unsafe {
        dev.sync_single_for_device(dma, 2 * PAGE_SIZE, Direction::FromDevice);
        let v = std::ptr::read_volatile(cpu.as_ptr().add(100));
        println!("survived reading {v}");
    }
}
