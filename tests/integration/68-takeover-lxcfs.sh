#!/bin/bash
# 68-takeover-lxcfs: lxcfs with the command line of its systemd unit (`lxcfs MOUNTPOINT`, no
# -f, no {}; Debian's lxcfs.service runs `/usr/bin/lxcfs /var/lib/lxcfs`), and the keeper
# given no MOUNTPOINT: `fusekeeper -- lxcfs DIR`. The scenario of 60-lxcfs-kill
# (lxcfs_kill_rounds, tests/lib-lxcfs.sh): a held fd, a working directory, a container-like
# mount namespace with lxcfs's files bind-mounted over its /proc, and readers, across three
# SIGKILLs with no error.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-daemons.sh"
. "$(dirname "$0")/../lib-lxcfs.sh"

need_prog "$FK"
need_prog "$FKLOAD"
fkd_require lxcfs lxcfs
fkd_require python3 python3
fkd_require unshare util-linux

LXCFS_OWN_CMDLINE=1 lxcfs_kill_rounds 3 --mode=proxy
[ "$LXCFS_MODE" = proxy ] || fail "the keeper mounted in '$LXCFS_MODE' mode, want proxy"
grep -q "as daemon [0-9]* asked: source lxcfs, type fuse.lxcfs" "$FK_LOG" ||
	fail "the keeper did not take over lxcfs's own mount: $(grep Mounted "$FK_LOG")"
log "ok"
