/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The control socket, both ends (control.h). */
#include "control.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

static int make_dir(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int sockaddr_for(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

/*
 * Connects to the socket at @path without waiting: a keeper that does not accept (stopped)
 * and has a full backlog gives -EAGAIN. Returns the connection (blocking) or -errno.
 */
static int connect_to(const char *path)
{
	struct sockaddr_un sa;
	int fd, r = sockaddr_for(path, &sa);

	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Removes the sockets in CONTROL_DIR that nobody listens on: keepers that were killed. */
static void sweep_stale(void)
{
	char **paths = NULL;
	int n = control_list(&paths);

	for (int i = 0; i < n; i++) {
		int fd = connect_to(paths[i]);

		if (fd >= 0)
			close(fd);
		else if (fd == -ECONNREFUSED)
			unlink(paths[i]);
		free(paths[i]);
	}
	free(paths);
}

int control_listen(struct control *c, char *err, size_t errlen)
{
	char tmp[sizeof(c->path)];
	struct sockaddr_un sa;
	int r;

	c->fd = -1;
	for (size_t i = 0; i < CONTROL_PENDING; i++)
		c->pending[i].fd = -1;
	/* /run/fusekeeper may not exist yet: the state directory of proxy mode, which holds
	 * names of files (hidden.c), is root's alone. */
	r = mkdir("/run/fusekeeper", 0700) < 0 && errno != EEXIST ? -errno : 0;
	if (r == 0)
		r = make_dir(CONTROL_DIR);
	if (r < 0) {
		snprintf(err, errlen, "Cannot create %s: %s", CONTROL_DIR, strerror(-r));
		return r;
	}
	sweep_stale();
	snprintf(c->path, sizeof(c->path), "%s/%d.sock", CONTROL_DIR, (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s/.%d.new", CONTROL_DIR, (int)getpid());
	unlink(tmp);
	r = sockaddr_for(tmp, &sa);
	if (r < 0)
		goto fail;
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(tmp, 0600) < 0 || listen(c->fd, 16) < 0 || rename(tmp, c->path) < 0) {
		r = -errno;
		unlink(tmp);
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "Cannot listen on %s: %s", c->path, strerror(-r));
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	return r;
}

void control_adopt(struct control *c, int fd)
{
	c->fd = fd;
	for (size_t i = 0; i < CONTROL_PENDING; i++)
		c->pending[i].fd = -1;
	/* The name control_listen() gave it: the pid is the same across execve. */
	snprintf(c->path, sizeof(c->path), "%s/%d.sock", CONTROL_DIR, (int)getpid());
}

void control_close(struct control *c)
{
	if (c->fd < 0)
		return;
	unlink(c->path);
	close(c->fd);
	c->fd = -1;
	for (size_t i = 0; i < CONTROL_PENDING; i++) {
		if (c->pending[i].fd >= 0)
			close(c->pending[i].fd);
		c->pending[i].fd = -1;
	}
}

int control_send(int conn, struct json_object *reply)
{
	size_t len;
	const char *s = json_object_to_json_string_length(reply, JSON_C_TO_STRING_PLAIN, &len);

	if (len > CONTROL_MSG_MAX)
		return -EMSGSIZE;
	/* The client waits for it; a client that went away takes nothing. */
	if (send(conn, s, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

void control_fail(int conn, int err, const char *msg)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(msg));
	json_object_object_add(o, "errno", json_object_new_int(-err));
	control_send(conn, o);
	json_object_put(o);
	close(conn);
}

/*
 * Receives one message of at most CONTROL_MSG_MAX bytes into @buf (CONTROL_MSG_MAX + 1 bytes),
 * NUL-terminated. Returns its length or -errno.
 */
static ssize_t recv_message(int fd, char *buf)
{
	ssize_t n;

	do
		n = recv(fd, buf, CONTROL_MSG_MAX + 1, MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	if (n > CONTROL_MSG_MAX)
		return -EMSGSIZE;
	buf[n] = '\0';
	return n;
}

/* Parses @buf, all of it (@len bytes), as one JSON object. */
static int parse_object(const char *buf, size_t len, struct json_object **out)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;
	bool whole;

	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, buf, len);
	/* Nothing but blanks may follow it. */
	whole = o && json_tokener_get_error(tok) == json_tokener_success &&
		strspn(buf + json_tokener_get_parse_end(tok), " \t\r\n") ==
			len - json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!whole || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -EBADMSG;
	}
	*out = o;
	return 0;
}

/* Receives one message and parses it as a JSON object. */
static int recv_object(int fd, struct json_object **out)
{
	_cleanup_free_ char *buf = malloc(CONTROL_MSG_MAX + 1);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = recv_message(fd, buf);
	return n < 0 ? n : parse_object(buf, n, out);
}

void control_poll_fds(struct control *c, struct pollfd *pfd, int64_t *wake)
{
	pfd[0] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
	for (size_t i = 0; i < CONTROL_PENDING; i++) {
		pfd[1 + i] = (struct pollfd){ .fd = c->fd >= 0 ? c->pending[i].fd : -1,
					      .events = POLLIN };
		if (pfd[1 + i].fd >= 0 && c->pending[i].until < *wake)
			*wake = c->pending[i].until;
	}
}

static void drop_pending(struct control *c, size_t i)
{
	close(c->pending[i].fd);
	c->pending[i].fd = -1;
}

/* Reads the request of the client in @slot and hands it on (control_service()). */
static void serve_client(struct control *c, size_t slot, control_fn *fn,
			 void (*refused)(void *arg, const struct ucred *peer), void *arg)
{
	_cleanup_free_ char *buf = malloc(CONTROL_MSG_MAX + 1);
	int conn = c->pending[slot].fd, r;
	struct json_object *req = NULL;
	struct ucred peer;
	socklen_t len = sizeof(peer);
	ssize_t n;

	c->pending[slot].fd = -1;
	if (!buf || getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0) {
		close(conn);
		return;
	}
	/*
	 * The request is read before anything is answered, even a refusal: a socket closed with
	 * a message unread resets the connection, and the peer would not see the answer.
	 */
	n = recv_message(conn, buf);
	if (n == -EAGAIN) {
		/* Woken for nothing: keep waiting for it. */
		c->pending[slot].fd = conn;
		return;
	}
	if (peer.uid != 0 && peer.uid != geteuid()) {
		control_fail(conn, -EPERM, "permission denied: only root may use fusekeeper's "
			     "control socket");
		refused(arg, &peer);
		return;
	}
	r = n < 0 ? (int)n : parse_object(buf, n, &req);
	if (r < 0) {
		control_fail(conn, r, "malformed request: expected one JSON object");
		return;
	}
	/* The keeper answers without blocking (MSG_DONTWAIT): a client that reads nothing
	 * cannot stall it. */
	fn(arg, conn, req, &peer);
	json_object_put(req);
}

/*
 * Accepts every waiting client into a slot (a free one, else the one waiting longest) and reads
 * its request at once: clients send it with the connection, so a burst of them is served, not
 * evicted before they are read.
 */
static void accept_clients(struct control *c, control_fn *fn,
			   void (*refused)(void *arg, const struct ucred *peer), void *arg)
{
	int conn;

	while ((conn = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		size_t slot = 0;

		for (size_t i = 0; i < CONTROL_PENDING; i++) {
			if (c->pending[i].fd < 0) {
				slot = i;
				break;
			}
			if (c->pending[i].until < c->pending[slot].until)
				slot = i;
		}
		if (c->pending[slot].fd >= 0)
			drop_pending(c, slot);
		c->pending[slot].fd = conn;
		c->pending[slot].until = now_ms() + CONTROL_REQUEST_MS;
		serve_client(c, slot, fn, refused, arg);
	}
}

void control_service(struct control *c, const struct pollfd *pfd, control_fn *fn,
		     void (*refused)(void *arg, const struct ucred *peer), void *arg)
{
	int64_t now = now_ms();

	if (c->fd < 0)
		return;
	for (size_t i = 0; i < CONTROL_PENDING; i++) {
		if (c->pending[i].fd < 0 || pfd[1 + i].fd != c->pending[i].fd)
			continue;
		if (pfd[1 + i].revents)
			serve_client(c, i, fn, refused, arg);
		else if (now >= c->pending[i].until)
			drop_pending(c, i);
	}
	if (pfd[0].revents)
		accept_clients(c, fn, refused, arg);
}

int control_request(const char *path, struct json_object *req)
{
	size_t len;
	const char *s = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
	int fd = connect_to(path);

	if (fd < 0)
		return fd;
	/* A keeper that refuses the peer answers before it reads: its answer is what counts. */
	if (send(fd, s, len, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int control_reply(int fd, struct json_object **reply)
{
	return recv_object(fd, reply);
}

int control_call(const char *path, struct json_object *req, int timeout_ms,
		 struct json_object **reply)
{
	_cleanup_close_ int fd = control_request(path, req);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int n;

	if (fd < 0)
		return fd;
	while ((n = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	return control_reply(fd, reply);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int control_list(char ***paths)
{
	DIR *d = opendir(CONTROL_DIR);
	struct dirent *de;
	char **v = NULL;
	int n = 0, cap = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".sock"))
			continue;
		if (n + 1 >= cap) {
			char **nv = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));

			if (!nv)
				break;
			v = nv;
		}
		if (asprintf(&v[n], "%s/%s", CONTROL_DIR, de->d_name) < 0)
			break;
		n++;
	}
	closedir(d);
	if (!v && !(v = calloc(1, sizeof(*v))))
		return -ENOMEM;
	v[n] = NULL;
	qsort(v, n, sizeof(*v), by_name);
	*paths = v;
	return n;
}
