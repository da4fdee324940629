#!/bin/bash
# 56-writeback-append: appends through an O_APPEND handle with the writeback
# cache.  The kernel then places appends itself: write(2) only dirties the page
# cache, and the page goes to the daemon later (fsync, close) as a WRITE at an
# explicit offset (write_flags FUSE_WRITE_CACHE) holding the whole page, old
# bytes and new.  Such a WRITE left unanswered by a dead daemon is positioned:
# sent again it lands where it did, so every line is in the file exactly once.
#
# testfs --writeback asks for the writeback cache and opens backing files
# without O_APPEND (as libfuse's passthrough_ll); --crash-file makes it SIGKILL
# itself before or after doing one operation.  The application (perl) opens a
# file O_WRONLY|O_APPEND, writes a line, reads the backing file directly (the
# line must not be there yet: proof that the kernel cached the write), then
# fsyncs (or just closes) and closes.
#
#   a  first append, the daemon dies after the page's WRITE, before replying
#   b  first append to another file, the daemon dies before the WRITE
#   c  a second append to a's file, after its recovery: dies after the WRITE
#   d  a third append to a's file: the WRITE is acknowledged, the daemon dies
#      before the FSYNC (the write window is sent to the new daemon)
#   e  an append without fsync: the page is written back at close (FLUSH);
#      the daemon dies after that WRITE
#
# Every case checks that the daemon died at its crash point, that a new one
# took over, that the application's write, fsync and close succeeded, and
# that the backing file holds each line exactly once.  The keeper runs with -v:
# its log must show FUSE_WRITEBACK_CACHE among the flags agreed at INIT (the
# test fails if it was silently not negotiated; exit 77 if the kernel does not
# offer it), and each recovery must have sent the request in flight again as
# it was (a positioned write: nothing settled, no write reported lost or
# looked for as an append; in d, the acknowledged WRITE sent again).  With
# testfs ignoring O_APPEND, the append rule would give the same bytes, so
# these log checks are what tells the two rules apart.
# timeout: 150
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cases.sh"

need_prog "$TESTFS"
need_cmd perl

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

FUSE_WRITEBACK_CACHE=$((1 << 16))

# The application: wbappend PATH DATA BACKING-PATH sync|close.  Prints one line:
# write=COUNT backing=WHAT-THE-BACKING-FILE-HELD-AFTER-WRITE [fsync=OK] close=OK
# (ERRNO-NAME instead of a count or OK on failure; newlines as \n).
cat >"$T/app.pl" <<'EOF_APP' || fail "cannot write $T/app.pl"
use strict;
use Fcntl;
use IO::Handle;
$| = 1;
sub en { my @n = grep { $!{$_} } keys %!; @n = sort @n; return @n ? $n[0] : "errno" . ($! + 0) }
my ($path, $data, $backing, $how) = @ARGV;
my @out;
my $fh;
if (!sysopen($fh, $path, O_WRONLY | O_APPEND)) {
	print "open=", en(), "\n";
	exit 1;
}
my $n = syswrite($fh, $data);
push @out, "write=" . (defined $n ? $n : en());
my $held = "(unreadable)";
if (open(my $b, "<", $backing)) {
	local $/;
	$held = <$b> // "";
	$held =~ s/\n/\\n/g;
}
push @out, "backing=$held";
push @out, "fsync=" . ($fh->sync ? "OK" : en()) if $how eq "sync";
push @out, "close=" . (close($fh) ? "OK" : en());
print join(" ", @out), "\n";
EOF_APP

fk_start "$M" -v --max-restarts=100 -- "$TESTFS" --writeback --backing="$B" \
	--crash-file="$T/crash" {}
fk_wait READY >/dev/null || fail "the keeper never became READY"
# The pages dirtied below must stay dirty until the test's sync.
bdi_hold_dirty "$M"

# ---- the writeback cache must really be in use ------------------------------

line=$(wait_match "$FK_LOG" 'FUSE 7\.[0-9]+ agreed: flags 0x[0-9a-f]+' 10) ||
	fail "the keeper (-v) logged no agreed INIT flags"
[[ $line =~ agreed:\ flags\ (0x[0-9a-f]+) ]] || fail "cannot parse: $line"
if (( BASH_REMATCH[1] & FUSE_WRITEBACK_CACHE )); then
	log "the writeback cache is in use: $line"
elif grep -q 'testfs: --writeback: the kernel offers no writeback cache' "$FK_LOG"; then
	skip "the kernel does not offer FUSE_WRITEBACK_CACHE"
else
	fail "testfs --writeback asked for the writeback cache, but the flags agreed at INIT lack it: $line"
fi

# ---- one case --------------------------------------------------------------

# wb_case CASE SPEC FILE DATA sync|close HELD EXPECTED: the application appends
# DATA to $M/FILE and syncs or closes, meeting a crash at SPEC; before the
# sync the backing file must still hold HELD (the write is in the page cache),
# and after the recovery exactly EXPECTED.
wb_case() {
	local name=$1 file=$3 data=$4 how=$5 held=$6 expected=$7 app out want from window=
	[ "$2" = before:fsync:log ] && window=1
	log "==== case $name: append '${data%$'\n'}' to $file, $how, crash at $2"
	from=$(grep -c '' "$FK_LOG")
	crash_arm "$2"
	run_bg "app-$name" perl "$T/app.pl" "$M/$file" "$data" "$B/$file" "$how"
	app=$BG_PID
	crash_died
	crash_recovered
	wait_pid "$app" 20 || fail "$name: the application is still waiting 20 s after the recovery"
	out=$(cat "$T/app-$name.out")
	log "$name: the application got: $out"
	[ -s "$T/app-$name.err" ] && log "$name: its stderr: $(cat "$T/app-$name.err")"
	want="write=${#data} backing=${held//$'\n'/\\n}"
	[ "$how" = sync ] && want+=" fsync=OK"
	want+=" close=OK"
	if [ "$out" != "$want" ]; then
		case $out in
		"write=${#data} backing=${held//$'\n'/\\n} "*) ;;
		"write="*" backing="*)
			fail "$name: write(2) reached the daemon at once (the backing file held more" \
				"than '${held//$'\n'/\\n}' before the sync): the writeback cache is not in use: $out" ;;
		esac
		fail "$name: expected '$want', got '$out'"
	fi
	file_is "$B/$file" "$expected" ||
		fail "$name: $B/$file holds '$FILE_GOT', expected '$expected'"
	# What the keeper said about the WRITE: a page written back is positioned.
	sed -n "$((from + 1)),\$p" "$FK_LOG" >"$T/keeper-$name.log"
	grep -E 'Recovered:|Replayed|[Aa]n append |may be lost|Cannot' "$T/keeper-$name.log" |
		sed "s/^/    $name: keeper: /"
	! grep -qE '[Aa]n append |may be lost' "$T/keeper-$name.log" ||
		fail "$name: the keeper settled the page's WRITE as an append or reported it lost"
	# Sent again as it was, not settled by looking for its bytes first.
	grep -qE 'Recovered: .* [1-9][0-9]* requests replayed, 0 settled,' "$T/keeper-$name.log" ||
		fail "$name: the request in flight was not simply sent again (positioned)"
	if [ -n "$window" ]; then
		grep -qE 'Recovered: .* [1-9][0-9]* unsynced writes sent again' "$T/keeper-$name.log" ||
			fail "$name: the acknowledged WRITE was not sent to the new daemon again"
	fi
	log "==== case $name: PASS"
}

mkdir "$B/a" "$B/b" "$B/e" || fail "mkdir in $B failed"
printf 'line1\n' >"$B/a/log" && printf 'line1\n' >"$B/b/log" && printf 'line1\n' >"$B/e/log" ||
	fail "cannot write the backing files"

wb_case a after:write:log a/log $'mine\n' sync $'line1\n' $'line1\nmine\n'
wb_case b before:write:log b/log $'mine\n' sync $'line1\n' $'line1\nmine\n'
wb_case c after:write:log a/log $'two\n' sync $'line1\nmine\n' $'line1\nmine\ntwo\n'
wb_case d before:fsync:log a/log $'three\n' sync $'line1\nmine\ntwo\n' $'line1\nmine\ntwo\nthree\n'
wb_case e after:write:log e/log $'mine\n' close $'line1\n' $'line1\nmine\n'

# Through the mount too (the kernel's cache and the store agree).
file_is "$M/a/log" $'line1\nmine\ntwo\nthree\n' || fail "$M/a/log holds '$FILE_GOT'"
file_is "$M/b/log" $'line1\nmine\n' || fail "$M/b/log holds '$FILE_GOT'"

fk_clean_rounds 5
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
