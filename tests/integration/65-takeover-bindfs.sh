#!/bin/bash
# 65-takeover-bindfs: bindfs (libfuse 2, which refuses /dev/fd/N) with its own command line,
# `bindfs -f SRC MNT`: the keeper takes over the mount bindfs makes and keeps it across three
# SIGKILLs under the fd, cwd, churn and read workloads and a bind mount in another mount
# namespace (takeover_rw_rounds, tests/lib-takeover.sh); SRC must hold what the mount shows.
# Then the same without -f: bindfs goes to the background after mounting, and the keeper
# follows the process that holds its channel (FOLLOW), as it does across every kill.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-takeover.sh"

takeover_need bindfs bindfs

mkdir "$T/src" "$T/mnt"
takeover_rw_rounds 3 "$T/mnt" "$T/src" -- bindfs -f "$T/src" "$T/mnt"
[ "$(fk_count FOLLOW)" = 0 ] || fail "the keeper followed a daemon that stayed in the foreground"

log "bindfs without -f"
rm -rf "$T/src2" && mkdir "$T/src2" "$T/mnt2"
TK_NO_MOUNTPOINT=1 takeover_rw_rounds 3 "$T/mnt2" "$T/src2" -- bindfs "$T/src2" "$T/mnt2"
# Every start went to the background: the first and one per kill.
[ "$(fk_count FOLLOW)" = 4 ] || fail "expected 4 FOLLOW events, got $(fk_count FOLLOW)"
log "ok"
