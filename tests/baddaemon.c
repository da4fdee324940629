/*
 * baddaemon — a raw-protocol FUSE daemon (no libfuse) for testing how the keeper
 * handles a daemon that breaks the protocol.
 *
 *   baddaemon /dev/fd/N      (or just N)
 *
 * It serves a fixed tree: the root directory (node 1) holding one regular
 * file "good" (node 2, "hello\n"), with all cache timeouts 0. Looking up
 * these names produces malformed output on purpose:
 *
 *   short      3 bytes of a reply header
 *   badunique  a well-formed ENOENT reply to a unique never sent (unique ^ 0x100000)
 *   callunique  the same to a unique with the bit the keeper marks its own
 *              requests with (1 << 62), which the keeper never sent
 *   intunique  an interrupt's answer (EAGAIN, unique | FUSE_INT_REQ_BIT) for this
 *              LOOKUP, which was never interrupted
 *   intfuture  the same for a request the kernel has not made (unique + 0x100000)
 *   orphanunique  ... with the bits of the keeper's own requests whose answers
 *              nobody waits for (1 << 62 | 1 << 61)
 *   badsize    error 0 with only the first 40 bytes of a fuse_entry_out
 *   badnotify  a notification with unknown code 99 and an 8-byte body,
 *              then a normal ENOENT reply
 *   baderror   a reply with error +5 (errors must be negative) and no body
 *   biglen     a header with error 0 whose len says 4096, and nothing after it
 *   closefd    no reply at all: it closes its connection and waits to be killed
 *
 * Apart from badnotify, the request is left unanswered. Other names get
 * ENOENT. FORGET, BATCH_FORGET and INTERRUPT get no reply, opcodes not
 * served get ENOSYS.
 *
 *   baddaemon --mount DIR [DIR...] [--data=OPTS]
 *
 * mounts a FUSE filesystem at each DIR itself (open /dev/fuse, then mount(2) of type
 * fuse.baddaemon with "fd=N,rootmode=40000,user_id=0,group_id=0" and OPTS), as libfuse does
 * as root, and serves the first: a daemon for the keeper to take the mount over from. A
 * mount that fails is reported ("baddaemon: mount DIR: ERROR") and ends it with status 1.
 *
 * One request per read(), single-threaded. Exits 0 when the connection ends
 * (read returns 0 or ENODEV), 1 on other errors, 2 for bad usage.
 * Written against <linux/fuse.h> 7.38; it answers INIT with at most 7.38.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* Large enough for any request: max_write is 128 KiB, but the kernel may
 * send up to max_pages (256) pages in other messages. */
#define BUF_SIZE ((1u << 20) + 8192)

/* An interrupt's unique is its request's with this bit (FUSE_INT_REQ_BIT, protocol 7.26). */
#define INT_REQ_BIT 1ULL

#define OUR_MINOR 38		/* the protocol <linux/fuse.h> describes */

enum {
	NODE_ROOT = FUSE_ROOT_ID,
	NODE_GOOD = 2,
};

enum {
	FH_GOOD = 7,
	FH_ROOT = 9,
};

static const char good_content[] = "hello\n";

static int fuse_fd = -1;
static time_t start_time;

/* One request: its header and the argument bytes after it. */
struct req {
	const struct fuse_in_header *in;
	const void *arg;
	size_t arglen;
};

/* ---- sending ---------------------------------------------------------- */

/* Writes one message of NIOV pieces; returns 0 or -errno. */
static int send_iov(const struct iovec *iov, int niov)
{
	ssize_t n;

	do
		n = writev(fuse_fd, iov, niov);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

/* A reply that is meant to be well-formed: failures are worth a line, except
 * ENOENT (the request was interrupted or aborted meanwhile). */
static void reply(const struct req *r, int error, const void *body, size_t len)
{
	struct fuse_out_header h = {
		.len = (uint32_t)(sizeof(h) + len),
		.error = error,
		.unique = r->in->unique,
	};
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)body, .iov_len = len },
	};
	int e = send_iov(iov, len ? 2 : 1);

	if (e < 0 && e != -ENOENT)
		fprintf(stderr, "baddaemon: Failed to reply to opcode %" PRIu32 " (unique %" PRIu64 "): %s\n",
			r->in->opcode, r->in->unique, strerror(-e));
}

/* ERR is a positive errno. */
static void reply_err(const struct req *r, int err)
{
	reply(r, -err, NULL, 0);
}

/* Writes LEN bytes of a deliberately broken message; the error write(2)
 * returns (EINVAL from the kernel) is the expected outcome, so not logged. */
static void send_raw(const void *msg, size_t len)
{
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };

	send_iov(&iov, 1);
}

/* ---- the tree --------------------------------------------------------- */

static bool fill_attr(uint64_t nodeid, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	switch (nodeid) {
	case NODE_ROOT:
		a->mode = S_IFDIR | 0755;
		a->nlink = 2;
		break;
	case NODE_GOOD:
		a->mode = S_IFREG | 0644;
		a->nlink = 1;
		a->size = sizeof(good_content) - 1;
		a->blocks = 1;
		break;
	default:
		return false;
	}
	a->ino = nodeid;
	a->atime = a->mtime = a->ctime = (uint64_t)start_time;
	a->blksize = 4096;
	return true;
}

/* ---- malformed lookups ------------------------------------------------ */

static void bad_short(const struct req *r)
{
	struct fuse_out_header h = { .len = sizeof(h), .error = -ENOENT, .unique = r->in->unique };

	send_raw(&h, 3);
}

static void bad_unique(const struct req *r)
{
	struct fuse_out_header h = {
		.len = sizeof(h), .error = -ENOENT, .unique = r->in->unique ^ 0x100000,
	};

	send_raw(&h, sizeof(h));
}

static void send_unique(uint64_t unique, int error)
{
	struct fuse_out_header h = { .len = sizeof(h), .error = error, .unique = unique };

	send_raw(&h, sizeof(h));
}

static void bad_call_unique(const struct req *r)
{
	(void)r;
	send_unique(1ULL << 62 | 0x7654320, -ENOENT);
}

static void bad_orphan_unique(const struct req *r)
{
	(void)r;
	send_unique(1ULL << 62 | 1ULL << 61 | 0x7654320, -ENOENT);
}

static void bad_int_unique(const struct req *r)
{
	send_unique(r->in->unique | INT_REQ_BIT, -EAGAIN);
}

static void bad_int_future(const struct req *r)
{
	send_unique((r->in->unique + 0x100000) | INT_REQ_BIT, -EAGAIN);
}

static void bad_size(const struct req *r)
{
	struct {
		struct fuse_out_header h;
		struct fuse_entry_out e;
	} msg = {
		.h = { .len = sizeof(msg.h) + 40, .error = 0, .unique = r->in->unique },
		.e = { .nodeid = NODE_GOOD, .generation = 1 },
	};

	fill_attr(NODE_GOOD, &msg.e.attr);
	send_raw(&msg, sizeof(msg.h) + 40);
}

static void bad_notify(const struct req *r)
{
	struct {
		struct fuse_out_header h;
		uint64_t body;
	} msg = { .h = { .len = sizeof(msg), .error = 99, .unique = 0 } };

	send_raw(&msg, sizeof(msg));
	reply_err(r, ENOENT);
}

static void bad_error(const struct req *r)
{
	struct fuse_out_header h = { .len = sizeof(h), .error = 5, .unique = r->in->unique };

	send_raw(&h, sizeof(h));
}

static void bad_len(const struct req *r)
{
	struct fuse_out_header h = { .len = 4096, .error = 0, .unique = r->in->unique };

	send_raw(&h, sizeof(h));
}

static void close_fd(const struct req *r)
{
	(void)r;
	close(fuse_fd);
	for (;;)
		pause();
}

static const struct {
	const char *name;
	void (*send)(const struct req *r);
} bad_names[] = {
	{ "short", bad_short },
	{ "badunique", bad_unique },
	{ "callunique", bad_call_unique },
	{ "orphanunique", bad_orphan_unique },
	{ "intunique", bad_int_unique },
	{ "intfuture", bad_int_future },
	{ "badsize", bad_size },
	{ "badnotify", bad_notify },
	{ "baderror", bad_error },
	{ "biglen", bad_len },
	{ "closefd", close_fd },
};

/* ---- operations ------------------------------------------------------- */

static void do_init(const struct req *r)
{
	const struct fuse_init_in *in = r->arg;
	struct fuse_init_out out = { .major = FUSE_KERNEL_VERSION };

	/* major and minor are all that every INIT is sure to carry. */
	if (r->arglen < 2 * sizeof(uint32_t)) {
		reply_err(r, EINVAL);
		return;
	}
	if (in->major < FUSE_KERNEL_VERSION) {
		reply_err(r, EPROTO);
		return;
	}
	/* A newer major gets our major alone; the kernel then asks again. */
	if (in->major > FUSE_KERNEL_VERSION) {
		reply(r, 0, &out, sizeof(out));
		return;
	}
	out.minor = MIN(in->minor, OUR_MINOR);
	if (r->arglen >= offsetof(struct fuse_init_in, max_readahead) + sizeof(in->max_readahead))
		out.max_readahead = in->max_readahead;
	out.flags = 0;
	out.max_background = 16;
	out.congestion_threshold = 12;
	out.max_write = 131072;
	out.time_gran = 1;
	reply(r, 0, &out, sizeof(out));
}

static void do_lookup(const struct req *r)
{
	const char *name = r->arg;
	struct fuse_entry_out e = { 0 };

	if (r->arglen == 0 || memchr(name, '\0', r->arglen) == NULL) {
		reply_err(r, EINVAL);
		return;
	}
	if (r->in->nodeid != NODE_ROOT) {
		reply_err(r, r->in->nodeid == NODE_GOOD ? ENOTDIR : ENOENT);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
		if (strcmp(name, bad_names[i].name) == 0) {
			bad_names[i].send(r);
			return;
		}
	}
	if (strcmp(name, "good") != 0) {
		reply_err(r, ENOENT);
		return;
	}
	e.nodeid = NODE_GOOD;
	e.generation = 1;
	fill_attr(NODE_GOOD, &e.attr);
	reply(r, 0, &e, sizeof(e));
}

static void do_getattr(const struct req *r)
{
	struct fuse_attr_out out = { 0 };

	if (!fill_attr(r->in->nodeid, &out.attr)) {
		reply_err(r, ENOENT);
		return;
	}
	reply(r, 0, &out, sizeof(out));
}

static void do_open(const struct req *r)
{
	struct fuse_open_out out = { .fh = FH_GOOD };

	switch (r->in->nodeid) {
	case NODE_GOOD:
		reply(r, 0, &out, sizeof(out));
		break;
	case NODE_ROOT:
		reply_err(r, EISDIR);
		break;
	default:
		reply_err(r, ENOENT);
		break;
	}
}

static void do_opendir(const struct req *r)
{
	struct fuse_open_out out = { .fh = FH_ROOT };

	switch (r->in->nodeid) {
	case NODE_ROOT:
		reply(r, 0, &out, sizeof(out));
		break;
	case NODE_GOOD:
		reply_err(r, ENOTDIR);
		break;
	default:
		reply_err(r, ENOENT);
		break;
	}
}

static void do_read(const struct req *r)
{
	const struct fuse_read_in *in = r->arg;
	const size_t len = sizeof(good_content) - 1;
	size_t start;

	if (r->arglen < sizeof(*in)) {
		reply_err(r, EINVAL);
		return;
	}
	if (in->fh != FH_GOOD) {
		reply_err(r, EBADF);
		return;
	}
	start = MIN(in->offset, len);
	reply(r, 0, good_content + start, MIN(in->size, len - start));
}

static void do_readdir(const struct req *r)
{
	static const struct {
		const char *name;
		uint64_t ino;
		uint32_t type;
	} entries[] = {
		{ ".", NODE_ROOT, S_IFDIR >> 12 },
		{ "..", NODE_ROOT, S_IFDIR >> 12 },
		{ "good", NODE_GOOD, S_IFREG >> 12 },
	};
	const struct fuse_read_in *in = r->arg;
	char buf[3 * FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + 8)] = { 0 };
	size_t used = 0;

	if (r->arglen < sizeof(*in)) {
		reply_err(r, EINVAL);
		return;
	}
	if (in->fh != FH_ROOT) {
		reply_err(r, EBADF);
		return;
	}
	/* An entry's offset is the index of the entry after it. */
	for (uint64_t i = in->offset; i < ARRAY_SIZE(entries); i++) {
		size_t namelen = strlen(entries[i].name);
		size_t size = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
		struct fuse_dirent *d = (struct fuse_dirent *)(buf + used);

		if (used + size > in->size)
			break;
		d->ino = entries[i].ino;
		d->off = i + 1;
		d->namelen = (uint32_t)namelen;
		d->type = entries[i].type;
		memcpy(d->name, entries[i].name, namelen);
		used += size;
	}
	reply(r, 0, buf, used);
}

static void do_statfs(const struct req *r)
{
	struct fuse_statfs_out out = { .st = { .bsize = 4096, .namelen = 255 } };

	reply(r, 0, &out, sizeof(out));
}

static void do_ok(const struct req *r)
{
	reply(r, 0, NULL, 0);
}

static void do_no_reply(__attribute__((unused)) const struct req *r)
{
}

/* Opcodes not listed get ENOSYS. */
static void (*const handlers[])(const struct req *r) = {
	[FUSE_INIT]		= do_init,
	[FUSE_LOOKUP]		= do_lookup,
	[FUSE_FORGET]		= do_no_reply,
	[FUSE_BATCH_FORGET]	= do_no_reply,
	[FUSE_INTERRUPT]	= do_no_reply,
	[FUSE_GETATTR]		= do_getattr,
	[FUSE_OPEN]		= do_open,
	[FUSE_READ]		= do_read,
	[FUSE_FLUSH]		= do_ok,
	[FUSE_RELEASE]		= do_ok,
	[FUSE_OPENDIR]		= do_opendir,
	[FUSE_READDIR]		= do_readdir,
	[FUSE_RELEASEDIR]	= do_ok,
	[FUSE_STATFS]		= do_statfs,
};

static void dispatch(const struct req *r)
{
	uint32_t op = r->in->opcode;

	if (op < ARRAY_SIZE(handlers) && handlers[op])
		handlers[op](r);
	else
		reply_err(r, ENOSYS);
}

/* ---- main ------------------------------------------------------------- */

/* Accepts "/dev/fd/N" or "N". */
static int parse_fd(const char *arg)
{
	const char *p = arg;
	char *end;
	long n;

	if (strncmp(p, "/dev/fd/", 8) == 0)
		p += 8;
	errno = 0;
	n = strtol(p, &end, 10);
	if (errno || end == p || *end || n < 0 || n > INT32_MAX)
		return -1;
	return (int)n;
}

int main(int argc, char *argv[])
{
	struct sigaction sa = { .sa_handler = SIG_IGN };
	char *buf;

	if (argc >= 3 && !strcmp(argv[1], "--mount")) {
		const char *extra = "";

		if (!strncmp(argv[argc - 1], "--data=", 7))
			extra = argv[--argc] + 7;
		for (int i = 2; i < argc; i++) {
			char data[512];
			int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

			snprintf(data, sizeof(data), "fd=%d,rootmode=40000,user_id=0,group_id=0%s%s",
				 fd, *extra ? "," : "", extra);
			if (fd < 0 || mount("baddaemon", argv[i], "fuse.baddaemon",
					    MS_NOSUID | MS_NODEV, data) < 0) {
				fprintf(stderr, "baddaemon: mount %s: %s\n", argv[i], strerror(errno));
				return 1;
			}
			if (i == 2)
				fuse_fd = fd;
		}
	} else if (argc != 2 || (fuse_fd = parse_fd(argv[1])) < 0) {
		fprintf(stderr, "usage: baddaemon /dev/fd/N | --mount DIR... [--data=OPTS]\n");
		return 2;
	}
	if (fcntl(fuse_fd, F_GETFD) < 0) {
		fprintf(stderr, "baddaemon: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	/* A keeper that went away shows as EPIPE and then end of file. */
	sigaction(SIGPIPE, &sa, NULL);
	start_time = time(NULL);
	buf = malloc(BUF_SIZE);
	if (!buf) {
		fprintf(stderr, "baddaemon: out of memory\n");
		return 1;
	}

	for (;;) {
		const struct fuse_in_header *in = (const void *)buf;
		struct req r;
		ssize_t n = read(fuse_fd, buf, BUF_SIZE);

		if (n == 0)
			break;
		if (n < 0) {
			struct pollfd pfd = { .fd = fuse_fd, .events = POLLIN };

			if (errno == ENODEV)
				break;
			/* ENOENT: the request was interrupted before we read it. */
			if (errno == EINTR || errno == ENOENT)
				continue;
			if (errno == EAGAIN) {
				poll(&pfd, 1, -1);
				continue;
			}
			fprintf(stderr, "baddaemon: Failed to read request: %s\n", strerror(errno));
			free(buf);
			return 1;
		}
		if ((size_t)n < sizeof(*in) || in->len != (uint64_t)n) {
			fprintf(stderr, "baddaemon: Ignored malformed request of %zd bytes\n", n);
			continue;
		}
		r.in = in;
		r.arg = in + 1;
		r.arglen = (size_t)n - sizeof(*in);
		dispatch(&r);
	}
	free(buf);
	return 0;
}
