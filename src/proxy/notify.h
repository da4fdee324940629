/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's notifications (notify.c): checked, translated, queued, and written to the kernel
 * by a thread of their own.
 */
#pragma once

#include "proxy_i.h"

/* Starts the notifier thread, with its queue empty. Returns 0 or -errno. */
int notifier_start(struct proxy *p);

/*
 * The notification @m (unique 0) the daemon sent: checks it against the notification table,
 * rewrites its node IDs to the kernel's and queues a copy; one the keeper drops, or about a node
 * the kernel does not know, goes nowhere. Returns 0, or -EPROTO when it is unknown or malformed
 * (logged). From the daemon's relay thread; takes the lock.
 */
int d2k_notify(struct proxy *p, struct msg *m);

/*
 * Queues @m, a notification for the kernel with the kernel's node IDs (takes ownership), for
 * the notifier thread; @name is for logs. Waits up to 1 s for room, then drops it.
 */
void queue_notification(struct proxy *p, struct msg *m, const char *name);

/*
 * Before a reply goes to the kernel: waits up to 50 ms until the notifications queued before it
 * are written, unless one of them already made an earlier reply give up. Under no lock.
 */
void wait_notifications(struct proxy *p);

/*
 * Waits until every queued notification is written to the kernel, or until the CLOCK_MONOTONIC
 * time @deadline_ms (now_ms()). Returns 0, or -EBUSY at the deadline. Under no lock; for a
 * relay whose threads are stopped (relay_freeze()), so that nothing queues more meanwhile.
 */
int notifications_wait_idle(struct proxy *p, int64_t deadline_ms);
