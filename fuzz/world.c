/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fuzzers' world: a proxy built without threads, a kernel and a daemon played by the
 * harness. See world.h and fuzz/README.md.
 */
#include "world.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "proxy/channel.h"
#include "proxy/proxy_locks.h"
#include "proxy/relay.h"
#include "proxy/reply.h"
#include "proxy/translate.h"
#include "util.h"

/* Largest payload and buffer, as proxy_start() sizes them with 4 KiB pages. */
#define WORLD_BUF_SIZE (256 * 4096 + 8192)

static int kernel_fd[2] = { -1, -1 }; /* [0]: the harness reads what the keeper answers */
static int daemon_fd[2] = { -1, -1 }; /* [0]: the keeper's end; [1]: the daemon's */
static int call_efd = -1, ev_efd = -1;

/* A fatal finding of the harness's own checks: libFuzzer keeps the input as a crash. */
static void __attribute__((noreturn, format(printf, 1, 2))) finding(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz: FINDING: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* ---- The fuzzer's bytes --------------------------------------------------------------------- */

void in_bytes(struct input *in, void *dst, size_t len)
{
	size_t n = MIN(len, in->n);

	memcpy(dst, in->p, n);
	memset((char *)dst + n, 0, len - n);
	in->p += n;
	in->n -= n;
}

uint8_t in_u8(struct input *in)
{
	uint8_t v;

	in_bytes(in, &v, sizeof(v));
	return v;
}

uint16_t in_u16(struct input *in)
{
	uint16_t v;

	in_bytes(in, &v, sizeof(v));
	return v;
}

uint32_t in_u32(struct input *in)
{
	uint32_t v;

	in_bytes(in, &v, sizeof(v));
	return v;
}

uint64_t in_u64(struct input *in)
{
	uint64_t v;

	in_bytes(in, &v, sizeof(v));
	return v;
}

/* ---- Once per process ----------------------------------------------------------------------- */

void world_init(void)
{
	int size = 1 << 20;

	if (kernel_fd[0] >= 0)
		return;
	/* FUZZ_LOG=1 shows the keeper's log (slow); errors alone are the default. */
	log_max_level = getenv("FUZZ_LOG") ? LOG_TRACE : LOG_ERROR;
	msg_init(WORLD_BUF_SIZE);
	if (pipe2(kernel_fd, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, daemon_fd) < 0) {
		perror("fuzz: pipe or socketpair");
		abort();
	}
	/* Room for every answer to one input: nothing the keeper writes may be cut short. */
	fcntl(kernel_fd[1], F_SETPIPE_SZ, size);
	for (int i = 0; i < 2; i++)
		if (setsockopt(daemon_fd[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(daemon_fd[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	call_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ev_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (call_efd < 0 || ev_efd < 0) {
		perror("fuzz: eventfd");
		abort();
	}
}

/* ---- The kernel's and the daemon's side ----------------------------------------------------- */

static size_t made_index(struct world *w, uint64_t unique)
{
	for (size_t i = 0; i < w->nmade; i++)
		if (w->made[i] == unique)
			return i;
	return SIZE_MAX;
}

/*
 * What the keeper wrote to the kernel: whole messages, each answering a request the kernel
 * made and waits on, once, with an error the kernel accepts; or a notification.
 */
static void kernel_read(struct world *w)
{
	static char buf[(1 << 20) + 4096];
	size_t have = 0, off = 0;
	ssize_t n;

	while ((n = read(kernel_fd[0], buf + have, sizeof(buf) - have)) > 0)
		have += n;
	while (off < have) {
		struct fuse_out_header oh;
		size_t i;

		if (have - off < sizeof(oh))
			finding("the keeper wrote %zu bytes to the kernel, less than a header",
				have - off);
		memcpy(&oh, buf + off, sizeof(oh));
		if (oh.len < sizeof(oh) || oh.len > have - off)
			finding("the keeper wrote a message to the kernel whose header says %u "
				"bytes, %zu written", oh.len, have - off);
		off += oh.len;
		if (oh.unique == 0) {
			if (oh.error <= 0)
				finding("the keeper wrote a notification with code %d", oh.error);
			continue;
		}
		/* INTERRUPT answers are passed as the daemon sent them: the kernel checks them. */
		if (oh.unique & FK_INT_REQ_BIT)
			continue;
		i = made_index(w, oh.unique);
		if (i == SIZE_MAX)
			finding("the keeper answered unique %" PRIu64 ", which the kernel never sent",
				oh.unique);
		if (w->answered[i]++)
			finding("the keeper answered unique %" PRIu64 " twice", oh.unique);
		if (oh.error > 0 || oh.error < -FK_MAX_ERRNO)
			finding("the keeper answered unique %" PRIu64 " with error %d", oh.unique,
				oh.error);
		if (oh.error && oh.len != sizeof(oh))
			finding("the keeper answered unique %" PRIu64 " with error %d and a body",
				oh.unique, oh.error);
	}
}

/* What the keeper sent the daemon: whole messages (their content is the daemon's business). */
static void daemon_read(void)
{
	static char buf[WORLD_BUF_SIZE];
	ssize_t n;

	while ((n = recv(daemon_fd[1], buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		struct fuse_in_header ih;

		if ((size_t)n < sizeof(ih))
			finding("the keeper sent the daemon a %zd-byte message", n);
		memcpy(&ih, buf, sizeof(ih));
		if (ih.len != (size_t)n)
			finding("the keeper sent the daemon a %zd-byte message whose header says %u",
				n, ih.len);
	}
}

/* The notifier thread's work, done in place: queued notifications go to the kernel in order. */
static void notifier_drain(struct proxy *p)
{
	for (;;) {
		struct msg *m;

		pthread_mutex_lock(&p->nq_lock);
		m = p->nq_head;
		if (m) {
			p->nq_head = m->next;
			if (!p->nq_head)
				p->nq_tail = &p->nq_head;
		}
		pthread_mutex_unlock(&p->nq_lock);
		if (!m)
			return;
		write_kernel(p, m->data, m->len);
		msg_put(m);
		pthread_mutex_lock(&p->nq_lock);
		p->nq_seq_done++;
		pthread_mutex_unlock(&p->nq_lock);
	}
}

static void world_pump(struct world *w)
{
	notifier_drain(&w->p);
	kernel_read(w);
	daemon_read();
}

/* ---- Requests and replies ------------------------------------------------------------------- */

uint64_t world_request(struct world *w, uint32_t opcode, uint64_t nodeid, const void *body,
		       size_t len)
{
	struct proxy *p = &w->p;
	const struct op_info *op = op_get(opcode);
	size_t total = sizeof(struct fuse_in_header) + len;
	struct fuse_in_header *h;
	struct msg *m;
	uint64_t unique;
	int r;

	if (!op || len < op->in_size || w->nmade == WORLD_MAX_REQ)
		return 0;
	/* Exactly as large as the request: a read past its end is a finding. */
	m = malloc(sizeof(*m) + total);
	if (!m)
		abort();
	memset(m, 0, sizeof(*m));
	m->cap = m->len = total;
	h = msg_in(m);
	memset(h, 0, sizeof(*h));
	h->len = total;
	h->opcode = opcode;
	h->unique = unique = w->next_unique;
	w->next_unique += 2;
	h->nodeid = nodeid;
	h->pid = 4242;
	memcpy(m->data + sizeof(*h), body, len);

	pthread_mutex_lock(&p->lock);
	r = translate_request(p, m, op);
	if (op->lock && (op->lock != LK_FLUSH || p->locks.count))
		r = locks_request(p, m, op, r);
	if (op->stamp)
		m->sent_ns = realtime_ns();
	if (r == 0 && op->wwin && (op->wwin == WW_SYNC || p->handles.lost_count))
		r = window_check(p, m, op);
	if (r == 0) {
		m->epoch = m->held = w->epoch;
		r = idmap_put(&p->inflight, unique, m);
	}
	pthread_mutex_unlock(&p->lock);
	if (r < 0) {
		/* The relay would have answered it itself. */
		free(m);
		return 0;
	}
	w->made[w->nmade++] = unique;
	return unique;
}

int world_deliver(struct world *w, const void *msg, size_t len)
{
	struct msg *m;
	int r;

	if (w->broken)
		return 0;
	/* A larger datagram is cut by recvmsg(2) and refused by the relay before any parsing. */
	len = MIN(len, WORLD_BUF_SIZE);
	/* Exactly as large as the message, as for requests. */
	m = malloc(sizeof(*m) + len);
	if (!m)
		abort();
	memset(m, 0, sizeof(*m));
	m->cap = m->len = len;
	memcpy(m->data, msg, len);
	r = d2k_message(&w->p, m, w->epoch);
	free(m);
	if (r < 0)
		w->broken = true;
	world_pump(w);
	return r;
}

int world_reply(struct world *w, uint64_t unique, int32_t error, const void *body, size_t len)
{
	static char buf[WORLD_BUF_SIZE];
	struct fuse_out_header oh = { .error = error, .unique = unique };

	len = MIN(len, sizeof(buf) - sizeof(oh));
	oh.len = sizeof(oh) + len;
	memcpy(buf, &oh, sizeof(oh));
	if (len)
		memcpy(buf + sizeof(oh), body, len);
	return world_deliver(w, buf, oh.len);
}

uint64_t world_pick_request(struct world *w, unsigned i)
{
	return w->nmade ? w->made[i % w->nmade] : 0;
}

size_t world_reply_size(const struct op_info *op, const void *body, size_t body_len, size_t want)
{
	uint32_t limit = 0;

	if (op->size_off >= 0 && (size_t)op->size_off + 4 <= body_len)
		memcpy(&limit, (const char *)body + op->size_off, 4);
	switch ((enum op_out)op->out) {
	case OUT_NONE:
		return 0;
	case OUT_FIXED:
		return op->out_size;
	case OUT_UPTO:
		return MIN(want, limit);
	case OUT_XATTR:
		return limit ? MIN(want, limit) : sizeof(struct fuse_getxattr_out);
	case OUT_INIT:
		return sizeof(struct fuse_init_out);
	case OUT_ANY:
	default:
		return want;
	}
}

/* ---- Building the world --------------------------------------------------------------------- */

/* A request the world's set-up makes, answered with success and @out. Aborts on refusal. */
static void setup_call(struct world *w, uint32_t opcode, uint64_t nodeid, const void *body,
		       size_t len, const void *out, size_t out_len)
{
	uint64_t unique = world_request(w, opcode, nodeid, body, len);

	if (!unique || world_reply(w, unique, 0, out, out_len) < 0)
		finding("the world's %s could not be set up", op_name(opcode));
}

static uint64_t kid_of(struct world *w, uint64_t did)
{
	uint64_t kid = 0;

	if (node_to_kernel(&w->p.nodes, did, &kid) < 0)
		finding("the world's node %" PRIu64 " is not known", did);
	return kid;
}

static void setup_lookup(struct world *w, uint64_t parent_did, const char *name, uint64_t did,
			 uint32_t mode)
{
	struct fuse_entry_out e = {
		.nodeid = did,
		.generation = 1,
		.attr = { .ino = 1000 + did, .mode = mode, .nlink = 1, .blksize = 4096 },
	};

	setup_call(w, FUSE_LOOKUP, kid_of(w, parent_did), name, strlen(name) + 1, &e, sizeof(e));
}

static void setup_open(struct world *w, uint32_t opcode, uint64_t did, uint64_t dfh)
{
	struct fuse_open_in in = { .flags = opcode == FUSE_OPENDIR ? O_RDONLY : O_RDWR };
	struct fuse_open_out o = { .fh = dfh };

	setup_call(w, opcode, kid_of(w, did), &in, sizeof(in), &o, sizeof(o));
}

static void note_kfh(struct handle *h, void *arg)
{
	struct world *w = arg;
	static const uint64_t dfhs[4] = { DFH_FILE, DFH_CREATED, DFH_DIR, DFH_ROOT };

	for (int i = 0; i < 4; i++)
		if (h->dfh == dfhs[i])
			w->kfhs[i] = h->kfh;
}

int world_setup(struct world *w, unsigned flags, const struct fuse_init_in *init_in,
		size_t init_in_len, int32_t init_error, const void *init_out, size_t init_out_len)
{
	struct proxy *p = &w->p;
	struct fuse_init_in in = {
		.major = FUSE_KERNEL_VERSION,
		.minor = FUSE_KERNEL_MINOR_VERSION,
		.max_readahead = 128 << 10,
		.flags = FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_ATOMIC_O_TRUNC |
			 FUSE_EXPORT_SUPPORT | FUSE_BIG_WRITES | FUSE_DONT_MASK | FUSE_FLOCK_LOCKS |
			 FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_ASYNC_DIO |
			 FUSE_WRITEBACK_CACHE | FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV |
			 FUSE_POSIX_ACL | FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS | FUSE_INIT_EXT,
		.flags2 = (FK_FUSE_HAS_RESEND | FK_FUSE_PASSTHROUGH) >> 32,
	};
	struct fuse_init_out out = {
		.major = FUSE_KERNEL_VERSION,
		.minor = FUSE_KERNEL_MINOR_VERSION,
		.max_readahead = 128 << 10,
		.flags = FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS | FUSE_DO_READDIRPLUS |
			 FUSE_MAX_PAGES | FUSE_EXPORT_SUPPORT | FUSE_INIT_EXT,
		.max_background = 16,
		.congestion_threshold = 12,
		.max_write = 128 << 10,
		.time_gran = 1,
		.max_pages = 32,
	};
	struct fuse_init_in *kin;
	struct fuse_create_in cin = { .flags = O_RDWR | O_CREAT, .mode = S_IFREG | 0644 };
	char cbuf[sizeof(cin) + 2];
	struct {
		struct fuse_entry_out e;
		struct fuse_open_out o;
	} cout = {
		.e = { .nodeid = DID_CREATED, .generation = 1,
		       .attr = { .ino = 1000 + DID_CREATED, .mode = S_IFREG | 0644, .nlink = 1 } },
		.o = { .fh = DFH_CREATED },
	};
	uint64_t unique;
	int r;

	world_init();
	memset(w, 0, sizeof(*w));
	w->cfg.mountpoint = "/fuzz";
	/* Small bounds, so that the fuzzer reaches them. */
	w->cfg.max_nodes = 24;
	w->cfg.max_handles = 8;
	w->cfg.max_locks = 8;
	w->cfg.write_window = 16 << 10;
	w->cfg.write_window_total = 32 << 10;
	w->cfg.keep_removed = !(flags & WF_NO_HIDE);
	w->cfg.write_through = flags & WF_WRITE_THROUGH;

	/* As proxy_start() builds it, without its threads. */
	p->cfg = &w->cfg;
	p->devfd = kernel_fd[1];
	p->sock = daemon_fd[0];
	p->daemon_end = -1;
	p->page_size = 4096;
	p->buf_size = p->max_msg = WORLD_BUF_SIZE;
	p->state = PX_UP;
	p->next_call = 1;
	p->unserved_tail = &p->unserved_head;
	pthread_mutex_init(&p->lock, NULL);
	cond_init_monotonic(&p->changed);
	pthread_rwlock_init(&p->sock_lock, NULL);
	if (node_table_init(&p->nodes, w->cfg.max_nodes) < 0)
		abort();
	handle_table_init(&p->handles, w->cfg.max_handles, w->cfg.write_window,
			  w->cfg.write_window_total);
	lock_table_init(&p->locks, w->cfg.max_locks);
	p->call_efd = call_efd;
	p->ev_efd = ev_efd;
	p->hide.journal_fd = -1;
	p->hide.off = !w->cfg.keep_removed;
	p->hide.seed = 0x5eed;
	pthread_mutex_init(&p->nq_lock, NULL);
	cond_init_monotonic(&p->nq_cond);
	p->nq_tail = &p->nq_head;
	w->epoch = p->sock_epoch = p->nodes.epoch;
	w->next_unique = 2;

	/* INIT, as the kernel-to-daemon thread keeps it (flags it cannot relay masked). */
	if (init_in) {
		memset(&in, 0, sizeof(in));
		memcpy(&in, init_in, MIN(init_in_len, sizeof(in)));
	} else {
		init_in_len = sizeof(in);
	}
	init_in_len = MAX(init_in_len, (size_t)op_get(FUSE_INIT)->in_size);
	init_in_len = MIN(init_in_len, sizeof(in));
	unique = world_request(w, FUSE_INIT, 0, &in, init_in_len);
	p->init_req = msg_dup(((struct msg *)idmap_get(&p->inflight, unique))->data,
			      sizeof(struct fuse_in_header) + init_in_len);
	kin = (struct fuse_init_in *)(p->init_req->data + sizeof(struct fuse_in_header));
	kin->flags &= ~(uint32_t)INIT_FLAGS_MASKED;
	if (init_in_len >= offsetof(struct fuse_init_in, flags2) + sizeof(kin->flags2))
		kin->flags2 &= ~(uint32_t)(INIT_FLAGS_MASKED >> 32);
	if (!init_out) {
		init_out = &out;
		init_out_len = sizeof(out);
	}
	r = world_reply(w, unique, init_error, init_out, init_error ? 0 : init_out_len);
	if (r < 0 || !p->init_done)
		return -1;

	/* The nodes, the way a daemon hands them out. */
	setup_lookup(w, FUSE_ROOT_ID, "d", DID_DIR, S_IFDIR | 0755);
	setup_lookup(w, DID_DIR, "f", DID_FILE, S_IFREG | 0644);
	setup_lookup(w, FUSE_ROOT_ID, "g", DID_FILE2, S_IFREG | 0644);
	setup_lookup(w, DID_DIR, "s", DID_LINK, S_IFLNK | 0777);
	setup_lookup(w, FUSE_ROOT_ID, "h", DID_FILE, S_IFREG | 0644);
	memcpy(cbuf, &cin, sizeof(cin));
	memcpy(cbuf + sizeof(cin), "c", 2);
	setup_call(w, FUSE_CREATE, FUSE_ROOT_ID, cbuf, sizeof(cbuf), &cout, sizeof(cout));
	setup_open(w, FUSE_OPEN, DID_FILE, DFH_FILE);
	setup_open(w, FUSE_OPENDIR, DID_DIR, DFH_DIR);
	setup_open(w, FUSE_OPENDIR, FUSE_ROOT_ID, DFH_ROOT);

	w->kids[0] = FUSE_ROOT_ID;
	w->kids[1] = kid_of(w, DID_DIR);
	w->kids[2] = kid_of(w, DID_FILE);
	w->kids[3] = kid_of(w, DID_FILE2);
	w->kids[4] = kid_of(w, DID_LINK);
	w->kids[5] = kid_of(w, DID_CREATED);
	w->kids[6] = w->kids[1];
	w->kids[7] = w->kids[2];
	handle_each(&p->handles, note_kfh, w);

	if ((flags & WF_HIDDEN) && !p->hide.off) {
		/* "g" was removed while open: it lives on under a name of the keeper's. */
		pthread_mutex_lock(&p->lock);
		if (node_add_name(&p->nodes, node_get(&p->nodes, w->kids[3]), FUSE_ROOT_ID,
				  HIDE_PREFIX "00000000000000a1") == 0)
			p->hide.live++;
		pthread_mutex_unlock(&p->lock);
	}
	if (flags & WF_LOCKS) {
		struct fuse_lk_in lk = {
			.fh = w->kfhs[0],
			.owner = 7,
			.lk = { .start = 0, .end = 99, .type = F_WRLCK, .pid = 4242 },
		};

		setup_call(w, FUSE_SETLK, w->kids[2], &lk, sizeof(lk), NULL, 0);
	}
	if (flags & WF_INO_REMAP) {
		pthread_mutex_lock(&p->lock);
		node_ino_remap(&p->nodes);
		pthread_mutex_unlock(&p->lock);
	}
	return 0;
}

static void free_request(uint64_t key, void *val, void *arg)
{
	msg_put(val);
}

void world_teardown(struct world *w)
{
	struct proxy *p = &w->p;

	uint64_t v;

	world_pump(w);
	if (read(call_efd, &v, sizeof(v)) < 0 || read(ev_efd, &v, sizeof(v)) < 0) {
		/* Nothing signalled. */
	}
	idmap_each(&p->inflight, free_request, NULL);
	idmap_free(&p->inflight);
	/* Calls belong to the harness that made them; so do their replies. */
	idmap_free(&p->calls);
	idmap_free(&p->abandoned);
	msg_put(p->init_req);
	msg_put_chain(p->unserved_head);
	free(p->mismatch);
	/* Graves pin their directories: the node table goes after them. */
	hide_state_free(&p->hide);
	lock_table_free(&p->locks);
	handle_table_free(&p->handles);
	node_table_free(&p->nodes);
	pthread_mutex_destroy(&p->nq_lock);
	pthread_cond_destroy(&p->nq_cond);
	pthread_rwlock_destroy(&p->sock_lock);
	pthread_cond_destroy(&p->changed);
	pthread_mutex_destroy(&p->lock);
}
