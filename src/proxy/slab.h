/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fixed-size records by 32-bit index: the node and handle tables keep their records here so that
 * their maps can hold 4-byte indices (keyset.h) instead of 16-byte (key, pointer) slots, and so
 * that a record costs its size and no allocator header. Records never move: a pointer to one is
 * valid until it is freed. Freed records are reused, most recently freed first; the chunks they
 * live in are kept until slab_free_all(). Not thread-safe: callers hold their lock.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SLAB_CHUNK_SHIFT 10 /* 1024 records a chunk */

struct slab {
	char **chunks;	 /* chunk i holds records i << SLAB_CHUNK_SHIFT onwards */
	size_t size;	 /* bytes a record, at least 4 (a free one holds the next free index) */
	uint32_t nchunks;
	uint32_t used;	 /* records handed out from the chunks so far, free or not */
	uint32_t free;	 /* index of the most recently freed record; 0: none */
	uint32_t count;	 /* records in use */
};

/* An empty slab of @size-byte records; no memory until the first slab_alloc(). */
void slab_init(struct slab *s, size_t size);

/*
 * A zeroed record; its index (from 1, never 0) in *idx. Returns NULL when out of memory or
 * out of indices (2^32 - 1 records).
 */
void *slab_alloc(struct slab *s, uint32_t *idx);

/* Gives record @idx back; it may be handed out again by the next slab_alloc(). */
void slab_free(struct slab *s, uint32_t idx);

/* The record at @idx, which slab_alloc() gave and slab_free() has not taken back. */
static inline void *slab_at(const struct slab *s, uint32_t idx)
{
	idx--;
	return s->chunks[idx >> SLAB_CHUNK_SHIFT] +
	       (size_t)(idx & ((1u << SLAB_CHUNK_SHIFT) - 1)) * s->size;
}

/* Frees every chunk: every record goes, in use or not. */
void slab_free_all(struct slab *s);
