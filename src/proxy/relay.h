/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The relay threads (relay.c): k2d reads the kernel's requests and sends them to the daemon,
 * d2k (one per daemon) hands the daemon's messages on. The hot path.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "proxy_i.h"

/*
 * Starts the k2d thread, which runs until the connection ends; it first handles p->carry, if
 * any (a request a replaced keeper's thread held). Returns 0 or -errno.
 */
int relay_start(struct proxy *p);

/* Starts the d2k thread of the daemon behind p->sock. Returns 0 or -errno. */
int relay_start_d2k(struct proxy *p);

/* Shuts the daemon's socket and waits for its d2k thread, which drains what was sent first. */
void relay_stop_d2k(struct proxy *p);

/*
 * Applies the FORGETs and RELEASEs kept while a start was under way in PX_FAILED (the current
 * daemon, if any, is told to forget and close them too) and frees them. Under the lock.
 */
void apply_unserved(struct proxy *p);

/*
 * Handles one message @m (m->len bytes) the daemon of @epoch sent: a reply, a notification or an
 * answer to a keeper's call. Returns 0, or -EPROTO when the daemon broke the protocol (the
 * caller then fails what it holds). The d2k thread's loop body; also the fuzzers' entry point
 * (fuzz/README.md).
 */
int d2k_message(struct proxy *p, struct msg *m, uint32_t epoch);

/*
 * When the serving daemon is hung at the latest if nothing changes (now_ms() clock; INT64_MAX
 * when no daemon serves): @timeout_ms after both the time it was given the oldest request it
 * still holds that counts (not op_info.may_wait, nor a READ or WRITE on a stream) and the last
 * time it answered anything. Describes that request in @what. Under no lock.
 */
int64_t relay_hung_at(struct proxy *p, int64_t timeout_ms, char *what, size_t size);

/*
 * How many requests of the serving daemon's count as held by it as relay_hung_at() counts them,
 * the keeper's own calls included; describes them in @what when there are any. Under no lock.
 */
size_t relay_held(struct proxy *p, char *what, size_t size);

/*
 * For fusekeeper reexec, once requests wait at the keeper (PX_WAIT): stops the k2d and d2k
 * threads between two messages, with everything they hold in the tables (the request k2d read
 * last in p->carry), and waits until the notifier has written every notification queued.
 * Blocking reads are interrupted with a signal of the relay's own. Returns 0, or -EBUSY when
 * that did not happen within @timeout_ms (call relay_thaw() either way). Under no lock.
 */
int relay_freeze(struct proxy *p, int64_t timeout_ms);

/* Lets the threads stopped by relay_freeze() go on. */
void relay_thaw(struct proxy *p);

/*
 * After a recovery that left nodes for later (lazy lookup): starts the background walk now,
 * rather than with the kernel's next request, so that the nodes of an idle mount are looked
 * up while the store they name is as the dead daemon left it. Interrupts the k2d thread's
 * read(2) of /dev/fuse with the freeze signal. Under no lock; waits 1 s at most.
 */
void relay_kick(struct proxy *p);

/*
 * A keeper resuming from systemd's fd store, before relay_start(): asks the kernel to queue
 * again every request the killed keeper had read and not answered (FUSE_NOTIFY_RESEND, FUSE
 * 7.40; they come back with FK_UNIQUE_RESEND in their unique) and reads them at once, into the
 * in-flight table as requests the killed keeper's daemon held (msg.resent; the time it was given
 * them from the resume journal): the next recovery settles them as after a daemon's death. What
 * it read past them waits in p->early for the relay. Returns 0 or -errno.
 */
int take_resent(struct proxy *p);
