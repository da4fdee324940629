/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Everything fusekeeper knows about each FUSE opcode, as one table: how big its request is, where
 * node IDs and file handles sit in it, how big a reply may be, what a successful reply changes in
 * the keeper's state, and how a request left unanswered by a dead daemon is settled. Adding an
 * opcode is adding a row; no other code switches on opcode numbers for these facts.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* How large a successful reply's body may be. Error replies never have a body. */
enum op_out {
	OUT_NONE = 0,  /* empty body */
	OUT_FIXED,     /* exactly .out_size bytes */
	OUT_UPTO,      /* at most the request's 32-bit size field at .size_off */
	OUT_XATTR,     /* request size field 0: a fuse_getxattr_out; else at most that size */
	OUT_INIT,      /* a fuse_init_out, possibly shortened by an older daemon */
	OUT_ANY,       /* anything that fits the buffer (ioctl, statx, ...) */
};

/* What a successful reply changes in the keeper's tables (see nodes.h, handles.h). */
enum op_effect {
	EFF_NONE = 0,
	EFF_ENTRY,    /* fuse_entry_out: the kernel now holds one more lookup of a node named
			 name[0] in directory nodeid */
	EFF_OPEN,     /* fuse_open_out: a new file handle on nodeid */
	EFF_OPENDIR,  /* fuse_open_out: a new directory handle on nodeid */
	EFF_CREATE,   /* fuse_entry_out + fuse_open_out: both of the above */
	EFF_DIRPLUS,  /* READDIRPLUS: one lookup for every entry with a node ID */
	EFF_UNLINK,   /* name[0] in nodeid no longer names a node */
	EFF_RENAME,   /* name[0] in nodeid moved to name[1] in node2 */
	EFF_RELEASE,  /* the handle at .fh_off is closed */
	EFF_INIT,     /* the connection's parameters were agreed */
};

/*
 * How a request that a dead daemon never answered is settled with its successor
 * (docs/design.md).
 */
enum op_replay {
	RP_SAFE = 0,  /* idempotent: send it again */
	RP_EXISTS,    /* creates name[0]: send again; EEXIST means the first try worked, so look
			 the name up and answer with that entry (and an open handle for CREATE) */
	RP_TOLERATE,  /* send again; .replay_errno means the first try worked: answer success */
	RP_RENAME,    /* send again; ENOENT/EEXIST with the source gone and the target present
			 means the first try worked */
	RP_WRITE,     /* send again unless the handle is O_APPEND: then look at the file's size */
	RP_FAIL,      /* cannot be known or repeated safely: answer EIO */
	RP_DROP,      /* no reply is owed (FORGET, INTERRUPT, ...): drop it */
};

/* How a request takes part in its handle's write window (handles.h). */
enum op_wwin {
	WW_NONE = 0,
	WW_WRITE,     /* acknowledged: kept until synced; fails with EIO after a lost window */
	WW_SYNC,      /* success makes the handle's acknowledged writes durable (FSYNC, FLUSH);
			 fails with EIO, once, after a lost window */
};

/* Where a successful reply carries the daemon's inode numbers, which the kernel must be shown as
 * it first saw them when the daemon renumbers on restart (nodes.h, ino_remap). Entries are
 * rewritten where they are learned (EFF_ENTRY, EFF_CREATE, EFF_DIRPLUS). */
enum op_ino {
	INO_OUT_NONE = 0,
	INO_OUT_ATTR,	  /* a fuse_attr_out */
	INO_OUT_DIRENT,	  /* fuse_dirent records */
	INO_OUT_DIRPLUS,  /* fuse_direntplus records: dirent.ino, and attr.ino of unlearned ones */
	INO_OUT_STATX,	  /* a fuse_statx_out */
};

/* Which node's data a successful request changes (node.dver): a write window holding older
 * writes to it may then not be sent again over the change. */
enum op_dchange {
	DC_NONE = 0,
	DC_NODE,      /* the header's node (WRITE, FALLOCATE) */
	DC_SETATTR,   /* the header's node, when fuse_setattr_in.valid has FATTR_SIZE */
	DC_NODE2,     /* the node at .node2_off (COPY_FILE_RANGE's destination) */
};

/* Whose ctime a successful request changes, as far as the keeper tracks it (node.changed_ns):
 * a settle rule must not take that change for the work of another request. */
enum op_ctime_of {
	CTO_NONE = 0,
	CTO_NODE,     /* the header's node (WRITE, SETATTR, SETXATTR, ...) */
	CTO_NODE2,    /* the node at .node2_off (LINK's source, COPY_FILE_RANGE's destination) */
};

/* Records a successful reply's body is made of: each must lie whole within the body, its name
 * 1 to 1024 bytes long (FUSE_NAME_MAX), as the kernel parses them (fs/fuse/readdir.c). */
enum op_records {
	REC_NONE = 0,
	REC_DIRENT,	/* fuse_dirent (READDIR) */
	REC_DIRENTPLUS, /* fuse_direntplus (READDIRPLUS) */
};

/* A condition on the request for the handle at .fh_off to be present. */
enum op_fh_when {
	FH_ALWAYS = 0,
	FH_GETATTR,   /* fuse_getattr_in.getattr_flags has FUSE_GETATTR_FH */
	FH_SETATTR,   /* fuse_setattr_in.valid has FATTR_FH */
	FH_NEVER,
};

/* How a request takes part in the lock table (locks.h) of a daemon that keeps file locks
 * itself. A RELEASE drops what was locked through its handle wherever the handle goes. */
enum op_lock {
	LK_NONE = 0,
	LK_GET,	      /* GETLK: fails with EIO, once, after its owner lost a lock on the node
			 in a restart */
	LK_SET,	      /* SETLK, SETLKW: like LK_GET; refused with ENOLCK when a grant would not
			 fit the table; a grant is recorded */
	LK_FLUSH,     /* FLUSH: its lock_owner's POSIX locks on the node are released */
};

/* The file type a creating request makes, to check a name found after a replay (RP_EXISTS). */
enum op_ctype {
	CT_NONE = 0,
	CT_DIR,	  /* a directory */
	CT_LNK,	  /* a symlink */
	CT_REG,	  /* a regular file */
	CT_MODE,  /* the type in fuse_mknod_in.mode */
	CT_NODE2, /* the type of the node at .node2_off (LINK) */
};

struct op_info {
	const char *name;     /* NULL for opcodes the keeper does not know */
	uint32_t in_size;     /* smallest body the keeper parses (fixed struct before names) */
	uint8_t names;        /* NUL-terminated names that follow the fixed struct */
	uint8_t node;         /* 1 if the header's nodeid is a node ID */
	uint8_t noreply;      /* 1 if the daemon sends no reply */
	uint8_t fh_when;      /* enum op_fh_when */
	int16_t fh_off;       /* offset of a file handle in the body, -1 if none */
	int16_t node2_off;    /* offset of a second node ID, -1 if none */
	int16_t fh2_off;      /* offset of a second file handle, -1 if none */
	int16_t size_off;     /* offset of the 32-bit size that bounds OUT_UPTO/OUT_XATTR */
	uint8_t out;          /* enum op_out */
	uint32_t out_size;    /* for OUT_FIXED */
	uint8_t effect;       /* enum op_effect */
	uint8_t replay;       /* enum op_replay */
	int16_t replay_errno; /* for RP_TOLERATE */
	uint8_t ctype;	      /* enum op_ctype, for RP_EXISTS */
	uint8_t positioned;   /* reads at fuse_read_in.offset through a handle: a handle reopened
				 after a restart is primed with a read at 0 before one at offset > 0 */
	uint8_t lost_ok;      /* on a handle lost in a restart: answered with success (closing) */
	uint8_t wwin;	      /* enum op_wwin */
	uint8_t ino_out;      /* enum op_ino */
	uint8_t dchange;      /* enum op_dchange */
	uint8_t ctime_of;     /* enum op_ctime_of */
	uint8_t stamp;	      /* 1: the time it is sent is recorded (msg.sent_ns): settling it
				 after a restart compares the store's times with it, or the
				 times of the keeper's own later replies (REPEAT_IF_UNCHANGED) */
	uint8_t lock;	      /* enum op_lock */
	uint8_t entry_names;  /* how many of its names, first first, are names of entries in a
				 directory (not a symlink's target or an attribute's name) */
	uint8_t records;      /* enum op_records */
	uint8_t may_wait;     /* 1: may wait for an event outside the daemon (a lock's release, a
				 poll, a device-like ioctl): a daemon holding it long is not hung
				 (--hang-timeout); so may a READ or WRITE on a handle opened
				 FOPEN_NONSEEKABLE or FOPEN_STREAM (relay.c) */
};

#define OP_MAX 64

/* The table, indexed by opcode; rows without a name are unknown opcodes. */
extern const struct op_info op_table[OP_MAX];

/* The row for @opcode, or NULL if the keeper does not know it. */
static inline const struct op_info *op_get(uint32_t opcode)
{
	return opcode < OP_MAX && op_table[opcode].name ? &op_table[opcode] : NULL;
}

/* Name of an opcode for logs ("OPCODE_123" for unknown ones, in a static buffer per thread). */
const char *op_name(uint32_t opcode);

/*
 * What sending a request again does that sending it once does not, from its arguments; the
 * same facts for a request a dead daemon held (recover.c) and one a SIGKILLed keeper had read
 * (relay.c). op_info.replay says how the rest is settled.
 */
enum op_repeat {
	REPEAT_AS_ONCE = 0,   /* nothing: op_info.replay decides */
	REPEAT_IF_UNCHANGED,  /* destroys data (OPEN with O_TRUNC, SETATTR of the size, FALLOCATE
				 punching or zeroing a range): only when nothing changed the file
				 since it was first sent, else a write made meanwhile is lost */
	REPEAT_NEVER,	      /* does it twice (RENAME2 with RENAME_EXCHANGE swaps back; a
				 FALLOCATE collapsing or inserting a range would move the data
				 again, though fs/fuse passes none today) */
};

/* For the request @opcode whose body @in holds at least op_info.in_size bytes. */
enum op_repeat op_repeat_of(uint32_t opcode, const void *in);

/* What the keeper knows about each notification a daemon may send (fuse_out_header.error). */
struct notify_info {
	const char *name;   /* NULL for codes the keeper does not know */
	uint32_t size;	    /* smallest body */
	int16_t node_off[2]; /* offsets of daemon node IDs to translate, -1 if none */
	int16_t namelen_off; /* offset of a 32-bit name length; the name follows the struct */
	uint8_t drop;	    /* 1: not passed to the kernel (the keeper does its job itself) */
};

#define NOTIFY_MAX 16

/* The row for notification @code, or NULL if unknown. */
const struct notify_info *notify_get(int code);

/*
 * Checks a successful reply's body size against what @op allows for the request @in (the
 * request body after the in-header, @in_len bytes). Returns 0 or -EPROTO.
 */
int op_check_out_size(const struct op_info *op, const void *in, size_t in_len, size_t out_len);

/* The request's size field that bounds an OUT_UPTO or OUT_XATTR reply (0 if it has none). */
uint32_t op_out_limit(const struct op_info *op, const void *in, size_t in_len);

/* op_check_out_size() for a request of which only op_out_limit() was kept. */
int op_check_out(const struct op_info *op, uint32_t limit, size_t out_len);

/* Checks the records of a successful reply's body (@body, @len bytes; 8-byte aligned) as
 * op->records says. Returns 0 or -EPROTO. */
int op_check_records(const struct op_info *op, const void *body, size_t len);
