/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Proxy mode's state, shared by every file of src/proxy/: struct proxy, the keeper's own calls
 * (struct call), and a few inline helpers. Functions are declared in the header of the file that
 * defines them; docs/design.md ("Pieces") shows which file may use which.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "handles.h"
#include "hidden.h"
#include "keeper.h"
#include "locks.h"
#include "image.h"
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
	bool draining;		     /* PX_WAIT from drain(): the daemon still serves what it was
					given (the keeper's own calls too), until detach or thaw */
	bool lazy;		     /* a recovery may leave nodes unresolved: the k2d thread
					looks them up on first use (k2d_resolve()) and in the
					background; off with --eager-lookup */
	bool lazy_pending;	     /* nodes are left for the background (recover_background()) */
	bool lazy_no_walk;	     /* tests: no background walk, first use only */
	bool lazy_walk_off;	     /* the background walk failed (not a death): first use only */
	bool lazy_resolving;	     /* the k2d thread is looking nodes up: a new daemon's
					epoch waits (attach_daemon()) */
	uint32_t dirplus_applying;   /* READDIRPLUS replies out of inflight, not yet applied:
					lazy lookups wait (lazy_begin()) */
	uint64_t lazy_left;	     /* nodes a recovery left for first use and the background */
	uint64_t lazy_first_use;     /* nodes looked up on first use since the last recovery */
	uint64_t lazy_background;    /* and by the background walk */
	uint32_t lazy_pos;	     /* where its walk of the node slab is */
	int64_t lazy_since_ms;	     /* when the relay resumed with nodes left (for the log) */
	uint64_t rec_lost_nodes;     /* lost_nodes then: the recovery's own (lost_nodes goes on
					counting those lost on first use and by the walk) */
	bool lazy_reexec;	     /* the nodes left are a replaced keeper's (fusekeeper reexec) */
	bool k2d_reading;	     /* the k2d thread may be in read(2) of /dev/fuse, and saw no
					walk to do (relay_kick(); atomic, seq_cst) */
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
	 * fusekeeper reexec (relay_freeze()): the relay threads stop where the tables say all
	 * they hold. Under the lock; freeze is also read without it (atomic).
	 */
	bool freeze;
	bool k2d_parked, d2k_parked;
	struct msg *carry;	    /* the request the parked k2d thread read and holds, or NULL */
	struct msg *early;	    /* messages read before the relay started (take_resent()), for
				       the k2d thread to handle first, in order (linked by next) */

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
	int walk_efd; /* eventfd: the background walk may go on (polled with /dev/fuse while
			 nodes are left; lazy_wake()) */
	atomic_uint ev_bits;

	/* How far the store's ctimes of new objects fell outside [send, reply] (clock_sample). */
	int64_t clock_slack_ns;
	uint64_t clock_samples;
	bool clock_noted;	/* the two above changed since the resume journal wrote them */

	enum ino_mode ino_mode;
	/* During a recovery: nodes found again with another inode number or generation, and
	 * how many kept theirs. */
	struct mismatch {
		struct node *n;
		uint64_t ino, gen; /* what it was before the restart */
	} *mismatch;
	size_t nmismatch, cap_mismatch;
	uint64_t ino_same, ino_diff_unnoted;

	struct hide_state hide; /* files removed while open (hidden.h, hide.c) */

	/* The resume journal (resume.h): NULL when none is kept. */
	struct journal *journal;
	struct image jrec, jitem; /* scratch images for its records */
	bool resume_broken;	  /* it could not be kept whole: it was ended */
	bool resume_check;	  /* FUSEKEEPER_RESUME_CHECK: compare it with the tables */
	struct changes sent;	  /* uniques of requests whose time given to the daemon is to
				     be journalled (resume_note_sent()) */
	struct idmap resent_sent; /* unique -> that time (int64_t ns), as a killed keeper's
				     journal had it, until the kernel sends the request again */
	int64_t resumed_ns;	  /* CLOCK_REALTIME when this keeper took the connection back,
				     after the killed keeper's daemon was gone; 0: not resumed */
	/*
	 * Where the kernel cannot send again what a killed keeper had read (no FUSE_NOTIFY_RESEND
	 * before 7.40, or FUSEKEEPER_TEST_NO_RESEND=1: kernel_resends()), the keeper that takes
	 * the connection back answers it EIO (sweep_lost()), every unique from the journal's mark
	 * (resume_mark()) up to the first it reads.
	 */
	bool test_no_resend;
	bool resends;		  /* kernel_resends(): set at INIT by kernel_known(), read by every
				     thread without the lock */
	uint64_t sweep_from;	  /* the first unique to sweep; 0: none (the k2d thread's) */
	pid_t probe_pid;	  /* the process asking for the first request (probe_start()) */
	uint32_t answering;	  /* requests taken out of inflight by a thread that answers them
				     after letting go of the lock: incremented under it, decremented
				     once answered (atomic) */
	uint32_t mark_reads;	  /* requests read since the mark was last set (k2d thread) */

	/* Overflows of bounds so far, for logs that say so on the 1st, 2nd, 4th, ... time. */
	uint64_t full_nodes, full_handles, dropped_notifications, window_overflows;

	/* Counters for the recovery log line and `fusekeeper status`. */
	uint64_t replayed, settled, lost_nodes, lost_handles, rewritten, lost_windows;
	uint32_t resumes;	/* keepers in a row that took the connection back from systemd's
				   fd store with no recovery since (in the journal's base) */
	char *journal_mnt;	/* the mountpoint the journal read back was kept for */
	pid_t daemon_pid;	/* the daemon given the channel last, and its start time
				   (proc_start_time(); 0: unknown): a keeper that takes the
				   connection back makes sure it is gone */
	uint64_t daemon_start;
	uint64_t rec_nodes, rec_handles; /* restored by the last recovery */
	int64_t attach_ms;	/* now_ms() when the new daemon was given the channel */
	int64_t rec_init_ms;	/* now_ms() when the new daemon answered the recovery's INIT */
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

/*
 * Under the lock: the daemon answers what it was sent — it serves (PX_UP), or a drain holds new
 * requests while it answers the ones it has (p->draining).
 */
static inline bool daemon_answers(const struct proxy *p)
{
	return p->state == PX_UP || p->draining;
}

/* The FUSE minor version the kernel speaks (its INIT), 0 before INIT. */
static inline uint32_t kernel_minor(const struct proxy *p)
{
	return p->init_req ? ((const struct fuse_init_in *)(p->init_req->data +
							  sizeof(struct fuse_in_header)))->minor
			   : 0;
}

/*
 * Whether the kernel sends again, to a keeper that took the connection back, the requests a
 * killed one had read (FUSE_NOTIFY_RESEND, 7.40).
 */
static inline bool kernel_resends(const struct proxy *p)
{
	return p->resends;
}

/* Sets what kernel_resends() answers, once the kernel's INIT is known (read or restored). */
static inline void kernel_known(struct proxy *p)
{
	p->resends = kernel_minor(p) >= 40 && !p->test_no_resend;
}

/* A request taken out of inflight (under the lock) by a thread that answers it after letting
 * go of the lock; inflight_answered() once it is answered. */
static inline void inflight_taken(struct proxy *p, uint32_t n)
{
	/*
	 * Only resume_mark() reads the count, and only where the kernel does not resend: where
	 * it does, kernel_resends() turns true at INIT, and a count that INIT itself leaves
	 * behind is never read.
	 */
	if (!kernel_resends(p))
		__atomic_add_fetch(&p->answering, n, __ATOMIC_RELAXED);
}

static inline void inflight_answered(struct proxy *p, uint32_t n)
{
	if (!kernel_resends(p))
		__atomic_sub_fetch(&p->answering, n, __ATOMIC_RELEASE);
}

static inline void efd_signal(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* An eventfd only fails on overflow, which a wake-up cannot cause. */
	}
}

/*
 * Under the lock: something lazy_begin() waits for changed (the relay serves again, a
 * READDIRPLUS reply is applied); a k2d thread waiting in poll(2) for a request or this tries
 * the background walk again.
 */
static inline void lazy_wake(struct proxy *p)
{
	if (p->lazy_pending)
		efd_signal(p->walk_efd);
}
