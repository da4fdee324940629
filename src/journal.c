/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define JOURNAL_MAGIC 0x314c4e524a4b4655ULL /* "UFKJRNL1" */

/* Address space each memfd is mapped with: the file grows inside it, the mapping never moves. */
#define JOURNAL_RESERVE (16ULL << 30)

/* The file grows by at least this much at a time. */
#define JOURNAL_GROW (4u << 20)

struct journal_header {
	uint64_t magic;
	uint32_t format;     /* IMAGE_FORMAT of the base */
	uint32_t pad;
	uint64_t base_len;   /* bytes of the base, right after this header */
	uint64_t generation; /* stored last: 0 while the base is being written; the memfd with
				the larger one is current */
	uint64_t mark;	     /* journal_set_mark()'s word, kept outside the records */
};

/* A record's head: its length (of the whole record, head and padding included; stored last),
 * kind and payload's length. The payload follows. */
struct journal_rec {
	uint32_t len;
	uint32_t kind;
	uint32_t payload;
	uint32_t pad;
};

struct side {
	int fd;
	char *map;   /* JOURNAL_RESERVE bytes of address space */
	size_t size; /* of the file */
};

struct journal {
	struct side side[2];
	int cur;	      /* the side in use */
	uint64_t generation;  /* its generation */
	size_t start;	      /* offset of its first record */
	size_t tail;	      /* offset of its next record */
	size_t read_off;      /* journal_next()'s position */
	uint64_t mark;	      /* the last journal_set_mark() */
};

static size_t round8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static int side_map(struct side *s)
{
	struct stat st;

	if (fstat(s->fd, &st) < 0)
		return -errno;
	s->size = st.st_size;
	s->map = mmap(NULL, JOURNAL_RESERVE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		      s->fd, 0);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		return -errno;
	}
	return 0;
}

/* Makes @s's file at least @need bytes (and what lies past its old end zeros). */
static int side_grow(struct side *s, size_t need)
{
	size_t size;

	if (need <= s->size)
		return 0;
	if (need > JOURNAL_RESERVE)
		return -ENOSPC;
	size = MIN(MAX(need + JOURNAL_GROW, s->size * 2), (size_t)JOURNAL_RESERVE);
	size = (size + 4095) & ~(size_t)4095;
	if (ftruncate(s->fd, size) < 0)
		return -errno;
	s->size = size;
	return 0;
}

static struct journal_header *header(const struct journal *j, int side)
{
	return (struct journal_header *)j->side[side].map;
}

int journal_create(struct journal **jp, const char *name)
{
	struct journal *j = calloc(1, sizeof(*j));
	struct image empty = { 0 };
	int r = 0;

	if (!j)
		return -ENOMEM;
	j->side[0].fd = j->side[1].fd = -1;
	for (int i = 0; i < 2 && !r; i++) {
		j->side[i].fd = memfd_create(name, MFD_CLOEXEC);
		r = j->side[i].fd < 0 ? -errno : side_map(&j->side[i]);
	}
	/* Side 1 is rebased first: side 0 is then the one rebased into next. */
	j->cur = 0;
	if (!r)
		r = journal_rebase(j, &empty);
	if (r) {
		journal_free(j);
		return r;
	}
	*jp = j;
	return 0;
}

int journal_rebase(struct journal *j, const struct image *base)
{
	int next = 1 - j->cur;
	struct side *s = &j->side[next];
	struct journal_header *h;
	size_t start = round8(sizeof(*h) + base->len);
	int r;

	/* Empties it: its old content (an older generation) is zeros from here on. */
	if (ftruncate(s->fd, 0) < 0)
		return -errno;
	s->size = 0;
	r = side_grow(s, start + sizeof(struct journal_rec));
	if (r < 0)
		return r;
	h = header(j, next);
	h->magic = JOURNAL_MAGIC;
	h->format = IMAGE_FORMAT;
	h->base_len = base->len;
	h->mark = j->mark;
	if (base->len)
		memcpy(s->map + sizeof(*h), base->buf, base->len);
	/* The one store that makes it current. */
	__atomic_store_n(&h->generation, j->generation + 1, __ATOMIC_RELEASE);
	j->generation++;
	j->cur = next;
	j->start = j->tail = j->read_off = start;
	return 0;
}

int journal_append(struct journal *j, uint32_t kind, const void *a, size_t alen, const void *b,
		   size_t blen)
{
	struct side *s = &j->side[j->cur];
	size_t len = round8(sizeof(struct journal_rec) + alen + blen);
	struct journal_rec *rec;
	int r;

	if (!kind || alen + blen > JOURNAL_RECORD_MAX)
		return -EMSGSIZE;
	/* Room for the record and for the zero length word that ends the journal after it. */
	r = side_grow(s, j->tail + len + sizeof(*rec));
	if (r < 0)
		return r;
	rec = (struct journal_rec *)(s->map + j->tail);
	rec->kind = kind;
	rec->payload = alen + blen;
	if (alen)
		memcpy(rec + 1, a, alen);
	if (blen)
		memcpy((char *)(rec + 1) + alen, b, blen);
	__atomic_store_n(&rec->len, (uint32_t)len, __ATOMIC_RELEASE);
	j->tail += len;
	return 0;
}

size_t journal_records_size(const struct journal *j)
{
	return j->tail - j->start;
}

size_t journal_base_size(const struct journal *j)
{
	return header(j, j->cur)->base_len;
}

void journal_set_mark(struct journal *j, uint64_t mark)
{
	j->mark = mark;
	/* Both sides: the one a rebase makes current next has it already. */
	for (int i = 0; i < 2; i++)
		if (j->side[i].map && j->side[i].size >= sizeof(struct journal_header))
			__atomic_store_n(&header(j, i)->mark, mark, __ATOMIC_RELEASE);
}

uint64_t journal_mark(const struct journal *j)
{
	return j->mark;
}

void journal_fds(const struct journal *j, int fds[2])
{
	fds[0] = j->side[0].fd;
	fds[1] = j->side[1].fd;
}

/* The length of the committed record at @off of the current side, or 0 at the end. */
static size_t record_at(const struct journal *j, size_t off)
{
	const struct side *s = &j->side[j->cur];
	uint32_t len;

	if (off + sizeof(struct journal_rec) > s->size)
		return 0;
	len = __atomic_load_n(&((struct journal_rec *)(s->map + off))->len, __ATOMIC_ACQUIRE);
	/* Only a whole record inside the file counts; anything else ends the journal. */
	if (len < sizeof(struct journal_rec) || len % 8 || len > s->size - off ||
	    ((struct journal_rec *)(s->map + off))->payload > len - sizeof(struct journal_rec))
		return 0;
	return len;
}

/* Whether @side holds a whole base of this binary's format; its generation then in *@gen. */
static bool side_valid(const struct journal *j, int side, uint64_t *gen)
{
	const struct side *s = &j->side[side];
	const struct journal_header *h = header(j, side);

	if (!s->map || s->size < sizeof(*h))
		return false;
	*gen = __atomic_load_n(&h->generation, __ATOMIC_ACQUIRE);
	return *gen && h->magic == JOURNAL_MAGIC && h->format == IMAGE_FORMAT &&
	       h->base_len <= s->size - sizeof(*h);
}

int journal_open(struct journal **jp, int fd_a, int fd_b, struct image *base)
{
	struct journal *j = calloc(1, sizeof(*j));
	uint64_t gen[2] = { 0, 0 };
	bool valid[2];
	size_t len;
	int r = 0;

	if (!j) {
		if (fd_a >= 0)
			close(fd_a);
		if (fd_b >= 0)
			close(fd_b);
		return -ENOMEM;
	}
	j->side[0].fd = fd_a;
	j->side[1].fd = fd_b;
	for (int i = 0; i < 2 && !r; i++)
		if (j->side[i].fd >= 0)
			r = side_map(&j->side[i]);
	for (int i = 0; i < 2; i++)
		valid[i] = !r && side_valid(j, i, &gen[i]);
	if (r || (!valid[0] && !valid[1])) {
		journal_free(j);
		return r ?: -EBADMSG;
	}
	j->cur = valid[1] && (!valid[0] || gen[1] > gen[0]) ? 1 : 0;
	j->generation = gen[j->cur];
	j->mark = __atomic_load_n(&header(j, j->cur)->mark, __ATOMIC_ACQUIRE);
	len = header(j, j->cur)->base_len;
	memset(base, 0, sizeof(*base));
	base->buf = malloc(len ?: 1);
	if (!base->buf) {
		journal_free(j);
		return -ENOMEM;
	}
	memcpy(base->buf, j->side[j->cur].map + sizeof(struct journal_header), len);
	base->len = base->cap = len;
	j->start = j->read_off = round8(sizeof(struct journal_header) + len);
	/* Appends go on after the last whole record; what a writer killed in the middle of the
	 * next one left of it goes, so that zeros follow the last record again. */
	for (j->tail = j->start; (len = record_at(j, j->tail)); j->tail += len)
		;
	if (j->tail < j->side[j->cur].size)
		memset(j->side[j->cur].map + j->tail, 0, j->side[j->cur].size - j->tail);
	*jp = j;
	return 0;
}

int journal_next(struct journal *j, uint32_t *kind, const void **data, size_t *len)
{
	size_t n = j->read_off < j->tail ? record_at(j, j->read_off) : 0;
	const struct journal_rec *rec;

	if (!n)
		return 0;
	rec = (const struct journal_rec *)(j->side[j->cur].map + j->read_off);
	*kind = rec->kind;
	*data = rec + 1;
	*len = rec->payload;
	j->read_off += n;
	return 1;
}

void journal_void(struct journal *j)
{
	for (int i = 0; i < 2; i++)
		if (j->side[i].map && j->side[i].size >= sizeof(struct journal_header))
			__atomic_store_n(&header(j, i)->generation, 0, __ATOMIC_RELEASE);
}

void journal_free(struct journal *j)
{
	if (!j)
		return;
	for (int i = 0; i < 2; i++) {
		if (j->side[i].map)
			munmap(j->side[i].map, JOURNAL_RESERVE);
		if (j->side[i].fd >= 0)
			close(j->side[i].fd);
	}
	free(j);
}
