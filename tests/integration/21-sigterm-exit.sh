#!/bin/bash
# 21-sigterm-exit: on SIGTERM, and on SIGINT, the keeper stops its daemon,
# unmounts and exits 0.  A third round sends SIGTERM while a process has its
# cwd inside the mount: the mount must still go (detached) and no child stay.
# timeout: 120
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"

round() {
	local sig=$1 busy=${2:-} M=$T/mnt-$1${2:+-$2} B=$T/back-$1${2:+-$2} daemon holder=
	mkdir "$M" "$B"
	log "round: SIG$sig${busy:+ with a busy mount}"

	fk_start "$M" -- "$TESTFS" --backing="$B" {}
	fk_wait READY || fail "SIG$sig: the keeper never became READY"
	daemon=$(fk_daemon_pid) || fail "SIG$sig: no DAEMON event"
	echo "$sig" >"$M/f" || fail "SIG$sig: write through the mount failed"
	[ "$(cat "$M/f")" = "$sig" ] || fail "SIG$sig: read through the mount failed"

	if [ "$busy" = busy ]; then
		# A process whose cwd is in the mount keeps it busy.
		run_bg "holder-$sig" bash -c 'cd "$1" && exec sleep 1000' holder "$M"
		holder=$BG_PID
		wait_gone "$holder" 1 && fail "the holder process did not start"
	fi

	kill "-$sig" "$FK_PID"
	fk_wait_exit 30 || fail "SIG$sig: the keeper did not exit"
	[ "$FK_STATUS" = 0 ] || fail "SIG$sig: the keeper exited with status $FK_STATUS, expected 0"
	fk_wait STOPPED "" 5 || fail "SIG$sig: no STOPPED event"
	wait_gone "$daemon" 10 || fail "SIG$sig: daemon $daemon still runs after the keeper exited"
	assert_not_mounted "$M" "SIG$sig: $M is still mounted after the keeper exited${busy:+ (busy mount)}"
	[ "$(cat "$B/f")" = "$sig" ] || fail "SIG$sig: the write did not reach the backing dir"
	if [ -n "$holder" ]; then
		kill -KILL "$holder"
		wait_pid "$holder" 10 || fail "the holder process did not exit"
	fi
	assert_all_gone
}

round TERM
round INT
round TERM busy
log "ok"
