#!/bin/bash
# 45-init-notify: a restarted daemon must agree to the kernel's FUSE_INIT as the
# first one did, and the notifications it sends must reach the kernel with the
# kernel's node IDs.
#   - A daemon answering INIT with a smaller max_write is refused: its start
#     fails (FAILED ... init), the keeper logs the difference, and once the
#     daemon answers as before it takes over and the mount carries on.
#   - After a restart, testfs pushes data into the kernel's cache of a file with
#     FUSE_NOTIFY_STORE; a process holding that file open reads the pushed data
#     through its fd. Untranslated, the kernel would not know the node and the
#     process would read the old content.
# timeout: 120
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd setfattr perl

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

fk_start "$M" --max-restarts=10 -- "$TESTFS" --backing="$B" --small-writes-if="$T/small" {}
fk_wait READY || fail "the keeper never became READY"
printf 'aaaa' >"$M/notify" || fail "writing $M/notify failed"

# A process that keeps the file open and reads it through that fd on demand.
holder_start h "$M/notify" ro
[ "$(holder h read)" = "read aaaa" ] || fail "the holder read '$(tail -n 1 "$T/holder-h.out")' before any kill"

# 1. An incompatible INIT answer is a failed start, logged with the difference.
touch "$T/small"
fk_kill_daemon || fail "killing the daemon failed"
fk_wait FAILED "[0-9]+ init" 30 || fail "a daemon answering INIT with max_write 4096 was not refused"
grep -q "max_write 4096 < " "$FK_LOG" || fail "the keeper's log does not name the max_write difference"
rm -f "$T/small"
fk_wait RECOVERED "" 60 || fail "no daemon took over once INIT was answered as before"
[ "$(cat "$M/notify")" = aaaa ] || fail "the mount does not work after the refused start"

# 2. A notification from the restarted daemon carries its own node ID for the file.
setfattr -n user.fktest.store -v bbbb "$M/notify" || fail "the store trigger failed"
out=$(holder h read)
log "after NOTIFY_STORE: $out (backing file: $(cat "$B/notify"))"
[ "$out" = "read bbbb" ] || fail "the stored data did not reach the kernel's cache: $out"
[ "$(cat "$B/notify")" = aaaa ] || fail "the backing file changed"

holder_stop h
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
