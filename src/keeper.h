/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The supervisor's view shared with the recovery modes: configuration, and the one service a mode
 * needs from the supervisor while it takes a daemon on — waiting for an fd without missing the
 * daemon's death, a stop request or the end of the mount.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mount.h"

struct keeper_config {
	const char *mountpoint;	  /* absolute, resolved; with takeover, NULL until the daemon's own
				     mount call names it when the user gave none */
	char **command;		  /* COMMAND and its arguments, NULL-terminated, with "{}" unless
				     takeover */
	bool takeover;		  /* the daemon mounts itself and the keeper takes that mount over
				     (takeover.h); cfg.mnt then comes from the daemon's mount call */
	struct mount_options mnt;
	const struct mode_ops *mode;
	unsigned max_restarts;	  /* failed starts tolerated within restart_window_ms */
	int64_t restart_window_ms;
	int64_t start_timeout_ms; /* a start fails past this, unless the daemon shows progress */
	int64_t max_start_ms;	  /* ... and past this whatever it shows (>= start_timeout_ms) */
	int64_t request_wait_ms;  /* requests wait this long for a new daemon, then get EIO */
	int64_t retry_interval_ms; /* after giving up, a start is tried this often; 0: never */
	int64_t stop_timeout_ms;  /* SIGTERM grace for the daemon before SIGKILL */
	int64_t hang_timeout_ms;  /* a daemon holding a request this long while answering
				     nothing is killed as hung; 0: never */
	uint64_t max_nodes;	  /* bound on the node table */
	uint64_t max_handles;	  /* bound on the handle table */
	uint64_t max_locks;	  /* bound on the lock table (locks.h) */
	uint64_t write_window;	  /* bytes of acknowledged, unsynced writes kept per handle */
	uint64_t write_window_total; /* ... and for all handles together */
	bool exclusive;		  /* the operator says no other client changes the store */
	bool write_through;	  /* the operator says the daemon makes writes durable before it
				     answers them: no write windows */
	bool keep_removed;	  /* files removed while open are kept under hidden names */
	bool eager_lookup;	  /* proxy mode: a recovery looks every node up before serving,
				     none on first use (recover.h) */
	const char *state_dir;	  /* where the journal of hidden names lives */
	struct daemon_user *user; /* --user: whom the daemon runs as; NULL: root, as the keeper */
	char **argv;		  /* the keeper's own command line, NULL-terminated (reexec) */
	const char *exe;	  /* the keeper's binary as started (/proc/self/exe), or NULL */
	const struct mode_ops *const *modes; /* every mode, NULL-terminated: the one a replaced
					   keeper ran is found by name (reexec) */
	bool fdstore;		  /* systemd keeps fds for the keeper (NOTIFY_SOCKET, FDSTORE): the
				     connection is stored there to survive the keeper's SIGKILL */
	int resume_fds[3];	  /* what a killed keeper left in systemd's fd store (LISTEN_FDS):
				     /dev/fuse, the journal's two memfds; -1 each when none */
};

/* The FDNAME= of the fds in systemd's fd store, in the order of keeper_config.resume_fds. */
#define FDSTORE_NAMES { "fuse", "journal-a", "journal-b" }

/* Takes every fd of FDSTORE_NAMES out of systemd's fd store (FDSTOREREMOVE=1; supervisor.c). */
void fdstore_clear(void);

/* --user=USER[:GROUP]: the daemon's credentials and the environment systemd's User= gives. */
struct daemon_user {
	uid_t uid;
	gid_t gid;
	gid_t *groups;		  /* supplementary groups (the user's, from the group database) */
	int ngroups;
	char **env;		  /* the keeper's environment with HOME, USER, LOGNAME and SHELL of
				     the user; NULL-terminated */
};

struct keeper;

/* The configuration the keeper runs with. */
const struct keeper_config *keeper_config(const struct keeper *k);

/*
 * Waits until @fd is readable or @deadline (now_ms() clock) passes. Returns 0 when @fd is readable,
 * -ETIMEDOUT, -ECHILD when the daemon being started exited (it is not reaped: the supervisor
 * does that), or -EINTR when the keeper must stop (signal or unmount). @fd may be -1 to wait only
 * for those.
 * While a daemon is starting, a wait for @fd (its answer) is a wait on the start: @deadline is
 * the mode's share of --start-timeout, and once it passes the wait goes on as long as the
 * supervisor's start policy keeps the daemon (it shows progress, or its first start took as
 * long: docs/design.md); -ETIMEDOUT then means that the start failed, which the supervisor has
 * logged. No such wait lasts past --max-start-time from the daemon's start.
 * Meanwhile it also answers the control socket, whose status requests call the mode's stats():
 * a caller must not hold a lock stats() takes. (-ECANCELED, a planned restart, is returned only
 * to the supervisor's own waits, never to a mode's.)
 */
int keeper_wait(struct keeper *k, int fd, int64_t deadline);

/* When the last daemon that served died (now_ms() clock), 0 if none has. */
int64_t keeper_died_at(const struct keeper *k);

/* The pid of the current daemon, 0 if none. */
pid_t keeper_daemon_pid(const struct keeper *k);
