#!/bin/bash
# 35-hang: a daemon that hangs instead of dying is recovered after
# --hang-timeout (3 s here), not waited for; one that legitimately takes long
# is left alone.
#   a  deadlock: the daemon blocks in a LOOKUP and in every later operation
#      (testfs crash hook hang:lookup:NAME). A stat of NAME and a stat -f made
#      meanwhile wait, the keeper logs the hang (HUNG), kills the daemon and a
#      new one takes over; both calls then succeed, after no less than the
#      timeout. A held fd reads its file whole afterwards.
#   b  SIGSTOP: the daemon is stopped while a stat -f waits: the same.
#   c  SIGSTOP, then SIGCONT 1 s later (before the timeout): the waiting
#      stat -f succeeds, and the daemon is still the same one well past the
#      timeout (no HUNG, no EXIT).
#   d  a blocking lock: A holds a flock on a file for 6 s; W's flock(1) waits
#      in a SETLKW that the daemon holds, answering nothing else, for longer
#      than the timeout: no HUNG, no restart, and W gets the lock once A lets go.
#   e  the keeper itself is stopped (SIGSTOP, as a frozen cgroup) for longer
#      than the timeout while the daemon answers a request: the answer waits
#      unread, and the daemon must not be taken for hung (three rounds).
# timeout: 180
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd sha256sum
need_cmd flock

M=$T/mnt
B=$T/back
mkdir "$M" "$B"
HANG=3

fk_start "$M" --hang-timeout=$HANG -- \
	"$TESTFS" --backing="$B" --locks --crash-file="$T/crash" {}
fk_wait READY || fail "the keeper never became READY"
head -c 300000 /dev/urandom >"$T/data"
want=$(sha256sum <"$T/data" | cut -d' ' -f1)
try_cmd 10 cp "$T/data" "$M/f" || fail "writing $M/f failed: $TRY_OUT"
holder_start f "$M/f" ro
[ "$(holder f sum)" = "sum $want" ] || fail "the holder read other data"
for n in a1 b1 c1; do
	echo "$n" >"$B/$n" || fail "cannot write $B/$n"
done

# check_hung CASE DAEMON: the keeper called DAEMON hung, killed it and recovered.
check_hung() {
	fk_wait HUNG "$2" 30 || fail "$1: the keeper did not find daemon $2 hung"
	fk_wait EXIT "$2 signal=KILL" 30 || fail "$1: hung daemon $2 was not killed"
	fk_wait RECOVERED "" 30 || fail "$1: no daemon took over from hung daemon $2"
	grep -q "Daemon $2 has held request .* for [0-9.]* s and answered nothing meanwhile (--hang-timeout=$HANG)" "$FK_LOG" ||
		fail "$1: the keeper's log does not say why daemon $2 was killed"
}

# check_waited CASE NAME: the call NAME succeeded after waiting for the timeout.
check_waited() {
	bg_result "$2" 60 || fail "$1: $2 never returned"
	[ "$BG_RC" = 0 ] || fail "$1: $2 failed: $BG_OUT"
	[ "$BG_MS" -ge $((HANG * 1000 - 100)) ] ||
		fail "$1: $2 returned after $BG_MS ms: the daemon was killed before --hang-timeout"
}

# ---- a: a deadlocked daemon --------------------------------------------------
crash_arm "hang:lookup:a1"
bg_timed a-stat stat "$M/a1"
deadline=$(($(now_ms) + 10000))
while [ -e "$T/crash" ]; do
	[ "$(now_ms)" -lt "$deadline" ] || fail "a: the daemon never reached the hang"
	sleep 0.05
done
bg_timed a-statfs stat -f "$M"
check_hung a "$DAEMON_BEFORE"
check_waited a a-stat
bg_result a-statfs 30 || fail "a: the stat -f never returned"
[ "$BG_RC" = 0 ] || fail "a: the stat -f failed: $BG_OUT"
[ "$(holder f sum)" = "sum $want" ] || fail "a: the held fd reads other data after the recovery"

# stopped PID: waits until PID is in state T (stopped).
stopped() {
	local deadline=$(($(now_ms) + 5000)) st
	while :; do
		st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
		[ "$st" = T ] && return 0
		[ "$(now_ms)" -lt "$deadline" ] || {
			log "process $1 is in state '$st', not stopped: $(grep -E '^(State|SigPnd|ShdPnd|SigBlk|SigIgn|SigCgt|TracerPid)' "/proc/$1/status" 2>/dev/null | tr '\n' ' ')"
			return 1
		}
		sleep 0.02
	done
}

# ---- b: a stopped daemon ----------------------------------------------------
fk_mark
d=$(fk_daemon_pid)
kill -STOP "$d" || fail "b: cannot stop daemon $d"
stopped "$d" || fail "b: daemon $d did not stop"
bg_timed b-statfs stat -f "$M"
stopped "$d" || fail "b: daemon $d, stopped, was continued by someone"
check_hung b "$d"
check_waited b b-statfs
try_cmd 10 cat "$M/b1" || fail "b: reading after the recovery failed: $TRY_OUT"
[ "$TRY_OUT" = b1 ] || fail "b: $M/b1 reads '$TRY_OUT'"

# ---- c: stopped, and continued before the timeout ---------------------------
fk_mark
d=$(fk_daemon_pid)
kill -STOP "$d" || fail "c: cannot stop daemon $d"
bg_timed c-statfs stat -f "$M"
# The case itself: the daemon stays stopped for a third of the timeout.
sleep 1
kill -CONT "$d" || fail "c: cannot continue daemon $d"
bg_result c-statfs 30 || fail "c: the stat -f never returned"
[ "$BG_RC" = 0 ] || fail "c: the stat -f failed: $BG_OUT"
# Past the timeout as counted from the stop, and then some.
sleep $((HANG + 1))
alive "$d" || fail "c: daemon $d, continued before the timeout, is gone"
[ "$(fk_daemon_pid)" = "$d" ] || fail "c: another daemon was started"
[ "$(fk_count HUNG "$d")" = 0 ] || fail "c: daemon $d was called hung"

# ---- d: a SETLKW waits as long as the lock is held --------------------------
: >"$B/l"
run_bg lock-a flock "$M/l" sleep 6
a_pid=$BG_PID
deadline=$(($(now_ms) + 10000))
until ! flock -n "$M/l" true 2>/dev/null; do
	[ "$(now_ms)" -lt "$deadline" ] || fail "d: A never got its lock"
	sleep 0.05
done
bg_timed lock-w flock "$M/l" echo got
bg_result lock-w 30 || fail "d: W never got the lock"
[ "$BG_RC" = 0 ] && [ "$BG_OUT" = got ] || fail "d: W's flock failed: $BG_OUT"
[ "$BG_MS" -ge $((HANG * 1000)) ] ||
	fail "d: W got the lock after $BG_MS ms: the case did not outlast the timeout"
wait_pid "$a_pid" 10 || fail "d: A did not end"
alive "$d" || fail "d: daemon $d died while W waited for a lock"
[ "$(fk_count HUNG)" = 2 ] || fail "d: a daemon waiting for a lock was called hung"
[ "$(fk_count RECOVERED)" = 2 ] || fail "expected two recoveries (a, b), got $(fk_count RECOVERED)"
[ "$(fk_count FAILED)" = 0 ] || fail "unexpected FAILED events"

holder_stop f
fk_umount_exit 0
assert_not_mounted "$M"

# ---- e: the keeper itself stopped while the daemon answers ------------------
# Every operation takes 1 s, the timeout is 2 s. A stat -f reaches the daemon,
# the keeper is stopped for 3 s (a frozen cgroup), the daemon's answer waits
# unread in the socket. After SIGCONT the keeper must not take the daemon for
# hung: it answered, the keeper did not read.
fk_start "$M" --hang-timeout=2 -- "$TESTFS" --backing="$B" --delay-ms=1000 {}
fk_wait READY || fail "e: the keeper never became READY"
d=$(fk_daemon_pid)
for round in 1 2 3; do
	bg_timed e-statfs-$round stat -f "$M"
	# The request is with the daemon once the keeper has sent it: give the relay a moment.
	sleep 0.3
	kill -STOP "$FK_PID" || fail "e: cannot stop the keeper"
	sleep 3
	kill -CONT "$FK_PID" || fail "e: cannot continue the keeper"
	bg_result e-statfs-$round 30 || fail "e: the stat -f never returned"
	[ "$BG_RC" = 0 ] || fail "e: the stat -f failed: $BG_OUT"
done
try_cmd 20 stat -f "$M" || fail "e: a stat -f afterwards failed: $TRY_OUT"
[ "$(fk_count HUNG)" = 0 ] || fail "e: a daemon whose answers the stopped keeper had not read was called hung"
alive "$d" || fail "e: daemon $d died"
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
