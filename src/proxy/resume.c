/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "resume.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "journal.h"
#include "log.h"
#include "mode.h"
#include "util.h"

/* ---- The fields of an image that are neither fds nor tables ------------------------------ */

static void save_key(uint64_t key, void *val, void *arg)
{
	image_u64(arg, key);
}

void proxy_fields_save(const struct proxy *p, struct image *im)
{
	image_u32(im, p->buf_size);
	image_u32(im, p->max_msg);
	image_u64(im, p->next_call);
	image_u64(im, p->kunique_max);
	image_bool(im, p->init_done);
	image_bool(im, p->init_req);
	if (p->init_req)
		msg_save(im, p->init_req);
	image_bytes(im, &p->init_out, sizeof(p->init_out));
	image_u64(im, p->init_flags);
	image_u32(im, p->init_minor);
	image_u64(im, p->up_ms);
	image_u64(im, p->heard_ms);
	image_u64(im, p->clock_slack_ns);
	image_u64(im, p->clock_samples);
	image_u32(im, p->ino_mode);
	image_u64(im, p->ino_same);
	image_u64(im, p->ino_diff_unnoted);
	image_u64(im, p->full_nodes);
	image_u64(im, p->full_handles);
	image_u64(im, p->dropped_notifications);
	image_u64(im, p->window_overflows);
	image_u64(im, p->replayed);
	image_u64(im, p->settled);
	image_u64(im, p->lost_nodes);
	image_u64(im, p->lost_handles);
	image_u64(im, p->rewritten);
	image_u64(im, p->lost_windows);
	image_u64(im, p->rec_nodes);
	image_u64(im, p->rec_handles);
	image_u64(im, p->abandoned.count);
	idmap_each(&p->abandoned, save_key, im);
	image_u32(im, p->resumes);
	image_u32(im, p->daemon_pid);
	image_u64(im, p->daemon_start);
	image_str(im, p->cfg->mountpoint);
}

int proxy_fields_load(struct proxy *p, struct image *im, bool set_sizes)
{
	uint64_t n;
	uint32_t len;
	const void *b;

	p->buf_size = image_get_u32(im);
	p->max_msg = image_get_u32(im);
	if (im->err || p->buf_size < 65536 || p->buf_size > (64u << 20) ||
	    p->max_msg > p->buf_size)
		return image_fail(im);
	/* Before any message is read back: large buffers have this size. */
	if (set_sizes)
		msg_init(p->buf_size);
	p->next_call = image_get_u64(im);
	p->kunique_max = image_get_u64(im);
	p->init_done = image_get_bool(im);
	if (image_get_bool(im))
		p->init_req = msg_load(im);
	kernel_known(p);
	b = image_get_bytes(im, &len);
	if (!im->err && len != sizeof(p->init_out))
		image_bad(im);
	if (!im->err)
		memcpy(&p->init_out, b, len);
	p->init_flags = image_get_u64(im);
	p->init_minor = image_get_u32(im);
	p->up_ms = image_get_u64(im);
	p->heard_ms = image_get_u64(im);
	p->clock_slack_ns = image_get_u64(im);
	p->clock_samples = image_get_u64(im);
	p->ino_mode = image_get_u32(im);
	if (p->ino_mode > INO_UNSTABLE)
		image_bad(im);
	p->ino_same = image_get_u64(im);
	p->ino_diff_unnoted = image_get_u64(im);
	p->full_nodes = image_get_u64(im);
	p->full_handles = image_get_u64(im);
	p->dropped_notifications = image_get_u64(im);
	p->window_overflows = image_get_u64(im);
	p->replayed = image_get_u64(im);
	p->settled = image_get_u64(im);
	p->lost_nodes = image_get_u64(im);
	p->lost_handles = image_get_u64(im);
	p->rewritten = image_get_u64(im);
	p->lost_windows = image_get_u64(im);
	p->rec_nodes = image_get_u64(im);
	p->rec_handles = image_get_u64(im);
	n = image_get_u64(im);
	for (uint64_t i = 0; i < n && !im->err; i++)
		if (idmap_put(&p->abandoned, image_get_u64(im), (void *)1) < 0)
			im->err = -ENOMEM;
	p->resumes = image_get_u32(im);
	p->daemon_pid = image_get_u32(im);
	p->daemon_start = image_get_u64(im);
	free(p->journal_mnt);
	p->journal_mnt = image_get_str(im);
	if (im->err || !p->init_done || !p->init_req)
		return image_fail(im);
	return 0;
}

/* ---- Records -------------------------------------------------------------------------------- */

/*
 * A record, and the base after its fields, are the same list: the three tables' heads (each a
 * byte string: node_table_head_save() and the like), then entries, each a type (ENT_*), a key,
 * whether it is there and, if so, its item (a byte string), ended by ENT_END. A reader applies
 * them in order; the last entry of a key wins. Besides the tables' entries, ENT_SENT: when a
 * request in flight whose repeat needs that time (resume_note_sent()) was given to the daemon,
 * keyed by its unique; an item is the time (CLOCK_REALTIME, ns), and none is ever taken out
 * (the kernel uses a unique once per connection; a rebase drops those no longer in flight).
 * And ENT_CLOCK (key 0): the store's clock slack and samples (clock.h) since the base, which a
 * settle rule's proof needs.
 */
enum {
	ENT_END,
	ENT_NODE,
	ENT_HANDLE,
	ENT_LOCKS,
	ENT_TABLES,
	ENT_SENT = ENT_TABLES,
	ENT_CLOCK,
	ENT_TYPES
};

enum { JREC_ENTRIES = 1 };

enum { TAG_RESUME = 0x52534d45 /* "RSME" */, TAG_RESUME_END = 0x2f52534d };

/*
 * When request @unique was given to the daemon, for the journal: a request in flight whose
 * repeat needs the time (resume_needs_sent()), or one a killed keeper had read that was not
 * sent again yet. 0 for none. Under the lock.
 */
static int64_t request_sent_ns(struct proxy *p, uint64_t unique)
{
	const struct msg *m = idmap_get(&p->inflight, unique);

	if (m)
		return resume_needs_sent(m) ? m->sent_ns : 0;
	return (int64_t)(uintptr_t)idmap_get(&p->resent_sent, unique);
}

/* Records may grow to this, or to the base's size if larger, before a rebase. */
#define RESUME_RECORDS_MIN (1u << 20)

static void put_heads(struct proxy *p, struct image *im)
{
	struct image *h = &p->jitem;

	h->len = 0;
	node_table_head_save(&p->nodes, h);
	image_bytes(im, h->buf, h->len);
	h->len = 0;
	handle_table_head_save(&p->handles, h);
	image_bytes(im, h->buf, h->len);
	h->len = 0;
	lock_table_head_save(&p->locks, h);
	image_bytes(im, h->buf, h->len);
}

/* The entry of @type for @key, as the table holds it now. */
static void put_entry(struct proxy *p, struct image *im, uint32_t type, uint64_t key)
{
	struct image *it = &p->jitem;
	bool there = true;

	it->len = 0;
	if (type == ENT_NODE) {
		const struct node *n = node_get(&p->nodes, key);

		there = n;
		if (n)
			node_item_save(n, it);
	} else if (type == ENT_HANDLE) {
		const struct handle *h = handle_get(&p->handles, key);

		there = h;
		if (h)
			handle_item_save(h, it);
	} else if (type == ENT_LOCKS) {
		there = lock_first(&p->locks, key);
		if (there)
			lock_item_save(&p->locks, key, it);
	} else if (type == ENT_SENT) {
		int64_t ns = request_sent_ns(p, key);

		there = ns;
		image_u64(it, ns);
	} else {
		image_u64(it, p->clock_slack_ns);
		image_u64(it, p->clock_samples);
	}
	image_u32(im, type);
	/* A request sent again keeps its time under the unique it was first sent with. */
	image_u64(im, type == ENT_SENT ? key & ~FK_UNIQUE_RESEND : key);
	image_bool(im, there);
	if (there)
		image_bytes(im, it->buf, it->len);
}

static void put_changes(struct proxy *p, struct image *im, uint32_t type, struct changes *c)
{
	size_t n = changes_unique(c);

	for (size_t i = 0; i < n; i++)
		put_entry(p, im, type, c->key[i]);
}

static void broken(struct proxy *p, const char *what, int err)
{
	if (p->resume_broken)
		return;
	p->resume_broken = true;
	log_error("The resume journal cannot be kept (%s: %s): a SIGKILL of this keeper now loses "
		  "the mount", what, strerror(-err));
	changes_reset(&p->nodes.changes, false);
	changes_reset(&p->handles.changes, false);
	changes_reset(&p->locks.changes, false);
	changes_reset(&p->sent, false);
	/* Whoever reads it now finds no base at all, rather than one that lacks what came
	 * after; and the supervisor takes it out of systemd's fd store. */
	journal_void(p->journal);
	post_event(p, MODE_EV_STORE_LOST);
}

static bool any_failed(const struct proxy *p)
{
	return p->nodes.changes.failed || p->handles.changes.failed || p->locks.changes.failed ||
	       p->sent.failed;
}

void resume_flush(struct proxy *p)
{
	struct image *im = &p->jrec;
	int r;

	if (!p->journal || p->resume_broken)
		return;
	if (any_failed(p)) {
		broken(p, "noting a change", -ENOMEM);
		return;
	}
	if (!p->nodes.changes.n && !p->handles.changes.n && !p->locks.changes.n && !p->sent.n &&
	    !p->clock_noted)
		return;
	im->len = 0;
	put_heads(p, im);
	put_changes(p, im, ENT_NODE, &p->nodes.changes);
	put_changes(p, im, ENT_HANDLE, &p->handles.changes);
	put_changes(p, im, ENT_LOCKS, &p->locks.changes);
	put_changes(p, im, ENT_SENT, &p->sent);
	if (p->clock_noted)
		put_entry(p, im, ENT_CLOCK, 0);
	image_u32(im, ENT_END);
	if (im->err || p->jitem.err) {
		broken(p, "writing a record", im->err ?: p->jitem.err);
		return;
	}
	r = journal_append(p->journal, JREC_ENTRIES, im->buf, im->len, NULL, 0);
	if (r < 0) {
		broken(p, "appending a record", r);
		return;
	}
	p->nodes.changes.n = p->handles.changes.n = p->locks.changes.n = p->sent.n = 0;
	p->clock_noted = false;
	if (journal_records_size(p->journal) > MAX(journal_base_size(p->journal), RESUME_RECORDS_MIN))
		resume_rebase(p);
}

/* ---- Bases ---------------------------------------------------------------------------------- */

static void put_node(struct node *n, void *arg)
{
	void **a = arg;

	put_entry(a[0], a[1], ENT_NODE, n->kid);
}

static void put_handle(struct handle *h, void *arg)
{
	void **a = arg;

	put_entry(a[0], a[1], ENT_HANDLE, h->kfh);
}

static void put_locks(uint64_t key, void *val, void *arg)
{
	void **a = arg;

	put_entry(a[0], a[1], ENT_LOCKS, key);
}

static void put_sent(uint64_t key, void *val, void *arg)
{
	void **a = arg;

	if (request_sent_ns(a[0], key))
		put_entry(a[0], a[1], ENT_SENT, key);
}

void resume_rebase(struct proxy *p)
{
	struct image base = { 0 };
	void *arg[2] = { p, &base };
	int r;

	if (!p->journal || p->resume_broken)
		return;
	image_tag(&base, TAG_RESUME);
	proxy_fields_save(p, &base);
	put_heads(p, &base);
	node_each(&p->nodes, put_node, arg);
	handle_each(&p->handles, put_handle, arg);
	idmap_each(&p->locks.by_node, put_locks, arg);
	idmap_each(&p->inflight, put_sent, arg);
	idmap_each(&p->resent_sent, put_sent, arg);
	image_u32(&base, ENT_END);
	image_tag(&base, TAG_RESUME_END);
	r = base.err ?: p->jitem.err;
	if (!r)
		r = journal_rebase(p->journal, &base);
	image_free(&base);
	if (r < 0) {
		broken(p, "writing a base", r);
		return;
	}
	p->nodes.changes.n = p->handles.changes.n = p->locks.changes.n = p->sent.n = 0;
	p->clock_noted = false; /* the base has them */
}

/* From now on every table notes its changes for @p->journal. */
static void noting_on(struct proxy *p)
{
	changes_reset(&p->nodes.changes, true);
	changes_reset(&p->handles.changes, true);
	changes_reset(&p->locks.changes, true);
	changes_reset(&p->sent, true);
}

static void mark_min(uint64_t key, void *val, void *arg)
{
	uint64_t *min = arg;

	*min = MIN(*min, key & ~FK_UNIQUE_RESEND);
}

bool resume_mark(struct proxy *p, uint64_t current)
{
	uint64_t min = current & ~FK_UNIQUE_RESEND;

	if (!p->journal || p->resume_broken)
		return true;
	/* A request another thread took to answer, or a recovery settles, is in no table. */
	if (p->state != PX_UP || p->starting || p->settling ||
	    __atomic_load_n(&p->answering, __ATOMIC_ACQUIRE))
		return false;
	idmap_each(&p->inflight, mark_min, &min);
	for (const struct msg *e = p->early; e; e = e->next)
		mark_min(msg_in((struct msg *)e)->unique, NULL, &min);
	if (p->carry)
		mark_min(msg_in(p->carry)->unique, NULL, &min);
	journal_set_mark(p->journal, min);
	return true;
}

int resume_start(struct proxy *p)
{
	struct journal *j;
	int r = journal_create(&j, "fusekeeper-resume");

	if (r < 0) {
		log_error("Cannot make the resume journal: %s", strerror(-r));
		return r;
	}
	/* Started at INIT's reply: the kernel sent nothing before INIT, nor since. */
	journal_set_mark(j, __atomic_load_n(&p->kunique_max, __ATOMIC_RELAXED));
	__atomic_store_n(&p->journal, j, __ATOMIC_RELEASE);
	noting_on(p);
	resume_rebase(p);
	return p->resume_broken ? -ENOMEM : 0;
}

int resume_adopt(struct proxy *p, int fd_a, int fd_b)
{
	struct image base;
	int r = journal_open(&p->journal, fd_a, fd_b, &base);

	if (r < 0)
		return r;
	image_free(&base);
	noting_on(p);
	resume_rebase(p);
	return p->resume_broken ? -ENOMEM : 0;
}

void resume_stop(struct proxy *p)
{
	journal_free(p->journal);
	__atomic_store_n(&p->journal, NULL, __ATOMIC_RELEASE);
	image_free(&p->jrec);
	image_free(&p->jitem);
	changes_free(&p->sent);
	idmap_free(&p->resent_sent);
}

/* ---- Reading it back ------------------------------------------------------------------------ */

/* The state a journal reads back as: the latest heads and entries, pointing into it. */
struct reading {
	struct image_span head[ENT_TYPES];
	struct idmap items[ENT_TYPES];
};

static void free_span(uint64_t key, void *val, void *arg)
{
	free(val);
}

static void reading_free(struct reading *rd)
{
	for (int i = 0; i < ENT_TYPES; i++) {
		idmap_each(&rd->items[i], free_span, NULL);
		idmap_free(&rd->items[i]);
	}
}

/* Applies one list of heads and entries (a record, or a base after its fields). */
static int apply_list(struct reading *rd, struct image *im)
{
	for (int i = ENT_NODE; i < ENT_TABLES; i++) {
		uint32_t len;

		rd->head[i].data = image_get_bytes(im, &len);
		rd->head[i].len = len;
	}
	for (;;) {
		uint32_t type = image_get_u32(im), len;
		uint64_t key;
		struct image_span *sp;

		if (im->err || type == ENT_END)
			break;
		if (type >= ENT_TYPES)
			return image_fail(im);
		key = image_get_u64(im);
		free(idmap_del(&rd->items[type], key));
		if (!image_get_bool(im))
			continue;
		sp = malloc(sizeof(*sp));
		if (!sp)
			return -ENOMEM;
		sp->data = image_get_bytes(im, &len);
		sp->len = len;
		if (im->err || idmap_put(&rd->items[type], key, sp) < 0) {
			free(sp);
			return im->err ?: -ENOMEM;
		}
	}
	return im->err;
}

/*
 * Reads the journal @j (whose base is @base) into @rd, and the fields of the base into @p when
 * not NULL. Returns 0 or -errno.
 */
static int read_journal(struct journal *j, struct image *base, struct reading *rd,
			struct proxy *p, bool set_sizes)
{
	struct proxy scratch = { 0 };
	uint32_t kind;
	const void *data;
	size_t len;
	int r;

	if (!image_expect(base, TAG_RESUME))
		return base->err;
	r = proxy_fields_load(p ?: &scratch, base, set_sizes);
	if (!p) {
		msg_put(scratch.init_req);
		idmap_free(&scratch.abandoned);
		free(scratch.journal_mnt);
	}
	if (r < 0)
		return r;
	r = apply_list(rd, base);
	if (!r && !image_expect(base, TAG_RESUME_END))
		r = base->err;
	while (!r && journal_next(j, &kind, &data, &len)) {
		struct image im;

		if (kind != JREC_ENTRIES)
			return -EBADMSG;
		image_view(&im, data, len);
		r = apply_list(rd, &im);
	}
	return r;
}

/* Builds the three tables of @p (fresh from tables_init()) from @rd. */
static int build_tables(struct proxy *p, struct reading *rd)
{
	struct image h[ENT_TABLES];
	int r;

	for (int i = ENT_NODE; i < ENT_TABLES; i++)
		image_view(&h[i], rd->head[i].data, rd->head[i].len);
	r = node_table_build(&p->nodes, &h[ENT_NODE], &rd->items[ENT_NODE]);
	if (!r)
		r = handle_table_build(&p->handles, &h[ENT_HANDLE], &rd->items[ENT_HANDLE]);
	if (!r)
		r = lock_table_build(&p->locks, &h[ENT_LOCKS], &rd->items[ENT_LOCKS]);
	return r;
}

static void sent_one(uint64_t key, void *val, void *arg)
{
	void **a = arg;
	const struct image_span *sp = val;
	struct image im;
	int64_t ns;

	image_view(&im, sp->data, sp->len);
	ns = image_get_u64(&im);
	if (im.err || ns <= 0)
		*(int *)a[1] = -EBADMSG;
	else if (idmap_put(&((struct proxy *)a[0])->resent_sent, key, (void *)(uintptr_t)ns) < 0)
		*(int *)a[1] = -ENOMEM;
}

/* The times requests in flight were given to the daemon (ENT_SENT), into p->resent_sent. */
static int load_sent(struct proxy *p, struct idmap *items)
{
	int r = 0;
	void *arg[2] = { p, &r };

	idmap_each(items, sent_one, arg);
	return r;
}

/* The clock's fields, when a record has them (@sp; NULL: the base's stand). */
static int load_clock(struct proxy *p, const struct image_span *sp)
{
	struct image im;

	if (!sp)
		return 0;
	image_view(&im, sp->data, sp->len);
	p->clock_slack_ns = image_get_u64(&im);
	p->clock_samples = image_get_u64(&im);
	return im.err ? -EBADMSG : 0;
}

void resume_note_sent(struct proxy *p, const struct msg *req)
{
	if (!p->journal || p->resume_broken)
		return;
	changes_note(&p->sent, msg_in((struct msg *)req)->unique);
	resume_flush(p);
}

int64_t resume_sent_ns(struct proxy *p, uint64_t unique)
{
	int64_t ns;

	pthread_mutex_lock(&p->lock);
	ns = (int64_t)(uintptr_t)idmap_del(&p->resent_sent, unique & ~FK_UNIQUE_RESEND);
	pthread_mutex_unlock(&p->lock);
	return ns;
}

void resume_note_release(struct proxy *p, uint64_t kfh)
{
	struct handle *h = handle_get(&p->handles, kfh);

	if (!h || !p->journal || p->resume_broken)
		return;
	h->released = true;
	handle_changed(&p->handles, h);
	resume_flush(p);
}

int resume_load(struct proxy *p, int fd_a, int fd_b)
{
	struct reading rd = { 0 };
	struct image base;
	int r = journal_open(&p->journal, fd_a, fd_b, &base);

	if (r < 0)
		return r;
	r = read_journal(p->journal, &base, &rd, p, true);
	if (!r)
		r = build_tables(p, &rd);
	if (!r)
		r = load_sent(p, &rd.items[ENT_SENT]);
	if (!r)
		r = load_clock(p, idmap_get(&rd.items[ENT_CLOCK], 0));
	reading_free(&rd);
	image_free(&base);
	if (r < 0) {
		journal_free(p->journal);
		p->journal = NULL;
		return r;
	}
	noting_on(p);
	return 0;
}

/* ---- Checking it against the tables --------------------------------------------------------- */

struct check_ctx {
	struct proxy *live, *built;
	char what[200];
};

static bool names_equal(const struct node *a, const struct node *b)
{
	const struct node_name *x = a->names, *y = b->names;

	for (; x && y; x = x->next, y = y->next)
		if (x->parent != y->parent || x->unconfirmed != y->unconfirmed ||
		    x->hiding != y->hiding || strcmp(x->name, y->name))
			return false;
	return !x && !y;
}

static void check_node(struct node *a, void *arg)
{
	struct check_ctx *c = arg;
	uint64_t key = a->kid;
	const struct node *b = node_get(&c->built->nodes, key);

	if (c->what[0])
		return;
	if (!b)
		snprintf(c->what, sizeof(c->what), "node %" PRIu64 " (%s) is missing", key,
			 node_name_of(a));
	else if (a->k_nlookup != b->k_nlookup || a->k_gen != b->k_gen || a->k_ino != b->k_ino ||
		 a->type != b->type || a->opened != b->opened || a->pins != b->pins ||
		 (a->epoch == c->live->nodes.epoch && !a->lost &&
		  (a->d_ino != b->d_ino || a->d_gen != b->d_gen)) ||
		 a->dver != b->dver || a->changed_ns != b->changed_ns || a->lost != b->lost ||
		 a->replaced != b->replaced || a->children != b->children)
		snprintf(c->what, sizeof(c->what), "node %" PRIu64 " (%s) differs: lookups %" PRIu64
			 "/%" PRIu64 ", open %u/%u, children %u/%u", key, node_name_of(a),
			 a->k_nlookup, b->k_nlookup, a->opened, b->opened, a->children, b->children);
	else if (!names_equal(a, b))
		snprintf(c->what, sizeof(c->what), "node %" PRIu64 " (%s) has other names (%s)", key,
			 node_name_of(a), node_name_of(b));
}

static void check_handle(struct handle *a, void *arg)
{
	struct check_ctx *c = arg;
	uint64_t key = a->kfh;
	const struct handle *b = handle_get(&c->built->handles, key);
	bool unsynced = handle_unsynced(a);

	if (c->what[0])
		return;
	if (!b)
		snprintf(c->what, sizeof(c->what), "handle %" PRIu64 " is missing", key);
	else if (a->node != b->node || a->flags != b->flags || a->fopen != b->fopen ||
		 a->uid != b->uid || a->gid != b->gid || a->dir != b->dir || a->lost != b->lost ||
		 unsynced != b->write_lost || a->released != b->released)
		snprintf(c->what, sizeof(c->what), "handle %" PRIu64 " differs", key);
}

static bool same_lock(const struct lock_rec *x, const struct lock_rec *y)
{
	return x->node == y->node && x->kfh == y->kfh && x->owner == y->owner &&
	       x->start == y->start && x->end == y->end && x->seq == y->seq &&
	       x->type == y->type && x->pid == y->pid && x->flock == y->flock &&
	       x->lost == y->lost;
}

static void check_locks(uint64_t key, void *val, void *arg)
{
	struct check_ctx *c = arg;
	unsigned na = 0, nb = 0;

	if (c->what[0])
		return;
	for (const struct lock_rec *a = lock_first(&c->live->locks, key); a; a = a->next) {
		const struct lock_rec *b = lock_first(&c->built->locks, key);

		while (b && !same_lock(a, b))
			b = b->next;
		na++;
		if (!b) {
			snprintf(c->what, sizeof(c->what), "a lock of node %" PRIu64 " is missing", key);
			return;
		}
	}
	for (const struct lock_rec *b = lock_first(&c->built->locks, key); b; b = b->next)
		nb++;
	if (na != nb)
		snprintf(c->what, sizeof(c->what), "node %" PRIu64 " has %u locks, not %u", key, nb,
			 na);
}

struct sent_check {
	struct proxy *built;
	char *what;
	size_t size;
};

static void check_sent(uint64_t key, void *val, void *arg)
{
	struct sent_check *c = arg;
	const struct msg *m = val;
	int64_t ns;

	if (c->what[0] || !resume_needs_sent(m))
		return;
	ns = (int64_t)(uintptr_t)idmap_get(&c->built->resent_sent, key & ~FK_UNIQUE_RESEND);
	if (ns != m->sent_ns)
		snprintf(c->what, c->size, "request %#" PRIx64 " (%s) was sent at %" PRId64 ", not %"
			 PRId64, key, op_name(msg_in((struct msg *)m)->opcode), m->sent_ns, ns);
}

/* What the settle rules need after a resume (the daemon, the clock, the send times), against
 * @p's: a difference is described in @what. */
static void check_proofs(struct proxy *p, struct proxy *b, char *what, size_t size)
{
	struct sent_check c = { b, what, size };

	if (b->daemon_pid != p->daemon_pid || b->daemon_start != p->daemon_start)
		snprintf(what, size, "its daemon is %d (start %" PRIu64 "), not %d (start %" PRIu64
			 ")", (int)b->daemon_pid, b->daemon_start, (int)p->daemon_pid,
			 p->daemon_start);
	else if (b->clock_slack_ns != p->clock_slack_ns ||
		 !b->clock_samples != !p->clock_samples)
		snprintf(what, size, "its clock slack is %" PRId64 " ns (%s samples), not %" PRId64
			 " ns", b->clock_slack_ns, b->clock_samples ? "with" : "no",
			 p->clock_slack_ns);
	else
		idmap_each(&p->inflight, check_sent, &c);
}

int resume_check(struct proxy *p)
{
	struct proxy *b = calloc(1, sizeof(*b));
	struct reading rd = { 0 };
	struct check_ctx c = { p, b, "" };
	struct journal *j = NULL;
	struct image base = { 0 };
	int fds[2], r;

	if (!b)
		return -ENOMEM;
	if (!p->journal || p->resume_broken) {
		free(b);
		return 0;
	}
	resume_flush(p);
	journal_fds(p->journal, fds);
	fds[0] = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
	fds[1] = fcntl(fds[1], F_DUPFD_CLOEXEC, 3);
	r = node_table_init(&b->nodes, UINT64_MAX);
	handle_table_init(&b->handles, UINT64_MAX, 0, 0);
	lock_table_init(&b->locks, UINT64_MAX);
	if (!r)
		r = journal_open(&j, fds[0], fds[1], &base);
	else {
		close(fds[0]);
		close(fds[1]);
	}
	if (!r)
		r = read_journal(j, &base, &rd, b, false);
	if (!r)
		r = build_tables(b, &rd);
	if (!r)
		r = load_sent(b, &rd.items[ENT_SENT]);
	if (!r)
		r = load_clock(b, idmap_get(&rd.items[ENT_CLOCK], 0));
	if (r < 0) {
		snprintf(c.what, sizeof(c.what), "it does not read back: %s", strerror(-r));
	} else {
		node_each(&p->nodes, check_node, &c);
		handle_each(&p->handles, check_handle, &c);
		idmap_each(&p->locks.by_node, check_locks, &c);
		if (!c.what[0])
			check_proofs(p, b, c.what, sizeof(c.what));
		if (!c.what[0] && (b->nodes.count != p->nodes.count ||
				   b->handles.by_kfh.count != p->handles.by_kfh.count ||
				   b->locks.count != p->locks.count))
			snprintf(c.what, sizeof(c.what), "it holds %" PRIu64 " nodes, %zu handles and %"
				 PRIu64 " locks; the tables %" PRIu64 ", %zu and %" PRIu64,
				 b->nodes.count, b->handles.by_kfh.count, b->locks.count,
				 p->nodes.count, p->handles.by_kfh.count, p->locks.count);
	}
	if (c.what[0])
		log_error("The resume journal does not match the tables: %s", c.what);
	else
		log_info("The resume journal matches the tables: %" PRIu64 " nodes, %zu handles, %"
			 PRIu64 " locks", p->nodes.count, p->handles.by_kfh.count, p->locks.count);
	reading_free(&rd);
	image_free(&base);
	journal_free(j);
	node_table_free(&b->nodes);
	handle_table_free(&b->handles);
	lock_table_free(&b->locks);
	msg_put(b->init_req);
	idmap_free(&b->abandoned);
	idmap_free(&b->resent_sent);
	free(b->journal_mnt);
	free(b);
	return c.what[0] ? -EBADMSG : 0;
}
