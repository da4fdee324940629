#!/bin/bash
# 29-keeper-kill: the keeper itself is SIGKILLed under a stand-in for systemd, which starts it
# again with what it left in the fd store; the mount lives on (docs/design.md, "Surviving the
# keeper's own death").
#
# tests/notify-listener.py speaks systemd's side: it keeps the fds of FDSTORE=1 by FDNAME= and,
# asked, starts the keeper again with them (LISTEN_FDS, LISTEN_FDNAMES). The keeper, given
# NOTIFY_SOCKET, must store /dev/fuse and the resume journal's two memfds (fuse, journal-a,
# journal-b) once the daemon serves. Under a workload whose every call a repeat does as one does
# (an fd held open, read and written at positions; a process reading a file bind-mounted into
# its own mount namespace; a reader of a file kept open, every byte checked), the keeper and
# then its daemon are SIGKILLed (systemd kills what is left of a service whose main process
# died), twice; each time a new keeper takes the connection back from the store, starts a new
# daemon and recovers: RESUMED, RECOVERED, no failed call, the data in the store right. A call
# the killed keeper had read that a repeat would not do as once (a removal, a create) gets EIO,
# never a success that may be false. On umount the keeper takes its fds out of the store
# (FDSTOREREMOVE=1).
#
# On a kernel without FUSE_NOTIFY_RESEND (before 6.9) the keeper must not store the connection
# (a request the killed keeper had read would wait for ever) and must say so; the test checks
# that and skips the rest (exit 77).
# timeout: 240
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_prog "$FKLOAD"
need_cmd python3

M=$T/mnt
B=$T/back
mkdir "$M" "$B"
N=$T/notify.log
: >"$N"
run_bg listener python3 "$FK_SRCDIR/tests/notify-listener.py" "$T/notify.sock" "$N" "$T/spawn.json"
wait_match "$T/listener.out" '^ready$' 10 >/dev/null || fail "the listener did not start: $(cat "$T/listener.err")"
LISTENER=$BG_PID

# Proxy mode, the one that can take a connection back (with --write-through and a kernel with
# FUSE_DEV_IOC_REINIT, auto would choose reinit). testfs stores a write before it answers it:
# --write-through (without it, a handle written before the kill reports EIO at its next write
# or sync: the killed keeper's write window, which held what the daemon may not have stored,
# is gone).
NOTIFY_SOCKET=$T/notify.sock fk_start "$M" --mode=proxy --write-through --max-restarts=10 -- \
	"$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"

if ! wait_match "$FK_LOG" 'Stored the connection and the resume journal' 10 >/dev/null; then
	line=$(grep 'is not kept in systemd' "$FK_LOG") ||
		fail "the keeper neither stored the connection nor said why: $(cat "$N")"
	grep -q 'fds=' "$N" && fail "the keeper sent fds although it does not keep the connection there"
	[[ $line == *FUSE_NOTIFY_RESEND* ]] || fail "an unexpected reason: $line"
	fk_umount_exit 0
	skip "this kernel ($(uname -r)) cannot resend the requests a killed keeper had read: $line"
fi
for name in fuse journal-a journal-b; do
	grep -q "^FDSTORE=1|FDNAME=$name fds=1\$" "$N" || fail "no FDSTORE=1 of $name: $(cat "$N")"
done

# The workload: repeats do what one does.
mkdir "$M/fd" "$M/rd" "$M/ns" || fail "mkdir through the mount failed"
head -c 300000 /dev/urandom >"$T/ns-data.ref"
cp "$T/ns-data.ref" "$M/ns/data" || fail "writing the namespace file through the mount failed"
USUAL_SUM=$(sha256sum <"$T/ns-data.ref" | cut -d' ' -f1)
head -c 100000 /dev/urandom >"$M/rd/a" && echo "marker-line" >>"$M/rd/a" || fail "cannot write rd/a"
declare -A load_pid
run_bg load-fd "$FKLOAD" fd "$M/fd" --progress="$T/fd.prog" --seed=$RANDOM
load_pid[fd]=$BG_PID
run_bg load-rd "$FKLOAD" read "$M/rd" --files=a --expect=marker-line --progress="$T/rd.prog"
load_pid[rd]=$BG_PID
ns_reader_start "$M/ns"
# (Nothing of the mount is held open by this shell itself: its subshells would close it at
# their exit, a FLUSH that waits while no keeper serves. fkload fd holds its fd all along.)

check_load() {
	local w sum
	for w in fd rd; do
		wait_progress "$T/$w.prog" 30 30 "${load_pid[$w]}" || fail "$1: the $w workload made no progress"
	done
	sum=$(ns_query "$1") || fail "$1: the namespace reader did not answer"
	[ "${sum% *}" = "$USUAL_SUM" ] || fail "$1: the namespace reader got '$sum', expected $USUAL_SUM"
}
check_load start

# kill_keeper ROUND [TESTFS-OPTION...]: SIGKILLs the keeper and its daemon, as systemd does
# with what is left of a service whose main process died, and starts a keeper again from the
# store, for $M over $B; waits until it recovered.
kill_keeper() {
	local round=$1 daemon old=$FK_PID new
	shift
	daemon=$(fk_daemon_pid) || fail "round $round: no daemon"
	log "round $round: killing keeper $old and daemon $daemon"
	kill -KILL "$old"
	wait_gone "$old" 10 || fail "round $round: the keeper did not die"
	wait "$old" 2>/dev/null
	kill -KILL "$daemon" 2>/dev/null
	wait_gone "$daemon" 10 || fail "round $round: the daemon did not die"
	mounted "$M" || fail "round $round: the mount went with the keeper"
	FK_N=$((FK_N + 1))
	FK_EVENTS=$T/events.$FK_N
	FK_LOG=$T/keeper.$FK_N.log
	: >"$FK_EVENTS"
	printf '%s\n' "$TESTFS" >"$FK_STATE/cmd.$FK_N"
	python3 -c 'import json, sys; json.dump({"argv": sys.argv[3:], "stdout": sys.argv[1],
		"events": sys.argv[2]}, open(sys.argv[1] + ".spawn", "w"))' "$FK_LOG" "$FK_EVENTS" \
		"$FK" --status-fd=9 --mode=proxy --write-through --max-restarts=10 "$M" -- "$TESTFS" --backing="$B" \
		"$@" {}
	mv "$FK_LOG.spawn" "$T/spawn.json"
	local spawned
	spawned=$(grep -c '^spawned ' "$N")
	kill -USR1 "$LISTENER"
	wait_match "$N" "^spawned " 10 >/dev/null || fail "round $round: the listener started nothing"
	until [ "$(grep -c '^spawned ' "$N")" -gt "$spawned" ]; do sleep 0.02; done
	new=$(grep '^spawned ' "$N" | tail -n 1 | cut -d' ' -f2)
	FK_PID=$new
	track_pid "$new"
	fk_wait RESUMED "" 30 ||
		fail "round $round: the new keeper did not resume: $(tail -5 "$FK_LOG"; tail -4 "$N")"
	fk_wait RECOVERED "" 60 || fail "round $round: no RECOVERED: $(tail -5 "$FK_LOG")"
	log "round $round: $(grep -m1 'Took the connection back' "$FK_LOG")"
	log "round $round: $FK_LINE"
}

for round in 1 2; do
	kill_keeper "$round"
	check_load "round-$round"
done

check_load end
for w in fd rd; do
	kill -TERM "${load_pid[$w]}"
	wait_pid "${load_pid[$w]}" 30 || fail "the $w workload did not stop"
	[ "$WAIT_STATUS" = 0 ] || fail "the $w workload failed: $(tail -3 "$T/load-$w.err")"
	grep -q "errors=0" "$T/load-$w.out" || fail "the $w workload saw errors: $(tail -3 "$T/load-$w.out")"
done
cmp "$B/fd/fd-file" "$M/fd/fd-file" || fail "fd-file differs between the backing dir and the mount"
ns_reader_stop

try_cmd 30 umount "$M" || fail "umount failed: $TRY_OUT"
wait_gone "$FK_PID" 30 || fail "the last keeper did not exit after umount"
for name in fuse journal-a journal-b; do
	grep -q "^FDSTOREREMOVE=1|FDNAME=$name\$" "$N" || fail "no FDSTOREREMOVE=1 of $name: $(cat "$N")"
done

# Requests the killed keeper had read: a LOOKUP, which a repeat does as once, is sent again to
# the next daemon and answered; an UNLINK, which the dead daemon may or may not have done (here
# it had not: testfs --crash-file=hang:unlink:victim blocks it at the start of the UNLINK, and
# in every operation after), gets EIO and the file stays.
# The name to remove is looked up first (--cache-s keeps it), so that the UNLINK itself is what
# is in flight; the LOOKUP is in another directory (an UNLINK locks its own).
M=$T/mnt2
B=$T/back2
mkdir "$M" "$B" "$B/sub"
: >"$B/victim"
echo "other-content" >"$B/sub/other"
NOTIFY_SOCKET=$T/notify.sock fk_start "$M" --mode=proxy --write-through --max-restarts=10 -- "$TESTFS" \
	--backing="$B" --cache-s=600 --crash-file="$T/crash" {}
fk_wait READY || fail "part 2: the keeper never became READY"
wait_match "$FK_LOG" 'Stored the connection and the resume journal' 30 >/dev/null ||
	fail "part 2: the connection was not stored"
try_cmd 30 stat "$M/victim" "$M/sub" || fail "part 2: cannot look victim and sub up: $TRY_OUT"
echo "hang:unlink:victim" >"$T/crash.tmp" && mv "$T/crash.tmp" "$T/crash" ||
	fail "part 2: cannot arm the daemon's hang"
# in_flight N: waits until the keeper holds N requests in flight (30 s at most).
in_flight() {
	local deadline=$(($(now_ms) + 30000))
	until "$FK" status --json "$M" 2>/dev/null | grep -Eq "\"requests_in_flight\": *$1"; do
		[ "$(now_ms)" -lt "$deadline" ] || fail "part 2: $1 requests never showed in flight"
		sleep 0.02
	done
}
bg_timed unlink rm "$M/victim"
in_flight 1
bg_timed lookup stat -c %s "$M/sub/other"
in_flight 2
kill_keeper part-2 --cache-s=600
grep -q "UNLINK (unique 0x[0-9a-f]*) was read by the killed keeper.*answering EIO" "$FK_LOG" ||
	fail "part 2: the resumed keeper did not answer the UNLINK EIO: $(cat "$FK_LOG")"
bg_result unlink 30 || fail "part 2: rm did not finish"
[ "$BG_RC" != 0 ] && [[ $BG_OUT == *"Input/output error"* ]] ||
	fail "part 2: rm of a file whose UNLINK the killed keeper had read: $BG_RC $BG_OUT"
[ -e "$B/victim" ] || fail "part 2: victim is gone from the store, though the daemon never removed it"
bg_result lookup 30 || fail "part 2: stat did not finish"
[ "$BG_RC" = 0 ] && [ "$BG_OUT" = 14 ] || fail "part 2: stat of a LOOKUP sent again: $BG_RC $BG_OUT"
try_cmd 30 umount "$M" || fail "part 2: umount failed: $TRY_OUT"
wait_gone "$FK_PID" 30 || fail "part 2: the keeper did not exit after umount"
grep -h "resume journal does not match" "$T"/keeper.*.log && fail "a keeper's journal did not match"
log "ok"
