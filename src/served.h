/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Whether a daemon given the mount's own /dev/fuse (remount and reinit modes) serves it: the
 * keeper sees none of its traffic, so it asks the kernel.
 */
#pragma once

#include <stdint.h>

#include "keeper.h"

/*
 * Waits until the FUSE mount whose root @rootfd is (an O_PATH fd) answers a GETATTR: a stat
 * with AT_STATX_FORCE_SYNC, which the kernel holds until FUSE_INIT is answered, made in a
 * child (child_call()). @deadline: the mode's share of --start-timeout (keeper_wait()).
 * Returns 0 when it answered, -EPROTO (logged) when the stat failed, or keeper_wait()'s
 * -ETIMEDOUT, -ECHILD or -EINTR.
 */
int served_wait(struct keeper *k, int rootfd, int64_t deadline);
