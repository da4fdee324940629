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

try_cmd 10 mkdir "$M/fd" "$M/cwd" "$M/churn" "$M/ns" || fail "mkdir through the mount failed: $TRY_OUT"
head -c 300000 /dev/urandom >"$T/ns-data.ref"
try_cmd 10 cp "$T/ns-data.ref" "$M/ns/data" || fail "writing the namespace file through the mount failed: $TRY_OUT"
want=$(sha256sum <"$T/ns-data.ref" | cut -d' ' -f1)

declare -A load_pid
for w in fd cwd churn; do
	run_bg "load-$w" "$FKLOAD" "$w" "$M/$w" --progress="$T/$w.prog" --seed=$RANDOM
	load_pid[$w]=$BG_PID
done

ns_reader_start "$M/ns"

sum=$(ns_query 0) || fail "the namespace reader did not answer"
[ "${sum% *}" = "$want" ] || fail "namespace reader before any kill: got '$sum', expected $want"

for round in $(seq "$ROUNDS"); do
	for w in fd cwd churn; do
		wait_progress "$T/$w.prog" 150 30 "${load_pid[$w]}" ||
			fail "round $round: the $w workload made no progress"
	done
	fk_kill_daemon || fail "round $round: killing the daemon failed"
	fk_wait RECOVERED "" 30 || fail "round $round: no RECOVERED after killing daemon $FK_KILLED"
	log "round $round: daemon $FK_KILLED killed, $FK_LINE"
	sum=$(ns_query "$round") || fail "round $round: the namespace reader did not answer"
	[ "${sum% *}" = "$want" ] || fail "round $round: namespace reader got '$sum', expected $want"
done

# The workloads must keep going after the last recovery too.
for w in fd cwd churn; do
	wait_progress "$T/$w.prog" 150 30 "${load_pid[$w]}" ||
		fail "after the last kill: the $w workload made no progress"
done

fkload_stop fd cwd churn

# The backing directory must hold what the mount shows and the workloads expect.
[ "$(ls -A "$B" | sort | tr '\n' ' ')" = "churn cwd fd ns " ] ||
	fail "unexpected entries in the backing dir: $(ls -A "$B" | tr '\n' ' ')"
cmp "$B/fd/fd-file" "$M/fd/fd-file" || fail "fd-file differs between the backing dir and the mount"
[ "$(sha256sum <"$B/fd/fd-file")" = "$(sha256sum <"$M/fd/fd-file")" ] ||
	fail "fd-file checksums differ between the backing dir and the mount"
[ -z "$(ls -A "$B/cwd")" ] || fail "the cwd workload left entries behind: $(ls -A "$B/cwd" | tr '\n' ' ')"
diff -r "$B/churn" "$M/churn" || fail "the churn directory differs between the backing dir and the mount"
[ "$(sha256sum <"$B/ns/data" | cut -d' ' -f1)" = "$want" ] || fail "the namespace file changed in the backing dir"

# Stop the reader before unmounting: its namespace holds a copy of the mount.
ns_reader_stop

fk_clean_rounds "$ROUNDS"

fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "no STOPPED event"
assert_not_mounted "$M"
assert_all_gone
log "ok"
