/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The message buffers' pools (msg.c): large buffers come back for reuse up to a bound; those the
 * relay has not taken for POOL_IDLE_MS are freed down to the 16 always kept, and the ones freed
 * are those left untaken, not those in use; buffers of an earlier size never serve after
 * msg_init() changed it. The pool's clock is this test's. Large buffers are 128 KiB here.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/msg.h"
#include "tap.h"

#define KEEP 16	   /* POOL_KEEP_BIG in msg.c */
#define MAX 96	   /* POOL_MAX_BIG */
#define IDLE 10000 /* POOL_IDLE_MS */
#define CAP (128u << 10)

static int64_t now;

static int64_t test_clock(void)
{
	return now;
}

/* Takes @n large buffers into @m (NULL: its own array) and gives them back, last taken first. */
static void cycle(int n, struct msg **m)
{
	struct msg *own[MAX];

	if (!m)
		m = own;
	for (int i = 0; i < n; i++)
		m[i] = msg_get(CAP);
	for (int i = n - 1; i >= 0; i--)
		msg_put(m[i]);
}

/* Whether the next @n buffers taken are exactly @want (in any order); gives them back. */
static bool next_are(int n, struct msg **want)
{
	struct msg *got[MAX];
	int found = 0;

	for (int i = 0; i < n; i++) {
		got[i] = msg_get(CAP);
		for (int j = 0; j < n; j++)
			found += got[i] == want[j];
	}
	for (int i = n - 1; i >= 0; i--)
		msg_put(got[i]);
	return found == n;
}

int main(void)
{
	struct msg *m[MAX + 4], *used[20];

	msg_set_clock(test_clock);
	msg_init(CAP);
	for (int i = 0; i < MAX + 4; i++) {
		m[i] = msg_get(CAP);
		if (!m[i] || m[i]->cap != CAP) {
			printf("Bail out! large buffer %d was not made\n", i);
			return 1;
		}
		memset(m[i]->data, 0xa5, m[i]->cap);
	}
	ok(1, "%d large buffers are made and written whole", MAX + 4);
	for (int i = 0; i < MAX + 4; i++)
		msg_put(m[i]);
	ok(msg_big_free() == MAX, "given back, %d are kept for reuse (got %u)", MAX, msg_big_free());

	now = 2 * IDLE; /* the first period: everything was taken at some point */
	cycle(1, NULL);
	ok(msg_big_free() == MAX, "none is freed while all were in use lately (%u)", msg_big_free());
	now += IDLE / 2;
	cycle(20, used);
	now += IDLE;
	cycle(1, NULL);
	ok(msg_big_free() == MAX - (MAX - 20 - KEEP), "the %d untaken for %d ms are freed (%u left)",
	   MAX - 20 - KEEP, IDLE, msg_big_free());
	ok(next_are(20, used), "the 20 taken in that time are among those kept");
	now += IDLE;
	cycle(1, NULL);
	ok(msg_big_free() == 20 + KEEP, "a period that took 20 frees none of the %d (%u left)",
	   20 + KEEP, msg_big_free());
	now += IDLE;
	cycle(1, NULL);
	ok(msg_big_free() == KEEP + 1, "then all but %d and the one taken since (%u left)", KEEP,
	   msg_big_free());
	now += IDLE;
	cycle(1, NULL);
	ok(msg_big_free() == KEEP + 1, "the %d always kept stay (%u left)", KEEP, msg_big_free());
	cycle(30, NULL); /* in use again: the next period frees none */
	now += IDLE;
	cycle(1, NULL);
	ok(msg_big_free() == 30, "none is freed after a period that used them all (%u left)",
	   msg_big_free());
	now += IDLE - 1;
	cycle(1, NULL);
	ok(msg_big_free() == 30, "nothing is freed before %d ms (%u left)", IDLE, msg_big_free());
	now += 1;
	cycle(1, NULL);
	ok(msg_big_free() == KEEP + 1, "and the untaken ones are at %d ms (%u left)", IDLE,
	   msg_big_free());

	msg_init(2 * CAP);
	ok(msg_big_free() == 0, "a new size frees the buffers of the old one (%u left)",
	   msg_big_free());
	m[0] = msg_get(CAP + 1);
	ok(m[0] && m[0]->cap == 2 * CAP && m[0]->mapped, "a buffer of the new size is made");
	if (m[0])
		memset(m[0]->data, 0x5a, m[0]->cap);
	msg_put(m[0]);
	ok(msg_get(2 * CAP + 1) == NULL, "a message larger than the large buffers gets none");

	m[0] = msg_get(CAP);
	if (m[0]) {
		memset(m[0]->data, 1, CAP / 2);
		m[0]->len = CAP / 2;
		m[1] = msg_shrink(m[0]);
	}
	ok(m[0] && m[1] != m[0] && !m[1]->mapped && m[1]->cap == CAP / 2 && m[1]->data[0] == 1,
	   "a large buffer little used is copied into one of malloc's, its own size");
	if (m[0])
		msg_put(m[1]);
	ok(msg_big_free() == 1, "and goes back to its pool (%u there)", msg_big_free());
	return tap_done();
}
