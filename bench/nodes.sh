#!/bin/bash
# bench/nodes.sh BUILD_DIR [COUNTS...] - what the nodes the kernel holds cost fusekeeper's proxy
# mode: memory per node and per open handle, and the time a recovery takes. For each count N
# (1000 10000 100000): mount bench/fknodes with N files under fusekeeper, stat every file so
# that the kernel holds N nodes, open every one of them (from several processes when the fd
# limit is below N), then SIGKILL the daemon NODES_KILLS (3) times. Prints the keeper's RSS
# growth per node and per handle, and the median of the recoveries: from the death to the new
# daemon serving (RECOVERED), and the keeper's own part after the new daemon answered INIT
# (from its "Recovered:" log line).
# NODES_OPEN=0 leaves the files closed: the kernel then holds the nodes only, which need not
# be looked up before serving. Each count is then measured twice, side by side: with the
# default lazy lookup (the time of its background walk is printed too) and --eager-lookup.
# Not part of the tests. Needs root.
BENCH_NAME=nodes
. "$(dirname "$0")/lib-nodes.sh"
KILLS=${NODES_KILLS:-3}
[[ $KILLS =~ ^[1-9][0-9]*$ ]] || { echo "$0: NODES_KILLS must be a number from 1" >&2; exit 2; }
OPEN=${NODES_OPEN:-1}
[[ $OPEN =~ ^[01]$ ]] || { echo "$0: NODES_OPEN must be 0 or 1" >&2; exit 2; }

echo "nodes.sh: $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%9s %7s %11s %13s %15s %14s %14s %9s\n' nodes lookup "RSS (KiB)" "B per node" \
	"B per handle" "recovery (ms)" "after INIT (ms)" "walk (ms)"
# walk_done N: the keeper's log reports N background walks done.
walk_done() {
	[ "$(grep -c 'Every node the kernel holds is looked up again' "$WORK/log")" -ge "$1" ]
}

# measure N LOOKUP: one row for N nodes, lookups lazy (default) or eager (--eager-lookup).
measure() {
	local n=$1 lookup=$2 opt=() walk
	[ "$lookup" = eager ] && opt=(--eager-lookup)
	nodes_mount "$n" "${opt[@]}"
	if [ "$OPEN" = 1 ]; then
		nodes_hold "$n"
	else
		RSS_HANDLES=$RSS_NODES
	fi
	: >"$WORK/times"
	for ((k = 0; k < KILLS; k++)); do
		nodes_kill_daemon >>"$WORK/times" || exit 1
		# The new daemon serves the nodes the kernel holds: an open of the last file (its
		# stat would be answered from the kernel's cache) reaches it.
		: <"$(nodes_paths "$n" | tail -n 1)" || { echo "open failed" >&2; exit 1; }
		# Lazy lookup: its background walk ends before the next kill.
		if [ "$lookup" = lazy ] && [ "$OPEN" = 0 ]; then
			poll 120 walk_done $((k + 1)) || { echo "the walk did not end" >&2; exit 1; }
		fi
		# A daemon that dies within 300 ms of its start is a failed start, which the
		# keeper backs off from: let each kill be an ordinary crash.
		sleep 0.4
	done
	walk=$(grep -o 'looked up again, [0-9]* ms' "$WORK/log" | awk '{ print $4 }' | median)
	printf '%9d %7s %11d %13d %15d %14s %14s %9s\n' "$n" "$lookup" "$RSS_HANDLES" \
		$(((RSS_NODES - RSS_EMPTY) * 1024 / n)) $(((RSS_HANDLES - RSS_NODES) * 1024 / n)) \
		"$(cut -d' ' -f1 "$WORK/times" | median)" "$(cut -d' ' -f2 "$WORK/times" | median)" \
		"${walk:--}"
	if grep 'Recovered: ' "$WORK/log" | grep -v '(0 nodes and 0 handles lost;'; then
		echo "a recovery lost nodes or handles" >&2
		exit 1
	fi
	nodes_umount
}

for n in "${COUNTS[@]}"; do
	measure "$n" lazy
	[ "$OPEN" = 1 ] || measure "$n" eager
done
