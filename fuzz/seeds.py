#!/usr/bin/env python3
# Writes the seed corpora fuzz/corpus/<harness>/ from the descriptions below, so that every seed
# can be read and reviewed here (the input formats are in each harness's header comment).
#   fuzz/seeds.py            rewrite the seeds
# Seeds are starting points, not regression cases: those live in fuzz/regressions/, as found.
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

S_IFDIR, S_IFREG, S_IFLNK = 0o040000, 0o100000, 0o120000
O_RDWR, O_CREAT = 0o2, 0o100
ENOENT, ENOSYS, EAGAIN = 2, 38, 11

# The answered rows of the opcode table in opcode order, as fuzz_reply picks them (all rows
# with a reply but INIT). Keep in step with src/proxy/opcodes.c.
ANSWERED = [
    "LOOKUP", "GETATTR", "SETATTR", "READLINK", "SYMLINK", "MKNOD", "MKDIR", "UNLINK", "RMDIR",
    "RENAME", "LINK", "OPEN", "READ", "WRITE", "STATFS", "RELEASE", "FSYNC", "SETXATTR",
    "GETXATTR", "LISTXATTR", "REMOVEXATTR", "FLUSH", "OPENDIR", "READDIR", "RELEASEDIR",
    "FSYNCDIR", "GETLK", "SETLK", "SETLKW", "ACCESS", "CREATE", "BMAP", "DESTROY", "IOCTL",
    "POLL", "FALLOCATE", "READDIRPLUS", "RENAME2", "LSEEK", "COPY_FILE_RANGE", "SYNCFS",
    "TMPFILE", "STATX",
]


def op(name):
    return ANSWERED.index(name)


def u8(v):
    return struct.pack("<B", v & 0xFF)


def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v)


def attr(ino, mode, nlink=1, ctime=1700000000):
    # fuse_attr: ino size blocks atime mtime ctime, then the nsecs, mode nlink uid gid rdev
    # blksize flags.
    return (u64(ino) + u64(0) + u64(0) + u64(ctime) * 3 + u32(0) * 3 + u32(mode) + u32(nlink) +
            u32(0) * 3 + u32(4096) + u32(0))


def entry(nodeid, mode, ino=None):
    return u64(nodeid) + u64(1) + u64(1) + u64(1) + u32(0) * 2 + attr(ino or 1000 + nodeid, mode)


def open_out(fh):
    return u64(fh) + u32(0) + u32(0)


def dirent(ino, off, name, typ):
    rec = u64(ino) + u64(off) + u32(len(name)) + u32(typ) + name
    return rec + b"\0" * (-len(rec) % 8)


def direntplus(nodeid, mode, off, name):
    return entry(nodeid, mode) + dirent(1000 + nodeid, off, name, mode >> 12)


def init_in(minor=38, flags=0x40000000 | 0x3FFFFFF, flags2=0):
    return u32(7) + u32(minor) + u32(128 << 10) + u32(flags) + u32(flags2) + u32(0) * 11


def init_out(minor=38, flags=0x40000000 | 0x400000 | 0x2000 | 0x400 | 0x2 | 0x1,
             max_write=128 << 10, max_pages=32, size=64):
    b = (u32(7) + u32(minor) + u32(128 << 10) + u32(flags) + u16(16) + u16(12) +
         u32(max_write) + u32(1) + u16(max_pages) + u16(0) + u32(0) + u32(0) * 7)
    return b[:size]


# ---- fuzz_reply -------------------------------------------------------------------------------
# A record: action (0: request and answer, 1: request only, 2: answer the k-th request), the
# request (opcode index, node, handle, node2, handle2 choices, fixed body, WRITE length, names),
# the answer (error byte, size mode: 0 = what the table wants, 1 = next 16 bits; body).

def request(name, node=0, fh=0, node2=0, fh2=0, body=b"", names=b""):
    return u8(op(name)) + u8(node) + u8(fh) + u8(node2) + u8(fh2) + body + names


def answer(body=b"", error=0, fit=True):
    mode = u8(0 if fit else 1)
    e = u8(0) + mode if not error else u8(0xFF) + mode + u32(error)
    return e + u16(len(body)) + body


def read_in(size=4096, offset=0):
    return u64(0) + u64(offset) + u32(size) + u32(0) + u64(0) + u32(0) + u32(0)


reply_seeds = {}
# Every answered opcode once, on the root with handle "f", with a zero body of the table's size.
for i, name in enumerate(ANSWERED):
    reply_seeds["op-" + name] = u8(0) + u8(0) + u8(i)
reply_seeds["world-all-flags"] = u8(0x1F) + u8(0) + u8(op("GETATTR"))
reply_seeds["lookup-new-node"] = (
    u8(0) + u8(0) + request("LOOKUP", names=u8(0)) + answer(entry(20, S_IFREG | 0o644)))
reply_seeds["lookup-known-node"] = (
    u8(0) + u8(0) + request("LOOKUP", node=1, names=u8(1)) + answer(entry(11, S_IFREG | 0o644)))
reply_seeds["create-new-file"] = (
    u8(0) + u8(0) +
    request("CREATE", body=u32(O_RDWR | O_CREAT) + u32(S_IFREG | 0o644) + u32(0) + u32(0),
            names=u8(0)) +
    answer(entry(21, S_IFREG | 0o644) + open_out(0x300)))
reply_seeds["write-fsync-flush"] = (
    u8(0) + u8(0) +
    request("WRITE", node=2, fh=0, body=u64(0) + u64(0) + u32(0) + u32(0) + u64(0) + u32(0) +
            u32(0), names=u8(4)) + answer(u32(64) + u32(0)) +
    u8(0) + request("FSYNC", node=2, fh=0, body=u64(0) + u32(0) + u32(0)) + answer() +
    u8(0) + request("FLUSH", node=2, fh=0, body=u64(0) + u32(0) + u32(0) + u64(7)) + answer())
reply_seeds["readdirplus-two-entries"] = (
    u8(0) + u8(0) + request("READDIRPLUS", node=1, fh=2, body=read_in()) +
    answer(direntplus(11, S_IFREG | 0o644, 1, b"f") + direntplus(22, S_IFDIR | 0o755, 2, b"e")))
reply_seeds["two-in-flight-answered-late"] = (
    u8(0) + u8(1) + request("LOOKUP", names=u8(0)) +
    u8(1) + request("MKDIR", body=u32(S_IFDIR | 0o755) + u32(0), names=u8(7)) +
    u8(2) + u8(11) + answer(entry(23, S_IFDIR | 0o755)) +
    u8(2) + u8(10) + answer(error=-ENOENT, fit=False))
reply_seeds["rename-over-hidden"] = (
    u8(1) + u8(0) + request("RENAME", node=0, node2=0, body=u64(0), names=u8(2) + u8(1)) +
    answer())
reply_seeds["setlk-then-release"] = (
    u8(0x10) + u8(0) +
    request("SETLK", node=2, fh=0, body=u64(0) + u64(9) + u64(0) + u64(9) + u32(1) + u32(42) +
            u32(0) + u32(0)) + answer() +
    u8(0) + request("RELEASE", node=2, fh=0, body=u64(0) + u32(0) + u32(0) + u32(0) + u32(0) +
                    u64(9)) + answer())
reply_seeds["raw-short-message"] = u8(0) + u8(3) + u16(8) + b"\x08\0\0\0\0\0\0\0"

# ---- fuzz_notify ------------------------------------------------------------------------------
# A record: kind (0 notification, 1 call answer, 2 orphan answer, 3 INTERRUPT answer, 4 raw).

def notification(code, body, n0=1, n1=2, how=3):
    return u8(0) + u8(code) + u8(how) + u8(n0) + u8(n1) + u16(len(body)) + body


def reply(body=b"", error=0):
    e = u8(0) if not error else u8(0xFF) + u32(error)
    return e + u16(len(body)) + body


notify_seeds = {
    "poll": u8(0) + notification(1, u64(5)),
    "inval-inode": u8(0) + notification(2, u64(0) + u64(0) + u64(4096)),
    "inval-entry": u8(0) + notification(3, u64(0) + u32(1) + u32(0) + b"f\0", n0=1),
    "store": u8(0) + notification(4, u64(0) + u64(0) + u32(4) + u32(0) + b"data", n0=2),
    "retrieve": u8(0) + notification(5, u64(1) + u64(0) + u64(0) + u32(4096) + u32(0), n0=2),
    "delete": u8(0) + notification(6, u64(0) + u64(0) + u32(1) + u32(0) + b"f\0"),
    "resend-inc-epoch-prune": (u8(0) + notification(7, b"") + notification(8, b"") +
                               notification(9, u32(0) + u32(0))),
    "call-answers": (u8(0) + u8(1) + u8(0) + reply(entry(30, S_IFREG | 0o644)) +
                     u8(1) + u8(1) + reply(error=-ENOENT) + u8(1) + u8(3) + reply()),
    "orphan-answers": u8(0) + u8(2) + u8(1) + reply() + u8(2) + u8(4) + reply(error=-ENOENT),
    "interrupt-answer": u8(0) + u8(3) + u8(0) + reply(error=-EAGAIN),
    "hidden-world": u8(0x1D) + notification(3, u64(0) + u32(28) + u32(0) +
                                            b".fusekeeper.00000000000000a1\0", n0=0),
}

# ---- fuzz_dirents -----------------------------------------------------------------------------
# A round: flags (1 READDIRPLUS, 2 the root, 4 a size, 8 a raw tail, 16 an error), offset, the
# records (each opened by a flags byte; 0x80 ends), [the tail].

def rec_named(name, sel, off, dot=None):
    if dot is None:
        return u8(0x10) + u8(len(name) - 1) + name + u8(sel) + u8(off)
    return u8(0x10 | dot) + u8(sel) + u8(off)


def rec_hidden(digits, sel, off):
    return u8(0x11) + bytes(digits) + u8(sel) + u8(off)


END = u8(0x80)
dirent_seeds = {
    "readdirplus-dir": (u8(0) + u8(1) + u8(0) + rec_named(b"f", 2, 1) +
                        rec_named(b"s", 4, 2) + rec_named(b"new", 6, 3) + END),
    "readdirplus-dots": (u8(0) + u8(3) + u8(0) + rec_named(b"", 0, 1, dot=2) +
                         rec_named(b"", 0, 2, dot=3) + rec_named(b"d", 1, 3) + END),
    "readdir-root": (u8(0) + u8(2) + u8(0) + rec_named(b"d", 1, 1) + rec_named(b"g", 3, 2) +
                     END),
    "hidden-only-then-more": (u8(0x01) + u8(3) + u8(0) + rec_hidden([0] * 14 + [10, 1], 3, 1) +
                              END + u8(3) + u8(1) + rec_named(b"h", 2, 2) + END),
    "hidden-among-others": (u8(0x01) + u8(3) + u8(0) + rec_named(b"d", 1, 1) +
                            rec_hidden([0] * 14 + [10, 1], 3, 2) + rec_named(b"c", 5, 3) + END),
    "remap-inos": u8(0x04) + u8(1) + u8(0) + rec_named(b"f", 0x82, 1) + END,
    "error-answer": u8(0) + u8(0x11) + u8(0) + u8(2) + END,
}

# ---- fuzz_init --------------------------------------------------------------------------------
# mode (1: a restart follows; 2: the first answer is the typical one), the kernel's INIT (length
# byte, bytes), then the answers: error byte, length byte, bytes.

def init_answer(body, error=0):
    e = u8(0) if not error else u8(0xFF) + u32(error)
    return e + u8(len(body)) + body


init_seeds = {
    "first-typical": u8(0) + u8(64) + init_in() + init_answer(init_out()),
    "first-old-daemon": u8(0) + u8(64) + init_in() + init_answer(init_out(minor=22, size=24)),
    "first-huge-max-write": (u8(0) + u8(64) + init_in() +
                             init_answer(init_out(max_write=0xFFFFFFFF, max_pages=0xFFFF))),
    "first-refused": u8(0) + u8(64) + init_in() + init_answer(b"", error=-ENOSYS),
    "old-kernel": u8(0) + u8(8) + init_in(minor=12)[:8] + init_answer(init_out(minor=12)),
    "restart-same": u8(1) + u8(64) + init_in() + init_answer(init_out()) +
    init_answer(init_out()),
    "restart-fewer-flags": (u8(3) + u8(64) + init_in() +
                            init_answer(init_out(flags=0x40000000 | 0x1))),
    "restart-smaller-max-write": u8(3) + u8(64) + init_in() + init_answer(init_out(max_write=4096)),
}


def write(harness, seeds):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


write("fuzz_reply", reply_seeds)
write("fuzz_notify", notify_seeds)
write("fuzz_dirents", dirent_seeds)
write("fuzz_init", init_seeds)
