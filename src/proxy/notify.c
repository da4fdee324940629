/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's notifications: checked against the notification table, their node IDs rewritten
 * to the kernel's, and queued for the notifier thread, which writes them to the kernel. Writing
 * one can block in the kernel on a page or directory lock that a request holds whose reply is
 * still to come, so neither relay thread writes them; a reply waits a little for the ones sent
 * before it (wait_notifications()).
 */
#include "notify.h"

#include <errno.h>
#include <inttypes.h>

#include "channel.h"
#include "log.h"
#include "translate.h"
#include "util.h"

/* Notifications the keeper holds for the kernel at most; past that the daemon waits. */
#define NOTIFY_QUEUE_MAX 4096

int d2k_notify(struct proxy *p, struct msg *m)
{
	struct fuse_out_header *oh = msg_out(m);
	const struct notify_info *ni = notify_get(oh->error);
	struct msg *copy;
	char *b = m->data + sizeof(*oh);
	size_t len = m->len - sizeof(*oh);

	if (!ni) {
		log_error("The daemon sent an unknown notification (code %d, %zu bytes)", oh->error,
			  len);
		return -EPROTO;
	}
	if (len < ni->size) {
		log_error("The daemon sent a %zu-byte %s notification; at least %u bytes expected",
			  len, ni->name, ni->size);
		return -EPROTO;
	}
	if (ni->namelen_off >= 0) {
		uint32_t namelen;

		memcpy(&namelen, b + ni->namelen_off, sizeof(namelen));
		if (namelen > 1024 || len < ni->size + namelen + 1) {
			log_error("The daemon sent a %s notification with a bad name length %u",
				  ni->name, namelen);
			return -EPROTO;
		}
	}
	if (ni->drop) {
		log_debug("Dropping the daemon's %s notification", ni->name);
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < 2; i++) {
		uint64_t kid;

		if (ni->node_off[i] < 0)
			continue;
		if (node_to_kernel(&p->nodes, get64(b, ni->node_off[i]), &kid) < 0) {
			/* The kernel does not know that node: nothing to tell it. */
			pthread_mutex_unlock(&p->lock);
			return 0;
		}
		put64(b, ni->node_off[i], kid);
	}
	pthread_mutex_unlock(&p->lock);
	copy = msg_dup(m->data, m->len);
	if (!copy) {
		log_warn("Out of memory: dropping the daemon's %s notification", ni->name);
		return 0;
	}
	queue_notification(p, copy, ni->name);
	return 0;
}

void queue_notification(struct proxy *p, struct msg *copy, const char *name)
{
	pthread_mutex_lock(&p->nq_lock);
	if (p->nq_seq_in - p->nq_seq_done >= NOTIFY_QUEUE_MAX) {
		/* The kernel is not keeping up: the daemon waits, as it would on /dev/fuse. */
		struct timespec ts = deadline_ts(1000);

		while (p->nq_seq_in - p->nq_seq_done >= NOTIFY_QUEUE_MAX)
			if (pthread_cond_timedwait(&p->nq_cond, &p->nq_lock, &ts) == ETIMEDOUT)
				break;
		if (p->nq_seq_in - p->nq_seq_done >= NOTIFY_QUEUE_MAX) {
			pthread_mutex_unlock(&p->nq_lock);
			if (overflow_log_due(&p->dropped_notifications))
				log_warn("%d notifications wait for the kernel: dropping a %s (%" PRIu64
					 " dropped so far)", NOTIFY_QUEUE_MAX, name,
					 p->dropped_notifications);
			msg_put(copy);
			return;
		}
	}
	copy->next = NULL;
	*p->nq_tail = copy;
	p->nq_tail = &copy->next;
	p->nq_seq_in++;
	pthread_cond_broadcast(&p->nq_cond);
	pthread_mutex_unlock(&p->nq_lock);
}

static void *notifier_main(void *arg)
{
	struct proxy *p = arg;

	for (;;) {
		struct msg *m;

		pthread_mutex_lock(&p->nq_lock);
		while (!p->nq_head)
			pthread_cond_wait(&p->nq_cond, &p->nq_lock);
		m = p->nq_head;
		p->nq_head = m->next;
		if (!p->nq_head)
			p->nq_tail = &p->nq_head;
		pthread_mutex_unlock(&p->nq_lock);
		/* ENOENT: the kernel does not know the node (any more); nothing to do. */
		write_kernel(p, m->data, m->len);
		msg_put(m);
		pthread_mutex_lock(&p->nq_lock);
		p->nq_seq_done++;
		pthread_cond_broadcast(&p->nq_cond);
		pthread_mutex_unlock(&p->nq_lock);
	}
	return NULL;
}

/*
 * A daemon's notification is applied before its next reply when it sends them in that order,
 * as over /dev/fuse; but a notification that waits for a lock held by a request must not keep
 * that request's reply from the kernel for ever, so the wait is bounded.
 */
void wait_notifications(struct proxy *p)
{
	struct timespec ts;
	uint64_t target;

	if (__atomic_load_n(&p->nq_seq_in, __ATOMIC_ACQUIRE) ==
	    __atomic_load_n(&p->nq_seq_done, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&p->nq_lock);
	target = p->nq_seq_in;
	/* Still stuck on the notification that made an earlier reply give up: do not wait. */
	if (p->nq_stalled == p->nq_seq_done + 1) {
		pthread_mutex_unlock(&p->nq_lock);
		return;
	}
	ts = deadline_ts(50);
	while (p->nq_seq_done < target)
		if (pthread_cond_timedwait(&p->nq_cond, &p->nq_lock, &ts) == ETIMEDOUT)
			break;
	if (p->nq_seq_done < target)
		p->nq_stalled = p->nq_seq_done + 1;
	pthread_mutex_unlock(&p->nq_lock);
}

int notifications_wait_idle(struct proxy *p, int64_t deadline_ms)
{
	int r = 0;

	pthread_mutex_lock(&p->nq_lock);
	while (p->nq_head || p->nq_seq_done != p->nq_seq_in) {
		int64_t left = deadline_ms - now_ms();
		struct timespec ts;

		if (left <= 0) {
			r = -EBUSY;
			break;
		}
		ts = deadline_ts(left);
		pthread_cond_timedwait(&p->nq_cond, &p->nq_lock, &ts);
	}
	pthread_mutex_unlock(&p->nq_lock);
	return r;
}

int notifier_start(struct proxy *p)
{
	pthread_mutex_init(&p->nq_lock, NULL);
	cond_init_monotonic(&p->nq_cond);
	p->nq_head = NULL;
	p->nq_tail = &p->nq_head;
	return -pthread_create(&p->notifier, NULL, notifier_main, p);
}
