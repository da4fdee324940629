#!/bin/sh
# vm/guest-init.sh - runs inside the guests vm/run.sh boots, as /fk/vm/guest-init.sh, started
# by busybox init (PID 1, which reaps every orphan as a real init does) from /etc/inittab:
#
#   guest-init.sh setup   mounts /proc, /sys, /dev, /run, cgroup2, fusectl; brings lo up;
#                         loads the modules listed in /etc/fk-modules (fuse.ko on 6.1)
#   guest-init.sh run     reads /fk/vm.conf (FK_MODE, FK_TESTS, FK_LINE, FK_TIMEOUT_SCALE,
#                         FK_REINIT_LOAD_STRICT for 96-reinit-libfuse,
#                         FK_NOFILE: the host's open-file limits, soft and hard) and either runs
#                         tests/run-tests.sh on /fk/build with the globs of FK_TESTS, then
#                         sends its results to the host, or (FK_MODE=bench) runs bench/reinit.sh
#                         on /fk/build with the BENCH_* variables vm.conf exports, its scratch
#                         directory on a tmpfs of its own, and sends its transcript and results
#                         back the same way, or (FK_MODE=shell) starts a shell; powers the guest
#                         off at the end
#
# The results go to the second serial port (/dev/ttyS1, a file on the host) between
# marker lines, so that kernel messages on the console cannot break them:
#   FKVM-RC N            run-tests.sh's exit status
#   FKVM-SUMMARY LINE    its "N passed, N failed, N skipped" line ("bench exited N" for a bench)
#   FKVM-LOGS-BEGIN      then, in base64, a tar.gz of build/test-logs and the transcript
#   FKVM-LOGS-END
# Busybox sh: this must run before anything else is known to work.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8

say() {
	echo "FKVM: $*"
}

setup() {
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	# devtmpfs has no /dev/fd (bash's process substitution, the keeper's /dev/fd/N).
	ln -s /proc/self/fd /dev/fd
	ln -s /proc/self/fd/0 /dev/stdin
	ln -s /proc/self/fd/1 /dev/stdout
	ln -s /proc/self/fd/2 /dev/stderr
	mkdir -p /dev/pts /dev/shm
	mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
	mount -t tmpfs -o mode=1777 tmpfs /dev/shm
	mount -t tmpfs -o mode=755 tmpfs /run
	mount -t cgroup2 cgroup2 /sys/fs/cgroup || say "cannot mount cgroup2 (lxcfs needs it)"
	hostname -F /etc/hostname
	ip link set lo up || say "cannot bring lo up"
	while read -r m; do
		[ -n "$m" ] || continue
		insmod "$m" || say "insmod $m failed"
	done </etc/fk-modules
	if [ -d /sys/fs/fuse/connections ]; then
		mount -t fusectl fusectl /sys/fs/fuse/connections || say "cannot mount fusectl"
	fi
	tmp_with_xattrs
}

# The tests' temp dirs are in /tmp, on the root tmpfs. Before Linux 6.6 tmpfs has no user.*
# xattrs, which some tests need for their backing directory (they skip those cases without):
# /tmp is then an ext4 on a loop device, as a disk would give a host. The image is sparse, in
# the root tmpfs.
tmp_with_xattrs() {
	: >/tmp/.fk-xattr-probe
	if setfattr -n user.fkprobe -v 1 /tmp/.fk-xattr-probe 2>/dev/null; then
		rm -f /tmp/.fk-xattr-probe
		return 0
	fi
	rm -f /tmp/.fk-xattr-probe
	if truncate -s 1536M /fk-tmp.ext4 && mkfs.ext4 -q -F /fk-tmp.ext4 &&
		mount -o loop /fk-tmp.ext4 /tmp && chmod 1777 /tmp; then
		say "/tmp: ext4 on a loop device (tmpfs here has no user.* xattrs)"
	else
		say "/tmp: tmpfs without user.* xattrs (no ext4 to put there)"
	fi
}

facts() {
	say "kernel $(uname -r) ($(cat /proc/version))"
	if grep -q '^fuse ' /proc/modules; then
		say "fuse: a module, version $(cat /sys/module/fuse/version 2>/dev/null || echo none)," \
			"srcversion $(cat /sys/module/fuse/srcversion 2>/dev/null || echo none)," \
			"taint $(cat /sys/module/fuse/taint 2>/dev/null)"
	elif [ -e /sys/module/fuse ]; then
		say "fuse: built in"
	else
		say "fuse: not present"
	fi
	[ -c /dev/fuse ] || say "/dev/fuse is missing"
	say "modules loaded: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
	say "cpus $(nproc), $(awk '$1 == "MemTotal:" { print $2 " kB" }' /proc/meminfo)"
	# A replacement fuse.ko says where it came from (vm/run.sh with VM_KMOD, make kmod).
	if [ -f /etc/fk-kmod ]; then
		say "fuse.ko from $(cat /etc/fk-kmod)"
	fi
}

run_tests() {
	rc=0
	cd /fk || exit 1
	# shellcheck disable=SC2086 # "SOFT HARD"
	set -- $FK_NOFILE
	ulimit -H -n "$2" && ulimit -S -n "$1" || say "cannot set the open-file limits to $FK_NOFILE"
	say "open files: soft $(ulimit -S -n), hard $(ulimit -H -n)"
	export FK_TIMEOUT_SCALE
	[ -z "${FK_REINIT_LOAD_STRICT:-}" ] || export FK_REINIT_LOAD_STRICT
	say "time limits: ${FK_TIMEOUT_SCALE:-1} times each test's own (FK_TIMEOUT_SCALE)"
	say "running tests/run-tests.sh build $FK_TESTS"
	# FK_TESTS is a list of globs for run-tests.sh, not for the shell.
	set -f
	# shellcheck disable=SC2086
	bash tests/run-tests.sh build $FK_TESTS >/fk/run-tests.out 2>&1 &
	set +f
	pid=$!
	# The transcript goes to the console as it grows.
	tail -n +1 -f /fk/run-tests.out &
	tailpid=$!
	wait "$pid"
	rc=$?
	kill "$tailpid"
	wait "$tailpid" 2>/dev/null
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' /fk/run-tests.out | tail -n 1)
	say "run-tests.sh exited $rc: ${summary:-no summary line}"
	mkdir -p /fk/build/test-logs
	cp /fk/run-tests.out /fk/build/test-logs/run-tests.out
	dmesg >/fk/build/test-logs/dmesg.txt 2>&1
	{
		echo "FKVM-RC $rc"
		echo "FKVM-SUMMARY ${summary:-none}"
		echo "FKVM-LOGS-BEGIN"
		tar -C /fk/build -czf - test-logs | base64
		echo "FKVM-LOGS-END"
	} >/dev/ttyS1
}

# The bench's scratch directory is a tmpfs of its own: /tmp on 6.1 is an ext4 of 1.5 GiB with
# about 98 000 inodes, fewer than the 100 000 files of the largest recovery row.
run_bench() {
	rc=0
	cd /fk || exit 1
	mkdir -p /fk/build/test-logs /bench
	mount -t tmpfs -o size=1200M,nr_inodes=400000,mode=1777 fk-bench /bench ||
		say "cannot mount a tmpfs on /bench"
	export BENCH_TMP="${BENCH_TMP:-/bench}"
	say "running bench/reinit.sh build ($(env | grep '^BENCH_' | tr '\n' ' '))"
	bash bench/reinit.sh build >/fk/build/test-logs/bench.out 2>&1 &
	pid=$!
	tail -n +1 -f /fk/build/test-logs/bench.out &
	tailpid=$!
	wait "$pid"
	rc=$?
	kill "$tailpid"
	wait "$tailpid" 2>/dev/null
	say "bench/reinit.sh exited $rc"
	cp -r /fk/build/bench/reinit-results-*.txt /fk/build/bench/reinit-logs-* /fk/build/test-logs/ 2>/dev/null
	dmesg >/fk/build/test-logs/dmesg.txt 2>&1
	{
		echo "FKVM-RC $rc"
		echo "FKVM-SUMMARY bench exited $rc"
		echo "FKVM-LOGS-BEGIN"
		tar -C /fk/build -czf - test-logs | base64
		echo "FKVM-LOGS-END"
	} >/dev/ttyS1
}

case ${1:-} in
setup)
	setup
	;;
run)
	# shellcheck source=/dev/null
	. /fk/vm.conf
	facts
	case ${FK_MODE:-test} in
	test) run_tests ;;
	bench) run_bench ;;
	shell)
		say "interactive shell; 'poweroff -f' or exit to stop the guest; the tree is in /fk"
		cd /fk && bash -i
		;;
	esac
	say "powering off"
	sync
	poweroff -f
	;;
*)
	echo "usage: $0 setup|run" >&2
	exit 2
	;;
esac
