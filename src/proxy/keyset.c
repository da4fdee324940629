/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "keyset.h"

#include <errno.h>
#include <stdlib.h>

/* A slot's tag: 0 empty, else TAG_FULL | 7 bits of its key's hash. */
#define TAG_FULL 0x80

/* Keys are node IDs (often pointers), counters and name hashes: mix every bit in. */
static inline uint64_t mix(uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	key *= 0xc4ceb9fe1a85ec53ULL;
	key ^= key >> 33;
	return key;
}

/* The tag comes from the bits the slot index does not use (a set never has 2^57 slots). */
static inline uint8_t tag_of(uint64_t h)
{
	return TAG_FULL | (uint8_t)(h >> 57);
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
	uint64_t h = mix(key);
	uint8_t tag = tag_of(h);
	size_t i;

	if (!s->slots)
		return 0;
	i = *pos == KEYSET_START ? h & s->mask : (*pos + 1) & s->mask;
	for (;; i = (i + 1) & s->mask) {
		/* Only a slot whose tag matches costs a read of its record. */
		if (!s->tags[i])
			return 0;
		if (s->tags[i] == tag && s->key(s->ctx, slot(s, i)) == key) {
			*pos = i;
			return slot(s, i);
		}
	}
}

static void insert(struct keyset *s, uint64_t val)
{
	uint64_t h = mix(s->key(s->ctx, val));
	size_t i = h & s->mask;

	while (s->tags[i])
		i = (i + 1) & s->mask;
	s->tags[i] = tag_of(h);
	set_slot(s, i, val);
	s->count++;
}

/* Moves every value into @cap slots (a power of two). */
static int rehash(struct keyset *s, size_t cap)
{
	struct keyset old = *s;

	s->slots = calloc(cap, s->width);
	s->tags = calloc(cap, 1);
	if (!s->slots || !s->tags) {
		free(s->slots);
		free(s->tags);
		*s = old;
		return -ENOMEM;
	}
	s->mask = cap - 1;
	s->count = 0;
	for (size_t i = 0; old.slots && i <= old.mask; i++)
		if (old.tags[i])
			insert(s, slot(&old, i));
	free(old.slots);
	free(old.tags);
	return 0;
}

int keyset_add(struct keyset *s, uint64_t val)
{
	/* At most 4/5 of the slots used: probes stay short. */
	if (!s->slots || (s->count + 1) * 5 > (s->mask + 1) * 4) {
		int r = rehash(s, s->slots ? (s->mask + 1) * 2 : 64);

		if (r < 0)
			return r;
	}
	insert(s, val);
	return 0;
}

bool keyset_remove(struct keyset *s, uint64_t val)
{
	uint64_t h;
	uint8_t tag;

	if (!s->slots)
		return false;
	h = mix(s->key(s->ctx, val));
	tag = tag_of(h);
	for (size_t i = h & s->mask; s->tags[i]; i = (i + 1) & s->mask) {
		if (s->tags[i] != tag || slot(s, i) != val)
			continue;
		/*
		 * Shift later members of the probe run back, so that lookups never stop at a
		 * hole: j moves into i when i lies cyclically between j's home and j. Each costs
		 * a read of its record (a run is a few slots long at 4/5), where marking the
		 * slot removed instead would make a table of constant size rehash every record
		 * now and then, a stall under the proxy's lock.
		 */
		for (size_t j = (i + 1) & s->mask; s->tags[j]; j = (j + 1) & s->mask) {
			size_t home = mix(s->key(s->ctx, slot(s, j))) & s->mask;

			if (((j - home) & s->mask) >= ((j - i) & s->mask)) {
				s->tags[i] = s->tags[j];
				set_slot(s, i, slot(s, j));
				i = j;
			}
		}
		s->tags[i] = 0;
		set_slot(s, i, 0);
		s->count--;
		return true;
	}
	return false;
}

void keyset_each(const struct keyset *s, void (*fn)(uint64_t val, void *arg), void *arg)
{
	for (size_t i = 0; s->slots && i <= s->mask; i++)
		if (s->tags[i])
			fn(slot(s, i), arg);
}

void keyset_free(struct keyset *s)
{
	free(s->slots);
	free(s->tags);
	s->slots = NULL;
	s->tags = NULL;
	s->mask = 0;
	s->count = 0;
}
