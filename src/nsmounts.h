/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Mounts of one filesystem instance in every mount namespace of the host, and replacing them by
 * mounts of another instance: the generic part of remount mode, usable with any filesystem (the
 * tests drive it with FUSE; nothing here speaks FUSE).
 *
 * Namespaces are found through /proc/PID/ns/mnt (one representative process per namespace,
 * held by a pidfd so that a reused pid cannot lead into the wrong one), their mounts through
 * /proc/PID/mountinfo. The work inside a namespace runs in a forked child, which may setns():
 * the keeper itself is multi-threaded and could not.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Propagation type of a mount, from the optional fields of mountinfo. */
enum nsm_prop { NSM_PRIVATE, NSM_SHARED, NSM_SLAVE, NSM_SHARED_SLAVE, NSM_UNBINDABLE };

/* One line of a mountinfo file. Strings point into the table's buffer, unescaped. */
struct nsm_mount {
	int id, parent;
	unsigned major, minor;
	const char *root;   /* the mount's root: a path within its filesystem ("/" for all of it) */
	const char *point;  /* where it is mounted, relative to the reading process's root */
	const char *opts;   /* per-mount options as shown ("rw,nosuid,relatime") */
	uint64_t attr;	    /* those options as MOUNT_ATTR_* bits */
	enum nsm_prop prop; /* propagation type */
	unsigned group;	    /* its peer group ("shared:N"), 0 when not shared */
	unsigned master;    /* the peer group it is a slave of ("master:N"), 0 when none */
	const char *fstype;
};

/* A parsed mountinfo file. */
struct nsm_table {
	struct nsm_mount *m;
	size_t n;
	char *buf; /* the file's text, which the strings point into */
};

/*
 * Parses one mountinfo line, in place (octal escapes such as \040 are decoded in @line, which
 * the strings in @m then point into). Returns 0 or -EINVAL for a malformed line.
 */
int nsm_parse_line(char *line, struct nsm_mount *m);

/* Reads and parses the mountinfo file @path into @t (freed with nsm_table_free). 0 or -errno. */
int nsm_read_table(const char *path, struct nsm_table *t);
void nsm_table_free(struct nsm_table *t);

/* The name of a propagation type as mountinfo says it ("shared", "master", ...). */
const char *nsm_prop_name(enum nsm_prop p);

/* What became of one mount that was to be replaced. */
struct nsm_report {
	uint64_t ns;	    /* inode of its mount namespace */
	pid_t pid;	    /* the process the namespace was entered through */
	int id;		    /* its mount ID (in that namespace's mountinfo) */
	int err;	    /* 0: replaced; else -errno of the step that failed */
	char point[256];    /* its mount point, as that process sees it */
	char reason[512];   /* why it could not be replaced, or what went wrong when it was */
};

/* Called once per mount found, replaced or not. */
typedef void (*nsm_report_fn)(void *arg, const struct nsm_report *r);

struct nsm_swap {
	unsigned old_major, old_minor; /* the instance whose mounts are replaced */
	/*
	 * A mount of the fresh instance's root in the caller's namespace, or a detached one
	 * (fsmount()) to attach in place of the first mount of the old instance's root found in
	 * the caller's own namespace (@anchor_point, if it is one, is preferred). Clones of it
	 * (open_tree(OPEN_TREE_CLONE)) replace the others.
	 */
	int fresh_fd;
	bool fresh_detached;
	const char *anchor_point;
	int64_t timeout_ms;	       /* bound on the work in one namespace */
	nsm_report_fn report;
	void *arg;
	/*
	 * For tests only (NULL otherwise): a path prefix of two FIFOs, @test_gate.ask and
	 * @test_gate.go. Before entering another namespace, its helper writes "PID\n" (the
	 * process it enters through) to .ask and waits for a line (or end of file) on .go, so
	 * that a test can act at that moment, such as ending the namespace.
	 */
	const char *test_gate;
	/* Set by nsm_swap() itself: the peer group of the original that the anchor replaces. */
	unsigned anchor_group;
};

/*
 * Replaces every mount of the old instance, in every mount namespace, by a mount of the same
 * sub-directory of the fresh instance with the same flags and propagation type: the fresh
 * one is mounted beneath the stale one (MOVE_MOUNT_BENEATH), which is then detached. Mounts
 * of other filesystems stacked on a stale one or inside it are carried over to the new one.
 * Every namespace's mounts are read before the first swap. Mounts that cannot be replaced
 * are reported with their reason; the others are replaced all the same. On return
 * @fresh_detached is false when the fresh mount was attached. Returns the number of mounts
 * replaced, or -errno when nothing could be tried.
 */
int nsm_swap(struct nsm_swap *s, unsigned *failed);

/* Counts the mounts of device @major:@minor left in every mount namespace. */
unsigned nsm_count_mounts(unsigned major, unsigned minor);

/*
 * Whether this kernel can mount beneath a mount (MOVE_MOUNT_BENEATH, Linux 6.5), tried on
 * tmpfs in a private mount namespace of a child process. 0: yes; -EOPNOTSUPP: no; other
 * -errno: the probe itself failed.
 */
int nsm_probe_beneath(void);
