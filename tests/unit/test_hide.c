/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Hidden names: the name test, the state file's name, and the journal across a killed keeper. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/hidden.h"
#include "tap.h"

#define H1 ".fusekeeper.00000000000000a1"
#define H2 ".fusekeeper.00000000000000a2"
#define H3 ".fusekeeper.00000000000000a3"
#define H4 ".fusekeeper.00000000000000a4"

static bool listed(const struct hide_state *s, const char *path)
{
	for (size_t i = 0; i < s->nleftovers; i++)
		if (!strcmp(s->leftovers[i], path))
			return true;
	return false;
}

int main(void)
{
	char out[64], dir[] = "/tmp/fk-test-hide.XXXXXX", path[128];
	struct hide_state s = { .journal_fd = -1 };
	int fd;

	ok(hide_is_hidden(".fusekeeper.0123456789abcdef", 28) && !hide_is_hidden(".fuse_hidden1", 13) &&
		   !hide_is_hidden(".fusekeeper", 11) && !hide_is_hidden("x.fusekeeper.1", 14),
	   "hidden names are the ones with the prefix");

	ok(hide_escape_path("/srv/my-data/", out, sizeof(out)) == 0 &&
		   !strcmp(out, "srv-my\\x2ddata"), "a mountpoint escapes as systemd does: %s", out);
	ok(hide_escape_path("/", out, sizeof(out)) == 0 && !strcmp(out, "-"), "the root is -");
	ok(hide_escape_path("/a/.b c", out, sizeof(out)) == 0 && !strcmp(out, "a-.b\\x20c"),
	   "dots inside stay, other bytes are hex: %s", out);
	ok(hide_escape_path("/averyverylongname", out, 8) == -ENAMETOOLONG, "too long is refused");

	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	ok(hide_journal_open(&s, dir, "/mnt/x") == 0 && s.nleftovers == 0,
	   "a new journal lists nothing");
	{
		struct hide_state other = { .journal_fd = -1 };

		ok(hide_journal_open(&other, dir, "/mnt/x") == -EBUSY,
		   "a second keeper on the mountpoint does not take the journal");
		hide_state_free(&other);
	}
	hide_journal(&s, true, "d/" H1);
	hide_journal(&s, true, H2);
	hide_journal(&s, true, "e/f/" H3);
	hide_journal(&s, false, H1);
	/* Never taken for a hidden name of the keeper's, whatever a journal says. */
	hide_journal(&s, true, "../outside/" H4);
	hide_journal(&s, true, "d/./" H4);
	hide_journal(&s, true, "/abs/" H4);
	hide_journal(&s, true, "d/.fusekeeper.notahexname00000");
	hide_journal(&s, true, "d/plainfile");
	/* A keeper killed in the middle of a record. */
	ok(write(s.journal_fd, "+g/.fusek", 9) == 9, "a torn record is written");
	close(s.journal_fd); /* killed: the lock goes with it */
	s.journal_fd = -1;
	hide_state_free(&s);

	memset(&s, 0, sizeof(s));
	ok(hide_journal_open(&s, dir, "/mnt/x") == 0 && s.nleftovers == 2 && listed(&s, H2) &&
		   listed(&s, "e/f/" H3),
	   "the next keeper finds what is still listed, nothing torn or outside (%zu)",
	   s.nleftovers);
	snprintf(path, sizeof(path), "%s/mnt-x.removed", dir);
	fd = open(path, O_RDONLY);
	ok(fd >= 0 && lseek(fd, 0, SEEK_END) == (off_t)(strlen("+" H2) + 1 +
							 strlen("+e/f/" H3) + 1),
	   "the journal was rewritten with just those two records");
	close(fd);
	for (int i = 0; i < 500; i++) {
		char name[64];

		snprintf(name, sizeof(name), "d/.fusekeeper.%016x", i + 1);
		hide_journal(&s, true, name);
		hide_journal(&s, false, name + 2);
	}
	fd = open(path, O_RDONLY);
	ok(fd >= 0 && lseek(fd, 0, SEEK_END) < 8192,
	   "a journal of names that come and go does not grow (%lld bytes)",
	   (long long)lseek(fd, 0, SEEK_END));
	close(fd);
	hide_state_free(&s);
	unlink(path);
	rmdir(dir);
	return tap_done();
}
