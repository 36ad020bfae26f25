#!/usr/bin/env bash
# The QEMU system suite: boots an x86_64 Linux guest with QEMU's `edu` DMA device twice,
# without an IOMMU and behind an emulated Intel IOMMU (VFIO), runs the guest test program
# (tests/qemu/guest) in each, and fails on any failing or missing result line.
#
# Installs what it needs when missing (qemu-system-x86, busybox-static, cpio); the kernel
# and its modules come from Debian's linux-image-*-cloud-amd64-unsigned package, resolved
# at run time and cached under target/qemu/.
#
#   tests/qemu/run.sh              both boots
#   tests/qemu/run.sh noiommu      one of them (noiommu | iommu)
#
# Console logs are kept in target/qemu/<boot>.log.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '[qemu] %s\n' "$*"; }
die() { printf 'tests/qemu/run.sh: %s\n' "$*" >&2; exit 1; }

TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=target/qemu
TRIPLE=x86_64-unknown-linux-gnu
BOOT_TIMEOUT=${QEMU_BOOT_TIMEOUT:-120}
mkdir -p "$OUT"

# Result lines each boot must print (`RESULT <name> PASS ...`).
EXPECT_noiommu="edu_probe no_bus_master_no_dma bus_master raw_pagemap_roundtrip host_system \
host_coherent_roundtrip host_noncoherent_roundtrip host_map_single_bounce"
EXPECT_iommu="vfio_open vfio_roundtrip vfio_noncontiguous vfio_unmap_fault vfio_dmaops_device \
vfio_dmaops_coherent vfio_dmaops_map_single_high vfio_dmaops_noncontiguous"
# Modules per boot, dependencies first (busybox insmod has no dependency data).
MODS_noiommu="uio uio_pci_generic"
MODS_iommu="vfio vfio_iommu_type1 irqbypass vfio_virqfd vfio-pci-core vfio-pci"

# --- host packages ----------------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
# Only the static busybox runs in an initramfs without a libc.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v cpio >/dev/null || missing+=(cpio)
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- kernel -------------------------------------------------------------------------------
# linux-image-cloud-amd64 depends on the current linux-image-<abi>-cloud-amd64; its
# -unsigned twin holds the same vmlinuz and modules.
resolve_kernel() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2 "-unsigned"; exit }'
}
pkg=$(resolve_kernel || true)
if [ -z "$pkg" ] || ! apt-cache show "$pkg" >/dev/null 2>&1; then
  say "apt lists do not know the cloud kernel; apt-get update"
  apt-get update -qq
  pkg=$(resolve_kernel)
fi
[ -n "$pkg" ] || die "cannot resolve linux-image-*-cloud-amd64-unsigned"
kdir="$OUT/kernel/$pkg"
if [ ! -f "$kdir/done" ]; then
  say "downloading $pkg"
  rm -rf "$kdir" && mkdir -p "$kdir"
  (cd "$kdir" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  deb=$(ls "$kdir"/*.deb 2>/dev/null | head -n1)
  [ -n "$deb" ] || die "apt-get download $pkg failed"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir" --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/uio' \
    './lib/modules/*/kernel/drivers/vfio' './lib/modules/*/kernel/virt/lib'
  rm -f "$deb"
  touch "$kdir/done"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n1)
modroot=$(ls -d "$kdir"/lib/modules/* | head -n1)

# --- guest program --------------------------------------------------------------------------
say "building the guest program (static, $TRIPLE)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --locked --release -p dma-qemu-guest --target "$TRIPLE"
guest="$TARGET_DIR/$TRIPLE/release/dma-qemu-guest"
ldd "$guest" 2>&1 | grep -q "=>" && die "$guest is not statically linked"

# --- initramfs ------------------------------------------------------------------------------
find_module() { # name with - or _ alike
  local pat=${1//[-_]/[-_]}
  find "$modroot" -name "$pat.ko" | head -n1
}
module_deps() { tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | tr ',' ' '; }

root="$OUT/initramfs"
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp /bin/busybox "$root/bin/busybox"
cp "$guest" "$root/bin/dma-qemu-guest"
for boot in noiommu iommu; do
  mods_var="MODS_$boot"
  : >"$root/lib/modules/order.$boot"
  for m in ${!mods_var}; do
    f=$(find_module "$m")
    [ -n "$f" ] || die "module $m is not in $pkg"
    for d in $(module_deps "$f"); do
      grep -qx "${d//-/_}" <(tr '-' '_' <"$root/lib/modules/order.$boot") ||
        die "module $m needs $d: list it before $m in MODS_$boot"
    done
    cp "$f" "$root/lib/modules/"
    basename "$f" .ko >>"$root/lib/modules/order.$boot"
  done
done
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mode=$(sed -n 's/.*dmatest=\([a-z]*\).*/\1/p' /proc/cmdline)
echo "GUEST mode=$mode kernel=$(uname -r)"
for m in $(cat /lib/modules/order.$mode); do
  insmod /lib/modules/$m.ko || echo "RESULT insmod_$m FAIL insmod failed"
done
case $mode in
  noiommu) drv=uio_pci_generic ;;
  iommu) drv=vfio-pci ;;
esac
echo "1234 11e8" >/sys/bus/pci/drivers/$drv/new_id || echo "RESULT bind_$drv FAIL new_id refused"
echo 1 >/proc/sys/vm/drop_caches
# 2 MiB pages for the host platform's bounce pool (physically contiguous memory).
echo 32 >/proc/sys/vm/nr_hugepages
/bin/dma-qemu-guest $mode
echo "GUEST done rc=$?"
reboot -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT/initramfs.cpio.gz"

# --- boots ----------------------------------------------------------------------------------
boot() { # name, extra kernel args, extra qemu args...
  local name=$1 append=$2
  shift 2
  local log="$OUT/$name.log"
  say "booting $name"
  local t0=$SECONDS
  timeout --foreground -k 5 "$BOOT_TIMEOUT" qemu-system-x86_64 -M q35 -m 512 -smp 1 -nographic -no-reboot \
    -kernel "$vmlinuz" -initrd "$OUT/initramfs.cpio.gz" \
    -append "console=ttyS0 panic=-1 loglevel=1 dmatest=$name $append" "$@" -device edu \
    </dev/null >"$log" 2>&1 || say "qemu exited with $? (see $log)"
  tr -d '\r' <"$log" >"$log.tmp" && mv "$log.tmp" "$log"
  local secs=$((SECONDS - t0)) fail=0 expect_var="EXPECT_$name"
  grep '^RESULT ' "$log" | sed 's/^/    /'
  for r in ${!expect_var}; do
    grep -q "^RESULT $r PASS" "$log" || { fail=1; grep -q "^RESULT $r " "$log" || echo "    RESULT $r MISSING"; }
  done
  grep -q '^RESULT [^ ]* FAIL' "$log" && fail=1
  grep -q '^GUEST done rc=0' "$log" || fail=1
  if ((fail)); then
    say "$name FAILED after ${secs}s; last lines of $log:"
    tail -n 25 "$log" | sed 's/^/    | /'
    return 1
  fi
  say "$name passed in ${secs}s"
}

status=0
for b in "${@:-noiommu iommu}"; do
  for one in $b; do
    case $one in
      noiommu) boot noiommu "" || status=1 ;;
      iommu) boot iommu "intel_iommu=on" -device intel-iommu || status=1 ;;
      *) die "unknown boot $one (noiommu | iommu)" ;;
    esac
  done
done
exit $status
