/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The lock table: POSIX range arithmetic per owner, flock locks, releases, order, lost locks. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/locks.h"
#include "tap.h"

#define TO_EOF 0x7fffffffffffffffULL /* the kernel's OFFSET_MAX */

static struct fuse_lk_in posix(uint64_t owner, uint32_t type, uint64_t start, uint64_t end)
{
	struct fuse_lk_in in = { .owner = owner, .lk = { start, end, type, 100 + (uint32_t)owner } };

	return in;
}

static struct fuse_lk_in flk(uint64_t owner, uint32_t type)
{
	struct fuse_lk_in in = posix(owner, type, 0, TO_EOF);

	in.lk_flags = FUSE_LK_FLOCK;
	return in;
}

static int by_owner_start(const void *a, const void *b)
{
	const struct lock_rec *x = *(struct lock_rec *const *)a, *y = *(struct lock_rec *const *)b;

	if (x->owner != y->owner)
		return x->owner < y->owner ? -1 : 1;
	if (x->flock != y->flock)
		return x->flock ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* @node's records as "OWNER TYPE START-END" items (F for flock, ! for lost), sorted. */
static const char *dump(const struct lock_table *t, uint64_t node)
{
	static char buf[1024];
	struct lock_rec *v[64];
	size_t n = 0, off = 0;

	for (struct lock_rec *l = lock_first(t, node); l && n < 64; l = l->next)
		v[n++] = l;
	qsort(v, n, sizeof(v[0]), by_owner_start);
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char end[24];

		if (v[i]->end == TO_EOF)
			snprintf(end, sizeof(end), "EOF");
		else
			snprintf(end, sizeof(end), "%" PRIu64, v[i]->end);
		off += snprintf(buf + off, sizeof(buf) - off, "%s%" PRIu64 "%s%s%s %" PRIu64 "-%s",
				i ? ", " : "", v[i]->owner, v[i]->flock ? "F" : "",
				v[i]->lost ? "!" : "", v[i]->type == F_RDLCK ? "r" : "w",
				v[i]->start, end);
	}
	return buf;
}

/* Applies @in to node 1 through handle 7 and checks the growth it predicted. */
static int apply(struct lock_table *t, struct fuse_lk_in in, int64_t *growth)
{
	uint64_t before = t->count;
	int r;

	*growth = lock_growth(t, 1, &in);
	r = lock_apply(t, 1, 7, &in);
	if (r == 0 && (int64_t)(t->count - before) != *growth)
		return -1000;
	return r;
}

static void is(const struct lock_table *t, const char *want, const char *what)
{
	const char *got = dump(t, 1);

	ok(!strcmp(got, want), "%s: %s", what, got);
	if (strcmp(got, want))
		printf("# expected: %s\n", want);
}

int main(void)
{
	struct lock_table t;
	struct fuse_lk_in in;
	struct lock_rec **v;
	int64_t g;
	ssize_t n;

	lock_table_init(&t, 6);

	/* ---- POSIX range arithmetic, one owner ---- */
	ok(apply(&t, posix(1, F_WRLCK, 0, 99), &g) == 0 && g == 1, "a lock adds a record");
	is(&t, "1w 0-99", "recorded");
	ok(apply(&t, posix(1, F_UNLCK, 40, 59), &g) == 0 && g == 1, "an unlock inside splits it");
	is(&t, "1w 0-39, 1w 60-99", "split in two");
	ok(apply(&t, posix(1, F_RDLCK, 30, 69), &g) == 0 && g == 1,
	   "a lock of the other type over the gap trims both neighbours");
	is(&t, "1w 0-29, 1r 30-69, 1w 70-99", "trimmed");
	ok(apply(&t, posix(1, F_WRLCK, 25, 75), &g) == 0 && g == -2,
	   "a write lock over all three merges the write locks and replaces the read lock");
	is(&t, "1w 0-99", "merged back into one");
	ok(apply(&t, posix(1, F_WRLCK, 100, 109), &g) == 0 && g == 0,
	   "an adjacent lock of the same type merges");
	is(&t, "1w 0-109", "one record");
	ok(apply(&t, posix(1, F_RDLCK, 50, 59), &g) == 0 && g == 2,
	   "a lock of another type in the middle makes three records");
	is(&t, "1w 0-49, 1r 50-59, 1w 60-109", "three");
	ok(apply(&t, posix(1, F_RDLCK, 120, 129), &g) == 0 && g == 1,
	   "a read lock apart from the others");
	ok(apply(&t, posix(1, F_RDLCK, 110, 119), &g) == 0 && g == 0,
	   "a read lock between a write lock and a read lock merges with the read lock only");
	is(&t, "1w 0-49, 1r 50-59, 1w 60-109, 1r 110-129", "merged with the read lock");

	/* ---- other owners are never changed ---- */
	ok(apply(&t, posix(2, F_RDLCK, 0, TO_EOF), &g) == 0 && g == 1,
	   "another owner's lock is recorded beside them");
	ok(apply(&t, posix(2, F_UNLCK, 0, 9), &g) == 0 && g == 0,
	   "its unlock from the start trims only its own lock");
	is(&t, "1w 0-49, 1r 50-59, 1w 60-109, 1r 110-129, 2r 10-EOF", "owner 1 untouched");
	ok(apply(&t, posix(1, F_UNLCK, 0, TO_EOF), &g) == 0 && g == -4,
	   "unlocking the whole file drops every lock of the owner");
	is(&t, "2r 10-EOF", "only owner 2's lock left");
	ok(apply(&t, posix(2, F_UNLCK, 20, 29), &g) == 0 && g == 1,
	   "a lock to the end of the file splits like any other");
	is(&t, "2r 10-19, 2r 30-EOF", "two pieces");
	ok(apply(&t, posix(3, F_UNLCK, 0, TO_EOF), &g) == 0 && g == 0 && t.count == 2,
	   "an unlock by an owner without locks changes nothing");

	/* ---- the bound ---- */
	for (uint64_t i = 0; i < 4; i++) {
		in = posix(1, F_WRLCK, 1000 + 10 * i, 1000 + 10 * i + 5);
		lock_apply(&t, 1, 7, &in);
	}
	ok(t.count == 6, "the table is full (6 records)");
	in = posix(1, F_WRLCK, 2000, 2001);
	ok(!lock_fits(&t, 1, &in), "a new lock does not fit");
	in = posix(1, F_UNLCK, 1002, 1002);
	ok(!lock_fits(&t, 1, &in), "nor an unlock that splits a lock");
	in = posix(1, F_UNLCK, 1000, 1002);
	ok(lock_fits(&t, 1, &in), "an unlock that trims a lock fits");
	in = posix(1, F_WRLCK, 1006, 1009);
	ok(lock_fits(&t, 1, &in), "a lock that merges with its owner's neighbours fits");
	in = posix(1, F_UNLCK, 1000, 1005);
	ok(lock_fits(&t, 1, &in), "an unlock that drops a lock fits");
	in = posix(1, F_UNLCK, 0, TO_EOF);
	lock_apply(&t, 1, 7, &in);

	/* ---- lock_overlaps_own: whether undoing a grant by an unlock restores the owner ---- */
	in = posix(2, F_WRLCK, 20, 29);
	ok(!lock_overlaps_own(&t, 1, &in), "owner 2 holds nothing in [20,29]");
	in = posix(2, F_WRLCK, 15, 24);
	ok(lock_overlaps_own(&t, 1, &in), "but something in [15,24]");
	in = posix(1, F_WRLCK, 15, 24);
	ok(!lock_overlaps_own(&t, 1, &in), "owner 1 holds nothing");

	/* ---- flock: one per owner and node ---- */
	ok(apply(&t, flk(9, F_RDLCK), &g) == 0 && g == 1, "a flock lock is recorded");
	ok(apply(&t, posix(9, F_WRLCK, 0, 9), &g) == 0 && g == 1,
	   "a POSIX lock of the same owner value is a lock of another kind");
	ok(apply(&t, flk(9, F_WRLCK), &g) == 0 && g == 0, "converting a flock lock replaces it");
	is(&t, "2r 10-19, 2r 30-EOF, 9Fw 0-EOF, 9w 0-9", "one flock lock, the POSIX one beside it");
	in = flk(9, F_RDLCK);
	ok(lock_overlaps_own(&t, 1, &in), "a flock request changes the owner's flock lock");
	lock_flush(&t, 1, 9);
	is(&t, "2r 10-19, 2r 30-EOF, 9Fw 0-EOF", "a FLUSH drops the owner's POSIX locks only");
	ok(apply(&t, flk(9, F_UNLCK), &g) == 0 && g == -1, "a flock unlock drops it");

	/* ---- FLUSH and RELEASE ---- */
	in = posix(4, F_WRLCK, 500, 599);
	lock_apply(&t, 2, 8, &in); /* another node */
	in = posix(5, F_WRLCK, 600, 699);
	lock_apply(&t, 1, 8, &in); /* another handle */
	lock_flush(&t, 1, 2);
	is(&t, "5w 600-699", "a FLUSH drops its owner's locks on its node");
	ok(lock_first(&t, 2) && lock_first(&t, 2)->owner == 4, "not those on another node");
	in = flk(6, F_WRLCK);
	lock_apply(&t, 1, 9, &in);
	lock_release(&t, 1, 9);
	is(&t, "5w 600-699", "a RELEASE drops what came through its handle");
	lock_release(&t, 1, 8);
	ok(!lock_first(&t, 1) && t.count == 1, "and the node's list goes with its last record");

	/* ---- the order locks are taken again in ---- */
	in = posix(1, F_WRLCK, 0, 99);
	lock_apply(&t, 1, 7, &in);
	in = flk(2, F_RDLCK);
	lock_apply(&t, 1, 7, &in);
	in = posix(1, F_UNLCK, 10, 19);
	lock_apply(&t, 1, 7, &in);
	in = posix(3, F_RDLCK, 10, 19);
	lock_apply(&t, 1, 7, &in);
	n = lock_collect(&t, &v);
	ok(n == 5 && v[0]->node == 2 && v[1]->owner == 1 && v[1]->start == 0 &&
		   v[2]->owner == 1 && v[2]->start == 20 && v[3]->owner == 2 && v[4]->owner == 3,
	   "collected in the order granted, a split lock's pieces where it was");
	ok(n == 5 && v[1]->pid == 101 && v[1]->kfh == 7 && v[1]->seq == v[2]->seq,
	   "a piece keeps its lock's pid, handle and grant");

	/* ---- lost locks ---- */
	lock_set_lost(&t, v[1]);
	lock_set_lost(&t, v[3]);
	free(v);
	is(&t, "1!w 0-9, 1w 20-99, 2F!r 0-EOF, 3r 10-19", "two marked lost");
	n = lock_collect(&t, &v);
	ok(n == 3, "lost locks are not taken again");
	free(v);
	in = posix(1, F_UNLCK, 0, TO_EOF);
	ok(lock_growth(&t, 1, &in) == -1, "nor counted as held by their owner");
	ok(t.count == 5, "but count against the bound");
	ok(lock_report_lost(&t, 1, 1) == -EIO, "the owner's next lock operation is told");
	ok(lock_report_lost(&t, 1, 1) == 0, "once");
	is(&t, "1w 20-99, 2F!r 0-EOF, 3r 10-19", "the mark is gone, the held lock stays");
	lock_release(&t, 1, 7);
	ok(t.count == 1 && !lock_first(&t, 1), "a RELEASE drops lost marks too");
	lock_table_free(&t);

	/* ---- malformed requests ---- */
	lock_table_init(&t, 10);
	in = posix(1, F_WRLCK, 10, 9);
	ok(lock_apply(&t, 1, 7, &in) == -EINVAL && lock_growth(&t, 1, &in) == 0,
	   "a range that ends before it starts is refused");
	in = posix(1, 7, 0, 9);
	ok(lock_apply(&t, 1, 7, &in) == -EINVAL && t.count == 0, "so is an unknown type");
	lock_table_free(&t);
	return tap_done();
}
