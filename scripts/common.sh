# Helpers shared by scripts/demo.sh, bench/ and tests/lib.sh (sourced, bash).

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
now_us() { echo "${EPOCHREALTIME/./}"; }

# True while PID runs (a zombie does not count).
alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	case ${st%% *} in Z | X) return 1 ;; esac
	return 0
}

# poll TIMEOUT_S CMD...: true once CMD succeeds, false at the deadline.
poll() {
	local deadline=$(($(now_ms) + $1 * 1000))
	shift
	until "$@"; do
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.02
	done
}
