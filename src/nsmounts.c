/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Finding the mounts of a filesystem instance in every mount namespace and replacing them
 * (nsmounts.h). The parent reads each namespace's mountinfo and plans; a forked child per
 * namespace clones, enters the namespace and swaps, and writes one report per mount to a pipe.
 */
#include "nsmounts.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/nsfs.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mountapi.h"
#include "util.h"

/* Namespaces and mounts per swap are bounded: a host with more is not served in one pass. */
#define NSM_MAX_NS 4096
#define NSM_MAX_JOBS 1024

static const struct {
	const char *name;
	uint64_t attr;
} attr_opts[] = {
	{ "ro", MOUNT_ATTR_RDONLY },	   { "nosuid", MOUNT_ATTR_NOSUID },
	{ "nodev", MOUNT_ATTR_NODEV },	   { "noexec", MOUNT_ATTR_NOEXEC },
	{ "noatime", MOUNT_ATTR_NOATIME }, { "strictatime", MOUNT_ATTR_STRICTATIME },
	{ "nodiratime", MOUNT_ATTR_NODIRATIME }, { "nosymfollow", MOUNT_ATTR_NOSYMFOLLOW },
};

/* Decodes mountinfo's octal escapes (\040 for a blank, \011, \012, \134) in place. */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

int nsm_parse_line(char *line, struct nsm_mount *m)
{
	char *f[10], *save = NULL, *tok, *opt;
	size_t n = 0;
	bool shared = false, slave = false;

	memset(m, 0, sizeof(*m));
	for (tok = strtok_r(line, " \n", &save); tok && n < 6; tok = strtok_r(NULL, " \n", &save))
		f[n++] = tok;
	if (n < 6)
		return -EINVAL;
	/* Optional fields up to "-", then fstype. */
	for (; tok && strcmp(tok, "-"); tok = strtok_r(NULL, " \n", &save)) {
		if (!strncmp(tok, "shared:", 7)) {
			shared = true;
			m->group = (unsigned)strtoul(tok + 7, NULL, 10);
		} else if (!strncmp(tok, "master:", 7)) {
			slave = true;
			m->master = (unsigned)strtoul(tok + 7, NULL, 10);
		}
		else if (!strcmp(tok, "unbindable"))
			m->prop = NSM_UNBINDABLE;
	}
	if (!tok || !(m->fstype = strtok_r(NULL, " \n", &save)))
		return -EINVAL;
	if (sscanf(f[0], "%d", &m->id) != 1 || sscanf(f[1], "%d", &m->parent) != 1 ||
	    sscanf(f[2], "%u:%u", &m->major, &m->minor) != 2)
		return -EINVAL;
	unescape(f[3]);
	unescape(f[4]);
	m->root = f[3];
	m->point = f[4];
	m->opts = f[5];
	if (m->prop != NSM_UNBINDABLE)
		m->prop = shared && slave ? NSM_SHARED_SLAVE : shared ? NSM_SHARED
			: slave ? NSM_SLAVE : NSM_PRIVATE;
	/* The options stay readable for the log: scan a copy's worth by hand, no strtok. */
	for (opt = f[5]; *opt;) {
		size_t len = strcspn(opt, ",");

		for (size_t i = 0; i < ARRAY_SIZE(attr_opts); i++)
			if (strlen(attr_opts[i].name) == len && !strncmp(opt, attr_opts[i].name, len))
				m->attr |= attr_opts[i].attr;
		opt += len + (opt[len] == ',');
	}
	return 0;
}

const char *nsm_prop_name(enum nsm_prop p)
{
	switch (p) {
	case NSM_SHARED:
		return "shared";
	case NSM_SLAVE:
		return "master";
	case NSM_SHARED_SLAVE:
		return "shared+master";
	case NSM_UNBINDABLE:
		return "unbindable";
	case NSM_PRIVATE:
	default:
		return "private";
	}
}

void nsm_table_free(struct nsm_table *t)
{
	free(t->m);
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

int nsm_read_table(const char *path, struct nsm_table *t)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t size = 0, cap = 65536, lines = 0;
	char *line, *save = NULL;

	memset(t, 0, sizeof(*t));
	if (fd < 0)
		return -errno;
	t->buf = malloc(cap);
	if (!t->buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (size + 1 >= cap) {
			char *nb = cap >= (64u << 20) ? NULL : realloc(t->buf, cap * 2);
			if (!nb) {
				nsm_table_free(t);
				return -ENOMEM;
			}
			t->buf = nb;
			cap *= 2;
		}
		n = read(fd, t->buf + size, cap - size - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			nsm_table_free(t);
			return -e;
		}
		if (n == 0)
			break;
		size += n;
	}
	t->buf[size] = '\0';
	for (size_t i = 0; i < size; i++)
		lines += t->buf[i] == '\n';
	t->m = calloc(lines + 1, sizeof(*t->m));
	if (!t->m) {
		nsm_table_free(t);
		return -ENOMEM;
	}
	for (line = strtok_r(t->buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (nsm_parse_line(line, &t->m[t->n]) == 0)
			t->n++;
	return 0;
}

/* ---- namespaces -------------------------------------------------------------------------- */

struct nsm_ns {
	uint64_t ino;
	pid_t pid;
};

static int ns_of(pid_t pid, uint64_t *ino)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
	if (stat(path, &st) < 0)
		return -errno;
	*ino = st.st_ino;
	return 0;
}

/* One process per mount namespace; the caller's own namespace first. */
static int list_namespaces(struct nsm_ns **out, size_t *count)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	struct nsm_ns *ns;
	size_t n = 0;

	*out = NULL;
	*count = 0;
	if (!d)
		return -errno;
	ns = calloc(NSM_MAX_NS, sizeof(*ns));
	if (!ns) {
		closedir(d);
		return -ENOMEM;
	}
	if (ns_of(getpid(), &ns[0].ino) == 0)
		ns[n++].pid = getpid();
	while ((de = readdir(d)) && n < NSM_MAX_NS) {
		uint64_t ino;
		pid_t pid;
		bool seen = false;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = atoi(de->d_name);
		if (ns_of(pid, &ino) < 0)
			continue; /* gone, or a kernel thread without a namespace to show */
		for (size_t i = 0; i < n && !seen; i++)
			seen = ns[i].ino == ino;
		if (!seen)
			ns[n++] = (struct nsm_ns){ .ino = ino, .pid = pid };
	}
	closedir(d);
	*out = ns;
	*count = n;
	return 0;
}

/* ---- the work inside one namespace --------------------------------------------------------- */

/* Mounts of other filesystems stacked on one stale mount, at its mount point, carried over. */
#define NSM_MAX_STACK 8

struct job {
	const struct nsm_mount *m;
	int src;     /* the mount to put beneath it: the anchor, or -1 (a clone made in the child) */
	bool anchor; /* src is the fresh instance itself (first swap in the caller's namespace) */
	int skip;    /* > 0: the id of the stale mount it sat inside (mounted again once that one
		      * is replaced); -1: its source could not be made */
	bool done;   /* in the child: replaced */
	/* Mounts on top of it at its mount point, bottom first (none of them stale). */
	const struct nsm_mount *stack[NSM_MAX_STACK];
	int nstack;
	/* Mounts of other filesystems inside it (below its mount point). */
	const struct nsm_mount *inner[NSM_MAX_STACK];
	int ninner;
};

/* What a child reports per job. */
struct job_msg {
	int id;
	int err;
	char reason[400];
};

static void send_msg(int fd, int id, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void send_msg(int fd, int id, int err, const char *fmt, ...)
{
	struct job_msg msg = { .id = id, .err = err };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg.reason, sizeof(msg.reason), fmt, ap);
	va_end(ap);
	if (write(fd, &msg, sizeof(msg)) != sizeof(msg)) {
		/* The parent reports the mount as not answered. */
	}
}

/* The mount ID at the top of @path, without asking the filesystem anything (a stale FUSE
 * mount's daemon is dead: a GETATTR would wait for ever). */
static int top_mount_id(const char *path, int *id)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
		  STATX_MNT_ID, &stx) < 0)
		return -errno;
	if (!(stx.stx_mask & STATX_MNT_ID))
		return -EOPNOTSUPP;
	*id = (int)stx.stx_mnt_id;
	return 0;
}

static uint64_t attr_set_of(const struct nsm_mount *m)
{
	return m->attr & FK_MOUNT_ATTR_FLAGS;
}

static uint64_t propagation_of(enum nsm_prop p)
{
	switch (p) {
	case NSM_SHARED:
		return MS_SHARED;
	case NSM_SLAVE:
	case NSM_SHARED_SLAVE:
		return MS_SLAVE;
	case NSM_UNBINDABLE:
		return MS_UNBINDABLE;
	case NSM_PRIVATE:
	default:
		return MS_PRIVATE;
	}
}

/* Makes the mount to put beneath job @j (unless it has one) and gives it the stale mount's
 * flags: before it is visible, so that a read-only bind is never writable. */
static int prepare_src(struct nsm_swap *s, struct job *j, int out)
{
	const char *rel = j->m->root[1] ? j->m->root + 1 : ".";
	/* Private first: a clone of a shared anchor is its peer, and a stale mount in another
	 * peer group must not join the anchor's (set_propagation() decides). */
	struct mount_attr attr = {
		.attr_set = attr_set_of(j->m),
		.attr_clr = FK_MOUNT_ATTR_FLAGS,
		.propagation = MS_PRIVATE,
	};

	if (j->src < 0) {
		j->src = open_tree(s->fresh_fd, rel, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
				   AT_SYMLINK_NOFOLLOW);
		if (j->src < 0) {
			send_msg(out, j->m->id, -errno, "the fresh instance has no %s: %s",
				 j->m->root, strerror(errno));
			return -1;
		}
	}
	if (mount_setattr(j->src, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
		send_msg(out, j->m->id, -errno, "cannot give the new mount the flags %s: %s",
			 j->m->opts, strerror(errno));
		return -1;
	}
	return 0;
}

/* Whether the stale mount of @j was a peer or a slave of the original the anchor replaced. */
static bool of_anchor_group(const struct job *j, unsigned anchor_group)
{
	return anchor_group && (j->m->group == anchor_group || j->m->master == anchor_group);
}

/*
 * The replacement of @j is in place: gives it the stale one's propagation type and reports
 * it replaced. A clone is private. One that replaces a peer or a slave of the original joins
 * the peer group of the anchor that replaced the original (@join_fd, else -1), so that it
 * ends up a peer or a slave of it, as the stale one was of the original. The group is set by
 * fds, across namespaces (MOVE_MOUNT_SET_GROUP, Linux 5.15), once the clone is attached
 * (moving it from its detached tree would make it private again). A shared mount of another
 * group gets a group of its own; a slave of another group comes out private (known gap).
 */
static void set_propagation(struct job *j, int join_fd, int out)
{
	struct mount_attr prop = { .propagation = propagation_of(j->m->prop) };

	j->done = true;
	if (join_fd >= 0 && j->m->prop != NSM_PRIVATE && j->m->prop != NSM_UNBINDABLE &&
	    move_mount(join_fd, "", j->src, "", MOVE_MOUNT_SET_GROUP | MOVE_MOUNT_F_EMPTY_PATH |
		       MOVE_MOUNT_T_EMPTY_PATH) < 0) {
		send_msg(out, j->m->id, 0, "it could not join the peer group of the mount that "
			 "replaced the original (%s): it comes out %s", strerror(errno),
			 j->m->prop == NSM_SHARED ? "in a peer group of its own" : "private");
		mount_setattr(j->src, "", AT_EMPTY_PATH, &prop, sizeof(prop));
		return;
	}
	if (mount_setattr(j->src, "", AT_EMPTY_PATH, &prop, sizeof(prop)) < 0) {
		send_msg(out, j->m->id, 0, "its propagation (%s) could not be set: %s",
			 nsm_prop_name(j->m->prop), strerror(errno));
		return;
	}
	/* A slave made shared again is both: a peer group of its own under its master. */
	prop.propagation = MS_SHARED;
	if (j->m->prop == NSM_SHARED_SLAVE &&
	    mount_setattr(j->src, "", AT_EMPTY_PATH, &prop, sizeof(prop)) < 0) {
		send_msg(out, j->m->id, 0, "it is a slave only, not shared as well: %s",
			 strerror(errno));
		return;
	}
	send_msg(out, j->m->id, 0, "%s", "");
}

/*
 * Puts back on top at @p the lifted mounts @clones[@from..n-1], bottom first. Returns 0, or
 * -errno after the first that could not be put back (its clone and those above are closed:
 * detached, they live on only for the fds and working directories they hold).
 */
static int restack(const char *p, int *clones, int from, int n, char *what, size_t size)
{
	int r = 0;

	for (int i = from; i < n; i++) {
		if (!r && move_mount(clones[i], "", AT_FDCWD, p, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
			r = -errno;
			snprintf(what, size, "the mount stacked on it could not be put back: %s",
				 strerror(errno));
		}
		close(clones[i]);
	}
	return r;
}

/*
 * Lifts the mounts stacked on @j at its mount point @p, top first: each is cloned with what is
 * mounted inside it (a clone keeps its flags, its peer group and its master) and detached.
 * Returns 0 once all are lifted, or -errno after putting back what was (reported).
 */
static int lift_stack(struct job *j, const char *p, int *clones, int out)
{
	char what[128] = "";

	for (int i = j->nstack - 1; i >= 0; i--) {
		int top = -1, r = top_mount_id(p, &top);

		if (r == 0 && top != j->stack[i]->id)
			r = -EBUSY;
		if (r == 0) {
			clones[i] = open_tree(AT_FDCWD, p, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
					      AT_RECURSIVE | AT_SYMLINK_NOFOLLOW);
			if (clones[i] < 0)
				r = -errno;
		}
		if (r == 0 && umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
			r = -errno;
			close(clones[i]);
		}
		if (r < 0) {
			restack(p, clones, i + 1, j->nstack, what, sizeof(what));
			send_msg(out, j->m->id, r, "mount %d is stacked on it and could not be lifted "
				 "off: %s%s%s", j->stack[i]->id, strerror(-r), what[0] ? "; " : "",
				 what);
			return r;
		}
	}
	return 0;
}

/*
 * Clones the mounts of other filesystems inside the stale mount of @j, to mount them again
 * inside its replacement. Their paths cross the stale filesystem: they are walked from the
 * dentry cache only (RESOLVE_CACHED, Linux 5.12), never asking the dead daemon, whose
 * answer would not come. One that cannot be reached so is left to go with the stale mount,
 * and said in @what. @clones[i] is -1 for it.
 */
static void lift_inner(struct job *j, int *clones, char *what, size_t size)
{
	for (int i = 0; i < j->ninner; i++) {
		struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_CACHED };
		_cleanup_close_ int fd = syscall(SYS_openat2, AT_FDCWD, j->inner[i]->point, &how,
						 sizeof(how));
		struct statx stx;
		int e = 0;

		clones[i] = -1;
		if (fd < 0)
			e = errno;
		else if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) < 0)
			e = errno;
		else if (!(stx.stx_mask & STATX_MNT_ID) || (int)stx.stx_mnt_id != j->inner[i]->id)
			e = EBUSY;
		else if ((clones[i] = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
						AT_RECURSIVE | AT_EMPTY_PATH)) < 0)
			e = errno;
		if (e && !what[0])
			snprintf(what, size, "mount %d inside it (at %s) went with it: %s",
				 j->inner[i]->id, j->inner[i]->point,
				 e == EAGAIN ? "its path is not in the dentry cache (the dead "
						    "daemon cannot be asked)" : strerror(e));
	}
}

/* Mounts the clones of lift_inner() again at their places, now in the fresh instance. */
static void put_inner(struct job *j, int *clones, char *what, size_t size)
{
	for (int i = 0; i < j->ninner; i++) {
		if (clones[i] < 0)
			continue;
		if (move_mount(clones[i], "", AT_FDCWD, j->inner[i]->point,
			       MOVE_MOUNT_F_EMPTY_PATH) < 0 && !what[0])
			snprintf(what, size, "mount %d inside it (at %s) cannot be mounted again "
				 "inside the new one: %s", j->inner[i]->id, j->inner[i]->point,
				 strerror(errno));
		close(clones[i]);
	}
}

/*
 * Whether the stale mount of @j, no longer at the top of its mount point (@top is), was
 * replaced already by propagation: a swap in a namespace whose mount is a peer or the master
 * of this one's parent (a shared /, as systemd makes it) propagates there, the mount beneath
 * and the unmount alike. Then the stale mount is gone from this namespace and @top is a mount
 * of the fresh instance (@fresh_dev) with the same root. It is given the stale one's flags (a
 * propagated copy has those of its source) and reported replaced. Returns true when reported.
 */
static bool replaced_by_propagation(struct job *j, int top, dev_t fresh_dev, int out)
{
	struct nsm_table t;
	const struct nsm_mount *up = NULL;
	bool stale_left = false;
	struct mount_attr attr = { .attr_set = attr_set_of(j->m), .attr_clr = FK_MOUNT_ATTR_FLAGS };
	int fd;

	if (nsm_read_table("/proc/self/mountinfo", &t) < 0)
		return false;
	for (size_t i = 0; i < t.n; i++) {
		/* Mount IDs are reused: the same ID on another device is another mount. */
		stale_left |= t.m[i].id == j->m->id && t.m[i].major == j->m->major &&
			      t.m[i].minor == j->m->minor;
		if (t.m[i].id == top)
			up = &t.m[i];
	}
	if (stale_left || !up || makedev(up->major, up->minor) != fresh_dev ||
	    strcmp(up->root, j->m->root) || strcmp(up->point, j->m->point)) {
		nsm_table_free(&t);
		return false;
	}
	nsm_table_free(&t);
	j->done = true;
	fd = open_tree(AT_FDCWD, j->m->point, OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
	if (fd < 0 || mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
		send_msg(out, j->m->id, 0, "it was replaced by propagation (mount %d), whose flags "
			 "could not be set to %s: %s", top, j->m->opts, strerror(errno));
	else
		send_msg(out, j->m->id, 0, "%s", "");
	if (fd >= 0)
		close(fd);
	return true;
}

/* Puts job @j's mount beneath the stale one and detaches the stale one; mounts stacked on the
 * stale one, or inside it, end up on the new one, as they were. */
static void swap_one(struct job *j, int join_fd, dev_t fresh_dev, bool locked_ns, int out)
{
	const char *p = j->m->point;
	int top = -1, r, lifted = j->nstack, clones[NSM_MAX_STACK], inner[NSM_MAX_STACK];
	char what[384] = "", lost[384] = "";

	r = top_mount_id(p, &top);
	if (r < 0) {
		send_msg(out, j->m->id, r, "its mount point is no longer reachable: %s",
			 strerror(-r));
		return;
	}
	if (top != j->m->id && !(j->nstack && top == j->stack[j->nstack - 1]->id)) {
		if (replaced_by_propagation(j, top, fresh_dev, out))
			return;
		send_msg(out, j->m->id, -EBUSY, "it is no longer the top mount at its mount point "
			 "(mount %d is, mounted on it or in its place)", top);
		return;
	}
	if (j->nstack) {
		lifted = lift_stack(j, p, clones, out);
		if (lifted < 0)
			return;
	}
	lift_inner(j, inner, lost, sizeof(lost));
	if (move_mount(j->src, "", AT_FDCWD, p, MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_BENEATH) < 0) {
		int e = errno;

		for (int i = 0; i < j->ninner; i++)
			if (inner[i] >= 0)
				close(inner[i]);
		restack(p, clones, lifted, j->nstack, what, sizeof(what));
		send_msg(out, j->m->id, -e, "cannot mount beneath it: %s%s%s%s", strerror(e),
			 e == EINVAL && locked_ns
				 ? " (it is locked, MNT_LOCKED: its namespace belongs to a less "
				   "privileged user namespace)"
				 : "", what[0] ? "; " : "", what);
		return;
	}
	/* The fresh mount is below: whatever fails now leaves the stale one on top of it, which
	 * is no worse than before. */
	if (umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
		int e = errno;

		for (int i = 0; i < j->ninner; i++)
			if (inner[i] >= 0)
				close(inner[i]);
		restack(p, clones, lifted, j->nstack, what, sizeof(what));
		send_msg(out, j->m->id, -e, "cannot detach it from above the new mount: %s%s%s%s",
			 strerror(e), e == EINVAL && locked_ns ? " (it is locked: MNT_LOCKED)" : "",
			 what[0] ? "; " : "", what);
		return;
	}
	/* The inner mounts first: the stacked ones would hide the new mount's paths. */
	put_inner(j, inner, lost, sizeof(lost));
	if (restack(p, clones, lifted, j->nstack, what, sizeof(what)) < 0 || lost[0]) {
		j->done = true;
		send_msg(out, j->m->id, 0, "%s", what[0] ? what : lost);
		return;
	}
	set_propagation(j, join_fd, out);
}

/* Mounts job @j, which sat inside the stale mount its parent replaced, at its mount point in
 * the parent's replacement: the path is walked through the fresh instance. */
static void remount_inside(struct job *j, int join_fd, int out)
{
	if (move_mount(j->src, "", AT_FDCWD, j->m->point, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
		send_msg(out, j->m->id, -errno, "it was mounted inside stale mount %d, which was "
			 "replaced, but it cannot be mounted again inside the new one: %s", j->skip,
			 strerror(errno));
		return;
	}
	set_propagation(j, join_fd, out);
}

/* The test hook of struct nsm_swap: says which namespace is next and waits to be let go. Any
 * failure lets it go at once: the hook must never stop a swap that a test did not arrange. */
static void test_gate(const char *gate, pid_t pid)
{
	char path[PATH_MAX], line[32];
	int fd, len;

	/* Non-blocking opens: with no test at the other end, ENXIO or end of file at once. */
	snprintf(path, sizeof(path), "%s.ask", gate);
	fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	len = snprintf(line, sizeof(line), "%d\n", (int)pid);
	len = write(fd, line, len) == len;
	close(fd);
	if (!len)
		return;
	snprintf(path, sizeof(path), "%s.go", gate);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fcntl(fd, F_SETFL, 0) == 0)
		while (read(fd, line, sizeof(line)) < 0 && errno == EINTR)
			;
	close(fd);
}

/*
 * The child for one namespace. Clones of the fresh instance can only be made in the caller's
 * namespace (where it is mounted): for another namespace they are all made first, then the
 * child enters it through @pidfd and the process's root @rootfd; in the caller's own (@own),
 * each is made just before it is used, after the anchor (the fresh instance itself) is in
 * place. Only reports go out, through @out. Never returns.
 */
static void __attribute__((noreturn))
ns_child(struct nsm_swap *s, pid_t pid, int pidfd, int rootfd, bool own, bool locked_ns,
	 struct job *jobs, size_t n, int out)
{
	struct statx stx;
	dev_t fresh_dev = 0;
	int join_fd;

	for (size_t i = 0; i < n && !own; i++)
		if (jobs[i].skip >= 0 && prepare_src(s, &jobs[i], out) < 0)
			jobs[i].skip = -1;
	if (!own && s->test_gate)
		test_gate(s->test_gate, pid);
	if (setns(pidfd, CLONE_NEWNS) < 0) {
		int e = errno;

		for (size_t i = 0; i < n; i++)
			if (jobs[i].skip >= 0)
				send_msg(out, jobs[i].m->id, -e, "%s",
					 e == ESRCH ? "its mount namespace went away mid-swap (the "
						      "process it was entered through exited)"
						    : strerror(e));
		_exit(0);
	}
	if (fchdir(rootfd) < 0 || chroot(".") < 0) {
		int e = errno;

		for (size_t i = 0; i < n; i++)
			if (jobs[i].skip >= 0)
				send_msg(out, jobs[i].m->id, -e, "cannot enter the process's root: %s",
					 strerror(e));
		_exit(0);
	}
	if (statx(s->fresh_fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, 0, &stx) == 0)
		fresh_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		bool parent_done = false;

		/* Parents come first: whether the one it sat inside was replaced is known. */
		for (size_t k = 0; k < i && j->skip > 0; k++)
			if (jobs[k].m->id == j->skip)
				parent_done = jobs[k].done;
		if (j->skip > 0 && !parent_done) {
			send_msg(out, j->m->id, -ENOENT, "it was mounted inside stale mount %d, which "
				 "could not be replaced, and cannot be reached without the dead daemon",
				 j->skip);
			continue;
		}
		if (j->skip < 0 || (own && prepare_src(s, j, out) < 0))
			continue;
		join_fd = !j->anchor && of_anchor_group(j, s->anchor_group) ? s->fresh_fd : -1;
		if (j->skip > 0)
			remount_inside(j, join_fd, out);
		else
			swap_one(j, join_fd, fresh_dev, locked_ns, out);
	}
	_exit(0);
}

/* Whether namespace @pid's mounts belong to a user namespace other than ours: its copies of
 * mounts from before its creation are then locked (MNT_LOCKED). */
static bool ns_less_privileged(pid_t pid)
{
	char path[64];
	struct stat own, other;
	int fd, ufd;

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ufd = ioctl(fd, NS_GET_USERNS);
	close(fd);
	if (ufd < 0)
		return false;
	fd = fstat(ufd, &other);
	close(ufd);
	return fd == 0 && stat("/proc/self/ns/user", &own) == 0 && own.st_ino != other.st_ino;
}

/* Depth of a path, for ordering parents before children. */
static size_t depth(const char *p)
{
	size_t d = 0;

	for (; *p; p++)
		d += *p == '/';
	return d;
}

static int job_cmp(const void *a, const void *b)
{
	const struct job *x = a, *y = b;
	size_t dx = depth(x->m->point), dy = depth(y->m->point);

	return dx < dy ? -1 : dx > dy ? 1 : x->m->id - y->m->id;
}

static void report(struct nsm_swap *s, const struct nsm_ns *ns, const struct nsm_mount *m,
		   int err, const char *reason)
{
	struct nsm_report r = { .ns = ns->ino, .pid = ns->pid, .id = m->id, .err = err };

	snprintf(r.point, sizeof(r.point), "%s", m->point);
	snprintf(r.reason, sizeof(r.reason), "%s", reason);
	if (s->report)
		s->report(s->arg, &r);
}

/* What is to be done in one namespace, read before anything is swapped anywhere. */
struct plan {
	struct nsm_ns ns;
	bool own;
	struct nsm_table t;
	struct job *jobs;
	size_t n;
};

static void plan_free(struct plan *p)
{
	free(p->jobs);
	nsm_table_free(&p->t);
	p->jobs = NULL;
	p->n = 0;
}

/*
 * Reads the mounts of namespace @ns and picks those of the old instance. Done for every
 * namespace before the first swap: a swap changes what the others show (detaching the
 * original of a peer group makes its slaves in other namespaces private). Returns 0 (p->n
 * may be 0: nothing to do there) or -ENOMEM.
 */
static int plan_ns(struct nsm_swap *s, const struct nsm_ns *ns, bool own, struct plan *p)
{
	char path[64];
	uint64_t ino = 0;
	size_t n = 0;

	*p = (struct plan){ .ns = *ns, .own = own };
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)ns->pid);
	if (nsm_read_table(path, &p->t) < 0)
		return 0; /* gone before we looked: so are its mounts, unless others hold them */
	/* Still in that namespace: what was read is its mounts (a reused pid elsewhere is not). */
	if (ns_of(ns->pid, &ino) < 0 || ino != ns->ino) {
		plan_free(p);
		return 0;
	}
	for (size_t i = 0; i < p->t.n; i++)
		n += p->t.m[i].major == s->old_major && p->t.m[i].minor == s->old_minor;
	if (!n) {
		plan_free(p);
		return 0;
	}
	p->jobs = calloc(MIN(n, (size_t)NSM_MAX_JOBS), sizeof(*p->jobs));
	if (!p->jobs) {
		plan_free(p);
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->t.n && p->n < NSM_MAX_JOBS; i++)
		if (p->t.m[i].major == s->old_major && p->t.m[i].minor == s->old_minor)
			p->jobs[p->n++] = (struct job){ .m = &p->t.m[i], .src = -1 };
	qsort(p->jobs, p->n, sizeof(*p->jobs), job_cmp);
	/* A stale mount inside another stale one goes with it (its path cannot be walked
	 * without the dead daemon): report it rather than walk into a wait that never ends. */
	for (size_t i = 0; i < p->n; i++)
		for (size_t k = 0; k < i; k++)
			if (p->jobs[i].m->parent == p->jobs[k].m->id)
				p->jobs[i].skip = p->jobs[k].m->id;
	/* What other filesystems have mounted on top of each, at its mount point, and inside. */
	for (size_t i = 0; i < p->n; i++) {
		struct job *j = &p->jobs[i];
		int below = j->m->id;

		for (size_t k = 0; k < p->t.n; k++) {
			const struct nsm_mount *m = &p->t.m[k];

			if (m->parent == j->m->id && strcmp(m->point, j->m->point) &&
			    !(m->major == s->old_major && m->minor == s->old_minor) &&
			    j->ninner < NSM_MAX_STACK)
				j->inner[j->ninner++] = m;
		}

		while (j->nstack < NSM_MAX_STACK) {
			const struct nsm_mount *up = NULL;

			for (size_t k = 0; k < p->t.n && !up; k++)
				if (p->t.m[k].parent == below && !strcmp(p->t.m[k].point, j->m->point))
					up = &p->t.m[k];
			if (!up || (up->major == s->old_major && up->minor == s->old_minor))
				break;
			j->stack[j->nstack++] = up;
			below = up->id;
		}
	}
	return 0;
}

/* Every job of @p fails with @err and @reason. */
static void fail_all(struct nsm_swap *s, struct plan *p, int err, const char *reason,
		     unsigned *failed)
{
	for (size_t i = 0; i < p->n; i++) {
		(*failed)++;
		report(s, &p->ns, p->jobs[i].m, err, reason);
	}
}

/* Swaps the stale mounts of one planned namespace. Returns how many were replaced; *failed
 * grows. */
static int swap_ns(struct nsm_swap *s, struct plan *p, unsigned *failed)
{
	_cleanup_close_ int pidfd = -1, rootfd = -1;
	const struct nsm_ns *ns = &p->ns;
	struct job *jobs = p->jobs;
	size_t n = p->n;
	char path[64];
	int pipefd[2], replaced = 0;
	bool *answered;
	uint64_t ino = 0;
	pid_t pid;
	int64_t deadline;

	/* The process the namespace was read through must still be in it: a pidfd, then its
	 * namespace and root, then the pidfd still alive (no pid reuse in between). */
	pidfd = syscall(SYS_pidfd_open, ns->pid, 0);
	snprintf(path, sizeof(path), "/proc/%d/root", (int)ns->pid);
	if (pidfd >= 0)
		rootfd = open(path, O_PATH | O_CLOEXEC);
	if (pidfd < 0 || rootfd < 0 || ns_of(ns->pid, &ino) < 0 || ino != ns->ino ||
	    syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) {
		fail_all(s, p, -ESRCH, "its mount namespace went away mid-swap (the process it "
			 "was read through exited)", failed);
		return 0;
	}
	answered = calloc(n + 1, sizeof(*answered));
	if (!answered) {
		fail_all(s, p, -ENOMEM, "out of memory", failed);
		return 0;
	}
	if (p->own && s->fresh_detached) {
		/* The fresh instance itself replaces the original mount of its root. */
		size_t a = n;

		for (size_t i = 0; i < n; i++)
			if (!jobs[i].skip && !strcmp(jobs[i].m->root, "/") &&
			    (a == n || (s->anchor_point && !strcmp(jobs[i].m->point, s->anchor_point))))
				a = i;
		if (a < n) {
			jobs[a].src = s->fresh_fd;
			jobs[a].anchor = true;
			s->anchor_group = jobs[a].m->group;
			/* The anchor goes first: the clones are made from it once attached. */
			if (a) {
				struct job tmp = jobs[a];
				memmove(&jobs[1], &jobs[0], a * sizeof(*jobs));
				jobs[0] = tmp;
			}
		}
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		fail_all(s, p, -errno, "cannot make a pipe to the namespace's helper", failed);
		free(answered);
		return 0;
	}
	pid = fork();
	if (pid < 0) {
		fail_all(s, p, -errno, "cannot fork the namespace's helper", failed);
		close(pipefd[0]);
		close(pipefd[1]);
		free(answered);
		return 0;
	}
	if (pid == 0) {
		close(pipefd[0]);
		ns_child(s, ns->pid, pidfd, rootfd, p->own,
			 !p->own && ns_less_privileged(ns->pid), jobs, n, pipefd[1]);
	}
	close(pipefd[1]);
	{
		_cleanup_close_ int child = syscall(SYS_pidfd_open, pid, 0);

		deadline = now_ms() + s->timeout_ms;
		for (;;) {
			struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
			struct job_msg msg;
			ssize_t len;
			int pr = poll(&pfd, 1, ms_until(deadline));

			if (pr < 0 && errno == EINTR)
				continue;
			if (pr <= 0)
				break;
			len = read(pipefd[0], &msg, sizeof(msg));
			if (len != sizeof(msg))
				break;
			msg.reason[sizeof(msg.reason) - 1] = '\0';
			for (size_t i = 0; i < n; i++) {
				if (jobs[i].m->id != msg.id || answered[i])
					continue;
				answered[i] = true;
				if (msg.err) {
					(*failed)++;
				} else {
					replaced++;
					if (jobs[i].anchor)
						s->fresh_detached = false;
				}
				report(s, ns, jobs[i].m, msg.err, msg.reason);
				break;
			}
		}
		close(pipefd[0]);
		if (child >= 0)
			syscall(SYS_pidfd_send_signal, child, SIGKILL, NULL, 0);
		/* The supervisor may have reaped it already (it reaps every child). */
		if (child >= 0)
			waitid(P_PIDFD, child, NULL, WEXITED);
		for (size_t i = 0; i < n; i++) {
			if (answered[i])
				continue;
			(*failed)++;
			report(s, ns, jobs[i].m, -ETIMEDOUT, "no answer from the namespace's helper "
			       "in time (it was stopped)");
		}
	}
	free(answered);
	return replaced;
}

int nsm_swap(struct nsm_swap *s, unsigned *failed)
{
	struct nsm_ns *ns;
	struct plan *plans;
	size_t n, np = 0;
	int r, replaced = 0;

	*failed = 0;
	s->anchor_group = 0;
	r = list_namespaces(&ns, &n);
	if (r < 0)
		return r;
	plans = calloc(n + 1, sizeof(*plans));
	if (!plans) {
		free(ns);
		return -ENOMEM;
	}
	/* Every namespace is read before the first swap: see plan_ns(). */
	for (size_t i = 0; i < n; i++) {
		r = plan_ns(s, &ns[i], i == 0, &plans[np]);
		if (r < 0)
			break;
		np += plans[np].n > 0;
	}
	for (size_t i = 0; i < np && r >= 0; i++) {
		int k = swap_ns(s, &plans[i], failed);

		replaced += k;
	}
	for (size_t i = 0; i < np; i++)
		plan_free(&plans[i]);
	free(plans);
	free(ns);
	return r < 0 ? r : replaced;
}

unsigned nsm_count_mounts(unsigned major, unsigned minor)
{
	struct nsm_ns *ns;
	size_t n;
	unsigned count = 0;

	if (list_namespaces(&ns, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct nsm_table t;
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)ns[i].pid);
		if (nsm_read_table(path, &t) < 0)
			continue;
		for (size_t k = 0; k < t.n; k++)
			count += t.m[k].major == major && t.m[k].minor == minor;
		nsm_table_free(&t);
	}
	free(ns);
	return count;
}

int nsm_probe_beneath(void)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* A private namespace: nothing done here is seen outside, and it ends with us. */
		int fds[2] = { -1, -1 }, fs;
		struct mount_attr prop = { .propagation = MS_PRIVATE };

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &prop, sizeof(prop)) < 0)
			_exit(2);
		for (int i = 0; i < 2; i++) {
			fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
			if (fs < 0 || fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
				_exit(2);
			fds[i] = fsmount(fs, FSMOUNT_CLOEXEC, 0);
			close(fs);
		}
		if (fds[0] < 0 || fds[1] < 0 ||
		    move_mount(fds[1], "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0)
			_exit(2);
		_exit(move_mount(fds[0], "", AT_FDCWD, "/tmp",
				 MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_BENEATH) < 0 ? 1 : 0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 2)
		return -EIO;
	return WEXITSTATUS(status) ? -EOPNOTSUPP : 0;
}
