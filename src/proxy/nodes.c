/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "nodes.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* Kids the keeper hands out itself start here, far from what daemons use (pointers, counters). */
#define KID_BASE 0x7f00000000000000ULL

/*
 * Inode numbers the keeper hands out itself, when a daemon's clash with ones the kernel keeps:
 * below 2^32, so that 32-bit programs without large-file support can still stat them, and far
 * above what the counting daemons that need remapping reach (libfuse counts up from 2).
 */
#define KINO_BASE 0xf0000000ULL

static uint32_t name_hash(uint64_t parent, const char *name)
{
	/* FNV-1a over the name, seeded with the parent, folded to 32 bits. */
	uint64_t h = 0xcbf29ce484222325ULL ^ (parent * 0x9e3779b97f4a7c15ULL);

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	return (uint32_t)(h ^ (h >> 32));
}

/* The keys of the table's maps (keyset.h): a node's kid and did, a name's hash. */
static uint64_t kid_key(const void *ctx, uint64_t idx)
{
	return ((const struct node *)slab_at(&((const struct node_table *)ctx)->slab, idx))->kid;
}

static uint64_t did_key(const void *ctx, uint64_t idx)
{
	return ((const struct node *)slab_at(&((const struct node_table *)ctx)->slab, idx))->did;
}

static uint64_t name_key(const void *ctx, uint64_t val)
{
	return ((const struct node_name *)(uintptr_t)val)->hash;
}

/* The node by_did holds for @did, or NULL. */
static struct node *did_owner(const struct node_table *t, uint64_t did)
{
	return node_at(t, keyset_get(&t->by_did, did));
}

struct each_ctx {
	const struct node_table *t;
	void (*fn)(struct node *n, void *arg);
	void *arg;
};

static void each_one(uint64_t idx, void *arg)
{
	struct each_ctx *c = arg;

	c->fn(slab_at(&c->t->slab, idx), c->arg);
}

void node_each(const struct node_table *t, void (*fn)(struct node *n, void *arg), void *arg)
{
	struct each_ctx c = { t, fn, arg };

	keyset_each(&t->by_kid, each_one, &c);
}

static void name_unindex(struct node_table *t, struct node_name *nm)
{
	keyset_remove(&t->by_name, (uintptr_t)nm);
}

static void node_free(struct node_table *t, struct node *n);

/* Whether nothing holds @n in the table any more. */
static bool unheld(const struct node *n)
{
	return !n->k_nlookup && !n->children && !n->pins && n->kid != FUSE_ROOT_ID;
}

/* Removes @nm from its node and the index, and its pin on the parent. */
static void name_remove(struct node_table *t, struct node_name *nm)
{
	struct node *n = nm->node, *parent;
	struct node_name **pp;

	node_changed(t, n);
	for (pp = &n->names; *pp; pp = &(*pp)->next) {
		if (*pp == nm) {
			*pp = nm->next;
			n->nnames--;
			break;
		}
	}
	name_unindex(t, nm);
	parent = node_get(t, nm->parent);
	free(nm);
	if (parent) {
		parent->children--;
		if (unheld(parent))
			node_free(t, parent);
	}
}

/* Gives back a pin taken with children++ on @kid. */
static void node_unpin_children(struct node_table *t, uint64_t kid)
{
	struct node *n = node_get(t, kid);

	if (!n)
		return;
	n->children--;
	if (unheld(n))
		node_free(t, n);
}

void node_drop_name(struct node_table *t, struct node_name *nm)
{
	name_remove(t, nm);
}

/* Drops every name of @n. */
static void names_clear(struct node_table *t, struct node *n)
{
	while (n->names)
		name_remove(t, n->names);
}

/* Gives @n the name @name in @parent too; another node's name there is taken from it. */
static int name_add(struct node_table *t, struct node *n, uint64_t parent, const char *name,
		    bool last)
{
	struct node_name *nm, *old, **pp;
	size_t len;

	if (!name || n->kid == FUSE_ROOT_ID)
		return 0; /* The root has no name to find it by: it is always FUSE_ROOT_ID. */
	node_changed(t, n);
	old = node_find_name(t, parent, name);
	if (old && old->node == n) {
		/* Known: it becomes the most recent. */
		for (pp = &n->names; *pp != old; pp = &(*pp)->next)
			;
		*pp = old->next;
		old->next = n->names;
		n->names = old;
		return 0;
	}
	if (!node_get(t, parent))
		return 0; /* A parent the keeper never saw: nothing to find the node by there. */
	len = strlen(name);
	nm = malloc(sizeof(*nm) + len + 1);
	if (!nm)
		return -ENOMEM;
	/* Pin the parent first: removing old names below must not free it. */
	node_get(t, parent)->children++;
	if (old)
		name_remove(t, old);
	if (n->nnames >= NODE_NAMES_MAX) {
		struct node_name *oldest = n->names;

		while (oldest->next)
			oldest = oldest->next;
		name_remove(t, oldest);
	}
	memcpy(nm->name, name, len + 1);
	nm->unconfirmed = false;
	nm->hiding = false;
	nm->parent = parent;
	nm->node = n;
	nm->hash = name_hash(parent, name);
	if (keyset_add(&t->by_name, (uintptr_t)nm) < 0) {
		struct node *p = node_get(t, parent);

		free(nm);
		p->children--;
		if (unheld(p))
			node_free(t, p);
		return -ENOMEM;
	}
	if (last) {
		for (pp = &n->names; *pp; pp = &(*pp)->next)
			;
		nm->next = NULL;
		*pp = nm;
	} else {
		nm->next = n->names;
		n->names = nm;
	}
	n->nnames++;
	return 0;
}

int node_add_name(struct node_table *t, struct node *n, uint64_t parent, const char *name)
{
	return name_add(t, n, parent, name, true);
}

const char *node_name_of(const struct node *n)
{
	return n->names ? n->names->name : "";
}

int node_pin(struct node_table *t, uint64_t kid)
{
	struct node *n = node_get(t, kid);

	if (!n)
		return -ENOENT;
	n->pins++;
	node_changed(t, n);
	return 0;
}

void node_unpin(struct node_table *t, uint64_t kid)
{
	struct node *n = node_get(t, kid);

	if (!n || !n->pins)
		return;
	n->pins--;
	node_changed(t, n);
	if (unheld(n))
		node_free(t, n);
}

int node_path(struct node_table *t, uint64_t kid, char *buf, size_t size)
{
	const struct node_name *v[256];
	size_t depth = 0, len = 0;

	for (; kid != FUSE_ROOT_ID; kid = v[depth++]->parent) {
		struct node *n = node_get(t, kid);

		if (!n || !n->names)
			return -ENOENT;
		if (depth == ARRAY_SIZE(v))
			return -ENAMETOOLONG;
		v[depth] = n->names;
	}
	if (!size)
		return -ENAMETOOLONG;
	buf[0] = '\0';
	while (depth--) {
		int r = snprintf(buf + len, size - len, "%s%s", len ? "/" : "", v[depth]->name);

		if (r < 0 || (size_t)r >= size - len)
			return -ENAMETOOLONG;
		len += r;
	}
	return len;
}

const char *node_label(struct node_table *t, const struct node *n, const char *root, char *buf,
		       size_t size)
{
	char path[PATH_MAX];

	if (n->kid == FUSE_ROOT_ID)
		snprintf(buf, size, "%s", root);
	else if (node_path(t, n->kid, path, sizeof(path)) >= 0)
		snprintf(buf, size, "%s/%s", root, path);
	else
		snprintf(buf, size, "%s/.../%s", root, node_name_of(n));
	return buf;
}

/* Records what ino_remap needs of @n: its kernel ino, and its daemon ino where they differ. */
static void ino_track(struct node_table *t, struct node *n)
{
	if (!t->ino_remap || !n->k_ino)
		return;
	if (!idmap_get(&t->kino_held, n->k_ino))
		idmap_put(&t->kino_held, n->k_ino, n);
	if (n->epoch == t->epoch && n->d_ino && n->d_ino != n->k_ino)
		idmap_put(&t->ino_d2k, n->d_ino, (void *)(uintptr_t)n->k_ino);
}

static void ino_untrack(struct node_table *t, struct node *n)
{
	if (!t->ino_remap)
		return;
	if (n->k_ino && idmap_get(&t->kino_held, n->k_ino) == n)
		idmap_del(&t->kino_held, n->k_ino);
	if (n->epoch == t->epoch && n->d_ino &&
	    (uintptr_t)idmap_get(&t->ino_d2k, n->d_ino) == n->k_ino)
		idmap_del(&t->ino_d2k, n->d_ino);
}

uint64_t node_ino_to_kernel(struct node_table *t, uint64_t ino)
{
	struct node *holder;
	uint64_t k;

	if (!t->ino_remap || !ino)
		return ino;
	k = (uintptr_t)idmap_get(&t->ino_d2k, ino);
	if (k)
		return k;
	holder = idmap_get(&t->kino_held, ino);
	if (!holder || (holder->epoch == t->epoch && holder->d_ino == ino))
		return ino;
	/* Another object keeps this number for the kernel: this one gets a number of its own. */
	while (idmap_get(&t->kino_held, t->next_ino))
		t->next_ino++;
	k = t->next_ino++;
	if (idmap_put(&t->ino_d2k, ino, (void *)(uintptr_t)k) < 0)
		return ino;
	return k;
}

struct remap_ctx {
	struct node_table *t;
	int err;
};

static void remap_one(struct node *n, void *arg)
{
	struct remap_ctx *c = arg;

	if (!n->k_ino)
		return;
	if (!idmap_get(&c->t->kino_held, n->k_ino) &&
	    idmap_put(&c->t->kino_held, n->k_ino, n) < 0)
		c->err = -ENOMEM;
	if (n->epoch == c->t->epoch && !n->lost && n->d_ino && n->d_ino != n->k_ino &&
	    idmap_put(&c->t->ino_d2k, n->d_ino, (void *)(uintptr_t)n->k_ino) < 0)
		c->err = -ENOMEM;
}

int node_ino_remap(struct node_table *t)
{
	struct remap_ctx c = { t, 0 };

	if (!t->ino_remap) {
		t->ino_remap = true;
		t->next_ino = KINO_BASE;
	}
	node_each(t, remap_one, &c);
	return c.err;
}

static void did_release(struct node_table *t, struct node *n);

void node_lose(struct node_table *t, struct node *n, uint64_t *did, uint64_t *fwd)
{
	*did = n->did;
	*fwd = 0;
	if (n->epoch == t->epoch && !n->lost) {
		*fwd = n->d_nlookup;
		n->d_nlookup = 0;
		n->lost = true;
		did_release(t, n);
	}
	n->lost = true;
	n->replaced = true;
	node_changed(t, n);
}

static void node_free(struct node_table *t, struct node *n)
{
	node_changed(t, n);
	ino_untrack(t, n);
	keyset_remove(&t->by_kid, n->idx);
	did_release(t, n);
	t->count--;
	/* Clearing the names may cascade to parents; do it after n is out of the maps. */
	names_clear(t, n);
	slab_free(&t->slab, n->idx);
}

/* A zeroed node with the kid @kid, in the slab and by_kid; NULL when out of memory. */
static struct node *node_alloc(struct node_table *t, uint64_t kid)
{
	uint32_t idx;
	struct node *n = slab_alloc(&t->slab, &idx);

	if (!n)
		return NULL;
	n->idx = idx;
	n->kid = kid;
	if (keyset_add(&t->by_kid, idx) < 0) {
		slab_free(&t->slab, idx);
		return NULL;
	}
	t->count++;
	return n;
}

/* Undoes node_alloc() of @n, which is in no other map. */
static void node_unalloc(struct node_table *t, struct node *n)
{
	keyset_remove(&t->by_kid, n->idx);
	slab_free(&t->slab, n->idx);
	t->count--;
}

int node_table_init(struct node_table *t, uint64_t max)
{
	struct node *root;

	memset(t, 0, sizeof(*t));
	slab_init(&t->slab, sizeof(struct node));
	keyset_init(&t->by_kid, 4, kid_key, t);
	keyset_init(&t->by_did, 4, did_key, t);
	keyset_init(&t->by_name, sizeof(void *), name_key, t);
	t->epoch = 1;
	t->next_kid = KID_BASE;
	t->max = max;
	root = node_alloc(t, FUSE_ROOT_ID);
	if (!root) {
		node_table_free(t);
		return -ENOMEM;
	}
	root->did = FUSE_ROOT_ID;
	root->k_nlookup = root->d_nlookup = 1;
	root->type = S_IFDIR;
	root->epoch = t->epoch;
	if (keyset_add(&t->by_did, root->idx) < 0) {
		node_table_free(t);
		return -ENOMEM;
	}
	return 0;
}

static void free_names(struct node *n, void *arg)
{
	while (n->names) {
		struct node_name *nm = n->names;

		n->names = nm->next;
		free(nm);
	}
}

void node_table_free(struct node_table *t)
{
	changes_free(&t->changes);
	node_each(t, free_names, NULL);
	keyset_free(&t->by_kid);
	keyset_free(&t->by_did);
	keyset_free(&t->by_name);
	slab_free_all(&t->slab);
	t->count = 0;
	idmap_free(&t->ino_d2k);
	idmap_free(&t->kino_held);
}

struct node_name *node_find_name(struct node_table *t, uint64_t parent, const char *name)
{
	uint32_t h = name_hash(parent, name);
	size_t pos = KEYSET_START;
	uint64_t v;

	while ((v = keyset_next(&t->by_name, h, &pos))) {
		struct node_name *nm = (struct node_name *)(uintptr_t)v;

		if (nm->parent == parent && !strcmp(nm->name, name))
			return nm;
	}
	return NULL;
}

struct node *node_find(struct node_table *t, uint64_t parent, const char *name)
{
	struct node_name *nm = node_find_name(t, parent, name);

	return nm ? nm->node : NULL;
}

static uint64_t new_kid(struct node_table *t, uint64_t did)
{
	/* Keep the daemon's own ID when it is free: logs then match the daemon's. */
	if (did > FUSE_ROOT_ID && !node_get(t, did))
		return did;
	while (node_get(t, t->next_kid))
		t->next_kid++;
	return t->next_kid++;
}

/*
 * Lazy resolution: an entry for (@parent, @name) whose daemon ID no node has, where that name
 * names a node the current daemon has not been asked about yet, is that node's resolution if it
 * is the same object (type, inode number and generation as before; lazy resolution runs only
 * under a daemon whose numbers are stable). Returns the node, resolved with no lookup counted
 * yet (the caller counts the entry's), or NULL: no such node, or another object.
 */
static struct node *adopt_by_name(struct node_table *t, uint64_t parent, const char *name,
				  const struct fuse_entry_out *e)
{
	struct node *x = node_find(t, parent, name);

	/* Another object: the name goes to a new node; @x is looked for by its other names,
	 * as recovery would (other_names()), and lost if none finds it. */
	if (!x || !node_unresolved(t, x) || (e->attr.mode & S_IFMT) != x->type ||
	    e->attr.ino != x->d_ino || e->generation != x->d_gen)
		return NULL;
	if (node_resolved(t, x, e) < 0)
		return NULL;
	x->d_nlookup = 0;
	return x;
}

struct node *node_learn(struct node_table *t, uint64_t parent, const char *name,
			struct fuse_entry_out *e, int *err)
{
	struct node *n = did_owner(t, e->nodeid);

	*err = 0;
	/* After a recovery only, until every node is looked up again: a probe per new entry. */
	if (!n && name && t->unresolved)
		n = adopt_by_name(t, parent, name, e);
	if (!n) {
		if (t->count >= t->max) {
			*err = -ENFILE;
			return NULL;
		}
		n = node_alloc(t, new_kid(t, e->nodeid));
		if (!n) {
			*err = -ENOMEM;
			return NULL;
		}
		n->did = e->nodeid;
		if (keyset_add(&t->by_did, n->idx) < 0) {
			node_unalloc(t, n);
			*err = -ENOMEM;
			return NULL;
		}
		n->k_gen = e->generation;
		n->d_gen = e->generation;
		n->d_ino = e->attr.ino;
		n->k_ino = node_ino_to_kernel(t, e->attr.ino);
		if (e->attr.ino == e->nodeid)
			t->ino_is_nodeid++;
		else
			t->ino_not_nodeid++;
		n->type = e->attr.mode & S_IFMT;
		n->epoch = t->epoch;
		ino_track(t, n);
	}
	n->k_nlookup++;
	n->d_nlookup++;
	node_changed(t, n);
	/* A failed name update only costs recoverability of this node, not correctness now. */
	name_add(t, n, parent, name, false);
	e->nodeid = n->kid;
	e->generation = n->k_gen;
	if (t->ino_remap)
		e->attr.ino = n->k_ino;
	return n;
}

static void release_lookups(struct node_table *t, struct node *n, uint64_t count, uint64_t *did,
			    uint64_t *fwd)
{
	bool current = n->epoch == t->epoch && !n->lost;

	*did = n->did;
	*fwd = 0;
	n->k_nlookup = count >= n->k_nlookup ? 0 : n->k_nlookup - count;
	node_changed(t, n);
	if (current) {
		/*
		 * Before any restart both counts move together. After one, the daemon holds fewer
		 * lookups than the kernel: keep at least one until the kernel lets go of the last.
		 */
		if (!n->k_nlookup)
			*fwd = n->d_nlookup;
		else if (n->d_nlookup > 1)
			*fwd = MIN(count, n->d_nlookup - 1);
		n->d_nlookup -= *fwd;
	}
	if (n->k_nlookup || n->kid == FUSE_ROOT_ID)
		return;
	did_release(t, n);
	n->epoch = 0; /* The daemon no longer knows it; only a name may still matter. */
	if (unheld(n))
		node_free(t, n);
}

void node_forget(struct node_table *t, uint64_t kid, uint64_t count, uint64_t *did, uint64_t *fwd)
{
	struct node *n = node_get(t, kid);

	*did = kid;
	*fwd = 0;
	if (!n)
		return;
	release_lookups(t, n, count, did, fwd);
}

void node_unlearn(struct node_table *t, uint64_t kid, uint64_t *did, uint64_t *fwd)
{
	node_forget(t, kid, 1, did, fwd);
}

void node_unlink(struct node_table *t, uint64_t parent, const char *name)
{
	struct node_name *nm = node_find_name(t, parent, name);

	if (nm)
		name_remove(t, nm);
}

int node_rename(struct node_table *t, uint64_t oldparent, const char *oldname, uint64_t newparent,
		const char *newname, bool exchange)
{
	struct node_name *src = node_find_name(t, oldparent, oldname);
	struct node_name *dst = node_find_name(t, newparent, newname);
	struct node *s = src ? src->node : NULL, *d = dst ? dst->node : NULL;
	int r = 0;

	/* No source: the rename was already recorded (a replay found it done). Two names of one
	 * file: rename(2) does nothing. */
	if (!s || s == d)
		return 0;
	/* Pin both parents: removing the last names in them must not free them. */
	node_get(t, oldparent)->children++;
	if (node_get(t, newparent))
		node_get(t, newparent)->children++;
	name_remove(t, src);
	if (dst)
		name_remove(t, dst);
	r = name_add(t, s, newparent, newname, false);
	if (exchange && d && !r)
		r = name_add(t, d, oldparent, oldname, false);
	node_unpin_children(t, oldparent);
	node_unpin_children(t, newparent);
	return r;
}

int node_to_daemon(struct node_table *t, uint64_t kid, uint64_t *did)
{
	struct node *n = node_get(t, kid);

	if (!n) {
		/* Before any restart the kernel's IDs are the daemon's; after one, an ID the
		 * keeper does not know would reach a daemon that never handed it out. */
		*did = kid;
		return t->epoch == 1 ? 0 : -ESTALE;
	}
	if (n->lost || n->epoch != t->epoch)
		return -ESTALE;
	*did = n->did;
	return 0;
}

int node_to_kernel(struct node_table *t, uint64_t did, uint64_t *kid)
{
	struct node *n = did_owner(t, did);

	if (!n)
		return -ENOENT;
	*kid = n->kid;
	return 0;
}

void node_new_epoch(struct node_table *t)
{
	struct node *root = node_get(t, FUSE_ROOT_ID);

	t->epoch++;
	t->unresolved = true;
	keyset_free(&t->by_did);
	/* The old daemon's inode numbers mean nothing to the new one. */
	idmap_free(&t->ino_d2k);
	root->epoch = t->epoch;
	root->d_nlookup = 1;
	keyset_add(&t->by_did, root->idx);
}

struct did_owner {
	struct node_table *t;
	struct node *skip;
	uint64_t did;
	struct node *found;
};

static void find_did_owner(struct node *n, void *arg)
{
	struct did_owner *o = arg;

	if (!o->found && n != o->skip && n->epoch == o->t->epoch && !n->lost && n->did == o->did)
		o->found = n;
}

/*
 * @n no longer stands for the daemon's did: it leaves by_did, if it holds the entry (whatever
 * its epoch: an index left behind would name the record's next tenant). If another node resolved
 * to that did (hard links, or the object another name now names: did_shared), it takes the
 * entry over, so that the daemon's next answer naming the did reaches that node rather than a
 * new one. Rare: a walk of the table, only for a shared did.
 */
static void did_release(struct node_table *t, struct node *n)
{
	struct did_owner o = { t, n, n->did, NULL };

	if (did_owner(t, n->did) != n)
		return;
	keyset_remove(&t->by_did, n->idx);
	if (!n->did_shared)
		return;
	node_each(t, find_did_owner, &o);
	if (o.found)
		keyset_add(&t->by_did, o.found->idx);
}

void node_unresolve(struct node_table *t, struct node *n)
{
	if (n->epoch == t->epoch)
		did_release(t, n);
	n->d_nlookup = 0;
}

int node_resolved(struct node_table *t, struct node *n, const struct fuse_entry_out *e)
{
	uint64_t did = e->nodeid;
	struct node *owner;

	n->did = did;
	n->d_ino = e->attr.ino;
	n->d_gen = e->generation;
	n->d_nlookup = 1;
	n->epoch = t->epoch;
	/* Hard links may resolve to one did: the first node keeps the reverse entry. */
	owner = did_owner(t, did);
	if (!owner)
		return keyset_add(&t->by_did, n->idx);
	if (owner != n)
		owner->did_shared = n->did_shared = true;
	return 0;
}

struct pending_ctx {
	struct node_table *t;
	struct node_pending *np;
};

static void collect_unresolved(struct node *n, void *arg)
{
	struct pending_ctx *c = arg;

	if (node_unresolved(c->t, n) && !n->queued) {
		c->np->kids[c->np->count++] = n->kid;
		n->queued = true;
	}
}

int node_pending_begin(struct node_table *t, struct node_pending *np)
{
	struct pending_ctx c = { t, np };

	*np = (struct node_pending){ .kids = malloc((t->count + 1) * sizeof(*np->kids)),
				     .cap = t->count + 1 };
	if (!np->kids)
		return -ENOMEM;
	node_each(t, collect_unresolved, &c);
	return 0;
}

/* The name by which @n can be looked up now: of a resolved parent, most recently learned. */
static struct node_name *name_to_look_up(struct node_table *t, struct node *n)
{
	for (struct node_name *nm = n->names; nm; nm = nm->next) {
		struct node *p = node_get(t, nm->parent);

		if (p && p->epoch == t->epoch && !p->lost)
			return nm;
	}
	return NULL;
}

size_t node_pending(struct node_table *t, struct node_pending *np, struct node_name **out,
		    size_t max)
{
	bool from_start = np->pos == 0;
	size_t count = 0;

	/*
	 * Forward from pos, so that no node is collected twice in one call: an entry taken out
	 * is replaced by the last one, not looked at yet. Past the end, a call that found
	 * nothing starts again from the first entry, once.
	 */
	for (;;) {
		struct node *n;
		struct node_name *nm;

		if (np->pos >= np->count) {
			np->pos = 0;
			if (count || from_start)
				return count;
			from_start = true;
			continue;
		}
		if (count == max)
			return count;
		n = node_get(t, np->kids[np->pos]);
		if (!n || n->epoch == t->epoch || n->lost) {
			if (n)
				n->queued = false;
			np->kids[np->pos] = np->kids[--np->count];
			continue;
		}
		np->pos++;
		nm = n->deferred ? NULL : name_to_look_up(t, n);
		if (nm)
			out[count++] = nm;
	}
}

void node_pending_end(struct node_table *t, struct node_pending *np)
{
	for (size_t i = 0; i < np->count; i++) {
		struct node *n = node_get(t, np->kids[i]);

		if (n)
			n->queued = false;
	}
	free(np->kids);
	*np = (struct node_pending){ 0 };
}

/* Appends @n to @np (not yet in it); grows the array. */
static int pending_push(struct node_pending *np, struct node *n)
{
	if (np->count == np->cap) {
		size_t cap = np->cap ? 2 * np->cap : 16;
		uint64_t *v = realloc(np->kids, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		np->kids = v;
		np->cap = cap;
	}
	np->kids[np->count++] = n->kid;
	n->queued = true;
	return 0;
}

int node_pending_add(struct node_table *t, struct node_pending *np, uint64_t kid)
{
	struct node *n = node_get(t, kid);
	size_t from = np->count;

	if (!n || n->queued || !node_unresolved(t, n))
		return 0;
	if (pending_push(np, n) < 0)
		return -ENOMEM;
	/* Breadth first over the names' parents, from what this call added. */
	for (size_t i = from; i < np->count; i++) {
		n = node_get(t, np->kids[i]);
		for (struct node_name *nm = n ? n->names : NULL; nm; nm = nm->next) {
			struct node *parent = node_get(t, nm->parent);

			if (parent && !parent->queued && node_unresolved(t, parent) &&
			    pending_push(np, parent) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

int node_pending_scan(struct node_table *t, uint32_t *pos, size_t max, struct node_pending *np)
{
	size_t added = 0;

	for (; *pos < t->slab.used && added < max; (*pos)++) {
		/* A free record's kid is not its own: by_kid names another record, or none. */
		struct node *n = slab_at(&t->slab, *pos + 1);

		if (node_get(t, n->kid) != n || n->queued || !node_unresolved(t, n))
			continue;
		if (node_pending_add(t, np, n->kid) < 0)
			return -ENOMEM;
		added++;
	}
	return *pos < t->slab.used;
}

uint64_t node_count_unresolved(struct node_table *t)
{
	uint64_t count = 0;

	for (uint32_t i = 0; t->unresolved && i < t->slab.used; i++) {
		/* A free record's kid is not its own: by_kid names another record, or none. */
		struct node *n = slab_at(&t->slab, i + 1);

		count += node_get(t, n->kid) == n && node_unresolved(t, n);
	}
	return count;
}

uint64_t node_lose_pending(struct node_table *t, struct node_pending *np)
{
	uint64_t count = 0;

	for (size_t i = 0; i < np->count; i++) {
		struct node *n = node_get(t, np->kids[i]);

		if (n && node_unresolved(t, n)) {
			n->lost = true;
			node_changed(t, n);
			count++;
		}
	}
	return count;
}

/* ---- Across an execve (image.h) --------------------------------------------------------- */

enum { TAG_NODES = 0x4e4f4445 /* "NODE" */, TAG_NODES_END = 0x2f4e4f44 };

static void save_node(struct node *n, void *arg)
{
	struct image *im = arg;

	image_u64(im, n->kid);
	image_u64(im, n->did);
	image_u64(im, n->k_nlookup);
	image_u64(im, n->d_nlookup);
	image_u64(im, n->k_gen);
	image_u32(im, n->opened);
	image_u32(im, n->pins);
	image_u32(im, n->type);
	image_u32(im, n->epoch);
	image_u64(im, n->k_ino);
	image_u64(im, n->d_ino);
	image_u64(im, n->d_gen);
	image_u64(im, n->dver);
	image_u64(im, n->changed_ns);
	image_bool(im, n->lost);
	image_bool(im, n->replaced);
	image_bool(im, n->deferred);
}

static void save_names(struct node *n, void *arg)
{
	struct image *im = arg;

	image_u64(im, n->kid);
	image_u32(im, n->nnames);
	for (const struct node_name *nm = n->names; nm; nm = nm->next) {
		image_u64(im, nm->parent);
		image_bool(im, nm->unconfirmed);
		image_bool(im, nm->hiding);
		image_str(im, nm->name);
	}
}

static void save_pair(uint64_t key, void *val, void *arg)
{
	image_u64(arg, key);
	image_u64(arg, (uintptr_t)val);
}

/* A map whose values are nodes, saved as their kids. */
static void save_node_ref(uint64_t key, void *val, void *arg)
{
	image_u64(arg, key);
	image_u64(arg, ((const struct node *)val)->kid);
}

/* by_did, saved as save_node_ref() saves a map: (did, kid) pairs. */
static void save_did(uint64_t idx, void *arg)
{
	const struct node *n = slab_at(&((const struct node_table *)((void **)arg)[0])->slab, idx);

	image_u64(((void **)arg)[1], n->did);
	image_u64(((void **)arg)[1], n->kid);
}

/* Reads what node_table_head_save() wrote. */
static void head_load(struct node_table *t, struct image *im)
{
	t->epoch = image_get_u32(im);
	/* What the replaced keeper left unresolved is not told: as after node_new_epoch(). */
	t->unresolved = true;
	t->next_kid = image_get_u64(im);
	t->ino_remap = image_get_bool(im);
	t->next_ino = image_get_u64(im);
	t->ino_is_nodeid = image_get_u64(im);
	t->ino_not_nodeid = image_get_u64(im);
}

void node_table_save(const struct node_table *t, struct image *im)
{
	image_tag(im, TAG_NODES);
	node_table_head_save(t, im);
	/* Every node first, then the names, which need their parents. */
	image_u64(im, t->by_kid.count);
	node_each(t, save_node, im);
	node_each(t, save_names, im);
	image_u64(im, t->by_did.count);
	keyset_each(&t->by_did, save_did, (void *[]){ (void *)t, im });
	image_u64(im, t->ino_d2k.count);
	idmap_each(&t->ino_d2k, save_pair, im);
	image_u64(im, t->kino_held.count);
	idmap_each(&t->kino_held, save_node_ref, im);
	image_tag(im, TAG_NODES_END);
}

static bool load_node(struct node_table *t, struct image *im)
{
	struct node tmp = { 0 }, *n;

	tmp.kid = image_get_u64(im);
	tmp.did = image_get_u64(im);
	tmp.k_nlookup = image_get_u64(im);
	tmp.d_nlookup = image_get_u64(im);
	tmp.k_gen = image_get_u64(im);
	tmp.opened = image_get_u32(im);
	tmp.pins = image_get_u32(im);
	tmp.type = image_get_u32(im);
	tmp.epoch = image_get_u32(im);
	tmp.k_ino = image_get_u64(im);
	tmp.d_ino = image_get_u64(im);
	tmp.d_gen = image_get_u64(im);
	tmp.dver = image_get_u64(im);
	tmp.changed_ns = image_get_u64(im);
	tmp.lost = image_get_bool(im);
	tmp.replaced = image_get_bool(im);
	tmp.deferred = image_get_bool(im);
	if (im->err || !tmp.kid)
		return image_bad(im);
	n = node_get(t, tmp.kid);
	if (n && tmp.kid != FUSE_ROOT_ID)
		return image_bad(im); /* twice */
	if (!n)
		n = node_alloc(t, tmp.kid);
	if (!n) {
		im->err = -ENOMEM;
		return false;
	}
	tmp.idx = n->idx;
	*n = tmp;
	return true;
}

static bool load_names(struct node_table *t, struct image *im)
{
	struct node *n = node_get(t, image_get_u64(im));
	uint32_t count = image_get_u32(im);

	if (!n || n->names || count > NODE_NAMES_MAX)
		return image_bad(im);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t parent = image_get_u64(im);
		bool unconfirmed = image_get_bool(im), hiding = image_get_bool(im);
		_cleanup_free_ char *name = image_get_str(im);
		struct node_name *nm;

		if (!name || !node_get(t, parent) || node_find_name(t, parent, name) ||
		    n->kid == FUSE_ROOT_ID)
			return image_bad(im);
		if (name_add(t, n, parent, name, true) < 0) {
			im->err = -ENOMEM;
			return false;
		}
		for (nm = n->names; nm->next; nm = nm->next)
			;
		nm->unconfirmed = unconfirmed;
		nm->hiding = hiding;
	}
	return true;
}

/* Marks the nodes that share a did with its owner in by_did (did_shared is not saved). */
static void note_shared(struct node *n, void *arg)
{
	const struct node_table *t = arg;
	struct node *owner;

	if (n->epoch != t->epoch || n->lost)
		return;
	owner = did_owner(t, n->did);
	if (owner && owner != n)
		owner->did_shared = n->did_shared = true;
}

/* Loads by_did, saved by save_did(): each did must be its node's, and only once. */
static bool load_dids(struct node_table *t, struct image *im)
{
	uint64_t count = image_get_u64(im);

	for (uint64_t i = 0; i < count && !im->err; i++) {
		uint64_t did = image_get_u64(im);
		struct node *n = node_get(t, image_get_u64(im));

		if (im->err || !n || n->did != did || did_owner(t, did))
			return image_bad(im);
		if (keyset_add(&t->by_did, n->idx) < 0) {
			im->err = -ENOMEM;
			return false;
		}
	}
	return !im->err;
}

/* Loads a map saved by save_node_ref() or, with @nodes false, save_pair(). */
static bool load_map(struct node_table *t, struct image *im, struct idmap *m, bool nodes)
{
	uint64_t count = image_get_u64(im);

	for (uint64_t i = 0; i < count && !im->err; i++) {
		uint64_t key = image_get_u64(im), v = image_get_u64(im);
		void *val = nodes ? (void *)node_get(t, v) : (void *)(uintptr_t)v;

		if (im->err || !val)
			return image_bad(im);
		if (idmap_put(m, key, val) < 0) {
			im->err = -ENOMEM;
			return false;
		}
	}
	return !im->err;
}

int node_table_load(struct node_table *t, struct image *im)
{
	uint64_t count;

	if (!image_expect(im, TAG_NODES))
		return im->err;
	head_load(t, im);
	/* The root's entry in by_did is saved with the others. */
	keyset_free(&t->by_did);
	count = image_get_u64(im);
	for (uint64_t i = 0; i < count && !im->err; i++)
		load_node(t, im);
	for (uint64_t i = 0; i < count && !im->err; i++)
		load_names(t, im);
	if (!im->err && t->count != count)
		image_bad(im);
	if (!im->err && load_dids(t, im))
		node_each(t, note_shared, t);
	if (!im->err)
		load_map(t, im, &t->ino_d2k, false);
	if (!im->err)
		load_map(t, im, &t->kino_held, true);
	image_expect(im, TAG_NODES_END);
	return im->err;
}

/* ---- The resume journal (resume.c) ------------------------------------------------------- */

void node_table_head_save(const struct node_table *t, struct image *im)
{
	image_u32(im, t->epoch);
	image_u64(im, t->next_kid);
	image_bool(im, t->ino_remap);
	image_u64(im, t->next_ino);
	image_u64(im, t->ino_is_nodeid);
	image_u64(im, t->ino_not_nodeid);
}

void node_item_save(const struct node *n, struct image *im)
{
	image_u64(im, n->kid);
	image_u64(im, n->k_nlookup);
	image_u64(im, n->k_gen);
	image_u64(im, n->k_ino);
	/* The last daemon's inode number and generation: recovery's identity check compares
	 * what the next daemon finds under the node's name with them. */
	image_u64(im, n->d_ino);
	image_u64(im, n->d_gen);
	image_u32(im, n->type);
	image_u32(im, n->opened);
	image_u32(im, n->pins);
	image_u64(im, n->dver);
	image_u64(im, n->changed_ns);
	image_bool(im, n->lost);
	image_bool(im, n->replaced);
	image_u32(im, n->nnames);
	/* Least recent first: build adds each as the most recent. */
	for (uint32_t i = n->nnames; i-- > 0;) {
		const struct node_name *nm = n->names;

		for (uint32_t j = 0; j < i && nm; j++)
			nm = nm->next;
		image_u64(im, nm ? nm->parent : 0);
		image_bool(im, nm && nm->unconfirmed);
		image_bool(im, nm && nm->hiding);
		image_str(im, nm ? nm->name : "");
	}
}

/* Reads the fields of an item that node_item_save() wrote, up to its names, into @n. */
static void item_fields(struct image *im, struct node *n)
{
	n->kid = image_get_u64(im);
	n->k_nlookup = image_get_u64(im);
	n->k_gen = image_get_u64(im);
	n->k_ino = image_get_u64(im);
	n->d_ino = image_get_u64(im);
	n->d_gen = image_get_u64(im);
	n->type = image_get_u32(im);
	n->opened = image_get_u32(im);
	n->pins = image_get_u32(im);
	n->dver = image_get_u64(im);
	n->changed_ns = image_get_u64(im);
	n->lost = image_get_bool(im);
	n->replaced = image_get_bool(im);
}

/* Pass 1 of node_table_build(): the node of one item, without its names. */
static void build_node(uint64_t key, void *val, void *arg)
{
	struct node_table *t = ((void **)arg)[0];
	int *err = ((void **)arg)[1];
	const struct image_span *sp = val;
	struct node tmp = { 0 }, *n;
	struct image im;

	if (*err)
		return;
	image_view(&im, sp->data, sp->len);
	item_fields(&im, &tmp);
	if (im.err || tmp.kid != key || !key) {
		*err = -EBADMSG;
		return;
	}
	n = node_get(t, key);
	if (n) {
		/* The root: what node_table_init() made of it stays but for the kernel's side. */
		n->k_gen = tmp.k_gen;
		n->k_ino = tmp.k_ino;
		n->d_ino = tmp.d_ino;
		n->d_gen = tmp.d_gen;
		n->opened = tmp.opened;
		n->pins = tmp.pins;
		n->dver = tmp.dver;
		n->changed_ns = tmp.changed_ns;
		return;
	}
	/* epoch 0, no did: no daemon knows it; recovery looks it up again. */
	n = node_alloc(t, key);
	if (!n) {
		*err = -ENOMEM;
		return;
	}
	tmp.idx = n->idx;
	*n = tmp;
}

/* Pass 2: the names of one item, in directories that are in the table. */
static void build_names(uint64_t key, void *val, void *arg)
{
	struct node_table *t = ((void **)arg)[0];
	int *err = ((void **)arg)[1];
	const struct image_span *sp = val;
	struct node *n = node_get(t, key), skip;
	struct image im;
	uint32_t count;

	if (*err || !n)
		return;
	image_view(&im, sp->data, sp->len);
	item_fields(&im, &skip);
	count = image_get_u32(&im);
	if (count > NODE_NAMES_MAX)
		image_bad(&im);
	for (uint32_t i = 0; i < count && !im.err; i++) {
		uint64_t parent = image_get_u64(&im);
		bool unconfirmed = image_get_bool(&im), hiding = image_get_bool(&im);
		_cleanup_free_ char *name = image_get_str(&im);
		struct node_name *nm;

		if (!name || !*name || strchr(name, '/')) {
			image_bad(&im);
			break;
		}
		if (!node_get(t, parent) || parent == key)
			continue;
		if (name_add(t, n, parent, name, false) < 0) {
			*err = -ENOMEM;
			return;
		}
		nm = node_find_name(t, parent, name);
		if (nm && nm->node == n) {
			nm->unconfirmed = unconfirmed;
			nm->hiding = hiding;
		}
	}
	if (im.err)
		*err = -EBADMSG;
}

/* Pass 3: what nothing holds goes, as it would have gone in the table the items came from. */
static void collect_unheld(struct node *n, void *arg)
{
	uint64_t *v = ((void **)arg)[0];
	size_t *count = ((void **)arg)[1];

	if (unheld(n))
		v[(*count)++] = n->kid;
}

int node_table_build(struct node_table *t, struct image *head, const struct idmap *items)
{
	int err = 0;
	void *arg[2] = { t, &err };
	uint64_t *v;
	size_t nv = 0;
	void *carg[2];

	head_load(t, head);
	if (head->err || !t->epoch)
		return image_fail(head);
	/* The root is every daemon's: it needs no lookup (node_new_epoch() keeps it so). */
	node_get(t, FUSE_ROOT_ID)->epoch = t->epoch;
	idmap_each(items, build_node, arg);
	if (!err)
		idmap_each(items, build_names, arg);
	if (err)
		return err;
	v = malloc((t->count + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	carg[0] = v;
	carg[1] = &nv;
	node_each(t, collect_unheld, carg);
	/* Freeing one may free its parents: each is looked up again. */
	for (size_t i = 0; i < nv; i++) {
		struct node *n = node_get(t, v[i]);

		if (n && unheld(n))
			node_free(t, n);
	}
	free(v);
	if (t->ino_remap)
		err = node_ino_remap(t);
	return err;
}
