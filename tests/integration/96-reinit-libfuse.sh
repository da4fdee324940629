#!/bin/bash
# 96-reinit-libfuse: libfuse's own example daemons, unmodified, under fusekeeper --mode=reinit:
# passthrough (the high-level API: node IDs are counters in libfuse's tree, which calls abort()
# when asked about one it does not know) and passthrough_ll (the low-level API: node IDs are
# pointers of the daemon's own, inode numbers the backing files'). tests/meson.build compiles
# both from the sources libfuse3-dev installs (lf-passthrough, lf-passthrough_ll); without
# them the test skips. The project's testfs (the low-level API too, its handles salted per
# run) goes through the same scenario. Each serves a backing directory in $T, never /.
#
# Reinit part, where the kernel has FUSE_DEV_IOC_REINIT (the 6.1 guest's patched fuse.ko):
# each daemon is SIGKILLed five times while
#  - a file is held open read-write: after every recovery its SHA-256 through the old fd is
#    the store's, and a write through it reaches the store;
#  - a process's working directory is five levels down: listed and read after every
#    recovery, its st_ino unchanged;
#  - a directory four levels down is bind-mounted in another mount namespace: a file read
#    through it byte-exact, st_ino of the bind mount's root unchanged;
#  - fkload's fd workload (one fd kept open: pwrite and pread against a shadow copy) and its
#    read workload (files read by path) run into every kill and progress after every
#    recovery (they are paused while the other clients are checked, so as not to compete
#    with the checks for the guest's two CPUs); their figures are reported, and they must
#    end with errors=0 (see below);
#  - a file unlinked while open: after the first recovery read(2) and write(2) through it
#    fail with ESTALE (docs/kernel-api.md: an inode with no name is lost) and close(2)
#    succeeds; the store then holds what each daemon leaves of it (passthrough, without
#    hard_remove, renamed it to .fuse_hidden*; passthrough_ll removed it);
# and no daemon ends other than by our SIGKILLs (an abort of the high-level API would show
# that a node ID of a killed daemon reached a new one), every recovery is clean, and an
# unmount stops the keeper with status 0.
# Baseline part, on every kernel (after the reinit part where that runs): each daemon mounted
# directly (no fusekeeper) and SIGKILLed under the same held fd, working directory and bind
# mount: they, and a fresh stat, must get ENOTCONN. On the patched module it shows that a
# connection nobody holds ends as on the stock one, side by side with the reinit part; on the
# stock modules (the host, 6.12, and 6.1's own in make check's stock-module guest) it is the
# problem the reinit part solves. The last line says which parts ran.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-reinit.sh"
. "$(dirname "$0")/../lib-daemons.sh"

LF_HL=$BUILD_DIR/tests/lf-passthrough
LF_LL=$BUILD_DIR/tests/lf-passthrough_ll
for p in "$LF_HL" "$LF_LL"; do
	[ -x "$p" ] || skip "$p is not built: tests/meson.build compiles it from" \
		"/usr/share/doc/libfuse3-dev/examples, which was missing (install libfuse3-dev and rebuild)"
done
need_prog "$FK"
need_prog "$TESTFS"
need_prog "$FKLOAD"
need_prog "$FKREINIT"
need_cmd unshare sha256sum perl

ROUNDS=5
# The workload check. The kills catch the workloads mid-request; kernel/patches/0011 sends
# such a request again where a repeat does what one does (reads, positioned writes, stat,
# open; close's FLUSH because the keeper runs with --write-through, which both daemons are:
# they store before they answer), so every call must succeed: errors=0. On patches 1-10 such
# a request failed with EIO; FK_REINIT_LOAD_STRICT=0 (passed into the guests by vm/run.sh)
# only reports the figures, for such a module.
: "${FK_REINIT_LOAD_STRICT:=1}"

# daemon_cmd KEY STORE: the command line (without its mountpoint) of the daemon KEY (hl:
# passthrough, ll: passthrough_ll) serving the directory STORE, in DAEMON_CMD.
daemon_cmd() {
	case $1 in
	hl) DAEMON_CMD=("$LF_HL" -f -o "modules=subdir,subdir=$2") ;;
	ll) DAEMON_CMD=("$LF_LL" -f -o "source=$2") ;;
	tf) DAEMON_CMD=("$TESTFS" --backing="$2" -f) ;;
	*) fail "daemon_cmd: unknown daemon $1" ;;
	esac
}

# populate STORE: the tree both parts use.
populate() {
	mkdir -p "$1/a/b/c/d/e" "$1/ns/x/y/z" "$1/load/fd" "$1/load/read"
	echo deep >"$1/a/b/c/d/e/f"
	head -c 100000 /dev/urandom >"$1/ns/x/y/z/data"
	head -c 100000 /dev/urandom >"$1/held"
	printf original >"$1/unl"
	echo fresh >"$1/fresh"
	for f in r1 r2; do
		{
			echo "fusekeeper $f"
			head -c 50000 /dev/urandom | base64
		} >"$1/load/read/$f"
	done
}

sha() {
	sha256sum <"$1" | cut -d' ' -f1
}

# sleeper NAME DIR: a process whose working directory is DIR; its pid goes to SLEEPER.
sleeper() {
	local deadline=$(($(now_ms) + 20000))
	# shellcheck disable=SC2016 # $1 is the inner shell's
	run_bg "$1" sh -c 'cd "$1" && exec sleep 600' sh "$2"
	SLEEPER=$BG_PID
	until [ "$(readlink "/proc/$SLEEPER/cwd")" = "$2" ]; do
		alive "$SLEEPER" || fail "$1 could not enter $2: $(cat "$T/$1.err")"
		[ "$(now_ms)" -lt "$deadline" ] || fail "$1 did not enter $2"
		sleep 0.05
	done
}

# The namespace reader (ns_start SCRIPT): a bind mount of $1 on $2 in its own mount namespace;
# for each request, "REQ SHA INO" (the checksum of data under it and the st_ino of its root) or
# "REQ ERROR MESSAGE".
NS_SCRIPT=$(
	cat <<'EOF'
mount --bind "$1" "$2" || exit 1
echo ready
while read -r req; do
	sum= ino=
	[ "$req" = quit ] && exit 0
	if sum=$(sha256sum 2>&1 <"$2/data") && ino=$(stat -c %i "$2" 2>&1); then
		echo "$req ${sum%% *} $ino"
	else
		echo "$req ERROR $(echo "$sum ${ino:-}" | tr '\n' ' ')"
	fi
done
EOF
)

# ---- the baseline: no fusekeeper ----------------------------------------------

# baseline KEY: the daemon KEY mounted directly and SIGKILLed leaves ENOTCONN everywhere.
baseline() {
	local key=$1 B=$T/base-$1 M=$T/mnt-base-$1 daemon deadline got cwd
	mkdir -p "$M" "$T/nsview-b$key"
	populate "$B"
	daemon_cmd "$key" "$B"
	run_bg "base-$key" "${DAEMON_CMD[@]}" "$M"
	daemon=$BG_PID
	track_mount "$M"
	deadline=$(($(now_ms) + 20000))
	until [[ "$(mount_info "$M")" == *" fuse"* ]]; do
		alive "$daemon" || fail "baseline $key: the daemon exited before mounting: $(cat "$T/base-$key.err")"
		[ "$(now_ms)" -lt "$deadline" ] || fail "baseline $key: the daemon did not mount $M within 20 s"
		sleep 0.05
	done
	log "baseline $key: daemon $daemon mounted $M directly: $(mount_info "$M")"

	holder_start "b$key" "$M/held" rw
	got=$(holder "b$key" sum)
	[ "$got" = "sum $(sha "$B/held")" ] || fail "baseline $key: the held fd before the kill: '$got'"
	drop_cache "$M/held"
	sleeper "bcwd-$key" "$M/a/b/c/d/e"
	cwd=$SLEEPER
	[ "$(ls "/proc/$cwd/cwd/")" = f ] || fail "baseline $key: listing the working directory before the kill"
	ns_start "b$key" "$NS_SCRIPT" "$M/ns/x/y/z" "$T/nsview-b$key"
	got=$(ns_query "b$key" q0) || fail "baseline $key: the namespace reader did not answer"
	[ "$got" = "$(sha "$B/ns/x/y/z/data") $(stat -c %i "$B/ns/x/y/z")" ] ||
		fail "baseline $key: the namespace reader before the kill: '$got'"
	[ "$(errno_of stat "$M")" = ok ] || fail "baseline $key: a stat of the mount failed before the kill"

	log "baseline $key: killing daemon $daemon"
	kill -KILL "$daemon" || fail "baseline $key: kill failed"
	wait_pid "$daemon" 10 || fail "baseline $key: the daemon did not die"

	got=$(holder "b$key" read)
	log "baseline $key: the held fd's read after the kill: $got"
	[ "$got" = "error ENOTCONN" ] || fail "baseline $key: the held fd's read gave '$got', want ENOTCONN"
	try_cmd 10 errno_of stat "$M/fresh" || fail "baseline $key: the fresh stat did not return: $TRY_OUT"
	log "baseline $key: a fresh stat after the kill: $TRY_OUT"
	[ "$TRY_OUT" = ENOTCONN ] || fail "baseline $key: a fresh stat gave '$TRY_OUT', want ENOTCONN"
	try_cmd 10 errno_of list "/proc/$cwd/cwd" || fail "baseline $key: listing the cwd did not return: $TRY_OUT"
	log "baseline $key: listing the working directory after the kill: $TRY_OUT"
	[ "$TRY_OUT" = ENOTCONN ] || fail "baseline $key: listing the working directory gave '$TRY_OUT', want ENOTCONN"
	got=$(ns_query "b$key" q1) || fail "baseline $key: the namespace reader did not answer after the kill"
	log "baseline $key: the namespace reader after the kill: $got"
	[[ $got == "ERROR "*"Transport endpoint is not connected"* ]] ||
		fail "baseline $key: the namespace reader got '$got', want ENOTCONN"

	# close(2): passthrough has no flush method, so libfuse opened the file with noflush and no
	# FLUSH is sent; passthrough_ll's FLUSH finds the connection gone.
	got=$(holder "b$key" close)
	log "baseline $key: closing the held fd after the kill: $got"
	case $key in
	hl) [ "$got" = "closed 0" ] || fail "baseline $key: closing the held fd gave '$got', want success" ;;
	ll | tf) [ "$got" = "error ENOTCONN" ] || fail "baseline $key: closing the held fd gave '$got', want ENOTCONN" ;;
	esac
	holder_stop "b$key"
	kill "$cwd"
	wait_pid "$cwd" || fail "baseline $key: the working-directory process did not end"
	ns_stop "b$key" || fail "baseline $key: the namespace reader failed"
	try_cmd 10 umount "$M" || fail "baseline $key: umount of the dead mount failed: $TRY_OUT"
	assert_not_mounted "$M"
	log "baseline $key: ok, ENOTCONN on the held fd, a stat, the working directory and the bind mount"
}

# ---- reinit mode --------------------------------------------------------------

# check KEY ROUND: every client of the mount works, with the same bytes and numbers.
check() {
	local key=$1 r=$2 got
	got=$(holder "h$key" sum)
	[ "$got" = "sum $want_held" ] || fail "$key round $r: the held file through its fd: '$got', want sum $want_held"
	got=$(holder "h$key" write "round $r\n")
	[ "$got" = "wrote 8" ] || fail "$key round $r: writing through the held fd: '$got'"
	[ "$(head -c 8 "$B/held")" = "round $r" ] || fail "$key round $r: the store did not get the write"
	want_held=$(sha "$B/held")
	got=$(ls "/proc/$cwd_pid/cwd/" 2>&1)
	[ "$got" = f ] || fail "$key round $r: listing the working directory: '$got'"
	got=$(cat "/proc/$cwd_pid/cwd/f" 2>&1)
	[ "$got" = deep ] || fail "$key round $r: reading f in the working directory: '$got'"
	got=$(stat -c %i "/proc/$cwd_pid/cwd/" 2>&1)
	[ "$got" = "$ino_e" ] || fail "$key round $r: st_ino of the working directory: '$got', want $ino_e"
	got=$(ns_query "n$key" "q$r") || fail "$key round $r: the namespace reader did not answer"
	[ "$got" = "$want_ns $ino_ns" ] || fail "$key round $r: the namespace reader got '$got', want '$want_ns $ino_ns'"
	got=$(stat -c %i "$M/ns/x/y/z" 2>&1)
	[ "$got" = "$ino_ns" ] || fail "$key round $r: st_ino of ns/x/y/z by path: '$got', want $ino_ns"
}

# The figures of every workload, for the report at the end: "KEY/MODE ops=N errors=M ...".
LOAD_FIGURES=()
LOAD_FAILED=()

# load_stop KEY MODE...: stops the workloads, records their figures and error lines.
load_stop() {
	local key=$1 w figures errs
	shift
	for w; do
		kill -TERM "${load_pid[$key-$w]}" || fail "$key: the $w workload is gone"
	done
	for w; do
		wait_pid "${load_pid[$key-$w]}" 60 || fail "$key: the $w workload did not stop after SIGTERM"
		figures=$(tail -n 1 "$T/load-$key-$w.out")
		[[ $figures =~ ^fkload\ $w:\ ops=[0-9]+\ errors=[0-9]+$ ]] ||
			fail "$key: the $w workload's last line: '$figures' (exit $WAIT_STATUS): $(head -n 5 "$T/load-$key-$w.err")"
		errs=$(grep -v 'further errors' "$T/load-$key-$w.err" | head -n 3 | tr '\n' ';')
		LOAD_FIGURES+=("$key/$w ${figures#fkload "$w": } exit=$WAIT_STATUS${errs:+ first errors: $errs}")
		log "$key: ${LOAD_FIGURES[-1]}"
		# Every error line (fkload prints 200 at most), for the record even when the test passes.
		sed "s/^/    $key\/$w: /" "$T/load-$key-$w.err"
		if [ "$WAIT_STATUS" != 0 ] || [[ $figures != *" errors=0" ]]; then
			LOAD_FAILED+=("$key/$w")
		fi
	done
}

declare -A load_pid
RECOVERY_MS=()

# load_pause KEY: pauses both workloads of KEY and waits until they wait (fkload's SIGUSR1:
# each finishes its operation and fsyncs what it holds first).
load_pause() {
	local w
	for w in fd read; do
		kill -USR1 "${load_pid[$1-$w]}" || fail "$1: the $w workload is gone"
	done
	for w in fd read; do
		wait_match_file "$T/$1-$w.prog.paused" 60 "${load_pid[$1-$w]}" ||
			fail "$1: the $w workload did not pause: $(tail -3 "$T/load-$1-$w.err")"
	done
}

# load_resume KEY: resumes them, and waits until each made 10 operations more.
load_resume() {
	local w
	for w in fd read; do
		kill -USR2 "${load_pid[$1-$w]}" || fail "$1: the $w workload is gone"
	done
	for w in fd read; do
		wait_progress "$T/$1-$w.prog" 10 60 "${load_pid[$1-$w]}" ||
			fail "$1: the $w workload made no progress after it was resumed"
	done
}

# wait_match_file PATH TIMEOUT PID: waits until PATH exists; fails early if PID exits.
wait_match_file() {
	local deadline=$(($(now_ms) + $2 * 1000))
	until [ -e "$1" ]; do
		alive "$3" || return 1
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# reinit KEY: the daemon KEY under fusekeeper --mode=reinit, killed ROUNDS times.
reinit() {
	local key=$1 got r line store_left f
	B=$T/back-$key
	M=$T/mnt-$key
	mkdir -p "$M" "$T/nsview-$key"
	populate "$B"
	want_held=$(sha "$B/held")
	want_ns=$(sha "$B/ns/x/y/z/data")
	daemon_cmd "$key" "$B"
	# --write-through: the passthrough examples store a write before they answer it, so a
	# FLUSH or FSYNC the killed daemon left unanswered may be sent again.
	fk_start "$M" --mode=reinit --write-through --max-restarts=100 -- "${DAEMON_CMD[@]}" {}
	fk_wait READY || fail "$key: the keeper never became READY: $(tail -5 "$FK_LOG")"
	grep -qF "Mounted $M (reinit mode)" "$FK_LOG" || fail "$key: not mounted in reinit mode: $(tail -5 "$FK_LOG")"

	holder_start "h$key" "$M/held" rw
	holder_start "u$key" "$M/unl" rw
	sleeper "cwd-$key" "$M/a/b/c/d/e"
	cwd_pid=$SLEEPER
	ino_e=$(stat -c %i "$B/a/b/c/d/e")
	ino_ns=$(stat -c %i "$B/ns/x/y/z")
	ns_start "n$key" "$NS_SCRIPT" "$M/ns/x/y/z" "$T/nsview-$key"
	run_bg "load-$key-fd" "$FKLOAD" fd "$M/load/fd" --progress="$T/$key-fd.prog" --seed=$RANDOM
	load_pid[$key-fd]=$BG_PID
	run_bg "load-$key-read" "$FKLOAD" read "$M/load/read" --files=r1,r2 --expect=fusekeeper \
		--progress="$T/$key-read.prog"
	load_pid[$key-read]=$BG_PID

	# The file unlinked while open: written and read through its fd, then removed by name.
	got=$(holder "u$key" write "removed\n")
	[ "$got" = "wrote 8" ] || fail "$key: writing the file to unlink: '$got'"
	rm "$M/unl" || fail "$key: unlinking unl through the mount failed"
	[ ! -e "$B/unl" ] || fail "$key: unl is still in the store after its unlink"
	got=$(holder "u$key" read)
	[ "$got" = 'read removed\n' ] || fail "$key: the unlinked file through its fd before any kill: '$got'"

	load_pause "$key"
	check "$key" 0
	for r in $(seq "$ROUNDS"); do
		load_resume "$key"
		fk_kill_daemon 30 || fail "$key round $r: killing the daemon failed"
		fk_wait RECOVERED "" 60 || fail "$key round $r: no RECOVERED after killing daemon $FK_KILLED"
		log "$key round $r: daemon $FK_KILLED killed, $FK_LINE"
		RECOVERY_MS+=("${FK_LINE##* }")
		load_pause "$key"
		if [ "$r" = 1 ]; then
			got=$(holder "u$key" read)
			log "$key: the unlinked file's read after the recovery: $got"
			[ "$got" = "error ESTALE" ] || fail "$key: reading the unlinked file after the recovery: '$got', want ESTALE"
			got=$(holder "u$key" write "again\n")
			log "$key: the unlinked file's write after the recovery: $got"
			[ "$got" = "error ESTALE" ] || fail "$key: writing the unlinked file after the recovery: '$got', want ESTALE"
			got=$(holder "u$key" close)
			log "$key: the unlinked file's close after the recovery: $got"
			[ "$got" = "closed 0" ] || fail "$key: closing the unlinked file after the recovery: '$got'"
			holder_stop "u$key"
		fi
		check "$key" "$r"
	done
	load_resume "$key"
	load_stop "$key" fd read

	[ "$(holder "h$key" close)" = "closed 0" ] || fail "$key: closing the held file failed"
	holder_stop "h$key"
	kill "$cwd_pid"
	wait_pid "$cwd_pid" || fail "$key: the working-directory process did not end"
	# Before the unmount: the namespace holds a copy of the mount.
	ns_stop "n$key" || fail "$key: the namespace reader failed: $(tail -3 "$T/ns-n$key/err")"
	grep -h ENOTCONN "$T/ns-n$key/out" "$T"/holder-*"$key".out && fail "$key: something got ENOTCONN"

	# Every daemon that ended was one of ours, SIGKILLed: none aborted on a node ID or handle
	# of another run.
	[ "$(fk_count EXIT)" = "$ROUNDS" ] || fail "$key: $(fk_count EXIT) daemons exited, want $ROUNDS: $(grep ^EXIT "$FK_EVENTS")"
	while read -r line; do
		[[ $line =~ ^EXIT\ [0-9]+\ signal=KILL$ ]] || fail "$key: a daemon ended by itself: '$line'"
	done < <(grep '^EXIT' "$FK_EVENTS")
	alive "$(fk_daemon_pid)" || fail "$key: the last daemon died: $(tail -5 "$FK_LOG")"
	grep -E -i 'internal error|not found|abort' "$FK_LOG" && fail "$key: the daemon complained (above)"
	fk_clean_rounds "$ROUNDS"

	# What the store keeps of the unlinked file: passthrough (high-level, no hard_remove)
	# renamed it to .fuse_hidden* and its killed daemon never removed it; passthrough_ll
	# unlinked it at once.
	store_left=
	for f in "$B"/.[!.]* "$B"/*; do
		[ -e "$f" ] || continue
		case ${f##*/} in a | ns | load | held | fresh) ;; *) store_left+="${f##*/} " ;; esac
	done
	log "$key: the store's top level besides the tree: '$store_left'"
	case $key in
	hl) [[ $store_left =~ ^\.fuse_hidden[0-9a-f]+\ $ ]] ||
		fail "$key: want one .fuse_hidden* left in the store, got '$store_left'" ;;
	ll | tf) [ -z "$store_left" ] || fail "$key: want nothing left of the unlinked file, got '$store_left'" ;;
	esac

	fk_umount_exit 0
	fk_wait STOPPED "" 5 || fail "$key: no STOPPED event"
	assert_not_mounted "$M"
	log "$key: ok, $ROUNDS kills recovered in ${RECOVERY_MS[*]: -$ROUNDS} ms"
}

ran=()
reinit_ran=
if [ "$("$FKREINIT" probe)" = present ]; then
	reinit hl
	reinit ll
	reinit tf
	ran+=("the reinit part (passthrough, passthrough_ll, testfs: $ROUNDS kills each)")
	reinit_ran=1
else
	log "this kernel ($(uname -r)) has no FUSE_DEV_IOC_REINIT: the reinit part cannot run," \
		"the baseline part runs alone"
fi
baseline hl
baseline ll
baseline tf
ran+=("the baseline part (passthrough, passthrough_ll, testfs mounted directly: ENOTCONN)")
assert_all_gone

if [ -n "$reinit_ran" ]; then
	log "recovery times (ms): ${RECOVERY_MS[*]}"
	for line in "${LOAD_FIGURES[@]}"; do
		log "workload $line"
	done
	if [ "${#LOAD_FAILED[@]}" -gt 0 ]; then
		if [ "$FK_REINIT_LOAD_STRICT" = 1 ]; then
			fail "workloads with errors: ${LOAD_FAILED[*]} (figures above)"
		fi
		log "workloads with errors (not a failure with FK_REINIT_LOAD_STRICT=0):" \
			"${LOAD_FAILED[*]}"
	else
		log "workloads: no errors"
	fi
	log "ok: ran ${ran[*]}"
else
	log "ok: ran ${ran[*]} only; the reinit part needs FUSE_DEV_IOC_REINIT (the 6.1 guest's patched fuse.ko)"
fi
