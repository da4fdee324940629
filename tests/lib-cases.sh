# lib-cases.sh - for tests made of cases where the daemon dies at a chosen
# point while an application's syscalls wait: a verdict per case, the crash and
# the gated restart, the application in the background.  Source it after
# lib.sh.  The daemon is testfs with --crash-file="$T/crash" and
# --fail-start-if="$GATE" (GATE=$T/gate, set here).
#
# Verdicts:  begin CASE TEXT ... end_case; wrong WHAT records a wrong outcome
#            (the script goes on, or fails at once when CASES_GO_ON=0);
#            content PATH TEXT and expect WHAT GOT WANT call wrong;
#            cases_report fails if any case was wrong.
# Crashes:   app OP ARGS... runs the test's application ($T/app.pl);
#            crash_case SPEC OP ARGS... runs the application, which meets a
#            crash at SPEC, and waits for its result in APP_OUT; the pieces:
#            start_app, crash_died, crash_recovered, app_result.
# Gating:    gate_on, gate_off, gate_refused (a start refused by the gate).
# xattrs:    backing_xattrs DIR makes DIR hold user.* xattrs (a tmpfs if the
#            temp dir cannot), or sets XATTR_SKIP to why not.

GATE=$T/gate
RESULTS=()
WRONG=0

begin() {
	CASE=$1
	CASE_OK=1
	log "==== case $CASE: $2"
}

# wrong WHAT: the case's outcome is not the one required.
wrong() {
	echo "WRONG: case $CASE: $*" >&2
	CASE_OK=0
	[ "${CASES_GO_ON:-1}" = 1 ] || fail "case $CASE: $*"
}

end_case() {
	if [ "$CASE_OK" = 1 ]; then
		RESULTS+=("$CASE PASS")
	else
		RESULTS+=("$CASE FAIL")
		WRONG=$((WRONG + 1))
	fi
	log "==== case $CASE: $([ "$CASE_OK" = 1 ] && echo PASS || echo FAIL)"
}

# cases_report: every case's verdict; fails if any was wrong.
cases_report() {
	local r
	log "results:"
	for r in "${RESULTS[@]}"; do
		log "  $r"
	done
	[ "$WRONG" = 0 ] || fail "$WRONG case(s) with a wrong outcome: $(printf '%s\n' "${RESULTS[@]}" | grep FAIL | cut -d' ' -f1 | tr '\n' ' ')"
}

# content PATH TEXT: the file at PATH holds exactly TEXT.
content() {
	file_is "$1" "$2" || wrong "$1 holds '$FILE_GOT', expected '$2'"
}

# expect WHAT GOT WANT
expect() {
	if [ "$2" = "$3" ]; then
		log "$CASE: $1: $2"
	else
		wrong "$1: got '$2', expected '$3'"
	fi
}

gate_on() {
	: >"$GATE" || fail "cannot create the gate $GATE"
}

gate_off() {
	rm -f "$GATE" || fail "cannot remove the gate $GATE"
}

# app OP ARGS...: the application ($T/app.pl, the test's) makes its syscalls.
app() {
	perl "$T/app.pl" "$@"
}

# start_app OP ARGS...: the same in the background (pid in APP_PID, output in
# $T/$APP_NAME.out).
start_app() {
	APP_NAME=app-$CASE
	run_bg "$APP_NAME" perl "$T/app.pl" "$@"
	APP_PID=$BG_PID
}

# crash_died: the daemon died at SPEC (crash_arm), SIGKILLed by its crash hook;
# DIED_AT is when the test saw it.
crash_died() {
	if ! fk_wait EXIT "$DAEMON_BEFORE" 20 >/dev/null; then
		[ -e "$T/crash" ] && fail "$SPEC: the daemon did not reach the crash point (crash file still there)"
		fail "$SPEC: no EXIT for daemon $DAEMON_BEFORE"
	fi
	[ "$FK_LINE" = "EXIT $DAEMON_BEFORE signal=KILL" ] ||
		fail "$SPEC: expected the daemon to be SIGKILLed: $FK_LINE"
	[ ! -e "$T/crash" ] || fail "$SPEC: the daemon died but not at the crash point (crash file still there)"
	DIED_AT=$(now_ms)
}

# gate_refused: a restart was refused by the gate; the application still waits.
gate_refused() {
	local pid
	fk_wait FAILED "" 30 >/dev/null || fail "$SPEC: no start refused by the gate"
	[[ $FK_LINE =~ ^FAILED\ ([0-9]+)\  ]] || fail "$SPEC: unexpected $FK_LINE"
	pid=${BASH_REMATCH[1]}
	# The reason FAILED gives depends on when the keeper noticed; the exit status does not.
	fk_wait EXIT "$pid" 10 >/dev/null && [ "$FK_LINE" = "EXIT $pid status=3" ] ||
		fail "$SPEC: daemon $pid failed, but not because of the gate: $FK_LINE"
	pid_alive "$APP_PID" ||
		fail "$SPEC: the application was answered while no daemon ran: $(cat "$T/$APP_NAME.out")"
}

# crash_recovered: a new daemon took over from the one that died at SPEC.
crash_recovered() {
	fk_wait RECOVERED "" 30 >/dev/null || fail "$SPEC: no RECOVERED"
	[[ $FK_LINE =~ ^RECOVERED\ ([0-9]+)\  ]] && [ "${BASH_REMATCH[1]}" != "$DAEMON_BEFORE" ] ||
		fail "$SPEC: unexpected $FK_LINE"
	log "$SPEC: the daemon died there and another took over ($FK_LINE)"
}

# app_result: waits for the application; its last output line goes to APP_OUT.
app_result() {
	wait_pid "$APP_PID" 20 || fail "$CASE: the application is still waiting 20 s after the recovery"
	APP_OUT=$(tail -n 1 "$T/$APP_NAME.out")
	log "$CASE: the application got: $APP_OUT"
	[ -s "$T/$APP_NAME.err" ] && log "$CASE: its stderr: $(cat "$T/$APP_NAME.err")"
	return 0
}

# crash_case SPEC OP ARGS...: the application's syscalls meet a crash at SPEC.
crash_case() {
	crash_arm "$1"
	shift
	start_app "$@"
	crash_died
	crash_recovered
	app_result
}

# backing_xattrs DIR: DIR (empty, not yet served) can hold user.* xattrs: the
# temp dir's filesystem, else a tmpfs of the test's own (Linux >= 6.6); if
# neither can, XATTR_SKIP says why.  Probed with syscall.ph (libperl).
XATTR_SKIP=
_xattr_probe() {
	# syscall() passes strings as buffers it may write: they must be variables.
	: >"$1/.probe" && perl -e 'require "syscall.ph"; my ($f, $n, $v) = ($ARGV[0], "user.fkprobe", "x");
		exit(syscall(&SYS_setxattr, $f, $n, $v, 1, 0) == 0 ? 0 : 1)' "$1/.probe"
	local r=$?
	rm -f "$1/.probe"
	return $r
}
backing_xattrs() {
	_xattr_probe "$1" && return
	mount -t tmpfs -o mode=0755 fk-back "$1" || fail "cannot mount a tmpfs at $1"
	track_mount "$1"
	log "no user.* xattrs in $T: $1 is a tmpfs"
	_xattr_probe "$1" || XATTR_SKIP="neither $(stat -f -c %T "$T") nor tmpfs here supports user.* xattrs"
}
