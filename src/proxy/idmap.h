/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A hash map from 64-bit keys to pointers (open addressing, linear probing, backward-shift delete).
 * Used for node IDs, file handles and request uniques. Not thread-safe: callers hold their lock.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct idmap_slot {
	uint64_t key;
	void *val; /* NULL marks an empty slot: values are never NULL */
};

struct idmap {
	struct idmap_slot *slots;
	size_t mask; /* capacity - 1; capacity is a power of two */
	size_t count;
};

/* Returns the value stored under @key, or NULL. */
void *idmap_get(const struct idmap *m, uint64_t key);

/* Stores @val (not NULL) under @key, replacing any value. Returns 0 or -ENOMEM. */
int idmap_put(struct idmap *m, uint64_t key, void *val);

/* Removes @key; returns its value or NULL if it was absent. */
void *idmap_del(struct idmap *m, uint64_t key);

/* Calls @fn for every entry; @fn must not change the map. */
void idmap_each(const struct idmap *m, void (*fn)(uint64_t key, void *val, void *arg), void *arg);

void idmap_free(struct idmap *m);
