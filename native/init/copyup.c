/*
 * tmpcopyup (runc's mount option, which podman gives --tmpfs and --read-only's tmpfs mounts):
 * a new tmpfs starts with a copy of the directory it covers, made before it is attached.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "init.h"


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
void copy_up(int lower, int mnt)
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
