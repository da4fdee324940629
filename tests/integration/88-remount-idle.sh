#!/bin/bash
# 88-remount-idle: in remount mode the keeper is not in the data path, and must not
# even wake up for it. A walk of 1500 names never seen (a LOOKUP each, and more) may
# wake the keeper's threads a few times, not once per request: an fd of the
# connection in one of its poll or epoll sets would
# (FUSE wakes every waiter on each request queued), and that cost the walk of
# small files 1.4 times the direct mount's time.
# timeout: 120
. "$(dirname "$0")/../lib-remount.sh"
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
rm_need_remount

M=$T/mnt
B=$T/back
mkdir -p "$M" "$B/d"
(cd "$B/d" && touch $(seq -f 'f%g' 1 1500))

fk_start "$M" --mode=remount -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"

# Context switches of every thread of the keeper, voluntary and not.
switches() {
	local t n=0 v
	for t in /proc/"$FK_PID"/task/*; do
		for v in $(awk '/ctxt_switches/ { print $2 }' "$t/status" 2>/dev/null); do
			n=$((n + v))
		done
	done
	echo "$n"
}
round() {
	local before after
	before=$(switches)
	find "$M/d" -type f -print0 | xargs -0 stat -c %i >/dev/null || fail "the walk failed"
	after=$(switches)
	log "$1: the keeper switched $((after - before)) times during a walk of 1500 new names"
	[ $((after - before)) -lt 300 ] || fail "$1: the keeper wakes for the data path"
}
round "first daemon"
fk_kill_daemon || fail "killing the daemon failed"
fk_wait RECOVERED "" 30 || fail "no RECOVERED"
# New names: the kernel asks again.
(cd "$B/d" && rm -f f* && touch $(seq -f 'g%g' 1 1500))
round "after a swap"

fk_umount_exit 0
assert_all_gone
log "ok"
