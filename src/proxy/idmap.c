/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "idmap.h"

#include <errno.h>
#include <stdlib.h>

/* Keys are kernel node IDs (often pointers) and counters: mix the bits before masking. */
static inline size_t slot_of(const struct idmap *m, uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return key & m->mask;
}

void *idmap_get(const struct idmap *m, uint64_t key)
{
	if (!m->slots)
		return NULL;
	for (size_t i = slot_of(m, key);; i = (i + 1) & m->mask) {
		if (!m->slots[i].val)
			return NULL;
		if (m->slots[i].key == key)
			return m->slots[i].val;
	}
}

static int grow(struct idmap *m)
{
	size_t cap = m->slots ? (m->mask + 1) * 2 : 64;
	struct idmap old = *m;

	m->slots = calloc(cap, sizeof(*m->slots));
	if (!m->slots) {
		*m = old;
		return -ENOMEM;
	}
	m->mask = cap - 1;
	m->count = 0;
	for (size_t i = 0; old.slots && i <= old.mask; i++)
		if (old.slots[i].val)
			idmap_put(m, old.slots[i].key, old.slots[i].val);
	free(old.slots);
	return 0;
}

int idmap_put(struct idmap *m, uint64_t key, void *val)
{
	/* Keep the load under 3/4 so probes stay short. */
	if (!m->slots || (m->count + 1) * 4 > (m->mask + 1) * 3) {
		int r = grow(m);
		if (r < 0)
			return r;
	}
	for (size_t i = slot_of(m, key);; i = (i + 1) & m->mask) {
		if (!m->slots[i].val) {
			m->slots[i].key = key;
			m->slots[i].val = val;
			m->count++;
			return 0;
		}
		if (m->slots[i].key == key) {
			m->slots[i].val = val;
			return 0;
		}
	}
}

void *idmap_del(struct idmap *m, uint64_t key)
{
	size_t i, j;
	void *val;

	if (!m->slots)
		return NULL;
	for (i = slot_of(m, key);; i = (i + 1) & m->mask) {
		if (!m->slots[i].val)
			return NULL;
		if (m->slots[i].key == key)
			break;
	}
	val = m->slots[i].val;
	/* Shift later members of the probe run back so lookups never stop at a hole. */
	for (j = (i + 1) & m->mask; m->slots[j].val; j = (j + 1) & m->mask) {
		size_t home = slot_of(m, m->slots[j].key);
		/* Move j into i when i lies cyclically between home and j. */
		if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].val = NULL;
	m->count--;
	return val;
}

void idmap_each(const struct idmap *m, void (*fn)(uint64_t key, void *val, void *arg), void *arg)
{
	for (size_t i = 0; m->slots && i <= m->mask; i++)
		if (m->slots[i].val)
			fn(m->slots[i].key, m->slots[i].val, arg);
}

void idmap_free(struct idmap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->mask = 0;
	m->count = 0;
}
