/*
 * Namespaces and what lives in them: joining namespaces and cgroups, the cgroup namespace, the
 * fork into a joined pid namespace, the network's loopback, hostname and domainname, sysctls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <grp.h>
#include <unistd.h>

#include "init.h"

/* setns FD NSTYPE: join a namespace (an ns fd, or a pidfd with several CLONE_NEW* flags). */
void step_setns(const union arg *a)
{
	CHECK(setns(a[0].fd, (int)a[1].u));
	close(a[0].fd);
}

/*
 * time-offsets MONO_S MONO_NS BOOT_S BOOT_NS: after unshare(CLONE_NEWTIME) our children's time
 * namespace is new and empty: its offsets can be written until a process enters it (the fork
 * step). /proc/self/timens_offsets names the namespace of our children.
 */
void step_time_offsets(const union arg *a)
{
	char text[160];
	int n = snprintf(text, sizeof text, "monotonic %lld %lld\nboottime %lld %lld\n",
			 a[0].i, a[1].i, a[2].i, a[3].i);
	int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail(errno, "open /proc/self/timens_offsets");
	if (write(fd, text, (size_t)n) != n)
		fail(errno, "write /proc/self/timens_offsets");
	close(fd);
}

/*
 * ns-root: after joining a user namespace our host ids (root's) may have no id in it: files we
 * make would fail with EOVERFLOW. Become its root, keeping the capabilities setns gave us
 * (a change to uid 0 of the namespace keeps them).
 */
void step_ns_root(const union arg *a)
{
	(void)a;
	CHECK(setresgid(0, 0, 0));
	CHECK(setresuid(0, 0, 0));
	if (setgroups(0, NULL) < 0 && errno != EPERM)   /* EPERM: setgroups denied in that namespace */
		fail(errno, "setgroups");
}

/*
 * join-cgroups TASKS: write "0" (this thread) into the `tasks` file of each cgroup v1
 * hierarchy, opened by the parent, then close it. A thread moving itself skips the kernel's
 * global threadgroup lock and the RCU grace period behind it (~10 ms when the parent writes
 * our pid). We are single-threaded: the thread is the process.
 */
void step_join_cgroups(const union arg *a)
{
	for (size_t i = 0; i < a[0].fds.n; i++) {
		int fd = a[0].fds.v[i];
		if (write(fd, "0", 1) < 0) {
			int err = errno;
			char link[64], path[PATH_MAX] = "?";
			fdpath(link, sizeof link, fd);
			ssize_t n = readlink(link, path, sizeof path - 1);
			path[n > 0 ? n : 1] = '\0';
			fail(err, "join the container's cgroup (%s)", path);
		}
		close(fd);
	}
}

/* unshare FLAGS: e.g. the cgroup namespace, once we are in our cgroups (clone3, join-cgroups). */
void step_unshare(const union arg *a)
{
	CHECK(unshare((int)a[0].u));
}

/*
 * fork: after joining a pid namespace only children are inside it. The child goes on with the
 * plan as a sibling of this process (CLONE_PARENT), so the parent pyrt can wait for it; this
 * process tells the parent the new pid and exits.
 */
void step_fork(const union arg *a)
{
	(void)a;
	long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	CHECK(pid);
	if (pid > 0) {
		char s[24];
		snprintf(s, sizeof s, "%ld", pid);
		send_msg(SYNC_PID, s, NULL, NULL);
		_exit(0);
	}
}

/* oom-score-adj VALUE: written before the root changes, through the host's /proc. */
void step_oom_score_adj(const union arg *a)
{
	char value[24];
	int n = snprintf(value, sizeof value, "%lld", a[0].i);
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	CHECK(fd);
	if (write(fd, value, (size_t)n) < 0)
		fail(errno, NULL);
	close(fd);
}

/* lo-up: a new network namespace starts with its loopback down. */
void step_lo_up(const union arg *a)
{
	(void)a;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(s);
	CHECK(ioctl(s, SIOCGIFFLAGS, &ifr));
	ifr.ifr_flags |= IFF_UP;
	CHECK(ioctl(s, SIOCSIFFLAGS, &ifr));
	close(s);
}

void step_hostname(const union arg *a) { CHECK(sethostname(a[0].s, strlen(a[0].s))); }
void step_domainname(const union arg *a) { CHECK(setdomainname(a[0].s, strlen(a[0].s))); }

/* sysctl PATH VALUE: PATH is /proc/sys/..., already converted by the parent; written in the
 * container's procfs, verified to be procfs (CVE-2019-16884). */
void step_sysctl(const union arg *a)
{
	const char *path = a[0].s, *value = a[1].s;
	struct statfs sf;
	int fd = open_in_root(path, O_WRONLY, NO_LINKS, 0);
	if (fd < 0)
		fail(errno, "open %s", path);
	if (fstatfs(fd, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC)
		fail(EPERM, "%s is not on procfs", path);
	if (write(fd, value, strlen(value)) < 0)
		fail(errno, "write %s", path);
	close(fd);
}
