#!/bin/bash
# 28-reexec: `fusekeeper reexec` replaces the keeper with the binary on disk, keeping the
# mount, the daemon and every table, without failing a call.
#
# Part 1: the keeper runs from a copy of the binary. testfs serves three fkload workloads (a
# held fd read and written, a cwd inside the mount, churn of create/rename/unlink/readdir) and
# a reader in another mount namespace reading through a bind mount. Two re-execs, the second
# after the binary was replaced the way a package upgrade does (a new file renamed over it):
# each reports REEXECUTED, the keeper keeps its pid and now runs the new file, the daemon keeps
# its pid and is never restarted; at the end every workload reports errors=0, the namespace
# reader saw the same checksum, the backing directory holds what the mount shows, and status
# counts 2 re-execs.
# Part 2: a request the daemon holds past the drain (testfs delays every operation by 5 s) is
# handed to the new keeper in flight: the daemon answers it there and the mkdir succeeds.
# Part 2b: the daemon is killed while a re-exec waits for it to answer what it holds: the
# re-exec is refused and the death recovered as a crash (the mkdir it held succeeds). Part 2c:
# the daemon is killed right after a re-exec that handed a mkdir over in flight: the new keeper
# recovers it (the mkdir succeeds).
# Part 3: a re-exec the binary on disk cannot do is refused and the keeper serves on: a file
# that is not fusekeeper, one that reads another state image format, one that refuses the
# keeper's command line.
# Part 4: the daemon's own command line (takeover): after a re-exec a held fd reads on, and a
# planned restart of the daemon still works (the new keeper takes the new daemon's mount call
# over). Part 4b: a keeper started through a symbolic link executes what the link names now.
# Part 5: another mode refuses with a message (remount mode, where the kernel has it).
# timeout: 420
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_prog "$FKLOAD"
need_cmd unshare sha256sum python3 stat

# The keeper runs from a binary of the test's own, which the test replaces.
mkdir "$T/bin"
cp "$FK" "$T/bin/fusekeeper"
FK=$T/bin/fusekeeper

# reexec_once: one re-exec, checked: same keeper pid, same daemon, REEXECUTED.
reexec_once() {
	local daemon count
	daemon=$(fk_daemon_pid) || fail "no daemon"
	count=$(fk_count REEXECUTED)
	try_cmd 60 "$FK" reexec "$M" || fail "fusekeeper reexec failed: $TRY_OUT"
	log "reexec: $TRY_OUT"
	[[ $TRY_OUT =~ ^Replaced\ the\ keeper\ of\ $M\ in\ [0-9]+\ ms:\ fusekeeper\ [^\ ]+\ serves,\ daemon\ $daemon\ serves\ on$ ]] ||
		fail "unexpected output of fusekeeper reexec: $TRY_OUT"
	[ "$(fk_count REEXECUTED)" = $((count + 1)) ] || fail "no REEXECUTED event"
	alive "$FK_PID" || fail "the keeper is gone"
	[ "$(fk_daemon_pid)" = "$daemon" ] || fail "a new daemon was started"
	alive "$daemon" || fail "daemon $daemon is gone"
	return 0
}

# ---- part 1 -----------------------------------------------------------------------------
M=$T/mnt
B=$T/back
mkdir "$M" "$B"
fk_start "$M" -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"

usual_load_start
# Every fd a keeper opens is close-on-exec or handed over: none may pile up across re-execs.
fds_before=$(ls "/proc/$FK_PID/fd" | wc -l)
for round in 1 2; do
	if [ "$round" = 2 ]; then
		# As dpkg installs a new version: a new file renamed over the old one.
		cp "$T/bin/fusekeeper" "$T/bin/.fusekeeper.new"
		mv "$T/bin/.fusekeeper.new" "$T/bin/fusekeeper"
	fi
	reexec_once
	[ "$(stat -L -c %i "/proc/$FK_PID/exe")" = "$(stat -c %i "$T/bin/fusekeeper")" ] ||
		fail "round $round: the keeper does not run the binary now on disk"
	usual_load_check "round-$round"
done
fds_after=$(ls "/proc/$FK_PID/fd" | wc -l)
[ "$fds_after" = "$fds_before" ] ||
	fail "the keeper had $fds_before fds before the re-execs and $fds_after after: $(ls -l "/proc/$FK_PID/fd")"
usual_load_stop
[ "$(fk_count DAEMON)" = 1 ] || fail "the daemon was restarted: $(cat "$FK_EVENTS")"
[ "$(fk_count RESTARTED)$(fk_count RECOVERED)$(fk_count FAILED)" = 000 ] ||
	fail "unexpected restart events: $(cat "$FK_EVENTS")"
[ "$(fk_status_field 's["reexecs"]')" = 2 ] || fail "status does not count 2 re-execs"
"$FK" status "$M" | grep -q "(replaced 2 times: fusekeeper reexec)" ||
	fail "the human status does not say the keeper was replaced twice"
fk_umount_exit 0

# ---- part 2: a request the daemon holds is answered to the new keeper ---------------------
M=$T/mnt2
B=$T/back2
mkdir "$M" "$B"
fk_start "$M" -- "$TESTFS" --backing="$B" --delay-ms=5000 {}
fk_wait READY "" 30 || fail "part 2: the keeper never became READY"
bg_timed mkdir mkdir "$M/d1"
fk_wait_in_flight || fail "part 2: the mkdir never showed as in flight"
reexec_once
# The daemon answers in 5 s, the drain waits 2 s: what it holds then goes over in flight.
grep -q "still holds 1 request, the oldest .*: handing them over in flight" "$FK_LOG" ||
	fail "part 2: the keeper did not say it handed the request over"
bg_result mkdir 30 || fail "part 2: mkdir did not finish"
[ "$BG_RC" = 0 ] || fail "part 2: mkdir failed across the re-exec: $BG_OUT"
[ -d "$B/d1" ] || fail "part 2: d1 is not in the backing directory"
[ "$(fk_status_field 's["tracked"]["requests_in_flight"]')" = 0 ] ||
	fail "part 2: a request is still in flight"

# Part 2b: the daemon dies while the re-exec waits for it: the re-exec is refused, and the
# daemon's death is a crash like any other (the request it held is recovered).
bg_timed mkdir2 mkdir "$M/d2"
fk_wait_in_flight || fail "part 2b: the mkdir never showed as in flight"
fk_mark
bg_timed reexec2 "$FK" reexec "$M"
fk_wait REEXECUTING "" 15 >/dev/null || fail "part 2b: no re-exec began"
fk_kill_daemon || fail "part 2b: cannot kill the daemon"
bg_result reexec2 30 || fail "part 2b: fusekeeper reexec did not finish"
[ "$BG_RC" = 1 ] && [[ $BG_OUT == *"the daemon died meanwhile"* ]] ||
	fail "part 2b: the re-exec was not refused for the daemon's death: $BG_RC $BG_OUT"
fk_wait RECOVERED "" 30 >/dev/null || fail "part 2b: no recovery after the daemon's death"
bg_result mkdir2 30 || fail "part 2b: mkdir did not finish"
[ "$BG_RC" = 0 ] || fail "part 2b: mkdir failed across the death: $BG_OUT"
[ -d "$B/d2" ] || fail "part 2b: d2 is not in the backing directory"

# Part 2c: a request handed over in flight, and the daemon then dies: the new keeper recovers
# it as the old one would have.
bg_timed mkdir3 mkdir "$M/d3"
fk_wait_in_flight || fail "part 2c: the mkdir never showed as in flight"
reexec_once
fk_mark
fk_kill_daemon || fail "part 2c: cannot kill the daemon"
fk_wait RECOVERED "" 30 >/dev/null || fail "part 2c: no recovery after the daemon's death"
bg_result mkdir3 30 || fail "part 2c: mkdir did not finish"
[ "$BG_RC" = 0 ] || fail "part 2c: mkdir failed across the re-exec and the death: $BG_OUT"
[ -d "$B/d3" ] || fail "part 2c: d3 is not in the backing directory"
[ "$(fk_status_field 's["reexecs"]')" = 2 ] || fail "part 2c: status does not count 2 re-execs"
# umount(8) looks at the mountpoint first: an operation or two of 5 s each.
try_cmd 30 umount "$M" || fail "part 2: umount failed: $TRY_OUT"
fk_wait_exit 30 || fail "part 2: the keeper did not exit after umount"
[ "$FK_STATUS" = 0 ] || fail "part 2: the keeper exited with status $FK_STATUS"

# Part 2d: a file held open is removed as the re-exec begins (testfs takes 3 s per operation):
# the keeper's own RENAME to a hidden name is still waited for when the drain's 2 s are over;
# the relay cannot stop for it, so the re-exec is refused (or, had the answer come in time, goes
# ahead), the removal succeeds, and the mount serves on.
M=$T/mnt2d
B=$T/back2d
mkdir "$M" "$B"
echo kept >"$B/f"
fk_start "$M" -vv -- "$TESTFS" --backing="$B" --delay-ms=3000 {}
fk_wait READY "" 30 || fail "part 2d: the keeper never became READY"
# A process of its own holds the file: an fd of this shell would be flushed by every child.
holder_start kept "$M/f" ro
bg_timed rm rm "$M/f"
wait_match "$FK_LOG" 'keeper: RENAME .*"f" -> node 1 "\.fusekeeper\.' 30 >/dev/null ||
	fail "part 2d: the keeper did not hide the removed file"
try_cmd 60 "$FK" reexec "$M" || [[ $TRY_OUT == *"did not come to a stop"* ]] ||
	fail "part 2d: unexpected outcome of the re-exec: $TRY_OUT"
log "part 2d: $TRY_OUT"
bg_result rm 30 || fail "part 2d: rm did not finish"
[ "$BG_RC" = 0 ] || fail "part 2d: rm failed: $BG_OUT"
try_cmd 30 stat "$M/" || fail "part 2d: the mount does not serve after the re-exec: $TRY_OUT"
[ "$(holder kept read)" = "read kept\n" ] || fail "part 2d: the removed file does not read through its fd"
holder_stop kept
try_cmd 30 umount "$M" || fail "part 2d: umount failed: $TRY_OUT"
fk_wait_exit 30 || fail "part 2d: the keeper did not exit after umount"

# ---- part 3: what the binary on disk cannot do is refused ----------------------------------
M=$T/mnt3
B=$T/back3
mkdir "$M" "$B"
echo three >"$B/f"
cp "$T/bin/fusekeeper" "$T/bin/fusekeeper.good"
fk_start "$M" -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "part 3: the keeper never became READY"
exec 5<"$M/f"
printf '#!/bin/sh\necho "not a keeper"\n' >"$T/bin/fusekeeper.new"
chmod +x "$T/bin/fusekeeper.new"
mv "$T/bin/fusekeeper.new" "$T/bin/fusekeeper"
try_cmd 60 "$T/bin/fusekeeper.good" reexec "$M" && fail "part 3: a re-exec into a non-keeper succeeded"
log "part 3: $TRY_OUT"
[[ $TRY_OUT == *"does not say which state image format it reads"* ]] ||
	fail "part 3: unexpected refusal: $TRY_OUT"
printf '#!/bin/sh\necho "fusekeeper 99"\necho "state image format 999"\n' >"$T/bin/fusekeeper.new"
chmod +x "$T/bin/fusekeeper.new"
mv "$T/bin/fusekeeper.new" "$T/bin/fusekeeper"
try_cmd 60 "$T/bin/fusekeeper.good" reexec "$M" && fail "part 3: a re-exec into another format succeeded"
log "part 3: $TRY_OUT"
[[ $TRY_OUT == *"reads state image format 999"* ]] || fail "part 3: unexpected refusal: $TRY_OUT"
# A keeper that would not accept this keeper's command line (here: an option it does not know;
# as well a --user that no longer exists) is refused before the execve, not after.
printf '#!/bin/sh
exec "%s" --no-such-option "$@"
' "$T/bin/fusekeeper.good" >"$T/bin/fusekeeper.new"
chmod +x "$T/bin/fusekeeper.new"
mv "$T/bin/fusekeeper.new" "$T/bin/fusekeeper"
try_cmd 60 "$T/bin/fusekeeper.good" reexec "$M" && fail "part 3: a re-exec into a refusing binary succeeded"
log "part 3: $TRY_OUT"
[[ $TRY_OUT == *"refuses this keeper's command line (exit status 2: "*"no-such-option"* ]] ||
	fail "part 3: unexpected refusal: $TRY_OUT"
[ "$(fk_count REEXEC_FAILED)" = 3 ] || fail "part 3: expected 3 REEXEC_FAILED events"
[ "$(cat <&5)" = three ] || fail "part 3: the held fd does not read after the refusals"
exec 5<&-
mv "$T/bin/fusekeeper.good" "$T/bin/fusekeeper"
[ "$(fk_status_field 's["reexecs"], s["state"]')" = "(0, 'serving')" ] ||
	fail "part 3: the keeper does not serve on unreplaced"
fk_umount_exit 0

# ---- part 4: the daemon's own command line ------------------------------------------------
M=$T/mnt4
B=$T/back4
mkdir "$M" "$B"
echo own >"$B/f"
fk_start "$M" -- "$TESTFS" --backing="$B" -f "$M"
fk_wait READY || fail "part 4: the keeper never became READY"
exec 5<"$M/f"
reexec_once
[ "$(cat <&5)" = own ] || fail "part 4: the held fd does not read after the re-exec"
before=$(fk_daemon_pid)
try_cmd 60 "$FK" restart "$M" || fail "part 4: fusekeeper restart after the re-exec failed: $TRY_OUT"
log "part 4: $TRY_OUT"
[ "$(fk_daemon_pid)" != "$before" ] || fail "part 4: the daemon was not replaced"
exec 5<&-
exec 5<"$M/f"
[ "$(cat <&5)" = own ] || fail "part 4: the file does not read after the restart"
exec 5<&-
fk_umount_exit 0

# ---- part 4b: installed through a symbolic link --------------------------------------------
# An upgrade that moves a link (alternatives, versioned directories) is followed: the keeper
# executes what the path it was started from names now.
mkdir -p "$T/opt/v1" "$T/opt/v2"
cp "$T/bin/fusekeeper" "$T/opt/v1/fusekeeper"
cp "$T/bin/fusekeeper" "$T/opt/v2/fusekeeper"
ln -s "$T/opt/v1/fusekeeper" "$T/bin/fk-link"
M=$T/mnt4b
B=$T/back4b
mkdir "$M" "$B"
FK=$T/bin/fk-link fk_start "$M" -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "part 4b: the keeper never became READY"
ln -sfn "$T/opt/v2/fusekeeper" "$T/bin/fk-link"
reexec_once
[ "$(stat -L -c %i "/proc/$FK_PID/exe")" = "$(stat -c %i "$T/opt/v2/fusekeeper")" ] ||
	fail "part 4b: the keeper does not run what its path names now"
fk_umount_exit 0

# ---- part 5: another mode -----------------------------------------------------------------
M=$T/mnt5
B=$T/back5
mkdir "$M" "$B"
fk_start "$M" --mode=remount -- "$TESTFS" --backing="$B" {}
if fk_wait READY "" 20; then
	try_cmd 30 "$FK" reexec "$M" && fail "part 5: remount mode was re-executed"
	[[ $TRY_OUT == *"only a keeper in proxy mode can be replaced while it runs"* ]] ||
		fail "part 5: unexpected refusal: $TRY_OUT"
	fk_umount_exit 0
else
	grep -q "remount" "$FK_LOG" || fail "part 5: the remount keeper failed: $(cat "$FK_LOG")"
	log "part 5: remount mode is not available here: $(tail -n 1 "$FK_LOG")"
fi
log "ok"
