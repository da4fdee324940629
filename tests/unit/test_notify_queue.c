/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The notification queue's bound (notify.c): a daemon can make the keeper hold at most 4096
 * notifications for the kernel; past that its thread waits a second for room, then the
 * notification is dropped and counted. No notifier thread runs here: nothing drains the queue.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy/notify.h"
#include "tap.h"
#include "util.h"

#define QUEUE_MAX 4096 /* NOTIFY_QUEUE_MAX in notify.c */

static struct msg *notification(void)
{
	struct fuse_out_header h = { .len = sizeof(h), .error = FUSE_NOTIFY_INVAL_INODE };

	return msg_dup(&h, sizeof(h));
}

int main(void)
{
	struct proxy *p = calloc(1, sizeof(*p));
	int64_t start, took;
	size_t held = 0;

	msg_init(1 << 20);
	pthread_mutex_init(&p->nq_lock, NULL);
	cond_init_monotonic(&p->nq_cond);
	p->nq_tail = &p->nq_head;

	for (int i = 0; i < QUEUE_MAX; i++)
		queue_notification(p, notification(), "INVAL_INODE");
	for (struct msg *m = p->nq_head; m; m = m->next)
		held++;
	ok(p->nq_seq_in == QUEUE_MAX && held == QUEUE_MAX && p->dropped_notifications == 0,
	   "%d notifications are queued", QUEUE_MAX);

	start = now_ms();
	queue_notification(p, notification(), "INVAL_INODE");
	took = now_ms() - start;
	ok(p->nq_seq_in == QUEUE_MAX && p->dropped_notifications == 1,
	   "one more is dropped and counted");
	ok(took >= 900 && took < 5000, "after waiting about a second for room (%lld ms)",
	   (long long)took);

	queue_notification(p, notification(), "INVAL_INODE");
	ok(p->nq_seq_in == QUEUE_MAX && p->dropped_notifications == 2, "and so is the next");

	/* The kernel took one: there is room again at once. */
	p->nq_seq_done++;
	start = now_ms();
	queue_notification(p, notification(), "INVAL_INODE");
	ok(p->nq_seq_in == QUEUE_MAX + 1 && p->dropped_notifications == 2 &&
		   now_ms() - start < 500,
	   "once the kernel takes one, the next is queued without waiting");
	msg_put_chain(p->nq_head);
	free(p);
	return tap_done();
}
