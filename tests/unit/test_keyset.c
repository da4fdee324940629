/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The slab and the key set over it, against a brute-force model: random adds and removes of
 * records whose keys collide on purpose, walks of every value under one key, reuse of freed
 * records, and 8-byte values.
 */
#include <stdint.h>
#include <stdlib.h>

#include "proxy/keyset.h"
#include "proxy/slab.h"
#include "tap.h"

#define RECS 3000

struct rec {
	uint64_t key;
	uint32_t pad[3]; /* 24 bytes: not a power of two, as nodes and handles are not */
};

static uint64_t rec_key(const void *ctx, uint64_t idx)
{
	return ((const struct rec *)slab_at(ctx, idx))->key;
}

static uint64_t ptr_key(const void *ctx, uint64_t val)
{
	return ((const struct rec *)(uintptr_t)val)->key;
}

static void count_one(uint64_t val, void *arg)
{
	(*(size_t *)arg)++;
}

int main(void)
{
	static uint32_t model[RECS]; /* slot i: the record's index, 0 when absent */
	struct slab s;
	struct keyset m;
	unsigned seed = 7, bad = 0;
	size_t live = 0, seen = 0;

	slab_init(&s, sizeof(struct rec));
	keyset_init(&m, 4, rec_key, &s);
	ok(keyset_get(&m, 1) == 0 && !keyset_remove(&m, 1), "an empty set finds and removes nothing");

	/* Keys i / 3: three records share each key, so walks and removed slots see collisions. */
	for (int round = 0; round < 200000; round++) {
		unsigned i = rand_r(&seed) % RECS;

		if (!model[i] && rand_r(&seed) % 3) {
			uint32_t idx;
			struct rec *r = slab_alloc(&s, &idx);

			if (!r || r->key || idx == 0) {
				bad++;
				continue;
			}
			r->key = 0x7f0000001000ULL + i / 3 * 64;
			if (keyset_add(&m, idx) < 0)
				bad++;
			model[i] = idx;
			live++;
		} else if (model[i]) {
			if (!keyset_remove(&m, model[i]))
				bad++;
			slab_free(&s, model[i]);
			model[i] = 0;
			live--;
		}
	}
	ok(bad == 0, "adds and removes agree with the model (%u mismatches)", bad);
	ok(m.count == live && s.count == live, "counts %zu and %u match the model %zu", m.count,
	   s.count, live);
	ok(s.used <= RECS, "freed records are reused (%u handed out for %d keys)", s.used, RECS);
	for (unsigned k = 0; k < RECS / 3; k++) {
		uint64_t key = 0x7f0000001000ULL + k * 64, v;
		size_t pos = KEYSET_START, n = 0, want = 0;

		for (unsigned j = k * 3; j < k * 3 + 3; j++)
			want += model[j] != 0;
		while ((v = keyset_next(&m, key, &pos))) {
			bool known = false;

			for (unsigned j = k * 3; j < k * 3 + 3; j++)
				known |= model[j] == v;
			bad += !known;
			n++;
		}
		bad += n != want;
	}
	ok(bad == 0, "a walk of each key finds exactly its records");
	keyset_each(&m, count_one, &seen);
	ok(seen == live, "each visits every value once (%zu of %zu)", seen, live);
	{
		/* A record whose key others have, not in the set: removing it takes nothing. */
		uint32_t idx;
		struct rec *r = slab_alloc(&s, &idx);
		uint64_t before = 0;

		for (unsigned j = 0; j < 3; j++)
			before += model[j] != 0;
		r->key = 0x7f0000001000ULL;
		ok(!keyset_remove(&m, idx) && m.count == live,
		   "removing a value that is not in the set, under a key that is, takes nothing");
		for (unsigned j = 0; j < 3; j++) {
			if (!model[j])
				continue;
			before -= keyset_remove(&m, model[j]);
			slab_free(&s, model[j]);
			model[j] = 0;
			live--;
		}
		ok(before == 0 && keyset_get(&m, 0x7f0000001000ULL) == 0,
		   "the values that are there go one by one, and then the key finds nothing");
		slab_free(&s, idx);
	}
	{
		/* Values coming and going at a constant count: the set never grows for it. */
		size_t mask = m.mask, n = 0;

		for (int round = 0; round < 100000; round++) {
			unsigned i = rand_r(&seed) % RECS;

			if (!model[i])
				continue;
			bad += !keyset_remove(&m, model[i]);
			bad += keyset_add(&m, model[i]) < 0;
			n++;
		}
		ok(bad == 0 && m.mask == mask && m.count == live && n > 10000,
		   "%zu removes and adds at a constant count keep the capacity", n);
	}
	keyset_free(&m);
	slab_free_all(&s);

	/* 8-byte values: pointers, as the name index holds. */
	{
		static struct rec recs[100];

		keyset_init(&m, 8, ptr_key, NULL);
		for (int i = 0; i < 100; i++) {
			recs[i].key = i % 10;
			bad += keyset_add(&m, (uintptr_t)&recs[i]) < 0;
		}
		for (int i = 0; i < 100; i += 2)
			bad += !keyset_remove(&m, (uintptr_t)&recs[i]);
		for (int i = 0; i < 100; i++) {
			size_t pos = KEYSET_START;
			uint64_t v;
			bool found = false;

			while ((v = keyset_next(&m, i % 10, &pos)))
				found |= v == (uintptr_t)&recs[i];
			bad += found != (i % 2 == 1);
		}
		ok(bad == 0 && m.count == 50, "pointer values: removes take only their own value");
		keyset_free(&m);
	}
	return tap_done();
}
