# shellcheck shell=bash disable=SC2034
# tests/lib.sh - sourced by every integration test (tests/integration/NN-name.sh).
#
# Gives each test a temp dir $T (removed at exit), starts the keeper with its
# --status-fd events in a file, waits on those events, and on exit - pass, fail
# or signal - kills by pid every process the test started, unmounts every mount
# it made and kills the daemons the keeper reported.  Nothing is ever killed by
# name.
#
# Environment (the runner sets these; defaults let a script run on its own):
#   BUILD_DIR     meson build dir (default: <source>/build), made absolute
#   FK_TMPROOT    where per-test temp dirs go (default: /tmp)
#   FK_WAIT_TIMEOUT  default seconds for fk_wait (default: 30)
#
# Exported: FK, TESTFS, BADDAEMON, FKLOAD (program paths), T (temp dir).
#
# Event waits: fk_wait EVENT keeps one cursor per event type per keeper, so each
# call returns the next EVENT line that no earlier fk_wait EVENT call returned,
# whatever order the keeper wrote different types in; fk_mark makes every
# event written so far invisible to later waits.  Cursors live in files, so
# `line=$(fk_wait READY)` works too.

set -u
set -o pipefail

FK_SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FK_TEST_NAME=$(basename "$0" .sh)

skip() {
	echo "SKIP: $*"
	exit 77
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

log() {
	echo "[$(date +%T.%3N)] $*"
}

[ "$(id -u)" = 0 ] || skip "needs root"

BUILD_DIR=$(cd "${BUILD_DIR:-$FK_SRCDIR/build}" 2>/dev/null && pwd) ||
	fail "build directory ${BUILD_DIR:-$FK_SRCDIR/build} not found (set BUILD_DIR)"
export BUILD_DIR
export FK=$BUILD_DIR/fusekeeper
export TESTFS=$BUILD_DIR/tests/testfs
export BADDAEMON=$BUILD_DIR/tests/baddaemon
export FKLOAD=$BUILD_DIR/tests/fkload
: "${FK_WAIT_TIMEOUT:=30}"
# Proxy-mode keepers keep the resume journal and check it against their tables whenever a
# daemon dies (src/proxy/resume.h); a mismatch fails the test at its end (fk_cleanup).
export FUSEKEEPER_RESUME_CHECK=${FUSEKEEPER_RESUME_CHECK:-1}

mkdir -p "${FK_TMPROOT:=/tmp}"
T=$(mktemp -d "$FK_TMPROOT/$FK_TEST_NAME.XXXXXX") || fail "cannot create a temp dir"
export T
FK_STATE=$T/.fk             # bookkeeping: tracked pids, mounts, cursors
mkdir "$FK_STATE"
: >"$FK_STATE/pids"
: >"$FK_STATE/mounts"

FK_N=0        # keepers started so far; the current one is number $FK_N
FK_PID=       # pid of the current keeper
FK_EVENTS=    # its event file
FK_LOG=       # its stderr
# shellcheck disable=SC2034 # for the tests
FK_MNT=       # its mountpoint
FK_LINE=      # the line the last fk_wait returned
FK_STATUS=    # exit status from fk_wait_exit
WAIT_STATUS=  # exit status from wait_pid
BG_PID=       # pid from run_bg
TRY_OUT=      # output of the last try_cmd
# shellcheck disable=SC2034 # for the tests
FK_KILLED=    # the daemon pid fk_kill_daemon killed

# ---- small helpers -------------------------------------------------------

# now_ms, alive PID, poll SECONDS CMD... (scripts/common.sh).
. "$FK_SRCDIR/scripts/common.sh"

# The parent pid of PID (empty if gone).
pid_ppid() {
	sed -E 's/^.*\) . ([0-9]+).*/\1/' "/proc/$1/stat" 2>/dev/null
}

track_pid() {
	echo "$1" >>"$FK_STATE/pids"
}

track_mount() {
	echo "$1" >>"$FK_STATE/mounts"
}

# The mountinfo line fields "maj:min fstype" of the top mount at PATH (or nothing).
mount_info() {
	awk -v mp="$1" '$5 == mp {
		for (i = 7; i <= NF; i++) if ($i == "-") { fs = $(i + 1); break }
		last = $3 " " fs
	} END { if (last != "") print last }' /proc/self/mountinfo
}

mounted() {
	[ -n "$(mount_info "$1")" ]
}

# Mountpoints at or below DIR, deepest first.
mounts_under() {
	awk -v root="$1" '$5 == root || index($5, root "/") == 1 { print $5 }' \
		/proc/self/mountinfo | sort -r -u
}

# The fusectl directory (/sys/fs/fuse/connections/<dev minor>) of the FUSE connection
# mounted at PATH; fails if PATH is not a FUSE mount or fusectl has no such directory.
fuse_conn_dir() {
	local info dev dir
	info=$(mount_info "$1")
	case ${info#* } in fuse | fuse.* | fuseblk) ;; *) return 1 ;; esac
	dev=${info% *}
	dir=/sys/fs/fuse/connections/${dev#*:}
	[ -d "$dir" ] || return 1
	echo "$dir"
}

# Aborts the FUSE connection mounted at PATH through fusectl, if it is one.
fuse_abort() {
	local dir
	dir=$(fuse_conn_dir "$1") || return 0
	[ -w "$dir/abort" ] && echo 1 >"$dir/abort" 2>/dev/null
	return 0
}

assert_not_mounted() {
	! mounted "$1" || fail "${2:-$1 is still mounted}"
}

# wait_gone PID [TIMEOUT]: true once PID no longer runs.
wait_gone() {
	local deadline=$(($(now_ms) + ${2:-10} * 1000))
	while alive "$1"; do
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
	return 0
}

# wait_pid PID [TIMEOUT]: waits for a child of this shell to exit; its status is
# left in WAIT_STATUS.  Returns 1 if it is still running at the deadline.
wait_pid() {
	WAIT_STATUS=
	wait_gone "$1" "${2:-10}" || return 1
	wait "$1" 2>/dev/null
	WAIT_STATUS=$?
	return 0
}

# run_bg NAME COMMAND...: runs COMMAND in the background with stdout in
# $T/NAME.out and stderr in $T/NAME.err; its pid is tracked and left in BG_PID.
run_bg() {
	local name=$1
	shift
	"$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null &
	BG_PID=$!
	track_pid "$BG_PID"
	log "started $name (pid $BG_PID): $*"
}

# need_prog PATH: fails unless the built program PATH exists.
need_prog() {
	[ -x "$1" ] || fail "$1 is not built"
}

# need_cmd NAME...: skips unless every command is installed.
need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || skip "$c is not installed"
	done
}

# wait_match FILE REGEX [TIMEOUT]: waits until a line of FILE matches the
# extended REGEX; prints the last matching line.
wait_match() {
	local deadline=$(($(now_ms) + ${3:-10} * 1000))
	while :; do
		grep -E -- "$2" "$1" 2>/dev/null | tail -n 1 | grep '' && return 0
		if [ "$(now_ms)" -ge "$deadline" ]; then
			echo "wait_match: no line matching '$2' in $1 within ${3:-10}s" >&2
			return 1
		fi
		sleep 0.05
	done
}

# try_cmd TIMEOUT COMMAND...: runs COMMAND with a deadline that holds even when
# it is stuck in an uninterruptible FUSE request (which `timeout` cannot kill):
# it runs in the background and is left to the cleanup if it does not finish.
# Its stdout and stderr go to TRY_OUT; returns its exit status, 124 on timeout.
try_cmd() {
	local limit=$1 pid out=$T/.fk/try.$$.$RANDOM
	shift
	"$@" >"$out" 2>&1 </dev/null &
	pid=$!
	track_pid "$pid"
	if ! wait_pid "$pid" "$limit"; then
		kill -KILL "$pid" 2>/dev/null
		TRY_OUT="$(cat "$out") (still running after ${limit}s)"
		return 124
	fi
	TRY_OUT=$(cat "$out")
	return "$WAIT_STATUS"
}

# eio_at_once WHEN LIMIT_MS COMMAND-LINE...: each COMMAND-LINE (a string, split into words on
# blanks) fails with EIO ("Input/output error" in its output) within LIMIT_MS; the test fails
# otherwise, its message starting with WHEN.
eio_at_once() {
	local when=$1 limit=$2 cmd start took
	shift 2
	for cmd in "$@"; do
		start=$(now_ms)
		# shellcheck disable=SC2086
		try_cmd 10 $cmd && fail "$when: $cmd succeeded: $TRY_OUT"
		took=$(($(now_ms) - start))
		log "$when: $cmd: $took ms: $TRY_OUT"
		[[ $TRY_OUT == *"Input/output error"* ]] || fail "$when: $cmd did not fail with EIO: $TRY_OUT"
		[ "$took" -lt "$limit" ] || fail "$when: $cmd took $took ms: not at once"
	done
}

# bg_timed NAME COMMAND...: runs COMMAND in the background (tracked), with its
# stdout and stderr in $T/NAME.out; when it ends, "STATUS MS" (its exit status
# and how many milliseconds it took) goes to $T/NAME.rc.
# bg_result NAME [TIMEOUT]: waits up to TIMEOUT seconds (default 30) for it and
# sets BG_RC, BG_MS and BG_OUT; returns 1 if it still runs at the deadline (a
# request stuck in a mount: the cleanup aborts the connection).
declare -A _bg_timed_pid
bg_timed() {
	local name=$1
	shift
	(
		start=${EPOCHREALTIME/./}
		"$@" >"$T/$name.out" 2>&1 </dev/null
		rc=$?
		end=${EPOCHREALTIME/./}
		echo "$rc $(((end - start) / 1000))" >"$T/$name.rc"
	) &
	BG_PID=$!
	track_pid "$BG_PID"
	_bg_timed_pid[$name]=$BG_PID
	log "started $name (pid $BG_PID): $*"
}

bg_result() {
	local name=$1 line
	BG_RC= BG_MS= BG_OUT=
	wait_pid "${_bg_timed_pid[$name]}" "${2:-30}" || return 1
	line=$(cat "$T/$name.rc" 2>/dev/null) || return 1
	BG_RC=${line% *}
	BG_MS=${line#* }
	BG_OUT=$(cat "$T/$name.out")
	log "$name: exit $BG_RC after $BG_MS ms: $BG_OUT"
}

# ---- the keeper ------------------------------------------------------------

# fk_start MOUNTPOINT [KEEPER OPTIONS] -- COMMAND...
# Starts the keeper in the background with its events going to $FK_EVENTS and
# its stderr to $FK_LOG; returns at once.  The keeper becomes the current one.
# With FK_NO_MOUNTPOINT=1 the keeper is not given MOUNTPOINT (a COMMAND without
# {} names it itself); the test still tracks and unmounts it.
fk_start() {
	local mnt=$1 opts=()
	shift
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		opts+=("$1")
		shift
	done
	[ $# -ge 2 ] || fail "fk_start: usage: fk_start MOUNTPOINT [OPTIONS] -- COMMAND..."
	shift
	[ -x "$FK" ] || fail "the keeper is not built: $FK"

	FK_N=$((FK_N + 1))
	FK_EVENTS=$T/events.$FK_N
	FK_LOG=$T/keeper.$FK_N.log
	# shellcheck disable=SC2034
	FK_MNT=$mnt
	: >"$FK_EVENTS"
	# The daemon's argv[0], to recognise its pids at cleanup.
	printf '%s\n' "$1" >"$FK_STATE/cmd.$FK_N"
	# bash starts background commands with SIGINT ignored; a keeper run from a
	# terminal has it at its default, so restore that.
	local given=("$mnt")
	[ "${FK_NO_MOUNTPOINT:-}" = 1 ] && given=()
	env --default-signal=INT "$FK" --status-fd=3 "${opts[@]}" "${given[@]}" -- "$@" \
		3>>"$FK_EVENTS" >>"$FK_LOG" 2>&1 </dev/null &
	FK_PID=$!
	track_pid "$FK_PID"
	track_mount "$mnt"
	log "fk_start: keeper $FK_PID: ${opts[*]} ${given[*]} -- $*"
}

# fk_match LINE EVENT [PATTERN]: LINE is an EVENT line whose arguments start
# with the extended regex PATTERN (matched up to a space or the end).
fk_match() {
	local line=$1 ev=$2 pat=${3:-} rest
	case $line in
	"$ev") rest= ;;
	"$ev "*) rest=${line#"$ev "} ;;
	*) return 1 ;;
	esac
	[ -z "$pat" ] && return 0
	[[ $rest =~ ^($pat)( |$) ]]
}

# Scans the event file once for the next unreturned match; on success moves the
# cursor, sets FK_LINE and prints the line.
fk_scan() {
	local ev=$1 pat=$2 curf=$FK_STATE/cur.$FK_N.$1 floorf=$FK_STATE/floor.$FK_N
	local cur=0 floor=0 n=0 line
	[ -s "$curf" ] && cur=$(<"$curf")
	[ -s "$floorf" ] && floor=$(<"$floorf")
	[ "$floor" -gt "$cur" ] && cur=$floor
	# `read` fails on a last line without its newline: a line still being written.
	while IFS= read -r line; do
		n=$((n + 1))
		[ "$n" -le "$cur" ] && continue
		if fk_match "$line" "$ev" "$pat"; then
			echo "$n" >"$curf"
			FK_LINE=$line
			printf '%s\n' "$line"
			return 0
		fi
	done <"$FK_EVENTS"
	return 1
}

# fk_wait EVENT [ARGS-PATTERN] [TIMEOUT]
# Blocks until the next EVENT line (whose arguments match ARGS-PATTERN, an
# extended regex anchored at the start) that no earlier fk_wait EVENT returned
# appears; prints it and sets FK_LINE.  Returns 1 on timeout or when the keeper
# exited without writing it.
fk_wait() {
	local ev=$1 pat=${2:-} timeout=${3:-$FK_WAIT_TIMEOUT} deadline
	[ -n "$FK_EVENTS" ] || fail "fk_wait: no keeper started"
	deadline=$(($(now_ms) + timeout * 1000))
	FK_LINE=
	while :; do
		fk_scan "$ev" "$pat" && return 0
		if ! alive "$FK_PID"; then
			# One last look: the line may have come just before the exit.
			fk_scan "$ev" "$pat" && return 0
			echo "fk_wait: the keeper (pid $FK_PID) exited without ${ev}${pat:+ $pat}" >&2
			return 1
		fi
		if [ "$(now_ms)" -ge "$deadline" ]; then
			echo "fk_wait: no ${ev}${pat:+ $pat} event within ${timeout}s; events so far:" >&2
			sed 's/^/    /' "$FK_EVENTS" >&2
			return 1
		fi
		# Not inotifywait: a line written between the scan and the start of its watch
		# would be seen only when it timed out, up to a second late.
		sleep 0.05
	done
}

# fk_mark: later fk_wait calls only see events written after this point.
fk_mark() {
	local n
	n=$(grep -c '' "$FK_EVENTS")
	# Count complete lines only.
	[ -n "$(tail -c 1 "$FK_EVENTS")" ] && n=$((n - 1))
	echo "$n" >"$FK_STATE/floor.$FK_N"
}

# fk_count EVENT [ARGS-PATTERN]: how many such lines the current keeper wrote.
fk_count() {
	local line n=0
	while IFS= read -r line; do
		fk_match "$line" "$1" "${2:-}" && n=$((n + 1))
	done <"$FK_EVENTS"
	echo "$n"
}

# fk_daemon_pid: the pid from the latest DAEMON line, or of the process the
# keeper followed it to (FOLLOW OLD NEW: a daemon that went to the background).
fk_daemon_pid() {
	awk '$1 == "DAEMON" { p = $2 } $1 == "FOLLOW" { p = $3 }
		END { if (p == "") exit 1; print p }' "$FK_EVENTS"
}

# fk_kill_daemon [TIMEOUT]: SIGKILLs the current daemon and waits for the
# keeper's EXIT line for it.  Leaves the pid in FK_KILLED.
fk_kill_daemon() {
	local pid
	pid=$(fk_daemon_pid) || { echo "fk_kill_daemon: no DAEMON event yet" >&2; return 1; }
	alive "$pid" || { echo "fk_kill_daemon: daemon $pid is not running" >&2; return 1; }
	# shellcheck disable=SC2034
	FK_KILLED=$pid
	log "killing daemon $pid"
	kill -KILL "$pid" || return 1
	fk_wait EXIT "$pid" "${1:-$FK_WAIT_TIMEOUT}" >/dev/null || return 1
	[ "$FK_LINE" = "EXIT $pid signal=KILL" ] ||
		echo "fk_kill_daemon: expected 'EXIT $pid signal=KILL', got '$FK_LINE'" >&2
	return 0
}

# fk_wait_exit [TIMEOUT]: waits for the current keeper to exit; FK_STATUS gets
# its exit status.  Returns 1 if it is still running at the deadline.
fk_wait_exit() {
	FK_STATUS=
	wait_pid "$FK_PID" "${1:-30}" || {
		echo "fk_wait_exit: keeper $FK_PID still running after ${1:-30}s" >&2
		return 1
	}
	FK_STATUS=$WAIT_STATUS
	log "keeper $FK_PID exited with status $FK_STATUS"
	return 0
}

# fk_daemon_pids: every daemon pid the current keeper reported.
fk_daemon_pids() {
	awk '$1 == "DAEMON" { print $2 } $1 == "FOLLOW" { print $3 }' "$FK_EVENTS"
}

# assert_all_gone: the keeper, every daemon it started and every process this
# test started have exited (waits up to 10 s).
assert_all_gone() {
	local pid
	for pid in $FK_PID $(fk_daemon_pids) $(cat "$FK_STATE/pids"); do
		wait_gone "$pid" 10 || fail "process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)) is still running"
	done
}

# ---- workloads ------------------------------------------------------------

progress_of() {
	local v
	v=$(cat "$1" 2>/dev/null)
	echo "${v:-0}"
}

# wait_progress FILE N [TIMEOUT] [PID]: waits until the count in a --progress
# file has grown by N (fails early if PID, the workload, exits).
wait_progress() {
	local file=$1 n=$2 timeout=${3:-30} pid=${4:-} start cur deadline
	start=$(progress_of "$file")
	deadline=$(($(now_ms) + timeout * 1000))
	while :; do
		cur=$(progress_of "$file")
		[ "$cur" -ge $((start + n)) ] && return 0
		if [ -n "$pid" ] && ! alive "$pid"; then
			echo "wait_progress: $file: workload $pid exited at $cur" >&2
			return 1
		fi
		if [ "$(now_ms)" -ge "$deadline" ]; then
			echo "wait_progress: $file stuck at $cur (wanted $((start + n)) within ${timeout}s)" >&2
			return 1
		fi
		sleep 0.05
	done
}

# The namespace reader: a process in a mount namespace of its own that holds a bind mount of
# a directory of the mount, and reads through it on request.
#   ns_reader_start DIR   starts it on DIR (bound at $T/nsview); call it before starting
#                         other children, which would inherit its request fifo
#   ns_query N [TIMEOUT]  prints "SHA256 INO": the checksum of DIR/data and DIR's inode number
#                         as the reader sees them (or "ERROR message"); fails without an answer
#   ns_reader_stop        ends it (its namespace holds a copy of the mount: stop it before
#                         unmounting) and fails unless it exited 0
ns_reader_start() {
	mkdir -p "$T/nsview"
	mkfifo "$T/ns.in" || fail "mkfifo failed"
	run_bg ns-reader unshare --mount --propagation private bash -c '
		mount --bind "$1" "$2" || exit 1
		echo ready
		while read -r req; do
			if sum=$(sha256sum <"$2/data" 2>&1); then
				echo "$req ${sum%% *} $(stat -c %i "$2")"
			else
				echo "$req ERROR ${sum//$'\''\n'\''/ }"
			fi
		done <"$3"' ns-reader "$1" "$T/nsview" "$T/ns.in"
	_ns_reader_pid=$BG_PID
	# Opened only now, so that no child holds the write end: closing it ends the reader.
	exec {_ns_reader_fd}<>"$T/ns.in"
	wait_match "$T/ns-reader.out" '^ready$' 10 >/dev/null || fail "the namespace reader did not start"
}

ns_query() {
	local line
	echo "$1" >&"$_ns_reader_fd"
	line=$(wait_match "$T/ns-reader.out" "^$1 " "${2:-30}") || return 1
	echo "${line#"$1 "}"
}

ns_reader_stop() {
	exec {_ns_reader_fd}>&-
	wait_pid "$_ns_reader_pid" 15 || fail "the namespace reader did not exit"
	[ "$WAIT_STATUS" = 0 ] || fail "the namespace reader failed (exit $WAIT_STATUS)"
}

# The usual workload, on the mount $M whose backing directory is $B (testfs):
#   usual_load_start     makes fd, cwd, churn and ns in $M; starts fkload fd, cwd and churn on
#                        the first three (pids in load_pid) and the namespace reader on ns,
#                        whose data file has the checksum USUAL_SUM
#   usual_load_check WHAT  every workload made progress, and the namespace reader sees
#                        USUAL_SUM (WHAT: a word for the messages, and the reader's query)
#   usual_load_stop      a last usual_load_check; stops the workloads (each must report
#                        errors=0) and the reader; the backing directory must hold exactly
#                        what the mount shows
usual_load_start() {
	local w
	try_cmd 10 mkdir "$M/fd" "$M/cwd" "$M/churn" "$M/ns" || fail "mkdir through the mount failed: $TRY_OUT"
	head -c 300000 /dev/urandom >"$T/ns-data.ref"
	try_cmd 10 cp "$T/ns-data.ref" "$M/ns/data" || fail "writing the namespace file through the mount failed: $TRY_OUT"
	USUAL_SUM=$(sha256sum <"$T/ns-data.ref" | cut -d' ' -f1)
	declare -gA load_pid
	for w in fd cwd churn; do
		run_bg "load-$w" "$FKLOAD" "$w" "$M/$w" --progress="$T/$w.prog" --seed=$RANDOM
		load_pid[$w]=$BG_PID
	done
	ns_reader_start "$M/ns"
	usual_load_check start
}

usual_load_check() {
	local w sum
	# A few dozen operations prove a workload goes on; more would measure the machine (a TCG
	# guest on a busy host runs the cwd workload at a few operations a second).
	for w in fd cwd churn; do
		wait_progress "$T/$w.prog" 30 30 "${load_pid[$w]}" ||
			fail "$1: the $w workload made no progress"
	done
	sum=$(ns_query "$1") || fail "$1: the namespace reader did not answer"
	[ "${sum% *}" = "$USUAL_SUM" ] || fail "$1: the namespace reader got '$sum', expected $USUAL_SUM"
}

usual_load_stop() {
	usual_load_check end
	fkload_stop fd cwd churn
	[ "$(ls -A "$B" | sort | tr '\n' ' ')" = "churn cwd fd ns " ] ||
		fail "unexpected entries in the backing dir: $(ls -A "$B" | tr '\n' ' ')"
	cmp "$B/fd/fd-file" "$M/fd/fd-file" || fail "fd-file differs between the backing dir and the mount"
	[ -z "$(ls -A "$B/cwd")" ] || fail "the cwd workload left entries behind: $(ls -A "$B/cwd" | tr '\n' ' ')"
	diff -r "$B/churn" "$M/churn" || fail "the churn directory differs between the backing dir and the mount"
	[ "$(sha256sum <"$B/ns/data" | cut -d' ' -f1)" = "$USUAL_SUM" ] ||
		fail "the namespace file changed in the backing dir"
	# Before any unmount: the reader's namespace holds a copy of the mount.
	ns_reader_stop
}

# fk_status_field EXPR: a field of the current keeper's status object ($M's), as the Python
# expression EXPR on the object s prints it.
fk_status_field() {
	local out
	out=$("$FK" status --json "$M") || return 1
	python3 -c 'import json, sys; s = json.loads(sys.argv[1])[0]; print(eval(sys.argv[2]))' "$out" "$1"
}

# notify_listener_start [SPAWN-JSON]: starts tests/notify-listener.py, systemd's side of
# NOTIFY_SOCKET, on $T/notify.sock; it logs what it hears to $N (made empty here) and, given
# SPAWN-JSON, starts a keeper from it on SIGUSR1 with the fds it keeps. Its pid goes to LISTENER.
notify_listener_start() {
	N=$T/notify.log
	: >"$N"
	run_bg listener python3 "$FK_SRCDIR/tests/notify-listener.py" "$T/notify.sock" "$N" "$@"
	wait_match "$T/listener.out" '^ready$' 10 >/dev/null ||
		fail "the listener did not start: $(cat "$T/listener.err")"
	LISTENER=$BG_PID
}

# fk_wait_in_flight: waits until status shows a request in flight (10 s at most). Cheap (no
# python) so as not to miss a short one on a busy machine.
fk_wait_in_flight() {
	local deadline=$(($(now_ms) + 10000))
	until "$FK" status --json "$M" 2>/dev/null | grep -Eq '"requests_in_flight": *[1-9]'; do
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.02
	done
}

# ---- cleanup ---------------------------------------------------------------

# The tracked pids that are still our own running children.
fk_own_live_pids() {
	local pid pp
	sort -u "$FK_STATE/pids" | while read -r pid; do
		[ -n "$pid" ] && alive "$pid" || continue
		pp=$(pid_ppid "$pid")
		# Ours, or a keeper that a test's stand-in for systemd started (tracked; its parent
		# may be gone already).
		if [ "$pp" = "$$" ] || [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$FK" ]; then
			echo "$pid"
		fi
	done
}

# Daemon pids from DAEMON lines that still run the program that keeper started.
fk_live_daemons() {
	local ev i pid argv0 want
	for ev in "$T"/events.*; do
		[ -f "$ev" ] || continue
		i=${ev##*.}
		want=$(cat "$FK_STATE/cmd.$i" 2>/dev/null)
		for pid in $(awk '$1 == "DAEMON" { print $2 }' "$ev"); do
			alive "$pid" || continue
			argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)
			[ -n "$want" ] && [ "$argv0" = "$want" ] && echo "$pid"
		done
	done
}

fk_dump() {
	local f
	echo "==== diagnostics of $FK_TEST_NAME ($T) ===="
	for f in "$T"/events.* "$T"/keeper.*.log "$T"/*.out "$T"/*.err; do
		[ -s "$f" ] || continue
		echo "---- ${f#"$T"/} ----"
		cat "$f"
	done
	echo "---- mounts under $T ----"
	mounts_under "$T"
	# A keeper still running when the test failed may be stuck: show where.
	if [ -n "${FK_PID:-}" ] && alive "$FK_PID"; then
		echo "---- threads of keeper $FK_PID (state, kernel wait channel) ----"
		for f in /proc/"$FK_PID"/task/*; do
			echo "${f##*/} $(cat "$f/comm" 2>/dev/null)" \
				"$(awk '{ print $3 }' "$f/stat" 2>/dev/null) $(cat "$f/wchan" 2>/dev/null)"
		done
		# Only when asked (FK_GDB=1): gdb's attach can stop the keeper for good (state t)
		# and hang the clean-up with it.
		if [ "${FK_GDB:-}" = 1 ] && command -v gdb >/dev/null; then
			timeout -k 5 20 gdb -batch -nx -ex 'thread apply all bt' -p "$FK_PID" 2>&1 |
				grep -E '^(Thread|#)'
		fi
	fi
}

# Runs from the EXIT trap.  It does not call exit, so the test's exit status
# stands and commands chained after it in the trap (lib-daemons.sh) still run.
fk_cleanup() {
	local rc=$? pid pids deadline m
	[ -z "${FK_CLEANED:-}" ] || return 0
	FK_CLEANED=1
	trap '' INT TERM
	set +e
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		fk_dump >&2
	fi

	# SIGTERM first: a keeper asked to stop unmounts and stops its daemon.
	pids=$(fk_own_live_pids)
	# shellcheck disable=SC2086
	[ -n "$pids" ] && kill -TERM $pids 2>/dev/null
	deadline=$(($(now_ms) + 5000))
	while [ -n "$(fk_own_live_pids)" ] && [ "$(now_ms)" -lt "$deadline" ]; do
		sleep 0.05
	done

	# Whatever is left may be stuck in a request: abort our FUSE connections, then SIGKILL.
	pids="$(fk_own_live_pids) $(fk_live_daemons)"
	if [ -n "${pids// /}" ]; then
		echo "cleanup: killing leftover processes: $(echo "$pids" | tr '\n' ' ')" >&2
		for m in $(mounts_under "$T") $(cat "$FK_STATE/mounts"); do
			fuse_abort "$m"
		done
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null
		for pid in $pids; do
			wait_gone "$pid" 5 || echo "cleanup: pid $pid did not exit" >&2
		done
	fi
	for pid in $(sort -u "$FK_STATE/pids"); do
		alive "$pid" || wait "$pid" 2>/dev/null
	done

	for m in $(cat "$FK_STATE/mounts") $(mounts_under "$T"); do
		while mounted "$m"; do
			echo "cleanup: unmounting $m" >&2
			fuse_abort "$m"
			umount -l "$m" || break
		done
	done

	# A keeper whose resume journal differed from its tables fails a test that passed.
	m='The resume journal does not match'
	if [ "$rc" = 0 ] && grep -qs "$m" "$T"/keeper.*.log; then
		grep -h "$m" "$T"/keeper.*.log | sed 's/^/FAIL: /' >&2
		FK_LATE_FAIL=1
	fi
	rm -rf --one-file-system "$T"
	# With lib-daemons.sh's clean-up chained after this one, that one exits.
	[ -n "${FK_LATE_FAIL:-}" ] && ! declare -F _fkd_cleanup >/dev/null && exit 1
	return 0
}

trap fk_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# crash_arm SPEC: the test daemon run with --crash-file=$T/crash kills itself
# at the next operation matching SPEC (testfs's header has the syntax).  Marks the
# event log (fk_mark) and keeps the daemon's pid in DAEMON_BEFORE, SPEC in SPEC.
crash_arm() {
	fk_mark
	DAEMON_BEFORE=$(fk_daemon_pid) || fail "no daemon"
	printf '%s\n' "$1" >"$T/crash.tmp" && mv "$T/crash.tmp" "$T/crash" ||
		fail "cannot write the crash file"
	SPEC=$1
}

# file_is PATH TEXT: true if the file at PATH holds exactly TEXT (trailing
# newlines included); what it holds is left in FILE_GOT.
file_is() {
	FILE_GOT=$(cat "$1" 2>/dev/null && echo x) || {
		FILE_GOT="(unreadable)"
		return 1
	}
	FILE_GOT=${FILE_GOT%x}
	[ "$FILE_GOT" = "$2" ]
}

# The fd holder: a process that keeps a file open across daemon kills and
# answers commands through that same fd.
#   holder_start NAME PATH [ro]  opens PATH (O_RDWR, or O_RDONLY with ro); its
#                                output is $T/holder-NAME.out
#   holder NAME CMD [ARG]        sends CMD and prints the holder's answer:
#     read          -> "read DATA" (up to 64 bytes from offset 0; newlines as \n)
#     readat OFF    -> "read DATA" (the same from offset OFF)
#     fsync         -> "fsync 0"
#     write DATA    -> "wrote N"   (DATA at offset 0; \n in DATA for a newline)
#     fstat         -> "ino N"
#     nlink         -> "nlink N" (st_nlink of the fd)
#     sum           -> "sum HEX" (SHA-256 of the whole file, read from offset 0)
#     close         -> "closed 0" (close(2) of the fd; the holder then only takes quit)
#   or, when the call fails, "error ENAME" (the errno's name, e.g. ESTALE).
#   holder_stop NAME             makes it exit.
# A request stuck in the mount makes holder fail after 10 s rather than hang.
declare -A _holder_pid _holder_fd
_holder_script() {
	[ -e "$T/holder.pl" ] && return
	cat >"$T/holder.pl" <<'EOF'
use strict;
use Fcntl qw(O_RDWR O_RDONLY SEEK_SET);
use Errno ();
use Digest::SHA ();
sub ename { my $e = $! + 0; for (keys %!) { return $_ if $!{$_} } return "errno$e" }
sysopen(my $f, $ARGV[0], $ARGV[2] eq "ro" ? O_RDONLY : O_RDWR) or die "open $ARGV[0]: $!\n";
open(my $in, "<", $ARGV[1]) or die "fifo: $!\n";
$| = 1;
print "open\n";
while (my $l = <$in>) {
	chomp $l;
	my ($cmd, $arg) = split / /, $l, 2;
	my $out;
	if ($cmd eq "read" || $cmd eq "readat") {
		my $buf;
		my $off = $cmd eq "readat" ? $arg : 0;
		my $n = sysseek($f, $off, SEEK_SET) ? sysread($f, $buf, 64) : undef;
		if (defined $n) { $buf =~ s/\n/\\n/g; $out = "read $buf" }
	} elsif ($cmd eq "fsync") {
		require IO::Handle;
		$out = "fsync 0" if $f->sync;
	} elsif ($cmd eq "write") {
		$arg =~ s/\\n/\n/g;
		my $n = sysseek($f, 0, SEEK_SET) ? syswrite($f, $arg) : undef;
		$out = "wrote $n" if defined $n;
	} elsif ($cmd eq "sum") {
		my ($sha, $buf, $n) = (Digest::SHA->new(256));
		if (sysseek($f, 0, SEEK_SET)) {
			$sha->add($buf) while ($n = sysread($f, $buf, 65536));
			$out = "sum " . $sha->hexdigest if defined $n;
		}
	} elsif ($cmd eq "fstat") {
		my @st = stat($f);
		$out = "ino $st[1]" if @st;
	} elsif ($cmd eq "nlink") {
		my @st = stat($f);
		$out = "nlink $st[3]" if @st;
	} elsif ($cmd eq "close") {
		$out = "closed 0" if close($f);
	} elsif ($cmd eq "quit") {
		exit 0;
	} else { die "holder: unknown command $cmd\n" }
	print defined $out ? "$out\n" : "error " . ename() . "\n";
}
EOF
}

holder_start() {
	local name=$1 path=$2 mode=${3:-rw} fd
	_holder_script
	mkfifo "$T/holder-$name.in" || fail "mkfifo failed"
	# Opened read-write: never blocks, and the holder sees no EOF before holder_stop.
	exec {fd}<>"$T/holder-$name.in"
	run_bg "holder-$name" perl "$T/holder.pl" "$path" "$T/holder-$name.in" "$mode"
	_holder_pid[$name]=$BG_PID
	_holder_fd[$name]=$fd
	wait_match "$T/holder-$name.out" '^open$' 10 >/dev/null ||
		fail "the holder of $path did not open it: $(cat "$T/holder-$name.err")"
}

holder() {
	local name=$1 n deadline=$(($(now_ms) + 10000))
	shift
	n=$(wc -l <"$T/holder-$name.out")
	echo "$*" >&"${_holder_fd[$name]}"
	while [ "$(wc -l <"$T/holder-$name.out")" -le "$n" ]; do
		alive "${_holder_pid[$name]}" ||
			fail "the $name holder died: $(cat "$T/holder-$name.err")"
		[ "$(now_ms)" -lt "$deadline" ] || fail "the $name holder did not answer '$*' within 10 s"
		sleep 0.02
	done
	tail -n 1 "$T/holder-$name.out"
}

# holder_eio WHEN LIMIT_MS NAME COMMAND: the holder NAME answers COMMAND (read, readat OFF,
# sum...) with EIO within LIMIT_MS; the test fails otherwise.
holder_eio() {
	local start took got
	start=$(now_ms)
	got=$(holder "$3" "$4")
	took=$(($(now_ms) - start))
	[ "$got" = "error EIO" ] || fail "$1: '$4' through the open fd gave '$got', not EIO"
	[ "$took" -lt "$2" ] || fail "$1: '$4' through the open fd took $took ms: not at once"
}

# Every holder inherited the fifos opened before it: it is told to quit, not
# left to wait for an EOF that would not come.
holder_stop() {
	local fd=${_holder_fd[$1]}
	echo quit >&"$fd"
	exec {fd}>&-
	wait_pid "${_holder_pid[$1]}" 10 || fail "the $1 holder did not exit"
}

# errno_of OP PATH: the errno name (ENOTCONN, ESTALE...) a fresh call on PATH fails with, or
# "ok": OP is stat (stat(2)), read (open(2) and a read(2) of up to 64 bytes) or list
# (opendir(3) and readdir(3) to the end). The answer is alone on stdout; perl's own
# complaints, if any, go to $T/errno_of.err. Run it under try_cmd where the call may hang.
errno_of() {
	perl -e 'use Errno (); sub ename { my $e = $! + 0; for (keys %!) { return $_ if $!{$_} } "errno$e" }
		my ($op, $p) = @ARGV; my $ok;
		if ($op eq "stat") { $ok = stat($p) }
		elsif ($op eq "list") { $ok = opendir(my $d, $p); if ($ok) { $! = 0; my @e = readdir($d); $ok = !$! } }
		else { my $b; $ok = open(my $f, "<", $p) && defined(sysread($f, $b, 64)) }
		print $ok ? "ok\n" : ename() . "\n"' "$1" "$2" 2>>"$T/errno_of.err"
}

# drop_cache PATH: drops the kernel's clean cached pages of the file at PATH, so
# that the next read through any fd goes to the daemon.
drop_cache() {
	dd if="$1" iflag=nocache count=0 status=none
}

# bdi_hold_dirty MOUNTPOINT: keeps pages dirtied under the writeback cache dirty until a sync
# or the 30 s expiry. FUSE's backing device has a strict dirty limit (BDI_CAP_STRICTLIMIT) of
# its own share of recent writeout, which a fresh mount does not have: its background threshold
# is 0 pages, so the flusher's next periodic wakeup, or any writer that checks its limits, may
# write them back at once. A minimum share (1 %, FUSE's maximum) puts a floor under the limit.
bdi_hold_dirty() {
	local bdi
	bdi=/sys/class/bdi/$(mountpoint -d "$1") || fail "$1 is not a mount point"
	echo 1 >"$bdi/min_ratio" || fail "cannot set $bdi/min_ratio"
}

# fk_umount_exit STATUS: unmounts $M and checks that the keeper then exits with STATUS.
fk_umount_exit() {
	try_cmd 10 umount "$M" || fail "umount $M failed: $TRY_OUT"
	fk_wait_exit 30 || fail "the keeper did not exit after umount"
	[ "$FK_STATUS" = "$1" ] || fail "the keeper exited with status $FK_STATUS, expected $1"
}

# fk_clean_rounds ROUNDS: the keeper recovered ROUNDS times, with no failed start.
fk_clean_rounds() {
	[ "$(fk_count RECOVERED)" = "$1" ] || fail "expected $1 RECOVERED events, got $(fk_count RECOVERED)"
	[ "$(fk_count FAILED)" = 0 ] || fail "unexpected FAILED events"
	[ "$(fk_count GAVEUP)" = 0 ] || fail "unexpected GAVEUP"
}

# fkload_stop NAME...: stops the fkload workloads started as load-NAME (pids in the
# load_pid array) and checks that each exited 0 and reported errors=0.
fkload_stop() {
	local w
	for w in "$@"; do
		kill -TERM "${load_pid[$w]}"
	done
	for w in "$@"; do
		wait_pid "${load_pid[$w]}" 60 || fail "the $w workload did not stop after SIGTERM"
		log "$w: $(cat "$T/load-$w.out") (exit $WAIT_STATUS)"
		[ "$WAIT_STATUS" = 0 ] || fail "the $w workload failed (exit $WAIT_STATUS): $(head -n 20 "$T/load-$w.err")"
		grep -q "^fkload $w: ops=[0-9]* errors=0$" "$T/load-$w.out" ||
			fail "the $w workload did not report errors=0"
	done
}
