//! Declares the `loom` cfg, set only by `RUSTFLAGS="--cfg loom"` for the model-checking tests.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
