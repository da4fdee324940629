#!/bin/bash
# 34-giveup-retry: giving up is not for ever. After --max-restarts failed starts
# the keeper reports GAVEUP; requests then fail with EIO at once, and it tries
# again every --retry-interval. Once the cause is gone (the --fail-start-if
# file is removed) a daemon starts, recovers the mount without an unmount, and
# an fd opened before the crash reads the file whole again. A later crash is
# then restarted at once, as before the give-up.
# timeout: 180
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd sha256sum

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

# --cache-s=0: the kernel caches no entry or attribute, so that the stat after GAVEUP below
# reaches the keeper; with testfs's usual second it could be answered from the cache when the
# give-up comes within a second of the holder's open (seen in a guest).
fk_start "$M" --max-restarts=2 --retry-interval=4 -- \
	"$TESTFS" --backing="$B" --fail-start-if="$T/nostart" --cache-s=0 {}
fk_wait READY || fail "the keeper never became READY"
head -c 300000 /dev/urandom >"$T/data"
want=$(sha256sum <"$T/data" | cut -d' ' -f1)
try_cmd 10 cp "$T/data" "$M/f" || fail "writing $M/f failed: $TRY_OUT"
holder_start f "$M/f" ro
[ "$(holder f sum)" = "sum $want" ] || fail "the holder read other data before the crash"
# Its reads must reach the daemon, not the page cache.
drop_cache "$M/f" || fail "cannot drop the cached pages of $M/f"

touch "$T/nostart"
fk_kill_daemon || fail "killing the daemon failed"
fk_wait GAVEUP "" 60 || fail "no GAVEUP after 2 failed starts"
gaveup_at=$(now_ms)
fk_mark
[ "$(fk_count FAILED)" = 2 ] || fail "expected 2 FAILED before GAVEUP, got $(fk_count FAILED)"
alive "$FK_PID" || fail "the keeper exited after giving up"

# Every request fails at once: within a bound far below any wait of the keeper's.
eio_at_once "after GAVEUP" 1500 "stat $M/f" "cat $M/f" "stat -f $M"
holder_eio "after GAVEUP" 1500 f read

# It keeps trying, at the slow pace: the next start comes about 4 s after GAVEUP.
# The test sees GAVEUP up to about 1 s late (fk_wait's inotify wait can miss a
# line written just before it starts), so the bound is half the interval.
fk_wait FAILED "" 30 || fail "no retry after GAVEUP"
since=$(($(now_ms) - gaveup_at))
log "a retry failed $since ms after GAVEUP: $FK_LINE"
[ "$since" -ge 2000 ] || fail "the keeper retried $since ms after GAVEUP: not at --retry-interval=4"

rm -f "$T/nostart"
fk_wait RECOVERED "" 30 || fail "no RECOVERED once the daemon could start again"
log "$FK_LINE"
[ "$(fk_count GAVEUP)" = 1 ] || fail "expected one GAVEUP, got $(fk_count GAVEUP)"
mounted "$M" || fail "$M is no longer mounted"
[ "$(holder f sum)" = "sum $want" ] || fail "the fd opened before the crash reads other data after the recovery"
try_cmd 10 sha256sum "$M/f" || fail "reading $M/f after the recovery failed: $TRY_OUT"
[ "${TRY_OUT%% *}" = "$want" ] || fail "after the recovery $M/f reads otherwise: $TRY_OUT"
try_cmd 10 stat -f "$M" || fail "stat -f after the recovery failed: $TRY_OUT"

# The failed starts before the give-up no longer count: a crash now is restarted at once.
failed=$(fk_count FAILED)
fk_kill_daemon || fail "killing the recovered daemon failed"
fk_wait RECOVERED "" 30 || fail "no RECOVERED after a crash following the recovery"
[ "$(fk_count FAILED)" = "$failed" ] || fail "a start failed after the recovery"
[ "$(holder f sum)" = "sum $want" ] || fail "the fd reads other data after the second crash"
holder_stop f

fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "no STOPPED event"
assert_not_mounted "$M"
assert_all_gone
log "ok"
