/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The journal in shared memory: records and bases read back as written, and a writer killed
 * with SIGKILL at any moment — in the middle of a record, of a rebase, of the file's growth —
 * leaves a journal that reads back as a whole base and a gap-free run of whole records.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "tap.h"

/* Record i: kind 1 + i % 7, payload i % 3000 bytes of (i & 0xff) after i itself. */
static size_t payload_of(uint64_t i, char *buf)
{
	size_t n = i % 3000;

	memcpy(buf, &i, sizeof(i));
	memset(buf + sizeof(i), (int)(i & 0xff), n);
	return sizeof(i) + n;
}

/* A base: "base" and the number of the first record after it. */
static void base_of(uint64_t first, struct image *im)
{
	memset(im, 0, sizeof(*im));
	image_u64(im, first);
	image_str(im, "base");
}

/* The writer: records for ever, with a rebase every 500. */
static void __attribute__((noreturn)) writer(struct journal *j)
{
	char buf[8 + 3000];

	for (uint64_t i = 0;; i++) {
		if (i && i % 500 == 0) {
			struct image im;

			base_of(i, &im);
			if (journal_rebase(j, &im))
				_exit(2);
			image_free(&im);
		}
		if (journal_append(j, 1 + i % 7, buf, payload_of(i, buf), NULL, 0))
			_exit(3);
	}
}

/* Reads what a killed writer left: whole, in order. Returns the number of records, or -1. */
static long check(int fd_a, int fd_b)
{
	struct journal *j;
	struct image base;
	uint64_t first, i;
	char want[8 + 3000];
	const void *data;
	uint32_t kind;
	size_t len;
	char *s;
	long n = 0;

	if (journal_open(&j, fd_a, fd_b, &base))
		return -1;
	first = image_get_u64(&base);
	s = image_get_str(&base);
	if (base.len && (base.err || !s || strcmp(s, "base"))) {
		free(s);
		image_free(&base);
		journal_free(j);
		return -1;
	}
	free(s);
	if (!base.len)
		first = 0;
	image_free(&base);
	for (i = first; journal_next(j, &kind, &data, &len); i++, n++) {
		if (kind != 1 + i % 7 || len != payload_of(i, want) || memcmp(data, want, len)) {
			journal_free(j);
			return -1;
		}
	}
	/* One more append fits after what was left. */
	if (journal_append(j, 9, "x", 1, NULL, 0) || journal_next(j, &kind, &data, &len) != 1 ||
	    kind != 9)
		n = -1;
	journal_free(j);
	return n;
}

int main(void)
{
	struct journal *j;
	struct image base, im;
	const void *data;
	uint32_t kind;
	size_t len;
	int fds[2], bad = 0, kills = 200;
	long most = 0;

	ok(journal_create(&j, "test-journal") == 0, "a journal is made");
	ok(journal_append(j, 5, "ab", 2, "cde", 3) == 0, "a record is appended");
	ok(journal_append(j, 0, "x", 1, NULL, 0) == -EMSGSIZE, "kind 0 is refused");
	journal_fds(j, fds);
	{
		struct journal *r;

		ok(journal_open(&r, dup(fds[0]), dup(fds[1]), &base) == 0 && base.len == 0,
		   "it opens again, with its empty base");
		ok(journal_next(r, &kind, &data, &len) == 1 && kind == 5 && len == 5 &&
			   !memcmp(data, "abcde", 5), "the record reads back");
		ok(journal_next(r, &kind, &data, &len) == 0, "and is the last");
		image_free(&base);
		journal_free(r);
	}
	journal_set_mark(j, 0x1234);
	base_of(42, &im);
	ok(journal_rebase(j, &im) == 0 && journal_records_size(j) == 0 &&
		   journal_base_size(j) == im.len, "a rebase drops the records");
	image_free(&im);
	{
		struct journal *r;

		ok(journal_open(&r, dup(fds[1]), dup(fds[0]), &base) == 0 &&
			   image_get_u64(&base) == 42 && journal_next(r, &kind, &data, &len) == 0,
		   "the new base is found, in either order of the fds");
		ok(journal_mark(r) == 0x1234, "the mark set before the rebase is kept across it");
		image_free(&base);
		journal_free(r);
	}
	journal_set_mark(j, 0x5678);
	{
		struct journal *r;

		ok(journal_open(&r, dup(fds[0]), dup(fds[1]), &base) == 0 &&
			   journal_mark(r) == 0x5678, "a mark set in place reads back, with no record");
		image_free(&base);
		journal_free(r);
	}
	journal_free(j);

	/* A writer killed at random moments. */
	srand(time(NULL));
	for (int k = 0; k < kills; k++) {
		pid_t pid;
		long n;

		if (journal_create(&j, "test-journal")) {
			bad++;
			continue;
		}
		journal_fds(j, fds);
		pid = fork();
		if (pid == 0)
			writer(j);
		usleep(rand() % 20000);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		n = check(dup(fds[0]), dup(fds[1]));
		if (n < 0)
			bad++;
		most = n > most ? n : most;
		journal_free(j);
	}
	ok(bad == 0, "%d writers killed at random: every journal reads back whole (%d did not; "
	   "up to %ld records after a base)", kills, bad, most);
	return tap_done();
}
