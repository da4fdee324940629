/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fkload - the workload that runs against a mount while its daemon is killed.
 *
 *   fkload MODE DIR [--progress=FILE] [--seed=N] [--threads=N] [--ops=N]
 *                   [--files=a,b,c] [--expect=STRING] [--fds=N] [--unlinked=N]
 *                   [--dump=DIR] [--entries=N]
 *
 * Modes:
 *   fd     one fd on DIR/fd-file, kept for the whole run: random pwrite + pread
 *          back against an in-memory shadow, fstat every 16 ops, full re-read at
 *          the end.  --fds=N holds N files (fd-file, fd-file.1, ...; default 1),
 *          an op going to each in turn; --unlinked=K removes the last K of them
 *          right after opening (the temp-file pattern: only the fd names them).
 *          --dump=DIR writes each named file's shadow to DIR/<its name> at the
 *          end, so that a caller can compare checksums with the store.
 *   cwd    chdir(DIR) once, then relative paths only: file create/verify/unlink,
 *          stat("."), readdir("."), mkdir/rmdir, getcwd().
 *   churn  --threads workers (default 4), each in DIR/tK: create, overwrite,
 *          rename (also onto existing names), unlink, readdir, stat and read
 *          back, every result checked against the worker's model of its dir.
 *   read   read-only: every op reads each of DIR/<--files> fully, checks it is
 *          non-empty and, with --expect, that it contains STRING.
 *   list   DIR holds exactly the --entries=N empty files e00000, e00001, ...
 *          (made by the caller; nothing changes them): every op lists DIR in
 *          full and checks the names, one op through a directory fd kept open
 *          for the whole run (rewound, then read with small getdents64 calls,
 *          so that one listing takes many READDIRs at offsets past 0), the
 *          next through a fresh opendir(3) plus an fstatat of one entry.
 *
 * Runs until SIGTERM/SIGINT (the current operation finishes, then the final
 * checks run) or until --ops operations.  Every syscall result is checked; a
 * failure or a data mismatch is counted and printed to stderr.  The last line
 * on stdout is "fkload MODE: ops=N errors=M", the one before it "fkload MODE:
 * calls=C", the number of calls on the mount whose result was checked; the
 * exit status is 0 iff M == 0, 2 for bad usage.
 *
 * --progress=FILE rewrites FILE (through FILE.tmp and rename) with the number
 * of operations done after every operation, so that a test can wait for
 * progress.  FILE must not be on the mount under test.
 *
 * SIGUSR1 pauses the run: each worker finishes its operation, makes what it
 * holds durable (fd mode fsyncs its files, so that no write waits in the
 * server's memory to be made durable), and waits; once every worker waits,
 * FILE.paused (FILE from --progress) is created.  SIGUSR2 removes it and
 * resumes.  A caller uses this to measure the server at rest.
 *
 * Signals are blocked in every thread and taken by a sigwait() thread, so a
 * stop request never interrupts a syscall on the mount (an EINTR there would
 * be indistinguishable from a fault of the filesystem).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define FD_FILE_NAME     "fd-file"
#define FD_SPAN          (4u << 20)   /* writes stay within the first 4 MiB */
#define FD_MAX_WRITE     (64u << 10)
#define CHURN_SLOTS      16
#define CHURN_MAX_SIZE   (256u << 10)
#define CWD_SLOTS        8
#define CWD_PREFIX       "fkl-"
#define MAX_THREADS      64
#define MAX_FILES        32
#define MAX_REPORTS      200          /* error lines printed before going quiet */

#define _cleanup_(f) __attribute__((cleanup(f)))

static void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)
/* Hands an fd out of a _cleanup_close_ variable. */
#define TAKE_FD(fd) ({ int _taken = (fd); (fd) = -1; _taken; })

static void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* ---- options and global state ---------------------------------------- */

static const char *opt_mode;
static const char *opt_dir;
static const char *opt_progress;
static const char *opt_expect;
static const char *opt_dump;
static unsigned opt_fds = 1;
static unsigned opt_unlinked;
static unsigned opt_entries;
static uint64_t opt_seed = 1;
static unsigned opt_threads;
static uint64_t opt_ops;               /* 0: until a signal */
static char *opt_files[MAX_FILES];
static unsigned opt_nfiles;

static atomic_bool stop_requested;
static pthread_mutex_t pause_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pause_cond = PTHREAD_COND_INITIALIZER;
static bool pause_requested;           /* under pause_lock, as the two counts */
static unsigned workers_running;       /* started and not yet done */
static unsigned workers_paused;
static atomic_uint_fast64_t ops_started; /* claimed by workers (for --ops) */
static atomic_uint_fast64_t ops_done;
static atomic_uint_fast64_t errors;
static atomic_uint_fast64_t calls;     /* calls on the mount whose result is checked */
static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned reports_printed;

/* Counts one checked call on the mount; evaluates to the call's result (errno untouched). */
#define CALL(call) (atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed), (call))

/* ---- error reporting ------------------------------------------------- */

static const char *errname(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "E?";
}

static void vreport(const char *who, const char *fmt, va_list ap)
{
	atomic_fetch_add(&errors, 1);
	pthread_mutex_lock(&report_lock);
	if (reports_printed < MAX_REPORTS) {
		fprintf(stderr, "fkload %s: %s: ", opt_mode, who);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	} else if (reports_printed == MAX_REPORTS) {
		fprintf(stderr, "fkload %s: further errors are counted, not printed\n", opt_mode);
	}
	reports_printed++;
	pthread_mutex_unlock(&report_lock);
}

/* A data or model mismatch. */
static __attribute__((format(printf, 2, 3))) void mismatch(const char *who, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(who, fmt, ap);
	va_end(ap);
}

/* A failed syscall: "OP PATH: ENAME (message)". */
static void syserr(const char *who, const char *op, const char *path, int err)
{
	mismatch(who, "%s %s: %s (%s)", op, path, errname(err), strerror(err));
}

/* ---- deterministic data ---------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t *s, uint64_t n)
{
	return n ? splitmix64(s) % n : 0;
}

static void fill_random(uint64_t *s, unsigned char *buf, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint64_t r = splitmix64(s);
		size_t n = len - i < 8 ? len - i : 8;

		memcpy(buf + i, &r, n);
		i += n;
	}
}

/* FNV-1a, 64 bit: the checksum compared against the model. */
static uint64_t checksum(const unsigned char *buf, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= buf[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static size_t first_difference(const unsigned char *a, const unsigned char *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return i;
	return len;
}

/*
 * Content of a file version: its length and bytes follow from one 64-bit key
 * (made from the file's name at creation and a version number), so the model
 * only stores the key.
 */
static size_t content_len(uint64_t key, size_t max)
{
	uint64_t s = key ^ 0x5bd1e995u;
	uint64_t r = splitmix64(&s);

	/* Mostly small files, some empty, a few large ones. */
	if (r % 16 == 0)
		return 0;
	if (r % 16 == 1)
		return (size_t)(splitmix64(&s) % (max + 1));
	return (size_t)(splitmix64(&s) % (max / 16 + 1));
}

static void content_fill(uint64_t key, unsigned char *buf, size_t len)
{
	uint64_t s = key;

	fill_random(&s, buf, len);
}

static uint64_t content_key(uint64_t name, uint64_t version)
{
	uint64_t s = name * 0x100000001b3ull ^ version;

	return splitmix64(&s);
}

/* ---- progress and op accounting -------------------------------------- */

static void write_progress(void)
{
	char tmp[PATH_MAX], line[32];
	int len;

	if (!opt_progress)
		return;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", opt_progress) >= (int)sizeof(tmp)) {
		mismatch("progress", "path too long: %s", opt_progress);
		return;
	}

	pthread_mutex_lock(&progress_lock);
	{
		_cleanup_close_ int fd = -1;

		/* Read under the lock, so the file never goes backwards. */
		len = snprintf(line, sizeof(line), "%" PRIuFAST64 "\n", atomic_load(&ops_done));
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			syserr("progress", "open", tmp, errno);
		else if (write(fd, line, (size_t)len) != len)
			syserr("progress", "write", tmp, errno);
		else if (rename(tmp, opt_progress) < 0)
			syserr("progress", "rename", opt_progress, errno);
	}
	pthread_mutex_unlock(&progress_lock);
}

/* Creates (or removes) FILE.paused; called under pause_lock. */
static void mark_paused(bool paused)
{
	char path[PATH_MAX];
	int fd;

	if (!opt_progress || snprintf(path, sizeof(path), "%s.paused", opt_progress) >= (int)sizeof(path))
		return;
	if (!paused) {
		if (unlink(path) < 0 && errno != ENOENT)
			syserr("pause", "unlink", path, errno);
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		syserr("pause", "open", path, errno);
	else
		close(fd);
}

/*
 * Claims the next operation; false when the run is over.  While a pause is asked for,
 * runs QUIESCE(ARG) (if any) and waits for the resume.
 */
static bool op_begin_q(void (*quiesce)(void *), void *arg)
{
	pthread_mutex_lock(&pause_lock);
	if (pause_requested && !atomic_load(&stop_requested)) {
		pthread_mutex_unlock(&pause_lock);
		if (quiesce)
			quiesce(arg);
		pthread_mutex_lock(&pause_lock);
		workers_paused++;
		if (pause_requested && workers_paused == workers_running)
			mark_paused(true);
		while (pause_requested && !atomic_load(&stop_requested))
			pthread_cond_wait(&pause_cond, &pause_lock);
		workers_paused--;
	}
	if (atomic_load(&stop_requested) ||
	    (opt_ops && atomic_fetch_add(&ops_started, 1) >= opt_ops)) {
		workers_running--;
		pthread_mutex_unlock(&pause_lock);
		return false;
	}
	pthread_mutex_unlock(&pause_lock);
	return true;
}

static bool op_begin(void)
{
	return op_begin_q(NULL, NULL);
}

static void op_end(void)
{
	atomic_fetch_add(&ops_done, 1);
	write_progress();
}

/* ---- small I/O helpers (return 0 or -errno; short counts are mismatches) - */

static int write_all(int fd, const unsigned char *buf, size_t len, uint64_t *rs)
{
	size_t done = 0;

	/* Chunked so that one file is written by several FUSE_WRITEs. */
	while (done < len) {
		size_t n = len - done;
		ssize_t r;

		if (rs && n > 1)
			n = 1 + rnd_below(rs, n);
		r = CALL(write(fd, buf + done, n));
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return 0;
}

/* Reads up to max bytes until EOF; returns the length or -errno. */
static ssize_t read_upto(int fd, unsigned char *buf, size_t max)
{
	size_t done = 0;

	while (done < max) {
		ssize_t r = CALL(read(fd, buf + done, max - done));

		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* Checks that buf holds exactly the content of key. */
static void verify_content(const char *who, const char *path, uint64_t key,
			   const unsigned char *buf, size_t len, unsigned char *scratch)
{
	size_t want = content_len(key, CHURN_MAX_SIZE);

	if (len != want) {
		mismatch(who, "read %s: %zu bytes, expected %zu", path, len, want);
		return;
	}
	content_fill(key, scratch, want);
	if (checksum(buf, len) != checksum(scratch, want))
		mismatch(who, "read %s: checksum %016" PRIx64 ", expected %016" PRIx64
			 " (first difference at byte %zu)", path, checksum(buf, len),
			 checksum(scratch, want), first_difference(buf, scratch, len));
}

/* ---- fd mode ---------------------------------------------------------- */

static int fd_pread_all(int fd, unsigned char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = CALL(pread(fd, buf + done, len - done, off + (off_t)done));

		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA; /* reported as a short read */
		done += (size_t)r;
	}
	return 0;
}

/* Reloads the shadow from the file; returns the new size (the old one on failure). */
static size_t fd_resync(int fd, unsigned char *shadow, size_t size)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || st.st_size < 0 || (size_t)st.st_size > FD_SPAN)
		return size;
	memset(shadow, 0, FD_SPAN);
	if (fd_pread_all(fd, shadow, (size_t)st.st_size, 0) < 0)
		return size;
	return (size_t)st.st_size;
}

/* One file of fd mode: its fd, kept for the whole run, and what it must hold. */
struct fd_file {
	char path[PATH_MAX];
	char name[32];
	int fd;
	bool unlinked;        /* removed after opening: only the fd names it */
	unsigned char *shadow;
	size_t size;
};

/* One op on F: a random pwrite, read back, sometimes an older region, fstat, fdatasync. */
static void fd_op(struct fd_file *f, uint64_t n, uint64_t *rs, unsigned char *wbuf,
		  unsigned char *rbuf)
{
	const char *who = "fd";
	uint64_t before = atomic_load(&errors);
	size_t len = 1 + rnd_below(rs, FD_MAX_WRITE);
	off_t off = (off_t)rnd_below(rs, FD_SPAN - len + 1);
	struct stat st;
	ssize_t w;
	int r;

	fill_random(rs, wbuf, len);
	w = CALL(pwrite(f->fd, wbuf, len, off));
	if (w < 0 || (size_t)w != len) {
		if (w < 0) {
			syserr(who, "pwrite", f->path, errno);
		} else {
			/* Say why: the rest, written again, fails with the error that cut it. */
			ssize_t w2 = pwrite(f->fd, wbuf + w, len - w, off + w);

			mismatch(who, "pwrite %s: %zd of %zu bytes at %jd (the rest: %s)", f->path,
				 w, len, (intmax_t)off, w2 < 0 ? strerror(errno) : "written");
		}
		goto out;
	}
	memcpy(f->shadow + off, wbuf, len);
	if ((size_t)off + len > f->size)
		f->size = (size_t)off + len;

	r = fd_pread_all(f->fd, rbuf, len, off);
	if (r == -ENODATA)
		mismatch(who, "pread %s: short read at %jd+%zu", f->path, (intmax_t)off, len);
	else if (r < 0)
		syserr(who, "pread", f->path, -r);
	else if (memcmp(rbuf, wbuf, len) != 0)
		mismatch(who, "pread %s: data at %jd+%zu differs from what was written"
			 " (first difference at +%zu)", f->path, (intmax_t)off, len,
			 first_difference(rbuf, wbuf, len));

	/* Also check an older region: a lost or misdirected write shows here. */
	if (n % 4 == 0 && f->size > 0) {
		size_t clen = 1 + rnd_below(rs, f->size < FD_MAX_WRITE ? f->size : FD_MAX_WRITE);
		off_t coff = (off_t)rnd_below(rs, f->size - clen + 1);

		r = fd_pread_all(f->fd, rbuf, clen, coff);
		if (r == -ENODATA)
			mismatch(who, "pread %s: short read at %jd+%zu", f->path, (intmax_t)coff, clen);
		else if (r < 0)
			syserr(who, "pread", f->path, -r);
		else if (memcmp(rbuf, f->shadow + coff, clen) != 0)
			mismatch(who, "pread %s: data at %jd+%zu differs from the shadow"
				 " (first difference at +%zu)", f->path, (intmax_t)coff, clen,
				 first_difference(rbuf, f->shadow + coff, clen));
	}
	if (n % 16 == 0) {
		if (CALL(fstat(f->fd, &st)) < 0)
			syserr(who, "fstat", f->path, errno);
		else if ((size_t)st.st_size != f->size)
			mismatch(who, "fstat %s: st_size %jd, expected %zu", f->path,
				 (intmax_t)st.st_size, f->size);
		else if (f->unlinked && st.st_nlink != 0)
			mismatch(who, "fstat %s (removed): st_nlink %ju, expected 0", f->path,
				 (uintmax_t)st.st_nlink);
	}
	if (n % 64 == 0 && CALL(fdatasync(f->fd)) < 0)
		syserr(who, "fdatasync", f->path, errno);
out:
	/* After a failure, take the file as it now is, so one fault is one error. */
	if (atomic_load(&errors) != before)
		f->size = fd_resync(f->fd, f->shadow, f->size);
}

/* Writes what F must hold to opt_dump/<its name> (not on the mount). */
static void fd_dump(struct fd_file *f)
{
	char path[PATH_MAX + 40];
	_cleanup_close_ int fd = -1;
	int r;

	snprintf(path, sizeof(path), "%s/%s", opt_dump, f->name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		syserr("fd", "dump: open", path, errno);
		return;
	}
	if ((r = write_all(fd, f->shadow, f->size, NULL)) < 0)
		syserr("fd", "dump: write", path, -r);
	if (close(TAKE_FD(fd)) < 0)
		syserr("fd", "dump: close", path, errno);
}

/*
 * The final check of F: flush, drop the cached pages so the read goes to the daemon,
 * then compare the whole file with the shadow.
 */
static void fd_final(struct fd_file *f, unsigned char *rbuf)
{
	const char *who = "fd";
	size_t got = 0;
	struct stat st;
	int r;

	if (CALL(fsync(f->fd)) < 0)
		syserr(who, "fsync", f->path, errno);
	r = CALL(posix_fadvise(f->fd, 0, 0, POSIX_FADV_DONTNEED));
	if (r != 0)
		syserr(who, "posix_fadvise", f->path, r);
	if (CALL(fstat(f->fd, &st)) < 0)
		syserr(who, "fstat", f->path, errno);
	else if ((size_t)st.st_size != f->size)
		mismatch(who, "final fstat %s: st_size %jd, expected %zu", f->path,
			 (intmax_t)st.st_size, f->size);

	for (;;) {
		ssize_t rd = CALL(pread(f->fd, rbuf + got, FD_SPAN + 1 - got, (off_t)got));

		if (rd < 0) {
			syserr(who, "final pread", f->path, errno);
			return;
		}
		got += (size_t)rd;
		if (rd == 0 || got == FD_SPAN + 1)
			break;
	}
	if (got != f->size)
		mismatch(who, "final read %s: %zu bytes, expected %zu", f->path, got, f->size);
	else if (checksum(rbuf, got) != checksum(f->shadow, f->size))
		mismatch(who, "final read %s: checksum %016" PRIx64 ", expected %016" PRIx64
			 " (first difference at byte %zu)", f->path, checksum(rbuf, got),
			 checksum(f->shadow, f->size), first_difference(rbuf, f->shadow, f->size));
}

struct fd_set_of_files {
	struct fd_file *files;
	unsigned count;
};

/* Before a pause: every held file made durable, so the server keeps no write of ours. */
static void fd_quiesce(void *arg)
{
	struct fd_set_of_files *set = arg;

	for (unsigned i = 0; i < set->count; i++)
		if (CALL(fsync(set->files[i].fd)) < 0)
			syserr("fd", "fsync", set->files[i].path, errno);
}

static void *run_fd(void *arg __attribute__((unused)))
{
	const char *who = "fd";
	_cleanup_free_ struct fd_file *files = calloc(opt_fds, sizeof(*files));
	_cleanup_free_ unsigned char *wbuf = malloc(FD_MAX_WRITE);
	_cleanup_free_ unsigned char *rbuf = malloc(FD_SPAN + 1);
	uint64_t rs = opt_seed;
	uint64_t n = 0;
	unsigned i, opened = 0;

	if (!files || !wbuf || !rbuf) {
		mismatch(who, "out of memory");
		return NULL;
	}
	for (opened = 0; opened < opt_fds; opened++) {
		struct fd_file *f = &files[opened];

		if (opened == 0)
			snprintf(f->name, sizeof(f->name), "%s", FD_FILE_NAME);
		else
			snprintf(f->name, sizeof(f->name), "%s.%u", FD_FILE_NAME, opened);
		snprintf(f->path, sizeof(f->path), "%s/%s", opt_dir, f->name);
		f->shadow = calloc(1, FD_SPAN);
		if (!f->shadow) {
			mismatch(who, "out of memory");
			goto out;
		}
		f->fd = CALL(open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
		if (f->fd < 0) {
			syserr(who, "open", f->path, errno);
			free(f->shadow);
			goto out;
		}
		if (opened >= opt_fds - opt_unlinked) {
			if (CALL(unlink(f->path)) < 0)
				syserr(who, "unlink", f->path, errno);
			f->unlinked = true;
		}
	}

	while (op_begin_q(fd_quiesce, &(struct fd_set_of_files){ files, opened })) {
		fd_op(&files[n % opt_fds], n / opt_fds, &rs, wbuf, rbuf);
		n++;
		op_end();
	}

	for (i = 0; i < opened; i++) {
		fd_final(&files[i], rbuf);
		if (opt_dump && !files[i].unlinked)
			fd_dump(&files[i]);
	}
out:
	for (i = 0; i < opened; i++) {
		if (CALL(close(files[i].fd)) < 0)
			syserr(who, "close", files[i].path, errno);
		free(files[i].shadow);
	}
	return NULL;
}

/* ---- cwd mode --------------------------------------------------------- */

struct cwd_model {
	uint64_t key[CWD_SLOTS];  /* content key of fkl-pN */
	bool present[CWD_SLOTS];
	bool subdir;              /* fkl-d exists */
};

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Lists the entries of DIRP (skipping "." and "..", and names not starting
 * with PREFIX when it is non-NULL) into a sorted, NULL-terminated array.
 * Returns the count or -errno.
 */
static int list_dir(const char *dirp, const char *prefix, char ***out)
{
	DIR *d = CALL(opendir(dirp));
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int err = 0;

	*out = NULL;
	if (!d)
		return -errno;
	for (;;) {
		errno = 0;
		de = CALL(readdir(d));
		if (!de) {
			err = errno;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (prefix && strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if (n + 1 >= cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 32) * sizeof(*names));

			if (!nn) {
				err = ENOMEM;
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name))) {
			err = ENOMEM;
			break;
		}
		n++;
	}
	if (CALL(closedir(d)) < 0 && !err)
		err = errno;
	if (names) {
		names[n] = NULL;
		qsort(names, n, sizeof(*names), name_cmp);
	}
	if (err) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return -err;
	}
	*out = names;
	return (int)n;
}

static void free_list(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

/* Compares a listing with the expected sorted names; reports each difference. */
static void compare_listing(const char *who, const char *dirp, char **got, int ngot,
			    char **want, int nwant)
{
	int i = 0, j = 0;

	while (i < ngot || j < nwant) {
		int c = i >= ngot ? 1 : j >= nwant ? -1 : strcmp(got[i], want[j]);

		if (c < 0)
			mismatch(who, "readdir %s: unexpected entry %s", dirp, got[i++]);
		else if (c > 0)
			mismatch(who, "readdir %s: missing entry %s", dirp, want[j++]);
		else
			i++, j++;
	}
}

/* Removes what an earlier run left (names with our prefix). */
static void cwd_reset(const char *who, struct cwd_model *m)
{
	char **names;
	int n = list_dir(".", CWD_PREFIX, &names);

	memset(m, 0, sizeof(*m));
	if (n < 0) {
		syserr(who, "readdir", ".", -n);
		return;
	}
	for (int i = 0; i < n; i++) {
		if (CALL(unlink(names[i])) < 0 && errno != ENOENT &&
		    !(errno == EISDIR && rmdir(names[i]) == 0))
			syserr(who, "cleanup", names[i], errno);
	}
	free_list(names);
}

static void *run_cwd(void *arg __attribute__((unused)))
{
	const char *who = "cwd";
	char cwd0[PATH_MAX], cwd[PATH_MAX], name[64];
	_cleanup_free_ unsigned char *buf = malloc(CHURN_MAX_SIZE + 1);
	_cleanup_free_ unsigned char *scratch = malloc(CHURN_MAX_SIZE + 1);
	struct cwd_model m;
	uint64_t rs = opt_seed, version = 0, cycle = 0;
	struct stat st;
	ssize_t len;

	if (!buf || !scratch) {
		mismatch(who, "out of memory");
		return NULL;
	}
	if (CALL(chdir(opt_dir)) < 0) {
		syserr(who, "chdir", opt_dir, errno);
		return NULL;
	}
	if (!CALL(getcwd(cwd0, sizeof(cwd0)))) {
		syserr(who, "getcwd", opt_dir, errno);
		return NULL;
	}
	cwd_reset(who, &m);

	while (op_begin()) {
		uint64_t before = atomic_load(&errors);
		unsigned op = (unsigned)rnd_below(&rs, 100);

		if (op < 30) {
			/* A whole file life: create, write, read back, verify, unlink. */
			uint64_t key = content_key(1000000 + cycle, ++version);
			size_t want = content_len(key, CHURN_MAX_SIZE);
			_cleanup_close_ int fd = -1;
			int r;

			snprintf(name, sizeof(name), CWD_PREFIX "c%" PRIu64, cycle++);
			content_fill(key, scratch, want);
			fd = CALL(open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
			if (fd < 0) {
				syserr(who, "create", name, errno);
				goto next;
			}
			if ((r = write_all(fd, scratch, want, &rs)) < 0)
				syserr(who, "write", name, -r);
			r = CALL(close(TAKE_FD(fd)));
			if (r < 0)
				syserr(who, "close", name, errno);
			fd = CALL(open(name, O_RDONLY | O_CLOEXEC));
			if (fd < 0) {
				syserr(who, "open", name, errno);
			} else {
				len = read_upto(fd, buf, CHURN_MAX_SIZE + 1);
				if (len < 0)
					syserr(who, "read", name, (int)-len);
				else
					verify_content(who, name, key, buf, (size_t)len, scratch);
			}
			if (CALL(unlink(name)) < 0)
				syserr(who, "unlink", name, errno);
		} else if (op < 55) {
			/* A persistent slot: create, verify then rewrite, or unlink. */
			unsigned s = (unsigned)rnd_below(&rs, CWD_SLOTS);

			snprintf(name, sizeof(name), CWD_PREFIX "p%u", s);
			if (m.present[s]) {
				_cleanup_close_ int fd = CALL(open(name, O_RDONLY | O_CLOEXEC));

				if (fd < 0) {
					syserr(who, "open", name, errno);
					goto next;
				}
				len = read_upto(fd, buf, CHURN_MAX_SIZE + 1);
				if (len < 0)
					syserr(who, "read", name, (int)-len);
				else
					verify_content(who, name, m.key[s], buf, (size_t)len, scratch);
				if (rnd_below(&rs, 2)) {
					if (CALL(unlink(name)) < 0)
						syserr(who, "unlink", name, errno);
					m.present[s] = false;
					goto next;
				}
			}
			{
				uint64_t key = content_key(s, ++version);
				size_t want = content_len(key, CHURN_MAX_SIZE);
				_cleanup_close_ int fd = CALL(open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
				int r;

				m.present[s] = true;
				m.key[s] = key;
				if (fd < 0) {
					syserr(who, "open", name, errno);
					goto next;
				}
				content_fill(key, scratch, want);
				if ((r = write_all(fd, scratch, want, &rs)) < 0)
					syserr(who, "write", name, -r);
				if (CALL(close(TAKE_FD(fd))) < 0)
					syserr(who, "close", name, errno);
			}
		} else if (op < 70) {
			/* stat(".") and a slot. */
			unsigned s = (unsigned)rnd_below(&rs, CWD_SLOTS);

			if (CALL(stat(".", &st)) < 0)
				syserr(who, "stat", ".", errno);
			else if (!S_ISDIR(st.st_mode))
				mismatch(who, "stat .: mode %o is not a directory", st.st_mode);
			snprintf(name, sizeof(name), CWD_PREFIX "p%u", s);
			if (CALL(stat(name, &st)) < 0) {
				if (errno != ENOENT || m.present[s])
					syserr(who, "stat", name, errno);
			} else if (!m.present[s]) {
				mismatch(who, "stat %s: exists, expected ENOENT", name);
			} else if ((size_t)st.st_size != content_len(m.key[s], CHURN_MAX_SIZE)) {
				mismatch(who, "stat %s: st_size %jd, expected %zu", name,
					 (intmax_t)st.st_size, content_len(m.key[s], CHURN_MAX_SIZE));
			}
		} else if (op < 85) {
			/* readdir(".") against the model. */
			char *want[CWD_SLOTS + 2];
			char wnames[CWD_SLOTS + 1][16];
			char **got;
			int nw = 0, ng;

			if (m.subdir) {
				snprintf(wnames[nw], sizeof(wnames[nw]), CWD_PREFIX "d");
				want[nw] = wnames[nw];
				nw++;
			}
			for (unsigned s = 0; s < CWD_SLOTS; s++) {
				if (!m.present[s])
					continue;
				snprintf(wnames[nw], sizeof(wnames[nw]), CWD_PREFIX "p%u", s);
				want[nw] = wnames[nw];
				nw++;
			}
			want[nw] = NULL;
			qsort(want, (size_t)nw, sizeof(*want), name_cmp);
			ng = list_dir(".", CWD_PREFIX, &got);
			if (ng < 0) {
				syserr(who, "readdir", ".", -ng);
				goto next;
			}
			compare_listing(who, ".", got, ng, want, nw);
			free_list(got);
		} else {
			/* The subdirectory: mkdir or rmdir, then stat it. */
			const char *d = CWD_PREFIX "d";

			if (!m.subdir) {
				if (CALL(mkdir(d, 0755)) < 0)
					syserr(who, "mkdir", d, errno);
				m.subdir = true;
				if (CALL(stat(d, &st)) < 0)
					syserr(who, "stat", d, errno);
				else if (!S_ISDIR(st.st_mode))
					mismatch(who, "stat %s: not a directory", d);
			} else {
				if (CALL(rmdir(d)) < 0)
					syserr(who, "rmdir", d, errno);
				m.subdir = false;
				if (CALL(stat(d, &st)) == 0)
					mismatch(who, "stat %s: exists after rmdir", d);
				else if (errno != ENOENT)
					syserr(who, "stat", d, errno);
			}
		}
next:
		if (!CALL(getcwd(cwd, sizeof(cwd))))
			syserr(who, "getcwd", cwd0, errno);
		else if (strcmp(cwd, cwd0) != 0)
			mismatch(who, "getcwd: %s, expected %s", cwd, cwd0);
		/* After a failure the model may be wrong: start again from empty. */
		if (atomic_load(&errors) != before)
			cwd_reset(who, &m);
		op_end();
	}
	cwd_reset(who, &m);
	return NULL;
}

/* ---- churn mode ------------------------------------------------------- */

struct churn_worker {
	pthread_t thread;
	unsigned id;
	char dir[PATH_MAX];
	char who[16];
	bool present[CHURN_SLOTS];
	uint64_t key[CHURN_SLOTS];
	uint64_t version;
	uint64_t rs;
	unsigned char *buf, *scratch;
};

static void churn_path(struct churn_worker *w, unsigned slot, char *out, size_t size)
{
	snprintf(out, size, "%s/f%02u", w->dir, slot);
}

/* Empties the worker's directory and model. */
static void churn_reset(struct churn_worker *w)
{
	char **names, path[PATH_MAX + 64];
	int n = list_dir(w->dir, NULL, &names);

	memset(w->present, 0, sizeof(w->present));
	if (n < 0) {
		syserr(w->who, "readdir", w->dir, -n);
		return;
	}
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", w->dir, names[i]);
		if (CALL(unlink(path)) < 0 && errno != ENOENT)
			syserr(w->who, "cleanup", path, errno);
	}
	free_list(names);
}

static void churn_write(struct churn_worker *w, unsigned s)
{
	char path[PATH_MAX + 8];
	uint64_t key = content_key(w->id * 100 + s, ++w->version);
	size_t len = content_len(key, CHURN_MAX_SIZE);
	_cleanup_close_ int fd = -1;
	int r;

	churn_path(w, s, path, sizeof(path));
	/* Even if something below fails, the name now exists (or the model resets). */
	w->present[s] = true;
	w->key[s] = key;
	fd = CALL(open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	if (fd < 0) {
		syserr(w->who, "open", path, errno);
		return;
	}
	content_fill(key, w->scratch, len);
	if ((r = write_all(fd, w->scratch, len, &w->rs)) < 0)
		syserr(w->who, "write", path, -r);
	if (rnd_below(&w->rs, 8) == 0 && CALL(fsync(fd)) < 0)
		syserr(w->who, "fsync", path, errno);
	if (CALL(close(TAKE_FD(fd))) < 0)
		syserr(w->who, "close", path, errno);
}

static void churn_verify(struct churn_worker *w, unsigned s)
{
	char path[PATH_MAX + 8];
	_cleanup_close_ int fd = -1;
	ssize_t len;

	churn_path(w, s, path, sizeof(path));
	fd = CALL(open(path, O_RDONLY | O_CLOEXEC));
	if (fd < 0) {
		if (errno != ENOENT || w->present[s])
			syserr(w->who, "open", path, errno);
		return;
	}
	if (!w->present[s]) {
		mismatch(w->who, "open %s: exists, expected ENOENT", path);
		return;
	}
	len = read_upto(fd, w->buf, CHURN_MAX_SIZE + 1);
	if (len < 0)
		syserr(w->who, "read", path, (int)-len);
	else
		verify_content(w->who, path, w->key[s], w->buf, (size_t)len, w->scratch);
}

static void churn_stat(struct churn_worker *w, unsigned s)
{
	char path[PATH_MAX + 8];
	struct stat st;

	churn_path(w, s, path, sizeof(path));
	if (CALL(stat(path, &st)) < 0) {
		if (errno != ENOENT || w->present[s])
			syserr(w->who, "stat", path, errno);
	} else if (!w->present[s]) {
		mismatch(w->who, "stat %s: exists, expected ENOENT", path);
	} else if (!S_ISREG(st.st_mode)) {
		mismatch(w->who, "stat %s: not a regular file (mode %o)", path, st.st_mode);
	} else if ((size_t)st.st_size != content_len(w->key[s], CHURN_MAX_SIZE)) {
		mismatch(w->who, "stat %s: st_size %jd, expected %zu", path, (intmax_t)st.st_size,
			 content_len(w->key[s], CHURN_MAX_SIZE));
	} else if (st.st_nlink != 1) {
		mismatch(w->who, "stat %s: st_nlink %ju, expected 1", path, (uintmax_t)st.st_nlink);
	}
}

static void churn_readdir(struct churn_worker *w)
{
	char wnames[CHURN_SLOTS][8], *want[CHURN_SLOTS + 1], **got;
	int nw = 0, ng;

	for (unsigned s = 0; s < CHURN_SLOTS; s++) {
		if (!w->present[s])
			continue;
		snprintf(wnames[nw], sizeof(wnames[nw]), "f%02u", s);
		want[nw] = wnames[nw];
		nw++;
	}
	want[nw] = NULL;
	ng = list_dir(w->dir, NULL, &got);
	if (ng < 0) {
		syserr(w->who, "readdir", w->dir, -ng);
		return;
	}
	compare_listing(w->who, w->dir, got, ng, want, nw);
	free_list(got);
}

static void *run_churn(void *arg)
{
	struct churn_worker *w = arg;
	char a[PATH_MAX + 8], b[PATH_MAX + 8];

	if (CALL(mkdir(w->dir, 0755)) < 0 && errno != EEXIST) {
		syserr(w->who, "mkdir", w->dir, errno);
		return NULL;
	}
	churn_reset(w);

	while (op_begin()) {
		uint64_t before = atomic_load(&errors);
		unsigned op = (unsigned)rnd_below(&w->rs, 100);
		unsigned s = (unsigned)rnd_below(&w->rs, CHURN_SLOTS);
		unsigned t = (unsigned)rnd_below(&w->rs, CHURN_SLOTS);

		if (op < 25) {
			churn_write(w, s);
		} else if (op < 40) {
			/* rename s -> t; t may exist and is then replaced. */
			if (!w->present[s] || s == t) {
				churn_write(w, s);
				goto next;
			}
			churn_path(w, s, a, sizeof(a));
			churn_path(w, t, b, sizeof(b));
			if (CALL(rename(a, b)) < 0)
				syserr(w->who, "rename", a, errno);
			w->present[t] = true;
			w->key[t] = w->key[s];
			w->present[s] = false;
		} else if (op < 50) {
			if (!w->present[s]) {
				churn_write(w, s);
				goto next;
			}
			churn_path(w, s, a, sizeof(a));
			if (CALL(unlink(a)) < 0)
				syserr(w->who, "unlink", a, errno);
			w->present[s] = false;
		} else if (op < 60) {
			churn_readdir(w);
		} else if (op < 78) {
			churn_stat(w, s);
		} else {
			churn_verify(w, s);
		}
next:
		if (atomic_load(&errors) != before)
			churn_reset(w);
		op_end();
	}
	/* The final check: the whole directory against the model. */
	churn_readdir(w);
	for (unsigned s = 0; s < CHURN_SLOTS; s++)
		churn_verify(w, s);
	return NULL;
}

/* ---- read mode -------------------------------------------------------- */

static void *run_read(void *arg)
{
	const char *who = arg;
	size_t cap = 1 << 16;
	_cleanup_free_ unsigned char *buf = malloc(cap);
	char path[PATH_MAX];

	if (!buf) {
		mismatch(who, "out of memory");
		return NULL;
	}
	while (op_begin()) {
		for (unsigned i = 0; i < opt_nfiles; i++) {
			_cleanup_close_ int fd = -1;
			size_t len = 0;

			snprintf(path, sizeof(path), "%s/%s", opt_dir, opt_files[i]);
			fd = CALL(open(path, O_RDONLY | O_CLOEXEC));
			if (fd < 0) {
				syserr(who, "open", path, errno);
				continue;
			}
			for (;;) {
				ssize_t r;

				if (len == cap) {
					unsigned char *nb = realloc(buf, cap * 2);

					if (!nb) {
						mismatch(who, "out of memory reading %s", path);
						break;
					}
					buf = nb;
					cap *= 2;
				}
				r = CALL(read(fd, buf + len, cap - len));
				if (r < 0) {
					syserr(who, "read", path, errno);
					break;
				}
				if (r == 0) {
					if (len == 0)
						mismatch(who, "read %s: empty", path);
					else if (opt_expect && !memmem(buf, len, opt_expect, strlen(opt_expect)))
						mismatch(who, "read %s: %zu bytes without \"%s\"", path, len,
							 opt_expect);
					break;
				}
				len += (size_t)r;
			}
			if (CALL(close(TAKE_FD(fd))) < 0)
				syserr(who, "close", path, errno);
		}
		op_end();
	}
	return NULL;
}

/* ---- list mode -------------------------------------------------------- */

#define LIST_STEP_BUF 1024  /* getdents64 buffer: about 30 names, far less than a READDIR */

/* The index of NAME among e00000 ... e<--entries - 1>, or -1 if it is none of them. */
static long list_index(const char *name)
{
	char *end;
	unsigned long v;

	if (name[0] != 'e' || strlen(name) != 6 || name[1] < '0' || name[1] > '9')
		return -1;
	v = strtoul(name + 1, &end, 10);
	return *end || v >= opt_entries ? -1 : (long)v;
}

/* Checks one listing's count of each expected name, then clears the counts. */
static void list_check(const char *how, unsigned *seen)
{
	unsigned missing = 0, first = 0;

	for (unsigned i = 0; i < opt_entries; i++) {
		if (seen[i] == 0 && missing++ == 0)
			first = i;
		else if (seen[i] > 1)
			mismatch("list", "%s %s: e%05u listed %u times", how, opt_dir, i, seen[i]);
	}
	if (missing)
		mismatch("list", "%s %s: %u of %u entries missing, the first e%05u", how, opt_dir,
			 missing, opt_entries, first);
	memset(seen, 0, opt_entries * sizeof(*seen));
}

/*
 * One step of the listing through the held fd: one getdents64 call.  Returns true when
 * the listing is complete (checked, and the fd rewound for the next one).
 */
static bool list_step(int dfd, unsigned *seen, bool *started)
{
	const char *how = "held-fd readdir";
	char buf[LIST_STEP_BUF] __attribute__((aligned(8)));
	ssize_t n;

	if (!*started) {
		if (CALL(lseek(dfd, 0, SEEK_SET)) < 0) {
			syserr("list", "lseek", opt_dir, errno);
			return true;
		}
		*started = true;
	}
	n = CALL(getdents64(dfd, buf, sizeof(buf)));
	if (n < 0) {
		syserr("list", "getdents64", opt_dir, errno);
		memset(seen, 0, opt_entries * sizeof(*seen));
		*started = false;
		return true;
	}
	if (n == 0) {
		list_check(how, seen);
		*started = false;
		return true;
	}
	for (ssize_t off = 0; off < n;) {
		struct dirent64 *de = (struct dirent64 *)(buf + off);
		long i;

		off += de->d_reclen;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		i = list_index(de->d_name);
		if (i < 0)
			mismatch("list", "%s %s: unexpected entry %s", how, opt_dir, de->d_name);
		else if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			mismatch("list", "%s %s: %s has type %u, not a regular file", how, opt_dir,
				 de->d_name, de->d_type);
		else
			seen[i]++;
	}
	return false;
}

/* A whole listing through a fresh opendir, and a stat of one entry. */
static void list_fresh(unsigned *seen, uint64_t *rs)
{
	char path[PATH_MAX + 16];
	char **names;
	struct stat st;
	unsigned pick = (unsigned)rnd_below(rs, opt_entries);
	int n = list_dir(opt_dir, NULL, &names);

	if (n < 0) {
		syserr("list", "readdir", opt_dir, -n);
		return;
	}
	for (int i = 0; i < n; i++) {
		long k = list_index(names[i]);

		if (k < 0)
			mismatch("list", "readdir %s: unexpected entry %s", opt_dir, names[i]);
		else
			seen[k]++;
	}
	free_list(names);
	list_check("readdir", seen);

	snprintf(path, sizeof(path), "%s/e%05u", opt_dir, pick);
	if (CALL(stat(path, &st)) < 0)
		syserr("list", "stat", path, errno);
	else if (!S_ISREG(st.st_mode) || st.st_size != 0)
		mismatch("list", "stat %s: mode %o size %jd, expected an empty file", path,
			 st.st_mode, (intmax_t)st.st_size);
}

static void *run_list(void *arg __attribute__((unused)))
{
	_cleanup_free_ unsigned *seen = calloc(opt_entries, sizeof(*seen));
	_cleanup_free_ unsigned *fresh = calloc(opt_entries, sizeof(*fresh));
	_cleanup_close_ int dfd = -1;
	uint64_t rs = opt_seed;
	bool started = false;

	if (!seen || !fresh) {
		mismatch("list", "out of memory");
		return NULL;
	}
	dfd = CALL(open(opt_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (dfd < 0) {
		syserr("list", "open", opt_dir, errno);
		return NULL;
	}
	while (op_begin()) {
		/* A listing through the held fd takes many ops, so kills land in its middle. */
		if (list_step(dfd, seen, &started))
			list_fresh(fresh, &rs);
		op_end();
	}
	if (CALL(close(TAKE_FD(dfd))) < 0)
		syserr("list", "close", opt_dir, errno);
	return NULL;
}

/* ---- main ------------------------------------------------------------- */

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	while (sigwait(set, &sig) == 0) {
		pthread_mutex_lock(&pause_lock);
		if (sig == SIGUSR1) {
			pause_requested = true;
		} else {
			if (pause_requested)
				mark_paused(false);
			pause_requested = false;
			if (sig != SIGUSR2)
				atomic_store(&stop_requested, true);
			pthread_cond_broadcast(&pause_cond);
		}
		pthread_mutex_unlock(&pause_lock);
		if (sig != SIGUSR1 && sig != SIGUSR2)
			break;
	}
	return NULL;
}

static __attribute__((noreturn)) void usage(const char *msg)
{
	if (msg)
		fprintf(stderr, "fkload: %s\n", msg);
	fprintf(stderr,
		"usage: fkload fd|cwd|churn|read|list DIR [--progress=FILE] [--seed=N] [--threads=N]\n"
		"              [--ops=N] [--files=a,b,c] [--expect=STRING] [--fds=N] [--unlinked=N]\n"
		"              [--dump=DIR] [--entries=N]\n");
	exit(2);
}

static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-') {
		fprintf(stderr, "fkload: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	int pos = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strncmp(a, "--progress=", 11)) {
			opt_progress = a + 11;
		} else if (!strncmp(a, "--seed=", 7)) {
			opt_seed = parse_u64(a + 7, "seed");
		} else if (!strncmp(a, "--threads=", 10)) {
			uint64_t t = parse_u64(a + 10, "thread count");

			if (t < 1 || t > MAX_THREADS)
				usage("--threads must be between 1 and 64");
			opt_threads = (unsigned)t;
		} else if (!strncmp(a, "--ops=", 6)) {
			opt_ops = parse_u64(a + 6, "op count");
		} else if (!strncmp(a, "--expect=", 9)) {
			opt_expect = a + 9;
		} else if (!strncmp(a, "--dump=", 7)) {
			opt_dump = a + 7;
		} else if (!strncmp(a, "--fds=", 6)) {
			uint64_t v = parse_u64(a + 6, "fd count");

			if (v < 1 || v > MAX_FILES)
				usage("--fds must be between 1 and 32");
			opt_fds = (unsigned)v;
		} else if (!strncmp(a, "--unlinked=", 11)) {
			uint64_t v = parse_u64(a + 11, "unlinked count");

			if (v > MAX_FILES)
				usage("--unlinked must be at most 32");
			opt_unlinked = (unsigned)v;
		} else if (!strncmp(a, "--entries=", 10)) {
			uint64_t v = parse_u64(a + 10, "entry count");

			if (v < 1 || v > 100000)
				usage("--entries must be between 1 and 100000");
			opt_entries = (unsigned)v;
		} else if (!strncmp(a, "--files=", 8)) {
			char *list = strdup(a + 8), *save = NULL;

			if (!list)
				usage("out of memory");
			for (char *f = strtok_r(list, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
				if (opt_nfiles == MAX_FILES)
					usage("too many --files");
				opt_files[opt_nfiles++] = f;
			}
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(NULL);
		} else if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "fkload: unknown option %s\n", a);
			usage(NULL);
		} else if (pos == 0) {
			opt_mode = a, pos++;
		} else if (pos == 1) {
			opt_dir = a, pos++;
		} else {
			usage("too many arguments");
		}
	}
	if (pos != 2)
		usage("MODE and DIR are required");
	if (strcmp(opt_mode, "fd") && strcmp(opt_mode, "cwd") && strcmp(opt_mode, "churn") &&
	    strcmp(opt_mode, "read") && strcmp(opt_mode, "list"))
		usage("MODE must be fd, cwd, churn, read or list");
	if (!strcmp(opt_mode, "read") && opt_nfiles == 0)
		usage("read mode needs --files");
	if (!strcmp(opt_mode, "list") && opt_entries == 0)
		usage("list mode needs --entries");
	if ((!strcmp(opt_mode, "fd") || !strcmp(opt_mode, "cwd") || !strcmp(opt_mode, "list")) &&
	    opt_threads > 1)
		usage("fd, cwd and list modes are single-threaded");
	if (opt_unlinked >= opt_fds && opt_unlinked)
		usage("--unlinked must be less than --fds");
	if (!opt_threads)
		opt_threads = !strcmp(opt_mode, "churn") ? 4 : 1;
}

int main(int argc, char **argv)
{
	static struct churn_worker workers[MAX_THREADS];
	static char read_who[MAX_THREADS][16];
	pthread_t threads[MAX_THREADS], sigthr;
	sigset_t set;
	unsigned n = 0;
	int r;

	parse_args(argc, argv);

	/*
	 * Block the stop signals everywhere; signal_thread takes them.  A shell
	 * starts background jobs with SIGINT ignored, and an ignored signal is
	 * discarded even while blocked, so restore the default action first.
	 */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	r = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (r == 0)
		r = pthread_create(&sigthr, NULL, signal_thread, &set);
	if (r != 0) {
		fprintf(stderr, "fkload: cannot set up signals: %s\n", strerror(r));
		return 1;
	}

	/* Counted before any starts, so that a pause waits for every one of them. */
	workers_running = !strcmp(opt_mode, "churn") || !strcmp(opt_mode, "read") ? opt_threads : 1;
	if (!strcmp(opt_mode, "fd")) {
		r = pthread_create(&threads[n++], NULL, run_fd, NULL);
	} else if (!strcmp(opt_mode, "cwd")) {
		r = pthread_create(&threads[n++], NULL, run_cwd, NULL);
	} else if (!strcmp(opt_mode, "list")) {
		r = pthread_create(&threads[n++], NULL, run_list, NULL);
	} else if (!strcmp(opt_mode, "read")) {
		for (; n < opt_threads; n++) {
			snprintf(read_who[n], sizeof(read_who[n]), "read%u", n);
			r = pthread_create(&threads[n], NULL, run_read, read_who[n]);
			if (r != 0)
				break;
		}
	} else {
		for (; n < opt_threads; n++) {
			struct churn_worker *w = &workers[n];

			w->id = n;
			w->rs = opt_seed * 1000 + n;
			snprintf(w->who, sizeof(w->who), "t%u", n);
			snprintf(w->dir, sizeof(w->dir), "%s/t%u", opt_dir, n);
			w->buf = malloc(CHURN_MAX_SIZE + 1);
			w->scratch = malloc(CHURN_MAX_SIZE + 1);
			if (!w->buf || !w->scratch) {
				r = ENOMEM;
				break;
			}
			r = pthread_create(&w->thread, NULL, run_churn, w);
			if (r != 0)
				break;
			threads[n] = w->thread;
		}
	}
	if (r != 0) {
		mismatch("main", "cannot start worker thread: %s", strerror(r));
		atomic_store(&stop_requested, true);
	}

	for (unsigned i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	/* Wake the signal thread if no signal came (--ops, or a setup failure). */
	pthread_kill(sigthr, SIGTERM);
	pthread_join(sigthr, NULL);
	for (unsigned i = 0; i < n; i++) {
		free(workers[i].buf);
		free(workers[i].scratch);
	}

	printf("fkload %s: calls=%" PRIuFAST64 "\n", opt_mode, atomic_load(&calls));
	printf("fkload %s: ops=%" PRIuFAST64 " errors=%" PRIuFAST64 "\n", opt_mode,
	       atomic_load(&ops_done), atomic_load(&errors));
	return atomic_load(&errors) == 0 ? 0 : 1;
}
