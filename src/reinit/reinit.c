/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reinit mode: the kernel keeps the connection (FUSE_DEV_IOC_REINIT, kernel/patches). The keeper
 * holds the mount's /dev/fuse (FUSE_REINIT_HOLD), so that the requests a dead daemon had read
 * stay pending; each daemon gets a clone of it. When one dies, the keeper begins a new
 * generation (FUSE_REINIT_BEGIN: the dead daemon's devices retired, its INIT queued again),
 * starts the next daemon on a fresh clone and waits until the kernel accepts its INIT answer
 * (FUSE_REINIT_WAIT). Inodes and open files heal in the kernel at their next use. No relay, no
 * new mount (docs/kernel-api.md, docs/design.md "Reinit mode").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "child.h"
#include "fuse_reinit.h"
#include "log.h"
#include "mode.h"
#include "served.h"
#include "util.h"

struct reinit {
	struct keeper *k;
	const struct keeper_config *cfg;
	int holder;	/* the mount's /dev/fuse, FUSE_REINIT_HOLD */
	int rootfd;	/* O_PATH fd of the mount's root, until the first daemon serves */
	int clone;	/* the current daemon's /dev/fuse (our copy), -1 when none */
	uint64_t gen;	/* the generation the current daemon was started for */
	bool served;	/* a daemon has served the mount */
	bool fenced;	/* a BEGIN since a daemon was last accepted: requests wait for one */
	bool unused;	/* ... and no daemon was given its generation yet */
	bool give_up;	/* give_up() was called since a daemon was last accepted */
	/*
	 * The daemon serves while the kernel still writes acknowledged writes again (WAIT gave
	 * EINPROGRESS): rewrite_left files were left at rewrite_since (now_ms()), the last time
	 * that number went down. hung_at() and a timer (tick, every REWRITE_POLL_MS) ask the
	 * kernel how it goes (rewrite_poll()).
	 */
	bool rewriting;
	int64_t rewrite_since;
	uint32_t rewrite_left;
	int tick;
	/*
	 * event_fd(): readable when the connection ends, or tick fires. A spare clone, watched
	 * only while no daemon serves (see remount.c's ev_ep for why not always), reports
	 * EPOLLERR when the connection is aborted or unmounted. Made after each BEGIN, which
	 * would retire it.
	 */
	int ev_ep;
	int watch;
	bool watching;
};

/* How often the keeper asks the kernel whether its writes again are done, while they go on. */
#define REWRITE_POLL_MS 1000

static int reinit_ioctl(int fd, struct fuse_reinit *arg)
{
	return ioctl(fd, FUSE_DEV_IOC_REINIT, arg) < 0 ? -errno : 0;
}

/* A new /dev/fuse fd attached to the connection of @devfd (FUSE_DEV_IOC_CLONE), or -errno. */
static int clone_dev(int devfd)
{
	uint32_t src = (uint32_t)devfd;
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, FUSE_DEV_IOC_CLONE, &src) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* Starts or stops watching the end of the connection (struct reinit.watch). */
static void watch_end(struct reinit *ri, bool on)
{
	/* EPOLLERR only (always reported): the connection ended. */
	struct epoll_event ev = { .events = 0 };

	if (ri->watch < 0 || ri->watching == on)
		return;
	ev.data.fd = ri->watch;
	if (epoll_ctl(ri->ev_ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, ri->watch, &ev) == 0)
		ri->watching = on;
}

/* Replaces the spare clone that watches the end of the connection, after a BEGIN. */
static void watch_new(struct reinit *ri)
{
	bool was = ri->watching;

	watch_end(ri, false);
	if (ri->watch >= 0)
		close(ri->watch);
	ri->watch = clone_dev(ri->holder);
	if (ri->watch < 0)
		log_warn("Cannot watch the FUSE connection for its end: %s", strerror(-ri->watch));
	watch_end(ri, was);
}

static void reinit_stop(void *state);

static int reinit_start(struct keeper *k, int devfd, void **state)
{
	struct reinit *ri = calloc(1, sizeof(*ri));
	struct fuse_reinit arg = { .op = FUSE_REINIT_HOLD };
	int r;

	if (!ri)
		return -ENOMEM;
	ri->k = k;
	ri->cfg = keeper_config(k);
	ri->holder = devfd;
	ri->clone = ri->watch = -1;
	ri->ev_ep = epoll_create1(EPOLL_CLOEXEC);
	ri->tick = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	/* O_PATH: no open request; the walk to the root asks the daemon nothing. */
	ri->rootfd = open(ri->cfg->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ri->ev_ep < 0 || ri->tick < 0 || ri->rootfd < 0 ||
	    epoll_ctl(ri->ev_ep, EPOLL_CTL_ADD, ri->tick,
		      &(struct epoll_event){ .events = EPOLLIN, .data.fd = ri->tick }) < 0) {
		r = -errno;
		goto fail;
	}
	r = reinit_ioctl(devfd, &arg);
	if (r < 0) {
		log_error("FUSE_REINIT_HOLD on the mount's /dev/fuse failed: %s", strerror(-r));
		goto fail;
	}
	ri->gen = arg.gen;
	watch_new(ri);
	watch_end(ri, true);
	*state = ri;
	return 0;
fail:
	ri->holder = -1; /* the supervisor's */
	reinit_stop(ri);
	return r;
}

/*
 * FUSE_REINIT_GIVE_UP: what waits for a daemon, and every new request, fails with EIO until the
 * kernel accepts one. Returns 0, or -EOPNOTSUPP on a build of the patches without it, or
 * another -errno (logged).
 */
static int give_up_now(struct reinit *ri)
{
	struct fuse_reinit arg = { .op = FUSE_REINIT_GIVE_UP };
	int r = reinit_ioctl(ri->holder, &arg);

	if (r == -EALREADY) {
		/* The daemon being started was accepted meanwhile: attach() says so next. */
		log_debug("FUSE_REINIT_GIVE_UP: a daemon serves already");
		return 0;
	}
	if (r == -EINVAL) {
		log_warn("This kernel's FUSE_DEV_IOC_REINIT has no FUSE_REINIT_GIVE_UP (an older "
			 "build of fusekeeper's kernel/patches): requests wait for the next daemon");
		return -EOPNOTSUPP;
	}
	if (r < 0)
		log_warn("FUSE_REINIT_GIVE_UP failed: %s", strerror(-r));
	return r;
}

/*
 * FUSE_REINIT_BEGIN: a new generation, whose INIT waits for the next daemon. The last daemon is
 * dead or about to be (the supervisor detached it first), and BEGIN retires whatever of it is
 * left. Returns 0 or -errno (logged, but for ENOTCONN: the connection ended).
 */
static int begin(struct reinit *ri)
{
	/*
	 * --write-through: the dead daemon stored what it acknowledged, so the kernel may send
	 * a FLUSH or fsync it left unanswered again rather than fail it.
	 */
	struct fuse_reinit arg = {
		.op = FUSE_REINIT_BEGIN,
		.flags = ri->cfg->write_through ? FUSE_REINIT_DURABLE_WRITES : 0,
	};
	int r;

	watch_end(ri, false);
	r = reinit_ioctl(ri->holder, &arg);
	if (r < 0) {
		if (r != -ENOTCONN)
			log_error("FUSE_REINIT_BEGIN failed: %s", strerror(-r));
		watch_end(ri, true);
		return r;
	}
	ri->gen = arg.gen;
	ri->fenced = ri->unused = true;
	log_debug("FUSE connection at generation %" PRIu64, ri->gen);
	if (arg.lost)
		log_warn("%" PRIu32 " %s changes the dead daemon acknowledged and had not synced; "
			 "they may be lost, and the next fsync of each reports EIO (give "
			 "--write-through if the daemon stores before it answers)", arg.lost,
			 arg.lost == 1 ? "file or directory held" : "files or directories held");
	if (arg.rewrite)
		log_info("%" PRIu32 " %s writes the dead daemon acknowledged and had not synced; "
			 "the kernel writes them again to the new daemon from the page cache",
			 arg.rewrite, arg.rewrite == 1 ? "file held" : "files held");
	watch_new(ri);
	watch_end(ri, true);
	/*
	 * A give-up outlives a BEGIN in the kernel, but not an INIT answer accepted at the last
	 * moment of a start the keeper failed; and an earlier GIVE_UP may have been refused
	 * for want of a BEGIN. Again, then: it is idempotent.
	 */
	if (ri->give_up && give_up_now(ri) == -EOPNOTSUPP)
		ri->give_up = false;
	return 0;
}

static int reinit_channel(void *state)
{
	struct reinit *ri = state;
	int r;

	if (ri->clone >= 0) {
		close(ri->clone);
		ri->clone = -1;
	}
	/* After the first daemon: a new generation, if detach() could not make one. */
	if (ri->served && !ri->unused) {
		r = begin(ri);
		if (r == -ENOTCONN)
			log_error("The FUSE connection has ended: no daemon can take it over");
		if (r < 0)
			return r;
	}
	r = clone_dev(ri->holder);
	if (r < 0) {
		log_error("Cannot clone the mount's /dev/fuse for the daemon: %s", strerror(-r));
		return r;
	}
	ri->clone = r;
	ri->unused = false;
	return ri->clone;
}

/*
 * How long one FUSE_REINIT_WAIT for the INIT answer sleeps before wait_init() looks again (at
 * most), and, once the answer is accepted, how long the kernel's writes again
 * (fuse_reinit.rewrite) may go on before the daemon counts as serving anyway (at most): they
 * go on, watched by hung_at(), and what they write waits for them. Both are cut to a part of
 * --start-timeout, so that the start policy never kills a daemon whose answer was accepted
 * for a write again that takes long.
 */
#define INIT_WAIT_SLICE_MS 1000
#define REWRITE_GRACE_MS 5000

/*
 * In a child (child_call()): FUSE_REINIT_WAIT for the generation in @arg, until the INIT answer
 * is accepted or refused, for --max-start-time at most; then for the writes again, for a grace
 * (EINPROGRESS if they go on).
 */
static int wait_init(void *arg, void *out)
{
	const struct reinit *ri = arg;
	struct fuse_reinit *w = out;
	int64_t deadline = now_ms() + ri->cfg->max_start_ms;
	int64_t slice = MIN(INIT_WAIT_SLICE_MS, ri->cfg->start_timeout_ms / 4);
	int64_t grace = MIN(REWRITE_GRACE_MS, ri->cfg->start_timeout_ms / 2);
	bool accepted = false;
	int r;

	for (;;) {
		*w = (struct fuse_reinit){
			.op = FUSE_REINIT_WAIT,
			.gen = ri->gen,
			.timeout_ns = (uint64_t)slice * 1000000,
		};
		r = reinit_ioctl(ri->holder, w);
		if (r == -EINTR || (r == -ETIMEDOUT && now_ms() < deadline))
			continue;
		/* Accepted at some point of the slice: the writes again get their grace. */
		if (r == -EINPROGRESS && !accepted) {
			accepted = true;
			slice = grace;
			continue;
		}
		return r;
	}
}

/* Logs what the kernel's writes again did, from the answer @w of a WAIT that returned 0. */
static void rewrite_done(const struct fuse_reinit *w)
{
	if (w->rewrite)
		log_info("The kernel wrote %" PRIu32 " %s again to the new daemon", w->rewrite,
			 w->rewrite == 1 ? "file's acknowledged writes" : "files' acknowledged writes");
	if (w->lost)
		log_warn("%" PRIu32 " %s the dead daemon acknowledged could not be written again; "
			 "the next fsync of each reports EIO", w->lost,
			 w->lost == 1 ? "file's writes" : "files' writes");
}

/* Starts (@on) or stops the timer that makes the keeper ask about the writes again. */
static void rewrite_watch(struct reinit *ri, bool on)
{
	struct itimerspec its = { 0 };

	if (on)
		its.it_value = its.it_interval = (struct timespec){
			.tv_sec = REWRITE_POLL_MS / 1000,
			.tv_nsec = REWRITE_POLL_MS % 1000 * 1000000,
		};
	ri->rewriting = on;
	timerfd_settime(ri->tick, 0, &its, NULL);
}

/*
 * While the daemon serves and the kernel still writes acknowledged writes again: asks the
 * kernel without waiting (a WAIT of timeout 0). Once they are done, logs what they did and
 * stops watching; while they go on, restarts rewrite_since whenever fewer files are left.
 * Returns the files left, or 0 once done (or when the kernel cannot tell: the connection or
 * the generation ended, which detach() and events() hear about).
 */
static uint32_t rewrite_poll(struct reinit *ri)
{
	struct fuse_reinit w = { .op = FUSE_REINIT_WAIT, .gen = ri->gen };
	int r;

	if (!ri->rewriting)
		return 0;
	r = reinit_ioctl(ri->holder, &w);
	if (r == -EINPROGRESS) {
		if (w.rewrite < ri->rewrite_left) {
			ri->rewrite_left = w.rewrite;
			ri->rewrite_since = now_ms();
		}
		return w.rewrite;
	}
	if (r == 0)
		rewrite_done(&w);
	else
		log_debug("FUSE_REINIT_WAIT for the writes again: %s", strerror(-r));
	rewrite_watch(ri, false);
	return 0;
}

/*
 * Names the FUSE_REINIT_R_* bits of @reason in @buf (@size bytes, at least 1), for the log:
 * the whole list fits in 96 bytes; a shorter @buf gets as much of it as fits.
 */
static const char *refusal(uint32_t reason, char *buf, size_t size)
{
	static const char *const names[] = { "an error or no answer", "the protocol minor",
					     "the flags", "max_write", "time_gran", "max_pages" };
	size_t n = 0;

	buf[0] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(names) && n < size; i++) {
		if (!(reason & (1u << i)))
			continue;
		int w = snprintf(buf + n, size - n, "%s%s", n ? ", " : "", names[i]);

		if (w < 0)
			break;
		n += (size_t)w;
	}
	return buf;
}

static int reinit_attach(void *state, struct keeper *k)
{
	struct reinit *ri = state;
	struct fuse_reinit w;
	char why[128], flags[48];
	int r;

	/*
	 * The daemon has its own copy now. Ours would keep the device open after the daemon's
	 * death, and the kernel keeps a dead daemon's requests for the next one (killable) only
	 * once the device is released.
	 */
	if (ri->clone >= 0) {
		close(ri->clone);
		ri->clone = -1;
	}
	if (!ri->served) {
		r = served_wait(k, ri->rootfd, now_ms() + ri->cfg->start_timeout_ms);
		if (r == 0) {
			ri->served = true;
			/* An fd on the mount would make a plain umount of it fail (EBUSY). */
			close(ri->rootfd);
			ri->rootfd = -1;
			watch_end(ri, false);
		}
		return r;
	}
	r = child_call(k, now_ms() + ri->cfg->start_timeout_ms, wait_init, ri, &w, sizeof(w));
	if (r == -EPROTO && w.reason == FUSE_REINIT_R_ERROR) {
		log_error("The new daemon did not answer FUSE_INIT, or answered it with an error");
		return -EPROTO;
	}
	if (r == -EPROTO) {
		snprintf(flags, sizeof(flags), " (flags differing: %#" PRIx64 ")", w.mismatch);
		log_error("The kernel refused the new daemon's FUSE_INIT answer: it differs from the "
			  "first daemon's in %s%s; a daemon taking over a connection must answer INIT "
			  "as the first one did", refusal(w.reason, why, sizeof(why)),
			  w.reason & FUSE_REINIT_R_FLAGS ? flags : "");
		return -EPROTO;
	}
	if (r == -ENOTCONN) {
		log_error("The FUSE connection ended while the new daemon started");
		return -EINTR;
	}
	if (r == -EINPROGRESS) {
		/* The daemon serves; what is being written again waits for it (hung_at()). */
		log_info("The new daemon serves; the kernel is still writing %" PRIu32 " %s again: "
			 "requests about them, and creates, wait for it (a failure shows as EIO at "
			 "the next fsync)", w.rewrite,
			 w.rewrite == 1 ? "file's acknowledged writes" : "files' acknowledged writes");
		ri->fenced = ri->give_up = false;
		ri->rewrite_left = w.rewrite;
		ri->rewrite_since = now_ms();
		rewrite_watch(ri, true);
		watch_end(ri, false);
		return 0;
	}
	if (r < 0) {
		if (r != -ETIMEDOUT && r != -ECHILD && r != -EINTR)
			log_error("FUSE_REINIT_WAIT for the new daemon failed: %s", strerror(-r));
		return r;
	}
	ri->fenced = ri->give_up = false;
	rewrite_done(&w);
	watch_end(ri, false);
	return 0;
}

static void reinit_detach(void *state)
{
	struct reinit *ri = state;

	/*
	 * A new generation at once, so that requests wait for the next daemon, and give_up()
	 * can fail them, whatever the restart policy does meanwhile. A daemon given the last
	 * one may have taken its INIT.
	 */
	/* What the writes again did, before a BEGIN counts anew. */
	rewrite_poll(ri);
	rewrite_watch(ri, false);
	if (ri->served && !ri->unused)
		begin(ri);
	/* Whether the connection ends while no daemon serves: events() */
	watch_end(ri, true);
}

static int reinit_give_up(void *state)
{
	struct reinit *ri = state;
	int r;

	if (!ri->served)
		return 0;
	ri->give_up = true;
	/* detach() could not BEGIN (it said why): the next BEGIN gives up (begin()). */
	if (!ri->fenced)
		return -EAGAIN;
	r = give_up_now(ri);
	if (r == -EOPNOTSUPP)
		ri->give_up = false;
	return r;
}

/*
 * --hang-timeout: the only request the keeper sees in reinit mode is the kernel's write again
 * that outlasted the start (EINPROGRESS): a daemon with which no file of it got done for
 * --hang-timeout (since it took over, or since the last one) is hung, and the next one does
 * it (rewrite_poll()).
 */
static int64_t reinit_hung_at(void *state, int64_t timeout_ms, char *what, size_t size)
{
	struct reinit *ri = state;
	uint32_t left = rewrite_poll(ri);

	if (!left)
		return INT64_MAX;
	snprintf(what, size, "the kernel's write again of %" PRIu32 " %s, unfinished, %.1f s "
		 "without progress", left, left == 1 ? "file" : "files",
		 (now_ms() - ri->rewrite_since) / 1000.0);
	return ri->rewrite_since + timeout_ms;
}

static int reinit_event_fd(void *state)
{
	return ((struct reinit *)state)->ev_ep;
}

static unsigned reinit_events(void *state)
{
	struct reinit *ri = state;
	struct epoll_event ev[2];
	unsigned ret = 0;
	uint64_t n;
	int i, count = epoll_wait(ri->ev_ep, ev, 2, 0);

	for (i = 0; i < count; i++) {
		if (ev[i].data.fd == ri->tick) {
			if (read(ri->tick, &n, sizeof(n)) == sizeof(n))
				rewrite_poll(ri);
		} else if (ev[i].events & (EPOLLERR | EPOLLHUP)) {
			ret |= MODE_EV_UNMOUNTED;
		}
	}
	return ret;
}

static void reinit_stop(void *state)
{
	struct reinit *ri = state;

	if (!ri)
		return;
	if (ri->clone >= 0)
		close(ri->clone);
	if (ri->watch >= 0)
		close(ri->watch);
	if (ri->rootfd >= 0)
		close(ri->rootfd);
	if (ri->ev_ep >= 0)
		close(ri->ev_ep);
	if (ri->tick >= 0)
		close(ri->tick);
	/* Last: with no daemon accepted since a BEGIN, closing the holder aborts the connection. */
	if (ri->holder >= 0)
		close(ri->holder);
	free(ri);
}

static int reinit_probe(char *err, size_t errlen)
{
	struct fuse_reinit arg = { .op = FUSE_REINIT_HOLD };
	_cleanup_close_ int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	int r;

	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "--mode=reinit: cannot open /dev/fuse: %s", strerror(-r));
		return r;
	}
	/* An fd not attached to a connection: EINVAL from a kernel that has the ioctl. */
	r = reinit_ioctl(fd, &arg);
	if (r == -EINVAL)
		return 0;
	if (r == -ENOTTY) {
		struct utsname u;
		/* A module has its directory there with an initstate; built-in FUSE has none. */
		bool module = !access("/sys/module/fuse/initstate", F_OK);

		if (uname(&u) < 0)
			snprintf(u.release, sizeof(u.release), "?");
		snprintf(err, errlen, "--mode=reinit needs a kernel with FUSE_DEV_IOC_REINIT, which "
			 "this one (%s, %s) does not have; use --mode=proxy. fusekeeper's "
			 "kernel/patches add it to Debian 12's 6.1 (make kmod; README.md, \"Reinit "
			 "mode on a host\")", u.release,
			 module ? "its fuse.ko is not the patched one: /sys/module/fuse/version "
			 "would start with fk-" : "FUSE built in, which no module can replace");
	} else
		snprintf(err, errlen, "--mode=reinit: cannot tell whether this kernel has "
			 "FUSE_DEV_IOC_REINIT: %s; use --mode=proxy", strerror(r ? -r : EPROTO));
	return r ? r : -EPROTO;
}

const struct mode_ops reinit_mode = {
	.name = "reinit",
	.probe = reinit_probe,
	.start = reinit_start,
	.channel = reinit_channel,
	.attach = reinit_attach,
	.detach = reinit_detach,
	.give_up = reinit_give_up,
	.event_fd = reinit_event_fd,
	.events = reinit_events,
	.hung_at = reinit_hung_at,
	.conn_id = NULL,
	.stop = reinit_stop,
};
