#!/bin/bash
# 86-remount-stacked: mounts stacked on a stale mount, or inside it, end up on the
# fresh one as they were.
#   stk  a bind of the mount's sub-directory at s, with two tmpfs mounted on top of
#        it at the same place (the lower nosuid, the upper read-only and shared
#        with a peer at peer);
#   in   a bind of the sub-directory at i, a bind of sub/in (the same filesystem)
#        mounted inside it at i/in, and a tmpfs inside it at i/t. That one is
#        reached without asking the dead daemon only if its path is still valid in
#        the dentry cache (testfs: for 1 s): it is either carried over or reported
#        ("went with it"), never lost silently.
# After a kill: REMOUNTED counts every mount of the instance replaced and none
# failed; in each namespace the mountinfo lines under the test's directory are
# the same but for IDs and the instance's device; at s the stack is in its order
# (the upper tmpfs, then the lower, then the fresh instance, one umount at a
# time), the upper still a peer of peer; i/in reads the fresh instance; no mount
# of the old instance is left.
# timeout: 120
. "$(dirname "$0")/../lib-remount.sh"
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd unshare nsenter stat
rm_need_remount

M=$T/mnt
B=$T/back
mkdir -p "$M" "$B/sub/in" "$B/sub/t" "$T/s" "$T/i" "$T/peer"
echo one >"$B/sub/f"
echo inner >"$B/sub/in/g"

fk_start "$M" --mode=remount -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"
file_is "$M/sub/f" "one
" || fail "first read: '$FILE_GOT'"

rmns_start stk private "mount --bind $M/sub $T/s &&
	mount -t tmpfs -o nosuid lower $T/s && echo lower >$T/s/mark &&
	mount -t tmpfs upper $T/s && echo upper >$T/s/mark && mount --make-shared $T/s &&
	mount --bind $T/s $T/peer && mount -o remount,bind,ro $T/s"
rmns_start in private "mount --bind $M/sub $T/i && mount --bind $M/sub/in $T/i/in &&
	mount -t tmpfs -o noexec innertmp $T/i/t && echo inner-tmpfs >$T/i/t/mark"

declare -A want
for n in stk in; do
	pid=$(rmns_pid "$n")
	want[$n]=$(rm_lines_under "$pid" "$T")
	log "namespace $n:"
	printf '    %s\n' "${want[$n]}"
done
group() { # the peer group of the upper tmpfs at $2 in the namespace of pid $1
	awk -v mp="$2" '$5 == mp && / - tmpfs upper / {
		for (i = 7; $i != "-"; i++) if ($i ~ /^shared:/) print $i
	}' "/proc/$1/mountinfo"
}
peer_group=$(group "$RMNS_PID_stk" "$T/peer")
[ -n "$peer_group" ] || fail "the peer of the upper tmpfs is not shared"
dev=$(rm_mount_of "$FK_PID" "$M")
dev=${dev%% *}

echo two >"$B/sub/f"
echo inner2 >"$B/sub/in/g"
rm_kill_swap
# The mountpoint, a copy of it in each namespace, stk's bind, in's two binds.
[ "$RM_REPLACED" = 6 ] && [ "$RM_FAILED" = 0 ] || fail "expected 6 replaced and 0 failed: $FK_LINE"
[ "$(rm_count_dev "$dev")" = 0 ] || fail "mounts of the old device $dev are left"
dev=$(rm_mount_of "$FK_PID" "$M")
dev=${dev%% *}

if grep -q "Replaced the mount at $T/i .*but mount [0-9]* inside it (at $T/i/t) went with it: its path is not in the dentry cache" "$FK_LOG"; then
	log "the tmpfs inside the bind was not in the dentry cache any more: reported"
	want[in]=$(grep -v ' - tmpfs innertmp ' <<<"${want[in]}")
else
	rmns_run in 10 cat "$T/i/t/mark" || fail "the tmpfs inside the bind: $TRY_OUT"
	[ "$TRY_OUT" = inner-tmpfs ] || fail "the tmpfs inside the bind reads '$TRY_OUT'"
	log "the tmpfs inside the bind was carried over"
fi
for n in stk in; do
	pid=$(rmns_pid "$n")
	got=$(rm_lines_under "$pid" "$T")
	if [ "$got" != "${want[$n]}" ]; then
		log "namespace $n now:"
		printf '    %s\n' "$got"
		fail "namespace $n's mounts changed"
	fi
done
[ "$(group "$RMNS_PID_stk" "$T/s")" = "$peer_group" ] ||
	fail "the upper tmpfs is no longer in its peer group $peer_group: $(group "$RMNS_PID_stk" "$T/s")"

rmns_run in 10 cat "$T/i/in/g" || fail "the bind inside the bind: $TRY_OUT"
[ "$TRY_OUT" = inner2 ] || fail "the bind inside the bind reads '$TRY_OUT'"
rmns_run in 10 stat -c '%Hd:%Ld' "$T/i/in" || fail "stat of the bind inside the bind: $TRY_OUT"
[ "$TRY_OUT" = "$dev" ] || fail "the bind inside the bind is on $TRY_OUT, not $dev"
rmns_run in 10 cat "$T/i/f" || fail "in's bind: $TRY_OUT"
[ "$TRY_OUT" = two ] || fail "in's bind reads '$TRY_OUT'"

rmns_run stk 10 cat "$T/s/mark" || fail "the top of the stack: $TRY_OUT"
[ "$TRY_OUT" = upper ] || fail "the top of the stack reads '$TRY_OUT'"
rmns_run stk 10 touch "$T/s/new" && fail "the upper tmpfs is no longer read-only"
rmns_run stk 10 umount "$T/s" || fail "umount of the upper tmpfs: $TRY_OUT"
rmns_run stk 10 cat "$T/s/mark" || fail "the middle of the stack: $TRY_OUT"
[ "$TRY_OUT" = lower ] || fail "the middle of the stack reads '$TRY_OUT'"
rmns_run stk 10 umount "$T/s" || fail "umount of the lower tmpfs: $TRY_OUT"
rmns_run stk 10 cat "$T/s/f" || fail "the bottom of the stack: $TRY_OUT"
[ "$TRY_OUT" = two ] || fail "the bottom of the stack reads '$TRY_OUT'"

rmns_stop stk in
fk_umount_exit 0
assert_all_gone
log "ok"
