#!/bin/bash
# 72-remount-gap: a request made while the daemon is dead and before the swap.
# The next daemon's start is held (testfs --slow-start-if) for 1.5 s; a stat of a
# name the kernel never looked up (made in the backing directory meanwhile) waits
# on the keeper's copy of the old connection, gets ESTALE once the fresh mount is
# in place, walks again and succeeds: the caller sees a slow stat, no error.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-remount.sh"

need_prog "$TESTFS"
rm_need_remount

M=$T/mnt
B=$T/back
mkdir "$M" "$B"
echo one >"$B/first"

fk_start "$M" --mode=remount -- "$TESTFS" --backing="$B" --slow-start-if="$T/slow" {}
fk_wait READY || fail "the keeper never became READY"
file_is "$M/first" "one
" || fail "first read: '$FILE_GOT'"

echo "sleep 1500" >"$T/slow"
fk_kill_daemon || fail "killing the daemon failed"
echo "made in the gap" >"$B/gapfile"
bg_timed gapstat stat -c '%n %s' "$M/gapfile"
bg_timed gapcat cat "$M/gapfile"
fk_wait RECOVERED "" 30 || fail "no RECOVERED"
rm -f "$T/slow"
bg_result gapstat 20 || fail "the stat made in the gap did not finish"
[ "$BG_RC" = 0 ] && [ "$BG_OUT" = "$M/gapfile 16" ] || fail "the stat made in the gap: exit $BG_RC: $BG_OUT"
[ "$BG_MS" -ge 1000 ] || fail "the stat did not wait for the new daemon ($BG_MS ms): the test proves nothing"
bg_result gapcat 20 || fail "the read made in the gap did not finish"
[ "$BG_RC" = 0 ] && [ "$BG_OUT" = "made in the gap" ] || fail "the read made in the gap: exit $BG_RC: $BG_OUT"
grep -q "Answered ESTALE\|ESTALE" "$FK_LOG" || log "note: no ESTALE logged (run without -v)"

fk_umount_exit 0
assert_all_gone
log "ok"
