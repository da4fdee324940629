#!/bin/bash
# 87-remount-shared-parent: the mountpoint's parent is shared, as systemd makes /,
# and namespaces made with its propagation kept share it: a swap in one namespace
# propagates to the others (the mount beneath and the unmount alike).
#   peer  made with --propagation unchanged: its mounts are peers of the host's; a
#         bind of the sub-directory made there (at b) propagates to the host and
#         to slv; then made noexec there only (per-mount flags do not propagate);
#   slv   made with --propagation slave: receives what the host mounts; a read-only
#         bind of its own at r (a slave too, as a bind of a slave), which propagates
#         nowhere.
# After a kill: every mount of the old instance in every namespace is replaced (by
# the keeper, or by propagation from a swap elsewhere, which the keeper counts as
# replaced and gives the flags of the mount it replaced), none failed; the
# mountinfo lines under the shared directory are the same in each namespace but
# for IDs, devices and peer group numbers; each namespace reads the fresh
# instance; no mount of the old instance is left.
# timeout: 120
. "$(dirname "$0")/../lib-remount.sh"
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd unshare nsenter
rm_need_remount

S=$T/top
M=$S/mnt
B=$T/back
mkdir -p "$S" "$B/sub"
echo one >"$B/sub/f"
mount --bind "$S" "$S" || fail "cannot bind $S"
track_mount "$S"
mount --make-shared "$S" || fail "cannot make $S shared"
mkdir -p "$M" "$S/b" "$S/r"

fk_start "$M" --mode=remount -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"
file_is "$M/sub/f" "one
" || fail "first read: '$FILE_GOT'"

rmns_start peer unchanged "mount --bind $M/sub $S/b && mount -o remount,bind,noexec $S/b"
rmns_start slv slave "mount --bind $M/sub $S/r && mount -o remount,bind,ro $S/r"

declare -A want
for n in host peer slv; do
	if [ "$n" = host ]; then pid=$$; else pid=$(rmns_pid "$n"); fi
	want[$n]=$(rm_lines_under "$pid" "$S")
	log "namespace $n:"
	printf '    %s\n' "${want[$n]}"
done
grep -q "^/sub $S/b rw,nosuid,nodev,noexec,relatime shared " <<<"${want[peer]}" ||
	fail "peer's bind is not a noexec peer: ${want[peer]}"
grep -q "^/sub $S/b rw,nosuid,nodev,relatime shared " <<<"${want[host]}" ||
	fail "peer's bind did not propagate to the host: ${want[host]}"
grep -q "^/sub $S/r ro,nosuid,nodev,relatime master - " <<<"${want[slv]}" ||
	fail "slv's bind is not a read-only slave (a bind of a slave): ${want[slv]}"
grep -q "^/ $M rw,nosuid,nodev,relatime master " <<<"${want[slv]}" ||
	fail "slv's copy of the mount is not a slave: ${want[slv]}"
dev=$(rm_mount_of "$FK_PID" "$M")
dev=${dev%% *}

echo two >"$B/sub/f"
rm_kill_swap
# The mount and b in each namespace, and r.
[ "$RM_REPLACED" = 7 ] && [ "$RM_FAILED" = 0 ] || fail "expected 7 replaced and 0 failed: $FK_LINE"
[ "$(rm_count_dev "$dev")" = 0 ] || fail "mounts of the old device $dev are left"

for n in host peer slv; do
	if [ "$n" = host ]; then pid=$$; else pid=$(rmns_pid "$n"); fi
	got=$(rm_lines_under "$pid" "$S")
	if [ "$got" != "${want[$n]}" ]; then
		log "namespace $n now:"
		printf '    %s\n' "$got"
		fail "namespace $n's mounts changed"
	fi
done
file_is "$M/sub/f" "two
" || fail "the mountpoint reads '$FILE_GOT'"
file_is "$S/b/f" "two
" || fail "the host's copy of peer's bind reads '$FILE_GOT'"
for n in peer slv; do
	rmns_run "$n" 10 cat "$M/sub/f" || fail "namespace $n's copy of the mount: $TRY_OUT"
	[ "$TRY_OUT" = two ] || fail "namespace $n's copy of the mount reads '$TRY_OUT'"
done
rmns_run peer 10 cat "$S/b/f" || fail "peer's bind: $TRY_OUT"
[ "$TRY_OUT" = two ] || fail "peer's bind reads '$TRY_OUT'"
rmns_run slv 10 cat "$S/r/f" || fail "slv's bind: $TRY_OUT"
[ "$TRY_OUT" = two ] || fail "slv's bind reads '$TRY_OUT'"

rmns_stop peer slv
# The host's copy of peer's bind holds the instance too.
umount "$S/b" || fail "cannot unmount the host's copy of peer's bind"
fk_umount_exit 0
umount "$S" || fail "cannot unmount $S"
assert_all_gone
log "ok"
