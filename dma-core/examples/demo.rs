//! The story of this library in one run, on the simulated platform (no privileges).
//!
//! `cargo run -p dma-core --example demo`

use std::sync::Arc;

use dma_core::api::NonCoherentBuffer;
use dma_core::sim::BusMaster;
use dma_core::{Attrs, Coherence, Device, DeviceConfig, Direction, DmaMask, Gfp, PAGE_SIZE, System};

fn text(bytes: &[u8]) -> String {
    if bytes.iter().all(|&b| b == 0) {
        "(all zeros: old data)".to_owned()
    } else {
        format!("{:?}", String::from_utf8_lossy(bytes).trim_end_matches('\0'))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sys = System::builder().build()?;
    println!("A simulated machine: RAM at {:x?}", sys.ram_ranges().iter().map(|(b, s)| (b.0, *s)).collect::<Vec<_>>());
    println!("Each CPU keeps copies of memory in its cache. Some devices (most Arm and RISC-V");
    println!("chips) read and write memory directly, past that cache: they are not coherent.");
    println!("Then the CPU and the device must hand buffers over explicitly, or each sees old data.\n");

    let cam = Device::new(&sys, DeviceConfig::new("camera").coherence(Coherence::NonCoherent).mask(DmaMask::bits(32)))?;
    let bus = BusMaster::new(&cam);

    println!("1. The CPU writes a command into a cached DMA buffer (dma_alloc_noncoherent).");
    let (cpu, dma) = cam.alloc_noncoherent(PAGE_SIZE, Direction::Bidirectional, Gfp::GFP_KERNEL)?;
    let msg = b"start capture";
    // SAFETY: the CPU owns the fresh buffer.
    unsafe { cpu.as_ptr().copy_from_nonoverlapping(msg.as_ptr(), msg.len()) };
    let mut seen = [0u8; 13];
    bus.read(dma, &mut seen)?;
    println!("   The camera reads it at bus address {dma} WITHOUT a sync: {}", text(&seen));
    println!("   The command is still in the CPU cache. On x86 this bug never shows; on Arm it does.");
    // SAFETY: hand the buffer to the device; the CPU keeps no reference into it.
    unsafe { cam.sync_single_for_device(dma, PAGE_SIZE, Direction::Bidirectional) };
    bus.read(dma, &mut seen)?;
    println!("   After dma_sync_single_for_device (cache written back): {}\n", text(&seen));

    println!("2. The camera writes a frame into the buffer.");
    bus.write(dma, b"frame #1 pixels")?;
    // SAFETY: reading the CPU's view without taking the buffer back: the bug shown here.
    let stale = unsafe { std::slice::from_raw_parts(cpu.as_ptr(), 15).to_vec() };
    println!("   The CPU reads it WITHOUT a sync: {} (its cache still holds the command)", text(&stale));
    // SAFETY: take the buffer back; then the CPU owns it again.
    unsafe { cam.sync_single_for_cpu(dma, PAGE_SIZE, Direction::Bidirectional) };
    // SAFETY: the CPU owns the buffer now.
    let fresh = unsafe { std::slice::from_raw_parts(cpu.as_ptr(), 15).to_vec() };
    println!("   After dma_sync_single_for_cpu (stale cache dropped): {}\n", text(&fresh));
    // SAFETY: the allocation is no longer used.
    unsafe { cam.free_noncoherent(PAGE_SIZE, cpu.as_ptr(), dma, Direction::Bidirectional) };

    println!("3. In Rust the type says who owns the buffer, so forgetting a sync does not compile.");
    let mut buf = NonCoherentBuffer::<u8>::new(&cam, PAGE_SIZE, Direction::Bidirectional, Gfp::GFP_KERNEL)?;
    buf[..5].copy_from_slice(b"hello");
    let owned = buf.sync_for_device(); // `buf` is gone: the CPU cannot touch the memory now
    bus.read(owned.dma_handle(), &mut seen[..5])?;
    println!("   Device reads {}", text(&seen[..5]));
    bus.write(owned.dma_handle(), b"HELLO")?;
    let buf = owned.sync_for_cpu();
    println!("   CPU reads {} after taking it back\n", text(&buf[..5]));

    println!("4. An old 32-bit device and a buffer above 4 GiB: the device cannot address it.");
    let old: Arc<Device> = Device::new(&sys, DeviceConfig::new("usb2").mask(DmaMask::bits(32)))?;
    let page = sys.alloc_pages(Gfp::GFP_KERNEL, 0)?;
    let p = sys.page_address(page);
    // SAFETY: the page is ours; it stays allocated until after the unmap.
    unsafe { p.copy_from_nonoverlapping(b"far away".as_ptr(), 8) };
    // SAFETY: as above; the CPU does not touch the page while it is mapped.
    let bounced = unsafe { old.map_page(page, 0, 8, Direction::ToDevice, Attrs::empty())? };
    let mut got = [0u8; 8];
    BusMaster::new(&old).read(bounced, &mut got)?;
    println!(
        "   Buffer at physical {}, mapped at bus address {} (a swiotlb bounce copy below 4 GiB)",
        page.phys(),
        bounced
    );
    println!("   The device reads {}", text(&got));
    // SAFETY: the mapping is live.
    unsafe { old.unmap_single(bounced, 8, Direction::ToDevice, Attrs::empty()) };
    sys.free_pages(page, 0)?;
    let st = sys.stats().swiotlb.expect("default options have a bounce pool");
    println!(
        "   swiotlb: {} bounce mappings, {} bytes copied, {} of {} slots in use\n",
        st.mappings, st.bytes_bounced, st.used_slots, st.total_slots
    );

    println!(
        "Cache line: {} bytes simulated; DMA buffers are kept {}-byte aligned so they never share one.",
        sys.cache_line_size(),
        sys.cache_alignment()
    );
    println!("Real cache maintenance on this CPU: {}", dma_arch::capabilities().path);
    Ok(())
}
