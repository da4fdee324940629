/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Small reads of /proc (proc(5)), and ending a process known by its pid and start time.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

/* Reads up to @size - 1 bytes of the file @path into @buf, NUL-terminated. Returns the bytes
 * read, or -1 (errno set). */
ssize_t proc_read_small(const char *path, char *buf, size_t size);

/*
 * The start time of process @pid: /proc/PID/stat's field 22, in clock ticks after boot. With
 * the pid, it names one process for as long as the system runs (a pid alone may be reused).
 * Returns 0 with *@ticks set, or -ESRCH (no such process) or another -errno.
 */
int proc_start_time(pid_t pid, uint64_t *ticks);

/*
 * Makes sure the process that has pid @pid and started at @ticks (proc_start_time()) no longer
 * runs: if it still does, SIGKILLs it and waits up to @timeout_ms for its end (its zombie, if
 * it is someone's child, no longer runs either). Returns 1 when it was still running and was
 * ended, 0 when it was gone already, -ETIMEDOUT when it outlived the wait, or another -errno
 * (its start time cannot be read: it is left alone).
 */
int proc_end_process(pid_t pid, uint64_t ticks, int timeout_ms);
