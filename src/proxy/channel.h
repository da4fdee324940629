/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Proxy mode's two channel ends (channel.c): writing to /dev/fuse and sending to the current
 * daemon. Nothing here touches the tables.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy_i.h"

/* Sets @bits (MODE_EV_*) for the supervisor's mode_ops.events() and wakes it. Any thread. */
void post_event(struct proxy *p, unsigned bits);

/*
 * Writes the reply or notification @buf (@len bytes) to /dev/fuse. Returns 0 or -errno: -ENOENT
 * when the kernel no longer waits for that request (interrupted or aborted), -ENODEV when the
 * connection ended; any other error is logged.
 */
int write_kernel(struct proxy *p, const void *buf, size_t len);

/* Answers the kernel's request @unique with @err (0 or negative errno) and no body. */
void reply_kernel_err(struct proxy *p, uint64_t unique, int err);

/*
 * send_to_daemon() for a caller that holds sock_lock for reading. -EPIPE: @epoch's daemon is
 * gone.
 */
int send_held(struct proxy *p, uint32_t epoch, const void *buf, size_t len, int flags);

/*
 * Sends @buf (@len bytes) as one message to the daemon of @epoch, with send(2) @flags
 * (MSG_DONTWAIT: -EAGAIN rather than wait for room). Returns 0; -EPIPE when that daemon is gone
 * or no longer behind the socket; -EMSGSIZE when the socket took only part of it; or another
 * -errno. Takes sock_lock for reading.
 */
int send_to_daemon(struct proxy *p, uint32_t epoch, const void *buf, size_t len, int flags);

/* Sends @epoch's daemon a message (@arg: at most 64 bytes) whose reply is dropped; never waits. */
void send_orphan(struct proxy *p, uint32_t epoch, uint32_t opcode, uint64_t nodeid,
		 const void *arg, size_t arglen);

/* Tells @epoch's daemon to forget @count lookups of its node @did (nothing if @count is 0). */
void forget_in_daemon(struct proxy *p, uint32_t epoch, uint64_t did, uint64_t count);

/* Tells @epoch's daemon to close its handle @dfh of its node @did (a directory's if @dir). */
void release_in_daemon(struct proxy *p, uint32_t epoch, uint64_t did, uint64_t dfh, bool dir);
