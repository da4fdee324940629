#!/bin/bash
# bench/run.sh BUILD_DIR - what fusekeeper costs and how fast it recovers.
#
# Builds libfuse's passthrough_ll example from the installed libfuse3-dev
# package into BUILD_DIR/bench/, mounts it twice over one backing directory -
# directly, and under BUILD_DIR/fusekeeper - and measures side by side:
#   walk      find + stat + cat of BENCH_FILES small files, cold caches,
#             median of BENCH_RUNS runs
#   write     BENCH_SEQ_MB MiB sequential write, dd bs=1M conv=fsync
#   read      the same file read back with cold caches, dd bs=1M
#             (write and read: median of BENCH_RUNS runs, alternating order)
#   recovery  (keeper only) BENCH_KILLS times: SIGKILL the daemon, time until a
#             stat through the mount succeeds; also the keeper's RECOVERED ms
# See bench/README.md.  Needs root.  Not part of the tests.
#
# Environment: BENCH_FILES (5000), BENCH_RUNS (3), BENCH_SEQ_MB (1024),
# BENCH_KILLS (10), BENCH_TMP (/tmp: where the backing dir and mountpoints go).
set -euo pipefail

. "$(dirname "$0")/lib-passthrough.sh"
bench_start "it mounts and drops caches" "$@"

FILES=${BENCH_FILES:-5000}
RUNS=${BENCH_RUNS:-3}
SEQ_MB=${BENCH_SEQ_MB:-1024}
KILLS=${BENCH_KILLS:-10}

HAVE_FK=1
[ -x "$FK" ] || HAVE_FK=
[ -n "$HAVE_FK" ] || echo "bench: $FK is not built: measuring the direct mount only" >&2

# ---- scratch space, mounts, cleanup -------------------------------------

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/fusekeeper-bench.XXXXXX")
B=$WORK/backing
DM=$WORK/direct
KM=$WORK/keeper
EVENTS=$WORK/events
mkdir "$B" "$DM" "$KM"
DIRECT_PID=
KEEPER_PID=

. "$(dirname "$0")/../scripts/common.sh"

gone() { ! alive "$1"; }
recovered_more_than() { [ "$(grep -c '^RECOVERED ' "$EVENTS")" -gt "$1" ]; }

stop_mount() {
	local mnt=$1 pid=$2
	[ -n "$pid" ] || return 0
	mountpoint -q "$mnt" && umount "$mnt" 2>/dev/null
	if ! poll 10 gone "$pid"; then
		mountpoint -q "$mnt" && umount -l "$mnt" 2>/dev/null
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	set +e
	trap '' INT TERM
	stop_mount "$KM" "$KEEPER_PID"
	stop_mount "$DM" "$DIRECT_PID"
	rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

COLD=yes
drop_caches() {
	sync
	if [ "$COLD" = yes ]; then
		echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || COLD=no
	fi
}
drop_caches
[ "$COLD" = yes ] || echo "bench: /proc/sys/vm/drop_caches is not writable: runs after the first are warm" >&2

start_direct() {
	"$PT" -f -o source="$B" "$DM" >"$WORK/direct.log" 2>&1 &
	DIRECT_PID=$!
	poll 10 mountpoint -q "$DM" || die "the direct mount did not come up: $(cat "$WORK/direct.log")"
}

ready() { grep -q '^READY ' "$EVENTS"; }

start_keeper() {
	: >"$EVENTS"
	"$FK" --status-fd=3 --max-restarts=1000 --restart-window=600 "$KM" -- \
		"$PT" -f -o source="$B" {} 3>"$EVENTS" >"$WORK/keeper.log" 2>&1 &
	KEEPER_PID=$!
	poll 10 ready || die "the keeper did not become READY: $(cat "$WORK/keeper.log")"
}

# ---- measurements -----------------------------------------------------------

secs() { if [ -n "$1" ]; then echo "$1s"; else echo "-"; fi; }


echo "bench: $(uname -r), $(nproc) CPUs, passthrough_ll of libfuse $(pkg-config --modversion fuse3)," \
	"cold caches: $COLD, scratch: $WORK"
echo "bench: creating $FILES small files..."
make_tree
mkdir "$B/rec"

start_direct
[ -n "$HAVE_FK" ] && start_keeper

declare -a W_D=() W_K=()
for ((r = 1; r <= RUNS; r++)); do
	drop_caches
	W_D+=("$(timed walk "$DM")")
	if [ -n "$HAVE_FK" ]; then
		drop_caches
		W_K+=("$(timed walk "$KM")")
	fi
	echo "bench: walk run $r: direct ${W_D[-1]} s${HAVE_FK:+, keeper ${W_K[-1]} s}"
done
WALK_D=$(printf '%s\n' "${W_D[@]}" | median)
WALK_K=
[ -n "$HAVE_FK" ] && WALK_K=$(printf '%s\n' "${W_K[@]}" | median)

# Write and read, RUNS times each, alternating which mount goes first (the
# first big write after a quiet spell tends to be the slower one).
declare -a WR_DS=() WR_KS=() RD_DS=() RD_KS=()
seq_one() {
	local which=$1 mnt=$2
	drop_caches
	if [ "$which" = direct ]; then WR_DS+=("$(timed seq_write "$mnt" "$which")"); else WR_KS+=("$(timed seq_write "$mnt" "$which")"); fi
}
seq_back() {
	local which=$1 mnt=$2
	drop_caches
	if [ "$which" = direct ]; then RD_DS+=("$(timed seq_read "$mnt" "$which")"); else RD_KS+=("$(timed seq_read "$mnt" "$which")"); fi
}
for ((r = 1; r <= RUNS; r++)); do
	order="direct keeper"
	[ $((r % 2)) = 0 ] && order="keeper direct"
	[ -n "$HAVE_FK" ] || order=direct
	for w in $order; do
		if [ "$w" = direct ]; then seq_one direct "$DM"; else seq_one keeper "$KM"; fi
	done
	for w in $order; do
		if [ "$w" = direct ]; then seq_back direct "$DM"; else seq_back keeper "$KM"; fi
	done
	rm -f "$B"/seq.*
	echo "bench: $SEQ_MB MiB run $r: write direct ${WR_DS[-1]} s${HAVE_FK:+, keeper ${WR_KS[-1]} s};" \
		"read direct ${RD_DS[-1]} s${HAVE_FK:+, keeper ${RD_KS[-1]} s}"
done
WR_D=$(printf '%s\n' "${WR_DS[@]}" | median)
RD_D=$(printf '%s\n' "${RD_DS[@]}" | median)
WR_K=
RD_K=
if [ -n "$HAVE_FK" ]; then
	WR_K=$(printf '%s\n' "${WR_KS[@]}" | median)
	RD_K=$(printf '%s\n' "${RD_KS[@]}" | median)
fi

declare -a REC_STAT=() REC_EV=()
if [ -n "$HAVE_FK" ]; then
	echo "bench: killing the daemon $KILLS times..."
	for ((i = 1; i <= KILLS; i++)); do
		pid=$(awk '$1 == "DAEMON" { p = $2 } END { print p }' "$EVENTS")
		nrec=$(grep -c '^RECOVERED ' "$EVENTS" || true)
		# A name never looked up through the mount: its stat needs a LOOKUP,
		# which only a daemon can answer.
		: >"$B/rec/r$i"
		t0=$(now_us)
		kill -KILL "$pid"
		# [ -e ] is a stat(2) from bash itself: no fork in the measurement.
		until [ -e "$KM/rec/r$i" ]; do
			[ $(($(now_us) - t0)) -lt 30000000 ] || die "no successful stat 30 s after kill $i"
		done
		t1=$(now_us)
		REC_STAT+=("$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f\n", d / 1000 }')")
		poll 30 recovered_more_than "$nrec" ||
			die "no RECOVERED event after kill $i"
		REC_EV+=("$(grep '^RECOVERED ' "$EVENTS" | tail -n 1 | awk '{ print $3 }')")
		echo "bench: kill $i: stat after ${REC_STAT[-1]} ms, RECOVERED ${REC_EV[-1]} ms"
		# The contract counts a daemon dying within 1 s of taking over as a
		# failed start; space the kills so that each one is an ordinary crash.
		sleep 1.2
	done
fi

stats() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { printf "min %s / median %s / max %s", v[1], v[int((NR + 1) / 2)], v[NR] }'
}

stop_mount "$KM" "$KEEPER_PID"
KEEPER_PID=
stop_mount "$DM" "$DIRECT_PID"
DIRECT_PID=

{
	echo
	echo "fusekeeper bench, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) CPUs, cold caches: $COLD"
	printf '%-34s %10s %10s %14s\n' "" "direct" "keeper" "keeper/direct"
	printf '%-34s %10s %10s %14s\n' "walk: $FILES files (median of $RUNS)" \
		"$(secs "$WALK_D")" "$(secs "$WALK_K")" "$(ratio "$WALK_K" "$WALK_D")"
	printf '%-34s %10s %10s %14s\n' "write: $SEQ_MB MiB, fsync (median)" \
		"$(secs "$WR_D")" "$(secs "$WR_K")" "$(ratio "$WR_K" "$WR_D")"
	printf '%-34s %10s %10s %14s\n' "read: $SEQ_MB MiB, cold (median)" \
		"$(secs "$RD_D")" "$(secs "$RD_K")" "$(ratio "$RD_K" "$RD_D")"
	if [ -n "$HAVE_FK" ]; then
		echo "recovery over $KILLS SIGKILLs (ms):"
		echo "  kill -> first successful stat:  $(stats "${REC_STAT[@]}")"
		echo "  RECOVERED events (keeper):      $(stats "${REC_EV[@]}")"
	else
		echo "recovery: not measured (no keeper)"
	fi
} | tee "$OUT/results-$(date +%Y%m%d-%H%M%S).txt"
