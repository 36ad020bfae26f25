//! The option string `DMA_OPTS`, in the style of the kernel command line.
//!
//! C programs cannot call a builder, so the library reads one string, usually from the
//! `DMA_OPTS` environment variable ([`Options::from_env`]); Rust callers can use
//! [`Options::parse`] or `str::parse` on any string. For example:
//!
//! ```text
//! mem=248M@0x800000,256M@0x100000000 swiotlb=16M,force zone_dma_bits=24 cma=64M dma_debug=1 iommu.strict=1
//! ```
//!
//! Tokens are separated by whitespace. Each is `key=value`; a boolean key given bare (`key`)
//! means `key=1`. In keys, `-` and `_` are the same character, as in the kernel's `parameq()`.
//! A key given twice takes its last value, and each value stands alone: `swiotlb=force` after
//! `swiotlb=1M` means the default size with `force`. Unknown keys and malformed values are
//! errors ([`OptionsError`]) that name the key, and the value if there is one.
//!
//! Numbers are decimal or `0x` hex. A SIZE also takes the kernel's `memparse()` suffixes `K`,
//! `M`, `G` and `T`, in either case, as powers of 1024 ([`parse_size`]). Booleans are `0`/`1`,
//! `n`/`y`, `no`/`yes`, `off`/`on` or `false`/`true`, in any case; other keywords are lowercase.
//!
//! | key | syntax | default | meaning | kernel parameter |
//! | --- | --- | --- | --- | --- |
//! | `platform` | `sim` \| `host` | `sim` | where physical memory comes from: the simulated SoC, or real pinned pages | none |
//! | `mem` | `SIZE@BASE[,SIZE@BASE...]` | `248M@0x800000,256M@0x100000000` | the simulated platform's RAM ranges: up to 16, each page aligned, non-empty, not overlapping | `memmap=nn@ss` |
//! | `zone_dma_bits` | `N`, 1 to 63 | `24` | ZONE_DMA holds the memory below `2^N` | the variable `zone_dma_bits` that the architecture sets |
//! | `swiotlb` | `SLOTS\|SIZE[,AREAS][,force\|noforce]`, or `force` or `noforce` alone | `8192` (16 MiB) | bounce buffer: a bare number counts 2 KiB slots, a suffixed size is converted to slots; slots round up to a multiple of 128 (`IO_TLB_SEGSIZE`), areas up to a power of two (0 becomes 1; unset means one per CPU). `force` bounces every mapping; `noforce` disables swiotlb, so slots become 0, as does `swiotlb=0`; `force` with 0 slots is an error | `swiotlb=` |
//! | `cma` | `SIZE[@[BASE][-LIMIT]]` | none | the default contiguous area: `SIZE` bytes placed inside `[BASE, LIMIT)`, either bound left out at will, all page aligned; `cma=0` means none | `cma=nn[MG]@[start[MG][-end[MG]]]` |
//! | `coherent_pool` | `SIZE` | platform's choice | size of the atomic pool serving allocations that must not sleep | `coherent_pool=` |
//! | `iommu.strict` | boolean | IOMMU's choice | 1: invalidate the IOTLB on every unmap; 0: batch invalidations (lazy) | `iommu.strict=` |
//! | `iommu.passthrough` | boolean | IOMMU's choice | 1: devices behind an IOMMU use identity (direct) mappings | `iommu.passthrough=` |
//! | `dma_debug` | `0\|1\|off\|on\|guard` (any boolean), bare means `on` | `off` | dma-debug checks of every call; `guard` also makes the CPU's view of device-owned whole pages inaccessible, so a CPU touch faults and is named | `dma_debug=off` with `CONFIG_DMA_API_DEBUG` |
//! | `dma_debug_entries` | `N`, at least 1 | dma-debug's choice | entries dma-debug preallocates for tracking mappings | `dma_debug_entries=` |
//! | `cache_line` | `N`, a power of two from 16 to 4096 | the architecture's | the simulated platform's cache-line size, in bytes (the host platform refuses it: it uses the CPU's) | none |
//! | `host_mem` | `SIZE`, page aligned, may be 0 | `16M` | the host platform's RAM of 4 KiB pages (a memfd, pinned); such pages are physically scattered, so they serve page-sized allocations | none |
//! | `hugepages` | `N` | `0` | the host platform's RAM of 2 MiB hugetlb pages (needs `/proc/sys/vm/nr_hugepages` reserved): physically contiguous runs for multi-page allocations, the swiotlb pool and CMA | `hugepages=` |
//! | `host_low` | `SIZE,LIMIT`, page aligned | none | the host platform also gathers `SIZE` bytes of 4 KiB pages below physical `LIMIT` (for a device with a small mask), allocating more and giving back what lies above | none |
//!
//! [`Options`] prints (`Display`) as a canonical string that parses back to an equal value.

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fmt;
use std::str::FromStr;

/// Every size and base of `mem` and `cma` is a multiple of this.
const PAGE_SIZE: u64 = 4096;
/// Bytes a swiotlb slot bounces (the kernel's `IO_TLB_SIZE`).
const SLOT_SIZE: u64 = 2048;
/// Slots come in whole segments (the kernel's `IO_TLB_SEGSIZE`).
const SLOT_SEGMENT: u64 = 128;
const MAX_MEM_RANGES: usize = 16;

/// Where the platform gets physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlatformKind {
    /// The simulated SoC: RAM in a memfd at configurable physical addresses.
    #[default]
    Sim,
    /// Real pinned pages with their physical addresses from `/proc/self/pagemap`.
    Host,
}

/// How much dma-debug checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DebugMode {
    /// No checks: one predictable branch per call.
    #[default]
    Off,
    /// The kernel's `CONFIG_DMA_API_DEBUG` checks.
    On,
    /// [`On`](Self::On), plus device-owned whole pages made inaccessible to the CPU.
    Guard,
}

/// One range of simulated RAM: `[base, base + size)` in physical addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRange {
    /// First physical address, a multiple of 4096.
    pub base: u64,
    /// Length in bytes, a non-zero multiple of 4096.
    pub size: u64,
}

/// What to do with a swiotlb force setting (`swiotlb=...,force|noforce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SwiotlbForce {
    /// Bounce only what the device cannot address.
    #[default]
    Default,
    /// Bounce every streaming mapping (the kernel's `swiotlb_force_bounce`).
    Force,
    /// Never bounce and set up no pool (the kernel's `swiotlb_force_disable`).
    NoForce,
}

/// The swiotlb settings (`swiotlb=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwiotlbOptions {
    /// Number of 2 KiB slots, a multiple of 128; 0 disables swiotlb.
    pub slots: usize,
    /// Number of areas, a power of two; `None` means one per CPU.
    pub areas: Option<usize>,
    /// Whether every mapping bounces, or none.
    pub force: SwiotlbForce,
}

impl Default for SwiotlbOptions {
    fn default() -> Self {
        // 16 MiB, the kernel's IO_TLB_DEFAULT_SIZE.
        SwiotlbOptions { slots: 8192, areas: None, force: SwiotlbForce::Default }
    }
}

/// The default contiguous area (`cma=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmaOptions {
    /// Size in bytes, a non-zero multiple of 4096.
    pub size: u64,
    /// Lowest physical address of the area, a multiple of 4096.
    pub base: Option<u64>,
    /// The area ends at or below this physical address (an exclusive bound), a multiple of 4096.
    pub limit: Option<u64>,
}

/// Every setting of `DMA_OPTS`; see the [module documentation](self) for the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `platform=`: where physical memory comes from.
    pub platform: PlatformKind,
    /// `mem=`: the simulated platform's RAM ranges, in the order given.
    pub mem: Vec<MemRange>,
    /// `zone_dma_bits=`: ZONE_DMA holds the memory below `2^zone_dma_bits`.
    pub zone_dma_bits: u32,
    /// `swiotlb=`: the bounce buffer.
    pub swiotlb: SwiotlbOptions,
    /// `cma=`: the default contiguous area, if any.
    pub cma: Option<CmaOptions>,
    /// `coherent_pool=`: the atomic pool's size in bytes, if set.
    pub coherent_pool: Option<u64>,
    /// `iommu.strict=`: invalidate the IOTLB on every unmap, if set.
    pub iommu_strict: Option<bool>,
    /// `iommu.passthrough=`: identity mappings for devices behind an IOMMU, if set.
    pub iommu_passthrough: Option<bool>,
    /// `dma_debug=`: how much dma-debug checks.
    pub dma_debug: DebugMode,
    /// `dma_debug_entries=`: entries dma-debug preallocates, if set.
    pub dma_debug_entries: Option<usize>,
    /// `cache_line=`: the simulated cache-line size in bytes, if set.
    pub cache_line: Option<usize>,
    /// `host_mem=`, `hugepages=`, `host_low=`: the host platform's memory.
    pub host: HostOptions,
}

/// The host platform's memory (`host_mem=`, `hugepages=`, `host_low=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostOptions {
    /// Bytes of 4 KiB pages, a multiple of 4096 (may be 0).
    pub mem: u64,
    /// Number of 2 MiB hugetlb pages.
    pub hugepages: usize,
    /// Extra 4 KiB pages to gather below a physical limit, if any.
    pub low: Option<HostLow>,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions { mem: 16 << 20, hugepages: 0, low: None }
    }
}

/// `host_low=SIZE,LIMIT`: gather `size` bytes of pages whose physical addresses lie below `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLow {
    /// Bytes to gather, a non-zero multiple of 4096.
    pub size: u64,
    /// Exclusive physical bound, a non-zero multiple of 4096.
    pub limit: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            platform: PlatformKind::Sim,
            // Like an Arm SoC: RAM below 4 GiB above the first 8 MiB of devices, more above.
            mem: vec![MemRange { base: 0x80_0000, size: 248 << 20 }, MemRange { base: 0x1_0000_0000, size: 256 << 20 }],
            zone_dma_bits: 24,
            swiotlb: SwiotlbOptions::default(),
            cma: None,
            coherent_pool: None,
            iommu_strict: None,
            iommu_passthrough: None,
            dma_debug: DebugMode::Off,
            dma_debug_entries: None,
            cache_line: None,
            host: HostOptions::default(),
        }
    }
}

/// A rejected option string: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionsError {
    /// The key as written in the string (or `DMA_OPTS` when the variable itself is unreadable).
    pub key: String,
    /// The whole explanation, naming the key; `Display` prints it.
    pub message: String,
}

impl OptionsError {
    fn unknown(key: &str) -> Self {
        Self::new(key, format!("unknown option '{key}' in DMA_OPTS"))
    }

    fn missing(key: &str) -> Self {
        Self::new(key, format!("option '{key}' in DMA_OPTS needs a value ('{key}=...')"))
    }

    fn invalid(key: &str, value: &str, why: &str) -> Self {
        Self::new(key, format!("invalid value '{value}' for '{key}': {why}"))
    }

    fn new(key: &str, message: String) -> Self {
        OptionsError { key: key.to_owned(), message }
    }
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OptionsError {}

impl Options {
    /// Parses an option string, starting from [`Options::default`] and applying each token in
    /// turn. An empty or all-whitespace string gives the defaults.
    ///
    /// # Errors
    ///
    /// On the first unknown key, non-boolean key without a value, or invalid value.
    pub fn parse(s: &str) -> Result<Options, OptionsError> {
        let mut options = Options::default();
        for token in s.split_whitespace() {
            match token.split_once('=') {
                Some((key, value)) => options.apply(key, Some(value))?,
                None => options.apply(token, None)?,
            }
        }
        Ok(options)
    }

    /// Parses `$DMA_OPTS`, or gives the defaults if it is unset or empty.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse), and if the variable is not valid UTF-8.
    pub fn from_env() -> Result<Options, OptionsError> {
        Self::from_env_value(std::env::var_os("DMA_OPTS").as_deref())
    }

    fn from_env_value(value: Option<&OsStr>) -> Result<Options, OptionsError> {
        match value.map(OsStr::to_str) {
            None => Ok(Options::default()),
            Some(Some(s)) => Options::parse(s),
            Some(None) => Err(OptionsError::new("DMA_OPTS", "DMA_OPTS is not valid UTF-8".into())),
        }
    }

    fn apply(&mut self, key: &str, value: Option<&str>) -> Result<(), OptionsError> {
        let flag = Some(value.unwrap_or("1"));
        match key.replace('-', "_").as_str() {
            "platform" => self.platform = field(key, value, parse_platform)?,
            "mem" => self.mem = field(key, value, parse_mem)?,
            "zone_dma_bits" => self.zone_dma_bits = field(key, value, parse_zone_dma_bits)?,
            "swiotlb" => self.swiotlb = field(key, value, parse_swiotlb)?,
            "cma" => self.cma = field(key, value, parse_cma)?,
            "coherent_pool" => self.coherent_pool = Some(field(key, value, parse_size)?),
            "iommu.strict" => self.iommu_strict = Some(field(key, flag, parse_bool)?),
            "iommu.passthrough" => self.iommu_passthrough = Some(field(key, flag, parse_bool)?),
            "dma_debug" => self.dma_debug = field(key, flag, parse_debug)?,
            "dma_debug_entries" => {
                self.dma_debug_entries = Some(field(key, value, parse_debug_entries)?);
            }
            "cache_line" => self.cache_line = Some(field(key, value, parse_cache_line)?),
            "host_mem" => self.host.mem = field(key, value, parse_host_mem)?,
            "hugepages" => self.host.hugepages = field(key, value, parse_hugepages)?,
            "host_low" => self.host.low = Some(field(key, value, parse_host_low)?),
            _ => return Err(OptionsError::unknown(key)),
        }
        Ok(())
    }
}

impl FromStr for Options {
    type Err = OptionsError;

    fn from_str(s: &str) -> Result<Options, OptionsError> {
        Options::parse(s)
    }
}

impl fmt::Display for Options {
    /// Prints the fields in their order, every `Option` field only when it is set. An `Options`
    /// built by hand against the rules of its fields prints as written and fails to parse.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let platform = match self.platform {
            PlatformKind::Sim => "sim",
            PlatformKind::Host => "host",
        };
        write!(f, "platform={platform} mem=")?;
        for (i, range) in self.mem.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}@{:#x}", Size(range.size), range.base)?;
        }
        write!(f, " zone_dma_bits={} swiotlb={}", self.zone_dma_bits, self.swiotlb.slots)?;
        if let Some(areas) = self.swiotlb.areas {
            write!(f, ",{areas}")?;
        }
        match self.swiotlb.force {
            SwiotlbForce::Default => {}
            SwiotlbForce::Force => f.write_str(",force")?,
            SwiotlbForce::NoForce => f.write_str(",noforce")?,
        }
        if let Some(cma) = self.cma {
            write!(f, " cma={}", Size(cma.size))?;
            if cma.base.is_some() || cma.limit.is_some() {
                f.write_str("@")?;
            }
            if let Some(base) = cma.base {
                write!(f, "{base:#x}")?;
            }
            if let Some(limit) = cma.limit {
                write!(f, "-{limit:#x}")?;
            }
        }
        if let Some(size) = self.coherent_pool {
            write!(f, " coherent_pool={}", Size(size))?;
        }
        if let Some(strict) = self.iommu_strict {
            write!(f, " iommu.strict={}", u8::from(strict))?;
        }
        if let Some(passthrough) = self.iommu_passthrough {
            write!(f, " iommu.passthrough={}", u8::from(passthrough))?;
        }
        let debug = match self.dma_debug {
            DebugMode::Off => "off",
            DebugMode::On => "on",
            DebugMode::Guard => "guard",
        };
        write!(f, " dma_debug={debug}")?;
        if let Some(entries) = self.dma_debug_entries {
            write!(f, " dma_debug_entries={entries}")?;
        }
        if let Some(line) = self.cache_line {
            write!(f, " cache_line={line}")?;
        }
        if self.host.mem != HostOptions::default().mem {
            write!(f, " host_mem={}", Size(self.host.mem))?;
        }
        if self.host.hugepages != 0 {
            write!(f, " hugepages={}", self.host.hugepages)?;
        }
        if let Some(low) = self.host.low {
            write!(f, " host_low={},{}", Size(low.size), Size(low.limit))?;
        }
        Ok(())
    }
}

/// Prints a byte count with the largest suffix that divides it exactly.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, suffix) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
            if n != 0 && n.trailing_zeros() >= shift {
                return write!(f, "{}{suffix}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

/// Parses a size the way the kernel's `memparse()` does: a decimal or `0x` hex number with an
/// optional suffix `K`, `M`, `G` or `T` (either case) multiplying it by a power of 1024.
///
/// # Errors
///
/// A message naming the string if it is not such a number or its value exceeds `u64::MAX`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let shift = match s.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => 10,
        Some(b'M') => 20,
        Some(b'G') => 30,
        Some(b'T') => 40,
        _ => 0,
    };
    // The suffix is one ASCII byte, so this slices on a character boundary.
    let digits = if shift == 0 { s } else { &s[..s.len() - 1] };
    let overflow = || format!("size '{s}' does not fit in 64 bits");
    match number(digits) {
        Ok(n) if n.leading_zeros() >= shift => Ok(n << shift),
        Ok(_) | Err(BadNumber::Overflow) => Err(overflow()),
        Err(BadNumber::Syntax) => Err(format!(
            "'{s}' is not a size: expected a decimal or 0x-hex number with an optional K, M, G or T suffix"
        )),
    }
}

enum BadNumber {
    Syntax,
    Overflow,
}

fn number(s: &str) -> Result<u64, BadNumber> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    // from_str_radix alone would also take a leading '+'.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(BadNumber::Syntax);
    }
    u64::from_str_radix(digits, radix).map_err(|_| BadNumber::Overflow)
}

/// A plain count: a decimal or `0x` hex number without a suffix.
fn parse_count(s: &str) -> Result<u64, String> {
    number(s).map_err(|e| match e {
        BadNumber::Syntax => format!("'{s}' is not a decimal or 0x-hex number"),
        BadNumber::Overflow => format!("'{s}' does not fit in 64 bits"),
    })
}

fn parse_usize(s: &str) -> Result<usize, String> {
    let n = parse_count(s)?;
    usize::try_from(n).map_err(|_| format!("{n} is too large for this machine"))
}

/// Parses one option's value, or reports it missing.
fn field<T>(key: &str, value: Option<&str>, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, OptionsError> {
    let value = value.ok_or_else(|| OptionsError::missing(key))?;
    parse(value).map_err(|why| OptionsError::invalid(key, value, &why))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    const TRUE: [&str; 5] = ["1", "y", "yes", "on", "true"];
    const FALSE: [&str; 5] = ["0", "n", "no", "off", "false"];
    if TRUE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Ok(true)
    } else if FALSE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Ok(false)
    } else {
        Err("expected a boolean: 0 or 1 (or n/y, no/yes, off/on, false/true)".into())
    }
}

fn parse_platform(s: &str) -> Result<PlatformKind, String> {
    match s {
        "sim" => Ok(PlatformKind::Sim),
        "host" => Ok(PlatformKind::Host),
        _ => Err("expected 'sim' or 'host'".into()),
    }
}

fn parse_mem(s: &str) -> Result<Vec<MemRange>, String> {
    let mut ranges = Vec::new();
    for part in s.split(',') {
        if ranges.len() == MAX_MEM_RANGES {
            return Err(format!("at most {MAX_MEM_RANGES} ranges are allowed"));
        }
        let (size, base) = part.split_once('@').ok_or_else(|| format!("'{part}' is not SIZE@BASE"))?;
        let (size, base) = (parse_size(size)?, parse_size(base)?);
        if size == 0 {
            return Err(format!("range '{part}' is empty"));
        }
        if size % PAGE_SIZE != 0 || base % PAGE_SIZE != 0 {
            return Err(format!("range '{part}' is not a whole number of 4096-byte pages"));
        }
        if base.checked_add(size).is_none() {
            return Err(format!("range '{part}' ends beyond the 64-bit address space"));
        }
        let overlapping = ranges.iter().find(|r: &&MemRange| r.base < base + size && base < r.base + r.size);
        if let Some(other) = overlapping {
            let other = format!("{}@{:#x}", Size(other.size), other.base);
            return Err(format!("range '{part}' overlaps range '{other}'"));
        }
        ranges.push(MemRange { base, size });
    }
    Ok(ranges)
}

fn parse_zone_dma_bits(s: &str) -> Result<u32, String> {
    match parse_count(s)? {
        n @ 1..=63 => Ok(n as u32),
        _ => Err("expected a number of address bits from 1 to 63".into()),
    }
}

fn parse_swiotlb(s: &str) -> Result<SwiotlbOptions, String> {
    const SYNTAX: &str = "expected SLOTS|SIZE[,AREAS][,force|noforce], or force or noforce";
    let mut options = SwiotlbOptions::default();
    let mut parts: Vec<&str> = s.split(',').collect();
    match parts.last() {
        Some(&"force") => options.force = SwiotlbForce::Force,
        Some(&"noforce") => options.force = SwiotlbForce::NoForce,
        _ => {}
    }
    if options.force != SwiotlbForce::Default {
        parts.pop();
    }
    match parts[..] {
        [] => {}
        [slots] => options.slots = parse_slots(slots)?,
        [slots, areas] => {
            options.slots = parse_slots(slots)?;
            options.areas = Some(parse_areas(areas)?);
        }
        _ => return Err(SYNTAX.into()),
    }
    match options.force {
        SwiotlbForce::NoForce => options.slots = 0,
        SwiotlbForce::Force if options.slots == 0 => {
            return Err("'force' needs slots to bounce through, not 0".into());
        }
        _ => {}
    }
    Ok(options)
}

fn parse_slots(s: &str) -> Result<usize, String> {
    let sized = s.ends_with(|c: char| "kKmMgGtT".contains(c));
    let slots = if sized {
        parse_size(s)?.div_ceil(SLOT_SIZE)
    } else {
        number(s).map_err(|e| match e {
            BadNumber::Syntax => {
                format!("'{s}' is neither a slot count nor a size with a K, M, G or T suffix")
            }
            BadNumber::Overflow => format!("'{s}' does not fit in 64 bits"),
        })?
    };
    // The pool's byte size must fit in u64 as well as the slot count in usize.
    slots
        .checked_next_multiple_of(SLOT_SEGMENT)
        .filter(|n| n.checked_mul(SLOT_SIZE).is_some())
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{slots} slots of 2 KiB is too large a pool"))
}

fn parse_areas(s: &str) -> Result<usize, String> {
    let areas = parse_usize(s)?;
    areas.checked_next_power_of_two().ok_or_else(|| format!("{areas} areas is too many"))
}

fn parse_cma(s: &str) -> Result<Option<CmaOptions>, String> {
    let (size, place) = match s.split_once('@') {
        Some((size, place)) => (parse_size(size)?, Some(place)),
        None => (parse_size(s)?, None),
    };
    let (base, limit) = match place {
        None => (None, None),
        Some(place) => {
            let (base, limit) = match place.split_once('-') {
                Some((base, limit)) => (base, Some(limit)),
                None => (place, None),
            };
            if base.is_empty() && limit.is_none_or(str::is_empty) {
                return Err("expected BASE, -LIMIT or BASE-LIMIT after '@'".into());
            }
            let base = if base.is_empty() { None } else { Some(parse_size(base)?) };
            let limit = match limit {
                None => None,
                Some("") => return Err("expected a LIMIT after '-'".into()),
                Some(limit) => Some(parse_size(limit)?),
            };
            (base, limit)
        }
    };
    if size == 0 {
        return match place {
            None => Ok(None),
            Some(_) => Err("a zero size means no area and takes no placement".into()),
        };
    }
    let unaligned = [Some(size), base, limit].into_iter().flatten().any(|n| n % PAGE_SIZE != 0);
    if unaligned {
        return Err("size, base and limit must be multiples of 4096".into());
    }
    let end = base.unwrap_or(0).checked_add(size).ok_or("the area ends beyond 64 bits")?;
    if limit.is_some_and(|limit| end > limit) {
        return Err("the area does not fit below its limit".into());
    }
    Ok(Some(CmaOptions { size, base, limit }))
}

fn parse_debug(s: &str) -> Result<DebugMode, String> {
    if s == "guard" {
        return Ok(DebugMode::Guard);
    }
    match parse_bool(s) {
        Ok(true) => Ok(DebugMode::On),
        Ok(false) => Ok(DebugMode::Off),
        Err(_) => Err("expected 0, 1, off, on or guard".into()),
    }
}

fn parse_debug_entries(s: &str) -> Result<usize, String> {
    match parse_usize(s)? {
        0 => Err("expected at least 1 entry".into()),
        n => Ok(n),
    }
}

fn parse_cache_line(s: &str) -> Result<usize, String> {
    match parse_usize(s)? {
        n if n.is_power_of_two() && (16..=4096).contains(&n) => Ok(n),
        _ => Err("expected a power of two from 16 to 4096".into()),
    }
}

fn parse_host_mem(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        n if n % PAGE_SIZE == 0 => Ok(n),
        _ => Err("expected a multiple of 4096".into()),
    }
}

fn parse_hugepages(s: &str) -> Result<usize, String> {
    match parse_usize(s)? {
        n if n <= 1 << 20 => Ok(n),
        _ => Err("expected at most 1048576 pages of 2 MiB".into()),
    }
}

fn parse_host_low(s: &str) -> Result<HostLow, String> {
    let (size, limit) = s.split_once(',').ok_or("expected SIZE,LIMIT")?;
    let (size, limit) = (parse_size(size)?, parse_size(limit)?);
    if size == 0 || limit == 0 || size % PAGE_SIZE != 0 || limit % PAGE_SIZE != 0 {
        return Err("size and limit must be non-zero multiples of 4096".into());
    }
    if size > limit {
        return Err("the size does not fit below the limit".into());
    }
    Ok(HostLow { size, limit })
}

#[cfg(test)]
mod tests;
