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

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct json_object;

#define CONTROL_DIR "/run/fusekeeper/control"

/* The largest request or reply, in bytes. */
#define CONTROL_MSG_MAX (256 * 1024)

/* How many clients may be connected and not have sent their request yet. */
#define CONTROL_PENDING 8

/* How long a client has to send its request once connected, in ms. */
#define CONTROL_REQUEST_MS 1000

/* The keeper's end. */
struct control {
	int fd;		/* listening socket, -1 when none */
	char path[108]; /* its name (sockaddr_un.sun_path) */
	struct {
		int fd;	/* connected, request not read yet; -1: free slot */
		int64_t until; /* now_ms() time after which it is dropped */
	} pending[CONTROL_PENDING];
};

/*
 * Creates CONTROL_DIR if needed, removes sockets there whose keeper is gone, and listens on
 * CONTROL_DIR/PID.sock. The name appears only once the socket listens (it is bound under a
 * temporary name and renamed), so a client or another keeper's clean-up never sees a socket
 * that refuses connections while its keeper lives. Returns 0, or -errno with a message in @err.
 */
int control_listen(struct control *c, char *err, size_t errlen);

/*
 * Takes up @fd, the listening socket a replaced keeper made with control_listen() (fusekeeper
 * reexec: same process, same name), or -1 for none.
 */
void control_adopt(struct control *c, int fd);

/* Removes the socket's name, closes it and every pending connection. */
void control_close(struct control *c);

/*
 * The fds to poll for POLLIN (the listener and the pending clients): fills up to
 * 1 + CONTROL_PENDING entries of @pfd (fd -1 where unused) and lowers *@wake (now_ms() clock)
 * to the time a pending client must be dropped. Never blocks: a client that connects and sends
 * nothing costs the keeper nothing but a slot.
 */
void control_poll_fds(struct control *c, struct pollfd *pfd, int64_t *wake);

/* A request, read from a peer that may ask (root or the keeper's uid). */
typedef void control_fn(void *arg, int conn, struct json_object *req, const struct ucred *peer);

/*
 * Does what @pfd (as control_poll_fds() filled it, after poll(2)) says: accepts new clients
 * (when every slot is taken, the oldest client is dropped), reads the requests that came, and
 * drops clients past their time. Each request of a peer that may ask is passed to @fn, which
 * then owns @conn (the request is put after @fn returns); other peers are answered with an
 * error and their @refused (uid, pid) is called for the log. Malformed requests are answered
 * with an error.
 */
void control_service(struct control *c, const struct pollfd *pfd, control_fn *fn,
		     void (*refused)(void *arg, const struct ucred *peer), void *arg);

/* Sends @reply on @conn. Returns 0 or -errno. @conn stays open. */
int control_send(int conn, struct json_object *reply);

/* Sends {"error": @msg, "errno": -@err} on @conn and closes it. */
void control_fail(int conn, int err, const char *msg);

/*
 * The client's side, in two steps: connects to the keeper listening at @path and sends @req.
 * Returns the connection (the caller closes it; its reply comes with control_reply() when it
 * is readable); -ECONNREFUSED or -ENOENT when no keeper listens there (it is gone); -EAGAIN
 * when one does but accepts nothing (stopped); another -errno.
 */
int control_request(const char *path, struct json_object *req);

/* Reads the reply on @fd (control_request()) into *@reply. Returns 0 or -errno. */
int control_reply(int fd, struct json_object **reply);

/*
 * Both steps: sends @req to the keeper listening at @path and returns its reply in
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
