#!/bin/bash
# 71-takeover-gocryptfs: gocryptfs (go-fuse) with its own command line,
# `gocryptfs -passfile FILE CIPHERDIR MNT`: it re-executes itself in the background, mounts
# through fusermount3 and checks that the mountpoint is empty; after the mount it looks at the
# mount itself (go-fuse's poll check), which must find the mount, not the directory beneath.
# Three SIGKILLs under the fd, cwd, churn and read workloads, a held fd and a bind mount in
# another mount namespace (takeover_rw_rounds, tests/lib-takeover.sh). The cipher directory
# is compared by decrypting it with a separate gocryptfs at the end.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-takeover.sh"

takeover_need gocryptfs gocryptfs

mkdir "$T/cipher" "$T/mnt" "$T/check"
echo "fusekeeper test passphrase" >"$T/pass"
gocryptfs -q -init -passfile "$T/pass" "$T/cipher" >/dev/null || fail "gocryptfs -init failed"
TK_KEEP_MOUNT_COPY=$T/copy takeover_rw_rounds 3 "$T/mnt" "" -- \
	gocryptfs -passfile "$T/pass" "$T/cipher" "$T/mnt"
[ "$(fk_count FOLLOW)" -ge 4 ] || fail "expected a FOLLOW per start, got $(fk_count FOLLOW)"
[ -z "$(ls -A "$T/mnt")" ] || fail "files were left beneath the mountpoint: $(ls -A "$T/mnt")"

# What the cipher directory holds, read by a gocryptfs of its own (no keeper).
# In the foreground (-f): in the background it leaves a logger process for init to reap.
gocryptfs -f -q -passfile "$T/pass" "$T/cipher" "$T/check" </dev/null &
check=$!
track_pid "$check"
track_mount "$T/check"
fkd_wait_for 30 mountpoint -q "$T/check" || fail "mounting the cipher directory failed"
diff -r "$T/copy" "$T/check" || fail "the cipher directory does not hold what the mount showed"
fusermount3 -u "$T/check" || fail "unmounting the check mount failed"
wait_pid "$check" 30 || fail "the check gocryptfs did not exit after its unmount"
log "ok"
