/*
 * pyrt-init: the child side of pyrt.
 *
 * The Python parent plans; this program executes the plan. It runs as the first process of a
 * new container (and as the joining process of `pyrt exec`), started from a sealed memfd copy
 * of itself so that no host file is reachable through /proc/<pid>/exe (CVE-2019-5736). It never
 * runs Python, so the container is not charged for an interpreter.
 *
 *   pyrt-init SYNC_FD PLAN_FD
 *
 * SYNC_FD is a SOCK_SEQPACKET socket to the parent, PLAN_FD a memfd holding the plan (its
 * format: pyrt/steps.py). The init waits for GO on SYNC_FD (the parent first takes hold of what
 * it needs of the new process, e.g. its network namespace), reads the whole plan and checks it
 * against the table generated from pyrt/steps.py (plan.c), then executes it step by step. The
 * messages to the parent are named in pyrt/protocol.py (SYNC_* in steps.h); the diagram of the
 * protocol is in docs/architecture.md.
 *
 * A failure is reported to whoever still listens: the parent over SYNC_FD while it is there
 * (`create`, `exec`, `run`); once `create` has returned, the container's stderr, and after
 * wait-start the exec fifo too, where `start` reads it.
 */
#define _GNU_SOURCE
#define PYRT_STEP_FUNCTIONS
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "init.h"

struct ctx ctx = { .sync = -1, .root = -1, .fifo = -1 };

/* One message to the parent: up to four NUL-terminated fields in one datagram. */
void send_msg(const char *a, const char *b, const char *c, const char *d)
{
	char buf[8192];
	size_t n = 0;
	const char *parts[] = { a, b, c, d };
	if (ctx.sync < 0)
		return;
	for (int i = 0; i < 4 && parts[i]; i++) {
		size_t len = strnlen(parts[i], sizeof buf - n - 1);
		memcpy(buf + n, parts[i], len);
		n += len;
		buf[n++] = '\0';
		if (n >= sizeof buf - 1)
			break;
	}
	if (send(ctx.sync, buf, n, MSG_NOSIGNAL) < 0)
		ctx.sync = -1;   /* the parent has gone (create returned): nobody to tell */
}

/* A message (one field) with FD attached (SCM_RIGHTS); fails if the parent is not listening. */
void send_fd(const char *kind, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)kind, .iov_len = strlen(kind) + 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	if (ctx.sync < 0 || sendmsg(ctx.sync, &msg, MSG_NOSIGNAL) < 0)
		fail(ctx.sync < 0 ? EPIPE : errno, "send the %s fd to pyrt", kind);
}

static void write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t w = write(fd, s, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		len -= (size_t)w;
	}
}

void fail(int err, const char *fmt, ...)
{
	char idx[24], num[16], detail[4096] = "", line[4400];
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(detail, sizeof detail, fmt, ap);
		va_end(ap);
	}
	snprintf(idx, sizeof idx, "%ld", ctx.index);
	snprintf(num, sizeof num, "%d", err);
	send_msg(SYNC_ERROR, idx, num, detail);
	/* the reason in the parent's words (strerror, first letter lowered) */
	char reason[256] = "";
	if (err) {
		snprintf(reason, sizeof reason, "%s", strerror(err));
		reason[0] = (char)tolower((unsigned char)reason[0]);
	}
	int n = snprintf(line, sizeof line, "%s%s%s", detail, err && *detail ? ": " : "", reason);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof line)
		n = sizeof line - 1;
	if (ctx.sync < 0)   /* nobody listens on the socket (`create` returned): the container's stderr */
		dprintf(2, "pyrt-init: %s\n", line);
	if (ctx.fifo >= 0)   /* `start` waits to read why */
		write_all(ctx.fifo, line, (size_t)n);
	_exit(err == ENOENT || !err ? 127 : err == EACCES ? 126 : 1);
}

/* trace: send STEP INDEX NS to the parent before each step from here on: NS is when the step
 * starts on CLOCK_MONOTONIC (read through the vDSO: no system call), the clock the parent's
 * time.monotonic_ns() reads, so `pyrt --trace` times each step with pyrt-init's own clock. */
void step_trace(const union arg *a)
{
	(void)a;
	ctx.trace = 1;
}

/* ready: set up, credentials applied: the parent writes the state and `create` returns. */
void step_ready(const union arg *a)
{
	(void)a;
	send_msg(SYNC_READY, NULL, NULL, NULL);
}

/* wait-start FIFO: block until `pyrt start` writes SYNC_FIFO_START into the exec fifo. The fd
 * stays open, close-on-exec: `start` tells the execve (the fifo's last writer is gone) from a
 * failure (fail() writes the reason into the fifo). */
void step_wait_start(const union arg *a)
{
	int fd = a[0].fd;
	char c;
	ssize_t n;
	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	CHECK(n);
	CHECK(fcntl(fd, F_SETFD, FD_CLOEXEC));
	ctx.fifo = fd;
	if (n != 1 || c != SYNC_FIFO_START[0])
		fail(0, "the exec fifo held no start message");
}

/* The plan, read whole from its memfd; NULL on failure. */
static char *read_plan(int fd, size_t *len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return NULL;
	char *plan = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (plan && got < (size_t)st.st_size) {
		ssize_t r = pread(fd, plan + got, (size_t)st.st_size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NULL;
		got += (size_t)r;
	}
	*len = got;
	return plan;
}

int main(int argc, char **argv)
{
	struct step *steps = NULL;
	size_t n = 0, len = 0;
	sigset_t none;
	char go[8], err[4096];

	/* Nothing in the container may ptrace us or open our /proc files (CVE-2016-9962). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (argc != 3)
		return 2;
	ctx.sync = atoi(argv[1]);
	int planfd = atoi(argv[2]);
	if (fcntl(ctx.sync, F_SETFD, FD_CLOEXEC) < 0)
		return 2;

	/* The parent is Python: undo the signal state it leaves behind (SIGPIPE ignored, masks). */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	umask(0);

	if (recv(ctx.sync, go, sizeof go, 0) <= 0)
		return 1;   /* the parent gave up before we started */
	char *plan = read_plan(planfd, &len);
	if (!plan)
		fail(errno ? errno : EIO, "read the plan");
	close(planfd);
	if (plan_parse(plan, len, &steps, &n, err, sizeof err) < 0) {
		ctx.index = (long)n;
		fail(0, "%s", err);
	}
	for (size_t i = 0; i < n; i++) {
		ctx.index = (long)i;
		if (ctx.trace) {
			char idx[24], ns[24];
			struct timespec t;
			clock_gettime(CLOCK_MONOTONIC, &t);
			snprintf(idx, sizeof idx, "%zu", i);
			snprintf(ns, sizeof ns, "%lld", (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
			send_msg(SYNC_STEP, idx, ns, NULL);
		}
		STEP_FUNCTIONS[steps[i].id](steps[i].args);
	}
	ctx.index = (long)n;
	fail(0, "the plan has no exec step");
}
