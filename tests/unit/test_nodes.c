/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The node table: learning, forgetting, renames, and translation across a restart. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proxy/nodes.h"
#include "tap.h"

static struct fuse_entry_out entry(uint64_t did, uint32_t mode)
{
	struct fuse_entry_out e = { .nodeid = did, .generation = 7 };

	e.attr.mode = mode;
	return e;
}

/* Every node's item of @t (node_item_save()) into @items, each in an image of its own. */
static void items_of(struct node_table *t, struct idmap *items, struct image *im, size_t max)
{
	size_t i = 0;

	for (uint64_t k = 0; k < 0x10000 && i < max; k++) {
		struct node *n = node_get(t, k);
		struct image_span *sp;

		if (!n)
			continue;
		memset(&im[i], 0, sizeof(im[i]));
		node_item_save(n, &im[i]);
		sp = malloc(sizeof(*sp));
		sp->data = im[i].buf;
		sp->len = im[i].len;
		idmap_put(items, k, sp);
		i++;
	}
}

/* The resume journal's items: a table built from them is the kernel's view of the original. */
static void test_items(void)
{
	struct node_table t, b;
	struct fuse_entry_out e;
	struct idmap items = { 0 };
	struct image im[8], head = { 0 }, hv;
	struct node *f, *g;
	int err;

	node_table_init(&t, 100);
	t.changes.on = true;
	e = entry(0x10, S_IFDIR | 0755);
	node_learn(&t, FUSE_ROOT_ID, "d", &e, &err);
	e = entry(0x20, S_IFREG | 0644);
	f = node_learn(&t, 0x10, "f", &e, &err);
	e = entry(0x20, S_IFREG | 0644);
	node_learn(&t, FUSE_ROOT_ID, "link", &e, &err);
	f->opened = 2;
	f->dver = 9;
	ok(changes_unique(&t.changes) == 2 && t.changes.key[0] == 0x10 && t.changes.key[1] == 0x20,
	   "the two nodes learnt are noted as changed, once each");
	items_of(&t, &items, im, 8);
	node_table_head_save(&t, &head);
	node_table_init(&b, 100);
	image_view(&hv, head.buf, head.len);
	ok(node_table_build(&b, &hv, &items) == 0, "a table is built from the items");
	g = node_get(&b, f->kid);
	ok(g && g->k_nlookup == 2 && g->opened == 2 && g->dver == 9 && g->nnames == 2 &&
	   !strcmp(g->names->name, "link") && !strcmp(g->names->next->name, "f") && g->epoch == 0,
	   "a node comes back with its lookups, open count, data version and names, in order, "
	   "and no daemon's ID");
	ok(node_find(&b, 0x10, "f") == g && node_get(&b, 0x10)->children == 1,
	   "names are indexed and pin their directory");
	ok(node_to_daemon(&b, f->kid, &(uint64_t){ 0 }) == -ESTALE,
	   "a built node waits for recovery (-ESTALE until resolved)");
	node_table_free(&b);

	/* Without its directory's item, a name is dropped, and a node nothing holds goes. */
	free(idmap_del(&items, 0x10));
	node_table_init(&b, 100);
	image_view(&hv, head.buf, head.len);
	ok(node_table_build(&b, &hv, &items) == 0 && !node_get(&b, 0x10) &&
	   (g = node_get(&b, f->kid)) && g->nnames == 1 && !strcmp(g->names->name, "link"),
	   "a name under a directory the items lack is dropped");
	node_table_free(&b);

	/* A malformed item is refused. */
	((struct image_span *)idmap_get(&items, f->kid))->len = 12;
	node_table_init(&b, 100);
	image_view(&hv, head.buf, head.len);
	ok(node_table_build(&b, &hv, &items) == -EBADMSG, "a truncated item is refused");
	node_table_free(&b);

	free(idmap_del(&items, FUSE_ROOT_ID));
	free(idmap_del(&items, f->kid));
	idmap_free(&items);
	for (size_t i = 0; i < 3; i++)
		image_free(&im[i]);
	image_free(&head);
	node_table_free(&t);
}

int main(void)
{
	struct node_table t;
	struct fuse_entry_out e;
	struct node *dir, *file, *n;
	uint64_t did, fwd, kid;
	int err;

	ok(node_table_init(&t, 100) == 0, "table initialises");
	ok(node_get(&t, FUSE_ROOT_ID) != NULL, "the root is known");

	e = entry(0x1000, S_IFDIR | 0755);
	dir = node_learn(&t, FUSE_ROOT_ID, "dir", &e, &err);
	ok(dir && e.nodeid == 0x1000 && e.generation == 7, "a new node keeps the daemon's ID");
	e = entry(0x2000, S_IFREG | 0644);
	file = node_learn(&t, 0x1000, "file", &e, &err);
	ok(file && node_find(&t, 0x1000, "file") == file, "a node is found by parent and name");
	e = entry(0x2000, S_IFREG | 0644);
	ok(node_learn(&t, 0x1000, "file", &e, &err) == file && file->k_nlookup == 2,
	   "a second lookup counts on the same node");

	ok(node_rename(&t, 0x1000, "file", FUSE_ROOT_ID, "moved", false) == 0 &&
		   node_find(&t, FUSE_ROOT_ID, "moved") == file &&
		   node_find(&t, 0x1000, "file") == NULL,
	   "rename moves the name");

	/* A restart: the new daemon's IDs differ. */
	node_new_epoch(&t);
	ok(node_to_daemon(&t, 0x1000, &did) == -ESTALE, "unresolved nodes are not translated");
	{
		struct node_name *batch[8];
		struct node_pending np;
		size_t count;

		ok(node_pending_begin(&t, &np) == 0 && np.count == 2, "two nodes to look up");
		count = node_pending(&t, &np, batch, 8);
		ok(count == 2, "both nodes are pending (parent is the root): %zu", count);
		count = node_pending(&t, &np, batch, 1);
		ok(count == 1, "a later call finds what is still unresolved, at most max: %zu",
		   count);
		node_pending_end(&t, &np);
	}
	e = entry(0x9000, S_IFDIR | 0755);
	ok(node_resolved(&t, dir, &e) == 0, "resolution records the new ID");
	e = entry(0x9100, S_IFREG | 0644);
	ok(node_resolved(&t, file, &e) == 0, "for each node");
	ok(node_to_daemon(&t, 0x1000, &did) == 0 && did == 0x9000, "kernel ID maps to the new ID");
	ok(node_to_kernel(&t, 0x9100, &kid) == 0 && kid == 0x2000, "and back for notifications");

	/* A lookup from the new daemon reuses the kernel's ID and generation. */
	e = entry(0x9100, S_IFREG | 0644);
	e.generation = 99;
	n = node_learn(&t, FUSE_ROOT_ID, "moved", &e, &err);
	ok(n == file && e.nodeid == 0x2000 && e.generation == 7,
	   "replies are rewritten to the kernel's ID and generation");

	/* Kernel holds 3 lookups, the new daemon 2: the daemon keeps one until the last. */
	node_forget(&t, 0x2000, 2, &did, &fwd);
	ok(did == 0x9100 && fwd == 1, "a partial forget leaves the daemon one lookup (fwd %lu)",
	   (unsigned long)fwd);
	node_forget(&t, 0x2000, 1, &did, &fwd);
	ok(fwd == 1 && node_get(&t, 0x2000) == NULL, "the last forget frees the node");

	/* A new node whose daemon ID is taken by a kernel ID gets a fresh kernel ID. */
	e = entry(0x1000 /* still the kernel's "dir" */, S_IFREG);
	n = node_learn(&t, FUSE_ROOT_ID, "other", &e, &err);
	ok(n && n->kid != 0x1000 && e.nodeid == n->kid, "colliding daemon IDs are remapped");

	node_unlink(&t, FUSE_ROOT_ID, "other");
	ok(node_find(&t, FUSE_ROOT_ID, "other") == NULL, "unlink drops the name");

	/* Hard links: a node keeps every name it was looked up by. */
	{
		struct node *f, *g;
		struct node_name *batch[8];
		char path[64];

		e = entry(0x3000, S_IFDIR | 0755);
		dir = node_learn(&t, FUSE_ROOT_ID, "d", &e, &err);
		e = entry(0x3100, S_IFREG | 0644);
		f = node_learn(&t, 0x3000, "f", &e, &err);
		e = entry(0x3100, S_IFREG | 0644);
		g = node_learn(&t, 0x3000, "g", &e, &err);
		ok(f && f == g && f->nnames == 2 && node_find(&t, 0x3000, "f") == f &&
			   node_find(&t, 0x3000, "g") == f,
		   "a second link is a second name of the same node");
		node_unlink(&t, 0x3000, "g");
		ok(f->nnames == 1 && node_find(&t, 0x3000, "f") == f &&
			   !strcmp(node_name_of(f), "f"),
		   "removing one link keeps the other");
		e = entry(0x3100, S_IFREG | 0644);
		node_learn(&t, 0x3000, "g", &e, &err);
		ok(node_rename(&t, 0x3000, "g", 0x3000, "f", false) == 0 && f->nnames == 2,
		   "renaming one link over another of the same file changes nothing");
		e = entry(0x3200, S_IFREG | 0644);
		n = node_learn(&t, 0x3000, "h", &e, &err);
		ok(node_rename(&t, 0x3000, "h", 0x3000, "g", false) == 0 && f->nnames == 1 &&
			   node_find(&t, 0x3000, "g") == n && node_find(&t, 0x3000, "f") == f,
		   "a rename over one link takes only that name");
		ok(node_rename(&t, 0x3000, "f", 0x3000, "g", true) == 0 &&
			   node_find(&t, 0x3000, "g") == f && node_find(&t, 0x3000, "f") == n,
		   "an exchange swaps the two names");
		ok(node_path(&t, 0x3000, path, sizeof(path)) == 1 && !strcmp(path, "d"),
		   "the path of a directory: %s", path);
		ok(node_path(&t, FUSE_ROOT_ID, path, sizeof(path)) == 0 && !path[0],
		   "the root's path is empty");
		ok(node_path(&t, 0x3000, path, 1) == -ENAMETOOLONG, "a path too long is refused");

		/* After a restart the node is pending under one name. */
		e = entry(0x3100, S_IFREG | 0644);
		node_learn(&t, 0x3000, "f2", &e, &err);
		node_new_epoch(&t);
		e = entry(0x9300, S_IFDIR | 0755);
		node_resolved(&t, dir, &e);
		struct node_pending np;

		ok(node_pending_begin(&t, &np) == 0, "the pending nodes are collected");
		size_t cnt = node_pending(&t, &np, batch, 8), seen = 0;

		for (size_t i = 0; i < cnt; i++)
			seen += batch[i]->node == f;
		ok(seen == 1, "a node with two names is looked up by one at a time (%zu)", seen);
		for (size_t i = 0; i < cnt; i++)
			if (batch[i]->node == f)
				node_drop_name(&t, batch[i]);
		ok(f->nnames == 1, "a name not found goes; the other stays");
		ok(node_pin(&t, f->kid) == 0, "a node can be pinned");
		node_forget(&t, f->kid, f->k_nlookup, &did, &fwd);
		node_drop_name(&t, f->names);
		ok(node_get(&t, 0x3100) == f, "a pinned node stays without lookups or names");
		node_unpin(&t, 0x3100);
		ok(node_get(&t, 0x3100) == NULL, "unpinned, it goes");
		cnt = node_pending(&t, &np, batch, 8);
		seen = 0;
		for (size_t i = 0; i < cnt; i++)
			seen += batch[i]->node->kid == 0x3100;
		ok(seen == 0, "a node freed since is not collected");
		node_pending_end(&t, &np);
	}

	node_table_free(&t);

	/* A chain of directories comes back a level per batch, each node once per batch. */
	{
		struct node_name *batch[8];
		struct node_pending np;
		struct node *chain[4];
		uint64_t parent = FUSE_ROOT_ID;
		bool order = true;

		ok(node_table_init(&t, 1000) == 0, "a fresh table");
		for (int i = 0; i < 4; i++) {
			e = entry(0x5000 + i, S_IFDIR | 0755);
			chain[i] = node_learn(&t, parent, "d", &e, &err);
			parent = 0x5000 + i;
		}
		node_new_epoch(&t);
		ok(node_pending_begin(&t, &np) == 0 && np.count == 4, "four nodes to look up");
		for (int i = 0; i < 4; i++) {
			size_t cnt = node_pending(&t, &np, batch, 8);

			order = order && cnt == 1 && batch[0]->node == chain[i];
			e = entry(0x6000 + i, S_IFDIR | 0755);
			node_resolved(&t, chain[i], &e);
		}
		ok(order, "parents come before their children");
		ok(node_pending(&t, &np, batch, 8) == 0 && np.count == 0,
		   "nothing is left once all are resolved");
		node_pending_end(&t, &np);
		node_table_free(&t);
	}

	/* Deferred and lost nodes are not collected; a call that starts mid-list goes round. */
	{
		struct node_name *batch[8];
		struct node_pending np;
		struct node *top, *u, *v, *w;
		size_t cnt;

		ok(node_table_init(&t, 1000) == 0, "a fresh table");
		e = entry(0x7000, S_IFDIR | 0755);
		top = node_learn(&t, FUSE_ROOT_ID, "dir", &e, &err);
		e = entry(0x7001, S_IFREG | 0644);
		u = node_learn(&t, FUSE_ROOT_ID, "u", &e, &err);
		e = entry(0x7002, S_IFREG | 0644);
		v = node_learn(&t, 0x7000, "v", &e, &err);
		e = entry(0x7003, S_IFREG | 0644);
		w = node_learn(&t, FUSE_ROOT_ID, "w", &e, &err);
		node_new_epoch(&t);
		e = entry(0x8000, S_IFDIR | 0755);
		node_resolved(&t, top, &e);
		u->deferred = true;
		w->lost = true;
		ok(node_pending_begin(&t, &np) == 0 && np.count == 2,
		   "the unresolved nodes are listed, not the lost one (%zu)", np.count);
		cnt = node_pending(&t, &np, batch, 8);
		ok(cnt == 1 && batch[0]->node == v, "neither deferred nor lost nodes are collected");
		u->deferred = false;
		/* u first, v after it, the scan past u: it must go round to find u. */
		np.kids[0] = u->kid;
		np.kids[1] = v->kid;
		np.pos = 1;
		e = entry(0x8002, S_IFREG | 0644);
		node_resolved(&t, v, &e);
		cnt = node_pending(&t, &np, batch, 8);
		ok(cnt == 1 && batch[0]->node == u && np.count == 1,
		   "a call that starts mid-list goes round; a resolved node leaves the list");
		node_pending_end(&t, &np);
		node_table_free(&t);
	}

	/* Inode numbers of a daemon that renumbers every run: the kernel keeps its own. */
	struct node *a, *b, *c;

	node_table_init(&t, 100);
	e = entry(0x10, S_IFREG);
	e.attr.ino = 23;
	a = node_learn(&t, FUSE_ROOT_ID, "a", &e, &err);
	e = entry(0x11, S_IFREG);
	e.attr.ino = 24;
	b = node_learn(&t, FUSE_ROOT_ID, "b", &e, &err);
	ok(a->k_ino == 23 && b->k_ino == 24 && e.attr.ino == 24,
	   "before a restart the kernel sees the daemon's numbers");
	node_new_epoch(&t);
	e = entry(0x20, S_IFREG);
	e.attr.ino = 2; /* a counter that started again */
	node_resolved(&t, a, &e);
	e = entry(0x21, S_IFREG);
	e.attr.ino = 23; /* b now has the number a had */
	node_resolved(&t, b, &e);
	ok(node_ino_remap(&t) == 0 && t.ino_remap, "renumbering turns remapping on");
	ok(node_ino_to_kernel(&t, 2) == 23 && node_ino_to_kernel(&t, 23) == 24,
	   "held nodes show the numbers the kernel first saw");
	ok(node_ino_to_kernel(&t, 24) != 24 && node_ino_to_kernel(&t, 24) != 23 &&
		   node_ino_to_kernel(&t, 24) == node_ino_to_kernel(&t, 24),
	   "an object whose new number a held node keeps gets a stable number of its own");
	ok(node_ino_to_kernel(&t, 99) == 99, "other numbers pass");
	e = entry(0x22, S_IFREG);
	e.attr.ino = 24;
	c = node_learn(&t, FUSE_ROOT_ID, "c", &e, &err);
	ok(c && c->k_ino == node_ino_to_kernel(&t, 24) && e.attr.ino == c->k_ino &&
		   c->k_ino != b->k_ino,
	   "a new node never shows a number another node keeps");
	e = entry(0x20, S_IFREG);
	e.attr.ino = 2;
	ok(node_learn(&t, FUSE_ROOT_ID, "a", &e, &err) == a && e.attr.ino == 23,
	   "entries for a held node are rewritten to its first number");
	node_lose(&t, b, &did, &fwd);
	ok(b->lost && fwd == 1 && did == 0x21 && node_to_daemon(&t, b->kid, &did) == -ESTALE,
	   "a node found to be another object is lost, its lookup given back");
	node_table_free(&t);

	/*
	 * Hard links found again by both names: one daemon ID for two nodes. When the kernel
	 * forgets the one that had the reverse entry, the other takes it, so that the daemon's
	 * next answer for that ID reaches the node the kernel still holds, not a second one.
	 */
	node_table_init(&t, 100);
	e = entry(0x30, S_IFREG);
	a = node_learn(&t, FUSE_ROOT_ID, "x", &e, &err);
	e = entry(0x31, S_IFREG);
	b = node_learn(&t, FUSE_ROOT_ID, "y", &e, &err);
	node_new_epoch(&t);
	e = entry(0x40, S_IFREG);
	node_resolved(&t, a, &e);
	node_resolved(&t, b, &e);
	{
		uint64_t kid_a = a->kid, kid_b = b->kid;
		struct image im = { 0 }, r;
		struct node_table t2;

		/* The same across a reexec: the image does not say which nodes share. */
		node_table_save(&t, &im);
		r = (struct image){ .buf = im.buf, .len = im.len };
		node_table_init(&t2, 100);
		ok(node_table_load(&t2, &r) == 0, "a table with a shared daemon ID saves and loads");
		node_forget(&t2, kid_a, 1, &did, &fwd);
		e = entry(0x40, S_IFREG);
		c = node_learn(&t2, FUSE_ROOT_ID, "x", &e, &err);
		ok(c && c->kid == kid_b && t2.count == 2, "and the link takes the ID over there too");
		node_table_free(&t2);
		image_free(&im);

		node_forget(&t, a->kid, 1, &did, &fwd);
		e = entry(0x40, S_IFREG);
		c = node_learn(&t, FUSE_ROOT_ID, "x", &e, &err);
		ok(c && c->kid == kid_b && e.nodeid == kid_b && t.count == 2,
		   "hard links: once the owner of a daemon ID is forgotten, its link answers for it");
	}
	node_table_free(&t);

	/* The same hand-over when the owner is lost or unresolved rather than forgotten. */
	for (int how = 0; how < 2; how++) {
		node_table_init(&t, 100);
		e = entry(0x30, S_IFREG);
		a = node_learn(&t, FUSE_ROOT_ID, "x", &e, &err);
		e = entry(0x31, S_IFREG);
		b = node_learn(&t, FUSE_ROOT_ID, "y", &e, &err);
		e = entry(0x32, S_IFREG);
		c = node_learn(&t, FUSE_ROOT_ID, "z", &e, &err);
		node_new_epoch(&t);
		e = entry(0x40, S_IFREG);
		node_resolved(&t, a, &e);
		node_resolved(&t, b, &e);
		e = entry(0x41, S_IFREG);
		node_resolved(&t, c, &e);
		if (how)
			node_unresolve(&t, a);
		else
			node_lose(&t, a, &did, &fwd);
		ok(node_to_kernel(&t, 0x40, &kid) == 0 && kid == b->kid,
		   "a shared daemon ID passes to the link when its owner is %s",
		   how ? "unresolved" : "lost");
		if (how)
			node_unresolve(&t, c);
		else
			node_lose(&t, c, &did, &fwd);
		ok(node_to_kernel(&t, 0x41, &kid) < 0,
		   "an unshared one leaves the map when its node is %s", how ? "unresolved" : "lost");
		node_table_free(&t);
	}

	/* Lazy resolution: one node and the ancestors the daemon does not know yet, once each. */
	{
		struct node_pending np = { 0 };
		struct node *d1, *d2, *f1;

		node_table_init(&t, 100);
		e = entry(0x50, S_IFDIR | 0755);
		d1 = node_learn(&t, FUSE_ROOT_ID, "d1", &e, &err);
		e = entry(0x51, S_IFDIR | 0755);
		d2 = node_learn(&t, d1->kid, "d2", &e, &err);
		e = entry(0x52, S_IFREG | 0644);
		f1 = node_learn(&t, d2->kid, "f1", &e, &err);
		node_new_epoch(&t);
		e = entry(0x60, S_IFDIR | 0755);
		node_resolved(&t, d1, &e);
		ok(node_pending_add(&t, &np, f1->kid) == 0 && np.count == 2 &&
			   np.kids[0] == f1->kid && np.kids[1] == d2->kid,
		   "a node's chain holds it and its unresolved ancestors, not the resolved one");
		ok(node_pending_add(&t, &np, d2->kid) == 0 && np.count == 2,
		   "a node already listed is not added again");
		ok(node_pending_add(&t, &np, d1->kid) == 0 && np.count == 2,
		   "nor one the daemon knows");
		node_pending_end(&t, &np);
		ok(!f1->queued && !d2->queued && np.count == 0, "the end clears the marks");

		/* An entry for an unresolved node's name, before anyone asked: adopted if it is
		 * the same object, else a new node takes the name. */
		e = entry(0x61, S_IFDIR | 0755);
		e.attr.ino = d2->d_ino;
		e.generation = d2->d_gen;
		c = node_learn(&t, d1->kid, "d2", &e, &err);
		ok(c == d2 && d2->epoch == t.epoch && d2->did == 0x61 && d2->d_nlookup == 1 &&
			   d2->k_nlookup == 2 && e.nodeid == d2->kid,
		   "an entry for an unresolved node's name, same object: that node, resolved");
		e = entry(0x62, S_IFREG | 0644);
		e.attr.ino = 999;
		c = node_learn(&t, d2->kid, "f1", &e, &err);
		ok(c && c != f1 && node_find(&t, d2->kid, "f1") == c && f1->nnames == 0 &&
			   node_unresolved(&t, f1),
		   "another object: a new node takes the name, the old one stays unresolved");
		node_table_free(&t);
	}

	/* The bounds: --max-nodes nodes, the root included; NODE_NAMES_MAX names per node. */
	ok(node_table_init(&t, 3) == 0, "a table of 3 nodes initialises");
	e = entry(0x100, S_IFDIR | 0755);
	dir = node_learn(&t, FUSE_ROOT_ID, "d", &e, &err);
	e = entry(0x101, S_IFREG | 0644);
	file = node_learn(&t, 0x100, "f0", &e, &err);
	ok(dir && file && t.count == 3, "the root and two nodes fill it");
	e = entry(0x102, S_IFREG | 0644);
	ok(node_learn(&t, 0x100, "g", &e, &err) == NULL && err == -ENFILE && t.count == 3 &&
		   !node_find(&t, 0x100, "g"),
	   "past --max-nodes: ENFILE, nothing recorded");
	e = entry(0x101, S_IFREG | 0644);
	ok(node_learn(&t, 0x100, "f0", &e, &err) == file && file->k_nlookup == 2,
	   "a node already known is still counted when the table is full");
	for (int i = 1; i < NODE_NAMES_MAX + 8; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		e = entry(0x101, S_IFREG | 0644);
		node_learn(&t, 0x100, name, &e, &err);
	}
	ok(file->nnames == NODE_NAMES_MAX && !node_find(&t, 0x100, "f0") &&
		   !node_find(&t, 0x100, "f7") && node_find(&t, 0x100, "f8") == file &&
		   node_find(&t, 0x100, "f71") == file,
	   "past %d names a node keeps the newest", NODE_NAMES_MAX);
	node_table_free(&t);
	test_items();
	return tap_done();
}
