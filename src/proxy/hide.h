/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Files removed while open (docs/design.md, "Files removed while open"). When the kernel removes
 * the last name the keeper knows of a regular file it holds open — an UNLINK, or a RENAME over
 * it — the keeper asks the daemon to rename the file to a hidden name of its own in the same
 * directory instead, as NFS clients do, so that a restarted daemon can still look it up and open
 * it, and removes that name after the kernel's last RELEASE of the file. Hidden names never show
 * to applications. A journal in the state directory lists the hidden names in use, so that a
 * keeper started after one that was killed removes what it left.
 *
 * What the relay and recovery do with hidden names (hide.c); hidden.h has the names' state and
 * their journal.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "proxy_i.h"

/* At start: the journal and its leftovers. Returns 0 (a journal that cannot be kept is logged). */
int hide_start(struct proxy *p);
/*
 * From the relay, under the lock, for an UNLINK or RENAME that removes the last known name of a
 * file the kernel holds open: renames the file to a hidden name first (the lock is let go
 * meanwhile). Returns 0 to send the request on, 1 when it is done (an UNLINK: answer success),
 * or the error to answer (-EIO).
 */
int hide_removal(struct proxy *p, struct msg *m, const struct op_info *op);
/* Under the lock: 0, or the error for a request naming a hidden name (-ENOENT, -EPERM). */
int hide_check_names(struct proxy *p, struct msg *m, const struct op_info *op);
/* A RENAME (@req, kernel IDs) failed: a hidden link made for the file it would replace goes. */
void hide_rename_failed(struct proxy *p, struct msg *req, const struct op_info *op);
/* Under the lock: the kernel released the last handle of @n; its hidden names are removed. */
void hide_released(struct proxy *p, struct node *n);
/*
 * A reply @m to an orphan request: a hidden name's LOOKUP (its UNLINK follows) or UNLINK (the
 * lookup is forgotten; the grave goes, or stays for the next daemon). Returns 0, or -EPROTO for
 * a LOOKUP's success too short to hold a node ID.
 */
int hide_call_reply(struct proxy *p, struct msg *m);
/* Recovery: asks the new daemon to remove the hidden names the old one did not. */
void hide_recover(struct proxy *p);
/*
 * A READDIR or READDIRPLUS reply about to reach the kernel: hidden names are taken out (their
 * lookups given back). Returns 1 if the request was sent again instead (the reply is dropped;
 * the request is in flight again), else 0.
 */
int hide_filter_dir(struct proxy *p, struct msg *req, struct msg *reply);
/* st_nlink in an attribute reply for a node with hidden names leaves them out. */
void hide_fix_attr(struct proxy *p, struct msg *req, const struct op_info *op, struct msg *reply);
/* The same for an entry of node @n, under the lock. */
void hide_fix_entry(struct proxy *p, struct node *n, struct fuse_attr *a);
/* After the first daemon's INIT: removes what a killed keeper left hidden. */
void hide_cleanup(struct proxy *p);
/* The keeper stops: its journal goes if it lists nothing. */
void hide_stop(struct proxy *p);
