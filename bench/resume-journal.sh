#!/bin/bash
# bench/resume-journal.sh BUILD_DIR - what keeping the resume journal (src/proxy/resume.h)
# costs the relay. Two keepers over libfuse's passthrough_ll and one backing directory, side by
# side: one without the journal, one with it (FUSEKEEPER_RESUME_CHECK=1, which keeps it; its
# check runs only when a daemon dies, never here). Measured alternately, BENCH_RUNS (5) times,
# the median of each:
#   churn   BENCH_FILES (2000) files created, stat'ed, renamed and removed: every reply
#           changes the tables, so every one is a journal record
#   walk    find + stat + cat of the same number of files, cold caches: lookups, one record
#           per reply
#   write   BENCH_SEQ_MB (256) MiB written sequentially and fsynced: the first WRITE after a
#           sync marks its handle unsynced, the rest cost nothing
# Prints each median and the ratio journal / none. Needs root. Not part of the tests.
set -euo pipefail

. "$(dirname "$0")/lib-passthrough.sh"
bench_start "it mounts and drops caches" "$@"

FILES=${BENCH_FILES:-2000}
RUNS=${BENCH_RUNS:-5}
SEQ_MB=${BENCH_SEQ_MB:-256}

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/fusekeeper-journal.XXXXXX")
B=$WORK/backing
mkdir "$B" "$WORK/none" "$WORK/journal"
PIDS=()

cleanup() {
	local m p
	for m in none journal; do
		mountpoint -q "$WORK/$m" && umount "$WORK/$m"
	done
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

# mount NAME CHECK: a keeper over passthrough_ll on WORK/NAME, FUSEKEEPER_RESUME_CHECK=CHECK.
mount_one() {
	: >"$WORK/events.$1"
	FUSEKEEPER_RESUME_CHECK=$2 "$FK" -q --status-fd=3 "$WORK/$1" -- "$PT" -f \
		-o source="$B" {} 3>"$WORK/events.$1" &
	PIDS+=($!)
	for _ in $(seq 200); do
		grep -q '^READY' "$WORK/events.$1" && return 0
		sleep 0.05
	done
	die "the keeper on $WORK/$1 never became READY"
}

churn() {
	local d=$1/churn.$2 i
	mkdir "$d"
	for ((i = 0; i < FILES; i++)); do : >"$d/f$i"; done
	find "$d" -type f -exec stat -c %i {} + >/dev/null
	for ((i = 0; i < FILES; i++)); do mv "$d/f$i" "$d/g$i"; done
	rm -rf "$d"
}

mount_one none 0
mount_one journal 1
make_tree
declare -A t
for ((r = 0; r < RUNS; r++)); do
	# Alternate which goes first: the machine is shared and noisy.
	order=(none journal)
	((r % 2)) && order=(journal none)
	for m in "${order[@]}"; do
		t[churn.$m]+="$(timed churn "$WORK/$m" "$r") "
		sync && echo 3 >/proc/sys/vm/drop_caches
		t[walk.$m]+="$(timed walk "$WORK/$m" "$m") "
		t[write.$m]+="$(timed seq_write "$WORK/$m" "$m") "
		rm -f "$WORK/$m/seq.$m"
	done
done
printf '%-8s %12s %12s %8s\n' "" "none (s)" "journal (s)" ratio
for w in churn walk write; do
	a=$(tr ' ' '\n' <<<"${t[$w.journal]}" | grep . | median)
	b=$(tr ' ' '\n' <<<"${t[$w.none]}" | grep . | median)
	printf '%-8s %12s %12s %8s\n' "$w" "$b" "$a" "$(ratio "$a" "$b")"
done
