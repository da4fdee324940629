#!/bin/bash
# 51-rename-open: the daemon dies right after renaming a file that a process
# holds open into a directory deeper than the one it came from. After the
# restart the file is not under its old name; the keeper must find it under the
# rename's target (whose directory it resolves only later in its walk) so that
# the open file keeps working and the rename is reported done once.
# timeout: 120
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd perl

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

fk_start "$M" --max-restarts=100 -- "$TESTFS" --backing="$B" --crash-file="$T/crash" {}
fk_wait READY || fail "the keeper never became READY"

mkdir -p "$M/a" "$M/b/c/d" || fail "mkdir through the mount failed"
printf 'xdata' >"$M/a/x" || fail "writing $M/a/x failed"

# A process holding a/x open, reading it through that fd on demand.
holder_start h "$M/a/x" ro
[ "$(holder h read)" = "read xdata" ] || fail "the holder could not read before the kill"

fk_mark
old=$(fk_daemon_pid)
printf 'after:rename:x\n' >"$T/crash.tmp" && mv "$T/crash.tmp" "$T/crash"
try_cmd 30 perl -e 'rename($ARGV[0], $ARGV[1]) or die "rename: $!\n"' "$M/a/x" "$M/b/c/d/x" ||
	fail "the rename failed across the crash: $TRY_OUT"
[ ! -e "$T/crash" ] || fail "the daemon did not reach the crash point"
fk_wait EXIT "$old" 30 || fail "no EXIT for daemon $old"
fk_wait RECOVERED "" 30 || fail "no RECOVERED"

out=$(holder h read)
log "holder after the restart: $out"
[ "$out" = "read xdata" ] || fail "the open file does not work after the restart: $out"
grep -q "cannot be found again\|cannot be opened again" "$FK_LOG" &&
	fail "the keeper lost the renamed node or its handle: $(grep 'cannot be' "$FK_LOG")"
[ "$(cat "$M/b/c/d/x")" = xdata ] || fail "b/c/d/x does not hold the data"
[ ! -e "$M/a/x" ] && [ ! -e "$B/a/x" ] || fail "a/x still exists"

holder_stop h
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
