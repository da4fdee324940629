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
 * Whether node @kid may have changed since @since_ns (CLOCK_REALTIME; 0: unknown, so yes): a
 * reply that changed it came since, or a request in flight other than @req may change it. For
 * a request that destroys data (REPEAT_IF_UNCHANGED), which must not be sent again then. Takes
 * the lock.
 */
bool changed_since(struct proxy *p, uint64_t kid, int64_t since_ns, const struct msg *req);

/*
 * Settles @m, a creating, removing or renaming request (op_info.replay RP_EXISTS, RP_TOLERATE,
 * RP_RENAME) that a SIGKILLed keeper had given its daemon at @sent_ns and the kernel sent
 * again, with the new daemon by the same rules as one a dead daemon held, and answers the
 * kernel (EIO when it cannot be settled). In the k2d thread, once the new daemon serves; under
 * no lock.
 */
void settle_resent(struct proxy *p, struct msg *m, const struct op_info *op, int64_t sent_ns);
