#!/bin/bash
# bench/recovery-nodes.sh BUILD_DIR [COUNTS...] - how recovery time grows with the number of
# nodes the kernel holds (proxy mode resolves them eagerly, 256 lookups in flight at a time).
# For each count N: mount testfs under fusekeeper, stat N files so that the kernel holds N
# nodes (100 files per directory), kill the daemon, and read the keeper's RECOVERED time.
# Not part of the tests. Needs root.
set -u
BUILD_DIR=$(cd "${1:?usage: $0 BUILD_DIR [COUNTS...]}" && pwd)
shift
[ $# -gt 0 ] && COUNTS=("$@") || COUNTS=(1000 5000 15000)
# testfs keeps an O_PATH fd per node, like libfuse's passthrough_ll: counts above the fd
# limit (ulimit -Hn) measure the daemon running out of fds, not the keeper.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FK=$BUILD_DIR/fusekeeper
TESTFS=$BUILD_DIR/tests/testfs
WORK=$(mktemp -d /tmp/fusekeeper-recovery.XXXXXX)
KEEPER=

cleanup() {
	[ -n "$KEEPER" ] && kill -TERM "$KEEPER" 2>/dev/null && wait "$KEEPER" 2>/dev/null
	umount -l "$WORK/mnt" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

wait_line() { # FILE REGEX: waits (at most 120 s) for a matching line, prints it
	local deadline=$((SECONDS + 120))
	while ! grep -E -m1 "$2" "$1"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}

printf '%10s %14s\n' nodes "recovery (ms)"
for n in "${COUNTS[@]}"; do
	rm -rf "$WORK/back" && mkdir -p "$WORK/back" "$WORK/mnt"
	for ((d = 0; d < (n + 99) / 100; d++)); do
		mkdir "$WORK/back/d$d"
		(cd "$WORK/back/d$d" && touch $(seq -f 'f%g' 1 100))
	done
	: >"$WORK/events"
	"$FK" -q --status-fd=3 "$WORK/mnt" -- "$TESTFS" --backing="$WORK/back" {} 3>"$WORK/events" &
	KEEPER=$!
	wait_line "$WORK/events" '^READY' >/dev/null || { echo "no READY" >&2; exit 1; }
	# stat (not ls): every file becomes a node the kernel holds.
	find "$WORK/mnt" -type f | head -n "$n" | xargs stat -c %i >/dev/null
	daemon=$(awk '/^DAEMON/ { p = $2 } END { print p }' "$WORK/events")
	kill -KILL "$daemon"
	line=$(wait_line "$WORK/events" '^RECOVERED') || { echo "no RECOVERED" >&2; exit 1; }
	printf '%10d %14s\n' "$n" "${line##* }"
	umount "$WORK/mnt"
	wait "$KEEPER"
	KEEPER=
done
