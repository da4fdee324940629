/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Remount mode: the daemon gets the mount's /dev/fuse itself (no relay). When it dies, the
 * keeper mounts a fresh instance, starts a new daemon on it and replaces every mount of the
 * old instance, in every mount namespace, by a mount of the fresh one (nsmounts.c). What the
 * old instance still holds — requests made in the gap, fds and working directories on it —
 * is answered by the keeper (docs/design.md, "Remount mode").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "mode.h"
#include "mountapi.h"
#include "nsmounts.h"
#include "proto.h"
#include "served.h"
#include "util.h"

/* Connections kept to answer for old instances; past this the oldest is aborted (ENOTCONN). */
#define MAX_RETIRED 64

/* How the keeper answers requests on an instance no daemon serves. */
enum answer { ANSWER_EIO, ANSWER_ESTALE };

/* One FUSE instance: its connection and its root. */
struct instance {
	int devfd;     /* /dev/fuse, the same open file the daemon was given */
	int rootfd;    /* its root: the fsmount() fd, or an O_PATH fd of the first mount */
	unsigned major, minor;
};

struct retired {
	int devfd;
	unsigned minor;
	enum answer answer;
};

struct remount {
	struct keeper *k;
	const struct keeper_config *cfg;
	struct instance cur;	 /* the instance mounted where the user sees it */
	struct instance next;	 /* a fresh one for the daemon being started; devfd -1: none */
	bool served;		 /* cur has been served by a daemon */
	/*
	 * event_fd(): readable when cur's connection ends. It watches cur's /dev/fuse only while
	 * no daemon serves: an fd in an epoll set is woken by every request queued on it (FUSE
	 * wakes its readers without a poll key, which epoll cannot filter), which cost the data
	 * path 1.4 times the direct mount's time on a walk of small files. While a daemon serves,
	 * the end of the connection ends the daemon (read() gives ENODEV), and detach() looks.
	 */
	int ev_ep;

	/* The answering thread: requests on instances no daemon serves. */
	pthread_t answerer;
	bool answerer_started;
	int ans_ep;	    /* epoll over the retired connections and ans_efd */
	int ans_efd;	    /* eventfd: the list changed, or stop */
	pthread_mutex_t lock;
	struct retired retired[MAX_RETIRED];
	size_t nretired;
	bool stopping;

	/* The last swap, for the log. */
	unsigned replaced, failed;
};

/* ---- answering for instances no daemon serves --------------------------------------------- */

/*
 * Whether the connection of @devfd has not ended. Only then is its fusectl number still its
 * own: once the last mount of an instance is gone, the kernel ends its connection and gives
 * the number (the minor of an anonymous device) to the next filesystem mounted, perhaps
 * another keeper's. Abort by number only what this says is alive.
 */
static bool conn_alive(int devfd)
{
	struct pollfd pfd = { .fd = devfd, .events = POLLIN };

	return devfd >= 0 && poll(&pfd, 1, 0) >= 0 && !(pfd.revents & (POLLERR | POLLNVAL));
}

static int reply(int fd, uint64_t unique, int error)
{
	struct fuse_out_header out = { .len = sizeof(out), .error = error, .unique = unique };

	return write(fd, &out, sizeof(out)) == sizeof(out) ? 0 : -errno;
}

/*
 * Reads and answers every request waiting on @r. Returns -ENODEV once its connection has
 * ended (the last mount and the last fd of that instance are gone), else 0.
 */
static int answer_all(struct retired *r, char **buf, size_t *size)
{
	for (;;) {
		struct fuse_in_header *in;
		ssize_t n = read(r->devfd, *buf, *size);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EINVAL && *size < (64u << 20)) {
			/* The buffer must hold max_write plus headers, which the daemon chose. */
			char *nb = realloc(*buf, *size * 2);

			if (!nb)
				return 0;
			*buf = nb;
			*size *= 2;
			continue;
		}
		if (n < 0)
			return errno == EAGAIN ? 0 : -ENODEV;
		if ((size_t)n < sizeof(*in))
			continue;
		in = (struct fuse_in_header *)*buf;
		switch (in->opcode) {
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
		case FUSE_INTERRUPT:
			break; /* no answer is owed */
		case FUSE_RELEASE:
		case FUSE_RELEASEDIR:
			/* Closing succeeds: nothing the dead daemon held can be released anyway. */
			reply(r->devfd, in->unique, 0);
			break;
		default:
			/* ESTALE: a path-based call walks again from the start (LOOKUP_REVAL) and
			 * reaches the fresh mount; an fd-based one is told its file is stale. */
			reply(r->devfd, in->unique, r->answer == ANSWER_ESTALE ? -ESTALE : -EIO);
			log_debug("Answered %s to request %" PRIu32 " (unique %" PRIu64 ") on old "
				  "FUSE connection %u", r->answer == ANSWER_ESTALE ? "ESTALE" : "EIO",
				  in->opcode, (uint64_t)in->unique, r->minor);
			break;
		}
	}
}

static void *answerer_main(void *arg)
{
	struct remount *rm = arg;
	size_t size = (1u << 20) + 65536;
	char *buf = malloc(size);

	if (!buf)
		return NULL;
	for (;;) {
		struct epoll_event ev[16];
		int n = epoll_wait(rm->ans_ep, ev, 16, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		pthread_mutex_lock(&rm->lock);
		if (rm->stopping) {
			pthread_mutex_unlock(&rm->lock);
			break;
		}
		for (int i = 0; i < n; i++) {
			size_t k;

			if (ev[i].data.fd == rm->ans_efd) {
				uint64_t v;
				if (read(rm->ans_efd, &v, sizeof(v)) < 0) {
					/* Cleared already. */
				}
				continue;
			}
			for (k = 0; k < rm->nretired && rm->retired[k].devfd != ev[i].data.fd; k++)
				;
			if (k == rm->nretired)
				continue;
			if (answer_all(&rm->retired[k], &buf, &size) == -ENODEV) {
				log_debug("Old FUSE connection %u ended", rm->retired[k].minor);
				epoll_ctl(rm->ans_ep, EPOLL_CTL_DEL, rm->retired[k].devfd, NULL);
				close(rm->retired[k].devfd);
				rm->retired[k] = rm->retired[--rm->nretired];
			}
		}
		pthread_mutex_unlock(&rm->lock);
	}
	free(buf);
	return NULL;
}

/*
 * From now on, requests on @devfd (an instance no daemon serves) are answered with @answer.
 * The keeper owns @devfd then. Already answered that way: only the answer changes.
 */
static void answer_for(struct remount *rm, int devfd, unsigned minor, enum answer answer)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = devfd };
	uint64_t one = 1;

	pthread_mutex_lock(&rm->lock);
	for (size_t i = 0; i < rm->nretired; i++) {
		if (rm->retired[i].minor == minor) {
			/* Answered already (EIO after --request-wait): only the answer changes. */
			rm->retired[i].answer = answer;
			if (rm->retired[i].devfd != devfd)
				close(devfd);
			goto wake;
		}
	}
	if (rm->nretired == MAX_RETIRED) {
		/* Bounded: the oldest old instance is let go; its fds get ENOTCONN. */
		log_warn("More than %d old instances still in use: ending FUSE connection %u",
			 MAX_RETIRED, rm->retired[0].minor);
		epoll_ctl(rm->ans_ep, EPOLL_CTL_DEL, rm->retired[0].devfd, NULL);
		if (conn_alive(rm->retired[0].devfd))
			fuse_abort_conn(rm->retired[0].minor);
		close(rm->retired[0].devfd);
		rm->retired[0] = rm->retired[--rm->nretired];
	}
	/* No daemon reads this file any more: the keeper's reads must not block. */
	fcntl(devfd, F_SETFL, fcntl(devfd, F_GETFL) | O_NONBLOCK);
	rm->retired[rm->nretired++] = (struct retired){ devfd, minor, answer };
	epoll_ctl(rm->ans_ep, EPOLL_CTL_ADD, devfd, &ev);
wake:
	pthread_mutex_unlock(&rm->lock);
	if (write(rm->ans_efd, &one, sizeof(one)) < 0) {
		/* The counter is already non-zero. */
	}
}

/* ---- instances ------------------------------------------------------------------------------ */

static void instance_close(struct instance *in)
{
	if (in->devfd >= 0)
		close(in->devfd);
	if (in->rootfd >= 0)
		close(in->rootfd);
	*in = (struct instance){ .devfd = -1, .rootfd = -1 };
}

/* The device of the mount @fd is the root of, without asking the daemon (DONT_SYNC). */
static int root_dev(int fd, unsigned *major, unsigned *minor)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, 0, &stx) < 0)
		return -errno;
	*major = stx.stx_dev_major;
	*minor = stx.stx_dev_minor;
	return 0;
}

static int fsconfig_str(int fs, const char *key, const char *val)
{
	return fsconfig(fs, FSCONFIG_SET_STRING, key, val, 0) < 0 ? -errno : 0;
}

/*
 * A fresh instance with the -o options of the first: a detached mount (fsmount()), mounted
 * nowhere until it replaces the old one. Its flags are set per mount at the swap.
 */
static int instance_new(const struct keeper_config *cfg, struct instance *in, char *err,
			size_t errlen)
{
	const struct mount_options *o = &cfg->mnt;
	_cleanup_close_ int devfd = -1, fs = -1;
	char v[64];
	int r = 0, mnt;

	devfd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (devfd < 0) {
		snprintf(err, errlen, "cannot open /dev/fuse: %s", strerror(errno));
		return -errno;
	}
	fs = fsopen("fuse", FSOPEN_CLOEXEC);
	if (fs < 0) {
		snprintf(err, errlen, "fsopen(fuse): %s", strerror(errno));
		return -errno;
	}
	snprintf(v, sizeof(v), "%d", devfd);
	r = fsconfig_str(fs, "fd", v);
	snprintf(v, sizeof(v), "%o", (unsigned)S_IFDIR);
	if (r == 0)
		r = fsconfig_str(fs, "rootmode", v);
	snprintf(v, sizeof(v), "%u", (unsigned)getuid());
	if (r == 0)
		r = fsconfig_str(fs, "user_id", v);
	snprintf(v, sizeof(v), "%u", (unsigned)getgid());
	if (r == 0)
		r = fsconfig_str(fs, "group_id", v);
	if (r == 0)
		r = fsconfig_str(fs, "source", o->fsname ? o->fsname : "fusekeeper");
	if (r == 0 && o->subtype)
		r = fsconfig_str(fs, "subtype", o->subtype);
	if (r == 0 && o->allow_other && fsconfig(fs, FSCONFIG_SET_FLAG, "allow_other", NULL, 0) < 0)
		r = -errno;
	if (r == 0 && o->default_permissions &&
	    fsconfig(fs, FSCONFIG_SET_FLAG, "default_permissions", NULL, 0) < 0)
		r = -errno;
	if (r == 0 && o->max_read) {
		snprintf(v, sizeof(v), "%u", o->max_read);
		r = fsconfig_str(fs, "max_read", v);
	}
	if (r == 0 && (o->flags & MS_RDONLY) && fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0)
		r = -errno;
	if (r == 0 && fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		r = -errno;
	if (r < 0) {
		snprintf(err, errlen, "cannot create a FUSE instance: %s", strerror(-r));
		return r;
	}
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, 0);
	if (mnt < 0) {
		snprintf(err, errlen, "fsmount: %s", strerror(errno));
		return -errno;
	}
	in->rootfd = mnt;
	in->devfd = TAKE_FD(devfd);
	root_dev(mnt, &in->major, &in->minor);
	return 0;
}

/* Ends a fresh instance no daemon took over: its waiting requests end (ENOTCONN). */
static void instance_abort(struct instance *in)
{
	if (in->minor && conn_alive(in->devfd))
		fuse_abort_conn(in->minor);
	instance_close(in);
}

/* ---- does the daemon serve? ------------------------------------------------------------------ */

/*
 * The daemon talks to the kernel directly, so the keeper sees no FUSE_INIT: it asks. A child
 * stats the instance's root with AT_STATX_FORCE_SYNC, a GETATTR that the kernel holds until
 * INIT is answered; its answer means the daemon serves (served_wait(), served.h).
 */
static int wait_served(struct remount *rm, int rootfd)
{
	return served_wait(rm->k, rootfd, now_ms() + rm->cfg->start_timeout_ms);
}

/* ---- the swap ------------------------------------------------------------------------------ */

static void swap_report(void *arg, const struct nsm_report *r)
{
	(void)arg;
	if (r->err)
		log_warn("Cannot replace the mount at %s (mount %d, mount namespace %" PRIu64
			 ", entered through pid %d): %s", r->point, r->id, r->ns, (int)r->pid,
			 r->reason);
	else if (r->reason[0])
		log_warn("Replaced the mount at %s (mount %d, mount namespace %" PRIu64 "), but %s",
			 r->point, r->id, r->ns, r->reason);
	else
		log_debug("Replaced the mount at %s (mount %d, mount namespace %" PRIu64 ", pid %d)",
			  r->point, r->id, r->ns, (int)r->pid);
}

/* Replaces every mount of cur by one of next, then answers for cur. */
static void swap_instances(struct remount *rm)
{
	struct nsm_swap s = {
		.old_major = rm->cur.major,
		.old_minor = rm->cur.minor,
		.fresh_fd = rm->next.rootfd,
		.fresh_detached = true,
		.anchor_point = rm->cfg->mountpoint,
		.timeout_ms = rm->cfg->start_timeout_ms,
		.report = swap_report,
		/* Read by the keeper only: a hook for tests/integration (nsmounts.h). */
		.test_gate = getenv("FUSEKEEPER_TEST_SWAP_GATE"),
	};
	struct fuse_out_header resend = { .len = sizeof(resend), .error = FK_NOTIFY_RESEND };
	int64_t t0 = now_ms(), died = keeper_died_at(rm->k);
	unsigned failed = 0, left;
	int replaced;

	replaced = nsm_swap(&s, &failed);
	if (replaced < 0) {
		log_error("Cannot replace the mounts of the old instance: %s", strerror(-replaced));
		replaced = 0;
	}
	left = nsm_count_mounts(rm->cur.major, rm->cur.minor);
	rm->replaced = replaced;
	rm->failed = failed;
	log_info("Replaced %d mount%s of the old instance (device %u:%u) in %" PRId64 " ms; %u "
		 "could not be replaced, %u left in all", replaced, replaced == 1 ? "" : "s",
		 rm->cur.major, rm->cur.minor, now_ms() - t0, failed, left);
	event("REMOUNTED %d %d %u %" PRId64, (int)keeper_daemon_pid(rm->k), replaced, failed,
	      now_ms() - (died ? died : t0));

	/*
	 * Only now, with the fresh mounts in place, are the requests made in the gap answered
	 * (ESTALE: a path-based call then walks again and reaches the fresh mount). Requests the
	 * dead daemon had read go back to the queue first (FUSE_NOTIFY_RESEND, Linux 6.9).
	 */
	if (write(rm->cur.devfd, &resend, sizeof(resend)) != sizeof(resend))
		log_warn("Requests the dead daemon had read stay unanswered: FUSE_NOTIFY_RESEND "
			 "(Linux 6.9) failed on connection %u: %s", rm->cur.minor, strerror(errno));
	epoll_ctl(rm->ev_ep, EPOLL_CTL_DEL, rm->cur.devfd, NULL);
	answer_for(rm, rm->cur.devfd, rm->cur.minor, ANSWER_ESTALE);
	rm->cur.devfd = -1;
	instance_close(&rm->cur);
	rm->cur = rm->next;
	rm->next = (struct instance){ .devfd = -1, .rootfd = -1 };
	/* Attached now, or given up: an fd on the mount would make a plain umount fail. */
	close(rm->cur.rootfd);
	rm->cur.rootfd = -1;
}

/* ---- the mode ------------------------------------------------------------------------------ */

/* Watches the end of cur's connection (see struct remount.ev_ep), or stops watching. */
static void watch_end(struct remount *rm, bool on)
{
	/* EPOLLERR only (always reported): the connection ended. */
	struct epoll_event ev = { .events = 0, .data.fd = rm->cur.devfd };

	if (rm->cur.devfd < 0 || epoll_ctl(rm->ev_ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
					   rm->cur.devfd, &ev) < 0) {
		/* Watched already, or not watched: EEXIST, ENOENT. */
	}
}

static void remount_stop(void *state);

static int remount_start(struct keeper *k, int devfd, void **state)
{
	struct remount *rm = calloc(1, sizeof(*rm));
	struct epoll_event ev = { .events = 0, .data.fd = devfd };
	int r;

	if (!rm)
		return -ENOMEM;
	rm->k = k;
	rm->cfg = keeper_config(k);
	rm->cur = (struct instance){ .devfd = devfd, .rootfd = -1 };
	rm->next = (struct instance){ .devfd = -1, .rootfd = -1 };
	pthread_mutex_init(&rm->lock, NULL);
	rm->ev_ep = epoll_create1(EPOLL_CLOEXEC);
	rm->ans_ep = epoll_create1(EPOLL_CLOEXEC);
	rm->ans_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	/* O_PATH: no open request; the walk to a mount's root asks the daemon nothing. */
	rm->cur.rootfd = open(rm->cfg->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rm->ev_ep < 0 || rm->ans_ep < 0 || rm->ans_efd < 0 || rm->cur.rootfd < 0)
		goto fail;
	r = root_dev(rm->cur.rootfd, &rm->cur.major, &rm->cur.minor);
	if (r < 0) {
		errno = -r;
		goto fail;
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = rm->ans_efd };
	if (epoll_ctl(rm->ans_ep, EPOLL_CTL_ADD, rm->ans_efd, &ev) < 0)
		goto fail;
	r = pthread_create(&rm->answerer, NULL, answerer_main, rm);
	if (r) {
		errno = r;
		goto fail;
	}
	rm->answerer_started = true;
	*state = rm;
	return 0;
fail:
	r = -errno;
	rm->cur.devfd = -1; /* the supervisor's */
	remount_stop(rm);
	return r;
}

static int remount_channel(void *state)
{
	struct remount *rm = state;
	char err[256];
	int r;

	if (!rm->served)
		return rm->cur.devfd;
	if (rm->next.devfd < 0) {
		r = instance_new(rm->cfg, &rm->next, err, sizeof(err));
		if (r < 0) {
			log_error("Cannot make a fresh instance: %s", err);
			return r;
		}
		log_debug("Fresh FUSE instance: connection %u", rm->next.minor);
	}
	return rm->next.devfd;
}

static int remount_attach(void *state, struct keeper *k)
{
	struct remount *rm = state;
	int r;

	(void)k;
	if (!rm->served) {
		r = wait_served(rm, rm->cur.rootfd);
		if (r == 0) {
			rm->served = true;
			watch_end(rm, false);
			/* An fd on the mount would make a plain umount of it fail (EBUSY). */
			close(rm->cur.rootfd);
			rm->cur.rootfd = -1;
		}
		return r;
	}
	r = wait_served(rm, rm->next.rootfd);
	if (r < 0)
		return r;
	swap_instances(rm);
	watch_end(rm, false);
	return 0;
}

static void remount_detach(void *state)
{
	struct remount *rm = state;

	/* A fresh instance no daemon took over is not kept: the next start gets another. */
	if (rm->next.devfd >= 0)
		instance_abort(&rm->next);
	/* The current one waits, held by the keeper's fd, until it is replaced; if it ended
	 * (its last mount is gone: the daemon died of it), events() says so at once. */
	watch_end(rm, true);
}

static int remount_give_up(void *state)
{
	struct remount *rm = state;
	int fd;

	if (!rm->served)
		return 0;
	/* The answering thread reads from a copy: cur keeps its fd for the swap. */
	fd = fcntl(rm->cur.devfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		int r = -errno;

		log_warn("Cannot answer the waiting requests with EIO: %s", strerror(-r));
		return r;
	}
	answer_for(rm, fd, rm->cur.minor, ANSWER_EIO);
	return 0;
}

static int remount_event_fd(void *state)
{
	return ((struct remount *)state)->ev_ep;
}

static unsigned remount_events(void *state)
{
	struct remount *rm = state;
	struct epoll_event ev;

	if (epoll_wait(rm->ev_ep, &ev, 1, 0) == 1 && (ev.events & (EPOLLERR | EPOLLHUP)))
		return MODE_EV_UNMOUNTED;
	return 0;
}

static void remount_stop(void *state)
{
	struct remount *rm = state;
	uint64_t one = 1;

	if (!rm)
		return;
	if (rm->answerer_started) {
		pthread_mutex_lock(&rm->lock);
		rm->stopping = true;
		pthread_mutex_unlock(&rm->lock);
		if (write(rm->ans_efd, &one, sizeof(one)) < 0) {
			/* Non-zero already. */
		}
		pthread_join(rm->answerer, NULL);
	}
	for (size_t i = 0; i < rm->nretired; i++) {
		/* The keeper ends: so do the old instances it answered for. */
		if (conn_alive(rm->retired[i].devfd))
			fuse_abort_conn(rm->retired[i].minor);
		close(rm->retired[i].devfd);
	}
	instance_abort(&rm->next);
	instance_close(&rm->cur);
	if (rm->ev_ep >= 0)
		close(rm->ev_ep);
	if (rm->ans_ep >= 0)
		close(rm->ans_ep);
	if (rm->ans_efd >= 0)
		close(rm->ans_efd);
	pthread_mutex_destroy(&rm->lock);
	free(rm);
}

static unsigned remount_conn_id(void *state)
{
	struct remount *rm = state;

	return conn_alive(rm->cur.devfd) ? rm->cur.minor : 0;
}

static int remount_probe(char *err, size_t errlen)
{
	int r = nsm_probe_beneath();

	if (r == -EOPNOTSUPP)
		snprintf(err, errlen, "--mode=remount needs Linux 6.5 or later (MOVE_MOUNT_BENEATH), "
			 "which this kernel does not support; use --mode=proxy");
	else if (r < 0)
		snprintf(err, errlen, "--mode=remount: cannot tell whether this kernel can mount "
			 "beneath a mount (MOVE_MOUNT_BENEATH, Linux 6.5): %s; use --mode=proxy",
			 strerror(-r));
	return r;
}

const struct mode_ops remount_mode = {
	.name = "remount",
	.probe = remount_probe,
	.start = remount_start,
	.channel = remount_channel,
	.attach = remount_attach,
	.detach = remount_detach,
	.give_up = remount_give_up,
	.event_fd = remount_event_fd,
	.events = remount_events,
	.hung_at = NULL,
	.conn_id = remount_conn_id,
	.stop = remount_stop,
};
