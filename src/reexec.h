/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * `fusekeeper reexec`: the keeper replaces itself with the fusekeeper binary now on disk (an
 * upgrade) while the mount, the daemon and every table stay. The keeper holds new requests, lets
 * the mode stop its threads where its state is whole, writes that state and its own into an
 * image (image.h) in a memfd, and executes the binary with the same command line, the image's fd
 * named in FUSEKEEPER_IMAGE and the fds the image names left open. The process stays the same:
 * the daemon stays its child, systemd's main pid stays the same. docs/design.md, "Replacing the
 * keeper".
 */
#pragma once

struct keeper;

/*
 * Set in the environment of a fusekeeper executed by `fusekeeper reexec` to the fd of the state
 * the replaced keeper left: the new keeper takes up the mount, the mode, the daemon and the
 * control socket from it, and ignores the mode and the mountpoint of its command line.
 */
#define REEXEC_IMAGE_ENV "FUSEKEEPER_IMAGE"

/* The line of `fusekeeper --version` that says which state image format a binary reads. */
#define REEXEC_FORMAT_LINE "state image format"

/*
 * Set by a keeper asking the binary on disk whether it can take over: the binary parses the
 * keeper's command line (given as its own) as it would after the execve, prints
 * REEXEC_FORMAT_LINE and exits 0 instead of keeping a mount; or refuses it (exit 2, 1).
 */
#define REEXEC_PROBE_ENV "FUSEKEEPER_REEXEC_PROBE"

/* Why a reexec cannot begin now (for the client and the log), or NULL when it can. */
const char *reexec_refused(const struct keeper *k);

/*
 * Replaces the keeper, as asked (k->reexec_req, k->reexec_conn). Returns only if it was not
 * replaced: the connection that asked has been told why, the log says so, systemd has had
 * READY=1 again (the caller updates STATUS=), and the daemon serves on; -EINTR when the keeper
 * must stop, else 0.
 */
int reexec_run(struct keeper *k);

/*
 * At start, before anything else is set up: whether a replaced keeper left an image
 * (REEXEC_IMAGE_ENV, then removed from the environment): 0 when none, 1 when the keeper, its mode
 * and the daemon were taken up from it, or -errno when it could not be (logged; the mode's state,
 * if any, is in k->mode_state for stop()).
 */
int reexec_resume(struct keeper *k);

/* The resumed keeper serves: logs the re-exec, reports REEXECUTED and answers whoever asked. */
void reexec_done(struct keeper *k);
