#!/bin/bash
# 64-sshfs-removed: files removed while open under sshfs, a libfuse high-level
# daemon that hides such files itself as .fuse_hidden… and deletes them on the
# last RELEASE — and leaves them on the server for good when it is killed in
# between, after which the directory cannot be removed (ENOTEMPTY).
#
# Under the keeper the daemon never sees the unlink of an open file: the
# keeper renames it to a hidden name of its own, which survives the kill.  A
# process creates d/t, removes it and keeps using the fd: across 2 kills of
# sshfs it writes and reads through it (checksums); no .fuse_hidden file ever
# appears for it, no hidden name shows through the mount, and after the last
# close the hidden name is gone from the server.
# A file replaced by rename (an editor's save) while held is kept by a hidden
# hard link of the keeper's, so its holder reads it across the kills too; sshfs
# still sees that rename replace a file it has open and hides it itself (a
# documented limit): one .fuse_hidden file holding the old content may remain.
# Against a throw-away sshd on 127.0.0.1.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-daemons.sh"

need_prog "$FK"
fkd_require sshfs sshfs
need_cmd perl mkfifo sha256sum

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

sshd_start
log "sshd on 127.0.0.1:$SSHD_PORT"

# --exclusive: nothing else changes the server directory (sshfs reports whole
# seconds, so settling a request in flight needs it; see 61-sshfs-kill).
# shellcheck disable=SC2046 # sshfs_cmd prints words meant to be split
fk_start "$M" --max-restarts=100 --exclusive --state-dir="$T/state" -- $(sshfs_cmd "$B")
fk_wait READY >/dev/null || fail "the keeper never became READY"

no_fuse_hidden() {
	local f
	f=$(find "$B" -name '.fuse_hidden*' -printf '%P ')
	[ -z "$f" ] || fail "$1: sshfs hid a removed file itself: $f"
}

hidden_on_server() {
	find "$B/d" -maxdepth 1 -name '.fusekeeper.*' -printf '%f\n'
}

mkdir "$M/d" || fail "mkdir failed"
printf 'v0' >"$M/d/t" || fail "creating d/t failed"
printf 'old' >"$M/d/r" || fail "creating d/r failed"
holder_start t "$M/d/t"
holder_start r "$M/d/r" ro
rm "$M/d/t" || fail "rm of the open file failed"
no_fuse_hidden "after the unlink"
printf 'new' >"$M/d/r.tmp" && mv "$M/d/r.tmp" "$M/d/r" || fail "replacing d/r failed"
[ "$(hidden_on_server | wc -l)" = 2 ] || fail "expected 2 hidden names on the server: $(hidden_on_server)"
sshfs_hidden=$(find "$B" -name '.fuse_hidden*' | wc -l)
[ "$sshfs_hidden" -le 1 ] || fail "sshfs hid $sshfs_hidden files; only the replaced one may be"
[ "$(ls -A "$M/d" | grep -v '^\.fuse_hidden')" = r ] || fail "d lists '$(ls -A "$M/d" | tr '\n' ' ')'"
[ "$(holder t nlink)" = "nlink 0" ] || fail "fstat of the removed file says $(holder t nlink)"

for i in 1 2; do
	[ "$(holder t write "round$i")" = "wrote 6" ] || fail "write before kill $i failed"
	fk_mark
	fk_kill_daemon || fail "could not kill sshfs"
	fk_wait RECOVERED "" 30 >/dev/null || fail "no RECOVERED after kill $i"
	want=$(printf 'round%s' "$i" | sha256sum | cut -d' ' -f1)
	out=$(holder t sum)
	[ "$out" = "sum $want" ] || fail "after kill $i the removed file's checksum is '$out', want $want"
	out=$(holder r read)
	[ "$out" = "read old" ] || fail "after kill $i the replaced file reads '$out'"
	file_is "$M/d/r" new || fail "after kill $i d/r holds '$FILE_GOT'"
	[ "$(ls -A "$M/d" | grep -v '^\.fuse_hidden')" = r ] ||
		fail "after kill $i d lists '$(ls -A "$M/d" | tr '\n' ' ')'"
	[ "$(find "$B" -name '.fuse_hidden*' | wc -l)" -le "$sshfs_hidden" ] ||
		fail "after kill $i sshfs hid more files: $(find "$B" -name '.fuse_hidden*')"
done
grep -q 'cannot be found again\|cannot be opened again' "$FK_LOG" &&
	fail "the keeper lost a removed file: $(grep 'cannot be' "$FK_LOG")"

holder_stop t
holder_stop r
deadline=$(($(now_ms) + 10000))
while [ -n "$(hidden_on_server)" ]; do
	[ "$(now_ms)" -lt "$deadline" ] || fail "hidden names stay after the last close: $(hidden_on_server)"
	sleep 0.05
done
# What sshfs hid itself is the replaced file's old content, left by a killed
# sshfs (the limit above); nothing else.
for f in $(find "$B/d" -name '.fuse_hidden*'); do
	file_is "$f" old || fail "$f holds '$FILE_GOT', not the replaced file's content"
	log "note: $f: the replaced file, hidden by a killed sshfs itself"
	rm -f "$f"
done
rm "$M/d/r" && rmdir "$M/d" || fail "d cannot be removed after the last close"

fk_umount_exit 0
assert_not_mounted "$M"
fkd_wait_ssh_gone 15 || fail "ssh clients of the killed sshfs daemons did not exit"
sshd_stop
assert_all_gone
log "ok"
