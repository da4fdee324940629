/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A journal in shared memory that outlives the keeper: kept in systemd's fd store, it lets the
 * keeper started after a SIGKILL take up the state the killed one had (docs/design.md,
 * "Surviving the keeper's own death").
 *
 * A journal is a *base* (an image, image.h: the whole state at one moment) followed by the
 * *records* appended since (each a kind and a payload: one change of the state). Two memfds take
 * turns: journal_rebase() writes a new base into the one not in use and makes it current with
 * one store, so that a reader always finds a whole base. A record is written, then committed by
 * one store of its length; what follows the last committed record is zeros. A keeper killed at
 * any instruction — SIGKILL stops every thread at once, and the memory is the memfd's, not the
 * process's — therefore leaves a journal that reads back as a base and a sequence of whole
 * records; a record it was writing is not there at all. (This is about the process's death, not
 * the machine's: nothing is written to a disk.)
 *
 * Not thread-safe: the caller serializes appends and rebases (the proxy's lock).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* Largest record payload. */
#define JOURNAL_RECORD_MAX (64u << 20)

struct journal;

/*
 * Makes a journal of two new memfds (named @name in /proc/PID/fd), with an empty base. Returns 0
 * or -errno.
 */
int journal_create(struct journal **j, const char *name);

/*
 * Makes @base (an image's bytes) the new base, with no record after it. Returns 0 or -errno (the
 * journal is then as it was).
 */
int journal_rebase(struct journal *j, const struct image *base);

/*
 * Appends a record of @kind (not 0) whose payload is @a (@alen bytes) followed by @b (@blen
 * bytes; either may be empty). Returns 0, -EMSGSIZE past JOURNAL_RECORD_MAX, or -ENOSPC / -errno
 * when the memfd cannot grow (the record is not there).
 */
int journal_append(struct journal *j, uint32_t kind, const void *a, size_t alen, const void *b,
		   size_t blen);

/* Bytes of records appended since the base, and the base's size: the caller rebases when the
 * records outgrow the base. */
size_t journal_records_size(const struct journal *j);
size_t journal_base_size(const struct journal *j);

/*
 * A word kept beside the records, replaced in place by one store (no record, no rebase): for a
 * value that changes too often to journal and that a successor may read from any moment of the
 * writer's life. journal_mark() reads it back after journal_open() (0 if never set).
 */
void journal_set_mark(struct journal *j, uint64_t mark);
uint64_t journal_mark(const struct journal *j);

/* The two memfds (for the fd store); the journal keeps them. */
void journal_fds(const struct journal *j, int fds[2]);

/*
 * A successor's side: takes the two memfds a journal_create() made (in any order; either may
 * be -1 if lost), finds the current one and reads it. *@base gets a copy of the base for
 * image_get_*(). Returns 0, or -EBADMSG when neither holds a whole base (or -errno), the fds
 * closed then. The journal is then read with journal_next() and appended to as any other (the
 * fds are its own).
 */
int journal_open(struct journal **j, int fd_a, int fd_b, struct image *base);

/*
 * The next record after the base (from journal_open() on): returns 1 with its kind and payload
 * (valid until the next append or rebase), or 0 after the last one.
 */
int journal_next(struct journal *j, uint32_t *kind, const void **data, size_t *len);

/* Makes the journal unreadable (journal_open() finds no base), for good: nothing is appended. */
void journal_void(struct journal *j);

void journal_free(struct journal *j);
