#!/bin/bash
# 75-takeover-errors: what a daemon with its own command line (no {}) may do that the keeper
# cannot take over gets a clear log line and a failed start, never a mount the keeper does not
# hold: a daemon that mounts twice, one whose target is not MOUNTPOINT, one with a mount option
# the keeper does not know, one whose mountpoint does not exist, and one that never mounts.
# Also: a relative target (resolved from the daemon's working directory) with MOUNTPOINT left
# out, and the usage errors of the plain form.
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
FK_NO_MOUNTPOINT=1 expect_refused "Daemon [0-9]* mounts at $T/nonexistent: No such file" \
	"$T/m" -- "$BADDAEMON" --mount "$T/nonexistent"
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
log "ok"
