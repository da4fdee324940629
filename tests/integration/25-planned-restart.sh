#!/bin/bash
# 25-planned-restart: `fusekeeper restart` and SIGHUP restart the daemon without failing a
# call, under load.
#
# Part 1: testfs serves three fkload workloads (a held fd read and written, a cwd inside the
# mount, churn of create/rename/unlink/readdir) and a reader in another mount namespace
# reading a file through a bind mount. Two planned restarts, by `fusekeeper restart` and by
# SIGHUP: each gives a new daemon (RESTARTED), the workloads go on, the namespace
# reader sees the same checksum; at the end every workload reports errors=0 and the backing
# directory holds what the mount shows.
# Part 2: a request the daemon holds when the restart begins is answered by that daemon, not
# replayed: testfs delays every operation by 400 ms; a mkdir is in flight (status says so)
# when the restart is asked for; it succeeds, and the recovery replayed and settled nothing.
# Part 3: a daemon that never answers what it holds (deadlocked) does not hold the restart up
# beyond the stop timeout: the restart completes, and the stuck lookup is taken over by the new
# daemon as after a crash.
# Part 3b: SIGTERM to the keeper while a restart waits for such a daemon to exit stops the
# keeper without starting a new daemon; the restart's client is told so.
# Part 4: the daemon's own command line (takeover): a restart gives a new daemon, whose
# unmount at SIGTERM is answered without unmounting; a held fd reads on.
# Part 5: a restart whose new daemon cannot start fails with a message; once the keeper gave
# up (--no-retry), a restart starts the repaired daemon at once, which recovers the mount (a
# held fd reads on), shown as a recovery timed from the last death, not as a planned restart.
# timeout: 300
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_prog "$FKLOAD"
need_cmd unshare sha256sum python3

# restart_once HOW: one planned restart, by `fusekeeper restart` or SIGHUP; waits for it.
restart_once() {
	local before
	before=$(fk_daemon_pid) || fail "no daemon"
	if [ "$1" = cli ]; then
		try_cmd 60 "$FK" restart "$M" || fail "fusekeeper restart failed: $TRY_OUT"
		log "restart: $TRY_OUT"
		[[ $TRY_OUT =~ ^Restarted\ the\ daemon\ of\ $M\ in\ [0-9]+\ ms:\ daemon\ [0-9]+\ took\ over\ from\ daemon\ $before$ ]] ||
			fail "unexpected output of fusekeeper restart: $TRY_OUT"
	else
		kill -HUP "$FK_PID"
	fi
	fk_wait RESTARTING "$before" 30 >/dev/null || fail "no RESTARTING $before"
	fk_wait RESTARTED "" 30 >/dev/null || fail "no RESTARTED after RESTARTING $before"
	log "$1: $FK_LINE"
	[ "$(fk_daemon_pid)" != "$before" ] || fail "the daemon was not replaced"
	# It had the stop timeout to exit on SIGTERM, which testfs does at once.
	grep -q "^EXIT $before status=0\$" "$FK_EVENTS" ||
		fail "$1: daemon $before did not exit on SIGTERM: $(grep "^EXIT $before" "$FK_EVENTS")"
	alive "$before" && fail "the old daemon $before still runs"
	return 0
}

# ---- part 1 -----------------------------------------------------------------------------
M=$T/mnt
B=$T/back
mkdir "$M" "$B"
fk_start "$M" -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"

usual_load_start
round=0
for how in cli hup; do
	round=$((round + 1))
	restart_once "$how"
	usual_load_check "round-$round"
done
usual_load_stop
[ "$(fk_count RESTARTED)" = 2 ] || fail "expected 2 RESTARTED events, got $(fk_count RESTARTED)"
[ "$(fk_count FAILED)" = 0 ] || fail "unexpected FAILED events"
[ "$(fk_count RECOVERED)" = 0 ] || fail "a planned restart was reported as a crash recovery"
[ "$(fk_status_field 's["restarts"]["planned"]')" = 2 ] || fail "status does not count 2 planned restarts"
fk_umount_exit 0

# ---- part 2: a request in flight is answered by the old daemon ------------------------------
M=$T/mnt2
B=$T/back2
mkdir "$M" "$B"
fk_start "$M" -- "$TESTFS" --backing="$B" --delay-ms=400 {}
fk_wait READY || fail "part 2: the keeper never became READY"
before=$(fk_daemon_pid)
bg_timed mkdir mkdir "$M/d1"
fk_wait_in_flight || fail "part 2: the mkdir never showed as in flight"
try_cmd 60 "$FK" restart "$M" || fail "part 2: fusekeeper restart failed: $TRY_OUT"
log "part 2: $TRY_OUT"
bg_result mkdir 30 || fail "part 2: mkdir did not finish"
[ "$BG_RC" = 0 ] || fail "part 2: mkdir failed across the restart: $BG_OUT"
[ -d "$B/d1" ] || fail "part 2: d1 is not in the backing directory"
[ "$(fk_status_field 's["last_recovery"]["requests_replayed"], s["last_recovery"]["requests_settled"]')" = "(0, 0)" ] ||
	fail "part 2: the recovery replayed or settled requests: the old daemon was stopped with the mkdir in flight"
grep -q "Daemon $before exited with status 0" "$FK_LOG" || fail "part 2: the old daemon did not exit on SIGTERM"
fk_umount_exit 0

# ---- part 3: a deadlocked daemon holds the restart up no longer than the stop timeout ------
M=$T/mnt3
B=$T/back3
mkdir "$M" "$B"
echo data >"$B/f"
fk_start "$M" -- "$TESTFS" --backing="$B" --crash-file="$T/crash" {}
fk_wait READY || fail "part 3: the keeper never became READY"
crash_arm "hang:lookup:f"
bg_timed stat stat "$M/f"
fk_wait_in_flight || fail "part 3: the stat never showed as in flight"
try_cmd 60 "$FK" restart --stop-timeout=1 "$M" || fail "part 3: fusekeeper restart failed: $TRY_OUT"
log "part 3: $TRY_OUT"
grep -q "still holds 1 request, the oldest LOOKUP" "$FK_LOG" ||
	fail "part 3: the keeper did not say what the daemon still held"
bg_result stat 30 || fail "part 3: stat did not finish"
[ "$BG_RC" = 0 ] || fail "part 3: stat failed across the restart: $BG_OUT"
[ "$(fk_status_field 's["last_recovery"]["requests_replayed"]')" = 1 ] ||
	fail "part 3: the stuck LOOKUP was not replayed to the new daemon"
fk_umount_exit 0

# ---- part 3b: SIGTERM to the keeper while the restart waits for a deadlocked daemon ---------
M=$T/mnt3b
B=$T/back3b
mkdir "$M" "$B"
echo data >"$B/f"
fk_start "$M" -- "$TESTFS" --backing="$B" --crash-file="$T/crash" {}
fk_wait READY || fail "part 3b: the keeper never became READY"
crash_arm "hang:lookup:f"
bg_timed stat3b stat "$M/f"
fk_wait_in_flight || fail "part 3b: the stat never showed as in flight"
bg_timed restart3b "$FK" restart --stop-timeout=3 "$M"
wait_match "$FK_LOG" "still holds 1 request" 15 >/dev/null || fail "part 3b: the drain did not time out"
kill -TERM "$FK_PID"
fk_wait_exit 30 || fail "part 3b: the keeper did not exit on SIGTERM during the restart"
[ "$FK_STATUS" = 0 ] || fail "part 3b: the keeper exited $FK_STATUS"
[ "$(fk_count DAEMON)" = 1 ] || fail "part 3b: a new daemon was started after SIGTERM: $(cat "$FK_EVENTS")"
bg_result restart3b 30 || fail "part 3b: fusekeeper restart did not finish"
[ "$BG_RC" = 1 ] && [[ $BG_OUT == *"fusekeeper is stopping"* ]] ||
	fail "part 3b: fusekeeper restart did not say the keeper stopped: $BG_RC $BG_OUT"
bg_result stat3b 30 || fail "part 3b: the stat did not finish"
assert_not_mounted "$M"

# ---- part 4: the daemon's own command line ------------------------------------------------
M=$T/mnt4
B=$T/back4
mkdir "$M" "$B"
echo own >"$B/f"
fk_start "$M" -- "$TESTFS" --backing="$B" -f "$M"
fk_wait READY || fail "part 4: the keeper never became READY"
exec 5<"$M/f"
restart_once cli
grep -q "unmounts $M: answered success without unmounting" "$FK_LOG" ||
	fail "part 4: the daemon's unmount at SIGTERM was not answered as expected"
[ "$(cat <&5)" = own ] || fail "part 4: the held fd does not read after the restart"
exec 5<&-
[ "$(cat "$M/f")" = own ] || fail "part 4: the file does not read after the restart"
fk_umount_exit 0

# ---- part 5: a restart whose new daemon fails, then one after giving up --------------------
M=$T/mnt5
B=$T/back5
mkdir "$M" "$B"
echo five >"$B/f"
printf '#!/bin/sh\nexec "%s" --backing="%s" "$@"\n' "$TESTFS" "$B" >"$T/daemon.sh"
chmod +x "$T/daemon.sh"
fk_start "$M" --max-restarts=2 --no-retry -- "$T/daemon.sh" {}
fk_wait READY || fail "part 5: the keeper never became READY"
exec 5<"$M/f"
mv "$T/daemon.sh" "$T/daemon.off"
try_cmd 60 "$FK" restart "$M" && fail "part 5: a restart whose daemon cannot start succeeded: $TRY_OUT"
[[ $TRY_OUT == *"restart of $M failed: the new daemon failed to start"* ]] ||
	fail "part 5: unexpected message of the failed restart: $TRY_OUT"
fk_wait GAVEUP || fail "part 5: the keeper did not give up"
gave_up_at=$(now_ms)
[ "$(fk_status_field 's["state"]')" = gave-up ] || fail "part 5: status does not say gave-up"
eio_at_once "part 5, after giving up" 5000 "cat $M/f"
mv "$T/daemon.off" "$T/daemon.sh"
down_ms=$(($(now_ms) - gave_up_at))
try_cmd 60 "$FK" restart "$M" || fail "part 5: the restart after giving up failed: $TRY_OUT"
[[ $TRY_OUT =~ ^Started\ the\ daemon\ of\ $M:\ daemon\ [0-9]+\ serves,\ [0-9]+\ ms\ after\ the\ last\ one\ died$ ]] ||
	fail "part 5: unexpected output of the restart after giving up: $TRY_OUT"
fk_wait RECOVERED || fail "part 5: the start after giving up was not a recovery"
[ "$(fk_status_field 's["last_recovery"]["planned"], s["last_recovery"]["duration_ms"] >= '"$down_ms")" = "(False, True)" ] ||
	fail "part 5: the recovery after giving up is shown as planned, or timed from the request"
[ "$(cat <&5)" = five ] || fail "part 5: the held fd does not read after the recovery"
exec 5<&-
fk_umount_exit 0
assert_all_gone
log "ok"
