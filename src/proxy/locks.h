/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The lock table: every file lock that a daemon keeping locks itself granted (a FUSE_SETLK or
 * FUSE_SETLKW answered with success), with its owner, byte range, type and the handle it came
 * through, so that a new daemon can be made to grant them all again after a restart.
 *
 * POSIX locks (fcntl, and OFD locks, whose owner is the open file) follow POSIX rules per
 * owner and node: a lock or an unlock replaces the owner's own locks where it overlaps them,
 * splitting them where it covers only part, and merges with its own locks of the same type
 * that it overlaps or touches; different owners' locks are never changed. flock(2) locks
 * (FUSE_LK_FLOCK, protocol 7.17) are one per owner (the open file) and node, for the whole file.
 * A lock that could not be taken again stays as a lost record until its owner is told.
 *
 * Ranges are inclusive, as in fuse_file_lock: start..end, end OFFSET_MAX meaning "to the end of
 * the file". Types are F_RDLCK, F_WRLCK and F_UNLCK.
 * Not thread-safe: the proxy's lock protects it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "changes.h"
#include "idmap.h"
#include "image.h"
#include "proto.h"

struct lock_rec {
	struct lock_rec *next;	/* the next record of the same node, in no particular order */
	uint64_t node;		/* kid of the locked node */
	uint64_t kfh;		/* kernel handle the lock was taken through */
	uint64_t owner;		/* fuse_lk_in.owner: the lock owner the kernel named */
	uint64_t start, end;	/* bytes start..end, inclusive */
	uint64_t seq;		/* when it was granted: locks are taken again in this order
				   (the pieces of a split share their lock's) */
	uint32_t type;		/* F_RDLCK or F_WRLCK */
	uint32_t pid;		/* fuse_lk_in.lk.pid of the grant (the locker's tgid) */
	bool flock;		/* a flock(2) lock (FUSE_LK_FLOCK) */
	bool lost;		/* not held: it could not be taken again after a restart, and
				   its owner's next lock operation on the node must fail */
};

struct lock_table {
	struct idmap by_node;	/* node kid -> its records (a private list head) */
	uint64_t count;		/* records, held and lost: what the bound counts */
	uint64_t max;		/* bound on count (see lock_fits()) */
	uint64_t next_seq;
	uint64_t refused;	/* requests refused for want of room so far (for logs) */
	struct changes changes; /* nodes whose records changed since the resume journal wrote them */
};

/* Sets up an empty table bounded to @max records. */
void lock_table_init(struct lock_table *t, uint64_t max);
void lock_table_free(struct lock_table *t);

/*
 * How many records the table would hold more (a negative number: fewer) once the SETLK or
 * SETLKW @in on @node is granted: a lock adds one, minus the owner's locks it merges with or
 * replaces, plus one for every lock of the owner it splits in two.
 */
int64_t lock_growth(const struct lock_table *t, uint64_t node, const struct fuse_lk_in *in);

/* Whether @in, once granted, leaves the table within its bound (always, if it frees room). */
bool lock_fits(const struct lock_table *t, uint64_t node, const struct fuse_lk_in *in);

/*
 * Whether @in's owner holds a lock of @in's kind on @node that @in would change: one that
 * overlaps @in's range (any flock lock for a flock request). Granting an @in for which this is
 * false and then unlocking its range leaves the owner's locks as they were.
 */
bool lock_overlaps_own(const struct lock_table *t, uint64_t node, const struct fuse_lk_in *in);

/*
 * The daemon granted the SETLK or SETLKW @in on @node, sent through the kernel's handle @kfh
 * (@in->fh is ignored): records it by the rules above, whatever the bound (check lock_fits()
 * first). Returns 0, -EINVAL for a malformed range or type (nothing changes), or -ENOMEM
 * (nothing changes).
 */
int lock_apply(struct lock_table *t, uint64_t node, uint64_t kfh, const struct fuse_lk_in *in);

/*
 * A lock request (GETLK, SETLK, SETLKW) of @owner on @node: if a lock of @owner's there was
 * lost in a restart, forgets every such lost record and returns -EIO (the owner is told once);
 * else 0.
 */
int lock_report_lost(struct lock_table *t, uint64_t node, uint64_t owner);

/*
 * A FLUSH with lock_owner @owner on @node (close(2) by that owner): drops @owner's POSIX
 * records there, held and lost. flock records (whose owner is a file) stay.
 */
void lock_flush(struct lock_table *t, uint64_t node, uint64_t owner);

/*
 * The kernel released the handle @kfh of @node (RELEASE): drops every record taken through it,
 * held and lost (its file's flock lock, OFD locks, and POSIX locks no FLUSH dropped).
 */
void lock_release(struct lock_table *t, uint64_t node, uint64_t kfh);

/*
 * The held records, in the order they were granted (seq, then start), in a new array *@v
 * (the caller frees the array, not the records). Returns their number or -ENOMEM. The records
 * stay valid until the table next changes other than by lock_set_lost().
 */
ssize_t lock_collect(const struct lock_table *t, struct lock_rec ***v);

/* @l could not be taken again: it is kept, lost, until lock_report_lost() tells its owner. */
void lock_set_lost(struct lock_table *t, struct lock_rec *l);

/* The records of @node (held and lost, linked by next), or NULL. */
struct lock_rec *lock_first(const struct lock_table *t, uint64_t node);

/* Writes every record to @im (fusekeeper reexec). */
void lock_table_save(const struct lock_table *t, struct image *im);

/*
 * Fills @t, fresh from lock_table_init() (its bound is the new keeper's), with what
 * lock_table_save() wrote. Returns 0, -EBADMSG or -ENOMEM; @t is then to be freed.
 */
int lock_table_load(struct lock_table *t, struct image *im);

/* ---- The resume journal (resume.c) ------------------------------------------------------- */

/* What the table says of itself: the next grant's sequence number, refusals so far. */
void lock_table_head_save(const struct lock_table *t, struct image *im);

/* Every record of @node (none: the node holds no lock now), for a keeper resuming after a
 * SIGKILL to take them again. */
void lock_item_save(const struct lock_table *t, uint64_t node, struct image *im);

/*
 * Fills @t, fresh from lock_table_init(), from @head (lock_table_head_save()) and @items (node
 * kid -> struct image_span * of lock_item_save()). Returns 0, -EBADMSG or -ENOMEM.
 */
int lock_table_build(struct lock_table *t, struct image *head, const struct idmap *items);
