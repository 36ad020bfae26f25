//! The buddy page allocator over page-frame numbers, after the kernel's `mm/page_alloc.c`.
//!
//! [`Buddy`] manages one contiguous span of pfns and hands out naturally aligned blocks of
//! `2^order` pages. It owns no memory: it is an index allocator, so it is safe code through and
//! through and easy to fuzz. Pages start reserved and join the allocator through
//! [`Buddy::add_free_range`], as the kernel's `memblock_free_all` releases boot memory.
//!
//! Like the kernel's `struct page`, every page has a small record: a state byte (reserved,
//! taken, head or tail of a free block, head or tail of an allocated block; a head also stores
//! its order, as `page_private` does) and two `u32` links that thread free block heads into one
//! doubly linked list per order (`free_area[order].free_list`). That is 9 bytes a page, and it
//! makes every split and merge step O(1): finding a buddy is an XOR and a state compare, and
//! unlinking it needs no search. A bitmask of non-empty orders finds the smallest fitting block
//! with one `trailing_zeros`.
//!
//! Blocks are aligned on the absolute pfn, not on the offset into the span, so a block of order
//! `k` always covers physical addresses aligned to `2^k` pages whatever the span's base.
//!
//! The free lists are LIFO: a freed (or merged) block goes to the head of its list and the next
//! allocation of that order takes it, so recently used pages, likely still in the CPU caches,
//! are reused first.

#![forbid(unsafe_code)]

use std::fmt;

/// The largest block order: a block holds at most `2^MAX_ORDER` pages (4 MiB with 4 KiB pages),
/// like the kernel's `MAX_PAGE_ORDER`.
pub const MAX_ORDER: u32 = 10;

const NR_ORDERS: usize = MAX_ORDER as usize + 1;

/// End of a free list.
const NIL: u32 = u32::MAX;

// Page states. A head byte carries its block's order in the low four bits.
const RESERVED: u8 = 0x00;
const TAKEN: u8 = 0x01;
const FREE_TAIL: u8 = 0x02;
const ALLOC_TAIL: u8 = 0x03;
const FREE_HEAD: u8 = 0x40;
const ALLOC_HEAD: u8 = 0x80;
const ORDER_BITS: u8 = 0x0f;

const fn free_head(order: u32) -> u8 {
    FREE_HEAD | order as u8
}

const fn alloc_head(order: u32) -> u8 {
    ALLOC_HEAD | order as u8
}

const fn is_free(state: u8) -> bool {
    state == FREE_TAIL || state & !ORDER_BITS == FREE_HEAD
}

const fn is_alloc_head(state: u8) -> bool {
    state & !ORDER_BITS == ALLOC_HEAD
}

/// Why a [`Buddy`] operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuddyError {
    /// The pfn or range does not lie inside the allocator's span.
    OutOfSpan,
    /// The block is not allocated: a double free, a pfn that was never returned by an
    /// allocation (a tail page, a free, reserved or taken page), or, for
    /// [`Buddy::free_range`], a page that was not taken by [`Buddy::take_range`].
    NotAllocated,
    /// The pfn is not aligned to the block size of the given order.
    Misaligned,
    /// The order exceeds [`MAX_ORDER`] or differs from the order the block was allocated with.
    BadOrder,
    /// Some page of the range is not free (for [`Buddy::take_range`]) or not reserved (for
    /// [`Buddy::add_free_range`]).
    Busy,
}

impl fmt::Display for BuddyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OutOfSpan => "page range outside the allocator's span",
            Self::NotAllocated => "pages are not allocated (double free or never allocated)",
            Self::Misaligned => "pfn is not aligned to the block order",
            Self::BadOrder => "order is too large or not the order the block was allocated with",
            Self::Busy => "some page of the range is in use",
        })
    }
}

impl std::error::Error for BuddyError {}

/// A buddy allocator of pfns over `[base_pfn, base_pfn + span)`.
///
/// # Invariants
///
/// - Every block on free list `k` starts at a pfn aligned to `2^k`, lies inside the span, has
///   state `free_head(k)` on its first page and `FREE_TAIL` on the others, and no two blocks
///   overlap. Every page in state `FREE_TAIL` or `free_head(_)` belongs to such a block.
/// - No free block of order `k < MAX_ORDER` has a buddy that is also a free block of order `k`
///   (they would have been merged), so the free set is always in its unique, fully merged form.
/// - Every allocated block of order `k` is aligned to `2^k`, inside the span, has state
///   `alloc_head(k)` on its first page and `ALLOC_TAIL` on the others.
/// - `nr_free` is the number of pages in free blocks; bit `k` of `nonempty` is set exactly when
///   list `k` is non-empty, and `blocks[k]` is its length.
/// - `span <= u32::MAX`, so the list terminator `NIL` is never a page index and page indices
///   convert to `usize` losslessly on 32-bit targets too; `base + span` does not overflow.
pub struct Buddy {
    base: u64,
    span: u64,
    state: Vec<u8>,
    next: Vec<u32>,
    prev: Vec<u32>,
    heads: [u32; NR_ORDERS],
    blocks: [u32; NR_ORDERS],
    nonempty: u32,
    nr_free: u64,
}

impl fmt::Debug for Buddy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buddy")
            .field("base_pfn", &self.base)
            .field("span", &self.span)
            .field("nr_free", &self.nr_free)
            .field("free_blocks_per_order", &self.blocks)
            .finish()
    }
}

impl Buddy {
    /// Creates an allocator for `[base_pfn, base_pfn + span)` with every page reserved.
    ///
    /// # Panics
    ///
    /// If `span > u32::MAX` or `base_pfn + span` overflows `u64`.
    pub fn new(base_pfn: u64, span: u64) -> Buddy {
        assert!(span <= u64::from(u32::MAX), "buddy span of {span} pages is too large");
        assert!(base_pfn.checked_add(span).is_some(), "buddy span overflows the pfn space");
        let len = span as usize;
        // INVARIANT: no page is free or allocated, every list is empty.
        Buddy {
            base: base_pfn,
            span,
            state: vec![RESERVED; len],
            next: vec![NIL; len],
            prev: vec![NIL; len],
            heads: [NIL; NR_ORDERS],
            blocks: [0; NR_ORDERS],
            nonempty: 0,
            nr_free: 0,
        }
    }

    /// The first pfn of the span.
    pub fn base_pfn(&self) -> u64 {
        self.base
    }

    /// The number of pages in the span, free or not.
    pub fn span(&self) -> u64 {
        self.span
    }

    /// The number of free pages.
    pub fn nr_free(&self) -> u64 {
        self.nr_free
    }

    /// The order of the largest free block, or `None` when no page is free.
    pub fn largest_free_order(&self) -> Option<u32> {
        self.nonempty.checked_ilog2()
    }

    /// Makes the reserved pages `[pfn, pfn + count)` free, merged into maximal aligned blocks
    /// together with any free neighbours.
    ///
    /// # Errors
    ///
    /// [`BuddyError::OutOfSpan`] if the range leaves the span; [`BuddyError::Busy`] if some
    /// page of it is not reserved (already added, allocated or taken).
    pub fn add_free_range(&mut self, pfn: u64, count: u64) -> Result<(), BuddyError> {
        let (start, end) = self.range(pfn, count)?;
        if self.state[start..end].iter().any(|&s| s != RESERVED) {
            return Err(BuddyError::Busy);
        }
        self.release_range(pfn, count);
        Ok(())
    }

    /// Allocates `2^order` pages aligned to `2^order` and returns the first pfn, or `None` if
    /// no free block is large enough or `order > MAX_ORDER`.
    ///
    /// The smallest sufficient free block is split, keeping its lower part; the most recently
    /// freed block of an order is used first.
    #[must_use]
    pub fn alloc(&mut self, order: u32) -> Option<u64> {
        if order > MAX_ORDER {
            return None;
        }
        let fitting = self.nonempty >> order;
        if fitting == 0 {
            return None;
        }
        let found = order + fitting.trailing_zeros();
        let index = self.heads[found as usize] as usize;
        self.unlink(index, found);
        Some(self.carve(index, found, order))
    }

    /// Like [`alloc`](Self::alloc), but the block lies entirely below `limit_pfn` (exclusive).
    ///
    /// This scans the free lists, so it costs O(free blocks) instead of O(1); it serves zones
    /// whose limit falls inside the span.
    #[must_use]
    pub fn alloc_below(&mut self, order: u32, limit_pfn: u64) -> Option<u64> {
        if order > MAX_ORDER {
            return None;
        }
        if limit_pfn >= self.base + self.span {
            return self.alloc(order);
        }
        let size = 1u64 << order;
        for found in order..=MAX_ORDER {
            let mut index = self.heads[found as usize];
            while index != NIL {
                // The lowest sub-block is the one carve() keeps.
                if self.base + u64::from(index) + size <= limit_pfn {
                    self.unlink(index as usize, found);
                    return Some(self.carve(index as usize, found, order));
                }
                index = self.next[index as usize];
            }
        }
        None
    }

    /// Frees the block of `2^order` pages at `pfn` that [`alloc`](Self::alloc) returned, and
    /// merges it with free buddies up to [`MAX_ORDER`].
    ///
    /// # Errors
    ///
    /// [`BuddyError::BadOrder`] if `order > MAX_ORDER` or the block was allocated with another
    /// order; [`BuddyError::OutOfSpan`] if `pfn` is outside the span; [`BuddyError::Misaligned`]
    /// if `pfn` is not aligned to `2^order`; [`BuddyError::NotAllocated`] if `pfn` is not the
    /// first page of an allocated block (double free). Nothing changes on error.
    pub fn free(&mut self, pfn: u64, order: u32) -> Result<(), BuddyError> {
        if order > MAX_ORDER {
            return Err(BuddyError::BadOrder);
        }
        let index = self.index(pfn).ok_or(BuddyError::OutOfSpan)?;
        if pfn & ((1 << order) - 1) != 0 {
            return Err(BuddyError::Misaligned);
        }
        match self.state[index] {
            s if s == alloc_head(order) => {}
            s if is_alloc_head(s) => return Err(BuddyError::BadOrder),
            _ => return Err(BuddyError::NotAllocated),
        }
        self.mark_tails(index, order, FREE_TAIL);
        self.release(pfn, order);
        Ok(())
    }

    /// True when `pfn` is the first page of a block allocated with `order` (what
    /// [`free`](Self::free) would accept).
    pub fn is_allocated(&self, pfn: u64, order: u32) -> bool {
        order <= MAX_ORDER && self.index(pfn).is_some_and(|i| self.state[i] == alloc_head(order))
    }

    /// Removes the free pages `[pfn, pfn + count)`, of any alignment, from the free lists,
    /// splitting the blocks around them, as the kernel's `alloc_contig_range` does. It places a
    /// swiotlb pool or CMA area at a fixed address. [`free_range`](Self::free_range) undoes it.
    ///
    /// # Errors
    ///
    /// [`BuddyError::OutOfSpan`] if the range leaves the span; [`BuddyError::Busy`] if some page
    /// of it is not free. Nothing changes on error.
    pub fn take_range(&mut self, pfn: u64, count: u64) -> Result<(), BuddyError> {
        let (start, end) = self.range(pfn, count)?;
        if !self.state[start..end].iter().all(|&s| is_free(s)) {
            return Err(BuddyError::Busy);
        }
        let end_pfn = pfn + count;
        let mut cur = pfn;
        while cur < end_pfn {
            let (head, order) = self.free_block_containing(cur);
            self.unlink(self.offset(head), order);
            self.nr_free -= 1 << order;
            let block_end = head + (1 << order);
            let cut_end = block_end.min(end_pfn);
            let (from, to) = (self.offset(cur), self.offset(cut_end));
            self.state[from..to].fill(TAKEN);
            // Only the first block can start before the range: later ones start at `cur`.
            if head < cur {
                self.release_range(head, cur - head);
            }
            if cut_end < block_end {
                self.release_range(cut_end, block_end - cut_end);
            }
            cur = cut_end;
        }
        Ok(())
    }

    /// Gives back pages `[pfn, pfn + count)` taken by [`take_range`](Self::take_range), of any
    /// alignment and possibly only part of what was taken; they become free and merge.
    ///
    /// # Errors
    ///
    /// [`BuddyError::OutOfSpan`] if the range leaves the span; [`BuddyError::NotAllocated`] if
    /// some page of it is not taken. Nothing changes on error.
    pub fn free_range(&mut self, pfn: u64, count: u64) -> Result<(), BuddyError> {
        let (start, end) = self.range(pfn, count)?;
        if self.state[start..end].iter().any(|&s| s != TAKEN) {
            return Err(BuddyError::NotAllocated);
        }
        self.release_range(pfn, count);
        Ok(())
    }

    /// Checks every invariant of the type by walking the lists and the state array.
    ///
    /// # Panics
    ///
    /// With a message naming the first broken invariant.
    #[cfg(any(test, feature = "debug-checks"))]
    pub fn check_invariants(&self) {
        let mut covered = vec![false; self.state.len()];
        let mut free_pages = 0u64;
        for order in 0..=MAX_ORDER {
            let size = 1u64 << order;
            let mut index = self.heads[order as usize];
            let mut prev = NIL;
            let mut count = 0u32;
            while index != NIL {
                let i = index as usize;
                let pfn = self.base + u64::from(index);
                assert!(i < self.state.len(), "order {order} list links to index {i} outside span");
                assert_eq!(self.prev[i], prev, "broken prev link at pfn {pfn:#x}");
                assert_eq!(pfn % size, 0, "free block {pfn:#x} misaligned for order {order}");
                assert!(pfn + size <= self.base + self.span, "free block {pfn:#x} leaves span");
                assert_eq!(self.state[i], free_head(order), "free block {pfn:#x} head state");
                let pages = i..i + size as usize;
                let overlap = covered[pages.clone()].iter().any(|&c| c);
                assert!(!overlap, "free block {pfn:#x} overlaps another free block");
                covered[pages.clone()].fill(true);
                let tails_ok = self.state[pages.start + 1..pages.end].iter().all(|&s| s == FREE_TAIL);
                assert!(tails_ok, "free block {pfn:#x} tail state");
                if order < MAX_ORDER {
                    let buddy = pfn ^ size;
                    let mergeable = self.index(buddy).is_some_and(|b| self.state[b] == free_head(order));
                    assert!(!mergeable, "free block {pfn:#x} not merged with buddy {buddy:#x}");
                }
                free_pages += size;
                count += 1;
                prev = index;
                index = self.next[i];
            }
            assert_eq!(count, self.blocks[order as usize], "block count of order {order}");
            let bit = self.nonempty & (1 << order) != 0;
            assert_eq!(bit, count > 0, "non-empty bit of order {order}");
        }
        assert_eq!(self.nonempty >> NR_ORDERS, 0, "non-empty bit above MAX_ORDER");
        assert_eq!(free_pages, self.nr_free, "nr_free does not match the free lists");

        let mut i = 0;
        while i < self.state.len() {
            let state = self.state[i];
            let pfn = self.base + i as u64;
            if is_alloc_head(state) {
                let order = u32::from(state & ORDER_BITS);
                let size = 1usize << order;
                assert!(order <= MAX_ORDER, "allocated block {pfn:#x} has order {order}");
                assert_eq!(pfn % size as u64, 0, "allocated block {pfn:#x} misaligned");
                assert!(i + size <= self.state.len(), "allocated block {pfn:#x} leaves span");
                let tails_ok = self.state[i + 1..i + size].iter().all(|&s| s == ALLOC_TAIL);
                assert!(tails_ok, "allocated block {pfn:#x} tail state");
                i += size;
                continue;
            }
            match state {
                ALLOC_TAIL => panic!("allocated tail page {pfn:#x} without a head"),
                RESERVED | TAKEN => assert!(!covered[i], "page {pfn:#x} listed free but not free"),
                _ => assert!(is_free(state) && covered[i], "free page {pfn:#x} not on a list"),
            }
            i += 1;
        }
    }

    /// The page index of `pfn`, if it lies in the span.
    #[inline]
    fn index(&self, pfn: u64) -> Option<usize> {
        let offset = pfn.checked_sub(self.base)?;
        (offset < self.span).then_some(offset as usize)
    }

    /// The page index of a pfn known to lie in the span, or one past its end.
    #[inline]
    fn offset(&self, pfn: u64) -> usize {
        (pfn - self.base) as usize
    }

    /// The page indices of `[pfn, pfn + count)`, checked to lie in the span.
    fn range(&self, pfn: u64, count: u64) -> Result<(usize, usize), BuddyError> {
        let end = pfn.checked_add(count).ok_or(BuddyError::OutOfSpan)?;
        if pfn < self.base || end > self.base + self.span {
            return Err(BuddyError::OutOfSpan);
        }
        Ok((self.offset(pfn), self.offset(end)))
    }

    #[inline]
    fn push(&mut self, index: usize, order: u32) {
        let o = order as usize;
        let old = self.heads[o];
        self.next[index] = old;
        self.prev[index] = NIL;
        if old != NIL {
            self.prev[old as usize] = index as u32;
        }
        self.heads[o] = index as u32;
        self.blocks[o] += 1;
        self.nonempty |= 1 << order;
    }

    #[inline]
    fn unlink(&mut self, index: usize, order: u32) {
        let o = order as usize;
        let (next, prev) = (self.next[index], self.prev[index]);
        if prev == NIL {
            self.heads[o] = next;
        } else {
            self.next[prev as usize] = next;
        }
        if next != NIL {
            self.prev[next as usize] = prev;
        }
        self.blocks[o] -= 1;
        if next == NIL && prev == NIL {
            self.nonempty &= !(1 << order);
        }
    }

    /// Turns the unlinked free block of order `have` at `index` into an allocated block of
    /// order `want`, handing the upper halves back (the kernel's `expand()`).
    #[inline]
    fn carve(&mut self, index: usize, mut have: u32, want: u32) -> u64 {
        while have > want {
            have -= 1;
            let upper = index + (1 << have);
            // INVARIANT: the upper half is aligned and its pages are already FREE_TAIL; its
            // buddy, the lower half, is not free, so it is correctly unmerged.
            self.state[upper] = free_head(have);
            self.push(upper, have);
        }
        // INVARIANT: the block's pages were free, now they are one allocated block.
        self.state[index] = alloc_head(want);
        self.mark_tails(index, want, ALLOC_TAIL);
        self.nr_free -= 1 << want;
        self.base + index as u64
    }

    /// Sets the state of the tail pages of the block of order `order` at `index`.
    #[inline]
    fn mark_tails(&mut self, index: usize, order: u32, state: u8) {
        // An order-0 block has no tail. Skipping the empty fill matters: it is a memset call
        // whose (masked, empty) store would stall the load of the buddy's state that follows.
        if order > 0 {
            self.state[index + 1..index + (1 << order)].fill(state);
        }
    }

    /// Puts the block of order `order` at `pfn`, whose tail pages are already `FREE_TAIL` and
    /// which is on no list, onto the free lists, merging with free buddies (the kernel's
    /// `__free_one_page()`).
    #[inline]
    fn release(&mut self, mut pfn: u64, mut order: u32) {
        self.nr_free += 1 << order;
        while order < MAX_ORDER {
            let buddy = pfn ^ (1 << order);
            let Some(b) = self.index(buddy) else { break };
            if self.state[b] != free_head(order) {
                break;
            }
            self.unlink(b, order);
            let upper = self.offset(pfn.max(buddy));
            self.state[upper] = FREE_TAIL;
            pfn = pfn.min(buddy);
            order += 1;
        }
        let index = self.offset(pfn);
        // INVARIANT: merging stopped, so the block's buddy is not a free block of its order.
        self.state[index] = free_head(order);
        self.push(index, order);
    }

    /// Frees `[pfn, pfn + count)`, whose pages are on no list, as maximal aligned blocks.
    fn release_range(&mut self, pfn: u64, count: u64) {
        let (start, end) = (self.offset(pfn), self.offset(pfn + count));
        self.state[start..end].fill(FREE_TAIL);
        let end_pfn = pfn + count;
        let mut cur = pfn;
        while cur < end_pfn {
            let mut order = cur.trailing_zeros().min(MAX_ORDER);
            while 1u64 << order > end_pfn - cur {
                order -= 1;
            }
            self.release(cur, order);
            cur += 1 << order;
        }
    }

    /// The free block that contains the free page `pfn`.
    fn free_block_containing(&self, pfn: u64) -> (u64, u32) {
        // The block of order k holding `pfn` can only start at `pfn` rounded down to 2^k.
        for order in 0..=MAX_ORDER {
            let head = pfn & !((1u64 << order) - 1);
            match self.index(head) {
                Some(h) if self.state[h] == free_head(order) => return (head, order),
                Some(_) => {}
                None => break,
            }
        }
        unreachable!("free page {pfn:#x} belongs to no free block");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// An allocator over `[base, base + span)` with every page added.
    fn full(base: u64, span: u64) -> Buddy {
        let mut b = Buddy::new(base, span);
        b.add_free_range(base, span).unwrap();
        b.check_invariants();
        b
    }

    #[test]
    fn new_allocator_has_every_page_reserved() {
        let mut b = Buddy::new(100, 64);
        assert_eq!((b.base_pfn(), b.span(), b.nr_free()), (100, 64, 0));
        assert_eq!(b.largest_free_order(), None);
        assert_eq!(b.alloc(0), None);
        assert_eq!(b.free(100, 0), Err(BuddyError::NotAllocated));
        assert_eq!(b.take_range(100, 1), Err(BuddyError::Busy));
        b.check_invariants();
    }

    #[test]
    fn added_pages_merge_into_maximal_blocks_aligned_on_absolute_pfn() {
        // [5, 30): 5 | 6..8 | 8..16 | 16..24 | 24..28 | 28..30, aligned on the pfn, not on the
        // offset from base 5.
        let mut b = full(5, 25);
        assert_eq!(b.blocks, [1, 2, 1, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b.largest_free_order(), Some(3));
        let got = [b.alloc(3).unwrap(), b.alloc(3).unwrap()];
        assert!(got.iter().all(|p| p % 8 == 0), "{got:?}");
        assert_eq!(b.alloc(3), None);
        // Two ranges added separately still merge across their boundary.
        let mut b = Buddy::new(0, 2048);
        b.add_free_range(0, 700).unwrap();
        b.add_free_range(700, 1348).unwrap();
        b.check_invariants();
        assert_eq!(b.blocks, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        // Blocks never exceed MAX_ORDER.
        assert_eq!(b.largest_free_order(), Some(MAX_ORDER));
    }

    #[test]
    fn alloc_splits_the_smallest_block_and_free_merges_it_back() {
        let mut b = full(0, 1024);
        assert_eq!(b.alloc(0), Some(0));
        b.check_invariants();
        // The order-10 block split into one free block of every order 0..10.
        assert_eq!(b.blocks, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
        assert_eq!(b.nr_free(), 1023);
        // The next order-0 request takes the order-0 remnant, no further split.
        assert_eq!(b.alloc(0), Some(1));
        assert_eq!(b.alloc(2), Some(4));
        b.free(0, 0).unwrap();
        b.free(4, 2).unwrap();
        b.free(1, 0).unwrap();
        b.check_invariants();
        assert_eq!(b.blocks, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(b.nr_free(), 1024);
    }

    #[test]
    fn free_lists_are_lifo() {
        let mut b = full(0, 8);
        let pages: Vec<u64> = (0..8).map(|_| b.alloc(0).unwrap()).collect();
        assert_eq!(pages, (0..8).collect::<Vec<_>>());
        // Neither freed page can merge: their buddies (3 and 4) are allocated.
        b.free(2, 0).unwrap();
        b.free(5, 0).unwrap();
        assert_eq!(b.alloc(0), Some(5), "most recently freed page first");
        assert_eq!(b.alloc(0), Some(2));
        b.check_invariants();
    }

    #[test]
    fn bad_frees_are_refused_and_change_nothing() {
        let mut b = full(64, 64);
        let p = b.alloc(2).unwrap();
        let before = format!("{b:?}");
        assert_eq!(b.free(p, 1), Err(BuddyError::BadOrder), "wrong order");
        assert_eq!(b.free(p, MAX_ORDER + 1), Err(BuddyError::BadOrder));
        assert_eq!(b.free(p + 1, 0), Err(BuddyError::NotAllocated), "tail page");
        assert_eq!(b.free(p + 2, 2), Err(BuddyError::Misaligned));
        assert_eq!(b.free(p + 4, 0), Err(BuddyError::NotAllocated), "free page");
        assert_eq!(b.free(63, 0), Err(BuddyError::OutOfSpan));
        assert_eq!(b.free(128, 0), Err(BuddyError::OutOfSpan));
        assert_eq!(format!("{b:?}"), before);
        b.check_invariants();
        b.free(p, 2).unwrap();
        assert_eq!(b.free(p, 2), Err(BuddyError::NotAllocated), "double free");
        assert_eq!(b.nr_free(), 64);
        b.check_invariants();
    }

    #[test]
    fn range_calls_check_span_and_page_states() {
        let mut b = Buddy::new(10, 20);
        assert_eq!(b.add_free_range(9, 2), Err(BuddyError::OutOfSpan));
        assert_eq!(b.add_free_range(29, 2), Err(BuddyError::OutOfSpan));
        assert_eq!(b.add_free_range(u64::MAX, 2), Err(BuddyError::OutOfSpan), "overflow");
        b.add_free_range(10, 10).unwrap();
        assert_eq!(b.add_free_range(15, 10), Err(BuddyError::Busy), "already free");
        assert_eq!(b.take_range(15, 10), Err(BuddyError::Busy), "partly reserved");
        assert_eq!(b.free_range(12, 2), Err(BuddyError::NotAllocated), "free, not taken");
        assert_eq!(b.take_range(u64::MAX, 1), Err(BuddyError::OutOfSpan));
        assert_eq!(b.nr_free(), 10);
        b.check_invariants();
        // Empty ranges inside the span are no-ops.
        b.add_free_range(30, 0).unwrap();
        b.take_range(12, 0).unwrap();
        assert_eq!(b.nr_free(), 10);
    }

    #[test]
    fn take_range_splits_around_an_unaligned_range_and_free_range_restores_it() {
        let mut b = full(0, 64);
        b.take_range(5, 20).unwrap();
        b.check_invariants();
        // Left: 0..4 | 4. Right: 25 | 26..28 | 28..32 | 32..64.
        assert_eq!(b.blocks, [2, 1, 2, 0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(b.nr_free(), 44);
        let before = format!("{b:?}");
        assert_eq!(b.take_range(24, 2), Err(BuddyError::Busy), "overlaps the taken range");
        assert_eq!(format!("{b:?}"), before);
        let mut got = Vec::new();
        while let Some(p) = b.alloc(0) {
            got.push(p);
        }
        assert!(got.iter().all(|p| !(5..25).contains(p)), "a taken page was allocated");
        assert_eq!(got.len(), 44);
        for p in got {
            b.free(p, 0).unwrap();
        }
        // Give the range back in two unaligned pieces.
        b.free_range(5, 7).unwrap();
        assert_eq!(b.free_range(5, 1), Err(BuddyError::NotAllocated), "already given back");
        b.free_range(12, 13).unwrap();
        b.check_invariants();
        assert_eq!(b.blocks, [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn take_range_across_several_blocks() {
        // [0, 3000) is 1024 + 1024 + 512 + 256 + 128 + 32 + 16 + 8 pages.
        let mut b = full(0, 3000);
        b.take_range(1000, 1700).unwrap();
        b.check_invariants();
        assert_eq!(b.nr_free(), 1300);
        assert_eq!(b.take_range(999, 1), Ok(()));
        assert_eq!(b.take_range(2700, 300), Ok(()));
        assert_eq!(b.nr_free(), 999);
        b.free_range(999, 2001).unwrap();
        b.check_invariants();
        assert_eq!(b.nr_free(), 3000);
        assert_eq!(b.blocks, [0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 2]);
    }

    #[test]
    fn alloc_below_respects_the_limit() {
        let mut b = full(0, 2048);
        // LIFO would hand out the upper order-10 block first.
        assert_eq!(b.alloc_below(0, 1024), Some(0));
        assert_eq!(b.alloc_below(1, 2), None, "only page 1 is free below 2");
        assert_eq!(b.alloc_below(0, 2), Some(1));
        assert_eq!(b.alloc_below(10, 1024), None);
        assert_eq!(b.alloc_below(10, 2047), None);
        assert_eq!(b.alloc_below(10, 2048), Some(1024));
        assert_eq!(b.alloc_below(MAX_ORDER + 1, 4096), None);
        assert_eq!(b.alloc_below(0, 0), None);
        let p = b.alloc_below(3, 64).unwrap();
        assert!(p + 8 <= 64 && p % 8 == 0);
        b.check_invariants();
    }

    #[test]
    fn a_million_page_span_works() {
        let mut b = full(1 << 20, 1 << 20);
        let blocks: Vec<u64> = (0..1024).map(|_| b.alloc(MAX_ORDER).unwrap()).collect();
        assert_eq!(b.nr_free(), 0);
        for p in blocks {
            b.free(p, MAX_ORDER).unwrap();
        }
        b.check_invariants();
        assert_eq!(b.nr_free(), 1 << 20);
    }

    #[test]
    fn debug_is_a_short_summary() {
        let s = format!("{:?}", full(0, 1 << 16));
        assert!(s.contains("nr_free: 65536") && s.len() < 200, "{s}");
        assert_eq!(BuddyError::Busy.to_string(), "some page of the range is in use");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Alloc(u32),
        AllocBelow(u32, u64),
        Free(usize),
        BogusFree(u64, u32),
        Take(u64, u64),
        FreeTaken(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..=5).prop_map(Op::Alloc),
            1 => (0u32..=MAX_ORDER + 1).prop_map(Op::Alloc),
            2 => (0u32..=4, any::<u64>()).prop_map(|(o, l)| Op::AllocBelow(o, l)),
            4 => any::<usize>().prop_map(Op::Free),
            1 => (any::<u64>(), 0u32..=MAX_ORDER + 1).prop_map(|(p, o)| Op::BogusFree(p, o)),
            2 => (any::<u64>(), 0u64..80).prop_map(|(p, c)| Op::Take(p, c)),
            1 => any::<usize>().prop_map(Op::FreeTaken),
        ]
    }

    /// Whether an aligned, entirely free run of `2^order` pages lies below `limit`.
    fn free_run_below(b: &Buddy, free: &HashSet<u64>, order: u32, limit: u64) -> bool {
        let size = 1u64 << order;
        let first = b.base_pfn().next_multiple_of(size);
        (first..b.base_pfn() + b.span())
            .step_by(size as usize)
            .any(|p| p + size <= limit && (p..p + size).all(|q| free.contains(&q)))
    }

    proptest! {
        /// Random alloc/free/take sequences keep every invariant, never hand out a page twice
        /// (model: the set of pages in use), report errors exactly when the model predicts them,
        /// and freeing everything restores the starting free state.
        #[test]
        fn random_operations_match_a_model(
            base in 0u64..5000,
            span in 1u64..1500,
            hole in (any::<u64>(), 0u64..100),
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let mut b = Buddy::new(base, span);
            // Add everything but one hole, in two calls.
            let hole_start = base + hole.0 % span;
            let hole_end = (hole_start + hole.1).min(base + span);
            b.add_free_range(base, hole_start - base).unwrap();
            b.add_free_range(hole_end, base + span - hole_end).unwrap();
            b.check_invariants();
            let mut free: HashSet<u64> =
                (base..hole_start).chain(hole_end..base + span).collect();
            let start = (b.nr_free(), b.largest_free_order(), format!("{b:?}"));
            prop_assert_eq!(start.0, free.len() as u64);

            let mut allocated: Vec<(u64, u32)> = Vec::new();
            let mut taken: Vec<(u64, u64)> = Vec::new();
            for op in ops {
                match op {
                    Op::Alloc(order) => match b.alloc(order) {
                        Some(p) => {
                            prop_assert_eq!(p % (1 << order), 0);
                            for q in p..p + (1 << order) {
                                prop_assert!(free.remove(&q), "page {} handed out twice", q);
                            }
                            allocated.push((p, order));
                        }
                        None => prop_assert!(b.largest_free_order().is_none_or(|l| l < order)),
                    },
                    Op::AllocBelow(order, limit) => {
                        let limit = base + limit % (span + 2);
                        match b.alloc_below(order, limit) {
                            Some(p) => {
                                prop_assert!(p % (1 << order) == 0 && p + (1 << order) <= limit);
                                for q in p..p + (1 << order) {
                                    prop_assert!(free.remove(&q), "page {} handed out twice", q);
                                }
                                allocated.push((p, order));
                            }
                            None => prop_assert!(!free_run_below(&b, &free, order, limit)),
                        }
                    }
                    Op::Free(i) if !allocated.is_empty() => {
                        let (p, order) = allocated.swap_remove(i % allocated.len());
                        b.free(p, order).unwrap();
                        free.extend(p..p + (1 << order));
                    }
                    Op::Free(_) => {}
                    Op::BogusFree(p, order) => {
                        let p = base.saturating_sub(2) + p % (span + 4);
                        let before = format!("{b:?}");
                        let res = b.free(p, order);
                        match allocated.iter().position(|&a| a == (p, order)) {
                            Some(i) => {
                                prop_assert_eq!(res, Ok(()));
                                allocated.swap_remove(i);
                                free.extend(p..p + (1 << order));
                            }
                            None => {
                                prop_assert!(res.is_err());
                                prop_assert_eq!(format!("{b:?}"), before);
                            }
                        }
                    }
                    Op::Take(p, count) => {
                        let p = base + p % span;
                        let res = b.take_range(p, count);
                        if p + count > base + span {
                            prop_assert_eq!(res, Err(BuddyError::OutOfSpan));
                        } else if (p..p + count).all(|q| free.contains(&q)) {
                            prop_assert_eq!(res, Ok(()));
                            for q in p..p + count {
                                free.remove(&q);
                            }
                            if count > 0 {
                                taken.push((p, count));
                            }
                        } else {
                            prop_assert_eq!(res, Err(BuddyError::Busy));
                        }
                    }
                    Op::FreeTaken(i) if !taken.is_empty() => {
                        let (p, count) = taken.swap_remove(i % taken.len());
                        b.free_range(p, count).unwrap();
                        free.extend(p..p + count);
                    }
                    Op::FreeTaken(_) => {}
                }
                b.check_invariants();
                prop_assert_eq!(b.nr_free(), free.len() as u64);
            }
            for (p, order) in allocated {
                b.free(p, order).unwrap();
            }
            for (p, count) in taken {
                b.free_range(p, count).unwrap();
            }
            b.check_invariants();
            prop_assert_eq!((b.nr_free(), b.largest_free_order(), format!("{b:?}")), start);
        }
    }
}
