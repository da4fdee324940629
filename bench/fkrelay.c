/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fkrelay — the yardstick of bench/run.sh: about the least a relay between /dev/fuse and an
 * unmodified daemon can be, to tell what fusekeeper's proxy mode costs beyond any relay's hop.
 *
 *   fkrelay MOUNTPOINT -- COMMAND [ARG...]
 *
 * It mounts MOUNTPOINT as fusekeeper does (fuse_mount_fd(), src/mount.h: nosuid, nodev, the
 * caller's uid), starts COMMAND with "{}" in it replaced by /dev/fd/N, N being one end of a
 * SOCK_SEQPACKET socket pair (the daemon's /dev/fuse, as proxy mode gives it), and relays with
 * two threads: one reads a request from the kernel and sends it to the daemon, the other
 * receives an answer or a notification from the daemon and writes it to the kernel. One copy
 * each way, no state, no checks: a daemon's death ends the mount (it is detached), as with no
 * relay at all. It exits 0 once the daemon has exited 0 after an unmount (the relay then tells
 * it with SIGTERM), or 1 on any other end, saying why on stderr.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mount.h"

/* The largest message either way: a WRITE or READ of FUSE's largest max_pages (256), with room
 * for its headers. */
#define BUF_SIZE ((1u << 20) + 65536)
/* Socket buffers that take the largest message whole (SO_SNDBUFFORCE: root lifts the limit). */
#define SOCK_BUF (4 << 20)

static int devfd = -1, sock = -1;
static pid_t daemon_pid;
static atomic_bool unmounted;

static void die(const char *what)
{
	fprintf(stderr, "fkrelay: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Kernel to daemon, until the connection ends (ENODEV: unmounted or aborted). */
static void *to_daemon(void *arg)
{
	char *buf = malloc(BUF_SIZE);

	if (!buf)
		die("malloc");
	for (;;) {
		ssize_t n = read(devfd, buf, BUF_SIZE);

		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
				continue;
			if (errno != ENODEV)
				perror("fkrelay: reading /dev/fuse");
			break;
		}
		if (send(sock, buf, n, MSG_NOSIGNAL) < 0)
			break;
	}
	unmounted = true;
	kill(daemon_pid, SIGTERM);
	return NULL;
}

/* Daemon to kernel, until the daemon closes its end. */
static void *to_kernel(void *arg)
{
	char *buf = malloc(BUF_SIZE);

	if (!buf)
		die("malloc");
	for (;;) {
		ssize_t n = recv(sock, buf, BUF_SIZE, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* ENOENT: the kernel no longer waits for it (an interrupted request). */
		while (write(devfd, buf, n) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct mount_options opts;
	pthread_t t[2];
	int sv[2], size = SOCK_BUF, status, dash = 0;
	char err[256], fdpath[32];

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			dash = i;
			break;
		}
	if (dash != 2 || dash + 1 >= argc) {
		fprintf(stderr, "usage: fkrelay MOUNTPOINT -- COMMAND [ARG...] (\"{}\" in COMMAND "
				"becomes the daemon's /dev/fuse)\n");
		return 2;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		die("socketpair");
	for (int i = 0; i < 2; i++) {
		if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		if (setsockopt(sv[i], SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	}
	mount_options_init(&opts);
	devfd = fuse_mount_fd(argv[1], &opts, err, sizeof(err));
	if (devfd < 0) {
		fprintf(stderr, "fkrelay: %s\n", err);
		return 1;
	}
	snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", sv[1]);
	for (int i = dash + 1; i < argc; i++)
		if (!strcmp(argv[i], "{}"))
			argv[i] = fdpath;
	daemon_pid = fork();
	if (daemon_pid < 0)
		die("fork");
	if (daemon_pid == 0) {
		close(devfd);
		close(sv[0]);
		execvp(argv[dash + 1], argv + dash + 1);
		fprintf(stderr, "fkrelay: cannot run %s: %s\n", argv[dash + 1], strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	sock = sv[0];
	if (pthread_create(&t[0], NULL, to_daemon, NULL) ||
	    pthread_create(&t[1], NULL, to_kernel, NULL))
		die("pthread_create");
	while (waitpid(daemon_pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	if (!unmounted) {
		fprintf(stderr, "fkrelay: the daemon ended (status %#x) before the unmount: "
				"detaching %s\n", status, argv[1]);
		fuse_unmount(argv[1]);
		return 1;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
