/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fusekeeper status|restart|reexec: the control socket's client (client.h). */
#include "client.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "status.h"
#include "util.h"

static const char status_usage[] =
	"Usage: fusekeeper status [--json] [MOUNTPOINT]\n"
	"\n"
	"Show what every running fusekeeper (or the one keeping MOUNTPOINT) is doing: its\n"
	"mount, mode and daemon, how often the daemon was restarted and why, what the last\n"
	"recovery took and restored, and what the keeper tracks now. Keepers are asked side\n"
	"by side; one that does not answer within 10 s (stopped) is reported.\n"
	"\n"
	"      --json     print a JSON array of status objects (docs/operations.md)\n"
	"  -h, --help     show this help\n"
	"\n"
	"Exits 0; 1 when no keeper keeps MOUNTPOINT, or (without MOUNTPOINT) a keeper could\n"
	"not be asked: the others are still shown; 2 for bad usage.\n";

static const char restart_usage[] =
	"Usage: fusekeeper restart [--stop-timeout=SECONDS] MOUNTPOINT\n"
	"       fusekeeper restart [--stop-timeout=SECONDS] --pid=PID\n"
	"\n"
	"Restart the daemon of MOUNTPOINT (or of the keeper PID), for example after its\n"
	"package was upgraded: the daemon answers the requests it holds and is stopped\n"
	"(SIGTERM, then SIGKILL after the stop timeout), and its command is started again and\n"
	"takes over. In proxy mode new requests wait at fusekeeper meanwhile and applications\n"
	"see no error; in reinit and remount modes the new daemon takes over what the old one\n"
	"held as after a crash (fusekeeper(1), PLANNED RESTARTS). Waits until the new daemon\n"
	"serves and prints how long the restart took.\n"
	"\n"
	"      --stop-timeout=SECONDS\n"
	"                 time the daemon has to answer what it holds, and then again to exit\n"
	"                 after SIGTERM (default: the keeper's --stop-timeout)\n"
	"      --pid=PID  the keeper whose pid is PID (systemd's $MAINPID)\n"
	"  -h, --help     show this help\n"
	"\n"
	"Exits 0 once the new daemon serves; 1 when no keeper keeps MOUNTPOINT, the keeper\n"
	"refused (a start or a restart under way, stopping), or the new daemon failed to start;\n"
	"2 for bad usage.\n";

static const char reexec_usage[] =
	"Usage: fusekeeper reexec MOUNTPOINT\n"
	"       fusekeeper reexec --pid=PID\n"
	"\n"
	"Replace the keeper of MOUNTPOINT (or the keeper PID) with the fusekeeper binary now\n"
	"on disk, for example after fusekeeper's package was upgraded. The mount, the\n"
	"connection, the daemon (the keeper's child still) and every table are kept: new\n"
	"requests wait at the keeper meanwhile, requests the daemon holds are answered to the\n"
	"new keeper, and applications see no error. The process stays the same (systemd's\n"
	"$MAINPID). Proxy mode only (fusekeeper(1), REPLACING THE KEEPER). Waits until the new\n"
	"keeper serves and prints how long it took.\n"
	"\n"
	"      --pid=PID  the keeper whose pid is PID (systemd's $MAINPID)\n"
	"  -h, --help     show this help\n"
	"\n"
	"Exits 0 once the new keeper serves; 1 when no keeper keeps MOUNTPOINT, or the keeper\n"
	"refused (another mode, the binary on disk cannot take its state over, no daemon\n"
	"serving, a restart under way) and serves on as it was; 2 for bad usage.\n";

bool client_is_command(const char *name)
{
	return !strcmp(name, "status") || !strcmp(name, "restart") || !strcmp(name, "reexec");
}

static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	va_list ap;

	fputs("fusekeeper: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Appends "fusekeeper: MESSAGE\n" to the malloc'd string *@acc (NULL at first). */
static void __attribute__((format(printf, 2, 3))) note(char **acc, const char *fmt, ...)
{
	char *msg = NULL, *joined = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	if (asprintf(&joined, "%sfusekeeper: %s\n", *acc ? *acc : "", msg) >= 0) {
		free(*acc);
		*acc = joined;
	}
	free(msg);
}

/* How long a keeper has to answer a status request: it answers between its other work. */
#define STATUS_TIMEOUT_MS 10000

/*
 * @path made absolute and lexically clean ("." and ".." taken out, slashes single), with the
 * current directory as getcwd(3) knows it: nothing here may touch a FUSE mount, whose requests
 * may be waiting for a daemon. Returns a malloc'd string or NULL.
 */
static char *lexical_path(const char *path)
{
	char cwd[PATH_MAX], *joined = NULL, *out, *save = NULL;
	size_t len = 0;

	if (path[0] != '/') {
		if (!getcwd(cwd, sizeof(cwd)) || asprintf(&joined, "%s/%s", cwd, path) < 0)
			return NULL;
	} else if (!(joined = strdup(path))) {
		return NULL;
	}
	out = malloc(strlen(joined) + 2);
	if (!out) {
		free(joined);
		return NULL;
	}
	for (char *part = strtok_r(joined, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
		if (!strcmp(part, "."))
			continue;
		if (!strcmp(part, "..")) {
			/* Back to the slash before the last component ("/" stays). */
			while (len > 0 && out[--len] != '/')
				;
			continue;
		}
		len += sprintf(out + len, "/%s", part);
	}
	if (!len)
		out[len++] = '/';
	out[len] = '\0';
	free(joined);
	return out;
}

/*
 * @path as a keeper names its mount: absolute, resolved (realpath(3) of what MOUNTPOINT was).
 * Only the parent directory is resolved by realpath(3), and the last component, when it is a
 * symbolic link, by readlink(2), which does not ask a FUSE mount anything (lstat(2) would).
 * Returns a malloc'd string or NULL.
 */
static char *resolve_mountpoint(const char *path)
{
	char *cur = lexical_path(path);

	for (int links = 0; cur && links < 40; links++) {
		char *slash = strrchr(cur, '/'), *parent, *out = NULL, target[PATH_MAX];
		ssize_t n;

		if (!slash[1])
			return cur; /* "/" */
		*slash = '\0';
		parent = realpath(*cur ? cur : "/", NULL);
		if (parent && asprintf(&out, "%s/%s", strcmp(parent, "/") ? parent : "", slash + 1) < 0)
			out = NULL;
		*slash = '/';
		free(parent);
		if (!out)
			return cur; /* as given: the keeper's may not resolve now either */
		free(cur);
		cur = out;
		n = readlink(cur, target, sizeof(target) - 1);
		if (n < 0)
			return cur;
		target[n] = '\0';
		if (target[0] == '/') {
			out = lexical_path(target);
		} else {
			char *joined = NULL;

			slash = strrchr(cur, '/');
			*slash = '\0';
			if (asprintf(&joined, "%s/%s", cur, target) >= 0)
				out = lexical_path(joined);
			else
				out = NULL;
			free(joined);
		}
		free(cur);
		cur = out;
	}
	return cur;
}

/* A keeper that answered: its socket and status. */
struct found {
	char *path;
	struct json_object *status;
};

/* A keeper being asked. */
struct asked {
	char *path;
	int fd;	 /* the connection; -1 once done */
	int err; /* why it could not be asked; 0: it answered */
	struct json_object *status;
};

/*
 * Asks every keeper for its status, side by side, each for STATUS_TIMEOUT_MS at most. With
 * @want (resolve_mountpoint()), keeps those whose mount it is; with @pid > 0, the keeper of
 * that pid. Returns how many are in *@out (the caller frees them with free_found()), or -1
 * after saying what failed; *@unasked is set when a keeper could not be asked.
 */
static int find_keepers(const char *want, pid_t pid, struct found **out, bool *unasked)
{
	struct json_object *req = json_object_new_object();
	char **paths = NULL;
	struct asked *a;
	struct found *v;
	int n, kept = 0, left = 0, unmounted = 0, denied = 0;
	char *problems = NULL;
	int64_t deadline = now_ms() + STATUS_TIMEOUT_MS;

	*unasked = false;
	json_object_object_add(req, "command", json_object_new_string("status"));
	n = control_list(&paths);
	if (n == -ENOENT)
		n = 0;
	if (n < 0) {
		say("cannot list %s: %s%s", CONTROL_DIR, strerror(-n),
		    n == -EACCES ? " (fusekeeper's control sockets are root's: run as root)" : "");
		json_object_put(req);
		return -1;
	}
	a = calloc(n + 1, sizeof(*a));
	v = calloc(n + 1, sizeof(*v));
	if (!a || !v) {
		say("out of memory");
		free(a);
		free(v);
		json_object_put(req);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		a[i].path = paths[i];
		a[i].fd = control_request(paths[i], req);
		if (a[i].fd < 0) {
			a[i].err = a[i].fd;
			a[i].fd = -1;
		} else {
			left++;
		}
	}
	free(paths);
	json_object_put(req);
	while (left > 0) {
		struct pollfd pfd[n];
		int r;

		for (int i = 0; i < n; i++)
			pfd[i] = (struct pollfd){ .fd = a[i].fd, .events = POLLIN };
		r = poll(pfd, n, ms_until(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < n; i++) {
			if (a[i].fd < 0 || (r > 0 && !pfd[i].revents))
				continue;
			a[i].err = r > 0 ? control_reply(a[i].fd, &a[i].status) : -ETIMEDOUT;
			close(a[i].fd);
			a[i].fd = -1;
			left--;
		}
	}
	for (int i = 0; i < n; i++) {
		struct json_object *st = a[i].status, *e = NULL, *mp = NULL, *p = NULL;
		int r = a[i].err;

		if (r == -ECONNREFUSED || r == -ENOENT) {
			/* A keeper that was killed left it: not running. */
		} else if (r == -EACCES) {
			denied++;
		} else if (r < 0) {
			note(&problems, "cannot ask the keeper at %s: %s", a[i].path,
			     r == -EAGAIN || r == -ETIMEDOUT ? "it does not answer (stopped?)"
							     : strerror(-r));
			*unasked = true;
		} else if (json_object_object_get_ex(st, "error", &e)) {
			note(&problems, "the keeper at %s refused: %s", a[i].path,
			     json_object_get_string(e));
			*unasked = true;
		} else {
			json_object_object_get_ex(st, "mountpoint", &mp);
			json_object_object_get_ex(st, "pid", &p);
			unmounted += !mp;
			if ((!want || (mp && !strcmp(json_object_get_string(mp), want))) &&
			    (pid <= 0 || json_object_get_int(p) == pid)) {
				v[kept].path = a[i].path;
				v[kept++].status = st;
				a[i].path = NULL;
				st = NULL;
			}
		}
		json_object_put(st);
		free(a[i].path);
	}
	free(a);
	if (denied) {
		note(&problems, "cannot ask %d keeper%s: %s (fusekeeper's control sockets are "
		     "root's: run as root)", denied, denied == 1 ? "" : "s", strerror(EACCES));
		*unasked = true;
	}
	/* Keepers that could not be asked matter when all are listed, or none matched. */
	if (problems && (!(want || pid > 0) || !kept))
		fputs(problems, stderr);
	free(problems);
	if ((want || pid > 0) && !kept) {
		if (pid > 0)
			say("no running fusekeeper has pid %d", (int)pid);
		else
			say("no running fusekeeper keeps %s%s", want,
			    unmounted ? " (a keeper whose daemon has not mounted yet may: try again "
					"once it has)" : "");
		free(v);
		return -1;
	}
	*out = v;
	return kept;
}

static void free_found(struct found *v, int n)
{
	for (int i = 0; i < n; i++) {
		free(v[i].path);
		json_object_put(v[i].status);
	}
	free(v);
}

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	_cleanup_free_ char *want = NULL;
	bool json = false, unasked;
	struct found *v;
	int c, n;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'j') {
			json = true;
		} else if (c == 'h') {
			fputs(status_usage, stdout);
			return 0;
		} else {
			fputs("Try 'fusekeeper status --help' for more information.\n", stderr);
			return 2;
		}
	}
	if (argc - optind > 1) {
		say("status takes one MOUNTPOINT at most\nTry 'fusekeeper status --help' for more "
		    "information.");
		return 2;
	}
	if (optind < argc && !(want = resolve_mountpoint(argv[optind]))) {
		say("%s: cannot make an absolute path of it", argv[optind]);
		return 1;
	}
	n = find_keepers(want, 0, &v, &unasked);
	if (n < 0)
		return 1;
	if (json) {
		struct json_object *arr = json_object_new_array();

		for (int i = 0; i < n; i++)
			json_object_array_add(arr, json_object_get(v[i].status));
		puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
	} else if (!n && !unasked) {
		puts("No fusekeeper is running.");
	}
	for (int i = 0; !json && i < n; i++) {
		if (i)
			putchar('\n');
		status_print(stdout, v[i].status);
	}
	free_found(v, n);
	/* With MOUNTPOINT, the keeper asked for answered; without, every keeper must have. */
	return !want && unasked ? 1 : 0;
}

/* fusekeeper restart|reexec (@reexec): one request to one keeper, and its outcome. */
static int cmd_act(int argc, char **argv, bool reexec)
{
	const char *cmd = reexec ? "reexec" : "restart";
	static const struct option opts[] = {
		{ "stop-timeout", required_argument, NULL, 's' },
		{ "pid", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct json_object *req, *reply = NULL, *v, *mp;
	_cleanup_free_ char *want = NULL;
	const char *name;
	int64_t stop_ms = -1;
	struct found *found;
	pid_t pid = 0;
	bool unasked;
	int c, n, r, rc = 1;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		char *end;
		unsigned long num;

		if (c == 's' && reexec) {
			say("--stop-timeout: reexec stops no daemon");
			return 2;
		}
		if (c == 's' || c == 'p') {
			errno = 0;
			num = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' ||
			    (c == 's' ? num > 3600 : (num < 1 || num > INT_MAX))) {
				say(c == 's' ? "--stop-timeout=%s: expected a whole number from 0 to "
					       "3600" : "--pid=%s: expected a process ID", optarg);
				return 2;
			}
			if (c == 's')
				stop_ms = num * 1000;
			else
				pid = num;
		} else if (c == 'h') {
			fputs(reexec ? reexec_usage : restart_usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "Try 'fusekeeper %s --help' for more information.\n", cmd);
			return 2;
		}
	}
	if (argc - optind != (pid ? 0 : 1)) {
		say(pid ? "%s takes MOUNTPOINT or --pid, not both" :
			  "%s takes one MOUNTPOINT (or --pid)", cmd);
		fprintf(stderr, "Try 'fusekeeper %s --help' for more information.\n", cmd);
		return 2;
	}
	if (!pid && !(want = resolve_mountpoint(argv[optind]))) {
		say("%s: cannot make an absolute path of it", argv[optind]);
		return 1;
	}
	n = find_keepers(want, pid, &found, &unasked);
	if (n < 0)
		return 1;
	if (n > 1) {
		say("%d keepers keep %s (stacked mounts): stop the ones not wanted", n,
		    want ? want : "that pid");
		free_found(found, n);
		return 1;
	}
	name = json_object_object_get_ex(found[0].status, "mountpoint", &mp) && mp ?
	       json_object_get_string(mp) : "(not mounted yet)";
	req = json_object_new_object();
	json_object_object_add(req, "command", json_object_new_string(cmd));
	if (stop_ms >= 0)
		json_object_object_add(req, "stop_timeout_ms", json_object_new_int64(stop_ms));
	r = control_call(found[0].path, req, -1, &reply);
	if (r < 0) {
		say("%s of %s: the keeper did not answer: %s%s", cmd, name, strerror(-r),
		    r == -ECONNRESET ? " (it exited: see its log)" : "");
	} else if (json_object_object_get_ex(reply, "error", &v)) {
		say("%s of %s failed: %s", cmd, name, json_object_get_string(v));
	} else if (reexec) {
		printf("Replaced the keeper of %s in %" PRId64 " ms: fusekeeper %s serves, daemon "
		       "%d serves on\n", name,
		       json_object_get_int64(json_object_object_get(reply, "duration_ms")),
		       json_object_get_string(json_object_object_get(reply, "version")),
		       json_object_get_int(json_object_object_get(reply, "daemon_pid")));
		rc = 0;
	} else {
		int64_t ms = json_object_get_int64(json_object_object_get(reply, "duration_ms"));
		int now = json_object_get_int(json_object_object_get(reply, "daemon_pid"));
		struct json_object *old = json_object_object_get(reply, "old_pid");

		if (old)
			printf("Restarted the daemon of %s in %" PRId64 " ms: daemon %d took over "
			       "from daemon %d\n", name, ms, now, json_object_get_int(old));
		else
			printf("Started the daemon of %s: daemon %d serves, %" PRId64 " ms after the "
			       "last one died\n", name, now, ms);
		rc = 0;
	}
	json_object_put(reply);
	json_object_put(req);
	free_found(found, n);
	return rc;
}

int client_main(int argc, char **argv)
{
	char name[32];

	/* getopt's messages name the program: "fusekeeper status: unrecognized option". */
	snprintf(name, sizeof(name), "fusekeeper %s", argv[0]);
	argv[0] = name;
	optind = 1;
	if (!strcmp(name, "fusekeeper status"))
		return cmd_status(argc, argv);
	return cmd_act(argc, argv, !strcmp(name, "fusekeeper reexec"));
}
