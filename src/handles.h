/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The handle table: every file and directory handle the kernel holds, with its node and the flags
 * it was opened with, so that a new daemon can be asked to open it again. The kernel's handle
 * values never change; after a restart each maps to the new daemon's handle.
 * Not thread-safe: the proxy's lock protects it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "idmap.h"

struct handle {
	uint64_t kfh;	/* handle value the kernel uses */
	uint64_t dfh;	/* the daemon's handle; meaningful when epoch == table epoch */
	uint64_t node;	/* kid of the node it was opened on */
	uint32_t flags; /* open(2) flags of the OPEN, OPENDIR or CREATE request */
	uint32_t epoch; /* daemon incarnation that dfh belongs to */
	uint32_t fopen; /* FOPEN_* flags of the daemon's answer to the first open */
	uint32_t uid;	/* credentials of the opener, reused when opening it again */
	uint32_t gid;
	bool dir;	/* opened with OPENDIR */
	bool lost;	/* could not be opened again after a restart: requests get EIO */
	bool fresh;	/* reopened after a restart and not read yet: see op_info.positioned */
};

struct handle_table {
	struct idmap by_kfh;
	uint32_t epoch;
	uint64_t next_kfh;
	uint64_t max; /* bound on open handles; more fail with -ENFILE */
	uint64_t fresh_count; /* handles with fresh set: lets the relay skip the check when 0 */
};

void handle_table_init(struct handle_table *t, uint64_t max);
void handle_table_free(struct handle_table *t);

struct handle *handle_get(struct handle_table *t, uint64_t kfh);

/*
 * The current daemon opened @node with @flags and answered handle *fh. Records it and rewrites
 * *fh to the kernel's value. Returns the handle or NULL with -errno in *err.
 */
struct handle *handle_learn(struct handle_table *t, uint64_t node, uint32_t flags, bool dir,
			    uint64_t *fh, int *err);

/* The kernel closed @kfh. */
void handle_forget(struct handle_table *t, uint64_t kfh);

/*
 * The daemon's handle for the kernel's @kfh: 0, or -EIO when the handle was lost or not yet
 * reopened by the current daemon. Unknown handles (e.g. 0 from a daemon without OPEN) pass
 * unchanged.
 */
int handle_to_daemon(struct handle_table *t, uint64_t kfh, uint64_t *dfh);

/* Sets or clears h->fresh, keeping fresh_count true. */
void handle_set_fresh(struct handle_table *t, struct handle *h, bool fresh);

/* A new daemon took over: every handle must be opened again. */
void handle_new_epoch(struct handle_table *t);

/* Calls @fn for every handle. */
void handle_each(struct handle_table *t, void (*fn)(struct handle *h, void *arg), void *arg);
