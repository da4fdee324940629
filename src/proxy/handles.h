/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The handle table: every file and directory handle the kernel holds, with its node and the flags
 * it was opened with, so that a new daemon can be asked to open it again. The kernel's handle
 * values never change; after a restart each maps to the new daemon's handle.
 * Not thread-safe: the proxy's lock protects it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "changes.h"
#include "idmap.h"
#include "image.h"
#include "keyset.h"
#include "msg.h"
#include "slab.h"

/*
 * The write window of a handle: WRITE requests the daemon acknowledged on it since its last
 * successful FSYNC or FLUSH, oldest first (linked by msg.next), which a daemon that queues
 * writes (sshfs, rclone) may not have made durable; after a restart they are sent again. Writes
 * the window had no room for make it overflow. Allocated at the handle's first write: most
 * handles are only read.
 */
struct handle_window {
	struct msg *head, *tail;
	uint64_t bytes;		/* memory the window takes (msg_footprint) */
	uint64_t ack_seq;	/* writes acknowledged on this handle so far */
	uint64_t overflow_seq;	/* last acknowledged write the window dropped; 0: none since sync */
	uint32_t acking;	/* writes noted unsynced whose window_update() is to come */
};

/* A record of the table's slab (72 bytes); the table's map holds its index (idx). */
struct handle {
	uint64_t kfh;	/* handle value the kernel uses */
	uint64_t dfh;	/* the daemon's handle; meaningful when epoch == table epoch */
	uint64_t node;	/* kid of the node it was opened on */
	uint64_t primed_end; /* content a priming read found whole (it came back short): its
				length; UINT64_MAX when unknown */
	struct handle_window *win; /* NULL until the first write */
	uint32_t flags; /* open(2) flags of the OPEN, OPENDIR or CREATE request */
	uint32_t epoch; /* daemon incarnation that dfh belongs to */
	uint32_t fopen; /* FOPEN_* flags of the daemon's answer to the first open */
	uint32_t uid;	/* credentials of the opener, reused when opening it again */
	uint32_t gid;
	uint32_t idx;	/* its index in the table's slab */
	bool dir;	/* opened with OPENDIR */
	bool lost;	/* could not be opened again after a restart: requests get EIO */
	bool fresh;	/* reopened after a restart and not read yet: see op_info.positioned */
	bool released;	/* its RELEASE was read where the kernel would not send it to a keeper
			   that took the connection back (resume_note_release()) */
	bool write_lost;	/* a restart lost acknowledged writes: the next WRITE, FSYNC or
				   FLUSH fails with EIO (FSYNC and FLUSH report it once) */
	bool unsynced;		/* writes were acknowledged since the last sync that covered
				   them all: the resume journal says so (handle_note_unsynced()) */
};

/* Writes acknowledged on @h so far. */
static inline uint64_t handle_ack_seq(const struct handle *h)
{
	return h->win ? h->win->ack_seq : 0;
}

/* The last acknowledged write @h's window dropped since its last sync; 0: none. */
static inline uint64_t handle_overflow_seq(const struct handle *h)
{
	return h->win ? h->win->overflow_seq : 0;
}

/* Whether acknowledged writes on @h may not be durable, or were lost. */
static inline bool handle_unsynced(const struct handle *h)
{
	return h->write_lost || h->unsynced || (h->win && (h->win->head || h->win->overflow_seq));
}

/* The table must not move once handle_table_init() set it up: its map points back to it. */
struct handle_table {
	struct slab slab;	/* the handles */
	struct keyset by_kfh;	/* handle indices by kfh */
	uint32_t epoch;
	uint64_t next_kfh;
	uint64_t max; /* bound on open handles; more fail with -ENFILE */
	uint64_t fresh_count; /* handles with fresh set: lets the relay skip the check when 0 */
	uint64_t win_max;	/* bound on one handle's write window, bytes */
	uint64_t win_total_max; /* bound on all write windows together, bytes */
	uint64_t win_total;	/* memory all write windows take, bytes */
	uint64_t lost_count;	/* handles with write_lost set: lets the relay skip the check */
	struct changes changes; /* handles changed since the resume journal wrote them */
	bool strict;		/* built from a journal: a handle it lacks is none of the kernel's */
};

/* What the kernel may know of @h changed outside this file (lost): the journal writes it again. */
static inline void handle_changed(struct handle_table *t, const struct handle *h)
{
	changes_note(&t->changes, h->kfh);
}

/*
 * A WRITE on @h is about to be acknowledged to the kernel and the daemon may not have made it
 * durable (no --write-through): from now until a sync covers every acknowledged write,
 * handle_item_save() says so, and a keeper resuming after a SIGKILL (which lost the write
 * window) fails the handle's next sync with EIO.
 */
void handle_note_unsynced(struct handle_table *t, struct handle *h);

/* The write handle_note_unsynced() was told of is in the window now (or was not kept). */
void handle_acked(struct handle *h);

/* Sets up an empty table bounded to @max handles, with write windows bounded as given. */
void handle_table_init(struct handle_table *t, uint64_t max, uint64_t win_max,
		       uint64_t win_total_max);
void handle_table_free(struct handle_table *t);

static inline struct handle *handle_get(const struct handle_table *t, uint64_t kfh)
{
	uint64_t idx = keyset_get(&t->by_kfh, kfh);

	return idx ? slab_at(&t->slab, idx) : NULL;
}

/* A lost overflow was reported (window_check()): it no longer counts. */
void handle_clear_overflow(struct handle *h);

/*
 * The current daemon opened @node with @flags and answered handle *fh. Records it and rewrites
 * *fh to the kernel's value. Returns the handle or NULL with -errno in *err.
 */
struct handle *handle_learn(struct handle_table *t, uint64_t node, uint32_t flags, bool dir,
			    uint64_t *fh, int *err);

/* The kernel closed @kfh. Its write window is freed. */
void handle_forget(struct handle_table *t, uint64_t kfh);

/*
 * The daemon acknowledged the WRITE @req on @h (shrink it first: msg_shrink()). Keeps it at the
 * end of @h's write window and returns NULL (the table owns it now), or, when the bounds leave
 * no room, records the overflow and returns the request for the caller to free.
 */
struct msg *handle_keep_write(struct handle_table *t, struct handle *h, struct msg *req);

/*
 * An FSYNC or FLUSH sent when @h's last acknowledged write was @seq succeeded: the writes up
 * to @seq are durable. Frees them; an overflow among them is forgiven.
 */
void handle_synced(struct handle_table *t, struct handle *h, uint64_t seq);

/* Takes @h's write window out of it (oldest first, linked by msg.next); the caller frees it. */
struct msg *handle_take_window(struct handle_table *t, struct handle *h);

/* Puts back a window taken with handle_take_window(), before anything kept since. */
void handle_put_window(struct handle_table *t, struct handle *h, struct msg *head);

/* Sets or clears h->write_lost, keeping lost_count true. */
void handle_set_write_lost(struct handle_table *t, struct handle *h, bool lost);

/*
 * The daemon's handle for the kernel's @kfh: 0, or -EIO when the handle was lost or not yet
 * reopened by the current daemon. Unknown handles (e.g. 0 from a daemon without OPEN) pass
 * unchanged, but for a table built from a journal (strict), where only 0 does.
 */
int handle_to_daemon(struct handle_table *t, uint64_t kfh, uint64_t *dfh);

/* Sets or clears h->fresh, keeping fresh_count true. */
void handle_set_fresh(struct handle_table *t, struct handle *h, bool fresh);

/* A new daemon took over: every handle must be opened again. */
void handle_new_epoch(struct handle_table *t);

/* Calls @fn for every handle. */
void handle_each(const struct handle_table *t, void (*fn)(struct handle *h, void *arg), void *arg);

/* Writes the whole table, write windows too, to @im (fusekeeper reexec). */
void handle_table_save(const struct handle_table *t, struct image *im);

/*
 * Fills @t, fresh from handle_table_init() (its bounds are the new keeper's), with what
 * handle_table_save() wrote. Returns 0, -EBADMSG or -ENOMEM; @t is then to be freed.
 */
int handle_table_load(struct handle_table *t, struct image *im);

/* ---- The resume journal (resume.c) ------------------------------------------------------- */

/* What the table says of itself: its epoch and the next kfh to hand out. */
void handle_table_head_save(const struct handle_table *t, struct image *im);

/*
 * What a keeper resuming after a SIGKILL needs of @h to open it again: its kfh, node, flags, the
 * opener's credentials, whether it was lost, and whether acknowledged writes may not be durable
 * (write_lost or unsynced). Not the write window itself.
 */
void handle_item_save(const struct handle *h, struct image *im);

/*
 * Fills @t, fresh from handle_table_init(), from @head (handle_table_head_save()) and @items
 * (kfh -> struct image_span * of handle_item_save()). Every handle belongs to no daemon yet (to
 * be opened again); one whose writes may not be durable has write_lost set. Returns 0, -EBADMSG
 * or -ENOMEM.
 */
int handle_table_build(struct handle_table *t, struct image *head, const struct idmap *items);
