//! Sets `cfg(dma_arch_armv7)` for ARMv7-A Linux targets, which have `dsb`/`dmb`.
//!
//! Stable Rust does not expose `target_feature = "v7"` to `cfg`, and the generic `arm` targets
//! are ARMv6, where those instructions do not exist, so the target name decides.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(dma_arch_armv7)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let v7_a = target.starts_with("armv7-") || target.starts_with("armv7a-") || target.starts_with("thumbv7neon-");
    if arch == "arm" && (os == "linux" || os == "android") && v7_a {
        println!("cargo::rustc-cfg=dma_arch_armv7");
    }
}
