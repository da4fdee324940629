/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A blocking call in a child process, watched through keeper_wait() (child.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "util.h"

int child_call(struct keeper *k, int64_t deadline, int (*fn)(void *arg, void *out), void *arg,
	       void *out, size_t size)
{
	int pipefd[2], r, result = -EIO;
	_cleanup_close_ int child = -1;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return r;
	}
	if (pid == 0) {
		char buf[sizeof(int) + size];
		int res;

		/* Never outlive the keeper: the call may hold the connection (its fds). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		close(pipefd[0]);
		res = fn(arg, out);
		/* One write of @fn's result and @out: the parent reads all or nothing. */
		memcpy(buf, &res, sizeof(res));
		if (size)
			memcpy(buf + sizeof(res), out, size);
		_exit(write(pipefd[1], buf, sizeof(buf)) == (ssize_t)sizeof(buf) ? 0 : 1);
	}
	close(pipefd[1]);
	child = syscall(SYS_pidfd_open, pid, 0);
	r = keeper_wait(k, pipefd[0], deadline);
	if (r == 0) {
		char buf[sizeof(int) + size];

		if (read(pipefd[0], buf, sizeof(buf)) == (ssize_t)sizeof(buf)) {
			memcpy(&result, buf, sizeof(result));
			if (size)
				memcpy(out, buf + sizeof(result), size);
		}
	}
	close(pipefd[0]);
	if (child >= 0) {
		syscall(SYS_pidfd_send_signal, child, SIGKILL, NULL, 0);
		/* The supervisor reaps every child: ECHILD here is fine. */
		waitid(P_PIDFD, child, NULL, WEXITED);
	} else {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return r < 0 ? r : result;
}
