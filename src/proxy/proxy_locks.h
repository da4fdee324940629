/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Proxy mode's side of the file locks a daemon keeps itself (proxy_locks.c; the table is locks.h):
 * recorded as the daemon grants them, dropped as the kernel lets go, taken again after a restart
 * (docs/design.md, "File locks").
 */
#pragma once

#include "proxy_i.h"

/*
 * A request with op->lock from the kernel, under the lock, after translate_request() returned
 * @err: a FLUSH drops its lock owner's POSIX locks on the node; a GETLK, SETLK or SETLKW of an
 * owner that lost a lock on the node in a restart fails with -EIO (once); a SETLK or SETLKW
 * that would not fit the table fails with -ENOLCK. Returns what to answer (<0) or @err.
 */
int locks_request(struct proxy *p, struct msg *req, const struct op_info *op, int err);
/*
 * The daemon granted the SETLK or SETLKW @req (its body as sent to the daemon). Takes the lock
 * and records the lock. Returns 0, or -ENOLCK when the table had no room left for it: the lock
 * was then given back to the daemon and the kernel must get the error.
 */
int locks_granted(struct proxy *p, struct msg *req);
/*
 * During a recovery, once handles are open again: takes every recorded lock again on the new
 * daemon, in the order they were granted; a lock that cannot be taken is logged and marked
 * lost. Returns 0 or a fatal error (the start fails; the locks wait for the next daemon).
 */
int locks_take_again(struct proxy *p);
