#!/bin/bash
# scripts/check.sh - the whole test run behind `make check`, in three parts:
#
#   1. tests/run-tests.sh on the normal build (it includes a short run of the fuzzers);
#   2. tests/run-tests.sh on the ASan+UBSan build, where a sanitizer report fails a test;
#   3. the guests (docs/testing.md): fuse.ko built from Debian's linux-source-6.1 with
#      kernel/patches/ (kernel/build-kmod.sh), then vm/run.sh boots Debian 12's kernels under
#      qemu and runs vm/tests.list in each, the 6.1 guest on that module.
#
# Every part runs even if an earlier one failed, so that one run shows everything. The last
# lines are one summary per part and the total, "N passed, N failed, N skipped"; the exit
# status is 0 only if nothing failed.
#
# Usage: scripts/check.sh BUILD ASAN_BUILD KMOD_BUILD [KERNEL_LINE...]
#   With no kernel lines the guests are left out (said so in the summary); the Makefile
#   passes VM_KERNELS (default "6.1 6.12"). VM_JOBS (default 1) guests boot side by side.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

[ $# -ge 3 ] || { echo "usage: $0 BUILD ASAN_BUILD KMOD_BUILD [KERNEL_LINE...]" >&2; exit 2; }
build=$1 asan=$2 kmod=$3
shift 3

tp=0 tf=0 ts=0
parts=()

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
trap 'rm -rf "$tmp"' EXIT

t0=$SECONDS
echo "==== host kernel $(uname -r): $build ===="
tests/run-tests.sh "$build" | tee "$tmp/host"
part "host, $build" "$tmp/host"

echo "==== host kernel $(uname -r): $asan (ASan+UBSan) ===="
tests/run-tests.sh "$asan" | tee "$tmp/asan"
part "host, $asan" "$tmp/asan"
t1=$SECONDS

if [ $# -gt 0 ]; then
	echo "==== guests: $* ===="
	kmod_env=()
	case " $* " in
	*" 6.1 "*)
		if kernel/build-kmod.sh 6.1 "$kmod"; then
			kmod_env=(VM_KMOD="$kmod/fuse.ko")
		else
			echo "check: fuse.ko could not be built from linux-source-6.1 (above); the 6.1 guest loads the image's own"
			tf=$((tf + 1))
			parts+=("make kmod: fuse.ko not built (counted as 1 failure)")
		fi
		;;
	esac
	env "${kmod_env[@]}" VM_BUILD="$build" VM_JOBS="${VM_JOBS:-1}" vm/run.sh "$@" | tee "$tmp/vm"
	part "guests" "$tmp/vm"
	# run.sh's closing lines: one per kernel ("6.1.0-57-amd64: ..." or "6.1: ...").
	while IFS= read -r l; do parts+=("  $l"); done < <(grep -E '^[0-9][^ ]*: ' "$tmp/vm")
else
	parts+=("guests: not run (VM_KERNELS is empty)")
fi
t2=$SECONDS

echo "==== summary: host $((t1 - t0)) s, guests $((t2 - t1)) s ===="
printf '%s\n' "${parts[@]}"
echo "$tp passed, $tf failed, $ts skipped"
[ "$tf" = 0 ]
