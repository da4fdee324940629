/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "reexec.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <json-c/json.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "keeper_i.h"
#include "log.h"
#include "util.h"

extern char **environ;

/* How long the daemon has to answer what it holds before the rest is handed over in flight. */
#define REEXEC_DRAIN_MS 2000

/* How long `BINARY --version` may take to say which image format it reads. */
#define PROBE_MS 5000

enum { TAG_KEEPER = 0x4b454550 /* "KEEP" */, TAG_KEEPER_END = 0x2f4b4545 };

const char *reexec_refused(const struct keeper *k)
{
	const struct mode_ops *m = k->cfg.mode;

	if (!m->freeze || !m->save || !m->restore)
		return "only a keeper in proxy mode can be replaced while it runs: in this mode a "
		       "new keeper needs a new mount";
	if (!k->cfg.exe)
		return "fusekeeper does not know where its own binary is (/proc/self/exe)";
	if (k->reexec_req || k->reexecing)
		return "a re-exec is under way already";
	if (k->restart_req || k->restarting)
		return "a planned restart of the daemon is under way; try again when it is done";
	if (!k->serving)
		return "no daemon serves the mount now; try again once one does (fusekeeper "
		       "status says when)";
	return NULL;
}

/*
 * Runs @exe with the keeper's own command line and REEXEC_PROBE_ENV set: it parses that command
 * line as it would after the execve (options, --user, the checks), and instead of keeping a
 * mount prints the image format it reads (REEXEC_FORMAT_LINE). Returns 0 when it would take
 * this keeper over, else -errno with a message for the operator in @err.
 */
static int probe_binary(const struct keeper *k, char *err, size_t errlen)
{
	const char *exe = k->cfg.exe;
	char out[1024] = "", *nl;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	int pipefd[2], r, status = -1;
	size_t len = 0, n_env = 0;
	int64_t deadline = now_ms() + PROBE_MS;
	_cleanup_free_ char **env = NULL;
	const char *line;
	pid_t pid;

	while (environ[n_env])
		n_env++;
	env = calloc(n_env + 2, sizeof(*env));
	if (!env || pipe2(pipefd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "cannot probe %s: %s", exe, strerror(errno));
		return -errno;
	}
	env[0] = REEXEC_PROBE_ENV "=1";
	memcpy(env + 1, environ, n_env * sizeof(*env));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDERR_FILENO);
	/* Open in the probe as after the execve, where the command line checks it. */
	if (event_get_fd() > STDERR_FILENO)
		posix_spawn_file_actions_adddup2(&fa, event_get_fd(), event_get_fd());
	/* Not the keeper's mask (its stop signals are blocked, for the signalfd). */
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	r = posix_spawn(&pid, exe, &fa, &attr, k->cfg.argv, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (r) {
		close(pipefd[0]);
		snprintf(err, errlen, "cannot run %s: %s", exe, strerror(r));
		return -r;
	}
	while (len < sizeof(out) - 1) {
		struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, ms_until(deadline)) <= 0)
			break;
		n = read(pipefd[0], out + len, sizeof(out) - 1 - len);
		if (n <= 0)
			break;
		len += n;
	}
	close(pipefd[0]);
	if (now_ms() >= deadline)
		kill(pid, SIGKILL);
	/* Not reaped elsewhere: the supervisor does nothing else meanwhile. */
	if (waitpid(pid, &status, 0) < 0)
		status = -1;
	out[len] = '\0';
	line = strstr(out, REEXEC_FORMAT_LINE " ");
	/* Its own message says why: the first line of it. */
	nl = strchr(out, '\n');
	if (nl && !(WIFEXITED(status) && !WEXITSTATUS(status)))
		*nl = '\0';
	if (!WIFEXITED(status)) {
		snprintf(err, errlen, "%s did not finish within %d s when asked whether it can take "
			 "over this keeper", exe, PROBE_MS / 1000);
		return -ETIMEDOUT;
	}
	if (WEXITSTATUS(status)) {
		snprintf(err, errlen, "%s refuses this keeper's command line (exit status %d: %s)",
			 exe, WEXITSTATUS(status), out[0] ? out : "no message");
		return -ENOEXEC;
	}
	if (!line) {
		snprintf(err, errlen, "%s does not say which state image format it reads: it is not "
			 "a fusekeeper that can take over a running keeper", exe);
		return -ENOEXEC;
	}
	if (strtoul(line + strlen(REEXEC_FORMAT_LINE " "), NULL, 10) != IMAGE_FORMAT) {
		snprintf(err, errlen, "%s reads state image format %lu, this keeper writes format %d: "
			 "it cannot take over this keeper (restart the service instead)", exe,
			 strtoul(line + strlen(REEXEC_FORMAT_LINE " "), NULL, 10), IMAGE_FORMAT);
		return -ENOEXEC;
	}
	return 0;
}

/* Tells the connection that asked (if any) why the keeper was not replaced, and logs it. */
static void refuse(struct keeper *k, int conn, int err, const char *why)
{
	log_error("Not replacing fusekeeper: %s", why);
	event("REEXEC_FAILED");
	if (conn >= 0)
		control_fail(conn, err, why);
	/* systemd waits for READY=1 after RELOADING=1 (the caller sends STATUS= again). */
	sd_notifyf(0, "READY=1");
}

static void save_stats(struct image *im, const struct mode_stats *s)
{
	const int64_t v[] = { s->nodes, s->handles, s->requests, s->locks, s->nodes_restored,
			      s->nodes_lost, s->handles_restored, s->handles_lost,
			      s->requests_replayed, s->requests_settled, s->writes_resent,
			      s->writes_lost };

	image_u32(im, ARRAY_SIZE(v));
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		image_u64(im, v[i]);
}

static void load_stats(struct image *im, struct mode_stats *s)
{
	int64_t *v[] = { &s->nodes, &s->handles, &s->requests, &s->locks, &s->nodes_restored,
			 &s->nodes_lost, &s->handles_restored, &s->handles_lost,
			 &s->requests_replayed, &s->requests_settled, &s->writes_resent,
			 &s->writes_lost };

	if (image_get_u32(im) != ARRAY_SIZE(v))
		image_bad(im);
	for (size_t i = 0; i < ARRAY_SIZE(v) && !im->err; i++)
		*v[i] = image_get_u64(im);
}

static void save_mount_options(struct image *im, const struct mount_options *o)
{
	image_u64(im, o->flags);
	image_bool(im, o->allow_other);
	image_bool(im, o->default_permissions);
	image_str(im, o->fsname);
	image_str(im, o->subtype);
	image_u32(im, o->max_read);
	image_bool(im, o->ids_set);
	image_u32(im, o->user_id);
	image_u32(im, o->group_id);
	image_u32(im, o->rootmode);
}

static void load_mount_options(struct image *im, struct mount_options *o)
{
	o->flags = image_get_u64(im);
	o->allow_other = image_get_bool(im);
	o->default_permissions = image_get_bool(im);
	o->fsname = image_get_str(im);
	o->subtype = image_get_str(im);
	o->max_read = image_get_u32(im);
	o->ids_set = image_get_bool(im);
	o->user_id = image_get_u32(im);
	o->group_id = image_get_u32(im);
	o->rootmode = image_get_u32(im);
}

/* The supervisor's part of the image: the daemon, the counters, the control socket, takeover. */
static void save_keeper(const struct keeper *k, int conn, struct image *im)
{
	image_tag(im, TAG_KEEPER);
	image_str(im, k->cfg.mode->name);
	image_str(im, k->cfg.mountpoint);
	image_u32(im, k->daemon);
	image_u32(im, k->pgid);
	image_fd(im, conn);
	image_fd(im, k->ctl.fd);
	image_fd(im, event_get_fd());
	image_u64(im, k->started_at);
	image_u64(im, k->first_start_ms);
	image_u64(im, k->died_at);
	image_u64(im, k->up_since);
	image_u64(im, k->hang_after);
	image_u64(im, k->reexec_at);
	image_u64(im, k->rec_at);
	image_u64(im, k->rec_ms);
	image_bool(im, k->rec_planned);
	save_stats(im, &k->rec);
	image_u64(im, k->planned);
	image_u64(im, k->crashes);
	image_u64(im, k->protocol_errors);
	image_u64(im, k->hangs);
	image_u64(im, k->failed_starts);
	image_u64(im, k->reexecs);
	image_u32(im, k->nfail);
	image_u32(im, k->streak);
	image_u32(im, MAX(k->cfg.max_restarts, 1u));
	for (unsigned i = 0; i < MAX(k->cfg.max_restarts, 1u); i++)
		image_u64(im, k->failures[i]);
	image_bool(im, k->cfg.takeover);
	image_bool(im, k->to.mounted);
	image_u32(im, k->to.conn);
	if (k->cfg.takeover) {
		image_fd(im, k->to.listener);
		image_bool(im, k->to.taken);
		image_u64(im, k->to.chan.sock_ino);
		image_fd(im, k->to.chan.fd);
		image_u64(im, k->to.ns);
		image_bool(im, k->to.self_unmounted);
		image_bool(im, k->to.mount_gone);
		image_u64(im, k->to.dir_dev);
		image_u64(im, k->to.dir_ino);
		save_mount_options(im, &k->cfg.mnt);
	}
	image_tag(im, TAG_KEEPER_END);
}

/* The inverse of save_keeper(); the mode is set up by the caller. */
static int load_keeper(struct keeper *k, struct image *im)
{
	_cleanup_free_ char *mode = image_expect(im, TAG_KEEPER) ? image_get_str(im) : NULL;
	unsigned ring;

	k->cfg.mode = NULL;
	for (const struct mode_ops *const *m = k->cfg.modes; mode && m && *m; m++)
		if (!strcmp(mode, (*m)->name))
			k->cfg.mode = *m;
	if (!k->cfg.mode || !k->cfg.mode->restore)
		return image_fail(im);
	/* Owned like a mountpoint the daemon's mount call named. */
	k->own_mountpoint = image_get_str(im);
	k->cfg.mountpoint = k->own_mountpoint;
	k->daemon = image_get_u32(im);
	k->pgid = image_get_u32(im);
	k->reexec_conn = image_get_fd(im);
	control_adopt(&k->ctl, image_get_fd(im));
	event_set_fd(image_get_fd(im));
	k->started_at = image_get_u64(im);
	k->first_start_ms = image_get_u64(im);
	k->died_at = image_get_u64(im);
	k->up_since = image_get_u64(im);
	/* The daemon has served all along. */
	k->served = k->serving = true;
	k->hang_after = image_get_u64(im);
	k->reexec_at = image_get_u64(im);
	k->rec_at = image_get_u64(im);
	k->rec_ms = image_get_u64(im);
	k->rec_planned = image_get_bool(im);
	load_stats(im, &k->rec);
	k->planned = image_get_u64(im);
	k->crashes = image_get_u64(im);
	k->protocol_errors = image_get_u64(im);
	k->hangs = image_get_u64(im);
	k->failed_starts = image_get_u64(im);
	k->reexecs = image_get_u64(im) + 1;
	k->nfail = image_get_u32(im);
	k->streak = image_get_u32(im);
	ring = image_get_u32(im);
	/* The new command line may allow another number of failed starts: keep what fits. */
	for (unsigned i = 0; i < ring && !im->err; i++) {
		int64_t t = image_get_u64(im);

		if (i < MAX(k->cfg.max_restarts, 1u))
			k->failures[i] = t;
	}
	k->nfail %= MAX(k->cfg.max_restarts, 1u);
	if (image_get_bool(im) != k->cfg.takeover)
		return image_fail(im);
	k->to.mounted = image_get_bool(im);
	k->to.conn = image_get_u32(im);
	if (k->cfg.takeover) {
		k->to.listener = image_get_fd(im);
		k->to.taken = image_get_bool(im);
		k->to.chan.sock_ino = image_get_u64(im);
		k->to.chan.fd = image_get_fd(im);
		k->to.ns = image_get_u64(im);
		k->to.self_unmounted = image_get_bool(im);
		k->to.mount_gone = image_get_bool(im);
		k->to.dir_dev = image_get_u64(im);
		k->to.dir_ino = image_get_u64(im);
		/* The options came from the daemon's mount call, not from this command line. */
		mount_options_free(&k->cfg.mnt);
		load_mount_options(im, &k->cfg.mnt);
	}
	image_expect(im, TAG_KEEPER_END);
	if (!im->err && (k->daemon <= 0 || !k->cfg.mountpoint || k->cfg.mountpoint[0] != '/'))
		image_bad(im);
	return im->err;
}

static int do_reexec(struct keeper *k);

int reexec_run(struct keeper *k)
{
	int r;

	k->reexecing = true;
	r = do_reexec(k);
	k->reexecing = false;
	return r;
}

static int do_reexec(struct keeper *k)
{
	const struct mode_ops *m = k->cfg.mode;
	struct image im = { 0 };
	int conn = k->reexec_conn, r, fd;
	char what[192] = "", err[512], env[32];
	pid_t pid = k->daemon;
	struct timespec ts;

	k->reexec_req = false;
	k->reexec_conn = -1;
	k->reexec_at = now_ms();
	r = probe_binary(k, err, sizeof(err));
	if (r < 0) {
		refuse(k, conn, r, err);
		return 0;
	}
	log_info("Replacing fusekeeper with %s (asked on the control socket): new requests wait "
		 "at fusekeeper meanwhile; daemon %d serves on", k->cfg.exe, (int)pid);
	event("REEXECUTING");
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Replacing fusekeeper",
		   (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	r = m->drain(k->mode_state, k->reexec_at + REEXEC_DRAIN_MS, what, sizeof(what));
	if (r == -ECHILD || r == -EINTR) {
		m->thaw(k->mode_state);
		refuse(k, conn, -ECANCELED, r == -EINTR ? "fusekeeper is stopping"
							: "the daemon died meanwhile");
		return r == -EINTR ? -EINTR : 0;
	}
	if (r == -ETIMEDOUT)
		log_info("Daemon %d still holds %s: handing them over in flight", (int)pid, what);
	r = m->freeze(k->mode_state);
	if (r < 0) {
		m->thaw(k->mode_state);
		refuse(k, conn, -EBUSY, "the relay did not come to a stop between two messages "
		       "within a second; try again");
		return 0;
	}
	image_u32(&im, IMAGE_FORMAT);
	save_keeper(k, conn, &im);
	m->save(k->mode_state, &im);
	fd = im.err ? im.err : image_to_memfd(&im);
	if (fd < 0) {
		image_free(&im);
		m->thaw(k->mode_state);
		snprintf(err, sizeof(err), "cannot write the state image: %s", strerror(-fd));
		refuse(k, conn, fd, err);
		return 0;
	}
	snprintf(env, sizeof(env), "%d", fd);
	if (image_keep_fds(&im, true) == 0 && setenv(REEXEC_IMAGE_ENV, env, 1) == 0) {
		log_debug("Executing %s with a %zu-byte state image", k->cfg.exe, im.len);
		execve(k->cfg.exe, k->cfg.argv, environ);
	}
	r = -errno;
	unsetenv(REEXEC_IMAGE_ENV);
	image_keep_fds(&im, false);
	image_free(&im);
	close(fd);
	m->thaw(k->mode_state);
	snprintf(err, sizeof(err), "cannot execute %s: %s", k->cfg.exe, strerror(-r));
	refuse(k, conn, r, err);
	return 0;
}

int reexec_resume(struct keeper *k)
{
	const char *env = getenv(REEXEC_IMAGE_ENV);
	struct image im;
	char val[32], *end;
	long fd;
	int r;

	if (!env)
		return 0;
	snprintf(val, sizeof(val), "%s", env);
	unsetenv(REEXEC_IMAGE_ENV);
	env = val;
	errno = 0;
	fd = strtol(env, &end, 10);
	r = end == env || *end || errno || fd < 0 || fd > INT_MAX ? -EINVAL : image_from_fd(&im, fd);
	if (r < 0) {
		/* Nothing was taken over: nothing to end either. */
		log_error("%s=%s does not name a state image: it is set only for the fusekeeper that "
			  "fusekeeper reexec executes; unset it", REEXEC_IMAGE_ENV, env);
		return -EINVAL;
	}
	close(fd);
	if (image_get_u32(&im) != IMAGE_FORMAT)
		image_bad(&im);
	if (!im.err)
		load_keeper(k, &im);
	if (!im.err) {
		siginfo_t si = { 0 };

		/* Still this process's child, not reaped: the same daemon serves. A pid that is
		 * not (a forged image) is no daemon of ours to signal or wait for. */
		if (waitid(P_PID, k->daemon, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || k->pgid <= 1)
			im.err = -EBADMSG;
	}
	if (!im.err) {
		k->pidfd = syscall(SYS_pidfd_open, k->daemon, 0);
		if (k->pidfd < 0)
			im.err = -errno;
		else
			fcntl(k->pidfd, F_SETFD, FD_CLOEXEC);
	}
	if (!im.err && k->cfg.takeover && k->to.mounted && !k->to.mount_gone)
		k->to.mountinfo = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (!im.err) {
		/* A failure here is the mode's (a thread that cannot start), not the image's. */
		r = k->cfg.mode->restore(k, &im, &k->mode_state);
		if (r < 0 && !im.err)
			im.err = r;
	}
	r = im.err;
	if (!r && im.off != im.len)
		r = -EBADMSG;
	if (r < 0)
		log_error("Cannot take up the state the replaced fusekeeper left (%s at byte %zu of "
			  "%zu). The mount cannot be kept: applications see it end (ENOTCONN)",
			  strerror(-r), im.off, im.len);
	image_free(&im);
	if (r < 0)
		return r;
	return 1;
}

void reexec_done(struct keeper *k)
{
	struct mode_stats s;
	int64_t ms = now_ms() - k->reexec_at;

	memset(&s, 0xff, sizeof(s));
	if (k->cfg.mode->stats)
		k->cfg.mode->stats(k->mode_state, &s);
	log_info("Replaced: fusekeeper %s took over %s in %" PRId64 " ms; daemon %d serves on, "
		 "with %" PRId64 " nodes, %" PRId64 " handles and %" PRId64 " requests in flight "
		 "carried over", FUSEKEEPER_VERSION, k->cfg.mountpoint, ms, (int)k->daemon,
		 s.nodes, s.handles, s.requests);
	event("REEXECUTED %" PRId64, ms);
	if (k->reexec_conn >= 0) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "ok", json_object_new_boolean(true));
		json_object_object_add(o, "duration_ms", json_object_new_int64(ms));
		json_object_object_add(o, "version", json_object_new_string(FUSEKEEPER_VERSION));
		json_object_object_add(o, "daemon_pid", json_object_new_int(k->daemon));
		control_send(k->reexec_conn, o);
		json_object_put(o);
		close(k->reexec_conn);
		k->reexec_conn = -1;
	}
}
