# shellcheck shell=bash
# tests/lib-giveup.sh - the --request-wait scenario of 33-request-wait (proxy mode) and
# 99-reinit-giveup (reinit mode). Source after tests/lib.sh.
#
#   request_wait_case OPTION...
#       Mounts $M (made here) with the keeper's OPTION... and --start-timeout=1
#       --request-wait=2 --max-restarts=2 over testfs (backing $B, made here; its options
#       also $RW_TESTFS_EXTRA) and holds $M/f open (holder f). The daemon dies holding a
#       statfs (crash hook); the next one computes for $RW_SPIN_MS (default 15000) before it
#       reads FUSE_INIT (it shows CPU time: the keeper waits for it). Past --request-wait the
#       keeper logs that requests fail with EIO and reports DOWN; the held statfs and a cat
#       made after the crash fail with EIO after about 2 s, not the whole start; then stat,
#       stat -f, ls and a read through the held fd fail with EIO at once. Once the slow daemon
#       takes over (its start not counted as failed), the same fd reads the file whole again,
#       and so do a new read and stat -f. Unmounts $M at the end.
#
#   served_again WHEN HOLDER WANT
#       After a daemon took over: the fd of HOLDER reads $M/f whole (its sha256 is WANT), and
#       so do a new read and stat -f of $M; the test fails otherwise, saying WHEN.

RW_TESTFS_EXTRA=()
RW_SPIN_MS=15000

request_wait_case() {
	local want job
	M=$T/mnt
	B=$T/back
	mkdir "$M" "$B"
	head -c 300000 /dev/urandom >"$B/f"
	want=$(sha256sum <"$B/f" | cut -d' ' -f1)

	fk_start "$M" "$@" --start-timeout=1 --request-wait=2 --max-restarts=2 -- \
		"$TESTFS" --backing="$B" --slow-start-if="$T/slow" --crash-file="$T/crash" \
		"${RW_TESTFS_EXTRA[@]}" {}
	fk_wait READY || fail "the keeper never became READY: $(tail -5 "$FK_LOG")"
	holder_start f "$M/f" ro
	[ "$(holder f sum)" = "sum $want" ] || fail "the holder read other data before the crash"
	# Its reads must reach the daemon, not the page cache.
	drop_cache "$M/f" || fail "cannot drop the cached pages of $M/f"

	echo "spin $RW_SPIN_MS" >"$T/slow.tmp" || fail "cannot write $T/slow.tmp"
	mv "$T/slow.tmp" "$T/slow" || fail "cannot write $T/slow"
	crash_arm "before:statfs"
	bg_timed statfs stat -f -c '%b blocks of %s bytes' "$M"
	fk_wait EXIT "$DAEMON_BEFORE" 30 || fail "the daemon did not die at the statfs"
	bg_timed cat sha256sum "$M/f"

	fk_wait DOWN "" 30 || fail "no DOWN event: requests were not failed after --request-wait"
	log "$FK_LINE"
	grep -q "requests fail with EIO at once until one does" "$FK_LOG" ||
		fail "the keeper does not log that requests fail now: $(grep -i 'request' "$FK_LOG" | tail -3)"
	for job in statfs cat; do
		bg_result "$job" 30 || fail "the $job made before DOWN hung"
		[ "$BG_RC" != 0 ] || fail "the $job succeeded while no daemon served: $BG_OUT"
		[[ $BG_OUT == *"Input/output error"* ]] || fail "the $job did not fail with EIO: $BG_OUT"
		[ "$BG_MS" -lt 7000 ] || fail "the $job took $BG_MS ms: more than --request-wait=2 allows"
		[ "$job" != statfs ] || [ "$BG_MS" -ge 1000 ] ||
			fail "the held statfs failed after $BG_MS ms: it did not wait"
	done

	# Now at once: a request that waited for the daemon would take its whole start.
	eio_at_once "after DOWN" 3000 "stat $M/f" "stat -f $M" "ls $M"
	holder_eio "after DOWN" 3000 f read

	fk_wait RECOVERED "" 60 || fail "the slow daemon never took over"
	log "$FK_LINE"
	[ "$(fk_count FAILED)" = 0 ] || fail "the slow start counted as failed: $(grep FAILED "$FK_EVENTS")"
	rm -f "$T/slow"
	served_again "after the recovery" f "$want"
	holder_stop f
	fk_umount_exit 0
	assert_not_mounted "$M"
}

served_again() {
	[ "$(holder "$2" sum)" = "sum $3" ] || fail "$1: the fd opened before the crash reads other data"
	try_cmd 10 stat -f "$M" || fail "$1: stat -f failed: $TRY_OUT"
	try_cmd 10 sha256sum "$M/f" || fail "$1: reading $M/f failed: $TRY_OUT"
	[ "${TRY_OUT%% *}" = "$3" ] || fail "$1: $M/f reads otherwise: $TRY_OUT"
}
