#!/bin/bash
# 60-lxcfs-kill: lxcfs under the keeper (proxy mode), SIGKILLed five times while its files
# are in use - the case fusekeeper exists for. The scenario is lxcfs_kill_rounds
# (tests/lib-lxcfs.sh): a held fd on proc/meminfo, a working directory in proc, a mount
# namespace with lxcfs's meminfo bind-mounted over its /proc/meminfo and lxcfs's
# sys/devices/system/cpu on a directory, and fkload readers, all of which must keep working,
# with no error, across every kill. 94-reinit-lxcfs runs it in reinit mode.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-daemons.sh"
. "$(dirname "$0")/../lib-lxcfs.sh"

need_prog "$FK"
need_prog "$FKLOAD"
fkd_require lxcfs lxcfs
fkd_require python3 python3
fkd_require unshare util-linux

lxcfs_kill_rounds 5 --mode=proxy
[ "$LXCFS_MODE" = proxy ] || fail "the keeper mounted in '$LXCFS_MODE' mode, want proxy"
log "ok"
