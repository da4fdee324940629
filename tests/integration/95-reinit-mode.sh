#!/bin/bash
# 95-reinit-mode: fusekeeper --mode=reinit. On a kernel without FUSE_DEV_IOC_REINIT (the
# stock ones: the host, Debian's 6.12, 6.1 without kernel/patches) it refuses to start: exit
# status 1 before anything is mounted or any daemon started, with one line that names
# FUSE_DEV_IOC_REINIT and points to --mode=proxy. On the 6.1 guest's patched fuse.ko, testfs
# is SIGKILLed five times while idle clients hold the mount:
#  - a file held open (read, then written, through the same fd after every recovery;
#    byte-exact, the bytes reach the store);
#  - a process whose working directory is two levels down (listed after every recovery);
#  - a bind mount of a sub-directory in another mount namespace (a file read through it);
#  - st_ino of that sub-directory, the same after every recovery;
# and nothing ever gets ENOTCONN or other data. At the end an unmount stops the keeper
# (exit 0) and nothing is left.
# --mode=auto, the default, is checked on both: reinit only where the kernel has the ioctl
# and --write-through is given (and then it recovers from a kill), proxy otherwise, and the
# log says which and why.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-reinit.sh"

need_prog "$TESTFS"
need_prog "$FKREINIT"
need_cmd unshare sha256sum

ROUNDS=5
M=$T/mnt
B=$T/back
mkdir "$M" "$B"

# auto_is MODE WHY [OPTION...]: a keeper started with OPTION... and no --mode serves in MODE
# and logs WHY; with reinit, it also recovers from a kill. Unmounted after.
auto_is() {
	local mode=$1 why=$2
	shift 2
	fk_start "$M" "$@" -- "$TESTFS" --backing="$B" {}
	fk_wait READY || fail "auto $*: the keeper never became READY: $(tail -5 "$FK_LOG")"
	grep -qF "Mode: $mode (--mode=auto: $why" "$FK_LOG" ||
		fail "auto $*: want mode $mode because '$why', the log says: $(grep 'Mode:' "$FK_LOG")"
	grep -qF "Mounted $M ($mode mode)" "$FK_LOG" || fail "auto $*: not mounted in $mode mode"
	grep -qx "MODE $mode" "$FK_EVENTS" || fail "auto $*: no MODE $mode event: $(head -3 "$FK_EVENTS")"
	if [ "$mode" = reinit ]; then
		fk_kill_daemon || fail "auto $*: killing the daemon failed"
		fk_wait RECOVERED "" 60 || fail "auto $*: no RECOVERED"
	fi
	[ -d "$M/." ] || fail "auto $*: the mount does not answer"
	fk_umount_exit 0
}

if [ "$("$FKREINIT" probe)" = absent ]; then
	auto_is proxy "this kernel has no FUSE_DEV_IOC_REINIT" --write-through
	try_cmd 20 "$FK" --mode=reinit "$M" -- sh -c ': >"$1"; exec "$2" --backing="$3" "$4"' \
		sh "$T/started" "$TESTFS" "$B" {}
	status=$?
	log "fusekeeper --mode=reinit exited $status: $TRY_OUT"
	[ "$status" = 1 ] || fail "--mode=reinit exited with status $status, expected 1: $TRY_OUT"
	[[ $TRY_OUT == *FUSE_DEV_IOC_REINIT* ]] || fail "the message does not name the ioctl: $TRY_OUT"
	[[ $TRY_OUT == *--mode=proxy* ]] || fail "the message does not point to --mode=proxy: $TRY_OUT"
	[ "$(printf '%s\n' "$TRY_OUT" | grep -c '')" = 1 ] || fail "expected one line of explanation: $TRY_OUT"
	[ ! -e "$T/started" ] || fail "the daemon was started although the mode was refused"
	assert_not_mounted "$M" "$M was mounted although the mode was refused"
	log "ok: refused on $(uname -r), which has no FUSE_DEV_IOC_REINIT"
	exit 0
fi

mkdir -p "$B/cwd/deep" "$B/ns"
echo deep >"$B/cwd/deep/f"
head -c 300000 /dev/urandom >"$B/ns/data"
head -c 200000 /dev/urandom >"$B/held"
want=$(sha256sum <"$B/ns/data" | cut -d' ' -f1)
want_held=$(sha256sum <"$B/held" | cut -d' ' -f1)

fk_start "$M" --mode=reinit --max-restarts=100 -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY: $(tail -5 "$FK_LOG")"

holder_start h "$M/held" rw
run_bg cwd sh -c 'cd "$1" && exec sleep 600' sh "$M/cwd/deep"
cwd_pid=$BG_PID
ino_ns=$(stat -c %i "$M/ns")

ns_reader_start "$M/ns"

# check ROUND: every client works, with the same data and numbers.
check() {
	local got
	got=$(holder h sum)
	[ "$got" = "sum $want_held" ] || fail "round $1: the held file through its fd: '$got'"
	got=$(holder h write "round $1\n")
	[ "$got" = "wrote 8" ] || fail "round $1: writing through the held fd: '$got'"
	[ "$(head -c 8 "$B/held")" = "round $1" ] || fail "round $1: the store did not get the write"
	want_held=$(sha256sum <"$B/held" | cut -d' ' -f1)
	[ "$(ls "/proc/$cwd_pid/cwd/")" = f ] ||
		fail "round $1: listing the working directory: '$(ls "/proc/$cwd_pid/cwd/" 2>&1)'"
	got=$(ns_query "$1") || fail "round $1: the namespace reader did not answer"
	[ "$got" = "$want $ino_ns" ] || fail "round $1: the namespace reader got '$got', want '$want $ino_ns'"
	[ "$(stat -c %i "$M/ns")" = "$ino_ns" ] || fail "round $1: st_ino of ns changed"
}

check 0
for round in $(seq "$ROUNDS"); do
	fk_kill_daemon || fail "round $round: killing the daemon failed"
	fk_wait RECOVERED "" 60 || fail "round $round: no RECOVERED after killing daemon $FK_KILLED"
	log "round $round: daemon $FK_KILLED killed, $FK_LINE"
	check "$round"
done

holder_stop h
kill "$cwd_pid"
wait_pid "$cwd_pid" || fail "the working-directory process did not end"
ns_reader_stop
grep -q ENOTCONN "$T"/*.out && fail "something got ENOTCONN: $(grep -l ENOTCONN "$T"/*.out)"

fk_umount_exit 0
fk_wait STOPPED "" 5 || fail "no STOPPED event"
assert_not_mounted "$M"

auto_is proxy "the kernel has FUSE_DEV_IOC_REINIT, but of the writes a daemon acknowledged before storing them reinit mode writes again only what the page cache still holds"
auto_is reinit "the kernel has FUSE_DEV_IOC_REINIT and --write-through is given" --write-through
assert_all_gone
log "ok"
