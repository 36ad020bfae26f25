//! Passes the target and host triples to the C test suite (tests/c_suite.rs), which
//! drives the `cc` crate outside a build script.

fn main() {
    for var in ["TARGET", "HOST", "OPT_LEVEL"] {
        if let Ok(v) = std::env::var(var) {
            println!("cargo:rustc-env=DMA_CAPI_{var}={v}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
