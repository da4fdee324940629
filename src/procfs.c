/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "procfs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

ssize_t proc_read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

int proc_start_time(pid_t pid, uint64_t *ticks)
{
	char path[64], buf[1024], *p;
	unsigned long long v;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (proc_read_small(path, buf, sizeof(buf)) <= 0)
		return errno == ENOENT ? -ESRCH : -errno;
	/* The command name may hold anything: the fields start after its last ')', with state
	 * (field 3); starttime is field 22. */
	p = strrchr(buf, ')');
	p = p ? p + 2 : NULL;
	for (int field = 3; p && field < 22; field++) {
		p = strchr(p, ' ');
		p = p ? p + 1 : NULL;
	}
	if (!p || !isdigit((unsigned char)*p))
		return -EBADMSG;
	v = strtoull(p, NULL, 10);
	*ticks = v;
	return 0;
}

int proc_end_process(pid_t pid, uint64_t ticks, int timeout_ms)
{
	struct pollfd pfd = { .events = POLLIN };
	uint64_t now;
	int r;

	if (pid <= 0)
		return 0;
	pfd.fd = syscall(SYS_pidfd_open, pid, 0);
	if (pfd.fd < 0)
		return errno == ESRCH ? 0 : -errno;
	/* Checked once the pidfd holds the process: the pid cannot name another one after. */
	r = proc_start_time(pid, &now);
	if (r < 0 && poll(&pfd, 1, 0) == 1)
		r = 0; /* it ended meanwhile */
	else if (r == 0 && now != ticks)
		r = 0; /* another process has the pid: that one ended long ago */
	else if (r == 0 && poll(&pfd, 1, 0) == 0) {
		if (syscall(SYS_pidfd_send_signal, pfd.fd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
			r = -errno;
		else
			r = poll(&pfd, 1, timeout_ms) == 1 ? 1 : -ETIMEDOUT;
	}
	/* Else r < 0: it runs, and whether it is that process /proc does not tell (hidepid). */
	close(pfd.fd);
	return r;
}
