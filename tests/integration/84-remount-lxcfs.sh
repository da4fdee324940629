#!/bin/bash
# 84-remount-lxcfs: lxcfs under --mode=remount, the case remount mode exists for,
# SIGKILLed three times while a reader runs in each of five mount namespaces:
#   priv   (private) lxcfs's proc/meminfo, proc/uptime, proc/cpuinfo bind-mounted
#          over its /proc/meminfo, /proc/uptime, /proc/cpuinfo;
#   shp    the same, over a /proc made shared first (a shared-propagation parent);
#   nest1  (private) proc/meminfo over its /proc/meminfo, and
#   nest2  made from inside nest1 (two levels deep): nest1's bind copied, plus
#          uptime and cpuinfo of its own;
#   ro     lxcfs's proc directory bind-mounted read-only, nosuid, nodev, noexec.
# Each reader opens, reads and closes the three files in a loop. After each
# recovery: REMOUNTED counts every mount and none failed; in every namespace the
# mountinfo lines of the lxcfs mounts are the same as before but for IDs and the
# device (root, mount point, flags, propagation type, source, options); a fresh
# open in each namespace reads lxcfs's content from the fresh instance; every
# reader goes on; no mount of the old device is left anywhere. The readers may
# see ESTALE (a read on a file opened on the old instance, see docs/design.md,
# "Remount mode") and nothing else.
# timeout: 300
. "$(dirname "$0")/../lib-remount.sh"
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-daemons.sh"

need_prog "$FK"
fkd_require lxcfs lxcfs
fkd_require python3 python3
need_cmd unshare nsenter stat
rm_need_remount

ROUNDS=3
M=$T/mnt
mkdir "$M" "$T/ro"

# A reader: open + read + close of each FILE in a loop until SIGTERM; each read must
# match its REGEX. Prints "NAME: ops=N estale=E errors=M", exits 0 iff M == 0. SIGTERM
# is blocked and polled between ops, so it never interrupts a request on the mount.
cat >"$T/reader.py" <<'EOF'
import errno, os, re, signal, sys, time
name, progress = sys.argv[1], sys.argv[2]
files = [a.split("=", 1) for a in sys.argv[3:]]
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
ops = estale = errors = 0
def report(msg):
    global errors
    errors += 1
    if errors <= 50:
        print("%s %s: %s" % (time.strftime("%T"), name, msg), file=sys.stderr, flush=True)
while not signal.sigtimedwait({signal.SIGTERM, signal.SIGINT}, 0):
    for path, rx in files:
        try:
            with open(path, "rb", buffering=0) as f:
                data = f.read()
            if not re.search(rx, data.decode(errors="replace"), re.M):
                report("%s: no match for %r in %r" % (path, rx, data[:120]))
        except OSError as e:
            if e.errno == errno.ESTALE:
                estale += 1
            else:
                report("%s: %s" % (path, e))
    ops += 1
    with open(progress + ".tmp", "w") as p:
        p.write("%d\n" % ops)
    os.rename(progress + ".tmp", progress)
    time.sleep(0.01)   # pacing only: 2 cores are shared by everything here
print("%s: ops=%d estale=%d errors=%d" % (name, ops, estale, errors))
sys.exit(1 if errors else 0)
EOF

fk_start "$M" --mode=remount --max-restarts=100 -o allow_other -- \
	lxcfs -f --pidfile="$T/lxcfs.pid" {}
fk_wait READY || fail "the keeper never became READY"
grep -q '^MemTotal:' "$M/proc/meminfo" || fail "no MemTotal in $M/proc/meminfo"

P=$M/proc
binds="mount --bind $P/meminfo /proc/meminfo && mount --bind $P/uptime /proc/uptime &&
	mount --bind $P/cpuinfo /proc/cpuinfo"
rmns_start priv private "$binds"
rmns_start shp private "mount --make-shared /proc && $binds"
rmns_start nest1 private "mount --bind $P/meminfo /proc/meminfo"
RMNS_IN=nest1 rmns_start nest2 private \
	"mount --bind $P/uptime /proc/uptime && mount --bind $P/cpuinfo /proc/cpuinfo"
rmns_start ro private "mount --bind $P $T/ro && mount -o remount,bind,ro,nosuid,nodev,noexec $T/ro"
NS="priv shp nest1 nest2 ro"

# Where each namespace reads lxcfs's files, and which of them are lxcfs's there.
declare -A dir files
for n in $NS; do
	dir[$n]=/proc
	files[$n]="meminfo uptime cpuinfo"
done
dir[ro]=$T/ro
files[nest1]=meminfo

dev=$(rm_mount_of "$FK_PID" "$M")
dev=${dev%% *}
declare -A want
for n in $NS; do
	pid=$(rmns_pid "$n")
	want[$n]=$(rm_lines "$pid" "$dev")
	log "namespace $n, lxcfs mounts:"
	printf '    %s\n' "${want[$n]}"
done
# What the namespaces were made to hold.
grep -q ' /proc/meminfo [^ ]* shared - fuse' <<<"${want[shp]}" ||
	fail "namespace shp's bind over a shared /proc is not shared: ${want[shp]}"
[ "$(grep -c ' /proc/' <<<"${want[nest2]}")" = 3 ] ||
	fail "namespace nest2 does not hold three binds: ${want[nest2]}"
grep -q "^/proc $T/ro ro,nosuid,nodev,noexec," <<<"${want[ro]}" ||
	fail "namespace ro's bind is not read-only, nosuid, nodev, noexec: ${want[ro]}"
memtotal=$(grep '^MemTotal:' "$M/proc/meminfo")

declare -A rpid
for n in $NS; do
	pid=$(rmns_pid "$n")
	run_bg "read-$n" nsenter -t "$pid" -m -- python3 "$T/reader.py" "$n" "$T/read-$n.prog" \
		"${dir[$n]}/meminfo=^MemTotal: +[0-9]+ kB$" \
		"${dir[$n]}/uptime=^[0-9]+\.[0-9]+ [0-9]+\.[0-9]+$" \
		"${dir[$n]}/cpuinfo=^processor\s+: 0$"
	rpid[$n]=$BG_PID
done

# A fresh open in namespace $1 of each file: the fresh instance's device, lxcfs's content.
check_reads() {
	local n=$1 round=$2 d=${dir[$1]} f
	for f in ${files[$n]}; do
		rmns_run "$n" 10 stat -L -c '%Hd:%Ld' "$d/$f" ||
			fail "round $round: namespace $n cannot stat $d/$f: $TRY_OUT"
		[ "$TRY_OUT" = "$dev" ] ||
			fail "round $round: namespace $n: $d/$f is on device $TRY_OUT, not lxcfs's $dev"
	done
	rmns_run "$n" 10 grep '^MemTotal:' "$d/meminfo" ||
		fail "round $round: namespace $n cannot read $d/meminfo: $TRY_OUT"
	[ "$TRY_OUT" = "$memtotal" ] || fail "round $round: namespace $n read '$TRY_OUT'"
	rmns_run "$n" 10 cat "$d/uptime" || fail "round $round: namespace $n: $d/uptime: $TRY_OUT"
	[[ $TRY_OUT =~ ^[0-9]+\.[0-9]+\ [0-9]+\.[0-9]+$ ]] ||
		fail "round $round: namespace $n: $d/uptime reads '$TRY_OUT'"
	rmns_run "$n" 10 grep -c '^processor' "$d/cpuinfo" ||
		fail "round $round: namespace $n: $d/cpuinfo: $TRY_OUT"
	[ "$TRY_OUT" -ge 1 ] || fail "round $round: namespace $n: no processor in $d/cpuinfo"
}

# Mounts: the host's, the copy of it in each of the five namespaces, three binds in priv,
# shp and nest2, nest1's one, and ro's one.
expect=$((1 + 5 + 3 + 3 + 1 + 3 + 1))
for round in $(seq "$ROUNDS"); do
	for n in $NS; do
		wait_progress "$T/read-$n.prog" 10 30 "${rpid[$n]}" ||
			fail "round $round: the reader in $n made no progress"
	done
	fk_kill_daemon || fail "round $round: killing the daemon failed"
	fk_wait RECOVERED "" 30 || fail "round $round: no RECOVERED"
	fk_wait REMOUNTED "" 5 || fail "round $round: no REMOUNTED"
	log "round $round: $FK_LINE"
	read -r _ _ replaced failed ms <<<"$FK_LINE"
	[ "$replaced" = "$expect" ] && [ "$failed" = 0 ] ||
		fail "round $round: expected $expect replaced and 0 failed: $FK_LINE"
	log "round $round: $ms ms from the death to the last mount replaced"
	[ "$(rm_count_dev "$dev")" = 0 ] || fail "round $round: mounts of the old device $dev are left"
	old=$dev
	dev=$(rm_mount_of "$FK_PID" "$M")
	dev=${dev%% *}
	[ -n "$dev" ] && [ "$dev" != "$old" ] || fail "round $round: the mountpoint is on '$dev'"
	for n in $NS; do
		pid=$(rmns_pid "$n")
		got=$(rm_lines "$pid" "$dev")
		if [ "$got" != "${want[$n]}" ]; then
			log "round $round: namespace $n, before:"
			printf '    %s\n' "${want[$n]}"
			log "after:"
			printf '    %s\n' "$got"
			fail "round $round: namespace $n's lxcfs mounts changed"
		fi
		check_reads "$n" "$round"
	done
done
for n in $NS; do
	wait_progress "$T/read-$n.prog" 10 30 "${rpid[$n]}" ||
		fail "after the last kill: the reader in $n made no progress"
done

for n in $NS; do kill -TERM "${rpid[$n]}"; done
for n in $NS; do
	wait_pid "${rpid[$n]}" 30 || fail "the reader in $n did not stop"
	out=$(tail -n 1 "$T/read-$n.out")
	log "$out (exit $WAIT_STATUS)"
	[ "$WAIT_STATUS" = 0 ] || fail "the reader in $n failed: $(head -n 20 "$T/read-$n.err")"
done
# shellcheck disable=SC2086
rmns_stop $NS
fk_clean_rounds "$ROUNDS"
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
