//! The parts of the VFIO backend that need no device: parsing, checks, ioctl numbers.

use super::*;

#[test]
fn ioctl_numbers_match_the_uapi_header() {
    // `_IO(';', 100 + n)` as in <linux/vfio.h>.
    assert_eq!(VFIO_GET_API_VERSION, 0x3b64);
    assert_eq!(VFIO_SET_IOMMU, 0x3b66);
    assert_eq!(VFIO_GROUP_GET_DEVICE_FD, 0x3b6a);
    assert_eq!(VFIO_IOMMU_MAP_DMA, 0x3b71);
    assert_eq!(VFIO_IOMMU_UNMAP_DMA, 0x3b72);
}

#[test]
fn pci_addresses_parse_and_print() {
    let a: PciAddress = "0000:00:03.0".parse().unwrap();
    assert_eq!(a, PciAddress { domain: 0, bus: 0, device: 3, function: 0 });
    assert_eq!(a.to_string(), "0000:00:03.0");
    assert_eq!("ab:1f.7".parse::<PciAddress>().unwrap().to_string(), "0000:ab:1f.7");
    assert_eq!("10000:00:03.0".parse::<PciAddress>().unwrap_err(), Errno::EINVAL);
    for bad in ["", "00:03", "00:20.0", "00:03.8", "0:0:0:0.0", "00:0g.0", "00:03.", ":00:03.0", "+0:03.0"] {
        assert_eq!(bad.parse::<PciAddress>(), Err(Errno::EINVAL), "{bad:?}");
    }
}

#[test]
fn directions_become_map_flags() {
    let (r, w) = (sys::VFIO_DMA_MAP_FLAG_READ, sys::VFIO_DMA_MAP_FLAG_WRITE);
    assert_eq!(map_flags(Direction::ToDevice), Ok(r));
    assert_eq!(map_flags(Direction::FromDevice), Ok(w));
    assert_eq!(map_flags(Direction::Bidirectional), Ok(r | w));
    assert_eq!(map_flags(Direction::None), Err(Errno::EINVAL));
}

#[test]
fn pieces_must_be_whole_pages() {
    assert_eq!(check_pieces(&[(0x1000, 0x2000), (0x9000, 0x1000)]), Ok(0x3000));
    for bad in [&[][..], &[(0x1000, 0)], &[(0x1001, 0x1000)], &[(0x1000, 0x800)], &[(usize::MAX & !0xfff, 0x1000)]] {
        assert_eq!(check_pieces(bad), Err(Errno::EINVAL), "{bad:?}");
    }
}

/// A `VFIO_IOMMU_GET_INFO` answer as the kernel lays it out: the fixed part, then the
/// given capabilities (id, ranges) chained in order.
fn info(caps: &[(u16, &[(u64, u64)])]) -> Vec<u8> {
    let mut b = vec![0u8; size_of::<sys::vfio_iommu_type1_info>()];
    let mut prev_next: Option<usize> = None;
    for &(id, ranges) in caps {
        let at = b.len();
        match prev_next {
            Some(p) => b[p..p + 4].copy_from_slice(&(at as u32).to_ne_bytes()),
            None => b[16..20].copy_from_slice(&(at as u32).to_ne_bytes()),
        }
        b.extend_from_slice(&id.to_ne_bytes());
        b.extend_from_slice(&1u16.to_ne_bytes());
        prev_next = Some(b.len());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&(ranges.len() as u32).to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        for &(s, e) in ranges {
            b.extend_from_slice(&s.to_ne_bytes());
            b.extend_from_slice(&e.to_ne_bytes());
        }
    }
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    let flags = sys::VFIO_IOMMU_INFO_PGSIZES | if caps.is_empty() { 0 } else { sys::VFIO_IOMMU_INFO_CAPS };
    b[4..8].copy_from_slice(&flags.to_ne_bytes());
    b[8..16].copy_from_slice(&0x4020_1000u64.to_ne_bytes());
    b
}

#[test]
fn iova_ranges_are_read_from_the_capability_chain() {
    // What an emulated VT-d reports: everything but the interrupt window.
    let vtd: &[(u64, u64)] = &[(0, 0xfedf_ffff), (0xfef0_0000, 0x7f_ffff_ffff)];
    assert_eq!(parse_iova_ranges(&info(&[(1, vtd)])), Ok(Some(vtd.to_vec())));
    // Behind another capability (migration, id 2), still found.
    assert_eq!(parse_iova_ranges(&info(&[(2, &[]), (1, vtd)])), Ok(Some(vtd.to_vec())));
    assert_eq!(parse_iova_ranges(&info(&[])), Ok(None));
    assert_eq!(parse_iova_ranges(&info(&[(2, &[])])), Ok(None));
}

#[test]
fn malformed_iova_capabilities_are_refused() {
    let good = info(&[(1, &[(0x1000, 0x1fff), (0x4000, 0x4fff)])]);
    // Truncated inside the ranges.
    assert_eq!(parse_iova_ranges(&good[..good.len() - 4]), Err(Errno::EINVAL));
    assert_eq!(parse_iova_ranges(&good[..4]), Err(Errno::EINVAL));
    // Reversed, unsorted, overlapping.
    for r in [&[(0x2000u64, 0x1000u64)][..], &[(0x4000, 0x4fff), (0x1000, 0x1fff)], &[(0, 0x2fff), (0x2000, 0x4fff)]] {
        assert_eq!(parse_iova_ranges(&info(&[(1, r)])), Err(Errno::EINVAL), "{r:?}");
    }
    // A chain pointing back into the fixed part or at itself.
    let mut looped = info(&[(2, &[])]);
    looped[28..32].copy_from_slice(&24u32.to_ne_bytes());
    assert_eq!(parse_iova_ranges(&looped), Err(Errno::EINVAL));
    let mut inside = info(&[(2, &[])]);
    inside[16..20].copy_from_slice(&8u32.to_ne_bytes());
    assert_eq!(parse_iova_ranges(&inside), Err(Errno::EINVAL));
}

#[test]
fn allocations_stay_inside_valid_ranges_and_masks() {
    let vtd = [(0, 0xfedf_ffff), (0xfef0_0000, 0x7f_ffff_ffff)];
    let iovad = iova_domain_for(&vtd).unwrap();
    assert_eq!(iovad.start_pfn(), 1);
    assert_eq!(iovad.end_pfn(), 0x7ff_ffff);
    // The interrupt window is never handed out, even to a 32-bit device filling the space.
    let r = iovad.find(0xfee00).unwrap();
    assert!(r.reserved && r.pfn_lo == 0xfee00 && r.pfn_hi == 0xfeeff);
    // A 28-bit device gets IOVAs below 2^28.
    let pfn = iovad.alloc(3, (1 << 28 >> IOVA_SHIFT) - 1).unwrap();
    assert!((pfn + 3) << IOVA_SHIFT <= 1 << 28);
    // Partial granules at the edges are not used.
    let odd = iova_domain_for(&[(0x800, 0x2_17ff)]).unwrap();
    assert_eq!((odd.start_pfn(), odd.end_pfn()), (1, 0x20));
    assert!(iova_domain_for(&[(0, 0xfff)]).is_none());
    assert!(iova_domain_for(&[]).is_none());
    // A space reaching past 48 bits is clipped.
    assert_eq!(iova_domain_for(&[(0, u64::MAX)]).unwrap().end_pfn(), IOVA_TOP >> IOVA_SHIFT);
}

#[test]
fn opening_a_device_without_a_group_fails_cleanly() {
    let a = PciAddress { domain: 0xffff, bus: 0xff, device: 31, function: 7 };
    assert_eq!(VfioDevice::open(a).unwrap_err(), Errno::ENODEV);
}
