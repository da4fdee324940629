#!/bin/bash
# 11-baseline-enotconn: the kill of 10-testfs-kill without fusekeeper - the problem the
# project exists for, shown on the kernel at hand (the host's, or a guest's of vm/run.sh).
#
# testfs is mounted directly (libfuse mounts it, as root) and SIGKILLed. Before the kill a
# process holds a file open and reads it; a fresh stat works. After it, the same held fd
# must fail with ENOTCONN, and so must a stat of a name the kernel has not cached (a
# lookup), while the dead mount stays in place until it is unmounted. The held file's
# cached pages are dropped before the kill, so that its read goes to the connection.
# timeout: 120
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd perl

M=$T/mnt
B=$T/back
mkdir "$M" "$B"
echo "held data" >"$B/held"
echo "fresh data" >"$B/fresh"

run_bg testfs "$TESTFS" --backing="$B" -f "$M"
DAEMON=$BG_PID
track_mount "$M"
deadline=$(($(now_ms) + 20000))
until [[ "$(mount_info "$M")" == *" fuse"* ]]; do
	alive "$DAEMON" || fail "testfs exited before mounting: $(cat "$T/testfs.err")"
	[ "$(now_ms)" -lt "$deadline" ] || fail "testfs did not mount $M within 20 s"
	sleep 0.05
done
log "testfs (pid $DAEMON) mounted $M directly: $(mount_info "$M")"

holder_start h "$M/held" ro
got=$(holder h read)
[ "$got" = 'read held data\n' ] || fail "the held fd read '$got' before the kill"
drop_cache "$M/held"
[ "$(errno_of stat "$M")" = ok ] || fail "a stat of the mount failed before the kill"

log "killing testfs $DAEMON"
kill -KILL "$DAEMON"
wait_pid "$DAEMON" 10 || fail "testfs did not die"
log "testfs exited: $WAIT_STATUS"

got=$(holder h read)
log "the held fd after the kill: $got"
[ "$got" = "error ENOTCONN" ] || fail "the held fd's read gave '$got', expected ENOTCONN"

try_cmd 10 errno_of stat "$M/fresh" || fail "the fresh stat did not return: $TRY_OUT"
log "a fresh stat after the kill: $TRY_OUT"
[ "$TRY_OUT" = ENOTCONN ] || fail "a fresh stat gave '$TRY_OUT', expected ENOTCONN"
try_cmd 10 errno_of read "$M/fresh" || fail "the fresh open did not return: $TRY_OUT"
log "a fresh open and read after the kill: $TRY_OUT"
[ "$TRY_OUT" = ENOTCONN ] || fail "a fresh open gave '$TRY_OUT', expected ENOTCONN"
[[ "$(mount_info "$M")" == *" fuse"* ]] || fail "the dead mount went away by itself"

holder_stop h
try_cmd 10 umount "$M" || fail "umount of the dead mount failed: $TRY_OUT"
assert_not_mounted "$M"
log "ok: without fusekeeper a killed daemon leaves ENOTCONN until the mount is removed"
