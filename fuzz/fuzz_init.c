/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_init: INIT answers. The first daemon's answer to the kernel's INIT goes through the relay
 * (finish_reply(), check_first_init()); a later daemon's answer to the saved INIT comes as the
 * answer to a keeper's call (d2k_call_reply()) and is compared with what the kernel agreed
 * (check_restart_init()). Whatever the daemons say, the kernel must never be told it may send
 * more than the keeper's buffers hold.
 *
 * Input: a mode byte (bit 0: a restart follows; bit 1: the first daemon's answer is the
 * typical one, else from the input), the kernel's INIT (length byte, then that many bytes up to
 * a fuse_init_in; major is always 7, as the kernel sends), then each answer the mode asks for:
 * error byte (below 0x80 zero, else four raw bytes), length byte (up to a fuse_init_out and a
 * little more), bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/init.h"
#include "util.h"
#include "world.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	world_init();
	return 0;
}

struct answer {
	int32_t error;
	size_t len;
	char body[sizeof(struct fuse_init_out) + 16];
};

static void read_answer(struct input *in, struct answer *a)
{
	uint8_t e = in_u8(in);

	a->error = e < 0x80 ? 0 : (int32_t)in_u32(in);
	a->len = in_u8(in) % sizeof(a->body);
	in_bytes(in, a->body, a->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	static struct world w;
	struct fuse_init_in kin;
	struct answer first = { 0 }, later = { 0 };
	uint8_t mode = in_u8(&in);
	size_t kin_len = in_u8(&in) % (sizeof(kin) + 1);
	struct proxy *p = &w.p;
	int r;

	in_bytes(&in, &kin, sizeof(kin));
	kin.major = FUSE_KERNEL_VERSION;
	if (!(mode & 2))
		read_answer(&in, &first);
	if (mode & 1)
		read_answer(&in, &later);

	if (mode & 2)
		r = world_setup(&w, 0, &kin, kin_len, 0, NULL, 0);
	else
		r = world_setup(&w, 0, &kin, kin_len, first.error, first.body, first.len);
	if (r == 0) {
		uint32_t max_payload = MIN(p->buf_size, p->max_msg) - 4096;

		if (p->init_out.max_write > max_payload)
			abort(); /* The kernel would send writes the keeper cannot take. */
		if ((p->init_flags & FUSE_MAX_PAGES) &&
		    (uint64_t)p->init_out.max_pages * p->page_size > max_payload)
			abort();
	}
	if (r == 0 && (mode & 1)) {
		struct call c = { 0 };

		/* The new daemon's INIT, as recover_init() sends it through call_one(). */
		c.unique = CALL_BIT | (p->next_call++ << 1);
		idmap_put(&p->calls, c.unique, &c);
		world_reply(&w, c.unique, later.error, later.body, later.error ? 0 : later.len);
		if (c.done && c.reply)
			check_restart_init(p, c.reply);
		else
			msg_put(c.reply);
	}
	world_teardown(&w);
	return 0;
}
