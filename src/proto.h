/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FUSE protocol as fusekeeper speaks it: the system's <linux/fuse.h> (7.38 on Debian 12) plus
 * the few later constants the keeper must know about, written from the protocol's documentation.
 */
#pragma once

#include <linux/fuse.h>
#include <stdint.h>

/* Opcodes added after 7.38. */
#ifndef FUSE_STATX
#define FUSE_STATX 52 /* 7.39 */
#endif
#define FK_FUSE_COPY_FILE_RANGE_64 53 /* 7.45 */

/* Notification codes added after 7.38. */
#define FK_NOTIFY_RESEND 7    /* 7.40: kernel re-queues requests in processing */
#define FK_NOTIFY_INC_EPOCH 8 /* 7.44: invalidate all cached dentries */
#define FK_NOTIFY_PRUNE 9     /* 7.45: ask the kernel to forget unused inodes */

/* INIT flags beyond 7.38 that the keeper must not let a daemon negotiate (see init.c). */
#define FK_FUSE_PASSTHROUGH (1ULL << 37)     /* 7.40: backing fds registered on /dev/fuse */
#define FK_FUSE_HAS_RESEND (1ULL << 39)      /* 7.40: FUSE_NOTIFY_RESEND and unique bit 63 */
#define FK_FUSE_OVER_IO_URING (1ULL << 41)   /* 7.42: requests over io_uring on /dev/fuse */
#define FK_FUSE_REQUEST_TIMEOUT (1ULL << 42) /* 7.43: kernel aborts on slow answers */

/* Bit of fuse_in_header.unique the kernel sets on requests it sends again (7.40). */
#define FK_UNIQUE_RESEND (1ULL << 63)
/* Bit the kernel sets in the unique of a FUSE_INTERRUPT request (7.23+). */
#define FK_INT_REQ_BIT 1ULL

/* Largest errno the kernel accepts in fuse_out_header.error (it rejects error <= -512). */
#define FK_MAX_ERRNO 511

/* Where the inode number sits in a STATX reply (7.39): fuse_statx_out is attr_valid (8),
 * attr_valid_nsec (4), flags (4), spare[2] (16), then fuse_statx: mask, blksize (4 each),
 * attributes (8), nlink, uid, gid (4 each), mode and a spare (2 each), ino. */
#define FK_STATX_OUT_INO_OFF 64
/* ...and its link count: fuse_statx.nlink follows mask, blksize and attributes (16 bytes). */
#define FK_STATX_OUT_NLINK_OFF 48

/* Protocol minor versions the keeper can parse; older daemons use compat struct sizes. */
#define FK_MIN_MINOR 12

/* INIT flags as one 64-bit set: flags | flags2 << 32 (flags2 exists since 7.36). */
static inline uint64_t init_in_flags(const struct fuse_init_in *in)
{
	uint64_t f = in->flags;

	if (in->flags & FUSE_INIT_EXT)
		f |= (uint64_t)in->flags2 << 32;
	return f;
}

static inline uint64_t init_out_flags(const struct fuse_init_out *out)
{
	uint64_t f = out->flags;

	if (out->flags & FUSE_INIT_EXT)
		f |= (uint64_t)out->flags2 << 32;
	return f;
}
