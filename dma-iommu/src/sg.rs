//! Scatter-gather layout for the IOMMU path (`iommu_dma_map_sg` and `__finalise_sg` in
//! `drivers/iommu/dma-iommu.c`).
//!
//! Every entry is widened to whole granules and laid out back to back in one IOVA range,
//! padded where an entry would otherwise straddle the device's segment boundary. After
//! mapping, entries are merged into DMA segments: an entry joins the previous segment when
//! it starts on a granule boundary, the previous one ended on a granule boundary, the join
//! is not at a segment boundary, and the result fits `max_segment_size`.

#![forbid(unsafe_code)]

use dma_core::PhysAddr;

use crate::iova::IOVA_GRANULE;

/// One entry's place in the IOVA range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seg {
    /// The entry's physical address rounded down to a granule.
    pub(crate) phys: PhysAddr,
    /// The entry's offset in its first granule.
    pub(crate) off: u64,
    /// The entry's length.
    pub(crate) len: u64,
    /// Granules mapped for it, in bytes.
    pub(crate) map_len: u64,
    /// IOVA space it takes: `map_len` plus any padding after it.
    pub(crate) iova_len: u64,
}

const fn granule_align(n: u64) -> u64 {
    (n + IOVA_GRANULE - 1) & !(IOVA_GRANULE - 1)
}

/// Lays out entries given as (physical address, length); returns them with the total IOVA
/// length. Padding follows the kernel: it relies on the IOVA range being aligned to its size
/// rounded up to a power of two, so a range bigger than a boundary starts on one.
pub(crate) fn layout(entries: impl Iterator<Item = (PhysAddr, u64)>, seg_mask: u64) -> (Vec<Seg>, u64) {
    let mut segs: Vec<Seg> = Vec::new();
    let mut iova_len: u64 = 0;
    for (phys, len) in entries {
        let off = phys.0 & (IOVA_GRANULE - 1);
        let map_len = granule_align(len + off);
        let pad = seg_mask.wrapping_sub(iova_len).wrapping_add(1) & seg_mask;
        if pad != 0 && pad < map_len - 1 {
            if let Some(prev) = segs.last_mut() {
                prev.iova_len += pad;
                iova_len += pad;
            }
        }
        segs.push(Seg { phys: PhysAddr(phys.0 - off), off, len, map_len, iova_len: map_len });
        iova_len += map_len;
    }
    (segs, iova_len)
}

/// `__finalise_sg`: the DMA segments (bus address, length) of entries laid out by [`layout`]
/// and mapped at `dma`.
pub(crate) fn finalise(segs: &[Seg], dma: u64, seg_mask: u64, max_len: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(segs.len());
    let mut cur_len = 0u64;
    let mut dma_addr = dma;
    for s in segs {
        match out.last_mut() {
            Some(last)
                if cur_len != 0
                    && s.off == 0
                    && dma_addr & seg_mask != 0
                    && max_len.saturating_sub(cur_len) >= s.len =>
            {
                cur_len += s.len;
                last.1 = cur_len;
            }
            _ => {
                cur_len = s.len;
                out.push((dma_addr + s.off, s.len));
            }
        }
        dma_addr += s.iova_len;
        if s.len + s.off < s.iova_len {
            // The entry does not fill its last granule: nothing can follow it in a segment.
            cur_len = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(v: &[(u64, u64)]) -> impl Iterator<Item = (PhysAddr, u64)> + '_ {
        v.iter().map(|&(p, l)| (PhysAddr(p), l))
    }

    #[test]
    fn whole_pages_merge_into_one_segment() {
        let e = [(0x10_0000, 4096), (0x30_0000, 4096), (0x20_5000, 8192)];
        let (segs, len) = layout(entries(&e), u64::MAX);
        assert_eq!(len, 4 * 4096);
        assert_eq!(finalise(&segs, 0x8000_0000, u64::MAX, 1 << 16), vec![(0x8000_0000, 4 * 4096)]);
    }

    #[test]
    fn partial_pages_and_offsets_break_segments() {
        // The first entry ends mid-page; the third starts mid-page.
        let e = [(0x10_0000, 100), (0x30_0000, 4096), (0x20_5010, 50)];
        let (segs, len) = layout(entries(&e), u64::MAX);
        assert_eq!(len, 3 * 4096);
        let out = finalise(&segs, 0x1000_0000, u64::MAX, 1 << 16);
        assert_eq!(out, vec![(0x1000_0000, 100), (0x1000_1000, 4096), (0x1000_2010, 50)]);
    }

    #[test]
    fn max_segment_size_caps_merging() {
        let e = [(0x1000, 4096); 4];
        let (segs, _) = layout(entries(&e), u64::MAX);
        let out = finalise(&segs, 0x10_0000, u64::MAX, 8192);
        assert_eq!(out, vec![(0x10_0000, 8192), (0x10_2000, 8192)]);
    }

    #[test]
    fn segment_boundary_pads_and_splits() {
        // An 8 KiB boundary: the 8 KiB entry after a 4 KiB one would cross it, so the first
        // is padded and the second starts on the boundary, in a new segment.
        let e = [(0x1000, 4096), (0x4000, 8192), (0x9000, 4096)];
        let (segs, len) = layout(entries(&e), 0x1fff);
        assert_eq!(segs[0].iova_len, 8192);
        assert_eq!(len, 16384 + 4096);
        let out = finalise(&segs, 0x20_0000, 0x1fff, 1 << 16);
        assert_eq!(out, vec![(0x20_0000, 4096), (0x20_2000, 8192), (0x20_4000, 4096)]);
    }
}
