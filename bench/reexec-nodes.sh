#!/bin/bash
# bench/reexec-nodes.sh BUILD_DIR [COUNTS...] - how long `fusekeeper reexec` takes as the
# tables grow, beside a daemon restart's recovery of the same tables. For each count N: mount
# bench/fknodes under fusekeeper, stat N files so that the kernel holds N nodes (100 files per
# directory) and keep 100 of them open, replace the keeper (REEXECUTED ms, and the state image's
# size from the log), then kill the daemon (RECOVERED ms). Not part of the tests. Needs root.
BENCH_NAME=reexec
. "$(dirname "$0")/lib-nodes.sh"

echo "reexec-nodes.sh: $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%10s %12s %14s %14s\n' nodes "image (KiB)" "reexec (ms)" "recovery (ms)"
for n in "${COUNTS[@]}"; do
	nodes_mount "$n" -v
	nodes_hold 100
	"$FK" reexec "$WORK/mnt" >/dev/null || { echo "reexec failed" >&2; exit 1; }
	line=$(wait_line "$WORK/events" '^REEXECUTED') || { echo "no REEXECUTED" >&2; exit 1; }
	bytes=$(grep -o 'with a [0-9]*-byte state image' "$WORK/log" | grep -o '[0-9]*')
	rec=$(nodes_kill_daemon) || exit 1
	printf '%10d %12d %14s %14s\n' "$n" $((bytes / 1024)) "${line##* }" "${rec%% *}"
	nodes_umount
done
