/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The status object: made by the keeper, printed by the client (status.h). */
#include "status.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <string.h>

static void add(struct json_object *o, const char *key, struct json_object *v)
{
	json_object_object_add(o, key, v);
}

/* A count the mode may not know (-1): null then. */
static struct json_object *count(int64_t v)
{
	return v < 0 ? NULL : json_object_new_int64(v);
}

struct json_object *status_to_json(const struct keeper_status *s)
{
	struct json_object *o = json_object_new_object(), *d, *cmd, *r, *t, *rec = NULL;

	if (!o)
		return NULL;
	add(o, "format", json_object_new_int(STATUS_FORMAT));
	add(o, "pid", json_object_new_int(s->pid));
	add(o, "mountpoint", s->mountpoint ? json_object_new_string(s->mountpoint) : NULL);
	add(o, "mode", json_object_new_string(s->mode));
	add(o, "state", json_object_new_string(s->state));
	add(o, "gave_up", json_object_new_boolean(s->gave_up));
	add(o, "requests_fail", json_object_new_boolean(s->requests_fail));
	add(o, "uptime_ms", json_object_new_int64(s->uptime_ms));
	add(o, "version", json_object_new_string(s->version));
	add(o, "reexecs", json_object_new_int64(s->reexecs));

	d = json_object_new_object();
	cmd = json_object_new_array();
	for (char *const *a = s->command; a && *a; a++)
		json_object_array_add(cmd, json_object_new_string(*a));
	add(d, "pid", s->daemon_pid > 0 ? json_object_new_int(s->daemon_pid) : NULL);
	add(d, "command", cmd);
	add(d, "uptime_ms", count(s->daemon_uptime_ms));
	add(o, "daemon", d);

	r = json_object_new_object();
	add(r, "planned", json_object_new_int64(s->planned));
	add(r, "crashes", json_object_new_int64(s->crashes));
	add(r, "protocol_errors", json_object_new_int64(s->protocol_errors));
	add(r, "hangs", json_object_new_int64(s->hangs));
	add(r, "failed_starts", json_object_new_int64(s->failed_starts));
	add(o, "restarts", r);

	if (s->recovery_ago_ms >= 0) {
		const struct mode_stats *m = &s->recovery;

		rec = json_object_new_object();
		add(rec, "ago_ms", json_object_new_int64(s->recovery_ago_ms));
		add(rec, "duration_ms", json_object_new_int64(s->recovery_ms));
		add(rec, "planned", json_object_new_boolean(s->recovery_planned));
		add(rec, "nodes_restored", count(m->nodes_restored));
		add(rec, "nodes_lost", count(m->nodes_lost));
		add(rec, "handles_restored", count(m->handles_restored));
		add(rec, "handles_lost", count(m->handles_lost));
		add(rec, "requests_replayed", count(m->requests_replayed));
		add(rec, "requests_settled", count(m->requests_settled));
		add(rec, "writes_resent", count(m->writes_resent));
		add(rec, "writes_lost", count(m->writes_lost));
	}
	add(o, "last_recovery", rec);

	t = json_object_new_object();
	add(t, "nodes", count(s->now.nodes));
	add(t, "nodes_pending", count(s->now.nodes_pending));
	add(t, "handles", count(s->now.handles));
	add(t, "requests_in_flight", count(s->now.requests));
	add(t, "locks", count(s->now.locks));
	add(o, "tracked", t);
	return o;
}

/* ---- The client's side: printing for a person ---------------------------------------- */

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* -1 when absent or null. */
static int64_t get_int(struct json_object *o, const char *key)
{
	struct json_object *v = get(o, key);

	return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

static const char *get_str(struct json_object *o, const char *key, const char *dflt)
{
	struct json_object *v = get(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : dflt;
}

/* A duration for a person: "850 ms", "12.3 s", "5 min 3 s", "2 h 5 min", "3 d 4 h". */
static void format_duration(int64_t ms, char *buf, size_t size)
{
	int64_t s = ms / 1000;

	if (ms < 1000)
		snprintf(buf, size, "%" PRId64 " ms", ms);
	else if (s < 60)
		snprintf(buf, size, "%.1f s", ms / 1000.0);
	else if (s < 3600)
		snprintf(buf, size, "%" PRId64 " min %" PRId64 " s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%" PRId64 " h %" PRId64 " min", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, size, "%" PRId64 " d %" PRId64 " h", s / 86400, s % 86400 / 3600);
}

/* "N what" with "?" for a count the mode does not know. */
static void print_count(FILE *f, struct json_object *o, const char *key, const char *what)
{
	int64_t v = get_int(o, key);

	if (v < 0)
		fprintf(f, "? %s", what);
	else
		fprintf(f, "%" PRId64 " %s", v, what);
}

/* " WORD", quoted for a shell when it needs to be: what a person can paste back. */
static void print_word(FILE *f, const char *w)
{
	if (*w && strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			 "_./:=@%+,{}-") == strlen(w)) {
		fprintf(f, " %s", w);
		return;
	}
	fputs(" '", f);
	for (; *w; w++) {
		if (*w == '\'')
			fputs("'\\''", f);
		else
			fputc(*w, f);
	}
	fputc('\'', f);
}

void status_print(FILE *f, struct json_object *o)
{
	struct json_object *d = get(o, "daemon"), *r = get(o, "restarts"), *rec, *t, *cmd;
	char up[32], dup[32];
	int64_t v;

	format_duration(get_int(o, "uptime_ms"), up, sizeof(up));
	fprintf(f, "%s\n", get_str(o, "mountpoint", "(not mounted yet)"));
	fprintf(f, "  Keeper:   pid %" PRId64 ", %s mode, up %s, fusekeeper %s", get_int(o, "pid"),
		get_str(o, "mode", "?"), up, get_str(o, "version", "?"));
	v = get_int(o, "reexecs");
	if (v > 0)
		fprintf(f, " (replaced %" PRId64 " time%s: fusekeeper reexec)", v, v == 1 ? "" : "s");
	fputc('\n', f);
	fprintf(f, "  State:    %s", get_str(o, "state", "?"));
	if (json_object_get_boolean(get(o, "gave_up")))
		fprintf(f, " (gave up after too many failed starts)");
	if (json_object_get_boolean(get(o, "requests_fail")))
		fprintf(f, "; requests fail with EIO until a daemon serves");
	fputc('\n', f);
	fprintf(f, "  Daemon:   ");
	v = get_int(d, "pid");
	if (v > 0)
		fprintf(f, "pid %" PRId64, v);
	else
		fprintf(f, "none");
	v = get_int(d, "uptime_ms");
	if (v >= 0) {
		format_duration(v, dup, sizeof(dup));
		fprintf(f, ", serving for %s", dup);
	}
	fputc('\n', f);
	cmd = get(d, "command");
	fprintf(f, "  Command: ");
	for (size_t i = 0; json_object_is_type(cmd, json_type_array) &&
			   i < json_object_array_length(cmd); i++)
		print_word(f, json_object_get_string(json_object_array_get_idx(cmd, i)) ?: "?");
	fputc('\n', f);
	fprintf(f, "  Restarts: %" PRId64 " planned, %" PRId64 " after crashes, %" PRId64
		" after protocol errors, %" PRId64 " after hangs; %" PRId64 " failed starts\n",
		get_int(r, "planned"), get_int(r, "crashes"), get_int(r, "protocol_errors"),
		get_int(r, "hangs"), get_int(r, "failed_starts"));
	rec = get(o, "last_recovery");
	if (rec) {
		format_duration(get_int(rec, "ago_ms"), up, sizeof(up));
		format_duration(get_int(rec, "duration_ms"), dup, sizeof(dup));
		fprintf(f, "  Last recovery: %s ago, %s, took %s", up,
			json_object_get_boolean(get(rec, "planned")) ? "planned" : "unplanned",
			dup);
		fputc('\n', f);
		if (get_int(rec, "nodes_restored") >= 0) {
			fprintf(f, "            restored ");
			print_count(f, rec, "nodes_restored", "nodes and ");
			print_count(f, rec, "handles_restored", "handles; lost ");
			print_count(f, rec, "nodes_lost", "nodes and ");
			print_count(f, rec, "handles_lost", "handles\n");
			fprintf(f, "            requests: ");
			print_count(f, rec, "requests_replayed", "replayed, ");
			print_count(f, rec, "requests_settled", "settled; unsynced writes: ");
			print_count(f, rec, "writes_resent", "sent again, ");
			print_count(f, rec, "writes_lost", "handles lost theirs\n");
		}
	} else {
		fprintf(f, "  Last recovery: none\n");
	}
	t = get(o, "tracked");
	if (get_int(t, "nodes") >= 0 || get_int(t, "requests_in_flight") >= 0) {
		fprintf(f, "  Tracked:  ");
		print_count(f, t, "nodes", "nodes");
		if (get_int(t, "nodes_pending") > 0)
			fprintf(f, " (%" PRId64 " still to look up again)", get_int(t, "nodes_pending"));
		fprintf(f, ", ");
		print_count(f, t, "handles", "handles, ");
		print_count(f, t, "requests_in_flight", "requests in flight, ");
		print_count(f, t, "locks", "locks\n");
	}
}
