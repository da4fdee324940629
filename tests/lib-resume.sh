# shellcheck shell=bash
# tests/lib-resume.sh - the keeper SIGKILLed under the stand-in for systemd
# (tests/notify-listener.py, started with notify_listener_start) and started again with what it
# left in the fd store: 29-keeper-kill and 23-keeper-kill-eio. Source after tests/lib.sh. The
# keepers run proxy mode with --write-through --max-restarts=10 over testfs on $B, mounted on $M.
#
#   kill_only ROUND        SIGKILLs the keeper and its daemon (if one runs), as systemd does with
#                          what is left of a service whose main process died. With KEEP_DAEMON=1
#                          the daemon is left running (a unit with KillMode=process); its pid is
#                          left in OLD_DAEMON. The mount must outlive them.
#   spawn_keeper ROUND MOUNTPOINT [TESTFS-OPTION...]
#                          has the listener start a keeper with what the store holds, as systemd
#                          starts the unit again, for MOUNTPOINT over $B; FK_PID gets its pid.
#   kill_keeper ROUND [TESTFS-OPTION...]
#                          kill_only, then spawn_keeper for $M; waits until the new keeper
#                          resumed and recovered.
#   in_flight N            waits until the keeper holds N requests in flight (30 s at most).
#   arm WHAT               makes testfs (--crash-file=$T/crash) hang as WHAT says.

kill_only() {
	local round=$1 daemon old=$FK_PID
	daemon=$(fk_daemon_pid) || daemon=
	log "round $round: killing keeper $old and daemon ${daemon:-(none)}"
	kill -KILL "$old"
	wait_gone "$old" 10 || fail "round $round: the keeper did not die"
	wait "$old" 2>/dev/null
	OLD_DAEMON=$daemon
	if [ -n "$daemon" ] && [ "${KEEP_DAEMON:-0}" = 0 ]; then
		kill -KILL "$daemon" 2>/dev/null
		wait_gone "$daemon" 10 || fail "round $round: the daemon did not die"
	fi
	mounted "$M" || fail "round $round: the mount went with the keeper"
}

# spawned_more N: the listener has started more than N keepers.
spawned_more() {
	[ "$(grep -c '^spawned ' "$N")" -gt "$1" ]
}

spawn_keeper() {
	local round=$1 mnt=$2 spawned new
	shift 2
	FK_N=$((FK_N + 1))
	FK_EVENTS=$T/events.$FK_N
	FK_LOG=$T/keeper.$FK_N.log
	: >"$FK_EVENTS"
	printf '%s\n' "$TESTFS" >"$FK_STATE/cmd.$FK_N"
	python3 -c 'import json, sys; json.dump({"argv": sys.argv[3:], "stdout": sys.argv[1],
		"events": sys.argv[2]}, open(sys.argv[1] + ".spawn", "w"))' "$FK_LOG" "$FK_EVENTS" \
		"$FK" --status-fd=9 --mode=proxy --write-through --max-restarts=10 "$mnt" -- "$TESTFS" \
		--backing="$B" "$@" {}
	mv "$FK_LOG.spawn" "$T/spawn.json"
	spawned=$(grep -c '^spawned ' "$N")
	kill -USR1 "$LISTENER"
	poll 10 spawned_more "$spawned" || fail "round $round: the listener started nothing"
	new=$(grep '^spawned ' "$N" | tail -n 1 | cut -d' ' -f2)
	FK_PID=$new
	track_pid "$new"
}

kill_keeper() {
	local round=$1
	shift
	kill_only "$round"
	spawn_keeper "$round" "$M" "$@"
	fk_wait RESUMED "" 30 ||
		fail "round $round: the new keeper did not resume: $(tail -5 "$FK_LOG"; tail -4 "$N")"
	fk_wait RECOVERED "" 60 || fail "round $round: no RECOVERED: $(tail -5 "$FK_LOG")"
	log "round $round: $(grep -m1 'Took the connection back' "$FK_LOG")"
	log "round $round: $FK_LINE"
}

shows_in_flight() {
	"$FK" status --json "$M" 2>/dev/null | grep -Eq "\"requests_in_flight\": *$1([^0-9]|\$)"
}

in_flight() {
	poll 30 shows_in_flight "$1" || fail "$1 requests never showed in flight"
}

arm() {
	echo "$1" >"$T/crash.tmp" && mv "$T/crash.tmp" "$T/crash" || fail "cannot arm $1"
}
