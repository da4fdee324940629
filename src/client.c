/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fusekeeper status|restart: the control socket's client (client.h). */
#include "client.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
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
	"recovery took and restored, and what the keeper tracks now.\n"
	"\n"
	"      --json     print a JSON array of status objects (fusekeeper(1), STATUS)\n"
	"  -h, --help     show this help\n"
	"\n"
	"Exits 0, or 1 when no keeper keeps MOUNTPOINT or a keeper could not be asked.\n";

static const char restart_usage[] =
	"Usage: fusekeeper restart [--stop-timeout=SECONDS] MOUNTPOINT\n"
	"\n"
	"Restart the daemon of MOUNTPOINT, for example after its package was upgraded: new\n"
	"requests wait at fusekeeper, the daemon answers those it holds and is stopped\n"
	"(SIGTERM, then SIGKILL after the stop timeout), and its command is started again\n"
	"and takes over. Applications see no error; their calls wait while it restarts.\n"
	"Waits until the new daemon serves and prints how long the restart took.\n"
	"\n"
	"      --stop-timeout=SECONDS\n"
	"                 time the daemon has to answer what it holds, and then to exit\n"
	"                 after SIGTERM (default: the keeper's --stop-timeout)\n"
	"  -h, --help     show this help\n"
	"\n"
	"Exits 0 once the new daemon serves; 1 when no keeper keeps MOUNTPOINT, or the\n"
	"restart failed (the keeper then goes on as after a crash); 2 for bad usage.\n";

bool client_is_command(const char *name)
{
	return !strcmp(name, "status") || !strcmp(name, "restart");
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

#define ROOTS " (fusekeeper's control sockets are root's: run as root)"

/* How long a keeper has to answer a status request: it answers between its other work. */
#define STATUS_TIMEOUT_MS 10000

/* Appends "fusekeeper: MESSAGE\n" to the malloc'd string *@acc. */
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

/* A keeper that answered: its socket and status. */
struct found {
	char *path;
	struct json_object *status;
};

/*
 * @path as the keeper names its mount: absolute, resolved. Only the parent directory is
 * resolved: the mount itself is not touched, since its requests may wait for a daemon (the
 * very moment an operator asks for status). Returns a malloc'd string.
 */
static char *resolve_mountpoint(const char *path)
{
	_cleanup_free_ char *copy = strdup(path), *parent = NULL;
	char *slash, *base, *out = NULL;
	size_t len;

	if (!copy)
		return NULL;
	len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	slash = strrchr(copy, '/');
	base = slash ? slash + 1 : copy;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return realpath(path, NULL) ?: strdup(path);
	if (slash == copy)
		parent = strdup("/");
	else if (slash)
		*slash = '\0', parent = realpath(copy, NULL);
	else
		parent = realpath(".", NULL);
	if (!parent)
		return strdup(path); /* as given: the keeper's may not resolve now either */
	if (asprintf(&out, "%s%s%s", parent, strcmp(parent, "/") ? "/" : "", base) < 0)
		return NULL;
	return out;
}

/*
 * Asks every keeper for its status; with @mountpoint, keeps those whose mount it is. Returns
 * how many are in *@out (the caller frees them), or -1 after saying what failed.
 */
static int find_keepers(const char *mountpoint, struct found **out)
{
	struct json_object *req = json_object_new_object();
	char **paths = NULL, *want = NULL;
	struct found *v;
	char *errors = NULL;
	int n, kept = 0, failed = 0;

	json_object_object_add(req, "command", json_object_new_string("status"));
	if (mountpoint)
		want = resolve_mountpoint(mountpoint);
	n = control_list(&paths);
	if (n == -ENOENT)
		n = 0;
	if (n < 0) {
		say("cannot list %s: %s%s", CONTROL_DIR, strerror(-n), n == -EACCES ? ROOTS : "");
		json_object_put(req);
		free(want);
		return -1;
	}
	v = calloc(n + 1, sizeof(*v));
	for (int i = 0; v && i < n; i++) {
		struct json_object *st = NULL, *mp;
		int r = control_call(paths[i], req, STATUS_TIMEOUT_MS, &st);

		if (r == -ECONNREFUSED || r == -ENOENT) {
			/* A keeper that was killed left it: not running. */
		} else if (r < 0) {
			note(&errors, "cannot ask the keeper at %s: %s%s", paths[i],
			     r == -EAGAIN || r == -ETIMEDOUT ? "it does not answer (stopped?)"
							     : strerror(-r),
			     r == -EACCES ? ROOTS : "");
			failed++;
		} else if (json_object_object_get_ex(st, "error", NULL)) {
			note(&errors, "the keeper at %s refused: %s", paths[i],
			     json_object_get_string(json_object_object_get(st, "error")));
			failed++;
		} else if (want && !(json_object_object_get_ex(st, "mountpoint", &mp) && mp &&
				     !strcmp(json_object_get_string(mp), want))) {
			/* Another mount's. */
		} else {
			v[kept].path = paths[i];
			v[kept++].status = st;
			paths[i] = NULL;
			st = NULL;
		}
		json_object_put(st);
		free(paths[i]);
	}
	free(paths);
	json_object_put(req);
	/* Keepers that did not answer may keep MOUNTPOINT: they matter only if none does. */
	if (errors && !(want && kept))
		fputs(errors, stderr);
	free(errors);
	if (!v) {
		say("out of memory");
		free(want);
		return -1;
	}
	if (failed && !kept) {
		free(v);
		free(want);
		return -1;
	}
	if (want && !kept) {
		say("no running fusekeeper keeps %s", want);
		free(v);
		free(want);
		return -1;
	}
	free(want);
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
	bool json = false;
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
	n = find_keepers(optind < argc ? argv[optind] : NULL, &v);
	if (n < 0)
		return 1;
	if (json) {
		struct json_object *a = json_object_new_array();

		for (int i = 0; i < n; i++)
			json_object_array_add(a, json_object_get(v[i].status));
		puts(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(a);
	} else if (!n) {
		puts("No fusekeeper is running.");
	}
	for (int i = 0; !json && i < n; i++) {
		if (i)
			putchar('\n');
		status_print(stdout, v[i].status);
	}
	free_found(v, n);
	return 0;
}

static int cmd_restart(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stop-timeout", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct json_object *req, *reply = NULL, *v;
	int64_t stop_ms = -1;
	struct found *found;
	int c, n, r, rc = 1;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 's') {
			char *end;
			unsigned long secs;

			errno = 0;
			secs = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || secs > 3600) {
				say("--stop-timeout=%s: expected a whole number from 0 to 3600",
				    optarg);
				return 2;
			}
			stop_ms = secs * 1000;
		} else if (c == 'h') {
			fputs(restart_usage, stdout);
			return 0;
		} else {
			fputs("Try 'fusekeeper restart --help' for more information.\n", stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		say("restart takes one MOUNTPOINT\nTry 'fusekeeper restart --help' for more "
		    "information.");
		return 2;
	}
	n = find_keepers(argv[optind], &found);
	if (n < 0)
		return 1;
	if (n > 1) {
		say("%d keepers keep %s (stacked mounts): stop the ones not wanted", n,
		    argv[optind]);
		free_found(found, n);
		return 1;
	}
	req = json_object_new_object();
	json_object_object_add(req, "command", json_object_new_string("restart"));
	if (stop_ms >= 0)
		json_object_object_add(req, "stop_timeout_ms", json_object_new_int64(stop_ms));
	r = control_call(found[0].path, req, -1, &reply);
	if (r < 0) {
		say("restart of %s: the keeper did not answer: %s%s", argv[optind], strerror(-r),
		    r == -ECONNRESET ? " (it exited: see its log)" : "");
	} else if (json_object_object_get_ex(reply, "error", &v)) {
		say("restart of %s failed: %s", argv[optind], json_object_get_string(v));
	} else {
		int64_t ms = json_object_get_int64(json_object_object_get(reply, "duration_ms"));
		struct json_object *old = json_object_object_get(reply, "old_pid");

		if (old)
			printf("Restarted the daemon of %s in %" PRId64 " ms: daemon %d took over "
			       "from daemon %d\n", argv[optind], ms,
			       json_object_get_int(json_object_object_get(reply, "daemon_pid")),
			       json_object_get_int(old));
		else
			printf("Started the daemon of %s in %" PRId64 " ms: daemon %d serves\n",
			       argv[optind], ms,
			       json_object_get_int(json_object_object_get(reply, "daemon_pid")));
		rc = 0;
	}
	json_object_put(reply);
	json_object_put(req);
	free_found(found, n);
	return rc;
}

int client_main(int argc, char **argv)
{
	optind = 1;
	if (!strcmp(argv[0], "status"))
		return cmd_status(argc, argv);
	return cmd_restart(argc, argv);
}
