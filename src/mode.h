/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A recovery mode: how the keeper stands between the kernel's FUSE connection and a sequence of
 * daemons. The supervisor (supervisor.c) owns the mount, the daemon processes, the restart policy
 * and signals; a mode owns the connection's traffic. Every call but events() comes from the
 * supervisor's thread.
 */
#pragma once

#include "image.h"
#include "keeper.h"

/* Bits returned by mode_ops.events(). */
#define MODE_EV_UNMOUNTED 1u	  /* the connection ended: the mount is gone */
#define MODE_EV_DAEMON_BROKEN 2u /* the daemon broke the protocol: it must be restarted */
#define MODE_EV_CHANNEL_CLOSED 4u /* the daemon closed its channel: dead, or to be killed */
#define MODE_EV_STORE_LOST 8u	  /* what store_fds() gave can no longer be resumed from */

/* What a mode tracks, for `fusekeeper status` (mode_ops.stats()); -1 where it cannot tell. */
struct mode_stats {
	/* Now. */
	int64_t nodes;		   /* node IDs the kernel holds (proxy: the node table) */
	int64_t handles;	   /* open file handles */
	int64_t requests;	   /* requests in flight: given to the daemon, or waiting for one */
	int64_t locks;		   /* file locks kept for a daemon that keeps locks itself */
	int64_t nodes_pending;	   /* of nodes, those a recovery left to look up again later
				      (proxy's lazy lookup), not looked up yet */
	/* The last recovery (after a daemon's death or a planned restart). */
	int64_t nodes_restored, nodes_lost;
	int64_t handles_restored, handles_lost;
	int64_t requests_replayed; /* requests the dead daemon held, given to the new one */
	int64_t requests_settled;  /* ... answered from what the keeper could prove */
	int64_t writes_resent;	   /* acknowledged, unsynced writes written again */
	int64_t writes_lost;	   /* handles whose unsynced writes could not be (EIO at fsync) */
};

struct mode_ops {
	const char *name;

	/*
	 * Optional: whether the mode can work on this system, asked before anything is mounted.
	 * Returns 0, or -errno with a message for the user in @err. NULL: always.
	 */
	int (*probe)(char *err, size_t errlen);

	/* Takes over /dev/fuse (@devfd) once the mount exists. Returns 0 or -errno. */
	int (*start)(struct keeper *k, int devfd, void **state);

	/*
	 * Makes the channel for the next daemon and returns its end (passed as /dev/fd/N): a
	 * socket (proxy), a /dev/fuse fd of a mount the mode made itself (remount), or a clone of
	 * the mount's /dev/fuse (reinit). The mode keeps ownership.
	 */
	int (*channel)(void *state);

	/*
	 * The daemon now runs with the channel's end. For the first daemon, waits until it has
	 * answered FUSE_INIT; for later ones, brings it up to the kernel's state. Returns 0 when
	 * the daemon serves the mount, or -errno when this start failed (the mode has logged why;
	 * -ECHILD: the daemon died, -EINTR: the keeper must stop).
	 */
	int (*attach)(void *state, struct keeper *k);

	/*
	 * The daemon is gone (dead or about to be killed): stop using its channel. The supervisor
	 * reads events() right after, before it starts another daemon.
	 */
	void (*detach)(void *state);

	/*
	 * No daemon serves, and none is to be waited for (--request-wait passed, or the keeper
	 * gave up): fail every waiting and later request with EIO at once, until attach()
	 * succeeds again. Requests a recovery under way is settling are left to it. May come
	 * from inside attach() (through keeper_wait()). Returns 0 when requests fail from now
	 * on; -EOPNOTSUPP when the kernel cannot fail them (reinit mode on a kernel without
	 * FUSE_REINIT_GIVE_UP), or another -errno when failing them failed (the mode has logged
	 * why): then they keep waiting, killable, for the next daemon.
	 */
	int (*give_up)(void *state);

	/* An fd that becomes readable when events() has something to say, or work to do. */
	int (*event_fd)(void *state);

	/* Does the mode's work the fd woke it for; returns and clears pending MODE_EV_* bits. */
	unsigned (*events)(void *state);

	/*
	 * For --hang-timeout: the time (now_ms() clock) at which the serving daemon is hung if
	 * nothing changes — in proxy mode, it has then held a request for @timeout_ms and answered
	 * nothing for as long (requests that may wait for events outside the daemon, a blocking
	 * lock or a poll, do not count); in reinit mode, the kernel's write again has then not
	 * finished a file for @timeout_ms. INT64_MAX when no daemon serves (reinit mode: or no
	 * write again goes on); a time in the future when it holds no such request (no request
	 * given later can make it hung sooner). @what receives a description of what it held,
	 * for the log ("has held @what"). May be NULL: the mode cannot tell.
	 */
	int64_t (*hung_at)(void *state, int64_t timeout_ms, char *what, size_t size);

	/*
	 * Optional: the fusectl number of the connection the keeper may abort when it stops with
	 * the mount still there, or 0 for none. A mode whose mount changes connection (remount)
	 * must say: the number the mount had at first may belong to another filesystem by then.
	 * NULL: the connection the mount had at first.
	 */
	unsigned (*conn_id)(void *state);

	/*
	 * Optional: a planned restart is about to stop the serving daemon. Holds new requests
	 * at the keeper and waits (through keeper_wait()) until the daemon has answered those it
	 * holds, except those that may wait for events outside it (blocking locks, polls, reads
	 * of pipe-like files). Requests stay held until the next attach(). Returns 0 when it
	 * holds none; -ETIMEDOUT at @deadline (now_ms() clock), with what it still holds in
	 * @what (they are then recovered as after a crash); or another of keeper_wait()'s errors
	 * (-ECHILD: the daemon died, -EINTR: the keeper must stop). NULL: the mode cannot hold
	 * requests (they go on to the daemon until it stops).
	 */
	int (*drain)(void *state, int64_t deadline, char *what, size_t size);

	/* Optional: fills in what the mode knows of @s (the caller set every field to -1). */
	void (*stats)(void *state, struct mode_stats *s);

	/*
	 * Optional, all four or none: `fusekeeper reexec`, the keeper replaced by the binary on
	 * disk while the daemon serves on. After drain(), freeze() stops the mode's threads where
	 * its state is whole: 0, or -EBUSY when they did not stop in time. save() then writes that
	 * state to @im, with the fds it needs (image_fd()), and returns 0 or im->err. thaw()
	 * undoes freeze() and drain() when the keeper is not replaced after all (or freeze()
	 * failed). In the new binary, restore() takes up what save() wrote, instead of start()
	 * and attach(): the same daemon serves. It returns 0 or -errno (-EBADMSG: the image does
	 * not make a consistent state); *@state is set either way, for stop().
	 */
	int (*freeze)(void *state);
	void (*thaw)(void *state);
	int (*save)(void *state, struct image *im);
	int (*restore)(struct keeper *k, struct image *im, void **state);

	/*
	 * Optional (proxy), both or none: surviving the keeper's own SIGKILL under systemd
	 * (docs/design.md, "Surviving the keeper's own death"). store_fds() says which fds to keep
	 * in systemd's fd store now: /dev/fuse and the resume journal's two memfds, or -1s when
	 * nothing can be resumed from (no journal, or a kernel that cannot resend the requests a
	 * killed keeper had read). resume(), instead of start(), takes up a connection a killed
	 * keeper left there: @devfd and the journal (@fd_a, @fd_b; all three are the mode's from
	 * then on); every daemon's ID is to be found again by the next attach(), as after a
	 * daemon's death. Returns 0 or -errno (-EBADMSG: the journal does not read back);
	 * *@state is set either way, for stop().
	 */
	void (*store_fds)(void *state, int fds[3]);
	int (*resume)(struct keeper *k, int devfd, int fd_a, int fd_b, void **state);

	/* Releases everything; the mount is gone or detached. */
	void (*stop)(void *state);
};

extern const struct mode_ops proxy_mode;
extern const struct mode_ops remount_mode;
extern const struct mode_ops reinit_mode;
