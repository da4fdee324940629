/* SPDX-License-Identifier: GPL-2.0-or-later */
/* -o option parsing: flags, values, contradictions and unknown options. */
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mount.h>

#include "mount.h"
#include "tap.h"

int main(void)
{
	struct mount_options o;
	char err[512];

	mount_options_init(&o);
	ok((o.flags & MS_NOSUID) && (o.flags & MS_NODEV), "nosuid and nodev by default");
	ok(mount_parse_options(&o, "allow_other,default_permissions,ro", err, sizeof(err)) == 0 &&
		   o.allow_other && o.default_permissions && (o.flags & MS_RDONLY),
	   "flag options are set");
	ok(mount_parse_options(&o, "fsname=lxcfs,subtype=lxcfs,max_read=131072", err,
			       sizeof(err)) == 0 &&
		   !strcmp(o.fsname, "lxcfs") && !strcmp(o.subtype, "lxcfs") && o.max_read == 131072,
	   "value options are parsed");
	ok(mount_parse_options(&o, "rw,suid,dev", err, sizeof(err)) == 0 &&
		   !(o.flags & (MS_RDONLY | MS_NOSUID | MS_NODEV)),
	   "a later -o may undo an earlier one");
	ok(mount_parse_options(&o, "ro,rw", err, sizeof(err)) == -EINVAL &&
		   strstr(err, "conflicting") && strstr(err, "ro") && strstr(err, "rw"),
	   "ro,rw in one -o is refused: %s", err);
	ok(mount_parse_options(&o, "nosuid,suid", err, sizeof(err)) == -EINVAL,
	   "nosuid,suid is refused");
	ok(mount_parse_options(&o, "ro,ro", err, sizeof(err)) == 0, "repeating an option is fine");
	ok(mount_parse_options(&o, "bogus", err, sizeof(err)) == -EINVAL && strstr(err, "bogus"),
	   "unknown options are named: %s", err);
	ok(mount_parse_options(&o, "max_read=banana", err, sizeof(err)) == -EINVAL,
	   "a bad number is refused");
	ok(mount_parse_options(&o, "fsname=", err, sizeof(err)) == -EINVAL,
	   "an empty fsname is refused");
	free(o.fsname);
	free(o.subtype);
	return tap_done();
}
