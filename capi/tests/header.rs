//! Regenerates include/dma-mapping.h with cbindgen and fails when the checked-in copy
//! differs. `DMA_BLESS=1` rewrites it instead.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("capi sits in the workspace").to_path_buf()
}

fn generate() -> String {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("capi/cbindgen.toml parses");
    let read = |f: &str| std::fs::read_to_string(crate_dir.join("cbindgen").join(f)).expect("fragment is readable");
    config.after_includes = Some(read("prelude.h"));
    config.trailer = Some(read("trailer.h"));
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn checked_in_header_matches_the_source() {
    let path = root().join("include/dma-mapping.h");
    let fresh = generate();
    if std::env::var_os("DMA_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("include/dma-mapping.h is writable");
        return;
    }
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if old != fresh {
        let line = old
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(old.lines().count().min(fresh.lines().count()));
        panic!(
            "include/dma-mapping.h is out of date (first difference at line {}); \
             run `DMA_BLESS=1 cargo test -p dma-capi --test header` and commit the result",
            line + 1
        );
    }
}

#[test]
fn header_has_no_rust_types() {
    let h = generate();
    for bad in ["Arc<", "Option<", "Box<", "Result<", "Scatterlist", "DmaDataDirection", "usize", "u64 ", "c_void"] {
        assert!(!h.contains(bad), "the header mentions the Rust type {bad:?}");
    }
    for want in [
        "DMA_BIT_MASK",
        "DMA_MAPPING_ERROR",
        "DMA_ATTR_SKIP_CPU_SYNC",
        "GFP_KERNEL",
        "DMA_NONE = 3",
        "struct scatterlist",
        "struct sg_table",
    ] {
        assert!(h.contains(want), "the header lacks {want:?}");
    }
}
