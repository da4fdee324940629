# shellcheck shell=bash
# tests/lib-takeover.sh - a real daemon under the keeper with its own, unmodified command line
# (no {}: the keeper takes over the mount the daemon makes), SIGKILLed while the mount is in use.
# Source after tests/lib.sh; it sources lib-daemons.sh and lib-lxcfs.sh (its readers).
#
#   takeover_need CMD PACKAGE
#       Skips (77) unless CMD and what every scenario here uses are installed.
#   takeover_rw_rounds ROUNDS MNT BACK [KEEPER OPTIONS] -- COMMAND...
#       A writable filesystem mounted by COMMAND at MNT; BACK, if not empty, is the directory
#       that must end up holding what the mount shows (bindfs's source, rclone's remote).
#       Running throughout, each in its own directory of the mount:
#         fd     fkload fd: one fd kept open, pwrite/pread against a shadow copy;
#         cwd    fkload cwd: a working directory inside, relative paths only;
#         churn  fkload churn: create/rename/unlink/readdir in 2 threads;
#         read   fkload read: fresh opens of a file of known content;
#         hold   one fd on that file, kept open and re-read with pread;
#         ns     a mount namespace with MNT/ns bind-mounted, reading a file of known
#                checksum after every kill.
#       TK_WORKLOADS: the workloads to run (default "fd cwd churn read hold"; ns always).
#       TK_KEEP_MOUNT_COPY=DIR: a copy of what the mount shows at the end goes to DIR.
#       TK_DIFF_EXCLUDE=PATTERN: names in BACK that are the daemon's own (diff -x).
#   takeover_ro_rounds ROUNDS MNT [KEEPER OPTIONS] -- COMMAND...
#       A read-only filesystem that holds ro/a, ro/b (lines "line N of FILE") and ns/data
#       (checksum in TK_NS_SUM): a held fd re-read with pread, a working directory in ro,
#       fkload read, and the namespace.
#   Both kill the daemon (the process holding the channel: FOLLOW) ROUNDS times, wait for
#   RECOVERED each time and for every workload to make progress, then check errors=0 and
#   checksums, unmount, and check that the keeper exited 0 and left no process or mount.
#   TK_NO_MOUNTPOINT=1: the keeper is not told MNT (the daemon names it).
#   TK_SKIP_GONE=1: the caller checks that every process is gone itself (after stopping a
#   server of its own).

. "$(dirname "${BASH_SOURCE[0]}")/lib-daemons.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib-lxcfs.sh"

takeover_need() {
	need_prog "$FK"
	need_prog "$FKLOAD"
	fkd_require "$1" "$2"
	fkd_require python3 python3
	fkd_require unshare util-linux
}

# The namespace reader: MNT/ns bind-mounted on a directory of its own, answering the checksum
# of its data file.
_tk_ns_start() {
	# shellcheck disable=SC2016 # the script runs in the namespace
	ns_start tk '
		mount --bind "$1" "$2" || exit 1
		echo ready
		while read -r req; do
			[ "$req" = quit ] && exit 0
			if sum=$(sha256sum <"$2/data" 2>&1); then
				echo "$req ${sum%% *}"
			else
				echo "$req ERROR ${sum//$'\''\n'\''/ }"
			fi
		done' "$1/ns" "$T/nsview"
	mountpoint -q "$T/nsview" && fail "the namespace's bind mount leaked into the test's namespace"
}

# _tk_start MNT [KEEPER OPTIONS] -- COMMAND...: starts the keeper, waits for READY.
_tk_start() {
	local mnt=$1
	shift
	FK_NO_MOUNTPOINT=${TK_NO_MOUNTPOINT:-} fk_start "$mnt" --max-restarts=100 "$@"
	fk_wait READY "" 60 || fail "the keeper never became READY: $(tail -5 "$FK_LOG")"
	grep -q "^MODE " "$FK_EVENTS" || fail "no MODE event"
	mountpoint -q "$mnt" || fail "$mnt is not a mount point after READY"
	log "$(grep -m1 'Mounted ' "$FK_LOG")"
}

# _tk_rounds ROUNDS WORKLOAD...: the kills, each after every workload made progress.
_tk_rounds() {
	local rounds=$1 round w sum
	shift
	for round in $(seq "$rounds"); do
		for w in "$@"; do
			wait_progress "$T/$w.prog" 10 60 "${load_pid[$w]}" ||
				fail "round $round: the $w workload made no progress"
		done
		fk_kill_daemon || fail "round $round: killing the daemon failed"
		fk_wait RECOVERED "" 60 || fail "round $round: no RECOVERED after killing $FK_KILLED: $(tail -5 "$FK_LOG")"
		log "round $round: daemon $FK_KILLED killed, $FK_LINE"
		sum=$(ns_query tk "$round") || fail "round $round: the namespace reader did not answer"
		[ "$sum" = "$TK_NS_SUM" ] || fail "round $round: the namespace read '$sum', expected $TK_NS_SUM"
	done
	for w in "$@"; do
		wait_progress "$T/$w.prog" 10 60 "${load_pid[$w]}" ||
			fail "after the last kill: the $w workload made no progress"
	done
}

# _tk_finish ROUNDS MNT: the namespace leaves, the mount goes, nothing stays.
_tk_finish() {
	ns_stop tk || fail "the namespace reader failed: $(cat "$T/ns-tk/err")"
	fk_clean_rounds "$1"
	M=$2 fk_umount_exit 0
	fk_wait STOPPED "" 10 || fail "no STOPPED event"
	assert_not_mounted "$2"
	[ -n "${TK_SKIP_GONE:-}" ] || assert_all_gone
}

# _tk_reader_stop NAME: stops a reader of lxcfs_reader_script; it must report errors=0.
_tk_reader_stop() {
	local out
	kill -TERM "${load_pid[$1]}"
	wait_pid "${load_pid[$1]}" 60 || fail "the $1 reader did not stop after SIGTERM"
	out=$(tail -n 1 "$T/$1.out")
	log "$1: $out (exit $WAIT_STATUS)"
	[ "$WAIT_STATUS" = 0 ] || fail "the $1 reader failed: $(head -n 20 "$T/$1.err")"
	[[ $out =~ ^(hold|cwd):\ ops=[0-9]+\ errors=0$ ]] || fail "the $1 reader did not report errors=0: $out"
}

takeover_rw_rounds() {
	local rounds=$1 mnt=$2 back=$3 w
	shift 3
	declare -g -A load_pid
	mkdir -p "$T/nsview"
	_tk_start "$mnt" "$@"

	mkdir "$mnt/fd" "$mnt/cwd" "$mnt/churn" "$mnt/ns" "$mnt/read" ||
		fail "mkdir through the mount failed"
	head -c 300000 /dev/urandom >"$T/ns-data.ref"
	cp "$T/ns-data.ref" "$mnt/ns/data" || fail "writing through the mount failed"
	TK_NS_SUM=$(sha256sum <"$T/ns-data.ref" | cut -d' ' -f1)
	seq 1 5000 | sed 's/^/read-me /' >"$mnt/read/a" || fail "writing through the mount failed"
	_tk_ns_start "$mnt"
	[ "$(ns_query tk 0)" = "$TK_NS_SUM" ] || fail "the namespace does not read the file written"

	local workloads=${TK_WORKLOADS:-fd cwd churn read hold} loads=()
	for w in $workloads; do
		local opts=()
		case $w in
		hold)
			lxcfs_reader_script "$T/reader.py"
			run_bg hold python3 "$T/reader.py" hold "$T/hold.prog" "$mnt/read/a" '^read-me 5000$'
			load_pid[hold]=$BG_PID
			continue
			;;
		churn) opts=(--threads=2) ;;
		read) opts=(--files=a --expect='read-me 4999') ;;
		esac
		run_bg "load-$w" "$FKLOAD" "$w" "$mnt/$w" --progress="$T/$w.prog" --seed=$RANDOM "${opts[@]}"
		load_pid[$w]=$BG_PID
		loads+=("$w")
	done
	# shellcheck disable=SC2086 # a list of words
	_tk_rounds "$rounds" $workloads
	fkload_stop "${loads[@]}"
	case " $workloads " in *" hold "*) _tk_reader_stop hold ;; esac

	if [ -n "$back" ]; then
		case " $workloads " in *" fd "*)
			cmp "$back/fd/fd-file" "$mnt/fd/fd-file" ||
				fail "fd-file differs between $back and the mount" ;;
		esac
		case " $workloads " in *" churn "*)
			diff -r ${TK_DIFF_EXCLUDE:+-x "$TK_DIFF_EXCLUDE"} "$back/churn" "$mnt/churn" ||
				fail "the churn directory differs between $back and the mount" ;;
		esac
		[ "$(sha256sum <"$back/ns/data" | cut -d' ' -f1)" = "$TK_NS_SUM" ] ||
			fail "ns/data differs in $back"
	fi
	if [ -n "${TK_KEEP_MOUNT_COPY:-}" ]; then
		cp -a "$mnt/." "$TK_KEEP_MOUNT_COPY" || fail "copying what the mount shows failed"
	fi
	_tk_finish "$rounds" "$mnt"
}

# takeover_ro_tree DIR: the files takeover_ro_rounds reads, in DIR (to pack into an image).
takeover_ro_tree() {
	mkdir -p "$1/ro" "$1/ns"
	seq 1 3000 | sed 's/^/line /; s/$/ of a/' >"$1/ro/a"
	seq 1 2000 | sed 's/^/line /; s/$/ of b/' >"$1/ro/b"
	head -c 200000 /dev/urandom >"$1/ns/data"
	TK_NS_SUM=$(sha256sum <"$1/ns/data" | cut -d' ' -f1)
}

takeover_ro_rounds() {
	local rounds=$1 mnt=$2
	shift 2
	declare -g -A load_pid
	mkdir -p "$T/nsview"
	_tk_start "$mnt" "$@"
	[ "$(sha256sum <"$mnt/ns/data" | cut -d' ' -f1)" = "$TK_NS_SUM" ] ||
		fail "the mount does not show the image's ns/data"
	_tk_ns_start "$mnt"

	lxcfs_reader_script "$T/reader.py"
	run_bg hold python3 "$T/reader.py" hold "$T/hold.prog" "$mnt/ro/a" '^line 3000 of a$'
	load_pid[hold]=$BG_PID
	run_bg cwd python3 "$T/reader.py" cwd "$T/cwd.prog" "$mnt/ro" 'a=^line 2999 of a$' \
		'b=^line 1999 of b$'
	load_pid[cwd]=$BG_PID
	run_bg load-read "$FKLOAD" read "$mnt/ro" --files=a,b --expect='line 1 of' \
		--progress="$T/read.prog"
	load_pid[read]=$BG_PID
	_tk_rounds "$rounds" hold cwd read

	_tk_reader_stop hold
	_tk_reader_stop cwd
	fkload_stop read
	_tk_finish "$rounds" "$mnt"
}
