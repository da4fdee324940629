/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Proxy mode: the keeper holds /dev/fuse and relays the protocol to the daemon over a
 * SOCK_SEQPACKET socket, keeping what it needs to stand in for the daemon across a restart.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "hide.h"
#include "journal.h"
#include "log.h"
#include "mode.h"
#include "notify.h"
#include "proxy_i.h"
#include "procfs.h"
#include "recover.h"
#include "relay.h"
#include "reply.h"
#include "resume.h"
#include "util.h"

/* The largest payload: 1 MiB (256 4 KiB pages, the kernel's default limit), or 32 pages. */
#define PROXY_PAYLOAD (256 * 4096)

/* Socket buffers large enough for a few of the largest messages each way. */
#define PROXY_SOCK_BUF (8 << 20)

/* Empty tables, bounded as the command line says. Returns 0 or -errno. */
static int tables_init(struct proxy *p)
{
	const struct keeper_config *cfg = p->cfg;
	int r = node_table_init(&p->nodes, cfg->max_nodes);

	if (r < 0)
		return r;
	handle_table_init(&p->handles, cfg->max_handles, cfg->write_window,
			  cfg->write_window_total);
	lock_table_init(&p->locks, cfg->max_locks);
	return 0;
}

/*
 * The proxy of this process, kept reachable until it exits: proxy_stop() frees nothing (a relay
 * thread may still use it), and without threads nothing else would point to it.
 */
static struct proxy *volatile the_proxy __attribute__((used));

/* A proxy for @k with no fd open, no table and no thread yet; NULL when out of memory. */
static struct proxy *proxy_alloc(struct keeper *k)
{
	struct proxy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	the_proxy = p;
	p->k = k;
	p->cfg = keeper_config(k);
	p->devfd = p->sock = p->daemon_end = p->call_efd = p->ev_efd = p->walk_efd = -1;
	p->page_size = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
	p->unserved_tail = &p->unserved_head;
	p->test_no_resend = getenv("FUSEKEEPER_TEST_NO_RESEND") &&
			    !strcmp(getenv("FUSEKEEPER_TEST_NO_RESEND"), "1");
	p->resume_check = getenv("FUSEKEEPER_RESUME_CHECK") &&
			  !strcmp(getenv("FUSEKEEPER_RESUME_CHECK"), "1");
	p->lazy = !p->cfg->eager_lookup;
	/* Tests: no background walk, so that a test controls every node's first use. */
	p->lazy_no_walk = getenv("FUSEKEEPER_TEST_NO_WALK") &&
			  !strcmp(getenv("FUSEKEEPER_TEST_NO_WALK"), "1");
	pthread_mutex_init(&p->lock, NULL);
	cond_init_monotonic(&p->changed);
	pthread_rwlock_init(&p->sock_lock, NULL);
	return p;
}

/* The eventfds that wake the supervisor for calls and events. Returns 0 or -errno. */
static int eventfds_open(struct proxy *p)
{
	p->call_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->ev_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->walk_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return p->call_efd < 0 || p->ev_efd < 0 || p->walk_efd < 0 ? -errno : 0;
}

/*
 * The hidden names' journal, the notifier and the kernel's relay thread, for a proxy whose
 * tables are ready. With @resumed, what a killed keeper had read is first taken back from the
 * kernel (take_resent()), where it can send it again, and the journal goes on from a base of it
 * all. Returns 0 or -errno.
 */
static int threads_start(struct proxy *p, bool resumed)
{
	int r = hide_start(p);

	if (r == 0)
		r = notifier_start(p);
	if (r == 0 && resumed) {
		if (kernel_resends(p))
			r = take_resent(p);
		/* Times of requests answered before the kill: never asked for. (On a failure
		 * they stay, for the next keeper.) */
		pthread_mutex_lock(&p->lock);
		if (r == 0) {
			idmap_free(&p->resent_sent);
			resume_rebase(p);
		}
		pthread_mutex_unlock(&p->lock);
	}
	if (r == 0)
		r = relay_start(p);
	return r;
}

static int proxy_start(struct keeper *k, int devfd, void **state)
{
	struct proxy *p = proxy_alloc(k);
	int r;

	if (!p)
		return -ENOMEM;
	p->devfd = devfd;
	/* Headers take less than 8 KiB; payloads are whole pages. */
	p->buf_size = MAX(PROXY_PAYLOAD, 32 * p->page_size) + 8192;
	p->max_msg = p->buf_size;
	p->state = PX_WAIT;
	p->next_call = 1;
	msg_init(p->buf_size);
	r = tables_init(p);
	if (r == 0)
		r = eventfds_open(p);
	if (r == 0)
		r = threads_start(p, false);
	if (r < 0)
		return r;
	*state = p;
	return 0;
}

/*
 * The killed keeper's daemon must have stopped changing the store before a request it may have
 * done is settled (settle_resent()): systemd starts the unit again once its processes are gone
 * (KillMode=mixed or control-group), but a unit with KillMode=process leaves it running. Ends it
 * if it still runs; p->resumed_ns, the end of the window in which a settle rule looks for its
 * work, stays 0 (no proof: EIO) when that cannot be made sure of.
 */
static void resume_daemon_gone(struct proxy *p)
{
	int r = 0;

	if (p->daemon_pid > 0 && !p->daemon_start) {
		log_warn("The killed keeper's daemon (pid %d) cannot be told from another process: "
			 "requests it may have done will get EIO", (int)p->daemon_pid);
		return;
	}
	if (p->daemon_pid > 0)
		r = proc_end_process(p->daemon_pid, p->daemon_start, 10000);
	if (r == 1)
		log_warn("The killed keeper's daemon (pid %d) still ran (systemd's KillMode=process?): "
			 "ended it with SIGKILL", (int)p->daemon_pid);
	if (r < 0) {
		log_error("The killed keeper's daemon (pid %d) may still run (%s): requests it may "
			  "have done will get EIO", (int)p->daemon_pid, strerror(-r));
		return;
	}
	p->resumed_ns = realtime_ns();
}

/*
 * What the killed keeper had read ends at the first request read after it (sweep_lost()):
 * asks for one — a statfs of the mount, which the kernel always sends — rather than have those
 * requests wait for an application to send the next. The caller of a request the kernel has
 * handed out waits for its answer beyond even SIGKILL (request_wait_answer()), so it is a child
 * process holding no fd, not a thread: a keeper killed before it answers still exits and lets
 * go of /dev/fuse, and the next keeper's sweep ends the child's request. The relay answers it
 * (p->probe_pid) right after the sweep. If the path leads elsewhere (mounted over), the next
 * application's request ends them. Returns the child's pid, or 0.
 */
static pid_t probe_start(struct proxy *p)
{
	const char *path = p->cfg->mountpoint;
	sigset_t all;
	pid_t pid;

	sigfillset(&all);
	pid = fork();
	if (pid == 0) {
		struct statfs st;

		/* Only what is async-signal-safe here: a thread of the parent may hold a lock. */
		if (syscall(SYS_close_range, 0, ~0U, 0) < 0) {
			struct rlimit rl;
			int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536
					  ? (int)rl.rlim_cur : 65536;

			/* Before Linux 5.9: one at a time. */
			for (int fd = 0; fd < max; fd++)
				close(fd);
		}
		sigprocmask(SIG_UNBLOCK, &all, NULL);
		_exit(statfs(path, &st) < 0);
	}
	if (pid < 0)
		log_warn("Cannot start a process to end the killed keeper's requests (%s): they end "
			 "at the next request an application sends", strerror(errno));
	return MAX(pid, 0);
}

static void add_released(struct handle *h, void *arg)
{
	struct idmap *released = arg;

	/* The value is only a marker; a failure to note one leaves its handle as before. */
	if (h->released)
		idmap_put(released, h->kfh, (void *)1);
}

static void release_one(uint64_t key, void *val, void *arg)
{
	release_handle(arg, key);
}

/*
 * The handles whose RELEASE the killed keeper had read, where the kernel does not send it
 * again: the kernel let go of them whatever the answer (fuse_release_common()), so their
 * locks go too and the next daemon does not open them again.
 */
static void release_released(struct proxy *p)
{
	struct idmap released = { 0 };

	handle_each(&p->handles, add_released, &released);
	if (released.count)
		log_info("Released %zu handle%s that the killed keeper was closing, and %s locks",
			 released.count, released.count == 1 ? "" : "s",
			 released.count == 1 ? "its" : "their");
	idmap_each(&released, release_one, p);
	idmap_free(&released);
}

/*
 * A connection a SIGKILLed keeper left in systemd's fd store: its tables come from the resume
 * journal, its daemon is dead (systemd killed the unit's processes), and the requests it had
 * read come back from the kernel (take_resent()), or, where the kernel cannot send them again,
 * get EIO (sweep_lost()). The next attach() recovers as after a daemon's death.
 */
static int proxy_resume(struct keeper *k, int devfd, int fd_a, int fd_b, void **state)
{
	struct proxy *p = proxy_alloc(k);
	int r;

	if (!p) {
		close(devfd);
		close(fd_a);
		close(fd_b);
		return -ENOMEM;
	}
	*state = p;
	p->devfd = devfd;
	p->state = PX_WAIT;
	p->next_call = 1;
	r = tables_init(p);
	if (r == 0)
		r = resume_load(p, fd_a, fd_b);
	else {
		close(fd_a);
		close(fd_b);
	}
	if (r == 0 && (!p->journal_mnt || strcmp(p->journal_mnt, p->cfg->mountpoint))) {
		log_error("The connection in systemd's fd store was kept for %s, not %s",
			  p->journal_mnt ? p->journal_mnt : "(unknown)", p->cfg->mountpoint);
		r = -ESTALE;
	}
	if (r == 0 && p->resumes >= 2) {
		/* A request or a journal that kills every keeper must not keep the mount waiting. */
		log_error("%u keepers in a row took the connection back and died before a daemon "
			  "recovered", p->resumes);
		r = -ELOOP;
	}
	if (r == 0) {
		resume_daemon_gone(p);
		release_released(p);
		p->resumes++;
		r = eventfds_open(p);
	}
	if (r == 0 && !kernel_resends(p)) {
		/* Before the relay starts: the child's request waits in the kernel's queue. */
		p->sweep_from = journal_mark(p->journal) ?: 2;
		p->probe_pid = probe_start(p);
	}
	if (r == 0)
		r = threads_start(p, true);
	if (r == 0)
		log_info("Took the connection back from systemd's fd store: %" PRIu64 " nodes, %zu "
			 "handles and %" PRIu64 " locks from the resume journal; the requests the "
			 "killed keeper had read %s", p->nodes.count - 1, p->handles.by_kfh.count,
			 p->locks.count,
			 kernel_resends(p) ? "are sent again"
					   : "get EIO, from the first request read on (the kernel "
					     "cannot send them again)");
	return r;
}

static void proxy_store_fds(void *state, int fds[3])
{
	struct proxy *p = state;

	fds[0] = fds[1] = fds[2] = -1;
	pthread_mutex_lock(&p->lock);
	if (p->journal && !p->resume_broken) {
		fds[0] = p->devfd;
		journal_fds(p->journal, fds + 1);
	}
	pthread_mutex_unlock(&p->lock);
	if (fds[0] >= 0 && !kernel_resends(p))
		log_warn("%s cannot send again the requests a killed keeper had read "
			 "(FUSE_NOTIFY_RESEND, Linux 6.9): after a SIGKILL of fusekeeper, the calls "
			 "waiting on it then get EIO; the mount, its open files and everything else "
			 "live on", p->test_no_resend ? "As if the kernel (FUSEKEEPER_TEST_NO_RESEND=1)"
						      : "This kernel");
}

static int proxy_channel(void *state)
{
	struct proxy *p = state;
	int sv[2], size = PROXY_SOCK_BUF;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		int got = 0;
		socklen_t len = sizeof(got);

		/* As root the FORCE variants lift the system limits; otherwise take what is allowed. */
		if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		if (setsockopt(sv[i], SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
		/* A datagram larger than the sender's buffer (less a little) cannot be sent. */
		if (getsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &got, &len) == 0 && got > 8192 &&
		    (uint32_t)got - 1024 < p->max_msg) {
			p->max_msg = got - 1024;
			log_warn("The daemon's socket takes messages of at most %u bytes: the kernel "
				 "will be told to send smaller writes", p->max_msg);
		}
	}
	pthread_rwlock_wrlock(&p->sock_lock);
	p->sock = sv[0];
	pthread_rwlock_unlock(&p->sock_lock);
	p->daemon_end = sv[1];
	return sv[1];
}

static int wait_first_init(struct proxy *p)
{
	int64_t deadline = now_ms() + p->cfg->start_timeout_ms;

	for (;;) {
		uint64_t v;
		bool done;
		int r;

		pthread_mutex_lock(&p->lock);
		done = p->init_done;
		pthread_mutex_unlock(&p->lock);
		if (done)
			return 0;
		/* Past the deadline, as long as the supervisor's start policy keeps the daemon. */
		r = keeper_wait(p->k, p->call_efd, deadline);
		if (r == -ETIMEDOUT)
			log_error("The daemon did not answer FUSE_INIT in time");
		if (r < 0)
			return r;
		if (read(p->call_efd, &v, sizeof(v)) < 0) {
			/* Already cleared. */
		}
	}
}

/* The start is over, taken or failed: the tables are the relay's again. */
static void attach_done(struct proxy *p)
{
	pthread_mutex_lock(&p->lock);
	p->starting = p->settling = false;
	apply_unserved(p);
	pthread_mutex_unlock(&p->lock);
}

static int attach_daemon(struct proxy *p)
{
	bool first;
	int r;

	p->attach_ms = now_ms();
	/* The daemon has its own copy now; ours would keep its end open after it dies. */
	close(p->daemon_end);
	p->daemon_end = -1;

	pthread_mutex_lock(&p->lock);
	/*
	 * Lazy lookup: none begins now, and one under way ends (it fails: the daemon is gone)
	 * before the new daemon's epoch does, so that no answer of the old daemon is taken for
	 * the new one's. Every node is unresolved again.
	 */
	__atomic_store_n(&p->lazy_pending, false, __ATOMIC_SEQ_CST);
	while (p->lazy_resolving)
		pthread_cond_wait(&p->changed, &p->lock);
	p->lazy_walk_off = false;
	p->lazy_left = p->lazy_first_use = p->lazy_background = 0;
	first = !p->init_done;
	if (!first) {
		node_new_epoch(&p->nodes);
		/* The old daemon will answer nothing more. */
		idmap_free(&p->abandoned);
		handle_new_epoch(&p->handles);
	}
	pthread_mutex_unlock(&p->lock);
	pthread_rwlock_wrlock(&p->sock_lock);
	p->sock_epoch = p->nodes.epoch;
	pthread_rwlock_unlock(&p->sock_lock);
	r = relay_start_d2k(p);
	if (r < 0)
		return r;
	if (first) {
		/* The kernel's INIT waits in the relay; let it through and wait for the answer. */
		pthread_mutex_lock(&p->lock);
		p->state = PX_UP;
		p->up_ms = now_coarse_ms();
		pthread_cond_broadcast(&p->changed);
		pthread_mutex_unlock(&p->lock);
		r = wait_first_init(p);
		if (r == 0)
			hide_cleanup(p);
		return r;
	}
	r = recover(p);
	if (r < 0)
		return r;
	/* The relay serves: the background walk starts now, not with the next request. */
	relay_kick(p);
	pthread_mutex_lock(&p->lock);
	/* What recovery found (lost nodes and handles) in one base, not a record per entry. */
	p->resumes = 0;
	resume_rebase(p);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static int proxy_attach(void *state, struct keeper *k)
{
	struct proxy *p = state;
	int r;

	pid_t pid = keeper_daemon_pid(k);
	uint64_t start = 0;

	if (pid > 0 && proc_start_time(pid, &start) < 0)
		start = 0;
	pthread_mutex_lock(&p->lock);
	p->starting = true;
	p->daemon_pid = pid;
	p->daemon_start = start;
	/* Before it is given anything: the daemon a resuming keeper must find gone. */
	resume_rebase(p);
	pthread_mutex_unlock(&p->lock);
	r = attach_daemon(p);
	attach_done(p);
	return r;
}

struct death_ctx {
	uint32_t epoch;
	int64_t now;
};

static void note_death_one(uint64_t key, void *val, void *arg)
{
	struct death_ctx *c = arg;
	struct msg *req = val;

	if (req->held == c->epoch)
		req->death_ns = c->now;
}

/*
 * The daemon of @epoch is dead: nothing it did for the requests it was given is later than now
 * (the end of the window in which a settle rule looks for its work). Under the lock.
 */
static void note_death(struct proxy *p, uint32_t epoch)
{
	struct death_ctx c = { epoch, realtime_ns() };

	idmap_each(&p->inflight, note_death_one, &c);
}

static void fail_one(uint64_t key, void *val, void *arg)
{
	struct proxy *p = arg;

	fail_request(p, val, -EIO);
	msg_put(val);
}

/*
 * Answers every request in flight with EIO: no daemon holds them (or the one that did is
 * dead). Under the lock, with no recovery working on them.
 */
static void fail_inflight(struct proxy *p)
{
	if (p->inflight.count)
		log_info("Answering the %zu requests the dead daemon left with EIO",
			 p->inflight.count);
	idmap_each(&p->inflight, fail_one, p);
	idmap_free(&p->inflight);
}

static void proxy_detach(void *state)
{
	struct proxy *p = state;

	pthread_mutex_lock(&p->lock);
	if (p->resume_check)
		resume_check(p);
	if (p->sock_epoch)
		note_death(p, p->sock_epoch);
	if (p->state == PX_UP)
		p->state = PX_WAIT;
	/* Whatever a drain held for it, this daemon answers nothing more. */
	p->draining = false;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	/* Let the daemon's thread drain what the daemon sent before it died, then end. */
	__atomic_store_n(&p->detaching, true, __ATOMIC_RELEASE);
	relay_stop_d2k(p);
	__atomic_store_n(&p->detaching, false, __ATOMIC_RELEASE);
	/* What the old daemon did wrong is settled; it must not count against the next. */
	atomic_fetch_and(&p->ev_bits, ~(MODE_EV_DAEMON_BROKEN | MODE_EV_CHANNEL_CLOSED));
	pthread_rwlock_wrlock(&p->sock_lock);
	if (p->sock >= 0)
		close(p->sock);
	p->sock = -1;
	p->sock_epoch = 0;
	pthread_rwlock_unlock(&p->sock_lock);
	if (p->daemon_end >= 0)
		close(p->daemon_end);
	p->daemon_end = -1;
	/* Calls still waiting will never be answered. */
	efd_signal(p->call_efd);
	/* Past --request-wait, what the dead daemon held does not wait for the next one either. */
	pthread_mutex_lock(&p->lock);
	if (p->state == PX_FAILED)
		fail_inflight(p);
	pthread_mutex_unlock(&p->lock);
}

static int proxy_give_up(void *state)
{
	struct proxy *p = state;

	pthread_mutex_lock(&p->lock);
	p->state = PX_FAILED;
	/* A recovery past INIT settles them itself, within its own bounds. */
	if (!p->settling)
		fail_inflight(p);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static int proxy_event_fd(void *state)
{
	return ((struct proxy *)state)->ev_efd;
}

static unsigned proxy_events(void *state)
{
	struct proxy *p = state;
	uint64_t v;

	if (read(p->ev_efd, &v, sizeof(v)) < 0) {
		/* Nothing pending. */
	}
	return atomic_exchange(&p->ev_bits, 0);
}

static int64_t proxy_hung_at(void *state, int64_t timeout_ms, char *what, size_t size)
{
	return relay_hung_at(state, timeout_ms, what, size);
}

/*
 * A planned restart: requests wait at the keeper from now on (PX_WAIT, as while no daemon
 * serves), and the daemon answers what it holds.
 */
static int proxy_drain(void *state, int64_t deadline, char *what, size_t size)
{
	struct proxy *p = state;

	pthread_mutex_lock(&p->lock);
	if (p->state == PX_UP) {
		p->state = PX_WAIT;
		p->draining = true;
	}
	pthread_mutex_unlock(&p->lock);
	while (relay_held(p, what, size)) {
		/* Rare and short: a poll every few ms costs nothing, an answer wakes nobody. */
		int r = keeper_wait(p->k, -1, MIN(deadline, now_ms() + 5));

		if (r != -ETIMEDOUT)
			return r;
		if (now_ms() >= deadline)
			return relay_held(p, what, size) ? -ETIMEDOUT : 0;
	}
	return 0;
}

static void proxy_stats(void *state, struct mode_stats *s)
{
	struct proxy *p = state;

	pthread_mutex_lock(&p->lock);
	s->nodes = p->nodes.count - 1; /* the root is not one the kernel looked up */
	s->handles = p->handles.by_kfh.count;
	s->requests = p->inflight.count;
	s->locks = p->locks.count;
	/* While a daemon serves: during a recovery every node is yet to be looked up. */
	s->nodes_pending = p->state == PX_UP ? (int64_t)node_count_unresolved(&p->nodes) : -1;
	s->nodes_restored = p->rec_nodes;
	s->nodes_lost = p->lost_nodes;
	s->handles_restored = p->rec_handles;
	s->handles_lost = p->lost_handles;
	s->requests_replayed = p->replayed;
	s->requests_settled = p->settled;
	s->writes_resent = p->rewritten;
	s->writes_lost = p->lost_windows;
	pthread_mutex_unlock(&p->lock);
}

/* ---- fusekeeper reexec ------------------------------------------------------------------ */

enum { TAG_PROXY = 0x50524f58 /* "PROX" */, TAG_PROXY_END = 0x2f50524f };

/* After drain(): the relay stops where the tables hold everything. */
static int proxy_freeze(void *state)
{
	struct proxy *p = state;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	/* Only a serving daemon's relay, outside a start, with no keeper's call pending. */
	if (p->state != PX_WAIT || !p->sock_epoch || p->starting || p->unserved_head)
		r = -EBUSY;
	pthread_mutex_unlock(&p->lock);
	if (r == 0)
		r = relay_freeze(p, 1000);
	pthread_mutex_lock(&p->lock);
	if (r == 0 && p->calls.count)
		r = -EBUSY;
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* The reexec did not happen: the daemon serves on (drain() is undone too). */
static void proxy_thaw(void *state)
{
	struct proxy *p = state;

	relay_thaw(p);
	pthread_mutex_lock(&p->lock);
	if (p->state == PX_WAIT && p->draining) {
		p->state = PX_UP;
		p->draining = false;
		lazy_wake(p);
		pthread_cond_broadcast(&p->changed);
	}
	pthread_mutex_unlock(&p->lock);
}

static void save_inflight(uint64_t key, void *val, void *arg)
{
	msg_save(arg, val);
}

static int proxy_save(void *state, struct image *im)
{
	struct proxy *p = state;

	pthread_mutex_lock(&p->lock);
	image_tag(im, TAG_PROXY);
	image_fd(im, p->devfd);
	image_fd(im, p->sock);
	image_u32(im, p->sock_epoch);
	proxy_fields_save(p, im);
	node_table_save(&p->nodes, im);
	handle_table_save(&p->handles, im);
	lock_table_save(&p->locks, im);
	hide_state_save(&p->hide, im);
	/* What the daemon still holds (it answers the next keeper), and what k2d held. */
	image_u64(im, p->inflight.count);
	idmap_each(&p->inflight, save_inflight, im);
	image_bool(im, p->carry);
	if (p->carry)
		msg_save(im, p->carry);
	for (struct msg *e = p->early; e; e = e->next) {
		image_bool(im, true);
		msg_save(im, e);
	}
	image_bool(im, false);
	/* The resume journal goes on in the next binary: its fds, and nothing else. */
	image_bool(im, p->journal && !p->resume_broken);
	if (p->journal && !p->resume_broken) {
		int fds[2];

		journal_fds(p->journal, fds);
		image_fd(im, fds[0]);
		image_fd(im, fds[1]);
	}
	image_tag(im, TAG_PROXY_END);
	pthread_mutex_unlock(&p->lock);
	return im->err;
}

static int restore_tables(struct proxy *p, struct image *im)
{
	uint64_t n;
	int r;

	if (!image_expect(im, TAG_PROXY))
		return im->err;
	p->devfd = image_get_fd(im);
	p->sock = image_get_fd(im);
	p->sock_epoch = image_get_u32(im);
	if (proxy_fields_load(p, im, true) < 0 || p->devfd < 0 || p->sock < 0)
		return image_fail(im);
	r = tables_init(p);
	if (r < 0)
		return r;
	if (node_table_load(&p->nodes, im) || handle_table_load(&p->handles, im) ||
	    lock_table_load(&p->locks, im) || hide_state_load(&p->hide, im))
		return im->err;
	if (p->sock_epoch != p->nodes.epoch)
		return image_fail(im);
	/* Nodes the replaced keeper left unresolved, if any: the background walk starts again
	 * (with --eager-lookup too, should the replaced keeper have had lazy lookup). */
	__atomic_store_n(&p->lazy_pending, true, __ATOMIC_SEQ_CST);
	p->lazy_pos = 0;
	p->lazy_since_ms = now_ms();
	p->rec_lost_nodes = p->lost_nodes;
	p->lazy_reexec = true;
	n = image_get_u64(im);
	for (uint64_t i = 0; i < n && !im->err; i++) {
		struct msg *m = msg_load(im);

		if (m && idmap_put(&p->inflight, msg_in(m)->unique, m) < 0) {
			msg_put(m);
			im->err = -ENOMEM;
		}
	}
	if (image_get_bool(im))
		p->carry = msg_load(im);
	for (struct msg **tail = &p->early; !im->err && image_get_bool(im);) {
		*tail = msg_load(im);
		if (*tail)
			tail = &(*tail)->next;
	}
	if (image_get_bool(im)) {
		int fd_a = image_get_fd(im), fd_b = image_get_fd(im);

		if (!im->err && (fd_a < 0 || fd_b < 0))
			image_bad(im);
		/* The tables are as the journal says: it goes on from a base of them. */
		if (!im->err && resume_adopt(p, fd_a, fd_b) < 0)
			log_warn("The resume journal could not be taken over; a SIGKILL of this keeper "
				 "would lose the mount");
	}
	image_expect(im, TAG_PROXY_END);
	return im->err;
}

/* In the new binary: the relay as the replaced keeper left it, and the daemon serving. */
static int proxy_restore(struct keeper *k, struct image *im, void **state)
{
	struct proxy *p = proxy_alloc(k);
	int r;

	if (!p)
		return -ENOMEM;
	p->hide.journal_fd = -1;
	/* Whatever it returns, @p is the keeper's now: the fds in it are to be closed at stop. */
	*state = p;
	r = restore_tables(p, im);
	if (r == 0)
		r = eventfds_open(p);
	if (r < 0)
		return r;
	p->state = PX_UP;
	/* k2d first: relay_start() installs the handler of the relay's freeze signal. */
	r = notifier_start(p);
	if (r == 0)
		r = relay_start(p);
	if (r == 0)
		r = relay_start_d2k(p);
	return r;
}

static void proxy_stop(void *state)
{
	struct proxy *p = state;

	if (!p)
		return;
	proxy_detach(p);
	hide_stop(p);
	/*
	 * The kernel relay thread may sit in read(2) on /dev/fuse until the connection ends; the
	 * process exits right after this, which ends it. Nothing else is released here on purpose.
	 */
}

const struct mode_ops proxy_mode = {
	.name = "proxy",
	.start = proxy_start,
	.channel = proxy_channel,
	.attach = proxy_attach,
	.detach = proxy_detach,
	.give_up = proxy_give_up,
	.event_fd = proxy_event_fd,
	.events = proxy_events,
	.hung_at = proxy_hung_at,
	.drain = proxy_drain,
	.stats = proxy_stats,
	.freeze = proxy_freeze,
	.thaw = proxy_thaw,
	.save = proxy_save,
	.restore = proxy_restore,
	.store_fds = proxy_store_fds,
	.resume = proxy_resume,
	.stop = proxy_stop,
};
