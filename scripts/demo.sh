#!/bin/bash
# scripts/demo.sh BUILD_DIR - shows what fusekeeper is for, in about 15 s.
#
# Two programs use a FUSE mount served by the project's test daemon (testfs):
# a reader that re-reads a file every 0.2 s and a writer that keeps the file
# open and appends a line every 0.2 s.  The daemon is killed with SIGKILL:
#   part 1, mounted directly: both programs fail from then on
#           ("Transport endpoint is not connected");
#   part 2, under fusekeeper: killed 3 times, both carry on.
# Needs root.  Cleans up its mounts and processes, also on Ctrl-C.
set -uo pipefail

die() {
	echo "demo: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: $0 BUILD_DIR"
[ "$(id -u)" = 0 ] || die "must run as root (it mounts FUSE filesystems)"
BUILD_DIR=$(cd "$1" 2>/dev/null && pwd) || die "build directory $1 not found"
FK=$BUILD_DIR/fusekeeper
TESTFS=$BUILD_DIR/tests/testfs
[ -x "$FK" ] || die "$FK is not built (run make)"
[ -x "$TESTFS" ] || die "$TESTFS is not built (run make)"

W=$(mktemp -d /tmp/fusekeeper-demo.XXXXXX)
PIDS=()    # every process we started, stopped at exit
MOUNTS=()  # every mountpoint we used, unmounted at exit

. "$(dirname "$0")/common.sh"

# Aborts the FUSE connection mounted at $1 (through fusectl), so that nothing
# can stay blocked on it.
fuse_abort() {
	local dev
	dev=$(awk -v mp="$1" '$5 == mp { d = $3 } END { print d }' /proc/self/mountinfo)
	[ -n "$dev" ] || return 0
	mountpoint -q /sys/fs/fuse/connections ||
		mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null
	echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort" 2>/dev/null
	return 0
}

gone() { ! alive "$1"; }

stop_pid() {
	alive "$1" || { wait "$1" 2>/dev/null; return 0; }
	kill -TERM "$1" 2>/dev/null
	poll 3 gone "$1" || kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

cleanup() {
	local p m
	trap '' INT TERM
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for m in "${MOUNTS[@]}"; do
		if mountpoint -q "$m"; then
			umount "$m" 2>/dev/null || { fuse_abort "$m"; umount -l "$m" 2>/dev/null; }
		fi
	done
	for p in "${PIDS[@]}"; do
		stop_pid "$p"
	done
	rm -rf --one-file-system "$W"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, cleaning up"; exit 130' INT TERM

# ---- the two programs -------------------------------------------------------

# pause: 0.2 s without a child process (read -t on a fifo nobody writes), so
# that stopping a program by its pid leaves no `sleep` behind.
mkfifo "$W/never"
pause() { read -r -t 0.2 <>"$W/never"; }

# reader FILE LOG: every 0.2 s reads the last line of FILE; logs "MS ok LINE"
# or "MS fail ERROR".
reader() {
	local out
	while :; do
		if out=$(tail -n 1 "$1" 2>&1); then
			echo "$(now_ms) ok $out"
		else
			echo "$(now_ms) fail ${out##*: }"
		fi
		pause
	done >"$2"
}

# writer FILE LOG: opens FILE once, then every 0.2 s appends "line N" through
# that same fd; logs "MS ok N" or "MS fail ERROR".
writer() {
	local n=0 err
	exec 3>>"$1" || { echo "$(now_ms) fail cannot open $1" >"$2"; return; }
	while :; do
		n=$((n + 1))
		if err=$({ printf 'line %d\n' "$n" >&3; } 2>&1); then
			echo "$(now_ms) ok $n"
		else
			echo "$(now_ms) fail ${err##*: }"
		fi
		pause
	done >"$2"
}

start_programs() {
	local dir=$1
	: >"$dir/counter.txt" || die "cannot create $dir/counter.txt"
	reader "$dir/counter.txt" "$W/reader.log" &
	PIDS+=($!)
	READER=$!
	writer "$dir/counter.txt" "$W/writer.log" &
	PIDS+=($!)
	WRITER=$!
}

stop_programs() {
	stop_pid "$READER"
	stop_pid "$WRITER"
}

# count LOG KIND SINCE_MS: lines of KIND (ok/fail) logged at or after SINCE_MS.
count() { awk -v k="$2" -v t="$3" '$1 >= t && $2 == k { n++ } END { print n + 0 }' "$1"; }
last() { tail -n 1 "$1" | cut -d' ' -f2-; }

# Predicates for poll.
writer_ok_since() { [ "$(count "$W/writer.log" ok "$1")" -ge "$2" ]; }
both_fail_since() {
	[ "$(count "$W/reader.log" fail "$1")" -ge "$2" ] && [ "$(count "$W/writer.log" fail "$1")" -ge "$2" ]
}
recovered() { [ "$(grep -c '^RECOVERED ' "$EV")" -ge "$1" ]; }
# At least N more lines written since MS, and 1.2 s passed, so that the
# timeline shows the programs working between kills.
carried_on_since() { writer_ok_since "$1" "$2" && [ $(($(now_ms) - $1)) -ge 1200 ]; }

T0=0
at() { printf '  t=%4.1fs  %s\n' "$(awk -v d=$(($(now_ms) - T0)) 'BEGIN { print d / 1000 }')" "$*"; }

show_programs() {
	local r w
	r=$(last "$W/reader.log")
	w=$(last "$W/writer.log")
	case $r in "ok") r="read an empty file" ;; ok*) r="read \"${r#ok }\"" ;; fail*) r="FAILED: ${r#fail }" ;; "") r="has not read yet" ;; esac
	case $w in ok*) w="appended line ${w#ok }" ;; fail*) w="FAILED: ${w#fail }" ;; esac
	at "reader $r"
	at "writer $w"
}

echo "fusekeeper demo: a FUSE daemon is killed with SIGKILL while two programs use its mount."
echo "  reader: re-reads counter.txt every 0.2 s      writer: keeps counter.txt open, appends a line every 0.2 s"

# ---- part 1: without fusekeeper ---------------------------------------------

echo
echo "Part 1 - without fusekeeper: testfs mounted directly"
M1=$W/direct
mkdir "$M1" "$W/back1"
MOUNTS+=("$M1")
T0=$(now_ms)
"$TESTFS" --backing="$W/back1" -f "$M1" >"$W/testfs.log" 2>&1 &
D1=$!
PIDS+=("$D1")
poll 10 mountpoint -q "$M1" || die "testfs did not mount: $(cat "$W/testfs.log")"
at "mounted; daemon pid $D1"
start_programs "$M1"
poll 5 writer_ok_since 0 5 || die "the programs did not start"
show_programs
K1=$(now_ms)
kill -KILL "$D1"
wait "$D1" 2>/dev/null
at "kill -9 $D1   (the daemon)"
poll 5 both_fail_since "$K1" 5
show_programs
P1_R_OK=$(count "$W/reader.log" ok "$K1")
P1_R_FAIL=$(count "$W/reader.log" fail "$K1")
P1_W_OK=$(count "$W/writer.log" ok "$K1")
P1_W_FAIL=$(count "$W/writer.log" fail "$K1")
echo "  after the kill: reader $P1_R_OK ok / $P1_R_FAIL failed, writer $P1_W_OK ok / $P1_W_FAIL failed;" \
	"the mount stays dead until unmounted"
stop_programs
umount "$M1" 2>/dev/null || { fuse_abort "$M1"; umount -l "$M1"; }

# ---- part 2: with fusekeeper -------------------------------------------------

echo
echo "Part 2 - with fusekeeper: the same daemon, started by fusekeeper"
M2=$W/kept
mkdir "$M2" "$W/back2"
MOUNTS+=("$M2")
EV=$W/events
: >"$EV"
T0=$(now_ms)
"$FK" --status-fd=3 --max-restarts=10 "$M2" -- "$TESTFS" --backing="$W/back2" -f {} \
	3>"$EV" >"$W/keeper.log" 2>&1 &
K=$!
PIDS+=("$K")
poll 10 grep -q '^READY ' "$EV" || die "fusekeeper did not come up: $(cat "$W/keeper.log")"
at "mounted; daemon pid $(awk '$1 == "READY" { print $2 }' "$EV")"
start_programs "$M2"
poll 5 writer_ok_since 0 5 || die "the programs did not start"
show_programs
START2=$(now_ms)
RECOVERED_MS=()
for i in 1 2 3; do
	pid=$(awk '$1 == "DAEMON" { p = $2 } END { print p }' "$EV")
	kill -KILL "$pid"
	killed_at=$(now_ms)
	poll 10 recovered "$i" ||
		die "no recovery after kill $i: $(tail -n 5 "$W/keeper.log")"
	read -r _ newpid ms < <(grep '^RECOVERED ' "$EV" | sed -n "${i}p")
	RECOVERED_MS+=("$ms")
	at "kill $i: daemon $pid killed; daemon $newpid took over $ms ms later"
	# Let both programs go on for a while before the next kill.
	poll 5 carried_on_since "$killed_at" 6
	show_programs
done
P2_R_OK=$(count "$W/reader.log" ok "$START2")
P2_R_FAIL=$(count "$W/reader.log" fail "$START2")
P2_W_OK=$(count "$W/writer.log" ok "$START2")
P2_W_FAIL=$(count "$W/writer.log" fail "$START2")
stop_programs
lines=$(wc -l <"$M2/counter.txt")
if [ "$(cat "$M2/counter.txt")" = "$(seq -f 'line %g' 1 "$lines")" ]; then
	intact="counter.txt holds lines 1..$lines in order, none missing"
else
	intact="counter.txt is NOT intact"
fi
echo "  over the 3 kills: reader $P2_R_OK ok / $P2_R_FAIL failed, writer $P2_W_OK ok / $P2_W_FAIL failed; $intact"
umount "$M2" || die "umount $M2 failed"
poll 10 gone "$K" || die "fusekeeper did not exit after umount"
wait "$K"
KSTATUS=$?

ms_sorted=$(printf '%s\n' "${RECOVERED_MS[@]}" | sort -n | tr '\n' ' ')
echo
echo "Summary"
echo "  without fusekeeper: 1 kill, then every operation failed ($P1_R_FAIL reads, $P1_W_FAIL writes): ENOTCONN until the mount is torn down."
echo "  with fusekeeper:    3 kills, $((P2_R_FAIL + P2_W_FAIL)) failed operations out of $((P2_R_OK + P2_R_FAIL + P2_W_OK + P2_W_FAIL)); recovered in ${ms_sorted% } ms (keeper exit status $KSTATUS)."
