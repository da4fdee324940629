# tests/lib-locks.sh - lock holders for tests that take file locks through a mount: each
# is a tests/fklock process with one file open, told what to do through a fifo, one command
# a line, its answers read from its output. Sourced after lib.sh and lib-cases.sh (fail,
# wrong, expect, run_bg, wait_match), with CASE set: a holder's files are
# $T/lk-CASE-NAME.{in,out,err}.

FKLOCK=$BUILD_DIR/tests/fklock

declare -A _lk_pid _lk_fd _lk_n _lk_f
LK_OUT=

# lk_start NAME PATH [HOLDERS-DIR]: a holder of PATH, named NAME; its files
# are $T/lk-CASE-NAME.{in,out,err}.
lk_start() {
	local name=$1 path=$2 hold=${3:-} f=lk-$CASE-$1 fd
	mkfifo "$T/$f.in" || fail "mkfifo failed"
	# Opened read-write: never blocks, and the holder sees no EOF before lk_quit.
	exec {fd}<>"$T/$f.in"
	if [ -n "$hold" ]; then
		run_bg "$f" "$FKLOCK" --in="$T/$f.in" --holders="$hold" --name="$name" "$path"
	else
		run_bg "$f" "$FKLOCK" --in="$T/$f.in" "$path"
	fi
	_lk_pid[$name]=$BG_PID
	_lk_fd[$name]=$fd
	_lk_n[$name]=1
	_lk_f[$name]=$T/$f
	wait_match "$T/$f.out" '^open$' 10 >/dev/null ||
		fail "the $name holder did not open $path: $(cat "$T/$f.err")"
}

# lk_send NAME CMD: sends CMD without waiting for its answer.
lk_send() {
	log "$1: $2"
	echo "$2" >&"${_lk_fd[$1]}"
}

# lk_answer NAME [TIMEOUT]: waits for NAME's next answer, left in LK_OUT.
lk_answer() {
	local name=$1 f=${_lk_f[$1]} want deadline=$(($(now_ms) + ${2:-10} * 1000))
	want=$((_lk_n[$name] + 1))
	while [ "$(wc -l <"$f.out")" -lt "$want" ]; do
		alive "${_lk_pid[$name]}" || fail "the $name holder died: $(cat "$f.err")"
		if [ "$(now_ms)" -ge "$deadline" ]; then
			LK_OUT="(no answer within ${2:-10} s)"
			return 1
		fi
		sleep 0.02
	done
	_lk_n[$name]=$want
	LK_OUT=$(sed -n "${want}p" "$f.out")
	log "$name: -> $LK_OUT"
}

# lk NAME CMD WANT: CMD's answer must be WANT.
lk() {
	lk_send "$1" "$2"
	lk_answer "$1"
	expect "$1's $2" "$LK_OUT" "$3"
}

# lk_waits NAME: NAME has not answered its last command.
lk_waits() {
	local f=${_lk_f[$1]}
	[ "$(wc -l <"$f.out")" -le "${_lk_n[$1]}" ] ||
		wrong "$1 no longer waits: it answered '$(tail -n 1 "$f.out")'"
}

lk_quit() {
	local fd=${_lk_fd[$1]}
	echo quit >&"$fd"
	exec {fd}>&-
	wait_pid "${_lk_pid[$1]}" 10 || fail "the $1 holder did not exit"
}
