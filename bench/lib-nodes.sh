#!/bin/bash
# bench/lib-nodes.sh - what bench/nodes.sh and bench/reexec-nodes.sh share: sourced with the
# bench's arguments (BUILD_DIR [COUNTS...]) and the name of its work directory. Sets FK, WORK and
# COUNTS; cleans up the keeper, the holder of open files and the mount at exit.
#
# The daemon is bench/fknodes, whose made-up tree costs it nothing per node (no fd each, as a
# passthrough daemon needs): what grows with the count is the kernel's and the keeper's.
set -u
. "$(dirname "$0")/lib-passthrough.sh"
. "$(dirname "$0")/../scripts/common.sh"
[ $# -ge 1 ] || die "usage: $0 BUILD_DIR [COUNTS...]"
BUILD_DIR=$(cd "$1" 2>/dev/null && pwd) || die "build directory $1 not found"
shift
[ $# -gt 0 ] && COUNTS=("$@") || COUNTS=(1000 10000 100000)
for n in "${COUNTS[@]}"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "$0: counts are numbers from 1, not '$n'" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "$0: needs root (it mounts)" >&2; exit 2; }
# A holder of open files needs one fd per file.
ulimit -n "$(ulimit -Hn)"
FK=$BUILD_DIR/fusekeeper
FKNODES=$BUILD_DIR/bench/fknodes
for b in "$FK" "$FKNODES"; do
	[ -x "$b" ] || { echo "$0: $b is not built: run make" >&2; exit 2; }
done
WORK=$(mktemp -d "/tmp/fusekeeper-${BENCH_NAME:?}.XXXXXX")
KEEPER=
HOLDERS=()

nodes_cleanup() {
	[ ${#HOLDERS[@]} -gt 0 ] && kill -TERM "${HOLDERS[@]}" 2>/dev/null && wait "${HOLDERS[@]}"
	[ -n "$KEEPER" ] && kill -TERM "$KEEPER" 2>/dev/null && wait "$KEEPER" 2>/dev/null
	umount -l "$WORK/mnt" 2>/dev/null
	rm -rf "$WORK"
}
trap nodes_cleanup EXIT

# has_line FILE REGEX N: true once FILE has N lines matching REGEX. A keeper that exited will
# write none: its log goes to stderr and the bench stops.
has_line() {
	[ "$(grep -c -E "$2" "$1")" -ge "$3" ] && return 0
	if ! alive "$KEEPER"; then
		echo "$0: the keeper exited; its log:" >&2
		cat "$WORK/log" >&2
		exit 1
	fi
	return 1
}

# wait_line FILE REGEX [N]: waits (at most 120 s) for the Nth (1st) line matching REGEX and
# prints it.
wait_line() {
	local nth=${3:-1}
	poll 120 has_line "$1" "$2" "$nth" || return 1
	grep -E "$2" "$1" | sed -n "${nth}p"
}

# nodes_paths N: the paths of fknodes' first N files under the mount, one per line.
nodes_paths() {
	awk -v n="$1" -v m="$WORK/mnt" 'BEGIN { for (i = 0; i < n; i++)
		printf "%s/d%d/f%d\n", m, int(i / 100), i % 100 + 1 }'
}

# nodes_rss: the keeper's resident memory in KiB.
nodes_rss() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$KEEPER/status"
}

# nodes_mount N [FUSEKEEPER_OPTION...]: fknodes with N files (100 per directory) under
# fusekeeper (events in $WORK/events, stderr in $WORK/log), its RSS once serving in RSS_EMPTY
# (KiB), then the kernel made to hold a node for each file (stat, not ls), and the RSS then in
# RSS_NODES.
nodes_mount() {
	local n=$1
	shift
	mkdir -p "$WORK/mnt"
	: >"$WORK/events"
	"$FK" "$@" --status-fd=3 "$WORK/mnt" -- "$FKNODES" --files="$n" {} \
		3>"$WORK/events" 2>"$WORK/log" &
	KEEPER=$!
	wait_line "$WORK/events" '^READY' >/dev/null || { echo "no READY" >&2; exit 1; }
	stat "$WORK/mnt" >/dev/null
	RSS_EMPTY=$(nodes_rss)
	nodes_paths "$n" | xargs -d '\n' stat -c %i >/dev/null || { echo "stat failed" >&2; exit 1; }
	RSS_NODES=$(nodes_rss)
}

# nodes_hold N: processes hold the first N files open until nodes_umount (as many each as the
# hard limit on fds allows, at most 16,384: a container's may be below N and out of reach);
# the keeper's RSS then is in RSS_HANDLES (KiB).
nodes_hold() {
	local f per=$(($(ulimit -Hn) - 64))
	[ $per -le 16384 ] || per=16384
	rm -f "$WORK"/held.* "$WORK"/paths.*
	nodes_paths "$1" | split -l "$per" -a 3 - "$WORK/paths."
	for f in "$WORK"/paths.*; do
		bash -c 'while read -r f; do exec {fd}<"$f" || exit 1; done <"$2"; : >"$1"
			exec sleep 100000' holder "$WORK/held.${f##*.}" "$f" &
		HOLDERS+=($!)
	done
	poll 600 nodes_held || { echo "the holders did not open their files within 600 s" >&2; exit 1; }
	RSS_HANDLES=$(nodes_rss)
}

# nodes_held: true once every holder has its files open; exits if one of them died.
nodes_held() {
	local f i
	for i in "${HOLDERS[@]}"; do
		alive "$i" || { echo "a holder of open files failed" >&2; exit 1; }
	done
	for f in "$WORK"/paths.*; do
		[ -e "$WORK/held.${f##*.}" ] || return 1
	done
}

# nodes_kill_daemon: SIGKILLs the daemon and prints the keeper's recovery time in ms, then
# the part of it after the new daemon's INIT answer (the keeper's own, but for noticing the
# death and starting the daemon).
nodes_kill_daemon() {
	local daemon line own nth
	daemon=$(awk '/^DAEMON/ { p = $2 } END { print p }' "$WORK/events")
	nth=$(($(grep -c '^RECOVERED' "$WORK/events") + 1))
	kill -KILL "$daemon"
	line=$(wait_line "$WORK/events" '^RECOVERED' "$nth") || { echo "no RECOVERED" >&2; exit 1; }
	own=$(wait_line "$WORK/log" 'Recovered: .* the rest took [0-9]+ ms' "$nth") ||
		{ echo "no Recovered: line in the log" >&2; exit 1; }
	own=${own##*the rest took }
	echo "${line##* } ${own%% ms*}"
}

# nodes_umount: lets the held files go, unmounts, and waits for the keeper to exit.
nodes_umount() {
	if [ ${#HOLDERS[@]} -gt 0 ]; then
		kill -TERM "${HOLDERS[@]}"
		wait "${HOLDERS[@]}" 2>/dev/null
		HOLDERS=()
	fi
	umount "$WORK/mnt" || exit 1
	wait "$KEEPER"
	KEEPER=
}
