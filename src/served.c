/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Whether a daemon serves a mount it was given directly (served.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "child.h"
#include "log.h"
#include "served.h"

static int stat_root(void *arg, void *out)
{
	struct statx stx;

	(void)out;
	if (statx(*(int *)arg, "", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC, STATX_BASIC_STATS,
		  &stx) < 0)
		return -errno;
	return 0;
}

int served_wait(struct keeper *k, int rootfd, int64_t deadline)
{
	int r = child_call(k, deadline, stat_root, &rootfd, NULL, 0);

	if (r == -ETIMEDOUT || r == -ECHILD || r == -EINTR)
		return r;
	if (r < 0) {
		log_error("The daemon's mount does not answer: stat of its root failed: %s",
			  strerror(-r));
		return -EPROTO;
	}
	return 0;
}
