#!/bin/bash
# 10-testfs-kill: testfs under the keeper keeps serving while its daemon is
# SIGKILLed five times under load.
#
# Three fkload workloads (fd: one fd kept open; cwd: relative paths from a cwd
# inside the mount; churn: 4 threads of create/rename/unlink/readdir) run on
# their own subdirectories, and a process in another mount namespace reads a
# file through a bind mount of the mount.  After each kill and RECOVERED, every
# workload must still make progress and the namespace reader must see the same
# checksum; at the end every workload must report errors=0 and the backing
# directory must hold exactly what the mount shows.
# timeout: 300
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_prog "$FKLOAD"
need_cmd unshare sha256sum

ROUNDS=5
M=$T/mnt
B=$T/back
mkdir "$M" "$B"

fk_start "$M" --max-restarts=100 -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"

usual_load_start

for round in $(seq "$ROUNDS"); do
	fk_kill_daemon || fail "round $round: killing the daemon failed"
	fk_wait RECOVERED "" 30 || fail "round $round: no RECOVERED after killing daemon $FK_KILLED"
	log "round $round: daemon $FK_KILLED killed, $FK_LINE"
	usual_load_check "round-$round"
done

# The workloads must keep going after the last recovery too, and end without an error.
usual_load_stop

fk_clean_rounds "$ROUNDS"

fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "no STOPPED event"
assert_not_mounted "$M"
assert_all_gone
log "ok"
