#!/bin/bash
# 33-request-wait: while no daemon serves, requests wait at most --request-wait;
# past it they, the one the dead daemon held and every later one get EIO at
# once, until a daemon serves again.
# The daemon dies holding a statfs (crash hook); the next one computes for 15 s
# before it reads FUSE_INIT (it is kept: it shows CPU time), with
# --request-wait=2: the held statfs and a cat that waited in the keeper fail
# with EIO after about 2 s, not 15; a stat and a read through an fd opened
# before the crash then fail with EIO at once; once the daemon takes over, the
# same fd reads the file whole again and a new stat -f succeeds.
# timeout: 180
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd sha256sum

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

fk_start "$M" --start-timeout=1 --request-wait=2 --max-restarts=2 -- \
	"$TESTFS" --backing="$B" --slow-start-if="$T/slow" --crash-file="$T/crash" {}
fk_wait READY || fail "the keeper never became READY"
head -c 300000 /dev/urandom >"$T/data"
want=$(sha256sum <"$T/data" | cut -d' ' -f1)
try_cmd 10 cp "$T/data" "$M/f" || fail "writing $M/f failed: $TRY_OUT"
holder_start f "$M/f" ro
[ "$(holder f sum)" = "sum $want" ] || fail "the holder read other data before the crash"
# Its reads must reach the daemon, not the page cache.
drop_cache "$M/f" || fail "cannot drop the cached pages of $M/f"

echo "spin 15000" >"$T/slow.tmp" && mv "$T/slow.tmp" "$T/slow" || fail "cannot write $T/slow"
crash_arm "before:statfs"
bg_timed statfs stat -f -c '%b blocks of %s bytes' "$M"
fk_wait EXIT "$DAEMON_BEFORE" 30 || fail "the daemon did not die at the statfs"
bg_timed cat sha256sum "$M/f"

fk_wait DOWN "" 30 || fail "no DOWN event: requests were not failed after --request-wait"
log "$FK_LINE"
bg_result statfs 30 || fail "the statfs the dead daemon held hung"
[ "$BG_RC" != 0 ] || fail "the statfs the dead daemon held succeeded while no daemon served"
grep -q "Input/output error" <<<"$BG_OUT" || fail "the held statfs did not fail with EIO: $BG_OUT"
[ "$BG_MS" -lt 7000 ] || fail "the held statfs took $BG_MS ms: more than --request-wait=2 allows"
[ "$BG_MS" -ge 1000 ] || fail "the held statfs failed after $BG_MS ms: it did not wait"
bg_result cat 30 || fail "the cat made after the crash hung"
[ "$BG_RC" != 0 ] || fail "the cat made after the crash succeeded while no daemon served"
grep -q "Input/output error" <<<"$BG_OUT" || fail "the cat did not fail with EIO: $BG_OUT"
[ "$BG_MS" -lt 7000 ] || fail "the cat took $BG_MS ms: more than --request-wait=2 allows"

# Now at once: a request that waited for the daemon would take 10 s more.
for cmd in "stat $M/f" "stat -f $M" "ls $M"; do
	start=$(now_ms)
	# shellcheck disable=SC2086
	try_cmd 10 $cmd && fail "$cmd succeeded while no daemon served"
	took=$(($(now_ms) - start))
	log "$cmd after DOWN: $took ms: $TRY_OUT"
	grep -q "Input/output error" <<<"$TRY_OUT" || fail "$cmd after DOWN did not fail with EIO: $TRY_OUT"
	[ "$took" -lt 3000 ] || fail "$cmd after DOWN took $took ms: not at once"
done
start=$(now_ms)
got=$(holder f read)
took=$(($(now_ms) - start))
[ "$got" = "error EIO" ] || fail "a read through the open fd after DOWN gave '$got', not EIO"
[ "$took" -lt 3000 ] || fail "a read through the open fd after DOWN took $took ms: not at once"

fk_wait RECOVERED "" 60 || fail "the slow daemon never took over"
log "$FK_LINE"
[ "$(fk_count FAILED)" = 0 ] || fail "the slow start counted as failed: $(grep FAILED "$FK_EVENTS")"
rm -f "$T/slow"
[ "$(holder f sum)" = "sum $want" ] || fail "the fd opened before the crash reads other data after the recovery"
try_cmd 10 stat -f "$M" || fail "stat -f after the recovery failed: $TRY_OUT"
try_cmd 10 sha256sum "$M/f" || fail "reading $M/f after the recovery failed: $TRY_OUT"
[ "${TRY_OUT%% *}" = "$want" ] || fail "after the recovery $M/f reads otherwise: $TRY_OUT"
holder_stop f

fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "no STOPPED event"
assert_not_mounted "$M"
assert_all_gone
log "ok"
