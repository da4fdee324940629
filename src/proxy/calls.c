/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The keeper's own requests to the daemon: INIT for a later daemon, recovery's lookups, opens and
 * replays, a reopened handle's priming read, a hidden name's rename, a lock taken again. Each is
 * numbered with CALL_BIT and registered in the calls table; the daemon's relay thread completes
 * it with the answer (relay.c, d2k_call_reply()) while its caller waits here.
 */
#include "calls.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "translate.h"
#include "util.h"

struct msg *make_request(uint32_t opcode, uint64_t nodeid, const void *arg, size_t arglen,
			 const char *name)
{
	size_t namelen = name ? strlen(name) + 1 : 0;
	size_t len = sizeof(struct fuse_in_header) + arglen + namelen;
	struct msg *m = msg_get(len);
	struct fuse_in_header *h;

	if (!m)
		return NULL;
	h = msg_in(m);
	memset(h, 0, sizeof(*h));
	/* The keeper asks as itself (root); daemons that look at the caller find a live pid. */
	h->pid = getpid();
	h->len = m->len = len;
	h->opcode = opcode;
	h->nodeid = nodeid;
	if (arglen)
		memcpy(m->data + sizeof(*h), arg, arglen);
	if (name)
		memcpy(m->data + sizeof(*h) + arglen, name, namelen);
	return m;
}

int call_start(struct proxy *p, struct call *c, struct msg *req)
{
	uint32_t epoch;
	int r;

	c->reply = NULL;
	c->done = false;
	c->failed = false;
	c->opcode = msg_in(req)->opcode;
	c->limit = op_get(c->opcode) ? op_out_limit(op_get(c->opcode), req->data +
			sizeof(struct fuse_in_header), req->len - sizeof(struct fuse_in_header)) : 0;
	pthread_mutex_lock(&p->lock);
	c->unique = CALL_BIT | (p->next_call++ << 1);
	r = idmap_put(&p->calls, c->unique, c);
	c->epoch = epoch = p->nodes.epoch;
	c->given_ms = now_coarse_ms();
	pthread_mutex_unlock(&p->lock);
	if (r < 0) {
		c->done = true;
		return r;
	}
	msg_in(req)->unique = c->unique;
	trace_request("keeper", req);
	r = send_to_daemon(p, epoch, req->data, req->len, 0);
	if (r < 0) {
		pthread_mutex_lock(&p->lock);
		idmap_del(&p->calls, c->unique);
		c->done = c->failed = true;
		pthread_mutex_unlock(&p->lock);
		return r;
	}
	return 0;
}

/*
 * calls_wait() on the k2d thread (lazy resolution): the supervisor's loop (keeper_wait()) is
 * the supervisor's alone, so this waits for the replies on p->changed, as the k2d thread's
 * other calls do (hide_call()). Returns as calls_wait().
 */
static int calls_wait_relay(struct proxy *p, struct call *calls, size_t n, int64_t deadline)
{
	int r = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		size_t done = 0, failed = 0;
		struct timespec ts;

		for (size_t i = 0; i < n; i++) {
			done += calls[i].done;
			failed += calls[i].failed;
		}
		if (done == n) {
			r = failed ? -EPIPE : 0;
			break;
		}
		if (!daemon_answers(p)) {
			r = -EPIPE;
			break;
		}
		if (now_ms() >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		ts = deadline_ts(MIN(deadline - now_ms(), 100));
		pthread_cond_timedwait(&p->changed, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

int calls_wait(struct proxy *p, struct call *calls, size_t n, int64_t deadline)
{
	if (pthread_equal(pthread_self(), p->k2d))
		return calls_wait_relay(p, calls, n, deadline);
	for (;;) {
		size_t done = 0, failed = 0;
		uint64_t v;
		int r;

		pthread_mutex_lock(&p->lock);
		for (size_t i = 0; i < n; i++) {
			done += calls[i].done;
			failed += calls[i].failed;
		}
		pthread_mutex_unlock(&p->lock);
		/* A call that could not be sent means the daemon is going: not a lost node. */
		if (done == n)
			return failed ? -EPIPE : 0;
		r = keeper_wait(p->k, p->call_efd, deadline);
		if (r < 0)
			return r;
		if (read(p->call_efd, &v, sizeof(v)) < 0) {
			/* Nothing to clear: another waiter took it. */
		}
	}
}

void calls_drop(struct proxy *p, struct call *calls, size_t n)
{
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < n; i++) {
		if (!calls[i].done && idmap_del(&p->calls, calls[i].unique))
			idmap_put(&p->abandoned, calls[i].unique, (void *)1);
		calls[i].done = true;
		msg_put(calls[i].reply);
		calls[i].reply = NULL;
	}
	pthread_mutex_unlock(&p->lock);
}

/* Sends one request and waits for its answer. Returns the reply (caller frees) or NULL. */
struct msg *call_one(struct proxy *p, struct msg *req, int64_t deadline, int *err)
{
	struct call c;
	struct msg *reply;

	*err = call_start(p, &c, req);
	if (*err == 0)
		*err = calls_wait(p, &c, 1, deadline);
	if (*err == 0 && !c.reply)
		*err = -EPIPE;
	reply = *err == 0 ? TAKE_PTR(c.reply) : NULL;
	calls_drop(p, &c, 1);
	return reply;
}

struct msg *call_did(struct proxy *p, uint32_t opcode, uint64_t did, const void *arg,
		     size_t arglen, const char *name, int64_t deadline, int *err)
{
	struct msg *req = make_request(opcode, did, arg, arglen, name), *reply;

	if (!req) {
		*err = -ENOMEM;
		return NULL;
	}
	reply = call_one(p, req, deadline, err);
	msg_put(req);
	return reply;
}

struct msg *call_lookup(struct proxy *p, uint64_t did, const char *name, int64_t deadline,
			int *err)
{
	struct msg *reply = call_did(p, FUSE_LOOKUP, did, NULL, 0, name, deadline, err);

	if (reply && reply_error(reply)) {
		*err = reply_error(reply);
		msg_put(reply);
		return NULL;
	}
	if (reply && (reply->len != sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out) ||
		      !((struct fuse_entry_out *)(reply->data + sizeof(struct fuse_out_header)))->nodeid)) {
		*err = -ENOENT; /* a negative entry, or no entry at all */
		msg_put(reply);
		return NULL;
	}
	return reply;
}

int reply_error(const struct msg *r)
{
	return ((const struct fuse_out_header *)r->data)->error;
}

void *reply_body(struct msg *r, size_t *len)
{
	*len = r->len - sizeof(struct fuse_out_header);
	return r->data + sizeof(struct fuse_out_header);
}

/* Errors that mean the daemon is gone or the keeper must stop, not an answer about a name. */
bool fatal(int err)
{
	return err == -ECHILD || err == -EINTR || err == -ETIMEDOUT || err == -EPIPE;
}
