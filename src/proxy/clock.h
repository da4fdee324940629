/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The store's clock as seen through creates (clock.c): sampled on the relay's reply path, read by
 * recovery's settle rules.
 */
#pragma once

#include <stdint.h>

#include "proxy_i.h"

/* A create's reply: how the store's clock agrees with the keeper's. Under the lock. */
void clock_sample(struct proxy *p, const struct msg *req, const struct fuse_attr *a);

/*
 * How far the store's times may be off the keeper's (nanoseconds), or -1 when its clock cannot
 * be used: no create was sampled yet, or its times are too coarse. Takes the lock.
 */
int64_t clock_slack(struct proxy *p);

/* @a's ctime in nanoseconds since the epoch, clamped to +-4e9 s. */
int64_t ctime_ns(const struct fuse_attr *a);
