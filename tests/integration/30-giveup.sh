#!/bin/bash
# 30-giveup: when the daemon cannot be started again, the keeper gives up after
# --max-restarts failed starts; requests then fail with EIO at once, and the
# keeper exits 1 once unmounted.
# timeout: 180
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

fk_start "$M" --max-restarts=3 -- "$TESTFS" --backing="$B" --fail-start-if="$T/nostart" {}
fk_wait READY || fail "the keeper never became READY"
echo data >"$M/f" || fail "write through the mount failed"
touch "$T/nostart"
fk_kill_daemon || fail "killing the daemon failed"
for i in 1 2 3; do
	fk_wait FAILED "" 60 || fail "failed start $i was not reported"
	log "$FK_LINE"
done
fk_wait GAVEUP "" 60 || fail "no GAVEUP after 3 failed starts"
[ "$(fk_count FAILED)" = 3 ] || fail "expected 3 FAILED events with --max-restarts=3, got $(fk_count FAILED)"
[ "$(fk_count RECOVERED)" = 0 ] || fail "unexpected RECOVERED"
alive "$FK_PID" || fail "the keeper exited after giving up; it must stay until unmounted"

start=$(now_ms)
try_cmd 10 stat "$M/x"
rc=$?
log "stat after GAVEUP: exit $rc in $(($(now_ms) - start)) ms: $TRY_OUT"
[ "$rc" -ne 124 ] || fail "stat $M/x hung after GAVEUP"
[ "$rc" -ne 0 ] || fail "stat $M/x succeeded after GAVEUP"
grep -q "Input/output error" <<<"$TRY_OUT" || fail "stat $M/x after GAVEUP did not fail with EIO: $TRY_OUT"
try_cmd 10 cat "$M/f" && fail "reading $M/f succeeded after GAVEUP"
grep -q "Input/output error" <<<"$TRY_OUT" || fail "cat $M/f after GAVEUP did not fail with EIO: $TRY_OUT"

fk_umount_exit 1
fk_wait STOPPED "" 5 || fail "no STOPPED event"
assert_not_mounted "$M"
assert_all_gone
log "ok"
