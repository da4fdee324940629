#!/bin/bash
# 26-systemd-notify: the keeper speaks systemd's notify protocol and writes journal priorities.
#
# A listener speaking systemd's side of the protocol (tests/notify-listener.py) stands in for
# PID 1, which is not systemd here. The keeper, given NOTIFY_SOCKET, must send READY=1 with a
# STATUS= once the daemon serves; RELOADING=1 (with MONOTONIC_USEC=) then READY=1 around a
# planned restart, also one whose new daemon fails to start; a STATUS= counting restarts after
# a crash, and one saying it gave up; STOPPING=1 when it stops. The
# daemon must not inherit NOTIFY_SOCKET (it would speak for the keeper's service).
# With JOURNAL_STREAM naming its stderr, as systemd sets it, the keeper's lines carry the
# journal's priority prefixes (<6> info, <3> error) instead of "fusekeeper[PID]: ".
# timeout: 120
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd python3

M=$T/mnt
B=$T/back
mkdir "$M" "$B"
notify_listener_start

# notified REGEX: waits for a message matching REGEX; prints its line number.
notified() {
	wait_match "$N" "$1" 10 >/dev/null || fail "no notification matching '$1'; got: $(cat "$N")"
	grep -nE -- "$1" "$N" | tail -n 1 | cut -d: -f1
}

NOTIFY_SOCKET=$T/notify.sock fk_start "$M" -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"
ready=$(notified '^READY=1$')
notified "^STATUS=Daemon $(fk_daemon_pid) serves $M\$" >/dev/null
tr '\0' '\n' <"/proc/$(fk_daemon_pid)/environ" | grep -q '^NOTIFY_SOCKET=' &&
	fail "the daemon inherited NOTIFY_SOCKET"

try_cmd 60 "$FK" restart "$M" || fail "fusekeeper restart failed: $TRY_OUT"
reloading=$(notified '^RELOADING=1\|MONOTONIC_USEC=[0-9]+\|STATUS=Restarting the daemon of ')
[ "$reloading" -gt "$ready" ] || fail "RELOADING=1 did not come after the first READY=1"
ready2=$(notified '^READY=1$')
[ "$ready2" -gt "$reloading" ] || fail "no READY=1 after RELOADING=1: $(cat "$N")"
notified "^STATUS=Daemon $(fk_daemon_pid) serves $M; 1 restarts \\(1 planned\\), the last one took [0-9]+ ms\$" >/dev/null

fk_kill_daemon || fail "killing the daemon failed"
fk_wait RECOVERED || fail "no RECOVERED"
notified "^STATUS=Daemon $(fk_daemon_pid) serves $M; 2 restarts \\(1 planned\\)" >/dev/null

kill -TERM "$FK_PID"
fk_wait_exit 30 || fail "the keeper did not exit on SIGTERM"
stopping=$(notified '^STOPPING=1$')
[ "$stopping" -gt "$ready2" ] || fail "STOPPING=1 came before the last READY=1"

# A planned restart whose new daemon cannot start still ends RELOADING=1 with READY=1 (systemd
# waits for it), and the status says what is going on.
printf '#!/bin/sh\nexec "%s" --backing="%s" "$@"\n' "$TESTFS" "$B" >"$T/daemon.sh"
chmod +x "$T/daemon.sh"
: >"$N"
NOTIFY_SOCKET=$T/notify.sock fk_start "$M" --max-restarts=2 --no-retry -- "$T/daemon.sh" {}
fk_wait READY || fail "the second keeper never became READY"
notified '^READY=1$' >/dev/null
mv "$T/daemon.sh" "$T/daemon.off"
try_cmd 60 "$FK" restart "$M" && fail "a restart whose daemon cannot start succeeded: $TRY_OUT"
reloading=$(notified '^RELOADING=1')
ready=$(notified '^READY=1$')
[ "$ready" -gt "$reloading" ] || fail "no READY=1 after the RELOADING=1 of a failed restart: $(cat "$N")"
fk_wait GAVEUP || fail "the second keeper did not give up"
notified "^STATUS=Gave up after [0-9]+ failed starts; requests to $M fail with EIO\$" >/dev/null
kill -TERM "$FK_PID"
fk_wait_exit 30 || fail "the second keeper did not exit on SIGTERM"

# Journal priorities: stderr is the file JOURNAL_STREAM names.
J=$T/journal.log
: >"$J"
JOURNAL_STREAM=$(stat -c %d:%i "$J") "$FK" "$M" -- "$T/no-such-daemon" {} 2>>"$J"
rc=$?
[ "$rc" = 1 ] || fail "a keeper whose daemon cannot run exited $rc, not 1"
grep -q '^<6>Mounted ' "$J" || fail "no <6> (info) line in the journal's stream: $(cat "$J")"
grep -q "^<3>error: Cannot execute '$T/no-such-daemon'" "$J" ||
	fail "no <3> (error) line in the journal's stream: $(cat "$J")"
grep -q 'fusekeeper\[' "$J" && fail "a line to the journal names the process itself: $(cat "$J")"
# And without it, the usual prefix.
"$FK" "$M" -- "$T/no-such-daemon" {} 2>"$T/plain.log"
grep -q "^fusekeeper\[[0-9]*\]: error: Cannot execute" "$T/plain.log" ||
	fail "stderr that is not the journal lost its prefix: $(cat "$T/plain.log")"
assert_not_mounted "$M"
log "ok"
