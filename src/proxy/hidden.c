/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hidden names and their journal (hide.h has the idea, docs/design.md the rules). Nothing here
 * knows the proxy: hide.c does what the relay and recovery need with hidden names.
 */
#include "hidden.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* ---- The journal --------------------------------------------------------------------------- */

int hide_escape_path(const char *path, char *out, size_t size)
{
	size_t n = 0;

	while (*path == '/')
		path++;
	if (!*path) {
		/* The root directory, as systemd names it. */
		if (size < 2)
			return -ENAMETOOLONG;
		strcpy(out, "-");
		return 0;
	}
	for (; *path; path++) {
		unsigned char c = *path;
		char buf[5];
		size_t l;

		if (c == '/') {
			while (path[1] == '/')
				path++;
			if (!path[1])
				break;
			buf[0] = '-';
			l = 1;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '_' || c == ':' || (c == '.' && n)) {
			buf[0] = c;
			l = 1;
		} else {
			snprintf(buf, sizeof(buf), "\\x%02x", c);
			l = 4;
		}
		if (n + l >= size)
			return -ENAMETOOLONG;
		memcpy(out + n, buf, l);
		n += l;
	}
	out[n] = '\0';
	return 0;
}

/* The 64-bit number a well-formed hidden name carries (its 16 hex digits), or 0 if malformed. */
static uint64_t hidden_key(const char *name)
{
	uint64_t key = 0;

	if (strlen(name) != HIDE_NAME_SIZE - 1 || !hide_is_hidden(name, HIDE_PREFIX_LEN))
		return 0;
	for (const char *c = name + HIDE_PREFIX_LEN; *c; c++) {
		int d = *c >= '0' && *c <= '9' ? *c - '0' : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : -1;

		if (d < 0)
			return 0;
		key = key << 4 | d;
	}
	return key ? key : 1;
}

/*
 * Whether @path can name one of the keeper's hidden names: relative, no empty, "." or ".."
 * component (a journal must not lead outside the mount), ending in a well-formed hidden name.
 * Returns its key, or 0.
 */
static uint64_t journal_path_key(const char *path)
{
	const char *c = path, *last = path;

	if (!*path || *path == '/' || strlen(path) >= 4096)
		return 0;
	for (;;) {
		const char *end = strchrnul(c, '/');
		size_t l = end - c;

		if (!l || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		last = c;
		if (!*end)
			break;
		c = end + 1;
	}
	return hidden_key(last);
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static int write_record(int fd, bool add, const char *path)
{
	size_t len = strlen(path) + 1;
	char *rec = malloc(len + 1);
	ssize_t w;

	if (!rec)
		return -ENOMEM;
	rec[0] = add ? '+' : '-';
	memcpy(rec + 1, path, len);
	/* O_APPEND: one write per record lands whole at the end. */
	w = write(fd, rec, len + 1);
	free(rec);
	if (w < 0)
		return -errno;
	return (size_t)w == len + 1 ? 0 : -EIO;
}

struct compact_ctx {
	int fd;
	int err;
};

static void write_listed(uint64_t key, void *val, void *arg)
{
	struct compact_ctx *c = arg;

	if (!c->err)
		c->err = write_record(c->fd, true, val);
}

/*
 * Writes the journal anew with just what is listed, atomically (a new file renamed over it),
 * and keeps the new file open and locked. Returns 0 or -errno (the old journal stays).
 */
static int journal_compact(struct hide_state *s)
{
	struct compact_ctx c = { -1, 0 };
	char *tmp;

	if (asprintf(&tmp, "%s.new", s->journal_path) < 0)
		return -ENOMEM;
	unlink(tmp);
	c.fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (c.fd < 0 || flock(c.fd, LOCK_EX | LOCK_NB) < 0) {
		c.err = -errno;
		goto out;
	}
	idmap_each(&s->listed, write_listed, &c);
	if (!c.err && rename(tmp, s->journal_path) < 0)
		c.err = -errno;
out:
	if (c.err) {
		if (c.fd >= 0)
			close(c.fd);
		unlink(tmp);
	} else {
		if (s->journal_fd >= 0)
			close(s->journal_fd);
		s->journal_fd = c.fd;
		s->records = s->listed.count;
	}
	free(tmp);
	return c.err;
}

/* Lists (@add) @path, or takes the entry of the hidden name that ends @path off the list. */
static void listed_apply(struct hide_state *s, bool add, const char *path)
{
	uint64_t key = add ? journal_path_key(path) : hidden_key(base_name(path));
	char *copy;

	if (!key)
		return;
	free(idmap_del(&s->listed, key));
	if (add && (copy = strdup(path)) && idmap_put(&s->listed, key, copy) < 0)
		free(copy);
}

static void collect_leftover(uint64_t key, void *val, void *arg)
{
	struct hide_state *s = arg;
	char *copy = strdup(val);

	if (copy)
		s->leftovers[s->nleftovers++] = copy;
}

int hide_journal_open(struct hide_state *s, const char *dir, const char *mountpoint)
{
	char name[256];
	char *buf = NULL;
	size_t len = 0, cap = 0;
	struct stat st;
	int fd, r;

	s->journal_fd = -1;
	r = hide_escape_path(mountpoint, name, sizeof(name) - sizeof(".removed.new"));
	if (r < 0)
		return r;
	strcat(name, ".removed");
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	/* Paths in it are removed from the store: only its owner may write it. */
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
		return -EPERM;
	if (asprintf(&s->journal_path, "%s/%s", dir, name) < 0) {
		s->journal_path = NULL;
		return -ENOMEM;
	}
	for (;;) {
		struct stat now;

		fd = open(s->journal_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
			  0600);
		if (fd < 0)
			return -errno;
		/* A keeper that runs on this mountpoint holds it: its names are not leftovers. */
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			r = errno == EWOULDBLOCK ? -EBUSY : -errno;
			close(fd);
			return r;
		}
		if (fstat(fd, &st) < 0 || st.st_uid != geteuid()) {
			close(fd);
			return -EPERM;
		}
		/* That keeper may have just rewritten it: the lock must be on the file the
		 * path names now. */
		if (stat(s->journal_path, &now) == 0 && now.st_ino == st.st_ino &&
		    now.st_dev == st.st_dev)
			break;
		close(fd);
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *nb = realloc(buf, cap ? 2 * cap : 4096);

			if (!nb) {
				free(buf);
				close(fd);
				return -ENOMEM;
			}
			buf = nb;
			cap = cap ? 2 * cap : 4096;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			free(buf);
			close(fd);
			return r;
		}
		if (n == 0)
			break;
		len += n;
	}
	s->journal_fd = fd;
	/* Records end with a NUL; a torn last one (a keeper killed mid-write) is ignored, and so
	 * is anything that is not a hidden name inside the mount. */
	for (size_t off = 0; off < len;) {
		char *end = memchr(buf + off, '\0', len - off);

		if (!end)
			break;
		if (buf[off] == '+' || buf[off] == '-')
			listed_apply(s, buf[off] == '+', buf + off + 1);
		off = end - buf + 1;
	}
	free(buf);
	s->leftovers = calloc(s->listed.count + 1, sizeof(*s->leftovers));
	if (!s->leftovers)
		return -ENOMEM;
	idmap_each(&s->listed, collect_leftover, s);
	r = journal_compact(s);
	if (r < 0)
		log_warn("Cannot compact %s: %s", s->journal_path, strerror(-r));
	return 0;
}

void hide_journal(struct hide_state *s, bool add, const char *path)
{
	int r;

	if (s->journal_fd < 0)
		return;
	listed_apply(s, add, path);
	r = write_record(s->journal_fd, add, add ? path : base_name(path));
	if (r < 0) {
		log_warn("Cannot write to %s: %s; if the keeper is killed, the hidden name %s may "
			 "stay in the store", s->journal_path, strerror(-r), path);
		return;
	}
	/* Kept from growing for as long as the keeper runs. */
	if (++s->records > 64 + 2 * s->listed.count) {
		r = journal_compact(s);
		if (r < 0)
			log_warn("Cannot compact %s: %s", s->journal_path, strerror(-r));
	}
}

static void free_listed(uint64_t key, void *val, void *arg)
{
	free(val);
}

void hide_state_free(struct hide_state *s)
{
	while (s->graves) {
		struct grave *g = s->graves;

		s->graves = g->next;
		free(g);
	}
	for (size_t i = 0; i < s->nleftovers; i++)
		free(s->leftovers[i]);
	free(s->leftovers);
	idmap_each(&s->listed, free_listed, NULL);
	idmap_free(&s->listed);
	free(s->journal_path);
	if (s->journal_fd >= 0)
		close(s->journal_fd);
}

/* ---- Across an execve (image.h) --------------------------------------------------------- */

enum { TAG_HIDDEN = 0x48494445 /* "HIDE" */, TAG_HIDDEN_END = 0x2f484944 };

static void save_listed(uint64_t key, void *val, void *arg)
{
	image_u64(arg, key);
	image_str(arg, val);
}

void hide_state_save(const struct hide_state *s, struct image *im)
{
	image_tag(im, TAG_HIDDEN);
	image_bool(im, s->off);
	image_bool(im, s->no_link);
	image_u64(im, s->seed);
	image_u64(im, s->counter);
	image_u64(im, s->live);
	image_u64(im, s->graves_full);
	image_u64(im, s->ngraves);
	for (const struct grave *g = s->graves; g; g = g->next) {
		image_u64(im, g->parent);
		image_u64(im, g->unique);
		image_u64(im, g->did);
		image_str(im, g->name);
	}
	image_fd(im, s->journal_fd);
	image_str(im, s->journal_path);
	image_u64(im, s->records);
	image_u64(im, s->listed.count);
	idmap_each(&s->listed, save_listed, im);
	image_u64(im, s->nleftovers);
	for (size_t i = 0; i < s->nleftovers; i++)
		image_str(im, s->leftovers[i]);
	image_tag(im, TAG_HIDDEN_END);
}

int hide_state_load(struct hide_state *s, struct image *im)
{
	struct grave **tail = &s->graves;
	uint64_t n;

	if (!image_expect(im, TAG_HIDDEN))
		return im->err;
	s->off = image_get_bool(im);
	s->no_link = image_get_bool(im);
	s->seed = image_get_u64(im);
	s->counter = image_get_u64(im);
	s->live = image_get_u64(im);
	s->graves_full = image_get_u64(im);
	n = image_get_u64(im);
	if (n > HIDE_GRAVES_MAX)
		image_bad(im);
	for (uint64_t i = 0; i < n && !im->err; i++) {
		struct grave *g = calloc(1, sizeof(*g));
		_cleanup_free_ char *name = NULL;

		if (!g) {
			im->err = -ENOMEM;
			break;
		}
		*tail = g;
		tail = &g->next;
		g->parent = image_get_u64(im);
		g->unique = image_get_u64(im);
		g->did = image_get_u64(im);
		name = image_get_str(im);
		if (!name || strlen(name) >= sizeof(g->name) ||
		    !hide_is_hidden(name, strlen(name))) {
			image_bad(im);
			break;
		}
		strcpy(g->name, name);
		s->ngraves++;
	}
	s->journal_fd = image_get_fd(im);
	s->journal_path = image_get_str(im);
	s->records = image_get_u64(im);
	n = image_get_u64(im);
	for (uint64_t i = 0; i < n && !im->err; i++) {
		uint64_t key = image_get_u64(im);
		char *path = image_get_str(im);

		if (!path || idmap_put(&s->listed, key, path) < 0) {
			free(path);
			im->err = im->err ?: -ENOMEM;
		}
	}
	n = image_get_u64(im);
	if (!im->err && n) {
		s->leftovers = calloc(n + 1, sizeof(*s->leftovers));
		if (!s->leftovers)
			im->err = -ENOMEM;
	}
	for (uint64_t i = 0; i < n && !im->err; i++) {
		s->leftovers[i] = image_get_str(im);
		if (s->leftovers[i])
			s->nleftovers++;
		else
			image_bad(im);
	}
	image_expect(im, TAG_HIDDEN_END);
	return im->err;
}
