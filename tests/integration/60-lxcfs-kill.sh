#!/bin/bash
# 60-lxcfs-kill: lxcfs under the keeper, SIGKILLed five times while its files
# are in use - the case fusekeeper exists for.
#
# Running throughout:
#   hold     one fd on MNT/proc/meminfo, re-read with pread(fd, 0) - the same fd
#            across every kill;
#   cwd      cwd in MNT/proc, reading ./meminfo ./uptime ./cpuinfo relatively;
#   ns       a mount namespace (a stand-in for a container) with MNT/proc/meminfo
#            bind-mounted over its own /proc/meminfo, read after every kill;
#   read-*   fkload read over meminfo, cpuinfo+stat, uptime+loadavg+swaps.
# After each kill and RECOVERED every reader must make progress and the
# namespace must read the same MemTotal through lxcfs; at the end every reader
# must report errors=0, and umount must leave no keeper, daemon or mount.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-daemons.sh"

need_prog "$FK"
need_prog "$FKLOAD"
fkd_require lxcfs lxcfs
fkd_require python3 python3
fkd_require unshare util-linux

ROUNDS=5
M=$T/mnt
mkdir "$M"

# A reader that keeps going until SIGTERM and counts what failed.
#   hold PATH REGEX           one fd, pread(fd, 64 KiB, 0) per op
#   cwd DIR NAME=REGEX...     chdir(DIR) once, then open("./NAME") + read per op
# Every read must match its REGEX.  Prints "NAME: ops=N errors=M", exits 0 iff
# M == 0.  SIGTERM is blocked and polled between ops, so it never interrupts a
# request on the mount.
cat >"$T/reader.py" <<'EOF'
import os, re, signal, sys, time
mode, progress = sys.argv[1], sys.argv[2]
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
ops = errors = 0
def report(msg):
    global errors
    errors += 1
    if errors <= 50:
        print("%s %s: %s" % (time.strftime("%T"), mode, msg), file=sys.stderr, flush=True)
def check(name, data, rx):
    if not data:
        report("%s: empty read" % name)
    elif not re.search(rx, data.decode(errors="replace"), re.M):
        report("%s: no match for %r in %r" % (name, rx, data[:120]))
if mode == "hold":
    path, rx = sys.argv[3], sys.argv[4]
    fd = os.open(path, os.O_RDONLY)
    def op():
        check(path, os.pread(fd, 65536, 0), rx)
else:
    os.chdir(sys.argv[3])
    files = [a.split("=", 1) for a in sys.argv[4:]]
    def op():
        for name, rx in files:
            with open("./" + name, "rb", buffering=0) as f:
                check(name, f.read(), rx)
while not signal.sigtimedwait({signal.SIGTERM, signal.SIGINT}, 0):
    try:
        op()
    except OSError as e:
        report(str(e))
    ops += 1
    with open(progress + ".tmp", "w") as p:
        p.write("%d\n" % ops)
    os.rename(progress + ".tmp", progress)
    time.sleep(0.005)   # pacing only: 2 cores are shared by everything here
if mode == "hold":
    os.close(fd)
print("%s: ops=%d errors=%d" % (mode, ops, errors))
sys.exit(1 if errors else 0)
EOF

fk_start "$M" --max-restarts=100 -o allow_other -- lxcfs -f --pidfile="$T/lxcfs.pid" {}
fk_wait READY || fail "the keeper never became READY"
grep -q '^MemTotal:' "$M/proc/meminfo" || fail "no MemTotal in $M/proc/meminfo"

declare -A pid
run_bg hold python3 "$T/reader.py" hold "$T/hold.prog" "$M/proc/meminfo" '^MemTotal: +[0-9]+ kB$'
pid[hold]=$BG_PID
run_bg cwd python3 "$T/reader.py" cwd "$T/cwd.prog" "$M/proc" \
	'meminfo=^MemAvailable: +[0-9]+ kB$' 'uptime=^[0-9]+\.[0-9]+ [0-9]+\.[0-9]+$' \
	'cpuinfo=^processor\s+: 0$'
pid[cwd]=$BG_PID
run_bg read-mem "$FKLOAD" read "$M/proc" --files=meminfo --expect=MemTotal: --threads=2 \
	--progress="$T/read-mem.prog"
pid[read-mem]=$BG_PID
run_bg read-cpu "$FKLOAD" read "$M/proc" --files=cpuinfo,stat --expect=cpu \
	--progress="$T/read-cpu.prog"
pid[read-cpu]=$BG_PID
run_bg read-misc "$FKLOAD" read "$M/proc" --files=uptime,loadavg,swaps \
	--progress="$T/read-misc.prog"
pid[read-misc]=$BG_PID
readers="hold cwd read-mem read-cpu read-misc"

# The container: lxcfs's meminfo over its own /proc/meminfo.  Each answer is the
# filesystem type now mounted on /proc/meminfo and the MemTotal line read there.
# shellcheck disable=SC2016 # the script runs in the namespace
ns_start lxc '
	mount --bind "$1/proc/meminfo" /proc/meminfo || exit 1
	echo ready
	while read -r req; do
		[ "$req" = quit ] && exit 0
		fs=$(awk '\''$5 == "/proc/meminfo" { for (i = 7; i <= NF; i++) if ($i == "-") f = $(i + 1) } END { print f }'\'' /proc/self/mountinfo)
		if line=$(grep "^MemTotal:" /proc/meminfo 2>&1); then
			echo "$req $fs $line"
		else
			echo "$req ERROR $fs ${line//$'\''\n'\''/ }"
		fi
	done' "$M"

want=$(ns_query lxc 0) || fail "the namespace reader did not answer"
case $want in
fuse*" MemTotal:"*" kB") log "namespace reads: $want" ;;
*) fail "namespace /proc/meminfo is not lxcfs's: '$want'" ;;
esac

for round in $(seq "$ROUNDS"); do
	for r in $readers; do
		wait_progress "$T/$r.prog" 20 30 "${pid[$r]}" ||
			fail "round $round: the $r reader made no progress"
	done
	fk_kill_daemon || fail "round $round: killing the daemon failed"
	fk_wait RECOVERED "" 30 || fail "round $round: no RECOVERED after killing lxcfs $FK_KILLED"
	log "round $round: lxcfs $FK_KILLED killed, $FK_LINE"
	got=$(ns_query lxc "$round") || fail "round $round: the namespace reader did not answer"
	[ "$got" = "$want" ] || fail "round $round: namespace read '$got', expected '$want'"
done

for r in $readers; do
	wait_progress "$T/$r.prog" 20 30 "${pid[$r]}" ||
		fail "after the last kill: the $r reader made no progress"
done

for r in $readers; do
	kill -TERM "${pid[$r]}"
done
for r in $readers; do
	wait_pid "${pid[$r]}" 60 || fail "the $r reader did not stop after SIGTERM"
	out=$(tail -n 1 "$T/$r.out")
	log "$r: $out (exit $WAIT_STATUS)"
	[ "$WAIT_STATUS" = 0 ] || fail "the $r reader failed (exit $WAIT_STATUS): $(head -n 20 "$T/$r.err")"
	[[ $out =~ ^(fkload\ read|hold|cwd):\ ops=[0-9]+\ errors=0$ ]] ||
		fail "the $r reader did not report errors=0: $out"
done

# Leave the namespace before unmounting: it holds a copy of the mount.
ns_stop lxc || fail "the namespace reader failed: $(cat "$T/ns-lxc/err")"

fk_clean_rounds "$ROUNDS"

fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "no STOPPED event"
assert_not_mounted "$M"
assert_all_gone
log "ok"
