/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A daemon's reply on its way to the kernel, and what it changes in the tables (reply.c); the
 * kernel's end of a handle when no daemon answers.
 */
#pragma once

#include <stdint.h>

#include "proxy_i.h"

/*
 * Answers the kernel's request @req, taken out of the in-flight table, with the daemon's @reply
 * (the caller's; its unique is made @req's): checks it against the opcode table, applies its
 * effect to the tables, writes it to the kernel, and frees @req — unless a READDIR was sent
 * again past hidden names (hide_filter_dir()): then it is in flight again. Returns 0, or -EPROTO
 * when the daemon broke the protocol (logged; the kernel got EIO). Takes the lock.
 */
int finish_reply(struct proxy *p, struct msg *req, struct msg *reply);

/*
 * The kernel closed its handle @kfh (a RELEASE, answered or not): the locks taken through it
 * go, the handle is forgotten, and with its node's last the node's hidden names. Under the lock.
 */
void release_handle(struct proxy *p, uint64_t kfh);

/*
 * Answers @req, a request in flight that no daemon will answer, with @err (negative errno);
 * a RELEASE closes its handle all the same. Under the lock; the caller removes @req from the
 * in-flight table and frees it.
 */
void fail_request(struct proxy *p, struct msg *req, int err);

/*
 * translate_request() failed with @err for @req: returns 0 when the keeper answers it itself
 * with success (a FLUSH or RELEASE of a handle the current daemon never had; a RELEASE forgets
 * it), or the error for the kernel (@err, or -EIO from window_check() for a close that must
 * report lost writes). Under the lock.
 */
int untranslatable(struct proxy *p, struct msg *req, const struct op_info *op, int err);

/*
 * For a WRITE, FSYNC or FLUSH (op->wwin), under the lock: records in a sync which acknowledged
 * writes it covers; returns -EIO if writes through the handle were lost (a sync reports that
 * once), else 0.
 */
int window_check(struct proxy *p, struct msg *req, const struct op_info *op);
