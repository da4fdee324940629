#!/bin/bash
# 94-reinit-lxcfs: lxcfs handed to a new lxcfs with FUSE_REINIT_BEGIN (kernel/patches), as a
# container host would use it: its proc files held open and bind-mounted over a file
# elsewhere. Checked in the 6.1 guest's patched fuse.ko; elsewhere skipped after checking
# that the probe answers ENOTTY.
#
# lxcfs numbers inodes by node ID (libfuse's high-level API), opens its proc files with
# direct I/O and builds a handle's content at its first read, at offset 0: a read at an
# offset above 0 through a handle that never read at 0 returns nothing, as if at the end.
#  1. a held proc/meminfo, read at offset 9 through its old fd after the take-over, gives
#     the bytes there (MemTotal's value), not an empty read: the reopened handle is primed
#     with a read at 0;
#  2. proc/uptime, bind-mounted over a file elsewhere, reads through the bind mount;
#  3. the same after a second take-over;
#  4. lxcfs under fusekeeper --mode=reinit --write-through, SIGKILLed five times in
#     60-lxcfs-kill's scenario
#     (lxcfs_kill_rounds, tests/lib-lxcfs.sh): a held fd on proc/meminfo, a working
#     directory in proc, a namespace with meminfo bind-mounted over its /proc/meminfo and
#     sys/devices/system/cpu (three levels down) on a directory, and fkload readers running
#     into every kill: every read right, errors=0;
#  5. the same with lxcfs's own command line (`lxcfs MOUNTPOINT`, no {}): the keeper takes
#     over the mount lxcfs makes and gives it a clone of the mount's /dev/fuse as its fd
#     (docs/design.md, "Taking over the daemon's mount").
# timeout: 600
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-reinit.sh"
. "$(dirname "$0")/../lib-daemons.sh"
. "$(dirname "$0")/../lib-lxcfs.sh"
reinit_need
need_prog "$FK"
need_prog "$FKLOAD"
fkd_require lxcfs lxcfs
fkd_require python3 python3
fkd_require unshare util-linux

# shellcheck disable=SC2034 # read by serve (lib-reinit.sh)
SERVE_CMD=(lxcfs -f --pidfile="$T/lxcfs.pid" {})
B=$T/unused # serve names a backing store, which lxcfs does not take

# takeover GEN: kill lxcfs, BEGIN, a new lxcfs on a new clone, WAIT accepted.
takeover() {
	expect kill "^killed $DAEMON\$"
	expect begin "^ok gen $1\$"
	expect start '^started [0-9]+$'
	DAEMON=${ANSWER#started }
	expect "wait 60" "^ok gen $1\$"
}

# check GEN: 1. and 2.
check() {
	local got total
	total=$(sed -n 's/^MemTotal: *\([0-9]*\) kB$/\1/p' "$M/proc/meminfo") ||
		fail "gen $1: reading proc/meminfo by path failed"
	[ -n "$total" ] || fail "gen $1: proc/meminfo by path has no MemTotal: $(head -c 200 "$M/proc/meminfo")"
	got=$(holder m readat 9)
	[[ $got =~ ^read\ +$total\ kB\\n ]] ||
		fail "gen $1: proc/meminfo at offset 9 through its old fd: want ' $total kB', got '$got'"
	got=$(cat "$T/uptime") || fail "gen $1: reading proc/uptime through its bind mount failed"
	[[ $got =~ ^[0-9]+\.[0-9]+\ [0-9]+\.[0-9]+$ ]] ||
		fail "gen $1: proc/uptime through its bind mount reads '$got'"
	alive "$DAEMON" || fail "gen $1: the new lxcfs died: $(tail -5 "$M.err")"
}

serve l
for _ in $(seq 100); do
	[ -r "$M/proc/meminfo" ] && break
	sleep 0.1
done
[ -r "$M/proc/meminfo" ] || fail "lxcfs does not serve proc/meminfo: $(tail -5 "$T/l.err")"
touch "$T/uptime"
mount --bind "$M/proc/uptime" "$T/uptime"
track_mount "$T/uptime"
holder_start m "$M/proc/meminfo" ro
# A handle that read at 0 serves later offsets from what it built then.
[[ $(holder m read) == "read MemTotal:"* ]] || fail "proc/meminfo does not start with MemTotal"
check 1

takeover 2
check 2
takeover 3
check 3

holder_stop m
umount "$T/uptime"
quit l
assert_not_mounted "$T/l"

# --- 4. LXCFS stores nothing: --write-through, as an operator would give it, so that a close
# whose FLUSH a killed lxcfs left unanswered is sent again (without it, that close gets EIO:
# docs/kernel-api.md, "Requests in flight").
lxcfs_kill_rounds 5 --mode=reinit --write-through
[ "$LXCFS_MODE" = reinit ] || fail "the keeper mounted in '$LXCFS_MODE' mode, want reinit"

# --- 5. The same, lxcfs mounting itself.
LXCFS_OWN_CMDLINE=1 lxcfs_kill_rounds 5 --mode=reinit --write-through
[ "$LXCFS_MODE" = reinit ] || fail "the keeper mounted in '$LXCFS_MODE' mode, want reinit"
grep -q "as daemon [0-9]* asked: source lxcfs, type fuse.lxcfs" "$FK_LOG" ||
	fail "the keeper did not take over lxcfs's own mount: $(grep Mounted "$FK_LOG")"
log "ok"
