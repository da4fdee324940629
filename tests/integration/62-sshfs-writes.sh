#!/bin/bash
# 62-sshfs-writes: writes sshfs acknowledged before it was killed are not lost.
#
# sshfs with its default options (no sshfs_sync) answers a WRITE as soon as it
# has queued it for its ssh child; killed mid-stream, it takes the data it
# acknowledged but had not yet delivered with it.  The keeper keeps the writes a
# handle's daemon acknowledged since the handle's last FSYNC or FLUSH (its write
# window, --write-window) and sends them again to the next daemon; a handle whose
# window overflowed gets EIO at its next WRITE and FSYNC/FLUSH instead.
#
#   part 1  default bounds: one writer streams 64 MiB through one fd in
#           256 KiB chunks (fkwrite) while sshfs is SIGKILLed 4 times mid-stream;
#           every write, the fsync and the close must succeed, each kill must be
#           followed by RECOVERED, and the file on the server side (the backing
#           dir, not the mount) must be byte-exact.
#   part 2  --write-window=1M: the same stream, one kill mid-stream; the window
#           has certainly overflowed by then (no fsync until the end), so the
#           writer must see EIO at a write, the fsync or the close; never every
#           call succeeding with the server's copy differing.
# Both against a throw-away sshd on 127.0.0.1.
#
# No timing: the writer kills the daemon itself (fkwrite --kill-at), right
# after the write(2) of a given chunk returned - sshfs acknowledged that chunk
# and most likely still holds it for its ssh child, the moment that matters -
# and its next write waits in the kernel for the recovery.  The test only
# hands it the pid to kill (fk_daemon_pid, through a file replaced atomically)
# and then waits for the keeper's EXIT of that pid and RECOVERED before it
# hands over the next daemon's pid.  However slow or loaded the machine, the
# kills land at the same chunks.
# timeout: 150
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-daemons.sh"

FKWRITE=$BUILD_DIR/tests/fkwrite

need_prog "$FK"
need_prog "$FKWRITE"
fkd_require sshfs sshfs
need_cmd sha256sum

SIZE=64M
CHUNK=256K
NCHUNKS=256     # 64 MiB / 256 KiB
# The chunks (counted from 0) after whose write the writer kills the daemon.
# Part 1 runs with the default bounds (--write-window=64M per handle), on
# purpose not with a larger explicit window: the test is about what a user of
# the defaults gets.  The stream fsyncs only at the end, so its window grows
# to all 64 MiB plus the keeper's bookkeeping for each write and overflows in
# the last chunks (around chunk 224).  Every kill comes long before that
# (after chunk 120 at the latest the window holds 30.25 MiB), so the keeper
# must have every acknowledged write to send again; and the overflow that
# follows the last kill, with no crash after it, must be forgiven by the final
# fsync - which part 1 checks as well.
KILL_AT1=(24 56 88 120)
# Part 2: by chunk 40 (10 MiB) a 1 MiB window has long overflowed.
KILL_AT2=(40)
WINDOW2=(--write-window=1M)

sshd_start
log "sshd on 127.0.0.1:$SSHD_PORT"

# sshfs_cmd adds sshfs_sync (sshfs then answers a WRITE only once the server
# has): the very option that hides the problem.  Take it out; keep the rest.
sshfs_default_cmd() {
	local cmd
	cmd=$(sshfs_cmd "$1")
	cmd=${cmd/sshfs_sync,/}
	case $cmd in *sshfs_sync*) fail "cannot take sshfs_sync out of: $cmd" ;; esac
	echo "$cmd"
}

# expected_sum SEED: sha256 of the content fkwrite writes with SEED.
expected_sum() {
	"$FKWRITE" gen --size="$SIZE" --chunk="$CHUNK" --seed="$1" | sha256sum | cut -d' ' -f1
}

# server_exact FILE SEED: true if FILE (server side) is byte-exact; logs both
# checksums and leaves fkwrite verify's chunk-by-chunk report in $T/verify.SEED.
server_exact() {
	local got want vrc
	want=$(expected_sum "$2")
	got=$(sha256sum <"$1" | cut -d' ' -f1)
	log "server side $1: $(stat -c %s "$1") bytes, sha256 $got (expected $want)"
	"$FKWRITE" verify "$1" --size="$SIZE" --chunk="$CHUNK" --seed="$2" >"$T/verify.$2"
	vrc=$?
	[ "$got" = "$want" ] && [ "$vrc" = 0 ]
}

# writer_start NAME FILE SEED KILL_AT...: starts fkwrite streaming to FILE,
# killing the daemon after each chunk of KILL_AT with the pid the test hands it
# in $T/NAME.kill (kill_next); pid in WRITER, progress (chunks written, for the
# diagnostics) in $T/NAME.prog.
writer_start() {
	local name=$1 file=$2 seed=$3 at
	shift 3
	at=$(IFS=,; echo "$*")
	rm -f "$T/$name.kill"
	run_bg "$name" "$FKWRITE" write "$file" --size="$SIZE" --chunk="$CHUNK" --seed="$seed" \
		--progress="$T/$name.prog" --kill-at="$at" --kill-pid-file="$T/$name.kill"
	WRITER=$BG_PID
	KILLED=()
}

# writer_finish NAME KILL_AT...: waits for the writer; its summary line goes to
# WRITER_LINE.  The writer must have killed exactly the daemons handed to it
# (KILLED), each after its chunk of KILL_AT, and the keeper must have seen each
# of them die of that SIGKILL and no other daemon die.
writer_finish() {
	local name=$1 i want got
	shift
	wait_pid "$WRITER" 60 || fail "$name: the writer did not finish (at chunk $(progress_of "$T/$name.prog"))"
	WRITER_LINE=$(grep '^fkwrite: chunks=' "$T/$name.out" | tail -n 1)
	[ -n "$WRITER_LINE" ] || fail "$name: no summary from the writer (exit $WAIT_STATUS): $(cat "$T/$name.err")"
	log "$name: exit $WAIT_STATUS: $WRITER_LINE"
	[ ! -s "$T/$name.err" ] || log "$name: stderr: $(tr '\n' ';' <"$T/$name.err")"
	[ "${#KILLED[@]}" = $# ] || fail "$name: ${#KILLED[@]} kills done, $# planned"
	want='' got=''
	for ((i = 0; i < $#; i++)); do
		want+="fkwrite: killed pid ${KILLED[i]} after chunk ${*:i+1:1}"$'\n'
	done
	got=$(grep '^fkwrite: killed ' "$T/$name.out")$'\n'
	[ "$got" = "$want" ] || fail "$name: the writer's kills: '$got', expected '$want'"
	want='' got=''
	for i in "${KILLED[@]}"; do
		want+="EXIT $i signal=KILL"$'\n'
	done
	got=$(awk '$1 == "EXIT"' "$FK_EVENTS")$'\n'
	[ "$got" = "$want" ] || fail "$name: the keeper's EXIT events: '$got', expected '$want'"
}

# kill_next NAME ROUND: hands the current daemon's pid to the writer NAME, which
# SIGKILLs it right after the write of its next --kill-at chunk returned, then
# waits for the keeper's EXIT of that pid (signal=KILL) and for RECOVERED by a
# new daemon.  Appends the pid to KILLED.
kill_next() {
	local name=$1 round=$2 pid deadline
	pid=$(fk_daemon_pid) || fail "$name kill $round: no DAEMON event"
	[ "$pid" = "$LIVE_DAEMON" ] ||
		fail "$name kill $round: the latest DAEMON is $pid, but $LIVE_DAEMON took over"
	alive "$pid" || fail "$name kill $round: daemon $pid is not running"
	# Only what happens from now on answers this kill's waits.
	fk_mark
	if ! { echo "$pid" >"$T/$name.kill.tmp" && mv -f "$T/$name.kill.tmp" "$T/$name.kill"; }; then
		fail "$name kill $round: cannot write $T/$name.kill"
	fi
	KILLED+=("$pid")
	log "$name kill $round: handed sshfs $pid to the writer"
	deadline=$(($(now_ms) + 60000))
	until fk_wait EXIT "$pid" 1 >/dev/null 2>&1; do
		if ! alive "$WRITER"; then
			# It may have exited just after killing: one last look.
			fk_wait EXIT "$pid" 10 >/dev/null ||
				fail "$name kill $round: the writer exited without killing sshfs $pid: $(cat "$T/$name.out" "$T/$name.err")"
			break
		fi
		[ "$(now_ms)" -lt "$deadline" ] ||
			fail "$name kill $round: sshfs $pid not killed within 60 s (writer at chunk $(progress_of "$T/$name.prog")): $(cat "$T/$name.err")"
	done
	[ "$FK_LINE" = "EXIT $pid signal=KILL" ] ||
		fail "$name kill $round: expected 'EXIT $pid signal=KILL', got '$FK_LINE'"
	fk_wait RECOVERED "" 30 || fail "$name kill $round: no RECOVERED after the writer killed sshfs $pid"
	read -r _ LIVE_DAEMON _ <<<"$FK_LINE"
	[ "$LIVE_DAEMON" != "$pid" ] || fail "$name kill $round: '$FK_LINE' names the killed daemon"
	log "$name kill $round: sshfs $pid killed by the writer: $(grep '^fkwrite: killed ' "$T/$name.out" | tail -n 1); $FK_LINE"
}

# ---- part 1: every acknowledged write reaches the server -----------------

M=$T/mnt1
B=$T/back1
mkdir "$M" "$B"
SEED1=$((RANDOM * 32768 + RANDOM))
# shellcheck disable=SC2046 # the command line is meant to be split
fk_start "$M" --max-restarts=20 -- $(sshfs_default_cmd "$B")
fk_wait READY || fail "part 1: the keeper never became READY"
LIVE_DAEMON=${FK_LINE#READY }

writer_start writer1 "$M/stream" "$SEED1" "${KILL_AT1[@]}"
for round in $(seq "${#KILL_AT1[@]}"); do
	kill_next writer1 "$round"
done
writer_finish writer1 "${KILL_AT1[@]}"
if [ "$WAIT_STATUS" != 0 ] ||
	[ "$WRITER_LINE" != "fkwrite: chunks=$NCHUNKS/$NCHUNKS write=ok fsync=ok close=ok" ]; then
	fail "part 1: the writer saw an error: $WRITER_LINE ($(tr '\n' ';' <"$T/writer1.err"))"
fi
if ! server_exact "$B/stream" "$SEED1"; then
	cat "$T/verify.$SEED1"
	fail "part 1: every write, the fsync and the close succeeded, but the file on the server differs: $(tail -n 1 "$T/verify.$SEED1")"
fi
fk_clean_rounds "${#KILL_AT1[@]}"
fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "part 1: no STOPPED event"
assert_not_mounted "$M"
log "part 1: ok"

# ---- part 2: an overflowed window is reported, never lost silently -------

M=$T/mnt2
B=$T/back2
mkdir "$M" "$B"
SEED2=$((SEED1 + 1))
# shellcheck disable=SC2046
fk_start "$M" --max-restarts=20 "${WINDOW2[@]}" -- $(sshfs_default_cmd "$B")
fk_wait READY || fail "part 2: the keeper never became READY"
LIVE_DAEMON=${FK_LINE#READY }

writer_start writer2 "$M/stream" "$SEED2" "${KILL_AT2[@]}"
kill_next writer2 1
writer_finish writer2 "${KILL_AT2[@]}"
case $WRITER_LINE in *" open="*) fail "part 2: the writer could not open the file: $WRITER_LINE" ;; esac
read -r _ chunks w s c <<<"$WRITER_LINE"
w=${w#write=} s=${s#fsync=} c=${c#close=}
eio=
case $w in EIO@*) eio="write of chunk ${w#EIO@chunk}" ;; ok) ;; *) fail "part 2: a write failed with ${w%@*}, not EIO" ;; esac
case $s in EIO) eio="${eio:+$eio, }fsync" ;; ok) ;; *) fail "part 2: fsync failed with $s, not EIO" ;; esac
case $c in EIO) eio="${eio:+$eio, }close" ;; ok) ;; *) fail "part 2: close failed with $c, not EIO" ;; esac
if [ -z "$eio" ]; then
	if server_exact "$B/stream" "$SEED2"; then
		fail "part 2: no EIO although a 1M window cannot hold the writes acknowledged before the kill (the file is intact: was the window really bounded?)"
	fi
	cat "$T/verify.$SEED2"
	fail "part 2: SILENT LOSS: every write, the fsync and the close succeeded, but the file on the server differs: $(tail -n 1 "$T/verify.$SEED2")"
fi
log "part 2: the writer saw EIO at: $eio ($chunks)"
# The error belongs to that handle: the mount itself goes on working.
# shellcheck disable=SC2016 # $1 is expanded by sh
try_cmd 10 sh -c 'echo after >"$1/after" && cat "$1/after"' sh "$M" ||
	fail "part 2: writing a new file after the EIO failed: $TRY_OUT"
if [ "$TRY_OUT" != after ] || [ "$(cat "$B/after")" != after ]; then
	fail "part 2: a new file written after the EIO reads back '$TRY_OUT' / '$(cat "$B/after")'"
fi
fk_clean_rounds "${#KILL_AT2[@]}"
fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "part 2: no STOPPED event"
assert_not_mounted "$M"
log "part 2: ok"

# sshfs starts ssh through a double fork: nobody but init reaps it.
fkd_wait_ssh_gone 15 || fail "ssh clients of the killed sshfs daemons did not exit"
sshd_stop
assert_all_gone
log "ok"
