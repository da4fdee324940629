# shellcheck shell=bash
# tests/lib-lxcfs.sh - lxcfs under the keeper, SIGKILLed while its files are in use: the
# scenario of 60-lxcfs-kill (proxy mode, the default) and 94-reinit-lxcfs (reinit mode).
# Source after tests/lib.sh and tests/lib-daemons.sh.
#
#   lxcfs_kill_rounds ROUNDS OPTION...
#       Mounts $T/mnt-kill with the keeper's OPTION... over lxcfs and SIGKILLs lxcfs ROUNDS
#       times while, throughout:
#         hold     one fd on proc/meminfo, re-read with pread(fd, 0): the same fd across
#                  every kill;
#         cwd      a working directory in proc, reading ./meminfo ./uptime ./cpuinfo;
#         ns       a mount namespace (a stand-in for a container) with proc/meminfo
#                  bind-mounted over its own /proc/meminfo, and the directory
#                  sys/devices/system/cpu, three levels down, bind-mounted on a directory
#                  of its own; both read after every kill;
#         read-*   fkload read over meminfo, cpuinfo+stat, uptime+loadavg+swaps.
#       After each kill and RECOVERED every reader must make progress and the namespace must
#       read the same through lxcfs; at the end every reader must report errors=0, and umount
#       must leave no keeper, daemon or mount. The mode the keeper reported (its MODE event)
#       goes to LXCFS_MODE. With LXCFS_OWN_CMDLINE=1 lxcfs runs with the command line of its
#       systemd unit (`lxcfs MOUNTPOINT`) and mounts itself; the keeper takes that over.

# lxcfs_kill_rounds ROUNDS OPTION...: see above.
lxcfs_kill_rounds() {
	local rounds=$1 M=$T/mnt-kill r round got want readers out
	local -A pid
	shift
	mkdir -p "$M" "$T/cpuview"
	lxcfs_reader_script "$T/reader.py"

	if [ "${LXCFS_OWN_CMDLINE:-}" = 1 ]; then
		# lxcfs mounts itself, as its systemd unit runs it; the keeper is not told where.
		FK_NO_MOUNTPOINT=1 fk_start "$M" "$@" --max-restarts=100 -- lxcfs "$M"
	else
		fk_start "$M" "$@" --max-restarts=100 -o allow_other -- lxcfs -f --pidfile="$T/lxcfs.pid" {}
	fi
	fk_wait READY || fail "the keeper never became READY: $(tail -5 "$FK_LOG")"
	LXCFS_MODE=$(sed -n 's/^MODE //p' "$FK_EVENTS" | head -n 1)
	log "lxcfs under the keeper in ${LXCFS_MODE:-an unknown} mode"
	grep -q '^MemTotal:' "$M/proc/meminfo" || fail "no MemTotal in $M/proc/meminfo"
	[ -r "$M/sys/devices/system/cpu/online" ] ||
		fail "lxcfs $(lxcfs --version 2>&1) serves no sys/devices/system/cpu/online"

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

	# The container: lxcfs's meminfo over its own /proc/meminfo, and lxcfs's
	# sys/devices/system/cpu on a directory. Each answer: the filesystem type now mounted on
	# /proc/meminfo, the MemTotal line read there, and the online line read through the
	# directory's bind mount.
	# shellcheck disable=SC2016 # the script runs in the namespace
	ns_start lxc '
		mount --bind "$1/proc/meminfo" /proc/meminfo || exit 1
		mount --bind "$1/sys/devices/system/cpu" "$2" || exit 1
		echo ready
		while read -r req; do
			[ "$req" = quit ] && exit 0
			fs=$(awk '\''$5 == "/proc/meminfo" { for (i = 7; i <= NF; i++) if ($i == "-") f = $(i + 1) } END { print f }'\'' /proc/self/mountinfo)
			if line=$(grep "^MemTotal:" /proc/meminfo 2>&1) && cpu=$(cat "$2/online" 2>&1); then
				echo "$req $fs $line cpu $cpu"
			else
				echo "$req ERROR $fs ${line//$'\''\n'\''/ } ${cpu:-}"
			fi
		done' "$M" "$T/cpuview"

	want=$(ns_query lxc 0) || fail "the namespace reader did not answer"
	case $want in
	fuse*" MemTotal:"*" kB cpu "[0-9]*) log "namespace reads: $want" ;;
	*) fail "the namespace does not read lxcfs's /proc/meminfo and cpu/online: '$want'" ;;
	esac

	for round in $(seq "$rounds"); do
		for r in $readers; do
			wait_progress "$T/$r.prog" 20 30 "${pid[$r]}" ||
				fail "round $round: the $r reader made no progress"
		done
		fk_kill_daemon || fail "round $round: killing the daemon failed"
		fk_wait RECOVERED "" 30 || fail "round $round: no RECOVERED after killing lxcfs $FK_KILLED"
		log "round $round: lxcfs $FK_KILLED killed, $FK_LINE"
		got=$(ns_query lxc "$round") || fail "round $round: the namespace reader did not answer"
		[ "$got" = "$want" ] || fail "round $round: the namespace read '$got', expected '$want'"
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

	fk_clean_rounds "$rounds"

	fk_umount_exit 0
	fk_wait STOPPED "" 5 || fail "no STOPPED event"
	assert_not_mounted "$M"
	assert_all_gone
}

# lxcfs_reader_script PATH: writes the readers' script to PATH. A reader keeps going until
# SIGTERM and counts what failed:
#   hold PATH REGEX           one fd, pread(fd, 64 KiB, 0) per op
#   cwd DIR NAME=REGEX...     chdir(DIR) once, then open("./NAME") + read per op
# Every read must match its REGEX. Prints "NAME: ops=N errors=M", exits 0 iff M == 0.
# SIGTERM is blocked and polled between ops, so it never interrupts a request on the mount.
lxcfs_reader_script() {
	cat >"$1" <<'PY'
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
PY
}
