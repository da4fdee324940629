/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The supervisor owns everything that is the same in every recovery mode: the mount, the daemon
 * processes, signals, and the restart policy (how long a start may take, back-off, how long
 * requests wait for a daemon, giving up and trying again). The mode owns the traffic.
 */
#include "supervisor.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <json-c/json.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "mode.h"
#include "procfs.h"
#include "reexec.h"
#include "status.h"
#include "keeper_i.h"
#include "takeover.h"
#include "util.h"

/* A daemon that dies this soon after taking over is restarted only after a back-off. */
#define MIN_UPTIME_MS 300
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000

/*
 * A later start may take this many times as long as the first one did before it needs to show
 * progress: a daemon blocked in a network login shows none, and what took it 8 s once may take
 * it 20 s another time.
 */
#define FIRST_START_FACTOR 3

/* How often a starting daemon's process group is looked at: a few times per --start-timeout. */
#define SAMPLE_MIN_MS 100
#define SAMPLE_MAX_MS 1000

/* How long a daemon whose mount was refused has to exit by itself before it is killed. */
#define REFUSED_GRACE_MS 2000

/* A wake-up this late means the keeper itself was stopped or starved (a frozen cgroup). */
#define LATE_WAKE_MS 1000

/* How long a daemon killed as hung may take to die before the keeper says so. */
#define HUNG_DEATH_MS 5000

const struct keeper_config *keeper_config(const struct keeper *k)
{
	return &k->cfg;
}

int64_t keeper_died_at(const struct keeper *k)
{
	return k->died_at;
}

pid_t keeper_daemon_pid(const struct keeper *k)
{
	return k->daemon;
}

static void kill_daemon(struct keeper *k, int sig)
{
	if (k->daemon > 0) {
		bool sent = false;

		/* The daemon leads its own process group: helpers it started (ssh) go with it. */
		if (k->pgid > 0)
			sent = kill(-k->pgid, sig) == 0 && getpgid(k->daemon) == k->pgid;
		/*
		 * Through the pidfd (never a stranger that reused the pid after an early reap)
		 * when the group did not reach it: not twice, since a second SIGTERM could find
		 * the daemon's handler gone and kill it in the middle of its clean-up.
		 */
		if (!sent && k->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, k->pidfd, sig, NULL, 0);
	}
}

/* The names of the keeper's fds in systemd's fd store (FDNAME=), in store_fds() order. */
static const char *const store_names[3] = FDSTORE_NAMES;

void fdstore_clear(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(store_names); i++)
		sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", store_names[i]);
}

/*
 * Takes the connection and the resume journal out of systemd's fd store, because of @why: a
 * keeper started after this one must not take up a connection it cannot serve rightly.
 */
static void fdstore_remove(struct keeper *k, const char *why)
{
	if (!k->stored)
		return;
	fdstore_clear();
	k->stored = false;
	log_warn("Took the connection out of systemd's fd store (%s): a SIGKILL of fusekeeper now "
		 "loses the mount", why);
}

/*
 * Once a daemon serves: hands /dev/fuse and the resume journal to systemd's fd store
 * (FDSTORE=1), so that the keeper systemd starts after a SIGKILL of this one takes the
 * connection back (docs/design.md, "Surviving the keeper's own death"). Once per keeper.
 */
static void fdstore_put(struct keeper *k)
{
	int fds[3];

	if (!k->cfg.fdstore || k->stored || !k->mode_state)
		return;
	if (k->cfg.mode->store_fds && !k->cfg.takeover)
		k->cfg.mode->store_fds(k->mode_state, fds);
	if (!k->cfg.mode->store_fds || k->cfg.takeover || fds[0] < 0) {
		log_info("The connection is not kept in systemd's fd store: %s; a SIGKILL of "
			 "fusekeeper loses the mount",
			 !k->cfg.mode->store_fds ? "only proxy mode can take it back"
			 : k->cfg.takeover ? "the daemon mounts itself (COMMAND without {}), and a "
					     "new one's mount call cannot be given the old connection"
			 : "its resume journal could not be kept");
		k->cfg.fdstore = false;
		return;
	}
	k->stored = true;
	for (size_t i = 0; i < ARRAY_SIZE(store_names); i++) {
		char msg[64];
		int r;

		snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", store_names[i]);
		r = sd_pid_notify_with_fds(0, 0, msg, &fds[i], 1);
		if (r <= 0) {
			fdstore_remove(k, r < 0 ? strerror(-r) : "no NOTIFY_SOCKET");
			k->cfg.fdstore = false;
			return;
		}
	}
	log_info("Stored the connection and the resume journal in systemd's fd store: a keeper "
		 "started after a SIGKILL of this one takes the mount back");
}

/* Handles what the mode reports; returns -EINTR when the keeper must stop. */
static int mode_events(struct keeper *k)
{
	unsigned ev = k->cfg.mode->events(k->mode_state);

	if (ev & MODE_EV_DAEMON_BROKEN) {
		k->broke = true;
		log_error("Daemon %d broke the FUSE protocol; killing it so that a new one takes "
			  "over", (int)k->daemon);
		kill_daemon(k, SIGKILL);
	}
	/* One that unmounted itself was told its connection ended: let it finish on its own. */
	if ((ev & MODE_EV_CHANNEL_CLOSED) && k->pidfd >= 0 && !k->to.self_unmounted) {
		/* Usually the daemon died and its pidfd says so at once; one that lives on
		 * without its channel serves nobody. */
		struct pollfd pfd = { .fd = k->pidfd, .events = POLLIN };

		if (poll(&pfd, 1, 1000) == 0) {
			log_error("Daemon %d closed its FUSE channel but still runs; killing it so that "
				  "a new one takes over", (int)k->daemon);
			kill_daemon(k, SIGKILL);
		}
	}
	if (ev & MODE_EV_STORE_LOST)
		fdstore_remove(k, "the resume journal could not be kept");
	if (ev & MODE_EV_UNMOUNTED) {
		log_info("%s was unmounted", k->cfg.mountpoint);
		k->unmounted = true;
		k->stop = true;
	}
	return k->stop ? -EINTR : 0;
}

/*
 * The keeper is a subreaper: helpers a daemon leaves behind (sshfs's ssh is double-forked) end
 * up its children and are collected here, so none lingers as a zombie. The daemon's own status
 * is kept for reap_daemon().
 */
static void reap_orphans(struct keeper *k)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == k->daemon) {
			k->daemon_status = status;
			k->daemon_reaped = true;
		}
	}
}

/* A planned restart or a re-exec was asked for, and the daemon now serves so that it can start. */
static bool replacement_due(const struct keeper *k)
{
	return (k->restart_req || k->reexec_req) && k->accept_restart;
}

/* Why a planned restart cannot start now, or NULL when it can. */
static const char *restart_refused(const struct keeper *k)
{
	if (k->stop)
		return "fusekeeper is stopping";
	if (k->restart_req || k->restarting)
		return "a planned restart is already under way";
	if (k->reexec_req || k->reexecing)
		return "fusekeeper is being replaced (fusekeeper reexec); try again once it is done";
	if (k->hang_killed)
		return "the daemon was killed as hung; a new one takes over once it has died";
	if (!k->accept_restart && k->start.at)
		return "a daemon is starting (it runs the command as it is now); try again once it "
		       "serves";
	if (!k->accept_restart)
		return "no daemon serves now and one is about to be started";
	return NULL;
}

/* A planned restart is asked for by @by (a static string); the supervisor's wait acts on it. */
static bool restart_request(struct keeper *k, const char *by)
{
	const char *why = restart_refused(k);

	if (why) {
		log_info("Not restarting the daemon as %s asks: %s", by, why);
		return false;
	}
	k->restart_req = true;
	k->restart_by = by;
	k->restart_stop_ms = -1; /* the keeper's; a control request sets its own after this */
	return true;
}

static int read_signals(struct keeper *k)
{
	struct signalfd_siginfo si;

	while (read(k->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			log_info("Received SIG%s: stopping", sigabbrev_np(si.ssi_signo));
			k->stop = true;
		}
		if (si.ssi_signo == SIGCHLD)
			reap_orphans(k);
		if (si.ssi_signo == SIGHUP)
			restart_request(k, "SIGHUP");
	}
	return k->stop ? -EINTR : 0;
}

/*
 * CPU clock ticks (of the processes and the children they reaped) and bytes read and written
 * (any fd: files, sockets, pipes) of every process in the group @pgid, from /proc.
 */
static int group_usage(pid_t pgid, uint64_t *cpu, uint64_t *io)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d)
		return -errno;
	*cpu = *io = 0;
	while ((de = readdir(d))) {
		char path[300], buf[1024], *p;
		unsigned long long v[4], rchar = 0, wchar = 0;
		int pgrp;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if (proc_read_small(path, buf, sizeof(buf)) <= 0)
			continue;
		/* The command name may hold anything: the fields start after its last ')'. */
		p = strrchr(buf, ')');
		/* state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
		 * stime cutime cstime (proc(5)) */
		if (!p || sscanf(p + 2, "%*c %*d %d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
				 &pgrp, &v[0], &v[1], &v[2], &v[3]) != 5 || pgrp != pgid)
			continue;
		*cpu += v[0] + v[1] + v[2] + v[3];
		snprintf(path, sizeof(path), "/proc/%s/io", de->d_name);
		if (proc_read_small(path, buf, sizeof(buf)) <= 0)
			continue;
		if (sscanf(buf, "rchar: %llu wchar: %llu", &rchar, &wchar) == 2)
			*io += rchar + wchar;
	}
	closedir(d);
	return 0;
}

static int64_t sample_ms(const struct keeper *k)
{
	return MAX(MIN(k->cfg.start_timeout_ms / 4, SAMPLE_MAX_MS), SAMPLE_MIN_MS);
}

/* Looks at the starting daemon's process group: did it compute or move data since? */
static void start_sample(struct keeper *k, int64_t now)
{
	struct start_watch *s = &k->start;
	uint64_t cpu, io;

	s->sampled_at = now;
	if (k->daemon <= 0 || group_usage(k->pgid, &cpu, &io) < 0)
		return;
	if (cpu != s->cpu || io != s->io) {
		s->progress_at = now;
		s->sign = cpu != s->cpu ? "used CPU time" : "read or wrote";
	}
	s->cpu = cpu;
	s->io = io;
}

static void start_begin(struct keeper *k)
{
	int64_t now = now_ms();

	k->start = (struct start_watch){ .at = now, .progress_at = now };
	start_sample(k, now);
	k->start.sign = NULL;
	k->start.progress_at = now;
}

/*
 * Until when the start under way may go on (at most --max-start-time from its beginning):
 *  - as long as 3 times the first start took (and at least --start-timeout), whatever the
 *    daemon shows: a slow network login shows nothing;
 *  - then while it shows progress: no more than --start-timeout without one. Progress is CPU
 *    time used, or bytes read or written (files, sockets: its answers to the keeper too), by
 *    any process of its group (the daemon and its helpers, such as ssh).
 */
static int64_t start_until(const struct keeper *k)
{
	const struct start_watch *s = &k->start;
	int64_t guide = s->at + MAX(k->cfg.start_timeout_ms, FIRST_START_FACTOR * k->first_start_ms);
	int64_t quiet = s->progress_at + k->cfg.start_timeout_ms;

	return MIN(s->at + k->cfg.max_start_ms, MAX(guide, quiet));
}

/* Formats what the start policy goes by, for the log. */
static void start_describe(const struct keeper *k, int64_t now, char *buf, size_t size)
{
	const struct start_watch *s = &k->start;
	int n;

	if (k->first_start_ms)
		n = snprintf(buf, size, "first start took %.1f s", k->first_start_ms / 1000.0);
	else
		n = snprintf(buf, size, "the first start");
	if (n < 0 || (size_t)n >= size)
		return;
	if (s->sign)
		snprintf(buf + n, size - n, ", %s %.1f s ago", s->sign,
			 (now - s->progress_at) / 1000.0);
	else
		snprintf(buf + n, size - n, ", no sign of progress");
}

/* The mode's share of --start-timeout has passed and the start may go on until @until. */
static void start_kept(struct keeper *k, int64_t now, int64_t until)
{
	struct start_watch *s = &k->start;
	char why[128];

	/* One line when kept, and one more each time the promised time is used up. */
	if (s->told_until && now < s->told_until)
		return;
	start_describe(k, now, why, sizeof(why));
	log_info("Daemon %d is still starting (%.1f s, %s); waiting up to %.1f s more, longer "
		 "while it shows progress (at most %" PRId64 " s in all: --max-start-time)",
		 (int)k->daemon, (now - s->at) / 1000.0, why, (until - now) / 1000.0,
		 k->cfg.max_start_ms / 1000);
	if (!s->told_until)
		event("SLOW %d %" PRId64, (int)k->daemon, now - s->at);
	s->told_until = until;
}

static void start_failed(struct keeper *k, int64_t now)
{
	struct start_watch *s = &k->start;
	char first[64] = "";

	if (now - s->at >= k->cfg.max_start_ms) {
		log_error("Daemon %d is still starting after %.1f s (--max-start-time=%" PRId64 "): "
			  "its start failed", (int)k->daemon, (now - s->at) / 1000.0,
			  k->cfg.max_start_ms / 1000);
		return;
	}
	if (k->first_start_ms)
		snprintf(first, sizeof(first), " (its first start took %.1f s)",
			 k->first_start_ms / 1000.0);
	log_error("Daemon %d did not finish starting in %.1f s%s and showed no progress for "
		  "%.1f s (--start-timeout=%" PRId64 "): its start failed", (int)k->daemon,
		  (now - s->at) / 1000.0, first, (now - s->progress_at) / 1000.0,
		  k->cfg.start_timeout_ms / 1000);
}

/*
 * With --hang-timeout: when the serving daemon counts as hung if nothing changes (INT64_MAX:
 * not watched now). @what receives the request it holds, for the log.
 */
static int64_t hang_deadline(struct keeper *k, char *what, size_t size)
{
	if (!k->cfg.hang_timeout_ms || !k->cfg.mode->hung_at || k->daemon <= 0 || k->start.at ||
	    k->hang_killed)
		return INT64_MAX;
	return MAX(k->cfg.mode->hung_at(k->mode_state, k->cfg.hang_timeout_ms, what, size),
		   k->hang_after);
}

static void stats_unknown(struct mode_stats *m)
{
	int64_t *v = (int64_t *)m;

	for (size_t i = 0; i < sizeof(*m) / sizeof(int64_t); i++)
		v[i] = -1;
}

/*
 * The daemon no longer serves. What the last recovery lost goes on counting while it serves
 * (proxy's lazy lookup loses nodes after it): status keeps the final count.
 */
static void serving_end(struct keeper *k)
{
	struct mode_stats s;

	if (k->serving && k->rec_at && k->mode_state && k->cfg.mode->stats) {
		stats_unknown(&s);
		k->cfg.mode->stats(k->mode_state, &s);
		if (s.nodes_lost >= 0)
			k->rec.nodes_lost = s.nodes_lost;
	}
	k->serving = false;
}

/* A daemon killed as hung that does not die (it waits in the kernel, state D) is reported. */
static void hung_not_dead(struct keeper *k, int64_t now)
{
	char path[64], wchan[64] = "?", stat[512], state = '?';
	ssize_t n;
	int fd;

	k->hang_told = true;
	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)k->daemon);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && (n = read(fd, wchan, sizeof(wchan) - 1)) > 0)
		wchan[n] = '\0';
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)k->daemon);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && (n = read(fd, stat, sizeof(stat) - 1)) > 0) {
		char *paren;

		stat[n] = '\0';
		paren = strrchr(stat, ')');
		if (paren && paren[1] == ' ')
			state = paren[2];
	}
	if (fd >= 0)
		close(fd);
	log_warn("Daemon %d, killed as hung, has not died after %.1f s (state %c, waiting in "
		 "%s): it is stuck in the kernel; new requests fail with EIO after "
		 "--request-wait until it dies and a new one takes over", (int)k->daemon,
		 (now - k->hang_killed_at) / 1000.0, state, wchan);
}


/* The serving daemon is hung: mode_ops.hung_at() passed (--hang-timeout). */
static void notify_status(const struct keeper *k);

static void daemon_hung(struct keeper *k, const char *what)
{
	int64_t now = now_ms();

	log_error("Daemon %d has held %s (--hang-timeout=%" PRId64
		  "): it is hung or stopped; killing it so that a new one takes over",
		  (int)k->daemon, what, k->cfg.hang_timeout_ms / 1000);
	event("HUNG %d", (int)k->daemon);
	k->hang_killed = true;
	k->hang_killed_at = now;
	k->hang_told = false;
	/* It serves nobody from now on: if it does not die, requests wait --request-wait. */
	k->died_at = now;
	k->down_at = now + k->cfg.request_wait_ms;
	serving_end(k);
	notify_status(k);
	/* SIGKILL ends a stopped process too. Its death is then a crash like any other. */
	kill_daemon(k, SIGKILL);
}

/* Calls the mode's give_up() once; k->requests_then says what requests get from then on. */
static void give_up(struct keeper *k)
{
	int r;

	if (k->failing)
		return;
	k->failing = true;
	r = k->cfg.mode->give_up(k->mode_state);
	if (r == -EOPNOTSUPP)
		k->requests_then = "keep waiting, killable (this kernel cannot fail them with EIO)";
	else if (r < 0)
		k->requests_then = "keep waiting, killable (failing them with EIO failed)";
	else
		k->requests_then = "fail with EIO at once";
}

/* --request-wait has passed since the last daemon that served died, and none serves yet. */
static void requests_down(struct keeper *k, int64_t now)
{
	k->down_at = 0;
	if (k->failing)
		return;
	give_up(k);
	log_warn("No daemon has served %s for %.1f s (--request-wait=%" PRId64 "): requests "
		 "%s until one does", k->cfg.mountpoint, (now - k->died_at) / 1000.0,
		 k->cfg.request_wait_ms / 1000, k->requests_then);
	event("DOWN %" PRId64, now - k->died_at);
	notify_status(k);
}

static int takeover_handle(struct keeper *k);
static void takeover_check_mount(struct keeper *k, bool quiet);
static bool takeover_follow(struct keeper *k);
static control_fn control_asked;
static void control_refused(void *arg, const struct ucred *peer);

int keeper_wait(struct keeper *k, int fd, int64_t deadline)
{
	/* Waiting for the daemon's answer while it starts: the start policy has the last word. */
	bool start_wait = fd >= 0 && k->start.at;

	for (;;) {
		struct pollfd pfd[6 + 1 + CONTROL_PENDING] = {
			{ .fd = k->sigfd, .events = POLLIN },
			{ .fd = k->mode_state ? k->cfg.mode->event_fd(k->mode_state) : -1,
			  .events = POLLIN },
			{ .fd = k->pidfd, .events = POLLIN },
			{ .fd = fd, .events = POLLIN },
			/* The daemon's trapped calls, unless the caller waits for one itself. */
			{ .fd = fd == k->to.listener ? -1 : k->to.listener, .events = POLLIN },
			{ .fd = k->to.mountinfo, .events = POLLPRI },
		};
		int64_t now = now_ms(), wake = deadline;
		char what[128];
		int n;

		if (start_wait) {
			int64_t until = start_until(k);

			wake = now < deadline ? MIN(deadline, k->start.at + k->cfg.max_start_ms)
					      : until;
			if (now >= wake) {
				start_failed(k, now);
				return -ETIMEDOUT;
			}
			if (now >= deadline)
				start_kept(k, now, until);
		}
		if (k->start.at)
			wake = MIN(wake, k->start.sampled_at + sample_ms(k));
		if (k->down_at)
			wake = MIN(wake, k->down_at);
		wake = MIN(wake, hang_deadline(k, what, sizeof(what)));
		if (k->hang_killed && !k->hang_told)
			wake = MIN(wake, k->hang_killed_at + HUNG_DEATH_MS);
		if (replacement_due(k))
			return -ECANCELED;
		control_poll_fds(&k->ctl, &pfd[6], &wake);
		n = poll(pfd, ARRAY_SIZE(pfd), wake == INT64_MAX ? -1 : ms_until(wake));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (pfd[0].revents && read_signals(k) < 0)
			return -EINTR;
		if (pfd[1].revents && mode_events(k) < 0)
			return -EINTR;
		/* Something the daemon did cannot be taken over (logged): it must go. */
		if ((pfd[4].revents & POLLIN) && takeover_handle(k) < 0)
			kill_daemon(k, SIGKILL);
		if (pfd[5].revents)
			takeover_check_mount(k, false);
		control_service(&k->ctl, &pfd[6], control_asked, control_refused, k);
		if (k->stop)
			return -EINTR;
		if (replacement_due(k))
			return -ECANCELED;
		now = now_ms();
		if (wake != INT64_MAX && now > wake + LATE_WAKE_MS)
			k->hang_after = now + LATE_WAKE_MS;
		if (k->start.at && now >= k->start.sampled_at + sample_ms(k))
			start_sample(k, now);
		if (k->down_at && now >= k->down_at)
			requests_down(k, now);
		if (now >= hang_deadline(k, what, sizeof(what)))
			daemon_hung(k, what);
		if (k->hang_killed && !k->hang_told && now >= k->hang_killed_at + HUNG_DEATH_MS)
			hung_not_dead(k, now);
		if (pfd[3].revents)
			return 0;
		if (pfd[2].revents && !(k->cfg.takeover && takeover_follow(k)))
			return -ECHILD;
		if (!start_wait && now >= deadline)
			return -ETIMEDOUT;
	}
}

/* ---- Taking over the daemon's own mount (cfg.takeover, takeover.h) ---------------------- */

/* The daemon's mount options, for the log. */
static void describe_mount(const struct mount_options *o, char *buf, size_t size)
{
	snprintf(buf, size, "source %s, type fuse%s%s, user_id=%u, group_id=%u%s%s%s%s%s",
		 o->fsname ? o->fsname : "(none)", o->subtype ? "." : "",
		 o->subtype ? o->subtype : "", (unsigned)o->user_id, (unsigned)o->group_id,
		 o->allow_other ? ", allow_other" : "",
		 o->default_permissions ? ", default_permissions" : "",
		 o->flags & MS_RDONLY ? ", ro" : "", o->flags & MS_NOSUID ? ", nosuid" : "",
		 o->flags & MS_NODEV ? ", nodev" : "");
}

/*
 * The first daemon's mount call: the keeper makes the mount, with the daemon's own options, and
 * starts the mode on it. Takes c->mnt. Returns 0 or -errno (logged).
 */
static int takeover_first_mount(struct keeper *k, struct takeover_call *c)
{
	char err[512], what[512], via[96] = "";
	int devfd, r;

	_cleanup_close_ int target = -1;
	char at[64];

	if (!k->cfg.mountpoint) {
		k->cfg.mountpoint = k->own_mountpoint = strdup(c->target);
		if (!k->cfg.mountpoint)
			return -ENOMEM;
	}
	/* The very object the daemon named: a name it can change is checked once, then not used. */
	target = takeover_open_target(k->cfg.mountpoint, c->dev, c->ino);
	if (target < 0) {
		log_error("Daemon %d mounts at %s, which %s", (int)k->daemon, k->cfg.mountpoint,
			  target == -ESTALE ? "is now another directory, or a symbolic link" :
			  strerror(-target));
		return target == -ESTALE ? -EBUSY : target;
	}
	snprintf(at, sizeof(at), "/proc/self/fd/%d", target);
	mount_options_free(&k->cfg.mnt);
	k->cfg.mnt = c->mnt;
	mount_options_init(&c->mnt);
	devfd = fuse_mount_fd(at, &k->cfg.mnt, err, sizeof(err));
	if (devfd < 0) {
		log_error("Cannot make the mount daemon %d asked for: %s", (int)k->daemon, err);
		return devfd;
	}
	r = k->cfg.mode->start(k, devfd, &k->mode_state);
	if (r < 0) {
		log_error("Cannot start %s mode: %s", k->cfg.mode->name, strerror(-r));
		fuse_unmount(k->cfg.mountpoint);
		k->mode_state = NULL;
		return r;
	}
	k->to.mounted = true;
	k->to.dir_dev = c->dev;
	k->to.dir_ino = c->ino;
	k->to.conn = fuse_conn_id(k->cfg.mountpoint);
	k->to.mountinfo = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	describe_mount(&k->cfg.mnt, what, sizeof(what));
	if (c->pid != k->daemon) {
		char path[64], comm[32] = "?";

		snprintf(path, sizeof(path), "/proc/%d/comm", (int)c->pid);
		if (proc_read_small(path, comm, sizeof(comm)) > 0)
			comm[strcspn(comm, "\n")] = '\0';
		snprintf(via, sizeof(via), " (through %s, process %d)", comm, (int)c->pid);
	}
	log_info("Mounted %s (%s mode) as daemon %d asked%s: %s", k->cfg.mountpoint,
		 k->cfg.mode->name, (int)k->daemon, via, what);
	log_debug("The mount is FUSE connection %u (fusectl)", k->to.conn);
	event("MODE %s", k->cfg.mode->name);
	return 0;
}

/* A later daemon's mount call: the mount stays as the first daemon made it. */
static void takeover_compare(struct keeper *k, const struct takeover_call *c)
{
	const struct mount_options *a = &k->cfg.mnt, *b = &c->mnt;
	char was[512], now[512];

	describe_mount(a, was, sizeof(was));
	describe_mount(b, now, sizeof(now));
	if (strcmp(was, now))
		log_warn("Daemon %d mounts with other options than the first one (%s; the mount "
			 "has %s): the mount keeps its own", (int)k->daemon, now, was);
}

/*
 * A FUSE mount(2) of the daemon's: the first one is made (or, for a restarted daemon, is there
 * already); the daemon's /dev/fuse fd is replaced by the mode's channel and the call answered
 * success. Returns 0 or -errno (logged; the caller answers the call with it).
 */
static int takeover_mount_call(struct keeper *k, struct takeover_call *c)
{
	char err[512];
	int chan, r;

	if (k->to.taken) {
		log_error("Daemon %d mounts a second FUSE filesystem, at %s: fusekeeper takes over "
			  "one mount per daemon (run one fusekeeper for each mount)", (int)k->daemon,
			  c->target);
		return -EBUSY;
	}
	if (k->cfg.mountpoint) {
		/* The same directory (beneath the mount, for a restarted daemon), by identity. */
		dev_t dev = k->to.dir_dev;
		ino_t ino = k->to.dir_ino;

		if (!k->to.mounted && takeover_identity(k->cfg.mountpoint, &dev, &ino) < 0)
			dev = 0;
		if (c->dev != dev || c->ino != ino) {
			log_error("Daemon %d mounts at %s, but fusekeeper's MOUNTPOINT is %s: give "
				  "the daemon that mountpoint, or leave MOUNTPOINT out",
				  (int)k->daemon, c->target, k->cfg.mountpoint);
			return -EINVAL;
		}
	}
	if (!k->to.mounted) {
		r = takeover_first_mount(k, c);
		if (r < 0)
			return r;
	} else {
		takeover_compare(k, c);
	}
	/* The daemon sees its mount when its call returns, as without the keeper. */
	if (!k->to.mount_gone) {
		/* Through the mount's root itself: never what a name a user changed leads to. */
		_cleanup_close_ int root = takeover_open_root(k->cfg.mountpoint, k->to.conn);

		if (root < 0)
			snprintf(err, sizeof(err), "%s does not lead to the mount (%s)",
				 k->cfg.mountpoint, strerror(-root));
		if (root < 0 || takeover_show_mount(c->pid, root, k->cfg.mountpoint,
						    k->to.dir_dev, k->to.dir_ino, k->to.conn,
						    err, sizeof(err)) < 0)
			log_warn("%s: daemon %d sees the directory beneath its mountpoint", err,
				 (int)k->daemon);
	}
	chan = k->cfg.mode->channel(k->mode_state);
	if (chan < 0) {
		log_error("Cannot create the daemon's channel: %s", strerror(-chan));
		return chan;
	}
	r = takeover_channel_set(&k->to.chan, chan);
	if (r < 0) {
		log_error("Cannot keep track of the daemon's channel: %s", strerror(-r));
		return r;
	}
	r = takeover_install_fd(k->to.listener, c, chan);
	if (r < 0) {
		if (r != -ENOENT)
			log_error("Cannot put the channel in place of fd %d of process %d: %s", c->fd,
				  (int)c->pid, strerror(-r));
		takeover_channel_clear(&k->to.chan);
		return r;
	}
	k->to.taken = true;
	takeover_answer(k->to.listener, c, 0);
	log_debug("Took over the mount of daemon %d: fd %d of process %d is the %s mode's channel",
		  (int)k->daemon, c->fd, (int)c->pid, k->cfg.mode->name);
	return 0;
}

/*
 * Answers one trapped call of the daemon's. Returns 0, or -errno when the daemon did something
 * that cannot be taken over (logged, and answered with that error): its start fails.
 */
static int takeover_handle(struct keeper *k)
{
	struct takeover_call c;
	int r = takeover_receive(k->to.listener, &c);

	if (r < 0) {
		log_error("The seccomp listener of daemon %d failed: %s", (int)k->daemon,
			  strerror(-r));
		close(k->to.listener);
		k->to.listener = -1;
		return k->to.failed = r;
	}
	if (r == 0)
		return 0;
	switch (c.kind) {
	case TAKEOVER_UMOUNT:
		if (k->to.mounted && (!strcmp(c.target, k->cfg.mountpoint) ||
				      c.dev == makedev(0, k->to.conn))) {
			if (k->stop || k->to.mount_gone)
				log_info("Daemon %d unmounts %s: answered success (fusekeeper ends the "
					 "mount itself)", (int)k->daemon, c.target);
			else
				log_info("Daemon %d unmounts %s: answered success without unmounting "
					 "(fusekeeper keeps the mount; the daemon is restarted when it "
					 "exits)", (int)k->daemon, c.target);
			takeover_answer(k->to.listener, &c, 0);
			/*
			 * For the daemon its connection has ended, as after a real unmount: a daemon
			 * that waits for that before it exits (go-fuse) must see it. On a proxy
			 * channel (a socket) its reads now return end of file; a clone of /dev/fuse
			 * (reinit) ends with the connection.
			 */
			if (k->to.taken && k->daemon > 0 &&
			    takeover_channel_shutdown(k->daemon, &k->to.chan) == 0)
				k->to.self_unmounted = true;
		} else {
			takeover_continue(k->to.listener, &c);
		}
		return 0;
	case TAKEOVER_PASSED:
		log_info("Daemon %d (process %d) mounts %s at %s: not FUSE, let through (it stays in "
			 "the daemon's own mount namespace)", (int)k->daemon, (int)c.pid, c.why,
			 c.target);
		takeover_continue(k->to.listener, &c);
		return 0;
	case TAKEOVER_SPLICE:
		takeover_splice(k->to.listener, &c, &k->to.chan);
		return 0;
	case TAKEOVER_REFUSED:
		log_error("Daemon %d (process %d) mounts %s in a way fusekeeper cannot take over: %s",
			  (int)k->daemon, (int)c.pid, c.target, c.why);
		r = c.error;
		break;
	case TAKEOVER_MOUNT:
		r = takeover_mount_call(k, &c);
		break;
	}
	mount_options_free(&c.mnt);
	if (r < 0) {
		takeover_answer(k->to.listener, &c, r);
		k->to.failed = r;
	}
	return r;
}

/*
 * Detaches the keeper's mount through its root, checked to be the connection's: the daemon's
 * user may have made the mountpoint's name lead elsewhere (a renamed parent directory).
 */
static int takeover_unmount(struct keeper *k)
{
	char link[64];
	int root = takeover_open_root(k->cfg.mountpoint, k->to.conn), r;

	if (root < 0)
		return root == -ESTALE ? -ENOENT : root;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", root);
	r = umount2(link, MNT_DETACH) < 0 ? -errno : 0;
	close(root);
	return r;
}

/*
 * The keeper's namespace changed: if its mount is gone (unmounted by the user), the daemon's copy
 * is removed too, so that the connection ends with its last mount elsewhere (a container's bind
 * mount), as it does without the keeper.
 */
static void takeover_check_mount(struct keeper *k, bool quiet)
{
	int r;

	/* Anywhere in the keeper's namespace: a renamed parent moves it, it is not gone. */
	if (!k->to.mounted || k->to.mount_gone || takeover_has_mount(getpid(), NULL, k->to.conn) != 0)
		return;
	k->to.mount_gone = true;
	close(k->to.mountinfo);
	k->to.mountinfo = -1;
	r = k->daemon > 0 ? takeover_hide_mount(k->daemon, k->cfg.mountpoint, k->to.conn) : 0;
	if (!quiet)
		log_info("%s was unmounted in fusekeeper's namespace%s", k->cfg.mountpoint,
			 r > 0 ? ": removed the daemon's own copy of it" : "");
	if (r < 0)
		log_warn("Cannot remove the daemon's own copy of %s: %s; the mount ends when the "
			 "daemon does", k->cfg.mountpoint, strerror(-r));
}

/* The inode of the mount namespace of @pid, 0 if unknown. */
static uint64_t mount_ns_of(pid_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
	return stat(path, &st) < 0 ? 0 : st.st_ino;
}

/*
 * A child of the keeper's (by now: it is a subreaper) other than @not, in the daemon's mount
 * namespace (not one of the keeper's own helpers, which inherit its fds), that holds the
 * daemon's channel.
 */
static pid_t channel_holder(struct keeper *k, pid_t not)
{
	DIR *tasks = opendir("/proc/self/task");
	struct dirent *de;
	pid_t found = 0;

	if (!tasks)
		return 0;
	while (!found && (de = readdir(tasks))) {
		char path[300], buf[4096], *p, *end;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/children", de->d_name);
		if (proc_read_small(path, buf, sizeof(buf)) <= 0)
			continue;
		for (p = buf; !found; p = end) {
			long pid = strtol(p, &end, 10);

			if (end == p)
				break;
			if (pid != not && k->to.ns && mount_ns_of(pid) == k->to.ns &&
			    getpgid(pid) != getpgrp() &&
			    takeover_holds_channel(pid, &k->to.chan) == 1)
				found = pid;
		}
	}
	closedir(tasks);
	return found;
}

/*
 * The daemon's process exited. If it exited 0 and a process it started holds the channel the
 * keeper gave it, it went to the background (fuse_daemonize(), gocryptfs's fork): that process
 * is the daemon from now on. Returns true when the keeper follows one.
 */
static bool takeover_follow(struct keeper *k)
{
	int status = 0, pidfd;
	pid_t heir, pgid, old = k->daemon;

	if (!k->to.taken || old <= 0)
		return false;
	if (!k->daemon_reaped) {
		if (waitpid(old, &status, WNOHANG) != old)
			return false;
		k->daemon_status = status;
		k->daemon_reaped = true;
	}
	if (!WIFEXITED(k->daemon_status) || WEXITSTATUS(k->daemon_status) != 0)
		return false;
	heir = channel_holder(k, old);
	if (heir <= 0 || (pidfd = syscall(SYS_pidfd_open, heir, 0)) < 0)
		return false;
	log_info("Daemon %d went to the background as process %d, which holds its FUSE channel: "
		 "following it", (int)old, (int)heir);
	event("FOLLOW %d %d", (int)old, (int)heir);
	close(k->pidfd);
	k->pidfd = pidfd;
	fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	/*
	 * Its own group (setsid()), or the daemon's: another group of the session may hold jobs
	 * that are not the daemon's, so then only the process itself is signalled.
	 */
	pgid = getpgid(heir);
	k->pgid = pgid == heir || pgid == k->pgid ? pgid : 0;
	k->daemon = heir;
	k->daemon_reaped = false;
	return true;
}

/*
 * Waits for the starting daemon's own mount call and takes it over. Returns 0, or as
 * keeper_wait(); -errno when the daemon did what cannot be taken over.
 */
static int takeover_wait_mount(struct keeper *k)
{
	int64_t deadline = k->start.at + k->cfg.start_timeout_ms;

	while (!k->to.taken) {
		int r;

		if (k->to.failed)
			return k->to.failed;
		if (k->to.listener < 0)
			return -EIO;
		struct pollfd pfd = { .fd = k->to.listener, .events = POLLIN };

		r = keeper_wait(k, k->to.listener, deadline);
		if (r < 0)
			return r;
		/* POLLHUP alone: every process under the filter has exited; its death follows. */
		if (poll(&pfd, 1, 0) == 1 && !(pfd.revents & POLLIN))
			return keeper_wait(k, -1, k->start.at + k->cfg.max_start_ms);
		r = takeover_handle(k);
		if (r < 0) {
			/* Let it report the error it was answered, as it would without the keeper. */
			if (keeper_wait(k, -1, now_ms() + REFUSED_GRACE_MS) == -ECHILD)
				return -ECHILD;
			return r;
		}
	}
	return 0;
}

/* Why the daemon's process could not become the daemon: sent over a pipe from before exec. */
struct child_failure {
	int err;
	char step[80]; /* what failed: "executing", or a step of takeover_child() */
};

/*
 * Runs the daemon: with the mode's channel as /dev/fd/N in place of {}, or (takeover) with its
 * own command line, under the filter whose listener comes back over a socket.
 */
static int start_daemon(struct keeper *k)
{
	char **cmd = k->cfg.command;
	size_t argc = 0;
	char fdpath[32];
	int chan = -1, errpipe[2], sock[2] = { -1, -1 };
	struct child_failure cf = { 0 };
	const char *hide = k->to.mounted && !k->to.mount_gone ? k->cfg.mountpoint : NULL;
	const struct daemon_user *u = k->cfg.user;
	pid_t pid, keeper = getpid();

	if (!k->cfg.takeover) {
		chan = k->cfg.mode->channel(k->mode_state);
		if (chan < 0) {
			log_error("Cannot create the daemon's channel: %s", strerror(-chan));
			return chan;
		}
	} else if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) < 0) {
		return -errno;
	}
	snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", chan);
	while (cmd[argc])
		argc++;
	char *argv[argc + 1];
	for (size_t i = 0; i <= argc; i++)
		argv[i] = cmd[i] && !strcmp(cmd[i], "{}") ? fdpath : cmd[i];
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		int e = errno;
		if (sock[0] >= 0) {
			close(sock[0]);
			close(sock[1]);
		}
		return -e;
	}

	pid = fork();
	if (pid < 0) {
		int e = errno;
		close(errpipe[0]);
		close(errpipe[1]);
		if (sock[0] >= 0) {
			close(sock[0]);
			close(sock[1]);
		}
		return -e;
	}
	if (pid == 0) {
		sigset_t none;
		const char *step = "executing";

		/* Only async-signal-safe calls from here to exec. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (chan >= 0)
			fcntl(chan, F_SETFD, 0);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0) {
			dup2(devnull, STDIN_FILENO);
			if (devnull != STDIN_FILENO)
				close(devnull);
		}
		cf.err = k->cfg.takeover ? -takeover_child(k->to.filter, hide, k->to.conn, sock[1],
							   &step) : 0;
		if (!cf.err && u) {
			/* After the filter and the namespace, which need root. */
			step = "dropping to --user";
			/* The system calls themselves: glibc's wrappers signal every thread. */
			if (syscall(SYS_setgroups, u->ngroups, u->groups) < 0 ||
			    syscall(SYS_setresgid, u->gid, u->gid, u->gid) < 0 ||
			    syscall(SYS_setresuid, u->uid, u->uid, u->uid) < 0)
				cf.err = errno;
			/* A change of credentials clears the parent-death signal. */
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() != keeper)
				_exit(127);
		}
		if (!cf.err) {
			step = "executing";
			execvpe(argv[0], argv, k->env);
			cf.err = errno;
		}
		for (size_t i = 0; i < sizeof(cf.step) - 1 && step[i]; i++)
			cf.step[i] = step[i];
		if (write(errpipe[1], &cf, sizeof(cf)) < 0) {
			/* The parent sees a closed pipe and a dead child either way. */
		}
		_exit(127);
	}
	setpgid(pid, pid); /* Also here: the group must exist before anyone signals it. */
	close(errpipe[1]);
	k->daemon = pid;
	k->pgid = pid;
	k->hang_killed = false;
	k->broke = false;
	if (sock[0] >= 0) {
		close(sock[1]);
		/*
		 * The child sends the listener or closes its end (fails, or exits); it may block
		 * in its unmount of the hidden mount (a hung parent filesystem): not forever.
		 */
		struct pollfd pfd = { .fd = sock[0], .events = POLLIN };

		if (poll(&pfd, 1, k->cfg.start_timeout_ms) == 1)
			k->to.listener = takeover_recv_listener(sock[0]);
		else
			k->to.listener = -ETIMEDOUT;
		close(sock[0]);
		/* It has entered its own mount namespace before sending the listener. */
		k->to.ns = mount_ns_of(pid);
		k->to.taken = k->to.self_unmounted = false;
		k->to.failed = 0;
		if (k->to.listener == -ETIMEDOUT) {
			/* Not waited for: it may never die (reaped later, with the orphans). */
			log_error("Daemon %d did not set up its mount namespace and filter within "
				  "%.1f s (--start-timeout)", (int)pid, k->cfg.start_timeout_ms / 1000.0);
			kill(pid, SIGKILL);
			close(errpipe[0]);
			k->daemon = 0;
			event("FAILED %d setup", (int)pid);
			return -ETIMEDOUT;
		}
	}
	if (read(errpipe[0], &cf, sizeof(cf)) == sizeof(cf)) {
		close(errpipe[0]);
		if (!strcmp(cf.step, "executing"))
			log_error("Cannot execute '%s': %s", argv[0], strerror(cf.err));
		else
			log_error("Cannot start daemon '%s': %s failed: %s", argv[0], cf.step,
				  strerror(cf.err));
		waitpid(pid, NULL, 0);
		k->daemon = 0;
		if (k->to.listener >= 0)
			close(k->to.listener);
		k->to.listener = -1;
		event("FAILED %d exec", (int)pid);
		return -cf.err;
	}
	close(errpipe[0]);
	if (k->cfg.takeover && k->to.listener < 0) {
		log_error("Daemon %d sent no seccomp listener before it started: %s", (int)pid,
			  strerror(-k->to.listener));
		kill_daemon(k, SIGKILL);
		waitpid(pid, NULL, 0);
		k->daemon = 0;
		return -EIO;
	}
	k->pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (k->pidfd < 0) {
		int e = errno;
		log_error("pidfd_open(%d) failed: %s", (int)pid, strerror(e));
		kill_daemon(k, SIGKILL);
		waitpid(pid, NULL, 0);
		k->daemon = 0;
		if (k->to.listener >= 0)
			close(k->to.listener);
		k->to.listener = -1;
		return -e;
	}
	fcntl(k->pidfd, F_SETFD, FD_CLOEXEC);
	log_info("Started daemon %d: %s", (int)pid, argv[0]);
	event("DAEMON %d", (int)pid);
	return 0;
}

/* Reaps the daemon and says how it ended. */
static void reap_daemon(struct keeper *k)
{
	int status;
	pid_t pid = k->daemon;

	if (pid <= 0)
		return;
	if (k->daemon_reaped) {
		status = k->daemon_status;
	} else {
		int r;

		while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
			;
		if (r < 0)
			status = W_EXITCODE(0, SIGKILL); /* reaped elsewhere: its status is gone */
	}
	k->daemon_reaped = false;
	/* Whatever the daemon left running in its group goes too. */
	if (k->pgid > 0)
		kill(-k->pgid, SIGKILL);
	if (WIFSIGNALED(status)) {
		log_info("Daemon %d was killed by signal %s", (int)pid,
			 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
		event("EXIT %d signal=%s", (int)pid,
		      sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
	} else {
		log_info("Daemon %d exited with status %d%s", (int)pid, WEXITSTATUS(status),
			 WEXITSTATUS(status) != 0 || k->stop || k->restarting ? ""
			 : !k->cfg.takeover ? " while the filesystem is mounted (if it went to the "
					      "background, run it in the foreground, e.g. with -f)"
			 : k->to.taken ? " while the filesystem is mounted, and left no "
					      "process holding its FUSE channel"
					    : "");
		event("EXIT %d status=%d", (int)pid, WEXITSTATUS(status));
	}
	if (k->pidfd >= 0)
		close(k->pidfd);
	k->pidfd = -1;
	k->daemon = 0;
	/* Processes of its left over get ENOSYS from the filter from now on. */
	if (k->to.listener >= 0)
		close(k->to.listener);
	takeover_channel_clear(&k->to.chan);
	k->to.listener = -1;
	k->to.taken = false;
}

/*
 * Sends the daemon SIGTERM and waits up to @timeout_ms for it to exit (answering the unmount it
 * may make at exit), then sends SIGKILL. Does not reap it.
 */
static void terminate_daemon(struct keeper *k, int64_t timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	if (k->daemon <= 0)
		return;
	kill_daemon(k, SIGTERM);
	for (;;) {
		/*
		 * The daemon's own unmount at exit is trapped: it must be answered. Signals and
		 * control requests are too: SIGTERM to the keeper now ends a planned restart
		 * before its new daemon starts, and status says "stopping" or "restarting".
		 */
		struct pollfd pfd[3 + 1 + CONTROL_PENDING] = {
			{ .fd = k->pidfd, .events = POLLIN },
			{ .fd = k->to.listener, .events = POLLIN },
			{ .fd = k->sigfd, .events = POLLIN },
		};
		int64_t wake = deadline;
		int n;

		control_poll_fds(&k->ctl, &pfd[3], &wake);
		n = poll(pfd, ARRAY_SIZE(pfd), ms_until(wake));
		if (n > 0 && (pfd[1].revents & POLLIN) && takeover_handle(k) < 0)
			kill_daemon(k, SIGKILL);
		if (n > 0 && pfd[2].revents)
			read_signals(k);
		/* Also without an event: it drops clients past their time. */
		control_service(&k->ctl, &pfd[3], control_asked, control_refused, k);
		if (n > 0 && pfd[0].revents)
			break;
		if (ms_until(deadline) == 0)
			break;
	}
	if (ms_until(deadline) == 0) {
		log_warn("Daemon %d did not exit within %" PRId64 " ms of SIGTERM: killing it",
			 (int)k->daemon, timeout_ms);
		kill_daemon(k, SIGKILL);
	}
}

/* Stops the daemon: SIGTERM, then SIGKILL after --stop-timeout. */
static void stop_daemon(struct keeper *k)
{
	terminate_daemon(k, k->cfg.stop_timeout_ms);
	reap_daemon(k);
}

/* Before exiting: collects the helpers still dying (killed with the daemon's group). */
static void wait_orphans(struct keeper *k)
{
	int64_t deadline = now_ms() + 2000;

	for (;;) {
		struct pollfd pfd = { .fd = k->sigfd, .events = POLLIN };
		pid_t pid = waitpid(-1, NULL, WNOHANG);

		if (pid > 0)
			continue;
		if (pid < 0 || ms_until(deadline) == 0)
			return; /* ECHILD: none left. */
		poll(&pfd, 1, MIN(ms_until(deadline), 100));
		read_signals(k);
	}
}

/* Records a failed start; returns true when the keeper must give up. */
static bool record_failure(struct keeper *k, int64_t now)
{
	unsigned recent = 0, n = k->cfg.max_restarts;

	k->streak++;
	if (!n)
		return true;
	k->failures[k->nfail++ % n] = now;
	for (unsigned i = 0; i < MIN(k->nfail, n); i++)
		recent += now - k->failures[i] < k->cfg.restart_window_ms;
	return recent >= n;
}

/* The first restart after a failure is immediate: most deaths are one-off crashes or kills. */
static int64_t backoff_ms(const struct keeper *k)
{
	if (k->streak < 2)
		return 0;
	return MIN((int64_t)BACKOFF_FIRST_MS << MIN(k->streak - 2, 16u), BACKOFF_MAX_MS);
}

static int setup_signals(struct keeper *k)
{
	sigset_t set;

	/* A shell starts background jobs with SIGINT ignored; an ignored signal never reaches
	 * the signalfd, so restore the default first. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL); /* nohup: SIGHUP is a planned restart, not to be lost */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	/* Block before any thread starts so that every thread inherits the mask. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -EINVAL;
	signal(SIGPIPE, SIG_IGN);
	k->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return k->sigfd < 0 ? -errno : 0;
}

/* ---- Operations: status, planned restarts, systemd --------------------------------------- */

/* STATUS= for systemd: the state in one line, as `systemctl status` shows it. */
static void notify_status(const struct keeper *k)
{
	if (k->gave_up)
		sd_notifyf(0, "STATUS=Gave up after %u failed starts; requests to %s fail with EIO",
			   k->cfg.max_restarts, k->cfg.mountpoint);
	else if (k->rec_at && k->serving)
		sd_notifyf(0, "STATUS=Daemon %d serves %s; %" PRIu64 " restarts (%" PRIu64 " planned), the "
		       "last one took %" PRId64 " ms", (int)k->daemon, k->cfg.mountpoint,
		       k->planned + k->crashes + k->protocol_errors + k->hangs, k->planned,
		       k->rec_ms);
	else if (k->serving)
		sd_notifyf(0, "STATUS=Daemon %d serves %s", (int)k->daemon, k->cfg.mountpoint);
	else if (k->failing)
		sd_notifyf(0, "STATUS=No daemon serves %s: starting one; requests fail with EIO "
			   "until one does", k->cfg.mountpoint);
	else
		sd_notifyf(0, "STATUS=No daemon serves %s: starting one", k->cfg.mountpoint);
}

static const char *keeper_state(const struct keeper *k)
{
	if (k->stop)
		return "stopping";
	if (k->restarting)
		return "restarting";
	if (k->gave_up)
		return "gave-up";
	if (k->serving)
		return "serving";
	if (k->start.at)
		return k->served ? "recovering" : "starting";
	return k->served ? "down" : "starting";
}

static struct json_object *status_json(const struct keeper *k)
{
	int64_t now = now_ms();
	struct keeper_status s = {
		.pid = getpid(),
		.mountpoint = k->cfg.mountpoint,
		.mode = k->cfg.mode->name,
		.state = keeper_state(k),
		.gave_up = k->gave_up,
		.requests_fail = k->failing,
		.uptime_ms = now - k->started_at,
		.version = FUSEKEEPER_VERSION,
		.reexecs = k->reexecs,
		.daemon_pid = k->daemon,
		.command = k->cfg.command,
		.daemon_uptime_ms = k->serving ? now - k->up_since : -1,
		.planned = k->planned,
		.crashes = k->crashes,
		.protocol_errors = k->protocol_errors,
		.hangs = k->hangs,
		.failed_starts = k->failed_starts,
		.recovery_ago_ms = k->rec_at ? now - k->rec_at : -1,
		.recovery_ms = k->rec_ms,
		.recovery_planned = k->rec_planned,
		.recovery = k->rec,
	};

	stats_unknown(&s.now);
	if (k->mode_state && k->cfg.mode->stats)
		k->cfg.mode->stats(k->mode_state, &s.now);
	/* Nodes a recovery left for later may be lost after it (proxy's lazy lookup). */
	if (k->rec_at && k->serving && s.now.nodes_lost >= 0)
		s.recovery.nodes_lost = s.now.nodes_lost;
	return status_to_json(&s);
}

static void control_refused(void *arg, const struct ucred *peer)
{
	log_warn("Refused a control request from uid %d (pid %d): only root may ask",
		 (int)peer->uid, (int)peer->pid);
}

/* The string @key of @req, or NULL when it is absent or not a string. */
static const char *req_string(struct json_object *req, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Answers one request of the control socket (control.h); owns @conn. */
static void control_asked(void *arg, int conn, struct json_object *req,
			  const struct ucred *peer)
{
	struct keeper *k = arg;
	const char *cmd = req_string(req, "command"), *why;
	struct json_object *v, *reply;
	int64_t stop_ms = -1;

	if (!cmd) {
		control_fail(conn, -EINVAL, "malformed request: no \"command\" string");
	} else if (!strcmp(cmd, "status")) {
		reply = status_json(k);
		if (!reply || control_send(conn, reply) < 0)
			log_warn("Cannot answer a status request of pid %d", (int)peer->pid);
		json_object_put(reply);
		close(conn);
	} else if (!strcmp(cmd, "restart")) {
		if (json_object_object_get_ex(req, "stop_timeout_ms", &v)) {
			stop_ms = json_object_is_type(v, json_type_int) ? json_object_get_int64(v)
									: -1;
			if (stop_ms < 0 || stop_ms > 3600 * 1000) {
				control_fail(conn, -EINVAL, "malformed request: \"stop_timeout_ms\" "
					     "must be a whole number from 0 to 3600000");
				return;
			}
		}
		why = restart_refused(k);
		if (why) {
			log_info("Not restarting the daemon as pid %d asks: %s", (int)peer->pid, why);
			control_fail(conn, -EBUSY, why);
			return;
		}
		restart_request(k, "asked on the control socket");
		k->restart_conn = conn;
		k->restart_stop_ms = stop_ms;
	} else if (!strcmp(cmd, "reexec")) {
		why = reexec_refused(k);
		if (why) {
			log_info("Not replacing fusekeeper as pid %d asks: %s", (int)peer->pid, why);
			control_fail(conn, -EBUSY, why);
			return;
		}
		k->reexec_req = true;
		k->reexec_conn = conn;
	} else {
		control_fail(conn, -EINVAL, "unknown command");
	}
}

/* Tells whoever asked for the planned restart under way how it ended, and ends it. */
static void restart_done(struct keeper *k, int err, const char *msg)
{
	if (k->restart_conn >= 0) {
		if (err) {
			control_fail(k->restart_conn, err, msg);
		} else {
			struct json_object *o = json_object_new_object();

			json_object_object_add(o, "ok", json_object_new_boolean(true));
			json_object_object_add(o, "duration_ms", json_object_new_int64(k->rec_ms));
			json_object_object_add(o, "old_pid", k->restart_from ?
					       json_object_new_int(k->restart_from) : NULL);
			json_object_object_add(o, "daemon_pid", json_object_new_int(k->daemon));
			control_send(k->restart_conn, o);
			json_object_put(o);
			close(k->restart_conn);
		}
	}
	k->restart_conn = -1;
	k->restarting = false;
	/* systemd waits for READY=1 after RELOADING=1, whatever the outcome, unless stopping. */
	if (err && !k->stop) {
		sd_notifyf(0, "READY=1");
		notify_status(k);
	}
}

/* A planned restart begins: from now until a new daemon serves, it is under way. */
static void restart_begin(struct keeper *k)
{
	struct timespec ts;

	k->restart_req = false;
	k->restarting = true;
	k->restart_at = now_ms();
	k->restart_from = k->serving ? k->daemon : 0;
	/* Requests held meanwhile wait --request-wait at most, as after a death. */
	if (k->serving)
		k->down_at = k->restart_at + k->cfg.request_wait_ms;
	serving_end(k);
	/* systemd compares it with its own clock: microseconds, not now_ms() * 1000. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Restarting the daemon of %s",
		   (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, k->cfg.mountpoint);
}

/*
 * The planned restart of the serving daemon: new requests wait at the keeper while it answers
 * those it holds (the mode's drain()), then it gets SIGTERM, and SIGKILL after the stop
 * timeout. Returns -ECHILD once it is gone (not reaped), or -EINTR when the keeper must stop.
 */
static int planned_stop(struct keeper *k)
{
	int64_t stop_ms = k->restart_stop_ms >= 0 ? k->restart_stop_ms : k->cfg.stop_timeout_ms;
	pid_t pid = k->daemon;
	char what[192] = "";
	int r;

	restart_begin(k);
	log_info("Planned restart of daemon %d (%s): new requests wait at fusekeeper while the "
		 "daemon answers those it holds", (int)pid, k->restart_by);
	event("RESTARTING %d", (int)pid);
	if (k->cfg.mode->drain) {
		r = k->cfg.mode->drain(k->mode_state, k->restart_at + stop_ms, what, sizeof(what));
		if (r == -ECHILD) {
			/* Not stopped by the restart: a crash, recovered as one. */
			log_warn("Daemon %d died while it answered the requests it held; the new daemon "
				 "takes over as after a crash", (int)pid);
			k->restart_from = 0;
			return r;
		}
		if (r == -EINTR)
			return r;
		if (r < 0)
			log_warn("Daemon %d still holds %s after %.1f s (the stop timeout): stopping it "
				 "anyway; the new daemon takes them over as after a crash", (int)pid,
				 r == -ETIMEDOUT ? what : "requests", stop_ms / 1000.0);
		else
			log_debug("Daemon %d answered what it held in %" PRId64 " ms; stopping it",
				  (int)pid, now_ms() - k->restart_at);
	} else {
		log_info("%s mode cannot hold new requests: the daemon gets them until it stops, "
			 "and the new one takes over what it held then as after a crash",
			 k->cfg.mode->name);
	}
	terminate_daemon(k, stop_ms);
	if (k->stop)
		return -EINTR;
	/*
	 * SIGKILL was sent; a daemon stuck in the kernel (state D) may not die yet. Wait for its
	 * death as for a hung daemon's: watching everything, requests failing after
	 * --request-wait (counted from the restart's start).
	 */
	return keeper_wait(k, -1, INT64_MAX) == -EINTR ? -EINTR : -ECHILD;
}

/* The supervisor's own waits, in which a planned restart may begin (-ECANCELED). */
static int supervisor_wait(struct keeper *k, int64_t deadline)
{
	int r;

	k->accept_restart = true;
	r = keeper_wait(k, -1, deadline);
	k->accept_restart = false;
	return r;
}

/*
 * The daemon's environment: @env without the variables systemd sets for the keeper itself, so
 * that the daemon neither reports to systemd in the keeper's name nor takes its fds.
 */
static char **daemon_env(char **env)
{
	static const char *const keepers[] = { "NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=",
					       "LISTEN_FDNAMES=", "WATCHDOG_USEC=",
					       "WATCHDOG_PID=", REEXEC_IMAGE_ENV "=" };
	size_t n = 0, j = 0;
	char **out;

	while (env[n])
		n++;
	out = calloc(n + 1, sizeof(*out));
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		bool drop = false;

		for (size_t d = 0; d < ARRAY_SIZE(keepers); d++)
			drop |= !strncmp(env[i], keepers[d], strlen(keepers[d]));
		if (!drop)
			out[j++] = env[i];
	}
	return out;
}

int supervise(const struct keeper_config *cfg)
{
	struct keeper k = {
		.cfg = *cfg, .pidfd = -1, .sigfd = -1, .ctl = { .fd = -1 }, .restart_conn = -1,
		.restart_stop_ms = -1,
		.to = { .listener = -1, .chan = { .fd = -1 }, .mountinfo = -1 },
	};
	char err[512];
	extern char **environ;
	int devfd, r, rc = 1, resumed;

	k.started_at = now_ms();
	stats_unknown(&k.rec);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	k.failures = calloc(MAX(cfg->max_restarts, 1u), sizeof(*k.failures));
	/* A keeper that replaced another takes up its state, fds and daemon first. */
	resumed = k.failures ? reexec_resume(&k) : 0;
	k.env = daemon_env(cfg->user ? cfg->user->env : environ);
	if (!k.failures || !k.env || setup_signals(&k) < 0) {
		log_error("Cannot set up signal handling: %s", strerror(errno));
		goto out;
	}
	if (resumed < 0)
		goto lost;
	/* Without it the mount is kept all the same: status and restarts need it. */
	if (!resumed && control_listen(&k.ctl, err, sizeof(err)) < 0)
		log_warn("%s; fusekeeper status and restart will not see this keeper", err);
	if (cfg->takeover && resumed) {
		/* For the daemons to come: the serving one keeps the listener it has. */
		r = takeover_new(&k.to.filter, err, sizeof(err));
		if (r < 0)
			log_warn("%s: a restarted daemon's mount cannot be taken over", err);
	} else if (resumed) {
		/* The mount and the mode exist already. */
	} else if (cfg->resume_fds[0] >= 0) {
		/* A keeper killed before this one left the connection in systemd's fd store. */
		r = cfg->mode->resume(&k, cfg->resume_fds[0], cfg->resume_fds[1],
				      cfg->resume_fds[2], &k.mode_state);
		if (r < 0) {
			log_error("Cannot take the connection back from systemd's fd store: %s; the "
				  "mount is lost", r == -EBADMSG ? "the resume journal does not read "
				  "back" : r == -ESTALE ? "it is another mount's" : strerror(-r));
			/* The connection ends with the last fd on it: ours at exit, the store's now.
			 * Its mount goes too, unless the one at MOUNTPOINT is another's. */
			k.to.mounted = r != -ESTALE;
			fdstore_clear();
			goto lost;
		}
		k.to.mounted = true;
		k.to.conn = fuse_conn_id(cfg->mountpoint);
		/* As after a daemon's death: a new one takes over, and the time is counted. */
		k.served = k.stored = true;
		k.died_at = now_ms();
		k.down_at = k.died_at + cfg->request_wait_ms;
		log_info("Resumed %s after fusekeeper was killed (proxy mode)", cfg->mountpoint);
		event("MODE %s", cfg->mode->name);
		event("RESUMED");
	} else if (cfg->takeover) {
		/* The mount is made when the first daemon asks for it (takeover_first_mount()). */
		r = takeover_new(&k.to.filter, err, sizeof(err));
		if (r < 0) {
			log_error("%s", err);
			goto out;
		}
	} else {
		devfd = fuse_mount_fd(cfg->mountpoint, &cfg->mnt, err, sizeof(err));
		if (devfd < 0) {
			log_error("%s", err);
			goto out;
		}
		r = cfg->mode->start(&k, devfd, &k.mode_state);
		if (r < 0) {
			log_error("Cannot start %s mode: %s", cfg->mode->name, strerror(-r));
			fuse_unmount(cfg->mountpoint);
			goto out;
		}
		k.to.mounted = true;
		k.to.conn = fuse_conn_id(cfg->mountpoint);
		log_debug("The mount is FUSE connection %u (fusectl)", k.to.conn);
		log_info("Mounted %s (%s mode)", cfg->mountpoint, cfg->mode->name);
		event("MODE %s", cfg->mode->name);
	}

	while (!k.stop) {
		bool failed_start, unmounted, took_over = false;
		int64_t ended;

		if (resumed) {
			/* The daemon the replaced keeper had serves on. */
			r = 0;
		} else {
			r = start_daemon(&k);
			if (r == 0) {
				start_begin(&k);
				if (cfg->takeover)
					r = takeover_wait_mount(&k);
			}
			if (r == 0)
				r = k.cfg.mode->attach(k.mode_state, &k);
		}
		if (r == 0) {
			int64_t now = now_ms();

			if (resumed) {
				reexec_done(&k);
				resumed = 0;
			} else if (!k.served) {
				k.first_start_ms = now - k.start.at;
				log_info("Daemon %d is serving %s (it started in %.1f s)", (int)k.daemon,
					 k.cfg.mountpoint, k.first_start_ms / 1000.0);
				event("READY %d", (int)k.daemon);
			} else {
				/* A start asked for after giving up recovers from the last death. */
				k.rec_planned = k.restarting && k.restart_from;
				k.rec_ms = now - (k.rec_planned ? k.restart_at : k.died_at);
				k.rec_at = now;
				stats_unknown(&k.rec);
				if (k.cfg.mode->stats)
					k.cfg.mode->stats(k.mode_state, &k.rec);
				if (k.rec_planned)
					log_info("Restarted: daemon %d took over %s from daemon %d in %"
						 PRId64 " ms (planned restart)", (int)k.daemon,
						 k.cfg.mountpoint, (int)k.restart_from, k.rec_ms);
				else
					log_info("Daemon %d took over %s %" PRId64 " ms after the last "
						 "one died%s", (int)k.daemon, k.cfg.mountpoint, k.rec_ms,
						 k.gave_up ? ": it serves again after fusekeeper gave up"
							   : "");
				event("%s %d %" PRId64, k.rec_planned ? "RESTARTED" : "RECOVERED",
				      (int)k.daemon, k.rec_ms);
				if (k.restarting)
					restart_done(&k, 0, NULL);
			}
			if (k.gave_up) {
				/* A clean slate: a crash now is restarted at once, as at first. */
				k.nfail = k.streak = 0;
				k.gave_up = false;
			}
			k.start.at = 0;
			k.down_at = 0;
			k.failing = false;
			/* A resumed keeper's daemon has served since up_since already. */
			if (!k.serving)
				k.up_since = now;
			k.served = k.serving = took_over = true;
			sd_notifyf(0, "READY=1");
			fdstore_put(&k);
			notify_status(&k);
			/* A reexec that did not happen leaves the daemon serving. */
			while ((r = supervisor_wait(&k, INT64_MAX)) == -ECANCELED && k.reexec_req &&
			       (r = reexec_run(&k)) == 0)
				notify_status(&k);
			if (r == -ECANCELED)
				r = planned_stop(&k);
			serving_end(&k);
		}
		k.start.at = 0;
		if (r == -EINTR || k.stop)
			break;
		/* The daemon died, failed to start or must be replaced. */
		ended = now_ms();
		/* Something it did could not be taken over: it would again, however long it ran. */
		failed_start = !took_over || k.to.failed;
		if (took_over) {
			/* From now on requests wait for a new daemon, for --request-wait at most. */
			k.died_at = ended;
			k.down_at = k.died_at + cfg->request_wait_ms;
			if (k.broke)
				k.protocol_errors++;
			else if (k.hang_killed)
				k.hangs++;
			else if (k.restarting && k.restart_from)
				k.planned++;
			else
				k.crashes++;
		}
		if (failed_start && k.daemon > 0)
			event("FAILED %d %s", (int)k.daemon,
			      r == -ETIMEDOUT ? "timeout" : r == -EPROTO ? "init" :
			      r == -ECHILD ? "exit" : k.to.failed ? "takeover" : "start");
		if (!took_over)
			k.failed_starts++;
		if (r != -ECHILD && k.daemon > 0)
			kill_daemon(&k, SIGKILL);
		/*
		 * The daemon may have died of the end of the connection (an unmount): not restarted.
		 * Asked before the reap, so that its log line does not blame a daemon that exited
		 * because it saw the unmount first (as one on a clone of the connection does).
		 */
		unmounted = false;
		if (k.mode_state) {
			k.cfg.mode->detach(k.mode_state);
			unmounted = mode_events(&k) < 0;
		}
		reap_daemon(&k);
		if (unmounted)
			break;
		if (!k.served) {
			if (!cfg->takeover)
				log_error("The daemon failed before it served the mount; giving up. Check "
					  "that COMMAND runs in the foreground and accepts {} as its "
					  "mountpoint");
			else if (k.to.failed)
				log_error("The daemon's mount could not be taken over; giving up");
			else if (!k.to.mounted && r == -ETIMEDOUT)
				log_error("The daemon did not mount a FUSE filesystem within its start "
					  "time; giving up");
			else if (!k.to.mounted)
				log_error("The daemon failed before it mounted a FUSE filesystem; giving "
					  "up. Its own messages above should say why");
			else
				log_error("The daemon failed before it served the mount; giving up");
			k.gave_up = true;
			break;
		}
		if (!failed_start) {
			/* A daemon that dies right after taking over still earns a back-off; one
			 * stopped for a planned restart does not. */
			k.streak = k.restarting ? 0
				 : ended - k.up_since < MIN_UPTIME_MS ? k.streak + 1 : 0;
		} else if (!k.gave_up && record_failure(&k, ended)) {
			k.gave_up = true;
			give_up(&k);
			if (cfg->retry_interval_ms)
				log_error("%u failed starts within %" PRId64 " s: giving up; requests to "
					  "%s now %s. The daemon is tried again every %" PRId64
					  " s (--retry-interval)", cfg->max_restarts,
					  cfg->restart_window_ms / 1000, k.cfg.mountpoint,
					  k.requests_then, cfg->retry_interval_ms / 1000);
			else
				log_error("%u failed starts within %" PRId64 " s: giving up; requests to "
					  "%s now %s. fusekeeper restart %s tries a start again; unmount "
					  "it (umount %s) or stop fusekeeper to end this",
					  cfg->max_restarts, cfg->restart_window_ms / 1000,
					  k.cfg.mountpoint, k.requests_then, k.cfg.mountpoint,
					  k.cfg.mountpoint);
			/* After the mode's give_up() and the log: a test may act on it at once. */
			event("GAVEUP");
			notify_status(&k);
			k.down_at = 0;
		}
		/* The restart asked for did not give a serving daemon: say so now. */
		if (!took_over && k.restarting)
			restart_done(&k, -EIO, !k.gave_up ?
				     "the new daemon failed to start (fusekeeper's log says why); "
				     "fusekeeper starts it again as after a crash" :
				     cfg->retry_interval_ms ?
				     "the new daemon failed to start (fusekeeper's log says why), and "
				     "fusekeeper gave up: requests fail with EIO until a start, tried "
				     "every --retry-interval or by fusekeeper restart, succeeds" :
				     "the new daemon failed to start (fusekeeper's log says why), and "
				     "fusekeeper gave up: requests fail with EIO until fusekeeper "
				     "restart starts one that serves");
		if (k.gave_up) {
			/* `fusekeeper restart` (or SIGHUP) tries a start at once. */
			if (cfg->retry_interval_ms) {
				log_info("Trying to start the daemon again in %" PRId64 " s "
					 "(--retry-interval)", cfg->retry_interval_ms / 1000);
				r = supervisor_wait(&k, now_ms() + cfg->retry_interval_ms);
			} else {
				r = supervisor_wait(&k, INT64_MAX);
			}
			if (r == -ECANCELED) {
				log_info("Trying to start the daemon now (%s)", k.restart_by);
				restart_begin(&k);
			} else if (r != -ETIMEDOUT || !cfg->retry_interval_ms) {
				break;
			}
			continue;
		}
		if (backoff_ms(&k)) {
			log_info("Restarting the daemon in %" PRId64 " ms", backoff_ms(&k));
			if (keeper_wait(&k, -1, now_ms() + backoff_ms(&k)) == -EINTR)
				break;
		}
	}

	sd_notifyf(0, "STOPPING=1");
	/* Nothing is left to take back: the connection ends here. */
	if (k.stored) {
		fdstore_clear();
		k.stored = false;
	}
	if (k.restarting)
		restart_done(&k, -ECANCELED, "fusekeeper is stopping");
	if (!k.unmounted && k.to.mounted && !k.to.mount_gone) {
		r = cfg->takeover ? takeover_unmount(&k) : fuse_unmount(k.cfg.mountpoint);
		if (r < 0)
			log_warn("Cannot unmount %s: %s", k.cfg.mountpoint, strerror(-r));
		/* And the daemon's copy: a daemon waiting for the connection to end sees it end. */
		if (cfg->takeover)
			takeover_check_mount(&k, true);
	}
	stop_daemon(&k);
	wait_orphans(&k);
	/*
	 * End the connection before exiting, rather than by exiting: a relay thread blocked in
	 * the kernel (a notification waiting on a page that a request holds) would otherwise keep
	 * the process, and so /dev/fuse and every waiting request, from ever finishing.
	 */
	if (!k.unmounted && k.mode_state)
		fuse_abort_conn(k.cfg.mode->conn_id ? k.cfg.mode->conn_id(k.mode_state) : k.to.conn);
	if (k.mode_state)
		k.cfg.mode->stop(k.mode_state);
	log_info("Stopped");
	event("STOPPED");
	rc = k.gave_up ? 1 : 0;
	goto out;
lost:
	/* Without the replaced keeper's state nobody can serve the mount: end it, rather than
	 * leave applications waiting for ever on a connection nobody reads. */
	if (k.to.conn)
		fuse_abort_conn(k.to.conn);
	if (k.cfg.mountpoint && k.to.mounted)
		fuse_unmount(k.cfg.mountpoint);
	if (k.pidfd >= 0) {
		kill_daemon(&k, SIGKILL);
		reap_daemon(&k);
	}
	event("STOPPED");
out:
	control_close(&k.ctl);
	free(k.failures);
	free(k.env);
	takeover_free(k.to.filter);
	if (k.to.mountinfo >= 0)
		close(k.to.mountinfo);
	free(k.own_mountpoint);
	/* The daemon's options, which takeover_first_mount() put in the keeper's copy. */
	if (cfg->takeover)
		mount_options_free(&k.cfg.mnt);
	return rc;
}
