/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "slab.h"

#include <stdlib.h>
#include <string.h>

void slab_init(struct slab *s, size_t size)
{
	*s = (struct slab){ .size = size < sizeof(uint32_t) ? sizeof(uint32_t) : size };
}

void *slab_alloc(struct slab *s, uint32_t *idx)
{
	void *rec;

	if (s->free) {
		*idx = s->free;
		rec = slab_at(s, *idx);
		memcpy(&s->free, rec, sizeof(s->free));
	} else {
		uint32_t chunk = s->used >> SLAB_CHUNK_SHIFT;

		if (s->used == UINT32_MAX)
			return NULL;
		if (chunk == s->nchunks) {
			char **v = realloc(s->chunks, (s->nchunks + 1) * sizeof(*v));

			if (!v)
				return NULL;
			s->chunks = v;
			v[chunk] = malloc(s->size << SLAB_CHUNK_SHIFT);
			if (!v[chunk])
				return NULL;
			s->nchunks++;
		}
		*idx = ++s->used;
		rec = slab_at(s, *idx);
	}
	s->count++;
	return memset(rec, 0, s->size);
}

void slab_free(struct slab *s, uint32_t idx)
{
	memcpy(slab_at(s, idx), &s->free, sizeof(s->free));
	s->free = idx;
	s->count--;
}

void slab_free_all(struct slab *s)
{
	for (uint32_t i = 0; i < s->nchunks; i++)
		free(s->chunks[i]);
	free(s->chunks);
	slab_init(s, s->size);
}
