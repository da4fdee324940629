/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Consistency of the opcode table. */
#include <errno.h>
#include <string.h>

#include "proxy/opcodes.h"
#include "tap.h"

int main(void)
{
	unsigned known = 0, bad = 0;

	for (unsigned i = 0; i < OP_MAX; i++) {
		const struct op_info *op = op_get(i);

		if (!op)
			continue;
		known++;
		/* Offsets must lie inside the fixed part of the request. */
		if (op->fh_off >= 0 && (unsigned)op->fh_off + 8 > op->in_size)
			bad++, printf("# %s: fh outside the struct\n", op->name);
		if (op->node2_off >= 0 && (unsigned)op->node2_off + 8 > op->in_size)
			bad++, printf("# %s: node2 outside the struct\n", op->name);
		if (op->size_off >= 0 && (unsigned)op->size_off + 4 > op->in_size)
			bad++, printf("# %s: size outside the struct\n", op->name);
		if ((op->out == OUT_UPTO || op->out == OUT_XATTR) && op->size_off < 0)
			bad++, printf("# %s: bounded reply without a size field\n", op->name);
		if (op->replay == RP_EXISTS && (!op->ctype || !op->names))
			bad++, printf("# %s: RP_EXISTS needs a type and a name\n", op->name);
		if (op->replay == RP_TOLERATE && !op->replay_errno)
			bad++, printf("# %s: RP_TOLERATE needs an errno\n", op->name);
		if (op->noreply && op->replay != RP_DROP)
			bad++, printf("# %s: no reply but a replay rule\n", op->name);
		if ((op->effect == EFF_ENTRY || op->effect == EFF_UNLINK) && op->names < 1)
			bad++, printf("# %s: entry effect without a name\n", op->name);
		if (op->entry_names > op->names)
			bad++, printf("# %s: more entry names than names\n", op->name);
		if ((op->effect == EFF_ENTRY || op->effect == EFF_UNLINK) && !op->entry_names &&
		    op->names)
			bad++, printf("# %s: a named entry effect without an entry name\n", op->name);
		if (op->effect == EFF_RENAME && (op->names != 2 || op->node2_off < 0))
			bad++, printf("# %s: rename needs two names and a second node\n", op->name);
	}
	ok(known >= 45, "the table knows %u opcodes", known);
	ok(bad == 0, "every row is consistent (%u problems)", bad);

	ok(op_get(FUSE_LOOKUP)->effect == EFF_ENTRY, "LOOKUP replies create a lookup");
	ok(op_get(FUSE_MKDIR)->replay == RP_EXISTS, "MKDIR is settled by looking the name up");
	ok(op_get(FUSE_UNLINK)->replay == RP_TOLERATE &&
		   op_get(FUSE_UNLINK)->replay_errno == ENOENT,
	   "UNLINK tolerates ENOENT on replay");
	{
		unsigned waits = 0;

		for (unsigned i = 0; i < OP_MAX; i++)
			waits += op_table[i].name && op_table[i].may_wait;
		ok(op_get(FUSE_SETLKW)->may_wait && op_get(FUSE_POLL)->may_wait &&
			   op_get(FUSE_IOCTL)->may_wait && waits == 3,
		   "only SETLKW, POLL and IOCTL may wait on others without the daemon being hung");
	}
		ok(op_get(999) == NULL && !strcmp(op_name(999), "OPCODE_999"), "unknown opcodes");

	{
		struct fuse_read_in r = { .size = 100 };
		const struct op_info *op = op_get(FUSE_READ);

		ok(op_check_out_size(op, &r, sizeof(r), 100) == 0, "a full read fits");
		ok(op_check_out_size(op, &r, sizeof(r), 101) == -EPROTO, "an over-long read does not");
		ok(op_check_out_size(op_get(FUSE_LOOKUP), NULL, 0, 40) == -EPROTO,
		   "a short entry is rejected");
		ok(op_check_out_size(op_get(FUSE_LOOKUP), NULL, 0, sizeof(struct fuse_entry_out)) == 0,
		   "a full entry is accepted");
	}
	{
		/* Two records: "a" (24 + 1 -> 32 bytes) and "bcd" (24 + 3 -> 32 bytes). */
		uint64_t buf[16] = { 0 };
		struct fuse_dirent *d = (struct fuse_dirent *)buf;
		const struct op_info *op = op_get(FUSE_READDIR);

		d->namelen = 1;
		d->name[0] = 'a';
		d = (struct fuse_dirent *)(buf + 4);
		d->namelen = 3;
		memcpy(d->name, "bcd", 3);
		ok(op_check_records(op, buf, 64) == 0, "whole READDIR records pass");
		ok(op_check_records(op, buf, 0) == 0, "an empty listing passes");
		ok(op_check_records(op, buf, 56) == -EPROTO, "a record cut short does not");
		d->namelen = 0;
		ok(op_check_records(op, buf, 64) == -EPROTO, "nor a record without a name");
		d->namelen = 1025;
		ok(op_check_records(op, buf, 64) == -EPROTO, "nor a name over 1024 bytes");
		ok(op_check_records(op_get(FUSE_READDIRPLUS), buf, 64) == -EPROTO,
		   "READDIRPLUS records are longer");
		ok(op_check_records(op_get(FUSE_READ), buf, 56) == 0, "a READ has no records");
	}
	ok(notify_get(99) == NULL && notify_get(FUSE_NOTIFY_INVAL_INODE) != NULL,
	   "notification table knows the real codes only");
	return tap_done();
}
