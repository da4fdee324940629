#!/bin/bash
# 54-recovery-proofs: after a daemon's death the keeper neither undoes newer
# data with old writes, nor answers a success that hides a loss, nor takes a
# replaced file for the one a process holds open, nor takes a change of its own
# for proof.  Regression tests for what a review of 3829b7f found (fixed in
# aa86c0e); each case fails on 3829b7f.
#
# Each case has a keeper and mount of its own ($T/mnt-CASE, testfs serving
# $T/back/CASE), so that no case sees another's nodes, handles, windows or
# identity decision.  Crash cases use testfs --crash-file and check that the
# daemon died there (crash file consumed, EXIT ... signal=KILL); kills are
# SIGKILLs checked by fk_kill_daemon.  "Another client" acts on the backing dir
# directly, while the restart is held back by testfs --fail-start-if.
#
#   r1  Unsynced writes overtaken by a newer change.  f: a write through a held
#       fd, then `truncate -s 0` by path; g: a write through a held fd, then
#       other bytes over it through another fd, closed (dd).  SIGKILL.  After
#       RECOVERED f is still empty and g holds the new bytes (the old windows
#       were not sent again), the keeper logged twice that writes "may be
#       lost", and the next write through either held fd fails with EIO.
#   r3  2 MiB through one fd without fsync, --write-window=1M; the daemon dies
#       before the FSYNC: the fsync fails with EIO.
#   r4  The same, the daemon dies before the FLUSH of close(): close fails EIO.
#   r5  A write, then at once removexattr of an attribute never set, on the same
#       file; the daemon dies before the REMOVEXATTR.  The write moved the
#       file's ctime within the request's life: no proof.  removexattr fails
#       (ENODATA or EIO), never 0.  Control first: without a crash, ENODATA.
#   r7  A held fd's unsynced write, then a rename of that file; the daemon dies
#       after renaming, its restart is held back past the clock's slack.  The
#       rename succeeds (the dead daemon did it: sending the window again
#       moved the file's ctime, which must not count), and the data is intact.
#   r2  Identity with two nodes: f and g held open; the daemon is killed, its
#       restart held back while B/f is replaced (the old inode kept as B/keep).
#       At that first restart one of two nodes kept its number: testfs's
#       numbers are still stable, so a write through f's held fd fails with
#       ESTALE, B/f and B/keep are untouched, and the keeper never logs that
#       the numbers "change across restarts".
#   r6  Stable decided, never flipped: a first restart with eleven nodes
#       decides "stable"; d and its eight files are removed through the mount
#       (the kernel forgets them); then the r2 replacement at a second restart
#       (one of two nodes changed): the same outcome as r2.
#   r8  40 x 1 MiB unsynced writes through one fd, testfs --delay-ms=100,
#       --start-timeout=2: sending the window again takes some 4 s, longer than
#       the start timeout, but each write has its own time.  After a SIGKILL
#       the keeper recovers (RECOVERED, no GAVEUP), stat works, fsync and close
#       succeed and the backing file holds the 40 MiB exactly.
#
# A wrong outcome is recorded and the next case runs; the script ends with every
# case's result (exit 1 if any was wrong).  Infrastructure failures stop it at
# once.  r5 needs user.* xattrs: the backing dir is a fresh tmpfs if the temp
# dir lacks them; if neither has them r5 is skipped (exit 77 if all else passed).
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cases.sh"

need_prog "$TESTFS"
need_cmd perl mkfifo dd truncate stat cmp head tr

B=$T/back
mkdir "$B"

# The application: one perl process making exactly the syscalls named and
# printing their outcomes as NAME=OK|ERRNO-NAME on one line.
#   stream PATH COUNT KIB THEN  open(O_CREAT|O_TRUNC), COUNT writes of KIB KiB of
#                               "z", no fsync, then THEN: "fsync" (fsync, close),
#                               "close", or "wait" (print "written", wait for
#                               SIGUSR1, then fsync and close)
#   write-removexattr PATH NAME open, write one byte, removexattr(PATH, NAME)
#   rename OLD NEW
#   setxattr PATH NAME VALUE
cat >"$T/app.pl" <<'EOF_APP' || fail "cannot write $T/app.pl"
use strict;
use Fcntl;
use IO::Handle;
use POSIX ();
$| = 1;
sub en { my @n = grep { $!{$_} } keys %!; @n = sort @n; return @n ? $n[0] : "errno" . ($! + 0) }
my ($op, @a) = @ARGV;
my @out;
if ($op eq "stream") {
	my ($path, $count, $kib, $then) = @a;
	# Blocked from the start, so that a SIGUSR1 sent early waits for sigsuspend.
	POSIX::sigprocmask(POSIX::SIG_BLOCK(), POSIX::SigSet->new(POSIX::SIGUSR1())) or die "sigprocmask: $!\n";
	$SIG{USR1} = sub { };
	my $f;
	if (!sysopen($f, $path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) {
		print "open=", en(), "\n";
		exit 1;
	}
	my $chunk = "z" x ($kib * 1024);
	for my $i (1 .. $count) {
		my $n = syswrite($f, $chunk);
		if (!defined $n || $n != length $chunk) {
			print "write$i=", (defined $n ? "short$n" : en()), "\n";
			exit 1;
		}
	}
	if ($then eq "wait") {
		print "written\n";
		POSIX::sigsuspend(POSIX::SigSet->new());
	}
	push @out, "fsync=" . ($f->sync ? "OK" : en()) if $then ne "close";
	push @out, "close=" . (close($f) ? "OK" : en());
} elsif ($op eq "write-removexattr") {
	require "syscall.ph";
	my $f;
	if (!sysopen($f, $a[0], O_WRONLY)) {
		print "open=", en(), "\n";
		exit 1;
	}
	my $n = syswrite($f, "y");
	push @out, "write=" . (defined $n ? $n : en());
	my ($path, $name) = ($a[0], $a[1]);
	my $r = syscall(&SYS_removexattr, $path, $name);
	push @out, "removexattr=" . ($r == 0 ? "OK" : en());
} elsif ($op eq "rename") {
	push @out, "rename=" . (rename($a[0], $a[1]) ? "OK" : en());
} elsif ($op eq "setxattr") {
	require "syscall.ph";
	my ($path, $name, $value) = @a;
	my $r = syscall(&SYS_setxattr, $path, $name, $value, length($value), 0);
	push @out, "setxattr=" . ($r == 0 ? "OK" : en());
} else {
	die "app: unknown op $op\n";
}
print join(" ", @out), "\n";
EOF_APP

backing_xattrs "$B"

# ---- a keeper per case ---------------------------------------------------------

# keeper [KEEPER OPTIONS] [-- TESTFS OPTIONS]: starts the case's keeper at
# M=$T/mnt-CASE over testfs serving BK=$B/CASE, and waits for READY.
keeper() {
	local opts=()
	M=$T/mnt-$CASE
	BK=$B/$CASE
	mkdir "$M" "$BK" || fail "cannot make $M and $BK"
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	fk_start "$M" "${opts[@]}" -- "$TESTFS" --backing="$BK" --crash-file="$T/crash" \
		--fail-start-if="$GATE" "$@" {}
	fk_wait READY >/dev/null || fail "$CASE: the keeper never became READY"
}

# keeper_done: unmounts the case's mount; the keeper exits 0 (1 if it gave up,
# which is wrong in every case).
keeper_done() {
	local want=0
	if [ "$(fk_count GAVEUP)" != 0 ]; then
		wrong "the keeper gave up: $(grep -E 'did not finish|giving up|Giving up' "$FK_LOG" | head -n 3)"
		want=1
	fi
	fk_umount_exit "$want"
	assert_not_mounted "$M"
}

# Creates through the mount: the keeper learns the store's clock from them
# (without, a ctime proves nothing and every settle by time answers EIO).
clock_samples() {
	local i
	for i in 1 2 3; do
		: >"$M/seed$i" || fail "$CASE: creating $M/seed$i failed"
	done
}

# ---- crash, gate, recovery (the rest is lib-cases.sh's) -----------------------

# kill_gated: SIGKILLs the daemon and holds its restart back (FAILED).
kill_gated() {
	gate_on
	fk_mark
	fk_kill_daemon || fail "$CASE: killing the daemon failed"
	fk_wait FAILED "" 30 >/dev/null || fail "$CASE: the gated restart did not fail"
	log "$CASE: restart held back ($FK_LINE)"
}

# replace_f: another client replaces B/f while the daemon is down.  A link keeps
# the old inode allocated (so that no later file can get its number: see
# 53-node-identity) and shows whether the old fd wrote into it.
replace_f() {
	ln "$BK/f" "$BK/keep" || fail "ln $BK/f $BK/keep failed"
	printf 'NEW content\n' >"$BK/f.new" || fail "writing $BK/f.new failed"
	mv "$BK/f.new" "$BK/f" || fail "mv $BK/f.new $BK/f failed"
	log "$CASE: $BK/f replaced: inode $(stat -c %i "$BK/keep") -> $(stat -c %i "$BK/f")"
}

# replaced_checks HF HG: after f was replaced while the daemon was down, HF
# (f's holder) fails with ESTALE, HG (g's) works; nothing was written into
# either f; the keeper lost f and never took testfs's numbers for changing.
replaced_checks() {
	local out
	# A write always reaches the keeper (no writeback cache).
	out=$(holder "$1" write OLDFD\\n)
	expect "write through the held fd of the replaced f" "$out" "error ESTALE"
	# A read may still come from the kernel's page cache of the old file (its
	# attributes are valid 1 s): its data, never the new file's.
	out=$(holder "$1" read)
	case $out in
	"error ESTALE" | 'read old\n') log "$CASE: read through the held fd of the replaced f: $out" ;;
	*) wrong "read through the held fd of the replaced f: got '$out', expected 'error ESTALE' (or the old data from the page cache)" ;;
	esac
	content "$BK/f" $'NEW content\n'
	content "$BK/keep" $'old\n'
	expect "read through g's held fd" "$(holder "$2" read)" 'read gdata\n'
	if grep -q 'change across restarts' "$FK_LOG"; then
		wrong "the keeper took testfs's inode numbers for changing: $(grep 'inode numbers' "$FK_LOG" | tr '\n' '|')"
	fi
	grep -q '/f now names another object' "$FK_LOG" ||
		wrong "the keeper did not log that f now names another object"
}

# ---- r1: unsynced writes overtaken by a newer change ------------------------

begin r1 "unsynced writes through held fds, then a truncate / a newer write by another fd; SIGKILL"
keeper --max-restarts=100
: >"$M/f" || fail "r1: creating $M/f failed"
holder_start r1f "$M/f"
[ "$(holder r1f write 'hello world\n')" = "wrote 12" ] || fail "r1: the write through f's held fd failed"
truncate -s 0 "$M/f" || fail "r1: truncate -s 0 $M/f failed"
file_is "$BK/f" "" || fail "r1: $BK/f holds '$FILE_GOT' after the truncate"
printf 'xxxxxxxxxxxx' >"$M/g" || fail "r1: writing $M/g failed"
holder_start r1g "$M/g"
[ "$(holder r1g write OLD-OLD-OLD)" = "wrote 11" ] || fail "r1: the write through g's held fd failed"
printf 'NEW-NEW-NEW' | dd of="$M/g" conv=notrunc status=none || fail "r1: dd over $M/g failed"
file_is "$BK/g" NEW-NEW-NEWx || fail "r1: $BK/g holds '$FILE_GOT' after dd"
fk_mark
fk_kill_daemon || fail "r1: killing the daemon failed"
fk_wait RECOVERED "" 30 >/dev/null || fail "r1: no RECOVERED"
log "r1: $FK_LINE"
content "$BK/f" ""
content "$BK/g" NEW-NEW-NEWx
n=$(grep -c 'may be lost (the file changed otherwise since they were written)' "$FK_LOG")
[ "$n" = 2 ] || wrong "the keeper logged $n times (expected 2) that a held fd's writes may be lost: $(grep 'Recovered:' "$FK_LOG")"
expect "the next write through f's held fd" "$(holder r1f write again)" "error EIO"
expect "the next write through g's held fd" "$(holder r1g write again)" "error EIO"
content "$BK/f" ""
content "$BK/g" NEW-NEW-NEWx
holder_stop r1f
holder_stop r1g
keeper_done
end_case

# ---- r3, r4: the sync left in flight reports the overflowed window ------------

begin r3 "2 MiB unsynced with --write-window=1M, the daemon dies before the FSYNC"
keeper --max-restarts=100 --write-window=1M
crash_case before:fsync:big stream "$M/big" 8 256 fsync
case $APP_OUT in
"fsync=EIO close="*) ;;
*) wrong "expected the fsync to fail with EIO, got: $APP_OUT" ;;
esac
grep -q 'may be lost (more were written than --write-window keeps)' "$FK_LOG" ||
	wrong "the keeper did not log that the writes may be lost"
keeper_done
end_case

begin r4 "2 MiB unsynced with --write-window=1M, the daemon dies before the FLUSH of close"
keeper --max-restarts=100 --write-window=1M
crash_case before:flush:big stream "$M/big" 8 256 close
expect "close after 2 MiB" "$APP_OUT" "close=EIO"
grep -q 'may be lost (more were written than --write-window keeps)' "$FK_LOG" ||
	wrong "the keeper did not log that the writes may be lost"
keeper_done
end_case

# ---- r5: the application's own write is no proof of a removexattr -----------

if [ -z "$XATTR_SKIP" ]; then
	begin r5 "write, then removexattr of an attribute never set; the daemon dies before the REMOVEXATTR"
	keeper --max-restarts=100
	clock_samples
	printf x >"$M/f" || fail "r5: writing $M/f failed"
	out=$(app write-removexattr "$M/f" user.never.set)
	[ "$out" = "write=1 removexattr=ENODATA" ] ||
		fail "r5: without a crash: expected write=1 removexattr=ENODATA, got: $out"
	crash_case before:removexattr:f write-removexattr "$M/f" user.never.set
	case $APP_OUT in
	"write=1 removexattr=ENODATA" | "write=1 removexattr=EIO")
		log "r5: removexattr failed with ${APP_OUT#*removexattr=}: $(grep 'Replayed REMOVEXATTR' "$FK_LOG" | tail -n 1)"
		;;
	*) wrong "expected write=1 and removexattr ENODATA or EIO, got: $APP_OUT ($(grep 'Replayed REMOVEXATTR' "$FK_LOG" | tail -n 1))" ;;
	esac
	keeper_done
	end_case
else
	log "case r5 skipped: $XATTR_SKIP"
	RESULTS+=("r5 SKIP")
fi

# ---- r7: a rename's proof is read before the window moves the ctime ---------

begin r7 "a held fd's unsynced write, then a rename the daemon dies after doing; restart held back"
keeper --max-restarts=100
clock_samples
printf x >"$M/f" || fail "r7: writing $M/f failed"
holder_start r7 "$M/f"
[ "$(holder r7 write data)" = "wrote 4" ] || fail "r7: the write through the held fd failed"
gate_on
crash_arm after:rename:f
start_app rename "$M/f" "$M/g"
crash_died
gate_refused
# The delay is the scenario: the new daemon must start later than the clock's
# slack (at most 100 ms) after the death, so that sending the window again sets
# a ctime the keeper can tell is after the death.
left=$((DIED_AT + 250 - $(now_ms)))
[ "$left" -le 0 ] || sleep "$(printf '0.%03d' "$left")"
gate_off
crash_recovered
app_result
expect "rename done by the dead daemon" "$APP_OUT" "rename=OK"
[ ! -e "$BK/f" ] || wrong "$BK/f still exists"
content "$BK/g" data
expect "read through the held fd" "$(holder r7 read)" "read data"
holder_stop r7
keeper_done
end_case

# ---- r2: identity decided at a first restart with few nodes -----------------

begin r2 "f and g held open; f replaced while the daemon is down, at its first restart"
keeper --max-restarts=100
printf 'old\n' >"$M/f" || fail "r2: writing $M/f failed"
printf 'gdata\n' >"$M/g" || fail "r2: writing $M/g failed"
holder_start r2f "$M/f"
holder_start r2g "$M/g"
[ "$(holder r2f read)" = 'read old\n' ] || fail "r2: reading through f's held fd failed"
kill_gated
replace_f
gate_off
fk_wait RECOVERED "" 30 >/dev/null || fail "r2: no RECOVERED after the gate was removed"
log "r2: $FK_LINE"
replaced_checks r2f r2g
holder_stop r2f
holder_stop r2g
keeper_done
end_case

# ---- r6: stable, decided once, never flipped ----------------------------------

begin r6 "stable numbers decided with eleven nodes; a later restart with two, one replaced"
keeper --max-restarts=100
printf 'old\n' >"$M/f" || fail "r6: writing $M/f failed"
printf 'gdata\n' >"$M/g" || fail "r6: writing $M/g failed"
mkdir "$M/d" || fail "r6: mkdir $M/d failed"
for i in 1 2 3 4 5 6 7 8; do
	printf '%s\n' "$i" >"$M/d/s$i" || fail "r6: writing $M/d/s$i failed"
done
stat "$M/d" "$M"/d/s* >/dev/null || fail "r6: stat through the mount failed"
holder_start r6f "$M/f"
holder_start r6g "$M/g"
fk_mark
fk_kill_daemon || fail "r6: killing the daemon failed"
fk_wait RECOVERED "" 30 >/dev/null || fail "r6: no RECOVERED after the first kill"
grep -q 'inode numbers are stable across restarts' "$FK_LOG" ||
	fail "r6: the first restart did not find testfs's numbers stable: $(grep 'inode numbers' "$FK_LOG")"
# Fewer nodes for the next restart: removing d through the mount makes the
# kernel evict d and its files and queue their FORGETs; the kernel hands
# FORGETs out before a later request (this chmod), and the keeper handles each
# message before it reads the next, so by chmod's answer they are gone.
rm -r "$M/d" || fail "r6: rm -r $M/d failed"
chmod 0644 "$M/g" || fail "r6: chmod $M/g failed"
kill_gated
replace_f
gate_off
fk_wait RECOVERED "" 30 >/dev/null || fail "r6: no RECOVERED after the gate was removed"
log "r6: $FK_LINE"
# The case tests a flip only if the second restart had so few nodes that one
# changed number would once have flipped the decision (a fifth of them).
line=$(grep 'Recovered:' "$FK_LOG" | tail -n 1)
[[ $line =~ Recovered:\ ([0-9]+)\ nodes\ and\ [0-9]+\ handles\ restored\ \(([0-9]+)\ nodes ]] ||
	fail "r6: no Recovered line for the second restart in the keeper's log"
nodes=$((BASH_REMATCH[1] + BASH_REMATCH[2]))
[ "$nodes" -le 4 ] || fail "r6: the second restart had $nodes nodes (the kernel did not forget d): $line"
log "r6: the second restart had $nodes nodes: $line"
replaced_checks r6f r6g
holder_stop r6f
holder_stop r6g
keeper_done
end_case

# ---- r8: a large window on a slow daemon ---------------------------------------

begin r8 "40 MiB unsynced, testfs --delay-ms=100, --start-timeout=2; SIGKILL"
# --delay-ms IS the scenario: every operation of the daemon takes 100 ms, so
# sending the 40 writes of the window again takes about 4 s, twice the start
# timeout.  --max-restarts=3 makes a keeper that cannot do it give up soon.
keeper --max-restarts=3 --start-timeout=2 -- --delay-ms=100
start_app stream "$M/big" 40 1024 wait
wait_match "$T/$APP_NAME.out" '^written$' 60 >/dev/null ||
	fail "r8: the writer did not write 40 MiB: $(cat "$T/$APP_NAME.out" "$T/$APP_NAME.err")"
fk_mark
fk_kill_daemon || fail "r8: killing the daemon failed"
deadline=$(($(now_ms) + 40000))
outcome=
while [ -z "$outcome" ]; do
	if fk_scan RECOVERED "" >/dev/null; then
		outcome=RECOVERED
	elif [ "$(fk_count GAVEUP)" != 0 ]; then
		outcome=GAVEUP
	elif [ "$(now_ms)" -ge "$deadline" ]; then
		outcome=TIMEOUT
	else
		sleep 0.05
	fi
done
log "r8: $outcome: $(tr '\n' ';' <"$FK_EVENTS")"
if [ "$outcome" = RECOVERED ]; then
	[ "$(fk_count FAILED)" = 0 ] || wrong "failed starts before the recovery: $(grep -E 'did not finish' "$FK_LOG" | head -n 3)"
	try_cmd 10 stat -c %s "$M/big"
	expect "stat -c %s after the recovery" "$TRY_OUT" 41943040
	kill -USR1 "$APP_PID" || fail "r8: cannot signal the writer"
	app_result
	expect "fsync and close after the recovery" "$APP_OUT" "fsync=OK close=OK"
	if ! head -c 41943040 /dev/zero | tr '\0' z | cmp -s - "$BK/big"; then
		wrong "$BK/big is not 40 MiB of z (size $(stat -c %s "$BK/big"))"
	fi
else
	wrong "the keeper did not recover ($outcome): $(grep -E 'did not finish|giv' "$FK_LOG" | head -n 3)"
	try_cmd 5 stat -c %s "$M/big"
	log "r8: stat after: $TRY_OUT"
	# The writer holds the file open: it must go before the unmount.
	kill -KILL "$APP_PID"
	wait_pid "$APP_PID" 10 || fail "r8: the writer did not exit"
fi
keeper_done
end_case

# ---- the end -----------------------------------------------------------------

cases_report
assert_all_gone
[ -z "$XATTR_SKIP" ] || skip "case r5: $XATTR_SKIP (all others passed)"
log "ok"
