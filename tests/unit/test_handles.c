/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The handle table: unique kernel values, translation across a restart, bounds. */
#include <errno.h>
#include <fcntl.h>

#include "handles.h"
#include "tap.h"

int main(void)
{
	struct handle_table t;
	struct handle *a, *b;
	uint64_t fh, dfh;
	int err;

	handle_table_init(&t, 3);
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
	return tap_done();
}
