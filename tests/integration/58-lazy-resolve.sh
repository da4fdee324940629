#!/bin/bash
# 58-lazy-resolve: lazy lookup (the default; issue 13): after a restart the keeper looks up only
# what recovery needs (open handles, hidden names, requests to settle, a sample for the decision
# on inode numbers) before serving; every other node the kernel holds is looked up on first use
# or by a background walk that starts as the recovery ends. Each part kills the daemon and then
# uses the tree at a moment that matters.
#
# With the background walk:
#  A. a tree of 2000 files the kernel holds: after the kill, every file stats and reads its
#     own content through cached dentries, a held fd keeps reading, and the keeper reports the
#     background walk done.
#  B. the daemon dies during the background walk: the next daemon's walk ends, nothing is lost.
#  C. an idle mount: the background walk runs with no request at all, so that a directory that
#     is only a process's cwd is looked up before the store moves it.
# With the first use alone (no background walk, so that nothing is looked up before its use):
#  D. a deep path is used at once after RECOVERED.
#  E. the per-name fence: a rename of a name whose node is not looked up yet moves that node
#     (the fd held on it reads the same file under its new name), never a node found after
#     the rename by the old name.
#  F. a file replaced in the store while the daemon was dead: its node is another object now,
#     so the cached name gives the new file and the holder of the old one gets ESTALE or its
#     old data, never the new file's data; its removal removes the new file.
#  G. the daemon dies at the lookup of a node left for later (a cwd's, at its first use): the
#     next daemon finds it, and its first use succeeds.
#  H. the same for a request the kernel does not retry (fstatfs() on an O_PATH fd).
#  I. the daemon dies at the lookup an UNLINK's fence makes: the removal waits for the next
#     daemon, which is asked to remove only a name it has looked up; a rename likewise.
# With --eager-lookup:
#  J. every node is looked up before serving, no background walk runs, and the tree reads as
#     before; a file replaced while no daemon ran is lost at the recovery, and its removal
#     through the kernel's cached name removes what the name names now.
# timeout: 300
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

fk_start "$M" --max-restarts=100 -- "$TESTFS" --backing="$B" --cache-s=600 \
	--crash-file="$T/crash" {}
fk_wait READY || fail "the keeper never became READY"

kill_and_recover() {
	fk_mark
	fk_kill_daemon || fail "$1: could not kill the daemon"
	fk_wait RECOVERED "" 30 >/dev/null || fail "$1: no RECOVERED after killing the daemon"
}

# How many background walks have ended; walks_after N: more than N.
walks_ended() {
	grep -c 'Every node the kernel holds is looked up again' "$FK_LOG"
}
walks_after() {
	[ "$(walks_ended)" -gt "$1" ]
}

# count_at_least EVENT N: the keeper wrote EVENT N times or more.
count_at_least() {
	[ "$(fk_count "$1")" -ge "$2" ]
}

# tree_reads CASE: f42 of every directory of the tree reads its own content.
tree_reads() {
	local d bad=0

	for d in $(seq 0 19); do
		[ "$(cat "$M/tree/d$d/f42")" = "$d/42" ] || bad=$((bad + 1))
	done
	[ "$bad" = 0 ] || fail "$1: $bad files of the tree read wrong"
}

# replace_in_store CASE PATH: another file, "new", takes the name PATH (under the mount) in
# the store, behind the daemon's back.
replace_in_store() {
	printf 'new' >"$B/$2.tmp" && mv "$B/$2.tmp" "$B/$2" || fail "$1: replacing $2 failed"
}

# cwd_start NAME DIR: a process whose working directory is DIR, in the mount: once
# $T/NAME.go exists it prints what the file f there (opened relative to its cwd) holds, or the
# error, to $T/NAME.out. Its pid is in BG_PID.
cwd_start() {
	run_bg "$1" python3 -c 'import os, sys, time
os.chdir(sys.argv[1])
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.005)
try:
    print(open("f").read())
except OSError as e:
    print(e.strerror)' "$2" "$T/$1.ready" "$T/$1.go"
	poll 10 test -e "$T/$1.ready" || fail "$1: the cwd holder did not start"
}

# remove_replaced CASE PATH EXITS: removing PATH through the mount removes the file the name
# names now, and the daemon has exited EXITS times in all (testfs aborts on an UNLINK of a name
# it holds no lookup of, as fuse-overlayfs 1.10 would crash on one).
remove_replaced() {
	rm "$M/$2" || fail "$1: removing the replaced $2 failed"
	[ ! -e "$B/$2" ] || fail "$1: the replaced $2 is still in the store"
	[ "$(fk_count EXIT)" = "$3" ] || fail "$1: the daemon died at the removal"
}

# ---- A. a tree the kernel holds ----------------------------------------------------------
mkdir -p "$B/tree"
for d in $(seq 0 19); do
	mkdir "$B/tree/d$d"
	for f in $(seq 0 99); do
		printf '%s/%s' "$d" "$f" >"$B/tree/d$d/f$f"
	done
done
# Every file looked up once: the kernel holds 2000 nodes (and --cache-s keeps the dentries).
find "$M/tree" -type f | wc -l | grep -qx 2000 || fail "A: the tree does not list 2000 files"
holder_start a "$M/tree/d7/f7" ro
kill_and_recover A
[ "$(holder a read)" = "read 7/7" ] || fail "A: the held fd does not read after the kill"
bad=0
for d in $(seq 0 19); do
	for f in 0 13 50 99; do
		[ "$(cat "$M/tree/d$d/f$f")" = "$d/$f" ] || bad=$((bad + 1))
	done
done
[ "$bad" = 0 ] || fail "A: $bad files read wrong after the kill"
poll 30 grep -q 'Every node the kernel holds is looked up again' "$FK_LOG" ||
	fail "A: the background walk did not end"
log "A: $(grep -a 'Recovered:\|Every node' "$FK_LOG" | tail -2)"
log "A ok: 2000 cached nodes found again lazily"

# ---- B. a death during the background walk -------------------------------------------------
# The walk the recovery starts at once dies at its lookup of d13; the next daemon's walk looks
# the whole tree up again. A process whose cwd is d13 keeps the kernel holding that directory
# (it may forget any node nothing holds), and the recovery itself does not look it up.
printf 'pinned' >"$M/tree/d13/f" || fail "B: writing failed"
find "$M/tree" -type f >/dev/null
cwd_start pin "$M/tree/d13"
pin_pid=$BG_PID
recovered=$(fk_count RECOVERED)
walks=$(walks_ended)
crash_arm "before:lookup:d13"
kill_and_recover B
poll 30 count_at_least RECOVERED $((recovered + 2)) ||
	fail "B: the daemon did not die during the background walk, or did not come back"
poll 30 walks_after "$walks" || fail "B: the background walk did not end after the death"
: >"$T/pin.go"
wait_pid "$pin_pid" 30 || fail "B: the cwd holder did not finish"
# Relative to its cwd: the kernel does not walk the path again on ESTALE.
[ "$(cat "$T/pin.out")" = pinned ] ||
	fail "B: the process in d13 read '$(cat "$T/pin.out")' after the death during the walk"
[ "$(fk_status_field 's["last_recovery"]["nodes_lost"]')" = 0 ] ||
	fail "B: nodes were lost: $(grep -a 'cannot be found again' "$FK_LOG")"
tree_reads B
log "B ok: a death during the background walk loses nothing"

# ---- C. an idle mount ----------------------------------------------------------------------
# A process whose working directory is deep in the mount, and nothing else using the mount:
# the background walk must start when the recovery ends, not with the next request, so that
# the directory is looked up while the store is as the dead daemon left it. The store then
# moves it: the process goes on in it, as under a daemon that never died.
mkdir -p "$M/idle/a/b" && printf 'idle' >"$M/idle/a/b/f" || fail "C: setup failed"
cwd_start idle "$M/idle/a/b"
idle_pid=$BG_PID
walks=$(walks_ended)
kill_and_recover C
# No request reaches the mount until the walk has ended.
poll 30 walks_after "$walks" || fail "C: the background walk did not run on the idle mount"
mv "$B/idle" "$B/idle-moved" || fail "C: moving the directory in the store failed"
: >"$T/idle.go"
wait_pid "$idle_pid" 30 || fail "C: the cwd holder did not finish"
got=$(cat "$T/idle.out")
[ "$got" = idle ] || fail "C: the idle process's relative open gave '$got'"
[ "$(fk_status_field 's["tracked"]["nodes_pending"]')" = 0 ] ||
	fail "C: status counts nodes still to look up after the walk ended"
# The counts are this recovery's: nothing was lost, and what was restored is no more than all.
walk_line=$(grep -a 'Every node the kernel holds is looked up again' "$FK_LOG" | tail -1)
[[ $walk_line == *", 0 of them lost"* ]] || fail "C: the walk's end says: $walk_line"
fk_status_field '0 <= s["last_recovery"]["nodes_restored"] <= s["tracked"]["nodes"]' |
	grep -qx True || fail "C: status counts nodes restored out of range"
log "C ok: the background walk runs at once on an idle mount"

# ---- The first use alone ---------------------------------------------------------------------
# A keeper of its own, with no background walk (FUSEKEEPER_TEST_NO_WALK=1): every lookup after
# a recovery is a first use's.
holder_stop a
fk_umount_exit 0
export FUSEKEEPER_TEST_NO_WALK=1
fk_start "$M" --max-restarts=100 -- "$TESTFS" --backing="$B" --cache-s=600 \
	--crash-file="$T/crash" {}
fk_wait READY || fail "the keeper with no walk never became READY"
# More nodes first than the first recovery's sample of 64, so that what the cases below use is
# not in it.
find "$M/tree" >/dev/null || fail "find failed"

# ---- D. a deep path at once ----------------------------------------------------------------
mkdir -p "$M/deep/a/b/c" && printf 'deep' >"$M/deep/a/b/c/f" || fail "D: setup failed"
stat "$M/deep/a/b/c/f" >/dev/null || fail "D: stat failed"
kill_and_recover D
# With no walk, the nodes left wait for their first use, and status counts them.
pending=$(fk_status_field 's["tracked"]["nodes_pending"]') || fail "D: status failed"
[ "$pending" -gt 0 ] || fail "D: status counts $pending nodes still to look up, not more than 0"
status_out=$("$FK" status "$M") || fail "D: status failed"
[[ $status_out == *"nodes ($pending still to look up again)"* ]] ||
	fail "D: status does not show the $pending nodes still to look up: $status_out"
[ "$(cat "$M/deep/a/b/c/f")" = deep ] || fail "D: the deep file does not read at once"
log "D ok: a deep path is usable at once after the recovery"

# ---- E. a rename of a name whose node is not looked up yet ---------------------------------
printf 'moved' >"$M/tree/d3/m" || fail "E: writing failed"
holder_start c "$M/tree/d3/m" ro
kill_and_recover E
mv "$M/tree/d3/m" "$M/tree/d3/m2" || fail "E: the rename failed"
[ "$(holder c read)" = "read moved" ] || fail "E: the held fd does not read after the rename"
[ "$(cat "$M/tree/d3/m2")" = moved ] || fail "E: the renamed file reads wrong"
holder_stop c
log "E ok: a rename before resolution moves the node the kernel holds"

# ---- F. a file replaced in the store before its node is looked up again ------------------
# The kernel holds the file's node by a cached dentry; after the kill, before anything uses
# it, another file is put under its name in the store. The name must then read as one of the
# two files (the old one, as a direct mount's cached dentry would give, or the new one, if
# the node was found to be another object and the kernel looked the name up again), never
# fail otherwise.
printf 'old' >"$M/tree/d4/r" || fail "F: writing failed"
stat "$M/tree/d4/r" >/dev/null || fail "F: stat failed"
kill_and_recover F
replace_in_store F tree/d4/r
got=$(cat "$M/tree/d4/r" 2>&1)
case $got in
old | new) ;;
*) fail "F: the replaced file reads '$got'" ;;
esac
log "F ok: a file replaced before its node was looked up again reads '$got'"
# The same, removed through the mount: its node is found to be another object at the
# removal's fence and lost, and the removal must reach the daemon for the file the name names
# now, looked up (testfs aborts on an UNLINK of a name it holds no lookup of), not fail.
printf 'old' >"$M/tree/d4/r2" || fail "F: writing failed"
stat "$M/tree/d4/r2" >/dev/null || fail "F: stat failed"
kill_and_recover F2
exits=$(fk_count EXIT)
replace_in_store F tree/d4/r2
remove_replaced F tree/d4/r2 "$exits"
# The node lost at the removal's fence, after the recovery, counts as lost in status.
lost=$(fk_status_field 's["last_recovery"]["nodes_lost"]') || fail "F: status failed"
[ "$lost" -ge 1 ] || fail "F: status counts $lost nodes lost at the last recovery, not 1"
log "F ok: a file replaced before its node was looked up again is removed as asked"

# ---- G. a death at the lookup of a node left for later -------------------------------------
# A process whose working directory is in the mount: the kernel holds that directory by the
# process's cwd alone, so recovery leaves it for later. Its first relative open looks the
# directory up; the daemon dies at that lookup. The open must wait for the next daemon, not
# fail (the kernel does not retry a walk from the cwd on ESTALE).
mkdir -p "$M/tree/d8/sub" && printf 'late' >"$M/tree/d8/sub/f" || fail "G: setup failed"
cwd_start cwd "$M/tree/d8/sub"
cwd_pid=$BG_PID
kill_and_recover G1
crash_arm "before:lookup:sub"
: >"$T/cwd.go"
wait_pid "$cwd_pid" 60 || fail "G: the cwd holder did not finish"
got=$(cat "$T/cwd.out")
fk_wait EXIT "$DAEMON_BEFORE" 30 >/dev/null || fail "G: the daemon did not die at the lookup"
fk_wait RECOVERED "" 30 >/dev/null || fail "G: no RECOVERED after the death at the lookup"
[ "$got" = late ] || fail "G: the relative open across the death gave '$got'"
log "G ok: a death at a lazy lookup is one more restart, nothing fails"

# ---- H. the same, for a request the kernel never retries -----------------------------------
# A path walk that meets ESTALE is walked again by the kernel (LOOKUP_REVAL), which would hide
# an ESTALE the keeper gave after the death. fstatfs() on an O_PATH fd is one request, never
# retried: it must wait for the next daemon and succeed.
mkdir -p "$M/tree/d9/sub" || fail "H: setup failed"
run_bg opath python3 -c 'import os, sys, time
fd = os.open(sys.argv[1], os.O_PATH)
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.005)
try:
    os.fstatvfs(fd)
    print("ok")
except OSError as e:
    print(e.strerror)' "$M/tree/d9/sub" "$T/opath.ready" "$T/opath.go"
opath_pid=$BG_PID
poll 10 test -e "$T/opath.ready" || fail "H: the O_PATH holder did not start"
kill_and_recover H1
crash_arm "before:lookup:sub"
: >"$T/opath.go"
wait_pid "$opath_pid" 60 || fail "H: the O_PATH holder did not finish"
got=$(cat "$T/opath.out")
fk_wait EXIT "$DAEMON_BEFORE" 30 >/dev/null || fail "H: the daemon did not die at the lookup"
fk_wait RECOVERED "" 30 >/dev/null || fail "H: no RECOVERED after the death at the lookup"
[ "$got" = ok ] || fail "H: fstatfs() across the death at its node's lookup gave '$got'"
log "H ok: a request cut short at its node's lookup waits for the next daemon"

# ---- I. a death at a removal's fence ---------------------------------------------------------
# Files the kernel holds by cached dentries only (no fd: recovery leaves them for later). A
# removal or a rename of one first has its node looked up: testfs aborts on an UNLINK of a
# name it holds no lookup of, as fuse-overlayfs 1.10 would crash on one.
printf 'gone' >"$M/tree/d5/h" && printf 'moved' >"$M/tree/d5/m" || fail "I: writing failed"
stat "$M/tree/d5/h" "$M/tree/d5/m" >/dev/null || fail "I: stat failed"
kill_and_recover I1
exits=$(fk_count EXIT)
crash_arm "before:lookup:h"
rm "$M/tree/d5/h" || fail "I: the removal across the death failed"
fk_wait EXIT "$DAEMON_BEFORE" 30 >/dev/null || fail "I: the daemon did not die at the lookup"
fk_wait RECOVERED "" 30 >/dev/null || fail "I: no RECOVERED after the death at the lookup"
[ ! -e "$B/tree/d5/h" ] || fail "I: the removed file is still in the store"
mv "$M/tree/d5/m" "$M/tree/d5/m2" || fail "I: the rename failed"
[ "$(cat "$M/tree/d5/m2")" = moved ] && [ ! -e "$B/tree/d5/m" ] ||
	fail "I: the renamed file is not where the rename put it"
[ "$(fk_count EXIT)" = $((exits + 1)) ] ||
	fail "I: the daemon died $(($(fk_count EXIT) - exits)) times, not once"
log "I ok: a removal whose fence met a death waits for the next daemon"

[ "$(fk_count FAILED)" = 0 ] || fail "a daemon failed to start"
fk_umount_exit 0
unset FUSEKEEPER_TEST_NO_WALK

# ---- J. --eager-lookup -----------------------------------------------------------------------
fk_start "$M" --eager-lookup --max-restarts=100 -- "$TESTFS" --backing="$B" --cache-s=600 {}
fk_wait READY || fail "J: the keeper never became READY"
find "$M/tree" -type f >/dev/null || fail "J: find failed"
kill_and_recover J
grep -q 'handles lost; 0 nodes left to look up' "$FK_LOG" ||
	fail "J: the recovery left nodes for later: $(grep -a 'Recovered:' "$FK_LOG" | tail -1)"
tree_reads J
! grep -q 'Every node the kernel holds is looked up again' "$FK_LOG" ||
	fail "J: a background walk ran under --eager-lookup"
# A file replaced behind the mount is lost at the next recovery; removing it by its cached name
# reaches the daemon for the file the name names now, looked up.
printf 'old' >"$M/tree/d6/r" && stat "$M/tree/d6/r" >/dev/null || fail "J: writing failed"
exits=$(fk_count EXIT)
replace_in_store J tree/d6/r
kill_and_recover J2
grep -q '/r now names another object\|/r cannot be found' "$FK_LOG" ||
	fail "J: the replaced file's node was not lost at the recovery"
remove_replaced J tree/d6/r $((exits + 1))
log "J ok: $(grep -a 'Recovered:' "$FK_LOG" | tail -1)"

[ "$(fk_count FAILED)" = 0 ] || fail "a daemon failed to start"
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
