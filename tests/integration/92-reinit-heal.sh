#!/bin/bash
# 92-reinit-heal: after FUSE_REINIT_BEGIN, inodes of the replaced daemon are found again by
# name (kernel/patches/0009) and keep working where only the inode was held: a working
# directory, a bind mount of a directory below the root, a cached dentry. Checked in the 6.1
# guest's patched fuse.ko; elsewhere skipped after checking that the probe answers ENOTTY.
#
# testfs's node IDs are pointers of its own process, so an old ID that reached a new testfs
# would make it abort: every check after a take-over also shows that none did. testfs keeps
# inode numbers (the backing files'), so a heal also checks the number.
#  1. through a bind mount of d (mounted on the old daemon), d/e/k reads byte-exact, and
#     the bind mount is still there;
#  2. a process whose working directory is d/e (never revalidated by the VFS) lists and
#     reads it;
#  3. st_ino of d and d/e is unchanged;
#  4. a working directory whose name went away while no daemon ran gets ESTALE, never
#     another directory's entries; its old path gives ENOENT, its new one works;
#  5. one whose name now holds another directory gets ESTALE, while the path reaches the
#     new directory;
#  6. a cached file whose name now holds a directory: the path reaches the directory;
#  7. all of it again after a second take-over, healing inodes already healed once;
#  8. with testfs --ino-nodeid, which numbers inodes by node ID as libfuse's high-level API
#     does, so that the numbers change with every run: 1.-3. and 6. still hold, st_ino
#     included (the kernel keeps the number it had given).
# timeout: 180
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-reinit.sh"
reinit_need
need_cmd sha256sum
cwd_e_PID='' cwd_gone_PID='' cwd_swap_PID=''

B=$T/back
mkdir -p "$B/d/e" "$B/gone" "$B/swap"
head -c 100000 /dev/urandom >"$B/d/e/k"
echo one >"$B/gone/g1"
echo old >"$B/swap/s1"
echo file >"$B/typ"
want=$(sha256sum <"$B/d/e/k" | cut -d' ' -f1)

# takeover GEN: kill the daemon, BEGIN, a testfs on a new clone, WAIT accepted.
takeover() {
	expect kill "^killed $DAEMON\$"
	expect begin "^ok gen $1\$"
	expect start '^started [0-9]+$'
	DAEMON=${ANSWER#started }
	expect "wait 60" "^ok gen $1\$"
}

# sleeper NAME DIR: a process whose working directory is DIR; its pid goes to NAME_PID.
sleeper() {
	local deadline=$(($(now_ms) + 20000))
	# shellcheck disable=SC2016 # $1 is the inner shell's
	run_bg "$1" sh -c 'cd "$1" && exec sleep 600' sh "$2"
	printf -v "${1}_PID" %s "$BG_PID"
	until [ "$(readlink "/proc/$BG_PID/cwd")" = "$2" ]; do
		[ "$(now_ms)" -lt "$deadline" ] || fail "$1 did not enter $2"
		sleep 0.05
	done
}

# check_live GEN: the bind mount and the working directory in d/e work.
check_live() {
	local sum
	mounted "$T/bind" || fail "gen $1: the bind mount of d is gone"
	sum=$(sha256sum <"$T/bind/e/k" | cut -d' ' -f1) ||
		fail "gen $1: reading e/k through the bind mount of d failed"
	[ "$sum" = "$want" ] || fail "gen $1: e/k reads other data through the bind mount"
	[ "$(ls "/proc/$cwd_e_PID/cwd/")" = k ] ||
		fail "gen $1: listing the working directory d/e gives '$(ls "/proc/$cwd_e_PID/cwd/" 2>&1)'"
	sum=$(sha256sum <"/proc/$cwd_e_PID/cwd/k" | cut -d' ' -f1) ||
		fail "gen $1: reading k in the working directory d/e failed"
	[ "$sum" = "$want" ] || fail "gen $1: k reads other data in the working directory"
	[ "$(stat -c %i "$M/d")" = "$ino_d" ] && [ "$(stat -c %i "$T/bind")" = "$ino_d" ] ||
		fail "gen $1: st_ino of d changed: $ino_d, now $(stat -c %i "$M/d") $(stat -c %i "$T/bind")"
	[ "$(stat -c %i "/proc/$cwd_e_PID/cwd/")" = "$ino_e" ] ||
		fail "gen $1: st_ino of d/e changed: $ino_e, now $(stat -c %i "/proc/$cwd_e_PID/cwd/")"
	alive "$DAEMON" || fail "gen $1: the new testfs died (an old ID reached it?): $(cat "$M.err")"
}

# stale DIR: listing DIR must fail with ESTALE.
stale() {
	local out
	if out=$(ls "$1/" 2>&1); then
		fail "listing $1 should fail with ESTALE, it gave: $out"
	fi
	[[ $out == *"Stale file handle"* ]] || fail "listing $1: want ESTALE, got: $out"
}

serve a
ino_d=$(stat -c %i "$M/d")
ino_e=$(stat -c %i "$M/d/e")
mkdir "$T/bind"
mount --bind "$M/d" "$T/bind"
track_mount "$T/bind"
sleeper cwd_e "$M/d/e"
sleeper cwd_gone "$M/gone"
sleeper cwd_swap "$M/swap"
[ "$(cat "$M/typ")" = file ] || fail "typ does not read 'file'"
check_live 1

# While no daemon runs, the store changes under three names.
expect kill "^killed $DAEMON\$"
mv "$B/gone" "$B/gone2"
mkdir "$B/swap.new"
echo new >"$B/swap.new/s2"
mv "$B/swap" "$B/swap.old"
mv "$B/swap.new" "$B/swap"
rm "$B/typ"
mkdir "$B/typ"
expect begin '^ok gen 2$'
expect start '^started [0-9]+$'
DAEMON=${ANSWER#started }
expect "wait 60" '^ok gen 2$'

# --- 1.-3.
check_live 2

# --- 4.
stale "/proc/$cwd_gone_PID/cwd"
out=$(stat -c %F "$M/gone" 2>&1) && fail "gone still resolves after it was renamed: $out"
[[ $out == *"No such file or directory"* ]] || fail "stat gone: want ENOENT, got: $out"
[ "$(cat "$M/gone2/g1")" = one ] || fail "gone2/g1 does not read 'one'"

# --- 5.
stale "/proc/$cwd_swap_PID/cwd"
[ "$(ls "$M/swap")" = s2 ] || fail "swap lists '$(ls "$M/swap" 2>&1)', want the new directory's s2"

# --- 6.
[ "$(stat -c %F "$M/typ")" = directory ] || fail "typ: want the new directory, got $(stat -c %F "$M/typ" 2>&1)"

# --- 7.
takeover 3
check_live 3
stale "/proc/$cwd_swap_PID/cwd"

# stop PID...: ends the sleepers PID...
stop() {
	local p
	kill "$@"
	for p; do
		wait_pid "$p" || fail "sleeper $p did not end"
	done
}

stop "$cwd_e_PID" "$cwd_gone_PID" "$cwd_swap_PID"
umount "$T/bind"
quit a
assert_not_mounted "$T/a"

# --- 8.
rmdir "$B/typ"
echo file >"$B/typ"
# shellcheck disable=SC2034 # read by serve (lib-reinit.sh)
TESTFS_EXTRA=(--ino-nodeid)
serve b
ino_d=$(stat -c %i "$M/d")
ino_e=$(stat -c %i "$M/d/e")
mount --bind "$M/d" "$T/bind"
sleeper cwd_e "$M/d/e"
[ "$(cat "$M/typ")" = file ] || fail "typ does not read 'file'"
check_live 1
takeover 2
check_live 2
[ "$(stat -c %i "$M/d/e")" = "$ino_e" ] || fail "st_ino of d/e by its path changed under --ino-nodeid"
rm "$B/typ"
mkdir "$B/typ"
takeover 3
check_live 3
[ "$(stat -c %F "$M/typ")" = directory ] || fail "typ: want the new directory, got $(stat -c %F "$M/typ" 2>&1)"
stop "$cwd_e_PID"
umount "$T/bind"
quit b
assert_not_mounted "$T/b"
log "ok"
