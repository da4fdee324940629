/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fkrecover - SIGKILLs a daemon and times, from the kill, the first stat(2) of each path given,
 * for the reinit benchmark (bench/reinit.sh).
 *
 *   fkrecover PID PATH...
 *
 * One thread per PATH is started and waits at a barrier; the main thread reads the clock,
 * sends SIGKILL to PID and releases them, so that every PATH's first stat is issued at the
 * kill, side by side, as an application's would be. A stat that fails is a finding: its errno
 * is kept, and the thread then retries every millisecond (nothing tells it when the mount
 * serves again) until one succeeds or 60 s pass. A pidfd tells when PID died.
 *
 * Output: the kill's wall-clock time, to match against logs, then one line per PATH, then one for
 * the death (milliseconds from the kill, 3 decimals):
 *   kill EPOCH_US                      CLOCK_REALTIME at the kill, in microseconds
 *   stat PATH first_ms ERRNO ok_ms     ERRNO the first stat's (0 when it succeeded, then
 *                                      ok_ms == first_ms); ok_ms "-" if none succeeded
 *   death ms                           when PID's pidfd became readable ("-" without a pidfd)
 * Exit status 0 when every PATH was stat'ed successfully in the end (whatever the first
 * attempt gave), 1 otherwise, 2 for bad usage or a failed kill.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RETRY_FOR_NS (60 * 1000000000LL)

struct probe {
	pthread_t tid;
	const char *path;
	long long first_ns;	/* end of the first stat, from the kill */
	int first_err;		/* its errno, 0 for success */
	long long ok_ns;	/* end of the first successful stat, -1 if none */
};

static pthread_barrier_t start;
static long long t0;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *probe_run(void *arg)
{
	struct probe *p = arg;
	struct stat st;
	bool first = true;

	p->ok_ns = -1;
	pthread_barrier_wait(&start);
	for (;;) {
		int r = stat(p->path, &st) == 0 ? 0 : errno;
		long long t = now_ns() - t0;

		if (first) {
			p->first_ns = t;
			p->first_err = r;
			first = false;
		}
		if (r == 0) {
			p->ok_ns = t;
			break;
		}
		if (t > RETRY_FOR_NS)
			break;
		/* Polling: a failed stat says nothing about when the mount serves again. */
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	return NULL;
}

static void print_ms(long long ns)
{
	if (ns < 0)
		fputs(" -", stdout);
	else
		printf(" %.3f", ns / 1e6);
}

int main(int argc, char **argv)
{
	struct probe *probes;
	int n = argc - 2, pidfd, failed = 0;
	long long death = -1;
	struct timespec wall;
	pid_t pid;
	char *end;

	if (argc < 3) {
		fprintf(stderr, "usage: %s PID PATH...\n", argv[0]);
		return 2;
	}
	pid = (pid_t)strtol(argv[1], &end, 10);
	if (*end || pid <= 0) {
		fprintf(stderr, "fkrecover: bad pid %s\n", argv[1]);
		return 2;
	}
	probes = calloc((size_t)n, sizeof(*probes));
	if (!probes || pthread_barrier_init(&start, NULL, (unsigned)n + 1) != 0) {
		fprintf(stderr, "fkrecover: out of memory\n");
		return 2;
	}
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	for (int i = 0; i < n; i++) {
		probes[i].path = argv[i + 2];
		if (pthread_create(&probes[i].tid, NULL, probe_run, &probes[i]) != 0) {
			fprintf(stderr, "fkrecover: cannot start a thread\n");
			return 2;
		}
	}
	clock_gettime(CLOCK_REALTIME, &wall);
	t0 = now_ns();
	if (kill(pid, SIGKILL) < 0) {
		fprintf(stderr, "fkrecover: kill %d: %s\n", (int)pid, strerror(errno));
		_exit(2);
	}
	pthread_barrier_wait(&start);
	if (pidfd >= 0) {
		struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

		if (poll(&pfd, 1, 60000) == 1)
			death = now_ns() - t0;
	}
	printf("kill %lld\n", (long long)wall.tv_sec * 1000000 + wall.tv_nsec / 1000);
	for (int i = 0; i < n; i++) {
		struct probe *p = &probes[i];

		pthread_join(p->tid, NULL);
		printf("stat %s", p->path);
		print_ms(p->first_ns);
		printf(" %s", p->first_err ? strerrorname_np(p->first_err) : "0");
		print_ms(p->ok_ns);
		putchar('\n');
		failed += p->ok_ns < 0;
	}
	fputs("death", stdout);
	print_ms(death);
	putchar('\n');
	return failed ? 1 : 0;
}
