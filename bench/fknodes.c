/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fknodes — a daemon whose tree costs it nothing per node, for bench/nodes.sh: how fusekeeper's
 * recovery time and memory grow with the nodes the kernel holds, up to 100,000 and beyond,
 * where a passthrough daemon runs out of file descriptors (one O_PATH fd per node).
 *
 *   fknodes --files=N [--per-dir=M] MOUNTPOINT
 *
 * The tree is made up from N and M alone: the root holds directories d0, d1, ... of M (100)
 * empty files f1 .. fM each, N files in all. Every object's node ID follows from its place (the
 * root 1, directory I 2 + I, file J of directory I 2 + D + I * M + J - 1 for D directories), and
 * its inode number is its node ID plus INO_BASE — not the node ID itself, which fusekeeper takes
 * for a daemon that numbers inodes anew in every run (libfuse's high-level API) — so every run
 * gives the same numbers, with the same times: a restarted fknodes answers a recovery's lookups
 * as its predecessor did. Entries and
 * attributes are valid for a day, so the kernel keeps every node it was shown. Files open and
 * read as empty; nothing can be changed (EROFS). One thread (fuse_session_loop()): lookups cost
 * a parse and a reply. MOUNTPOINT may be /dev/fd/N (fusekeeper's {}).
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DAY 86400.0
#define MTIME 1700000000 /* every object's times: the same in every run */
#define INO_BASE 1000000000ULL /* inode number = node ID + INO_BASE */

static uint64_t files, per_dir = 100, dirs;

/* What inode @ino is: 0 the root, 1 a directory (*idx its number), 2 a file, -1 none. */
static int classify(fuse_ino_t ino, uint64_t *idx)
{
	if (ino == FUSE_ROOT_ID)
		return 0;
	if (ino >= 2 && ino < 2 + dirs) {
		*idx = ino - 2;
		return 1;
	}
	if (ino >= 2 + dirs && ino < 2 + dirs + files)
		return 2;
	return -1;
}

static void fill_attr(fuse_ino_t ino, int kind, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino + INO_BASE;
	st->st_mode = kind == 2 ? S_IFREG | 0644 : S_IFDIR | 0755;
	st->st_nlink = kind == 2 ? 1 : 2;
	st->st_atime = st->st_mtime = st->st_ctime = MTIME;
}

/* Parses @name as @prefix followed by a decimal number without leading zeros. */
static bool parse_name(const char *name, char prefix, uint64_t *num)
{
	char *end;

	if (name[0] != prefix || name[1] < '0' || name[1] > '9' || (name[1] == '0' && name[2]))
		return false;
	errno = 0;
	*num = strtoull(name + 1, &end, 10);
	return !errno && !*end;
}

static void fk_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = { .attr_timeout = DAY, .entry_timeout = DAY };
	uint64_t idx, num;
	int kind = classify(parent, &idx);

	if (kind == 0 && parse_name(name, 'd', &num) && num < dirs)
		e.ino = 2 + num;
	else if (kind == 1 && parse_name(name, 'f', &num) && num >= 1 && num <= per_dir &&
		 idx * per_dir + num <= files)
		e.ino = 2 + dirs + idx * per_dir + num - 1;
	if (!e.ino) {
		fuse_reply_err(req, kind == 2 ? ENOTDIR : ENOENT);
		return;
	}
	fill_attr(e.ino, e.ino < 2 + dirs ? 1 : 2, &e.attr);
	fuse_reply_entry(req, &e);
}

static void fk_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	uint64_t idx;
	int kind = classify(ino, &idx);

	if (kind < 0) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	fill_attr(ino, kind, &st);
	fuse_reply_attr(req, &st, DAY);
}

static void fk_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	uint64_t idx, count, first = 0;
	int kind = classify(ino, &idx);
	char *buf, name[32];
	size_t used = 0;

	if (kind < 0 || kind == 2) {
		fuse_reply_err(req, kind < 0 ? ESTALE : ENOTDIR);
		return;
	}
	if (kind == 1) {
		first = idx * per_dir;
		count = files - first < per_dir ? files - first : per_dir;
	} else {
		count = dirs;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Offset K is the K-th entry; "." and ".." are left to the kernel's callers. */
	for (uint64_t k = off; k < count; k++) {
		struct stat st = { 0 };
		size_t n;

		if (kind == 0) {
			snprintf(name, sizeof(name), "d%" PRIu64, k);
			st.st_ino = 2 + k + INO_BASE;
			st.st_mode = S_IFDIR;
		} else {
			snprintf(name, sizeof(name), "f%" PRIu64, k + 1);
			st.st_ino = 2 + dirs + first + k + INO_BASE;
			st.st_mode = S_IFREG;
		}
		n = fuse_add_direntry(req, buf + used, size - used, name, &st, k + 1);
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fk_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t idx;

	if (classify(ino, &idx) != 2)
		fuse_reply_err(req, EISDIR);
	else if ((fi->flags & O_ACCMODE) != O_RDONLY)
		fuse_reply_err(req, EROFS);
	else
		fuse_reply_open(req, fi);
}

static void fk_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	fuse_reply_buf(req, NULL, 0);
}

static const struct fuse_lowlevel_ops fk_ops = {
	.lookup = fk_lookup,
	.getattr = fk_getattr,
	.readdir = fk_readdir,
	.open = fk_open,
	.read = fk_read,
};

static bool parse_count(const char *arg, const char *opt, uint64_t *out)
{
	size_t len = strlen(opt);
	char *end;

	if (strncmp(arg, opt, len))
		return false;
	errno = 0;
	*out = strtoull(arg + len, &end, 10);
	if (errno || *end || arg[len] < '0' || arg[len] > '9') {
		fprintf(stderr, "fknodes: %s wants a number, not '%s'\n", opt, arg + len);
		exit(2);
	}
	return true;
}

int main(int argc, char *argv[])
{
	char *args_v[] = { argv[0], NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, args_v);
	const char *mountpoint = NULL;
	struct fuse_session *se;
	int r = 1;

	for (int i = 1; i < argc; i++) {
		if (parse_count(argv[i], "--files=", &files) ||
		    parse_count(argv[i], "--per-dir=", &per_dir))
			continue;
		if (argv[i][0] == '-' || mountpoint) {
			fprintf(stderr, "usage: fknodes --files=N [--per-dir=M] MOUNTPOINT\n");
			return 2;
		}
		mountpoint = argv[i];
	}
	if (!mountpoint || !files || !per_dir || files > (UINT64_MAX >> 2)) {
		fprintf(stderr, "usage: fknodes --files=N [--per-dir=M] MOUNTPOINT "
				"(N and M at least 1)\n");
		return 2;
	}
	/* Fewer files than a directory holds: they all go in d0. */
	if (per_dir > files)
		per_dir = files;
	dirs = (files + per_dir - 1) / per_dir;
	se = fuse_session_new(&args, &fk_ops, sizeof(fk_ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, mountpoint) == 0) {
			r = fuse_session_loop(se) < 0;
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	return r;
}
