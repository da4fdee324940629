/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "msg.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util.h"

/*
 * Free buffers kept for reuse. A pool always keeps up to @keep of them and, beyond that, up to
 * @max of those it has needed lately: a buffer that went untaken for POOL_IDLE_MS is freed
 * (small ones with free(3), large ones, mappings of their own, with munmap(2)). Large ones are
 * about a MiB each: 16 serve the relay's readers; a write window (--write-window, 64 MiB by
 * default) holds a buffer per acknowledged write until a sync lets them all go at once, and
 * the next burst of writes would otherwise take as many buffers made anew. A made buffer's
 * first use costs a page fault and a cleared page per 4 KiB (on the PVM guest the benchmarks
 * ran on, 1.5 ms a MiB: twice what relaying the MiB costs), so those are kept while in use.
 */
#define POOL_KEEP 64
#define POOL_KEEP_BIG 16
#define POOL_MAX_BIG (POOL_KEEP_BIG + 80)
#define POOL_IDLE_MS 10000

struct pool {
	pthread_mutex_t lock;
	struct msg *free;  /* most recently returned first */
	unsigned count;	   /* buffers on @free */
	unsigned low;	   /* the fewest on @free since @trim_ms: the last ones went untaken */
	int64_t trim_ms;   /* clock_ms() when untaken buffers were last freed */
	unsigned keep;	   /* kept however long untaken */
	unsigned max;	   /* kept at most */
	uint32_t cap;
};

static struct pool small = {
	.lock = PTHREAD_MUTEX_INITIALIZER, .keep = POOL_KEEP, .max = POOL_KEEP, .cap = MSG_SMALL
};
static struct pool big = {
	.lock = PTHREAD_MUTEX_INITIALIZER, .keep = POOL_KEEP_BIG, .max = POOL_MAX_BIG
};
static int64_t (*clock_ms)(void) = now_coarse_ms;

void msg_set_clock(int64_t (*fn)(void))
{
	clock_ms = fn ? fn : now_coarse_ms;
}

unsigned msg_big_free(void)
{
	unsigned n;

	pthread_mutex_lock(&big.lock);
	n = big.count;
	pthread_mutex_unlock(&big.lock);
	return n;
}

/* Frees @m for good, a mapping or malloc's as it was made. */
static void msg_free(struct msg *m)
{
	if (m->mapped)
		munmap(m, sizeof(*m) + m->cap);
	else
		free(m);
}

void msg_init(uint32_t big_cap)
{
	pthread_mutex_lock(&big.lock);
	/* Buffers of another size (an earlier msg_init()) cannot serve: they go. */
	while (big.free) {
		struct msg *m = big.free;

		big.free = m->next;
		msg_free(m);
	}
	big.count = big.low = 0;
	big.cap = big_cap;
	pthread_mutex_unlock(&big.lock);
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
	p->low = MIN(p->low, p->count);
	pthread_mutex_unlock(&p->lock);
	if (!m && p == &big) {
		/*
		 * The kernel copies a request into the buffer a read(2) of /dev/fuse gives it, and
		 * fails the request with EIO if a page fault of that copy meets a fatal signal: a
		 * keeper SIGKILLed then (systemd's fd store lets the next one take over) would fail
		 * an application's call. So every page of a large buffer is there from the start:
		 * MADV_POPULATE_WRITE fills them in one call (where touching each would fault 257
		 * times a MiB) and, unlike MAP_POPULATE, fails when it cannot (a memory cgroup at
		 * its limit). Before Linux 5.14, which lacks it, each page is touched.
		 */
		size_t size = sizeof(*m) + p->cap;

		m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return NULL;
		if (madvise(m, size, MADV_POPULATE_WRITE) < 0) {
			if (errno != EINVAL) {
				munmap(m, size);
				return NULL;
			}
			for (size_t off = 0; off < size; off += 4096)
				((volatile char *)m)[off] = 0;
		}
	} else if (!m) {
		m = malloc(sizeof(*m) + p->cap);
		if (!m)
			return NULL;
	}
	memset(m, 0, offsetof(struct msg, data));
	m->cap = p->cap;
	m->mapped = p == &big;
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

/*
 * Under @p's lock, once every POOL_IDLE_MS: the buffers beyond @keep that stayed on the free
 * list all that time (the last @low of it) are taken off it. Returns them, linked, for the
 * caller to free after unlocking.
 */
static struct msg *pool_trim(struct pool *p)
{
	int64_t now = clock_ms();
	struct msg *cut = NULL, **at = &p->free;

	if (now - p->trim_ms < POOL_IDLE_MS)
		return NULL;
	if (p->low > p->keep) {
		p->count -= p->low - p->keep;
		for (unsigned i = 0; i < p->count; i++)
			at = &(*at)->next;
		cut = *at;
		*at = NULL;
	}
	p->low = p->count;
	p->trim_ms = now;
	return cut;
}

void msg_put(struct msg *m)
{
	struct pool *p;
	struct msg *cut = NULL;

	if (!m)
		return;
	free(m->before);
	m->before = NULL;
	if (m->mapped)
		p = m->cap == big.cap ? &big : NULL;
	else
		p = m->cap == MSG_SMALL ? &small : NULL;
	if (p) {
		pthread_mutex_lock(&p->lock);
		if (p->count < p->max) {
			m->next = p->free;
			p->free = m;
			p->count++;
			m = NULL;
		}
		if (p->max > p->keep)
			cut = pool_trim(p);
		pthread_mutex_unlock(&p->lock);
	}
	if (m)
		msg_free(m);
	while (cut) {
		struct msg *next = cut->next;

		msg_free(cut);
		cut = next;
	}
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
	s->mapped = false;
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
	tmp.mapped = m->mapped;
	tmp.len = len;
	tmp.before = m->before;
	memcpy(m, &tmp, offsetof(struct msg, data));
	return len > MSG_SMALL ? msg_shrink(m) : m;
}
