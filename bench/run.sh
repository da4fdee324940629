#!/bin/bash
# bench/run.sh BUILD_DIR - what proxy mode costs beside the direct mount and beside a minimal
# relay, and how fast it recovers.
#
# Mounts libfuse's passthrough_ll example (built from the installed libfuse3-dev into
# BUILD_DIR/tests/) three times over one backing directory:
#   direct    passthrough_ll mounting its own mountpoint
#   relay     under BUILD_DIR/bench/fkrelay, the least a relay can be (two threads, one copy
#             each way, no state): what any relay's hop costs
#   keeper    under BUILD_DIR/fusekeeper (proxy mode)
# once with passthrough_ll's default caching and once with -o cache=never (every operation
# reaches the daemon), and times on each, in rounds that rotate which mount goes first:
#   walk      find + stat + cat of BENCH_FILES small files, cold caches
#   meta      create, stat and unlink BENCH_META empty files in a fresh directory
#   write     BENCH_SEQ_MB MiB sequential write, dd bs=1M conv=fsync
#   read      that file read back with cold caches, dd bs=1M
#   randread  BENCH_RR_JOBS threads reading BENCH_RR_MB MiB each of that file in 4 KiB pieces
#             at random offsets, cold caches (fio, psync)
# The medians of BENCH_RUNS rounds, and their ratios, close the run; then (keeper only, default
# caching) BENCH_KILLS times: SIGKILL the daemon, time until a stat through the mount succeeds,
# and the keeper's own RECOVERED ms. See bench/README.md. Needs root. Not part of the tests.
#
# Environment: BENCH_FILES (5000), BENCH_META (5000), BENCH_RUNS (3), BENCH_SEQ_MB (1024),
# BENCH_RR_JOBS (4), BENCH_RR_MB (32), BENCH_KILLS (10), BENCH_CACHES ("default never"),
# BENCH_WORKLOADS ("walk meta write read randread"), BENCH_TMP (/tmp: where the backing
# directory and mountpoints go), BENCH_RELAY_OPTS (options for fkrelay: "--uring" puts the
# relay's kernel side on FUSE-over-io_uring, which needs Linux 6.14 or later with
# /sys/module/fuse/parameters/enable_uring set to Y).
set -euo pipefail

. "$(dirname "$0")/lib-passthrough.sh"
bench_start "it mounts and drops caches" "$@"

FILES=${BENCH_FILES:-5000}
META=${BENCH_META:-5000}
RUNS=${BENCH_RUNS:-3}
SEQ_MB=${BENCH_SEQ_MB:-1024}
RR_JOBS=${BENCH_RR_JOBS:-4}
RR_MB=${BENCH_RR_MB:-32}
KILLS=${BENCH_KILLS:-10}
CACHES=${BENCH_CACHES:-default never}
WORKLOADS=${BENCH_WORKLOADS:-walk meta write read randread}
RELAY=$BUILD_DIR/bench/fkrelay
read -ra RELAY_OPTS <<<"${BENCH_RELAY_OPTS:-}"

[ -x "$FK" ] || die "$FK is not built: run make"
[ -x "$RELAY" ] || die "$RELAY is not built: run make"
for o in "${RELAY_OPTS[@]}"; do
	case $o in
	--uring)
		[ "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null)" = Y ] ||
			die "BENCH_RELAY_OPTS=--uring: FUSE-over-io_uring is off or missing here" \
				"(Linux 6.14+; echo Y >/sys/module/fuse/parameters/enable_uring)"
		;;
	*) die "BENCH_RELAY_OPTS: fkrelay has no option '$o'" ;;
	esac
done
command -v fio >/dev/null || die "fio is not installed: scripts/install-deps.sh bench"
for n in "$FILES" "$META" "$RUNS" "$SEQ_MB" "$RR_JOBS" "$RR_MB" "$KILLS"; do
	[[ $n =~ ^[0-9]+$ ]] || die "BENCH_* counts must be numbers, not '$n'"
done
[ "$RUNS" -ge 1 ] || die "BENCH_RUNS must be at least 1"
for c in $CACHES; do
	case $c in default | never) ;; *) die "BENCH_CACHES: '$c' is neither default nor never" ;; esac
done
for w in $WORKLOADS; do
	case $w in walk | meta | write | read | randread) ;; *) die "BENCH_WORKLOADS: no workload '$w'" ;; esac
done

# ---- scratch space, mounts, cleanup -------------------------------------

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/fusekeeper-bench.XXXXXX")
B=$WORK/backing
EVENTS=$WORK/events
mkdir "$B" "$WORK/direct" "$WORK/relay" "$WORK/keeper"
KINDS="direct relay keeper"
declare -A PID=()

. "$(dirname "$0")/../scripts/common.sh"

gone() { ! alive "$1"; }
recovered_more_than() { [ "$(grep -c '^RECOVERED ' "$EVENTS")" -gt "$1" ]; }

stop_mount() {
	local kind=$1 mnt=$WORK/$1 pid=${PID[$1]:-}
	[ -n "$pid" ] || return 0
	mountpoint -q "$mnt" && umount "$mnt" 2>/dev/null
	if ! poll 10 gone "$pid"; then
		mountpoint -q "$mnt" && umount -l "$mnt" 2>/dev/null
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null || true
	PID[$kind]=
}

cleanup() {
	set +e
	trap '' INT TERM
	for k in $KINDS; do stop_mount "$k"; done
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

ready() { grep -q '^READY ' "$EVENTS"; }
# A mount answers once its daemon has answered FUSE_INIT (a stat waits until then).
answers() { stat "$1" >/dev/null 2>&1; }

# start_mount KIND CACHE: passthrough_ll on $WORK/KIND, with -o cache=never for CACHE never.
start_mount() {
	local kind=$1 mnt=$WORK/$1 o=source=$B
	[ "$2" = never ] && o=$o,cache=never
	case $kind in
	direct) "$PT" -f -o "$o" "$mnt" >"$WORK/$kind.log" 2>&1 & ;;
	relay) "$RELAY" "${RELAY_OPTS[@]}" "$mnt" -- "$PT" -f -o "$o" {} >"$WORK/$kind.log" 2>&1 & ;;
	keeper)
		: >"$EVENTS"
		"$FK" --status-fd=3 --max-restarts=1000 --restart-window=600 "$mnt" -- \
			"$PT" -f -o "$o" {} 3>"$EVENTS" >"$WORK/$kind.log" 2>&1 &
		;;
	esac
	PID[$kind]=$!
	[ "$kind" != keeper ] || poll 10 ready || die "the keeper did not become READY: $(cat "$WORK/$kind.log")"
	poll 10 mountpoint -q "$mnt" && poll 10 answers "$mnt" ||
		die "the $kind mount did not come up: $(cat "$WORK/$kind.log")"
}

# ---- workloads: each times one run on MNT, as TAG -----------------------------

meta() {
	local d=$1/meta.$2
	mkdir "$d"
	(cd "$d" && seq -f 'm%.0f' 1 "$META" | xargs touch && seq -f 'm%.0f' 1 "$META" |
		xargs stat -c %i >/dev/null && seq -f 'm%.0f' 1 "$META" | xargs rm -f)
	rmdir "$d"
}

randread() {
	fio --name=randread --filename="$1/seq.$2" --rw=randread --bs=4k --ioengine=psync \
		--numjobs="$RR_JOBS" --size="${SEQ_MB}M" --io_size="${RR_MB}M" --invalidate=1 \
		--randrepeat=0 --group_reporting --output=/dev/null
}

# prepare WORKLOAD KIND: what comes before a timed run of WORKLOAD on KIND's mount: the file
# a write makes is removed, then the caches are dropped.
prepare() {
	[ "$1" != write ] || rm -f "$B/seq.$2"
	drop_caches
}

# run_one WORKLOAD KIND: prints the seconds WORKLOAD took on KIND's mount.
run_one() {
	local w=$1 mnt=$WORK/$2
	case $w in
	walk) timed walk "$mnt" "$2" ;;
	meta) timed meta "$mnt" "$2" ;;
	write) timed seq_write "$mnt" "$2" ;;
	read) timed seq_read "$mnt" "$2" ;;
	randread) timed randread "$mnt" "$2" ;;
	esac
}

# ---- the rounds ----------------------------------------------------------------

declare -A T=()	# CACHE:WORKLOAD:KIND -> the runs' seconds, one a line
declare -A C=()	# CACHE:WORKLOAD:KIND -> the relay's CPU ms of each run (relay and keeper)
CLK=$(getconf CLK_TCK)
# cpu_ms PID: the CPU time (user + system, every thread) PID has used, in ms. Less moved by
# the machine's load than wall time: what the relay itself costs per workload.
cpu_ms() { awk -v clk="$CLK" '{ print int(($14 + $15) * 1000 / clk) }' "/proc/$1/stat"; }

echo "bench: $(uname -r), $(nproc) CPUs, passthrough_ll of libfuse $(pkg-config --modversion fuse3)," \
	"cold caches: $COLD, scratch: $WORK, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: creating $FILES small files..."
make_tree
mkdir "$B/rec"
# The file read and randread need even when write is not measured.
dd if=/dev/zero of="$B/seq.base" bs=1M count="$SEQ_MB" status=none

orders=("direct relay keeper" "relay keeper direct" "keeper direct relay")
for cache in $CACHES; do
	for k in $KINDS; do start_mount "$k" "$cache"; done
	for k in $KINDS; do [ -f "$B/seq.$k" ] || cp --reflink=auto "$B/seq.base" "$B/seq.$k"; done
	for ((r = 1; r <= RUNS; r++)); do
		order=${orders[$(((r - 1) % 3))]}
		line="bench: cache=$cache round $r ($order):"
		for w in $WORKLOADS; do
			line+=" $w"
			for k in $order; do
				# The FORGETs of dropped inodes are not the workload's: measured after.
				prepare "$w" "$k"
				[ "$k" = direct ] || c=$(cpu_ms "${PID[$k]}")
				s=$(run_one "$w" "$k") || die "$w on the $k mount failed"
				T[$cache:$w:$k]+="$s"$'\n'
				[ "$k" = direct ] || C[$cache:$w:$k]+="$(($(cpu_ms "${PID[$k]}") - c))"$'\n'
				line+=" $k ${s}s"
			done
			line+=";"
		done
		echo "$line"
	done
	for k in $KINDS; do stop_mount "$k"; done
done

# ---- recovery (keeper, default caching) -----------------------------------------

declare -a REC_STAT=() REC_EV=()
if [ "$KILLS" -gt 0 ]; then
	start_mount keeper default
	KM=$WORK/keeper
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
		# The keeper counts a daemon dying within 300 ms of taking over as a
		# failed start; space the kills so that each one is an ordinary crash.
		sleep 1.2
	done
	stop_mount keeper
fi

stats() {
	local v
	v=$(printf '%s\n' "$@" | sort -g)
	printf 'min %s / median %s / max %s' "$(head -n 1 <<<"$v")" "$(median <<<"$v")" \
		"$(tail -n 1 <<<"$v")"
}

what() {
	case $1 in
	walk) echo "walk: $FILES files" ;;
	meta) echo "meta: $META create+stat+unlink" ;;
	write) echo "write: $SEQ_MB MiB, fsync" ;;
	read) echo "read: $SEQ_MB MiB, cold" ;;
	randread) echo "randread: 4 KiB, $RR_JOBS x $RR_MB MiB" ;;
	esac
}

mkdir -p "$OUT"
{
	echo
	echo "fusekeeper bench, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) CPUs, cold caches: $COLD," \
		"medians of $RUNS rounds, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
	for cache in $CACHES; do
		echo "passthrough_ll, cache=$cache:"
		printf '  %-36s %9s %9s %9s %9s %9s %9s\n' "" direct relay keeper \
			relay/dir keeper/dir keep/relay
		for w in $WORKLOADS; do
			d=$(printf '%s' "${T[$cache:$w:direct]}" | median)
			r=$(printf '%s' "${T[$cache:$w:relay]}" | median)
			k=$(printf '%s' "${T[$cache:$w:keeper]}" | median)
			printf '  %-36s %8ss %8ss %8ss %9s %9s %9s\n' "$(what "$w")" "$d" "$r" "$k" \
				"$(ratio "$r" "$d")" "$(ratio "$k" "$d")" "$(ratio "$k" "$r")"
		done
	done
	echo "CPU time of the relay process (fkrelay, fusekeeper), ms, medians:"
	for cache in $CACHES; do
		printf '  %-36s %9s %9s %9s\n' "cache=$cache" relay keeper keep/relay
		for w in $WORKLOADS; do
			r=$(printf '%s' "${C[$cache:$w:relay]}" | median)
			k=$(printf '%s' "${C[$cache:$w:keeper]}" | median)
			printf '  %-36s %9s %9s %9s\n' "$(what "$w")" "$r" "$k" "$(ratio "$k" "$r")"
		done
	done
	if [ "$KILLS" -gt 0 ]; then
		echo "recovery over $KILLS SIGKILLs (ms):"
		echo "  kill -> first successful stat:  $(stats "${REC_STAT[@]}")"
		echo "  RECOVERED events (keeper):      $(stats "${REC_EV[@]}")"
	fi
} | tee "$OUT/results-$(date +%Y%m%d-%H%M%S).txt"
