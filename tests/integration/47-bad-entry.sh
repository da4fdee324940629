#!/bin/bash
# 47-bad-entry: a request that creates (MKDIR, CREATE, SYMLINK, MKNOD, LINK)
# must be answered with the entry of what it made; node ID 0 there (a negative
# entry, which only a LOOKUP may answer) breaks the protocol. The kernel
# refuses such an entry with EIO, but after a CREATE the keeper had recorded a
# handle the kernel never got, and so never closes: the daemon's open file and
# the keeper's table entry stayed for good. The keeper must refuse the answer,
# say so and replace the daemon; once fkchaos is calm, creating works.
# timeout: 120
. "$(dirname "$0")/../lib.sh"

FKCHAOS=$BUILD_DIR/tests/fkchaos
need_prog "$TESTFS"
need_prog "$FKCHAOS"

B=$T/back
mkdir "$B"
# open(O_CREAT) as the shell does it: touch would find the file the daemon made
# before its answer was refused, and succeed.
create() {
	: >"$1"
}
# opcode:command — MKDIR 9, CREATE 35, SYMLINK 6.
for c in "9:mkdir" "35:create" "6:ln -s target"; do
	opcode=${c%%:*}
	cmd=${c#*:}
	M=$T/mnt-$opcode
	mkdir "$M"
	: >"$T/broken"
	rm -f "$T/calm"
	fk_start "$M" --max-restarts=100 -- "$FKCHAOS" --rate=100 --opcodes="$opcode" \
		--kinds=nodeid0 --calm-if="$T/calm" --log="$T/broken" -- "$TESTFS" --backing="$B" {}
	fk_wait READY || fail "$cmd: the keeper never became READY"
	# shellcheck disable=SC2086
	try_cmd 10 $cmd "$M/new-$opcode"
	rc=$?
	log "$cmd: exit $rc: $TRY_OUT"
	[ "$rc" != 124 ] || fail "$cmd: hung"
	[ "$rc" != 0 ] || fail "$cmd succeeded on an answer without its node"
	bad=$(cut -d' ' -f1 "$T/broken")
	[ -n "$bad" ] || fail "$cmd: fkchaos broke no answer"
	fk_wait EXIT "$bad" 10 >/dev/null || fail "$cmd: daemon $bad was not killed"
	grep -q "Daemon $bad broke the FUSE protocol" "$FK_LOG" ||
		fail "$cmd: the keeper did not say daemon $bad broke the protocol"
	touch "$T/calm"
	fk_wait RECOVERED "" 30 || fail "$cmd: no daemon took over"
	# shellcheck disable=SC2086
	try_cmd 10 $cmd "$M/again-$opcode" || fail "$cmd failed once calm: $TRY_OUT"
	[ -e "$M/again-$opcode" ] || [ -L "$M/again-$opcode" ] || fail "$cmd made nothing once calm"
	fk_umount_exit 0
	assert_not_mounted "$M"
done
assert_all_gone
log "ok"
