#!/bin/bash
# bench/reinit.sh BUILD_DIR - what reinit mode costs and how fast it recovers, on a kernel with
# FUSE_DEV_IOC_REINIT (the patched fuse.ko of the 6.1 guest: vm/run.sh --bench 6.1, make vmbench).
#
#   data path  libfuse's passthrough_ll over one backing directory, mounted three times: directly,
#              under `fusekeeper --mode=reinit` and under `fusekeeper --mode=proxy`. Each round
#              runs walk (find + stat + cat of BENCH_FILES small files), write (BENCH_SEQ_MB MiB,
#              dd bs=1M conv=fsync) and read (the same back, dd bs=1M) on the three mounts back
#              to back, cold caches before each, in each of the six orders in turn, so that
#              each mount goes first, and follows each other mount, equally often over six
#              rounds (a measurement right after proxy's, on the busiest mount, ran slower in
#              rounds of three rotated orders, where direct followed proxy twice as often as
#              reinit did). Prints each round's ratio to the direct mount,
#              their median and geometric mean, and the median seconds of each mount. Reinit mode
#              has no relay: 1.00 within noise is expected; proxy relays every message.
#   recovery   on the reinit mount only: for each N in BENCH_NODES (cumulative), stat N files
#              through the mount so that the kernel holds N inodes (fuse_inode in /proc/slabinfo
#              is printed), then BENCH_KILLS times: bench/fkrecover SIGKILLs the daemon and, from
#              the kill, stats side by side a name never looked up (its LOOKUP needs the new
#              daemon) and a file stat'ed in the pass above, more than passthrough_ll's 1 s entry
#              and attribute timeout ago (its walk asks the daemon about nodes of the dead one:
#              they are healed). The first stat of each must succeed; one that fails is counted
#              with its errno, and the time to the first success is taken. Also the death as the
#              pidfd reports it and the keeper's RECOVERED <ms> (from noticing the death to the
#              kernel accepting the new daemon's INIT). Healing is lazy: nothing should grow
#              with N.
# See bench/README.md. Needs root and the patched fuse.ko. Not part of the tests.
#
# Environment: BENCH_FILES (1000), BENCH_RUNS (6), BENCH_SEQ_MB (64), BENCH_NODES
# ("1000 10000 100000"; a word "drop" in it drops the dentry and inode caches and starts the count
# again from none, e.g. "1000 100000 drop 1000"), BENCH_KILLS (5), BENCH_TMP (/tmp).
set -euo pipefail

. "$(dirname "$0")/lib-passthrough.sh"
bench_start "it mounts and drops caches" "$@"

FILES=${BENCH_FILES:-1000}
RUNS=${BENCH_RUNS:-6}
SEQ_MB=${BENCH_SEQ_MB:-64}
NODES=${BENCH_NODES:-1000 10000 100000}
KILLS=${BENCH_KILLS:-5}
[ -x "$FK" ] || die "$FK is not built (run make)"
FKRECOVER=$BUILD_DIR/bench/fkrecover
FKREINIT=$BUILD_DIR/tests/fkreinit
[ -x "$FKRECOVER" ] || die "$FKRECOVER is not built"
[ "$("$FKREINIT" probe 2>&1)" = present ] ||
	die "this kernel ($(uname -r)) has no FUSE_DEV_IOC_REINIT: run it in the 6.1 guest (vm/run.sh --bench 6.1)"
. "$(dirname "$0")/../scripts/common.sh"

# passthrough_ll keeps an O_PATH fd per inode: BENCH_NODES above the limit would measure the
# daemon running out of fds.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/fusekeeper-bench-reinit.XXXXXX")
B=$WORK/backing
declare -A MNT=([direct]=$WORK/direct [reinit]=$WORK/reinit [proxy]=$WORK/proxy) PID=()
mkdir "$B" "${MNT[@]}"

gone() { ! alive "$1"; }

stop_mount() { # NAME
	local mnt=${MNT[$1]} pid=${PID[$1]:-}
	[ -n "$pid" ] || return 0
	mountpoint -q "$mnt" && umount "$mnt" 2>/dev/null
	if ! poll 20 gone "$pid"; then
		mountpoint -q "$mnt" && umount -l "$mnt" 2>/dev/null
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null || true
	PID[$1]=
}

cleanup() {
	set +e
	trap '' INT TERM
	for m in reinit proxy direct; do stop_mount "$m"; done
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
	"$PT" -f -o source="$B" "${MNT[direct]}" >"$WORK/direct.log" 2>&1 &
	PID[direct]=$!
	poll 20 mountpoint -q "${MNT[direct]}" || die "the direct mount did not come up: $(cat "$WORK/direct.log")"
}

# Each line of stdin with the wall-clock time before it, in microseconds (the keeper's log has
# none; fkrecover prints the kill's).
stamp() { while IFS= read -r l; do printf '%s %s\n' "${EPOCHREALTIME/./}" "$l"; done; }

start_keeper() { # MODE: its events in $WORK/MODE.events, its log (-v, stamped) in $WORK/MODE.log
	local mode=$1
	: >"$WORK/$mode.events"
	mkfifo "$WORK/$mode.fifo"
	stamp <"$WORK/$mode.fifo" >"$WORK/$mode.log" &
	"$FK" -v --mode="$mode" --status-fd=3 --max-restarts=1000 --restart-window=600 "${MNT[$mode]}" -- \
		"$PT" -f -o source="$B" {} 3>"$WORK/$mode.events" >"$WORK/$mode.fifo" 2>&1 &
	PID[$mode]=$!
	poll 30 grep -q '^READY ' "$WORK/$mode.events" ||
		die "the $mode keeper did not become READY: $(cat "$WORK/$mode.log")"
}

load() { cut -d' ' -f1-3 /proc/loadavg; }
fuse_inodes() { awk '$1 == "fuse_inode" { print $2 }' /proc/slabinfo 2>/dev/null || echo "?"; }
stats() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR) printf "%.1f / %.1f / %.1f", v[1], v[int((NR + 1) / 2)], v[NR]; else printf "-" }'
}
median_of() { printf '%s\n' "$@" | median; }
gmean() { printf '%s\n' "$@" | awk '$1 > 0 { s += log($1); n++ } END { if (n) printf "%.2f", exp(s / n); else printf "-" }'; }

drop_caches
LOAD_START=$(load)
FUSE_MOD="$(cat /sys/module/fuse/version 2>/dev/null || echo built-in), srcversion $(cat /sys/module/fuse/srcversion 2>/dev/null || echo -)"
echo "bench: $(uname -r), fuse.ko $FUSE_MOD, $(nproc) CPUs, passthrough_ll of libfuse" \
	"$(pkg-config --modversion fuse3 2>/dev/null || echo 3), cold caches: $COLD, load average $LOAD_START, scratch: $WORK"
echo "bench: creating $FILES small files..."
make_tree
start_direct
start_keeper reinit
start_keeper proxy
for m in direct reinit proxy; do
	echo "bench: mounted $m: $(awk -v m="${MNT[$m]}" '$5 == m { $1 = $2 = $3 = ""; print }' /proc/self/mountinfo)"
done

# ---- the data path, three mounts side by side -------------------------------------------------

declare -A T
declare -A SECS=() RATIOS=()
one() { # KIND WHICH: runs KIND (walk, write, read) on mount WHICH, sets T[WHICH]
	local kind=$1 which=$2 mnt=${MNT[$2]}
	drop_caches
	case $kind in
	walk) T[$which]=$(timed walk "$mnt" "$which") ;;
	write) T[$which]=$(timed seq_write "$mnt" "$which") ;;
	read) T[$which]=$(timed seq_read "$mnt" "$which") ;;
	esac
	SECS[$kind.$which]+="${T[$which]} "
}
ORDERS=("direct reinit proxy" "reinit proxy direct" "proxy direct reinit"
	"direct proxy reinit" "reinit direct proxy" "proxy reinit direct")
for ((r = 1; r <= RUNS; r++)); do
	order=${ORDERS[$(((r - 1) % ${#ORDERS[@]}))]}
	line="bench: run $r ($order):"
	for kind in walk write read; do
		for w in $order; do one "$kind" "$w"; done
		for m in reinit proxy; do
			RATIOS[$kind.$m]+="$(ratio "${T[$m]}" "${T[direct]}") "
		done
		line+=" $kind ${T[direct]} / ${T[reinit]} / ${T[proxy]} s;"
	done
	rm -f "$B"/seq.*
	echo "$line load $(load)"
done
stop_mount proxy
stop_mount direct

# ---- recovery against the number of inodes cached ---------------------------------------------

# The kills go to the reinit mount. 1000 files a directory under nodes/, created in the backing
# directory (not through the mount: that would be minutes under TCG); names never looked up
# under nodes/u/ for the first stats that need a LOOKUP.
max=0
for n in $NODES; do [ "$n" -gt "$max" ] && max=$n; done
echo "bench: creating $max empty files for the recovery rows..."
t0=$(now_us)
mkdir -p "$B/nodes/u"
for ((d = 0; d * 1000 < max; d++)); do
	mkdir "$B/nodes/d$d"
	(cd "$B/nodes/d$d" && seq -f 'f%g' 0 999 | xargs touch)
done
echo "bench: created in $((($(now_us) - t0) / 1000000)) s"
drop_caches
FI0=$(fuse_inodes)
echo "bench: fuse_inode objects before the first row, caches dropped: $FI0"
RM=${MNT[reinit]}
EV=$WORK/reinit.events
recovered_more_than() { [ "$(grep -c '^RECOVERED ' "$EV")" -gt "$1" ]; }

declare -A REC_NEW REC_OLD REC_EV REC_DEATH REC_FAIL REC_INODES REC_PASS REC_CACHED REC_SPIN
kill_no=0
cached=0
row=0
ROWS=()
# A fixed piece of CPU work, timed before each kill: how fast the (shared, emulated) CPU was then.
spin() { local j; for ((j = 0; j < 3000; j++)); do :; done; }
for n in $NODES; do
	if [ "$n" = drop ]; then
		# Forget what was cached (unused dentries and inodes): the next row starts again from none.
		sync
		echo 2 >/proc/sys/vm/drop_caches
		cached=0
		echo "bench: dentries and inodes dropped; fuse_inode objects: $(fuse_inodes)"
		continue
	fi
	row=$((row + 1))
	ROWS+=("$row")
	# stat every file of the directories not yet stat'ed, up to n (cumulative).
	t0=$(now_us)
	for ((d = cached / 1000; d * 1000 < n; d++)); do
		stat -c %i "$RM/nodes/d$d"/* >/dev/null
	done
	cached=$((d * 1000))
	stat "$RM/nodes/u" >/dev/null
	REC_PASS[$row]=$((($(now_us) - t0) / 1000000))
	ndirs=$d
	REC_INODES[$row]=$(fuse_inodes)
	REC_CACHED[$row]=$cached
	echo "bench: $cached files stat'ed through the reinit mount ($n asked; ${REC_PASS[$row]} s for this row's);" \
		"fuse_inode objects: ${REC_INODES[$row]}"
	# Past passthrough_ll's 1 s entry and attribute timeout: a stat of the cached files asks the daemon.
	sleep 1.5
	new=() old=() ev=() death=() fails=() spins=()
	for ((i = 1; i <= KILLS; i++)); do
		kill_no=$((kill_no + 1))
		pid=$(awk '$1 == "DAEMON" { p = $2 } END { print p }' "$EV")
		nrec=$(grep -c '^RECOVERED ' "$EV" || true)
		: >"$B/nodes/u/k$kill_no"
		# A different cached file each kill, in a different directory where there are several.
		oldf=$RM/nodes/d$(((kill_no * 7) % ndirs))/f$(((100 + kill_no) % 1000))
		spins+=("$(timed spin)")
		out=$("$FKRECOVER" "$pid" "$RM/nodes/u/k$kill_no" "$oldf") ||
			die "$n nodes, kill $i: a stat never succeeded: $out"
		read -r _ kill_at < <(sed -n 1p <<<"$out")
		read -r _ _ f_new e_new ok_new < <(sed -n 2p <<<"$out")
		read -r _ _ f_old e_old ok_old < <(sed -n 3p <<<"$out")
		read -r _ d_ms < <(sed -n 4p <<<"$out")
		echo "$kill_at KILL $kill_no ($n nodes, kill $i)" >>"$WORK/kills"
		[ "$e_new" = 0 ] || fails+=("new:$e_new@${f_new}ms")
		[ "$e_old" = 0 ] || fails+=("cached:$e_old@${f_old}ms")
		new+=("$ok_new")
		old+=("$ok_old")
		death+=("$d_ms")
		poll 60 recovered_more_than "$nrec" || die "no RECOVERED event after kill $kill_no"
		ev+=("$(grep '^RECOVERED ' "$EV" | tail -n 1 | awk '{ print $3 }')")
		echo "bench: $n nodes, kill $i: new name ${ok_new} ms (first stat: $e_new at $f_new ms)," \
			"cached ${ok_old} ms (first stat: $e_old at $f_old ms), death $d_ms ms, RECOVERED ${ev[-1]} ms;" \
			"spin ${spins[-1]} s; load $(load)"
		# A daemon that dies within 1 s of taking over counts as a failed start; and the entries
		# stat'ed just now expire (1 s) before the next kill.
		sleep 1.5
	done
	REC_NEW[$row]=$(stats "${new[@]}")
	REC_OLD[$row]=$(stats "${old[@]}")
	REC_EV[$row]=$(stats "${ev[@]}")
	REC_DEATH[$row]=$(stats "${death[@]}")
	REC_SPIN[$row]=$(median_of "${spins[@]}")
	REC_FAIL[$row]="${#fails[@]}${fails[*]:+ (${fails[*]})}"
done
[ "$(fuse_inodes)" = "?" ] || echo "bench: fuse_inode objects at the end: $(fuse_inodes)"
LOAD_END=$(load)
stop_mount reinit
# The keeper's stamped log, its events and the kills' times, for a closer look.
LOGDIR=$OUT/reinit-logs-$(date +%Y%m%d-%H%M%S)
mkdir -p "$LOGDIR"
cp "$WORK/reinit.log" "$WORK/reinit.events" "$WORK/kills" "$LOGDIR/" 2>/dev/null || true
echo "bench: where each kill's time went, ms from the kill (bench/reinit-phases.sh $LOGDIR):"
"$(dirname "$0")/reinit-phases.sh" "$LOGDIR" | sed 's/^/bench:   /' || true

{
	echo
	echo "fusekeeper reinit bench, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), fuse.ko $FUSE_MOD, $(nproc) CPUs," \
		"cold caches: $COLD, load average $LOAD_START at the start, $LOAD_END at the end"
	echo "data path, passthrough_ll; ratio to the direct mount, $RUNS rounds (in six orders): each round's; median; geometric mean"
	for kind in walk write read; do
		case $kind in
		walk) what="walk: $FILES files" ;;
		write) what="write: $SEQ_MB MiB, fsync" ;;
		read) what="read: $SEQ_MB MiB, cold" ;;
		esac
		for m in reinit proxy; do
			# shellcheck disable=SC2086
			printf '  %-24s %-7s %-40s %s; %s\n' "$what" "$m" "${RATIOS[$kind.$m]}" \
				"$(median_of ${RATIOS[$kind.$m]})" "$(gmean ${RATIOS[$kind.$m]})"
		done
	done
	echo "  median seconds (direct / reinit / proxy):"
	for kind in walk write read; do
		# shellcheck disable=SC2086
		printf '    %-6s %s / %s / %s\n' "$kind" "$(median_of ${SECS[$kind.direct]})" \
			"$(median_of ${SECS[$kind.reinit]})" "$(median_of ${SECS[$kind.proxy]})"
	done
	echo "recovery, reinit mode, $KILLS SIGKILLs per row; ms from the kill, min / median / max"
	echo "(inodes: files stat'ed through the mount, whole directories of 1000; fuse_inode: the slab's" \
		"objects in use then, $FI0 before the first row)"
	echo "(spin: seconds of a fixed bash loop just before each kill, median: the emulated CPU's speed then)"
	printf '  %-8s %-10s %-24s %-24s %-20s %-14s %-6s %s\n' "inodes" "fuse_inode" "new name: 1st success" \
		"cached: 1st success" "death (pidfd)" "RECOVERED" "spin" "failed first stats"
	for row in "${ROWS[@]}"; do
		printf '  %-8s %-10s %-24s %-24s %-20s %-14s %-6s %s\n' "${REC_CACHED[$row]}" "${REC_INODES[$row]}" \
			"${REC_NEW[$row]}" "${REC_OLD[$row]}" "${REC_DEATH[$row]}" "${REC_EV[$row]}" "${REC_SPIN[$row]}" \
			"${REC_FAIL[$row]}"
	done
} | tee "$OUT/reinit-results-$(date +%Y%m%d-%H%M%S).txt"
