#!/bin/bash
# 23-keeper-kill-eio: the keeper SIGKILLed where the kernel cannot send again the requests it had
# read (FUSE_NOTIFY_RESEND came with Linux 6.9; Debian 12 runs 6.1). FUSEKEEPER_TEST_NO_RESEND=1
# makes every keeper here act so on any kernel. The keeper still keeps the connection in the fd
# store (tests/notify-listener.py stands in for systemd, lib-resume.sh) and says what a kill
# costs there; the keeper started after the kill takes the connection back and answers EIO to
# exactly the calls the killed one held — nobody can tell what its daemon did of them: never a
# success that may be false, never a wait for ever. Everything else lives on: a file held open
# reads back whole through the same fd, a process in its own mount namespace reads through its
# bind mount, new calls succeed.
#
# The new keeper finds those calls by their uniques, from the journal's mark (resume_mark(), set
# every few hundred requests) to the first request it reads, which it asks for itself (a statfs):
# here the held calls must end with nobody else touching the mount. Thousands of requests before
# each kill move the mark on: the sweep must try few uniques, not every one since the mount.
#  round 1: an UNLINK and a LOOKUP held by a daemon that hangs in the UNLINK (and in every
#           operation after it) before doing it: both get EIO; the file is still there.
#  round 2: a MKDIR the daemon did before it hung: EIO, though it was done (an error, not a
#           false answer); the directory is there afterwards.
#  round 3: a MKDIR the daemon did and never answers, while it serves the burst after it: the
#           mark stays at it (the sweep tries the whole burst) and it gets EIO.
#  round 4: the RELEASE of a file closed with its flock lock held, which the daemon did and
#           never answers: the kernel let go of the file, so the new keeper must neither take
#           the lock again in the new daemon nor open the file again; another process gets
#           the lock at once.
# timeout: 180
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-resume.sh"
. "$(dirname "$0")/../lib-cases.sh"
. "$(dirname "$0")/../lib-locks.sh"

need_prog "$TESTFS"
need_prog "$BUILD_DIR/tests/fklock"
need_cmd python3
need_cmd flock
export FUSEKEEPER_TEST_NO_RESEND=1

M=$T/mnt
B=$T/back
mkdir "$M" "$B" "$B/sub" "$B/ns" "$B/vdir"
: >"$B/vdir/victim"
# Looked up in the root, which is never revalidated, and not before round 1: its LOOKUP is the
# only request of the stat. (Under a directory whose entry may have expired, the held request
# could be the directory's revalidation, and the kernel answers a failed one with a fresh
# lookup, served by the next daemon: the stat would succeed, rightly.) The UNLINK is in another
# directory: the kernel holds the victim's directory locked during it.
echo "other-content" >"$B/other"
head -c 300000 /dev/urandom >"$B/held"
cp "$B/held" "$B/ns/data"
HELD_SUM=$(sha256sum <"$B/held" | cut -d' ' -f1)
notify_listener_start "$T/spawn.json"
NOTIFY_SOCKET=$T/notify.sock fk_start "$M" --mode=proxy --write-through --max-restarts=10 -- \
	"$TESTFS" --backing="$B" --locks --crash-file="$T/crash" {}
fk_wait READY || fail "the keeper never became READY"
wait_match "$FK_LOG" 'Stored the connection and the resume journal' 10 >/dev/null ||
	fail "the keeper did not store the connection: $(grep -a 'fd store' "$FK_LOG")"
grep -q 'cannot send again the requests a killed keeper had read.*get EIO' "$FK_LOG" ||
	fail "the keeper did not say what a SIGKILL of it costs on this kernel: $(cat "$FK_LOG")"

# A process holding held open reads it whole through that fd (pread) for each line on its fifo.
mkfifo "$T/held.in"
run_bg held python3 -c '
import hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("ready", flush=True)
for line in open(sys.argv[2]):
    try:
        h, off = hashlib.sha256(), 0
        while True:
            b = os.pread(fd, 65536, off)
            if not b:
                break
            h.update(b)
            off += len(b)
        print(line.strip(), h.hexdigest(), flush=True)
    except OSError as e:
        print(line.strip(), "ERROR", e, flush=True)' "$M/held" "$T/held.in"
HELD_PID=$BG_PID
wait_match "$T/held.out" '^ready$' 30 >/dev/null || fail "the holder did not open held: $(cat "$T/held.err")"
exec {held_fd}>"$T/held.in"
ns_reader_start "$M/ns"

# check_alive WHEN: the held fd, the namespace reader and new calls all work.
check_alive() {
	local line sum
	echo "$1" >&"$held_fd"
	line=$(wait_match "$T/held.out" "^$1 " 30) || fail "$1: the holder did not answer"
	[ "${line#"$1 "}" = "$HELD_SUM" ] || fail "$1: the held fd read '${line#"$1 "}'"
	sum=$(ns_query "$1") || fail "$1: the namespace reader did not answer"
	[ "${sum% *}" = "$HELD_SUM" ] || fail "$1: the namespace reader got '$sum'"
	try_cmd 30 sh -c "echo '$1' >'$M/new-$1' && cat '$M/new-$1'" || fail "$1: a new file: $TRY_OUT"
	[ "$TRY_OUT" = "$1" ] || fail "$1: a new file read back '$TRY_OUT'"
}

# burst: some thousands of requests (lookups of names that are not there: never cached).
burst() {
	python3 -c 'import os, sys
for i in range(3000):
    try:
        os.stat("%s/absent-%d" % (sys.argv[1], i))
    except FileNotFoundError:
        pass' "$M/sub" || fail "the burst of lookups failed"
}

# swept ROUND COUNT [MIN MAX]: the new keeper answered EIO to COUNT requests, having tried
# between MIN and MAX uniques (default: fewer than 2000, the mark having moved on).
swept() {
	local line tried min=${3:-0} max=${4:-2000}
	# The sweep runs when the relay reads its first request, which need not be before the
	# recovery's end.
	line=$(wait_match "$FK_LOG" 'Answered EIO to .* the killed keeper had read' 30) ||
		fail "round $1: no sweep logged: $(tail -5 "$FK_LOG")"
	log "round $1: $line"
	[[ $line == *"Answered EIO to $2 request"* ]] || fail "round $1: expected $2 requests: $line"
	tried=$(sed -n 's/.*(\([0-9]*\) uniques tried.*/\1/p' <<<"$line")
	[ -n "$tried" ] && [ "$tried" -ge "$min" ] && [ "$tried" -lt "$max" ] ||
		fail "round $1: the sweep tried ${tried:-?} uniques, not $min to $max"
}

# eio ROUND NAME: the call NAME ran in the background failed with EIO.
eio() {
	bg_result "$2" 30 || fail "round $1: $2 is still waiting after the new keeper took over"
	[ "$BG_RC" != 0 ] && [[ $BG_OUT == *"Input/output error"* ]] ||
		fail "round $1: $2 of a request the killed keeper held: exit $BG_RC: $BG_OUT"
}

check_alive start
burst
arm "hang:unlink:victim"
bg_timed unlink rm "$M/vdir/victim"
in_flight 1
bg_timed lookup stat -c %s "$M/other"
in_flight 2
rm -f "$T/crash"
kill_keeper 1 --locks --crash-file="$T/crash"
eio 1 unlink
eio 1 lookup
swept 1 2
[ -e "$B/vdir/victim" ] || fail "round 1: victim went from the store, though the daemon hung first"
check_alive round-1
try_cmd 30 stat -c %s "$M/other" || fail "round 1: stat after the sweep: $TRY_OUT"
[ "$TRY_OUT" = 14 ] || fail "round 1: other has $TRY_OUT bytes"

burst
arm "hang-after:mkdir:newdir"
bg_timed mkdir mkdir "$M/newdir"
in_flight 1
poll 10 test -d "$B/newdir" || fail "round 2: the daemon never made newdir"
rm -f "$T/crash"
kill_keeper 2 --locks --crash-file="$T/crash"
eio 2 mkdir
swept 2 1
check_alive round-2
try_cmd 30 stat -c %F "$M/newdir" || fail "round 2: newdir cannot be looked up: $TRY_OUT"
[ "$TRY_OUT" = directory ] || fail "round 2: newdir is a '$TRY_OUT'"

# Round 3: a MKDIR the daemon did and never answers while it serves the rest (stall-after:),
# then a burst: the mark must stay at the held request, so the sweep tries the whole burst.
arm "stall-after:mkdir:stalled"
bg_timed mkdir3 mkdir "$M/stalled"
in_flight 1
burst
shows_in_flight 1 || fail "round 3: the stalled MKDIR is no longer in flight"
rm -f "$T/crash"
kill_keeper 3 --locks --crash-file="$T/crash"
eio 3 mkdir3
swept 3 1 3000 20000
check_alive round-3

: >"$B/lockme"
CASE=round-4 CASES_GO_ON=0
lk_start holder "$M/lockme"
lk holder "flock ex nb" ok
flock -n "$M/lockme" true && fail "round 4: a second flock got the lock fklock holds"
burst
arm "stall-after:release:lockme"
lk_send holder close
lk_answer holder 30 || fail "round 4: the close got no answer: $LK_OUT"
expect "the close" "$LK_OUT" ok
lk_quit holder
in_flight 1
rm -f "$T/crash"
kill_keeper 4 --locks --crash-file="$T/crash"
swept 4 1
wait_match "$FK_LOG" 'Released 1 handle that the killed keeper was closing, and its locks' 10 \
	>/dev/null || fail "round 4: the new keeper did not release the handle: $(tail -5 "$FK_LOG")"
try_cmd 30 flock -n "$M/lockme" true || fail "round 4: the released file's lock is still held: $TRY_OUT"
check_alive round-4

# The namespace reader first: it holds the holder's fifo open too (started after it).
ns_reader_stop
exec {held_fd}>&-
wait_pid "$HELD_PID" 15 || fail "the holder did not exit"
[ "$WAIT_STATUS" = 0 ] || fail "the holder failed: $(cat "$T/held.err")"
try_cmd 30 umount "$M" || fail "umount failed: $TRY_OUT"
wait_gone "$FK_PID" 30 || fail "the last keeper did not exit after umount"
for name in fuse journal-a journal-b; do
	grep -q "^FDSTOREREMOVE=1|FDNAME=$name\$" "$N" || fail "no FDSTOREREMOVE=1 of $name: $(cat "$N")"
done
grep -h "resume journal does not match" "$T"/keeper.*.log && fail "a keeper's journal did not match"
log "ok"
