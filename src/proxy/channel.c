/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Proxy mode's two channel ends: replies and notifications written to the kernel's /dev/fuse,
 * messages sent to the current daemon's socket (under sock_lock, to the daemon they were
 * translated for), the keeper's own messages whose answers nobody waits for (FORGET, RELEASE),
 * and the event bits the supervisor reads. Every layer above writes and sends through here.
 */
#include "channel.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

void post_event(struct proxy *p, unsigned bits)
{
	atomic_fetch_or(&p->ev_bits, bits);
	efd_signal(p->ev_efd);
}

int write_kernel(struct proxy *p, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = write(p->devfd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;
		/* ENOENT: the kernel stopped waiting (interrupted or aborted request). */
		if (e != ENOENT && e != ENODEV)
			log_warn("The kernel refused a %zu-byte reply: %s", len, strerror(e));
		return -e;
	}
	return 0;
}

void reply_kernel_err(struct proxy *p, uint64_t unique, int err)
{
	struct fuse_out_header oh = { .len = sizeof(oh), .error = err, .unique = unique };

	write_kernel(p, &oh, sizeof(oh));
}

int send_held(struct proxy *p, uint32_t epoch, const void *buf, size_t len, int flags)
{
	ssize_t n;

	if (p->sock_epoch != epoch || p->sock < 0)
		return -EPIPE;
	do
		n = send(p->sock, buf, len, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET || errno == ENOTCONN ? -EPIPE : -errno;
	return n == (ssize_t)len ? 0 : -EMSGSIZE;
}

int send_to_daemon(struct proxy *p, uint32_t epoch, const void *buf, size_t len, int flags)
{
	int r;

	pthread_rwlock_rdlock(&p->sock_lock);
	r = send_held(p, epoch, buf, len, flags);
	pthread_rwlock_unlock(&p->sock_lock);
	return r;
}

/* Sends a message that expects no reply, or whose reply the keeper drops. */
void send_orphan(struct proxy *p, uint32_t epoch, uint32_t opcode, uint64_t nodeid,
		 const void *arg, size_t arglen)
{
	char buf[sizeof(struct fuse_in_header) + 64] __attribute__((aligned(8)));
	struct fuse_in_header *h = (struct fuse_in_header *)buf;

	if (arglen > 64)
		return;
	memset(h, 0, sizeof(*h));
	h->len = sizeof(*h) + arglen;
	h->opcode = opcode;
	h->nodeid = nodeid;
	h->unique = CALL_BIT | ORPHAN_BIT | (__atomic_fetch_add(&p->next_call, 1, __ATOMIC_RELAXED) << 1);
	memcpy(buf + sizeof(*h), arg, arglen);
	/* Sent with the lock held: never wait for a daemon that is not reading. */
	if (send_to_daemon(p, epoch, buf, h->len, MSG_DONTWAIT) == -EAGAIN)
		log_warn("The daemon is not reading: a %s for node %" PRIu64 " was dropped",
			 op_name(opcode), nodeid);
}

void forget_in_daemon(struct proxy *p, uint32_t epoch, uint64_t did, uint64_t count)
{
	struct fuse_forget_in f = { .nlookup = count };

	if (count)
		send_orphan(p, epoch, FUSE_FORGET, did, &f, sizeof(f));
}

void release_in_daemon(struct proxy *p, uint32_t epoch, uint64_t did, uint64_t dfh,
		       bool dir)
{
	struct fuse_release_in r = { .fh = dfh };

	send_orphan(p, epoch, dir ? FUSE_RELEASEDIR : FUSE_RELEASE, did, &r, sizeof(r));
}
