#!/bin/bash
# 61-sshfs-kill: sshfs under the keeper, against a throw-away sshd on
# 127.0.0.1, SIGKILLed five times under load.
#
# Running throughout, each in its own subdirectory of the mount:
#   fd       fkload fd: one fd kept open, pwrite/pread against a shadow copy;
#   cwd      fkload cwd: cwd inside the mount, relative paths only;
#   churn    fkload churn: create/rename/unlink/readdir in 3 threads;
#   ns       a mount namespace with a bind mount of MNT/ns, reading a file of
#            known checksum after every kill.
# After each kill and RECOVERED every workload must make progress and the
# namespace must read the same checksum; at the end every workload must report
# errors=0, the backing directory (what the sshd side sees) must hold what the
# mount shows, and umount must leave no keeper, sshfs, ssh or mount behind.
# No .fuse_hidden file may be left: the keeper keeps files removed while open
# under hidden names of its own, and removes them after the last close.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-daemons.sh"

need_prog "$FK"
need_prog "$FKLOAD"
fkd_require sshfs sshfs
fkd_require unshare util-linux
need_cmd sha256sum

ROUNDS=5
M=$T/mnt
B=$T/back
mkdir "$M" "$B" "$T/nsview"

sshd_start
log "sshd on 127.0.0.1:$SSHD_PORT"

# workaround=fstat: sshfs answers fstat() by the file's path instead of its
# SFTP handle and, because of that, tells libfuse it needs paths for handle
# operations (nullpath_ok off).  libfuse then path-locks RELEASE as it does
# UNLINK and RENAME.  That closes a race of libfuse 3.14's own (its issue #746,
# fixed for unlink in 3.15; rename onto the file still has it): the kernel
# sends RELEASE after close() returns, so churn can remove a file it has just
# closed while the daemon still counts it open; the daemon then renames it to
# .fuse_hidden... and, if the RELEASE ends during that rename, never deletes
# it.  sshfs mounted without the keeper and never killed leaves such files
# too.  (hard_remove would avoid hiding altogether, but libfuse 3.14 has no
# such option, and sshfs never sets it.)
# --exclusive: nothing but this mount changes the server directory, and the
# test says so.  sshfs reports whole-second times, so without it the keeper
# cannot prove by the clock that a create, removal or rename the dead daemon
# had done was its own, and answers EIO (docs/design.md; 52-settle-proof tests
# those rules, with a store whose clock can tell).
# shellcheck disable=SC2046 # sshfs_cmd prints words meant to be split
fk_start "$M" --max-restarts=100 --exclusive -- $(sshfs_cmd "$B") -o workaround=fstat
fk_wait READY || fail "the keeper never became READY"

mkdir "$M/fd" "$M/cwd" "$M/churn" "$M/ns" || fail "mkdir through the mount failed"
head -c 300000 /dev/urandom >"$T/ns-data.ref"
cp "$T/ns-data.ref" "$M/ns/data" || fail "writing the namespace file through the mount failed"
want=$(sha256sum <"$T/ns-data.ref" | cut -d' ' -f1)
[ "$(sha256sum <"$B/ns/data" | cut -d' ' -f1)" = "$want" ] ||
	fail "the file written through sshfs differs on the server side"

declare -A load_pid
for w in fd cwd churn; do
	opts=()
	[ "$w" = churn ] && opts=(--threads=3)
	run_bg "load-$w" "$FKLOAD" "$w" "$M/$w" --progress="$T/$w.prog" --seed=$RANDOM "${opts[@]}"
	load_pid[$w]=$BG_PID
done

# The namespace: $M/ns bind-mounted on $T/nsview, visible only in there.
# shellcheck disable=SC2016 # the script runs in the namespace
ns_start sshfs '
	mount --bind "$1" "$2" || exit 1
	echo ready
	while read -r req; do
		[ "$req" = quit ] && exit 0
		if sum=$(sha256sum <"$2/data" 2>&1); then
			echo "$req ${sum%% *}"
		else
			echo "$req ERROR ${sum//$'\''\n'\''/ }"
		fi
	done' "$M/ns" "$T/nsview"
mountpoint -q "$T/nsview" && fail "the namespace's bind mount leaked into the test's namespace"

sum=$(ns_query sshfs 0) || fail "the namespace reader did not answer"
[ "$sum" = "$want" ] || fail "namespace read before any kill: got '$sum', expected $want"

for round in $(seq "$ROUNDS"); do
	for w in fd cwd churn; do
		wait_progress "$T/$w.prog" 10 60 "${load_pid[$w]}" ||
			fail "round $round: the $w workload made no progress"
	done
	fk_kill_daemon || fail "round $round: killing the daemon failed"
	fk_wait RECOVERED "" 30 || fail "round $round: no RECOVERED after killing sshfs $FK_KILLED"
	log "round $round: sshfs $FK_KILLED killed, $FK_LINE"
	sum=$(ns_query sshfs "$round") || fail "round $round: the namespace reader did not answer"
	[ "$sum" = "$want" ] || fail "round $round: namespace read '$sum', expected $want"
done

for w in fd cwd churn; do
	wait_progress "$T/$w.prog" 10 60 "${load_pid[$w]}" ||
		fail "after the last kill: the $w workload made no progress"
done

fkload_stop fd cwd churn

# The server side must hold what the mount shows and the workloads expect.
[ "$(ls -A "$B" | sort | tr '\n' ' ')" = "churn cwd fd ns " ] ||
	fail "unexpected entries in the backing dir: $(ls -A "$B" | tr '\n' ' ')"
cmp "$B/fd/fd-file" "$M/fd/fd-file" || fail "fd-file differs between the backing dir and the mount"
# cwd removes files it still holds open (unlink, then close).  sshfs would
# rename such a file to .fuse_hidden<node><counter> and delete it on the last
# RELEASE, and a daemon killed in between would leave it on the server for
# good.  Under the keeper the daemon never sees such a removal: the keeper
# renames the file to a hidden name of its own, which it removes after the
# kernel's last RELEASE (sent after close() returns: wait for it).
deadline=$(($(now_ms) + 10000))
while [ -n "$(find "$B" -name '.fusekeeper.*' -print -quit)" ]; do
	[ "$(now_ms)" -lt "$deadline" ] ||
		fail "hidden names stay after the last close: $(find "$B" -name '.fusekeeper.*')"
	sleep 0.05
done
hidden=$(find "$B" -name '.fuse_hidden*' -printf '%P ')
[ -z "$hidden" ] || fail "sshfs hid files removed while open itself: $hidden"
left=$(find "$B/cwd" -mindepth 1 -maxdepth 1 -printf '%f ')
[ -z "$left" ] || fail "the cwd workload left entries behind: $left"
diff -r "$B/churn" "$M/churn" || fail "the churn directory differs between the backing dir and the mount"
[ "$(sha256sum <"$B/ns/data" | cut -d' ' -f1)" = "$want" ] || fail "the namespace file changed in the backing dir"

# Leave the namespace before unmounting: it holds a copy of the mount.
ns_stop sshfs || fail "the namespace reader failed: $(cat "$T/ns-sshfs/err")"

fk_clean_rounds "$ROUNDS"

fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "no STOPPED event"
assert_not_mounted "$M"
# sshfs starts ssh through a double fork: nobody but init reaps it.
fkd_wait_ssh_gone 15 || fail "ssh clients of the killed sshfs daemons did not exit"
sshd_stop
assert_all_gone
log "ok"
