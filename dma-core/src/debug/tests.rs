//! The containing lookup on synthetic bus addresses: which entry wins, the index kept in
//! step with the buckets, and syncs racing unmaps.

use std::panic::Location;
use std::sync::{Arc, Mutex};

use super::*;

const G: u64 = GRANULE;

/// A tracking state whose reports land in the returned list.
fn debug() -> (Arc<Debug>, Arc<Mutex<Vec<ErrorKind>>>) {
    let d = Debug::new(64, false);
    let kinds = Arc::new(Mutex::new(Vec::new()));
    let k = Arc::clone(&kinds);
    d.set_sink(Some(Arc::new(move |r: &Report| k.lock().unwrap().push(r.kind))));
    (Arc::new(d), kinds)
}

#[track_caller]
fn call(dev: u64, dma: u64, size: usize) -> Call {
    Call {
        dev,
        dma: DmaAddr(dma),
        size,
        dir: Direction::Bidirectional,
        kind: EntryKind::Single,
        cpu: 0,
        sg_ents: 0,
        caller: Caller::Rust(Location::caller()),
    }
}

fn map(d: &Debug, dev: u64, dma: u64, size: usize) {
    d.add("t", &call(dev, dma, size), true, false, None, false);
}

fn unmap(d: &Debug, dev: u64, dma: u64, size: usize) {
    d.remove("t", &call(dev, dma, size));
}

/// The (start, size) of the entry the lookup picks.
fn found(d: &Debug, dev: u64, dma: u64) -> Option<(u64, usize)> {
    let mut hit = None;
    d.with_containing(dev, dma, |e| hit = Some((e.dma, e.size)));
    hit
}

#[test]
fn the_nearest_start_wins_across_buckets_and_index() {
    let (d, kinds) = debug();
    let base = 0x1000_0000;
    map(&d, 1, base, 4 << 20);
    map(&d, 1, base + 0x30_0000 - 0x800, 4096);
    map(&d, 1, base + 0x20_0000, 3 * G as usize);
    assert_eq!(found(&d, 1, base + 0x30_0400), Some((base + 0x30_0000 - 0x800, 4096)), "the straddling one");
    assert_eq!(found(&d, 1, base + 0x30_0800), Some((base, 4 << 20)), "past its end: the 4 MiB one");
    assert_eq!(found(&d, 1, base + 0x20_4000), Some((base + 0x20_0000, 3 * G as usize)), "24 KiB beats 4 MiB");
    assert_eq!(found(&d, 1, base + 0x20_6000), Some((base, 4 << 20)));
    assert_eq!(found(&d, 2, base + 0x20_4000), None, "another device's");
    assert_eq!(found(&d, 1, base + (4 << 20)), None, "past the end");
    assert_eq!(found(&d, 1, base - 1), None, "before the start");
    assert_eq!(kinds.lock().unwrap().len(), 0);
}

#[test]
fn a_bucket_alias_128_mib_back_does_not_shadow_a_nearer_entry() {
    let (d, _) = debug();
    let wrap = (HASH_SIZE as u64) << HASH_SHIFT;
    map(&d, 1, 0, 2 * wrap as usize);
    map(&d, 1, wrap - 0x1000, 0x2000);
    assert_eq!(bucket_of(0), bucket_of(wrap), "one bucket");
    assert_eq!(found(&d, 1, wrap + 0x100), Some((wrap - 0x1000, 0x2000)), "the one starting 4 KiB back");
    assert_eq!(found(&d, 1, wrap + 0x1000), Some((0, 2 * wrap as usize)), "past it: the 256 MiB one");
}

#[test]
fn empty_and_one_granule_entries_are_found_only_inside() {
    let (d, _) = debug();
    map(&d, 1, 5 * G + 7, 0);
    map(&d, 1, 9 * G - 1, G as usize);
    assert_eq!(found(&d, 1, 5 * G + 7), Some((5 * G + 7, 0)), "an empty entry holds its start");
    assert_eq!(found(&d, 1, 5 * G + 8), None);
    assert_eq!(found(&d, 1, 10 * G - 2), Some((9 * G - 1, G as usize)), "its last byte, a granule on");
    assert_eq!(found(&d, 1, 10 * G - 1), None);
    assert_eq!(found(&d, 1, 0), None, "the first granule has none before it");
}

#[test]
fn unmaps_and_releases_keep_the_index_in_step() {
    let (d, kinds) = debug();
    let (a, b) = (0x4000_0000, 0x5000_0000);
    map(&d, 1, a, 4 << 20);
    map(&d, 1, a, 4 << 20);
    map(&d, 2, b, 8 << 20);
    map(&d, 3, b, 8 << 20);
    unmap(&d, 1, a, 4 << 20);
    assert_eq!(found(&d, 1, a + (3 << 20)), Some((a, 4 << 20)), "one of two mapped at one start left");
    unmap(&d, 1, a, 4 << 20);
    assert_eq!(found(&d, 1, a + (3 << 20)), None);
    let (deep_a, deep_b) = (a + (3 << 20), b + (6 << 20));
    assert_eq!(d.large.read().unwrap().nearest(1, deep_a, deep_a), None, "both records gone");
    d.device_released("t", 2);
    assert_eq!(*kinds.lock().unwrap(), vec![ErrorKind::PendingAtRelease]);
    assert_eq!(found(&d, 2, deep_b), None);
    assert_eq!(d.large.read().unwrap().nearest(2, deep_b, deep_b), None, "released with the device");
    assert_eq!(found(&d, 3, deep_b), Some((b, 8 << 20)), "another device's survives");
    d.device_released("t", 3);
    assert!(d.large.read().unwrap().is_empty());
}

#[test]
fn an_index_record_whose_entry_is_gone_is_skipped() {
    let (d, _) = debug();
    let base = 0x2000_0000;
    map(&d, 1, base, 8 << 20);
    // As a concurrent unmap leaves it between its bucket and the index.
    d.large().insert(1, base + (1 << 20), 4 << 20);
    assert_eq!(found(&d, 1, base + (3 << 20)), Some((base, 8 << 20)));
    d.large().insert(1, base, 2 << 20);
    assert_eq!(found(&d, 1, base + (1 << 20)), Some((base, 8 << 20)), "same start, the live size");
}

#[test]
fn syncs_racing_maps_and_unmaps_of_large_entries_neither_deadlock_nor_misfind() {
    let (d, kinds) = debug();
    let base = 0x3000_0000;
    map(&d, 1, base, 8 << 20);
    let churn = {
        let d = Arc::clone(&d);
        std::thread::spawn(move || {
            for i in 0..2000u64 {
                let start = base + (i % 64) * 0x2_0000;
                map(&d, 1, start, 1 << 20);
                unmap(&d, 1, start, 1 << 20);
            }
        })
    };
    for i in 0..2000u64 {
        let at = base + (6 << 20) + (i % 97) * 64;
        d.sync("t", &call(1, at, 64), i % 2 == 0, None);
    }
    churn.join().unwrap();
    assert_eq!(*kinds.lock().unwrap(), vec![], "every sync finds an entry");
    assert_eq!(found(&d, 1, base + (5 << 20)), Some((base, 8 << 20)));
}
