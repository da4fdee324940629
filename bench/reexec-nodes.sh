#!/bin/bash
# bench/reexec-nodes.sh BUILD_DIR [COUNTS...] - how long `fusekeeper reexec` takes as the
# tables grow, beside a daemon restart's recovery of the same tables. For each count N: mount
# testfs under fusekeeper, stat N files so that the kernel holds N nodes (100 files per
# directory) and keep 100 of them open, replace the keeper (REEXECUTED ms, and the state image's
# size from the log), then kill the daemon (RECOVERED ms). Not part of the tests. Needs root.
set -u
BUILD_DIR=$(cd "${1:?usage: $0 BUILD_DIR [COUNTS...]}" && pwd)
shift
[ $# -gt 0 ] && COUNTS=("$@") || COUNTS=(1000 5000 15000)
# testfs keeps an O_PATH fd per node: counts above the fd limit measure the daemon.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FK=$BUILD_DIR/fusekeeper
TESTFS=$BUILD_DIR/tests/testfs
WORK=$(mktemp -d /tmp/fusekeeper-reexec.XXXXXX)
KEEPER=
HOLDER=

cleanup() {
	[ -n "$HOLDER" ] && kill -TERM "$HOLDER" 2>/dev/null && wait "$HOLDER" 2>/dev/null
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

printf '%10s %12s %14s %14s\n' nodes "image (KiB)" "reexec (ms)" "recovery (ms)"
for n in "${COUNTS[@]}"; do
	rm -rf "$WORK/back" && mkdir -p "$WORK/back" "$WORK/mnt"
	for ((d = 0; d < (n + 99) / 100; d++)); do
		mkdir "$WORK/back/d$d"
		(cd "$WORK/back/d$d" && touch $(seq -f 'f%g' 1 100))
	done
	: >"$WORK/events"
	"$FK" -v --status-fd=3 "$WORK/mnt" -- "$TESTFS" --backing="$WORK/back" {} \
		3>"$WORK/events" 2>"$WORK/log" &
	KEEPER=$!
	wait_line "$WORK/events" '^READY' >/dev/null || { echo "no READY" >&2; exit 1; }
	# stat (not ls): every file becomes a node the kernel holds; 100 of them stay open.
	find "$WORK/mnt" -type f | head -n "$n" | xargs stat -c %i >/dev/null
	bash -c 'for f in "$@"; do exec {fd}<"$f"; done; exec sleep 1000' holder \
		$(find "$WORK/mnt/d0" -type f | head -n 100) &
	HOLDER=$!
	sleep 1
	"$FK" reexec "$WORK/mnt" >/dev/null || { echo "reexec failed" >&2; exit 1; }
	line=$(wait_line "$WORK/events" '^REEXECUTED') || { echo "no REEXECUTED" >&2; exit 1; }
	bytes=$(grep -o 'with a [0-9]*-byte state image' "$WORK/log" | grep -o '[0-9]*')
	daemon=$(awk '/^DAEMON/ { p = $2 } END { print p }' "$WORK/events")
	kill -KILL "$daemon"
	rec=$(wait_line "$WORK/events" '^RECOVERED') || { echo "no RECOVERED" >&2; exit 1; }
	printf '%10d %12d %14s %14s\n' "$n" $((bytes / 1024)) "${line##* }" "${rec##* }"
	kill -TERM "$HOLDER"; wait "$HOLDER" 2>/dev/null; HOLDER=
	umount "$WORK/mnt"
	wait "$KEEPER"
	KEEPER=
done
