#!/bin/bash
# 43-table-bounds: the node and handle tables are bounded (--max-nodes,
# --max-handles). Past the bound a LOOKUP or OPEN is answered with ENFILE, a
# READDIRPLUS entry reaches the kernel without its node (the listing is whole),
# what is already known keeps working, and the keeper says so in a few log
# lines however often it happens (the 1st, 2nd, 4th, ... time).
# Then the hidden names waiting for removal (4096): a daemon that never answers
# the keeper's removals of hidden names (fkchaos drops them) while a client
# removes 4200 files it holds open; past 4096 the names are not kept for removal
# (they stay in the store, listed for the next keeper), the keeper says so, and
# the mount serves on.
# timeout: 240
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd perl

M=$T/mnt
B=$T/back
mkdir "$M" "$B" "$B/d"
for i in $(seq 1 40); do echo "file $i" >"$B/d/f$i"; done

fk_start "$M" --max-nodes=16 --max-handles=16 -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"

# Nodes: the root, d and 14 more fit; stats after that are refused, but for
# nodes the kernel lets go of meanwhile (it may prune its caches under load).
ok=0 refused=0
for i in $(seq 1 40); do
	if try_cmd 10 stat -c %s "$M/d/f$i"; then
		ok=$((ok + 1))
	elif grep -q "Too many open files in system" <<<"$TRY_OUT"; then
		refused=$((refused + 1))
	else
		fail "stat of f$i failed otherwise than with ENFILE: $TRY_OUT"
	fi
done
log "stat: $ok succeeded, $refused refused with ENFILE"
[ "$ok" -ge 1 ] && [ "$refused" -ge 1 ] || fail "$ok stats succeeded, $refused were refused with --max-nodes=16"
try_cmd 10 cat "$M/d/f1" || fail "a file known before the table filled cannot be read: $TRY_OUT"
[ "$TRY_OUT" = "file 1" ] || fail "f1 reads '$TRY_OUT'"

# A listing is whole: READDIRPLUS entries that do not fit come without their node.
try_cmd 10 ls "$M/d" || fail "ls of a directory with a full node table failed: $TRY_OUT"
[ "$(wc -l <<<"$TRY_OUT")" = 40 ] || fail "ls listed $(wc -l <<<"$TRY_OUT") names, not 40"

n=$(grep -c "The node table is full (--max-nodes=16)" "$FK_LOG")
log "the node table's overflow was logged $n times for $refused refusals and a listing"
[ "$n" -ge 1 ] || fail "the keeper did not log that the node table is full"
[ "$n" -le 8 ] || fail "the node table's overflow was logged $n times: not rate-limited"

# Handles: one fd per open; the 17th open (and later ones) fail with ENFILE.
cat >"$T/open.pl" <<'EOF'
my ($path, $n) = @ARGV;
my (@fds, %err);
for (1 .. $n) {
	if (open(my $f, "<", $path)) { push @fds, $f } else { $err{$!}++ }
}
my $data = defined $fds[0] ? readline($fds[0]) : "";
chomp $data;
print scalar(@fds), " opened, read '$data'", (map { "; $_: $err{$_}" } sort keys %err), "\n";
EOF
try_cmd 30 perl "$T/open.pl" "$M/d/f1" 24 || fail "the open script failed: $TRY_OUT"
log "24 opens: $TRY_OUT"
[[ $TRY_OUT =~ ^([0-9]+)\ opened,\ read\ \'file\ 1\'\;\ Too\ many\ open\ files\ in\ system:\ ([0-9]+)$ ]] ||
	fail "24 opens with --max-handles=16 gave: $TRY_OUT"
[ "${BASH_REMATCH[1]}" -le 16 ] && [ "${BASH_REMATCH[1]}" -ge 8 ] ||
	fail "${BASH_REMATCH[1]} handles were opened with --max-handles=16"
grep -q "The handle table is full (--max-handles=16)" "$FK_LOG" ||
	fail "the keeper did not log that the handle table is full"
# Closed, they make room again.
try_cmd 30 perl "$T/open.pl" "$M/d/f1" 4 || fail "the open script failed: $TRY_OUT"
[ "$TRY_OUT" = "4 opened, read 'file 1'" ] || fail "after closing, 4 opens gave: $TRY_OUT"

alive "$FK_PID" || fail "the keeper exited"
fk_umount_exit 0
assert_not_mounted "$M"

FKCHAOS=$BUILD_DIR/tests/fkchaos
need_prog "$FKCHAOS"
M=$T/mnt2
mkdir "$M" "$B/h"
fk_start "$M" --state-dir="$T/state" -- "$FKCHAOS" --rate=100 --calls-only --opcodes=10 \
	--kinds=drop --log="$T/dropped" -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper with fkchaos never became READY"
cat >"$T/unlink-open.pl" <<'EOF'
my ($dir, $n) = @ARGV;
for my $i (1 .. $n) {
	open(my $f, ">", "$dir/u$i") or die "create u$i: $!\n";
	unlink("$dir/u$i") or die "unlink u$i: $!\n";
	print $f "x" or die "write u$i: $!\n";
	close($f) or die "close u$i: $!\n";
}
print "done\n";
EOF
try_cmd 200 perl "$T/unlink-open.pl" "$M/h" 4200 || fail "removing files held open failed: $TRY_OUT"
wait_match "$FK_LOG" "4096 hidden names wait for the daemon to remove them" 30 >/dev/null ||
	fail "the keeper did not say the hidden names to remove overflowed"
n=$(grep -c "hidden names wait for the daemon" "$FK_LOG")
log "$(grep -c '' "$T/dropped") removals dropped; the overflow was logged $n times"
[ "$n" -le 8 ] || fail "the overflow of hidden names was logged $n times: not rate-limited"
# The daemon removed the names it was asked to (only its answers were dropped);
# those past the bound stay in the store, for the next keeper.
left=$(find "$B/h" -name '.fusekeeper.*' | wc -l)
log "$left hidden names stay in the store"
[ "$left" -ge 1 ] && [ "$left" -le 104 ] || fail "$left hidden names are in the store, expected 1 to 4200 - 4096"
try_cmd 10 ls -A "$M/h" || fail "ls failed: $TRY_OUT"
[ -z "$TRY_OUT" ] || fail "hidden names show through the mount: $(head -c 200 <<<"$TRY_OUT")"
alive "$FK_PID" || fail "the keeper exited"
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
