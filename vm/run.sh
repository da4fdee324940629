#!/bin/bash
# vm/run.sh - runs fusekeeper's tests inside Debian 12's own kernels, booted under qemu.
#
#   vm/run.sh [LINE...]        for each kernel line (default: 6.1 6.12), boots the current
#                              Debian 12 kernel of that line with a busybox initramfs holding
#                              the project's build and the tools the tests use, runs
#                              tests/run-tests.sh inside on the tests of vm/tests.list, and
#                              prints one "N passed, N failed, N skipped" line per kernel
#                              (after the kernel's name) and a total line
#   vm/run.sh --shell LINE     boots that kernel's guest to an interactive shell instead
#                              (the tree in /fk; Ctrl-A X quits qemu)
#   vm/run.sh --bench LINE     boots that kernel's guest to run bench/reinit.sh (reinit mode
#                              against the direct mount and proxy mode; needs the patched
#                              fuse.ko: VM_KMOD) with the host's BENCH_* variables, prints its
#                              results table; its transcript and results come back in
#                              VM_LOGS/vm-LINE/test-logs/ (bench.out, reinit-results-*.txt,
#                              reinit-logs-*/ for bench/reinit-phases.sh, dmesg.txt)
#
# Environment:
#   VM_TESTS    test names or globs for run-tests.sh, space separated (default: vm/tests.list)
#   VM_BUILD    the meson build directory to test (default: build)
#   VM_LOGS     where each kernel's logs go, as VM_LOGS/vm-LINE/ (default: test-logs):
#               console.log (the guest's serial console), results.txt (what the guest sent
#               back), test-logs/ (run-tests.sh's logs from the guest, its transcript, dmesg)
#   VM_ACCEL    tcg, kvm or auto (default): auto boots a probe with KVM first, 10 s at most,
#               and uses TCG unless the probe reached its init
#   VM_MEM, VM_SMP     the guest's memory and CPUs (default 2G, 2)
#   VM_JOBS     how many guests boot side by side (default 1); their consoles interleave,
#               each line prefixed with its kernel line. Under TCG a busy guest keeps two
#               host CPUs busy: on a 2-CPU machine two guests at once doubled the CPU-bound
#               tests' time and pushed two of them past their limits (docs/testing.md)
#   VM_TIMEOUT_SCALE   multiplies every test's time limit inside the guests (run-tests.sh's
#               FK_TIMEOUT_SCALE): default 3 under TCG, 1 with KVM. The limits are hang guards
#               sized for the host; under TCG CPU-bound tests run 10 to 20 times slower
#   VM_CPU      qemu's -cpu under TCG (default max; qemu64 made 10-testfs-kill 35% slower)
#   VM_TIMEOUT  seconds before a guest is killed (default: 300 plus the time limits of the
#               selected tests, which run-tests.sh enforces inside; 5400 for --bench)
#   VM_KMOD     a fuse.ko to load instead of the image's own, in the guests of the kernel it
#               was built for (make kmod)
#   VM_CACHE    where kernels and base initramfs images are cached (vm/lib.sh)
#   FK_REINIT_LOAD_STRICT  passed to the guests' tests as set here: 0 makes
#               96-reinit-libfuse only report its workloads' errors, for a fuse.ko without
#               kernel/patches/0011 (docs/testing.md)
#
# Every guest is killed by pid when the run ends, however it ends; a guest that does not
# report in time is killed and the end of its console log is shown.
set -uo pipefail
# shellcheck source=vm/lib.sh
. "$(dirname "$0")/lib.sh"

MODE="test"
if [ "${1:-}" = --shell ] || [ "${1:-}" = --bench ]; then
	MODE=${1#--}
	shift
	[ $# -eq 1 ] || { echo "usage: $0 --$MODE LINE" >&2; exit 2; }
fi
LINES=()
for l in "$@"; do
	case " ${LINES[*]} " in *" $l "*) ;; *) LINES+=("$l") ;; esac
done
[ ${#LINES[@]} -gt 0 ] || LINES=(6.1 6.12)
[[ ${VM_JOBS:-1} =~ ^[1-9][0-9]*$ ]] || vm_die "VM_JOBS=${VM_JOBS}: not a positive number"
[[ ${VM_TIMEOUT_SCALE:-1} =~ ^[1-9][0-9]*$ ]] || vm_die "VM_TIMEOUT_SCALE=${VM_TIMEOUT_SCALE}: not a whole number >= 1"
[[ ${VM_DEADLINE:-0} =~ ^[0-9]+$ ]] || vm_die "VM_DEADLINE=${VM_DEADLINE}: not a time in seconds since the epoch"

[ "$(id -u)" = 0 ] || vm_die "must run as root"
command -v qemu-system-x86_64 >/dev/null || vm_die "qemu-system-x86_64 is missing (scripts/install-deps.sh vm)"
BUILD=$(cd "$VM_SRCDIR" && cd "${VM_BUILD:-build}" 2>/dev/null && pwd) ||
	vm_die "build directory ${VM_BUILD:-build} not found (run make)"
[ -x "$BUILD/fusekeeper" ] || vm_die "$BUILD/fusekeeper is not built (run make)"
if [ "$MODE" = bench ]; then
	[ -x "$BUILD/bench/fkrecover" ] || vm_die "$BUILD/bench/fkrecover is not built (run make)"
	# The guests have no compiler: passthrough_ll comes built, with the tests' programs.
	[ -x "$BUILD/tests/lf-passthrough_ll" ] ||
		vm_die "$BUILD/tests/lf-passthrough_ll is not built (install libfuse3-dev, run make)"
fi
LOGS=$(mkdir -p "$VM_SRCDIR/${VM_LOGS:-test-logs}" && cd "$VM_SRCDIR/${VM_LOGS:-test-logs}" && pwd) ||
	vm_die "cannot create ${VM_LOGS:-test-logs}"

# tests_for LINE: the tests that kernel's guest runs: VM_TESTS, or vm/tests.list's lines without
# a prefix and those prefixed with "LINE:" (a line prefixed with another kernel's is not its).
tests_for() {
	if [ -n "${VM_TESTS:-}" ]; then
		echo "$VM_TESTS"
		return
	fi
	sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$VM_DIR/tests.list" |
		awk -v line="$1" '/^[0-9.]+:/ { if ($1 != line ":") next; sub(/^[^:]*:[[:space:]]*/, "") }
			{ print }' | tr '\n' ' '
}
TESTS=$(tests_for "")

WORK=$(mktemp -d /tmp/fusekeeper-vm.XXXXXX) || exit 1
QPID=
declare -A BOOTER
cleanup() {
	local p
	# A guest booted here, or the subshells still booting guests side by side (each kills
	# and waits for its own qemu); BOOTER only holds those not waited for yet.
	for p in $QPID "${BOOTER[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $QPID "${BOOTER[@]}"; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The selected tests' own time limits, added up: run-tests.sh enforces each inside.
tests_time() {
	local total=0 t name limit g hit
	for t in "$BUILD"/tests/test_* "$VM_SRCDIR"/tests/integration/*.sh; do
		[ -f "$t" ] || continue
		name=$(basename "$t" .sh)
		hit=
		set -f
		# As run-tests.sh selects: a glob matches and no !glob does.
		for g in $TESTS; do
			# shellcheck disable=SC2053
			if [[ $g == !* ]]; then
				[[ $name == ${g#!} ]] && hit=no
			elif [[ $name == $g ]] && [ "$hit" != no ]; then
				hit=1
			fi
		done
		set +f
		[ "$hit" = 1 ] || continue
		case $t in
		*.sh) limit=$("$VM_SRCDIR/tests/run-tests.sh" --timeout "$t") ;;
		*) limit=120 ;;
		esac
		total=$((total + ${limit:-300} * SCALE))
	done
	echo "$total"
}

# proj_cpio LINE STAGE OUT: the per-boot part of the initramfs, staged in the directory
# STAGE: /init, the inittab, the tests and the build, the libraries they need that the base
# lacks, and a replacement fuse.ko.
proj_cpio() {
	local line=$1 st=$2 out=$3 f lib rel
	rm -rf "$st"
	mkdir -p "$st/etc" "$st/fk/build/tests" "$st/fk/vm"
	# The initramfs is rootfs, a mount without a parent, from which pivot_root(2) and
	# MOVE_MOUNT_BENEATH cannot work. As Debian's own initramfs does with the disk, the
	# guest's root is another filesystem moved onto / (switch_root): a tmpfs holding a copy
	# of the initramfs (a bind mount of rootfs itself is not enough: lxcfs's private mount
	# namespace then keeps a copy of the FUSE mount alive after it is unmounted).
	cat >"$st/init" <<-'EOF'
		#!/usr/bin/busybox sh
		b=/usr/bin/busybox
		$b mkdir -p /newroot
		$b mount -t tmpfs -o mode=755 fk-root /newroot
		for d in /* /.[!.]*; do
			[ -e "$d" ] && [ "$d" != /newroot ] && $b cp -a "$d" /newroot/
		done
		exec $b switch_root /newroot /usr/bin/busybox init
	EOF
	chmod 755 "$st/init"
	{
		echo "::sysinit:/fk/vm/guest-init.sh setup"
		if [ "$MODE" = shell ]; then
			echo "ttyS0::once:/fk/vm/guest-init.sh run"
		else
			echo "::once:/fk/vm/guest-init.sh run"
		fi
	} >"$st/etc/inittab"
	# The tests run with the open-file limits of the shell that started this (a guest's init
	# starts with the kernel's 1024/4096; some tests need more, as they have on the host).
	# FK_REINIT_LOAD_STRICT: 96-reinit-libfuse's switch, passed through as it is set here.
	printf 'FK_MODE=%q\nFK_TESTS=%q\nFK_LINE=%q\nFK_NOFILE=%q\nFK_TIMEOUT_SCALE=%q\nFK_REINIT_LOAD_STRICT=%q\n' \
		"$MODE" "$TESTS" "$line" "$(ulimit -Sn) $(ulimit -Hn)" "$SCALE" \
		"${FK_REINIT_LOAD_STRICT:-}" >"$st/fk/vm.conf"
	if [ "$MODE" = bench ]; then
		# The bench's knobs, as the host has them; and the bench itself with its tools.
		for f in ${!BENCH_@}; do
			printf 'export %s=%q\n' "$f" "${!f}"
		done >>"$st/fk/vm.conf"
		mkdir -p "$st/fk/bench" "$st/fk/build/bench"
		cp "$VM_SRCDIR"/bench/*.sh "$st/fk/bench/"
		cp "$BUILD/bench/fkrecover" "$st/fk/build/bench/"
	fi
	install -m 755 "$VM_DIR/guest-init.sh" "$st/fk/vm/guest-init.sh"
	# Shared by the tests' lib.sh and the bench.
	mkdir -p "$st/fk/scripts"
	cp "$VM_SRCDIR/scripts/common.sh" "$st/fk/scripts/"
	(cd "$VM_SRCDIR" && tar -cf - --exclude=tests/tmp tests) | tar -C "$st/fk" -xf -
	cp "$BUILD/fusekeeper" "$st/fk/build/"
	find "$BUILD/tests" -maxdepth 1 -type f -perm -u+x -exec cp {} "$st/fk/build/tests/" \;
	for f in "$st/fk/build/fusekeeper" "$st"/fk/build/tests/* "$st"/fk/build/bench/*; do
		[ -f "$f" ] || continue
		ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
	done | sort -u | while read -r lib; do
		# The file, and the name ldd gives it (a soname link, as libseccomp.so.2) beside it:
		# in the real directory, never one a /lib -> usr/lib link stands for.
		real=$(realpath -- "$lib")
		link=$(realpath -- "${lib%/*}")/${lib##*/}
		for p in "$real" "$link"; do
			grep -qxF -- "$p" "$BASE_LIST" && continue
			mkdir -p "$st${p%/*}"
			cp -P -- "$p" "$st$p"
		done
	done
	if [ -n "${VM_KMOD:-}" ]; then
		kmod_into "$st"
	fi
	(cd "$st" && find . -mindepth 1 | sort | cpio --quiet -o -H newc -R 0:0) >"$out"
}

# kmod_into STAGE: VM_KMOD replaces the image's fuse.ko in /etc/fk-modules, if it was built
# for this kernel; a kernel with FUSE built in keeps its own.
kmod_into() {
	local st=$1 magic rel
	magic=$(modinfo -F vermagic "$VM_KMOD" 2>/dev/null) || vm_die "VM_KMOD=$VM_KMOD: not a module"
	if [ "${magic%% *}" != "$KABI" ]; then
		vm_log "VM_KMOD was built for ${magic%% *}, not $KABI: this guest loads its own fuse"
		return 0
	fi
	rel=/usr/lib/modules/$KABI/updates/fuse.ko
	grep -q '/fuse\.ko$' "$BASE_MODULES" ||
		vm_die "$KABI has FUSE built in: VM_KMOD cannot replace it"
	mkdir -p "$st${rel%/*}"
	cp "$VM_KMOD" "$st$rel"
	sed "s|^.*/fuse\\.ko\$|$rel|" "$BASE_MODULES" >"$st/etc/fk-modules"
	echo "$VM_KMOD (srcversion $(modinfo -F srcversion "$VM_KMOD"), loaded from $rel)" >"$st/etc/fk-kmod"
	vm_log "this guest loads $VM_KMOD instead of the image's fuse.ko"
}

# qemu ACCEL LOGDIR INITRD: the command line, in the QEMU array. no_timer_check: under TCG on a
# loaded host the boot's check that the timer interrupt arrives through the IO-APIC can miss
# it, and the kernel panics ("IO-APIC + timer doesn't work", seen with four guests on two
# CPUs); the emulated timer is known to work, so the check is skipped.
qemu_cmd() {
	local accel=$1 logdir=$2 initrd=$3 cpu=${VM_CPU:-max}
	[ "$accel" = kvm ] && cpu=host
	# shellcheck disable=SC2054 # the commas are qemu's
	QEMU=(qemu-system-x86_64 -nodefaults -no-user-config -accel "$accel" -cpu "$cpu"
		-m "${VM_MEM:-2G}" -smp "${VM_SMP:-2}" -display none -no-reboot
		-kernel "$VMLINUZ" -initrd "$initrd"
		-append "console=ttyS0 loglevel=4 panic=-1 tsc=reliable mitigations=off no_timer_check ${VM_APPEND:-}")
	# shellcheck disable=SC2054
	if [ "$MODE" = shell ]; then
		QEMU+=(-chardev "stdio,id=con,mux=on,signal=off,logfile=$logdir/console.log"
			-serial chardev:con -mon chardev=con,mode=readline)
	else
		QEMU+=(-chardev "stdio,id=con,signal=off,logfile=$logdir/console.log"
			-serial chardev:con -serial "file:$logdir/results.txt")
	fi
}

# kvm_works: boots the kernel with KVM and a tiny init that prints a marker, 10 s at most.
# The answer is kept for this boot of the host and this qemu in $VM_CACHE/kvm-probe.
kvm_works() {
	local st=$WORK/probe key
	if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		KVM_WHY="no usable /dev/kvm"
		return 1
	fi
	key="$(cat /proc/sys/kernel/random/boot_id) $(qemu-system-x86_64 --version | head -n 1)"
	if [ -f "$VM_CACHE/kvm-probe" ] && [ "$(head -n 1 "$VM_CACHE/kvm-probe")" = "$key" ]; then
		KVM_WHY="$(sed -n 3p "$VM_CACHE/kvm-probe") (probed earlier in this boot)"
		[ "$(sed -n 2p "$VM_CACHE/kvm-probe")" = yes ]
		return
	fi
	mkdir -p "$st/usr/bin" "$st/dev"
	cp /usr/bin/busybox "$st/usr/bin/"
	printf '#!/usr/bin/busybox sh\n/usr/bin/busybox echo FKVM-KVM-OK\n/usr/bin/busybox poweroff -f\n' >"$st/init"
	chmod 755 "$st/init"
	(cd "$st" && find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0) >"$WORK/probe.cpio"
	timeout --kill-after=2 10 qemu-system-x86_64 -nodefaults -no-user-config -accel kvm -cpu host \
		-m 256M -display none -no-reboot -kernel "$VMLINUZ" -initrd "$WORK/probe.cpio" \
		-append "console=ttyS0 quiet panic=-1" -serial "file:$WORK/probe.log" \
		</dev/null >"$WORK/probe.out" 2>&1
	local rc=$? ok=no
	if grep -q FKVM-KVM-OK "$WORK/probe.log" 2>/dev/null; then
		ok=yes KVM_WHY="a KVM guest reached its init"
	elif [ "$rc" = 124 ]; then
		KVM_WHY="a KVM guest printed nothing in 10 s"
	else
		KVM_WHY="qemu -accel kvm failed: $(grep -m1 . "$WORK/probe.out")"
	fi
	printf '%s\n%s\n%s\n' "$key" "$ok" "$KVM_WHY" >"$VM_CACHE/kvm-probe"
	[ "$ok" = yes ]
}

ACCEL=${VM_ACCEL:-auto}

# Each line's guest is built first, one after the other (cheap once cached); the guests then
# boot VM_JOBS at a time and their results are read in the lines' order.
declare -A G_VARS G_PREP
prepare() {
	local line=$1 t0=$SECONDS guest
	guest=$("$VM_DIR/build-guest.sh" "$line") || return 1
	G_VARS[$line]=$guest
	G_PREP[$line]=$((SECONDS - t0))
	eval "$guest"
	if [ "$ACCEL" = auto ]; then
		KVM_WHY=
		if kvm_works; then ACCEL=kvm; else ACCEL=tcg; fi
		vm_log "accelerator: $ACCEL ($KVM_WHY)"
	fi
}

# boot LINE: runs that guest to the end; its logs go to LOGS/vm-LINE. Runs in a subshell of
# its own when guests boot side by side (its exit trap kills its qemu).
boot() {
	local line=$1 logdir=$LOGS/vm-$1 w=$WORK/$1 limit left qrc t0=$SECONDS TESTS
	TESTS=$(tests_for "$line")
	eval "${G_VARS[$line]}"
	SCALE=${VM_TIMEOUT_SCALE:-3}
	[ "$ACCEL" = kvm ] && SCALE=${VM_TIMEOUT_SCALE:-1}
	rm -rf "$logdir"
	mkdir -p "$logdir" "$w"
	proj_cpio "$line" "$w/proj" "$w/proj.cpio"
	cat "$BASE" "$w/proj.cpio" >"$w/initrd.cpio"
	rm -rf "$w/proj" "$w/proj.cpio"
	qemu_cmd "$ACCEL" "$logdir" "$w/initrd.cpio"
	printf '%s %s %s\n' "$KABI" "$KVER" "$ACCEL" >"$logdir/kernel"

	if [ "$MODE" = shell ]; then
		vm_log "booting $KABI ($KVER) to a shell; Ctrl-A X quits"
		"${QEMU[@]}"
		return
	fi

	if [ "$MODE" = bench ]; then
		limit=${VM_TIMEOUT:-5400}
	else
		limit=${VM_TIMEOUT:-$((300 + $(tests_time)))}
	fi
	# A run with a deadline (scripts/check.sh: CI's time) gives each guest what is left of it.
	if [ "${VM_DEADLINE:-0}" -gt 0 ]; then
		left=$((VM_DEADLINE - $(date +%s)))
		if [ "$left" -lt 120 ]; then
			vm_log "$KABI: not booted: the run's deadline is ${left}s away (VM_DEADLINE)"
			echo "none deadline" >"$w/qemu-status"
			echo "${G_PREP[$line]} 0" >"$logdir/seconds"
			return
		fi
		[ "$left" -lt "$limit" ] && limit=$left
	fi
	if [ "$MODE" = bench ]; then
		vm_log "booting $KABI ($KVER, $ACCEL) to run bench/reinit.sh (killed after ${limit}s)"
	else
		vm_log "booting $KABI ($KVER, $ACCEL) to run: $TESTS (killed after ${limit}s)"
	fi
	timeout --kill-after=10 "$limit" "${QEMU[@]}" </dev/null > >(sed -u -e 's/\r$//' -e "s/^/[$line] /") 2>"$logdir/qemu.err" &
	QPID=$!
	wait "$QPID"
	qrc=$?
	QPID=
	rm -f "$w/initrd.cpio"
	echo "${G_PREP[$line]} $((SECONDS - t0))" >"$logdir/seconds"
	echo "$qrc $limit" >"$w/qemu-status"
}

# report LINE: unpacks what the guest sent back and prints its summary to $WORK/LINE/summary.
report() {
	local line=$1 logdir=$LOGS/vm-$1 w=$WORK/$1 res qrc=none limit=unknown why summary
	eval "${G_VARS[$line]}"
	res=$logdir/results.txt
	[ -f "$w/qemu-status" ] && read -r qrc limit <"$w/qemu-status"
	if grep -q '^FKVM-LOGS-END' "$res" 2>/dev/null; then
		tr -d '\r' <"$res" | sed -n '/^FKVM-LOGS-BEGIN$/,/^FKVM-LOGS-END$/p' | sed '1d;$d' |
			base64 -d | tar -C "$logdir" -xzf - || vm_log "$line: the guest's logs could not be unpacked"
		summary=$(tr -d '\r' <"$res" | sed -n 's/^FKVM-SUMMARY //p')
	else
		case $qrc:$limit in
		none:deadline) why="not booted: less than 2 minutes were left before the run's deadline" ;;
		none:*) why="not booted (the messages above say why)" ;;
		124:* | 137:*) why="killed after ${limit}s" ;;
		*) why="qemu exited with status $qrc" ;;
		esac
		echo "---- $KABI: the guest did not report its results ($why) ----"
		if [ -s "$logdir/console.log" ]; then
			echo "---- the end of $logdir/console.log ----"
			tail -n 60 "$logdir/console.log" | tr -d '\r'
		fi
		[ -s "$logdir/qemu.err" ] && { echo "---- qemu's stderr ----"; cat "$logdir/qemu.err"; }
		echo "---- end ----"
		summary=none
	fi
	echo "$summary" >"$w/summary"
	vm_log "$KABI: guest ready in ${G_PREP[$line]} s, boot and tests took $(cut -d' ' -f2 "$logdir/seconds" 2>/dev/null) s; logs in $logdir"
}

tp=0 tf=0 ts=0 bad=0
declare -a REPORT READY
for line in "${LINES[@]}"; do
	if prepare "$line"; then
		READY+=("$line")
	else
		REPORT+=("$line: the guest could not be built")
		bad=1
		tf=$((tf + 1))
	fi
done

if [ "$MODE" = shell ]; then
	[ ${#READY[@]} -eq 1 ] || exit 1
	boot "${READY[0]}"
	exit $?
fi

# A bench: one guest, its results table, and the bench's exit status.
if [ "$MODE" = bench ]; then
	[ ${#READY[@]} -eq 1 ] || exit 1
	line=${READY[0]}
	boot "$line"
	report "$line"
	summary=$(cat "$WORK/$line/summary")
	res=$(find "$LOGS/vm-$line/test-logs" -maxdepth 1 -name 'reinit-results-*.txt' 2>/dev/null | sort | tail -n 1)
	if [ -n "$res" ]; then
		cat "$res"
		vm_log "results in $res, the transcript in $LOGS/vm-$line/test-logs/bench.out"
	else
		vm_log "no results table: see $LOGS/vm-$line/test-logs/bench.out and console.log"
	fi
	echo "${summary:-none}"
	[ "$summary" = "bench exited 0" ]
	exit $?
fi

# tally LINE: reports that guest and adds its counts to the totals.
tally() {
	local line=$1 summary
	report "$line"
	summary=$(cat "$WORK/$line/summary")
	eval "${G_VARS[$line]}"
	if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped$ ]]; then
		tp=$((tp + BASH_REMATCH[1]))
		tf=$((tf + BASH_REMATCH[2]))
		ts=$((ts + BASH_REMATCH[3]))
		[ "${BASH_REMATCH[2]}" = 0 ] || bad=1
		REPORT+=("$KABI: $summary")
	else
		REPORT+=("$KABI: no results (see above and $LOGS/vm-$line/)")
		tf=$((tf + 1))
		bad=1
	fi
}

JOBS=${VM_JOBS:-1}
if [ "$JOBS" -eq 1 ]; then
	# One at a time: each guest is reported as soon as it ends.
	for line in "${READY[@]}"; do
		boot "$line"
		tally "$line"
	done
else
	running=()
	for line in "${READY[@]}"; do
		while [ ${#running[@]} -ge "$JOBS" ]; do
			fin=
			wait -n -p fin "${running[@]}"
			[ -n "$fin" ] || break
			keep=()
			for p in "${running[@]}"; do [ "$p" = "$fin" ] || keep+=("$p"); done
			running=("${keep[@]}")
		done
		(
			QPID=
			trap '[ -n "$QPID" ] && { kill -TERM "$QPID" 2>/dev/null; wait "$QPID"; }' EXIT
			trap 'exit 143' TERM
			trap 'exit 129' HUP
			boot "$line"
		) &
		BOOTER[$line]=$!
		running+=("$!")
	done
	for line in "${READY[@]}"; do
		wait "${BOOTER[$line]}"
		unset "BOOTER[$line]"
		tally "$line"
	done
fi

for r in "${REPORT[@]}"; do
	echo "$r"
done
echo "$tp passed, $tf failed, $ts skipped"
[ "$bad" = 0 ]
