/*
 * The parent side of pyrt's native helper (the cffi module pyrt._native).
 *
 * pyrt_spawn() clones the child with its new namespaces (and straight into its cgroup with
 * CLONE_INTO_CGROUP) and makes it execute pyrt-init from a sealed memfd at once. Between
 * clone3() and execveat() the child runs only the C below, never Python: the container is
 * not charged for an interpreter and never holds one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init/steps.h"
#include "spawn.h"

#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif

/* Tell the parent why the child could not become pyrt-init, in init's error format (step -1 is
 * "starting pyrt-init"), with only async-signal-safe calls: no stdio after clone. */
static void __attribute__((noreturn)) child_failed(int sync_fd, int err)
{
	char msg[64] = SYNC_ERROR "\0-1\0";
	size_t n = sizeof SYNC_ERROR + 3, digits = 1;
	for (int e = err; e >= 10; e /= 10)
		digits++;
	for (size_t i = digits; i > 0; i--, err /= 10)
		msg[n + i - 1] = (char)('0' + err % 10);
	n += digits;
	msg[n++] = '\0';
	send(sync_fd, msg, n, MSG_NOSIGNAL);
	_exit(127);
}

long pyrt_spawn(unsigned long long flags, int cgroup_fd, int exe_fd, int sync_fd, int plan_fd,
		const int *keep, int nkeep, int *pidfd)
{
	struct clone_args args;
	char s[16], p[16];
	char *argv[] = { "pyrt-init", s, p, NULL };
	char *envp[] = { NULL };
	/* the numbers are formatted before clone3: snprintf is not async-signal-safe */
	snprintf(s, sizeof s, "%d", sync_fd);
	snprintf(p, sizeof p, "%d", plan_fd);
	memset(&args, 0, sizeof args);
	/* CLONE_CLEAR_SIGHAND: a signal between clone3 and execveat must not run the parent's
	 * (Python's) handlers in the child; it gets the default action */
	args.flags = flags | CLONE_PIDFD | CLONE_CLEAR_SIGHAND | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
	args.pidfd = (uint64_t)(uintptr_t)pidfd;
	args.exit_signal = SIGCHLD;
	args.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;

	long pid = syscall(SYS_clone3, &args, sizeof args);
	if (pid < 0)
		return -errno;
	if (pid > 0)
		return pid;

	/* child: only async-signal-safe work from here to execveat */
	for (int i = 0; i < nkeep; i++)
		if (fcntl(keep[i], F_SETFD, 0) < 0)
			child_failed(sync_fd, errno);
	if (fcntl(sync_fd, F_SETFD, 0) < 0 || fcntl(plan_fd, F_SETFD, 0) < 0)
		child_failed(sync_fd, errno);
	syscall(SYS_execveat, exe_fd, "", argv, envp, AT_EMPTY_PATH);
	child_failed(sync_fd, errno);
}

int pyrt_socketpair(int fds[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0 ? -errno : 0;
}
