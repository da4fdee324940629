/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The store's clock as seen through creates: how far a new object's ctime falls outside the
 * [send, reply] interval of the request that made it (proxy.clock_slack_ns). A settle rule uses
 * that slack to tell whether a change was made while the dead daemon held a request (recover.c,
 * "Proof of what the dead daemon did").
 */
#include "clock.h"

#include <time.h>

#include "util.h"

/* Past this slack the store's times prove nothing (sshfs: whole seconds). */
#define MAX_CLOCK_SLACK_NS (100 * 1000000LL)

/*
 * The least slack: the tick that moves the coarse clock files are stamped with can come late
 * on a loaded virtual machine (the vCPU that keeps time is not running), so a new file's time
 * can lag the real one by more than a tick. Seen: a make check run on a 2-vCPU VM where a file
 * made after the send was stamped more than two ticks before it.
 */
#define MIN_CLOCK_SLACK_NS (20 * 1000000LL)

/* The resolution of CLOCK_REALTIME_COARSE, which local filesystems stamp times with. */
static int64_t coarse_tick_ns(void)
{
	struct timespec res;

	if (clock_getres(CLOCK_REALTIME_COARSE, &res) < 0)
		return 10000000; /* HZ=100, the coarsest */
	return res.tv_sec * 1000000000LL + res.tv_nsec;
}

/*
 * How far the store's times may be off the keeper's: twice what was seen, at least two ticks
 * of the clock Linux stamps files with (a file's time lags the real one by up to a tick), for
 * a few samples may not show the worst, and at least MIN_CLOCK_SLACK_NS. -1 when the store's
 * clock cannot be used.
 */
int64_t clock_slack(struct proxy *p)
{
	int64_t slack;
	uint64_t samples;

	pthread_mutex_lock(&p->lock);
	slack = p->clock_slack_ns;
	samples = p->clock_samples;
	pthread_mutex_unlock(&p->lock);
	/* Past MAX_CLOCK_SLACK_NS it is unusable however far: no need to double more. */
	slack = MAX(MAX(2 * MIN(slack, MAX_CLOCK_SLACK_NS), 2 * coarse_tick_ns()),
		    MIN_CLOCK_SLACK_NS);
	return samples && slack <= MAX_CLOCK_SLACK_NS ? slack : -1;
}

/*
 * @a's ctime in nanoseconds since the epoch. The daemon's seconds are signed (as the kernel
 * reads them); beyond +-4e9 s (years 1843 and 2096) they are taken as that far, which is as far
 * from any send, reply or death as the real value, and leaves room for a slack to be added or
 * taken away without overflow.
 */
int64_t ctime_ns(const struct fuse_attr *a)
{
	const int64_t lim = 4000000000LL;
	int64_t s = (int64_t)a->ctime;

	s = s > lim ? lim : s < -lim ? -lim : s;
	return s * 1000000000LL + MIN(a->ctimensec, 999999999u);
}

void clock_sample(struct proxy *p, const struct msg *req, const struct fuse_attr *a)
{
	int64_t t = ctime_ns(a), now = realtime_ns(), d = 0;

	if (!req->sent_ns)
		return;
	/* A new object's ctime is its creation, between our send and its reply. */
	if (t < req->sent_ns)
		d = req->sent_ns - t;
	else if (t > now)
		d = t - now;
	/* Whole seconds only: the store keeps no finer times. */
	if (a->ctimensec == 0 && d < 1000000000LL)
		d = 1000000000LL;
	/* The resume journal keeps what a proof needs: the first sample and every wider slack. */
	if (d > p->clock_slack_ns || !p->clock_samples)
		p->clock_noted = true;
	if (d > p->clock_slack_ns)
		p->clock_slack_ns = d;
	p->clock_samples++;
}
