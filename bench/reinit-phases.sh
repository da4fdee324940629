#!/bin/bash
# bench/reinit-phases.sh LOGDIR - where the time of each kill of bench/reinit.sh went, from the
# files it keeps in LOGDIR (BUILD_DIR/bench/reinit-logs-DATE/; from the guest, in
# test-logs/bench/vm-6.1/test-logs/): the kills' wall-clock times (kills, from fkrecover) and
# the keeper's -v log, each line stamped with the wall clock (reinit.log). One line per kill,
# milliseconds from the kill to:
#   noticed    the keeper logs the daemon's death (SIGCHLD: after the kernel tore the process
#              down, which takes longer the more fds it held)
#   BEGIN      FUSE_REINIT_BEGIN done (the log's "FUSE connection at generation")
#   started    the next daemon forked and exec'ed ("Started daemon")
#   took over  the kernel accepted its INIT answer ("took over": the RECOVERED event)
set -eu
d=${1:?usage: $0 LOGDIR}
if [ ! -f "$d/kills" ] || [ ! -f "$d/reinit.log" ]; then
	echo "$d: no kills or reinit.log" >&2
	exit 1
fi
sort -n "$d/kills" "$d/reinit.log" | awk '
function out() {
	printf "%-32s noticed %7s  BEGIN %7s  started %7s  took over %7s\n", label, n, b, s, t
}
/ KILL / { if (k) out(); k = $1; label = $0; sub(/^[0-9]+ /, "", label); n = b = s = t = "-"; next }
k && n == "-" && / was killed by signal/ { n = sprintf("%.1f", ($1 - k) / 1000) }
k && b == "-" && /FUSE connection at generation/ { b = sprintf("%.1f", ($1 - k) / 1000) }
k && s == "-" && /Started daemon/ { s = sprintf("%.1f", ($1 - k) / 1000) }
k && t == "-" && /took over/ { t = sprintf("%.1f", ($1 - k) / 1000) }
END { if (k) out() }'
