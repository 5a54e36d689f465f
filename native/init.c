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
 * SYNC_FD is a SOCK_SEQPACKET socket to the parent, PLAN_FD a memfd holding the plan. The init
 * waits for "go" on SYNC_FD (the parent first takes hold of what it needs of the new process,
 * e.g. its network namespace), reads the plan and executes it step by step. A plan is a
 * sequence of steps, each encoded as NUL-terminated strings: the step name, the number of
 * arguments, then the arguments (see pyrt/plan.py).
 *
 * Messages to the parent (one datagram each, fields NUL-separated):
 *   "step" INDEX          before executing step INDEX, when tracing
 *   "pid" PID             after a fork into a joined pid namespace: the process that goes on
 *   "ready"               set-up done, about to wait for `start`
 *   "error" INDEX ERRNO DETAIL   step INDEX failed (ERRNO 0: DETAIL says it all); the process exits
 * A successful execve closes SYNC_FD (it is close-on-exec): the parent reads end-of-file.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <net/if.h>
#include <linux/openat2.h>
#include <poll.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
#define NO_LINKS (RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)

struct step {
	const char *op;
	int argc;
	char **argv;
};

static struct {
	int sync;            /* socket to the parent; -1 once it is gone */
	int root;            /* O_PATH fd of the container's root directory */
	int trace;           /* send "step" messages */
	int index;           /* the step being executed */
	char exe[PATH_MAX];  /* set by resolve-exec, used by exec */
	char home[PATH_MAX + 5]; /* "HOME=..." set by home, added by exec */
	int fifo;            /* the exec fifo, kept after wait-start until execve (see there) */
	dev_t tty;           /* the terminal pyrt-init allocated (console, pty), for chown-stdio */
	int have_tty;
} ctx = { .sync = -1, .root = -1, .fifo = -1 };

/* ------------------------------------------------------------------ reporting */

static void send_msg(const char *a, const char *b, const char *c, const char *d)
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

/* Report the failure of the current step and end the process. */
static void __attribute__((noreturn)) fail(int err, const char *fmt, ...)
{
	char idx[16], num[16], detail[4096] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(detail, sizeof detail, fmt, ap);
		va_end(ap);
	}
	snprintf(idx, sizeof idx, "%d", ctx.index);
	snprintf(num, sizeof num, "%d", err);
	if (ctx.sync >= 0) {
		send_msg("error", idx, num, detail);
	} else {
		/* After `create` returned nobody listens: the container's stderr is the only place. */
		dprintf(2, "pyrt-init: step %s: %s%s%s\n", idx, detail, err && *detail ? ": " : "", err ? strerror(err) : "");
	}
	if (ctx.fifo >= 0) {   /* `start` may be waiting to read why (in the parent's words) */
		char reason[256] = "";
		if (err) {
			snprintf(reason, sizeof reason, "%s", strerror(err));
			reason[0] = (char)tolower((unsigned char)reason[0]);
		}
		dprintf(ctx.fifo, "%s%s%s", detail, err && *detail ? ": " : "", reason);
	}
	_exit(err == ENOENT || !err ? 127 : err == EACCES ? 126 : 1);
}

#define CHECK(expr) do { if ((expr) < 0) fail(errno, NULL); } while (0)

/* ------------------------------------------------------------------ small helpers */

static long long num(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 0);
	if (errno || *end || end == s)
		fail(EINVAL, "bad number in plan: \"%s\"", s);
	return v;
}

/* An unsigned 64-bit number (rlimits go up to RLIM_INFINITY): strtoull would take "-1". */
static unsigned long long unum(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || end == s || !isdigit((unsigned char)*s))
		fail(EINVAL, "bad number in plan: \"%s\"", s);
	return v;
}

static int openat2_(int dirfd, const char *path, int flags, unsigned long long resolve)
{
	struct open_how how = { .flags = (unsigned long long)(flags | O_CLOEXEC), .resolve = resolve };
	if (flags & O_CREAT)
		how.mode = 0644;
	int fd, tries = 0;
	/* EAGAIN: a rename or mount anywhere on the system while ".." was resolved; try again */
	do
		fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
	while (fd < 0 && errno == EAGAIN && ++tries < 1000);
	return fd;
}

/* Paths in the plan are absolute inside the container; make them relative to the root fd. */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static void fdpath(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

/* ------------------------------------------------------------------ the container's own mounts */

/*
 * pyrt-init creates device nodes, symlinks, /dev/console and the parents of these only on
 * the container's own mounts: the rootfs mount and the tmpfs mounts it made itself (their ids
 * are recorded as they are made, see new_tmpfs). Any other mount is a bind of a host path or
 * a filesystem that lives on the host (an overlay with a host upperdir, a disk, devtmpfs):
 * creating there would change the host. Mount targets and cwd are the exception, as in runc
 * and Docker: config.json asks for them (a volume nested in another volume).
 */
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U   /* Linux 6.8: ids never reused */
#endif
#define OWN 0x100   /* open_in_root's create: only on the container's own mounts (else EXDEV) */

static struct {
	unsigned long long *ids;   /* the tmpfs mounts pyrt-init made */
	size_t n;
} own;

static unsigned long long mount_id(int fd)
{
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID | STATX_MNT_ID_UNIQUE, &sx) < 0)
		fail(errno, "statx");
	if (!(sx.stx_mask & (STATX_MNT_ID | STATX_MNT_ID_UNIQUE)))
		fail(ENOSYS, "statx gives no mount id (Linux 5.8 or later is needed)");
	return sx.stx_mnt_id;
}

static void add_own_mount(int fd)
{
	unsigned long long *ids = realloc(own.ids, (own.n + 1) * sizeof *ids);
	if (!ids)
		fail(ENOMEM, NULL);
	ids[own.n++] = mount_id(fd);
	own.ids = ids;
}

/* Is the directory FD on the rootfs mount or on a tmpfs pyrt-init made? */
static int is_own_mount(int fd)
{
	unsigned long long id = mount_id(fd);
	if (id == mount_id(ctx.root))
		return 1;
	for (size_t i = 0; i < own.n; i++)
		if (own.ids[i] == id)
			return 1;
	return 0;
}

/* PATH would be created on a mount that is not the container's own. */
static void __attribute__((noreturn)) not_own(const char *what, const char *path)
{
	fail(0, "%s %s: not on the rootfs or a tmpfs of the container (a mount of a host path?): "
	     "pyrt creates nothing there", what, path);
}

/*
 * Open PATH inside the root without ever leaving it (RESOLVE_IN_ROOT), creating missing
 * directories on the way. With create == 'f' the last component is created as an empty file;
 * with OWN added, only on the container's own mounts (else EXDEV: nothing is created).
 * Each component is created with mkdirat() on a verified parent fd, so a racing symlink swap
 * cannot redirect the creation outside the root (CVE-2024-45310). A dangling symlink on the way
 * (unless resolve forbids symlinks) is followed as runc does: its target is made, inside the root.
 */
static int open_in_root_(const char *path, int flags, unsigned long long resolve, int create, int depth);

static int open_in_root(const char *path, int flags, unsigned long long resolve, int create)
{
	return open_in_root_(path, flags, resolve, create, 0);
}

/* PREFIX/COMP is a dangling symlink (or not a symlink: -1, errno ENOENT): go on at its target. */
static int follow_dangling(int parent, char *buf, char *comp, const char *rest, int flags,
			   unsigned long long resolve, int create, int depth)
{
	char target[PATH_MAX], joined[PATH_MAX];
	ssize_t n = depth < 40 ? readlinkat(parent, comp, target, sizeof target - 1) : -1;
	if (n < 0) {
		errno = depth < 40 ? ENOENT : ELOOP;
		return -1;
	}
	target[n] = '\0';
	*comp = '\0';   /* buf: the directories before the link, with a trailing slash */
	if (snprintf(joined, sizeof joined, "%s%s%s%s", target[0] == '/' ? "" : buf, target, *rest ? "/" : "",
		     rest) >= (int)sizeof joined) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return open_in_root_(joined, flags, resolve, create, depth + 1);
}

static int open_in_root_(const char *path, int flags, unsigned long long resolve, int create, int depth)
{
	char buf[PATH_MAX];
	const char *r = rel(path);
	int fd = openat2_(ctx.root, r, flags, resolve);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd;
	if (strlen(r) >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, r);
	int parent = openat2_(ctx.root, ".", O_PATH | O_DIRECTORY, resolve);
	if (parent < 0)
		return -1;
	char *comp = buf;
	for (;;) {
		char *slash = strchr(comp, '/');
		int last = slash == NULL;
		if (slash)
			*slash = '\0';
		if (*comp == '\0' || strcmp(comp, ".") == 0) {
			if (last)
				return parent;
			comp = slash + 1;
			continue;
		}
		/* resolve the prefix again from the root: symlinks stay inside the root */
		int next = openat2_(ctx.root, buf, last ? flags : O_PATH | O_DIRECTORY, resolve);
		if (next < 0 && errno == ENOENT) {
			int rc;
			if ((create & OWN) && !is_own_mount(parent)) {
				close(parent);
				errno = EXDEV;
				return -1;
			}
			if (last && (create & ~OWN) == 'f') {
				rc = openat2_(parent, comp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, RESOLVE_BENEATH);
				if (rc >= 0)
					close(rc);
			} else {
				rc = mkdirat(parent, comp, 0755);
			}
			if (rc < 0 && errno != EEXIST) {
				close(parent);
				return -1;
			}
			next = openat2_(ctx.root, buf, last ? flags : O_PATH | O_DIRECTORY, resolve);
			if (next < 0 && errno == ENOENT && !(resolve & RESOLVE_NO_SYMLINKS)) {
				next = follow_dangling(parent, buf, comp, last ? "" : slash + 1, flags, resolve, create, depth);
				close(parent);
				return next;
			}
		}
		close(parent);
		if (next < 0 || last)
			return next;
		parent = next;
		*slash = '/';
		comp = slash + 1;
	}
}

/* Open the parent directory of PATH inside the root (no symlinks) and return the last name;
 * missing directories are made on the container's own mounts only. */
static int open_parent(const char *path, const char **base)
{
	static char buf[PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", rel(path)) >= (int)sizeof buf) {
		errno = ENAMETOOLONG;   /* not a shorter path: that would be another file */
		return -1;
	}
	char *slash = strrchr(buf, '/');
	if (!slash) {
		*base = buf;
		return openat2_(ctx.root, ".", O_PATH | O_DIRECTORY, NO_LINKS);
	}
	*slash = '\0';
	*base = slash + 1;
	return open_in_root(buf, O_PATH | O_DIRECTORY, NO_LINKS, 'd' | OWN);
}

/* The container's /dev/null, verified to be the null device, to mask files with. */
static int dev_null(void)
{
	struct stat st;
	int fd = open_in_root("/dev/null", O_PATH, NO_LINKS, 0);
	if (fd < 0)
		fail(errno, "open /dev/null in the container");
	if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
		fail(EPERM, "/dev/null in the container is not the null device");
	return fd;
}

/* The per-mount flags of the mount FD is on, to keep them when only adding a flag. */
static unsigned long mount_flags(int fd)
{
	static const struct { unsigned long st, ms; } map[] = {
		{ ST_RDONLY, MS_RDONLY }, { ST_NOSUID, MS_NOSUID }, { ST_NODEV, MS_NODEV },
		{ ST_NOEXEC, MS_NOEXEC }, { ST_NOATIME, MS_NOATIME }, { ST_NODIRATIME, MS_NODIRATIME },
		{ ST_RELATIME, MS_RELATIME },
	};
	struct statvfs sv;
	unsigned long flags = 0;
	if (fstatvfs(fd, &sv) < 0)
		return 0;
	for (size_t i = 0; i < sizeof map / sizeof *map; i++)
		if (sv.f_flag & map[i].st)
			flags |= map[i].ms;
	return flags;
}

/* ------------------------------------------------------------------ steps */

/* setns FD NSTYPE: join a namespace (an ns fd, or a pidfd with several CLONE_NEW* flags). */
static void step_setns(char **a)
{
	int fd = (int)num(a[0]);
	CHECK(setns(fd, (int)num(a[1])));
	close(fd);
}

/*
 * join-cgroups FD,FD...: write "0" (this thread) into the `tasks` file of each cgroup v1
 * hierarchy, opened by the parent, then close it. A thread moving itself skips the kernel's
 * global threadgroup lock and the RCU grace period behind it (~10 ms when the parent writes
 * our pid). We are single-threaded: the thread is the process.
 */
static void step_join_cgroups(char **a)
{
	for (char *p = a[0]; *p; ) {
		char *end;
		long fd = strtol(p, &end, 10);
		if (end == p || (*end && *end != ','))
			fail(EINVAL, "bad fd list in plan: \"%s\"", a[0]);
		if (write((int)fd, "0", 1) < 0) {
			int err = errno;
			char link[64], path[PATH_MAX] = "?";
			fdpath(link, sizeof link, (int)fd);
			ssize_t n = readlink(link, path, sizeof path - 1);
			path[n > 0 ? n : 1] = '\0';
			fail(err, "join the container's cgroup (%s)", path);
		}
		close((int)fd);
		p = *end ? end + 1 : end;
	}
}

/* unshare FLAGS: e.g. the cgroup namespace, once we are in our cgroups (clone3, join-cgroups). */
static void step_unshare(char **a)
{
	CHECK(unshare((int)num(a[0])));
}

/*
 * fork: after joining a pid namespace only children are inside it. The child goes on with the
 * plan as a sibling of this process (CLONE_PARENT), so the parent pyrt can wait for it; this
 * process tells the parent the new pid and exits.
 */
static void step_fork(char **a)
{
	(void)a;
	long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	CHECK(pid);
	if (pid > 0) {
		char s[24];
		snprintf(s, sizeof s, "%ld", pid);
		send_msg("pid", s, NULL, NULL);
		_exit(0);
	}
}

/*
 * propagation TARGET FLAGS: mount(NULL, M, NULL, FLAGS) in this mount namespace, where M is the
 * mount that holds TARGET: TARGET itself if a mount is rooted there (else EINVAL), or the
 * nearest one above. The climb goes by fd through "..", never by name: no symlink can send it
 * to another mount.
 */
static void step_propagation(char **a)
{
	unsigned long flags = (unsigned long)num(a[1]);
	char p[64];
	int fd = open(a[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fail(errno, "propagation target %s", a[0]);
	fdpath(p, sizeof p, fd);
	while (mount(NULL, p, NULL, flags, NULL) < 0) {
		int err = errno, up = -1;
		struct stat here, above;
		if (err == EINVAL)   /* no mount is rooted here: climb, unless this is already the top */
			up = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (up < 0 || fstat(fd, &here) < 0 || fstat(up, &above) < 0
		    || (here.st_dev == above.st_dev && here.st_ino == above.st_ino))
			fail(err, "set the propagation of the mount holding %s", a[0]);
		close(fd);
		fd = up;
		fdpath(p, sizeof p, fd);
	}
	close(fd);
}

/* A copy of the mount tree at FD (the whole tree if RECURSIVE), attached nowhere yet: a bind. */
static int clone_tree(int fd, int recursive)
{
	int mnt = (int)syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH |
			       (recursive ? AT_RECURSIVE : 0));
	CHECK(mnt);
	return mnt;
}

/* Attach the detached mount MNT on the directory or file DST (both fds: no path to swap). */
static void attach(int mnt, int dst)
{
	CHECK(syscall(SYS_move_mount, mnt, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
}

/* root PATH: bind the rootfs onto itself (pivot_root needs a mount point); the root fd is the
 * new mount's own, never PATH looked up again. */
static void step_root(char **a)
{
	int fd = open(a[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd);
	ctx.root = clone_tree(fd, 1);
	attach(ctx.root, fd);
	close(fd);
}

/* Reopen DEST (to reach the mount just made on it) and set its flags or propagation; with
 * ADD the mount's current flags are kept. */
static void remount_fd(const char *dest, unsigned long long resolve, unsigned long flags, int add)
{
	char p[64];
	int fd = open_in_root(dest, O_PATH, resolve, 0);
	CHECK(fd);
	fdpath(p, sizeof p, fd);
	if (flags & ~(MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE | MS_REC))
		CHECK(mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | flags | (add ? mount_flags(fd) : 0), NULL));
	else
		CHECK(mount(NULL, p, NULL, flags, NULL));
	close(fd);
}

/*
 * Copy the tree under directory SRC into directory DST (runc's tmpcopyup): files, directories,
 * symlinks and nodes with their modes, owners and times. Only *at() calls on verified fds, no
 * symlink is ever followed, so the image cannot redirect a copy outside the new mount.
 */
static void copy_tree(int src, int dst, int depth)
{
	static char buf[65536];   /* not on the stack: 128 levels of it would overflow it */
	if (depth > 128)
		fail(ELOOP, "tmpcopyup: directories nested too deeply");
	int dfd = fcntl(src, F_DUPFD_CLOEXEC, 0);
	CHECK(dfd);
	DIR *dir = fdopendir(dfd);
	if (!dir)
		fail(errno, "tmpcopyup: read directory");
	struct dirent *e;
	while ((errno = 0, e = readdir(dir)) != NULL) {
		const char *n = e->d_name;
		struct stat st;
		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		if (fstatat(src, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
			fail(errno, "tmpcopyup: stat %s", n);
		if (S_ISDIR(st.st_mode)) {
			if (mkdirat(dst, n, 0700) < 0)
				fail(errno, "tmpcopyup: mkdir %s", n);
			int s2 = openat(src, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int d2 = openat(dst, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (s2 < 0 || d2 < 0)
				fail(errno, "tmpcopyup: open %s", n);
			copy_tree(s2, d2, depth + 1);
			close(s2);
			close(d2);
		} else if (S_ISREG(st.st_mode)) {
			int in = openat(src, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			int out = openat(dst, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (in < 0 || out < 0)
				fail(errno, "tmpcopyup: open %s", n);
			ssize_t r;
			while ((r = read(in, buf, sizeof buf)) > 0)
				for (ssize_t off = 0, w; off < r; off += w)
					if ((w = write(out, buf + off, (size_t)(r - off))) < 0)
						fail(errno, "tmpcopyup: write %s", n);
			if (r < 0)
				fail(errno, "tmpcopyup: read %s", n);
			close(in);
			close(out);
		} else if (S_ISLNK(st.st_mode)) {
			ssize_t len = readlinkat(src, n, buf, sizeof buf - 1);
			if (len < 0)
				fail(errno, "tmpcopyup: readlink %s", n);
			buf[len] = '\0';
			if (symlinkat(buf, dst, n) < 0)
				fail(errno, "tmpcopyup: symlink %s", n);
		} else if (mknodat(dst, n, st.st_mode & ~07777, st.st_rdev) < 0) {
			fail(errno, "tmpcopyup: mknod %s", n);
		}
		/* owner before mode (chown clears set-id bits), times last */
		struct timespec times[2] = { st.st_atim, st.st_mtim };
		if (fchownat(dst, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
		    (!S_ISLNK(st.st_mode) && fchmodat(dst, n, st.st_mode & 07777, 0) < 0) ||
		    utimensat(dst, n, times, AT_SYMLINK_NOFOLLOW) < 0)
			fail(errno, "tmpcopyup: set owner, mode and times of %s", n);
	}
	if (errno)
		fail(errno, "tmpcopyup: read directory");
	closedir(dir);
}

/* Fill the new tmpfs MNT (not attached yet) with a copy of the directory LOWER it will cover;
 * as runc, it gets LOWER's mode. */
static void copy_up(int lower, int mnt)
{
	struct stat st;
	int src = openat(lower, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int dst = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src < 0 || dst < 0)
		fail(errno, "tmpcopyup: open %s", src < 0 ? "the covered directory" : "the new tmpfs");
	copy_tree(src, dst, 0);
	if (fstat(src, &st) < 0 || fchmod(dst, st.st_mode & 07777) < 0)
		fail(errno, "tmpcopyup: set the mode of the new tmpfs");
	close(src);
	close(dst);
}

/*
 * A new tmpfs, attached nowhere yet (fsopen, fsmount): the filesystem mount(2) would make with
 * FLAGS and DATA. Its fd is exact where a path is not (a path can be swapped while we work):
 * tmpcopyup fills the tmpfs before anyone can see it, and its mount id marks it as the
 * container's own (see is_own_mount) once it is attached.
 */
static int new_tmpfs(const char *src, unsigned long flags, const char *data)
{
	/* superblock flags (MS_SILENT, MS_POSIXACL, MS_I_VERSION have no key: tmpfs needs none) */
	static const struct { unsigned long ms; const char *key; } sb[] = {
		{ MS_RDONLY, "ro" }, { MS_SYNCHRONOUS, "sync" }, { MS_DIRSYNC, "dirsync" },
		{ MS_LAZYTIME, "lazytime" }, { MS_MANDLOCK, "mand" },
	};
	static const struct { unsigned long ms; unsigned attr; } per_mount[] = {
		{ MS_RDONLY, MOUNT_ATTR_RDONLY }, { MS_NOSUID, MOUNT_ATTR_NOSUID }, { MS_NODEV, MOUNT_ATTR_NODEV },
		{ MS_NOEXEC, MOUNT_ATTR_NOEXEC }, { MS_NODIRATIME, MOUNT_ATTR_NODIRATIME },
		{ MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW },
	};
	char opts[4096];
	if (snprintf(opts, sizeof opts, "%s", data) >= (int)sizeof opts)
		fail(E2BIG, "tmpfs options longer than %zu bytes", sizeof opts - 1);
	int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
	CHECK(fs);
	if (*src)
		CHECK(syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", src, 0));
	for (size_t i = 0; i < sizeof sb / sizeof *sb; i++)
		if (flags & sb[i].ms)
			CHECK(syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, sb[i].key, NULL, 0));
	/* DATA as tmpfs itself splits it (mm/shmem.c): at commas, except before a digit, which
	 * continues mpol's node list (mpol=bind:0,2) */
	for (char *opt = opts; opt; ) {
		char *next = opt;
		while ((next = strchr(next, ',')) && isdigit((unsigned char)next[1]))
			next++;
		if (next)
			*next++ = '\0';
		char *value = strchr(opt, '=');
		if (value)
			*value++ = '\0';
		if (*opt)
			CHECK(syscall(SYS_fsconfig, fs, value ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, opt, value, 0));
		opt = next;
	}
	CHECK(syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
	unsigned long long attr = flags & MS_STRICTATIME ? MOUNT_ATTR_STRICTATIME
				  : flags & MS_NOATIME ? MOUNT_ATTR_NOATIME : MOUNT_ATTR_RELATIME;
	for (size_t i = 0; i < sizeof per_mount / sizeof *per_mount; i++)
		if (flags & per_mount[i].ms)
			attr |= per_mount[i].attr;
	int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, (unsigned)attr);
	CHECK(mnt);
	close(fs);
	return mnt;
}

/*
 * Set what mount(2) cannot set while making a mount, on the attached mount MNT itself (through
 * its fd, never its path): per-mount FLAGS (a bind remount: they replace the bind's own;
 * with ADD, added to them), PROPAGATION, and the recursive attributes ATTR_SET/ATTR_CLR.
 */
static void finish_mount(int mnt, unsigned long flags, int add, unsigned long prop,
			 unsigned long long attr_set, unsigned long long attr_clr)
{
	char p[64];
	fdpath(p, sizeof p, mnt);
	if (flags)
		CHECK(mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | flags | (add ? mount_flags(mnt) : 0), NULL));
	if (prop)
		CHECK(mount(NULL, p, NULL, prop, NULL));
	if (attr_set || attr_clr) {
		struct mount_attr attr = { .attr_set = attr_set, .attr_clr = attr_clr };
		CHECK(syscall(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr));
	}
}

/*
 * mount SOURCE DEST FSTYPE FLAGS PROPAGATION DATA NOSYMLINKS ATTR_SET ATTR_CLR
 * DEST is opened inside the root by fd and the mount lands on that fd, so no symlink swap can
 * redirect it (CVE-2021-30465). Bind sources that are files get a file destination.
 * ATTR_SET/ATTR_CLR are recursive mount attributes (rro, rnosuid, ...) set with mount_setattr.
 * Binds (open_tree) and tmpfs (new_tmpfs) are made detached and finished through their own fd:
 * a `ro` can never land on another mount while a bind stays writable. A tmpfs with COPYUP
 * (runc's tmpcopyup) is filled with a copy of the directory it covers before it is attached.
 */
static void mount_entry(char **a, int copyup)
{
	const char *src = a[0], *dest = a[1], *type = a[2], *data = a[5];
	unsigned long flags = (unsigned long)num(a[3]), prop = (unsigned long)num(a[4]);
	unsigned long long resolve = num(a[6]) ? NO_LINKS : IN_ROOT;
	unsigned long long attr_set = (unsigned long long)num(a[7]), attr_clr = (unsigned long long)num(a[8]);
	char dp[64];
	int srcfd = -1, create = 'd';

	if (flags & MS_BIND) {
		struct stat st;
		srcfd = open(src, O_PATH | O_CLOEXEC);
		if (srcfd < 0)
			fail(errno, "bind source %s", src);
		CHECK(fstat(srcfd, &st));
		if (!S_ISDIR(st.st_mode))
			create = 'f';
	}
	int dst = open_in_root(dest, O_PATH, resolve, 0), made = dst < 0 && errno == ENOENT;
	if (made)
		dst = open_in_root(dest, O_PATH, resolve, create);
	if (dst < 0)
		fail(errno, "mount destination %s", dest);
	struct stat dt;
	CHECK(fstat(dst, &dt));
	if ((create == 'd') != (S_ISDIR(dt.st_mode) != 0))
		fail(ENOTDIR, "mount destination %s is %s", dest, create == 'd' ? "not a directory" : "a directory");
	if (srcfd >= 0 || strcmp(type, "tmpfs") == 0) {
		int mnt = srcfd >= 0 ? clone_tree(srcfd, flags & MS_REC) : new_tmpfs(src, flags, data);
		if (copyup && !made)
			copy_up(dst, mnt);
		attach(mnt, dst);
		if (srcfd < 0)
			add_own_mount(mnt);
		finish_mount(mnt, srcfd >= 0 ? flags & ~(MS_BIND | MS_REC) : 0, 0, prop, attr_set, attr_clr);
		close(mnt);
		if (srcfd >= 0)
			close(srcfd);
		close(dst);
		return;
	}
	/* Other filesystems (proc, sysfs, devpts, mqueue, cgroup2, overlay, ...): mount(2) takes
	 * each its own way of reading DATA, and no fd reaches the new mount: propagation and the
	 * r* attributes are set on it by path, as runc does. */
	fdpath(dp, sizeof dp, dst);
	CHECK(mount(src, dp, type, flags, *data ? data : NULL));
	close(dst);
	if (prop)
		remount_fd(dest, resolve, prop, 0);
	if (attr_set || attr_clr) {
		struct mount_attr attr = { .attr_set = attr_set, .attr_clr = attr_clr };
		int fd = open_in_root(dest, O_PATH, resolve, 0);
		CHECK(fd);
		CHECK(syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr));
		close(fd);
	}
}

static void step_mount(char **a) { mount_entry(a, 0); }

/* mount-copyup (mount's arguments): a tmpfs that starts with a copy of what it covers (the
 * tmpcopyup option podman gives --tmpfs and --read-only's tmpfs mounts). */
static void step_mount_copyup(char **a) { mount_entry(a, 1); }

/* remount DEST FLAGS: change the flags of the mount at DEST (e.g. make it read-only). */
static void step_remount(char **a)
{
	remount_fd(a[0], IN_ROOT, (unsigned long)num(a[1]), 1);
}

/* mkdir PATH: create a directory (and its parents) inside the root. */
static void step_mkdir(char **a)
{
	int fd = open_in_root(a[0], O_PATH | O_DIRECTORY, IN_ROOT, 'd');
	CHECK(fd);
	close(fd);
}

/*
 * mknod PATH TYPE(c|b|p) MAJOR MINOR MODE UID GID: a device node in the container's /dev.
 * A node that is already there (the image's, or the host's /dev bound in) is kept as it is if
 * it is the same device, else refused: an existing file is never re-owned or re-moded. A new
 * one is made only on the container's own mounts, never in a host directory bound into it.
 */
static void step_mknod(char **a)
{
	const char *base;
	char p[64];
	struct stat st;
	mode_t type = a[1][0] == 'b' ? S_IFBLK : a[1][0] == 'p' ? S_IFIFO : S_IFCHR;
	mode_t mode = (mode_t)num(a[4]) & 07777;
	dev_t dev = type == S_IFIFO ? 0 : makedev(num(a[2]), num(a[3]));
	int dir = open_parent(a[0], &base);
	if (dir < 0 && errno == EXDEV)
		not_own("mknod", a[0]);
	CHECK(dir);
	if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if ((st.st_mode & S_IFMT) != type || st.st_rdev != dev)
			fail(EEXIST, NULL);
		close(dir);
		return;
	}
	if (!is_own_mount(dir))
		not_own("mknod", a[0]);
	CHECK(mknodat(dir, base, type | mode, dev));   /* umask is 0 */
	/* owner and mode through an fd of the node just made, verified: a hard link to another
	 * file swapped in meanwhile (the rootfs is a host directory) is never changed */
	int fd = openat(dir, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	CHECK(fd);
	CHECK(fstat(fd, &st));
	if ((st.st_mode & S_IFMT) != type || st.st_rdev != dev || st.st_nlink != 1)
		fail(EEXIST, "%s was replaced while it was made", a[0]);
	CHECK(fchownat(fd, "", (uid_t)num(a[5]), (gid_t)num(a[6]), AT_EMPTY_PATH));
	fdpath(p, sizeof p, fd);
	CHECK(chmod(p, mode));   /* again: chown clears set-id bits */
	close(fd);
	close(dir);
}

/* symlink TARGET PATH: a link that is already there is kept if it points to TARGET, else
 * refused; a new one is made only on the container's own mounts. */
static void step_symlink(char **a)
{
	const char *base;
	char have[PATH_MAX];
	int dir = open_parent(a[1], &base);
	if (dir < 0 && errno == EXDEV)
		not_own("symlink", a[1]);
	CHECK(dir);
	ssize_t n = readlinkat(dir, base, have, sizeof have - 1);
	if (n < 0 && errno != ENOENT && errno != EINVAL)
		fail(errno, NULL);
	if (n >= 0 || errno == EINVAL) {   /* there already, a link or not */
		if (n < 0 || (have[n] = '\0', strcmp(have, a[0]) != 0))
			fail(EEXIST, NULL);
		close(dir);
		return;
	}
	if (!is_own_mount(dir))
		not_own("symlink", a[1]);
	CHECK(symlinkat(a[0], dir, base));
	close(dir);
}

/* mask PATH: hide a path: files under the container's /dev/null, directories under an empty
 * read-only tmpfs. The /dev/null used is verified through its fd (CVE-2025-31133). */
static void step_mask(char **a)
{
	char p[64], np[64];
	struct stat st;
	int fd = open_in_root(a[0], O_PATH, NO_LINKS, 0);
	if (fd < 0 && errno == ENOENT)
		return;
	CHECK(fd);
	CHECK(fstat(fd, &st));
	fdpath(p, sizeof p, fd);
	if (S_ISDIR(st.st_mode)) {
		CHECK(mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=0555"));
	} else {
		int null = dev_null();
		fdpath(np, sizeof np, null);
		CHECK(mount(np, p, NULL, MS_BIND, NULL));
		close(null);
	}
	close(fd);
}

/* readonly PATH: bind PATH onto itself, then make that bind read-only (through its fd). */
static void step_readonly(char **a)
{
	int fd = open_in_root(a[0], O_PATH, IN_ROOT, 0);
	if (fd < 0 && errno == ENOENT)
		return;
	CHECK(fd);
	int mnt = clone_tree(fd, 1);
	attach(mnt, fd);
	finish_mount(mnt, MS_RDONLY, 1, 0, 0, 0);
	close(mnt);
	close(fd);
}

/*
 * Allocate a terminal in the container's own devpts and send the master to the console socket
 * (runc's protocol: SCM_RIGHTS, payload = the pty's name). Returns the slave, opened with
 * TIOCGPTPEER, never by path (CVE-2025-52565).
 */
static int new_pty(int sock, long long rows, long long cols)
{
	int n, unlock = 0;
	struct statfs sf;
	char name[32];
	int master = open_in_root("/dev/pts/ptmx", O_RDWR | O_NOCTTY, NO_LINKS, 0);
	if (master < 0)
		fail(errno, "open /dev/pts/ptmx in the container");
	CHECK(fstatfs(master, &sf));
	if (sf.f_type != DEVPTS_SUPER_MAGIC)
		fail(EPERM, "/dev/pts/ptmx in the container is not on devpts");
	CHECK(ioctl(master, TIOCSPTLCK, &unlock));
	CHECK(ioctl(master, TIOCGPTN, &n));
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	CHECK(slave);
	if (rows > 0 || cols > 0) {
		struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
		CHECK(ioctl(master, TIOCSWINSZ, &ws));
	}
	snprintf(name, sizeof name, "/dev/pts/%d", n);
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = name, .iov_len = strlen(name) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &master, sizeof(int));
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
		fail(errno, "send the terminal to the console socket");
	close(master);
	close(sock);
	return slave;
}

static dev_t tty_devpts;   /* the devpts instance of ctx.tty (host ttys have the same numbers) */

/* Make SLAVE our controlling terminal (in a new session) and our stdio. */
static void take_terminal(int slave)
{
	struct stat st;
	CHECK(fstat(slave, &st));
	ctx.tty = st.st_rdev;
	ctx.have_tty = 1;
	tty_devpts = st.st_dev;
	CHECK(setsid());
	CHECK(ioctl(slave, TIOCSCTTY, 0));
	for (int i = 0; i < 3; i++)
		CHECK(dup2(slave, i));
	close(slave);
}

/* console SOCKET_FD ROWS COLS: the container's terminal, also bound on /dev/console (made if
 * missing, on the container's own mounts only: a /dev bound from a host directory without a
 * console file is refused, not written to). */
static void step_console(char **a)
{
	char sp[64], cp[64];
	int slave = new_pty((int)num(a[0]), num(a[1]), num(a[2]));
	int con = open_in_root("/dev/console", O_PATH, NO_LINKS, 'f' | OWN);
	if (con < 0 && errno == EXDEV)
		not_own("create", "/dev/console");
	if (con < 0)
		fail(errno, "create /dev/console");
	fdpath(sp, sizeof sp, slave);
	fdpath(cp, sizeof cp, con);
	CHECK(mount(sp, cp, NULL, MS_BIND, NULL));
	close(con);
	take_terminal(slave);
}

/* pty SOCKET_FD ROWS COLS: `exec -t`: a new terminal for this process only (/dev/console is
 * the container's and stays as it is). */
static void step_pty(char **a)
{
	take_terminal(new_pty((int)num(a[0]), num(a[1]), num(a[2])));
}

/* enter-root: `exec`: setns into the mount namespace made the container's root our root and
 * cwd; keep an fd of it, for the paths resolved inside the root (cwd, /dev/pts/ptmx). */
static void step_enter_root(char **a)
{
	(void)a;
	ctx.root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(ctx.root);
}

/* pivot-root: make the root the container's "/" (pivot_root(2): ".", "." then detach). */
static void step_pivot_root(char **a)
{
	(void)a;
	int old = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(old);
	CHECK(fchdir(ctx.root));
	CHECK(syscall(SYS_pivot_root, ".", "."));
	/* "." must be the old root (stacked on "/"), not the new one: MS_REC on the new root
	 * would turn the container's own shared mounts into slaves. */
	CHECK(fchdir(old));
	close(old);
	CHECK(mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL));
	CHECK(umount2(".", MNT_DETACH));
	CHECK(chdir("/"));
	close(ctx.root);
	ctx.root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(ctx.root);
}

/* move-root: --no-pivot: move the rootfs mount onto "/" and chroot into it. */
static void step_move_root(char **a)
{
	(void)a;
	CHECK(fchdir(ctx.root));
	CHECK(mount(".", "/", NULL, MS_MOVE, NULL));
	CHECK(chroot("."));
	CHECK(chdir("/"));
	close(ctx.root);
	ctx.root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(ctx.root);
}

/* lo-up: a new network namespace starts with its loopback down. */
static void step_lo_up(char **a)
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

static void step_hostname(char **a) { CHECK(sethostname(a[0], strlen(a[0]))); }
static void step_domainname(char **a) { CHECK(setdomainname(a[0], strlen(a[0]))); }

/* Write VALUE to a file in the container's procfs, verified to be procfs (CVE-2019-16884). */
static void write_proc(const char *path, const char *value)
{
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

/* sysctl PATH VALUE: PATH is /proc/sys/..., already converted by the parent. */
static void step_sysctl(char **a) { write_proc(a[0], a[1]); }

/* oom-score-adj VALUE: written before the root changes, through the host's /proc. */
static void step_oom_score_adj(char **a)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	CHECK(fd);
	if (write(fd, a[0], strlen(a[0])) < 0)
		fail(errno, NULL);
	close(fd);
}

/* rlimit RESOURCE SOFT HARD: unsigned 64-bit limits (RLIM_INFINITY is 2^64-1) */
static void step_rlimit(char **a)
{
	struct rlimit rl = { .rlim_cur = (rlim_t)unum(a[1]), .rlim_max = (rlim_t)unum(a[2]) };
	if (setrlimit((int)num(a[0]), &rl) < 0)
		fail(errno, "error setting rlimit type %s", a[0]);
}

/* personality DOMAIN: the execution domain (PER_LINUX32 makes uname(2) say i686). */
static void step_personality(char **a)
{
	if (personality((unsigned long)unum(a[0])) < 0)
		fail(errno, "personality %s", a[0]);
}

/* session-keyring NAME: a fresh session keyring, so the container sees none of the host's keys. */
static void step_session_keyring(char **a)
{
	if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, a[0]) < 0 && errno != ENOSYS)
		fail(errno, NULL);
}

static void step_umask(char **a) { umask((mode_t)num(a[0])); }

/*
 * resolve-exec ARG0 PATH CWD: find the program in the container (after the root changed) as
 * runc does (Go's exec.LookPath, run in the process's cwd): missing or not executable fails
 * `create` with runc's words. Relative names are looked up in CWD, where execve will run.
 */
static int is_exec(int at, const char *p, struct stat *st)
{
	return fstatat(at, p, st, 0) == 0 && S_ISREG(st->st_mode) && faccessat(at, p, X_OK, 0) == 0;
}

static void step_resolve_exec(char **a)
{
	const char *arg0 = a[0], *path = a[1];
	struct stat st;
	int cwd = open_in_root(a[2], O_PATH | O_DIRECTORY, IN_ROOT, 0);
	int at = cwd >= 0 ? cwd : AT_FDCWD;   /* no such cwd: the chdir step will say so */
	if (strchr(arg0, '/')) {
		if (fstatat(at, arg0, &st, 0) < 0)
			fail(errno, "exec: \"%s\": stat %s", arg0, arg0);
		if (S_ISDIR(st.st_mode))
			fail(EACCES, "exec: \"%s\"", arg0);
		if (faccessat(at, arg0, X_OK, 0) < 0)
			fail(errno, "exec: \"%s\"", arg0);
		snprintf(ctx.exe, sizeof ctx.exe, "%s", arg0);
	} else {
		for (const char *dir = path; ; dir++) {   /* an empty PATH has no entries (not ".") */
			const char *end = strchrnul(dir, ':');
			int len = (int)(end - dir);
			snprintf(ctx.exe, sizeof ctx.exe, "%.*s/%s", len ? len : 1, len ? dir : ".", arg0);
			if (*path && is_exec(at, ctx.exe, &st))
				break;
			if (!*path || !*end)
				fail(0, "exec: \"%s\": executable file not found in $PATH", arg0);
			dir = end;
		}
		if (ctx.exe[0] != '/')   /* found through a relative PATH entry: Go's exec.ErrDot */
			fail(0, "exec: \"%s\": cannot run executable found relative to current directory", arg0);
	}
	if (cwd >= 0)
		close(cwd);
}

/*
 * home UID: the process's env has no HOME: take UID's home directory from the container's
 * /etc/passwd (read inside the root), or "/", as runc does; exec adds it.
 */
static void step_home(char **a)
{
	static char buf[1 << 20];
	const char *dir = "/";
	ssize_t n = 0, got;
	int fd = open_in_root("/etc/passwd", O_RDONLY, IN_ROOT, 0);
	if (fd >= 0) {
		while (n < (ssize_t)sizeof buf - 1 && (got = read(fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0)
			n += got;
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	for (char *line = buf, *next; line && *line; line = next) {
		char *f[7] = { 0 }, *p = line;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		for (int i = 0; i < 7 && p; i++) {   /* name:password:uid:gid:gecos:home:shell */
			f[i] = p;
			p = strchr(p, ':');
			if (p)
				*p++ = '\0';
		}
		if (f[5] && *f[2] && strcmp(f[2], a[0]) == 0) {
			dir = f[5];
			break;
		}
	}
	snprintf(ctx.home, sizeof ctx.home, "HOME=%s", dir);
}

static void step_ready(char **a)
{
	(void)a;
	send_msg("ready", NULL, NULL, NULL);
}

/* wait-start FIFO_FD: block until `pyrt start` writes a byte into the container's exec fifo.
 * The fd stays open, close-on-exec: `start` can tell the execve (the fifo's last writer is
 * gone) from a failure (fail() writes the reason into the fifo). */
static void step_wait_start(char **a)
{
	int fd = (int)num(a[0]);
	char c;
	ssize_t n;
	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	CHECK(n);
	CHECK(fcntl(fd, F_SETFD, FD_CLOEXEC));
	ctx.fifo = fd;
}

/* ------------------------------------------------------------------ hooks in the container */

/* The state JSON for the hooks run here: [0] "creating" (createContainer), [1] "created"
 * (startContainer). The parent sends both at hook-sync, once it knows our host pid. */
static char *hook_state[2];

/*
 * hook-sync: stop where the runtime's own hooks belong (prestart, createRuntime: everything
 * mounted, the root not pivoted yet). The parent runs them and answers with the two states.
 */
static void step_hook_sync(char **a)
{
	(void)a;
	ssize_t n;
	send_msg("hooks", NULL, NULL, NULL);
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
 * hook KIND TIMEOUT PATH NENV ENV... ARGS...: run a createContainer or startContainer hook in
 * the container's namespaces, with the state on its stdin and no fd of ours (3 and up close on
 * exec). After TIMEOUT seconds (0: never) its process group is killed. A hook that cannot be
 * executed, fails or times out fails the step; the message carries the start of its output.
 */
static void step_hook(char **a, int argc)
{
	if (argc < 4 || num(a[3]) < 0 || argc < 4 + num(a[3]))
		fail(EINVAL, "malformed hook step");
	const char *kind = a[0], *path = a[2], *state = hook_state[strcmp(kind, "startContainer") == 0];
	int timeout = (int)num(a[1]), nenv = (int)num(a[3]), in[2], out[2], err[2], e = 0, status;
	char **envp = calloc((size_t)nenv + 1, sizeof *envp), **argv = a + 4 + nenv;
	char *only_path[] = { (char *)path, NULL }, output[512];
	size_t got = 0;
	if (!envp || !state)
		fail(envp ? EINVAL : ENOMEM, "%s hook %s: no container state (no hook-sync step)", kind, path);
	memcpy(envp, a + 4, (size_t)nenv * sizeof *envp);
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

/* cap-bounding MASK_HEX: drop every capability not in MASK from the bounding set. */
static void step_cap_bounding(char **a)
{
	unsigned long long keep = strtoull(a[0], NULL, 16);
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

/*
 * chown-stdio UID: give the container's user its stdio, as runc does, so it can reopen
 * /dev/stdout (/proc/self/fd/1). Only anonymous pipes, sockets and the terminal pyrt-init
 * allocated: never a file, named FIFO or device of the host (a host /dev/null, FIFO or tty
 * keeps its owner).
 */
static void step_chown_stdio(char **a)
{
	struct stat st;
	struct statfs sf;
	for (int fd = 0; fd < 3; fd++) {
		if (fstat(fd, &st) < 0 || fstatfs(fd, &sf) < 0)
			continue;
		int ours = (S_ISFIFO(st.st_mode) && sf.f_type == PIPEFS_MAGIC) ||
			   (S_ISSOCK(st.st_mode) && sf.f_type == SOCKFS_MAGIC) ||
			   (S_ISCHR(st.st_mode) && ctx.have_tty && st.st_rdev == ctx.tty && st.st_dev == tty_devpts);
		if (!ours)
			continue;
		if (fchown(fd, (uid_t)num(a[0]), (gid_t)-1) < 0 && errno != EPERM && errno != EINVAL && errno != EROFS)
			fail(errno, "chown stdio fd %d", fd);
	}
}

/* An id for setresuid/setresgid/setgroups: 0..INT_MAX. (uid_t)-1 would mean "unchanged" and
 * leave the process root; the parent refuses such ids, this refuses a plan that has one. */
static unsigned id(const char *s)
{
	unsigned long long v = unum(s);
	if (v > INT_MAX)
		fail(EINVAL, "id %s out of range", s);
	return (unsigned)v;
}

/* user UID GID GROUPS: switch credentials, keeping capabilities for the caps step. GROUPS is a
 * comma-separated list; every entry must parse (no truncation, no skipping). */
static void step_user(char **a)
{
	size_t n = 0, max = *a[2] ? 1 : 0;
	for (const char *c = a[2]; *c; c++)
		max += *c == ',';
	gid_t *groups = calloc(max ? max : 1, sizeof *groups);
	if (!groups)
		fail(ENOMEM, "setgroups");
	for (char *g = a[2], *comma; n < max; g = comma + 1) {
		comma = strchrnul(g, ',');
		char save = *comma;
		*comma = '\0';
		groups[n++] = id(g);
		*comma = save;
	}
	uid_t uid = id(a[0]);
	gid_t gid = id(a[1]);
	CHECK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
	if (setgroups(n, groups) < 0)
		fail(errno, "setgroups");
	free(groups);
	if (setresgid(gid, gid, gid) < 0)
		fail(errno, "setgid %s", a[1]);
	if (setresuid(uid, uid, uid) < 0)
		fail(errno, "setuid %s", a[0]);
	CHECK(prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0));
}

/* caps EFFECTIVE PERMITTED INHERITABLE AMBIENT (hex masks) */
static void step_caps(char **a)
{
	unsigned long long eff = strtoull(a[0], NULL, 16), perm = strtoull(a[1], NULL, 16);
	unsigned long long inh = strtoull(a[2], NULL, 16), amb = strtoull(a[3], NULL, 16);
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

static void step_no_new_privileges(char **a)
{
	(void)a;
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
}

/* seccomp FD: load a BPF filter (struct sock_filter[]) the parent compiled into a memfd. */
static void step_seccomp(char **a)
{
	int fd = (int)num(a[0]);
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
	CHECK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned long)num(a[1]), &prog));
	close(fd);
	free(insns);
}

/* chdir PATH: resolved inside the root, never through a magic link or leaked fd
 * (CVE-2024-21626); done after the user switch so permissions are the user's. */
static void step_chdir(char **a)
{
	int fd = open_in_root(a[0], O_PATH | O_DIRECTORY, IN_ROOT, 0);
	if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
		/* a seccomp profile loaded before this step (no noNewPrivileges) may deny openat2:
		 * plain chdir, then make sure we did not land outside the root (CVE-2024-21626) */
		char cwd[PATH_MAX];
		if (chdir(a[0]) < 0)
			fail(errno, "chdir to cwd (\"%s\") set in config.json", a[0]);
		if (!getcwd(cwd, sizeof cwd) || cwd[0] != '/')
			fail(EPERM, "chdir to cwd (\"%s\"): the directory is outside the container", a[0]);
		return;
	}
	if (fd < 0)
		fail(errno, "chdir to cwd (\"%s\") set in config.json", a[0]);
	CHECK(fchdir(fd));
	close(fd);
}

/* close-fds FIRST: every fd from FIRST up is closed by the final execve. */
static void step_close_fds(char **a)
{
	unsigned first = (unsigned)num(a[0]);
	if (syscall(SYS_close_range, first, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) == 0)
		return;
	/* close_range denied by a seccomp profile loaded earlier: mark them one by one */
	struct rlimit rl;
	CHECK(getrlimit(RLIMIT_NOFILE, &rl));
	for (unsigned fd = first; fd < rl.rlim_cur && fd < 1u << 20; fd++)
		fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}

/* exec LISTEN_PID NENV ENV... ARGV...: become the container's process. */
static void step_exec(char **a, int argc)
{
	int nenv = (int)num(a[1]), listen_pid = (int)num(a[0]);
	char listen[32];
	if (nenv < 0 || argc <= 2 + nenv)
		fail(EINVAL, "exec without arguments");
	char **envp = calloc((size_t)nenv + 3, sizeof *envp);   /* + LISTEN_PID, HOME, NULL */
	if (!envp)
		fail(ENOMEM, NULL);
	memcpy(envp, a + 2, (size_t)nenv * sizeof *envp);
	char **argv = a + 2 + nenv;   /* parse() ends every argument list with NULL */
	if (listen_pid) {
		snprintf(listen, sizeof listen, "LISTEN_PID=%d", getpid());
		envp[nenv++] = listen;
	}
	if (ctx.home[0])
		envp[nenv] = ctx.home;
	execve(ctx.exe, argv, envp);
	fail(errno, "exec: \"%s\"", ctx.exe);
}

/* ------------------------------------------------------------------ the interpreter */

static const struct {
	const char *name;
	int argc;            /* (exec and hook, with variable arguments, are called by main) */
	void (*fn)(char **);
} STEPS[] = {
	{ "setns", 2, step_setns },
	{ "unshare", 1, step_unshare },
	{ "join-cgroups", 1, step_join_cgroups },
	{ "fork", 0, step_fork },
	{ "propagation", 2, step_propagation },
	{ "root", 1, step_root },
	{ "mount", 9, step_mount },
	{ "mount-copyup", 9, step_mount_copyup },
	{ "remount", 2, step_remount },
	{ "mkdir", 1, step_mkdir },
	{ "mknod", 7, step_mknod },
	{ "symlink", 2, step_symlink },
	{ "mask", 1, step_mask },
	{ "readonly", 1, step_readonly },
	{ "console", 3, step_console },
	{ "pty", 3, step_pty },
	{ "enter-root", 0, step_enter_root },
	{ "pivot-root", 0, step_pivot_root },
	{ "move-root", 0, step_move_root },
	{ "lo-up", 0, step_lo_up },
	{ "hostname", 1, step_hostname },
	{ "domainname", 1, step_domainname },
	{ "sysctl", 2, step_sysctl },
	{ "oom-score-adj", 1, step_oom_score_adj },
	{ "rlimit", 3, step_rlimit },
	{ "personality", 1, step_personality },
	{ "session-keyring", 1, step_session_keyring },
	{ "umask", 1, step_umask },
	{ "resolve-exec", 3, step_resolve_exec },
	{ "home", 1, step_home },
	{ "ready", 0, step_ready },
	{ "wait-start", 1, step_wait_start },
	{ "cap-bounding", 1, step_cap_bounding },
	{ "chown-stdio", 1, step_chown_stdio },
	{ "user", 3, step_user },
	{ "caps", 4, step_caps },
	{ "no-new-privileges", 0, step_no_new_privileges },
	{ "seccomp", 2, step_seccomp },
	{ "chdir", 1, step_chdir },
	{ "close-fds", 1, step_close_fds },
	{ "hook-sync", 0, step_hook_sync },
};

/*
 * Split the plan into *STEPS (allocated here). Strings stay in BUF (NUL-terminated, also the
 * last: see main); every argv gets one spare NULL slot. No fixed limit on steps or arguments:
 * each string takes at least a byte of the plan, which bounds both.
 */
static int parse(char *buf, size_t len, struct step **steps)
{
	char *p = buf, *end = buf + len, *after;
	int n = 0, cap = 0;
	while (p < end) {
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			struct step *more = realloc(*steps, (size_t)cap * sizeof **steps);
			if (!more)
				return -1;
			*steps = more;
		}
		struct step *s = &(*steps)[n];
		s->op = p;
		p += strlen(p) + 1;
		if (p >= end)
			return -1;
		errno = 0;
		long argc = strtol(p, &after, 10);
		if (errno || after == p || *after || argc < 0 || argc > end - p)
			return -1;
		s->argc = (int)argc;
		p += strlen(p) + 1;
		s->argv = calloc((size_t)s->argc + 1, sizeof(char *));
		if (!s->argv)
			return -1;
		for (int i = 0; i < s->argc; i++) {
			if (p >= end)
				return -1;
			s->argv[i] = p;
			p += strlen(p) + 1;
		}
		n++;
	}
	return p == end ? n : -1;
}

int main(int argc, char **argv)
{
	struct step *steps = NULL;
	sigset_t none;
	char go[8];

	/* Nothing in the container may ptrace us or open our /proc files (CVE-2016-9962). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (argc != 3)
		return 2;
	ctx.sync = atoi(argv[1]);
	int planfd = atoi(argv[2]);
	fcntl(ctx.sync, F_SETFD, FD_CLOEXEC);

	/* The parent is Python: undo the signal state it leaves behind (SIGPIPE ignored, masks). */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	umask(0);

	if (recv(ctx.sync, go, sizeof go, 0) <= 0)
		return 1;   /* the parent gave up before we started */
	struct stat st;
	if (fstat(planfd, &st) < 0)
		fail(errno, "plan");
	char *plan = malloc((size_t)st.st_size + 1);
	if (!plan || pread(planfd, plan, (size_t)st.st_size, 0) != st.st_size)
		fail(EIO, "read the plan");
	plan[st.st_size] = '\0';   /* a last string without its NUL ends here (and parse() refuses it) */
	close(planfd);
	int n = parse(plan, (size_t)st.st_size, &steps);
	if (n < 0)
		fail(EINVAL, "malformed plan");

	for (ctx.index = 0; ctx.index < n; ctx.index++) {
		struct step *s = &steps[ctx.index];
		if (ctx.trace) {
			char idx[16];
			snprintf(idx, sizeof idx, "%d", ctx.index);
			send_msg("step", idx, NULL, NULL);
		}
		if (strcmp(s->op, "trace") == 0) {
			ctx.trace = 1;
			continue;
		}
		if (strcmp(s->op, "exec") == 0) {
			step_exec(s->argv, s->argc);   /* does not return */
		}
		if (strcmp(s->op, "hook") == 0) {
			step_hook(s->argv, s->argc);   /* variable arguments, like exec */
			continue;
		}
		size_t i;
		for (i = 0; i < sizeof STEPS / sizeof *STEPS; i++)
			if (strcmp(s->op, STEPS[i].name) == 0)
				break;
		if (i == sizeof STEPS / sizeof *STEPS)
			fail(EINVAL, "unknown step \"%s\"", s->op);
		if (s->argc != STEPS[i].argc)
			fail(EINVAL, "step \"%s\" takes %d arguments", s->op, STEPS[i].argc);
		STEPS[i].fn(s->argv);
	}
	fail(EINVAL, "the plan has no exec step");
}
