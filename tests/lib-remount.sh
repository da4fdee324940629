# shellcheck shell=bash
# tests/lib-remount.sh - helpers for the remount-mode tests (8x-remount-*.sh).
# Source BEFORE tests/lib.sh: it runs the test again in a mount namespace of its own
# (private propagation), so that namespaces other programs make meanwhile (other test
# runs on the machine) do not copy the test's mounts: they would hold the instances,
# be counted in REMOUNTED and keep the keeper from exiting after the unmount.
#
#   rmns_start NAME PROPAGATION SCRIPT   runs SCRIPT (bash) as the first process of a new
#                                        mount namespace (unshare -m --propagation
#                                        PROPAGATION, plus any UNSHARE_EXTRA flags), kept
#                                        alive afterwards; its pid goes to RMNS_PID_<NAME>
#                                        (with RMNS_IN=OTHER: made from inside namespace
#                                        OTHER, a copy of its mounts, two levels deep)
#   rmns_run NAME TIMEOUT CMD...         runs CMD inside that namespace (try_cmd)
#   rmns_pid NAME                        prints RMNS_PID_<NAME>
#   rmns_stop NAME...                    ends those namespaces' first processes
#                                        (SIGTERM) and waits for each (fails after 10 s)
#   rm_lines PID MAJ:MIN                 the mountinfo lines of that device in PID's
#                                        namespace, sorted, without what a replacement
#                                        changes (IDs, device, peer group numbers)
#   rm_mount_of PID PATH                 "MAJ:MIN OPTS PROPAGATION" of the top mount at
#                                        PATH in PID's mountinfo (PROPAGATION: shared,
#                                        master, shared+master, private)
#   rm_count_dev MAJ:MIN                 mounts of that device in every mount namespace
#                                        (not those of other test runs side by side)
#   rm_need_remount                      skip unless --mode=remount can run here
#   rm_wait_in_fuse PID [TIMEOUT]        waits until the child of PID (a bg_timed
#                                        subshell) waits on a FUSE request; prints its
#                                        wait channel

if [ -z "${FK_RM_OWN_NS:-}" ]; then
	if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
		echo "SKIP: needs root and unshare (util-linux)"
		exit 77
	fi
	export FK_RM_OWN_NS=1
	exec unshare -m --propagation private -- bash "$0" "$@"
fi

rmns_start() {
	local name=$1 prop=$2 script=$3 pid enter=()
	if [ -n "${RMNS_IN:-}" ]; then
		pid=$(rmns_pid "$RMNS_IN")
		enter=(nsenter -t "$pid" -m --)
	fi
	# shellcheck disable=SC2086
	"${enter[@]}" unshare -m --propagation "$prop" ${UNSHARE_EXTRA:-} -- \
		bash -c "$script"'
		echo ready
		exec sleep 100000' "rmns-$name" >"$T/rmns-$name.out" 2>"$T/rmns-$name.err" </dev/null &
	pid=$!
	track_pid "$pid"
	eval "RMNS_PID_$name=$pid"
	wait_match "$T/rmns-$name.out" '^ready$' 10 >/dev/null ||
		fail "namespace $name did not come up: $(cat "$T/rmns-$name.err")"
	log "namespace $name: pid $pid"
}

rmns_pid() {
	local v="RMNS_PID_$1"
	printf '%s\n' "${!v}"
}

rmns_stop() {
	local name pid
	for name; do
		pid=$(rmns_pid "$name")
		kill -TERM "$pid"
		wait_pid "$pid" 10 || fail "namespace $name did not end"
	done
}

rmns_run() {
	local name=$1 limit=$2 pid
	shift 2
	pid=$(rmns_pid "$name")
	try_cmd "$limit" nsenter -t "$pid" -m ${UNSHARE_EXTRA:+-U --preserve-credentials} -- "$@"
}

rm_mount_of() {
	awk -v mp="$2" '$5 == mp {
		prop = ""
		for (i = 7; $i != "-"; i++) {
			if ($i ~ /^shared:/) prop = prop (prop == "" ? "" : "+") "shared"
			if ($i ~ /^master:/) prop = prop (prop == "" ? "" : "+") "master"
		}
		last = $3 " " $6 " " (prop == "" ? "private" : prop)
	} END { if (last != "") print last }' "/proc/$1/mountinfo"
}

rm_count_dev() {
	local pid ns seen=" " n=0 c
	for pid in /proc/[0-9]*; do
		ns=$(stat -L -c %i "$pid/ns/mnt" 2>/dev/null) || continue
		case $seen in *" $ns "*) continue ;; esac
		seen="$seen$ns "
		# Once the old instance is gone its number is free: a mount of another test run
		# side by side (another run-tests.sh's temp dir) may have it since.
		c=$(awk -v d="$1" -v mine="$FK_TMPROOT/" '$3 == d &&
			!(index($5, "/tmp/fusekeeper-tests.") == 1 && index($5, mine) != 1)' \
			"$pid/mountinfo" 2>/dev/null | wc -l)
		n=$((n + c))
	done
	echo "$n"
}

rm_need_remount() {
	local out
	out=$("$FK" --mode=remount "$T" -- true {} 2>&1 </dev/null)
	case $out in *"--mode=proxy"*) skip "no MOVE_MOUNT_BENEATH here: $out" ;; esac
}

rm_lines() {
	awk -v d="$2" '$3 == d {
		line = $4 " " $5 " " $6
		for (i = 7; $i != "-"; i++) {
			f = $i
			sub(/:[0-9]+$/, "", f)
			if (f != "propagate_from") line = line " " f
		}
		for (; i <= NF; i++) line = line " " $i
		print line
	}' "/proc/$1/mountinfo" | sort
}

# rm_kill_swap: SIGKILLs the daemon, waits for the keeper's RECOVERED and REMOUNTED
# events, logs the replacements, and leaves REMOUNTED's counts in RM_REPLACED and RM_FAILED.
rm_kill_swap() {
	fk_kill_daemon || fail "killing the daemon failed"
	fk_wait RECOVERED "" 30 || fail "no RECOVERED"
	fk_wait REMOUNTED "" 5 || fail "no REMOUNTED"
	log "$FK_LINE"
	grep -E "Cannot replace|Replaced the mount" "$FK_LOG"
	read -r _ _ RM_REPLACED RM_FAILED _ <<<"$FK_LINE"
}

# rm_lines_under PID DIR: the mountinfo lines of PID's namespace whose mount point is under
# DIR, without IDs, devices and peer group numbers, sorted: what must stay the same when a
# mount is replaced.
rm_lines_under() {
	awk -v t="$2" 'index($5, t "/") == 1 {
		line = $4 " " $5 " " $6
		for (i = 7; $i != "-"; i++) {
			f = $i
			sub(/:[0-9]+$/, "", f)
			line = line " " f
		}
		for (; i <= NF; i++) line = line " " $i
		print line
	}' "/proc/$1/mountinfo" | sort
}

rm_wait_in_fuse() {
	local deadline=$(($(now_ms) + ${2:-10} * 1000)) child wchan
	while :; do
		child=$(cat "/proc/$1/task/$1/children" 2>/dev/null)
		child=${child%% *}
		wchan=
		[ -n "$child" ] && wchan=$(cat "/proc/$child/wchan" 2>/dev/null)
		case $wchan in *fuse* | request_wait_answer* | *_wait_answer*)
			echo "$wchan"
			return 0
			;;
		esac
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.02
	done
}
