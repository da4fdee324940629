/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* syslog(3) priorities of the levels, as the journal reads them. */
static const int journal_priority[] = {
	[LOG_ERROR] = 3, /* LOG_ERR */
	[LOG_WARN] = 4,	 /* LOG_WARNING */
	[LOG_INFO] = 6,	 /* LOG_INFO */
	[LOG_DEBUG] = 7, /* LOG_DEBUG */
	[LOG_TRACE] = 7,
};

enum log_level log_max_level = LOG_INFO;
static int event_fd = -1;
static bool to_journal;

void log_init(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* systemd sets it to the device and inode of the stream it connected stderr to. */
	to_journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
		     fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

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
	if (to_journal)
		/* The journal knows the process; sd-daemon(3)'s <N> prefix gives the priority. */
		snprintf(prefix, sizeof(prefix), "<%d>%s", journal_priority[level],
			 level == LOG_ERROR ? "error: " : level == LOG_WARN ? "warning: " : "");
	else
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

int event_get_fd(void)
{
	return event_fd;
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
