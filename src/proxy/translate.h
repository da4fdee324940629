/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Proxy mode's view of a message body (translate.c): IDs between the kernel's values and the
 * daemon's, a request's names, READDIRPLUS records; and the accessors the layers above share.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proxy_i.h"

/* A request's body, after its header, and the body's length. */
static inline void *body(struct msg *m)
{
	return m->data + sizeof(struct fuse_in_header);
}

static inline size_t body_len(const struct msg *m)
{
	return m->len - sizeof(struct fuse_in_header);
}

/* The 64-bit value @off bytes into @base, which may be unaligned; put64() stores one. */
static inline uint64_t get64(const void *base, int off)
{
	uint64_t v;

	memcpy(&v, (const char *)base + off, sizeof(v));
	return v;
}

static inline void put64(void *base, int off, uint64_t v)
{
	memcpy((char *)base + off, &v, sizeof(v));
}

/*
 * Rewrites the node IDs and handles of @m, a request whose opcode table row is @op, from the
 * kernel's values to the current daemon's, after saving the kernel's in m->knode, knode2, kfh
 * and kfh2. Returns 0, or the first error of the tables: -ESTALE for a node the daemon does not
 * know (node_to_daemon()), -EIO for a handle it does not have (handle_to_daemon()). Under the
 * lock.
 */
int translate_request(struct proxy *p, struct msg *m, const struct op_info *op);

/* Keeps the kernel's node IDs and handles of @m in m->knode and the like. */
void request_kernel_ids(struct msg *m, const struct op_info *op);

/* Puts back the kernel's values translate_request() saved in @m, for a replay. */
void restore_request(struct msg *m, const struct op_info *op);

/*
 * Points @names at the NUL-terminated names @m carries after its fixed part (op->names of them,
 * at most two; NULL past those). Returns 0, or -EPROTO when a name runs past the message.
 */
int request_names(struct msg *m, const struct op_info *op, const char *names[2]);

/*
 * -vv only: logs the request @m, "@who: OPCODE unique U node N" and its names (a RENAME's
 * target directory too), so that a trace shows what each request did to which name.
 */
void trace_request(const char *who, struct msg *m);

/*
 * Walks the READDIRPLUS records in @buf (@len bytes) and calls @fn on each entry the kernel
 * takes a lookup of (not a negative entry, nor "." or ".."). Returns 0, -EPROTO at the first
 * malformed record (@fn has seen the ones before it), or the first error @fn returned.
 */
int each_direntplus(char *buf, size_t len, int (*fn)(struct fuse_direntplus *d, void *arg),
		    void *arg);
