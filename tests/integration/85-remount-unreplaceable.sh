#!/bin/bash
# 85-remount-unreplaceable: two more reasons a mount cannot be replaced, each
# reported with its reason while the other mounts are replaced:
#   gone  a mount namespace whose only process exits after the keeper has read
#         its mounts and before it enters it (setns() on the pidfd: ESRCH). The
#         moment is set with the keeper's test hook: FUSEKEEPER_TEST_SWAP_GATE
#         names two FIFOs; the keeper's helper writes the pid it is about to
#         enter through to GATE.ask and waits for a line on GATE.go;
#   hid   a namespace with a bind of the mount at d/mp whose directory d was
#         then covered by a tmpfs: mp can no longer be reached by its path (the
#         keeper does not walk around it), while a second bind there can.
# After the kill: REMOUNTED counts 3 replaced (the mountpoint, hid's copy of it,
# hid's reachable bind) and 3 failed (gone's two mounts, the hidden bind); the log
# gives both reasons; the hidden bind, uncovered, answers ESTALE at once; the rest
# read the fresh instance; the one stale mount left is the hidden one.
# timeout: 120
. "$(dirname "$0")/../lib-remount.sh"
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd unshare nsenter mkfifo
rm_need_remount

M=$T/mnt
B=$T/back
mkdir -p "$M" "$B/sub" "$T/g" "$T/h/reach" "$T/h/d/mp"
echo one >"$B/sub/f"
mkfifo "$T/gate.ask" "$T/gate.go"
# Held open for reading and writing by this shell: the keeper's non-blocking opens
# find both ends, and lines written early wait in the FIFO.
exec {ask}<>"$T/gate.ask" {go}<>"$T/gate.go"

FUSEKEEPER_TEST_SWAP_GATE=$T/gate fk_start "$M" --mode=remount -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"
file_is "$M/sub/f" "one
" || fail "first read: '$FILE_GOT'"

rmns_start gone private "mount --bind $M/sub $T/g"
rmns_start hid private "mount --bind $M/sub $T/h/reach && mount --bind $M/sub $T/h/d/mp &&
	mount -t tmpfs none $T/h/d"
rmns_run hid 10 test -e "$T/h/d/mp/f" && fail "the hidden bind is still reachable"
dev=$(rm_mount_of "$FK_PID" "$M")
dev=${dev%% *}

echo two >"$B/sub/f"
fk_kill_daemon || fail "killing the daemon failed"
# The helpers of the namespaces with mounts to replace ask in turn (any other is let go).
seen=
for i in $(seq 20); do
	read -r -t 30 -u "$ask" pid || fail "the keeper's helper did not ask to enter namespace $i"
	log "the keeper's helper is about to enter the namespace of pid $pid"
	if [ "$pid" = "$RMNS_PID_gone" ]; then
		kill -KILL "$pid"
		wait_pid "$pid" 10 || fail "namespace gone's process did not exit"
		log "namespace gone ended"
		seen="$seen gone"
	elif [ "$pid" = "$RMNS_PID_hid" ]; then
		seen="$seen hid"
	fi
	echo go >&"$go"
	[ "$seen" = " gone hid" ] || [ "$seen" = " hid gone" ] && break
done
# Closed: a helper still to come finds no reader and goes on at once.
exec {ask}>&- {go}>&-
fk_wait RECOVERED "" 30 || fail "no RECOVERED"
fk_wait REMOUNTED "" 5 || fail "no REMOUNTED"
log "$FK_LINE"
grep "Cannot replace" "$FK_LOG"
read -r _ _ replaced failed _ <<<"$FK_LINE"
[ "$replaced" = 3 ] && [ "$failed" = 3 ] || fail "expected 3 replaced and 3 failed: $FK_LINE"
[ "$(grep -c "Cannot replace .*$T/g .*went away mid-swap" "$FK_LOG")" = 1 ] ||
	fail "the log does not say that namespace gone's bind went away mid-swap"
[ "$(grep -c "Cannot replace .*$M .*went away mid-swap" "$FK_LOG")" = 1 ] ||
	fail "the log does not say that namespace gone's copy of the mount went away mid-swap"
grep -q "Cannot replace the mount at $T/h/d/mp .*no longer reachable" "$FK_LOG" ||
	fail "the log does not say that the hidden bind is no longer reachable"

file_is "$M/sub/f" "two
" || fail "the mountpoint reads '$FILE_GOT'"
rmns_run hid 10 cat "$T/h/reach/f" || fail "hid's reachable bind: $TRY_OUT"
[ "$TRY_OUT" = two ] || fail "hid's reachable bind reads '$TRY_OUT'"
rmns_run hid 10 cat "$M/sub/f" || fail "hid's copy of the mount: $TRY_OUT"
[ "$TRY_OUT" = two ] || fail "hid's copy of the mount reads '$TRY_OUT'"
[ "$(rm_count_dev "$dev")" = 1 ] || fail "expected the hidden bind alone left on $dev"
rmns_run hid 10 umount "$T/h/d" || fail "cannot uncover the hidden bind: $TRY_OUT"
rc=0
rmns_run hid 10 cat "$T/h/d/mp/f" || rc=$?
[ "$rc" != 124 ] || fail "the hidden bind hangs"
case $TRY_OUT in
*"Stale file handle"*) log "the hidden bind: $TRY_OUT" ;;
*) fail "the hidden bind: expected ESTALE, got exit $rc: $TRY_OUT" ;;
esac

rmns_stop hid
[ "$(rm_count_dev "$dev")" = 0 ] || fail "mounts of the old device $dev are left"
fk_umount_exit 0
assert_all_gone
log "ok"
