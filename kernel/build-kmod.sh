#!/bin/bash
# kernel/build-kmod.sh LINE OUTDIR - builds fuse.ko out of tree for the current Debian 12
# kernel of LINE (6.1: Debian builds FUSE as a module there) from Debian's own source of
# that kernel, with every patch of kernel/patches/ applied, into OUTDIR/fuse.ko.
#
#   1. resolves the kernel as vm/run.sh does (vm/lib.sh) and downloads, all of that one
#      version, linux-source-LINE, linux-headers-ABI, linux-headers-ABI-common (whose
#      name drops the flavour) and linux-kbuild-LINE into the kernel's cache directory;
#   2. takes fs/fuse and include/uapi/linux/fuse.h out of the source tarball (kept in the
#      cache, pristine) into OUTDIR/tree, and the source's own scripts/checkpatch.pl with the
#      files it reads beside it into the cache (both once per kernel version); runs
#      checkpatch.pl --strict on every patch of kernel/patches/*.patch and fails if any
#      reports an ERROR (warnings and checks are printed: kernel/patches/README.md says
#      which are accepted), then applies them in name order with patch -p1 (paths as in
#      the kernel tree: a/fs/fuse/..., a/include/uapi/...). A cover letter
#      (0000-cover-letter.patch) holds no diff and is neither checked nor applied;
#   3. unpacks the headers into OUTDIR/headers, puts the patched uapi fuse.h in them, and
#      runs make -C HEADERS M=OUTDIR/tree/fs/fuse with a Kbuild that adds fk_build.c: a
#      MODULE_VERSION ("fk-" and a hash of the patches) and a "fusekeeper" modinfo field, so
#      that a guest can tell this module from the image's own (its /sys/module/fuse/version).
# Nothing is installed on the host and nothing fetched lands in the source tree.
#
# KMOD_PATCHES=DIR takes the series from DIR instead of kernel/patches, e.g. a copy of
# its first N patches, to check that every prefix of the series builds on its own.
set -euo pipefail
# shellcheck source=vm/lib.sh
. "$(dirname "$0")/../vm/lib.sh"

[ $# -eq 2 ] || { echo "usage: $0 LINE OUTDIR" >&2; exit 2; }
line=$1
mkdir -p "$2"
OUT=$(cd "$2" && pwd)
PATCHES=${KMOD_PATCHES:-$VM_SRCDIR/kernel/patches}
[ -d "$PATCHES" ] || vm_die "KMOD_PATCHES=$PATCHES is not a directory"
PATCHES=$(cd "$PATCHES" && pwd)
[ "$(id -u)" = 0 ] || vm_die "must run as root (apt-get download into $VM_CACHE)"
for c in make gcc patch xz perl; do
	command -v "$c" >/dev/null || vm_die "$c is missing (scripts/install-deps.sh vm)"
done

vm_resolve "$line"
vm_unpack_image
[ "$(vm_config FUSE_FS)" = m ] ||
	vm_die "$KABI builds FUSE in (CONFIG_FUSE_FS=$(vm_config FUSE_FS)): a module cannot replace it"
common=linux-headers-${KABI%-amd64}-common
vm_fetch "$KDIR" "linux-source-$line=$KVER" "linux-headers-$KABI=$KVER" "$common=$KVER" \
	"linux-kbuild-$line=$KVER"

# extract_once DIR WHAT PATH...: unpacks PATHs (relative to the source's top) of the cached
# linux-source tarball into DIR, once per kernel version.
extract_once() {
	local dir=$1 what=$2 f paths=()
	shift 2
	[ -f "$dir/.done" ] && return 0
	vm_log "extracting $what from linux-source-$line $KVER"
	for f; do paths+=("linux-source-$line/$f"); done
	rm -rf "$dir"
	mkdir -p "$dir"
	dpkg-deb --fsys-tarfile "$KDIR/linux-source-${line}_"*.deb |
		tar -xOf - "./usr/src/linux-source-$line.tar.xz" |
		tar -xJf - -C "$dir" --strip-components=1 "${paths[@]}" ||
		vm_die "cannot extract $what from linux-source-$line"
	: >"$dir/.done"
}

# 2. The pristine FUSE sources, and the source's own checkpatch.pl. It finds spelling.txt and
# const_structs.checkpatch beside itself, and ../Documentation/dev-tools/checkpatch.rst for
# --verbose; it needs nothing else of the tree with --no-tree.
src=$KDIR/fuse-src
extract_once "$src" "fs/fuse and include/uapi/linux/fuse.h" fs/fuse include/uapi/linux/fuse.h
cpdir=$KDIR/checkpatch
extract_once "$cpdir" "scripts/checkpatch.pl" scripts/checkpatch.pl scripts/spelling.txt \
	scripts/const_structs.checkpatch Documentation/dev-tools/checkpatch.rst

series=()
for p in "$PATCHES"/*.patch; do
	[ -f "$p" ] || continue
	# The cover letter explains the series and changes nothing.
	[ "$(basename "$p")" = 0000-cover-letter.patch ] && continue
	series+=("$p")
done

# checkpatch.pl --strict on each patch: an ERROR fails the build, warnings and checks are
# shown. --no-tree: only fs/fuse is here; GIT_DIR: checkpatch must not read the git
# repository it happens to run in (it looks up commit IDs and caches CamelCase there).
bad=()
for p in ${series[@]+"${series[@]}"}; do
	name=${p#"$VM_SRCDIR"/}
	rc=0
	report=$(cd "$cpdir" && GIT_DIR=/nonexistent perl scripts/checkpatch.pl --strict \
		--no-tree --no-color --show-types --quiet "$p" 2>&1) || rc=$?
	if [ "$rc" = 0 ] && [ -z "$report" ]; then
		vm_log "checkpatch $name: 0 errors, 0 warnings, 0 checks"
		continue
	fi
	total=$(sed -n 's/^total: \([0-9]*\) errors, \([0-9]*\) warnings, \([0-9]*\) checks.*/\1 \2 \3/p' <<<"$report")
	if [ -z "$total" ]; then
		printf '%s\n' "$report" >&2
		vm_die "checkpatch.pl did not run on $name (exit status $rc)"
	fi
	read -r nerr nwarn nchk <<<"$total"
	printf '%s\n' "$report" | sed '/^total: /d' >&2
	vm_log "checkpatch $name: $nerr errors, $nwarn warnings, $nchk checks"
	[ "$nerr" = 0 ] || bad+=("$name")
done
[ ${#bad[@]} -eq 0 ] ||
	vm_die "checkpatch.pl --strict reports errors in ${bad[*]} (see above); kernel/patches/README.md says what must be clean"

rm -rf "$OUT/tree" "$OUT/headers" "$OUT/fuse.ko"
mkdir -p "$OUT/tree"
cp -a "$src/fs" "$src/include" "$OUT/tree/"
applied=()
for p in ${series[@]+"${series[@]}"}; do
	vm_log "applying ${p#"$VM_SRCDIR"/}"
	patch -p1 -s --no-backup-if-mismatch -d "$OUT/tree" <"$p" ||
		vm_die "${p#"$VM_SRCDIR"/} does not apply to linux-source-$line $KVER (only fs/fuse and include/uapi/linux/fuse.h are here)"
	applied+=("$(basename "$p")")
done
phash=$(for p in "$PATCHES"/*.patch; do [ ! -f "$p" ] || cat "$p"; done | sha256sum | cut -c1-12)

# 3. The headers, with our uapi header, and the build.
mkdir -p "$OUT/headers"
for p in "linux-headers-$KABI" "$common" "linux-kbuild-$line"; do
	dpkg-deb -x "$KDIR/${p}_"*.deb "$OUT/headers"
done
hdr=$OUT/headers/usr/src/linux-headers-$KABI
# Its Makefile includes the common part by absolute path, /usr/src/...: point it here.
echo "include $OUT/headers/usr/src/$common/Makefile" >"$hdr/Makefile"
cp "$OUT/tree/include/uapi/linux/fuse.h" "$OUT/headers/usr/src/$common/include/uapi/linux/fuse.h"

desc="linux-source-$line $KVER for $KABI, patches: ${applied[*]:-none}"
cat >"$OUT/tree/fs/fuse/fk_build.c" <<EOF
// SPDX-License-Identifier: GPL-2.0
/* Generated by fusekeeper's kernel/build-kmod.sh: tells this fuse.ko from the image's own. */
#include <linux/module.h>

MODULE_VERSION("fk-$phash");
MODULE_INFO(fusekeeper, "$desc");
EOF
printf 'include $(src)/Makefile\nfuse-y += fk_build.o\n' >"$OUT/tree/fs/fuse/Kbuild"

vm_log "building fuse.ko against linux-headers-$KABI ($desc)"
make -s -C "$hdr" M="$OUT/tree/fs/fuse" CONFIG_CUSE= CONFIG_VIRTIO_FS= \
	-j"$(nproc)" modules >"$OUT/build.log" 2>&1 || {
	cat "$OUT/build.log" >&2
	vm_die "the build of fuse.ko failed"
}
cp "$OUT/tree/fs/fuse/fuse.ko" "$OUT/fuse.ko"
magic=$(modinfo -F vermagic "$OUT/fuse.ko")
[ "${magic%% *}" = "$KABI" ] || vm_die "fuse.ko has vermagic '$magic', not $KABI"
vm_log "built $OUT/fuse.ko: version $(modinfo -F version "$OUT/fuse.ko"), srcversion $(modinfo -F srcversion "$OUT/fuse.ko"), vermagic $magic"
