/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "keyset.h"

#include <errno.h>
#include <stdlib.h>

/* Keys are node IDs (often pointers), counters and name hashes: mix before masking. */
static inline size_t home_of(const struct keyset *s, uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return key & s->mask;
}

static inline uint64_t slot(const struct keyset *s, size_t i)
{
	return s->width == 4 ? ((const uint32_t *)s->slots)[i] : ((const uint64_t *)s->slots)[i];
}

static inline void set_slot(struct keyset *s, size_t i, uint64_t val)
{
	if (s->width == 4)
		((uint32_t *)s->slots)[i] = (uint32_t)val;
	else
		((uint64_t *)s->slots)[i] = val;
}

void keyset_init(struct keyset *s, unsigned width, keyset_key_fn *key, const void *ctx)
{
	*s = (struct keyset){ .width = width == 4 ? 4 : 8, .key = key, .ctx = ctx };
}

uint64_t keyset_next(const struct keyset *s, uint64_t key, size_t *pos)
{
	size_t i;

	if (!s->slots)
		return 0;
	i = *pos == KEYSET_START ? home_of(s, key) : (*pos + 1) & s->mask;
	for (;; i = (i + 1) & s->mask) {
		uint64_t v = slot(s, i);

		if (!v)
			return 0;
		if (s->key(s->ctx, v) == key) {
			*pos = i;
			return v;
		}
	}
}

static void insert(struct keyset *s, uint64_t val)
{
	size_t i = home_of(s, s->key(s->ctx, val));

	while (slot(s, i))
		i = (i + 1) & s->mask;
	set_slot(s, i, val);
	s->count++;
}

static int grow(struct keyset *s)
{
	size_t cap = s->slots ? (s->mask + 1) * 2 : 64;
	struct keyset old = *s;

	s->slots = calloc(cap, s->width);
	if (!s->slots) {
		*s = old;
		return -ENOMEM;
	}
	s->mask = cap - 1;
	s->count = 0;
	for (size_t i = 0; old.slots && i <= old.mask; i++)
		if (slot(&old, i))
			insert(s, slot(&old, i));
	free(old.slots);
	return 0;
}

int keyset_add(struct keyset *s, uint64_t val)
{
	/* Load at most 4/5: probes stay short, and a slot is worth its memory. */
	if (!s->slots || (s->count + 1) * 5 > (s->mask + 1) * 4) {
		int r = grow(s);

		if (r < 0)
			return r;
	}
	insert(s, val);
	return 0;
}

bool keyset_remove(struct keyset *s, uint64_t val)
{
	size_t i, j;

	if (!s->slots)
		return false;
	for (i = home_of(s, s->key(s->ctx, val));; i = (i + 1) & s->mask) {
		uint64_t v = slot(s, i);

		if (!v)
			return false;
		if (v == val)
			break;
	}
	/* Shift later members of the probe run back so that lookups never stop at a hole. */
	for (j = (i + 1) & s->mask; slot(s, j); j = (j + 1) & s->mask) {
		size_t home = home_of(s, s->key(s->ctx, slot(s, j)));

		/* Move j into i when i lies cyclically between home and j. */
		if (((j - home) & s->mask) >= ((j - i) & s->mask)) {
			set_slot(s, i, slot(s, j));
			i = j;
		}
	}
	set_slot(s, i, 0);
	s->count--;
	return true;
}

void keyset_each(const struct keyset *s, void (*fn)(uint64_t val, void *arg), void *arg)
{
	for (size_t i = 0; s->slots && i <= s->mask; i++)
		if (slot(s, i))
			fn(slot(s, i), arg);
}

void keyset_free(struct keyset *s)
{
	free(s->slots);
	s->slots = NULL;
	s->mask = 0;
	s->count = 0;
}
