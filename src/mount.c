/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nsmounts.h"
#include "util.h"

void mount_options_init(struct mount_options *o)
{
	memset(o, 0, sizeof(*o));
	o->flags = MS_NOSUID | MS_NODEV;
}

void mount_options_free(struct mount_options *o)
{
	free(o->fsname);
	free(o->subtype);
	o->fsname = o->subtype = NULL;
}

/* Flag options: name, MS_* bit, and whether the option sets or clears it. */
static const struct {
	const char *name;
	unsigned long flag;
	bool set;
} flag_opts[] = {
	{ "ro", MS_RDONLY, true },    { "rw", MS_RDONLY, false },
	{ "nosuid", MS_NOSUID, true }, { "suid", MS_NOSUID, false },
	{ "nodev", MS_NODEV, true },  { "dev", MS_NODEV, false },
	{ "noexec", MS_NOEXEC, true }, { "exec", MS_NOEXEC, false },
	{ "noatime", MS_NOATIME, true }, { "sync", MS_SYNCHRONOUS, true },
};

static int set_string(char **dst, const char *val, const char *opt, char *err, size_t errlen)
{
	if (!*val || strchr(val, ' ') || strchr(val, '\\')) {
		snprintf(err, errlen, "-o %s: the value must be non-empty, without blanks", opt);
		return -EINVAL;
	}
	free(*dst);
	*dst = strdup(val);
	return *dst ? 0 : -ENOMEM;
}

/* @seen: flag options given so far in this -o, to catch contradictions such as ro,rw. */
static int parse_one(struct mount_options *o, char *opt, unsigned long *seen, bool *seen_set,
		     char *err, size_t errlen)
{
	char *val = strchr(opt, '=');

	if (val)
		*val++ = '\0';
	if (!val) {
		for (size_t i = 0; i < ARRAY_SIZE(flag_opts); i++) {
			if (strcmp(opt, flag_opts[i].name))
				continue;
			for (size_t j = 0; j < ARRAY_SIZE(flag_opts); j++) {
				if (j != i && flag_opts[j].flag == flag_opts[i].flag &&
				    (*seen & flag_opts[i].flag) && seen_set[j]) {
					snprintf(err, errlen, "conflicting mount options '%s' and '%s'",
						 flag_opts[j].name, opt);
					return -EINVAL;
				}
			}
			*seen |= flag_opts[i].flag;
			seen_set[i] = true;
			if (flag_opts[i].set)
				o->flags |= flag_opts[i].flag;
			else
				o->flags &= ~flag_opts[i].flag;
			return 0;
		}
		if (!strcmp(opt, "allow_other")) {
			o->allow_other = true;
			return 0;
		}
		if (!strcmp(opt, "default_permissions")) {
			o->default_permissions = true;
			return 0;
		}
	} else if (!strcmp(opt, "fsname")) {
		return set_string(&o->fsname, val, "fsname", err, errlen);
	} else if (!strcmp(opt, "subtype")) {
		return set_string(&o->subtype, val, "subtype", err, errlen);
	} else if (!strcmp(opt, "max_read")) {
		char *end;
		unsigned long v = strtoul(val, &end, 10);

		if (*end || !*val || v == 0 || v > (1u << 30)) {
			snprintf(err, errlen, "-o max_read=%s: expected a byte count", val);
			return -EINVAL;
		}
		o->max_read = v;
		return 0;
	}
	snprintf(err, errlen,
		 "unknown mount option '%s%s%s' (known: allow_other, default_permissions, ro, rw, "
		 "nosuid, suid, nodev, dev, noexec, exec, noatime, sync, fsname=, subtype=, "
		 "max_read=)",
		 opt, val ? "=" : "", val ? val : "");
	return -EINVAL;
}

int mount_parse_options(struct mount_options *o, const char *arg, char *err, size_t errlen)
{
	_cleanup_free_ char *copy = strdup(arg);
	bool seen_set[ARRAY_SIZE(flag_opts)] = { false };
	unsigned long seen = 0;
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		int r = parse_one(o, opt, &seen, seen_set, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

int fuse_mount_fd(const char *mountpoint, const struct mount_options *o, char *err, size_t errlen)
{
	_cleanup_close_ int fd = -1;
	char data[256], type[128];
	struct stat st;

	if (stat(mountpoint, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "mountpoint %s: %s", mountpoint, strerror(e));
		return -e;
	}
	if (o->ids_set && (o->rootmode & S_IFMT) == S_IFREG) {
		if (!S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "mountpoint %s is not a regular file", mountpoint);
			return -EINVAL;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "mountpoint %s is not a directory", mountpoint);
		return -ENOTDIR;
	}
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot open /dev/fuse: %s%s", strerror(e),
			 e == ENOENT ? " (is the fuse module loaded?)" : "");
		return -e;
	}
	/* rootmode is the root's file type; the daemon's GETATTR gives the permissions. */
	snprintf(data, sizeof(data), "fd=%d,rootmode=%o,user_id=%u,group_id=%u%s%s", fd,
		 o->ids_set ? o->rootmode & S_IFMT : (unsigned)S_IFDIR,
		 o->ids_set ? (unsigned)o->user_id : (unsigned)getuid(),
		 o->ids_set ? (unsigned)o->group_id : (unsigned)getgid(),
		 o->allow_other ? ",allow_other" : "",
		 o->default_permissions ? ",default_permissions" : "");
	if (o->max_read) {
		size_t n = strlen(data);
		snprintf(data + n, sizeof(data) - n, ",max_read=%u", o->max_read);
	}
	snprintf(type, sizeof(type), "fuse%s%s", o->subtype ? "." : "", o->subtype ? o->subtype : "");
	if (mount(o->fsname ? o->fsname : "fusekeeper", mountpoint, type, o->flags, data) < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot mount %s: %s%s", mountpoint, strerror(e),
			 e == EPERM ? " (fusekeeper must run as root)" : "");
		return -e;
	}
	return TAKE_FD(fd);
}

unsigned fuse_conn_id(const char *mountpoint)
{
	/* Not stat(2): that could send a GETATTR, which waits for a daemon not started yet. */
	struct nsm_table t;
	unsigned id = 0;

	if (nsm_read_table("/proc/self/mountinfo", &t) < 0)
		return 0;
	/* The last FUSE mount there is the topmost (mount points come unescaped: "\040"). */
	for (size_t i = 0; i < t.n; i++)
		if (t.m[i].major == 0 && !strcmp(t.m[i].point, mountpoint) &&
		    !strncmp(t.m[i].fstype, "fuse", 4))
			id = t.m[i].minor;
	nsm_table_free(&t);
	return id;
}

int fuse_abort_conn(unsigned id)
{
	char path[64];
	_cleanup_close_ int fd = -1;

	if (!id)
		return -ENOENT;
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", id);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return write(fd, "1", 1) == 1 ? 0 : -errno;
}

int fuse_unmount(const char *mountpoint)
{
	if (umount2(mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
		return -errno;
	return 0;
}
