/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "locks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

/* A node's records. A list of its own, so that the map changes only when a node gets its first
 * record or loses its last. */
struct lock_node {
	struct lock_rec *head;
};

void lock_table_init(struct lock_table *t, uint64_t max)
{
	memset(t, 0, sizeof(*t));
	t->max = max;
}

static void free_node(uint64_t key, void *val, void *arg)
{
	struct lock_node *ln = val;

	while (ln->head) {
		struct lock_rec *l = ln->head;

		ln->head = l->next;
		free(l);
	}
	free(ln);
}

void lock_table_free(struct lock_table *t)
{
	idmap_each(&t->by_node, free_node, NULL);
	idmap_free(&t->by_node);
	t->count = 0;
	changes_free(&t->changes);
}

static bool overlap(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
	return s1 <= e2 && s2 <= e1;
}

/* Overlapping or adjacent: POSIX merges such locks of one owner and type. */
static bool touch(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
	return (e2 == UINT64_MAX || s1 <= e2 + 1) && (e1 == UINT64_MAX || s2 <= e1 + 1);
}

static bool valid(const struct fuse_lk_in *in)
{
	uint32_t type = in->lk.type;

	return (type == F_RDLCK || type == F_WRLCK || type == F_UNLCK) &&
	       in->lk.start <= in->lk.end;
}

/* A held record that @in's owner made with a request of @in's kind. */
static bool own(const struct lock_rec *l, const struct fuse_lk_in *in)
{
	return !l->lost && l->owner == in->owner && l->flock == !!(in->lk_flags & FUSE_LK_FLOCK);
}

int64_t lock_growth(const struct lock_table *t, uint64_t node, const struct fuse_lk_in *in)
{
	const struct lock_node *ln = idmap_get(&t->by_node, node);
	uint64_t s = in->lk.start, e = in->lk.end;
	bool lock = in->lk.type != F_UNLCK;
	int64_t g = lock;

	if (!valid(in) || !ln)
		return valid(in) ? g : 0;
	for (const struct lock_rec *l = ln->head; l; l = l->next) {
		if (!own(l, in))
			continue;
		if (l->flock) {
			g--; /* replaced or removed */
		} else if (lock && l->type == in->lk.type && touch(l->start, l->end, s, e)) {
			g--; /* merged into the new one */
		} else if (overlap(l->start, l->end, s, e)) {
			/* What is left of it: nothing, one end, or both ends. */
			g += (l->start < s) + (l->end > e) - 1;
		}
	}
	return g;
}

bool lock_fits(const struct lock_table *t, uint64_t node, const struct fuse_lk_in *in)
{
	int64_t g = lock_growth(t, node, in);

	return g <= 0 || t->count + (uint64_t)g <= t->max;
}

bool lock_overlaps_own(const struct lock_table *t, uint64_t node, const struct fuse_lk_in *in)
{
	const struct lock_node *ln = idmap_get(&t->by_node, node);

	for (const struct lock_rec *l = ln ? ln->head : NULL; l; l = l->next)
		if (own(l, in) && (l->flock || overlap(l->start, l->end, in->lk.start, in->lk.end)))
			return true;
	return false;
}

/* Unlinks *@pp (a record of @ln) and frees it. */
static void drop(struct lock_table *t, struct lock_rec **pp)
{
	struct lock_rec *l = *pp;

	*pp = l->next;
	free(l);
	t->count--;
}

static void drop_node_if_empty(struct lock_table *t, uint64_t node, struct lock_node *ln)
{
	if (!ln->head) {
		idmap_del(&t->by_node, node);
		free(ln);
	}
}

int lock_apply(struct lock_table *t, uint64_t node, uint64_t kfh, const struct fuse_lk_in *in)
{
	struct lock_node *ln = idmap_get(&t->by_node, node);
	struct lock_rec *spare[2] = { NULL, NULL }, **pp, *l;
	uint64_t s = in->lk.start, e = in->lk.end, ns = s, ne = e;
	bool lock = in->lk.type != F_UNLCK, flock = in->lk_flags & FUSE_LK_FLOCK;
	int used = 0;

	if (!valid(in))
		return -EINVAL;
	changes_note(&t->changes, node);
	if (!ln && !lock)
		return 0;
	/* Everything that can fail first: at most the new record and one split piece. */
	spare[0] = malloc(sizeof(*spare[0]));
	spare[1] = malloc(sizeof(*spare[1]));
	if (spare[0] && spare[1] && !ln) {
		ln = calloc(1, sizeof(*ln));
		if (ln && idmap_put(&t->by_node, node, ln) < 0) {
			free(ln);
			ln = NULL;
		}
	}
	if (!spare[0] || !spare[1] || !ln) {
		free(spare[0]);
		free(spare[1]);
		return -ENOMEM;
	}

	for (pp = &ln->head; (l = *pp);) {
		if (!own(l, in)) {
			pp = &l->next;
		} else if (flock) {
			drop(t, pp);
		} else if (lock && l->type == in->lk.type && touch(l->start, l->end, s, e)) {
			ns = l->start < ns ? l->start : ns;
			ne = l->end > ne ? l->end : ne;
			drop(t, pp);
		} else if (!overlap(l->start, l->end, s, e)) {
			pp = &l->next;
		} else if (l->start < s && l->end > e) {
			/* Split: @l keeps the part before, a piece of the same grant the rest. */
			struct lock_rec *r = spare[used++];

			*r = *l;
			r->start = e + 1;
			l->end = s - 1;
			l->next = r;
			t->count++;
			pp = &r->next;
		} else if (l->start < s) {
			l->end = s - 1;
			pp = &l->next;
		} else if (l->end > e) {
			l->start = e + 1;
			pp = &l->next;
		} else {
			drop(t, pp);
		}
	}
	if (lock) {
		l = spare[used++];
		*l = (struct lock_rec){
			.next = ln->head,
			.node = node,
			.kfh = kfh,
			.owner = in->owner,
			.start = ns,
			.end = ne,
			.seq = ++t->next_seq,
			.type = in->lk.type,
			.pid = in->lk.pid,
			.flock = flock,
		};
		ln->head = l;
		t->count++;
	}
	while (used < 2)
		free(spare[used++]);
	drop_node_if_empty(t, node, ln);
	return 0;
}

/* Drops the records of @node for which @match(record, @key) holds; returns how many. */
static unsigned drop_where(struct lock_table *t, uint64_t node,
			  bool (*match)(const struct lock_rec *l, uint64_t key), uint64_t key)
{
	struct lock_node *ln = idmap_get(&t->by_node, node);
	struct lock_rec **pp;
	unsigned n = 0;

	if (!ln)
		return 0;
	changes_note(&t->changes, node);
	for (pp = &ln->head; *pp;) {
		if (match(*pp, key)) {
			drop(t, pp);
			n++;
		} else {
			pp = &(*pp)->next;
		}
	}
	drop_node_if_empty(t, node, ln);
	return n;
}

static bool lost_of(const struct lock_rec *l, uint64_t owner)
{
	return l->lost && l->owner == owner;
}

static bool posix_of(const struct lock_rec *l, uint64_t owner)
{
	return !l->flock && l->owner == owner;
}

static bool through(const struct lock_rec *l, uint64_t kfh)
{
	return l->kfh == kfh;
}

int lock_report_lost(struct lock_table *t, uint64_t node, uint64_t owner)
{
	return drop_where(t, node, lost_of, owner) ? -EIO : 0;
}

void lock_flush(struct lock_table *t, uint64_t node, uint64_t owner)
{
	drop_where(t, node, posix_of, owner);
}

void lock_release(struct lock_table *t, uint64_t node, uint64_t kfh)
{
	drop_where(t, node, through, kfh);
}

struct collect_ctx {
	struct lock_rec **v;
	size_t n;
};

static void collect_one(uint64_t key, void *val, void *arg)
{
	struct collect_ctx *c = arg;

	for (struct lock_rec *l = ((struct lock_node *)val)->head; l; l = l->next)
		if (!l->lost)
			c->v[c->n++] = l;
}

static int by_grant(const void *a, const void *b)
{
	const struct lock_rec *x = *(struct lock_rec *const *)a, *y = *(struct lock_rec *const *)b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

ssize_t lock_collect(const struct lock_table *t, struct lock_rec ***v)
{
	struct collect_ctx c = { malloc((t->count + 1) * sizeof(*c.v)), 0 };

	if (!c.v)
		return -ENOMEM;
	idmap_each(&t->by_node, collect_one, &c);
	qsort(c.v, c.n, sizeof(*c.v), by_grant);
	*v = c.v;
	return c.n;
}

void lock_set_lost(struct lock_table *t, struct lock_rec *l)
{
	l->lost = true;
	changes_note(&t->changes, l->node);
}

struct lock_rec *lock_first(const struct lock_table *t, uint64_t node)
{
	const struct lock_node *ln = idmap_get(&t->by_node, node);

	return ln ? ln->head : NULL;
}

/* ---- Across an execve (image.h) --------------------------------------------------------- */

enum { TAG_LOCKS = 0x4c4f434b /* "LOCK" */, TAG_LOCKS_END = 0x2f4c4f43 };

static void save_node(uint64_t key, void *val, void *arg)
{
	struct image *im = arg;

	for (const struct lock_rec *l = ((struct lock_node *)val)->head; l; l = l->next) {
		image_u64(im, l->node);
		image_u64(im, l->kfh);
		image_u64(im, l->owner);
		image_u64(im, l->start);
		image_u64(im, l->end);
		image_u64(im, l->seq);
		image_u32(im, l->type);
		image_u32(im, l->pid);
		image_bool(im, l->flock);
		image_bool(im, l->lost);
	}
}

void lock_table_save(const struct lock_table *t, struct image *im)
{
	image_tag(im, TAG_LOCKS);
	image_u64(im, t->next_seq);
	image_u64(im, t->refused);
	image_u64(im, t->count);
	idmap_each(&t->by_node, save_node, im);
	image_tag(im, TAG_LOCKS_END);
}

/* Reads one record that save_node() wrote into @t; of node @want unless 0. Returns !im->err. */
static bool load_rec(struct lock_table *t, struct image *im, uint64_t want)
{
	struct lock_rec *l = calloc(1, sizeof(*l));
	struct lock_node *ln;

	if (!l) {
		im->err = -ENOMEM;
		return false;
	}
	l->node = image_get_u64(im);
	l->kfh = image_get_u64(im);
	l->owner = image_get_u64(im);
	l->start = image_get_u64(im);
	l->end = image_get_u64(im);
	l->seq = image_get_u64(im);
	l->type = image_get_u32(im);
	l->pid = image_get_u32(im);
	l->flock = image_get_bool(im);
	l->lost = image_get_bool(im);
	if (!im->err && ((l->type != F_RDLCK && l->type != F_WRLCK) || l->start > l->end ||
			 (want && l->node != want)))
		image_bad(im);
	ln = im->err ? NULL : idmap_get(&t->by_node, l->node);
	if (!im->err && !ln) {
		ln = calloc(1, sizeof(*ln));
		if (!ln || idmap_put(&t->by_node, l->node, ln) < 0) {
			free(ln);
			im->err = -ENOMEM;
		}
	}
	if (im->err) {
		free(l);
		return false;
	}
	/* Order within a node does not matter (lock_collect() sorts by grant). */
	l->next = ln->head;
	ln->head = l;
	t->count++;
	return true;
}

int lock_table_load(struct lock_table *t, struct image *im)
{
	uint64_t count;

	if (!image_expect(im, TAG_LOCKS))
		return im->err;
	t->next_seq = image_get_u64(im);
	t->refused = image_get_u64(im);
	count = image_get_u64(im);
	for (uint64_t i = 0; i < count && load_rec(t, im, 0); i++)
		;
	image_expect(im, TAG_LOCKS_END);
	return im->err;
}

/* ---- The resume journal (resume.c) ------------------------------------------------------- */

void lock_table_head_save(const struct lock_table *t, struct image *im)
{
	image_u64(im, t->next_seq);
	image_u64(im, t->refused);
}

void lock_item_save(const struct lock_table *t, uint64_t node, struct image *im)
{
	const struct lock_node *ln = idmap_get(&t->by_node, node);
	uint32_t n = 0;

	for (const struct lock_rec *l = ln ? ln->head : NULL; l; l = l->next)
		n++;
	image_u64(im, node);
	image_u32(im, n);
	if (ln)
		save_node(node, (void *)ln, im);
}

static void build_node(uint64_t key, void *val, void *arg)
{
	struct lock_table *t = ((void **)arg)[0];
	int *err = ((void **)arg)[1];
	const struct image_span *sp = val;
	struct image im;
	uint32_t n;

	if (*err)
		return;
	image_view(&im, sp->data, sp->len);
	if (image_get_u64(&im) != key)
		image_bad(&im);
	n = image_get_u32(&im);
	for (uint32_t i = 0; i < n && load_rec(t, &im, key); i++)
		;
	if (im.err)
		*err = im.err;
}

int lock_table_build(struct lock_table *t, struct image *head, const struct idmap *items)
{
	int err = 0;
	void *arg[2] = { t, &err };

	t->next_seq = image_get_u64(head);
	t->refused = image_get_u64(head);
	if (head->err)
		return image_fail(head);
	idmap_each(items, build_node, arg);
	return err;
}
