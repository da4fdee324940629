#!/bin/bash
# bench/remount.sh BUILD_DIR - what remount mode costs and how fast it replaces mounts.
#
#   data path  libfuse's passthrough_ll over one backing directory, mounted directly
#              and under `fusekeeper --mode=remount`, measured side by side in one run:
#              walk (find + stat + cat of BENCH_FILES small files), write (BENCH_SEQ_MB
#              MiB, dd bs=1M conv=fsync) and read (the same, back, dd bs=1M), cold caches
#              before each, BENCH_RUNS repetitions alternating which mount goes first.
#              Prints each repetition's keeper/direct ratio, their median and their
#              geometric mean (with an even BENCH_RUNS, as many runs start with either
#              mount: what the first measurement of a pair gains or loses cancels). Remount mode
#              has no relay: the daemon reads the kernel's /dev/fuse itself, so the
#              expected ratio is 1.00 within noise.
#   recovery   for each N in BENCH_NS: N mount namespaces hold the mount (the keeper's,
#              and N-1 others made with unshare, each with its copy of the mount and a
#              bind of a sub-directory: 2N-1 mounts); the daemon is SIGKILLed
#              BENCH_KILLS times and the keeper's REMOUNTED event gives the time from
#              the death to the last mount replaced (min / median / max). Namespaces
#              other programs make meanwhile copy the mount too: the count replaced is
#              printed per kill.
# The machine's load average is printed before and after. With BENCH_NULL=1 the keeper's
# mount is replaced by a second direct one and recovery is not measured: the ratios then show
# the noise of the machine alone. See bench/README.md. Needs root.
# Not part of the tests.
#
# Environment: BENCH_FILES (2000), BENCH_RUNS (6), BENCH_SEQ_MB (256), BENCH_NS ("1 10 100"),
# BENCH_KILLS (5), BENCH_NULL (unset), BENCH_TMP (/tmp).
set -euo pipefail

. "$(dirname "$0")/lib-passthrough.sh"
bench_start "it mounts, unshares and drops caches" "$@"

FILES=${BENCH_FILES:-2000}
RUNS=${BENCH_RUNS:-6}
SEQ_MB=${BENCH_SEQ_MB:-256}
NSES=${BENCH_NS:-1 10 100}
KILLS=${BENCH_KILLS:-5}
[ -x "$FK" ] || die "$FK is not built (run make)"
. "$(dirname "$0")/../scripts/common.sh"

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/fusekeeper-bench-remount.XXXXXX")
B=$WORK/backing
DM=$WORK/direct
KM=$WORK/keeper
EVENTS=$WORK/events
mkdir "$B" "$DM" "$KM" "$B/sub" "$WORK/nsb"
DIRECT_PID=
KEEPER_PID=
NS_PIDS=()

gone() { ! alive "$1"; }

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

stop_namespaces() {
	local pid
	[ ${#NS_PIDS[@]} -gt 0 ] || return 0
	kill -KILL "${NS_PIDS[@]}" 2>/dev/null
	for pid in "${NS_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	NS_PIDS=()
}

cleanup() {
	set +e
	trap '' INT TERM
	stop_namespaces
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

start_direct() {
	"$PT" -f -o source="$B" "$DM" >"$WORK/direct.log" 2>&1 &
	DIRECT_PID=$!
	poll 10 mountpoint -q "$DM" || die "the direct mount did not come up: $(cat "$WORK/direct.log")"
}

ready() { grep -q '^READY ' "$EVENTS"; }

start_keeper() {
	: >"$EVENTS"
	"$FK" --mode=remount --status-fd=3 --max-restarts=1000 --restart-window=600 "$KM" -- \
		"$PT" -f -o source="$B" {} 3>"$EVENTS" >"$WORK/keeper.log" 2>&1 &
	KEEPER_PID=$!
	poll 10 ready || die "the keeper did not become READY: $(cat "$WORK/keeper.log")"
}

stats() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { printf "min %s / median %s / max %s", v[1], v[int((NR + 1) / 2)], v[NR] }'
}
load() { cut -d' ' -f1-3 /proc/loadavg; }


drop_caches
LOAD_START=$(load)
echo "bench: $(uname -r), $(nproc) CPUs, passthrough_ll of libfuse $(pkg-config --modversion fuse3)," \
	"cold caches: $COLD, load average $LOAD_START, scratch: $WORK"
echo "bench: creating $FILES small files..."
make_tree
start_direct
if [ -n "${BENCH_NULL:-}" ]; then
	# The null comparison: the same daemon mounted directly twice.
	"$PT" -f -o source="$B" "$KM" >"$WORK/direct2.log" 2>&1 &
	KEEPER_PID=$!
	poll 10 mountpoint -q "$KM" || die "the second direct mount did not come up"
	NSES=
else
	start_keeper
fi
# Both mounts as the kernel sees them: the same daemon, and what each mount was given.
for m in "$DM" "$KM"; do
	echo "bench: mounted: $(awk -v m="$m" '$5 == m { $1 = $2 = $3 = ""; print }' /proc/self/mountinfo)"
done

# ---- the data path, side by side ------------------------------------------------------------

declare -A T_D T_K
declare -a R_WALK=() R_WRITE=() R_READ=()
mnt_of() { if [ "$1" = direct ]; then echo "$DM"; else echo "$KM"; fi; }
one() { # KIND WHICH: runs KIND (walk, write, read) on mount WHICH, sets T_<WHICH>[KIND]
	local kind=$1 which=$2 mnt t
	mnt=$(mnt_of "$which")
	drop_caches
	case $kind in
	walk) t=$(timed walk "$mnt" "$which") ;;
	write) t=$(timed seq_write "$mnt" "$which") ;;
	read) t=$(timed seq_read "$mnt" "$which") ;;
	esac
	if [ "$which" = direct ]; then T_D[$kind]=$t; else T_K[$kind]=$t; fi
}
for ((r = 1; r <= RUNS; r++)); do
	order="direct keeper"
	[ $((r % 2)) = 0 ] && order="keeper direct"
	for kind in walk write read; do
		for w in $order; do one "$kind" "$w"; done
	done
	rm -f "$B"/seq.*
	R_WALK+=("$(ratio "${T_K[walk]}" "${T_D[walk]}")")
	R_WRITE+=("$(ratio "${T_K[write]}" "${T_D[write]}")")
	R_READ+=("$(ratio "${T_K[read]}" "${T_D[read]}")")
	echo "bench: run $r ($order first): walk ${T_D[walk]} / ${T_K[walk]} s = ${R_WALK[-1]};" \
		"write ${T_D[write]} / ${T_K[write]} s = ${R_WRITE[-1]};" \
		"read ${T_D[read]} / ${T_K[read]} s = ${R_READ[-1]}; load $(load)"
done
stop_mount "$DM" "$DIRECT_PID"
DIRECT_PID=

# ---- recovery against the number of namespaces ----------------------------------------------

# Starts namespaces until N-1 hold the mount; each prints "ready" once its bind is made.
grow_namespaces() {
	local want=$(($1 - 1)) i
	for ((i = ${#NS_PIDS[@]}; i < want; i++)); do
		# Private: the same directory holds a different bind in each namespace.
		unshare -m --propagation private -- sh -c \
			"mount --bind $KM/sub $WORK/nsb && echo ready && exec sleep 1000000" \
			>"$WORK/ns.$i" 2>&1 </dev/null &
		NS_PIDS+=($!)
	done
	for ((i = 0; i < want; i++)); do
		poll 30 grep -q '^ready' "$WORK/ns.$i" || die "namespace $i did not come up: $(cat "$WORK/ns.$i")"
	done
}
remounted_more_than() { [ "$(grep -c '^REMOUNTED ' "$EVENTS")" -gt "$1" ]; }

declare -A REC
for n in $NSES; do
	grow_namespaces "$n"
	vals=()
	swaps=()
	for ((i = 1; i <= KILLS; i++)); do
		pid=$(awk '$1 == "DAEMON" { p = $2 } END { print p }' "$EVENTS")
		nrem=$(grep -c '^REMOUNTED ' "$EVENTS" || true)
		kill -KILL "$pid"
		poll 60 remounted_more_than "$nrem" || die "no REMOUNTED after a kill with $n namespaces"
		read -r _ _ replaced failed ms < <(grep '^REMOUNTED ' "$EVENTS" | tail -n 1)
		# At least: namespaces other sessions made meanwhile hold copies of the mount too.
		[ "$replaced" -ge $((2 * n - 1)) ] && [ "$failed" = 0 ] ||
			die "$n namespaces: expected $((2 * n - 1)) mounts replaced, 0 failed: REMOUNTED $replaced $failed"
		vals+=("$ms")
		swaps+=("$(sed -n 's/.*Replaced [0-9]* mounts\{0,1\} of the old instance .* in \([0-9]*\) ms.*/\1/p' \
			"$WORK/keeper.log" | tail -n 1)")
		echo "bench: $n namespaces, kill $i: $replaced mounts replaced, ${ms} ms from the death" \
			"(the swap itself ${swaps[-1]} ms); load $(load)"
		# A daemon that dies within 1 s of taking over is a failed start: space the kills.
		sleep 1.2
	done
	REC[$n]="$(stats "${vals[@]}") ms; swap alone $(stats "${swaps[@]}") ms"
done
LOAD_END=$(load)
stop_namespaces
stop_mount "$KM" "$KEEPER_PID"
KEEPER_PID=

median_of() { printf '%s\n' "$@" | median; }
gmean() { printf '%s\n' "$@" | awk '{ s += log($1) } END { printf "%.2f", exp(s / NR) }'; }
{
	echo
	echo "fusekeeper remount bench, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) CPUs," \
		"cold caches: $COLD, load average $LOAD_START at the start, $LOAD_END at the end"
	echo "data path, ${BENCH_NULL:+NULL COMPARISON, a second direct mount in place of the keeper: }keeper (--mode=remount) / direct, $RUNS alternating runs: each run's ratio; median; geometric mean"
	printf '  %-26s %-48s %s; %s\n' "walk: $FILES files" "${R_WALK[*]}" "$(median_of "${R_WALK[@]}")" "$(gmean "${R_WALK[@]}")"
	printf '  %-26s %-48s %s; %s\n' "write: $SEQ_MB MiB, fsync" "${R_WRITE[*]}" "$(median_of "${R_WRITE[@]}")" "$(gmean "${R_WRITE[@]}")"
	printf '  %-26s %-48s %s; %s\n' "read: $SEQ_MB MiB, cold" "${R_READ[*]}" "$(median_of "${R_READ[@]}")" "$(gmean "${R_READ[@]}")"
	[ -z "$NSES" ] || echo "recovery, death -> last mount replaced (REMOUNTED), $KILLS kills each:"
	for n in $NSES; do
		printf '  %3d namespaces, %3d mounts: %s\n' "$n" $((2 * n - 1)) "${REC[$n]}"
	done
} | tee "$OUT/remount-results-$(date +%Y%m%d-%H%M%S).txt"
