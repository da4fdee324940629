/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The supervisor's state (struct keeper), shared by the files that make the supervisor:
 * supervisor.c (mount, daemons, restart policy, the control socket's requests) and reexec.c (the
 * keeper replaced by the binary on disk). Declares no function. Nothing else includes this;
 * modes see the keeper through keeper.h.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "control.h"
#include "keeper.h"
#include "mode.h"
#include "takeover.h"

/* The daemon being started, and the signs of progress seen so far. */
struct start_watch {
	int64_t at;	     /* when it was started; 0: no start under way */
	int64_t sampled_at;  /* its process group was last looked at */
	int64_t progress_at; /* last sign of progress (at the start: the start itself) */
	const char *sign;    /* what that was; NULL: none yet */
	uint64_t cpu;	     /* CPU clock ticks of its process group at the last look */
	uint64_t io;	     /* bytes its process group read and wrote at the last look */
	int64_t told_until;  /* the time the last "still starting" line promised; 0: none */
};

/* Taking over the daemon's own mount (cfg.takeover): the state of takeover.h's mechanics. */
struct takeover_state {
	struct takeover *filter;
	int listener;	   /* the current daemon's filter's listener; -1 when none */
	bool taken;	   /* the current daemon's mount was taken over: it has its channel */
	struct takeover_channel chan; /* that channel, as the keeper recognizes it */
	uint64_t ns;	   /* that namespace's inode: where a daemon that forks is followed */
	bool self_unmounted; /* the daemon unmounted the mount itself: it is on its way out */
	bool mounted;	   /* the keeper's mount exists (made for the first daemon's call) */
	bool mount_gone;   /* ... and has since left the keeper's namespace (unmounted) */
	unsigned conn;	   /* its fusectl number (device minor) */
	dev_t dir_dev;	   /* the directory beneath it: what a daemon's mount call must name */
	ino_t dir_ino;
	int mountinfo;	   /* /proc/self/mountinfo, polled for changes while mounted; -1: none */
	int failed;	   /* -errno: the daemon did something that cannot be taken over */
};

struct keeper {
	struct keeper_config cfg;
	void *mode_state;
	int sigfd;
	pid_t daemon;	   /* current daemon, 0 when none */
	pid_t pgid;	   /* its process group (the daemon's own, or the one it moved to) */
	bool daemon_reaped; /* its status was collected by reap_orphans() */
	int daemon_status;
	int pidfd;	   /* becomes readable when the daemon exits; -1 when none */
	bool stop;	   /* a stop signal arrived or the filesystem was unmounted */
	bool unmounted;	   /* the connection ended: nothing left to unmount */
	int64_t *failures; /* times of recent failed starts, a ring of cfg.max_restarts */
	unsigned nfail;	   /* failed starts recorded so far (ring index) */
	unsigned streak;   /* failed starts since the last good one, for the back-off */
	struct start_watch start;
	int64_t first_start_ms; /* how long the first daemon took to answer FUSE_INIT */
	int64_t died_at;   /* when the last daemon that served died */
	int64_t down_at;   /* when requests stop waiting for a new daemon; 0: not pending */
	bool failing;	   /* the mode's give_up() was called since a daemon last served */
	const char *requests_then; /* what requests get since give_up(), for the log */
	bool hang_killed;  /* the current daemon was killed as hung (--hang-timeout) */
	int64_t hang_killed_at;
	bool hang_told;	   /* ... and that it does not die was logged */
	int64_t hang_after; /* no daemon is called hung before this (the keeper was stopped) */
	struct takeover_state to;
	char *own_mountpoint; /* cfg.mountpoint when the daemon's mount call named it */
	char **env;	   /* the daemon's environment: the keeper's (or --user's) without
			      systemd's NOTIFY_SOCKET and LISTEN_*, which are the keeper's */

	/* For `fusekeeper status` (status.h). */
	struct control ctl;
	int64_t started_at;  /* the keeper */
	bool served;	     /* a daemon has served the mount */
	bool stored;	     /* the connection is in systemd's fd store (fdstore_put()) */
	bool serving;	     /* the current daemon serves (took over, and is not being stopped) */
	int64_t up_since;    /* ... since then */
	bool gave_up;	     /* too many failed starts: see supervise() */
	bool broke;	     /* the current daemon broke the protocol */
	uint64_t planned, crashes, protocol_errors, hangs, failed_starts;
	int64_t rec_at;	     /* when the last recovery ended; 0: none yet */
	int64_t rec_ms;	     /* how long it took */
	bool rec_planned;
	struct mode_stats rec; /* what it restored */

	/*
	 * A planned restart (`fusekeeper restart`, SIGHUP): asked for (restart_req) while a daemon
	 * serves or the keeper gave up (accept_restart: the supervisor's own waits), then under
	 * way (restarting) until a new daemon serves or a start fails.
	 */
	bool accept_restart;
	bool restart_req;
	bool restarting;
	const char *restart_by; /* who asked, for the log */
	int restart_conn;     /* the control connection waiting for the outcome; -1: none */
	int64_t restart_stop_ms; /* its --stop-timeout; -1: the keeper's */
	int64_t restart_at;   /* when it began */
	pid_t restart_from;   /* the daemon it stops; 0: none served (after giving up) */

	/* fusekeeper reexec (reexec.h): asked for while a daemon serves (the supervisor's own
	 * waits return -ECANCELED, as for a restart). */
	bool reexec_req;
	bool reexecing;       /* reexec_run() is at work: other requests are refused */
	int reexec_conn;      /* the control connection waiting for the outcome; -1: none */
	int64_t reexec_at;    /* when the last one began (now_ms(): the clock survives execve) */
	uint64_t reexecs;     /* times this keeper process was replaced */
};

