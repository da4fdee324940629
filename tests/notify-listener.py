#!/usr/bin/python3
# notify-listener.py SOCKET OUT [SPAWN]: stands in for systemd's end of the notify protocol
# (sd_notify(3)): binds the datagram socket SOCKET (what NOTIFY_SOCKET names) and appends each
# message it receives to OUT as one line, its newlines turned into "|", with " fds=N" when
# file descriptors came with it (SCM_RIGHTS, as FDSTORE=1 sends them). Prints "ready" once it
# listens. Runs until killed.
#
# Like systemd's fd store, it keeps the fds of FDSTORE=1 under their FDNAME= (a later one of
# the same name replaces it) and closes those FDSTOREREMOVE=1 names. On SIGUSR1 it starts a
# service the way systemd restarts one with a store: SPAWN is a JSON file {"argv": [...],
# "stdout": PATH, "events": PATH}; the program runs with the stored fds from fd 3 on, in the
# order they were stored, LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID set, NOTIFY_SOCKET=SOCKET,
# stdout and stderr appended to "stdout", and fd 9 appended to "events". OUT then gets the
# line "spawned PID"; when that process exits, "exited PID STATUS" (waitpid's status).
import array
import fcntl
import json
import os
import signal
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
spawn = sys.argv[3] if len(sys.argv) > 3 else None
store = {}  # FDNAME -> fd, in the order stored
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
# One write(2) per line on an O_APPEND descriptor: note() runs from the signal handlers too,
# and a buffered file object cannot be re-entered (Python raises RuntimeError and the listener
# died in the middle of a test).
outfd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def note(line):
    os.write(outfd, (line + "\n").encode())


def start(signum, frame):
    drain()
    spec = json.load(open(spawn))
    names = list(store)
    fds = [store[n] for n in names]
    pid = os.fork()
    if pid == 0:
        try:
            log = os.open(spec["stdout"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            ev = os.open(spec["events"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            # Everything out of the way of fds 3.. first: then each to its place.
            log, ev = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 20) for fd in (log, ev))
            moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 20) for fd in fds]
            for i, fd in enumerate(moved):
                os.dup2(fd, 3 + i)
            os.dup2(ev, 9)
            os.dup2(log, 1)
            os.dup2(log, 2)
            env = dict(os.environ)
            env.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=":".join(names),
                       LISTEN_PID=str(os.getpid()), NOTIFY_SOCKET=path)
            if not fds:
                for k in ("LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"):
                    env.pop(k)
            os.execve(spec["argv"][0], spec["argv"], env)
        except BaseException as e:
            os.write(2, ("notify-listener: cannot start %s: %r\n" % (spec["argv"][0], e)).encode())
        finally:
            os._exit(127)
    note("spawned %d" % pid)


def reap(signum, frame):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        note("exited %d %d" % (pid, status))


def handle(msg, anc):
    """One datagram: the fd store's bookkeeping, then its line in OUT."""
    fds = array.array("i")
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    for fd in fds:
        os.set_inheritable(fd, False)  # a spawned service gets them from fd 3 on only
    text = msg.decode(errors="replace").strip("\n")
    fields = dict(l.split("=", 1) for l in text.split("\n") if "=" in l)
    name = fields.get("FDNAME", "stored")
    if fields.get("FDSTORE") == "1" and fds:
        old = store.pop(name, None)
        if old is not None:
            os.close(old)
        store[name] = fds[0]
        for extra in fds[1:]:
            os.close(extra)
    else:
        for fd in fds:
            os.close(fd)
    if fields.get("FDSTOREREMOVE") == "1" and name in store:
        os.close(store.pop(name))
    note(text.replace("\n", "|") + (" fds=%d" % len(fds) if fds else ""))


def drain():
    """Like systemd, what the service sent before a restart is taken in before it."""
    while True:
        try:
            msg, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(253 * 4), socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        handle(msg, anc)


signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGCHLD, reap)
print("ready", flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(253 * 4))
    # A restart (SIGUSR1) waits until the store is whole again.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    handle(msg, anc)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
