/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Files removed while open (docs/design.md, "Files removed while open"). When the kernel removes
 * the last name the keeper knows of a regular file it holds open — an UNLINK, or a RENAME over
 * it — the keeper asks the daemon to rename the file to a hidden name of its own in the same
 * directory instead, as NFS clients do, so that a restarted daemon can still look it up and open
 * it, and removes that name after the kernel's last RELEASE of the file. Hidden names never show
 * to applications. A journal in the state directory lists the hidden names in use, so that a
 * keeper started after one that was killed removes what it left.
 *
 * The hidden names' state and their journal, then what the relay and recovery do with them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idmap.h"
#include "msg.h"
#include "nodes.h"
#include "opcodes.h"

/* Every hidden name starts with this; names that do are the keeper's, whichever keeper's. */
#define HIDE_PREFIX ".fusekeeper."
#define HIDE_PREFIX_LEN (sizeof(HIDE_PREFIX) - 1)
/* HIDE_PREFIX, 16 hex digits, NUL. */
#define HIDE_NAME_SIZE (HIDE_PREFIX_LEN + 17)

/* Graves kept at most: past that a hidden name stays in the store, listed in the journal for
 * the next keeper to remove (a daemon that never answers the removals cannot grow the list). */
#define HIDE_GRAVES_MAX 4096

/* A hidden name to remove once the daemon can be asked (its file's last RELEASE came). */
struct grave {
	struct grave *next;
	uint64_t parent; /* kid of its directory, pinned in the node table */
	uint64_t unique; /* the UNLINK's unique while one is in flight, else 0 */
	char name[HIDE_NAME_SIZE];
};

struct hide_state {
	bool off;		/* not hiding: --no-keep-removed, or the daemon cannot rename */
	bool no_link;		/* the daemon cannot make hard links: renames over held files
				   are not protected */
	uint64_t seed;		/* random per keeper run: names never repeat across runs */
	uint64_t counter;
	uint64_t live;		/* hidden names nodes hold: replies' st_nlink are corrected */
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

/* ---- What the relay and recovery do with hidden names (hide.c) ---------------------------- */

struct proxy;

/* At start: the journal and its leftovers. Returns 0 (a journal that cannot be kept is logged). */
int hide_start(struct proxy *p);
/*
 * From the relay, under the lock, for an UNLINK or RENAME that removes the last known name of a
 * file the kernel holds open: renames the file to a hidden name first (the lock is let go
 * meanwhile). Returns 0 to send the request on, 1 when it is done (an UNLINK: answer success),
 * or the error to answer (-EIO).
 */
int hide_removal(struct proxy *p, struct msg *m, const struct op_info *op);
/* Under the lock: 0, or the error for a request naming a hidden name (-ENOENT, -EPERM). */
int hide_check_names(struct proxy *p, struct msg *m, const struct op_info *op);
/* A RENAME (@req, kernel IDs) failed: a hidden link made for the file it would replace goes. */
void hide_rename_failed(struct proxy *p, struct msg *req, const struct op_info *op);
/* Under the lock: the kernel released the last handle of @n; its hidden names are removed. */
void hide_released(struct proxy *p, struct node *n);
/* A reply to an orphan request: true if it was a hidden name's removal (now accounted). */
bool hide_call_reply(struct proxy *p, uint64_t unique, int error);
/* Recovery: asks the new daemon to remove the hidden names the old one did not. */
void hide_recover(struct proxy *p);
/*
 * A READDIR or READDIRPLUS reply about to reach the kernel: hidden names are taken out (their
 * lookups given back). Returns 1 if the request was sent again instead (the reply is dropped;
 * the request is in flight again), else 0.
 */
int hide_filter_dir(struct proxy *p, struct msg *req, struct msg *reply);
/* st_nlink in an attribute reply for a node with hidden names leaves them out. */
void hide_fix_attr(struct proxy *p, struct msg *req, const struct op_info *op, struct msg *reply);
/* The same for an entry of node @n, under the lock. */
void hide_fix_entry(struct proxy *p, struct node *n, struct fuse_attr *a);
/* After the first daemon's INIT: removes what a killed keeper left hidden. */
void hide_cleanup(struct proxy *p);
/* The keeper stops: its journal goes if it lists nothing. */
void hide_stop(struct proxy *p);
