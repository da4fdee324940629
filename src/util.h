/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Small helpers shared by every unit: cleanup attributes and time. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void freep(void *p)
{
	free(*(void **)p);
}

#define _cleanup_close_ __attribute__((cleanup(closep)))
#define _cleanup_free_ __attribute__((cleanup(freep)))

/* Hand ownership of an fd or pointer out of a cleanup-scoped variable. */
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_fd;                                                                               \
	})
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _p = (p);                                                            \
		(p) = NULL;                                                                        \
		_p;                                                                                \
	})

/*
 * Counts one more overflow of a bound in *@count (from any thread); true on the 1st, 2nd, 4th,
 * 8th, ... so that an overflow that repeats is logged without flooding the log.
 */
static inline bool overflow_log_due(uint64_t *count)
{
	uint64_t n = __atomic_add_fetch(count, 1, __ATOMIC_RELAXED);

	return !(n & (n - 1));
}

/* Monotonic clock in milliseconds; all deadlines in fusekeeper use it. */
static inline int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * now_ms() at the kernel's tick resolution (a few ms), at less cost: for stamps taken on every
 * request whose use is measured in seconds.
 */
static inline int64_t now_coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock time in nanoseconds: comparable with the times a filesystem stores. */
static inline int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Remaining milliseconds until @deadline for poll(2): never negative. */
static inline int ms_until(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}
