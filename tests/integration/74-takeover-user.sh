#!/bin/bash
# 74-takeover-user: --user=nobody: bindfs runs without root and with its own command line
# (`bindfs -f -o allow_other SRC MNT`); its own mount(2) fails with EPERM, as without the keeper,
# so libfuse mounts through the setuid fusermount3, whose mount the keeper (root) takes over.
# Three SIGKILLs under the fd, cwd, churn and read workloads, a held fd and a bind mount in
# another mount namespace (takeover_rw_rounds, tests/lib-takeover.sh); SRC must hold what the
# mount shows, its new files owned by nobody, and the daemon must run as nobody. Then a daemon
# with CAP_SYS_ADMIN in a user namespace of its own is refused the mount (EPERM).
# The test runs in a mount namespace of its own, where /dev/fuse is readable and writable by
# everyone (as Debian's udev makes it; this machine may not) and /etc/fuse.conf has
# user_allow_other: both by bind mounts that end with the namespace.
# timeout: 300
if [ -z "${FK_TEST_PRIVATE_NS:-}" ]; then
	command -v unshare >/dev/null || { echo "SKIP: unshare not installed (util-linux)"; exit 77; }
	exec env FK_TEST_PRIVATE_NS=1 unshare --mount --propagation private -- "$0" "$@"
fi
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-takeover.sh"

takeover_need bindfs bindfs
fkd_require fusermount3 fuse3
id nobody >/dev/null 2>&1 || skip "no user nobody"

mkdir "$T/dev" "$T/src" "$T/mnt"
mount -t tmpfs -o mode=755 fkdev "$T/dev" || fail "mounting a tmpfs failed"
mknod -m 666 "$T/dev/fuse" c 10 229 || fail "mknod failed"
mount --bind "$T/dev/fuse" /dev/fuse || fail "binding over /dev/fuse failed"
{ cat /etc/fuse.conf 2>/dev/null; echo user_allow_other; } >"$T/dev/fuse.conf"
touch /etc/fuse.conf 2>/dev/null
mount --bind "$T/dev/fuse.conf" /etc/fuse.conf || fail "binding over /etc/fuse.conf failed"
# nobody must reach SRC and MNT, and own them (fusermount3 mounts only on what the user may write).
chmod o+x "$(dirname "$T")" "$T"
chown nobody: "$T/src" "$T/mnt"

TK_SKIP_GONE=1 takeover_rw_rounds 3 "$T/mnt" "$T/src" --user=nobody -- \
	bindfs -f -o allow_other "$T/src" "$T/mnt"
grep -q "as daemon [0-9]* asked (through fusermount3\?, process [0-9]*): .*user_id=$(id -u nobody)," \
	"$FK_LOG" || fail "the mount is not nobody's, made through fusermount3 (its fusermount link, for libfuse 2): $(grep Mounted "$FK_LOG")"
owners=$(find "$T/src" -mindepth 1 ! -user nobody -printf '%p ')
[ -z "$owners" ] || fail "files in SRC not owned by nobody (the daemon ran as someone else?): $owners"
assert_all_gone

# CAP_SYS_ADMIN in a user namespace of its own is no right to a mount the keeper would make in
# its namespace: such a mount(2) gets EPERM, as from the kernel, and nothing is mounted.
mkdir "$T/rootdir"
if setpriv --reuid=nobody --regid=nogroup --clear-groups unshare -U -r true 2>/dev/null; then
	FK_NO_MOUNTPOINT=1 fk_start "$T/rootdir" --user=nobody -- \
		unshare -U -r "$BADDAEMON" --mount "$T/rootdir"
	fk_wait_exit 30 || fail "the keeper did not exit"
	[ "$FK_STATUS" = 1 ] || fail "the keeper exited $FK_STATUS, expected 1"
	grep -q "baddaemon: mount $T/rootdir: Operation not permitted" "$FK_LOG" ||
		fail "the mount from a user namespace was not refused with EPERM: $(cat "$FK_LOG")"
	mountpoint -q "$T/rootdir" && fail "the keeper mounted for a daemon in a user namespace"
	assert_all_gone
else
	log "no unprivileged user namespaces here: that part is not tried"
fi
log "ok"
