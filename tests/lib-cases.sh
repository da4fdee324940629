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
# Crashes:   app_install writes the application ($T/app.pl, below); app OP
#            ARGS... runs it; crash_case SPEC OP ARGS... runs the application,
#            which meets a crash at SPEC, and waits for its result in APP_OUT;
#            the pieces: start_app, crash_died, crash_recovered, app_result;
#            gated_case SPEC OTHER OP ARGS... lets another client act on the
#            store between the death and the next start.
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

# held_ready CASE: waits up to $HELD_WAIT s (default 20) for app.pl's held op to have written
# ($T/held.ready).
held_ready() {
	local deadline=$(($(now_ms) + ${HELD_WAIT:-20} * 1000))
	until [ -e "$T/held.ready" ]; do
		alive "$APP_PID" && [ "$(now_ms)" -lt "$deadline" ] ||
			fail "$1: the application did not write: $(cat "$T/$APP_NAME.out" "$T/$APP_NAME.err")"
		sleep 0.02
	done
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
	alive "$APP_PID" ||
		fail "$SPEC: the application was answered while no daemon ran: $(cat "$T/$APP_NAME.out")"
}

# crash_recovered: a new daemon took over from the one that died at SPEC.
crash_recovered() {
	fk_wait RECOVERED "" 30 >/dev/null || fail "$SPEC: no RECOVERED"
	[[ $FK_LINE =~ ^RECOVERED\ ([0-9]+)\  ]] && [ "${BASH_REMATCH[1]}" != "$DAEMON_BEFORE" ] ||
		fail "$SPEC: unexpected $FK_LINE"
	log "$SPEC: the daemon died there and another took over ($FK_LINE)"
}

# app_result: waits for the application ($HELD_WAIT s at most, default 20); its last output
# line goes to APP_OUT.
app_result() {
	wait_pid "$APP_PID" "${HELD_WAIT:-20}" ||
		fail "$CASE: the application is still waiting ${HELD_WAIT:-20} s after the recovery"
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

# app_install: writes the application, $T/app.pl: one perl process making exactly
# the syscalls named and printing each one's outcome as NAME=OK|ERRNO-NAME
# (write=COUNT, read=DATA with \n for newlines), one line. Ops: excl PATH DATA
# (open O_CREAT|O_EXCL|O_WRONLY, write DATA, close), create PATH DATA (the same
# without O_EXCL), append PATH DATA (open O_WRONLY|O_APPEND), pwrite PATH OFF
# DATA, read PATH, truncate PATH SIZE (ftruncate), fsync PATH DATA (write DATA
# at 0, fsync), stat PATH, unlink PATH, mkdir PATH, rename FROM TO, setxattr
# PATH NAME VALUE FLAGS (1 = XATTR_CREATE), getxattr PATH NAME, removexattr PATH
# NAME, symlink TARGET PATH, readlink PATH, link FROM TO, rmdir PATH, readdir PATH
# (names=A,B,... sorted, without . and ..), fallocate PATH LEN (mode 0 from 0 to
# LEN), osync PATH OFF DATA (pwrite through an O_SYNC open, close), and held PATH
# DATA SYNC THEN GATE [PRE [EXTRA]]: open O_RDWR, if PRE is "read" read the file
# (its pages are then cached; read=DATA, or read=N bytes past 64, is printed),
# write DATA at 0 and, if SYNC is 1, fsync, if SYNC is "range",
# sync_file_range(2) (writeback, no FSYNC: range=OK or ERRNO is printed);
# create GATE.ready and wait for GATE; then THEN: "fsync" (fsync twice, close),
# "close", or "range-fsync" (sync_file_range(2) as above, create GATE.ranged,
# wait for GATE.more, then as "fsync"). EXTRA, words joined by commas: "spread:N" writes DATA at the
# start of N pages in all, 0, 4096, ... (a write=COUNT each); "trunc:SIZE",
# after the writes, opens the file again O_RDWR and ftruncates it to SIZE
# through that second fd (trunc2=OK), which is closed last (close2=OK). xattrs
# go through syscall.ph (libperl, a dependency of Debian's perl).
app_install() {
	cat >"$T/app.pl" <<'EOF_APP' || fail "cannot write $T/app.pl"
use strict;
use Fcntl;
$| = 1;
sub en { my @n = grep { $!{$_} } keys %!; @n = sort @n; return @n ? $n[0] : "errno" . ($! + 0) }
my ($op, @a) = @ARGV;
my @out;
sub opened {
	my ($flags) = @_;
	my $fh;
	if (!sysopen($fh, $a[0], $flags, 0644)) {
		print "open=", en(), "\n";
		exit 1;
	}
	return $fh;
}
if ($op eq "excl" || $op eq "create" || $op eq "append") {
	my $fh = opened($op eq "append" ? O_WRONLY | O_APPEND :
		$op eq "excl" ? O_WRONLY | O_CREAT | O_EXCL : O_WRONLY | O_CREAT);
	push @out, "open=OK" if $op ne "append";
	my $n = syswrite($fh, $a[1]);
	push @out, "write=" . (defined $n ? $n : en());
	push @out, "close=" . (close($fh) ? "OK" : en());
} elsif ($op eq "pwrite") {
	my $fh = opened(O_WRONLY);
	sysseek($fh, $a[1], 0) or die "seek: $!";
	my $n = syswrite($fh, $a[2]);
	push @out, "write=" . (defined $n ? $n : en());
	push @out, "close=" . (close($fh) ? "OK" : en());
} elsif ($op eq "osync") {
	my $fh = opened(O_WRONLY | O_SYNC);
	sysseek($fh, $a[1], 0) or die "seek: $!";
	my $n = syswrite($fh, $a[2]);
	push @out, "write=" . (defined $n ? $n : en());
	push @out, "close=" . (close($fh) ? "OK" : en());
} elsif ($op eq "read") {
	my $fh = opened(O_RDONLY);
	my $buf;
	my $n = sysread($fh, $buf, 1 << 20);
	$buf =~ s/\n/\\n/g if defined $n;
	push @out, defined $n ? "read=$buf" : "read=" . en();
} elsif ($op eq "truncate") {
	my $fh = opened(O_WRONLY);
	push @out, "truncate=" . (truncate($fh, $a[1]) ? "OK" : en());
} elsif ($op eq "fsync") {
	require IO::Handle;
	my $fh = opened(O_WRONLY);
	my $n = syswrite($fh, $a[1]);
	push @out, "write=" . (defined $n ? $n : en());
	push @out, "fsync=" . ($fh->sync ? "OK" : en());
} elsif ($op eq "held") {
	require IO::Handle;
	my $fh = opened(O_RDWR);
	my %x = map { /^(\w+):(\d+)$/ ? ($1 => $2) : die "bad EXTRA $_" } split(/,/, $a[6] // "");
	my $fh2;
	if (($a[5] // "") eq "read") {
		my $buf;
		my $r = sysread($fh, $buf, 1 << 20);
		$buf =~ s/\n/\\n/g if defined $r;
		$buf = "$r bytes" if defined $r && $r > 64;
		push @out, defined $r ? "read=$buf" : "read=" . en();
	}
	for my $page (0 .. ($x{spread} // 1) - 1) {
		sysseek($fh, $page * 4096, 0) or die "seek: $!";
		my $n = syswrite($fh, $a[1]);
		push @out, "write=" . (defined $n ? $n : en());
	}
	if (defined $x{trunc}) {
		sysopen($fh2, $a[0], O_RDWR) or die "second open: $!";
		push @out, "trunc2=" . (truncate($fh2, $x{trunc}) ? "OK" : en());
	}
	if ($a[2] eq "range") {
		require "syscall.ph";
		# SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER: the pages go out, no FSYNC.
		my $r = syscall(&SYS_sync_file_range, fileno($fh), 0, 0, 7);
		push @out, "range=" . ($r == 0 ? "OK" : en());
	} elsif ($a[2]) {
		push @out, "fsync=" . ($fh->sync ? "OK" : en());
	}
	open(my $ready, ">", "$a[4].ready") or die "cannot create $a[4].ready: $!";
	close($ready);
	select(undef, undef, undef, 0.02) until -e $a[4];
	if ($a[3] eq "range-fsync") {
		require "syscall.ph";
		my $r = syscall(&SYS_sync_file_range, fileno($fh), 0, 0, 7);
		push @out, "range=" . ($r == 0 ? "OK" : en());
		open(my $ranged, ">", "$a[4].ranged") or die "cannot create $a[4].ranged: $!";
		close($ranged);
		select(undef, undef, undef, 0.02) until -e "$a[4].more";
	}
	if ($a[3] eq "fsync" || $a[3] eq "range-fsync") {
		push @out, "fsync=" . ($fh->sync ? "OK" : en()) for 1 .. 2;
	}
	push @out, "close=" . (close($fh) ? "OK" : en());
	push @out, "close2=" . (close($fh2) ? "OK" : en()) if $fh2;
} elsif ($op eq "stat") {
	my @st = stat($a[0]);
	push @out, @st ? "stat=OK size=$st[7]" : "stat=" . en();
} elsif ($op eq "unlink") {
	push @out, "unlink=" . (unlink($a[0]) ? "OK" : en());
} elsif ($op eq "mkdir") {
	push @out, "mkdir=" . (mkdir($a[0]) ? "OK" : en());
} elsif ($op eq "rename") {
	push @out, "rename=" . (rename($a[0], $a[1]) ? "OK" : en());
} elsif ($op eq "setxattr") {
	require "syscall.ph";
	my $r = syscall(&SYS_setxattr, $a[0], $a[1], $a[2], length($a[2]), $a[3] + 0);
	push @out, "setxattr=" . ($r == 0 ? "OK" : en());
} elsif ($op eq "removexattr") {
	require "syscall.ph";
	my $r = syscall(&SYS_removexattr, $a[0], $a[1]);
	push @out, "removexattr=" . ($r == 0 ? "OK" : en());
} elsif ($op eq "symlink") {
	push @out, "symlink=" . (symlink($a[0], $a[1]) ? "OK" : en());
} elsif ($op eq "readlink") {
	my $t = readlink($a[0]);
	push @out, defined $t ? "readlink=$t" : "readlink=" . en();
} elsif ($op eq "link") {
	push @out, "link=" . (link($a[0], $a[1]) ? "OK" : en());
} elsif ($op eq "rmdir") {
	push @out, "rmdir=" . (rmdir($a[0]) ? "OK" : en());
} elsif ($op eq "readdir") {
	if (opendir(my $dh, $a[0])) {
		my @n = sort grep { $_ ne "." && $_ ne ".." } readdir($dh);
		push @out, "names=" . join(",", @n);
	} else {
		push @out, "opendir=" . en();
	}
} elsif ($op eq "fallocate") {
	require "syscall.ph";
	my $fh = opened(O_WRONLY);
	my $r = syscall(&SYS_fallocate, fileno($fh), 0, 0, $a[1] + 0);
	push @out, "fallocate=" . ($r == 0 ? "OK" : en());
} elsif ($op eq "getxattr") {
	require "syscall.ph";
	my $buf = "\0" x 4096;
	my $n = syscall(&SYS_getxattr, $a[0], $a[1], $buf, 4096);
	push @out, $n >= 0 ? "value=" . substr($buf, 0, $n) : "getxattr=" . en();
} else {
	die "app: unknown op $op\n";
}
print join(" ", @out), "\n";
EOF_APP
}

# gated_case SPEC OTHER OP ARGS...: as crash_case, but the function OTHER acts
# on the backing dir after the death and before a new daemon starts (the gate
# refuses starts meanwhile). GATED_SLACK_MS: how long after the death OTHER
# acts at the earliest (a keeper judging by the store's clock may allow for its
# slack). A request the kernel fails at FUSE_REINIT_BEGIN (reinit mode) is
# answered before any new daemon: GATED_EARLY=1 allows that; otherwise the
# application must still wait when a start is refused (gate_refused).
gated_case() {
	local other=$2 left
	gate_on
	crash_arm "$1"
	shift 2
	start_app "$@"
	crash_died
	if [ "${GATED_EARLY:-0}" = 1 ]; then
		fk_wait FAILED "" 30 >/dev/null || fail "$SPEC: no start refused by the gate"
	else
		gate_refused
	fi
	left=$((DIED_AT + ${GATED_SLACK_MS:-0} - $(now_ms)))
	[ "$left" -le 0 ] || sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
	"$other" || fail "$SPEC: the other client failed"
	gate_off
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
