#!/bin/bash
# bench/soak.sh [--kills=N] [--daemon=testfs] [--writeback] [--rss-slack=KIB] [--entries=N]
#               [--keeper-opt=OPT ...] [BUILD_DIR]
#
# The soak: N SIGKILLs of the daemon in a row (default 1000) under a mixed workload whose
# every call is checked, while the keeper's RSS and fd count are sampled. Not a test (it
# takes a quarter of an hour or more), but it fails like one: any error a workload sees
# (EIO, ENOTCONN, ESTALE, ...), any byte that differs, a failed start, a keeper that dies
# or grows, makes it end with "soak: FAIL: <why>" and exit 1. Needs root.
#
# The workload (tests/fkload, every call's result checked against a model):
#   fd     one process holding 4 files open for the whole run, one of them removed right
#          after opening (the keeper keeps it under a hidden name): random pwrite, read
#          back, older regions re-read, fstat, fdatasync; at the end every byte is read
#          back through the fd and, for the named files, SHA-256 compared with the store
#   cwd    a process whose cwd is a directory in the mount, relative paths only
#   churn  3 threads creating, writing, renaming, unlinking, listing and reading back
#   ns     2 such threads in another mount namespace (unshare -m), through a bind mount
#          of a directory of the mount
#   list   a directory of --entries (default 2000) files of known names, listed over and
#          over: through one directory fd held for the whole run, in small getdents64
#          steps (so kills land in the middle of a listing), and through fresh opendirs
#
# Each cycle: wait until every workload has made progress since the daemon took over (its
# progress files), then until the daemon has served for MIN_UPTIME_MS (the keeper counts a
# daemon that dies sooner after taking over as a crash loop and backs off, which is not
# what this soaks), SIGKILL the daemon by its pid (the latest DAEMON event), wait for the
# keeper's EXIT and RECOVERED events. The keeper's VmRSS, fd and thread counts are sampled
# before the first kill, after kill 10, every 100th and N, and after the workload stopped, each at
# rest: the workloads paused (SIGUSR1 to fkload) with their held files fsynced, so that
# the keeper holds no write window (acknowledged, unsynced writes it keeps to send again
# after a crash: several MiB under this load, which would swamp a leak of a few KiB per
# kill). RSS right after every recovery, under load, goes to the per-kill log as well.
# "Flat": the fd count the same at every sample, and RSS growing by at most --rss-slack KiB
# (default 512) from kill 100 to kill N (10 when N < 200), as the least-squares slope of the
# samples at rest says (single samples move by a few hundred KiB either way).
#
# Logs (keeper log, events, per-kill timings, workload output, the summary) are kept in
# BUILD_DIR/bench/soak-DATE/.
set -u
set -o pipefail

KILLS=1000
DAEMON=testfs
RSS_SLACK_KIB=512
ENTRIES=2000
TESTFS_OPTS=()         # --writeback: testfs asks for the kernel's writeback cache
KEEPER_OPTS=()         # --keeper-opt=OPT, e.g. -v for the keeper's debug log
MIN_UPTIME_MS=350      # supervisor.c MIN_UPTIME_MS (300) and some margin
PROGRESS_TIMEOUT_S=60  # a workload that makes no progress for this long is stuck
EVENT_TIMEOUT_S=30     # for EXIT and RECOVERED after a kill
BUILD_DIR=

usage() {
	echo "usage: $0 [--kills=N] [--daemon=testfs] [--writeback] [--rss-slack=KIB] [--entries=N]" >&2
	echo "       [--keeper-opt=OPT ...] [BUILD_DIR]" >&2
	exit 2
}

for a in "$@"; do
	case $a in
	--kills=*) KILLS=${a#*=} ;;
	--daemon=*) DAEMON=${a#*=} ;;
	--writeback) TESTFS_OPTS+=(--writeback) ;;
	--keeper-opt=*) KEEPER_OPTS+=("${a#*=}") ;;
	--rss-slack=*) RSS_SLACK_KIB=${a#*=} ;;
	--entries=*) ENTRIES=${a#*=} ;;
	-h | --help) usage ;;
	-*) echo "soak: unknown option $a" >&2; usage ;;
	*) [ -z "$BUILD_DIR" ] || usage; BUILD_DIR=$a ;;
	esac
done
[[ $KILLS =~ ^[1-9][0-9]*$ ]] || { echo "soak: --kills must be a positive number" >&2; usage; }
[[ $RSS_SLACK_KIB =~ ^[0-9]+$ ]] || { echo "soak: --rss-slack must be a number of KiB" >&2; usage; }
[[ $ENTRIES =~ ^[1-9][0-9]*$ ]] && [ "$ENTRIES" -le 99999 ] ||
	{ echo "soak: --entries must be between 1 and 99999" >&2; usage; }
case $DAEMON in
testfs) ;;
*) echo "soak: --daemon=$DAEMON: only testfs is supported (the workload writes)" >&2; usage ;;
esac
[ "$(id -u)" = 0 ] || { echo "soak: needs root (it mounts)" >&2; exit 2; }

SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$(cd "${BUILD_DIR:-$SRC_DIR/build}" 2>/dev/null && pwd) ||
	{ echo "soak: build directory ${BUILD_DIR:-$SRC_DIR/build} not found" >&2; exit 2; }
FK=$BUILD_DIR/fusekeeper
TESTFS=$BUILD_DIR/tests/testfs
FKLOAD=$BUILD_DIR/tests/fkload
for p in "$FK" "$TESTFS" "$FKLOAD"; do
	[ -x "$p" ] || { echo "soak: $p is not built" >&2; exit 2; }
done
for c in unshare sha256sum mount umount; do
	command -v "$c" >/dev/null || { echo "soak: $c is not installed" >&2; exit 2; }
done

W=$(mktemp -d "${SOAK_TMP:-/tmp}/fusekeeper-soak.XXXXXX") || exit 2
M=$W/mnt B=$W/back
OUT=$BUILD_DIR/bench/soak-$(date +%Y%m%d-%H%M%S)
mkdir -p "$M" "$B" "$W/state" "$W/dump" "$W/nsview" "$OUT" || exit 2
WORKLOADS=(fd cwd churn ns list)

KEEPER=          # the keeper's pid
DAEMON_PID=      # the latest DAEMON event's pid
declare -A load_pid
KILL_NO=0        # the kill under way (or the number done, between kills)
DONE=0           # kills whose recovery was seen (for messages)
FAILED_WHY=
PASSED=

now_ms() {
	local us=${EPOCHREALTIME/./}
	echo $((us / 1000))
}

say() {
	echo "[$(date +%T)] $*"
}

# A fd on a fifo nobody writes: `read -t` on it waits without a fork (polling intervals).
mkfifo "$W/nap" && exec {NAP}<>"$W/nap"
nap() {
	read -r -t "$1" -u "$NAP" _
}

alive() { # PID: running and not a zombie
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	[ "${stat:0:1}" != Z ] && [ "${stat:0:1}" != X ]
}

fail() {
	FAILED_WHY="after $DONE kills: $*"
	echo "FAIL $FAILED_WHY" >&2
	exit 1
}

# ---- events --------------------------------------------------------------------------
# The keeper writes them to a fifo; each line read is appended to $OUT/events.  Lines
# other than the one waited for are still looked at: a FAILED, SLOW, DOWN or GAVEUP is a
# failure of the soak at once.

mkfifo "$W/events.fifo" && exec {EV}<>"$W/events.fifo"
: >"$OUT/events"
EV_LINE=

ev_note() {
	printf '%s\n' "$1" >>"$OUT/events"
	case $1 in
	"DAEMON "*) DAEMON_PID=${1#DAEMON } ;;
	FAILED* | SLOW* | DOWN* | GAVEUP*) fail "the keeper reported '$1'" ;;
	esac
}

# ev_wait REGEX TIMEOUT_S: waits for the next event line matching REGEX (extended,
# anchored); leaves it in EV_LINE.
ev_wait() {
	local deadline=$(($(now_ms) + $2 * 1000)) line
	while :; do
		if read -r -t 1 -u "$EV" line; then
			ev_note "$line"
			if [[ $line =~ ^($1)$ ]]; then
				EV_LINE=$line
				return 0
			fi
			continue
		fi
		alive "$KEEPER" || fail "the keeper (pid $KEEPER) died while waiting for '$1'"
		[ "$(now_ms)" -lt "$deadline" ] || fail "no event '$1' within $2 s"
	done
}

# ---- cleanup: every process, mount and namespace by pid, pass or fail ----------------

fuse_abort() { # MOUNTPOINT: abort its FUSE connection through fusectl
	local dev
	dev=$(awk -v mp="$1" '$5 == mp { d = $3 } END { print d }' /proc/self/mountinfo)
	[ -n "$dev" ] && [ -w "/sys/fs/fuse/connections/${dev#*:}/abort" ] &&
		echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort"
	return 0
}

wait_gone() { # PID TIMEOUT_S
	local deadline=$(($(now_ms) + $2 * 1000))
	while alive "$1"; do
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		nap 0.05
	done
	return 0
}

cleanup() {
	local rc=$? w pid left=() m
	trap '' INT TERM
	for w in "${!load_pid[@]}"; do
		alive "${load_pid[$w]}" && kill -TERM "${load_pid[$w]}" && left+=("${load_pid[$w]}")
	done
	for pid in "${left[@]}"; do
		wait_gone "$pid" 20 && continue
		# Stuck in a request: end the connection, then the process.
		fuse_abort "$M"
		kill -KILL "$pid" 2>/dev/null
		wait_gone "$pid" 5 || echo "cleanup: workload $pid did not exit" >&2
	done
	if [ -n "$KEEPER" ] && alive "$KEEPER"; then
		kill -TERM "$KEEPER"
		if ! wait_gone "$KEEPER" 15; then
			echo "cleanup: the keeper $KEEPER did not stop: killing it" >&2
			fuse_abort "$M"
			kill -KILL "$KEEPER"
			wait_gone "$KEEPER" 5
		fi
	fi
	# Daemons the keeper started that outlived it (the keeper reaps its own normally).
	for pid in $(awk '$1 == "DAEMON" { print $2 }' "$OUT/events" 2>/dev/null); do
		alive "$pid" || continue
		[ "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)" = "$TESTFS" ] || continue
		echo "cleanup: killing leftover daemon $pid" >&2
		kill -KILL "$pid"
	done
	for m in $(awk -v r="$W" 'index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r -u); do
		echo "cleanup: unmounting $m" >&2
		fuse_abort "$m"
		umount -l "$m"
	done
	cp "$W/keeper.log" "$OUT/keeper.log" 2>/dev/null
	for w in "${WORKLOADS[@]}"; do
		cp "$W/load-$w.out" "$W/load-$w.err" "$OUT/" 2>/dev/null
	done
	rm -rf --one-file-system "$W"
	if [ -n "$PASSED" ] && [ "$rc" = 0 ]; then
		echo "soak: PASS: $PASSED (logs in $OUT)"
	else
		echo "soak: FAIL: ${FAILED_WHY:-exit status $rc} (logs in $OUT)"
		[ "$rc" = 0 ] && rc=1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'FAILED_WHY="interrupted after $DONE kills"; exit 130' INT
trap 'FAILED_WHY="terminated after $DONE kills"; exit 143' TERM

# ---- samples -----------------------------------------------------------------------

declare -a S_AT S_RSS S_FDS S_THR S_NODES S_HANDLES

# The keeper's RSS in KiB, without a fork.
keeper_rss() {
	local key val rest
	while read -r key val rest; do
		[ "$key" = VmRSS: ] && { echo "$val"; return; }
	done <"/proc/$KEEPER/status"
	echo 0
}

# Pauses every workload at rest (see fkload: its held files fsynced, so the keeper keeps
# no write window) and waits until all are paused; resume_loads lets them go on.
pause_loads() {
	local w deadline=$(($(now_ms) + PROGRESS_TIMEOUT_S * 1000))
	for w in "${WORKLOADS[@]}"; do
		kill -USR1 "${load_pid[$w]}"
	done
	for w in "${WORKLOADS[@]}"; do
		while [ ! -e "$W/$w.prog.paused" ]; do
			check_loads
			[ "$(now_ms)" -lt "$deadline" ] || fail "the $w workload did not pause within ${PROGRESS_TIMEOUT_S} s"
			nap 0.01
		done
	done
}

resume_loads() {
	local w
	for w in "${WORKLOADS[@]}"; do
		kill -USR2 "${load_pid[$w]}"
	done
}

sample() { # LABEL: the keeper's VmRSS, fds, threads, and the last recovery's tables
	local label=$1 key val rest rss="?" thr="?" fds line nodes=- handles=-
	while read -r key val rest; do
		case $key in
		VmRSS:) rss=$val ;;
		Threads:) thr=$val ;;
		esac
	done <"/proc/$KEEPER/status"
	fds=$(find "/proc/$KEEPER/fd" -mindepth 1 -maxdepth 1 | wc -l)
	line=$(grep 'Recovered: ' "$KEEPER_LOG" | tail -n 1)
	if [[ $line =~ Recovered:\ ([0-9]+)\ nodes\ and\ ([0-9]+)\ handles ]]; then
		nodes=${BASH_REMATCH[1]} handles=${BASH_REMATCH[2]}
	fi
	S_AT+=("$label") S_RSS+=("$rss") S_FDS+=("$fds") S_THR+=("$thr")
	S_NODES+=("$nodes") S_HANDLES+=("$handles")
	say "sample $label: RSS $rss KiB, $fds fds, $thr threads, last recovery: $nodes nodes, $handles handles"
}

# ---- the keeper and the workload ------------------------------------------------------

# The directory listed: known names, made in the store before the mount exists.
mkdir "$B/fd" "$B/cwd" "$B/churn" "$B/ns" "$B/list"
(cd "$B/list" && seq -f 'e%05g' 0 $((ENTRIES - 1)) | xargs touch) || fail "cannot make the listed directory"

KEEPER_LOG=$W/keeper.log
"$FK" --status-fd=3 --state-dir="$W/state" "${KEEPER_OPTS[@]}" "$M" -- "$TESTFS" --backing="$B" "${TESTFS_OPTS[@]}" {} \
	3>"$W/events.fifo" >"$KEEPER_LOG" 2>&1 </dev/null {EV}<&- {NAP}<&- &
KEEPER=$!
say "keeper $KEEPER on $M, daemon testfs ${TESTFS_OPTS[*]}, $KILLS kills, work dir $W"
ev_wait 'READY [0-9]+' 30

# The kernel looks up every listed entry now rather than one by one over the run, so that
# the tree the keeper tracks is at its full size from the first kill on: growth of the
# keeper between samples is then not the workload's tree filling in.
ls -l "$M/list" >/dev/null || fail "cannot list $M/list through the mount"

start_load() { # NAME COMMAND...
	local name=$1
	shift
	"$@" >"$W/load-$name.out" 2>"$W/load-$name.err" </dev/null {EV}<&- {NAP}<&- &
	load_pid[$name]=$!
}

seed=$RANDOM
say "workload seed $seed"
start_load fd "$FKLOAD" fd "$M/fd" --fds=4 --unlinked=1 --dump="$W/dump" \
	--progress="$W/fd.prog" --seed="$seed"
start_load cwd "$FKLOAD" cwd "$M/cwd" --progress="$W/cwd.prog" --seed="$seed"
start_load churn "$FKLOAD" churn "$M/churn" --threads=3 --progress="$W/churn.prog" --seed="$seed"
# The namespace's only process is fkload itself (unshare and sh exec), so its pid ends
# the namespace and its bind mount with it.
start_load ns unshare --mount --propagation private sh -c \
	'mount --bind "$1" "$2" && exec "$3" churn "$2" --threads=2 --progress="$4" --seed="$5"' \
	ns "$M/ns" "$W/nsview" "$FKLOAD" "$W/ns.prog" "$seed"
start_load list "$FKLOAD" list "$M/list" --entries="$ENTRIES" --progress="$W/list.prog" --seed="$seed"
for w in "${WORKLOADS[@]}"; do
	say "workload $w: pid ${load_pid[$w]}"
done

declare -A prog_mark
progress_of() { # NAME: ops done so far
	local v=0
	read -r v 2>/dev/null <"$W/$1.prog"
	echo "${v:-0}"
}

# Fails at once when a workload reported an error or exited.
check_loads() {
	local w
	for w in "${WORKLOADS[@]}"; do
		if [ -s "$W/load-$w.err" ]; then
			fail "the $w workload reported errors: $(head -n 20 "$W/load-$w.err")"
		fi
		alive "${load_pid[$w]}" ||
			fail "the $w workload exited: $(cat "$W/load-$w.out" "$W/load-$w.err")"
	done
}

# Waits until every workload has done at least one op more than at its mark.
wait_progress() {
	local w v deadline=$(($(now_ms) + PROGRESS_TIMEOUT_S * 1000))
	for w in "${WORKLOADS[@]}"; do
		while :; do
			v=0
			read -r v 2>/dev/null <"$W/$w.prog"
			[ "${v:-0}" -gt "${prog_mark[$w]:-0}" ] && break
			check_loads
			[ "$(now_ms)" -lt "$deadline" ] ||
				fail "the $w workload made no progress for ${PROGRESS_TIMEOUT_S} s (at ${v:-0} ops)"
			nap 0.01
		done
	done
}

mark_progress() {
	local w
	for w in "${WORKLOADS[@]}"; do
		prog_mark[$w]=$(progress_of "$w")
	done
}

mark_progress
wait_progress
pause_loads
sample "start"
resume_loads

# ---- the kills ------------------------------------------------------------------------

: >"$OUT/kills"
printf '%s\n' "# kill victim exit_ms recovered_ms keeper_ms cycle_ms rss_kib (not at rest)" >>"$OUT/kills"
t_start=$(now_ms)
served_at=$(now_ms)
for ((KILL_NO = 1; KILL_NO <= KILLS; KILL_NO++)); do
	t_cycle=$(now_ms)
	# The daemon serves (READY or the last RECOVERED); every workload got through since.
	mark_progress
	wait_progress
	check_loads
	t=$(now_ms)
	[ "$t" -ge $((served_at + MIN_UPTIME_MS)) ] || nap "0.$(printf '%03d' $((served_at + MIN_UPTIME_MS - t)))"

	victim=$DAEMON_PID
	alive "$victim" || fail "the daemon $victim is not running"
	argv0=
	read -r -d '' argv0 <"/proc/$victim/cmdline"
	[ "$argv0" = "$TESTFS" ] || fail "pid $victim is '$argv0', not the daemon"
	t_kill=$(now_ms)
	kill -KILL "$victim" || fail "cannot kill the daemon $victim"
	ev_wait "EXIT $victim .*" "$EVENT_TIMEOUT_S"
	[ "$EV_LINE" = "EXIT $victim signal=KILL" ] || fail "expected 'EXIT $victim signal=KILL', got '$EV_LINE'"
	t_exit=$(now_ms)
	ev_wait "RECOVERED [0-9]+ [0-9]+" "$EVENT_TIMEOUT_S"
	served_at=$(now_ms)
	DONE=$KILL_NO
	rec_pid=${EV_LINE#RECOVERED }
	rec_ms=${rec_pid#* }
	rec_pid=${rec_pid% *}
	[ "$rec_pid" = "$DAEMON_PID" ] || fail "RECOVERED names $rec_pid, the last DAEMON was $DAEMON_PID"
	printf '%d %d %d %d %d %d %d\n' "$KILL_NO" "$victim" $((t_exit - t_kill)) \
		$((served_at - t_kill)) "$rec_ms" $((served_at - t_cycle)) "$(keeper_rss)" >>"$OUT/kills"
	if [ "$KILL_NO" = 10 ] || ((KILL_NO % 100 == 0)) || [ "$KILL_NO" = "$KILLS" ]; then
		# At rest, once the workload made progress through the new daemon.
		mark_progress
		wait_progress
		pause_loads
		sample "$KILL_NO"
		resume_loads
	fi
	if ((KILL_NO % 50 == 0)); then
		say "kill $KILL_NO: ok ($(((served_at - t_start) / KILL_NO)) ms per cycle so far)"
	fi
done
KILL_NO=$KILLS
t_end=$(now_ms)

# The workload goes on after the last recovery too, then stops and makes its final checks.
mark_progress
wait_progress
check_loads
say "stopping the workload"
declare -A ops calls
for w in "${WORKLOADS[@]}"; do
	kill -TERM "${load_pid[$w]}"
done
for w in "${WORKLOADS[@]}"; do
	wait_gone "${load_pid[$w]}" 120 || fail "the $w workload did not finish its final checks within 120 s"
	wait "${load_pid[$w]}"
	st=$?
	line=$(tail -n 1 "$W/load-$w.out")
	[ "$st" = 0 ] && [[ $line =~ ^fkload\ [a-z]+:\ ops=([0-9]+)\ errors=0$ ]] ||
		fail "the $w workload failed (exit $st): $line $(head -n 20 "$W/load-$w.err")"
	ops[$w]=${BASH_REMATCH[1]}
	calls[$w]=$(sed -n 's/^fkload [a-z]*: calls=\([0-9]*\)$/\1/p' "$W/load-$w.out")
done
sample "stopped"

# ---- the store holds what the workload verified -----------------------------------------

say "checking the store"
for f in "$W"/dump/*; do
	name=${f##*/}
	want=$(sha256sum <"$f" | cut -d' ' -f1)
	got=$(sha256sum <"$B/fd/$name" | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "fd/$name: SHA-256 in the store $got, the workload wrote $want"
	got=$(sha256sum <"$M/fd/$name" | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "fd/$name: SHA-256 through the mount $got, the workload wrote $want"
	say "fd/$name: SHA-256 $want in the store, through the mount and in the workload's model"
done
[ "$(ls "$W/dump" | wc -l)" = 3 ] || fail "the fd workload dumped $(ls "$W/dump" | wc -l) files, not 3"
diff -r "$B/churn" "$M/churn" >/dev/null || fail "churn: the store and the mount differ: $(diff -rq "$B/churn" "$M/churn" | head)"
diff -r "$B/ns" "$M/ns" >/dev/null || fail "ns: the store and the mount differ: $(diff -rq "$B/ns" "$M/ns" | head)"
[ -d "$B/ns/t0" ] && [ -d "$B/ns/t1" ] || fail "ns: the namespace's workload left nothing in the store"
[ -z "$(ls -A "$B/cwd")" ] || fail "cwd: the workload left entries: $(ls -A "$B/cwd" | head)"
[ "$(ls -A "$B/list" | tr '\n' ' ')" = "$(seq -f 'e%05g' 0 $((ENTRIES - 1)) | tr '\n' ' ')" ] ||
	fail "list: the store's directory changed"
# The removed file's hidden name goes once the kernel's RELEASE of its last fd came.
deadline=$(($(now_ms) + 10000))
while [ -n "$(find "$B" -name '.fusekeeper.*' | head -n 1)" ]; do
	[ "$(now_ms)" -lt "$deadline" ] || fail "hidden names left in the store: $(find "$B" -name '.fusekeeper.*')"
	nap 0.05
done

# ---- the keeper's own account -----------------------------------------------------------

n_exit=$(grep -c '^EXIT [0-9]* signal=KILL$' "$OUT/events")
n_rec=$(grep -c '^RECOVERED ' "$OUT/events")
[ "$n_exit" = "$KILLS" ] && [ "$n_rec" = "$KILLS" ] ||
	fail "$n_exit EXIT and $n_rec RECOVERED events for $KILLS kills"
n_backoff=$(grep -c 'Restarting the daemon in' "$KEEPER_LOG")
# The keeper counts as lost (a) nodes it warns about: legitimate only when a removal in
# flight that the dead daemon did removed it (UNLINK, RMDIR: its name is gone) or replaced it
# (RENAME: its name names the renamed object), so at most as many per recovery as such
# replays; and (b) silently, nodes left without a name to look them up by: unlinked files
# the kernel still holds until its FORGET, which nothing can reach, and the children of (a).
# Any other warned loss, any lost handle or write window fails the soak.
lost_report=$(awk '
	/Started daemon/ { removals = 0; warned = 0 }
	/Replayed (RENAME|RENAME2|UNLINK|RMDIR) .*: the dead daemon / { removals++ }
	/warning: Node .*(cannot be found again|now names another object)/ { warned++ }
	/Recovered: / {
		s = $0; sub(/.* restored \(/, "", s); split(s, f, " ")
		w = $0; sub(/.*unsynced writes sent again \(/, "", w); split(w, g, " ")
		lost_warned += warned; lost_silent += f[1] - warned
		if (warned > removals || f[1] < warned || f[4] > 0 || g[1] > 0) {
			bad++; if (bad <= 3) print "unexplained: " $0
		}
	}
	END { print "warned " lost_warned + 0; print "silent " lost_silent + 0 }' "$KEEPER_LOG")
n_lost_warned=$(echo "$lost_report" | sed -n 's/^warned //p')
n_lost_silent=$(echo "$lost_report" | sed -n 's/^silent //p')
if grep -q '^unexplained: ' <<<"$lost_report"; then
	fail "recoveries lost nodes, handles or writes: $(echo "$lost_report" | grep '^unexplained: ')"
fi
warnings=$(grep -E 'warning: |error: ' "$KEEPER_LOG" | sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn)

say "unmounting"
umount "$M" || fail "umount $M failed"
wait_gone "$KEEPER" 30 || fail "the keeper did not exit after the unmount"
wait "$KEEPER"
st=$?
[ "$st" = 0 ] || fail "the keeper exited with status $st after the unmount"
KEEPER=

# ---- the report -------------------------------------------------------------------------

total_calls=0
for w in "${WORKLOADS[@]}"; do
	total_calls=$((total_calls + calls[$w]))
done

{
	echo
	echo "soak: $KILLS SIGKILLs of testfs ${TESTFS_OPTS[*]} under fusekeeper ($(uname -r), $(nproc) CPUs)"
	echo
	printf '%-10s %10s %6s %8s %8s %8s\n' sample "RSS (KiB)" fds threads nodes handles
	for i in "${!S_AT[@]}"; do
		printf '%-10s %10s %6s %8s %8s %8s\n' "${S_AT[i]}" "${S_RSS[i]}" "${S_FDS[i]}" \
			"${S_THR[i]}" "${S_NODES[i]}" "${S_HANDLES[i]}"
	done
	echo "(sample N: at rest after kill N's recovery; nodes and handles: restored by the latest recovery)"
	echo
	printf '%-8s %12s %12s %s\n' workload ops "calls" errors
	for w in "${WORKLOADS[@]}"; do
		printf '%-8s %12s %12s %s\n' "$w" "${ops[$w]}" "${calls[$w]}" 0
	done
	printf '%-8s %12s %12s %s\n' total "" "$total_calls" 0
	echo
	elapsed=$((t_end - t_start))
	echo "time: $((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000))) s for $KILLS kills, $((elapsed / KILLS)) ms per cycle"
	# Columns of $OUT/kills: kill victim exit_ms recovered_ms keeper_ms cycle_ms rss_kib.
	sort -n -k3 "$OUT/kills" | awk '!/^#/ { v[n++] = $3 } END {
		print "kill -> EXIT event:       median " v[int(n / 2)] " ms, min " v[0] ", max " v[n - 1] }'
	sort -n -k4 "$OUT/kills" | awk '!/^#/ { v[n++] = $4 } END {
		print "kill -> RECOVERED event:  median " v[int(n / 2)] " ms, min " v[0] ", max " v[n - 1] }'
	sort -n -k5 "$OUT/kills" | awk '!/^#/ { v[n++] = $5 } END {
		print "RECOVERED <ms> (keeper):  median " v[int(n / 2)] " ms, min " v[0] ", max " v[n - 1] }'
	sort -n -k6 "$OUT/kills" | awk '!/^#/ { v[n++] = $6 } END {
		print "cycle (wait for progress and uptime, kill, recovery): median " v[int(n / 2)] " ms, max " v[n - 1] }'
	# RSS under load (write windows and buffers in use): the range of the first and last 100.
	awk -v k="$KILLS" '!/^#/ {
		w = $1 <= 100 ? 1 : 0; x = $1 > k - 100 ? 1 : 0
		if (w) { if (!a || $7 < amin) amin = $7; if ($7 > amax) amax = $7; a = 1 }
		if (x) { if (!b || $7 < bmin) bmin = $7; if ($7 > bmax) bmax = $7; b = 1 } }
		END { print "RSS under load, right after each recovery: kills 1-" (k < 100 ? k : 100) ": " amin "-" amax \
		      " KiB; kills " (k > 100 ? k - 99 : 1) "-" k ": " bmin "-" bmax " KiB" }' "$OUT/kills"
	echo "back-offs: $n_backoff; handles or write windows lost: 0"
	echo "nodes lost: $n_lost_warned removed or replaced by a request in flight that the dead daemon did (the keeper warns);"
	echo "            $n_lost_silent with no name left (unlinked, awaiting the kernel's FORGET; no warning)"
	if [ -n "$warnings" ]; then
		echo "keeper warnings and errors (numbers as N):"
		echo "$warnings" | head -n 20 | sed 's/^/  /'
	else
		echo "keeper warnings and errors: none"
	fi
} | tee "$OUT/summary"

# Flat: the same fds at every sample, and RSS not growing with the kills. RSS at rest still
# moves by a few hundred KiB from sample to sample (the heap as the last burst of write
# windows left it), so the growth judged is the least-squares slope of the samples from kill
# 100 on (10 with fewer kills) times the kills they span, not the difference of two samples.
fds_flat=1
for i in "${!S_AT[@]}"; do
	[ "${S_FDS[i]}" = "${S_FDS[0]}" ] || fds_flat=0
done
from=100
[ "$KILLS" -ge 200 ] || from=10
fit=$(for i in "${!S_AT[@]}"; do
	[[ ${S_AT[i]} =~ ^[0-9]+$ ]] && [ "${S_AT[i]}" -ge "$from" ] && echo "${S_AT[i]} ${S_RSS[i]}"
done | awk '{ n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2; if (n == 1) x0 = $1; x1 = $1; y1 = $2; if (n == 1) y0 = $2 }
	END { if (n < 2 || sxx * n == sx * sx) { print "0 0 0 0 " n; exit }
	      b = (n * sxy - sx * sy) / (n * sxx - sx * sx); printf "%d %d %d %.3f %d\n", b * (x1 - x0), y0, y1, b, n }')
read -r growth rss_from rss_to slope nfit <<<"$fit"
judged=1
if [ "$nfit" -lt 3 ]; then
	# Two samples at rest differ by a few hundred KiB either way: no trend in that.
	echo "RSS growth is not judged: $nfit samples at rest from kill $from (at least 200 kills are needed)" |
		tee -a "$OUT/summary"
	judged=0
	growth=0
fi
verdict="RSS at rest $rss_from KiB at kill $from, $rss_to KiB at kill $KILLS; fitted over $nfit samples: $slope KiB per kill, $growth KiB over the run (slack $RSS_SLACK_KIB); fds ${S_FDS[*]}"
[ "$judged" = 1 ] || verdict="fds ${S_FDS[*]}; RSS at rest $rss_from KiB at kill $from, $rss_to KiB at kill $KILLS (not judged)"
if [ "$growth" -le "$RSS_SLACK_KIB" ] && [ "$fds_flat" = 1 ]; then
	echo "verdict: flat: $verdict" | tee -a "$OUT/summary"
else
	echo "verdict: NOT flat: $verdict" | tee -a "$OUT/summary"
	fail "the keeper grows: $verdict"
fi
PASSED="$KILLS kills, $total_calls checked calls, 0 errors, keeper flat ($growth KiB fitted RSS growth from kill $from, fds ${S_FDS[0]})"
[ "$judged" = 1 ] || PASSED="$KILLS kills, $total_calls checked calls, 0 errors, fds flat (${S_FDS[0]}), RSS growth not judged"
