#!/bin/bash
# 63-sshfs-inodes: the inode numbers the kernel was shown do not change when
# sshfs is killed and restarted.
#
# sshfs is a libfuse high-level daemon without use_ino: it numbers inodes with
# a counter, in the order it meets them, so a new run gives every node a new
# number.  The keeper must find that out at the first restart (log line "The
# daemon's inode numbers change across restarts") and from then on show the
# kernel, for every node it holds, the number the kernel first saw: in
# LOOKUP/CREATE entries, GETATTR replies, READDIRPLUS entries and READDIR d_ino.
# A new object must never show a number such a node keeps.
#
# A process holds M/d/held open read-write.  Recorded before any kill: fstat's
# st_ino of that fd, stat's st_ino of the mount's root, of d, of held and of
# two other files, and `ls -i` of d (d_ino).  Then sshfs is SIGKILLed 3 times;
# after each RECOVERED, right away and again once the kernel's 1 s caches
# expired (so that it asks the daemon): fstat of the fd, stat of every path
# and ls -i of d must give exactly the recorded numbers, and the fd must still
# read and write.  After each restart NEW files are created, enough to run the
# new daemon's counter over the old numbers; each must get a number no
# recorded node shows, and is recorded in turn.  Against a throw-away sshd on
# 127.0.0.1. The test keeps an fd open on every recorded object (pin): a node
# the kernel forgot under memory pressure may come back with another number,
# as it would from sshfs alone.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-daemons.sh"

need_prog "$FK"
fkd_require sshfs sshfs
need_cmd perl mkfifo stat ls

ROUNDS=3
NEW=8   # new files per round
M=$T/mnt
B=$T/back
mkdir "$M" "$B"

sshd_start
log "sshd on 127.0.0.1:$SSHD_PORT"

# shellcheck disable=SC2046 # sshfs_cmd prints words meant to be split
fk_start "$M" --max-restarts=100 -- $(sshfs_cmd "$B")
fk_wait READY >/dev/null || fail "the keeper never became READY"

# ---- recorded numbers ----------------------------------------------------------

# ino[PATH relative to M, "." for the root]: the st_ino the kernel was shown.
declare -A ino

# ls_ino NAME: the d_ino `ls -i` lists for d/NAME (ls -i takes it from
# getdents, without a stat).
ls_ino() {
	awk -v n="$1" '$2 == n { print $1 }' "$T/ls.out"
}

# check WHEN: every recorded number is still the one shown, by stat, by the
# held fd's fstat and by ls -i; the held fd reads and writes.
check() {
	local when=$1 p got
	for p in "${!ino[@]}"; do
		got=$(stat -c %i "$M/$p") || fail "$when: stat $M/$p failed"
		[ "$got" = "${ino[$p]}" ] || fail "$when: st_ino of $p is $got, was ${ino[$p]}"
	done
	got=$(holder held fstat)
	[ "$got" = "ino ${ino[d/held]}" ] || fail "$when: fstat of the held fd: '$got', was 'ino ${ino[d/held]}'"
	ls -i1 "$M/d" >"$T/ls.out" || fail "$when: ls -i $M/d failed"
	for p in "${!ino[@]}"; do
		case $p in d/*) ;; *) continue ;; esac
		got=$(ls_ino "${p#d/}")
		[ "$got" = "${ino[$p]}" ] ||
			fail "$when: ls -i lists ${p#d/} with d_ino '$got', was ${ino[$p]}: $(tr '\n' ' ' <"$T/ls.out")"
	done
	got=$(holder held read)
	[ "$got" = "read $HELD" ] || fail "$when: read through the held fd: '$got', expected 'read $HELD'"
	log "$when: all ${#ino[@]} numbers as recorded; the held fd reads '$HELD'"
}

# pin PATH: the test keeps an fd open on the recorded object, so that the kernel
# holds its node whatever the memory pressure (a cache drop elsewhere on the host
# would make it forget an unused one, and a node met afresh may get a new number,
# as sshfs alone gives it).
pins=()
pin() {
	local fd
	exec {fd}<"$M/$1" || fail "cannot open $M/$1"
	pins+=("$fd")
}
unpin_all() {
	local fd
	for fd in "${pins[@]}"; do
		exec {fd}<&-
	done
	pins=()
}

# Every recorded number names one object only.
distinct() {
	local dup
	dup=$(printf '%s\n' "${ino[@]}" | sort | uniq -d)
	[ -z "$dup" ] || fail "$1: two recorded objects show the same st_ino $dup"
}

# ---- before any kill --------------------------------------------------------------

# Run sshfs's counter ahead first: the numbers it hands out in this run then
# start well above the ones a new run gives the nodes it is asked to look up
# again, so they cannot happen to agree.
for i in 1 2 3 4 5 6; do
	echo x >"$M/tmp$i" || fail "creating $M/tmp$i failed"
	rm "$M/tmp$i" || fail "removing $M/tmp$i failed"
done
mkdir "$M/d" || fail "mkdir $M/d failed"
for f in a b; do
	printf '%s\n' "$f-data" >"$M/d/$f" || fail "writing $M/d/$f failed"
done
# Every content of held is 8 bytes long: each write replaces the whole file.
printf 'round-0\n' >"$M/d/held" || fail "writing $M/d/held failed"
HELD='round-0\n'
holder_start held "$M/d/held"

for p in . d d/held d/a d/b; do
	ino[$p]=$(stat -c %i "$M/$p") || fail "stat $M/$p failed"
	pin "$p"
done
distinct "before any kill"
log "before any kill: $(for p in "${!ino[@]}"; do printf '%s=%s ' "$p" "${ino[$p]}"; done)"
check "before any kill"

# ---- kills ----------------------------------------------------------------------------

for round in $(seq "$ROUNDS"); do
	fk_kill_daemon || fail "round $round: killing the daemon failed"
	fk_wait RECOVERED "" 30 >/dev/null || fail "round $round: no RECOVERED after killing sshfs $FK_KILLED"
	log "round $round: sshfs $FK_KILLED killed, $FK_LINE"
	check "round $round, right after RECOVERED"
	# Past the kernel's attribute and entry timeouts (1 s): it asks again.
	sleep 1.2
	check "round $round, 1.2 s later"
	if [ "$round" = 1 ]; then
		grep -q "inode numbers change across restarts" "$FK_LOG" ||
			fail "the keeper did not log that sshfs's inode numbers change across restarts"
	fi

	# Through the held fd: the write reaches the new daemon.
	HELD="round-$round\\n"
	got=$(holder held write "$HELD")
	[ "$got" = "wrote 8" ] || fail "round $round: write through the held fd: '$got'"
	[ "$(cat "$B/d/held")" = "round-$round" ] ||
		fail "round $round: the server side holds '$(cat "$B/d/held")' after the write through the held fd"

	# New objects: they get numbers no held node keeps.
	for i in $(seq "$NEW"); do
		p=d/n$round-$i
		echo new >"$M/$p" || fail "round $round: creating $M/$p failed"
		got=$(stat -c %i "$M/$p") || fail "round $round: stat $M/$p failed"
		for q in "${!ino[@]}"; do
			[ "$got" != "${ino[$q]}" ] ||
				fail "round $round: the new file $p shows st_ino $got, the number of $q"
		done
		ino[$p]=$got
		pin "$p"
	done
	mkdir "$M/d/dir$round" || fail "round $round: mkdir $M/d/dir$round failed"
	got=$(stat -c %i "$M/d/dir$round")
	for q in "${!ino[@]}"; do
		[ "$got" != "${ino[$q]}" ] ||
			fail "round $round: the new directory dir$round shows st_ino $got, the number of $q"
	done
	ino[d/dir$round]=$got
	pin "d/dir$round"
	distinct "round $round"
	log "round $round: new objects: $(for q in "${!ino[@]}"; do
		case $q in "d/n$round-"* | "d/dir$round") printf '%s=%s ' "${q#d/}" "${ino[$q]}" ;; esac
	done)"
	check "round $round, after creating new files"
done

grep -q "inode numbers are stable across restarts" "$FK_LOG" &&
	fail "the keeper took sshfs's inode numbers for stable: $(grep 'stable across restarts' "$FK_LOG")"
grep -q 'now names another object' "$FK_LOG" &&
	fail "the keeper lost a node: $(grep 'now names another object' "$FK_LOG")"

unpin_all
holder_stop held
fk_clean_rounds "$ROUNDS"
fk_umount_exit 0
assert_not_mounted "$M"
# sshfs starts ssh through a double fork: nobody but init reaps it.
fkd_wait_ssh_gone 15 || fail "ssh clients of the killed sshfs daemons did not exit"
sshd_stop
assert_all_gone
log "ok"
