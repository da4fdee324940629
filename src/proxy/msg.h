/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE messages in flight through the keeper. A request the kernel is waiting on keeps its buffer
 * until the daemon answers, so that it can be sent again to a new daemon; small requests (most of
 * them) are copied into small buffers so the large read buffer can be reused at once.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "image.h"
#include "proto.h"

#define MSG_SMALL 4096 /* requests up to this size are kept in small buffers */

struct msg {
	struct msg *next;   /* free-list link */
	uint32_t cap;	    /* bytes available in data */
	bool mapped;	    /* a large buffer, a mapping of its own (else from malloc) */
	uint32_t len;	    /* bytes of the message */
	/* For a request the kernel waits on: */
	uint32_t epoch;	    /* daemon incarnation it was sent to, whose reply the relay takes;
			       0 while the keeper itself settles it */
	uint32_t held;	    /* last daemon that was given it in any form (for deaths) */
	bool replayed;	    /* sent again to a later daemon */
	uint8_t deaths;	    /* daemons that died holding it */
	uint32_t int_epoch; /* daemon an INTERRUPT for it was passed to; 0: none */
	bool primed;	    /* its handle was primed for it (see prime_handle) */
	uint8_t resolves;   /* times lazy lookup's fence looked its nodes up (k2d_fence()) */
	bool resent;	    /* a SIGKILLed keeper had read it; the kernel sent it again
			       (take_resent()): settled as one its daemon held */
	uint32_t resends;   /* a listing asked for again past hidden names (hide_filter_dir) */
	uint64_t wseq;	    /* FSYNC, FLUSH: the handle's last acknowledged write when sent;
			       a WRITE kept in a write window: its place in the window */
	int64_t sent_ns;    /* CLOCK_REALTIME when first sent, for requests whose settling
			       needs the time (op_info.stamp); 0 otherwise */
	int64_t death_ns;   /* CLOCK_REALTIME when the last daemon given it was found dead */
	int64_t given_ms;   /* now_coarse_ms() when the relay gave it to a daemon (hangs) */
	uint64_t dver;	    /* a WRITE kept in a write window: its node's dver it made */
	struct fuse_attr *before; /* a removal left by a dead daemon: its directory's
			       attributes before any replay of this recovery (owned) */
	uint64_t knode;	    /* node IDs and handles as the kernel sent them */
	uint64_t knode2;
	uint64_t kfh;
	uint64_t kfh2;
	char data[] __attribute__((aligned(8)));
};

/* Sets the size of large buffers (largest message + headroom), freeing pooled ones of another
 * size. Call before msg_get(), while no large buffer is in use. */
void msg_init(uint32_t big_cap);

/* Large buffers on the free list, kept for reuse (msg.c says how many and how long). */
unsigned msg_big_free(void);

/* For tests: the clock (ms) the pool's freeing of idle buffers reads; NULL: now_coarse_ms(). */
void msg_set_clock(int64_t (*fn)(void));

/* A buffer able to hold @len bytes (small or large), or NULL. */
struct msg *msg_get(uint32_t len);

/* Returns a buffer to its pool (or frees it). NULL is ignored. */
void msg_put(struct msg *m);

/*
 * For a large buffer that may be kept long (a write in a write window): when its message fills
 * less than three quarters of it, a copy just large enough, @m going back to its pool for the
 * next read; else @m itself, which goes back to its pool when freed. Returns @m or the copy;
 * never fails (without memory for a copy, @m stays as it is). A copy costs one memcpy; a large
 * buffer made anew costs a page fault and a cleared page per 4 KiB, which made a third of the
 * relay's time on a stream of large writes.
 */
struct msg *msg_shrink(struct msg *m);

/* Bytes of memory @m takes, for bounds. */
static inline uint64_t msg_footprint(const struct msg *m)
{
	return sizeof(*m) + m->cap;
}

/* Returns every buffer of a chain linked by msg.next to its pool. NULL is ignored. */
void msg_put_chain(struct msg *m);

/* A new buffer holding a copy of @len bytes at @data. */
struct msg *msg_dup(const void *data, uint32_t len);

/* Writes @m (a request, with what the keeper noted of it) to @im (fusekeeper reexec). */
void msg_save(struct image *im, const struct msg *m);

/*
 * Reads a message msg_save() wrote into a new buffer (large ones shrunk to fit, as a kept write
 * is). Returns it, or NULL with im->err set (-EBADMSG: malformed, -ENOMEM).
 */
struct msg *msg_load(struct image *im);

static inline struct fuse_in_header *msg_in(struct msg *m)
{
	return (struct fuse_in_header *)m->data;
}

static inline struct fuse_out_header *msg_out(struct msg *m)
{
	return (struct fuse_out_header *)m->data;
}
