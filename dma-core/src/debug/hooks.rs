//! The calls the DMA API makes into dma-debug, one per API entry point
//! (`debug_dma_map_phys`, `debug_dma_unmap_phys`, `debug_dma_alloc_coherent`, ...).

use std::panic::Location;

use crate::addr::DmaAddr;
use crate::attrs::Attrs;
use crate::debug::area;
use crate::debug::{Debug, EntryKind, ErrorKind};
use crate::device::Device;
use crate::direction::Direction;

type At = &'static Location<'static>;

impl Debug {
    /// After a successful map of `[cpu, cpu + size)` at `dma`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mapped(
        &self,
        dev: &Device,
        cpu: usize,
        size: usize,
        dir: Direction,
        attrs: Attrs,
        dma: DmaAddr,
        kind: EntryKind,
        sg_ents: usize,
        at: At,
    ) {
        let call = dev.debug_call(dma, size, dir, kind, cpu, sg_ents, at);
        let phys = dev.system().virt_to_phys(cpu as *const u8);
        // Platform RAM is neither stack nor program text: only foreign memory is looked up.
        if phys.is_none() {
            if area::on_stack(cpu, size) {
                self.report(ErrorKind::MapStack, dev.name(), &call, format_args!("[addr={cpu:#x}]"), None);
            }
            if area::in_text(cpu, size) {
                self.report(ErrorKind::MapText, dev.name(), &call, format_args!("[addr={cpu:#x}] [len={size}]"), None);
            }
        }
        if kind == EntryKind::Sg {
            let max = dev.max_segment_size();
            if size as u64 > max {
                self.report(
                    ErrorKind::SgSegmentTooLong,
                    dev.name(),
                    &call,
                    format_args!("[len={size}] [max={max}]"),
                    None,
                );
            }
            let boundary = dev.segment_boundary_mask();
            let last = dma.0.wrapping_add(size as u64).wrapping_sub(1);
            if size != 0 && (dma.0 & !boundary) != (last & !boundary) {
                self.report(
                    ErrorKind::SgSegmentAcrossBoundary,
                    dev.name(),
                    &call,
                    format_args!("[start={dma}] [end={last:#x}] [boundary={:#x}]", boundary.wrapping_add(1)),
                    None,
                );
            }
        }
        let track_line =
            dir != Direction::ToDevice && !attrs.intersects(Attrs::SKIP_CPU_SYNC | Attrs::DEBUGGING_IGNORE_CACHELINES);
        // Memory the platform does not own has no physical line: key it by CPU address.
        let line_key = phys.map_or(cpu as u64 | 1 << 63, |p| p.0);
        let guarded = phys.is_some() && self.guard.is_some();
        self.add(dev.name(), &call, true, track_line, Some(line_key), guarded);
    }

    /// After a successful `map_phys` of `[phys, phys + size)` at `dma`. MMIO has no CPU
    /// view and no cache lines to track.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mapped_phys(
        &self,
        dev: &Device,
        phys: crate::PhysAddr,
        size: usize,
        dir: Direction,
        attrs: Attrs,
        dma: DmaAddr,
        at: At,
    ) {
        let mmio = attrs.contains(Attrs::MMIO);
        let cpu = if mmio { 0 } else { dev.system().ram().cached_ptr(phys, size).map_or(0, |p| p as usize) };
        let call = dev.debug_call(dma, size, dir, EntryKind::Single, cpu, 0, at);
        let track_line = !mmio
            && dir != Direction::ToDevice
            && !attrs.intersects(Attrs::SKIP_CPU_SYNC | Attrs::DEBUGGING_IGNORE_CACHELINES);
        let guarded = !mmio && cpu != 0 && self.guard.is_some();
        self.add(dev.name(), &call, true, track_line, Some(phys.0), guarded);
    }

    /// A map of `cpu` was refused: say why if it was an illegal area.
    pub(crate) fn map_refused(&self, dev: &Device, cpu: usize, size: usize, dir: Direction, at: At) {
        let sys = dev.system();
        if sys.find_uncached(cpu as *const u8).is_some() || sys.vmap_to_phys(cpu as *const u8).is_some() {
            let call = dev.debug_call(crate::DMA_MAPPING_ERROR, size, dir, EntryKind::Single, cpu, 0, at);
            self.report(
                ErrorKind::MapInvalidArea,
                dev.name(),
                &call,
                format_args!("[addr={cpu:#x}] [len={size}]"),
                None,
            );
        }
    }

    /// Before an unmap or free.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn unmapping(
        &self,
        dev: &Device,
        dma: DmaAddr,
        size: usize,
        dir: Direction,
        kind: EntryKind,
        cpu: usize,
        sg_ents: usize,
        at: At,
    ) {
        let call = dev.debug_call(dma, size, dir, kind, cpu, sg_ents, at);
        self.remove(dev.name(), &call);
    }

    /// Before `dma_iova_unlink` of `[dma, dma + size)`: ends every link that starts there,
    /// each checked as the unmap of its own size (one reaching past the range is a wrong
    /// size); a range with no link is an unmap of memory never mapped.
    pub(crate) fn unlinking(&self, dev: &Device, dma: DmaAddr, size: usize, dir: Direction, at: At) {
        let end = dma.0.saturating_add(size as u64);
        let links = self.starting_in(dev.id(), dma.0, end);
        if links.is_empty() {
            let call = dev.debug_call(dma, size, dir, EntryKind::Single, 0, 0, at);
            return self.remove(dev.name(), &call);
        }
        for (start, len) in links {
            let len = len.min((end - start) as usize);
            let call = dev.debug_call(DmaAddr(start), len, dir, EntryKind::Single, 0, 0, at);
            self.remove(dev.name(), &call);
        }
    }

    /// After a successful allocation.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn allocated(
        &self,
        dev: &Device,
        cpu: usize,
        dma: DmaAddr,
        size: usize,
        dir: Direction,
        kind: EntryKind,
        at: At,
    ) {
        let call = dev.debug_call(dma, size, dir, kind, cpu, 0, at);
        // A non-coherent allocation starts out the CPU's (guarded once handed over); a
        // coherent one is shared for good.
        let noncoherent = kind == EntryKind::Noncoherent;
        self.add(dev.name(), &call, !noncoherent, false, None, noncoherent && self.guard.is_some());
    }

    /// A sync for the CPU, before it runs; a sync for the device, after it ran. Returns
    /// nothing: reports go to the sink.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn synced(
        &self,
        dev: &Device,
        dma: DmaAddr,
        size: usize,
        dir: Direction,
        to_cpu: bool,
        sg_ents: Option<usize>,
        at: At,
    ) {
        let call = dev.debug_call(dma, size, dir, EntryKind::Single, 0, sg_ents.unwrap_or(0), at);
        self.sync(dev.name(), &call, to_cpu, sg_ents);
    }

    /// `dma_mapping_error` was called on `dma`.
    pub(crate) fn checked(&self, dev: &Device, dma: DmaAddr) {
        self.mapping_checked(dev.id(), dma);
    }
}
