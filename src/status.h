/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What `fusekeeper status` shows: the keeper fills a struct keeper_status, which becomes the JSON
 * object its control socket answers (docs/operations.md describes every field; fields are only
 * ever added), and the client prints that object for a person.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "mode.h"

struct json_object;

/* The format's version, "format" in the JSON: raised only when a field changes meaning. */
#define STATUS_FORMAT 1

struct keeper_status {
	pid_t pid;		/* the keeper's */
	const char *mountpoint;	/* NULL: not known yet (the daemon has not mounted) */
	const char *mode;
	const char *state;	/* starting, serving, restarting, recovering, down, gave-up,
				   stopping */
	bool gave_up;		/* too many failed starts; requests fail with EIO */
	bool requests_fail;	/* requests get EIO at once (gave up, or --request-wait passed) */
	int64_t uptime_ms;	/* since the keeper started */
	const char *version;	/* of the fusekeeper binary the keeper runs now */
	uint64_t reexecs;	/* times the keeper was replaced by `fusekeeper reexec` */
	pid_t daemon_pid;	/* 0: none */
	char *const *command;	/* the daemon's command line as configured, NULL-terminated */
	int64_t daemon_uptime_ms; /* since the current daemon began serving; -1: it does not */
	uint64_t planned;	/* planned restarts (fusekeeper restart, SIGHUP) */
	uint64_t crashes;	/* serving daemons that died or exited */
	uint64_t protocol_errors; /* serving daemons killed for breaking the FUSE protocol */
	uint64_t hangs;		/* serving daemons killed as hung (--hang-timeout) */
	uint64_t failed_starts;
	/* The last recovery: none when recovery_ago_ms < 0. */
	int64_t recovery_ago_ms;
	int64_t recovery_ms;	/* from the old daemon's death (or the restart's start) to the new
				   one serving */
	bool recovery_planned;
	struct mode_stats recovery; /* what it restored; the *_now fields are unused */
	struct mode_stats now;	/* what is tracked now; the recovery fields are unused */
};

/* The JSON object for @s; the caller puts it. NULL when out of memory. */
struct json_object *status_to_json(const struct keeper_status *s);

/* Prints the status object @o (as status_to_json() makes it) for a person. */
void status_print(FILE *f, struct json_object *o);
