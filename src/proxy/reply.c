/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A reply on its way from the daemon to the kernel: checked against its opcode's row, its effect
 * applied to the tables (a LOOKUP learns a node, an OPEN a handle, a RENAME moves a name, a
 * RELEASE forgets a handle; given back if the kernel does not take it), inode numbers shown as
 * the kernel first saw them, acknowledged writes kept in their handle's window. Also what the
 * kernel's end of a handle changes when no daemon answers: releases, and syncs that must report
 * lost writes.
 */
#include "reply.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "channel.h"
#include "clock.h"
#include "hide.h"
#include "init.h"
#include "log.h"
#include "notify.h"
#include "proxy_locks.h"
#include "resume.h"
#include "translate.h"
#include "util.h"

/* ---- Handles the kernel lets go of -------------------------------------------------------- */

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
	if (n)
		node_changed(&p->nodes, n);
	if (n && n->opened && !--n->opened && p->hide.live)
		hide_released(p, n);
}

/*
 * The kernel closed @kfh (RELEASE). Under the lock. Writes lost through it that no FLUSH or
 * FSYNC reported (a handle opened with FOPEN_NOFLUSH, closed without either) can only be logged.
 */
void release_handle(struct proxy *p, uint64_t kfh)
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
	if (n) {
		n->opened++;
		node_changed(&p->nodes, n);
	}
	h->uid = msg_in(req)->uid;
	h->gid = msg_in(req)->gid;
	h->fopen = o->open_flags;
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

/* An OPEN that truncated its file: it changed the data as a SETATTR of the size does. */
static bool truncating_open(struct msg *req)
{
	return msg_in(req)->opcode == FUSE_OPEN &&
	       (((const struct fuse_open_in *)body(req))->flags & O_TRUNC);
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
	bool trunc = truncating_open(req);
	struct node *n = NULL;
	uint64_t kid;

	if (op->ctime_of || trunc) {
		n = node_get(&p->nodes, op->ctime_of == CTO_NODE2 ? req->knode2 : req->knode);
		if (n) {
			n->changed_ns = realtime_ns();
			node_changed(&p->nodes, n);
		}
	}
	if (!trunc && (!op->dchange || (op->dchange == DC_SETATTR && !(sa->valid & FATTR_SIZE))))
		return;
	/* Mostly the node just looked up (a WRITE's): one lookup per reply on the hot path. */
	kid = op->dchange == DC_NODE2 ? req->knode2 : req->knode;
	if (!n || n->kid != kid)
		n = node_get(&p->nodes, kid);
	if (n) {
		req->dver = ++n->dver;
		node_changed(&p->nodes, n);
	}
}

/*
 * A WRITE or a sync succeeded, before the kernel hears of it: the change is noted
 * (note_data_change()); for a WRITE, the resume journal says that the handle's acknowledged
 * writes may not be durable, and the write joins its handle's window; a sync empties the window
 * up to what it covered. One lock: every acknowledged WRITE comes here. Even a reply the kernel
 * no longer waits for counts: the daemon did it. Returns what the caller still has to free.
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
		/*
		 * Before the lock: a write the window may keep and that fills little of its
		 * buffer is copied out of it. With --write-through none is kept: no copy.
		 */
		if (!p->cfg->write_through)
			req = msg_shrink(req);
	}
	pthread_mutex_lock(&p->lock);
	if (op->dchange || op->ctime_of)
		note_data_change(p, req, op);
	h = handle_get(&p->handles, req->kfh);
	if (h && op->wwin == WW_WRITE && !p->cfg->write_through && p->journal) {
		bool was = h->unsynced;

		handle_note_unsynced(&p->handles, h);
		if (!was)
			resume_flush(p);
	}
	if (h && op->wwin == WW_WRITE) {
		handle_acked(h);
		/* --write-through: durable once acknowledged, nothing to keep. */
		if (!p->cfg->write_through)
			req = handle_keep_write(&p->handles, h, req);
		/* Not kept: past --write-window(-total), a crash now loses it (EIO, not silence). */
		if (!p->cfg->write_through && req && handle_overflow_seq(h) &&
		    handle_overflow_seq(h) == handle_ack_seq(h) &&
		    overflow_log_due(&p->window_overflows))
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
			handle_clear_overflow(h);
			log_warn("Reporting lost writes on handle %" PRIu64 " of node %" PRIu64
				 " with EIO at its %s", h->kfh, h->node, op->name);
		}
		return -EIO;
	}
	req->wseq = handle_ack_seq(h);
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

/* A request other than a WRITE or sync that changes a node succeeded, before the kernel hears
 * of it: the change is noted (note_data_change()). */
static void note_change(struct proxy *p, struct msg *req, const struct op_info *op)
{
	if (op->effect == EFF_OPEN && !truncating_open(req))
		return;
	pthread_mutex_lock(&p->lock);
	note_data_change(p, req, op);
	pthread_mutex_unlock(&p->lock);
}

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
		/* Under systemd with a fd store, or for the tests' check of it. */
		if (r == 0 && op->effect == EFF_INIT && !p->journal &&
		    (p->resume_check ||
		     (p->cfg->fdstore && !p->cfg->takeover)))
			resume_start(p);
		/* The journal first: the kernel must not hold what it lacks. */
		resume_flush(p);
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
	/* Even a reply the kernel no longer waits for counts: the daemon did it. */
	if (!oh->error && op->wwin)
		req = window_update(p, req, op, reply); /* NULL when kept; no effect to undo */
	else if (!oh->error && (op->dchange || op->ctime_of || op->effect == EFF_OPEN))
		note_change(p, req, op);
	wait_notifications(p);
	if (write_kernel(p, reply->data, reply->len) == -ENOENT && !oh->error && op->effect)
		undo_effect(p, req, op, reply);
	msg_put(req);
	return 0;
}
