# shellcheck shell=bash
# tests/lib-reinit.sh - helpers for the tests of FUSE_DEV_IOC_REINIT (9x-reinit-*.sh), which
# drive the ioctl by hand through tests/fkreinit. Source after tests/lib.sh.
#
#   reinit_need            skips unless the kernel has the ioctl (the patched fuse.ko of the
#                          6.1 guest); a stock kernel must answer the probe with ENOTTY
#   serve NAME [OPTION...] mounts $T/NAME with fkreinit serve OPTION..., testfs on a clone
#                          (--backing=$B --crash-file=$T/crash, plus $TESTFS_EXTRA), or the
#                          command in the array SERVE_CMD ({} for the clone) if it is set;
#                          sets M, OUT (fkreinit's answers), SERVE_PID, DAEMON (its pid)
#   cmd COMMAND            sends a command to fkreinit; its answer goes to ANSWER (call it
#                          directly, not in $(...): the count of answers lives in this shell);
#                          an "exited PID STATUS" line before it goes to EXITED="PID STATUS"
#   expect COMMAND REGEX   cmd, then fails unless ANSWER matches REGEX
#   quit NAME              ends fkreinit (it detaches its mount) and checks it exited 0
#   in_daemon NAME [FILE]  starts `stat $M/FILE` (bg_timed NAME; FILE defaults to g) whose
#                          LOOKUP testfs takes and never answers, and waits until testfs has
#                          it; READER = its pid
#   waiting_in PID REGEX   true while PID or its child is in a kernel function matching REGEX
#                          (grep -E on its stack), e.g. request_wait_answer for a request's
#                          answer
#   wait_waiting PID NAME  waits (60 s at most) until PID or its child waits for a request
#                          (fuse_get_req()) or its answer (request_wait_answer()); fails if
#                          the bg_timed job NAME ended first

FKREINIT=$BUILD_DIR/tests/fkreinit
TESTFS_EXTRA=()
SERVE_CMD=()

reinit_need() {
	need_prog "$FKREINIT"
	need_prog "$TESTFS"
	case $("$FKREINIT" probe) in
	absent)
		skip "this kernel ($(uname -r)) has no FUSE_DEV_IOC_REINIT: the probe answers ENOTTY," \
			"as it should without kernel/patches; the 6.1 guest of make check loads the patched fuse.ko"
		;;
	present) ;;
	*) fail "fkreinit probe: $("$FKREINIT" probe)" ;;
	esac
}

serve() {
	local name=$1
	shift
	M=$T/$name
	OUT=$T/$name.out
	mkdir "$M"
	mkfifo "$T/$name.in"
	local daemon=("$TESTFS" --backing="$B" --crash-file="$T/crash" "${TESTFS_EXTRA[@]}" {})
	[ "${#SERVE_CMD[@]}" -eq 0 ] || daemon=("${SERVE_CMD[@]}")
	"$FKREINIT" serve "$@" --in="$T/$name.in" "$M" -- "${daemon[@]}" \
		>"$OUT" 2>"$T/$name.err" </dev/null &
	SERVE_PID=$!
	track_pid "$SERVE_PID"
	track_mount "$M"
	# Read-write: never blocks, even if fkreinit died before opening its end, and a write
	# never gets SIGPIPE.
	exec {CMD}<>"$T/$name.in"
	wait_match "$OUT" '^started [0-9]+' 20 >/dev/null ||
		fail "$name: fkreinit did not start: $(cat "$T/$name.err")"
	DAEMON=$(sed -n 's/^started //p' "$OUT")
	log "$name: fkreinit $SERVE_PID, daemon $DAEMON"
	NSEEN=$(wc -l <"$OUT")
}

cmd() {
	local deadline=$(($(now_ms) + 60000))
	echo "$1" >&"$CMD"
	while :; do
		while [ "$(wc -l <"$OUT")" -le "$NSEEN" ]; do
			alive "$SERVE_PID" || fail "fkreinit died before answering '$1': $(cat "${OUT%.out}.err")"
			[ "$(now_ms)" -lt "$deadline" ] || fail "no answer to '$1' within 60 s"
			sleep 0.02
		done
		NSEEN=$((NSEEN + 1))
		ANSWER=$(sed -n "${NSEEN}p" "$OUT")
		# fkreinit reports a daemon that exited by itself before its next answer.
		[[ $ANSWER == "exited "* ]] || break
		EXITED=${ANSWER#exited }
		log "daemon exited: $EXITED (pid, status)"
	done
	log "$1 -> $ANSWER"
}

expect() {
	cmd "$1"
	[[ $ANSWER =~ $2 ]] || fail "$1: got '$ANSWER', want '$2'"
}

quit() {
	echo quit >&"$CMD"
	exec {CMD}>&-
	wait_pid "$SERVE_PID" 20 || fail "fkreinit did not quit"
	[ "$WAIT_STATUS" = 0 ] || fail "fkreinit exited $WAIT_STATUS: $(cat "$T/$1.err")"
}

# wait_gone_file PATH: waits (20 s at most) until PATH no longer exists.
wait_gone_file() {
	local deadline=$(($(now_ms) + 20000))
	while [ -e "$1" ]; do
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.02
	done
}

in_daemon() {
	local file=${2:-g}
	printf 'hang:lookup:%s\n' "$file" >"$T/crash.tmp" && mv "$T/crash.tmp" "$T/crash"
	bg_timed "$1" stat "$M/$file"
	READER=$BG_PID
	wait_gone_file "$T/crash" || fail "$1: testfs never got the LOOKUP"
}

waiting_in() {
	local p
	for p in $(cat "/proc/$1/task/"*/children 2>/dev/null) "$1"; do
		grep -qE "$2" "/proc/$p/stack" 2>/dev/null && return 0
	done
	return 1
}

wait_waiting() {
	local deadline=$(($(now_ms) + 60000))
	until waiting_in "$1" 'request_wait_answer|fuse_get_req|fuse_simple_request'; do
		[ -e "$T/$2.rc" ] && fail "$2 ended before it waited: $(cat "$T/$2.out")"
		[ "$(now_ms)" -lt "$deadline" ] || fail "$2 never waited for the mount"
		sleep 0.02
	done
}
