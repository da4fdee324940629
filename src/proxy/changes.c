/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "changes.h"

#include <stdlib.h>

void changes_grow(struct changes *c, uint64_t key)
{
	size_t cap = c->cap ? c->cap * 2 : 64;
	uint64_t *k;

	/* Many changes between two records (FORGETs, data changes): repeats go first. */
	if (c->cap >= 4096 && changes_unique(c) < c->cap / 2) {
		c->key[c->n++] = key;
		return;
	}
	k = realloc(c->key, cap * sizeof(*k));

	if (!k) {
		c->failed = true;
		return;
	}
	c->key = k;
	c->cap = cap;
	c->key[c->n++] = key;
}

static int cmp_key(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

size_t changes_unique(struct changes *c)
{
	size_t out = 0;

	if (c->n > 1)
		qsort(c->key, c->n, sizeof(*c->key), cmp_key);
	for (size_t i = 0; i < c->n; i++)
		if (!out || c->key[out - 1] != c->key[i])
			c->key[out++] = c->key[i];
	c->n = out;
	return out;
}

void changes_reset(struct changes *c, bool on)
{
	c->n = 0;
	c->on = on;
	c->failed = false;
}

void changes_free(struct changes *c)
{
	free(c->key);
	*c = (struct changes){ 0 };
}
