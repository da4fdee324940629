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
 *
 *   fkrelay --uring MOUNTPOINT -- COMMAND [ARG...]
 *
 * The same with the kernel's side through FUSE-over-io_uring (Linux 6.14 and later, with the
 * fuse module's enable_uring on when the mount is made): the INIT answer going to the kernel
 * gains FUSE_OVER_IO_URING, and then DEPTH ring entries on each possible CPU's queue carry the
 * kernel's requests. One thread drives the ring: a request's completion is sent on to the
 * daemon (SENDMSG, from the entry's buffers), the daemon's answers are received through the
 * ring (RECV) and committed to their entries (COMMIT_AND_FETCH, which also asks for the next
 * request). What the kernel keeps on /dev/fuse (FORGET, INTERRUPT, what came before the ring
 * was ready) still goes through the first thread, and answers that match no entry are written
 * there. A kernel that does not offer the feature gets the plain relay, with a note.
 */
#include <errno.h>
#include <liburing.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <sys/uio.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
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
/* INIT's flags2 bit 9 (protocol 7.42, Linux 6.14), which Debian 12's linux/fuse.h lacks. */
#define OVER_IO_URING (1ULL << 41)

static atomic_bool unmounted;
static atomic_ullong init_unique;	/* the kernel's INIT, read by to_daemon() */
static atomic_bool kernel_offers_uring;	/* ... and whether it offered FUSE_OVER_IO_URING */

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
		if (((struct fuse_in_header *)buf)->opcode == FUSE_INIT &&
		    n >= (ssize_t)(sizeof(struct fuse_in_header) + sizeof(struct fuse_init_in))) {
			const struct fuse_init_in *in = (void *)(buf + sizeof(struct fuse_in_header));

			atomic_store(&kernel_offers_uring, (in->flags & FUSE_INIT_EXT) &&
							   (in->flags2 & OVER_IO_URING >> 32));
			atomic_store(&init_unique, ((struct fuse_in_header *)buf)->unique);
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


/* ---- --uring: the kernel's side of the relay through FUSE-over-io_uring ---------------- */

#define CMD_REGISTER 1
#define CMD_COMMIT_AND_FETCH 2
#define TAG_RECV (1ULL << 40)
#define TAG_SEND (1ULL << 41)
#define DEPTH 2				/* ring entries per queue */

/* What the kernel reads and writes in a ring entry's header buffer (include/uapi/linux/fuse.h). */
struct ring_ent_in_out {
	uint64_t flags, commit_id;
	uint32_t payload_sz, padding;
	uint64_t reserved;
};

struct ring_header {
	char in_out[128];		/* fuse_in_header, then fuse_out_header */
	char op_in[128];		/* the opcode's fixed argument */
	struct ring_ent_in_out ent;
};

/* In the 80-byte command area of a 128-byte SQE. */
struct ring_cmd {
	uint64_t flags, commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

struct ring_ent {
	struct ring_header *h;
	char *payload;
	struct iovec iov[2];
	uint16_t qid;
	uint64_t unique;		/* the request it holds, given to the daemon; 0: none */
	struct iovec siov[3];
	struct msghdr smh;
};

static bool use_uring;
static struct io_uring ring;
static struct ring_ent *ents;
static int nents;

/* A REGISTER or COMMIT_AND_FETCH of entry @e: a 128-byte SQE (its second half is command). */
static void ring_cmd(struct ring_ent *e, uint32_t op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	struct ring_cmd *c = (struct ring_cmd *)((uintptr_t)sqe + offsetof(struct io_uring_sqe, cmd));

	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, devfd, e->iov, 2, 0);
	sqe->cmd_op = op;
	sqe->user_data = e - ents;
	*c = (struct ring_cmd){
		.qid = e->qid,
		.commit_id = op == CMD_COMMIT_AND_FETCH ? e->h->ent.commit_id : 0,
	};
}

static void ring_recv(char *buf)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	io_uring_prep_recv(sqe, sock, buf, BUF_SIZE, 0);
	sqe->user_data = TAG_RECV;
}

/* After the INIT answer went to the kernel: an entry per queue, one queue per possible CPU. */
static void ring_register(void)
{
	int nq = (int)sysconf(_SC_NPROCESSORS_CONF);

	nents = nq * DEPTH;
	ents = calloc(nents, sizeof(*ents));
	if (!ents)
		die("calloc");
	for (int i = 0; i < nents; i++) {
		struct ring_ent *e = &ents[i];

		e->h = aligned_alloc(4096, 4096);
		e->payload = aligned_alloc(4096, BUF_SIZE);
		if (!e->h || !e->payload)
			die("aligned_alloc");
		memset(e->h, 0, sizeof(*e->h));
		e->iov[0] = (struct iovec){ e->h, sizeof(*e->h) };
		e->iov[1] = (struct iovec){ e->payload, BUF_SIZE };
		e->qid = i / DEPTH;
		ring_cmd(e, CMD_REGISTER);
	}
}

/* A message from the daemon: the answer to a ring entry's request is committed through it;
 * anything else (INIT's, requests read from /dev/fuse, notifications) is written there. */
static void ring_from_daemon(char *buf, ssize_t n)
{
	struct fuse_out_header *oh = (void *)buf;

	if (oh->unique && oh->unique == atomic_load(&init_unique)) {
		struct fuse_init_out *io = (void *)(oh + 1);
		bool uring = atomic_load(&kernel_offers_uring) && !oh->error &&
			     n >= (ssize_t)(sizeof(*oh) + sizeof(*io));

		/* The daemon's answer, with io_uring on the kernel's side. */
		if (uring) {
			io->flags |= FUSE_INIT_EXT;
			io->flags2 |= OVER_IO_URING >> 32;
		} else {
			fprintf(stderr, "fkrelay: the kernel does not offer FUSE-over-io_uring "
					"(/sys/module/fuse/parameters/enable_uring off?): relaying "
					"through /dev/fuse\n");
		}
		while (write(devfd, buf, n) < 0 && errno == EINTR)
			;
		if (uring)
			ring_register();
		return;
	}
	for (int i = 0; oh->unique && i < nents; i++) {
		struct ring_ent *e = &ents[i];

		if (e->unique != oh->unique)
			continue;
		memcpy(e->h->in_out, oh, sizeof(*oh));
		memcpy(e->payload, buf + sizeof(*oh), n - sizeof(*oh));
		e->h->ent.payload_sz = n - sizeof(*oh);
		e->unique = 0;
		ring_cmd(e, CMD_COMMIT_AND_FETCH);
		return;
	}
	while (write(devfd, buf, n) < 0 && errno == EINTR)
		;
}

/* The kernel's request in ring entry @e, to the daemon as /dev/fuse would give it. */
static void ring_to_daemon(struct ring_ent *e)
{
	const struct fuse_in_header *ih = (void *)e->h->in_out;
	uint32_t pl = e->h->ent.payload_sz;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	e->unique = ih->unique;
	e->siov[0] = (struct iovec){ e->h->in_out, sizeof(*ih) };
	e->siov[1] = (struct iovec){ e->h->op_in, ih->len - sizeof(*ih) - pl };
	e->siov[2] = (struct iovec){ e->payload, pl };
	e->smh = (struct msghdr){ .msg_iov = e->siov, .msg_iovlen = 3 };
	io_uring_prep_sendmsg(sqe, sock, &e->smh, MSG_NOSIGNAL);
	sqe->user_data = TAG_SEND;
}

/* Daemon to kernel, and the kernel's requests from the ring to the daemon: one thread. */
static void *ring_main(void *arg)
{
	struct io_uring_params p = { .flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER |
					      IORING_SETUP_DEFER_TASKRUN };
	char *buf = malloc(BUF_SIZE);
	int r;

	if (!buf)
		die("malloc");
	r = io_uring_queue_init_params(64, &ring, &p);
	if (r < 0) {
		errno = -r;
		die("io_uring_queue_init");
	}
	ring_recv(buf);
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		bool done = false;

		r = io_uring_submit_and_wait(&ring, 1);
		if (r < 0 && r != -EINTR) {
			errno = -r;
			perror("fkrelay: io_uring_submit_and_wait");
			break;
		}
		io_uring_for_each_cqe(&ring, head, cqe) {
			uint64_t ud = cqe->user_data;
			int res = cqe->res;

			seen++;
			if (ud == TAG_SEND) {
				if (res < 0)
					done = true;
			} else if (ud == TAG_RECV) {
				if (res <= 0) {
					done = true;
					continue;
				}
				ring_from_daemon(buf, res);
				ring_recv(buf);
			} else if (res < 0) {
				/* ENOTCONN, ECANCELED: unmounted; the entry is gone. */
				if (res != -ENOTCONN && res != -ECANCELED)
					fprintf(stderr, "fkrelay: ring entry: %s\n", strerror(-res));
			} else {
				ring_to_daemon(&ents[ud]);
			}
		}
		io_uring_cq_advance(&ring, seen);
		if (done)
			break;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct mount_options opts;
	pthread_t t[2];
	int sv[2], size = SOCK_BUF, status, dash = 0;
	char err[256], fdpath[32];

	if (argc > 1 && !strcmp(argv[1], "--uring")) {
		use_uring = true;
		argv++;
		argc--;
	}
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			dash = i;
			break;
		}
	if (dash != 2 || dash + 1 >= argc) {
		fprintf(stderr, "usage: fkrelay [--uring] MOUNTPOINT -- COMMAND [ARG...] (\"{}\" in "
				"COMMAND becomes the daemon's /dev/fuse)\n");
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
	    pthread_create(&t[1], NULL, use_uring ? ring_main : to_kernel, NULL))
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
