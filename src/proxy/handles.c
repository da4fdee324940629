/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "handles.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KFH_BASE 0x7f00000000000000ULL

static uint64_t kfh_key(const void *ctx, uint64_t idx)
{
	return ((const struct handle *)slab_at(&((const struct handle_table *)ctx)->slab, idx))->kfh;
}

void handle_table_init(struct handle_table *t, uint64_t max, uint64_t win_max,
		       uint64_t win_total_max)
{
	memset(t, 0, sizeof(*t));
	slab_init(&t->slab, sizeof(struct handle));
	keyset_init(&t->by_kfh, 4, kfh_key, t);
	t->epoch = 1;
	t->next_kfh = KFH_BASE;
	t->max = max;
	t->win_max = win_max;
	t->win_total_max = win_total_max;
}

static void free_one(struct handle *h, void *arg)
{
	if (h->win)
		msg_put_chain(h->win->head);
	free(h->win);
}

void handle_table_free(struct handle_table *t)
{
	handle_each(t, free_one, NULL);
	keyset_free(&t->by_kfh);
	slab_free_all(&t->slab);
	changes_free(&t->changes);
}

/* A zeroed handle with the kfh @kfh, in the slab and by_kfh; NULL when out of memory. */
static struct handle *handle_alloc(struct handle_table *t, uint64_t kfh)
{
	uint32_t idx;
	struct handle *h = slab_alloc(&t->slab, &idx);

	if (!h)
		return NULL;
	h->idx = idx;
	h->kfh = kfh;
	if (keyset_add(&t->by_kfh, idx) < 0) {
		slab_free(&t->slab, idx);
		return NULL;
	}
	return h;
}

/* @h's write window, allocated at its first use; NULL when out of memory. */
static struct handle_window *window_of(struct handle *h)
{
	if (!h->win)
		h->win = calloc(1, sizeof(*h->win));
	return h->win;
}

struct handle *handle_learn(struct handle_table *t, uint64_t node, uint32_t flags, bool dir,
			    uint64_t *fh, int *err)
{
	struct handle *h;
	uint64_t kfh;

	*err = 0;
	if (t->by_kfh.count >= t->max) {
		*err = -ENFILE;
		return NULL;
	}
	/* Daemons may hand out one value for many opens (often 0): the kernel's must be unique. */
	if (!handle_get(t, *fh)) {
		kfh = *fh;
	} else {
		while (handle_get(t, t->next_kfh))
			t->next_kfh++;
		kfh = t->next_kfh++;
	}
	h = handle_alloc(t, kfh);
	if (!h) {
		*err = -ENOMEM;
		return NULL;
	}
	h->dfh = *fh;
	h->node = node;
	h->primed_end = UINT64_MAX;
	h->flags = flags;
	h->dir = dir;
	h->epoch = t->epoch;
	*fh = h->kfh;
	handle_changed(t, h);
	return h;
}

void handle_forget(struct handle_table *t, uint64_t kfh)
{
	struct handle *h = handle_get(t, kfh);

	if (!h)
		return;
	keyset_remove(&t->by_kfh, h->idx);
	handle_changed(t, h);
	handle_set_fresh(t, h, false);
	handle_set_write_lost(t, h, false);
	msg_put_chain(handle_take_window(t, h));
	free(h->win);
	slab_free(&t->slab, h->idx);
}

void handle_clear_overflow(struct handle *h)
{
	if (h->win)
		h->win->overflow_seq = 0;
}

struct msg *handle_keep_write(struct handle_table *t, struct handle *h, struct msg *req)
{
	struct handle_window *w = window_of(h);
	uint64_t size;

	if (!w) {
		/* Nothing to count it in: a crash could lose it unseen, so fail its next sync. */
		handle_set_write_lost(t, h, true);
		return req;
	}
	w->ack_seq++;
	/* Normally marked before the kernel was told (handle_note_unsynced()); else now. */
	if (!h->unsynced) {
		h->unsynced = true;
		handle_changed(t, h);
	}
	size = msg_footprint(req);
	if (w->bytes + size > t->win_max || t->win_total + size > t->win_total_max) {
		w->overflow_seq = w->ack_seq;
		return req;
	}
	req->wseq = w->ack_seq;
	req->next = NULL;
	if (w->tail)
		w->tail->next = req;
	else
		w->head = req;
	w->tail = req;
	w->bytes += size;
	t->win_total += size;
	return NULL;
}

void handle_synced(struct handle_table *t, struct handle *h, uint64_t seq)
{
	struct handle_window *w = h->win;

	while (w && w->head && w->head->wseq <= seq) {
		struct msg *m = w->head;
		uint64_t size = msg_footprint(m);

		w->head = m->next;
		w->bytes -= size;
		t->win_total -= size;
		msg_put(m);
	}
	if (w && !w->head)
		w->tail = NULL;
	if (w && w->overflow_seq && w->overflow_seq <= seq)
		w->overflow_seq = 0;
	if (h->unsynced && !(w && (w->acking || w->head || w->overflow_seq)) &&
	    seq == handle_ack_seq(h)) {
		h->unsynced = false;
		handle_changed(t, h);
	}
}

void handle_note_unsynced(struct handle_table *t, struct handle *h)
{
	struct handle_window *w = window_of(h);

	if (w)
		w->acking++;
	else
		handle_set_write_lost(t, h, true); /* as in handle_keep_write() */
	if (h->unsynced)
		return;
	h->unsynced = true;
	handle_changed(t, h);
}

void handle_acked(struct handle *h)
{
	if (h->win && h->win->acking)
		h->win->acking--;
}

struct msg *handle_take_window(struct handle_table *t, struct handle *h)
{
	struct handle_window *w = h->win;
	struct msg *head;

	if (!w)
		return NULL;
	head = w->head;
	t->win_total -= w->bytes;
	w->bytes = 0;
	w->head = w->tail = NULL;
	return head;
}

void handle_put_window(struct handle_table *t, struct handle *h, struct msg *head)
{
	struct handle_window *w;
	struct msg *last = NULL;
	uint64_t size = 0;

	for (struct msg *m = head; m; m = m->next) {
		size += msg_footprint(m);
		last = m;
	}
	if (!last)
		return;
	/* It came from this window (handle_take_window()), which is never freed before @h. */
	w = h->win;
	last->next = w->head;
	if (!w->head)
		w->tail = last;
	w->head = head;
	w->bytes += size;
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
	struct handle *h = handle_get(t, kfh);

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
	const struct handle_table *t;
	void (*fn)(struct handle *h, void *arg);
	void *arg;
};

static void each_one(uint64_t idx, void *arg)
{
	struct each_ctx *c = arg;

	c->fn(slab_at(&c->t->slab, idx), c->arg);
}

void handle_each(const struct handle_table *t, void (*fn)(struct handle *h, void *arg), void *arg)
{
	struct each_ctx c = { t, fn, arg };

	keyset_each(&t->by_kfh, each_one, &c);
}

/* ---- Across an execve (image.h) --------------------------------------------------------- */

enum { TAG_HANDLES = 0x48414e44 /* "HAND" */, TAG_HANDLES_END = 0x2f48414e };

static void save_one(struct handle *h, void *arg)
{
	struct image *im = arg;
	const struct msg *head = h->win ? h->win->head : NULL;
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
	image_u64(im, handle_ack_seq(h));
	image_u64(im, handle_overflow_seq(h));
	image_bool(im, h->write_lost);
	image_bool(im, h->released);
	for (const struct msg *m = head; m; m = m->next)
		n++;
	image_u32(im, n);
	for (const struct msg *m = head; m; m = m->next)
		msg_save(im, m);
}

void handle_table_save(const struct handle_table *t, struct image *im)
{
	image_tag(im, TAG_HANDLES);
	image_u32(im, t->epoch);
	image_u64(im, t->next_kfh);
	image_u64(im, t->by_kfh.count);
	handle_each(t, save_one, im);
	image_tag(im, TAG_HANDLES_END);
}

static bool load_one(struct handle_table *t, struct image *im)
{
	struct handle tmp = { 0 }, *h;
	uint64_t ack_seq, overflow_seq;
	struct handle_window *w = NULL;
	bool fresh, write_lost;
	uint32_t n;

	tmp.kfh = image_get_u64(im);
	tmp.dfh = image_get_u64(im);
	tmp.node = image_get_u64(im);
	tmp.flags = image_get_u32(im);
	tmp.epoch = image_get_u32(im);
	tmp.fopen = image_get_u32(im);
	tmp.uid = image_get_u32(im);
	tmp.gid = image_get_u32(im);
	tmp.dir = image_get_bool(im);
	tmp.lost = image_get_bool(im);
	fresh = image_get_bool(im);
	tmp.primed_end = image_get_u64(im);
	ack_seq = image_get_u64(im);
	overflow_seq = image_get_u64(im);
	write_lost = image_get_bool(im);
	tmp.released = image_get_bool(im);
	n = image_get_u32(im);
	if (!im->err && handle_get(t, tmp.kfh))
		image_bad(im);
	if (im->err)
		return false;
	h = handle_alloc(t, tmp.kfh);
	if (h && (ack_seq || overflow_seq || n))
		w = calloc(1, sizeof(*w));
	if (!h || ((ack_seq || overflow_seq || n) && !w)) {
		if (h) {
			keyset_remove(&t->by_kfh, h->idx);
			slab_free(&t->slab, h->idx);
		}
		im->err = -ENOMEM;
		return false;
	}
	tmp.idx = h->idx;
	*h = tmp;
	h->win = w;
	if (w) {
		w->ack_seq = ack_seq;
		w->overflow_seq = overflow_seq;
	}
	/* Through the setters: they keep the table's counts. */
	handle_set_fresh(t, h, fresh);
	handle_set_write_lost(t, h, write_lost);
	for (uint32_t i = 0; i < n && !im->err; i++) {
		struct msg *m = msg_load(im);

		if (!m)
			break;
		m->next = NULL;
		if (w->tail)
			w->tail->next = m;
		else
			w->head = m;
		w->tail = m;
		w->bytes += msg_footprint(m);
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
	image_bool(im, handle_unsynced(h));
	image_bool(im, h->released);
}

static void build_handle(uint64_t key, void *val, void *arg)
{
	struct handle_table *t = ((void **)arg)[0];
	int *err = ((void **)arg)[1];
	const struct image_span *sp = val;
	struct image im;
	struct handle *h;

	struct handle tmp = { 0 };

	if (*err)
		return;
	image_view(&im, sp->data, sp->len);
	tmp.kfh = image_get_u64(&im);
	tmp.node = image_get_u64(&im);
	tmp.flags = image_get_u32(&im);
	tmp.fopen = image_get_u32(&im);
	tmp.uid = image_get_u32(&im);
	tmp.gid = image_get_u32(&im);
	tmp.dir = image_get_bool(&im);
	tmp.lost = image_get_bool(&im);
	tmp.primed_end = UINT64_MAX;
	/* epoch 0: no daemon's; recovery opens it again. */
	if (im.err || tmp.kfh != key || handle_get(t, key)) {
		*err = -EBADMSG;
		return;
	}
	h = handle_alloc(t, key);
	if (!h) {
		*err = -ENOMEM;
		return;
	}
	tmp.idx = h->idx;
	*h = tmp;
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
