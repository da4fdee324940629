/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The ID map against a brute-force model under random inserts and deletes. */
#include <stdint.h>
#include <stdlib.h>

#include "proxy/idmap.h"
#include "tap.h"

#define KEYS 5000

int main(void)
{
	static void *model[KEYS];
	struct idmap m = { 0 };
	unsigned seed = 1, mismatches = 0;
	size_t live = 0;

	ok(idmap_get(&m, 42) == NULL, "empty map finds nothing");
	ok(idmap_del(&m, 42) == NULL, "deleting from an empty map is harmless");

	/* Keys clustered like pointers and counters, to exercise probing and back-shifts. */
	for (int round = 0; round < 200000; round++) {
		unsigned i = rand_r(&seed) % KEYS;
		uint64_t key = 0x7f0000001000ULL + (uint64_t)i * 64;

		if (rand_r(&seed) % 3) {
			void *val = (void *)(uintptr_t)(round + 1);
			live += model[i] == NULL;
			model[i] = val;
			if (idmap_put(&m, key, val) < 0)
				mismatches++;
		} else {
			void *got = idmap_del(&m, key);
			if (got != model[i])
				mismatches++;
			live -= model[i] != NULL;
			model[i] = NULL;
		}
	}
	ok(mismatches == 0, "put/del agree with the model (%u mismatches)", mismatches);
	ok(m.count == live, "count %zu matches the model %zu", m.count, live);
	for (unsigned i = 0; i < KEYS; i++)
		if (idmap_get(&m, 0x7f0000001000ULL + (uint64_t)i * 64) != model[i])
			mismatches++;
	ok(mismatches == 0, "every key maps to the model's value after churn");
	idmap_free(&m);
	ok(m.count == 0 && idmap_get(&m, 1) == NULL, "a freed map is empty");
	return tap_done();
}
