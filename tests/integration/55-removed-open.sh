#!/bin/bash
# 55-removed-open: files whose name is removed while a process holds them open
# keep working across daemon kills, and the keeper's own names never show.
#
#  A. hard links: data/f is held open; `ln data/f data/g; rm data/g`; the
#     daemon is killed; the fd still reads and writes (the keeper finds the
#     node by the name it still has).
#  B. the temp-file pattern: create, unlink, keep using the fd; several kills,
#     each followed by a write and a checksum through the fd.  The keeper keeps
#     the file under a hidden name of its own: it never shows in listings or to
#     lookups, fstat reports st_nlink 0, and after the last close it is gone
#     from the store and the directory can be removed.
#  C. a file replaced by rename while held (an atomic save): the holder keeps
#     reading the old content across a kill; the name shows the new one.
#  D. the daemon dies while the keeper hides a file (before it did, and after
#     it did but before it answered): the unlink is settled, the fd works.
#  E. the keeper itself is killed while it holds a hidden file: a keeper
#     started again on the mountpoint removes the leftover.
#  F. a directory listing whose chunks hold only hidden names is not cut short.
#  G. a rename over a held file that the daemon refuses (EXDEV) changes
#     nothing: the keeper gives the hidden file its name back first.
#  H. a held file with two links, one of which another file is renamed over as
#     the daemon dies: the file is found again by its other link.
#  I. the last close of a file races its removal: no hidden name is left.
#  J. the same race, and the daemon dies after it hid the file but before it
#     answered: the removal succeeds (the soak's churn once got ENOENT: the
#     close's RELEASE, answered first, took the hidden name from the keeper's
#     table, so recovery could not find the file by it).
#  K. the daemon dies as the keeper removes a hidden name after the last
#     close: the next daemon, which never heard of the file, removes it.
# timeout: 240
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"

M=$T/mnt
B=$T/back
S=$T/state
mkdir "$M" "$B"

start_keeper() {
	fk_start "$M" --max-restarts=100 --state-dir="$S" -- \
		"$TESTFS" --backing="$B" --crash-file="$T/crash" {}
	fk_wait READY || fail "the keeper never became READY"
}

kill_and_recover() {
	fk_mark
	fk_kill_daemon || fail "could not kill the daemon"
	fk_wait RECOVERED "" 30 || fail "no RECOVERED after killing the daemon"
}

# Names in DIR of the backing store that the mount must never show.
hidden_in() {
	find "$1" -maxdepth 1 -name '.fusekeeper.*' -printf '%f\n'
}

# No listing or lookup through the mount shows a hidden name.
assert_invisible() {
	local dir=$1 h
	if grep -q '^\.fusekeeper\.' <<<"$(ls -a "$M/$dir")"; then
		fail "a hidden name shows in a listing of $dir: $(ls -a "$M/$dir")"
	fi
	for h in $(hidden_in "$B/$dir"); do
		[ ! -e "$M/$dir/$h" ] || fail "the hidden name $dir/$h can be looked up"
		touch "$M/$dir/$h" 2>/dev/null && fail "a hidden name $dir/$h can be created"
	done
	return 0
}

start_keeper
mkdir "$M/data" || fail "mkdir failed"

# ---- A. a second hard link removed -----------------------------------------
printf 'first' >"$M/data/f" || fail "writing data/f failed"
holder_start a "$M/data/f"
ln "$M/data/f" "$M/data/g" || fail "ln failed"
rm "$M/data/g" || fail "rm data/g failed"
kill_and_recover
out=$(holder a read)
[ "$out" = "read first" ] || fail "A: the held fd does not read after the kill: $out"
[ "$(holder a write second)" = "wrote 6" ] || fail "A: the held fd does not write after the kill"
file_is "$B/data/f" second || fail "A: data/f holds '$FILE_GOT'"
holder_stop a
log "A ok: the fd of a file with a removed second link survives"

# hidden_gone DIR: waits until the backing DIR holds no hidden name (the
# kernel sends RELEASE after close(2) returns).
hidden_gone() {
	local deadline=$(($(now_ms) + 10000))
	while [ -n "$(hidden_in "$1")" ]; do
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# ---- B. the temp-file pattern across several kills ---------------------------
mkdir "$M/tmpd" || fail "mkdir tmpd failed"
printf 'v0' >"$M/tmpd/t" || fail "creating tmpd/t failed"
holder_start b "$M/tmpd/t"
rm "$M/tmpd/t" || fail "B: rm of the open file failed"
[ ! -e "$M/tmpd/t" ] || fail "B: tmpd/t still exists after rm"
[ -z "$(ls -A "$M/tmpd")" ] || fail "B: tmpd lists '$(ls -A "$M/tmpd")' after rm"
[ -n "$(hidden_in "$B/tmpd")" ] || fail "B: the store holds no hidden name for the open file"
expect_nlink=$(holder b nlink)
[ "$expect_nlink" = "nlink 0" ] || fail "B: fstat of the removed file says $expect_nlink"
assert_invisible tmpd
for i in 1 2 3; do
	[ "$(holder b write "round$i")" = "wrote 6" ] || fail "B: write before kill $i failed"
	kill_and_recover
	out=$(holder b read)
	[ "$out" = "read round$i" ] || fail "B: after kill $i the fd reads '$out'"
	want=$(printf 'round%s' "$i" | sha256sum | cut -d' ' -f1)
	out=$(holder b sum)
	[ "$out" = "sum $want" ] || fail "B: after kill $i the checksum is '$out', want $want"
	[ "$(holder b nlink)" = "nlink 0" ] || fail "B: after kill $i fstat says $(holder b nlink)"
	[ -z "$(ls -A "$M/tmpd")" ] || fail "B: after kill $i tmpd lists '$(ls -A "$M/tmpd")'"
	assert_invisible tmpd
done
grep -q 'cannot be found again\|cannot be opened again' "$FK_LOG" &&
	fail "B: the keeper lost the removed file: $(grep 'cannot be' "$FK_LOG")"
holder_stop b
hidden_gone "$B/tmpd" || fail "B: the hidden name stays after the last close: $(hidden_in "$B/tmpd")"
rmdir "$M/tmpd" || fail "B: tmpd cannot be removed after the last close"
[ ! -e "$B/tmpd" ] || fail "B: tmpd is still in the store"
log "B ok: a file removed while open kept its data across 3 kills, invisibly"

# ---- C. a file replaced by rename while held ----------------------------------
printf 'old' >"$M/data/r" || fail "writing data/r failed"
holder_start c "$M/data/r" ro
printf 'new' >"$M/data/r.tmp" || fail "writing data/r.tmp failed"
mv "$M/data/r.tmp" "$M/data/r" || fail "C: the atomic save failed"
[ "$(holder c read)" = "read old" ] || fail "C: the held fd does not read the old content"
file_is "$M/data/r" new || fail "C: data/r holds '$FILE_GOT'"
kill_and_recover
out=$(holder c read)
[ "$out" = "read old" ] || fail "C: after the kill the held fd reads '$out'"
file_is "$M/data/r" new || fail "C: after the kill data/r holds '$FILE_GOT'"
assert_invisible data
holder_stop c
hidden_gone "$B/data" || fail "C: the hidden name stays after the last close"
log "C ok: a file replaced by rename kept its old content for its holder"

# ---- D. the daemon dies while the keeper hides a file -----------------------
for when in before after; do
	printf "d-$when" >"$M/data/$when" || fail "writing data/$when failed"
	holder_start "d$when" "$M/data/$when" ro
	crash_arm "$when:rename:$when"
	rm "$M/data/$when" || fail "D: rm failed when the daemon died $when the rename"
	fk_wait EXIT "$DAEMON_BEFORE" 30 >/dev/null || fail "D: the daemon did not die $when the rename"
	fk_wait RECOVERED "" 30 >/dev/null || fail "D: no RECOVERED ($when)"
	[ ! -e "$M/data/$when" ] || fail "D: data/$when still exists ($when)"
	out=$(holder "d$when" read)
	[ "$out" = "read d-$when" ] || fail "D: the held fd reads '$out' ($when)"
	assert_invisible data
	holder_stop "d$when"
	hidden_gone "$B/data" || fail "D: the hidden name stays after the last close ($when)"
	[ ! -e "$B/data/$when" ] || fail "D: data/$when is still in the store ($when)"
done
log "D ok: a death during the hiding rename is settled"

# ---- K. the daemon dies as the keeper removes a hidden name -----------------
# The last close of a removed file: the kernel forgets the file, and the keeper
# asks the daemon to remove its hidden name; the daemon dies before it does. The
# next daemon never heard of the file: the keeper looks the name up before it
# unlinks it, as the kernel would (testfs aborts on an UNLINK of a name whose
# inode it holds no lookup of; fuse-overlayfs frees such a node twice).
printf 'k' >"$M/data/k" || fail "writing data/k failed"
holder_start k "$M/data/k" ro
rm "$M/data/k" || fail "K: rm failed"
[ -n "$(hidden_in "$B/data")" ] || fail "K: no hidden name in the store"
crash_arm "before:unlink:.fusekeeper.*"
holder_stop k
fk_wait EXIT "$DAEMON_BEFORE" 30 >/dev/null || fail "K: the daemon did not die at the removal"
fk_wait RECOVERED "" 30 >/dev/null || fail "K: no RECOVERED"
hidden_gone "$B/data" || fail "K: the hidden name stays: $(hidden_in "$B/data")"
[ "$(fk_count FAILED)" = 0 ] || fail "K: a daemon failed to start: $(grep -a 'testfs:' "$FK_LOG")"
grep -q 'signal=ABRT' "$FK_EVENTS" && fail "K: a daemon aborted: $(grep -a 'testfs:' "$FK_LOG")"
log "K ok: a hidden name whose removal a death cut short is removed by the next daemon"

# ---- F. a listing whose chunks hold only hidden names ---------------------
# 4000 long hidden names (another keeper's, say) and two files: whatever the
# order the store lists them in, runs of hidden names fill whole READDIR
# chunks (at most 32 KiB, 117 such names), often dozens in a row; emptied, one
# would read as the end.
mkdir "$B/many" || fail "mkdir failed"
: >"$B/many/zz-visible"
pad=$(printf '%0200d' 0)
for i in $(seq 1 4000); do
	: >"$B/many/.fusekeeper.$pad.$i"
done
: >"$B/many/aa-visible"
got=$(ls -A "$M/many") || fail "F: listing many failed"
[ "$got" = "aa-visible
zz-visible" ] || fail "F: listing many gives '$(echo "$got" | head -3)...'"
got=$(find "$M/many" -mindepth 1 | wc -l)
[ "$got" = 2 ] || fail "F: find lists $got entries in many"
log "F ok: a listing of hidden names only is not taken for its end"

# ---- G. a rename over a held file that fails changes nothing ---------------
# The source lives on another filesystem inside the store (a tmpfs mounted in
# the backing directory), so the daemon refuses the rename with EXDEV after
# the keeper has hidden the held target; it must get its name back.
mkdir "$B/data/xdev" || fail "mkdir xdev failed"
mount -t tmpfs -o size=1m tmpfs "$B/data/xdev" || fail "cannot mount a tmpfs in the store"
track_mount "$B/data/xdev"
printf 'precious' >"$M/data/target" || fail "writing data/target failed"
printf 'src' >"$M/data/xdev/src" || fail "writing data/xdev/src failed"
holder_start g "$M/data/target" ro
out=$(perl -e 'rename($ARGV[0], $ARGV[1]) ? print "ok\n" : print "$!\n"' \
	"$M/data/xdev/src" "$M/data/target")
[ "$out" = "Invalid cross-device link" ] || fail "G: the cross-device rename gave '$out'"
file_is "$M/data/target" precious || fail "G: after the failed rename target holds '$FILE_GOT'"
file_is "$B/data/target" precious || fail "G: the store's target holds '$FILE_GOT'"
[ -z "$(hidden_in "$B/data")" ] || fail "G: a hidden name stays after the failed rename"
[ "$(holder g read)" = "read precious" ] || fail "G: the held fd does not read"
holder_stop g
file_is "$B/data/target" precious || fail "G: after the last close target holds '$FILE_GOT'"
rm "$M/data/xdev/src" "$M/data/target" || fail "G: rm failed"
# The daemon keeps the directory open (its node table holds O_PATH fds).
umount -l "$B/data/xdev" && rmdir "$B/data/xdev" || fail "G: cannot unmount the tmpfs"
log "G ok: a failed rename over a held file changes nothing"

# ---- H. a held file found by another name when one names another object -----
printf 'held' >"$M/data/h" || fail "writing data/h failed"
ln "$M/data/h" "$M/data/h2" || fail "ln failed"
stat "$M/data/h2" >/dev/null || fail "stat h2 failed"
printf 'other' >"$M/data/x" || fail "writing data/x failed"
holder_start hh "$M/data/h" ro
crash_arm "after:rename:x"
mv "$M/data/x" "$M/data/h" 2>/dev/null
fk_wait EXIT "$DAEMON_BEFORE" 30 >/dev/null || fail "H: the daemon did not die after the rename"
fk_wait RECOVERED "" 30 >/dev/null || fail "H: no RECOVERED"
out=$(holder hh read)
[ "$out" = "read held" ] || fail "H: the held fd reads '$out' though h2 still names its file"
file_is "$M/data/h" other || fail "H: data/h holds '$FILE_GOT'"
holder_stop hh
hidden_gone "$B/data" || fail "H: a hidden name stays after the last close"
file_is "$B/data/h2" held || fail "H: data/h2 holds '$FILE_GOT'"
log "H ok: a held file whose name was replaced is found by its other name"

fk_umount_exit 0
assert_not_mounted "$M"

# ---- E. the keeper itself is killed while it holds a hidden file -------------
start_keeper
mkdir -p "$M/e/sub" || fail "mkdir e/sub failed"
printf 'e' >"$M/e/sub/x" || fail "writing e/sub/x failed"
holder_start e "$M/e/sub/x" ro
rm "$M/e/sub/x" || fail "E: rm failed"
[ -n "$(hidden_in "$B/e/sub")" ] || fail "E: no hidden name in the store"
old_keeper=$FK_PID
log "killing keeper $old_keeper"
kill -KILL "$old_keeper"
wait_pid "$old_keeper" 10 || fail "E: the keeper did not die"
holder_stop e
fuse_abort "$M"
umount -l "$M" || fail "E: cannot unmount the dead mount"
start_keeper
grep -q 'Removed 1 hidden names a killed keeper left behind' "$FK_LOG" ||
	fail "E: the new keeper did not report removing the leftover: $(cat "$FK_LOG")"
[ -z "$(hidden_in "$B/e/sub")" ] || fail "E: the leftover is still in the store: $(hidden_in "$B/e/sub")"
rmdir "$M/e/sub" "$M/e" || fail "E: the directories cannot be removed"
log "E ok: a killed keeper's hidden name is removed at the next start"

fk_umount_exit 0
assert_not_mounted "$M"

# ---- I. the last close races the hiding rename ------------------------------
# Every operation of this daemon takes 300 ms: the close's RELEASE is still in
# the daemon when the rm comes, so its answer comes while the keeper waits for
# its hiding rename; the hidden name must still go. (61-sshfs-kill once left
# one when the removal of the hidden name reached the daemon before the rename
# did; this daemon's uniform delay does not reorder them, so this part checks
# the outcome, not that interleaving.)
fk_start "$M" --state-dir="$S" -- "$TESTFS" --backing="$B" --delay-ms=300 {}
fk_wait READY || fail "I: the keeper never became READY"
for i in 1 2 3; do
	printf 'race' >"$M/data/race$i" || fail "I: writing data/race$i failed"
	holder_start "race$i" "$M/data/race$i" ro
	holder_stop "race$i"
	rm "$M/data/race$i" || fail "I: rm of a file just closed failed"
done
hidden_gone "$B/data" || fail "I: hidden names stay after the close raced the rm: $(hidden_in "$B/data")"
[ -z "$(ls "$B/data" | grep '^race')" ] || fail "I: removed files are still in the store"
log "I ok: a close racing the hiding rename leaves nothing behind"
fk_umount_exit 0
assert_not_mounted "$M"

# ---- J. the last close races the hiding rename, and the daemon dies ----------
# The RELEASE of the close is in the daemon (100 ms an operation) when the
# unlink comes, so the keeper hides the file; its answer comes while the
# daemon is doing the hiding rename, and the daemon dies after the rename,
# before it answers. Create, close and unlink come from one process at once,
# as in fkload's churn: every entry on the way is fresh, so no LOOKUP lets the
# RELEASE finish first (and perl -U unlinks without an lstat first). The entries on
# the way stay fresh for a minute, not testfs's usual second: on a slow machine (a guest
# under TCG) the recovery of round 1 took longer than that, so round 2's unlink looked
# data/ up again, the RELEASE finished meanwhile, and there was nothing to hide.
fk_start "$M" --state-dir="$S" -- "$TESTFS" --backing="$B" --delay-ms=100 \
	--cache-s=60 --crash-file="$T/crash" {}
fk_wait READY || fail "J: the keeper never became READY"
for i in 1 2; do
	crash_arm "after:rename:dies$i"
	out=$(perl -U -e 'open(my $f, ">", $ARGV[0]) or die "open: $!\n"; print $f "race";
		close($f) or die "close: $!\n"; print unlink($ARGV[0]) ? "ok\n" : "$!\n"' \
		"$M/data/dies$i")
	[ "$out" = ok ] || fail "J: unlink of a file just closed, as the daemon died, gave '$out'"
	fk_wait EXIT "$DAEMON_BEFORE" 30 >/dev/null ||
		fail "J: the daemon did not die after the hiding rename"
	fk_wait RECOVERED "" 30 >/dev/null || fail "J: no RECOVERED"
	[ ! -e "$M/data/dies$i" ] || fail "J: data/dies$i still exists"
done
grep -q 'cannot be found again' "$FK_LOG" &&
	fail "J: the keeper lost the file it hid: $(grep 'cannot be' "$FK_LOG")"
hidden_gone "$B/data" || fail "J: hidden names stay: $(hidden_in "$B/data")"
[ -z "$(ls "$B/data" | grep '^dies')" ] || fail "J: removed files are still in the store"
log "J ok: a death while a close raced the hiding rename loses nothing"
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
