#!/bin/bash
# 73-takeover-squashfuse: squashfuse (libfuse 3, read-only) with its own command line,
# `squashfuse IMAGE MNT`, without -f: it goes to the background after mounting and the keeper
# follows it. Three SIGKILLs under a held fd re-read with pread, a working directory inside,
# fresh opens and a bind mount in another mount namespace (takeover_ro_rounds,
# tests/lib-takeover.sh), every read checked against the image's files.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-takeover.sh"

takeover_need squashfuse squashfuse
fkd_require mksquashfs squashfs-tools

mkdir "$T/tree" "$T/mnt"
takeover_ro_tree "$T/tree"
mksquashfs "$T/tree" "$T/image.sqfs" -quiet -no-progress >/dev/null || fail "mksquashfs failed"
takeover_ro_rounds 3 "$T/mnt" -- squashfuse "$T/image.sqfs" "$T/mnt"
[ "$(fk_count FOLLOW)" = 4 ] || fail "expected 4 FOLLOW events, got $(fk_count FOLLOW)"
log "ok"
