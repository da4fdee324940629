/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Files removed while open: what the relay and recovery do with hidden names — hiding a removal,
 * removing a hidden name after its file's last close, keeping them out of replies, removing what
 * a killed keeper left (hide.h has the idea, docs/design.md the rules, hidden.c the journal).
 */
#include "hide.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calls.h"
#include "channel.h"
#include "hidden.h"
#include "log.h"
#include "resume.h"
#include "proxy_i.h"
#include "translate.h"
#include "util.h"

/* ---- Hiding a removal ---------------------------------------------------------------------- */

int hide_start(struct proxy *p)
{
	struct hide_state *s = &p->hide;
	int r;

	s->journal_fd = -1;
	s->off = !p->cfg->keep_removed;
	if (s->off)
		return 0;
	if (getrandom(&s->seed, sizeof(s->seed), 0) != sizeof(s->seed))
		s->seed = ((uint64_t)getpid() << 32) ^ (uint64_t)realtime_ns();
	r = hide_journal_open(s, p->cfg->state_dir, p->cfg->mountpoint);
	if (r == -EBUSY)
		log_warn("Another fusekeeper runs on %s and holds its journal in %s: this one keeps "
			 "files removed while open without a journal, and leaves that one's alone",
			 p->cfg->mountpoint, p->cfg->state_dir);
	else if (r == -EPERM)
		log_warn("%s must be a directory of this user's that no one else can write to: no "
			 "journal of hidden names is kept there, so a killed keeper leaves them "
			 "behind", p->cfg->state_dir);
	else if (r < 0)
		log_warn("Cannot keep a journal of hidden names in %s: %s; files removed while open "
			 "are still kept, but a killed keeper leaves their names behind",
			 p->cfg->state_dir, strerror(-r));
	return 0;
}

/*
 * How many of @n's names are the keeper's hidden ones: only those the daemon made (links the
 * file has in the store) unless @maybe, when those it may not have made yet count too.
 */
static uint32_t hidden_names(const struct node *n, bool maybe)
{
	uint32_t count = 0;

	for (const struct node_name *nm = n->names; nm; nm = nm->next)
		count += (maybe || !nm->unconfirmed) && hide_is_hidden(nm->name, strlen(nm->name));
	return count;
}

/*
 * The name a request removes (an UNLINK's, or the one a RENAME replaces) if it is the last name
 * the keeper knows of a regular file the kernel holds open, else NULL. Under the lock.
 */
static struct node_name *removed_open(struct proxy *p, struct msg *m, const char *names[2])
{
	struct fuse_in_header *h = msg_in(m);
	const void *b = m->data + sizeof(*h);
	struct node_name *nm;
	struct node *n;

	if (h->opcode == FUSE_UNLINK) {
		nm = node_find_name(&p->nodes, h->nodeid, names[0]);
	} else {
		/* RENAME_NOREPLACE replaces nothing; RENAME_EXCHANGE keeps both. */
		if (p->hide.no_link ||
		    (h->opcode == FUSE_RENAME2 && ((const struct fuse_rename2_in *)b)->flags))
			return NULL;
		nm = node_find_name(&p->nodes, ((const struct fuse_rename_in *)b)->newdir,
				    names[1]);
		if (nm && node_find(&p->nodes, h->nodeid, names[0]) == nm->node)
			return NULL; /* two names of one file: rename(2) does nothing */
	}
	if (!nm)
		return NULL;
	n = nm->node;
	if (n->type != S_IFREG || !n->opened || n->lost || n->nnames - hidden_names(n, true) > 1)
		return NULL;
	return nm;
}

/*
 * The keeper's request that gives the file @n, named @name in the kernel's directory @dir, the
 * hidden name @hidden there. For an UNLINK a RENAME, as @h's caller (who may remove the name):
 * the UNLINK is then done. For a RENAME over the file a LINK, as the keeper (the name is its
 * own): the file keeps its name until the daemon's own rename replaces it, atomically, and
 * keeps it if the daemon refuses that rename.
 */
static struct msg *hide_request(struct proxy *p, const struct fuse_in_header *h, struct node *n,
				uint64_t dir, const char *name, const char *hidden)
{
	size_t namelen = strlen(name) + 1;
	char arg[sizeof(struct fuse_rename_in) + 1025];
	struct msg *req;
	uint64_t did;

	if (namelen > 1025 || node_to_daemon(&p->nodes, dir, &did) < 0)
		return NULL;
	if (h->opcode != FUSE_UNLINK) {
		struct fuse_link_in in = { 0 };

		if (node_to_daemon(&p->nodes, n->kid, &in.oldnodeid) < 0)
			return NULL;
		return make_request(FUSE_LINK, did, &in, sizeof(in), hidden);
	}
	memset(arg, 0, sizeof(struct fuse_rename_in));
	((struct fuse_rename_in *)arg)->newdir = did;
	memcpy(arg + sizeof(struct fuse_rename_in), name, namelen);
	req = make_request(FUSE_RENAME, did, arg, sizeof(struct fuse_rename_in) + namelen, hidden);
	if (req) {
		msg_in(req)->uid = h->uid;
		msg_in(req)->gid = h->gid;
		msg_in(req)->pid = h->pid;
	}
	return req;
}

/* Undoes the bookkeeping of a hidden name the daemon did not make. Under the lock. */
static void hide_undo(struct proxy *p, uint64_t dir, const char *hidden)
{
	struct node_name *nm = node_find_name(&p->nodes, dir, hidden);

	if (nm) {
		node_drop_name(&p->nodes, nm);
		p->hide.live--;
	}
	hide_journal(&p->hide, false, hidden);
}

static void bury(struct proxy *p, struct node *n, struct node_name *nm);

/*
 * The keeper's request that makes the hidden name @hidden in @dir has an outcome now (or never
 * will have one): from here on a last close may remove the name. Returns the name, if the node
 * table still has it. Under the lock.
 */
static struct node_name *hide_settled(struct proxy *p, uint64_t dir, const char *hidden)
{
	struct node_name *nm = node_find_name(&p->nodes, dir, hidden);

	if (nm) {
		nm->hiding = false;
		node_changed(&p->nodes, nm->node);
	}
	return nm;
}

/*
 * The daemon may have made @n's hidden name @hidden in @dir, or may still make it (no answer in
 * time, or no daemon any more): the name stays for recovery, and goes at the last close, which
 * may have come meanwhile. Under the lock.
 */
static void hide_unknown(struct proxy *p, struct node *n, uint64_t dir, const char *hidden)
{
	struct node_name *nm = hide_settled(p, dir, hidden);

	if (!nm)
		hide_journal(&p->hide, false, hidden); /* recovery found no such name */
	else if (nm->node == n && !n->opened)
		bury(p, n, nm);
}

/*
 * The daemon gave @n the hidden name @hidden in @dir; an UNLINK's (@unlink) rename took its
 * name @name, which goes. Under the lock.
 */
static void hide_done(struct proxy *p, struct node *n, uint64_t dir, const char *name,
		      const char *hidden, bool unlink, const char *path)
{
	struct node_name *nm = node_find_name(&p->nodes, dir, hidden);
	struct node *d = node_get(&p->nodes, dir);

	if (nm)
		nm->unconfirmed = false;
	node_changed(&p->nodes, n);
	if (unlink)
		node_unlink(&p->nodes, dir, name);
	if (!n->opened) {
		/*
		 * Closed while the daemon hid it: the last RELEASE found the name not made yet
		 * (its removal may have come first, and failed). It goes now.
		 */
		if (!nm && node_add_name(&p->nodes, n, dir, hidden) == 0) {
			p->hide.live++;
			nm = node_find_name(&p->nodes, dir, hidden);
		}
		if (nm)
			bury(p, n, nm);
	}
	/* Ctimes moved: a settle rule must not take that for another request's work. */
	n->changed_ns = realtime_ns();
	if (d) {
		d->changed_ns = n->changed_ns;
		node_changed(&p->nodes, d);
	}
	log_debug("Node %" PRIu64 " is %s while open: kept as %s until its last close", n->kid,
		  unlink ? "removed" : "renamed over", path);
}

/*
 * Sends @req, the keeper's request that hides a file, from the relay: the lock is let go while
 * it waits (at most --start-timeout). Returns the daemon's answer (0 or -errno), -ETIMEDOUT,
 * or -EPIPE when the daemon went without answering.
 */
static int hide_call(struct proxy *p, struct msg *req)
{
	int64_t deadline = now_ms() + p->cfg->start_timeout_ms;
	struct timespec ts = deadline_ts(p->cfg->start_timeout_ms);
	struct call c;
	int err;

	pthread_mutex_unlock(&p->lock);
	err = call_start(p, &c, req);
	pthread_mutex_lock(&p->lock);
	/* A drain holds new requests, not the daemon's answers: it still answers this one. */
	if (err == 0)
		while (!c.done && daemon_answers(p) && now_ms() < deadline)
			if (pthread_cond_timedwait(&p->changed, &p->lock, &ts) == ETIMEDOUT)
				break;
	if (c.done && c.reply) {
		err = msg_out(c.reply)->error;
		/* A LINK's answer is a lookup the kernel never sees: given back. */
		if (!err && msg_in(req)->opcode == FUSE_LINK &&
		    c.reply->len >= sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out))
			forget_in_daemon(p, p->nodes.epoch,
					 ((struct fuse_entry_out *)(c.reply->data +
						sizeof(struct fuse_out_header)))->nodeid, 1);
	} else if (daemon_answers(p) && now_ms() >= deadline && err != -EPIPE) {
		err = -ETIMEDOUT;
	} else {
		err = -EPIPE;
	}
	pthread_mutex_unlock(&p->lock);
	calls_drop(p, &c, 1);
	pthread_mutex_lock(&p->lock);
	return err;
}

int hide_removal(struct proxy *p, struct msg *m, const struct op_info *op)
{
	struct fuse_in_header *h = msg_in(m);
	bool unlink = h->opcode == FUSE_UNLINK;
	const char *names[2];
	char hidden[HIDE_NAME_SIZE], name[1025], path[4096];
	uint64_t dir;
	uint32_t epoch;
	struct node *n;
	struct node_name *nm;
	struct msg *req;
	int err, len;

	if (request_names(m, op, names) < 0)
		return 0;
	for (int tries = 0; tries < 2; tries++) {
		nm = removed_open(p, m, names);
		if (!nm || strlen(nm->name) >= sizeof(name))
			return 0;
		n = nm->node;
		dir = nm->parent;
		strcpy(name, nm->name);
		len = node_path(&p->nodes, dir, path, sizeof(path) - HIDE_NAME_SIZE - 1);
		if (len < 0) {
			log_debug("Node %" PRIu64 " is removed while open, but its directory's path "
				  "is unknown: it is not kept", n->kid);
			return 0;
		}
		/* A second try after a death asks for the same name: a LINK then answers
		 * EEXIST if the dead daemon made it (the names are unique). */
		if (!tries)
			p->hide.counter++;
		snprintf(hidden, sizeof(hidden), HIDE_PREFIX "%016" PRIx64,
			 (uint64_t)(p->hide.seed + p->hide.counter * 0x9e3779b97f4a7c15ULL));
		snprintf(path + len, sizeof(path) - len, "%s%s", len ? "/" : "", hidden);
		req = hide_request(p, h, n, dir, name, hidden);
		/*
		 * Added as its least recent name, not yet confirmed: after a death, recovery looks
		 * the file up by its old name first, so a rename not done shows as that name
		 * found; and the name is not counted as a link until the daemon made it.
		 */
		if (!req || node_add_name(&p->nodes, n, dir, hidden) < 0) {
			msg_put(req);
			return 0;
		}
		nm = node_find_name(&p->nodes, dir, hidden);
		nm->unconfirmed = true;
		/*
		 * Until the request's outcome is known, a last close that comes meanwhile (the
		 * answer to a RELEASE the daemon had before this UNLINK) leaves the name alone:
		 * should the daemon die, recovery finds the file by it if the rename was made.
		 */
		nm->hiding = true;
		node_changed(&p->nodes, n);
		p->hide.live++;
		hide_journal(&p->hide, true, path);
		/* The journal first: once the daemon is asked, the file may be only there. */
		resume_flush(p);
		epoch = p->nodes.epoch;
		p->hide.hiding_node = n->kid;
		err = hide_call(p, req);
		/* After a death, kept until the recovery found the file (below). */
		if (err != -EPIPE)
			p->hide.hiding_node = 0;
		msg_put(req);
		if (err != -EPIPE)
			hide_settled(p, dir, hidden);
		if (err == 0 || (err == -EEXIST && !unlink && tries)) {
			hide_done(p, n, dir, name, hidden, unlink, path);
			return unlink;
		}
		if (err == -ETIMEDOUT) {
			/* It may still do it: the name stays, unconfirmed, for recovery and for
			 * removal at the last close. */
			log_error("The daemon did not answer the keeper's %s of a file %s while open "
				  "within %" PRId64 " ms: answering EIO", unlink ? "rename" : "link",
				  unlink ? "removed" : "renamed over", p->cfg->start_timeout_ms);
			hide_unknown(p, n, dir, hidden);
			return -EIO;
		}
		if (err != -EPIPE) {
			hide_undo(p, dir, hidden);
			if (err == -ENOSYS && unlink) {
				p->hide.off = true;
				log_warn("The daemon cannot rename files: files removed while open are "
					 "removed as asked, and their fds do not survive a restart");
			} else if (err == -ENOSYS || err == -EOPNOTSUPP) {
				p->hide.no_link = true;
				log_warn("The daemon cannot make hard links (%s): files renamed over "
					 "while open are replaced as asked, and their fds do not survive "
					 "a restart", strerror(-err));
			} else {
				log_info("Cannot keep node %" PRIu64 ", %s while open, under a hidden "
					 "name: %s; %s as asked, and its fds do not survive a restart",
					 n->kid, unlink ? "removed" : "renamed over", strerror(-err),
					 unlink ? "it is removed" : "it is replaced");
			}
			return 0;
		}
		/*
		 * The daemon died (or its socket broke, and it is about to be killed): once
		 * another took over, the node table says what it did.
		 */
		while ((p->state == PX_UP && p->nodes.epoch == epoch) || p->state == PX_WAIT)
			pthread_cond_wait(&p->changed, &p->lock);
		p->hide.hiding_node = 0;
		if (p->state == PX_FAILED) {
			hide_unknown(p, n, dir, hidden); /* as for a timeout */
			return -EIO;
		}
		hide_settled(p, dir, hidden);
		if (n->lost) {
			hide_undo(p, dir, hidden);
			return 0;
		}
		if (!unlink && !n->opened) {
			/* Closed meanwhile: nothing to keep, but the dead daemon may have made
			 * the link. */
			hide_unknown(p, n, dir, hidden);
			return 0;
		}
		if (!unlink) {
			/* A LINK leaves both names: asked again below. */
			hide_undo(p, dir, hidden);
			continue;
		}
		nm = node_find_name(&p->nodes, dir, name);
		if (nm && nm->node == n) {
			/* Found by its old name: not done. */
			hide_undo(p, dir, hidden);
			continue;
		}
		nm = node_find_name(&p->nodes, dir, hidden);
		if (nm && nm->node == n) {
			hide_done(p, n, dir, name, hidden, true, path);
			return 1;
		}
		return 0;
	}
	return 0;
}

void hide_rename_failed(struct proxy *p, struct msg *req, const struct op_info *op)
{
	const char *names[2];
	struct node *n;
	struct node_name *nm, *next;

	/* A RENAME over a held file failed: the hidden link made for it is not needed. */
	if (request_names(req, op, names) < 0 || !names[1])
		return;
	pthread_mutex_lock(&p->lock);
	n = node_find(&p->nodes, req->knode2, names[1]);
	if (n && n->nnames > hidden_names(n, true)) {
		for (nm = n->names; nm; nm = next) {
			next = nm->next;
			/* A name another removal is making is that removal's to settle. */
			if (hide_is_hidden(nm->name, strlen(nm->name)) && !nm->hiding)
				bury(p, n, nm);
		}
	}
	pthread_mutex_unlock(&p->lock);
}

int hide_check_names(struct proxy *p, struct msg *m, const struct op_info *op)
{
	const char *names[2];

	if (!op->entry_names || request_names(m, op, names) < 0)
		return 0;
	/* Renaming onto a hidden name, or making one, is refused; the rest do not find it. */
	if (op->entry_names > 1 && hide_is_hidden(names[1], strlen(names[1])))
		return -EPERM;
	if (!hide_is_hidden(names[0], strlen(names[0])))
		return 0;
	return op->replay == RP_EXISTS ? -EPERM : -ENOENT;
}

/* ---- Removing hidden names --------------------------------------------------------------- */

/*
 * Sends @g's next request: a LOOKUP of its name (@g->did 0) or the UNLINK of it. Under the lock:
 * never waits for a daemon that is not reading. Returns 0, or -errno with nothing in flight.
 */
static int grave_step(struct proxy *p, struct grave *g)
{
	uint32_t opcode = g->did ? FUSE_UNLINK : FUSE_LOOKUP;
	struct msg *req;
	uint64_t did;
	int r;

	g->unique = 0;
	r = node_to_daemon(&p->nodes, g->parent, &did);
	if (r < 0)
		return r;
	req = make_request(opcode, did, NULL, 0, g->name);
	if (!req)
		return -ENOMEM;
	g->unique = CALL_BIT | ORPHAN_BIT | (p->next_call++ << 1);
	msg_in(req)->unique = g->unique;
	trace_request("keeper", req);
	r = send_to_daemon(p, p->nodes.epoch, req->data, req->len, MSG_DONTWAIT);
	if (r < 0)
		g->unique = 0;
	msg_put(req);
	return r < 0 ? r : 0;
}

/*
 * Asks the daemon to remove @g's name, if it knows the directory now (else after the next
 * recovery), starting with its LOOKUP: this daemon may never have been told of the file.
 * Under the lock.
 */
static void grave_send(struct proxy *p, struct grave *g)
{
	g->did = 0;
	grave_step(p, g);
}

/*
 * @n's hidden name @nm is to go: it becomes a grave (its directory pinned) and the daemon is
 * asked to remove it. Under the lock.
 */
static void bury(struct proxy *p, struct node *n, struct node_name *nm)
{
	struct grave *g;

	if (p->hide.ngraves >= HIDE_GRAVES_MAX) {
		if (overflow_log_due(&p->hide.graves_full))
			log_warn("%d hidden names wait for the daemon to remove them: %s of node %"
				 PRIu64 " stays in the store until the keeper starts again (%" PRIu64
				 " so far)", HIDE_GRAVES_MAX, nm->name, n->kid, p->hide.graves_full);
		return;
	}
	g = calloc(1, sizeof(*g));
	if (!g || strlen(nm->name) >= sizeof(g->name) || node_pin(&p->nodes, nm->parent) < 0) {
		log_warn("Out of memory: the hidden name %s of node %" PRIu64 " stays in the store "
			 "until the keeper starts again", nm->name, n->kid);
		free(g);
		return;
	}
	g->parent = nm->parent;
	strcpy(g->name, nm->name);
	g->next = p->hide.graves;
	p->hide.graves = g;
	p->hide.ngraves++;
	node_drop_name(&p->nodes, nm);
	p->hide.live--;
	grave_send(p, g);
}

void hide_released(struct proxy *p, struct node *n)
{
	struct node_name *nm, *next;

	for (nm = n->names; nm; nm = next) {
		next = nm->next;
		/*
		 * A name whose request is unanswered stays: removing it now would race the
		 * request in the daemon, and if the daemon died, recovery would not know the
		 * name the file may be under. hide_removal() buries it once the outcome is known.
		 */
		if (hide_is_hidden(nm->name, strlen(nm->name)) && !nm->hiding)
			bury(p, n, nm);
	}
}

int hide_call_reply(struct proxy *p, struct msg *m)
{
	const struct fuse_out_header *out = msg_out(m);
	size_t out_len = m->len - sizeof(*out);
	struct grave **gp, *g = NULL;
	int error = out->error, r = 0;
	uint64_t did;

	pthread_mutex_lock(&p->lock);
	for (gp = &p->hide.graves; *gp; gp = &(*gp)->next) {
		if ((*gp)->unique == out->unique) {
			g = *gp;
			break;
		}
	}
	if (g && !g->did) {
		/* The LOOKUP's answer. The node ID leads struct fuse_entry_out. */
		if (!error && out_len < sizeof(did)) {
			log_error("The daemon answered the keeper's LOOKUP of the hidden name %s with "
				  "%zu bytes, too few for a node ID", g->name, out_len);
			g->unique = 0;
			g = NULL;
			r = -EPROTO;
		} else if (!error) {
			memcpy(&did, out + 1, sizeof(did));
			/* Node ID 0 is a negative entry: as ENOENT. */
			error = did ? 0 : -ENOENT;
			g->did = did;
		}
		if (g && !error) {
			/*
			 * Not sent: asked again after the daemon's next restart. A daemon still
			 * there (a full socket, no memory) gets its lookup back.
			 */
			int sent = grave_step(p, g);

			if (sent < 0 && sent != -EPIPE)
				forget_in_daemon(p, p->nodes.epoch, g->did, 1);
			if (sent < 0)
				g->did = 0;
			g = NULL;
		}
	} else if (g) {
		/* The UNLINK's answer: the lookup it was made under is forgotten either way. */
		forget_in_daemon(p, p->nodes.epoch, g->did, 1);
		g->did = 0;
	}
	if (g && (error == 0 || error == -ENOENT)) {
		*gp = g->next;
		p->hide.ngraves--;
		hide_journal(&p->hide, false, g->name);
		node_unpin(&p->nodes, g->parent);
	} else if (g) {
		/* Kept: tried again after the daemon's next restart, and listed for the next
		 * keeper meanwhile. */
		g->unique = 0;
		log_warn("The daemon could not remove the hidden name %s in node %" PRIu64 ": %s; "
			 "it is tried again after the daemon's next restart, and by the next keeper",
			 g->name, g->parent, strerror(-error));
		g = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	free(g);
	return r;
}

void hide_recover(struct proxy *p)
{
	pthread_mutex_lock(&p->lock);
	for (struct grave *g = p->hide.graves; g; g = g->next)
		grave_send(p, g);
	pthread_mutex_unlock(&p->lock);
}

/* ---- Replies -------------------------------------------------------------------------------- */

int hide_filter_dir(struct proxy *p, struct msg *req, struct msg *reply)
{
	bool plus = msg_in(req)->opcode == FUSE_READDIRPLUS;
	char *buf = reply->data + sizeof(struct fuse_out_header);
	size_t len = reply->len - sizeof(struct fuse_out_header), in = 0, out = 0;
	size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
	uint64_t next_off = 0, kept = 0, dropped = 0;
	struct fuse_read_in *rin;
	uint64_t unique;
	int r;

	while (len - in >= head) {
		struct fuse_direntplus *dp = (struct fuse_direntplus *)(buf + in);
		struct fuse_dirent *d = plus ? &dp->dirent : (struct fuse_dirent *)(buf + in);
		size_t rec = plus ? FUSE_DIRENTPLUS_SIZE(dp) : FUSE_DIRENT_SIZE(d);

		if (rec > len - in || !d->namelen)
			break; /* Malformed: the checks that follow refuse it. */
		next_off = d->off;
		if (hide_is_hidden(d->name, d->namelen)) {
			/* READDIRPLUS gave a lookup the kernel will not take: give it back. */
			if (plus && dp->entry_out.nodeid) {
				pthread_mutex_lock(&p->lock);
				forget_in_daemon(p, req->epoch, dp->entry_out.nodeid, 1);
				pthread_mutex_unlock(&p->lock);
			}
			dropped++;
		} else {
			if (out != in)
				memmove(buf + out, buf + in, rec);
			out += rec;
			kept++;
		}
		in += rec;
	}
	if (!dropped)
		return 0;
	memmove(buf + out, buf + in, len - in);
	reply->len -= in - out;
	msg_out(reply)->len = reply->len;
	if (kept)
		return 0;
	/*
	 * Only hidden names: an empty answer would end the listing; ask again past them, for as
	 * long as the daemon's offsets move on (a daemon that repeats itself gets EIO: better
	 * an error than a listing cut short).
	 */
	rin = (struct fuse_read_in *)(req->data + sizeof(struct fuse_in_header));
	if (next_off == rin->offset || req->resends == UINT32_MAX) {
		log_error("The daemon's listing of node %" PRIu64 " does not move past offset %"
			  PRIu64 " while it lists only hidden names: answering EIO", req->knode,
			  next_off);
		r = -EIO;
		goto fail;
	}
	rin->offset = next_off;
	req->resends++;
	unique = msg_in(req)->unique;
	pthread_mutex_lock(&p->lock);
	r = idmap_put(&p->inflight, unique, req);
	pthread_mutex_unlock(&p->lock);
	if (r == 0)
		r = send_to_daemon(p, req->epoch, req->data, req->len, MSG_DONTWAIT);
	if (r == 0 || r == -EPIPE)
		return 1; /* -EPIPE: the daemon is going; its successor gets it. */
	pthread_mutex_lock(&p->lock);
	if (idmap_get(&p->inflight, unique) == req)
		idmap_del(&p->inflight, unique);
	pthread_mutex_unlock(&p->lock);
fail:
	/* The reply, now empty, says "end of listing": better an error than that. */
	msg_out(reply)->error = -EIO;
	reply->len = msg_out(reply)->len = sizeof(struct fuse_out_header);
	return 0;
}

void hide_fix_entry(struct proxy *p, struct node *n, struct fuse_attr *a)
{
	uint32_t h = hidden_names(n, false);

	a->nlink = a->nlink > h ? a->nlink - h : 0;
}

void hide_fix_attr(struct proxy *p, struct msg *req, const struct op_info *op,
		   struct msg *reply)
{
	char *out = reply->data + sizeof(struct fuse_out_header);
	size_t len = reply->len - sizeof(struct fuse_out_header);
	struct node *n;
	uint32_t nlink;

	if (op->ino_out != INO_OUT_ATTR && op->ino_out != INO_OUT_STATX)
		return;
	pthread_mutex_lock(&p->lock);
	n = node_get(&p->nodes, req->knode);
	if (n && n->nnames) {
		uint32_t h = hidden_names(n, false);

		if (op->ino_out == INO_OUT_ATTR && h) {
			struct fuse_attr_out *a = (struct fuse_attr_out *)out;

			a->attr.nlink = a->attr.nlink > h ? a->attr.nlink - h : 0;
		} else if (h && len >= FK_STATX_OUT_NLINK_OFF + sizeof(nlink)) {
			memcpy(&nlink, out + FK_STATX_OUT_NLINK_OFF, sizeof(nlink));
			nlink = nlink > h ? nlink - h : 0;
			memcpy(out + FK_STATX_OUT_NLINK_OFF, &nlink, sizeof(nlink));
		}
	}
	pthread_mutex_unlock(&p->lock);
}

void hide_stop(struct proxy *p)
{
	struct hide_state *s = &p->hide;

	/* Nothing left to remove: no journal to leave behind either. */
	pthread_mutex_lock(&p->lock);
	if (s->journal_fd >= 0 && !s->listed.count)
		unlink(s->journal_path);
	pthread_mutex_unlock(&p->lock);
}

/* ---- A killed keeper's leftovers -------------------------------------------------------- */

/*
 * Removes the hidden name at @path (from the mount's root): looks each part up, the name itself
 * too (as the kernel would: the daemon then holds a lookup of the inode it unlinks), unlinks the
 * name, then forgets every lookup. Returns 0, -ENOENT if it is gone already, or -errno.
 */
static int remove_leftover(struct proxy *p, const char *path, int64_t deadline)
{
	char *copy = strdup(path), *save = NULL, *part, *next;
	uint64_t ids[128];
	size_t nids = 0;
	uint64_t did = FUSE_ROOT_ID;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	part = strtok_r(copy, "/", &save);
	while (part && r == 0) {
		struct msg *reply;

		next = strtok_r(NULL, "/", &save);
		if (!next && !hide_is_hidden(part, strlen(part))) {
			r = -EINVAL; /* Not a name of ours: never removed. */
			break;
		}
		reply = call_lookup(p, did, part, deadline, &r);
		if (reply) {
			ids[nids++] = ((const struct fuse_entry_out *)(reply->data +
					sizeof(struct fuse_out_header)))->nodeid;
			msg_put(reply);
		}
		if (!r && !next) {
			reply = call_did(p, FUSE_UNLINK, did, NULL, 0, part, deadline, &r);
			if (reply) {
				r = msg_out(reply)->error;
				msg_put(reply);
			} else {
				/*
				 * Unanswered, the UNLINK may still be in the daemon: the name's
				 * lookup stays, so that a FORGET cannot overtake it.
				 */
				nids--;
			}
		} else if (!r) {
			did = ids[nids - 1];
			if (nids == ARRAY_SIZE(ids))
				r = -ELOOP; /* Deeper than any path the journal lists. */
		}
		part = next;
	}
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < nids; i++)
		forget_in_daemon(p, p->nodes.epoch, ids[i], 1);
	pthread_mutex_unlock(&p->lock);
	free(copy);
	return r;
}

void hide_cleanup(struct proxy *p)
{
	int64_t deadline = now_ms() + p->cfg->start_timeout_ms;
	struct hide_state *s = &p->hide;
	size_t removed = 0, gone = 0, kept = 0, i;
	int r = 0;

	if (!s->nleftovers)
		return;
	for (i = 0; i < s->nleftovers && !fatal(r); i++) {
		r = remove_leftover(p, s->leftovers[i], deadline);
		if (r == 0 || r == -ENOENT) {
			removed += r == 0;
			gone += r == -ENOENT;
			pthread_mutex_lock(&p->lock);
			hide_journal(s, false, s->leftovers[i]);
			pthread_mutex_unlock(&p->lock);
			free(s->leftovers[i]);
			continue;
		}
		log_warn("Cannot remove %s, left by a keeper that was killed: %s; it stays listed "
			 "in %s for the next start", s->leftovers[i], strerror(-r), s->journal_path);
		s->leftovers[kept++] = s->leftovers[i];
	}
	/* Not tried (the daemon went): kept for the next start. */
	for (; i < s->nleftovers; i++)
		s->leftovers[kept++] = s->leftovers[i];
	s->nleftovers = kept;
	log_info("Removed %zu hidden names a killed keeper left behind (%zu were gone already)",
		 removed, gone);
}
