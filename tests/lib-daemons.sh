# Helpers for the integration tests that drive real third-party daemons
# (lxcfs, sshfs) under fusekeeper.  Source it after tests/lib.sh:
#
#     . "$(dirname "$0")/../lib.sh"
#     . "$(dirname "$0")/../lib-daemons.sh"
#
# What it provides:
#   fkd_require CMD PACKAGE       skip (exit 77) unless CMD is installed
#   sshd_start                    a throw-away sshd on 127.0.0.1; sets SSHD_PORT, SSH_KEY
#   sshd_stop                     stops it
#   sshfs_cmd BACKING_DIR         prints the sshfs command line to run under fusekeeper
#   ssh_run CMD...                runs CMD on the throw-away sshd (for checks)
#   fkd_wait_ssh_gone [TIMEOUT]   waits until sshfs's ssh clients have exited
#   ns_start NAME SCRIPT [ARG...] runs a request/answer loop in a new private
#                                 mount namespace (a stand-in for a container)
#   ns_query NAME REQ             asks it one question
#   ns_stop NAME                  ends it, returns its exit status
#   fkd_track PID                 kill PID (TERM, then KILL) when the test exits
#   fkd_wait_for TIMEOUT CMD...   polls CMD until it succeeds or TIMEOUT seconds pass
#
# Everything started here is recorded by pid and stopped by an EXIT trap that is
# chained after whatever trap lib.sh installed.  As a second line of defence
# long-lived helpers are started with a parent-death signal, so they die with
# the test even if the shell itself is killed.  Do not call sshd_start or
# ns_start from a subshell or a command substitution: the parent-death signal
# would fire as soon as that subshell exits.

_fkd_pids=
_fkd_tmp=

# fkd_dir - sets FKD_DIR to the test's scratch directory: lib.sh's $T when
# it has one, else a directory of our own removed at exit.  (Not a function
# that prints: it must run in this shell, not in a command substitution.)
fkd_dir() {
	if [ -n "${T:-}" ] && [ -d "$T" ]; then
		FKD_DIR=$T
		return
	fi
	if [ -z "$_fkd_tmp" ]; then
		_fkd_tmp=$(mktemp -d /tmp/fkd.XXXXXX)
		fkd_arm_cleanup
	fi
	FKD_DIR=$_fkd_tmp
}

_fkd_skip() {
	if command -v skip >/dev/null 2>&1; then
		skip "$@"
	fi
	echo "SKIP: $*" >&2
	exit 77
}

_fkd_fail() {
	if command -v fail >/dev/null 2>&1; then
		fail "$@"
	fi
	echo "FAIL: $*" >&2
	exit 1
}

fkd_require() {
	command -v "$1" >/dev/null 2>&1 ||
		_fkd_skip "$1 not installed (Debian package $2; scripts/install-deps.sh test)"
}

# Stops every tracked pid: SIGTERM, up to 3 s grace, then SIGKILL; reaps our
# own children; then waits for sshfs's orphaned ssh clients to be reaped.
# Runs from the EXIT trap, after lib.sh's fk_cleanup; it must never fail.
_fkd_cleanup() {
	local pid deadline
	for pid in $_fkd_pids; do
		kill -TERM "$pid" 2>/dev/null
	done
	deadline=$((SECONDS + 3))
	for pid in $_fkd_pids; do
		while ! _fkd_exited "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
			sleep 0.05
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	_fkd_pids=
	[ -n "${SSHD_PORT:-}" ] && fkd_wait_ssh_gone 10
	if [ -n "$_fkd_tmp" ]; then
		rm -rf "$_fkd_tmp"
		_fkd_tmp=
	fi
	# fk_cleanup found a failure once the test had passed (lib.sh): all is cleaned up now.
	[ -z "${FK_LATE_FAIL:-}" ] || exit 1
	return 0
}

# Appends _fkd_cleanup to the current EXIT trap (once).  Safe to call again
# after lib.sh has (re)installed its own trap: it re-chains if it was dropped.
fkd_arm_cleanup() {
	local cur cmd
	cur=$(trap -p EXIT)
	case "$cur" in *_fkd_cleanup*) return 0 ;; esac
	if [ -n "$cur" ]; then
		# cur is: trap -- 'COMMAND' EXIT
		cmd=${cur#"trap -- "}
		cmd=${cmd%" EXIT"}
		eval "cmd=$cmd"
		trap -- "$cmd
_fkd_cleanup" EXIT
	else
		trap -- _fkd_cleanup EXIT
	fi
	# Make Ctrl-C and SIGTERM run the EXIT trap too, unless lib.sh handles them.
	[ -n "$(trap -p INT)" ] || trap 'exit 130' INT
	[ -n "$(trap -p TERM)" ] || trap 'exit 143' TERM
}

# fkd_track PID [only-here] - stop PID when the test exits.  It is also
# handed to lib.sh (whose cleanup runs first and SIGKILLs what ignores
# SIGTERM, and whose assert_all_gone checks it) unless "only-here" is given.
fkd_track() {
	_fkd_pids="$_fkd_pids $1"
	if [ "${2:-}" != only-here ] && command -v track_pid >/dev/null 2>&1; then
		track_pid "$1"
	fi
	fkd_arm_cleanup
}

# fkd_wait_for TIMEOUT CMD... - true as soon as CMD succeeds, false once
# TIMEOUT seconds have passed without it.
fkd_wait_for() {
	local timeout=$1 start now
	shift
	start=${EPOCHREALTIME/./}
	while :; do
		"$@" && return 0
		now=${EPOCHREALTIME/./}
		[ $(((now - start) / 1000)) -lt $((timeout * 1000)) ] || return 1
		sleep 0.05
	done
}

# Becomes a long-lived helper that is killed when this shell dies.  Use as
# `_fkd_pdeath CMD... &`: the background subshell execs CMD, so $! is its pid.
_fkd_pdeath() {
	if command -v setpriv >/dev/null 2>&1; then
		exec setpriv --pdeathsig KILL -- "$@"
	fi
	exec "$@"
}

# ---------------------------------------------------------------- sshd --

_fkd_port_listening() {
	[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

_fkd_sshd_up() {
	kill -0 "$_fkd_sshd_pid" 2>/dev/null || return 2
	_fkd_port_listening "$SSHD_PORT"
}

# The ssh client options shared by ssh_run and sshfs: our key only, no
# host-key bookkeeping, never prompt, quiet.
_fkd_ssh_opts() {
	printf '%s\n' \
		"IdentityFile=$SSH_KEY" "IdentitiesOnly=yes" "port=$SSHD_PORT" \
		"StrictHostKeyChecking=no" "UserKnownHostsFile=/dev/null" \
		"BatchMode=yes" "LogLevel=ERROR" "ConnectTimeout=10"
}

ssh_run() {
	local o args=()
	while read -r o; do args+=(-o "$o"); done < <(_fkd_ssh_opts)
	ssh -F /dev/null "${args[@]}" root@127.0.0.1 "$@"
}

# sshd_start - starts sshd -D on 127.0.0.1 at a free port with a fresh host key
# and a fresh client key; exports SSHD_PORT and SSH_KEY.  Fails the test if
# sshd does not accept a login within 10 s.
sshd_start() {
	local dir port try
	fkd_require sshd openssh-server
	fkd_require ssh openssh-client
	command -v ss >/dev/null 2>&1 || _fkd_skip "ss not installed (Debian package iproute2)"

	fkd_dir
	dir=$FKD_DIR/sshd
	mkdir -p "$dir"
	chmod 700 "$dir"
	ssh-keygen -q -t ed25519 -N '' -C fk-host -f "$dir/host_key" </dev/null ||
		_fkd_fail "ssh-keygen (host key) failed"
	ssh-keygen -q -t ed25519 -N '' -C fk-client -f "$dir/client_key" </dev/null ||
		_fkd_fail "ssh-keygen (client key) failed"
	cp "$dir/client_key.pub" "$dir/authorized_keys"
	# The privilege-separation directory Debian's sshd insists on.
	mkdir -p /run/sshd
	chmod 755 /run/sshd

	port=$((20000 + $$ % 20000))
	for ((try = 0; try < 10; try++)); do
		while _fkd_port_listening "$port"; do
			port=$((port + 1))
		done
		cat >"$dir/sshd_config" <<-EOF
			ListenAddress 127.0.0.1
			Port $port
			HostKey $dir/host_key
			PidFile $dir/sshd.pid
			AuthorizedKeysFile $dir/authorized_keys
			PermitRootLogin prohibit-password
			PubkeyAuthentication yes
			PasswordAuthentication no
			KbdInteractiveAuthentication no
			UsePAM no
			StrictModes no
			UseDNS no
			PrintMotd no
			AcceptEnv none
			Subsystem sftp internal-sftp
			LogLevel ERROR
		EOF
		SSHD_PORT=$port
		SSH_KEY=$dir/client_key
		export SSHD_PORT SSH_KEY
		# sshd runs as pid 1 of its own pid namespace so that killing it
		# also kills and reaps its per-connection children (nothing is left
		# as an orphan or a zombie).  It must be started by absolute path:
		# it re-executes itself.
		_fkd_pdeath unshare --pid --fork --kill-child -- \
			"$(command -v sshd)" -D -f "$dir/sshd_config" -E "$dir/sshd.log" &
		_fkd_sshd_pid=$!
		if fkd_wait_for 10 _fkd_sshd_up; then
			# To stop it, signal sshd itself (pid 1 of the namespace): the
			# kernel then kills and reaps its sessions, and unshare, which
			# ignores SIGTERM, exits with it.  Killing unshare instead
			# would leave sshd an unreaped orphan.  So lib.sh, which
			# SIGKILLs its children, is told about sshd only.
			_fkd_sshd_main=$(cat "/proc/$_fkd_sshd_pid/task/$_fkd_sshd_pid/children")
			_fkd_sshd_main=${_fkd_sshd_main% }
			fkd_track "$_fkd_sshd_main"
			fkd_track "$_fkd_sshd_pid" only-here
			ssh_run true </dev/null && return 0
			_fkd_fail "sshd listens on port $port but login fails: $(tail -5 "$dir/sshd.log")"
		fi
		# Lost a race for the port (or sshd failed): try the next one.
		kill -KILL "$_fkd_sshd_pid" 2>/dev/null
		wait "$_fkd_sshd_pid" 2>/dev/null
		port=$((port + 1))
	done
	_fkd_fail "sshd did not start: $(tail -5 "$dir/sshd.log" 2>/dev/null)"
}

# sshd_stop - stops the throw-away sshd (its sessions die with it) and waits
# for it.  Tests call it before lib.sh's assert_all_gone.
sshd_stop() {
	[ -n "${_fkd_sshd_pid:-}" ] || return 0
	kill -TERM "${_fkd_sshd_main:-}" 2>/dev/null
	if ! fkd_wait_for 10 _fkd_exited "$_fkd_sshd_pid"; then
		kill -KILL "$_fkd_sshd_pid" 2>/dev/null
	fi
	wait "$_fkd_sshd_pid" 2>/dev/null
	_fkd_sshd_pid=
}

# sshfs_cmd BACKING_DIR - the sshfs command line for fusekeeper, one line,
# words separated by spaces, ending in the {} placeholder.  Use it unquoted:
#     fk_start "$M" -- $(sshfs_cmd "$B")
# Options:
#   -f                      stay in the foreground: the keeper supervises it
#   -F /dev/null            ignore any ~/.ssh/config
#   sshfs_sync              wait for the server's reply to every WRITE before
#                           answering it.  By default sshfs answers a WRITE as
#                           soon as it has queued it to its ssh child; after a
#                           SIGKILL the restarted daemon could then read the
#                           file before the old ssh has delivered that data.
#   reconnect, ServerAlive* re-establish the SSH link if it drops.  This is not
#                           what survives a daemon kill (the keeper does that);
#                           it keeps a stalled link from failing a long test.
#   dir_cache=no            no directory cache in the daemon: nothing there
#                           can disagree with what the last daemon did
#   the ssh options         our key, our port, no host-key checks, no prompts
# No mount options: given /dev/fd/N, libfuse does not mount, the keeper does.
sshfs_cmd() {
	local b=$1 opts o
	case "$b$SSH_KEY" in *[[:space:]]*) _fkd_fail "sshfs_cmd: paths must not contain spaces" ;; esac
	[ -n "${SSHD_PORT:-}" ] || _fkd_fail "sshfs_cmd: call sshd_start first"
	opts=sshfs_sync,reconnect,ServerAliveInterval=5,ServerAliveCountMax=3,dir_cache=no
	while read -r o; do opts="$opts,$o"; done < <(_fkd_ssh_opts)
	printf 'sshfs -f -F /dev/null -o %s root@127.0.0.1:%s {}\n' "$opts" "$b"
}

# The pids of the ssh clients sshfs started from this test.  sshfs runs ssh
# through a double fork, so ssh is never a child of sshfs (nor of the keeper):
# it is an orphan from the start and outlives a killed sshfs until it reads
# EOF.  It stays in our process group; a zombie has no cmdline, so match on
# the command name.
fkd_ssh_clients() {
	local pgid f rest comm fields
	pgid=$(ps -o pgid= -p $$ | tr -d ' ')
	for f in /proc/[0-9]*/stat; do
		rest=$(cat "$f" 2>/dev/null) || continue
		comm=${rest#*(}
		comm=${comm%%)*}
		[ "$comm" = ssh ] || continue
		# Fields after "comm)": state ppid pgrp ...
		read -r -a fields <<<"${rest##*) }"
		[ "${fields[2]}" = "$pgid" ] && echo "${f//[^0-9]/}"
	done
}

# fkd_wait_ssh_gone [TIMEOUT] - waits until every ssh client of this test has
# exited and been reaped (by init: this can take a second or two).  Kills
# those still running at the deadline and returns 1.
fkd_wait_ssh_gone() {
	local left
	fkd_wait_for "${1:-15}" _fkd_no_ssh_clients && return 0
	left=$(fkd_ssh_clients)
	echo "ssh clients still present: $left" >&2
	# shellcheck disable=SC2086
	[ -n "$left" ] && kill -KILL $left 2>/dev/null
	return 1
}

_fkd_no_ssh_clients() {
	[ -z "$(fkd_ssh_clients)" ]
}

# ----------------------------------------------------- mount namespaces --

# ns_start NAME SCRIPT [ARG...] - runs `bash -c SCRIPT ns-NAME ARG...` as the
# first process of a new mount namespace with private propagation: the
# container of the LXCFS use-case.  SCRIPT sets up its mounts, prints "ready"
# (plus anything it wants to report), then serves requests: it reads one line
# REQ at a time from stdin and answers with one line "REQ RESULT" on stdout,
# and exits on EOF or on the line "quit".
ns_start() {
	local name=$1 script=$2 dir pid fd
	shift 2
	fkd_require unshare util-linux
	fkd_dir
	dir=$FKD_DIR/ns-$name
	mkdir -p "$dir"
	rm -f "$dir/in"
	mkfifo "$dir/in"
	: >"$dir/out"
	_fkd_pdeath unshare --mount --propagation private -- \
		bash -c "$script" "ns-$name" "$@" <"$dir/in" >"$dir/out" 2>"$dir/err" &
	pid=$!
	fkd_track "$pid"
	# Open the write end only after the child started, so that it does not
	# inherit it (it would never see EOF).  Later children do inherit it:
	# ns_stop therefore sends "quit" rather than relying on EOF.
	exec {fd}>"$dir/in"
	eval "NS_PID_$name=$pid NS_FD_$name=$fd"
	fkd_wait_for 10 grep -q '^ready' "$dir/out" ||
		_fkd_fail "namespace $name did not come up: $(tail -5 "$dir/err")"
}

# ns_query NAME REQ [TIMEOUT] - sends REQ (one word, unique per query) and
# prints RESULT from the answer "REQ RESULT".
ns_query() {
	local name=$1 req=$2 fd dir line
	eval "fd=\${NS_FD_$name:?}"
	fkd_dir
	dir=$FKD_DIR/ns-$name
	echo "$req" >&"$fd"
	fkd_wait_for "${3:-15}" grep -q "^$req " "$dir/out" || return 1
	line=$(grep -m1 "^$req " "$dir/out")
	printf '%s\n' "${line#"$req "}"
}

# ns_stop NAME [TIMEOUT] - asks the namespace process to exit and waits for
# it; returns its exit status (1 if it had to be killed).
ns_stop() {
	local name=$1 fd pid rc
	eval "fd=\${NS_FD_$name:?} pid=\${NS_PID_$name:?}"
	echo quit >&"$fd"
	exec {fd}>&-
	if ! fkd_wait_for "${2:-15}" _fkd_exited "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return 1
	fi
	wait "$pid"
	rc=$?
	return $rc
}

# True once PID has exited (a zombie counts as exited).
_fkd_exited() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	st=${st##*) }
	case ${st%% *} in Z | X) return 0 ;; esac
	return 1
}
