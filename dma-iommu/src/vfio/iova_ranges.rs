//! The valid IOVA ranges of a VFIO container (`VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE`) and
//! an IOVA allocator confined to them.

use dma_core::{Errno, Result};
use vfio_bindings::bindings::vfio as sys;

use crate::iova::{IOVA_GRANULE, IOVA_SHIFT, IovaDomain};

/// Highest IOVA the allocator manages: VT-d and SMMU page tables stop at 48 bits anyway, and
/// the allocator needs an end below `u64::MAX`.
pub(super) const IOVA_TOP: u64 = (1 << 48) - 1;

pub(super) fn read_u32(buf: &[u8], off: usize) -> Result<u32> {
    let b = buf.get(off..off.checked_add(4).ok_or(Errno::EINVAL)?).ok_or(Errno::EINVAL)?;
    Ok(u32::from_ne_bytes(b.try_into().map_err(|_| Errno::EINVAL)?))
}

pub(super) fn read_u64(buf: &[u8], off: usize) -> Result<u64> {
    let b = buf.get(off..off.checked_add(8).ok_or(Errno::EINVAL)?).ok_or(Errno::EINVAL)?;
    Ok(u64::from_ne_bytes(b.try_into().map_err(|_| Errno::EINVAL)?))
}

/// Valid IOVA ranges, `(first, last)` inclusive, sorted.
pub type IovaRanges = Vec<(u64, u64)>;

/// The valid IOVA ranges, `(first, last)` inclusive and sorted, from a `VFIO_IOMMU_GET_INFO`
/// answer (`struct vfio_iommu_type1_info` followed by its capability chain). `None` when the
/// kernel sent no `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE` (kernels before 5.4): every IOVA is
/// valid then.
///
/// # Errors
///
/// `EINVAL` for a truncated buffer, a chain that does not move forward, or ranges that are
/// empty, reversed, unsorted or overlapping.
pub fn parse_iova_ranges(info: &[u8]) -> Result<Option<IovaRanges>> {
    use std::mem::{offset_of, size_of};
    let flags = read_u32(info, offset_of!(sys::vfio_iommu_type1_info, flags))?;
    if flags & sys::VFIO_IOMMU_INFO_CAPS == 0 {
        return Ok(None);
    }
    let argsz = (read_u32(info, offset_of!(sys::vfio_iommu_type1_info, argsz))? as usize).min(info.len());
    let info = &info[..argsz];
    let mut off = read_u32(info, offset_of!(sys::vfio_iommu_type1_info, cap_offset))? as usize;
    while off != 0 {
        // A capability lies after the fixed part, and each `next` points further on, so a
        // malformed chain cannot loop.
        if off < size_of::<sys::vfio_iommu_type1_info>() {
            return Err(Errno::EINVAL);
        }
        let id = read_u32(info, off + offset_of!(sys::vfio_info_cap_header, id))? & 0xffff;
        let next = read_u32(info, off + offset_of!(sys::vfio_info_cap_header, next))? as usize;
        if id == sys::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            let nr = read_u32(info, off + offset_of!(sys::vfio_iommu_type1_info_cap_iova_range, nr_iovas))? as usize;
            let first = off + size_of::<sys::vfio_iommu_type1_info_cap_iova_range>();
            let mut ranges = Vec::with_capacity(nr.min(64));
            for i in 0..nr {
                let at = first + i * size_of::<sys::vfio_iova_range>();
                let start = read_u64(info, at + offset_of!(sys::vfio_iova_range, start))?;
                let end = read_u64(info, at + offset_of!(sys::vfio_iova_range, end))?;
                let sorted = ranges.last().is_none_or(|&(_, prev_end): &(u64, u64)| start > prev_end);
                if end < start || !sorted {
                    return Err(Errno::EINVAL);
                }
                ranges.push((start, end));
            }
            return Ok(Some(ranges));
        }
        if next != 0 && next <= off {
            return Err(Errno::EINVAL);
        }
        off = next;
    }
    Ok(None)
}

/// The IOVA allocator for valid ranges: an aperture from the first usable granule to the
/// last (at most 48 bits), with the holes between ranges reserved. `None` when no whole
/// granule above page 0 is valid.
pub fn iova_domain_for(ranges: &[(u64, u64)]) -> Option<IovaDomain> {
    // Whole granules only: a range's first granule starts at or after its start, its last
    // ends at or before its end.
    let granules: Vec<(u64, u64)> = ranges
        .iter()
        .filter_map(|&(s, e)| {
            let lo = s.div_ceil(IOVA_GRANULE).max(1);
            let hi = (e.min(IOVA_TOP).saturating_add(1) >> IOVA_SHIFT).checked_sub(1)?;
            (s <= IOVA_TOP && lo <= hi).then_some((lo, hi))
        })
        .collect();
    let (&(start, _), &(_, end)) = (granules.first()?, granules.last()?);
    let iovad = IovaDomain::new(start, end);
    for w in granules.windows(2) {
        if w[1].0 > w[0].1 + 1 {
            iovad.reserve(w[0].1 + 1, w[1].0 - 1);
        }
    }
    Some(iovad)
}
