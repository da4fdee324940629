#!/bin/bash
# 24-status: `fusekeeper status` shows a known state, in both forms, and the control socket
# answers nobody but root.
#
# The keeper serves testfs; the test holds three files open, kills the daemon once (a crash)
# and restarts it once (planned). Status must then say, as JSON and for a person: the mount,
# mode, keeper and daemon pids, the command, 1 planned restart and 1 after a crash, the last
# recovery planned with the 3 handles restored and none lost, 3 handles tracked and no request
# in flight. Then:
#  - status without MOUNTPOINT lists this keeper; with a path no keeper keeps, it fails (1);
#  - run as an unprivileged user, status fails with a message that says to run as root (the
#    socket's mode keeps the user out); with the socket's mode opened up, the keeper itself
#    refuses the user (SO_PEERCRED) and logs it;
#  - malformed requests sent straight to the socket get an error and change nothing; 20 clients
#    that connect and send nothing do not keep status from answering;
#  - MOUNTPOINT given by a symbolic link or with . and .. finds the keeper;
#  - a stopped keeper is reported (exit 1) and the others still shown; status of another
#    keeper's mount does not mention it;
#  - a keeper killed with SIGKILL leaves its socket: status skips it without complaint, and the
#    next keeper's start removes it.
# timeout: 120
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd python3 setpriv

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

fk_start "$M" -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"
sock=/run/fusekeeper/control/$FK_PID.sock
[ -S "$sock" ] || fail "the keeper does not listen on $sock"
[ "$(stat -c %a "$sock")" = 600 ] || fail "$sock has mode $(stat -c %a "$sock"), not 600"

for f in a b c; do
	echo "$f" >"$M/$f" || fail "writing $M/$f failed"
done
# Held by processes of their own: an fd of this shell's would be inherited by every command it
# runs, whose exit (its close) sends a FLUSH, which shows as a request in flight.
for f in a b c; do
	holder_start "$f" "$M/$f" ro
done

fk_kill_daemon || fail "killing the daemon failed"
fk_wait RECOVERED || fail "no RECOVERED after the kill"
try_cmd 60 "$FK" restart "$M" || fail "fusekeeper restart failed: $TRY_OUT"
log "restart: $TRY_OUT"
[[ $TRY_OUT =~ ^Restarted\ the\ daemon\ of\ $M\ in\ [0-9]+\ ms:\ daemon\ [0-9]+\ took\ over\ from\ daemon\ [0-9]+$ ]] ||
	fail "unexpected output of fusekeeper restart: $TRY_OUT"
fk_wait RESTARTED || fail "no RESTARTED event"
daemon=$(fk_daemon_pid)

try_cmd 10 "$FK" status --json "$M" || fail "status --json failed: $TRY_OUT"
printf '%s\n' "$TRY_OUT" >"$T/status.json"
python3 - "$T/status.json" "$FK_PID" "$daemon" "$M" "$TESTFS" "$B" <<'EOF' || fail "status --json does not show the known state: $(cat "$T/status.json")"
import json, sys
path, keeper, daemon, mnt, testfs, back = sys.argv[1:]
a = json.load(open(path))
assert isinstance(a, list) and len(a) == 1, "one keeper expected"
s = a[0]
def eq(key, got, want):
    assert got == want, f"{key}: {got!r}, expected {want!r}"
eq("format", s["format"], 1)
eq("pid", s["pid"], int(keeper))
eq("mountpoint", s["mountpoint"], mnt)
eq("mode", s["mode"], "proxy")
eq("state", s["state"], "serving")
eq("gave_up", s["gave_up"], False)
eq("requests_fail", s["requests_fail"], False)
eq("daemon.pid", s["daemon"]["pid"], int(daemon))
eq("daemon.command", s["daemon"]["command"], [testfs, "--backing=" + back, "{}"])
assert s["daemon"]["uptime_ms"] >= 0 and s["uptime_ms"] >= s["daemon"]["uptime_ms"]
eq("restarts", s["restarts"], {"planned": 1, "crashes": 1, "protocol_errors": 0, "hangs": 0,
                               "failed_starts": 0})
r = s["last_recovery"]
eq("last_recovery.planned", r["planned"], True)
assert r["duration_ms"] >= 0 and r["ago_ms"] >= 0
eq("last_recovery.handles_restored", r["handles_restored"], 3)
eq("last_recovery.handles_lost", r["handles_lost"], 0)
eq("last_recovery.nodes_lost", r["nodes_lost"], 0)
assert r["nodes_restored"] >= 3, r
eq("last_recovery.requests_replayed", r["requests_replayed"], 0)
eq("last_recovery.writes_lost", r["writes_lost"], 0)
t = s["tracked"]
eq("tracked.handles", t["handles"], 3)
eq("tracked.requests_in_flight", t["requests_in_flight"], 0)
assert t["nodes"] >= 3, t
eq("tracked.locks", t["locks"], 0)
assert isinstance(t["nodes_pending"], int) and 0 <= t["nodes_pending"] <= t["nodes"], t
EOF

try_cmd 10 "$FK" status "$M" || fail "status failed: $TRY_OUT"
log "status:"$'\n'"$TRY_OUT"
for want in "^$M\$" "^  Keeper:   pid $FK_PID, proxy mode, up " "^  State:    serving\$" \
	"^  Daemon:   pid $daemon, serving for " "^  Command:  $TESTFS --backing=$B \\{\\}\$" \
	"^  Restarts: 1 planned, 1 after crashes, 0 after protocol errors, 0 after hangs; 0 failed starts\$" \
	"^  Last recovery: .* ago, planned, took " "restored [0-9]+ nodes and 3 handles; lost 0 nodes and 0 handles" \
	"^  Tracked:  [0-9]+ nodes( \\([0-9]+ still to look up again\\))?, 3 handles, 0 requests in flight, 0 locks\$"; do
	grep -Eq -- "$want" <<<"$TRY_OUT" || fail "status does not show a line matching '$want'"
done

# Every keeper: this one is among them.
try_cmd 10 "$FK" status --json || fail "status --json (all) failed: $TRY_OUT"
python3 -c 'import json, sys; a = json.loads(sys.argv[1]); assert int(sys.argv[2]) in [s["pid"] for s in a]' \
	"$TRY_OUT" "$FK_PID" || fail "status --json without MOUNTPOINT does not list keeper $FK_PID"
try_cmd 10 "$FK" status "$T" && fail "status of a path no keeper keeps succeeded: $TRY_OUT"
[[ $TRY_OUT == *"no running fusekeeper keeps $T"* ]] || fail "status of $T: unexpected message: $TRY_OUT"

# Requests straight to the socket: malformed ones get an error and change nothing.
raw() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1]); s.send(sys.argv[2].encode()); print(s.recv(300000).decode())' "$sock" "$1"
}
for req in '{"command":null}' '{"command":5}' '{}' '[]' 'garbage' '{"command":"status"}x' \
	'{"command":"restart","stop_timeout_ms":"abc"}' '{"command":"restart","stop_timeout_ms":-1}' \
	'{"command":"restart","stop_timeout_ms":null}' '{"command":"reboot"}'; do
	out=$(raw "$req") || fail "the keeper did not answer $req"
	[[ $out == '{"error":'* ]] || fail "$req was not answered with an error: $out"
	alive "$FK_PID" || fail "the keeper died of $req"
done
[ "$(fk_count RESTARTING)" = 1 ] || fail "a malformed request restarted the daemon"
[ "$(cat "$M/a")" = a ] || fail "the mount does not serve after the malformed requests"

# Clients that connect and send nothing hold no more than a slot each: status still answers.
run_bg silent python3 -c 'import socket, sys, time
c = [socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(20)]
for s in c: s.connect(sys.argv[1])
print("connected", flush=True); time.sleep(60)' "$sock"
silent=$BG_PID
wait_match "$T/silent.out" '^connected$' 10 >/dev/null || fail "the silent clients did not connect"
try_cmd 30 "$FK" status "$M" || fail "status with 20 silent clients failed: $TRY_OUT"
kill "$silent"

# MOUNTPOINT by a symbolic link, and with . and .. in it: the same mount.
ln -s "$M" "$T/link"
try_cmd 10 "$FK" status "$T/link" || fail "status of a symbolic link to the mountpoint failed: $TRY_OUT"
for p in "$T/back/../mnt/." "$T/back/x/../../mnt" "$T//back/../mnt/"; do
	try_cmd 10 "$FK" status "$p" || fail "status of $p failed: $TRY_OUT"
	[[ $TRY_OUT == "$M"$'\n'* ]] || fail "status of $p shows another mount: $TRY_OUT"
done

# A burst of clients while the keeper cannot answer (stopped): every one is answered after.
kill -STOP "$FK_PID"
for i in $(seq 12); do
	bg_timed "burst$i" "$FK" status "$M"
done
deadline=$(($(now_ms) + 10000))
# Until all 12 wait in the listening socket's backlog (its Recv-Q). The socket was bound under
# a temporary name and renamed: the kernel knows it by the first.
backlog() {
	ss -xlH | awk -v name="/run/fusekeeper/control/.$FK_PID.new" '$5 == name { print $3 }'
}
until [ "$(backlog)" = 12 ]; do
	[ "$(now_ms)" -lt "$deadline" ] || fail "the burst's clients did not all connect: $(ss -xl)"
	sleep 0.05
done
kill -CONT "$FK_PID"
for i in $(seq 12); do
	bg_result "burst$i" 30 || fail "status $i of the burst did not finish"
	[ "$BG_RC" = 0 ] || fail "status $i of a burst of 12 failed: $BG_OUT"
done

# An unprivileged user: kept out by the socket's mode, then by the keeper itself.
try_cmd 10 setpriv --reuid=nobody --regid=nogroup --clear-groups "$FK" status "$M" &&
	fail "status as nobody succeeded: $TRY_OUT"
[[ $TRY_OUT == *"Permission denied"*"run as root"* ]] || fail "status as nobody: unexpected message: $TRY_OUT"
run_mode=$(stat -c %a /run/fusekeeper)
chmod 0666 "$sock"
chmod o+x /run/fusekeeper
try_cmd 10 setpriv --reuid=nobody --regid=nogroup --clear-groups "$FK" restart "$M"
rc=$?
chmod 0600 "$sock"
chmod "$run_mode" /run/fusekeeper
[ "$rc" = 0 ] && fail "restart as nobody through an open socket succeeded: $TRY_OUT"
[[ $TRY_OUT == *"refused: permission denied: only root may use"* ]] ||
	fail "restart as nobody: the keeper did not refuse it: $TRY_OUT"
wait_match "$FK_LOG" "Refused a control request from uid $(id -u nobody)" 5 >/dev/null ||
	fail "the keeper did not log the refused request"
[ "$(fk_count RESTARTING)" = 1 ] || fail "a refused request restarted the daemon"

# A keeper killed with SIGKILL leaves its socket behind.
for f in a b c; do
	holder_stop "$f"
done
first=$FK_PID
M2=$T/mnt2
mkdir "$M2" "$T/back2"
fk_start "$M2" -- "$TESTFS" --backing="$T/back2" {}
fk_wait READY || fail "the second keeper never became READY"
stale=/run/fusekeeper/control/$FK_PID.sock
[ -S "$stale" ] || fail "the second keeper does not listen on $stale"

# A keeper that does not answer (stopped): reported; the others are still shown.
kill -STOP "$FK_PID"
try_cmd 30 "$FK" status "$M" || fail "status of a mount with another keeper stopped failed: $TRY_OUT"
[[ $TRY_OUT == "$M"$'\n'* ]] || fail "status of $M talks of the stopped keeper: $TRY_OUT"
try_cmd 30 "$FK" status --json
rc=$?
kill -CONT "$FK_PID"
[ "$rc" = 1 ] || fail "status with a stopped keeper exited $rc, not 1: $TRY_OUT"
[[ $TRY_OUT == *"cannot ask the keeper at $stale: it does not answer"* ]] ||
	fail "status did not report the stopped keeper: $TRY_OUT"
[[ $TRY_OUT == *"\"pid\":$first,"* ]] || fail "status with a stopped keeper left the others out: $TRY_OUT"
kill -KILL "$FK_PID"
fk_wait_exit 10 || fail "the second keeper did not die"
fuse_abort "$M2"
umount -l "$M2"
[ -S "$stale" ] || fail "the killed keeper's socket is gone already: nothing to test"
try_cmd 10 "$FK" status --json || fail "status with a stale socket failed: $TRY_OUT"
python3 -c 'import json, sys; a = json.loads(sys.argv[1]); assert int(sys.argv[2]) not in [s["pid"] for s in a]' \
	"$TRY_OUT" "$FK_PID" || fail "status lists the killed keeper $FK_PID"
M3=$T/mnt3
mkdir "$M3" "$T/back3"
fk_start "$M3" -- "$TESTFS" --backing="$T/back3" {}
fk_wait READY || fail "the third keeper never became READY"
[ -e "$stale" ] && fail "the third keeper's start did not remove the stale $stale"
kill -TERM "$FK_PID"
fk_wait_exit 30 || fail "the third keeper did not exit"
[ -e "/run/fusekeeper/control/$FK_PID.sock" ] && fail "the third keeper left its socket"

kill -TERM "$first"
wait_pid "$first" 30 || fail "the first keeper did not exit"
[ -e "$sock" ] && fail "the first keeper left its socket"
assert_not_mounted "$M"
log "ok"
