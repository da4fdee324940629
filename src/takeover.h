/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Taking over the mount a daemon makes itself (COMMAND without {}): the daemon runs with its own
 * command line under a seccomp filter that traps its mount-family system calls
 * (SECCOMP_RET_USER_NOTIF, seccomp_unotify(2), Linux 5.9 for SECCOMP_IOCTL_NOTIF_ADDFD). The
 * keeper reads a trapped FUSE mount(2), makes the real mount itself the first time, puts its own
 * channel in place of the daemon's /dev/fuse fd and answers success; the daemon's unmount is
 * answered without unmounting. The supervisor decides; this unit does the mechanics: the filter,
 * reading and answering trapped calls, the daemon's mount namespace, and finding the process that
 * holds the channel after the daemon forked.
 *
 * Every daemon runs in a mount namespace of its own, a slave of the keeper's: there the keeper's
 * live mount is detached before the daemon starts, so that the checks a daemon makes before it
 * mounts (stat(2) or an empty-directory check of the mountpoint, rclone's look at
 * /proc/self/mountinfo) see the directory beneath instead of a mount no daemon serves yet, and a
 * clone of the keeper's mount is attached there when the daemon's mount(2) is answered.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mount.h"

/* The filter program, built once (with libseccomp) before any daemon starts. */
struct takeover;

/* Builds the filter. Returns 0 or -errno with a message in @err. */
int takeover_new(struct takeover **t, char *err, size_t errlen);
void takeover_free(struct takeover *t);

/*
 * In the daemon's process, between fork() and execve(): async-signal-safe (the keeper has
 * threads). Enters a mount namespace of its own whose mounts are slaves of the keeper's, detaches
 * the mount of connection @conn at @hide there if @hide is not NULL and leads to it with no
 * symbolic link (the keeper's mount, for a restarted daemon), installs the filter
 * without no_new_privs (so that the setuid fusermount3 still works, filtered) and sends the
 * filter's listener fd over the socket @sock. Returns 0 or -errno, with a static description of
 * the step that failed in @step.
 */
int takeover_child(const struct takeover *t, const char *hide, unsigned conn, int sock,
		   const char **step);

/* In the keeper: receives the listener fd the daemon's process sent over @sock. 0 or -errno. */
int takeover_recv_listener(int sock);

/* What a trapped call asks. */
enum takeover_kind {
	TAKEOVER_MOUNT,	  /* mount(2) of a FUSE filesystem ("fuse", "fuse.*") */
	TAKEOVER_UMOUNT,  /* umount2(2) or umount(2): answered, or let through, by the caller */
	TAKEOVER_REFUSED, /* a FUSE mount this unit cannot take over: @why says why */
	TAKEOVER_SPLICE,  /* splice(2): to the channel it is made one message (takeover_splice()) */
	TAKEOVER_PASSED,  /* mount(2) of another filesystem type (in @why): the caller lets it run
			     (takeover_continue()); it stays in the daemon's namespace */
};

/* One trapped call, read from the calling process and checked valid (SECCOMP_IOCTL_NOTIF_ID_VALID). */
struct takeover_call {
	uint64_t id;		 /* the notification's cookie */
	pid_t pid;		 /* the calling thread */
	enum takeover_kind kind;
	char target[PATH_MAX];	 /* absolute, "." and ".." resolved lexically; relative targets
				    are taken from the caller's working directory. TAKEOVER_MOUNT:
				    the directory (or file) itself, symbolic links resolved */
	dev_t dev;		 /* TAKEOVER_MOUNT: the target's identity as the caller resolves
				    it (statx without a FUSE request) */
	ino_t ino;
	struct mount_options mnt; /* TAKEOVER_MOUNT: the daemon's mount flags and options, with
				     mnt.fsname and mnt.subtype allocated (mount_options_free) */
	int fd;			 /* TAKEOVER_MOUNT: the daemon's /dev/fuse fd (its "fd=N");
				    TAKEOVER_SPLICE: its fd_out */
	int fd_in;		 /* TAKEOVER_SPLICE: its fd_in */
	uint64_t off_in;	 /* TAKEOVER_SPLICE: its off_in pointer (0: none) */
	size_t len;		 /* TAKEOVER_SPLICE: the bytes asked for */
	bool fd_cloexec;	 /* ... and whether it had O_CLOEXEC */
	char why[256];		 /* TAKEOVER_REFUSED: what the daemon asked that cannot be done */
	int error;		 /* TAKEOVER_REFUSED: the error to answer (-errno): -EPERM, or the
				    kernel's own for a target that cannot be resolved */
};

/*
 * Receives one trapped call from @listener. Calls this unit answers itself — a mount of another
 * filesystem type, fsopen(2) of another filesystem, a call whose arguments cannot be read — are
 * let through to the kernel (SECCOMP_USER_NOTIF_FLAG_CONTINUE); fsopen(2) of "fuse" gets ENOSYS,
 * which sends libfuse back to mount(2). Returns 1 with @c filled for the caller to answer with
 * takeover_answer(), 0 when nothing is left to do (answered here, or the caller died), or
 * -errno when the listener failed (-ENOENT never: that is 0).
 */
int takeover_receive(int listener, struct takeover_call *c);

/*
 * Puts @fd (the keeper's) in the caller's fd table at c->fd, replacing its /dev/fuse fd there
 * (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD). Returns 0 or -errno (-ENOENT: the
 * caller is gone).
 */
int takeover_install_fd(int listener, const struct takeover_call *c, int fd);

/* Answers the call: @error 0 (success) or -errno. Returns 0 or -errno (-ENOENT: caller gone). */
int takeover_answer(int listener, const struct takeover_call *c, int error);

/* The channel the keeper gave a daemon, as the keeper recognizes it in the daemon's fds. */
struct takeover_channel {
	ino_t sock_ino; /* a socket (proxy mode): its inode number, unique; 0: not a socket */
	int fd;		/* otherwise (a clone of /dev/fuse): a dup of it, for kcmp(2); -1: none */
};

/*
 * Records @chan (the mode's end given to the daemon) in @ch. A socket is recognized by its
 * inode, with no copy kept open: a copy would keep the daemon's end open after the daemon
 * closed it, and the relay would never see it closed. Returns 0 or -errno.
 */
int takeover_channel_set(struct takeover_channel *ch, int chan);
void takeover_channel_clear(struct takeover_channel *ch);

/*
 * A trapped splice(2): if its fd_out is the channel @ch, a socket, and its fd_in a pipe, moves
 * what the pipe holds, up to c->len bytes, to the channel as one message and answers the call
 * with the count, as splice into /dev/fuse is one write for the kernel; into a socket it would
 * be one message per batch of pages, which no reader can put together again safely (libfuse
 * splices replies when a daemon asks for FUSE_CAP_SPLICE_WRITE, as fuse-overlayfs does). It
 * never waits: what the pipe does not hold yet is not moved. Any other splice runs as the
 * caller made it; one into the channel that is not from a pipe at its start gets EINVAL.
 * Returns 0 or -errno.
 */
int takeover_splice(int listener, const struct takeover_call *c, const struct takeover_channel *ch);

/*
 * Shuts down the channel @ch, a socket, in process @pid (which holds it), so that its reads see
 * end of file, as after the end of a real connection. Returns 0, or -errno (-ENOTSOCK: not a
 * socket).
 */
int takeover_channel_shutdown(pid_t pid, const struct takeover_channel *ch);

/*
 * Lets the call run in the kernel as the caller made it (SECCOMP_USER_NOTIF_FLAG_CONTINUE): for
 * an umount of something that is not the keeper's mount. Returns 0 or -errno.
 */
int takeover_continue(int listener, const struct takeover_call *c);

/*
 * Opens @path in the keeper's namespace as an O_PATH fd, following no symbolic link, and checks
 * that it is the object @dev:@ino (what a trapped mount call named): the keeper then mounts on
 * "/proc/self/fd/N", the object checked, not on a name a user could have changed meanwhile.
 * Sends no FUSE request. Returns the fd, or -errno (-ESTALE: another object now has that name).
 */
int takeover_open_target(const char *path, dev_t dev, ino_t ino);

/*
 * Opens the root of the mount of connection @conn at @path (O_PATH), following no symbolic link,
 * checked to be that mount's root (device 0:@conn, STATX_ATTR_MOUNT_ROOT): the keeper acts on
 * its mount through such an fd, used at once and closed (held, it would keep an unmounted
 * mount's connection alive). Sends no FUSE request. Returns the fd, or -errno (-ESTALE: @path
 * leads elsewhere).
 */
int takeover_open_root(const char *path, unsigned conn);

/* The identity of @path (statx without a FUSE request, following links). 0 or -errno. */
int takeover_identity(const char *path, dev_t *dev, ino_t *ino);

/*
 * Whether the mount namespace of @pid has a mount of connection @conn (device 0:@conn) at @point
 * (NULL: anywhere), from /proc/PID/mountinfo. Returns 1, 0, or -errno.
 */
int takeover_has_mount(pid_t pid, const char *point, unsigned conn);

/*
 * Makes the keeper's mount, whose root is @root (an O_PATH fd), visible at @mountpoint in the
 * mount namespace of @pid (fusectl number @conn), unless a mount of it is there already
 * (propagated): a clone of it (open_tree(OPEN_TREE_CLONE)) is attached there from a child that
 * entered the namespace, on what @mountpoint leads to with no symbolic link, if that is the
 * directory @dev:@ino (the one the daemon's call named). Nothing in it sends FUSE requests.
 * Returns 0, or -errno with a message in @err.
 */
int takeover_show_mount(pid_t pid, int root, const char *mountpoint, dev_t dev, ino_t ino,
			unsigned conn, char *err, size_t errlen);

/*
 * Detaches the mount of connection @conn at @mountpoint in the mount namespace of @pid, if one is
 * there (what the name leads to, with no symbolic link, is checked to be it): for when the keeper's own mount went (unmounted by the user), so that the daemon's copy
 * does not keep the connection alive. Returns 1 if one was detached, 0 if none was there, or -errno.
 */
int takeover_hide_mount(pid_t pid, const char *mountpoint, unsigned conn);

/*
 * Whether process @pid has the channel @ch among its fds: how the process that took the
 * daemon's channel is found after the daemon forked. Returns 1, 0, or -errno.
 */
int takeover_holds_channel(pid_t pid, const struct takeover_channel *ch);

/*
 * Lexically normalizes the absolute path @path in place: repeated and trailing slashes, "." and
 * ".." (without following symbolic links: nothing on the live mount may be looked up).
 */
void takeover_normalize(char *path);
