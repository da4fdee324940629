/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fusekeeper: keeps a FUSE mount alive while its daemon crashes and restarts. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "client.h"
#include "image.h"
#include "reexec.h"
#include "log.h"
#include "mode.h"
#include "supervisor.h"
#include "util.h"

static const char usage_text[] =
	"Usage: fusekeeper [OPTIONS] [MOUNTPOINT] -- COMMAND [ARG...]\n"
	"       fusekeeper [OPTIONS] MOUNTPOINT -- COMMAND [ARG...] {} [ARG...]\n"
	"       fusekeeper status [--json] [MOUNTPOINT]\n"
	"       fusekeeper restart [--stop-timeout=SECONDS] MOUNTPOINT\n"
	"       fusekeeper reexec MOUNTPOINT\n"
	"\n"
	"Run COMMAND, a FUSE daemon, and keep its mount alive: whenever the daemon exits or\n"
	"dies, fusekeeper starts it again. Processes using the mount do not notice: open\n"
	"files, working directories and bind mounts keep working.\n"
	"\n"
	"COMMAND is the daemon's own command line: it mounts as it always does (itself, or\n"
	"through fusermount3), in the foreground or not, and fusekeeper takes that mount\n"
	"over (a seccomp filter traps the daemon's mount calls). MOUNTPOINT is optional;\n"
	"given, the daemon must mount there.\n"
	"\n"
	"With {} in COMMAND, fusekeeper mounts at MOUNTPOINT itself and replaces every {}\n"
	"by /dev/fd/N, the daemon's FUSE connection (libfuse 3 daemons accept it as their\n"
	"mountpoint); the daemon must then stay in the foreground (libfuse: -f).\n"
	"\n"
	"Options:\n"
	"      --user=USER[:GROUP]\n"
	"                         run the daemon as USER (it mounts through fusermount3)\n"
	"  -o OPT[,OPT...]        mount options, with {} only (else the daemon's own):\n"
	"                         allow_other, default_permissions, ro, rw, nosuid\n"
	"                         (default), suid, nodev (default), dev, noexec, exec,\n"
	"                         noatime, sync, fsname=NAME, subtype=TYPE, max_read=BYTES\n"
	"  -m, --mode=MODE        recovery mode: auto (the default: reinit where the kernel\n"
	"                         has FUSE_DEV_IOC_REINIT and --write-through is given,\n"
	"                         proxy otherwise; --help says which one this machine gets),\n"
	"                         proxy (the keeper relays the protocol; everything\n"
	"                         survives a crash), remount (Linux 6.5+, with {}: the\n"
	"                         daemon gets /dev/fuse itself; after a crash every\n"
	"                         mount of the old instance, in every mount namespace, is\n"
	"                         replaced by one of a fresh instance; fds and working\n"
	"                         directories on the old one then get ESTALE) or reinit (a\n"
	"                         kernel with fusekeeper's kernel/patches: the daemon gets a\n"
	"                         clone of /dev/fuse, and the kernel hands the same connection\n"
	"                         to the next one; fds and working directories carry on)\n"
	"      --max-restarts=N   give up after N failed starts within the restart window\n"
	"                         (default 5); then every request fails with EIO, and the\n"
	"                         daemon is tried again every --retry-interval\n"
	"      --restart-window=SECONDS\n"
	"                         the window for --max-restarts (default 60)\n"
	"      --retry-interval=SECONDS\n"
	"                         after giving up, how often to try a start (default 30)\n"
	"      --no-retry         after giving up, start no daemon again\n"
	"      --start-timeout=SECONDS\n"
	"                         time a new daemon has to answer FUSE_INIT and take over\n"
	"                         before its start counts as failed (default 10); one that\n"
	"                         shows progress (CPU time, I/O), or is within 3\n"
	"                         times its first start's time, is given longer\n"
	"      --max-start-time=SECONDS\n"
	"                         no start lasts longer, progress or not (default 300)\n"
	"      --request-wait=SECONDS\n"
	"                         how long requests wait for a new daemon; past it they\n"
	"                         fail with EIO at once until one serves (default 30)\n"
	"      --stop-timeout=SECONDS\n"
	"                         time the daemon has to exit after SIGTERM (default 5);\n"
	"                         in a planned restart, also the time it has first to\n"
	"                         answer the requests it holds\n"
	"      --hang-timeout=SECONDS\n"
	"                         a daemon that has held a request this long and answered\n"
	"                         nothing meanwhile (deadlocked, stuck, stopped) is killed\n"
	"                         and a new one takes over (default 60; 0: never). Blocking\n"
	"                         locks, polls, ioctls and reads of pipe-like files do not\n"
	"                         count. In reinit mode the keeper sees no requests: there it\n"
	"                         kills only a new daemon that, after a crash, takes this long\n"
	"                         over a file the kernel writes again to it (writes the dead\n"
	"                         daemon acknowledged and never stored, or left unanswered);\n"
	"                         remount mode has no such check\n"
	"      --write-through    the daemon makes a write durable before it answers it\n"
	"                         (passthrough daemons, LXCFS): proxy mode keeps no write\n"
	"                         windows; --mode=auto chooses reinit where the kernel has\n"
	"                         it; in reinit mode a close or fsync the dead daemon left\n"
	"                         unanswered is sent again instead of failing with EIO\n"
	"      --status-fd=FD     write one event line per daemon start, exit and recovery to FD\n"
	"  -v, --verbose          more detail (twice: every request)\n"
	"  -q, --quiet            errors and warnings only\n"
	"  -h, --help             show this help\n"
	"  -V, --version          show the version\n"
	"\n"
	"Options of proxy mode only (an error with another --mode; ignored, with a warning,\n"
	"when --mode=auto chooses another):\n"
	"      --max-nodes=N      bound on the node IDs tracked (default 4194304)\n"
	"      --max-handles=N    bound on the open handles tracked (default 1048576)\n"
	"      --max-locks=N      bound on the file locks tracked for a daemon that keeps\n"
	"                         locks itself (default 65536); past it, a lock fails\n"
	"                         with ENOLCK\n"
	"      --write-window=SIZE\n"
	"                         acknowledged writes kept per open file until the daemon\n"
	"                         syncs them, to send again after a crash (default 64M);\n"
	"                         past it, a crash makes the file's next write, fsync or\n"
	"                         close fail with EIO\n"
	"      --write-window-total=SIZE\n"
	"                         the same bound for all open files together (default 256M)\n"
	"      --exclusive        no other client changes the filesystem's store: settle\n"
	"                         requests a dead daemon left on what the kernel knew\n"
	"      --no-keep-removed  pass removals of files held open to the daemon as they are:\n"
	"                         their fds then fail with ESTALE after a restart (by default\n"
	"                         such files are kept under a hidden name until closed)\n"
	"      --eager-lookup     after a restart, look every node the kernel holds up in\n"
	"                         the new daemon before serving (by default only what the\n"
	"                         recovery needs is, and the rest on first use and in the\n"
	"                         background, under a daemon whose inode numbers are\n"
	"                         stable)\n"
	"      --state-dir=DIR    where the journal of hidden names lives, so that a keeper\n"
	"                         started after a killed one removes them (default\n"
	"                         /run/fusekeeper)\n"
	"\n"
	"fusekeeper status shows what running keepers do; fusekeeper restart restarts a\n"
	"daemon for an upgrade (so does SIGHUP to the keeper), in proxy mode without\n"
	"failing a call; fusekeeper reexec replaces a keeper in proxy mode with the\n"
	"fusekeeper binary now on disk, keeping its mount and daemon: see their --help. A\n"
	"MOUNTPOINT named like a sub-command is given as a path: ./status.\n"
	"\n"
	"fusekeeper stays in the foreground and exits 0 when MOUNTPOINT is unmounted or on\n"
	"SIGTERM/SIGINT (it then stops the daemon and unmounts). It exits 1 if it could not\n"
	"start, or had given up after too many failed starts and no daemon served since;\n"
	"2 for bad usage.\n"
	"\n"
	"Examples:\n"
	"  fusekeeper -- lxcfs /var/lib/lxcfs\n"
	"  fusekeeper -- sshfs user@host:/srv /mnt/remote\n"
	"  fusekeeper -o allow_other /var/lib/lxcfs -- lxcfs -f {}\n"
	"\n"
	"See fusekeeper(1).\n";

enum {
	OPT_MAX_RESTARTS = 256,
	OPT_RESTART_WINDOW,
	OPT_START_TIMEOUT,
	OPT_MAX_START_TIME,
	OPT_REQUEST_WAIT,
	OPT_RETRY_INTERVAL,
	OPT_NO_RETRY,
	OPT_STOP_TIMEOUT,
	OPT_HANG_TIMEOUT,
	OPT_MAX_NODES,
	OPT_MAX_HANDLES,
	OPT_MAX_LOCKS,
	OPT_STATUS_FD,
	OPT_WRITE_WINDOW,
	OPT_WRITE_WINDOW_TOTAL,
	OPT_EXCLUSIVE,
	OPT_WRITE_THROUGH,
	OPT_NO_KEEP_REMOVED,
	OPT_EAGER_LOOKUP,
	OPT_STATE_DIR,
	OPT_USER,
};

static const struct option long_options[] = {
	{ "mode", required_argument, NULL, 'm' },
	{ "max-restarts", required_argument, NULL, OPT_MAX_RESTARTS },
	{ "restart-window", required_argument, NULL, OPT_RESTART_WINDOW },
	{ "start-timeout", required_argument, NULL, OPT_START_TIMEOUT },
	{ "max-start-time", required_argument, NULL, OPT_MAX_START_TIME },
	{ "request-wait", required_argument, NULL, OPT_REQUEST_WAIT },
	{ "retry-interval", required_argument, NULL, OPT_RETRY_INTERVAL },
	{ "no-retry", no_argument, NULL, OPT_NO_RETRY },
	{ "stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT },
	{ "hang-timeout", required_argument, NULL, OPT_HANG_TIMEOUT },
	{ "max-nodes", required_argument, NULL, OPT_MAX_NODES },
	{ "max-handles", required_argument, NULL, OPT_MAX_HANDLES },
	{ "max-locks", required_argument, NULL, OPT_MAX_LOCKS },
	{ "status-fd", required_argument, NULL, OPT_STATUS_FD },
	{ "write-window", required_argument, NULL, OPT_WRITE_WINDOW },
	{ "write-window-total", required_argument, NULL, OPT_WRITE_WINDOW_TOTAL },
	{ "exclusive", no_argument, NULL, OPT_EXCLUSIVE },
	{ "write-through", no_argument, NULL, OPT_WRITE_THROUGH },
	{ "no-keep-removed", no_argument, NULL, OPT_NO_KEEP_REMOVED },
	{ "eager-lookup", no_argument, NULL, OPT_EAGER_LOOKUP },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "user", required_argument, NULL, OPT_USER },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ 0 },
};

extern char **environ;

static const struct mode_ops *const modes[] = { &proxy_mode, &remount_mode, &reinit_mode, NULL };

static void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("fusekeeper: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'fusekeeper --help' for more information.\n", stderr);
	exit(2);
}

static unsigned long long parse_number(const char *opt, const char *arg, unsigned long long min,
				       unsigned long long max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < min || v > max)
		usage_error("--%s=%s: expected a whole number from %llu to %llu", opt, arg, min, max);
	return v;
}

/* A size in bytes with an optional K, M or G suffix (powers of 1024). */
static uint64_t parse_size(const char *opt, const char *arg, uint64_t max)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (*end && !end[1])
		shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' || *end == 'm' ? 20
		      : *end == 'G' || *end == 'g' ? 30 : 0;
	if (errno || end == arg || arg[0] == '-' || (*end && !shift) || v > (max >> shift))
		usage_error("--%s=%s: expected a size in bytes (with K, M or G) up to %" PRIu64
			    "G", opt, arg, max >> 30);
	return (uint64_t)v << shift;
}

/* Sets NAME=VALUE in the NULL-terminated @env (of @n allocated entries, room for 4 more). */
static void env_set(char **env, size_t *n, const char *name, const char *value)
{
	size_t len = strlen(name);
	char *entry;

	if (asprintf(&entry, "%s=%s", name, value) < 0)
		usage_error("out of memory");
	for (size_t i = 0; i < *n; i++) {
		if (!strncmp(env[i], name, len) && env[i][len] == '=') {
			free(env[i]);
			env[i] = entry;
			return;
		}
	}
	env[(*n)++] = entry;
	env[*n] = NULL;
}

/*
 * --user=USER[:GROUP]: a name or a number each; without GROUP the user's primary group. The
 * supplementary groups and HOME, USER, LOGNAME and SHELL are the user's, as systemd's User= sets
 * them; the rest of the environment is the keeper's (the daemon's configuration, as
 * RCLONE_CONFIG, may be there).
 */
static struct daemon_user *parse_user(const char *arg)
{
	_cleanup_free_ char *copy = strdup(arg);
	struct daemon_user *u = calloc(1, sizeof(*u));
	char *group = copy ? strchr(copy, ':') : NULL, *end;
	struct passwd *pw;
	size_t n = 0;
	int ng = 0;

	if (!copy || !u)
		usage_error("out of memory");
	if (group)
		*group++ = '\0';
	pw = getpwnam(copy);
	if (!pw) {
		unsigned long v = strtoul(copy, &end, 10);

		if (!*copy || *end || !(pw = getpwuid(v)))
			usage_error("--user=%s: no such user", arg);
	}
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	if (group) {
		struct group *gr = getgrnam(group);

		if (!gr) {
			unsigned long v = strtoul(group, &end, 10);

			if (!*group || *end || !(gr = getgrgid(v)))
				usage_error("--user=%s: no such group '%s'", arg, group);
		}
		u->gid = gr->gr_gid;
	}
	getgrouplist(pw->pw_name, u->gid, NULL, &ng);
	u->groups = calloc(ng + 1, sizeof(gid_t));
	if (!u->groups || getgrouplist(pw->pw_name, u->gid, u->groups, &ng) < 0)
		usage_error("--user=%s: cannot read the groups of %s", arg, pw->pw_name);
	u->ngroups = ng;
	while (environ[n])
		n++;
	u->env = calloc(n + 5, sizeof(char *));
	if (!u->env)
		usage_error("out of memory");
	for (size_t i = 0; i < n; i++)
		if (!(u->env[i] = strdup(environ[i])))
			usage_error("out of memory");
	env_set(u->env, &n, "HOME", pw->pw_dir);
	env_set(u->env, &n, "USER", pw->pw_name);
	env_set(u->env, &n, "LOGNAME", pw->pw_name);
	env_set(u->env, &n, "SHELL", pw->pw_shell);
	return u;
}

/*
 * --mode=auto: reinit where the kernel has FUSE_DEV_IOC_REINIT and the operator says the daemon
 * stores a write before it answers (--write-through), since of the writes a daemon acknowledged
 * but had not stored, reinit mode writes again only what the page cache still holds (the rest
 * makes the file's next fsync fail with EIO), where proxy mode keeps them all until they are
 * synced; proxy otherwise. Returns the mode, and why in @why.
 */
static const struct mode_ops *auto_mode(const struct keeper_config *cfg, char *why, size_t size)
{
	char err[256];
	int r = reinit_mode.probe(err, sizeof(err));

	if (r == -ENOTTY) {
		snprintf(why, size, "this kernel has no FUSE_DEV_IOC_REINIT");
		return &proxy_mode;
	}
	if (r < 0) {
		snprintf(why, size, "cannot tell whether the kernel has FUSE_DEV_IOC_REINIT (%s%s)",
			 strerror(-r), r == -EACCES ? "; ask as root" : "");
		return &proxy_mode;
	}
	if (!cfg->write_through) {
		snprintf(why, size, "the kernel has FUSE_DEV_IOC_REINIT, but of the writes a daemon "
			 "acknowledged before storing them reinit mode writes again only what the page "
			 "cache still holds and reports the rest with EIO (proxy mode keeps them all); "
			 "--write-through, which says the daemon stores before it answers, chooses it");
		return &proxy_mode;
	}
	snprintf(why, size, "the kernel has FUSE_DEV_IOC_REINIT and --write-through is given");
	return &reinit_mode;
}

/*
 * The path this binary was started from, for fusekeeper reexec, which executes what that path
 * names then (an upgrade replaces the file, or moves a symbolic link such as an alternative):
 * argv[0] made absolute, or found in PATH as execvp() would, if it names this very file;
 * otherwise the file itself (/proc/self/exe). "" when neither is known.
 */
static void own_path(const char *argv0, char *out, size_t size)
{
	struct stat self, st;
	char cwd[PATH_MAX];
	ssize_t n;

	out[0] = '\0';
	if (stat("/proc/self/exe", &self) == 0 && argv0) {
		if (argv0[0] == '/') {
			if (snprintf(out, size, "%s", argv0) >= (int)size)
				out[0] = '\0';
		} else if (strchr(argv0, '/') && getcwd(cwd, sizeof(cwd))) {
			if (snprintf(out, size, "%s/%s", cwd, argv0) >= (int)size)
				out[0] = '\0';
		} else if (!strchr(argv0, '/')) {
			const char *path = getenv("PATH") ?: "/usr/local/bin:/usr/bin:/bin";

			for (const char *p = path; *p; p += strcspn(p, ":") + !!p[strcspn(p, ":")]) {
				if (snprintf(out, size, "%.*s/%s", (int)strcspn(p, ":"), p, argv0) >=
				    (int)size)
					out[0] = '\0';
				if (out[0] == '/' && stat(out, &st) == 0 && st.st_ino == self.st_ino &&
				    st.st_dev == self.st_dev)
					break;
				out[0] = '\0';
			}
		}
		if (out[0] && (stat(out, &st) < 0 || st.st_ino != self.st_ino ||
			       st.st_dev != self.st_dev))
			out[0] = '\0';
	}
	if (!out[0]) {
		n = readlink("/proc/self/exe", out, size - 1);
		out[n > 0 && (size_t)n < size - 1 ? n : 0] = '\0';
	}
}

/*
 * systemd's fd store: whether the keeper may keep the connection there (NOTIFY_SOCKET, and
 * FDSTORE, which systemd 254 and later set to FileDescriptorStoreMax=, not below 3), and what a
 * keeper killed before this one left there (LISTEN_FDS with LISTEN_FDNAMES fuse, journal-a,
 * journal-b: cfg->resume_fds). Fds it cannot use are closed and taken out of the store.
 */
static void systemd_fds(struct keeper_config *cfg, const char *mountpoint)
{
	static const char *const names[3] = FDSTORE_NAMES;
	const char *max = getenv("FDSTORE");
	const char *why = NULL;
	char **got = NULL;
	int n;

	cfg->fdstore = getenv("NOTIFY_SOCKET") && (!max || strtol(max, NULL, 10) >= 3);
	/* A re-executed keeper's store is as it left it; it has no LISTEN_FDS. */
	if (getenv(REEXEC_IMAGE_ENV))
		return;
	n = sd_listen_fds_with_names(1, &got);
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		size_t j;

		for (j = 0; j < 3 && (!got || !got[i] || strcmp(got[i], names[j])); j++)
			;
		if (j < 3 && cfg->resume_fds[j] < 0) {
			cfg->resume_fds[j] = fd;
		} else {
			log_warn("systemd passed fd %d named \"%s\", which fusekeeper does not know; "
				 "closing it", fd, got && got[i] ? got[i] : "");
			close(fd);
		}
	}
	if (got)
		for (int i = 0; i < n; i++)
			free(got[i]);
	free(got);
	if (cfg->resume_fds[0] < 0 && cfg->resume_fds[1] < 0 && cfg->resume_fds[2] < 0)
		return;
	if (cfg->resume_fds[0] < 0)
		why = "it holds a resume journal but no connection";
	else if (cfg->resume_fds[1] < 0 || cfg->resume_fds[2] < 0)
		why = "it lacks one of the resume journal's two memfds (the unit needs "
		      "FileDescriptorStoreMax=3 at least)";
	else if (cfg->takeover)
		why = "COMMAND has no {}: the daemon's own mount call cannot take it back";
	else if (cfg->mode && cfg->mode != &proxy_mode)
		why = "only proxy mode can take a connection back";
	else if (!mountpoint || mountpoint[0] != '/')
		why = "MOUNTPOINT must be an absolute path to take a connection back";
	if (!why) {
		cfg->mode = &proxy_mode;
		return;
	}
	log_error("systemd's fd store holds what a killed fusekeeper left, but %s: the old mount "
		  "is lost, and a new one is made", why);
	for (int i = 0; i < 3; i++) {
		if (cfg->resume_fds[i] >= 0)
			close(cfg->resume_fds[i]);
		cfg->resume_fds[i] = -1;
	}
	fdstore_clear();
	/* The old connection ends with the store's copy; its mount is in the way of the new. */
	if (mountpoint)
		umount2(mountpoint, MNT_DETACH);
}

int main(int argc, char **argv)
{
	struct keeper_config cfg = {
		.mode = NULL, /* --mode=auto */
		.max_restarts = 5,
		.restart_window_ms = 60000,
		.start_timeout_ms = 10000,
		.max_start_ms = 300000,
		.request_wait_ms = 30000,
		.retry_interval_ms = 30000,
		.stop_timeout_ms = 5000,
		.hang_timeout_ms = 60000,
		.max_nodes = 4u << 20,
		.max_handles = 1u << 20,
		.max_locks = 1u << 16,
		.write_window = 64ULL << 20,
		.write_window_total = 256ULL << 20,
		.keep_removed = true,
		.state_dir = "/run/fusekeeper",
		.resume_fds = { -1, -1, -1 },
	};
	char err[512], *mountpoint = NULL, exe_path[PATH_MAX];
	int c, rc, verbose = 0;
	bool quiet = false, has_placeholder = false, window_set = false, options_given = false;
	bool max_start_set = false, retry_set = false, no_retry = false, ended_by_dashes;
	const char *last_optarg = NULL;
	const char *proxy_only = NULL; /* the last option given that only proxy mode reads */

	own_path(argv[0], exe_path, sizeof(exe_path));
	if (argc > 1 && client_is_command(argv[1]))
		return client_main(argc - 1, argv + 1);
	mount_options_init(&cfg.mnt);
	/* "+": stop at the first non-option, so COMMAND's own options stay its own. */
	while ((c = getopt_long(argc, argv, "+o:m:vqhV", long_options, NULL)) != -1) {
		last_optarg = optarg;
		switch (c) {
		case 'o':
			options_given = true;
			if (mount_parse_options(&cfg.mnt, optarg, err, sizeof(err)) < 0)
				usage_error("%s", err);
			break;
		case 'm': {
			const struct mode_ops *m = NULL;

			for (size_t i = 0; modes[i]; i++)
				if (!strcmp(modes[i]->name, optarg))
					m = modes[i];
			if (!m && strcmp(optarg, "auto"))
				usage_error("unknown mode '%s' (available: auto, proxy, remount, "
					    "reinit)", optarg);
			cfg.mode = m;
			break;
		}
		case OPT_MAX_RESTARTS:
			cfg.max_restarts = parse_number("max-restarts", optarg, 1, 1000000);
			break;
		case OPT_RESTART_WINDOW:
			cfg.restart_window_ms = parse_number("restart-window", optarg, 1, 86400) * 1000;
			break;
		case OPT_START_TIMEOUT:
			cfg.start_timeout_ms = parse_number("start-timeout", optarg, 1, 3600) * 1000;
			break;
		case OPT_MAX_START_TIME:
			cfg.max_start_ms = parse_number("max-start-time", optarg, 1, 86400) * 1000;
			max_start_set = true;
			break;
		case OPT_REQUEST_WAIT:
			cfg.request_wait_ms = parse_number("request-wait", optarg, 1, 86400) * 1000;
			break;
		case OPT_RETRY_INTERVAL:
			cfg.retry_interval_ms = parse_number("retry-interval", optarg, 1, 86400) * 1000;
			retry_set = true;
			break;
		case OPT_NO_RETRY:
			no_retry = true;
			break;
		case OPT_HANG_TIMEOUT:
			cfg.hang_timeout_ms = parse_number("hang-timeout", optarg, 0, 86400) * 1000;
			break;
		case OPT_STOP_TIMEOUT:
			cfg.stop_timeout_ms = parse_number("stop-timeout", optarg, 0, 3600) * 1000;
			break;
		case OPT_MAX_NODES:
			proxy_only = "max-nodes";
			cfg.max_nodes = parse_number("max-nodes", optarg, 16, 1ULL << 32);
			break;
		case OPT_MAX_HANDLES:
			proxy_only = "max-handles";
			cfg.max_handles = parse_number("max-handles", optarg, 16, 1ULL << 32);
			break;
		case OPT_MAX_LOCKS:
			proxy_only = "max-locks";
			cfg.max_locks = parse_number("max-locks", optarg, 1, 1ULL << 32);
			break;
		case OPT_WRITE_WINDOW:
			proxy_only = "write-window";
			cfg.write_window = parse_size("write-window", optarg, 1ULL << 40);
			window_set = true;
			break;
		case OPT_WRITE_WINDOW_TOTAL:
			proxy_only = "write-window-total";
			cfg.write_window_total = parse_size("write-window-total", optarg, 1ULL << 40);
			window_set = true;
			break;
		case OPT_EXCLUSIVE:
			proxy_only = "exclusive";
			cfg.exclusive = true;
			break;
		case OPT_WRITE_THROUGH:
			cfg.write_through = true;
			break;
		case OPT_NO_KEEP_REMOVED:
			proxy_only = "no-keep-removed";
			cfg.keep_removed = false;
			break;
		case OPT_EAGER_LOOKUP:
			proxy_only = "eager-lookup";
			cfg.eager_lookup = true;
			break;
		case OPT_STATE_DIR:
			proxy_only = "state-dir";
			if (optarg[0] != '/')
				usage_error("--state-dir=%s: expected an absolute path", optarg);
			cfg.state_dir = optarg;
			break;
		case OPT_USER:
			cfg.user = parse_user(optarg);
			break;
		case OPT_STATUS_FD: {
			int fd = parse_number("status-fd", optarg, 0, INT_MAX);

			if (fcntl(fd, F_GETFD) < 0)
				usage_error("--status-fd=%d: not an open file descriptor", fd);
			fcntl(fd, F_SETFD, FD_CLOEXEC);
			event_set_fd(fd);
			break;
		}
		case 'v':
			verbose++;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h': {
			/* What auto picks here, without and with --write-through, wherever -h is. */
			struct keeper_config probe_cfg = cfg;
			const struct mode_ops *m, *with_wt;

			fputs(usage_text, stdout);
			probe_cfg.write_through = false;
			m = auto_mode(&probe_cfg, err, sizeof(err));
			printf("\nHere --mode=auto is %s: %s.\n", m->name, err);
			probe_cfg.write_through = true;
			with_wt = auto_mode(&probe_cfg, err, sizeof(err));
			if (with_wt != m)
				printf("With --write-through it is %s: %s.\n", with_wt->name, err);
			return 0;
		}
		case 'V':
			printf("fusekeeper %s\n%s %d\n", FUSEKEEPER_VERSION, REEXEC_FORMAT_LINE,
			       IMAGE_FORMAT);
			return 0;
		default:
			fputs("Try 'fusekeeper --help' for more information.\n", stderr);
			return 2;
		}
	}
	if (quiet && verbose)
		usage_error("-q and -v cannot be used together");
	if (cfg.write_through && window_set)
		usage_error("--write-through keeps no write windows: --write-window and "
			    "--write-window-total cannot be used with it");
	if (no_retry && retry_set)
		usage_error("--no-retry and --retry-interval cannot be used together");
	if (no_retry)
		cfg.retry_interval_ms = 0;
	if (max_start_set && cfg.max_start_ms < cfg.start_timeout_ms)
		usage_error("--max-start-time=%" PRId64 " is shorter than --start-timeout=%" PRId64,
			    cfg.max_start_ms / 1000, cfg.start_timeout_ms / 1000);
	cfg.max_start_ms = MAX(cfg.max_start_ms, cfg.start_timeout_ms);
	log_max_level = quiet ? LOG_WARN : verbose >= 2 ? LOG_TRACE : verbose ? LOG_DEBUG : LOG_INFO;
	log_init();

	if (proxy_only && cfg.mode && cfg.mode != &proxy_mode)
		usage_error("--%s applies to proxy mode only, not to --mode=%s", proxy_only,
			    cfg.mode->name);
	/* getopt ends at a "--" right after the options (no MOUNTPOINT) and steps over it. */
	ended_by_dashes = optind > 1 && !strcmp(argv[optind - 1], "--") &&
			  last_optarg != argv[optind - 1];
	if (!ended_by_dashes && optind < argc && strcmp(argv[optind], "--"))
		mountpoint = argv[optind++];
	else if (ended_by_dashes && optind + 1 < argc && !strcmp(argv[optind + 1], "--"))
		mountpoint = argv[optind++]; /* -- MOUNTPOINT -- COMMAND: a MOUNTPOINT like "-x" */
	else if (ended_by_dashes)
		optind--;
	if (optind < argc && strcmp(argv[optind], "--"))
		usage_error("expected '--' after MOUNTPOINT %s, found '%s' (one MOUNTPOINT at most)",
			    mountpoint, argv[optind]);
	if (optind >= argc)
		usage_error(mountpoint ? "missing '--' and COMMAND after MOUNTPOINT"
				       : "missing '--' and COMMAND");
	optind++;
	if (optind >= argc)
		usage_error("missing COMMAND after '--'");
	cfg.command = argv + optind;
	for (char **a = cfg.command; *a; a++)
		has_placeholder |= !strcmp(*a, "{}");
	cfg.takeover = !has_placeholder;
	if (has_placeholder && !mountpoint)
		usage_error("COMMAND has {}, which stands for the mount fusekeeper makes at "
			    "MOUNTPOINT: give MOUNTPOINT before '--' (or drop {} and let the daemon "
			    "mount as it does on its own)");
	if (cfg.takeover && options_given)
		usage_error("-o sets the mount options when fusekeeper mounts for a COMMAND with {}; "
			    "without {} the daemon mounts, with its own options: give them to it");
	if (cfg.takeover && cfg.mode == &remount_mode)
		usage_error("--mode=remount gives the daemon /dev/fuse of a mount it makes itself, "
			    "which needs {} in COMMAND; without {} use --mode=proxy or reinit");
	if (geteuid() != 0) {
		fprintf(stderr, "fusekeeper: must run as root (it mounts with mount(2))\n");
		return 1;
	}
	/* Under fusekeeper reexec the mode is the replaced keeper's (in its state image). */
	if (!cfg.mode && !getenv(REEXEC_IMAGE_ENV) && !getenv(REEXEC_PROBE_ENV)) {
		cfg.mode = auto_mode(&cfg, err, sizeof(err));
		log_info("Mode: %s (--mode=auto: %s)", cfg.mode->name, err);
		if (proxy_only && cfg.mode != &proxy_mode)
			log_warn("--%s has no effect: it applies to proxy mode only, and --mode=auto "
				 "chose %s mode", proxy_only, cfg.mode->name);
	}
	if (cfg.mode && cfg.mode->probe && cfg.mode->probe(err, sizeof(err)) < 0) {
		fprintf(stderr, "fusekeeper: %s\n", err);
		return 1;
	}
	cfg.argv = argv;
	cfg.exe = exe_path[0] == '/' ? exe_path : NULL;
	cfg.modes = modes;
	if (getenv(REEXEC_PROBE_ENV)) {
		/* A keeper asks whether this binary takes its command line: it does. */
		printf("fusekeeper %s\n%s %d\n", FUSEKEEPER_VERSION, REEXEC_FORMAT_LINE,
		       IMAGE_FORMAT);
		return 0;
	}
	systemd_fds(&cfg, mountpoint);
	if (getenv(REEXEC_IMAGE_ENV)) {
		/* Replacing a keeper: its mount is in the image, and no one serves it until the
		 * state is taken up, so nothing may look at it (realpath would wait for ever). */
		mountpoint = NULL;
	} else if (cfg.resume_fds[0] >= 0) {
		/* Nobody serves the mount either until the connection is taken back. */
		cfg.mountpoint = strdup(mountpoint);
		if (!cfg.mountpoint)
			return 1;
	} else if (mountpoint) {
		cfg.mountpoint = realpath(mountpoint, NULL);
		if (!cfg.mountpoint) {
			fprintf(stderr, "fusekeeper: mountpoint %s: %s\n", mountpoint,
				strerror(errno));
			return 1;
		}
	}
	rc = supervise(&cfg);
	free((char *)cfg.mountpoint);
	if (cfg.user) {
		for (size_t i = 0; cfg.user->env[i]; i++)
			free(cfg.user->env[i]);
		free(cfg.user->env);
		free(cfg.user->groups);
		free(cfg.user);
	}
	return rc;
}
