/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_dirents: READDIR and READDIRPLUS answers, through everything a listing meets on its way
 * to the kernel: the hidden names' filter (and the request sent again past them), the lookups
 * READDIRPLUS hands out, inode numbers shown as the kernel first saw them.
 *
 * The records are built from a compact script, so that most listings are well formed and the
 * fuzzer spends its time on what they say; a raw tail and raw name lengths break them.
 *
 * Input: one byte of world flags (WF_*), then rounds until the input ends (at most 16):
 *   round byte: bit 0 READDIRPLUS, bit 1 the root's handle (else "d"'s), bit 2 the request's
 *     size is the next 16-bit value (else what the listing needs), bit 3 a raw tail follows
 *     the records, bit 4 the answer is an error (next byte); then the request's offset (byte)
 *   the records, up to 32, each opened by a byte whose bit 7 ends the list:
 *     bits 0-1  the name: 0 bytes from the input (length byte), 1 a hidden name, 2 ".", 3 ".."
 *     bit 2     node ID 0 (no lookup handed out)
 *     bit 3     the name length is a raw 16-bit value (a malformed record)
 *     bit 4     a node ID and inode number of the world's (next byte), else 8 bytes each
 *     bit 5     a type byte follows (else a regular file)
 *   then the record's offset (byte)
 *   the tail: 16-bit length, bytes
 * A request the keeper sent again past hidden names is answered by the next round.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "world.h"

static const uint64_t dids[8] = {
	FUSE_ROOT_ID, DID_DIR, DID_FILE, DID_FILE2, DID_LINK, DID_CREATED, 15, 16,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	world_init();
	return 0;
}

/* Appends one record to @buf (at @len, room for @cap); returns the new length. */
static size_t add_record(struct input *in, uint8_t how, bool plus, char *buf, size_t len,
			 size_t cap)
{
	char name[256];
	uint32_t namelen;
	uint64_t nodeid, ino;
	uint32_t type = S_IFREG;
	size_t rec, head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
	struct fuse_direntplus dp;

	switch (how & 3) {
	case 0:
		namelen = in_u8(in) % 255 + 1;
		in_bytes(in, name, namelen);
		break;
	case 1:
		namelen = HIDE_NAME_SIZE - 1;
		memcpy(name, HIDE_PREFIX, HIDE_PREFIX_LEN);
		for (size_t i = HIDE_PREFIX_LEN; i < namelen; i++)
			name[i] = "0123456789abcdef"[in_u8(in) & 15];
		break;
	case 2:
		namelen = 1;
		name[0] = '.';
		break;
	default:
		namelen = 2;
		name[0] = name[1] = '.';
		break;
	}
	if (how & 16) {
		uint8_t sel = in_u8(in);

		nodeid = dids[sel % 8];
		ino = 1000 + nodeid + (sel >> 7);
	} else {
		nodeid = in_u64(in);
		ino = in_u64(in);
	}
	if (how & 4)
		nodeid = 0;
	if (how & 32)
		type = (uint32_t)in_u8(in) << 12;
	memset(&dp, 0, sizeof(dp));
	dp.entry_out.nodeid = nodeid;
	dp.entry_out.generation = 1;
	dp.entry_out.attr.ino = ino;
	dp.entry_out.attr.mode = type | 0644;
	dp.entry_out.attr.nlink = 1;
	dp.dirent.ino = ino;
	dp.dirent.off = in_u8(in);
	dp.dirent.type = type >> 12;
	dp.dirent.namelen = how & 8 ? in_u16(in) : namelen;
	rec = FUSE_DIRENT_ALIGN(head + namelen);
	if (rec > cap - len)
		return len;
	memset(buf + len, 0, rec);
	if (plus)
		memcpy(buf + len, &dp, head);
	else
		memcpy(buf + len, &dp.dirent, head);
	memcpy(buf + len + head, name, namelen);
	return len + rec;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	static struct world w;
	static char buf[64 << 10];
	uint64_t again = 0;

	if (world_setup(&w, in_u8(&in), NULL, 0, 0, NULL, 0) < 0)
		abort();
	for (int round = 0; round < 16 && in.n && !w.broken; round++) {
		uint8_t how = in_u8(&in);
		bool plus = how & 1;
		struct fuse_read_in rin = {
			.fh = w.kfhs[how & 2 ? 3 : 2],
			.offset = in_u8(&in),
			.size = sizeof(buf),
		};
		uint16_t want = how & 4 ? in_u16(&in) : 0;
		int32_t error = how & 16 ? -(int32_t)(in_u8(&in) % 140) : 0;
		size_t len = 0;
		uint64_t unique;

		for (int i = 0; i < 32 && in.n; i++) {
			uint8_t rhow = in_u8(&in);

			if (rhow & 128)
				break;
			len = add_record(&in, rhow, plus, buf, len, sizeof(buf));
		}
		if (how & 8) {
			size_t tail = in_u16(&in) % 512;

			tail = tail < sizeof(buf) - len ? tail : sizeof(buf) - len;
			in_bytes(&in, buf + len, tail);
			len += tail;
		}
		/* The request the keeper sent again past hidden names, or a new one. */
		unique = again && idmap_get(&w.p.inflight, again) ? again : 0;
		if (!unique) {
			rin.size = how & 4 ? want : len;
			unique = world_request(&w, plus ? FUSE_READDIRPLUS : FUSE_READDIR,
					       w.kids[how & 2 ? 0 : 1], &rin, sizeof(rin));
		}
		again = unique;
		world_reply(&w, unique, error, buf, error ? 0 : len);
	}
	world_teardown(&w);
	return 0;
}
