/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Logging to stderr, and the machine-readable event stream (--status-fd). */
#pragma once

#include <stdarg.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

/* Messages above this level are dropped; set once at start-up (-q, -v, -vv). */
extern enum log_level log_max_level;

/*
 * Looks at where stderr goes: when it is the journal (systemd's JOURNAL_STREAM names it), lines
 * carry the journal's priority prefix "<N>" instead of "fusekeeper[PID]: ". Called once at
 * start-up, before any thread.
 */
void log_init(void);

/*
 * Write one line "fusekeeper[PID]: <message>" (or "<N><message>" to the journal) to stderr.
 * Thread-safe (one write(2)).
 */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_trace(...)                                                                             \
	do {                                                                                       \
		if (log_max_level >= LOG_TRACE)                                                    \
			log_msg(LOG_TRACE, __VA_ARGS__);                                           \
	} while (0)

/* Set the fd that receives event lines (see docs/cli-contract.md); -1 disables them. */
void event_set_fd(int fd);

/* The fd event lines go to, or -1. */
int event_get_fd(void);

/* Emit one event line, e.g. event("DAEMON %d", pid). Errors writing it are ignored. */
void event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
