/*
 * Paths inside the container's root. Every path of the plan is resolved by openat2 with
 * RESOLVE_IN_ROOT from the root's fd (ctx.root): ".." and symlinks stay inside it. What is
 * created on the way is created with *at() calls on a verified parent fd, so a racing symlink
 * swap cannot redirect it outside the root (CVE-2024-45310).
 *
 * pyrt-init creates device nodes, symlinks, /dev/console and the parents of these only on
 * the container's own mounts: the rootfs mount and the tmpfs mounts it made itself (their ids
 * are recorded as they are made, see mounts.c: new_tmpfs). Any other mount is a bind of a host
 * path or a filesystem that lives on the host (an overlay with a host upperdir, a disk,
 * devtmpfs): creating there would change the host. Mount targets and cwd are the exception, as
 * in runc and Docker: config.json asks for them (a volume nested in another volume).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "init.h"

int openat2_(int dirfd, const char *path, int flags, unsigned long long resolve)
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

void fdpath(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U   /* Linux 6.8: ids never reused */
#endif

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

void add_own_mount(int fd)
{
	unsigned long long *ids = realloc(own.ids, (own.n + 1) * sizeof *ids);
	if (!ids)
		fail(ENOMEM, NULL);
	ids[own.n++] = mount_id(fd);
	own.ids = ids;
}

/* Is the directory FD on the rootfs mount or on a tmpfs pyrt-init made? */
int is_own_mount(int fd)
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
void not_own(const char *what, const char *path)
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

int open_in_root(const char *path, int flags, unsigned long long resolve, int create)
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
		if (*comp == '\0' || strcmp(comp, ".") == 0) {   /* "//", "/./" */
			if (last)
				return parent;
			*slash = '/';   /* buf keeps the whole prefix: it is resolved again from the root */
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
int open_parent(const char *path, const char **base)
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
int dev_null(void)
{
	struct stat st;
	int fd = open_in_root("/dev/null", O_PATH, NO_LINKS, 0);
	if (fd < 0)
		fail(errno, "open /dev/null in the container");
	if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
		fail(EPERM, "/dev/null in the container is not the null device");
	return fd;
}
