#!/bin/bash
# 31-bad-command: start-up errors are reported clearly and leave nothing behind.
#   - a COMMAND that does not exist: non-zero exit, a message naming it, no mount;
#   - a MOUNTPOINT that does not exist: a message naming it, non-zero exit;
#   - bad usage (unknown or conflicting -o options, unknown options, no
#     COMMAND, an option of proxy mode with another --mode): exit 2, no mount, no
#     daemon.
# timeout: 120
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
[ -x "$FK" ] || fail "the keeper is not built: $FK"

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

# expect_startup_failure WHAT NEEDLE: the current keeper must exit non-zero with
# NEEDLE in its log, without a mount or a daemon left.
expect_startup_failure() {
	local what=$1 needle=$2 pid
	fk_wait_exit 30 || fail "$what: the keeper did not exit"
	[ "$FK_STATUS" != 0 ] || fail "$what: the keeper exited 0"
	log "$what: exit $FK_STATUS: $(tr '\n' ' ' <"$FK_LOG")"
	grep -qF -- "$needle" "$FK_LOG" || fail "$what: the keeper's messages do not name $needle"
	assert_not_mounted "$M" "$what: $M is mounted after a failed start-up"
	for pid in $(fk_daemon_pids); do
		wait_gone "$pid" 10 || fail "$what: daemon $pid still runs"
	done
	[ "$(fk_count READY)" = 0 ] || fail "$what: READY reported"
}

# A command that does not exist.
fk_start "$M" -- "$T/no-such-daemon" --backing="$B" {}
expect_startup_failure "missing command" "no-such-daemon"
[ "$FK_STATUS" = 1 ] || log "note: exit status $FK_STATUS for a missing command (the contract says 1)"

# A command that exists but is not executable.
printf '#!/bin/sh\nexit 0\n' >"$T/not-executable"
chmod 644 "$T/not-executable"
fk_start "$M" -- "$T/not-executable" {}
expect_startup_failure "non-executable command" "not-executable"

# A mountpoint that does not exist.
fk_start "$T/no-such-mountpoint" -- "$TESTFS" --backing="$B" {}
expect_startup_failure "missing mountpoint" "no-such-mountpoint"

# Bad usage: exit 2, nothing started.
expect_usage() {
	local what=$1
	shift
	fk_start "$@"
	fk_wait_exit 15 || fail "$what: the keeper did not exit"
	log "$what: exit $FK_STATUS: $(tr '\n' ' ' <"$FK_LOG")"
	[ "$FK_STATUS" = 2 ] || fail "$what: exit status $FK_STATUS, expected 2"
	assert_not_mounted "$M" "$what: $M is mounted after a usage error"
	[ "$(fk_count DAEMON)" = 0 ] || fail "$what: a daemon was started"
	[ -s "$FK_LOG" ] || fail "$what: no message"
}
expect_usage "unknown -o option" "$M" -o no_such_option -- "$TESTFS" --backing="$B" {}
expect_usage "conflicting -o ro,rw" "$M" -o ro,rw -- "$TESTFS" --backing="$B" {}
expect_usage "conflicting -o suid,nosuid" "$M" -o suid,nosuid -- "$TESTFS" --backing="$B" {}
expect_usage "bad max_read" "$M" -o max_read=banana -- "$TESTFS" --backing="$B" {}
expect_usage "unknown option" "$M" --no-such-option -- "$TESTFS" --backing="$B" {}
expect_usage "unknown mode" "$M" --mode=bogus -- "$TESTFS" --backing="$B" {}
expect_usage "bad --write-window suffix" "$M" --write-window=12X -- "$TESTFS" --backing="$B" {}
expect_usage "negative --write-window" "$M" --write-window=-1 -- "$TESTFS" --backing="$B" {}
expect_usage "huge --write-window-total" "$M" --write-window-total=2000G -- "$TESTFS" --backing="$B" {}
grep -q "expected a size in bytes" "$FK_LOG" || fail "bad sizes: the message does not say what was expected"
for m in remount reinit; do
	expect_usage "--write-window with --mode=$m" "$M" --mode=$m --write-window=1M -- "$TESTFS" --backing="$B" {}
	grep -qF -- "--write-window applies to proxy mode only, not to --mode=$m" "$FK_LOG" ||
		fail "--write-window with --mode=$m: the message does not say why"
done
expect_usage "--write-through with --write-window" "$M" --write-through --write-window=1M -- "$TESTFS" --backing="$B" {}
grep -q "cannot be used with it" "$FK_LOG" || fail "--write-through with --write-window: the message does not say why"
expect_usage "--exclusive takes no value" "$M" --exclusive=yes -- "$TESTFS" --backing="$B" {}

# No COMMAND at all (fk_start needs one, so run the keeper directly).
out=$(timeout 15 "$FK" "$M" -- 2>&1 </dev/null)
rc=$?
log "no command: exit $rc: $out"
[ "$rc" = 2 ] || fail "no command: exit status $rc, expected 2"
assert_not_mounted "$M" "no command: $M is mounted"

assert_all_gone
log "ok"
