//! A multi-level IO page table (the shape of `drivers/iommu/io-pgtable-arm.c`'s LPAE
//! format): 48-bit IOVAs, four levels of 512 entries, 4 KiB pages at the last level and
//! 2 MiB blocks one level up, each leaf with read and write permission bits.
//!
//! Tables live in an arena and point at each other by index, so the walker is safe code.
//! `map` uses a 2 MiB block wherever IOVA, physical address and length allow it; `unmap`
//! splits a block it only partly covers (`arm_lpae_split_blk_unmap`). Tables are kept once
//! made, as the kernel keeps them on unmap.

#![forbid(unsafe_code)]

use dma_core::{Errno, PhysAddr};

/// Bits of IOVA the table translates.
pub const IOVA_BITS: u32 = 48;
/// The page sizes it maps (`pgsize_bitmap`): 4 KiB and 2 MiB.
pub const PGSIZE_BITMAP: u64 = PAGE | BLOCK;

const PAGE: u64 = 1 << 12;
const BLOCK: u64 = 1 << 21;
const ENTRIES: usize = 512;
const LEVELS: usize = 4;
/// The level of 2 MiB blocks; the last level holds 4 KiB pages.
const BLOCK_LEVEL: usize = 2;

const TYPE_MASK: u64 = 0b11;
const TYPE_LEAF: u64 = 0b01;
const TYPE_TABLE: u64 = 0b11;
const PTE_READ: u64 = 1 << 2;
const PTE_WRITE: u64 = 1 << 3;
const ADDR_MASK: u64 = ((1 << 52) - 1) & !(PAGE - 1);

/// Access a mapping allows the device (`IOMMU_READ` / `IOMMU_WRITE`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Prot(u8);

impl Prot {
    /// The device may read.
    pub const READ: Prot = Prot(1);
    /// The device may write.
    pub const WRITE: Prot = Prot(2);
    /// Both.
    pub const READ_WRITE: Prot = Prot(3);

    /// True when every right in `other` is granted.
    pub const fn contains(self, other: Prot) -> bool {
        self.0 & other.0 == other.0
    }

    const fn to_pte(self) -> u64 {
        (if self.contains(Prot::READ) { PTE_READ } else { 0 })
            | (if self.contains(Prot::WRITE) { PTE_WRITE } else { 0 })
    }

    const fn from_pte(pte: u64) -> Prot {
        Prot(((pte & PTE_READ != 0) as u8) | (((pte & PTE_WRITE != 0) as u8) << 1))
    }
}

/// One translation: where an IOVA lands, what the device may do, and how many bytes from it
/// to the end of its leaf translate contiguously.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Translation {
    /// The physical address of the IOVA.
    pub phys: PhysAddr,
    /// The leaf's permissions.
    pub prot: Prot,
    /// Bytes left in the leaf, from the IOVA on.
    pub len: u64,
}

type Table = [u64; ENTRIES];

/// An IO page table.
///
/// # Invariants
///
/// Table 0 is the root; every table entry names a table in the arena that no other entry
/// names; leaves sit only at the block and page levels, with addresses aligned to their size.
#[derive(Debug)]
pub struct PageTable {
    tables: Vec<Box<Table>>,
    mapped: u64,
}

impl Default for PageTable {
    fn default() -> Self {
        PageTable::new()
    }
}

const fn level_shift(level: usize) -> u32 {
    12 + 9 * (LEVELS - 1 - level) as u32
}

const fn index(iova: u64, level: usize) -> usize {
    ((iova >> level_shift(level)) as usize) & (ENTRIES - 1)
}

impl PageTable {
    /// An empty table.
    pub fn new() -> PageTable {
        PageTable { tables: vec![Box::new([0; ENTRIES])], mapped: 0 }
    }

    /// Bytes currently mapped.
    pub fn mapped_bytes(&self) -> u64 {
        self.mapped
    }

    /// Page-table pages in use (including the root).
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    fn new_table(&mut self) -> u64 {
        self.tables.push(Box::new([0; ENTRIES]));
        ((self.tables.len() - 1) as u64) << 12 | TYPE_TABLE
    }

    /// Maps `[iova, iova + size)` to `[phys, phys + size)` with `prot` (`iommu_map`).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned or empty range, one beyond [`IOVA_BITS`], or no permission;
    /// `EEXIST` when part of the range is mapped already (nothing is mapped then).
    pub fn map(&mut self, iova: u64, phys: PhysAddr, size: u64, prot: Prot) -> Result<(), Errno> {
        let aligned = (iova | phys.0 | size) & (PAGE - 1) == 0;
        if !aligned || size == 0 || iova.checked_add(size).is_none_or(|end| end > 1 << IOVA_BITS) || prot.0 == 0 {
            return Err(Errno::EINVAL);
        }
        let mut done = 0;
        while done < size {
            let (i, p) = (iova + done, phys.0 + done);
            let pgsize = if (i | p) & (BLOCK - 1) == 0 && size - done >= BLOCK { BLOCK } else { PAGE };
            if let Err(e) = self.map_one(i, p, pgsize, prot) {
                self.unmap(iova, done);
                return Err(e);
            }
            done += pgsize;
            self.mapped += pgsize;
        }
        Ok(())
    }

    fn map_one(&mut self, iova: u64, phys: u64, pgsize: u64, prot: Prot) -> Result<(), Errno> {
        let target = if pgsize == BLOCK { BLOCK_LEVEL } else { LEVELS - 1 };
        let mut t = 0;
        for level in 0..target {
            let idx = index(iova, level);
            let pte = self.tables[t][idx];
            t = match pte & TYPE_MASK {
                TYPE_TABLE => (pte >> 12) as usize,
                0 => {
                    let pte = self.new_table();
                    self.tables[t][idx] = pte;
                    (pte >> 12) as usize
                }
                _ => return Err(Errno::EEXIST),
            };
        }
        let idx = index(iova, target);
        let old = self.tables[t][idx];
        if old & TYPE_MASK == TYPE_TABLE && self.tables[(old >> 12) as usize].iter().all(|&e| e == 0) {
            // An empty table where a block goes: the block replaces it (the table stays in
            // the arena, unreferenced, like a page the kernel would free after a flush).
        } else if old != 0 {
            return Err(Errno::EEXIST);
        }
        self.tables[t][idx] = (phys & ADDR_MASK) | prot.to_pte() | TYPE_LEAF;
        Ok(())
    }

    /// Unmaps `[iova, iova + size)` (`iommu_unmap`), splitting blocks it partly covers;
    /// holes are skipped. Returns the bytes that were mapped.
    pub fn unmap(&mut self, iova: u64, size: u64) -> u64 {
        let end = iova.saturating_add(size).min(1 << IOVA_BITS);
        let mut i = iova & !(PAGE - 1);
        let mut unmapped = 0;
        'outer: while i < end {
            let mut t = 0;
            for level in 0..LEVELS {
                let idx = index(i, level);
                let pte = self.tables[t][idx];
                let span = 1u64 << level_shift(level);
                match pte & TYPE_MASK {
                    TYPE_TABLE => t = (pte >> 12) as usize,
                    TYPE_LEAF if level == BLOCK_LEVEL && (i & (BLOCK - 1) != 0 || end - i < BLOCK) => {
                        // Split the block into pages and go on at the page level.
                        let base = pte & ADDR_MASK;
                        let flags = pte & (PTE_READ | PTE_WRITE);
                        let new = self.new_table();
                        let n = (new >> 12) as usize;
                        for (k, e) in self.tables[n].iter_mut().enumerate() {
                            *e = (base + k as u64 * PAGE) | flags | TYPE_LEAF;
                        }
                        self.tables[t][idx] = new;
                        t = n;
                    }
                    TYPE_LEAF => {
                        self.tables[t][idx] = 0;
                        unmapped += span;
                        i += span;
                        continue 'outer;
                    }
                    _ => {
                        // A hole: skip to the next entry of this level.
                        i = (i & !(span - 1)) + span;
                        continue 'outer;
                    }
                }
            }
        }
        self.mapped -= unmapped;
        unmapped
    }

    /// `iova_to_phys`, with the leaf's permissions and remaining length.
    pub fn translate(&self, iova: u64) -> Option<Translation> {
        if iova >= 1 << IOVA_BITS {
            return None;
        }
        let mut t = 0;
        for level in 0..LEVELS {
            let pte = self.tables[t][index(iova, level)];
            match pte & TYPE_MASK {
                TYPE_TABLE => t = (pte >> 12) as usize,
                TYPE_LEAF => {
                    let span = 1u64 << level_shift(level);
                    let off = iova & (span - 1);
                    return Some(Translation {
                        phys: PhysAddr((pte & ADDR_MASK) + off),
                        prot: Prot::from_pte(pte),
                        len: span - off,
                    });
                }
                _ => return None,
            }
        }
        None
    }

    /// The physical address of `iova` (`iommu_iova_to_phys`).
    pub fn iova_to_phys(&self, iova: u64) -> Option<PhysAddr> {
        self.translate(iova).map(|t| t.phys)
    }

    /// Calls `f` for each physically contiguous piece of `[iova, iova + len)` as
    /// (phys, length, prot). Stops and returns the first unmapped IOVA, if any.
    pub fn walk(&self, iova: u64, len: u64, mut f: impl FnMut(PhysAddr, u64, Prot)) -> Result<(), u64> {
        let end = iova.checked_add(len).ok_or(iova)?;
        let mut i = iova;
        let mut run: Option<(PhysAddr, u64, Prot)> = None;
        while i < end {
            let t = self.translate(i).ok_or(i)?;
            let n = t.len.min(end - i);
            run = match run {
                Some((p, l, prot)) if p.0 + l == t.phys.0 && prot == t.prot => Some((p, l + n, prot)),
                Some((p, l, prot)) => {
                    f(p, l, prot);
                    Some((t.phys, n, t.prot))
                }
                None => Some((t.phys, n, t.prot)),
            };
            i += n;
        }
        if let Some((p, l, prot)) = run {
            f(p, l, prot);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_pages_and_blocks_and_translates() {
        let mut pt = PageTable::new();
        pt.map(0x20_0000, PhysAddr(0x1_0040_0000), 0x40_1000, Prot::READ_WRITE).unwrap();
        assert_eq!(pt.mapped_bytes(), 0x40_1000);
        let t = pt.translate(0x20_0123).unwrap();
        assert_eq!(t.phys, PhysAddr(0x1_0040_0123));
        assert_eq!(t.len, BLOCK - 0x123, "a 2 MiB block");
        let last = pt.translate(0x60_0fff).unwrap();
        assert_eq!((last.phys, last.len), (PhysAddr(0x1_0080_0fff), 1), "a 4 KiB page");
        assert_eq!(pt.translate(0x60_1000), None);
        assert_eq!(pt.map(0x60_0000, PhysAddr(0), 0x1000, Prot::READ), Err(Errno::EEXIST));
        assert_eq!(pt.map(0x123, PhysAddr(0), 0x1000, Prot::READ), Err(Errno::EINVAL));
        assert_eq!(pt.map(1 << 48, PhysAddr(0), 0x1000, Prot::READ), Err(Errno::EINVAL));
    }

    #[test]
    fn unmap_splits_blocks_and_skips_holes() {
        let mut pt = PageTable::new();
        pt.map(0x40_0000, PhysAddr(0x80_0000), BLOCK, Prot::READ).unwrap();
        assert_eq!(pt.unmap(0x40_1000, 0x1000), 0x1000);
        assert_eq!(pt.translate(0x40_1000), None);
        let t = pt.translate(0x40_2008).unwrap();
        assert_eq!((t.phys, t.prot), (PhysAddr(0x80_2008), Prot::READ));
        assert_eq!(pt.unmap(0, 1 << 30), BLOCK - 0x1000, "the rest, holes skipped");
        assert_eq!(pt.mapped_bytes(), 0);
        // An empty table at the block level is replaced by a block.
        pt.map(0x40_0000, PhysAddr(0x80_0000), BLOCK, Prot::WRITE).unwrap();
        assert_eq!(pt.translate(0x5f_ffff).unwrap().len, 1);
    }

    #[test]
    fn failed_map_leaves_nothing_behind() {
        let mut pt = PageTable::new();
        pt.map(0x3000, PhysAddr(0x3000), 0x1000, Prot::READ).unwrap();
        assert_eq!(pt.map(0x1000, PhysAddr(0x9000), 0x4000, Prot::READ), Err(Errno::EEXIST));
        assert_eq!(pt.translate(0x1000), None);
        assert_eq!(pt.mapped_bytes(), 0x1000);
    }

    #[test]
    fn walk_merges_contiguous_pieces() {
        let mut pt = PageTable::new();
        pt.map(0x1000, PhysAddr(0x5000), 0x2000, Prot::READ_WRITE).unwrap();
        pt.map(0x3000, PhysAddr(0x9000), 0x1000, Prot::READ_WRITE).unwrap();
        let mut pieces = Vec::new();
        pt.walk(0x1800, 0x2000, |p, l, _| pieces.push((p.0, l))).unwrap();
        assert_eq!(pieces, vec![(0x5800, 0x1800), (0x9000, 0x800)]);
        assert_eq!(pt.walk(0x3000, 0x2000, |_, _, _| {}), Err(0x4000));
    }
}
