/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fklock — a lock holder for fusekeeper's lock tests: it opens one file and takes and releases
 * locks on it as told, one command a line on stdin, one answer a line on stdout.
 *
 *   fklock [--in=FILE] [--holders=DIR --name=NAME] PATH
 *
 * PATH is opened O_RDWR once, at start ("open" is printed), and stays open until "close".
 * Commands come from FILE (a fifo, say) with --in, else from stdin.
 * Commands (TYPE is rd, wr or un; LEN 0 means up to the end of the file):
 *   flock sh|ex|un [nb]        flock(2), LOCK_NB with nb
 *   lock TYPE START LEN [wait] fcntl(2) F_SETLK, or F_SETLKW with wait (a POSIX lock,
 *                              owned by this process)
 *   test rd|wr START LEN       fcntl(2) F_GETLK: "unlocked", or "locked TYPE START LEN"
 *                              (LEN 0: to the end) for the first conflicting lock
 *   close                      close(2) the file (releases this process's POSIX locks and
 *                              the file's flock)
 *   quit                       exit 0
 * Each answers "ok" (or the test's result), or "error ENAME" with the errno's name.
 * A command that waits (flock without nb, lock ... wait) answers when it is granted.
 *
 * --holders=DIR: exclusive holders announce themselves, so that a test can see two processes
 * hold one exclusive lock at once. After an exclusive lock is granted (flock ex, lock wr),
 * DIR/NAME is created; if DIR holds other names then, the answer is "ok shared-with NAME...".
 * Before an unlock of the whole file (flock un, lock un 0 0) or close, DIR/NAME is removed: a
 * partial unlock leaves part of the range held.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static const char *holders, *name;

static void answer_errno(int e)
{
	const char *n = strerrorname_np(e);

	if (n)
		printf("error %s\n", n);
	else
		printf("error errno%d\n", e);
}

static int path_in_holders(char *buf, size_t size)
{
	return snprintf(buf, size, "%s/%s", holders, name) < (int)size ? 0 : -1;
}

static void unannounce(void)
{
	char path[4096];

	if (holders && path_in_holders(path, sizeof(path)) == 0)
		unlink(path);
}

/* Announces this holder; prints the answer to a granted exclusive lock. */
static void announce(void)
{
	char path[4096], others[1024] = "";
	struct dirent *de;
	DIR *d;
	int fd;

	if (!holders) {
		printf("ok\n");
		return;
	}
	if (path_in_holders(path, sizeof(path)) < 0 ||
	    (fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		printf("error holders\n");
		return;
	}
	close(fd);
	d = opendir(holders);
	if (!d) {
		printf("error holders\n");
		return;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, name))
			continue;
		if (strlen(others) + strlen(de->d_name) + 2 < sizeof(others)) {
			strcat(others, " ");
			strcat(others, de->d_name);
		}
	}
	closedir(d);
	if (others[0])
		printf("ok shared-with%s\n", others);
	else
		printf("ok\n");
}

static int lock_type(const char *s)
{
	if (!strcmp(s, "rd"))
		return F_RDLCK;
	if (!strcmp(s, "wr"))
		return F_WRLCK;
	if (!strcmp(s, "un"))
		return F_UNLCK;
	return -1;
}

static const char *type_name(int type)
{
	return type == F_RDLCK ? "rd" : type == F_WRLCK ? "wr" : "un";
}

static void do_flock(int fd, const char *how, const char *nb)
{
	int op = !strcmp(how, "sh") ? LOCK_SH : !strcmp(how, "ex") ? LOCK_EX : LOCK_UN;

	if (nb && !strcmp(nb, "nb"))
		op |= LOCK_NB;
	if (op & LOCK_UN)
		unannounce();
	if (flock(fd, op) < 0) {
		answer_errno(errno);
		return;
	}
	if ((op & ~LOCK_NB) == LOCK_EX)
		announce();
	else
		printf("ok\n");
}

static void do_lock(int fd, int type, long long start, long long len, bool wait)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };

	if (type == F_UNLCK && start == 0 && len == 0)
		unannounce();
	if (fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl) < 0) {
		answer_errno(errno);
		return;
	}
	if (type == F_WRLCK)
		announce();
	else
		printf("ok\n");
}

static void do_test(int fd, int type, long long start, long long len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };

	if (fcntl(fd, F_GETLK, &fl) < 0) {
		answer_errno(errno);
		return;
	}
	if (fl.l_type == F_UNLCK)
		printf("unlocked\n");
	else
		printf("locked %s %lld %lld\n", type_name(fl.l_type), (long long)fl.l_start,
		       (long long)fl.l_len);
}

int main(int argc, char **argv)
{
	char line[256];
	const char *path = NULL, *in = NULL;
	int fd;

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--holders=", 10))
			holders = argv[i] + 10;
		else if (!strncmp(argv[i], "--name=", 7))
			name = argv[i] + 7;
		else if (!strncmp(argv[i], "--in=", 5))
			in = argv[i] + 5;
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else
			path = NULL, i = argc;
	}
	if (!path || (holders && !name)) {
		fprintf(stderr, "usage: fklock [--in=FILE] [--holders=DIR --name=NAME] PATH\n");
		return 2;
	}
	if (in && !freopen(in, "r", stdin)) {
		fprintf(stderr, "fklock: %s: %s\n", in, strerror(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "fklock: %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("open\n");
	while (fgets(line, sizeof(line), stdin)) {
		char cmd[16] = "", a[16] = "", d[16] = "";
		long long b = 0, c = 0;
		int n, type;

		line[strcspn(line, "\n")] = '\0';
		n = sscanf(line, "%15s %15s %lld %lld %15s", cmd, a, &b, &c, d);
		if (n >= 2 && !strcmp(cmd, "flock")) {
			char nb[16] = "";

			sscanf(line, "%*s %*s %15s", nb);
			do_flock(fd, a, nb);
		} else if (n >= 4 && !strcmp(cmd, "lock") && (type = lock_type(a)) >= 0) {
			do_lock(fd, type, b, c, n == 5 && !strcmp(d, "wait"));
		} else if (n == 4 && !strcmp(cmd, "test") && (type = lock_type(a)) >= 0 &&
			   type != F_UNLCK) {
			do_test(fd, type, b, c);
		} else if (n == 1 && !strcmp(cmd, "close")) {
			unannounce();
			if (close(fd) < 0)
				answer_errno(errno);
			else
				printf("ok\n");
			fd = -1;
		} else if (n == 1 && !strcmp(cmd, "quit")) {
			return 0;
		} else {
			fprintf(stderr, "fklock: bad command: %s\n", line);
			printf("error usage\n");
		}
	}
	return 0;
}
