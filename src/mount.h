/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Mounting a FUSE filesystem on a /dev/fuse fd, and the -o options that shape it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct mount_options {
	unsigned long flags;  /* MS_* flags for mount(2) */
	bool allow_other;
	bool default_permissions;
	char *fsname;	      /* source shown in /proc/mounts; NULL: "fusekeeper" */
	char *subtype;	      /* type becomes fuse.SUBTYPE; NULL: plain "fuse" */
	unsigned max_read;    /* 0: kernel default */
	bool ids_set;	      /* user_id, group_id and rootmode below were given (by a daemon's own
				 mount call); otherwise the keeper's uid and gid, and a directory */
	uid_t user_id;	      /* the mount's owner: without allow_other only it has access */
	gid_t group_id;
	unsigned rootmode;    /* the root's file type, S_IFDIR or S_IFREG (a file mountpoint) */
};

/*
 * Parses one -o argument (comma-separated) into @o. Returns 0, or -EINVAL with a message
 * naming the bad option in @err (of @errlen bytes).
 */
int mount_parse_options(struct mount_options *o, const char *arg, char *err, size_t errlen);

/* Sets defaults: nosuid, nodev. */
void mount_options_init(struct mount_options *o);

/* Frees fsname and subtype. */
void mount_options_free(struct mount_options *o);

/*
 * Opens /dev/fuse and mounts it at @mountpoint. Returns the /dev/fuse fd or -errno; on failure a
 * message for the user is in @err.
 */
int fuse_mount_fd(const char *mountpoint, const struct mount_options *o, char *err, size_t errlen);

/* Detaches the mount at @mountpoint (lazily). Returns 0 or -errno. */
int fuse_unmount(const char *mountpoint);

/* The connection's number in fusectl (the minor of the mount's device), or 0 if unknown. */
unsigned fuse_conn_id(const char *mountpoint);

/*
 * Aborts connection @id through fusectl (/sys/fs/fuse/connections/ID/abort), if it is mounted.
 * Every waiting request then ends with ENOTCONN. Returns 0 or -errno.
 */
int fuse_abort_conn(unsigned id);
