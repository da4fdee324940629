/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Proxy mode's view of a message body: the node IDs and handles a request carries, where its row
 * of the opcode table says they sit, rewritten from the kernel's values to the current daemon's
 * and back; the names a request carries; the records of a READDIRPLUS reply. Nothing here sends
 * or waits.
 */
#include "translate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static bool fh_present(const struct op_info *op, const void *b)
{
	switch ((enum op_fh_when)op->fh_when) {
	case FH_ALWAYS:
		return op->fh_off >= 0;
	case FH_GETATTR:
		return ((const struct fuse_getattr_in *)b)->getattr_flags & FUSE_GETATTR_FH;
	case FH_SETATTR:
		return ((const struct fuse_setattr_in *)b)->valid & FATTR_FH;
	case FH_NEVER:
	default:
		return false;
	}
}

void request_kernel_ids(struct msg *m, const struct op_info *op)
{
	const void *b = body(m);

	m->knode = msg_in(m)->nodeid;
	if (op->node2_off >= 0)
		m->knode2 = get64(b, op->node2_off);
	if (fh_present(op, b))
		m->kfh = get64(b, op->fh_off);
	if (op->fh2_off >= 0)
		m->kfh2 = get64(b, op->fh2_off);
}

int translate_request(struct proxy *p, struct msg *m, const struct op_info *op)
{
	struct fuse_in_header *h = msg_in(m);
	void *b = body(m);
	bool fh = fh_present(op, b);
	uint64_t v;
	int r;

	/* Save the kernel's values first: a replay translates again from them. */
	request_kernel_ids(m, op);

	if (op->node && h->nodeid) {
		r = node_to_daemon(&p->nodes, m->knode, &v);
		if (r < 0)
			return r;
		h->nodeid = v;
	}
	if (op->node2_off >= 0) {
		r = node_to_daemon(&p->nodes, m->knode2, &v);
		if (r < 0)
			return r;
		put64(b, op->node2_off, v);
	}
	if (fh) {
		r = handle_to_daemon(&p->handles, m->kfh, &v);
		if (r < 0)
			return r;
		put64(b, op->fh_off, v);
	}
	if (op->fh2_off >= 0) {
		r = handle_to_daemon(&p->handles, m->kfh2, &v);
		if (r < 0)
			return r;
		put64(b, op->fh2_off, v);
	}
	return 0;
}

void restore_request(struct msg *m, const struct op_info *op)
{
	void *b = body(m);

	msg_in(m)->nodeid = m->knode;
	if (op->node2_off >= 0)
		put64(b, op->node2_off, m->knode2);
	if (fh_present(op, b))
		put64(b, op->fh_off, m->kfh);
	if (op->fh2_off >= 0)
		put64(b, op->fh2_off, m->kfh2);
}

int request_names(struct msg *m, const struct op_info *op, const char *names[2])
{
	const char *s = (const char *)body(m) + op->in_size;
	const char *end = (const char *)body(m) + body_len(m);

	names[0] = names[1] = NULL;
	for (unsigned i = 0; i < op->names && i < 2; i++) {
		const char *nul = memchr(s, '\0', end - s);

		if (s >= end || !nul)
			return -EPROTO;
		names[i] = s;
		s = nul + 1;
	}
	return 0;
}

void trace_request(const char *who, struct msg *m)
{
	const struct op_info *op;
	const char *names[2];
	char extra[2200];

	/* On every request: nothing before this test, not even clearing @extra. */
	if (log_max_level < LOG_TRACE)
		return;
	extra[0] = '\0';
	op = op_get(msg_in(m)->opcode);
	if (op && op->names && request_names(m, op, names) == 0) {
		if (op->node2_off >= 0 && names[1])
			snprintf(extra, sizeof(extra), " \"%s\" -> node %" PRIu64 " \"%s\"", names[0],
				 get64(body(m), op->node2_off), names[1]);
		else if (op->node2_off >= 0)
			snprintf(extra, sizeof(extra), " node %" PRIu64 " as \"%s\"",
				 get64(body(m), op->node2_off), names[0]);
		else
			snprintf(extra, sizeof(extra), " \"%s\"%s%s%s", names[0],
				 names[1] ? " \"" : "", names[1] ? names[1] : "",
				 names[1] ? "\"" : "");
	}
	log_msg(LOG_TRACE, "%s: %s unique %" PRIu64 " node %" PRIu64 "%s", who,
		op ? op->name : "?", msg_in(m)->unique, msg_in(m)->nodeid, extra);
}

/* Walks READDIRPLUS records; calls @fn on each entry the kernel takes a lookup of. */
int each_direntplus(char *buf, size_t len, int (*fn)(struct fuse_direntplus *d, void *arg),
			   void *arg)
{
	size_t off = 0;

	while (off < len) {
		struct fuse_direntplus *d = (struct fuse_direntplus *)(buf + off);
		size_t reclen;

		if (len - off < FUSE_NAME_OFFSET_DIRENTPLUS)
			return -EPROTO;
		if (d->dirent.namelen == 0 || d->dirent.namelen > 1024)
			return -EPROTO;
		reclen = FUSE_DIRENTPLUS_SIZE(d);
		if (reclen > len - off)
			return -EPROTO;
		/* "." and ".." carry no lookup (protocol 7.21 READDIRPLUS). */
		bool dot = d->dirent.name[0] == '.' &&
			   (d->dirent.namelen == 1 ||
			    (d->dirent.namelen == 2 && d->dirent.name[1] == '.'));
		if (d->entry_out.nodeid && !dot) {
			int r = fn(d, arg);
			if (r < 0)
				return r;
		}
		off += reclen;
	}
	return 0;
}
