#!/bin/bash
# 97-reinit-settle: in reinit mode the kernel settles a request that a SIGKILLed daemon had
# read and not answered (kernel/patches/0011, docs/kernel-api.md "Requests in flight"): sent
# again where a repeat does what one does, failed with EIO where the kernel cannot prove what
# the dead daemon did, never answered with a success that may be false.
#
# testfs --crash-file makes the daemon SIGKILL itself before or after doing one operation;
# fusekeeper --mode=reinit starts the next one. "Another client" of the store is this script
# acting on the backing dir directly, between the death and the next start (gated:
# --fail-start-if, as in 52-settle-proof). Each case checks the application's result and
# what the store holds:
#
#   sent again, success:  a stat of an uncached name (LOOKUP), read(2) of a file not yet in
#       the page cache (READ), pwrite(2) (WRITE at a position), the same through an O_SYNC
#       open (WRITE and FSYNC), ftruncate(2) (SETATTR),
#       fsync(2) and close(2) (FSYNC, FLUSH: the keeper runs with --write-through, which
#       testfs is), open(O_CREAT) without O_EXCL (CREATE), readlink(2), a directory listing
#       (READDIRPLUS), fallocate(2) with mode 0, mkdir(2), link(2), symlink(2) and
#       removexattr(2) dying before them, and setxattr(2) without flags: each before and
#       after the daemon acted; the data and the store are right and every write is in the
#       store once.
#   written again from the page cache (a third keeper, over testfs --writeback):  a write(2)
#       under the writeback cache whose WRITE, sent by sync_file_range(2), the daemon died
#       before or after storing, or which was dirty at the kill and written back while no
#       daemon ran: fsync(2) succeeds and the store holds the write once.
#   sent again, success or "already done" as EIO:  open(O_CREAT|O_EXCL), mkdir(2), link(2),
#       symlink(2), setxattr(XATTR_CREATE) and removexattr(2) succeed when the daemon died
#       before acting, and get EIO when it died after (the object exists, or the attribute is
#       gone: EIO, not EEXIST or ENODATA, which would say someone else did it); and
#       open(O_CREAT|O_EXCL) dying before it while another client creates the file gets EIO
#       (the other client's file is kept).
#   failed with EIO:  an O_APPEND write (a repeat would append twice), unlink(2), rmdir(2)
#       and rename(2), each before and after; another client's file under the name of an
#       unlink is kept; the store holds each appended line at most once, and a renamed file
#       under exactly one of its names. And, under a second keeper without --write-through,
#       fsync(2), close(2) and an O_SYNC write whose FSYNC or FLUSH the daemon left unanswered
#       (the O_SYNC write not written again where its position had moved to): the kernel
#       cannot know that the dead daemon stored what it acknowledged, so EIO, never a success
#       that may hide a lost write.
#   writes acknowledged before the death (a held fd written, the daemon SIGKILLed between
#       requests, then fsync(2) or close(2)): under --write-through, fsync succeeds; without
#       it, the first fsync(2) or the close(2) reports EIO once (the kernel cannot know that
#       the dead daemon stored the write), the next fsync succeeds, and a write an fsync
#       covered before the death reports nothing.
#   locks (a fourth keeper, testfs --locks):  a lock request the daemon left unanswered is
#       sent again through a file that held no lock (the caller holds the lock); through a
#       file whose earlier lock the reopen lost it is not sent again: EIO, and the new daemon
#       holds no lock at all for it; an unlock through such a file is sent and reports EIO.
#
# On a kernel without FUSE_DEV_IOC_REINIT it skips (exit 77): 52-settle-proof covers proxy
# mode there.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-reinit.sh"
. "$(dirname "$0")/../lib-cases.sh"
. "$(dirname "$0")/../lib-locks.sh"
# A wrong outcome ends the script at once, unless SETTLE_ALL=1.
CASES_GO_ON=${SETTLE_ALL:-0}

reinit_need
need_cmd perl
need_prog "$FKLOCK"

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

app_install

backing_xattrs "$B"

# keeper [OPTION...]: fusekeeper --mode=reinit with OPTION... over testfs with its hooks
# and the testfs options in TESTFS_OPTS.
TESTFS_OPTS=()
keeper() {
	fk_start "$M" --mode=reinit --max-restarts=100 "$@" -- "$TESTFS" --backing="$B" \
		"${TESTFS_OPTS[@]}" --crash-file="$T/crash" --fail-start-if="$GATE" {}
	fk_wait READY || fail "the keeper never became READY: $(tail -5 "$FK_LOG")"
}
# testfs stores a write before it answers it.
keeper --write-through

# want_app TEXT: the application's result is TEXT.
want_app() {
	[ "$APP_OUT" = "$1" ] || wrong "expected '$1', got: '$APP_OUT'"
}

# held_case NAME TEXT SYNC THEN: the application writes "new\n" at 0 of NAME/f through an fd
# it holds (and fsyncs if SYNC is 1); the daemon is SIGKILLed between two requests and
# another takes over; then the application does THEN (app.pl's held op). Its result is in
# APP_OUT; held_log prints what the keeper logged from the kill on.
held_case() {
	begin "$1" "$2"
	mkdir "$B/$1" && setup_file "$B/$1" || fail "cannot set up $B/$1"
	rm -f "$T/held" "$T/held.ready"
	start_app held "$M/$1/f" $'new\n' "$3" "$4" "$T/held"
	held_ready "$1"
	fk_mark
	HELD_LOG_AT=$(wc -l <"$FK_LOG")
	fk_kill_daemon || fail "$1: cannot kill the daemon"
	fk_wait RECOVERED "" 30 >/dev/null || fail "$1: no RECOVERED after the kill"
	touch "$T/held"
	app_result
	content "$B/$1/f" $'new\n1\n'
}

held_log() { tail -n "+$((HELD_LOG_AT + 1))" "$FK_LOG"; }

# both NAME TEXT SETUP CHECK OP ARGS...: two cases, NAME-before and NAME-after, the daemon
# dying before and after the operation it meets at "WHEN:OPNAME:FILE" (OPNAME and FILE from
# the globals CRASH_OP and CRASH_NAME); SETUP DIR runs first on the case's own backing
# directory $B/NAME-WHEN, the application then runs OP with ARGS (where @ stands for the
# directory in the mount), the result must be CHECK_APP, and CHECK DIR checks the store.
both() {
	local name=$1 text=$2 setup=$3 check=$4 when a args
	shift 4
	for when in before after; do
		begin "$name-$when" "$text, the daemon dies $when it"
		mkdir "$B/$name-$when" || fail "mkdir $B/$name-$when"
		"$setup" "$B/$name-$when"
		args=()
		for a; do args+=("${a//@/$M/$name-$when}"); done
		crash_case "$when:$CRASH_OP:$CRASH_NAME" "${args[@]}"
		"$check" "$B/$name-$when" "$when"
		end_case
	done
}

# ---- sent again: success -------------------------------------------------------------------

setup_file() { printf 'line1\n' >"$1/f" || fail "cannot write $1/f"; }
setup_none() { :; }

check_stat() { want_app "stat=OK size=6"; }
CRASH_OP=lookup CRASH_NAME=f
both lookup "stat(2) of an uncached name (LOOKUP)" setup_file check_stat stat @/f

check_read() { want_app 'read=line1\n'; }
CRASH_OP=read CRASH_NAME=f
both read "read(2) of a file not in the page cache (READ)" setup_file check_read read @/f

check_pwrite() {
	want_app "write=3 close=OK"
	content "$1/f" $'lixe1\n'
}
setup_pwrite() { setup_file "$1"; }
CRASH_OP=write CRASH_NAME=f
both pwrite "pwrite(2) at offset 2" setup_pwrite check_pwrite pwrite @/f 2 xe1

# An O_SYNC write is a WRITE and an FSYNC: sent again, the FSYNC succeeds under
# --write-through, and the data is in the store once, where it was written.
check_osync() {
	want_app "write=3 close=OK"
	content "$1/f" $'lixe1\n'
}
CRASH_OP=fsync CRASH_NAME=f
both osync "pwrite(2) at offset 2 through an O_SYNC open (WRITE, FSYNC)" setup_file check_osync osync @/f 2 xe1

check_truncate() {
	want_app "truncate=OK"
	content "$1/f" 'lin'
}
CRASH_OP=setattr CRASH_NAME=f
both truncate "ftruncate(2) to 3 bytes (SETATTR)" setup_file check_truncate truncate @/f 3

check_fsync() {
	want_app "write=4 fsync=OK"
	content "$1/f" $'new\n1\n'
}
CRASH_OP=fsync CRASH_NAME=f
both fsync "write and fsync(2) (FSYNC)" setup_file check_fsync fsync @/f $'new\n'

check_flush() {
	want_app "write=3 close=OK"
	content "$1/f" $'lixe1\n'
}
CRASH_OP=flush CRASH_NAME=f
both flush "pwrite(2) and close(2) (FLUSH)" setup_file check_flush pwrite @/f 2 xe1

check_create() {
	want_app "open=OK write=5 close=OK"
	content "$1/n" $'mine\n'
}
CRASH_OP=create CRASH_NAME=n
both create "open(O_CREAT) of a new name (CREATE)" setup_none check_create create @/n $'mine\n'

setup_link() { setup_file "$1" && ln -s f "$1/l" || fail "cannot set up $1/l"; }
check_readlink() { want_app "readlink=f"; }
CRASH_OP=readlink CRASH_NAME=l
both readlink "readlink(2) (READLINK)" setup_link check_readlink readlink @/l

setup_dir() { mkdir "$1/d" && : >"$1/d/a" && : >"$1/d/b" || fail "cannot set up $1/d"; }
check_readdir() { want_app "names=a,b"; }
CRASH_OP=readdirplus CRASH_NAME=d
both readdir "a listing of a directory not yet read (READDIRPLUS)" setup_dir check_readdir readdir @/d

check_fallocate() {
	want_app "fallocate=OK"
	[ "$(stat -c %s "$1/f")" = 8192 ] || wrong "$1/f is $(stat -c %s "$1/f") bytes, not 8192"
	[ "$(head -c 6 "$1/f")" = line1 ] && cmp -s <(tail -c +7 "$1/f") <(head -c 8186 /dev/zero) ||
		wrong "$1/f does not hold line1 and zeros"
}
CRASH_OP=fallocate CRASH_NAME=f
both fallocate "fallocate(2) to 8192 bytes (FALLOCATE, mode 0)" setup_file check_fallocate fallocate @/f 8192

if [ -z "$XATTR_SKIP" ]; then
	check_setxattr() {
		want_app "setxattr=OK"
		[ "$(app getxattr "$1/f" user.fk)" = "value=new" ] || wrong "user.fk of $1/f is not new"
	}
	CRASH_OP=setxattr CRASH_NAME=f
	both setxattr "setxattr(2) without flags" setup_file check_setxattr setxattr @/f user.fk new 0
else
	log "the xattr cases are skipped: $XATTR_SKIP"
	RESULTS+=("setxattr SKIP" "setxattr-create SKIP" "removexattr SKIP")
fi

# ---- sent again: "already done" is EIO, or success where the daemon had not acted ----------

check_excl() {
	if [ "$2" = before ]; then
		want_app "open=OK write=5 close=OK"
		content "$1/n" $'mine\n'
	else
		want_app "open=EIO"
		content "$1/n" ''
	fi
}
CRASH_OP=create CRASH_NAME=n
both excl "open(O_CREAT|O_EXCL) (CREATE)" setup_none check_excl excl @/n $'mine\n'

check_mkdir() {
	[ -d "$1/d" ] || wrong "$1/d is not a directory"
	if [ "$2" = before ]; then want_app "mkdir=OK"; else want_app "mkdir=EIO"; fi
}
CRASH_OP=mkdir CRASH_NAME=d
both mkdir "mkdir(2)" setup_none check_mkdir mkdir @/d

check_link() {
	if [ "$2" = before ]; then want_app "link=OK"; else want_app "link=EIO"; fi
	[ "$(stat -c %i "$1/g" 2>&1)" = "$(stat -c %i "$1/f")" ] || wrong "$1/g is not a link of $1/f"
}
CRASH_OP=link CRASH_NAME=g
both link "link(2) (LINK)" setup_file check_link link @/f @/g

check_symlink() {
	if [ "$2" = before ]; then want_app "symlink=OK"; else want_app "symlink=EIO"; fi
	[ "$(readlink "$1/l")" = f ] || wrong "$1/l is not a symlink to f"
}
CRASH_OP=symlink CRASH_NAME=l
both symlink "symlink(2) (SYMLINK)" setup_file check_symlink symlink f @/l

if [ -z "$XATTR_SKIP" ]; then
	check_setxattr_create() {
		if [ "$2" = before ]; then want_app "setxattr=OK"; else want_app "setxattr=EIO"; fi
		[ "$(app getxattr "$1/f" user.fk)" = "value=new" ] || wrong "user.fk of $1/f is not new"
	}
	CRASH_OP=setxattr CRASH_NAME=f
	both setxattr-create "setxattr(XATTR_CREATE) of a new attribute" setup_file \
		check_setxattr_create setxattr @/f user.fk new 1

	setup_xattr() {
		setup_file "$1"
		[ "$(app setxattr "$1/f" user.fk old 0)" = "setxattr=OK" ] || fail "cannot set user.fk on $1/f"
	}
	check_removexattr() {
		if [ "$2" = before ]; then want_app "removexattr=OK"; else want_app "removexattr=EIO"; fi
		[ "$(app getxattr "$1/f" user.fk)" = "getxattr=ENODATA" ] || wrong "user.fk of $1/f is still there"
	}
	CRASH_OP=removexattr CRASH_NAME=f
	both removexattr "removexattr(2) (REMOVEXATTR)" setup_xattr check_removexattr removexattr @/f user.fk
fi

begin excl-other "open(O_CREAT|O_EXCL), the daemon dies before it; another client creates the file"
mkdir "$B/excl-other" || fail "mkdir $B/excl-other"
other_creates() { printf 'other\n' >"$B/excl-other/n"; }
gated_case before:create:n other_creates excl "$M/excl-other/n" $'mine\n'
want_app "open=EIO"
content "$B/excl-other/n" $'other\n'
end_case

# ---- failed with EIO -----------------------------------------------------------------------

check_append() {
	want_app "write=EIO close=OK"
	if [ "$2" = before ]; then content "$1/f" $'line1\n'; else content "$1/f" $'line1\nmine\n'; fi
}
CRASH_OP=write CRASH_NAME=f
both append "an O_APPEND write (WRITE)" setup_file check_append append @/f $'mine\n'

# removed_if_after DIR WHEN OP KIND NAME: OP was answered EIO; NAME is still there (a
# directory if KIND is dir) if the daemon died before OP, gone if after.
removed_if_after() {
	want_app "$3=EIO"
	if [ "$2" = after ]; then
		[ ! -e "$1/$5" ] || wrong "$1/$5 is still there"
	elif [ "$4" = dir ]; then
		[ -d "$1/$5" ] || wrong "$1/$5 was removed"
	else
		[ -e "$1/$5" ] || wrong "$1/$5 was removed"
	fi
}
check_unlink() { removed_if_after "$1" "$2" unlink file f; }
CRASH_OP=unlink CRASH_NAME=f
both unlink "unlink(2)" setup_file check_unlink unlink @/f

check_rmdir() { removed_if_after "$1" "$2" rmdir dir d; }
setup_emptydir() { mkdir "$1/d" || fail "cannot set up $1/d"; }
CRASH_OP=rmdir CRASH_NAME=d
both rmdir "rmdir(2) (RMDIR)" setup_emptydir check_rmdir rmdir @/d

check_rename() {
	want_app "rename=EIO"
	if [ "$2" = before ]; then
		content "$1/f" $'line1\n'
		[ ! -e "$1/g" ] || wrong "$1/g exists"
	else
		content "$1/g" $'line1\n'
		[ ! -e "$1/f" ] || wrong "$1/f is still there"
	fi
}
CRASH_OP=rename CRASH_NAME=f
both rename "rename(2)" setup_file check_rename rename @/f @/g

begin unlink-other "unlink(2), the daemon dies before it; another client replaces the file"
mkdir "$B/unlink-other" && setup_file "$B/unlink-other" || fail "cannot set up $B/unlink-other"
other_replaces() { printf 'other\n' >"$B/unlink-other/g" && mv "$B/unlink-other/g" "$B/unlink-other/f"; }
GATED_EARLY=1 gated_case before:unlink:f other_replaces unlink "$M/unlink-other/f"
want_app "unlink=EIO"
content "$B/unlink-other/f" $'other\n'
end_case

# ---- writes acknowledged before the daemon died ---------------------------------------------

# --write-through: testfs stored the write before it answered; nothing to report.
held_case held-durable "a write through a held fd, the daemon killed, then fsync(2), --write-through" 0 fsync
want_app "write=4 fsync=OK fsync=OK close=OK"
! held_log | grep -q "held changes the dead daemon acknowledged" ||
	wrong "under --write-through the keeper's log says changes may be lost"
end_case

# Nothing the settled requests did was left in a state that breaks the mount.
[ "$(cat "$M/read-after/f")" = line1 ] || fail "$M/read-after/f cannot be read at the end"
[ "$(fk_count GAVEUP)" = 0 ] || fail "the keeper gave up"
fk_umount_exit 0
assert_not_mounted "$M"

# ---- without --write-through, a sync left unanswered is EIO -------------------------------

keeper
check_fsync_eio() {
	want_app "write=4 fsync=EIO"
	content "$1/f" $'new\n1\n'
}
begin fsync-eio "write and fsync(2), the daemon dies after the FSYNC, no --write-through"
mkdir "$B/fsync-eio" && setup_file "$B/fsync-eio" || fail "cannot set up $B/fsync-eio"
crash_case after:fsync:f fsync "$M/fsync-eio/f" $'new\n'
check_fsync_eio "$B/fsync-eio"
end_case

# The write went through and its sync failed: write(2) says EIO, and the data is not written
# again (at the position the write had moved to), so the store holds it once, where written.
begin osync-eio "pwrite(2) through an O_SYNC open, the daemon dies after the FSYNC, no --write-through"
mkdir "$B/osync-eio" && setup_file "$B/osync-eio" || fail "cannot set up $B/osync-eio"
crash_case after:fsync:f osync "$M/osync-eio/f" 2 xe1
want_app "write=EIO close=EIO"
content "$B/osync-eio/f" $'lixe1\n'
end_case

begin flush-eio "pwrite(2) and close(2), the daemon dies after the FLUSH, no --write-through"
mkdir "$B/flush-eio" && setup_file "$B/flush-eio" || fail "cannot set up $B/flush-eio"
crash_case after:flush:f pwrite "$M/flush-eio/f" 2 xe1
want_app "write=3 close=EIO"
content "$B/flush-eio/f" $'lixe1\n'
end_case

# Without --write-through, a write the dead daemon acknowledged and no sync covered may be
# lost (patch 0012): the next fsync(2), or close(2), reports EIO once.
held_case held-unsynced "a write through a held fd, the daemon killed, then fsync(2) twice" 0 fsync
want_app "write=4 fsync=EIO fsync=OK close=OK"
# The keeper says so, with the count BEGIN returned.
held_log | grep -q "1 file or directory held changes the dead daemon acknowledged" ||
	wrong "the keeper's log does not say that a file held unsynced changes: $(held_log | tail -5)"
end_case

held_case held-unsynced-close "a write through a held fd, the daemon killed, then close(2)" 0 close
want_app "write=4 close=EIO"
end_case

# An fsync that succeeded before the death covers the write.
held_case held-synced "a write and fsync(2) through a held fd, the daemon killed, then fsync(2)" 1 fsync
want_app "write=4 fsync=OK fsync=OK fsync=OK close=OK"
end_case

[ "$(fk_count GAVEUP)" = 0 ] || fail "the second keeper gave up"
fk_umount_exit 0
assert_not_mounted "$M"

# ---- a writeback left unanswered is written again ------------------------------------------

# With the writeback cache a write(2) only dirties its page; the kernel sends it later in a
# background WRITE that no caller waits on (here sync_file_range(2) sends it). The daemon dies
# just before or just after storing that WRITE: the kernel writes the page again to the next
# daemon (kernel/patches/0015), rather than fail the file's next fsync(2); the store holds
# the write, once, where it was written.
TESTFS_OPTS=(--writeback)
keeper --write-through
# The page of writeback-queued must still be dirty at the kill.
bdi_hold_dirty "$M"
for when in before after; do
	begin "writeback-$when" "a write sent by writeback (sync_file_range(2)), the daemon dies $when its WRITE"
	mkdir "$B/writeback-$when" && setup_file "$B/writeback-$when" || fail "cannot set up $B/writeback-$when"
	rm -f "$T/held" "$T/held.ready"
	crash_arm "$when:write:f"
	start_app held "$M/writeback-$when/f" $'new\n' range fsync "$T/held"
	crash_died
	crash_recovered
	touch "$T/held"
	app_result
	want_app "write=4 range=OK fsync=OK fsync=OK close=OK"
	content "$B/writeback-$when/f" $'new\n1\n'
	end_case
done
# Pages dirtied before the kill and written back while no daemon runs (the gate holds the next
# one back; the application's sync_file_range(2) sends them): the only handle is the dead
# daemon's, which the kernel refuses to queue a WRITE through, so the range becomes a job of
# writing it again from the page cache, done once the next daemon serves.
begin writeback-queued "a write dirty at the kill, written back while no daemon runs"
mkdir "$B/writeback-queued" && setup_file "$B/writeback-queued" || fail "cannot set up $B/writeback-queued"
rm -f "$T/held" "$T/held.ready" "$T/held.ranged" "$T/held.more"
start_app held "$M/writeback-queued/f" $'new\n' 0 range-fsync "$T/held" read
held_ready writeback-queued
file_is "$B/writeback-queued/f" $'line1\n' ||
	fail "writeback-queued: the page was written back before the kill, so the case tests nothing: '$FILE_GOT'"
SPEC="writeback-queued: the kill"
fk_mark
gate_on
fk_kill_daemon || fail "writeback-queued: cannot kill the daemon"
gate_refused
touch "$T/held"
deadline=$(($(now_ms) + 20000))
until [ -e "$T/held.ranged" ]; do
	alive "$APP_PID" && [ "$(now_ms)" -lt "$deadline" ] ||
		fail "writeback-queued: sync_file_range(2) did not return while no daemon ran: $(cat "$T/$APP_NAME.out" "$T/$APP_NAME.err")"
	sleep 0.02
done
file_is "$B/writeback-queued/f" $'line1\n' || wrong "the store got the write while no daemon ran: '$FILE_GOT'"
gate_off
fk_wait RECOVERED "" 60 >/dev/null || fail "writeback-queued: no RECOVERED"
touch "$T/held.more"
app_result
want_app 'read=line1\n write=4 range=OK fsync=OK fsync=OK close=OK'
content "$B/writeback-queued/f" $'new\n1\n'
end_case
[ "$(fk_count GAVEUP)" = 0 ] || fail "the writeback keeper gave up"
fk_umount_exit 0
assert_not_mounted "$M"

# ---- locks the daemon keeps (testfs --locks) ------------------------------------------------

TESTFS_OPTS=(--locks)
keeper

# lock_case NAME TEXT HELD CMD: holder A of NAME/f, holding [0,10) first if HELD is 1, sends
# CMD (fklock's); the daemon dies after doing it and before answering. Leaves A's answer in
# A_OUT; B is a holder of its own.
lock_case() {
	begin "$1" "$2"
	mkdir "$B/$1" && setup_file "$B/$1" || fail "cannot set up $B/$1"
	lk_start A "$M/$1/f"
	lk_start B "$M/$1/f"
	[ "$3" = 1 ] && lk A "lock wr 0 10" ok
	crash_arm after:setlk:f
	lk_send A "$4"
	crash_died
	crash_recovered
	lk_answer A 20 || wrong "A's lock request was not answered 20 s after the recovery"
	A_OUT=$LK_OUT
}

# Granted by the new daemon, the lock is the caller's.
lock_case lock-again "a lock request through a file that held none" 0 "lock wr 20 10"
expect "A's lock wr 20 10" "$A_OUT" ok
lk B "test wr 20 10" "locked wr 20 10"
lk_quit A
lk_quit B
end_case

# The reopen lost [0,10): the request is not sent again, and the new daemon holds no lock
# that A, told EIO, does not know of. A's next lock is granted.
lock_case lock-lost "a lock request through a file whose earlier lock the reinit lost" 1 "lock wr 20 10"
expect "A's lock wr 20 10" "$A_OUT" "error EIO"
lk B "test wr 0 30" unlocked
lk A "lock wr 40 10" ok
lk B "test wr 40 10" "locked wr 40 10"
lk_quit A
lk_quit B
end_case

# An unlock is sent again even so (the new daemon must hold nothing), and then reports the loss.
lock_case unlock-lost "an unlock through a file whose lock the reinit lost" 1 "lock un 0 10"
expect "A's lock un 0 10" "$A_OUT" "error EIO"
lk B "test wr 0 30" unlocked
lk A "lock wr 0 10" ok
lk B "test wr 0 10" "locked wr 0 10"
lk_quit A
lk_quit B
end_case

# ---- the end -------------------------------------------------------------------------------

cases_report

[ "$(fk_count GAVEUP)" = 0 ] || fail "the keeper over testfs --locks gave up"
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
