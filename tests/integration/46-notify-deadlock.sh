#!/bin/bash
# 46-notify-deadlock: a notification the kernel can only apply after a pending
# request is answered must not hold that request's reply back. testfs, run with
# --inval-on-read, sends FUSE_NOTIFY_INVAL_INODE for a file from another thread
# while it serves a READ of that file; the kernel's invalidation waits for the
# page the READ holds. Mounted directly this works; a relay that writes the
# notification and the reply from one thread in order hangs the mount for ever.
# timeout: 90
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"

M=$T/mnt
B=$T/back
mkdir "$M" "$B"
head -c 65536 /dev/urandom >"$B/data"
want=$(sha256sum <"$B/data")

fk_start "$M" -- "$TESTFS" --backing="$B" --inval-on-read {}
fk_wait READY || fail "the keeper never became READY"

for i in 1 2 3; do
	try_cmd 20 sha256sum "$M/data"
	rc=$?
	[ "$rc" -ne 124 ] || fail "reading $M/data hung (round $i)"
	[ "$rc" -eq 0 ] || fail "reading $M/data failed (round $i): $TRY_OUT"
	[ "${TRY_OUT% *}" = "${want% *}" ] || fail "wrong data read (round $i)"
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
done
log "three cold reads with concurrent invalidations completed"

fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
