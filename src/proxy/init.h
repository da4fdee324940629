/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE_INIT in proxy mode (init.c): the first daemon's answer on its way to the kernel, and a
 * later daemon's answer to the saved INIT.
 */
#pragma once

#include <stddef.h>

#include "proxy_i.h"

/*
 * The first daemon's answer @out (@len bytes) to the kernel's INIT, on its way to the kernel:
 * checks the version, clamps max_write and max_pages to what the keeper's buffers and the
 * daemon's socket hold, masks INIT_FLAGS_MASKED, and records what was agreed (init_out,
 * init_flags, init_minor, init_done; call_efd is signalled). Returns 0, or -EPROTO for a version
 * the keeper cannot relay (logged). Under the lock.
 */
int check_first_init(struct proxy *p, struct fuse_init_out *out, size_t len);

/*
 * A later daemon's answer @reply (taken and freed) to the saved INIT: 0 if it agrees to what
 * the kernel agreed with the first daemon, else -EPROTO (logged with the difference).
 */
int check_restart_init(struct proxy *p, struct msg *reply);
