//! Shared set-up of the benches and the latency examples.
//!
//! Criterion benches live in `benches/`, each beside its baseline or peer in the same group.

pub mod cma_pattern {
    //! The fragmented CMA area of `benches/cma.rs` and `examples/cma_latency.rs`: 256 MiB of
    //! 4 KiB pages, about half of them in use in runs of 1 to 4 pages, with a few aligned
    //! 2 MiB holes in the upper half, from a seeded xorshift so every run sees the same.

    use dma_cma::CmaArea;

    /// Pages in the area: 256 MiB of 4 KiB pages.
    pub const PAGES: u64 = 65536;
    /// The request: 2 MiB.
    pub const REQUEST: u64 = 512;
    /// The request's alignment: 2 MiB.
    pub const ALIGN_ORDER: u32 = 9;
    /// First page frame of the area (2 GiB), itself 2 MiB aligned.
    pub const BASE_PFN: u64 = 0x8_0000;
    /// Seed of the fragmentation pattern.
    pub const SEED: u64 = 0x5eed_cafe_f00d_d00d;
    /// Wholly free 2 MiB blocks left in the pattern.
    pub const HOLES: usize = 4;

    /// Marsaglia's xorshift64: deterministic and dependency-free.
    #[derive(Debug)]
    pub struct XorShift(pub u64);

    impl XorShift {
        /// The next number.
        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// A number below `n`.
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }
    }

    /// Which pages are in use: alternating used and free runs of 1 to 4 pages, except `HOLES`
    /// aligned 2 MiB blocks in the upper half left free, so a first-fit search crosses at least half
    /// of the fragmented area before it finds room.
    pub fn fragmentation(seed: u64) -> Vec<bool> {
        let mut rng = XorShift(seed);
        let blocks = PAGES / REQUEST;
        let mut holes = Vec::new();
        while holes.len() < HOLES {
            let block = blocks / 2 + rng.below(blocks / 2);
            if !holes.contains(&block) {
                holes.push(block);
            }
        }
        let mut used = vec![false; PAGES as usize];
        let (mut page, mut in_use) = (0, rng.below(2) == 1);
        while page < PAGES {
            let end = (page + 1 + rng.below(4)).min(PAGES);
            for p in page..end {
                used[p as usize] = in_use && !holes.contains(&(p / REQUEST));
            }
            page = end;
            in_use = !in_use;
        }
        used
    }

    /// A `CmaArea` with exactly the `used` pages allocated.
    pub fn cma_area(used: &[bool]) -> CmaArea {
        let mut area = CmaArea::new("bench", BASE_PFN, PAGES, 0).expect("valid area");
        // First fit hands out single pages in order; then the free ones go back.
        for page in 0..PAGES {
            assert_eq!(area.alloc(1, 0), Some(BASE_PFN + page));
        }
        for (page, _) in (0..).zip(used).filter(|(_, used)| !**used) {
            area.release(BASE_PFN + page, 1).expect("allocated above");
        }
        area
    }
}
