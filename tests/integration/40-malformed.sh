#!/bin/bash
# 40-malformed: a daemon that answers LOOKUP with a malformed message (too
# short, an unknown unique of every kind: the kernel's, the keeper's own, the
# keeper's own unanswered ones, an interrupt's answer for a request never
# interrupted or never made; a wrong length, a bad notification, a bad error
# code, an oversized length) must not hang or crash the keeper: the request
# fails, the keeper says why, replaces the daemon, and the mount serves again.
# The same for a daemon that closes its connection and stays alive.
# timeout: 180
. "$(dirname "$0")/../lib.sh"

need_prog "$BADDAEMON"

M=$T/mnt
mkdir "$M"

fk_start "$M" --max-restarts=100 -- "$BADDAEMON" {}
fk_wait READY || fail "the keeper never became READY"
try_cmd 10 cat "$M/good" || fail "cat $M/good failed before any bad reply: $TRY_OUT"
[ "$TRY_OUT" = hello ] || fail "cat $M/good printed '$TRY_OUT', expected hello"

for name in short badunique callunique orphanunique intunique intfuture badsize badnotify baderror biglen; do
	fk_mark
	old=$(fk_daemon_pid)
	loglines=$(wc -l <"$FK_LOG")

	start=$(now_ms)
	try_cmd 10 stat "$M/$name"
	rc=$?
	log "$name: stat exit $rc in $(($(now_ms) - start)) ms: $TRY_OUT"
	[ "$rc" -ne 124 ] || fail "$name: stat hung"
	[ "$rc" -ne 0 ] || fail "$name: stat succeeded on a malformed reply"

	fk_wait DAEMON "" 30 || fail "$name: no new daemon was started"
	new=${FK_LINE#DAEMON }
	[ "$new" != "$old" ] || fail "$name: DAEMON reported the old pid $old"
	wait_gone "$old" 10 || fail "$name: the old daemon $old still runs"

	try_cmd 10 cat "$M/good" || fail "$name: cat $M/good failed after the restart: $TRY_OUT"
	[ "$TRY_OUT" = hello ] || fail "$name: cat $M/good printed '$TRY_OUT', expected hello"
	fk_wait RECOVERED "$new" 10 || fail "$name: no RECOVERED for daemon $new"

	tail -n +"$((loglines + 1))" "$FK_LOG" >"$T/log-$name"
	[ -s "$T/log-$name" ] || fail "$name: the keeper logged nothing about the malformed reply"
	sed "s/^/    $name: /" "$T/log-$name"
	alive "$FK_PID" || fail "$name: the keeper exited"
done

# A daemon that closes its connection but stays alive serves nobody: it is
# killed and replaced. The LOOKUP it dropped goes to each successor, which does
# the same, until the keeper stops sending it (EIO after three daemons).
fk_mark
start=$(now_ms)
try_cmd 60 stat "$M/closefd"
rc=$?
log "closefd: stat exit $rc in $(($(now_ms) - start)) ms: $TRY_OUT"
[ "$rc" -ne 124 ] || fail "closefd: stat hung"
grep -q "Input/output error" <<<"$TRY_OUT" || fail "closefd: stat did not fail with EIO: $TRY_OUT"
grep -q "closed its FUSE channel but still runs" "$FK_LOG" ||
	fail "closefd: the keeper did not say the daemon closed its channel"
fk_wait RECOVERED "" 30 || fail "closefd: no daemon took over after the last one was killed"
try_cmd 10 cat "$M/good" || fail "closefd: cat $M/good failed afterwards: $TRY_OUT"
[ "$TRY_OUT" = hello ] || fail "closefd: cat $M/good printed '$TRY_OUT', expected hello"

[ "$(fk_count GAVEUP)" = 0 ] || fail "the keeper gave up"
alive "$FK_PID" || fail "the keeper is not running at the end"
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
