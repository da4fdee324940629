/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Bringing a new daemon up to the kernel's state after a restart (recover.c).
 */
#pragma once

#include "proxy_i.h"

/*
 * Gives the new daemon the saved INIT, looks every node up again, reopens every handle, takes
 * every lock again, sends the write windows again and settles the requests the dead daemon left
 * (docs/design.md, "A restart"); the relay then resumes (PX_UP). Returns 0, or -errno when this
 * start failed (logged): what is left waits for the next daemon. Under no lock; the k2d thread
 * waits meanwhile.
 */
int recover(struct proxy *p);

/*
 * Lazy lookup: looks up the node @kid, which the daemon of @epoch does not know yet, and each
 * of its ancestors it does not know either, as recovery would (identity checks, renames in
 * flight, other names); what cannot be found is lost (ESTALE). Returns 0 (resolved, lost, or
 * nothing to do), or a fatal error (that daemon is gone: -EPIPE; --start-timeout passed, no
 * memory, or a READDIRPLUS in flight all that time). Under no lock; only the k2d thread calls
 * it, and a new daemon's epoch begins only once it returned.
 */
int recover_node(struct proxy *p, uint64_t kid, uint32_t epoch);

/* Nodes the background looks up at a time: about a millisecond of a quick daemon's. */
#define LAZY_BATCH 32

/* Times the fence looks a request's nodes up (a death costs one) before it answers EIO. */
#define LAZY_RESOLVE_TRIES 3

/* Nodes a lazy recovery looks up beyond what it needs, to decide whether inode numbers are
 * stable across restarts. */
#define LAZY_SAMPLE 64

/*
 * Lazy resolution's background: looks up the next LAZY_BATCH nodes the current daemon does not
 * know yet, as recover_node() does. Returns 0 while nodes are left, -EAGAIN once none is (the
 * walk is over: p->lazy_pending is cleared), or a fatal error. Only the k2d thread calls it.
 */
int recover_background(struct proxy *p);
