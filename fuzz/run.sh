#!/bin/bash
# Runs the libFuzzer harnesses of a fuzzing build (fuzz/README.md), one after another.
#
#   fuzz/run.sh BUILD_DIR SECONDS [HARNESS...]
#
# Each harness first runs every input of fuzz/corpus/NAME and fuzz/regressions/NAME once, then
# fuzzes for SECONDS (0: no fuzzing) from a working corpus in FUZZ_WORK/NAME (default
# BUILD_DIR/fuzz-work), seeded from the repository's. A crash, a leak or a sanitizer report
# stops it, leaves the input in FUZZ_WORK/NAME/artifacts/ (and in base64 in the output) and
# fails the run. Prints per harness: executions,
# executions per second, coverage (libFuzzer's cov and ft) and the result; the last line is
# "fuzz: N harnesses clean, N with findings". FUZZ_FLAGS adds libFuzzer options.
set -u

[ $# -ge 2 ] || { echo "usage: $0 BUILD_DIR SECONDS [HARNESS...]" >&2; exit 2; }
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$1
SECONDS_EACH=$2
shift 2
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(fuzz_reply fuzz_notify fuzz_dirents fuzz_init)

clean=0 found=0
for h in "${HARNESSES[@]}"; do
	bin=$BUILD_DIR/fuzz/$h
	work=${FUZZ_WORK:-$BUILD_DIR/fuzz-work}/$h
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin not built (make fuzz builds it)" >&2
		exit 2
	fi
	mkdir -p "$work/corpus" "$work/artifacts"
	seeds=()
	for d in "$SRC_DIR/fuzz/corpus/$h" "$SRC_DIR/fuzz/regressions/$h"; do
		[ -d "$d" ] && seeds+=("$d")
	done

	# Every kept input once: a regression that comes back fails here.
	log=$work/replay.log
	inputs=$(find "${seeds[@]}" -type f 2>/dev/null | sort)
	if [ -n "$inputs" ]; then
		# shellcheck disable=SC2086
		if ! "$bin" -runs=1 -close_fd_mask=2 $inputs >"$log" 2>&1; then
			echo "FAIL $h: a kept input fails again:"
			tail -n 40 "$log"
			found=$((found + 1))
			continue
		fi
	fi
	replayed=$(echo "$inputs" | grep -c .)
	if [ "$SECONDS_EACH" -le 0 ]; then
		echo "ok   $h: $replayed kept inputs"
		clean=$((clean + 1))
		continue
	fi

	log=$work/fuzz.log
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -close_fd_mask=2 -artifact_prefix="$work/artifacts/" \
		${FUZZ_FLAGS:-} "$work/corpus" "${seeds[@]}" >"$log" 2>&1
	rc=$?
	execs=$(grep -a '^stat::number_of_executed_units:' "$log" | tail -n 1 | tr -dc 0-9)
	rate=$(grep -a '^stat::average_exec_per_sec:' "$log" | tail -n 1 | tr -dc 0-9)
	cov=$(grep -aE '^#[0-9]+' "$log" | tail -n 1 |
		sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1 ft \2/p')
	if [ "$rc" -eq 0 ]; then
		echo "ok   $h: $replayed kept inputs; ${execs:-?} executions (${rate:-?}/s," \
			"at most ${SECONDS_EACH} s), ${cov:-coverage unknown}"
		clean=$((clean + 1))
	else
		echo "FAIL $h: a finding after ${execs:-?} executions (${cov:-coverage unknown});" \
			"input in $work/artifacts/:"
		grep -aE 'ERROR:|runtime error:|FINDING|SUMMARY:|#[0-9]+ +0x.* in |^Base64:' "$log" |
			head -n 40
		found=$((found + 1))
	fi
done
echo "fuzz: $clean harnesses clean, $found with findings"
[ "$found" -eq 0 ]
