/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mountinfo parser of remount mode (nsm_parse_line): fields, octal escapes, the optional
 * fields that give the propagation type, the per-mount flags, and lines it must refuse.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

#include "nsmounts.h"
#include "tap.h"

/* Parses a copy of @text (the parser writes into its line). */
static int parse(const char *text, char *buf, size_t size, struct nsm_mount *m)
{
	snprintf(buf, size, "%s", text);
	return nsm_parse_line(buf, m);
}

int main(void)
{
	char buf[1024];
	struct nsm_mount m;
	int r;

	r = parse("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
		  buf, sizeof(buf), &m);
	ok(r == 0 && m.id == 36 && m.parent == 35 && m.major == 98 && m.minor == 0 &&
		   !strcmp(m.root, "/mnt1") && !strcmp(m.point, "/mnt2") &&
		   !strcmp(m.opts, "rw,noatime") && !strcmp(m.fstype, "ext3"),
	   "the example of proc(5) parses field by field");
	ok(r == 0 && m.prop == NSM_SLAVE && m.master == 1 && m.group == 0,
	   "master:1 is a slave of peer group 1");
	ok(r == 0 && m.attr == MOUNT_ATTR_NOATIME, "rw,noatime is MOUNT_ATTR_NOATIME alone");

	r = parse("100 29 0:52 / /tmp/with\\040blank/tab\\011nl\\012bs\\134end rw - fuse.x x rw",
		  buf, sizeof(buf), &m);
	ok(r == 0 && !strcmp(m.point, "/tmp/with blank/tab\tnl\nbs\\end"),
	   "\\040 \\011 \\012 \\134 in the mount point are decoded");
	r = parse("101 29 0:52 /sub\\040dir /a rw - fuse.x x rw", buf, sizeof(buf), &m);
	ok(r == 0 && !strcmp(m.root, "/sub dir"), "escapes in the root are decoded too");
	r = parse("102 29 0:52 / /a\\9b\\04x\\ rw - fuse.x x rw", buf, sizeof(buf), &m);
	ok(r == 0 && !strcmp(m.point, "/a\\9b\\04x\\"),
	   "a backslash that starts no octal escape stays as it is: '%s'", r ? "" : m.point);

	r = parse("1 0 0:1 / / rw shared:7 - tmpfs t rw", buf, sizeof(buf), &m);
	ok(r == 0 && m.prop == NSM_SHARED && m.group == 7 && m.master == 0,
	   "shared:7 is shared, in peer group 7");
	r = parse("1 0 0:1 / / rw shared:7 master:3 - tmpfs t rw", buf, sizeof(buf), &m);
	ok(r == 0 && m.prop == NSM_SHARED_SLAVE && m.group == 7 && m.master == 3,
	   "shared:7 master:3 is shared (group 7) and a slave (of group 3)");
	r = parse("1 0 0:1 / / rw master:3 propagate_from:2 - tmpfs t rw", buf, sizeof(buf), &m);
	ok(r == 0 && m.prop == NSM_SLAVE && !strcmp(m.fstype, "tmpfs"),
	   "propagate_from:2 after master:3 changes nothing");
	r = parse("1 0 0:1 / / rw unbindable - tmpfs t rw", buf, sizeof(buf), &m);
	ok(r == 0 && m.prop == NSM_UNBINDABLE, "unbindable");
	r = parse("1 0 0:1 / / rw - tmpfs t rw", buf, sizeof(buf), &m);
	ok(r == 0 && m.prop == NSM_PRIVATE && !m.group && !m.master,
	   "no optional field is private, in no group");
	r = parse("1 0 0:1 / / rw future:9 - tmpfs t rw", buf, sizeof(buf), &m);
	ok(r == 0 && m.prop == NSM_PRIVATE && !strcmp(m.fstype, "tmpfs"),
	   "an optional field it does not know is skipped");
	ok(!strcmp(nsm_prop_name(NSM_SHARED_SLAVE), "shared+master") &&
		   !strcmp(nsm_prop_name(NSM_SLAVE), "master") &&
		   !strcmp(nsm_prop_name(NSM_PRIVATE), "private"),
	   "propagation types are named as mountinfo names them");

	r = parse("7 1 0:60 / /p ro,nosuid,nodev,noexec,nodiratime,nosymfollow,relatime - fuse f rw",
		  buf, sizeof(buf), &m);
	ok(r == 0 && m.attr == (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
				MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODIRATIME | MOUNT_ATTR_NOSYMFOLLOW),
	   "every per-mount flag is read; relatime is the default (0)");
	r = parse("7 1 0:60 / /p rw,strictatime,nosuidx - fuse f rw", buf, sizeof(buf), &m);
	ok(r == 0 && m.attr == MOUNT_ATTR_STRICTATIME, "options are matched whole (nosuidx is no "
	   "nosuid)");

	ok(parse("", buf, sizeof(buf), &m) == -EINVAL, "an empty line is refused");
	ok(parse("36 35 98:0 /mnt1 /mnt2", buf, sizeof(buf), &m) == -EINVAL,
	   "five fields are refused");
	ok(parse("36 35 98:0 /mnt1 /mnt2 rw", buf, sizeof(buf), &m) == -EINVAL,
	   "six fields without the separator are refused");
	ok(parse("36 35 98:0 /mnt1 /mnt2 rw shared:1 ext3 /dev/root rw", buf, sizeof(buf), &m) ==
		   -EINVAL, "no '-' separator is refused");
	ok(parse("36 35 98:0 /mnt1 /mnt2 rw -", buf, sizeof(buf), &m) == -EINVAL,
	   "a separator without a filesystem type is refused");
	ok(parse("x 35 98:0 / /m rw - ext3 s rw", buf, sizeof(buf), &m) == -EINVAL,
	   "a mount ID that is no number is refused");
	ok(parse("36 35 98 / /m rw - ext3 s rw", buf, sizeof(buf), &m) == -EINVAL,
	   "a device without major:minor is refused");
	ok(parse("36 35 98:x / /m rw - ext3 s rw", buf, sizeof(buf), &m) == -EINVAL,
	   "a device with a minor that is no number is refused");
	r = parse("36 35 0:52 / /m rw - fuse.lxcfs lxcfs rw,user_id=0,group_id=0,allow_other\n",
		  buf, sizeof(buf), &m);
	ok(r == 0 && !strcmp(m.fstype, "fuse.lxcfs"), "a line with its newline parses");
	return tap_done();
}
