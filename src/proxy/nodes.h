/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The node table: every node ID the kernel holds, with where it lives (parent and name) and how
 * many lookups the kernel and the current daemon hold on it. The kernel's node IDs never change;
 * after a daemon restart each is mapped to the new daemon's ID for the same file.
 * Not thread-safe: the proxy's lock protects it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "changes.h"
#include "idmap.h"
#include "image.h"
#include "keyset.h"
#include "proto.h"
#include "slab.h"

/* One (parent, name) the kernel knows a node by. A node has several when it has hard links. */
struct node_name {
	struct node_name *next;		/* the node's next name, most recently learned first */
	struct node *node;		/* the node it names */
	uint64_t parent;		/* kid of the directory holding it */
	uint32_t hash;			/* of (parent, name): its key in the name index */
	bool unconfirmed;		/* a keeper's own name the daemon may not have made yet */
	bool hiding;			/* a keeper's own name whose request is unanswered: only
					   the request's outcome may remove it (hide.c) */
	char name[];
};

/* Names kept per node at most; learning another drops the oldest (it only costs recovery). */
#define NODE_NAMES_MAX 64

/*
 * A node is a record of the table's slab (112 bytes, no allocator header); the table's maps hold
 * its 4-byte index (idx) and read its kid and did from it (keyset.h).
 */
struct node {
	uint64_t kid;		/* node ID the kernel uses */
	uint64_t did;		/* the daemon's node ID; meaningful when epoch == table epoch; not
				   changed while the node is in by_did */
	uint64_t k_nlookup;	/* lookups the kernel holds (FORGET takes them back) */
	uint64_t d_nlookup;	/* lookups the current daemon has counted for did on our behalf */
	uint64_t k_gen;		/* generation the kernel was given with kid */
	struct node_name *names; /* every name the kernel looked it up by and still has;
				    NULL when unknown or all removed */
	uint64_t k_ino;		/* inode number the kernel was first given (st_ino) */
	uint64_t d_ino;		/* the daemon's inode number for it; meaningful like did */
	uint64_t d_gen;		/* the daemon's generation for it; meaningful like did */
	uint64_t dver;		/* acknowledged changes of its data (WRITE, truncate, ...) */
	int64_t changed_ns;	/* CLOCK_REALTIME of the last reply to a request through the
				   mount that changed its ctime (op_info.ctime_of) */
	uint32_t opened;	/* handles the kernel holds on it (RELEASE not seen yet) */
	uint32_t pins;		/* holds of the keeper's own (node_pin()): they keep it in the table */
	uint32_t children;	/* named nodes whose parent this is: they pin it in the table */
	uint32_t epoch;		/* daemon incarnation that did belongs to */
	uint32_t idx;		/* its index in the table's slab */
	uint16_t type;		/* S_IFMT bits of the node's mode */
	uint8_t nnames;		/* names in the list, at most NODE_NAMES_MAX */
	bool lost : 1;		/* could not be found again after a restart: requests get ESTALE */
	bool replaced : 1;	/* lost because its name now names another object */
	bool deferred : 1;	/* recovery waits for another directory before looking again */
	bool did_shared : 1;	/* another node was resolved to its did too (hard links): by_did
				   passes to it when this one goes */
	bool queued : 1;	/* listed in a node_pending set being resolved */
};

/* The table must not move once node_table_init() set it up: its maps point back to it. */
struct node_table {
	struct slab slab;	/* the nodes */
	struct keyset by_kid;	/* node indices by kid */
	struct keyset by_did;	/* node indices by did, for the current epoch only: one node for
				   each did (hard links resolved to one did share it) */
	struct keyset by_name;	/* node_name pointers by hash */
	uint32_t epoch;		/* current daemon incarnation, starts at 1 */
	uint64_t next_kid;	/* next kid to hand out when a daemon's ID is taken */
	uint64_t count;		/* nodes in the table */
	uint64_t max;		/* bound on count; learning more fails with -ENFILE */
	/*
	 * For daemons whose inode numbers change from run to run: the kernel keeps seeing the
	 * numbers it was first given. Off until a restart shows the numbers changed.
	 */
	bool ino_remap;
	struct idmap ino_d2k;	/* the current daemon's ino -> the kernel's, where they differ */
	struct idmap kino_held;	/* kernel ino -> node holding it, while ino_remap is on */
	uint64_t next_ino;	/* next ino handed out for a daemon's ino that a node holds */
	/* New nodes whose inode number was, and was not, the daemon's node ID for them: libfuse's
	 * high-level API without use_ino numbers inodes by node IDs, which are per run. */
	uint64_t ino_is_nodeid, ino_not_nodeid;
	struct changes changes; /* nodes changed since the resume journal wrote them */
	/* A node may be left that the current daemon does not know yet (node_unresolved()):
	 * set by node_new_epoch() and loading, cleared by node_table_resolved(). */
	bool unresolved;
};

/* How many nodes the current daemon does not know yet (node_unresolved()): O(nodes). */
uint64_t node_count_unresolved(struct node_table *t);

/*
 * Every node the table holds is known to the current daemon or lost: an entry a reply brings
 * no longer looks for an unresolved node of its name (node_learn()).
 */
static inline void node_table_resolved(struct node_table *t)
{
	t->unresolved = false;
}

/*
 * The kernel's view of @n changed outside this file (its open count, its names' flags, its
 * data version, lost): the resume journal writes it again (resume.c).
 */
static inline void node_changed(struct node_table *t, const struct node *n)
{
	changes_note(&t->changes, n->kid);
}

/* Sets up the table with the root node (FUSE_ROOT_ID, never forgotten). */
int node_table_init(struct node_table *t, uint64_t max);
void node_table_free(struct node_table *t);

/* The node in slot @idx of the slab, or NULL for index 0 (a map's "none"). */
static inline struct node *node_at(const struct node_table *t, uint64_t idx)
{
	return idx ? slab_at(&t->slab, idx) : NULL;
}

/* The node the kernel calls @kid, or NULL. */
static inline struct node *node_get(const struct node_table *t, uint64_t kid)
{
	return node_at(t, keyset_get(&t->by_kid, kid));
}

/* Calls @fn for every node; @fn must not add or free nodes. */
void node_each(const struct node_table *t, void (*fn)(struct node *n, void *arg), void *arg);

/* The node that @name in directory @parent names, or NULL. */
struct node *node_find(struct node_table *t, uint64_t parent, const char *name);

/* The name @name in directory @parent, or NULL. */
struct node_name *node_find_name(struct node_table *t, uint64_t parent, const char *name);

/* @n's most recently learned name, for logs: "" when it has none. */
const char *node_name_of(const struct node *n);

/*
 * Removes one name (the store no longer has it). Its node stays, though it may have no name
 * left; the parent it pinned may be freed.
 */
void node_drop_name(struct node_table *t, struct node_name *nm);

/*
 * Keeps the node @kid in the table while the keeper needs it (a name of its own to remove in
 * it later), whatever the kernel forgets. Returns 0, or -ENOENT if the table has no such node.
 */
int node_pin(struct node_table *t, uint64_t kid);

/* Gives back a node_pin(); the node is freed if nothing else holds it. */
void node_unpin(struct node_table *t, uint64_t kid);

/*
 * Gives @n the name @name in directory @parent too (a keeper's own name: a file it keeps under
 * a hidden name), as its least recent: recovery tries it last. Another node's name there is
 * taken from it. Returns 0 or -errno.
 */
int node_add_name(struct node_table *t, struct node *n, uint64_t parent, const char *name);

/*
 * The path of directory @kid from the root, "" for the root, following each directory's name.
 * Returns its length, or -ENOENT when a directory on the way has no name, -ENAMETOOLONG.
 */
int node_path(struct node_table *t, uint64_t kid, char *buf, size_t size);

/*
 * For logs: @n's path as @root (the mountpoint) joined with its names (node_path()), or with
 * ".../" and its own name where a directory on the way has none; cut to @size. Returns @buf.
 */
const char *node_label(struct node_table *t, const struct node *n, const char *root, char *buf,
		       size_t size);

/*
 * The current daemon handed out one lookup of e->nodeid as @name in @parent (@name may be NULL,
 * e.g. for TMPFILE). Records it and rewrites @e for the kernel: nodeid and generation become the
 * kernel's. Returns the node, or NULL with -errno in *err.
 */
struct node *node_learn(struct node_table *t, uint64_t parent, const char *name,
			struct fuse_entry_out *e, int *err);

/*
 * Undoes node_learn() for an entry reply the kernel did not take (interrupted request).
 * Returns in *fwd how many lookups of *did to forget in the daemon.
 */
void node_unlearn(struct node_table *t, uint64_t kid, uint64_t *did, uint64_t *fwd);

/*
 * The kernel forgets @n lookups of @kid. Returns in *fwd how many lookups of *did the daemon
 * should forget (0: send nothing). Frees the node when nothing references it any more.
 */
void node_forget(struct node_table *t, uint64_t kid, uint64_t n, uint64_t *did, uint64_t *fwd);

/* @name in @parent was removed: only that name of its node goes. */
void node_unlink(struct node_table *t, uint64_t parent, const char *name);

/* @oldname in @oldparent became @newname in @newparent (@exchange: the two swapped). */
int node_rename(struct node_table *t, uint64_t oldparent, const char *oldname, uint64_t newparent,
		const char *newname, bool exchange);

/*
 * The daemon's ID for the kernel's @kid. Returns 0, or -ESTALE when the node was lost or is not
 * yet known to the current daemon. Unknown kids are passed through unchanged.
 */
int node_to_daemon(struct node_table *t, uint64_t kid, uint64_t *did);

/* The kernel's ID for the daemon's @did; -ENOENT if the kernel does not know it. */
int node_to_kernel(struct node_table *t, uint64_t did, uint64_t *kid);

/* A new daemon took over: every node but the root must be looked up again. */
void node_new_epoch(struct node_table *t);

/*
 * Marks @n as the current daemon's node @e->nodeid (one lookup counted), with its inode number
 * and generation, after a recovery LOOKUP.
 */
int node_resolved(struct node_table *t, struct node *n, const struct fuse_entry_out *e);

/*
 * Undoes node_resolved() for @n, whose lookup named another object: it no longer maps the
 * daemon's ID it was given (the caller gives that lookup back), and can be resolved again.
 */
void node_unresolve(struct node_table *t, struct node *n);

/*
 * A node resolved by name turned out to be another object: requests for it now get ESTALE.
 * Returns in *did and *fwd the lookups to give back to the daemon.
 */
void node_lose(struct node_table *t, struct node *n, uint64_t *did, uint64_t *fwd);

/*
 * The inode number the kernel is shown for the current daemon's @ino: the number the kernel
 * was first given for the node it holds with that ino, a fresh one where @ino is a number such
 * a node keeps (two objects must never show one st_ino), else @ino. Identity while ino_remap
 * is off.
 */
uint64_t node_ino_to_kernel(struct node_table *t, uint64_t ino);

/* Turns ino_remap on (if off) and maps every resolved node's new ino to its kernel ino. */
int node_ino_remap(struct node_table *t);

/*
 * The nodes a recovery has yet to look up, by kid (nodes may be freed meanwhile), scanned from
 * @pos round and round: each scan is linear, and a recovery takes about as many as the tree
 * is deep, where collecting each batch from the whole table cost O(nodes) per batch.
 */
struct node_pending {
	uint64_t *kids;
	size_t count, pos, cap;
};

/* Fills @np with every node the current daemon does not know yet. Returns 0 or -ENOMEM. */
int node_pending_begin(struct node_table *t, struct node_pending *np);

/*
 * Collects up to @max names by which nodes of @np can be looked up now: of nodes not yet
 * resolved, not lost or deferred, one name per node whose parent is resolved (the most recently
 * learned such name), each node at most once per call. Returns how many were stored in @out:
 * 0 once a whole round of @np finds none (what is left waits for a deferred rename's target,
 * or is to be lost). Nodes resolved or lost since leave @np.
 */
size_t node_pending(struct node_table *t, struct node_pending *np, struct node_name **out,
		    size_t max);

void node_pending_end(struct node_table *t, struct node_pending *np);

/*
 * Adds to @np (zeroed, or filled by earlier calls) the node @kid, if the current daemon does not
 * know it yet (neither resolved nor lost), and each of its ancestors, through every name, that
 * it does not know either: what a resolution of that node looks up, parents first
 * (node_pending()). A node already in @np is not added again (node.queued). Returns 0 or
 * -ENOMEM (@np then holds what was added before).
 */
int node_pending_add(struct node_table *t, struct node_pending *np, uint64_t kid);

/*
 * Lazy resolution's background walk: adds to @np up to @max nodes the current daemon does not
 * know yet (with their unresolved ancestors), from the slab's index *@pos on, which it moves.
 * Returns 1 while the walk has nodes left, 0 at its end, or -ENOMEM.
 */
int node_pending_scan(struct node_table *t, uint32_t *pos, size_t max, struct node_pending *np);

/* Marks the nodes of @np still unresolved as lost; returns how many. */
uint64_t node_lose_pending(struct node_table *t, struct node_pending *np);

/* Whether the current daemon has yet to be told of @n: neither resolved nor lost. */
static inline bool node_unresolved(const struct node_table *t, const struct node *n)
{
	return n->epoch != t->epoch && !n->lost;
}

/* Writes the whole table to @im (fusekeeper reexec). */
void node_table_save(const struct node_table *t, struct image *im);

/*
 * Fills @t, fresh from node_table_init(), with what node_table_save() wrote: the same nodes,
 * names (in the same order), maps and counters. Returns 0, -EBADMSG for an image that does not
 * make a consistent table, or -ENOMEM; @t is then to be freed.
 */
int node_table_load(struct node_table *t, struct image *im);

/* ---- The resume journal (resume.c) ------------------------------------------------------- */

/* What the table says of itself: its epoch, the next kid and ino to hand out, ino_remap. */
void node_table_head_save(const struct node_table *t, struct image *im);

/*
 * What the kernel knows of @n, all a keeper resuming after a SIGKILL needs of it: its kid,
 * lookups, generation, inode number, type, open count, pins, data version, its names and
 * whether it was lost; and the last daemon's inode number and generation for it, which
 * recovery compares with what the next daemon finds by its name. Not the daemon's node ID.
 */
void node_item_save(const struct node *n, struct image *im);

/*
 * Fills @t, fresh from node_table_init(), from what node_table_head_save() wrote (@head, read
 * from its current position) and the items of node_item_save() in @items (kid -> struct
 * image_span *). Every node is unknown to any daemon (as after node_new_epoch()); a name whose
 * directory is not among the items is dropped (recovery then cannot find the node by it).
 * Returns 0, -EBADMSG for a malformed item or -ENOMEM; @t is then to be freed.
 */
int node_table_build(struct node_table *t, struct image *head, const struct idmap *items);
