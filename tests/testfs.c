/*
 * testfs — a libfuse low-level passthrough filesystem for fusekeeper's tests.
 *
 *   testfs --backing=DIR [--single] [--writeback] [--locks] [--fail-start-if=FILE]
 *          [--slow-start-if=FILE] [--crash-file=FILE] [--delay-ms=N] [--cache-s=S]
 *          [--ino-nodeid] [--lazy-writes] [-o FUSE-OPTS] [-f] [-d] MOUNTPOINT
 *
 * Every operation is passed through to DIR. It always runs in the foreground.
 * MOUNTPOINT is normally /dev/fd/N (libfuse serves fd N and does not mount);
 * a directory works too, then libfuse mounts it.
 *
 * Node IDs are pointers to this process's inode structs, so they differ from
 * run to run, as in most real low-level daemons: a restarted daemon knows none
 * of the IDs the kernel holds. File handles are fds salted per run. An ID or
 * handle from another run makes it abort (or crash on the wild pointer), and
 * so does an UNLINK or RMDIR of a name whose inode it holds no lookup of
 * (which no kernel sends, and fuse-overlayfs does not survive).
 * Entries and attributes are cached for 1 s, and directory listings are
 * readdirplus: names listed that way are not looked up again, and a stat
 * soon after a lookup sends no GETATTR.
 *
 * --writeback asks for the writeback cache (FUSE_CAP_WRITEBACK_CACHE; a
 * message on stderr if the kernel does not offer it). The kernel then places
 * appends itself and writes cached pages back at explicit offsets, at fsync,
 * close or later, through any writable handle, and reads pages of files
 * opened write-only: as libfuse's passthrough_ll, files are opened without
 * O_APPEND, and O_WRONLY as O_RDWR.
 *
 * --locks makes the daemon, not the kernel, keep file locks (FUSE_CAP_FLOCK_LOCKS
 * and FUSE_CAP_POSIX_LOCKS; without it both are turned off and the kernel keeps
 * them locally). flock(2) locks are taken with flock(2) on the handle's backing
 * fd, as libfuse's passthrough_ll -o flock does. POSIX (fcntl) locks keep POSIX
 * owner semantics (a lock replaces or splits its owner's own locks, conflicts
 * only with other owners'): each lock owner (fuse_lk_in.owner) gets an open file
 * description of its own on the backing file, and its locks are OFD locks on it
 * (F_OFD_SETLK; a SETLKW waits in F_OFD_SETLKW, in its worker thread of the
 * multi-threaded loop; GETLK is F_OFD_GETLK, reporting pid 0 for a holder in this
 * daemon). A FLUSH closes its lock owner's description, which releases that
 * owner's locks on the file, as libfuse's high-level API does at flush. Either
 * kind conflicts with locks other processes take on the backing file itself, and
 * all of them vanish with this process.
 *
 * Test hooks:
 *   --fail-start-if=FILE  exit 3 at start-up, before touching the connection,
 *                         if FILE exists.
 *   --slow-start-if=FILE  if FILE exists at start-up, it holds "sleep MS" or
 *                         "spin MS": before touching the connection (so before
 *                         FUSE_INIT is read), wait MS milliseconds, either
 *                         asleep, using no CPU time (a daemon blocked in a
 *                         network login), or computing (a daemon scanning its
 *                         cache). Other content: exit 2.
 *   --crash-file=FILE     at the start of every operation, if FILE exists and
 *                         holds "before:OP[:NAME]" or "after:OP[:NAME]" matching
 *                         this operation, unlink FILE (one shot) and SIGKILL this
 *                         process, either at once (before) or after doing the
 *                         operation on DIR but before replying (after); or, for
 *                         "hang:OP[:NAME]", block in this operation for ever, and
 *                         every later operation too (a deadlocked daemon); or, for
 *                         "hang-after:OP[:NAME]", the same once the operation is
 *                         done on DIR, before replying; or, for
 *                         "stall-after:OP[:NAME]", never reply to this operation
 *                         once done, while the others go on. NAME, a shell
 *                         pattern (fnmatch(3)), is matched against the
 *                         operation's name argument (rename: the source name),
 *                         or for operations without one the last name the node
 *                         was looked up by. Write FILE
 *                         atomically (rename a temporary into place); an empty
 *                         FILE is ignored.
 *   --delay-ms=N          sleep N ms at the start of every operation.
 *   --cache-s=S           how long the kernel may cache entries and attributes,
 *                         in seconds (default 1): a test whose timing needs the
 *                         entries on a path to stay fresh, however slow the
 *                         machine, gives a long one.
 *   --ino-nodeid          report every inode's node ID as its st_ino, as libfuse's
 *                         high-level API does without use_ino (sshfs, LXCFS): its
 *                         numbers then change with every run.
 *   --small-writes-if=FILE
 *                         answer FUSE_INIT with max_write 4096 if FILE exists at
 *                         start-up (an INIT the keeper must refuse after a restart).
 *   --inval-on-read       on every READ, another thread sends
 *                         FUSE_NOTIFY_INVAL_INODE for the file while the READ
 *                         waits 200 ms before replying (the kernel's invalidation
 *                         then waits for the page that READ holds locked).
 *   --lazy-writes         answer a WRITE before storing it, as sshfs does (it
 *                         queues the data for its ssh connection): the data is
 *                         kept in memory and stored, in order, when the next
 *                         operation of any other kind but GETXATTR and
 *                         LISTXATTR begins; the next FLUSH or
 *                         FSYNC reports a failure to store. A SIGKILL in between
 *                         loses writes that were answered with success.
 *   setxattr user.fktest.store=DATA on a file does not set an attribute: it
 *                         pushes DATA into the kernel's cache of the file at
 *                         offset 0 with FUSE_NOTIFY_STORE (a notification whose
 *                         node ID the keeper must translate).
 *
 * Exit status: 0 after an unmount or SIGTERM/SIGINT/SIGHUP, 1 on errors (a
 * closed connection counts: libfuse reports "short read on fuse device"),
 * 2 for bad usage, 3 for --fail-start-if.
 */
#define FUSE_USE_VERSION 312

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ---------------------------------------------------- */

static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static inline void freep(void *p)
{
	free(*(void **)p);
}

#define _cleanup_close_ __attribute__((cleanup(closep)))
#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _unused_ __attribute__((unused))
#define TAKE_FD(fd) ({ int _tfd = (fd); (fd) = -1; _tfd; })

/* A path that reaches the object behind an O_PATH fd, for the calls that
 * have no fd form (xattrs, chmod, truncate, utimensat of a symlink). */
struct proc_path {
	char s[sizeof("/proc/self/fd/") + 12];
};

static struct proc_path proc_path(int fd)
{
	struct proc_path p;

	snprintf(p.s, sizeof(p.s), "/proc/self/fd/%d", fd);
	return p;
}

static inline int neg_errno(void)
{
	return -errno;
}

/* ---- options ---------------------------------------------------------- */

/* For notifications sent from inside an operation. */
static struct fuse_session *session;

static struct {
	const char *backing;
	const char *mountpoint;
	const char *fail_start_if;
	const char *slow_start_if;
	const char *small_writes_if;
	bool inval_on_read;
	bool ino_nodeid;	/* --ino-nodeid: st_ino = node ID */
	bool lazy_writes;	/* --lazy-writes: WRITEs stored at the next other op */
	bool writeback;
	bool locks;
	const char *crash_file;
	unsigned delay_ms;
	double cache_s;		/* entry and attribute timeouts, seconds */
	bool single;
	bool hooks;		/* crash_file || delay_ms: the only per-op branch */
} opt;

/* ---- operations, for the crash hook ----------------------------------- */

enum tfs_op {
	OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD,
	OP_MKDIR, OP_SYMLINK, OP_LINK, OP_UNLINK, OP_RMDIR, OP_RENAME, OP_OPEN,
	OP_CREATE, OP_READ, OP_WRITE, OP_FLUSH, OP_RELEASE, OP_FSYNC,
	OP_OPENDIR, OP_READDIR, OP_READDIRPLUS, OP_RELEASEDIR, OP_FSYNCDIR,
	OP_STATFS, OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR,
	OP_FALLOCATE, OP_LSEEK, OP_GETLK, OP_SETLK, OP_FLOCK,
	OP__COUNT
};

/* The names used in the crash file. */
static const char *const op_names[OP__COUNT] = {
	[OP_LOOKUP] = "lookup",		[OP_FORGET] = "forget",
	[OP_GETATTR] = "getattr",	[OP_SETATTR] = "setattr",
	[OP_READLINK] = "readlink",	[OP_MKNOD] = "mknod",
	[OP_MKDIR] = "mkdir",		[OP_SYMLINK] = "symlink",
	[OP_LINK] = "link",		[OP_UNLINK] = "unlink",
	[OP_RMDIR] = "rmdir",		[OP_RENAME] = "rename",
	[OP_OPEN] = "open",		[OP_CREATE] = "create",
	[OP_READ] = "read",		[OP_WRITE] = "write",
	[OP_FLUSH] = "flush",		[OP_RELEASE] = "release",
	[OP_FSYNC] = "fsync",		[OP_OPENDIR] = "opendir",
	[OP_READDIR] = "readdir",	[OP_READDIRPLUS] = "readdirplus",
	[OP_RELEASEDIR] = "releasedir",	[OP_FSYNCDIR] = "fsyncdir",
	[OP_STATFS] = "statfs",		[OP_SETXATTR] = "setxattr",
	[OP_GETXATTR] = "getxattr",	[OP_LISTXATTR] = "listxattr",
	[OP_REMOVEXATTR] = "removexattr", [OP_FALLOCATE] = "fallocate",
	[OP_LSEEK] = "lseek",		[OP_GETLK] = "getlk",
	[OP_SETLK] = "setlk",		[OP_FLOCK] = "flock",
};

/* ---- inode table ------------------------------------------------------ */

/* One backing object the kernel holds a reference to. Its address is the
 * node ID (the root's is FUSE_ROOT_ID). The O_PATH fd pins the backing inode,
 * so its st_ino cannot be reused while this struct exists. */
struct tfs_inode {
	uint32_t magic;			/* INODE_MAGIC while the struct is live */
	struct tfs_inode *next;		/* hash chain, under table.lock */
	int fd;				/* O_PATH | O_NOFOLLOW */
	dev_t dev;
	ino_t ino;
	uint64_t nlookup;		/* kernel lookups not yet forgotten */
	char name[NAME_MAX + 1];	/* last name looked up (--crash-file only) */
	struct tfs_owner *owners;	/* --locks: POSIX lock owners, under owners_lock */
};

#define INODE_MAGIC 0x74667369u		/* "tfsi" */
#define DIR_MAGIC 0x74667364u		/* "tfsd" */

/* An ID or handle this process never handed out (one from an earlier run,
 * say) is a bug in whoever sent it: die loudly rather than serve a stranger,
 * as libfuse's high-level API does. */
static _Noreturn void die_bad_id(const char *what, uint64_t id)
{
	fprintf(stderr, "testfs: unknown %s %#" PRIx64 ", aborting\n", what, id);
	abort();
}

/* ---- POSIX lock owners (--locks) --------------------------------------- */

/* A lock owner's own open file description of a backing file: its POSIX
 * locks are OFD locks on it, so that they follow the owner, not this
 * process (whose own fcntl locks would all be one owner's). */
struct tfs_owner {
	struct tfs_owner *next;		/* under owners_lock */
	uint64_t owner;			/* fuse_lk_in.owner, fuse_flush_in.lock_owner */
	int fd;
};

static pthread_mutex_t owners_lock = PTHREAD_MUTEX_INITIALIZER;

/* A duplicate of OWNER's description of NODE's file (the caller closes it),
 * opened on first use if CREATE; -ENOENT if it has none and CREATE is false.
 * A duplicate, so that a FLUSH closing the owner's fd meanwhile cannot make
 * a waiting F_OFD_SETLKW use a closed (or reused) fd number. */
static int owner_fd(struct tfs_inode *node, uint64_t owner, bool create)
{
	struct tfs_owner *o;
	int fd = -ENOENT;

	pthread_mutex_lock(&owners_lock);
	for (o = node->owners; o; o = o->next)
		if (o->owner == owner)
			break;
	if (!o && create) {
		struct proc_path path = proc_path(node->fd);

		o = calloc(1, sizeof(*o));
		if (!o) {
			fd = -ENOMEM;
			goto out;
		}
		/* Read and write, for F_RDLCK and F_WRLCK alike; O_NONBLOCK for FIFOs. */
		o->fd = open(path.s, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (o->fd < 0)
			o->fd = open(path.s, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (o->fd < 0) {
			fd = neg_errno();
			free(o);
			o = NULL;
			goto out;
		}
		o->owner = owner;
		o->next = node->owners;
		node->owners = o;
	}
	if (o) {
		fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			fd = neg_errno();
	}
out:
	pthread_mutex_unlock(&owners_lock);
	return fd;
}

/* OWNER closed a file of NODE: its POSIX locks on it go (closing its
 * description releases its OFD locks). */
static void owner_drop(struct tfs_inode *node, uint64_t owner)
{
	struct tfs_owner **p, *o = NULL;

	pthread_mutex_lock(&owners_lock);
	for (p = &node->owners; *p; p = &(*p)->next) {
		if ((*p)->owner == owner) {
			o = *p;
			*p = o->next;
			break;
		}
	}
	pthread_mutex_unlock(&owners_lock);
	if (o) {
		close(o->fd);
		free(o);
	}
}

static void owners_free(struct tfs_inode *node)
{
	while (node->owners) {
		struct tfs_owner *o = node->owners;

		node->owners = o->next;
		close(o->fd);
		free(o);
	}
}

static struct {
	pthread_mutex_t lock;
	struct tfs_inode **buckets;
	size_t nbuckets;		/* a power of two */
	size_t count;
	struct tfs_inode root;		/* never counted, never freed */
} table = { .lock = PTHREAD_MUTEX_INITIALIZER };

static size_t hash_of(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	return (size_t)(h ^ (h >> 29));
}

static struct tfs_inode *inode_of(fuse_ino_t nodeid)
{
	struct tfs_inode *node = (struct tfs_inode *)(uintptr_t)nodeid;

	if (nodeid == FUSE_ROOT_ID)
		return &table.root;
	if (node->magic != INODE_MAGIC)
		die_bad_id("node ID", nodeid);
	return node;
}

static fuse_ino_t nodeid_of(const struct tfs_inode *node)
{
	if (node == &table.root)
		return FUSE_ROOT_ID;
	return (fuse_ino_t)(uintptr_t)node;
}

/* Caller holds table.lock. */
static struct tfs_inode *table_find(dev_t dev, ino_t ino)
{
	struct tfs_inode *n;

	for (n = table.buckets[hash_of(dev, ino) & (table.nbuckets - 1)]; n; n = n->next)
		if (n->dev == dev && n->ino == ino)
			return n;
	return NULL;
}

/* Caller holds table.lock. Doubles the buckets when the table is full, so
 * chains stay short; a failed grow just keeps the old size. */
static int table_insert(struct tfs_inode *node)
{
	size_t h;

	if (table.count >= table.nbuckets) {
		size_t nb = table.nbuckets ? table.nbuckets * 2 : 1024;
		struct tfs_inode **b = calloc(nb, sizeof(*b));

		if (b) {
			for (size_t i = 0; i < table.nbuckets; i++) {
				struct tfs_inode *n, *next;

				for (n = table.buckets[i]; n; n = next) {
					next = n->next;
					h = hash_of(n->dev, n->ino) & (nb - 1);
					n->next = b[h];
					b[h] = n;
				}
			}
			free(table.buckets);
			table.buckets = b;
			table.nbuckets = nb;
		} else if (!table.nbuckets) {
			return -ENOMEM;
		}
	}
	h = hash_of(node->dev, node->ino) & (table.nbuckets - 1);
	node->next = table.buckets[h];
	table.buckets[h] = node;
	table.count++;
	return 0;
}

/* Caller holds table.lock. */
static void table_remove(struct tfs_inode *node)
{
	struct tfs_inode **p = &table.buckets[hash_of(node->dev, node->ino) & (table.nbuckets - 1)];

	while (*p != node)
		p = &(*p)->next;
	*p = node->next;
	table.count--;
}

static void remember_name(struct tfs_inode *node, const char *name)
{
	if (opt.crash_file)
		snprintf(node->name, sizeof(node->name), "%s", name);
}

/* Takes one lookup reference on the inode behind FD (which it consumes),
 * creating the table entry on the first one. */
static int table_ref(int fd, const struct stat *st, const char *name, struct tfs_inode **ret)
{
	_cleanup_close_ int owned = fd;
	struct tfs_inode *node;
	int r = 0;

	pthread_mutex_lock(&table.lock);
	node = table_find(st->st_dev, st->st_ino);
	if (node) {
		if (node != &table.root)
			node->nlookup++;
	} else {
		node = calloc(1, sizeof(*node));
		if (!node) {
			r = -ENOMEM;
			goto out;
		}
		node->magic = INODE_MAGIC;
		node->fd = owned;
		node->dev = st->st_dev;
		node->ino = st->st_ino;
		node->nlookup = 1;
		r = table_insert(node);
		if (r < 0) {
			free(node);
			goto out;
		}
		owned = -1;
	}
	remember_name(node, name);
	*ret = node;
out:
	pthread_mutex_unlock(&table.lock);
	return r;
}

/* Drops N lookup references; the inode goes when none are left. */
static void table_unref(fuse_ino_t nodeid, uint64_t n)
{
	struct tfs_inode *node = inode_of(nodeid);
	bool gone = false;

	if (node == &table.root)
		return;
	pthread_mutex_lock(&table.lock);
	if (n > node->nlookup) {
		fprintf(stderr, "testfs: forget of %" PRIu64 " references on node %#" PRIx64
			" which has %" PRIu64 "\n", n, (uint64_t)nodeid, node->nlookup);
		n = node->nlookup;
	}
	node->nlookup -= n;
	if (node->nlookup == 0) {
		table_remove(node);
		gone = true;
	}
	pthread_mutex_unlock(&table.lock);
	if (gone) {
		owners_free(node);
		close(node->fd);
		node->magic = 0;
		free(node);
	}
}

static void table_free(void)
{
	for (size_t i = 0; i < table.nbuckets; i++) {
		struct tfs_inode *n, *next;

		for (n = table.buckets[i]; n; n = next) {
			next = n->next;
			owners_free(n);
			if (n != &table.root) {
				close(n->fd);
				free(n);
			}
		}
	}
	free(table.buckets);
	table.buckets = NULL;
	table.nbuckets = table.count = 0;
	if (table.root.fd >= 0)
		close(table.root.fd);
}

/* ---- open files ------------------------------------------------------ */

/* A file handle is the backing fd with a per-run salt in the high half, so
 * that a handle from another run is caught instead of naming whatever file
 * now has that fd number. */
static uint32_t fh_salt;

static uint64_t fh_of_fd(int fd)
{
	return (uint64_t)fh_salt << 32 | (uint32_t)fd;
}

static int fd_of(const struct fuse_file_info *fi)
{
	if (fi->fh >> 32 != fh_salt)
		die_bad_id("file handle", fi->fh);
	return (int)(uint32_t)fi->fh;
}

static void fh_salt_init(void)
{
	if (getrandom(&fh_salt, sizeof(fh_salt), 0) != sizeof(fh_salt))
		fh_salt = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
	fh_salt |= 0x80000000u;		/* never a plain fd number */
}

/* ---- open directories ------------------------------------------------- */

/* A directory handle (fi->fh). Listed so that handles the kernel never
 * released can be freed at exit. */
struct tfs_dir {
	uint32_t magic;			/* DIR_MAGIC while the struct is live */
	struct tfs_dir *prev, *next;	/* under dirs.lock */
	pthread_mutex_t lock;		/* serialises readdir on this handle */
	DIR *dp;
	off_t offset;			/* where dp stands */
	struct dirent *pending;		/* read from dp but not yet returned */
};

static struct {
	pthread_mutex_t lock;
	struct tfs_dir head;
} dirs = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.head = { .prev = &dirs.head, .next = &dirs.head },
};

static struct tfs_dir *dir_of(const struct fuse_file_info *fi)
{
	struct tfs_dir *d = (struct tfs_dir *)(uintptr_t)fi->fh;

	if (d->magic != DIR_MAGIC)
		die_bad_id("directory handle", fi->fh);
	return d;
}

static void dir_free(struct tfs_dir *d)
{
	pthread_mutex_lock(&dirs.lock);
	d->prev->next = d->next;
	d->next->prev = d->prev;
	pthread_mutex_unlock(&dirs.lock);
	closedir(d->dp);
	pthread_mutex_destroy(&d->lock);
	d->magic = 0;
	free(d);
}

static void dirs_free(void)
{
	while (dirs.head.next != &dirs.head)
		dir_free(dirs.head.next);
}

/* ---- test hooks ------------------------------------------------------- */

/* Set in the thread serving a request that matched "after:" (it must die
 * instead of replying) or "hang-after:" (it must hang instead). */
static __thread enum { ARMED_NONE, ARMED_DIE, ARMED_HANG, ARMED_STALL } crash_armed;

static _Noreturn void die_now(void)
{
	kill(getpid(), SIGKILL);
	for (;;)
		pause();
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

enum crash_when { CRASH_BEFORE, CRASH_AFTER, CRASH_HANG, CRASH_HANG_AFTER, CRASH_STALL_AFTER };

/* Reads the crash file; returns 1 if it names OP (and NAME, if it has one),
 * with *when set from its prefix. */
static int crash_file_matches(enum tfs_op op, const char *name, enum crash_when *when)
{
	_cleanup_close_ int fd = open(opt.crash_file, O_RDONLY | O_CLOEXEC);
	char buf[PATH_MAX + 64], *p, *want_name;
	ssize_t n;
	size_t len;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (!buf[0])
		return 0;

	if (strncmp(buf, "before:", 7) == 0) {
		*when = CRASH_BEFORE;
		p = buf + 7;
	} else if (strncmp(buf, "after:", 6) == 0) {
		*when = CRASH_AFTER;
		p = buf + 6;
	} else if (strncmp(buf, "hang:", 5) == 0) {
		*when = CRASH_HANG;
		p = buf + 5;
	} else if (strncmp(buf, "hang-after:", 11) == 0) {
		*when = CRASH_HANG_AFTER;
		p = buf + 11;
	} else if (strncmp(buf, "stall-after:", 12) == 0) {
		*when = CRASH_STALL_AFTER;
		p = buf + 12;
	} else {
		static atomic_bool told;

		if (!atomic_exchange(&told, true))
			fprintf(stderr, "testfs: %s: bad content \"%s\"\n", opt.crash_file, buf);
		return 0;
	}
	want_name = strchr(p, ':');
	len = want_name ? (size_t)(want_name - p) : strlen(p);
	if (strlen(op_names[op]) != len || strncmp(p, op_names[op], len) != 0)
		return 0;
	if (want_name && fnmatch(want_name + 1, name ? name : "", FNM_PERIOD) != 0)
		return 0;
	return 1;
}

/* Held for ever by a thread that matched "hang:" or "hang-after:". */
static pthread_mutex_t hang_lock = PTHREAD_MUTEX_INITIALIZER;

/* A deadlock: this request is never answered, and nothing else either (every other thread
 * that starts an operation waits in hooks_run() too). */
static _Noreturn void hang_now(void)
{
	pthread_mutex_lock(&hang_lock);
	for (;;)
		pause();
}

static void hooks_run(enum tfs_op op, struct tfs_inode *node, const char *name)
{
	char node_name[NAME_MAX + 1];
	enum crash_when when;

	if (opt.delay_ms)
		sleep_ms(opt.delay_ms);
	if (!opt.crash_file)
		return;
	/* After a "hang:" every operation waits for ever. */
	pthread_mutex_lock(&hang_lock);
	pthread_mutex_unlock(&hang_lock);
	if (!name && node) {
		pthread_mutex_lock(&table.lock);
		memcpy(node_name, node->name, sizeof(node_name));
		pthread_mutex_unlock(&table.lock);
		name = node_name;
	}
	if (!crash_file_matches(op, name, &when))
		return;
	/* Of several threads that match at once, the one that unlinks wins. */
	if (unlink(opt.crash_file) < 0)
		return;
	if (when == CRASH_BEFORE)
		die_now();
	if (when == CRASH_HANG)
		hang_now();
	crash_armed = when == CRASH_HANG_AFTER	  ? ARMED_HANG
		      : when == CRASH_STALL_AFTER ? ARMED_STALL
						  : ARMED_DIE;
}

/* ---- --lazy-writes ----------------------------------------------------- */

/* A WRITE answered and not yet stored: SIZE bytes of DATA at OFF of FD. */
struct lazy_write {
	struct lazy_write *next;
	int fd;
	off_t off;
	size_t size;
	char data[];
};

static pthread_mutex_t lazy_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lazy_write *lazy_head;
static struct lazy_write **lazy_tail = &lazy_head;
static int lazy_error; /* the first failure to store not yet reported (lazy_take_error()) */

/* Queues a copy of a WRITE; false if out of memory. */
static bool lazy_queue(int fd, const char *buf, size_t size, off_t off)
{
	struct lazy_write *w = malloc(sizeof(*w) + size);

	if (!w)
		return false;
	*w = (struct lazy_write){ .fd = fd, .off = off, .size = size };
	memcpy(w->data, buf, size);
	pthread_mutex_lock(&lazy_lock);
	*lazy_tail = w;
	lazy_tail = &w->next;
	pthread_mutex_unlock(&lazy_lock);
	return true;
}

/* Stores every queued WRITE in order; the first failure (a short write is EIO) is kept
 * for lazy_take_error(). */
static void lazy_store(void)
{
	pthread_mutex_lock(&lazy_lock);
	while (lazy_head) {
		struct lazy_write *w = lazy_head;
		ssize_t n = pwrite(w->fd, w->data, w->size, w->off);

		if ((n < 0 || (size_t)n != w->size) && !lazy_error)
			lazy_error = n < 0 ? -errno : -EIO;
		lazy_head = w->next;
		free(w);
	}
	lazy_tail = &lazy_head;
	pthread_mutex_unlock(&lazy_lock);
}

/* The failure lazy_store() kept, as a negative errno, or 0; forgotten once taken. */
static int lazy_take_error(void)
{
	int r;

	pthread_mutex_lock(&lazy_lock);
	r = lazy_error;
	lazy_error = 0;
	pthread_mutex_unlock(&lazy_lock);
	return r;
}

/* Called at the start of every operation. NAME is the operation's name
 * argument, or NULL to use NODE's last looked-up name. Under --lazy-writes, every
 * operation but a WRITE, GETXATTR or LISTXATTR first stores the WRITEs answered before it;
 * FLUSH and FSYNC then report a failure with lazy_take_error(). (The kernel asks for
 * security.capability before every write(2) that may have to drop it: a daemon that
 * queues writes, as sshfs does, need not send them for that.) */
static inline void op_begin(enum tfs_op op, struct tfs_inode *node, const char *name)
{
	if (__builtin_expect(opt.hooks, 0))
		hooks_run(op, node, name);
	if (__builtin_expect(opt.lazy_writes, 0) && op != OP_WRITE && op != OP_GETXATTR &&
	    op != OP_LISTXATTR)
		lazy_store();
}

/* Called before every reply: the "after:" crash point. */
static inline void op_reply_point(void)
{
	if (__builtin_expect(opt.hooks, 0) && crash_armed == ARMED_DIE)
		die_now();
	if (__builtin_expect(opt.hooks, 0) && crash_armed == ARMED_HANG)
		hang_now();
	if (__builtin_expect(opt.hooks, 0) && crash_armed == ARMED_STALL)
		for (;;)
			pause();
}

/* ---- replies: each one passes the crash point ------------------------- */

static void reply_err(fuse_req_t req, int r)
{
	op_reply_point();
	fuse_reply_err(req, -r);
}

static void reply_entry(fuse_req_t req, int r, const struct fuse_entry_param *e)
{
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	op_reply_point();
	/* A reply the kernel did not take (interrupted request) took no ref. */
	if (fuse_reply_entry(req, e) < 0)
		table_unref(e->ino, 1);
}

/* Replies to a GETATTR or SETATTR of NODEID with ST, or with the error R < 0. */
static void reply_attr(fuse_req_t req, int r, fuse_ino_t nodeid, struct stat *st)
{
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	if (opt.ino_nodeid)
		st->st_ino = nodeid;
	op_reply_point();
	fuse_reply_attr(req, st, opt.cache_s);
}

static void reply_buf(fuse_req_t req, ssize_t r, const char *buf)
{
	if (r < 0) {
		reply_err(req, (int)r);
		return;
	}
	op_reply_point();
	fuse_reply_buf(req, buf, (size_t)r);
}

/* ---- lookups ---------------------------------------------------------- */

static int stat_node(struct tfs_inode *node, struct stat *st)
{
	if (fstatat(node->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	return 0;
}

/* Looks NAME up in DIR and takes a lookup reference for the reply in E. */
static int lookup_entry(struct tfs_inode *dir, const char *name, struct fuse_entry_param *e)
{
	_cleanup_close_ int fd = -1;
	struct tfs_inode *node;
	int r;

	memset(e, 0, sizeof(*e));
	fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	r = table_ref(TAKE_FD(fd), &e->attr, name, &node);
	if (r < 0)
		return r;
	e->ino = nodeid_of(node);
	if (opt.ino_nodeid)
		e->attr.st_ino = e->ino;
	e->attr_timeout = opt.cache_s;
	e->entry_timeout = opt.cache_s;
	return 0;
}

static void tfs_init(_unused_ void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* We write as root, which the backing store lets keep set-id bits:
	 * let the kernel clear them instead. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	if (opt.small_writes_if && access(opt.small_writes_if, F_OK) == 0)
		conn->max_write = 4096;
	if (opt.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else if (opt.writeback)
		fprintf(stderr, "testfs: --writeback: the kernel offers no writeback cache\n");
	/* libfuse asks for both when the operations exist; only --locks wants them. */
	if (opt.locks)
		conn->want |= conn->capable & (FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	else
		conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

static void tfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int r;

	op_begin(OP_LOOKUP, inode_of(parent), name);
	r = lookup_entry(inode_of(parent), name, &e);
	reply_entry(req, r, &e);
}

static void tfs_forget(fuse_req_t req, fuse_ino_t nodeid, uint64_t nlookup)
{
	op_begin(OP_FORGET, inode_of(nodeid), NULL);
	table_unref(nodeid, nlookup);
	op_reply_point();
	fuse_reply_none(req);
}

static void tfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	op_begin(OP_FORGET, NULL, NULL);
	for (size_t i = 0; i < count; i++)
		table_unref(forgets[i].ino, forgets[i].nlookup);
	op_reply_point();
	fuse_reply_none(req);
}

static void tfs_getattr(fuse_req_t req, fuse_ino_t nodeid, _unused_ struct fuse_file_info *fi)
{
	struct tfs_inode *node = inode_of(nodeid);
	struct stat st;
	int r;

	op_begin(OP_GETATTR, node, NULL);
	r = stat_node(node, &st);
	reply_attr(req, r, nodeid, &st);
}

/* FH, when the kernel sent one (ftruncate, open with O_TRUNC), is a file
 * opened for writing: it works where the path would not (mode 0444). */
static int apply_setattr(struct tfs_inode *node, const struct stat *attr, int valid,
			 const struct fuse_file_info *fi)
{
	const int fh = fi ? fd_of(fi) : -1;
	int r;

	if (valid & FUSE_SET_ATTR_MODE) {
		r = fh >= 0 ? fchmod(fh, attr->st_mode) : chmod(proc_path(node->fd).s, attr->st_mode);
		if (r < 0)
			return neg_errno();
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = valid & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t gid = valid & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;

		if (fchownat(node->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return neg_errno();
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		r = fh >= 0 ? ftruncate(fh, attr->st_size) : truncate(proc_path(node->fd).s, attr->st_size);
		if (r < 0)
			return neg_errno();
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
		     FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)) {
		struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };

		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		/* The /proc link of an O_PATH fd to a symlink names the symlink. */
		r = fh >= 0 ? futimens(fh, tv) : utimensat(AT_FDCWD, proc_path(node->fd).s, tv, 0);
		if (r < 0)
			return neg_errno();
	}
	return 0;
}

static void tfs_setattr(fuse_req_t req, fuse_ino_t nodeid, struct stat *attr, int valid,
			struct fuse_file_info *fi)
{
	struct tfs_inode *node = inode_of(nodeid);
	struct stat st;
	int r;

	op_begin(OP_SETATTR, node, NULL);
	r = apply_setattr(node, attr, valid, fi);
	if (r == 0)
		r = stat_node(node, &st);
	reply_attr(req, r, nodeid, &st);
}

static void tfs_readlink(fuse_req_t req, fuse_ino_t nodeid)
{
	struct tfs_inode *node = inode_of(nodeid);
	char buf[PATH_MAX + 1];
	ssize_t n;

	op_begin(OP_READLINK, node, NULL);
	n = readlinkat(node->fd, "", buf, sizeof(buf));
	if (n < 0) {
		reply_err(req, neg_errno());
		return;
	}
	if ((size_t)n >= sizeof(buf)) {
		reply_err(req, -ENAMETOOLONG);
		return;
	}
	buf[n] = '\0';
	op_reply_point();
	fuse_reply_readlink(req, buf);
}

/* ---- making and removing names ---------------------------------------- */

static void tfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct tfs_inode *dir = inode_of(parent);
	struct fuse_entry_param e;
	int r;

	op_begin(OP_MKNOD, dir, name);
	r = mknodat(dir->fd, name, mode, rdev) < 0 ? neg_errno() : lookup_entry(dir, name, &e);
	reply_entry(req, r, &e);
}

static void tfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct tfs_inode *dir = inode_of(parent);
	struct fuse_entry_param e;
	int r;

	op_begin(OP_MKDIR, dir, name);
	r = mkdirat(dir->fd, name, mode) < 0 ? neg_errno() : lookup_entry(dir, name, &e);
	reply_entry(req, r, &e);
}

static void tfs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	struct tfs_inode *dir = inode_of(parent);
	struct fuse_entry_param e;
	int r;

	op_begin(OP_SYMLINK, dir, name);
	r = symlinkat(target, dir->fd, name) < 0 ? neg_errno() : lookup_entry(dir, name, &e);
	reply_entry(req, r, &e);
}

static void tfs_link(fuse_req_t req, fuse_ino_t nodeid, fuse_ino_t newparent, const char *newname)
{
	struct tfs_inode *node = inode_of(nodeid), *dir = inode_of(newparent);
	struct fuse_entry_param e;
	int r;

	op_begin(OP_LINK, node, newname);
	/* Following the /proc link links the object itself, without needing
	 * CAP_DAC_READ_SEARCH as AT_EMPTY_PATH would. */
	r = linkat(AT_FDCWD, proc_path(node->fd).s, dir->fd, newname, AT_SYMLINK_FOLLOW);
	r = r < 0 ? neg_errno() : lookup_entry(dir, newname, &e);
	reply_entry(req, r, &e);
}

/*
 * The kernel removes a name only through a dentry it looked up, so the inode behind @name holds
 * a lookup here. A removal of a name whose inode this process never gave out in a LOOKUP's (or a
 * CREATE's...) answer is a bug in whoever sent it: fuse-overlayfs frees such a node twice. Dies
 * loudly, as for an ID this process never handed out. What the name names is read from the
 * backing directory now, not from the kernel's dentry: a test that puts another file under a
 * name in the backing directory must not remove that name through the mount while the kernel
 * may still cache the old entry (--cache-s).
 */
static void need_looked_up(const char *what, struct tfs_inode *dir, const char *name)
{
	struct stat st;
	bool known;

	if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return; /* The removal fails the same way. */
	pthread_mutex_lock(&table.lock);
	known = table_find(st.st_dev, st.st_ino) != NULL;
	pthread_mutex_unlock(&table.lock);
	if (!known) {
		fprintf(stderr, "testfs: %s of \"%s\", whose inode was never looked up, aborting\n",
			what, name);
		abort();
	}
}

static void tfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tfs_inode *dir = inode_of(parent);

	op_begin(OP_UNLINK, dir, name);
	need_looked_up("UNLINK", dir, name);
	reply_err(req, unlinkat(dir->fd, name, 0) < 0 ? neg_errno() : 0);
}

static void tfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tfs_inode *dir = inode_of(parent);

	op_begin(OP_RMDIR, dir, name);
	need_looked_up("RMDIR", dir, name);
	reply_err(req, unlinkat(dir->fd, name, AT_REMOVEDIR) < 0 ? neg_errno() : 0);
}

static void tfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct tfs_inode *dir = inode_of(parent), *newdir = inode_of(newparent);
	int r;

	op_begin(OP_RENAME, dir, name);
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		r = -EINVAL;
	else if (renameat2(dir->fd, name, newdir->fd, newname, flags) < 0)
		r = neg_errno();
	else
		r = 0;
	reply_err(req, r);
}

/* ---- files ------------------------------------------------------------ */

/* Flags the kernel passes that would be wrong on the backing open: the
 * kernel has already resolved the path and created the file. */
#define OPEN_FLAGS_DROPPED (O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW)

/* The backing open's flags for the kernel's FLAGS (--writeback: see the header). */
static int backing_flags(int flags)
{
	if (opt.writeback) {
		flags &= ~O_APPEND;
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
	}
	return flags;
}

static void tfs_open(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi)
{
	struct tfs_inode *node = inode_of(nodeid);
	int fd;

	op_begin(OP_OPEN, node, NULL);
	fd = open(proc_path(node->fd).s, backing_flags(fi->flags & ~OPEN_FLAGS_DROPPED) | O_CLOEXEC);
	if (fd < 0) {
		reply_err(req, neg_errno());
		return;
	}
	fi->fh = fh_of_fd(fd);
	op_reply_point();
	if (fuse_reply_open(req, fi) < 0)
		close(fd);
}

static void tfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	struct tfs_inode *dir = inode_of(parent);
	_cleanup_close_ int fd = -1;
	struct fuse_entry_param e;
	int r;

	op_begin(OP_CREATE, dir, name);
	fd = openat(dir->fd, name,
		    backing_flags(fi->flags & ~(O_NOFOLLOW | O_NOCTTY)) | O_CREAT | O_CLOEXEC, mode);
	if (fd < 0) {
		reply_err(req, neg_errno());
		return;
	}
	r = lookup_entry(dir, name, &e);
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	fi->fh = fh_of_fd(fd);
	op_reply_point();
	if (fuse_reply_create(req, &e, fi) < 0)
		table_unref(e.ino, 1);
	else
		fd = -1;	/* the kernel owns it now */
}

static void *inval_thread(void *arg)
{
	fuse_lowlevel_notify_inval_inode(session, (fuse_ino_t)(uintptr_t)arg, 0, 0);
	return NULL;
}

/* As a daemon whose background work invalidates a file while a READ of it is being served. */
static void inval_from_another_thread(fuse_ino_t nodeid)
{
	pthread_t t;

	if (pthread_create(&t, NULL, inval_thread, (void *)(uintptr_t)nodeid) == 0)
		pthread_detach(t);
	usleep(200 * 1000);
}

static void tfs_read(fuse_req_t req, fuse_ino_t nodeid, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	_cleanup_free_ char *buf = NULL;
	ssize_t n;

	op_begin(OP_READ, inode_of(nodeid), NULL);
	if (opt.inval_on_read)
		inval_from_another_thread(nodeid);
	buf = malloc(size ? size : 1);
	if (!buf) {
		reply_err(req, -ENOMEM);
		return;
	}
	n = pread(fd_of(fi), buf, size, off);
	reply_buf(req, n < 0 ? neg_errno() : n, buf);
}

static void tfs_write(fuse_req_t req, fuse_ino_t nodeid, const char *buf, size_t size,
		      off_t off, struct fuse_file_info *fi)
{
	ssize_t n;

	op_begin(OP_WRITE, inode_of(nodeid), NULL);
	if (opt.lazy_writes) {
		if (!lazy_queue(fd_of(fi), buf, size, off)) {
			reply_err(req, -ENOMEM);
			return;
		}
		op_reply_point();
		fuse_reply_write(req, size);
		return;
	}
	n = pwrite(fd_of(fi), buf, size, off);
	if (n < 0) {
		reply_err(req, neg_errno());
		return;
	}
	op_reply_point();
	fuse_reply_write(req, (size_t)n);
}

static void tfs_flush(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi)
{
	int fd;

	op_begin(OP_FLUSH, inode_of(nodeid), NULL);
	if (opt.lazy_writes && (fd = lazy_take_error()) < 0) {
		reply_err(req, fd);
		return;
	}
	/* The kernel sends the closing process's lock owner: its POSIX locks on
	 * the file go, as close(2) drops them (--locks). */
	if (opt.locks)
		owner_drop(inode_of(nodeid), fi->lock_owner);
	/* Closing a duplicate gives the backing store its close-time flush
	 * (and drops POSIX locks) while the handle stays open. */
	fd = dup(fd_of(fi));
	if (fd < 0) {
		reply_err(req, neg_errno());
		return;
	}
	reply_err(req, close(fd) < 0 ? neg_errno() : 0);
}

static void tfs_release(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi)
{
	op_begin(OP_RELEASE, inode_of(nodeid), NULL);
	/* FUSE_RELEASE_FLOCK_UNLOCK names the file as lock owner: its flock lock
	 * goes with the fd; OFD locks (whose owner is the file too) go here. */
	if (opt.locks && fi->flock_release)
		owner_drop(inode_of(nodeid), fi->lock_owner);
	close(fd_of(fi));
	reply_err(req, 0);
}

static void tfs_fsync(fuse_req_t req, fuse_ino_t nodeid, int datasync, struct fuse_file_info *fi)
{
	int r;

	op_begin(OP_FSYNC, inode_of(nodeid), NULL);
	if (opt.lazy_writes && (r = lazy_take_error()) < 0) {
		reply_err(req, r);
		return;
	}
	r = datasync ? fdatasync(fd_of(fi)) : fsync(fd_of(fi));
	reply_err(req, r < 0 ? neg_errno() : 0);
}

static void tfs_fallocate(fuse_req_t req, fuse_ino_t nodeid, int mode, off_t offset,
			  off_t length, struct fuse_file_info *fi)
{
	op_begin(OP_FALLOCATE, inode_of(nodeid), NULL);
	reply_err(req, fallocate(fd_of(fi), mode, offset, length) < 0 ? neg_errno() : 0);
}

static void tfs_lseek(fuse_req_t req, fuse_ino_t nodeid, off_t off, int whence,
		      struct fuse_file_info *fi)
{
	off_t r;

	op_begin(OP_LSEEK, inode_of(nodeid), NULL);
	r = lseek(fd_of(fi), off, whence);
	if (r < 0) {
		reply_err(req, neg_errno());
		return;
	}
	op_reply_point();
	fuse_reply_lseek(req, r);
}

/* ---- directories ------------------------------------------------------ */

static void tfs_opendir(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi)
{
	struct tfs_inode *node = inode_of(nodeid);
	_cleanup_close_ int fd = -1;
	struct tfs_dir *d;

	op_begin(OP_OPENDIR, node, NULL);
	fd = openat(node->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		reply_err(req, neg_errno());
		return;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		reply_err(req, -ENOMEM);
		return;
	}
	d->dp = fdopendir(fd);
	if (!d->dp) {
		free(d);
		reply_err(req, neg_errno());
		return;
	}
	fd = -1;
	d->magic = DIR_MAGIC;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_lock(&dirs.lock);
	d->next = dirs.head.next;
	d->prev = &dirs.head;
	d->next->prev = d;
	dirs.head.next = d;
	pthread_mutex_unlock(&dirs.lock);

	fi->fh = (uint64_t)(uintptr_t)d;
	op_reply_point();
	if (fuse_reply_open(req, fi) < 0)
		dir_free(d);
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* Adds DE to BUF as a readdirplus record. The kernel takes a lookup
 * reference for every entry except "." and ".." (7.21), so those get no
 * node, and neither does an entry that vanished meanwhile (node ID 0 tells
 * the kernel to treat it like plain readdir). *REF is the node referenced,
 * or 0. Returns the record's size, which may exceed BUFSIZE (not added). */
static size_t add_entry_plus(fuse_req_t req, struct tfs_inode *dir, char *buf, size_t bufsize,
			     const struct dirent *de, fuse_ino_t *ref)
{
	struct fuse_entry_param e;
	size_t n;

	*ref = 0;
	if (is_dot_or_dotdot(de->d_name) || lookup_entry(dir, de->d_name, &e) < 0) {
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = de->d_ino;
		e.attr.st_mode = (mode_t)DTTOIF(de->d_type);
	}
	n = fuse_add_direntry_plus(req, buf, bufsize, de->d_name, &e, de->d_off);
	if (n > bufsize) {
		if (e.ino)
			table_unref(e.ino, 1);
	} else {
		*ref = e.ino;
	}
	return n;
}

static size_t add_entry(fuse_req_t req, char *buf, size_t bufsize, const struct dirent *de)
{
	struct stat st = { .st_ino = de->d_ino, .st_mode = (mode_t)DTTOIF(de->d_type) };

	return fuse_add_direntry(req, buf, bufsize, de->d_name, &st, de->d_off);
}

static void do_readdir(fuse_req_t req, fuse_ino_t nodeid, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct tfs_inode *dir = inode_of(nodeid);
	struct tfs_dir *d = dir_of(fi);
	_cleanup_free_ char *buf = NULL;
	_cleanup_free_ fuse_ino_t *refs = NULL;
	size_t used = 0, nrefs = 0;
	int r = 0;

	op_begin(plus ? OP_READDIRPLUS : OP_READDIR, dir, NULL);
	buf = malloc(size ? size : 1);
	if (plus) {
		/* No more records fit than records with a one-letter name. */
		size_t smallest = fuse_add_direntry_plus(req, NULL, 0, "x", NULL, 0);

		refs = calloc(size / smallest + 1, sizeof(*refs));
	}
	if (!buf || (plus && !refs)) {
		reply_err(req, -ENOMEM);
		return;
	}

	pthread_mutex_lock(&d->lock);
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->offset = off;
		d->pending = NULL;
	}
	for (;;) {
		struct dirent *de = d->pending;
		fuse_ino_t ref = 0;
		size_t n;

		if (!de) {
			errno = 0;
			de = readdir(d->dp);
			if (!de) {
				r = errno ? neg_errno() : 0;
				break;
			}
			d->pending = de;
		}
		if (plus)
			n = add_entry_plus(req, dir, buf + used, size - used, de, &ref);
		else
			n = add_entry(req, buf + used, size - used, de);
		if (n > size - used)
			break;
		if (ref)
			refs[nrefs++] = ref;
		used += n;
		d->offset = de->d_off;
		d->pending = NULL;
	}
	pthread_mutex_unlock(&d->lock);

	/* Entries already read are returned; an error shows on the next call. */
	if (used > 0)
		r = 0;
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	op_reply_point();
	if (fuse_reply_buf(req, buf, used) < 0)
		for (size_t i = 0; i < nrefs; i++)
			table_unref(refs[i], 1);
}

static void tfs_readdir(fuse_req_t req, fuse_ino_t nodeid, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	do_readdir(req, nodeid, size, off, fi, false);
}

static void tfs_readdirplus(fuse_req_t req, fuse_ino_t nodeid, size_t size, off_t off,
			    struct fuse_file_info *fi)
{
	do_readdir(req, nodeid, size, off, fi, true);
}

static void tfs_releasedir(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi)
{
	op_begin(OP_RELEASEDIR, inode_of(nodeid), NULL);
	dir_free(dir_of(fi));
	reply_err(req, 0);
}

static void tfs_fsyncdir(fuse_req_t req, fuse_ino_t nodeid, int datasync, struct fuse_file_info *fi)
{
	int fd = dirfd(dir_of(fi)->dp), r;

	op_begin(OP_FSYNCDIR, inode_of(nodeid), NULL);
	r = datasync ? fdatasync(fd) : fsync(fd);
	reply_err(req, r < 0 ? neg_errno() : 0);
}

static void tfs_statfs(fuse_req_t req, fuse_ino_t nodeid)
{
	struct tfs_inode *node = inode_of(nodeid);
	struct statvfs sv;

	op_begin(OP_STATFS, node, NULL);
	if (fstatvfs(node->fd, &sv) < 0) {
		reply_err(req, neg_errno());
		return;
	}
	op_reply_point();
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes ---------------------------------------------- */

static void tfs_setxattr(fuse_req_t req, fuse_ino_t nodeid, const char *name,
			 const char *value, size_t size, int flags)
{
	struct tfs_inode *node = inode_of(nodeid);
	int r;

	op_begin(OP_SETXATTR, node, NULL);
	if (strcmp(name, "user.fktest.store") == 0) {
		struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

		buf.buf[0].mem = (void *)value;
		r = fuse_lowlevel_notify_store(session, nodeid, 0, &buf, 0);
		reply_err(req, r);
		return;
	}
	r = setxattr(proc_path(node->fd).s, name, value, size, flags);
	reply_err(req, r < 0 ? neg_errno() : 0);
}

/* getxattr and listxattr: SIZE 0 asks for the size only. */
static void reply_xattr(fuse_req_t req, size_t size, ssize_t n, const char *buf)
{
	if (n < 0) {
		reply_err(req, (int)n);
		return;
	}
	op_reply_point();
	if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void tfs_getxattr(fuse_req_t req, fuse_ino_t nodeid, const char *name, size_t size)
{
	struct tfs_inode *node = inode_of(nodeid);
	_cleanup_free_ char *buf = NULL;
	ssize_t n;

	op_begin(OP_GETXATTR, node, NULL);
	if (size && !(buf = malloc(size))) {
		reply_err(req, -ENOMEM);
		return;
	}
	n = getxattr(proc_path(node->fd).s, name, buf, size);
	reply_xattr(req, size, n < 0 ? neg_errno() : n, buf);
}

static void tfs_listxattr(fuse_req_t req, fuse_ino_t nodeid, size_t size)
{
	struct tfs_inode *node = inode_of(nodeid);
	_cleanup_free_ char *buf = NULL;
	ssize_t n;

	op_begin(OP_LISTXATTR, node, NULL);
	if (size && !(buf = malloc(size))) {
		reply_err(req, -ENOMEM);
		return;
	}
	n = listxattr(proc_path(node->fd).s, buf, size);
	reply_xattr(req, size, n < 0 ? neg_errno() : n, buf);
}

static void tfs_removexattr(fuse_req_t req, fuse_ino_t nodeid, const char *name)
{
	struct tfs_inode *node = inode_of(nodeid);

	op_begin(OP_REMOVEXATTR, node, NULL);
	reply_err(req, removexattr(proc_path(node->fd).s, name) < 0 ? neg_errno() : 0);
}

/* ---- locks (--locks) -------------------------------------------------- */

static void tfs_getlk(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi,
		      struct flock *lock)
{
	struct tfs_inode *node = inode_of(nodeid);
	_cleanup_close_ int fd = -1;

	op_begin(OP_GETLK, node, NULL);
	/* The owner's own description: its own locks do not conflict. */
	fd = owner_fd(node, fi->lock_owner, true);
	if (fd < 0) {
		reply_err(req, fd);
		return;
	}
	lock->l_pid = 0;
	if (fcntl(fd, F_OFD_GETLK, lock) < 0) {
		reply_err(req, neg_errno());
		return;
	}
	/* An OFD lock has no pid (-1): one of this daemon's owners. */
	if (lock->l_pid < 0)
		lock->l_pid = 0;
	op_reply_point();
	fuse_reply_lock(req, lock);
}

static void tfs_setlk(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi,
		      struct flock *lock, int sleep)
{
	struct tfs_inode *node = inode_of(nodeid);
	_cleanup_close_ int fd = -1;

	op_begin(OP_SETLK, node, NULL);
	fd = owner_fd(node, fi->lock_owner, lock->l_type != F_UNLCK);
	if (fd == -ENOENT) {
		/* Unlocking what an owner without a description cannot hold. */
		reply_err(req, 0);
		return;
	}
	if (fd < 0) {
		reply_err(req, fd);
		return;
	}
	lock->l_pid = 0;
	if (fcntl(fd, sleep ? F_OFD_SETLKW : F_OFD_SETLK, lock) < 0) {
		reply_err(req, errno == EACCES ? -EAGAIN : neg_errno());
		return;
	}
	reply_err(req, 0);
}

/* OP is flock(2)'s: LOCK_SH, LOCK_EX or LOCK_UN, with LOCK_NB for SETLK. */
static void tfs_flock(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi, int op)
{
	op_begin(OP_FLOCK, inode_of(nodeid), NULL);
	reply_err(req, flock(fd_of(fi), op) < 0 ? neg_errno() : 0);
}

static const struct fuse_lowlevel_ops tfs_ops = {
	.init		= tfs_init,
	.lookup		= tfs_lookup,
	.forget		= tfs_forget,
	.forget_multi	= tfs_forget_multi,
	.getattr	= tfs_getattr,
	.setattr	= tfs_setattr,
	.readlink	= tfs_readlink,
	.mknod		= tfs_mknod,
	.mkdir		= tfs_mkdir,
	.symlink	= tfs_symlink,
	.link		= tfs_link,
	.unlink		= tfs_unlink,
	.rmdir		= tfs_rmdir,
	.rename		= tfs_rename,
	.open		= tfs_open,
	.create		= tfs_create,
	.read		= tfs_read,
	.write		= tfs_write,
	.flush		= tfs_flush,
	.release	= tfs_release,
	.fsync		= tfs_fsync,
	.opendir	= tfs_opendir,
	.readdir	= tfs_readdir,
	.readdirplus	= tfs_readdirplus,
	.releasedir	= tfs_releasedir,
	.fsyncdir	= tfs_fsyncdir,
	.statfs		= tfs_statfs,
	.setxattr	= tfs_setxattr,
	.getxattr	= tfs_getxattr,
	.listxattr	= tfs_listxattr,
	.removexattr	= tfs_removexattr,
	.fallocate	= tfs_fallocate,
	.lseek		= tfs_lseek,
	.getlk		= tfs_getlk,
	.setlk		= tfs_setlk,
	.flock		= tfs_flock,
};

/* ---- start-up --------------------------------------------------------- */

static _Noreturn void usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: testfs --backing=DIR [--single] [--writeback] [--locks]\n"
		"              [--fail-start-if=FILE] [--slow-start-if=FILE]\n"
		"              [--crash-file=FILE] [--delay-ms=N] [--cache-s=S]\n"
		"              [--small-writes-if=FILE]\n"
		"              [--inval-on-read] [--ino-nodeid] [--lazy-writes]\n"
		"              [-o FUSE-OPTS] [-f] [-d]\n"
		"              MOUNTPOINT\n");
	exit(status);
}

static const char *opt_value(const char *arg, const char *name)
{
	size_t len = strlen(name);

	if (strncmp(arg, name, len) == 0 && arg[len] == '=')
		return arg + len + 1;
	return NULL;
}

/* Parses ARGV into opt; FUSE options go to ARGS. Exits 2 on bad usage. */
static void parse_args(int argc, char *argv[], struct fuse_args *args)
{
	opt.cache_s = 1.0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		bool ok = true;

		if ((v = opt_value(a, "--backing"))) {
			opt.backing = v;
		} else if ((v = opt_value(a, "--fail-start-if"))) {
			opt.fail_start_if = v;
		} else if ((v = opt_value(a, "--slow-start-if"))) {
			opt.slow_start_if = v;
		} else if (strcmp(a, "--inval-on-read") == 0) {
			opt.inval_on_read = true;
		} else if (strcmp(a, "--ino-nodeid") == 0) {
			opt.ino_nodeid = true;
		} else if (strcmp(a, "--lazy-writes") == 0) {
			opt.lazy_writes = true;
		} else if (strcmp(a, "--writeback") == 0) {
			opt.writeback = true;
		} else if (strcmp(a, "--locks") == 0) {
			opt.locks = true;
		} else if ((v = opt_value(a, "--small-writes-if"))) {
			opt.small_writes_if = v;
		} else if ((v = opt_value(a, "--crash-file"))) {
			opt.crash_file = v;
		} else if ((v = opt_value(a, "--delay-ms"))) {
			char *end;
			unsigned long ms;

			errno = 0;
			ms = strtoul(v, &end, 10);
			if (errno || end == v || *end || ms > 3600000) {
				fprintf(stderr, "testfs: bad --delay-ms: %s\n", v);
				usage(2);
			}
			opt.delay_ms = (unsigned)ms;
		} else if ((v = opt_value(a, "--cache-s"))) {
			char *end;

			errno = 0;
			opt.cache_s = strtod(v, &end);
			if (errno || end == v || *end || !(opt.cache_s >= 0 && opt.cache_s <= 86400)) {
				fprintf(stderr, "testfs: bad --cache-s: %s\n", v);
				usage(2);
			}
		} else if (strcmp(a, "--single") == 0 || strcmp(a, "-s") == 0) {
			opt.single = true;
		} else if (strcmp(a, "-f") == 0) {
			/* always in the foreground */
		} else if (strcmp(a, "-d") == 0 || strcmp(a, "--debug") == 0) {
			ok = fuse_opt_add_arg(args, "-d") == 0;
		} else if (strcmp(a, "-o") == 0) {
			if (++i == argc)
				usage(2);
			ok = fuse_opt_add_arg(args, "-o") == 0 && fuse_opt_add_arg(args, argv[i]) == 0;
		} else if (strncmp(a, "-o", 2) == 0) {
			ok = fuse_opt_add_arg(args, a) == 0;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(0);
		} else if (a[0] == '-' || opt.mountpoint) {
			fprintf(stderr, "testfs: unexpected argument: %s\n", a);
			usage(2);
		} else {
			opt.mountpoint = a;
		}
		if (!ok) {
			fprintf(stderr, "testfs: out of memory\n");
			exit(1);
		}
	}
	if (!opt.backing || !opt.mountpoint)
		usage(2);
	opt.hooks = opt.crash_file || opt.delay_ms;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --slow-start-if: a daemon that takes long to start, asleep or busy. */
static void slow_start(const char *file)
{
	char buf[64] = "", how[16];
	unsigned ms;
	FILE *f = fopen(file, "re");

	if (!f)
		return;
	if (!fgets(buf, sizeof(buf), f) || sscanf(buf, "%15s %u", how, &ms) != 2 ||
	    (strcmp(how, "sleep") && strcmp(how, "spin"))) {
		fprintf(stderr, "testfs: %s: expected \"sleep MS\" or \"spin MS\", got \"%s\"\n",
			file, buf);
		exit(2);
	}
	fclose(f);
	fprintf(stderr, "testfs: %s: %s %u ms before serving\n", file, how, ms);
	if (!strcmp(how, "sleep")) {
		sleep_ms(ms);
	} else {
		int64_t end = mono_ms() + ms;
		volatile uint64_t x = 0;

		while (mono_ms() < end)
			for (int i = 0; i < 100000; i++)
				x += i;
	}
}

static int root_init(void)
{
	struct stat st;

	table.root.fd = open(opt.backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (table.root.fd < 0 || fstat(table.root.fd, &st) < 0)
		return neg_errno();
	table.root.magic = INODE_MAGIC;
	table.root.dev = st.st_dev;
	table.root.ino = st.st_ino;
	return table_insert(&table.root);
}

/*
 * Like any passthrough daemon, testfs keeps an O_PATH fd for every node the kernel knows: a walk
 * of a few thousand names needs more than the usual soft limit of 1024 fds. Raises the soft
 * limit to the hard one; a failure only leaves the limit as it was.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			fprintf(stderr, "testfs: cannot raise the fd limit: %s\n", strerror(errno));
	}
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *config = NULL;
	struct fuse_session *se = NULL;
	int r, status = 1;

	table.root.fd = -1;
	if (fuse_opt_add_arg(&args, argv[0]) < 0)
		return 1;
	parse_args(argc, argv, &args);

	if (opt.fail_start_if && access(opt.fail_start_if, F_OK) == 0) {
		fprintf(stderr, "testfs: %s exists, refusing to start\n", opt.fail_start_if);
		fuse_opt_free_args(&args);
		return 3;
	}
	if (opt.slow_start_if)
		slow_start(opt.slow_start_if);

	raise_fd_limit();
	fh_salt_init();
	/* The kernel has applied the caller's umask already. */
	umask(0);

	r = root_init();
	if (r < 0) {
		fprintf(stderr, "testfs: Failed to open backing directory %s: %s\n",
			opt.backing, strerror(-r));
		goto out;
	}

	se = fuse_session_new(&args, &tfs_ops, sizeof(tfs_ops), NULL);
	session = se;
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) < 0)
		goto out;
	if (fuse_session_mount(se, opt.mountpoint) < 0)
		goto out_signals;

	if (opt.single) {
		r = fuse_session_loop(se);
	} else {
		config = fuse_loop_cfg_create();
		if (!config) {
			fprintf(stderr, "testfs: out of memory\n");
			goto out_unmount;
		}
		fuse_loop_cfg_set_clone_fd(config, 0);
		r = fuse_session_loop_mt(se, config);
	}
	/* The loop returns the number of the signal that stopped it, which is
	 * an orderly exit, or a negative errno. */
	status = r < 0 ? 1 : 0;

out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out:
	if (se)
		fuse_session_destroy(se);
	if (config)
		fuse_loop_cfg_destroy(config);
	fuse_opt_free_args(&args);
	dirs_free();
	table_free();
	return status;
}
