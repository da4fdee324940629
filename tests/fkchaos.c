/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fkchaos - a hostile daemon for fusekeeper's tests: a shim run as the daemon that relays
 * between the keeper and a real daemon, and now and then breaks the protocol on purpose.
 *
 *   fkchaos [--rate=PERCENT] [--seed=N] [--counter=FILE] [--calm-if=FILE]
 *           [--kinds=KIND,...] [--calls-only] [--opcodes=N,...] [--log=FILE]
 *           -- COMMAND [ARG...]
 *
 * The keeper replaces {} in COMMAND by /dev/fd/N, its channel. fkchaos takes that fd, makes a
 * SOCK_SEQPACKET socketpair, runs COMMAND with its own end in place of /dev/fd/N, and relays
 * both ways. For PERCENT per cent of the daemon's messages (default 2, decimals allowed) it
 * sends instead one malformed message of a kind the keeper must refuse:
 *
 *   short      fewer bytes than a reply header
 *   lenlong    a header whose len says more than the message holds
 *   lenshort   ... less than it holds
 *   unique     the reply with a unique the keeper never sent (bit 50 set)
 *   callunique the reply with the keeper's call bit (1 << 62) and a number it never gave out
 *   orphan     ... with the bits of its calls nobody waits for (1 << 62 | 1 << 61)
 *   poserror   a positive error, no body
 *   bigerror   an error past -511
 *   errbody    an error with a body
 *   size       a success whose body size does not fit the opcode: a fixed-size body 8 bytes
 *              short or long, a body where none belongs, more than a READ/READDIR asked for,
 *              an INIT answer shorter than the oldest one
 *   noname     a READDIR or READDIRPLUS answer whose first record has namelen 0
 *   longname   ... whose first record's namelen is over 1024
 *   cutrecord  ... cut short in its first record (the kernel would take it for the end)
 *   nodeid0    an entry with node ID 0 (a negative entry) answering a request that creates
 *              (MKDIR, MKNOD, SYMLINK, LINK, CREATE), which must name the object it made
 *   notify     a notification with an unknown code, too short for its code, or whose name
 *              length runs past its end (sent in place of the reply)
 *   dup        the reply, then the same reply again
 *   huge       the reply padded to 2 MiB, more than the keeper's buffer takes
 *   drop       the answer is not sent at all; meant for answers nobody waits for (the keeper's
 *              clean-up: --calls-only), a daemon that ignores them; not in the default set
 *   silent     from then on no message of the daemon reaches the keeper (it keeps reading:
 *              a hung daemon); not in the default set, since only --hang-timeout ends it
 *
 * --kinds picks from these (default: all but drop and silent). --calls-only breaks only answers
 * to the keeper's own requests (unique with bit 62: recovery's INIT, LOOKUPs, OPENs, ...), and
 * --opcodes only answers to requests of those opcodes. A kind that does not fit the message
 * (cutrecord for a GETATTR answer) is replaced by another that does. The keeper's own first
 * INIT is never broken: a mount whose first daemon fails is given up on by design.
 *
 * Each run draws from its own random sequence: the seed (default: the time) plus the number
 * found in --counter=FILE, which each run increments under a lock; the pair is logged, so a run
 * can be repeated. With --calm-if=FILE, nothing is broken while FILE exists.
 *
 * --log=FILE gets one line per message broken, "PID KIND OPCODE UNIQUE", appended as it is
 * sent, so that a test can check that the keeper noticed each one. Diagnostics go to stderr.
 *
 * fkchaos exits when COMMAND does, with its status (killed by a signal: the same signal), and
 * shuts COMMAND's channel when the keeper shuts its own. The keeper kills the daemon's process
 * group, which holds both. Exit status 2: bad usage; 1: could not start.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE ((2u << 20) + 65536) /* more than any message the keeper sends or takes */
#define HUGE_SIZE (2u << 20)	      /* more than the keeper takes (1 MiB and a little) */
#define SOCK_BUF (4 << 20)
#define CALL_BIT (1ULL << 62)
#define ORPHAN_BIT (1ULL << 61)
#define TABLE_SIZE 65536 /* requests remembered by unique; more in flight is not expected */

enum kind {
	K_SHORT, K_LENLONG, K_LENSHORT, K_UNIQUE, K_CALLUNIQUE, K_ORPHAN, K_POSERROR, K_BIGERROR,
	K_ERRBODY, K_SIZE, K_NONAME, K_LONGNAME, K_CUTRECORD, K_NODEID0, K_NOTIFY, K_DUP, K_HUGE,
	K_DROP, K_SILENT, K__COUNT
};

static const char *const kind_names[K__COUNT] = {
	[K_SHORT] = "short",	       [K_LENLONG] = "lenlong",	  [K_LENSHORT] = "lenshort",
	[K_UNIQUE] = "unique",	       [K_CALLUNIQUE] = "callunique", [K_ORPHAN] = "orphan",
	[K_POSERROR] = "poserror",     [K_BIGERROR] = "bigerror",	  [K_ERRBODY] = "errbody",
	[K_SIZE] = "size",	       [K_NONAME] = "noname",	  [K_LONGNAME] = "longname",
	[K_CUTRECORD] = "cutrecord",   [K_NODEID0] = "nodeid0",	  [K_NOTIFY] = "notify",
	[K_DUP] = "dup",	       [K_HUGE] = "huge",		  [K_DROP] = "drop",
	[K_SILENT] = "silent",
};

/* What a success reply's body may be, per opcode, as the protocol (7.38) defines it. Written
 * here on its own rather than taken from the keeper, so that the test checks the keeper. */
enum out_rule { R_UNKNOWN = 0, R_NONE, R_FIXED, R_UPTO, R_INIT };

static const struct {
	uint8_t rule;
	uint32_t size;
} out_rules[64] = {
	[FUSE_LOOKUP] = { R_FIXED, sizeof(struct fuse_entry_out) },
	[FUSE_GETATTR] = { R_FIXED, sizeof(struct fuse_attr_out) },
	[FUSE_SETATTR] = { R_FIXED, sizeof(struct fuse_attr_out) },
	[FUSE_MKDIR] = { R_FIXED, sizeof(struct fuse_entry_out) },
	[FUSE_MKNOD] = { R_FIXED, sizeof(struct fuse_entry_out) },
	[FUSE_SYMLINK] = { R_FIXED, sizeof(struct fuse_entry_out) },
	[FUSE_LINK] = { R_FIXED, sizeof(struct fuse_entry_out) },
	[FUSE_OPEN] = { R_FIXED, sizeof(struct fuse_open_out) },
	[FUSE_OPENDIR] = { R_FIXED, sizeof(struct fuse_open_out) },
	[FUSE_STATFS] = { R_FIXED, sizeof(struct fuse_statfs_out) },
	[FUSE_WRITE] = { R_FIXED, sizeof(struct fuse_write_out) },
	[FUSE_CREATE] = { R_FIXED, sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out) },
	[FUSE_READ] = { R_UPTO, 0 },
	[FUSE_READDIR] = { R_UPTO, 0 },
	[FUSE_READDIRPLUS] = { R_UPTO, 0 },
	[FUSE_UNLINK] = { R_NONE, 0 },
	[FUSE_RMDIR] = { R_NONE, 0 },
	[FUSE_RENAME] = { R_NONE, 0 },
	[FUSE_RENAME2] = { R_NONE, 0 },
	[FUSE_RELEASE] = { R_NONE, 0 },
	[FUSE_RELEASEDIR] = { R_NONE, 0 },
	[FUSE_FLUSH] = { R_NONE, 0 },
	[FUSE_FSYNC] = { R_NONE, 0 },
	[FUSE_FSYNCDIR] = { R_NONE, 0 },
	[FUSE_ACCESS] = { R_NONE, 0 },
	[FUSE_INIT] = { R_INIT, 0 },
};

/* One request the daemon was given: what a malformed answer to it must look like. */
struct slot {
	uint64_t unique; /* 0: free */
	uint32_t opcode;
	uint32_t size;	 /* a READ's or READDIR's fuse_read_in.size */
};

static struct {
	double rate;
	uint64_t seed;
	const char *counter;
	const char *calm_if;
	const char *log;
	bool kinds[K__COUNT];
	bool calls_only;
	bool opcodes[64]; /* all false: any opcode */
	bool any_opcode;
} opt = { .rate = 2.0, .any_opcode = true };

static int kfd = -1, dfd = -1;	/* the keeper's channel; our end towards the daemon */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot table[TABLE_SIZE];
static uint64_t rng;
static bool broken;		/* one message was broken: the keeper is about to kill us */
static bool silent;

static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "fkchaos[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", buf);
}

static void __attribute__((noreturn)) usage(const char *why)
{
	fprintf(stderr, "fkchaos: %s\nusage: fkchaos [--rate=PERCENT] [--seed=N] [--counter=FILE] "
		"[--calm-if=FILE] [--kinds=KIND,...] [--calls-only] [--opcodes=N,...] "
		"[--log=FILE] -- COMMAND [ARG...]\n", why);
	exit(2);
}

/* splitmix64: small, and every seed gives a good sequence. */
static uint64_t next_random(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return n ? next_random() % n : 0;
}

/* This run's number: the counter file's, which is then incremented (0 without a file). */
static uint64_t run_number(void)
{
	char buf[32] = "";
	uint64_t n = 0;
	ssize_t len;
	int fd;

	if (!opt.counter)
		return 0;
	fd = open(opt.counter, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		say("cannot use %s: %s", opt.counter, strerror(errno));
		exit(1);
	}
	len = pread(fd, buf, sizeof(buf) - 1, 0);
	if (len > 0)
		n = strtoull(buf, NULL, 10);
	len = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", n + 1);
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, len, 0) != len) {
		say("cannot write %s: %s", opt.counter, strerror(errno));
		exit(1);
	}
	close(fd);
	return n;
}

static void parse_kinds(char *list)
{
	memset(opt.kinds, 0, sizeof(opt.kinds));
	for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
		int k;

		for (k = 0; k < K__COUNT && strcmp(s, kind_names[k]); k++)
			;
		if (k == K__COUNT)
			usage("unknown kind in --kinds");
		opt.kinds[k] = true;
	}
}

/* ---- the requests in flight ---------------------------------------------------------------- */

static struct slot *slot_of(uint64_t unique)
{
	/* Mixed: the kernel's uniques count up by 2, the keeper's by 2 from 1 << 62. */
	return &table[(unique * 0x9e3779b97f4a7c15ULL) >> 48];
}

static void remember(const char *msg, size_t len)
{
	const struct fuse_in_header *h = (const void *)msg;
	struct slot *s;

	if (len < sizeof(*h))
		return;
	pthread_mutex_lock(&lock);
	s = slot_of(h->unique);
	s->unique = h->unique;
	s->opcode = h->opcode;
	s->size = 0;
	if ((h->opcode == FUSE_READ || h->opcode == FUSE_READDIR ||
	     h->opcode == FUSE_READDIRPLUS) && len >= sizeof(*h) + sizeof(struct fuse_read_in))
		s->size = ((const struct fuse_read_in *)(h + 1))->size;
	pthread_mutex_unlock(&lock);
}

/* The request @unique answers, or false if it is not known (taken out of the table). */
static bool recall(uint64_t unique, struct slot *out)
{
	struct slot *s;
	bool found;

	pthread_mutex_lock(&lock);
	s = slot_of(unique);
	found = s->unique == unique && unique;
	if (found) {
		*out = *s;
		s->unique = 0;
	}
	pthread_mutex_unlock(&lock);
	return found;
}

/* ---- breaking messages ---------------------------------------------------------------------- */

static int send_msg(int fd, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

/* Whether @k can be made from the reply @m (@len bytes) to the request @s (NULL: unknown). */
static bool fits(enum kind k, const char *m, size_t len, const struct slot *s)
{
	const struct fuse_out_header *h = (const void *)m;
	size_t body = len - sizeof(*h);

	switch (k) {
	case K_SIZE:
		return s && !h->error && s->opcode < 64 && out_rules[s->opcode].rule &&
		       !(out_rules[s->opcode].rule == R_UPTO && !s->size);
	case K_NONAME:
	case K_LONGNAME:
	case K_CUTRECORD:
		return s && !h->error &&
		       (s->opcode == FUSE_READDIR || s->opcode == FUSE_READDIRPLUS) &&
		       body >= (s->opcode == FUSE_READDIR ? FUSE_NAME_OFFSET
							   : FUSE_NAME_OFFSET_DIRENTPLUS) + 1;
	case K_NODEID0:
		return s && !h->error && body >= sizeof(struct fuse_entry_out) &&
		       (s->opcode == FUSE_MKDIR || s->opcode == FUSE_MKNOD ||
			s->opcode == FUSE_SYMLINK || s->opcode == FUSE_LINK ||
			s->opcode == FUSE_CREATE);
	case K_ERRBODY:
	case K_DUP:
		return s != NULL;
	case K_SILENT:
	default:
		return true;
	}
}

/* A body for @s that breaks its opcode's size rule, in @out (room for BUF_SIZE); its length. */
static size_t bad_size_body(const struct slot *s, const char *m, size_t len, char *out)
{
	size_t body = len - sizeof(struct fuse_out_header), n;

	switch (out_rules[s->opcode].rule) {
	case R_FIXED:
		n = out_rules[s->opcode].size;
		n = below(2) && n > 8 ? n - 8 : n + 8;
		break;
	case R_NONE:
		n = 8;
		break;
	case R_UPTO:
		n = (size_t)s->size + 8;
		break;
	case R_INIT:
	default:
		n = 16; /* shorter than the 7.22 fuse_init_out the kernel takes */
		break;
	}
	if (n > BUF_SIZE - 4096)
		n = BUF_SIZE - 4096;
	memset(out, 0, n);
	memcpy(out, m + sizeof(struct fuse_out_header), body < n ? body : n);
	return n;
}

/* Breaks the first record of a listing as @k says. Returns the new length. */
static size_t bad_dirent(enum kind k, const struct slot *s, char *m, size_t len)
{
	bool plus = s->opcode == FUSE_READDIRPLUS;
	char *b = m + sizeof(struct fuse_out_header);
	struct fuse_dirent *d = plus ? &((struct fuse_direntplus *)b)->dirent : (void *)b;
	size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;

	switch (k) {
	case K_NONAME:
		d->namelen = 0;
		return len;
	case K_LONGNAME:
		d->namelen = 1025 + below(1000);
		return len;
	case K_CUTRECORD:
	default:
		/* The first record's name ends a byte past the message. */
		return sizeof(struct fuse_out_header) + head + d->namelen - 1;
	}
}

static size_t bad_notify(char *m, const char **how)
{
	struct fuse_out_header *h = (void *)m;
	char *b = m + sizeof(*h);

	h->unique = 0;
	memset(b, 0, 64);
	switch (below(3)) {
	case 0:
		*how = "unknown code";
		h->error = 10 + (int)below(90);
		h->len = sizeof(*h) + 8;
		break;
	case 1:
		*how = "INVAL_INODE too short";
		h->error = FUSE_NOTIFY_INVAL_INODE;
		h->len = sizeof(*h) + 8;
		break;
	default: {
		struct fuse_notify_inval_entry_out *e = (void *)b;

		*how = "INVAL_ENTRY name past its end";
		h->error = FUSE_NOTIFY_INVAL_ENTRY;
		e->parent = FUSE_ROOT_ID;
		e->namelen = 40;
		memcpy(b + sizeof(*e), "abc", 4);
		h->len = sizeof(*h) + sizeof(*e) + 4;
		break;
	}
	}
	return h->len;
}

static void log_broken(enum kind k, const struct slot *s, uint64_t unique, const char *how)
{
	char line[160];
	int fd, n;

	say("breaking the answer to opcode %u unique %#" PRIx64 ": %s%s%s", s ? s->opcode : 0,
	    unique, kind_names[k], how ? ", " : "", how ? how : "");
	if (!opt.log)
		return;
	n = snprintf(line, sizeof(line), "%d %s %u %#" PRIx64 "\n", (int)getpid(), kind_names[k],
		     s ? s->opcode : 0, unique);
	fd = open(opt.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, line, n) != n)
			say("cannot write %s: %s", opt.log, strerror(errno));
		close(fd);
	}
}

/* Picks a kind that fits, draws the decision; false to relay the message unchanged. */
static bool choose(const char *m, size_t len, const struct slot *s, enum kind *kind)
{
	enum kind fit[K__COUNT];
	int n = 0;

	if (broken || opt.rate <= 0)
		return false;
	if (opt.calls_only && !(((const struct fuse_out_header *)m)->unique & CALL_BIT))
		return false;
	if (!opt.any_opcode && (!s || s->opcode >= 64 || !opt.opcodes[s->opcode]))
		return false;
	if (next_random() % 1000000 >= (uint64_t)(opt.rate * 10000))
		return false;
	if (opt.calm_if && access(opt.calm_if, F_OK) == 0)
		return false;
	for (int k = 0; k < K__COUNT; k++)
		if (opt.kinds[k] && fits(k, m, len, s))
			fit[n++] = k;
	if (!n)
		return false;
	*kind = fit[below(n)];
	return true;
}

/* Sends the daemon's message @m (@len bytes, room for BUF_SIZE) to the keeper, or breaks it. */
static int relay_up(char *m, size_t len)
{
	struct fuse_out_header *h = (void *)m;
	static char extra[BUF_SIZE];
	struct slot s, *sp = NULL;
	uint64_t unique = h->unique;
	const char *how = NULL;
	enum kind k;

	if (silent)
		return 0;
	if (len < sizeof(*h))
		return send_msg(kfd, m, len);
	if (unique && recall(unique, &s))
		sp = &s;
	/* The keeper's first INIT: a mount whose first daemon fails is given up on. */
	if (sp && sp->opcode == FUSE_INIT && !(unique & CALL_BIT))
		return send_msg(kfd, m, len);
	if (!unique || !choose(m, len, sp, &k))
		return send_msg(kfd, m, len);
	broken = true;
	switch (k) {
	case K_SHORT:
		len = 1 + below(sizeof(*h) - 1);
		break;
	case K_LENLONG:
		h->len = len + 1 + below(4096);
		break;
	case K_LENSHORT:
		h->len = len - 1 - below(len - 1);
		break;
	case K_UNIQUE:
		h->unique = (unique | 1ULL << 50) & ~1ULL;
		break;
	case K_CALLUNIQUE:
		h->unique = CALL_BIT | ((1ULL << 40) + below(1ULL << 20)) << 1;
		break;
	case K_ORPHAN:
		h->unique = CALL_BIT | ORPHAN_BIT | ((1ULL << 40) + below(1ULL << 20)) << 1;
		break;
	case K_POSERROR:
		h->error = 1 + (int)below(511);
		h->len = len = sizeof(*h);
		break;
	case K_BIGERROR:
		h->error = -512 - (int)below(100000);
		h->len = len = sizeof(*h);
		break;
	case K_ERRBODY:
		if (len == sizeof(*h)) {
			memset(m + len, 0, 8);
			len += 8;
		}
		h->error = -EIO;
		h->len = len;
		break;
	case K_SIZE:
		len = sizeof(*h) + bad_size_body(sp, m, len, extra);
		memcpy(m + sizeof(*h), extra, len - sizeof(*h));
		h->len = len;
		break;
	case K_NONAME:
	case K_LONGNAME:
	case K_CUTRECORD:
		len = bad_dirent(k, sp, m, len);
		h->len = len;
		break;
	case K_NODEID0:
		((struct fuse_entry_out *)(m + sizeof(*h)))->nodeid = 0;
		break;
	case K_NOTIFY:
		len = bad_notify(m, &how);
		break;
	case K_DUP:
		if (send_msg(kfd, m, len) < 0)
			return -errno;
		break;
	case K_HUGE:
		memset(m + len, 0, HUGE_SIZE - len);
		h->len = len = HUGE_SIZE;
		break;
	case K_DROP:
		log_broken(k, sp, unique, NULL);
		broken = false; /* not a break of the protocol: the keeper will not kill us for it */
		return 0;
	case K_SILENT:
	default:
		log_broken(k, sp, unique, "answering nothing from now on");
		silent = true;
		return 0;
	}
	log_broken(k, sp, unique, how);
	return send_msg(kfd, m, len);
}

/* ---- the relay ------------------------------------------------------------------------------ */

static void *keeper_to_daemon(void *arg)
{
	char *buf = malloc(BUF_SIZE);

	(void)arg;
	while (buf) {
		ssize_t n = recv(kfd, buf, BUF_SIZE, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		remember(buf, n);
		if (send_msg(dfd, buf, n) < 0)
			break;
	}
	/* The keeper is gone or shut the channel: so is the daemon's. */
	shutdown(dfd, SHUT_RDWR);
	free(buf);
	return NULL;
}

static void *daemon_to_keeper(void *arg)
{
	char *buf = malloc(BUF_SIZE);

	(void)arg;
	while (buf) {
		ssize_t n = recv(dfd, buf, BUF_SIZE - 4096, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (relay_up(buf, n) < 0)
			break;
	}
	shutdown(kfd, SHUT_RDWR);
	free(buf);
	return NULL;
}

static void size_buffers(int fd)
{
	int size = SOCK_BUF;

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

int main(int argc, char **argv)
{
	char fdpath[32], **cmd = NULL;
	pthread_t up, down;
	int sv[2], status, at = -1;
	uint64_t run;
	pid_t pid;

	for (int k = 0; k < K__COUNT; k++)
		opt.kinds[k] = k != K_SILENT && k != K_DROP;
	opt.seed = (uint64_t)time(NULL);
	for (int i = 1; i < argc; i++) {
		char *a = argv[i], *end;

		if (!strcmp(a, "--")) {
			cmd = argv + i + 1;
			break;
		} else if (!strncmp(a, "--rate=", 7)) {
			opt.rate = strtod(a + 7, &end);
			if (*end || end == a + 7 || opt.rate < 0 || opt.rate > 100)
				usage("--rate takes a percentage from 0 to 100");
		} else if (!strncmp(a, "--seed=", 7)) {
			opt.seed = strtoull(a + 7, &end, 10);
			if (*end || end == a + 7)
				usage("--seed takes a number");
		} else if (!strncmp(a, "--counter=", 10)) {
			opt.counter = a + 10;
		} else if (!strncmp(a, "--calm-if=", 10)) {
			opt.calm_if = a + 10;
		} else if (!strncmp(a, "--log=", 6)) {
			opt.log = a + 6;
		} else if (!strcmp(a, "--calls-only")) {
			opt.calls_only = true;
		} else if (!strncmp(a, "--opcodes=", 10)) {
			opt.any_opcode = false;
			for (char *o = strtok(a + 10, ","); o; o = strtok(NULL, ",")) {
				unsigned long n = strtoul(o, &end, 10);

				if (*end || n >= 64)
					usage("--opcodes takes opcode numbers below 64");
				opt.opcodes[n] = true;
			}
		} else if (!strncmp(a, "--kinds=", 8)) {
			parse_kinds(a + 8);
		} else {
			usage("unknown option");
		}
	}
	if (!cmd || !cmd[0])
		usage("missing -- COMMAND");
	for (int i = 0; cmd[i]; i++)
		if (!strncmp(cmd[i], "/dev/fd/", 8))
			at = i;
	if (at < 0 || (kfd = atoi(cmd[at] + 8)) < 0 || fcntl(kfd, F_GETFD) < 0)
		usage("COMMAND has no /dev/fd/N argument that is an open fd (put {} there)");
	fcntl(kfd, F_SETFD, FD_CLOEXEC);

	run = run_number();
	rng = opt.seed + run * 0x100000001b3ULL;
	say("run %" PRIu64 " with seed %" PRIu64 ", breaking %.2f%% of the daemon's messages",
	    run, opt.seed, opt.rate);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		say("socketpair: %s", strerror(errno));
		return 1;
	}
	size_buffers(sv[0]);
	size_buffers(sv[1]);
	dfd = sv[0];
	snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", sv[1]);
	cmd[at] = fdpath;
	pid = fork();
	if (pid < 0) {
		say("fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fcntl(sv[1], F_SETFD, 0);
		execvp(cmd[0], cmd);
		say("cannot execute %s: %s", cmd[0], strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	if (pthread_create(&up, NULL, daemon_to_keeper, NULL) ||
	    pthread_create(&down, NULL, keeper_to_daemon, NULL)) {
		say("cannot start the relay threads");
		kill(pid, SIGKILL);
		return 1;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 1;
	/* The daemon is gone: so are we, the same way. */
	if (WIFSIGNALED(status)) {
		signal(WTERMSIG(status), SIG_DFL);
		raise(WTERMSIG(status));
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
