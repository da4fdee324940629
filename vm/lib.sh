# shellcheck shell=bash
# vm/lib.sh - sourced by vm/*.sh and kernel/build-kmod.sh: which Debian kernel a line (6.1,
# 6.12) means today, and where its packages and the guests built from them are cached.
#
#   vm_resolve LINE          sets KABI (6.1.0-57-amd64), KVER (the packages' version,
#                            6.1.192-3), KPKG (linux-image-KABI) and KDIR (its cache dir)
#   vm_fetch DIR PKG=VER...  apt-get download into DIR what DIR does not hold yet
#   vm_unpack_image          the image package unpacked in $KDIR/image (once)
#   vm_log MSG, vm_die MSG   one line on stderr, the second exits 1
#
# Nothing is installed on the host: packages are downloaded and unpacked under
# $VM_CACHE (default /var/cache/fusekeeper-vm), one directory per kernel ABI and
# package version, so a second run finds everything there and only boots.

: "${VM_CACHE:=/var/cache/fusekeeper-vm}"
VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # for the scripts that source this
VM_SRCDIR=$(cd "$VM_DIR/.." && pwd)

vm_log() {
	echo "vm: $*" >&2
}

vm_die() {
	echo "vm: error: $*" >&2
	exit 1
}

# The candidate version apt would install of PKG (empty if none).
_vm_candidate() {
	apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2; exit }'
}

# Kernel packages are replaced by security updates and the old versions leave the mirror:
# apt's lists older than a day (or none) are refreshed first, so that the version chosen can
# still be downloaded. Once per run (VM_LISTS_FRESH), as root; offline, the old lists stay.
_vm_fresh_lists() {
	[ -n "${VM_LISTS_FRESH:-}" ] && return 0
	export VM_LISTS_FRESH=1
	[ "$(id -u)" = 0 ] || return 0
	# apt keeps a list's file (and its date) when the mirror has nothing newer: the stamp in
	# the cache says when it last asked.
	[ -n "$(find "$VM_CACHE/apt-updated" -mmin -1440 2>/dev/null)" ] && return 0
	[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n 1)" ] &&
		return 0
	vm_log "apt's package lists are more than a day old: apt-get update"
	if apt-get update -qq >&2; then
		mkdir -p "$VM_CACHE" && : >"$VM_CACHE/apt-updated"
	else
		vm_log "apt-get update failed: resolving kernels with the old lists"
	fi
}

# vm_resolve LINE: the newest amd64 image of kernel line LINE that apt knows, chosen by
# package version among the images of that line (linux-image-6.1.0-N-amd64,
# linux-image-6.12.M+deb12-amd64; not -cloud, -rt, -unsigned or -dbg). Versions move
# with security updates, so nothing is hard-coded. Without apt lists (offline), the
# newest image of that line already in the cache is used.
vm_resolve() {
	local line=$1 re name ver best='' bestver='' d
	_vm_fresh_lists
	re="^linux-image-${line//./\\.}\\.[0-9][^-]*(-[0-9]+)?-amd64\$"
	while read -r name; do
		[[ $name =~ $re ]] || continue
		ver=$(_vm_candidate "$name")
		[ -n "$ver" ] || continue
		if [ -z "$best" ] || dpkg --compare-versions "$ver" gt "$bestver"; then
			best=$name
			bestver=$ver
		fi
	done < <(apt-cache pkgnames "linux-image-$line." 2>/dev/null | sort)
	if [ -z "$best" ]; then
		d=$(find "$VM_CACHE" -mindepth 2 -maxdepth 2 -path "$VM_CACHE/$line.*-amd64/*" \
			-name 'linux-image-*.deb' -printf '%h\n' 2>/dev/null | sort -V | tail -n 1)
		[ -n "$d" ] || vm_die "apt knows no linux-image-$line.*-amd64 and the cache has none (apt-get update?)"
		KDIR=$d
		KABI=$(basename "$(dirname "$d")")
		KVER=$(basename "$d")
		KPKG=linux-image-$KABI
		vm_log "apt knows no $line image: using the cached $KABI $KVER"
		return 0
	fi
	KPKG=$best
	KABI=${best#linux-image-}
	KVER=$bestver
	KDIR=$VM_CACHE/$KABI/$KVER
}

# vm_fetch DIR PKG=VERSION...: downloads each package of that exact version into DIR
# unless DIR already holds it. apt runs as root without its _apt sandbox user, who
# cannot write the cache.
vm_fetch() {
	local dir=$1 p want=()
	shift
	mkdir -p "$dir"
	for p in "$@"; do
		compgen -G "$dir/${p%%=*}_*.deb" >/dev/null || want+=("$p")
	done
	[ ${#want[@]} -eq 0 ] && return 0
	vm_log "downloading ${want[*]}"
	(cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "${want[@]}") >&2 ||
		vm_die "apt-get download ${want[*]} failed"
}

# vm_unpack_image: $KDIR/image holds the unpacked image package (vmlinuz, config, modules).
vm_unpack_image() {
	[ -f "$KDIR/image/.done" ] && return 0
	vm_fetch "$KDIR" "$KPKG=$KVER"
	rm -rf "$KDIR/image"
	mkdir -p "$KDIR/image"
	vm_log "unpacking $KPKG $KVER"
	dpkg-deb -x "$KDIR/${KPKG}_"*.deb "$KDIR/image" || vm_die "cannot unpack $KPKG"
	# modules.dep is made by depmod when the package is installed, not shipped.
	depmod -b "$KDIR/image" "$KABI" || vm_die "depmod for $KABI failed"
	: >"$KDIR/image/.done"
}

# The kernel's config value of CONFIG_$1 (y, m or empty).
vm_config() {
	sed -n "s/^CONFIG_$1=//p" "$KDIR/image/boot/config-$KABI"
}
