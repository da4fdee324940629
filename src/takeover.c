/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Taking over the mount a daemon makes itself: the filter and its trapped calls (takeover.h). */
#include "takeover.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/capability.h>
#include <linux/kcmp.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mountapi.h"
#include "nsmounts.h"
#include "util.h"

/*
 * mount(2) calls with these flags change an existing mount (bind, move, remount, propagation):
 * they never make a FUSE connection, so the filter lets them run without a trap. fusermount3's
 * own checks make such calls, in a namespace of their own.
 */
#define PASS_FLAGS (MS_REMOUNT | MS_BIND | MS_MOVE | MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE)

/*
 * seccomp_unotify(2) from Linux 5.19: once the keeper has received a notification, signals other
 * than SIGKILL no longer interrupt the trapped call. Go programs are sent SIGURG all the time.
 */
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

struct takeover {
	struct sock_fprog prog;
};

void takeover_free(struct takeover *t)
{
	if (t) {
		free(t->prog.filter);
		free(t);
	}
}

/*
 * The filter is built with libseccomp and exported as a BPF program, which each daemon's process
 * then loads with a bare seccomp(2) between fork and exec: libseccomp's own loader allocates,
 * and the keeper has threads by then.
 */
int takeover_new(struct takeover **out, char *err, size_t errlen)
{
	static const char *const trapped[] = { "umount2", "umount", "fsopen", "splice" };
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	struct takeover *t = NULL;
	_cleanup_close_ int mem = -1;
	struct stat st;
	int r;

	if (!ctx) {
		snprintf(err, errlen, "cannot build the seccomp filter: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
#if defined(__x86_64__)
	/* A 32-bit program mounts with the i386 or x32 numbers: trap those too. */
	r = seccomp_arch_add(ctx, SCMP_ARCH_X86);
	if (r == 0 || r == -EEXIST)
		r = seccomp_arch_add(ctx, SCMP_ARCH_X32);
	if (r < 0 && r != -EEXIST)
		goto fail;
#endif
	r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(mount), 1,
			     SCMP_A3(SCMP_CMP_MASKED_EQ, PASS_FLAGS, 0));
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < ARRAY_SIZE(trapped); i++) {
		int nr = seccomp_syscall_resolve_name(trapped[i]);

		/* umount(2) exists on i386 only: a call missing everywhere is no call to trap. */
		if (nr == __NR_SCMP_ERROR)
			continue;
		r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0);
		if (r < 0 && !(r == -EDOM || r == -EINVAL))
			goto fail;
	}
	mem = memfd_create("fusekeeper-filter", MFD_CLOEXEC);
	if (mem < 0) {
		r = -errno;
		goto fail;
	}
	r = seccomp_export_bpf(ctx, mem);
	if (r < 0)
		goto fail;
	if (fstat(mem, &st) < 0 || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter)) {
		r = -EINVAL;
		goto fail;
	}
	t = calloc(1, sizeof(*t));
	if (!t || !(t->prog.filter = malloc(st.st_size))) {
		r = -ENOMEM;
		goto fail;
	}
	t->prog.len = st.st_size / sizeof(struct sock_filter);
	if (pread(mem, t->prog.filter, st.st_size, 0) != st.st_size) {
		r = -EIO;
		goto fail;
	}
	seccomp_release(ctx);
	*out = t;
	return 0;
fail:
	snprintf(err, errlen, "cannot build the seccomp filter that traps the daemon's mount calls: "
		 "%s", strerror(-r));
	takeover_free(t);
	seccomp_release(ctx);
	return r;
}

/* Opens @path (O_PATH) following no symbolic link anywhere in it. Async-signal-safe. */
static int open_nofollow(const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};

	return syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
}

/*
 * Detaches the mount of connection @conn at @path in the caller's namespace, if that is what
 * @path leads to, following no symbolic link: never another mount a changed name leads to.
 * Async-signal-safe. Returns 1 if detached, 0 if it is not there, or -errno.
 */
static int detach_at(const char *path, unsigned conn)
{
	struct statx stx;
	char link[32] = "/proc/self/fd/";
	int fd = open_nofollow(path), r = 0, i, n;

	if (fd < 0)
		return errno == ENOENT || errno == ELOOP ? 0 : -errno;
	/* The mount's root, with no request to its daemon (AT_STATX_DONT_SYNC). */
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &stx) < 0) {
		r = -errno;
	} else if (stx.stx_dev_major == 0 && stx.stx_dev_minor == conn &&
		   (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
		/* "/proc/self/fd/N" by hand: snprintf is not async-signal-safe. */
		for (n = fd, i = 0; n; n /= 10)
			i++;
		for (n = fd, link[14 + (i ? i : 1)] = '\0'; i > 0; n /= 10)
			link[14 + --i] = '0' + n % 10;
		r = umount2(link, MNT_DETACH) < 0 ? -errno : 1;
	}
	close(fd);
	return r;
}

int takeover_child(const struct takeover *t, const char *hide, unsigned conn, int sock,
		   const char **step)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u = { 0 };
	char byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	int listener;

	*step = "unshare(CLONE_NEWNS)";
	if (unshare(CLONE_NEWNS) < 0)
		return -errno;
	/* Mounts made in the keeper's namespace still reach the daemon's; none go back. */
	*step = "making its mounts slaves of the keeper's";
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return -errno;
	*step = "detaching the keeper's mount in its namespace";
	if (hide) {
		int r = detach_at(hide, conn);

		if (r < 0)
			return r;
	}
	*step = "seccomp(SECCOMP_SET_MODE_FILTER)";
	listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			   SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
			   &t->prog);
	if (listener < 0 && errno == EINVAL)
		listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
				   SECCOMP_FILTER_FLAG_NEW_LISTENER, &t->prog);
	if (listener < 0)
		return -errno;
	u.h.cmsg_level = SOL_SOCKET;
	u.h.cmsg_type = SCM_RIGHTS;
	u.h.cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(&u.h), &listener, sizeof(int));
	*step = "sending the filter's listener to the keeper";
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
		int e = errno;

		close(listener);
		return -e;
	}
	close(listener);
	return 0;
}

int takeover_recv_listener(int sock)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *h;
	ssize_t n;
	int fd;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	h = CMSG_FIRSTHDR(&msg);
	if (n != 1 || !h || h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS ||
	    h->cmsg_len != CMSG_LEN(sizeof(int)))
		return -EPROTO;
	memcpy(&fd, CMSG_DATA(h), sizeof(int));
	return fd;
}

void takeover_normalize(char *path)
{
	char *out = path, *in = path;

	/* @out keeps "/" plus the components kept so far; @in reads the next one. */
	while (*in) {
		char *end;
		size_t len;

		while (*in == '/')
			in++;
		if (!*in)
			break;
		end = strchrnul(in, '/');
		len = end - in;
		if (len == 1 && in[0] == '.') {
			/* nothing */
		} else if (len == 2 && in[0] == '.' && in[1] == '.') {
			while (out > path && *--out != '/')
				;
		} else {
			*out++ = '/';
			memmove(out, in, len);
			out += len;
		}
		in = end;
	}
	if (out == path)
		*out++ = '/';
	*out = '\0';
}

/* Reads a NUL-terminated string of the caller's at @addr through /proc/PID/mem. */
static int read_string(int mem, uint64_t addr, char *buf, size_t size)
{
	ssize_t n;

	if (!addr)
		return -EFAULT;
	/* A string near the end of a mapping: /proc/PID/mem reads up to the unmapped page. */
	n = pread(mem, buf, size - 1, addr);
	if (n <= 0)
		return -EFAULT;
	buf[n] = '\0';
	return strnlen(buf, n) < (size_t)n ? 0 : -ENAMETOOLONG;
}

/* Makes @path, as the calling thread @pid named it, absolute and normalized. */
static int resolve_path(pid_t pid, const char *path, char *out, size_t size)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/root", (int)pid);
	n = readlink(link, out, size - 1);
	if (n < 0)
		return -errno;
	if (n != 1 || out[0] != '/')
		return -EXDEV; /* a daemon in a chroot: its paths are not the keeper's */
	if (path[0] == '/') {
		if (strlen(path) >= size)
			return -ENAMETOOLONG;
		strcpy(out, path);
	} else {
		snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
		n = readlink(link, out, size - 1);
		if (n < 0)
			return -errno;
		if ((size_t)n + 1 + strlen(path) >= size)
			return -ENAMETOOLONG;
		out[n] = '\0';
		strcat(strcat(out, "/"), path);
	}
	takeover_normalize(out);
	return 0;
}

int takeover_identity(const char *path, dev_t *dev, ino_t *ino)
{
	struct statx stx;

	/* AT_STATX_DONT_SYNC: FUSE answers from what it has, with no GETATTR to a daemon. */
	if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_INO, &stx) < 0)
		return -errno;
	*dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	*ino = stx.stx_ino;
	return 0;
}

/*
 * The object the caller's mount(2) or umount2(2) names, as the kernel would find it for the
 * caller: "." is its working directory itself (/proc/TID/cwd: the very directory, not a name for
 * it; fusermount3 mounts there), "/proc/self/..." its own (fusermount3 mounts a file on
 * "/proc/self/fd/N"), and other paths are looked up from its root, symbolic links included
 * (RESOLVE_IN_ROOT: an absolute link leads within its namespace, not the keeper's). Sets c->dev,
 * c->ino and c->target (its path, links resolved).
 */
static int caller_target(struct takeover_call *c, const char *path)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };
	char base[PATH_MAX], link[64];
	_cleanup_close_ int root = -1, fd = -1;
	ssize_t n;
	int r;

	if (!strcmp(path, ".")) {
		snprintf(base, sizeof(base), "/proc/%d/cwd", (int)c->pid);
		fd = open(base, O_PATH | O_CLOEXEC);
	} else if (!strncmp(path, "/proc/self/", 11) || !strncmp(path, "/proc/thread-self/", 18)) {
		snprintf(base, sizeof(base), "/proc/%d/%s", (int)c->pid, strchr(path + 6, '/') + 1);
		fd = open(base, O_PATH | O_CLOEXEC);
	} else {
		snprintf(base, sizeof(base), "/proc/%d/root", (int)c->pid);
		root = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (root < 0)
			return -errno;
		/* c->target is @path made absolute from the caller's working directory. */
		fd = syscall(SYS_openat2, root, c->target, &how, sizeof(how));
	}
	if (fd < 0)
		return -errno;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	r = takeover_identity(link, &c->dev, &c->ino);
	if (r < 0)
		return r;
	n = readlink(link, c->target, sizeof(c->target) - 1);
	if (n < 0)
		return -errno;
	c->target[n] = '\0';
	return 0;
}

int takeover_open_root(const char *path, unsigned conn)
{
	struct statx stx;
	int fd = open_nofollow(path);

	if (fd < 0)
		return errno == ELOOP ? -ESTALE : -errno;
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &stx) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	if (stx.stx_dev_major != 0 || stx.stx_dev_minor != conn ||
	    !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

int takeover_open_target(const char *path, dev_t dev, ino_t ino)
{
	char link[64];
	dev_t d;
	ino_t i;
	int fd = open_nofollow(path), r;

	if (fd < 0)
		return errno == ELOOP ? -ESTALE : -errno;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	r = takeover_identity(link, &d, &i);
	if (r == 0 && (d != dev || i != ino))
		r = -ESTALE;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* Whether fd @fd of @pid is /dev/fuse, and whether it has O_CLOEXEC. 0 or -errno. */
static int fd_info(pid_t pid, int fd, bool *cloexec)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (strcmp(buf, "/dev/fuse"))
		return -EBADF;
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	p = strstr(buf, "flags:");
	if (!p)
		return -EIO;
	*cloexec = strtoul(p + 6, NULL, 8) & O_CLOEXEC;
	return 0;
}

/* Parses a "fd=N,rootmode=...,user_id=...,..." FUSE mount data string into @c. */
static void parse_data(struct takeover_call *c, char *data)
{
	char *save = NULL;
	bool fd_seen = false;

	c->mnt.ids_set = true;
	c->mnt.rootmode = S_IFDIR;
	for (char *opt = strtok_r(data, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		char *val = strchr(opt, '='), *end = NULL;
		unsigned long v = 0;

		if (val) {
			*val++ = '\0';
			errno = 0;
			v = strtoul(val, &end, !strcmp(opt, "rootmode") ? 8 : 10);
			if (errno || end == val || *end || v > UINT32_MAX)
				val = NULL; /* below: an option the keeper does not know */
		}
		if (val && !strcmp(opt, "fd")) {
			c->fd = v;
			fd_seen = true;
		} else if (val && !strcmp(opt, "rootmode")) {
			c->mnt.rootmode = v;
		} else if (val && !strcmp(opt, "user_id")) {
			c->mnt.user_id = v;
		} else if (val && !strcmp(opt, "group_id")) {
			c->mnt.group_id = v;
		} else if (val && !strcmp(opt, "max_read")) {
			c->mnt.max_read = v;
		} else if (!val && !strcmp(opt, "allow_other")) {
			c->mnt.allow_other = true;
		} else if (!val && !strcmp(opt, "default_permissions")) {
			c->mnt.default_permissions = true;
		} else {
			c->kind = TAKEOVER_REFUSED;
			snprintf(c->why, sizeof(c->why), "the mount option '%s' is not one fusekeeper "
				 "passes on", opt);
			return;
		}
	}
	if (!fd_seen) {
		c->kind = TAKEOVER_REFUSED;
		snprintf(c->why, sizeof(c->why), "its mount options have no fd=");
	} else if ((c->mnt.rootmode & S_IFMT) != S_IFDIR && (c->mnt.rootmode & S_IFMT) != S_IFREG) {
		c->kind = TAKEOVER_REFUSED;
		snprintf(c->why, sizeof(c->why), "rootmode=%o is neither a directory nor a file",
			 c->mnt.rootmode);
	}
}

/*
 * Whether @pid may mount: CAP_SYS_ADMIN in its effective set, in the keeper's user namespace.
 * The kernel's own check for a mount there, which the trap skips: an unprivileged
 * daemon gets EPERM, and libfuse then mounts through fusermount3, whose checks of the user's
 * rights (owning the mountpoint, user_allow_other) the keeper keeps that way.
 */
static bool may_mount(pid_t pid)
{
	char path[64], buf[4096], *p;
	unsigned long long caps;
	struct stat mine, theirs;
	ssize_t n;
	int f;

	/* Capabilities count in the keeper's user namespace only: anyone may make their own. */
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	if (stat("/proc/self/ns/user", &mine) < 0 || stat(path, &theirs) < 0 ||
	    mine.st_ino != theirs.st_ino || mine.st_dev != theirs.st_dev)
		return false;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return false;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strstr(buf, "\nCapEff:");
	return p && sscanf(p + 9, "%llx", &caps) == 1 && (caps >> CAP_SYS_ADMIN & 1);
}

/* Reads a trapped mount(2) into @c. Returns 1 (a FUSE mount), 0 (another type), or -errno. */
static int read_mount(int mem, const struct seccomp_notif *req, struct takeover_call *c)
{
	char type[64], path[PATH_MAX], source[1024] = "", data[4096] = "";
	int r;

	r = read_string(mem, req->data.args[2], type, sizeof(type));
	if (r == -ENAMETOOLONG && strncmp(type, "fuse", 4))
		return 0; /* no FUSE type: the kernel's own error for a name that long */
	if (r == -ENAMETOOLONG) {
		c->kind = TAKEOVER_REFUSED;
		snprintf(c->why, sizeof(c->why), "its filesystem type %.20s... is too long", type);
		return 1;
	}
	if (r < 0)
		return r;
	if (strcmp(type, "fuse") && strncmp(type, "fuse.", 5) && strcmp(type, "fuseblk") &&
	    strncmp(type, "fuseblk.", 8)) {
		/* Told to the caller, for the log: a daemon that mounts tmpfs and waits is a puzzle. */
		c->kind = TAKEOVER_PASSED;
		snprintf(c->why, sizeof(c->why), "%s", type);
		if (read_string(mem, req->data.args[1], path, sizeof(path)) == 0)
			snprintf(c->target, sizeof(c->target), "%s", path);
		return 1;
	}
	if (!may_mount(c->pid))
		return -EPERM;
	c->kind = TAKEOVER_MOUNT;
	mount_options_init(&c->mnt);
	c->mnt.flags = req->data.args[3];
	r = read_string(mem, req->data.args[1], path, sizeof(path));
	if (r < 0)
		return r;
	r = resolve_path(c->pid, path, c->target, sizeof(c->target));
	if (r == 0)
		r = caller_target(c, path);
	if (r < 0) {
		c->kind = TAKEOVER_REFUSED;
		c->error = r == -EXDEV ? -EPERM : r;
		snprintf(c->why, sizeof(c->why), "its mount target %s cannot be resolved: %s", path,
			 r == -EXDEV ? "it runs in a chroot" : strerror(-r));
		return 1;
	}
	if (req->data.args[0])
		read_string(mem, req->data.args[0], source, sizeof(source));
	if (req->data.args[4] && (r = read_string(mem, req->data.args[4], data, sizeof(data))) < 0)
		return r;
	if (!strncmp(type, "fuseblk", 7)) {
		c->kind = TAKEOVER_REFUSED;
		snprintf(c->why, sizeof(c->why), "it mounts type %s, a FUSE filesystem on a block "
			 "device, which fusekeeper does not take over", type);
		return 1;
	}
	if ((source[0] && !(c->mnt.fsname = strdup(source))) ||
	    (type[4] == '.' && !(c->mnt.subtype = strdup(type + 5))))
		return -ENOMEM;
	parse_data(c, data);
	if (c->kind == TAKEOVER_MOUNT && (r = fd_info(c->pid, c->fd, &c->fd_cloexec)) < 0) {
		c->kind = TAKEOVER_REFUSED;
		snprintf(c->why, sizeof(c->why), "its fd=%d is not /dev/fuse (%s)", c->fd,
			 strerror(-r));
	}
	return 1;
}

static int respond(int listener, uint64_t id, int error, uint32_t flags)
{
	struct seccomp_notif_resp resp = { .id = id, .error = error, .flags = flags };

	return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 ? -errno : 0;
}

/*
 * The notification ioctls are used directly: libseccomp 2.5.4 (Debian 12) turns every error of
 * its wrappers into -ECANCELED, where the keeper must tell a caller that died (ENOENT) from a
 * broken listener, and has no wrapper for SECCOMP_IOCTL_NOTIF_ADDFD.
 */
int takeover_receive(int listener, struct takeover_call *c)
{
	struct seccomp_notif_sizes sizes;
	_cleanup_free_ struct seccomp_notif *req = NULL;
	_cleanup_free_ char *name = NULL;
	_cleanup_close_ int mem = -1;
	char path[PATH_MAX], memp[64];
	int r = 0;

	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
		return -errno;
	req = calloc(1, MAX((size_t)sizes.seccomp_notif, sizeof(*req)));
	if (!req)
		return -ENOMEM;
	if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) < 0)
		return errno == ENOENT || errno == EINTR ? 0 : -errno;
	memset(c, 0, sizeof(*c));
	c->error = -EPERM;
	c->id = req->id;
	c->pid = req->pid;
	c->fd = -1;
	name = seccomp_syscall_resolve_num_arch(req->data.arch, req->data.nr);
	snprintf(memp, sizeof(memp), "/proc/%d/mem", (int)req->pid);
	mem = open(memp, O_RDONLY | O_CLOEXEC);
	if (!name || mem < 0) {
		/* Gone already, or a call the filter does not trap: let the kernel answer. */
		respond(listener, req->id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
		return 0;
	}
	if (!strcmp(name, "mount")) {
		r = read_mount(mem, req, c);
	} else if (!strcmp(name, "umount2") || !strcmp(name, "umount")) {
		r = read_string(mem, req->data.args[0], path, sizeof(path));
		if (r == 0)
			r = resolve_path(c->pid, path, c->target, sizeof(c->target));
		/* What it leads to (a mount's root: of which connection?), when it can be found. */
		if (r == 0 && caller_target(c, path) < 0)
			c->dev = c->ino = 0;
		c->kind = TAKEOVER_UMOUNT;
		r = r < 0 ? 0 : 1;
	} else if (!strcmp(name, "splice")) {
		c->kind = TAKEOVER_SPLICE;
		c->fd_in = req->data.args[0];
		c->off_in = req->data.args[1];
		c->fd = req->data.args[2];
		c->len = req->data.args[4];
		/* Offsets into the output (args[3]) mean it is no pipe-to-channel copy. */
		r = req->data.args[3] ? 0 : 1;
	} else if (!strcmp(name, "fsopen")) {
		r = read_string(mem, req->data.args[0], path, sizeof(path));
		if (r == 0 && !strncmp(path, "fuse", 4)) {
			/* libfuse's newer mount code goes back to mount(2) on this error. */
			respond(listener, req->id, -ENOSYS, 0);
			return 0;
		}
		r = 0;
	}
	/* What was read is the caller's only if its call is still the one trapped. */
	if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &c->id) < 0) {
		mount_options_free(&c->mnt);
		return 0;
	}
	if (r == 0) {
		respond(listener, c->id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
		mount_options_free(&c->mnt);
		return 0;
	}
	if (r < 0) {
		respond(listener, c->id, r, 0);
		mount_options_free(&c->mnt);
		return 0;
	}
	return 1;
}

int takeover_install_fd(int listener, const struct takeover_call *c, int fd)
{
	struct seccomp_notif_addfd add = {
		.id = c->id,
		.flags = SECCOMP_ADDFD_FLAG_SETFD,
		.srcfd = fd,
		.newfd = c->fd,
		.newfd_flags = c->fd_cloexec ? O_CLOEXEC : 0,
	};

	return ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add) < 0 ? -errno : 0;
}

int takeover_answer(int listener, const struct takeover_call *c, int error)
{
	return respond(listener, c->id, error, 0);
}

int takeover_channel_set(struct takeover_channel *ch, int chan)
{
	struct stat st;

	takeover_channel_clear(ch);
	if (fstat(chan, &st) < 0)
		return -errno;
	if (S_ISSOCK(st.st_mode)) {
		ch->sock_ino = st.st_ino;
		return 0;
	}
	ch->fd = fcntl(chan, F_DUPFD_CLOEXEC, 3);
	return ch->fd < 0 ? -errno : 0;
}

void takeover_channel_clear(struct takeover_channel *ch)
{
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
	ch->sock_ino = 0;
}

/* A pidfd of the process that thread @tid belongs to (pidfd_open() takes a process). */
static int process_pidfd(pid_t tid)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int f, tgid = tid;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f >= 0) {
		n = read(f, buf, sizeof(buf) - 1);
		close(f);
		if (n > 0) {
			buf[n] = '\0';
			p = strstr(buf, "\nTgid:");
			if (p)
				tgid = atoi(p + 6);
		}
	}
	return syscall(SYS_pidfd_open, tgid, 0);
}

/* Whether fd @theirs of @pid is the channel. */
static bool is_channel(pid_t pid, int theirs, const struct takeover_channel *ch)
{
	char path[64], link[64], want[64];
	ssize_t n;

	if (!ch->sock_ino)
		return ch->fd >= 0 &&
		       syscall(SYS_kcmp, getpid(), pid, KCMP_FILE, ch->fd, theirs) == 0;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, theirs);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	snprintf(want, sizeof(want), "socket:[%lu]", (unsigned long)ch->sock_ino);
	return !strcmp(link, want);
}

int takeover_splice(int listener, const struct takeover_call *c, const struct takeover_channel *ch)
{
	struct seccomp_notif_resp resp = { .id = c->id };
	_cleanup_close_ int pidfd = -1, in = -1, out = -1;
	_cleanup_free_ char *buf = NULL;
	struct iovec iov;
	struct stat st;
	ssize_t n = 0;
	int avail = 0;

	if (!ch->sock_ino || !is_channel(c->pid, c->fd, ch))
		return takeover_continue(listener, c);
	pidfd = process_pidfd(c->pid);
	if (pidfd >= 0) {
		in = syscall(SYS_pidfd_getfd, pidfd, c->fd_in, 0);
		out = syscall(SYS_pidfd_getfd, pidfd, c->fd, 0);
	}
	/* What fd_out is now (another thread may have replaced it): still the channel? */
	if (out < 0 || fstat(out, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_ino != ch->sock_ino)
		return takeover_continue(listener, c);
	/* From a pipe, at its start (no off_in): libfuse's reply, which it put there whole. */
	if (in < 0 || fstat(in, &st) < 0 || !S_ISFIFO(st.st_mode) || c->off_in) {
		resp.error = -EINVAL;
		goto answer;
	}
	/* FIONREAD of a pipe is at most its capacity: the buffer is bounded. */
	if (ioctl(in, FIONREAD, &avail) < 0 || avail < 0) {
		resp.error = -EINVAL;
		goto answer;
	}
	iov.iov_len = MIN((size_t)avail, c->len);
	buf = malloc(iov.iov_len ? iov.iov_len : 1);
	if (!buf) {
		resp.error = -ENOMEM;
		goto answer;
	}
	iov.iov_base = buf;
	/* RWF_NOWAIT: another of its threads may have emptied the pipe meanwhile. */
	if (iov.iov_len && (n = preadv2(in, &iov, 1, -1, RWF_NOWAIT)) < 0) {
		resp.error = errno == EAGAIN ? 0 : -errno;
		n = 0;
	}
	/* Its own end of the channel: its reader sees one message, as if it had written it. */
	if (n > 0 && send(out, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
		resp.error = errno == EAGAIN ? -EAGAIN : -EIO;
		goto answer;
	}
	resp.val = n;
answer:
	return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 ? -errno : 0;
}

int takeover_channel_shutdown(pid_t pid, const struct takeover_channel *ch)
{
	_cleanup_close_ int pidfd = -1;
	struct dirent *de;
	char path[64];
	DIR *d;
	int r = -ENOENT;

	if (!ch->sock_ino)
		return -ENOTSOCK;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	d = opendir(path);
	if (pidfd < 0 || !d) {
		if (d)
			closedir(d);
		return -ESRCH;
	}
	while (r == -ENOENT && (de = readdir(d))) {
		char *end;
		long theirs = strtol(de->d_name, &end, 10);
		int fd;

		if (*end || end == de->d_name || !is_channel(pid, theirs, ch))
			continue;
		fd = syscall(SYS_pidfd_getfd, pidfd, theirs, 0);
		r = fd < 0 ? -errno : shutdown(fd, SHUT_RDWR) < 0 ? -errno : 0;
		if (fd >= 0)
			close(fd);
	}
	closedir(d);
	return r;
}

int takeover_continue(int listener, const struct takeover_call *c)
{
	return respond(listener, c->id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
}

int takeover_has_mount(pid_t pid, const char *point, unsigned conn)
{
	struct nsm_table t;
	char path[64];
	int r, found = 0;

	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)pid);
	r = nsm_read_table(path, &t);
	if (r < 0)
		return r;
	for (size_t i = 0; i < t.n; i++)
		if (t.m[i].major == 0 && t.m[i].minor == conn &&
		    (!point || !strcmp(t.m[i].point, point)))
			found = 1;
	nsm_table_free(&t);
	return found;
}

/*
 * Runs a mount call in the mount namespace of @pid, from a child process (setns(2) needs a
 * single-threaded caller), on what @point leads to there with no symbolic link followed:
 * attaches @tree there if that is the directory @dev:@ino, or, when @tree is -1, detaches the
 * mount of connection @conn there. Returns 0 (1: detached) or -errno.
 */
static int in_namespace(pid_t pid, int tree, const char *point, dev_t dev, ino_t ino,
			unsigned conn)
{
	_cleanup_close_ int ns = -1;
	int status;
	pid_t child;

	/* Through a pidfd (setns, Linux 5.8): never a stranger that reused the pid. */
	ns = process_pidfd(pid);
	if (ns < 0)
		return -errno;
	child = fork();
	if (child < 0)
		return -errno;
	if (child == 0) {
		char link[64];
		dev_t d;
		ino_t i;
		int fd, r;

		if (setns(ns, CLONE_NEWNS) < 0)
			_exit(errno);
		if (tree < 0) {
			r = detach_at(point, conn);
			_exit(r < 0 ? -r : r ? 200 : 0);
		}
		fd = open_nofollow(point);
		if (fd < 0)
			_exit(errno == ELOOP ? ESTALE : errno);
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		r = takeover_identity(link, &d, &i);
		if (r == 0 && (d != dev || i != ino))
			r = -ESTALE;
		if (r == 0 && move_mount(tree, "", fd, "",
					 MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			r = -errno;
		_exit(-r);
	}
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status))
		return -EIO;
	return WEXITSTATUS(status) == 200 ? 1 : -WEXITSTATUS(status);
}

int takeover_show_mount(pid_t pid, int root, const char *mountpoint, dev_t dev, ino_t ino,
			unsigned conn, char *err, size_t errlen)
{
	_cleanup_close_ int tree = -1;
	int r = takeover_has_mount(pid, mountpoint, conn);

	if (r > 0)
		return 0;
	if (r < 0) {
		snprintf(err, errlen, "cannot read the mounts of process %d: %s", (int)pid,
			 strerror(-r));
		return r;
	}
	/* A clone of the mount itself, by its root: not of whatever a name leads to now. */
	tree = open_tree(root, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (tree < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot clone the mount at %s: %s", mountpoint, strerror(-r));
		return r;
	}
	r = in_namespace(pid, tree, mountpoint, dev, ino, conn);
	if (r < 0)
		snprintf(err, errlen, "cannot attach a clone of the mount at %s in the mount "
			 "namespace of process %d: %s", mountpoint, (int)pid,
			 r == -ESTALE ? "the name leads elsewhere there" : strerror(-r));
	return r;
}

int takeover_hide_mount(pid_t pid, const char *mountpoint, unsigned conn)
{
	int r = takeover_has_mount(pid, mountpoint, conn);

	if (r <= 0)
		return r;
	return in_namespace(pid, -1, mountpoint, 0, 0, conn);
}

int takeover_holds_channel(pid_t pid, const struct takeover_channel *ch)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while (!found && (de = readdir(d))) {
		char *end;
		long theirs = strtol(de->d_name, &end, 10);

		if (!*end && end != de->d_name && is_channel(pid, theirs, ch))
			found = 1;
	}
	closedir(d);
	return found;
}
