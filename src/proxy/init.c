/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE_INIT in proxy mode: what the first daemon agrees with the kernel, through the keeper (the
 * flags it cannot relay masked, max_write and max_pages clamped to its buffers), and whether a
 * later daemon agrees the same, since the kernel sends INIT only once.
 */
#include "init.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "calls.h"
#include "log.h"
#include "util.h"

int check_first_init(struct proxy *p, struct fuse_init_out *out, size_t len)
{
	struct fuse_init_in *in = (struct fuse_init_in *)(p->init_req->data +
							  sizeof(struct fuse_in_header));
	/* Headers of a WRITE or a READ reply fit in 4 KiB; the rest is payload. */
	uint32_t max_payload = MIN(p->buf_size, p->max_msg) - 4096;

	if (out->major != FUSE_KERNEL_VERSION) {
		log_error("The daemon speaks FUSE %u.%u; fusekeeper relays only major version %u",
			  out->major, out->minor, FUSE_KERNEL_VERSION);
		return -EPROTO;
	}
	p->init_minor = MIN(in->minor, out->minor);
	if (p->init_minor < FK_MIN_MINOR) {
		log_error("The daemon speaks FUSE 7.%u; fusekeeper needs 7.%u or later", out->minor,
			  FK_MIN_MINOR);
		return -EPROTO;
	}
	/* The keeper's buffers bound what the kernel may send; tell the kernel so. */
	if (len >= offsetof(struct fuse_init_out, time_gran) && out->max_write > max_payload)
		out->max_write = max_payload;
	if (len >= offsetof(struct fuse_init_out, map_alignment) && (out->flags & FUSE_MAX_PAGES) &&
	    out->max_pages > max_payload / p->page_size)
		out->max_pages = max_payload / p->page_size;
	out->flags &= ~(uint32_t)INIT_FLAGS_MASKED;
	if (len >= offsetof(struct fuse_init_out, unused))
		out->flags2 &= ~(uint32_t)(INIT_FLAGS_MASKED >> 32);
	memset(&p->init_out, 0, sizeof(p->init_out));
	memcpy(&p->init_out, out, MIN(len, sizeof(p->init_out)));
	p->init_flags = init_in_flags(in) & init_out_flags(&p->init_out);
	p->init_done = true;
	efd_signal(p->call_efd);
	log_debug("FUSE 7.%u agreed: flags %#" PRIx64 ", max_write %u", p->init_minor,
		  p->init_flags, p->init_out.max_write);
	return 0;
}

int check_restart_init(struct proxy *p, struct msg *reply)
{
	struct fuse_init_in *in = (struct fuse_init_in *)(p->init_req->data +
							  sizeof(struct fuse_in_header));
	struct fuse_init_out o = { 0 };
	const void *body;
	char diff[256] = "";
	uint64_t flags;
	size_t len = 0, n = 0;

	if (reply_error(reply)) {
		log_error("The new daemon refused FUSE_INIT: %s", strerror(-reply_error(reply)));
		msg_put(reply);
		return -EPROTO;
	}
	body = reply_body(reply, &len);
	memcpy(&o, body, MIN(len, sizeof(o)));
	msg_put(reply);
	if (len < FUSE_COMPAT_22_INIT_OUT_SIZE || o.major != FUSE_KERNEL_VERSION) {
		log_error("The new daemon's FUSE_INIT answer is malformed (%zu bytes, major %u)", len,
			  o.major);
		return -EPROTO;
	}
	flags = init_in_flags(in) & init_out_flags(&o);
	if (MIN(in->minor, o.minor) != p->init_minor)
		n += snprintf(diff + n, sizeof(diff) - n, " minor 7.%u instead of 7.%u;",
			      MIN(in->minor, o.minor), p->init_minor);
	if (flags != p->init_flags)
		n += snprintf(diff + n, sizeof(diff) - n,
			      " flags lost %#" PRIx64 ", gained %#" PRIx64 ";",
			      p->init_flags & ~flags, flags & ~p->init_flags);
	if (o.max_write < p->init_out.max_write)
		n += snprintf(diff + n, sizeof(diff) - n, " max_write %u < %u;", o.max_write,
			      p->init_out.max_write);
	if ((p->init_flags & FUSE_MAX_PAGES) && o.max_pages < p->init_out.max_pages)
		n += snprintf(diff + n, sizeof(diff) - n, " max_pages %u < %u;", o.max_pages,
			      p->init_out.max_pages);
	if (n) {
		log_error("The new daemon's FUSE_INIT answer differs from what the kernel agreed "
			  "to:%s it cannot take over this mount", diff);
		return -EPROTO;
	}
	return 0;
}
