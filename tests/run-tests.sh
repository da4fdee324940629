#!/bin/bash
# Runs every fusekeeper test: the TAP unit tests (BUILD_DIR/tests/test_*), then
# every tests/integration/*.sh, each under `timeout` with its output in
# BUILD_DIR/test-logs/NAME.log.
#
#   tests/run-tests.sh BUILD_DIR [NAME-GLOB...]
#
# Exit status of a test: 0 pass, 77 skipped (the script prints "SKIP: reason"),
# anything else fails.  A unit test also fails if it printed a "not ok" line.
# An integration test declares its time limit with a "# timeout: N" line in the
# comment block it starts with (default 300 s; unit tests 120 s; run-tests.sh
# --timeout FILE prints it); FK_TIMEOUT_SCALE (a whole number,
# default 1) multiplies every limit: vm/run.sh sets it in guests emulated
# under TCG, where CPU-bound tests run 10 to 20 times slower.  After each test
# no mount may remain under the tests' temp root: a leftover one fails the test
# and is unmounted.
# Optional NAME-GLOBs select tests by name (e.g. '1*' or test_relay); one that starts with !
# leaves the tests it matches out (e.g. '!6[5-9]-takeover-*').
set -u

# Unmounts (lazily, after aborting FUSE connections through fusectl) every
# mount left under the temp root; prints each as "TYPE PATH".
leftover_mounts() {
	local dev fstype mp
	awk -v root="$FK_TMPROOT" 'index($5, root "/") == 1 {
		for (i = 7; i <= NF; i++) if ($i == "-") { fs = $(i + 1); break }
		print $3, fs, $5
	}' /proc/self/mountinfo | sort -r -k 3 | while read -r dev fstype mp; do
		echo "$fstype $mp"
		case $fstype in
		fuse | fuse.* | fuseblk)
			[ -w "/sys/fs/fuse/connections/${dev#*:}/abort" ] &&
				echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort" 2>/dev/null
			;;
		esac
		umount -l "$mp" 2>/dev/null
	done
}

# test_timeout FILE: the N of the first "# timeout: N" line of FILE's leading comment block,
# or nothing.
test_timeout() {
	awk '!/^#/ { exit } /^# *timeout: *[0-9]/ { sub(/^# *timeout: */, ""); print $1 + 0; exit }' "$1"
}

# run-tests.sh --timeout FILE: prints FILE's own time limit (vm/run.sh sums them for a guest).
if [ "${1:-}" = --timeout ]; then
	test_timeout "$2"
	exit 0
fi

# Inside a test's own mount namespace (see run_one): runs the test, then reports (exit 99)
# and removes the mounts it left under the temp root, which the runner cannot see.
if [ "${1:-}" = --in-namespace ]; then
	shift
	# The copies of FUSE mounts other programs had when this namespace was made would keep
	# their connections alive after they unmount them: let go of them here.
	awk '{ for (i = 7; i <= NF; i++) if ($i == "-") {
		if ($(i + 1) ~ /^(fuse|fuseblk|fuse\..*)$/) print $5
		break
	} }' /proc/self/mountinfo | sort -r | while read -r mp; do
		umount -l "$(printf '%b' "$mp")" 2>/dev/null
	done
	"$@"
	rc=$?
	leftovers=$(leftover_mounts)
	if [ -n "$leftovers" ]; then
		echo "run-tests.sh: mounts left behind (now unmounted):"
		echo "$leftovers" | sed 's/^/    /'
		if [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; then
			rc=99
		fi
	fi
	exit "$rc"
fi


usage() {
	echo "usage: $0 BUILD_DIR [NAME-GLOB...]" >&2
	exit 2
}

[ $# -ge 1 ] || usage
if [ "$(id -u)" -ne 0 ]; then
	echo "run-tests.sh: the tests mount FUSE filesystems and must run as root" >&2
	exit 1
fi

SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$(cd "$1" 2>/dev/null && pwd) || {
	echo "run-tests.sh: build directory $1 not found" >&2
	exit 1
}
shift
export BUILD_DIR
SELECT=("$@")
SCALE=${FK_TIMEOUT_SCALE:-1}
if ! [[ $SCALE =~ ^[1-9][0-9]*$ ]]; then
	echo "run-tests.sh: FK_TIMEOUT_SCALE=$SCALE is not a whole number >= 1" >&2
	exit 2
fi
DEFAULT_TIMEOUT=300
UNIT_TIMEOUT=120

LOG_DIR=$BUILD_DIR/test-logs
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

# Sanitized builds stop at the first report, and every program (the keeper, the test daemons
# and tools) is checked for leaks when it exits, on every path. Reports go to files in
# $SAN_DIR, whoever wrote them and wherever their stderr went: any report fails the test
# during which it was written. ASan's send(2) interceptor checks the buffer after the call
# returns, when the daemon may already have answered and the keeper freed it: that would be
# a false report, so it is off.
SAN_DIR=$LOG_DIR/sanitizer
# The first line of a report (an error, as opposed to a warning).
SAN_REPORT='ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|runtime error: |Sanitizer has encountered a fatal error|Sanitizer:? CHECK failed|nested bug in the same thread'
mkdir -p "$SAN_DIR"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:intercept_send=0:log_path=$SAN_DIR/asan}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:log_path=$SAN_DIR/ubsan}
echo "Testing the build in $BUILD_DIR"
FK_TMPROOT=$(mktemp -d /tmp/fusekeeper-tests.XXXXXX) || exit 1
export FK_TMPROOT

passed=0 failed=0 skipped=0
recap=()
current_pid=

on_signal() {
	if [ -n "$current_pid" ]; then
		kill -TERM "$current_pid" 2>/dev/null
		wait "$current_pid" 2>/dev/null
	fi
	leftover_mounts >/dev/null
	rmdir "$FK_TMPROOT" 2>/dev/null
	echo "run-tests.sh: interrupted" >&2
	exit 130
}
trap on_signal INT TERM

# A test runs if a NAME-GLOB matches it (or none is given) and no !NAME-GLOB does.
selected() {
	local g any=0 hit=0
	for g in "${SELECT[@]}"; do
		if [[ $g == !* ]]; then
			# shellcheck disable=SC2053
			[[ $1 == ${g#!} ]] && return 1
			continue
		fi
		any=1
		# shellcheck disable=SC2053
		[[ $1 == $g ]] && hit=1
	done
	[ "$any" = 0 ] || [ "$hit" = 1 ]
}

# show_log NAME WHY LOGFILE
show_log() {
	echo "---- $1: $2 ----"
	cat "$3"
	echo "---- end of $1 ----"
}

# failure_excerpt LOG: the few lines of a failed test's LOG that say why, for the recap at the
# end of the run (a long run's output may be cut in the middle, where the full log is): the
# first sanitizer report's headline and frames, else the test's own FAIL lines, else its last
# lines.
failure_excerpt() {
	local san
	san=$(grep -m 1 -A 14 -E "$SAN_REPORT" "$1")
	if [ -n "$san" ]; then
		printf '%s\n' "$san"
	elif grep -q '^FAIL: ' "$1"; then
		grep '^FAIL: ' "$1" | head -n 5
	else
		tail -n 5 "$1"
	fi
}

# run_one NAME TIMEOUT KIND COMMAND...: KIND is unit or integration.
run_one() {
	local name=$1 limit=$(($2 * SCALE)) kind=$3 logf rc reason leftovers why t0=$SECONDS took
	shift 3
	logf=$LOG_DIR/$name.log

	# timeout leads its own process group; what the test leaves in it is killed below.
	# An integration test runs in a mount namespace of its own (private): a mount namespace
	# another program makes meanwhile (unshare -m, a container starting) would otherwise copy
	# the test's FUSE mounts, and its copy would keep an unmounted connection alive. The
	# test's mounts are then invisible here: the namespace reports and removes what the
	# test left before it ends (--in-namespace below).
	if [ "$kind" = integration ]; then
		set -- unshare --mount --propagation private bash "$SRC_DIR/tests/run-tests.sh" --in-namespace "$@"
	fi
	timeout --kill-after=15 "$limit" "$@" >"$logf" 2>&1 </dev/null &
	current_pid=$!
	wait "$current_pid"
	rc=$?
	if kill -0 -- "-$current_pid" 2>/dev/null; then
		{
			echo "run-tests.sh: processes left behind (now killed):"
			ps -eo pgid=,pid=,args= | awk -v g="$current_pid" '$1 == g { $1 = "   "; print }'
		} >>"$logf"
		kill -KILL -- "-$current_pid" 2>/dev/null
		if [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; then
			rc=97
		fi
	fi
	current_pid=

	leftovers=$(leftover_mounts)
	if [ "$rc" -eq 99 ]; then
		: # left mounts in its own namespace: reported there
	elif [ -n "$leftovers" ]; then
		{
			echo "run-tests.sh: mounts left behind (now unmounted):"
			echo "$leftovers" | sed 's/^/    /'
		} >>"$logf"
		if [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; then
			rc=99
		fi
	fi
	if [ "$kind" = unit ] && [ "$rc" -eq 0 ] && grep -q '^not ok' "$logf"; then
		rc=98
	fi
	# In a sanitized build a report fails the test even if the program carried on. A file
	# without one holds only warnings, such as LeakSanitizer's "Unable to get registers from
	# thread N" for a thread that was exiting as its process did (the check then scans that
	# thread's whole stack, which can only hide a leak, not invent one): kept, not a failure.
	if compgen -G "$SAN_DIR/*" >/dev/null; then
		{
			echo "run-tests.sh: sanitizer output written during this test:"
			for f in "$SAN_DIR"/*; do
				echo "---- ${f##*/} ----"
				cat "$f"
			done
		} >>"$logf"
		if grep -qE "$SAN_REPORT" "$SAN_DIR"/*; then
			{ [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; } && rc=96
		fi
		rm -f "$SAN_DIR"/*
	fi
	if [ "$rc" -eq 0 ] && grep -qE "$SAN_REPORT" "$logf"; then
		rc=96
	fi

	took="($((SECONDS - t0)) s)"
	case $rc in
	0)
		echo "PASS $name $took"
		passed=$((passed + 1))
		;;
	77)
		reason=$(sed -n 's/^SKIP: //p' "$logf" | tail -n 1)
		echo "SKIP $name $took: ${reason:-no reason given}"
		skipped=$((skipped + 1))
		;;
	*)
		case $rc in
		124 | 137) why="timed out after ${limit}s" ;;
		98) why="exit 0 but a \"not ok\" line" ;;
		96) why="a sanitizer report" ;;
		97) why="left processes behind" ;;
		99) why="left mounts behind" ;;
		*) why="exit status $rc" ;;
		esac
		echo "FAIL $name $took"
		show_log "$name" "$why" "$logf"
		failed=$((failed + 1))
		recap+=("FAIL $name: $why")
		while IFS= read -r l; do recap+=("    $l"); done < <(failure_excerpt "$logf")
		;;
	esac
}

# Unit tests.
while IFS= read -r t; do
	name=$(basename "$t")
	selected "$name" || continue
	run_one "$name" "$UNIT_TIMEOUT" unit "$t"
done < <(find "$BUILD_DIR/tests" -maxdepth 1 -type f -name 'test_*' -perm -u+x 2>/dev/null | sort)

# Integration tests need fusectl to abort wedged connections.
if ! mountpoint -q /sys/fs/fuse/connections; then
	mount -t fusectl none /sys/fs/fuse/connections ||
		echo "run-tests.sh: warning: cannot mount fusectl at /sys/fs/fuse/connections" >&2
fi

for t in "$SRC_DIR"/tests/integration/*.sh; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .sh)
	selected "$name" || continue
	limit=$(test_timeout "$t")
	run_one "$name" "${limit:-$DEFAULT_TIMEOUT}" integration bash "$t"
done

rmdir "$FK_TMPROOT" 2>/dev/null ||
	echo "run-tests.sh: note: $FK_TMPROOT is not empty (a test left files behind)"
if [ ${#recap[@]} -gt 0 ]; then
	echo "==== failures (their full logs are above and in $LOG_DIR) ===="
	printf '%s\n' "${recap[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
