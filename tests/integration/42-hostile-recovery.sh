#!/bin/bash
# 42-hostile-recovery: a new daemon that answers one of the keeper's own
# recovery requests (its INIT, the LOOKUPs that find nodes again, the OPENs
# that reopen handles, the priming READ) with a malformed message breaks the
# protocol like any other: the keeper must kill it and let the next daemon do
# the recovery, not take the bad answer for "no such name" or "cannot reopen"
# and lose the node or the handle for good.
#
# For each opcode and kind: a file is held open and read; the daemon is
# killed; its successor (fkchaos --calls-only) breaks its answer to the first
# request of that opcode; the keeper must log a protocol error and kill it;
# once fkchaos is calm, a daemon recovers and the held fd reads the file whole.
# timeout: 300
. "$(dirname "$0")/../lib.sh"

FKCHAOS=$BUILD_DIR/tests/fkchaos
need_prog "$TESTFS"
need_prog "$FKCHAOS"
need_cmd sha256sum perl

B=$T/back
mkdir "$B" "$B/dir"
head -c 200000 /dev/urandom >"$B/dir/f"
want=$(sha256sum <"$B/dir/f" | cut -d' ' -f1)

# opcode:kind — LOOKUP 1, OPEN 14, INIT 26. (The priming READ, 15, goes only to a
# handle first read past offset 0: 41-hostile's held fds do that.)
for c in 1:size 14:size 26:size 1:errbody 14:poserror 14:dup; do
	opcode=${c%%:*}
	kind=${c#*:}
	M=$T/mnt-$opcode-$kind
	mkdir "$M"
	rm -f "$T/calm" "$T/broken"
	fk_start "$M" --request-wait=30 --start-timeout=5 --max-restarts=1000 -- \
		"$FKCHAOS" --rate=100 --calls-only --opcodes="$opcode" --kinds="$kind" \
		--calm-if="$T/calm" --log="$T/broken" -- "$TESTFS" --backing="$B" {}
	fk_wait READY || fail "$c: the keeper never became READY"
	holder_start "f$opcode$kind" "$M/dir/f" ro
	[ "$(holder "f$opcode$kind" sum)" = "sum $want" ] || fail "$c: the holder read other data"

	fk_kill_daemon || fail "$c: cannot kill the daemon"
	line=$(wait_match "$T/broken" "." 30) || fail "$c: no daemon broke an answer to opcode $opcode"
	bad=${line%% *}
	log "$c: daemon $bad broke: $line"
	touch "$T/calm"
	fk_wait EXIT "$bad" 30 >/dev/null || fail "$c: daemon $bad, which broke an answer, was not killed"
	grep -Eq "Daemon $bad broke the FUSE protocol|FUSE_INIT answer is malformed" "$FK_LOG" ||
		fail "$c: the keeper did not say daemon $bad broke the protocol"
	fk_wait RECOVERED "" 30 || fail "$c: no daemon recovered once fkchaos was calm"
	grep -E "Recovered:|lost|cannot be opened" "$FK_LOG" | sed "s/^/    $c: /"

	drop_cache "$M/dir/f" || fail "$c: cannot drop the cached pages"
	got=$(holder "f$opcode$kind" sum)
	[ "$got" = "sum $want" ] || fail "$c: the fd held across the broken recovery gives '$got'"
	try_cmd 10 sha256sum "$M/dir/f" || fail "$c: reading the file afresh failed: $TRY_OUT"
	[ "${TRY_OUT%% *}" = "$want" ] || fail "$c: the file reads otherwise afresh"
	holder_stop "f$opcode$kind"
	fk_umount_exit 0
	assert_not_mounted "$M"
done
assert_all_gone
log "ok"
