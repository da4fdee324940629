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
#       the page cache (READ), pwrite(2) (WRITE at a position), ftruncate(2) (SETATTR),
#       fsync(2) and close(2) (FSYNC, FLUSH: the keeper runs with --write-through, which
#       testfs is), open(O_CREAT) without O_EXCL (CREATE), mkdir(2) dying before it, and
#       setxattr(2) without flags: each before and after the daemon acted; the data and the
#       store are right and every write is in the store once.
#   sent again, "already done" is EIO:  open(O_CREAT|O_EXCL), mkdir(2) and
#       setxattr(XATTR_CREATE) dying after the daemon acted (the object exists: EIO, not
#       EEXIST, which would say someone else made it), and open(O_CREAT|O_EXCL) dying before
#       it while another client creates the file (EIO; the other client's file is kept).
#   failed with EIO:  an O_APPEND write (a repeat would append twice), unlink(2) and
#       rename(2), each before and after; another client's file under the name of an
#       unlink is kept; the store holds each appended line at most once, and a renamed file
#       under exactly one of its names. And, under a second keeper without --write-through,
#       fsync(2) and close(2) whose FSYNC or FLUSH the daemon left unanswered: the kernel
#       cannot know that the dead daemon stored what it acknowledged, so EIO, never a success
#       that may hide a lost write.
#
# On a kernel without FUSE_DEV_IOC_REINIT it skips (exit 77): 52-settle-proof covers proxy
# mode there.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-reinit.sh"
. "$(dirname "$0")/../lib-cases.sh"
# A wrong outcome ends the script at once, unless SETTLE_ALL=1.
CASES_GO_ON=${SETTLE_ALL:-0}

reinit_need
need_cmd perl

M=$T/mnt
B=$T/back
mkdir "$M" "$B"

app_install

backing_xattrs "$B"

# keeper [OPTION...]: fusekeeper --mode=reinit with OPTION... over testfs with its hooks.
keeper() {
	fk_start "$M" --mode=reinit --max-restarts=100 "$@" -- "$TESTFS" --backing="$B" \
		--crash-file="$T/crash" --fail-start-if="$GATE" {}
	fk_wait READY || fail "the keeper never became READY: $(tail -5 "$FK_LOG")"
}
# testfs stores a write before it answers it.
keeper --write-through

# want_app TEXT: the application's result is TEXT.
want_app() {
	[ "$APP_OUT" = "$1" ] || wrong "expected '$1', got: '$APP_OUT'"
}

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

if [ -z "$XATTR_SKIP" ]; then
	check_setxattr() {
		want_app "setxattr=OK"
		[ "$(app getxattr "$1/f" user.fk)" = "value=new" ] || wrong "user.fk of $1/f is not new"
	}
	CRASH_OP=setxattr CRASH_NAME=f
	both setxattr "setxattr(2) without flags" setup_file check_setxattr setxattr @/f user.fk new 0
else
	log "the xattr cases are skipped: $XATTR_SKIP"
	RESULTS+=("setxattr SKIP" "setxattr-create SKIP")
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

if [ -z "$XATTR_SKIP" ]; then
	check_setxattr_create() {
		if [ "$2" = before ]; then want_app "setxattr=OK"; else want_app "setxattr=EIO"; fi
		[ "$(app getxattr "$1/f" user.fk)" = "value=new" ] || wrong "user.fk of $1/f is not new"
	}
	CRASH_OP=setxattr CRASH_NAME=f
	both setxattr-create "setxattr(XATTR_CREATE) of a new attribute" setup_file \
		check_setxattr_create setxattr @/f user.fk new 1
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

check_unlink() {
	want_app "unlink=EIO"
	if [ "$2" = before ]; then
		[ -e "$1/f" ] || wrong "$1/f was removed"
	else
		[ ! -e "$1/f" ] || wrong "$1/f is still there"
	fi
}
CRASH_OP=unlink CRASH_NAME=f
both unlink "unlink(2)" setup_file check_unlink unlink @/f

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

begin flush-eio "pwrite(2) and close(2), the daemon dies after the FLUSH, no --write-through"
mkdir "$B/flush-eio" && setup_file "$B/flush-eio" || fail "cannot set up $B/flush-eio"
crash_case after:flush:f pwrite "$M/flush-eio/f" 2 xe1
want_app "write=3 close=EIO"
content "$B/flush-eio/f" $'lixe1\n'
end_case

# ---- the end -------------------------------------------------------------------------------

cases_report

[ "$(fk_count GAVEUP)" = 0 ] || fail "the second keeper gave up"
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
