#!/bin/bash
# 82-remount-gap: a request made while the daemon is dead and before the swap.
# The next daemon's start is held (testfs --slow-start-if) for 1.5 s; a stat of a
# name the kernel never looked up (made in the backing directory meanwhile) waits
# on the keeper's copy of the old connection (seen in its wait channel before the
# REMOUNTED event), gets ESTALE once the fresh mount is in place, walks again and
# succeeds: the caller sees a slow stat, no error.
# timeout: 120
. "$(dirname "$0")/../lib-remount.sh"
. "$(dirname "$0")/../lib.sh"

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
# In the gap: its request waits on the old connection before the swap (the load of the
# machine can delay the stat's start by more than the held start of the daemon).
if ! wchan=$(rm_wait_in_fuse "$BG_PID" 10); then
	[ "$(fk_count REMOUNTED)" = 0 ] || skip "the swap came before the stat's request (a loaded machine)"
	fail "the stat made in the gap never waited on the mount"
fi
[ "$(fk_count REMOUNTED)" = 0 ] || skip "the swap came before the stat's request (a loaded machine)"
log "the stat waits in the kernel ($wchan) before the swap"
bg_timed gapcat cat "$M/gapfile"
fk_wait RECOVERED "" 30 || fail "no RECOVERED"
rm -f "$T/slow"
bg_result gapstat 20 || fail "the stat made in the gap did not finish"
[ "$BG_RC" = 0 ] && [ "$BG_OUT" = "$M/gapfile 16" ] || fail "the stat made in the gap: exit $BG_RC: $BG_OUT"
bg_result gapcat 20 || fail "the read made in the gap did not finish"
[ "$BG_RC" = 0 ] && [ "$BG_OUT" = "made in the gap" ] || fail "the read made in the gap: exit $BG_RC: $BG_OUT"
grep -q "Answered ESTALE\|ESTALE" "$FK_LOG" || log "note: no ESTALE logged (run without -v)"

fk_umount_exit 0
assert_all_gone
log "ok"
