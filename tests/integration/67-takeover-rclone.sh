#!/bin/bash
# 67-takeover-rclone: `rclone mount REMOTE MNT` of a local directory (Go, bazil-style FUSE
# library, mounting through fusermount3 with _FUSE_COMMFD even as root) with its own command
# line; the keeper takes over the mount fusermount3 makes for it, across three SIGKILLs under
# the read workload, a held fd and a bind mount in another mount namespace
# (takeover_rw_rounds, tests/lib-takeover.sh), after writing through it. rclone also refuses a
# mountpoint that /proc/self/mountinfo shows mounted: a restarted rclone must not see the live
# mount.
# Not the fd, cwd and churn workloads, which rclone cannot survive being killed under: in its
# default cache mode it writes a file to REMOTE only when it is closed, so a file open for
# writing when rclone dies is gone (the keeper reports ESTALE/EIO to its writer, measured), and
# it refuses files opened for reading and writing. With --vfs-cache-mode=writes it acknowledges
# fsync while the data is only in its cache: killed, a new rclone shows such a file missing, or
# as it was, until it uploads it (measured with rclone alone). docs/design.md says so.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-takeover.sh"

takeover_need rclone rclone

mkdir "$T/remote" "$T/mnt"
TK_WORKLOADS="read hold" takeover_rw_rounds 3 "$T/mnt" "$T/remote" -- \
	rclone mount --config=/dev/null --cache-dir="$T/cache" "$T/remote" "$T/mnt"
grep -q "type fuse.rclone" "$FK_LOG" || fail "the mount is not rclone's: $(grep Mounted "$FK_LOG")"
log "ok"
