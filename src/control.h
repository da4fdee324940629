/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket: every keeper listens on CONTROL_DIR/PID.sock (mode 0600, in a directory
 * of mode 0755), and `fusekeeper status|restart` talk to it. One request per connection, one
 * reply; both are JSON objects in single SOCK_SEQPACKET messages:
 *
 *   {"command": "status"}                        -> the keeper's status (status.h)
 *   {"command": "restart", "stop_timeout_ms": N} -> {"ok": true, ...} once a new daemon serves,
 *                                                   or {"error": "...", "errno": N}
 *
 * The keeper answers only root and its own uid (SO_PEERCRED): the socket's mode keeps others
 * out already, and the check keeps them out if the mode is changed.
 */
#pragma once

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct json_object;

#define CONTROL_DIR "/run/fusekeeper/control"

/* The largest request or reply, in bytes. */
#define CONTROL_MSG_MAX (256 * 1024)

/* The keeper's end. */
struct control {
	int fd;		/* listening socket, -1 when none */
	char path[108]; /* its name (sockaddr_un.sun_path) */
};

/*
 * Creates CONTROL_DIR if needed, removes sockets there whose keeper is gone, and listens on
 * CONTROL_DIR/PID.sock. The name appears only once the socket listens (it is bound under a
 * temporary name and renamed), so a client or another keeper's clean-up never sees a socket
 * that refuses connections while its keeper lives. Returns 0, or -errno with a message in @err.
 */
int control_listen(struct control *c, char *err, size_t errlen);

/* Removes the socket's name and closes it. */
void control_close(struct control *c);

/*
 * Accepts one client and reads its request (waiting up to a second for it). Returns the
 * connection (close-on-exec) with the request in *@req (the caller puts it) and the peer's
 * credentials in *@peer; -EAGAIN when no client was waiting; -EPERM when the peer is neither
 * root nor the keeper's uid (it was answered so and the connection closed); another -errno
 * when the request could not be read or parsed (answered so when possible).
 */
int control_accept(struct control *c, struct json_object **req, struct ucred *peer);

/* Sends @reply on @conn. Returns 0 or -errno. @conn stays open. */
int control_send(int conn, struct json_object *reply);

/* Sends {"error": @msg, "errno": -@err} on @conn and closes it. */
void control_fail(int conn, int err, const char *msg);

/*
 * The client's side: sends @req to the keeper listening at @path and returns its reply in
 * *@reply (the caller puts it). Waits for the reply up to @timeout_ms (-1: as long as the
 * keeper takes; a restart takes as long as the daemon's start). Returns 0; -ECONNREFUSED or
 * -ENOENT when no keeper listens there (it is gone); -EAGAIN or -ETIMEDOUT when it does not
 * answer (stopped, or busy stopping a daemon); another -errno.
 */
int control_call(const char *path, struct json_object *req, int timeout_ms,
		 struct json_object **reply);

/*
 * The sockets in CONTROL_DIR, as a NULL-terminated array of malloc'd paths sorted by name (the
 * caller frees them and the array). Returns the count, or -errno (-ENOENT: no keeper ever ran).
 */
int control_list(char ***paths);
