/*
 * The OCI hooks pyrt-init runs itself, in the container's namespaces: createContainer (before
 * pivot_root) and startContainer (after `start`, with the container's credentials). The
 * runtime's own (prestart, createRuntime) run in the parent while pyrt-init waits at hook-sync.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "init.h"

/* The state JSON for the hooks run here: [0] "creating" (createContainer), [1] "created"
 * (startContainer). The parent sends both at hook-sync, once it knows our host pid. */
static char *hook_state[2];

/* One datagram from the parent into BUF (at most SIZE bytes): its length, 0 at end-of-file. */
static ssize_t recv_all(char *buf, size_t size)
{
	ssize_t n;
	do
		n = recv(ctx.sync, buf, size, 0);
	while (n < 0 && errno == EINTR);
	return n;
}

/*
 * hook-sync: stop where the runtime's own hooks belong (prestart, createRuntime: everything
 * mounted, the root not pivoted yet). The parent runs them and answers with the two states:
 * their length in decimal, then the bytes in as many datagrams as they take.
 */
void step_hook_sync(const union arg *a)
{
	(void)a;
	char count[24];
	unsigned long long len;
	char *end;
	send_msg(SYNC_HOOKS, NULL, NULL, NULL);
	ssize_t n = recv_all(count, sizeof count - 1);
	if (n <= 0)
		fail(n < 0 ? errno : ECONNRESET, "wait for the runtime's hooks");
	count[n] = '\0';
	errno = 0;
	len = strtoull(count, &end, 10);
	if (*count < '0' || *count > '9' || *end || errno || len > 1ULL << 31)
		fail(EINVAL, "the container state for hooks: bad length \"%s\"", count);
	char *buf = malloc((size_t)len + 1);
	if (!buf)
		fail(ENOMEM, "the container state for hooks");
	for (size_t got = 0; got < len; got += (size_t)n)
		if ((n = recv_all(buf + got, (size_t)len - got)) <= 0)
			fail(n < 0 ? errno : ECONNRESET, "receive the container state for hooks");
	buf[len] = '\0';
	size_t first = strlen(buf);
	hook_state[0] = buf;
	hook_state[1] = first < len ? buf + first + 1 : buf;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Read what the hook wrote into its pipe *FD (non-blocking), keeping what fits in OUT (the
 * start of its output, for the error message). 0 at its end (*FD is closed and -1 then). */
static int read_output(int *fd, char *out, size_t size, size_t *got)
{
	char chunk[4096];
	ssize_t n = read(*fd, chunk, sizeof chunk);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 1;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return 0;
	}
	size_t take = *got + 1 < size ? size - 1 - *got : 0;
	if ((size_t)n < take)
		take = (size_t)n;
	memcpy(out + *got, chunk, take);
	*got += take;
	return 1;
}

/*
 * hook KIND TIMEOUT PATH ENV ARGS INDEX: run a createContainer or startContainer hook in the
 * container's namespaces, with the state on its stdin and no fd of ours (3 and up close on
 * exec); a createContainer hook in the rootfs directory, as runc. After TIMEOUT seconds (0: never) its process group is killed. A hook that cannot be
 * executed, fails or times out fails the step; the message carries the start of its output.
 *
 * The state is written as the hook reads it (it may be longer than a pipe holds, and the hook
 * may never read it); the output is read until the hook has exited and its pipe is drained.
 */
void step_hook(const union arg *a)
{
	const char *kind = a[0].s, *path = a[2].s, *state = hook_state[strcmp(kind, "startContainer") == 0];
	unsigned long long nr = a[5].u;   /* its index among the hooks of its kind: runc's words */
	char **envp = a[3].strs.v, **argv = a[4].strs.v;
	char *only_path[] = { (char *)path, NULL }, output[512];
	int in[2], out[2], err[2], e = 0, status;
	size_t got = 0, sent = 0, len = state ? strlen(state) : 0;
	if (!state)
		fail(EINVAL, "%s hook %s: no container state (no hook-sync step)", kind, path);
	if (a[1].u > INT_MAX / 1000)
		fail(EINVAL, "%s hook %s: timeout %llu", kind, path, a[1].u);
	int timeout = (int)a[1].u;
	CHECK(pipe2(in, O_CLOEXEC));
	CHECK(pipe2(out, O_CLOEXEC));
	CHECK(pipe2(err, O_CLOEXEC));
	signal(SIGPIPE, SIG_IGN);   /* a hook that closes its stdin early: EPIPE, not death */
	pid_t pid = fork();
	CHECK(pid);
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		setpgid(0, 0);
		if (strcmp(kind, "createContainer") == 0 && ctx.root >= 0)
			(void)!fchdir(ctx.root);   /* as runc: in the rootfs (not pivoted into yet) */
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		syscall(SYS_close_range, 3U, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
		execve(path, argv[0] ? argv : only_path, envp);
		e = errno;
		(void)!write(err[1], &e, sizeof e);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (read(err[0], &e, sizeof e) == sizeof e) {
		waitpid(pid, NULL, 0);
		fail(e, "error running %s hook #%llu: %s", kind, nr, path);
	}
	close(err[0]);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	CHECK(pidfd);
	CHECK(fcntl(in[1], F_SETFL, O_NONBLOCK));
	CHECK(fcntl(out[0], F_SETFL, O_NONBLOCK));
	long long deadline = timeout > 0 ? now_ms() + timeout * 1000LL : -1;
	for (int exited = 0; !exited; ) {
		struct pollfd p[3] = { { pidfd, POLLIN, 0 }, { out[0], POLLIN, 0 }, { in[1], POLLOUT, 0 } };
		long long left = deadline < 0 ? -1 : deadline - now_ms();
		int r = poll(p, 3, deadline < 0 ? -1 : left > 0 ? (int)left : 0);
		if (r < 0 && errno == EINTR)
			continue;
		CHECK(r);
		if (r == 0) {
			kill(-pid, SIGKILL);
			waitpid(pid, NULL, 0);
			fail(0, "error running %s hook #%llu: hook ran past specified timeout of %d.0s", kind, nr, timeout);
		}
		if (p[2].revents) {
			ssize_t w = write(in[1], state + sent, len - sent);
			if (w > 0)
				sent += (size_t)w;
			if (sent == len || (w < 0 && errno != EAGAIN && errno != EINTR)) {
				close(in[1]);   /* all of it, or the hook reads no more (EPIPE) */
				in[1] = -1;
			}
		}
		if (p[1].revents)
			read_output(&out[0], output, sizeof output, &got);
		exited = p[0].revents != 0;
	}
	CHECK(waitpid(pid, &status, 0));
	signal(SIGPIPE, SIG_DFL);
	close(pidfd);
	if (in[1] >= 0)
		close(in[1]);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		if (out[0] >= 0)
			close(out[0]);
		return;
	}
	/* For the message: the rest of the output, to its end, also what a process the hook left
	 * behind writes, for a second at most (and within its timeout): such a process may hold
	 * the pipe open for ever. */
	long long until = now_ms() + 1000;
	if (deadline >= 0 && deadline < until)
		until = deadline;
	while (out[0] >= 0 && got < sizeof output - 1) {
		struct pollfd p = { out[0], POLLIN, 0 };
		long long left = until - now_ms();
		int r = left > 0 ? poll(&p, 1, (int)left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || !read_output(&out[0], output, sizeof output, &got))
			break;
	}
	if (out[0] >= 0)
		close(out[0]);
	while (got && (output[got - 1] == '\n' || output[got - 1] == ' '))
		got--;
	output[got] = '\0';
	for (size_t i = 0; i < got; i++)
		if (output[i] == '\n')
			output[i] = ' ';
	if (WIFSIGNALED(status))
		fail(0, "error running %s hook #%llu: %s: killed by signal %d%s%s", kind, nr, path, WTERMSIG(status),
		     got ? ", output: " : "", output);
	fail(0, "error running %s hook #%llu: %s: exit status %d%s%s", kind, nr, path, WEXITSTATUS(status),
	     got ? ", output: " : "", output);
}
