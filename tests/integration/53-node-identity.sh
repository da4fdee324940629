#!/bin/bash
# 53-node-identity: a name re-bound to another object while the daemon was down
# is not the file a process holds open.
#
# testfs reports the backing files' inode numbers, so they are the same in
# every run and the keeper must find that out at the first restart (log line
# "The daemon's inode numbers are stable across restarts").  Then a node found
# again by name under another inode number names another object: it is lost,
# and requests on it fail with ESTALE.
#
#   setup    M/f ("old\n") and M/g ("gdata\n") are held open read-write by
#            two processes; a few more nodes are made known to the kernel
#            (stat), so that the first restart has numbers to compare.
#   round 1  the daemon is SIGKILLed and its restart held back (testfs
#            --fail-start-if); while it is down another client replaces B/f
#            with a new file (B/f.new, then mv over B/f; the old inode stays
#            reachable as B/keep).  Once RECOVERED: writing through f's held
#            fd fails with ESTALE, and so do reading and fstat once the kernel
#            asks the keeper (a read right after RECOVERED may still be served
#            from the kernel's page cache of the old file: its data, never the
#            new file's; 1.2 s later it must fail); B/f holds exactly the new
#            content and B/keep exactly "old\n" (the old fd wrote into
#            neither); the keeper logged that f "now names another object" and
#            that the numbers are stable; M/f (by name, once the kernel's 1 s
#            entry cache expired) is the new file with the new file's inode
#            number.  Control: the held fd of g, which nobody replaced, reads
#            and writes as before.
#   round 2  a plain kill (nothing replaced): g's held fd still reads and writes,
#            nothing more is reported lost, f's fd still fails with ESTALE.
# timeout: 120
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd perl mkfifo stat

M=$T/mnt
B=$T/back
GATE=$T/gate
mkdir "$M" "$B"

fk_start "$M" --max-restarts=100 -- "$TESTFS" --backing="$B" --fail-start-if="$GATE" {}
fk_wait READY || fail "the keeper never became READY"

# ---- helpers (the fd holders are lib.sh's) -----------------------------------

# expect WHAT GOT WANT
expect() {
	[ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
	log "$1: $2"
}

# content PATH TEXT: the file at PATH holds exactly TEXT.
content() {
	file_is "$1" "$2" || fail "$1 holds '$FILE_GOT', expected '$2'"
}

lost_lines() {
	grep -c 'now names another object' "$FK_LOG"
}

# ---- setup -------------------------------------------------------------------

printf 'old\n' >"$M/f" || fail "writing $M/f failed"
printf 'gdata\n' >"$M/g" || fail "writing $M/g failed"
mkdir "$M/d" || fail "mkdir $M/d failed"
for i in 1 2 3 4 5; do
	printf '%s\n' "$i" >"$M/d/s$i" || fail "writing $M/d/s$i failed"
done
# Nodes the kernel holds when the daemon first dies: f, g, d, d/s1..d/s5.  All
# but f keep their numbers, which tells the keeper they are stable.
stat "$M/d" "$M"/d/s* >/dev/null || fail "stat through the mount failed"

holder_start f "$M/f"
holder_start g "$M/g"
expect "f before any kill" "$(holder f read)" 'read old\n'
expect "g before any kill" "$(holder g read)" 'read gdata\n'
ino_f_old=$(stat -c %i "$B/f")
expect "st_ino of f's held fd before any kill" "$(holder f fstat)" "ino $ino_f_old"

# ---- round 1: f re-bound while the daemon is down ------------------------------

: >"$GATE"
fk_kill_daemon || fail "round 1: killing the daemon failed"
fk_wait FAILED "" 30 >/dev/null || fail "round 1: the gated restart did not fail"
log "round 1: restart held back ($FK_LINE)"

# The other client replaces f.  Keeping a link to the old inode keeps it
# allocated: the filesystem (ext4 and most others) hands a freed inode number
# to the next file created, so once the mv freed the old one, any file made
# later could show f's old number and pass for the object the fd holds.  With
# the link, no file but B/keep can have that number, and B/keep shows whether
# the old fd wrote into the old object.  (B/f.new is created while the old f
# is still linked, so it gets another number in any case.)
ln "$B/f" "$B/keep" || fail "ln $B/f $B/keep failed"
printf 'NEW content\n' >"$B/f.new" || fail "writing $B/f.new failed"
mv "$B/f.new" "$B/f" || fail "mv $B/f.new $B/f failed"
ino_f_new=$(stat -c %i "$B/f")
[ "$ino_f_new" != "$ino_f_old" ] || fail "the new B/f has the old inode number $ino_f_old"
log "round 1: B/f replaced: inode $ino_f_old (now B/keep) -> $ino_f_new"

rm -f "$GATE"
fk_wait RECOVERED "" 30 >/dev/null || fail "round 1: no RECOVERED after the gate was removed"
log "round 1: $FK_LINE"

# The held fd of the replaced f: every request on it that reaches the keeper
# fails, and fails ESTALE.  A read right after RECOVERED may still be served
# from the kernel's page cache of the old object (its attributes, valid 1 s,
# say the cache is current): that is the old file's data, never the new file's.
# A write always reaches the keeper (no writeback cache).  Once the attributes
# expired the kernel asks the keeper again.  Every outcome is collected first,
# so that a failure shows all of them and what the backing files hold.
bad=
f_op() {
	local what=$1 want=$2 out
	shift 2
	out=$(holder f "$@")
	if [[ $out =~ ^($want)$ ]]; then
		log "round 1: $what through f's held fd: $out"
	else
		log "round 1: $what through f's held fd: $out  <-- expected $want"
		bad="$bad; $what: got '$out'"
	fi
}
f_op "read right after RECOVERED" "error ESTALE|read old\\\\n" read
f_op "write right after RECOVERED" "error ESTALE" write OLDFD\\n
sleep 1.2
f_op "read 1.2 s later" "error ESTALE" read
f_op "fstat 1.2 s later" "error ESTALE" fstat
f_op "write 1.2 s later" "error ESTALE" write OLDFD\\n
[ -z "$bad" ] ||
	fail "round 1: the held fd of the replaced f still works${bad}; B/f holds '$(cat "$B/f")', B/keep '$(cat "$B/keep")'"
content "$B/f" $'NEW content\n'
content "$B/keep" $'old\n'

# Control: g was not replaced and keeps working through its held fd.
expect "round 1: read through g's held fd" "$(holder g read)" 'read gdata\n'
expect "round 1: write through g's held fd" "$(holder g write GDATA\\n)" "wrote 6"
expect "round 1: read back through g's held fd" "$(holder g read)" 'read GDATA\n'
content "$B/g" $'GDATA\n'
content "$M/d/s3" $'3\n'

# What the keeper decided, and why.
grep -q "inode numbers are stable across restarts" "$FK_LOG" ||
	fail "the keeper did not log that testfs's inode numbers are stable"
grep -q "inode numbers change across restarts" "$FK_LOG" &&
	fail "the keeper took testfs's inode numbers for changing: $(grep 'change across restarts' "$FK_LOG")"
grep -q '/f now names another object' "$FK_LOG" ||
	fail "the keeper did not log that f now names another object"
[ "$(lost_lines)" = 1 ] ||
	fail "the keeper lost more than f: $(grep 'now names another object' "$FK_LOG")"

# By name, M/f is the new file, once the kernel looks the name up again (its
# entry for f, valid 1 s, still points at the lost node until then).
try_new_f() {
	[ "$(stat -c %i "$M/f" 2>/dev/null)" = "$ino_f_new" ] &&
		[ "$(cat "$M/f" 2>/dev/null)" = "NEW content" ]
}
deadline=$(($(now_ms) + 5000))
until try_new_f; do
	[ "$(now_ms)" -lt "$deadline" ] ||
		fail "$M/f is not the new file (inode $ino_f_new) 5 s after the restart: inode $(stat -c %i "$M/f" 2>&1), content $(cat "$M/f" 2>&1)"
	sleep 0.1
done
log "round 1: $M/f is the new file (inode $ino_f_new)"

# ---- round 2: a plain kill ------------------------------------------------------

fk_mark
fk_kill_daemon || fail "round 2: killing the daemon failed"
fk_wait RECOVERED "" 30 >/dev/null || fail "round 2: no RECOVERED"
log "round 2: $FK_LINE"
[ "$(lost_lines)" = 1 ] ||
	fail "a plain kill lost a node: $(grep 'now names another object' "$FK_LOG")"
expect "round 2: read through g's held fd" "$(holder g read)" 'read GDATA\n'
expect "round 2: write through g's held fd" "$(holder g write g-two\\n)" "wrote 6"
expect "round 2: read back through g's held fd" "$(holder g read)" 'read g-two\n'
expect "round 2: fstat of g's held fd" "$(holder g fstat)" "ino $(stat -c %i "$B/g")"
content "$B/g" $'g-two\n'
expect "round 2: read through f's held fd" "$(holder f read)" "error ESTALE"
content "$B/f" $'NEW content\n'
content "$M/f" $'NEW content\n'
content "$B/keep" $'old\n'

holder_stop f
holder_stop g
[ "$(fk_count GAVEUP)" = 0 ] || fail "unexpected GAVEUP"
fk_umount_exit 0
assert_not_mounted "$M"
assert_all_gone
log "ok"
