/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* A string written as NULL. */
#define IMAGE_NULL UINT32_MAX

static void put(struct image *im, const void *data, size_t len)
{
	if (im->err || !len)
		return;
	if (im->len + len > im->cap) {
		size_t cap = MAX(im->cap * 2, MAX(im->len + len, (size_t)4096));
		char *buf = realloc(im->buf, cap);

		if (!buf) {
			im->err = -ENOMEM;
			return;
		}
		im->buf = buf;
		im->cap = cap;
	}
	memcpy(im->buf + im->len, data, len);
	im->len += len;
}

/* The next @len bytes, or NULL (and the image malformed) when fewer are left. */
static const void *take(struct image *im, size_t len)
{
	const void *p;

	if (im->err)
		return NULL;
	if (len > im->len - im->off) {
		im->err = -EBADMSG;
		return NULL;
	}
	p = im->buf + im->off;
	im->off += len;
	return p;
}

void image_u64(struct image *im, uint64_t v)
{
	put(im, &v, sizeof(v));
}

void image_u32(struct image *im, uint32_t v)
{
	put(im, &v, sizeof(v));
}

void image_bool(struct image *im, bool v)
{
	uint8_t b = v;

	put(im, &b, 1);
}

void image_bytes(struct image *im, const void *data, uint32_t len)
{
	image_u32(im, len);
	put(im, data, len);
}

void image_str(struct image *im, const char *s)
{
	if (!s) {
		image_u32(im, IMAGE_NULL);
		return;
	}
	if (strlen(s) >= IMAGE_NULL) {
		im->err = im->err ?: -EOVERFLOW;
		return;
	}
	image_bytes(im, s, strlen(s));
}

void image_fd(struct image *im, int fd)
{
	image_u32(im, (uint32_t)fd);
	if (fd < 0 || im->err)
		return;
	for (unsigned i = 0; i < im->nfds; i++)
		if (im->fds[i] == fd)
			return;
	if (im->nfds == IMAGE_FDS_MAX) {
		im->err = -EMFILE;
		return;
	}
	im->fds[im->nfds++] = fd;
}

int image_keep_fds(const struct image *im, bool keep)
{
	for (unsigned i = 0; i < im->nfds; i++) {
		int fl = fcntl(im->fds[i], F_GETFD);

		if (fl < 0 || fcntl(im->fds[i], F_SETFD, keep ? fl & ~FD_CLOEXEC
							      : fl | FD_CLOEXEC) < 0)
			return -errno;
	}
	return 0;
}

void image_tag(struct image *im, uint32_t tag)
{
	image_u32(im, tag);
}

uint64_t image_get_u64(struct image *im)
{
	const void *p = take(im, sizeof(uint64_t));
	uint64_t v = 0;

	if (p)
		memcpy(&v, p, sizeof(v));
	return v;
}

uint32_t image_get_u32(struct image *im)
{
	const void *p = take(im, sizeof(uint32_t));
	uint32_t v = 0;

	if (p)
		memcpy(&v, p, sizeof(v));
	return v;
}

bool image_get_bool(struct image *im)
{
	const uint8_t *p = take(im, 1);

	if (p && *p > 1)
		image_bad(im);
	return p && *p == 1;
}

const void *image_get_bytes(struct image *im, uint32_t *len)
{
	uint32_t n = image_get_u32(im);
	const void *p = take(im, n);

	*len = p ? n : 0;
	return p;
}

char *image_get_str(struct image *im)
{
	uint32_t n = image_get_u32(im);
	const char *p;
	char *s;

	if (im->err || n == IMAGE_NULL)
		return NULL;
	p = take(im, n);
	if (!p)
		return NULL;
	if (memchr(p, '\0', n)) {
		image_bad(im);
		return NULL;
	}
	s = strndup(p, n);
	if (!s)
		im->err = -ENOMEM;
	return s;
}

int image_get_fd(struct image *im)
{
	int fd = (int32_t)image_get_u32(im);

	if (im->err || fd == -1)
		return -1;
	if (fd < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		image_bad(im);
		return -1;
	}
	return fd;
}

bool image_expect(struct image *im, uint32_t tag)
{
	if (image_get_u32(im) != tag)
		image_bad(im);
	return !im->err;
}

bool image_bad(struct image *im)
{
	if (!im->err)
		im->err = -EBADMSG;
	return false;
}

int image_fail(struct image *im)
{
	image_bad(im);
	return im->err;
}

int image_to_memfd(const struct image *im)
{
	int fd = memfd_create("fusekeeper-image", MFD_ALLOW_SEALING);
	size_t done = 0;

	if (fd < 0)
		return -errno;
	while (done < im->len) {
		ssize_t n = write(fd, im->buf + done, im->len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;

			close(fd);
			return e;
		}
		done += n;
	}
	/* The reader must see what was written, nothing else: no one changes it meanwhile. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0 ||
	    lseek(fd, 0, SEEK_SET) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

int image_from_fd(struct image *im, int fd)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	void *map;

	memset(im, 0, sizeof(*im));
	if (fstat(fd, &st) < 0)
		return -errno;
	/* Only what image_to_memfd() made: no one can change it under the reader. */
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || seals < 0 || !(seals & F_SEAL_WRITE) ||
	    !(seals & F_SEAL_SHRINK))
		return -EBADMSG;
	map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	im->buf = map;
	im->len = im->cap = st.st_size;
	im->mapped = true;
	return 0;
}

void image_view(struct image *im, const void *data, size_t len)
{
	memset(im, 0, sizeof(*im));
	im->buf = (char *)data;
	im->len = im->cap = len;
	im->borrowed = true;
}

void image_free(struct image *im)
{
	if (im->borrowed)
		;
	else if (im->mapped)
		munmap(im->buf, im->cap);
	else
		free(im->buf);
	memset(im, 0, sizeof(*im));
}
