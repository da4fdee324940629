#!/bin/bash
# 90-reinit-hold: FUSE_DEV_IOC_REINIT's first operation, HOLD (kernel/patches/0006), on the
# patched fuse.ko of the 6.1 guest. A kernel without the ioctl must answer ENOTTY, which is
# how the supervisor tells (checked, then skipped: the rest needs the patch).
#
# fkreinit mounts with a /dev/fuse fd of its own, holds it and runs testfs on a clone. Then:
#  - the ioctl's errors: HOLD again on the holder is fine; on another fd of the connection
#    EBUSY; without CAP_SYS_ADMIN EPERM, also for root of a user namespace of its own (the
#    capability counts in the connection's); with a reserved field set EINVAL; the holder
#    cannot read or write requests (EPERM) and polls as POLLERR; a call while another is
#    under way (two processes calling side by side) EBUSY;
#  - a request the daemon read (a LOOKUP) is neither ended nor left unkillable when the daemon dies:
#    its caller keeps waiting in request_wait_answer(), and SIGKILL ends it;
#  - closing the holder ends such a request with ECONNABORTED;
#  - a background request (a RELEASE) still ends at the death, as without HOLD;
#  - without HOLD, the same death ends the request with ECONNABORTED at once (stock 6.1
#    behaviour for a daemon on a clone): HOLD is what makes the difference.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-reinit.sh"
reinit_need

B=$T/back
mkdir "$B"
head -c 65536 /dev/urandom >"$B/g"
echo hello >"$B/f"

# --- 1. the ioctl's answers.
serve a
grep -q '^hold ok gen 1$' "$OUT" || fail "HOLD at start: $(head -n 1 "$OUT")"
expect hold '^ok gen 1$'
expect hold-clone '^error EBUSY$'
expect hold-unpriv '^error EPERM$'
expect hold-userns '^error EPERM$'
expect hold-bad '^error EINVAL$'
expect read '^error EPERM$'
expect write '^error EPERM$'
expect poll '^revents 0x8$'
# A second call while one is under way: EBUSY, and nothing else. The first call holds the
# connection's REINIT lock only for a moment, so two processes call in a loop until one
# sees it taken; the connection works on.
cmd hold-race
race=$ANSWER
log "two HOLDs side by side: $race"
[[ $race =~ ^race\ ok\ [0-9]+\ busy\ [1-9][0-9]*\ other\ 0$ ]] ||
	fail "a concurrent second FUSE_DEV_IOC_REINIT: '$race', want EBUSY and no other error"
expect hold '^ok gen 1$'
got=$(cat "$M/f") || fail "reading through the daemon's clone failed"
[ "$got" = hello ] || fail "read '$got' through the clone"

# --- 2. a request in the dead daemon's hands waits, and SIGKILL ends it.
in_daemon r1
waiting_in "$READER" request_wait_answer || fail "the reader is not waiting for an answer"
expect kill "^killed $DAEMON\$"
# The daemon is reaped, so its device is released: stock 6.1 would have ended the LOOKUP.
[ ! -e "$T/r1.rc" ] || fail "the reader ended when the daemon died: $(cat "$T/r1.out")"
waiting_in "$READER" request_wait_answer || fail "the reader no longer waits in request_wait_answer()"
kill -KILL "$(cat "/proc/$READER/task/"*/children)" 2>/dev/null
bg_result r1 20 || fail "SIGKILL did not end a request left by a dead daemon"
[ "$BG_RC" = 137 ] && [ -z "$BG_OUT" ] ||
	fail "the orphan's caller should have died of SIGKILL, silently: $BG_RC: $BG_OUT"
log "the orphan's caller was killed"
expect hold '^ok gen 1$'
quit a

# --- 3. closing the holder ends such a request with ECONNABORTED.
serve b
in_daemon r2
expect kill "^killed $DAEMON\$"
# One more round trip through fkreinit, then still waiting: not ended by the death.
expect hold '^ok gen 1$'
[ ! -e "$T/r2.rc" ] || fail "the reader ended when the daemon died: $(cat "$T/r2.out")"
waiting_in "$READER" request_wait_answer || fail "the reader no longer waits in request_wait_answer()"
expect close '^ok$'
bg_result r2 20 || fail "closing the holder did not end the request"
[ "$BG_RC" != 0 ] || fail "the LOOKUP succeeded after the holder was closed"
grep -q 'Software caused connection abort' "$T/r2.out" || fail "r2: want ECONNABORTED, got: $BG_OUT"
quit b

# --- 4. a background request (the RELEASE of a closed file) in the dead daemon's hands is
# still ended, as without a holder: the connection's count of waiting requests (fusectl)
# drops to 0. Kept, it would stay 1, as nobody could kill what waits for it (close(2),
# fsync(2) and truncation wait for background requests uninterruptibly).
serve d
conn=$(fuse_conn_dir "$M") || fail "no fusectl directory for $M"
waiting=$conn/waiting
[ -r "$waiting" ] || fail "no fusectl entry $waiting"
printf 'hang:release\n' >"$T/crash.tmp" && mv "$T/crash.tmp" "$T/crash"
[ "$(cat "$M/f")" = hello ] || fail "reading f failed"
wait_gone_file "$T/crash" || fail "testfs never got the RELEASE"
[ "$(cat "$waiting")" -ge 1 ] || fail "no request is waiting while testfs holds the RELEASE"
expect kill "^killed $DAEMON\$"
deadline=$(($(now_ms) + 20000))
while [ "$(cat "$waiting")" != 0 ]; do
	[ "$(now_ms)" -lt "$deadline" ] || fail "the RELEASE outlived its daemon: $(cat "$waiting") requests waiting"
	sleep 0.05
done
expect hold '^ok gen 1$'
quit d

# --- 5. without HOLD the same death ends the request at once with ECONNABORTED.
serve c --no-hold
in_daemon r3
expect kill "^killed $DAEMON\$"
bg_result r3 20 || fail "without a holder, the LOOKUP outlived the daemon"
grep -q 'Software caused connection abort' "$T/r3.out" || fail "r3: want ECONNABORTED, got: $BG_OUT"
quit c

for m in a b c d; do
	assert_not_mounted "$T/$m"
done
log "ok"
