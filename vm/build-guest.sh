#!/bin/bash
# vm/build-guest.sh LINE - fetches the current Debian 12 kernel of LINE (6.1 or 6.12) and
# builds the base initramfs of its guests; prints shell assignments for vm/run.sh:
#   KABI=6.1.0-57-amd64 KVER=6.1.192-3 KDIR=... VMLINUZ=... BASE=... BASE_LIST=... BASE_MODULES=...
#
# The base initramfs is an uncompressed newc cpio (the kernel unpacks it faster than a
# compressed one under TCG) holding:
#   - Debian's busybox-static, with an applet link for every command no package below has;
#   - whole Debian packages installed on the host (GUEST_PACKAGES: the shells, tools and
#     daemons the tests drive, with their data: perl and python modules, lxcfs's library),
#     without docs, man pages and locales, plus the commands of GUEST_COMMANDS (which may be
#     alternatives, like awk), every symlink followed and every shared library ldd finds;
#   - the kernel's own modules of VM_MODULES (default: fuse, what ss(8) needs, loop and ext4) with their
#     dependencies, those built in left out, decompressed, their load order in /etc/fk-modules;
#   - a minimal /etc (root, the sshd privilege-separation user, localhost).
# It holds no /init and nothing of the project: vm/run.sh appends a small cpio with those
# to every boot. The base is cached in KDIR as base-KEY.cpio, where KEY hashes the kernel,
# the package versions, the module list and this script: a second run finds it.
set -euo pipefail
# shellcheck source=vm/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || { echo "usage: $0 LINE (6.1 or 6.12)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || vm_die "must run as root (apt-get download into $VM_CACHE)"

GUEST_PACKAGES="bash dash coreutils util-linux mount findutils grep sed mawk diffutils
	procps iproute2 gzip tar xz-utils libgcc-s1 ncurses-base libc-bin
	perl-base perl perl-modules-5.36 libperl5.36
	python3-minimal python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
	fuse3 libfuse3-3 attr lxcfs sshfs openssh-client openssh-server openssh-sftp-server e2fsprogs"
# Commands whose path no package lists (alternatives, diversions).
GUEST_COMMANDS="sh awk python3"
# fuse (a module on 6.1); the socket diagnostics ss(8) uses (sshd_start); loop and ext4 for
# a /tmp with user.* xattrs where tmpfs has none (before 6.6), crc32c loaded ahead for ext4.
: "${VM_MODULES:=fuse inet_diag tcp_diag unix_diag loop crc32c_generic ext4}"

vm_resolve "$1"
vm_unpack_image

key=$({
	echo "$KABI $KVER $VM_MODULES"
	# shellcheck disable=SC2086
	dpkg-query -W -f='${Package} ${Version}\n' $GUEST_PACKAGES busybox-static
	cat "$0"
} | sha256sum | cut -c1-16)
BASE=$KDIR/base-$key.cpio
BASE_LIST=$KDIR/base-$key.list
BASE_MODULES=$KDIR/base-$key.modules
VMLINUZ=$KDIR/image/boot/vmlinuz-$KABI

emit() {
	printf 'KABI=%q KVER=%q KDIR=%q VMLINUZ=%q BASE=%q BASE_LIST=%q BASE_MODULES=%q\n' \
		"$KABI" "$KVER" "$KDIR" "$VMLINUZ" "$BASE" "$BASE_LIST" "$BASE_MODULES"
}
if [ -s "$BASE" ] && [ -s "$BASE_LIST" ] && [ -e "$BASE_MODULES" ]; then
	emit
	exit 0
fi

missing=
for p in $GUEST_PACKAGES busybox-static cpio; do
	[[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *"ok installed"* ]] || missing="$missing $p"
done
[ -z "$missing" ] || vm_die "missing Debian packages:$missing (scripts/install-deps.sh vm)"

vm_log "building the base initramfs of $KABI ($KVER)"
work=$(mktemp -d "$KDIR/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/stage

# canon: paths on stdin (absolute) with their directory part made canonical (/bin/bash
# becomes /usr/bin/bash on a merged /usr), the last component kept as it is.
canon() {
	local in=$work/canon.in
	sort -u >"$in"
	awk '{ d = $0; sub(/\/[^\/]*$/, "", d); print (d == "" ? "/" : d) }' "$in" | sort -u >"$work/canon.dirs"
	xargs -r -d '\n' realpath -m -- <"$work/canon.dirs" | paste "$work/canon.dirs" - >"$work/canon.map"
	awk -F'\t' 'NR == FNR { map[$1] = $2; next }
		{ d = $0; sub(/\/[^\/]*$/, "", d); b = substr($0, length(d) + 2)
		  r = map[d == "" ? "/" : d]; print (r == "/" ? "" : r) "/" b }' "$work/canon.map" "$in"
}

# Regular files and symlinks only, from a list of paths on stdin (missing ones dropped).
files_and_links() {
	{ xargs -r -d '\n' stat -c '%F|%n' -- 2>/dev/null || :; } |
		awk -F'|' '$1 ~ /regular/ || $1 == "symbolic link" { print substr($0, index($0, "|") + 1) }'
}

# The targets (one level, absolute) of the symlinks among the paths on stdin.
link_targets() {
	local l t
	while IFS= read -r l; do
		[ -L "$l" ] || continue
		t=$(readlink "$l")
		case $t in /*) ;; *) t=${l%/*}/$t ;; esac
		realpath -m -s -- "$t"
	done
}

# 1. The packages' files and the commands, symlinks followed to their ends.
{
	for p in $GUEST_PACKAGES; do
		dpkg -L "$p"
	done
	for c in $GUEST_COMMANDS; do
		PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$c" || vm_die "command $c not found"
	done
} | grep -Ev '^/\.$|^/usr/share/(doc|doc-base|man|info|locale|lintian|bug|bash-completion|zsh|fish|menu|applications|pixmaps|icons|apport)(/|$)|^/(usr/)?lib/systemd/|^/etc/(init\.d|systemd|cron\.[a-z]*|logrotate\.d|ufw|apparmor\.d|default|network)(/|$)|^/usr/lib/tmpfiles\.d/|^/usr/share/lxc/' |
	canon | files_and_links >"$work/list"

close_links() {
	local n=0
	while [ "$(wc -l <"$work/list")" != "$n" ]; do
		n=$(wc -l <"$work/list")
		link_targets <"$work/list" | canon | files_and_links | cat - "$work/list" | sort -u >"$work/list.new"
		mv "$work/list.new" "$work/list"
	done
}
close_links

# 2. Every shared library any program or library in the list needs (ldd gives the closure).
grep -E '/(s?bin|libexec)/|\.so([.0-9]*)?$' "$work/list" |
	while IFS= read -r f; do [ -L "$f" ] || echo "$f"; done |
	{ xargs -r -d '\n' ldd 2>/dev/null || :; } |
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' |
	canon | files_and_links | cat - "$work/list" | sort -u >"$work/list.new"
mv "$work/list.new" "$work/list"
close_links

# 3. Every directory above them, so that the kernel can create each file (it makes no parents).
awk '{ p = $0; while (sub(/\/[^\/]*$/, "", p) && p != "") print p }' "$work/list" | sort -u >"$work/dirs"
cat "$work/dirs" "$work/list" | sort -u | sed 's|^/||' >"$work/host.list"

# 4. What the guest needs besides: the merged-/usr links, busybox's applets, /etc, modules.
mkdir -p "$stage"
cd "$stage"
for d in bin sbin lib lib64; do
	if [ -L "/$d" ]; then
		ln -s "$(readlink "/$d")" "$d"
	fi
done
mkdir -p dev proc sys run tmp var/tmp var/lib/lxcfs root etc usr/bin usr/sbin usr/lib/modules
chmod 1777 tmp var/tmp
chmod 700 root
cp /usr/bin/busybox usr/bin/busybox
awk '{ n = $0; sub(/.*\//, "", n) } $0 ~ /^\/usr\/s?bin\/[^\/]*$/ { print n }' "$work/list" |
	sort -u >"$work/commands"
/usr/bin/busybox --list-full | awk 'NR == FNR { have[$1] = 1; next }
	{ n = $0; sub(/.*\//, "", n) }
	n != "init" && n != "linuxrc" && !(n in have) { sub(/^usr\//, ""); print "usr/" $0 }' "$work/commands" - |
	while read -r dest; do
		[ -e "$dest" ] || [ -L "$dest" ] || ln -s /usr/bin/busybox "$dest"
	done
cat >etc/passwd <<'EOF'
root:x:0:0:root:/root:/bin/bash
sshd:x:100:65534::/run/sshd:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >etc/group <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
cat >etc/shadow <<'EOF'
root:*:19000:0:99999:7:::
sshd:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
chmod 640 etc/shadow
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n' >etc/hosts
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' >etc/nsswitch.conf
echo fk-guest >etc/hostname
ln -s /proc/self/mounts etc/mtab

# The modules and their dependencies (modules.dep), dependencies first; built-in ones skipped.
moddir=$KDIR/image/lib/modules/$KABI
: >etc/fk-modules
declare -A done_mod
add_module() {
	local name=$1 rel dep
	rel=$(awk -F: -v n="$name" '{ f = $1; sub(/.*\//, "", f); sub(/\.ko(\.[a-z]+)?$/, "", f); gsub(/-/, "_", f)
		m = n; gsub(/-/, "_", m); if (f == m) { print $1; exit } }' "$moddir/modules.dep")
	if [ -z "$rel" ]; then
		grep -qE "/${name//-/[-_]}\.ko\$" "$moddir/modules.builtin" 2>/dev/null && return 0
		vm_die "module $name is neither in $KABI's modules.dep nor built in"
	fi
	[ -z "${done_mod[$rel]:-}" ] || return 0
	done_mod[$rel]=1
	for dep in $(awk -F: -v r="$rel" '$1 == r { print $2 }' "$moddir/modules.dep"); do
		dep=${dep##*/}
		add_module "${dep%%.ko*}"
	done
	mkdir -p "usr/lib/modules/$KABI/${rel%/*}"
	case $rel in
	*.ko.xz) xz -dc "$moddir/$rel" >"usr/lib/modules/$KABI/${rel%.xz}" ;;
	*.ko.zst) zstd -qdc "$moddir/$rel" >"usr/lib/modules/$KABI/${rel%.zst}" ;;
	*.ko) cp "$moddir/$rel" "usr/lib/modules/$KABI/$rel" ;;
	*) vm_die "unknown module file $rel" ;;
	esac
	echo "/usr/lib/modules/$KABI/${rel%.ko*}.ko" >>etc/fk-modules
}
for m in $VM_MODULES; do
	add_module "$m"
done

# 5. The archive: the host's files, then the stage (later entries win).
(cd / && cpio --quiet -o -H newc -R 0:0 <"$work/host.list") >"$work/base.cpio"
find . -mindepth 1 | sort | cpio --quiet -o -H newc -R 0:0 >>"$work/base.cpio"
cd /
sed 's|^|/|' "$work/host.list" >"$work/base.list"
find "$stage" -mindepth 1 | sed "s|^$stage||" >>"$work/base.list"
rm -f "$KDIR"/base-*.cpio "$KDIR"/base-*.list "$KDIR"/base-*.modules
mv "$work/base.list" "$BASE_LIST"
cp "$stage/etc/fk-modules" "$BASE_MODULES"
mv "$work/base.cpio" "$BASE"
vm_log "base initramfs: $BASE ($(du -m "$BASE" | cut -f1) MiB, $(wc -l <"$BASE_LIST") entries; modules: $(tr '\n' ' ' <"$stage/etc/fk-modules"))"
emit
