/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A hash set of values that carry their own key: a slot holds only the value (a 4-byte slab
 * index or an 8-byte pointer), and the key is read from what it names (the node's kid, the name's
 * hash). Beside each slot a byte tags it with 7 bits of its key's hash, so that a probe reads the
 * record behind a slot only when the tags match (once in 128 for another key): 5 bytes a slot for
 * 4-byte values, a third of a (key, pointer) map's 16. Open addressing, linear probing,
 * backward-shift removal, slots at most 4/5 used. Several values may share a key (callers that
 * need one per key keep it so). A value's key must not change while the value is in the set.
 * Not thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The key of @val (any value, 0 too); @ctx is the set's. */
typedef uint64_t keyset_key_fn(const void *ctx, uint64_t val);

struct keyset {
	void *slots;	    /* uint32_t or uint64_t values */
	uint8_t *tags;	    /* one a slot: 0 empty, else 0x80 | 7 bits of the key's hash */
	size_t mask;	    /* capacity - 1; capacity is a power of two */
	size_t count;	    /* values in the set */
	unsigned width;	    /* bytes a slot: 4 or 8 */
	keyset_key_fn *key;
	const void *ctx;
};

/* An empty set of @width-byte values (4 or 8) whose keys @key reads, given @ctx. */
void keyset_init(struct keyset *s, unsigned width, keyset_key_fn *key, const void *ctx);

/*
 * Walks the values whose key is @key: start with *pos = KEYSET_START; each call returns the
 * next such value, or 0 after the last. The set must not change during the walk.
 */
#define KEYSET_START SIZE_MAX
uint64_t keyset_next(const struct keyset *s, uint64_t key, size_t *pos);

/* The first value whose key is @key, or 0. */
static inline uint64_t keyset_get(const struct keyset *s, uint64_t key)
{
	size_t pos = KEYSET_START;

	return keyset_next(s, key, &pos);
}

/*
 * Adds @val (not 0: keyset_next() returns 0 for none), which must not be in the set. Returns 0
 * or -ENOMEM.
 */
int keyset_add(struct keyset *s, uint64_t val);

/* Takes @val out; false if it was not in the set. */
bool keyset_remove(struct keyset *s, uint64_t val);

/* Calls @fn for every value; @fn must not change the set. */
void keyset_each(const struct keyset *s, void (*fn)(uint64_t val, void *arg), void *arg);

void keyset_free(struct keyset *s);
