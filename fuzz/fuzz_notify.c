/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_notify: what a daemon sends that answers no request of the kernel's: notifications,
 * answers to the keeper's own calls (recovery lookups, INIT after a restart), answers to the
 * keeper's orphan messages (FORGETs, clean-up RELEASEs, hidden names' removals) and answers to
 * INTERRUPTs.
 *
 * Input: one byte of world flags (WF_*), then records until the input ends (at most 64):
 *   kind byte, modulo 5:
 *     0  a notification: code (byte), a byte whose bit 0 puts the world's daemon node IDs in
 *        the row's node fields and bit 1 makes a name length fit the body, node choices (two
 *        bytes), 16-bit body length, body
 *     1  an answer to one of the keeper's calls (byte: which of 3 calls, the abandoned one or
 *        an unknown unique), then error and body as below
 *     2  an answer to an orphan message (byte: which number; one is a hidden name's removal)
 *     3  an answer to an INTERRUPT of one of the requests in flight
 *     4  a raw message: 16-bit length, then the bytes as the daemon sends them
 *   error (byte: below 0x80 zero, else four raw bytes), 16-bit body length, body
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "world.h"

static const uint64_t dids[8] = {
	FUSE_ROOT_ID, DID_DIR, DID_FILE, DID_FILE2, DID_LINK, DID_CREATED, 99, 0,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	world_init();
	return 0;
}

static void reply_to(struct world *w, struct input *in, uint64_t unique)
{
	static char body[64 << 10];
	uint8_t e = in_u8(in);
	int32_t error = e < 0x80 ? 0 : (int32_t)in_u32(in);
	size_t len = in_u16(in) % sizeof(body);

	in_bytes(in, body, len);
	world_reply(w, unique, error, body, len);
}

static void notification(struct world *w, struct input *in)
{
	static char body[64 << 10];
	int code = in_u8(in) % NOTIFY_MAX;
	uint8_t how = in_u8(in);
	uint64_t node[2] = { dids[in_u8(in) % 8], dids[in_u8(in) % 8] };
	size_t len = in_u16(in) % sizeof(body);
	const struct notify_info *ni = notify_get(code);

	in_bytes(in, body, len);
	if (ni && len >= ni->size) {
		for (int i = 0; i < 2 && (how & 1); i++)
			if (ni->node_off[i] >= 0)
				memcpy(body + ni->node_off[i], &node[i], sizeof(node[i]));
		if (ni->namelen_off >= 0 && (how & 2) && len > ni->size) {
			uint32_t namelen = len - ni->size - 1;

			memcpy(body + ni->namelen_off, &namelen, sizeof(namelen));
			body[len - 1] = '\0';
		}
	}
	world_reply(w, 0, code, body, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	static struct world w;
	struct proxy *p = &w.p;
	struct call calls[3] = { 0 };
	uint64_t abandoned, grave_unique;
	struct grave *g;

	if (world_setup(&w, in_u8(&in), NULL, 0, 0, NULL, 0) < 0)
		abort();
	/* Calls of the keeper's own, as call_start() numbers them, one given up on. */
	for (int i = 0; i < 3; i++) {
		calls[i].unique = CALL_BIT | (p->next_call++ << 1);
		idmap_put(&p->calls, calls[i].unique, &calls[i]);
	}
	abandoned = CALL_BIT | (p->next_call++ << 1);
	idmap_put(&p->abandoned, abandoned, (void *)1);
	/*
	 * A hidden name in the root whose removal is in flight: its LOOKUP, or (as the input's
	 * first byte says) the UNLINK made after one (an orphan request either way).
	 */
	grave_unique = CALL_BIT | ORPHAN_BIT | (p->next_call++ << 1);
	g = calloc(1, sizeof(*g));
	if (!g)
		abort();
	g->parent = FUSE_ROOT_ID;
	g->unique = grave_unique;
	g->did = (in_u8(&in) & 1) ? 0x5eed : 0;
	memcpy(g->name, HIDE_PREFIX "00000000000000c3", HIDE_NAME_SIZE);
	node_pin(&p->nodes, FUSE_ROOT_ID);
	p->hide.graves = g;
	/* Requests in flight for INTERRUPT answers to name. */
	for (int i = 0; i < 2; i++) {
		struct fuse_getattr_in ga = { 0 };

		world_request(&w, FUSE_GETATTR, w.kids[i + 1], &ga, sizeof(ga));
	}

	for (int rec = 0; rec < 64 && in.n && !w.broken; rec++) {
		uint8_t which;

		switch (in_u8(&in) % 5) {
		case 0:
			notification(&w, &in);
			break;
		case 1:
			which = in_u8(&in) % 5;
			reply_to(&w, &in, which < 3 ? calls[which].unique :
					  which == 3 ? abandoned : CALL_BIT | 0x7770);
			break;
		case 2:
			which = in_u8(&in);
			reply_to(&w, &in, which & 1 ? grave_unique :
					  CALL_BIT | ORPHAN_BIT | ((uint64_t)which << 1));
			break;
		case 3:
			reply_to(&w, &in, world_pick_request(&w, in_u8(&in)) | FK_INT_REQ_BIT);
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
	for (int i = 0; i < 3; i++)
		msg_put(calls[i].reply);
	world_teardown(&w);
	return 0;
}
