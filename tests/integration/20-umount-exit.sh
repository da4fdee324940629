#!/bin/bash
# 20-umount-exit: after `umount MNT` the keeper stops its daemon and exits 0,
# and the mount is gone.
# timeout: 60
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

fk_start "$M" -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"
daemon=$(fk_daemon_pid) || fail "no DAEMON event"

echo hello >"$M/f" || fail "write through the mount failed"
[ "$(cat "$M/f")" = hello ] || fail "read through the mount failed"
[ "$(cat "$B/f")" = hello ] || fail "the write did not reach the backing dir"

fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "no STOPPED event"
wait_gone "$daemon" 10 || fail "daemon $daemon still runs after the keeper exited"
assert_not_mounted "$M"
assert_all_gone
log "ok"
