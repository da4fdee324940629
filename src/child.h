/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A call that may block in the kernel for as long as a daemon takes (a stat the kernel holds
 * until FUSE_INIT is answered, FUSE_REINIT_WAIT), made in a child process so that the keeper
 * keeps watching its daemon, its signals and the mount meanwhile (keeper_wait()), and can end
 * the call with SIGKILL when it gives up: a wait in FUSE is killable.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keeper.h"

/*
 * Runs @fn(@arg, @out) in a child process; @fn returns 0 or -errno and may fill @out (@size
 * bytes), which comes back to the caller. Waits with keeper_wait() until @deadline (now_ms()
 * clock). Returns what @fn returned, or keeper_wait()'s -ETIMEDOUT, -ECHILD or -EINTR (the
 * child is then killed), or -errno if the child could not be made. The child is reaped here
 * or, if the supervisor reaps it first, by the supervisor.
 */
int child_call(struct keeper *k, int64_t deadline, int (*fn)(void *arg, void *out), void *arg,
	       void *out, size_t size);
