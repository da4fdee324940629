/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The handle table: unique kernel values, translation across a restart, bounds. */
#include <errno.h>
#include <fcntl.h>

#include "proxy/handles.h"
#include "tap.h"

int main(void)
{
	struct handle_table t;
	struct handle *a, *b;
	uint64_t fh, dfh;
	int err;

	handle_table_init(&t, 3, 1 << 20, 1 << 20);
	fh = 0;
	a = handle_learn(&t, 10, O_RDONLY, false, &fh, &err);
	ok(a && fh == 0 && a->dfh == 0, "a daemon's handle value is kept when free");
	fh = 0;
	b = handle_learn(&t, 11, O_RDWR, false, &fh, &err);
	ok(b && fh != 0 && b->dfh == 0 && b->kfh == fh,
	   "a daemon that answers 0 twice still gives the kernel two handles");
	ok(handle_to_daemon(&t, b->kfh, &dfh) == 0 && dfh == 0, "both translate to the daemon's 0");
	ok(handle_to_daemon(&t, 12345, &dfh) == 0 && dfh == 12345,
	   "unknown handles (no OPEN support) pass unchanged");

	handle_new_epoch(&t);
	ok(handle_to_daemon(&t, a->kfh, &dfh) == -EIO, "not reopened after a restart: EIO");
	a->dfh = 77;
	a->epoch = t.epoch;
	handle_set_fresh(&t, a, true);
	ok(handle_to_daemon(&t, a->kfh, &dfh) == 0 && dfh == 77, "reopened: the new daemon's value");
	ok(t.fresh_count == 1, "a reopened handle is counted fresh");
	handle_forget(&t, a->kfh);
	ok(t.fresh_count == 0 && !handle_get(&t, 0), "closing it drops it and its fresh count");

	fh = 5;
	ok(handle_learn(&t, 12, O_RDONLY, false, &fh, &err) != NULL, "room for a second handle");
	fh = 6;
	ok(handle_learn(&t, 12, O_RDONLY, false, &fh, &err) != NULL && t.by_kfh.count == 3,
	   "and a third, the bound");
	fh = 7;
	ok(handle_learn(&t, 12, O_RDONLY, false, &fh, &err) == NULL && err == -ENFILE &&
		   t.by_kfh.count == 3,
	   "past --max-handles: ENFILE, nothing recorded");
	handle_table_free(&t);

	/* The write window: acknowledged writes kept until a sync covers them, bounded. */
	struct msg *w[4], *left;
	uint64_t seq;

	handle_table_init(&t, 8, 3 * (sizeof(struct msg) + MSG_SMALL),
			  5 * (sizeof(struct msg) + MSG_SMALL));
	fh = 1;
	a = handle_learn(&t, 20, O_WRONLY, false, &fh, &err);
	ok(a != NULL, "a write handle is recorded");
	if (!a)
		return tap_done();
	/* Not written yet: no window, and a sync (a FLUSH at close) has nothing to free. */
	handle_synced(&t, a, 0);
	ok(!a->win && handle_ack_seq(a) == 0 && !handle_unsynced(a) &&
		   !handle_take_window(&t, a) && t.win_total == 0,
	   "a handle never written has no window, and a sync or a take of it is harmless");
	for (int i = 0; i < 4; i++) {
		w[i] = msg_get(100);
		w[i]->len = 100;
	}
	ok(handle_keep_write(&t, a, w[0]) == NULL && handle_keep_write(&t, a, w[1]) == NULL,
	   "two acknowledged writes are kept");
	seq = a->win->ack_seq; /* an FSYNC sent now covers both */
	ok(handle_keep_write(&t, a, w[2]) == NULL && a->win->head == w[0] && a->win->tail == w[2],
	   "a third, in order");
	left = handle_keep_write(&t, a, w[3]);
	ok(left == w[3] && a->win->overflow_seq == 4 && t.win_total == a->win->bytes,
	   "past the per-handle bound: not kept, the overflow recorded");
	msg_put(left);
	handle_synced(&t, a, seq);
	ok(a->win->head == w[2] && a->win->tail == w[2] && a->win->overflow_seq == 4,
	   "a sync frees the writes it covered, and only those");
	handle_synced(&t, a, a->win->ack_seq);
	ok(!a->win->head && !a->win->tail && a->win->overflow_seq == 0 && t.win_total == 0,
	   "a sync covering the overflow forgives it");
	w[0] = msg_get(100);
	w[0]->len = 100;
	handle_keep_write(&t, a, w[0]);
	left = handle_take_window(&t, a);
	ok(left == w[0] && !a->win->head && t.win_total == 0, "taking the window empties it");
	handle_put_window(&t, a, left);
	ok(a->win->head == w[0] && t.win_total == a->win->bytes && a->win->bytes > 0,
	   "putting it back restores it");
	handle_set_write_lost(&t, a, true);
	ok(t.lost_count == 1, "a handle with lost writes is counted");
	handle_forget(&t, a->kfh);
	ok(t.lost_count == 0 && t.win_total == 0, "closing it frees its window and its count");
	handle_table_free(&t);
	return tap_done();
}
