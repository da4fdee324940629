/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "msg.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Free buffers kept for reuse per pool; beyond this they go back to malloc. Large ones are
 * about a MiB each: enough for the relay's readers and a write window's turnover. */
#define POOL_KEEP 64
#define POOL_KEEP_BIG 16

struct pool {
	pthread_mutex_t lock;
	struct msg *free;
	unsigned count;
	uint32_t cap;
};

static struct pool small = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, MSG_SMALL };
static struct pool big = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0 };

void msg_init(uint32_t big_cap)
{
	big.cap = big_cap;
}

static struct msg *pool_get(struct pool *p)
{
	struct msg *m;

	pthread_mutex_lock(&p->lock);
	m = p->free;
	if (m) {
		p->free = m->next;
		p->count--;
	}
	pthread_mutex_unlock(&p->lock);
	if (!m) {
		m = malloc(sizeof(*m) + p->cap);
		if (!m)
			return NULL;
		m->cap = p->cap;
		/*
		 * The kernel copies a request into the buffer a read(2) of /dev/fuse gives it, and
		 * fails the request with EIO if a page fault of that copy meets a fatal signal: a
		 * keeper SIGKILLed then (systemd's fd store lets the next one take over) would fail
		 * an application's call. Every page of a large buffer is faulted in here, once.
		 */
		if (p == &big)
			for (size_t off = 0; off < p->cap; off += 4096)
				((volatile char *)m->data)[off] = 0;
	}
	memset(m, 0, offsetof(struct msg, data));
	m->cap = p->cap;
	return m;
}

struct msg *msg_get(uint32_t len)
{
	if (len <= MSG_SMALL)
		return pool_get(&small);
	if (len <= big.cap)
		return pool_get(&big);
	return NULL;
}

void msg_put(struct msg *m)
{
	struct pool *p;

	if (!m)
		return;
	free(m->before);
	m->before = NULL;
	p = m->cap == MSG_SMALL ? &small : m->cap == big.cap ? &big : NULL;
	if (p) {
		pthread_mutex_lock(&p->lock);
		if (p->count < (p == &big ? POOL_KEEP_BIG : POOL_KEEP)) {
			m->next = p->free;
			p->free = m;
			p->count++;
			m = NULL;
		}
		pthread_mutex_unlock(&p->lock);
	}
	free(m);
}

void msg_put_chain(struct msg *m)
{
	while (m) {
		struct msg *next = m->next;

		msg_put(m);
		m = next;
	}
}

struct msg *msg_shrink(struct msg *m)
{
	struct msg *s;

	if (m->cap == MSG_SMALL || m->len >= m->cap / 4 * 3)
		return m;
	s = malloc(sizeof(*s) + m->len);
	if (!s)
		return m;
	memcpy(s, m, offsetof(struct msg, data) + m->len);
	s->cap = s->len; /* no pool has this size: msg_put() frees it */
	m->before = NULL;
	msg_put(m);
	return s;
}

struct msg *msg_dup(const void *data, uint32_t len)
{
	struct msg *m = msg_get(len);

	if (!m)
		return NULL;
	memcpy(m->data, data, len);
	m->len = len;
	return m;
}

void msg_save(struct image *im, const struct msg *m)
{
	image_u32(im, m->epoch);
	image_u32(im, m->held);
	image_bool(im, m->replayed);
	image_u32(im, m->deaths);
	image_u32(im, m->int_epoch);
	image_bool(im, m->primed);
	image_bool(im, m->resent);
	image_u32(im, m->resends);
	image_u64(im, m->wseq);
	image_u64(im, m->sent_ns);
	image_u64(im, m->death_ns);
	image_u64(im, m->given_ms);
	image_u64(im, m->dver);
	image_u64(im, m->knode);
	image_u64(im, m->knode2);
	image_u64(im, m->kfh);
	image_u64(im, m->kfh2);
	image_bytes(im, m->before, m->before ? sizeof(*m->before) : 0);
	image_bytes(im, m->data, m->len);
}

struct msg *msg_load(struct image *im)
{
	struct msg tmp = { 0 }, *m;
	const void *before, *data;
	uint32_t blen, len;

	tmp.epoch = image_get_u32(im);
	tmp.held = image_get_u32(im);
	tmp.replayed = image_get_bool(im);
	tmp.deaths = image_get_u32(im);
	tmp.int_epoch = image_get_u32(im);
	tmp.primed = image_get_bool(im);
	tmp.resent = image_get_bool(im);
	tmp.resends = image_get_u32(im);
	tmp.wseq = image_get_u64(im);
	tmp.sent_ns = image_get_u64(im);
	tmp.death_ns = image_get_u64(im);
	tmp.given_ms = image_get_u64(im);
	tmp.dver = image_get_u64(im);
	tmp.knode = image_get_u64(im);
	tmp.knode2 = image_get_u64(im);
	tmp.kfh = image_get_u64(im);
	tmp.kfh2 = image_get_u64(im);
	before = image_get_bytes(im, &blen);
	data = image_get_bytes(im, &len);
	if (im->err)
		return NULL;
	/* A message is at least a header, and says its own length (unaligned in the image). */
	if ((blen && blen != sizeof(*tmp.before)) || len < sizeof(struct fuse_in_header) ||
	    len > big.cap || memcmp(data, &len, sizeof(len))) {
		image_bad(im);
		return NULL;
	}
	m = msg_dup(data, len);
	if (m && blen) {
		m->before = malloc(blen);
		if (m->before)
			memcpy(m->before, before, blen);
	}
	if (!m || (blen && !m->before)) {
		msg_put(m);
		im->err = -ENOMEM;
		return NULL;
	}
	tmp.next = NULL;
	tmp.cap = m->cap;
	tmp.len = len;
	tmp.before = m->before;
	memcpy(m, &tmp, offsetof(struct msg, data));
	return len > MSG_SMALL ? msg_shrink(m) : m;
}
