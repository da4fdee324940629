#!/bin/bash
# 44-bad-listing: a READDIR answer with a malformed record breaks the protocol.
# baddaemon lists its root with READDIR (no READDIRPLUS); fkchaos in front of
# it breaks the first record of each listing: a name of 0 bytes, a name over
# 1024 bytes, or the record cut short. The kernel would take a record cut
# short for the end of the listing and show an empty directory: a listing
# that succeeds and is wrong. The keeper must refuse each (ls fails with EIO),
# say so and replace the daemon; once fkchaos is calm, ls lists "good".
# timeout: 120
. "$(dirname "$0")/../lib.sh"

FKCHAOS=$BUILD_DIR/tests/fkchaos
need_prog "$BADDAEMON"
need_prog "$FKCHAOS"

for kind in ${FK_LISTING_KINDS:-noname longname cutrecord}; do
	M=$T/mnt-$kind
	mkdir "$M"
	: >"$T/broken"
	fk_start "$M" --max-restarts=100 -- "$FKCHAOS" --rate=100 --opcodes=28 --kinds="$kind" \
		--calm-if="$T/calm" --log="$T/broken" -- "$BADDAEMON" {}
	fk_wait READY || fail "$kind: the keeper never became READY"
	try_cmd 10 ls "$M"
	rc=$?
	log "$kind: ls exit $rc: $TRY_OUT"
	[ "$rc" != 124 ] || fail "$kind: ls hung"
	[ "$rc" != 0 ] || fail "$kind: ls of a malformed listing succeeded, listing '$TRY_OUT'"
	grep -q "Input/output error" <<<"$TRY_OUT" || fail "$kind: ls did not fail with EIO"
	bad=$(cut -d' ' -f1 "$T/broken")
	[ -n "$bad" ] || fail "$kind: fkchaos broke no listing"
	fk_wait EXIT "$bad" 10 >/dev/null || fail "$kind: daemon $bad was not killed"
	grep -q "READDIR (unique [0-9]*) with a record that does not fit" "$FK_LOG" ||
		fail "$kind: the keeper did not say what was wrong"
	grep -q "Daemon $bad broke the FUSE protocol" "$FK_LOG" ||
		fail "$kind: the keeper did not say daemon $bad broke the protocol"
	touch "$T/calm"
	fk_wait RECOVERED "" 30 || fail "$kind: no daemon took over"
	try_cmd 10 ls "$M" || fail "$kind: ls failed once calm: $TRY_OUT"
	[ "$TRY_OUT" = good ] || fail "$kind: ls lists '$TRY_OUT' once calm, expected good"
	rm "$T/calm"
	fk_umount_exit 0
	assert_not_mounted "$M"
done
assert_all_gone
log "ok"
