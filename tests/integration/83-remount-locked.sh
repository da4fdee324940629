#!/bin/bash
# 83-remount-locked: a mount that cannot be replaced is reported, and the rest
# are replaced. A user+mount namespace (unshare -Ur -m) holds a copy of the
# mount made when it was created - locked (MNT_LOCKED): a less privileged
# namespace may not reveal what is under it - and a bind of a sub-directory
# made inside it afterwards, which is not locked. After a kill: REMOUNTED
# counts the mountpoint and the bind as replaced and the locked copy as failed;
# the log names MNT_LOCKED; the bind reads the fresh instance; the locked copy
# answers at once with ESTALE (not a hang, not ENOTCONN).
# timeout: 120
. "$(dirname "$0")/../lib-remount.sh"
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd unshare nsenter
rm_need_remount

M=$T/mnt
B=$T/back
mkdir "$M" "$B" "$B/sub" "$T/u"
echo locked >"$B/sub/f"

fk_start "$M" --mode=remount -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"
file_is "$M/sub/f" "locked
" || fail "first read: '$FILE_GOT'"

UNSHARE_EXTRA="-U -r" rmns_start u private "mount --bind $M/sub $T/u" ||
	fail "cannot make the user namespace"
UNSHARE_EXTRA="-U" rmns_run u 10 cat "$T/u/f" || skip "cannot read the mount from a user namespace: $TRY_OUT"

fk_kill_daemon || fail "killing the daemon failed"
fk_wait RECOVERED "" 30 || fail "no RECOVERED"
fk_wait REMOUNTED "" 5 || fail "no REMOUNTED"
log "$FK_LINE"
read -r _ _ replaced failed _ <<<"$FK_LINE"
[ "$replaced" = 2 ] && [ "$failed" = 1 ] || fail "expected 2 replaced and 1 failed: $FK_LINE"
grep -q "MNT_LOCKED" "$FK_LOG" || fail "the log does not say the mount is locked"
grep "Cannot replace" "$FK_LOG" | head -n 3

UNSHARE_EXTRA="-U" rmns_run u 10 cat "$T/u/f" || fail "the bind in the user namespace: $TRY_OUT"
[ "$TRY_OUT" = locked ] || fail "the bind in the user namespace read '$TRY_OUT'"
rc=0
UNSHARE_EXTRA="-U" rmns_run u 10 cat "$M/sub/f" || rc=$?
[ "$rc" != 124 ] || fail "the locked copy hangs"
case $TRY_OUT in
*"Stale file handle"*) log "the locked copy: $TRY_OUT" ;;
*) fail "the locked copy: expected ESTALE, got exit $rc: $TRY_OUT" ;;
esac
file_is "$M/sub/f" "locked
" || fail "the mountpoint reads '$FILE_GOT'"

rmns_stop u
fk_umount_exit 0
assert_all_gone
log "ok"
