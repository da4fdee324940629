/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fuzzers' common ground: a proxy in a known state (INIT agreed, nodes and handles learned
 * through the relay's own reply path), the kernel and the daemon played by the harness, and the
 * fuzzer's bytes read as a stream. Every harness builds one world per input and tears it down
 * after, so that an input's result never depends on the one before (fuzz/README.md).
 *
 * The kernel is a pipe the harness reads after every message: what the keeper writes there must
 * be well framed, and answer each request the harness made at most once. The daemon is the far
 * end of a socketpair, drained after every message. No thread is started: the notifier's queue
 * is emptied by the harness, in order, as the notifier would.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/proxy_i.h"

/* ---- The fuzzer's bytes --------------------------------------------------------------------- */

/* Bytes not yet consumed; reading past the end gives zeros, so every input is a valid script. */
struct input {
	const uint8_t *p;
	size_t n;
};

uint8_t in_u8(struct input *in);
uint16_t in_u16(struct input *in);
uint32_t in_u32(struct input *in);
uint64_t in_u64(struct input *in);
/* Copies @len bytes to @dst; what the input lacks is zero. */
void in_bytes(struct input *in, void *dst, size_t len);

/* ---- The world ------------------------------------------------------------------------------ */

/* Nodes the world starts with, by the daemon's IDs (the kernel's are the same at first). */
enum {
	DID_DIR = 10,	 /* "d" in the root, a directory */
	DID_FILE = 11,	 /* "f" in "d", a regular file, also linked as "h" in the root */
	DID_FILE2 = 12,	 /* "g" in the root, a regular file (with a hidden name, see below) */
	DID_LINK = 13,	 /* "s" in "d", a symlink */
	DID_CREATED = 14, /* "c" in the root, made by CREATE */
};

/* Handles the world starts with, by the daemon's values. */
enum {
	DFH_FILE = 0x100,    /* OPEN of "f" */
	DFH_CREATED = 0x101, /* CREATE of "c" */
	DFH_DIR = 0x200,     /* OPENDIR of "d" */
	DFH_ROOT = 0x201,    /* OPENDIR of the root */
};

/* Choices an input makes about the world before it starts (world_setup()). */
enum {
	WF_HIDDEN = 1 << 0,	   /* "g" also has a hidden name: the keeper hides and corrects nlink */
	WF_NO_HIDE = 1 << 1,	   /* --no-keep-removed: listings are not filtered */
	WF_INO_REMAP = 1 << 2,	   /* the daemon renumbers: inode numbers are rewritten */
	WF_WRITE_THROUGH = 1 << 3, /* --write-through: no write windows */
	WF_LOCKS = 1 << 4,	   /* a POSIX lock on "f" recorded: FLUSH and RELEASE drop it */
};

#define WORLD_MAX_REQ 1024

struct world {
	struct proxy p;
	struct keeper_config cfg;
	uint32_t epoch;		      /* the current daemon's */
	uint64_t next_unique;	      /* the kernel's next unique (even, as the kernel's are) */
	uint64_t made[WORLD_MAX_REQ]; /* uniques of requests the harness made, in order */
	uint8_t answered[WORLD_MAX_REQ]; /* how many replies the kernel got for each */
	size_t nmade;
	uint64_t kids[8];	      /* the kernel's IDs of the world's nodes, root first */
	uint64_t kfhs[4];	      /* the kernel's handles, in the order of DFH_* above */
	bool broken;		      /* the daemon broke the protocol: it gets no more messages */
};

/* Once per process: log level, pools, the kernel's pipe and the daemon's socket. */
void world_init(void);

/*
 * Builds the world (@flags: WF_*): INIT agreed through the relay (answered with @init_error, or
 * with @init_out of @init_out_len bytes, NULL for a typical daemon's; @init_in likewise for the
 * kernel's INIT), then the nodes and handles above learned through the relay's reply path.
 * Returns 0, or -1 if the INIT was refused (the world is then only good for world_teardown()).
 */
int world_setup(struct world *w, unsigned flags, const struct fuse_init_in *init_in,
		size_t init_in_len, int32_t init_error, const void *init_out, size_t init_out_len);

/* Frees everything the world holds; afterwards no memory of it is left. */
void world_teardown(struct world *w);

/*
 * Makes a kernel request and puts it in flight as the kernel-to-daemon thread would (IDs
 * translated, lock and write-window bookkeeping, the time for stamped requests). @body holds
 * @len bytes after the header. Returns its unique, or 0 if the keeper would have answered it
 * itself (untranslatable).
 */
uint64_t world_request(struct world *w, uint32_t opcode, uint64_t nodeid, const void *body,
		       size_t len);

/*
 * Hands the daemon's message (@len bytes, header included) to the relay (d2k_message()), then
 * plays the notifier, the kernel and the daemon's side. Returns d2k_message()'s result; after an
 * error the daemon is broken (w->broken) and further messages are ignored, as the relay stops
 * reading a broken daemon.
 */
int world_deliver(struct world *w, const void *msg, size_t len);

/* Builds a reply header for @unique with @error before @body (@len bytes) and delivers it. */
int world_reply(struct world *w, uint64_t unique, int32_t error, const void *body, size_t len);

/* The unique of the @i-th request made, modulo how many there are (0 if none). */
uint64_t world_pick_request(struct world *w, unsigned i);

/* How large a successful reply to a request of @op with @body (its in-body) may be: the size
 * the opcode table allows, at most @want for the variable ones. */
size_t world_reply_size(const struct op_info *op, const void *body, size_t body_len, size_t want);
