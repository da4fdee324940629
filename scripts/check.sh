#!/bin/bash
# scripts/check.sh - the whole test run behind `make check`, in three parts:
#
#   1. tests/run-tests.sh on the normal build (it includes a short run of the fuzzers);
#   2. tests/run-tests.sh on the ASan+UBSan build, where a sanitizer report fails a test;
#   3. the guests (docs/testing.md): fuse.ko built from Debian's linux-source-6.1 with
#      kernel/patches/ (kernel/build-kmod.sh), then vm/run.sh boots Debian 12's kernels under
#      qemu and runs vm/tests.list in each, the 6.1 guest on that module; then, for the
#      comparison, a 6.1 guest on Debian's own fuse.ko runs the baselines (STOCK_TESTS).
#
# Every part runs even if an earlier one failed, so that one run shows everything; an
# interrupt (INT, TERM, HUP) ends the whole run. The last lines are one summary per part and
# the total, "N passed, N failed, N skipped"; the exit status is 0 only if nothing failed.
#
# Usage: scripts/check.sh [--host-only | --guests-only] BUILD ASAN_BUILD KMOD_BUILD [LINE...]
#   LINE: kernel lines for the guests (the Makefile passes VM_KERNELS, default "6.1 6.12").
# Environment:
#   VM_JOBS           guests booted side by side (default 1; see vm/run.sh)
#   CHECK_BUDGET      seconds the whole run may take (default 4800 under CI, where the job
#                     has 90 minutes in all, else unlimited): a guest gets only what is left
#                     of it and one that cannot start in time counts as a failure, so that the
#                     run still ends with its summary instead of being killed
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

parts_wanted=host+guests
case ${1:-} in
--host-only) parts_wanted=host; shift ;;
--guests-only) parts_wanted=guests; shift ;;
esac
[ $# -ge 3 ] || {
	echo "usage: $0 [--host-only | --guests-only] BUILD ASAN_BUILD KMOD_BUILD [KERNEL_LINE...]" >&2
	exit 2
}
build=$1 asan=$2 kmod=$3
shift 3

budget=${CHECK_BUDGET:-}
[ -z "$budget" ] && [ -n "${CI:-}" ] && budget=4800
deadline=0
if [ -n "$budget" ]; then
	[[ $budget =~ ^[0-9]+$ ]] || { echo "check: CHECK_BUDGET=$budget: not a number of seconds" >&2; exit 2; }
	deadline=$(($(date +%s) + budget))
fi

tp=0 tf=0 ts=0
parts=()
# What runs again in a 6.1 guest on Debian's own fuse.ko after the guests (see below).
STOCK_TESTS="11-baseline-enotconn 95-reinit-mode 96-reinit-libfuse"

# part NAME LOGFILE: adds the last summary line of LOGFILE to the totals (a part that printed
# none counts as one failure).
part() {
	local name=$1 out=$2 line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -n 1)
	if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped$ ]]; then
		tp=$((tp + BASH_REMATCH[1]))
		tf=$((tf + BASH_REMATCH[2]))
		ts=$((ts + BASH_REMATCH[3]))
		parts+=("$name: $line")
	else
		tf=$((tf + 1))
		parts+=("$name: no summary (counted as 1 failure; see above)")
	fi
}

tmp=$(mktemp -d /tmp/fusekeeper-check.XXXXXX) || exit 1
child=
# A signal ends the whole run: the part running is told too (run-tests.sh and vm/run.sh end
# their own children and mounts), and waited for.
stop() {
	echo "check: $1" >&2
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null
		wait "$child"
	fi
	exit "$2"
}
trap 'rm -rf "$tmp"' EXIT
trap 'stop interrupted 130' INT
trap 'stop terminated 143' TERM
trap 'stop "hung up" 129' HUP

# run OUT COMMAND...: runs COMMAND in the background (so that a signal reaches this script at
# once), its output shown as it comes and kept in OUT; returns COMMAND's exit status.
run() {
	local out=$1 shower rc
	shift
	: >"$out"
	"$@" >"$out" 2>&1 </dev/null &
	child=$!
	tail -n +1 -f --pid="$child" "$out" &
	shower=$!
	wait "$child"
	rc=$?
	child=
	wait "$shower"
	return "$rc"
}

t0=$SECONDS
if [ "$parts_wanted" != guests ]; then
	echo "==== host kernel $(uname -r): $build ===="
	run "$tmp/host" tests/run-tests.sh "$build"
	part "host, $build" "$tmp/host"

	echo "==== host kernel $(uname -r): $asan (ASan+UBSan) ===="
	run "$tmp/asan" tests/run-tests.sh "$asan"
	part "host, $asan" "$tmp/asan"
fi
t1=$SECONDS

if [ "$parts_wanted" = host ]; then
	parts+=("guests: not run (make hostcheck)")
elif [ $# -eq 0 ]; then
	parts+=("guests: not run (VM_KERNELS is empty)")
else
	echo "==== guests: $* ===="
	kmod_env=()
	case " $* " in
	*" 6.1 "*)
		if run "$tmp/kmod" kernel/build-kmod.sh 6.1 "$kmod"; then
			kmod_env=(VM_KMOD="$kmod/fuse.ko")
		else
			echo "check: fuse.ko could not be built from linux-source-6.1 (above); the 6.1 guest loads the image's own"
			tf=$((tf + 1))
			parts+=("fuse.ko for 6.1: not built (counted as 1 failure)")
		fi
		;;
	esac
	run "$tmp/vm" env "${kmod_env[@]}" VM_BUILD="$build" VM_JOBS="${VM_JOBS:-1}" \
		VM_DEADLINE="$deadline" vm/run.sh "$@"
	part "guests" "$tmp/vm"
	# run.sh's closing lines, one per kernel: "6.1.0-57-amd64: N passed, ..." or
	# "...: no results ..." or "6.1: the guest could not be built".
	while IFS= read -r l; do
		parts+=("  $l")
	done < <(grep -E '^[0-9][^ ]*: ([0-9]+ passed|no results|the guest could not be built)' "$tmp/vm")

	# The comparison: the same 6.1 kernel on its own fuse.ko, where a killed daemon leaves
	# ENOTCONN (11, 96's baseline with libfuse's examples and testfs) and reinit mode is
	# refused (95), beside the reinit tests above on the patched one.
	if [ ${#kmod_env[@]} -gt 0 ]; then
		echo "==== guest 6.1 on Debian's own fuse.ko: $STOCK_TESTS ===="
		run "$tmp/stock" env VM_BUILD="$build" VM_TESTS="$STOCK_TESTS" VM_LOGS=test-logs/stock \
			VM_DEADLINE="$deadline" vm/run.sh 6.1
		part "guest 6.1, Debian's own fuse.ko" "$tmp/stock"
	fi
fi
t2=$SECONDS

# The failures' recaps again (run-tests.sh prints one before its summary), so that the end of
# the run, which a cut output keeps, says what failed and why.
for f in "$tmp/host" "$tmp/asan" "$tmp/vm" "$tmp/stock"; do
	[ -f "$f" ] || continue
	awk '/^(\[[^]]*\] )?==== failures / { on = 1 }
	     /^(\[[^]]*\] )?[0-9]+ passed, [0-9]+ failed/ { on = 0 }
	     on' "$f"
done
echo "==== summary: host $((t1 - t0)) s, guests $((t2 - t1)) s ===="
printf '%s\n' "${parts[@]}"
echo "$tp passed, $tf failed, $ts skipped"
[ "$tf" = 0 ]
