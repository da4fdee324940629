#!/bin/bash
# 72-takeover-overlayfs: fuse-overlayfs (libfuse 3) with its own command line,
# `fuse-overlayfs -o lowerdir=L,upperdir=U,workdir=W MNT`, without -f: it mounts, then goes to
# the background, and the keeper follows it. Three SIGKILLs under the fd, cwd, churn and read
# workloads, a held fd and a bind mount in another mount namespace (takeover_rw_rounds,
# tests/lib-takeover.sh); the upper directory must hold what the mount shows (the lower one
# is empty; fuse-overlayfs's own .wh..* markers of opaque directories aside).
# fuse-overlayfs splices the data of its read replies (FUSE_CAP_SPLICE_WRITE): the keeper
# makes each such splice one message on the channel (takeover_splice()), else the reply would
# reach the relay cut in pieces.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-takeover.sh"

takeover_need fuse-overlayfs fuse-overlayfs

mkdir "$T/lower" "$T/upper" "$T/work" "$T/mnt"
TK_DIFF_EXCLUDE='.wh..*' takeover_rw_rounds 3 "$T/mnt" "$T/upper" -- \
	fuse-overlayfs -o "lowerdir=$T/lower,upperdir=$T/upper,workdir=$T/work" "$T/mnt"
[ "$(fk_count FOLLOW)" = 4 ] || fail "expected 4 FOLLOW events, got $(fk_count FOLLOW)"
log "ok"
