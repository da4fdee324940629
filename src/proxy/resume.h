/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The resume journal: what a keeper started after this one was SIGKILLed needs to take the
 * connection back (docs/design.md, "Surviving the keeper's own death"), kept current in a
 * journal in shared memory (journal.h) that systemd's fd store keeps for it.
 *
 * What goes in is what the kernel knows and a new daemon must be told again: every node the
 * kernel holds (lookups, generation, inode number, names), every handle (node, flags, opener,
 * whether acknowledged writes may not be durable) and every lock, plus the connection's INIT.
 * Nothing of the daemon's: the resuming keeper starts a new one and recovers as after a daemon's
 * crash. The tables note which entries change (changes.h); resume_flush() writes the current
 * state of each as one record. It runs before the kernel hears of a change (finish_reply()), so
 * that the journal never lacks what the kernel holds; what the kernel let go of (FORGET, RELEASE)
 * may reach it later, which costs a resumed keeper nothing but memory.
 */
#pragma once

#include "image.h"
#include "proxy_i.h"

/* The connection's INIT and the proxy's counters: the part of an image that is neither an fd
 * nor a table (fusekeeper reexec's image and the journal's base share it). */
void proxy_fields_save(const struct proxy *p, struct image *im);
/*
 * Reads them back; with @set_sizes, sets the size of large message buffers from them
 * (msg_init(): not while a relay runs). Returns 0, -EBADMSG or -ENOMEM (also in im->err).
 */
int proxy_fields_load(struct proxy *p, struct image *im, bool set_sizes);

/*
 * Starts the journal: two new memfds, a base of the tables as they are, and the tables noting
 * their changes from now on. Under the lock. Returns 0 or -errno (logged; no journal then).
 */
int resume_start(struct proxy *p);

/*
 * Under the lock, before the kernel hears of a change to the tables: writes the entries that
 * changed; rebases when the records outgrow the base. A failure (out of memory) ends the
 * journal: p->resume_broken says so, and the keeper must no longer offer its state for a resume.
 */
void resume_flush(struct proxy *p);

/*
 * For a kernel that cannot send again what a killed keeper had read (kernel_resends()): sets
 * the journal's mark (journal_set_mark()) to the smallest unique of the requests read from the
 * kernel and not answered yet, so that a keeper that takes the connection back knows where
 * those the killed keeper held begin (sweep_lost()). Uniques grow (fuse_get_unique()) and the
 * kernel sends its requests in that order, so a mark stays right as more are read. Called
 * under the lock by the kernel's relay thread, which holds the request of unique @current in
 * no table (UINT64_MAX: none the kernel numbered, a NOTIFY_REPLY). Returns false, having set nothing, while a request may be in no table (another
 * thread answering one it took out of p->inflight, a recovery settling them); true otherwise.
 */
bool resume_mark(struct proxy *p, uint64_t current);

/*
 * Under the lock, once the RELEASE of @kfh is read where the kernel does not send again what a
 * killed keeper had read (kernel_resends()), or answered while no daemon serves (on every
 * kernel): journals that the kernel let go of the handle, so that a keeper resuming after a
 * SIGKILL of this one, which cannot tell whether a daemon saw the RELEASE, releases it and its
 * locks (resume_load()). Nothing for a handle the tables lack.
 */
void resume_note_release(struct proxy *p, uint64_t kfh);

/* Under the lock: a new base of the tables as they are now (after a recovery, say). */
void resume_rebase(struct proxy *p);

/*
 * Checks the journal against the tables (FUSEKEEPER_RESUME_CHECK=1, for the tests): builds
 * tables from it as a resuming keeper would and compares what the kernel knows of every node,
 * handle and lock. Logs the first difference. Under the lock. Returns 0, or -EBADMSG when they
 * differ or the journal does not read back.
 */
int resume_check(struct proxy *p);

/*
 * Builds the tables of @p, fresh from tables_init(), from the journal in @fd_a and @fd_b (either
 * may be -1) and reads its fields into @p. Returns 0, -EBADMSG or -ENOMEM. The fds are
 * @p's journal's from then on.
 */
int resume_load(struct proxy *p, int fd_a, int fd_b);

/*
 * After a fusekeeper reexec: @p's tables, restored from the image, go on being journalled in the
 * replaced keeper's journal (@fd_a, @fd_b: the journal's from then on, closed on failure), from
 * a new base of them. Returns 0 or -errno.
 */
int resume_adopt(struct proxy *p, int fd_a, int fd_b);

/*
 * Whether a request's repeat by a keeper that took the connection back needs the time it was
 * given to the daemon (msg.sent_ns): a creating, removing or renaming one (its settle rules,
 * recover.c) or one that destroys data (REPEAT_IF_UNCHANGED).
 */
static inline bool resume_needs_sent(const struct msg *m)
{
	const struct op_info *op = op_get(msg_in((struct msg *)m)->opcode);

	return m->sent_ns && op &&
	       (op->replay == RP_EXISTS || op->replay == RP_TOLERATE || op->replay == RP_RENAME ||
		op_repeat_of(msg_in((struct msg *)m)->opcode,
			     m->data + sizeof(struct fuse_in_header)) == REPEAT_IF_UNCHANGED);
}

/*
 * Under the lock, for a request just put in flight that resume_needs_sent(): journals the time
 * it is given to the daemon, before the daemon has it.
 */
void resume_note_sent(struct proxy *p, const struct msg *req);

/*
 * For a request the kernel sent again after this keeper took the connection back (its unique
 * with or without FK_UNIQUE_RESEND): when the killed keeper gave it to its daemon, from the
 * journal, or 0 when that is not known. Once per request (the entry is taken out). Takes the
 * lock.
 */
int64_t resume_sent_ns(struct proxy *p, uint64_t unique);

void resume_stop(struct proxy *p);
