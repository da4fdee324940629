#!/bin/bash
# 89-remount-old-kernel: on a kernel older than 6.5 (no MOVE_MOUNT_BENEATH), --mode=remount
# refuses to start: exit status 1 before anything is mounted or any daemon started, with a
# message that names MOVE_MOUNT_BENEATH and points to --mode=proxy; and proxy mode, on the
# same kernel and mountpoint, then starts and serves. Needs an old kernel: Debian 12's
# 6.1, as vm/run.sh boots it; on 6.5 or later it is skipped (80-88 test remount mode there).
# timeout: 60
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"

rel=$(uname -r)
[[ $rel =~ ^([0-9]+)\.([0-9]+) ]] || fail "cannot read the kernel version from '$rel'"
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
if [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -ge 5 ]; }; then
	skip "needs a kernel older than 6.5, without MOVE_MOUNT_BENEATH (this is $rel; make vmcheck boots 6.1)"
fi

M=$T/mnt
B=$T/back
mkdir "$M" "$B"
echo "served" >"$B/file"

# The daemon leaves a mark if it is ever started.
try_cmd 20 "$FK" --mode=remount "$M" -- sh -c ': >"$1"; exec "$2" --backing="$3" "$4"' \
	sh "$T/started" "$TESTFS" "$B" {}
status=$?
log "fusekeeper --mode=remount exited $status: $TRY_OUT"
[ "$status" = 1 ] || fail "--mode=remount exited with status $status, expected 1: $TRY_OUT"
[[ $TRY_OUT == *MOVE_MOUNT_BENEATH* ]] || fail "the message does not name MOVE_MOUNT_BENEATH: $TRY_OUT"
[[ $TRY_OUT == *--mode=proxy* ]] || fail "the message does not point to --mode=proxy: $TRY_OUT"
[[ $TRY_OUT == *6.5* ]] || fail "the message does not say which kernel is needed (6.5): $TRY_OUT"
[ "$(printf '%s\n' "$TRY_OUT" | grep -c '')" = 1 ] || fail "expected one line of explanation: $TRY_OUT"
[ ! -e "$T/started" ] || fail "the daemon was started although the mode was refused"
assert_not_mounted "$M" "$M was mounted although the mode was refused"

# The mode the message points to works here.
fk_start "$M" --mode=proxy -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "proxy mode did not become READY on $rel"
file_is "$M/file" "served
" || fail "proxy mode serves '$FILE_GOT'"
fk_umount_exit 0
log "ok: remount mode refused on $rel with: $TRY_OUT"
