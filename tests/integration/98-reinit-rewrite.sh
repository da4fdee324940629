#!/bin/bash
# 98-reinit-rewrite: in reinit mode, writes a SIGKILLed daemon acknowledged and never stored
# are written again to the next daemon from the page cache (kernel/patches/0013,
# docs/kernel-api.md "Writes acknowledged and not synced"), and where they cannot be, the
# next fsync(2) reports EIO: never a success that hides a lost write.
#
# testfs --lazy-writes answers a WRITE before it stores it, as sshfs does: the data waits in
# its memory until the next operation of another kind, so a SIGKILL right after the write
# loses it. Each case: an application writes "new\n" at 0 of a file holding "line1\n",
# through an fd it keeps open; the daemon is SIGKILLed before any other request; the gate
# keeps the next daemon from starting until the test has seen that the store lost the write;
# then the application calls fsync(2) twice and close(2). The keeper runs without
# --write-through.
#
#   rewrite-cached:     the application read the file first (its page is cached and up to
#       date): fsync succeeds, the store holds "new\n1\n", the keeper logs the rewrite.
#   rewrite-writeback:  testfs --writeback; the write went out by writeback
#       (sync_file_range(2), no FSYNC): the same.
#   rewrite-uncached:   the page of the write was never read (a partial write of a page not
#       cached leaves it not up to date): nothing to write again from, so the first fsync
#       reports EIO and the second succeeds; the store keeps "line1\n".
#   rewrite-again-after-fsync / rewrite-again-before-write:  the next daemon dies too, after
#       storing the rewritten data and before answering its FSYNC, or before storing the
#       WRITE; a third daemon gets the job: fsync succeeds, the store holds "new\n1\n".
#   rewrite-abort:      the keeper is SIGKILLed instead (the connection is aborted): fsync(2)
#       and close(2) get EIO (the write was never written again), not a success.
#   rewrite-gone:       another client removes the file while no daemon runs: the inode is
#       lost (its name is gone), so the writes cannot be written again: fsync(2) reports
#       ESTALE (what every use of a lost inode gets), close(2) EIO (the lost writes), and the
#       keeper logs that the writes could not be written again.
#   rewrite-four-ranges / rewrite-five-ranges:  writes at the start of four (five) pages
#       read before: four ranges are written again (fsync succeeds, every page reaches the
#       store); a fifth makes the file's writes reported instead (EIO once), and the store
#       keeps the file as it was.
#   rewrite-truncated:  a write, then a truncate through a second fd (testfs stores the
#       write at that fd's OPEN): the write is not written again over the truncate (the
#       store keeps "ne"; the keeper logs no write again), and fsync(2) and the second fd's
#       close(2) report EIO once.
#   rewrite-slow:       the daemon that writes again hangs in its WRITE: the keeper counts
#       it as serving once the INIT answer is accepted and a grace passed (WAIT's
#       EINPROGRESS, logged), fsync(2) waits for the write again, and --hang-timeout after
#       the take-over the keeper kills that daemon as hung; the next one does it: fsync
#       succeeds, the store holds "new\n1\n".
#   rewrite-late:       every operation of the daemon takes 2 s: the write again outlasts
#       the start, the keeper counts the daemon as serving and logs when the write again
#       finished; fsync succeeds, the store holds "new\n1\n".
#
# On a kernel without FUSE_DEV_IOC_REINIT it skips (exit 77).
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-reinit.sh"
. "$(dirname "$0")/../lib-cases.sh"
CASES_GO_ON=${REWRITE_ALL:-0}

reinit_need
need_cmd perl

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

app_install

# keeper: fusekeeper --mode=reinit, without --write-through, over testfs --lazy-writes with
# its hooks and the testfs options in TESTFS_OPTS.
TESTFS_OPTS=()
KEEPER_OPTS=()
keeper() {
	fk_start "$M" --mode=reinit --max-restarts=100 "${KEEPER_OPTS[@]}" -- "$TESTFS" --backing="$B" \
		--lazy-writes "${TESTFS_OPTS[@]}" --crash-file="$T/crash" --fail-start-if="$GATE" {}
	fk_wait READY || fail "the keeper never became READY: $(tail -5 "$FK_LOG")"
}

# lazy_case NAME TEXT SYNC PRE [WHILE-DOWN]: the application holds NAME/f open, does PRE
# and writes "new\n" at 0, with SYNC (app.pl's held); the daemon is SIGKILLed; while the
# gate keeps the next one from starting, the store must still hold "line1\n" (the write
# was lost) and WHILE-DOWN, a function, runs; then the gate opens, the next daemon takes
# over, and the application calls fsync(2) twice and close(2). Its result is in APP_OUT;
# case_log prints what the keeper logged from the kill on.
lazy_case() {
	lazy_start "$@"
	gate_off
	fk_wait RECOVERED "" 60 >/dev/null || fail "$1: no RECOVERED after the kill"
	touch "$T/held"
	app_result
}

# lazy_start NAME TEXT SYNC PRE [WHILE-DOWN [EXTRA]]: lazy_case up to WHILE-DOWN; the gate
# stays on. The file holds $LAZY_FILE (default "line1\n"); EXTRA is app.pl's held EXTRA. With
# an EXTRA, the store must hold $LAZY_STORED at the kill (default: the file as it was).
LAZY_FILE=$'line1\n'
LAZY_STORED=
lazy_start() {
	begin "$1" "$2"
	mkdir "$B/$1" && printf '%s' "$LAZY_FILE" >"$B/$1/f" || fail "cannot set up $B/$1"
	rm -f "$T/held" "$T/held.ready"
	start_app held "$M/$1/f" $'new\n' "$3" fsync "$T/held" "$4" "${6:-}"
	held_ready "$1"
	SPEC="$1: the kill"
	fk_mark
	CASE_LOG_AT=$(wc -l <"$FK_LOG")
	gate_on
	fk_kill_daemon || fail "$1: cannot kill the daemon"
	gate_refused
	file_is "$B/$1/f" "${LAZY_STORED:-$LAZY_FILE}" ||
		fail "$1: testfs stored '$FILE_GOT' before it died, not '${LAZY_STORED:-$LAZY_FILE}': the case tests nothing"
	[ -z "${5:-}" ] || "$5" "$1"
}

case_log() { tail -n "+$((CASE_LOG_AT + 1))" "$FK_LOG"; }

# logged PATTERN WHAT: the keeper logged PATTERN (grep -E) since the kill.
logged() {
	case_log | grep -Eq "$1" || wrong "the keeper's log does not say $2: $(case_log | tail -8)"
}

keeper

# rewritten NAME: the application read the file, and every call succeeded; the store holds
# the write.
rewritten() {
	local want=$'read=line1\\n write=4 fsync=OK fsync=OK close=OK'
	[ "$APP_OUT" = "$want" ] || wrong "expected '$want', got '$APP_OUT'"
	content "$B/$1/f" $'new\n1\n'
}

lazy_case rewrite-cached "a write into a cached page, acknowledged and lost, then fsync(2)" 0 read
rewritten rewrite-cached
logged "1 file held writes the dead daemon acknowledged" "that a file's writes are written again"
logged "The kernel wrote 1 file's acknowledged writes again" "that the rewrite was done"
end_case

lazy_case rewrite-uncached "a write into a page never cached, acknowledged and lost, then fsync(2)" 0 none
[ "$APP_OUT" = "write=4 fsync=EIO fsync=OK close=OK" ] ||
	wrong "expected 'write=4 fsync=EIO fsync=OK close=OK', got '$APP_OUT'"
content "$B/rewrite-uncached/f" $'line1\n'
logged "1 file or directory held changes the dead daemon acknowledged" "that the write may be lost"
end_case

# again_case WHEN OP TEXT: the next daemon, which writes again, dies WHEN (before or after)
# its OP (armed while the gate holds it back); a third daemon does it.
arm_again() { printf '%s\n' "$AGAIN" >"$T/crash.tmp" && mv "$T/crash.tmp" "$T/crash"; }
again_case() {
	AGAIN=$1:$2:f
	lazy_case "rewrite-again-$1-$2" "$3" 0 read arm_again
	rewritten "rewrite-again-$1-$2"
	[ ! -e "$T/crash" ] || wrong "the rewrite never reached the new daemon's $2"
	end_case
}
again_case after fsync "the daemon that writes again dies before answering its FSYNC"
again_case before write "the daemon that writes again dies before its WRITE"

# Four ranges are written again; a fifth makes the file's writes reported instead (EIO once),
# and none of them is written again: the store keeps the file as it was.
pages5=$(printf 'p%4095s' '' | sed 's/ /./g')
LAZY_FILE=$pages5$pages5$pages5$pages5$pages5
lazy_case rewrite-four-ranges "writes at the start of four pages read before, acknowledged and lost" \
	0 read "" spread:4
want="read=20480 bytes write=4 write=4 write=4 write=4 fsync=OK fsync=OK close=OK"
[ "$APP_OUT" = "$want" ] || wrong "expected '$want', got '$APP_OUT'"
page_new=$'new\n'${pages5:4}
content "$B/rewrite-four-ranges/f" "$page_new$page_new$page_new$page_new$pages5"
logged "The kernel wrote 1 file's acknowledged writes again" "that the rewrite was done"
end_case
lazy_case rewrite-five-ranges "writes at the start of five pages read before, acknowledged and lost" \
	0 read "" spread:5
want="read=20480 bytes write=4 write=4 write=4 write=4 write=4 fsync=EIO fsync=OK close=OK"
[ "$APP_OUT" = "$want" ] || wrong "expected '$want', got '$APP_OUT'"
content "$B/rewrite-five-ranges/f" "$LAZY_FILE"
logged "1 file or directory held changes the dead daemon acknowledged" "that the writes may be lost"
end_case

# A truncate through another fd after the write (testfs stores the write first, at that fd's
# OPEN): the write must not be written again over it, and fsync(2) reports the acknowledged,
# unsynced change it cannot vouch for.
LAZY_FILE=$'line1\nline2\n'
LAZY_STORED=ne
lazy_case rewrite-truncated "a write, then a truncate through another fd, both unsynced" \
	0 read "" trunc:2
want=$'read=line1\\nline2\\n write=4 trunc2=OK fsync=EIO fsync=OK close=OK close2=EIO'
[ "$APP_OUT" = "$want" ] || wrong "expected '$want', got '$APP_OUT'"
content "$B/rewrite-truncated/f" ne
! case_log | grep -q "acknowledged writes again" ||
	wrong "the write was written again over the truncate: $(case_log | grep 'writes again')"
logged "1 file or directory held changes the dead daemon acknowledged|2 files or directories held changes" \
	"that the changes may be lost"
end_case
LAZY_FILE=$'line1\n'
LAZY_STORED=

remove_file() { rm -f "$B/$1/f"; }
lazy_case rewrite-gone "another client removes the file while no daemon runs" 0 read remove_file
want=$'read=line1\\n write=4 fsync=ESTALE fsync=ESTALE close=EIO'
[ "$APP_OUT" = "$want" ] || wrong "expected '$want', got '$APP_OUT'"
[ ! -e "$B/rewrite-gone/f" ] || wrong "the file came back: $(cat "$B/rewrite-gone/f")"
logged "1 file's writes the dead daemon acknowledged could not be written again" \
	"that the rewrite failed"
end_case

[ "$(fk_count GAVEUP)" = 0 ] || fail "the keeper gave up"
fk_umount_exit 0
assert_not_mounted "$M"

# With the writeback cache the kernel writes pages back itself, at its own pace: the write
# goes out by sync_file_range(2), which sends WRITEs and no FSYNC.
TESTFS_OPTS=(--writeback)
keeper
lazy_case rewrite-writeback "a write written back (no FSYNC), acknowledged and lost, then fsync(2)" \
	range none
[ "$APP_OUT" = "write=4 range=OK fsync=OK fsync=OK close=OK" ] ||
	wrong "expected 'write=4 range=OK fsync=OK fsync=OK close=OK', got '$APP_OUT'"
content "$B/rewrite-writeback/f" $'new\n1\n'
logged "The kernel wrote 1 file's acknowledged writes again" "that the rewrite was done"
end_case

[ "$(fk_count GAVEUP)" = 0 ] || fail "the second keeper gave up"
fk_umount_exit 0
assert_not_mounted "$M"

# The daemon that is to write again hangs in its WRITE: once its INIT answer is accepted the
# keeper counts it as serving after a grace (the kernel's WAIT: EINPROGRESS), rather than let
# its start policy kill a daemon that serves; the file's fsync(2) waits for the write again,
# and when --hang-timeout has passed since the take-over, the keeper kills that daemon as
# hung and the next one does it.
TESTFS_OPTS=()
KEEPER_OPTS=(--start-timeout=20 --hang-timeout=8)
keeper
arm_hang() { printf 'hang:write:f\n' >"$T/crash.tmp" && mv "$T/crash.tmp" "$T/crash"; }
lazy_start rewrite-slow "the daemon that writes again hangs in its WRITE" 0 read arm_hang
gate_off
fk_wait RECOVERED "" 60 >/dev/null || fail "rewrite-slow: the hung daemon was not counted as serving"
hung=$(cut -d' ' -f2 <<<"$FK_LINE")
logged "The new daemon serves; the kernel is still writing 1 file's acknowledged writes again" \
	"that the rewrite goes on while the daemon serves"
[ ! -e "$T/crash" ] || wrong "the rewrite never reached the new daemon's WRITE"
touch "$T/held"
deadline=$(($(now_ms) + 20000))
until waiting_in "$APP_PID" 'fuse_rewrite_wait'; do
	[ -e "/proc/$APP_PID" ] || fail "rewrite-slow: fsync(2) did not wait for the write again: $(cat "$T/$APP_NAME.out")"
	[ "$(now_ms)" -lt "$deadline" ] || fail "rewrite-slow: fsync(2) never waited for the write again"
	sleep 0.05
done
fk_wait HUNG "$hung" 60 >/dev/null || fail "rewrite-slow: the keeper never killed daemon $hung as hung"
logged "Daemon $hung has held the kernel's write again of 1 file, unfinished, [0-9.]+ s without progress" \
	"why it killed the daemon"
fk_wait RECOVERED "" 60 >/dev/null || fail "rewrite-slow: no RECOVERED after the hung daemon"
app_result
rewritten rewrite-slow
end_case
[ "$(fk_count GAVEUP)" = 0 ] || fail "the keeper of rewrite-slow gave up"
fk_umount_exit 0
assert_not_mounted "$M"

# A daemon that takes 2 s over every operation: the write again outlasts the start (slice
# and grace: 6 s), the keeper counts it as serving, then sees it finish, and logs that.
TESTFS_OPTS=(--delay-ms=2000)
KEEPER_OPTS=(--start-timeout=10)
# Some 7 operations before the write is done, as many after the take-over: 2 s each.
HELD_WAIT=60
keeper
lazy_case rewrite-late "the write again outlasts the start and finishes later" 0 read
HELD_WAIT=20
rewritten rewrite-late
logged "the kernel is still writing 1 file's acknowledged writes again" "that the daemon serves meanwhile"
logged "The kernel wrote 1 file's acknowledged writes again" "that the write again finished"
end_case
[ "$(fk_count GAVEUP)" = 0 ] || fail "the keeper of rewrite-late gave up"
[ "$(fk_count HUNG)" = 0 ] || fail "the keeper of rewrite-late killed a daemon as hung"
fk_umount_exit 0
assert_not_mounted "$M"
TESTFS_OPTS=()
KEEPER_OPTS=()

# The keeper itself dies while the write waits for a daemon: the connection is aborted, and
# the write that can no longer be written again is reported by fsync(2), and by close(2)
# too, whose handle of the dead daemon sends nothing.
TESTFS_OPTS=()
keeper
lazy_start rewrite-abort "the keeper is SIGKILLed while the write waits to be written again" 0 read
log "killing keeper $FK_PID"
kill -KILL "$FK_PID" || fail "cannot kill keeper $FK_PID"
fk_wait_exit 30 || fail "keeper $FK_PID did not die"
gate_off
touch "$T/held"
app_result
want=$'read=line1\\n write=4 fsync=EIO fsync=EIO close=EIO'
[ "$APP_OUT" = "$want" ] || wrong "expected '$want', got '$APP_OUT'"
content "$B/rewrite-abort/f" $'line1\n'
end_case
try_cmd 10 umount "$M" || fail "umount $M failed: $TRY_OUT"
assert_not_mounted "$M"

cases_report
assert_all_gone
log "ok"
