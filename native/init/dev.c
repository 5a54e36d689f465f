/*
 * The container's /dev: device nodes and /dev's symlinks. pyrt-init never changes a host file
 * on its own account: a new node or link is made only on the container's own mounts (paths.c),
 * and one that is there already is used as it is if it is the same, else refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "init.h"

/*
 * mknod PATH TYPE(c|b|p) MAJOR MINOR MODE UID GID: a device node in the container's /dev.
 * A node that is already there (the image's, or the host's /dev bound in) is kept as it is if
 * it is the same device, else refused: an existing file is never re-owned or re-moded. A new
 * one is made only on the container's own mounts, never in a host directory bound into it.
 */
void step_mknod(const union arg *a)
{
	const char *path = a[0].s, *kind = a[1].s, *base;
	char p[64];
	struct stat st;
	if (strlen(kind) != 1 || !strchr("cbp", *kind))
		fail(EINVAL, "mknod %s: device type \"%s\"", path, kind);
	if (a[2].u > 0xfff || a[3].u > 0xfffff || a[4].u > 07777 || a[5].u > INT_MAX || a[6].u > INT_MAX)
		fail(EINVAL, "mknod %s: device number, mode or owner out of range", path);
	mode_t type = *kind == 'b' ? S_IFBLK : *kind == 'p' ? S_IFIFO : S_IFCHR;
	mode_t mode = (mode_t)a[4].u;
	dev_t dev = type == S_IFIFO ? 0 : makedev((unsigned)a[2].u, (unsigned)a[3].u);
	int dir = open_parent(path, &base);
	if (dir < 0 && errno == EXDEV)
		not_own("mknod", path);
	CHECK(dir);
	if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if ((st.st_mode & S_IFMT) != type || st.st_rdev != dev)
			fail(EEXIST, NULL);
		close(dir);
		return;
	}
	if (!is_own_mount(dir))
		not_own("mknod", path);
	CHECK(mknodat(dir, base, type | mode, dev));   /* umask is 0 */
	/* owner and mode through an fd of the node just made, verified: a hard link to another
	 * file swapped in meanwhile (the rootfs is a host directory) is never changed */
	int fd = openat(dir, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	CHECK(fd);
	CHECK(fstat(fd, &st));
	if ((st.st_mode & S_IFMT) != type || st.st_rdev != dev || st.st_nlink != 1)
		fail(EEXIST, "%s was replaced while it was made", path);
	CHECK(fchownat(fd, "", (uid_t)a[5].u, (gid_t)a[6].u, AT_EMPTY_PATH));
	fdpath(p, sizeof p, fd);
	CHECK(chmod(p, mode));   /* again: chown clears set-id bits */
	close(fd);
	close(dir);
}

/* symlink TARGET LINK: a link that is already there is kept if it points to TARGET, else
 * refused; a new one is made only on the container's own mounts. */
void step_symlink(const union arg *a)
{
	const char *target = a[0].s, *linkpath = a[1].s, *base;
	char have[PATH_MAX];
	int dir = open_parent(linkpath, &base);
	if (dir < 0 && errno == EXDEV)
		not_own("symlink", linkpath);
	CHECK(dir);
	ssize_t n = readlinkat(dir, base, have, sizeof have - 1);
	if (n < 0 && errno != ENOENT && errno != EINVAL)
		fail(errno, NULL);
	if (n >= 0 || errno == EINVAL) {   /* there already, a link or not */
		if (n < 0 || (have[n] = '\0', strcmp(have, target) != 0))
			fail(EEXIST, NULL);
		close(dir);
		return;
	}
	if (!is_own_mount(dir))
		not_own("symlink", linkpath);
	CHECK(symlinkat(target, dir, base));
	close(dir);
}
