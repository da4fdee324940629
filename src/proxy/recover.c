/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Bringing a new daemon up to the kernel's state: give it the kernel's INIT and check its answer,
 * look every node the kernel holds up again by name, open every handle again, then settle the
 * requests the dead daemon left unanswered (docs/design.md has the rules). The relay thread for
 * the kernel is held while this runs, so the tables change only here.
 */
#include "recover.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "calls.h"
#include "channel.h"
#include "clock.h"
#include "hide.h"
#include "init.h"
#include "log.h"
#include "mode.h"
#include "notify.h"
#include "prime.h"
#include "proxy_locks.h"
#include "reply.h"
#include "translate.h"
#include "util.h"

#define BATCH 256 /* keeper requests in flight at once during recovery */

/* A request held by this many dying daemons in a row is taken to be what kills them. */
#define MAX_DEATHS 3

/* Open flags that must not be repeated when a file is opened again. */
#define REOPEN_DROP (O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)

static struct msg *make_reply(uint64_t unique, const void *body, size_t len)
{
	struct msg *m = msg_get(sizeof(struct fuse_out_header) + len);
	struct fuse_out_header *oh;

	if (!m)
		return NULL;
	oh = msg_out(m);
	oh->len = m->len = sizeof(*oh) + len;
	oh->error = 0;
	oh->unique = unique;
	if (len)
		memcpy(m->data + sizeof(*oh), body, len);
	return m;
}

/* A reply carrying only @err (negative errno) for the kernel. */
static struct msg *make_error(int err)
{
	struct msg *m = make_reply(0, NULL, 0);

	if (m)
		msg_out(m)->error = err;
	return m;
}

/*
 * Sends the keeper's own @opcode request (@arg, then @name if not NULL) about the kernel's node
 * @kid to the current daemon and waits for the answer. Returns the reply (caller frees; its
 * error field may be set) or NULL with -errno in *err (-ESTALE: the node is not known to it).
 */
static struct msg *call_node(struct proxy *p, uint32_t opcode, uint64_t kid, const void *arg,
			     size_t arglen, const char *name, int64_t deadline, int *err)
{
	uint64_t did;

	pthread_mutex_lock(&p->lock);
	*err = node_to_daemon(&p->nodes, kid, &did);
	pthread_mutex_unlock(&p->lock);
	if (*err < 0)
		return NULL;
	return call_did(p, opcode, did, arg, arglen, name, deadline, err);
}

/* ---- INIT ----------------------------------------------------------------------------- */

/* Gives a new daemon the kernel's INIT; its answer must match what the kernel agreed to. */
static int recover_init(struct proxy *p, int64_t deadline)
{
	struct msg *req, *reply;
	int r;

	req = msg_dup(p->init_req->data, p->init_req->len);
	if (!req)
		return -ENOMEM;
	reply = call_one(p, req, deadline, &r);
	msg_put(req);
	if (!reply)
		return r;
	return check_restart_init(p, reply);
}

/* ---- Nodes and handles ----------------------------------------------------------------- */

/*
 * LOOKUP of @name in the kernel's directory @kparent. Returns a reply holding a valid entry,
 * whose one lookup in the daemon the caller now owns, or NULL with the error in *err.
 */
static struct msg *lookup_name(struct proxy *p, uint64_t kparent, const char *name,
			       int64_t deadline, int *err);

/* The attributes of the kernel's node @kid as the current daemon sees them. Returns 0 or -errno. */
static int getattr_node(struct proxy *p, uint64_t kid, struct fuse_attr *attr, int64_t deadline);

static uint32_t entry_type(const struct fuse_entry_out *e)
{
	return e->attr.mode & S_IFMT;
}

/* The entry of a reply lookup_name() returned. */
static struct fuse_entry_out *entry_of(struct msg *reply)
{
	return (struct fuse_entry_out *)(reply->data + sizeof(struct fuse_out_header));
}

/* Gives back the lookup a lookup_name() reply holds, and frees it. */
static void forget_entry(struct proxy *p, struct msg *reply)
{
	if (!reply)
		return;
	pthread_mutex_lock(&p->lock);
	forget_in_daemon(p, p->nodes.epoch, entry_of(reply)->nodeid, 1);
	pthread_mutex_unlock(&p->lock);
	msg_put(reply);
}

/*
 * A node found again by name is the same object only if the daemon gives it the inode number
 * and generation it gave before — when its numbers are stable across runs (decide_identity()).
 * Every mismatch is noted for that decision. Returns false if @n was lost instead (no memory
 * to note it: its lookup @e is given back). Under the lock.
 */
static bool note_identity(struct proxy *p, struct node *n, const struct fuse_entry_out *e)
{
	struct mismatch *v;

	if (e->attr.ino == n->d_ino && e->generation == n->d_gen) {
		p->ino_same++;
		return true;
	}
	if (p->nmismatch == p->cap_mismatch) {
		size_t cap = p->cap_mismatch ? 2 * p->cap_mismatch : 64;

		v = realloc(p->mismatch, cap * sizeof(*v));
		if (!v) {
			/* It cannot wait for the decision: an error rather than maybe another object. */
			uint64_t did, fwd;

			p->ino_diff_unnoted++;
			node_lose(&p->nodes, n, &did, &fwd);
			forget_in_daemon(p, p->nodes.epoch, e->nodeid, 1);
			p->lost_nodes++;
			return false;
		}
		p->mismatch = v;
		p->cap_mismatch = cap;
	}
	p->mismatch[p->nmismatch++] = (struct mismatch){ n, n->d_ino, n->d_gen };
	return true;
}

/*
 * In a lazy lookup (the relay serves meanwhile, the daemon's numbers are stable), whether @e
 * is @n's object. Another object is never bound to @n, even until decide_identity(): a reply
 * the relay handles meanwhile would give @n to the kernel for it. The name is then taken for
 * gone, and @n looked for by its other names. Eager recovery notes the mismatch instead.
 */
static bool same_in_lazy(struct proxy *p, const struct node *n, const struct fuse_entry_out *e)
{
	return !p->lazy_resolving || (e->attr.ino == n->d_ino && e->generation == n->d_gen);
}

struct rename_find {
	uint64_t parent;
	const char *name;
	uint64_t newparent;
	char newname[1024];
	bool found;
};

static void find_rename(uint64_t key, void *val, void *arg)
{
	struct rename_find *f = arg;
	struct msg *req = val;
	const struct op_info *op = op_get(msg_in(req)->opcode);
	const char *names[2];

	if (f->found || op->effect != EFF_RENAME || req->knode != f->parent ||
	    request_names(req, op, names) < 0 || strcmp(names[0], f->name) ||
	    strlen(names[1]) >= sizeof(f->newname))
		return;
	f->newparent = req->knode2;
	strcpy(f->newname, names[1]);
	f->found = true;
}

/*
 * @n was not found by its name @nm. If a rename of that name was in flight when the daemon
 * died, the daemon may have done it: look for @n under the new name, and if it is there, record
 * the move (the replay of the rename will find it done).
 */
static int resolve_renamed(struct proxy *p, struct node *n, const struct node_name *nm,
			   int64_t deadline)
{
	struct rename_find f = { .parent = nm->parent, .name = nm->name };
	struct fuse_entry_out *e;
	struct msg *reply;
	int err;

	pthread_mutex_lock(&p->lock);
	idmap_each(&p->inflight, find_rename, &f);
	pthread_mutex_unlock(&p->lock);
	if (!f.found)
		return -ENOENT;
	reply = lookup_name(p, f.newparent, f.newname, deadline, &err);
	if (!reply)
		return err;
	e = entry_of(reply);
	if (entry_type(e) != n->type || !same_in_lazy(p, n, e)) {
		forget_entry(p, reply);
		return -ENOENT;
	}
	pthread_mutex_lock(&p->lock);
	node_rename(&p->nodes, f.parent, f.name, f.newparent, f.newname, false);
	err = note_identity(p, n, e) ? node_resolved(&p->nodes, n, e) : 0;
	pthread_mutex_unlock(&p->lock);
	msg_put(reply);
	return err;
}

/* Under the lock. */
static void lose_node(struct proxy *p, struct node *n, int err)
{
	char where[PATH_MAX];

	n->lost = true;
	node_changed(&p->nodes, n);
	p->lost_nodes++;
	log_warn("%s cannot be found again (%s): requests for it now fail with ESTALE (node %"
		 PRIu64 ")", node_label(&p->nodes, n, p->cfg->mountpoint, where, sizeof(where)),
		 strerror(-err), n->kid);
}

/* A name whose rename target's directory was not found yet; a copy (names may go meanwhile). */
static struct node_name *name_copy(const struct node_name *nm)
{
	size_t len = strlen(nm->name) + 1;
	struct node_name *c = malloc(sizeof(*c) + len);

	if (c) {
		*c = *nm;
		memcpy(c->name, nm->name, len);
	}
	return c;
}

/*
 * Looks the deferred nodes up again under their rename targets. Returns 1 if one was found
 * (its children can now be looked up), 0 if none was (the rest are lost), or a fatal error.
 */
static int retry_deferred(struct proxy *p, struct node_name **v, size_t *n, int64_t deadline)
{
	size_t kept = 0;
	int found = 0;

	for (size_t i = 0; i < *n; i++) {
		struct node *nd = v[i]->node;
		int r;

		nd->deferred = false;
		r = resolve_renamed(p, nd, v[i], deadline);
		if (fatal(r))
			return r;
		if (r == 0) {
			found = 1;
		} else if (r == -ESTALE) {
			nd->deferred = true;
			v[kept++] = v[i];
			continue;
		} else {
			pthread_mutex_lock(&p->lock);
			lose_node(p, nd, r);
			pthread_mutex_unlock(&p->lock);
		}
		free(v[i]);
	}
	*n = kept;
	if (!found) {
		for (size_t i = 0; i < kept; i++) {
			v[i]->node->deferred = false; /* lost with the rest below */
			free(v[i]);
		}
		*n = 0;
	}
	return found;
}

/*
 * Tells the kernel to drop what it caches of node @kid (attributes and pages), so that what
 * it has of an object the node no longer is does not answer for it. Through the notifier
 * thread: dropping pages waits for reads in flight, which wait for this recovery.
 */
static void invalidate_node(struct proxy *p, uint64_t kid)
{
	struct fuse_notify_inval_inode_out in = { .ino = kid, .off = 0, .len = 0 };
	size_t len = sizeof(struct fuse_out_header) + sizeof(in);
	struct msg *m = msg_get(len);

	if (!m)
		return;
	m->len = len;
	*msg_out(m) = (struct fuse_out_header){ .len = len, .error = FUSE_NOTIFY_INVAL_INODE };
	memcpy(m->data + sizeof(struct fuse_out_header), &in, sizeof(in));
	queue_notification(p, m, "INVAL_INODE");
}

/*
 * After every node was looked up again: does the daemon keep its inode numbers across runs?
 * Decided once, at the first restart that has nodes to compare, and never undone:
 *  - a daemon whose inode numbers were its node IDs (libfuse's high-level API without
 *    use_ino: sshfs, bindfs, LXCFS) renumbers on every run, and so does one under which no node
 *    kept its number: nothing can be told from the numbers, the type check is all there is,
 *    and the kernel is shown the numbers it first saw, so that st_ino of a file in use never
 *    changes;
 *  - otherwise (passthrough daemons report the store's numbers) the numbers are stable, and a
 *    node whose number or generation changed, then or at any later restart, names another
 *    object: it is lost (ESTALE), its lookup given back and its cache in the kernel dropped.
 * A stable daemon whose nodes all changed is not taken for a renumbering one: that would turn
 * every replaced file into a silent success.
 */
/*
 * @m's node was found under another inode number by one of its names, under a daemon whose
 * numbers are stable: that name now names another object, but another name may still name the
 * node's. Looks each name it has now up; names that do not lead to it are dropped (but the
 * last), and one that does makes the node resolved again. Returns 0 if found, -ESTALE if not,
 * or a fatal error.
 */
static int other_names(struct proxy *p, const struct mismatch *m, int64_t deadline)
{
	char where[PATH_MAX];
	struct node *n = m->n;
	size_t count = 0;
	struct node_name **v;
	int r = -ESTALE;

	pthread_mutex_lock(&p->lock);
	v = calloc(n->nnames, sizeof(*v));
	for (struct node_name *nm = n->names; v && nm; nm = nm->next)
		v[count++] = name_copy(nm);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < count; i++) {
		struct msg *reply = NULL;
		struct fuse_entry_out *e;
		struct node_name *nm;
		int err = 0;

		if (!v[i])
			continue;
		if (r == -ESTALE) {
			reply = lookup_name(p, v[i]->parent, v[i]->name, deadline, &err);
			if (fatal(err)) {
				r = err;
				break;
			}
		}
		e = reply ? entry_of(reply) : NULL;
		pthread_mutex_lock(&p->lock);
		nm = node_find_name(&p->nodes, v[i]->parent, v[i]->name);
		if (e && entry_type(e) == n->type && e->attr.ino == m->ino && e->generation == m->gen) {
			uint64_t did = n->did;

			/* Its lookup of the other object goes back; this one's is the node's now. */
			node_unresolve(&p->nodes, n);
			forget_in_daemon(p, p->nodes.epoch, did, 1);
			r = node_resolved(&p->nodes, n, e);
			log_info("%s was found again by another of its names, \"%s\" (node %" PRIu64
				 ")", node_label(&p->nodes, n, p->cfg->mountpoint, where,
						 sizeof(where)), v[i]->name, n->kid);
			msg_put(reply);
			reply = NULL;
		} else if (reply || err == -ENOENT) {
			if (nm && nm->node == n && n->nnames > 1)
				node_drop_name(&p->nodes, nm);
		}
		pthread_mutex_unlock(&p->lock);
		forget_entry(p, reply);
	}
	for (size_t i = 0; i < count; i++)
		free(v[i]);
	free(v);
	return r;
}

static int decide_identity(struct proxy *p, int64_t deadline)
{
	uint64_t diff = p->nmismatch + p->ino_diff_unnoted, same = p->ino_same;
	char where[PATH_MAX];
	int r = 0;

	if (p->ino_mode == INO_UNKNOWN && (same || diff)) {
		bool by_nodeid = p->nodes.ino_is_nodeid && !p->nodes.ino_not_nodeid;

		p->ino_mode = by_nodeid || !same ? INO_UNSTABLE : INO_STABLE;
		log_info("The daemon's inode numbers %s across restarts (%s%" PRIu64 " of %" PRIu64
			 " nodes kept theirs)%s",
			 p->ino_mode == INO_STABLE ? "are stable" : "change",
			 by_nodeid ? "they are its node IDs, which a new daemon gives anew; this time "
				   : "",
			 same, same + diff,
			 p->ino_mode == INO_STABLE ? ": a node found under another number is lost"
						   : ": the kernel keeps seeing the ones it first saw");
	}
	if (p->ino_mode == INO_STABLE) {
		for (size_t i = 0; i < p->nmismatch; i++) {
			struct node *n = p->mismatch[i].n;
			uint64_t did, fwd;

			/* The name it was found by may have gone since (a rename in flight
			 * was found done onto it): look again by every name it has now. */
			if (n->nnames) {
				r = other_names(p, &p->mismatch[i], deadline);
				if (fatal(r))
					return r;
				r = r == -ESTALE ? 0 : r;
				if (!n->lost && n->d_ino == p->mismatch[i].ino &&
				    n->d_gen == p->mismatch[i].gen)
					continue;
			}
			pthread_mutex_lock(&p->lock);
			node_label(&p->nodes, n, p->cfg->mountpoint, where, sizeof(where));
			node_lose(&p->nodes, n, &did, &fwd);
			forget_in_daemon(p, p->nodes.epoch, did, fwd);
			p->lost_nodes++;
			pthread_mutex_unlock(&p->lock);
			log_warn("%s now names another object (inode %" PRIu64 ", %" PRIu64 " before "
				 "the restart): requests for the one the kernel holds fail with ESTALE "
				 "(node %" PRIu64 ")", where, n->d_ino, n->k_ino, n->kid);
			invalidate_node(p, n->kid);
		}
	}
	if (p->ino_diff_unnoted)
		log_warn("%" PRIu64 " nodes found under another inode number were lost: no memory "
			 "to wait for the decision", p->ino_diff_unnoted);
	if (p->ino_mode == INO_UNSTABLE) {
		pthread_mutex_lock(&p->lock);
		r = node_ino_remap(&p->nodes);
		pthread_mutex_unlock(&p->lock);
	}
	return r;
}

/*
 * @nm of a node was not found (-ENOENT) or names another type of object (-ESTALE): a rename in
 * flight may have moved it; else the name is dropped and the node is looked for by its other
 * names, if it has any. Returns 0 (found, or left to another name), -ESTALE when the rename's
 * target directory is not found yet (deferred), or the error that loses the node.
 */
static int name_missing(struct proxy *p, struct node_name *nm, int err, int64_t deadline)
{
	struct node *n = nm->node;
	int r = -ENOENT;

	if (err == -ENOENT) {
		r = resolve_renamed(p, n, nm, deadline);
		if (r != -ENOENT)
			return r;
	}
	pthread_mutex_lock(&p->lock);
	if (n->nnames > 1) {
		log_debug("Node %" PRIu64 " is not \"%s\" any more (%s); trying its other names",
			  n->kid, nm->name, strerror(-err));
		node_drop_name(&p->nodes, nm);
		r = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return r ? err : 0;
}

/* Looks every node the kernel holds up again, parents before children, a batch at a time. */
/*
 * Looks the nodes of @pending up in the current daemon, parents first, in pipelined batches;
 * follows renames in flight and other names; loses what cannot be found. Mismatched inode
 * numbers are noted for decide_identity(). Returns 0, or a fatal error (the daemon died, the
 * deadline passed, no memory).
 */
static int resolve_set(struct proxy *p, struct node_pending *pending, int64_t deadline)
{
	struct node_name *batch[BATCH], *missing[BATCH], **deferred = NULL;
	struct msg *reqs[BATCH];
	bool nomem = false;
	int missing_err[BATCH];
	struct call calls[BATCH];
	size_t n, nmissing, ndeferred = 0;
	int r = 0;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		n = node_pending(&p->nodes, pending, batch, BATCH);
		/* Under the lock: the relay may serve meanwhile (lazy lookup), adding nodes. */
		for (size_t i = 0; i < n; i++) {
			struct node *parent = node_get(&p->nodes, batch[i]->parent);

			reqs[i] = make_request(FUSE_LOOKUP, parent->did, NULL, 0, batch[i]->name);
			if (!reqs[i]) {
				while (i--)
					msg_put(reqs[i]);
				n = 0;
				nomem = true;
			}
		}
		pthread_mutex_unlock(&p->lock);
		if (nomem) {
			r = -ENOMEM;
			goto out;
		}
		if (!n) {
			/* Renamed into directories found only since: look again, while that helps. */
			r = retry_deferred(p, deferred, &ndeferred, deadline);
			if (r <= 0)
				break;
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			r = call_start(p, &calls[i], reqs[i]);
			msg_put(reqs[i]);
			if (r < 0) {
				size_t started = i + 1;

				while (++i < n)
					msg_put(reqs[i]);
				calls_drop(p, calls, started);
				goto out;
			}
		}
		r = calls_wait(p, calls, n, deadline);
		if (r < 0) {
			calls_drop(p, calls, n);
			goto out;
		}
		nmissing = 0;
		pthread_mutex_lock(&p->lock);
		for (size_t i = 0; i < n; i++) {
			struct node *nd = batch[i]->node;
			struct fuse_entry_out *e = NULL;
			size_t len = 0;
			int err = calls[i].reply ? reply_error(calls[i].reply) : -EPIPE;

			if (!err)
				e = reply_body(calls[i].reply, &len);
			if (!err && (len != sizeof(*e) || !e->nodeid))
				err = -ENOENT;
			if (!err && (entry_type(e) != nd->type || !same_in_lazy(p, nd, e))) {
				forget_in_daemon(p, p->nodes.epoch, e->nodeid, 1);
				err = -ESTALE;
			}
			if (!err && note_identity(p, nd, e))
				err = node_resolved(&p->nodes, nd, e);
			if (err == -ENOENT || (err == -ESTALE && nd->nnames > 1)) {
				missing_err[nmissing] = err;
				missing[nmissing++] = batch[i];
			} else if (err) {
				lose_node(p, nd, err);
			}
		}
		pthread_mutex_unlock(&p->lock);
		calls_drop(p, calls, n);
		for (size_t i = 0; i < nmissing; i++) {
			struct node *nd = missing[i]->node;

			r = name_missing(p, missing[i], missing_err[i], deadline);
			if (fatal(r))
				goto out;
			if (r == -ESTALE && missing_err[i] == -ENOENT) {
				/* The rename's target directory is not found yet. */
				struct node_name **v = realloc(deferred, (ndeferred + 1) * sizeof(*v));
				struct node_name *c = v ? name_copy(missing[i]) : NULL;

				if (v)
					deferred = v;
				if (c) {
					deferred[ndeferred++] = c;
					nd->deferred = true;
					continue;
				}
			}
			if (r < 0) {
				pthread_mutex_lock(&p->lock);
				lose_node(p, nd, r);
				pthread_mutex_unlock(&p->lock);
			}
		}
	}
	if (r == 0) {
		pthread_mutex_lock(&p->lock);
		p->lost_nodes += node_lose_pending(&p->nodes, pending);
		pthread_mutex_unlock(&p->lock);
	}
out:
	for (size_t i = 0; i < ndeferred; i++) {
		deferred[i]->node->deferred = false;
		free(deferred[i]);
	}
	free(deferred);
	return r < 0 ? r : 0;
}

/*
 * Looks up the nodes of @pending (resolve_set()) unless @r, an error met while filling it, is
 * set; ends @pending; then, on success, decides on inode numbers from what these lookups found
 * (decide_identity()), whose counts are cleared for the next set. Returns 0 or -errno.
 */
static int resolve_decide(struct proxy *p, struct node_pending *pending, int r,
			  int64_t deadline)
{
	if (r == 0 && pending->count)
		r = resolve_set(p, pending, deadline);
	pthread_mutex_lock(&p->lock);
	node_pending_end(&p->nodes, pending);
	pthread_mutex_unlock(&p->lock);
	if (r == 0)
		r = decide_identity(p, deadline);
	p->nmismatch = p->ino_same = p->ino_diff_unnoted = 0;
	return r;
}

/* Recovery: every node the kernel holds, then the decision on inode numbers. */
static int resolve_nodes(struct proxy *p, int64_t deadline)
{
	struct node_pending pending = { 0 };
	int r;

	pthread_mutex_lock(&p->lock);
	r = node_pending_begin(&p->nodes, &pending);
	pthread_mutex_unlock(&p->lock);
	r = resolve_decide(p, &pending, r, deadline);
	/* resolve_set() loses what it could not look up: no node is left unresolved. */
	if (r == 0) {
		pthread_mutex_lock(&p->lock);
		node_table_resolved(&p->nodes);
		pthread_mutex_unlock(&p->lock);
	}
	return r;
}

struct needed_ctx {
	struct proxy *p;
	struct node_pending *np;
	int err;
};

static void need_handle(struct handle *h, void *arg)
{
	struct needed_ctx *c = arg;

	if (!c->err)
		c->err = node_pending_add(&c->p->nodes, c->np, h->node);
}

static void need_request(uint64_t key, void *val, void *arg)
{
	struct needed_ctx *c = arg;
	struct msg *m = val;

	const struct op_info *op = op_get(msg_in(m)->opcode);
	uint64_t dirs[2] = { m->knode, m->knode2 };
	const char *names[2];

	if (!c->err && m->knode)
		c->err = node_pending_add(&c->p->nodes, c->np, m->knode);
	if (!c->err && m->knode2)
		c->err = node_pending_add(&c->p->nodes, c->np, m->knode2);
	/* The nodes its entry names name: settling it compares what they name now. */
	if (!op || !op->entry_names || request_names(m, op, names) < 0)
		return;
	for (int i = 0; i < op->entry_names && i < 2 && !c->err; i++) {
		struct node *n = names[i] ? node_find(&c->p->nodes, dirs[i], names[i]) : NULL;

		if (n)
			c->err = node_pending_add(&c->p->nodes, c->np, n->kid);
	}
}

/*
 * Lazy recovery: resolves what recovery itself works on — the nodes of open handles (their
 * locks too), of the requests to settle and of the hidden names to remove, with their ancestors
 * — and, while the decision on inode numbers is still to be made, a sample of LAZY_SAMPLE more.
 * Under a daemon whose numbers are stable the rest is left to first use and the background
 * (p->lazy_pending); else every node is resolved now, as without lazy resolution.
 */
static int resolve_needed(struct proxy *p, int64_t deadline)
{
	struct node_pending pending = { 0 };
	struct needed_ctx c = { p, &pending, 0 };
	uint64_t needed;
	uint32_t pos = 0;
	int r;

	pthread_mutex_lock(&p->lock);
	handle_each(&p->handles, need_handle, &c);
	idmap_each(&p->inflight, need_request, &c);
	for (struct grave *g = p->hide.graves; g && !c.err; g = g->next)
		c.err = node_pending_add(&p->nodes, &pending, g->parent);
	/* A file the k2d thread was hiding as the daemon died: the retry needs its outcome. */
	if (!c.err && p->hide.hiding_node)
		c.err = node_pending_add(&p->nodes, &pending, p->hide.hiding_node);
	if (!c.err && p->ino_mode == INO_UNKNOWN &&
	    node_pending_scan(&p->nodes, &pos, LAZY_SAMPLE, &pending) < 0)
		c.err = -ENOMEM;
	pthread_mutex_unlock(&p->lock);
	needed = pending.count;
	r = resolve_decide(p, &pending, c.err, deadline);
	if (r < 0)
		return r;
	if (p->ino_mode != INO_STABLE)
		return resolve_nodes(p, deadline);
	pthread_mutex_lock(&p->lock);
	/* Seen by the k2d thread, or it is seen reading /dev/fuse (relay_kick()). */
	__atomic_store_n(&p->lazy_pending, true, __ATOMIC_SEQ_CST);
	p->lazy_pos = 0;
	p->lazy_left = p->nodes.count - 1 > needed ? p->nodes.count - 1 - needed : 0;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

struct dirplus_ctx {
	uint32_t epoch;
	bool found;
};

static void find_dirplus(uint64_t key, void *val, void *arg)
{
	struct dirplus_ctx *c = arg;
	struct msg *m = val;

	if (m->epoch == c->epoch && msg_in(m)->opcode == FUSE_READDIRPLUS)
		c->found = true;
}

/*
 * Whether the reply to a READDIRPLUS may be applied while a lookup waits: its entries are the
 * one kind of name the fence does not see (k2d_fence()), and one for an unresolved node's name
 * would move that name (or resolve the node) under the lookup. Under the lock.
 */
static bool dirplus_busy(struct proxy *p)
{
	struct dirplus_ctx c = { p->nodes.epoch, false };

	if (p->dirplus_applying)
		return true;
	idmap_each(&p->inflight, find_dirplus, &c);
	return c.found;
}

/*
 * Lazy lookup on the k2d thread: the start of one. For a first use (@epoch: the daemon's whose
 * request it is), waits while a READDIRPLUS is in flight, until @deadline: -ETIMEDOUT; returns
 * -EPIPE when that daemon is gone or going. For the background (@epoch 0) returns -EBUSY
 * instead of waiting, and 0 while the relay does not serve or a fusekeeper reexec waits for
 * it. Returns 0 too when there is nothing to do (no node is left unresolved), and 1 when the
 * lookup may begin. attach_daemon() waits for its end (lazy_end()) before a new daemon's epoch
 * begins: a lookup holds names across its calls. Under the lock.
 */
static int lazy_begin(struct proxy *p, uint32_t epoch, int64_t deadline)
{
	for (;;) {
		struct timespec ts;

		if (epoch && (p->nodes.epoch != epoch || !daemon_answers(p)))
			return -EPIPE;
		if (!p->lazy_pending || (!epoch && (p->state != PX_UP || p->freeze || p->draining)))
			return 0;
		if (!dirplus_busy(p)) {
			p->lazy_resolving = true;
			return 1;
		}
		if (!epoch)
			return -EBUSY;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		ts = deadline_ts(MIN(deadline - now_ms(), 100));
		pthread_cond_timedwait(&p->changed, &p->lock, &ts);
	}
}

static void lazy_end(struct proxy *p)
{
	pthread_mutex_lock(&p->lock);
	p->lazy_resolving = false;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

int recover_node(struct proxy *p, uint64_t kid, uint32_t epoch)
{
	int64_t deadline = now_ms() + p->cfg->start_timeout_ms;
	struct node_pending pending = { 0 };
	size_t count = 0;
	int r;

	pthread_mutex_lock(&p->lock);
	r = lazy_begin(p, epoch, deadline);
	if (r <= 0) {
		pthread_mutex_unlock(&p->lock);
		return r;
	}
	r = node_pending_add(&p->nodes, &pending, kid);
	count = pending.count;
	pthread_mutex_unlock(&p->lock);
	/* The decision on inode numbers was made by the recovery: mismatches are lost now. */
	r = resolve_decide(p, &pending, r, deadline);
	pthread_mutex_lock(&p->lock);
	if (r == 0)
		p->lazy_first_use += count;
	/* Left unresolved by a failure other than a death: the walk passes over it again. */
	else if (r != -EPIPE)
		p->lazy_pos = 0;
	pthread_mutex_unlock(&p->lock);
	lazy_end(p);
	return r;
}

/* The end of the background walk, with what became of the nodes left for it. Under the lock. */
static void log_walk_end(struct proxy *p)
{
	uint64_t looked = p->lazy_first_use + p->lazy_background;
	char others[96] = "";

	/* The count of nodes left (lazy_left) is the recovery's, not a replaced keeper's. */
	if (p->lazy_left > looked)
		snprintf(others, sizeof(others), "; the kernel forgot the other %" PRIu64 ", or "
			 "looked them up itself", p->lazy_left - looked);
	log_info("Every node the kernel holds is looked up again, %" PRId64 " ms after %s: %"
		 PRIu64 " on first use and %" PRIu64 " in the background, %" PRIu64 " of them "
		 "lost%s", now_ms() - p->lazy_since_ms,
		 p->lazy_reexec ? "this keeper replaced the last one" : "the daemon took over",
		 p->lazy_first_use, p->lazy_background, p->lost_nodes - p->rec_lost_nodes, others);
}

int recover_background(struct proxy *p)
{
	struct node_pending pending = { 0 };
	int64_t deadline = now_ms() + p->cfg->start_timeout_ms;
	size_t count = 0;
	int left, r = 0;

	pthread_mutex_lock(&p->lock);
	/* Nothing to do, or not now (a READDIRPLUS in flight, the relay not serving): the
	 * k2d thread reads the kernel, and tries again after the next request. */
	if (lazy_begin(p, 0, deadline) <= 0) {
		pthread_mutex_unlock(&p->lock);
		return -EAGAIN;
	}
	left = node_pending_scan(&p->nodes, &p->lazy_pos, LAZY_BATCH, &pending);
	count = pending.count;
	pthread_mutex_unlock(&p->lock);
	r = resolve_decide(p, &pending, MIN(left, 0), deadline);
	pthread_mutex_lock(&p->lock);
	if (r == 0)
		p->lazy_background += count;
	if (left == 0 && r == 0) {
		__atomic_store_n(&p->lazy_pending, false, __ATOMIC_SEQ_CST);
		node_table_resolved(&p->nodes);
		/* After a fusekeeper reexec the walk often finds nothing to do. */
		if (p->lazy_left || p->lazy_first_use || p->lazy_background)
			log_walk_end(p);
	}
	/*
	 * A death: the next recovery starts again from every node still unresolved. Else (a
	 * daemon too slow, no memory) the walk stops; first use still looks nodes up.
	 */
	if (r < 0 && r != -EPIPE) {
		p->lazy_walk_off = true;
		log_warn("Looking nodes up in the background stopped: %s; the rest are looked up "
			 "on first use", strerror(-r));
	}
	pthread_mutex_unlock(&p->lock);
	lazy_end(p);
	return r < 0 ? r : left ? 0 : -EAGAIN;
}

struct handle_list {
	struct handle **v;
	size_t n, cap;
};

static void collect_handle(struct handle *h, void *arg)
{
	struct handle_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct handle **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return; /* Uncollected handles stay unopened: they fail with EIO. */
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = h;
}

/* Opens every handle the kernel holds again, with the flags it was first opened with. */
static int reopen_handles(struct proxy *p, int64_t deadline)
{
	struct handle_list l = { 0 };
	struct call calls[BATCH];
	int r = 0;

	pthread_mutex_lock(&p->lock);
	handle_each(&p->handles, collect_handle, &l);
	pthread_mutex_unlock(&p->lock);
	for (size_t start = 0; start < l.n && r == 0; start += BATCH) {
		size_t n = MIN(l.n - start, (size_t)BATCH);

		for (size_t i = 0; i < n; i++) {
			struct handle *h = l.v[start + i];
			struct fuse_open_in in = { .flags = h->flags & ~REOPEN_DROP };
			struct msg *req;
			uint64_t did;

			calls[i].done = true;
			calls[i].failed = false;
			calls[i].reply = NULL;
			if (h->lost || !node_get(&p->nodes, h->node) ||
			    node_to_daemon(&p->nodes, h->node, &did) < 0)
				continue;
			req = make_request(h->dir ? FUSE_OPENDIR : FUSE_OPEN, did, &in, sizeof(in),
					   NULL);
			if (req) {
				/* As the opener: a daemon checking permissions sees the same caller. */
				msg_in(req)->uid = h->uid;
				msg_in(req)->gid = h->gid;
				call_start(p, &calls[i], req);
			}
			msg_put(req);
		}
		r = calls_wait(p, calls, n, deadline);
		pthread_mutex_lock(&p->lock);
		for (size_t i = 0; i < n && r == 0; i++) {
			struct handle *h = l.v[start + i];
			struct fuse_open_out *o = NULL;
			size_t len = 0;
			int err = calls[i].reply ? reply_error(calls[i].reply) : -ESTALE;

			if (h->lost)
				continue;
			if (!err)
				o = reply_body(calls[i].reply, &len);
			if (!err && len != sizeof(*o))
				err = -EPROTO;
			if (err) {
				h->lost = true;
				handle_changed(&p->handles, h);
				p->lost_handles++;
				log_warn("Handle %" PRIu64 " of node %" PRIu64 " cannot be opened again: "
					 "%s; requests on it now fail with %s", h->kfh, h->node,
					 strerror(-err), err == -ESTALE ? "ESTALE" : "EIO");
				continue;
			}
			h->dfh = o->fh;
			h->epoch = p->handles.epoch;
			handle_set_fresh(&p->handles, h, true);
		}
		pthread_mutex_unlock(&p->lock);
		calls_drop(p, calls, n);
	}
	free(l.v);
	return r;
}

/* ---- Requests the dead daemon left unanswered ------------------------------------------ */

/* Removes @req from the in-flight table so that this thread may answer it. */
static void take_request(struct proxy *p, struct msg *req)
{
	pthread_mutex_lock(&p->lock);
	idmap_del(&p->inflight, msg_in(req)->unique);
	pthread_mutex_unlock(&p->lock);
}

/* Sends a translated copy of @req as the keeper's own call; returns the daemon's reply. */
static struct msg *call_request(struct proxy *p, struct msg *req, const struct op_info *op,
				int64_t deadline, int *err)
{
	struct msg *copy = msg_dup(req->data, req->len), *reply;

	if (!copy) {
		*err = -ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&p->lock);
	*err = translate_request(p, copy, op);
	if (*err == 0)
		req->held = p->nodes.epoch; /* this daemon now holds it (epoch stays 0: ours) */
	pthread_mutex_unlock(&p->lock);
	if (*err < 0) {
		msg_put(copy);
		return NULL;
	}
	reply = call_one(p, copy, deadline, err);
	msg_put(copy);
	return reply;
}

/* LOOKUP of @name in the kernel's directory @kparent; returns the reply or NULL. */
static struct msg *lookup_name(struct proxy *p, uint64_t kparent, const char *name,
			       int64_t deadline, int *err)
{
	uint64_t did;

	pthread_mutex_lock(&p->lock);
	*err = node_to_daemon(&p->nodes, kparent, &did);
	pthread_mutex_unlock(&p->lock);
	return *err < 0 ? NULL : call_lookup(p, did, name, deadline, err);
}

static uint32_t created_type(struct proxy *p, struct msg *req, const struct op_info *op)
{
	const void *b = req->data + sizeof(struct fuse_in_header);
	struct node *n;

	switch ((enum op_ctype)op->ctype) {
	case CT_DIR:
		return S_IFDIR;
	case CT_LNK:
		return S_IFLNK;
	case CT_REG:
		return S_IFREG;
	case CT_MODE:
		return ((const struct fuse_mknod_in *)b)->mode & S_IFMT;
	case CT_NODE2:
		pthread_mutex_lock(&p->lock);
		n = node_get(&p->nodes, req->knode2);
		pthread_mutex_unlock(&p->lock);
		return n ? n->type : 0;
	case CT_NONE:
	default:
		return 0;
	}
}

/* ---- Proof of what the dead daemon did ------------------------------------------------- */

/*
 * A repeat that fails because its work is already done looks the same as one that fails
 * because somebody else did that work, or because it was never possible. The keeper answers
 * success only on proof that the change it sees was made while the dead daemon held the request:
 *  - with --exclusive, the operator's word that no other client changes the store: then the
 *    kernel's own checks before it sent the request (a create only for a name it saw absent, a
 *    removal only for one it saw present) leave the dead daemon as the only possible author;
 *  - otherwise the store's clock: the object's ctime must fall between the moment the request
 *    was sent and the moment the daemon was found dead, within the slack the keeper measured on
 *    the creates it relayed (ctime against send and reply). A store whose times are coarser
 *    than MAX_CLOCK_SLACK_NS (clock.c; sshfs: whole seconds) cannot give that proof.
 * Without proof the application gets EIO; where the evidence shows the change is not the
 * dead daemon's, the repeat's own error.
 */

enum when {
	WHEN_UNKNOWN,	/* the store's clock cannot tell */
	WHEN_BEFORE,	/* surely before the request was sent */
	WHEN_DURING,	/* while the dead daemon held the request */
	WHEN_AFTER,	/* surely after the daemon was found dead */
};

static const char *const when_name[] = {
	[WHEN_UNKNOWN] = "the store's clock cannot tell when",
	[WHEN_BEFORE] = "before the request was sent",
	[WHEN_DURING] = "while the dead daemon held the request",
	[WHEN_AFTER] = "after the daemon died",
};

/* When the object with attributes @a last changed, against @req's life in the dead daemon. */
static enum when changed_when(struct proxy *p, const struct msg *req, const struct fuse_attr *a)
{
	int64_t t = ctime_ns(a), slack = clock_slack(p);

	if (!req->sent_ns || !req->death_ns || slack < 0)
		return WHEN_UNKNOWN;
	if (t + slack < req->sent_ns)
		return WHEN_BEFORE;
	if (t - slack > req->death_ns)
		return WHEN_AFTER;
	return WHEN_DURING;
}

/* Logs a decision on a replayed request, with its proof or the lack of one. */
static void log_settle(const struct msg *req, const char *what, const char *why)
{
	log_info("Replayed %s (unique %" PRIu64 ", node %" PRIu64 "): %s (%s)",
		 op_name(msg_in((struct msg *)req)->opcode), msg_in((struct msg *)req)->unique,
		 req->knode, what, why);
}

/*
 * The answer for a change found done when its author is not proven: success (NULL) with proof,
 * the repeat's own error @err when the change is surely someone else's, else EIO.
 */
static struct msg *unproven(const struct msg *req, enum when w, int err)
{
	if (w == WHEN_BEFORE || w == WHEN_AFTER) {
		log_settle(req, "not the dead daemon's doing: answering the repeat's error",
			   when_name[w]);
		return make_error(err);
	}
	log_settle(req, "cannot prove the dead daemon did it: answering EIO", when_name[w]);
	return make_error(-EIO);
}

/* The name of a symlink node, for comparing with a SYMLINK request's target. */
static int readlink_node(struct proxy *p, uint64_t did, char *buf, size_t size, int64_t deadline)
{
	struct msg *req = make_request(FUSE_READLINK, did, NULL, 0, NULL), *reply;
	size_t len;
	int r;

	reply = req ? call_one(p, req, deadline, &r) : NULL;
	msg_put(req);
	if (!reply)
		return req ? r : -ENOMEM;
	r = reply_error(reply);
	if (!r) {
		const char *b = reply_body(reply, &len);

		if (len >= size)
			r = -ENAMETOOLONG;
		else {
			memcpy(buf, b, len);
			buf[len] = '\0';
		}
	}
	msg_put(reply);
	return r;
}

/*
 * Evidence that the object @e, found under the name a creating request @req names, is the
 * one the dead daemon made for it. Returns 1 (proof), 0 (surely not: *w says why), or a
 * fatal error. Besides the time (see above): a created file is empty (the kernel had no handle
 * to write through yet), a hard link is the source object, a symlink points where asked.
 */
static int created_by_request(struct proxy *p, struct msg *req, const struct op_info *op,
			      const struct fuse_entry_out *e, const char *names[2],
			      enum when *w, int64_t deadline)
{
	struct fuse_attr src;
	char target[4096];
	int r;

	*w = changed_when(p, req, &e->attr);
	if (msg_in(req)->opcode == FUSE_CREATE && e->attr.size != 0) {
		*w = WHEN_AFTER; /* written to since: not what our create made */
		return 0;
	}
	if (msg_in(req)->opcode == FUSE_LINK) {
		r = getattr_node(p, req->knode2, &src, deadline);
		if (fatal(r))
			return r;
		if (r < 0 || src.ino != e->attr.ino)
			return 0;
	}
	if (msg_in(req)->opcode == FUSE_SYMLINK) {
		/* SYMLINK's names: the link's name, then its target. */
		r = readlink_node(p, e->nodeid, target, sizeof(target), deadline);
		if (fatal(r))
			return r;
		if (r < 0 || strcmp(target, names[1]))
			return 0;
	}
	if (p->cfg->exclusive)
		return 1;
	return *w == WHEN_DURING;
}

/*
 * RP_EXISTS: send again; on an error (EEXIST, or what the daemon maps it to: sshfs says EPERM)
 * with the name now naming an object of the right type, proven to be the one the dead daemon
 * made, answer with that entry (and, for CREATE, a handle opened on it).
 */
static struct msg *settle_exists(struct proxy *p, struct msg *req, const struct op_info *op,
				 int64_t deadline, int *err)
{
	struct msg *reply = call_request(p, req, op, deadline, err), *found, *opened;
	const char *names[2];
	struct fuse_entry_out *e;
	enum when w;
	int lerr, r;

	if (!reply || !reply_error(reply) || request_names(req, op, names) < 0)
		return reply;
	found = lookup_name(p, req->knode, names[0], deadline, &lerr);
	if (!found && fatal(lerr)) {
		/* The daemon went before it could tell: the next one decides. */
		msg_put(reply);
		*err = lerr;
		return NULL;
	}
	if (!found)
		return reply;
	e = entry_of(found);
	if (entry_type(e) != created_type(p, req, op)) {
		forget_entry(p, found);
		return reply;
	}
	r = created_by_request(p, req, op, e, names, &w, deadline);
	if (r <= 0) {
		forget_entry(p, found);
		if (fatal(r)) {
			msg_put(reply);
			*err = r;
			return NULL;
		}
		found = unproven(req, r == 0 && w == WHEN_DURING ? WHEN_UNKNOWN : w,
				 reply_error(reply));
		msg_put(reply);
		return found;
	}
	log_settle(req, "the dead daemon made it: answering with the entry",
		   p->cfg->exclusive ? "--exclusive" : when_name[w]);
	if (op->effect != EFF_CREATE) {
		msg_put(reply);
		return found;
	}
	{
		const struct fuse_create_in *ci =
			(const void *)(req->data + sizeof(struct fuse_in_header));
		struct fuse_open_in in = { .flags = ci->flags & ~REOPEN_DROP };
		struct msg *oreq = make_request(FUSE_OPEN, e->nodeid, &in, sizeof(in), NULL);
		char both[sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out)];
		size_t olen;

		opened = oreq ? call_one(p, oreq, deadline, &lerr) : NULL;
		msg_put(oreq);
		if (!opened || reply_error(opened) ||
		    (reply_body(opened, &olen), olen != sizeof(struct fuse_open_out))) {
			msg_put(opened);
			forget_entry(p, found);
			return reply;
		}
		memcpy(both, e, sizeof(*e));
		memcpy(both + sizeof(*e), reply_body(opened, &olen), sizeof(struct fuse_open_out));
		msg_put(opened);
		msg_put(found);
		msg_put(reply);
		return make_reply(0, both, sizeof(both));
	}
}

/*
 * Whether the name a removing or renaming request @req acts on now names another object than
 * the one the kernel meant: recovery found the node under that name to be another object
 * (decide_identity()). Repeating the request would remove or move that other object, and
 * whether the dead daemon acted on the first one cannot be told.
 */
static bool renamed_away(struct proxy *p, struct msg *req, const struct op_info *op)
{
	const char *names[2];
	struct node *n;
	bool lost;

	if (request_names(req, op, names) < 0)
		return false;
	pthread_mutex_lock(&p->lock);
	n = node_find(&p->nodes, req->knode, names[0]);
	lost = n && n->replaced;
	pthread_mutex_unlock(&p->lock);
	if (lost)
		log_settle(req, "its name now names another object", "not repeated");
	return lost;
}

/*
 * RP_RENAME: send again; an error with the source name gone and the target naming an object of
 * the source's type, proven changed while the dead daemon held the request (a rename changes
 * the moved object's ctime), means the dead daemon renamed it.
 */
static struct msg *settle_rename(struct proxy *p, struct msg *req, const struct op_info *op,
				 int64_t deadline, int *err)
{
	struct msg *reply, *src, *dst, *answer;
	const char *names[2];
	struct node *n;
	uint32_t type = 0;
	enum when w;
	int e, lerr;

	if (renamed_away(p, req, op))
		return unproven(req, WHEN_UNKNOWN, -EIO);
	reply = call_request(p, req, op, deadline, err);
	if (!reply)
		return NULL;
	e = reply_error(reply);
	if (!e || request_names(req, op, names) < 0)
		return reply;
	src = lookup_name(p, req->knode, names[0], deadline, &lerr);
	if (!src && fatal(lerr))
		goto gone;
	dst = lookup_name(p, req->knode2, names[1], deadline, &lerr);
	if (!dst && fatal(lerr))
		goto gone;
	pthread_mutex_lock(&p->lock);
	n = node_find(&p->nodes, req->knode2, names[1]);
	if (n)
		type = n->type; /* recovery found the source under its new name */
	pthread_mutex_unlock(&p->lock);
	answer = reply;
	if (!src && dst && (!type || entry_type(entry_of(dst)) == type)) {
		w = changed_when(p, req, req->before ? req->before : &entry_of(dst)->attr);
		if (p->cfg->exclusive || w == WHEN_DURING) {
			log_settle(req, "the dead daemon renamed it: answering success",
				   p->cfg->exclusive ? "--exclusive" : when_name[w]);
			answer = make_reply(0, NULL, 0);
		} else {
			answer = unproven(req, w, e);
		}
		msg_put(reply);
	}
	forget_entry(p, src);
	forget_entry(p, dst);
	return answer;
gone:
	forget_entry(p, src);
	msg_put(reply);
	*err = lerr;
	return NULL;
}

/*
 * Whether the attribute a SETXATTR @req sets now holds the value it asks for: 1 yes, 0 no
 * (another value, or none), -EIO if it cannot be read, or a fatal error.
 */
static int xattr_is(struct proxy *p, struct msg *req, int64_t deadline)
{
	const struct fuse_setxattr_in *si = (const void *)(req->data + sizeof(struct fuse_in_header));
	size_t off = p->init_flags & FUSE_SETXATTR_EXT ? sizeof(struct fuse_setxattr_in)
						       : FUSE_COMPAT_SETXATTR_IN_SIZE;
	size_t blen = req->len - sizeof(struct fuse_in_header), nlen, len;
	const char *name = (const char *)si + off, *value;
	struct fuse_getxattr_in gin = { .size = si->size + 1 };
	struct msg *reply;
	int r;

	if (off >= blen || !memchr(name, '\0', blen - off))
		return -EIO;
	nlen = strlen(name) + 1;
	value = name + nlen;
	if (off + nlen + si->size > blen)
		return -EIO;
	reply = call_node(p, FUSE_GETXATTR, req->knode, &gin, sizeof(gin), name, deadline, &r);
	if (!reply)
		return fatal(r) ? r : -EIO;
	r = reply_error(reply);
	if (r == -ENODATA || r == -ERANGE)
		r = 0; /* none, or larger than ours: not our value */
	else if (r)
		r = -EIO;
	else {
		const char *got = reply_body(reply, &len);

		r = len == si->size && !memcmp(got, value, len);
	}
	msg_put(reply);
	return r;
}

struct others_ctx {
	const struct msg *req;
	uint64_t kid;
	bool found;
};

static void other_changer(uint64_t key, void *val, void *arg)
{
	struct others_ctx *c = arg;
	struct msg *m = val;
	const struct op_info *op = op_get(msg_in(m)->opcode);

	if (m != c->req && op->ctime_of &&
	    (op->ctime_of == CTO_NODE2 ? m->knode2 : m->knode) == c->kid)
		c->found = true;
}

/*
 * Whether node @kid may have changed since @since_ns (CLOCK_REALTIME; 0: unknown, so yes): a
 * reply that changed it came since, or a request in flight other than @req may change it. For
 * a request that destroys data (REPEAT_IF_UNCHANGED), which must not be sent again then.
 */
static bool changed_since(struct proxy *p, uint64_t kid, int64_t since_ns, const struct msg *req)
{
	struct others_ctx c = { req, kid, false };
	struct node *n;

	if (since_ns <= 0)
		return true;
	pthread_mutex_lock(&p->lock);
	n = node_get(&p->nodes, kid);
	/* Both times are the keeper's own clock: no slack. A node unknown changed unseen. */
	c.found = !n || n->changed_ns >= since_ns;
	if (!c.found)
		idmap_each(&p->inflight, other_changer, &c);
	pthread_mutex_unlock(&p->lock);
	return c.found;
}

/*
 * Whether a change of node @kid's ctime while the dead daemon held @req may be another request's
 * through this mount: one answered since shortly before @req was sent (the application's own
 * write just before a removexattr), or one the dead daemon also left unanswered. Then the time
 * cannot tell whose the change is.
 */
static bool others_changed(struct proxy *p, const struct msg *req, uint64_t kid)
{
	struct others_ctx c = { req, kid, false };
	int64_t slack = clock_slack(p);
	struct node *n;

	pthread_mutex_lock(&p->lock);
	n = node_get(&p->nodes, kid);
	if (n && slack >= 0 && n->changed_ns >= req->sent_ns - slack)
		c.found = true;
	if (!c.found)
		idmap_each(&p->inflight, other_changer, &c);
	pthread_mutex_unlock(&p->lock);
	return c.found;
}

/*
 * RP_TOLERATE: send again; the error that means "already done" (ENOENT for UNLINK and RMDIR,
 * EEXIST for SETXATTR with XATTR_CREATE, ENODATA for REMOVEXATTR) is success only on proof:
 *  - UNLINK, RMDIR: the directory changed while the dead daemon held the request (or
 *    --exclusive: the kernel saw the name present when it sent it);
 *  - SETXATTR: the attribute holds the value asked for, and the object changed while the dead
 *    daemon held the request (an attribute may have been there before: no --exclusive proof);
 *  - REMOVEXATTR: the object changed while the dead daemon held the request.
 */
static struct msg *settle_tolerate(struct proxy *p, struct msg *req, const struct op_info *op,
				   int64_t deadline, int *err)
{
	struct msg *reply;
	const void *b = req->data + sizeof(struct fuse_in_header);
	uint32_t opcode = msg_in(req)->opcode;
	bool removal = op->effect == EFF_UNLINK;
	struct fuse_attr attr;
	enum when w;
	int e, r;

	if (removal && renamed_away(p, req, op))
		return unproven(req, WHEN_UNKNOWN, -EIO);
	reply = call_request(p, req, op, deadline, err);
	if (!reply)
		return NULL;
	e = reply_error(reply);
	if (-e != op->replay_errno)
		return reply;
	if (opcode == FUSE_SETXATTR) {
		const struct fuse_setxattr_in *si = b;

		/* Without XATTR_CREATE, EEXIST cannot mean "done". */
		if (!(si->flags & XATTR_CREATE))
			return reply;
	}
	msg_put(reply);
	if (removal && p->cfg->exclusive) {
		log_settle(req, "the dead daemon removed it: answering success", "--exclusive");
		return make_reply(0, NULL, 0);
	}
	if (req->before) {
		attr = *req->before;
		r = 0;
	} else {
		r = getattr_node(p, req->knode, &attr, deadline);
	}
	if (fatal(r)) {
		*err = r;
		return NULL;
	}
	if (r < 0)
		return unproven(req, WHEN_UNKNOWN, e);
	w = changed_when(p, req, &attr);
	/*
	 * The kernel knows nothing of attributes: "absent" (or "present with that value") may
	 * have been so all along, so only a change no other request of ours can explain counts.
	 */
	if (w == WHEN_DURING && !removal && others_changed(p, req, req->knode))
		w = WHEN_UNKNOWN;
	if (w != WHEN_BEFORE && opcode == FUSE_SETXATTR) {
		r = xattr_is(p, req, deadline);
		if (fatal(r)) {
			*err = r;
			return NULL;
		}
		if (r == 0)
			return unproven(req, WHEN_BEFORE, e); /* another value: not ours */
		if (r < 0)
			w = WHEN_UNKNOWN;
	}
	/* A change after the death may have followed the dead daemon's own: no answer either way. */
	if (w != WHEN_DURING)
		return unproven(req, w == WHEN_AFTER ? WHEN_UNKNOWN : w, e);
	log_settle(req, "the dead daemon did it: answering success", when_name[w]);
	return make_reply(0, NULL, 0);
}

/* ---- Appends: where did the bytes go? -------------------------------------------------- */

/* How far past the kernel's offset an append is looked for (other appenders moved the end). */
#define APPEND_SEARCH (1 << 20)
/* Bytes asked for in one READ while looking. */
#define READ_CHUNK (128 << 10)

/* Whether the WRITE @w on @h lands at its offset (else the daemon appends it at the end). */
static bool positioned_write(struct proxy *p, const struct handle *h, struct msg *w)
{
	const struct fuse_write_in *in = (const void *)(w->data + sizeof(struct fuse_in_header));

	/* With the writeback cache the kernel places appends itself (FUSE 7.23), and pages
	 * written back from the cache always carry their offset. */
	return !(h->flags & O_APPEND) || (in->write_flags & FUSE_WRITE_CACHE) ||
	       (p->init_flags & FUSE_WRITEBACK_CACHE);
}

/* The attributes of the kernel's node @kid as the current daemon sees them. */
static int getattr_node(struct proxy *p, uint64_t kid, struct fuse_attr *attr, int64_t deadline)
{
	int r;
	struct fuse_getattr_in in = { 0 };
	struct msg *reply = call_node(p, FUSE_GETATTR, kid, &in, sizeof(in), NULL, deadline, &r);
	size_t len;

	if (!reply)
		return r;
	r = reply_error(reply);
	if (!r && (reply_body(reply, &len), len != sizeof(struct fuse_attr_out)))
		r = -EPROTO;
	if (!r)
		*attr = ((struct fuse_attr_out *)reply_body(reply, &len))->attr;
	msg_put(reply);
	return r;
}

/*
 * Reads [@off, @off + @len) of the kernel's node @kid into @buf through a handle of the
 * keeper's own, opened read-only. Returns the bytes read (short at end of file) or -errno.
 */
static ssize_t read_node(struct proxy *p, uint64_t kid, uint64_t off, char *buf, size_t len,
			 int64_t deadline)
{
	struct fuse_open_in oin = { .flags = O_RDONLY };
	struct fuse_release_in rin = { .flags = O_RDONLY };
	struct msg *reply;
	size_t got = 0, n;
	int r, rr;

	reply = call_node(p, FUSE_OPEN, kid, &oin, sizeof(oin), NULL, deadline, &r);
	if (!reply)
		return r;
	r = reply_error(reply);
	if (!r && (reply_body(reply, &n), n != sizeof(struct fuse_open_out)))
		r = -EPROTO;
	rin.fh = r ? 0 : ((struct fuse_open_out *)reply_body(reply, &n))->fh;
	msg_put(reply);
	if (r)
		return r;
	while (got < len) {
		struct fuse_read_in in = { .fh = rin.fh, .offset = off + got,
					   .size = MIN(len - got, (size_t)READ_CHUNK),
					   .flags = O_RDONLY };

		reply = call_node(p, FUSE_READ, kid, &in, sizeof(in), NULL, deadline, &r);
		if (!reply)
			break;
		r = reply_error(reply);
		n = 0;
		if (!r) {
			const void *b = reply_body(reply, &n);

			n = MIN(n, (size_t)in.size);
			memcpy(buf + got, b, n);
			got += n;
		}
		msg_put(reply);
		if (r || n < in.size)
			break;
	}
	msg_put(call_node(p, FUSE_RELEASE, kid, &rin, sizeof(rin), NULL, deadline, &rr));
	if (fatal(rr) && !r)
		r = rr;
	return r ? r : (ssize_t)got;
}

/*
 * Whether the dead daemon made the append @w on @h: its bytes are in the file at the offset
 * the kernel gave, or later (another client appended in between, so the end had moved), within
 * APPEND_SEARCH. Returns 1 (they are there: proof), 0 (they are nowhere they could be: the
 * append was not made), -EIO (the file is too far past the offset to tell) or a fatal error.
 */
static int append_present(struct proxy *p, const struct handle *h, struct msg *w,
			  int64_t deadline)
{
	const struct fuse_write_in *in = (const void *)(w->data + sizeof(struct fuse_in_header));
	const char *data = (const char *)(in + 1);
	struct fuse_attr attr = { 0 };
	_cleanup_free_ char *buf = NULL;
	uint64_t end;
	ssize_t n;
	int r;

	if (w->len < sizeof(struct fuse_in_header) + sizeof(*in) + in->size)
		return -EIO;
	r = getattr_node(p, h->node, &attr, deadline);
	if (r < 0)
		return fatal(r) ? r : -EIO;
	if (attr.size < in->offset + in->size)
		return 0; /* The file does not reach past where the bytes would be. */
	end = MIN(attr.size, in->offset + in->size + APPEND_SEARCH);
	buf = malloc(end - in->offset);
	if (!buf)
		return -ENOMEM;
	n = read_node(p, h->node, in->offset, buf, end - in->offset, deadline);
	if (n < 0)
		return fatal(n) ? n : -EIO;
	if (memmem(buf, n, data, in->size))
		return 1;
	return attr.size > end ? -EIO : 0;
}

/*
 * RP_WRITE on an O_APPEND handle: a repeat would append twice. Repeated only when the bytes are
 * nowhere an append could have put them; found there, the write was done; where that cannot be
 * told (the file grew too far), EIO.
 */
static struct msg *settle_append(struct proxy *p, struct msg *req, const struct op_info *op,
				 int64_t deadline, int *err)
{
	const struct fuse_write_in *w = (const void *)(req->data + sizeof(struct fuse_in_header));
	struct handle *hp, h;
	int r;

	pthread_mutex_lock(&p->lock);
	hp = handle_get(&p->handles, req->kfh);
	if (hp)
		h = *hp;
	pthread_mutex_unlock(&p->lock);
	if (!hp)
		return make_error(-EIO);
	r = append_present(p, &h, req, deadline);
	if (r == 1) {
		struct fuse_write_out wo = { .size = w->size };

		log_info("An append of %u bytes at %" PRIu64 " is in the file already: the dead "
			 "daemon wrote it; not writing it again", w->size, (uint64_t)w->offset);
		return make_reply(0, &wo, sizeof(wo));
	}
	if (r == 0)
		return call_request(p, req, op, deadline, err);
	if (fatal(r)) {
		*err = r;
		return NULL;
	}
	log_warn("Cannot tell whether the dead daemon made an append of %u bytes at %" PRIu64
		 " (the file grew too far since): answering EIO", w->size, (uint64_t)w->offset);
	return make_error(-EIO);
}

/* ---- Acknowledged writes the dead daemon may not have made durable ------------------------ */

static void lose_window(struct proxy *p, struct handle *h, const char *why)
{
	pthread_mutex_lock(&p->lock);
	if (!h->write_lost) {
		handle_set_write_lost(&p->handles, h, true);
		p->lost_windows++;
	}
	pthread_mutex_unlock(&p->lock);
	log_warn("Writes acknowledged on handle %" PRIu64 " of node %" PRIu64 " may be lost (%s): "
		 "its next write, fsync or close fails with EIO", h->kfh, h->node, why);
}

/*
 * Whether @h's window (taken, at @head) holds the last changes made to its file's data through
 * the mount, one after the other: nothing else (a write through another handle, a truncate, a
 * fallocate, a copy into it) came between them or after them. Only then does sending them again
 * redo what may be missing without undoing anything newer.
 */
static bool window_is_last(struct proxy *p, const struct handle *h, struct msg *head)
{
	struct node *n;
	uint64_t v;
	bool ok = true;

	pthread_mutex_lock(&p->lock);
	n = node_get(&p->nodes, h->node);
	v = head->dver;
	for (struct msg *w = head->next; w && ok; w = w->next)
		ok = w->dver == ++v;
	ok = ok && n && n->dver == v;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

/*
 * Sends @h's write window to the new daemon again, oldest first, one at a time (overlapping
 * writes keep their order). Positioned writes are idempotent; an append is sent again only
 * where append_present() shows it is missing. The writes stay in the window: the new daemon
 * has not synced them either. Returns 0 or a fatal error (the window is kept for the next
 * daemon).
 */
static int replay_window(struct proxy *p, struct handle *h, int64_t deadline)
{
	const struct op_info *op = op_get(FUSE_WRITE);
	struct msg *head;
	bool lost, overflow;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	head = handle_take_window(&p->handles, h);
	lost = h->lost;
	overflow = handle_overflow_seq(h) != 0;
	pthread_mutex_unlock(&p->lock);
	if (!head && !overflow)
		return 0;
	if (!lost && !overflow && !window_is_last(p, h, head)) {
		/* Sent again, they would overwrite what changed the file since. */
		lose_window(p, h, "the file changed otherwise since they were written");
		lost = true;
	} else if (lost || overflow) {
		lose_window(p, h, lost ? "the file could not be opened again"
				       : "more were written than --write-window keeps");
	}
	for (struct msg *w = head; w && !lost && r == 0; w = w->next) {
		struct msg *copy, *reply;
		int err;

		/* A window may be large and the daemon slow: each write has its own time. */
		deadline = now_ms() + p->cfg->start_timeout_ms;

		restore_request(w, op);
		if (!positioned_write(p, h, w)) {
			r = append_present(p, h, w, deadline);
			if (r == 1 || r == -EIO) {
				if (r == -EIO)
					lose_window(p, h, "an append cannot be found or ruled out");
				r = 0;
				continue;
			}
			if (r < 0)
				break;
		}
		copy = msg_dup(w->data, w->len);
		if (!copy) {
			r = -ENOMEM;
			break;
		}
		pthread_mutex_lock(&p->lock);
		err = translate_request(p, copy, op);
		pthread_mutex_unlock(&p->lock);
		reply = err ? NULL : call_one(p, copy, deadline, &err);
		msg_put(copy);
		if (!reply && fatal(err)) {
			r = err;
			break;
		}
		if (!reply || reply_error(reply)) {
			char why[96];

			const struct fuse_write_in *in =
				(const void *)(w->data + sizeof(struct fuse_in_header));

			snprintf(why, sizeof(why), "writing %u bytes at %" PRIu64 " again failed: %s",
				 in->size, (uint64_t)in->offset,
				 strerror(-(reply ? reply_error(reply) : err)));
			lose_window(p, h, why);
		} else {
			p->rewritten++;
		}
		msg_put(reply);
	}
	if (lost && r == 0) {
		/* Never to be sent again: the loss is reported instead. */
		msg_put_chain(head);
		head = NULL;
	}
	pthread_mutex_lock(&p->lock);
	handle_put_window(&p->handles, h, head);
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* Sends every handle's unsynced writes to the new daemon before anything else reaches it. */
static int replay_windows(struct proxy *p, int64_t deadline)
{
	struct handle_list l = { 0 };
	int r = 0;

	pthread_mutex_lock(&p->lock);
	handle_each(&p->handles, collect_handle, &l);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < l.n && r == 0; i++)
		r = replay_window(p, l.v[i], deadline);
	free(l.v);
	return r;
}

static bool is_append_write(struct proxy *p, struct msg *req, const struct op_info *op)
{
	struct handle *h;
	bool append;

	if (op->replay != RP_WRITE)
		return false;
	pthread_mutex_lock(&p->lock);
	h = handle_get(&p->handles, req->kfh);
	append = h && !positioned_write(p, h, req);
	pthread_mutex_unlock(&p->lock);
	return append;
}

/* A read replayed on a reopened handle needs what a read from the kernel would get. */
static int settle_positioned(struct proxy *p, struct msg *req, int64_t deadline)
{
	const struct fuse_read_in *in = (const void *)(req->data + sizeof(struct fuse_in_header));
	struct handle *h;
	bool prime = false;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	h = handle_get(&p->handles, req->kfh);
	if (h && h->fresh) {
		if (in->offset == 0)
			handle_set_fresh(&p->handles, h, false);
		else
			prime = true;
	}
	pthread_mutex_unlock(&p->lock);
	if (prime) {
		r = prime_handle(p, req->kfh, deadline);
		req->primed = true;
	}
	return r;
}

/*
 * Sends a repeated request to the new daemon, with sock_lock held for reading (so that no
 * clean-up can free it meanwhile), waiting for room in the socket no longer than @deadline.
 * Returns 0 (sent, or *unsendable set: the socket can never take it), or -EPIPE, -ETIMEDOUT or
 * -ECHILD when the daemon cannot take it (the start then fails and the request waits for the
 * next daemon).
 */
static int send_repeat(struct proxy *p, uint32_t epoch, struct msg *req, int64_t deadline,
		       bool *unsendable)
{
	int r;

	for (;;) {
		r = send_held(p, epoch, req->data, req->len, MSG_DONTWAIT);
		if (r != -EAGAIN)
			break;
		r = keeper_wait(p->k, -1, MIN(deadline, now_ms() + 10));
		if (r != -ETIMEDOUT)
			return r;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
	}
	if (r < 0 && r != -EPIPE) {
		log_error("Cannot send a %u-byte replay to the daemon: %s; answering EIO", req->len,
			  strerror(-r));
		*unsendable = true;
		return 0;
	}
	return r;
}

struct req_list {
	struct msg **v;
	size_t n, cap;
};

static void collect_request(uint64_t key, void *val, void *arg)
{
	struct req_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct msg **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return; /* Left in flight: the next recovery or give-up answers it. */
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = val;
}

/*
 * The kernel's node whose ctime proves @req done (settle_tolerate(), settle_rename()): the
 * directory of a removal, the object of an attribute change, the object a rename moved (found
 * under its new name by recovery, if the dead daemon moved it). 0 for none.
 */
static uint64_t evidence_node(struct proxy *p, struct msg *req)
{
	const struct op_info *op = op_get(msg_in(req)->opcode);
	const char *names[2];
	struct node *n;
	uint64_t kid = 0;

	if (op->replay == RP_TOLERATE)
		return req->knode;
	if (op->replay != RP_RENAME || request_names(req, op, names) < 0)
		return 0;
	pthread_mutex_lock(&p->lock);
	n = node_find(&p->nodes, req->knode2, names[1]);
	if (n && !n->lost)
		kid = n->kid;
	pthread_mutex_unlock(&p->lock);
	return kid;
}

/* Reads @req's evidence (req->before) if it has any and it was not read yet. Returns 0 or a
 * fatal error. */
static int read_evidence(struct proxy *p, struct msg *req, int64_t deadline)
{
	uint64_t kid;
	struct fuse_attr a;
	int r;

	if (req->before || !(kid = evidence_node(p, req)))
		return 0;
	r = getattr_node(p, kid, &a, deadline);
	if (r == 0) {
		req->before = malloc(sizeof(a));
		if (req->before)
			*req->before = a;
	}
	return fatal(r) ? r : 0;
}

/*
 * A settle rule's proof is a ctime, which anything replayed into the same object or directory
 * moves past the death: the write windows, the other settles. So every such request's evidence
 * is read once, before anything is sent again. Returns 0 or a fatal error.
 */
static int note_evidence(struct proxy *p, int64_t deadline)
{
	struct req_list l = { 0 };
	int r = 0;

	pthread_mutex_lock(&p->lock);
	idmap_each(&p->inflight, collect_request, &l);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < l.n && r == 0; i++)
		r = read_evidence(p, l.v[i], deadline);
	free(l.v);
	return r;
}

/* The settle rule of a creating, removing or renaming request (op_info.replay). */
static struct msg *settle_by_rule(struct proxy *p, struct msg *req, const struct op_info *op,
				  int64_t deadline, int *err)
{
	if (op->replay == RP_EXISTS)
		return settle_exists(p, req, op, deadline, err);
	if (op->replay == RP_TOLERATE)
		return settle_tolerate(p, req, op, deadline, err);
	return settle_rename(p, req, op, deadline, err);
}

/*
 * Why a request a SIGKILLed keeper had read (msg.resent) gets EIO where one a dead daemon held
 * would not, or NULL. The journal has less than the keeper had in memory: the other requests
 * its daemon held, the changes of replies that came after its last flush.
 */
static const char *resent_refusal(struct proxy *p, struct msg *req, const struct op_info *op,
				  enum op_repeat rep)
{
	uint32_t opcode = msg_in(req)->opcode;

	if (!req->death_ns && (op->replay != RP_SAFE || rep != REPEAT_AS_ONCE || op->dchange ||
			       op->ctime_of || op->effect == EFF_RENAME))
		return "the killed keeper's daemon may still run";
	if (rep == REPEAT_IF_UNCHANGED && opcode == FUSE_OPEN)
		/* Nothing locks the file while an OPEN truncates it, and a write's change
		 * reaches the journal at its next flush, maybe after the kernel heard of it. (A
		 * SETATTR or FALLOCATE holds the inode, and was sent after the file's writes.) */
		return "a write acknowledged just before the keeper died may be missing from its "
		       "journal";
	if (op->replay == RP_TOLERATE && op->effect != EFF_UNLINK)
		/* Its proof needs every other request that may have changed the object. */
		return "the requests that may have changed the object meanwhile are not known";
	if (op->replay == RP_WRITE && is_append_write(p, req, op))
		return "an append's bytes may be written twice";
	return NULL;
}

/*
 * Under the lock, as the relay resumes: what the recovery restored and lost, counted and logged
 * before first uses and the background walk (which may start at once) change the counts.
 */
static void note_recovered(struct proxy *p)
{
	uint64_t gone = p->lost_nodes + p->lazy_left;

	p->rec_lost_nodes = p->lost_nodes;
	p->rec_nodes = p->nodes.count - 1 > gone ? p->nodes.count - 1 - gone : 0;
	p->rec_handles = p->handles.by_kfh.count - p->lost_handles;
	p->lazy_since_ms = now_ms(); /* the walk's end is logged from here */
	p->lazy_reexec = false;
	/* The INIT answer ends the daemon's own start-up; what follows is the keeper's. */
	log_info("Recovered: %" PRIu64 " nodes and %" PRIu64 " handles restored (%" PRIu64
		 " nodes and %" PRIu64 " handles lost; %" PRIu64 " nodes left to look up on first"
		 " use and in the background), %" PRIu64 " requests replayed, %" PRIu64
		 " settled, %" PRIu64 " unsynced writes sent again (%" PRIu64 " handles with"
		 " lost writes); the daemon answered INIT %" PRId64 " ms after it was given the"
		 " channel, the rest took %" PRId64 " ms", p->rec_nodes, p->rec_handles,
		 p->rec_lost_nodes, p->lost_handles, p->lazy_left, p->replayed, p->settled,
		 p->rewritten, p->lost_windows, p->rec_init_ms - p->attach_ms,
		 p->lazy_since_ms - p->rec_init_ms);
}

/*
 * Settles every request the dead daemon left unanswered. The ones that need a decision are
 * settled here, one by one; the rest are sent again as they were, at the moment the relay
 * resumes, so that nothing the kernel sends meanwhile overtakes them.
 */
static int replay_requests(struct proxy *p, int64_t deadline)
{
	struct req_list l = { 0 }, resend = { 0 };
	int r = 0;

	pthread_mutex_lock(&p->lock);
	idmap_each(&p->inflight, collect_request, &l);
	pthread_mutex_unlock(&p->lock);

	for (size_t i = 0; i < l.n && r == 0; i++) {
		struct msg *req = l.v[i], *reply = NULL;
		const struct op_info *op = op_get(msg_in(req)->opcode);
		uint64_t unique = msg_in(req)->unique;
		const char *why;
		enum op_repeat rep;

		restore_request(req, op);
		req->replayed = true;
		/* held: the daemon it was given to, which died; 0 once counted. */
		if (req->held)
			req->deaths++;
		req->held = req->epoch = 0;
		if (op->wwin) {
			/* Writes through this handle were lost (replay_windows()): a write or sync
			 * left in flight must report it, not succeed on the new daemon. */
			pthread_mutex_lock(&p->lock);
			int lost = window_check(p, req, op);
			pthread_mutex_unlock(&p->lock);

			if (lost < 0) {
				take_request(p, req);
				reply_kernel_err(p, unique, lost);
				msg_put(req);
				p->settled++;
				continue;
			}
		}
		if (req->deaths >= MAX_DEATHS) {
			take_request(p, req);
			log_error("%s (unique %" PRIu64 ", node %" PRIu64 ") was held by %d daemons "
				  "that died: answering EIO instead of sending it again", op->name,
				  unique, req->knode, MAX_DEATHS);
			reply_kernel_err(p, unique, -EIO);
			msg_put(req);
			p->settled++;
			continue;
		}
		rep = op_repeat_of(msg_in(req)->opcode, req->data + sizeof(struct fuse_in_header));
		if (req->resent && (why = resent_refusal(p, req, op, rep))) {
			take_request(p, req);
			log_warn("%s (unique %#" PRIx64 ") was read by the killed keeper, whose daemon "
				 "may have done it, and %s: answering EIO", op->name, unique, why);
			reply_kernel_err(p, unique, -EIO);
			msg_put(req);
			p->settled++;
			continue;
		}
		if (op->replay == RP_FAIL || rep == REPEAT_NEVER ||
		    (rep == REPEAT_IF_UNCHANGED &&
		     changed_since(p, req->knode, req->sent_ns, req))) {
			take_request(p, req);
			log_warn("Cannot tell whether the dead daemon did %s (unique %" PRIu64 "), "
				 "and repeating it is unsafe%s: answering EIO", op->name, unique,
				 rep == REPEAT_NEVER	     ? " (it would be done twice)"
				 : rep == REPEAT_IF_UNCHANGED ? " (the file changed since it was sent)"
							      : "");
			reply_kernel_err(p, unique, -EIO);
			msg_put(req);
			p->settled++;
			continue;
		}
		if (op->replay == RP_EXISTS || op->replay == RP_TOLERATE || op->replay == RP_RENAME)
			reply = settle_by_rule(p, req, op, deadline, &r);
		else if (is_append_write(p, req, op))
			reply = settle_append(p, req, op, deadline, &r);
		else {
			if (op->positioned) {
				r = settle_positioned(p, req, deadline);
				if (r < 0)
					continue; /* the loop ends: the daemon is gone */
			}
			collect_request(0, req, &resend);
			continue;
		}
		if (!reply) {
			if (r == -ESTALE || r == -EIO) {
				/* Its node or handle is lost: answer now instead of failing the start. */
				take_request(p, req);
				reply_kernel_err(p, unique, r);
				msg_put(req);
				r = 0;
			}
			continue;
		}
		take_request(p, req);
		if (finish_reply(p, req, reply) == -EPROTO)
			r = -EPROTO;
		msg_put(reply);
		p->settled++;
	}
	free(l.v);
	if (r < 0) {
		free(resend.v);
		return r;
	}

	/*
	 * Resume the relay. The plain repeats are translated under the lock and sent before the
	 * relay is let go, so they reach the new daemon before anything newer; the lock is not
	 * held while sending (the daemon's replies need it), and a send is bounded by the
	 * recovery's deadline. A repeat whose node or handle was lost is answered with that
	 * error instead. Once sent, a request belongs to the reply path: not touched again here.
	 */
	struct req_list failed = { 0 };
	int *errs = calloc(resend.n ? resend.n : 1, sizeof(*errs));
	uint64_t *unsent = calloc(resend.n ? resend.n : 1, sizeof(*unsent));
	uint32_t epoch = p->nodes.epoch;
	size_t nunsent = 0;

	if (!errs || !unsent) {
		free(errs);
		free(unsent);
		free(resend.v);
		return -ENOMEM;
	}
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < resend.n; i++) {
		struct msg *req = resend.v[i];
		const struct op_info *op = op_get(msg_in(req)->opcode);
		int e = translate_request(p, req, op);

		if (e < 0) {
			idmap_del(&p->inflight, msg_in(req)->unique);
			errs[failed.n] = untranslatable(p, req, op, e);
			collect_request(0, req, &failed);
			resend.v[i] = NULL;
			continue;
		}
		req->epoch = req->held = epoch;
	}
	/*
	 * From here until every repeat is sent the socket is held, as the relay holds it for one
	 * request: whoever frees a request without an answer (a broken daemon's clean-up, which
	 * can come as soon as the first repeat reaches the new daemon) takes it for writing first.
	 */
	pthread_rwlock_rdlock(&p->sock_lock);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < failed.n; i++) {
		reply_kernel_err(p, msg_in(failed.v[i])->unique, errs[i]);
		msg_put(failed.v[i]);
	}
	for (size_t i = 0; i < resend.n && r == 0; i++) {
		bool unsendable = false;

		if (!resend.v[i])
			continue;
		r = send_repeat(p, epoch, resend.v[i], deadline, &unsendable);
		p->replayed += r == 0 && !unsendable;
		/* Answered once the socket is let go, if still ours then. */
		if (unsendable)
			unsent[nunsent++] = msg_in(resend.v[i])->unique;
	}
	pthread_rwlock_unlock(&p->sock_lock);
	for (size_t i = 0; i < nunsent; i++) {
		uint64_t unique = unsent[i];
		struct msg *gone;

		pthread_mutex_lock(&p->lock);
		gone = idmap_get(&p->inflight, unique);
		if (gone && gone->epoch == epoch)
			idmap_del(&p->inflight, unique);
		else
			gone = NULL; /* answered meanwhile by a clean-up */
		pthread_mutex_unlock(&p->lock);
		if (gone) {
			reply_kernel_err(p, unique, -EIO);
			msg_put(gone);
		}
	}
	free(errs);
	free(unsent);
	free(failed.v);
	free(resend.v);
	if (r < 0)
		return r; /* The daemon is going: what was not sent waits for the next. */
	pthread_mutex_lock(&p->lock);
	note_recovered(p);
	p->state = PX_UP;
	p->up_ms = now_coarse_ms();
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int recover(struct proxy *p)
{
	int64_t deadline = now_ms() + p->cfg->start_timeout_ms;
	int r;

	p->replayed = p->settled = p->lost_nodes = p->lost_handles = 0;
	p->rewritten = p->lost_windows = 0;
	r = recover_init(p, deadline);
	p->rec_init_ms = now_ms();
	if (r == 0) {
		/* From here on the requests in flight are this recovery's to settle (give_up()). */
		pthread_mutex_lock(&p->lock);
		p->settling = true;
		pthread_mutex_unlock(&p->lock);
		r = p->lazy ? resolve_needed(p, deadline) : resolve_nodes(p, deadline);
	}
	if (r == 0)
		hide_recover(p);
	if (r == 0)
		r = reopen_handles(p, deadline);
	/* Before anything is sent again: a waiting SETLKW must find the locks it waited for. */
	if (r == 0)
		r = locks_take_again(p);
	if (r == 0)
		r = note_evidence(p, deadline);
	if (r == 0)
		r = replay_windows(p, deadline);
	/* Sending the windows again is bounded per write; what follows gets the full time. */
	deadline = MAX(deadline, now_ms() + p->cfg->start_timeout_ms);
	if (r == 0)
		r = replay_requests(p, deadline);
	if (r == -ETIMEDOUT)
		log_error("The new daemon did not finish taking over in time");
	return r;
}
