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
//! errors ([`OptionsError`]) that name the key and the value.
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
//! | `cma` | `SIZE[@[BASE][-LIMIT]]` | none | the default contiguous area: `SIZE` bytes, at or above `BASE`, ending below `LIMIT` (exclusive), all page aligned; `cma=0` means none | `cma=nn[MG]@[start[MG][-end[MG]]]` |
//! | `coherent_pool` | `SIZE` | platform's choice | size of the atomic pool serving allocations that must not sleep | `coherent_pool=` |
//! | `iommu.strict` | boolean | IOMMU's choice | 1: invalidate the IOTLB on every unmap; 0: batch invalidations (lazy) | `iommu.strict=` |
//! | `iommu.passthrough` | boolean | IOMMU's choice | 1: devices behind an IOMMU use identity (direct) mappings | `iommu.passthrough=` |
//! | `dma_debug` | `0\|1\|off\|on\|guard` (any boolean), bare means `on` | `off` | dma-debug checks of every mapping; `guard` adds guard areas around buffers | `dma_debug=off` with `CONFIG_DMA_API_DEBUG` |
//! | `dma_debug_entries` | `N`, at least 1 | dma-debug's choice | entries dma-debug preallocates for tracking mappings | `dma_debug_entries=` |
//! | `cache_line` | `N`, a power of two from 16 to 4096 | the architecture's | the simulated platform's cache-line size, in bytes | none |
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
    /// [`On`](Self::On) plus guard areas around buffers.
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
        SwiotlbOptions {
            slots: 8192,
            areas: None,
            force: SwiotlbForce::Default,
        }
    }
}

/// The default contiguous area (`cma=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmaOptions {
    /// Size in bytes, a non-zero multiple of 4096.
    pub size: u64,
    /// Lowest physical address of the area, a multiple of 4096.
    pub base: Option<u64>,
    /// The area ends at or below this physical address, a multiple of 4096.
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            platform: PlatformKind::Sim,
            // Like an Arm SoC: RAM below 4 GiB above the first 8 MiB of devices, more above.
            mem: vec![
                MemRange {
                    base: 0x80_0000,
                    size: 248 << 20,
                },
                MemRange {
                    base: 0x1_0000_0000,
                    size: 256 << 20,
                },
            ],
            zone_dma_bits: 24,
            swiotlb: SwiotlbOptions::default(),
            cma: None,
            coherent_pool: None,
            iommu_strict: None,
            iommu_passthrough: None,
            dma_debug: DebugMode::Off,
            dma_debug_entries: None,
            cache_line: None,
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
        Self::new(
            key,
            format!("option '{key}' in DMA_OPTS needs a value ('{key}=...')"),
        )
    }

    fn invalid(key: &str, value: &str, why: &str) -> Self {
        Self::new(key, format!("invalid value '{value}' for '{key}': {why}"))
    }

    fn new(key: &str, message: String) -> Self {
        OptionsError {
            key: key.to_owned(),
            message,
        }
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
            Some(None) => Err(OptionsError::new(
                "DMA_OPTS",
                "DMA_OPTS is not valid UTF-8".into(),
            )),
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
    /// Prints every setting that differs from "unset", in the order of the fields.
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
        write!(
            f,
            " zone_dma_bits={} swiotlb={}",
            self.zone_dma_bits, self.swiotlb.slots
        )?;
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
fn field<T>(
    key: &str,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, OptionsError> {
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
        let (size, base) = part
            .split_once('@')
            .ok_or_else(|| format!("'{part}' is not SIZE@BASE"))?;
        let (size, base) = (parse_size(size)?, parse_size(base)?);
        if size == 0 {
            return Err(format!("range '{part}' is empty"));
        }
        if size % PAGE_SIZE != 0 || base % PAGE_SIZE != 0 {
            return Err(format!(
                "range '{part}' is not a whole number of 4096-byte pages"
            ));
        }
        if base.checked_add(size).is_none() {
            return Err(format!(
                "range '{part}' ends beyond the 64-bit address space"
            ));
        }
        let overlapping = ranges
            .iter()
            .find(|r: &&MemRange| r.base < base + size && base < r.base + r.size);
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
    areas
        .checked_next_power_of_two()
        .ok_or_else(|| format!("{areas} areas is too many"))
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
            let base = if base.is_empty() {
                None
            } else {
                Some(parse_size(base)?)
            };
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
    let unaligned = [Some(size), base, limit]
        .into_iter()
        .flatten()
        .any(|n| n % PAGE_SIZE != 0);
    if unaligned {
        return Err("size, base and limit must be multiples of 4096".into());
    }
    let end = base
        .unwrap_or(0)
        .checked_add(size)
        .ok_or("the area ends beyond 64 bits")?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn empty_string_gives_the_documented_defaults() {
        let o = parse(" \t\n ");
        assert_eq!(o, Options::default());
        assert_eq!(o.platform, PlatformKind::Sim);
        assert_eq!(
            o.mem[0],
            MemRange {
                base: 0x80_0000,
                size: 248 << 20
            }
        );
        assert_eq!(
            o.mem[1],
            MemRange {
                base: 1 << 32,
                size: 256 << 20
            }
        );
        assert_eq!(o.zone_dma_bits, 24);
        assert_eq!(
            o.swiotlb,
            SwiotlbOptions {
                slots: 8192,
                areas: None,
                force: SwiotlbForce::Default
            }
        );
        assert_eq!(o.dma_debug, DebugMode::Off);
        assert_eq!(
            (o.cma, o.coherent_pool, o.iommu_strict, o.iommu_passthrough),
            (None, None, None, None)
        );
        assert_eq!((o.dma_debug_entries, o.cache_line), (None, None));
        assert_eq!(
            o.to_string(),
            "platform=sim mem=248M@0x800000,256M@0x100000000 zone_dma_bits=24 swiotlb=8192 dma_debug=off"
        );
    }

    #[test]
    fn the_example_string_parses() {
        let o: Options = "mem=248M@0x800000,256M@0x100000000 swiotlb=16M,force zone_dma_bits=24 \
                          cma=64M dma_debug=1 iommu.strict=1"
            .parse()
            .unwrap();
        assert_eq!(o.mem, Options::default().mem);
        assert_eq!(o.swiotlb.force, SwiotlbForce::Force);
        assert_eq!(
            o.cma,
            Some(CmaOptions {
                size: 64 << 20,
                base: None,
                limit: None
            })
        );
        assert_eq!((o.dma_debug, o.iommu_strict), (DebugMode::On, Some(true)));
    }

    #[test]
    fn sizes_follow_memparse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert_eq!(parse_size("0X10k"), Ok(16 << 10));
        assert_eq!(parse_size("3m"), Ok(3 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert_eq!(
            parse_size("16777215T"),
            Ok(0xff_ffff << 40),
            "largest T that fits"
        );
        assert!(
            parse_size("16777216T")
                .unwrap_err()
                .contains("does not fit in 64 bits")
        );
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(
            parse_size("18446744073709551616")
                .unwrap_err()
                .contains("does not fit")
        );
        assert!(parse_size("0x1_0000").is_err() && parse_size("+5").is_err());
        for bad in [
            "", "K", "0x", "0xK", "12Q", "1.5M", "-1", "1MB", "0x1g0", "١٢",
        ] {
            assert!(
                parse_size(bad).unwrap_err().contains("is not a size"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn platform() {
        assert_eq!(parse("platform=host").platform, PlatformKind::Host);
        assert_eq!(
            parse("platform=host platform=sim").platform,
            PlatformKind::Sim
        );
        assert_eq!(
            error("platform=qemu"),
            "invalid value 'qemu' for 'platform': expected 'sim' or 'host'"
        );
        assert_eq!(
            error("platform"),
            "option 'platform' in DMA_OPTS needs a value ('platform=...')"
        );
    }

    #[test]
    fn mem_ranges() {
        let o = parse("mem=1G@0,0x1000@4G,4K@0x40000000");
        let want = [(0, 1 << 30), (4 << 30, 4096), (1 << 30, 4096)];
        let got: Vec<_> = o.mem.iter().map(|r| (r.base, r.size)).collect();
        assert_eq!(got, want, "order kept; touching ranges allowed");
        let sixteen: Vec<String> = (0..16).map(|i| format!("4K@{}", i * 8192)).collect();
        assert_eq!(parse(&format!("mem={}", sixteen.join(","))).mem.len(), 16);
        let seventeen = format!("mem={},4K@0x100000", sixteen.join(","));
        assert!(error(&seventeen).contains("at most 16 ranges"));
        assert_eq!(
            error("mem=1M@0,8K@0xff000"),
            "invalid value '1M@0,8K@0xff000' for 'mem': range '8K@0xff000' overlaps range '1M@0x0'"
        );
        assert!(error("mem=1M").contains("'1M' is not SIZE@BASE"));
        assert!(error("mem=0@0").contains("is empty"));
        assert!(error("mem=6K@0").contains("4096-byte pages"));
        assert!(error("mem=4K@0x800").contains("4096-byte pages"));
        assert!(error("mem=8K@0xffffffffffffe000").contains("beyond the 64-bit"));
        assert_eq!(
            parse("mem=4K@0xffffffffffffe000").mem[0].base,
            u64::MAX - 8191
        );
        assert!(
            error("mem=4K@0xfffffffffffff000").contains("beyond the 64-bit"),
            "ends at 2^64"
        );
        assert!(error("mem=").contains("is not SIZE@BASE"));
        assert!(error("mem=1M@0,").contains("'' is not SIZE@BASE"));
        assert!(error("mem=1M@0x").contains("is not a size"));
    }

    #[test]
    fn zone_dma_bits() {
        assert_eq!(parse("zone_dma_bits=32").zone_dma_bits, 32);
        assert_eq!(parse("zone_dma_bits=0x3f").zone_dma_bits, 63);
        assert_eq!(parse("zone_dma_bits=1").zone_dma_bits, 1);
        for bad in ["0", "64", "4294967320", "24M", "x"] {
            assert!(
                error(&format!("zone_dma_bits={bad}")).contains("for 'zone_dma_bits'"),
                "{bad}"
            );
        }
    }

    #[test]
    fn swiotlb_counts_round_up_and_sizes_convert_to_slots() {
        let slots = |s: &str| parse(&format!("swiotlb={s}")).swiotlb.slots;
        assert_eq!(slots("1"), 128);
        assert_eq!(slots("128"), 128);
        assert_eq!(slots("129"), 256);
        assert_eq!(slots("0x4000"), 16384);
        assert_eq!(slots("16M"), 8192);
        assert_eq!(slots("1K"), 128, "half a slot, then a whole segment");
        assert_eq!(slots("257k"), 256, "257 KiB is 128.5 slots");
        assert_eq!(slots("0"), 0);
        let o = parse("swiotlb=64M,3,force").swiotlb;
        assert_eq!(
            o,
            SwiotlbOptions {
                slots: 32768,
                areas: Some(4),
                force: SwiotlbForce::Force
            }
        );
        assert_eq!(
            parse("swiotlb=1,0").swiotlb.areas,
            Some(1),
            "0 areas become 1"
        );
        assert_eq!(parse("swiotlb=1,16").swiotlb.areas, Some(16));
        assert!(error(&format!("swiotlb=1,{}", usize::MAX)).contains("too many"));
        assert!(error("swiotlb=1,0x10000000000000000").contains("does not fit in 64 bits"));
        assert!(error("swiotlb=18446744073709551615").contains("too large a pool"));
        assert!(
            error("swiotlb=0x20000000000000").contains("too large a pool"),
            "2^64 bytes"
        );
        assert!(error("swiotlb=17179869184G").contains("does not fit"));
    }

    #[test]
    fn swiotlb_force_and_noforce() {
        let sw = |s: &str| parse(&format!("swiotlb={s}")).swiotlb;
        let default = SwiotlbOptions::default();
        assert_eq!(
            sw("force"),
            SwiotlbOptions {
                force: SwiotlbForce::Force,
                ..default
            }
        );
        assert_eq!(sw("4096,force").slots, 4096);
        // noforce disables swiotlb whatever the size, like the kernel's swiotlb_force_disable.
        assert_eq!(
            sw("noforce"),
            SwiotlbOptions {
                slots: 0,
                areas: None,
                force: SwiotlbForce::NoForce
            }
        );
        assert_eq!(sw("16M,noforce").slots, 0);
        assert_eq!(sw("0,noforce").force, SwiotlbForce::NoForce);
        assert!(error("swiotlb=0,force").contains("'force' needs slots"));
        assert!(error("swiotlb=1,2,3").contains("expected SLOTS|SIZE"));
        assert!(error("swiotlb=force,8").contains("'force' is neither a slot count"));
        assert!(error("swiotlb=force,force").contains("'force' is neither"));
        assert!(error("swiotlb=,force").contains("'' is neither"));
        assert!(error("swiotlb=Force").contains("'Force' is neither"));
        assert!(error("swiotlb=8192,x").contains("'x' is not a decimal or 0x-hex number"));
        assert_eq!(
            error("swiotlb=12Q"),
            "invalid value '12Q' for 'swiotlb': '12Q' is neither a slot count nor a size with a K, M, G or T suffix"
        );
        assert!(error("swiotlb=12Z,force").contains("'12Z' is neither"));
    }

    #[test]
    fn cma_placements() {
        let cma = |s: &str| parse(&format!("cma={s}")).cma;
        let area = |size, base, limit| Some(CmaOptions { size, base, limit });
        assert_eq!(cma("64M"), area(64 << 20, None, None));
        assert_eq!(
            cma("64M@0x10000000"),
            area(64 << 20, Some(0x1000_0000), None)
        );
        assert_eq!(
            cma("64M@0x10000000-0x20000000"),
            area(64 << 20, Some(0x1000_0000), Some(0x2000_0000))
        );
        assert_eq!(
            cma("64M@-0x20000000"),
            area(64 << 20, None, Some(0x2000_0000))
        );
        assert_eq!(
            cma("64M@256M-320M"),
            area(64 << 20, Some(256 << 20), Some(320 << 20))
        );
        assert_eq!(parse("cma=64M cma=0").cma, None, "cma=0 removes the area");
        for (bad, why) in [
            ("", "is not a size"),
            ("64M@", "expected BASE"),
            ("64M@-", "expected BASE"),
            ("64M@0x1000-", "expected a LIMIT"),
            ("64M@256M-300M", "does not fit below"),
            ("64M@-32M", "does not fit below"),
            ("64M@-0", "does not fit below"),
            ("0@0x1000", "zero size"),
            ("6K", "multiples of 4096"),
            ("64M@0x800", "multiples of 4096"),
            ("64M@-0x20000800", "multiples of 4096"),
            ("8K@0xfffffffffffff000", "beyond 64 bits"),
            ("64M@1G-2G-3G", "is not a size"),
            ("64M@1G@2G", "is not a size"),
        ] {
            let e = error(&format!("cma={bad}"));
            assert!(
                e.starts_with(&format!("invalid value '{bad}' for 'cma': ")),
                "{e}"
            );
            assert!(e.contains(why), "cma={bad}: {e}");
        }
    }

    #[test]
    fn coherent_pool_dma_debug_entries_and_cache_line() {
        assert_eq!(parse("coherent_pool=256K").coherent_pool, Some(256 << 10));
        assert_eq!(parse("coherent_pool=0").coherent_pool, Some(0));
        assert!(error("coherent_pool=1X").contains("for 'coherent_pool'"));
        assert_eq!(
            parse("dma_debug_entries=65536").dma_debug_entries,
            Some(65536)
        );
        assert!(error("dma_debug_entries=0").contains("at least 1"));
        assert!(error("dma_debug_entries=1K").contains("is not a decimal"));
        assert_eq!(parse("cache_line=64").cache_line, Some(64));
        assert_eq!(
            parse("cache_line=16 cache_line=4096").cache_line,
            Some(4096)
        );
        for bad in ["8", "48", "8192", "0"] {
            assert!(
                error(&format!("cache_line={bad}")).contains("power of two"),
                "{bad}"
            );
        }
    }

    #[test]
    fn booleans_and_bare_flags() {
        assert_eq!(parse("iommu.strict").iommu_strict, Some(true));
        assert_eq!(parse("iommu.strict=0").iommu_strict, Some(false));
        assert_eq!(parse("iommu.passthrough=Y").iommu_passthrough, Some(true));
        assert_eq!(
            parse("iommu.passthrough=off").iommu_passthrough,
            Some(false)
        );
        for (s, mode) in [
            ("1", DebugMode::On),
            ("on", DebugMode::On),
            ("0", DebugMode::Off),
        ] {
            assert_eq!(parse(&format!("dma_debug={s}")).dma_debug, mode);
        }
        assert_eq!(parse("dma_debug").dma_debug, DebugMode::On);
        assert_eq!(parse("dma_debug=guard").dma_debug, DebugMode::Guard);
        assert_eq!(
            error("iommu.strict=2"),
            "invalid value '2' for 'iommu.strict': expected a boolean: 0 or 1 (or n/y, no/yes, off/on, false/true)"
        );
        assert!(error("iommu.strict=").contains("invalid value '' for 'iommu.strict'"));
        assert!(error("dma_debug=full").contains("expected 0, 1, off, on or guard"));
        assert!(
            error("zone_dma_bits").contains("needs a value"),
            "only boolean keys may be bare"
        );
        assert!(error("cma").contains("needs a value"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Options::parse("swiotlb=16M foo=1").unwrap_err();
        assert_eq!(e.key, "foo");
        assert_eq!(e.to_string(), "unknown option 'foo' in DMA_OPTS");
        assert_eq!(error("iommu"), "unknown option 'iommu' in DMA_OPTS");
        assert_eq!(error("=5"), "unknown option '' in DMA_OPTS");
        assert_eq!(
            error("Dma_debug=1"),
            "unknown option 'Dma_debug' in DMA_OPTS",
            "keys are case-sensitive"
        );
        let e: Box<dyn std::error::Error> = Box::new(Options::parse("x").unwrap_err());
        assert!(e.to_string().contains("'x'"));
    }

    #[test]
    fn dashes_and_underscores_in_keys_are_the_same() {
        let o = parse("zone-dma-bits=30 dma-debug cache-line=32");
        assert_eq!(
            (o.zone_dma_bits, o.dma_debug, o.cache_line),
            (30, DebugMode::On, Some(32))
        );
        assert_eq!(
            Options::parse("zone-dma-bits=99").unwrap_err().key,
            "zone-dma-bits"
        );
    }

    #[test]
    fn the_last_value_of_a_key_wins_whole() {
        let o = parse("swiotlb=1M,4,force zone_dma_bits=30 swiotlb=noforce zone_dma_bits=32");
        assert_eq!(o.zone_dma_bits, 32);
        assert_eq!(
            o.swiotlb,
            SwiotlbOptions {
                slots: 0,
                areas: None,
                force: SwiotlbForce::NoForce
            }
        );
        let o = parse("swiotlb=1M,4 swiotlb=force");
        assert_eq!(
            o.swiotlb,
            SwiotlbOptions {
                force: SwiotlbForce::Force,
                ..SwiotlbOptions::default()
            }
        );
        assert_eq!(
            parse("mem=1G@0 mem=2G@4G").mem,
            [MemRange {
                base: 4 << 30,
                size: 2 << 30
            }]
        );
        // An error in a later token is still an error.
        assert!(Options::parse("zone_dma_bits=30 zone_dma_bits=0").is_err());
    }

    #[test]
    fn from_env_reads_dma_opts() {
        assert_eq!(Options::from_env_value(None), Ok(Options::default()));
        assert_eq!(
            Options::from_env_value(Some(OsStr::new(""))),
            Ok(Options::default())
        );
        let o = Options::from_env_value(Some(OsStr::new("cma=16M"))).unwrap();
        assert_eq!(o.cma.map(|c| c.size), Some(16 << 20));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let e = Options::from_env_value(Some(OsStr::from_bytes(b"cma=\xff"))).unwrap_err();
            assert_eq!(
                (e.key.as_str(), e.message.as_str()),
                ("DMA_OPTS", "DMA_OPTS is not valid UTF-8")
            );
        }
        // The real variable: whatever it holds, reading it must not panic.
        let _ = Options::from_env();
    }

    #[test]
    fn display_prints_sizes_with_exact_suffixes() {
        assert_eq!(Size(0).to_string(), "0");
        assert_eq!(Size(1000).to_string(), "1000");
        assert_eq!(Size(1536).to_string(), "1536");
        assert_eq!(Size(3 << 20).to_string(), "3M");
        assert_eq!(Size(5 << 40).to_string(), "5T");
        assert_eq!(Size(u64::MAX).to_string(), u64::MAX.to_string());
        let o = parse("cma=64M@-0x20000000 coherent_pool=1 iommu.passthrough=1 dma_debug=guard");
        assert!(
            o.to_string().ends_with(
                "cma=64M@-0x20000000 coherent_pool=1 iommu.passthrough=1 dma_debug=guard"
            )
        );
    }

    /// Options as parse() can produce them: every field within its documented rules.
    fn valid_options() -> impl Strategy<Value = Options> {
        let mem = proptest::collection::vec((0u64..1 << 30, 1u64..1 << 30), 1..=16).prop_flat_map(
            |pairs| {
                // Lay the ranges out in order from page 0, then shuffle them.
                let mut next = 0u64;
                let ranges: Vec<MemRange> = pairs
                    .into_iter()
                    .map(|(gap, pages)| {
                        let base = (next + gap) * PAGE_SIZE;
                        next += gap + pages;
                        MemRange {
                            base,
                            size: pages * PAGE_SIZE,
                        }
                    })
                    .collect();
                Just(ranges).prop_shuffle()
            },
        );
        let force = prop_oneof![
            Just(SwiotlbForce::Default),
            Just(SwiotlbForce::Force),
            Just(SwiotlbForce::NoForce)
        ];
        let swiotlb = (0usize..1 << 20, proptest::option::of(0u32..12), force).prop_map(
            |(segments, areas, force)| {
                let slots = match force {
                    SwiotlbForce::NoForce => 0,
                    SwiotlbForce::Force => (segments + 1) * 128,
                    SwiotlbForce::Default => segments * 128,
                };
                SwiotlbOptions {
                    slots,
                    areas: areas.map(|a| 1 << a),
                    force,
                }
            },
        );
        let cma = proptest::option::of(
            (
                1u64..1 << 40,
                proptest::option::of(0u64..1 << 40),
                proptest::option::of(0u64..1 << 40),
            )
                .prop_map(|(pages, base, extra)| {
                    let size = pages * PAGE_SIZE;
                    let base = base.map(|b| b * PAGE_SIZE);
                    let limit = extra.map(|e| base.unwrap_or(0) + size + e * PAGE_SIZE);
                    CmaOptions { size, base, limit }
                }),
        );
        let platform = prop_oneof![Just(PlatformKind::Sim), Just(PlatformKind::Host)];
        let debug = prop_oneof![
            Just(DebugMode::Off),
            Just(DebugMode::On),
            Just(DebugMode::Guard)
        ];
        let flags = (
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
            debug,
            proptest::option::of(1usize..),
            proptest::option::of(4u32..=12),
        );
        (platform, mem, 1u32..=63, swiotlb, cma, flags).prop_map(
            |(platform, mem, zone_dma_bits, swiotlb, cma, flags)| {
                let (coherent_pool, iommu_strict, iommu_passthrough, dma_debug, entries, line) =
                    flags;
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
                }
            },
        )
    }

    /// Strings that look like option strings: real keys, plausible value characters.
    fn option_like() -> impl Strategy<Value = String> {
        let token = (
            prop_oneof![
                Just("platform"),
                Just("mem"),
                Just("zone_dma_bits"),
                Just("swiotlb"),
                Just("cma"),
                Just("coherent_pool"),
                Just("iommu.strict"),
                Just("iommu.passthrough"),
                Just("dma_debug"),
                Just("dma-debug-entries"),
                Just("cache_line"),
                Just("bogus"),
            ],
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
}
