/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fkprobe - a client that times every call it makes on a mount and checks every answer against
 * the backing directory the mount's daemon serves, for the hostile-daemon test.
 *
 *   fkprobe MODE MOUNT BACKING --bound-ms=N --stop-if=FILE [--pause-ms=N]
 *
 * MOUNT serves the same tree as BACKING (read only: nothing changes it during the run). The
 * tree is read from BACKING at start: every regular file in it and in its subdirectories one
 * level down. Modes, each repeated on one file or directory drawn at random, --pause-ms apart
 * (default 20), until FILE exists:
 *
 *   stat   lstat(2) of every name: type, permissions, size and inode number must be BACKING's
 *   read   open, read whole in 64 KiB pieces, close every file; and one fd opened at start
 *          and held for the whole run, read with pread(2) at a random offset: the bytes
 *          must be BACKING's
 *   ls     opendir, readdir to the end, closedir of the top directory and each subdirectory:
 *          the names must be BACKING's
 *
 * A call may fail (the daemon broke the protocol: the keeper answers EIO); a call that succeeds
 * with an answer other than BACKING's is WRONG, and so is a call that took longer than
 * --bound-ms, success or not (SLOW). Once FILE exists, one more round covers every file (or
 * directory), and in it every call must succeed (the mount is healthy by then), the held fd's
 * included.
 *
 * The last line on stdout is "fkprobe MODE: calls=N failed=F wrong=W slow=S max_ms=M
 * final_failed=X" followed by the failures by errno; exit status 0 iff W, S and X are 0,
 * 2 for bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILES 256
#define MAX_DIRS 16
#define CHUNK (64u << 10)
#define MAX_REPORTS 100

struct file {
	char rel[256];	/* path relative to the top */
	struct stat st;
	char *data;	/* read mode: the content */
};

struct dir {
	char rel[256];	/* "" for the top */
	char **names;	/* sorted */
	size_t n;
};

static struct file files[MAX_FILES];
static size_t nfiles;
static struct dir dirs[MAX_DIRS];
static size_t ndirs;
static const char *mode, *mnt, *backing, *stop_if;
static int64_t bound_ms, pause_ms = 20;
static bool final_round;
static uint64_t calls, failed, wrong, slow, final_failed, reports, max_ms;
static uint64_t by_errno[4096];
static char *buf;

/* @a/@b (@b may be empty), in a buffer of PATH_MAX bytes; exits if it does not fit. */
static char *join(char *out, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la + lb + 2 > PATH_MAX) {
		fprintf(stderr, "fkprobe: path too long: %s/%s\n", a, b);
		exit(2);
	}
	memcpy(out, a, la);
	out[la] = '/';
	memcpy(out + la + 1, b, lb + 1);
	return out;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void __attribute__((format(printf, 1, 2))) report(const char *fmt, ...)
{
	va_list ap;

	if (reports++ >= MAX_REPORTS)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "fkprobe %s: ", mode);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Counts a call that started at @start; @ok: it succeeded. Returns @ok. */
static bool done(const char *what, const char *path, int64_t start, bool ok, int err)
{
	int64_t ms = now_ms() - start;

	calls++;
	if ((uint64_t)ms > max_ms)
		max_ms = ms;
	if (ms > bound_ms) {
		slow++;
		report("SLOW %s %s took %" PRId64 " ms (bound %" PRId64 " ms)%s%s", what, path, ms,
		       bound_ms, ok ? "" : ": ", ok ? "" : strerror(err));
	}
	if (!ok) {
		/* EIO is how the keeper answers for a broken daemon; anything else is worth a line. */
		if (err != EIO)
			report("%s %s failed: %s", what, path, strerror(err));
		failed++;
		by_errno[err > 0 && err < 4096 ? err : 0]++;
		if (final_round) {
			final_failed++;
			report("FAILED after calm: %s %s: %s", what, path, strerror(err));
		}
	}
	return ok;
}

static void __attribute__((format(printf, 1, 2))) wrong_answer(const char *fmt, ...)
{
	va_list ap;

	wrong++;
	if (reports++ >= MAX_REPORTS)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "fkprobe %s: WRONG ", mode);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads BACKING: the files, their content (read mode) and the directories' names. */
static void load_dir(const char *rel)
{
	char path[PATH_MAX];
	struct dir *d = &dirs[ndirs++];
	struct dirent *de;
	DIR *dp;

	memcpy(d->rel, rel, strlen(rel) + 1);
	join(path, backing, rel);
	dp = opendir(path);
	if (!dp) {
		fprintf(stderr, "fkprobe: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	while ((de = readdir(dp))) {
		char sub[PATH_MAX];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		d->names = realloc(d->names, (d->n + 1) * sizeof(*d->names));
		d->names[d->n++] = strdup(de->d_name);
		if (*rel)
			join(sub, rel, de->d_name);
		else
			snprintf(sub, sizeof(sub), "%s", de->d_name);
		if (strlen(sub) >= sizeof(files[0].rel))
			continue;
		join(path, backing, sub);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && !*rel && ndirs < MAX_DIRS) {
			load_dir(sub);
		} else if (S_ISREG(st.st_mode) && nfiles < MAX_FILES) {
			struct file *f = &files[nfiles++];

			memcpy(f->rel, sub, strlen(sub) + 1);
			f->st = st;
		}
	}
	closedir(dp);
	qsort(d->names, d->n, sizeof(*d->names), cmp_names);
}

static void load_content(struct file *f)
{
	char path[PATH_MAX];
	FILE *fp;

	join(path, backing, f->rel);
	f->data = malloc(f->st.st_size + 1);
	fp = fopen(path, "re");
	if (!f->data || !fp || fread(f->data, 1, f->st.st_size, fp) != (size_t)f->st.st_size) {
		fprintf(stderr, "fkprobe: cannot read %s\n", path);
		exit(2);
	}
	fclose(fp);
}

/* ---- the modes ------------------------------------------------------------------------------ */

/* Which items a round covers: one at random, or all of them in the final round. */
#define EACH(i, n) for (size_t i = final_round ? 0 : (size_t)random() % (n), \
			    i##_end = final_round ? (n) : i + 1; i < i##_end; i++)

static void round_stat(void)
{
	EACH(i, nfiles) {
		struct file *f = &files[i];
		char path[PATH_MAX];
		struct stat st;
		int64_t start = now_ms();
		int r;

		join(path, mnt, f->rel);
		r = lstat(path, &st);
		if (!done("lstat", f->rel, start, r == 0, errno))
			continue;
		if (st.st_mode != f->st.st_mode || st.st_size != f->st.st_size ||
		    st.st_ino != f->st.st_ino)
			wrong_answer("lstat %s: mode %o size %jd ino %ju, expected %o %jd %ju", f->rel,
				     st.st_mode, (intmax_t)st.st_size, (uintmax_t)st.st_ino,
				     f->st.st_mode, (intmax_t)f->st.st_size, (uintmax_t)f->st.st_ino);
	}
}

/*
 * Reads the piece of @f at @off (CHUNK bytes, or to the end) through @fd, with pread(2) if
 * @positioned, else read(2) at the fd's offset, which must be @off. A short read is a partial
 * success (the pages before one that failed) and is followed by reads of the rest; every byte
 * must be the backing file's, and an end of file before the file's end is wrong. Returns true
 * if the whole piece was read and right.
 */
static bool check_read(int fd, const struct file *f, off_t off, bool positioned)
{
	size_t want = (size_t)f->st.st_size - off < CHUNK ? (size_t)f->st.st_size - off : CHUNK;
	const char *what = positioned ? "pread" : "read";
	size_t got = 0;

	while (got < want) {
		int64_t start = now_ms();
		ssize_t n = positioned ? pread(fd, buf, want - got, off + got)
				       : read(fd, buf, want - got);

		if (!done(what, f->rel, start, n >= 0, errno))
			return false;
		if (n == 0) {
			wrong_answer("%s %s at %jd: end of file, %jd bytes before the end", what,
				     f->rel, (intmax_t)(off + got), (intmax_t)(f->st.st_size - off - got));
			return false;
		}
		if (memcmp(buf, f->data + off + got, n)) {
			wrong_answer("%s %s at %jd: other bytes than the backing file's", what,
				     f->rel, (intmax_t)(off + got));
			return false;
		}
		got += n;
	}
	return true;
}

/* At the end of @f, read(2) through @fd must find the end of file. */
static void check_eof(int fd, const struct file *f)
{
	int64_t start = now_ms();
	ssize_t n = read(fd, buf, CHUNK);

	if (done("read", f->rel, start, n >= 0, errno) && n > 0)
		wrong_answer("read %s: %zd bytes past its end", f->rel, n);
}

static int held_fd = -1;
static struct file *held;

static void round_read(void)
{
	EACH(i, nfiles) {
		struct file *f = &files[i];
		char path[PATH_MAX];
		int64_t start = now_ms();
		bool whole = true;
		int fd, r;

		join(path, mnt, f->rel);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (!done("open", f->rel, start, fd >= 0, errno))
			continue;
		/* Sequentially to the end; after a failed or wrong piece the offset is unknown. */
		for (off_t off = 0; off < f->st.st_size && whole; off += CHUNK)
			whole = check_read(fd, f, off, false);
		if (whole)
			check_eof(fd, f);
		start = now_ms();
		r = close(fd);
		done("close", f->rel, start, r == 0, errno);
	}
	if (held_fd >= 0 && held->st.st_size) {
		off_t off = random() % held->st.st_size;

		/* Its pages must come from the daemon, not from the kernel's cache. */
		posix_fadvise(held_fd, 0, 0, POSIX_FADV_DONTNEED);

		check_read(held_fd, held, off, true);
		/* In the last round, the held fd reads the whole file. */
		if (final_round)
			posix_fadvise(held_fd, 0, 0, POSIX_FADV_DONTNEED);
		for (off_t o = 0; final_round && o < held->st.st_size; o += CHUNK)
			check_read(held_fd, held, o, true);
	}
}

static void list_dir(const struct dir *d)
{
	char path[PATH_MAX], **got = NULL;
	size_t n = 0;
	int64_t start = now_ms();
	struct dirent *de;
	DIR *dp;
	bool ok = true;
	int r;

	join(path, mnt, d->rel);
	dp = opendir(path);
	if (!done("opendir", d->rel, start, dp != NULL, errno))
		return;
	for (;;) {
		start = now_ms();
		errno = 0;
		de = readdir(dp);
		if (!de) {
			ok = done("readdir", d->rel, start, errno == 0, errno);
			break;
		}
		done("readdir", d->rel, start, true, 0);
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		got = realloc(got, (n + 1) * sizeof(*got));
		got[n++] = strdup(de->d_name);
	}
	start = now_ms();
	r = closedir(dp);
	done("closedir", d->rel, start, r == 0, errno);
	if (ok) {
		qsort(got, n, sizeof(*got), cmp_names);
		if (n != d->n)
			wrong_answer("listing %s: %zu names, expected %zu", d->rel, n, d->n);
		else
			for (size_t i = 0; i < n; i++)
				if (strcmp(got[i], d->names[i])) {
					wrong_answer("listing %s: '%s' where '%s' was expected",
						     d->rel, got[i], d->names[i]);
					break;
				}
	}
	for (size_t i = 0; i < n; i++)
		free(got[i]);
	free(got);
}

static void round_ls(void)
{
	EACH(i, ndirs)
		list_dir(&dirs[i]);
}

int main(int argc, char **argv)
{
	void (*round)(void);
	uint64_t rounds = 0;

	if (argc < 4)
		goto usage;
	mode = argv[1];
	mnt = argv[2];
	backing = argv[3];
	for (int i = 4; i < argc; i++) {
		if (!strncmp(argv[i], "--bound-ms=", 11))
			bound_ms = atoll(argv[i] + 11);
		else if (!strncmp(argv[i], "--pause-ms=", 11))
			pause_ms = atoll(argv[i] + 11);
		else if (!strncmp(argv[i], "--stop-if=", 10))
			stop_if = argv[i] + 10;
		else
			goto usage;
	}
	if (!bound_ms || !stop_if)
		goto usage;
	if (!strcmp(mode, "stat"))
		round = round_stat;
	else if (!strcmp(mode, "read"))
		round = round_read;
	else if (!strcmp(mode, "ls"))
		round = round_ls;
	else
		goto usage;
	buf = malloc(CHUNK);
	load_dir("");
	if (!nfiles || !buf) {
		fprintf(stderr, "fkprobe: no files under %s\n", backing);
		return 2;
	}
	srandom(getpid());
	if (round == round_read) {
		char path[PATH_MAX];

		for (size_t i = 0; i < nfiles; i++)
			load_content(&files[i]);
		/* The largest file is held: its reads go through a handle kept across restarts. */
		held = &files[0];
		for (size_t i = 1; i < nfiles; i++)
			if (files[i].st.st_size > held->st.st_size)
				held = &files[i];
		join(path, mnt, held->rel);
		held_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (held_fd < 0) {
			fprintf(stderr, "fkprobe: cannot open %s: %s\n", path, strerror(errno));
			return 2;
		}
	}
	printf("fkprobe %s: %zu files in %zu directories\n", mode, nfiles, ndirs);
	fflush(stdout);
	while (access(stop_if, F_OK) != 0) {
		round();
		rounds++;
		if (pause_ms) {
			struct timespec ts = { pause_ms / 1000, (pause_ms % 1000) * 1000000 };

			nanosleep(&ts, NULL);
		}
	}
	final_round = true;
	round();
	printf("fkprobe %s: rounds=%" PRIu64 " calls=%" PRIu64 " failed=%" PRIu64 " wrong=%" PRIu64
	       " slow=%" PRIu64 " max_ms=%" PRIu64 " final_failed=%" PRIu64, mode, rounds + 1, calls,
	       failed, wrong, slow, max_ms, final_failed);
	for (int e = 0; e < 4096; e++)
		if (by_errno[e])
			printf(" %s=%" PRIu64, e ? strerrorname_np(e) : "other", by_errno[e]);
	printf("\n");
	return wrong || slow || final_failed ? 1 : 0;
usage:
	fprintf(stderr, "usage: fkprobe stat|read|ls MOUNT BACKING --bound-ms=N --stop-if=FILE "
		"[--pause-ms=N]\n");
	return 2;
}
