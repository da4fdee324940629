/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Proxy mode and the file locks a daemon keeps itself (it agreed FUSE_POSIX_LOCKS or
 * FUSE_FLOCK_LOCKS at INIT): the relay records every lock the daemon grants in the lock table
 * (locks.h) and forgets what the kernel releases; a restart takes every recorded lock again on
 * the new daemon before the relay resumes and before any request left in flight (a SETLKW still
 * waiting) is sent again. With a daemon that keeps no locks the kernel keeps them and sends no
 * lock requests: the table stays empty and costs nothing.
 *
 * What the kernel sends (fs/fuse/file.c, Linux 6.1, protocol 7.38):
 *  - fuse_setlk() and fuse_lk_fill(): SETLK, or SETLKW for a lock that may wait (FL_SLEEP),
 *    with owner = fuse_lock_owner_id(fl_owner), the range fl_start..fl_end (OFFSET_MAX: to the
 *    end), the type, the locker's tgid as pid (0 for an unlock), and FUSE_LK_FLOCK for flock(2)
 *    (fuse_file_flock(), whose fl_owner is the struct file, range 0..OFFSET_MAX). OFD locks come
 *    as POSIX locks whose owner is the file.
 *  - It keeps no lock state of its own for them (a lock the daemon keeps is never added to the
 *    inode's i_flctx), so close(2) unlocks nothing by SETLK: fuse_flush() sends FLUSH with
 *    lock_owner = fuse_lock_owner_id(id), the closing process's files_struct, which "is supposed
 *    to be used for remote posix lock release" (M. Szeredi on linux-fsdevel, 2022); libfuse's
 *    high-level API unlocks that owner's whole range on the node there (fuse_flush_common()).
 *    A handle opened with FOPEN_NOFLUSH gets no FLUSH.
 *  - fuse_release_common(): RELEASE, with FUSE_RELEASE_FLOCK_UNLOCK and lock_owner = the file
 *    when flock(2) was used on it (ff->flock): the file's flock lock goes. Its OFD locks are not
 *    named, and die with the file all the same.
 * So a FLUSH drops its lock owner's POSIX locks on its node, and a RELEASE everything that was
 * locked through its handle (reply.c, release_handle()).
 */
#include "proxy_locks.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calls.h"
#include "channel.h"
#include "log.h"
#include "resume.h"
#include "util.h"

/* The kernel's OFFSET_MAX: a lock "to the end of the file". */
#define LOCK_TO_EOF 0x7fffffffffffffffULL

static inline void *req_body(struct msg *m)
{
	return m->data + sizeof(struct fuse_in_header);
}

/* "bytes 0-99", "bytes 100 to the end", "the whole file" (flock) for logs. */
static const char *lock_range(char *buf, size_t size, bool flock, uint64_t start, uint64_t end)
{
	if (flock)
		snprintf(buf, size, "the whole file");
	else if (end >= LOCK_TO_EOF)
		snprintf(buf, size, "bytes %" PRIu64 " to the end", start);
	else
		snprintf(buf, size, "bytes %" PRIu64 "-%" PRIu64, start, end);
	return buf;
}

/* A lock that does not fit the table is refused. Logged on the 1st, 2nd, 4th, ... time. */
static void note_refused(struct proxy *p, uint64_t node, const char *what)
{
	uint64_t n = ++p->locks.refused;

	if (n & (n - 1))
		return;
	log_warn("The lock table is full (--max-locks=%" PRIu64 "): %s on node %" PRIu64 " fails "
		 "with ENOLCK (%" PRIu64 " refused so far)", p->locks.max, what, node, n);
}

int locks_request(struct proxy *p, struct msg *req, const struct op_info *op, int err)
{
	const struct fuse_lk_in *in = req_body(req);

	if (op->lock == LK_FLUSH) {
		const struct fuse_flush_in *f = req_body(req);

		lock_flush(&p->locks, req->knode, f->lock_owner);
		return err;
	}
	if (p->locks.count && lock_report_lost(&p->locks, req->knode, in->owner) < 0) {
		log_warn("Answering %s of lock owner %#" PRIx64 " on node %" PRIu64 " with EIO: a "
			 "lock it held there was lost in a restart of the daemon", op->name,
			 in->owner, req->knode);
		return -EIO;
	}
	if (err < 0 || op->lock != LK_SET || lock_fits(&p->locks, req->knode, in))
		return err;
	note_refused(p, req->knode, in->lk.type == F_UNLCK ? "an unlock that splits a lock"
							   : "a new lock");
	return -ENOLCK;
}

int locks_granted(struct proxy *p, struct msg *req)
{
	const struct fuse_lk_in *in = req_body(req);
	char range[64];
	int r = 0;

	pthread_mutex_lock(&p->lock);
	if (!lock_fits(&p->locks, req->knode, in) && in->lk.type != F_UNLCK &&
	    !lock_overlaps_own(&p->locks, req->knode, in)) {
		/*
		 * Requests sent while the table had room filled it meanwhile. The daemon granted
		 * this lock, but one the keeper cannot take again after a restart is not a lock:
		 * it is given back (the owner held nothing there before, so unlocking the range
		 * restores what it held) and refused, as POSIX allows (ENOLCK).
		 */
		struct fuse_lk_in un = *in;

		un.lk.type = F_UNLCK;
		un.lk.pid = 0;
		send_orphan(p, req->epoch, FUSE_SETLK, msg_in(req)->nodeid, &un, sizeof(un));
		note_refused(p, req->knode, "a lock granted meanwhile");
		r = -ENOLCK;
	} else {
		/* An unlock, or a lock that changed locks its owner held (which an unlock would
		 * not restore), is recorded even past the bound: by no more than the lock
		 * requests that were in flight at once. */
		r = lock_apply(&p->locks, req->knode, req->kfh, in);
	}
	/* The journal first: the kernel is told of the lock next. */
	resume_flush(p);
	pthread_mutex_unlock(&p->lock);
	if (r == -ENOMEM || r == -EINVAL)
		log_error("Cannot record the %s lock of owner %#" PRIx64 " on node %" PRIu64
			  " (%s): %s; it will not be taken again if the daemon restarts",
			  in->lk_flags & FUSE_LK_FLOCK ? "flock" : "POSIX", in->owner, req->knode,
			  lock_range(range, sizeof(range), in->lk_flags & FUSE_LK_FLOCK,
				     in->lk.start, in->lk.end),
			  strerror(-r));
	return r == -ENOLCK ? r : 0;
}

/*
 * @l could not be taken again: marked lost, for its owner to be told. @why says why, or is
 * NULL for the new daemon's answer @err. Returns 1.
 */
static int lose(struct proxy *p, struct lock_rec *l, const char *why, int err)
{
	char range[64];

	if (!why)
		why = err == -EAGAIN ? "another process holds a conflicting lock" : strerror(-err);

	pthread_mutex_lock(&p->lock);
	lock_set_lost(&p->locks, l);
	pthread_mutex_unlock(&p->lock);
	log_warn("The %s %s lock of owner %#" PRIx64 " on node %" PRIu64 " (%s, handle %" PRIu64
		 ") could not be taken again: %s; the owner's next lock operation on the file "
		 "fails with EIO", l->flock ? "flock" : "POSIX",
		 l->type == F_RDLCK ? "read" : "write", l->owner, l->node,
		 lock_range(range, sizeof(range), l->flock, l->start, l->end), l->kfh, why);
	return 1;
}

/*
 * Takes @l again on the new daemon: a non-blocking SETLK through its handle's new daemon
 * handle, as its owner, with the opener's credentials. Returns 0 (taken), 1 (lost) or a fatal
 * error (the daemon is going or too slow: the start fails, @l stays for the next daemon).
 */
static int take_again(struct proxy *p, struct lock_rec *l)
{
	struct fuse_lk_in in = {
		.owner = l->owner,
		.lk = { .start = l->start, .end = l->end, .type = l->type, .pid = l->pid },
		.lk_flags = l->flock ? FUSE_LK_FLOCK : 0,
	};
	struct handle *h;
	struct msg *req;
	struct call c;
	uint32_t uid = 0, gid = 0;
	uint64_t did = 0;
	int err;

	pthread_mutex_lock(&p->lock);
	/* A handle the table does not know (a daemon without OPEN) passes unchanged. */
	h = handle_get(&p->handles, l->kfh);
	err = handle_to_daemon(&p->handles, l->kfh, &in.fh);
	if (err == 0)
		err = node_to_daemon(&p->nodes, l->node, &did);
	if (h) {
		uid = h->uid;
		gid = h->gid;
	}
	pthread_mutex_unlock(&p->lock);
	if (err < 0)
		return lose(p, l, "its file could not be opened again", err);
	req = make_request(FUSE_SETLK, did, &in, sizeof(in), NULL);
	if (!req)
		return lose(p, l, NULL, -ENOMEM);
	msg_in(req)->uid = uid;
	msg_in(req)->gid = gid;
	err = call_start(p, &c, req);
	if (err == 0)
		err = calls_wait(p, &c, 1, now_ms() + p->cfg->start_timeout_ms);
	if (err == 0 && !c.reply)
		err = -EPIPE;
	if (err == 0)
		err = msg_out(c.reply)->error ? lose(p, l, NULL, msg_out(c.reply)->error) : 0;
	calls_drop(p, &c, 1);
	msg_put(req);
	return err;
}

int locks_take_again(struct proxy *p)
{
	struct lock_rec **v = NULL;
	size_t lost = 0, i;
	ssize_t n = 0;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	if (p->locks.count)
		n = lock_collect(&p->locks, &v);
	pthread_mutex_unlock(&p->lock);
	if (n <= 0)
		return n;
	/* One at a time, in the order they were granted. */
	for (i = 0; i < (size_t)n && r >= 0; i++) {
		r = take_again(p, v[i]);
		lost += r == 1;
	}
	free(v);
	if (r < 0)
		return r;
	log_info("Took %zu of %zd file locks again on the new daemon (%zu lost)", n - lost, n,
		 lost);
	return 0;
}
