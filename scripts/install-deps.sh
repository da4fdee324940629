#!/bin/sh
# Installs the Debian packages fusekeeper needs for one purpose:
#   build  - compiler, meson, libfuse3, libseccomp, json-c and libsystemd headers
#   test   - build plus the real daemons (bindfs, rclone, gocryptfs, ...) and tools the
#            tests drive, and what fuzz needs (the suite runs the fuzzers briefly)
#   demo   - build plus what the demo uses
#   bench  - build plus what the benchmarks use
#   fuzz   - build plus clang (14 on Debian 12) and its libFuzzer (libclang-rt-14-dev)
#   vm     - test plus what vm/ needs to boot Debian's kernels under qemu with a busybox
#            initramfs (make vmcheck, make vmshell) and to build fuse.ko (make kmod);
#            the kernels themselves are fetched by vm/ with apt-get download, never installed
# Packages already present are left alone; apt runs only when something is missing.
set -eu

purpose=${1:-build}
pkgs="gcc meson ninja-build pkg-config libfuse3-dev fuse3 libseccomp-dev libjson-c-dev libsystemd-dev liburing-dev"
fuzz_pkgs="clang libclang-rt-14-dev"
case "$purpose" in
build) ;;
test) pkgs="$pkgs lxcfs sshfs bindfs rclone gocryptfs fuse-overlayfs squashfuse squashfs-tools openssh-server openssh-client util-linux procps iproute2 python3 attr perl $fuzz_pkgs" ;;
demo) pkgs="$pkgs procps" ;;
bench) pkgs="$pkgs procps fio" ;;
fuzz) pkgs="$pkgs $fuzz_pkgs" ;;
vm) pkgs="$pkgs lxcfs sshfs bindfs rclone gocryptfs fuse-overlayfs squashfuse squashfs-tools openssh-server openssh-client util-linux procps iproute2 python3 attr perl
	qemu-system-x86 busybox-static cpio xz-utils zstd kmod patch bc flex bison libelf-dev libssl-dev $fuzz_pkgs" ;;
*) echo "usage: $0 build|test|demo|bench|fuzz|vm" >&2; exit 2 ;;
esac

missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing Debian packages:$missing" >&2
	echo "install-deps: run as root, or install them with: sudo apt-get install$missing" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
