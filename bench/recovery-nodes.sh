#!/bin/bash
# bench/recovery-nodes.sh BUILD_DIR [COUNTS...] - how recovery time grows with the number of
# nodes the kernel holds (proxy mode resolves them eagerly, 256 lookups in flight at a time).
# For each count N: mount testfs under fusekeeper, stat N files so that the kernel holds N
# nodes (100 files per directory), kill the daemon, and read the keeper's RECOVERED time.
# Not part of the tests. Needs root.
BENCH_NAME=recovery
. "$(dirname "$0")/lib-nodes.sh"

printf '%10s %14s\n' nodes "recovery (ms)"
for n in "${COUNTS[@]}"; do
	nodes_mount "$n" -q
	printf '%10d %14s\n' "$n" "$(nodes_kill_daemon)"
	nodes_umount
done
