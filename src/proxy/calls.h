/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The keeper's own requests to the daemon (calls.c): made, sent as calls (struct call), waited
 * for, and their replies read.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy_i.h"

/*
 * A request @opcode for the daemon's node @nodeid: @arg (@arglen bytes), then @name and its NUL
 * if @name is not NULL, made by the keeper (root, the keeper's pid). Returns it (its unique is
 * set when it is sent), or NULL without memory.
 */
struct msg *make_request(uint32_t opcode, uint64_t nodeid, const void *arg, size_t arglen,
			 const char *name);

/*
 * Sends @req (daemon IDs) to the current daemon as the call @c: gives it a unique and registers
 * @c, which the daemon's answer completes. Returns 0, or -errno when it could not be registered
 * or sent (@c is then done, and failed when the send failed). Takes the lock.
 */
int call_start(struct proxy *p, struct call *c, struct msg *req);

/*
 * Waits until the @n @calls are done, or until @deadline (now_ms() clock) as keeper_wait()
 * allows. Returns 0, -EPIPE when one could not be sent (the daemon is going), or keeper_wait()'s
 * error (-ETIMEDOUT, -ECHILD, -EINTR). On the k2d thread (lazy lookup) it waits on p->changed
 * instead, and returns 0, -EPIPE or -ETIMEDOUT. Not from the d2k thread.
 */
int calls_wait(struct proxy *p, struct call *calls, size_t n, int64_t deadline);

/*
 * Ends the @n @calls: one still unanswered is given up (its late answer will be dropped), their
 * replies are freed. Takes the lock.
 */
void calls_drop(struct proxy *p, struct call *calls, size_t n);

/* Sends @req (daemon IDs) and waits until @deadline for the reply (caller frees), or NULL with
 * -errno in *err. Not from the d2k thread. */
struct msg *call_one(struct proxy *p, struct msg *req, int64_t deadline, int *err);

/* call_one() of the request make_request() builds from @opcode, the daemon's node @did, @arg
 * (@arglen bytes) and @name (NULL: none). */
struct msg *call_did(struct proxy *p, uint32_t opcode, uint64_t did, const void *arg,
		     size_t arglen, const char *name, int64_t deadline, int *err);

/*
 * LOOKUP of @name in the daemon's directory @did. Returns a reply holding a valid entry (after
 * the fuse_out_header), whose one lookup in the daemon the caller now owns, or NULL with the
 * daemon's error, -ENOENT for a negative or short entry, or the call's error in *err.
 */
struct msg *call_lookup(struct proxy *p, uint64_t did, const char *name, int64_t deadline,
			int *err);

/* The error of the daemon's reply @r to a call: 0 or negative errno. */
int reply_error(const struct msg *r);

/* The body of the daemon's reply @r to a call; its length in *len. */
void *reply_body(struct msg *r, size_t *len);

/* Whether @err ends a recovery (the daemon went, the keeper stops, time ran out). */
bool fatal(int err);
