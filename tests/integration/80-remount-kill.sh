#!/bin/bash
# 80-remount-kill: testfs under --mode=remount, SIGKILLed three times. The mount is
# bind-mounted into two other mount namespaces: A (private) holds a read-only,
# nosuid, noexec bind of a sub-directory; B (a slave of the host's mount, which
# is made shared) holds its copy of the mount and a nodev, noatime bind of the
# sub-directory; C (private) a bind of the sub-directory made shared, in a peer
# group of its own. After each recovery: REMOUNTED counts every mount replaced
# and none failed; a fresh open reads the right content at the mountpoint and in
# the namespaces; every mount keeps its flags and propagation type (from
# mountinfo, before and after), C's bind stays out of the mountpoint's peer
# group; no mount of the old device is left anywhere.
# timeout: 180
. "$(dirname "$0")/../lib-remount.sh"
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd unshare nsenter
rm_need_remount

ROUNDS=3
M=$T/mnt
B=$T/back
mkdir "$M" "$B" "$B/sub" "$T/a" "$T/b" "$T/c"
echo "content 0" >"$B/sub/file"

fk_start "$M" --mode=remount --max-restarts=100 -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"
file_is "$M/sub/file" "content 0
" || fail "first read: '$FILE_GOT'"
mount --make-shared "$M" || fail "cannot make $M shared"

rmns_start a private "mount --bind $M/sub $T/a && mount -o remount,bind,ro,nosuid,noexec $T/a"
rmns_start b slave "mount --bind $M/sub $T/b && mount -o remount,bind,nodev,noatime $T/b"
# A shared mount of a peer group of its own (not the mountpoint's): its replacement must
# not join the mountpoint's group (a clone of a shared mount is a peer of it).
rmns_start c private "mount --bind $M/sub $T/c && mount --make-shared $T/c"
group_of() { # the peer group of the top mount at $2 in the namespace of pid $1
	awk -v mp="$2" '$5 == mp { g = "none"; for (i = 7; $i != "-"; i++) if ($i ~ /^shared:/) g = $i } END { print g }' "/proc/$1/mountinfo"
}

# What each mount is: MAJ:MIN OPTIONS PROPAGATION.
declare -A want
snapshot() {
	local k
	declare -gA now
	now[host]=$(rm_mount_of "$FK_PID" "$M")
	now[a]=$(rm_mount_of "$RMNS_PID_a" "$T/a")
	now[b-mnt]=$(rm_mount_of "$RMNS_PID_b" "$M")
	now[b]=$(rm_mount_of "$RMNS_PID_b" "$T/b")
	for k in host a b-mnt b; do
		[ -n "${now[$k]}" ] || fail "no mount $k: $(cat /proc/"$RMNS_PID_b"/mountinfo)"
	done
}
snapshot
for k in "${!now[@]}"; do want[$k]=${now[$k]#* }; done
log "mounts: host ${now[host]}; a ${now[a]}; b: ${now[b-mnt]}, ${now[b]}"
for o in ro nosuid noexec; do
	[[ ,${want[a]%% *}, == *,$o,* ]] || fail "namespace a's bind is not $o: ${want[a]}"
done
[[ ,${want[b]%% *}, == *,noatime,* ]] || fail "namespace b's bind is not noatime: ${want[b]}"
[ "${want[b-mnt]##* }" = master ] || fail "namespace b's copy is not a slave: ${want[b-mnt]}"
dev=${now[host]%% *}

for round in $(seq "$ROUNDS"); do
	echo "content $round" >"$B/sub/file"
	fk_kill_daemon || fail "round $round: killing the daemon failed"
	fk_wait RECOVERED "" 30 || fail "round $round: no RECOVERED"
	fk_wait REMOUNTED "" 5 || fail "round $round: no REMOUNTED"
	log "round $round: $FK_LINE"
	read -r _ _ replaced failed ms <<<"$FK_LINE"
	[ "$replaced" = 7 ] && [ "$failed" = 0 ] ||
		fail "round $round: expected 7 replaced (the mount and its copy in a, b and c, three binds) and 0 failed: $FK_LINE"
	log "round $round: $ms ms from the death to the last mount replaced"
	[ "$(rm_count_dev "$dev")" = 0 ] || fail "round $round: mounts of the old device $dev are left"
	snapshot
	for k in host a b-mnt b; do
		[ "${now[$k]%% *}" != "$dev" ] || fail "round $round: $k still has device $dev"
		got=${now[$k]#* }
		[ "$got" = "${want[$k]}" ] || {
			fail "round $round: mount $k changed from '${want[$k]}' to '${now[$k]#* }'"
		}
	done
	dev=${now[host]%% *}
	file_is "$M/sub/file" "content $round
" || fail "round $round: reading at the mountpoint gave '$FILE_GOT'"
	rmns_run a 10 cat "$T/a/file" || fail "round $round: namespace a cannot read: $TRY_OUT"
	[ "$TRY_OUT" = "content $round" ] || fail "round $round: namespace a read '$TRY_OUT'"
	rmns_run b 10 cat "$T/b/file" || fail "round $round: namespace b cannot read: $TRY_OUT"
	[ "$TRY_OUT" = "content $round" ] || fail "round $round: namespace b read '$TRY_OUT'"
	rmns_run b 10 cat "$M/sub/file" || fail "round $round: namespace b's copy: $TRY_OUT"
	rmns_run a 10 touch "$T/a/new" && fail "round $round: namespace a's bind is writable"
	gc=$(group_of "$RMNS_PID_c" "$T/c")
	gm=$(group_of "$FK_PID" "$M")
	[ "$gc" != none ] && [ "$gc" != "$gm" ] ||
		fail "round $round: namespace c's bind is in group '$gc', the mountpoint in '$gm'"
	rmns_run c 10 cat "$T/c/file" || fail "round $round: namespace c cannot read: $TRY_OUT"
done

rmns_stop a b c
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
