//! swiotlb: bounce buffering for memory a device cannot reach (`kernel/dma/swiotlb.c`).
//!
//! A pool of 2 KiB slots below 4 GiB, in sets of 128 (`IO_TLB_SEGSIZE`): one mapping
//! never crosses a set, so the largest bounce buffer is 256 KiB. The pool is split into
//! areas, each with its own lock; a thread starts in its own area and tries the others
//! in turn, so two threads do not contend. Each slot's `list` counts the free slots from
//! it to the end of its set (0 = in use), the kernel's encoding, so a search reads one
//! number per candidate.
//!
//! Rules kept from the kernel: the bounce buffer preserves the bits of the original
//! address under the device's `min_align_mask`; mappings of a page or more are page
//! aligned when nothing else is asked; the device's segment boundary is not crossed;
//! map copies the original into the bounce buffer for every direction (so no stale data
//! leaks to the device, and a partly written buffer copies back intact); unmap and
//! sync-for-CPU copy back when the device may have written; a full pool is a clean
//! `ENOMEM` with "swiotlb buffer is full", and nothing is lost.
//!
//! # Safety
//!
//! Copies go between the original buffer (a CPU address the caller vouched for when it
//! mapped it, valid until unmap) and the pool's slots (inside the platform's cached view,
//! owned by this pool for its lifetime). The two never overlap: the pool belongs to no
//! one else.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::addr::{PAGE_SIZE, PhysAddr};
use crate::attrs::Attrs;
use crate::direction::Direction;
use crate::errno::{Errno, Result};

/// log2 of the slot size.
pub const IO_TLB_SHIFT: u32 = 11;
/// Slot size: 2 KiB.
pub const IO_TLB_SIZE: usize = 1 << IO_TLB_SHIFT;
/// Slots per set; a mapping never crosses a set.
pub const IO_TLB_SEGSIZE: usize = 128;
/// The largest bounce buffer: one whole set, 256 KiB.
pub const MAX_MAPPING_SIZE: usize = IO_TLB_SIZE * IO_TLB_SEGSIZE;

/// Per-slot bookkeeping.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Free slots from here to the end of the set; 0 when in use.
    list: u16,
    /// On the first slot of a mapping: its slot count; else 0.
    nslots: u16,
    /// The original CPU address that corresponds to byte 0 of this slot.
    orig: usize,
    /// The original buffer `[start, end)`, to refuse syncs outside it.
    orig_start: usize,
    orig_end: usize,
}

#[derive(Debug)]
struct Area {
    /// Where the next search starts (relative to the area).
    index: usize,
    used: usize,
    slots: Vec<Slot>,
}

/// Keeps each area's lock on its own cache line pair (128 B covers arm64's prefetch pairs).
#[repr(align(128))]
#[derive(Debug)]
struct Padded<T>(T);

/// What a bounce mapping refers to, copied out of the pool under the area lock.
#[derive(Clone, Copy, Debug)]
struct Origin {
    cpu: usize,
    len: usize,
}

/// Statistics of the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwiotlbStats {
    /// Slots in the pool.
    pub total_slots: usize,
    /// Slots in use now.
    pub used_slots: usize,
    /// Bounce mappings made so far.
    pub mappings: u64,
    /// Bytes copied in either direction so far.
    pub bytes_bounced: u64,
    /// Map requests refused because no slots were free.
    pub full: u64,
}

/// A bounce-buffer pool.
///
/// # Invariants
///
/// `[start, start + nslabs * IO_TLB_SIZE)` is RAM taken from the page allocator for this
/// pool alone, mapped at `cpu_base` in the platform's cached view; `nslabs` is
/// `areas.len() * area_nslabs` and `area_nslabs` is a multiple of `IO_TLB_SEGSIZE`.
#[derive(Debug)]
pub struct Swiotlb {
    start: PhysAddr,
    nslabs: usize,
    cpu_base: usize,
    area_nslabs: usize,
    areas: Box<[Padded<Mutex<Area>>]>,
    force: bool,
    used: AtomicUsize,
    mappings: AtomicU64,
    bytes: AtomicU64,
    full: AtomicU64,
}

thread_local! {
    static AREA_HINT: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_AREA: AtomicUsize = AtomicUsize::new(0);

impl Swiotlb {
    /// A pool of `nslabs` slots at `start`, mapped at `cpu_base`, split into `nareas`
    /// areas (rounded down so that each holds at least one set).
    pub(crate) fn new(start: PhysAddr, cpu_base: *mut u8, nslabs: usize, nareas: usize, force: bool) -> Swiotlb {
        debug_assert!(nslabs % IO_TLB_SEGSIZE == 0 && nslabs > 0);
        let sets = nslabs / IO_TLB_SEGSIZE;
        let mut nareas = nareas.clamp(1, sets).next_power_of_two();
        while sets % nareas != 0 || nareas > sets {
            nareas /= 2;
        }
        let area_nslabs = nslabs / nareas;
        let fresh = |_| {
            let slots = (0..area_nslabs)
                .map(|i| Slot { list: (IO_TLB_SEGSIZE - i % IO_TLB_SEGSIZE) as u16, ..Slot::default() })
                .collect();
            Padded(Mutex::new(Area { index: 0, used: 0, slots }))
        };
        // INVARIANT: nareas divides the number of sets, so area_nslabs is a whole number of sets.
        Swiotlb {
            start,
            nslabs,
            cpu_base: cpu_base as usize,
            area_nslabs,
            areas: (0..nareas).map(fresh).collect(),
            force,
            used: AtomicUsize::new(0),
            mappings: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            full: AtomicU64::new(0),
        }
    }

    /// First physical address of the pool.
    pub fn start(&self) -> PhysAddr {
        self.start
    }

    /// Size of the pool in bytes.
    pub fn size(&self) -> u64 {
        (self.nslabs * IO_TLB_SIZE) as u64
    }

    /// Number of areas.
    pub fn nareas(&self) -> usize {
        self.areas.len()
    }

    /// `swiotlb=force`: every streaming mapping bounces.
    #[inline]
    pub fn force_bounce(&self) -> bool {
        self.force
    }

    /// `is_swiotlb_buffer`.
    #[inline]
    pub fn contains(&self, phys: PhysAddr) -> bool {
        phys.0 >= self.start.0 && phys.0 - self.start.0 < self.size()
    }

    /// `swiotlb_max_mapping_size` for a device with this `min_align_mask`.
    pub fn max_mapping_size(min_align_mask: u64) -> usize {
        // In u64 and saturating: the mask may be as wide as the device claims.
        let pad = if min_align_mask == 0 { 0 } else { (min_align_mask | (IO_TLB_SIZE as u64 - 1)).saturating_add(1) };
        MAX_MAPPING_SIZE.saturating_sub(usize::try_from(pad).unwrap_or(usize::MAX))
    }

    /// Statistics.
    pub fn stats(&self) -> SwiotlbStats {
        SwiotlbStats {
            total_slots: self.nslabs,
            used_slots: self.used.load(Relaxed),
            mappings: self.mappings.load(Relaxed),
            bytes_bounced: self.bytes.load(Relaxed),
            full: self.full.load(Relaxed),
        }
    }

    fn cpu(&self, tlb: PhysAddr) -> *mut u8 {
        (self.cpu_base + (tlb.0 - self.start.0) as usize) as *mut u8
    }

    fn home_area(&self) -> usize {
        AREA_HINT.with(|h| {
            if h.get() == usize::MAX {
                h.set(NEXT_AREA.fetch_add(1, Relaxed));
            }
            h.get() % self.areas.len()
        })
    }

    /// Bounces `[orig_cpu, orig_cpu + size)` (`swiotlb_tbl_map_single`). `orig_key` is
    /// the address whose low bits must be preserved (the physical address when there is
    /// one, else the CPU address). Returns the bounce buffer's physical address.
    ///
    /// # Errors
    ///
    /// `EINVAL` when `size` is zero or larger than a set allows; `ENOMEM` when no slots
    /// are free ("swiotlb buffer is full", printed through `warn` unless `NO_WARN`).
    ///
    /// # Safety
    ///
    /// `orig_cpu` must be valid for reads and writes of `size` bytes until the mapping is
    /// unmapped (copies in both directions happen on map, sync and unmap).
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn map(
        &self,
        orig_cpu: usize,
        orig_key: u64,
        size: usize,
        min_align_mask: u64,
        boundary_mask: u64,
        attrs: Attrs,
        warn: &dyn Fn(std::fmt::Arguments<'_>),
    ) -> Result<PhysAddr> {
        let offset = (orig_key & min_align_mask) as usize & (IO_TLB_SIZE - 1);
        let Some(alloc_size) = size.checked_add(offset).filter(|&a| size != 0 && a <= MAX_MAPPING_SIZE) else {
            warn(format_args!(
                "swiotlb: mapping of {size} bytes is larger than a bounce buffer can be ({MAX_MAPPING_SIZE})"
            ));
            return Err(Errno::EINVAL);
        };
        let nslots = alloc_size.div_ceil(IO_TLB_SIZE);
        let iotlb_align = min_align_mask & !(IO_TLB_SIZE as u64 - 1);
        let mut align = (IO_TLB_SIZE - 1) as u64;
        if iotlb_align == 0 && size >= PAGE_SIZE {
            align = (PAGE_SIZE - 1) as u64;
        }
        let stride = (((align.max(iotlb_align) + 1) >> IO_TLB_SHIFT) as usize).max(1);
        let want = Want { nslots, align, iotlb_align, key: orig_key, boundary_mask, stride };
        let home = self.home_area();
        for k in 0..self.areas.len() {
            let a = (home + k) % self.areas.len();
            let mut area = self.areas[a].0.lock().unwrap_or_else(|e| e.into_inner());
            let Some(i) = self.search(a, &area, &want) else { continue };
            let slot0 = orig_cpu.wrapping_sub(offset);
            for (j, s) in area.slots[i..i + nslots].iter_mut().enumerate() {
                *s = Slot {
                    list: 0,
                    nslots: if j == 0 { nslots as u16 } else { 0 },
                    orig: slot0.wrapping_add(j << IO_TLB_SHIFT),
                    orig_start: orig_cpu,
                    orig_end: orig_cpu + size,
                };
            }
            // Slots before the new mapping in the same set now see a shorter free run.
            let (mut j, mut count) = (i, 0u16);
            while j % IO_TLB_SEGSIZE != 0 && area.slots[j - 1].list != 0 {
                j -= 1;
                count += 1;
                area.slots[j].list = count;
            }
            area.index = (i + nslots) % self.area_nslabs;
            area.used += nslots;
            drop(area);
            self.used.fetch_add(nslots, Relaxed);
            self.mappings.fetch_add(1, Relaxed);
            let tlb = PhysAddr(self.start.0 + (((a * self.area_nslabs + i) << IO_TLB_SHIFT) + offset) as u64);
            // Copy for every direction: the device must never see stale pool contents.
            // SAFETY: the caller vouches for the original range; the slots are ours.
            unsafe { self.copy(orig_cpu as *const u8, self.cpu(tlb), size) };
            return Ok(tlb);
        }
        self.full.fetch_add(1, Relaxed);
        if !attrs.contains(Attrs::NO_WARN) {
            warn(format_args!(
                "swiotlb buffer is full (sz: {size} bytes), total {} (slots), used {} (slots)",
                self.nslabs,
                self.used.load(Relaxed)
            ));
        }
        Err(Errno::ENOMEM)
    }

    /// Finds the first slot (relative to the area) of a free run that satisfies `want`.
    fn search(&self, area_no: usize, area: &Area, want: &Want) -> Option<usize> {
        if want.nslots > self.area_nslabs - area.used {
            return None;
        }
        let base = self.start.0 + ((area_no * self.area_nslabs) << IO_TLB_SHIFT) as u64;
        let mut index = area.index;
        let mut checked = 0;
        while checked < self.area_nslabs {
            let tlb = base + (index << IO_TLB_SHIFT) as u64;
            if tlb & want.align != 0 || tlb & want.iotlb_align != want.key & want.iotlb_align {
                index = (index + 1) % self.area_nslabs;
                checked += 1;
                continue;
            }
            let last = tlb + ((want.nslots << IO_TLB_SHIFT) - 1) as u64;
            if (tlb & !want.boundary_mask) == (last & !want.boundary_mask)
                && area.slots[index].list as usize >= want.nslots
            {
                return Some(index);
            }
            index = (index + want.stride) % self.area_nslabs;
            checked += want.stride;
        }
        None
    }

    /// The mapping that `tlb` (anywhere inside it) belongs to: its origin for this exact
    /// address and the bytes left in it. `None` when `tlb` is not inside a live mapping.
    fn origin(&self, tlb: PhysAddr, size: usize) -> Option<Origin> {
        let index = ((tlb.0 - self.start.0) >> IO_TLB_SHIFT) as usize;
        let area = self.areas[index / self.area_nslabs].0.lock().unwrap_or_else(|e| e.into_inner());
        let s = area.slots[index % self.area_nslabs];
        if s.list != 0 {
            return None;
        }
        let cpu = s.orig.wrapping_add(tlb.0 as usize & (IO_TLB_SIZE - 1));
        if cpu < s.orig_start || cpu >= s.orig_end {
            return None;
        }
        Some(Origin { cpu, len: size.min(s.orig_end - cpu) })
    }

    /// Copies device data back to the original for the CPU (`swiotlb_sync_single_for_cpu`).
    pub(crate) fn sync_for_cpu(
        &self,
        tlb: PhysAddr,
        size: usize,
        dir: Direction,
        warn: &dyn Fn(std::fmt::Arguments<'_>),
    ) {
        if !dir.device_writes() {
            return;
        }
        match self.origin(tlb, size) {
            // SAFETY: the origin is the live mapping's original buffer (valid until unmap,
            // by `map`'s contract) and `len` stays inside it.
            Some(o) => unsafe { self.copy(self.cpu(tlb), o.cpu as *mut u8, o.len) },
            None => warn(format_args!("swiotlb: sync of {tlb} which is not a live bounce mapping")),
        }
    }

    /// Copies the original into the bounce buffer for the device
    /// (`swiotlb_sync_single_for_device`). Every direction copies: if the device writes
    /// only part of a FROM_DEVICE buffer, the rest must hold the original's bytes.
    pub(crate) fn sync_for_device(&self, tlb: PhysAddr, size: usize, warn: &dyn Fn(std::fmt::Arguments<'_>)) {
        match self.origin(tlb, size) {
            // SAFETY: as in `sync_for_cpu`.
            Some(o) => unsafe { self.copy(o.cpu as *const u8, self.cpu(tlb), o.len) },
            None => warn(format_args!("swiotlb: sync of {tlb} which is not a live bounce mapping")),
        }
    }

    /// Releases a mapping (`swiotlb_tbl_unmap_single`), copying back first when the device
    /// may have written and `SKIP_CPU_SYNC` is not set.
    ///
    /// # Errors
    ///
    /// `EINVAL` (nothing changed) when `tlb` is not the address a map call returned.
    pub(crate) fn unmap(&self, tlb: PhysAddr, size: usize, dir: Direction, attrs: Attrs) -> Result<()> {
        if !self.contains(tlb) {
            return Err(Errno::EINVAL);
        }
        let index = ((tlb.0 - self.start.0) >> IO_TLB_SHIFT) as usize;
        let (a, i) = (index / self.area_nslabs, index % self.area_nslabs);
        let mut area = self.areas[a].0.lock().unwrap_or_else(|e| e.into_inner());
        let head = area.slots[i];
        if head.list != 0
            || head.nslots == 0
            || head.orig.wrapping_add(tlb.0 as usize & (IO_TLB_SIZE - 1)) != head.orig_start
        {
            return Err(Errno::EINVAL);
        }
        if dir.device_writes() && !attrs.contains(Attrs::SKIP_CPU_SYNC) {
            let len = size.min(head.orig_end - head.orig_start);
            // SAFETY: as in `sync_for_cpu`; the lock keeps the slots ours during the copy.
            unsafe { self.copy(self.cpu(tlb), head.orig_start as *mut u8, len) };
        }
        let n = head.nslots as usize;
        // Merge with the free run after the mapping, inside the same set.
        let end = i + n;
        let mut count = if end % IO_TLB_SEGSIZE != 0 { area.slots[end].list } else { 0 };
        for s in area.slots[i..end].iter_mut().rev() {
            count += 1;
            *s = Slot { list: count, ..Slot::default() };
        }
        // And with the free run before it.
        let mut j = i;
        while j % IO_TLB_SEGSIZE != 0 && area.slots[j - 1].list != 0 {
            j -= 1;
            count += 1;
            area.slots[j].list = count;
        }
        area.used -= n;
        // Unlike the kernel's round robin, search from here again when this was the latest
        // mapping: a map/unmap loop then reuses the same, cache-hot slots.
        if end % self.area_nslabs == area.index {
            area.index = i;
        }
        drop(area);
        self.used.fetch_sub(n, Relaxed);
        Ok(())
    }

    /// # Safety
    ///
    /// `src` and `dst` must be valid for `len` bytes and not overlap.
    unsafe fn copy(&self, src: *const u8, dst: *mut u8, len: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        self.bytes.fetch_add(len as u64, Relaxed);
    }

    /// Checks the free-run encoding of every area (tests and `debug-checks`).
    #[cfg(any(test, feature = "debug-checks"))]
    pub fn check_invariants(&self) {
        let mut used = 0;
        for (a, area) in self.areas.iter().enumerate() {
            let area = area.0.lock().unwrap_or_else(|e| e.into_inner());
            let mut expect = 0u16;
            for i in (0..self.area_nslabs).rev() {
                let s = area.slots[i];
                if (i + 1) % IO_TLB_SEGSIZE == 0 {
                    expect = 0;
                }
                if s.list == 0 {
                    expect = 0;
                    used += 1;
                } else {
                    expect += 1;
                    assert_eq!(s.list, expect, "area {a} slot {i}: free-run count");
                }
            }
            assert_eq!(area.used, area.slots.iter().filter(|s| s.list == 0).count(), "area {a}: used count");
        }
        assert_eq!(used, self.used.load(Relaxed), "pool used count");
    }
}

/// A search request, in bytes and slots.
#[derive(Debug)]
struct Want {
    nslots: usize,
    align: u64,
    iotlb_align: u64,
    key: u64,
    boundary_mask: u64,
    stride: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool over a heap buffer: the pool does not care where its memory comes from.
    struct Pool {
        mem: Vec<u8>,
        tlb: Swiotlb,
    }

    fn pool(nslabs: usize, nareas: usize) -> Pool {
        let mut mem = vec![0u8; nslabs * IO_TLB_SIZE + PAGE_SIZE];
        let base = mem.as_mut_ptr() as usize;
        let aligned = (base + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let tlb = Swiotlb::new(PhysAddr(0x100_0000), aligned as *mut u8, nslabs, nareas, false);
        Pool { mem, tlb }
    }

    fn quiet(_: std::fmt::Arguments<'_>) {}

    #[test]
    fn map_copies_and_unmap_copies_back_for_from_device() {
        let p = pool(256, 1);
        let mut buf = vec![7u8; 3000];
        let key = buf.as_ptr() as u64;
        // SAFETY: `buf` outlives the mapping.
        let tlb =
            unsafe { p.tlb.map(buf.as_mut_ptr() as usize, key, 3000, 0, u64::MAX, Attrs::empty(), &quiet) }.unwrap();
        // SAFETY: the slot range belongs to the pool and is 3000 bytes long.
        let slot = unsafe { std::slice::from_raw_parts_mut(p.tlb.cpu(tlb), 3000) };
        assert!(slot.iter().all(|&b| b == 7), "map copies for every direction");
        slot.fill(9);
        p.tlb.unmap(tlb, 3000, Direction::FromDevice, Attrs::empty()).unwrap();
        assert!(buf.iter().all(|&b| b == 9));
        p.tlb.check_invariants();
        assert_eq!(p.tlb.stats().used_slots, 0);
        drop(p.mem);
    }

    #[test]
    fn page_sized_mappings_are_page_aligned_and_min_align_bits_are_kept() {
        let p = pool(512, 1);
        let mut a = vec![0u8; 100];
        // SAFETY: `a` outlives the mappings.
        let small = unsafe { p.tlb.map(a.as_mut_ptr() as usize, 0, 100, 0, u64::MAX, Attrs::empty(), &quiet) }.unwrap();
        let mut big = vec![0u8; 8192];
        // SAFETY: `big` outlives the mapping.
        let t = unsafe { p.tlb.map(big.as_mut_ptr() as usize, 0, 8192, 0, u64::MAX, Attrs::empty(), &quiet) }.unwrap();
        assert_eq!(t.0 % PAGE_SIZE as u64, 0);
        // An NVMe-like device: the low 12 bits of the bounce address must match the original.
        let key = 0x1234_5a10;
        // SAFETY: `a` outlives the mapping.
        let m =
            unsafe { p.tlb.map(a.as_mut_ptr() as usize, key, 64, 0xfff, u64::MAX, Attrs::empty(), &quiet) }.unwrap();
        assert_eq!(m.0 & 0xfff, key & 0xfff);
        for (x, n) in [(small, 100), (t, 8192), (m, 64)] {
            p.tlb.unmap(x, n, Direction::ToDevice, Attrs::empty()).unwrap();
        }
        p.tlb.check_invariants();
    }

    #[test]
    fn exhaustion_is_enomem_with_the_kernels_message_and_recovers() {
        let p = pool(128, 1);
        let mut buf = vec![0u8; MAX_MAPPING_SIZE];
        // SAFETY: `buf` outlives the mapping.
        let whole =
            unsafe { p.tlb.map(buf.as_mut_ptr() as usize, 0, MAX_MAPPING_SIZE, 0, u64::MAX, Attrs::empty(), &quiet) }
                .unwrap();
        let msg = std::cell::RefCell::new(String::new());
        let record = |a: std::fmt::Arguments<'_>| *msg.borrow_mut() = a.to_string();
        // SAFETY: `buf` outlives the attempt.
        let r = unsafe { p.tlb.map(buf.as_mut_ptr() as usize, 0, 16, 0, u64::MAX, Attrs::empty(), &record) };
        assert_eq!(r, Err(Errno::ENOMEM));
        assert!(msg.borrow().starts_with("swiotlb buffer is full (sz: 16 bytes)"), "{}", msg.borrow());
        assert_eq!(p.tlb.stats().full, 1);
        p.tlb.unmap(whole, MAX_MAPPING_SIZE, Direction::ToDevice, Attrs::empty()).unwrap();
        // SAFETY: `buf` outlives the mapping.
        let again =
            unsafe { p.tlb.map(buf.as_mut_ptr() as usize, 0, 16, 0, u64::MAX, Attrs::empty(), &quiet) }.unwrap();
        p.tlb.unmap(again, 16, Direction::ToDevice, Attrs::empty()).unwrap();
        p.tlb.check_invariants();
    }

    #[test]
    fn max_mapping_size_never_overflows() {
        assert_eq!(Swiotlb::max_mapping_size(0), MAX_MAPPING_SIZE);
        assert_eq!(Swiotlb::max_mapping_size(0xfff), MAX_MAPPING_SIZE - 4096);
        assert_eq!(Swiotlb::max_mapping_size(u64::MAX), 0);
        assert_eq!(Swiotlb::max_mapping_size(0xffff_f800), 0);
    }

    #[test]
    fn oversize_zero_and_bogus_unmaps_are_refused() {
        let p = pool(256, 1);
        let mut buf = vec![0u8; MAX_MAPPING_SIZE + 1];
        // SAFETY: nothing is mapped on failure.
        let r = unsafe {
            p.tlb.map(buf.as_mut_ptr() as usize, 0, MAX_MAPPING_SIZE + 1, 0, u64::MAX, Attrs::empty(), &quiet)
        };
        assert_eq!(r, Err(Errno::EINVAL));
        // SAFETY: as above.
        let r = unsafe { p.tlb.map(buf.as_mut_ptr() as usize, 0, 0, 0, u64::MAX, Attrs::empty(), &quiet) };
        assert_eq!(r, Err(Errno::EINVAL));
        assert_eq!(p.tlb.unmap(PhysAddr(0x100_0000), 8, Direction::ToDevice, Attrs::empty()), Err(Errno::EINVAL));
        assert_eq!(p.tlb.unmap(PhysAddr(0x10), 8, Direction::ToDevice, Attrs::empty()), Err(Errno::EINVAL));
        p.tlb.check_invariants();
    }

    #[test]
    fn segment_boundaries_are_not_crossed() {
        let p = pool(256, 1);
        let mut buf = vec![0u8; 6000];
        let mut maps = Vec::new();
        for _ in 0..20 {
            // SAFETY: `buf` outlives the mappings.
            let t =
                unsafe { p.tlb.map(buf.as_mut_ptr() as usize, 0, 3000, 0, 0x1fff, Attrs::empty(), &quiet) }.unwrap();
            assert_eq!(t.0 & !0x1fff, (t.0 + 2999) & !0x1fff, "{t} crosses an 8 KiB boundary");
            maps.push(t);
        }
        for t in maps {
            p.tlb.unmap(t, 3000, Direction::ToDevice, Attrs::empty()).unwrap();
        }
        p.tlb.check_invariants();
    }

    proptest::proptest! {
        #[test]
        fn random_map_unmap_keeps_the_free_runs_exact(ops in proptest::collection::vec((1usize..20000, proptest::bool::ANY), 1..80)) {
            let p = pool(512, 2);
            let mut buf = vec![0u8; 20000];
            let mut live: Vec<(PhysAddr, usize)> = Vec::new();
            for (size, unmap) in ops {
                if unmap && !live.is_empty() {
                    let (t, n) = live.remove(size % live.len());
                    p.tlb.unmap(t, n, Direction::ToDevice, Attrs::empty()).unwrap();
                } else {
                    // SAFETY: `buf` outlives every mapping.
                    if let Ok(t) = unsafe { p.tlb.map(buf.as_mut_ptr() as usize, 0, size, 0, u64::MAX, Attrs::NO_WARN, &quiet) } {
                        for &(u, m) in &live {
                            proptest::prop_assert!(t.0 + size as u64 <= u.0 || u.0 + m as u64 <= t.0, "overlap");
                        }
                        live.push((t, size));
                    }
                }
                p.tlb.check_invariants();
            }
            for (t, n) in live {
                p.tlb.unmap(t, n, Direction::ToDevice, Attrs::empty()).unwrap();
            }
            p.tlb.check_invariants();
            proptest::prop_assert_eq!(p.tlb.stats().used_slots, 0);
        }
    }
}
