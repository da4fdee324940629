/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "handles.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KFH_BASE 0x7f00000000000000ULL

void handle_table_init(struct handle_table *t, uint64_t max, uint64_t win_max,
		       uint64_t win_total_max)
{
	memset(t, 0, sizeof(*t));
	t->epoch = 1;
	t->next_kfh = KFH_BASE;
	t->max = max;
	t->win_max = win_max;
	t->win_total_max = win_total_max;
}

static void free_one(uint64_t key, void *val, void *arg)
{
	struct handle *h = val;

	msg_put_chain(h->win_head);
	free(h);
}

void handle_table_free(struct handle_table *t)
{
	idmap_each(&t->by_kfh, free_one, NULL);
	idmap_free(&t->by_kfh);
	changes_free(&t->changes);
}

struct handle *handle_get(struct handle_table *t, uint64_t kfh)
{
	return idmap_get(&t->by_kfh, kfh);
}

struct handle *handle_learn(struct handle_table *t, uint64_t node, uint32_t flags, bool dir,
			    uint64_t *fh, int *err)
{
	struct handle *h;

	*err = 0;
	if (t->by_kfh.count >= t->max) {
		*err = -ENFILE;
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		*err = -ENOMEM;
		return NULL;
	}
	h->dfh = *fh;
	/* Daemons may hand out one value for many opens (often 0): the kernel's must be unique. */
	if (!idmap_get(&t->by_kfh, *fh)) {
		h->kfh = *fh;
	} else {
		while (idmap_get(&t->by_kfh, t->next_kfh))
			t->next_kfh++;
		h->kfh = t->next_kfh++;
	}
	h->node = node;
	h->primed_end = UINT64_MAX;
	h->flags = flags;
	h->dir = dir;
	h->epoch = t->epoch;
	if (idmap_put(&t->by_kfh, h->kfh, h) < 0) {
		free(h);
		*err = -ENOMEM;
		return NULL;
	}
	*fh = h->kfh;
	handle_changed(t, h);
	return h;
}

void handle_forget(struct handle_table *t, uint64_t kfh)
{
	struct handle *h = idmap_del(&t->by_kfh, kfh);

	if (!h)
		return;
	handle_changed(t, h);
	handle_set_fresh(t, h, false);
	handle_set_write_lost(t, h, false);
	msg_put_chain(handle_take_window(t, h));
	free(h);
}

struct msg *handle_keep_write(struct handle_table *t, struct handle *h, struct msg *req)
{
	uint64_t size;

	h->ack_seq++;
	/* Normally marked before the kernel was told (handle_note_unsynced()); else now. */
	if (!h->unsynced) {
		h->unsynced = true;
		handle_changed(t, h);
	}
	size = msg_footprint(req);
	if (h->win_bytes + size > t->win_max || t->win_total + size > t->win_total_max) {
		h->overflow_seq = h->ack_seq;
		return req;
	}
	req->wseq = h->ack_seq;
	req->next = NULL;
	if (h->win_tail)
		h->win_tail->next = req;
	else
		h->win_head = req;
	h->win_tail = req;
	h->win_bytes += size;
	t->win_total += size;
	return NULL;
}

void handle_synced(struct handle_table *t, struct handle *h, uint64_t seq)
{
	while (h->win_head && h->win_head->wseq <= seq) {
		struct msg *m = h->win_head;
		uint64_t size = msg_footprint(m);

		h->win_head = m->next;
		h->win_bytes -= size;
		t->win_total -= size;
		msg_put(m);
	}
	if (!h->win_head)
		h->win_tail = NULL;
	if (h->overflow_seq && h->overflow_seq <= seq)
		h->overflow_seq = 0;
	if (h->unsynced && !h->acking && !h->win_head && !h->overflow_seq && seq == h->ack_seq) {
		h->unsynced = false;
		handle_changed(t, h);
	}
}

void handle_note_unsynced(struct handle_table *t, struct handle *h)
{
	h->acking++;
	if (h->unsynced)
		return;
	h->unsynced = true;
	handle_changed(t, h);
}

void handle_acked(struct handle *h)
{
	if (h->acking)
		h->acking--;
}

struct msg *handle_take_window(struct handle_table *t, struct handle *h)
{
	struct msg *head = h->win_head;

	t->win_total -= h->win_bytes;
	h->win_bytes = 0;
	h->win_head = h->win_tail = NULL;
	return head;
}

void handle_put_window(struct handle_table *t, struct handle *h, struct msg *head)
{
	struct msg *last = NULL;
	uint64_t size = 0;

	for (struct msg *m = head; m; m = m->next) {
		size += msg_footprint(m);
		last = m;
	}
	if (!last)
		return;
	last->next = h->win_head;
	if (!h->win_head)
		h->win_tail = last;
	h->win_head = head;
	h->win_bytes += size;
	t->win_total += size;
}

void handle_set_write_lost(struct handle_table *t, struct handle *h, bool lost)
{
	if (h->write_lost != lost) {
		t->lost_count += lost ? 1 : -1;
		handle_changed(t, h);
	}
	h->write_lost = lost;
}

void handle_set_fresh(struct handle_table *t, struct handle *h, bool fresh)
{
	if (h->fresh != fresh)
		t->fresh_count += fresh ? 1 : -1;
	h->fresh = fresh;
}

int handle_to_daemon(struct handle_table *t, uint64_t kfh, uint64_t *dfh)
{
	struct handle *h = idmap_get(&t->by_kfh, kfh);

	if (!h) {
		*dfh = kfh;
		return t->strict && kfh ? -EIO : 0;
	}
	if (h->lost || h->epoch != t->epoch)
		return -EIO;
	*dfh = h->dfh;
	return 0;
}

void handle_new_epoch(struct handle_table *t)
{
	t->epoch++;
}

struct each_ctx {
	void (*fn)(struct handle *h, void *arg);
	void *arg;
};

static void each_one(uint64_t key, void *val, void *arg)
{
	struct each_ctx *c = arg;

	c->fn(val, c->arg);
}

void handle_each(struct handle_table *t, void (*fn)(struct handle *h, void *arg), void *arg)
{
	struct each_ctx c = { fn, arg };

	idmap_each(&t->by_kfh, each_one, &c);
}

/* ---- Across an execve (image.h) --------------------------------------------------------- */

enum { TAG_HANDLES = 0x48414e44 /* "HAND" */, TAG_HANDLES_END = 0x2f48414e };

static void save_one(uint64_t key, void *val, void *arg)
{
	const struct handle *h = val;
	struct image *im = arg;
	uint32_t n = 0;

	image_u64(im, h->kfh);
	image_u64(im, h->dfh);
	image_u64(im, h->node);
	image_u32(im, h->flags);
	image_u32(im, h->epoch);
	image_u32(im, h->fopen);
	image_u32(im, h->uid);
	image_u32(im, h->gid);
	image_bool(im, h->dir);
	image_bool(im, h->lost);
	image_bool(im, h->fresh);
	image_u64(im, h->primed_end);
	image_u64(im, h->ack_seq);
	image_u64(im, h->overflow_seq);
	image_bool(im, h->write_lost);
	image_bool(im, h->released);
	for (const struct msg *m = h->win_head; m; m = m->next)
		n++;
	image_u32(im, n);
	for (const struct msg *m = h->win_head; m; m = m->next)
		msg_save(im, m);
}

void handle_table_save(const struct handle_table *t, struct image *im)
{
	image_tag(im, TAG_HANDLES);
	image_u32(im, t->epoch);
	image_u64(im, t->next_kfh);
	image_u64(im, t->by_kfh.count);
	idmap_each(&t->by_kfh, save_one, im);
	image_tag(im, TAG_HANDLES_END);
}

static bool load_one(struct handle_table *t, struct image *im)
{
	struct handle *h = calloc(1, sizeof(*h));
	bool fresh, write_lost;
	uint32_t n;

	if (!h) {
		im->err = -ENOMEM;
		return false;
	}
	h->kfh = image_get_u64(im);
	h->dfh = image_get_u64(im);
	h->node = image_get_u64(im);
	h->flags = image_get_u32(im);
	h->epoch = image_get_u32(im);
	h->fopen = image_get_u32(im);
	h->uid = image_get_u32(im);
	h->gid = image_get_u32(im);
	h->dir = image_get_bool(im);
	h->lost = image_get_bool(im);
	fresh = image_get_bool(im);
	h->primed_end = image_get_u64(im);
	h->ack_seq = image_get_u64(im);
	h->overflow_seq = image_get_u64(im);
	write_lost = image_get_bool(im);
	h->released = image_get_bool(im);
	n = image_get_u32(im);
	if (!im->err && idmap_get(&t->by_kfh, h->kfh))
		image_bad(im);
	if (!im->err && idmap_put(&t->by_kfh, h->kfh, h) < 0)
		im->err = -ENOMEM;
	if (im->err) {
		free(h);
		return false;
	}
	/* Through the setters: they keep the table's counts. */
	handle_set_fresh(t, h, fresh);
	handle_set_write_lost(t, h, write_lost);
	for (uint32_t i = 0; i < n && !im->err; i++) {
		struct msg *m = msg_load(im);

		if (!m)
			break;
		m->next = NULL;
		if (h->win_tail)
			h->win_tail->next = m;
		else
			h->win_head = m;
		h->win_tail = m;
		h->win_bytes += msg_footprint(m);
		t->win_total += msg_footprint(m);
	}
	return !im->err;
}

int handle_table_load(struct handle_table *t, struct image *im)
{
	uint64_t count;

	if (!image_expect(im, TAG_HANDLES))
		return im->err;
	t->epoch = image_get_u32(im);
	t->next_kfh = image_get_u64(im);
	count = image_get_u64(im);
	for (uint64_t i = 0; i < count && !im->err; i++)
		load_one(t, im);
	image_expect(im, TAG_HANDLES_END);
	return im->err;
}

/* ---- The resume journal (resume.c) ------------------------------------------------------- */

void handle_table_head_save(const struct handle_table *t, struct image *im)
{
	image_u32(im, t->epoch);
	image_u64(im, t->next_kfh);
}

void handle_item_save(const struct handle *h, struct image *im)
{
	image_u64(im, h->kfh);
	image_u64(im, h->node);
	image_u32(im, h->flags);
	image_u32(im, h->fopen);
	image_u32(im, h->uid);
	image_u32(im, h->gid);
	image_bool(im, h->dir);
	image_bool(im, h->lost);
	image_bool(im, h->write_lost || h->unsynced || h->win_head || h->overflow_seq);
	image_bool(im, h->released);
}

static void build_handle(uint64_t key, void *val, void *arg)
{
	struct handle_table *t = ((void **)arg)[0];
	int *err = ((void **)arg)[1];
	const struct image_span *sp = val;
	struct image im;
	struct handle *h;

	if (*err)
		return;
	h = calloc(1, sizeof(*h));
	if (!h) {
		*err = -ENOMEM;
		return;
	}
	image_view(&im, sp->data, sp->len);
	h->kfh = image_get_u64(&im);
	h->node = image_get_u64(&im);
	h->flags = image_get_u32(&im);
	h->fopen = image_get_u32(&im);
	h->uid = image_get_u32(&im);
	h->gid = image_get_u32(&im);
	h->dir = image_get_bool(&im);
	h->lost = image_get_bool(&im);
	h->primed_end = UINT64_MAX;
	/* epoch 0: no daemon's; recovery opens it again. */
	if (im.err || h->kfh != key) {
		free(h);
		*err = -EBADMSG;
		return;
	}
	if (idmap_put(&t->by_kfh, h->kfh, h) < 0) {
		free(h);
		*err = -ENOMEM;
		return;
	}
	if (image_get_bool(&im))
		handle_set_write_lost(t, h, true);
	h->released = image_get_bool(&im);
	if (im.err)
		*err = -EBADMSG;
}

int handle_table_build(struct handle_table *t, struct image *head, const struct idmap *items)
{
	int err = 0;
	void *arg[2] = { t, &err };

	t->epoch = image_get_u32(head);
	t->next_kfh = image_get_u64(head);
	if (head->err || !t->epoch)
		return image_fail(head);
	t->strict = true;
	idmap_each(items, build_handle, arg);
	return err;
}
