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

/*
 * hook-sync: stop where the runtime's own hooks belong (prestart, createRuntime: everything
 * mounted, the root not pivoted yet). The parent runs them and answers with the two states.
 */
void step_hook_sync(const union arg *a)
{
	(void)a;
	ssize_t n;
	send_msg(SYNC_HOOKS, NULL, NULL, NULL);
	do
		n = recv(ctx.sync, NULL, 0, MSG_PEEK | MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		fail(n < 0 ? errno : ECONNRESET, "wait for the runtime's hooks");
	char *buf = malloc((size_t)n + 1);
	if (!buf || recv(ctx.sync, buf, (size_t)n, 0) != n)
		fail(EIO, "receive the container state for hooks");
	buf[n] = '\0';
	size_t first = strlen(buf);
	hook_state[0] = buf;
	hook_state[1] = (ssize_t)first < n ? buf + first + 1 : buf;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/*
 * hook KIND TIMEOUT PATH ENV ARGS: run a createContainer or startContainer hook in
 * the container's namespaces, with the state on its stdin and no fd of ours (3 and up close on
 * exec). After TIMEOUT seconds (0: never) its process group is killed. A hook that cannot be
 * executed, fails or times out fails the step; the message carries the start of its output.
 */
void step_hook(const union arg *a)
{
	const char *kind = a[0].s, *path = a[2].s, *state = hook_state[strcmp(kind, "startContainer") == 0];
	char **envp = a[3].strs.v, **argv = a[4].strs.v;
	int in[2], out[2], err[2], e = 0, status;
	char *only_path[] = { (char *)path, NULL }, output[512];
	size_t got = 0;
	if (!state)
		fail(EINVAL, "%s hook %s: no container state (no hook-sync step)", kind, path);
	if (a[1].u > INT_MAX / 1000)
		fail(EINVAL, "%s hook %s: timeout %llu", kind, path, a[1].u);
	int timeout = (int)a[1].u;
	CHECK(pipe2(in, O_CLOEXEC));
	CHECK(pipe2(out, O_CLOEXEC));
	CHECK(pipe2(err, O_CLOEXEC));
	pid_t pid = fork();
	CHECK(pid);
	if (pid == 0) {
		setpgid(0, 0);
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
		fail(e, "%s hook %s", kind, path);
	}
	close(err[0]);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	CHECK(pidfd);
	/* a pipe holds 64 KiB: a hook that does not read its stdin must not block us */
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	(void)!write(in[1], state, strlen(state));
	close(in[1]);
	long long deadline = timeout > 0 ? now_ms() + timeout * 1000LL : -1;
	for (;;) {
		struct pollfd p[2] = { { pidfd, POLLIN, 0 }, { out[0], POLLIN, 0 } };
		long long left = deadline < 0 ? -1 : deadline - now_ms();
		int r = poll(p, out[0] >= 0 ? 2 : 1, deadline < 0 ? -1 : left > 0 ? (int)left : 0);
		if (r < 0 && errno == EINTR)
			continue;
		CHECK(r);
		if (r == 0) {
			kill(-pid, SIGKILL);
			waitpid(pid, NULL, 0);
			fail(0, "%s hook %s: killed after its timeout of %d s", kind, path, timeout);
		}
		if (out[0] >= 0 && p[1].revents) {
			char chunk[4096];
			ssize_t n = read(out[0], chunk, sizeof chunk);
			if (n <= 0) {
				close(out[0]);
				out[0] = -1;
			} else if (got < sizeof output - 1) {
				size_t take = (size_t)n < sizeof output - 1 - got ? (size_t)n : sizeof output - 1 - got;
				memcpy(output + got, chunk, take);
				got += take;
			}
		}
		if (p[0].revents)
			break;
	}
	CHECK(waitpid(pid, &status, 0));
	close(pidfd);
	if (out[0] >= 0)
		close(out[0]);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	while (got && (output[got - 1] == '\n' || output[got - 1] == ' '))
		got--;
	output[got] = '\0';
	for (size_t i = 0; i < got; i++)
		if (output[i] == '\n')
			output[i] = ' ';
	if (WIFSIGNALED(status))
		fail(0, "%s hook %s: killed by signal %d%s%s", kind, path, WTERMSIG(status), got ? ": " : "", output);
	fail(0, "%s hook %s: exit status %d%s%s", kind, path, WEXITSTATUS(status), got ? ": " : "", output);
}
