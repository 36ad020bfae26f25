//! dmapool: the kernel's size, align and boundary rules, O(1) reuse, and refused bad frees.

mod common;

use common::{device, logged, system};
use dma_core::sim::BusMaster;
use dma_core::{Coherence, DmaPool, Errno, Gfp};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Every block is aligned, inside one boundary segment, disjoint from every other live
    /// block, and its bus address is its chunk's plus the same offset; freeing everything
    /// leaves nothing in use.
    #[test]
    fn blocks_respect_align_and_boundary(
        size in 1usize..3000,
        align_log in 0u32..8,
        boundary_log in prop::option::of(0u32..14),
        ops in prop::collection::vec(any::<bool>(), 1..200),
    ) {
        let (sys, _) = system("");
        let dev = device(&sys, "pool", Coherence::Coherent, 64);
        let align = 1usize << align_log;
        let rounded = size.max(16).next_multiple_of(align);
        let boundary = boundary_log.map_or(0, |b| (1usize << b).max(rounded).next_power_of_two());
        let pool = DmaPool::create("p", &dev, size, align, boundary).unwrap();
        let seg = if boundary == 0 { rounded.max(4096).next_multiple_of(4096) } else { boundary.min(rounded.max(4096).next_multiple_of(4096)) };
        let mut live: Vec<(usize, u64)> = Vec::new();
        for alloc in ops {
            if alloc || live.is_empty() {
                let (cpu, dma) = pool.alloc(Gfp::GFP_KERNEL).unwrap();
                let (cpu, dma) = (cpu.as_ptr() as usize, dma.0);
                prop_assert_eq!(cpu % align, 0);
                prop_assert_eq!(dma % align as u64, 0);
                prop_assert_eq!(dma / seg as u64, (dma + rounded as u64 - 1) / seg as u64, "crosses the boundary");
                for &(c, _) in &live {
                    prop_assert!(cpu + rounded <= c || c + rounded <= cpu, "overlap");
                }
                prop_assert_eq!(sys.virt_to_phys(cpu as *const u8).map(|p| p.0), Some(dma));
                live.push((cpu, dma));
            } else {
                let (cpu, dma) = live.swap_remove(live.len() / 2);
                // SAFETY: a live block of this pool, freed once.
                unsafe { pool.free(cpu as *mut u8, dma_core::DmaAddr(dma)).unwrap() };
            }
            pool.check_invariants();
        }
        for (cpu, dma) in live {
            // SAFETY: as above.
            unsafe { pool.free(cpu as *mut u8, dma_core::DmaAddr(dma)).unwrap() };
        }
        prop_assert_eq!(pool.in_use(), 0);
        sys.check_invariants();
    }
}

#[test]
fn zalloc_zeroes_and_the_device_sees_the_block() {
    let (sys, _) = system("");
    let dev = device(&sys, "nvme", Coherence::NonCoherent, 64);
    let bus = BusMaster::new(&dev);
    let pool = DmaPool::create("prp", &dev, 64, 64, 4096).unwrap();
    let (cpu, dma) = pool.alloc(Gfp::GFP_KERNEL).unwrap();
    // SAFETY: a live 64-byte block.
    unsafe { cpu.as_ptr().write_bytes(0xee, 64) };
    let mut seen = [0u8; 64];
    bus.read(dma, &mut seen).unwrap();
    assert_eq!(seen, [0xee; 64], "pool memory is coherent: no sync needed");
    // SAFETY: freed once.
    unsafe { pool.free(cpu.as_ptr(), dma).unwrap() };
    let (cpu, dma) = pool.zalloc(Gfp::GFP_KERNEL).unwrap();
    // SAFETY: a live block.
    assert!(unsafe { std::slice::from_raw_parts(cpu.as_ptr(), 64) }.iter().all(|&b| b == 0));
    // SAFETY: freed once.
    unsafe { pool.free(cpu.as_ptr(), dma).unwrap() };
}

#[test]
fn bad_frees_are_refused_and_change_nothing() {
    let (sys, log) = system("");
    let dev = device(&sys, "d", Coherence::Coherent, 64);
    let pool = DmaPool::create("p", &dev, 100, 8, 0).unwrap();
    assert_eq!(pool.block_size(), 104);
    let (cpu, dma) = pool.alloc(Gfp::GFP_KERNEL).unwrap();
    // SAFETY: each refused free touches nothing.
    unsafe {
        assert_eq!(pool.free(cpu.as_ptr().add(8), dma), Err(Errno::EINVAL), "not a block start");
        assert!(logged(&log, "bad vaddr"));
        assert_eq!(pool.free(cpu.as_ptr(), dma_core::DmaAddr(dma.0 + 8)), Err(Errno::EINVAL));
        assert!(logged(&log, "bad dma"));
        let mut heap = [0u8; 8];
        assert_eq!(pool.free(heap.as_mut_ptr(), dma), Err(Errno::EINVAL), "not the pool's memory");
        pool.free(cpu.as_ptr(), dma).unwrap();
        assert_eq!(pool.free(cpu.as_ptr(), dma), Err(Errno::EINVAL));
        assert!(logged(&log, "already free"));
    }
    pool.check_invariants();
    assert!(DmaPool::create("bad", &dev, 64, 24, 0).is_err());
    assert!(DmaPool::create("bad", &dev, 0, 8, 0).is_err());
    assert!(DmaPool::create("bad", &dev, 64, 8, 32).is_err());
}

#[test]
fn destroy_reports_busy_blocks_and_frees_idle_chunks() {
    let (sys, log) = system("");
    let dev = device(&sys, "d", Coherence::Coherent, 64);
    let free0 = sys.stats().zones.iter().map(|z| z.free_pages).sum::<u64>();
    let pool = DmaPool::create("leaky", &dev, 2048, 8, 0).unwrap();
    let held: Vec<_> = (0..5).map(|_| pool.alloc(Gfp::GFP_KERNEL).unwrap()).collect();
    assert_eq!(pool.chunks(), 3);
    for (cpu, dma) in &held[..4] {
        // SAFETY: live blocks, freed once.
        unsafe { pool.free(cpu.as_ptr(), *dma).unwrap() };
    }
    pool.destroy();
    assert!(logged(&log, "dma_pool_destroy leaky"));
    let free1 = sys.stats().zones.iter().map(|z| z.free_pages).sum::<u64>();
    assert_eq!(free0 - free1, 1, "only the busy chunk stays allocated");
}

#[test]
fn threads_share_a_pool_without_sharing_a_block() {
    // Each thread stamps every block it holds with its own byte and checks the stamp
    // before freeing: a block handed to two threads at once would carry the other's.
    let (sys, _) = system("");
    let dev = device(&sys, "d", Coherence::Coherent, 64);
    let pool = DmaPool::create("shared", &dev, 96, 32, 4096).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let pool = &pool;
            s.spawn(move || {
                let mut held = Vec::new();
                for round in 0..2000usize {
                    if round % 3 != 2 || held.is_empty() {
                        let (cpu, dma) = pool.alloc(Gfp::GFP_KERNEL).unwrap();
                        // SAFETY: a live 96-byte block this thread was just given.
                        unsafe { cpu.as_ptr().write_bytes(t, 96) };
                        held.push((cpu, dma));
                    } else {
                        let (cpu, dma) = held.swap_remove(round % held.len());
                        // SAFETY: a live block of this thread's, read then freed once.
                        let block = unsafe { std::slice::from_raw_parts(cpu.as_ptr(), 96) };
                        assert!(block.iter().all(|&b| b == t), "another thread wrote this thread's block");
                        // SAFETY: as above.
                        unsafe { pool.free(cpu.as_ptr(), dma).unwrap() };
                    }
                }
                for (cpu, dma) in held {
                    // SAFETY: live blocks of this thread's, freed once.
                    unsafe { pool.free(cpu.as_ptr(), dma).unwrap() };
                }
            });
        }
    });
    assert_eq!(pool.in_use(), 0);
    pool.check_invariants();
}
