#!/bin/bash
# 93-reinit-reopen: after FUSE_REINIT_BEGIN, files opened before are reopened with the new
# daemon where they are next used (kernel/patches/0010), as their opener, with the flags of
# their first open less O_CREAT, O_EXCL and O_TRUNC. Checked in the 6.1 guest's patched
# fuse.ko; elsewhere skipped after checking that the probe answers ENOTTY.
#
# testfs's node IDs are pointers and its handles are fds salted per run: an old ID or handle
# that reached a new testfs would make it abort, so every check also shows that none did.
#  1. a file held open reads byte-exact through its old fd, uncached, and keeps its st_ino;
#  2. a file held open read-write is written through its old fd, and the new daemon has the
#     bytes;
#  3. a file two directories down, held open, reads (its parents are healed first);
#  4. a held file whose name went away while no daemon ran gets ESTALE, never other data;
#  5. a held file the new daemon refuses to open (immutable in the store, held read-write)
#     gets EIO for every request through it, and closes without error;
#  6. a held file never used after the take-over closes without error, and no FLUSH or
#     RELEASE with its old handle reaches the new daemon;
#  7. after a second take-over, 1. and 2. again, reopening handles reopened once;
#  8. with the writeback cache, data written through held fds before the take-over and
#     still dirty in the page cache reaches the new daemon: through fsync(2) of its old fd,
#     and through close(2) of another, never dropped with a success.
# timeout: 180
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-reinit.sh"
reinit_need
need_cmd sha256sum

B=$T/back
mkdir -p "$B/sub/deeper"
head -c 300000 /dev/urandom >"$B/big"
echo old >"$B/w"
echo gone >"$B/gone"
echo deep >"$B/sub/deeper/f"
echo ro >"$B/ro"
echo idle >"$B/idle"
echo old >"$B/wb"
echo old >"$B/wc"
want=$(sha256sum <"$B/big" | cut -d' ' -f1)

# takeover GEN: kill the daemon, BEGIN, a testfs on a new clone, WAIT accepted.
takeover() {
	expect kill "^killed $DAEMON\$"
	expect begin "^ok gen $1\$"
	expect start '^started [0-9]+$'
	DAEMON=${ANSWER#started }
	expect "wait 60" "^ok gen $1\$"
}

# check_held GEN: 1. and 2. through the fds held since generation 1.
check_held() {
	local got
	drop_cache "$M/big"
	got=$(holder big sum)
	[ "$got" = "sum $want" ] || fail "gen $1: big through its old fd: want sum $want, got '$got'"
	got=$(holder big fstat)
	[ "$got" = "ino $ino_big" ] || fail "gen $1: fstat of big's old fd: want ino $ino_big, got '$got'"
	got=$(holder w write "gen $1\n")
	[ "$got" = "wrote 6" ] || fail "gen $1: writing w through its old fd: '$got'"
	[ "$(cat "$B/w")" = "gen $1" ] || fail "gen $1: the store holds '$(cat "$B/w")' after the write"
	got=$(holder w read)
	[ "$got" = "read gen $1\\n" ] || fail "gen $1: reading w back through its old fd: '$got'"
	alive "$DAEMON" || fail "gen $1: the new testfs died (an old ID or handle reached it?): $(cat "$T/a.err")"
}

serve a
# Held by other processes: a shell holding a FUSE fd sends a FLUSH whenever one of its
# children exits, and a FLUSH (forced) waits unkillably while no daemon serves.
holder_start big "$M/big" ro
holder_start w "$M/w" rw
holder_start deep "$M/sub/deeper/f" ro
holder_start gone "$M/gone" ro
holder_start ro "$M/ro" rw
holder_start idle "$M/idle" ro
ino_big=$(stat -c %i "$M/big")
[ "$(holder big sum)" = "sum $want" ] || fail "big does not read byte-exact before the take-over"
[ "$(holder ro read)" = 'read ro\n' ] || fail "ro does not read 'ro' before the take-over"

expect kill "^killed $DAEMON\$"
rm "$B/gone"
immutable=
if command -v chattr >/dev/null && chattr +i "$B/ro" 2>/dev/null; then
	immutable=1
else
	log "case 5 not run: chattr +i does not work on $B (no chattr, or a file system without it)"
fi
expect begin '^ok gen 2$'
expect start '^started [0-9]+$'
DAEMON=${ANSWER#started }
expect "wait 60" '^ok gen 2$'

# --- 1., 2.
check_held 2

# --- 3.
got=$(holder deep read)
[ "$got" = 'read deep\n' ] || fail "sub/deeper/f through its old fd: '$got'"

# --- 4.
got=$(holder gone read)
[ "$got" = "error ESTALE" ] || fail "a held file whose name went away: want ESTALE, got '$got'"
holder_stop gone

# --- 5.
if [ -n "$immutable" ]; then
	got=$(holder ro write "x")
	[ "$got" = "error EIO" ] || fail "a held file the new daemon refuses to open, write: want EIO, got '$got'"
	got=$(holder ro read)
	[ "$got" = "error EIO" ] || fail "a held file the new daemon refuses to open, read: want EIO, got '$got'"
	chattr -i "$B/ro"
	[ "$(cat "$B/ro")" = ro ] || fail "the store's ro changed: $(cat "$B/ro")"
fi
holder_stop ro

# --- 6.
holder_stop idle
alive "$DAEMON" || fail "testfs died when a file of the old daemon was closed: $(cat "$T/a.err")"

# --- 7.
takeover 3
check_held 3

holder_stop big
holder_stop w
holder_stop deep
alive "$DAEMON" || fail "testfs died when reopened files were closed: $(cat "$T/a.err")"
quit a
assert_not_mounted "$T/a"

# --- 8.
# shellcheck disable=SC2034 # read by serve (lib-reinit.sh)
TESTFS_EXTRA=(--writeback)
serve b
# The two dirty pages must stay dirty until the take-over.
bdi_hold_dirty "$M"
holder_start wb "$M/wb" rw
holder_start wc "$M/wc" rw
[ "$(holder wb write "dirty b\n")" = "wrote 8" ] || fail "writing wb failed"
[ "$(holder wc write "dirty c\n")" = "wrote 8" ] || fail "writing wc failed"
# Dirty pages are written back after 30 s (dirty_expire_centisecs) or at a sync: the store
# must not have them yet, or the case proves nothing.
[ "$(cat "$B/wb") $(cat "$B/wc")" = "old old" ] ||
	fail "the store has the data before the take-over: the pages were not dirty"
takeover 2
got=$(holder wb fsync)
[ "$got" = "fsync 0" ] || fail "fsync of wb's old fd after the take-over: '$got'"
[ "$(cat "$B/wb")" = "dirty b" ] || fail "after fsync succeeded, the store's wb holds '$(cat "$B/wb")'"
holder_stop wc
[ "$(cat "$B/wc")" = "dirty c" ] || fail "after close, the store's wc holds '$(cat "$B/wc")'"
holder_stop wb
alive "$DAEMON" || fail "testfs died (an old ID or handle reached it?): $(cat "$T/b.err")"
quit b
assert_not_mounted "$T/b"
log "ok"
