/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum log_level log_max_level = LOG_INFO;
static int event_fd = -1;

static void __attribute__((format(printf, 3, 0)))
write_line(int fd, const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];
	int n = 0;

	if (prefix)
		n = snprintf(line, sizeof(line), "%s", prefix);
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line keeps lines from different threads whole. */
	if (write(fd, line, n) < 0) {
		/* Nowhere left to report it. */
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char prefix[48];
	va_list ap;

	if (level > log_max_level)
		return;
	snprintf(prefix, sizeof(prefix), "fusekeeper[%d]: %s", (int)getpid(),
		 level == LOG_ERROR ? "error: " : level == LOG_WARN ? "warning: " : "");
	va_start(ap, fmt);
	write_line(STDERR_FILENO, prefix, fmt, ap);
	va_end(ap);
}

void event_set_fd(int fd)
{
	event_fd = fd;
}

void event(const char *fmt, ...)
{
	va_list ap;

	if (event_fd < 0)
		return;
	va_start(ap, fmt);
	write_line(event_fd, NULL, fmt, ap);
	va_end(ap);
}
