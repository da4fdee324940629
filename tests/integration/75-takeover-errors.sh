#!/bin/bash
# 75-takeover-errors: what a daemon with its own command line (no {}) may do that the keeper
# cannot take over gets a clear log line and a failed start, never a mount the keeper does not
# hold: a daemon that mounts twice, one whose target is not MOUNTPOINT, one with a mount option
# the keeper does not know, one whose mountpoint does not exist, and one that never mounts.
# Also: a relative target (resolved from the daemon's working directory) with MOUNTPOINT left
# out; a daemon that makes a second mount only after its first serves, every start (the keeper
# gives up); a mountpoint with a blank; and the usage errors of the plain form.
# timeout: 120
. "$(dirname "$0")/../lib.sh"

need_prog "$FK"
need_prog "$BADDAEMON"

mkdir "$T/m" "$T/m2" "$T/other"

# expect_refused WANT-IN-LOG KEEPER ARGS...: the keeper exits 1 with WANT in its log, and
# leaves nothing mounted.
expect_refused() {
	local want=$1
	shift
	fk_start "$@"
	fk_wait_exit 30 || fail "the keeper did not exit ($want)"
	[ "$FK_STATUS" = 1 ] || fail "the keeper exited $FK_STATUS, expected 1 ($want): $(tail -5 "$FK_LOG")"
	grep -q -- "$want" "$FK_LOG" || fail "no '$want' in the log: $(cat "$FK_LOG")"
	log "refused: $(grep -m1 -- "$want" "$FK_LOG")"
	for d in "$T/m" "$T/m2" "$T/other"; do
		mountpoint -q "$d" && fail "$d is mounted after a refused start"
	done
	[ "$(fk_count READY)" = 0 ] || fail "READY after a refused start"
	assert_all_gone
}

expect_refused "mounts a second FUSE filesystem, at $T/m2" \
	"$T/m" -- "$BADDAEMON" --mount "$T/m" "$T/m2"
expect_refused "mounts at $T/other, but fusekeeper's MOUNTPOINT is $T/m" \
	"$T/m" -- "$BADDAEMON" --mount "$T/other"
expect_refused "the mount option 'nosuchoption' is not one fusekeeper passes on" \
	"$T/m" -- "$BADDAEMON" --mount "$T/m" --data=nosuchoption
grep -q "baddaemon: mount $T/m: Operation not permitted" "$FK_LOG" ||
	fail "the daemon was not answered EPERM: $(cat "$FK_LOG")"
FK_NO_MOUNTPOINT=1 expect_refused "its mount target $T/nonexistent cannot be resolved: No such file" \
	"$T/m" -- "$BADDAEMON" --mount "$T/nonexistent"
grep -q "baddaemon: mount $T/nonexistent: No such file or directory" "$FK_LOG" ||
	fail "the daemon was not answered ENOENT, as the kernel would: $(cat "$FK_LOG")"
expect_refused "The daemon failed before it mounted a FUSE filesystem" "$T/m" -- false

# A relative target, MOUNTPOINT left out: the keeper finds it from the daemon's cwd.
cd "$T/m" || fail "cd $T/m"
FK_NO_MOUNTPOINT=1 fk_start "$T/m" -- "$BADDAEMON" --mount .
cd / || fail "cd /"
fk_wait READY || fail "no READY: $(cat "$FK_LOG")"
[ "$(cat "$T/m/good")" = hello ] || fail "the mount at $T/m does not serve the daemon's file"
grep -q "Mounted $T/m (proxy mode) as daemon" "$FK_LOG" || fail "no Mounted line for $T/m"
fk_kill_daemon || fail "killing the daemon failed"
fk_wait RECOVERED "" 30 || fail "no RECOVERED: $(tail -5 "$FK_LOG")"
[ "$(cat "$T/m/good")" = hello ] || fail "the mount does not serve after a restart"
M=$T/m fk_umount_exit 0
assert_all_gone

# A second mount made after the first one serves: each start fails the same way, so the keeper
# gives up (GAVEUP) instead of restarting it forever.
mkdir "$T/m3"
# shellcheck disable=SC2016 # expanded by the daemon's shell
fk_start "$T/m3" --max-restarts=2 --no-retry -- sh -c '
	"$1" --mount "$2" &
	until [ -e "$2/good" ]; do sleep 0.05; done
	exec "$1" --mount "$3"' sh "$BADDAEMON" "$T/m3" "$T/m2"
fk_wait GAVEUP "" 60 || fail "no GAVEUP for a daemon that always mounts twice: $(tail -5 "$FK_LOG")"
grep -q "mounts a second FUSE filesystem, at $T/m2" "$FK_LOG" || fail "no log line for the second mount"
mountpoint -q "$T/m2" && fail "$T/m2 is mounted"
M=$T/m3 fk_umount_exit 1
assert_all_gone

# A mountpoint with a blank (escaped in mountinfo): unmounting it still ends the keeper.
mkdir "$T/with blank"
FK_NO_MOUNTPOINT=1 fk_start "$T/with blank" -- "$BADDAEMON" --mount "$T/with blank"
fk_wait READY || fail "no READY: $(cat "$FK_LOG")"
[ "$(cat "$T/with blank/good")" = hello ] || fail "the mount at '$T/with blank' does not serve"
M="$T/with blank" fk_umount_exit 0
assert_all_gone

# Usage errors of the plain form: exit 2 with a message that says what to do.
usage() {
	local want=$1 out rc
	shift
	out=$("$FK" "$@" 2>&1 </dev/null)
	rc=$?
	[ "$rc" = 2 ] || fail "fusekeeper $* exited $rc, expected 2: $out"
	grep -q -- "$want" <<<"$out" || fail "fusekeeper $*: no '$want' in: $out"
}
usage "give MOUNTPOINT before '--'" -- "$BADDAEMON" {}
usage "without {} the daemon mounts, with its own options" -o allow_other -- bindfs /a /b
usage "needs {} in COMMAND" --mode=remount -- bindfs /a /b
usage "missing COMMAND after '--'" --
usage "expected '--' after MOUNTPOINT a, found 'b'" a b -- "$BADDAEMON"
log "ok"
