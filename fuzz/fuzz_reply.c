/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_reply: the daemon's replies to the kernel's requests, for every opcode of the table that
 * is answered (all but INIT, which fuzz_init covers, and the ones without a reply).
 *
 * Input: one byte of world flags (WF_*), then records until the input ends (at most 64):
 *   action byte, whose low two bits say:
 *     0  make a request and answer it at once
 *     1  make a request and leave it in flight
 *     2  answer the request made k-th (next byte), in flight or not
 *     3  a raw message: 16-bit length, then the bytes as the daemon sends them
 *   a request: opcode (byte, index into the answered rows of the table), node (byte), handle,
 *     second node and second handle (bytes), then the fixed part of its body (the row's
 *     in_size bytes; node IDs, handles and size fields are then set to the world's), then for
 *     WRITE a data length (byte, x16), and a byte per name the row has
 *   a reply: error (byte: below 0x80 success, else a chosen errno or four raw bytes), body
 *     size mode (byte: even = the size the table wants, odd = the next 16-bit value), body
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "world.h"

static uint32_t answered_ops[OP_MAX];
static unsigned nanswered;

static const char *const names[] = {
	"a", "f", "g", "d", "h", "c", "s", "x", ".", "..", HIDE_PREFIX "00000000000000a1",
	HIDE_PREFIX "00000000000000b2",
};

static const int errors[] = {
	-ENOENT, -EIO, -EINVAL, -EEXIST, -ENOSYS, -EAGAIN, -ENOLCK, -ESTALE, -ENODATA, -ERANGE,
	-EINTR, -ENOTEMPTY, -EXDEV, -EPERM, -ENOTSUP,
};

static void put64(void *b, int off, uint64_t v)
{
	memcpy((char *)b + off, &v, sizeof(v));
}

static void put32(void *b, int off, uint32_t v)
{
	memcpy((char *)b + off, &v, sizeof(v));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	world_init();
	/* The table decides what is fuzzed: a new row is fuzzed without a change here. */
	for (uint32_t o = 0; o < OP_MAX; o++) {
		const struct op_info *op = op_get(o);

		if (op && !op->noreply && op->effect != EFF_INIT)
			answered_ops[nanswered++] = o;
	}
	return 0;
}

/* Builds a request from the input and puts it in flight. Returns its unique, or 0. */
static uint64_t new_request(struct world *w, struct input *in)
{
	static char body[64 << 10];
	uint32_t opcode = answered_ops[in_u8(in) % nanswered];
	const struct op_info *op = op_get(opcode);
	uint64_t node = w->kids[in_u8(in) % 8];
	uint64_t fh = w->kfhs[in_u8(in) % 4];
	uint64_t node2 = w->kids[in_u8(in) % 8];
	uint64_t fh2 = w->kfhs[in_u8(in) % 4];
	size_t len = op->in_size;
	uint32_t size;

	in_bytes(in, body, op->in_size);
	/* What the kernel guarantees: IDs and handles it holds, bounded sizes. */
	if (op->fh_off >= 0)
		put64(body, op->fh_off, fh);
	if (op->node2_off >= 0)
		put64(body, op->node2_off, node2);
	if (op->fh2_off >= 0)
		put64(body, op->fh2_off, fh2);
	if (op->size_off >= 0) {
		memcpy(&size, body + op->size_off, sizeof(size));
		put32(body, op->size_off, size % (1 << 17));
	}
	if (opcode == FUSE_WRITE) {
		struct fuse_write_in *wi = (struct fuse_write_in *)body;

		wi->size = in_u8(in) * 16;
		memset(body + len, 'w', wi->size);
		len += wi->size;
	}
	for (unsigned i = 0; i < op->names; i++) {
		const char *name = names[in_u8(in) % (sizeof(names) / sizeof(names[0]))];

		memcpy(body + len, name, strlen(name) + 1);
		len += strlen(name) + 1;
	}
	return world_request(w, opcode, op->node ? node : 0, body, len);
}

/* Reads a reply for @unique and delivers it. */
static void make_reply(struct world *w, struct input *in, uint64_t unique)
{
	struct msg *req = idmap_get(&w->p.inflight, unique);
	static char out[64 << 10];
	uint8_t e = in_u8(in), mode = in_u8(in);
	int32_t error = 0;
	size_t len;

	if (e >= 0x80 && e - 0x80 < (int)(sizeof(errors) / sizeof(errors[0])))
		error = errors[e - 0x80];
	else if (e >= 0x80)
		error = (int32_t)in_u32(in);
	len = in_u16(in);
	if (!(mode & 1) && !error && req)
		len = world_reply_size(op_get(msg_in(req)->opcode),
				       req->data + sizeof(struct fuse_in_header),
				       req->len - sizeof(struct fuse_in_header), len);
	else if (!(mode & 1) && error) {
		len = 0;
	}
	len = len < sizeof(out) ? len : sizeof(out);
	in_bytes(in, out, len);
	world_reply(w, unique, error, out, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	static struct world w;

	if (world_setup(&w, in_u8(&in), NULL, 0, 0, NULL, 0) < 0)
		abort(); /* A typical daemon's INIT is always taken. */
	for (int rec = 0; rec < 64 && in.n && !w.broken; rec++) {
		uint8_t action = in_u8(&in);
		uint64_t unique;

		switch (action & 3) {
		case 0:
		case 1:
			unique = new_request(&w, &in);
			if ((action & 3) == 0)
				make_reply(&w, &in, unique);
			break;
		case 2:
			make_reply(&w, &in, world_pick_request(&w, in_u8(&in)));
			break;
		default: {
			static char raw[64 << 10];
			size_t len = in_u16(&in);

			len = len < in.n ? len : in.n;
			in_bytes(&in, raw, len);
			world_deliver(&w, raw, len);
			break;
		}
		}
	}
	world_teardown(&w);
	return 0;
}
