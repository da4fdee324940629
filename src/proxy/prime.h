/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Priming a reopened handle (prime.c): the read at offset 0 a fresh open would have had.
 */
#pragma once

#include <stdint.h>

#include "proxy_i.h"

/*
 * If the kernel's handle @kfh is still fresh, sends it the read at offset 0 a fresh open would
 * have had and waits for it; a primed file's regenerated length is kept (handle.primed_end),
 * the lookups a READDIRPLUS gave are given back. The handle is fresh no longer either way.
 * During a recovery, @recovery_deadline (now_ms() clock) bounds the wait; from the relay (0)
 * it lasts --start-timeout at most, or until the daemon goes. Returns 0, or a fatal() error
 * that ends the recovery. Under no lock.
 */
int prime_handle(struct proxy *p, uint64_t kfh, int64_t recovery_deadline);
