/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The relay: one thread reads the kernel's requests from /dev/fuse, translates their node IDs and
 * handles and sends them to the daemon; one thread per daemon reads its replies and
 * notifications, records what they change (nodes, handles) and writes them to the kernel.
 * This is the hot path: one read, one send, one recv and one write per request, a lock held only
 * for table updates, no copy but for small requests kept for replay.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mode.h"
#include "proxy_i.h"
#include "util.h"

/* Notifications the keeper holds for the kernel at most; past that the daemon waits. */
#define NOTIFY_QUEUE_MAX 4096

static inline void *body(struct msg *m)
{
	return m->data + sizeof(struct fuse_in_header);
}

static inline size_t body_len(const struct msg *m)
{
	return m->len - sizeof(struct fuse_in_header);
}

static inline uint64_t get64(const void *base, int off)
{
	uint64_t v;

	memcpy(&v, (const char *)base + off, sizeof(v));
	return v;
}

static inline void put64(void *base, int off, uint64_t v)
{
	memcpy((char *)base + off, &v, sizeof(v));
}

void post_event(struct proxy *p, unsigned bits)
{
	atomic_fetch_or(&p->ev_bits, bits);
	efd_signal(p->ev_efd);
}

int write_kernel(struct proxy *p, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = write(p->devfd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;
		/* ENOENT: the kernel stopped waiting (interrupted or aborted request). */
		if (e != ENOENT && e != ENODEV)
			log_warn("The kernel refused a %zu-byte reply: %s", len, strerror(e));
		return -e;
	}
	return 0;
}

void reply_kernel_err(struct proxy *p, uint64_t unique, int err)
{
	struct fuse_out_header oh = { .len = sizeof(oh), .error = err, .unique = unique };

	write_kernel(p, &oh, sizeof(oh));
}

int send_held(struct proxy *p, uint32_t epoch, const void *buf, size_t len, int flags)
{
	ssize_t n;

	if (p->sock_epoch != epoch || p->sock < 0)
		return -EPIPE;
	do
		n = send(p->sock, buf, len, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET || errno == ENOTCONN ? -EPIPE : -errno;
	return n == (ssize_t)len ? 0 : -EMSGSIZE;
}

int send_to_daemon(struct proxy *p, uint32_t epoch, const void *buf, size_t len, int flags)
{
	int r;

	pthread_rwlock_rdlock(&p->sock_lock);
	r = send_held(p, epoch, buf, len, flags);
	pthread_rwlock_unlock(&p->sock_lock);
	return r;
}

/* Sends a message that expects no reply, or whose reply the keeper drops. */
void send_orphan(struct proxy *p, uint32_t epoch, uint32_t opcode, uint64_t nodeid,
		 const void *arg, size_t arglen)
{
	char buf[sizeof(struct fuse_in_header) + 64] __attribute__((aligned(8)));
	struct fuse_in_header *h = (struct fuse_in_header *)buf;

	if (arglen > 64)
		return;
	memset(h, 0, sizeof(*h));
	h->len = sizeof(*h) + arglen;
	h->opcode = opcode;
	h->nodeid = nodeid;
	h->unique = CALL_BIT | ORPHAN_BIT | (__atomic_fetch_add(&p->next_call, 1, __ATOMIC_RELAXED) << 1);
	memcpy(buf + sizeof(*h), arg, arglen);
	/* Sent with the lock held: never wait for a daemon that is not reading. */
	if (send_to_daemon(p, epoch, buf, h->len, MSG_DONTWAIT) == -EAGAIN)
		log_warn("The daemon is not reading: a %s for node %" PRIu64 " was dropped",
			 op_name(opcode), nodeid);
}

void forget_in_daemon(struct proxy *p, uint32_t epoch, uint64_t did, uint64_t count)
{
	struct fuse_forget_in f = { .nlookup = count };

	if (count)
		send_orphan(p, epoch, FUSE_FORGET, did, &f, sizeof(f));
}

static void release_in_daemon(struct proxy *p, uint32_t epoch, uint64_t did, uint64_t dfh,
			      bool dir)
{
	struct fuse_release_in r = { .fh = dfh };

	send_orphan(p, epoch, dir ? FUSE_RELEASEDIR : FUSE_RELEASE, did, &r, sizeof(r));
}

static bool fh_present(const struct op_info *op, const void *b)
{
	switch ((enum op_fh_when)op->fh_when) {
	case FH_ALWAYS:
		return op->fh_off >= 0;
	case FH_GETATTR:
		return ((const struct fuse_getattr_in *)b)->getattr_flags & FUSE_GETATTR_FH;
	case FH_SETATTR:
		return ((const struct fuse_setattr_in *)b)->valid & FATTR_FH;
	case FH_NEVER:
	default:
		return false;
	}
}

int translate_request(struct proxy *p, struct msg *m, const struct op_info *op)
{
	struct fuse_in_header *h = msg_in(m);
	void *b = body(m);
	bool fh = fh_present(op, b);
	uint64_t v;
	int r;

	/* Save the kernel's values first: a replay translates again from them. */
	m->knode = h->nodeid;
	if (op->node2_off >= 0)
		m->knode2 = get64(b, op->node2_off);
	if (fh)
		m->kfh = get64(b, op->fh_off);
	if (op->fh2_off >= 0)
		m->kfh2 = get64(b, op->fh2_off);

	if (op->node && h->nodeid) {
		r = node_to_daemon(&p->nodes, m->knode, &v);
		if (r < 0)
			return r;
		h->nodeid = v;
	}
	if (op->node2_off >= 0) {
		r = node_to_daemon(&p->nodes, m->knode2, &v);
		if (r < 0)
			return r;
		put64(b, op->node2_off, v);
	}
	if (fh) {
		r = handle_to_daemon(&p->handles, m->kfh, &v);
		if (r < 0)
			return r;
		put64(b, op->fh_off, v);
	}
	if (op->fh2_off >= 0) {
		r = handle_to_daemon(&p->handles, m->kfh2, &v);
		if (r < 0)
			return r;
		put64(b, op->fh2_off, v);
	}
	return 0;
}

/*
 * The kernel let go of @h (may be NULL): forgets it, and when it was its node's last, the
 * node's hidden names go (hide.c). Under the lock.
 */
static void forget_handle(struct proxy *p, struct handle *h)
{
	struct node *n;

	if (!h)
		return;
	n = node_get(&p->nodes, h->node);
	handle_forget(&p->handles, h->kfh);
	if (n && n->opened && !--n->opened && p->hide.live)
		hide_released(p, n);
}

/*
 * The kernel closed @kfh (RELEASE). Under the lock. Writes lost through it that no FLUSH or
 * FSYNC reported (a handle opened with FOPEN_NOFLUSH, closed without either) can only be logged.
 */
static void release_handle(struct proxy *p, uint64_t kfh)
{
	struct handle *h = handle_get(&p->handles, kfh);

	/* Its flock lock and whatever else was locked through it go with the file. */
	if (h && p->locks.count)
		lock_release(&p->locks, h->node, kfh);
	if (h && h->write_lost)
		log_error("Handle %" PRIu64 " of node %" PRIu64 " was closed without a flush or "
			  "fsync to report that writes acknowledged through it were lost",
			  kfh, h->node);
	forget_handle(p, h);
}

void fail_request(struct proxy *p, struct msg *req, int err)
{
	const struct op_info *op = op_get(msg_in(req)->opcode);

	/* The kernel lets go of the handle whatever the answer: the next daemon must not reopen it. */
	if (op && op->effect == EFF_RELEASE)
		release_handle(p, req->kfh);
	reply_kernel_err(p, msg_in(req)->unique, err);
}

int untranslatable(struct proxy *p, struct msg *req, const struct op_info *op, int err)
{
	struct handle *h;

	/* Closing a handle the current daemon never had: nothing to tell it, and no failure... */
	if (!op->lost_ok)
		return err;
	/* ...unless writes acknowledged through it were lost: a close must report that. */
	h = handle_get(&p->handles, req->kfh);
	if (h && h->write_lost && op->wwin == WW_SYNC)
		return window_check(p, req, op);
	if (op->effect == EFF_RELEASE)
		release_handle(p, req->kfh);
	return 0;
}

void restore_request(struct msg *m, const struct op_info *op)
{
	void *b = body(m);

	msg_in(m)->nodeid = m->knode;
	if (op->node2_off >= 0)
		put64(b, op->node2_off, m->knode2);
	if (fh_present(op, b))
		put64(b, op->fh_off, m->kfh);
	if (op->fh2_off >= 0)
		put64(b, op->fh2_off, m->kfh2);
}

int request_names(struct msg *m, const struct op_info *op, const char *names[2])
{
	const char *s = (const char *)body(m) + op->in_size;
	const char *end = (const char *)body(m) + body_len(m);

	names[0] = names[1] = NULL;
	for (unsigned i = 0; i < op->names && i < 2; i++) {
		const char *nul = memchr(s, '\0', end - s);

		if (s >= end || !nul)
			return -EPROTO;
		names[i] = s;
		s = nul + 1;
	}
	return 0;
}

void trace_request(const char *who, struct msg *m)
{
	const struct op_info *op;
	const char *names[2];
	char extra[2200] = "";

	if (log_max_level < LOG_TRACE)
		return;
	op = op_get(msg_in(m)->opcode);
	if (op && op->names && request_names(m, op, names) == 0) {
		if (op->node2_off >= 0 && names[1])
			snprintf(extra, sizeof(extra), " \"%s\" -> node %" PRIu64 " \"%s\"", names[0],
				 get64(body(m), op->node2_off), names[1]);
		else if (op->node2_off >= 0)
			snprintf(extra, sizeof(extra), " node %" PRIu64 " as \"%s\"",
				 get64(body(m), op->node2_off), names[0]);
		else
			snprintf(extra, sizeof(extra), " \"%s\"%s%s%s", names[0],
				 names[1] ? " \"" : "", names[1] ? names[1] : "",
				 names[1] ? "\"" : "");
	}
	log_msg(LOG_TRACE, "%s: %s unique %" PRIu64 " node %" PRIu64 "%s", who,
		op ? op->name : "?", msg_in(m)->unique, msg_in(m)->nodeid, extra);
}

/* ---- Replies: what they change in the tables ---------------------------------------------- */

static int learn_entry(struct proxy *p, uint64_t parent, const char *name,
		       struct fuse_entry_out *e)
{
	struct node *n;
	int err;

	if (!e->nodeid)
		return 0; /* A negative entry: the kernel takes no lookup. */
	/* "." and ".." (NFS export) name no new place of the node. */
	if (name && name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
		name = NULL;
	n = node_learn(&p->nodes, parent, name, e, &err);
	if (!n) {
		forget_in_daemon(p, p->nodes.epoch, e->nodeid, 1);
		return err;
	}
	if (p->hide.live)
		hide_fix_entry(p, n, &e->attr);
	return 0;
}

static int learn_handle(struct proxy *p, struct msg *req, uint64_t node, uint32_t flags, bool dir,
			struct fuse_open_out *o, uint64_t did)
{
	uint64_t dfh = o->fh;
	struct handle *h;
	struct node *n;
	int err;

	h = handle_learn(&p->handles, node, flags, dir, &o->fh, &err);
	if (!h) {
		release_in_daemon(p, p->nodes.epoch, did, dfh, dir);
		return err;
	}
	n = node_get(&p->nodes, node);
	if (n)
		n->opened++;
	h->uid = msg_in(req)->uid;
	h->gid = msg_in(req)->gid;
	h->fopen = o->open_flags;
	return 0;
}

/* Walks READDIRPLUS records; calls @fn on each entry the kernel takes a lookup of. */
int each_direntplus(char *buf, size_t len, int (*fn)(struct fuse_direntplus *d, void *arg),
			   void *arg)
{
	size_t off = 0;

	while (off < len) {
		struct fuse_direntplus *d = (struct fuse_direntplus *)(buf + off);
		size_t reclen;

		if (len - off < FUSE_NAME_OFFSET_DIRENTPLUS)
			return -EPROTO;
		if (d->dirent.namelen == 0 || d->dirent.namelen > 1024)
			return -EPROTO;
		reclen = FUSE_DIRENTPLUS_SIZE(d);
		if (reclen > len - off)
			return -EPROTO;
		/* "." and ".." carry no lookup (protocol 7.21 READDIRPLUS). */
		bool dot = d->dirent.name[0] == '.' &&
			   (d->dirent.namelen == 1 ||
			    (d->dirent.namelen == 2 && d->dirent.name[1] == '.'));
		if (d->entry_out.nodeid && !dot) {
			int r = fn(d, arg);
			if (r < 0)
				return r;
		}
		off += reclen;
	}
	return 0;
}

struct dirplus_ctx {
	struct proxy *p;
	uint64_t parent;
	bool check_only;
};

/*
 * A reply's node (@nodes) or handle did not fit its table (-ENFILE: --max-nodes, --max-handles
 * reached): says so on the 1st, 2nd, 4th, ... time. What the kernel gets (@outcome) is the
 * caller's.
 */
static void note_table_full(struct proxy *p, bool nodes, const char *op, const char *outcome)
{
	uint64_t *count = nodes ? &p->full_nodes : &p->full_handles;

	if (overflow_log_due(count))
		log_warn("The %s table is full (--max-%s=%" PRIu64 "): %s %s (%" PRIu64 " so far)",
			 nodes ? "node" : "handle", nodes ? "nodes" : "handles",
			 nodes ? p->nodes.max : p->handles.max, op, outcome,
			 __atomic_load_n(count, __ATOMIC_RELAXED));
}

static int dirplus_learn(struct fuse_direntplus *d, void *arg)
{
	struct dirplus_ctx *c = arg;
	char name[1025];

	if (c->check_only)
		return 0;
	memcpy(name, d->dirent.name, d->dirent.namelen);
	name[d->dirent.namelen] = '\0';
	if (learn_entry(c->p, c->parent, name, &d->entry_out) < 0) {
		d->entry_out.nodeid = 0; /* Out of room: the kernel gets the name without a node. */
		note_table_full(c->p, true, "a READDIRPLUS entry",
				"goes to the kernel without its node");
	}
	return 0;
}

static int dirplus_unlearn(struct fuse_direntplus *d, void *arg)
{
	struct dirplus_ctx *c = arg;
	uint64_t did, fwd;

	node_unlearn(&c->p->nodes, d->entry_out.nodeid, &did, &fwd);
	forget_in_daemon(c->p, c->p->nodes.epoch, did, fwd);
	return 0;
}

/* Applies a successful reply's effect under the lock, rewriting daemon IDs for the kernel. */
static int apply_effect(struct proxy *p, struct msg *req, const struct op_info *op,
			struct msg *reply)
{
	char *out = reply->data + sizeof(struct fuse_out_header);
	size_t out_len = reply->len - sizeof(struct fuse_out_header);
	const char *names[2];
	int r;

	if (request_names(req, op, names) < 0)
		return -EPROTO;
	switch ((enum op_effect)op->effect) {
	case EFF_ENTRY:
		/* Only a LOOKUP may answer with a negative entry: what creates names its object. */
		if (op->ctype && !((struct fuse_entry_out *)out)->nodeid)
			return -EPROTO;
		if (op->stamp)
			clock_sample(p, req, &((struct fuse_entry_out *)out)->attr);
		return learn_entry(p, req->knode, names[0], (struct fuse_entry_out *)out);
	case EFF_OPEN:
	case EFF_OPENDIR:
		return learn_handle(p, req, req->knode, ((struct fuse_open_in *)body(req))->flags,
				    op->effect == EFF_OPENDIR, (struct fuse_open_out *)out,
				    msg_in(req)->nodeid);
	case EFF_CREATE: {
		struct fuse_entry_out *e = (struct fuse_entry_out *)out;
		uint64_t did = e->nodeid, kid, fwd;

		if (!did)
			return -EPROTO; /* The kernel would drop the handle without a RELEASE. */
		if (op->stamp)
			clock_sample(p, req, &e->attr);
		r = learn_entry(p, req->knode, names[0], e);
		if (r < 0) {
			struct fuse_open_out *o = (struct fuse_open_out *)(out + sizeof(*e));

			release_in_daemon(p, p->nodes.epoch, did, o->fh, false);
			return r;
		}
		r = learn_handle(p, req, e->nodeid, ((struct fuse_create_in *)body(req))->flags, false,
				 (struct fuse_open_out *)(out + sizeof(*e)), did);
		if (r < 0) {
			node_unlearn(&p->nodes, e->nodeid, &kid, &fwd);
			forget_in_daemon(p, p->nodes.epoch, kid, fwd);
		}
		return r;
	}
	case EFF_DIRPLUS: {
		struct dirplus_ctx c = { p, req->knode, true };

		/* Check every record before changing anything. */
		r = each_direntplus(out, out_len, dirplus_learn, &c);
		if (r < 0)
			return r;
		c.check_only = false;
		return each_direntplus(out, out_len, dirplus_learn, &c);
	}
	case EFF_UNLINK:
		node_unlink(&p->nodes, req->knode, names[0]);
		return 0;
	case EFF_RENAME: {
		bool exchange = msg_in(req)->opcode == FUSE_RENAME2 &&
				(((struct fuse_rename2_in *)body(req))->flags & RENAME_EXCHANGE);

		return node_rename(&p->nodes, req->knode, names[0], req->knode2, names[1], exchange);
	}
	case EFF_RELEASE:
		release_handle(p, req->kfh);
		return 0;
	case EFF_INIT:
		return check_first_init(p, (struct fuse_init_out *)out, out_len);
	case EFF_NONE:
	default:
		return 0;
	}
}

/* The kernel did not take a reply whose effect was applied: give back what it created. */
static void undo_effect(struct proxy *p, struct msg *req, const struct op_info *op,
			struct msg *reply)
{
	char *out = reply->data + sizeof(struct fuse_out_header);
	size_t out_len = reply->len - sizeof(struct fuse_out_header);
	uint64_t did = 0, fwd = 0, dfh = 0;
	struct handle *h;

	pthread_mutex_lock(&p->lock);
	switch ((enum op_effect)op->effect) {
	case EFF_CREATE:
	case EFF_OPEN:
	case EFF_OPENDIR: {
		struct fuse_open_out *o = (struct fuse_open_out *)(out + (op->effect == EFF_CREATE
			? sizeof(struct fuse_entry_out) : 0));

		h = handle_get(&p->handles, o->fh);
		if (h && handle_to_daemon(&p->handles, h->kfh, &dfh) == 0 &&
		    node_to_daemon(&p->nodes, h->node, &did) == 0) {
			bool dir = h->dir;

			forget_handle(p, h);
			release_in_daemon(p, p->nodes.epoch, did, dfh, dir);
		}
		if (op->effect != EFF_CREATE)
			break;
	}
		/* CREATE also gave the kernel a lookup. */
		__attribute__((fallthrough));
	case EFF_ENTRY: {
		struct fuse_entry_out *e = (struct fuse_entry_out *)out;

		if (e->nodeid) {
			node_unlearn(&p->nodes, e->nodeid, &did, &fwd);
			forget_in_daemon(p, p->nodes.epoch, did, fwd);
		}
		break;
	}
	case EFF_DIRPLUS: {
		struct dirplus_ctx c = { p, req->knode, false };

		each_direntplus(out, out_len, dirplus_unlearn, &c);
		break;
	}
	default:
		break;
	}
	pthread_mutex_unlock(&p->lock);
}

/*
 * A request that changes a node succeeded: the time its ctime changed is noted (a settle rule
 * must not take it for another request's work), and if its data changed, its dver moves on, so
 * that writes kept from before are not sent again over the change (replay_window()). A WRITE
 * records the dver it made. Under the lock.
 */
static void note_data_change(struct proxy *p, struct msg *req, const struct op_info *op)
{
	const struct fuse_setattr_in *sa = body(req);
	struct node *n = NULL;
	uint64_t kid;

	if (op->ctime_of) {
		n = node_get(&p->nodes, op->ctime_of == CTO_NODE2 ? req->knode2 : req->knode);
		if (n)
			n->changed_ns = realtime_ns();
	}
	if (!op->dchange || (op->dchange == DC_SETATTR && !(sa->valid & FATTR_SIZE)))
		return;
	/* Mostly the node just looked up (a WRITE's): one lookup per reply on the hot path. */
	kid = op->dchange == DC_NODE2 ? req->knode2 : req->knode;
	if (!n || n->kid != kid)
		n = node_get(&p->nodes, kid);
	if (n)
		req->dver = ++n->dver;
}

/*
 * A WRITE or a sync succeeded: an acknowledged write joins its handle's window, a sync empties
 * the window up to what it covered. Even a reply the kernel no longer waited for counts: the
 * daemon did it. Returns what the caller still has to free.
 */
static struct msg *window_update(struct proxy *p, struct msg *req, const struct op_info *op,
				 struct msg *reply)
{
	struct handle *h;

	if (op->wwin == WW_WRITE) {
		struct fuse_write_in *in = body(req);
		const struct fuse_write_out *out =
			(const void *)(reply->data + sizeof(struct fuse_out_header));

		/* Only what the daemon says it wrote was acknowledged (a short write). */
		if (out->size < in->size) {
			in->size = out->size;
			req->len = sizeof(struct fuse_in_header) + sizeof(*in) + in->size;
		}
		/* Before the lock: giving back a large buffer's tail may be a syscall. */
		req = msg_shrink(req);
	}
	pthread_mutex_lock(&p->lock);
	if (op->dchange || op->ctime_of)
		note_data_change(p, req, op);
	h = handle_get(&p->handles, req->kfh);
	if (h && op->wwin == WW_WRITE) {
		/* --write-through: durable once acknowledged, nothing to keep. */
		if (!p->cfg->write_through)
			req = handle_keep_write(&p->handles, h, req);
		/* Not kept: past --write-window(-total), a crash now loses it (EIO, not silence). */
		if (!p->cfg->write_through && req && h->overflow_seq &&
		    h->overflow_seq == h->ack_seq && overflow_log_due(&p->window_overflows))
			log_warn("Write windows are full (--write-window=%" PRIu64 ", "
				 "--write-window-total=%" PRIu64 "): an acknowledged write on handle %"
				 PRIu64 " is not kept until synced; if the daemon dies first, the "
				 "file reports EIO (%" PRIu64 " so far)", p->handles.win_max,
				 p->handles.win_total_max, h->kfh, p->window_overflows);
	} else if (h) {
		handle_synced(&p->handles, h, req->wseq);
	}
	pthread_mutex_unlock(&p->lock);
	return req;
}

/*
 * Before a WRITE, FSYNC or FLUSH is sent, under the lock: a sync records which acknowledged
 * writes it covers, and on a handle whose acknowledged writes a restart lost, the request fails
 * with EIO — a sync reports it once, as NFS reports a lost write at close. Returns 0 or -EIO.
 */
int window_check(struct proxy *p, struct msg *req, const struct op_info *op)
{
	struct handle *h = handle_get(&p->handles, req->kfh);

	if (!h)
		return 0;
	if (h->write_lost) {
		if (op->wwin == WW_SYNC) {
			/* Reported: what was lost before no longer counts against the handle. */
			handle_set_write_lost(&p->handles, h, false);
			h->overflow_seq = 0;
			log_warn("Reporting lost writes on handle %" PRIu64 " of node %" PRIu64
				 " with EIO at its %s", h->kfh, h->node, op->name);
		}
		return -EIO;
	}
	req->wseq = h->ack_seq;
	return 0;
}

/*
 * The daemon renumbers its inodes on every run: shows the kernel, in a reply about to reach it,
 * the numbers it first saw (node_ino_to_kernel()). Entries were rewritten as they were learned.
 * The reply was checked: its records are well formed.
 */
static void remap_inos(struct proxy *p, const struct op_info *op, struct msg *reply)
{
	char *out = reply->data + sizeof(struct fuse_out_header);
	size_t len = reply->len - sizeof(struct fuse_out_header), off = 0;
	uint64_t ino;

	pthread_mutex_lock(&p->lock);
	switch ((enum op_ino)op->ino_out) {
	case INO_OUT_ATTR: {
		struct fuse_attr_out *a = (struct fuse_attr_out *)out;

		a->attr.ino = node_ino_to_kernel(&p->nodes, a->attr.ino);
		break;
	}
	case INO_OUT_DIRENT:
		while (len - off >= FUSE_NAME_OFFSET) {
			struct fuse_dirent *d = (struct fuse_dirent *)(out + off);

			if (FUSE_DIRENT_SIZE(d) > len - off)
				break;
			d->ino = node_ino_to_kernel(&p->nodes, d->ino);
			off += FUSE_DIRENT_SIZE(d);
		}
		break;
	case INO_OUT_DIRPLUS:
		while (len - off >= FUSE_NAME_OFFSET_DIRENTPLUS) {
			struct fuse_direntplus *d = (struct fuse_direntplus *)(out + off);
			bool dot;

			if (FUSE_DIRENTPLUS_SIZE(d) > len - off || !d->dirent.namelen)
				break;
			dot = d->dirent.name[0] == '.' &&
			      (d->dirent.namelen == 1 ||
			       (d->dirent.namelen == 2 && d->dirent.name[1] == '.'));
			d->dirent.ino = node_ino_to_kernel(&p->nodes, d->dirent.ino);
			/* Learned entries (see each_direntplus()) hold the kernel's number already. */
			if (!d->entry_out.nodeid || dot)
				d->entry_out.attr.ino =
					node_ino_to_kernel(&p->nodes, d->entry_out.attr.ino);
			off += FUSE_DIRENTPLUS_SIZE(d);
		}
		break;
	case INO_OUT_STATX:
		if (len >= FK_STATX_OUT_INO_OFF + sizeof(ino)) {
			memcpy(&ino, out + FK_STATX_OUT_INO_OFF, sizeof(ino));
			ino = node_ino_to_kernel(&p->nodes, ino);
			memcpy(out + FK_STATX_OUT_INO_OFF, &ino, sizeof(ino));
		}
		break;
	case INO_OUT_NONE:
	default:
		break;
	}
	pthread_mutex_unlock(&p->lock);
}

/* Whether the READ @req starts at or past the whole content its handle's priming read found. */
static bool primed_past_end(struct proxy *p, struct msg *req)
{
	const struct fuse_read_in *in = (const void *)(req->data + sizeof(struct fuse_in_header));
	struct handle *h;
	bool past;

	pthread_mutex_lock(&p->lock);
	h = handle_get(&p->handles, req->kfh);
	past = h && in->offset >= h->primed_end;
	pthread_mutex_unlock(&p->lock);
	return past;
}

static void wait_notifications(struct proxy *p);

int finish_reply(struct proxy *p, struct msg *req, struct msg *reply)
{
	struct fuse_in_header *ih = msg_in(req);
	struct fuse_out_header *oh = msg_out(reply);
	const struct op_info *op = op_get(ih->opcode);
	size_t out_len = reply->len - sizeof(*oh);
	int r = 0;

	oh->unique = ih->unique;
	if (oh->error > 0 || oh->error < -FK_MAX_ERRNO) {
		log_error("The daemon answered %s (unique %" PRIu64 ") with invalid error %d",
			  op->name, ih->unique, oh->error);
		r = -EPROTO;
	} else if (oh->error && out_len) {
		log_error("The daemon answered %s (unique %" PRIu64 ") with error %d and a %zu-byte "
			  "body; error replies have none", op->name, ih->unique, oh->error, out_len);
		r = -EPROTO;
	} else if (!oh->error && op_check_out_size(op, body(req), body_len(req), out_len) < 0) {
		if (op->out == OUT_FIXED)
			log_error("The daemon answered %s (unique %" PRIu64 ") with a %zu-byte body "
				  "instead of %u bytes", op->name, ih->unique, out_len, op->out_size);
		else
			log_error("The daemon answered %s (unique %" PRIu64 ") with a %zu-byte body, "
				  "more than the request allows", op->name, ih->unique, out_len);
		r = -EPROTO;
	} else if (!oh->error && op_check_records(op, reply->data + sizeof(*oh), out_len) < 0) {
		log_error("The daemon answered %s (unique %" PRIu64 ") with a record that does not "
			  "fit its %zu-byte body", op->name, ih->unique, out_len);
		r = -EPROTO;
	}
	if (r < 0) {
		reply_kernel_err(p, ih->unique, -EIO);
		msg_put(req);
		return r;
	}
	if (oh->error == -EINVAL && req->primed && op->positioned && !op->effect &&
	    primed_past_end(p, req)) {
		/*
		 * A daemon that makes a file's content on the first read (LXCFS) made it anew for
		 * the primed handle, maybe shorter: past its end is the end of file, not an error.
		 */
		log_debug("Read past the end of regenerated content: answering end of file");
		oh->error = 0;
	}
	if (!oh->error && op->lock == LK_SET)
		oh->error = locks_granted(p, req);
	if (oh->error && op->effect == EFF_RENAME && p->hide.live)
		hide_rename_failed(p, req, op);
	if (oh->error && op->effect == EFF_RELEASE) {
		/* The kernel has let go of the handle whatever the daemon says. */
		pthread_mutex_lock(&p->lock);
		release_handle(p, req->kfh);
		pthread_mutex_unlock(&p->lock);
	}
	if (!oh->error && !p->hide.off &&
	    (ih->opcode == FUSE_READDIR || ih->opcode == FUSE_READDIRPLUS) &&
	    hide_filter_dir(p, req, reply))
		return 0; /* Asked again past hidden names: the request is in flight again. */
	if (!oh->error && op->effect) {
		pthread_mutex_lock(&p->lock);
		r = apply_effect(p, req, op, reply);
		pthread_mutex_unlock(&p->lock);
		if (r < 0) {
			if (r == -EPROTO)
				log_error("The daemon's %s reply (unique %" PRIu64 ") is malformed",
					  op->name, ih->unique);
			else if (r == -ENFILE)
				note_table_full(p, op->effect == EFF_ENTRY || (op->effect == EFF_CREATE &&
						p->handles.by_kfh.count < p->handles.max),
						op->name, "is answered with ENFILE");
			else
				log_warn("Could not record the result of %s: %s", op->name,
					 strerror(-r));
			reply_kernel_err(p, ih->unique, r == -EPROTO ? -EIO : r);
			msg_put(req);
			return r == -EPROTO ? r : 0;
		}
	}
	if (!oh->error && op->ino_out && p->nodes.ino_remap)
		remap_inos(p, op, reply);
	if (!oh->error && op->ino_out && p->hide.live)
		hide_fix_attr(p, req, op, reply);
	wait_notifications(p);
	if (write_kernel(p, reply->data, reply->len) == -ENOENT && !oh->error && op->effect)
		undo_effect(p, req, op, reply);
	if (!oh->error && op->wwin)
		req = window_update(p, req, op, reply);
	else if (!oh->error && (op->dchange || op->ctime_of)) {
		pthread_mutex_lock(&p->lock);
		note_data_change(p, req, op);
		pthread_mutex_unlock(&p->lock);
	}
	msg_put(req);
	return 0;
}

/* ---- Kernel to daemon ------------------------------------------------------------------- */

static void k2d_forget(struct proxy *p, struct msg *m, uint32_t epoch)
{
	struct fuse_in_header *h = msg_in(m);
	struct fuse_forget_in *f = body(m);
	uint64_t did, fwd;

	node_forget(&p->nodes, h->nodeid, f->nlookup, &did, &fwd);
	pthread_mutex_unlock(&p->lock);
	if (fwd) {
		h->nodeid = did;
		f->nlookup = fwd;
		send_to_daemon(p, epoch, m->data, m->len, 0);
	}
}

static void k2d_batch_forget(struct proxy *p, struct msg *m, uint32_t epoch)
{
	struct fuse_batch_forget_in *b = body(m);
	struct fuse_forget_one *one = (struct fuse_forget_one *)(b + 1);
	uint32_t max = (body_len(m) - sizeof(*b)) / sizeof(*one), kept = 0;

	for (uint32_t i = 0; i < b->count && i < max; i++) {
		uint64_t did, fwd;

		node_forget(&p->nodes, one[i].nodeid, one[i].nlookup, &did, &fwd);
		if (fwd) {
			one[kept].nodeid = did;
			one[kept].nlookup = fwd;
			kept++;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (!kept)
		return;
	b->count = kept;
	m->len = sizeof(struct fuse_in_header) + sizeof(*b) + kept * sizeof(*one);
	msg_in(m)->len = m->len;
	send_to_daemon(p, epoch, m->data, m->len, 0);
}

static void k2d_interrupt(struct proxy *p, struct msg *m, uint32_t epoch)
{
	struct fuse_interrupt_in *in = body(m);
	struct msg *target = idmap_get(&p->inflight, in->unique);
	bool send = target && target->epoch == epoch;

	if (send)
		target->int_epoch = epoch; /* its daemon may answer the interrupt (EAGAIN) */
	pthread_mutex_unlock(&p->lock);
	/* An interrupt for a request the current daemon never saw has nobody to reach. */
	if (send)
		send_to_daemon(p, epoch, m->data, m->len, 0);
}

static void k2d_notify_reply(struct proxy *p, struct msg *m, const struct op_info *op,
			     uint32_t epoch)
{
	int r = translate_request(p, m, op);

	pthread_mutex_unlock(&p->lock);
	if (r == 0)
		send_to_daemon(p, epoch, m->data, m->len, 0);
}

/*
 * A FORGET, BATCH_FORGET, RELEASE or RELEASEDIR (@m, as the kernel sent it) that came while no
 * daemon served: the tables follow the kernel, and the current daemon, if any, is told. Under
 * the lock.
 */
static void unserved_one(struct proxy *p, struct msg *m)
{
	struct fuse_in_header *h = msg_in(m);
	uint32_t epoch = p->nodes.epoch;
	uint64_t did, fwd;

	switch (h->opcode) {
	case FUSE_FORGET:
		node_forget(&p->nodes, h->nodeid, ((struct fuse_forget_in *)body(m))->nlookup, &did,
			    &fwd);
		forget_in_daemon(p, epoch, did, fwd);
		break;
	case FUSE_BATCH_FORGET: {
		struct fuse_batch_forget_in *b = body(m);
		struct fuse_forget_one *one = (struct fuse_forget_one *)(b + 1);
		uint32_t max = (body_len(m) - sizeof(*b)) / sizeof(*one);

		for (uint32_t i = 0; i < b->count && i < max; i++) {
			node_forget(&p->nodes, one[i].nodeid, one[i].nlookup, &did, &fwd);
			forget_in_daemon(p, epoch, did, fwd);
		}
		break;
	}
	default: {
		uint64_t kfh = get64(body(m), op_get(h->opcode)->fh_off);
		struct handle *fh = handle_get(&p->handles, kfh);

		/* Reopened by the daemon that serves now: it closes it too. */
		if (fh && !fh->lost && fh->epoch == p->handles.epoch &&
		    node_to_daemon(&p->nodes, fh->node, &did) == 0)
			release_in_daemon(p, epoch, did, fh->dfh, fh->dir);
		release_handle(p, kfh);
		break;
	}
	}
}

void apply_unserved(struct proxy *p)
{
	struct msg *m = p->unserved_head;

	p->unserved_head = NULL;
	p->unserved_tail = &p->unserved_head;
	while (m) {
		struct msg *next = m->next;

		unserved_one(p, m);
		msg_put(m);
		m = next;
	}
}

/*
 * PX_FAILED: no daemon serves and none is waited for. Answers @m at once (EIO; a RELEASE
 * succeeds, the kernel lets go of the handle anyway). What the kernel forgets and closes
 * meanwhile must reach the tables before the next daemon serves; while a start is under way
 * its recovery is walking them, so those requests are kept for after it (apply_unserved()).
 * Called with the lock held; drops it.
 */
static void k2d_unserved(struct proxy *p, struct msg *m, const struct op_info *op)
{
	struct fuse_in_header *h = msg_in(m);
	uint64_t unique = h->unique;
	bool tables = h->opcode == FUSE_FORGET || h->opcode == FUSE_BATCH_FORGET ||
		      op->effect == EFF_RELEASE;

	if (tables && p->starting) {
		struct msg *copy = msg_dup(m->data, m->len);

		if (copy) {
			*p->unserved_tail = copy;
			p->unserved_tail = &copy->next;
		} else {
			log_warn("Out of memory: a %s (node %" PRIu64 ") that came while no daemon "
				 "served is lost: the tables keep what it let go of", op->name,
				 h->nodeid);
		}
	} else if (tables) {
		unserved_one(p, m);
	}
	pthread_mutex_unlock(&p->lock);
	if (!op->noreply)
		reply_kernel_err(p, unique, op->effect == EFF_RELEASE ? 0 : -EIO);
}

/*
 * Under the lock: waits while no daemon serves — not for ever: the supervisor moves to
 * PX_FAILED once --request-wait has passed. Returns true when one serves; false when none is
 * waited for, and @m was answered (the lock is then let go).
 */
static bool k2d_served(struct proxy *p, struct msg *m, const struct op_info *op)
{
	while (p->state == PX_WAIT)
		pthread_cond_wait(&p->changed, &p->lock);
	if (p->state != PX_FAILED)
		return true;
	k2d_unserved(p, m, op);
	return false;
}

/* Masks INIT flags the keeper cannot relay, and keeps a copy for later daemons. */
static int k2d_init(struct proxy *p, struct msg *m)
{
	struct fuse_init_in *in = body(m);

	if (body_len(m) >= offsetof(struct fuse_init_in, flags2) + sizeof(in->flags2)) {
		in->flags &= ~(uint32_t)INIT_FLAGS_MASKED;
		in->flags2 &= ~(uint32_t)(INIT_FLAGS_MASKED >> 32);
	} else {
		in->flags &= ~(uint32_t)INIT_FLAGS_MASKED;
	}
	msg_put(p->init_req);
	p->init_req = msg_dup(m->data, m->len);
	return p->init_req ? 0 : -ENOMEM;
}

/*
 * Handles one request from the kernel. Returns the buffer for the next read: @m itself when it
 * can be reused, or a fresh one when @m stays in flight.
 */
static struct msg *k2d_request(struct proxy *p, struct msg *m)
{
	struct fuse_in_header *h = msg_in(m);
	const struct op_info *op = op_get(h->opcode);
	struct msg *req = m, *next = m;
	bool in_flight = false;
	uint64_t unique;
	uint32_t epoch, len;
	int r;

	if (!op) {
		log_debug("Answering unknown opcode %u with ENOSYS", h->opcode);
		reply_kernel_err(p, h->unique, -ENOSYS);
		return m;
	}
	if (body_len(m) < op->in_size) {
		log_error("The kernel sent a %u-byte %s; at least %zu bytes were expected", h->len,
			  op->name, sizeof(*h) + op->in_size);
		if (!op->noreply)
			reply_kernel_err(p, h->unique, -EIO);
		return m;
	}
	trace_request("kernel", m);

	pthread_mutex_lock(&p->lock);
	if (!k2d_served(p, m, op))
		return m;
	epoch = p->nodes.epoch;
	if (op->noreply) {
		/* Each function below drops the lock. */
		switch (h->opcode) {
		case FUSE_FORGET:
			k2d_forget(p, m, epoch);
			break;
		case FUSE_BATCH_FORGET:
			k2d_batch_forget(p, m, epoch);
			break;
		case FUSE_INTERRUPT:
			k2d_interrupt(p, m, epoch);
			break;
		default:
			k2d_notify_reply(p, m, op, epoch);
			break;
		}
		return m;
	}
	if (op->entry_names && !p->hide.off) {
		/* Names of the keeper's own never show; removing a file held open keeps it. */
		r = hide_check_names(p, m, op);
		if (r == 0 && (h->opcode == FUSE_UNLINK || op->effect == EFF_RENAME))
			r = hide_removal(p, m, op);
		if (r) {
			pthread_mutex_unlock(&p->lock);
			reply_kernel_err(p, h->unique, r > 0 ? 0 : r);
			return m;
		}
		/* The lock may have been let go, even for a restart or a give-up. */
		if (!k2d_served(p, m, op))
			return m;
		epoch = p->nodes.epoch;
	}
	if (op->positioned && p->handles.fresh_count) {
		uint64_t kfh = ((struct fuse_read_in *)body(m))->fh;
		struct handle *fh = handle_get(&p->handles, kfh);

		/* Rare: the first read of a handle reopened after a restart (see prime_handle). */
		if (fh && fh->fresh && ((struct fuse_read_in *)body(m))->offset == 0) {
			handle_set_fresh(&p->handles, fh, false);
		} else if (fh && fh->fresh && !m->primed) {
			/* Once per request: if the daemon died of it, the request goes unprimed
			 * and its replay is counted like any other. */
			pthread_mutex_unlock(&p->lock);
			prime_handle(p, kfh, 0);
			m->primed = true;
			return k2d_request(p, m);
		}
	}
	if (op->effect == EFF_INIT && k2d_init(p, m) < 0) {
		pthread_mutex_unlock(&p->lock);
		reply_kernel_err(p, h->unique, -ENOMEM);
		return m;
	}
	/* Keep small requests in small buffers so the large read buffer is reused at once. */
	if (m->len <= MSG_SMALL)
		req = msg_dup(m->data, m->len);
	else
		next = msg_get(p->buf_size);
	if (!req || !next) {
		pthread_mutex_unlock(&p->lock);
		reply_kernel_err(p, h->unique, -ENOMEM);
		if (req != m)
			msg_put(req);
		return m;
	}
	req->len = m->len;
	req->primed = m->primed;
	m->primed = false;
	r = translate_request(p, req, op);
	if (op->lock && (op->lock != LK_FLUSH || p->locks.count))
		r = locks_request(p, req, op, r);
	if (op->stamp)
		req->sent_ns = realtime_ns();
	if (r < 0) {
		/* 0: the keeper answers it itself; else the error for the kernel. */
		r = untranslatable(p, req, op, r);
	} else if (op->wwin && (op->wwin == WW_SYNC || p->handles.lost_count) &&
		   (r = window_check(p, req, op)) < 0) {
		/* Lost writes: answered with EIO below. */
	} else {
		req->epoch = req->held = epoch;
		req->given_ms = now_coarse_ms();
		r = idmap_put(&p->inflight, msg_in(req)->unique, req);
		in_flight = r == 0;
	}
	/*
	 * Take the socket before letting go of the tables: whoever frees this request without
	 * an answer (a broken daemon's clean-up) takes the socket for writing first, so the
	 * request cannot vanish between here and the send.
	 */
	if (in_flight)
		pthread_rwlock_rdlock(&p->sock_lock);
	pthread_mutex_unlock(&p->lock);
	if (!in_flight) {
		log_debug("Answering %s for node %" PRIu64 " with %s", op->name, req->knode,
			  r ? strerror(-r) : "success");
		reply_kernel_err(p, msg_in(req)->unique, r);
		if (req != m)
			msg_put(req);
		else
			msg_put(next);
		return m;
	}
	/* Once sent, the reply path may free it: keep what the error path needs. */
	unique = msg_in(req)->unique;
	len = req->len;
	r = send_held(p, epoch, req->data, len, 0);
	pthread_rwlock_unlock(&p->sock_lock);
	if (r < 0 && r != -EPIPE) {
		/* The daemon is alive but cannot take this message: it must not wait for ever. */
		struct msg *gone = NULL;

		log_error("Cannot send a %u-byte %s to the daemon: %s; answering EIO", len, op->name,
			  strerror(-r));
		pthread_mutex_lock(&p->lock);
		if (idmap_get(&p->inflight, unique) == req && req->epoch == epoch)
			gone = idmap_del(&p->inflight, unique);
		pthread_mutex_unlock(&p->lock);
		if (gone) {
			reply_kernel_err(p, unique, -EIO);
			msg_put(gone);
		}
	}
	/* -EPIPE: the daemon is going; the request stays in flight for its successor. */
	return next;
}

static void *k2d_main(void *arg)
{
	struct proxy *p = arg;
	struct msg *m = msg_get(p->buf_size);

	while (m) {
		ssize_t n = read(p->devfd, m->data, m->cap);

		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
				continue;
			if (errno != ENODEV)
				log_error("Reading /dev/fuse failed: %s", strerror(errno));
			break;
		}
		if ((size_t)n < sizeof(struct fuse_in_header) || msg_in(m)->len != (size_t)n) {
			log_error("The kernel sent a malformed %zd-byte request; ignoring it", n);
			continue;
		}
		m->len = n;
		m->primed = false;
		/* The kernel's uniques grow (fuse_get_unique()): none above the largest read so
		 * far was made yet. Only this thread writes it. */
		if (msg_in(m)->unique > p->kunique_max)
			__atomic_store_n(&p->kunique_max, msg_in(m)->unique, __ATOMIC_RELAXED);
		m = k2d_request(p, m);
	}
	msg_put(m);
	/* ENODEV: the connection ended, because the filesystem was unmounted or aborted. */
	post_event(p, MODE_EV_UNMOUNTED);
	return NULL;
}

/* ---- Daemon to kernel ------------------------------------------------------------------- */

static int d2k_notify(struct proxy *p, struct msg *m)
{
	struct fuse_out_header *oh = msg_out(m);
	const struct notify_info *ni = notify_get(oh->error);
	struct msg *copy;
	char *b = m->data + sizeof(*oh);
	size_t len = m->len - sizeof(*oh);

	if (!ni) {
		log_error("The daemon sent an unknown notification (code %d, %zu bytes)", oh->error,
			  len);
		return -EPROTO;
	}
	if (len < ni->size) {
		log_error("The daemon sent a %zu-byte %s notification; at least %u bytes expected",
			  len, ni->name, ni->size);
		return -EPROTO;
	}
	if (ni->namelen_off >= 0) {
		uint32_t namelen;

		memcpy(&namelen, b + ni->namelen_off, sizeof(namelen));
		if (namelen > 1024 || len < ni->size + namelen + 1) {
			log_error("The daemon sent a %s notification with a bad name length %u",
				  ni->name, namelen);
			return -EPROTO;
		}
	}
	if (ni->drop) {
		log_debug("Dropping the daemon's %s notification", ni->name);
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < 2; i++) {
		uint64_t kid;

		if (ni->node_off[i] < 0)
			continue;
		if (node_to_kernel(&p->nodes, get64(b, ni->node_off[i]), &kid) < 0) {
			/* The kernel does not know that node: nothing to tell it. */
			pthread_mutex_unlock(&p->lock);
			return 0;
		}
		put64(b, ni->node_off[i], kid);
	}
	pthread_mutex_unlock(&p->lock);
	copy = msg_dup(m->data, m->len);
	if (!copy) {
		log_warn("Out of memory: dropping the daemon's %s notification", ni->name);
		return 0;
	}
	queue_notification(p, copy, ni->name);
	return 0;
}

void queue_notification(struct proxy *p, struct msg *copy, const char *name)
{
	pthread_mutex_lock(&p->nq_lock);
	if (p->nq_seq_in - p->nq_seq_done >= NOTIFY_QUEUE_MAX) {
		/* The kernel is not keeping up: the daemon waits, as it would on /dev/fuse. */
		struct timespec ts = deadline_ts(1000);

		while (p->nq_seq_in - p->nq_seq_done >= NOTIFY_QUEUE_MAX)
			if (pthread_cond_timedwait(&p->nq_cond, &p->nq_lock, &ts) == ETIMEDOUT)
				break;
		if (p->nq_seq_in - p->nq_seq_done >= NOTIFY_QUEUE_MAX) {
			pthread_mutex_unlock(&p->nq_lock);
			if (overflow_log_due(&p->dropped_notifications))
				log_warn("%d notifications wait for the kernel: dropping a %s (%" PRIu64
					 " dropped so far)", NOTIFY_QUEUE_MAX, name,
					 p->dropped_notifications);
			msg_put(copy);
			return;
		}
	}
	copy->next = NULL;
	*p->nq_tail = copy;
	p->nq_tail = &copy->next;
	p->nq_seq_in++;
	pthread_cond_broadcast(&p->nq_cond);
	pthread_mutex_unlock(&p->nq_lock);
}

static void *notifier_main(void *arg)
{
	struct proxy *p = arg;

	for (;;) {
		struct msg *m;

		pthread_mutex_lock(&p->nq_lock);
		while (!p->nq_head)
			pthread_cond_wait(&p->nq_cond, &p->nq_lock);
		m = p->nq_head;
		p->nq_head = m->next;
		if (!p->nq_head)
			p->nq_tail = &p->nq_head;
		pthread_mutex_unlock(&p->nq_lock);
		/* ENOENT: the kernel does not know the node (any more); nothing to do. */
		write_kernel(p, m->data, m->len);
		msg_put(m);
		pthread_mutex_lock(&p->nq_lock);
		p->nq_seq_done++;
		pthread_cond_broadcast(&p->nq_cond);
		pthread_mutex_unlock(&p->nq_lock);
	}
	return NULL;
}

/*
 * A daemon's notification is applied before its next reply when it sends them in that order,
 * as over /dev/fuse; but a notification that waits for a lock held by a request must not keep
 * that request's reply from the kernel for ever, so the wait is bounded.
 */
static void wait_notifications(struct proxy *p)
{
	struct timespec ts;
	uint64_t target;

	if (__atomic_load_n(&p->nq_seq_in, __ATOMIC_ACQUIRE) ==
	    __atomic_load_n(&p->nq_seq_done, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&p->nq_lock);
	target = p->nq_seq_in;
	/* Still stuck on the notification that made an earlier reply give up: do not wait. */
	if (p->nq_stalled == p->nq_seq_done + 1) {
		pthread_mutex_unlock(&p->nq_lock);
		return;
	}
	ts = deadline_ts(50);
	while (p->nq_seq_done < target)
		if (pthread_cond_timedwait(&p->nq_cond, &p->nq_lock, &ts) == ETIMEDOUT)
			break;
	if (p->nq_seq_done < target)
		p->nq_stalled = p->nq_seq_done + 1;
	pthread_mutex_unlock(&p->nq_lock);
}

int notifier_start(struct proxy *p)
{
	pthread_mutex_init(&p->nq_lock, NULL);
	cond_init_monotonic(&p->nq_cond);
	p->nq_head = NULL;
	p->nq_tail = &p->nq_head;
	return -pthread_create(&p->notifier, NULL, notifier_main, p);
}

static int d2k_call_reply(struct proxy *p, struct msg *m)
{
	uint64_t unique = msg_out(m)->unique;
	size_t out_len = m->len - sizeof(struct fuse_out_header);
	struct call *c;
	bool late;

	log_trace("daemon: reply to the keeper's request %#" PRIx64 " error %d", unique,
		  msg_out(m)->error);
	if (msg_out(m)->error > 0 || msg_out(m)->error < -FK_MAX_ERRNO ||
	    (msg_out(m)->error && out_len)) {
		log_error("The daemon answered the keeper's request %#" PRIx64 " with a malformed "
			  "reply (error %d, %u bytes)", unique, msg_out(m)->error, m->len);
		return -EPROTO;
	}
	if (unique & ORPHAN_BIT) {
		/* Numbered like every call of the keeper's: one it never sent is an error. */
		if ((unique & ~(CALL_BIT | ORPHAN_BIT)) >> 1 >=
		    __atomic_load_n(&p->next_call, __ATOMIC_RELAXED)) {
			log_error("The daemon answered a request %#" PRIx64 " the keeper never "
				  "sent", unique);
			return -EPROTO;
		}
		if (p->hide.graves)
			hide_call_reply(p, unique, msg_out(m)->error);
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	c = idmap_get(&p->calls, unique);
	/*
	 * Checked here as a reply to the kernel is: a recovery that took a malformed answer for
	 * "no such name" or "cannot reopen" would lose the node or handle for good, where the
	 * next daemon could have found it.
	 */
	if (c && !msg_out(m)->error && op_get(c->opcode) &&
	    (op_check_out(op_get(c->opcode), c->limit, out_len) < 0 ||
	     op_check_records(op_get(c->opcode), m->data + sizeof(struct fuse_out_header),
			      out_len) < 0)) {
		pthread_mutex_unlock(&p->lock);
		log_error("The daemon answered the keeper's %s (%#" PRIx64 ") with a malformed "
			  "%zu-byte body", op_name(c->opcode), unique, out_len);
		return -EPROTO;
	}
	if (c) {
		idmap_del(&p->calls, unique);
		c->reply = msg_dup(m->data, m->len);
		c->done = true;
		pthread_cond_broadcast(&p->changed);
	}
	late = !c && idmap_del(&p->abandoned, unique);
	pthread_mutex_unlock(&p->lock);
	if (late) {
		/* A call given up on (timeout, or a priming read nobody waits for any more). */
		log_debug("Dropping a late answer to the keeper's request %#" PRIx64, unique);
		return 0;
	}
	if (!c) {
		/* Answering what was never asked: the request it should have answered would
		 * wait for ever. */
		log_error("The daemon answered a request %#" PRIx64 " the keeper never sent, or "
			  "answered twice", unique);
		return -EPROTO;
	}
	efd_signal(p->call_efd);
	return 0;
}

int d2k_message(struct proxy *p, struct msg *m, uint32_t epoch)
{
	struct fuse_out_header *oh = msg_out(m);
	struct msg *req;

	if (m->len < sizeof(*oh)) {
		log_error("The daemon sent a %u-byte message, shorter than a reply header", m->len);
		return -EPROTO;
	}
	if (oh->len != m->len) {
		log_error("The daemon sent a %u-byte message whose header says %u bytes", m->len,
			  oh->len);
		/* Its request, if known, must not wait for ever. */
		return -EPROTO; /* Its request gets EIO with the rest the daemon held. */
	}
	if (oh->unique == 0)
		return d2k_notify(p, m);
	/* An answer, even a wrong one: the daemon is not hung (relay_hung_at()). */
	__atomic_store_n(&p->heard_ms, now_coarse_ms(), __ATOMIC_RELAXED);
	if (oh->unique & CALL_BIT)
		return d2k_call_reply(p, m);
	if (oh->unique & FK_INT_REQ_BIT) {
		/* An answer to an INTERRUPT (EAGAIN, ENOSYS): the kernel handles it. */
		uint64_t target = oh->unique & ~FK_INT_REQ_BIT;
		bool unsent;

		if (m->len != sizeof(*oh)) {
			log_error("The daemon answered an INTERRUPT with a body");
			return -EPROTO;
		}
		pthread_mutex_lock(&p->lock);
		req = idmap_get(&p->inflight, target);
		/* Of a request it holds, only an interrupt it was given; else only one the kernel
		 * could have made (an answer racing the request's own is no error). */
		unsent = req ? req->epoch == epoch && req->int_epoch != epoch
			     : target > __atomic_load_n(&p->kunique_max, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&p->lock);
		if (unsent) {
			log_error("The daemon answered an INTERRUPT of unique %" PRIu64 " that it was "
				  "never sent", target);
			return -EPROTO;
		}
		write_kernel(p, m->data, m->len);
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	req = idmap_get(&p->inflight, oh->unique);
	if (req && req->epoch == epoch)
		idmap_del(&p->inflight, oh->unique);
	else
		req = NULL; /* not given to this daemon (a replay in the making, or none) */
	pthread_mutex_unlock(&p->lock);
	if (!req) {
		log_error("The daemon answered unique %" PRIu64 ", which it was not asked",
			  oh->unique);
		return -EPROTO;
	}
	log_trace("daemon: reply to %s unique %" PRIu64 " node %" PRIu64 " error %d",
		  op_name(msg_in(req)->opcode), oh->unique, req->knode, oh->error);
	return finish_reply(p, req, m);
}

struct hang_ctx {
	struct proxy *p;
	uint32_t epoch;
	int64_t oldest_ms;	/* when the oldest request that counts was given; 0: none */
	uint32_t opcode;	/* ... its opcode, unique and node for the log */
	uint64_t unique, node;
};

static void hang_note(struct hang_ctx *c, int64_t given_ms, uint32_t opcode, uint64_t unique,
		      uint64_t node)
{
	if (c->oldest_ms && c->oldest_ms <= given_ms)
		return;
	c->oldest_ms = given_ms;
	c->opcode = opcode;
	c->unique = unique;
	c->node = node;
}

static void hang_request(uint64_t key, void *val, void *arg)
{
	struct hang_ctx *c = arg;
	struct msg *req = val;
	const struct op_info *op = op_get(msg_in(req)->opcode);

	if (req->epoch != c->epoch || op->may_wait)
		return;
	if (op->wwin == WW_WRITE || op->positioned) {
		/* A READ or WRITE on a pipe-like file waits for data to come or go. */
		struct handle *h = handle_get(&c->p->handles, req->kfh);

		if (h && (h->fopen & (FOPEN_STREAM | FOPEN_NONSEEKABLE)))
			return;
	}
	hang_note(c, req->given_ms, msg_in(req)->opcode, msg_in(req)->unique, req->knode);
}

static void hang_call(uint64_t key, void *val, void *arg)
{
	struct hang_ctx *c = arg;
	struct call *call = val;

	/* The keeper's own: a hiding rename, a priming read, a lock taken again. */
	if (call->epoch == c->epoch && !call->done)
		hang_note(c, call->given_ms, call->opcode, call->unique, 0);
}

/* Whether the daemon's answers wait unread in the socket (the keeper was not running). */
static bool answers_unread(struct proxy *p)
{
	struct pollfd pfd = { .events = POLLIN };
	bool unread;

	pthread_rwlock_rdlock(&p->sock_lock);
	pfd.fd = p->sock;
	unread = pfd.fd >= 0 && poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
	pthread_rwlock_unlock(&p->sock_lock);
	return unread;
}

int64_t relay_hung_at(struct proxy *p, int64_t timeout_ms, char *what, size_t size)
{
	struct hang_ctx c = { .p = p };
	int64_t now = now_coarse_ms(), since;

	pthread_mutex_lock(&p->lock);
	if (p->state != PX_UP || p->starting) {
		pthread_mutex_unlock(&p->lock);
		return INT64_MAX;
	}
	c.epoch = p->nodes.epoch;
	idmap_each(&p->inflight, hang_request, &c);
	idmap_each(&p->calls, hang_call, &c);
	/* A request given later cannot make the daemon hung before this. */
	since = c.oldest_ms ? c.oldest_ms : now;
	since = MAX(since, p->up_ms);
	since = MAX(since, __atomic_load_n(&p->heard_ms, __ATOMIC_RELAXED));
	pthread_mutex_unlock(&p->lock);
	if (!c.oldest_ms)
		return MAX(since + timeout_ms, now_ms() + 1);
	if (now >= since + timeout_ms && answers_unread(p)) {
		/* Answered, but not read yet: the keeper itself was stopped or starved. */
		__atomic_store_n(&p->heard_ms, now, __ATOMIC_RELAXED);
		return now + timeout_ms;
	}
	if (c.node)
		snprintf(what, size, "request %s (unique %#" PRIx64 ", node %" PRIu64 ") for %.1f s",
			 op_name(c.opcode), c.unique, c.node, (now - c.oldest_ms) / 1000.0);
	else
		snprintf(what, size, "request %s (unique %#" PRIx64 ", the keeper's own) for %.1f s",
			 op_name(c.opcode), c.unique, (now - c.oldest_ms) / 1000.0);
	return since + timeout_ms;
}

struct fail_ctx {
	struct proxy *p;
	uint32_t epoch;
	struct msg **v;
	size_t n;
};

static void collect_failed(uint64_t key, void *val, void *arg)
{
	struct fail_ctx *c = arg;
	struct msg *req = val;

	if (req->epoch == c->epoch && c->v)
		c->v[c->n++] = req;
}

/*
 * A daemon that broke the protocol cannot be trusted with what it holds, and which request its
 * bad message answered may be unknowable (a short message, a wrong unique). Every request it was
 * given gets EIO instead of a replay that could break its successor the same way.
 */
static void fail_daemon_requests(struct proxy *p, uint32_t epoch)
{
	struct fail_ctx c = { p, epoch, NULL, 0 };

	pthread_mutex_lock(&p->lock);
	c.v = malloc((p->inflight.count + 1) * sizeof(*c.v));
	idmap_each(&p->inflight, collect_failed, &c);
	for (size_t i = 0; i < c.n; i++)
		idmap_del(&p->inflight, msg_in(c.v[i])->unique);
	pthread_mutex_unlock(&p->lock);
	/* The relay may be sending one of them right now (it holds the socket meanwhile). */
	pthread_rwlock_wrlock(&p->sock_lock);
	pthread_rwlock_unlock(&p->sock_lock);
	if (c.n)
		log_error("Answering the %zu request%s daemon held with EIO", c.n,
			  c.n == 1 ? " the broken" : "s the broken");
	for (size_t i = 0; i < c.n; i++) {
		reply_kernel_err(p, msg_in(c.v[i])->unique, -EIO);
		msg_put(c.v[i]);
	}
	free(c.v);
}

static void *d2k_main(void *arg)
{
	struct proxy *p = arg;
	struct msg *m = msg_get(p->buf_size);
	int sock = p->sock;
	uint32_t epoch = p->sock_epoch;

	while (m) {
		struct iovec iov = { m->data, m->cap };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(sock, &mh, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* The keeper shut its end, or the daemon closed its own while alive. */
			if (!__atomic_load_n(&p->detaching, __ATOMIC_ACQUIRE))
				post_event(p, MODE_EV_CHANNEL_CLOSED);
			break;
		}
		if (mh.msg_flags & MSG_TRUNC) {
			log_error("The daemon sent a message larger than %u bytes", m->cap);
			post_event(p, MODE_EV_DAEMON_BROKEN);
			fail_daemon_requests(p, epoch);
			break;
		}
		m->len = n;
		if (d2k_message(p, m, epoch) < 0) {
			post_event(p, MODE_EV_DAEMON_BROKEN);
			fail_daemon_requests(p, epoch);
			break;
		}
	}
	msg_put(m);
	return NULL;
}

int relay_start_d2k(struct proxy *p)
{
	int r = pthread_create(&p->d2k, NULL, d2k_main, p);

	if (r)
		return -r;
	p->d2k_running = true;
	return 0;
}

void relay_stop_d2k(struct proxy *p)
{
	if (!p->d2k_running)
		return;
	/* Replies already sent stay readable after shutdown: the thread drains them, then ends. */
	shutdown(p->sock, SHUT_RDWR);
	pthread_join(p->d2k, NULL);
	p->d2k_running = false;
}

int relay_start(struct proxy *p)
{
	int r = pthread_create(&p->k2d, NULL, k2d_main, p);

	return -r;
}
