#!/bin/bash
# 69-takeover-sshfs: sshfs against a throw-away sshd on 127.0.0.1 with its own command line,
# `sshfs [-o ...] root@127.0.0.1:DIR MNT` without -f: it mounts, then goes to the background,
# and the keeper follows it (FOLLOW) at the first start and after each of three SIGKILLs under
# the fd, cwd, churn and read workloads, a held fd and a bind mount in another mount namespace
# (takeover_rw_rounds, tests/lib-takeover.sh); the server side must hold what the mount shows.
# --exclusive and workaround=fstat as in 61-sshfs-kill, which says why.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-takeover.sh"

takeover_need sshfs sshfs

mkdir "$T/back" "$T/mnt"
sshd_start
# sshfs_cmd prints the foreground form with {}: make it the plain one.
read -r -a cmd < <(sshfs_cmd "$T/back")
plain=()
for a in "${cmd[@]}"; do
	case $a in
	-f) ;;
	{}) plain+=("$T/mnt") ;;
	*) plain+=("$a") ;;
	esac
done
TK_SKIP_GONE=1 takeover_rw_rounds 3 "$T/mnt" "$T/back" --exclusive -- "${plain[@]}" -o workaround=fstat
[ "$(fk_count FOLLOW)" = 4 ] || fail "expected 4 FOLLOW events (sshfs goes to the background), got $(fk_count FOLLOW)"
fkd_wait_ssh_gone 15 || fail "ssh clients of the killed sshfs daemons did not exit"
sshd_stop
assert_all_gone
log "ok"
