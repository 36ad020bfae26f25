#!/usr/bin/env bash
# The cross-architecture suites, called by scripts/test.sh (or alone):
#
#   aarch64 under qemu-user, twice: QEMU_CPU=cortex-a72 (64-byte lines), QEMU_CPU=a64fx (256)
#   riscv64 under Debian's qemu-user (7.2, no Zicbom: the fence-only path)
#   riscv64 again under QEMU 10 from bookworm-backports (Zicbom: cbo.clean/cbo.flush live)
#   armv7 under qemu-user (32-bit usize, 64-bit dma_addr_t; the fence-only path)
#   aarch64 in system mode: dma-arch and dma-core inside a Linux guest, as root
#
# The first user-mode run per target is `cargo test --workspace --exclude dma-benches` through
# the runners in .cargo/config.toml (C tests included); the second runs repeat the crates that
# depend on the cache path and line size. dma-arch's expected path and line size are pinned
# in every run, so a silent fallback fails. Installs what it needs when missing, prints the number
# of tests run per target, and fails loudly rather than skipping: a run with a failed or
# ignored test, or with no test at all, fails the script. Measured facts behind the choices:
# shared/reference/cross-and-qemu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'cross.sh: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is required (Rust toolchain from rustup)"
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir = /* ]] || target_dir=$root/$target_dir
# Line tables instead of full debug info: backtraces keep file and line, and the cold build of
# three targets takes about half the time. Build scripts and proc macros (shared with the host
# suite) are built without debug info either way, so nothing of the host build is redone.
export CARGO_PROFILE_DEV_DEBUG=line-tables-only

# --- packages ---------------------------------------------------------------------------
# gcc and g++ per target: the `cc` crate finds <triple>-gcc / <triple>-g++ by itself for the
# C (and C++) tests of capi; the libc6-dev-*-cross packages are only Recommends, so listed.
# qemu-system-arm, cpio and busybox-static serve the system-mode suite.
packages=(
  qemu-user qemu-system-arm busybox-static cpio
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
  gcc-riscv64-linux-gnu g++-riscv64-linux-gnu libc6-dev-riscv64-cross
  gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf libc6-dev-armhf-cross
)
missing=()
for p in "${packages[@]}"; do
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) = installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

targets=(aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
installed=$(rustup target list --installed)
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done

# --- QEMU 10 for riscv64 Zicbom -----------------------------------------------------------
# Debian 12's QEMU 7.2 has no Zicbom. The qemu-user package of bookworm-backports (QEMU 10)
# holds static binaries, so unpacking qemu-riscv64 from it into target/ is enough; a private
# apt state (scripts/apt-private.sh) leaves the system's apt configuration alone.
qemu10=$target_dir/qemu/qemu10/qemu-riscv64
if [[ ! -x $qemu10 ]]; then
  say "fetching qemu-riscv64 from QEMU 10 (bookworm-backports, private apt state)"
  # shellcheck source=scripts/apt-private.sh
  . scripts/apt-private.sh
  dir=$target_dir/qemu/qemu10
  apt_private "$dir/apt" "$(dpkg --print-architecture)" "~-backports"
  rm -rf "$dir/debs" "$dir/unpack"
  mkdir -p "$dir/debs" "$dir/unpack"
  (cd "$dir/debs" && apt-get -qq "${APT_PRIVATE[@]}" download qemu-user)
  dpkg-deb --fsys-tarfile "$dir"/debs/qemu-user_*.deb | tar -x -C "$dir/unpack" ./usr/bin/qemu-riscv64
  mv "$dir/unpack/usr/bin/qemu-riscv64" "$qemu10"
  rm -rf "$dir/debs" "$dir/unpack"
fi
q10_version=$("$qemu10" --version | sed -n 's/^qemu-riscv64 version \([0-9]*\)\..*/\1/p')
[[ ${q10_version:-0} -ge 10 ]] || die "$qemu10 is not QEMU 10 or later: $("$qemu10" --version | head -n 1)"

say "fetching the aarch64 guest kernel and busybox (private apt state)"
scripts/qemu-aarch64-system-runner --fetch

# --- build --------------------------------------------------------------------------------
# One cargo run for the three targets keeps both cores busy across their crate graphs.
say "building the user-mode suites for ${targets[*]}"
target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done
cargo test --locked --workspace --exclude dma-benches "${target_args[@]}" --no-run

# --- runs ---------------------------------------------------------------------------------
summary=()
failed=()

# run LABEL ENV... -- CARGO-ARGS...: one cargo test run; counts the results of every test
# binary and doctest from libtest's "test result:" lines.
run() {
  local label=$1 envs=() log start status passed failed_n ignored
  shift
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  log=$target_dir/cross-logs/${label//[^A-Za-z0-9_.-]/_}.log
  mkdir -p "$(dirname "$log")"
  say "$label"
  start=$SECONDS
  set +e
  env "${envs[@]}" cargo test --locked "$@" --no-fail-fast 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  read -r passed failed_n ignored < <(awk '
    /^test result: / {
      for (i = 1; i <= NF; i++) {
        if ($(i + 1) ~ /^passed/) p += $i
        if ($(i + 1) ~ /^failed/) f += $i
        if ($(i + 1) ~ /^ignored/) g += $i
      }
    }
    END { print p + 0, f + 0, g + 0 }' "$log")
  local line
  line=$(printf '%-48s %4d passed, %d failed, %d ignored (%ds)' "$label" "$passed" "$failed_n" "$ignored" $((SECONDS - start)))
  summary+=("$line")
  printf '%s\n' "$line"
  if ((status != 0)); then
    failed+=("$label: cargo test exited with $status (log: $log)")
  elif ((failed_n != 0 || ignored != 0)); then
    failed+=("$label: $failed_n failed, $ignored ignored: no test may be skipped (log: $log)")
  elif ((passed == 0)); then
    failed+=("$label: no test ran (log: $log)")
  fi
}

# The first run per target is the whole workspace. The second runs (another line size,
# another cache path) repeat the crates whose behaviour depends on them: dma-arch, dma-core
# (its simulated cache works in lines of dma-arch's size and calls the real instructions) and
# the integration tests. dma-cma is an index allocator with no arch code, and capi, dma-iommu
# sit on dma-core; repeating them would cost minutes of emulation and prove nothing new.
user=(--workspace --exclude dma-benches)
again=(-p dma-arch -p dma-core -p dma-tests)
run "aarch64 qemu-user cortex-a72" \
  QEMU_CPU=cortex-a72 DMA_ARCH_EXPECT_PATH=Aarch64Dc DMA_ARCH_EXPECT_LINE=64 -- \
  "${user[@]}" --target aarch64-unknown-linux-gnu
run "aarch64 qemu-user a64fx" \
  QEMU_CPU=a64fx DMA_ARCH_EXPECT_PATH=Aarch64Dc DMA_ARCH_EXPECT_LINE=256 -- \
  "${again[@]}" --target aarch64-unknown-linux-gnu
run "riscv64 qemu-user $(qemu-riscv64 --version | sed -n 's/.*version \([0-9.]*\).*/\1/p;q')" \
  DMA_ARCH_EXPECT_PATH=FenceOnly DMA_ARCH_EXPECT_LINE=64 -- \
  "${user[@]}" --target riscv64gc-unknown-linux-gnu
# Same array form as .cargo/config.toml (a --config override of the other form fails).
q10_runner=$(printf '["%s","-L","/usr/riscv64-linux-gnu","-E","DMA_TEST_RUNNER=%s -L /usr/riscv64-linux-gnu"]' \
  "$qemu10" "$qemu10")
run "riscv64 qemu-user $("$qemu10" --version | sed -n 's/.*version \([0-9.]*\).*/\1/p;q') zicbom" \
  DMA_ARCH_EXPECT_PATH=RiscvZicbom DMA_ARCH_EXPECT_LINE=64 -- \
  --config "target.riscv64gc-unknown-linux-gnu.runner=$q10_runner" \
  "${again[@]}" --target riscv64gc-unknown-linux-gnu
# One test thread: every simulated System maps its two RAM views (about 1 GiB with the
# default layout) into the process, and a 32-bit process has room for two or three at once.
run "armv7 qemu-user" \
  RUST_TEST_THREADS=1 DMA_ARCH_EXPECT_PATH=FenceOnly DMA_ARCH_EXPECT_LINE=64 -- \
  "${user[@]}" --target armv7-unknown-linux-gnueabihf

# System mode: static binaries (the initramfs has no libc), in their own target directory so
# the dynamic user-mode build above is not rebuilt back and forth. cortex-a57 has 64-byte lines.
static="-C target-feature=+crt-static"
run "aarch64 qemu-system (dma-arch, dma-core)" \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$root/scripts/qemu-aarch64-system-runner" \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="$static" RUSTDOCFLAGS="$static" \
  DMA_ARCH_EXPECT_PATH=Aarch64Dc DMA_ARCH_EXPECT_LINE=64 -- \
  -p dma-arch -p dma-core --target aarch64-unknown-linux-gnu --target-dir "$target_dir/system-aarch64"

say "cross-architecture summary"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  printf '\ncross.sh: FAILED\n' >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
