#!/bin/bash
# 32-slow-start: a daemon that needs longer than --start-timeout to start is not
# killed as failed while it shows progress, and takes over.
#  1. After a crash the new daemon computes (CPU time, as a cache scan) for 5x
#     --start-timeout before it reads FUSE_INIT: it is kept (SLOW, no FAILED)
#     and takes over (RECOVERED); a cat and a stat -f made meanwhile wait for
#     it (within the default --request-wait) and succeed.
#  2. The first daemon computes for 2.5x --start-timeout (kept for its CPU
#     time); after a crash the next one sleeps (no CPU time, as in a network
#     login) for 3.5x --start-timeout: it is kept because a start may take up
#     to three times as long as the first one did, and takes over.
# timeout: 180
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd sha256sum

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

slow() {
	echo "$1" >"$T/slow.tmp" && mv "$T/slow.tmp" "$T/slow" || fail "cannot write $T/slow"
}

# ---- 1: busy for 5 s with --start-timeout=1 --------------------------------
fk_start "$M" --start-timeout=1 --max-restarts=2 -- \
	"$TESTFS" --backing="$B" --slow-start-if="$T/slow" {}
fk_wait READY || fail "the keeper never became READY"
head -c 200000 /dev/urandom >"$T/data"
want=$(sha256sum <"$T/data" | cut -d' ' -f1)
try_cmd 10 cp "$T/data" "$M/f" || fail "writing $M/f failed: $TRY_OUT"

slow "spin 5000"
fk_kill_daemon || fail "killing the daemon failed"
bg_timed cat sha256sum "$M/f"
bg_timed statfs stat -f -c '%b blocks of %s bytes' "$M"

fk_wait SLOW "" 30 || fail "the slow daemon was not kept past --start-timeout"
log "$FK_LINE"
fk_wait RECOVERED "" 60 || fail "the slow daemon never took over"
log "$FK_LINE"
ms=${FK_LINE##* }
[ "$ms" -ge 4000 ] || fail "RECOVERED $ms ms after the crash: the daemon did not start slowly"
[ "$(fk_count FAILED)" = 0 ] || fail "a slow start counted as failed: $(grep FAILED "$FK_EVENTS")"
grep -q "is still starting" "$FK_LOG" || fail "no 'is still starting' log line"

bg_result cat 30 || fail "cat $M/f made during the slow start hung"
[ "$BG_RC" = 0 ] || fail "cat $M/f made during the slow start failed: $BG_OUT"
[ "${BG_OUT%% *}" = "$want" ] || fail "cat $M/f read other data: $BG_OUT"
[ "$BG_MS" -ge 2000 ] || fail "cat $M/f took only $BG_MS ms: it did not wait for the daemon"
bg_result statfs 30 || fail "stat -f $M made during the slow start hung"
[ "$BG_RC" = 0 ] || fail "stat -f $M made during the slow start failed: $BG_OUT"

rm -f "$T/slow"
try_cmd 10 sha256sum "$M/f" || fail "reading $M/f after the recovery failed: $TRY_OUT"
[ "${TRY_OUT%% *}" = "$want" ] || fail "after the recovery $M/f reads otherwise: $TRY_OUT"
fk_umount_exit 0
assert_not_mounted "$M"

# ---- 2: first start busy 2.5 s, then a restart asleep 3.5 s ---------------
slow "spin 2500"
fk_start "$M" --start-timeout=1 --max-restarts=2 -- \
	"$TESTFS" --backing="$B" --slow-start-if="$T/slow" {}
fk_wait SLOW "" 30 || fail "the busy first daemon was not kept past --start-timeout"
fk_wait READY "" 30 || fail "the busy first daemon never became READY"
[ "$(fk_count FAILED)" = 0 ] || fail "the busy first start counted as failed"

slow "sleep 3500"
fk_kill_daemon || fail "killing the daemon failed"
fk_wait SLOW "" 30 || fail "the sleeping daemon was not kept past --start-timeout"
log "$FK_LINE"
fk_wait RECOVERED "" 60 || fail "the sleeping daemon never took over"
log "$FK_LINE"
ms=${FK_LINE##* }
[ "$ms" -ge 3000 ] || fail "RECOVERED $ms ms after the crash: the daemon did not sleep"
[ "$(fk_count FAILED)" = 0 ] || fail "a sleeping start counted as failed: $(grep FAILED "$FK_EVENTS")"
grep -q "first start took" "$FK_LOG" || fail "the log does not say how long the first start took"
rm -f "$T/slow"
try_cmd 10 sha256sum "$M/f" || fail "reading $M/f after the recovery failed: $TRY_OUT"
[ "${TRY_OUT%% *}" = "$want" ] || fail "after the recovery $M/f reads otherwise: $TRY_OUT"

fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "no STOPPED event"
assert_not_mounted "$M"
assert_all_gone
log "ok"
