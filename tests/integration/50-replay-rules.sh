#!/bin/bash
# 50-replay-rules: a non-idempotent operation whose daemon died after applying
# it but before replying must succeed exactly once for the application, with the
# right result; one whose daemon died before applying it must be applied by the
# replay.  testfs --crash-file makes the daemon SIGKILL itself at that point.
#
# Each case arms the crash file, runs one syscall through perl (so that exactly
# that syscall is made), checks it succeeded, that the daemon really died there
# (the crash file is consumed, EXIT ... signal=KILL), that a new daemon took
# over (RECOVERED), and the result through the mount and in the backing dir.
# timeout: 240
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cases.sh"

need_prog "$TESTFS"
need_cmd perl
need_cmd fallocate

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

fk_start "$M" --max-restarts=100 -- "$TESTFS" --backing="$B" --crash-file="$T/crash" {}
fk_wait READY || fail "the keeper never became READY"

# sys OP ARGS...: one syscall, by perl; prints the error and fails if it failed.
# (Run it through try_cmd where the daemon may die: a stuck request cannot be
# interrupted.)
sys() {
	perl -e '
		use strict;
		use Fcntl;
		use POSIX ();
		my ($op, @a) = @ARGV;
		my $ok;
		if ($op eq "mkdir") { $ok = mkdir($a[0], 0755) }
		elsif ($op eq "rmdir") { $ok = rmdir($a[0]) }
		elsif ($op eq "unlink") { $ok = unlink($a[0]) }
		elsif ($op eq "rename") { $ok = rename($a[0], $a[1]) }
		elsif ($op eq "link") { $ok = link($a[0], $a[1]) }
		elsif ($op eq "symlink") { $ok = symlink($a[0], $a[1]) }
		elsif ($op eq "mkfifo") { $ok = POSIX::mkfifo($a[0], 0644) }
		elsif ($op eq "create_excl" || $op eq "append") {
			my $flags = $op eq "append" ? O_WRONLY | O_APPEND : O_WRONLY | O_CREAT | O_EXCL;
			my $fh;
			$ok = sysopen($fh, $a[0], $flags, 0644);
			if ($ok) {
				my $n = syswrite($fh, $a[1]);
				$ok = defined($n) && $n == length($a[1]);
				print STDERR "short write: $n\n" if defined($n) && !$ok;
				$ok = close($fh) && $ok;
			}
		} elsif ($op eq "truncate" || $op eq "open_trunc") {
			my $fh;
			if ($op eq "truncate") {
				$ok = sysopen($fh, $a[0], O_WRONLY) && truncate($fh, $a[1]);
			} else {
				$ok = sysopen($fh, $a[0], O_WRONLY | O_TRUNC);
			}
			$ok = close($fh) && $ok if $fh;
		} elsif ($op eq "--") {
			exec(@a) or die "sys: $a[0]: $!\n";
		} else { die "sys: unknown op $op\n" }
		exit 0 if $ok;
		print STDERR "$op @a: $!\n";
		exit 1;' -- "$@"
}


# op SPEC OP ARGS...: the op must succeed once despite the crash.
op() {
	local spec=$1
	shift
	crash_arm "$spec"
	try_cmd 20 sys "$@" || fail "$spec: $* failed after the daemon was killed: $TRY_OUT"
	crash_died
	crash_recovered
}

# content PATH TEXT: the file at PATH holds exactly TEXT.
content() {
	file_is "$1" "$2" || fail "$1 holds '$FILE_GOT', expected '$2'"
}

# In both the mount and the backing dir.
both() {
	local flag=$1 name=$2
	test "$flag" "$M/$name" || fail "$SPEC: test $flag $M/$name does not hold"
	test "$flag" "$B/$name" || fail "$SPEC: test $flag $B/$name does not hold in the backing dir"
}

gone() {
	[ ! -e "$M/$1" ] && [ ! -L "$M/$1" ] || fail "$SPEC: $M/$1 still exists"
	[ ! -e "$B/$1" ] && [ ! -L "$B/$1" ] || fail "$SPEC: $B/$1 still exists in the backing dir"
}

# The keeper proves a repeat found its work done by the store's clock, which it
# learns from the creates it relays: any workload makes a few before it matters.
for i in 1 2 3; do
	sys create_excl "$M/warm$i" x || fail "creating $M/warm$i failed"
	sys unlink "$M/warm$i" || fail "removing $M/warm$i failed"
done

# mkdir
op after:mkdir mkdir "$M/d1"
both -d d1

# open(O_CREAT|O_EXCL) and a write through the new handle
op after:create create_excl "$M/c1" $'created\n'
both -f c1
content "$M/c1" $'created\n'
content "$B/c1" $'created\n'

# mknod (a fifo)
op after:mknod mkfifo "$M/p1"
both -p p1

# symlink
op after:symlink symlink "target of l1" "$M/l1"
both -L l1
[ "$(readlink "$M/l1")" = "target of l1" ] || fail "$SPEC: readlink $M/l1: $(readlink "$M/l1")"
[ "$(readlink "$B/l1")" = "target of l1" ] || fail "$SPEC: readlink $B/l1: $(readlink "$B/l1")"

# link
sys create_excl "$M/h0" $'linked\n' || fail "creating $M/h0 failed"
op after:link link "$M/h0" "$M/h1"
both -f h1
[ "$(stat -c %h "$M/h0")" = 2 ] || fail "$SPEC: $M/h0 has $(stat -c %h "$M/h0") links, expected 2"
[ "$(stat -c %h "$B/h0")" = 2 ] || fail "$SPEC: $B/h0 has $(stat -c %h "$B/h0") links, expected 2"
[ "$(stat -c %i "$B/h0")" = "$(stat -c %i "$B/h1")" ] || fail "$SPEC: h0 and h1 are not the same inode"
[ "$(stat -c %i "$M/h0")" = "$(stat -c %i "$M/h1")" ] || fail "$SPEC: h0 and h1 differ in the mount"
content "$M/h1" $'linked\n'

# unlink
sys create_excl "$M/u1" x || fail "creating $M/u1 failed"
op after:unlink unlink "$M/u1"
gone u1

# rmdir
sys mkdir "$M/r1" || fail "mkdir $M/r1 failed"
op after:rmdir rmdir "$M/r1"
gone r1

# rename to a new name
sys create_excl "$M/n1" $'renamed\n' || fail "creating $M/n1 failed"
op after:rename rename "$M/n1" "$M/n2"
gone n1
both -f n2
content "$M/n2" $'renamed\n'
content "$B/n2" $'renamed\n'

# rename onto an existing name
sys create_excl "$M/o1" $'new\n' || fail "creating $M/o1 failed"
sys create_excl "$M/o2" $'old\n' || fail "creating $M/o2 failed"
op after:rename rename "$M/o1" "$M/o2"
gone o1
content "$M/o2" $'new\n'
content "$B/o2" $'new\n'

# a write to an O_APPEND fd: the bytes must land exactly once
sys create_excl "$M/a1" $'base\n' || fail "creating $M/a1 failed"
op after:write append "$M/a1" $'appended\n'
content "$M/a1" $'base\nappended\n'
content "$B/a1" $'base\nappended\n'

# A truncation destroys what was written since it was first sent, so it is sent again only when
# nothing changed the file since (here nothing did): ftruncate (SETATTR of the size), and
# open(O_TRUNC).
sys create_excl "$M/t1" $'truncated away\n' || fail "creating $M/t1 failed"
op after:setattr:t1 truncate "$M/t1" 9
content "$M/t1" 'truncated'
content "$B/t1" 'truncated'
sys create_excl "$M/t2" $'emptied\n' || fail "creating $M/t2 failed"
op after:open:t2 open_trunc "$M/t2"
content "$M/t2" ''
content "$B/t2" ''

# But when the file changed since: the daemon truncated t3 for an open(O_TRUNC) and never
# answered (testfs stall-after:); a write through another open file was answered meanwhile; then
# the daemon dies. Truncating again would destroy that write: EIO, and the write stays.
sys create_excl "$M/t3" $'before\n' || fail "creating $M/t3 failed"
crash_arm stall-after:open:t3
bg_timed trunc3 perl -e 'use Fcntl; sysopen(my $fh, $ARGV[0], O_WRONLY | O_TRUNC) or die "$!\n"' "$M/t3"
poll 10 test ! -s "$B/t3" || fail "$SPEC: the daemon never truncated t3"
printf 'written since\n' | dd of="$M/t3" conv=notrunc status=none || fail "$SPEC: the write to t3 failed"
fk_kill_daemon || fail "$SPEC: cannot kill the daemon"
crash_recovered
bg_result trunc3 30 || fail "$SPEC: open(O_TRUNC) did not finish"
[ "$BG_RC" != 0 ] && [[ $BG_OUT == *"Input/output error"* ]] ||
	fail "$SPEC: open(O_TRUNC) of a file written since: $BG_RC $BG_OUT"
grep -q "OPEN .*the file changed since it was sent" "$FK_LOG" || fail "$SPEC: no reason logged for the EIO"
content "$M/t3" $'written since\n'
content "$B/t3" $'written since\n'

# So is a FALLOCATE that punches a hole (the kernel passes no collapsing or inserting one, which
# would be done twice).
head -c 8192 /dev/urandom >"$T/f1.ref"
cp "$T/f1.ref" "$M/f1" || fail "writing $M/f1 failed"
op after:fallocate:f1 -- fallocate --punch-hole --offset 0 --length 4096 "$M/f1"
{ head -c 4096 /dev/zero; tail -c 4096 "$T/f1.ref"; } >"$T/f1.want"
cmp "$T/f1.want" "$M/f1" || fail "$SPEC: f1 is not the file with its first 4 KiB punched"
cmp "$T/f1.want" "$B/f1" || fail "$SPEC: f1 in the backing dir is not the punched file"

# The daemon dies before applying: the replay must apply the operation.
op before:mkdir mkdir "$M/bd1"
both -d bd1

sys create_excl "$M/bu1" x || fail "creating $M/bu1 failed"
op before:unlink unlink "$M/bu1"
gone bu1

# Nothing more, nothing less, in the backing dir.
want="a1 bd1 c1 d1 f1 h0 h1 l1 n2 o2 p1 t1 t2 t3"
got=$(ls -A "$B" | sort | tr '\n' ' ')
[ "$got" = "$want " ] || fail "the backing dir holds '$got', expected '$want '"
got=$(ls -A "$M" | sort | tr '\n' ' ')
[ "$got" = "$want " ] || fail "the mount lists '$got', expected '$want '"
[ -z "$(ls -A "$B/d1")" ] && [ -z "$(ls -A "$B/bd1")" ] || fail "the new directories are not empty"

[ "$(fk_count FAILED)" = 0 ] || fail "unexpected FAILED events"
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
