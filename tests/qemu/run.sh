#!/usr/bin/env bash
# The QEMU system suite: boots Linux guests with QEMU's `edu` DMA device, runs the guest test
# program (tests/qemu/guest) and, without an IOMMU, the C example driver
# (examples/c/edu_driver.c, linked statically with libdma.a) in each, and fails on any
# failing or missing result line.
#
#   noiommu        x86_64 q35, no IOMMU: sysfs resource0, physical addresses (host platform)
#   iommu          x86_64 q35 with intel-iommu: vfio-pci and the VFIO backend
#   arm64-noiommu  aarch64 virt (cortex-a57), no IOMMU. virt has no RAM below 1 GiB, so
#                  edu gets a 31-bit mask (dma_mask=0x7fffffff). RAM is two NUMA nodes:
#                  node 0, 1 GiB at 1 GiB (the device reaches it; hugepages come from it),
#                  and node 1, 64 MiB at 2 GiB (it does not), which holds the CPU. The
#                  arm64 page allocator hands out pages in ascending order, so without the
#                  second node no page above the mask would ever reach a test; with it,
#                  user pages come from node 1 first, then from node 0
#   arm64-iommu    aarch64 virt with iommu=smmuv3 (and GICv3, whose ITS isolates MSIs: VFIO
#                  refuses a group without it): vfio-pci, edu's default 28-bit mask. Only
#                  when the kernel has the SMMUv3 driver (CONFIG_ARM_SMMU_V3=y or m)
#
# Installs what it needs when missing (qemu-system-x86, qemu-system-arm, busybox-static,
# cpio, gcc-aarch64-linux-gnu, the Rust aarch64 target). Kernels come from Debian:
# linux-image-*-cloud-amd64-unsigned from the system's apt; linux-image-*-cloud-arm64 and the
# arm64 busybox-static through a private apt state (the system's sources, arm64 only;
# dpkg's architectures and the system's lists stay untouched). Everything is cached under
# target/qemu/.
#
#   tests/qemu/run.sh                         every boot
#   tests/qemu/run.sh noiommu arm64-iommu     some of them
#
# Console logs are kept in target/qemu/<boot>.log.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '[qemu] %s\n' "$*"; }
die() { printf 'tests/qemu/run.sh: %s\n' "$*" >&2; exit 1; }

TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=target/qemu
BOOT_TIMEOUT=${QEMU_BOOT_TIMEOUT:-120}
ALL_BOOTS="noiommu iommu arm64-noiommu arm64-iommu"
mkdir -p "$OUT"

# Result lines each kind of boot must print (`RESULT <name> PASS ...`).
EXPECT_noiommu="edu_probe no_bus_master_no_dma bus_master raw_pagemap_roundtrip host_system \
host_coherent_roundtrip host_noncoherent_roundtrip host_map_single_bounce \
c_edu_probe c_bus_master c_system c_devices c_coherent_roundtrip c_noncoherent_roundtrip \
c_map_single_bounce c_dma_debug_clean"
EXPECT_iommu="vfio_open vfio_roundtrip vfio_noncontiguous vfio_unmap_fault vfio_dmaops_device \
vfio_dmaops_coherent vfio_dmaops_map_single_high vfio_dmaops_noncontiguous \
c_vfio_system c_vfio_device c_vfio_config c_vfio_bus_master c_vfio_bar0 c_vfio_coherent_roundtrip \
c_vfio_map_single_pages c_vfio_map_single_malloc c_vfio_dma_debug_clean"
# Programs each kind of boot runs; each must end with `GUEST <program> rc=0`.
PROGRAMS_noiommu="dma-qemu-guest edu_driver"
PROGRAMS_iommu="dma-qemu-guest edu_vfio"
# Modules each kind of boot loads; their dependencies come along, in order.
MODS_noiommu="uio_pci_generic"
MODS_iommu="vfio_iommu_type1 vfio-pci"

# --- the boots ----------------------------------------------------------------------------
# boot_spec NAME sets ARCH, MODE (the guest program's mode), BITS (edu's DMA mask width),
# EDU (the -device argument), APPEND (extra kernel arguments) and MACHINE (qemu and its
# arguments up to the kernel).
boot_spec() {
  case $1 in
    noiommu | iommu)
      ARCH=x86_64 MODE=$1 BITS=28 EDU=edu APPEND="console=ttyS0"
      MACHINE=(qemu-system-x86_64 -M q35 -m 512 -smp 1)
      if [ "$1" = iommu ]; then
        APPEND+=" intel_iommu=on"
        MACHINE+=(-device intel-iommu)
      fi
      ;;
    arm64-noiommu)
      ARCH=aarch64 MODE=noiommu BITS=31 EDU=edu,dma_mask=0x7fffffff APPEND="console=ttyAMA0"
      MACHINE=(qemu-system-aarch64 -M virt,gic-version=3 -cpu cortex-a57 -m 1088 -smp 1 -nic none
        -object memory-backend-ram,id=low,size=1024M -object memory-backend-ram,id=high,size=64M
        -numa node,nodeid=0,memdev=low -numa node,nodeid=1,memdev=high,cpus=0)
      ;;
    arm64-iommu)
      ARCH=aarch64 MODE=iommu BITS=28 EDU=edu APPEND="console=ttyAMA0"
      MACHINE=(qemu-system-aarch64 -M virt,gic-version=3,iommu=smmuv3 -cpu cortex-a57 -m 1024 -smp 1 -nic none)
      ;;
    *) die "unknown boot $1 (one of: $ALL_BOOTS)" ;;
  esac
}

boots=()
for b in ${@:-$ALL_BOOTS}; do
  boot_spec "$b"
  boots+=("$b")
done
arches=$(for b in "${boots[@]}"; do boot_spec "$b" && echo "$ARCH"; done | sort -u)
need_arch() { grep -qx "$1" <<<"$arches"; }

# --- host packages ----------------------------------------------------------------------
missing=()
command -v cpio >/dev/null || missing+=(cpio)
if need_arch x86_64; then
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  # Only the static busybox runs in an initramfs without a libc.
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
fi
if need_arch aarch64; then
  command -v qemu-system-aarch64 >/dev/null || missing+=(qemu-system-arm)
  command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
  # Only a Recommends of the cross gcc, and needed for -static.
  dpkg -s libc6-dev-arm64-cross >/dev/null 2>&1 || missing+=(libc6-dev-arm64-cross)
fi
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if need_arch aarch64 && ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  say "adding the Rust target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi

# --- apt for arm64 ------------------------------------------------------------------------
# A private apt state: the system's sources, for arm64 only, with its own lists, cache and
# an empty dpkg status.
APT_ARM64_DIR=$OUT/aarch64/apt
apt_arm64_opts() {
  local d=$PWD/$APT_ARM64_DIR
  APT_ARM64=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64
    -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts="$d/sources.list.d"
    -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" -o Dir::State::status=/dev/null
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
    -o APT::Sandbox::User=root -q)
}
apt_arm64_update() {
  local d=$APT_ARM64_DIR
  say "apt-get update (private arm64 state in $d)"
  rm -rf "$d/sources.list.d" && mkdir -p "$d/sources.list.d" "$d/lists/partial" "$d/cache/archives/partial"
  if [ -f /etc/apt/sources.list ]; then cp /etc/apt/sources.list "$d/sources.list"; else : >"$d/sources.list"; fi
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && cp "$f" "$d/sources.list.d/"
  done
  apt-get "${APT_ARM64[@]}" update >/dev/null
}

# --- kernels ------------------------------------------------------------------------------
# fetch_deb DIR PACKAGE [arm64]: downloads PACKAGE's .deb into DIR, prints its path.
fetch_deb() {
  local dir=$1 pkg=$2 deb
  rm -rf "$dir" && mkdir -p "$dir"
  if [ "${3:-}" = arm64 ]; then
    (cd "$dir" && apt-get "${APT_ARM64[@]}" download "$pkg" >/dev/null) || return 1
  else
    (cd "$dir" && apt-get -q -o APT::Sandbox::User=root download "$pkg" >/dev/null) || return 1
  fi
  deb=$(ls "$dir"/*.deb 2>/dev/null | head -n1)
  [ -n "$deb" ] && echo "$deb"
}

# kernel_x86_64 / kernel_aarch64 set KDIR (vmlinuz, config and the modules under it), PKG
# and BUSYBOX.
kernel_x86_64() {
  # linux-image-cloud-amd64 depends on the current linux-image-<abi>-cloud-amd64; its
  # -unsigned twin holds the same vmlinuz and modules.
  resolve_amd64() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2 "-unsigned"; exit }'; }
  PKG=$(resolve_amd64 || true)
  if [ -z "$PKG" ] || ! apt-cache show "$PKG" >/dev/null 2>&1; then
    say "apt lists do not know the cloud kernel; apt-get update"
    apt-get update -qq
    PKG=$(resolve_amd64)
  fi
  [ -n "$PKG" ] || die "cannot resolve linux-image-*-cloud-amd64-unsigned"
  KDIR=$OUT/kernel/$PKG
  if [ ! -f "$KDIR/done" ] || ! ls "$KDIR"/boot/config-* >/dev/null 2>&1; then
    say "downloading $PKG"
    local deb
    deb=$(fetch_deb "$KDIR" "$PKG") || die "apt-get download $PKG failed"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$KDIR" --wildcards './boot/vmlinuz-*' './boot/config-*' \
      './lib/modules/*/kernel/drivers/uio' './lib/modules/*/kernel/drivers/vfio' './lib/modules/*/kernel/virt/lib'
    rm -f "$deb"
    touch "$KDIR/done"
  fi
  BUSYBOX=/bin/busybox
}

kernel_aarch64() {
  apt_arm64_opts
  resolve_arm64() { apt-cache "${APT_ARM64[@]}" depends linux-image-cloud-arm64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'; }
  PKG=$( [ -d "$APT_ARM64_DIR/lists" ] && resolve_arm64 || true)
  if [ -z "$PKG" ]; then
    apt_arm64_update
    PKG=$(resolve_arm64)
  fi
  [ -n "$PKG" ] || die "cannot resolve linux-image-*-cloud-arm64 (private apt state in $APT_ARM64_DIR)"
  KDIR=$OUT/kernel/$PKG
  BUSYBOX=$OUT/aarch64/busybox/bin/busybox
  if [ ! -f "$KDIR/done" ] || [ ! -x "$BUSYBOX" ]; then
    local dl=$OUT/aarch64/download deb bb
    if ! deb=$(fetch_deb "$dl/kernel" "$PKG" arm64) || ! bb=$(fetch_deb "$dl/busybox" busybox-static arm64); then
      apt_arm64_update # stale lists: the archive moved on
      PKG=$(resolve_arm64)
      KDIR=$OUT/kernel/$PKG
      deb=$(fetch_deb "$dl/kernel" "$PKG" arm64) || die "apt-get download $PKG (arm64) failed"
      bb=$(fetch_deb "$dl/busybox" busybox-static arm64) || die "apt-get download busybox-static (arm64) failed"
    fi
    say "unpacking $PKG and busybox-static (arm64)"
    rm -rf "$KDIR" "$OUT/aarch64/busybox" && mkdir -p "$KDIR"
    dpkg-deb -x "$bb" "$OUT/aarch64/busybox"
    local dirs=('./lib/modules/*/kernel/drivers/uio' './lib/modules/*/kernel/drivers/vfio')
    # The SMMUv3 driver as a module lives in drivers/iommu; built in, that is absent.
    if dpkg-deb -c "$deb" | grep '/kernel/drivers/iommu/' >/dev/null; then
      dirs+=('./lib/modules/*/kernel/drivers/iommu')
    fi
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$KDIR" --wildcards './boot/vmlinuz-*' './boot/config-*' "${dirs[@]}"
    rm -rf "$dl"
    touch "$KDIR/done"
  fi
}

# --- per architecture: kernel, programs, initramfs ----------------------------------------
find_module() { # root, name with - or _ alike
  local pat=${2//[-_]/[-_]}
  find "$1" -name "$pat.ko" | head -n1
}
module_deps() { tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | tr ',' ' '; }

# add_module ROOT ORDER NAME: copies NAME's module after its dependencies into the
# initramfs and appends them to the ORDER file (busybox insmod has no dependency data).
add_module() {
  local modroot=$1 order=$2 f base
  f=$(find_module "$modroot" "$3")
  [ -n "$f" ] || die "module $3 is not in $PKG"
  base=$(basename "$f" .ko)
  grep -qx "${base//-/_}" <(tr '-' '_' <"$order") && return 0
  for d in $(module_deps "$f"); do add_module "$modroot" "$order" "$d"; done
  cp "$f" "$(dirname "$order")/"
  echo "$base" >>"$order"
}

is_static() { ! readelf -l "$1" 2>/dev/null | grep 'program interpreter' >/dev/null; }

# SMMU[arch]: y, m or empty, from the kernel's config.
declare -A SMMU
prepare_arch() {
  local arch=$1 triple=$1-unknown-linux-gnu cc=cc
  [ "$arch" = aarch64 ] && cc=aarch64-linux-gnu-gcc
  "kernel_$arch"
  local vmlinuz config modroot
  vmlinuz=$(ls "$KDIR"/boot/vmlinuz-* | head -n1)
  config=$(ls "$KDIR"/boot/config-* | head -n1)
  modroot=$(ls -d "$KDIR"/lib/modules/* | head -n1)
  SMMU[$arch]=$(sed -n 's/^CONFIG_ARM_SMMU_V3=\([ym]\)$/\1/p' "$config")

  say "building the guest program and libdma.a (static, $triple)"
  # One build for both: the same flags share every dependency. crt-static drops libdma.so
  # (a cdylib cannot be static) and cargo says so; libdma.a is all the C driver needs.
  RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --locked --release -p dma-qemu-guest -p dma-capi \
    --target "$triple" 2> >(grep -v -e "dropping unsupported crate type \`cdylib\`" -e "^$" >&2)
  local guest=$TARGET_DIR/$triple/release/dma-qemu-guest driver=$OUT/$arch/edu_driver
  is_static "$guest" || die "$guest is not statically linked"
  say "building examples/c/edu_driver.c ($cc -static)"
  mkdir -p "$OUT/$arch"
  # Static glibc warns at link time about getaddrinfo and friends (std links them, the
  # driver never calls them): show the compiler's output only when it fails.
  "$cc" -static -O2 -std=c11 -Wall -Wextra -Werror -I include examples/c/edu_driver.c \
    "$TARGET_DIR/$triple/release/libdma.a" -lpthread -ldl -lm -lrt -o "$driver" 2>"$OUT/$arch/cc.log" ||
    { cat "$OUT/$arch/cc.log" >&2; die "edu_driver.c does not build for $arch"; }
  is_static "$driver" || die "$driver is not statically linked"
  "$cc" -static -O2 -std=c11 -Wall -Wextra -Werror -I include examples/c/edu_vfio.c \
    "$TARGET_DIR/$triple/release/libdma.a" -lpthread -ldl -lm -lrt -o "$OUT/$arch/edu_vfio" 2>"$OUT/$arch/cc-vfio.log" ||
    { cat "$OUT/$arch/cc-vfio.log" >&2; die "edu_vfio.c does not build for $arch"; }
  is_static "$OUT/$arch/edu_vfio" || die "$OUT/$arch/edu_vfio is not statically linked"

  local root=$OUT/$arch/initramfs
  rm -rf "$root"
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
  cp "$BUSYBOX" "$root/bin/busybox"
  cp "$guest" "$root/bin/dma-qemu-guest"
  cp "$driver" "$root/bin/edu_driver"
  cp "$OUT/$arch/edu_vfio" "$root/bin/edu_vfio"
  for mode in noiommu iommu; do
    local mods_var=MODS_$mode order=$root/lib/modules/order.$mode
    local mods=${!mods_var}
    [ "$mode" = iommu ] && [ "${SMMU[$arch]}" = m ] && mods="arm_smmu_v3 $mods"
    : >"$order"
    for m in $mods; do add_module "$modroot" "$order" "$m"; done
  done
  cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mode= bits=28
for w in $(cat /proc/cmdline); do
  case $w in
    dmatest=*) mode=${w#*=} ;;
    edubits=*) bits=${w#*=} ;;
  esac
done
echo "GUEST mode=$mode edu_dma_bits=$bits arch=$(uname -m) kernel=$(uname -r)"
for m in $(cat /lib/modules/order.$mode); do
  insmod /lib/modules/$m.ko || echo "RESULT insmod_$m FAIL insmod failed"
done
case $mode in
  noiommu) drv=uio_pci_generic ;;
  iommu) drv=vfio-pci ;;
esac
echo "1234 11e8" >/sys/bus/pci/drivers/$drv/new_id || echo "RESULT bind_$drv FAIL new_id refused"
echo 1 >/proc/sys/vm/drop_caches
# A userspace driver's pinned pages must stay where pagemap says they are: no compaction of
# mlocked pages, no NUMA balancing (arm64-noiommu has two nodes).
echo 0 >/proc/sys/vm/compact_unevictable_allowed
[ -f /proc/sys/kernel/numa_balancing ] && echo 0 >/proc/sys/kernel/numa_balancing
# 2 MiB pages for the host platform's bounce pool (physically contiguous memory), from
# node 0: on arm64-noiommu that is the memory below the device's mask.
hp=/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages
[ -f $hp ] || hp=/proc/sys/vm/nr_hugepages
echo 32 >$hp
echo "GUEST uptime $(cut -d' ' -f1 /proc/uptime)"
/bin/dma-qemu-guest $mode $bits
echo "GUEST dma-qemu-guest rc=$? uptime $(cut -d' ' -f1 /proc/uptime)"
if [ "$mode" = noiommu ]; then
  # The C example driver on libdma's host platform, with dma-debug checking its calls.
  limit=$(printf '0x%x' $((1 << bits)))
  DMA_OPTS="platform=host host_mem=4M hugepages=16 host_low=2M,$limit swiotlb=1M dma_debug=1" /bin/edu_driver $bits
  echo "GUEST edu_driver rc=$? uptime $(cut -d' ' -f1 /proc/uptime)"
fi
if [ "$mode" = iommu ]; then
  # The C driver through VFIO: the edu device by vendor and device id, wherever it sits.
  addr=
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat $d/vendor)" = 0x1234 ] && [ "$(cat $d/device)" = 0x11e8 ] && addr=${d##*/}
  done
  DMA_OPTS="platform=host host_mem=4M swiotlb=0 dma_debug=1" /bin/edu_vfio $addr $bits
  echo "GUEST edu_vfio rc=$? uptime $(cut -d' ' -f1 /proc/uptime)"
fi
reboot -f
EOF
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT/$arch/initramfs.cpio.gz"
  declare -g "VMLINUZ_$arch=$vmlinuz"
}

for a in $arches; do prepare_arch "$a"; done

# --- boots ----------------------------------------------------------------------------------
boot() {
  local name=$1 log=$OUT/$1.log
  boot_spec "$name"
  local vmlinuz_var=VMLINUZ_$ARCH
  say "booting $name"
  local t0=$SECONDS
  timeout --foreground -k 5 "$BOOT_TIMEOUT" "${MACHINE[@]}" -nographic -no-reboot \
    -kernel "${!vmlinuz_var}" -initrd "$OUT/$ARCH/initramfs.cpio.gz" \
    -append "$APPEND panic=-1 loglevel=1 dmatest=$MODE edubits=$BITS" -device "$EDU" \
    </dev/null >"$log" 2>&1 || say "qemu exited with $? (see $log)"
  tr -d '\r' <"$log" >"$log.tmp" && mv "$log.tmp" "$log"
  local secs=$((SECONDS - t0)) fail=0 expect_var=EXPECT_$MODE programs_var=PROGRAMS_$MODE
  grep '^RESULT ' "$log" | sed 's/^/    /'
  for r in ${!expect_var}; do
    grep -q "^RESULT $r PASS" "$log" || { fail=1; grep -q "^RESULT $r " "$log" || echo "    RESULT $r MISSING"; }
  done
  grep -q '^RESULT [^ ]* FAIL' "$log" && fail=1
  for p in ${!programs_var}; do
    grep -q "^GUEST $p rc=0 " "$log" || { fail=1; echo "    $p did not exit with 0"; }
  done
  # edu clamps an address beyond its mask and says so: the data went to the wrong place.
  if grep -q '^EDU: clamping DMA' "$log"; then
    fail=1
    grep '^EDU: clamping DMA' "$log" | head -n3 | sed 's/^/    /'
  fi
  if ((fail)); then
    say "$name FAILED after ${secs}s; last lines of $log:"
    tail -n 25 "$log" | sed 's/^/    | /'
    return 1
  fi
  say "$name passed in ${secs}s"
}

status=0
for b in "${boots[@]}"; do
  if [ "$b" = arm64-iommu ] && [ -z "${SMMU[aarch64]}" ]; then
    say "arm64-iommu: not booted: the arm64 kernel has no SMMUv3 driver (CONFIG_ARM_SMMU_V3 unset)"
    continue
  fi
  boot "$b" || status=1
done
exit $status
