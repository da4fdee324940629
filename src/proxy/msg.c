/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "msg.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Free buffers kept for reuse per pool; beyond this they go back to malloc. */
#define POOL_KEEP 64

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
		if (p->count < POOL_KEEP) {
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

	/* Small buffers stay in their pool; a large one is worth shrinking past a page of slack. */
	if (m->cap == MSG_SMALL || m->cap - m->len < 4096)
		return m;
	s = realloc(m, sizeof(*m) + m->len);
	if (!s)
		return m;
	s->cap = s->len; /* no pool has this size: msg_put() frees it */
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
