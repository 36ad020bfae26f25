//! A multi-level IO page table (the shape of `drivers/iommu/io-pgtable-arm.c`'s LPAE
//! format): 48-bit IOVAs, four levels of 512 entries, 4 KiB pages at the last level and
//! 2 MiB blocks one level up, each leaf with read and write permission bits.
//!
//! Tables live in an arena and point at each other by index, so the walker is safe code.
//! `map` uses a 2 MiB block wherever IOVA, physical address and length allow it; `unmap`
//! splits a block it only partly covers (`arm_lpae_split_blk_unmap`). A table whose whole
//! span an unmap covers is unlinked and its page kept for reuse, as the kernel's unmap
//! frees the tables inside the range (`dma_pte_free_pagetable`, `__arm_lpae_free_pgtable`);
//! the kernel waits for the IOTLB flush first because hardware may cache walks, and the
//! simulated walker caches nothing. Tables emptied piece by piece stay linked for a while,
//! for the next map there (a driver mapping and unmapping one buffer over and over reuses
//! one path); once [`SWEEP_AFTER`] have emptied, a sweep frees those still empty, so they
//! cannot pile up as the kernel's do.

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
/// Emptied tables left linked before a sweep frees the ones still empty.
pub const SWEEP_AFTER: usize = 32;

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
/// `live[t]` counts the non-zero entries of table `t`; `spare` lists exactly the arena
/// tables nothing links, all zero; `queued[t]` is set only for linked tables with an
/// `emptied` entry.
#[derive(Debug)]
pub struct PageTable {
    tables: Vec<Box<Table>>,
    live: Vec<u16>,
    spare: Vec<usize>,
    /// Tables an unmap emptied, as (an IOVA they translate, their level), to sweep.
    emptied: Vec<(u64, usize)>,
    queued: Vec<bool>,
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
        PageTable {
            tables: vec![Box::new([0; ENTRIES])],
            live: vec![0],
            spare: Vec::new(),
            emptied: Vec::new(),
            queued: vec![false],
            mapped: 0,
        }
    }

    /// Bytes currently mapped.
    pub fn mapped_bytes(&self) -> u64 {
        self.mapped
    }

    /// Page-table pages in use (including the root).
    pub fn table_count(&self) -> usize {
        self.tables.len() - self.spare.len()
    }

    /// An empty table: a spare one, or a new page in the arena. Returns the entry that
    /// links it.
    fn new_table(&mut self) -> u64 {
        let n = self.spare.pop().unwrap_or_else(|| {
            self.tables.push(Box::new([0; ENTRIES]));
            self.live.push(0);
            self.queued.push(false);
            self.tables.len() - 1
        });
        (n as u64) << 12 | TYPE_TABLE
    }

    /// Writes entry `idx` of table `t`, keeping its live count.
    fn set(&mut self, t: usize, idx: usize, pte: u64) {
        let old = std::mem::replace(&mut self.tables[t][idx], pte);
        self.live[t] = self.live[t] + u16::from(pte != 0) - u16::from(old != 0);
    }

    /// Clears entry `idx` of table `t`, which translates `iova` at `level`, and queues the
    /// table for the sweep if that emptied it.
    fn clear(&mut self, t: usize, idx: usize, iova: u64, level: usize) {
        self.set(t, idx, 0);
        if self.live[t] == 0 && t != 0 && !self.queued[t] {
            self.queued[t] = true;
            self.emptied.push((iova, level));
        }
    }

    /// Makes unlinked, all-zero table `t` spare.
    fn retire(&mut self, t: usize) {
        self.live[t] = 0;
        self.queued[t] = false;
        self.spare.push(t);
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
                    self.set(t, idx, pte);
                    (pte >> 12) as usize
                }
                _ => return Err(Errno::EEXIST),
            };
        }
        let idx = index(iova, target);
        let old = self.tables[t][idx];
        if old & TYPE_MASK == TYPE_TABLE && self.live[(old >> 12) as usize] == 0 {
            // An empty table (emptied page by page) where a block goes: the block replaces it.
            self.retire((old >> 12) as usize);
        } else if old != 0 {
            return Err(Errno::EEXIST);
        }
        self.set(t, idx, (phys & ADDR_MASK) | prot.to_pte() | TYPE_LEAF);
        Ok(())
    }

    /// Unmaps `[iova, iova + size)` (`iommu_unmap`), splitting blocks it partly covers;
    /// holes are skipped, and tables whose whole span the range covers are freed. Returns
    /// the bytes that were mapped.
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
                    TYPE_TABLE if i & (span - 1) == 0 && end - i >= span => {
                        // The range covers the whole table: drop it with everything below.
                        self.clear(t, idx, i, level);
                        unmapped += self.free_tree((pte >> 12) as usize, level + 1);
                        i += span;
                        continue 'outer;
                    }
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
                        self.live[n] = ENTRIES as u16;
                        self.set(t, idx, new);
                        t = n;
                    }
                    TYPE_LEAF => {
                        self.clear(t, idx, i, level);
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
        if self.emptied.len() >= SWEEP_AFTER {
            self.sweep();
        }
        unmapped
    }

    /// Frees the emptied tables that are still empty, and the tables above them that this
    /// leaves empty (never the root). An entry whose table was freed or refilled since is
    /// passed over.
    fn sweep(&mut self) {
        'next: for (iova, level) in std::mem::take(&mut self.emptied) {
            let mut path = [(0usize, 0usize); LEVELS];
            let mut t = 0;
            for (l, step) in path.iter_mut().enumerate().take(level) {
                let idx = index(iova, l);
                let pte = self.tables[t][idx];
                if pte & TYPE_MASK != TYPE_TABLE {
                    continue 'next;
                }
                *step = (t, idx);
                t = (pte >> 12) as usize;
            }
            self.queued[t] = false;
            let mut l = level;
            while l > 0 && self.live[t] == 0 {
                let (parent, idx) = path[l - 1];
                self.set(parent, idx, 0);
                self.retire(t);
                (t, l) = (parent, l - 1);
            }
        }
    }

    /// Clears table `t` (at `level`, already unlinked) and the tables below it, and makes
    /// them spare. Returns the bytes their leaves mapped.
    fn free_tree(&mut self, t: usize, level: usize) -> u64 {
        let mut bytes = 0;
        for idx in 0..ENTRIES {
            let pte = std::mem::take(&mut self.tables[t][idx]);
            match pte & TYPE_MASK {
                TYPE_TABLE => bytes += self.free_tree((pte >> 12) as usize, level + 1),
                TYPE_LEAF => bytes += 1 << level_shift(level),
                _ => {}
            }
        }
        self.retire(t);
        bytes
    }

    /// Checks the live counts, the links and the spare list against the tables.
    #[cfg(test)]
    fn check_invariants(&self) {
        let mut linked = vec![false; self.tables.len()];
        linked[0] = true;
        let mut stack = vec![(0usize, 0usize)];
        while let Some((t, level)) = stack.pop() {
            let table = &self.tables[t];
            let live = table.iter().filter(|&&e| e != 0).count();
            assert_eq!(usize::from(self.live[t]), live, "table {t}'s live count");
            for &e in table.iter().filter(|&&e| e & TYPE_MASK == TYPE_TABLE) {
                assert!(level + 1 < LEVELS, "a table entry at the last level");
                let n = (e >> 12) as usize;
                assert!(!std::mem::replace(&mut linked[n], true), "table {n} linked twice");
                stack.push((n, level + 1));
            }
        }
        let mut spare = self.spare.clone();
        spare.sort_unstable();
        let unlinked: Vec<usize> = (0..self.tables.len()).filter(|&t| !linked[t]).collect();
        assert_eq!(spare, unlinked, "the spare list is the unlinked tables");
        assert!(spare.iter().all(|&t| self.live[t] == 0 && !self.queued[t] && self.tables[t].iter().all(|&e| e == 0)));
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
        assert_eq!(pt.table_count(), 2, "the range covered the GiB: the tables under it are freed");
        pt.map(0x40_0000, PhysAddr(0x80_0000), BLOCK, Prot::WRITE).unwrap();
        assert_eq!(pt.translate(0x5f_ffff).unwrap().len, 1);
        pt.check_invariants();
    }

    #[test]
    fn unmapped_tables_are_freed_and_reused() {
        let mut pt = PageTable::new();
        // 8 MiB of pages in two places 512 GiB apart: separate paths from the root.
        for base in [0x1000_0000u64, 0x80_0000_0000] {
            for k in 0..2048 {
                pt.map(base + k * PAGE, PhysAddr(0x4000_0000 + k * PAGE), PAGE, Prot::READ).unwrap();
            }
        }
        // Per place: one table at each of levels 1 and 2, and four last-level tables.
        assert_eq!(pt.table_count(), 1 + 2 * 6);
        // One unmap covering four last-level tables frees them at once.
        assert_eq!(pt.unmap(0x80_0000_0000, 2048 * PAGE), 2048 * PAGE);
        assert_eq!(pt.table_count(), 1 + 6 + 2);
        // Part of a table frees nothing.
        assert_eq!(pt.unmap(0x1000_0000, 511 * PAGE), 511 * PAGE);
        assert_eq!(pt.table_count(), 1 + 6 + 2);
        pt.check_invariants();
        // Mapping and unmapping a few pages, each time under a new 2 MiB, empties a table
        // each round: the sweep bounds how many stay, and the arena reuses their pages.
        for round in 0..200u64 {
            let iova = 0x40_0000_0000 + round * BLOCK * 3;
            pt.map(iova, PhysAddr(0x8000_0000), 3 * PAGE, Prot::WRITE).unwrap();
            assert_eq!(pt.unmap(iova, 3 * PAGE), 3 * PAGE);
            assert!(pt.table_count() <= 1 + 6 + 2 + 1 + SWEEP_AFTER, "round {round}: {}", pt.table_count());
        }
        assert!(pt.tables.len() <= 1 + 2 * 6 + 1 + SWEEP_AFTER, "the arena stops growing");
        pt.check_invariants();
        // One buffer mapped and unmapped in place empties its table every time, yet its
        // path is made once and reused, not freed and made again.
        let buffer = 0x50_0000_0000;
        pt.map(buffer, PhysAddr(0x8000_0000), PAGE, Prot::WRITE).unwrap();
        assert_eq!(pt.unmap(buffer, PAGE), PAGE);
        let (count, arena) = (pt.table_count(), pt.tables.len());
        for _ in 0..100 {
            pt.map(buffer, PhysAddr(0x8000_0000), PAGE, Prot::WRITE).unwrap();
            assert_eq!(pt.unmap(buffer, PAGE), PAGE);
        }
        assert_eq!((pt.table_count(), pt.tables.len()), (count, arena));
        pt.check_invariants();
        assert_eq!(pt.unmap(0, 1 << IOVA_BITS), (2048 - 511) * PAGE);
        assert_eq!((pt.table_count(), pt.mapped_bytes()), (1, 0));
        pt.check_invariants();
    }

    #[test]
    fn failed_map_leaves_nothing_behind() {
        let mut pt = PageTable::new();
        pt.map(0x3000, PhysAddr(0x3000), 0x1000, Prot::READ).unwrap();
        assert_eq!(pt.map(0x1000, PhysAddr(0x9000), 0x4000, Prot::READ), Err(Errno::EEXIST));
        assert_eq!(pt.translate(0x1000), None);
        assert_eq!(pt.mapped_bytes(), 0x1000);
        pt.check_invariants();
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Random maps (pages and blocks) and unmaps (splitting blocks) over three
        /// places in the IOVA space agree with a page-by-page model, and the tables stay
        /// consistent: counts right, nothing empty linked, every freed page spare.
        #[test]
        fn maps_and_unmaps_agree_with_a_model(
            ops in proptest::collection::vec((
                proptest::prelude::any::<bool>(),
                0usize..3,
                // Half the ranges start on a 2 MiB boundary, so blocks are mapped and split.
                proptest::prop_oneof![0u64..1536, (0u64..3).prop_map(|b| b * 512)],
                proptest::prop_oneof![1u64..1024, proptest::prelude::Just(512u64), proptest::prelude::Just(1024u64)],
            ), 1..60),
        ) {
            const PLACES: [u64; 3] = [0, 0x7f_c000_0000, 0x8000_0000_0000 - 0x4000_0000];
            let mut pt = PageTable::new();
            let mut model = std::collections::BTreeMap::new();
            for (map, place, first, pages) in ops {
                let iova = PLACES[place] + first * PAGE;
                let len = pages.min(1536 - first).max(1) * PAGE;
                // Physical address equal to the IOVA's low 40 bits: blocks where aligned.
                let phys = iova & ((1 << 40) - 1);
                if map {
                    let free = (0..len / PAGE).all(|k| !model.contains_key(&(iova + k * PAGE)));
                    let got = pt.map(iova, PhysAddr(phys), len, Prot::READ_WRITE);
                    proptest::prop_assert_eq!(got.is_ok(), free);
                    if free {
                        model.extend((0..len / PAGE).map(|k| (iova + k * PAGE, phys + k * PAGE)));
                    }
                } else {
                    let had = (0..len / PAGE).filter(|k| model.remove(&(iova + k * PAGE)).is_some()).count() as u64;
                    proptest::prop_assert_eq!(pt.unmap(iova, len), had * PAGE);
                }
                pt.check_invariants();
                proptest::prop_assert_eq!(pt.mapped_bytes(), model.len() as u64 * PAGE);
            }
            for place in PLACES {
                for k in 0..1536 {
                    let iova = place + k * PAGE;
                    proptest::prop_assert_eq!(pt.iova_to_phys(iova).map(|p| p.0), model.get(&iova).copied());
                }
            }
            // Unmapped page by page, the emptied tables wait for a sweep, but never more
            // than SWEEP_AFTER of them (with the tables above them, two per place).
            for &iova in model.keys() {
                proptest::prop_assert_eq!(pt.unmap(iova, PAGE), PAGE);
            }
            pt.check_invariants();
            proptest::prop_assert!(pt.table_count() <= 1 + 2 * PLACES.len() + SWEEP_AFTER);
            proptest::prop_assert_eq!(pt.unmap(0, 1 << IOVA_BITS), 0);
            proptest::prop_assert_eq!(pt.table_count(), 1);
        }
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
