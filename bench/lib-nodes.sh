#!/bin/bash
# bench/lib-nodes.sh - what bench/recovery-nodes.sh and bench/reexec-nodes.sh share: sourced
# with the bench's arguments (BUILD_DIR [COUNTS...]) and the name of its work directory. Sets
# FK, TESTFS, WORK and COUNTS; cleans up the keeper, the holder of open files and the mount
# at exit.
set -u
BUILD_DIR=$(cd "${1:?usage: $0 BUILD_DIR [COUNTS...]}" && pwd)
shift
[ $# -gt 0 ] && COUNTS=("$@") || COUNTS=(1000 5000 15000)
# testfs keeps an O_PATH fd per node, like libfuse's passthrough_ll: counts above the fd
# limit (ulimit -Hn) measure the daemon running out of fds, not the keeper.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FK=$BUILD_DIR/fusekeeper
TESTFS=$BUILD_DIR/tests/testfs
WORK=$(mktemp -d "/tmp/fusekeeper-${BENCH_NAME:?}.XXXXXX")
KEEPER=
HOLDER=

nodes_cleanup() {
	[ -n "$HOLDER" ] && kill -TERM "$HOLDER" 2>/dev/null && wait "$HOLDER" 2>/dev/null
	[ -n "$KEEPER" ] && kill -TERM "$KEEPER" 2>/dev/null && wait "$KEEPER" 2>/dev/null
	umount -l "$WORK/mnt" 2>/dev/null
	rm -rf "$WORK"
}
trap nodes_cleanup EXIT

wait_line() { # FILE REGEX: waits (at most 120 s) for a matching line, prints it
	local deadline=$((SECONDS + 120))
	while ! grep -E -m1 "$2" "$1"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}

# nodes_mount N [FUSEKEEPER_OPTION...]: a backing tree of N files (100 per directory), testfs
# over it under fusekeeper (events in $WORK/events, stderr in $WORK/log), and the kernel made
# to hold a node for each file (stat, not ls).
nodes_mount() {
	local n=$1 d
	shift
	rm -rf "$WORK/back" && mkdir -p "$WORK/back" "$WORK/mnt"
	for ((d = 0; d < (n + 99) / 100; d++)); do
		mkdir "$WORK/back/d$d"
		(cd "$WORK/back/d$d" && touch $(seq -f 'f%g' 1 100))
	done
	: >"$WORK/events"
	"$FK" "$@" --status-fd=3 "$WORK/mnt" -- "$TESTFS" --backing="$WORK/back" {} \
		3>"$WORK/events" 2>"$WORK/log" &
	KEEPER=$!
	wait_line "$WORK/events" '^READY' >/dev/null || { echo "no READY" >&2; exit 1; }
	find "$WORK/mnt" -type f | head -n "$n" | xargs stat -c %i >/dev/null
}

# nodes_hold N: a process holds N files of the mount open until nodes_umount.
nodes_hold() {
	rm -f "$WORK/held"
	bash -c 'for f in "${@:2}"; do exec {fd}<"$f"; done; : >"$1"; exec sleep 1000' holder \
		"$WORK/held" $(find "$WORK/mnt/d0" -type f | head -n "$1") &
	HOLDER=$!
	while [ ! -e "$WORK/held" ]; do
		kill -0 "$HOLDER" 2>/dev/null || { echo "the holder of open files failed" >&2; exit 1; }
		sleep 0.05
	done
}

# nodes_kill_daemon: SIGKILLs the daemon and prints the keeper's recovery time in ms.
nodes_kill_daemon() {
	local daemon line
	daemon=$(awk '/^DAEMON/ { p = $2 } END { print p }' "$WORK/events")
	kill -KILL "$daemon"
	line=$(wait_line "$WORK/events" '^RECOVERED') || { echo "no RECOVERED" >&2; exit 1; }
	echo "${line##* }"
}

# nodes_umount: lets the held files go, unmounts, and waits for the keeper to exit.
nodes_umount() {
	if [ -n "$HOLDER" ]; then
		kill -TERM "$HOLDER"
		wait "$HOLDER" 2>/dev/null
		HOLDER=
	fi
	umount "$WORK/mnt"
	wait "$KEEPER"
	KEEPER=
}
