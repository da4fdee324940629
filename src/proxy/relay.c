/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The relay: one thread reads the kernel's requests from /dev/fuse, translates their node IDs and
 * handles and sends them to the daemon; one thread per daemon reads its replies, notifications
 * and answers to the keeper's own calls and hands them on: reply.c records what a reply changes
 * and writes it to the kernel, notify.c queues a notification for its own thread.
 * This is the hot path: one read, one send, one recv and one write per request, a lock held only
 * for table updates, no copy but for small requests kept for replay.
 */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "calls.h"
#include "channel.h"
#include "hide.h"
#include "log.h"
#include "mode.h"
#include "notify.h"
#include "prime.h"
#include "proxy_locks.h"
#include "recover.h"
#include "reply.h"
#include "resume.h"
#include "translate.h"
#include "util.h"

/* Requests read between two settings of the resume journal's mark (resume_mark()): a keeper
 * that takes the connection back from a kernel that cannot resend sweeps (sweep_lost()) from
 * the oldest request held at the last setting, so about this many past the ones it must. */
#define MARK_EVERY 512

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

	/* Answered now, it is not sent again after a SIGKILL of this keeper, whatever the kernel. */
	if (op->effect == EFF_RELEASE)
		resume_note_release(p, get64(body(m), op->fh_off));
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
 * Under the lock: a relay thread stopped for a fusekeeper reexec says so in @parked and waits
 * until relay_thaw().
 */
static void park_locked(struct proxy *p, bool *parked)
{
	*parked = true;
	pthread_cond_broadcast(&p->changed);
	while (p->freeze)
		pthread_cond_wait(&p->changed, &p->lock);
	*parked = false;
}

/*
 * Under the lock: waits while no daemon serves — not for ever: the supervisor moves to
 * PX_FAILED once --request-wait has passed. Returns true when one serves; false when none is
 * waited for, and @m was answered (the lock is then let go). @fresh: nothing was done for @m
 * yet, so that a fusekeeper reexec may hand it on (relay_freeze()).
 */
static bool k2d_served(struct proxy *p, struct msg *m, const struct op_info *op, bool fresh)
{
	while (p->state == PX_WAIT) {
		/* Only a request nothing was done for yet can be handed to the next keeper. */
		if (p->freeze && fresh && !p->k2d_parked) {
			p->carry = m;
			park_locked(p, &p->k2d_parked);
			p->carry = NULL;
			continue;
		}
		pthread_cond_wait(&p->changed, &p->lock);
	}
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
	kernel_known(p);
	return p->init_req ? 0 : -ENOMEM;
}

/*
 * A request the killed keeper had read, just read again: in flight as one its daemon held,
 * given at the time the journal says (0: not known), dead when this keeper began (0: not sure
 * it is), for the next recovery to settle. Takes @m. Returns 0, or -errno when it was answered
 * instead.
 */
static int hold_resent(struct proxy *p, struct msg *m)
{
	struct fuse_in_header *h = msg_in(m);
	const struct op_info *op = op_get(h->opcode);
	struct msg *req;
	int r;

	if (!op || body_len(m) < op->in_size) {
		log_error("The kernel sent again a %u-byte request with opcode %u, which it cannot "
			  "have sent before: answering EIO", h->len, h->opcode);
		reply_kernel_err(p, h->unique, -EIO);
		msg_put(m);
		return -EIO;
	}
	/* Small requests in small buffers, as the relay keeps them. */
	req = m->len <= MSG_SMALL ? msg_dup(m->data, m->len) : m;
	if (!req) {
		reply_kernel_err(p, h->unique, -ENOMEM);
		msg_put(m);
		return -ENOMEM;
	}
	if (req != m)
		msg_put(m);
	h = msg_in(req);
	trace_request("kernel (sent again)", req);
	request_kernel_ids(req, op);
	req->resent = true;
	req->sent_ns = resume_sent_ns(p, h->unique);
	req->death_ns = p->resumed_ns;
	req->deaths = 1;
	req->given_ms = now_coarse_ms();
	pthread_mutex_lock(&p->lock);
	/* What the relay checks first, as it would have (what the killed keeper did of it may
	 * not have reached the journal: a FLUSH's release of its owner's locks). */
	r = 0;
	if (op->entry_names && !p->hide.off)
		r = hide_check_names(p, req, op);
	if (r == 0 && op->lock && (op->lock != LK_FLUSH || p->locks.count))
		r = locks_request(p, req, op, 0);
	if (r == 0)
		r = idmap_put(&p->inflight, h->unique, req);
	pthread_mutex_unlock(&p->lock);
	if (r) {
		reply_kernel_err(p, h->unique, r > 0 ? 0 : r);
		msg_put(req);
		return -EIO;
	}
	return 0;
}

/*
 * A message of @n bytes just read from /dev/fuse into @m: sets m->len and notes its unique, or
 * returns false when it is malformed (logged; to be ignored). Only the thread that reads the
 * kernel calls it.
 */
static bool kernel_read(struct proxy *p, struct msg *m, ssize_t n)
{
	uint64_t unique;

	if ((size_t)n < sizeof(struct fuse_in_header) || msg_in(m)->len != (size_t)n) {
		log_error("The kernel sent a malformed %zd-byte request; ignoring it", n);
		return false;
	}
	m->len = n;
	unique = msg_in(m)->unique & ~FK_UNIQUE_RESEND;
	/* The kernel's uniques grow (fuse_get_unique()): none above the largest read so far was
	 * made yet. A NOTIFY_REPLY carries the daemon's notify_unique instead. */
	if (unique > p->kunique_max && msg_in(m)->opcode != FUSE_NOTIFY_REPLY)
		__atomic_store_n(&p->kunique_max, unique, __ATOMIC_RELAXED);
	return true;
}

/*
 * A keeper that took the connection back from a kernel that cannot send again what the killed
 * one had read: those requests wait in the kernel's processing queue for answers nobody will
 * give. Every one has a unique from the journal's mark (resume_mark()) up to @below, the first
 * this keeper read, and the kernel, which numbers its requests by two (fuse_get_unique()),
 * finds the ones it waits on by that: EIO to every such unique ends them — nobody can tell what
 * the killed keeper's daemon did of them — and one the kernel does not wait on (answered
 * already) is refused with ENOENT, harmlessly.
 */
static void sweep_lost(struct proxy *p, uint64_t below)
{
	struct fuse_out_header oh = { .len = sizeof(oh), .error = -EIO };
	uint64_t from = MAX(p->sweep_from & ~1ULL, 2), ended = 0, tried = 0;
	int64_t start = now_ms();
	int err = 0;

	p->sweep_from = 0;
	if (below > from + 200000)
		log_info("Answering EIO to the requests the killed keeper had read: %" PRIu64
			 " uniques to try (a request it held long kept the journal's mark back)",
			 (below - from) / 2);
	for (uint64_t u = from; u < below; u += 2, tried++) {
		oh.unique = u;
		if (write(p->devfd, &oh, sizeof(oh)) == sizeof(oh)) {
			ended++;
		} else if (errno != ENOENT && !err) {
			err = errno;
			/* The connection ended: nothing waits any more. */
			if (err == ENODEV)
				break;
		}
	}
	if (err)
		log_error("Ending the requests the killed keeper had read: /dev/fuse refused an "
			  "answer: %s", strerror(err));
	log_warn("Answered EIO to %" PRIu64 " request%s the killed keeper had read (%" PRIu64
		 " uniques tried in %" PRId64 " ms): this kernel cannot send them again "
		 "(FUSE_NOTIFY_RESEND, Linux 6.9), and what its daemon did of them is unknown",
		 ended, ended == 1 ? "" : "s", tried, now_ms() - start);
}

int take_resent(struct proxy *p)
{
	struct fuse_out_header resend = { .len = sizeof(resend), .error = FK_NOTIFY_RESEND };
	struct msg **tail = &p->early;
	size_t held = 0;
	int flags, r = 0;

	if (write(p->devfd, &resend, sizeof(resend)) != sizeof(resend))
		return errno ? -errno : -EIO;
	/*
	 * The kernel put them back at the head of its queue before the write returned: what is
	 * readable now holds them all, with maybe FORGETs and INTERRUPTs (of them too) among
	 * them. The first request the kernel sends for the first time ends them. Read without
	 * waiting: a request may go (its caller killed) between a poll and a read.
	 */
	flags = fcntl(p->devfd, F_GETFL);
	if (flags < 0 || fcntl(p->devfd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	for (;;) {
		struct msg *m = msg_get(p->buf_size);
		struct fuse_in_header *h;
		ssize_t n;

		if (!m) {
			r = -ENOMEM;
			break;
		}
		n = read(p->devfd, m->data, m->cap);
		if (n < 0) {
			int e = errno;

			msg_put(m);
			if (e == EINTR || e == ENOENT)
				continue;
			/* EAGAIN: nothing more. ENODEV: unmounted; the relay will see it. */
			if (e != EAGAIN && e != ENODEV)
				r = -e;
			break;
		}
		if (!kernel_read(p, m, n)) {
			msg_put(m);
			continue;
		}
		h = msg_in(m);
		if (op_get(h->opcode) && op_get(h->opcode)->noreply) {
			/* For the relay, in order: an INTERRUPT reaches its request once replayed. */
			*tail = m;
			tail = &m->next;
			continue;
		}
		if (h->unique & FK_UNIQUE_RESEND) {
			held += hold_resent(p, m) == 0;
			continue;
		}
		*tail = m;
		tail = &m->next;
		break;
	}
	/* Blocking again, as the relay reads, even if a keeper killed in here left it not. */
	if (fcntl(p->devfd, F_SETFL, flags & ~O_NONBLOCK) < 0 && !r)
		r = -errno;
	log_info("%zu requests the killed keeper had read came back from the kernel; they are "
		 "settled as a dead daemon's", held);
	return r;
}

/* Adds @kid to @want (up to 4) if the current daemon does not know that node yet. */
static void want_node(struct proxy *p, uint64_t want[4], uint64_t kid)
{
	struct node *n = node_get(&p->nodes, kid);

	if (!n || !node_unresolved(&p->nodes, n))
		return;
	for (int i = 0; i < 4; i++) {
		if (want[i] == kid)
			return;
		if (!want[i]) {
			want[i] = kid;
			return;
		}
	}
}

/*
 * Whether @m removes or renames a name whose node is lost (a file replaced or removed while
 * no daemon ran, that the kernel still caches): the daemon holds no lookup of what the name
 * names now, if anything, and must not be asked to remove it (fuse-overlayfs frees memory
 * twice). ESTALE instead makes the kernel walk the path again with LOOKUP_REVAL and send the
 * request for what the name names now, looked up. Only names the kernel holds as positive
 * (an UNLINK's, an RMDIR's, a RENAME's source): it sends these for a cached dentry, never
 * after finding the name gone. Under the lock.
 */
static bool k2d_lost_name(struct proxy *p, struct msg *m, const struct op_info *op)
{
	const char *names[2];
	struct node *n;

	if (op->effect != EFF_UNLINK && op->effect != EFF_RENAME)
		return false;
	if (request_names(m, op, names) < 0 || !names[0])
		return false;
	n = node_find(&p->nodes, msg_in(m)->nodeid, names[0]);
	return n && n->lost;
}

/*
 * Lazy lookup's fence: @m (as the kernel sent it) may name nodes the current daemon does not
 * know yet — by ID, or as the node an entry name it carries names (a request that makes,
 * removes or renames a name, or looks one up, first has the node the name named looked up, so
 * that no request in flight ever changes a name of an unresolved node, and the daemon is asked
 * to remove only names it looked up). Under the lock. Returns 0 when it names none, the lock
 * still held: @m goes on. Else lets go of the lock, looks them up (recover_node()) and returns
 * 1: the caller starts @m again, and the fence is checked again (in the next daemon's epoch
 * after a death). Returns -EIO when they could not be looked up (no answer within
 * --start-timeout, no memory, or LAZY_RESOLVE_TRIES deaths): an error, not a request on a node
 * the daemon may not know.
 */
static int k2d_fence(struct proxy *p, struct msg *m, const struct op_info *op)
{
	uint64_t want[4] = { 0 }, dirs[2] = { msg_in(m)->nodeid, 0 };
	const char *names[2];
	struct node *n;
	uint32_t epoch;
	int r = 0;

	if (op->node && msg_in(m)->nodeid)
		want_node(p, want, msg_in(m)->nodeid);
	if (op->node2_off >= 0) {
		dirs[1] = get64(body(m), op->node2_off);
		want_node(p, want, dirs[1]);
	}
	if (op->entry_names && request_names(m, op, names) == 0) {
		for (int i = 0; i < op->entry_names && i < 2; i++) {
			n = names[i] ? node_find(&p->nodes, dirs[i], names[i]) : NULL;
			if (n)
				want_node(p, want, n->kid);
		}
	}
	if (!want[0])
		return 0;
	epoch = p->nodes.epoch;
	pthread_mutex_unlock(&p->lock);
	if (m->resolves++ >= LAZY_RESOLVE_TRIES) {
		log_warn("%s (unique %#" PRIx64 ") names node %" PRIu64 ", which could not be "
			 "looked up in %d tries: answering EIO", op->name, msg_in(m)->unique,
			 want[0], LAZY_RESOLVE_TRIES);
		return -EIO;
	}
	for (int i = 0; i < 4 && want[i] && r == 0; i++)
		r = recover_node(p, want[i], epoch);
	if (r == -EPIPE) {
		/* The daemon died: the request waits for the next one, as one in flight would. */
		pthread_mutex_lock(&p->lock);
		while (p->state == PX_UP && p->nodes.epoch == epoch)
			pthread_cond_wait(&p->changed, &p->lock);
		pthread_mutex_unlock(&p->lock);
	} else if (r < 0) {
		log_warn("%s (unique %#" PRIx64 "): looking node %" PRIu64 " up failed: %s; "
			 "answering EIO", op->name, msg_in(m)->unique, want[0], strerror(-r));
		return -EIO;
	}
	return 1;
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
	if ((h->unique & FK_UNIQUE_RESEND) && !op->noreply) {
		/* take_resent() took every one there was: the kernel sent this again later. */
		log_error("%s (unique %#" PRIx64 ") came back from the kernel after the requests "
			  "the killed keeper had read: answering EIO", op->name, h->unique);
		reply_kernel_err(p, h->unique, -EIO);
		return m;
	}

	pthread_mutex_lock(&p->lock);
	/* Read, it is the kernel's last word on the handle: before any wait for a daemon. */
	if (op->effect == EFF_RELEASE && !kernel_resends(p))
		resume_note_release(p, get64(body(m), op->fh_off));
	if (!k2d_served(p, m, op, true))
		return m;
	if (!kernel_resends(p) && ++p->mark_reads >= MARK_EVERY &&
	    resume_mark(p, h->opcode == FUSE_NOTIFY_REPLY ? UINT64_MAX : h->unique))
		p->mark_reads = 0;
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
	if (op->entry_names && k2d_lost_name(p, m, op)) {
		pthread_mutex_unlock(&p->lock);
		log_debug("%s (unique %#" PRIx64 ") of a name whose node is lost: answering ESTALE, "
			  "for the kernel to look the name up again", op->name, h->unique);
		reply_kernel_err(p, h->unique, -ESTALE);
		return m;
	}
	if (p->lazy_pending) {
		r = k2d_fence(p, m, op);
		if (r > 0)
			return k2d_request(p, m);
		if (r < 0) {
			reply_kernel_err(p, h->unique, r);
			return m;
		}
	}
	if (op->entry_names && !p->hide.off) {
		/* Names of the keeper's own never show; removing a file held open keeps it. */
		r = hide_check_names(p, m, op);
		if (r == 0 && (h->opcode == FUSE_UNLINK || op->effect == EFF_RENAME))
			r = hide_removal(p, m, op);
		if (r) {
			resume_flush(p); /* the journal first: the name may be the keeper's now */
			pthread_mutex_unlock(&p->lock);
			reply_kernel_err(p, h->unique, r > 0 ? 0 : r);
			return m;
		}
		/* The lock may have been let go, even for a restart or a give-up. */
		if (!k2d_served(p, m, op, false))
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
		if (in_flight && p->journal && resume_needs_sent(req))
			resume_note_sent(p, req);
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
		if (idmap_get(&p->inflight, unique) == req && req->epoch == epoch) {
			gone = idmap_del(&p->inflight, unique);
			inflight_taken(p, 1);
		}
		pthread_mutex_unlock(&p->lock);
		if (gone) {
			reply_kernel_err(p, unique, -EIO);
			msg_put(gone);
			inflight_answered(p, 1);
		}
	}
	/* -EPIPE: the daemon is going; the request stays in flight for its successor. */
	return next;
}

/* ---- Stopping the threads for fusekeeper reexec ------------------------------------------ */

/* Interrupts the relay threads' blocking reads; its handler does nothing. */
#define FREEZE_SIGNAL SIGRTMIN

static void freeze_handler(int sig)
{
}

/* In a relay thread: lets FREEZE_SIGNAL interrupt its system calls (no SA_RESTART). */
static void freeze_signal_unblock(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, FREEZE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* A relay thread interrupted between two messages: waits there while the relay is frozen. */
static void park(struct proxy *p, bool *parked)
{
	if (!__atomic_load_n(&p->freeze, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&p->lock);
	park_locked(p, parked);
	pthread_mutex_unlock(&p->lock);
}

int relay_freeze(struct proxy *p, int64_t timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	pthread_mutex_lock(&p->lock);
	__atomic_store_n(&p->freeze, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&p->changed);
	for (;;) {
		bool d2k = p->d2k_running && !p->d2k_parked;
		struct timespec ts;

		if (p->k2d_parked && !d2k) {
			pthread_mutex_unlock(&p->lock);
			/* Only the d2k thread queues notifications, and it is stopped. */
			return notifications_wait_idle(p, deadline);
		}
		if (now_ms() >= deadline) {
			pthread_mutex_unlock(&p->lock);
			return -EBUSY;
		}
		/* A signal that came just before a thread went into read(2) is missed: send
		 * another until it stops. */
		if (!p->k2d_parked)
			pthread_kill(p->k2d, FREEZE_SIGNAL);
		if (d2k)
			pthread_kill(p->d2k, FREEZE_SIGNAL);
		ts = deadline_ts(2);
		pthread_cond_timedwait(&p->changed, &p->lock, &ts);
	}
}

void relay_thaw(struct proxy *p)
{
	pthread_mutex_lock(&p->lock);
	__atomic_store_n(&p->freeze, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

/* Whether the background walk of lazy lookup has nodes to look up (seq_cst: relay_kick()). */
static bool walk_wanted(struct proxy *p)
{
	return __atomic_load_n(&p->lazy_pending, __ATOMIC_SEQ_CST) && !p->lazy_no_walk &&
	       !__atomic_load_n(&p->lazy_walk_off, __ATOMIC_RELAXED);
}

static void walk_efd_drain(struct proxy *p)
{
	uint64_t v;

	if (read(p->walk_efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: no wake-up was pending. */
	}
}

/* The k2d thread is about to read(2) /dev/fuse: relay_kick() may interrupt it. Returns 0. */
static int k2d_will_read(struct proxy *p)
{
	__atomic_store_n(&p->k2d_reading, true, __ATOMIC_SEQ_CST);
	return 0;
}

/*
 * Before each read of /dev/fuse on the k2d thread. Without nodes left for the background
 * walk, returns 0 at once: read. Else walks a batch while the kernel has nothing to read and
 * returns 1 (look again), or, when the walk cannot go on now, waits in poll(2) for a request
 * (0: read) or for lazy_wake() (1). Returns -EINTR when a signal came (a freeze, a kick).
 */
static int k2d_walk(struct proxy *p)
{
	struct pollfd pfd[2] = {
		{ .fd = p->devfd, .events = POLLIN },
		{ .fd = p->walk_efd, .events = POLLIN },
	};

	/* Dekker with relay_kick(): it sees this store, or this thread sees lazy_pending. */
	k2d_will_read(p);
	if (!walk_wanted(p))
		return 0;
	__atomic_store_n(&p->k2d_reading, false, __ATOMIC_RELAXED);
	if (poll(pfd, 2, 0) < 0)
		return errno == EINTR ? -EINTR : 0;
	/* A request to read, which may be gone by the read (its caller killed): kickable. */
	if (pfd[0].revents)
		return k2d_will_read(p);
	/* Drained before the walk looks: a wake-up that comes after is seen by the poll below. */
	if (pfd[1].revents)
		walk_efd_drain(p);
	if (recover_background(p) == 0)
		return 1;
	/* Nothing to do now (a READDIRPLUS in flight, the relay not serving, the walk done). */
	if (poll(pfd, 2, -1) < 0)
		return errno == EINTR ? -EINTR : 0;
	if (pfd[0].revents)
		return k2d_will_read(p);
	walk_efd_drain(p);
	return 1;
}

void relay_kick(struct proxy *p)
{
	pthread_mutex_lock(&p->lock);
	lazy_wake(p);
	pthread_mutex_unlock(&p->lock);
	/*
	 * The k2d thread may be in read(2), having looked before the recovery left nodes: the
	 * freeze signal gets it out (EINTR). One that came just before the read is missed: send
	 * another until the thread is out, for 1 s at most (a thread busy elsewhere comes back
	 * to the walk by itself).
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (int i = 0; i < 1000 && walk_wanted(p) &&
			__atomic_load_n(&p->k2d_reading, __ATOMIC_SEQ_CST); i++) {
		struct timespec ts = { .tv_nsec = 1000000 };

		pthread_kill(p->k2d, FREEZE_SIGNAL);
		nanosleep(&ts, NULL);
	}
}

static void *k2d_main(void *arg)
{
	struct proxy *p = arg;
	struct msg *m = msg_get(p->buf_size);

	freeze_signal_unblock();
	/* A request the replaced keeper's thread held comes first. */
	if (m && p->carry) {
		struct msg *c = p->carry;

		p->carry = NULL;
		/* What comes back is @c or a spare buffer: m is the read buffer already. */
		msg_put(k2d_request(p, c));
	}
	/* Then what take_resent() read past the requests sent again, in order. */
	while (m && p->early) {
		struct msg *e = p->early;

		p->early = e->next;
		e->next = NULL;
		msg_put(k2d_request(p, e));
	}
	while (m) {
		/* Lazy lookup: nodes left for the background, a batch while the kernel is quiet,
		 * so that a request waits behind one batch at most. */
		int w = k2d_walk(p);
		ssize_t n = -1;

		if (w > 0)
			continue;
		if (w == 0) {
			n = read(p->devfd, m->data, m->cap);
			__atomic_store_n(&p->k2d_reading, false, __ATOMIC_RELAXED);
		}
		if (w < 0 || (n < 0 && errno == EINTR)) {
			park(p, &p->k2d_parked);
			continue;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == ENOENT)
				continue;
			if (errno != ENODEV)
				log_error("Reading /dev/fuse failed: %s", strerror(errno));
			break;
		}
		if (!kernel_read(p, m, n))
			continue;
		m->primed = false;
		m->resolves = 0;
		if (p->sweep_from && msg_in(m)->opcode != FUSE_NOTIFY_REPLY) {
			/* The kernel interrupts only requests it sent: before the sweep, one the
			 * killed keeper read, which the sweep ends. */
			if (msg_in(m)->opcode == FUSE_INTERRUPT)
				continue;
			bool probe = msg_in(m)->opcode == FUSE_STATFS && p->probe_pid &&
				     msg_in(m)->pid == (uint32_t)p->probe_pid;

			/* The probe's, which only asked for a request, is done with first: the
			 * sweep may be long, and the probe waits unkillably until answered. */
			if (probe)
				reply_kernel_err(p, msg_in(m)->unique, -EIO);
			sweep_lost(p, msg_in(m)->unique);
			if (probe)
				continue;
		}
		m = k2d_request(p, m);
	}
	msg_put(m);
	/* ENODEV: the connection ended, because the filesystem was unmounted or aborted. */
	post_event(p, MODE_EV_UNMOUNTED);
	return NULL;
}

/* ---- Daemon to kernel ------------------------------------------------------------------- */

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
		return p->hide.graves ? hide_call_reply(p, m) : 0;
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
	bool dirplus = false;
	struct msg *req;
	int r;

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
			     : (target & ~FK_UNIQUE_RESEND) >
				       __atomic_load_n(&p->kunique_max, __ATOMIC_RELAXED);
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
	if (req && req->epoch == epoch) {
		idmap_del(&p->inflight, oh->unique);
		inflight_taken(p, 1);
		/* Until its entries are in the tables, lazy lookups wait (dirplus_busy()). */
		dirplus = p->lazy_pending && msg_in(req)->opcode == FUSE_READDIRPLUS;
		p->dirplus_applying += dirplus;
	} else {
		req = NULL; /* not given to this daemon (a replay in the making, or none) */
	}
	pthread_mutex_unlock(&p->lock);
	if (!req) {
		log_error("The daemon answered unique %" PRIu64 ", which it was not asked",
			  oh->unique);
		return -EPROTO;
	}
	log_trace("daemon: reply to %s unique %" PRIu64 " node %" PRIu64 " error %d",
		  op_name(msg_in(req)->opcode), oh->unique, req->knode, oh->error);
	r = finish_reply(p, req, m);
	inflight_answered(p, 1);
	if (dirplus) {
		pthread_mutex_lock(&p->lock);
		p->dirplus_applying--;
		lazy_wake(p);
		pthread_cond_broadcast(&p->changed);
		pthread_mutex_unlock(&p->lock);
	}
	return r;
}

struct hang_ctx {
	struct proxy *p;
	uint32_t epoch;
	size_t count;		/* requests that count */
	int64_t oldest_ms;	/* when the oldest request that counts was given; 0: none */
	uint32_t opcode;	/* ... its opcode, unique and node for the log */
	uint64_t unique, node;
};

static void hang_note(struct hang_ctx *c, int64_t given_ms, uint32_t opcode, uint64_t unique,
		      uint64_t node)
{
	c->count++;
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
		snprintf(what, size, "request %s (unique %#" PRIx64 ", node %" PRIu64 ") for %.1f s "
			 "and answered nothing meanwhile", op_name(c.opcode), c.unique, c.node,
			 (now - c.oldest_ms) / 1000.0);
	else
		snprintf(what, size, "request %s (unique %#" PRIx64 ", the keeper's own) for %.1f s "
			 "and answered nothing meanwhile", op_name(c.opcode), c.unique,
			 (now - c.oldest_ms) / 1000.0);
	return since + timeout_ms;
}

size_t relay_held(struct proxy *p, char *what, size_t size)
{
	struct hang_ctx c = { .p = p };

	pthread_mutex_lock(&p->lock);
	c.epoch = p->nodes.epoch;
	if (p->sock_epoch) {
		idmap_each(&p->inflight, hang_request, &c);
		idmap_each(&p->calls, hang_call, &c);
	}
	pthread_mutex_unlock(&p->lock);
	if (c.count)
		snprintf(what, size, "%zu request%s, the oldest %s (unique %#" PRIx64 ") for %.1f s",
			 c.count, c.count == 1 ? "" : "s", op_name(c.opcode), c.unique,
			 (now_coarse_ms() - c.oldest_ms) / 1000.0);
	return c.count;
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
	inflight_taken(p, c.n);
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
	inflight_answered(p, c.n);
	free(c.v);
}

static void *d2k_main(void *arg)
{
	struct proxy *p = arg;
	struct msg *m = msg_get(p->buf_size);
	int sock = p->sock;
	uint32_t epoch = p->sock_epoch;

	freeze_signal_unblock();
	while (m) {
		struct iovec iov = { m->data, m->cap };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(sock, &mh, 0);

		if (n < 0 && errno == EINTR) {
			park(p, &p->d2k_parked);
			continue;
		}
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
	struct sigaction sa = { .sa_handler = freeze_handler };

	/* No SA_RESTART: the point is to interrupt a read. Only ever sent to one thread. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(FREEZE_SIGNAL, &sa, NULL) < 0)
		return -errno;
	return -pthread_create(&p->k2d, NULL, k2d_main, p);
}
