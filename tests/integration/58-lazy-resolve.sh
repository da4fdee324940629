#!/bin/bash
# 58-lazy-resolve: lazy lookup (the default; issue 13): after a restart the keeper looks up only
# what recovery needs (open handles, hidden names, requests to settle, a sample for the decision
# on inode numbers) before serving; every other node the kernel holds is looked up on first use
# or in the background. Each part kills the daemon and then uses the tree at a moment that
# matters:
#
#  A. a tree of 2000 files the kernel holds: after the kill, every file stats and reads its
#     own content through cached dentries, a held fd keeps reading, and the keeper reports the
#     background walk done.
#  B. first use before the background: a deep path is used at once after RECOVERED.
#  C. the per-name fence: a rename of a name whose node is not looked up yet moves that node
#     (the fd held on it reads the same file under its new name), never a node found after
#     the rename by the old name.
#  D. a file replaced in the store while the daemon was dead: its node is another object now,
#     so the cached name gives the new file and the holder of the old one gets ESTALE or its
#     old data, never the new file's data; its removal removes the new file.
#  E. the daemon dies again while the background walk is under way.
#  F. the daemon dies at the lookup of a node left for later (its first use, or the background
#     walk, whichever comes first): the next daemon finds it, and its first use succeeds.
#  G. the same for a request the kernel does not retry (fstatfs() on an O_PATH fd).
#  H. the daemon dies at the lookup an UNLINK's fence makes: the removal waits for the next
#     daemon, which is asked to remove only a name it has looked up; a rename likewise.
#  I. --eager-lookup: every node is looked up before serving, no background walk runs, and
#     the tree reads as before; a file replaced while no daemon ran is lost at the recovery,
#     and its removal through the kernel's cached name removes what the name names now.
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

# ---- B. first use before the background ---------------------------------------------------
mkdir -p "$M/deep/a/b/c" && printf 'deep' >"$M/deep/a/b/c/f" || fail "B: setup failed"
stat "$M/deep/a/b/c/f" >/dev/null || fail "B: stat failed"
kill_and_recover B
[ "$(cat "$M/deep/a/b/c/f")" = deep ] || fail "B: the deep file does not read at once"
log "B ok: a deep path is usable at once after the recovery"

# ---- C. a rename of a name whose node is not looked up yet ---------------------------------
printf 'moved' >"$M/tree/d3/m" || fail "C: writing failed"
holder_start c "$M/tree/d3/m" ro
kill_and_recover C
mv "$M/tree/d3/m" "$M/tree/d3/m2" || fail "C: the rename failed"
[ "$(holder c read)" = "read moved" ] || fail "C: the held fd does not read after the rename"
[ "$(cat "$M/tree/d3/m2")" = moved ] || fail "C: the renamed file reads wrong"
holder_stop c
log "C ok: a rename before resolution moves the node the kernel holds"

# ---- D. a file replaced in the store before its node is looked up again ------------------
# The kernel holds the file's node by a cached dentry; after the kill, before anything uses
# it, another file is put under its name in the store. The name must then read as one of the
# two files (the old one, as a direct mount's cached dentry would give, or the new one, if
# the node was found to be another object and the kernel looked the name up again), never
# fail otherwise.
printf 'old' >"$M/tree/d4/r" || fail "D: writing failed"
stat "$M/tree/d4/r" >/dev/null || fail "D: stat failed"
kill_and_recover D
printf 'new' >"$B/tree/d4/r.tmp" && mv "$B/tree/d4/r.tmp" "$B/tree/d4/r" || fail "D: replacing failed"
got=$(cat "$M/tree/d4/r" 2>&1)
case $got in
old | new) ;;
*) fail "D: the replaced file reads '$got'" ;;
esac
log "D ok: a file replaced before its node was looked up again reads '$got'"
# The same, removed through the mount: its node is found to be another object at the
# removal's fence and lost, and the removal must reach the daemon for the file the name names
# now, looked up (testfs aborts on an UNLINK of a name it holds no lookup of), not fail.
printf 'old' >"$M/tree/d4/r2" || fail "D: writing failed"
stat "$M/tree/d4/r2" >/dev/null || fail "D: stat failed"
kill_and_recover D2
exits=$(fk_count EXIT)
printf 'new' >"$B/tree/d4/r2.tmp" && mv "$B/tree/d4/r2.tmp" "$B/tree/d4/r2" ||
	fail "D: replacing failed"
rm "$M/tree/d4/r2" || fail "D: removing the replaced file failed"
[ ! -e "$B/tree/d4/r2" ] || fail "D: the replaced file is still in the store"
[ "$(fk_count EXIT)" = "$exits" ] || fail "D: the daemon died at the removal"
log "D ok: a file replaced before its node was looked up again is removed as asked"

# ---- E. a death during the background walk -------------------------------------------------
find "$M/tree" -type f >/dev/null
kill_and_recover E1
kill_and_recover E2
bad=0
for d in $(seq 0 19); do
	[ "$(cat "$M/tree/d$d/f42")" = "$d/42" ] || bad=$((bad + 1))
done
[ "$bad" = 0 ] || fail "E: $bad files read wrong after two kills"
log "E ok: a death during the background walk loses nothing"

# ---- F. a death at the lookup of a node left for later -------------------------------------
# A keeper of its own, with no background walk (FUSEKEEPER_TEST_NO_WALK=1): the lookup is the
# first use's.
holder_stop a
fk_umount_exit 0
export FUSEKEEPER_TEST_NO_WALK=1
fk_start "$M" --max-restarts=100 -- "$TESTFS" --backing="$B" --cache-s=600 \
	--crash-file="$T/crash" {}
fk_wait READY || fail "F: the keeper never became READY"
# More nodes first than recovery's sample of 64, so that the directory below is not in it.
find "$M/tree" >/dev/null || fail "F: find failed"
# A process whose working directory is in the mount: the kernel holds that directory by the
# process's cwd alone, so recovery leaves it for later. Its first relative open looks the
# directory up; the daemon dies at that lookup. The open must wait for the next daemon, not
# fail (the kernel does not retry a walk from the cwd on ESTALE).
mkdir -p "$M/tree/d8/sub" && printf 'late' >"$M/tree/d8/sub/f" || fail "F: setup failed"
run_bg cwd python3 -c 'import os, sys, time
os.chdir(sys.argv[1])
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.005)
try:
    print(open("f").read())
except OSError as e:
    print(e.strerror)' "$M/tree/d8/sub" "$T/cwd.ready" "$T/cwd.go"
cwd_pid=$BG_PID
poll 10 test -e "$T/cwd.ready" || fail "F: the cwd holder did not start"
kill_and_recover F1
crash_arm "before:lookup:sub"
: >"$T/cwd.go"
wait_pid "$cwd_pid" 60 || fail "F: the cwd holder did not finish"
got=$(cat "$T/cwd.out")
fk_wait EXIT "$DAEMON_BEFORE" 30 >/dev/null || fail "F: the daemon did not die at the lookup"
fk_wait RECOVERED "" 30 >/dev/null || fail "F: no RECOVERED after the death at the lookup"
[ "$got" = late ] || fail "F: the relative open across the death gave '$got'"
log "F ok: a death at a lazy lookup is one more restart, nothing fails"

# ---- G. the same, for a request the kernel never retries -----------------------------------
# A path walk that meets ESTALE is walked again by the kernel (LOOKUP_REVAL), which would hide
# an ESTALE the keeper gave after the death. fstatfs() on an O_PATH fd is one request, never
# retried: it must wait for the next daemon and succeed.
mkdir -p "$M/tree/d9/sub" || fail "G: setup failed"
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
poll 10 test -e "$T/opath.ready" || fail "G: the O_PATH holder did not start"
kill_and_recover G1
crash_arm "before:lookup:sub"
: >"$T/opath.go"
wait_pid "$opath_pid" 60 || fail "G: the O_PATH holder did not finish"
got=$(cat "$T/opath.out")
fk_wait EXIT "$DAEMON_BEFORE" 30 >/dev/null || fail "G: the daemon did not die at the lookup"
fk_wait RECOVERED "" 30 >/dev/null || fail "G: no RECOVERED after the death at the lookup"
[ "$got" = ok ] || fail "G: fstatfs() across the death at its node's lookup gave '$got'"
log "G ok: a request cut short at its node's lookup waits for the next daemon"

# ---- H. a death at a removal's fence ---------------------------------------------------------
# Files the kernel holds by cached dentries only (no fd: recovery leaves them for later). A
# removal or a rename of one first has its node looked up: testfs aborts on an UNLINK of a
# name it holds no lookup of, as fuse-overlayfs 1.10 would crash on one.
printf 'gone' >"$M/tree/d5/h" && printf 'moved' >"$M/tree/d5/m" || fail "H: writing failed"
stat "$M/tree/d5/h" "$M/tree/d5/m" >/dev/null || fail "H: stat failed"
kill_and_recover H1
exits=$(fk_count EXIT)
crash_arm "before:lookup:h"
rm "$M/tree/d5/h" || fail "H: the removal across the death failed"
fk_wait EXIT "$DAEMON_BEFORE" 30 >/dev/null || fail "H: the daemon did not die at the lookup"
fk_wait RECOVERED "" 30 >/dev/null || fail "H: no RECOVERED after the death at the lookup"
[ ! -e "$B/tree/d5/h" ] || fail "H: the removed file is still in the store"
mv "$M/tree/d5/m" "$M/tree/d5/m2" || fail "H: the rename failed"
[ "$(cat "$M/tree/d5/m2")" = moved ] && [ ! -e "$B/tree/d5/m" ] ||
	fail "H: the renamed file is not where the rename put it"
[ "$(fk_count EXIT)" = $((exits + 1)) ] ||
	fail "H: the daemon died $(($(fk_count EXIT) - exits)) times, not once"
log "H ok: a removal whose fence met a death waits for the next daemon"

[ "$(fk_count FAILED)" = 0 ] || fail "a daemon failed to start"
fk_umount_exit 0
unset FUSEKEEPER_TEST_NO_WALK

# ---- I. --eager-lookup -----------------------------------------------------------------------
fk_start "$M" --eager-lookup --max-restarts=100 -- "$TESTFS" --backing="$B" --cache-s=600 {}
fk_wait READY || fail "I: the keeper never became READY"
find "$M/tree" -type f >/dev/null || fail "I: find failed"
kill_and_recover I
grep -q 'handles lost; 0 nodes left to look up' "$FK_LOG" ||
	fail "I: the recovery left nodes for later: $(grep -a 'Recovered:' "$FK_LOG" | tail -1)"
bad=0
for d in $(seq 0 19); do
	[ "$(cat "$M/tree/d$d/f42")" = "$d/42" ] || bad=$((bad + 1))
done
[ "$bad" = 0 ] || fail "I: $bad files read wrong after the kill"
! grep -q 'Every node the kernel holds is looked up again' "$FK_LOG" ||
	fail "I: a background walk ran under --eager-lookup"
# A file replaced behind the mount is lost at the next recovery; removing it by its cached name
# reaches the daemon for the file the name names now, looked up.
printf 'old' >"$M/tree/d6/r" && stat "$M/tree/d6/r" >/dev/null || fail "I: writing failed"
exits=$(fk_count EXIT)
printf 'new' >"$B/tree/d6/r.tmp" && mv "$B/tree/d6/r.tmp" "$B/tree/d6/r" || fail "I: replacing failed"
kill_and_recover I2
grep -q '"r") now names another object\|("r") cannot be found' "$FK_LOG" ||
	fail "I: the replaced file's node was not lost at the recovery"
rm "$M/tree/d6/r" || fail "I: removing the replaced file failed"
[ ! -e "$B/tree/d6/r" ] || fail "I: the replaced file is still in the store"
[ "$(fk_count EXIT)" = $((exits + 1)) ] || fail "I: the daemon died at the removal"
log "I ok: $(grep -a 'Recovered:' "$FK_LOG" | tail -1)"

[ "$(fk_count FAILED)" = 0 ] || fail "a daemon failed to start"
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
