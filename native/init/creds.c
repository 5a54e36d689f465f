/*
 * The process's limits and credentials: rlimits, the execution domain, a session keyring, the
 * bounding set, uid/gid/groups, capabilities, no_new_privs and the seccomp filter. The plan puts
 * them before `ready` (as runc does), so a refusal here fails `create`, not the container later.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init.h"

/* rlimit RESOURCE SOFT HARD: unsigned 64-bit limits (RLIM_INFINITY is 2^64-1) */
void step_rlimit(const union arg *a)
{
	struct rlimit rl = { .rlim_cur = (rlim_t)a[1].u, .rlim_max = (rlim_t)a[2].u };
	if (a[0].u > INT_MAX || setrlimit((int)a[0].u, &rl) < 0)
		fail(a[0].u > INT_MAX ? EINVAL : errno, "error setting rlimit type %llu", a[0].u);
}

/* personality DOMAIN: the execution domain (PER_LINUX32 makes uname(2) say i686). */
void step_personality(const union arg *a)
{
	if (personality((unsigned long)a[0].u) < 0)
		fail(errno, "personality %llu", a[0].u);
}

/* session-keyring NAME: a fresh session keyring, so the container sees none of the host's keys. */
void step_session_keyring(const union arg *a)
{
	if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, a[0].s) < 0 && errno != ENOSYS)
		fail(errno, NULL);
}

/* cap-bounding KEEP: drop every capability not in the mask KEEP from the bounding set. */
void step_cap_bounding(const union arg *a)
{
	unsigned long long keep = a[0].u;
	for (int cap = 0; cap < 64; cap++) {
		if (keep & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break;   /* above the kernel's last capability, as are all the rest */
			fail(errno, "drop capability %d from the bounding set", cap);
		}
	}
}

/* An id for setresuid/setresgid/setgroups/chown: 0..INT_MAX. (uid_t)-1 would mean "unchanged"
 * and leave the process root; the parent refuses such ids, this refuses a plan that has one. */
static unsigned id(unsigned long long v)
{
	if (v > INT_MAX)
		fail(EINVAL, "id %llu out of range", v);
	return (unsigned)v;
}

/*
 * chown-stdio UID: give the container's user its stdio, as runc does, so it can reopen
 * /dev/stdout (/proc/self/fd/1). Only anonymous pipes, sockets and the terminal pyrt-init
 * allocated: never a file, named FIFO or device of the host (a host /dev/null, FIFO or tty
 * keeps its owner).
 */
void step_chown_stdio(const union arg *a)
{
	struct stat st;
	struct statfs sf;
	uid_t uid = id(a[0].u);
	for (int fd = 0; fd < 3; fd++) {
		if (fstat(fd, &st) < 0 || fstatfs(fd, &sf) < 0)
			continue;
		int ours = (S_ISFIFO(st.st_mode) && sf.f_type == PIPEFS_MAGIC) ||
			   (S_ISSOCK(st.st_mode) && sf.f_type == SOCKFS_MAGIC) ||
			   (S_ISCHR(st.st_mode) && ctx.have_tty && st.st_rdev == ctx.tty && st.st_dev == ctx.tty_devpts);
		if (!ours)
			continue;
		if (fchown(fd, uid, (gid_t)-1) < 0 && errno != EPERM && errno != EINVAL && errno != EROFS)
			fail(errno, "chown stdio fd %d", fd);
	}
}

/* user UID GID GROUPS: switch credentials, keeping capabilities for the caps step. */
void step_user(const union arg *a)
{
	size_t n = a[2].ints.n;
	gid_t *groups = calloc(n ? n : 1, sizeof *groups);
	if (!groups)
		fail(ENOMEM, "setgroups");
	for (size_t i = 0; i < n; i++) {
		if (a[2].ints.v[i] < 0)
			fail(EINVAL, "id %lld out of range", a[2].ints.v[i]);
		groups[i] = id((unsigned long long)a[2].ints.v[i]);
	}
	uid_t uid = id(a[0].u);
	gid_t gid = id(a[1].u);
	CHECK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
	/* EPERM with no groups to set: a user namespace whose setgroups is denied (pyrt without
	 * root); runc skips setgroups there too. With groups asked for, it is an error. */
	if (setgroups(n, groups) < 0 && !(errno == EPERM && n == 0))
		fail(errno, "setgroups");
	free(groups);
	if (setresgid(gid, gid, gid) < 0)
		fail(errno, "setgid %u", gid);
	if (setresuid(uid, uid, uid) < 0)
		fail(errno, "setuid %u", uid);
	CHECK(prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0));
}

/* caps EFFECTIVE PERMITTED INHERITABLE AMBIENT (masks) */
void step_caps(const union arg *a)
{
	unsigned long long eff = a[0].u, perm = a[1].u, inh = a[2].u, amb = a[3].u;
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {
		{ (unsigned)eff, (unsigned)perm, (unsigned)inh },
		{ (unsigned)(eff >> 32), (unsigned)(perm >> 32), (unsigned)(inh >> 32) },
	};
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail(errno, "capset");
	CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
	for (int cap = 0; cap < 64; cap++)
		if ((amb & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			fail(errno, "raise ambient capability %d", cap);
}

void step_no_new_privileges(const union arg *a)
{
	(void)a;
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
}

/* seccomp PROGRAM FLAGS: load a BPF filter (struct sock_filter[]) the parent compiled into a
 * memfd. With SECCOMP_FILTER_FLAG_NEW_LISTENER (a rule is SCMP_ACT_NOTIFY) the kernel returns the
 * filter's listener fd: it goes to the parent (SYNC_SECCOMP), which hands it to the agent. */
void step_seccomp(const union arg *a)
{
	int fd = a[0].fd;
	struct stat st;
	CHECK(fstat(fd, &st));
	/* whole instructions, and not more than sock_fprog.len can count (no silent truncation) */
	if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
	    st.st_size / sizeof(struct sock_filter) > USHRT_MAX)
		fail(EINVAL, "the seccomp program is %lld bytes long", (long long)st.st_size);
	struct sock_filter *insns = malloc((size_t)st.st_size);
	if (!insns || pread(fd, insns, (size_t)st.st_size, 0) != st.st_size)
		fail(EIO, "read the seccomp program");
	struct sock_fprog prog = { .len = (unsigned short)(st.st_size / sizeof *insns), .filter = insns };
	long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned long)a[1].u, &prog);
	CHECK(listener);
	if (a[1].u & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
		send_fd(SYNC_SECCOMP, (int)listener);
		close((int)listener);
	}
	close(fd);
	free(insns);
}
