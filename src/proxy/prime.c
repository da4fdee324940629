/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A handle reopened after a restart is fresh: some daemons build a handle's content on its first
 * read at offset 0, so before its first read at a later offset it gets that read (docs/design.md,
 * "A restart", Handles).
 */
#include "prime.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>

#include "calls.h"
#include "channel.h"
#include "log.h"
#include "translate.h"
#include "util.h"

/*
 * A reopened handle starts where a fresh open starts. Daemons that build a handle's content on
 * its first read at offset 0 (libfuse's high-level readdir, LXCFS's proc files) refuse or misread
 * a later offset on a fresh handle; sshfs aborts. So before the first read at an offset > 0 on a
 * reopened handle, the handle gets the read at 0 that a fresh open would have had. Only when it
 * is needed: sshfs cannot list a directory handle twice, so priming one that is next read at 0
 * would leave that read empty. Files are primed only when their content is the daemon's own
 * making (direct I/O) and reading cannot block (not a stream).
 */
static struct msg *prime_request(struct proxy *p, const struct handle *h, uint64_t did)
{
	struct fuse_read_in in = { .fh = h->dfh, .size = 4096, .flags = h->flags };
	uint32_t opcode = FUSE_READ;

	/* A file's priming read asks for as much as a reply can carry, so that a short answer
	 * shows where regenerated content ends (see finish_reply()). */
	if (!h->dir)
		in.size = MIN(p->buf_size, p->max_msg) - 8192;
	if (h->dir)
		opcode = p->init_flags & FUSE_DO_READDIRPLUS ? FUSE_READDIRPLUS : FUSE_READDIR;
	else if ((h->flags & O_ACCMODE) == O_WRONLY || !(h->fopen & FOPEN_DIRECT_IO) ||
		 (h->fopen & (FOPEN_NONSEEKABLE | FOPEN_STREAM)))
		return NULL;
	return make_request(opcode, did, &in, sizeof(in), NULL);
}

static int forget_dirplus(struct fuse_direntplus *d, void *arg)
{
	struct proxy *p = arg;

	forget_in_daemon(p, p->nodes.epoch, d->entry_out.nodeid, 1);
	return 0;
}

/*
 * Lookups a priming READDIRPLUS gave are given back; a priming READ that came back short read
 * the whole content, whose length is kept (see finish_reply()). Under the lock.
 */
static void prime_done(struct proxy *p, struct msg *req, struct call *c, uint64_t kfh)
{
	const struct fuse_read_in *in = (const void *)(req->data + sizeof(struct fuse_in_header));
	struct handle *h;
	size_t len;
	char *body;

	if (!c->reply || reply_error(c->reply))
		return;
	body = reply_body(c->reply, &len);
	if (msg_in(req)->opcode == FUSE_READDIRPLUS)
		each_direntplus(body, len, forget_dirplus, p);
	h = handle_get(&p->handles, kfh);
	if (msg_in(req)->opcode == FUSE_READ && h && len < in->size)
		h->primed_end = len;
}

int prime_handle(struct proxy *p, uint64_t kfh, int64_t recovery_deadline)
{
	int64_t deadline = now_ms() + p->cfg->start_timeout_ms;
	struct timespec ts = deadline_ts(p->cfg->start_timeout_ms);
	struct msg *req = NULL;
	struct handle *h;
	struct call c;
	uint64_t did;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	h = handle_get(&p->handles, kfh);
	if (h && h->fresh && !h->lost && node_to_daemon(&p->nodes, h->node, &did) == 0)
		req = prime_request(p, h, did);
	if (h)
		handle_set_fresh(&p->handles, h, false);
	pthread_mutex_unlock(&p->lock);
	if (!req)
		return 0;
	r = call_start(p, &c, req);
	if (r == 0 && recovery_deadline) {
		/* During recovery: the daemon's death or a timeout fails this start. */
		r = calls_wait(p, &c, 1, recovery_deadline);
		pthread_mutex_lock(&p->lock);
		prime_done(p, req, &c, kfh);
		pthread_mutex_unlock(&p->lock);
	} else if (r == 0) {
		/* From the relay: detach() wakes this when the daemon goes; the request then
		 * waits for the next one, like any other. */
		pthread_mutex_lock(&p->lock);
		while (!c.done && daemon_answers(p) && now_ms() < deadline)
			if (pthread_cond_timedwait(&p->changed, &p->lock, &ts) == ETIMEDOUT)
				break;
		prime_done(p, req, &c, kfh);
		pthread_mutex_unlock(&p->lock);
	}
	log_debug("Primed reopened handle %" PRIu64 " with a read at offset 0", kfh);
	msg_put(req);
	calls_drop(p, &c, 1);
	return fatal(r) ? r : 0;
}
