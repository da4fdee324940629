/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Proxy mode internals, shared by relay.c (the two relay threads and the reply bookkeeping) and
 * recover.c (bringing a new daemon up to the kernel's state). See docs/design.md.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "handles.h"
#include "hide.h"
#include "keeper.h"
#include "locks.h"
#include "msg.h"
#include "nodes.h"
#include "opcodes.h"

enum px_state {
	PX_WAIT,   /* no daemon serves: requests wait (starting, recovering, restarting) */
	PX_UP,	   /* a daemon serves: requests are relayed */
	PX_FAILED, /* no daemon serves and none is waited for (--request-wait passed, or the
		      keeper gave up): requests get EIO at once until recovery ends in PX_UP */
};

/* Uniques of the keeper's own requests carry this bit; the kernel's never reach it. */
#define CALL_BIT (1ULL << 62)

/* Uniques of keeper messages whose replies nobody waits for (clean-up RELEASEs, FORGETs). */
#define ORPHAN_BIT (1ULL << 61)

/* A request of the keeper's own to the daemon (INIT, recovery lookups and opens, replays). */
struct call {
	uint64_t unique;
	uint32_t opcode;   /* of the request: its reply is checked like the kernel's */
	uint32_t limit;    /* op_out_limit() of the request */
	struct msg *reply; /* the daemon's reply; NULL if it never came */
	int64_t given_ms;  /* now_coarse_ms() when sent (relay_hung_at()) */
	uint32_t epoch;	   /* the daemon it was sent to */
	bool done;
	bool failed;	   /* it could not be sent: the daemon is going */
};

/* INIT flags a daemon may not negotiate through the keeper (it could not relay them). */
#define INIT_FLAGS_MASKED                                                                          \
	(FK_FUSE_PASSTHROUGH | FK_FUSE_HAS_RESEND | FK_FUSE_OVER_IO_URING | FK_FUSE_REQUEST_TIMEOUT)

/* Whether the daemon gives an object the same inode number in every run (decide_identity()). */
enum ino_mode {
	INO_UNKNOWN,	/* no restart yet */
	INO_STABLE,	/* yes: a node whose number changed is another object */
	INO_UNSTABLE,	/* no: the kernel is shown the numbers it first saw (nodes.ino_remap) */
};

struct proxy {
	struct keeper *k;
	const struct keeper_config *cfg;
	int devfd;	   /* the kernel's connection */
	uint32_t buf_size; /* largest message either side may send */
	uint32_t max_msg;  /* largest message the daemon's socket takes (its buffer size) */
	uint32_t page_size;

	pthread_mutex_t lock; /* everything below up to the socket */
	pthread_cond_t changed;
	enum px_state state;
	struct node_table nodes;     /* epoch in nodes.epoch is the current daemon's */
	struct handle_table handles;
	struct lock_table locks;     /* locks the daemon granted, if it keeps them (locks.h) */
	struct idmap inflight;	     /* unique -> struct msg: requests the kernel waits on */
	struct idmap calls;	     /* unique -> struct call */
	struct idmap abandoned;	     /* uniques of calls given up before their answer came: a
					late answer to one is no error (cleared at each attach) */
	uint64_t next_call;
	uint64_t kunique_max;	     /* the largest unique the kernel sent (k2d thread
					 writes it; atomic) */
	bool starting;		     /* attach() is bringing a daemon up: the tables are its own */
	bool settling;		     /* recover() works on the requests in flight (INIT answered):
					give_up() leaves them to it */
	/* FORGETs and RELEASEs the kernel sent in PX_FAILED during a start, for after it. */
	struct msg *unserved_head, **unserved_tail;

	/* The INIT the kernel sent (flags masked) and what the first daemon agreed with it. */
	struct msg *init_req;
	struct fuse_init_out init_out; /* as the kernel received it (after clamping) */
	uint64_t init_flags;	       /* flags in effect: kernel's offer & daemon's answer */
	uint32_t init_minor;	       /* minor in effect */
	bool init_done;

	pthread_rwlock_t sock_lock; /* held for reading while sending, for writing to change sock */
	int sock;		    /* keeper's end of the channel to the current daemon, or -1 */
	int daemon_end;		    /* the daemon's end until attach() */
	uint32_t sock_epoch;	    /* epoch of the daemon behind sock; 0 when none */

	pthread_t k2d;
	pthread_t d2k;
	bool d2k_running;
	bool detaching;		    /* the supervisor is ending the daemon's channel */

	/*
	 * Notifications wait here for their own thread: writing one can block in the kernel
	 * on a page or directory lock that a request holds whose reply is still to come.
	 */
	pthread_t notifier;
	pthread_mutex_t nq_lock;
	pthread_cond_t nq_cond;
	struct msg *nq_head, **nq_tail;
	uint64_t nq_seq_in;	    /* notifications queued so far */
	uint64_t nq_seq_done;	    /* notifications written so far */
	uint64_t nq_stalled;	    /* sequence number a reply gave up waiting for */

	/* For --hang-timeout: when the daemon serving now took over, and last answered anything
	 * (now_coarse_ms()). */
	int64_t up_ms;
	int64_t heard_ms; /* written by the daemon's relay thread: atomic access */

	int call_efd; /* eventfd: a call finished, or the first INIT was answered */
	int ev_efd;   /* eventfd: events for the supervisor */
	atomic_uint ev_bits;

	/* How far the store's ctimes of new objects fell outside [send, reply] (clock_sample). */
	int64_t clock_slack_ns;
	uint64_t clock_samples;

	enum ino_mode ino_mode;
	/* During a recovery: nodes found again with another inode number or generation, and
	 * how many kept theirs. */
	struct mismatch {
		struct node *n;
		uint64_t ino, gen; /* what it was before the restart */
	} *mismatch;
	size_t nmismatch, cap_mismatch;
	uint64_t ino_same, ino_diff_unnoted;

	struct hide_state hide; /* files removed while open (hide.c) */

	/* Overflows of bounds so far, for logs that say so on the 1st, 2nd, 4th, ... time. */
	uint64_t full_nodes, full_handles, dropped_notifications, window_overflows;

	/* Counters for the recovery log line. */
	uint64_t replayed, settled, lost_nodes, lost_handles, rewritten, lost_windows;
};

/* Condition variables wait on the monotonic clock: a clock step must not stretch a bound. */
static inline void cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

/* An absolute CLOCK_MONOTONIC time @ms from now, for pthread_cond_timedwait(). */
static inline struct timespec deadline_ts(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

static inline void efd_signal(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* An eventfd only fails on overflow, which a wake-up cannot cause. */
	}
}

/* relay.c */
int relay_start(struct proxy *p);
int notifier_start(struct proxy *p);
int relay_start_d2k(struct proxy *p);
void relay_stop_d2k(struct proxy *p);
void post_event(struct proxy *p, unsigned bits);
int send_to_daemon(struct proxy *p, uint32_t epoch, const void *buf, size_t len, int flags);
/* send_to_daemon() for a caller that holds sock_lock for reading. -EPIPE: @epoch's daemon is gone. */
int send_held(struct proxy *p, uint32_t epoch, const void *buf, size_t len, int flags);
void reply_kernel_err(struct proxy *p, uint64_t unique, int err);
/*
 * Answers @req, a request in flight that no daemon will answer, with @err (negative errno);
 * a RELEASE closes its handle all the same. Under the lock; the caller removes @req from the
 * in-flight table and frees it.
 */
void fail_request(struct proxy *p, struct msg *req, int err);
/*
 * Applies the FORGETs and RELEASEs kept while a start was under way in PX_FAILED (the current
 * daemon, if any, is told to forget and close them too) and frees them. Under the lock.
 */
void apply_unserved(struct proxy *p);
int write_kernel(struct proxy *p, const void *buf, size_t len);
int translate_request(struct proxy *p, struct msg *m, const struct op_info *op);
void restore_request(struct msg *m, const struct op_info *op);
int untranslatable(struct proxy *p, struct msg *req, const struct op_info *op, int err);
/*
 * For a WRITE, FSYNC or FLUSH (op->wwin), under the lock: records in a sync which acknowledged
 * writes it covers; returns -EIO if writes through the handle were lost (a sync reports that
 * once), else 0.
 */
int window_check(struct proxy *p, struct msg *req, const struct op_info *op);
int request_names(struct msg *m, const struct op_info *op, const char *names[2]);
/*
 * -vv only: logs the request @m, "@who: OPCODE unique U node N" and its names (a RENAME's
 * target directory too), so that a trace shows what each request did to which name.
 */
void trace_request(const char *who, struct msg *m);
int finish_reply(struct proxy *p, struct msg *req, struct msg *reply);
/*
 * Handles one message @m (m->len bytes) the daemon of @epoch sent: a reply, a notification or an
 * answer to a keeper's call. Returns 0, or -EPROTO when the daemon broke the protocol (the
 * caller then fails what it holds). The d2k thread's loop body; also the fuzzers' entry point
 * (fuzz/README.md).
 */
int d2k_message(struct proxy *p, struct msg *m, uint32_t epoch);
int each_direntplus(char *buf, size_t len, int (*fn)(struct fuse_direntplus *d, void *arg),
		    void *arg);
void forget_in_daemon(struct proxy *p, uint32_t epoch, uint64_t did, uint64_t count);
/* Sends @epoch's daemon a message (@arg: at most 64 bytes) whose reply is dropped; never waits. */
void send_orphan(struct proxy *p, uint32_t epoch, uint32_t opcode, uint64_t nodeid,
		 const void *arg, size_t arglen);
/*
 * Queues @m, a notification for the kernel with the kernel's node IDs (takes ownership), for
 * the notifier thread; @name is for logs. Waits up to 1 s for room, then drops it.
 */
void queue_notification(struct proxy *p, struct msg *m, const char *name);

/*
 * When the serving daemon is hung at the latest if nothing changes (now_ms() clock; INT64_MAX
 * when no daemon serves): @timeout_ms after both the time it was given the oldest request it
 * still holds that counts (not op_info.may_wait, nor a READ or WRITE on a stream) and the last
 * time it answered anything. Describes that request in @what. Under no lock.
 */
int64_t relay_hung_at(struct proxy *p, int64_t timeout_ms, char *what, size_t size);

/* proxy_locks.c: file locks the daemon keeps (docs/design.md, "File locks") */
/*
 * A request with op->lock from the kernel, under the lock, after translate_request() returned
 * @err: a FLUSH drops its lock owner's POSIX locks on the node; a GETLK, SETLK or SETLKW of an
 * owner that lost a lock on the node in a restart fails with -EIO (once); a SETLK or SETLKW
 * that would not fit the table fails with -ENOLCK. Returns what to answer (<0) or @err.
 */
int locks_request(struct proxy *p, struct msg *req, const struct op_info *op, int err);
/*
 * The daemon granted the SETLK or SETLKW @req (its body as sent to the daemon). Takes the lock
 * and records the lock. Returns 0, or -ENOLCK when the table had no room left for it: the lock
 * was then given back to the daemon and the kernel must get the error.
 */
int locks_granted(struct proxy *p, struct msg *req);
/*
 * During a recovery, once handles are open again: takes every recorded lock again on the new
 * daemon, in the order they were granted; a lock that cannot be taken is logged and marked
 * lost. Returns 0 or a fatal error (the start fails; the locks wait for the next daemon).
 */
int locks_take_again(struct proxy *p);

/* recover.c */
/* A create's reply: how the store's clock agrees with the keeper's. Under the lock. */
void clock_sample(struct proxy *p, const struct msg *req, const struct fuse_attr *a);
int prime_handle(struct proxy *p, uint64_t kfh, int64_t recovery_deadline);
int recover(struct proxy *p);
int call_start(struct proxy *p, struct call *c, struct msg *req);
/* Sends @req (daemon IDs) and waits until @deadline for the reply (caller frees), or NULL with
 * -errno in *err. Not from a relay thread. */
struct msg *call_one(struct proxy *p, struct msg *req, int64_t deadline, int *err);
/* Whether @err ends a recovery (the daemon went, the keeper stops, time ran out). */
bool fatal(int err);
int calls_wait(struct proxy *p, struct call *calls, size_t n, int64_t deadline);
void calls_drop(struct proxy *p, struct call *calls, size_t n);
int check_first_init(struct proxy *p, struct fuse_init_out *out, size_t len);
/*
 * A later daemon's answer @reply (taken and freed) to the saved INIT: 0 if it agrees to what
 * the kernel agreed with the first daemon, else -EPROTO (logged with the difference).
 */
int check_restart_init(struct proxy *p, struct msg *reply);
struct msg *make_request(uint32_t opcode, uint64_t nodeid, const void *arg, size_t arglen,
			 const char *name);

/* hide.c: files removed while open (hide.h) */
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
/* A reply to an orphan request: true if it was a hidden name's removal (now accounted). */
bool hide_call_reply(struct proxy *p, uint64_t unique, int error);
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
