//! Tests of the option parser: every key, defaults, errors, and round trips.

use super::*;
use proptest::prelude::*;

const M: u64 = 1 << 20;
const G: u64 = 1 << 30;

fn parse(s: &str) -> Options {
    Options::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// The message of the error `s` gives.
fn error(s: &str) -> String {
    match Options::parse(s) {
        Ok(o) => panic!("{s:?} parsed as {o:?}"),
        Err(e) => e.to_string(),
    }
}

/// What a good value changes in the defaults.
type Change = fn(&mut Options);

fn sw(slots: usize, areas: Option<usize>, force: SwiotlbForce) -> SwiotlbOptions {
    SwiotlbOptions { slots, areas, force }
}

fn range(base: u64, size: u64) -> MemRange {
    MemRange { base, size }
}

fn cma(size: u64, base: Option<u64>, limit: Option<u64>) -> Option<CmaOptions> {
    Some(CmaOptions { size, base, limit })
}

#[test]
fn empty_string_gives_the_documented_defaults() {
    let o = parse(" \t\n ");
    let want = Options {
        platform: PlatformKind::Sim,
        mem: vec![range(0x80_0000, 248 * M), range(4 * G, 256 * M)],
        zone_dma_bits: 24,
        swiotlb: sw(8192, None, SwiotlbForce::Default),
        cma: None,
        coherent_pool: None,
        iommu_strict: None,
        iommu_passthrough: None,
        dma_debug: DebugMode::Off,
        dma_debug_entries: None,
        cache_line: None,
        host: HostOptions { mem: 16 * M, hugepages: 0, low: None },
    };
    assert_eq!((&o, &o), (&want, &Options::default()));
    let canonical = "platform=sim mem=248M@0x800000,256M@0x100000000 zone_dma_bits=24 \
                     swiotlb=8192 dma_debug=off";
    assert_eq!(o.to_string(), canonical);
}

/// Each good value of each key gives the defaults with exactly one field changed.
#[test]
fn every_key_accepts_its_documented_values() {
    use SwiotlbForce::{Force, NoForce};
    #[rustfmt::skip]
    let cases: &[(&str, Change)] = &[
        ("platform=host", |o| o.platform = PlatformKind::Host),
        ("platform=sim", |_| {}),
        // Order kept; touching ranges are fine.
        ("mem=1G@0,0x1000@4G,4K@0x40000000", |o| o.mem = vec![range(0, G), range(4 * G, 4096), range(G, 4096)]),
        ("mem=4K@0xffffffffffffe000", |o| o.mem = vec![range(u64::MAX - 8191, 4096)]),
        ("zone_dma_bits=32", |o| o.zone_dma_bits = 32),
        ("zone_dma_bits=0x3f", |o| o.zone_dma_bits = 63),
        ("zone_dma_bits=1", |o| o.zone_dma_bits = 1),
        // Slot counts round up to whole 128-slot segments; sizes become 2 KiB slots.
        ("swiotlb=1", |o| o.swiotlb.slots = 128),
        ("swiotlb=128", |o| o.swiotlb.slots = 128),
        ("swiotlb=129", |o| o.swiotlb.slots = 256),
        ("swiotlb=0x4000", |o| o.swiotlb.slots = 16384),
        ("swiotlb=16M", |_| {}),
        ("swiotlb=1K", |o| o.swiotlb.slots = 128),
        ("swiotlb=257k", |o| o.swiotlb.slots = 256),
        ("swiotlb=0", |o| o.swiotlb.slots = 0),
        ("swiotlb=64M,3,force", |o| o.swiotlb = sw(32768, Some(4), Force)),
        ("swiotlb=1,0", |o| o.swiotlb = sw(128, Some(1), SwiotlbForce::Default)),
        ("swiotlb=1,16", |o| o.swiotlb = sw(128, Some(16), SwiotlbForce::Default)),
        ("swiotlb=force", |o| o.swiotlb.force = Force),
        ("swiotlb=4096,force", |o| o.swiotlb = sw(4096, None, Force)),
        // noforce disables swiotlb whatever the size, like the kernel's swiotlb_force_disable.
        ("swiotlb=noforce", |o| o.swiotlb = sw(0, None, NoForce)),
        ("swiotlb=16M,noforce", |o| o.swiotlb = sw(0, None, NoForce)),
        ("swiotlb=0,8,noforce", |o| o.swiotlb = sw(0, Some(8), NoForce)),
        ("cma=64M", |o| o.cma = cma(64 * M, None, None)),
        ("cma=64M@0x10000000", |o| o.cma = cma(64 * M, Some(0x1000_0000), None)),
        ("cma=64M@0x10000000-0x20000000", |o| o.cma = cma(64 * M, Some(0x1000_0000), Some(0x2000_0000))),
        ("cma=64M@-0x20000000", |o| o.cma = cma(64 * M, None, Some(0x2000_0000))),
        ("cma=64M@256M-320M", |o| o.cma = cma(64 * M, Some(256 * M), Some(320 * M))),
        ("cma=0", |_| {}),
        ("coherent_pool=256K", |o| o.coherent_pool = Some(256 << 10)),
        ("coherent_pool=0", |o| o.coherent_pool = Some(0)),
        ("iommu.strict", |o| o.iommu_strict = Some(true)),
        ("iommu.strict=0", |o| o.iommu_strict = Some(false)),
        ("iommu.strict=TRUE", |o| o.iommu_strict = Some(true)),
        ("iommu.passthrough=Y", |o| o.iommu_passthrough = Some(true)),
        ("iommu.passthrough=off", |o| o.iommu_passthrough = Some(false)),
        ("dma_debug", |o| o.dma_debug = DebugMode::On),
        ("dma_debug=1", |o| o.dma_debug = DebugMode::On),
        ("dma_debug=on", |o| o.dma_debug = DebugMode::On),
        ("dma_debug=0", |_| {}),
        ("dma_debug=guard", |o| o.dma_debug = DebugMode::Guard),
        ("dma_debug_entries=65536", |o| o.dma_debug_entries = Some(65536)),
        ("cache_line=16", |o| o.cache_line = Some(16)),
        ("cache_line=4096", |o| o.cache_line = Some(4096)),
        ("host_mem=0", |o| o.host.mem = 0),
        ("host_mem=64M", |o| o.host.mem = 64 * M),
        ("hugepages=8", |o| o.host.hugepages = 8),
        ("host_low=8M,256M", |o| o.host.low = Some(HostLow { size: 8 * M, limit: 256 * M })),
        // Dashes and underscores in keys are the same character.
        ("zone-dma-bits=30 dma-debug", |o| (o.zone_dma_bits, o.dma_debug) = (30, DebugMode::On)),
    ];
    for (s, change) in cases {
        let mut want = Options::default();
        change(&mut want);
        assert_eq!(parse(s), want, "{s}");
    }
}

/// Each bad value is refused with a message naming the key, the value and the problem.
#[test]
fn every_key_refuses_bad_values() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("platform=qemu", "expected 'sim' or 'host'"),
        ("platform=Sim", "expected 'sim' or 'host'"),
        ("mem=1M", "'1M' is not SIZE@BASE"),
        ("mem=", "'' is not SIZE@BASE"),
        ("mem=1M@0,", "'' is not SIZE@BASE"),
        ("mem=1M@0x", "is not a size"),
        ("mem=0@0", "is empty"),
        ("mem=6K@0", "4096-byte pages"),
        ("mem=4K@0x800", "4096-byte pages"),
        ("mem=8K@0xffffffffffffe000", "beyond the 64-bit"),
        ("mem=4K@0xfffffffffffff000", "beyond the 64-bit"),
        (
            "mem=1M@0,8K@0xff000",
            "range '8K@0xff000' overlaps range '1M@0x0'",
        ),
        ("zone_dma_bits=0", "from 1 to 63"),
        ("zone_dma_bits=64", "from 1 to 63"),
        ("zone_dma_bits=4294967320", "from 1 to 63"),
        ("zone_dma_bits=24M", "is not a decimal"),
        (
            "swiotlb=12Q",
            "'12Q' is neither a slot count nor a size with a K, M, G or T suffix",
        ),
        ("swiotlb=12Z,force", "'12Z' is neither"),
        ("swiotlb=0,force", "'force' needs slots"),
        ("swiotlb=1,2,3", "expected SLOTS|SIZE"),
        ("swiotlb=force,8", "'force' is neither"),
        ("swiotlb=force,force", "'force' is neither"),
        ("swiotlb=,force", "'' is neither"),
        ("swiotlb=Force", "'Force' is neither"),
        ("swiotlb=8192,x", "'x' is not a decimal or 0x-hex number"),
        ("swiotlb=1,0x10000000000000000", "does not fit in 64 bits"),
        ("swiotlb=18446744073709551615", "too large a pool"),
        ("swiotlb=0x20000000000000", "too large a pool"),
        ("swiotlb=17179869184G", "does not fit in 64 bits"),
        ("cma=", "is not a size"),
        ("cma=64M@", "expected BASE"),
        ("cma=64M@-", "expected BASE"),
        ("cma=64M@0x1000-", "expected a LIMIT"),
        ("cma=64M@256M-300M", "does not fit below"),
        ("cma=64M@-32M", "does not fit below"),
        ("cma=64M@-0", "does not fit below"),
        ("cma=0@0x1000", "zero size"),
        ("cma=6K", "multiples of 4096"),
        ("cma=64M@0x800", "multiples of 4096"),
        ("cma=64M@-0x20000800", "multiples of 4096"),
        ("cma=8K@0xfffffffffffff000", "beyond 64 bits"),
        ("cma=64M@1G-2G-3G", "is not a size"),
        ("cma=64M@1G@2G", "is not a size"),
        ("coherent_pool=1X", "is not a size"),
        (
            "iommu.strict=2",
            "expected a boolean: 0 or 1 (or n/y, no/yes, off/on, false/true)",
        ),
        ("iommu.strict=", "expected a boolean"),
        ("iommu.passthrough=yes please", "unknown option 'please'"),
        ("dma_debug=full", "expected 0, 1, off, on or guard"),
        ("dma_debug_entries=0", "at least 1"),
        ("dma_debug_entries=1K", "is not a decimal"),
        ("cache_line=8", "power of two from 16 to 4096"),
        ("cache_line=48", "power of two"),
        ("cache_line=8192", "power of two"),
        ("cache_line=0", "power of two"),
        ("host_mem=6K", "multiple of 4096"),
        ("host_mem=x", "is not a size"),
        ("hugepages=2M", "is not a decimal"),
        ("hugepages=2000000", "at most 1048576"),
        ("host_low=8M", "expected SIZE,LIMIT"),
        ("host_low=0,256M", "non-zero multiples"),
        ("host_low=6K,256M", "non-zero multiples"),
        ("host_low=512M,256M", "does not fit below"),
    ];
    for (s, why) in cases {
        let e = error(s);
        let (key, value) = s.split_once('=').unwrap();
        let named = e.starts_with(&format!("invalid value '{value}' for '{key}': "));
        assert!(named || e.contains("unknown option"), "{s}: {e}");
        assert!(e.contains(why), "{s}: {e}");
    }
    let e = error(&format!("swiotlb=1,{}", usize::MAX));
    assert!(e.contains("areas is too many"), "{e}");
    let sixteen: Vec<String> = (0..16).map(|i| format!("4K@{}", i * 8192)).collect();
    assert_eq!(parse(&format!("mem={}", sixteen.join(","))).mem.len(), 16);
    let e = error(&format!("mem={},4K@0x100000", sixteen.join(",")));
    assert!(e.contains("at most 16 ranges"), "{e}");
}

#[test]
fn sizes_follow_memparse() {
    let good = [
        ("4096", 4096),
        ("0x1000", 4096),
        ("0X10k", 16 << 10),
        ("3m", 3 * M),
        ("2G", 2 * G),
        ("1t", 1 << 40),
        ("16777215T", 0xff_ffff << 40),
        ("18446744073709551615", u64::MAX),
    ];
    for (s, n) in good {
        assert_eq!(parse_size(s), Ok(n), "{s}");
    }
    for big in ["16777216T", "18446744073709551616", "0x10000000000000000"] {
        let e = parse_size(big).unwrap_err();
        assert_eq!(e, format!("size '{big}' does not fit in 64 bits"));
    }
    let bad = ["", "K", "0x", "0xK", "12Q", "1.5M", "-1", "+5", "1MB", "0x1_0", "0x1g0", "١٢"];
    for s in bad {
        assert!(parse_size(s).unwrap_err().contains("is not a size"), "{s:?}");
    }
}

#[test]
fn keys_need_values_unless_boolean_and_unknown_keys_are_named() {
    let needs = "option 'platform' in DMA_OPTS needs a value ('platform=...')";
    assert_eq!(error("platform"), needs);
    assert!(error("zone_dma_bits").contains("needs a value"));
    assert!(error("cma").contains("needs a value"));
    let e = Options::parse("swiotlb=16M foo=1").unwrap_err();
    assert_eq!((e.key.as_str(), e.to_string()), ("foo", "unknown option 'foo' in DMA_OPTS".into()));
    assert_eq!(error("iommu"), "unknown option 'iommu' in DMA_OPTS");
    assert_eq!(error("=5"), "unknown option '' in DMA_OPTS");
    // Keys are case-sensitive, as in the kernel.
    assert_eq!(error("Dma_debug=1"), "unknown option 'Dma_debug' in DMA_OPTS");
    assert_eq!(Options::parse("zone-dma-bits=99").unwrap_err().key, "zone-dma-bits");
    let e: Box<dyn std::error::Error> = Box::new(Options::parse("x").unwrap_err());
    assert!(e.to_string().contains("'x'"));
}

#[test]
fn the_last_value_of_a_key_wins_whole() {
    let o = parse("swiotlb=1M,4,force zone_dma_bits=30 swiotlb=noforce zone_dma_bits=32");
    assert_eq!((o.zone_dma_bits, o.swiotlb), (32, sw(0, None, SwiotlbForce::NoForce)));
    // Fields left out of the last value take their defaults, not earlier values.
    let o = parse("swiotlb=1M,4 swiotlb=force");
    assert_eq!(o.swiotlb, sw(8192, None, SwiotlbForce::Force));
    assert_eq!(parse("mem=1G@0 mem=2G@4G").mem, [MemRange { base: 4 * G, size: 2 * G }]);
    assert_eq!(parse("cma=64M cma=0").cma, None);
    assert_eq!(parse("platform=host platform=sim").platform, PlatformKind::Sim);
    // An error in a later token is still an error.
    assert!(Options::parse("zone_dma_bits=30 zone_dma_bits=0").is_err());
}

#[test]
fn the_example_string_parses() {
    let o: Options = "mem=248M@0x800000,256M@0x100000000 swiotlb=16M,force zone_dma_bits=24 \
                      cma=64M dma_debug=1 iommu.strict=1"
        .parse()
        .unwrap();
    assert_eq!(o.mem, Options::default().mem);
    assert_eq!(o.swiotlb, sw(8192, None, SwiotlbForce::Force));
    assert_eq!(o.cma, cma(64 * M, None, None));
    assert_eq!((o.dma_debug, o.iommu_strict), (DebugMode::On, Some(true)));
}

#[test]
fn from_env_reads_dma_opts() {
    assert_eq!(Options::from_env_value(None), Ok(Options::default()));
    assert_eq!(Options::from_env_value(Some(OsStr::new(""))), Ok(Options::default()));
    let o = Options::from_env_value(Some(OsStr::new("cma=16M"))).unwrap();
    assert_eq!(o.cma, cma(16 * M, None, None));
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let e = Options::from_env_value(Some(OsStr::from_bytes(b"cma=\xff"))).unwrap_err();
        let want = ("DMA_OPTS", "DMA_OPTS is not valid UTF-8");
        assert_eq!((e.key.as_str(), e.message.as_str()), want);
    }
    // The real variable: whatever it holds, reading it must not panic.
    let _ = Options::from_env();
}

#[test]
fn display_prints_sizes_with_exact_suffixes() {
    for (n, s) in [(0, "0"), (1000, "1000"), (1536, "1536"), (3 * M, "3M"), (5 << 40, "5T")] {
        assert_eq!(Size(n).to_string(), s);
    }
    assert_eq!(Size(u64::MAX).to_string(), u64::MAX.to_string());
    let tail = "cma=64M@-0x20000000 coherent_pool=1 iommu.passthrough=1 dma_debug=guard";
    assert!(parse(tail).to_string().ends_with(tail));
}

/// Options as parse() can produce them: every field within its documented rules.
fn valid_options() -> impl Strategy<Value = Options> {
    let mem = proptest::collection::vec((0u64..1 << 30, 1u64..1 << 30), 1..=16).prop_flat_map(|pairs| {
        // Lay the ranges out in order from page 0, then shuffle them.
        let mut next = 0u64;
        let ranges: Vec<MemRange> = pairs
            .into_iter()
            .map(|(gap, pages)| {
                let base = (next + gap) * PAGE_SIZE;
                next += gap + pages;
                range(base, pages * PAGE_SIZE)
            })
            .collect();
        Just(ranges).prop_shuffle()
    });
    let force = prop_oneof![Just(SwiotlbForce::Default), Just(SwiotlbForce::Force), Just(SwiotlbForce::NoForce)];
    let swiotlb = (0usize..1 << 20, proptest::option::of(0u32..12), force).prop_map(|(segments, areas, force)| {
        let slots = match force {
            SwiotlbForce::NoForce => 0,
            SwiotlbForce::Force => (segments + 1) * 128,
            SwiotlbForce::Default => segments * 128,
        };
        sw(slots, areas.map(|a| 1 << a), force)
    });
    let cma = proptest::option::of(
        (1u64..1 << 40, proptest::option::of(0u64..1 << 40), proptest::option::of(0u64..1 << 40)).prop_map(
            |(pages, base, extra)| {
                let size = pages * PAGE_SIZE;
                let base = base.map(|b| b * PAGE_SIZE);
                let limit = extra.map(|e| base.unwrap_or(0) + size + e * PAGE_SIZE);
                CmaOptions { size, base, limit }
            },
        ),
    );
    let platform = prop_oneof![Just(PlatformKind::Sim), Just(PlatformKind::Host)];
    let debug = prop_oneof![Just(DebugMode::Off), Just(DebugMode::On), Just(DebugMode::Guard)];
    let flags = (
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        debug,
        proptest::option::of(1usize..),
        proptest::option::of(4u32..=12),
    );
    let low = proptest::option::of((1u64..1 << 20, 0u64..1 << 20))
        .prop_map(|l| l.map(|(s, e)| HostLow { size: s * PAGE_SIZE, limit: (s + e) * PAGE_SIZE }));
    let host = (0u64..1 << 20, 0usize..=1 << 20, low).prop_map(|(pages, hugepages, low)| HostOptions {
        mem: pages * PAGE_SIZE,
        hugepages,
        low,
    });
    (platform, mem, 1u32..=63, swiotlb, cma, (flags, host)).prop_map(
        |(platform, mem, zone_dma_bits, swiotlb, cma, (flags, host))| {
            let (coherent_pool, iommu_strict, iommu_passthrough, dma_debug, entries, line) = flags;
            Options {
                platform,
                mem,
                zone_dma_bits,
                swiotlb,
                cma,
                coherent_pool,
                iommu_strict,
                iommu_passthrough,
                dma_debug,
                dma_debug_entries: entries,
                cache_line: line.map(|l| 1 << l),
                host,
            }
        },
    )
}

/// Strings that look like option strings: real keys, plausible value characters.
fn option_like() -> impl Strategy<Value = String> {
    let keys = "platform mem zone_dma_bits swiotlb cma coherent_pool iommu.strict \
                iommu.passthrough dma_debug dma-debug-entries cache_line host_mem hugepages \
                host_low bogus";
    let token = (
        proptest::sample::select(keys.split_whitespace().collect::<Vec<_>>()),
        proptest::option::of("[0-9a-fxKMGTkmgt@,\\-=]{0,24}|force|noforce|guard|host|sim"),
    )
        .prop_map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.to_owned(),
        });
    proptest::collection::vec(token, 0..6).prop_map(|t| t.join(" "))
}

proptest! {
    /// Display prints every valid Options as a string that parses back to it.
    #[test]
    fn display_round_trips(o in valid_options()) {
        let s = o.to_string();
        prop_assert_eq!(Options::parse(&s), Ok(o), "{}", s);
    }

    /// No string makes the parser panic.
    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = Options::parse(&s);
        let _ = parse_size(&s);
    }

    /// Whatever parses, from near-miss strings too, prints back to an equal value; whatever
    /// fails names a key of the string.
    #[test]
    fn option_like_strings_parse_or_name_the_key(s in option_like()) {
        match Options::parse(&s) {
            Ok(o) => prop_assert_eq!(Options::parse(&o.to_string()), Ok(o)),
            Err(e) => {
                let named = s.split_whitespace().any(|t| t.split('=').next() == Some(&e.key));
                let quoted = format!("'{}'", e.key);
                prop_assert!(named, "{:?} names no key of {:?}", e, s);
                prop_assert!(e.message.contains(&quoted), "{:?}", e);
            }
        }
    }
}
