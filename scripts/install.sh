#!/usr/bin/env bash
# Installs the C library under a prefix:
#
#   scripts/install.sh [--from DIR] PREFIX
#
#   PREFIX/include/dma-mapping.h, PREFIX/include/dma-kernel-compat.h
#   PREFIX/lib/libdma.a, PREFIX/lib/libdma.so
#   PREFIX/lib/pkgconfig/dma.pc
#
# It builds them first with `cargo build --release -p dma-capi`; `--from DIR` takes an
# existing libdma.a and libdma.so from DIR instead (the test suite passes its own build).
# Then, with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig (not needed for a standard prefix):
#
#   cc driver.c $(pkg-config --cflags --libs dma)                    # libdma.so
#   cc -static driver.c $(pkg-config --cflags --libs --static dma)   # everything static
#
# Libs.private lists what libdma.a needs from the C library (Rust's std uses threads,
# dlsym, libm and clock functions).
set -euo pipefail

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: scripts/install.sh [--from DIR] PREFIX"; }

from=
while (($#)); do
  case "$1" in
    --from) (($# >= 2)) || usage; from=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) usage ;;
    *) break ;;
  esac
done
(($# == 1)) || usage

root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
prefix=$(cd "$1" && pwd)

if [[ -z "$from" ]]; then
  (cd "$root" && cargo build --release --locked -p dma-capi)
  target=${CARGO_TARGET_DIR:-${CARGO_BUILD_TARGET_DIR:-target}}
  [[ "$target" = /* ]] || target=$root/$target
  from=$target/release
fi
for lib in libdma.a libdma.so; do
  [[ -f "$from/$lib" ]] || die "$from/$lib not found"
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
[[ -n "$version" ]] || die "no version in $root/Cargo.toml"

install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 0644 "$root/include/dma-mapping.h" "$root/include/dma-kernel-compat.h" "$prefix/include/"
install -m 0644 "$from/libdma.a" "$prefix/lib/"
install -m 0755 "$from/libdma.so" "$prefix/lib/"

cat >"$prefix/lib/pkgconfig/dma.pc" <<EOF
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: dma
Description: The Linux DMA-mapping API for userspace (dma-mapping.h, libdma)
URL: https://github.com/dma-mapping/dma-mapping
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -ldma
Libs.private: -lpthread -ldl -lm -lrt
EOF

printf 'installed libdma %s under %s\n' "$version" "$prefix"
