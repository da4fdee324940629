/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The state image of fusekeeper reexec: its values read back as written, errors that stick,
 * and the proxy's tables (nodes with their names, handles with write windows, locks) the same
 * after a save and a load; every truncation of an image is refused without a crash or a leak.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "proxy/handles.h"
#include "proxy/locks.h"
#include "proxy/msg.h"
#include "proxy/nodes.h"
#include "tap.h"

static struct fuse_entry_out entry(uint64_t did, uint32_t mode, uint64_t ino)
{
	struct fuse_entry_out e = { .nodeid = did, .generation = 3 };

	e.attr.mode = mode;
	e.attr.ino = ino;
	return e;
}

/* A WRITE request of @len data bytes filled with @fill. */
static struct msg *write_req(uint64_t unique, uint32_t len, int fill)
{
	uint32_t total = sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in) + len;
	struct msg *m = msg_get(total);
	struct fuse_in_header *h = msg_in(m);

	memset(m->data, fill, total);
	memset(h, 0, sizeof(*h) + sizeof(struct fuse_write_in));
	h->len = total;
	h->opcode = FUSE_WRITE;
	h->unique = unique;
	m->len = total;
	m->kfh = 77;
	m->dver = unique * 10;
	return msg_shrink(m);
}

struct tables {
	struct node_table nodes;
	struct handle_table handles;
	struct lock_table locks;
};

static void tables_init(struct tables *t)
{
	node_table_init(&t->nodes, 1000);
	handle_table_init(&t->handles, 1000, 1 << 20, 4 << 20);
	lock_table_init(&t->locks, 1000);
}

static void tables_free(struct tables *t)
{
	node_table_free(&t->nodes);
	handle_table_free(&t->handles);
	lock_table_free(&t->locks);
}

static int tables_load(struct tables *t, struct image *im)
{
	if (node_table_load(&t->nodes, im) || handle_table_load(&t->handles, im) ||
	    lock_table_load(&t->locks, im))
		return im->err;
	return im->off == im->len ? 0 : -EBADMSG;
}

static void primitives(void)
{
	struct image w = { 0 }, r;
	const char *b;
	uint32_t len;
	char *s;
	int fd;

	image_u64(&w, 0x1122334455667788ULL);
	image_u32(&w, 0xdeadbeef);
	image_bool(&w, true);
	image_bytes(&w, "abc", 3);
	image_str(&w, "name");
	image_str(&w, NULL);
	image_tag(&w, 42);
	ok(w.err == 0, "values are written");
	fd = image_to_memfd(&w);
	ok(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0, "the memfd is for the next program");
	ok(write(fd, "x", 1) < 0, "and sealed");
	ok(image_from_fd(&r, fd) == 0 && r.len == w.len, "the memfd reads back whole");
	close(fd);
	ok(image_get_u64(&r) == 0x1122334455667788ULL && image_get_u32(&r) == 0xdeadbeef &&
		   image_get_bool(&r), "integers and booleans read back");
	b = image_get_bytes(&r, &len);
	ok(b && len == 3 && !memcmp(b, "abc", 3), "bytes read back");
	s = image_get_str(&r);
	ok(s && !strcmp(s, "name"), "a string reads back");
	free(s);
	ok(image_get_str(&r) == NULL && r.err == 0, "so does NULL");
	ok(image_expect(&r, 42) && r.off == r.len, "the tag is where it was put");
	ok(image_get_u32(&r) == 0 && r.err == -EBADMSG, "a read past the end is an error");
	ok(image_get_u64(&r) == 0 && r.err == -EBADMSG, "which sticks");
	image_free(&r);

	r = (struct image){ .buf = w.buf, .len = w.len };
	ok(!image_expect(&r, 43) && r.err == -EBADMSG, "a wrong tag is an error");
	r = (struct image){ .buf = w.buf, .len = w.len, .off = 12 };
	w.buf[12] = 2;
	ok(!image_get_bool(&r) && r.err == -EBADMSG, "a boolean other than 0 or 1 is an error");
	image_free(&w);
}

int main(void)
{
	struct tables a, b;
	struct fuse_entry_out e;
	struct fuse_lk_in lk = { .owner = 9, .lk = { 10, 19, F_WRLCK, 1234 } };
	struct node *dir, *file, *n;
	struct handle *h, *h2;
	struct lock_rec **v;
	struct image im = { 0 };
	uint64_t fh = 5, did;
	size_t full;
	int err, refused = 0;

	primitives();
	msg_init(256 * 4096 + 8192);
	tables_init(&a);
	e = entry(0x1000, S_IFDIR | 0755, 0x1000);
	dir = node_learn(&a.nodes, FUSE_ROOT_ID, "dir", &e, &err);
	e = entry(0x2000, S_IFREG | 0644, 0x2000);
	file = node_learn(&a.nodes, 0x1000, "file", &e, &err);
	e = entry(0x2000, S_IFREG | 0644, 0x2000);
	node_learn(&a.nodes, FUSE_ROOT_ID, "link", &e, &err);
	node_add_name(&a.nodes, file, 0x1000, ".fusekeeper.0000000000000001");
	file->names->next->next->unconfirmed = true;
	file->dver = 5;
	file->changed_ns = 123456789;
	node_pin(&a.nodes, 0x1000);
	ok(dir && file && file->nnames == 3, "a directory and a file with three names");
	h = handle_learn(&a.handles, 0x2000, O_RDWR, false, &fh, &err);
	h->uid = 1000;
	h->fopen = 4;
	handle_keep_write(&a.handles, h, write_req(100, 3000, 'a'));
	handle_keep_write(&a.handles, h, write_req(101, 200000, 'b'));
	handle_set_fresh(&a.handles, h, true);
	fh = 5;
	h2 = handle_learn(&a.handles, 0x1000, O_RDONLY, true, &fh, &err);
	ok(h && h2 && h2->kfh != h->kfh && h->win->head && h->win->head->next,
	   "two handles, one with a write window of two writes");
	ok(lock_apply(&a.locks, 0x2000, h->kfh, &lk) == 0, "a lock");

	node_table_save(&a.nodes, &im);
	handle_table_save(&a.handles, &im);
	lock_table_save(&a.locks, &im);
	ok(im.err == 0, "the tables are saved (%zu bytes)", im.len);
	full = im.len;

	tables_init(&b);
	ok(tables_load(&b, &im) == 0, "and loaded into fresh tables");
	n = node_find(&b.nodes, 0x1000, "file");
	ok(n && n->kid == 0x2000 && n->k_nlookup == 2 && n->d_nlookup == 2 && n->dver == 5 &&
		   n->changed_ns == 123456789 && n->type == S_IFREG, "a node keeps its fields");
	ok(n && n->nnames == 3 && !strcmp(n->names->name, "link") &&
		   !strcmp(n->names->next->name, "file") && n->names->next->next->unconfirmed,
	   "and its names, most recent first, with their marks");
	ok(node_find(&b.nodes, FUSE_ROOT_ID, "link") == n, "names are indexed");
	ok(node_to_daemon(&b.nodes, 0x2000, &did) == 0 && did == 0x2000 &&
		   node_to_kernel(&b.nodes, 0x1000, &did) == 0 && did == 0x1000,
	   "IDs translate both ways");
	n = node_get(&b.nodes, 0x1000);
	ok(n && n->pins == 1 && n->children == 2, "pins are kept, children counted again");
	ok(b.nodes.count == a.nodes.count, "as many nodes");
	h2 = handle_get(&b.handles, h->kfh);
	ok(h2 && h2->node == 0x2000 && h2->flags == O_RDWR && h2->uid == 1000 && h2->fopen == 4 &&
		   h2->fresh && b.handles.fresh_count == 1, "a handle keeps its fields");
	ok(h2 && h2->win->head && h2->win->head->len == h->win->head->len &&
		   !memcmp(h2->win->head->data, h->win->head->data, h->win->head->len) &&
		   h2->win->head->next && h2->win->head->next->len == h->win->head->next->len &&
		   !memcmp(h2->win->head->next->data, h->win->head->next->data,
			   h->win->head->next->len) &&
		   h2->win->head->next->wseq == 2 && h2->win->head->next->dver == 1010 &&
		   h2->win->tail == h2->win->head->next,
	   "and its write window, in order, with its data");
	ok(b.handles.win_total == h2->win->bytes && h2->win->ack_seq == 2, "window sizes are counted");
	ok(lock_collect(&b.locks, &v) == 1 && v[0]->owner == 9 && v[0]->start == 10 &&
		   v[0]->end == 19 && v[0]->type == F_WRLCK && v[0]->pid == 1234 &&
		   v[0]->kfh == h->kfh, "the lock is kept");
	free(v);
	tables_free(&b);

	/* Every truncated image is refused, and what was loaded of it is freed. */
	for (size_t len = 0; len < full; len++) {
		struct image cut = { .buf = im.buf, .len = len };

		tables_init(&b);
		refused += tables_load(&b, &cut) != 0;
		tables_free(&b);
	}
	ok(refused == (int)full, "every one of the %zu truncations is refused (%d)", full, refused);

	image_free(&im);
	tables_free(&a);
	return tap_done();
}
