#!/usr/bin/python3
# notify-listener.py SOCKET OUT: stands in for systemd's end of the notify protocol
# (sd_notify(3)): binds the datagram socket SOCKET (what NOTIFY_SOCKET names) and appends each
# message it receives to OUT as one line, its newlines turned into "|", with " fds=N" when
# file descriptors came with it (SCM_RIGHTS, as FDSTORE=1 sends them). Prints "ready" once it
# listens. Runs until killed.
import array
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("ready", flush=True)
with open(out, "a") as f:
    while True:
        msg, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(253 * 4))
        fds = array.array("i")
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        line = msg.decode(errors="replace").strip("\n").replace("\n", "|")
        f.write(line + (" fds=%d" % len(fds) if fds else "") + "\n")
        f.flush()
