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
# daemon and recovers: RESUMED, RECOVERED, no failed call, the data in the store right. Calls
# the killed keeper had read that a repeat would not do as once (a removal, a create) are
# settled by proof (part 2). On umount the keeper takes its fds out of the store
# (FDSTOREREMOVE=1).
#
# On a kernel without FUSE_NOTIFY_RESEND (before 6.9) the requests the killed keeper had read
# get EIO instead, which 23-keeper-kill-eio tests on every kernel: the keeper must say so; this
# test then skips the rest (exit 77).
# timeout: 240
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-resume.sh"

need_prog "$TESTFS"
need_prog "$FKLOAD"
need_cmd python3

M=$T/mnt
B=$T/back
mkdir "$M" "$B"
notify_listener_start "$T/spawn.json"

# Proxy mode, the one that can take a connection back (with --write-through and a kernel with
# FUSE_DEV_IOC_REINIT, auto would choose reinit). testfs stores a write before it answers it:
# --write-through (without it, a handle written before the kill reports EIO at its next write
# or sync: the killed keeper's write window, which held what the daemon may not have stored,
# is gone).
NOTIFY_SOCKET=$T/notify.sock fk_start "$M" --mode=proxy --write-through --max-restarts=10 -- \
	"$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"

wait_match "$FK_LOG" 'Stored the connection and the resume journal' 10 >/dev/null ||
	fail "the keeper did not store the connection: $(grep -a 'fd store' "$FK_LOG")"
if line=$(grep -a 'cannot send again the requests a killed keeper had read' "$FK_LOG"); then
	fk_umount_exit 0
	skip "this kernel ($(uname -r)) cannot resend the requests a killed keeper had read, which" \
		"get EIO then (23-keeper-kill-eio): $line"
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

# Requests the killed keeper had read come back from the kernel once a new daemon serves. A
# LOOKUP, which a repeat does as once, is sent again. A removal or a create is settled as one a
# dead daemon held (recover.c), with the time the killed keeper gave it to its daemon from the
# journal: the application gets what really happened, never an EIO for a call that can be
# settled, never a success that may be false. testfs --crash-file makes the daemon hang in one
# operation (and every one after), before doing it (hang:) or once done (hang-after:).
#  a: an UNLINK the daemon had not done, and a LOOKUP (in another directory: an UNLINK locks
#     its own): the UNLINK is sent again and removes the file; the LOOKUP is answered.
#  b: an UNLINK the daemon had done: the repeat finds no name, the directory changed while the
#     killed keeper's daemon held it: success.
#  c: a MKDIR the daemon had done: the repeat finds the name taken, by a directory made while
#     the killed keeper's daemon held it: success, with that directory. Here the daemon is
#     left running, as systemd does with KillMode=process: the new keeper must end it before
#     it settles anything (it could still be doing the request).
#  d: a MKDIR the daemon had not done, and the name made in the store by someone else after the
#     new keeper began (its daemon is slow to start: testfs --slow-start-if): the repeat finds
#     the name taken by a directory younger than the window in which the killed keeper's daemon
#     could have made it: not its doing, EEXIST.
# Each name is looked up first (--cache-s keeps it), so that the request itself is in flight.
M=$T/mnt2
B=$T/back2
mkdir "$M" "$B" "$B/sub"
: >"$B/victim"
: >"$B/victim2"
echo "other-content" >"$B/sub/other"
NOTIFY_SOCKET=$T/notify.sock fk_start "$M" --mode=proxy --write-through --max-restarts=10 -- "$TESTFS" \
	--backing="$B" --cache-s=600 --crash-file="$T/crash" {}
fk_wait READY || fail "part 2: the keeper never became READY"
wait_match "$FK_LOG" 'Stored the connection and the resume journal' 30 >/dev/null ||
	fail "part 2: the connection was not stored"
try_cmd 30 stat "$M/victim" "$M/victim2" "$M/sub" || fail "part 2: cannot look the names up: $TRY_OUT"
# A proof compares the store's times with the keeper's: files made through the mount show the
# keeper how far apart the clocks are (proxy.clock_slack_ns, kept in the journal).
for i in 1 2 3; do
	try_cmd 30 touch "$M/sub/sample$i" || fail "part 2: cannot create sample$i: $TRY_OUT"
done
# settled ROUND NAME: the call NAME ran in the background succeeded.
settled() {
	bg_result "$2" 30 || fail "part 2 $1: $2 did not finish"
	[ "$BG_RC" = 0 ] || fail "part 2 $1: $2 of a request the killed keeper had read: $BG_RC $BG_OUT" \
		"$(grep -a 'killed keeper' "$FK_LOG")"
}

arm "hang:unlink:victim"
bg_timed unlink rm "$M/victim"
in_flight 1
bg_timed lookup stat -c %s "$M/sub/other"
in_flight 2
kill_keeper part-2a --cache-s=600 --crash-file="$T/crash"
settled a unlink
[ -e "$B/victim" ] && fail "part 2a: victim is still in the store after rm succeeded"
bg_result lookup 30 || fail "part 2a: stat did not finish"
[ "$BG_RC" = 0 ] && [ "$BG_OUT" = 14 ] || fail "part 2a: stat of a LOOKUP sent again: $BG_RC $BG_OUT"

arm "hang-after:unlink:victim2"
bg_timed unlink2 rm "$M/victim2"
in_flight 1
poll 10 test ! -e "$B/victim2" || fail "part 2b: the daemon never removed victim2"
kill_keeper part-2b --cache-s=600 --crash-file="$T/crash"
settled b unlink2
grep -q "UNLINK .*the dead daemon did it: answering success" "$FK_LOG" ||
	fail "part 2b: no proof logged for the UNLINK: $(grep -a UNLINK "$FK_LOG")"

arm "hang-after:mkdir:newdir"
bg_timed mkdir mkdir "$M/newdir"
in_flight 1
poll 10 test -d "$B/newdir" || fail "part 2c: the daemon never made newdir"
KEEP_DAEMON=1 kill_keeper part-2c --cache-s=600 --crash-file="$T/crash"
grep -q "The killed keeper's daemon (pid $OLD_DAEMON) still ran" "$FK_LOG" ||
	fail "part 2c: the new keeper did not end the daemon left running: $(head -5 "$FK_LOG")"
wait_gone "$OLD_DAEMON" 10 || fail "part 2c: the daemon left running still runs"
settled c mkdir
grep -q "MKDIR .*the dead daemon made it: answering with the entry" "$FK_LOG" ||
	fail "part 2c: no proof logged for the MKDIR: $(grep -a MKDIR "$FK_LOG")"
try_cmd 30 stat -c %F "$M/newdir" || fail "part 2c: newdir cannot be looked up: $TRY_OUT"
[ "$TRY_OUT" = directory ] || fail "part 2c: newdir is a '$TRY_OUT'"

arm "hang:mkdir:late"
bg_timed mkdir2 mkdir "$M/late"
in_flight 1
echo "sleep 3000" >"$T/slow"
kill_only part-2d
spawn_keeper part-2d "$M" --cache-s=600 --crash-file="$T/crash" --slow-start-if="$T/slow"
fk_wait RESUMED "" 30 || fail "part 2d: the new keeper did not resume: $(tail -5 "$FK_LOG")"
# Past the window's end by more than any clock slack (at most 100 ms: clock.c) before the
# directory is made.
past_ms() { [ "$(now_ms)" -gt "$1" ]; }
poll 5 past_ms $(($(now_ms) + 300))
mkdir "$B/late" || fail "part 2d: cannot make late in the store"
rm -f "$T/slow"
fk_wait RECOVERED "" 60 || fail "part 2d: no RECOVERED: $(tail -5 "$FK_LOG")"
bg_result mkdir2 30 || fail "part 2d: mkdir did not finish"
[ "$BG_RC" != 0 ] && [[ $BG_OUT == *"File exists"* ]] ||
	fail "part 2d: mkdir of a name someone else made after the window: $BG_RC $BG_OUT" \
		"$(grep -a MKDIR "$FK_LOG")"
grep -q "MKDIR .*not the dead daemon's doing" "$FK_LOG" ||
	fail "part 2d: no reason logged for the EEXIST: $(grep -a MKDIR "$FK_LOG")"

try_cmd 30 umount "$M" || fail "part 2: umount failed: $TRY_OUT"
wait_gone "$FK_PID" 30 || fail "part 2: the keeper did not exit after umount"

# Part 3: what the store holds is not taken back where it cannot be. Each time the keeper that
# refuses says why, takes the fds out of the store (systemd would start a fresh one next) and
# exits 1.
#  a: keepers that take the connection back and die before a daemon recovered (here no daemon
#     can start: testfs --fail-start-if): the third one in a row refuses, and the mount goes.
#  b: a keeper started for another mountpoint than the one the connection was kept for.
# refused ROUND PATTERN: the keeper logged PATTERN, exited 1 and emptied the store.
refused() {
	local name
	poll 30 grep -q "^exited $FK_PID " "$N" ||
		fail "part 3$1: keeper $FK_PID did not exit (state:" \
			"$(cat "/proc/$FK_PID/stat" "/proc/$FK_PID/wchan" 2>&1); listener:" \
			"$(alive "$LISTENER" && echo alive || echo gone) $(tail -3 "$T/listener.err");" \
			"notify log: $(tail -4 "$N"); keeper log: $(cat "$FK_LOG"))"
	grep -q "^exited $FK_PID 256\$" "$N" || fail "part 3$1: $(grep "^exited $FK_PID " "$N")"
	grep -q -- "$2" "$FK_LOG" || fail "part 3$1: no '$2' in the log: $(cat "$FK_LOG")"
	for name in fuse journal-a journal-b; do
		[ "$(grep -c "^FDSTOREREMOVE=1|FDNAME=$name\$" "$N")" -gt "$3" ] ||
			fail "part 3$1: $name was not taken out of the store"
	done
}
M=$T/mnt3
B=$T/back3
mkdir "$M" "$B"
NOTIFY_SOCKET=$T/notify.sock fk_start "$M" --mode=proxy --write-through --max-restarts=10 -- "$TESTFS" \
	--backing="$B" {}
fk_wait READY || fail "part 3: the keeper never became READY"
wait_match "$FK_LOG" 'Stored the connection and the resume journal' 30 >/dev/null ||
	fail "part 3: the connection was not stored"
echo data >"$M/f" || fail "part 3: cannot write through the mount"
: >"$T/nostart"
removed=$(grep -c "^FDSTOREREMOVE=1|FDNAME=fuse\$" "$N")
for k in 1 2; do
	kill_only "3a-$k"
	spawn_keeper "3a-$k" "$M" --fail-start-if="$T/nostart"
	fk_wait RESUMED "" 30 || fail "part 3a: keeper $k in a row did not resume: $(tail -5 "$FK_LOG")"
done
kill_only 3a-3
spawn_keeper 3a-3 "$M" --fail-start-if="$T/nostart"
refused a "2 keepers in a row took the connection back and died before a daemon recovered" "$removed"
poll 10 eval '! mounted "$M"' || fail "part 3a: the mount is still there"

NOTIFY_SOCKET=$T/notify.sock fk_start "$M" --mode=proxy --write-through --max-restarts=10 -- "$TESTFS" \
	--backing="$B" {}
fk_wait READY || fail "part 3b: the keeper never became READY"
wait_match "$FK_LOG" 'Stored the connection and the resume journal' 30 >/dev/null ||
	fail "part 3b: the connection was not stored"
try_cmd 10 cat "$M/f" || fail "part 3b: cannot read through the new mount: $TRY_OUT"
removed=$(grep -c "^FDSTOREREMOVE=1|FDNAME=fuse\$" "$N")
kill_only 3b
mkdir "$T/other"
spawn_keeper 3b "$T/other"
refused b "The connection in systemd's fd store was kept for $M, not $T/other" "$removed"
mounted "$T/other" && fail "part 3b: the keeper mounted $T/other"
try_cmd 10 stat "$M/f" && fail "part 3b: the mount whose connection was dropped still answers"
[[ $TRY_OUT == *"not connected"* ]] || fail "part 3b: stat of the dropped mount: $TRY_OUT"
umount "$M" || fail "part 3b: cannot unmount the dropped mount"

grep -h "resume journal does not match" "$T"/keeper.*.log && fail "a keeper's journal did not match"
log "ok"
