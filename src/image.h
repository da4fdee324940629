/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The keeper's state as one byte string: written by a running keeper and read back by the
 * fusekeeper binary it executes (`fusekeeper reexec`), so that the mount, the daemon and every
 * table survive the keeper's replacement (docs/design.md, "Replacing the keeper").
 *
 * An image is the sequence of values its writer put, read back in the same order: fixed-width
 * integers in the machine's byte order (writer and reader run on the same machine), byte strings
 * with a 32-bit length, and tags that mark where a section begins so that a reader that lost its
 * place stops at once. IMAGE_FORMAT names the layout; a binary reads only its own format, and the
 * writer asks the binary on disk which format it reads before it hands its state over.
 *
 * Errors stick: after the first failed write (-ENOMEM) or read (-EBADMSG: past the end, a wrong
 * tag, a malformed value), every later call does nothing and returns zeros; the caller checks
 * image.err once at the end. Nothing here logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The layout written and read by this binary; change it with any change of what is saved. */
#define IMAGE_FORMAT 6

/* File descriptors an image may name: they stay open across the execve. */
#define IMAGE_FDS_MAX 16

struct image {
	char *buf;	/* the bytes (owned) */
	size_t len;	/* bytes written, or held for reading */
	size_t cap;	/* bytes allocated */
	size_t off;	/* read position */
	int err;	/* 0, or the first error (-errno) */
	int fds[IMAGE_FDS_MAX]; /* written: the fds image_fd() named, to keep open */
	unsigned nfds;
	bool mapped;	/* buf is a read-only mapping of a memfd (image_from_fd()) */
	bool borrowed;	/* buf is someone else's bytes, read in place (image_view()) */
};

/* Bytes of an image held elsewhere: a record of the resume journal, say. */
struct image_span {
	const void *data;
	size_t len;
};

void image_u64(struct image *im, uint64_t v);
void image_u32(struct image *im, uint32_t v);
void image_bool(struct image *im, bool v);
/* @len bytes at @data, with their length. */
void image_bytes(struct image *im, const void *data, uint32_t len);
/* A NUL-terminated string, or NULL (read back as NULL). */
void image_str(struct image *im, const char *s);
/*
 * An open file descriptor the next program inherits (its number; -1 for none). The caller of
 * execve clears FD_CLOEXEC on every fd in im->fds; image_get_fd() sets it again.
 */
void image_fd(struct image *im, int fd);
/* Marks the beginning of a section; image_expect() checks it at the same place. */
void image_tag(struct image *im, uint32_t tag);

uint64_t image_get_u64(struct image *im);
uint32_t image_get_u32(struct image *im);
bool image_get_bool(struct image *im);
/* A byte string: a pointer into the image (valid until image_free()), its length in *@len. */
const void *image_get_bytes(struct image *im, uint32_t *len);
/* A string as a new allocation (the caller frees it), or NULL when NULL was written. */
char *image_get_str(struct image *im);
/* An fd image_fd() named, checked to be open and made close-on-exec again; -1 for none. */
int image_get_fd(struct image *im);
/* Reads a tag; a different one (or none) makes the image malformed. Returns !im->err. */
bool image_expect(struct image *im, uint32_t tag);
/* Makes the image malformed (a value out of range); returns false, for `return image_bad(im)`. */
bool image_bad(struct image *im);
/* The same, for functions returning an error: returns im->err (the first error, if earlier). */
int image_fail(struct image *im);

/* Clears (@keep) or sets FD_CLOEXEC on every fd in im->fds. Returns 0 or -errno. */
int image_keep_fds(const struct image *im, bool keep);

/*
 * Puts the image in a new memfd, sealed against changes, read from its start. Returns the fd
 * (without FD_CLOEXEC: it is meant for the next program) or -errno.
 */
int image_to_memfd(const struct image *im);

/*
 * Maps the whole of @fd, an image_to_memfd() file (sealed against writes: -EBADMSG otherwise),
 * into @im for reading. Returns 0 or -errno.
 */
int image_from_fd(struct image *im, int fd);

/* Reads @len bytes at @data (not copied: they must outlive @im) as an image. */
void image_view(struct image *im, const void *data, size_t len);

void image_free(struct image *im);
