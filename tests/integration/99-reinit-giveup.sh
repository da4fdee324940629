#!/bin/bash
# 99-reinit-giveup: --request-wait in reinit mode (FUSE_REINIT_GIVE_UP, kernel/patches/0014):
# while no daemon serves, requests wait at most --request-wait; past it they fail with EIO
# at once until a daemon serves again, as in proxy mode (33-request-wait). Checked in the 6.1
# guest's patched fuse.ko; skipped elsewhere (the probe must answer ENOTTY there).
#  1. 33-request-wait's scenario (request_wait_case, tests/lib-giveup.sh): the daemon dies
#     holding a statfs; the next one computes for 8 s before it reads FUSE_INIT, with
#     --request-wait=2: the held statfs and a cat that waited fail with EIO after about 2 s,
#     not 8; a stat, a listing and a read through an fd opened before the crash fail with
#     EIO at once; once the daemon takes over, the same fd reads the file whole again.
#  2. After --max-restarts failed starts (GAVEUP), requests fail with EIO at once, also
#     after a retry's failed start (a BEGIN each: it does not end the give-up); once a
#     start succeeds, the fd opened before reads the file whole again.
# testfs runs with --cache-s=0, so that no call is answered from the kernel's caches.
# timeout: 240
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-reinit.sh"
. "$(dirname "$0")/../lib-giveup.sh"
reinit_need
need_cmd sha256sum

# --- 1.
RW_SPIN_MS=8000
RW_TESTFS_EXTRA=(--cache-s=0)
request_wait_case --mode=reinit

# --- 2. After --max-restarts failed starts the keeper gives up (GAVEUP): requests fail with
# EIO at once, also after each retry's failed start (a BEGIN each), until a start succeeds.
want=$(sha256sum <"$B/f" | cut -d' ' -f1)
fk_start "$M" --mode=reinit --max-restarts=2 --retry-interval=3 -- \
	"$TESTFS" --backing="$B" --fail-start-if="$T/nostart" --cache-s=0 {}
fk_wait READY || fail "the keeper never became READY: $(tail -5 "$FK_LOG")"
holder_start g "$M/f" ro
drop_cache "$M/f" || fail "cannot drop the cached pages of $M/f"
touch "$T/nostart"
fk_kill_daemon || fail "killing the daemon failed"
fk_wait GAVEUP "" 60 || fail "no GAVEUP after 2 failed starts"
grep -q "giving up; requests to $M now fail with EIO at once" "$FK_LOG" ||
	fail "the keeper does not log that requests fail now: $(grep -i 'giving up' "$FK_LOG")"
fk_mark
eio_at_once "after GAVEUP" 3000 "stat $M/f" "stat -f $M" "ls $M"
holder_eio "after GAVEUP" 3000 g read
fk_wait FAILED "" 30 || fail "no retry after --retry-interval"
# The keeper BEGINs after a failed start, then logs when it tries again.
deadline=$(($(now_ms) + 20000))
until [ "$(grep -c 'Trying to start the daemon again' "$FK_LOG")" -ge 2 ]; do
	[ "$(now_ms)" -lt "$deadline" ] || fail "the keeper did not wait to retry after the failed retry"
	sleep 0.05
done
eio_at_once "after a retry that failed" 3000 "stat $M/f" "stat -f $M" "ls $M"
holder_eio "after a retry that failed" 3000 g read
rm "$T/nostart"
fk_wait RECOVERED "" 30 || fail "no daemon took over once starts succeed again"
log "$FK_LINE"
served_again "after the give-up" g "$want"
holder_stop g
fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "no STOPPED event"
assert_not_mounted "$M"
assert_all_gone
log "ok"
