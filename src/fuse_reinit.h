/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuse_reinit.h - the user-space side of FUSE_DEV_IOC_REINIT, the device ioctl that
 * kernel/patches/ adds to fs/fuse (docs/kernel-design.md, section 3). Debian's
 * <linux/fuse.h> does not have it: these definitions follow the patched
 * include/uapi/linux/fuse.h and must stay equal to it.
 *
 * A kernel without the ioctl answers ENOTTY; the patched one answers EINVAL on a /dev/fuse
 * fd that is not attached to a connection yet, which makes a cheap probe.
 */
#ifndef FUSEKEEPER_FUSE_REINIT_H
#define FUSEKEEPER_FUSE_REINIT_H

#include <linux/ioctl.h>
#include <stdint.h>

/* The argument of FUSE_DEV_IOC_REINIT; 64 bytes. Fields not used by an operation are 0. */
struct fuse_reinit {
	uint32_t op;         /* FUSE_REINIT_* */
	uint32_t flags;      /* BEGIN: FUSE_REINIT_DURABLE_WRITES or 0; otherwise 0 */
	uint64_t timeout_ns; /* WAIT: how long to wait, in nanoseconds; otherwise 0 */
	uint64_t gen;        /* in, WAIT: what BEGIN returned; out: the connection's generation
				(1 at mount, one more at each BEGIN) */
	uint64_t mismatch;   /* out, WAIT -> EPROTO: the INIT flags that differ */
	uint32_t reason;     /* out, WAIT -> EPROTO: FUSE_REINIT_R_* */
	uint32_t lost;       /* in: 0; out, BEGIN: how many files, inodes and directories had
				changes the old daemon acknowledged and no sync covered that
				the kernel cannot write again, which it now reports (EIO at
				their next fsync); out, WAIT: how many of the files BEGIN counted
				in rewrite could not be written again, now reported; 0 under
				FUSE_REINIT_DURABLE_WRITES */
	uint32_t rewrite;    /* in: 0; out, BEGIN: how many files held only page-cache writes the
				old daemon acknowledged and no sync covered, which the kernel
				writes again to the new daemon, and syncs, once it answered INIT;
				out, WAIT: how many it did, or, with EINPROGRESS, how many are
				left */
	uint32_t padding;    /* 0 */
	uint64_t spare[2];   /* 0 */
};

/*
 * HOLD: the fd becomes the connection's holder. It may not read or write requests (EPERM);
 * while it is open, requests a released device had read are kept for a later daemon, and
 * their callers may be killed; closing it ends them with ECONNABORTED. Errors: ENOTTY (no
 * such ioctl, or a CUSE fd), EINVAL (no connection yet; a reserved field set), EPERM (no
 * CAP_SYS_ADMIN in the connection's user namespace), EOPNOTSUPP (not a /dev/fuse
 * connection), ENOTCONN (aborted), EBUSY (another call in progress, another holder, or the
 * fd has requests in hand).
 */
#define FUSE_REINIT_HOLD 1

/*
 * BEGIN, on the holder: the connection's generation goes up, every other fd of it is retired
 * (its reads and writes fail with ENODEV, which libfuse takes for an unmount), the first INIT
 * is queued again for the next reader, and new requests wait until its answer is accepted.
 * Requests the old daemon read and did not answer are sent again where a repeat does what
 * one does, and fail with EIO otherwise (docs/kernel-api.md has the table); those it never
 * read are sent again. Inodes are healed by name, and open files reopened, at their next use.
 * Unless FUSE_REINIT_DURABLE_WRITES: changes the old daemon acknowledged and no sync covered
 * are written again to the new daemon from the page cache where they are all writes of pages
 * still cached (rewrite; the requests of those files wait for it), and reported otherwise
 * (lost).
 * Errors: EINVAL (not the holder; a flag other than FUSE_REINIT_DURABLE_WRITES, or another
 * field, not 0), EAGAIN (the first daemon never answered its
 * INIT), EOVERFLOW, ENOMEM, ENOTCONN, EBUSY (another call).
 */
#define FUSE_REINIT_BEGIN 2

/*
 * WAIT for the answer to BEGIN's INIT, and for the writes BEGIN counted in rewrite to be
 * written again: 0 accepted and done; EINPROGRESS accepted, and the rewrite still going on
 * after timeout_ns (the files it writes wait for it; rewrite says how many are left); EPROTO
 * refused (it differs from the first
 * answer: reason and mismatch say how; requests keep waiting for the next BEGIN); ETIMEDOUT
 * after timeout_ns; ECANCELED if a later BEGIN superseded gen; ENOTCONN after an abort; EINTR.
 */
#define FUSE_REINIT_WAIT 3

/*
 * GIVE_UP, on the holder after a BEGIN whose INIT answer was not accepted: no daemon is to be
 * waited for. Requests waiting for one, and every new one, fail with EIO until a daemon's
 * INIT answer is accepted; later BEGINs do not end it. Errors: EALREADY (the last BEGIN's
 * INIT answer was accepted, or there was no BEGIN: BEGIN first), EINVAL (not the holder, a
 * field not 0, or a kernel of the series before GIVE_UP), ENOTCONN, EBUSY (another call).
 */
#define FUSE_REINIT_GIVE_UP 4

/*
 * BEGIN's flag: the caller states that the old daemon stored whatever it acknowledged
 * before answering (fusekeeper's --write-through), so that a FLUSH, FSYNC, FSYNCDIR or
 * SYNCFS it left unanswered is sent again to the new daemon instead of failing with EIO.
 */
#define FUSE_REINIT_DURABLE_WRITES (1u << 0)

/* fuse_reinit.reason */
#define FUSE_REINIT_R_ERROR (1u << 0)     /* no answer (the daemon died), an error, major != 7 */
#define FUSE_REINIT_R_MINOR (1u << 1)     /* another protocol minor */
#define FUSE_REINIT_R_FLAGS (1u << 2)     /* other flags: mismatch has them */
#define FUSE_REINIT_R_MAX_WRITE (1u << 3) /* another max_write */
#define FUSE_REINIT_R_TIME_GRAN (1u << 4) /* another time_gran */
#define FUSE_REINIT_R_MAX_PAGES (1u << 5) /* another max_pages */

#define FUSE_DEV_IOC_REINIT _IOWR(229, 200, struct fuse_reinit)

_Static_assert(sizeof(struct fuse_reinit) == 64, "struct fuse_reinit is 64 bytes");

#endif
