/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hidden names (hidden.c): what one looks like, the state the proxy keeps of those in use, and
 * their journal in the state directory, which lists them so that a keeper started after one
 * that was killed removes what it left. hide.h has what the relay and recovery do with them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idmap.h"
#include "image.h"

/* Every hidden name starts with this; names that do are the keeper's, whichever keeper's. */
#define HIDE_PREFIX ".fusekeeper."
#define HIDE_PREFIX_LEN (sizeof(HIDE_PREFIX) - 1)
/* HIDE_PREFIX, 16 hex digits, NUL. */
#define HIDE_NAME_SIZE (HIDE_PREFIX_LEN + 17)

/* Graves kept at most: past that a hidden name stays in the store, listed in the journal for
 * the next keeper to remove (a daemon that never answers the removals cannot grow the list). */
#define HIDE_GRAVES_MAX 4096

/*
 * A hidden name to remove once the daemon can be asked (its file's last RELEASE came). As the
 * kernel would, the keeper first looks the name up, so that the daemon holds a lookup of the
 * inode it unlinks (the kernel may have forgotten it, and a daemon started since never heard of
 * it), then unlinks it, then forgets the lookup.
 */
struct grave {
	struct grave *next;
	uint64_t parent; /* kid of its directory, pinned in the node table */
	uint64_t unique; /* the LOOKUP's or UNLINK's unique while one is in flight, else 0 */
	uint64_t did;	 /* the daemon's ID of the file, once its LOOKUP answered: the UNLINK's
			    turn; 0 before (the LOOKUP's) */
	char name[HIDE_NAME_SIZE];
};

struct hide_state {
	bool off;		/* not hiding: --no-keep-removed, or the daemon cannot rename */
	bool no_link;		/* the daemon cannot make hard links: renames over held files
				   are not protected */
	uint64_t seed;		/* random per keeper run: names never repeat across runs */
	uint64_t counter;
	uint64_t live;		/* hidden names nodes hold: replies' st_nlink are corrected */
	uint64_t hiding_node;	/* kid of the node whose hiding request is unanswered, or 0:
				   a recovery meanwhile must resolve it (lazy resolution) */
	struct grave *graves;
	uint64_t ngraves;	/* graves listed; at most HIDE_GRAVES_MAX */
	uint64_t graves_full;	/* hidden names not buried for want of room (for logs) */
	int journal_fd;		/* -1 without a journal; locked (flock) while this keeper runs */
	char *journal_path;
	struct idmap listed;	/* what the journal lists: hidden name's number -> its path */
	uint64_t records;	/* records in the journal file (compacted past 2 x listed + 64) */
	char **leftovers;	/* what the journal listed at start: a killed keeper's names */
	size_t nleftovers;
};

/* Whether the @len bytes at @name are a hidden name. */
static inline bool hide_is_hidden(const char *name, size_t len)
{
	return len >= HIDE_PREFIX_LEN && name[0] == '.' &&
	       !__builtin_memcmp(name, HIDE_PREFIX, HIDE_PREFIX_LEN);
}

/*
 * Escapes @path (an absolute mountpoint) into a file name the way systemd names mount units
 * ("/srv/my-data" -> "srv-my\x2ddata"; "/" -> "-"). Returns 0, or -ENAMETOOLONG.
 */
int hide_escape_path(const char *path, char *out, size_t size);

/*
 * Opens the journal @dir/<escaped @mountpoint>.removed (creating @dir, mode 0700; it must be the
 * keeper's and writable by no one else: -EPERM), locks it (-EBUSY: another keeper runs on this
 * mountpoint) and reads the hidden names a previous keeper left listed into s->leftovers; the
 * journal is rewritten to list just those. Records are "+PATH\0" (in use; PATH relative to the
 * mount's root, ending in the hidden name) and "-NAME\0" (the hidden name NAME was removed).
 * Malformed records, and paths with "." or ".." components, are ignored. Returns 0 or -errno;
 * without a journal the keeper still hides names, but cannot clean up after being killed.
 */
int hide_journal_open(struct hide_state *s, const char *dir, const char *mountpoint);

/*
 * Records that @path is (@add) or is no longer (then only its last component counts) a hidden
 * name in use. Errors are logged.
 */
void hide_journal(struct hide_state *s, bool add, const char *path);

void hide_state_free(struct hide_state *s);

/* Writes @s to @im (fusekeeper reexec), the journal's fd (with its lock) with image_fd(). */
void hide_state_save(const struct hide_state *s, struct image *im);

/* Fills @s (zeroed) with what hide_state_save() wrote. Returns 0, -EBADMSG or -ENOMEM. */
int hide_state_load(struct hide_state *s, struct image *im);
