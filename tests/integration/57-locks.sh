#!/bin/bash
# 57-locks: file locks that a daemon keeps itself (testfs --locks: flock(2) on
# its backing fds, POSIX locks as OFD locks per lock owner) survive its crash:
# the keeper takes every granted lock again on the new daemon before anything
# else reaches it, so that no two processes ever hold one exclusive lock.
#
# The lock holders are tests/fklock processes, each with one file open, told
# what to do through a fifo; the exclusive ones announce themselves in a
# holders directory and answer "ok shared-with NAME" when they get a lock that
# another still holds.  "W is waiting" means the keeper relayed W's SETLKW (its
# trace log, -vv) and W has not answered.
#
#   a  flock: A holds LOCK_EX, W waits for it; the daemon is SIGKILLed.  After
#      RECOVERED, B's `flock -n` fails and W still waits; A unlocks and W gets
#      the lock, alone; then B's flock -n fails until W unlocks.
#   b  POSIX fcntl locks: A holds [0,100), W waits for [50,150); kill.  B
#      cannot lock [60,70) and F_GETLK shows A's lock; W still waits.  A
#      unlocks [0,50) (a split): B can lock [0,10), F_GETLK shows [50,100).
#      Killed again: the split survives ([60,70) refused, [10,20) granted).  A
#      unlocks the rest and W gets [50,150), alone.
#   c  A lock that cannot be taken again: A holds a flock (c1) or a POSIX lock
#      (c2); the daemon is killed and, while no daemon runs (the restart is
#      gated), another process takes the lock on the backing file itself.  A's
#      next lock operation fails with EIO, once; the keeper's log says why;
#      the next one sees the other holder; once it lets go, A gets the lock.
#   d  The daemon dies while granting a waiting SETLKW (testfs crash hook
#      after:setlk, armed before W asks; A's unlock lets W through): W gets
#      the lock; killed once more, W's lock survives (B is refused).
#   e  The bound: a keeper with --max-locks=4 refuses a fifth lock (fcntl or
#      flock), and an unlock that would split one, with ENOLCK and says so in
#      its log; a lock that merges with its owner's neighbours takes no room;
#      the locks it kept survive a kill.
#
# Each case checks that the keeper recovered (RECOVERED) after each kill.  A
# wrong outcome stops the script at once, unless LOCKS_ALL=1: then every case
# runs and all results are printed at the end (exit 1 if any was wrong).
# timeout: 240
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cases.sh"
. "$(dirname "$0")/../lib-locks.sh"
CASES_GO_ON=${LOCKS_ALL:-0}

need_prog "$TESTFS"
need_prog "$FKLOCK"
need_cmd flock

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

# trace_count REGEX: lines of the keeper's log matching REGEX.
trace_count() {
	grep -c -E -- "$1" "$FK_LOG"
}

# relayed_setlkw N: waits until the keeper has relayed N SETLKW requests in all.
relayed_setlkw() {
	local deadline=$(($(now_ms) + 10000))
	while [ "$(trace_count 'kernel: SETLKW unique')" -lt "$1" ]; do
		[ "$(now_ms)" -lt "$deadline" ] || fail "the keeper did not relay SETLKW number $1"
		sleep 0.02
	done
}

# kill_recover: SIGKILLs the daemon and waits for a new one to take over.
kill_recover() {
	fk_mark
	fk_kill_daemon || fail "cannot kill the daemon"
	fk_wait RECOVERED "" 30 >/dev/null || fail "no RECOVERED after killing the daemon"
	log "recovered: $FK_LINE"
}

# b_flock_n PATH: B, a fresh process, tries flock -n; prints "locked" or "busy".
b_flock_n() {
	try_cmd 10 flock -n -E 7 "$1" true
	case $? in
	0) echo locked ;;
	7) echo busy ;;
	*) echo "error: $TRY_OUT" ;;
	esac
}

# A holder that announced itself and was never told to let go is left behind.
no_shared() {
	local f
	for f in "$T"/lk-"$CASE"-*.out; do
		! grep -q 'shared-with' "$f" || wrong "${f##*/}: a lock was granted while another held it: $(grep 'shared-with' "$f")"
	done
}

# ---- the keeper ------------------------------------------------------------

fk_start "$M" -vv --max-restarts=100 -- "$TESTFS" --backing="$B" --locks \
	--crash-file="$T/crash" --fail-start-if="$GATE" {}
fk_wait READY || fail "the keeper never became READY"
for d in a b c1 c2 d; do
	mkdir "$M/$d" && : >"$M/$d/file" || fail "cannot create $M/$d/file"
done

# ---- a: flock --------------------------------------------------------------

begin a "flock: A holds LOCK_EX, W waits; the daemon is killed"
mkdir "$T/hold-a"
lk_start A "$M/a/file" "$T/hold-a"
lk_start W "$M/a/file" "$T/hold-a"
lk A "flock ex nb" ok
n=$(trace_count 'kernel: SETLKW unique')
lk_send W "flock ex"
relayed_setlkw $((n + 1))
lk_waits W
kill_recover
expect "B's flock -n after the recovery" "$(b_flock_n "$M/a/file")" busy
lk_waits W
lk A "flock un" ok
lk_answer W 20
expect "W's flock once A let go" "$LK_OUT" ok
expect "B's flock -n while W holds it" "$(b_flock_n "$M/a/file")" busy
lk W "flock un" ok
expect "B's flock -n once W let go" "$(b_flock_n "$M/a/file")" locked
lk_quit A
lk_quit W
no_shared
end_case

# ---- b: POSIX locks ----------------------------------------------------------

begin b "fcntl locks: A holds [0,100), W waits for [50,150), a split, two kills"
mkdir "$T/hold-b"
lk_start A "$M/b/file" "$T/hold-b"
lk_start W "$M/b/file" "$T/hold-b"
lk_start B "$M/b/file"
lk A "lock wr 0 100" ok
n=$(trace_count 'kernel: SETLKW unique')
lk_send W "lock wr 50 100 wait"
relayed_setlkw $((n + 1))
lk_waits W
kill_recover
lk B "lock wr 60 10" "error EAGAIN"
lk B "test wr 0 200" "locked wr 0 100"
lk_waits W
lk A "lock un 0 50" ok
lk B "lock wr 0 10" ok
lk B "lock un 0 0" ok
lk B "test wr 0 200" "locked wr 50 50"
kill_recover
lk B "lock wr 60 10" "error EAGAIN"
lk B "lock wr 10 10" ok
lk B "lock un 0 0" ok
lk B "test wr 0 200" "locked wr 50 50"
lk_waits W
lk A "lock un 0 0" ok
lk_answer W 20
expect "W's lock once A let go" "$LK_OUT" ok
lk B "test wr 0 200" "locked wr 50 100"
lk W "lock un 0 0" ok
lk B "test wr 0 200" unlocked
lk_quit A
lk_quit W
lk_quit B
no_shared
end_case

# ---- c: a lock that cannot be taken again -----------------------------------

# lost_case NAME LOCK-CMD UNLOCK-CMD: A holds a lock on NAME/file; the daemon
# dies; while none runs, X takes the same lock on the backing file.
lost_case() {
	local dir=$1 lock=$2 unlock=$3 pid
	lk_start A "$M/$dir/file"
	lk A "$lock" ok
	gate_on
	fk_mark
	fk_kill_daemon || fail "cannot kill the daemon"
	fk_wait FAILED "" 30 >/dev/null || fail "no start refused by the gate"
	lk_start X "$B/$dir/file"
	lk X "$lock" ok
	gate_off
	fk_wait RECOVERED "" 30 >/dev/null || fail "no RECOVERED"
	log "recovered: $FK_LINE"
	[ -n "$(grep -E "could not be taken again" "$FK_LOG" | tail -n 1)" ] ||
		wrong "the keeper's log does not say that a lock could not be taken again"
	lk A "$lock" "error EIO"
	lk A "$lock" "error EAGAIN"
	lk X "$unlock" ok
	lk A "$lock" ok
	lk A "$unlock" ok
	lk_quit A
	lk_quit X
}

begin c1 "flock lost: another process took it on the backing file meanwhile"
lost_case c1 "flock ex nb" "flock un"
end_case

begin c2 "fcntl lock lost: another process took it on the backing file meanwhile"
lost_case c2 "lock wr 0 0" "lock un 0 0"
end_case

# ---- d: the daemon dies granting a waiting SETLKW ---------------------------

begin d "the daemon dies while it grants W's waiting SETLKW"
mkdir "$T/hold-d"
lk_start A "$M/d/file" "$T/hold-d"
lk_start W "$M/d/file" "$T/hold-d"
lk_start B "$M/d/file"
lk A "lock wr 0 0" ok
crash_arm after:setlk:file
lk_send W "lock wr 0 0 wait"
# The daemon consumes the crash file when W's SETLKW reaches it.
deadline=$(($(now_ms) + 10000))
while [ -e "$T/crash" ]; do
	[ "$(now_ms)" -lt "$deadline" ] || fail "W's SETLKW did not reach the daemon"
	sleep 0.02
done
lk_waits W
lk_send A "lock un 0 0"
crash_died
crash_recovered
lk_answer A 20
expect "A's unlock" "$LK_OUT" ok
lk_answer W 20
expect "W's lock" "$LK_OUT" ok
lk B "lock wr 0 1" "error EAGAIN"
kill_recover
lk B "lock wr 0 1" "error EAGAIN"
lk W "lock un 0 0" ok
lk B "lock wr 0 1" ok
lk B "lock un 0 0" ok
lk_quit A
lk_quit W
lk_quit B
no_shared
end_case

[ "$(fk_count GAVEUP)" = 0 ] || fail "the keeper gave up"
fk_umount_exit 0
assert_not_mounted "$M"

# ---- e: the bound ------------------------------------------------------------

begin e "--max-locks=4: a fifth lock and a splitting unlock get ENOLCK"
M2=$T/mnt2
mkdir "$M2"
fk_start "$M2" --max-locks=4 --max-restarts=100 -- "$TESTFS" --backing="$B" --locks {}
fk_wait READY || fail "the keeper with --max-locks never became READY"
: >"$M2/e" || fail "cannot create $M2/e"
lk_start A "$M2/e"
lk_start B "$M2/e"
lk A "lock wr 0 10" ok
lk A "lock wr 20 10" ok
lk A "lock wr 40 10" ok
lk A "lock wr 60 10" ok
lk A "lock wr 80 10" "error ENOLCK"
grep -q -- "--max-locks" "$FK_LOG" || wrong "the keeper's log does not name --max-locks"
lk B "flock ex nb" "error ENOLCK"
lk A "lock un 45 1" "error ENOLCK"
lk A "lock wr 10 10" ok
lk A "lock wr 80 10" ok
kill_recover
lk B "test wr 0 1" "locked wr 0 30"
lk B "test wr 85 1" "locked wr 80 10"
lk B "test wr 35 1" unlocked
lk A "lock un 0 0" ok
lk B "flock ex nb" ok
lk B "flock un" ok
lk_quit A
lk_quit B
end_case

cases_report
[ "$(fk_count GAVEUP)" = 0 ] || fail "the keeper gave up"
M=$M2
fk_umount_exit 0
assert_not_mounted "$M2"
assert_all_gone
log "ok"
