/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fkreinit - drives FUSE_DEV_IOC_REINIT (kernel/patches/, src/fuse_reinit.h) for the reinit
 * tests, by hand, without the supervisor: it mounts a FUSE file system with a /dev/fuse fd of
 * its own, makes that fd the connection's holder and runs a daemon on a clone of it.
 *
 *   fkreinit probe
 *       Prints "absent" if the running kernel has no FUSE_DEV_IOC_REINIT (ENOTTY), "present"
 *       if it has (EINVAL on an fd with no connection yet), else "error ENAME". Exit 0.
 *
 *   fkreinit serve [--no-hold] --in=FIFO MOUNTPOINT -- COMMAND [ARG...]
 *       Mounts MOUNTPOINT (type fuse, allow_other) with fd H, holds H (FUSE_REINIT_HOLD;
 *       not with --no-hold), clones H for the daemon and runs COMMAND in a process group
 *       of its own, with {} in its arguments replaced by /dev/fd/N, the clone. Prints
 *       "hold ok gen G" (or "hold error ENAME"), then "started PID". Then reads commands,
 *       one a line, from FIFO and answers each with one line on stdout:
 *         hold         HOLD again on H: "ok gen G" or "error ENAME"
 *         hold-clone   HOLD on a new clone of the connection
 *         hold-unpriv  HOLD on H from a child that dropped to uid and gid 65534, with no
 *                      capabilities left
 *         hold-userns  HOLD on H from a child that made a user namespace of its own, where
 *                      it has every capability (none in the connection's)
 *         hold-bad     HOLD on H with a reserved field set
 *         hold-race    two children, each on a CPU of its own where there are two, call
 *                      HOLD on H in a loop, side by side, until one of them gets EBUSY (the
 *                      other holds the connection's REINIT lock) or 20 s have passed:
 *                      "race ok N busy M other K" (calls by result; other counts any
 *                      result but success and EBUSY, K > 0 prints the first as "first
 *                      ENAME")
 *         read         read(2) on H
 *         write        write(2) of an empty reply header on H
 *         poll         poll(2) H for input: "revents 0xN"
 *         kill         SIGKILL the last daemon's process group and reap it: "killed PID"
 *                      (its device is released once it is reaped; "killed 0" if it is
 *                      gone already)
 *         begin        FUSE_REINIT_BEGIN on H: "ok gen G" or "error ENAME"
 *         give-up      FUSE_REINIT_GIVE_UP on H: "ok gen G" or "error ENAME"
 *         wait [S]     FUSE_REINIT_WAIT for the generation of the last begin, at most S
 *                      seconds (default 10): "ok gen G", "error EPROTO reason 0xR
 *                      mismatch 0xM", or "error ENAME"
 *         start        run COMMAND again, on a new clone of H: "started PID" (a daemon
 *                      still running is left alone; kill then means the new one)
 *         close        close H: "ok"
 *         quit         as kill if the daemon runs, then close H, detach the mount, exit 0
 *       A daemon that exited by itself (any of them) is reported as "exited PID STATUS" before
 *       the answer to the next command. End of FIFO counts as quit, and quit kills every
 *       daemon still running. A daemon's stdout goes to fkreinit's stderr, so that stdout
 *       holds the answers only.
 *
 * Exit status: 0 after quit, 1 on errors (a message on stderr), 2 on bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "fuse_reinit.h"
#include "util.h"

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "EUNKNOWN";
}

/* FUSE_DEV_IOC_REINIT on FD with *ARG (operation and inputs): 0 or -errno; *ARG as returned. */
static int reinit_op(int fd, struct fuse_reinit *arg)
{
	return ioctl(fd, FUSE_DEV_IOC_REINIT, arg) < 0 ? -errno : 0;
}

/* Prints PREFIX and the result R (0 or -errno) of an operation: "ok gen GEN" or "error ENAME". */
static void say_result(const char *prefix, int r, uint64_t gen)
{
	if (r < 0)
		printf("%serror %s\n", prefix, errname(-r));
	else
		printf("%sok gen %" PRIu64 "\n", prefix, gen);
}

/* A new /dev/fuse fd attached to the connection of FD (FUSE_DEV_IOC_CLONE); -errno. */
static int clone_dev(int fd)
{
	_cleanup_close_ int c = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	uint32_t old = fd;

	if (c < 0)
		return -errno;
	if (ioctl(c, FUSE_DEV_IOC_CLONE, &old) < 0)
		return -errno;
	return TAKE_FD(c);
}

static int probe(void)
{
	_cleanup_close_ int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	struct fuse_reinit arg = { .op = FUSE_REINIT_HOLD };
	int r;

	if (fd < 0) {
		fprintf(stderr, "fkreinit: /dev/fuse: %m\n");
		return 1;
	}
	r = reinit_op(fd, &arg);
	if (r == -ENOTTY)
		puts("absent");
	else if (r == -EINVAL)
		puts("present");
	else
		printf("error %s\n", r < 0 ? errname(-r) : "none");
	return 0;
}

/* Runs ARGV with {} replaced by /dev/fd/DEV, in a process group of its own; its pid. */
static pid_t start_daemon(char **argv, int dev)
{
	pid_t parent = getpid();
	char path[32];
	pid_t pid;
	int argc = 0;

	snprintf(path, sizeof(path), "/dev/fd/%d", dev);
	while (argv[argc])
		argc++;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char **args = calloc(argc + 1, sizeof(*args));

		if (!args)
			_exit(127);
		for (int i = 0; i < argc; i++)
			args[i] = strcmp(argv[i], "{}") ? argv[i] : path;
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* fkreinit died before the line above: nobody would kill this daemon */
		if (getppid() != parent)
			_exit(127);
		if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			_exit(127);
		/* The clone is the only fd of the connection the daemon gets. */
		if (fcntl(dev, F_SETFD, 0) < 0)
			_exit(127);
		execvp(args[0], args);
		fprintf(stderr, "fkreinit: %s: %m\n", args[0]);
		_exit(127);
	}
	setpgid(pid, pid);
	return pid;
}

/* Drops to uid and gid 65534 with no capabilities left: 0 or -1. */
static int drop_privileges(void)
{
	return setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
	       setresuid(65534, 65534, 65534) < 0 ? -1 : 0;
}

/* Makes a user namespace of its own, with every capability there and none outside: 0 or -1. */
static int enter_userns(void)
{
	return unshare(CLONE_NEWUSER);
}

/* HOLD on FD from a child that first ran SETUP: its errno, 0, or -1 if SETUP failed. */
static int hold_in_child(int fd, int (*setup)(void))
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct fuse_reinit arg = { .op = FUSE_REINIT_HOLD };

		if (setup() < 0)
			_exit(255);
		_exit(-reinit_op(fd, &arg));
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) == 255)
		return -1;
	return WEXITSTATUS(status);
}

/* What the children of hold_race() count, in memory they share with it. */
struct race {
	unsigned long ok, busy, other;
	int first_other;	/* errno of the first other result */
	int done;		/* set by the first child to see EBUSY */
};

/*
 * Two children call HOLD on FD side by side until one gets EBUSY or @limit_ms passes; the
 * counts in *@out. 0, or -errno if the children could not be run.
 */
static int hold_race(int fd, int64_t limit_ms, struct race *out)
{
	struct race *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pid_t pids[2] = { 0, 0 };
	int r = 0;

	if (shared == MAP_FAILED)
		return -errno;
	memset(shared, 0, sizeof(*shared));
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			r = -errno;
			__atomic_store_n(&shared->done, 1, __ATOMIC_RELAXED);
			break;
		}
		if (pids[i] == 0) {
			int64_t end = now_ms() + limit_ms;
			unsigned long n = 0;

			if (ncpu >= 2) {
				cpu_set_t set;

				CPU_ZERO(&set);
				CPU_SET(i, &set);
				sched_setaffinity(0, sizeof(set), &set);
			}
			while (!__atomic_load_n(&shared->done, __ATOMIC_RELAXED)) {
				struct fuse_reinit arg = { .op = FUSE_REINIT_HOLD };
				int e = reinit_op(fd, &arg);

				if (!e) {
					__atomic_add_fetch(&shared->ok, 1, __ATOMIC_RELAXED);
				} else if (e == -EBUSY) {
					__atomic_add_fetch(&shared->busy, 1, __ATOMIC_RELAXED);
					__atomic_store_n(&shared->done, 1, __ATOMIC_RELAXED);
				} else {
					int zero = 0;

					__atomic_add_fetch(&shared->other, 1, __ATOMIC_RELAXED);
					__atomic_compare_exchange_n(&shared->first_other, &zero, -e,
								    false, __ATOMIC_RELAXED,
								    __ATOMIC_RELAXED);
				}
				if (!(++n % 256) && now_ms() >= end)
					break;
			}
			_exit(0);
		}
	}
	for (int i = 0; i < 2; i++) {
		if (pids[i] > 0)
			waitpid(pids[i], NULL, 0);
	}
	*out = *shared;
	munmap(shared, sizeof(*shared));
	return r;
}

/* Every daemon started and not reaped yet (bounded), and the last one started, or 0. */
#define MAX_DAEMONS 64
static pid_t daemons[MAX_DAEMONS];
static int ndaemons;
static pid_t daemon_pid;

static void forget_daemon(pid_t pid)
{
	for (int i = 0; i < ndaemons; i++) {
		if (daemons[i] == pid) {
			daemons[i] = daemons[--ndaemons];
			break;
		}
	}
	if (pid == daemon_pid)
		daemon_pid = 0;
}

/* Reports (and reaps) every daemon that exited by itself. */
static void report_daemon_exits(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		printf("exited %d %d\n", (int)pid,
		       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		forget_daemon(pid);
	}
}

static void kill_one(pid_t pid)
{
	kill(-pid, SIGKILL);
	waitpid(pid, NULL, 0);
	forget_daemon(pid);
}

static void kill_all_daemons(void)
{
	while (ndaemons > 0)
		kill_one(daemons[0]);
}

/*
 * Runs ARGV on a new clone of H (start_daemon) and records it as the last daemon: its pid,
 * or -errno with *WHAT naming the step that failed.
 */
static pid_t start_on_clone(int h, char **argv, const char **what)
{
	_cleanup_close_ int dev = -1;
	pid_t pid;

	*what = "too many daemons";
	if (ndaemons >= MAX_DAEMONS)
		return -EMFILE;
	*what = "cannot clone the device";
	dev = clone_dev(h);
	if (dev < 0)
		return dev;
	*what = "fork";
	pid = start_daemon(argv, dev);
	if (pid < 0)
		return -errno;
	daemons[ndaemons++] = pid;
	daemon_pid = pid;
	return pid;
}

static int serve(bool hold, const char *in, const char *mnt, char **argv)
{
	_cleanup_close_ int h = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	char opts[128], line[128];
	struct fuse_reinit arg;
	uint64_t begun = 0;
	const char *what;
	FILE *cmds;
	pid_t pid;
	int r;

	if (h < 0) {
		fprintf(stderr, "fkreinit: /dev/fuse: %m\n");
		return 1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", h);
	if (mount("fkreinit", mnt, "fuse", MS_NOSUID | MS_NODEV, opts) < 0) {
		fprintf(stderr, "fkreinit: cannot mount %s: %m\n", mnt);
		return 1;
	}
	if (hold) {
		arg = (struct fuse_reinit){ .op = FUSE_REINIT_HOLD };
		r = reinit_op(h, &arg);
		say_result("hold ", r, arg.gen);
	}
	pid = start_on_clone(h, argv, &what);
	if (pid < 0) {
		fprintf(stderr, "fkreinit: %s: %s\n", what, strerror(-pid));
		umount2(mnt, MNT_DETACH);
		return 1;
	}
	printf("started %d\n", (int)pid);
	fflush(stdout);

	cmds = fopen(in, "re");
	if (!cmds) {
		fprintf(stderr, "fkreinit: %s: %m\n", in);
		kill_all_daemons();
		umount2(mnt, MNT_DETACH);
		return 1;
	}
	while (fgets(line, sizeof(line), cmds)) {
		line[strcspn(line, "\n")] = '\0';
		report_daemon_exits();
		if (!strcmp(line, "hold")) {
			arg = (struct fuse_reinit){ .op = FUSE_REINIT_HOLD };
			r = reinit_op(h, &arg);
			say_result("", r, arg.gen);
		} else if (!strcmp(line, "hold-clone")) {
			_cleanup_close_ int c = clone_dev(h);

			arg = (struct fuse_reinit){ .op = FUSE_REINIT_HOLD };
			r = c < 0 ? c : reinit_op(c, &arg);
			say_result("", r, arg.gen);
		} else if (!strcmp(line, "hold-unpriv")) {
			r = hold_in_child(h, drop_privileges);
			if (r < 0)
				puts("error cannot-drop-privileges");
			else
				say_result("", -r, 0);
		} else if (!strcmp(line, "hold-userns")) {
			r = hold_in_child(h, enter_userns);
			if (r < 0)
				puts("error cannot-make-a-user-namespace");
			else
				say_result("", -r, 0);
		} else if (!strcmp(line, "hold-race")) {
			struct race race = { 0 };

			r = hold_race(h, 20000, &race);
			if (r < 0)
				say_result("", r, 0);
			else
				printf("race ok %lu busy %lu other %lu%s%s\n", race.ok, race.busy,
				       race.other, race.other ? " first " : "",
				       race.other ? errname(race.first_other) : "");
		} else if (!strcmp(line, "hold-bad")) {
			arg = (struct fuse_reinit){ .op = FUSE_REINIT_HOLD, .spare[1] = 1 };
			r = reinit_op(h, &arg);
			say_result("", r, arg.gen);
		} else if (!strcmp(line, "read")) {
			static char buf[1 << 20];

			if (read(h, buf, sizeof(buf)) < 0)
				printf("error %s\n", errname(errno));
			else
				puts("ok");
		} else if (!strcmp(line, "write")) {
			struct fuse_out_header oh = { .len = sizeof(oh), .unique = 1 };

			if (write(h, &oh, sizeof(oh)) < 0)
				printf("error %s\n", errname(errno));
			else
				puts("ok");
		} else if (!strcmp(line, "poll")) {
			struct pollfd p = { .fd = h, .events = POLLIN };

			if (poll(&p, 1, 0) < 0)
				printf("error %s\n", errname(errno));
			else
				printf("revents %#x\n", p.revents);
		} else if (!strcmp(line, "kill")) {
			pid = daemon_pid;
			if (pid > 0)
				kill_one(pid);
			printf("killed %d\n", (int)pid);
		} else if (!strcmp(line, "begin")) {
			arg = (struct fuse_reinit){ .op = FUSE_REINIT_BEGIN };
			r = reinit_op(h, &arg);
			if (!r)
				begun = arg.gen;
			say_result("", r, arg.gen);
		} else if (!strcmp(line, "give-up")) {
			arg = (struct fuse_reinit){ .op = FUSE_REINIT_GIVE_UP };
			r = reinit_op(h, &arg);
			say_result("", r, arg.gen);
		} else if (!strcmp(line, "wait") || !strncmp(line, "wait ", 5)) {
			unsigned long s = line[4] ? strtoul(line + 5, NULL, 10) : 10;

			arg = (struct fuse_reinit){ .op = FUSE_REINIT_WAIT, .gen = begun,
						    .timeout_ns = s * 1000000000ull };
			r = reinit_op(h, &arg);
			if (r == -EPROTO)
				printf("error EPROTO reason %#x mismatch %#" PRIx64 "\n", arg.reason,
				       arg.mismatch);
			else
				say_result("", r, arg.gen);
		} else if (!strcmp(line, "start")) {
			/* A daemon still running is left to exit (or not) by itself. */
			pid = start_on_clone(h, argv, &what);
			if (pid < 0)
				printf("error %s\n", errname(-pid));
			else
				printf("started %d\n", (int)pid);
		} else if (!strcmp(line, "close")) {
			closep(&h);
			h = -1;
			puts("ok");
		} else if (!strcmp(line, "quit")) {
			break;
		} else {
			printf("error unknown-command\n");
		}
		fflush(stdout);
	}
	fclose(cmds);
	kill_all_daemons();
	closep(&h);
	h = -1;
	if (umount2(mnt, MNT_DETACH) < 0)
		fprintf(stderr, "fkreinit: cannot unmount %s: %m\n", mnt);
	puts("bye");
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: fkreinit probe\n"
			"       fkreinit serve [--no-hold] --in=FIFO MOUNTPOINT -- COMMAND [ARG...]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *in = NULL;
	bool hold = true;
	int i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "probe"))
		return probe();
	if (argc < 2 || strcmp(argv[1], "serve"))
		return usage();
	for (i = 2; i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2]; i++) {
		if (!strcmp(argv[i], "--no-hold"))
			hold = false;
		else if (!strncmp(argv[i], "--in=", 5))
			in = argv[i] + 5;
		else
			return usage();
	}
	if (!in || argc - i < 3 || strcmp(argv[i + 1], "--"))
		return usage();
	return serve(hold, in, argv[i], argv + i + 2);
}
