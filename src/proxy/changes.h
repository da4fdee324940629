/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Which entries of a table changed since the resume journal last wrote them (resume.c): the keys
 * (a node's kid, a handle's kfh, a locked node's kid) in the order noted, repeats allowed. The
 * journal writes the current state of each key noted, so that the order and the repeats do not
 * matter. Not thread-safe: the table's lock (the proxy's) protects it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct changes {
	uint64_t *key;
	size_t n, cap;
	bool on;     /* noting at all: off until the journal starts */
	bool failed; /* a key could not be noted (out of memory): the journal is not whole */
};

void changes_grow(struct changes *c, uint64_t key);

/* Notes that the entry @key changed (it may be gone now). */
static inline void changes_note(struct changes *c, uint64_t key)
{
	if (!c->on || (c->n && c->key[c->n - 1] == key))
		return; /* a stream of WRITEs notes one node over and over */
	if (c->n == c->cap) {
		changes_grow(c, key);
		return;
	}
	c->key[c->n++] = key;
}

/* Sorts the keys noted and drops repeats; returns how many are left in c->key. */
size_t changes_unique(struct changes *c);

/* Starts noting afresh (@on) or stops, with nothing noted. */
void changes_reset(struct changes *c, bool on);

void changes_free(struct changes *c);
