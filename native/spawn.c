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

#include "spawn.h"

long pyrt_spawn(unsigned long long flags, int cgroup_fd, int exe_fd, int sync_fd, int plan_fd,
		const int *keep, int nkeep, int *pidfd)
{
	struct clone_args args;
	memset(&args, 0, sizeof args);
	args.flags = flags | CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
	args.pidfd = (uint64_t)(uintptr_t)pidfd;
	args.exit_signal = SIGCHLD;
	args.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;

	long pid = syscall(SYS_clone3, &args, sizeof args);
	if (pid < 0)
		return -errno;
	if (pid > 0)
		return pid;

	/* child: only async-signal-safe work from here to execveat */
	char s[16], p[16];
	char *argv[] = { "pyrt-init", s, p, NULL };
	char *envp[] = { NULL };
	for (int i = 0; i < nkeep; i++)
		fcntl(keep[i], F_SETFD, 0);
	fcntl(sync_fd, F_SETFD, 0);
	fcntl(plan_fd, F_SETFD, 0);
	snprintf(s, sizeof s, "%d", sync_fd);
	snprintf(p, sizeof p, "%d", plan_fd);
	syscall(SYS_execveat, exe_fd, "", argv, envp, AT_EMPTY_PATH);
	{
		/* tell the parent why, in init's error format: step -1 is "starting pyrt-init" */
		char msg[64];
		int n = snprintf(msg, sizeof msg, "error%c-1%c%d%c", 0, 0, errno, 0);
		send(sync_fd, msg, (size_t)n, MSG_NOSIGNAL);
	}
	_exit(127);
}

int pyrt_socketpair(int fds[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0 ? -errno : 0;
}
