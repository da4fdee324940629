/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fkwrite - one writer streaming a file through one fd while its daemon is killed.
 *
 *   fkwrite write FILE  [--size=SIZE] [--chunk=SIZE] [--seed=N] [--progress=FILE]
 *                       [--kill-at=I[,I...] --kill-pid-file=FILE]
 *   fkwrite gen         [--size=SIZE] [--chunk=SIZE] [--seed=N]
 *   fkwrite verify FILE [--size=SIZE] [--chunk=SIZE] [--seed=N]
 *
 * SIZE takes a K, M or G suffix (powers of 1024); defaults: --size=64M,
 * --chunk=256K, --seed=1.  The content is --size bytes cut into chunks of
 * --chunk bytes; chunk I starts with the line "fkwrite chunk I seed N" and is
 * padded with bytes that follow from (seed, I), so every chunk differs from every
 * other and a misplaced or stale one can be named.
 *
 * Modes:
 *   write   opens FILE (O_WRONLY|O_CREAT|O_TRUNC) once and writes the content
 *           through that fd with write(2), one chunk per call, in order; then
 *           fsync(2), then close(2).  A write that fails ends the stream (as a
 *           copying program would) but fsync and close still run, so that every
 *           error the application would see is reported.  Prints one line per
 *           failure and then
 *               fkwrite: chunks=D/N write=RESULT fsync=RESULT close=RESULT
 *           where D is the number of chunks written, RESULT is "ok" or the errno
 *           name, and for write "ENAME@chunkI" names the chunk that failed.
 *           Exit status 0 iff every call succeeded.
 *   gen     writes the content to stdout (for a checksum to compare with).
 *   verify  compares FILE with the content: prints a line for each chunk that
 *           differs (up to 64) saying how (missing past the end, a hole of
 *           zeros, another chunk's data, short, or the first differing byte),
 *           then "fkwrite verify: K of N chunks differ (size S, expected E)".
 *           Exit status 0 iff the file is byte-exact.
 *
 * --progress=FILE rewrites FILE (through FILE.tmp and rename) with the number of
 * chunks written after each chunk, so that a test can wait for progress; FILE
 * must not be on the mount under test.
 *
 * --kill-at=I[,I...] with --kill-pid-file=FILE (write mode) makes the writer
 * kill the daemon itself at exact points of the stream, so that a test needs
 * no timing: as soon as the write(2) of chunk I (counted from 0; the list
 * strictly increasing) has returned, fkwrite reads a pid (decimal, > 1) from
 * FILE, waits until FILE holds a pid other than the one it killed last
 * (polling every 2 ms, for at most 60 s; a missing FILE counts as not yet),
 * sends that pid SIGKILL, prints
 *     fkwrite: killed pid P after chunk I
 * (flushed at once) and goes on streaming; its next write then waits in the
 * kernel for whatever the mount does about the dead daemon.  The test
 * replaces FILE atomically (a temp file and rename) with the pid to kill
 * next, once it is ready to watch that kill.  FILE must not be on the mount
 * under test.
 *
 * Bad usage, and a failure of the test's own files or of the kill handshake
 * (no new pid in time, a malformed pid, kill(2) failing), exit 2.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPORTS 64   /* differing chunks described by verify */
#define MAX_KILLS 64     /* entries of --kill-at */
#define KILL_WAIT_MS 60000 /* how long to wait for the next pid to kill */
#define KILL_POLL_MS 2   /* how often to look at --kill-pid-file meanwhile */

#define _cleanup_(f) __attribute__((cleanup(f)))

static void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* ---- options ------------------------------------------------------------ */

static const char *opt_mode;
static const char *opt_file;
static const char *opt_progress;
static uint64_t opt_size = 64u << 20;
static uint64_t opt_chunk = 256u << 10;
static uint64_t opt_seed = 1;
static const char *opt_kill_pid_file;
static uint64_t opt_kill_at[MAX_KILLS];
static size_t opt_nkills;

static const char *errname(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "E?";
}

/* ---- the content -------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t nchunks(void)
{
	return (opt_size + opt_chunk - 1) / opt_chunk;
}

static size_t chunk_len(uint64_t i)
{
	uint64_t off = i * opt_chunk;

	return (size_t)(opt_size - off < opt_chunk ? opt_size - off : opt_chunk);
}

/* Fills buf with chunk i (chunk_len(i) bytes). */
static void chunk_fill(uint64_t i, unsigned char *buf)
{
	size_t len = chunk_len(i), hl, pos;
	char head[64];
	uint64_t s = opt_seed * 0x100000001b3ull ^ (i + 1) * 0xff51afd7ed558ccdull;

	hl = (size_t)snprintf(head, sizeof(head), "fkwrite chunk %" PRIu64 " seed %" PRIu64 "\n",
			      i, opt_seed);
	for (pos = 0; pos < len; pos += 8) {
		uint64_t r = splitmix64(&s);

		memcpy(buf + pos, &r, len - pos < 8 ? len - pos : 8);
	}
	memcpy(buf, head, hl < len ? hl : len);
}

/* ---- write mode --------------------------------------------------------- */

static void write_progress(uint64_t done)
{
	char tmp[PATH_MAX], line[32];
	int len, fd;

	if (!opt_progress)
		return;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", opt_progress) >= (int)sizeof(tmp)) {
		fprintf(stderr, "fkwrite: progress path too long\n");
		exit(2);
	}
	len = snprintf(line, sizeof(line), "%" PRIu64 "\n", done);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, line, (size_t)len) != len || close(fd) < 0 ||
	    rename(tmp, opt_progress) < 0) {
		/* Not the mount under test: a failure here is the test's own. */
		fprintf(stderr, "fkwrite: progress file %s: %s\n", opt_progress, strerror(errno));
		exit(2);
	}
}

/* The pid in --kill-pid-file, or 0 while the file does not exist.  Exits 2 on
 * anything but one decimal pid > 1 (never kill(0) or kill(-1)) that is not ours. */
static pid_t read_kill_pid(void)
{
	char buf[32], *end;
	ssize_t len;
	long v;
	int fd = open(opt_kill_pid_file, O_RDONLY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		fprintf(stderr, "fkwrite: kill pid file %s: %s\n", opt_kill_pid_file, strerror(errno));
		exit(2);
	}
	len = read(fd, buf, sizeof(buf) - 1);
	if (len < 0) {
		fprintf(stderr, "fkwrite: kill pid file %s: %s\n", opt_kill_pid_file, strerror(errno));
		exit(2);
	}
	close(fd);
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	buf[len] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || buf[0] < '0' || buf[0] > '9' || *end ||
	    v <= 1 || v > INT_MAX || v == (long)getpid()) {
		fprintf(stderr, "fkwrite: kill pid file %s: not a pid to kill: '%s'\n",
			opt_kill_pid_file, buf);
		exit(2);
	}
	return (pid_t)v;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --kill-at: called right after the write of chunk i returned.  Waits for a
 * pid other than *last in --kill-pid-file and SIGKILLs it. */
static void kill_daemon(uint64_t i, pid_t *last)
{
	const struct timespec poll = { 0, KILL_POLL_MS * 1000000L };
	int64_t deadline = mono_ms() + KILL_WAIT_MS;
	pid_t pid;

	while ((pid = read_kill_pid()) == 0 || pid == *last) {
		if (mono_ms() >= deadline) {
			fprintf(stderr, "fkwrite: after chunk %" PRIu64 ": no pid to kill in %s "
				"within %d s (last killed: %d)\n", i, opt_kill_pid_file,
				KILL_WAIT_MS / 1000, (int)*last);
			exit(2);
		}
		nanosleep(&poll, NULL);
	}
	if (kill(pid, SIGKILL) < 0) {
		fprintf(stderr, "fkwrite: after chunk %" PRIu64 ": kill %d: %s\n", i, (int)pid,
			strerror(errno));
		exit(2);
	}
	*last = pid;
	printf("fkwrite: killed pid %d after chunk %" PRIu64 "\n", (int)pid, i);
	fflush(stdout);
}

/* Writes one chunk through fd, looping over short writes; 0 or an errno. */
static int write_chunk(int fd, const unsigned char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = write(fd, buf + done, len - done);

		if (r < 0)
			return errno;
		if (r == 0)
			return EIO;
		done += (size_t)r;
	}
	return 0;
}

static int run_write(void)
{
	_cleanup_free_ unsigned char *buf = malloc(opt_chunk);
	uint64_t n = nchunks(), done = 0, failed_at = 0;
	size_t next_kill = 0;
	pid_t last_killed = 0;
	int fd, werr = 0, serr = 0, cerr = 0;
	char wres[64];

	if (!buf) {
		fprintf(stderr, "fkwrite: out of memory\n");
		return 2;
	}
	write_progress(0);
	fd = open(opt_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "fkwrite: open %s: %s (%s)\n", opt_file, errname(errno),
			strerror(errno));
		printf("fkwrite: chunks=0/%" PRIu64 " open=%s\n", n, errname(errno));
		return 1;
	}
	for (uint64_t i = 0; i < n; i++) {
		chunk_fill(i, buf);
		werr = write_chunk(fd, buf, chunk_len(i));
		if (werr) {
			failed_at = i;
			fprintf(stderr, "fkwrite: write chunk %" PRIu64 " at %" PRIu64 ": %s (%s)\n", i,
				i * opt_chunk, errname(werr), strerror(werr));
			break;
		}
		/* At once: the data sshfs just acknowledged may still be on its way. */
		if (next_kill < opt_nkills && opt_kill_at[next_kill] == i)
			kill_daemon(opt_kill_at[next_kill++], &last_killed);
		write_progress(++done);
	}
	if (fsync(fd) < 0) {
		serr = errno;
		fprintf(stderr, "fkwrite: fsync %s: %s (%s)\n", opt_file, errname(serr),
			strerror(serr));
	}
	if (close(fd) < 0) {
		cerr = errno;
		fprintf(stderr, "fkwrite: close %s: %s (%s)\n", opt_file, errname(cerr),
			strerror(cerr));
	}
	if (werr)
		snprintf(wres, sizeof(wres), "%s@chunk%" PRIu64, errname(werr), failed_at);
	else
		snprintf(wres, sizeof(wres), "ok");
	printf("fkwrite: chunks=%" PRIu64 "/%" PRIu64 " write=%s fsync=%s close=%s\n", done, n,
	       wres, serr ? errname(serr) : "ok", cerr ? errname(cerr) : "ok");
	return werr || serr || cerr ? 1 : 0;
}

/* ---- gen mode ----------------------------------------------------------- */

static int run_gen(void)
{
	_cleanup_free_ unsigned char *buf = malloc(opt_chunk);
	uint64_t n = nchunks();

	if (!buf) {
		fprintf(stderr, "fkwrite: out of memory\n");
		return 2;
	}
	for (uint64_t i = 0; i < n; i++) {
		chunk_fill(i, buf);
		if (fwrite(buf, 1, chunk_len(i), stdout) != chunk_len(i)) {
			fprintf(stderr, "fkwrite: gen: write to stdout failed\n");
			return 1;
		}
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- verify mode -------------------------------------------------------- */

static bool all_zero(const unsigned char *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* Says what a chunk that is not the one expected holds instead. */
static void describe(uint64_t i, const unsigned char *got, size_t glen,
		     const unsigned char *want, size_t wlen)
{
	uint64_t other, oseed;
	size_t d;

	printf("chunk %" PRIu64 " at %" PRIu64 ": ", i, i * opt_chunk);
	if (glen == 0) {
		printf("missing (the file ends before it)\n");
		return;
	}
	if (all_zero(got, glen)) {
		printf("%s%zu zero bytes (a hole: never written)\n",
		       glen < wlen ? "short, " : "", glen);
		return;
	}
	if (sscanf((const char *)got, "fkwrite chunk %" SCNu64 " seed %" SCNu64, &other,
		   &oseed) == 2 && (other != i || oseed != opt_seed)) {
		printf("holds chunk %" PRIu64 " of seed %" PRIu64 "\n", other, oseed);
		return;
	}
	for (d = 0; d < glen && got[d] == want[d]; d++)
		;
	if (d == glen)
		printf("short: %zu of %zu bytes\n", glen, wlen);
	else
		printf("differs from byte +%zu on%s\n", d,
		       all_zero(got + d, glen - d) ? " (zeros from there: partly written)" : "");
}

static int run_verify(void)
{
	_cleanup_free_ unsigned char *want = malloc(opt_chunk);
	_cleanup_free_ unsigned char *got = malloc(opt_chunk + 1);
	_cleanup_close_ int fd = open(opt_file, O_RDONLY | O_CLOEXEC);
	uint64_t n = nchunks(), bad = 0, first_bad = 0, last_bad = 0;
	struct stat st;

	if (!want || !got) {
		fprintf(stderr, "fkwrite: out of memory\n");
		return 2;
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		printf("fkwrite verify: %s: %s\n", opt_file, strerror(errno));
		return 1;
	}
	for (uint64_t i = 0; i < n; i++) {
		size_t wlen = chunk_len(i), glen = 0;

		while (glen < wlen) {
			ssize_t r = pread(fd, got + glen, wlen - glen, (off_t)(i * opt_chunk + glen));

			if (r < 0) {
				printf("fkwrite verify: read %s at %" PRIu64 ": %s\n", opt_file,
				       i * opt_chunk + glen, strerror(errno));
				return 1;
			}
			if (r == 0)
				break;
			glen += (size_t)r;
		}
		chunk_fill(i, want);
		if (glen == wlen && memcmp(got, want, wlen) == 0)
			continue;
		got[glen] = '\0'; /* for describe()'s sscanf of the chunk's first line */
		if (bad++ < MAX_REPORTS)
			describe(i, got, glen, want, wlen);
		if (bad == 1)
			first_bad = i;
		last_bad = i;
	}
	if (bad > MAX_REPORTS)
		printf("... %" PRIu64 " more\n", bad - MAX_REPORTS);
	printf("fkwrite verify: %" PRIu64 " of %" PRIu64 " chunks differ", bad, n);
	if (bad)
		printf(" (chunks %" PRIu64 "..%" PRIu64 ")", first_bad, last_bad);
	printf(" (size %jd, expected %" PRIu64 ")\n", (intmax_t)st.st_size, opt_size);
	return bad == 0 && (uint64_t)st.st_size == opt_size ? 0 : 1;
}

/* ---- main --------------------------------------------------------------- */

static __attribute__((noreturn)) void usage(const char *msg)
{
	if (msg)
		fprintf(stderr, "fkwrite: %s\n", msg);
	fprintf(stderr,
		"usage: fkwrite write FILE [--size=SIZE] [--chunk=SIZE] [--seed=N] [--progress=FILE]\n"
		"                          [--kill-at=I[,I...] --kill-pid-file=FILE]\n"
		"       fkwrite gen [--size=SIZE] [--chunk=SIZE] [--seed=N]\n"
		"       fkwrite verify FILE [--size=SIZE] [--chunk=SIZE] [--seed=N]\n");
	exit(2);
}

/* A number with an optional K, M or G suffix. */
static uint64_t parse_size(const char *s, const char *what)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	else if (*end == 'G' || *end == 'g')
		shift = 30, end++;
	if (errno || end == s || *end || *s == '-' || v > (UINT64_MAX >> shift)) {
		fprintf(stderr, "fkwrite: bad %s: %s\n", what, s);
		exit(2);
	}
	return (uint64_t)v << shift;
}

/* --kill-at: chunk numbers, strictly increasing, separated by commas. */
static void parse_kill_at(const char *s)
{
	const char *p = s;

	opt_nkills = 0;
	for (;;) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno || end == p || *p < '0' || *p > '9' || (*end && *end != ',') ||
		    opt_nkills == MAX_KILLS || (opt_nkills && v <= opt_kill_at[opt_nkills - 1])) {
			fprintf(stderr, "fkwrite: bad --kill-at (chunk numbers, increasing, "
				"at most %d): %s\n", MAX_KILLS, s);
			exit(2);
		}
		opt_kill_at[opt_nkills++] = v;
		if (!*end)
			return;
		p = end + 1;
	}
}

static void parse_args(int argc, char **argv)
{
	int pos = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strncmp(a, "--size=", 7)) {
			opt_size = parse_size(a + 7, "size");
		} else if (!strncmp(a, "--chunk=", 8)) {
			opt_chunk = parse_size(a + 8, "chunk size");
		} else if (!strncmp(a, "--seed=", 7)) {
			opt_seed = parse_size(a + 7, "seed");
		} else if (!strncmp(a, "--progress=", 11)) {
			opt_progress = a + 11;
		} else if (!strncmp(a, "--kill-at=", 10)) {
			parse_kill_at(a + 10);
		} else if (!strncmp(a, "--kill-pid-file=", 16)) {
			opt_kill_pid_file = a + 16;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(NULL);
		} else if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "fkwrite: unknown option %s\n", a);
			usage(NULL);
		} else if (pos == 0) {
			opt_mode = a, pos++;
		} else if (pos == 1) {
			opt_file = a, pos++;
		} else {
			usage("too many arguments");
		}
	}
	if (!opt_mode)
		usage("MODE is required");
	if (strcmp(opt_mode, "write") && strcmp(opt_mode, "gen") && strcmp(opt_mode, "verify"))
		usage("MODE must be write, gen or verify");
	if (!strcmp(opt_mode, "gen") ? pos != 1 : pos != 2)
		usage(!strcmp(opt_mode, "gen") ? "gen takes no FILE" : "FILE is required");
	if (opt_chunk < 64 || opt_chunk > (1u << 30))
		usage("--chunk must be between 64 bytes and 1G");
	if (opt_progress && strcmp(opt_mode, "write"))
		usage("--progress is for write mode");
	if ((opt_nkills || opt_kill_pid_file) && strcmp(opt_mode, "write"))
		usage("--kill-at and --kill-pid-file are for write mode");
	if (!opt_nkills != !opt_kill_pid_file)
		usage("--kill-at and --kill-pid-file go together");
	if (opt_nkills && !*opt_kill_pid_file)
		usage("--kill-pid-file needs a file name");
	if (opt_nkills && opt_kill_at[opt_nkills - 1] >= nchunks())
		usage("--kill-at names a chunk past the end of the stream");
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	if (!strcmp(opt_mode, "write"))
		return run_write();
	if (!strcmp(opt_mode, "gen"))
		return run_gen();
	return run_verify();
}
