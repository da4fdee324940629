#!/bin/bash
# 81-remount-open: what cannot be carried over in remount mode, and what it gets.
# An fd held open across a kill and a working directory inside the mount belong
# to the old instance: after the swap, reading the fd, reading a relative path
# and listing "." fail at once with ESTALE (never a hang, never ENOTCONN), while
# an absolute path from the same process reaches the fresh mount; closing the
# fd then lets the old instance go. (Pages of the file still cached by the
# kernel are dropped first: those an old fd may still read.)
# timeout: 120
. "$(dirname "$0")/../lib-remount.sh"
. "$(dirname "$0")/../lib.sh"

need_prog "$TESTFS"
need_cmd python3
rm_need_remount

M=$T/mnt
B=$T/back
mkdir "$M" "$B" "$B/d"
echo held >"$B/d/f"

fk_start "$M" --mode=remount -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"

# The cwd process: chdir into the mount, then one line of results per request.
cat >"$T/cwd.py" <<'PY'
import errno, os, sys
os.chdir(sys.argv[1])
fd = os.open(sys.argv[2], os.O_RDONLY)
def held():
    # Pages still cached are the old instance's to give: drop them so the read asks.
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    return os.pread(fd, 64, 0)
print("ready", flush=True)
for req in open(sys.argv[3]):
    out = []
    for name, op in (("fd", held), ("rel", lambda: open("./f").read()), ("ls", lambda: os.listdir(".")),
                     ("abs", lambda: open(sys.argv[2]).read())):
        try:
            op()
            out.append(name + "=ok")
        except OSError as e:
            out.append(name + "=" + errno.errorcode[e.errno])
    print(req.strip(), " ".join(out), flush=True)
PY
mkfifo "$T/cwd.in"
# Opened read-write: never blocks; the process is told nothing more, then killed.
exec 7<>"$T/cwd.in"
run_bg cwd python3 "$T/cwd.py" "$M/d" "$M/d/f" "$T/cwd.in"
cwd_pid=$BG_PID
wait_match "$T/cwd.out" '^ready$' 10 >/dev/null || fail "the cwd process did not start"
echo q0 >&7
line=$(wait_match "$T/cwd.out" '^q0 ' 10) || fail "the cwd process did not answer"
[ "$line" = "q0 fd=ok rel=ok ls=ok abs=ok" ] || fail "before the kill: $line"

fk_kill_daemon || fail "killing the daemon failed"
fk_wait RECOVERED "" 30 || fail "no RECOVERED"
fk_wait REMOUNTED "" 5 || fail "no REMOUNTED"
log "$FK_LINE"

t0=$(now_ms)
echo q1 >&7
line=$(wait_match "$T/cwd.out" '^q1 ' 10) || fail "the cwd process did not answer after the kill"
[ "$line" = "q1 fd=ESTALE rel=ESTALE ls=ESTALE abs=ok" ] || fail "after the kill: $line"
log "held fd and cwd: $line (in $(($(now_ms) - t0)) ms)"
file_is "$M/d/f" "held
" || fail "a fresh open reads '$FILE_GOT'"

kill -TERM "$cwd_pid"
wait_pid "$cwd_pid" 10 || fail "the cwd process did not exit"
exec 7>&-
fk_umount_exit 0
assert_all_gone
log "ok"
