/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The new mount API as remount mode uses it: glibc (2.36) declares fsopen(), fsmount(),
 * open_tree(), move_mount() and mount_setattr() in <sys/mount.h>; what its headers lack is
 * defined here, from the uapi documentation.
 */
#pragma once

#include <fcntl.h>
#include <sys/mount.h>

/*
 * move_mount(2) flag of Linux 6.5 (include/uapi/linux/mount.h): mount the source beneath the
 * topmost mount of the target's mount stack, so that unmounting that top reveals the source.
 */
#ifndef MOVE_MOUNT_BENEATH
#define MOVE_MOUNT_BENEATH 0x00000200
#endif

/* Every mount attribute mount_setattr(2) can set or clear that remount mode carries over. */
#define FK_MOUNT_ATTR_FLAGS                                                                        \
	(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |              \
	 MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME | MOUNT_ATTR_NOSYMFOLLOW)
