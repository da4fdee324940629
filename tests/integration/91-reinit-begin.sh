#!/bin/bash
# 91-reinit-begin: FUSE_REINIT_BEGIN and WAIT (kernel/patches/0008) give a held connection to
# a new testfs, which gets an ordinary INIT first; checked in the 6.1 guest's patched fuse.ko.
# (Elsewhere: skipped after checking that the probe answers ENOTTY.)
#
# testfs's node IDs are pointers of its own process and its handles are salted per run: an
# old ID that reached a new testfs would make it abort, so every request served after a
# take-over also shows that none did. Each take-over: kill (or not), BEGIN, start a testfs
# on a new clone, WAIT.
#  1. a request queued while no daemon ran is sent again after BEGIN and succeeds;
#  2. paths resolve again through the new daemon, data byte-exact;
#  3. an fd opened before reads the same bytes, reopened (kernel/patches/0010; more in
#     93-reinit-reopen): never ENOTCONN, never other data;
#  4. a request the dead daemon had read, without an answer, is settled (kernel/patches/0011,
#     more in 97-reinit-settle): a LOOKUP is sent again to the new daemon and succeeds;
#  5. a daemon still running at BEGIN loses its device and exits by itself;
#  6. a new daemon whose INIT answer differs (max_write) is refused (WAIT: EPROTO with the
#     reason) and requests wait, killable, for the next one, which is accepted;
#  7. the holder closed while no daemon is accepted ends the connection and what waited;
#  8. GIVE_UP (kernel/patches/0014): refused (EALREADY) while a daemon is accepted; after a
#     BEGIN with no daemon, a request that waited, every new one and a read through an fd
#     opened before fail with EIO at once, also after a later BEGIN, and a page fault on a
#     file mapped before gets SIGBUS; once a daemon is accepted, the same fd and paths work
#     again, with the same data;
#  9. a file mapped before whose name the kernel dropped (removed through the mount while a
#     link made in the store, never looked up, keeps it) cannot be reopened: a page fault
#     gets SIGBUS while no daemon is accepted, rather than wait or retry for ever.
# timeout: 180
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-reinit.sh"
reinit_need
need_cmd sha256sum python3

B=$T/back
mkdir -p "$B/d/e"
echo hello >"$B/f"
head -c 200000 /dev/urandom >"$B/g"
head -c 100000 /dev/urandom >"$B/h"
echo x >"$B/x"
echo y >"$B/y"
echo z >"$B/z"
want=$(sha256sum <"$B/g" | cut -d' ' -f1)
want_h=$(sha256sum <"$B/h" | cut -d' ' -f1)

# takeover GEN: BEGIN, a testfs on a new clone, WAIT accepted.
takeover() {
	expect begin "^ok gen $1\$"
	expect start '^started [0-9]+$'
	DAEMON=${ANSWER#started }
	expect "wait 60" "^ok gen $1\$"
}

TESTFS_EXTRA=(--small-writes-if="$T/small")
serve a
[ "$(cat "$M/f")" = hello ] || fail "the first daemon does not serve"
# Held by another process: a shell holding a FUSE fd sends a FLUSH whenever one of its
# children exits, and a FLUSH (forced) waits unkillably while no daemon serves.
holder_start h "$M/h" ro

# mapper NAME: a process that maps h, says "mapped", waits for $T/NAME.go, then reads the byte
# at 70000 (of a page not cached); its pid goes to MAPPER[NAME].
declare -A MAPPER
mapper() {
	run_bg "$1" python3 -c 'import mmap, os, sys, time
f = open(sys.argv[1], "rb")
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
print("mapped", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.02)
print("read", m[70000], flush=True)' "$M/h" "$T/$1.go"
	MAPPER[$1]=$BG_PID
	wait_match "$T/$1.out" '^mapped$' 20 >/dev/null || fail "the mapping of h failed: $(cat "$T/$1.err")"
}

# mapper_sigbus NAME WHEN: lets mapper NAME read; the page fault must end in SIGBUS at once,
# neither wait for a daemon nor be retried for ever.
mapper_sigbus() {
	touch "$T/$1.go"
	wait_pid "${MAPPER[$1]}" 20 || fail "a page fault on a mapped file $2 waited or spun"
	[ "$WAIT_STATUS" = 135 ] ||
		fail "a page fault on a mapped file $2: want SIGBUS (135), got $WAIT_STATUS: $(cat "$T/$1.out" "$T/$1.err")"
}

# --- 1.
expect kill "^killed $DAEMON\$"
bg_timed p1 stat -c %F "$M/d/e"
wait_waiting "$BG_PID" p1
takeover 2
bg_result p1 20 || fail "the queued stat did not end after the take-over"
[ "$BG_RC" = 0 ] && [ "$BG_OUT" = directory ] || fail "the queued stat gave $BG_RC: $BG_OUT"

# --- 2.
got=$(cat "$M/f") || fail "reading f through the new daemon failed"
[ "$got" = hello ] || fail "f reads '$got'"
sum=$(sha256sum <"$M/g" | cut -d' ' -f1) || fail "reading g failed"
[ "$sum" = "$want" ] || fail "g reads other data"
[ "$(ls "$M/d")" = e ] || fail "listing d gives '$(ls "$M/d")'"
alive "$DAEMON" || fail "the new testfs died (an old ID reached it?): $(cat "$T/a.err")"

# --- 3.
got=$(holder h sum)
[ "$got" = "sum $want_h" ] || fail "an fd opened before the take-over: want sum $want_h, got '$got'"
holder_stop h

# --- 4.
in_daemon u1 x
expect kill "^killed $DAEMON\$"
takeover 3
bg_result u1 20 || fail "the unanswered LOOKUP did not end"
[ "$BG_RC" = 0 ] && [[ $BG_OUT == *"File: $M/x"* ]] ||
	fail "an unanswered LOOKUP: want it sent again and answered, got $BG_RC: $BG_OUT"
[ "$(cat "$M/x")" = x ] || fail "x does not read 'x' after the take-over"

# --- 5.
old=$DAEMON
EXITED=
takeover 4
wait_gone "$old" 20 || fail "testfs $old kept running after BEGIN retired its device"
cmd hold
[ "$EXITED" = "$old 0" ] || fail "testfs $old should have exited 0 (ENODEV, as at an unmount): '$EXITED'"
[ "$(cat "$M/y")" = y ] || fail "y does not read 'y' after the take-over"

# --- 6.
touch "$T/small"
expect kill "^killed $DAEMON\$"
expect begin '^ok gen 5$'
expect start '^started [0-9]+$'
refused=${ANSWER#started }
# max_write differs, and so does max_pages, which libfuse derives from it
expect "wait 60" '^error EPROTO reason 0x28 mismatch 0$'
bg_timed w1 cat "$M/f"
wait_waiting "$BG_PID" w1
expect hold '^ok gen 5$'
[ ! -e "$T/w1.rc" ] || fail "a request went through although the INIT answer was refused: $(cat "$T/w1.out")"
rm "$T/small"
expect kill "^killed ($refused|0)\$"
takeover 6
bg_result w1 20 || fail "the request that waited did not end after the take-over"
[ "$BG_RC" = 0 ] && [ "$BG_OUT" = hello ] || fail "the request that waited gave $BG_RC: $BG_OUT"

# --- 8.
holder_start g "$M/h" ro
# Its reads must reach a daemon, not the page cache (dropping opens the file: now or never).
drop_cache "$M/h" || fail "cannot drop the cached pages of $M/h"
# A mapping of h, whose page at 70000 is touched after GIVE_UP.
mapper mm
expect give-up '^error EALREADY$'
expect kill "^killed $DAEMON\$"
expect begin '^ok gen 7$'
bg_timed g1 cat "$M/f"
wait_waiting "$BG_PID" g1
expect give-up '^ok gen 7$'
bg_result g1 20 || fail "a request that waited for a daemon did not end after GIVE_UP"
[ "$BG_RC" != 0 ] && [[ $BG_OUT == *"Input/output error"* ]] ||
	fail "a request that waited for a daemon, after GIVE_UP: want EIO, got $BG_RC: $BG_OUT"
# given_up_io WHEN: fresh calls, and a read the page cache cannot answer, fail at once (z was
# never looked up: no attributes are cached for it).
given_up_io() {
	eio_at_once "$1" 5000 "stat $M/z" "ls $M/d" "cat $M/x"
	holder_eio "$1" 5000 g "readat 70000"
}
given_up_io "after GIVE_UP"
# A fault that cannot reopen the file: SIGBUS, not a fault retried for ever.
mapper_sigbus mm "after GIVE_UP"
expect give-up '^ok gen 7$'
expect begin '^ok gen 8$'
given_up_io "after a later BEGIN"
expect start '^started [0-9]+$'
DAEMON=${ANSWER#started }
expect "wait 60" '^ok gen 8$'
expect give-up '^error EALREADY$'
[ "$(cat "$M/f")" = hello ] || fail "f does not read 'hello' after GIVE_UP and a take-over"
got=$(holder g sum)
[ "$got" = "sum $want_h" ] || fail "an fd opened before GIVE_UP: want sum $want_h, got '$got'"
holder_stop g

# --- 9.
ln "$B/h" "$B/h-link" || fail "cannot link $B/h"
# testfs lets the kernel cache attributes for a second.
deadline=$(($(now_ms) + 10000))
until [ "$(stat -c %h "$M/h")" = 2 ]; do
	[ "$(now_ms)" -lt "$deadline" ] || fail "the kernel does not see h's second link"
	sleep 0.1
done
mapper mm2
rm "$M/h" || fail "cannot remove h through the mount"
sync && echo 1 >/proc/sys/vm/drop_caches || fail "cannot drop the page cache"
expect kill "^killed $DAEMON\$"
expect begin '^ok gen 9$'
mapper_sigbus mm2 "with no name to heal by, while no daemon is accepted"
expect start '^started [0-9]+$'
DAEMON=${ANSWER#started }
expect "wait 60" '^ok gen 9$'
cmp -s "$M/h-link" "$B/h-link" || fail "h-link reads otherwise after the take-over"

quit a
assert_not_mounted "$T/a"

# --- 7. the holder closed while no daemon is accepted ends the connection: a request that
# waited fails at once (ENOTCONN), rather than waiting for a BEGIN nobody can make.
serve b
touch "$T/small"
expect kill "^killed $DAEMON\$"
expect begin '^ok gen 2$'
expect start '^started [0-9]+$'
expect "wait 60" '^error EPROTO reason 0x28 mismatch 0$'
bg_timed w2 cat "$M/f"
wait_waiting "$BG_PID" w2
expect close '^ok$'
bg_result w2 20 || fail "closing the holder of a connection without a daemon left a request waiting"
[ "$BG_RC" != 0 ] && [[ $BG_OUT == *"Transport endpoint is not connected"* ]] ||
	fail "the request that waited with no daemon: want ENOTCONN, got $BG_RC: $BG_OUT"
quit b
rm "$T/small"
assert_not_mounted "$T/b"
log "ok"
