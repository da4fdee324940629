/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "opcodes.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define OFF(type, field) ((int16_t)offsetof(struct type, field))
#define NONE .fh_off = -1, .node2_off = -1, .fh2_off = -1, .size_off = -1
#define FH(type) .fh_off = OFF(type, fh), .node2_off = -1, .fh2_off = -1, .size_off = -1
#define FH_UPTO(type) .fh_off = OFF(type, fh), .node2_off = -1, .fh2_off = -1,                   \
		      .size_off = OFF(type, size), .out = OUT_UPTO
#define FIXED(type) .out = OUT_FIXED, .out_size = sizeof(struct type)

/* Opcode facts from the FUSE protocol (include/uapi/linux/fuse.h), minor 12 and later. */
const struct op_info op_table[OP_MAX] = {
	[FUSE_LOOKUP] = { "LOOKUP", 0, 1, 1, 0, 0, NONE, FIXED(fuse_entry_out),
			  .effect = EFF_ENTRY,
			.entry_names = 1 },
	[FUSE_FORGET] = { "FORGET", sizeof(struct fuse_forget_in), 0, 1, 1, 0, NONE,
			  .replay = RP_DROP },
	[FUSE_GETATTR] = { "GETATTR", sizeof(struct fuse_getattr_in), 0, 1, 0, FH_GETATTR,
			   FH(fuse_getattr_in), FIXED(fuse_attr_out), .ino_out = INO_OUT_ATTR },
	[FUSE_SETATTR] = { "SETATTR", sizeof(struct fuse_setattr_in), 0, 1, 0, FH_SETATTR,
			   FH(fuse_setattr_in), FIXED(fuse_attr_out), .ino_out = INO_OUT_ATTR,
			   .dchange = DC_SETATTR, .ctime_of = CTO_NODE, .stamp = 1 },
	[FUSE_READLINK] = { "READLINK", 0, 0, 1, 0, 0, NONE, .out = OUT_ANY },
	[FUSE_SYMLINK] = { "SYMLINK", 0, 2, 1, 0, 0, NONE, FIXED(fuse_entry_out),
			   .effect = EFF_ENTRY, .replay = RP_EXISTS, .ctype = CT_LNK, .stamp = 1,
			.entry_names = 1 },
	[FUSE_MKNOD] = { "MKNOD", sizeof(struct fuse_mknod_in), 1, 1, 0, 0, NONE,
			 FIXED(fuse_entry_out), .effect = EFF_ENTRY, .replay = RP_EXISTS,
			 .ctype = CT_MODE, .stamp = 1,
			.entry_names = 1 },
	[FUSE_MKDIR] = { "MKDIR", sizeof(struct fuse_mkdir_in), 1, 1, 0, 0, NONE,
			 FIXED(fuse_entry_out), .effect = EFF_ENTRY, .replay = RP_EXISTS,
			 .ctype = CT_DIR, .stamp = 1,
			.entry_names = 1 },
	[FUSE_UNLINK] = { "UNLINK", 0, 1, 1, 0, 0, NONE, .effect = EFF_UNLINK,
			  .replay = RP_TOLERATE, .replay_errno = ENOENT, .stamp = 1,
			.entry_names = 1 },
	[FUSE_RMDIR] = { "RMDIR", 0, 1, 1, 0, 0, NONE, .effect = EFF_UNLINK,
			 .replay = RP_TOLERATE, .replay_errno = ENOENT, .stamp = 1,
			.entry_names = 1 },
	[FUSE_RENAME] = { "RENAME", sizeof(struct fuse_rename_in), 2, 1, 0, FH_NEVER, .fh_off = -1,
			  .node2_off = OFF(fuse_rename_in, newdir), .fh2_off = -1, .size_off = -1,
			  .effect = EFF_RENAME, .replay = RP_RENAME, .stamp = 1,
			.entry_names = 2 },
	[FUSE_LINK] = { "LINK", sizeof(struct fuse_link_in), 1, 1, 0, FH_NEVER, .fh_off = -1,
			.node2_off = OFF(fuse_link_in, oldnodeid), .fh2_off = -1, .size_off = -1,
			FIXED(fuse_entry_out), .effect = EFF_ENTRY, .replay = RP_EXISTS,
			.ctype = CT_NODE2, .stamp = 1, .ctime_of = CTO_NODE2,
			.entry_names = 1 },
	[FUSE_OPEN] = { "OPEN", sizeof(struct fuse_open_in), 0, 1, 0, 0, NONE,
			FIXED(fuse_open_out), .effect = EFF_OPEN, .stamp = 1 },
	[FUSE_READ] = { "READ", sizeof(struct fuse_read_in), 0, 1, 0, 0, FH_UPTO(fuse_read_in),
			.positioned = 1 },
	[FUSE_WRITE] = { "WRITE", sizeof(struct fuse_write_in), 0, 1, 0, 0, FH(fuse_write_in),
			 FIXED(fuse_write_out), .replay = RP_WRITE, .wwin = WW_WRITE,
			 .dchange = DC_NODE, .ctime_of = CTO_NODE },
	[FUSE_STATFS] = { "STATFS", 0, 0, 1, 0, 0, NONE, FIXED(fuse_statfs_out) },
	[FUSE_RELEASE] = { "RELEASE", sizeof(struct fuse_release_in), 0, 1, 0, 0,
			   FH(fuse_release_in), .effect = EFF_RELEASE, .lost_ok = 1 },
	[FUSE_FSYNC] = { "FSYNC", sizeof(struct fuse_fsync_in), 0, 1, 0, 0, FH(fuse_fsync_in),
			 .wwin = WW_SYNC },
	[FUSE_SETXATTR] = { "SETXATTR", 8, 0, 1, 0, 0, NONE, .replay = RP_TOLERATE,
			    .replay_errno = EEXIST, .stamp = 1,
			    .ctime_of = CTO_NODE },
	[FUSE_GETXATTR] = { "GETXATTR", sizeof(struct fuse_getxattr_in), 0, 1, 0, FH_NEVER,
			    .fh_off = -1, .node2_off = -1, .fh2_off = -1,
			    .size_off = OFF(fuse_getxattr_in, size), .out = OUT_XATTR },
	[FUSE_LISTXATTR] = { "LISTXATTR", sizeof(struct fuse_getxattr_in), 0, 1, 0, FH_NEVER,
			     .fh_off = -1, .node2_off = -1, .fh2_off = -1,
			     .size_off = OFF(fuse_getxattr_in, size), .out = OUT_XATTR },
	[FUSE_REMOVEXATTR] = { "REMOVEXATTR", 0, 0, 1, 0, 0, NONE, .replay = RP_TOLERATE,
			       .replay_errno = ENODATA, .stamp = 1,
			       .ctime_of = CTO_NODE },
	[FUSE_FLUSH] = { "FLUSH", sizeof(struct fuse_flush_in), 0, 1, 0, 0, FH(fuse_flush_in),
			 .lost_ok = 1, .wwin = WW_SYNC, .lock = LK_FLUSH },
	[FUSE_INIT] = { "INIT", 8, 0, 0, 0, 0, NONE, .out = OUT_INIT, .effect = EFF_INIT },
	[FUSE_OPENDIR] = { "OPENDIR", sizeof(struct fuse_open_in), 0, 1, 0, 0, NONE,
			   FIXED(fuse_open_out), .effect = EFF_OPENDIR },
	[FUSE_READDIR] = { "READDIR", sizeof(struct fuse_read_in), 0, 1, 0, 0,
			   FH_UPTO(fuse_read_in), .positioned = 1, .ino_out = INO_OUT_DIRENT,
			   .records = REC_DIRENT },
	[FUSE_RELEASEDIR] = { "RELEASEDIR", sizeof(struct fuse_release_in), 0, 1, 0, 0,
			      FH(fuse_release_in), .effect = EFF_RELEASE, .lost_ok = 1 },
	[FUSE_FSYNCDIR] = { "FSYNCDIR", sizeof(struct fuse_fsync_in), 0, 1, 0, 0,
			    FH(fuse_fsync_in) },
	[FUSE_GETLK] = { "GETLK", sizeof(struct fuse_lk_in), 0, 1, 0, 0, FH(fuse_lk_in),
			 FIXED(fuse_lk_out), .lock = LK_GET },
	[FUSE_SETLK] = { "SETLK", sizeof(struct fuse_lk_in), 0, 1, 0, 0, FH(fuse_lk_in),
			 .lock = LK_SET },
	[FUSE_SETLKW] = { "SETLKW", sizeof(struct fuse_lk_in), 0, 1, 0, 0, FH(fuse_lk_in),
			  .lock = LK_SET, .may_wait = 1 },
	[FUSE_ACCESS] = { "ACCESS", sizeof(struct fuse_access_in), 0, 1, 0, 0, NONE },
	[FUSE_CREATE] = { "CREATE", sizeof(struct fuse_create_in), 1, 1, 0, 0, NONE, .out = OUT_FIXED,
			  .out_size = sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out),
			  .effect = EFF_CREATE, .replay = RP_EXISTS, .ctype = CT_REG, .stamp = 1,
			.entry_names = 1 },
	[FUSE_INTERRUPT] = { "INTERRUPT", sizeof(struct fuse_interrupt_in), 0, 0, 1, 0, NONE,
			     .replay = RP_DROP },
	[FUSE_BMAP] = { "BMAP", sizeof(struct fuse_bmap_in), 0, 1, 0, 0, NONE,
			FIXED(fuse_bmap_out) },
	[FUSE_DESTROY] = { "DESTROY", 0, 0, 0, 0, 0, NONE },
	[FUSE_IOCTL] = { "IOCTL", sizeof(struct fuse_ioctl_in), 0, 1, 0, 0, FH(fuse_ioctl_in),
			 .out = OUT_ANY, .replay = RP_FAIL, .may_wait = 1 },
	[FUSE_POLL] = { "POLL", sizeof(struct fuse_poll_in), 0, 1, 0, 0, FH(fuse_poll_in),
			FIXED(fuse_poll_out), .may_wait = 1 },
	[FUSE_NOTIFY_REPLY] = { "NOTIFY_REPLY", 0, 0, 1, 1, 0, NONE, .replay = RP_DROP },
	[FUSE_BATCH_FORGET] = { "BATCH_FORGET", sizeof(struct fuse_batch_forget_in), 0, 0, 1, 0,
				NONE, .replay = RP_DROP },
	[FUSE_FALLOCATE] = { "FALLOCATE", sizeof(struct fuse_fallocate_in), 0, 1, 0, 0,
			     FH(fuse_fallocate_in), .dchange = DC_NODE, .ctime_of = CTO_NODE,
			     .stamp = 1 },
	[FUSE_READDIRPLUS] = { "READDIRPLUS", sizeof(struct fuse_read_in), 0, 1, 0, 0,
			       FH_UPTO(fuse_read_in), .effect = EFF_DIRPLUS, .positioned = 1,
			       .ino_out = INO_OUT_DIRPLUS, .records = REC_DIRENTPLUS },
	[FUSE_RENAME2] = { "RENAME2", sizeof(struct fuse_rename2_in), 2, 1, 0, FH_NEVER,
			   .fh_off = -1, .node2_off = OFF(fuse_rename2_in, newdir), .fh2_off = -1,
			   .size_off = -1, .effect = EFF_RENAME, .replay = RP_RENAME, .stamp = 1,
			.entry_names = 2 },
	[FUSE_LSEEK] = { "LSEEK", sizeof(struct fuse_lseek_in), 0, 1, 0, 0, FH(fuse_lseek_in),
			 FIXED(fuse_lseek_out) },
	[FUSE_COPY_FILE_RANGE] = { "COPY_FILE_RANGE", sizeof(struct fuse_copy_file_range_in), 0, 1,
				   0, 0, .fh_off = OFF(fuse_copy_file_range_in, fh_in),
				   .node2_off = OFF(fuse_copy_file_range_in, nodeid_out),
				   .fh2_off = OFF(fuse_copy_file_range_in, fh_out), .size_off = -1,
				   FIXED(fuse_write_out), .dchange = DC_NODE2,
				   .ctime_of = CTO_NODE2 },
	[FUSE_SYNCFS] = { "SYNCFS", sizeof(struct fuse_syncfs_in), 0, 1, 0, 0, NONE },
	[FUSE_TMPFILE] = { "TMPFILE", sizeof(struct fuse_create_in), 0, 1, 0, 0, NONE,
			   .out = OUT_FIXED,
			   .out_size = sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out),
			   .effect = EFF_CREATE },
	/* fuse_statx_in (7.39) starts like fuse_getattr_in: getattr_flags, reserved, fh. */
	[FUSE_STATX] = { "STATX", 24, 0, 1, 0, FH_GETATTR, .fh_off = 8, .node2_off = -1,
			 .fh2_off = -1, .size_off = -1, .out = OUT_ANY, .ino_out = INO_OUT_STATX },
};

enum op_repeat op_repeat_of(uint32_t opcode, const void *in)
{
	const uint32_t moves = FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE;
	const uint32_t clears = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;

	switch (opcode) {
	case FUSE_OPEN:
		return ((const struct fuse_open_in *)in)->flags & O_TRUNC ? REPEAT_IF_UNCHANGED
									 : REPEAT_AS_ONCE;
	case FUSE_SETATTR:
		return ((const struct fuse_setattr_in *)in)->valid & FATTR_SIZE ? REPEAT_IF_UNCHANGED
										 : REPEAT_AS_ONCE;
	case FUSE_FALLOCATE:
		if (((const struct fuse_fallocate_in *)in)->mode & moves)
			return REPEAT_NEVER;
		return ((const struct fuse_fallocate_in *)in)->mode & clears ? REPEAT_IF_UNCHANGED
									    : REPEAT_AS_ONCE;
	case FUSE_RENAME2:
		return ((const struct fuse_rename2_in *)in)->flags & RENAME_EXCHANGE ? REPEAT_NEVER
										      : REPEAT_AS_ONCE;
	default:
		return REPEAT_AS_ONCE;
	}
}

const char *op_name(uint32_t opcode)
{
	static __thread char buf[24];
	const struct op_info *op = op_get(opcode);

	if (op)
		return op->name;
	snprintf(buf, sizeof(buf), "OPCODE_%u", opcode);
	return buf;
}

#define N1(type, a) .node_off = { OFF(type, a), -1 }
#define N2(type, a, b) .node_off = { OFF(type, a), OFF(type, b) }

/* Notifications (protocol 7.11 onwards). Node IDs in them are the daemon's; the kernel's differ
 * after a restart. RESEND is the keeper's own business; PRUNE is advisory and dropped. */
static const struct notify_info notify_table[NOTIFY_MAX] = {
	[FUSE_NOTIFY_POLL] = { "POLL", sizeof(struct fuse_notify_poll_wakeup_out),
			       .node_off = { -1, -1 }, .namelen_off = -1 },
	[FUSE_NOTIFY_INVAL_INODE] = { "INVAL_INODE", sizeof(struct fuse_notify_inval_inode_out),
				      N1(fuse_notify_inval_inode_out, ino), .namelen_off = -1 },
	[FUSE_NOTIFY_INVAL_ENTRY] = { "INVAL_ENTRY", sizeof(struct fuse_notify_inval_entry_out),
				      N1(fuse_notify_inval_entry_out, parent),
				      .namelen_off = OFF(fuse_notify_inval_entry_out, namelen) },
	[FUSE_NOTIFY_STORE] = { "STORE", sizeof(struct fuse_notify_store_out),
				N1(fuse_notify_store_out, nodeid), .namelen_off = -1 },
	[FUSE_NOTIFY_RETRIEVE] = { "RETRIEVE", sizeof(struct fuse_notify_retrieve_out),
				   N1(fuse_notify_retrieve_out, nodeid), .namelen_off = -1 },
	[FUSE_NOTIFY_DELETE] = { "DELETE", sizeof(struct fuse_notify_delete_out),
				 N2(fuse_notify_delete_out, parent, child),
				 .namelen_off = OFF(fuse_notify_delete_out, namelen) },
	[FK_NOTIFY_RESEND] = { "RESEND", 0, .node_off = { -1, -1 }, .namelen_off = -1, .drop = 1 },
	[FK_NOTIFY_INC_EPOCH] = { "INC_EPOCH", 0, .node_off = { -1, -1 }, .namelen_off = -1 },
	[FK_NOTIFY_PRUNE] = { "PRUNE", 0, .node_off = { -1, -1 }, .namelen_off = -1, .drop = 1 },
};

const struct notify_info *notify_get(int code)
{
	return code > 0 && code < NOTIFY_MAX && notify_table[code].name ? &notify_table[code] : NULL;
}

uint32_t op_out_limit(const struct op_info *op, const void *in, size_t in_len)
{
	uint32_t limit = 0;

	if (op->size_off >= 0 && (size_t)op->size_off + 4 <= in_len)
		memcpy(&limit, (const char *)in + op->size_off, 4);
	return limit;
}

int op_check_out_size(const struct op_info *op, const void *in, size_t in_len, size_t out_len)
{
	return op_check_out(op, op_out_limit(op, in, in_len), out_len);
}

int op_check_out(const struct op_info *op, uint32_t limit, size_t out_len)
{
	switch ((enum op_out)op->out) {
	case OUT_NONE:
		return out_len == 0 ? 0 : -EPROTO;
	case OUT_FIXED:
		return out_len == op->out_size ? 0 : -EPROTO;
	case OUT_UPTO:
		return out_len <= limit ? 0 : -EPROTO;
	case OUT_XATTR:
		if (limit == 0)
			return out_len == sizeof(struct fuse_getxattr_out) ? 0 : -EPROTO;
		return out_len <= limit ? 0 : -EPROTO;
	case OUT_INIT:
		/* The kernel takes any prefix of fuse_init_out of at least the 7.23 size. */
		return out_len >= FUSE_COMPAT_22_INIT_OUT_SIZE &&
				       out_len <= sizeof(struct fuse_init_out)
			       ? 0
			       : -EPROTO;
	case OUT_ANY:
		return 0;
	default:
		return -EPROTO;
	}
}

int op_check_records(const struct op_info *op, const void *body, size_t len)
{
	bool plus = op->records == REC_DIRENTPLUS;
	size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET, off = 0;

	if (op->records == REC_NONE)
		return 0;
	while (off < len) {
		const char *rec = (const char *)body + off;
		const struct fuse_dirent *d = (const struct fuse_dirent *)
			(plus ? rec + offsetof(struct fuse_direntplus, dirent) : rec);

		/* The kernel refuses a name of 0 or over 1024 bytes, and would take a record cut
		 * short for the end of the listing. */
		if (len - off < head || d->namelen == 0 || d->namelen > 1024 ||
		    FUSE_DIRENT_ALIGN(head + d->namelen) > len - off)
			return -EPROTO;
		off += FUSE_DIRENT_ALIGN(head + d->namelen);
	}
	return 0;
}
